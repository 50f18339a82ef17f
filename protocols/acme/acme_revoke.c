/*
 * acme_revoke.c: revokeCert (RFC 8555 §7.6) and renewal information (ARI,
 * RFC 9773).
 *
 * Who may revoke a certificate of ours:
 *   - the holder of its key: a request signed with "jwk" equal to the
 *     certificate's public key (any certificate of this RA, whatever door
 *     issued it: whoever holds the key may always report it compromised);
 *   - an account ("kid") that issued it through one of its orders, or an
 *     account of the same organization (and of the same department when the
 *     account is bound to one) for a certificate issued through ACME. That
 *     is our reading of §7.6 "holds authorizations for all identifiers":
 *     the EAB binding to the organization is what authorizes its names.
 *     Certificates the organization got through other doors (admin, SCEP,
 *     EST) are not an ACME account's to revoke.
 * The posted certificate must be byte for byte the one stored under its
 * serial. Reasons: RFC 5280 CRLReason 0-10 except 7 (badRevocationReason);
 * revoking twice is alreadyRevoked. ra_revoke() records, audits and
 * regenerates the CRL.
 *
 * ARI: GET renewal-info/<certID>, certID = base64url(AKI keyIdentifier) "."
 * base64url(serial DER content octets). The window starts at 2/3 of the
 * certificate's lifetime and ends at 3/4; for a revoked certificate it lies
 * in the past, which tells clients to renew now. Retry-After: 6 hours.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme_door.h"
#include "ca.h"
#include "db.h"
#include "log.h"
#include "ra.h"
#include "store_acme.h"

#define ACME_ARI_RETRY_AFTER "21600"

/* Upper-case hex without leading zeros (certificates.serial) of the unsigned
 * big-endian bytes p[0..len). 0, or -1 when empty or too long. */
static int
acme_serial_hex(const unsigned char *p, size_t len, char out[41])
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0;

	while (len > 0 && p[0] == 0) {
		p++;
		len--;
	}
	if (len == 0 || len > 20)
		return -1;
	for (i = 0; i < len; i++) {
		if (o > 0 || (p[i] >> 4) != 0)
			out[o++] = hex[p[i] >> 4];
		out[o++] = hex[p[i] & 15];
	}
	out[o] = '\0';
	return 0;
}

/* Hex text -> bytes (newly allocated), or NULL. */
static unsigned char *
acme_unhex(const char *hex, size_t *len)
{
	size_t n = hex != NULL ? strlen(hex) : 0, i;
	unsigned char *out = NULL;

	if (n == 0 || n % 2 != 0 || (out = malloc(n / 2)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		char c = hex[i];
		unsigned v;

		if (c >= '0' && c <= '9')
			v = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v = (unsigned)(c - 'A' + 10);
		else {
			free(out);
			return NULL;
		}
		if (i % 2 == 0)
			out[i / 2] = (unsigned char)(v << 4);
		else
			out[i / 2] |= (unsigned char)v;
	}
	*len = n / 2;
	return out;
}

/* May the signer of r revoke certificate row `row`? */
static bool
acme_revoke_allowed(const struct acme_request *r, const json_t *row, X509 *cert)
{
	int64_t acct_dept = acme_json_id(r->account, "dept_id");
	const char *protocol = acme_json_str(row, "protocol");

	if (r->jws.kid == NULL)
		return EVP_PKEY_eq(X509_get0_pubkey(cert), r->key) == 1;
	if (json_is_true(json_object_get(row, "of_account")))
		return true;
	return protocol != NULL && strcmp(protocol, "acme") == 0 &&
	    acme_json_id(r->account, "org_id") != 0 &&
	    acme_json_id(row, "org_id") == acme_json_id(r->account, "org_id") &&
	    (acct_dept == 0 || acme_json_id(row, "dept_id") == acct_dept);
}

void
acme_revoke(struct acme_request *r)
{
	const json_t *payload = r->jws.payload_json;
	const json_t *reason_json = json_object_get(payload, "reason");
	const char *cert_text = acme_json_str(payload, "certificate");
	const unsigned char *p = NULL;
	unsigned char *der = NULL, *stored = NULL, *serial_bytes = NULL;
	size_t der_len = 0, stored_len = 0;
	char serial[41], actor[48];
	json_t *row = NULL;
	X509 *cert = NULL;
	const ASN1_INTEGER *sn = NULL;
	BIGNUM *bn = NULL;
	const char *status = NULL;
	int64_t reason = 0;
	int found, n;
	enum ra_status rs;

	if (cert_text == NULL) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED,
		    "revokeCert needs {\"certificate\": base64url(DER)}");
		goto out;
	}
	if (reason_json != NULL) {
		reason = json_is_integer(reason_json) ? (int64_t)json_integer_value(reason_json) : -1;
		if (reason < 0 || reason > 10 || reason == 7) {
			acme_problem(r, 400, ACME_PROBLEM_BAD_REVOCATION_REASON,
			    "the reason must be an RFC 5280 CRLReason (0-10, not 7)");
			goto out;
		}
	}
	der = acme_b64url_decode(cert_text, strlen(cert_text), &der_len);
	p = der;
	if (der == NULL || (cert = d2i_X509(NULL, &p, (long)der_len)) == NULL ||
	    p != der + der_len) {
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED, "\"certificate\" is not a DER certificate");
		goto out;
	}
	sn = X509_get0_serialNumber(cert);
	bn = ASN1_INTEGER_to_BN(sn, NULL);
	n = bn != NULL ? BN_num_bytes(bn) : 0;
	serial_bytes = n > 0 ? malloc((size_t)n) : NULL;
	if (serial_bytes == NULL || BN_bn2bin(bn, serial_bytes) != n ||
	    acme_serial_hex(serial_bytes, (size_t)n, serial) != 0) {
		acme_problem(r, 404, ACME_PROBLEM_MALFORMED, "no such certificate");
		goto out;
	}
	found = store_acme_cert_by_serial(r->door->db, serial, r->account_id, &row);
	if (found < 0) {
		acme_db_failure(r, "certificate lookup");
		goto out;
	}
	stored = found == 1 ? acme_unhex(acme_json_str(row, "cert_der"), &stored_len) : NULL;
	if (stored == NULL || stored_len != der_len || CRYPTO_memcmp(stored, der, der_len) != 0) {
		acme_problem(r, 404, ACME_PROBLEM_MALFORMED, "no such certificate");
		goto out;
	}
	if (!acme_revoke_allowed(r, row, cert)) {
		acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED,
		    "the signer may not revoke this certificate");
		goto out;
	}
	status = acme_json_str(row, "status");
	if (status != NULL && strcmp(status, "revoked") == 0) {
		acme_problem(r, 400, ACME_PROBLEM_ALREADY_REVOKED, "the certificate is already revoked");
		goto out;
	}
	if (status == NULL || strcmp(status, "issued") != 0) {
		acme_problem(r, 403, ACME_PROBLEM_UNAUTHORIZED, "a certificate that is %s cannot be "
		    "revoked", status != NULL ? status : "not issued");
		goto out;
	}
	if (r->jws.kid != NULL)
		snprintf(actor, sizeof(actor), "acme:%" PRId64, r->account_id);
	else
		snprintf(actor, sizeof(actor), "acme-key:%" PRId64, r->ep.id);
	rs = ra_revoke(r->door->db, r->door->ca, acme_json_id(row, "id"), (int)reason, actor);
	switch (rs) {
	case RA_OK:
		log_info("acme: certificate %s revoked by %s, reason %d", serial, actor, (int)reason);
		http_response_take(r->resp, 200, NULL, NULL, 0);
		break;
	case RA_CONFLICT:
		acme_problem(r, 400, ACME_PROBLEM_ALREADY_REVOKED, "the certificate is already revoked");
		break;
	case RA_UNAVAILABLE:
		acme_db_failure(r, "revoke");
		break;
	default:
		log_warnx("ra_revoke(acme %s): status %d", serial, (int)rs);
		acme_problem(r, 500, ACME_PROBLEM_SERVER_INTERNAL, "the certificate could not be revoked");
		break;
	}
out:
	free(der);
	free(stored);
	free(serial_bytes);
	BN_free(bn);
	X509_free(cert);
	json_decref(row);
}

static void
acme_time_rfc3339(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
acme_cert_id_parse(const struct door_context *door, const char *cert_id, char serial[41],
    const char **detail)
{
	const char *dot = strchr(cert_id, '.');
	const ASN1_OCTET_STRING *ski = NULL;
	unsigned char *aki = NULL, *serial_bytes = NULL;
	size_t aki_len = 0, serial_len = 0;
	int rc = -1;

	if (dot == NULL || dot == cert_id || dot[1] == '\0') {
		*detail = "a certID is base64url(keyIdentifier) \".\" base64url(serial)";
		goto out;
	}
	aki = acme_b64url_decode(cert_id, (size_t)(dot - cert_id), &aki_len);
	serial_bytes = acme_b64url_decode(dot + 1, strlen(dot + 1), &serial_len);
	if (aki == NULL || serial_bytes == NULL) {
		*detail = "the certID is not base64url";
		goto out;
	}
	/* the serial must be a positive DER INTEGER's content octets, minimal
	 * (no redundant leading zero): one certificate, one certID */
	if (serial_len == 0 || (serial_bytes[0] & 0x80) != 0 ||
	    (serial_len > 1 && serial_bytes[0] == 0 && (serial_bytes[1] & 0x80) == 0) ||
	    acme_serial_hex(serial_bytes, serial_len, serial) != 0) {
		*detail = "the certID's serial is not valid";
		goto out;
	}
	ski = X509_get0_subject_key_id(ca_issuing_cert(door->ca));
	if (ski == NULL || (size_t)ASN1_STRING_length(ski) != aki_len ||
	    memcmp(ASN1_STRING_get0_data(ski), aki, aki_len) != 0) {
		*detail = "the certID names a certificate this CA did not issue";
		rc = -2;
		goto out;
	}
	*detail = NULL;
	rc = 0;
out:
	free(aki);
	free(serial_bytes);
	return rc;
}

void
acme_renewal_info(struct acme_request *r, const char *cert_id)
{
	const char *detail = NULL;
	char serial[41], start[32], end[32];
	json_t *row = NULL, *body = NULL;
	int64_t nb, na, s, e, now = (int64_t)time(NULL);
	int found;

	switch (acme_cert_id_parse(r->door, cert_id, serial, &detail)) {
	case 0:
		break;
	case -2:
		acme_problem(r, 404, ACME_PROBLEM_MALFORMED, "no such certificate");
		goto out;
	default:
		acme_problem(r, 400, ACME_PROBLEM_MALFORMED, "%s", detail);
		goto out;
	}
	if (db_ensure(r->door->db) != 0) {
		acme_db_failure(r, "connect");
		goto out;
	}
	found = store_acme_cert_by_serial(r->door->db, serial, 0, &row);
	if (found < 0) {
		acme_db_failure(r, "certificate lookup");
		goto out;
	}
	if (found == 0) {
		acme_problem(r, 404, ACME_PROBLEM_MALFORMED, "no such certificate");
		goto out;
	}
	nb = acme_json_id(row, "not_before");
	na = acme_json_id(row, "not_after");
	if (strcmp(acme_json_str(row, "status") != NULL ? acme_json_str(row, "status") : "",
		"revoked") == 0) {
		/* in the past: renew now */
		s = now - 2 * 86400;
		e = now - 86400;
	} else {
		s = nb + (na - nb) * 2 / 3;
		e = nb + (na - nb) * 3 / 4;
	}
	acme_time_rfc3339(s, start);
	acme_time_rfc3339(e, end);
	body = json_pack("{s:{s:s, s:s}}", "suggestedWindow", "start", start, "end", end);
	(void)http_response_header(r->resp, "Retry-After", ACME_ARI_RETRY_AFTER);
	acme_reply(r, 200, body, NULL);
out:
	json_decref(row);
}
