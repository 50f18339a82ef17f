/*
 * public_random.c: per-thread pools of CSPRNG output for published values
 * (public_random.h).
 *
 * Each thread has its own pool, so there is no lock. Bytes are wiped as they
 * are handed out: the pool only ever holds values not yet used. A forked
 * child must not repeat its parent's values, so a pthread_atfork() handler
 * empties the pool of the (only) thread that survives the fork.
 */
#include "public_random.h"

#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define PUBLIC_RANDOM_POOL 512

struct public_random_pool {
	unsigned char bytes[PUBLIC_RANDOM_POOL];
	size_t left;		/* the unused bytes are the last `left` */
};

static _Thread_local struct public_random_pool public_random_pool;
static pthread_once_t public_random_once = PTHREAD_ONCE_INIT;

static void
public_random_forked(void)
{
	OPENSSL_cleanse(&public_random_pool, sizeof(public_random_pool));
}

static void
public_random_init(void)
{
	/* Failure (ENOMEM) would only let a forked child repeat values its
	 * parent has not handed out yet; the signer, the one fork, uses none. */
	(void)pthread_atfork(NULL, NULL, public_random_forked);
}

int
public_random_bytes(void *buf, size_t len)
{
	struct public_random_pool *pool = &public_random_pool;
	unsigned char *from;

	if (len > PUBLIC_RANDOM_MAX)
		return -1;
	pthread_once(&public_random_once, public_random_init);
	if (pool->left < len) {
		if (RAND_bytes(pool->bytes, sizeof(pool->bytes)) != 1) {
			pool->left = 0;
			return -1;
		}
		pool->left = sizeof(pool->bytes);
	}
	from = pool->bytes + sizeof(pool->bytes) - pool->left;
	memcpy(buf, from, len);
	OPENSSL_cleanse(from, len);
	pool->left -= len;
	return 0;
}
