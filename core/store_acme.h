/*
 * store_acme.h: the ACME door's SQL (protocols/acme/ holds none).
 *
 * Everything an ACME request needs lives in PostgreSQL (core/migrations/
 * 002_acme.sql) so that several enrolld instances sharing one database serve
 * the same accounts, orders and nonces. Each function is one round trip, run
 * as a statement prepared once per connection; the objects come as the JSON
 * shapes below (built by PostgreSQL, or from plain columns by
 * store_acme_auth()) and the door turns them into the RFC 8555 shape (URLs,
 * names).
 *
 * Conventions: functions returning int answer 1 (found / done), 0 (absent /
 * nothing changed: a guard said no) or -1 (database error, logged;
 * db_unavailable() tells whether it was the connection, db->last_sqlstate
 * which statement error). JSON out-parameters are new references the caller
 * json_decref()s. Ids of 0 are passed as SQL NULL.
 *
 * JSON shapes (timestamps are RFC 3339 UTC text or null):
 *   endpoint  {"id","name","org_id","dept_id","default_profile_id",
 *              "settings":{...},"profiles":[{"id","name","description",
 *              "active","terms_days":[..]}]}            (active ACME only)
 *   account   {"id","status","org_id","dept_id","jwk","thumbprint",
 *              "contact":[..],"tos_agreed","eab_key_id","created_at"}
 *   order     {"id","public_id","account_id","status" (effective: expired
 *              orders and orders whose authorizations all turned valid or
 *              one invalid read as such),"identifiers":[{"type","value"}],
 *              "profile_id","profile","term_days","replaces","not_before",
 *              "not_after","expires","error","certificate_id",
 *              "authzs":[public_id..] or null when the order's
 *              authorizations are derived from it (below)}
 *   authz     {"id","public_id","order_id","account_id","status"
 *              (effective: 'expired' once past expires while pending),
 *              "type","value","wildcard","expires","challenges":[{"id",
 *              "public_id","type","token","status","validated","error"}]}
 *              A derived one (STORE_ACME_OBJ_DERIVED_AUTHZ) has no "id"
 *              nor "public_id" but "index"; its status is "valid" or
 *              "deactivated", its challenges [].
 *
 * Derived authorizations (migration 009): an order whose names were all
 * validated beforehand (no challenge, no RFC 9773 "replaces") is stored
 * without authorization rows. Its authorization number i (the index of the
 * identifier in the order's "identifiers") is named by the order's public
 * id and i, is valid from birth, has the identifier of the order (a
 * wildcard without its "*." and "wildcard":true) and the order's expiry.
 *   challenge {"id","public_id","account_id","authz_id","authz_public_id",
 *              "authz_status","type","token","status","validated","error"}
 */
#ifndef ENROLLD_STORE_ACME_H
#define ENROLLD_STORE_ACME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct db;

/* ---------- nonces ---------- */

#define STORE_ACME_NONCE_KEY_LEN 32
/* "~" + 16 hex digits + NUL */
#define STORE_ACME_SENTINEL_LEN 18

struct store_acme_nonce_key {
	unsigned char key[STORE_ACME_NONCE_KEY_LEN];
	char sentinel[STORE_ACME_SENTINEL_LEN];
};

/*
 * The HMAC key of the nonces, shared by every instance through acme_secrets:
 * created on first use (INSERT ... ON CONFLICT DO NOTHING, with its sentinel
 * row in acme_nonces, in one statement), else read. When the sentinel row is
 * missing - crash recovery emptied the UNLOGGED acme_nonces, forgetting which
 * nonces were used - the key is replaced (guarded by its old value, so
 * concurrent instances rotate once) and the new one returned. 0 or -1.
 */
int store_acme_nonce_key(struct db *db, struct store_acme_nonce_key *out)
    __attribute__((warn_unused_result));

/* ---------- one request's authentication: one round trip ---------- */

/* The object a request is about, loaded in the same statement that consumes
 * the nonce and loads the account (shapes above; the caller checks that its
 * account_id is the signer's). */
enum store_acme_object {
	STORE_ACME_OBJ_NONE,
	STORE_ACME_OBJ_ORDER,	/* order */
	STORE_ACME_OBJ_AUTHZ,	/* authz */
	STORE_ACME_OBJ_DERIVED_AUTHZ, /* authz: number authz_index of the order
				   public_id, when derived (above) */
	STORE_ACME_OBJ_CHALL,	/* challenge */
	STORE_ACME_OBJ_CERT,	/* {"account_id","cert_status","cert_der" (hex)} of
				   the certificate of the order with that public id */
	STORE_ACME_OBJ_FACTS,	/* newOrder: no object, out->facts_generation for
				   the policy facts (core/facts.h) */
	STORE_ACME_OBJ_FINALIZE, /* the order, as ORDER but "profile" null (the
				   name is in the facts), and out->facts_generation */
	STORE_ACME_OBJ__MAX,
};

struct store_acme_auth_in {
	const char *nonce;	/* the protected header's nonce (HMAC already checked) */
	int64_t nonce_expires;	/* unix time after which it would be refused anyway */
	bool prune;		/* also delete expired nonce rows (now and then) */
	const char *sentinel;	/* of the key that made the nonce */
	int64_t endpoint_id;
	int64_t account_id;	/* kid: the account; 0 when the JWS carries a jwk */
	const char *thumbprint;	/* jwk: find the account of this key; or NULL */
	/* kid: the thumbprint of the account key the caller holds parsed
	 * (NULL or "": none); the account's "jwk" comes back only when the
	 * stored key's thumbprint is another (always for STORE_ACME_OBJ_NONE) */
	const char *key_thumbprint;
	enum store_acme_object object;
	const char *public_id;	/* of the object */
	int authz_index;	/* DERIVED_AUTHZ: the identifier's index */
};

struct store_acme_auth_out {
	bool nonce_fresh;	/* the nonce was not used before (now it is) */
	bool sentinel_ok;	/* false: the key must be reloaded (see above);
				   then nothing was consumed nor loaded */
	json_t *account;	/* the account found, or NULL: "id", "status",
				   "org_id", "dept_id", "thumbprint", "jwk" (see
				   key_thumbprint; always for NONE); the rest of
				   the shape above for STORE_ACME_OBJ_NONE only */
	json_t *object;		/* the object asked for, or NULL when absent */
	/* FACTS, FINALIZE: the policy facts generation read in the same
	 * statement (FACTS_GENERATION_SQL, core/facts.h), for facts_get() and
	 * enroll_request.facts_generation */
	int64_t facts_generation;
};

/*
 * Consumes the nonce, loads the account (by id or by key) and the object, in
 * one statement. The nonce key's sentinel is checked once per database
 * connection, before the first nonce of that key it accepts (crash recovery,
 * which empties acme_nonces, ends every connection). 0 or -1. The caller frees out->account and
 * out->object. An ORDER reads as its certificate row left it: every change
 * of that row moves the order in the same transaction (migration 003).
 */
int store_acme_auth(struct db *db, const struct store_acme_auth_in *in,
    struct store_acme_auth_out *out) __attribute__((warn_unused_result));

/* ---------- endpoints ---------- */

/* The active ACME endpoint called `name`. 1 with *out, 0, -1. */
int store_acme_endpoint(struct db *db, const char *name, json_t **out)
    __attribute__((warn_unused_result));

/* ---------- accounts ---------- */

/* EAB key `kid` of endpoint_id: {"id","org_id","dept_id","hmac_key" (hex),
 * "revoked"}. 1, 0 (no such key at this endpoint), -1. */
int store_acme_eab_lookup(struct db *db, int64_t endpoint_id, const char *kid, json_t **out)
    __attribute__((warn_unused_result));

struct store_acme_account_new {
	int64_t endpoint_id;
	const char *thumbprint;
	const char *jwk;	/* canonical JWK text */
	const char *contact;	/* JSON array text of "mailto:" URLs */
	bool tos_agreed;
	int64_t org_id, dept_id, eab_key_id; /* 0: none */
};

/* Creates the account (and marks the EAB key used, and audits), 1 with the
 * account in *out; 0 when an account with this key exists already (a
 * concurrent newAccount won: look it up); -1. */
int store_acme_account_create(struct db *db, const struct store_acme_account_new *in,
    json_t **out) __attribute__((warn_unused_result));

/* Changes a 'valid' account: contact (JSON array text, or NULL to keep),
 * tos_agreed (when set_tos), deactivate. 1 with the account in *out, 0 when it
 * is no longer valid, -1. */
int store_acme_account_update(struct db *db, int64_t account_id, const char *contact,
    bool set_tos, bool tos_agreed, bool deactivate, json_t **out)
    __attribute__((warn_unused_result));

/* Key rollover guarded by the old thumbprint. 1 with *out, 0 when the
 * account's key changed meanwhile, -1; last_sqlstate 23505 when another
 * account of the endpoint holds the new key (*other_id then names it when it
 * could be read). */
int store_acme_account_key_change(struct db *db, int64_t endpoint_id, int64_t account_id,
    const char *old_thumbprint, const char *new_thumbprint, const char *new_jwk,
    json_t **out, int64_t *other_id) __attribute__((warn_unused_result));

/* The id of the account of endpoint_id holding the key `thumbprint`: 1, 0, -1. */
int store_acme_account_by_key(struct db *db, int64_t endpoint_id, const char *thumbprint,
    int64_t *id) __attribute__((warn_unused_result));

/* ---------- orders ---------- */

struct store_acme_order_new {
	const char *public_id;
	int64_t account_id;
	const char *status;		/* "pending" or "ready" */
	const char *identifiers;	/* JSON array text [{"type","value"}] */
	int64_t profile_id;
	int term_days;
	/* RFC 9773 "replaces": the certID text as sent and the serial it
	 * names (certificates.serial form, acme_cert_id_parse()); both NULL
	 * for an order that replaces nothing */
	const char *replaces;
	const char *replaces_serial;
	int64_t not_after;		/* unix time, 0: not asked */
	int64_t expires;		/* unix time: order and authorizations */
	/* JSON array text: [{"public_id","status","type","value","wildcard",
	 * "challenges":[{"public_id","type","token"}]}]; unused when derived */
	const char *authzs;
	/* true: every name was validated beforehand: no authorization rows,
	 * they are derived from the order (above). Not with replaces_serial. */
	bool authzs_derived;
};

/* Why an order replacing a certificate was not stored. */
enum store_acme_replace_refusal {
	STORE_ACME_REPLACE_UNKNOWN,	/* no issued certificate with that serial
					   was issued to an order of this account */
	STORE_ACME_REPLACE_DISJOINT,	/* it shares no identifier with the order */
	STORE_ACME_REPLACE_TAKEN,	/* another order of it, not invalid,
					   replaces it (alreadyReplaced) */
};

/*
 * Inserts the order, its authorizations and their challenges in one
 * statement. 1 with *order_id, -1.
 * With in->replaces_serial it is a different statement, still one round
 * trip: the order is inserted only when the certificate is the account's
 * and shares an identifier with it, and claims it (unique index of
 * migration 004) after releasing the claim of an order of that certificate
 * that reads invalid. 0 with *refusal when not stored (nothing written).
 * Committed without waiting for the WAL flush (see SA_ORDER_ASYNC_COMMIT).
 */
int store_acme_order_create(struct db *db, const struct store_acme_order_new *in,
    int64_t *order_id, enum store_acme_replace_refusal *refusal)
    __attribute__((warn_unused_result));

/* What a newOrder was decided with, for store_acme_new_order(). */
struct store_acme_new_order_guard {
	int64_t org_id, dept_id;	/* the account's (0: none) */
	int64_t facts_generation;	/* of the policy facts (core/facts.h) */
};

/*
 * newOrder of an account whose key the caller holds, in ONE statement: it
 * consumes auth's nonce (exactly as store_acme_auth(): the sentinel, the
 * prune, a used nonce stores nothing), loads the account as
 * store_acme_auth() with STORE_ACME_OBJ_FACTS does (by id; auth->
 * key_thumbprint is the held key's and required) with the facts
 * generation, and inserts `order` (its authorizations and challenges, or
 * derived: as store_acme_order_create(); not a replacing order) only when
 * the account is 'valid', its key is the held one, its organization and
 * department are guard's and the generation is guard's: the decision the
 * caller made before the statement still holds. 0 with *out (as
 * store_acme_auth()'s) and *order_id: the order stored, or 0 when not
 * (then the nonce alone was consumed: the caller judges out->account and
 * decides again at out->facts_generation, and may store the order with
 * store_acme_order_create()); -1.
 */
int store_acme_new_order(struct db *db, const struct store_acme_auth_in *auth,
    const struct store_acme_new_order_guard *guard, const struct store_acme_order_new *order,
    struct store_acme_auth_out *out, int64_t *order_id) __attribute__((warn_unused_result));

/* Orders of an account, newest first, ids below `before` (0: from the
 * newest), at most `limit` + 1: {"items":[{"id","public_id"}]}. 0 or -1. */
int store_acme_order_list(struct db *db, int64_t account_id, int64_t before, int limit,
    json_t **out) __attribute__((warn_unused_result));

/* Moves order_id to `status` (with certificate_id and error JSON text, each
 * may be 0 / NULL) when its stored status is one of `from` (a text[]
 * literal). 1 changed, 0 not, -1. Committed without waiting for the WAL
 * flush: only for changes a read re-derives from the certificate row, or
 * that a retry repeats. */
int store_acme_order_set(struct db *db, int64_t order_id, const char *from, const char *status,
    int64_t certificate_id, const char *error) __attribute__((warn_unused_result));

/* ---------- authorizations and challenges ---------- */

/* Deactivates a pending or valid authorization and invalidates its order
 * when that was pending or ready. 1, 0 (not in such a state), -1. */
int store_acme_authz_deactivate(struct db *db, int64_t authz_id)
    __attribute__((warn_unused_result));
/* Deactivates derived authorization `index` of order_id (remembered in
 * the order row) and invalidates the order when it was pending or ready.
 * 1, 0 (no such derived authorization, or already deactivated), -1. */
int store_acme_derived_authz_deactivate(struct db *db, int64_t order_id, int index)
    __attribute__((warn_unused_result));
/* Moves a pending challenge of a pending, unexpired authorization to
 * 'processing'. 1 (the caller hands it to the validator), 0, -1. */
int store_acme_chall_start(struct db *db, int64_t challenge_id)
    __attribute__((warn_unused_result));

/* ---------- certificates ---------- */

/* Certificate with serial `serial_hex` (upper case, no leading zeros):
 * {"id","status","org_id","dept_id","protocol","cert_der" (hex),
 * "not_before","not_after","revoked_at" (unix seconds or null),
 * "of_account" (issued to an order of account_id)}. 1, 0, -1. */
int store_acme_cert_by_serial(struct db *db, const char *serial_hex, int64_t account_id,
    json_t **out) __attribute__((warn_unused_result));

/* ---------- administration (protocols/admin/admin_acme.c) ---------- */

/* EAB key JSON: {"kid","endpoint_id","org_id","dept_id","created_by",
 * "created_at","used_at","revoked_at"} - never the HMAC key. */

/* Creates an EAB key (the caller made kid and the key), 1 with *out, -1. */
int store_acme_eab_create(struct db *db, int64_t endpoint_id, const char *kid,
    const unsigned char *hmac_key, size_t hmac_key_len, int64_t org_id, int64_t dept_id,
    int64_t created_by, json_t **out) __attribute__((warn_unused_result));
/* EAB keys of endpoint_id with id > after, at most limit + 1 (an array), in
 * scope (org_id / dept_id 0: any). 0 or -1. */
int store_acme_eab_list(struct db *db, int64_t endpoint_id, int64_t org_id, int64_t dept_id,
    int64_t after, int limit, json_t **items) __attribute__((warn_unused_result));
/* EAB key `kid` of endpoint_id with its internal "id": 1, 0, -1. */
int store_acme_eab_get(struct db *db, int64_t endpoint_id, const char *kid, json_t **out)
    __attribute__((warn_unused_result));
/* Revokes it (idempotent: an already revoked key keeps its time). 1, 0, -1. */
int store_acme_eab_revoke(struct db *db, int64_t endpoint_id, const char *kid, json_t **out)
    __attribute__((warn_unused_result));

/* Accounts, for the admin API: {"id","endpoint_id","status","org_id",
 * "dept_id","contact","eab_kid","created_at"}; endpoint_id / org_id /
 * dept_id 0: any. 0 or -1. */
int store_acme_accounts_list(struct db *db, int64_t endpoint_id, int64_t org_id,
    int64_t dept_id, int64_t after, int limit, json_t **items)
    __attribute__((warn_unused_result));

/* ---------- retention (daemon/retention.c) ---------- */

/*
 * What one store_acme_retention_prune() call deleted. An order goes with its
 * authorizations and their challenges (in this schema an authorization
 * belongs to exactly one order, and the order object lists them).
 */
struct store_acme_pruned {
	int64_t orders;
	int64_t authzs;
	int64_t challenges;
};

/*
 * Deletes at most `batch` orders past retention, with their authorizations
 * and challenges, in one statement (its own transaction). An order is past
 * retention, with cutoff = now - retention_days:
 *   - never 'processing' (a request held for an administrator);
 *   - its own expiry is before the cutoff, and
 *   - it produced a certificate (issued, revoked, expired): the
 *     certificate's not_after is before the cutoff (until then it can be
 *     downloaded, revoked with the account key, named in RFC 9773
 *     "replaces");
 *   - it was declined by an administrator: the decision is before the cutoff;
 *   - otherwise (pending, ready, invalid, no certificate): nothing more.
 * Certificates and the audit log are never touched. Orders locked by a
 * concurrent transaction (another instance's prune, a validation) are
 * skipped, so concurrent pruners delete disjoint rows. 0 with *out, or -1
 * (logged).
 */
int store_acme_retention_prune(struct db *db, int retention_days, int batch,
    struct store_acme_pruned *out) __attribute__((warn_unused_result));

#endif
