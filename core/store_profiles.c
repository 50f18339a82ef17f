/*
 * store_profiles.c: the SQL of certificate profiles (store_profiles.h).
 */
#include <stddef.h>

#include "db.h"
#include "store_json.h"
#include "store_profiles.h"

#define PROFILES_JSON                                                                              \
	"json_build_object('id', p.id, 'name', p.name, 'description', p.description, "             \
	"'cert_type', p.cert_type, 'ca_backend', p.ca_backend, "                                   \
	"'terms_days', to_json(p.terms_days), 'key_types', to_json(p.key_types), "                 \
	"'key_usage', to_json(p.key_usage), 'ext_key_usage', to_json(p.ext_key_usage), "           \
	"'requires_approval', p.requires_approval, 'allow_wildcards', p.allow_wildcards, "         \
	"'require_dcv', p.require_dcv, 'require_org_validated', p.require_org_validated, "         \
	"'include_address', p.include_address, 'allowed_org_ids', to_json(p.allowed_org_ids), "    \
	"'active', p.active, 'created_at', " STORE_JSON_TS("p.created_at") ")"

/* The settable columns, in one order for INSERT and UPDATE. */
#define PROFILES_COLUMNS                                                                           \
	"name, description, cert_type, ca_backend, terms_days, key_types, key_usage, "             \
	"ext_key_usage, requires_approval, allow_wildcards, require_dcv, "                         \
	"require_org_validated, include_address, allowed_org_ids, active"

int store_profiles_list(struct db *db, int64_t org_id, const struct store_page *page,
                        json_t **items)
{
	char org_buf[24], after[24], limit[24];
	const char *params[3];

	store_json_page(page, after, limit);
	params[0] = store_json_int(org_buf, org_id);
	params[1] = after;
	params[2] = limit;
	return store_json_must(db, "profile_list",
	                       "SELECT coalesce(json_agg(j ORDER BY id), '[]') FROM ("
	                       " SELECT p.id, " PROFILES_JSON " AS j FROM profiles p"
	                       " WHERE ($1::bigint IS NULL OR p.allowed_org_ids IS NULL"
	                       "  OR $1::bigint = ANY (p.allowed_org_ids))"
	                       " AND p.id > $2::bigint ORDER BY p.id LIMIT $3::int) s",
	                       3, params, items);
}

int store_profiles_get(struct db *db, int64_t id, json_t **out)
{
	char id_buf[24];
	const char *params[1];

	params[0] = store_json_int(id_buf, id);
	return store_json_one(db, "profile_get",
	                      "SELECT " PROFILES_JSON " FROM profiles p WHERE p.id = $1::bigint", 1,
	                      params, out);
}

int store_profiles_by_ids(struct db *db, const char *ids, json_t **out)
{
	const char *params[1];

	params[0] = ids;
	return store_json_must(
	    db, "profile_by_ids",
	    "SELECT coalesce(json_agg(" PROFILES_JSON " ORDER BY p.id), '[]')"
	    " FROM profiles p WHERE p.id IN"
	    " (SELECT (v #>> '{}')::bigint FROM json_array_elements($1::json) v)",
	    1, params, out);
}

int store_profiles_create(struct db *db, const char *fields, json_t **out)
{
	const char *params[1];

	params[0] = fields;
	return store_json_must(
	    db, "profile_insert",
	    "INSERT INTO profiles AS p (" PROFILES_COLUMNS ")"
	    " SELECT r.name, r.description, r.cert_type, coalesce(r.ca_backend, 'private'),"
	    " r.terms_days, r.key_types, coalesce(r.key_usage, '{digitalSignature}'),"
	    " coalesce(r.ext_key_usage, '{}'), coalesce(r.requires_approval, false),"
	    " coalesce(r.allow_wildcards, false), coalesce(r.require_dcv, false),"
	    " coalesce(r.require_org_validated, false), coalesce(r.include_address, false),"
	    " r.allowed_org_ids, coalesce(r.active, true)"
	    " FROM json_populate_record(NULL::profiles, $1::json) r"
	    " RETURNING " PROFILES_JSON,
	    1, params, out);
}

int store_profiles_update(struct db *db, int64_t id, const char *fields, json_t **out)
{
	char id_buf[24];
	const char *params[2];

	params[0] = store_json_int(id_buf, id);
	params[1] = fields;
	return store_json_one(
	    db, "profile_update",
	    "UPDATE profiles p SET (" PROFILES_COLUMNS ") ="
	    " (SELECT r.name, r.description, r.cert_type, r.ca_backend, r.terms_days,"
	    " r.key_types, r.key_usage, r.ext_key_usage, r.requires_approval,"
	    " r.allow_wildcards, r.require_dcv, r.require_org_validated, r.include_address,"
	    " r.allowed_org_ids, r.active FROM json_populate_record(p, $2::json) r)"
	    " WHERE p.id = $1::bigint RETURNING " PROFILES_JSON,
	    2, params, out);
}
