/*
 * acme_order.c: orders, authorizations, challenges, finalize and certificate
 * download (RFC 8555 §7.1.3-7.1.6, §7.4, §7.5; RFC 8738 ip identifiers; the
 * ACME profiles extension's "profile").
 *
 * newOrder judges EVERY identifier before anything is stored, with the same
 * per-name rule the policy core applies to a CSR (policy_check_name()) over
 * the account's organization/department delegations for the chosen
 * profile's certificate type. One refused identifier refuses the order:
 * rejectedIdentifier with one subproblem per refused identifier (its detail
 * names the policy reason), and no row is written. Otherwise the order, one
 * authorization per identifier and their challenges go in as one statement.
 * When the endpoint says skip_challenges_when_dcv_validated and the domain
 * deciding for a name has passed DCV for the organization, its authorization
 * is born 'valid' (with no challenges) and an order of such names 'ready';
 * such an order (unless it replaces a certificate) stores no authorization
 * rows: they are derived from the order (store_acme.h), at
 * authz/<order public id>.<index>, and read and deactivated through it.
 *
 * Challenges offered: dns names http-01, dns-01, tls-alpn-01; wildcards
 * dns-01 only; ip addresses http-01 and tls-alpn-01 (RFC 8738 §7).
 * Responding to a challenge sets it 'processing' (guarded, committed) and
 * hands it to the validator (core/acme_validate.h), whose threads write the
 * outcome to challenge, authorization and order; this file only reads them.
 *
 * Term: the profile's shortest allowed term, unless newOrder's notAfter asks
 * for another allowed term (within a day of now + term); any other notAfter,
 * and any notBefore, is refused (malformed) rather than silently changed.
 *
 * finalize: the order must read 'ready' (orderNotReady otherwise; a
 * 'processing' or 'valid' order is returned as it is, so a retried finalize
 * gets the same order). The CSR's names must equal the order's identifiers
 * (none missing, none extra; the CN counts as a name) and its key must not
 * be the account key: otherwise badCSR and the order stays 'ready'. Then
 * ra_enroll() with idempotency key "acme-order:<id>" - two finalize requests
 * at once issue one certificate - and the outcome moves the order (issue
 * and hold inside the certificate row's INSERT, by the trigger of migration
 * 003, so a finalize costs no second statement):
 *   issue -> 'valid' (certificate URL); hold -> 'processing' (Retry-After),
 *   then 'valid' or 'invalid' within the administrator's decision; deny ->
 *   'invalid' with the policy's reason as the error, except a CSR-key refusal
 *   (weak or disallowed key, bad signature) which is badCSR and leaves it
 *   'ready'.
 *
 * Another account's order, authorization, challenge or certificate is
 * answered exactly like a missing one (404).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "acme_door.h"
#include "acme_validate.h"
#include "ca.h"
#include "csr.h"
#include "db.h"
#include "facts.h"
#include "log.h"
#include "names.h"
#include "policy.h"
#include "ra.h"
#include "store_acme.h"
#include "types.h"

#define ACME_MAX_IDENTIFIERS CSR_MAX_NAMES
#define ACME_ORDERS_PAGE 100

/* ---------- time ---------- */

static void
acme_time_text(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool
acme_digits(const char *s, int n, int *out)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* RFC 3339 "2026-01-02T03:04:05(.frac)?(Z|+hh:mm|-hh:mm)" -> unix time. */
static bool
acme_parse_time(const char *s, int64_t *out)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	const char *p;

	if (s == NULL || strlen(s) < 20 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
		return false;
	if (!acme_digits(s, 4, &y) || !acme_digits(s + 5, 2, &mo) || !acme_digits(s + 8, 2, &d) ||
	    !acme_digits(s + 11, 2, &h) || !acme_digits(s + 14, 2, &mi) ||
	    !acme_digits(s + 17, 2, &sec))
		return false;
	p = s + 19;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
		sign = 0;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' &&
	    acme_digits(p + 1, 2, &oh) && acme_digits(p + 4, 2, &om)) {
		sign = *p == '+' ? 1 : -1;
	} else {
		return false;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || oh > 23 ||
	    om > 59)
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = (int64_t)timegm(&tm) - sign * (oh * 3600 + om * 60);
	return true;
}

/* ---------- JSON shapes ---------- */

/* The RFC 8555 §7.1.3 order object from the store's order JSON. */
static json_t *
acme_order_json(const struct acme_request *r, const json_t *o)
{
	const char *status = acme_json_str(o, "status");
	const char *public_id = acme_json_str(o, "public_id");
	const json_t *authzs = json_object_get(o, "authzs");
	const json_t *item = NULL;
	json_t *out = NULL, *urls = NULL;
	size_t i;

	out = json_object();
	urls = json_array();
	if (out == NULL || urls == NULL) {
		json_decref(out);
		json_decref(urls);
		return NULL;
	}
	json_object_set_new(out, "status", json_string(status != NULL ? status : "invalid"));
	if (acme_json_str(o, "expires") != NULL)
		json_object_set_new(out, "expires", json_string(acme_json_str(o, "expires")));
	json_object_set(out, "identifiers", json_object_get(o, "identifiers"));
	if (acme_json_str(o, "profile") != NULL)
		json_object_set_new(out, "profile", json_string(acme_json_str(o, "profile")));
	if (acme_json_str(o, "not_before") != NULL)
		json_object_set_new(out, "notBefore", json_string(acme_json_str(o, "not_before")));
	if (acme_json_str(o, "not_after") != NULL)
		json_object_set_new(out, "notAfter", json_string(acme_json_str(o, "not_after")));
	if (acme_json_str(o, "replaces") != NULL) /* RFC 9773 §5 */
		json_object_set_new(out, "replaces", json_string(acme_json_str(o, "replaces")));
	if (json_is_object(json_object_get(o, "error")))
		json_object_set(out, "error", json_object_get(o, "error"));
	if (json_is_null(authzs) || authzs == NULL) {
		/* derived from the order (store_acme.h) */
		for (i = 0; i < json_array_size(json_object_get(o, "identifiers")); i++)
			json_array_append_new(urls,
			    acme_url_json(r, "authz/%s" ACME_DERIVED_AUTHZ_SEP "%zu", public_id, i));
	}
	json_array_foreach(authzs, i, item)
	{
		if (json_is_string(item))
			json_array_append_new(urls, acme_url_json(r, "authz/%s", json_string_value(item)));
	}
	json_object_set_new(out, "authorizations", urls);
	json_object_set_new(out, "finalize", acme_url_json(r, "order/%s/finalize", public_id));
	if (status != NULL && strcmp(status, "valid") == 0 &&
	    acme_json_id(o, "certificate_id") != 0)
		json_object_set_new(out, "certificate", acme_url_json(r, "cert/%s", public_id));
	return out;
}

/* Answers the order (Location: its URL; Retry-After while processing). */
static void
acme_order_reply(struct acme_request *r, int status, const json_t *o)
{
	char location[2 * ACME_URL_MAX], retry[16];
	const char *st = acme_json_str(o, "status");

	acme_url(r, location, sizeof(location), "order/%s", acme_json_str(o, "public_id"));
	if (st != NULL && strcmp(st, "processing") == 0) {
		snprintf(retry, sizeof(retry), "%d", ACME_RETRY_AFTER_PROCESSING);
		(void)http_response_header(r->resp, "Retry-After", retry);
	}
	acme_reply(r, status, acme_order_json(r, o), location);
}

/* The §8 challenge object from the store's challenge JSON. */
static json_t *
acme_chall_json(const struct acme_request *r, const json_t *c)
{
	json_t *out = json_object();

	if (out == NULL)
		return NULL;
	json_object_set_new(out, "type", json_string(acme_json_str(c, "type")));
	json_object_set_new(out, "url", acme_url_json(r, "chall/%s", acme_json_str(c, "public_id")));
	json_object_set_new(out, "token", json_string(acme_json_str(c, "token")));
	json_object_set_new(out, "status", json_string(acme_json_str(c, "status")));
	if (acme_json_str(c, "validated") != NULL)
		json_object_set_new(out, "validated", json_string(acme_json_str(c, "validated")));
	if (json_is_object(json_object_get(c, "error")))
		json_object_set(out, "error", json_object_get(c, "error"));
	return out;
}

/* The §7.1.4 authorization object from the store's authz JSON. */
static json_t *
acme_authz_json(const struct acme_request *r, const json_t *z)
{
	const json_t *c = NULL;
	json_t *out = NULL, *challs = NULL;
	size_t i;

	out = json_object();
	challs = json_array();
	if (out == NULL || challs == NULL) {
		json_decref(out);
		json_decref(challs);
		return NULL;
	}
	json_object_set_new(out, "identifier",
	    json_pack("{s:s?, s:s?}", "type", acme_json_str(z, "type"), "value",
		acme_json_str(z, "value")));
	json_object_set_new(out, "status", json_string(acme_json_str(z, "status")));
	if (acme_json_str(z, "expires") != NULL)
		json_object_set_new(out, "expires", json_string(acme_json_str(z, "expires")));
	json_array_foreach(json_object_get(z, "challenges"), i, c)
	{
		json_array_append_new(challs, acme_chall_json(r, c));
	}
	json_object_set_new(out, "challenges", challs);
	if (json_is_true(json_object_get(z, "wildcard")))
		json_object_set_new(out, "wildcard", json_true());
	return out;
}

/* ---------- newOrder ---------- */

struct acme_ident {
	struct req_name name;	/* canonical; dns wildcards keep "*." */
	const char *type;	/* "dns" or "ip" */
	const char *base;	/* the authorization's value: name without "*." */
	bool wildcard;
	bool skip;		/* authorization born valid (DCV, endpoint setting) */
};

/* Appends a subproblem for identifier (type, value). */
static void
acme_subproblem(json_t *subs, const char *problem, const char *type, const char *value,
    const char *reason, const char *detail)
{
	json_t *sp = json_object();

	if (sp == NULL)
		return;
	json_object_set_new(sp, "type", json_string(problem));
	json_object_set_new(sp, "identifier", json_pack("{s:s, s:s}", "type", type, "value", value));
	if (reason != NULL) {
		char text[512];

		snprintf(text, sizeof(text), "%s (%s)", detail, reason);
		json_object_set_new(sp, "detail", json_string(text));
		json_object_set_new(sp, "reason", json_string(reason));
	} else {
		json_object_set_new(sp, "detail", json_string(detail));
	}
	json_array_append_new(subs, sp);
}

/*
 * Reads and canonicalises "identifiers" into ids (deduplicated). Identifiers
 * that cannot be certified at all go into subs. Returns the count, or -1
 * (after answering malformed when r is not NULL).
 */
static int
acme_order_identifiers(struct acme_request *r, const json_t *list, struct acme_ident *ids,
    json_t *subs)
{
	const json_t *item = NULL;
	char detail[300];
	size_t i, k;
	int n = 0;

	if (!json_is_array(list) || json_array_size(list) == 0 ||
	    json_array_size(list) > ACME_MAX_IDENTIFIERS) {
		if (r != NULL)
			acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
			    "\"identifiers\" must be an array of 1 to %d identifiers",
			    ACME_MAX_IDENTIFIERS);
		return -1;
	}
	json_array_foreach(list, i, item)
	{
		const char *type = acme_json_str(item, "type");
		const char *value = acme_json_str(item, "value");
		struct acme_ident *id = &ids[n];
		bool dup = false;

		if (!json_is_object(item) || type == NULL || value == NULL) {
			if (r != NULL)
				acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
				    "each identifier needs a string \"type\" and \"value\"");
			return -1;
		}
		memset(id, 0, sizeof(*id));
		if (strcmp(type, "dns") == 0) {
			id->type = "dns";
			id->name.kind = NAME_DNS;
			if (name_dns_canonical(value, id->name.value, sizeof(id->name.value)) != 0) {
				snprintf(detail, sizeof(detail), "\"%.200s\" is not a valid DNS name",
				    value);
				acme_subproblem(subs, ACME_PROBLEM_REJECTED_IDENTIFIER, type, value,
				    POLICY_NAME_INVALID, detail);
				continue;
			}
			id->wildcard = name_is_wildcard(id->name.value);
			id->base = id->wildcard ? id->name.value + 2 : id->name.value;
		} else if (strcmp(type, "ip") == 0) {
			id->type = "ip";
			id->name.kind = NAME_IP;
			if (name_ip_canonical(value, id->name.value, sizeof(id->name.value)) != 0) {
				snprintf(detail, sizeof(detail), "\"%.200s\" is not an IP address",
				    value);
				acme_subproblem(subs, ACME_PROBLEM_REJECTED_IDENTIFIER, type, value,
				    POLICY_NAME_INVALID, detail);
				continue;
			}
			id->base = id->name.value;
		} else {
			snprintf(detail, sizeof(detail),
			    "identifier type \"%.40s\" is not supported (dns and ip are)", type);
			acme_subproblem(subs, ACME_PROBLEM_UNSUPPORTED_IDENTIFIER, type, value, NULL,
			    detail);
			continue;
		}
		for (k = 0; k < (size_t)n; k++)
			if (ids[k].name.kind == id->name.kind &&
			    strcmp(ids[k].name.value, id->name.value) == 0)
				dup = true;
		if (!dup)
			n++;
	}
	return n;
}

/* The term for this order: 0 after answering. */
static int
acme_order_term(struct acme_request *r, const struct acme_profile *profile, const json_t *payload,
    int64_t *not_after)
{
	const json_t *na = json_object_get(payload, "notAfter");
	int64_t want = 0, now = (int64_t)time(NULL);
	char terms[128] = "";
	size_t i, used = 0;

	*not_after = 0;
	if (profile->n_terms == 0) {
		acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED, "the profile allows no term");
		return 0;
	}
	if (na == NULL || json_is_null(na))
		return profile->terms[0];
	if (!acme_parse_time(json_string_value(na), &want)) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED, "\"notAfter\" is not an RFC 3339 time");
		return 0;
	}
	for (i = 0; i < profile->n_terms; i++) {
		int64_t end = now + (int64_t)profile->terms[i] * 86400;

		if (want >= end - 86400 && want <= end + 86400) {
			*not_after = want;
			return profile->terms[i];
		}
		used += (size_t)snprintf(terms + used, sizeof(terms) - used, "%s%d",
		    i > 0 ? ", " : "", profile->terms[i]);
		if (used >= sizeof(terms))
			break;
	}
	acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
	    "\"notAfter\" must be about now plus one of the profile's terms (%s days)", terms);
	return 0;
}

/* Appends a challenge {"public_id","type","token"} to arr. 0 or -1. */
static int
acme_challenge_new(json_t *arr, const char *type)
{
	char id[ACME_PUBLIC_ID_LEN], token[ACME_TOKEN_LEN];

	if (acme_public_id(id) != 0 || acme_token(token) != 0)
		return -1;
	return json_array_append_new(arr,
	    json_pack("{s:s, s:s, s:s}", "public_id", id, "type", type, "token", token));
}

/* The authorizations to insert and their public ids (urls), for ids. */
static int
acme_order_authzs(const struct acme_ident *ids, int n, json_t *authzs, json_t *public_ids)
{
	char id[ACME_PUBLIC_ID_LEN];
	json_t *challs = NULL;
	int i;

	for (i = 0; i < n; i++) {
		challs = json_array();
		if (challs == NULL || acme_public_id(id) != 0)
			goto fail;
		if (!ids[i].skip) {
			if (ids[i].name.kind == NAME_IP) {
				if (acme_challenge_new(challs, "http-01") != 0 ||
				    acme_challenge_new(challs, "tls-alpn-01") != 0)
					goto fail;
			} else if (ids[i].wildcard) {
				if (acme_challenge_new(challs, "dns-01") != 0)
					goto fail;
			} else if (acme_challenge_new(challs, "http-01") != 0 ||
			    acme_challenge_new(challs, "dns-01") != 0 ||
			    acme_challenge_new(challs, "tls-alpn-01") != 0) {
				goto fail;
			}
		}
		if (json_array_append_new(authzs,
			json_pack("{s:s, s:s, s:s, s:s, s:b, s:o}", "public_id", id, "status",
			    ids[i].skip ? "valid" : "pending", "type", ids[i].type, "value",
			    ids[i].base, "wildcard", ids[i].wildcard, "challenges", challs)) != 0) {
			challs = NULL;
			goto fail;
		}
		challs = NULL;
		if (json_array_append_new(public_ids, json_string(id)) != 0)
			goto fail;
	}
	return 0;
fail:
	json_decref(challs);
	return -1;
}

/* The profile a newOrder payload asks for (by name, else the endpoint's
 * default), or NULL. */
static const struct acme_profile *
acme_order_profile(const struct acme_request *r, const json_t *payload)
{
	const json_t *name = json_object_get(payload, "profile");

	if (name != NULL)
		return json_is_string(name) ? acme_profile_by_name(&r->ep, json_string_value(name))
					    : NULL;
	return acme_profile_by_id(&r->ep, r->ep.default_profile_id);
}

/* A newOrder decided: what to store and answer (acme_new_order_plan()). */
struct acme_order_plan {
	const struct acme_profile *profile;
	struct acme_ident *ids;
	int n;
	json_t *identifiers, *authzs, *public_ids;
	char *identifiers_text, *authzs_text;
	char public_id[ACME_PUBLIC_ID_LEN];
	char replaces_serial[41];
	int64_t facts_generation;	/* of the facts decided with */
	struct store_acme_order_new in;
};

static void
acme_order_plan_free(struct acme_order_plan *p)
{
	free(p->ids);
	free(p->identifiers_text);
	free(p->authzs_text);
	json_decref(p->identifiers);
	json_decref(p->authzs);
	json_decref(p->public_ids);
	memset(p, 0, sizeof(*p));
}

/*
 * Decides r's newOrder for an account of org_id / dept_id with the policy
 * facts of `generation` (or later: facts_get()) and, when it may be stored,
 * fills *p (free it with acme_order_plan_free()): 1. Otherwise 0 after
 * answering (nothing stored).
 */
static int
acme_new_order_plan(struct acme_request *r, int64_t org_id, int64_t dept_id, int64_t generation,
    struct acme_order_plan *p)
{
	const json_t *payload = r->jws.payload_json;
	const struct acme_profile *profile = NULL;
	struct acme_ident *ids = NULL;
	struct facts_view facts;
	struct req_name *names = NULL;
	struct policy_decision dec;
	json_t *subs = NULL;
	int64_t not_after = 0;
	const char *replaces = NULL;
	int n, i, term, refused = 0, rc = 0;
	bool all_valid = true, derived;

	memset(p, 0, sizeof(*p));
	memset(&facts, 0, sizeof(facts));
	if (!json_is_object(payload)) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED, "newOrder needs a JSON object payload");
		goto out;
	}
	if (json_object_get(payload, "notBefore") != NULL &&
	    !json_is_null(json_object_get(payload, "notBefore"))) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED, "\"notBefore\" is not supported");
		goto out;
	}
	if (json_object_get(payload, "replaces") != NULL) {
		const char *detail = NULL;

		replaces = json_string_value(json_object_get(payload, "replaces"));
		if (replaces == NULL || strlen(replaces) > 512) {
			acme_problem(r, 400, ACME_PROBLEM_MALFORMED, "\"replaces\" must be a certID");
			goto out;
		}
		if (acme_cert_id_parse(r->door, replaces, p->replaces_serial, &detail) != 0) {
			acme_problem(r, 400, ACME_PROBLEM_MALFORMED, "\"replaces\": %s", detail);
			goto out;
		}
	}
	if (org_id == 0) {
		acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED,
		    "the account is not bound to an organization");
		goto out;
	}
	if (json_object_get(payload, "profile") != NULL) {
		const char *name = json_string_value(json_object_get(payload, "profile"));

		profile = acme_order_profile(r, payload);
		if (profile == NULL || !profile->active) {
			acme_problem(r, 400, ACME_PROBLEM_INVALID_PROFILE,
			    "profile \"%.100s\" is not offered by this ACME endpoint",
			    name != NULL ? name : "");
			goto out;
		}
	} else {
		profile = acme_profile_by_id(&r->ep, r->ep.default_profile_id);
		if (profile == NULL || !profile->active) {
			acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED,
			    "the endpoint's default profile is not available");
			goto out;
		}
	}
	term = acme_order_term(r, profile, payload, &not_after);
	if (term == 0)
		goto out;

	ids = calloc(ACME_MAX_IDENTIFIERS, sizeof(*ids));
	subs = json_array();
	if (ids == NULL || subs == NULL)
		goto oom;
	n = acme_order_identifiers(r, json_object_get(payload, "identifiers"), ids, subs);
	if (n < 0)
		goto out;

	/* The policy facts, from the cache (core/facts.h) of at least the
	 * generation read with the account. The endpoint is not judged here:
	 * only active endpoints are served, and the profile is one of its. */
	names = calloc(n > 0 ? (size_t)n : 1, sizeof(*names));
	if (names == NULL)
		goto oom;
	for (i = 0; i < n; i++)
		names[i] = ids[i].name;
	if (facts_get(r->door->db, generation, org_id, dept_id, profile->id, 0, names,
		(size_t)n, &facts) != 0) {
		acme_db_failure(r, "order facts");
		goto out;
	}
	if (!facts.org_found || !facts.profile_found) {
		acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED,
		    "the account's organization or the profile no longer exists");
		goto out;
	}
	policy_check_scope(&facts.input, &dec);
	if (dec.outcome == POLICY_DENY) {
		acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED, "%s (%s)", dec.detail, dec.reason);
		goto out;
	}
	for (i = 0; i < n; i++) {
		policy_check_name(&facts.input, &ids[i].name, &dec);
		if (dec.outcome == POLICY_DENY) {
			acme_subproblem(subs, ACME_PROBLEM_REJECTED_IDENTIFIER, ids[i].type,
			    ids[i].name.value, dec.reason, dec.detail);
			continue;
		}
		ids[i].skip = r->ep.skip_validated && policy_name_dcv_validated(&facts.input, &ids[i].name);
		if (!ids[i].skip)
			all_valid = false;
	}
	refused = (int)json_array_size(subs);
	if (refused > 0) {
		/* Nothing is stored: the order as a whole is refused. */
		const json_t *first = json_array_get(subs, 0);
		const char *type = acme_json_str(first, "type");
		json_t *doc = NULL;
		bool all_unsupported = true;
		size_t k;
		json_t *sp;

		json_array_foreach(subs, k, sp)
		{
			if (strcmp(acme_json_str(sp, "type"), ACME_PROBLEM_UNSUPPORTED_IDENTIFIER) != 0)
				all_unsupported = false;
		}
		type = all_unsupported ? ACME_PROBLEM_UNSUPPORTED_IDENTIFIER
				       : ACME_PROBLEM_REJECTED_IDENTIFIER;
		doc = json_object();
		if (doc == NULL)
			goto oom;
		json_object_set_new(doc, "type", json_string(type));
		if (refused == 1)
			json_object_set(doc, "detail", json_object_get(first, "detail"));
		else
			json_object_set_new(doc, "detail",
			    json_sprintf("%d identifiers were refused; see subproblems", refused));
		json_object_set_new(doc, "subproblems", subs);
		subs = NULL;
		acme_problem_json(r, 400, doc);
		goto out;
	}

	/* The order, its authorizations and their challenges, to store at
	 * once. */
	p->profile = profile;
	p->ids = ids;
	ids = NULL;
	p->n = n;
	p->facts_generation = facts_view_generation(&facts);
	p->identifiers = json_array();
	p->authzs = json_array();
	p->public_ids = json_array();
	if (p->identifiers == NULL || p->authzs == NULL || p->public_ids == NULL)
		goto oom;
	for (i = 0; i < n; i++)
		if (json_array_append_new(p->identifiers,
			json_pack("{s:s, s:s}", "type", p->ids[i].type, "value",
			    p->ids[i].name.value)) != 0)
			goto oom;
	/* Every name validated beforehand, and no RFC 9773 claim to make (a
	 * statement of its own): the authorizations are derived from the order
	 * (store_acme.h), no row each. */
	derived = all_valid && replaces == NULL;
	if (acme_public_id(p->public_id) != 0 ||
	    (!derived && acme_order_authzs(p->ids, n, p->authzs, p->public_ids) != 0))
		goto oom;
	p->identifiers_text = json_dumps(p->identifiers, JSON_COMPACT);
	p->authzs_text = derived ? NULL : json_dumps(p->authzs, JSON_COMPACT);
	if (p->identifiers_text == NULL || (!derived && p->authzs_text == NULL))
		goto oom;
	p->in.public_id = p->public_id;
	p->in.account_id = r->account_id;
	p->in.status = all_valid ? "ready" : "pending";
	p->in.identifiers = p->identifiers_text;
	p->in.profile_id = profile->id;
	p->in.term_days = term;
	p->in.replaces = replaces;
	p->in.replaces_serial = replaces != NULL ? p->replaces_serial : NULL;
	p->in.not_after = not_after;
	p->in.expires = (int64_t)time(NULL) + ACME_ORDER_LIFETIME;
	p->in.authzs = p->authzs_text;
	p->in.authzs_derived = derived;
	rc = 1;
	goto out;
oom:
	acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
out:
	if (rc != 1)
		acme_order_plan_free(p);
	free(ids);
	json_decref(subs);
	facts_view_free(&facts);
	free(names);
	return rc;
}

/* Answers 201 with the order of plan p, stored as order_id: built from what
 * was stored, without reading it back. */
static void
acme_new_order_reply(struct acme_request *r, const struct acme_order_plan *p, int64_t order_id)
{
	char expires_text[32], not_after_text[32];
	json_t *order = NULL;

	acme_time_text(p->in.expires, expires_text);
	order = json_pack("{s:I, s:s, s:I, s:s, s:O, s:s, s:s, s:O}", "id", (json_int_t)order_id,
	    "public_id", p->public_id, "account_id", (json_int_t)r->account_id, "status",
	    p->in.status, "identifiers", p->identifiers, "profile", p->profile->name, "expires",
	    expires_text, "authzs", p->in.authzs_derived ? json_null() : p->public_ids);
	if (order == NULL) {
		acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		return;
	}
	if (p->in.not_after != 0) {
		acme_time_text(p->in.not_after, not_after_text);
		json_object_set_new(order, "not_after", json_string(not_after_text));
	}
	if (p->in.replaces != NULL)
		json_object_set_new(order, "replaces", json_string(p->in.replaces));
	acme_order_reply(r, 201, order);
	json_decref(order);
}

void
acme_new_order(struct acme_request *r)
{
	struct acme_order_plan plan;
	enum store_acme_replace_refusal refusal;
	int64_t order_id = 0;
	int created;

	if (acme_new_order_plan(r, acme_json_id(r->account, "org_id"),
		acme_json_id(r->account, "dept_id"), r->facts_generation, &plan) != 1)
		return;
	created = store_acme_order_create(r->door->db, &plan.in, &order_id, &refusal);
	if (created < 0) {
		acme_db_failure(r, "order create");
		goto out;
	}
	if (created == 0) {
		/* RFC 9773 §5: nothing stored. */
		switch (refusal) {
		case STORE_ACME_REPLACE_TAKEN:
			acme_problem(r, 409, ACME_PROBLEM_ALREADY_REPLACED,
			    "the certificate \"replaces\" names already has a replacement order");
			break;
		case STORE_ACME_REPLACE_DISJOINT:
			acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
			    "the certificate \"replaces\" names shares no identifier with the order");
			break;
		default:
			acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
			    "\"replaces\" names no certificate issued to this account");
			break;
		}
		goto out;
	}
	acme_new_order_reply(r, &plan, order_id);
out:
	acme_order_plan_free(&plan);
}

/*
 * newOrder in one statement (acme_door.h). Every refusal and every request
 * that is not plainly an order to store go the ordinary way - nonce and
 * account statement, then acme_new_order() - so they answer exactly as
 * before; the decision made here from the cache is only ever used when
 * store_acme_new_order() confirms, in the statement that stores the order,
 * the account (valid, this key, this organization and department) and the
 * facts generation it was made with.
 */
int
acme_new_order_fast(struct acme_request *r, const struct store_acme_auth_in *auth,
    struct acme_jws_verifier *held, const char *held_thumb, int64_t org_id, int64_t dept_id)
{
	const json_t *payload = r->jws.payload_json;
	struct store_acme_new_order_guard guard;
	struct store_acme_auth_out out;
	struct acme_order_plan plan;
	const char *problem = NULL;
	char detail[256];
	int64_t generation = facts_cached_generation(), order_id = 0;

	memset(&plan, 0, sizeof(plan));
	/* A replacing order claims its certificate in a statement of its own. */
	if (generation <= 0 || !json_is_object(payload) ||
	    json_object_get(payload, "replaces") != NULL)
		return 0;
	if (acme_jws_verify_with(&r->jws, held, &problem, detail, sizeof(detail)) != 0)
		return 0;
	r->account_id = auth->account_id;
	if (acme_new_order_plan(r, org_id, dept_id, generation, &plan) != 1 ||
	    plan.facts_generation <= 0) {
		/* undo the answer: the ordinary way answers it again */
		http_response_free(r->resp);
		r->resp->status = 0;
		r->account_id = 0;
		acme_order_plan_free(&plan);
		return 0;
	}
	guard.org_id = org_id;
	guard.dept_id = dept_id;
	guard.facts_generation = plan.facts_generation;
	if (store_acme_new_order(r->door->db, auth, &guard, &plan.in, &out, &order_id) != 0) {
		acme_db_failure(r, "nonce, account and order");
		goto out;
	}
	if (order_id != 0) {
		r->account = out.account;
		acme_new_order_reply(r, &plan, order_id);
		goto out;
	}
	/* Nothing stored: the nonce was used, or the account or the facts
	 * moved since the decision. Judge the account as every request is
	 * judged, then decide again at the generation the statement read and
	 * store without a nonce: this request's was consumed. */
	r->account_id = 0;
	if (acme_jws_verifier_up_ref(held) != 0) {
		json_decref(out.account);
		acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "internal error");
		goto out;
	}
	if (acme_auth_finish(r, &out, held, held_thumb, auth->sentinel) == 0)
		acme_new_order(r);
out:
	acme_order_plan_free(&plan);
	return 1;
}

/* ---------- orders ---------- */

/* r->object when it exists and is the signer's; otherwise NULL after
 * answering 404 (another account's object looks exactly like a missing
 * one). */
static json_t *
acme_own_object(struct acme_request *r, const char *what)
{
	if (r->object == NULL || acme_json_id(r->object, "account_id") != r->account_id) {
		acme_problem(r, 404, ACME_PROBLEM_MALFORMED, "no such %s", what);
		return NULL;
	}
	return r->object;
}

void
acme_order(struct acme_request *r)
{
	json_t *order = acme_own_object(r, "order");

	if (order != NULL)
		acme_order_reply(r, 200, order);
}

void
acme_orders(struct acme_request *r, const char *account_id)
{
	char mine[24], next[2 * ACME_URL_MAX + 64], link[2 * ACME_URL_MAX + 80];
	char *cursor_text = NULL, *end = NULL;
	json_t *page = NULL, *urls = NULL, *item = NULL;
	int64_t cursor = 0, last = 0;
	size_t i, n;

	snprintf(mine, sizeof(mine), "%" PRId64, r->account_id);
	if (strcmp(account_id, mine) != 0) {
		acme_problem(r, 404, ACME_PROBLEM_MALFORMED, "no such account");
		return;
	}
	cursor_text = http_request_query_param(r->req, "cursor");
	if (cursor_text != NULL) {
		cursor = strtoll(cursor_text, &end, 10);
		if (end == cursor_text || *end != '\0' || cursor <= 0) {
			free(cursor_text);
			acme_problem(r, 400, ACME_PROBLEM_MALFORMED, "bad cursor");
			return;
		}
		free(cursor_text);
	}
	if (store_acme_order_list(r->door->db, r->account_id, cursor, ACME_ORDERS_PAGE, &page) !=
	    0) {
		acme_db_failure(r, "order list");
		return;
	}
	urls = json_array();
	if (urls == NULL) {
		json_decref(page);
		acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		return;
	}
	n = json_array_size(json_object_get(page, "items"));
	json_array_foreach(json_object_get(page, "items"), i, item)
	{
		if (i >= ACME_ORDERS_PAGE)
			break;
		json_array_append_new(urls, acme_url_json(r, "order/%s", acme_json_str(item, "public_id")));
		last = acme_json_id(item, "id");
	}
	if (n > ACME_ORDERS_PAGE) {
		acme_url(r, next, sizeof(next), "acct/%s/orders?cursor=%" PRId64, mine, last);
		snprintf(link, sizeof(link), "<%s>;rel=\"next\"", next);
		(void)http_response_header(r->resp, "Link", link);
	}
	json_decref(page);
	acme_reply(r, 200, json_pack("{s:o}", "orders", urls), NULL);
}

/* ---------- finalize ---------- */

/* Policy reasons that concern the CSR's key or signature: the client can fix
 * its CSR, so the order stays ready. */
static bool
acme_reason_is_csr(const char *reason)
{
	return reason != NULL &&
	    (strcmp(reason, POLICY_CSR_SIGNATURE_INVALID) == 0 ||
		strcmp(reason, POLICY_WEAK_KEY) == 0 ||
		strcmp(reason, POLICY_KEY_TYPE_NOT_ALLOWED) == 0 ||
		strcmp(reason, POLICY_NAME_INVALID) == 0 ||
		strcmp(reason, POLICY_NAME_TYPE_NOT_ALLOWED) == 0 ||
		strcmp(reason, POLICY_NO_NAMES) == 0);
}

static bool
acme_reason_is_name(const char *reason)
{
	return reason != NULL &&
	    (strcmp(reason, POLICY_NAME_NOT_DELEGATED) == 0 ||
		strcmp(reason, POLICY_DOMAIN_INACTIVE) == 0 ||
		strcmp(reason, POLICY_WILDCARD_NOT_ALLOWED) == 0 ||
		strcmp(reason, POLICY_DCV_REQUIRED) == 0);
}

/*
 * The CSR against the order: signature and key readable, every name a
 * dns/ip identifier of the order and every identifier named (csr_parse()
 * collects every CN and SAN, canonical, as ra_enroll() will), key not the
 * account key. 0, or -1 after answering badCSR.
 */
static int
acme_csr_matches(struct acme_request *r, const struct csr_info *csr, const json_t *order)
{
	const json_t *ids = json_object_get(order, "identifiers");
	const json_t *id = NULL;
	size_t i, k, n_ids = json_array_size(ids);

	if (!csr->signature_ok) {
		acme_problem(r, 400, ACME_PROBLEM_BAD_CSR, "the CSR signature does not verify");
		return -1;
	}
	if (csr->key_type == 0) {
		acme_problem(r, 400, ACME_PROBLEM_BAD_CSR, "the CSR's key was refused: %s",
		    csr->key_reject != NULL ? csr->key_reject : "unsupported key");
		return -1;
	}
	if (csr->name_error != NULL) {
		acme_problem(r, 400, ACME_PROBLEM_BAD_CSR, "the CSR names %s, which is %s",
		    csr->name_error_value[0] != '\0' ? csr->name_error_value : "something",
		    strcmp(csr->name_error, POLICY_NAME_TYPE_NOT_ALLOWED) == 0
			? "of a type that cannot be certified"
			: "not a valid name");
		return -1;
	}
	for (i = 0; i < csr->n_names; i++) {
		const struct req_name *nm = &csr->names[i];
		const char *want = nm->kind == NAME_DNS ? "dns" : nm->kind == NAME_IP ? "ip" : NULL;
		bool found = false;

		json_array_foreach(ids, k, id)
		{
			if (want != NULL && strcmp(acme_json_str(id, "type"), want) == 0 &&
			    strcmp(acme_json_str(id, "value"), nm->value) == 0)
				found = true;
		}
		if (!found) {
			acme_problem(r, 400, ACME_PROBLEM_BAD_CSR,
			    "the CSR names %s, which is not an identifier of the order", nm->value);
			return -1;
		}
	}
	/* both sides are free of duplicates: equal counts mean equal sets */
	if (csr->n_names != n_ids) {
		json_array_foreach(ids, k, id)
		{
			bool found = false;

			for (i = 0; i < csr->n_names; i++)
				if (strcmp(csr->names[i].value, acme_json_str(id, "value")) == 0)
					found = true;
			if (!found) {
				acme_problem(r, 400, ACME_PROBLEM_BAD_CSR,
				    "the CSR does not name %s, an identifier of the order",
				    acme_json_str(id, "value"));
				return -1;
			}
		}
		acme_problem(r, 400, ACME_PROBLEM_BAD_CSR,
		    "the CSR's names differ from the order's identifiers");
		return -1;
	}
	if (EVP_PKEY_eq(csr->pkey, r->key) == 1) {
		acme_problem(r, 400, ACME_PROBLEM_BAD_CSR,
		    "the certificate key must not be the account key");
		return -1;
	}
	return 0;
}

/* Sets the order JSON (as replied) to status / certificate / error. */
static void
acme_order_mark(json_t *order, const char *status, int64_t cert_id, json_t *error)
{
	json_object_set_new(order, "status", json_string(status));
	if (cert_id != 0)
		json_object_set_new(order, "certificate_id", json_integer(cert_id));
	if (error != NULL)
		json_object_set(order, "error", error);
}

/*
 * Sets the order's "profile" (left null by finalize's statement,
 * STORE_ACME_OBJ_FINALIZE) to the name of its profile in the facts of the
 * generation that statement read: facts_get() answers from the cache when
 * the cache is of that generation (ra_enroll() asks the same entry next),
 * else reloads. Renaming a profile bumps the generation in its transaction
 * (migration 007), so the name is the one committed when the statement
 * began, or a later one: never older than what the subquery it replaces
 * read, and what GET on the order shows from then on. Profiles are never
 * deleted (migration 008); one not found leaves "profile" out, as the
 * subquery's NULL did. 0, or -1 with the problem set.
 */
static int
acme_finalize_profile_name(struct acme_request *r, json_t *order)
{
	struct facts_view facts;

	memset(&facts, 0, sizeof(facts));
	if (facts_get(r->door->db, r->facts_generation, acme_json_id(r->account, "org_id"), 0,
		acme_json_id(order, "profile_id"), 0, NULL, 0, &facts) != 0) {
		acme_db_failure(r, "facts");
		return -1;
	}
	if (facts.profile_found &&
	    json_object_set_new(order, "profile", json_string(facts.profile_name)) != 0) {
		facts_view_free(&facts);
		acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		return -1;
	}
	facts_view_free(&facts);
	return 0;
}

void
acme_finalize(struct acme_request *r)
{
	const char *csr_text = acme_json_str(r->jws.payload_json, "csr");
	const char *status = NULL;
	struct enroll_request er;
	struct enroll_result res;
	struct csr_info csr; /* 26 KB: csr_parse() zeroes it, not we again */
	bool csr_parsed = false;
	unsigned char *der = NULL;
	size_t der_len = 0;
	char err[200] = "", requester[40], key[48], comment[ACME_URL_MAX];
	json_t *order = NULL, *error = NULL;
	const char *public_id = NULL;
	char *error_text = NULL;
	int64_t order_id, cert_id = 0;
	enum ra_status rs;
	int set;

	memset(&res, 0, sizeof(res));
	order = acme_own_object(r, "order");
	if (order == NULL)
		goto out;
	public_id = acme_json_str(order, "public_id");
	order_id = acme_json_id(order, "id");
	status = acme_json_str(order, "status");
	if (acme_finalize_profile_name(r, order) != 0)
		goto out;
	if (status != NULL && (strcmp(status, "valid") == 0 || strcmp(status, "processing") == 0)) {
		/* finalized before (a retry, or a concurrent request): the same
		 * order, unchanged */
		acme_order_reply(r, 200, order);
		goto out;
	}
	if (status == NULL || strcmp(status, "ready") != 0) {
		acme_problem(r, 403, ACME_PROBLEM_ORDER_NOT_READY, "the order is %s, not ready",
		    status != NULL ? status : "unknown");
		goto out;
	}
	if (csr_text == NULL) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
		    "finalize needs {\"csr\": base64url(DER)}");
		goto out;
	}
	der = acme_b64url_decode(csr_text, strlen(csr_text), &der_len);
	if (der == NULL || der_len == 0) {
		acme_problem(r, 400, ACME_PROBLEM_BAD_CSR, "\"csr\" is not base64url");
		goto out;
	}
	csr_parsed = true; /* csr_info_free() from here on, whatever csr_parse says */
	if (csr_parse(der, der_len, &csr, err, sizeof(err)) != 0) {
		acme_problem(r, 400, ACME_PROBLEM_BAD_CSR, "not a PKCS#10 request: %s", err);
		goto out;
	}
	if (acme_csr_matches(r, &csr, order) != 0)
		goto out;

	snprintf(requester, sizeof(requester), "acme:%" PRId64, r->account_id);
	snprintf(key, sizeof(key), "acme-order:%" PRId64, order_id);
	snprintf(comment, sizeof(comment), "ACME order %.64s at endpoint %s", public_id, r->ep.name);
	memset(&er, 0, sizeof(er));
	er.protocol = "acme";
	er.requester = requester;
	er.org_id = acme_json_id(r->account, "org_id");
	er.dept_id = acme_json_id(r->account, "dept_id");
	er.profile_id = acme_json_id(order, "profile_id");
	er.endpoint_id = r->ep.id;
	er.term_days = (int)acme_json_id(order, "term_days");
	er.csr = der;
	er.csr_len = der_len;
	er.idempotency_key = key;
	er.comment = comment;
	/* the facts generation read with the order; a ready order has no
	 * certificate row under its key (store_acme.c): one round trip less */
	er.facts_generation = r->facts_generation;
	er.existing_json = NULL;
	er.parsed_csr = &csr; /* parsed and checked above: not again */
	rs = ra_enroll(r->door->db, r->door->ca, r->door->cfg, &er, &res);
	switch (rs) {
	case RA_OK:
		break;
	case RA_BAD_CSR:
		acme_problem(r, 400, ACME_PROBLEM_BAD_CSR, "%s", res.detail);
		goto out;
	case RA_UNAVAILABLE:
		acme_db_failure(r, "enroll");
		goto out;
	case RA_NOT_FOUND:
		acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED, "%s", res.detail);
		goto out;
	default:
		log_warnx("ra_enroll(acme order %s): status %d", public_id, (int)rs);
		acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "the certificate could not be issued");
		goto out;
	}

	cert_id = res.cert_id;
	switch (res.outcome) {
	case POLICY_ISSUE:
		/* The order row became valid in the certificate's INSERT
		 * statement (core/ra.c, ra_insert_sql; migrations 003, 006). */
		log_info("acme: order %s valid: certificate %" PRId64 " serial %s", public_id,
		    cert_id, res.serial);
		acme_order_mark(order, "valid", cert_id, NULL);
		acme_order_reply(r, 200, order);
		break;
	case POLICY_HOLD:
		/* processing since the certificate request's INSERT (as above) */
		log_info("acme: order %s processing: certificate request %" PRId64
			 " awaits approval", public_id, cert_id);
		acme_order_mark(order, "processing", cert_id, NULL);
		acme_order_reply(r, 200, order);
		break;
	case POLICY_DENY:
		if (acme_reason_is_csr(res.reason)) {
			acme_problem(r, 400, ACME_PROBLEM_BAD_CSR, "%s (%s)", res.detail, res.reason);
			goto out;
		}
		error = json_pack("{s:s, s:s, s:i, s:s?}", "type",
		    acme_reason_is_name(res.reason) ? ACME_PROBLEM_REJECTED_IDENTIFIER
						   : ACME_PROBLEM_UNAUTHORIZED,
		    "detail", res.detail[0] != '\0' ? res.detail : "refused by policy", "status",
		    403, "reason", res.reason);
		error_text = error != NULL ? json_dumps(error, JSON_COMPACT) : NULL;
		if (error_text == NULL) {
			acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
			goto out;
		}
		set = store_acme_order_set(r->door->db, order_id, "{pending,ready}", "invalid", 0,
		    error_text);
		if (set < 0) {
			acme_db_failure(r, "order invalid");
			goto out;
		}
		log_info("acme: order %s invalid: %s", public_id,
		    res.reason != NULL ? res.reason : "denied");
		acme_problem_json(r, 403, json_deep_copy(error));
		break;
	}
out:
	free(der);
	free(error_text);
	json_decref(error);
	enroll_result_free(&res);
	if (csr_parsed)
		csr_info_free(&csr);
}

/* ---------- authorizations and challenges ---------- */

static bool
acme_b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '_';
}

bool
acme_derived_authz_parse(char *id, int *index)
{
	char *sep = strchr(id, ACME_DERIVED_AUTHZ_SEP[0]);
	const char *digits;
	size_t i, len;
	int v = 0;

	*index = -1;
	if (sep == NULL || (size_t)(sep - id) != ACME_PUBLIC_ID_LEN - 1)
		return false;
	for (i = 0; id + i < sep; i++)
		if (!acme_b64url_char(id[i]))
			return false;
	digits = sep + 1;
	len = strlen(digits);
	/* decimal, no sign, no leading zero, below the identifier limit */
	if (len == 0 || len > 3 || (len > 1 && digits[0] == '0'))
		return false;
	for (i = 0; i < len; i++) {
		if (digits[i] < '0' || digits[i] > '9')
			return false;
		v = v * 10 + (digits[i] - '0');
	}
	if (v >= ACME_MAX_IDENTIFIERS)
		return false;
	*sep = '\0';
	*index = v;
	return true;
}

void
acme_authz(struct acme_request *r)
{
	const json_t *payload = r->jws.payload_json;
	json_t *authz = NULL;
	int changed;

	authz = acme_own_object(r, "authorization");
	if (authz == NULL)
		return;
	if (!r->jws.post_as_get && json_object_get(payload, "status") != NULL) {
		const char *want = json_string_value(json_object_get(payload, "status"));

		if (want == NULL || strcmp(want, "deactivated") != 0) {
			acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
			    "an authorization's status can only be set to \"deactivated\"");
			goto out;
		}
		if (json_object_get(authz, "index") != NULL)
			changed = store_acme_derived_authz_deactivate(r->door->db,
			    acme_json_id(authz, "order_id"), (int)acme_json_id(authz, "index"));
		else
			changed = store_acme_authz_deactivate(r->door->db, acme_json_id(authz, "id"));
		if (changed < 0) {
			acme_db_failure(r, "authz deactivate");
			goto out;
		}
		if (changed == 0) {
			acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
			    "only a pending or valid authorization can be deactivated");
			goto out;
		}
		json_object_set_new(authz, "status", json_string("deactivated"));
	}
	/* Validation takes about a second here: say so, or clients such as
	 * lego fall back to polling every 5 s (RFC 8555 7.5.1). */
	if (acme_json_str(authz, "status") != NULL &&
	    strcmp(acme_json_str(authz, "status"), "pending") == 0)
		(void)http_response_header(r->resp, "Retry-After", "1");
	acme_reply(r, 200, acme_authz_json(r, authz), NULL);
out:
	return;
}

void
acme_chall(struct acme_request *r)
{
	char up[2 * ACME_URL_MAX + 32], authz_url[2 * ACME_URL_MAX];
	json_t *chall = NULL;
	const char *status = NULL, *authz_status = NULL;
	int started;

	chall = acme_own_object(r, "challenge");
	if (chall == NULL)
		return;
	status = acme_json_str(chall, "status");
	authz_status = acme_json_str(chall, "authz_status");
	/* A JSON object payload ({}) asks the server to validate; POST-as-GET
	 * only reads. */
	if (!r->jws.post_as_get && status != NULL && strcmp(status, "pending") == 0) {
		if (authz_status == NULL || strcmp(authz_status, "pending") != 0) {
			acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
			    "the authorization is %s; its challenges cannot be answered",
			    authz_status != NULL ? authz_status : "not pending");
			goto out;
		}
		started = store_acme_chall_start(r->door->db, acme_json_id(chall, "id"));
		if (started < 0) {
			acme_db_failure(r, "challenge start");
			goto out;
		}
		if (started == 1) {
			/* committed: now the validator may see it */
			acme_validator_submit(acme_json_id(chall, "id"));
			json_object_set_new(chall, "status", json_string("processing"));
		}
	}
	acme_url(r, authz_url, sizeof(authz_url), "authz/%s", acme_json_str(chall, "authz_public_id"));
	snprintf(up, sizeof(up), "<%s>;rel=\"up\"", authz_url);
	(void)http_response_header(r->resp, "Link", up);
	status = acme_json_str(chall, "status");
	if (status != NULL && strcmp(status, "processing") == 0)
		(void)http_response_header(r->resp, "Retry-After", "1");
	acme_reply(r, 200, acme_chall_json(r, chall), NULL);
out:
	return;
}

/* ---------- certificates ---------- */

/* Value of one hex digit (either case), or -1. */
static int
acme_hex_digit(unsigned char c)
{
	unsigned char lower = c | 0x20; /* 'A'-'F' -> 'a'-'f'; no other byte lands there */

	if ((unsigned)(c - '0') < 10)
		return c - '0';
	if ((unsigned)(lower - 'a') < 6)
		return lower - 'a' + 10;
	return -1;
}

/* Hex text -> newly allocated bytes, or NULL. */
static unsigned char *
acme_hex_decode(const char *hex, size_t *len)
{
	size_t n = hex != NULL ? strlen(hex) : 0, i;
	unsigned char *out = NULL;

	if (n == 0 || n % 2 != 0 || (out = malloc(n / 2)) == NULL)
		return NULL;
	for (i = 0; i < n; i += 2) {
		int hi = acme_hex_digit((unsigned char)hex[i]);
		int lo = acme_hex_digit((unsigned char)hex[i + 1]);

		if ((hi | lo) < 0) {
			free(out);
			return NULL;
		}
		out[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	*len = n / 2;
	return out;
}

void
acme_cert(struct acme_request *r)
{
	const json_t *row = r->object;
	unsigned char *der = NULL;
	size_t der_len = 0, leaf_len, issuing_len;
	char *leaf = NULL, *chain = NULL;
	const char *issuing = NULL; /* borrowed from the CA */
	const char *status = acme_json_str(row, "cert_status");

	/* issued (then perhaps revoked or expired): the order is valid */
	if (row == NULL || acme_json_id(row, "account_id") != r->account_id || status == NULL ||
	    (strcmp(status, "issued") != 0 && strcmp(status, "revoked") != 0 &&
		strcmp(status, "expired") != 0) ||
	    acme_json_str(row, "cert_der") == NULL) {
		acme_problem(r, 404, ACME_PROBLEM_MALFORMED, "no such certificate");
		goto out;
	}
	der = acme_hex_decode(acme_json_str(row, "cert_der"), &der_len);
	leaf = der != NULL ? ca_der_to_pem(der, der_len) : NULL;
	issuing = ca_issuing_pem(r->door->ca);
	if (leaf == NULL || issuing == NULL) {
		log_warnx("acme_cert: PEM conversion failed");
		acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "internal error");
		goto out;
	}
	/* leaf + issuing CA; relying parties hold the root */
	leaf_len = strlen(leaf);
	issuing_len = strlen(issuing);
	chain = malloc(leaf_len + issuing_len + 2);
	if (chain == NULL) {
		acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "out of memory");
		goto out;
	}
	memcpy(chain, leaf, leaf_len);
	if (leaf_len > 0 && leaf[leaf_len - 1] != '\n')
		chain[leaf_len++] = '\n';
	memcpy(chain + leaf_len, issuing, issuing_len + 1);
	http_response_take(r->resp, 200, "application/pem-certificate-chain",
	    (unsigned char *)chain, strlen(chain));
	chain = NULL;
out:
	free(der);
	free(leaf);
	free(chain);
}
