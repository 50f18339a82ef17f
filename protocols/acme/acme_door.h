/*
 * acme_door.h: what the files of the ACME door share (not a contract: only
 * protocols/acme/acme*.c include it).
 *
 *   acme.c          acme_handle(): routing, the endpoint cache, nonces, the
 *                   directory, the JWS pipeline every POST goes through,
 *                   problem documents, the headers of every response
 *   acme_account.c  newAccount (with EAB), account update / deactivation,
 *                   keyChange
 *   acme_order.c    newOrder (policy per identifier), orders, authorizations,
 *                   challenges, finalize (through ra_enroll), certificates
 *   acme_revoke.c   revokeCert and renewal information (ARI, RFC 9773)
 *
 * A handler gets a struct acme_request whose JWS is parsed, its nonce
 * consumed and its signature verified (and, for kid requests, whose account
 * is loaded, valid and owns the key, and whose URL's object is in
 * r->object, loaded in the same statement); it answers through
 * acme_reply() or acme_problem(). acme_handle() adds Replay-Nonce and
 * Link rel="index" to every response afterwards.
 */
#ifndef ENROLLD_ACME_DOOR_H
#define ENROLLD_ACME_DOOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "../request.h"
#include "acme_jws.h"

/* RFC 8555 §6.7 problem types beyond those of acme_jws.h. */
#define ACME_PROBLEM_ACCOUNT_DOES_NOT_EXIST "urn:ietf:params:acme:error:accountDoesNotExist"
#define ACME_PROBLEM_ALREADY_REVOKED "urn:ietf:params:acme:error:alreadyRevoked"
/* RFC 9773 §5 / §7.4: the certificate a newOrder "replaces" already has a
 * replacement order that is not invalid (HTTP 409) */
#define ACME_PROBLEM_ALREADY_REPLACED "urn:ietf:params:acme:error:alreadyReplaced"
#define ACME_PROBLEM_BAD_CSR "urn:ietf:params:acme:error:badCSR"
#define ACME_PROBLEM_BAD_REVOCATION_REASON "urn:ietf:params:acme:error:badRevocationReason"
#define ACME_PROBLEM_EXTERNAL_ACCOUNT_REQUIRED                                                     \
	"urn:ietf:params:acme:error:externalAccountRequired"
#define ACME_PROBLEM_INVALID_CONTACT "urn:ietf:params:acme:error:invalidContact"
#define ACME_PROBLEM_ORDER_NOT_READY "urn:ietf:params:acme:error:orderNotReady"
#define ACME_PROBLEM_REJECTED_IDENTIFIER "urn:ietf:params:acme:error:rejectedIdentifier"
#define ACME_PROBLEM_UNSUPPORTED_CONTACT "urn:ietf:params:acme:error:unsupportedContact"
#define ACME_PROBLEM_UNSUPPORTED_IDENTIFIER "urn:ietf:params:acme:error:unsupportedIdentifier"
#define ACME_PROBLEM_USER_ACTION_REQUIRED "urn:ietf:params:acme:error:userActionRequired"
/* ACME profiles extension (draft-aaron-acme-profiles) */
#define ACME_PROBLEM_INVALID_PROFILE "urn:ietf:params:acme:error:invalidProfile"

#define ACME_MAX_PROFILES 32
#define ACME_MAX_TERMS 16
#define ACME_URL_MAX 512

/* Random public ids: base64url of 16 bytes (22 characters). */
#define ACME_PUBLIC_ID_LEN 23
/* Challenge tokens: base64url of 32 bytes (43 characters). */
#define ACME_TOKEN_LEN 44

/* Seconds a client is told to wait (Retry-After) while an order is
 * processing: issuance waits for an administrator's approval. */
#define ACME_RETRY_AFTER_PROCESSING 3
/* Order (and authorization) lifetime. */
#define ACME_ORDER_LIFETIME (7 * 86400)

struct acme_profile {
	int64_t id;
	char name[129];
	char description[512];
	bool active;
	int terms[ACME_MAX_TERMS]; /* ascending */
	size_t n_terms;
};

/* An active ACME endpoint (endpoints row + settings + offered profiles), as
 * cached per process for a few seconds. */
struct acme_endpoint {
	int64_t id;
	char name[65];
	int64_t org_id, dept_id;	/* 0: none */
	int64_t default_profile_id;
	bool eab_required;		/* settings.eab_required, default true */
	bool skip_validated;		/* settings.skip_challenges_when_dcv_validated */
	char terms_of_service[ACME_URL_MAX];
	char website[ACME_URL_MAX];
	size_t n_profiles;
	/* last: a copy holds only profiles[0..n_profiles) (acme_endpoint_get()) */
	struct acme_profile profiles[ACME_MAX_PROFILES];
};

struct acme_request {
	const struct http_request *req;
	struct door_context *door;
	struct http_response *resp;
	char prefix[ACME_URL_MAX];	/* base_url + "/acme/" + endpoint name */
	char url[2 * ACME_URL_MAX];	/* the request URL (JWS "url" must equal it) */
	/* after acme_authenticate(): */
	struct acme_jws jws;
	EVP_PKEY *key;			/* the key that signed (account's or jwk); owned */
	struct acme_jws_verifier *verifier; /* kid: the cached account key; owned */
	json_t *account;		/* kid: the account; jwk: the account of that key
					   or NULL (store_acme.h shape) */
	int64_t account_id;		/* 0 when none */
	/* the order / authz / challenge / certificate the URL names, loaded
	 * with the account (store_acme.h shapes), or NULL when absent; the
	 * handler checks that it is the signer's */
	json_t *object;
	/* newOrder, finalize: the policy facts generation read with the
	 * account (store_acme.h), for facts_get() / ra_enroll() */
	int64_t facts_generation;
	/* authz/<order>.<index>: the index (acme_derived_authz_parse()) */
	int authz_index;
	/* last, and only profiles[0..ep.n_profiles) are set: acme_handle()
	 * neither zeroes nor copies the unused profile slots (~23 kB) */
	struct acme_endpoint ep;
};

/* The endpoint's profile by id / by name, or NULL. */
const struct acme_profile *acme_profile_by_id(const struct acme_endpoint *ep, int64_t id);
const struct acme_profile *acme_profile_by_name(const struct acme_endpoint *ep, const char *name);

/* Answers an RFC 8555 problem document. */
void acme_problem(struct acme_request *r, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answers a problem document built by the caller ({"type","detail",...});
 * "status" is added; steals the reference. */
void acme_problem_json(struct acme_request *r, int status, json_t *problem);
/* After a JOSE-layer refusal: problem and detail from acme_jws_* (adds
 * "algorithms" for badSignatureAlgorithm). */
void acme_problem_jws(struct acme_request *r, const char *problem, const char *detail);
/* After a failed store call: 503 + Retry-After when the database is
 * unreachable, else 500 serverInternal. */
void acme_db_failure(struct acme_request *r, const char *what);

/* Answers JSON `body` (stolen) with `status`, and a Location header when
 * location is not NULL. */
void acme_reply(struct acme_request *r, int status, json_t *body, const char *location);

/* prefix + "/" + formatted path into buf ("" on overflow). */
void acme_url(const struct acme_request *r, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same as a new JSON string (NULL when out of memory). */
json_t *acme_url_json(const struct acme_request *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Random ids from the CSPRNG. 0, or -1 (logged). */
int acme_public_id(char out[ACME_PUBLIC_ID_LEN]) __attribute__((warn_unused_result));
int acme_token(char out[ACME_TOKEN_LEN]) __attribute__((warn_unused_result));

/* The integer `key` of a JSON object; 0 when absent or null. */
int64_t acme_json_id(const json_t *obj, const char *key);
/* The string `key` of a JSON object, or NULL. */
const char *acme_json_str(const json_t *obj, const char *key);

/*
 * The second half of the POST pipeline (acme.c), after the statement that
 * consumed the nonce and loaded the account (store_acme_auth() or
 * store_acme_new_order()) filled *out: takes out->account and out->object
 * into r (out's pointers are cleared), answers badNonce, an unknown
 * account, a bad signature or an account that is not valid exactly as every
 * request does, and verifies with `held` (the cached key of thumbprint
 * held_thumb, or NULL; the reference is released) when it is still the
 * account's. sentinel: of the nonce key. 0 when the handler may run, -1
 * after answering.
 */
struct store_acme_auth_out;
int acme_auth_finish(struct acme_request *r, struct store_acme_auth_out *out,
    struct acme_jws_verifier *held, const char *held_thumb, const char *sentinel);

/* acme_account.c */
void acme_new_account(struct acme_request *r);
void acme_account(struct acme_request *r, const char *id);
void acme_key_change(struct acme_request *r);

/* acme_order.c; the object handlers find theirs in r->object */
void acme_new_order(struct acme_request *r);
/*
 * newOrder in one round trip, for an account this process authenticated
 * before with the key `held` (thumbprint held_thumb) and found in org_id /
 * dept_id: verifies the JWS with held and decides with the cached policy
 * facts BEFORE any statement, then stores the order with
 * store_acme_new_order(), which consumes auth's nonce and checks that the
 * decision still holds. 0 when not tried (a replacing order, no cached
 * facts, a signature held does not verify, a refusal: the caller runs the
 * ordinary pipeline; nothing was consumed and r->resp is as it was); 1
 * when answered (the order, or what the ordinary pipeline would answer:
 * when the statement stored nothing the account is judged as every request
 * does and the order decided again at the current generation). held stays
 * the caller's.
 */
struct store_acme_auth_in;
int acme_new_order_fast(struct acme_request *r, const struct store_acme_auth_in *auth,
    struct acme_jws_verifier *held, const char *held_thumb, int64_t org_id, int64_t dept_id);
void acme_orders(struct acme_request *r, const char *account_id);
void acme_order(struct acme_request *r);
void acme_finalize(struct acme_request *r);
/* A derived authorization's URL id (store_acme.h) is the order's public id,
 * this separator - never in a public id (base64url) - and the identifier's
 * index in decimal. */
#define ACME_DERIVED_AUTHZ_SEP "."
/* Whether id (of authz/<id>) names a derived authorization: exactly a
 * public id, the separator and an index below the identifier limit, no
 * leading zero. Then *index is set and id cut to the order's public id. */
bool acme_derived_authz_parse(char *id, int *index);
void acme_authz(struct acme_request *r);
void acme_chall(struct acme_request *r);
void acme_cert(struct acme_request *r);

/* acme_revoke.c */
void acme_revoke(struct acme_request *r);
void acme_renewal_info(struct acme_request *r, const char *cert_id);
/* Parses an ARI certID (RFC 9773 §4.1: base64url(AKI keyIdentifier) "."
 * base64url(serial DER content octets), unpadded, minimal) into serial
 * (certificates.serial: upper-case hex, no leading zeros). 0; -1 when it is
 * malformed, -2 when its keyIdentifier is not our issuing CA's; *detail then
 * says why (static text). The one certID parser: renewal-info and
 * newOrder's "replaces" both use it. */
int acme_cert_id_parse(const struct door_context *door, const char *cert_id, char serial[41],
    const char **detail) __attribute__((warn_unused_result));

#endif
