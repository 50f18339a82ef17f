/*
 * admin_endpoints.c: /api/v1/endpoints, the ACME, SCEP and EST doors bound to
 * an organization or department and a set of profiles. (The doors that use
 * them read the same rows; this file only manages them.)
 *
 * Who may: an MRAO anything (an endpoint without organization is global); a
 * RAO endpoints of its organization; a DRAO endpoints of its department. A
 * RAO/DRAO may bind only profiles of its cert types. Every profile must be
 * usable by the endpoint's organization, and the default profile is always
 * one of profile_ids (added when missing).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "store_endpoints.h"
#include "store_json.h"
#include "store_orgs.h"
#include "store_profiles.h"
#include "types.h"

#define ENDPOINTS_MAX_PROFILES 64

static const char *const endpoints_create_fields[] = {
    "protocol",    "name",     "org_id", "dept_id", "default_profile_id",
    "profile_ids", "settings", "active", NULL};
static const char *const endpoints_create_required[] = {"protocol", "name", "default_profile_id",
                                                        NULL};
static const char *const endpoints_patch_fields[] = {
    "name", "org_id", "dept_id", "default_profile_id", "profile_ids", "settings", "active", NULL};

static bool endpoints_name_ok(const char *name)
{
	size_t i;

	for (i = 0; name[i] != '\0'; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return i >= 1 && i <= 64;
}

static bool endpoints_visible(const struct admin_identity *who, int64_t org_id, int64_t dept_id)
{
	switch (who->role) {
	case ADMIN_ROLE_MRAO:
		return true;
	case ADMIN_ROLE_RAO:
		return org_id != 0 && org_id == who->org_id;
	case ADMIN_ROLE_DRAO:
		return org_id == who->org_id && dept_id != 0 && dept_id == who->dept_id;
	}
	return false;
}

/* The fields every write checks alike: name, settings, active. Copies the
 * present ones into fields. 0, or -1 after answering. */
static int endpoints_simple_fields(struct http_response *resp, const json_t *body, json_t *fields)
{
	const char *name = NULL;
	const json_t *settings = json_object_get(body, "settings");
	bool active;
	int r;

	r = admin_field_string(resp, body, "name", 1, 64, false, &name);
	if (r < 0)
		return -1;
	if (r == 1) {
		if (!endpoints_name_ok(name)) {
			http_response_problem(
			    resp, 400, NULL, "invalid_field",
			    "field \"name\": 1 to 64 letters, digits, '_' or '-'");
			return -1;
		}
		if (json_object_set_new(fields, "name", json_string(name)) != 0)
			goto fail;
	}
	if (settings != NULL) {
		if (!json_is_object(settings)) {
			http_response_problem(resp, 400, NULL, "invalid_field",
			                      "field \"settings\": must be an object");
			return -1;
		}
		if (json_object_set_new(fields, "settings", json_deep_copy(settings)) != 0)
			goto fail;
	}
	r = admin_field_bool(resp, body, "active", &active);
	if (r < 0)
		return -1;
	if (r == 1 && json_object_set_new(fields, "active", json_boolean(active)) != 0)
		goto fail;
	return 0;
fail:
	http_response_problem(resp, 500, NULL, "internal_error", "internal error");
	return -1;
}

/* profile_ids from the body (present) or `current`, with default_id
 * included; a new array in *out. 0, or -1 after answering. */
static int endpoints_profile_ids(struct http_response *resp, const json_t *body,
                                 const json_t *current, int64_t default_id, json_t **out)
{
	const json_t *v = json_object_get(body, "profile_ids");
	json_t *item = NULL;
	bool has_default = false;
	size_t i, j;

	*out = NULL;
	if (v == NULL)
		v = current;
	if (v != NULL && (!json_is_array(v) || json_array_size(v) > ENDPOINTS_MAX_PROFILES)) {
		http_response_problem(
		    resp, 400, NULL, "invalid_field",
		    "field \"profile_ids\": must be an array of at most %d profile ids",
		    ENDPOINTS_MAX_PROFILES);
		return -1;
	}
	*out = json_array();
	if (*out == NULL)
		goto fail;
	json_array_foreach(v, i, item)
	{
		if (!json_is_integer(item) || json_integer_value(item) <= 0) {
			http_response_problem(
			    resp, 400, NULL, "invalid_field",
			    "field \"profile_ids\": must be an array of profile ids");
			goto err;
		}
		for (j = 0; j < i; j++) {
			if (json_integer_value(json_array_get(v, j)) == json_integer_value(item)) {
				http_response_problem(resp, 400, NULL, "invalid_field",
				                      "field \"profile_ids\": %lld is listed twice",
				                      (long long)json_integer_value(item));
				goto err;
			}
		}
		if (json_integer_value(item) == default_id)
			has_default = true;
		if (json_array_append_new(*out, json_integer(json_integer_value(item))) != 0)
			goto fail;
	}
	if (!has_default && json_array_append_new(*out, json_integer(default_id)) != 0)
		goto fail;
	return 0;
fail:
	http_response_problem(resp, 500, NULL, "internal_error", "internal error");
err:
	json_decref(*out);
	*out = NULL;
	return -1;
}

/* Checks where the endpoint will live and which profiles it binds:
 * org/department exist and belong together, the caller's scope covers them,
 * every profile exists, may be used by the organization, and is of the
 * caller's cert types. 0, or -1 after answering. */
static int endpoints_check(const struct admin_call *call, struct http_response *resp,
                           int64_t *org_id, int64_t dept_id, const json_t *profile_ids)
{
	json_t *obj = NULL, *profiles = NULL, *p = NULL, *id = NULL;
	char *text = NULL;
	size_t i, j;
	int r, rc = -1;

	if (dept_id != 0) {
		r = store_orgs_dept_get(call->ctx->db, dept_id, &obj);
		if (r < 0)
			goto dbfail;
		if (r == 0) {
			admin_not_found(resp, "department", dept_id);
			goto out;
		}
		if (*org_id != 0 && *org_id != admin_json_id(obj, "org_id")) {
			http_response_problem(
			    resp, 400, NULL, "invalid_field",
			    "field \"dept_id\": not a department of organization org_id");
			goto out;
		}
		*org_id = admin_json_id(obj, "org_id");
		json_decref(obj);
		obj = NULL;
	} else if (*org_id != 0) {
		r = store_orgs_get(call->ctx->db, *org_id, &obj);
		if (r < 0)
			goto dbfail;
		if (r == 0) {
			admin_not_found(resp, "organization", *org_id);
			goto out;
		}
		json_decref(obj);
		obj = NULL;
	}
	if (!endpoints_visible(call->who, *org_id, dept_id)) {
		if (dept_id != 0)
			admin_out_of_scope(call, resp, "department", dept_id);
		else if (*org_id != 0)
			admin_out_of_scope(call, resp, "organization", *org_id);
		else
			admin_forbidden(resp, "only a master administrator may create global "
			                      "endpoints");
		goto out;
	}

	text = store_json_text(profile_ids);
	if (text == NULL || store_profiles_by_ids(call->ctx->db, text, &profiles) != 0)
		goto dbfail;
	json_array_foreach(profile_ids, i, id)
	{
		const json_t *orgs = NULL;
		json_t *org = NULL;
		bool usable;
		size_t k;
		int type;

		p = NULL;
		for (j = 0; j < json_array_size(profiles); j++) {
			if (admin_json_id(json_array_get(profiles, j), "id") ==
			    json_integer_value(id)) {
				p = json_array_get(profiles, j);
				break;
			}
		}
		if (p == NULL) {
			admin_not_found(resp, "profile", json_integer_value(id));
			goto out;
		}
		orgs = json_object_get(p, "allowed_org_ids");
		usable = orgs == NULL || json_is_null(orgs);
		json_array_foreach(orgs, k, org)
		{
			if (json_integer_value(org) == *org_id)
				usable = true;
		}
		if (!usable) {
			if (call->who->role != ADMIN_ROLE_MRAO) {
				admin_not_found(resp, "profile", json_integer_value(id));
				goto out;
			}
			http_response_problem(
			    resp, 400, NULL, "invalid_field",
			    "field \"profile_ids\": profile %lld may not be used by this "
			    "organization",
			    (long long)json_integer_value(id));
			goto out;
		}
		type = cert_type_parse(json_string_value(json_object_get(p, "cert_type")));
		if (type <= 0 || !admin_scope_covers(call->who, *org_id, dept_id, (unsigned)type)) {
			admin_forbidden(resp, "profile %lld is of a cert type outside your role",
			                (long long)json_integer_value(id));
			goto out;
		}
	}
	rc = 0;
	goto out;
dbfail:
	admin_db_failure(call, resp);
out:
	free(text);
	json_decref(profiles);
	json_decref(obj);
	return rc;
}

static bool endpoints_visible_kind(const struct admin_identity *who, int64_t id, const json_t *obj)
{
	return endpoints_visible(who, admin_json_id(obj, "org_id"), admin_json_id(obj, "dept_id"));
}

static const struct admin_object_kind endpoints_kind = {"endpoint", store_endpoints_get,
                                                        endpoints_visible_kind};

/* Loads endpoint params[0] and requires the caller to see it. */
static json_t *endpoints_load(const struct admin_call *call, struct http_response *resp,
                              int64_t *id)
{
	return admin_load(call, resp, 0, &endpoints_kind, id);
}

static void endpoints_list(const struct admin_call *call, struct http_response *resp)
{
	struct store_page page;
	json_t *items = NULL;
	int64_t org_id = 0, dept_id = 0;

	if (admin_page_params(call, resp, &page.after, &page.limit) != 0)
		return;
	if (call->who->role != ADMIN_ROLE_MRAO)
		org_id = call->who->org_id;
	if (call->who->role == ADMIN_ROLE_DRAO)
		dept_id = call->who->dept_id;
	if (store_endpoints_list(call->ctx->db, org_id, dept_id, &page, &items) != 0) {
		admin_db_failure(call, resp);
		return;
	}
	admin_list_reply(resp, items, page.limit);
}

/* Completes `fields` with the placement and profiles. */
static int endpoints_set_placement(struct http_response *resp, json_t *fields, int64_t org_id,
                                   int64_t dept_id, int64_t default_id, json_t *profile_ids)
{
	if (json_object_set_new(fields, "org_id",
	                        org_id != 0 ? json_integer(org_id) : json_null()) != 0 ||
	    json_object_set_new(fields, "dept_id",
	                        dept_id != 0 ? json_integer(dept_id) : json_null()) != 0 ||
	    json_object_set_new(fields, "default_profile_id", json_integer(default_id)) != 0 ||
	    json_object_set(fields, "profile_ids", profile_ids) != 0) {
		http_response_problem(resp, 500, NULL, "internal_error", "internal error");
		return -1;
	}
	return 0;
}

static void endpoints_create(const struct admin_call *call, struct http_response *resp)
{
	json_t *body = NULL, *fields = NULL, *profile_ids = NULL, *endpoint = NULL;
	const char *protocol = NULL;
	char *text = NULL;
	int64_t org_id = 0, dept_id = 0, default_id = 0;
	int has_org, has_dept;

	body = admin_json_body(call, resp, endpoints_create_fields, endpoints_create_required);
	if (body == NULL)
		goto out;
	fields = json_object();
	if (fields == NULL) {
		http_response_problem(resp, 500, NULL, "internal_error", "internal error");
		goto out;
	}
	if (admin_field_string(resp, body, "protocol", 1, 8, false, &protocol) < 0)
		goto out;
	if (strcmp(protocol, "acme") != 0 && strcmp(protocol, "scep") != 0 &&
	    strcmp(protocol, "est") != 0) {
		http_response_problem(resp, 400, NULL, "invalid_field",
		                      "field \"protocol\": must be acme, scep or est");
		goto out;
	}
	if (json_object_set_new(fields, "protocol", json_string(protocol)) != 0 ||
	    endpoints_simple_fields(resp, body, fields) != 0)
		goto out;
	has_org = admin_field_id(resp, body, "org_id", true, &org_id);
	if (has_org < 0)
		goto out;
	has_dept = admin_field_id(resp, body, "dept_id", true, &dept_id);
	if (has_dept < 0 ||
	    admin_field_id(resp, body, "default_profile_id", false, &default_id) < 0)
		goto out;
	/* A RAO's endpoint defaults to its organization, a DRAO's to its
	 * department. */
	if (call->who->role != ADMIN_ROLE_MRAO && has_org == 0 && org_id == 0)
		org_id = call->who->org_id;
	if (call->who->role == ADMIN_ROLE_DRAO && has_dept == 0 && dept_id == 0)
		dept_id = call->who->dept_id;
	if (endpoints_profile_ids(resp, body, NULL, default_id, &profile_ids) != 0 ||
	    endpoints_check(call, resp, &org_id, dept_id, profile_ids) != 0 ||
	    endpoints_set_placement(resp, fields, org_id, dept_id, default_id, profile_ids) != 0)
		goto out;
	text = admin_begin_fields(call, resp, fields);
	if (text == NULL)
		goto out;
	if (store_endpoints_create(call->ctx->db, text, &endpoint) != 0) {
		admin_db_error(call, resp, "an endpoint with this protocol and name");
		goto out;
	}
	if (admin_commit_audited(call, resp, "endpoint.create", "endpoint",
	                         admin_json_id(endpoint, "id"), org_id, dept_id, fields) != 0)
		goto out;
	admin_json_reply(resp, 201, endpoint);
	endpoint = NULL;
out:
	free(text);
	json_decref(endpoint);
	json_decref(profile_ids);
	json_decref(fields);
	json_decref(body);
}

static void endpoints_get(const struct admin_call *call, struct http_response *resp)
{
	json_t *endpoint = NULL;
	int64_t id;

	endpoint = endpoints_load(call, resp, &id);
	if (endpoint != NULL)
		admin_json_reply(resp, 200, endpoint);
}

static void endpoints_patch(const struct admin_call *call, struct http_response *resp)
{
	json_t *current = NULL, *body = NULL, *fields = NULL, *profile_ids = NULL, *updated = NULL;
	char *text = NULL;
	int64_t id, org_id, dept_id, default_id, v;
	int r;

	current = endpoints_load(call, resp, &id);
	if (current == NULL)
		return;
	body = admin_json_body(call, resp, endpoints_patch_fields, NULL);
	if (body == NULL)
		goto out;
	fields = json_object();
	if (fields == NULL) {
		http_response_problem(resp, 500, NULL, "internal_error", "internal error");
		goto out;
	}
	if (endpoints_simple_fields(resp, body, fields) != 0)
		goto out;
	/* The result of the change is what must be in scope and coherent. */
	org_id = admin_json_id(current, "org_id");
	dept_id = admin_json_id(current, "dept_id");
	default_id = admin_json_id(current, "default_profile_id");
	r = admin_field_id(resp, body, "org_id", true, &v);
	if (r < 0)
		goto out;
	if (r == 1) {
		org_id = v;
		if (json_object_get(body, "dept_id") == NULL &&
		    org_id != admin_json_id(current, "org_id"))
			dept_id = 0; /* a department of the old organization cannot follow */
	}
	r = admin_field_id(resp, body, "dept_id", true, &v);
	if (r < 0)
		goto out;
	if (r == 1)
		dept_id = v;
	r = admin_field_id(resp, body, "default_profile_id", false, &v);
	if (r < 0)
		goto out;
	if (r == 1)
		default_id = v;
	if (endpoints_profile_ids(resp, body, json_object_get(current, "profile_ids"), default_id,
	                          &profile_ids) != 0 ||
	    endpoints_check(call, resp, &org_id, dept_id, profile_ids) != 0 ||
	    endpoints_set_placement(resp, fields, org_id, dept_id, default_id, profile_ids) != 0)
		goto out;
	text = admin_begin_fields(call, resp, fields);
	if (text == NULL)
		goto out;
	r = store_endpoints_update(call->ctx->db, id, text, &updated);
	if (r != 1) {
		admin_write_failed(call, resp, r, "endpoint", id,
		                   "an endpoint with this protocol and name");
		goto out;
	}
	if (admin_commit_audited(call, resp, "endpoint.update", "endpoint", id, org_id, dept_id,
	                         fields) != 0)
		goto out;
	admin_json_reply(resp, 200, updated);
	updated = NULL;
out:
	free(text);
	json_decref(updated);
	json_decref(profile_ids);
	json_decref(fields);
	json_decref(body);
	json_decref(current);
}

const struct admin_route admin_endpoint_routes[] = {
    {HTTP_GET, "/api/v1/endpoints", endpoints_list},
    {HTTP_POST, "/api/v1/endpoints", endpoints_create},
    {HTTP_GET, "/api/v1/endpoints/{id}", endpoints_get},
    {HTTP_PATCH, "/api/v1/endpoints/{id}", endpoints_patch},
    {.pattern = NULL},
};
