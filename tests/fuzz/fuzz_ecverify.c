/*
 * fuzz_ecverify.c: libFuzzer target for core/ecverify.c: on every
 * fuzzer-made (key index, digest, r, s) its answer must be OpenSSL's.
 *
 * Not built by CMake (the default build uses gcc). Build and run by hand:
 *
 *   clang -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -I core tests/fuzz/fuzz_ecverify.c core/ecverify.c -lcrypto -o fuzz_ecverify
 *   ./fuzz_ecverify -max_total_time=60 -max_len=97
 *
 * Input: one control byte, then digest[32], r[32], s[32] (missing bytes are
 * zero). Control bits 0-2 pick one of five fixed keys (private scalars 1,
 * 2, 3, n-1 and a constant: the same keys on every run, so a crash
 * reproduces). Bit 7 set: r is taken as the nonce k and (r, s) replaced by
 * the signature with that k, so valid signatures are reachable; bit 6 then
 * turns s into n - s, bit 5 flips one bit of s[31] afterwards. It aborts
 * when ecverify_p256_verify() is not exactly EVP_PKEY_verify()'s answer
 * (1 valid, 0 otherwise), when it errs (-1), when a signature made
 * here (with k in [1, n-1]) is refused by OpenSSL, or when ecverify.c's
 * own s^-1 mod n ever failed its check (its BN_mod_inverse() fallback
 * would hide a wrong inverse from the comparison).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include "ecverify.h"
#include "fuzz_p256.h"

#define FUZZ_KEYS 5

static EC_GROUP *group;
static const BIGNUM *order;
static BIGNUM *privs[FUZZ_KEYS];
static EVP_PKEY *keys[FUZZ_KEYS];
static struct ecverify_p256 *accels[FUZZ_KEYS];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const unsigned char constant[32] = "enrolld fuzz_ecverify key 5 ...";

	(void)argc;
	(void)argv;
	if ((group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) == NULL)
		abort();
	order = EC_GROUP_get0_order(group);
	for (int i = 0; i < FUZZ_KEYS; i++) {
		privs[i] = BN_new();
		if (privs[i] == NULL)
			abort();
	}
	BN_set_word(privs[0], 1);
	BN_set_word(privs[1], 2);
	BN_set_word(privs[2], 3);
	BN_copy(privs[3], order);
	BN_sub_word(privs[3], 1);
	BN_bin2bn(constant, 32, privs[4]);
	{
		BN_CTX *ctx = BN_CTX_new();

		if (ctx == NULL || BN_nnmod(privs[4], privs[4], order, ctx) != 1)
			abort();
		BN_CTX_free(ctx);
	}
	for (int i = 0; i < FUZZ_KEYS; i++)
		if ((keys[i] = fuzz_p256_public_key(group, privs[i])) == NULL ||
		    (accels[i] = ecverify_p256_new(keys[i])) == NULL)
			abort();
	return 0;
}

static int
fuzz_ref(EVP_PKEY *key, const unsigned char digest[32], const unsigned char r[32],
    const unsigned char s[32])
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *br = BN_bin2bn(r, 32, NULL), *bs = BN_bin2bn(s, 32, NULL);
	unsigned char *der = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	int der_len, rc;

	if (sig == NULL || br == NULL || bs == NULL || ctx == NULL ||
	    ECDSA_SIG_set0(sig, br, bs) != 1 || (der_len = i2d_ECDSA_SIG(sig, &der)) <= 0 ||
	    EVP_PKEY_verify_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1)
		abort();
	rc = EVP_PKEY_verify(ctx, der, (size_t)der_len, digest, 32) == 1 ? 1 : 0;
	OPENSSL_free(der);
	EVP_PKEY_CTX_free(ctx);
	ECDSA_SIG_free(sig);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char in[97], digest[32], r[32], s[32];
	unsigned control, which;
	bool made = false;
	int want, got;

	memset(in, 0, sizeof(in));
	memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
	control = in[0];
	which = (control & 7u) % FUZZ_KEYS;
	memcpy(digest, in + 1, 32);
	memcpy(r, in + 33, 32);
	memcpy(s, in + 65, 32);
	if (control & 0x80) {
		/* r's bytes are the nonce; the signature replaces them */
		made = fuzz_p256_sign(group, order, privs[which], digest, r, r, s);
		if (made && (control & 0x40)) {
			BIGNUM *bs = BN_bin2bn(s, 32, NULL);

			if (bs == NULL || BN_sub(bs, order, bs) != 1 || BN_bn2binpad(bs, s, 32) != 32)
				abort();
			BN_free(bs);
		}
		if (made && (control & 0x20)) {
			s[31] ^= 1;
			made = false;
		}
	}
	want = fuzz_ref(keys[which], digest, r, s);
	got = ecverify_p256_verify(accels[which], digest, r, s);
	if (got != want)
		abort();
	if (made && want != 1)
		abort();
	if (ecverify_p256_inverse_fallbacks() != 0)
		abort();
	return 0;
}
