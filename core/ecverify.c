/*
 * ecverify.c: ECDSA P-256 verification with a precomputed table for the
 * public key (ecverify.h).
 *
 * How: a copy of the P-256 group whose "generator" is the public key Q,
 * with EC_GROUP_precompute_mult() run on it: on x86-64 OpenSSL's nistz256
 * code then multiplies by Q with a comb table as it does by G (37 x 64
 * affine points, ~150 KB, ~25 ms to build). A verification is two
 * fixed-base multiplications and one addition instead of a
 * double-scalar multiplication with a table for G only: ~27 us against
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
 * The inverse of s modulo the P-256 group order n, on four 64-bit limbs
 * (s is public: no need for constant time); ecv_inverse_mod_n() below.
 * BN_mod_inverse() took a third of a verification here (~15-25 us: a
 * BIGNUM call per bit). Its answer is trusted only after w * s == 1
 * (mod n) is checked with BN_mod_mul() in ecverify_p256_verify(): w is
 * then THE inverse, whatever this code did. Limbs are little-endian (l[0]
 * least significant). s must be in [1, n-1]. The limb code uses GCC's and
 * Clang's __int128 and __builtin_clzll().
 */

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

/* a -= b; returns the borrow */
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

/* bit length of a (0 for 0) */
static unsigned
ecv_bits(const uint64_t a[4])
{
	for (int i = 3; i >= 0; i--)
		if (a[i] != 0)
			return (unsigned)(64 * i + 64 - __builtin_clzll(a[i]));
	return 0;
}

/* the 64 bits of a from bit `from` up (zeros above bit 255) */
static uint64_t
ecv_window(const uint64_t a[4], unsigned from)
{
	unsigned limb = from / 64, shift = from % 64;
	uint64_t w = a[limb] >> shift;

	if (shift != 0 && limb < 3)
		w |= a[limb + 1] << (64 - shift);
	return w;
}

/*
 * a = (a*f + b*g) / 2^31, exactly (the caller's 31 steps made the low 31
 * bits of the sum zero); if that is negative, a and (*f, *g) are negated.
 * |f|, |g| <= 2^31, a, b < 2^256: every partial sum fits a signed 128-bit
 * accumulator (GCC and Clang shift a negative __int128 arithmetically).
 */
typedef __int128 ecv_i128;

static void
ecv_update_ab(uint64_t out[4], const uint64_t a[4], const uint64_t b[4], int64_t *f, int64_t *g)
{
	uint64_t t[5];
	ecv_i128 acc = 0;

	for (int i = 0; i < 4; i++) {
		acc += (ecv_i128)a[i] * *f + (ecv_i128)b[i] * *g;
		t[i] = (uint64_t)acc;
		acc >>= 64;
	}
	t[4] = (uint64_t)acc;
	if ((int64_t)t[4] < 0) {
		uint64_t carry = 1;

		for (int i = 0; i < 5; i++) {
			t[i] = ~t[i] + carry;
			carry = carry && t[i] == 0;
		}
		*f = -*f;
		*g = -*g;
	}
	for (int i = 0; i < 4; i++)
		out[i] = (t[i] >> 31) | (t[i + 1] << 33);
}

/*
 * out = (u*f + v*g) / 2^31 mod n, for u, v in [0, n-1] and |f| + |g| <=
 * 2^31: k in [0, 2^31) with u*f + v*g + k*n == 0 mod 2^31 (Montgomery),
 * the division is then exact and lands in (-n, 2n): one correction.
 */
static void
ecv_update_uv(uint64_t out[4], const uint64_t u[4], const uint64_t v[4], int64_t f, int64_t g)
{
	uint64_t low = u[0] * (uint64_t)f + v[0] * (uint64_t)g;
	uint64_t k = (0 - low * ecv_n0_inverse()) & 0x7fffffff;
	uint64_t t[5];
	ecv_i128 acc = 0;

	for (int i = 0; i < 4; i++) {
		acc += (ecv_i128)u[i] * f + (ecv_i128)v[i] * g + (ecv_i128)ecv_n[i] * (ecv_i128)k;
		t[i] = (uint64_t)acc;
		acc >>= 64;
	}
	t[4] = (uint64_t)acc;
	for (int i = 0; i < 4; i++)
		out[i] = (t[i] >> 31) | (t[i + 1] << 33);
	if ((int64_t)t[4] < 0)
		(void)ecv_add(out, ecv_n);	/* in (-n, 0): the borrow out cancels the sign */
	else if ((t[4] >> 31) != 0 || ecv_geq(out, ecv_n))
		(void)ecv_sub(out, ecv_n);
}

/*
 * w = s^-1 mod n for s in [1, n-1]: Pornin's optimized binary GCD (IACR
 * ePrint 2020/972, algorithm 2; not constant-time here, s is public).
 * Invariants: a == u*s, b == v*s (mod n); a, b >= 0; start a = s, u = 1,
 * b = n, v = 0. Each outer step runs 31 binary-GCD steps on 64-bit
 * approximations of a and b (the low 31 bits exact, the top 33 bits of
 * the longer one's window), collecting them as a 2x2 matrix, then applies
 * the matrix to a, b (exactly) and to u, v (mod n, with the division by
 * 2^31 done Montgomery-style). At most 17 outer steps take len(a) +
 * len(b) from 512 to 1: a == 0, b == gcd == 1, v == s^-1. False if that
 * did not happen (the caller's check decides anyway).
 */
static bool
ecv_inverse_mod_n(unsigned char w_out[32], const unsigned char s_in[32])
{
	uint64_t a[4], b[4], u[4] = {1, 0, 0, 0}, v[4] = {0, 0, 0, 0}, na[4], nb[4];

	ecv_from_be(a, s_in);
	memcpy(b, ecv_n, sizeof(b));
	if ((a[0] | a[1] | a[2] | a[3]) == 0 || ecv_geq(a, ecv_n))
		return false;
	for (int outer = 0; outer < 17 && (a[0] | a[1] | a[2] | a[3]) != 0; outer++) {
		unsigned len = ecv_bits(a) > ecv_bits(b) ? ecv_bits(a) : ecv_bits(b);
		uint64_t a_apx, b_apx;
		int64_t f0 = 1, g0 = 0, f1 = 0, g1 = 1;

		if (len < 64)
			len = 64;
		a_apx = (a[0] & 0x7fffffff) | (ecv_window(a, len - 33) << 31);
		b_apx = (b[0] & 0x7fffffff) | (ecv_window(b, len - 33) << 31);
		for (int i = 0; i < 31; i++) {
			if (a_apx & 1) {
				if (a_apx < b_apx) {
					uint64_t t = a_apx;
					int64_t tf = f0, tg = g0;

					a_apx = b_apx;
					b_apx = t;
					f0 = f1;
					g0 = g1;
					f1 = tf;
					g1 = tg;
				}
				a_apx -= b_apx;
				f0 -= f1;
				g0 -= g1;
			}
			a_apx >>= 1;
			f1 *= 2;
			g1 *= 2;
		}
		ecv_update_ab(na, a, b, &f0, &g0);
		ecv_update_ab(nb, a, b, &f1, &g1);
		memcpy(a, na, sizeof(a));
		memcpy(b, nb, sizeof(b));
		ecv_update_uv(na, u, v, f0, g0);
		ecv_update_uv(nb, u, v, f1, g1);
		memcpy(u, na, sizeof(u));
		memcpy(v, nb, sizeof(v));
	}
	if ((a[0] | a[1] | a[2] | a[3]) != 0 || !(b[0] == 1 && (b[1] | b[2] | b[3]) == 0))
		return false;
	ecv_to_be(w_out, v);
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
