/*
 * acme_account.c: ACME accounts - newAccount (RFC 8555 §7.3, with external
 * account binding §7.3.4), account read / update / deactivation (§7.3.2,
 * §7.3.6) and key rollover (§7.3.5).
 *
 * Tenancy: an account belongs to the organization/department of the EAB key
 * it was registered with (an administrator made that key for exactly that
 * scope); without EAB (only where the endpoint does not require it) it
 * belongs to the endpoint's organization/department, or to none - and then
 * every order is refused. EAB keys may be used for several accounts (one per
 * server, as certbot and lego fleets do); each use is recorded (used_at and
 * the account's eab_key_id) and a revoked key registers nothing more.
 *
 * Contacts: only "mailto:" with one address each (invalidContact /
 * unsupportedContact otherwise), at most ACME_MAX_CONTACTS.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "acme_door.h"
#include "db.h"
#include "log.h"
#include "names.h"
#include "store_acme.h"

#define ACME_MAX_CONTACTS 10
#define ACME_MAX_EAB_KEY 128

/* The RFC 8555 §7.1.2 account object. */
static json_t *
acme_account_json(const struct acme_request *r, const json_t *account)
{
	json_t *out = NULL;
	int64_t id = acme_json_id(account, "id");

	out = json_object();
	if (out == NULL)
		return NULL;
	json_object_set_new(out, "status",
	    json_string(acme_json_str(account, "status") != NULL ? acme_json_str(account, "status")
								  : "valid"));
	if (json_is_array(json_object_get(account, "contact")))
		json_object_set(out, "contact", json_object_get(account, "contact"));
	else
		json_object_set_new(out, "contact", json_array());
	json_object_set_new(out, "termsOfServiceAgreed",
	    json_boolean(json_is_true(json_object_get(account, "tos_agreed"))));
	json_object_set_new(out, "orders", acme_url_json(r, "acct/%" PRId64 "/orders", id));
	if (json_object_get(account, "jwk") != NULL)
		json_object_set(out, "key", json_object_get(account, "jwk"));
	if (acme_json_str(account, "created_at") != NULL)
		json_object_set_new(out, "createdAt",
		    json_string(acme_json_str(account, "created_at")));
	return out;
}

static void
acme_account_reply(struct acme_request *r, int status, const json_t *account)
{
	char location[2 * ACME_URL_MAX];

	acme_url(r, location, sizeof(location), "acct/%" PRId64, acme_json_id(account, "id"));
	acme_reply(r, status, acme_account_json(r, account), location);
}

/*
 * Checks "contact" (when present) and returns it canonical as JSON array
 * text in *out (newly allocated; NULL when absent). 0, or -1 after answering.
 */
static int
acme_contacts(struct acme_request *r, const json_t *payload, char **out)
{
	const json_t *list = json_object_get(payload, "contact");
	json_t *canon = NULL, *item = NULL;
	char addr[NAME_MAX_LEN], canonical[2 * NAME_MAX_LEN + 16];
	const char *text = NULL;
	size_t i;
	int rc = -1;

	*out = NULL;
	if (list == NULL)
		return 0;
	if (!json_is_array(list) || json_array_size(list) > ACME_MAX_CONTACTS) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
		    "\"contact\" must be an array of at most %d URLs", ACME_MAX_CONTACTS);
		return -1;
	}
	canon = json_array();
	if (canon == NULL)
		goto oom;
	json_array_foreach(list, i, item)
	{
		text = json_string_value(item);
		if (text == NULL) {
			acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
			    "\"contact\" must be an array of strings");
			goto out;
		}
		if (strncasecmp(text, "mailto:", 7) != 0) {
			acme_problem(r, 400, ACME_PROBLEM_UNSUPPORTED_CONTACT,
			    "only mailto: contacts are supported");
			goto out;
		}
		/* one plain address: no hfields ("?"), no list (",") */
		if (strlen(text + 7) >= sizeof(addr) || strpbrk(text + 7, "?,%<> ") != NULL ||
		    name_email_canonical(text + 7, addr, sizeof(addr)) != 0) {
			acme_problem(r, 400, ACME_PROBLEM_INVALID_CONTACT,
			    "contact %d is not a valid mailto: address", (int)i + 1);
			goto out;
		}
		/* local part kept as sent, domain canonical */
		if (snprintf(canonical, sizeof(canonical), "mailto:%s", addr) >=
		    (int)sizeof(canonical)) {
			acme_problem(r, 400, ACME_PROBLEM_INVALID_CONTACT,
			    "contact %d is too long", (int)i + 1);
			goto out;
		}
		if (json_array_append_new(canon, json_string(canonical)) != 0)
			goto oom;
	}
	*out = json_dumps(canon, JSON_COMPACT);
	if (*out == NULL)
		goto oom;
	rc = 0;
	goto out;
oom:
	acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
out:
	json_decref(canon);
	return rc;
}

/* Hex text -> bytes into out (at most max). The length, or -1. */
static int
acme_hex_bytes(const char *hex, unsigned char *out, size_t max)
{
	size_t n = hex != NULL ? strlen(hex) : 0, i;

	if (n == 0 || n % 2 != 0 || n / 2 > max)
		return -1;
	for (i = 0; i < n; i += 2) {
		int v = 0;

		for (size_t k = i; k < i + 2; k++) {
			char c = hex[k];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= c - '0';
			else if (c >= 'a' && c <= 'f')
				v |= c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				v |= c - 'A' + 10;
			else
				return -1;
		}
		out[i / 2] = (unsigned char)v;
	}
	return (int)(n / 2);
}

/*
 * The externalAccountBinding of a newAccount payload: parsed, its key looked
 * up at this endpoint (not revoked), its MAC and bound key verified. Sets
 * *eab_id, *org_id, *dept_id. 0, or -1 after answering.
 */
static int
acme_eab_check(struct acme_request *r, const json_t *binding, int64_t *eab_id, int64_t *org_id,
    int64_t *dept_id)
{
	struct acme_eab eab;
	const char *problem = NULL;
	char detail[256] = "", new_account[2 * ACME_URL_MAX];
	unsigned char key[ACME_MAX_EAB_KEY];
	json_t *row = NULL;
	int key_len = -1, rc = -1, found;

	memset(&eab, 0, sizeof(eab));
	acme_url(r, new_account, sizeof(new_account), "new-account");
	if (acme_eab_parse(binding, new_account, &eab, &problem, detail, sizeof(detail)) != 0) {
		acme_problem_jws(r, problem, detail);
		goto out;
	}
	found = store_acme_eab_lookup(r->door->db, r->ep.id, eab.kid, &row);
	if (found < 0) {
		acme_db_failure(r, "eab lookup");
		goto out;
	}
	if (found == 0 || json_is_true(json_object_get(row, "revoked"))) {
		acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED,
		    "the external account binding key is unknown or revoked");
		goto out;
	}
	key_len = acme_hex_bytes(acme_json_str(row, "hmac_key"), key, sizeof(key));
	if (key_len <= 0) {
		log_warnx("acme_eab_check: stored EAB key %" PRId64 " unusable",
		    acme_json_id(row, "id"));
		acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "internal error");
		goto out;
	}
	if (acme_eab_verify(&eab, key, (size_t)key_len, r->key, &problem, detail,
		sizeof(detail)) != 0) {
		acme_problem_jws(r, problem, detail);
		goto out;
	}
	*eab_id = acme_json_id(row, "id");
	*org_id = acme_json_id(row, "org_id");
	*dept_id = acme_json_id(row, "dept_id");
	rc = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	if (row != NULL) {
		/* the MAC key's hex is in there: wipe before freeing */
		const char *hex = acme_json_str(row, "hmac_key");

		if (hex != NULL)
			OPENSSL_cleanse((void *)hex, strlen(hex));
	}
	json_decref(row);
	acme_eab_free(&eab);
	return rc;
}

void
acme_new_account(struct acme_request *r)
{
	const json_t *payload = r->jws.payload_json;
	const json_t *binding = NULL;
	struct store_acme_account_new in;
	char thumb[ACME_JWK_THUMBPRINT_LEN];
	char *contact = NULL, *jwk = NULL;
	json_t *account = NULL;
	int64_t eab_id = 0, org_id = 0, dept_id = 0, existing = 0;
	bool tos;
	int created;

	if (!json_is_object(payload)) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED, "newAccount needs a JSON object payload");
		goto out;
	}
	if (r->account != NULL) {
		/* RFC 8555 §7.3.1: the key has an account: say where */
		const char *status = acme_json_str(r->account, "status");

		if (status == NULL || strcmp(status, "valid") != 0) {
			acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED, "the account is %s",
			    status != NULL ? status : "not valid");
			goto out;
		}
		acme_account_reply(r, 200, r->account);
		goto out;
	}
	if (json_is_true(json_object_get(payload, "onlyReturnExisting"))) {
		acme_problem(r, 400, ACME_PROBLEM_ACCOUNT_DOES_NOT_EXIST,
		    "no account exists for this key");
		goto out;
	}
	if (acme_contacts(r, payload, &contact) != 0)
		goto out;
	tos = json_is_true(json_object_get(payload, "termsOfServiceAgreed"));
	if (r->ep.terms_of_service[0] != '\0' && !tos) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
		    "the terms of service (%s) must be agreed to", r->ep.terms_of_service);
		goto out;
	}
	binding = json_object_get(payload, "externalAccountBinding");
	if (binding != NULL && !json_is_null(binding)) {
		if (acme_eab_check(r, binding, &eab_id, &org_id, &dept_id) != 0)
			goto out;
	} else if (r->ep.eab_required) {
		acme_problem(r, 400, ACME_PROBLEM_EXTERNAL_ACCOUNT_REQUIRED,
		    "this ACME endpoint requires external account binding");
		goto out;
	} else {
		org_id = r->ep.org_id;
		dept_id = r->ep.dept_id;
	}

	jwk = acme_jwk_to_string(r->key);
	if (jwk == NULL || acme_jwk_thumbprint(r->key, thumb) != 0) {
		acme_problem(r, 400, ACME_PROBLEM_BAD_PUBLIC_KEY, "unsupported account key");
		goto out;
	}
	memset(&in, 0, sizeof(in));
	in.endpoint_id = r->ep.id;
	in.thumbprint = thumb;
	in.jwk = jwk;
	in.contact = contact;
	in.tos_agreed = tos;
	in.org_id = org_id;
	in.dept_id = dept_id;
	in.eab_key_id = eab_id;
	created = store_acme_account_create(r->door->db, &in, &account);
	if (created < 0) {
		acme_db_failure(r, "account create");
		goto out;
	}
	if (created == 0) {
		/* a concurrent newAccount with the same key won */
		char location[2 * ACME_URL_MAX];
		json_t *body = NULL;

		if (store_acme_account_by_key(r->door->db, r->ep.id, thumb, &existing) != 1) {
			acme_db_failure(r, "account lookup");
			goto out;
		}
		acme_url(r, location, sizeof(location), "acct/%" PRId64, existing);
		body = json_pack("{s:s, s:o}", "status", "valid", "orders",
		    acme_url_json(r, "acct/%" PRId64 "/orders", existing));
		acme_reply(r, 200, body, location);
		goto out;
	}
	log_info("acme: account %" PRId64 " created at endpoint %s%s", acme_json_id(account, "id"),
	    r->ep.name, eab_id != 0 ? " with external account binding" : "");
	acme_account_reply(r, 201, account);
out:
	free(contact);
	free(jwk);
	json_decref(account);
}

/* The account id of the URL segment, which must be the signer's. */
static bool
acme_account_is_signer(const struct acme_request *r, const char *id)
{
	char mine[24];

	snprintf(mine, sizeof(mine), "%" PRId64, r->account_id);
	return strcmp(id, mine) == 0;
}

void
acme_account(struct acme_request *r, const char *id)
{
	const json_t *payload = r->jws.payload_json;
	const json_t *status = NULL, *tos = NULL;
	char *contact = NULL;
	json_t *account = NULL;
	bool deactivate = false;
	int changed;

	if (!acme_account_is_signer(r, id)) {
		/* never say whether another account exists */
		acme_problem(r, 404, ACME_PROBLEM_MALFORMED, "no such account");
		goto out;
	}
	if (r->jws.post_as_get || json_object_size(payload) == 0) {
		acme_account_reply(r, 200, r->account);
		goto out;
	}
	status = json_object_get(payload, "status");
	if (status != NULL) {
		const char *s = json_string_value(status);

		if (s == NULL || (strcmp(s, "deactivated") != 0 && strcmp(s, "valid") != 0)) {
			acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
			    "an account's status can only be set to \"deactivated\"");
			goto out;
		}
		deactivate = strcmp(s, "deactivated") == 0;
	}
	tos = json_object_get(payload, "termsOfServiceAgreed");
	if (tos != NULL && !json_is_boolean(tos)) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
		    "\"termsOfServiceAgreed\" must be a boolean");
		goto out;
	}
	if (acme_contacts(r, payload, &contact) != 0)
		goto out;
	changed = store_acme_account_update(r->door->db, r->account_id, contact, tos != NULL,
	    json_is_true(tos), deactivate, &account);
	if (changed < 0) {
		acme_db_failure(r, "account update");
		goto out;
	}
	if (changed == 0) {
		acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED, "the account is no longer valid");
		goto out;
	}
	if (deactivate)
		log_info("acme: account %" PRId64 " deactivated", r->account_id);
	acme_account_reply(r, 200, account);
out:
	free(contact);
	json_decref(account);
}

void
acme_key_change(struct acme_request *r)
{
	struct acme_jws inner;
	const char *problem = NULL, *account_url = NULL;
	char detail[256] = "", old_thumb[ACME_JWK_THUMBPRINT_LEN];
	char new_thumb[ACME_JWK_THUMBPRINT_LEN], claimed_thumb[ACME_JWK_THUMBPRINT_LEN];
	char location[2 * ACME_URL_MAX];
	EVP_PKEY *claimed_old = NULL;
	char *new_jwk = NULL;
	json_t *account = NULL;
	int64_t other = 0;
	int changed;

	memset(&inner, 0, sizeof(inner));
	if (!json_is_object(r->jws.payload_json)) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
		    "keyChange needs the inner JWS as its payload");
		goto out;
	}
	if (acme_jws_parse_inner(r->jws.payload_json, &inner, &problem, detail, sizeof(detail)) !=
	    0) {
		acme_problem_jws(r, problem, detail);
		goto out;
	}
	if (strcmp(inner.url, r->jws.url) != 0) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
		    "the inner JWS \"url\" differs from the outer one");
		goto out;
	}
	if (acme_jws_verify(&inner, inner.jwk, &problem, detail, sizeof(detail)) != 0) {
		acme_problem_jws(r, problem, detail);
		goto out;
	}
	account_url = acme_json_str(inner.payload_json, "account");
	if (account_url == NULL || strcmp(account_url, r->jws.kid) != 0) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
		    "the inner payload's \"account\" is not the signing account");
		goto out;
	}
	if (acme_jwk_parse(json_object_get(inner.payload_json, "oldKey"), &claimed_old, &problem,
		detail, sizeof(detail)) != 0) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
		    "the inner payload's \"oldKey\" is not a usable JWK");
		goto out;
	}
	if (acme_jwk_thumbprint(r->key, old_thumb) != 0 ||
	    acme_jwk_thumbprint(claimed_old, claimed_thumb) != 0 ||
	    acme_jwk_thumbprint(inner.jwk, new_thumb) != 0) {
		acme_problem(r, 400, ACME_PROBLEM_BAD_PUBLIC_KEY, "unsupported key");
		goto out;
	}
	if (strcmp(old_thumb, claimed_thumb) != 0) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
		    "\"oldKey\" is not the account's current key");
		goto out;
	}
	if (strcmp(old_thumb, new_thumb) == 0) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED, "the new key is the current key");
		goto out;
	}
	new_jwk = acme_jwk_to_string(inner.jwk);
	if (new_jwk == NULL) {
		acme_problem(r, 400, ACME_PROBLEM_BAD_PUBLIC_KEY, "unsupported key");
		goto out;
	}
	changed = store_acme_account_key_change(r->door->db, r->ep.id, r->account_id, old_thumb,
	    new_thumb, new_jwk, &account, &other);
	if (changed < 0 && strcmp(r->door->db->last_sqlstate, "23505") == 0) {
		if (other != 0) {
			acme_url(r, location, sizeof(location), "acct/%" PRId64, other);
			(void)http_response_header(r->resp, "Location", location);
		}
		acme_problem(r, 409, ACME_PROBLEM_MALFORMED,
		    "the new key is already the key of another account");
		goto out;
	}
	if (changed < 0) {
		acme_db_failure(r, "key change");
		goto out;
	}
	if (changed == 0) {
		acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED,
		    "the account changed meanwhile; retry");
		goto out;
	}
	log_info("acme: account %" PRId64 " rolled over its key", r->account_id);
	acme_account_reply(r, 200, account);
out:
	acme_jws_free(&inner);
	EVP_PKEY_free(claimed_old);
	free(new_jwk);
	json_decref(account);
}
