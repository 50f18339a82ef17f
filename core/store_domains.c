/*
 * store_domains.c: the SQL of domains and delegations (store_domains.h).
 *
 * The scope filter is one SQL fragment (DOMAINS_DELEG_VISIBLE) used for the
 * domain list, a single domain's visibility and the delegation list, so that
 * "visible" means the same thing everywhere.
 */
#include <stddef.h>

#include "db.h"
#include "store_domains.h"
#include "store_json.h"

#define DOMAINS_JSON                                                                               \
	"json_build_object('id', d.id, 'name', d.name, 'description', d.description, "             \
	"'active', d.active, 'dcv_status', d.dcv_status, 'dcv_method', d.dcv_method, "             \
	"'dcv_validated_at', " STORE_JSON_TS(                                                      \
	    "d.dcv_validated_at") ", "                                                             \
	                          "'dcv_expires_at', " STORE_JSON_TS(                              \
	                              "d.dcv_expires_at") ", "                                     \
	                                                  "'created_by', d.created_by, "           \
	                                                  "'created_at', " STORE_JSON_TS(          \
	                                                      "d.created_at") ")"

#define DOMAINS_DELEG_JSON                                                                         \
	"json_build_object('id', g.id, 'domain_id', g.domain_id, "                                 \
	"'domain', (SELECT name FROM domains WHERE id = g.domain_id), 'org_id', g.org_id, "        \
	"'dept_id', g.dept_id, 'cert_types', to_json(g.cert_types), 'state', g.state, "            \
	"'requested_by', g.requested_by, 'approved_by', g.approved_by, "                           \
	"'created_at', " STORE_JSON_TS("g.created_at") ", "                                        \
	                                               "'approved_at', " STORE_JSON_TS(            \
	                                                   "g.approved_at") ")"

/* Is delegation g visible to the scope in parameters o (org), t (dept) and
 * c (cert types text[])? Each NULL means "no restriction". */
#define DOMAINS_DELEG_VISIBLE(o, t, c)                                                             \
	"((" o "::bigint IS NULL OR g.org_id = " o "::bigint)"                                     \
	" AND (" t "::bigint IS NULL OR g.dept_id IS NULL OR g.dept_id = " t "::bigint)"           \
	" AND (" c "::text[] IS NULL OR g.cert_types && " c "::text[]))"

/* Is domain d visible to that scope? */
#define DOMAINS_VISIBLE(o, t, c)                                                                   \
	"(" o "::bigint IS NULL OR EXISTS (SELECT 1 FROM delegations g"                            \
	" WHERE g.domain_id = d.id AND " DOMAINS_DELEG_VISIBLE(o, t, c) "))"

int store_domains_list(struct db *db, const struct store_scope *scope,
                       const struct store_page *page, json_t **items)
{
	char org_buf[24], dept_buf[24], types_buf[64], after[24], limit[24];
	const char *params[5];

	store_json_page(page, after, limit);
	params[0] = store_json_int(org_buf, scope->org_id);
	params[1] = store_json_int(dept_buf, scope->dept_id);
	params[2] = store_json_cert_types(types_buf, scope->cert_types);
	params[3] = after;
	params[4] = limit;
	return store_json_must(
	    db, "domain_list",
	    "SELECT coalesce(json_agg(j ORDER BY id), '[]') FROM ("
	    " SELECT d.id, " DOMAINS_JSON " AS j FROM domains d"
	    " WHERE " DOMAINS_VISIBLE("$1", "$2", "$3") " AND d.id > $4::bigint"
	                                                " ORDER BY d.id LIMIT $5::int) s",
	    5, params, items);
}

int store_domains_get(struct db *db, int64_t id, const struct store_scope *scope, json_t **out,
                      bool *visible)
{
	char id_buf[24], org_buf[24], dept_buf[24], types_buf[64];
	const char *params[4];
	json_t *row = NULL;
	int rc;

	*out = NULL;
	*visible = false;
	params[0] = store_json_int(id_buf, id);
	params[1] = store_json_int(org_buf, scope->org_id);
	params[2] = store_json_int(dept_buf, scope->dept_id);
	params[3] = store_json_cert_types(types_buf, scope->cert_types);
	rc = store_json_one(db, "domain_get",
	                    "SELECT json_build_object('domain', " DOMAINS_JSON
	                    ", 'visible', " DOMAINS_VISIBLE(
	                        "$2", "$3", "$4") ") FROM domains d WHERE d.id = $1::bigint",
	                    4, params, &row);
	if (rc != 1)
		return rc;
	*out = json_incref(json_object_get(row, "domain"));
	*visible = json_is_true(json_object_get(row, "visible"));
	json_decref(row);
	return *out != NULL ? 1 : -1;
}

int store_domains_create(struct db *db, const char *fields, int64_t created_by, json_t **out)
{
	char by_buf[24];
	const char *params[2];

	params[0] = fields;
	params[1] = store_json_int(by_buf, created_by);
	return store_json_must(db, "domain_insert",
	                       "INSERT INTO domains AS d (name, description, active, created_by)"
	                       " SELECT r.name, r.description, coalesce(r.active, true), $2::bigint"
	                       " FROM json_populate_record(NULL::domains, $1::json) r"
	                       " RETURNING " DOMAINS_JSON,
	                       2, params, out);
}

int store_domains_update(struct db *db, int64_t id, const char *fields, json_t **out)
{
	char id_buf[24];
	const char *params[2];

	params[0] = store_json_int(id_buf, id);
	params[1] = fields;
	return store_json_one(
	    db, "domain_update",
	    "UPDATE domains d SET (active, description) ="
	    " (SELECT r.active, r.description FROM json_populate_record(d, $2::json) r)"
	    " WHERE d.id = $1::bigint RETURNING " DOMAINS_JSON,
	    2, params, out);
}

int store_domains_dcv(struct db *db, int64_t id, const char *status, const char *method,
                      const char *expires_at, json_t **out)
{
	char id_buf[24];
	const char *params[4];

	params[0] = store_json_int(id_buf, id);
	params[1] = status;
	params[2] = method;
	params[3] = expires_at;
	return store_json_one(db, "domain_dcv",
	                      "UPDATE domains d SET dcv_status = $2, dcv_method = $3,"
	                      " dcv_expires_at = $4::timestamptz,"
	                      " dcv_validated_at = CASE $2 WHEN 'validated' THEN now()"
	                      "  WHEN 'not_started' THEN NULL ELSE d.dcv_validated_at END"
	                      " WHERE d.id = $1::bigint RETURNING " DOMAINS_JSON,
	                      4, params, out);
}

int store_domains_deleg_list(struct db *db, int64_t domain_id, const struct store_scope *scope,
                             const struct store_page *page, json_t **items)
{
	char domain_buf[24], org_buf[24], dept_buf[24], types_buf[64], after[24], limit[24];
	const char *params[6];

	store_json_page(page, after, limit);
	params[0] = store_json_int(domain_buf, domain_id);
	params[1] = store_json_int(org_buf, scope->org_id);
	params[2] = store_json_int(dept_buf, scope->dept_id);
	params[3] = store_json_cert_types(types_buf, scope->cert_types);
	params[4] = after;
	params[5] = limit;
	return store_json_must(
	    db, "delegation_list",
	    "SELECT coalesce(json_agg(j ORDER BY id), '[]') FROM ("
	    " SELECT g.id, " DOMAINS_DELEG_JSON " AS j FROM delegations g"
	    " WHERE g.domain_id = $1::bigint AND " DOMAINS_DELEG_VISIBLE(
	        "$2", "$3", "$4") " AND g.id > $5::bigint ORDER BY g.id LIMIT $6::int) s",
	    6, params, items);
}

int store_domains_deleg_get(struct db *db, int64_t id, json_t **out)
{
	char id_buf[24];
	const char *params[1];

	params[0] = store_json_int(id_buf, id);
	return store_json_one(db, "delegation_get",
	                      "SELECT " DOMAINS_DELEG_JSON
	                      " FROM delegations g WHERE g.id = $1::bigint",
	                      1, params, out);
}

int store_domains_deleg_find(struct db *db, int64_t domain_id, int64_t org_id, int64_t dept_id,
                             json_t **out)
{
	char domain_buf[24], org_buf[24], dept_buf[24];
	const char *params[3];

	params[0] = store_json_int(domain_buf, domain_id);
	params[1] = store_json_int(org_buf, org_id);
	params[2] = store_json_int(dept_buf, dept_id);
	return store_json_one(db, "delegation_find",
	                      "SELECT " DOMAINS_DELEG_JSON " FROM delegations g"
	                      " WHERE g.domain_id = $1::bigint AND g.org_id = $2::bigint"
	                      " AND g.dept_id IS NOT DISTINCT FROM $3::bigint",
	                      3, params, out);
}

int store_domains_deleg_create(struct db *db, int64_t domain_id, int64_t org_id, int64_t dept_id,
                               const char *cert_types, const char *state, int64_t requested_by,
                               json_t **out)
{
	char domain_buf[24], org_buf[24], dept_buf[24], by_buf[24];
	const char *params[6];

	params[0] = store_json_int(domain_buf, domain_id);
	params[1] = store_json_int(org_buf, org_id);
	params[2] = store_json_int(dept_buf, dept_id);
	params[3] = cert_types;
	params[4] = state;
	params[5] = store_json_int(by_buf, requested_by);
	return store_json_must(
	    db, "delegation_insert",
	    "INSERT INTO delegations AS g (domain_id, org_id, dept_id, cert_types, state,"
	    " requested_by, approved_by, approved_at)"
	    " VALUES ($1::bigint, $2::bigint, $3::bigint,"
	    " ARRAY(SELECT json_array_elements_text($4::json)), $5, $6::bigint,"
	    " CASE $5 WHEN 'approved' THEN $6::bigint END,"
	    " CASE $5 WHEN 'approved' THEN now() END)"
	    " RETURNING " DOMAINS_DELEG_JSON,
	    6, params, out);
}

int store_domains_deleg_approve(struct db *db, int64_t id, int64_t approver, json_t **out)
{
	char id_buf[24], by_buf[24];
	const char *params[2];

	params[0] = store_json_int(id_buf, id);
	params[1] = store_json_int(by_buf, approver);
	return store_json_one(
	    db, "delegation_approve",
	    "UPDATE delegations g SET state = 'approved', approved_by = $2::bigint,"
	    " approved_at = now() WHERE g.id = $1::bigint AND g.state = 'requested'"
	    " RETURNING " DOMAINS_DELEG_JSON,
	    2, params, out);
}

int store_domains_deleg_delete(struct db *db, int64_t id, json_t **out)
{
	char id_buf[24];
	const char *params[1];

	params[0] = store_json_int(id_buf, id);
	/* Both deletes see the same snapshot and touch disjoint rows (the
	 * cascade only takes department delegations, never the one named). */
	return store_json_one(
	    db, "delegation_delete",
	    "WITH g AS (DELETE FROM delegations WHERE id = $1::bigint RETURNING *),"
	    " c AS (DELETE FROM delegations x USING g"
	    "  WHERE g.dept_id IS NULL AND x.domain_id = g.domain_id AND x.org_id = g.org_id"
	    "  AND x.dept_id IS NOT NULL RETURNING x.id)"
	    " SELECT (" DOMAINS_DELEG_JSON "::jsonb || jsonb_build_object('cascaded',"
	    " (SELECT coalesce(jsonb_agg(id ORDER BY id), '[]') FROM c)))::json FROM g",
	    1, params, out);
}
