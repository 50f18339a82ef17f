/*
 * ecverify.h: faster ECDSA P-256 / SHA-256 verification against a key that
 * recurs (the issuing CA's key, a busy ACME account's key).
 *
 * OpenSSL's verification computes R = u1*G + u2*Q with a table for G only;
 * ecverify_p256_new() builds a second table, for Q, once, so that u2*Q is a
 * fixed-base multiplication too. Measured (OpenSSL 3.0, x86-64): ~27 us
 * (257k instructions) per verification against 96 us for
 * EVP_DigestVerify(); building the table costs ~25 ms of CPU and holds
 * ~150 KB, so it pays after ~400 verifications with one key.
 *
 * ecverify_p256_verify() follows SEC1 v2 4.1.4 exactly (see ecverify.c) and
 * answers as EVP_DigestVerify() over the same digest would; the unit test
 * test_ecverify and the fuzz target fuzz_ecverify compare the two. Callers
 * still fall back to EVP_DigestVerify() on -1 (never treat it as valid).
 *
 * Thread safety: a built key is read-only; any number of threads may verify
 * with one at once.
 */
#ifndef ENROLLD_ECVERIFY_H
#define ENROLLD_ECVERIFY_H

#include <openssl/evp.h>

struct ecverify_p256;

/* Builds the accelerator for key (~25 ms of CPU, ~150 KB): NULL when key is
 * not an EC P-256 public key, or on any error (OpenSSL's error queue is
 * cleared). The caller frees it with ecverify_p256_free(). */
struct ecverify_p256 *ecverify_p256_new(EVP_PKEY *key) __attribute__((warn_unused_result));

/* NULL-safe. */
void ecverify_p256_free(struct ecverify_p256 *k);

/* Whether (r, s), big-endian unsigned 32-byte integers, is an ECDSA
 * signature by k's key of the SHA-256 digest `digest`: 1 valid, 0 invalid,
 * -1 error (out of memory, an OpenSSL failure): then verify another way. */
int ecverify_p256_verify(const struct ecverify_p256 *k, const unsigned char digest[32],
    const unsigned char r[32], const unsigned char s[32]) __attribute__((warn_unused_result));

/* How many verifications had to compute s^-1 with BN_mod_inverse() because
 * the faster inverse's answer failed its check (for tests: never expected). */
unsigned long ecverify_p256_inverse_fallbacks(void);
#endif
