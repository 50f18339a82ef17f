/*
 * admin_certificates.c: the certificate routes of the admin API.
 *
 *   POST /api/v1/certificates                  enroll (CSR pasted by an admin);
 *                                              an Idempotency-Key header makes a
 *                                              retry return the first result
 *   GET  /api/v1/certificates                  list, filtered, in scope only
 *   GET  /api/v1/certificates/{id}             one certificate
 *   GET  /api/v1/certificates/{id}/pem         certificate + chain (PEM)
 *   POST /api/v1/certificates/{id}/approve     four eyes: not the requester
 *   POST /api/v1/certificates/{id}/decline     {reason}
 *   POST /api/v1/certificates/{id}/revoke      {reason: RFC 5280 name or number}
 *
 * This file only speaks HTTP and JSON: the decisions and every write (with
 * its audit entry) are core/ra.c's, the reads core/store_certs.c's. Scope is
 * checked here, before anything is shown or done: a certificate outside the
 * caller's organization / department / certificate types is 404, exactly as
 * if it did not exist, and the attempt is audited (admin_out_of_scope).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "ca.h"
#include "db.h"
#include "log.h"
#include "ra.h"
#include "store_certs.h"
#include "types.h"

/* Bounds on request fields (the body as a whole is bounded by the daemon). */
#define CERTS_MAX_TERM_DAYS 36500
#define CERTS_MAX_TEXT 1024
#define CERTS_MAX_IDEMPOTENCY_KEY 200

/* RFC 5280 CRLReason names, indexed by value (7 is not used). */
static const char *const certs_crl_reasons[] = {
    "unspecified",   "keyCompromise",        "cACompromise",    "affiliationChanged",
    "superseded",    "cessationOfOperation", "certificateHold", NULL,
    "removeFromCRL", "privilegeWithdrawn",   "aACompromise",
};

/* 400 invalid_field naming the field. */
static void certs_invalid(struct http_response *resp, const char *field, const char *what)
{
	http_response_problem(resp, 400, NULL, "invalid_field", "field \"%s\": must be %s", field,
	                      what);
}

/* Parses a positive decimal query value (no sign, no junk); -1 if malformed. */
static int64_t certs_query_int(const char *s)
{
	char *end = NULL;
	long long v;

	if (s == NULL || s[0] < '0' || s[0] > '9' || strlen(s) > 18)
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return -1;
	return (int64_t)v;
}

/* A strict RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static bool certs_rfc3339(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	size_t i;

	for (i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9')
		                    : (s[i] != shape[i] && !(shape[i] == 'T' && s[i] == 't')))
			return false;
	}
	s += i;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0')
		return true;
	return (s[0] == '+' || s[0] == '-') && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
	       s[2] <= '9' && s[3] == ':' && s[4] >= '0' && s[4] <= '9' && s[5] >= '0' &&
	       s[5] <= '9' && s[6] == '\0';
}

/* An Idempotency-Key header value: 1..CERTS_MAX_IDEMPOTENCY_KEY visible
 * ASCII characters. */
static bool certs_idempotency_key_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CERTS_MAX_IDEMPOTENCY_KEY)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* Maps an RA failure to its HTTP answer. */
static void certs_ra_failure(const struct admin_call *call, struct http_response *resp,
                             enum ra_status st, const char *detail)
{
	switch (st) {
	case RA_BAD_CSR:
		http_response_problem(resp, 400, NULL, "bad_csr", "the CSR is not usable: %s",
		                      detail != NULL ? detail : "not a PKCS#10 request");
		break;
	case RA_NOT_FOUND:
		/* detail: "organization 12 not found" (admin_not_found's words) */
		http_response_problem(
		    resp, 404, NULL, "not_found", "%s",
		    detail != NULL && detail[0] != '\0' ? detail : "certificate not found");
		break;
	case RA_CONFLICT:
		http_response_problem(resp, 409, NULL, "conflict",
		                      "the certificate is not in a state that allows this");
		break;
	case RA_UNAVAILABLE:
		http_response_unavailable(resp, 5);
		break;
	default:
		log_warnx("ra(%s %s): internal failure", call->req->method_name, call->req->path);
		http_response_problem(resp, 500, NULL, "internal_error",
		                      "the request could not be completed");
		break;
	}
}

/* Appends `s` as a JSON string literal (quotes included) at out + *used;
 * out has room for 6 bytes per input byte + 3. */
static void certs_json_string(char *out, size_t *used, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = *used;

	out[n++] = '"';
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else if (ch < 0x20) {
			memcpy(out + n, "\\u00", 4);
			out[n + 4] = hex[ch >> 4];
			out[n + 5] = hex[ch & 15];
			n += 6;
		} else {
			out[n++] = (char)ch;
		}
	}
	out[n++] = '"';
	*used = n;
}

/*
 * Replies with the certificate JSON of an RA result, plus "pem" and
 * "chain_pem" when issued. The object text comes from PostgreSQL
 * (STORE_CERT_JSON) and is spliced rather than parsed and re-serialised:
 * this is the answer of every issuance, the hot path.
 */
static void certs_reply_result(struct http_response *resp, int status,
                               const struct enroll_result *r)
{
	const char *obj = r->cert_json;
	size_t obj_len = obj != NULL ? strlen(obj) : 0, cap, used;
	char *body = NULL;

	while (obj_len > 0 && obj[obj_len - 1] != '}')
		obj_len--;
	if (obj_len < 2 || obj[0] != '{') {
		log_warnx("certs_reply_result: no certificate JSON");
		http_response_problem(resp, 500, NULL, "internal_error",
		                      "the certificate could not be shown");
		return;
	}
	cap = obj_len + 32 + 6 * (r->cert_pem != NULL ? strlen(r->cert_pem) : 0) +
	      6 * (r->chain_pem != NULL ? strlen(r->chain_pem) : 0);
	body = malloc(cap);
	if (body == NULL) {
		http_response_problem(resp, 500, NULL, "internal_error", "out of memory");
		return;
	}
	used = obj_len - 1; /* without the closing brace */
	memcpy(body, obj, used);
	if (r->cert_pem != NULL) {
		memcpy(body + used, ",\"pem\":", 7);
		used += 7;
		certs_json_string(body, &used, r->cert_pem);
	}
	if (r->chain_pem != NULL) {
		memcpy(body + used, ",\"chain_pem\":", 13);
		used += 13;
		certs_json_string(body, &used, r->chain_pem);
	}
	body[used++] = '}';
	if (status == 201 && r->cert_id > 0) {
		char loc[64];
		snprintf(loc, sizeof(loc), "/api/v1/certificates/%lld", (long long)r->cert_id);
		(void)http_response_header(resp, "Location", loc);
	}
	http_response_take(resp, status, "application/json", (unsigned char *)body, used);
}

/* The scope check of a new request, called by ra_enroll_scoped() with the
 * certificate type of the requested profile (which comes with the facts
 * the RA loads anyway, saving a round trip of its own). Out of scope: the
 * answer is 404 and the attempt is audited, as on every route. */
struct certs_scope {
	const struct admin_call *call;
	struct http_response *resp;
	int64_t org_id, dept_id;
	bool refused; /* the response has been written */
};

static bool certs_scope_check(void *arg, unsigned cert_type, bool *auto_approve)
{
	struct certs_scope *sc = arg;
	const struct admin_identity *who = sc->call->who;

	if (!admin_scope_covers(who, sc->org_id, sc->dept_id, cert_type)) {
		admin_out_of_scope(sc->call, sc->resp, "organization", sc->org_id);
		sc->refused = true;
		return false;
	}
	*auto_approve =
	    who->role == ADMIN_ROLE_MRAO ||
	    ((who->privileges & ADMIN_PRIV_AUTO_APPROVE_SSL) != 0 && cert_type == CERT_TYPE_SSL);
	return true;
}

/* POST /api/v1/certificates */
static void certs_create(const struct admin_call *call, struct http_response *resp)
{
	static const char *const allowed[] = {"org_id", "dept_id", "profile_id", "term_days",
	                                      "csr",    "comment", NULL};
	static const char *const required[] = {"org_id", "profile_id", "term_days", "csr", NULL};
	const struct admin_identity *who = call->who;
	struct door_context *ctx = call->ctx;
	struct enroll_request er;
	struct enroll_result result;
	struct certs_scope scope;
	json_t *body = NULL, *stored = NULL;
	const json_t *v;
	const char *idem = http_request_header(call->req, "Idempotency-Key");
	char idem_key[CERTS_MAX_IDEMPOTENCY_KEY + 32];
	int64_t org_id, dept_id, profile_id;
	const char *csr, *comment = NULL;
	enum ra_status st;

	memset(&result, 0, sizeof(result));
	body = admin_json_body(call, resp, allowed, required);
	if (body == NULL)
		return;
	if (admin_field_id(resp, body, "org_id", false, &org_id) < 0 ||
	    admin_field_id(resp, body, "dept_id", true, &dept_id) < 0 ||
	    admin_field_id(resp, body, "profile_id", false, &profile_id) < 0 ||
	    admin_field_string(resp, body, "comment", 0, CERTS_MAX_TEXT, true, &comment) < 0)
		goto out;
	v = json_object_get(body, "term_days");
	if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
	    json_integer_value(v) > CERTS_MAX_TERM_DAYS) {
		certs_invalid(resp, "term_days", "a positive number of days (at most 36500)");
		goto out;
	}
	v = json_object_get(body, "csr");
	csr = json_string_value(v);
	if (csr == NULL || json_string_length(v) == 0) {
		certs_invalid(resp, "csr", "a PEM or base64 DER PKCS#10 request (a string)");
		goto out;
	}
	if (idem != NULL && !certs_idempotency_key_ok(idem)) {
		http_response_problem(
		    resp, 400, NULL, "invalid_field",
		    "header Idempotency-Key must be 1 to %d visible ASCII characters",
		    CERTS_MAX_IDEMPOTENCY_KEY);
		goto out;
	}

	if (db_ensure(ctx->db) != 0) {
		http_response_unavailable(resp, 5);
		goto out;
	}

	memset(&er, 0, sizeof(er));
	er.protocol = "admin";
	er.want_cert_json = true; /* the reply shows the stored row */
	er.requester = who->actor;
	er.requester_admin_id = who->admin_id;
	er.org_id = org_id;
	er.dept_id = dept_id;
	er.profile_id = profile_id;
	er.term_days = (int)json_integer_value(json_object_get(body, "term_days"));
	er.csr = csr;
	er.csr_len = json_string_length(json_object_get(body, "csr"));
	er.requester_auto_approve = false; /* decided by certs_scope_check() */
	er.comment = comment;
	if (idem != NULL) {
		/* one namespace per administrator: a key never reaches another
		 * administrator's request */
		snprintf(idem_key, sizeof(idem_key), "admin:%lld:%s", (long long)who->admin_id,
		         idem);
		er.idempotency_key = idem_key;
	}

	/* The profile must exist, then the scope is checked (certs_scope_check),
	 * then the CSR and the rest: the order the checks always had. */
	memset(&scope, 0, sizeof(scope));
	scope.call = call;
	scope.resp = resp;
	scope.org_id = org_id;
	scope.dept_id = dept_id;
	st = ra_enroll_scoped(ctx->db, ctx->ca, ctx->cfg, &er, certs_scope_check, &scope, &result);
	if (scope.refused)
		goto out; /* 404, audited */
	if (st != RA_OK) {
		certs_ra_failure(call, resp, st, result.detail);
		goto out;
	}
	if (idem != NULL && result.cert_json != NULL) {
		/* a replay must be of the same request, not a reused key */
		stored = json_loads(result.cert_json, 0, NULL);
		if (stored == NULL || admin_json_id(stored, "org_id") != org_id ||
		    admin_json_id(stored, "dept_id") != dept_id ||
		    admin_json_id(stored, "profile_id") != profile_id) {
			http_response_problem(
			    resp, 409, NULL, "conflict",
			    "this Idempotency-Key was used for a different request");
			goto out;
		}
	}
	switch (result.outcome) {
	case POLICY_ISSUE:
		certs_reply_result(resp, 201, &result);
		break;
	case POLICY_HOLD:
		certs_reply_result(resp, 202, &result);
		break;
	case POLICY_DENY:
		http_response_problem(resp, 422, NULL, result.reason, "%s", result.detail);
		break;
	}
out:
	enroll_result_free(&result);
	json_decref(stored);
	json_decref(body);
}

/* GET /api/v1/certificates */
static void certs_list(const struct admin_call *call, struct http_response *resp)
{
	static const char *const id_params[] = {"org_id", "dept_id", "profile_id"};
	const struct admin_identity *who = call->who;
	struct store_cert_filter f;
	int64_t ids[3] = {0, 0, 0};
	char *status = NULL, *expiring = NULL;
	json_t *items = NULL;

	memset(&f, 0, sizeof(f));
	if (admin_page_params(call, resp, &f.after, &f.limit) != 0)
		return;
	for (size_t i = 0; i < sizeof(id_params) / sizeof(id_params[0]); i++) {
		char *s = http_request_query_param(call->req, id_params[i]);
		if (s == NULL)
			continue;
		ids[i] = certs_query_int(s);
		free(s);
		if (ids[i] <= 0) {
			http_response_problem(
			    resp, 400, NULL, "invalid_field",
			    "query parameter \"%s\" must be a positive integer id", id_params[i]);
			goto out;
		}
	}
	status = http_request_query_param(call->req, "status");
	if (status != NULL && cert_status_parse(status) < 0) {
		http_response_problem(
		    resp, 400, NULL, "invalid_field",
		    "query parameter \"status\" must be one of requested, approved, declined, "
		    "issued, revoked, expired");
		goto out;
	}
	expiring = http_request_query_param(call->req, "expiring_before");
	if (expiring != NULL && !certs_rfc3339(expiring)) {
		http_response_problem(
		    resp, 400, NULL, "invalid_field",
		    "query parameter \"expiring_before\" must be an RFC 3339 timestamp such as "
		    "\"2026-11-26T10:00:00Z\"");
		goto out;
	}

	f.status = status;
	f.org_id = ids[0];
	f.dept_id = ids[1];
	f.profile_id = ids[2];
	f.expiring_before = expiring;
	if (who->role != ADMIN_ROLE_MRAO) {
		if (who->cert_types == 0) {
			/* a role without a certificate type sees nothing (0 would
			 * mean "every type" to the store) */
			admin_list_reply(resp, json_array(), f.limit);
			goto out;
		}
		f.scope_org_id = who->org_id;
		f.scope_dept_id = who->role == ADMIN_ROLE_DRAO ? who->dept_id : 0;
		f.scope_cert_types = who->cert_types;
	}
	if (db_ensure(call->ctx->db) != 0) {
		http_response_unavailable(resp, 5);
		goto out;
	}
	if (store_cert_list(call->ctx->db, &f, &items) != 0) {
		/* a date PostgreSQL refuses (2026-02-30) is the caller's: 400 */
		admin_db_error(call, resp, "expiring_before");
		goto out;
	}
	admin_list_reply(resp, items, f.limit);
out:
	free(status);
	free(expiring);
}

/*
 * Loads the certificate of the {id} path parameter and checks the caller's
 * scope. Returns 1 with *row filled, or 0 after answering (404 absent or out
 * of scope, 503/500 database).
 */
static int certs_load(const struct admin_call *call, struct http_response *resp, bool want_der,
                      struct store_cert_row *row)
{
	int64_t id = call->n_params > 0 ? admin_param_id(call->params[0]) : -1;
	int found;

	memset(row, 0, sizeof(*row));
	if (id <= 0) {
		admin_not_found(resp, "certificate", 0);
		return 0;
	}
	if (db_ensure(call->ctx->db) != 0) {
		http_response_unavailable(resp, 5);
		return 0;
	}
	found = store_cert_get(call->ctx->db, id, want_der, row);
	if (found < 0) {
		admin_db_failure(call, resp);
		return 0;
	}
	if (found == 0) {
		admin_not_found(resp, "certificate", id);
		return 0;
	}
	if (!admin_scope_covers(call->who, row->org_id, row->dept_id, row->cert_type)) {
		store_cert_row_free(row);
		admin_out_of_scope(call, resp, "certificate", id);
		return 0;
	}
	return 1;
}

/* Answers 200 with the current JSON of certificate `id` (after a change). */
static void certs_reply_current(const struct admin_call *call, struct http_response *resp,
                                int64_t id)
{
	struct store_cert_row row;
	int found;

	found = store_cert_get(call->ctx->db, id, false, &row);
	if (found <= 0) {
		admin_db_failure(call, resp);
		return;
	}
	admin_json_reply(resp, 200, row.json);
	row.json = NULL;
	store_cert_row_free(&row);
}

/* GET /api/v1/certificates/{id} */
static void certs_get(const struct admin_call *call, struct http_response *resp)
{
	struct store_cert_row row;

	if (!certs_load(call, resp, false, &row))
		return;
	admin_json_reply(resp, 200, row.json);
	row.json = NULL;
	store_cert_row_free(&row);
}

/* GET /api/v1/certificates/{id}/pem */
static void certs_pem(const struct admin_call *call, struct http_response *resp)
{
	struct store_cert_row row;
	const char *chain = NULL;
	char *pem = NULL, *body = NULL;
	size_t pem_len, chain_len;

	if (!certs_load(call, resp, true, &row))
		return;
	if (row.cert_der == NULL) {
		http_response_problem(resp, 409, NULL, "conflict",
		                      "certificate %lld has not been issued", (long long)row.id);
		goto out;
	}
	pem = ca_der_to_pem(row.cert_der, row.cert_der_len);
	if (pem == NULL) {
		http_response_problem(resp, 500, NULL, "internal_error", "PEM encoding failed");
		goto out;
	}
	chain = ca_chain_pem(call->ctx->ca);
	pem_len = strlen(pem);
	chain_len = chain != NULL ? strlen(chain) : 0;
	body = malloc(pem_len + chain_len + 2);
	if (body == NULL) {
		http_response_problem(resp, 500, NULL, "internal_error", "out of memory");
		goto out;
	}
	memcpy(body, pem, pem_len);
	if (pem_len > 0 && pem[pem_len - 1] != '\n')
		body[pem_len++] = '\n';
	if (chain_len > 0)
		memcpy(body + pem_len, chain, chain_len);
	http_response_take(resp, 200, "application/pem-certificate-chain", (unsigned char *)body,
	                   pem_len + chain_len);
	body = NULL;
out:
	free(pem);
	free(body);
	store_cert_row_free(&row);
}

/* An action route's optional body: nothing, or a JSON object with only the
 * `allowed` keys. Returns the object (maybe empty) or NULL after answering. */
static json_t *certs_action_body(const struct admin_call *call, struct http_response *resp,
                                 const char *const *allowed, const char *const *required)
{
	if (call->req->body_len == 0 && required == NULL)
		return json_object();
	return admin_json_body(call, resp, allowed, required);
}

/* POST /api/v1/certificates/{id}/approve */
static void certs_approve(const struct admin_call *call, struct http_response *resp)
{
	static const char *const allowed[] = {NULL};
	const struct admin_identity *who = call->who;
	struct store_cert_row row;
	struct enroll_result result;
	json_t *body = NULL;
	enum ra_status st;

	memset(&result, 0, sizeof(result));
	memset(&row, 0, sizeof(row));
	body = certs_action_body(call, resp, allowed, NULL);
	if (body == NULL)
		return;
	if (!certs_load(call, resp, false, &row))
		goto out;
	if (row.status != CERT_STATUS_REQUESTED) {
		http_response_problem(resp, 409, NULL, "conflict",
		                      "certificate %lld is %s, not requested", (long long)row.id,
		                      cert_status_name((enum cert_status)row.status));
		goto out;
	}
	/* Four eyes: whoever asked does not also approve, unless master. */
	if (who->role != ADMIN_ROLE_MRAO && row.requester_admin_id == who->admin_id) {
		admin_forbidden(resp,
		                "a request cannot be approved by the administrator who made it");
		goto out;
	}
	st = ra_approve(call->ctx->db, call->ctx->ca, call->ctx->cfg, row.id, who->admin_id,
	                &result);
	if (st != RA_OK) {
		certs_ra_failure(call, resp, st, NULL);
		goto out;
	}
	if (result.outcome == POLICY_DENY) {
		/* the request no longer passes the policy: it is now declined */
		http_response_problem(resp, 422, NULL, result.reason, "%s", result.detail);
		goto out;
	}
	certs_reply_result(resp, 200, &result);
out:
	enroll_result_free(&result);
	store_cert_row_free(&row);
	json_decref(body);
}

/* POST /api/v1/certificates/{id}/decline {reason} */
static void certs_decline(const struct admin_call *call, struct http_response *resp)
{
	static const char *const allowed[] = {"reason", NULL};
	static const char *const required[] = {"reason", NULL};
	struct store_cert_row row;
	json_t *body = NULL;
	const char *reason = NULL;
	enum ra_status st;

	memset(&row, 0, sizeof(row));
	body = admin_json_body(call, resp, allowed, required);
	if (body == NULL)
		return;
	if (admin_field_string(resp, body, "reason", 1, CERTS_MAX_TEXT, false, &reason) < 0)
		goto out;
	if (!certs_load(call, resp, false, &row))
		goto out;
	st = ra_decline(call->ctx->db, row.id, call->who->admin_id, reason);
	if (st != RA_OK) {
		certs_ra_failure(call, resp, st, NULL);
		goto out;
	}
	certs_reply_current(call, resp, row.id);
out:
	store_cert_row_free(&row);
	json_decref(body);
}

/* The RFC 5280 reason of a revoke body: a name or a number; -1 if invalid. */
static int certs_revoke_reason(const json_t *v)
{
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		return n >= 0 && n <= 10 && n != 7 ? (int)n : -1;
	}
	if (json_is_string(v)) {
		for (size_t i = 0; i < sizeof(certs_crl_reasons) / sizeof(certs_crl_reasons[0]);
		     i++)
			if (certs_crl_reasons[i] != NULL &&
			    strcmp(certs_crl_reasons[i], json_string_value(v)) == 0)
				return (int)i;
	}
	return -1;
}

/* POST /api/v1/certificates/{id}/revoke {reason?} */
static void certs_revoke(const struct admin_call *call, struct http_response *resp)
{
	static const char *const allowed[] = {"reason", NULL};
	struct store_cert_row row, again;
	json_t *body = NULL;
	enum ra_status st;
	int reason;

	memset(&row, 0, sizeof(row));
	memset(&again, 0, sizeof(again));
	body = certs_action_body(call, resp, allowed, NULL);
	if (body == NULL)
		return;
	reason = certs_revoke_reason(json_object_get(body, "reason"));
	if (reason < 0) {
		certs_invalid(
		    resp, "reason",
		    "an RFC 5280 reason name (e.g. keyCompromise) or number 0-10 except 7");
		goto out;
	}
	if (!certs_load(call, resp, false, &row))
		goto out;
	st = ra_revoke(call->ctx->db, call->ctx->ca, row.id, reason, call->who->actor);
	if (st == RA_CONFLICT) {
		/* tell "already revoked" apart from "never issued" */
		if (store_cert_get(call->ctx->db, row.id, false, &again) == 1 &&
		    again.status == CERT_STATUS_REVOKED)
			http_response_problem(resp, 409, NULL, "already_revoked",
			                      "certificate %lld is already revoked",
			                      (long long)row.id);
		else
			http_response_problem(resp, 409, NULL, "conflict",
			                      "certificate %lld is not issued", (long long)row.id);
		goto out;
	}
	if (st != RA_OK) {
		certs_ra_failure(call, resp, st, NULL);
		goto out;
	}
	certs_reply_current(call, resp, row.id);
out:
	store_cert_row_free(&again);
	store_cert_row_free(&row);
	json_decref(body);
}

const struct admin_route admin_certificate_routes[] = {
    {HTTP_POST, "/api/v1/certificates", certs_create},
    {HTTP_GET, "/api/v1/certificates", certs_list},
    {HTTP_GET, "/api/v1/certificates/{id}", certs_get},
    {HTTP_GET, "/api/v1/certificates/{id}/pem", certs_pem},
    {HTTP_POST, "/api/v1/certificates/{id}/approve", certs_approve},
    {HTTP_POST, "/api/v1/certificates/{id}/decline", certs_decline},
    {HTTP_POST, "/api/v1/certificates/{id}/revoke", certs_revoke},
    {.pattern = NULL},
};
