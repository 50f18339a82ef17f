/*
 * admin_acme.c: the admin routes of the ACME door - external account binding
 * (EAB) keys of an ACME endpoint, and the ACME accounts registered with them.
 *
 *   POST   /api/v1/endpoints/{id}/eab-keys        {org_id?, dept_id?} -> 201
 *          {"kid", "hmac_key" (base64url of 32 random bytes), ...}: the key
 *          is shown this once and never again
 *   GET    /api/v1/endpoints/{id}/eab-keys        (no secrets)
 *   DELETE /api/v1/endpoints/{id}/eab-keys/{kid}  revoke: no new account
 *          may bind with it (accounts already bound keep working)
 *   GET    /api/v1/acme-accounts?endpoint_id=     accounts in scope
 *
 * Scope, as for every admin route: the endpoint must be visible to the
 * caller (MRAO: any; RAO: its organization's; DRAO: its department's) and
 * the key's organization/department must be covered by the caller's role for
 * the certificate type of the endpoint's default profile; anything else is
 * 404 and audited. A key binds an account to exactly its org/department, so
 * it must fit the endpoint: same organization when the endpoint has one,
 * same department when the endpoint is a department's.
 *
 * The lead adds admin_acme_routes to admin_tables[] in admin.c.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "../acme/acme_jws.h"
#include "admin.h"
#include "db.h"
#include "log.h"
#include "store_acme.h"
#include "store_certs.h"
#include "store_endpoints.h"
#include "store_orgs.h"

#define ADMIN_ACME_HMAC_KEY_LEN 32
#define ADMIN_ACME_KID_BYTES 16

static const char *const admin_acme_eab_fields[] = { "org_id", "dept_id", NULL };

/* Endpoint placement visible to `who` (as admin_endpoints.c decides). */
static bool
admin_acme_endpoint_visible(const struct admin_identity *who, int64_t org_id, int64_t dept_id)
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

/* Loads ACME endpoint params[0] visible to the caller; NULL after
 * answering. *cert_type: the type of its default profile. */
static json_t *
admin_acme_endpoint(const struct admin_call *call, struct http_response *resp, int64_t *id,
    unsigned *cert_type)
{
	json_t *endpoint = NULL;
	const char *protocol = NULL;
	int r;

	*id = admin_param_id(call->params[0]);
	if (*id <= 0) {
		admin_not_found(resp, "endpoint", 0);
		return NULL;
	}
	r = store_endpoints_get(call->ctx->db, *id, &endpoint);
	if (r < 0) {
		admin_db_failure(call, resp);
		return NULL;
	}
	if (r == 0) {
		admin_not_found(resp, "endpoint", *id);
		return NULL;
	}
	if (!admin_acme_endpoint_visible(call->who, admin_json_id(endpoint, "org_id"),
		admin_json_id(endpoint, "dept_id"))) {
		json_decref(endpoint);
		admin_out_of_scope(call, resp, "endpoint", *id);
		return NULL;
	}
	protocol = json_string_value(json_object_get(endpoint, "protocol"));
	if (protocol == NULL || strcmp(protocol, "acme") != 0) {
		json_decref(endpoint);
		http_response_problem(resp, 400, NULL, "not_acme_endpoint",
		    "endpoint %" PRId64 " is not an ACME endpoint", *id);
		return NULL;
	}
	r = store_cert_profile_type(call->ctx->db, admin_json_id(endpoint, "default_profile_id"),
	    cert_type);
	if (r < 0) {
		json_decref(endpoint);
		admin_db_failure(call, resp);
		return NULL;
	}
	if (r == 0)
		*cert_type = 0;
	return endpoint;
}

static void
admin_acme_eab_create(const struct admin_call *call, struct http_response *resp)
{
	json_t *endpoint = NULL, *body = NULL, *dept = NULL, *key = NULL, *details = NULL;
	unsigned char secret[ADMIN_ACME_HMAC_KEY_LEN], kid_raw[ADMIN_ACME_KID_BYTES];
	char *kid = NULL, *secret_text = NULL;
	int64_t id, org_id = 0, dept_id = 0, ep_org, ep_dept;
	unsigned cert_type = 0;
	int has_org, has_dept, r;

	endpoint = admin_acme_endpoint(call, resp, &id, &cert_type);
	if (endpoint == NULL)
		return;
	body = admin_json_body(call, resp, admin_acme_eab_fields, NULL);
	if (body == NULL)
		goto out;
	has_org = admin_field_id(resp, body, "org_id", true, &org_id);
	if (has_org < 0)
		goto out;
	has_dept = admin_field_id(resp, body, "dept_id", true, &dept_id);
	if (has_dept < 0)
		goto out;

	/* Defaults: the endpoint's placement, then the caller's own. */
	ep_org = admin_json_id(endpoint, "org_id");
	ep_dept = admin_json_id(endpoint, "dept_id");
	if (has_org == 0)
		org_id = ep_org != 0 ? ep_org : call->who->org_id;
	if (has_dept == 0)
		dept_id = ep_dept != 0 ? ep_dept
		    : call->who->role == ADMIN_ROLE_DRAO ? call->who->dept_id : 0;
	if (org_id == 0) {
		http_response_problem(resp, 400, NULL, "invalid_field",
		    "field \"org_id\": required for an endpoint without organization");
		goto out;
	}
	if (dept_id != 0) {
		r = store_orgs_dept_get(call->ctx->db, dept_id, &dept);
		if (r < 0) {
			admin_db_failure(call, resp);
			goto out;
		}
		if (r == 0 || admin_json_id(dept, "org_id") != org_id) {
			if (r == 1 && !admin_sees_org(call->who, admin_json_id(dept, "org_id"))) {
				admin_out_of_scope(call, resp, "department", dept_id);
				goto out;
			}
			if (r == 0) {
				admin_not_found(resp, "department", dept_id);
				goto out;
			}
			http_response_problem(resp, 400, NULL, "invalid_field",
			    "field \"dept_id\": not a department of organization %" PRId64, org_id);
			goto out;
		}
	}
	if (!admin_scope_covers(call->who, org_id, dept_id, cert_type)) {
		if (dept_id != 0)
			admin_out_of_scope(call, resp, "department", dept_id);
		else
			admin_out_of_scope(call, resp, "organization", org_id);
		goto out;
	}
	if ((ep_org != 0 && org_id != ep_org) || (ep_dept != 0 && dept_id != ep_dept)) {
		http_response_problem(resp, 400, NULL, "invalid_field",
		    "the key's organization/department must be the endpoint's");
		goto out;
	}

	if (RAND_bytes(secret, sizeof(secret)) != 1 || RAND_bytes(kid_raw, sizeof(kid_raw)) != 1) {
		log_ssl_warnx("RAND_bytes(eab key)");
		http_response_problem(resp, 500, NULL, "internal_error", "internal error");
		goto out;
	}
	/* A leading '-' in base64url makes CLIs read the value as an option
	 * (certbot --eab-hmac-key -x... fails): a clear top bit keeps the first
	 * character in A..f. One bit of 256 is a fair price. */
	secret[0] &= 0x7f;
	kid_raw[0] &= 0x7f;
	kid = acme_b64url_encode(kid_raw, sizeof(kid_raw));
	secret_text = acme_b64url_encode(secret, sizeof(secret));
	if (kid == NULL || secret_text == NULL) {
		http_response_problem(resp, 500, NULL, "internal_error", "out of memory");
		goto out;
	}
	if (admin_begin(call, resp) != 0)
		goto out;
	if (store_acme_eab_create(call->ctx->db, id, kid, secret, sizeof(secret), org_id, dept_id,
		call->who->admin_id, &key) != 1) {
		admin_db_error(call, resp, "an EAB key with this kid");
		goto out;
	}
	/* the audit entry names the key id, never the key */
	details = json_pack("{s:I, s:s}", "endpoint_id", (json_int_t)id, "kid", kid);
	if (admin_commit_audited(call, resp, "acme.eab_key.create", "acme_eab_key",
		admin_json_id(key, "id"), org_id, dept_id, details) != 0)
		goto out;
	json_object_set_new(key, "hmac_key", json_string(secret_text));
	admin_json_reply(resp, 201, key);
	key = NULL;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	if (secret_text != NULL) {
		OPENSSL_cleanse(secret_text, strlen(secret_text));
		free(secret_text);
	}
	free(kid);
	json_decref(details);
	json_decref(key);
	json_decref(dept);
	json_decref(body);
	json_decref(endpoint);
}

static void
admin_acme_eab_list(const struct admin_call *call, struct http_response *resp)
{
	json_t *endpoint = NULL, *items = NULL;
	int64_t id, after = 0;
	unsigned cert_type = 0;
	int limit = 0;

	endpoint = admin_acme_endpoint(call, resp, &id, &cert_type);
	if (endpoint == NULL)
		return;
	if (admin_page_params(call, resp, &after, &limit) != 0)
		goto out;
	if (store_acme_eab_list(call->ctx->db, id,
		call->who->role == ADMIN_ROLE_MRAO ? 0 : call->who->org_id,
		call->who->role == ADMIN_ROLE_DRAO ? call->who->dept_id : 0, after, limit,
		&items) != 0) {
		admin_db_failure(call, resp);
		goto out;
	}
	admin_list_reply(resp, items, limit);
out:
	json_decref(endpoint);
}

static void
admin_acme_eab_revoke(const struct admin_call *call, struct http_response *resp)
{
	json_t *endpoint = NULL, *key = NULL, *revoked = NULL, *details = NULL;
	const char *kid = call->params[1];
	int64_t id, org_id, dept_id;
	unsigned cert_type = 0;
	int r;

	endpoint = admin_acme_endpoint(call, resp, &id, &cert_type);
	if (endpoint == NULL)
		return;
	if (kid == NULL || !acme_b64url_valid(kid, strlen(kid)) || strlen(kid) > 64) {
		admin_not_found(resp, "EAB key", 0);
		goto out;
	}
	r = store_acme_eab_get(call->ctx->db, id, kid, &key);
	if (r < 0) {
		admin_db_failure(call, resp);
		goto out;
	}
	if (r == 0) {
		admin_not_found(resp, "EAB key", 0);
		goto out;
	}
	org_id = admin_json_id(key, "org_id");
	dept_id = admin_json_id(key, "dept_id");
	if (!admin_scope_covers(call->who, org_id, dept_id, cert_type)) {
		admin_out_of_scope(call, resp, "acme_eab_key", admin_json_id(key, "id"));
		goto out;
	}
	if (admin_begin(call, resp) != 0)
		goto out;
	r = store_acme_eab_revoke(call->ctx->db, id, kid, &revoked);
	if (r != 1) {
		admin_write_failed(call, resp, r, "EAB key", 0, "EAB key");
		goto out;
	}
	details = json_pack("{s:I, s:s}", "endpoint_id", (json_int_t)id, "kid", kid);
	if (admin_commit_audited(call, resp, "acme.eab_key.revoke", "acme_eab_key",
		admin_json_id(key, "id"), org_id, dept_id, details) != 0)
		goto out;
	admin_json_reply(resp, 200, revoked);
	revoked = NULL;
out:
	json_decref(details);
	json_decref(revoked);
	json_decref(key);
	json_decref(endpoint);
}

static void
admin_acme_accounts(const struct admin_call *call, struct http_response *resp)
{
	json_t *endpoint = NULL, *items = NULL;
	char *text = NULL, *end = NULL;
	int64_t endpoint_id = 0, after = 0;
	int limit = 0;
	int r;

	text = http_request_query_param(call->req, "endpoint_id");
	if (text != NULL) {
		endpoint_id = strtoll(text, &end, 10);
		if (end == text || *end != '\0' || endpoint_id <= 0) {
			http_response_problem(resp, 400, NULL, "invalid_field",
			    "query parameter \"endpoint_id\" must be an endpoint id");
			goto out;
		}
		r = store_endpoints_get(call->ctx->db, endpoint_id, &endpoint);
		if (r < 0) {
			admin_db_failure(call, resp);
			goto out;
		}
		if (r == 0) {
			admin_not_found(resp, "endpoint", endpoint_id);
			goto out;
		}
		if (!admin_acme_endpoint_visible(call->who, admin_json_id(endpoint, "org_id"),
			admin_json_id(endpoint, "dept_id"))) {
			admin_out_of_scope(call, resp, "endpoint", endpoint_id);
			goto out;
		}
	}
	if (admin_page_params(call, resp, &after, &limit) != 0)
		goto out;
	if (store_acme_accounts_list(call->ctx->db, endpoint_id,
		call->who->role == ADMIN_ROLE_MRAO ? 0 : call->who->org_id,
		call->who->role == ADMIN_ROLE_DRAO ? call->who->dept_id : 0, after, limit,
		&items) != 0) {
		admin_db_failure(call, resp);
		goto out;
	}
	admin_list_reply(resp, items, limit);
out:
	free(text);
	json_decref(endpoint);
}

const struct admin_route admin_acme_routes[] = {
	{ HTTP_POST, "/api/v1/endpoints/{id}/eab-keys", admin_acme_eab_create },
	{ HTTP_GET, "/api/v1/endpoints/{id}/eab-keys", admin_acme_eab_list },
	{ HTTP_DELETE, "/api/v1/endpoints/{id}/eab-keys/{kid}", admin_acme_eab_revoke },
	{ HTTP_GET, "/api/v1/acme-accounts", admin_acme_accounts },
	{ .pattern = NULL },
};
