/*
 * public_random.h: random bytes for values that are published anyway --
 * request ids, ACME nonces, order and authorization ids.
 *
 * The bytes come from OpenSSL's CSPRNG, drawn a few hundred at a time into a
 * per-thread pool rather than one RAND_bytes() call per value: each call
 * costs about as much as drawing 512 bytes (DRBG set-up, locks, the fork
 * check), and the request path makes several per request. Keys, serial
 * numbers and anything secret use RAND_bytes()/RAND_priv_bytes() directly.
 */
#ifndef ENROLLD_PUBLIC_RANDOM_H
#define ENROLLD_PUBLIC_RANDOM_H

#include <stddef.h>

/* The largest `len` public_random_bytes() serves. */
#define PUBLIC_RANDOM_MAX 64

/*
 * Fills buf with len (<= PUBLIC_RANDOM_MAX) bytes never handed out before.
 * Returns 0, or -1 when len is too large or the CSPRNG fails (OpenSSL's
 * error queue says why).
 */
int public_random_bytes(void *buf, size_t len) __attribute__((warn_unused_result));

#endif
