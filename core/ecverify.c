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

int
ecverify_p256_verify(const struct ecverify_p256 *k, const unsigned char digest[32],
    const unsigned char r_bytes[32], const unsigned char s_bytes[32])
{
	BN_CTX *bn_ctx = NULL;
	BIGNUM *r, *s, *e, *w, *u1, *u2, *x;
	EC_POINT *a = NULL, *b = NULL, *b_copy = NULL;
	const BIGNUM *n;
	int rc = -1;

	if (k == NULL || (bn_ctx = BN_CTX_new()) == NULL)
		goto out;
	BN_CTX_start(bn_ctx);
	r = BN_CTX_get(bn_ctx);
	s = BN_CTX_get(bn_ctx);
	e = BN_CTX_get(bn_ctx);
	w = BN_CTX_get(bn_ctx);
	u1 = BN_CTX_get(bn_ctx);
	u2 = BN_CTX_get(bn_ctx);
	x = BN_CTX_get(bn_ctx);
	if (x == NULL)
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
	/* 4. w = s^-1 mod n; u1 = e*w mod n; u2 = r*w mod n */
	if (BN_mod_inverse(w, s, n, bn_ctx) == NULL || BN_mod_mul(u1, e, w, n, bn_ctx) != 1 ||
	    BN_mod_mul(u2, r, w, n, bn_ctx) != 1)
		goto end;
	/* 5. R = u1*G + u2*Q, each with its table; R at infinity: invalid */
	if ((a = EC_POINT_new(k->group)) == NULL || (b = EC_POINT_new(k->group_q)) == NULL ||
	    (b_copy = EC_POINT_new(k->group)) == NULL ||
	    EC_POINT_mul(k->group, a, u1, NULL, NULL, bn_ctx) != 1 ||
	    EC_POINT_mul(k->group_q, b, u2, NULL, NULL, bn_ctx) != 1 ||
	    EC_POINT_copy(b_copy, b) != 1 || EC_POINT_add(k->group, a, a, b_copy, bn_ctx) != 1)
		goto end;
	if (EC_POINT_is_at_infinity(k->group, a)) {
		rc = 0;
		goto end;
	}
	/* 6-8. v = x_R mod n; valid iff v == r */
	if (EC_POINT_get_affine_coordinates(k->group, a, x, NULL, bn_ctx) != 1 ||
	    BN_nnmod(x, x, n, bn_ctx) != 1)
		goto end;
	rc = BN_cmp(x, r) == 0 ? 1 : 0;
end:
	BN_CTX_end(bn_ctx);
out:
	if (rc == -1)
		ERR_clear_error();
	EC_POINT_free(b_copy);
	EC_POINT_free(b);
	EC_POINT_free(a);
	BN_CTX_free(bn_ctx);
	return rc;
}
