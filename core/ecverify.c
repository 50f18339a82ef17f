/*
 * ecverify.c: ECDSA P-256 verification with a precomputed table for the
 * public key (ecverify.h).
 *
 * How: a copy of the P-256 group whose "generator" is the public key Q,
 * with EC_GROUP_precompute_mult() run on it: on x86-64 OpenSSL's nistz256
 * code then multiplies by Q with a comb table as it does by G (37 x 64
 * affine points, ~150 KB, ~25 ms to build). A verification is two
 * fixed-base multiplications and one addition instead of a
 * double-scalar multiplication with a table for G only: 37 us against
 * 81 us for EC_POINT_mul(G, u1, Q, u2) and 96 us for EVP_DigestVerify()
 * (/tmp/s6/mb/mb.c, OpenSSL 3.0.x).
 *
 * EC_GROUP_set_generator() and EC_GROUP_precompute_mult() are deprecated in
 * OpenSSL 3.0 (low-level EC API) but present and supported through 3.x; this
 * file alone suppresses the deprecation warnings. Should a future OpenSSL
 * drop the table, ecverify_p256_new() answers NULL and callers keep
 * EVP_DigestVerify().
 *
 * The arithmetic is SEC1 v2 section 4.1.4, step by step in
 * ecverify_p256_verify(). A wrong "valid" here would let anybody act as an
 * ACME account, so every check OpenSSL's ossl_ecdsa_simple_verify_sig()
 * makes is made here too, in the same order of ideas.
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "ecverify.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>

struct ecverify_p256 {
	EC_GROUP *group;	/* P-256 with its built-in table for G */
	EC_GROUP *group_q;	/* P-256 with Q as "generator" and a table for it */
};

void
ecverify_p256_free(struct ecverify_p256 *k)
{
	if (k == NULL)
		return;
	EC_GROUP_free(k->group_q);
	EC_GROUP_free(k->group);
	free(k);
}

struct ecverify_p256 *
ecverify_p256_new(EVP_PKEY *key)
{
	struct ecverify_p256 *k = NULL;
	unsigned char pub[65];
	char group_name[32];
	size_t pub_len = 0;
	EC_POINT *q = NULL;
	BN_CTX *bn_ctx = NULL;
	int ok = 0;

	if (key == NULL || !EVP_PKEY_is_a(key, "EC") ||
	    EVP_PKEY_get_group_name(key, group_name, sizeof(group_name), NULL) != 1 ||
	    strcmp(group_name, "prime256v1") != 0 ||
	    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub),
	    &pub_len) != 1)
		goto out;
	if ((k = calloc(1, sizeof(*k))) == NULL || (bn_ctx = BN_CTX_new()) == NULL ||
	    (k->group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) == NULL ||
	    (k->group_q = EC_GROUP_dup(k->group)) == NULL ||
	    (q = EC_POINT_new(k->group)) == NULL ||
	    /* decodes and checks that Q is on the curve */
	    EC_POINT_oct2point(k->group, q, pub, pub_len, bn_ctx) != 1 ||
	    EC_POINT_is_at_infinity(k->group, q) || EC_POINT_is_on_curve(k->group, q, bn_ctx) != 1 ||
	    /* P-256 has cofactor 1: every point but infinity has order n */
	    EC_GROUP_set_generator(k->group_q, q, EC_GROUP_get0_order(k->group), BN_value_one()) !=
		1 ||
	    EC_GROUP_precompute_mult(k->group_q, bn_ctx) != 1 ||
	    EC_GROUP_have_precompute_mult(k->group_q) != 1)
		goto out;
	ok = 1;
out:
	EC_POINT_free(q);
	BN_CTX_free(bn_ctx);
	if (!ok) {
		ERR_clear_error();
		ecverify_p256_free(k);
		k = NULL;
	}
	return k;
}

/*
 * The inverse of s modulo the P-256 group order n, by the binary extended
 * Euclidean algorithm on four 64-bit limbs (s is public: no need for
 * constant time). BN_mod_inverse() took a third of a verification here
 * (~15-25 us: a BIGNUM call per bit). Runs of zero bits are shifted out
 * of u and v at once (__builtin_ctzll()), and the matching halvings of
 * x1, x2 mod n are done in one Montgomery-style step. Its answer is
 * trusted only after w * s == 1 (mod n) is checked with BN_mod_mul() in
 * ecverify_p256_verify(): w is then THE inverse, whatever this code did.
 * Limbs are little-endian (l[0] least significant). s must be in [1, n-1].
 */
typedef unsigned __int128 ecv_u128;

/* How many times BN_mod_inverse() had to answer instead (tests: never). */
static atomic_ulong ecv_inverse_fallbacks;

unsigned long
ecverify_p256_inverse_fallbacks(void)
{
	return atomic_load(&ecv_inverse_fallbacks);
}

static const uint64_t ecv_n[4] = {
	0xF3B9CAC2FC632551ULL, 0xBCE6FAADA7179E84ULL, 0xFFFFFFFFFFFFFFFFULL, 0xFFFFFFFF00000000ULL,
};

static bool
ecv_geq(const uint64_t a[4], const uint64_t b[4])
{
	for (int i = 3; i >= 0; i--)
		if (a[i] != b[i])
			return a[i] > b[i];
	return true;
}

/* a -= b; returns the borrow. Plain 64-bit words: with unsigned __int128
 * here GCC 12 kept the loop rolled and spilled to the stack. */
static uint64_t
ecv_sub(uint64_t a[4], const uint64_t b[4])
{
	uint64_t borrow = 0;

	for (int i = 0; i < 4; i++) {
		uint64_t d = a[i] - b[i];
		uint64_t out = (a[i] < b[i]) | (d < borrow);

		a[i] = d - borrow;
		borrow = out;
	}
	return borrow;
}

/* a += b; returns the carry */
static uint64_t
ecv_add(uint64_t a[4], const uint64_t b[4])
{
	uint64_t carry = 0;

	for (int i = 0; i < 4; i++) {
		uint64_t t = a[i] + b[i];
		uint64_t out = (t < a[i]) | (t + carry < t);

		a[i] = t + carry;
		carry = out;
	}
	return carry;
}

/* a >>= k for 1 <= k <= 63 */
static void
ecv_shr(uint64_t a[4], unsigned k)
{
	for (int i = 0; i < 3; i++)
		a[i] = (a[i] >> k) | (a[i + 1] << (64 - k));
	a[3] >>= k;
}

/* n^-1 mod 2^64 by Newton's iteration (each step doubles the correct low
 * bits: n0 * n0 == 1 mod 8 for odd n0 gives 3, then 6, 12, 24, 48, 96);
 * the compiler folds it to a constant. */
static uint64_t
ecv_n0_inverse(void)
{
	uint64_t inv = ecv_n[0];

	for (int i = 0; i < 5; i++)
		inv *= 2 - ecv_n[0] * inv;
	return inv;
}

/*
 * x = x / 2^k mod n for x < n and 1 <= k <= 63: k halvings at once, as a
 * Montgomery reduction does. m = -x * n^-1 mod 2^k makes x + m*n divisible
 * by 2^k, and since x < n and m < 2^k, (x + m*n) / 2^k < n: no final
 * subtraction. x + m*n needs five limbs.
 */
static void
ecv_shr_mod_n(uint64_t x[4], unsigned k)
{
	uint64_t m = (0 - x[0] * ecv_n0_inverse()) & ((UINT64_C(1) << k) - 1);
	uint64_t t[5], carry = 0;

	for (int i = 0; i < 4; i++) {
		ecv_u128 acc = (ecv_u128)m * ecv_n[i] + x[i] + carry;
		t[i] = (uint64_t)acc;
		carry = (uint64_t)(acc >> 64);
	}
	t[4] = carry;
	for (int i = 0; i < 4; i++)
		x[i] = (t[i] >> k) | (t[i + 1] << (64 - k));
}

static void
ecv_from_be(uint64_t a[4], const unsigned char b[32])
{
	for (int i = 0; i < 4; i++) {
		uint64_t v = 0;

		for (int j = 0; j < 8; j++)
			v = (v << 8) | b[(3 - i) * 8 + j];
		a[i] = v;
	}
}

static void
ecv_to_be(unsigned char b[32], const uint64_t a[4])
{
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 8; j++)
			b[(3 - i) * 8 + j] = (unsigned char)(a[i] >> (56 - 8 * j));
}

/* a <<= k for 1 <= k <= 63 (the caller knows no bit falls off the top) */
static void
ecv_shl(uint64_t a[4], unsigned k)
{
	for (int i = 3; i > 0; i--)
		a[i] = (a[i] << k) | (a[i - 1] >> (64 - k));
	a[0] <<= k;
}

/* a >>= t, b <<= t, *k += t, for a even and nonzero: a becomes odd. */
static void
ecv_move_twos(uint64_t a[4], uint64_t b[4], unsigned *k)
{
	while ((a[0] & 1) == 0) {
		unsigned t = a[0] != 0 ? (unsigned)__builtin_ctzll(a[0]) : 63;

		ecv_shr(a, t);
		ecv_shl(b, t);
		*k += t;
	}
}

/*
 * w = s^-1 mod n for s in [1, n-1], by Kaliski's almost Montgomery inverse
 * (IEEE Trans. Computers 44(8), 1995) with runs of zero bits taken at once.
 * Invariants, with k the number of halvings so far:
 *   n == u*x_s + v*x_r,  s*x_r == -u * 2^k,  s*x_s == v * 2^k  (mod n);
 * u, v >= 1 and x_s >= 1 throughout, so x_r, x_s <= n < 2^256: four limbs
 * suffice, no reduction needed along the way. Each step keeps u, v odd and
 * shrinks one of them; when u == v the gcd, 1, is reached, and then
 * s * x_s == 2^k (mod n): w = x_s / 2^k mod n, by the Montgomery-style
 * division above, at most 63 bits at a time. False if the loop did not end
 * as it must for such s and a prime n (then the caller's check decides
 * anyway).
 */
static bool
ecv_inverse_mod_n(unsigned char w_out[32], const unsigned char s_in[32])
{
	uint64_t u[4], v[4], x_r[4] = {0, 0, 0, 0}, x_s[4] = {1, 0, 0, 0};
	unsigned k = 0;

	memcpy(u, ecv_n, sizeof(u));
	ecv_from_be(v, s_in);
	if ((v[0] | v[1] | v[2] | v[3]) == 0 || ecv_geq(v, ecv_n))
		return false;
	ecv_move_twos(v, x_r, &k);
	while (memcmp(u, v, sizeof(u)) != 0) {
		/* k grows by at least 1 a step, and by ~2 * 256 in all */
		if (k > 2048)
			return false;
		if (ecv_geq(u, v)) {
			(void)ecv_sub(u, v);
			(void)ecv_add(x_r, x_s);
			ecv_move_twos(u, x_s, &k);
		} else {
			(void)ecv_sub(v, u);
			(void)ecv_add(x_s, x_r);
			ecv_move_twos(v, x_r, &k);
		}
	}
	if (!(u[0] == 1 && (u[1] | u[2] | u[3]) == 0) || ecv_geq(x_s, ecv_n))
		return false;
	while (k > 0) {
		unsigned t = k > 63 ? 63 : k;

		ecv_shr_mod_n(x_s, t);
		k -= t;
	}
	ecv_to_be(w_out, x_s);
	return true;
}

/*
 * Per-thread scratch for ecverify_p256_verify(): the BN_CTX and the three
 * points of step 5, made at a thread's first verification and kept, so a
 * verification no longer makes ~25 malloc/free pairs (BN_CTX_new/free with
 * its BIGNUMs, EC_POINT_new/free: ~8k of ~300k instructions). A
 * _Thread_local pointer finds them; a pthread key's destructor frees them
 * when the thread exits (a thread that never exits, like main, keeps them
 * reachable to the end). The points are made from the groups of the key of
 * that first call and serve every key after: every P-256 group made here
 * has the same EC_METHOD and curve, and OpenSSL checks that (a point that
 * did not fit would be an error, -1, never a wrong answer). Each use sets a
 * point wholly (EC_POINT_mul, EC_POINT_copy) before reading it.
 */
struct ecv_scratch {
	BN_CTX *bn_ctx;
	EC_POINT *a, *b, *b_copy;
};

static pthread_key_t ecv_scratch_key;
static pthread_once_t ecv_scratch_once = PTHREAD_ONCE_INIT;
static bool ecv_scratch_key_ok;
static _Thread_local struct ecv_scratch *ecv_scratch_mine;

static void
ecv_scratch_free(void *arg)
{
	struct ecv_scratch *sc = arg;

	if (sc == NULL)
		return;
	if (ecv_scratch_mine == sc)
		ecv_scratch_mine = NULL;
	EC_POINT_free(sc->b_copy);
	EC_POINT_free(sc->b);
	EC_POINT_free(sc->a);
	BN_CTX_free(sc->bn_ctx);
	free(sc);
}

static void
ecv_scratch_key_create(void)
{
	ecv_scratch_key_ok = pthread_key_create(&ecv_scratch_key, ecv_scratch_free) == 0;
}

/* The calling thread's scratch, made on first use; NULL on failure. */
static struct ecv_scratch *
ecv_scratch_get(const struct ecverify_p256 *k)
{
	struct ecv_scratch *sc;

	if (ecv_scratch_mine != NULL)
		return ecv_scratch_mine;
	if (pthread_once(&ecv_scratch_once, ecv_scratch_key_create) != 0 || !ecv_scratch_key_ok)
		return NULL;
	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		return NULL;
	if ((sc->bn_ctx = BN_CTX_new()) == NULL || (sc->a = EC_POINT_new(k->group)) == NULL ||
	    (sc->b = EC_POINT_new(k->group_q)) == NULL ||
	    (sc->b_copy = EC_POINT_new(k->group)) == NULL ||
	    pthread_setspecific(ecv_scratch_key, sc) != 0) {
		ecv_scratch_free(sc);
		return NULL;
	}
	ecv_scratch_mine = sc;
	return sc;
}

int
ecverify_p256_verify(const struct ecverify_p256 *k, const unsigned char digest[32],
    const unsigned char r_bytes[32], const unsigned char s_bytes[32])
{
	struct ecv_scratch *sc;
	BN_CTX *bn_ctx;
	BIGNUM *r, *s, *e, *w, *u1, *u2, *x, *z, *t;
	EC_POINT *a, *b, *b_copy;
	const BIGNUM *n, *p;
	unsigned char w_bytes[32];
	int rc = -1;

	if (k == NULL || (sc = ecv_scratch_get(k)) == NULL)
		goto out;
	bn_ctx = sc->bn_ctx;
	a = sc->a;
	b = sc->b;
	b_copy = sc->b_copy;
	BN_CTX_start(bn_ctx);
	r = BN_CTX_get(bn_ctx);
	s = BN_CTX_get(bn_ctx);
	e = BN_CTX_get(bn_ctx);
	w = BN_CTX_get(bn_ctx);
	u1 = BN_CTX_get(bn_ctx);
	u2 = BN_CTX_get(bn_ctx);
	x = BN_CTX_get(bn_ctx);
	z = BN_CTX_get(bn_ctx);
	t = BN_CTX_get(bn_ctx);
	if (t == NULL)
		goto end;
	n = EC_GROUP_get0_order(k->group);
	if (n == NULL || BN_bin2bn(r_bytes, 32, r) == NULL || BN_bin2bn(s_bytes, 32, s) == NULL)
		goto end;
	/* 1. r and s integers in [1, n-1], else invalid */
	if (BN_is_zero(r) || BN_is_zero(s) || BN_cmp(r, n) >= 0 || BN_cmp(s, n) >= 0) {
		rc = 0;
		goto end;
	}
	/* 2-3. e: the digest as an integer; P-256 and SHA-256 are both 256
	 * bits, so the leftmost 256 bits are all of it (no truncation). e may
	 * exceed n: the products below are reduced mod n. */
	if (BN_bin2bn(digest, 32, e) == NULL)
		goto end;
	/* 4. w = s^-1 mod n (ecv_inverse_mod_n(), used only when w * s == 1
	 * mod n, else BN_mod_inverse()); u1 = e*w mod n; u2 = r*w mod n */
	if (!ecv_inverse_mod_n(w_bytes, s_bytes) || BN_bin2bn(w_bytes, 32, w) == NULL ||
	    BN_mod_mul(u1, w, s, n, bn_ctx) != 1 || !BN_is_one(u1)) {
		atomic_fetch_add(&ecv_inverse_fallbacks, 1);
		if (BN_mod_inverse(w, s, n, bn_ctx) == NULL)
			goto end;
	}
	if (BN_mod_mul(u1, e, w, n, bn_ctx) != 1 || BN_mod_mul(u2, r, w, n, bn_ctx) != 1)
		goto end;
	/* 5. R = u1*G + u2*Q, each with its table; R at infinity: invalid */
	if (EC_POINT_mul(k->group, a, u1, NULL, NULL, bn_ctx) != 1 ||
	    EC_POINT_mul(k->group_q, b, u2, NULL, NULL, bn_ctx) != 1 ||
	    EC_POINT_copy(b_copy, b) != 1 || EC_POINT_add(k->group, a, a, b_copy, bn_ctx) != 1)
		goto end;
	if (EC_POINT_is_at_infinity(k->group, a)) {
		rc = 0;
		goto end;
	}
	/* 6-8. v = x_R mod n; valid iff v == r. R is in Jacobian coordinates
	 * (X, Y, Z), x_R = X / Z^2 mod p, and x_R < p < 2n: v == r iff x_R ==
	 * r or x_R == r + n (possible only when r + n < p), that is iff
	 * X == r * Z^2 or X == (r + n) * Z^2 (mod p). Z != 0 mod p as R is not
	 * at infinity (checked again: Z^2 == 0 would make X == 0 "match",
	 * where the affine route fails; answer -1). This spares the inversion of Z that
	 * EC_POINT_get_affine_coordinates() makes (~40k instructions, an
	 * eighth of a verification). */
	if ((p = EC_GROUP_get0_field(k->group)) == NULL ||
	    EC_POINT_get_Jprojective_coordinates_GFp(k->group, a, x, NULL, z, bn_ctx) != 1 ||
	    BN_nnmod(x, x, p, bn_ctx) != 1 || BN_mod_sqr(z, z, p, bn_ctx) != 1 || BN_is_zero(z) ||
	    BN_mod_mul(t, r, z, p, bn_ctx) != 1)
		goto end;
	if (BN_cmp(t, x) == 0) {
		rc = 1;
		goto end;
	}
	if (BN_add(t, r, n) != 1)
		goto end;
	if (BN_cmp(t, p) >= 0) {
		rc = 0;
		goto end;
	}
	if (BN_mod_mul(t, t, z, p, bn_ctx) != 1)
		goto end;
	rc = BN_cmp(t, x) == 0 ? 1 : 0;
end:
	BN_CTX_end(bn_ctx);
out:
	if (rc == -1)
		ERR_clear_error();
	return rc;
}
