/*
 * store_endpoints.c: the SQL of protocol endpoints (store_endpoints.h).
 */
#include <stddef.h>

#include "db.h"
#include "store_endpoints.h"
#include "store_json.h"

#define ENDPOINTS_JSON                                                                             \
	"json_build_object('id', e.id, 'protocol', e.protocol, 'name', e.name, "                   \
	"'org_id', e.org_id, 'dept_id', e.dept_id, "                                               \
	"'default_profile_id', e.default_profile_id, 'profile_ids', to_json(e.profile_ids), "      \
	"'settings', e.settings, 'active', e.active, "                                             \
	"'created_at', " STORE_JSON_TS("e.created_at") ")"

int store_endpoints_list(struct db *db, int64_t org_id, int64_t dept_id,
                         const struct store_page *page, json_t **items)
{
	char org_buf[24], dept_buf[24], after[24], limit[24];
	const char *params[4];

	store_json_page(page, after, limit);
	params[0] = store_json_int(org_buf, org_id);
	params[1] = store_json_int(dept_buf, dept_id);
	params[2] = after;
	params[3] = limit;
	return store_json_must(db, "endpoint_list",
	                       "SELECT coalesce(json_agg(j ORDER BY id), '[]') FROM ("
	                       " SELECT e.id, " ENDPOINTS_JSON " AS j FROM endpoints e"
	                       " WHERE ($1::bigint IS NULL OR e.org_id = $1::bigint)"
	                       " AND ($2::bigint IS NULL OR e.dept_id = $2::bigint)"
	                       " AND e.id > $3::bigint ORDER BY e.id LIMIT $4::int) s",
	                       4, params, items);
}

int store_endpoints_get(struct db *db, int64_t id, json_t **out)
{
	char id_buf[24];
	const char *params[1];

	params[0] = store_json_int(id_buf, id);
	return store_json_one(db, "endpoint_get",
	                      "SELECT " ENDPOINTS_JSON " FROM endpoints e WHERE e.id = $1::bigint",
	                      1, params, out);
}

int store_endpoints_create(struct db *db, const char *fields, json_t **out)
{
	const char *params[1];

	params[0] = fields;
	return store_json_must(
	    db, "endpoint_insert",
	    "INSERT INTO endpoints AS e (protocol, name, org_id, dept_id,"
	    " default_profile_id, profile_ids, settings, active)"
	    " SELECT r.protocol, r.name, r.org_id, r.dept_id, r.default_profile_id,"
	    " r.profile_ids, coalesce(r.settings, '{}'), coalesce(r.active, true)"
	    " FROM json_populate_record(NULL::endpoints, $1::json) r"
	    " RETURNING " ENDPOINTS_JSON,
	    1, params, out);
}

int store_endpoints_update(struct db *db, int64_t id, const char *fields, json_t **out)
{
	char id_buf[24];
	const char *params[2];

	params[0] = store_json_int(id_buf, id);
	params[1] = fields;
	return store_json_one(
	    db, "endpoint_update",
	    "UPDATE endpoints e SET (name, org_id, dept_id, default_profile_id, profile_ids,"
	    " settings, active) = (SELECT r.name, r.org_id, r.dept_id, r.default_profile_id,"
	    " r.profile_ids, r.settings, r.active FROM json_populate_record(e, $2::json) r)"
	    " WHERE e.id = $1::bigint RETURNING " ENDPOINTS_JSON,
	    2, params, out);
}
