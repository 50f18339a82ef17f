/*
 * admin_orgs.c: /api/v1/organizations and /api/v1/departments.
 *
 * Who may:
 *   organizations  list/get: MRAO all; RAO and DRAO their own organization.
 *                  create: MRAO. update: MRAO any field; a RAO of that
 *                  organization its address fields only.
 *   departments    list/get: MRAO all; RAO those of its organization; DRAO
 *                  its own department. create/update: MRAO, or a RAO of the
 *                  organization.
 * Anything else outside the caller's sight is 404 and audited; an in-sight
 * action the role may not take is 403 role_not_permitted.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "store_json.h"
#include "store_orgs.h"

static const char *const orgs_create_fields[] = {
    "name",  "street1",     "street2", "street3",           "city",
    "state", "postal_code", "country", "validation_status", NULL};
static const char *const orgs_patch_fields[] = {
    "name",        "street1", "street2",           "street3", "city", "state",
    "postal_code", "country", "validation_status", "active",  NULL};
/* What a RAO may change of its own organization. */
static const char *const orgs_address_fields[] = {"street1", "street2",     "street3", "city",
                                                  "state",   "postal_code", "country", NULL};
static const char *const orgs_validation_statuses[] = {"not_validated", "pending", "validated",
                                                       "expired",       "failed",  NULL};

static const char *const orgs_dept_fields[] = {"name", "active", NULL};
static const char *const orgs_dept_required[] = {"name", NULL};
static const char *const orgs_required[] = {"name", NULL};

static bool orgs_in_list(const char *const *list, const char *s)
{
	size_t i;

	for (i = 0; list[i] != NULL; i++) {
		if (strcmp(list[i], s) == 0)
			return true;
	}
	return false;
}

/* Checks the types and values of the organization fields present in body.
 * 0, or -1 after answering 400. */
static int orgs_validate(struct http_response *resp, const json_t *body)
{
	const char *s = NULL;
	bool b;
	size_t i;

	if (admin_field_string(resp, body, "name", 1, 256, false, &s) < 0)
		return -1;
	for (i = 0; orgs_address_fields[i] != NULL; i++) {
		if (strcmp(orgs_address_fields[i], "country") == 0)
			continue;
		if (admin_field_string(resp, body, orgs_address_fields[i], 0, 256, true, &s) < 0)
			return -1;
	}
	switch (admin_field_string(resp, body, "country", 2, 2, true, &s)) {
	case -1:
		return -1;
	case 1:
		if (s != NULL && !(s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z')) {
			http_response_problem(
			    resp, 400, NULL, "invalid_field",
			    "field \"country\": must be two upper-case letters (ISO 3166-1)");
			return -1;
		}
		break;
	}
	switch (admin_field_string(resp, body, "validation_status", 1, 32, false, &s)) {
	case -1:
		return -1;
	case 1:
		if (!orgs_in_list(orgs_validation_statuses, s)) {
			http_response_problem(
			    resp, 400, NULL, "invalid_field",
			    "field \"validation_status\": must be one of not_validated, pending, "
			    "validated, expired, failed");
			return -1;
		}
		break;
	}
	if (admin_field_bool(resp, body, "active", &b) < 0)
		return -1;
	return 0;
}

static bool orgs_visible_kind(const struct admin_identity *who, int64_t id, const json_t *obj)
{
	return admin_sees_org(who, id);
}

static const struct admin_object_kind orgs_kind = {"organization", store_orgs_get,
                                                   orgs_visible_kind};

/* Loads the organization named by path parameter `param` and checks the
 * caller may see it. Returns it (new reference) or NULL after answering. */
static json_t *orgs_load(const struct admin_call *call, struct http_response *resp, int param,
                         int64_t *id)
{
	return admin_load(call, resp, param, &orgs_kind, id);
}

static void orgs_list(const struct admin_call *call, struct http_response *resp)
{
	struct store_page page;
	json_t *items = NULL;
	int64_t org_id = call->who->role == ADMIN_ROLE_MRAO ? 0 : call->who->org_id;

	if (admin_page_params(call, resp, &page.after, &page.limit) != 0)
		return;
	if (store_orgs_list(call->ctx->db, org_id, &page, &items) != 0) {
		admin_db_failure(call, resp);
		return;
	}
	admin_list_reply(resp, items, page.limit);
}

static void orgs_create(const struct admin_call *call, struct http_response *resp)
{
	json_t *body = NULL, *org = NULL;
	char *fields = NULL;
	int64_t id;

	if (call->who->role != ADMIN_ROLE_MRAO) {
		admin_forbidden(resp, "only a master administrator may create organizations");
		return;
	}
	body = admin_json_body(call, resp, orgs_create_fields, orgs_required);
	if (body == NULL || orgs_validate(resp, body) != 0)
		goto out;
	fields = admin_begin_fields(call, resp, body);
	if (fields == NULL)
		goto out;
	if (store_orgs_create(call->ctx->db, fields, &org) != 0) {
		admin_db_error(call, resp, "an organization with this name");
		goto out;
	}
	id = admin_json_id(org, "id");
	if (admin_commit_audited(call, resp, "organization.create", "organization", id, id, 0,
	                         body) != 0)
		goto out;
	admin_json_reply(resp, 201, org);
	org = NULL;
out:
	free(fields);
	json_decref(org);
	json_decref(body);
}

static void orgs_get(const struct admin_call *call, struct http_response *resp)
{
	json_t *org = NULL;
	int64_t id;

	org = orgs_load(call, resp, 0, &id);
	if (org != NULL)
		admin_json_reply(resp, 200, org);
}

static void orgs_patch(const struct admin_call *call, struct http_response *resp)
{
	json_t *org = NULL, *body = NULL, *updated = NULL, *value = NULL;
	const char *key = NULL;
	char *fields = NULL;
	int64_t id;
	int r;

	org = orgs_load(call, resp, 0, &id);
	if (org == NULL)
		return;
	body = admin_json_body(call, resp, orgs_patch_fields, NULL);
	if (body == NULL || orgs_validate(resp, body) != 0)
		goto out;
	switch (call->who->role) {
	case ADMIN_ROLE_MRAO:
		break;
	case ADMIN_ROLE_RAO:
		json_object_foreach(body, key, value)
		{
			if (!orgs_in_list(orgs_address_fields, key)) {
				admin_forbidden(
				    resp,
				    "a RAO may change only the address of its organization, not "
				    "\"%s\"",
				    key);
				goto out;
			}
		}
		break;
	default:
		admin_forbidden(resp, "a DRAO may not change its organization");
		goto out;
	}
	fields = admin_begin_fields(call, resp, body);
	if (fields == NULL)
		goto out;
	r = store_orgs_update(call->ctx->db, id, fields, &updated);
	if (r != 1) {
		admin_write_failed(call, resp, r, "organization", id,
		                   "an organization with this name");
		goto out;
	}
	if (admin_commit_audited(call, resp, "organization.update", "organization", id, id, 0,
	                         body) != 0)
		goto out;
	admin_json_reply(resp, 200, updated);
	updated = NULL;
out:
	free(fields);
	json_decref(updated);
	json_decref(body);
	json_decref(org);
}

static void orgs_dept_list(const struct admin_call *call, struct http_response *resp)
{
	struct store_page page;
	json_t *org = NULL, *items = NULL;
	int64_t org_id;

	org = orgs_load(call, resp, 0, &org_id);
	if (org == NULL)
		return;
	json_decref(org);
	if (admin_page_params(call, resp, &page.after, &page.limit) != 0)
		return;
	if (store_orgs_dept_list(call->ctx->db, org_id,
	                         call->who->role == ADMIN_ROLE_DRAO ? call->who->dept_id : 0, &page,
	                         &items) != 0) {
		admin_db_failure(call, resp);
		return;
	}
	admin_list_reply(resp, items, page.limit);
}

static int orgs_dept_validate(struct http_response *resp, const json_t *body)
{
	const char *s = NULL;
	bool b;

	if (admin_field_string(resp, body, "name", 1, 256, false, &s) < 0 ||
	    admin_field_bool(resp, body, "active", &b) < 0)
		return -1;
	return 0;
}

static void orgs_dept_create(const struct admin_call *call, struct http_response *resp)
{
	json_t *org = NULL, *body = NULL, *dept = NULL;
	char *fields = NULL;
	int64_t org_id;

	org = orgs_load(call, resp, 0, &org_id);
	if (org == NULL)
		return;
	if (call->who->role == ADMIN_ROLE_DRAO) {
		admin_forbidden(resp, "a DRAO may not create departments");
		goto out;
	}
	body = admin_json_body(call, resp, orgs_dept_fields, orgs_dept_required);
	if (body == NULL || orgs_dept_validate(resp, body) != 0)
		goto out;
	fields = admin_begin_fields(call, resp, body);
	if (fields == NULL)
		goto out;
	if (store_orgs_dept_create(call->ctx->db, org_id, fields, &dept) != 0) {
		admin_db_error(call, resp, "a department with this name in this organization");
		goto out;
	}
	if (admin_commit_audited(call, resp, "department.create", "department",
	                         admin_json_id(dept, "id"), org_id, admin_json_id(dept, "id"),
	                         body) != 0)
		goto out;
	admin_json_reply(resp, 201, dept);
	dept = NULL;
out:
	free(fields);
	json_decref(dept);
	json_decref(body);
	json_decref(org);
}

static bool orgs_dept_visible_kind(const struct admin_identity *who, int64_t id, const json_t *obj)
{
	return admin_scope_covers(who, admin_json_id(obj, "org_id"), id, 0);
}

static const struct admin_object_kind orgs_dept_kind = {"department", store_orgs_dept_get,
                                                        orgs_dept_visible_kind};

/* Loads department {id} and checks the caller may see it. */
static json_t *orgs_dept_load(const struct admin_call *call, struct http_response *resp,
                              int64_t *id)
{
	return admin_load(call, resp, 0, &orgs_dept_kind, id);
}

static void orgs_dept_get(const struct admin_call *call, struct http_response *resp)
{
	json_t *dept = NULL;
	int64_t id;

	dept = orgs_dept_load(call, resp, &id);
	if (dept != NULL)
		admin_json_reply(resp, 200, dept);
}

static void orgs_dept_patch(const struct admin_call *call, struct http_response *resp)
{
	json_t *dept = NULL, *body = NULL, *updated = NULL;
	char *fields = NULL;
	int64_t id;
	int r;

	dept = orgs_dept_load(call, resp, &id);
	if (dept == NULL)
		return;
	if (call->who->role == ADMIN_ROLE_DRAO) {
		admin_forbidden(resp, "a DRAO may not change its department");
		goto out;
	}
	body = admin_json_body(call, resp, orgs_dept_fields, NULL);
	if (body == NULL || orgs_dept_validate(resp, body) != 0)
		goto out;
	fields = admin_begin_fields(call, resp, body);
	if (fields == NULL)
		goto out;
	r = store_orgs_dept_update(call->ctx->db, id, fields, &updated);
	if (r != 1) {
		admin_write_failed(call, resp, r, "department", id,
		                   "a department with this name in this organization");
		goto out;
	}
	if (admin_commit_audited(call, resp, "department.update", "department", id,
	                         admin_json_id(dept, "org_id"), id, body) != 0)
		goto out;
	admin_json_reply(resp, 200, updated);
	updated = NULL;
out:
	free(fields);
	json_decref(updated);
	json_decref(body);
	json_decref(dept);
}

const struct admin_route admin_org_routes[] = {
    {HTTP_GET, "/api/v1/organizations", orgs_list},
    {HTTP_POST, "/api/v1/organizations", orgs_create},
    {HTTP_GET, "/api/v1/organizations/{id}", orgs_get},
    {HTTP_PATCH, "/api/v1/organizations/{id}", orgs_patch},
    {HTTP_GET, "/api/v1/organizations/{id}/departments", orgs_dept_list},
    {HTTP_POST, "/api/v1/organizations/{id}/departments", orgs_dept_create},
    {HTTP_GET, "/api/v1/departments/{id}", orgs_dept_get},
    {HTTP_PATCH, "/api/v1/departments/{id}", orgs_dept_patch},
    {.pattern = NULL},
};
