/*
 * test_csr.c: csr_parse() and csr_key_classify() against requests made here
 * with the OpenSSL API: every key class and reason, the three input forms,
 * corrupt input, and the name rules (canonical, de-duplicated, refused
 * types). Table-driven; prints "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "csr.h"
#include "types.h" /* before x509v3.h: see core/csr.c */

#include <openssl/x509v3.h>

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
		}                                                              \
	} while (0)

static bool
streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* ---------- keys ---------- */

static EVP_PKEY *
gen_ec(const char *curve)
{
	return EVP_EC_gen(curve);
}

static EVP_PKEY *
gen_rsa(unsigned bits, unsigned long e)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *key = NULL;
	BIGNUM *bn = BN_new();

	if (ctx == NULL || bn == NULL || EVP_PKEY_keygen_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits) != 1 || BN_set_word(bn, e) != 1 ||
	    EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, bn) != 1 || EVP_PKEY_keygen(ctx, &key) != 1)
		key = NULL;
	EVP_PKEY_CTX_free(ctx);
	BN_free(bn);
	return key;
}

/* ---------- CSRs ---------- */

/* A CSR for key with subject CN (NULL: none) and SAN in OpenSSL config
 * syntax (NULL: none). Returns DER length and *der (OPENSSL_free). */
static int
make_csr(EVP_PKEY *key, const char *cn, const char *san, unsigned char **der)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	const EVP_MD *md = EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256();
	int len = -1;

	*der = NULL;
	if (req == NULL || name == NULL)
		goto out;
	if (cn != NULL && X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1)
		goto out;
	if (X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, key) != 1)
		goto out;
	if (san != NULL) {
		if ((exts = sk_X509_EXTENSION_new_null()) == NULL ||
		    (ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san)) == NULL ||
		    sk_X509_EXTENSION_push(exts, ext) == 0)
			goto out;
		ext = NULL;
		if (X509_REQ_add_extensions(req, exts) != 1)
			goto out;
	}
	if (X509_REQ_sign(req, key, md) <= 0)
		goto out;
	len = i2d_X509_REQ(req, der);
out:
	if (len <= 0)
		ERR_print_errors_fp(stdout);
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return len;
}

static char *
to_base64(const unsigned char *der, int len, bool lines)
{
	char *out = malloc((size_t)len * 2 + 16), *w = out;
	int i, chunk = lines ? 48 : len;

	for (i = 0; i < len; i += chunk) {
		int n = len - i < chunk ? len - i : chunk;
		w += EVP_EncodeBlock((unsigned char *)w, der + i, n);
		if (lines)
			*w++ = '\n';
	}
	*w = '\0';
	return out;
}

static char *
to_pem(const unsigned char *der, int len, const char *label)
{
	char *b64 = to_base64(der, len, true);
	size_t cap = strlen(b64) + 200;
	char *pem = malloc(cap);

	snprintf(pem, cap, "-----BEGIN %s-----\n%s-----END %s-----\n", label, b64, label);
	free(b64);
	return pem;
}

/* ---------- key table ---------- */

struct key_case {
	const char *label;
	EVP_PKEY *key;
	unsigned want_type;
	const char *want_reject;
};

static void
test_keys(EVP_PKEY *p256)
{
	struct key_case cases[] = {
		{ "EC P-256", p256, KEY_TYPE_P256, NULL },
		{ "EC P-384", gen_ec("P-384"), KEY_TYPE_P384, NULL },
		{ "EC P-521", gen_ec("P-521"), KEY_TYPE_P521, NULL },
		{ "EC secp256k1", gen_ec("secp256k1"), 0, "ec_curve_not_allowed" },
		{ "EC brainpoolP256r1", gen_ec("brainpoolP256r1"), 0, "ec_curve_not_allowed" },
		{ "RSA 1024", gen_rsa(1024, 65537), 0, "rsa_too_small" },
		{ "RSA 2048 e=3", gen_rsa(2048, 3), 0, "rsa_bad_exponent" },
		{ "RSA 2056", gen_rsa(2056, 65537), 0, "rsa_bad_size" },
		{ "Ed25519", EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), 0, "key_type_unknown" },
		{ "X25519", EVP_PKEY_Q_keygen(NULL, NULL, "X25519"), 0, "key_type_unknown" },
	};
	const char *reject = NULL;
	struct csr_info info;
	unsigned char *der = NULL;
	char err[128];
	size_t i;
	int len;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct key_case *c = &cases[i];

		if (c->key == NULL) {
			CHECK(0, "%s: key generation failed", c->label);
			continue;
		}
		reject = "unset";
		CHECK(csr_key_classify(c->key, &reject) == c->want_type &&
		    streq(reject, c->want_reject), "%s: classify gave reject %s", c->label,
		    reject ? reject : "NULL");
		if (strcmp(c->label, "X25519") == 0)
			continue; /* cannot sign a CSR */
		len = make_csr(c->key, "www.example.com", NULL, &der);
		CHECK(len > 0, "%s: make_csr", c->label);
		if (len <= 0)
			continue;
		CHECK(csr_parse(der, (size_t)len, &info, err, sizeof(err)) == 0, "%s: parse: %s",
		    c->label, err);
		CHECK(info.signature_ok, "%s: signature_ok", c->label);
		CHECK(info.key_type == c->want_type && streq(info.key_reject, c->want_reject),
		    "%s: csr key_type %u reject %s", c->label, info.key_type,
		    info.key_reject ? info.key_reject : "NULL");
		csr_info_free(&info);
		OPENSSL_free(der);
		der = NULL;
	}
	reject = NULL;
	CHECK(csr_key_classify(NULL, &reject) == 0 && streq(reject, "key_type_unknown"),
	    "classify(NULL)");
	for (i = 1; i < sizeof(cases) / sizeof(cases[0]); i++)
		EVP_PKEY_free(cases[i].key);
}

/* A P-256 key whose public key is encoded with explicit curve parameters. */
static void
test_explicit_curve(void)
{
	EVP_PKEY *key = gen_ec("P-256");
	struct csr_info info;
	unsigned char *der = NULL;
	const char *reject = NULL;
	char err[128];
	int len;

	if (key == NULL || EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING,
	    OSSL_PKEY_EC_ENCODING_EXPLICIT) != 1) {
		CHECK(0, "explicit-parameter key");
		EVP_PKEY_free(key);
		return;
	}
	CHECK(csr_key_classify(key, &reject) == 0 && streq(reject, "ec_curve_not_allowed"),
	    "explicit P-256: classify reject %s", reject ? reject : "NULL");
	len = make_csr(key, "www.example.com", NULL, &der);
	CHECK(len > 0, "explicit: make_csr");
	if (len > 0) {
		CHECK(csr_parse(der, (size_t)len, &info, err, sizeof(err)) == 0, "explicit: parse %s",
		    err);
		CHECK(info.key_type == 0 && streq(info.key_reject, "ec_curve_not_allowed"),
		    "explicit: csr reject %s", info.key_reject ? info.key_reject : "NULL");
		csr_info_free(&info);
	}
	OPENSSL_free(der);
	EVP_PKEY_free(key);
}

/* The P-256 public point with its last byte changed: no longer on the
 * curve. Parses as PKCS#10, key refused as ec_invalid_point. */
static void
test_invalid_point(EVP_PKEY *p256)
{
	unsigned char point[133], *der = NULL, *hit = NULL;
	size_t plen = 0;
	struct csr_info info;
	char err[128];
	int len, flips = 0, tries;

	CHECK(EVP_PKEY_get_octet_string_param(p256, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
	    sizeof(point), &plen) == 1 && plen == 65, "encoded point");
	len = make_csr(p256, "www.example.com", NULL, &der);
	hit = len > 0 ? memmem(der, (size_t)len, point, plen) : NULL;
	CHECK(hit != NULL, "point inside the CSR");
	if (hit == NULL)
		goto out;
	/* A changed y is off the curve unless it happens to be the other
	 * root; try a few values until OpenSSL refuses the point. */
	for (tries = 0; tries < 8; tries++) {
		hit[plen - 1] ^= (unsigned char)(1 << tries);
		CHECK(csr_parse(der, (size_t)len, &info, err, sizeof(err)) == 0,
		    "invalid point: parse %s", err);
		if (info.pkey == NULL) {
			CHECK(info.key_type == 0 && streq(info.key_reject, "ec_invalid_point") &&
			    !info.signature_ok, "invalid point: reject %s sig %d",
			    info.key_reject ? info.key_reject : "NULL", info.signature_ok);
			flips++;
		}
		csr_info_free(&info);
		hit[plen - 1] ^= (unsigned char)(1 << tries);
		if (flips)
			break;
	}
	CHECK(flips == 1, "some off-curve point was refused");
out:
	OPENSSL_free(der);
}

/* ---------- point encodings ---------- */

/* A CSR whose SubjectPublicKeyInfo is an EC key on curve_nid with exactly
 * the encoded point given (whatever it is), signed by key. */
static int
make_csr_point(EVP_PKEY *key, int curve_nid, const unsigned char *point, size_t point_len,
    unsigned char **der)
{
	X509_REQ *req = X509_REQ_new();
	unsigned char *copy = OPENSSL_memdup(point, point_len);
	int len = -1;

	*der = NULL;
	if (req == NULL || copy == NULL ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req), NID_commonName,
	    MBSTRING_UTF8, (const unsigned char *)"point.example.com", -1, -1, 0) != 1 ||
	    X509_PUBKEY_set0_param(X509_REQ_get_X509_PUBKEY(req),
	    OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT, OBJ_nid2obj(curve_nid), copy,
	    (int)point_len) != 1)
		goto out;
	copy = NULL;
	if (X509_REQ_sign(req, key, EVP_sha256()) <= 0)
		goto out;
	len = i2d_X509_REQ(req, der);
out:
	OPENSSL_free(copy);
	X509_REQ_free(req);
	return len;
}

/*
 * Every way of writing a point, on each allowed curve: what the key is
 * judged to be does not depend on how the key object was made (csr.c
 * builds these keys itself and skips checks the point decoding already
 * made; this pins down that the outcome is the same as OpenSSL's own
 * decoder and EVP_PKEY_public_check_quick() give).
 */
static void
test_point_encodings(void)
{
	static const struct {
		const char *curve;
		int nid;
		unsigned type;
	} curves[] = {
		{ "P-256", NID_X9_62_prime256v1, KEY_TYPE_P256 },
		{ "P-384", NID_secp384r1, KEY_TYPE_P384 },
		{ "P-521", NID_secp521r1, KEY_TYPE_P521 },
	};
	enum { UNCOMPRESSED, COMPRESSED, HYBRID, INFINITY_POINT, X_IS_P, SHORT, LONG, BAD_FORM,
		N_ENCODINGS };
	static const char *const names[N_ENCODINGS] = { "uncompressed", "compressed", "hybrid",
		"infinity", "x = p", "short", "long", "form 0x05" };

	for (size_t c = 0; c < sizeof(curves) / sizeof(curves[0]); c++) {
		EVP_PKEY *key = gen_ec(curves[c].curve);
		BIGNUM *field = NULL;
		unsigned char unc[1 + 2 * 66 + 1], pt[1 + 2 * 66 + 1], *der = NULL;
		size_t unc_len = 0, flen, pt_len;
		struct csr_info info;
		char err[128];
		int len;

		CHECK(key != NULL && EVP_PKEY_get_octet_string_param(key,
		    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, unc, sizeof(unc), &unc_len) == 1 &&
		    unc[0] == 0x04 && EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_P, &field) == 1,
		    "%s: key", curves[c].curve);
		if (field == NULL) {
			EVP_PKEY_free(key);
			continue;
		}
		flen = (unc_len - 1) / 2;
		for (int e = 0; e < N_ENCODINGS; e++) {
			bool want_ok = e == UNCOMPRESSED || e == COMPRESSED || e == HYBRID;
			bool y_odd = (unc[unc_len - 1] & 1) != 0;

			memcpy(pt, unc, unc_len);
			pt_len = unc_len;
			switch (e) {
			case COMPRESSED:
				pt[0] = y_odd ? 0x03 : 0x02;
				pt_len = 1 + flen;
				break;
			case HYBRID:
				pt[0] = y_odd ? 0x07 : 0x06;
				break;
			case INFINITY_POINT:
				pt[0] = 0x00;
				pt_len = 1;
				break;
			case X_IS_P:
				BN_bn2binpad(field, pt + 1, (int)flen);
				break;
			case SHORT:
				pt_len--;
				break;
			case LONG:
				pt[pt_len++] = 0;
				break;
			case BAD_FORM:
				pt[0] = 0x05;
				break;
			}
			len = make_csr_point(key, curves[c].nid, pt, pt_len, &der);
			CHECK(len > 0, "%s %s: make_csr_point", curves[c].curve, names[e]);
			if (len <= 0)
				continue;
			CHECK(csr_parse(der, (size_t)len, &info, err, sizeof(err)) == 0,
			    "%s %s: parse %s", curves[c].curve, names[e], err);
			if (want_ok)
				CHECK(info.pkey != NULL && info.key_type == curves[c].type &&
				    info.key_reject == NULL && info.signature_ok &&
				    EVP_PKEY_eq(info.pkey, key) == 1,
				    "%s %s: type %u reject %s sig %d", curves[c].curve, names[e],
				    info.key_type, info.key_reject ? info.key_reject : "NULL",
				    info.signature_ok);
			else
				CHECK(info.key_type == 0 && streq(info.key_reject, "ec_invalid_point") &&
				    !info.signature_ok,
				    "%s %s: type %u reject %s sig %d", curves[c].curve, names[e],
				    info.key_type, info.key_reject ? info.key_reject : "NULL",
				    info.signature_ok);
			csr_info_free(&info);
			OPENSSL_free(der);
			der = NULL;
		}
		BN_free(field);
		EVP_PKEY_free(key);
	}
}

/* ---------- forms and corruption ---------- */

static void
test_forms(EVP_PKEY *p256)
{
	unsigned char *der = NULL, *bad = NULL;
	char *pem = NULL, *pem_new = NULL, *b64 = NULL, *b64_flat = NULL, *b64url = NULL, *text = NULL;
	char err[128];
	struct csr_info info;
	size_t i;
	int len;

	len = make_csr(p256, "forms.example.com", NULL, &der);
	CHECK(len > 0, "forms: make_csr");
	if (len <= 0)
		return;
	pem = to_pem(der, len, "CERTIFICATE REQUEST");
	pem_new = to_pem(der, len, "NEW CERTIFICATE REQUEST");
	b64 = to_base64(der, len, true);
	b64_flat = to_base64(der, len, false);
	/* base64url without padding, as an ACME client sends it */
	b64url = strdup(b64_flat);
	for (i = 0; b64url[i]; i++) {
		if (b64url[i] == '+')
			b64url[i] = '-';
		else if (b64url[i] == '/')
			b64url[i] = '_';
		else if (b64url[i] == '=')
			b64url[i] = '\0';
	}
	text = malloc(strlen(pem) + 64);
	sprintf(text, "Certificate Request:\n    Data: ...\n%s", pem);

	struct {
		const char *label;
		const void *data;
		size_t len;
	} ok_cases[] = {
		{ "DER", der, (size_t)len },
		{ "PEM", pem, strlen(pem) },
		{ "PEM NEW", pem_new, strlen(pem_new) },
		{ "PEM after text", text, strlen(text) },
		{ "base64 lines", b64, strlen(b64) },
		{ "base64 flat", b64_flat, strlen(b64_flat) },
		{ "base64url", b64url, strlen(b64url) },
	};
	for (i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		int r = csr_parse(ok_cases[i].data, ok_cases[i].len, &info, err, sizeof(err));
		CHECK(r == 0 && info.signature_ok && info.key_type == KEY_TYPE_P256 &&
		    info.n_names == 1 && streq(info.names[0].value, "forms.example.com"),
		    "form %s: r %d err %s", ok_cases[i].label, r, err);
		csr_info_free(&info);
	}

	/* Broken signature: flip a byte of the signature (the last bytes). */
	bad = OPENSSL_memdup(der, (size_t)len);
	bad[len - 1] ^= 0x01;
	CHECK(csr_parse(bad, (size_t)len, &info, err, sizeof(err)) == 0 && !info.signature_ok &&
	    info.key_type == KEY_TYPE_P256, "flipped signature: parses, signature_ok false");
	csr_info_free(&info);
	/* and a byte of the signed content: the subject */
	memcpy(bad, der, (size_t)len);
	{
		unsigned char *cn = memmem(bad, (size_t)len, "forms", 5);
		CHECK(cn != NULL, "cn in DER");
		if (cn != NULL)
			cn[0] = 'F';
	}
	CHECK(csr_parse(bad, (size_t)len, &info, err, sizeof(err)) == 0 && !info.signature_ok,
	    "changed subject: signature_ok false");
	csr_info_free(&info);

	/* Not a CSR at all: -1. */
	static const char garbage[] = "hello, world";
	static const unsigned char der_garbage[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
	unsigned char *trailing = OPENSSL_malloc((size_t)len + 1);
	unsigned char *huge = OPENSSL_zalloc(70000);
	char *wrong_label = to_pem(der, len, "CERTIFICATE");
	char *truncated_pem = strdup(pem);
	memcpy(trailing, der, (size_t)len);
	trailing[len] = 0;
	truncated_pem[strlen(truncated_pem) / 2] = '\0';
	huge[0] = 0x30;
	struct {
		const char *label;
		const void *data;
		size_t len;
	} bad_cases[] = {
		{ "garbage text", garbage, strlen(garbage) },
		{ "empty", "", 0 },
		{ "whitespace", " \n\t", 3 },
		{ "DER not a request", der_garbage, sizeof(der_garbage) },
		{ "DER truncated", der, (size_t)len - 10 },
		{ "DER trailing byte", trailing, (size_t)len + 1 },
		{ "PEM other label", wrong_label, strlen(wrong_label) },
		{ "PEM unterminated", truncated_pem, strlen(truncated_pem) },
		{ "base64 with junk", "MIIB!!!", 7 },
		{ "over 64 KiB", huge, 70000 },
	};
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		err[0] = '\0';
		int r = csr_parse(bad_cases[i].data, bad_cases[i].len, &info, err, sizeof(err));
		CHECK(r == -1 && err[0] != '\0' && info.req == NULL, "garbage %s: r %d",
		    bad_cases[i].label, r);
		if (r == 0)
			csr_info_free(&info);
	}
	CHECK(csr_parse(NULL, 10, &info, err, sizeof(err)) == -1, "NULL input");

	OPENSSL_free(trailing);
	OPENSSL_free(huge);
	free(wrong_label);
	free(truncated_pem);
	OPENSSL_free(bad);
	OPENSSL_free(der);
	free(pem);
	free(pem_new);
	free(b64);
	free(b64_flat);
	free(b64url);
	free(text);
}

/* ---------- names ---------- */

struct name_case {
	const char *label;
	const char *cn;
	const char *san;
	const char *want_error;		/* NULL: none */
	const char *want_error_value;	/* substring, or NULL */
	const char *want_cn;
	const char *want_names[8];	/* typed "dns:..", in order */
};

static void
typed(const struct req_name *n, char *out, size_t len)
{
	snprintf(out, len, "%s:%s", n->kind == NAME_DNS ? "dns" : n->kind == NAME_IP ? "ip" : "email",
	    n->value);
}

static void
test_names(EVP_PKEY *p256)
{
	static const struct name_case cases[] = {
		{ "canonical and de-duplicated", "WWW.Example.COM.",
		    "DNS:www.example.com,DNS:Mail.Example.com.,IP:192.0.2.1,IP:2001:DB8:0:0::1,"
		    "email:User@Example.COM,DNS:MAIL.example.com,IP:192.0.2.1",
		    NULL, NULL, "www.example.com",
		    { "dns:www.example.com", "dns:mail.example.com", "ip:192.0.2.1", "ip:2001:db8::1",
			"email:User@example.com" } },
		{ "CN only", "host.example.org", NULL, NULL, NULL, "host.example.org",
		    { "dns:host.example.org" } },
		{ "CN IP", "10.1.2.3", NULL, NULL, NULL, "10.1.2.3", { "ip:10.1.2.3" } },
		{ "CN e-mail", "alice@Example.ORG", NULL, NULL, NULL, "alice@example.org",
		    { "email:alice@example.org" } },
		{ "no CN, SAN only", NULL, "DNS:a.example.com", NULL, NULL, "", { "dns:a.example.com" } },
		{ "wildcard", "*.Example.com", NULL, NULL, NULL, "*.example.com", { "dns:*.example.com" } },
		{ "URI SAN", "www.example.com", "DNS:www.example.com,URI:https://evil.example/",
		    "name_type_not_allowed", "URI:https://evil.example/", NULL, { NULL } },
		{ "otherName SAN", "www.example.com", "otherName:1.3.6.1.4.1.311.20.2.3;UTF8:u@x",
		    "name_type_not_allowed", "otherName", NULL, { NULL } },
		{ "dirName SAN", "www.example.com", "RID:1.2.3.4", "name_type_not_allowed",
		    "registeredID", NULL, { NULL } },
		{ "bad DNS SAN", "www.example.com", "DNS:bad_name.example.com", "name_invalid",
		    "bad_name.example.com", NULL, { NULL } },
		{ "U-label SAN", "www.example.com", "DNS:b\xc3\xbc" "cher.example", "name_invalid", NULL,
		    NULL, { NULL } },
		{ "bad e-mail SAN", NULL, "email:no-at-sign", "name_invalid", "no-at-sign", NULL, { NULL } },
		{ "person CN", "John Smith", NULL, "name_invalid", "John Smith", NULL, { NULL } },
		{ "no names", NULL, NULL, NULL, NULL, "", { NULL } },
	};
	struct csr_info info;
	unsigned char *der = NULL;
	char err[128], got[NAME_MAX_LEN + 8];
	size_t i, j, want_n;
	int len;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct name_case *c = &cases[i];

		len = make_csr(p256, c->cn, c->san, &der);
		CHECK(len > 0, "%s: make_csr", c->label);
		if (len <= 0)
			continue;
		/* csr_parse() does not zero the names array: whatever the
		 * struct held before must not show through. */
		memset(&info, 0xa5, sizeof(info));
		CHECK(csr_parse(der, (size_t)len, &info, err, sizeof(err)) == 0, "%s: parse %s",
		    c->label, err);
		CHECK(info.signature_ok, "%s: signature", c->label);
		CHECK(streq(info.name_error, c->want_error), "%s: name_error %s (value %s)", c->label,
		    info.name_error ? info.name_error : "NULL", info.name_error_value);
		if (c->want_error_value != NULL)
			CHECK(strstr(info.name_error_value, c->want_error_value) != NULL,
			    "%s: name_error_value \"%s\"", c->label, info.name_error_value);
		if (c->want_error == NULL) {
			CHECK(streq(info.common_name, c->want_cn), "%s: common_name \"%s\"", c->label,
			    info.common_name);
			for (want_n = 0; c->want_names[want_n] != NULL; want_n++)
				;
			CHECK(info.n_names == want_n, "%s: %zu names, want %zu", c->label,
			    info.n_names, want_n);
			for (j = 0; j < info.n_names && j < want_n; j++) {
				typed(&info.names[j], got, sizeof(got));
				CHECK(streq(got, c->want_names[j]), "%s: name %zu is %s, want %s",
				    c->label, j, got, c->want_names[j]);
			}
		}
		csr_info_free(&info);
		OPENSSL_free(der);
		der = NULL;
	}

	/* More than CSR_MAX_NAMES distinct names. */
	{
		size_t cap = 64 * (CSR_MAX_NAMES + 5), off = 0;
		char *san = malloc(cap);
		int k;

		for (k = 0; k < CSR_MAX_NAMES + 5; k++)
			off += (size_t)snprintf(san + off, cap - off, "%sDNS:h%d.example.com",
			    k ? "," : "", k);
		len = make_csr(p256, NULL, san, &der);
		CHECK(len > 0 && csr_parse(der, (size_t)len, &info, err, sizeof(err)) == 0,
		    "too many: parse");
		CHECK(streq(info.name_error, "name_invalid") &&
		    strstr(info.name_error_value, "too many") != NULL && info.n_names == CSR_MAX_NAMES,
		    "too many names: %s \"%s\" n %zu", info.name_error ? info.name_error : "NULL",
		    info.name_error_value, info.n_names);
		csr_info_free(&info);
		OPENSSL_free(der);
		der = NULL;
		/* exactly CSR_MAX_NAMES, with duplicates on top: fine */
		off = 0;
		for (k = 0; k < CSR_MAX_NAMES + 20; k++)
			off += (size_t)snprintf(san + off, cap - off, "%sDNS:H%d.example.com",
			    k ? "," : "", k % CSR_MAX_NAMES);
		len = make_csr(p256, NULL, san, &der);
		CHECK(len > 0 && csr_parse(der, (size_t)len, &info, err, sizeof(err)) == 0 &&
		    info.name_error == NULL && info.n_names == CSR_MAX_NAMES,
		    "100 names with duplicates: n %zu error %s", info.n_names,
		    info.name_error ? info.name_error : "NULL");
		csr_info_free(&info);
		OPENSSL_free(der);
		free(san);
	}
}

int
main(void)
{
	EVP_PKEY *p256 = gen_ec("P-256");

	if (p256 == NULL) {
		printf("cannot generate a P-256 key\n");
		return 1;
	}
	test_keys(p256);
	test_explicit_curve();
	test_invalid_point(p256);
	test_point_encodings();
	test_forms(p256);
	test_names(p256);
	EVP_PKEY_free(p256);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
