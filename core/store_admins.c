/*
 * store_admins.c: the SQL of administrator rows (store_admins.h).
 */
#include <stddef.h>

#include "db.h"
#include "store_admins.h"
#include "store_json.h"

#define ADMINS_JSON                                                                                \
	"json_build_object('id', a.id, 'login', a.login, 'email', a.email, 'role', a.role, "       \
	"'org_id', a.org_id, 'dept_id', a.dept_id, 'cert_types', to_json(a.cert_types), "          \
	"'privileges', to_json(a.privileges), 'active', a.active, "                                \
	"'created_by', a.created_by, 'created_at', " STORE_JSON_TS("a.created_at") ")"

int store_admins_list(struct db *db, int64_t org_id, int64_t dept_id, const struct store_page *page,
                      json_t **items)
{
	char org_buf[24], dept_buf[24], after[24], limit[24];
	const char *params[4];

	store_json_page(page, after, limit);
	params[0] = store_json_int(org_buf, org_id);
	params[1] = store_json_int(dept_buf, dept_id);
	params[2] = after;
	params[3] = limit;
	return store_json_must(db, "admin_list",
	                       "SELECT coalesce(json_agg(j ORDER BY id), '[]') FROM ("
	                       " SELECT a.id, " ADMINS_JSON " AS j FROM admins a"
	                       " WHERE ($1::bigint IS NULL OR a.org_id = $1::bigint)"
	                       " AND ($2::bigint IS NULL OR a.dept_id = $2::bigint)"
	                       " AND a.id > $3::bigint ORDER BY a.id LIMIT $4::int) s",
	                       4, params, items);
}

int store_admins_get(struct db *db, int64_t id, json_t **out)
{
	char id_buf[24];
	const char *params[1];

	params[0] = store_json_int(id_buf, id);
	return store_json_one(db, "admin_get",
	                      "SELECT " ADMINS_JSON " FROM admins a WHERE a.id = $1::bigint", 1,
	                      params, out);
}

int store_admins_create(struct db *db, const char *fields, int64_t created_by, json_t **out)
{
	char by_buf[24];
	const char *params[2];

	params[0] = fields;
	params[1] = store_json_int(by_buf, created_by);
	return store_json_must(
	    db, "admin_insert",
	    "INSERT INTO admins AS a (login, email, role, org_id, dept_id, cert_types,"
	    " privileges, created_by)"
	    " SELECT r.login, r.email, r.role, r.org_id, r.dept_id,"
	    " coalesce(r.cert_types, '{}'), coalesce(r.privileges, '{}'), $2::bigint"
	    " FROM json_populate_record(NULL::admins, $1::json) r"
	    " RETURNING " ADMINS_JSON,
	    2, params, out);
}

int store_admins_update(struct db *db, int64_t id, const char *fields, json_t **out)
{
	char id_buf[24];
	const char *params[2];

	params[0] = store_json_int(id_buf, id);
	params[1] = fields;
	return store_json_one(db, "admin_update",
	                      "UPDATE admins a SET (active, email, cert_types, privileges) ="
	                      " (SELECT r.active, r.email, r.cert_types, r.privileges"
	                      " FROM json_populate_record(a, $2::json) r)"
	                      " WHERE a.id = $1::bigint RETURNING " ADMINS_JSON,
	                      2, params, out);
}

int store_admins_other_mraos(struct db *db, int64_t id, int64_t *count)
{
	char id_buf[24];
	const char *params[1];

	params[0] = store_json_int(id_buf, id);
	if (store_json_id(db, "admin_other_mraos",
	                  "SELECT count(*) FROM admins WHERE role = 'mrao' AND active"
	                  " AND id <> $1::bigint",
	                  1, params, count) != 1)
		return -1;
	return 0;
}
