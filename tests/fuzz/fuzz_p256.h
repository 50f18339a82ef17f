/*
 * fuzz_p256.h: P-256 helpers shared by the fuzz targets that need valid
 * ECDSA signatures the fuzzer can reach (fuzz_ecverify, fuzz_acme_jws): a
 * public key from a private scalar, and a signature with a nonce the
 * fuzzer chose (so an input reproduces). Test code only: a chosen nonce
 * is exactly what a real signer must never use. Any OpenSSL failure
 * aborts (a harness bug, not a finding).
 */
#ifndef ENROLLD_FUZZ_P256_H
#define ENROLLD_FUZZ_P256_H

#include <stdbool.h>
#include <stdlib.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

/* The P-256 public key d*G of group g, as an EVP_PKEY. */
static EVP_PKEY *
fuzz_p256_public_key(const EC_GROUP *g, const BIGNUM *d)
{
	unsigned char pub[65];
	EC_POINT *p = EC_POINT_new(g);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *key = NULL;

	if (p == NULL || bld == NULL || ctx == NULL ||
	    EC_POINT_mul(g, p, d, NULL, NULL, NULL) != 1 ||
	    EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), NULL) !=
		sizeof(pub) ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		abort();
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	EC_POINT_free(p);
	return key;
}

/* (r, s) := the ECDSA signature of the 32-byte digest e by d (group g of
 * order n) with nonce k (big endian, reduced mod n); false (r, s untouched)
 * when k is 0 mod n or r or s would be 0. */
static bool
fuzz_p256_sign(const EC_GROUP *g, const BIGNUM *n, const BIGNUM *d, const unsigned char e_bytes[32],
    const unsigned char k_bytes[32], unsigned char r_bytes[32], unsigned char s_bytes[32])
{
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *k = BN_bin2bn(k_bytes, 32, NULL), *e = BN_bin2bn(e_bytes, 32, NULL);
	BIGNUM *r = BN_new(), *s = BN_new(), *t = BN_new();
	EC_POINT *p = EC_POINT_new(g);
	bool ok = false;

	if (ctx == NULL || k == NULL || e == NULL || r == NULL || s == NULL || t == NULL ||
	    p == NULL || BN_nnmod(k, k, n, ctx) != 1)
		abort();
	if (BN_is_zero(k))
		goto out;
	if (EC_POINT_mul(g, p, k, NULL, NULL, ctx) != 1 ||
	    EC_POINT_get_affine_coordinates(g, p, r, NULL, ctx) != 1 || BN_nnmod(r, r, n, ctx) != 1)
		abort();
	/* s = k^-1 (e + r d) mod n (e < 2^256 < 2n: reduced first) */
	if (BN_nnmod(e, e, n, ctx) != 1 || BN_mod_mul(t, r, d, n, ctx) != 1 ||
	    BN_mod_add(t, t, e, n, ctx) != 1 || BN_mod_inverse(k, k, n, ctx) == NULL ||
	    BN_mod_mul(s, k, t, n, ctx) != 1)
		abort();
	if (BN_is_zero(r) || BN_is_zero(s))
		goto out;
	if (BN_bn2binpad(r, r_bytes, 32) != 32 || BN_bn2binpad(s, s_bytes, 32) != 32)
		abort();
	ok = true;
out:
	BN_free(k);
	BN_free(e);
	BN_free(r);
	BN_free(s);
	BN_free(t);
	EC_POINT_free(p);
	BN_CTX_free(ctx);
	return ok;
}

#endif
