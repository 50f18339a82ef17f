/*
 * ra.c: the registration authority - enroll, approve, decline, revoke, CRL.
 *
 * Every door hands ra_enroll() a struct enroll_request. The facts the policy
 * needs (organization, department, profile, endpoint, delegated domains) come
 * from the per-process facts cache (core/facts.h); ONE small statement reads
 * the facts generation, which keeps that cache coherent with PostgreSQL, and,
 * for a retried request, the row already stored under its idempotency key
 * (the ACME finalize reads both in its own auth statement instead).
 * policy_decide() judges them, then:
 *
 *   deny  -> one audit entry (outcome 'denied'); no certificate row.
 *   hold  -> one statement: INSERT the certificate row (status 'requested')
 *            and, through a data-modifying CTE, its audit entry ('held').
 *   issue -> sign first (ca_issue with a fresh random serial), then ONE
 *            statement inserting the row (status 'issued', serial, DER) and
 *            its audit entry. The statement is its own transaction.
 *
 * Why sign before the row commits, and why that is safe: the certificate is
 * returned to no one unless the INSERT committed, so nothing delivered is
 * unrecorded; if the INSERT fails (or the process dies between signing and
 * committing) the signed bytes are simply dropped - a certificate that nobody
 * ever received and that no relying party has seen. The serial column is
 * UNIQUE, so a serial can never be recorded twice, and a retried request with
 * the same idempotency key finds the committed row and returns it instead of
 * issuing again (a unique violation on a concurrent insert means another
 * worker won the race: its row is read and returned). This keeps the hot
 * path at two round trips (facts, insert) plus one signature.
 *
 * Approval re-runs the policy on the stored CSR (a domain may have been
 * deactivated since) and moves the row with an UPDATE guarded by
 * "status = 'requested'", so two concurrent approvals issue once. Revocation
 * and the CRL share one transaction: the revoked row, the bumped crl_number
 * (its row lock serialises CRL writers) and the new CRL commit together.
 */
#include "ra.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/x509.h>

#include "ca.h"
#include "config.h"
#include "csr.h"
#include "db.h"
#include "facts.h"
#include "log.h"
#include "names.h"
#include "ra_sql.h"
#include "store_certs.h"
#include "types.h"

/* Reason of a stored request that an administrator declined (idempotent
 * replay): not a policy code, the RA's own. */
#define RA_REASON_DECLINED "request_declined"
#define RA_SQLSTATE_UNIQUE "23505"

/* The facts generation (core/facts.h) and the row stored under idempotency
 * key $1 (NULL: none), RA_EXISTING_JSON (ra_sql.h). */
static const char ra_facts_sql[] =
    "SELECT " FACTS_GENERATION_SQL "::text, (SELECT " RA_EXISTING_JSON("c")
    " FROM certificates c WHERE c.idempotency_key = $1::text)::text";

/* Inserts a new certificate row (issued or requested) and its audit entry in
 * one statement. When the idempotency key names an ACME order
 * ('acme-order:<order id>', written only by the ACME door), the same
 * statement moves that order after its certificate: issued -> valid, held ->
 * processing, only from pending, ready or processing. This is the INSERT half
 * of migration 003's trigger, moved here by migration 006 (no plpgsql call, no
 * SPI); this is the only statement inserting certificate rows. Administrator
 * decisions on a held request move the order through the UPDATE trigger.
 *
 * The order's move and the audit entry read what they need of the new row
 * from the parameters it was made of ($1 status, $2 org, $3 department, $19
 * idempotency key: no trigger or default changes them on INSERT), and only
 * its id from the CTE (the order's, as a scalar subquery: no join to plan
 * and run; c always holds exactly one row). RETURNING names what the final SELECT shows: never
 * the DERs, which would otherwise be copied into the CTE's tuplestore and out
 * again for nothing. $9 (CSR) and $18 (certificate) travel in binary, their
 * own bytes (ra_record). */
#define RA_INSERT_SQL(returning)                                                                   \
	"WITH c AS (INSERT INTO certificates (status, org_id, dept_id, profile_id, endpoint_id,"   \
	" protocol, requester, requester_admin_id, csr_der, common_name, names, key_type,"         \
	" term_days, serial, issuer, not_before, not_after, cert_der, idempotency_key)"            \
	" VALUES ($1, $2::bigint, $3::bigint, $4::bigint, $5::bigint, $6, $7::text, $8::bigint,"   \
	" $9::bytea, $10, $11::text[], $12, $13::int, $14, $15,"                                   \
	" to_timestamp($16::bigint), to_timestamp($17::bigint),"                                   \
	" $18::bytea, $19) RETURNING " returning "),"                                              \
	" ord AS (UPDATE acme_orders o SET certificate_id = (SELECT id FROM c),"                   \
	" status = CASE WHEN $1::text = 'issued' THEN 'valid' ELSE 'processing' END"               \
	" WHERE o.id = CASE WHEN $19 LIKE 'acme-order:%' THEN substr($19, 12)::bigint END"         \
	" AND o.status IN ('pending', 'ready', 'processing')),"                                    \
	" a AS (INSERT INTO audit_log (actor, action, object_type, object_id, org_id, dept_id,"    \
	" outcome, reason, details) SELECT $7::text, $20, 'certificate', c.id, $2::bigint,"        \
	" $3::bigint, $21, $22, $23::jsonb FROM c)"

/* ... answering with the row as the admin API shows it (STORE_CERT_JSON:
 * every column it reads must be in this RETURNING list) */
static const char ra_insert_sql[] =
    RA_INSERT_SQL("id, status, org_id, dept_id, profile_id, endpoint_id, protocol, requester,"
                  " requester_admin_id, approver_admin_id, common_name, names, key_type,"
                  " term_days, serial, issuer, not_before, not_after, revoked_at,"
                  " revocation_reason, decline_reason, created_at, updated_at")
    " SELECT c.id, " STORE_CERT_JSON("c") "::text FROM c";
/* ... answering with its id alone, for doors that do not show the row
 * (building the JSON, five timestamps formatted, is a good part of the
 * statement's cost). */
static const char ra_insert_id_sql[] = RA_INSERT_SQL("id") " SELECT c.id FROM c";

static const char ra_existing_sql[] =
    "SELECT " RA_EXISTING_JSON("c") "::text FROM certificates c WHERE c.idempotency_key = $1";

/* What ra_enroll / ra_approve learn from the facts cache and the
 * idempotency lookup. */
struct ra_facts {
	struct facts_view v; /* org, dept, profile, endpoint, domains; policy input */
	json_t *existing;    /* owned: the row with this idempotency key, or NULL */
	char missing[64];    /* on RA_NOT_FOUND: "department 12 not found" */
};

static void ra_facts_free(struct ra_facts *f)
{
	facts_view_free(&f->v);
	json_decref(f->existing);
	memset(f, 0, sizeof(*f));
}

void enroll_result_free(struct enroll_result *r)
{
	if (r == NULL)
		return;
	free(r->cert_pem);
	free(r->chain_pem);
	free(r->cert_json);
	r->cert_pem = NULL;
	r->chain_pem = NULL;
	r->cert_json = NULL;
}

/* RA_UNAVAILABLE when the last failure was the connection, else RA_ERROR. */
static enum ra_status ra_db_status(const struct db *db)
{
	return db_unavailable(db) ? RA_UNAVAILABLE : RA_ERROR;
}

static void ra_id(char buf[24], int64_t v)
{
	snprintf(buf, 24, "%" PRId64, v);
}

/* "\x0a1b..." for a bytea text parameter; newly allocated, caller frees. */
static char *ra_bytea_param(const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *out = NULL;

	out = malloc(2 * n + 3);
	if (out == NULL)
		return NULL;
	out[0] = '\\';
	out[1] = 'x';
	for (size_t i = 0; i < n; i++) {
		out[2 + 2 * i] = hex[p[i] >> 4];
		out[3 + 2 * i] = hex[p[i] & 15];
	}
	out[2 + 2 * n] = '\0';
	return out;
}

/* Bare hex (from encode(x, 'hex')) to bytes; newly allocated or NULL. */
static unsigned char *ra_hex_decode(const char *text, size_t *len)
{
	size_t n = strlen(text);
	unsigned char *out = NULL;

	if (n % 2 != 0 || (out = malloc(n / 2 + 1)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i += 2) {
		unsigned v = 0;
		for (size_t k = i; k < i + 2; k++) {
			char ch = text[k];
			v <<= 4;
			if (ch >= '0' && ch <= '9')
				v |= (unsigned)(ch - '0');
			else if (ch >= 'a' && ch <= 'f')
				v |= (unsigned)(ch - 'a' + 10);
			else if (ch >= 'A' && ch <= 'F')
				v |= (unsigned)(ch - 'A' + 10);
			else {
				free(out);
				return NULL;
			}
		}
		out[i / 2] = (unsigned char)v;
	}
	*len = n / 2;
	return out;
}

/*
 * Loads the facts for (org, dept, profile, endpoint) from the cache
 * (core/facts.h) and, when key is not NULL, the row stored under that
 * idempotency key. RA_NOT_FOUND when the organization, department (of that
 * organization), profile or endpoint does not exist - unless an existing row
 * was found, which the caller returns. generation 0: one statement reads the
 * facts generation and the existing row; else the caller read both in a
 * statement of its own (enroll_request.facts_generation, existing_json).
 * The domains are those the names of csr can touch (NULL: none).
 * *f is freed by the caller (ra_facts_free()) whatever the outcome.
 */
static enum ra_status ra_facts_load(struct db *db, int64_t org_id, int64_t dept_id,
                                    int64_t profile_id, int64_t endpoint_id, const char *key,
                                    const struct csr_info *csr, int64_t generation,
                                    const char *existing_json, struct ra_facts *f)
{
	const char *params[1] = { key };
	PGresult *res = NULL;
	json_error_t jerr;
	enum ra_status rc = RA_ERROR;

	memset(f, 0, sizeof(*f));
	if (generation == 0) {
		res = store_cert_exec(db, STORE_CERT_STMT_FACTS, ra_facts_sql, 1, params);
		if (res == NULL) {
			rc = ra_db_status(db);
			goto out;
		}
		if (PQntuples(res) != 1) {
			log_warnx("PQexecPrepared(ra_facts): %d rows", PQntuples(res));
			goto out;
		}
		generation = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		existing_json = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
	}
	if (existing_json != NULL) {
		f->existing = json_loads(existing_json, 0, &jerr);
		if (!json_is_object(f->existing)) {
			log_warnx("json_loads(ra_facts existing): %s",
			          f->existing == NULL ? jerr.text : "not an object");
			goto out;
		}
	}
	if (facts_get(db, generation, org_id, dept_id, profile_id, endpoint_id,
	              csr != NULL ? csr->names : NULL, csr != NULL ? csr->n_names : 0, &f->v) != 0) {
		rc = ra_db_status(db);
		goto out;
	}
	if (!f->v.org_found || !f->v.dept_found || !f->v.profile_found || !f->v.endpoint_found) {
		/* the same words as the admin API's 404 (admin_not_found) */
		if (!f->v.org_found)
			snprintf(f->missing, sizeof(f->missing), "organization %" PRId64 " not found",
			         org_id);
		else if (!f->v.dept_found)
			snprintf(f->missing, sizeof(f->missing), "department %" PRId64 " not found",
			         dept_id);
		else if (!f->v.profile_found)
			snprintf(f->missing, sizeof(f->missing), "profile %" PRId64 " not found",
			         profile_id);
		else
			snprintf(f->missing, sizeof(f->missing), "endpoint %" PRId64 " not found",
			         endpoint_id);
		rc = RA_NOT_FOUND;
		goto out;
	}
	rc = RA_OK;
out:
	PQclear(res);
	return rc;
}

/* Sets cert_pem and chain_pem (certificate + issuing CA + root) from DER. */
static int ra_result_set_pem(struct ca *ca, const unsigned char *der, size_t len,
                             struct enroll_result *out)
{
	const char *chain = ca_chain_pem(ca);
	size_t pem_len, chain_len;
	bool add_nl;

	out->cert_pem = ca_der_to_pem(der, len);
	if (out->cert_pem == NULL) {
		log_warnx("ca_der_to_pem(ra_result): failed");
		return -1;
	}
	pem_len = strlen(out->cert_pem);
	chain_len = chain != NULL ? strlen(chain) : 0;
	add_nl = pem_len > 0 && out->cert_pem[pem_len - 1] != '\n';
	out->chain_pem = malloc(pem_len + chain_len + 2);
	if (out->chain_pem == NULL)
		return -1;
	memcpy(out->chain_pem, out->cert_pem, pem_len);
	if (add_nl)
		out->chain_pem[pem_len++] = '\n';
	if (chain_len > 0)
		memcpy(out->chain_pem + pem_len, chain, chain_len);
	out->chain_pem[pem_len + chain_len] = '\0';
	return 0;
}

/* Fills `out` from a stored row (RA_EXISTING_JSON): the result the first
 * attempt of an idempotent request got, without deciding again. */
static enum ra_status ra_result_from_existing(struct ca *ca, const json_t *ex,
                                              struct enroll_result *out)
{
	const char *status = json_string_value(json_object_get(ex, "status"));
	const char *serial = json_string_value(json_object_get(ex, "serial"));
	const char *der_hex = json_string_value(json_object_get(ex, "cert_der"));
	const char *declined = json_string_value(json_object_get(ex, "decline_reason"));
	unsigned char *der = NULL;
	size_t der_len = 0;
	enum ra_status rc = RA_ERROR;
	int st;

	out->cert_id = (int64_t)json_integer_value(json_object_get(ex, "id"));
	out->cert_json = json_dumps(json_object_get(ex, "json"), JSON_COMPACT);
	st = cert_status_parse(status);
	switch (st) {
	case CERT_STATUS_ISSUED:
	case CERT_STATUS_REVOKED:
	case CERT_STATUS_EXPIRED:
		if (der_hex == NULL || (der = ra_hex_decode(der_hex, &der_len)) == NULL) {
			log_warnx("ra_hex_decode(existing): no certificate in row %" PRId64,
			          out->cert_id);
			goto out;
		}
		if (ra_result_set_pem(ca, der, der_len, out) != 0)
			goto out;
		snprintf(out->serial, sizeof(out->serial), "%s", serial != NULL ? serial : "");
		out->outcome = POLICY_ISSUE;
		out->reason = NULL;
		break;
	case CERT_STATUS_REQUESTED:
	case CERT_STATUS_APPROVED:
		out->outcome = POLICY_HOLD;
		out->reason = POLICY_APPROVAL_REQUIRED;
		snprintf(out->detail, sizeof(out->detail), "the request awaits approval");
		break;
	case CERT_STATUS_DECLINED:
		out->outcome = POLICY_DENY;
		out->reason = RA_REASON_DECLINED;
		snprintf(out->detail, sizeof(out->detail), "the request was declined: %s",
		         declined != NULL ? declined : "");
		break;
	default:
		log_warnx("ra_result_from_existing: unknown status");
		goto out;
	}
	rc = RA_OK;
out:
	free(der);
	return rc;
}

/* Re-reads the row stored under `key` after a unique violation (a concurrent
 * worker inserted it first). */
static enum ra_status ra_existing_load(struct db *db, struct ca *ca, const char *key,
                                       struct enroll_result *out)
{
	const char *params[1] = {key};
	PGresult *res = NULL;
	json_t *ex = NULL;
	json_error_t jerr;
	enum ra_status rc = RA_ERROR;

	res = db_exec(db, "ra_existing", ra_existing_sql, 1, params);
	if (res == NULL) {
		rc = ra_db_status(db);
		goto out;
	}
	if (PQntuples(res) != 1) {
		log_warnx("ra_existing: unique violation but no row with the key");
		goto out;
	}
	ex = json_loads(PQgetvalue(res, 0, 0), 0, &jerr);
	if (ex == NULL) {
		log_warnx("json_loads(ra_existing): %s", jerr.text);
		goto out;
	}
	rc = ra_result_from_existing(ca, ex, out);
out:
	json_decref(ex);
	PQclear(res);
	return rc;
}

/* The subject CN: the CSR's, or its first DNS name (then its first name). */
static void ra_subject_cn(const struct csr_info *csr, char *cn, size_t len)
{
	size_t i;

	if (csr->common_name[0] != '\0') {
		snprintf(cn, len, "%s", csr->common_name);
		return;
	}
	for (i = 0; i < csr->n_names; i++)
		if (csr->names[i].kind == NAME_DNS) {
			snprintf(cn, len, "%s", csr->names[i].value);
			return;
		}
	snprintf(cn, len, "%s", csr->n_names > 0 ? csr->names[0].value : "");
}

/* Builds and signs the certificate: subject O/OU from the organization and
 * department (whatever the CSR said), L/ST/C when the profile includes the
 * address, SANs = the CSR's names, KU/EKU from the profile. */
static int ra_sign(struct ca *ca, const struct enrolld_config *cfg, const struct ra_facts *f,
                   const struct csr_info *csr, int term_days, const char *serial, const char *cn,
                   unsigned char **der, size_t *der_len, time_t *not_before, time_t *not_after)
{
	struct ca_issue_params ip;
	char crl_url[512];
	size_t base_len = strlen(cfg->public_url);

	while (base_len > 0 && cfg->public_url[base_len - 1] == '/')
		base_len--;
	snprintf(crl_url, sizeof(crl_url), "%.*s/crl/%s.crl", (int)base_len, cfg->public_url,
	         ca_issuer_name(ca));

	memset(&ip, 0, sizeof(ip));
	ip.serial_hex = serial;
	ip.subject_key = csr->pkey;
	ip.subject_spki = X509_REQ_get_X509_PUBKEY(csr->req);
	ip.cn = cn[0] != '\0' ? cn : NULL;
	ip.o = f->v.org_name;
	ip.ou = f->v.dept_name;
	if (f->v.include_address) {
		ip.l = f->v.org_city;
		ip.st = f->v.org_state;
		ip.c = f->v.org_country;
	}
	ip.names = csr->names;
	ip.n_names = csr->n_names;
	ip.term_days = term_days;
	ip.key_usage = f->v.key_usage;
	ip.ext_key_usage = f->v.ext_key_usage;
	ip.crl_url = base_len > 0 ? crl_url : NULL;
	return ca_issue(ca, &ip, der, der_len, not_before, not_after);
}

/* '{"dns:a.example","ip:192.0.2.1"}' (a text[] literal) and the same names as
 * a JSON array; both newly allocated. */
static int ra_names(const struct csr_info *csr, char **literal, json_t **arr)
{
	char typed[NAME_MAX_LEN + 8];
	size_t cap = 3, used = 0;
	char *lit = NULL;

	*literal = NULL;
	*arr = json_array();
	if (*arr == NULL)
		return -1;
	for (size_t i = 0; i < csr->n_names; i++)
		cap += 2 * (NAME_MAX_LEN + 8) + 3;
	lit = malloc(cap);
	if (lit == NULL)
		return -1;
	lit[used++] = '{';
	for (size_t i = 0; i < csr->n_names; i++) {
		name_typed(&csr->names[i], typed, sizeof(typed));
		json_array_append_new(*arr, json_string(typed));
		if (i > 0)
			lit[used++] = ',';
		lit[used++] = '"';
		for (const char *s = typed; *s != '\0'; s++) {
			if (*s == '"' || *s == '\\')
				lit[used++] = '\\';
			lit[used++] = *s;
		}
		lit[used++] = '"';
	}
	lit[used++] = '}';
	lit[used] = '\0';
	*literal = lit;
	return 0;
}

/* The audit details of a request: names, profile, protocol, term, ... */
static char *ra_details(const struct enroll_request *req, const struct ra_facts *f,
                        const struct csr_info *csr, json_t *names, const char *serial,
                        const char *detail)
{
	json_t *d = NULL;
	char *s = NULL;

	d = json_pack("{s:s?, s:I, s:s?, s:O, s:i, s:s?}", "protocol", req->protocol, "profile_id",
	              (json_int_t)req->profile_id, "profile", f->v.profile_name, "names", names,
	              "term_days", req->term_days, "key_type",
	              key_type_name((enum key_type)csr->key_type));
	if (d == NULL)
		return NULL;
	if (csr->common_name[0] != '\0')
		json_object_set_new(d, "common_name", json_string(csr->common_name));
	if (serial != NULL && serial[0] != '\0')
		json_object_set_new(d, "serial", json_string(serial));
	if (detail != NULL && detail[0] != '\0')
		json_object_set_new(d, "detail", json_string(detail));
	if (req->comment != NULL && req->comment[0] != '\0')
		json_object_set_new(d, "comment", json_string(req->comment));
	if (req->idempotency_key != NULL)
		json_object_set_new(d, "idempotency_key", json_string(req->idempotency_key));
	s = json_dumps(d, JSON_COMPACT);
	json_decref(d);
	return s;
}

/* The DER of the CSR, for a binary bytea parameter: *len bytes, newly
 * allocated (the caller OPENSSL_free()s), or NULL. */
static unsigned char *ra_csr_der(const struct csr_info *csr, int *len)
{
	unsigned char *der = NULL;

	*len = i2d_X509_REQ(csr->req, &der);
	if (*len <= 0) {
		log_ssl_warnx("i2d_X509_REQ(ra_csr)");
		return NULL;
	}
	return der;
}

/* The request was judged HOLD or ISSUE: signs (ISSUE) and records the row and
 * its audit entry in one statement. */
static enum ra_status ra_record(struct db *db, struct ca *ca, const struct enrolld_config *cfg,
                                const struct enroll_request *req, const struct ra_facts *f,
                                const struct csr_info *csr, const struct policy_decision *dec,
                                struct enroll_result *out)
{
	bool issue = dec->outcome == POLICY_ISSUE;
	char org[24], dept[24], profile[24], endpoint[24], admin[24], term[16];
	char nb_text[24], na_text[24], serial[41] = "", cn[NAME_MAX_LEN];
	char *names_lit = NULL, *details = NULL;
	json_t *names = NULL;
	unsigned char *der = NULL, *csr_der = NULL;
	size_t der_len = 0;
	int csr_len = 0;
	time_t not_before = 0, not_after = 0;
	const char *params[23];
	/* $9 and $18, the DERs, in binary; the rest as text */
	int lengths[23] = {0}, formats[23] = {0};
	PGresult *res = NULL;
	enum ra_status rc = RA_ERROR;

	ra_subject_cn(csr, cn, sizeof(cn));
	if (ra_names(csr, &names_lit, &names) != 0)
		goto out;
	csr_der = ra_csr_der(csr, &csr_len);
	if (csr_der == NULL)
		goto out;
	if (issue) {
		ca_new_serial(serial);
		if (ra_sign(ca, cfg, f, csr, req->term_days, serial, cn, &der, &der_len,
		            &not_before, &not_after) != 0) {
			log_warnx("ca_issue(ra_enroll): signing failed");
			goto out;
		}
		if (der_len > INT_MAX) {
			log_warnx("ca_issue(ra_enroll): %zu bytes of DER", der_len);
			goto out;
		}
		snprintf(nb_text, sizeof(nb_text), "%lld", (long long)not_before);
		snprintf(na_text, sizeof(na_text), "%lld", (long long)not_after);
	}
	details = ra_details(req, f, csr, names, serial, issue ? NULL : dec->detail);
	if (details == NULL)
		goto out;

	ra_id(org, req->org_id);
	ra_id(dept, req->dept_id);
	ra_id(profile, req->profile_id);
	ra_id(endpoint, req->endpoint_id);
	ra_id(admin, req->requester_admin_id);
	snprintf(term, sizeof(term), "%d", req->term_days);
	params[0] = issue ? "issued" : "requested";
	params[1] = org;
	params[2] = req->dept_id != 0 ? dept : NULL;
	params[3] = profile;
	params[4] = req->endpoint_id != 0 ? endpoint : NULL;
	params[5] = req->protocol;
	params[6] = req->requester;
	params[7] = req->requester_admin_id != 0 ? admin : NULL;
	params[8] = (const char *)csr_der;
	lengths[8] = csr_len;
	formats[8] = 1;
	params[9] = cn[0] != '\0' ? cn : NULL;
	params[10] = names_lit;
	params[11] = key_type_name((enum key_type)csr->key_type);
	params[12] = term;
	params[13] = issue ? serial : NULL;
	params[14] = issue ? ca_issuer_name(ca) : NULL;
	params[15] = issue ? nb_text : NULL;
	params[16] = issue ? na_text : NULL;
	params[17] = issue ? (const char *)der : NULL;
	lengths[17] = (int)der_len;
	formats[17] = 1;
	params[18] = req->idempotency_key;
	params[19] = issue ? "certificate.issue" : "certificate.request";
	params[20] = issue ? "ok" : "held";
	params[21] = issue ? NULL : dec->reason;
	params[22] = details;
	if (req->want_cert_json)
		res = store_cert_exec_formats(db, STORE_CERT_STMT_INSERT, ra_insert_sql, 23, params,
		                              lengths, formats);
	else
		res = store_cert_exec_formats(db, STORE_CERT_STMT_INSERT_ID, ra_insert_id_sql, 23,
		                              params, lengths, formats);
	if (res == NULL) {
		/* Another worker committed the same idempotent request first:
		 * our signature (if any) is dropped, theirs is the answer. */
		if (req->idempotency_key != NULL &&
		    strcmp(db->last_sqlstate, RA_SQLSTATE_UNIQUE) == 0) {
			rc = ra_existing_load(db, ca, req->idempotency_key, out);
			goto out;
		}
		rc = ra_db_status(db);
		goto out;
	}
	if (PQntuples(res) != 1) {
		log_warnx("PQexecPrepared(cert_insert): %d rows", PQntuples(res));
		goto out;
	}
	/* Committed: only now may the certificate leave this function. */
	out->cert_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (req->want_cert_json) {
		out->cert_json = strdup(PQgetvalue(res, 0, 1));
		if (out->cert_json == NULL)
			goto out;
	}
	out->outcome = dec->outcome;
	out->reason = dec->reason;
	snprintf(out->detail, sizeof(out->detail), "%s", dec->detail);
	if (issue) {
		snprintf(out->serial, sizeof(out->serial), "%s", serial);
		if (ra_result_set_pem(ca, der, der_len, out) != 0)
			goto out;
	}
	rc = RA_OK;
out:
	PQclear(res);
	OPENSSL_free(der);
	OPENSSL_free(csr_der);
	free(names_lit);
	free(details);
	json_decref(names);
	return rc;
}

/* Parses the request's CSR into csr; RA_BAD_CSR with out->detail when it
 * is not a PKCS#10 request at all, else RA_OK. */
static enum ra_status ra_parse_csr(const struct enroll_request *req, struct csr_info *csr,
                                   struct enroll_result *out)
{
	char err[200] = "";

	if (csr_parse(req->csr, req->csr_len, csr, err, sizeof(err)) == 0)
		return RA_OK;
	out->outcome = POLICY_DENY;
	snprintf(out->detail, sizeof(out->detail), "%s",
	         err[0] != '\0' ? err : "not a PKCS#10 request");
	return RA_BAD_CSR;
}

enum ra_status ra_enroll(struct db *db, struct ca *ca, const struct enrolld_config *cfg,
                         const struct enroll_request *req, struct enroll_result *out)
{
	return ra_enroll_scoped(db, ca, cfg, req, NULL, NULL, out);
}

enum ra_status ra_enroll_scoped(struct db *db, struct ca *ca, const struct enrolld_config *cfg,
                                const struct enroll_request *req, ra_scope_fn scope,
                                void *scope_arg, struct enroll_result *out)
{
	struct csr_info own;	/* parsed here when the caller did not */
	const struct csr_info *csr = &own;
	struct ra_facts facts;
	struct policy_input in;
	struct policy_decision dec;
	char *details = NULL;
	char *names_lit = NULL;
	json_t *names = NULL;
	bool auto_approve = req->requester_auto_approve;
	enum ra_status rc = RA_ERROR, parsed;
	struct enroll_result csr_result;

	memset(out, 0, sizeof(*out));
	memset(&csr_result, 0, sizeof(csr_result));
	memset(&facts, 0, sizeof(facts));
	/* The CSR is read first (its names choose the domains the facts
	 * carry). Without a scope check an unreadable one is answered at once,
	 * as it always was; with one, the scope is answered first (see ra.h)
	 * and the CSR after it. */
	if (req->parsed_csr != NULL) {
		csr = req->parsed_csr; /* borrowed (not copied: 26 KiB), not freed below */
		parsed = RA_OK;
	} else {
		parsed = ra_parse_csr(req, &own, &csr_result); /* fills own, even on failure */
	}
	if (scope == NULL && parsed != RA_OK) {
		memcpy(out, &csr_result, sizeof(*out));
		rc = parsed;
		goto out;
	}
	if (req->facts_generation == 0 && db_ensure(db) != 0) {
		rc = RA_UNAVAILABLE;
		goto out;
	}
	rc = ra_facts_load(db, req->org_id, req->dept_id, req->profile_id, req->endpoint_id,
	                   req->idempotency_key, parsed == RA_OK ? csr : NULL,
	                   req->facts_generation, req->existing_json, &facts);
	if (scope != NULL && (rc == RA_OK || rc == RA_NOT_FOUND)) {
		if (!facts.v.profile_found) {
			/* the same words as the admin API's 404 (admin_not_found) */
			snprintf(out->detail, sizeof(out->detail), "profile %" PRId64 " not found",
			         req->profile_id);
			rc = RA_NOT_FOUND;
			goto out;
		}
		if (!scope(scope_arg, facts.v.profile.cert_type, &auto_approve)) {
			rc = RA_NOT_FOUND; /* answered and audited by the callback */
			goto out;
		}
		if (parsed != RA_OK) {
			memcpy(out, &csr_result, sizeof(*out));
			rc = parsed;
			goto out;
		}
	}
	if (facts.existing != NULL) {
		/* Seen before: answer what the first attempt got. */
		rc = ra_result_from_existing(ca, facts.existing, out);
		goto out;
	}
	if (rc == RA_NOT_FOUND)
		snprintf(out->detail, sizeof(out->detail), "%s", facts.missing);
	if (rc != RA_OK)
		goto out;

	in = facts.v.input;
	in.csr = csr;
	in.term_days = req->term_days;
	in.requester_auto_approve = auto_approve;
	policy_decide(&in, &dec);

	if (dec.outcome != POLICY_DENY) {
		rc = ra_record(db, ca, cfg, req, &facts, csr, &dec, out);
		goto out;
	}

	/* Deny: the audit entry is the only trace. */
	rc = RA_ERROR;
	if (ra_names(csr, &names_lit, &names) != 0)
		goto out;
	details = ra_details(req, &facts, csr, names, NULL, dec.detail);
	if (details == NULL)
		goto out;
	if (db_audit(db, req->requester, "certificate.request", "certificate", 0, req->org_id,
	             req->dept_id, "denied", dec.reason, details) != 0) {
		rc = ra_db_status(db);
		goto out;
	}
	out->outcome = POLICY_DENY;
	out->reason = dec.reason;
	snprintf(out->detail, sizeof(out->detail), "%s", dec.detail);
	rc = RA_OK;
out:
	if (rc != RA_OK && rc != RA_BAD_CSR) {
		char keep[sizeof(out->detail)];
		memcpy(keep, out->detail, sizeof(keep));
		enroll_result_free(out);
		memcpy(out->detail, keep, sizeof(keep));
	}
	free(details);
	free(names_lit);
	json_decref(names);
	ra_facts_free(&facts);
	if (req->parsed_csr == NULL)
		csr_info_free(&own);
	return rc;
}

enum ra_status ra_approve(struct db *db, struct ca *ca, const struct enrolld_config *cfg,
                          int64_t cert_id, int64_t approver_admin_id, struct enroll_result *out)
{
	static const char load_sql[] =
	    "SELECT c.status, c.org_id, coalesce(c.dept_id, 0), c.profile_id,"
	    " coalesce(c.endpoint_id, 0), c.term_days, encode(c.csr_der, 'hex'), c.protocol,"
	    " c.requester FROM certificates c WHERE c.id = $1::bigint";
	static const char issue_sql[] =
	    "WITH c AS (UPDATE certificates SET status = 'issued', serial = $2, issuer = $3,"
	    " not_before = to_timestamp($4::double precision),"
	    " not_after = to_timestamp($5::double precision), cert_der = $6::bytea,"
	    " approver_admin_id = $7::bigint, updated_at = now()"
	    " WHERE id = $1::bigint AND status = 'requested' RETURNING *),"
	    " a AS (INSERT INTO audit_log (actor, action, object_type, object_id, org_id,"
	    " dept_id, outcome, reason, details) SELECT $8, v.action, 'certificate', c.id,"
	    " c.org_id, c.dept_id, 'ok', NULL, $9::jsonb FROM c"
	    " CROSS JOIN (VALUES ('certificate.approve'), ('certificate.issue')) AS v(action))"
	    " SELECT c.id, " STORE_CERT_JSON("c") "::text FROM c";
	static const char deny_sql[] =
	    "WITH c AS (UPDATE certificates SET status = 'declined', decline_reason = $2::text,"
	    " approver_admin_id = $3::bigint, updated_at = now()"
	    " WHERE id = $1::bigint AND status = 'requested' RETURNING *),"
	    " a AS (INSERT INTO audit_log (actor, action, object_type, object_id, org_id,"
	    " dept_id, outcome, reason, details) SELECT $4, 'certificate.approve', 'certificate',"
	    " c.id, c.org_id, c.dept_id, 'denied', $2::text, $5::jsonb FROM c)"
	    " SELECT c.id, " STORE_CERT_JSON("c") "::text FROM c";
	char id[24], approver[24], actor[40], nb_text[24], na_text[24], serial[41] = "";
	char cn[NAME_MAX_LEN], err[200] = "";
	const char *params[9];
	PGresult *res = NULL, *res2 = NULL;
	struct csr_info csr;
	struct ra_facts facts;
	struct policy_input in;
	struct policy_decision dec;
	unsigned char *csr_der = NULL, *der = NULL;
	size_t csr_der_len = 0, der_len = 0;
	time_t not_before = 0, not_after = 0;
	char *cert_hex = NULL, *details = NULL;
	json_t *dj = NULL;
	int64_t org_id, dept_id, profile_id, endpoint_id;
	int term_days;
	enum ra_status rc = RA_ERROR;

	memset(out, 0, sizeof(*out));
	csr_info_init(&csr);
	memset(&facts, 0, sizeof(facts));
	if (db_ensure(db) != 0)
		return RA_UNAVAILABLE;
	ra_id(id, cert_id);
	ra_id(approver, approver_admin_id);
	snprintf(actor, sizeof(actor), "admin:%" PRId64, approver_admin_id);
	params[0] = id;
	res = db_exec(db, "cert_approve_load", load_sql, 1, params);
	if (res == NULL) {
		rc = ra_db_status(db);
		goto out;
	}
	if (PQntuples(res) != 1) {
		rc = RA_NOT_FOUND;
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "requested") != 0) {
		rc = RA_CONFLICT;
		goto out;
	}
	org_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	dept_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	profile_id = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	endpoint_id = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	term_days = atoi(PQgetvalue(res, 0, 5));
	csr_der = ra_hex_decode(PQgetvalue(res, 0, 6), &csr_der_len);
	if (csr_der == NULL || csr_parse(csr_der, csr_der_len, &csr, err, sizeof(err)) != 0) {
		log_warnx("csr_parse(cert_approve): stored CSR of %" PRId64 " unreadable: %s",
		          cert_id, err);
		goto out;
	}

	rc = ra_facts_load(db, org_id, dept_id, profile_id, endpoint_id, NULL, &csr, 0, NULL,
	                   &facts);
	if (rc != RA_OK)
		goto out;
	rc = RA_ERROR;
	in = facts.v.input;
	in.csr = &csr;
	in.term_days = term_days;
	in.requester_auto_approve = true; /* an approver is deciding */
	policy_decide(&in, &dec);
	if (dec.outcome == POLICY_HOLD) {
		log_warnx("policy_decide(cert_approve): hold despite approval");
		goto out;
	}

	dj = json_pack("{s:I, s:s, s:s?}", "approver_admin_id", (json_int_t)approver_admin_id,
	               "requester", PQgetvalue(res, 0, 8), "profile", facts.v.profile_name);
	if (dj == NULL)
		goto out;
	if (dec.outcome == POLICY_DENY) {
		/* The world changed since the request: the approval declines it. */
		json_object_set_new(dj, "detail", json_string(dec.detail));
		details = json_dumps(dj, JSON_COMPACT);
		if (details == NULL)
			goto out;
		params[0] = id;
		params[1] = dec.reason;
		params[2] = approver;
		params[3] = actor;
		params[4] = details;
		res2 = db_exec(db, "cert_approve_deny", deny_sql, 5, params);
		if (res2 == NULL) {
			rc = ra_db_status(db);
			goto out;
		}
		if (PQntuples(res2) != 1) {
			rc = RA_CONFLICT; /* someone else decided first */
			goto out;
		}
		out->cert_id = cert_id;
		out->cert_json = strdup(PQgetvalue(res2, 0, 1));
		out->outcome = POLICY_DENY;
		out->reason = dec.reason;
		snprintf(out->detail, sizeof(out->detail), "%s", dec.detail);
		rc = RA_OK;
		goto out;
	}

	ra_subject_cn(&csr, cn, sizeof(cn));
	ca_new_serial(serial);
	if (ra_sign(ca, cfg, &facts, &csr, term_days, serial, cn, &der, &der_len, &not_before,
	            &not_after) != 0) {
		log_warnx("ca_issue(cert_approve): signing failed");
		goto out;
	}
	cert_hex = ra_bytea_param(der, der_len);
	json_object_set_new(dj, "serial", json_string(serial));
	details = json_dumps(dj, JSON_COMPACT);
	if (cert_hex == NULL || details == NULL)
		goto out;
	snprintf(nb_text, sizeof(nb_text), "%lld", (long long)not_before);
	snprintf(na_text, sizeof(na_text), "%lld", (long long)not_after);
	params[0] = id;
	params[1] = serial;
	params[2] = ca_issuer_name(ca);
	params[3] = nb_text;
	params[4] = na_text;
	params[5] = cert_hex;
	params[6] = approver;
	params[7] = actor;
	params[8] = details;
	res2 = db_exec(db, "cert_approve_issue", issue_sql, 9, params);
	if (res2 == NULL) {
		rc = ra_db_status(db);
		goto out;
	}
	if (PQntuples(res2) != 1) {
		/* A concurrent approval (or decline) won: our signature is
		 * dropped unseen. */
		rc = RA_CONFLICT;
		goto out;
	}
	out->cert_id = cert_id;
	out->cert_json = strdup(PQgetvalue(res2, 0, 1));
	out->outcome = POLICY_ISSUE;
	snprintf(out->serial, sizeof(out->serial), "%s", serial);
	if (ra_result_set_pem(ca, der, der_len, out) != 0)
		goto out;
	rc = RA_OK;
out:
	if (rc != RA_OK)
		enroll_result_free(out);
	PQclear(res);
	PQclear(res2);
	OPENSSL_free(der);
	free(csr_der);
	free(cert_hex);
	free(details);
	json_decref(dj);
	ra_facts_free(&facts);
	csr_info_free(&csr);
	return rc;
}

enum ra_status ra_decline(struct db *db, int64_t cert_id, int64_t approver_admin_id,
                          const char *reason)
{
	static const char sql[] =
	    "WITH c AS (UPDATE certificates SET status = 'declined', decline_reason = $2::text,"
	    " approver_admin_id = $3::bigint, updated_at = now()"
	    " WHERE id = $1::bigint AND status = 'requested' RETURNING id, org_id, dept_id),"
	    " a AS (INSERT INTO audit_log (actor, action, object_type, object_id, org_id,"
	    " dept_id, outcome, reason, details) SELECT $4, 'certificate.decline', 'certificate',"
	    " c.id, c.org_id, c.dept_id, 'ok', NULL,"
	    " jsonb_build_object('reason', $2::text) FROM c)"
	    " SELECT (SELECT count(*) FROM c),"
	    " (SELECT status FROM certificates WHERE id = $1::bigint)";
	char id[24], approver[24], actor[40];
	const char *params[4];
	PGresult *res = NULL;
	enum ra_status rc = RA_ERROR;

	if (db_ensure(db) != 0)
		return RA_UNAVAILABLE;
	ra_id(id, cert_id);
	ra_id(approver, approver_admin_id);
	snprintf(actor, sizeof(actor), "admin:%" PRId64, approver_admin_id);
	params[0] = id;
	params[1] = reason != NULL ? reason : "";
	params[2] = approver;
	params[3] = actor;
	res = db_exec(db, "cert_decline", sql, 4, params);
	if (res == NULL) {
		rc = ra_db_status(db);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "1") == 0)
		rc = RA_OK;
	else if (PQgetisnull(res, 0, 1))
		rc = RA_NOT_FOUND;
	else
		rc = RA_CONFLICT;
out:
	PQclear(res);
	return rc;
}

/* time_t of an ASN1_TIME; 0 when unreadable. */
static time_t ra_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/*
 * Inside an open transaction: takes the next CRL number of this issuer (the
 * crl_state row lock serialises CRL writers until COMMIT, and the revoked
 * list is read after taking it, so it includes every revocation committed
 * before), signs the CRL and stores it. When fresh_secs >= 0 and the stored
 * CRL turned out to be fresher than that (another worker regenerated it while
 * this one waited), *reused is set and that CRL is returned instead.
 * *der is newly allocated (malloc); the caller frees it.
 */
static enum ra_status ra_crl_regenerate(struct db *db, struct ca *ca, double fresh_secs,
                                        unsigned char **der, size_t *der_len, bool *reused)
{
	static const char number_sql[] =
	    "INSERT INTO crl_state AS s (issuer, crl_number) VALUES ($1, 1)"
	    " ON CONFLICT (issuer) DO UPDATE SET crl_number = s.crl_number + 1"
	    " RETURNING s.crl_number, $2::double precision >= 0 AND s.crl_der IS NOT NULL"
	    " AND s.this_update > now() - make_interval(secs => $2::double precision),"
	    " encode(s.crl_der, 'hex')";
	static const char revoked_sql[] =
	    "SELECT serial, extract(epoch FROM revoked_at)::bigint, revocation_reason"
	    " FROM certificates WHERE status = 'revoked' AND issuer = $1"
	    " AND not_after > now() ORDER BY id";
	static const char store_sql[] =
	    "UPDATE crl_state SET crl_der = $2::bytea, this_update = to_timestamp($3::double "
	    "precision), next_update = to_timestamp($4::double precision) WHERE issuer = $1";
	const char *issuer = ca_issuer_name(ca);
	char fresh_text[32], this_text[24], next_text[24];
	const char *params[4];
	PGresult *num = NULL, *rev = NULL, *st = NULL;
	struct ca_revoked *list = NULL;
	unsigned char *crl = NULL;
	size_t crl_len = 0, n = 0;
	char *crl_hex = NULL;
	X509_CRL *parsed = NULL;
	const unsigned char *p;
	int64_t number;
	enum ra_status rc = RA_ERROR;

	*der = NULL;
	*der_len = 0;
	*reused = false;
	snprintf(fresh_text, sizeof(fresh_text), "%.0f", fresh_secs);
	params[0] = issuer;
	params[1] = fresh_text;
	num = db_exec(db, "crl_number", number_sql, 2, params);
	if (num == NULL || PQntuples(num) != 1) {
		rc = num == NULL ? ra_db_status(db) : RA_ERROR;
		goto out;
	}
	if (strcmp(PQgetvalue(num, 0, 1), "t") == 0) {
		*der = ra_hex_decode(PQgetvalue(num, 0, 2), der_len);
		if (*der == NULL)
			goto out;
		*reused = true;
		rc = RA_OK;
		goto out;
	}
	number = strtoll(PQgetvalue(num, 0, 0), NULL, 10);

	rev = db_exec(db, "crl_revoked", revoked_sql, 1, params);
	if (rev == NULL) {
		rc = ra_db_status(db);
		goto out;
	}
	n = (size_t)PQntuples(rev);
	list = calloc(n + 1, sizeof(*list));
	if (list == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		list[i].serial_hex = PQgetvalue(rev, (int)i, 0);
		list[i].revoked_at = (time_t)strtoll(PQgetvalue(rev, (int)i, 1), NULL, 10);
		list[i].reason = atoi(PQgetvalue(rev, (int)i, 2));
	}
	if (ca_crl(ca, number, list, n, &crl, &crl_len) != 0) {
		log_warnx("ca_crl(%s): signing CRL %" PRId64 " failed", issuer, number);
		goto out;
	}
	p = crl;
	parsed = d2i_X509_CRL(NULL, &p, (long)crl_len);
	if (parsed == NULL) {
		log_ssl_warnx("d2i_X509_CRL(ra_crl)");
		goto out;
	}
	snprintf(this_text, sizeof(this_text), "%lld",
	         (long long)ra_asn1_time(X509_CRL_get0_lastUpdate(parsed)));
	snprintf(next_text, sizeof(next_text), "%lld",
	         (long long)ra_asn1_time(X509_CRL_get0_nextUpdate(parsed)));
	crl_hex = ra_bytea_param(crl, crl_len);
	if (crl_hex == NULL)
		goto out;
	params[1] = crl_hex;
	params[2] = this_text;
	params[3] = next_text;
	st = db_exec(db, "crl_store", store_sql, 4, params);
	if (st == NULL) {
		rc = ra_db_status(db);
		goto out;
	}
	*der = malloc(crl_len);
	if (*der == NULL)
		goto out;
	memcpy(*der, crl, crl_len);
	*der_len = crl_len;
	rc = RA_OK;
out:
	PQclear(num);
	PQclear(rev);
	PQclear(st);
	free(list);
	free(crl_hex);
	OPENSSL_free(crl);
	X509_CRL_free(parsed);
	return rc;
}

enum ra_status ra_revoke(struct db *db, struct ca *ca, int64_t cert_id, int reason,
                         const char *actor)
{
	static const char sql[] =
	    "WITH c AS (UPDATE certificates SET status = 'revoked', revoked_at = now(),"
	    " revocation_reason = $2::int, updated_at = now()"
	    " WHERE id = $1::bigint AND status = 'issued' RETURNING id, org_id, dept_id, serial),"
	    " a AS (INSERT INTO audit_log (actor, action, object_type, object_id, org_id,"
	    " dept_id, outcome, reason, details) SELECT $3, 'certificate.revoke', 'certificate',"
	    " c.id, c.org_id, c.dept_id, 'ok', NULL,"
	    " jsonb_build_object('reason', $2::int, 'serial', c.serial) FROM c)"
	    " SELECT (SELECT count(*) FROM c),"
	    " (SELECT status FROM certificates WHERE id = $1::bigint)";
	char id[24], reason_text[16];
	const char *params[3];
	PGresult *res = NULL;
	unsigned char *crl = NULL;
	size_t crl_len = 0;
	bool reused = false, in_tx = false;
	enum ra_status rc = RA_ERROR;

	if (reason < 0 || reason > 10 || reason == 7) {
		log_warnx("ra_revoke: reason %d is not an RFC 5280 CRLReason", reason);
		return RA_ERROR;
	}
	if (db_ensure(db) != 0)
		return RA_UNAVAILABLE;
	if (db_begin(db) != 0)
		return ra_db_status(db);
	in_tx = true;
	ra_id(id, cert_id);
	snprintf(reason_text, sizeof(reason_text), "%d", reason);
	params[0] = id;
	params[1] = reason_text;
	params[2] = actor != NULL ? actor : "system";
	res = db_exec(db, "cert_revoke", sql, 3, params);
	if (res == NULL) {
		rc = ra_db_status(db);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "1") != 0) {
		rc = PQgetisnull(res, 0, 1) ? RA_NOT_FOUND : RA_CONFLICT;
		goto out;
	}
	rc = ra_crl_regenerate(db, ca, -1, &crl, &crl_len, &reused);
	if (rc != RA_OK)
		goto out;
	if (db_commit(db) != 0) {
		in_tx = false;
		rc = ra_db_status(db);
		goto out;
	}
	in_tx = false;
	rc = RA_OK;
out:
	if (in_tx)
		db_rollback(db);
	PQclear(res);
	free(crl);
	return rc;
}

enum ra_status ra_crl(struct db *db, struct ca *ca, const struct enrolld_config *cfg,
                      unsigned char **der, size_t *der_len)
{
	static const char sql[] =
	    "SELECT encode(crl_der, 'hex') FROM crl_state WHERE issuer = $1"
	    " AND crl_der IS NOT NULL"
	    " AND this_update > now() - make_interval(secs => $2::double precision)";
	char fresh_text[32];
	const char *params[2];
	PGresult *res = NULL;
	double fresh_secs;
	bool reused = false;
	enum ra_status rc = RA_ERROR;

	*der = NULL;
	*der_len = 0;
	if (db_ensure(db) != 0)
		return RA_UNAVAILABLE;
	/* reissue once half of the CRL's validity has passed */
	fresh_secs = (cfg->crl_days > 0 ? cfg->crl_days : 7) * 86400.0 / 2;
	snprintf(fresh_text, sizeof(fresh_text), "%.0f", fresh_secs);
	params[0] = ca_issuer_name(ca);
	params[1] = fresh_text;
	res = db_exec(db, "crl_get", sql, 2, params);
	if (res == NULL)
		return ra_db_status(db);
	if (PQntuples(res) == 1) {
		*der = ra_hex_decode(PQgetvalue(res, 0, 0), der_len);
		PQclear(res);
		return *der != NULL ? RA_OK : RA_ERROR;
	}
	PQclear(res);

	if (db_begin(db) != 0)
		return ra_db_status(db);
	rc = ra_crl_regenerate(db, ca, fresh_secs, der, der_len, &reused);
	if (rc != RA_OK || reused) {
		/* nothing to keep: leave crl_number where it was */
		db_rollback(db);
		if (rc != RA_OK) {
			free(*der);
			*der = NULL;
			*der_len = 0;
		}
		return rc;
	}
	if (db_commit(db) != 0) {
		free(*der);
		*der = NULL;
		*der_len = 0;
		return ra_db_status(db);
	}
	return RA_OK;
}
