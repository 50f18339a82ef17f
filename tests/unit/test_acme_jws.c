/*
 * test_acme_jws.c: table-driven tests of the ACME JOSE layer
 * (protocols/acme/acme_jws.c).
 *
 * Keys are generated here (RSA 2048 once, RSA 1024, P-256 twice, P-384,
 * P-521, Ed25519) and every JWS is produced by the small signer below with the
 * OpenSSL API and an independent base64url/JWK encoder, so that the code
 * under test never grades its own homework (except where said: the
 * round-trip of acme_jwk_to_json). Each case states the problem type it
 * expects from parse and from verify.
 *
 * Prints "N passed, N failed"; exits non-zero on any failure.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "acme/acme_jws.h"

static int t_passed, t_failed;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (cond) {                                                                        \
			t_passed++;                                                                \
		} else {                                                                           \
			t_failed++;                                                                \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);                                \
			printf(__VA_ARGS__);                                                       \
			printf("\n");                                                              \
		}                                                                                  \
	} while (0)

static bool
t_streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static const char *
t_str(const char *s)
{
	return s != NULL ? s : "(ok)";
}

/* printf into a new string. */
static char *__attribute__((format(printf, 1, 2))) t_fmt(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (s == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return s;
}

/* ---- an independent encoder and signer ---------------------------------- */

/* Standard base64 with padding (OpenSSL's EVP_EncodeBlock). */
static char *
t_b64std(const void *data, size_t len)
{
	char *out = malloc(len / 3 * 4 + 5);

	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

/* base64url without padding, by translating the standard alphabet. */
static char *
t_b64url(const void *data, size_t len)
{
	char *s = t_b64std(data, len), *p;

	for (p = s; *p != '\0'; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
		else if (*p == '=')
			*p = '\0';
	}
	return s;
}

static char *
t_b64url_str(const char *s)
{
	return t_b64url(s, strlen(s));
}

static char *
t_bn_b64url(EVP_PKEY *key, const char *param, int pad)
{
	BIGNUM *bn = NULL;
	unsigned char buf[1024];
	int len;

	if (EVP_PKEY_get_bn_param(key, param, &bn) != 1)
		return NULL;
	len = pad > 0 ? pad : BN_num_bytes(bn);
	BN_bn2binpad(bn, buf, len);
	BN_free(bn);
	return t_b64url(buf, (size_t)len);
}

/* The canonical public JWK of key as the test sees it (RFC 7638 order). */
static char *
t_jwk(EVP_PKEY *key)
{
	char *a = NULL, *b = NULL, *out = NULL;

	if (EVP_PKEY_is_a(key, "RSA")) {
		a = t_bn_b64url(key, OSSL_PKEY_PARAM_RSA_N, 0);
		b = t_bn_b64url(key, OSSL_PKEY_PARAM_RSA_E, 0);
		out = t_fmt("{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", b, a);
	} else if (EVP_PKEY_is_a(key, "ED25519")) {
		unsigned char raw[32];
		size_t raw_len = sizeof(raw);

		EVP_PKEY_get_raw_public_key(key, raw, &raw_len);
		a = t_b64url(raw, raw_len);
		out = t_fmt("{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", a);
	} else {
		char group[64];
		const char *crv = NULL;
		int coord = 0;

		EVP_PKEY_get_group_name(key, group, sizeof(group), NULL);
		if (strcmp(group, "prime256v1") == 0)
			crv = "P-256", coord = 32;
		else if (strcmp(group, "secp384r1") == 0)
			crv = "P-384", coord = 48;
		else
			crv = "P-521", coord = 66;
		a = t_bn_b64url(key, OSSL_PKEY_PARAM_EC_PUB_X, coord);
		b = t_bn_b64url(key, OSSL_PKEY_PARAM_EC_PUB_Y, coord);
		out = t_fmt("{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", crv, a, b);
	}
	free(a);
	free(b);
	return out;
}

/* Signs input the way `alg` says (the JWS encoding of the signature).
 * For HS*, mac_key is used instead of key. Returns a malloc'd buffer. */
static unsigned char *
t_sign(const char *alg, EVP_PKEY *key, const unsigned char *mac_key, size_t mac_key_len,
    const char *input, size_t *sig_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *der = NULL, *sig = NULL;
	size_t der_len = 0;
	const char *md = NULL;
	int coord = 0;

	*sig_len = 0;
	if (strncmp(alg, "HS", 2) == 0) {
		const EVP_MD *hmd = strcmp(alg, "HS256") == 0 ? EVP_sha256()
		    : strcmp(alg, "HS384") == 0               ? EVP_sha384()
		                                              : EVP_sha512();
		unsigned int len = 0;

		sig = malloc(EVP_MAX_MD_SIZE);
		if (mac_key == NULL) /* an outer HS256 JWS: any key will do */
			mac_key = (const unsigned char *)"not-a-secret", mac_key_len = 12;
		HMAC(hmd, mac_key, (int)mac_key_len, (const unsigned char *)input, strlen(input),
		    sig, &len);
		*sig_len = len;
		EVP_MD_CTX_free(ctx);
		return sig;
	}
	if (strcmp(alg, "RS256") == 0)
		md = "SHA256";
	else if (strcmp(alg, "ES256") == 0)
		md = "SHA256", coord = 32;
	else if (strcmp(alg, "ES384") == 0)
		md = "SHA384", coord = 48;
	else if (strcmp(alg, "ES512") == 0)
		md = "SHA512", coord = 66;
	/* EdDSA: md NULL */
	if (EVP_DigestSignInit_ex(ctx, NULL, md, NULL, NULL, key, NULL) != 1 ||
	    EVP_DigestSign(ctx, NULL, &der_len, (const unsigned char *)input, strlen(input)) != 1) {
		fprintf(stderr, "EVP_DigestSignInit_ex(%s) failed\n", alg);
		ERR_print_errors_fp(stderr);
		exit(2);
	}
	der = malloc(der_len);
	if (EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)input, strlen(input)) != 1) {
		fprintf(stderr, "EVP_DigestSign(%s) failed\n", alg);
		exit(2);
	}
	EVP_MD_CTX_free(ctx);
	if (coord == 0) {
		*sig_len = der_len;
		return der;
	}
	/* ECDSA: DER ECDSA-Sig-Value -> R || S of fixed length (RFC 7518 §3.4). */
	{
		const unsigned char *p = der;
		ECDSA_SIG *esig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
		const BIGNUM *r = NULL, *s = NULL;

		ECDSA_SIG_get0(esig, &r, &s);
		sig = malloc(2 * (size_t)coord);
		BN_bn2binpad(r, sig, coord);
		BN_bn2binpad(s, sig + coord, coord);
		*sig_len = 2 * (size_t)coord;
		ECDSA_SIG_free(esig);
		free(der);
	}
	return sig;
}

/* Ways to spoil a signature after signing. */
enum t_sig_mutation {
	T_SIG_OK,
	T_SIG_FLIP_BIT,   /* flip one bit of the signature */
	T_SIG_TRUNCATE,   /* drop the last byte */
	T_SIG_APPEND,     /* a valid signature plus one zero byte */
	T_SIG_EMPTY,      /* "" */
	T_SIG_DER,        /* ECDSA: send the DER form instead of R || S */
	T_SIG_PADDED,     /* standard base64 with '=' */
	T_SIG_WHITESPACE, /* a newline in the middle */
	T_SIG_TRAIL_BITS, /* non-zero unused bits in the last character */
};

/* What one test JWS is made of. The signature is computed over exactly the
 * protected and payload strings that are sent. */
struct t_jws_spec {
	const char *sign_alg;         /* how to sign: "RS256", ..., "HS256", NULL = none */
	EVP_PKEY *key;                /* signing key */
	const unsigned char *mac_key; /* for HS* */
	size_t mac_key_len;
	const char *protected_json; /* header as JSON text */
	const char *protected_b64;  /* or already encoded (overrides) */
	const char *payload_b64;    /* encoded payload as sent */
	enum t_sig_mutation mutation;
	const char *extra_members; /* e.g. ",\"header\":{}" appended inside */
	const char *trailer;       /* appended after the closing brace */
};

/* Returns the flattened JWS JSON text (malloc'd). */
static char *
t_jws(const struct t_jws_spec *spec)
{
	char *prot = NULL, *input = NULL, *sig_text = NULL, *body = NULL;
	unsigned char *sig = NULL;
	size_t sig_len = 0;

	prot = spec->protected_b64 != NULL ? strdup(spec->protected_b64)
	                                   : t_b64url_str(spec->protected_json);
	input = t_fmt("%s.%s", prot, spec->payload_b64);
	if (spec->sign_alg != NULL)
		sig = t_sign(
		    spec->sign_alg, spec->key, spec->mac_key, spec->mac_key_len, input, &sig_len);
	switch (spec->mutation) {
	case T_SIG_OK:
		break;
	case T_SIG_FLIP_BIT:
		sig[sig_len / 2] ^= 0x01;
		break;
	case T_SIG_TRUNCATE:
		sig_len--;
		break;
	case T_SIG_APPEND:
		sig = realloc(sig, sig_len + 1);
		sig[sig_len++] = 0;
		break;
	case T_SIG_EMPTY:
		sig_len = 0;
		break;
	case T_SIG_DER: {
		/* Re-encode R || S as DER, as a confused client might. */
		ECDSA_SIG *esig = ECDSA_SIG_new();
		unsigned char *der = NULL;
		int der_len;

		ECDSA_SIG_set0(esig, BN_bin2bn(sig, (int)sig_len / 2, NULL),
		    BN_bin2bn(sig + sig_len / 2, (int)sig_len / 2, NULL));
		der_len = i2d_ECDSA_SIG(esig, &der);
		free(sig);
		sig = malloc((size_t)der_len);
		memcpy(sig, der, (size_t)der_len);
		sig_len = (size_t)der_len;
		OPENSSL_free(der);
		ECDSA_SIG_free(esig);
		break;
	}
	default:
		break;
	}
	if (spec->mutation == T_SIG_PADDED) {
		sig_text = t_b64std(sig, sig_len);
	} else {
		sig_text = t_b64url(sig != NULL ? sig : (unsigned char *)"", sig_len);
		if (spec->mutation == T_SIG_WHITESPACE) {
			char *w = t_fmt("%.10s\\n%s", sig_text, sig_text + 10);

			free(sig_text);
			sig_text = w;
		} else if (spec->mutation == T_SIG_TRAIL_BITS) {
			/* A 64-byte signature ends in a character with 4 spare
			 * (zero) bits: one of 'A', 'Q', 'g', 'w'. The next letter
			 * sets the lowest spare bit and decodes to the same bytes
			 * under a lax decoder. */
			size_t n = strlen(sig_text);

			sig_text[n - 1]++;
		}
	}
	body = t_fmt("{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"%s}%s", prot,
	    spec->payload_b64, sig_text, spec->extra_members != NULL ? spec->extra_members : "",
	    spec->trailer != NULL ? spec->trailer : "");
	free(prot);
	free(input);
	free(sig);
	free(sig_text);
	return body;
}

/* ---- keys --------------------------------------------------------------- */

static EVP_PKEY *k_rsa, *k_rsa1024, *k_p256, *k_p256b, *k_p384, *k_p521, *k_ed;

static EVP_PKEY *
t_ec_key(const char *curve)
{
	EVP_PKEY *k = EVP_EC_gen(curve);

	if (k == NULL) {
		fprintf(stderr, "EVP_EC_gen(%s) failed\n", curve);
		exit(2);
	}
	return k;
}

static void
t_keys(void)
{
	k_rsa = EVP_RSA_gen(2048);
	k_rsa1024 = EVP_RSA_gen(1024);
	k_p256 = t_ec_key("P-256");
	k_p256b = t_ec_key("P-256");
	k_p384 = t_ec_key("P-384");
	k_p521 = t_ec_key("P-521");
	k_ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (k_rsa == NULL || k_rsa1024 == NULL || k_ed == NULL) {
		fprintf(stderr, "key generation failed\n");
		exit(2);
	}
}

/* ---- the JWS table ------------------------------------------------------ */

#define T_URL   "https://ra.example/acme/new-order"
#define T_KID   "https://ra.example/acme/acct/17"
#define T_NONCE "bm9uY2UtMTIzNDU2"

struct t_case {
	const char *name;
	char *body;                 /* built by t_table() */
	const char *parse_problem;  /* NULL: parse must succeed */
	EVP_PKEY *verify_key;       /* NULL: jws.jwk */
	const char *verify_problem; /* NULL: verify must succeed */
	int payload;                /* 0 object, 1 POST-as-GET, -1 don't check */
	const char *detail_has;     /* substring of the detail, or NULL */
};

#define T_MAX_CASES 96
static struct t_case t_cases[T_MAX_CASES];
static size_t t_n_cases;

static struct t_case *
t_add(const char *name, char *body, const char *parse_problem, EVP_PKEY *verify_key,
    const char *verify_problem)
{
	struct t_case *c = &t_cases[t_n_cases++];

	c->name = name;
	c->body = body;
	c->parse_problem = parse_problem;
	c->verify_key = verify_key;
	c->verify_problem = verify_problem;
	c->payload = -1;
	return c;
}

/* A protected header with jwk. */
static char *
t_hdr_jwk(const char *alg, EVP_PKEY *key)
{
	char *jwk = t_jwk(key), *h;

	h = t_fmt("{\"alg\":\"%s\",\"jwk\":%s,\"nonce\":\"" T_NONCE "\",\"url\":\"" T_URL "\"}",
	    alg, jwk);
	free(jwk);
	return h;
}

static char *
t_hdr_kid(const char *alg)
{
	return t_fmt("{\"alg\":\"%s\",\"kid\":\"" T_KID "\",\"nonce\":\"" T_NONCE
	             "\",\"url\":\"" T_URL "\"}",
	    alg);
}

/* One signed body: header text, payload text (plain), signer. */
static char *
t_body(const char *sign_alg, EVP_PKEY *key, char *hdr, const char *payload,
    enum t_sig_mutation mutation)
{
	char *payload_b64 = t_b64url_str(payload), *body;
	struct t_jws_spec spec = {
		.sign_alg = sign_alg,
		.key = key,
		.protected_json = hdr,
		.payload_b64 = payload_b64,
		.mutation = mutation,
	};

	body = t_jws(&spec);
	free(payload_b64);
	free(hdr);
	return body;
}

static const char *const P_MAL = ACME_PROBLEM_MALFORMED;
static const char *const P_ALG = ACME_PROBLEM_BAD_SIGNATURE_ALGORITHM;
static const char *const P_KEY = ACME_PROBLEM_BAD_PUBLIC_KEY;
static const char *const P_NONCE = ACME_PROBLEM_BAD_NONCE;

static const char *t_order = "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"www.example.com\"}]}";

static void
t_table(void)
{
	struct t_case *c;
	struct t_jws_spec spec;
	char *payload_b64 = t_b64url_str(t_order), *s, *jwk, *hdr;

	/* Valid, jwk and kid, each algorithm. */
	c = t_add("ES256 jwk", t_body("ES256", k_p256, t_hdr_jwk("ES256", k_p256), t_order, 0),
	    NULL, NULL, NULL);
	c->payload = 0;
	t_add("ES384 jwk", t_body("ES384", k_p384, t_hdr_jwk("ES384", k_p384), t_order, 0), NULL,
	    NULL, NULL);
	t_add("ES512 jwk", t_body("ES512", k_p521, t_hdr_jwk("ES512", k_p521), t_order, 0), NULL,
	    NULL, NULL);
	t_add("RS256 jwk", t_body("RS256", k_rsa, t_hdr_jwk("RS256", k_rsa), t_order, 0), NULL,
	    NULL, NULL);
	t_add("EdDSA jwk", t_body("EdDSA", k_ed, t_hdr_jwk("EdDSA", k_ed), t_order, 0), NULL, NULL,
	    NULL);
	t_add("ES256 kid", t_body("ES256", k_p256, t_hdr_kid("ES256"), t_order, 0), NULL, k_p256,
	    NULL);
	t_add(
	    "RS256 kid", t_body("RS256", k_rsa, t_hdr_kid("RS256"), t_order, 0), NULL, k_rsa, NULL);
	t_add("EdDSA kid", t_body("EdDSA", k_ed, t_hdr_kid("EdDSA"), t_order, 0), NULL, k_ed, NULL);
	c = t_add("POST-as-GET payload \"\"", t_body("ES256", k_p256, t_hdr_kid("ES256"), "", 0),
	    NULL, k_p256, NULL);
	c->payload = 1;
	c = t_add("payload {} is not POST-as-GET",
	    t_body("ES256", k_p256, t_hdr_kid("ES256"), "{}", 0), NULL, k_p256, NULL);
	c->payload = 0;

	/* Algorithms. */
	c = t_add("alg none", t_body(NULL, NULL, t_hdr_kid("none"), t_order, 0), P_ALG, NULL, NULL);
	c->detail_has = "none";
	t_add("HS256 outer", t_body("HS256", NULL, t_hdr_kid("HS256"), t_order, 0), P_ALG, NULL,
	    NULL);
	t_add("RS384 not offered", t_body("RS256", k_rsa, t_hdr_kid("RS384"), t_order, 0), P_ALG,
	    NULL, NULL);
	t_add("alg not a string",
	    t_body("ES256", k_p256,
	        t_fmt("{\"alg\":256,\"kid\":\"" T_KID "\",\"nonce\":\"" T_NONCE
	              "\",\"url\":\"" T_URL "\"}"),
	        t_order, 0),
	    P_MAL, NULL, NULL);
	c = t_add("ES256 header with P-384 jwk",
	    t_body("ES384", k_p384, t_hdr_jwk("ES256", k_p384), t_order, 0), NULL, NULL, P_ALG);
	c->detail_has = "ES384";
	t_add("RS256 header with P-256 jwk",
	    t_body("ES256", k_p256, t_hdr_jwk("RS256", k_p256), t_order, 0), NULL, NULL, P_ALG);
	t_add("EdDSA header with RSA jwk",
	    t_body("RS256", k_rsa, t_hdr_jwk("EdDSA", k_rsa), t_order, 0), NULL, NULL, P_ALG);
	t_add("ES256 kid, account key is RSA",
	    t_body("ES256", k_p256, t_hdr_kid("ES256"), t_order, 0), NULL, k_rsa, P_ALG);

	/* jwk / kid / nonce / url. */
	jwk = t_jwk(k_p256);
	hdr = t_fmt("{\"alg\":\"ES256\",\"jwk\":%s,\"kid\":\"" T_KID "\",\"nonce\":\"" T_NONCE
	            "\",\"url\":\"" T_URL "\"}",
	    jwk);
	t_add("both jwk and kid", t_body("ES256", k_p256, hdr, t_order, 0), P_MAL, NULL, NULL);
	t_add("neither jwk nor kid",
	    t_body("ES256", k_p256,
	        t_fmt("{\"alg\":\"ES256\",\"nonce\":\"" T_NONCE "\",\"url\":\"" T_URL "\"}"),
	        t_order, 0),
	    P_MAL, NULL, NULL);
	t_add("missing nonce",
	    t_body("ES256", k_p256,
	        t_fmt("{\"alg\":\"ES256\",\"kid\":\"" T_KID "\",\"url\":\"" T_URL "\"}"), t_order,
	        0),
	    P_NONCE, NULL, NULL);
	t_add("nonce not base64url",
	    t_body("ES256", k_p256,
	        t_fmt("{\"alg\":\"ES256\",\"kid\":\"" T_KID
	              "\",\"nonce\":\"bm9u+2U=\",\"url\":\"" T_URL "\"}"),
	        t_order, 0),
	    P_MAL, NULL, NULL);
	t_add("missing url",
	    t_body("ES256", k_p256,
	        t_fmt("{\"alg\":\"ES256\",\"kid\":\"" T_KID "\",\"nonce\":\"" T_NONCE "\"}"),
	        t_order, 0),
	    P_MAL, NULL, NULL);
	t_add("kid not a string",
	    t_body("ES256", k_p256,
	        t_fmt("{\"alg\":\"ES256\",\"kid\":17,\"nonce\":\"" T_NONCE "\",\"url\":\"" T_URL
	              "\"}"),
	        t_order, 0),
	    P_MAL, NULL, NULL);
	t_add("crit present",
	    t_body("ES256", k_p256,
	        t_fmt("{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"exp\":1,\"kid\":\"" T_KID
	              "\",\"nonce\":\"" T_NONCE "\",\"url\":\"" T_URL "\"}"),
	        t_order, 0),
	    P_MAL, NULL, NULL);
	t_add("duplicate alg",
	    t_body("ES256", k_p256,
	        t_fmt("{\"alg\":\"ES256\",\"alg\":\"none\",\"kid\":\"" T_KID
	              "\",\"nonce\":\"" T_NONCE "\",\"url\":\"" T_URL "\"}"),
	        t_order, 0),
	    P_MAL, NULL, NULL);

	/* Keys. */
	t_add("RSA 1024 jwk", t_body("RS256", k_rsa1024, t_hdr_jwk("RS256", k_rsa1024), t_order, 0),
	    P_KEY, NULL, NULL);
	{
		/* P-256 point moved off the curve: change the last y character. */
		char *h = t_hdr_jwk("ES256", k_p256);
		char *y = strstr(h, "\"y\":\"") + 5;
		char *end = strchr(y, '"');

		end[-2] = end[-2] == 'A' ? 'B' : 'A';
		t_add("EC point off curve", t_body("ES256", k_p256, h, t_order, 0), P_KEY, NULL,
		    NULL);
	}
	{
		/* x one byte short. */
		char *x = t_b64url("0123456789012345678901234567890", 31);
		char *y = t_bn_b64url(k_p256, OSSL_PKEY_PARAM_EC_PUB_Y, 32);

		hdr = t_fmt(
		    "{\"alg\":\"ES256\",\"jwk\":{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\","
		    "\"y\":\"%s\"},\"nonce\":\"" T_NONCE "\",\"url\":\"" T_URL "\"}",
		    x, y);
		t_add("EC x of wrong length", t_body("ES256", k_p256, hdr, t_order, 0), P_KEY, NULL,
		    NULL);
		free(x);
		free(y);
	}
	{
		/* Private member "d" alongside a valid public key. */
		size_t n = strlen(jwk);

		hdr = t_fmt("{\"alg\":\"ES256\",\"jwk\":%.*s,\"d\":\"AAAA\"},\"nonce\":\"" T_NONCE
		            "\",\"url\":\"" T_URL "\"}",
		    (int)(n - 1), jwk);
		c = t_add("jwk with private member d", t_body("ES256", k_p256, hdr, t_order, 0),
		    P_MAL, NULL, NULL);
		c->detail_has = "\"d\"";
	}
	t_add("OKP X25519 jwk",
	    t_body("ES256", k_p256,
	        t_fmt("{\"alg\":\"ES256\",\"jwk\":{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":"
	              "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},\"nonce\":\"" T_NONCE
	              "\",\"url\":\"" T_URL "\"}"),
	        t_order, 0),
	    P_KEY, NULL, NULL);

	/* Signatures. */
	c = t_add("ES256 bad signature (bit flipped)",
	    t_body("ES256", k_p256, t_hdr_jwk("ES256", k_p256), t_order, T_SIG_FLIP_BIT), NULL,
	    NULL, P_MAL);
	c->detail_has = "JWS signature invalid";
	t_add("RS256 bad signature (bit flipped)",
	    t_body("RS256", k_rsa, t_hdr_jwk("RS256", k_rsa), t_order, T_SIG_FLIP_BIT), NULL, NULL,
	    P_MAL);
	t_add("EdDSA bad signature (bit flipped)",
	    t_body("EdDSA", k_ed, t_hdr_jwk("EdDSA", k_ed), t_order, T_SIG_FLIP_BIT), NULL, NULL,
	    P_MAL);
	t_add("ES256 r||s 63 bytes",
	    t_body("ES256", k_p256, t_hdr_jwk("ES256", k_p256), t_order, T_SIG_TRUNCATE), NULL,
	    NULL, P_MAL);
	t_add("ES256 r||s 65 bytes (valid + 1)",
	    t_body("ES256", k_p256, t_hdr_jwk("ES256", k_p256), t_order, T_SIG_APPEND), NULL, NULL,
	    P_MAL);
	t_add("EdDSA signature 65 bytes (valid + 1)",
	    t_body("EdDSA", k_ed, t_hdr_jwk("EdDSA", k_ed), t_order, T_SIG_APPEND), NULL, NULL,
	    P_MAL);
	t_add("ES256 DER signature",
	    t_body("ES256", k_p256, t_hdr_jwk("ES256", k_p256), t_order, T_SIG_DER), NULL, NULL,
	    P_MAL);
	t_add("RS256 signature one byte short",
	    t_body("RS256", k_rsa, t_hdr_jwk("RS256", k_rsa), t_order, T_SIG_TRUNCATE), NULL, NULL,
	    P_MAL);
	t_add("empty signature", t_body("ES256", k_p256, t_hdr_kid("ES256"), t_order, T_SIG_EMPTY),
	    NULL, k_p256, P_MAL);
	t_add("kid: signed by another P-256 key",
	    t_body("ES256", k_p256b, t_hdr_kid("ES256"), t_order, 0), NULL, k_p256, P_MAL);

	/* Encoding. */
	t_add("signature padded base64",
	    t_body("ES256", k_p256, t_hdr_kid("ES256"), t_order, T_SIG_PADDED), P_MAL, NULL, NULL);
	t_add("newline in signature",
	    t_body("ES256", k_p256, t_hdr_kid("ES256"), t_order, T_SIG_WHITESPACE), P_MAL, NULL,
	    NULL);
	t_add("signature with non-zero trailing bits",
	    t_body("ES256", k_p256, t_hdr_kid("ES256"), t_order, T_SIG_TRAIL_BITS), P_MAL, NULL,
	    NULL);
	{
		/* Payload in standard base64 with padding, signed as sent: a lax
		 * decoder would accept it. t_order's length leaves padding. */
		char *padded = t_b64std(t_order, strlen(t_order));

		hdr = t_hdr_kid("ES256");
		spec = (struct t_jws_spec){ .sign_alg = "ES256",
			.key = k_p256,
			.protected_json = hdr,
			.payload_b64 = padded };
		CHECK(strchr(padded, '=') != NULL, "padded payload has '='");
		c = t_add("payload padded base64", t_jws(&spec), P_MAL, NULL, NULL);
		c->detail_has = "payload";
		free(padded);
		free(hdr);
	}
	{
		/* '+' in place of '-': standard alphabet, signed as sent. */
		char *plus = strdup(payload_b64);

		plus[1] = '+';
		hdr = t_hdr_kid("ES256");
		spec = (struct t_jws_spec){ .sign_alg = "ES256",
			.key = k_p256,
			.protected_json = hdr,
			.payload_b64 = plus };
		t_add("'+' in payload", t_jws(&spec), P_MAL, NULL, NULL);
		plus[1] = '/';
		t_add("'/' in payload", t_jws(&spec), P_MAL, NULL, NULL);
		free(plus);
		free(hdr);
	}
	{
		/* Protected header padded. */
		char *h = t_hdr_kid("ES256");
		char *pad = t_b64std(h, strlen(h));

		spec = (struct t_jws_spec){ .sign_alg = "ES256",
			.key = k_p256,
			.protected_b64 = pad,
			.payload_b64 = payload_b64 };
		CHECK(strchr(pad, '=') != NULL, "padded protected header has '='");
		t_add("protected padded base64", t_jws(&spec), P_MAL, NULL, NULL);
		free(pad);
		free(h);
	}

	/* Structure. */
	hdr = t_hdr_kid("ES256");
	spec = (struct t_jws_spec){ .sign_alg = "ES256",
		.key = k_p256,
		.protected_json = hdr,
		.payload_b64 = payload_b64,
		.trailer = "xyz" };
	t_add("trailing garbage", t_jws(&spec), P_MAL, NULL, NULL);
	spec.trailer = "{}";
	t_add("second JSON document", t_jws(&spec), P_MAL, NULL, NULL);
	spec.trailer = " \r\n";
	t_add("trailing whitespace is fine", t_jws(&spec), NULL, k_p256, NULL);
	spec.trailer = NULL;
	spec.extra_members = ",\"header\":{\"alg\":\"none\"}";
	t_add("unprotected header", t_jws(&spec), P_MAL, NULL, NULL);
	spec.extra_members = ",\"signatures\":[]";
	t_add("general serialization", t_jws(&spec), P_MAL, NULL, NULL);
	spec.extra_members = ",\"signature\":\"AAAA\"";
	t_add("duplicate signature member", t_jws(&spec), P_MAL, NULL, NULL);
	/* the same refusals and acceptances whether the body is all plain
	 * strings (read in place) or not (read by jansson) */
	spec.extra_members = ",\"header\":\"x\"";
	t_add("unprotected header, a string", t_jws(&spec), P_MAL, NULL, NULL)->detail_has =
	    "unprotected header";
	spec.extra_members = ",\"signatures\":\"x\"";
	t_add("general serialization, a string", t_jws(&spec), P_MAL, NULL, NULL)->detail_has =
	    "general JWS serialization";
	spec.extra_members = ",\"payload\":\"\"";
	t_add("duplicate payload member", t_jws(&spec), P_MAL, NULL, NULL)->detail_has =
	    "duplicate";
	spec.extra_members = ",\"x\":\"y\"";
	t_add("unknown string member ignored", t_jws(&spec), NULL, k_p256, NULL);
	spec.extra_members = ",\"x\":{\"y\":1}";
	t_add("unknown object member ignored", t_jws(&spec), NULL, k_p256, NULL);
	spec.extra_members = ",\"a\":\"\",\"b\":\"\",\"c\":\"\",\"d\":\"\",\"e\":\"\",\"f\":\"\"";
	t_add("nine members", t_jws(&spec), NULL, k_p256, NULL);
	spec.extra_members = ",\"a\":\"\",\"b\":\"\",\"c\":\"\",\"d\":\"\",\"e\":\"\",\"a\":\"\"";
	t_add("nine members, one twice", t_jws(&spec), P_MAL, NULL, NULL);
	spec.extra_members = NULL;
	free(hdr);

	s = t_b64url_str("[1,2]");
	hdr = t_hdr_kid("ES256");
	spec = (struct t_jws_spec){
		.sign_alg = "ES256", .key = k_p256, .protected_json = hdr, .payload_b64 = s
	};
	t_add("payload an array", t_jws(&spec), P_MAL, NULL, NULL);
	free(s);
	s = t_b64url_str("{\"a\":1} junk");
	spec.payload_b64 = s;
	t_add("payload trailing junk", t_jws(&spec), P_MAL, NULL, NULL);
	free(s);
	free(hdr);

	t_add("protected header not JSON",
	    t_body("ES256", k_p256, strdup("{\"alg\":\"ES256\""), t_order, 0), P_MAL, NULL, NULL);
	t_add("body not an object", strdup("[\"protected\",\"payload\",\"signature\"]"), P_MAL,
	    NULL, NULL);
	t_add("body empty", strdup(""), P_MAL, NULL, NULL);
	t_add("members not strings",
	    strdup("{\"protected\":1,\"payload\":\"\",\"signature\":\"\"}"), P_MAL, NULL, NULL);

	free(jwk);
	free(payload_b64);
}

static void
t_run_table(void)
{
	size_t i;

	for (i = 0; i < t_n_cases; i++) {
		struct t_case *c = &t_cases[i];
		struct acme_jws jws;
		struct acme_jws_verifier *verifier = NULL;
		const char *problem = NULL;
		char detail[256] = "";
		int rc;

		rc = acme_jws_parse((const unsigned char *)c->body, strlen(c->body), &jws, &problem,
		    detail, sizeof(detail));
		if (c->parse_problem != NULL) {
			CHECK(rc == -1 && t_streq(problem, c->parse_problem),
			    "%s: parse: want %s, got rc %d %s (%s)", c->name, c->parse_problem, rc,
			    t_str(problem), detail);
			CHECK(jws.signing_input == NULL && jws.jwk == NULL && jws.url == NULL,
			    "%s: failed parse left members set", c->name);
			if (c->detail_has != NULL)
				CHECK(strstr(detail, c->detail_has) != NULL,
				    "%s: detail \"%s\" lacks \"%s\"", c->name, detail,
				    c->detail_has);
			acme_jws_free(&jws);
			continue;
		}
		CHECK(rc == 0, "%s: parse: want ok, got %s (%s)", c->name, t_str(problem), detail);
		if (rc != 0)
			continue;
		CHECK(t_streq(jws.url, T_URL), "%s: url", c->name);
		CHECK(t_streq(jws.nonce, T_NONCE), "%s: nonce", c->name);
		CHECK(
		    (jws.kid != NULL) != (jws.jwk != NULL), "%s: exactly one of kid/jwk", c->name);
		if (jws.kid != NULL)
			CHECK(t_streq(jws.kid, T_KID), "%s: kid", c->name);
		if (c->payload == 1)
			CHECK(jws.post_as_get && jws.payload_len == 0 && jws.payload_json == NULL,
			    "%s: POST-as-GET expected", c->name);
		if (c->payload == 0)
			CHECK(!jws.post_as_get && json_is_object(jws.payload_json),
			    "%s: object payload expected", c->name);

		problem = NULL;
		detail[0] = '\0';
		rc = acme_jws_verify(&jws, c->verify_key != NULL ? c->verify_key : jws.jwk,
		    &problem, detail, sizeof(detail));
		if (c->verify_problem != NULL) {
			CHECK(rc == -1 && t_streq(problem, c->verify_problem),
			    "%s: verify: want %s, got rc %d %s (%s)", c->name, c->verify_problem,
			    rc, t_str(problem), detail);
		} else {
			CHECK(rc == 0, "%s: verify: want ok, got %s (%s)", c->name, t_str(problem),
			    detail);
		}
		if (c->detail_has != NULL)
			CHECK(strstr(detail, c->detail_has) != NULL,
			    "%s: detail \"%s\" lacks \"%s\"", c->name, detail, c->detail_has);
		CHECK(ERR_peek_error() == 0, "%s: OpenSSL error queue left non-empty", c->name);
		ERR_clear_error();

		/* the account key cache's verifier answers exactly the same,
		 * also when used again (it verifies on copies of one context) */
		verifier = acme_jws_verifier_new(
		    c->verify_key != NULL ? c->verify_key : jws.jwk);
		CHECK(verifier != NULL, "%s: acme_jws_verifier_new", c->name);
		for (int again = 0; verifier != NULL && again < 2; again++) {
			const char *vproblem = NULL;
			char vdetail[256] = "";
			int vrc = acme_jws_verify_with(&jws, verifier, &vproblem, vdetail,
			    sizeof(vdetail));

			CHECK(vrc == rc && t_streq(vproblem, problem) && strcmp(vdetail, detail) == 0,
			    "%s: verifier (use %d): rc %d %s (%s), acme_jws_verify rc %d %s (%s)",
			    c->name, again, vrc, t_str(vproblem), vdetail, rc, t_str(problem), detail);
			CHECK(ERR_peek_error() == 0, "%s: verifier left OpenSSL errors", c->name);
			ERR_clear_error();
		}
		acme_jws_verifier_free(verifier);
		acme_jws_free(&jws);
	}
}

/* ---- bounds ------------------------------------------------------------- */

static void
t_bounds(void)
{
	struct acme_jws jws;
	const char *problem = NULL;
	char detail[256], *pb64, *hdr, *body;
	struct t_jws_spec spec;
	size_t n;
	int depth, rc;

	/* Payload nested exactly 16 deep is accepted; 17 is refused. */
	for (depth = 16; depth <= 17; depth++) {
		char *p = calloc(1, 64);
		int i;

		strcpy(p, "{\"a\":");
		for (i = 1; i < depth; i++)
			strcat(p, "[");
		strcat(p, "1");
		for (i = 1; i < depth; i++)
			strcat(p, "]");
		strcat(p, "}");
		pb64 = t_b64url_str(p);
		hdr = t_hdr_kid("ES256");
		spec = (struct t_jws_spec){ .sign_alg = "ES256",
			.key = k_p256,
			.protected_json = hdr,
			.payload_b64 = pb64 };
		body = t_jws(&spec);
		rc = acme_jws_parse(
		    (unsigned char *)body, strlen(body), &jws, &problem, detail, sizeof(detail));
		if (depth == 16)
			CHECK(rc == 0, "payload depth 16: want ok, got %s (%s)", t_str(problem),
			    detail);
		else
			CHECK(rc == -1 && t_streq(problem, P_MAL) && strstr(detail, "deeper"),
			    "payload depth 17: want malformed, got rc %d (%s)", rc, detail);
		acme_jws_free(&jws);
		free(p);
		free(pb64);
		free(hdr);
		free(body);
	}

	/* Body over 64 KiB refused, at 64 KiB (padded with whitespace) accepted. */
	hdr = t_hdr_kid("ES256");
	pb64 = t_b64url_str("{}");
	spec = (struct t_jws_spec){
		.sign_alg = "ES256", .key = k_p256, .protected_json = hdr, .payload_b64 = pb64
	};
	body = t_jws(&spec);
	n = strlen(body);
	body = realloc(body, ACME_JWS_MAX_BODY + 2);
	memset(body + n, ' ', ACME_JWS_MAX_BODY + 1 - n);
	body[ACME_JWS_MAX_BODY + 1] = '\0';
	rc = acme_jws_parse(
	    (unsigned char *)body, ACME_JWS_MAX_BODY, &jws, &problem, detail, sizeof(detail));
	CHECK(rc == 0, "body of exactly 64 KiB: got %s (%s)", t_str(problem), detail);
	acme_jws_free(&jws);
	rc = acme_jws_parse(
	    (unsigned char *)body, ACME_JWS_MAX_BODY + 1, &jws, &problem, detail, sizeof(detail));
	CHECK(rc == -1 && t_streq(problem, P_MAL), "body over 64 KiB: want malformed");
	acme_jws_free(&jws);
	free(body);
	free(pb64);
	free(hdr);

	/* A NUL byte inside the body. */
	rc = acme_jws_parse(
	    (const unsigned char *)"{\"a\":\"\0\"}", 9, &jws, &problem, detail, sizeof(detail));
	CHECK(rc == -1 && t_streq(problem, P_MAL), "NUL in body: want malformed");
	acme_jws_free(&jws);
}

/* ---- key change inner JWS ------------------------------------------------ */

static void
t_inner(void)
{
	const char *problem = NULL;
	char detail[256];
	struct acme_jws jws;
	json_t *obj = NULL;
	char *body, *jwk = t_jwk(k_p384), *hdr;
	const char *payload = "{\"account\":\"" T_KID "\",\"oldKey\":{}}";
	int rc;

	hdr = t_fmt("{\"alg\":\"ES384\",\"jwk\":%s,\"url\":\"" T_URL "\"}", jwk);
	body = t_body("ES384", k_p384, hdr, payload, 0);
	obj = json_loads(body, 0, NULL);
	rc = acme_jws_parse_inner(obj, &jws, &problem, detail, sizeof(detail));
	CHECK(rc == 0 && jws.nonce == NULL && jws.jwk != NULL, "inner JWS: got %s (%s)",
	    t_str(problem), detail);
	if (rc == 0) {
		rc = acme_jws_verify(&jws, jws.jwk, &problem, detail, sizeof(detail));
		CHECK(rc == 0, "inner JWS verify: got %s (%s)", t_str(problem), detail);
	}
	acme_jws_free(&jws);
	json_decref(obj);
	free(body);

	hdr = t_fmt(
	    "{\"alg\":\"ES384\",\"jwk\":%s,\"nonce\":\"" T_NONCE "\",\"url\":\"" T_URL "\"}", jwk);
	body = t_body("ES384", k_p384, hdr, payload, 0);
	obj = json_loads(body, 0, NULL);
	rc = acme_jws_parse_inner(obj, &jws, &problem, detail, sizeof(detail));
	CHECK(rc == -1 && t_streq(problem, P_MAL), "inner JWS with nonce: want malformed");
	acme_jws_free(&jws);
	json_decref(obj);
	free(body);

	body = t_body("ES256", k_p256,
	    t_fmt("{\"alg\":\"ES256\",\"kid\":\"" T_KID "\",\"url\":\"" T_URL "\"}"), payload, 0);
	obj = json_loads(body, 0, NULL);
	rc = acme_jws_parse_inner(obj, &jws, &problem, detail, sizeof(detail));
	CHECK(rc == -1 && t_streq(problem, P_MAL), "inner JWS with kid: want malformed");
	acme_jws_free(&jws);
	json_decref(obj);
	free(body);
	free(jwk);
}

/* ---- JWK, thumbprint ---------------------------------------------------- */

#define RFC7638_N                                                                                  \
	"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"  \
	"BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-"          \
	"65YGjQR0_"                                                                                \
	"FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"        \
	"bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"

static void
t_jwk_tests(void)
{
	const char *problem = NULL;
	char detail[256], tp[ACME_JWK_THUMBPRINT_LEN], *s = NULL, *mine = NULL;
	EVP_PKEY *key = NULL, *all[] = { k_rsa, k_p256, k_p384, k_p521, k_ed };
	json_t *jwk = NULL, *algs = NULL;
	size_t i;
	int rc;

	/* RFC 7638 §3.1 (with "alg" and "kid" members, which the thumbprint
	 * leaves out). */
	jwk = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "n", RFC7638_N, "e", "AQAB",
	    "alg", "RS256", "kid", "2011-04-29");
	rc = acme_jwk_parse(jwk, &key, &problem, detail, sizeof(detail));
	CHECK(rc == 0, "RFC 7638 key: got %s (%s)", t_str(problem), detail);
	if (rc == 0) {
		CHECK(acme_jwk_thumbprint(key, tp) == 0 &&
		        strcmp(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs") == 0,
		    "RFC 7638 thumbprint: got %s", tp);
		s = acme_jwk_to_string(key);
		CHECK(t_streq(s, "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\"}"),
		    "RFC 7638 canonical JWK: got %s", t_str(s));
		free(s);
	}
	EVP_PKEY_free(key);
	key = NULL;
	json_decref(jwk);

	/* Round trip and cross-check against the test's own encoder and hash. */
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		unsigned char digest[32];
		char *want_tp;

		mine = t_jwk(all[i]);
		s = acme_jwk_to_string(all[i]);
		CHECK(t_streq(s, mine), "jwk %zu: to_string %s, test says %s", i, t_str(s), mine);
		jwk = json_loads(mine, 0, NULL);
		rc = acme_jwk_parse(jwk, &key, &problem, detail, sizeof(detail));
		CHECK(
		    rc == 0 && EVP_PKEY_eq(key, all[i]) == 1, "jwk %zu: parse back: %s", i, detail);
		EVP_Digest(mine, strlen(mine), digest, NULL, EVP_sha256(), NULL);
		want_tp = t_b64url(digest, sizeof(digest));
		CHECK(acme_jwk_thumbprint(all[i], tp) == 0 && strcmp(tp, want_tp) == 0,
		    "jwk %zu: thumbprint %s, want %s", i, tp, want_tp);
		free(want_tp);
		EVP_PKEY_free(key);
		key = NULL;
		json_decref(jwk);
		free(s);
		free(mine);
	}

	/* RSA exponent 3 -> badPublicKey. */
	jwk = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", RFC7638_N, "e", "Aw");
	rc = acme_jwk_parse(jwk, &key, &problem, detail, sizeof(detail));
	CHECK(rc == -1 && t_streq(problem, P_KEY) && key == NULL, "RSA e=3: want badPublicKey");
	json_decref(jwk);
	/* Missing n -> malformed. */
	jwk = json_pack("{s:s, s:s}", "kty", "RSA", "e", "AQAB");
	rc = acme_jwk_parse(jwk, &key, &problem, detail, sizeof(detail));
	CHECK(rc == -1 && t_streq(problem, P_MAL), "RSA without n: want malformed");
	json_decref(jwk);
	/* Unknown kty -> badPublicKey; no kty -> malformed. */
	jwk = json_pack("{s:s, s:s}", "kty", "DSA", "y", "AQAB");
	rc = acme_jwk_parse(jwk, &key, &problem, detail, sizeof(detail));
	CHECK(rc == -1 && t_streq(problem, P_KEY), "kty DSA: want badPublicKey");
	json_decref(jwk);
	jwk = json_pack("{s:s}", "k", "AQAB");
	rc = acme_jwk_parse(jwk, &key, &problem, detail, sizeof(detail));
	CHECK(rc == -1 && t_streq(problem, P_MAL), "symmetric jwk: want malformed");
	json_decref(jwk);
	/* P-521 curve name accepted as a curve (coordinates checked). */
	jwk = json_pack(
	    "{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-521", "x", "AAAA", "y", "AAAA");
	rc = acme_jwk_parse(jwk, &key, &problem, detail, sizeof(detail));
	CHECK(rc == -1 && t_streq(problem, P_KEY) && strstr(detail, "66"),
	    "P-521 short coordinates: want badPublicKey naming 66 bytes, got %s", detail);
	json_decref(jwk);
	/* secp256k1 -> badPublicKey. */
	jwk = json_pack(
	    "{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "secp256k1", "x", "AAAA", "y", "AAAA");
	rc = acme_jwk_parse(jwk, &key, &problem, detail, sizeof(detail));
	CHECK(rc == -1 && t_streq(problem, P_KEY), "secp256k1: want badPublicKey");
	json_decref(jwk);

	algs = acme_jws_algorithms_json();
	s = json_dumps(algs, JSON_COMPACT);
	CHECK(t_streq(s, "[\"RS256\",\"ES256\",\"ES384\",\"ES512\",\"EdDSA\"]"),
	    "algorithms list: %s", t_str(s));
	free(s);
	json_decref(algs);
}

/* ---- base64url helpers -------------------------------------------------- */

static void
t_b64_tests(void)
{
	static const struct {
		const char *plain;
		const char *encoded;
	} good[] = {
		{ "", "" },
		{ "f", "Zg" },
		{ "fo", "Zm8" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg" },
		{ "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" },
		{ "\xfb\xff", "-_8" },
	};
	static const char *const bad[] = {
		"Zg==",
		"Zm8=",
		"Z",
		"Zm9vY",
		"Zh",
		"Zm9",
		"+_8",
		"-/8",
		"Zm 9v",
		"Zm9v\n",
		"Zm9v=",
		"Zm9v\t",
		"Zm.v",
	};
	size_t i, len;
	unsigned char *d;
	char *e;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		e = acme_b64url_encode((const unsigned char *)good[i].plain, strlen(good[i].plain));
		CHECK(t_streq(e, good[i].encoded), "encode \"%s\": %s", good[i].plain, t_str(e));
		free(e);
		d = acme_b64url_decode(good[i].encoded, strlen(good[i].encoded), &len);
		CHECK(d != NULL && len == strlen(good[i].plain) &&
		        memcmp(d, good[i].plain, len) == 0 && d[len] == '\0',
		    "decode \"%s\"", good[i].encoded);
		free(d);
		if (good[i].encoded[0] != '\0')
			CHECK(acme_b64url_valid(good[i].encoded, strlen(good[i].encoded)),
			    "valid \"%s\"", good[i].encoded);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d = acme_b64url_decode(bad[i], strlen(bad[i]), &len);
		CHECK(d == NULL, "decode \"%s\" should fail", bad[i]);
		free(d);
		CHECK(!acme_b64url_valid(bad[i], strlen(bad[i])), "valid \"%s\" should be false",
		    bad[i]);
	}
	CHECK(!acme_b64url_valid("", 0), "empty is not a valid nonce");
}

/* Every byte value in every position of a whole quantum and of a 2- and
 * 3-digit tail: the decoder (whole quanta by table, the tail digit by digit)
 * and acme_b64url_valid() agree with the alphabet, byte for byte. */
static void
t_b64_every_byte(void)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	/* "QUJD" = "ABC"; then a tail of two (4 spare bits) or three digits */
	static const char *const bases[] = { "QUJDQUJD", "QUJDQUJDQQ", "QUJDQUJDQUI" };
	int failures = 0;
	size_t b, pos, len;

	for (b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
		size_t n = strlen(bases[b]);

		for (pos = 0; pos < n; pos++) {
			for (int c = 1; c < 256; c++) {
				char text[16];
				const char *digit = strchr(alphabet, c);
				unsigned char *d = NULL;
				bool in_alphabet = digit != NULL, want;
				int value = in_alphabet ? (int)(digit - alphabet) : -1;

				memcpy(text, bases[b], n + 1);
				text[pos] = (char)c;
				/* the last digit of a tail may not set spare bits */
				want = in_alphabet;
				if (want && pos == n - 1 && n % 4 == 2)
					want = (value & 0x0f) == 0;
				if (want && pos == n - 1 && n % 4 == 3)
					want = (value & 0x03) == 0;
				d = acme_b64url_decode(text, n, &len);
				if ((d != NULL) != want || acme_b64url_valid(text, n) != want)
					failures++;
				if (d != NULL && in_alphabet) {
					/* round trip: the same text back */
					char *e = acme_b64url_encode(d, len);

					if (e == NULL || strcmp(e, text) != 0)
						failures++;
					free(e);
				}
				free(d);
			}
		}
	}
	CHECK(failures == 0, "b64url every byte in every position: %d wrong", failures);
}

/* acme_json_dump() writes what json_dumps(JSON_COMPACT) writes, for the
 * values it handles itself and those it hands to jansson. */
static void
t_json_dump_tests(void)
{
	static const char *const texts[] = {
		"{}",
		"[]",
		"{\"a\":\"b\"}",
		"{\"status\":\"pending\",\"expires\":\"2026-11-26T18:00:00Z\",\"identifiers\":"
		"[{\"type\":\"dns\",\"value\":\"a.example\"},{\"type\":\"dns\",\"value\":\"b\"}],"
		"\"authorizations\":[\"https://x/acme/e/authz/abc\"],\"finalize\":\"https://x/f\"}",
		"{\"z\":1,\"a\":-9223372036854775807,\"m\":0,\"b\":true,\"c\":false,\"n\":null}",
		"{\"nested\":{\"deeper\":[[[]],{},{\"k\":[1,2,3]}]}}",
		"{\"esc\":\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \\u0001\\u001f\\u007f end\"}",
		"{\"k\\\"\\n\":\"key escaped\"}",
		"{\"utf8\":\"caf\\u00e9 \\u20ac \\ud83d\\ude00\"}",
		"{\"\\u00e9\":\"non-ASCII key\"}",
		"{\"real\":1.5,\"after\":\"x\"}",
		"[\"top\",1,[2,[3]],{\"o\":{}}]",
	};
	int failures = 0;
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		json_t *v = json_loads(texts[i], JSON_DECODE_ANY, NULL);
		char *want = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
		char *got = v != NULL ? acme_json_dump(v) : NULL;

		CHECK(v != NULL && want != NULL && got != NULL && strcmp(want, got) == 0,
		    "json dump %zu: jansson %s, ours %s", i, t_str(want), t_str(got));
		free(want);
		free(got);
		json_decref(v);
	}
	/* keys in insertion order, a replaced value keeping its place */
	{
		json_t *o = json_object();
		char *want = NULL, *got = NULL;

		json_object_set_new(o, "zeta", json_string("1"));
		json_object_set_new(o, "alpha", json_integer(2));
		json_object_set_new(o, "mid", json_null());
		json_object_set_new(o, "zeta", json_string("replaced"));
		json_object_del(o, "alpha");
		json_object_set_new(o, "alpha", json_true());
		want = json_dumps(o, JSON_COMPACT);
		got = acme_json_dump(o);
		CHECK(want != NULL && got != NULL && strcmp(want, got) == 0,
		    "json dump order: jansson %s, ours %s", t_str(want), t_str(got));
		free(want);
		free(got);
		json_decref(o);
	}
	/* every byte as a one-byte string: escaped as jansson escapes it, and
	 * invalid UTF-8 refused (NULL) as jansson refuses it */
	for (int c = 1; c < 256; c++) {
		char byte = (char)c;
		json_t *o = json_pack("{s:s#}", "k", &byte, (size_t)1);
		char *want = NULL, *got = NULL;

		if (o == NULL) {
			/* json_pack checks UTF-8: build it unchecked */
			o = json_object();
			json_object_set_new(o, "k", json_stringn_nocheck(&byte, 1));
		}
		want = json_dumps(o, JSON_COMPACT);
		got = acme_json_dump(o);
		if ((want == NULL) != (got == NULL) || (want != NULL && strcmp(want, got) != 0))
			failures++;
		free(want);
		free(got);
		json_decref(o);
	}
	/* a long string grows the buffer more than once */
	{
		char big[5000];
		json_t *o = NULL;
		char *want = NULL, *got = NULL;

		for (i = 0; i < sizeof(big) - 1; i++)
			big[i] = (char)(i % 7 == 0 ? '\n' : 'a' + i % 26);
		big[sizeof(big) - 1] = '\0';
		o = json_pack("{s:s,s:[s,s]}", "big", big, "arr", big, "x");
		want = json_dumps(o, JSON_COMPACT);
		got = acme_json_dump(o);
		if (want == NULL || got == NULL || strcmp(want, got) != 0)
			failures++;
		free(want);
		free(got);
		json_decref(o);
	}
	CHECK(failures == 0, "json dump: %d byte-by-byte differences from jansson", failures);
	CHECK(acme_json_dump(NULL) == NULL, "json dump of NULL");
}

/* ---- external account binding ------------------------------------------- */

#define T_NEWACCT "https://ra.example/acme/new-account"

struct t_eab_case {
	const char *name;
	const char *alg;          /* header alg */
	const char *sign_alg;     /* how it is signed */
	const char *extra_header; /* appended to the header object */
	const char *url;          /* header url */
	bool omit_kid;
	EVP_PKEY *payload_key;         /* bound key (NULL: k_p256, the account key) */
	const char *payload;           /* or a literal payload */
	const unsigned char *sign_key; /* MAC key used to sign (NULL: the right one) */
	enum t_sig_mutation mutation;
	const char *parse_problem;
	const char *verify_problem;
};

static const unsigned char t_eab_key[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char t_eab_wrong[32] = "0123456789abcdef0123456789abcdeF";

static char *
t_eab(const struct t_eab_case *c)
{
	char *hdr, *jwk, *pb64, *out;
	struct t_jws_spec spec;

	hdr = t_fmt("{\"alg\":\"%s\",%s\"url\":\"%s\"%s}", c->alg,
	    c->omit_kid ? "" : "\"kid\":\"eab-kid-1\",", c->url != NULL ? c->url : T_NEWACCT,
	    c->extra_header != NULL ? c->extra_header : "");
	jwk = c->payload != NULL ? strdup(c->payload)
	                         : t_jwk(c->payload_key != NULL ? c->payload_key : k_p256);
	pb64 = t_b64url_str(jwk);
	spec = (struct t_jws_spec){
		.sign_alg = c->sign_alg != NULL ? c->sign_alg : c->alg,
		.key = k_p256,
		.mac_key = c->sign_key != NULL ? c->sign_key : t_eab_key,
		.mac_key_len = sizeof(t_eab_key),
		.protected_json = hdr,
		.payload_b64 = pb64,
		.mutation = c->mutation,
	};
	out = t_jws(&spec);
	free(hdr);
	free(jwk);
	free(pb64);
	return out;
}

static void
t_eab_tests(void)
{
	const char *U = ACME_PROBLEM_UNAUTHORIZED;
	char *p256_spaced = NULL, *p256 = t_jwk(k_p256);
	struct t_eab_case cases[] = {
		{ "EAB HS256 valid", "HS256", .sign_alg = NULL },
		{ "EAB HS384 valid", "HS384", .sign_alg = NULL },
		{ "EAB HS512 valid", "HS512", .sign_alg = NULL },
		{ "EAB wrong MAC key", "HS256", .sign_key = t_eab_wrong, .verify_problem = U },
		{ "EAB MAC bit flipped", "HS256", .mutation = T_SIG_FLIP_BIT, .verify_problem = U },
		{ "EAB MAC truncated", "HS256", .mutation = T_SIG_TRUNCATE, .verify_problem = U },
		{ "EAB signed HS384 claims HS256", "HS256", .sign_alg = "HS384",
		    .verify_problem = U },
		{ "EAB wrong url", "HS256", .url = "https://ra.example/acme/new-order",
		    .parse_problem = U },
		{ "EAB payload is another key", "HS256", .payload_key = k_p256b,
		    .verify_problem = U },
		{ "EAB payload is an RSA key", "HS256", .payload_key = k_rsa, .verify_problem = U },
		{ "EAB payload same key, other spelling", "HS256", .payload = NULL },
		{ "EAB payload not a JWK", "HS256", .payload = "{\"kty\":\"EC\"}",
		    .verify_problem = P_MAL },
		{ "EAB nonce present", "HS256", .extra_header = ",\"nonce\":\"" T_NONCE "\"",
		    .parse_problem = P_MAL },
		{ "EAB alg RS256", "RS256", .sign_alg = "HS256", .parse_problem = P_MAL },
		{ "EAB alg none", "none", .sign_alg = "HS256", .parse_problem = P_MAL },
		{ "EAB without kid", "HS256", .omit_kid = true, .parse_problem = P_MAL },
		{ "EAB crit", "HS256", .extra_header = ",\"crit\":[\"x\"]",
		    .parse_problem = P_MAL },
		{ "EAB padded MAC", "HS256", .mutation = T_SIG_PADDED, .parse_problem = P_MAL },
	};
	size_t i;

	/* Same key, members reordered and spaced: compared as keys, it binds. */
	{
		json_t *j = json_loads(p256, 0, NULL), *r;

		r = json_pack("{s:O, s:O, s:O, s:O}", "y", json_object_get(j, "y"), "x",
		    json_object_get(j, "x"), "kty", json_object_get(j, "kty"), "crv",
		    json_object_get(j, "crv"));
		p256_spaced = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		json_decref(r);
		json_decref(j);
		cases[10].payload = p256_spaced;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct t_eab_case *c = &cases[i];
		char *text = t_eab(c);
		json_t *obj = json_loads(text, 0, NULL);
		struct acme_eab eab;
		const char *problem = NULL;
		char detail[256] = "";
		int rc;

		rc = acme_eab_parse(obj, T_NEWACCT, &eab, &problem, detail, sizeof(detail));
		if (c->parse_problem != NULL) {
			CHECK(rc == -1 && t_streq(problem, c->parse_problem) && eab.kid == NULL,
			    "%s: parse: want %s, got rc %d %s (%s)", c->name, c->parse_problem, rc,
			    t_str(problem), detail);
		} else {
			CHECK(rc == 0 && t_streq(eab.kid, "eab-kid-1"),
			    "%s: parse: want ok, got %s (%s)", c->name, t_str(problem), detail);
			if (rc == 0) {
				problem = NULL;
				rc = acme_eab_verify(&eab, t_eab_key, sizeof(t_eab_key), k_p256,
				    &problem, detail, sizeof(detail));
				if (c->verify_problem != NULL)
					CHECK(rc == -1 && t_streq(problem, c->verify_problem),
					    "%s: verify: want %s, got rc %d %s (%s)", c->name,
					    c->verify_problem, rc, t_str(problem), detail);
				else
					CHECK(rc == 0, "%s: verify: want ok, got %s (%s)", c->name,
					    t_str(problem), detail);
			}
		}
		CHECK(ERR_peek_error() == 0, "%s: OpenSSL error queue left non-empty", c->name);
		acme_eab_free(&eab);
		json_decref(obj);
		free(text);
	}

	/* End to end: a newAccount JWS carrying the binding. */
	{
		struct t_eab_case ok = { "e2e", "HS256", .sign_alg = NULL };
		char *eab_text = t_eab(&ok), *payload, *hdr, *body;
		struct acme_jws jws;
		struct acme_eab eab;
		const char *problem = NULL;
		char detail[256] = "";
		int rc;

		payload = t_fmt(
		    "{\"termsOfServiceAgreed\":true,\"externalAccountBinding\":%s}", eab_text);
		hdr = t_fmt("{\"alg\":\"ES256\",\"jwk\":%s,\"nonce\":\"" T_NONCE
		            "\",\"url\":\"" T_NEWACCT "\"}",
		    p256);
		body = t_body("ES256", k_p256, hdr, payload, 0);
		rc = acme_jws_parse(
		    (unsigned char *)body, strlen(body), &jws, &problem, detail, sizeof(detail));
		CHECK(rc == 0, "newAccount with EAB: parse %s (%s)", t_str(problem), detail);
		if (rc == 0) {
			rc = acme_jws_verify(&jws, jws.jwk, &problem, detail, sizeof(detail));
			CHECK(rc == 0, "newAccount with EAB: verify %s", t_str(problem));
			rc = acme_eab_parse(
			    json_object_get(jws.payload_json, "externalAccountBinding"), jws.url,
			    &eab, &problem, detail, sizeof(detail));
			CHECK(rc == 0, "newAccount EAB parse: %s (%s)", t_str(problem), detail);
			if (rc == 0) {
				rc = acme_eab_verify(&eab, t_eab_key, sizeof(t_eab_key), jws.jwk,
				    &problem, detail, sizeof(detail));
				CHECK(rc == 0, "newAccount EAB verify: %s (%s)", t_str(problem),
				    detail);
				rc = acme_eab_verify(
				    &eab, t_eab_key, 0, jws.jwk, &problem, detail, sizeof(detail));
				CHECK(rc == -1 && t_streq(problem, U), "empty EAB key refused");
			}
			acme_eab_free(&eab);
		}
		acme_jws_free(&jws);
		free(eab_text);
		free(payload);
		free(body);
	}
	free(p256_spaced);
	free(p256);
}

/* The JSON fast path (acme_json_flat_object): a table of texts, whether it
 * takes each, and for each it takes, that jansson reads the same object. */
static void
t_flat_object_tests(void)
{
	static const struct {
		const char *text;
		bool taken;
	} cases[] = {
		{ "{}", true },
		{ " \t\r\n{ }\n", true },
		{ "{\"a\":\"b\"}", true },
		{ "{ \"protected\" : \"eyJ\" , \"payload\":\"\", \"signature\":\"x-_\" }\n", true },
		{ "{\"\":\"\"}", true },
		{ "{\"a\":\"b\",\"a\":\"c\"}", false }, /* duplicate: jansson refuses */
		{ "{\"a\":\"b\\\"c\"}", false },          /* escape */
		{ "{\"a\":\"\\u0041\"}", false },          /* escape */
		{ "{\"a\":\"\xc3\xa9\"}", false },           /* non-ASCII */
		{ "{\"a\":\"\x01\"}", false },               /* control byte */
		{ "{\"a\":1}", false },                       /* not a string */
		{ "{\"a\":{\"b\":\"c\"}}", false },           /* nested */
		{ "{\"a\":\"b\"} x", false },                 /* trailing garbage */
		{ "{\"a\":\"b\",}", false },                  /* trailing comma */
		{ "{\"a\" \"b\"}", false },                    /* no colon */
		{ "{\"a\":\"b\"", false },                    /* unterminated */
		{ "{\"a\":\"b", false },
		{ "[\"a\"]", false },
		{ "\"a\"", false },
		{ "", false },
		{ "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":\"b\"}",
		    false }, /* 64-byte key */
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *text = cases[i].text;
		json_t *fast = acme_json_flat_object((const unsigned char *)text, strlen(text));
		json_t *slow = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES, NULL);

		CHECK((fast != NULL) == cases[i].taken, "flat object %zu (%s): %s", i, text,
		    fast != NULL ? "taken" : "not taken");
		if (fast != NULL)
			CHECK(slow != NULL && json_equal(fast, slow) == 1,
			    "flat object %zu (%s): jansson reads it otherwise", i, text);
		json_decref(fast);
		json_decref(slow);
	}
	/* a refused byte in every position of a long string: the scan goes
	 * eight bytes at a time, then byte by byte */
	{
		static const unsigned char refused[] = { 0x00, 0x01, 0x1f, 0x7f, 0x80, 0xff, '\\' };
		static const unsigned char accepted[] = { 0x20, 0x7e, '!', '[', ']', '~' };
		int failures = 0;

		for (size_t pos = 0; pos < 40; pos++) {
			for (size_t r = 0; r < sizeof(refused) + sizeof(accepted); r++) {
				unsigned char text[64];
				bool want = r >= sizeof(refused);
				json_t *fast = NULL;

				memcpy(text, "{\"k\":\"", 6);
				memset(text + 6, 'a', 40);
				text[6 + pos] = want ? accepted[r - sizeof(refused)] : refused[r];
				memcpy(text + 46, "\"}", 2);
				fast = acme_json_flat_object(text, 48);
				if ((fast != NULL) != want ||
				    (fast != NULL &&
					(json_string_length(json_object_get(fast, "k")) != 40 ||
					    memcmp(json_string_value(json_object_get(fast, "k")),
						text + 6, 40) != 0)))
					failures++;
				json_decref(fast);
			}
		}
		CHECK(failures == 0, "flat object: %d wrong verdicts on single bytes", failures);
	}
	/* the JWS members come out as jansson's would, lengths included */
	{
		static const char body[] = "{\"protected\":\"ab\",\"payload\":\"\"}";
		json_t *fast = acme_json_flat_object((const unsigned char *)body, strlen(body));

		CHECK(fast != NULL && json_object_size(fast) == 2 &&
		        json_string_length(json_object_get(fast, "protected")) == 2 &&
		        json_string_length(json_object_get(fast, "payload")) == 0,
		    "flat object members");
		json_decref(fast);
	}
}

/* With ENROLLD_FUZZ_SEED_DIR set, writes every JWS of the table there: a
 * seed corpus for tests/fuzz/fuzz_acme_jws.c. */
static void
t_write_seeds(void)
{
	const char *dir = getenv("ENROLLD_FUZZ_SEED_DIR");
	size_t i;

	if (dir == NULL || dir[0] == '\0')
		return;
	for (i = 0; i < t_n_cases; i++) {
		char *path = t_fmt("%s/jws-%02zu", dir, i);
		FILE *f = fopen(path, "w");

		if (f == NULL || fputs(t_cases[i].body, f) == EOF)
			printf("cannot write seed %s\n", path);
		if (f != NULL)
			fclose(f);
		free(path);
	}
}

/* ECDSA signatures as JWS carries them (R || S) against the DER the door
 * builds for OpenSSL: signed here until each curve has shown an R or S with
 * a leading zero octet (shorter INTEGER) and one with its top bit set
 * (INTEGER with a 0x00 pad; never on P-521, whose 66-octet coordinates
 * start 0x00 or 0x01 - its DER needs the long length form instead); each
 * verifies, directly and through a verifier, and with one bit flipped does
 * not. */
static void
t_ecdsa_encodings(void)
{
	static const struct {
		const char *name;
		EVP_PKEY **key;
		enum acme_jws_alg alg;
		const char *digest;
		size_t coord_len;
		bool top_bit_possible;
	} curves[] = {
		{ "ES256", &k_p256, ACME_JWS_ALG_ES256, "SHA256", 32, true },
		{ "ES384", &k_p384, ACME_JWS_ALG_ES384, "SHA384", 48, true },
		{ "ES512", &k_p521, ACME_JWS_ALG_ES512, "SHA512", 66, false },
	};

	for (size_t c = 0; c < sizeof(curves) / sizeof(curves[0]); c++) {
		struct acme_jws_verifier *v = acme_jws_verifier_new(*curves[c].key);
		bool seen_zero = false, seen_top = !curves[c].top_bit_possible;
		int n, bad = 0;

		CHECK(v != NULL, "%s: verifier", curves[c].name);
		for (n = 0; n < 20000 && (!seen_zero || !seen_top || n < 64); n++) {
			unsigned char der[160], raw[132];
			const unsigned char *p = der;
			char msg[64];
			size_t der_len = sizeof(der);
			const char *problem = NULL;
			char detail[256] = "";
			EVP_MD_CTX *md = EVP_MD_CTX_new();
			ECDSA_SIG *es = NULL;
			struct acme_jws jws;
			size_t cl = curves[c].coord_len;

			snprintf(msg, sizeof(msg), "protected.payload-%d", n);
			if (md == NULL ||
			    EVP_DigestSignInit_ex(md, NULL, curves[c].digest, NULL, NULL,
				*curves[c].key, NULL) != 1 ||
			    EVP_DigestSign(md, der, &der_len, (const unsigned char *)msg,
				strlen(msg)) != 1 ||
			    (es = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) == NULL ||
			    BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int)cl) != (int)cl ||
			    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + cl, (int)cl) != (int)cl) {
				CHECK(0, "%s: signing %d", curves[c].name, n);
				EVP_MD_CTX_free(md);
				ECDSA_SIG_free(es);
				break;
			}
			EVP_MD_CTX_free(md);
			ECDSA_SIG_free(es);
			seen_zero = seen_zero || raw[0] == 0 || raw[cl] == 0;
			seen_top = seen_top || (raw[0] & 0x80) || (raw[cl] & 0x80);

			memset(&jws, 0, sizeof(jws));
			jws.alg = curves[c].alg;
			jws.signing_input = msg;
			jws.signing_input_len = strlen(msg);
			jws.signature = raw;
			jws.signature_len = 2 * cl;
			if (acme_jws_verify(&jws, *curves[c].key, &problem, detail,
				sizeof(detail)) != 0 ||
			    (v != NULL && acme_jws_verify_with(&jws, v, &problem, detail,
				sizeof(detail)) != 0))
				bad++;
			raw[cl + cl / 2] ^= 0x10;
			if (acme_jws_verify(&jws, *curves[c].key, &problem, detail,
				sizeof(detail)) == 0 ||
			    (v != NULL && acme_jws_verify_with(&jws, v, &problem, detail,
				sizeof(detail)) == 0))
				bad++;
			ERR_clear_error();
		}
		CHECK(bad == 0, "%s: %d of %d signatures judged wrongly", curves[c].name, bad, n);
		CHECK(seen_zero && seen_top, "%s: edge encodings not met in %d signatures",
		    curves[c].name, n);
		acme_jws_verifier_free(v);
	}
}

/* ---- ES256 tables (core/ecverify.h) ------------------------------------ */

/* A raw (R || S) ES256/ES384 signature of msg by key into raw. */
static bool
t_sign_raw(EVP_PKEY *key, const char *digest, size_t cl, const char *msg, unsigned char *raw)
{
	unsigned char der[160];
	const unsigned char *p = der;
	size_t der_len = sizeof(der);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *es = NULL;
	bool ok = md != NULL &&
	    EVP_DigestSignInit_ex(md, NULL, digest, NULL, NULL, key, NULL) == 1 &&
	    EVP_DigestSign(md, der, &der_len, (const unsigned char *)msg, strlen(msg)) == 1 &&
	    (es = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) != NULL &&
	    BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int)cl) == (int)cl &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + cl, (int)cl) == (int)cl;

	EVP_MD_CTX_free(md);
	ECDSA_SIG_free(es);
	return ok;
}

/* Verifies msg/raw with v and with acme_jws_verify(); both must give
 * want_rc and the same problem and detail. */
static void
t_fast_same(const char *what, struct acme_jws_verifier *v, EVP_PKEY *key,
    enum acme_jws_alg alg, const char *msg, unsigned char *raw, size_t raw_len, int want_rc)
{
	struct acme_jws jws;
	const char *p1 = NULL, *p2 = NULL;
	char d1[256] = "", d2[256] = "";
	int rc1, rc2;

	memset(&jws, 0, sizeof(jws));
	jws.alg = alg;
	jws.signing_input = (char *)msg;
	jws.signing_input_len = strlen(msg);
	jws.signature = raw;
	jws.signature_len = raw_len;
	rc1 = acme_jws_verify_with(&jws, v, &p1, d1, sizeof(d1));
	rc2 = acme_jws_verify(&jws, key, &p2, d2, sizeof(d2));
	CHECK(rc1 == want_rc && rc2 == want_rc && t_streq(p1, p2) && strcmp(d1, d2) == 0,
	    "%s: verifier rc %d %s (%s), acme_jws_verify rc %d %s (%s), want %d", what, rc1,
	    t_str(p1), d1, rc2, t_str(p2), d2, want_rc);
	CHECK(ERR_peek_error() == 0, "%s: OpenSSL errors left", what);
	ERR_clear_error();
}

/* Several threads verifying with one verifier while its table is built
 * and published: every good signature passes, every flipped one fails. */
struct t_fast_thread {
	struct acme_jws_verifier *v;
	int id, wrong;
};

static void *
t_fast_thread_main(void *arg)
{
	struct t_fast_thread *job = arg;
	unsigned char raw[64];
	char msg[64];

	for (int n = 0; n < 60; n++) {
		struct acme_jws jws;
		const char *problem = NULL;
		char detail[256];

		snprintf(msg, sizeof(msg), "fast.thread-%d-%d", job->id, n);
		if (!t_sign_raw(k_p256, "SHA256", 32, msg, raw)) {
			job->wrong++;
			continue;
		}
		memset(&jws, 0, sizeof(jws));
		jws.alg = ACME_JWS_ALG_ES256;
		jws.signing_input = msg;
		jws.signing_input_len = strlen(msg);
		jws.signature = raw;
		jws.signature_len = 64;
		if (acme_jws_verify_with(&jws, job->v, &problem, detail, sizeof(detail)) != 0)
			job->wrong++;
		raw[n % 64] ^= 0x04;
		if (acme_jws_verify_with(&jws, job->v, &problem, detail, sizeof(detail)) == 0)
			job->wrong++;
		ERR_clear_error();
	}
	return NULL;
}

static void
t_fast_threads(void)
{
	struct acme_jws_verifier *v = acme_jws_verifier_new(k_p256);
	struct t_fast_thread jobs[4];
	pthread_t threads[4];
	int i, waited;

	CHECK(v != NULL, "fast threads: verifier");
	if (v == NULL)
		return;
	for (i = 0; i < 4; i++) {
		jobs[i].v = v;
		jobs[i].id = i;
		jobs[i].wrong = 0;
		CHECK(pthread_create(&threads[i], NULL, t_fast_thread_main, &jobs[i]) == 0,
		    "fast threads: pthread_create");
	}
	for (i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		CHECK(jobs[i].wrong == 0, "fast threads: thread %d judged %d wrongly", i,
		    jobs[i].wrong);
	}
	for (waited = 0; waited < 200 && !acme_jws_verifier_fast(v); waited++)
		usleep(50 * 1000);
	CHECK(acme_jws_verifier_fast(v), "fast threads: table built");
	acme_jws_verifier_free(v);
}

/* An ES256 verifier gets its table after 64 good verifications (built
 * aside: waited for here), not before, and then answers exactly as
 * acme_jws_verify() for good, flipped, short, wrong-alg and wrong-key
 * signatures; a P-384 verifier never gets one. */
static void
t_fast_tables(void)
{
	struct acme_jws_verifier *v = acme_jws_verifier_new(k_p256);
	struct acme_jws_verifier *v384 = acme_jws_verifier_new(k_p384);
	unsigned char raw[132];
	char msg[64];
	int n, waited;

	CHECK(v != NULL && v384 != NULL, "fast: verifiers");
	if (v == NULL || v384 == NULL)
		goto out;
	for (n = 0; n < 63; n++) {
		snprintf(msg, sizeof(msg), "fast.before-%d", n);
		if (!t_sign_raw(k_p256, "SHA256", 32, msg, raw)) {
			CHECK(0, "fast: signing");
			goto out;
		}
		t_fast_same("fast: before", v, k_p256, ACME_JWS_ALG_ES256, msg, raw, 64, 0);
		/* bad ones do not count */
		raw[5] ^= 1;
		t_fast_same("fast: before, flipped", v, k_p256, ACME_JWS_ALG_ES256, msg, raw, 64, -1);
	}
	usleep(100 * 1000);
	CHECK(!acme_jws_verifier_fast(v), "fast: no table after 63 good verifications");
	snprintf(msg, sizeof(msg), "fast.64th");
	CHECK(t_sign_raw(k_p256, "SHA256", 32, msg, raw), "fast: signing");
	t_fast_same("fast: 64th", v, k_p256, ACME_JWS_ALG_ES256, msg, raw, 64, 0);
	for (waited = 0; waited < 200 && !acme_jws_verifier_fast(v); waited++)
		usleep(50 * 1000);
	CHECK(acme_jws_verifier_fast(v), "fast: table built after 64 good verifications");
	for (n = 0; n < 300; n++) {
		snprintf(msg, sizeof(msg), "fast.after-%d", n);
		if (!t_sign_raw(k_p256, "SHA256", 32, msg, raw)) {
			CHECK(0, "fast: signing");
			goto out;
		}
		t_fast_same("fast: good", v, k_p256, ACME_JWS_ALG_ES256, msg, raw, 64, 0);
		t_fast_same("fast: short", v, k_p256, ACME_JWS_ALG_ES256, msg, raw, 63, -1);
		t_fast_same("fast: as ES384", v, k_p256, ACME_JWS_ALG_ES384, msg, raw, 64, -1);
		t_fast_same("fast: P-384 key", v384, k_p384, ACME_JWS_ALG_ES256, msg, raw, 64, -1);
		raw[n % 64] ^= (unsigned char)(1u << (n % 8));
		t_fast_same("fast: flipped", v, k_p256, ACME_JWS_ALG_ES256, msg, raw, 64, -1);
		raw[n % 64] ^= (unsigned char)(1u << (n % 8));
		msg[0] ^= 1;
		t_fast_same("fast: other message", v, k_p256, ACME_JWS_ALG_ES256, msg, raw, 64, -1);
		msg[0] ^= 1;
		if (!t_sign_raw(k_p256b, "SHA256", 32, msg, raw)) {
			CHECK(0, "fast: signing with the other P-256 key");
			goto out;
		}
		t_fast_same("fast: other P-256 key", v, k_p256, ACME_JWS_ALG_ES256, msg, raw, 64, -1);
	}
	for (n = 0; n < 100; n++) {
		snprintf(msg, sizeof(msg), "fast.p384-%d", n);
		if (!t_sign_raw(k_p384, "SHA384", 48, msg, raw)) {
			CHECK(0, "fast: signing P-384");
			goto out;
		}
		t_fast_same("fast: P-384", v384, k_p384, ACME_JWS_ALG_ES384, msg, raw, 96, 0);
	}
	usleep(100 * 1000);
	CHECK(!acme_jws_verifier_fast(v384), "fast: no table for P-384");
out:
	acme_jws_verifier_free(v);
	acme_jws_verifier_free(v384);
}

/* acme_jws_tables_wait() (called by the daemon before it exits, when the
 * OpenSSL atexit cleanup would otherwise run under a table still being
 * built on its detached thread) returns only once that thread is done: the
 * table of a key that has just reached 64 verifications is then published,
 * and a verifier dropped while its table was being built has been freed by
 * the builder (LeakSanitizer checks that in the ASan build). */
static void
t_fast_wait(void)
{
	struct acme_jws_verifier *v = NULL;
	unsigned char raw[132];
	char msg[64];
	int n, round;

	for (round = 0; round < 2; round++) {
		/* no other build in progress, or the 64th would not start one */
		acme_jws_tables_wait();
		v = acme_jws_verifier_new(k_p256b);
		CHECK(v != NULL, "wait: verifier");
		if (v == NULL)
			return;
		for (n = 0; n < 64; n++) {
			snprintf(msg, sizeof(msg), "wait.%d-%d", round, n);
			if (!t_sign_raw(k_p256b, "SHA256", 32, msg, raw)) {
				CHECK(0, "wait: signing");
				break;
			}
			t_fast_same("wait: good", v, k_p256b, ACME_JWS_ALG_ES256, msg, raw, 64, 0);
		}
		if (round == 1) {
			/* dropped while its table is being built */
			acme_jws_verifier_free(v);
			v = NULL;
		}
		acme_jws_tables_wait();
		if (round == 0)
			CHECK(acme_jws_verifier_fast(v), "wait: table published when the wait returns");
		acme_jws_verifier_free(v);
	}
}

int
main(void)
{
	size_t i;

	t_keys();
	t_table();
	t_write_seeds();
	t_run_table();
	t_ecdsa_encodings();
	t_fast_tables();
	t_fast_threads();
	t_fast_wait();
	t_bounds();
	t_inner();
	t_jwk_tests();
	t_b64_tests();
	t_b64_every_byte();
	t_eab_tests();
	t_flat_object_tests();
	t_json_dump_tests();

	for (i = 0; i < t_n_cases; i++)
		free(t_cases[i].body);
	EVP_PKEY_free(k_rsa);
	EVP_PKEY_free(k_rsa1024);
	EVP_PKEY_free(k_p256);
	EVP_PKEY_free(k_p256b);
	EVP_PKEY_free(k_p384);
	EVP_PKEY_free(k_p521);
	EVP_PKEY_free(k_ed);

	printf("%d passed, %d failed\n", t_passed, t_failed);
	return t_failed == 0 ? 0 : 1;
}
