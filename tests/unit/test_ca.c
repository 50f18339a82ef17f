/*
 * test_ca.c: the private CA and its signer processes, for real.
 *
 * ca_open() bootstraps a CA in a temporary state directory (as root: owned
 * by user "enrolld", to whom the signers drop), then: EC and RSA
 * certificates verify up to the root with X509_verify_cert and carry what
 * was asked (serial, subject, SANs, KU/EKU, CA:FALSE, AKI = issuer SKI, CRL
 * DP, capped notAfter); serials are positive, <= 20 octets and unique; a
 * CRL verifies and lists its entries with reasons; a second ca_open()
 * loads the same CA; a configured (external) CA loads; the signer refuses
 * what it must refuse and ca_issue() fails once the signers are gone.
 *
 * "This process holds no CA private key": a forked helper reads root.key
 * and issuing.key and hands back only fingerprints (length, 8-byte prefix,
 * SHA-256) of the private scalar (big- and little-endian, as a BIGNUM
 * stores it) and of a base64 line of the PEM; the test then reads all of its
 * own readable memory through /proc/self/mem and finds none of them. As a
 * control, the same scan must find the TLS key after loading it on purpose.
 *
 * Also prints ca_issue() throughput with 1 and 4 threads.
 */
#include "types.h"

static const unsigned t_ku_digital_signature = KEY_USAGE_DIGITAL_SIGNATURE;
static const unsigned t_ku_key_encipherment = KEY_USAGE_KEY_ENCIPHERMENT;

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "config.h"
#include "csr.h"
#include "log.h"
#include "names.h"
#include "signer.h"

static int passed, failed;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (cond) {                                                    \
			passed++;                                              \
		} else {                                                       \
			failed++;                                              \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);            \
			printf(__VA_ARGS__);                                   \
			printf("\n");                                          \
			ERR_print_errors_fp(stdout);                           \
		}                                                              \
	} while (0)

#define CRL_URL "http://127.0.0.1:8080/crl/default.crl"

static bool as_root;
static uid_t user_uid;
static char dir_ca[256]; /* short: paths are built from it */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static X509 *
read_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x = NULL;

	if (f != NULL) {
		x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	return x;
}

static char *
read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static time_t
asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/* The children of this process (the signers), from /proc. */
static int
child_pids(pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char path[300], buf[512], *p;
	int n = 0;
	long ppid;
	FILE *f;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL && n < max) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL &&
		    sscanf(p + 2, "%*c %ld", &ppid) == 1 && ppid == (long)getpid())
			out[n++] = (pid_t)atol(e->d_name);
		fclose(f);
	}
	closedir(d);
	return n;
}

/* ---------- certificate checks ---------- */

static bool
verify_chain(X509 *leaf, X509 *issuing, X509 *root)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	bool ok = false;

	if (store && ctx && untrusted && X509_STORE_add_cert(store, root) == 1 &&
	    sk_X509_push(untrusted, issuing) > 0 &&
	    X509_STORE_CTX_init(ctx, store, leaf, untrusted) == 1) {
		X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
		ok = X509_verify_cert(ctx) == 1;
		if (!ok)
			printf("  verify: %s\n",
			    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	}
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ok;
}

static bool
has_san(X509 *x, int type, const char *text)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	bool found = false;
	int i;

	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && !found; i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		char buf[64];

		if (gn->type != type)
			continue;
		if (type == GEN_IPADD) {
			int len = ASN1_STRING_length(gn->d.iPAddress);
			if (inet_ntop(len == 4 ? AF_INET : AF_INET6,
			    ASN1_STRING_get0_data(gn->d.iPAddress), buf, sizeof(buf)) != NULL)
				found = strcmp(buf, text) == 0;
		} else {
			ASN1_IA5STRING *s = gn->d.ia5;
			found = ASN1_STRING_length(s) == (int)strlen(text) &&
			    memcmp(ASN1_STRING_get0_data(s), text, strlen(text)) == 0;
		}
	}
	GENERAL_NAMES_free(gens);
	return found;
}

static bool
subject_has(X509 *x, int nid, const char *value, int asn1_type)
{
	X509_NAME *name = X509_get_subject_name(x);
	int idx = X509_NAME_get_index_by_NID(name, nid, -1);
	ASN1_STRING *s;

	if (idx < 0)
		return false;
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	return ASN1_STRING_type(s) == asn1_type && ASN1_STRING_length(s) == (int)strlen(value) &&
	    memcmp(ASN1_STRING_get0_data(s), value, strlen(value)) == 0;
}

static bool
crl_dp_is(X509 *x, const char *url)
{
	CRL_DIST_POINTS *dps = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
	bool ok = false;

	if (dps != NULL && sk_DIST_POINT_num(dps) == 1) {
		DIST_POINT *dp = sk_DIST_POINT_value(dps, 0);
		if (dp->distpoint != NULL && dp->distpoint->type == 0 &&
		    sk_GENERAL_NAME_num(dp->distpoint->name.fullname) == 1) {
			GENERAL_NAME *gn = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, 0);
			ok = gn->type == GEN_URI &&
			    strcmp((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
			    url) == 0;
		}
	}
	CRL_DIST_POINTS_free(dps);
	return ok;
}

/* Every property the task asks of an issued leaf. */
static void
check_leaf(const char *label, const unsigned char *der, size_t len, const char *serial_hex,
    X509 *issuing, X509 *root, time_t nb, time_t na, int term_days, bool rsa, EVP_PKEY *key)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	BIGNUM *bn = NULL, *want = NULL;
	BASIC_CONSTRAINTS *bc = NULL;
	ASN1_BIT_STRING *ku = NULL;
	int crit = -1, crit_ku = -1;
	time_t now = time(NULL);
	const ASN1_OCTET_STRING *akid, *skid;
	unsigned char md[20];
	unsigned int mdlen = 0;

	CHECK(x != NULL && p == der + len, "%s: parses", label);
	if (x == NULL)
		return;
	CHECK(verify_chain(x, issuing, root), "%s: chain verifies to the root", label);
	CHECK(X509_get_version(x) == X509_VERSION_3, "%s: v3", label);
	CHECK(X509_get0_pubkey(x) != NULL && EVP_PKEY_eq(X509_get0_pubkey(x), key) == 1,
	    "%s: subject public key is the requested one", label);
	/* serial */
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	BN_hex2bn(&want, serial_hex);
	CHECK(bn != NULL && !BN_is_negative(bn) && !BN_is_zero(bn) && BN_num_bytes(bn) <= 20 &&
	    BN_cmp(bn, want) == 0, "%s: serial", label);
	CHECK(X509_get0_serialNumber(x)->length <= 20, "%s: serial <= 20 octets", label);
	/* validity */
	CHECK(asn1_time(X509_get0_notBefore(x)) == nb && nb <= now - 59 && nb >= now - 70,
	    "%s: notBefore now - 60 s", label);
	CHECK(asn1_time(X509_get0_notAfter(x)) == na, "%s: notAfter as returned", label);
	if (term_days > 0)
		CHECK(na >= now + (time_t)term_days * 86400 - 10 &&
		    na <= now + (time_t)term_days * 86400 + 1, "%s: notAfter now + term", label);
	else
		CHECK(ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(issuing)) == 0,
		    "%s: notAfter capped at the issuer's", label);
	/* subject and issuer */
	CHECK(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(issuing)) == 0,
	    "%s: issuer", label);
	CHECK(subject_has(x, NID_organizationName, "Exämple Org", V_ASN1_UTF8STRING) &&
	    subject_has(x, NID_organizationalUnitName, "Web Team", V_ASN1_UTF8STRING) &&
	    subject_has(x, NID_commonName, "www.example.com", V_ASN1_UTF8STRING) &&
	    subject_has(x, NID_countryName, "DE", V_ASN1_PRINTABLESTRING) &&
	    subject_has(x, NID_localityName, "Berlin", V_ASN1_UTF8STRING),
	    "%s: subject O/OU/CN/C/L (UTF8)", label);
	CHECK(X509_NAME_get_index_by_NID(X509_get_subject_name(x), NID_stateOrProvinceName, -1) < 0,
	    "%s: empty ST left out", label);
	/* SANs */
	CHECK(has_san(x, GEN_DNS, "www.example.com") && has_san(x, GEN_DNS, "api.example.com") &&
	    has_san(x, GEN_IPADD, "192.0.2.10") && has_san(x, GEN_IPADD, "2001:db8::1") &&
	    has_san(x, GEN_EMAIL, "ops@example.com"), "%s: SANs", label);
	/* basicConstraints critical CA:FALSE */
	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	CHECK(bc != NULL && crit == 1 && !bc->ca && bc->pathlen == NULL && X509_check_ca(x) == 0,
	    "%s: critical CA:FALSE", label);
	BASIC_CONSTRAINTS_free(bc);
	/* KU critical, EKU */
	ku = X509_get_ext_d2i(x, NID_key_usage, &crit_ku, NULL);
	CHECK(ku != NULL && crit_ku == 1, "%s: keyUsage critical", label);
	ASN1_BIT_STRING_free(ku);
	CHECK(X509_get_key_usage(x) ==
	    (uint32_t)(KU_DIGITAL_SIGNATURE | (rsa ? KU_KEY_ENCIPHERMENT : 0)),
	    "%s: keyUsage bits %#x", label, X509_get_key_usage(x));
	CHECK(X509_get_extended_key_usage(x) == (XKU_SSL_SERVER | XKU_SSL_CLIENT),
	    "%s: EKU serverAuth+clientAuth (%#x)", label, X509_get_extended_key_usage(x));
	/* key identifiers */
	akid = X509_get0_authority_key_id(x);
	skid = X509_get0_subject_key_id(x);
	CHECK(akid != NULL && ASN1_OCTET_STRING_cmp(akid, X509_get0_subject_key_id(issuing)) == 0,
	    "%s: AKI == issuer SKI", label);
	CHECK(skid != NULL && X509_pubkey_digest(x, EVP_sha1(), md, &mdlen) == 1 &&
	    skid->length == 20 && memcmp(skid->data, md, 20) == 0, "%s: SKI = SHA-1(key)", label);
	CHECK(crl_dp_is(x, CRL_URL), "%s: CRL distribution point", label);
	CHECK(X509_get_signature_nid(x) == NID_ecdsa_with_SHA256, "%s: ecdsa-with-SHA256", label);
	BN_free(bn);
	BN_free(want);
	X509_free(x);
}

/* ---------- issuance ---------- */

static const struct req_name test_names[] = {
	{ NAME_DNS, "www.example.com" },
	{ NAME_DNS, "api.example.com" },
	{ NAME_IP, "192.0.2.10" },
	{ NAME_IP, "2001:db8::1" },
	{ NAME_EMAIL, "ops@example.com" },
};

static void
fill_params(struct ca_issue_params *p, char *serial, EVP_PKEY *key, int term)
{
	memset(p, 0, sizeof(*p));
	ca_new_serial(serial);
	p->serial_hex = serial;
	p->subject_key = key;
	p->cn = "www.example.com";
	p->o = "Exämple Org";
	p->ou = "Web Team";
	p->l = "Berlin";
	p->st = "";
	p->c = "DE";
	p->names = test_names;
	p->n_names = sizeof(test_names) / sizeof(test_names[0]);
	p->term_days = term;
	p->key_usage = t_ku_digital_signature;
	p->ext_key_usage = EKU_SERVER_AUTH | EKU_CLIENT_AUTH;
	p->crl_url = CRL_URL;
}

/* A CSR for key, parsed by csr_parse(): the path the RA takes. */
static int
parsed_csr(EVP_PKEY *key, struct csr_info *info)
{
	X509_REQ *req = X509_REQ_new();
	unsigned char *der = NULL;
	char err[128];
	int len, rc = -1;

	if (req && X509_REQ_set_pubkey(req, key) == 1 && X509_REQ_sign(req, key, EVP_sha256()) > 0 &&
	    (len = i2d_X509_REQ(req, &der)) > 0)
		rc = csr_parse(der, (size_t)len, info, err, sizeof(err));
	OPENSSL_free(der);
	X509_REQ_free(req);
	return rc;
}

static void
test_issue(struct ca *ca, X509 *root, EVP_PKEY *ec_key, EVP_PKEY *rsa_key, char (*serials)[41])
{
	struct ca_issue_params p;
	struct csr_info ec_csr, rsa_csr;
	char serial[41];
	unsigned char *der = NULL;
	size_t len = 0;
	time_t nb = 0, na = 0;
	X509 *issuing = ca_issuing_cert(ca);

	CHECK(parsed_csr(ec_key, &ec_csr) == 0 && ec_csr.key_type == KEY_TYPE_P256, "EC CSR");
	CHECK(parsed_csr(rsa_key, &rsa_csr) == 0 && rsa_csr.key_type == KEY_TYPE_RSA2048,
	    "RSA CSR");

	fill_params(&p, serial, ec_csr.pkey, 90);
	CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == 0, "ca_issue EC");
	if (der != NULL)
		check_leaf("EC leaf", der, len, serial, issuing, root, nb, na, 90, false, ec_key);
	snprintf(serials[0], 41, "%s", serial);
	OPENSSL_free(der);
	der = NULL;

	fill_params(&p, serial, rsa_csr.pkey, 365);
	p.key_usage = t_ku_digital_signature | t_ku_key_encipherment;
	CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == 0, "ca_issue RSA");
	if (der != NULL)
		check_leaf("RSA leaf", der, len, serial, issuing, root, nb, na, 365, true, rsa_key);
	snprintf(serials[1], 41, "%s", serial);
	OPENSSL_free(der);
	der = NULL;

	/* The request's SubjectPublicKeyInfo given (as core/ra.c does): EC is
	 * copied from it, RSA encoded from the key; either way the same bytes
	 * as without it, and the request's key. */
	{
		struct csr_info *csrs[] = { &ec_csr, &rsa_csr };
		for (size_t i = 0; i < 2; i++) {
			unsigned char *der2 = NULL, *spki_req = NULL, *spki_a = NULL, *spki_b = NULL;
			size_t len2 = 0;
			int n_req, n_a = -1, n_b = -1;
			X509 *a = NULL, *b = NULL;
			const unsigned char *q = NULL;

			fill_params(&p, serial, csrs[i]->pkey, 90);
			p.subject_spki = X509_REQ_get_X509_PUBKEY(csrs[i]->req);
			if (i == 1)
				p.key_usage = t_ku_digital_signature | t_ku_key_encipherment;
			CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == 0, "ca_issue %s with the SPKI",
			    i == 0 ? "EC" : "RSA");
			if (der != NULL)
				check_leaf(i == 0 ? "EC leaf, SPKI given" : "RSA leaf, SPKI given", der, len,
				    serial, issuing, root, nb, na, 90, i == 1, i == 0 ? ec_key : rsa_key);
			p.subject_spki = NULL;
			CHECK(ca_issue(ca, &p, &der2, &len2, &nb, &na) == 0, "ca_issue without the SPKI");
			n_req = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(csrs[i]->req), &spki_req);
			if (der != NULL && (q = der) != NULL && (a = d2i_X509(NULL, &q, (long)len)) != NULL)
				n_a = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(a), &spki_a);
			if (der2 != NULL && (q = der2) != NULL && (b = d2i_X509(NULL, &q, (long)len2)) != NULL)
				n_b = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(b), &spki_b);
			CHECK(n_req > 0 && n_a == n_req && n_b == n_req &&
			    memcmp(spki_a, spki_req, (size_t)n_req) == 0 &&
			    memcmp(spki_b, spki_req, (size_t)n_req) == 0,
			    "%s: the certificate's SubjectPublicKeyInfo is the request's, with or without it given",
			    i == 0 ? "EC" : "RSA");
			OPENSSL_free(spki_req);
			OPENSSL_free(spki_a);
			OPENSSL_free(spki_b);
			X509_free(a);
			X509_free(b);
			OPENSSL_free(der);
			OPENSSL_free(der2);
			der = NULL;
		}
	}

	/* A term beyond the issuing CA's life is capped at its notAfter. */
	fill_params(&p, serial, ec_csr.pkey, 100000);
	CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == 0, "ca_issue long term");
	if (der != NULL)
		check_leaf("capped leaf", der, len, serial, issuing, root, nb, na, 0, false, ec_key);
	OPENSSL_free(der);
	der = NULL;

	/* No subject at all: SAN only (then critical). */
	fill_params(&p, serial, ec_csr.pkey, 30);
	p.cn = p.o = p.ou = p.l = p.c = NULL;
	p.crl_url = NULL;
	p.ext_key_usage = 0;
	CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == 0, "ca_issue empty subject");
	if (der != NULL) {
		const unsigned char *q = der;
		X509 *x = d2i_X509(NULL, &q, (long)len);
		int crit = -1;
		GENERAL_NAMES *g = x ? X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL) : NULL;
		CHECK(x && X509_NAME_entry_count(X509_get_subject_name(x)) == 0 && g && crit == 1 &&
		    X509_get_ext_by_NID(x, NID_ext_key_usage, -1) < 0 &&
		    X509_get_ext_by_NID(x, NID_crl_distribution_points, -1) < 0 &&
		    verify_chain(x, issuing, root), "empty subject: critical SAN, no EKU/CRL DP");
		GENERAL_NAMES_free(g);
		X509_free(x);
	}
	OPENSSL_free(der);
	der = NULL;

	/* Bad parameters are refused before anything is signed. */
	const char *bad_serials[] = { "0", "00", "xyz", "-1",
		"1234567890123456789012345678901234567890A", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "" };
	for (size_t i = 0; i < sizeof(bad_serials) / sizeof(bad_serials[0]); i++) {
		fill_params(&p, serial, ec_csr.pkey, 30);
		p.serial_hex = bad_serials[i];
		CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == -1 && der == NULL,
		    "serial \"%s\" refused", bad_serials[i]);
	}
	fill_params(&p, serial, ec_csr.pkey, 0);
	CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == -1, "term 0 refused");
	fill_params(&p, serial, ec_csr.pkey, 30);
	p.c = "Germany";
	CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == -1, "C longer than 2 refused");
	fill_params(&p, serial, NULL, 30);
	CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == -1, "no key refused");

	csr_info_free(&ec_csr);
	csr_info_free(&rsa_csr);
}

static int
cmp_serial(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void
test_serials(void)
{
	static char s[1000][41];
	int i, bad = 0, dups = 0;
	BIGNUM *bn = NULL, *limit = NULL;

	BN_hex2bn(&limit, "80000000000000000000000000000000"); /* 2^127 */
	for (i = 0; i < 1000; i++) {
		size_t len, j;

		ca_new_serial(s[i]);
		len = strlen(s[i]);
		if (len == 0 || len > 32 || s[i][0] == '0')
			bad++;
		for (j = 0; j < len; j++)
			if (!((s[i][j] >= '0' && s[i][j] <= '9') || (s[i][j] >= 'A' && s[i][j] <= 'F')))
				bad++;
		BN_hex2bn(&bn, s[i]);
		if (BN_is_zero(bn) || BN_cmp(bn, limit) >= 0)
			bad++;
	}
	qsort(s, 1000, sizeof(s[0]), cmp_serial);
	for (i = 1; i < 1000; i++)
		if (strcmp(s[i - 1], s[i]) == 0)
			dups++;
	CHECK(bad == 0, "serial format: %d bad", bad);
	CHECK(dups == 0, "1000 serials unique: %d duplicates", dups);
	BN_free(bn);
	BN_free(limit);
}

static void
test_crl(struct ca *ca, char (*serials)[41])
{
	struct ca_revoked rev[2];
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	X509_CRL *crl = NULL;
	X509_REVOKED *entry = NULL;
	ASN1_INTEGER *num = NULL, *serial = NULL;
	BIGNUM *bn = NULL;
	time_t now = time(NULL);
	int i;

	rev[0].serial_hex = serials[0];
	rev[0].revoked_at = now - 3600;
	rev[0].reason = 1; /* keyCompromise */
	rev[1].serial_hex = serials[1];
	rev[1].revoked_at = now - 60;
	rev[1].reason = 4; /* superseded */
	CHECK(ca_crl(ca, 5, rev, 2, &der, &len) == 0, "ca_crl");
	p = der;
	crl = der ? d2i_X509_CRL(NULL, &p, (long)len) : NULL;
	CHECK(crl != NULL && p == der + len, "CRL parses");
	if (crl == NULL)
		goto out;
	CHECK(X509_CRL_verify(crl, X509_get0_pubkey(ca_issuing_cert(ca))) == 1,
	    "CRL verifies against the issuing CA");
	CHECK(X509_CRL_get_version(crl) == X509_CRL_VERSION_2, "CRL v2");
	CHECK(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca_issuing_cert(ca))) == 0,
	    "CRL issuer");
	num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	CHECK(num != NULL && ASN1_INTEGER_get(num) == 5, "crlNumber 5");
	{
		AUTHORITY_KEYID *akid = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL, NULL);
		CHECK(akid && akid->keyid &&
		    ASN1_OCTET_STRING_cmp(akid->keyid, X509_get0_subject_key_id(ca_issuing_cert(ca))) == 0,
		    "CRL AKI");
		AUTHORITY_KEYID_free(akid);
	}
	CHECK(asn1_time(X509_CRL_get0_lastUpdate(crl)) >= now - 2 &&
	    asn1_time(X509_CRL_get0_nextUpdate(crl)) - asn1_time(X509_CRL_get0_lastUpdate(crl)) == 7 * 86400,
	    "thisUpdate now, nextUpdate + 7 days");
	CHECK(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) == 2, "two entries");
	for (i = 0; i < 2; i++) {
		ASN1_ENUMERATED *reason = NULL;

		BN_hex2bn(&bn, rev[i].serial_hex);
		serial = BN_to_ASN1_INTEGER(bn, NULL);
		CHECK(X509_CRL_get0_by_serial(crl, &entry, serial) == 1, "entry %d listed", i);
		if (entry != NULL) {
			reason = X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, NULL, NULL);
			CHECK(reason && ASN1_ENUMERATED_get(reason) == rev[i].reason, "entry %d reason", i);
			CHECK(asn1_time(X509_REVOKED_get0_revocationDate(entry)) == rev[i].revoked_at,
			    "entry %d date", i);
		}
		ASN1_ENUMERATED_free(reason);
		ASN1_INTEGER_free(serial);
		entry = NULL;
	}
	OPENSSL_free(der);
	der = NULL;
	/* An empty CRL, and refused input. */
	CHECK(ca_crl(ca, 6, NULL, 0, &der, &len) == 0, "empty CRL");
	OPENSSL_free(der);
	der = NULL;
	rev[0].reason = 7;
	CHECK(ca_crl(ca, 7, rev, 1, &der, &len) == -1 && der == NULL, "reason 7 refused");
	rev[0].reason = 1;
	rev[0].serial_hex = "nothex";
	CHECK(ca_crl(ca, 7, rev, 1, &der, &len) == -1, "bad serial refused");
	CHECK(ca_crl(ca, -1, NULL, 0, &der, &len) == -1, "negative number refused");
out:
	ASN1_INTEGER_free(num);
	BN_free(bn);
	X509_CRL_free(crl);
	OPENSSL_free(der);
}

/* ---------- throughput ---------- */

struct bench {
	struct ca *ca;
	EVP_PKEY *key;
	int n;
	int failures;
};

static void *
bench_thread(void *arg)
{
	struct bench *b = arg;
	struct ca_issue_params p;
	char serial[41];
	unsigned char *der = NULL;
	size_t len;
	time_t nb, na;
	int i;

	for (i = 0; i < b->n; i++) {
		fill_params(&p, serial, b->key, 90);
		if (ca_issue(b->ca, &p, &der, &len, &nb, &na) != 0)
			b->failures++;
		OPENSSL_free(der);
		der = NULL;
	}
	return NULL;
}

static void
test_throughput(struct ca *ca, EVP_PKEY *key)
{
	struct bench b[4];
	pthread_t t[4];
	double t0, rate1, rate4;
	int i, fails = 0;
	const int n1 = 2000, n4 = 1000;

	memset(b, 0, sizeof(b));
	b[0].ca = ca;
	b[0].key = key;
	b[0].n = n1;
	t0 = now_s();
	bench_thread(&b[0]);
	rate1 = n1 / (now_s() - t0);
	fails += b[0].failures;

	t0 = now_s();
	for (i = 0; i < 4; i++) {
		b[i].ca = ca;
		b[i].key = key;
		b[i].n = n4;
		b[i].failures = 0;
		pthread_create(&t[i], NULL, bench_thread, &b[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		fails += b[i].failures;
	}
	rate4 = 4 * n4 / (now_s() - t0);
	printf("ca_issue throughput (EC P-256 CA and subject, %ld CPUs): 1 thread %.0f/s, "
	    "4 threads %.0f/s\n", sysconf(_SC_NPROCESSORS_ONLN), rate1, rate4);
	CHECK(fails == 0, "throughput: %d failed issuances", fails);
}

/* ---------- the signer, directly ---------- */

enum variant {
	V_OK, V_CA_TRUE, V_KEYCERTSIGN, V_CRLSIGN, V_WRONG_ISSUER, V_NO_BC, V_BC_NONCRIT,
	V_TOO_LONG, V_SUBJECT_IS_CA, V_DUP_EXT, V_PATHLEN, V_FOREIGN_ALG, V_NOT_DER,
};

static X509 *
test_cert(X509 *issuing, EVP_PKEY *key, enum variant v)
{
	X509 *x = X509_new();
	X509_NAME *subj = X509_NAME_new(), *other = X509_NAME_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	const char *bc = "critical,CA:FALSE";
	time_t now = time(NULL);

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)"leaf.test", -1, -1, 0);
	X509_NAME_add_entry_by_txt(other, "CN", MBSTRING_ASC, (const unsigned char *)"Evil CA", -1, -1, 0);
	X509_set_subject_name(x, v == V_SUBJECT_IS_CA ? X509_get_subject_name(issuing) : subj);
	X509_set_issuer_name(x, v == V_WRONG_ISSUER ? other : X509_get_subject_name(issuing));
	X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &now);
	if (v == V_TOO_LONG)
		X509_time_adj_ex(X509_getm_notAfter(x), 20000, 0, &now);
	else
		X509_time_adj_ex(X509_getm_notAfter(x), 1, 0, &now);
	X509_set_pubkey(x, key);
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuing, x, NULL, NULL, 0);
	if (v == V_CA_TRUE)
		bc = "critical,CA:TRUE";
	else if (v == V_BC_NONCRIT)
		bc = "CA:FALSE";
	else if (v == V_PATHLEN)
		bc = "critical,CA:FALSE,pathlen:0";
	if (v != V_NO_BC) {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, bc);
		X509_add_ext(x, ext, -1);
		if (v == V_DUP_EXT)
			X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage,
	    v == V_KEYCERTSIGN ? "critical,digitalSignature,keyCertSign" :
	    v == V_CRLSIGN ? "critical,cRLSign" : "critical,digitalSignature");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	X509_NAME_free(subj);
	X509_NAME_free(other);
	return x;
}

/* Rewrites the certificate der (len bytes, replaced) with the length of
 * its serial number in long form (0x81 n instead of n): valid BER that
 * OpenSSL may parse, but not DER. Returns the new length, or -1. */
static int
non_der_serial(unsigned char **der, int len)
{
	const unsigned char *p = *der, *tbs_content = NULL, *rest = NULL;
	unsigned char *out = NULL, *w = NULL, *tbs = NULL;
	long outer_len = 0, tbs_len = 0;
	int tag, xclass, new_tbs_content, new_tbs, total, serial_at, rest_len;

	/* Certificate SEQUENCE, then tbsCertificate SEQUENCE; in it [0]
	 * version (a0 03 02 01 02) and then the serial INTEGER. */
	if ((ASN1_get_object(&p, &outer_len, &tag, &xclass, len) & 0x80) ||
	    (ASN1_get_object(&p, &tbs_len, &tag, &xclass, (long)(*der + len - p)) & 0x80))
		return -1;
	tbs_content = p;
	rest = tbs_content + tbs_len; /* signatureAlgorithm, signature */
	rest_len = (int)(*der + len - rest);
	serial_at = 5;
	if (tbs_content[0] != 0xa0 || tbs_content[serial_at] != V_ASN1_INTEGER ||
	    tbs_content[serial_at + 1] >= 0x80)
		return -1;
	new_tbs_content = (int)tbs_len + 1;
	new_tbs = ASN1_object_size(1, new_tbs_content, V_ASN1_SEQUENCE);
	total = ASN1_object_size(1, new_tbs + rest_len, V_ASN1_SEQUENCE);
	if ((out = OPENSSL_malloc((size_t)total)) == NULL)
		return -1;
	w = out;
	ASN1_put_object(&w, 1, new_tbs + rest_len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	tbs = w;
	ASN1_put_object(&w, 1, new_tbs_content, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	memcpy(w, tbs_content, (size_t)serial_at + 1); /* version, INTEGER tag */
	w += serial_at + 1;
	*w++ = 0x81;
	memcpy(w, tbs_content + serial_at + 1, (size_t)tbs_len - (size_t)serial_at - 1);
	w += tbs_len - serial_at - 1;
	memcpy(w, rest, (size_t)rest_len);
	w += rest_len;
	if (w != out + total || w - tbs != new_tbs + rest_len) {
		OPENSSL_free(out);
		return -1;
	}
	OPENSSL_free(*der);
	*der = out;
	return total;
}

static enum signer_result
sign_variant(struct signer *s, X509 *issuing, EVP_PKEY *subject, EVP_PKEY *placeholder,
    enum variant v, bool trailing, X509 **signed_out)
{
	X509 *x = test_cert(issuing, subject, v);
	unsigned char *der = NULL, *out = NULL, *buf = NULL;
	size_t out_len = 0;
	int len;
	enum signer_result r;

	if (v == V_FOREIGN_ALG) {
		/* The to-be-signed part names Ed25519, not the CA's algorithm. */
		EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

		X509_sign(x, ed, NULL);
		EVP_PKEY_free(ed);
	} else
		X509_sign(x, placeholder, EVP_sha256());
	len = i2d_X509(x, &der);
	if (v == V_NOT_DER)
		len = non_der_serial(&der, len);
	buf = OPENSSL_malloc((size_t)len + 1);
	memcpy(buf, der, (size_t)len);
	buf[len] = 0;
	r = signer_sign(s, SIGNER_OP_SIGN_CERT, buf, (size_t)len + (trailing ? 1 : 0), &out, &out_len);
	if (r == SIGNER_SIGNED && signed_out != NULL) {
		const unsigned char *p = out;
		*signed_out = d2i_X509(NULL, &p, (long)out_len);
	}
	OPENSSL_free(out);
	OPENSSL_free(buf);
	OPENSSL_free(der);
	X509_free(x);
	return r;
}

static void
test_signer_direct(void)
{
	char issuing_path[PATH_MAX + 16], key_path[PATH_MAX + 16], root_key_path[PATH_MAX + 16];
	struct signer_params sp;
	struct signer *s = NULL;
	X509 *issuing = NULL, *signed_cert = NULL;
	EVP_PKEY *subject = EVP_EC_gen("P-256");
	/* what certificates are sent signed with: a key of the CA's kind
	 * (ec-p256), so that they name the CA's signature algorithm */
	EVP_PKEY *placeholder = EVP_EC_gen("P-256");
	EVP_PKEY *ed_placeholder = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	unsigned char *out = NULL;
	size_t out_len = 0, i;
	pid_t pids[16];
	size_t n;
	static const struct {
		enum variant v;
		const char *what;
	} refused[] = {
		{ V_CA_TRUE, "CA:TRUE" }, { V_KEYCERTSIGN, "keyCertSign" }, { V_CRLSIGN, "cRLSign" },
		{ V_WRONG_ISSUER, "other issuer" }, { V_NO_BC, "no basicConstraints" },
		{ V_BC_NONCRIT, "non-critical basicConstraints" }, { V_TOO_LONG, "outlives the CA" },
		{ V_SUBJECT_IS_CA, "subject is the CA" }, { V_DUP_EXT, "duplicate extension" },
		{ V_PATHLEN, "pathlen on a leaf" },
		{ V_FOREIGN_ALG, "another signature algorithm in the to-be-signed part" },
		{ V_NOT_DER, "a to-be-signed part in BER, not DER" },
	};

	snprintf(issuing_path, sizeof(issuing_path), "%s/issuing.pem", dir_ca);
	snprintf(key_path, sizeof(key_path), "%s/issuing.key", dir_ca);
	snprintf(root_key_path, sizeof(root_key_path), "%s/root.key", dir_ca);
	issuing = read_cert(issuing_path);

	/* A key that does not belong to the certificate: no start. */
	memset(&sp, 0, sizeof(sp));
	sp.key_path = root_key_path;
	sp.issuing = issuing;
	sp.user = as_root ? "enrolld" : NULL;
	sp.n_slots = 2;
	CHECK(signer_start(&sp, &s) == -1 && s == NULL, "signer refuses a mismatched key");
	sp.key_path = "/nonexistent/key.pem";
	CHECK(signer_start(&sp, &s) == -1, "signer refuses a missing key");

	sp.key_path = key_path;
	sp.n_slots = 2;
	CHECK(signer_start(&sp, &s) == 0, "signer_start");
	if (s == NULL)
		goto out;
	CHECK(sign_variant(s, issuing, subject, placeholder, V_OK, false, &signed_cert) == SIGNER_SIGNED &&
	    signed_cert != NULL && X509_verify(signed_cert, X509_get0_pubkey(issuing)) == 1,
	    "signer signs a proper leaf");
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		CHECK(sign_variant(s, issuing, subject, placeholder, refused[i].v, false, NULL) ==
		    SIGNER_REFUSED, "signer refuses: %s", refused[i].what);
	CHECK(sign_variant(s, issuing, subject, placeholder, V_OK, true, NULL) == SIGNER_REFUSED,
	    "signer refuses trailing bytes");
	CHECK(signer_sign(s, SIGNER_OP_SIGN_CERT, (const unsigned char *)"\x30\x03\x02\x01\x01", 5,
	    &out, &out_len) == SIGNER_REFUSED, "signer refuses garbage");
	CHECK(signer_sign(s, 99, (const unsigned char *)"x", 1, &out, &out_len) == SIGNER_REFUSED,
	    "signer refuses an unknown op");
	CHECK(signer_sign(s, SIGNER_OP_SIGN_CERT, NULL, 0, &out, &out_len) == SIGNER_REFUSED,
	    "signer refuses an empty request");
	{
		/* a CRL named for another issuer */
		X509_CRL *crl = X509_CRL_new();
		X509_NAME *other = X509_NAME_new();
		unsigned char *der = NULL;
		int len;

		X509_NAME_add_entry_by_txt(other, "CN", MBSTRING_ASC, (const unsigned char *)"Evil CA", -1, -1, 0);
		X509_CRL_set_version(crl, X509_CRL_VERSION_2);
		X509_CRL_set_issuer_name(crl, other);
		ASN1_TIME *t = ASN1_TIME_set(NULL, time(NULL));
		X509_CRL_set1_lastUpdate(crl, t);
		X509_CRL_sign(crl, ed_placeholder, NULL);
		len = i2d_X509_CRL(crl, &der);
		CHECK(signer_sign(s, SIGNER_OP_SIGN_CRL, der, (size_t)len, &out, &out_len) == SIGNER_REFUSED,
		    "signer refuses a CRL of another issuer");
		CHECK(signer_sign(s, SIGNER_OP_SIGN_CERT, der, (size_t)len, &out, &out_len) == SIGNER_REFUSED,
		    "signer refuses a CRL sent as a certificate");
		OPENSSL_free(der);
		ASN1_TIME_free(t);
		X509_NAME_free(other);
		X509_CRL_free(crl);
	}
	/* Still alive and signing after all that. */
	CHECK(sign_variant(s, issuing, subject, placeholder, V_OK, false, NULL) == SIGNER_SIGNED,
	    "signer still signs");

	/* The processes: unprivileged, not dumpable, only their socket (and
	 * stdio) open. */
	n = signer_pids(s, pids, 16);
	CHECK(n == 2, "two signer processes (%zu)", n);
	for (i = 0; i < n; i++) {
		char path[64], line[256];
		struct stat st;
		FILE *f;
		long uid = -1;
		int fds = 0;
		DIR *d;
		struct dirent *e;

		snprintf(path, sizeof(path), "/proc/%ld/status", (long)pids[i]);
		if ((f = fopen(path, "r")) != NULL) {
			while (fgets(line, sizeof(line), f))
				if (sscanf(line, "Uid: %ld", &uid) == 1)
					break;
			fclose(f);
		}
		snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pids[i]);
		if ((d = opendir(path)) != NULL) {
			while ((e = readdir(d)) != NULL)
				if (e->d_name[0] != '.')
					fds++;
			closedir(d);
		}
		CHECK(fds == 4, "signer %ld has %d fds (0, 1, 2, socket)", (long)pids[i], fds);
		if (as_root) {
			CHECK(uid == (long)user_uid, "signer %ld runs as uid %ld", (long)pids[i], uid);
			/* A non-dumpable process's /proc files belong to root. */
			snprintf(path, sizeof(path), "/proc/%ld/status", (long)pids[i]);
			CHECK(stat(path, &st) == 0 && st.st_uid == 0, "signer %ld not dumpable",
			    (long)pids[i]);
		}
	}
	/* Kill one signer: the other carries on. Kill both: signing fails. */
	if (n == 2) {
		kill(pids[0], SIGKILL);
		usleep(100000);
		for (i = 0; i < 4; i++)
			(void)sign_variant(s, issuing, subject, placeholder, V_OK, false, NULL);
		CHECK(signer_pids(s, pids + 2, 14) == 1, "dead signer retired");
		CHECK(sign_variant(s, issuing, subject, placeholder, V_OK, false, NULL) == SIGNER_SIGNED,
		    "survivor signs");
		kill(pids[1], SIGKILL);
		usleep(100000);
		CHECK(sign_variant(s, issuing, subject, placeholder, V_OK, false, NULL) == SIGNER_FAILED,
		    "no signer left: FAILED");
		CHECK(sign_variant(s, issuing, subject, placeholder, V_OK, false, NULL) == SIGNER_FAILED,
		    "still FAILED, no hang");
	}
out:
	signer_stop(s);
	X509_free(signed_cert);
	X509_free(issuing);
	EVP_PKEY_free(subject);
	EVP_PKEY_free(placeholder);
	EVP_PKEY_free(ed_placeholder);
}

/* ---------- "no CA private key in this process" ---------- */

struct needle {
	size_t len;
	unsigned char prefix[8];
	unsigned char hash[32];
	char what[40];
};

/* Reads `path` in a child and returns fingerprints of its secrets. */
static int
key_needles(const char *path, struct needle *out, int max)
{
	int pfd[2], n = 0, status;
	pid_t pid;
	ssize_t r;

	if (pipe(pfd) == -1)
		return 0;
	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct needle nd[3];
		unsigned char be[66], le[66], line[64];
		FILE *f = fopen(path, "r");
		EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
		BIGNUM *priv = NULL;
		char *text = NULL, *l2;
		int blen, i, count = 0;

		close(pfd[0]);
		if (f)
			fclose(f);
		if (k && EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &priv) == 1) {
			blen = (EVP_PKEY_get_bits(k) + 7) / 8;
			BN_bn2binpad(priv, be, blen);
			for (i = 0; i < blen; i++)
				le[i] = be[blen - 1 - i];
			nd[count].len = (size_t)blen;
			memcpy(nd[count].prefix, be, 8);
			SHA256(be, (size_t)blen, nd[count].hash);
			snprintf(nd[count].what, sizeof(nd[count].what), "scalar big-endian");
			count++;
			nd[count].len = (size_t)blen;
			memcpy(nd[count].prefix, le, 8);
			SHA256(le, (size_t)blen, nd[count].hash);
			snprintf(nd[count].what, sizeof(nd[count].what), "scalar little-endian");
			count++;
		}
		/* second base64 line of the PEM: mostly private key bytes */
		if ((text = read_text(path)) != NULL && (l2 = strchr(text, '\n')) != NULL &&
		    (l2 = strchr(l2 + 1, '\n')) != NULL && strlen(l2 + 1) > 64) {
			memcpy(line, l2 + 1, 64);
			nd[count].len = 64;
			memcpy(nd[count].prefix, line, 8);
			SHA256(line, 64, nd[count].hash);
			snprintf(nd[count].what, sizeof(nd[count].what), "PEM line");
			count++;
		}
		if (write(pfd[1], nd, sizeof(nd[0]) * (size_t)count) < 0)
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	while ((r = read(pfd[0], out + n, sizeof(*out))) == (ssize_t)sizeof(*out) && n + 1 < max)
		n++;
	close(pfd[0]);
	waitpid(pid, &status, 0);
	return n;
}

/* Counts occurrences of the needles in this process's readable memory. */
static int
scan_memory(const struct needle *nd, int count, bool show)
{
	struct region {
		unsigned long start, end;
	} *regions = calloc(4096, sizeof(*regions));
	const size_t chunk = 1 << 20, overlap = 128;
	unsigned char *buf = malloc(chunk + overlap), hash[32];
	char line[512], perms[8], name[256];
	int n_regions = 0, hits = 0, fd, i, k;
	FILE *maps = fopen("/proc/self/maps", "r");

	while (maps && fgets(line, sizeof(line), maps) && n_regions < 4096) {
		unsigned long s, e;
		name[0] = '\0';
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &s, &e, perms, name) < 3)
			continue;
		if (perms[0] != 'r' || strcmp(name, "[vvar]") == 0 || strcmp(name, "[vsyscall]") == 0)
			continue;
		/* Sanitizer shadow maps are terabytes of reserved zero pages
		 * that no heap object lives in. */
		if (e - s > (1UL << 32))
			continue;
		regions[n_regions].start = s;
		regions[n_regions].end = e;
		n_regions++;
	}
	if (maps)
		fclose(maps);
	fd = open("/proc/self/mem", O_RDONLY);
	for (i = 0; fd != -1 && i < n_regions; i++) {
		unsigned long off;
		for (off = regions[i].start; off < regions[i].end; off += chunk) {
			size_t want = regions[i].end - off < chunk + overlap ? regions[i].end - off
			    : chunk + overlap;
			ssize_t got = pread(fd, buf, want, (off_t)off);
			if (got <= 0)
				break;
			for (k = 0; k < count; k++) {
				unsigned char *p = buf, *end = buf + got;
				while (p < end && (p = memmem(p, (size_t)(end - p), nd[k].prefix, 8)) != NULL) {
					if ((size_t)(end - p) >= nd[k].len &&
					    (p - buf) < (ptrdiff_t)chunk) {
						SHA256(p, nd[k].len, hash);
						if (memcmp(hash, nd[k].hash, 32) == 0) {
							hits++;
							if (show)
								printf("  found %s at %#lx\n", nd[k].what,
							    off + (unsigned long)(p - buf));
						}
					}
					p++;
				}
			}
		}
	}
	if (fd != -1)
		close(fd);
	free(buf);
	free(regions);
	return hits;
}

static void
test_no_ca_key_in_memory(void)
{
	struct needle nd[8];
	char path[PATH_MAX + 16];
	int n = 0, hits;
	FILE *f;
	EVP_PKEY *tls = NULL;

	snprintf(path, sizeof(path), "%s/issuing.key", dir_ca);
	n += key_needles(path, nd + n, 8 - n);
	snprintf(path, sizeof(path), "%s/root.key", dir_ca);
	n += key_needles(path, nd + n, 8 - n);
	CHECK(n == 6, "fingerprints of both CA keys (%d)", n);
	hits = scan_memory(nd, n, true);
	CHECK(hits == 0, "no CA private key bytes in this process (%d found)", hits);

	/* Control: a key this process does load must be found. */
	snprintf(path, sizeof(path), "%s/tls.key", dir_ca);
	n = key_needles(path, nd, 8);
	if ((f = fopen(path, "r")) != NULL) {
		tls = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	hits = scan_memory(nd, n, false);
	CHECK(tls != NULL && hits >= 1, "control: the scan finds the loaded TLS key (%d)", hits);
	EVP_PKEY_free(tls);
}

/* ---------- files, reopen, configured CA ---------- */

static void
check_file(const char *name, mode_t mode)
{
	char path[PATH_MAX + 16];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir_ca, name);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == mode, "%s mode %o", name,
	    st.st_mode & 07777);
	if (as_root)
		CHECK(st.st_uid == user_uid, "%s owned by enrolld", name);
}

static void
check_tls(const char *want_dns, const char *want_ip, X509 *issuing)
{
	char path[PATH_MAX + 16];
	X509 *leaf = NULL, *second = NULL;
	FILE *f;
	EVP_PKEY *key = NULL;
	time_t limit = time(NULL) + 300 * 86400;

	snprintf(path, sizeof(path), "%s/tls.pem", dir_ca);
	if ((f = fopen(path, "r")) != NULL) {
		leaf = PEM_read_X509(f, NULL, NULL, NULL);
		second = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/tls.key", dir_ca);
	if ((f = fopen(path, "r")) != NULL) {
		key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	CHECK(leaf && second && X509_cmp(second, issuing) == 0, "tls.pem = leaf + issuing CA");
	CHECK(leaf && key && X509_check_private_key(leaf, key) == 1 && EVP_PKEY_is_a(key, "EC") &&
	    EVP_PKEY_get_bits(key) == 256, "tls.key is the P-256 key of the leaf");
	CHECK(leaf && X509_verify(leaf, X509_get0_pubkey(issuing)) == 1, "TLS leaf from issuing CA");
	CHECK(leaf && has_san(leaf, GEN_DNS, want_dns) && has_san(leaf, GEN_IPADD, want_ip),
	    "TLS SANs %s %s", want_dns, want_ip);
	CHECK(leaf && (X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER) &&
	    X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0) == 1, "TLS serverAuth");
	CHECK(leaf && X509_cmp_time(X509_get0_notAfter(leaf), &limit) == 1, "TLS valid ~1 year");
	X509_free(leaf);
	X509_free(second);
	EVP_PKEY_free(key);
}

/* A CA of key type `type` (bootstrapped in dir, owned as the rest of the
 * test's) issues through its signer for P-256, P-384 and RSA-2048 subject
 * keys, with and without the request's SubjectPublicKeyInfo, 100 long SANs
 * and a 64-character CN; every certificate verifies with the issuing key,
 * names the CA's signature algorithm inside and out, and certifies the
 * request's key; the CA signs a CRL that verifies. The signer refuses a to-be-signed
 * certificate that names another algorithm than the CA's, so each key type
 * is its own case. */
static void
test_ca_key_type(const struct enrolld_config *base, const char *dir, const char *type,
    int sig_nid, EVP_PKEY *const keys[3])
{
	static const char *const key_names[3] = { "P-256", "P-384", "RSA-2048" };
	static struct req_name names[100];
	struct enrolld_config cfg = *base;
	struct ca *ca = NULL;
	char cn[65], label[40];
	size_t k, i;
	int spki;

	for (i = 0; i < 100; i++) {
		names[i].kind = NAME_DNS;
		snprintf(names[i].value, sizeof(names[i].value),
		    "h%03zu.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com", i);
	}
	memset(cn, 'c', 60);
	memcpy(cn + 60, ".com", 5);
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", dir);
	snprintf(cfg.ca_key_type, sizeof(cfg.ca_key_type), "%s", type);
	CHECK(ca_open(&cfg, &ca) == 0, "[%s CA] ca_open bootstraps", type);
	if (ca == NULL)
		return;
	for (k = 0; k < 3; k++) {
		for (spki = 0; spki < 2; spki++) {
			struct csr_info csr;
			struct ca_issue_params p;
			X509_REQ *req = X509_REQ_new();
			unsigned char *req_der = NULL, *der = NULL;
			const unsigned char *q;
			char serial[41], err[128];
			size_t len = 0;
			time_t nb, na;
			X509 *x = NULL;
			int req_len = -1;

			snprintf(label, sizeof(label), "[%s CA, %s key, spki %s]", type, key_names[k],
			    spki ? "given" : "NULL");
			if (req == NULL || X509_REQ_set_pubkey(req, keys[k]) != 1 ||
			    X509_REQ_sign(req, keys[k], EVP_sha256()) <= 0 ||
			    (req_len = i2d_X509_REQ(req, &req_der)) <= 0 ||
			    csr_parse(req_der, (size_t)req_len, &csr, err, sizeof(err)) != 0) {
				CHECK(0, "%s a CSR", label);
				X509_REQ_free(req);
				OPENSSL_free(req_der);
				continue;
			}
			memset(&p, 0, sizeof(p));
			ca_new_serial(serial);
			p.serial_hex = serial;
			p.subject_key = csr.pkey;
			p.subject_spki = spki ? X509_REQ_get_X509_PUBKEY(csr.req) : NULL;
			p.cn = cn;
			p.o = "Example Org";
			p.names = names;
			p.n_names = 100;
			p.term_days = 90;
			p.key_usage = KEY_USAGE_DIGITAL_SIGNATURE;
			p.ext_key_usage = EKU_SERVER_AUTH;
			p.crl_url = CRL_URL;
			CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == 0, "%s issues", label);
			q = der;
			if (der != NULL && (x = d2i_X509(NULL, &q, (long)len)) != NULL) {
				EVP_PKEY *issuing_key = X509_get0_pubkey(ca_issuing_cert(ca));

				CHECK(X509_verify(x, issuing_key) == 1, "%s verifies with the issuing key",
				    label);
				CHECK(X509_get_signature_nid(x) == sig_nid, "%s the CA's signature algorithm",
				    label);
				CHECK(EVP_PKEY_eq(X509_get0_pubkey(x), keys[k]) == 1,
				    "%s certifies the request's key", label);
				CHECK(X509_get_ext_count(x) > 0, "%s has its extensions", label);
			} else
				CHECK(0, "%s a certificate that parses", label);
			X509_free(x);
			OPENSSL_free(der);
			csr_info_free(&csr);
			X509_REQ_free(req);
			OPENSSL_free(req_der);
		}
	}
	{
		struct ca_revoked rv[2] = { { "0A1B", 1700000000, 1 }, { "7F", 1700000001, 0 } };
		unsigned char *der = NULL;
		const unsigned char *q;
		X509_CRL *crl = NULL;
		size_t len = 0;

		CHECK(ca_crl(ca, 5, rv, 2, &der, &len) == 0, "[%s CA] signs a CRL", type);
		q = der;
		CHECK(der != NULL && (crl = d2i_X509_CRL(NULL, &q, (long)len)) != NULL &&
		    X509_CRL_verify(crl, X509_get0_pubkey(ca_issuing_cert(ca))) == 1,
		    "[%s CA] its CRL verifies", type);
		X509_CRL_free(crl);
		OPENSSL_free(der);
	}
	ca_close(ca);
}

int
main(void)
{
	struct enrolld_config cfg, cfg2;
	struct ca *ca = NULL;
	struct passwd *pw = NULL;
	char tmp[] = "/tmp/test_ca.XXXXXX", tmp2[] = "/tmp/test_ca2.XXXXXX";
	char path[PATH_MAX + 32], serials[2][41], cmd[PATH_MAX * 2];
	char *root_pem1 = NULL, *tls1 = NULL, *tls2 = NULL;
	X509 *root = NULL, *issuing1 = NULL;
	EVP_PKEY *ec_key = EVP_EC_gen("P-256"), *rsa_key = EVP_RSA_gen(2048);
	unsigned char *der = NULL;
	size_t len;
	struct ca_issue_params p;
	char serial[41];
	time_t nb, na;
	pid_t pids[32];
	int n, i;

	log_init(LOG_LEVEL_WARN);
	as_root = geteuid() == 0;
	if (mkdtemp(tmp) == NULL || mkdtemp(tmp2) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	config_defaults(&cfg);
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", tmp);
	if (as_root) {
		if ((pw = getpwnam("enrolld")) == NULL) {
			printf("user enrolld is needed when run as root\n");
			return 1;
		}
		user_uid = pw->pw_uid;
		if (chown(tmp, pw->pw_uid, pw->pw_gid) == -1 || chown(tmp2, pw->pw_uid, pw->pw_gid) == -1)
			perror("chown");
		snprintf(cfg.user, sizeof(cfg.user), "enrolld");
	} else
		cfg.user[0] = '\0';
	snprintf(dir_ca, sizeof(dir_ca), "%s/ca", tmp);

	/* 1. bootstrap */
	CHECK(ca_open(&cfg, &ca) == 0, "ca_open bootstraps");
	if (ca == NULL)
		goto out;
	check_file("root.pem", 0644);
	check_file("root.key", 0600);
	check_file("issuing.pem", 0644);
	check_file("issuing.key", 0600);
	check_file("tls.pem", 0644);
	check_file("tls.key", 0600);
	check_file(".", 0700);
	snprintf(path, sizeof(path), "%s/root.pem", dir_ca);
	root = read_cert(path);
	CHECK(root && X509_check_ca(root) == 1 &&
	    X509_NAME_cmp(X509_get_subject_name(root), X509_get_issuer_name(root)) == 0,
	    "root is a self-signed CA");
	CHECK(strcmp(ca_root_cert_path(ca), path) == 0, "ca_root_cert_path");
	CHECK(ca_root_pem(ca) && root_pem1 == NULL && strstr(ca_chain_pem(ca), ca_root_pem(ca)) != NULL,
	    "chain contains the root");
	root_pem1 = strdup(ca_root_pem(ca));
	issuing1 = X509_dup(ca_issuing_cert(ca));
	{
		/* the issuing PEM ACME serves after the leaf: ca_der_to_pem()'s
		 * spelling of the issuing certificate, and the chain's start */
		unsigned char *issuing_der = NULL;
		int der_len = i2d_X509(ca_issuing_cert(ca), &issuing_der);
		char *pem = der_len > 0 ? ca_der_to_pem(issuing_der, (size_t)der_len) : NULL;

		CHECK(pem != NULL && ca_issuing_pem(ca) != NULL &&
		        strcmp(pem, ca_issuing_pem(ca)) == 0 &&
		        strncmp(ca_chain_pem(ca), pem, strlen(pem)) == 0,
		    "ca_issuing_pem is the issuing certificate, as ca_der_to_pem writes it");
		free(pem);
		OPENSSL_free(issuing_der);
	}
	CHECK(strcmp(ca_issuer_name(ca), "default") == 0, "issuer name");
	{
		BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(issuing1, NID_basic_constraints, NULL, NULL);
		CHECK(bc && bc->ca && bc->pathlen && ASN1_INTEGER_get(bc->pathlen) == 0 &&
		    (X509_get_key_usage(issuing1) & KU_KEY_CERT_SIGN) &&
		    (X509_get_key_usage(issuing1) & KU_CRL_SIGN), "issuing CA pathlen 0, keyCertSign");
		BASIC_CONSTRAINTS_free(bc);
	}
	check_tls("localhost", "::1", issuing1);
	n = child_pids(pids, 32);
	CHECK(n == cfg.workers, "%d signer processes for %d workers", n, cfg.workers);

	/* 2. issuance, serials, CRL */
	test_issue(ca, root, ec_key, rsa_key, serials);
	test_serials();
	test_crl(ca, serials);
	test_no_ca_key_in_memory();
	test_throughput(ca, ec_key);
	ca_close(ca);
	ca = NULL;
	CHECK(child_pids(pids, 32) == 0, "ca_close reaps the signers");

	/* 3. the signer on its own */
	test_signer_direct();

	/* 4. reopen: same CA, same TLS certificate */
	snprintf(path, sizeof(path), "%s/tls.pem", dir_ca);
	tls1 = read_text(path);
	CHECK(ca_open(&cfg, &ca) == 0, "second ca_open");
	if (ca == NULL)
		goto out;
	CHECK(strcmp(root_pem1, ca_root_pem(ca)) == 0 && X509_cmp(issuing1, ca_issuing_cert(ca)) == 0,
	    "second ca_open loads the same CA");
	tls2 = read_text(path);
	CHECK(tls1 && tls2 && strcmp(tls1, tls2) == 0, "TLS certificate kept");
	free(tls2);
	tls2 = NULL;
	fill_params(&p, serial, ec_key, 10);
	CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == 0 && der != NULL, "issue after reopen");
	if (der != NULL)
		check_leaf("reopened", der, len, serial, issuing1, root, nb, na, 10, false, ec_key);
	OPENSSL_free(der);
	der = NULL;
	test_no_ca_key_in_memory();
	/* Signers gone: ca_issue fails (and does not hang). */
	n = child_pids(pids, 32);
	for (i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	usleep(200000);
	fill_params(&p, serial, ec_key, 10);
	CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == -1 && der == NULL,
	    "ca_issue fails when the signers are dead");
	CHECK(ca_crl(ca, 9, NULL, 0, &der, &len) == -1, "ca_crl fails when the signers are dead");
	ca_close(ca);
	ca = NULL;

	/* 5. new tls_names: a new TLS certificate, same CA */
	snprintf(cfg.tls_names, sizeof(cfg.tls_names), "enrolld.test, 127.0.0.2");
	cfg.workers = 2;
	CHECK(ca_open(&cfg, &ca) == 0, "ca_open with new tls_names");
	tls2 = read_text(path);
	CHECK(tls1 && tls2 && strcmp(tls1, tls2) != 0, "TLS certificate re-issued");
	if (ca != NULL)
		check_tls("enrolld.test", "127.0.0.2", ca_issuing_cert(ca));
	ca_close(ca);
	ca = NULL;

	/* 6. configured CA files, from another state dir */
	config_defaults(&cfg2);
	snprintf(cfg2.state_dir, sizeof(cfg2.state_dir), "%s", tmp2);
	snprintf(cfg2.user, sizeof(cfg2.user), "%s", cfg.user);
	cfg2.workers = 1;
	snprintf(cfg2.ca_issuing_cert, sizeof(cfg2.ca_issuing_cert), "%s/issuing.pem", dir_ca);
	snprintf(cfg2.ca_issuing_key, sizeof(cfg2.ca_issuing_key), "%s/root.key", dir_ca);
	snprintf(cfg2.ca_root_cert, sizeof(cfg2.ca_root_cert), "%s/root.pem", dir_ca);
	CHECK(ca_open(&cfg2, &ca) == -1 && ca == NULL, "configured CA with the wrong key refused");
	snprintf(cfg2.ca_issuing_key, sizeof(cfg2.ca_issuing_key), "%s/issuing.key", dir_ca);
	cfg2.ca_root_cert[0] = '\0';
	CHECK(ca_open(&cfg2, &ca) == -1, "configured non-self-signed CA without root refused");
	snprintf(cfg2.ca_root_cert, sizeof(cfg2.ca_root_cert), "%s/root.pem", dir_ca);
	CHECK(ca_open(&cfg2, &ca) == 0, "configured CA loads");
	if (ca != NULL) {
		CHECK(X509_cmp(issuing1, ca_issuing_cert(ca)) == 0, "configured: same issuing CA");
		snprintf(path, sizeof(path), "%s/ca/root.key", tmp2);
		CHECK(access(path, F_OK) == -1, "configured: no CA bootstrapped");
		snprintf(path, sizeof(path), "%s/ca/tls.pem", tmp2);
		CHECK(access(path, F_OK) == 0, "configured: TLS certificate made");
		fill_params(&p, serial, ec_key, 10);
		CHECK(ca_issue(ca, &p, &der, &len, &nb, &na) == 0, "configured: issue");
		if (der != NULL)
			check_leaf("configured", der, len, serial, issuing1, root, nb, na, 10, false, ec_key);
		OPENSSL_free(der);
		der = NULL;
	}
	ca_close(ca);
	ca = NULL;

	/* 7. a bad key type is refused at bootstrap */
	config_defaults(&cfg2);
	snprintf(cfg2.state_dir, sizeof(cfg2.state_dir), "%s/sub", tmp2);
	snprintf(cfg2.user, sizeof(cfg2.user), "%s", cfg.user);
	snprintf(cfg2.ca_key_type, sizeof(cfg2.ca_key_type), "dsa-1024");
	CHECK(ca_open(&cfg2, &ca) == -1, "unknown ca_key_type refused");

	/* 8. P-384 and RSA CAs issue through the signer (P-256 above) */
	{
		EVP_PKEY *keys[3] = { EVP_EC_gen("P-256"), EVP_EC_gen("P-384"), EVP_RSA_gen(2048) };

		CHECK(keys[0] != NULL && keys[1] != NULL && keys[2] != NULL, "subject keys");
		if (keys[0] != NULL && keys[1] != NULL && keys[2] != NULL) {
			snprintf(path, sizeof(path), "%s/p384", tmp2);
			test_ca_key_type(&cfg2, path, "ec-p384", NID_ecdsa_with_SHA384, keys);
			snprintf(path, sizeof(path), "%s/rsa", tmp2);
			test_ca_key_type(&cfg2, path, "rsa-2048", NID_sha256WithRSAEncryption, keys);
		}
		for (i = 0; i < 3; i++)
			EVP_PKEY_free(keys[i]);
	}
out:
	ca_close(ca);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", tmp, tmp2);
	if (system(cmd) != 0)
		printf("could not remove %s %s\n", tmp, tmp2);
	free(root_pem1);
	free(tls1);
	free(tls2);
	X509_free(root);
	X509_free(issuing1);
	EVP_PKEY_free(ec_key);
	EVP_PKEY_free(rsa_key);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
