/*
 * acme_jws.h: the JOSE layer of the ACME door (RFC 8555 §6.2, RFC 7515, 7517,
 * 7518, 7638, 8037), as pure functions over bytes.
 *
 * Every ACME POST is a flattened JWS. The door calls, in this order:
 *
 *   acme_jws_parse()    structure, bounds, protected header, embedded jwk
 *                       (no key needed; gives nonce, url and kid for the DB)
 *   acme_jws_verify()   the signature, with jws.jwk or the stored account key
 *                       (acme_jwk_parse() of the stored canonical JWK)
 *
 * The nonce (consume it), the url (compare with the request URL) and the kid
 * (look up the account) are the caller's: they need the database.
 *
 * External account binding (RFC 8555 §7.3.4) is two steps likewise:
 * acme_eab_parse() gives the EAB key id for the lookup, acme_eab_verify()
 * checks the MAC with the key found and that the bound key is the account key.
 *
 * Errors: every function that judges input returns 0, or -1 with *problem set
 * to one of the ACME_PROBLEM_* strings below (static; never freed) and a short
 * human-readable detail written into detail[detail_len] (never a secret; at
 * most a short quote of the client's own input, e.g. a JSON syntax error or an
 * alg name). The caller turns that into an RFC 8555 problem document;
 * for ACME_PROBLEM_BAD_SIGNATURE_ALGORITHM it adds the "algorithms" member
 * from acme_jws_algorithms_json().
 *
 * Which problem when:
 *   malformed              not a flattened JWS, body > 64 KiB, JSON deeper
 *                          than 16, duplicate JSON keys, bad base64url (padding,
 *                          '+', '/', whitespace, non-zero trailing bits),
 *                          trailing garbage, "signatures" or unprotected
 *                          "header", missing/ill-typed alg or url, jwk and kid
 *                          both or neither, any "crit", a nonce that is not
 *                          base64url, a payload that is neither "" nor a JSON
 *                          object, a jwk with private members ("d", "p", ...)
 *                          or missing/ill-typed members, and a signature that
 *                          does not verify or has the wrong length for the
 *                          alg ("JWS signature invalid")
 *   badNonce               nonce missing from the protected header
 *   badSignatureAlgorithm  alg not one of acme_jws_algorithms (including
 *                          "none" and HS*), or alg that does not fit the key
 *                          (ES256 with a P-384 key, RS256 with an EC key, ...)
 *   badPublicKey           kty/crv not supported, RSA under 2048 or over 4096
 *                          bits or e != 65537, EC coordinates of the wrong
 *                          length or not on the curve, Ed25519 x not 32 bytes
 *   unauthorized           EAB: url not the newAccount URL, MAC wrong (or
 *                          of the wrong length), bound key not the account key
 *   (EAB malformed)        EAB not a flattened JWS, alg not HS256/384/512,
 *                          kid or url missing, nonce present, "crit",
 *                          empty payload, payload not a usable JWK
 *   serverInternal         out of memory or an OpenSSL call that should not
 *                          fail (logged)
 */
#ifndef ENROLLD_ACME_JWS_H
#define ENROLLD_ACME_JWS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

#define ACME_PROBLEM_MALFORMED               "urn:ietf:params:acme:error:malformed"
#define ACME_PROBLEM_BAD_NONCE               "urn:ietf:params:acme:error:badNonce"
#define ACME_PROBLEM_BAD_SIGNATURE_ALGORITHM "urn:ietf:params:acme:error:badSignatureAlgorithm"
#define ACME_PROBLEM_BAD_PUBLIC_KEY          "urn:ietf:params:acme:error:badPublicKey"
#define ACME_PROBLEM_UNAUTHORIZED            "urn:ietf:params:acme:error:unauthorized"
#define ACME_PROBLEM_SERVER_INTERNAL         "urn:ietf:params:acme:error:serverInternal"

/* Bounds on what a client may send. */
#define ACME_JWS_MAX_BODY  (64 * 1024)
#define ACME_JWS_MAX_DEPTH 16

/* RFC 7638 SHA-256 thumbprint: 43 base64url characters and a NUL. */
#define ACME_JWK_THUMBPRINT_LEN 44

/* The signature algorithms the server accepts, in the order of
 * acme_jws_algorithms[]. */
enum acme_jws_alg {
	ACME_JWS_ALG_RS256,
	ACME_JWS_ALG_ES256,
	ACME_JWS_ALG_ES384,
	ACME_JWS_ALG_ES512,
	ACME_JWS_ALG_EDDSA,
	ACME_JWS_ALG__MAX,
};

/* "RS256", "ES256", "ES384", "ES512", "EdDSA", then NULL. */
extern const char *const acme_jws_algorithms[ACME_JWS_ALG__MAX + 1];
/* The same list as a JSON array for the problem document's "algorithms"
 * member. Returns a new reference (the caller json_decref()s it), or NULL
 * when out of memory. */
json_t *acme_jws_algorithms_json(void);

/* One parsed (not yet verified) flattened JWS. Every pointer is owned by the
 * struct and freed by acme_jws_free(). */
struct acme_jws {
	enum acme_jws_alg alg;
	char *nonce;              /* protected "nonce"; NULL only for an inner JWS */
	char *url;                /* protected "url" */
	char *kid;                /* protected "kid" (account URL), or NULL when jwk */
	EVP_PKEY *jwk;            /* the key of protected "jwk", or NULL when kid */
	json_t *protected_header; /* the decoded protected header object */
	/* Decoded payload, NUL-terminated (payload[payload_len] == 0). */
	unsigned char *payload;
	size_t payload_len;
	/* true for POST-as-GET: payload was "" (then payload_json is NULL);
	 * false when it was a JSON object ("{}" included) in payload_json. */
	bool post_as_get;
	json_t *payload_json;
	/* ASCII(BASE64URL(protected) || '.' || BASE64URL(payload)). */
	char *signing_input;
	size_t signing_input_len;
	unsigned char *signature;
	size_t signature_len;
};

/* Parses the request body of an ACME POST: the flattened JSON serialization
 * with a protected header carrying alg, nonce, url and exactly one of jwk/kid.
 * An embedded jwk is turned into a key (checked as acme_jwk_parse() does);
 * the signature is NOT checked here. Returns 0 with *out filled, or -1 with
 * *problem and detail set and *out zeroed. Either way acme_jws_free() is
 * safe to call afterwards. */
int acme_jws_parse(const unsigned char *body, size_t len, struct acme_jws *out,
    const char **problem, char *detail, size_t detail_len) __attribute__((warn_unused_result));

/* Parses the inner JWS of a key change (RFC 8555 §7.3.5), given as the outer
 * payload object: like acme_jws_parse() except that it MUST carry a jwk (kid
 * refused) and MUST NOT carry a nonce (malformed otherwise). The caller still
 * checks that its url equals the outer url and its payload's "account" and
 * "oldKey". */
int acme_jws_parse_inner(const json_t *jws_object, struct acme_jws *out, const char **problem,
    char *detail, size_t detail_len) __attribute__((warn_unused_result));

/* Verifies jws's signature with `key`: pass jws->jwk for a jwk-signed request,
 * or the account's stored key for a kid-signed one. Checks first that the alg
 * fits the key (badSignatureAlgorithm), then the signature (malformed, "JWS
 * signature invalid"). Returns 0 when it verifies. */
int acme_jws_verify(const struct acme_jws *jws, EVP_PKEY *key, const char **problem, char *detail,
    size_t detail_len) __attribute__((warn_unused_result));

/*
 * A key made ready to verify signatures again and again (the ACME door's
 * account key cache holds these): the alg it must sign with is worked out
 * once, and the verification context initialised once and copied for each
 * signature (initialising one fetches the signature and digest algorithms
 * from the provider every time). Reference counted; acme_jws_verify_with()
 * may run on one verifier in several threads at once (the copies are made
 * under the verifier's lock).
 *
 * acme_jws_verifier_new(): a new verifier holding its own reference of key,
 * or NULL when out of memory (an unsupported key still makes one, whose
 * checks then fail as acme_jws_verify()'s do).
 * acme_jws_verifier_key(): its key (borrowed).
 * acme_jws_verify_with(): exactly acme_jws_verify() with the verifier's key.
 * An ES256 (P-256) key that has verified 64 signatures gets a table for its
 * public key (core/ecverify.h), built on a thread of its own (~25 ms of
 * CPU, ~150 KB; one build at a time, at most 32 tables in the process),
 * after which its signatures are checked with it (37 us instead of ~96).
 * acme_jws_verifier_fast(): whether that table is in use (for tests).
 * acme_jws_tables_wait(): returns once no table is being built (at most
 * ~5 s): the daemon calls it after its workers stopped and before it
 * exits, so that no build thread is inside OpenSSL while OpenSSL's atexit
 * cleanup runs.
 */
struct acme_jws_verifier;

struct acme_jws_verifier *acme_jws_verifier_new(EVP_PKEY *key);
int acme_jws_verifier_up_ref(struct acme_jws_verifier *v);
void acme_jws_verifier_free(struct acme_jws_verifier *v);
EVP_PKEY *acme_jws_verifier_key(const struct acme_jws_verifier *v);
bool acme_jws_verifier_fast(const struct acme_jws_verifier *v);
void acme_jws_tables_wait(void);
int acme_jws_verify_with(const struct acme_jws *jws, struct acme_jws_verifier *v,
    const char **problem, char *detail, size_t detail_len) __attribute__((warn_unused_result));

/* Frees every member and zeroes *jws; NULL-safe. */
void acme_jws_free(struct acme_jws *jws);

/* JWK object -> public key (RSA, EC P-256/P-384/P-521, OKP Ed25519), with the
 * key checks above. Private members are refused. Returns 0 with *out a newly
 * allocated key (the caller EVP_PKEY_free()s it), or -1 with *problem set. */
int acme_jwk_parse(const json_t *jwk, EVP_PKEY **out, const char **problem, char *detail,
    size_t detail_len) __attribute__((warn_unused_result));

/* Key -> canonical public JWK: only the RFC 7638 required members (RSA: e,
 * kty, n; EC: crv, kty, x, y; OKP: crv, kty, x), coordinates at full length.
 * Returns a new reference, or NULL for an unsupported key or out of memory. */
json_t *acme_jwk_to_json(EVP_PKEY *key);

/* The same as a compact string with members in lexicographic order and no
 * whitespace (the RFC 7638 input; what the ACME door stores for an account).
 * Returns a newly allocated string (the caller free()s it), or NULL. */
char *acme_jwk_to_string(EVP_PKEY *key);

/* RFC 7638 SHA-256 thumbprint, base64url without padding, into out. Returns
 * 0, or -1 for an unsupported key. */
int acme_jwk_thumbprint(EVP_PKEY *key, char out[ACME_JWK_THUMBPRINT_LEN])
    __attribute__((warn_unused_result));

/* External account binding (RFC 8555 §7.3.4). */
enum acme_eab_alg {
	ACME_EAB_ALG_HS256,
	ACME_EAB_ALG_HS384,
	ACME_EAB_ALG_HS512,
};

struct acme_eab {
	enum acme_eab_alg alg;
	char *kid;              /* the EAB key id: look the MAC key up by it */
	char *url;              /* equal to the newAccount URL once parsed */
	unsigned char *payload; /* decoded payload (the bound JWK), NUL-terminated */
	size_t payload_len;
	char *signing_input;
	size_t signing_input_len;
	unsigned char *mac;
	size_t mac_len;
};

/* Parses the "externalAccountBinding" member of a newAccount payload: a
 * flattened JWS whose protected header has alg HS256/HS384/HS512, kid, url and
 * no nonce (malformed otherwise), whose url equals new_account_url
 * (unauthorized otherwise). Returns 0 with *out filled (then look up
 * out->kid), or -1 with *problem set and *out zeroed. */
int acme_eab_parse(const json_t *eab, const char *new_account_url, struct acme_eab *out,
    const char **problem, char *detail, size_t detail_len) __attribute__((warn_unused_result));

/* Checks the MAC with the raw (already base64url-decoded) EAB key, in
 * constant time, then that the payload is a JWK of the same key as
 * account_key (the outer jwk). Wrong MAC or another key: unauthorized; a
 * payload that is not a JWK: malformed. Returns 0 when the binding holds. */
int acme_eab_verify(const struct acme_eab *eab, const unsigned char *mac_key, size_t mac_key_len,
    EVP_PKEY *account_key, const char **problem, char *detail, size_t detail_len)
    __attribute__((warn_unused_result));

/* Frees every member and zeroes *eab; NULL-safe. */
void acme_eab_free(struct acme_eab *eab);

/* The fast path of the JSON reader: text when it is one JSON object whose
 * members are all strings of printable ASCII without escapes (at most 32
 * members, no duplicate keys, keys under 64 bytes, whitespace around), as a
 * new reference; NULL
 * for any other text, valid JSON or not, which then goes to jansson. What it
 * accepts, jansson accepts as the same object (the fuzz target checks). */
json_t *acme_json_flat_object(const unsigned char *text, size_t len);

/* The same text as json_dumps(value, JSON_COMPACT), without jansson's
 * per-byte callbacks: objects, arrays, ASCII strings, integers, true, false
 * and null are written here, anything else (reals, non-ASCII strings, which
 * jansson checks as UTF-8) by jansson. Returns a newly allocated string (the
 * caller frees it), or NULL when jansson would return NULL or out of memory. */
char *acme_json_dump(const json_t *value);

/* base64url without padding (RFC 4648 §5, RFC 7515 §2).
 * acme_b64url_encode: returns a newly allocated NUL-terminated string (the
 * caller frees it), or NULL when out of memory.
 * acme_b64url_decode: strict: only [A-Za-z0-9_-], no '=', no whitespace, a
 * length that is not 1 mod 4, and zero unused trailing bits. Returns a newly
 * allocated buffer (NUL-terminated for convenience, *out_len bytes before the
 * NUL; the caller frees it), or NULL on bad input or out of memory. */
char *acme_b64url_encode(const unsigned char *data, size_t len);
unsigned char *acme_b64url_decode(const char *text, size_t text_len, size_t *out_len);
/* Strict check only: true when text is valid (non-empty) base64url. */
bool acme_b64url_valid(const char *text, size_t text_len);

#endif
