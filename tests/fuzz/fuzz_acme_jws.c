/*
 * fuzz_acme_jws.c: libFuzzer target for the ACME JOSE layer
 * (protocols/acme/acme_jws.c): every byte an ACME client sends goes through
 * acme_jws_parse() first, so it must never crash, leak or read out of bounds,
 * whatever the input.
 *
 * Not built by the default CMake build. Build and run with clang (from the
 * source root):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *       -Iprotocols -Icore tests/fuzz/fuzz_acme_jws.c \
 *       protocols/acme/acme_jws.c core/log.c -lcrypto -ljansson \
 *       -o /tmp/fuzz_acme_jws
 *   mkdir -p /tmp/acme-corpus
 *   ENROLLD_FUZZ_SEED_DIR=/tmp/acme-corpus build/test_acme_jws   # seeds
 *   /tmp/fuzz_acme_jws -max_len=65600 -max_total_time=60 /tmp/acme-corpus
 *
 * (The unit test writes every JWS of its table into ENROLLD_FUZZ_SEED_DIR,
 * which gives the fuzzer well-formed, signed starting points.)
 *
 * Beyond "no crash", it checks five properties: a strict base64url decode
 * re-encodes to the very same text (one spelling per byte string), a key
 * taken from a jwk gives back a canonical JWK that parses to the same key
 * with the same thumbprint, what the JSON fast path
 * (acme_json_flat_object) takes, jansson reads as the same object, a JWS
 * taken (its parts found in place or through jansson) has the signing input
 * jansson's reading gives, and the reply writer (acme_json_dump) writes any
 * JSON value as jansson does.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "acme/acme_jws.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The key round trip: JWK -> key -> canonical JWK -> key, same thumbprint. */
static void
fuzz_key_round_trip(EVP_PKEY *key)
{
	char tp1[ACME_JWK_THUMBPRINT_LEN], tp2[ACME_JWK_THUMBPRINT_LEN];
	const char *problem = NULL;
	char detail[128];
	char *text = NULL;
	json_t *jwk = NULL;
	EVP_PKEY *again = NULL;

	text = acme_jwk_to_string(key);
	if (text == NULL)
		abort(); /* a key we accepted must serialise */
	jwk = json_loads(text, 0, NULL);
	if (acme_jwk_parse(jwk, &again, &problem, detail, sizeof(detail)) != 0)
		abort();
	if (EVP_PKEY_eq(key, again) != 1)
		abort();
	if (acme_jwk_thumbprint(key, tp1) != 0 || acme_jwk_thumbprint(again, tp2) != 0 ||
	    strcmp(tp1, tp2) != 0)
		abort();
	EVP_PKEY_free(again);
	json_decref(jwk);
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char mac_key[] = "fuzz-eab-mac-key-not-a-secret";
	static int initialised;
	const char *problem = NULL;
	char detail[256];
	struct acme_jws jws, inner;
	struct acme_eab eab;
	unsigned char *bytes = NULL;
	char *text = NULL;
	size_t len = 0;
	json_t *obj = NULL;

	if (!initialised) {
		log_init(LOG_LEVEL_ERROR);
		initialised = 1;
	}

	/* base64url: strict decoding is canonical. */
	bytes = acme_b64url_decode((const char *)data, size, &len);
	if (bytes != NULL) {
		text = acme_b64url_encode(bytes, len);
		if (text == NULL || strlen(text) != size || memcmp(text, data, size) != 0)
			abort();
		if (size > 0 && !acme_b64url_valid((const char *)data, size))
			abort();
		free(text);
		free(bytes);
	} else if (acme_b64url_valid((const char *)data, size)) {
		abort(); /* valid but would not decode */
	}

	/* The JSON fast path takes only what jansson reads as the same object. */
	obj = acme_json_flat_object(data, size);
	if (obj != NULL) {
		json_t *slow = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);

		if (slow == NULL || json_equal(obj, slow) != 1)
			abort();
		json_decref(slow);
		json_decref(obj);
		obj = NULL;
	}

	/* The reply writer: whatever JSON jansson reads, acme_json_dump()
	 * writes as json_dumps(JSON_COMPACT) does (NULL where it is NULL). */
	obj = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	if (obj != NULL) {
		char *want = json_dumps(obj, JSON_COMPACT), *got = acme_json_dump(obj);

		if ((want == NULL) != (got == NULL) || (want != NULL && strcmp(want, got) != 0))
			abort();
		free(want);
		free(got);
		json_decref(obj);
		obj = NULL;
	}

	/* The request path: parse, verify with the embedded key, then what the
	 * door does with the payload (EAB, key change). */
	if (acme_jws_parse(data, size, &jws, &problem, detail, sizeof(detail)) == 0) {
		if (jws.jwk != NULL) {
			(void)acme_jws_verify(&jws, jws.jwk, &problem, detail, sizeof(detail));
			fuzz_key_round_trip(jws.jwk);
		}
		if (jws.payload_json != NULL) {
			json_t *binding =
			    json_object_get(jws.payload_json, "externalAccountBinding");

			if (binding != NULL &&
			    acme_eab_parse(
			        binding, jws.url, &eab, &problem, detail, sizeof(detail)) == 0) {
				if (jws.jwk != NULL)
					(void)acme_eab_verify(&eab, mac_key, sizeof(mac_key) - 1,
					    jws.jwk, &problem, detail, sizeof(detail));
				acme_eab_free(&eab);
			}
			if (acme_jws_parse_inner(
			        jws.payload_json, &inner, &problem, detail, sizeof(detail)) == 0) {
				(void)acme_jws_verify(
				    &inner, inner.jwk, &problem, detail, sizeof(detail));
				acme_jws_free(&inner);
			}
		}
		if (jws.post_as_get != (jws.payload_json == NULL))
			abort();
		/* taken (in place or through jansson): jansson reads the body as
		 * an object whose protected "." payload is the signing input */
		{
			json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
			const char *p = json_string_value(json_object_get(root, "protected"));
			const char *pl = json_string_value(json_object_get(root, "payload"));
			char *input = NULL;

			if (p == NULL || pl == NULL ||
			    (input = malloc(strlen(p) + strlen(pl) + 2)) == NULL)
				abort();
			strcpy(input, p);
			strcat(input, ".");
			strcat(input, pl);
			if (strlen(input) != jws.signing_input_len ||
			    memcmp(input, jws.signing_input, jws.signing_input_len) != 0)
				abort();
			free(input);
			json_decref(root);
		}
	} else if (jws.signing_input != NULL || jws.jwk != NULL || jws.url != NULL) {
		abort(); /* a failed parse leaves nothing behind */
	}
	acme_jws_free(&jws);

	/* The same bytes as an EAB object directly (skips the outer layer). */
	if (size <= ACME_JWS_MAX_BODY) {
		obj = json_loadb((const char *)data, size, 0, NULL);
		if (obj != NULL) {
			if (acme_eab_parse(obj, "https://ra.example/acme/new-account", &eab,
			        &problem, detail, sizeof(detail)) == 0)
				acme_eab_free(&eab);
			json_decref(obj);
		}
	}
	ERR_clear_error();
	return 0;
}
