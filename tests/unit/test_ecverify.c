/*
 * test_ecverify.c: core/ecverify.c answers exactly as OpenSSL does.
 *
 * Differential: for thousands of random keys, digests and messages, the
 * accelerated check and OpenSSL's (EVP_PKEY_verify() over the digest, and
 * EVP_DigestVerify() over the message for the signatures as made) must
 * give the same answer for the valid signature and for each mutation of
 * it: a flipped bit in r, s or the digest, r and s swapped, the high-s
 * twin (n - s: valid ECDSA too), the wrong key, random r and s, and r or s
 * replaced by 0, 1, n-1, n, n+1 and 2^256-1. Digests 0, n and 2^256-1
 * (e >= n, u1 = 0) are signed and checked as well. The test also asserts
 * that each class was exercised (valid ones accepted, invalid ones
 * refused), that the two corners of step 5 agree too (a valid signature
 * whose u1*G == u2*Q, so that the last addition is a doubling, and
 * u1*G == -u2*Q, R at infinity), and the corner of steps 6-8 (x_R >= n,
 * v = x_R - n), that keys other than P-256 get no
 * accelerator, and that several threads verifying with one accelerator
 * agree.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>

#include "ecverify.h"

#define KEYS 12
#define ROUNDS 1500
#define THREADS 4

static int passed, failed;
static long agreed_valid, agreed_invalid;
static unsigned char order_n[32];

static void
check(bool ok, const char *what)
{
	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s\n", what);
}

static void
hex(const char *label, const unsigned char *b, size_t n)
{
	printf("  %s ", label);
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

/* OpenSSL's answer for (r, s) over digest: 1, 0 (also for what OpenSSL
 * refuses as an error, e.g. r >= n), or -1 when the test itself failed. */
static int
ref_verify(EVP_PKEY *key, const unsigned char digest[32], const unsigned char r[32],
    const unsigned char s[32])
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *br = BN_bin2bn(r, 32, NULL), *bs = BN_bin2bn(s, 32, NULL);
	unsigned char *der = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	int der_len, rc = -1;

	if (sig == NULL || br == NULL || bs == NULL || ECDSA_SIG_set0(sig, br, bs) != 1)
		goto out;
	br = bs = NULL;
	if ((der_len = i2d_ECDSA_SIG(sig, &der)) <= 0 ||
	    (ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL ||
	    EVP_PKEY_verify_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1)
		goto out;
	rc = EVP_PKEY_verify(ctx, der, (size_t)der_len, digest, 32) == 1 ? 1 : 0;
out:
	OPENSSL_free(der);
	EVP_PKEY_CTX_free(ctx);
	ECDSA_SIG_free(sig);
	BN_free(br);
	BN_free(bs);
	return rc;
}

/* Both answers for one case; a difference is a failure (printed). */
static int
compare(const char *what, EVP_PKEY *key, const struct ecverify_p256 *accel,
    const unsigned char digest[32], const unsigned char r[32], const unsigned char s[32])
{
	int want = ref_verify(key, digest, r, s);
	int got = ecverify_p256_verify(accel, digest, r, s);

	if (want == -1 || got != want) {
		failed++;
		printf("FAIL %s: OpenSSL %d, ecverify %d\n", what, want, got);
		hex("digest", digest, 32);
		hex("r", r, 32);
		hex("s", s, 32);
		return -1;
	}
	passed++;
	if (want == 1)
		agreed_valid++;
	else
		agreed_invalid++;
	return want;
}

/* Signs digest (not hashed again) with key; r and s into 32 bytes each. */
static bool
sign_digest(EVP_PKEY *key, const unsigned char digest[32], unsigned char r[32], unsigned char s[32])
{
	unsigned char der[80];
	const unsigned char *p = der;
	size_t der_len = sizeof(der);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	ECDSA_SIG *sig = NULL;
	const BIGNUM *br, *bs;
	bool ok = false;

	if (ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
	    EVP_PKEY_sign(ctx, der, &der_len, digest, 32) == 1 &&
	    (sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) != NULL) {
		ECDSA_SIG_get0(sig, &br, &bs);
		ok = BN_bn2binpad(br, r, 32) == 32 && BN_bn2binpad(bs, s, 32) == 32;
	}
	ECDSA_SIG_free(sig);
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* Signs msg with EVP_DigestSign (SHA-256); digest, r, s out. Also checks
 * that EVP_DigestVerify() over the message accepts it. */
static bool
sign_message(EVP_PKEY *key, const unsigned char *msg, size_t len, unsigned char digest[32],
    unsigned char r[32], unsigned char s[32])
{
	unsigned char der[80];
	const unsigned char *p = der;
	size_t der_len = sizeof(der);
	unsigned int dlen = 0;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	ECDSA_SIG *sig = NULL;
	const BIGNUM *br, *bs;
	bool ok = false;

	if (m == NULL || EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(m, der, &der_len, msg, len) != 1 ||
	    EVP_Digest(msg, len, digest, &dlen, EVP_sha256(), NULL) != 1 || dlen != 32 ||
	    (sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) == NULL)
		goto out;
	ECDSA_SIG_get0(sig, &br, &bs);
	if (BN_bn2binpad(br, r, 32) != 32 || BN_bn2binpad(bs, s, 32) != 32)
		goto out;
	EVP_MD_CTX_free(m);
	m = EVP_MD_CTX_new();
	ok = m != NULL && EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestVerify(m, der, der_len, msg, len) == 1;
out:
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(m);
	return ok;
}

/* n - v (v in [1, n-1]) into out. */
static void
negate_mod_n(const unsigned char v[32], unsigned char out[32])
{
	BIGNUM *bn = BN_bin2bn(order_n, 32, NULL), *bv = BN_bin2bn(v, 32, NULL);

	BN_sub(bn, bn, bv);
	BN_bn2binpad(bn, out, 32);
	BN_free(bn);
	BN_free(bv);
}

/* The special values of r and s: 0, 1, n-1, n, n+1, 2^256-1. */
static void
special_value(int i, unsigned char out[32])
{
	BIGNUM *bn = BN_bin2bn(order_n, 32, NULL);

	memset(out, 0, 32);
	switch (i) {
	case 0:
		break;
	case 1:
		out[31] = 1;
		break;
	case 2:
		BN_sub_word(bn, 1);
		BN_bn2binpad(bn, out, 32);
		break;
	case 3:
		memcpy(out, order_n, 32);
		break;
	case 4:
		BN_add_word(bn, 1);
		BN_bn2binpad(bn, out, 32);
		break;
	default:
		memset(out, 0xff, 32);
		break;
	}
	BN_free(bn);
}
#define SPECIALS 6

/*
 * The two corners of SEC1 4.1.4 step 5 that random signatures never reach,
 * built from a key whose private scalar d is known: u1*G == u2*Q (the final
 * addition is a doubling; e = r*d, and s = 2*r*d/k makes the signature
 * valid for R = k*G) and u1*G == -u2*Q (R is the point at infinity; e =
 * -r*d: invalid for every s). Each is compared with OpenSSL and must give
 * 1, respectively 0.
 */
static void
test_degenerate_sums(const EC_GROUP *group)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	struct ecverify_p256 *accel = key != NULL ? ecverify_p256_new(key) : NULL;
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *d = NULL, *k = BN_new(), *r = BN_new(), *e = BN_new(), *s = BN_new();
	BIGNUM *t = BN_new(), *x = BN_new();
	const BIGNUM *n = EC_GROUP_get0_order(group);
	EC_POINT *pr = EC_POINT_new(group);
	unsigned char rb[32], sb[32], eb[32];
	char what[64];

	if (accel == NULL || ctx == NULL || k == NULL || r == NULL || e == NULL || s == NULL ||
	    t == NULL || x == NULL || pr == NULL ||
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1) {
		check(false, "degenerate sums: setup");
		goto out;
	}
	for (int i = 0; i < 20; i++) {
		/* R = k*G, r = x_R mod n, e = r*d, s = 2*r*d/k (all mod n) */
		if (BN_rand_range(k, n) != 1 || BN_is_zero(k) ||
		    EC_POINT_mul(group, pr, k, NULL, NULL, ctx) != 1 ||
		    EC_POINT_get_affine_coordinates(group, pr, x, NULL, ctx) != 1 ||
		    BN_nnmod(r, x, n, ctx) != 1 || BN_is_zero(r) ||
		    BN_mod_mul(e, r, d, n, ctx) != 1 || BN_mod_add(t, e, e, n, ctx) != 1 ||
		    BN_mod_inverse(s, k, n, ctx) == NULL || BN_mod_mul(s, s, t, n, ctx) != 1 ||
		    BN_bn2binpad(r, rb, 32) != 32 || BN_bn2binpad(s, sb, 32) != 32 ||
		    BN_bn2binpad(e, eb, 32) != 32) {
			check(false, "degenerate sums: arithmetic");
			goto out;
		}
		snprintf(what, sizeof(what), "u1*G == u2*Q (doubling) %d", i);
		check(compare(what, key, accel, eb, rb, sb) == 1, "valid signature with u1*G == u2*Q");
		/* e = -r*d: u1*G + u2*Q is infinity, whatever s */
		if (BN_mod_sub(e, n, e, n, ctx) != 1 || BN_bn2binpad(e, eb, 32) != 32) {
			check(false, "degenerate sums: -r*d");
			goto out;
		}
		snprintf(what, sizeof(what), "u1*G == -u2*Q (infinity) %d", i);
		check(compare(what, key, accel, eb, rb, sb) == 0, "R at infinity refused");
	}
out:
	EC_POINT_free(pr);
	BN_free(x);
	BN_free(t);
	BN_free(s);
	BN_free(e);
	BN_free(r);
	BN_free(k);
	BN_free(d);
	BN_CTX_free(ctx);
	ecverify_p256_free(accel);
	EVP_PKEY_free(key);
}

/* An EVP_PKEY for the P-256 public point q. */
static EVP_PKEY *
key_from_point(const EC_GROUP *group, const EC_POINT *q, BN_CTX *ctx)
{
	unsigned char pub[65];
	char group_name[] = "prime256v1";
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *key = NULL;

	if (EC_POINT_point2oct(group, q, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), ctx) !=
	    sizeof(pub))
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group_name, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
	params[2] = OSSL_PARAM_construct_end();
	if ((pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(pctx) != 1 ||
	    EVP_PKEY_fromdata(pctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		key = NULL;
	EVP_PKEY_CTX_free(pctx);
	return key;
}

/*
 * The corner of SEC1 4.1.4 steps 6-8 that random signatures never reach
 * (probability ~2^-128): x_R in [n, p), so that v = x_R - n. Built without
 * any private key: R is a point with x_R = n + i, the public key is
 * Q = R - G, the digest e and s are both r = x_R - n, so u1 = u2 = 1 and
 * u1*G + u2*Q = R: valid. With the digest e = 0 and Q = R, s = r gives
 * u1 = 0, u2 = 1: valid too. Each is compared with OpenSSL and must be 1
 * (a verifier that compares x_R with r only answers 0); r = x_R itself
 * (>= n) and a changed digest must be 0.
 */
static void
test_x_above_n(const EC_GROUP *group)
{
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *x = BN_new(), *r = BN_new();
	const BIGNUM *n = EC_GROUP_get0_order(group);
	EC_POINT *pr = EC_POINT_new(group), *q = EC_POINT_new(group), *g = EC_POINT_new(group);
	unsigned char rb[32], xb[32], zero[32] = {0}, other[32];
	char what[64];
	int found = 0;

	if (ctx == NULL || x == NULL || r == NULL || pr == NULL || q == NULL || g == NULL ||
	    EC_POINT_copy(g, EC_GROUP_get0_generator(group)) != 1 || EC_POINT_invert(group, g, ctx) != 1) {
		check(false, "x_R >= n: setup");
		goto out;
	}
	for (unsigned long i = 0; i < 200 && found < 20; i++) {
		EVP_PKEY *key = NULL;
		struct ecverify_p256 *accel = NULL;

		/* about half of the x have a point */
		if (BN_copy(x, n) == NULL || BN_add_word(x, i) != 1 ||
		    EC_POINT_set_compressed_coordinates(group, pr, x, (int)(i & 1), ctx) != 1)
			continue;
		found++;
		if (BN_sub(r, x, n) != 1 || BN_bn2binpad(r, rb, 32) != 32 ||
		    BN_bn2binpad(x, xb, 32) != 32 || EC_POINT_add(group, q, pr, g, ctx) != 1 ||
		    (key = key_from_point(group, q, ctx)) == NULL ||
		    (accel = ecverify_p256_new(key)) == NULL) {
			check(false, "x_R >= n: Q = R - G");
			goto next;
		}
		snprintf(what, sizeof(what), "x_R = n + %lu, u1 = u2 = 1", i);
		check(compare(what, key, accel, rb, rb, rb) == 1, "valid signature with x_R >= n");
		snprintf(what, sizeof(what), "x_R = n + %lu, r = x_R", i);
		check(compare(what, key, accel, rb, xb, rb) == 0, "r = x_R >= n refused");
		memcpy(other, rb, 32);
		other[0] ^= 0x01;
		snprintf(what, sizeof(what), "x_R = n + %lu, other digest", i);
		check(compare(what, key, accel, other, rb, rb) == 0, "x_R >= n, other digest refused");
		ecverify_p256_free(accel);
		EVP_PKEY_free(key);
		accel = NULL;
		if ((key = key_from_point(group, pr, ctx)) == NULL ||
		    (accel = ecverify_p256_new(key)) == NULL) {
			check(false, "x_R >= n: Q = R");
			goto next;
		}
		snprintf(what, sizeof(what), "x_R = n + %lu, u1 = 0, u2 = 1", i);
		check(compare(what, key, accel, zero, rb, rb) == 1, "valid signature with x_R >= n, e = 0");
next:
		ecverify_p256_free(accel);
		EVP_PKEY_free(key);
	}
	check(found == 20, "20 points with x_R >= n");
out:
	EC_POINT_free(g);
	EC_POINT_free(q);
	EC_POINT_free(pr);
	BN_free(r);
	BN_free(x);
	BN_CTX_free(ctx);
}

struct thread_job {
	const struct ecverify_p256 *accel;
	unsigned char digest[32], r[32], s[32], bad_s[32];
	int mismatches;
};

static void *
thread_main(void *arg)
{
	struct thread_job *job = arg;

	for (int i = 0; i < 200; i++) {
		if (ecverify_p256_verify(job->accel, job->digest, job->r, job->s) != 1)
			job->mismatches++;
		if (ecverify_p256_verify(job->accel, job->digest, job->r, job->bad_s) != 0)
			job->mismatches++;
	}
	return NULL;
}

int
main(void)
{
	EVP_PKEY *keys[KEYS] = { 0 }, *other = NULL;
	struct ecverify_p256 *accel[KEYS] = { 0 };
	unsigned char msg[256], digest[32], r[32], s[32], r2[32], s2[32], d2[32], v[32];
	EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	char what[96];
	int i, j, k;

	if (group == NULL || BN_bn2binpad(EC_GROUP_get0_order(group), order_n, 32) != 32) {
		printf("FAIL setup\n");
		return 1;
	}
	for (k = 0; k < KEYS; k++) {
		keys[k] = EVP_EC_gen("P-256");
		accel[k] = ecverify_p256_new(keys[k]);
		check(keys[k] != NULL && accel[k] != NULL, "accelerator for a P-256 key");
		if (accel[k] == NULL)
			goto done;
	}

	/* keys that are not P-256 get none */
	other = EVP_EC_gen("P-384");
	check(other != NULL && ecverify_p256_new(other) == NULL, "no accelerator for P-384");
	EVP_PKEY_free(other);
	other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	check(other != NULL && ecverify_p256_new(other) == NULL, "no accelerator for Ed25519");
	EVP_PKEY_free(other);
	other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	check(other != NULL && ecverify_p256_new(other) == NULL, "no accelerator for RSA");
	EVP_PKEY_free(other);
	check(ecverify_p256_new(NULL) == NULL, "no accelerator for NULL");
	check(ecverify_p256_verify(NULL, digest, r, s) == -1, "NULL accelerator: error");

	for (i = 0; i < ROUNDS; i++) {
		EVP_PKEY *key;
		const struct ecverify_p256 *a;
		size_t len;

		k = i % KEYS;
		key = keys[k];
		a = accel[k];
		if (i % 100 == 99) {
			/* fresh keys now and then: more than KEYS keys in all */
			ecverify_p256_free(accel[k]);
			EVP_PKEY_free(keys[k]);
			keys[k] = key = EVP_EC_gen("P-256");
			accel[k] = ecverify_p256_new(key);
			a = accel[k];
			if (a == NULL) {
				check(false, "accelerator for a fresh key");
				goto done;
			}
		}
		RAND_bytes((unsigned char *)&len, sizeof(len));
		len %= sizeof(msg);
		RAND_bytes(msg, (int)sizeof(msg));
		if (!sign_message(key, msg, len, digest, r, s)) {
			check(false, "sign and EVP_DigestVerify a message");
			goto done;
		}
		snprintf(what, sizeof(what), "round %d valid", i);
		check(compare(what, key, a, digest, r, s) == 1, "valid signature accepted");

		/* a flipped bit in r, s, digest */
		j = (int)(msg[0] % 256u);
		memcpy(r2, r, 32);
		r2[j / 8] ^= (unsigned char)(1u << (j % 8));
		snprintf(what, sizeof(what), "round %d r bit %d", i, j);
		compare(what, key, a, digest, r2, s);
		j = (int)(msg[1] % 256u);
		memcpy(s2, s, 32);
		s2[j / 8] ^= (unsigned char)(1u << (j % 8));
		snprintf(what, sizeof(what), "round %d s bit %d", i, j);
		compare(what, key, a, digest, r, s2);
		j = (int)(msg[2] % 256u);
		memcpy(d2, digest, 32);
		d2[j / 8] ^= (unsigned char)(1u << (j % 8));
		snprintf(what, sizeof(what), "round %d digest bit %d", i, j);
		compare(what, key, a, d2, r, s);
		/* swapped */
		snprintf(what, sizeof(what), "round %d swapped", i);
		compare(what, key, a, digest, s, r);
		/* high-s twin: valid */
		negate_mod_n(s, s2);
		snprintf(what, sizeof(what), "round %d n - s", i);
		check(compare(what, key, a, digest, r, s2) == 1, "n - s accepted by both");
		/* wrong key */
		snprintf(what, sizeof(what), "round %d wrong key", i);
		compare(what, keys[(k + 1) % KEYS], accel[(k + 1) % KEYS], digest, r, s);
		/* random r and s */
		RAND_bytes(r2, 32);
		RAND_bytes(s2, 32);
		snprintf(what, sizeof(what), "round %d random", i);
		compare(what, key, a, digest, r2, s2);
		/* special values, every tenth round */
		if (i % 10 == 0)
			for (j = 0; j < SPECIALS; j++) {
				special_value(j, v);
				snprintf(what, sizeof(what), "round %d r special %d", i, j);
				compare(what, key, a, digest, v, s);
				snprintf(what, sizeof(what), "round %d s special %d", i, j);
				compare(what, key, a, digest, r, v);
				for (int m = 0; m < SPECIALS; m++) {
					special_value(m, s2);
					snprintf(what, sizeof(what), "round %d specials %d %d", i, j, m);
					compare(what, key, a, digest, v, s2);
				}
			}
	}

	/* digests 0, 1, n (e = n: u1 = 0), n+1 and 2^256-1 (e > n) */
	for (j = 0; j < SPECIALS; j++) {
		special_value(j, d2);
		for (k = 0; k < KEYS; k++) {
			if (!sign_digest(keys[k], d2, r, s)) {
				check(false, "sign a special digest");
				continue;
			}
			snprintf(what, sizeof(what), "special digest %d key %d", j, k);
			check(compare(what, keys[k], accel[k], d2, r, s) == 1,
			    "signature of a special digest accepted");
			negate_mod_n(s, s2);
			check(compare(what, keys[k], accel[k], d2, r, s2) == 1,
			    "n - s of a special digest accepted");
			/* e and e + n are different digests with equal u1 */
			memcpy(v, d2, 32);
			v[0] ^= 0x80;
			compare(what, keys[k], accel[k], v, r, s);
		}
	}

	/* the doubling and infinity corners of step 5 */
	test_degenerate_sums(group);

	/* x_R in [n, p): v = x_R - n */
	test_x_above_n(group);

	/* several threads on one accelerator */
	{
		pthread_t threads[THREADS];
		struct thread_job jobs[THREADS];

		for (i = 0; i < THREADS; i++) {
			memset(&jobs[i], 0, sizeof(jobs[i]));
			jobs[i].accel = accel[0];
			RAND_bytes(jobs[i].digest, 32);
			if (!sign_digest(keys[0], jobs[i].digest, jobs[i].r, jobs[i].s))
				check(false, "sign for the threads");
			memcpy(jobs[i].bad_s, jobs[i].s, 32);
			jobs[i].bad_s[31] ^= 1;
		}
		for (i = 0; i < THREADS; i++)
			check(pthread_create(&threads[i], NULL, thread_main, &jobs[i]) == 0,
			    "pthread_create");
		for (i = 0; i < THREADS; i++) {
			pthread_join(threads[i], NULL);
			check(jobs[i].mismatches == 0, "threads on one accelerator agree");
		}
	}

	/* the fast inverse of s (ecverify.c) answered every time: its answer
	 * is checked before use, so a wrong one would only have fallen back
	 * to BN_mod_inverse() (and been invisible above) */
	check(ecverify_p256_inverse_fallbacks() == 0, "s^-1 never needed BN_mod_inverse()");
	printf("inverse fallbacks: %lu\n", ecverify_p256_inverse_fallbacks());

	/* both classes were exercised in earnest */
	check(agreed_valid >= 2 * ROUNDS, "valid cases exercised");
	check(agreed_invalid >= 5 * ROUNDS, "invalid cases exercised");
	printf("agreed: %ld valid, %ld invalid\n", agreed_valid, agreed_invalid);
done:
	for (k = 0; k < KEYS; k++) {
		ecverify_p256_free(accel[k]);
		EVP_PKEY_free(keys[k]);
	}
	EC_GROUP_free(group);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
