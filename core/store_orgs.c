/*
 * store_orgs.c: the SQL of organizations and departments (store_orgs.h).
 *
 * Each object is built by one json_build_object() expression, used by every
 * statement (select, insert ... returning, update ... returning), so that a
 * created, an updated and a fetched object have one shape.
 */
#include <stddef.h>

#include "db.h"
#include "store_json.h"
#include "store_orgs.h"

#define ORGS_JSON                                                                                  \
	"json_build_object('id', o.id, 'name', o.name, 'street1', o.street1, "                     \
	"'street2', o.street2, 'street3', o.street3, 'city', o.city, 'state', o.state, "           \
	"'postal_code', o.postal_code, 'country', o.country, "                                     \
	"'validation_status', o.validation_status, 'active', o.active, "                           \
	"'created_at', " STORE_JSON_TS("o.created_at") ")"

#define ORGS_DEPT_JSON                                                                             \
	"json_build_object('id', d.id, 'org_id', d.org_id, 'name', d.name, 'active', d.active, "   \
	"'created_at', " STORE_JSON_TS("d.created_at") ")"

int store_orgs_list(struct db *db, int64_t org_id, const struct store_page *page, json_t **items)
{
	char org_buf[24], after[24], limit[24];
	const char *params[3];

	store_json_page(page, after, limit);
	params[0] = store_json_int(org_buf, org_id);
	params[1] = after;
	params[2] = limit;
	return store_json_must(
	    db, "org_list",
	    "SELECT coalesce(json_agg(j ORDER BY id), '[]') FROM ("
	    " SELECT o.id, " ORGS_JSON " AS j FROM organizations o"
	    " WHERE ($1::bigint IS NULL OR o.id = $1::bigint) AND o.id > $2::bigint"
	    " ORDER BY o.id LIMIT $3::int) s",
	    3, params, items);
}

int store_orgs_get(struct db *db, int64_t id, json_t **out)
{
	char id_buf[24];
	const char *params[1];

	params[0] = store_json_int(id_buf, id);
	return store_json_one(db, "org_get",
	                      "SELECT " ORGS_JSON " FROM organizations o WHERE o.id = $1::bigint",
	                      1, params, out);
}

int store_orgs_create(struct db *db, const char *fields, json_t **out)
{
	const char *params[1];

	params[0] = fields;
	return store_json_must(
	    db, "org_insert",
	    "INSERT INTO organizations AS o (name, street1, street2, street3, city,"
	    " state, postal_code, country, validation_status)"
	    " SELECT r.name, r.street1, r.street2, r.street3, r.city, r.state,"
	    " r.postal_code, r.country, coalesce(r.validation_status, 'not_validated')"
	    " FROM json_populate_record(NULL::organizations, $1::json) r"
	    " RETURNING " ORGS_JSON,
	    1, params, out);
}

int store_orgs_update(struct db *db, int64_t id, const char *fields, json_t **out)
{
	char id_buf[24];
	const char *params[2];

	params[0] = store_json_int(id_buf, id);
	params[1] = fields;
	return store_json_one(
	    db, "org_update",
	    "UPDATE organizations o SET (name, street1, street2, street3, city, state,"
	    " postal_code, country, validation_status, active) ="
	    " (SELECT r.name, r.street1, r.street2, r.street3, r.city, r.state,"
	    " r.postal_code, r.country, r.validation_status, r.active"
	    " FROM json_populate_record(o, $2::json) r)"
	    " WHERE o.id = $1::bigint RETURNING " ORGS_JSON,
	    2, params, out);
}

int store_orgs_missing(struct db *db, const char *ids, json_t **missing)
{
	const char *params[1];

	params[0] = ids;
	return store_json_must(db, "org_missing",
	                       "SELECT coalesce(json_agg(i ORDER BY i), '[]') FROM"
	                       " (SELECT DISTINCT (v #>> '{}')::bigint AS i"
	                       "  FROM json_array_elements($1::json) v) s"
	                       " WHERE NOT EXISTS (SELECT 1 FROM organizations o WHERE o.id = s.i)",
	                       1, params, missing);
}

int store_orgs_dept_list(struct db *db, int64_t org_id, int64_t dept_id,
                         const struct store_page *page, json_t **items)
{
	char org_buf[24], dept_buf[24], after[24], limit[24];
	const char *params[4];

	store_json_page(page, after, limit);
	params[0] = store_json_int(org_buf, org_id);
	params[1] = store_json_int(dept_buf, dept_id);
	params[2] = after;
	params[3] = limit;
	return store_json_must(
	    db, "dept_list",
	    "SELECT coalesce(json_agg(j ORDER BY id), '[]') FROM ("
	    " SELECT d.id, " ORGS_DEPT_JSON " AS j FROM departments d"
	    " WHERE d.org_id = $1::bigint AND ($2::bigint IS NULL OR d.id = $2::bigint)"
	    " AND d.id > $3::bigint ORDER BY d.id LIMIT $4::int) s",
	    4, params, items);
}

int store_orgs_dept_get(struct db *db, int64_t id, json_t **out)
{
	char id_buf[24];
	const char *params[1];

	params[0] = store_json_int(id_buf, id);
	return store_json_one(
	    db, "dept_get", "SELECT " ORGS_DEPT_JSON " FROM departments d WHERE d.id = $1::bigint",
	    1, params, out);
}

int store_orgs_dept_create(struct db *db, int64_t org_id, const char *fields, json_t **out)
{
	char org_buf[24];
	const char *params[2];

	params[0] = store_json_int(org_buf, org_id);
	params[1] = fields;
	return store_json_must(db, "dept_insert",
	                       "INSERT INTO departments AS d (org_id, name, active)"
	                       " SELECT $1::bigint, r.name, coalesce(r.active, true)"
	                       " FROM json_populate_record(NULL::departments, $2::json) r"
	                       " RETURNING " ORGS_DEPT_JSON,
	                       2, params, out);
}

int store_orgs_dept_update(struct db *db, int64_t id, const char *fields, json_t **out)
{
	char id_buf[24];
	const char *params[2];

	params[0] = store_json_int(id_buf, id);
	params[1] = fields;
	return store_json_one(db, "dept_update",
	                      "UPDATE departments d SET (name, active) ="
	                      " (SELECT r.name, r.active FROM json_populate_record(d, $2::json) r)"
	                      " WHERE d.id = $1::bigint RETURNING " ORGS_DEPT_JSON,
	                      2, params, out);
}
