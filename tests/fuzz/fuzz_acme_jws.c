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
 *       protocols/acme/acme_jws.c core/ecverify.c core/log.c -lcrypto -ljansson \
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
 *
 * The ES256 table path (core/ecverify.c, taken by acme_jws_verify_with()
 * once a verifier has verified 64 signatures): at start three fixed P-256
 * keys (private scalars 2, n-1 and a constant: the same on every run) get
 * a verifier each, trained through the public API until its table is
 * built (acme_jws_tables_wait(), acme_jws_verifier_fast()). Every JWS the
 * input parses to (outer, and inner of a key change) is then verified with
 * each of them, and the answer must be acme_jws_verify()'s with the same
 * key (no table): same return, same problem type, same detail.
 * So that valid signatures (and their near misses) are reachable, an input
 * whose first byte is 0 is a recipe instead: byte 1 control, bytes 2-33 the
 * nonce k, bytes 34-37 a mutation, the rest the payload text (header kind
 * 3: protected header text, a 0 byte, payload text). Control bits 0-1 pick
 * the key (3 -> 0), bits 2-3 the protected header (0 ES256 with kid, 1 ES256
 * with the key's jwk, 2 a kid header with the alg of bits 4-5: ES384, RS256,
 * EdDSA, ES512, 3 the input's text), bit 6 applies the mutation. The
 * harness signs BASE64URL(header).BASE64URL(payload) with the key and k
 * (deterministic, so a crash reproduces), mutates the signature (mutation
 * byte 0 mod 10: s := n - s (still valid), xor byte 1 at byte 2 mod 64, r
 * or s += n, r or s := 0, r := n, r and s swapped, 63 or 65 bytes), and
 * parses the body built from them. An unmutated (or n - s) ES256 recipe
 * signed by key i must verify with key i on both paths.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>

#include "acme/acme_jws.h"
#include "fuzz_p256.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the ES256 table path against acme_jws_verify() ----------------------- */

#define FUZZ_KEYS 3

static EC_GROUP *fuzz_group;
static const BIGNUM *fuzz_order;
static BIGNUM *fuzz_privs[FUZZ_KEYS];
static EVP_PKEY *fuzz_keys[FUZZ_KEYS];
static char *fuzz_jwks[FUZZ_KEYS];                       /* canonical JWK text */
static struct acme_jws_verifier *fuzz_tabled[FUZZ_KEYS]; /* table built */

/* sig (r || s) := the ES256 signature of input by d with nonce k (big
 * endian, reduced mod n); false (sig untouched) when k is 0 mod n or r or s
 * would be 0. */
static bool
fuzz_sign(const BIGNUM *d, const char *input, size_t input_len, const unsigned char k_bytes[32],
    unsigned char sig[64])
{
	unsigned char digest[SHA256_DIGEST_LENGTH];

	if (SHA256((const unsigned char *)input, input_len, digest) == NULL)
		abort();
	return fuzz_p256_sign(fuzz_group, fuzz_order, d, digest, k_bytes, sig, sig + 32);
}

/* part (32 bytes, big endian) := part + n when that fits in 32 bytes
 * (an out-of-range r or s with the right residue); else unchanged. */
static void
fuzz_add_order(unsigned char part[32])
{
	BIGNUM *v = BN_bin2bn(part, 32, NULL);

	if (v == NULL || BN_add(v, v, fuzz_order) != 1)
		abort();
	if (BN_num_bytes(v) <= 32 && BN_bn2binpad(v, part, 32) != 32)
		abort();
	BN_free(v);
}

/* The body {"protected":B64(header),"payload":B64(payload),"signature":B64(sig)}. */
static char *
fuzz_body(const char *header, size_t header_len, const char *payload, size_t payload_len,
    const unsigned char *sig, size_t sig_len, char **input, size_t *input_len)
{
	char *h = acme_b64url_encode((const unsigned char *)header, header_len);
	char *p = acme_b64url_encode((const unsigned char *)payload, payload_len);
	char *sg = acme_b64url_encode(sig, sig_len);
	char *body = NULL;

	if (h == NULL || p == NULL || sg == NULL ||
	    asprintf(input, "%s.%s", h, p) < 0 ||
	    asprintf(&body, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}",
		h, p, sg) < 0)
		abort();
	*input_len = strlen(*input);
	free(h);
	free(p);
	free(sg);
	return body;
}

/* The header of recipe header kind 0-2. */
static char *
fuzz_header(unsigned kind, unsigned alg_pick, unsigned which)
{
	static const char *const algs[] = { "ES384", "RS256", "EdDSA", "ES512" };
	char *text = NULL;
	int n;

	if (kind == 1)
		n = asprintf(&text,
		    "{\"alg\":\"ES256\",\"jwk\":%s,\"nonce\":\"bm9uY2U\","
		    "\"url\":\"https://ra.example/acme/new-account\"}",
		    fuzz_jwks[which]);
	else
		n = asprintf(&text,
		    "{\"alg\":\"%s\",\"kid\":\"https://ra.example/acme/acct/1\","
		    "\"nonce\":\"bm9uY2U\",\"url\":\"https://ra.example/acme/new-order\"}",
		    kind == 0 ? "ES256" : algs[alg_pick & 3]);
	if (n < 0)
		abort();
	return text;
}

/* Every verifier with a table answers jws as acme_jws_verify() does with
 * its key. Returns a bit mask of the keys jws verifies with. */
static unsigned
fuzz_tables_agree(const struct acme_jws *jws)
{
	unsigned valid = 0;

	for (int i = 0; i < FUZZ_KEYS; i++) {
		const char *p_fast = NULL, *p_ref = NULL;
		char d_fast[256] = "", d_ref[256] = "";
		int fast, ref;

		if (!acme_jws_verifier_fast(fuzz_tabled[i]))
			abort(); /* the table must still be in use */
		fast = acme_jws_verify_with(jws, fuzz_tabled[i], &p_fast, d_fast, sizeof(d_fast));
		ref = acme_jws_verify(jws, fuzz_keys[i], &p_ref, d_ref, sizeof(d_ref));
		if (fast != ref || (p_fast == NULL) != (p_ref == NULL) ||
		    (p_ref != NULL && strcmp(p_fast, p_ref) != 0) || strcmp(d_fast, d_ref) != 0)
			abort();
		if (ref == 0)
			valid |= 1u << i;
	}
	return valid;
}

/* Signs and parses one valid ES256 body with key `which`: the training of
 * its verifier at start. */
static void
fuzz_train(unsigned which, unsigned round)
{
	static const char payload[] = "{}";
	unsigned char k[32] = { 0 }, sig[64];
	const char *problem = NULL;
	char detail[256];
	char *header = fuzz_header(0, 0, which), *input = NULL, *body;
	size_t input_len;
	struct acme_jws jws;

	k[0] = (unsigned char)(which + 1);
	k[31] = (unsigned char)(round + 1);
	body = fuzz_body(header, strlen(header), payload, 2, (const unsigned char *)"", 0, &input,
	    &input_len);
	free(body);
	if (!fuzz_sign(fuzz_privs[which], input, input_len, k, sig))
		abort();
	free(input);
	body = fuzz_body(header, strlen(header), payload, 2, sig, 64, &input, &input_len);
	if (acme_jws_parse((const unsigned char *)body, strlen(body), &jws, &problem, detail,
		sizeof(detail)) != 0 ||
	    acme_jws_verify_with(&jws, fuzz_tabled[which], &problem, detail, sizeof(detail)) != 0)
		abort();
	acme_jws_free(&jws);
	free(body);
	free(input);
	free(header);
}

static void
fuzz_tables_init(void)
{
	static const unsigned char constant[32] = "enrolld fuzz_acme_jws key 3 ...";
	BN_CTX *ctx = BN_CTX_new();

	if (ctx == NULL || (fuzz_group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) == NULL)
		abort();
	fuzz_order = EC_GROUP_get0_order(fuzz_group);
	for (int i = 0; i < FUZZ_KEYS; i++)
		if ((fuzz_privs[i] = BN_new()) == NULL)
			abort();
	if (BN_set_word(fuzz_privs[0], 2) != 1 || BN_copy(fuzz_privs[1], fuzz_order) == NULL ||
	    BN_sub_word(fuzz_privs[1], 1) != 1 ||
	    BN_bin2bn(constant, 32, fuzz_privs[2]) == NULL ||
	    BN_nnmod(fuzz_privs[2], fuzz_privs[2], fuzz_order, ctx) != 1)
		abort();
	BN_CTX_free(ctx);
	for (unsigned i = 0; i < FUZZ_KEYS; i++) {
		fuzz_keys[i] = fuzz_p256_public_key(fuzz_group, fuzz_privs[i]);
		if ((fuzz_jwks[i] = acme_jwk_to_string(fuzz_keys[i])) == NULL ||
		    (fuzz_tabled[i] = acme_jws_verifier_new(fuzz_keys[i])) == NULL)
			abort();
		/* one build at a time in the process: one key after the other */
		for (unsigned round = 0; round < 64; round++)
			fuzz_train(i, round);
		acme_jws_tables_wait();
		if (!acme_jws_verifier_fast(fuzz_tabled[i]))
			abort();
	}
}

/* A recipe input (first byte 0): see the top of the file. */
static void
fuzz_recipe(const uint8_t *data, size_t size)
{
	unsigned char in[38], sig[65];
	unsigned control, which, kind, op;
	const char *header, *payload, *problem = NULL;
	char *made_header = NULL, *input = NULL, *body;
	size_t header_len, payload_len, sig_len = 64, input_len;
	char detail[256];
	struct acme_jws jws;
	bool made, still_valid;

	memset(in, 0, sizeof(in));
	memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
	control = in[1];
	which = (control & 3u) % FUZZ_KEYS;
	kind = (control >> 2) & 3u;
	op = in[34] % 10u;
	payload = size > sizeof(in) ? (const char *)data + sizeof(in) : "";
	payload_len = size > sizeof(in) ? size - sizeof(in) : 0;
	if (kind == 3) {
		const char *nul = memchr(payload, 0, payload_len);

		header = payload;
		header_len = nul != NULL ? (size_t)(nul - payload) : payload_len;
		payload = nul != NULL ? nul + 1 : "";
		payload_len = nul != NULL ? payload_len - header_len - 1 : 0;
	} else {
		header = made_header = fuzz_header(kind, control >> 4, which);
		header_len = strlen(header);
	}

	body = fuzz_body(header, header_len, payload, payload_len, (const unsigned char *)"", 0,
	    &input, &input_len);
	free(body);
	memset(sig, 0, sizeof(sig));
	memcpy(sig, in + 2, 32); /* no signature: k in r's place, s = 0 */
	made = fuzz_sign(fuzz_privs[which], input, input_len, in + 2, sig);
	free(input);
	still_valid = made && kind <= 1;
	if (control & 0x40) {
		switch (op) {
		case 0: /* s := n - s: the other valid signature */
			if (made) {
				BIGNUM *s = BN_bin2bn(sig + 32, 32, NULL);

				if (s == NULL || BN_sub(s, fuzz_order, s) != 1 ||
				    BN_bn2binpad(s, sig + 32, 32) != 32)
					abort();
				BN_free(s);
			}
			break;
		case 1:
			sig[in[36] % 64u] ^= in[35];
			still_valid = still_valid && in[35] == 0;
			break;
		case 2:
		case 3:
			fuzz_add_order(sig + (op == 2 ? 0 : 32));
			still_valid = false;
			break;
		case 4:
		case 5:
			memset(sig + (op == 4 ? 0 : 32), 0, 32);
			still_valid = false;
			break;
		case 6:
			if (BN_bn2binpad(fuzz_order, sig, 32) != 32)
				abort();
			still_valid = false;
			break;
		case 7: {
			unsigned char r[32];

			memcpy(r, sig, 32);
			memmove(sig, sig + 32, 32);
			memcpy(sig + 32, r, 32);
			still_valid = still_valid && memcmp(sig, sig + 32, 32) == 0;
			break;
		}
		case 8:
			sig_len = 63;
			still_valid = false;
			break;
		default:
			sig[64] = in[35];
			sig_len = 65;
			still_valid = false;
			break;
		}
	}

	body = fuzz_body(header, header_len, payload, payload_len, sig, sig_len, &input, &input_len);
	if (acme_jws_parse((const unsigned char *)body, strlen(body), &jws, &problem, detail,
		sizeof(detail)) == 0) {
		unsigned valid = fuzz_tables_agree(&jws);

		if (still_valid && (valid & (1u << which)) == 0)
			abort(); /* a signature made here must verify */
	} else if (still_valid && payload_len == 0) {
		abort(); /* our own header and "" must parse */
	}
	acme_jws_free(&jws);
	free(body);
	free(input);
	free(made_header);
}

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
		fuzz_tables_init();
		initialised = 1;
	}
	if (size > 0 && data[0] == 0)
		fuzz_recipe(data, size);

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
		(void)fuzz_tables_agree(&jws);
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
				(void)fuzz_tables_agree(&inner);
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
