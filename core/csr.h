/*
 * csr.h: a PKCS#10 request taken apart, and its key judged.
 *
 * csr_parse() never trusts the CSR: it verifies the self-signature, classifies
 * the public key (refusing weak keys), and collects every name (subject CN
 * when it is a DNS name, IP or e-mail; SAN dNSName, iPAddress, rfc822Name),
 * canonicalised and de-duplicated.
 */
#ifndef ENROLLD_CSR_H
#define ENROLLD_CSR_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "names.h"

#define CSR_MAX_NAMES 100

struct csr_info {
	X509_REQ *req;		/* owned */
	EVP_PKEY *pkey;		/* owned (a reference) */
	bool signature_ok;
	unsigned key_type;	/* one enum key_type bit, 0 when refused */
	/* when key_type is 0: "rsa_too_small", "rsa_bad_size", "rsa_bad_exponent",
	 * "ec_curve_not_allowed", "ec_invalid_point", "key_type_unknown" */
	const char *key_reject;
	char common_name[NAME_MAX_LEN];	/* "" when absent */
	struct req_name names[CSR_MAX_NAMES];	/* only [0, n_names) is set */
	size_t n_names;
	/* when a name could not be read or canonicalised: the reason, else NULL */
	const char *name_error;
	char name_error_value[NAME_MAX_LEN];
};

/* Accepts DER, PEM, or base64 of DER (whitespace ignored). Returns 0 with
 * info filled (check signature_ok, key_type, name_error), or -1 when the input
 * is not a PKCS#10 request at all (err says why). Free with csr_info_free(). */
int csr_parse(const void *data, size_t len, struct csr_info *info, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void csr_info_free(struct csr_info *info);
/* An empty info that csr_info_free() accepts, as csr_parse() and
 * csr_info_free() leave it: every field cleared but the names array
 * (25 KiB, only read below n_names; zeroing it twice per request cost as
 * much as the rest of csr_parse()'s own work). Cheaper than a memset. */
void csr_info_init(struct csr_info *info);

/* The key checks alone (also used for ACME account keys): returns the enum
 * key_type bit or 0 with *reject set. */
unsigned csr_key_classify(EVP_PKEY *pkey, const char **reject);

#endif
