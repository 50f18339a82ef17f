/*
 * ca.h: the private CA as the rest of enrolld sees it.
 *
 * ca_open() bootstraps (first start: root + issuing CA + a TLS certificate for
 * the listeners, in state_dir/ca/, keys 0600) or loads configured PEM files,
 * then starts the signer: a separate process, forked before any thread or
 * listener exists, that alone holds the CA private keys and signs only what
 * it can parse strictly (core/signer.c). This process keeps only public
 * certificates. All functions are safe to call from several worker threads.
 */
#ifndef ENROLLD_CA_H
#define ENROLLD_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

struct enrolld_config;
struct csr_info;

struct ca;

/* Returns 0 and a new CA handle, or -1 (logged). Call before threads start. */
int ca_open(const struct enrolld_config *cfg, struct ca **out) __attribute__((warn_unused_result));
void ca_close(struct ca *ca);

/* Paths of the bootstrapped / configured files, for the start-up message. */
const char *ca_root_cert_path(const struct ca *ca);
const char *ca_tls_cert_path(const struct ca *ca);
const char *ca_tls_key_path(const struct ca *ca);
/* PEM of the issuing CA followed by the root (the chain clients need). */
const char *ca_chain_pem(const struct ca *ca);
const char *ca_root_pem(const struct ca *ca);
X509 *ca_issuing_cert(const struct ca *ca); /* borrowed */
/* PEM of the issuing CA alone, as ca_der_to_pem() writes it; borrowed, lives
 * as long as ca (ACME's certificate download: leaf + this). */
const char *ca_issuing_pem(const struct ca *ca);
/* Stable name of the issuing CA ("default"), stored in certificates.issuer. */
const char *ca_issuer_name(const struct ca *ca);

/* A new serial: 16 random bytes from the CSPRNG with the top bit cleared
 * and never zero (positive, <= 20 octets), as upper-case hex without leading
 * zeros. Recorded in the database before ca_issue() signs with it. */
void ca_new_serial(char out[41]);

struct ca_issue_params {
	const char *serial_hex;		/* from ca_new_serial() */
	EVP_PKEY *subject_key;		/* from the CSR */
	/* optional: the SubjectPublicKeyInfo subject_key was made from (the
	 * CSR's, X509_REQ_get_X509_PUBKEY(csr_info.req)). An EC key on a named
	 * curve is then copied into the certificate as encoded there, not
	 * encoded again from subject_key; NULL: from subject_key. It MUST be
	 * the SubjectPublicKeyInfo subject_key was made from (csr_parse()
	 * makes csr_info.pkey from that very point): the certificate
	 * certifies these bytes, not subject_key, and nothing here compares
	 * the two (that would cost the point conversion the copy saves). */
	const X509_PUBKEY *subject_spki;
	/* subject; NULL or "" fields are left out */
	const char *cn, *o, *ou, *l, *st, *c;
	const struct req_name *names;	/* SANs */
	size_t n_names;
	int term_days;			/* notAfter = now + term, capped at the
					   issuing CA's notAfter */
	unsigned key_usage;		/* enum key_usage bits */
	unsigned ext_key_usage;		/* enum ext_key_usage bits */
	const char *crl_url;		/* CRL distribution point, or NULL */
};

/* Builds and signs a certificate. Returns 0 with *der (newly allocated; caller
 * frees with OPENSSL_free) and its validity, or -1 (logged). */
int ca_issue(struct ca *ca, const struct ca_issue_params *p,
    unsigned char **der, size_t *der_len, time_t *not_before, time_t *not_after)
    __attribute__((warn_unused_result));

struct ca_revoked {
	const char *serial_hex;
	time_t revoked_at;
	int reason;			/* RFC 5280 CRLReason, 0..10 (not 7) */
};

/* Builds and signs a CRL of the issuing CA. Returns 0 with *der (newly
 * allocated; caller frees with OPENSSL_free), or -1. */
int ca_crl(struct ca *ca, int64_t crl_number, const struct ca_revoked *revoked,
    size_t n_revoked, unsigned char **der, size_t *der_len)
    __attribute__((warn_unused_result));

/* DER -> PEM helpers; newly allocated, caller frees. */
char *ca_der_to_pem(const unsigned char *der, size_t len);

#endif
