/*
 * admin_admins.c: /api/v1/admins and their bearer tokens.
 *
 * Sight (list, get): MRAO every administrator; a RAO those of its
 * organization; a DRAO those of its department. Management (create, change,
 * tokens of others):
 *   MRAO  anyone;
 *   RAO   DRAOs of its organization, and RAOs of it with manage_admins;
 *   DRAO  DRAOs of its department, with manage_admins.
 * A new or changed administrator's cert types and privileges must be a
 * subset of the caller's (MRAO: any), so nobody hands out more than it
 * holds. Every administrator may manage its own tokens.
 *
 * A token is shown once, in the 201 answer that creates it, and never logged
 * or audited.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "store_admins.h"
#include "store_json.h"
#include "store_orgs.h"
#include "tokens.h"

static const char *const admins_create_fields[] = {"login",   "email",      "role",       "org_id",
                                                   "dept_id", "cert_types", "privileges", NULL};
static const char *const admins_create_required[] = {"login", "role", NULL};
static const char *const admins_patch_fields[] = {"active", "email", "cert_types", "privileges",
                                                  NULL};
static const char *const admins_token_fields[] = {"description", "expires_at", NULL};

static bool admins_sees(const struct admin_identity *who, int64_t org_id, int64_t dept_id)
{
	switch (who->role) {
	case ADMIN_ROLE_MRAO:
		return true;
	case ADMIN_ROLE_RAO:
		return org_id != 0 && org_id == who->org_id;
	case ADMIN_ROLE_DRAO:
		return dept_id != 0 && dept_id == who->dept_id;
	}
	return false;
}

static bool admins_manages(const struct admin_identity *who, enum admin_role role, int64_t org_id,
                           int64_t dept_id)
{
	bool manage = (who->privileges & ADMIN_PRIV_MANAGE_ADMINS) != 0;

	switch (who->role) {
	case ADMIN_ROLE_MRAO:
		return true;
	case ADMIN_ROLE_RAO:
		return org_id == who->org_id &&
		       (role == ADMIN_ROLE_DRAO || (role == ADMIN_ROLE_RAO && manage));
	case ADMIN_ROLE_DRAO:
		return role == ADMIN_ROLE_DRAO && dept_id == who->dept_id && manage;
	}
	return false;
}

static bool admins_login_ok(const char *login)
{
	size_t i;

	for (i = 0; login[i] != '\0'; i++) {
		char c = login[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || c == '@' || c == '+'))
			return false;
	}
	return i > 0;
}

/* email: null, or a short address with one '@' and no spaces. */
static int admins_email(struct http_response *resp, const json_t *body, const char **email)
{
	const char *at = NULL;
	int r;

	r = admin_field_string(resp, body, "email", 3, 254, true, email);
	if (r <= 0 || *email == NULL)
		return r;
	at = strchr(*email, '@');
	if (at == NULL || at == *email || at[1] == '\0' || strchr(at + 1, '@') != NULL ||
	    strchr(*email, ' ') != NULL) {
		http_response_problem(resp, 400, NULL, "invalid_field",
		                      "field \"email\": not an e-mail address");
		return -1;
	}
	return 1;
}

/* The caller may not grant what it does not hold. 0, or -1 after 403. */
static int admins_subset(const struct admin_call *call, struct http_response *resp,
                         unsigned cert_types, unsigned privileges)
{
	if (call->who->role == ADMIN_ROLE_MRAO)
		return 0;
	if ((cert_types & ~call->who->cert_types) != 0) {
		admin_forbidden(resp, "cert_types must be a subset of your own");
		return -1;
	}
	if ((privileges & ~call->who->privileges) != 0) {
		admin_forbidden(resp, "privileges must be a subset of your own");
		return -1;
	}
	return 0;
}

static bool admins_visible_kind(const struct admin_identity *who, int64_t id, const json_t *obj)
{
	return admins_sees(who, admin_json_id(obj, "org_id"), admin_json_id(obj, "dept_id"));
}

static const struct admin_object_kind admins_kind = {"admin", store_admins_get,
                                                     admins_visible_kind};

/* Loads administrator params[0] and checks the caller sees it. */
static json_t *admins_load(const struct admin_call *call, struct http_response *resp, int64_t *id)
{
	return admin_load(call, resp, 0, &admins_kind, id);
}

static enum admin_role admins_role_of(const json_t *admin)
{
	int role = admin_role_parse(json_string_value(json_object_get(admin, "role")));

	return role < 0 ? ADMIN_ROLE_DRAO : (enum admin_role)role;
}

static void admins_list(const struct admin_call *call, struct http_response *resp)
{
	struct store_page page;
	json_t *items = NULL;
	int64_t org_id = 0, dept_id = 0;

	if (admin_page_params(call, resp, &page.after, &page.limit) != 0)
		return;
	if (call->who->role == ADMIN_ROLE_RAO)
		org_id = call->who->org_id;
	else if (call->who->role == ADMIN_ROLE_DRAO)
		dept_id = call->who->dept_id;
	if (store_admins_list(call->ctx->db, org_id, dept_id, &page, &items) != 0) {
		admin_db_failure(call, resp);
		return;
	}
	admin_list_reply(resp, items, page.limit);
}

/* Resolves and checks the organization / department of a new administrator.
 * 0 with *org_id / *dept_id final, or -1 after answering. */
static int admins_placement(const struct admin_call *call, struct http_response *resp,
                            const json_t *body, enum admin_role role, int64_t *org_id,
                            int64_t *dept_id)
{
	json_t *obj = NULL;
	int has_org, has_dept, r;

	has_org = admin_field_id(resp, body, "org_id", true, org_id);
	if (has_org < 0)
		return -1;
	has_dept = admin_field_id(resp, body, "dept_id", true, dept_id);
	if (has_dept < 0)
		return -1;
	if (role == ADMIN_ROLE_MRAO) {
		if (*org_id != 0 || *dept_id != 0) {
			http_response_problem(
			    resp, 400, NULL, "invalid_field",
			    "field \"%s\": a master administrator belongs to no organization",
			    *org_id != 0 ? "org_id" : "dept_id");
			return -1;
		}
		return 0;
	}
	if (role == ADMIN_ROLE_RAO && *dept_id != 0) {
		http_response_problem(
		    resp, 400, NULL, "invalid_field",
		    "field \"dept_id\": a RAO belongs to an organization, not a department");
		return -1;
	}
	if (role == ADMIN_ROLE_DRAO && *dept_id == 0) {
		http_response_problem(resp, 400, NULL, "missing_field",
		                      "field \"dept_id\" is required for a DRAO");
		return -1;
	}
	if (*dept_id != 0) {
		r = store_orgs_dept_get(call->ctx->db, *dept_id, &obj);
		if (r < 0) {
			admin_db_failure(call, resp);
			return -1;
		}
		if (r == 0) {
			admin_not_found(resp, "department", *dept_id);
			return -1;
		}
		if (*org_id != 0 && *org_id != admin_json_id(obj, "org_id")) {
			json_decref(obj);
			http_response_problem(
			    resp, 400, NULL, "invalid_field",
			    "field \"dept_id\": not a department of organization org_id");
			return -1;
		}
		*org_id = admin_json_id(obj, "org_id");
		json_decref(obj);
		if (!admins_sees(call->who, *org_id, *dept_id)) {
			admin_out_of_scope(call, resp, "department", *dept_id);
			return -1;
		}
		return 0;
	}
	if (*org_id == 0) {
		if (call->who->role == ADMIN_ROLE_MRAO) {
			http_response_problem(resp, 400, NULL, "missing_field",
			                      "field \"org_id\" is required for a RAO");
			return -1;
		}
		*org_id = call->who->org_id;
	}
	r = store_orgs_get(call->ctx->db, *org_id, &obj);
	json_decref(obj);
	if (r < 0) {
		admin_db_failure(call, resp);
		return -1;
	}
	if (r == 0) {
		admin_not_found(resp, "organization", *org_id);
		return -1;
	}
	if (!admin_sees_org(call->who, *org_id)) {
		admin_out_of_scope(call, resp, "organization", *org_id);
		return -1;
	}
	return 0;
}

static void admins_create(const struct admin_call *call, struct http_response *resp)
{
	json_t *body = NULL, *fields = NULL, *admin = NULL;
	const char *login = NULL, *email = NULL, *role_name = NULL;
	char *text = NULL;
	unsigned cert_types = 0, privileges = 0;
	int64_t org_id = 0, dept_id = 0, id;
	int role, has_types;

	body = admin_json_body(call, resp, admins_create_fields, admins_create_required);
	if (body == NULL)
		goto out;
	if (admin_field_string(resp, body, "login", 1, 128, false, &login) < 0)
		goto out;
	if (!admins_login_ok(login)) {
		http_response_problem(resp, 400, NULL, "invalid_field",
		                      "field \"login\": letters, digits and . _ - @ + only");
		goto out;
	}
	if (admins_email(resp, body, &email) < 0 ||
	    admin_field_string(resp, body, "role", 1, 8, false, &role_name) < 0)
		goto out;
	role = admin_role_parse(role_name);
	if (role < 0) {
		http_response_problem(resp, 400, NULL, "invalid_field",
		                      "field \"role\": must be mrao, rao or drao");
		goto out;
	}
	has_types = admin_field_names(resp, body, "cert_types", ADMIN_VOCAB_CERT_TYPE,
	                              role == ADMIN_ROLE_MRAO, &cert_types);
	if (has_types < 0 || admin_field_names(resp, body, "privileges", ADMIN_VOCAB_PRIVILEGE,
	                                       true, &privileges) < 0)
		goto out;
	if (has_types == 0 && role != ADMIN_ROLE_MRAO) {
		http_response_problem(resp, 400, NULL, "missing_field",
		                      "field \"cert_types\" is required for a RAO or DRAO");
		goto out;
	}
	if (admins_placement(call, resp, body, (enum admin_role)role, &org_id, &dept_id) != 0)
		goto out;
	if (!admins_manages(call->who, (enum admin_role)role, org_id, dept_id)) {
		admin_forbidden(resp, "your role may not create a%s %s here",
		                role == ADMIN_ROLE_MRAO ? "n" : "", role_name);
		goto out;
	}
	if (admins_subset(call, resp, cert_types, privileges) != 0)
		goto out;

	fields =
	    json_pack("{s:s, s:s?, s:s, s:o, s:o, s:o, s:o}", "login", login, "email", email,
	              "role", role_name, "org_id", org_id != 0 ? json_integer(org_id) : json_null(),
	              "dept_id", dept_id != 0 ? json_integer(dept_id) : json_null(), "cert_types",
	              admin_vocab_json(ADMIN_VOCAB_CERT_TYPE, cert_types), "privileges",
	              admin_vocab_json(ADMIN_VOCAB_PRIVILEGE, privileges));
	text = fields != NULL ? store_json_text(fields) : NULL;
	if (text == NULL) {
		http_response_problem(resp, 500, NULL, "internal_error", "internal error");
		goto out;
	}
	if (admin_begin(call, resp) != 0)
		goto out;
	if (store_admins_create(call->ctx->db, text, call->who->admin_id, &admin) != 0) {
		admin_db_error(call, resp, "an administrator with this login");
		goto out;
	}
	id = admin_json_id(admin, "id");
	if (admin_commit_audited(call, resp, "admin.create", "admin", id, org_id, dept_id,
	                         fields) != 0)
		goto out;
	admin_json_reply(resp, 201, admin);
	admin = NULL;
out:
	free(text);
	json_decref(admin);
	json_decref(fields);
	json_decref(body);
}

static void admins_get(const struct admin_call *call, struct http_response *resp)
{
	json_t *admin = NULL;
	int64_t id;

	admin = admins_load(call, resp, &id);
	if (admin != NULL)
		admin_json_reply(resp, 200, admin);
}

static void admins_patch(const struct admin_call *call, struct http_response *resp)
{
	json_t *target = NULL, *body = NULL, *fields = NULL, *updated = NULL;
	const char *email = NULL;
	char *text = NULL;
	enum admin_role role;
	unsigned cert_types = 0, privileges = 0;
	int has_email, has_types, has_privs, has_active;
	bool active = true;
	int64_t id, org_id, dept_id, others = 0;
	int r;

	target = admins_load(call, resp, &id);
	if (target == NULL)
		return;
	role = admins_role_of(target);
	org_id = admin_json_id(target, "org_id");
	dept_id = admin_json_id(target, "dept_id");
	body = admin_json_body(call, resp, admins_patch_fields, NULL);
	if (body == NULL)
		goto out;
	has_active = admin_field_bool(resp, body, "active", &active);
	if (has_active < 0)
		goto out;
	has_email = admins_email(resp, body, &email);
	if (has_email < 0)
		goto out;
	has_types = admin_field_names(resp, body, "cert_types", ADMIN_VOCAB_CERT_TYPE,
	                              role == ADMIN_ROLE_MRAO, &cert_types);
	if (has_types < 0)
		goto out;
	has_privs =
	    admin_field_names(resp, body, "privileges", ADMIN_VOCAB_PRIVILEGE, true, &privileges);
	if (has_privs < 0)
		goto out;
	if (!admins_manages(call->who, role, org_id, dept_id)) {
		admin_forbidden(resp, "your role may not change this administrator");
		goto out;
	}
	if (admins_subset(call, resp, cert_types, privileges) != 0)
		goto out;

	fields = json_object();
	if (fields == NULL)
		goto fail;
	if (has_active == 1 && json_object_set_new(fields, "active", json_boolean(active)) != 0)
		goto fail;
	if (has_email == 1 &&
	    json_object_set_new(fields, "email",
	                        email != NULL ? json_string(email) : json_null()) != 0)
		goto fail;
	if (has_types == 1 &&
	    json_object_set_new(fields, "cert_types",
	                        admin_vocab_json(ADMIN_VOCAB_CERT_TYPE, cert_types)) != 0)
		goto fail;
	if (has_privs == 1 &&
	    json_object_set_new(fields, "privileges",
	                        admin_vocab_json(ADMIN_VOCAB_PRIVILEGE, privileges)) != 0)
		goto fail;
	text = store_json_text(fields);
	if (text == NULL)
		goto fail;

	if (role == ADMIN_ROLE_MRAO && has_active == 1 && !active) {
		/* Nobody could ever manage anything again. */
		if (store_admins_other_mraos(call->ctx->db, id, &others) != 0) {
			admin_db_failure(call, resp);
			goto out;
		}
		if (others == 0) {
			http_response_problem(
			    resp, 409, NULL, "conflict",
			    "the last active master administrator cannot be deactivated");
			goto out;
		}
	}
	if (admin_begin(call, resp) != 0)
		goto out;
	r = store_admins_update(call->ctx->db, id, text, &updated);
	if (r != 1) {
		admin_write_failed(call, resp, r, "admin", id, "admin");
		goto out;
	}
	if (admin_commit_audited(call, resp, "admin.update", "admin", id, org_id, dept_id,
	                         fields) != 0)
		goto out;
	admin_json_reply(resp, 200, updated);
	updated = NULL;
	goto out;
fail:
	http_response_problem(resp, 500, NULL, "internal_error", "internal error");
out:
	free(text);
	json_decref(updated);
	json_decref(fields);
	json_decref(body);
	json_decref(target);
}

/* Loads administrator params[0] for a token route: the caller must see it
 * and be it or manage it. */
static json_t *admins_token_target(const struct admin_call *call, struct http_response *resp,
                                   int64_t *id)
{
	json_t *target = NULL;

	target = admins_load(call, resp, id);
	if (target == NULL)
		return NULL;
	if (*id != call->who->admin_id &&
	    !admins_manages(call->who, admins_role_of(target), admin_json_id(target, "org_id"),
	                    admin_json_id(target, "dept_id"))) {
		json_decref(target);
		admin_forbidden(resp, "your role may not manage this administrator's tokens");
		return NULL;
	}
	return target;
}

static void admins_token_create(const struct admin_call *call, struct http_response *resp)
{
	json_t *target = NULL, *body = NULL, *created = NULL, *details = NULL, *reply = NULL;
	const char *description = NULL;
	char expires_at[ADMIN_TIMESTAMP_LEN] = "";
	char token[TOKENS_BUF_SIZE] = "";
	int64_t id, token_id;
	int has_expiry;

	target = admins_token_target(call, resp, &id);
	if (target == NULL)
		return;
	if (call->req->body_len == 0)
		body = json_object(); /* every field is optional */
	else
		body = admin_json_body(call, resp, admins_token_fields, NULL);
	if (body == NULL)
		goto out;
	if (admin_field_string(resp, body, "description", 0, 256, true, &description) < 0)
		goto out;
	has_expiry = admin_field_timestamp(resp, body, "expires_at", true, true, expires_at);
	if (has_expiry < 0)
		goto out;
	if (!json_is_true(json_object_get(target, "active"))) {
		http_response_problem(resp, 409, NULL, "conflict", "the administrator is inactive");
		goto out;
	}
	if (admin_begin(call, resp) != 0)
		goto out;
	if (tokens_create(call->ctx->db, id, description, expires_at[0] != '\0' ? expires_at : NULL,
	                  token, &created) != 0) {
		admin_db_error(call, resp, "token");
		goto out;
	}
	token_id = admin_json_id(created, "id");
	details = json_pack("{s:I, s:s?}", "admin_id", (json_int_t)id, "description", description);
	if (admin_commit_audited(call, resp, "token.create", "admin_token", token_id,
	                         admin_json_id(target, "org_id"), admin_json_id(target, "dept_id"),
	                         details) != 0)
		goto out;
	reply = json_pack("{s:I, s:s, s:O}", "id", (json_int_t)token_id, "token", token,
	                  "expires_at", json_object_get(created, "expires_at"));
	(void)http_response_header(resp, "Cache-Control", "no-store");
	admin_json_reply(resp, 201, reply);
out:
	memset(token, 0, sizeof(token));
	json_decref(details);
	json_decref(created);
	json_decref(body);
	json_decref(target);
}

static void admins_token_list(const struct admin_call *call, struct http_response *resp)
{
	struct store_page page;
	json_t *target = NULL, *items = NULL;
	int64_t id;

	target = admins_token_target(call, resp, &id);
	if (target == NULL)
		return;
	json_decref(target);
	if (admin_page_params(call, resp, &page.after, &page.limit) != 0)
		return;
	if (tokens_list(call->ctx->db, id, &page, &items) != 0) {
		admin_db_failure(call, resp);
		return;
	}
	admin_list_reply(resp, items, page.limit);
}

static void admins_token_revoke(const struct admin_call *call, struct http_response *resp)
{
	json_t *target = NULL, *tok = NULL, *revoked = NULL, *details = NULL;
	int64_t id, token_id;
	int r;

	target = admins_token_target(call, resp, &id);
	if (target == NULL)
		return;
	token_id = admin_param_id(call->params[1]);
	if (token_id <= 0) {
		admin_not_found(resp, "admin_token", 0);
		goto out;
	}
	r = tokens_get(call->ctx->db, id, token_id, &tok);
	if (r < 0) {
		admin_db_failure(call, resp);
		goto out;
	}
	if (r == 0) {
		admin_not_found(resp, "admin_token", token_id);
		goto out;
	}
	if (!json_is_null(json_object_get(tok, "revoked_at"))) {
		http_response_problem(resp, 409, NULL, "already_revoked",
		                      "token %lld is already revoked", (long long)token_id);
		goto out;
	}
	if (admin_begin(call, resp) != 0)
		goto out;
	r = tokens_revoke(call->ctx->db, token_id, &revoked);
	if (r < 0) {
		admin_db_failure(call, resp);
		goto out;
	}
	if (r == 0) {
		/* revoked by someone else a moment ago */
		admin_rollback(call);
		http_response_problem(resp, 409, NULL, "already_revoked",
		                      "token %lld is already revoked", (long long)token_id);
		goto out;
	}
	details = json_pack("{s:I}", "admin_id", (json_int_t)id);
	if (admin_commit_audited(call, resp, "token.revoke", "admin_token", token_id,
	                         admin_json_id(target, "org_id"), admin_json_id(target, "dept_id"),
	                         details) != 0)
		goto out;
	http_response_set(resp, 204, NULL, NULL, 0);
out:
	json_decref(details);
	json_decref(revoked);
	json_decref(tok);
	json_decref(target);
}

const struct admin_route admin_admin_routes[] = {
    {HTTP_GET, "/api/v1/admins", admins_list},
    {HTTP_POST, "/api/v1/admins", admins_create},
    {HTTP_GET, "/api/v1/admins/{id}", admins_get},
    {HTTP_PATCH, "/api/v1/admins/{id}", admins_patch},
    {HTTP_POST, "/api/v1/admins/{id}/tokens", admins_token_create},
    {HTTP_GET, "/api/v1/admins/{id}/tokens", admins_token_list},
    {HTTP_DELETE, "/api/v1/admins/{id}/tokens/{token_id}", admins_token_revoke},
    {.pattern = NULL},
};
