/*
 * admin_domains.c: /api/v1/domains, their DCV state, and delegations.
 *
 * Sight: an MRAO sees every domain; anyone else the domains with a
 * delegation to its organization (a DRAO: to the whole organization or to
 * its department) sharing one of its cert types (store_domains.h).
 *
 * Changes:
 *   POST /domains          MRAO creates it. A RAO creating one gets it
 *                          together with a delegation to its organization in
 *                          state 'requested' (body cert_types) that an MRAO
 *                          approves.
 *   PATCH, PUT .../dcv     MRAO (real DCV comes later).
 *   POST .../delegations   MRAO: approved at once. A RAO: to a department of
 *                          its organization, for a domain approved for the
 *                          organization and types within that delegation:
 *                          approved; to its organization itself: requested
 *                          (the domain need not be visible yet: that is how a
 *                          RAO asks for an existing domain).
 *   approve                MRAO; a RAO with approve_delegations, for a
 *                          delegation to one of its departments.
 *   DELETE                 MRAO; a RAO for its departments' delegations.
 *                          Deleting a delegation to a whole organization also
 *                          deletes those carved out of it for its
 *                          departments.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "names.h"
#include "store_domains.h"
#include "store_json.h"
#include "store_orgs.h"

static const char *const domains_create_fields[] = {"name", "description", "active", "cert_types",
                                                    NULL};
static const char *const domains_create_required[] = {"name", NULL};
static const char *const domains_patch_fields[] = {"description", "active", NULL};
static const char *const domains_dcv_fields[] = {"status", "method", "expires_at", NULL};
static const char *const domains_dcv_required[] = {"status", NULL};
static const char *const domains_deleg_fields[] = {"org_id", "dept_id", "cert_types", NULL};
static const char *const domains_deleg_required[] = {"org_id", "cert_types", NULL};

static const char *const domains_dcv_statuses[] = {"not_started", "submitted", "validated",
                                                   "expired", NULL};
static const char *const domains_dcv_methods[] = {"email", "http", "dns", "manual", NULL};

static bool domains_in_list(const char *const *list, const char *s)
{
	size_t i;

	for (i = 0; s != NULL && list[i] != NULL; i++) {
		if (strcmp(list[i], s) == 0)
			return true;
	}
	return false;
}

/* The same rule as DOMAINS_DELEG_VISIBLE in core/store_domains.c. */
static bool domains_deleg_visible(const struct admin_identity *who, const json_t *deleg)
{
	int64_t org_id = admin_json_id(deleg, "org_id");
	int64_t dept_id = admin_json_id(deleg, "dept_id");

	if (who->role == ADMIN_ROLE_MRAO)
		return true;
	if (org_id != who->org_id)
		return false;
	if (who->role == ADMIN_ROLE_DRAO && dept_id != 0 && dept_id != who->dept_id)
		return false;
	return (admin_vocab_bits(ADMIN_VOCAB_CERT_TYPE, json_object_get(deleg, "cert_types")) &
	        who->cert_types) != 0;
}

/* Loads domain params[0]. Returns it with *visible, or NULL after answering
 * (404 when absent; an invisible domain is returned, the caller decides). */
static json_t *domains_fetch(const struct admin_call *call, struct http_response *resp, int64_t *id,
                             bool *visible)
{
	struct store_scope scope;
	json_t *domain = NULL;
	int r;

	*id = admin_param_id(call->params[0]);
	if (*id <= 0) {
		admin_not_found(resp, "domain", 0);
		return NULL;
	}
	admin_store_scope(call->who, &scope);
	r = store_domains_get(call->ctx->db, *id, &scope, &domain, visible);
	if (r < 0) {
		admin_db_failure(call, resp);
		return NULL;
	}
	if (r == 0) {
		admin_not_found(resp, "domain", *id);
		return NULL;
	}
	return domain;
}

/* Loads domain params[0] and requires the caller to see it. */
static json_t *domains_load(const struct admin_call *call, struct http_response *resp, int64_t *id)
{
	json_t *domain = NULL;
	bool visible = false;

	domain = domains_fetch(call, resp, id, &visible);
	if (domain != NULL && !visible) {
		json_decref(domain);
		admin_out_of_scope(call, resp, "domain", *id);
		return NULL;
	}
	return domain;
}

static void domains_list(const struct admin_call *call, struct http_response *resp)
{
	struct store_scope scope;
	struct store_page page;
	json_t *items = NULL;

	if (admin_page_params(call, resp, &page.after, &page.limit) != 0)
		return;
	admin_store_scope(call->who, &scope);
	if (store_domains_list(call->ctx->db, &scope, &page, &items) != 0) {
		admin_db_failure(call, resp);
		return;
	}
	admin_list_reply(resp, items, page.limit);
}

static void domains_create(const struct admin_call *call, struct http_response *resp)
{
	json_t *body = NULL, *fields = NULL, *domain = NULL, *deleg = NULL, *types = NULL;
	const char *name = NULL, *description = NULL;
	char canonical[NAME_MAX_LEN];
	char *text = NULL, *types_text = NULL;
	unsigned cert_types = 0;
	bool active = true;
	int has_types;
	int64_t id, org_id = 0;

	if (call->who->role == ADMIN_ROLE_DRAO) {
		admin_forbidden(resp, "a DRAO may not create domains");
		return;
	}
	body = admin_json_body(call, resp, domains_create_fields, domains_create_required);
	if (body == NULL)
		goto out;
	if (admin_field_string(resp, body, "name", 1, 255, false, &name) < 0 ||
	    admin_field_string(resp, body, "description", 0, 1024, true, &description) < 0 ||
	    admin_field_bool(resp, body, "active", &active) < 0)
		goto out;
	/* A domain is a DNS name, or an IP address delegated for IP SANs
	 * (core/policy.c: an IP name needs a domain row equal to it). */
	if ((name_dns_canonical(name, canonical, sizeof(canonical)) != 0 ||
	    name_is_wildcard(canonical)) &&
	    name_ip_canonical(name, canonical, sizeof(canonical)) != 0) {
		http_response_problem(resp, 400, NULL, "invalid_field",
		    "field \"name\": not a DNS domain name (no wildcard, A-labels only) "
		    "or an IP address");
		goto out;
	}
	has_types =
	    admin_field_names(resp, body, "cert_types", ADMIN_VOCAB_CERT_TYPE, false, &cert_types);
	if (has_types < 0)
		goto out;
	if (call->who->role == ADMIN_ROLE_MRAO && has_types == 1) {
		http_response_problem(
		    resp, 400, NULL, "invalid_field",
		    "field \"cert_types\": only a RAO's domain request names cert types; "
		    "delegate with POST /api/v1/domains/{id}/delegations");
		goto out;
	}
	if (call->who->role == ADMIN_ROLE_RAO) {
		if (has_types == 0) {
			http_response_problem(
			    resp, 400, NULL, "missing_field",
			    "field \"cert_types\" is required when a RAO requests a domain");
			goto out;
		}
		if ((cert_types & ~call->who->cert_types) != 0) {
			admin_forbidden(resp, "cert_types must be a subset of your own");
			goto out;
		}
		org_id = call->who->org_id;
	}

	fields = json_pack("{s:s, s:s?, s:b}", "name", canonical, "description", description,
	                   "active", active);
	types = admin_vocab_json(ADMIN_VOCAB_CERT_TYPE, cert_types);
	text = fields != NULL ? store_json_text(fields) : NULL;
	types_text = types != NULL ? store_json_text(types) : NULL;
	if (text == NULL || types_text == NULL) {
		http_response_problem(resp, 500, NULL, "internal_error", "internal error");
		goto out;
	}
	if (admin_begin(call, resp) != 0)
		goto out;
	if (store_domains_create(call->ctx->db, text, call->who->admin_id, &domain) != 0) {
		admin_db_error(call, resp, "this domain");
		goto out;
	}
	id = admin_json_id(domain, "id");
	if (org_id != 0) {
		if (store_domains_deleg_create(call->ctx->db, id, org_id, 0, types_text,
		                               "requested", call->who->admin_id, &deleg) != 0) {
			admin_db_error(call, resp, "this delegation");
			goto out;
		}
		if (admin_audit(call, resp, "domain.create", "domain", id, org_id, 0, fields) != 0)
			goto out;
		if (admin_commit_audited(call, resp, "delegation.create", "delegation",
		                         admin_json_id(deleg, "id"), org_id, 0, deleg) != 0)
			goto out;
		if (json_object_set(domain, "delegation", deleg) != 0) {
			http_response_problem(resp, 500, NULL, "internal_error", "internal error");
			goto out;
		}
	} else if (admin_commit_audited(call, resp, "domain.create", "domain", id, 0, 0, fields) !=
	           0) {
		goto out;
	}
	admin_json_reply(resp, 201, domain);
	domain = NULL;
out:
	free(text);
	free(types_text);
	json_decref(types);
	json_decref(deleg);
	json_decref(domain);
	json_decref(fields);
	json_decref(body);
}

static void domains_get(const struct admin_call *call, struct http_response *resp)
{
	json_t *domain = NULL;
	int64_t id;

	domain = domains_load(call, resp, &id);
	if (domain != NULL)
		admin_json_reply(resp, 200, domain);
}

static void domains_patch(const struct admin_call *call, struct http_response *resp)
{
	json_t *domain = NULL, *body = NULL, *updated = NULL;
	const char *description = NULL;
	char *text = NULL;
	bool active;
	int64_t id;
	int r;

	domain = domains_load(call, resp, &id);
	if (domain == NULL)
		return;
	if (call->who->role != ADMIN_ROLE_MRAO) {
		admin_forbidden(resp, "only a master administrator may change a domain");
		goto out;
	}
	body = admin_json_body(call, resp, domains_patch_fields, NULL);
	if (body == NULL ||
	    admin_field_string(resp, body, "description", 0, 1024, true, &description) < 0 ||
	    admin_field_bool(resp, body, "active", &active) < 0)
		goto out;
	text = admin_begin_fields(call, resp, body);
	if (text == NULL)
		goto out;
	r = store_domains_update(call->ctx->db, id, text, &updated);
	if (r != 1) {
		admin_write_failed(call, resp, r, "domain", id, "domain");
		goto out;
	}
	if (admin_commit_audited(call, resp, "domain.update", "domain", id, 0, 0, body) != 0)
		goto out;
	admin_json_reply(resp, 200, updated);
	updated = NULL;
out:
	free(text);
	json_decref(updated);
	json_decref(body);
	json_decref(domain);
}

static void domains_dcv(const struct admin_call *call, struct http_response *resp)
{
	json_t *domain = NULL, *body = NULL, *updated = NULL;
	const char *status = NULL, *method = NULL;
	char expires_at[ADMIN_TIMESTAMP_LEN] = "";
	int64_t id;
	int r;

	domain = domains_load(call, resp, &id);
	if (domain == NULL)
		return;
	if (call->who->role != ADMIN_ROLE_MRAO) {
		admin_forbidden(resp, "only a master administrator may set the DCV state");
		goto out;
	}
	body = admin_json_body(call, resp, domains_dcv_fields, domains_dcv_required);
	if (body == NULL || admin_field_string(resp, body, "status", 1, 32, false, &status) < 0 ||
	    admin_field_string(resp, body, "method", 1, 32, true, &method) < 0 ||
	    admin_field_timestamp(resp, body, "expires_at", true, false, expires_at) < 0)
		goto out;
	if (!domains_in_list(domains_dcv_statuses, status)) {
		http_response_problem(
		    resp, 400, NULL, "invalid_field",
		    "field \"status\": must be not_started, submitted, validated or expired");
		goto out;
	}
	if (method != NULL && !domains_in_list(domains_dcv_methods, method)) {
		http_response_problem(resp, 400, NULL, "invalid_field",
		                      "field \"method\": must be email, http, dns or manual");
		goto out;
	}
	if (admin_begin(call, resp) != 0)
		goto out;
	r = store_domains_dcv(call->ctx->db, id, status, method,
	                      expires_at[0] != '\0' ? expires_at : NULL, &updated);
	if (r != 1) {
		admin_write_failed(call, resp, r, "domain", id, "domain");
		goto out;
	}
	if (admin_commit_audited(call, resp, "domain.dcv", "domain", id, 0, 0, body) != 0)
		goto out;
	admin_json_reply(resp, 200, updated);
	updated = NULL;
out:
	json_decref(updated);
	json_decref(body);
	json_decref(domain);
}

static void domains_deleg_list(const struct admin_call *call, struct http_response *resp)
{
	struct store_scope scope;
	struct store_page page;
	json_t *domain = NULL, *items = NULL;
	int64_t id;

	domain = domains_load(call, resp, &id);
	if (domain == NULL)
		return;
	json_decref(domain);
	if (admin_page_params(call, resp, &page.after, &page.limit) != 0)
		return;
	admin_store_scope(call->who, &scope);
	if (store_domains_deleg_list(call->ctx->db, id, &scope, &page, &items) != 0) {
		admin_db_failure(call, resp);
		return;
	}
	admin_list_reply(resp, items, page.limit);
}

/* Checks that org_id (and dept_id, when not 0) exist and that the
 * department belongs to the organization. 0, or -1 after answering. */
static int domains_check_target(const struct admin_call *call, struct http_response *resp,
                                int64_t org_id, int64_t dept_id)
{
	json_t *obj = NULL;
	int r;

	r = store_orgs_get(call->ctx->db, org_id, &obj);
	json_decref(obj);
	obj = NULL;
	if (r < 0) {
		admin_db_failure(call, resp);
		return -1;
	}
	if (r == 0) {
		admin_not_found(resp, "organization", org_id);
		return -1;
	}
	if (dept_id == 0)
		return 0;
	r = store_orgs_dept_get(call->ctx->db, dept_id, &obj);
	if (r < 0) {
		admin_db_failure(call, resp);
		return -1;
	}
	if (r == 0 || admin_json_id(obj, "org_id") != org_id) {
		json_decref(obj);
		admin_not_found(resp, "department", dept_id);
		return -1;
	}
	json_decref(obj);
	return 0;
}

/* A RAO delegating to one of its departments: the domain must be approved
 * for its organization for every requested type. 0, or -1 after answering. */
static int domains_rao_dept_allowed(const struct admin_call *call, struct http_response *resp,
                                    int64_t domain_id, bool visible, unsigned cert_types)
{
	json_t *parent = NULL;
	unsigned parent_types;
	int r;

	r = store_domains_deleg_find(call->ctx->db, domain_id, call->who->org_id, 0, &parent);
	if (r < 0) {
		admin_db_failure(call, resp);
		return -1;
	}
	if (!visible) {
		json_decref(parent);
		admin_out_of_scope(call, resp, "domain", domain_id);
		return -1;
	}
	if (r == 0 || strcmp(json_string_value(json_object_get(parent, "state")) != NULL
	                         ? json_string_value(json_object_get(parent, "state"))
	                         : "",
	                     "approved") != 0) {
		json_decref(parent);
		admin_forbidden(resp, "the domain is not approved for your organization");
		return -1;
	}
	parent_types =
	    admin_vocab_bits(ADMIN_VOCAB_CERT_TYPE, json_object_get(parent, "cert_types"));
	json_decref(parent);
	if ((cert_types & ~parent_types) != 0) {
		admin_forbidden(
		    resp,
		    "cert_types must be within your organization's delegation of this domain");
		return -1;
	}
	return 0;
}

static void domains_deleg_create(const struct admin_call *call, struct http_response *resp)
{
	json_t *domain = NULL, *body = NULL, *types = NULL, *deleg = NULL;
	char *types_text = NULL;
	const char *state = "approved";
	unsigned cert_types = 0;
	bool visible = false;
	int64_t domain_id, org_id = 0, dept_id = 0;

	domain = domains_fetch(call, resp, &domain_id, &visible);
	if (domain == NULL)
		return;
	if (call->who->role == ADMIN_ROLE_DRAO) {
		if (visible)
			admin_forbidden(resp, "a DRAO may not delegate domains");
		else
			admin_out_of_scope(call, resp, "domain", domain_id);
		goto out;
	}
	body = admin_json_body(call, resp, domains_deleg_fields, domains_deleg_required);
	if (body == NULL || admin_field_id(resp, body, "org_id", false, &org_id) < 0 ||
	    admin_field_id(resp, body, "dept_id", true, &dept_id) < 0 ||
	    admin_field_names(resp, body, "cert_types", ADMIN_VOCAB_CERT_TYPE, false, &cert_types) <
	        0)
		goto out;

	if (call->who->role == ADMIN_ROLE_RAO) {
		if (org_id != call->who->org_id) {
			admin_out_of_scope(call, resp, "organization", org_id);
			goto out;
		}
		if ((cert_types & ~call->who->cert_types) != 0) {
			admin_forbidden(resp, "cert_types must be a subset of your own");
			goto out;
		}
		if (dept_id == 0) {
			state = "requested";
		} else if (domains_rao_dept_allowed(call, resp, domain_id, visible, cert_types) !=
		           0) {
			goto out;
		}
	}
	if (domains_check_target(call, resp, org_id, dept_id) != 0)
		goto out;

	types = admin_vocab_json(ADMIN_VOCAB_CERT_TYPE, cert_types);
	types_text = types != NULL ? store_json_text(types) : NULL;
	if (types_text == NULL) {
		http_response_problem(resp, 500, NULL, "internal_error", "internal error");
		goto out;
	}
	if (admin_begin(call, resp) != 0)
		goto out;
	if (store_domains_deleg_create(call->ctx->db, domain_id, org_id, dept_id, types_text, state,
	                               call->who->admin_id, &deleg) != 0) {
		admin_db_error(call, resp,
		               "a delegation of this domain to this organization/department");
		goto out;
	}
	if (admin_commit_audited(call, resp, "delegation.create", "delegation",
	                         admin_json_id(deleg, "id"), org_id, dept_id, deleg) != 0)
		goto out;
	admin_json_reply(resp, 201, deleg);
	deleg = NULL;
out:
	free(types_text);
	json_decref(types);
	json_decref(deleg);
	json_decref(body);
	json_decref(domain);
}

static bool domains_deleg_visible_kind(const struct admin_identity *who, int64_t id,
                                       const json_t *obj)
{
	return domains_deleg_visible(who, obj);
}

static const struct admin_object_kind domains_deleg_kind = {"delegation", store_domains_deleg_get,
                                                            domains_deleg_visible_kind};

/* Loads delegation params[0] and requires the caller to see it. */
static json_t *domains_deleg_load(const struct admin_call *call, struct http_response *resp,
                                  int64_t *id)
{
	return admin_load(call, resp, 0, &domains_deleg_kind, id);
}

static void domains_deleg_get(const struct admin_call *call, struct http_response *resp)
{
	json_t *deleg = NULL;
	int64_t id;

	deleg = domains_deleg_load(call, resp, &id);
	if (deleg != NULL)
		admin_json_reply(resp, 200, deleg);
}

static void domains_deleg_approve(const struct admin_call *call, struct http_response *resp)
{
	json_t *deleg = NULL, *approved = NULL;
	int64_t id, dept_id;
	int r;

	deleg = domains_deleg_load(call, resp, &id);
	if (deleg == NULL)
		return;
	dept_id = admin_json_id(deleg, "dept_id");
	if (call->who->role != ADMIN_ROLE_MRAO &&
	    !(call->who->role == ADMIN_ROLE_RAO && dept_id != 0 &&
	      (call->who->privileges & ADMIN_PRIV_APPROVE_DELEGATIONS) != 0)) {
		admin_forbidden(resp, "your role may not approve this delegation");
		goto out;
	}
	if (strcmp(json_string_value(json_object_get(deleg, "state")) != NULL
	               ? json_string_value(json_object_get(deleg, "state"))
	               : "",
	           "requested") != 0) {
		http_response_problem(resp, 409, NULL, "conflict",
		                      "delegation %lld is not awaiting approval", (long long)id);
		goto out;
	}
	if (admin_begin(call, resp) != 0)
		goto out;
	r = store_domains_deleg_approve(call->ctx->db, id, call->who->admin_id, &approved);
	if (r < 0) {
		admin_db_failure(call, resp);
		goto out;
	}
	if (r == 0) {
		admin_rollback(call);
		http_response_problem(resp, 409, NULL, "conflict",
		                      "delegation %lld is not awaiting approval", (long long)id);
		goto out;
	}
	if (admin_commit_audited(call, resp, "delegation.approve", "delegation", id,
	                         admin_json_id(deleg, "org_id"), dept_id, NULL) != 0)
		goto out;
	admin_json_reply(resp, 200, approved);
	approved = NULL;
out:
	json_decref(approved);
	json_decref(deleg);
}

static void domains_deleg_delete(const struct admin_call *call, struct http_response *resp)
{
	json_t *deleg = NULL, *deleted = NULL;
	int64_t id, dept_id;
	int r;

	deleg = domains_deleg_load(call, resp, &id);
	if (deleg == NULL)
		return;
	dept_id = admin_json_id(deleg, "dept_id");
	if (call->who->role != ADMIN_ROLE_MRAO &&
	    !(call->who->role == ADMIN_ROLE_RAO && dept_id != 0)) {
		admin_forbidden(resp, "your role may not delete this delegation");
		goto out;
	}
	if (admin_begin(call, resp) != 0)
		goto out;
	r = store_domains_deleg_delete(call->ctx->db, id, &deleted);
	if (r != 1) {
		admin_write_failed(call, resp, r, "delegation", id, "delegation");
		goto out;
	}
	if (admin_commit_audited(call, resp, "delegation.delete", "delegation", id,
	                         admin_json_id(deleg, "org_id"), dept_id, deleted) != 0)
		goto out;
	http_response_set(resp, 204, NULL, NULL, 0);
out:
	json_decref(deleted);
	json_decref(deleg);
}

const struct admin_route admin_domain_routes[] = {
    {HTTP_GET, "/api/v1/domains", domains_list},
    {HTTP_POST, "/api/v1/domains", domains_create},
    {HTTP_GET, "/api/v1/domains/{id}", domains_get},
    {HTTP_PATCH, "/api/v1/domains/{id}", domains_patch},
    {HTTP_PUT, "/api/v1/domains/{id}/dcv", domains_dcv},
    {HTTP_GET, "/api/v1/domains/{id}/delegations", domains_deleg_list},
    {HTTP_POST, "/api/v1/domains/{id}/delegations", domains_deleg_create},
    {HTTP_GET, "/api/v1/delegations/{id}", domains_deleg_get},
    {HTTP_POST, "/api/v1/delegations/{id}/approve", domains_deleg_approve},
    {HTTP_DELETE, "/api/v1/delegations/{id}", domains_deleg_delete},
    {.pattern = NULL},
};
