/*
 * store_acme.c: the SQL of the ACME door (store_acme.h).
 *
 * Every ACME request costs few round trips, so every hot statement here is
 * prepared once per connection and run by name (db_exec_prepared(): planning
 * the larger ones costs more than running them), and each function is ONE
 * statement: the nonce is consumed, the account and the object of the
 * request loaded together (and, once per connection, the nonce table's
 * sentinel checked: store_acme_sentinel_check()); an order, its
 * authorizations and their challenges are inserted together through
 * data-modifying CTEs fed by one JSON parameter. An order reads what its
 * certificate row says: that row's INSERT (core/ra.c) and an
 * administrator's decision (migration 003's trigger) move the order.
 *
 * PostgreSQL builds most objects as JSON (json_build_object) and jansson
 * parses it once; the hot ones of the auth statements - the account, the
 * order (order, finalize) and the certificate - come as plain columns that
 * store_acme_auth() turns into the same json_t shapes, which is cheaper on
 * both sides. The door shapes them into RFC 8555 JSON with its URLs. The policy facts of
 * newOrder and finalize (organization, department, profile, delegated
 * domains) are not read here: they come from the per-process cache of
 * core/facts.h, and these statements return only its generation (one row
 * by primary key) so that a change made by any instance is seen.
 *
 * State changes are guarded by the state they leave (WHERE status = ...),
 * so concurrent requests - on one instance or several sharing the database -
 * change an object once.
 */
#include "store_acme.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "db.h"
#include "log.h"
#include "facts.h"
#include "store_json.h"

/* ---------- prepared statements ---------- */

enum store_acme_stmt {
	SA_NONCE_KEY_LOAD,
	SA_NONCE_KEY_ROTATE,
	SA_NONCE_PRUNE,
	SA_NONCE_SENTINEL,
	SA_AUTH,
	SA_AUTH_JWK,
	SA_AUTH_ORDER,
	SA_AUTH_AUTHZ,
	SA_AUTH_DERIVED_AUTHZ,
	SA_AUTH_CHALL,
	SA_AUTH_CERT,
	SA_AUTH_FACTS,
	SA_AUTH_FINALIZE,
	SA_ENDPOINT,
	SA_EAB_LOOKUP,
	SA_ACCOUNT_CREATE,
	SA_ACCOUNT_UPDATE,
	SA_ACCOUNT_KEY_CHANGE,
	SA_ACCOUNT_BY_KEY,
	SA_ORDER_CREATE,
	SA_ORDER_CREATE_REPLACING,
	SA_ORDER_CREATE_DERIVED_AUTHZS,
	SA_NEW_ORDER,
	SA_NEW_ORDER_DERIVED_AUTHZS,
	SA_ORDER_LIST,
	SA_ORDER_SET,
	SA_AUTHZ_DEACTIVATE,
	SA_DERIVED_AUTHZ_DEACTIVATE,
	SA_CHALL_START,
	SA_CERT_BY_SERIAL,
	SA_EAB_CREATE,
	SA_EAB_LIST,
	SA_EAB_GET,
	SA_EAB_REVOKE,
	SA_ACCOUNTS_LIST,
	SA_RETENTION_PRUNE,
	SA__MAX,
};

static const char *const store_acme_stmt_names[SA__MAX] = {
	"enrolld_acme_nonce_key_load",
	"enrolld_acme_nonce_key_rotate",
	"enrolld_acme_nonce_prune",
	"enrolld_acme_nonce_sentinel",
	"enrolld_acme_auth",
	"enrolld_acme_auth_jwk",
	"enrolld_acme_auth_order",
	"enrolld_acme_auth_authz",
	"enrolld_acme_auth_derived_authz",
	"enrolld_acme_auth_chall",
	"enrolld_acme_auth_cert",
	"enrolld_acme_auth_facts",
	"enrolld_acme_auth_finalize",
	"enrolld_acme_endpoint",
	"enrolld_acme_eab_lookup",
	"enrolld_acme_account_create",
	"enrolld_acme_account_update",
	"enrolld_acme_account_key_change",
	"enrolld_acme_account_by_key",
	"enrolld_acme_order_create",
	"enrolld_acme_order_create_replacing",
	"enrolld_acme_order_create_derived_authzs",
	"enrolld_acme_new_order",
	"enrolld_acme_new_order_derived_authzs",
	"enrolld_acme_order_list",
	"enrolld_acme_order_set",
	"enrolld_acme_authz_deactivate",
	"enrolld_acme_derived_authz_deactivate",
	"enrolld_acme_chall_start",
	"enrolld_acme_cert_by_serial",
	"enrolld_acme_eab_create",
	"enrolld_acme_eab_list",
	"enrolld_acme_eab_get",
	"enrolld_acme_eab_revoke",
	"enrolld_acme_accounts_list",
	"enrolld_acme_retention_prune",
};

/* Statements run too rarely to keep prepared on every connection (the
 * connection's table of prepared statements is shared with the other
 * stores): run with db_exec(). */
static bool
store_acme_cold(enum store_acme_stmt stmt)
{
	switch (stmt) {
	case SA_NONCE_KEY_LOAD:
	case SA_NONCE_KEY_ROTATE:
	case SA_NONCE_PRUNE:
	case SA_NONCE_SENTINEL:
	case SA_ACCOUNT_KEY_CHANGE:
	case SA_DERIVED_AUTHZ_DEACTIVATE:
	case SA_ACCOUNT_BY_KEY:
	case SA_EAB_CREATE:
	case SA_EAB_LIST:
	case SA_EAB_GET:
	case SA_EAB_REVOKE:
	case SA_ACCOUNTS_LIST:
	case SA_RETENTION_PRUNE:
		return true;
	default:
		return false;
	}
}

/* Runs statement `stmt` (text `sql`, always the same for one stmt): hot
 * ones prepared once per connection (db_exec_prepared()), cold ones plain.
 * The result (the caller PQclear()s), or NULL after the failure was logged
 * and recorded (db->last_sqlstate, broken connection). */
static PGresult *
store_acme_exec(struct db *db, enum store_acme_stmt stmt, const char *sql, int nparams,
    const char *const *params)
{
	if (store_acme_cold(stmt))
		return db_exec(db, store_acme_stmt_names[stmt], sql, nparams, params);
	return db_exec_prepared(db, store_acme_stmt_names[stmt], sql, nparams, params);
}

/* One row, first column parsed as JSON: 1 with *out, 0 no row or NULL, -1. */
static int
store_acme_json(struct db *db, enum store_acme_stmt stmt, const char *sql, int nparams,
    const char *const *params, json_t **out)
{
	PGresult *res = NULL;
	json_error_t jerr;
	int rc = -1;

	*out = NULL;
	res = store_acme_exec(db, stmt, sql, nparams, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) < 1 || PQnfields(res) < 1 || PQgetisnull(res, 0, 0)) {
		rc = 0;
		goto out;
	}
	*out = json_loadb(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), 0, &jerr);
	if (*out == NULL) {
		log_warnx("json_loadb(%s): %s", store_acme_stmt_names[stmt], jerr.text);
		goto out;
	}
	rc = 1;
out:
	PQclear(res);
	return rc;
}

/* Number of rows a guarded change touched: 1 (or more) -> 1, none -> 0,
 * error -> -1. */
static int
store_acme_changed(struct db *db, enum store_acme_stmt stmt, const char *sql, int nparams,
    const char *const *params)
{
	PGresult *res = NULL;
	int rc;

	res = store_acme_exec(db, stmt, sql, nparams, params);
	if (res == NULL)
		return -1;
	rc = PQntuples(res) > 0 ? 1 : 0;
	PQclear(res);
	return rc;
}

static const char *
store_acme_id(char buf[24], int64_t v)
{
	return store_json_int(buf, v);
}

/* "\x0a1b..." for a bytea text parameter; newly allocated, the caller frees. */
static char *
store_acme_bytea(const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *out = NULL;
	size_t i;

	out = malloc(2 * n + 3);
	if (out == NULL)
		return NULL;
	out[0] = '\\';
	out[1] = 'x';
	for (i = 0; i < n; i++) {
		out[2 + 2 * i] = hex[p[i] >> 4];
		out[3 + 2 * i] = hex[p[i] & 15];
	}
	out[2 + 2 * n] = '\0';
	return out;
}

static int
store_acme_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ---------- the SQL's shared pieces ---------- */

#define SA_TS(expr) STORE_JSON_TS(expr)

#define SA_ACCOUNT_JSON(a)                                                                         \
	"json_build_object('id', " a ".id, 'status', " a ".status, 'org_id', " a ".org_id, "      \
	"'dept_id', " a ".dept_id, 'jwk', " a ".jwk, 'thumbprint', " a ".key_thumbprint, "         \
	"'contact', to_json(" a ".contact), 'tos_agreed', " a ".tos_agreed, 'eab_key_id', " a     \
	".eab_key_id, 'created_at', " SA_TS(a ".created_at") ")"

/* The status an order reads as: expired ones invalid, a pending one ready
 * when every authorization is valid, invalid when one failed. (The
 * validator also writes these; reading them this way keeps an order right
 * even when a validation outcome and the order update are not one
 * transaction.) */
#define SA_ORDER_STATUS(o)                                                                         \
	"CASE WHEN " o ".status IN ('pending', 'ready') AND " o ".expires_at <= now()"             \
	" THEN 'invalid'"                                                                          \
	" WHEN " o ".status = 'pending' AND EXISTS (SELECT 1 FROM acme_authzs z"                   \
	" WHERE z.order_id = " o ".id AND (z.status IN ('invalid', 'deactivated', 'expired',"     \
	" 'revoked') OR (z.status = 'pending' AND z.expires_at <= now()))) THEN 'invalid'"         \
	" WHEN " o ".status = 'pending' AND NOT EXISTS (SELECT 1 FROM acme_authzs z"               \
	" WHERE z.order_id = " o ".id AND z.status <> 'valid') THEN 'ready'"                       \
	" ELSE " o ".status END"

#define SA_AUTHZ_STATUS(z)                                                                         \
	"CASE WHEN " z ".status = 'pending' AND " z ".expires_at <= now() THEN 'expired'"          \
	" ELSE " z ".status END"

#define SA_EAB_JSON(k)                                                                             \
	"json_build_object('id', " k ".id, 'kid', " k ".kid, 'endpoint_id', " k ".endpoint_id,"  \
	" 'org_id', " k ".org_id, 'dept_id', " k ".dept_id, 'created_by', " k ".created_by,"     \
	" 'created_at', " SA_TS(k ".created_at") ", 'used_at', " SA_TS(k ".used_at") ","          \
	" 'revoked_at', " SA_TS(k ".revoked_at") ")"

/* The sentinel row name of a nonce key held in column expression v. */
#define SA_SENTINEL(v) "'~' || left(encode(sha256(" v "), 'hex'), 16)"

/* ---------- nonces ---------- */

/* Loads (or creates) the key: 1 with *out and *sentinel_ok, 0 when a
 * concurrent creation was not yet visible (retry), -1. */
static int
store_acme_nonce_key_load(struct db *db, struct store_acme_nonce_key *out, bool *sentinel_ok)
{
	static const char sql[] =
	    "WITH s AS (INSERT INTO acme_secrets (name, value) VALUES ('nonce', $1::bytea)"
	    " ON CONFLICT (name) DO NOTHING RETURNING value),"
	    " n AS (INSERT INTO acme_nonces (nonce, expires_at)"
	    " SELECT " SA_SENTINEL("s.value") ", 'infinity' FROM s ON CONFLICT (nonce) DO NOTHING)"
	    " SELECT encode(s.value, 'hex'), true, " SA_SENTINEL("s.value") " FROM s"
	    " UNION ALL"
	    " SELECT encode(a.value, 'hex'), EXISTS (SELECT 1 FROM acme_nonces x"
	    " WHERE x.nonce = " SA_SENTINEL("a.value") "), " SA_SENTINEL("a.value")
	    " FROM acme_secrets a WHERE a.name = 'nonce'";
	unsigned char fresh[STORE_ACME_NONCE_KEY_LEN];
	const char *params[1];
	char *fresh_param = NULL;
	PGresult *res = NULL;
	const char *hex;
	size_t i;
	int rc = -1;

	if (RAND_bytes(fresh, sizeof(fresh)) != 1) {
		log_ssl_warnx("RAND_bytes(nonce key)");
		return -1;
	}
	fresh_param = store_acme_bytea(fresh, sizeof(fresh));
	OPENSSL_cleanse(fresh, sizeof(fresh));
	if (fresh_param == NULL)
		return -1;
	params[0] = fresh_param;
	res = store_acme_exec(db, SA_NONCE_KEY_LOAD, sql, 1, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		rc = 0;
		goto out;
	}
	hex = PQgetvalue(res, 0, 0);
	if (strlen(hex) != 2 * STORE_ACME_NONCE_KEY_LEN) {
		log_warnx("store_acme_nonce_key: stored key has the wrong length");
		goto out;
	}
	for (i = 0; i < STORE_ACME_NONCE_KEY_LEN; i++)
		out->key[i] = (unsigned char)(store_acme_hexval(hex[2 * i]) << 4 |
		    store_acme_hexval(hex[2 * i + 1]));
	snprintf(out->sentinel, sizeof(out->sentinel), "%s", PQgetvalue(res, 0, 2));
	*sentinel_ok = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	rc = 1;
out:
	PQclear(res);
	if (fresh_param != NULL) {
		OPENSSL_cleanse(fresh_param, strlen(fresh_param));
		free(fresh_param);
	}
	return rc;
}

int
store_acme_nonce_key(struct db *db, struct store_acme_nonce_key *out)
{
	static const char rotate_sql[] =
	    "WITH u AS (UPDATE acme_secrets SET value = $2::bytea, created_at = now()"
	    " WHERE name = 'nonce' AND value = $1::bytea RETURNING value)"
	    " INSERT INTO acme_nonces (nonce, expires_at)"
	    " SELECT " SA_SENTINEL("u.value") ", 'infinity' FROM u ON CONFLICT (nonce) DO NOTHING";
	unsigned char fresh[STORE_ACME_NONCE_KEY_LEN];
	char *old_param = NULL, *new_param = NULL;
	const char *params[2];
	PGresult *res = NULL;
	bool sentinel_ok = false;
	int attempt, r, rc = -1;

	for (attempt = 0; attempt < 4; attempt++) {
		r = store_acme_nonce_key_load(db, out, &sentinel_ok);
		if (r < 0)
			goto out;
		if (r == 0)
			continue; /* a concurrent first creation: read again */
		if (sentinel_ok) {
			rc = 0;
			goto out;
		}
		/* The used-nonce table was emptied by crash recovery: nonces
		 * of this key could be replayed. Replace the key (once, however
		 * many instances notice at the same time). */
		log_warnx("store_acme_nonce_key: used-nonce table was reset; rotating the key");
		if (RAND_bytes(fresh, sizeof(fresh)) != 1) {
			log_ssl_warnx("RAND_bytes(nonce key)");
			goto out;
		}
		free(old_param);
		free(new_param);
		old_param = store_acme_bytea(out->key, sizeof(out->key));
		new_param = store_acme_bytea(fresh, sizeof(fresh));
		OPENSSL_cleanse(fresh, sizeof(fresh));
		if (old_param == NULL || new_param == NULL)
			goto out;
		params[0] = old_param;
		params[1] = new_param;
		res = store_acme_exec(db, SA_NONCE_KEY_ROTATE, rotate_sql, 2, params);
		if (res == NULL)
			goto out;
		PQclear(res);
		res = NULL;
	}
	log_warnx("store_acme_nonce_key: no usable key after %d attempts", attempt);
out:
	if (rc != 0)
		OPENSSL_cleanse(out, sizeof(*out));
	if (old_param != NULL) {
		OPENSSL_cleanse(old_param, strlen(old_param));
		free(old_param);
	}
	if (new_param != NULL) {
		OPENSSL_cleanse(new_param, strlen(new_param));
		free(new_param);
	}
	return rc;
}

/* ---------- authentication ---------- */

/* $1 nonce, $2 its expiry, $3 endpoint, $4 the account: its id (kid) or
 * its key's thumbprint (jwk, STORE_ACME_OBJ_NONE only); the object
 * statements add $5 public id (not newOrder's: it reads only the policy
 * facts generation, core/facts.h) and, last, the thumbprint of the key the
 * caller holds parsed (SA_AUTH_SELECT).
 *
 * Every statement here must plan the same whatever its parameters: a
 * prepared statement whose generic plan looks costlier than the plans made
 * for its actual parameters is planned afresh on EVERY execution, and
 * planning these costs several times running them (measured). So the
 * occasional prune of expired nonces is a statement of its own, not a
 * "$n AND ..." branch here, and the two ways to name the account are two
 * statements, not one coalesce() of both lookups.
 *
 * The account comes as plain columns (SA_AUTH_SELECT, in the order of
 * enum store_acme_auth_col; all of it, SA_AUTH_ACCOUNT_REST, only for
 * STORE_ACME_OBJ_NONE: only the account routes answer with the account
 * object), the object as JSON text after them. */
/*
 * The nonce is consumed by a plain INSERT: a data-modifying CTE runs to
 * completion whether or not the query reads it, and a nonce used before (by
 * this instance or any other on the database, older versions included: the
 * primary key decides) fails the statement with unique_violation on
 * acme_nonces_pkey, which store_acme_auth() answers as a stale nonce; a
 * concurrent use of the same nonce waits for the first and fails the same
 * way. Nothing else is read or written then. Measured against the former
 * "ON CONFLICT (nonce) DO NOTHING RETURNING 1" read back by EXISTS
 * (callgrind, one backend, libpq, generic plan): 26k fewer instructions per
 * statement, a third of the nonce's cost (no speculative insertion, no
 * extra probe of the primary key, no CTE scan). The expiry $2 (as every
 * time of these statements, whole seconds since the epoch) is a bigint
 * parameter: int8in on Bind, not float8in's strtod (~660 instructions a
 * value), and to_timestamp() reads it through the implicit cast to double
 * precision, the same value (callgrind, as above: 0.5-1k fewer per
 * statement).
 */
#define SA_AUTH_WITH                                                                               \
	"WITH n AS (INSERT INTO acme_nonces (nonce, expires_at)"                                   \
	" VALUES ($1, to_timestamp($2::bigint)))"

/* What every request needs of the account; the key's JWK only when its
 * thumbprint is not `held` (a text parameter: the thumbprint of the key the
 * caller already holds parsed, '' for none), so a request whose account key
 * is cached transfers and parses no JWK, while a key changed meanwhile (by
 * any instance) comes back with the row that says so. The first column,
 * SA_COL_NONCE_FRESH, is true: a row means the nonce was fresh
 * (SA_AUTH_WITH). */
#define SA_AUTH_SELECT(held)                                                                       \
	" SELECT true, a.id, a.status, a.org_id, a.dept_id, a.key_thumbprint,"                    \
	" CASE WHEN a.key_thumbprint = " held "::text THEN NULL ELSE a.jwk::text END"

/* The rest of the account, for the requests that may answer with the
 * account object (STORE_ACME_OBJ_NONE). */
#define SA_AUTH_ACCOUNT_REST                                                                       \
	", to_json(a.contact)::text, a.tos_agreed, a.eab_key_id, " SA_TS("a.created_at")

/* One row, with or without an account. */
#define SA_AUTH_FROM_KID                                                                           \
	" FROM (VALUES (1)) AS one LEFT JOIN acme_accounts a"                                      \
	" ON a.id = $4::bigint AND a.endpoint_id = $3::bigint"

#define SA_AUTH_FROM_JWK                                                                           \
	" FROM (VALUES (1)) AS one LEFT JOIN acme_accounts a"                                      \
	" ON a.endpoint_id = $3::bigint AND a.key_thumbprint = $4::text"

enum store_acme_auth_col {
	SA_COL_NONCE_FRESH,
	SA_COL_ID,
	SA_COL_STATUS,
	SA_COL_ORG_ID,
	SA_COL_DEPT_ID,
	SA_COL_THUMBPRINT,
	SA_COL_JWK,
	/* STORE_ACME_OBJ_NONE: SA_AUTH_ACCOUNT_REST */
	SA_COL_CONTACT,
	SA_COL_TOS_AGREED,
	SA_COL_EAB_KEY_ID,
	SA_COL_CREATED_AT,
	/* the other objects */
	SA_COL_OBJECT = SA_COL_JWK + 1,
	SA_COL_GENERATION,	/* FACTS, FINALIZE */
	/* STORE_ACME_OBJ_CERT */
	SA_COL_CERT_ACCOUNT_ID = SA_COL_OBJECT,
	SA_COL_CERT_STATUS,
	SA_COL_CERT_DER,
	/* STORE_ACME_OBJ_ORDER (SA_ORDER_COLS) */
	SA_COL_ORDER_ID = SA_COL_OBJECT,
	SA_COL_ORDER_PUBLIC_ID,
	SA_COL_ORDER_ACCOUNT_ID,
	SA_COL_ORDER_STATUS,
	SA_COL_ORDER_IDENTIFIERS,
	SA_COL_ORDER_PROFILE_ID,
	SA_COL_ORDER_PROFILE,
	SA_COL_ORDER_TERM_DAYS,
	SA_COL_ORDER_REPLACES,
	SA_COL_ORDER_NOT_BEFORE,
	SA_COL_ORDER_NOT_AFTER,
	SA_COL_ORDER_EXPIRES,
	SA_COL_ORDER_ERROR,
	SA_COL_ORDER_CERTIFICATE_ID,
	SA_COL_ORDER_AUTHZS,
	SA_COL_ORDER_GENERATION, /* FINALIZE */
	/* STORE_ACME_OBJ_DERIVED_AUTHZ */
	SA_COL_DERIVED_ORDER_ID = SA_COL_OBJECT,
	SA_COL_DERIVED_ACCOUNT_ID,
	SA_COL_DERIVED_DEACTIVATED,
	SA_COL_DERIVED_TYPE,
	SA_COL_DERIVED_VALUE,
	SA_COL_DERIVED_EXPIRES,
};

/* Whole seconds since the epoch of a timestamptz SQL expression (NULL stays
 * NULL), for C to format (store_acme_column_ts()): cheaper than to_char(). */
#define SA_EPOCH(expr) "floor(date_part('epoch', " expr "))::bigint"

/* SA_ORDER_STATUS of order o, for the statements reading one order: the
 * authorizations are asked (migration 012's functions, the same conditions)
 * only for a pending order that has authorization rows, so an order whose
 * authorizations are derived (migration 009) costs no subquery on
 * acme_authzs: PostgreSQL initializes every subquery of a statement at each
 * execution, taken or not; a function call in a branch not taken costs
 * nothing. Measured (callgrind, one backend, finalize's statement, derived
 * order): 492k -> 409k instructions per execution. */
#define SA_ORDER_STATUS_READ                                                                       \
	"CASE WHEN o.status IN ('pending', 'ready') AND o.expires_at <= now() THEN 'invalid'"     \
	" WHEN o.status = 'pending' AND NOT o.authzs_derived THEN acme_order_authz_status(o.id)"   \
	" WHEN o.status = 'pending' THEN 'ready' ELSE o.status END"

/* The order with public id $5 as plain columns (SA_COL_ORDER_*, read by
 * store_acme_auth_order() into the order shape of store_acme.h), not as
 * json_build_object() text for jansson to parse: SA_ORDER_COLS after the
 * account's columns, SA_ORDER_JOIN after SA_AUTH_FROM_KID. The authorizations'
 * public ids (base64url: no commas) come comma-separated, NULL when they are
 * derived from the order (migration 009: no rows). A finalized order
 * reads what its certificate row says: every change of that row moves the
 * order in the same transaction (triggers of migration 003), so reading
 * writes nothing. The profile's name comes by a scalar subquery, not a
 * join: profiles are never deleted (migration 008), so it is always there,
 * and one index scan returning one column costs 17k fewer instructions per
 * execution than a nested loop over a scan of the whole profile row
 * (callgrind, one backend, finalize's statement). */
#define SA_ORDER_COLS_NAMED(profile_name)                                                          \
	", o.id, o.public_id, o.account_id, " SA_ORDER_STATUS_READ ", o.identifiers::text,"        \
	" o.profile_id, " profile_name ", o.term_days,"                                            \
	" o.replaces, " SA_EPOCH("o.not_before") ","                                               \
	" " SA_EPOCH("o.not_after") ", " SA_EPOCH("o.expires_at") ", o.error::text,"              \
	" o.certificate_id, CASE WHEN NOT o.authzs_derived THEN acme_order_authz_ids(o.id) END"
#define SA_ORDER_COLS                                                                              \
	SA_ORDER_COLS_NAMED("(SELECT p.name FROM profiles p WHERE p.id = o.profile_id)")
#define SA_ORDER_JOIN " LEFT JOIN acme_orders o ON o.public_id = $5"

/* By object: the statement whose account is named by id (kid). */
static const char *const store_acme_auth_sql[STORE_ACME_OBJ__MAX] = {
	/* with the JWK always: the account object shows it ("key") */
	[STORE_ACME_OBJ_NONE] = SA_AUTH_WITH SA_AUTH_SELECT("''") SA_AUTH_ACCOUNT_REST
	    SA_AUTH_FROM_KID,
	[STORE_ACME_OBJ_ORDER] = SA_AUTH_WITH SA_AUTH_SELECT("$6") SA_ORDER_COLS SA_AUTH_FROM_KID
	    SA_ORDER_JOIN,
	/* With the facts generation (core/facts.h). A ready order has no
	 * certificate row yet (the row's INSERT moves its order on: ra.c), so
	 * the idempotency lookup of ra_enroll() is answered by the order's
	 * status and not run here. Without the profile's name (NULL): the
	 * caller takes it from the facts of the generation this statement
	 * reads (acme_finalize()), as fresh as the subquery's (a rename bumps
	 * the generation, migration 007) and 29k instructions cheaper per
	 * execution (callgrind, one backend: 387.7k -> 358.5k). */
	[STORE_ACME_OBJ_FINALIZE] = SA_AUTH_WITH SA_AUTH_SELECT("$6")
	    SA_ORDER_COLS_NAMED("NULL::text")
	    ", " FACTS_GENERATION_SQL "::text" SA_AUTH_FROM_KID SA_ORDER_JOIN,
	[STORE_ACME_OBJ_AUTHZ] = SA_AUTH_WITH SA_AUTH_SELECT("$6")
	    ", (SELECT json_build_object('id', z.id, 'public_id', z.public_id,"
	    " 'order_id', z.order_id, 'account_id', z.account_id,"
	    " 'status', " SA_AUTHZ_STATUS("z") ", 'type', z.id_type, 'value', z.id_value,"
	    " 'wildcard', z.wildcard, 'expires', " SA_TS("z.expires_at") ","
	    " 'challenges', (SELECT coalesce(json_agg(json_build_object('id', c.id,"
	    " 'public_id', c.public_id, 'type', c.type, 'token', c.token, 'status', c.status,"
	    " 'validated', " SA_TS("c.validated_at") ", 'error', c.error) ORDER BY c.id),"
	    " '[]'::json) FROM acme_challenges c WHERE c.authz_id = z.id))"
	    " FROM acme_authzs z WHERE z.public_id = $5)::text" SA_AUTH_FROM_KID,
	/* Authorization $6 (an identifier's index) of the order with public
	 * id $5, when that order's authorizations are derived (migration
	 * 009), as plain columns (SA_COL_DERIVED_*) that
	 * store_acme_auth_derived_authz() shapes like a stored authorization
	 * born valid, plus the order's id and the index; no 'id'. $7 the
	 * cached key's thumbprint. Built in SQL (json_build_object, to_char,
	 * the identifier looked up five times) and parsed again by jansson,
	 * the statement cost 42k more instructions per execution (callgrind,
	 * one backend). */
	[STORE_ACME_OBJ_DERIVED_AUTHZ] = SA_AUTH_WITH SA_AUTH_SELECT("$7")
	    ", o.id, o.account_id, $6::smallint = ANY (o.authzs_deactivated),"
	    " o.identifiers -> $6::int ->> 'type', o.identifiers -> $6::int ->> 'value', "
	    SA_EPOCH("o.expires_at") SA_AUTH_FROM_KID
	    " LEFT JOIN acme_orders o ON o.public_id = $5 AND o.authzs_derived AND $6::int >= 0"
	    " AND $6::int < jsonb_array_length(o.identifiers)",
	[STORE_ACME_OBJ_CHALL] = SA_AUTH_WITH SA_AUTH_SELECT("$6")
	    ", (SELECT json_build_object('id', c.id, 'public_id', c.public_id,"
	    " 'account_id', z.account_id, 'authz_id', z.id, 'authz_public_id', z.public_id,"
	    " 'authz_status', " SA_AUTHZ_STATUS("z") ", 'type', c.type, 'token', c.token,"
	    " 'status', c.status, 'validated', " SA_TS("c.validated_at") ", 'error', c.error)"
	    " FROM acme_challenges c JOIN acme_authzs z ON z.id = c.authz_id"
	    " WHERE c.public_id = $5)::text" SA_AUTH_FROM_KID,
	/* as plain columns (SA_COL_CERT_*), not JSON: the certificate's hex
	 * is most of the row, and neither side then escapes nor parses it.
	 * The order names its certificate row (certificate_id: set in the
	 * statement that inserts the row, ra.c, and by every older version
	 * since migration 003), so the row comes by its primary key, not by
	 * 'acme-order:' || o.id on the idempotency key: 8.8k fewer
	 * instructions per execution (callgrind, one backend). */
	[STORE_ACME_OBJ_CERT] = SA_AUTH_WITH SA_AUTH_SELECT("$6")
	    ", o.account_id, c.status, encode(c.cert_der, 'hex')" SA_AUTH_FROM_KID
	    " LEFT JOIN (acme_orders o JOIN certificates c ON c.id = o.certificate_id)"
	    " ON o.public_id = $5",
	/* newOrder: no object, the facts generation (core/facts.h) */
	[STORE_ACME_OBJ_FACTS] = SA_AUTH_WITH SA_AUTH_SELECT("$5")
	    ", NULL::text, " FACTS_GENERATION_SQL "::text" SA_AUTH_FROM_KID,
};

static const enum store_acme_stmt store_acme_auth_stmt[STORE_ACME_OBJ__MAX] = {
	[STORE_ACME_OBJ_NONE] = SA_AUTH,
	[STORE_ACME_OBJ_ORDER] = SA_AUTH_ORDER,
	[STORE_ACME_OBJ_FINALIZE] = SA_AUTH_FINALIZE,
	[STORE_ACME_OBJ_AUTHZ] = SA_AUTH_AUTHZ,
	[STORE_ACME_OBJ_DERIVED_AUTHZ] = SA_AUTH_DERIVED_AUTHZ,
	[STORE_ACME_OBJ_CHALL] = SA_AUTH_CHALL,
	[STORE_ACME_OBJ_CERT] = SA_AUTH_CERT,
	[STORE_ACME_OBJ_FACTS] = SA_AUTH_FACTS,
};

/* The account named by its key (jwk): newAccount, revokeCert. */
static const char store_acme_auth_jwk_sql[] =
    SA_AUTH_WITH SA_AUTH_SELECT("''") SA_AUTH_ACCOUNT_REST SA_AUTH_FROM_JWK;

/* Parses column col of row 0 as JSON into *out (NULL stays NULL). 0 or -1. */
static int
store_acme_column_json(PGresult *res, int col, const char *what, json_t **out)
{
	json_error_t jerr;

	*out = NULL;
	if (PQgetisnull(res, 0, col))
		return 0;
	*out = json_loadb(PQgetvalue(res, 0, col), (size_t)PQgetlength(res, 0, col), 0, &jerr);
	if (*out == NULL) {
		log_warnx("json_loadb(%s): %s", what, jerr.text);
		return -1;
	}
	return 0;
}

/* Column col of row 0 as a JSON integer, or JSON null. */
static json_t *
store_acme_column_id(PGresult *res, int col)
{
	if (PQgetisnull(res, 0, col))
		return json_null();
	return json_integer((json_int_t)strtoll(PQgetvalue(res, 0, col), NULL, 10));
}

/* Column col of row 0 as a JSON string, or JSON null. */
static json_t *
store_acme_column_str(PGresult *res, int col)
{
	if (PQgetisnull(res, 0, col))
		return json_null();
	return json_stringn(PQgetvalue(res, 0, col), (size_t)PQgetlength(res, 0, col));
}

/* The account of the auth statement's row 0 (store_acme.h's shape; "jwk"
 * only when the statement returned it, the rest of the account only when
 * `full`) into *out; NULL when no account was found. 0 or -1. */
static int
store_acme_auth_account(PGresult *res, bool full, json_t **out)
{
	json_t *account = NULL, *jwk = NULL, *contact = NULL;
	int rc = -1;

	*out = NULL;
	if (PQgetisnull(res, 0, SA_COL_ID))
		return 0;
	if (store_acme_column_json(res, SA_COL_JWK, "acme_auth jwk", &jwk) != 0)
		goto out;
	/* "o" steals each reference, also when json_pack fails */
	account = json_pack("{s:o, s:o, s:o, s:o, s:o}",
	    "id", store_acme_column_id(res, SA_COL_ID),
	    "status", store_acme_column_str(res, SA_COL_STATUS),
	    "org_id", store_acme_column_id(res, SA_COL_ORG_ID),
	    "dept_id", store_acme_column_id(res, SA_COL_DEPT_ID),
	    "thumbprint", store_acme_column_str(res, SA_COL_THUMBPRINT));
	if (account == NULL)
		goto nomem;
	if (jwk != NULL && json_object_set_new(account, "jwk", jwk) != 0) {
		jwk = NULL;
		goto nomem;
	}
	jwk = NULL;
	if (full) {
		if (store_acme_column_json(res, SA_COL_CONTACT, "acme_auth contact", &contact) != 0)
			goto out;
		if (json_object_set_new(account, "contact",
			contact != NULL ? contact : json_null()) != 0 ||
		    json_object_set_new(account, "tos_agreed",
			json_boolean(strcmp(PQgetvalue(res, 0, SA_COL_TOS_AGREED), "t") == 0)) != 0 ||
		    json_object_set_new(account, "eab_key_id",
			store_acme_column_id(res, SA_COL_EAB_KEY_ID)) != 0 ||
		    json_object_set_new(account, "created_at",
			store_acme_column_str(res, SA_COL_CREATED_AT)) != 0) {
			contact = NULL;
			goto nomem;
		}
		contact = NULL;
	}
	*out = account;
	account = NULL;
	rc = 0;
	goto out;
nomem:
	log_warnx("json_pack(acme_auth account): out of memory");
out:
	json_decref(account);
	json_decref(jwk);
	json_decref(contact);
	return rc;
}

/* Column col of row 0 (SA_EPOCH seconds) as STORE_JSON_TS's RFC 3339 text,
 * or JSON null. */
static json_t *
store_acme_column_ts(PGresult *res, int col)
{
	char text[64];
	struct tm tm;
	time_t t;

	if (PQgetisnull(res, 0, col))
		return json_null();
	t = (time_t)strtoll(PQgetvalue(res, 0, col), NULL, 10);
	if (gmtime_r(&t, &tm) == NULL)
		return NULL;
	snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return json_string(text);
}

/* The comma-separated list in column col of row 0 as a JSON array of
 * strings ([] for ''), or JSON null for NULL. */
static json_t *
store_acme_column_list(PGresult *res, int col)
{
	json_t *list = NULL;
	const char *p = PQgetvalue(res, 0, col), *comma;

	if (PQgetisnull(res, 0, col))
		return json_null();
	list = json_array();
	if (list == NULL || *p == '\0')
		return list;
	for (;;) {
		comma = strchr(p, ',');
		if (json_array_append_new(list,
			json_stringn(p, comma != NULL ? (size_t)(comma - p) : strlen(p))) != 0) {
			json_decref(list);
			return NULL;
		}
		if (comma == NULL)
			return list;
		p = comma + 1;
	}
}

/* The ORDER (and FINALIZE) object of the auth statement's row 0
 * (SA_ORDER_COLS; the order shape of store_acme.h) into *out; NULL when
 * there is none. 0 or -1. */
static int
store_acme_auth_order(PGresult *res, json_t **out)
{
	static const struct {
		const char *key;
		int col;
		json_t *(*read)(PGresult *, int);
	} members[] = {
		{ "id", SA_COL_ORDER_ID, store_acme_column_id },
		{ "public_id", SA_COL_ORDER_PUBLIC_ID, store_acme_column_str },
		{ "account_id", SA_COL_ORDER_ACCOUNT_ID, store_acme_column_id },
		{ "status", SA_COL_ORDER_STATUS, store_acme_column_str },
		{ "profile_id", SA_COL_ORDER_PROFILE_ID, store_acme_column_id },
		{ "profile", SA_COL_ORDER_PROFILE, store_acme_column_str },
		{ "term_days", SA_COL_ORDER_TERM_DAYS, store_acme_column_id },
		{ "replaces", SA_COL_ORDER_REPLACES, store_acme_column_str },
		{ "not_before", SA_COL_ORDER_NOT_BEFORE, store_acme_column_ts },
		{ "not_after", SA_COL_ORDER_NOT_AFTER, store_acme_column_ts },
		{ "expires", SA_COL_ORDER_EXPIRES, store_acme_column_ts },
		{ "certificate_id", SA_COL_ORDER_CERTIFICATE_ID, store_acme_column_id },
		{ "authzs", SA_COL_ORDER_AUTHZS, store_acme_column_list },
	};
	json_t *order = NULL, *identifiers = NULL, *error = NULL;
	int rc_identifiers, rc_error;
	size_t i;

	*out = NULL;
	if (PQgetisnull(res, 0, SA_COL_ORDER_ID))
		return 0;
	order = json_object();
	if (order == NULL)
		goto nomem;
	for (i = 0; i < sizeof(members) / sizeof(members[0]); i++)
		if (json_object_set_new(order, members[i].key, members[i].read(res, members[i].col)) != 0)
			goto nomem;
	if (store_acme_column_json(res, SA_COL_ORDER_IDENTIFIERS, "acme_auth order identifiers",
		&identifiers) != 0 ||
	    store_acme_column_json(res, SA_COL_ORDER_ERROR, "acme_auth order error", &error) != 0)
		goto fail;
	/* json_object_set_new() takes the reference also when it fails */
	rc_identifiers = json_object_set_new(order, "identifiers",
	    identifiers != NULL ? identifiers : json_null());
	rc_error = json_object_set_new(order, "error", error != NULL ? error : json_null());
	identifiers = error = NULL;
	if (rc_identifiers != 0 || rc_error != 0)
		goto nomem;
	*out = order;
	return 0;
nomem:
	log_warnx("json_object(acme_auth order): out of memory");
fail:
	json_decref(identifiers);
	json_decref(error);
	json_decref(order);
	return -1;
}

/* The CERT object of the auth statement's row 0 (store_acme.h's shape)
 * into *out; NULL when there is none. 0 or -1. */
static int
store_acme_auth_cert(PGresult *res, json_t **out)
{
	*out = NULL;
	if (PQgetisnull(res, 0, SA_COL_CERT_ACCOUNT_ID))
		return 0;
	/* "o" steals each reference, also when json_pack fails; the hex of
	 * encode() is ASCII: no UTF-8 check needed */
	*out = json_pack("{s:o, s:o, s:o}",
	    "account_id", store_acme_column_id(res, SA_COL_CERT_ACCOUNT_ID),
	    "cert_status", store_acme_column_str(res, SA_COL_CERT_STATUS),
	    "cert_der", PQgetisnull(res, 0, SA_COL_CERT_DER) ? json_null()
		: json_stringn_nocheck(PQgetvalue(res, 0, SA_COL_CERT_DER),
		      (size_t)PQgetlength(res, 0, SA_COL_CERT_DER)));
	if (*out == NULL) {
		log_warnx("json_pack(acme_auth cert): out of memory");
		return -1;
	}
	return 0;
}

/* The derived authorization (SA_COL_DERIVED_*) of index `index` into *out,
 * the shape the former json_build_object() gave it: a wildcard's value
 * without its "*.", challenges none; NULL when the statement found no such
 * order. 0 or -1. */
static int
store_acme_auth_derived_authz(PGresult *res, int index, json_t **out)
{
	const char *value = NULL;
	bool wildcard = false;

	*out = NULL;
	if (PQgetisnull(res, 0, SA_COL_DERIVED_ORDER_ID))
		return 0;
	if (!PQgetisnull(res, 0, SA_COL_DERIVED_VALUE)) {
		value = PQgetvalue(res, 0, SA_COL_DERIVED_VALUE);
		wildcard = strncmp(value, "*.", 2) == 0;
	}
	/* "o" steals each reference, also when json_pack fails */
	*out = json_pack("{s:o, s:i, s:o, s:s, s:o, s:o, s:o, s:o, s:[]}",
	    "order_id", store_acme_column_id(res, SA_COL_DERIVED_ORDER_ID),
	    "index", index,
	    "account_id", store_acme_column_id(res, SA_COL_DERIVED_ACCOUNT_ID),
	    "status", strcmp(PQgetvalue(res, 0, SA_COL_DERIVED_DEACTIVATED), "t") == 0
		? "deactivated" : "valid",
	    "type", store_acme_column_str(res, SA_COL_DERIVED_TYPE),
	    "value", value == NULL ? json_null() : json_string(wildcard ? value + 2 : value),
	    "wildcard", value == NULL ? json_null() : json_boolean(wildcard),
	    "expires", store_acme_column_ts(res, SA_COL_DERIVED_EXPIRES),
	    "challenges");
	if (*out == NULL) {
		log_warnx("json_pack(acme_auth derived authz): out of memory");
		return -1;
	}
	return 0;
}

/*
 * Is the sentinel row of the nonce key still in acme_nonces? Only crash
 * recovery empties the UNLOGGED table, and crash recovery terminates every
 * backend: a sentinel seen on a connection stays there for as long as that
 * connection lives. So the check runs once per connection (and sentinel),
 * before the connection accepts its first nonce of that key, not in every
 * request's statement. Each worker thread owns its connection; the last
 * check is remembered per thread, by the connection's process-unique id.
 * 1 present, 0 gone, -1.
 */
static int
store_acme_sentinel_check(struct db *db, const char *sentinel)
{
	static _Thread_local uint64_t checked_conn;
	static _Thread_local char checked_sentinel[STORE_ACME_SENTINEL_LEN];
	static const char sql[] = "SELECT EXISTS (SELECT 1 FROM acme_nonces WHERE nonce = $1)";
	const char *params[1] = { sentinel };
	PGresult *res = NULL;
	int rc = -1;

	if (db->conn_id != 0 && checked_conn == db->conn_id &&
	    strcmp(checked_sentinel, sentinel) == 0)
		return 1;
	res = store_acme_exec(db, SA_NONCE_SENTINEL, sql, 1, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		log_warnx("PQexecParams(acme_nonce_sentinel): %d rows", PQntuples(res));
		goto out;
	}
	rc = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	if (rc == 1) {
		checked_conn = db->conn_id;
		snprintf(checked_sentinel, sizeof(checked_sentinel), "%s", sentinel);
	}
out:
	PQclear(res);
	return rc;
}

/*
 * What every statement consuming a nonce runs first: the sentinel check
 * (store_acme_sentinel_check()) and, when in->prune, the prune of expired
 * nonce rows. 1 go on; 0 with out->sentinel_ok false (nothing consumed,
 * nothing loaded); -1.
 */
static int
store_acme_auth_begin(struct db *db, const struct store_acme_auth_in *in,
    struct store_acme_auth_out *out)
{
	static const char prune_sql[] = "DELETE FROM acme_nonces WHERE expires_at < now()";
	PGresult *res = NULL;
	int r;

	r = store_acme_sentinel_check(db, in->sentinel);
	if (r < 0)
		return -1;
	if (r == 0) {
		out->sentinel_ok = false;
		return 0;
	}
	out->sentinel_ok = true;
	if (in->prune) {
		res = store_acme_exec(db, SA_NONCE_PRUNE, prune_sql, 0, NULL);
		if (res == NULL)
			return -1;
		PQclear(res);
	}
	return 1;
}

/* True when the failed statement was refused because its nonce is in
 * acme_nonces already (SA_AUTH_WITH: the primary key), and for nothing
 * else: another unique key of the same statement is a server failure. */
static bool
store_acme_nonce_reused(const struct db *db)
{
	return strcmp(db->last_sqlstate, "23505") == 0 &&
	    strcmp(db->last_constraint, "acme_nonces_pkey") == 0;
}

int
store_acme_auth(struct db *db, const struct store_acme_auth_in *in, struct store_acme_auth_out *out)
{
	char expires[24], endpoint[24], account[24], index[16];
	const char *params[7];
	enum store_acme_object obj = in->object;
	enum store_acme_stmt stmt;
	const char *sql;
	PGresult *res = NULL;
	int nparams = 4, rc = -1, r;

	memset(out, 0, sizeof(*out));
	if ((unsigned)obj >= STORE_ACME_OBJ__MAX)
		return -1;
	if (in->account_id == 0 && (in->thumbprint == NULL || obj != STORE_ACME_OBJ_NONE)) {
		log_warnx("store_acme_auth: the account must be named by id, or by key alone");
		return -1;
	}
	r = store_acme_auth_begin(db, in, out);
	if (r <= 0)
		return r;
	snprintf(expires, sizeof(expires), "%" PRId64, in->nonce_expires);
	params[0] = in->nonce;
	params[1] = expires;
	params[2] = store_acme_id(endpoint, in->endpoint_id);
	if (in->account_id != 0) {
		params[3] = store_acme_id(account, in->account_id);
		stmt = store_acme_auth_stmt[obj];
		sql = store_acme_auth_sql[obj];
	} else {
		params[3] = in->thumbprint;
		stmt = SA_AUTH_JWK;
		sql = store_acme_auth_jwk_sql;
	}
	if (obj != STORE_ACME_OBJ_NONE && obj != STORE_ACME_OBJ_FACTS) {
		params[nparams++] = in->public_id != NULL ? in->public_id : "";
		if (obj == STORE_ACME_OBJ_DERIVED_AUTHZ) {
			snprintf(index, sizeof(index), "%d", in->authz_index);
			params[nparams++] = index;
		}
	}
	if (in->account_id != 0 && obj != STORE_ACME_OBJ_NONE)
		params[nparams++] = in->key_thumbprint != NULL ? in->key_thumbprint : "";
	res = store_acme_exec(db, stmt, sql, nparams, params);
	if (res == NULL) {
		/* the nonce was used before (SA_AUTH_WITH): nothing loaded */
		if (store_acme_nonce_reused(db)) {
			out->nonce_fresh = false;
			rc = 0;
		}
		goto out;
	}
	if (PQntuples(res) != 1) {
		log_warnx("PQexecPrepared(acme_auth): %d rows", PQntuples(res));
		goto out;
	}
	out->nonce_fresh = strcmp(PQgetvalue(res, 0, SA_COL_NONCE_FRESH), "t") == 0;
	if (store_acme_auth_account(res, obj == STORE_ACME_OBJ_NONE, &out->account) != 0)
		goto out;
	if (obj == STORE_ACME_OBJ_CERT) {
		if (store_acme_auth_cert(res, &out->object) != 0)
			goto out;
	} else if (obj == STORE_ACME_OBJ_DERIVED_AUTHZ) {
		if (store_acme_auth_derived_authz(res, in->authz_index, &out->object) != 0)
			goto out;
	} else if (obj == STORE_ACME_OBJ_ORDER || obj == STORE_ACME_OBJ_FINALIZE) {
		if (store_acme_auth_order(res, &out->object) != 0)
			goto out;
	} else if (obj != STORE_ACME_OBJ_NONE &&
	    store_acme_column_json(res, SA_COL_OBJECT, "acme_auth object", &out->object) != 0)
		goto out;
	if (obj == STORE_ACME_OBJ_FACTS || obj == STORE_ACME_OBJ_FINALIZE)
		out->facts_generation = strtoll(PQgetvalue(res, 0,
		    obj == STORE_ACME_OBJ_FACTS ? SA_COL_GENERATION : SA_COL_ORDER_GENERATION),
		    NULL, 10);
	rc = 0;
out:
	if (rc != 0) {
		json_decref(out->account);
		json_decref(out->object);
		out->account = NULL;
		out->object = NULL;
	}
	PQclear(res);
	return rc;
}

/* ---------- endpoints ---------- */

int
store_acme_endpoint(struct db *db, const char *name, json_t **out)
{
	static const char sql[] =
	    "SELECT json_build_object('id', e.id, 'name', e.name, 'org_id', e.org_id,"
	    " 'dept_id', e.dept_id, 'default_profile_id', e.default_profile_id,"
	    " 'settings', e.settings, 'profiles', (SELECT coalesce(json_agg(json_build_object("
	    "'id', p.id, 'name', p.name, 'description', p.description, 'active', p.active,"
	    " 'terms_days', p.terms_days) ORDER BY p.id), '[]'::json) FROM profiles p"
	    " WHERE p.id = ANY (e.profile_ids)))::text"
	    " FROM endpoints e WHERE e.protocol = 'acme' AND e.name = $1 AND e.active";
	const char *params[1] = { name };

	return store_acme_json(db, SA_ENDPOINT, sql, 1, params, out);
}

/* ---------- accounts ---------- */

int
store_acme_eab_lookup(struct db *db, int64_t endpoint_id, const char *kid, json_t **out)
{
	static const char sql[] =
	    "SELECT json_build_object('id', k.id, 'org_id', k.org_id, 'dept_id', k.dept_id,"
	    " 'hmac_key', encode(k.hmac_key, 'hex'), 'revoked', k.revoked_at IS NOT NULL)::text"
	    " FROM acme_eab_keys k WHERE k.endpoint_id = $1::bigint AND k.kid = $2";
	char endpoint[24];
	const char *params[2];

	params[0] = store_acme_id(endpoint, endpoint_id);
	params[1] = kid;
	return store_acme_json(db, SA_EAB_LOOKUP, sql, 2, params, out);
}

int
store_acme_account_create(struct db *db, const struct store_acme_account_new *in, json_t **out)
{
	static const char sql[] =
	    "WITH a AS (INSERT INTO acme_accounts (endpoint_id, key_thumbprint, jwk, contact,"
	    " tos_agreed, org_id, dept_id, eab_key_id)"
	    " VALUES ($1::bigint, $2, $3::jsonb, ARRAY(SELECT json_array_elements_text($4::json)),"
	    " $5::boolean, $6::bigint, $7::bigint, $8::bigint)"
	    " ON CONFLICT (endpoint_id, key_thumbprint) DO NOTHING RETURNING *),"
	    " k AS (UPDATE acme_eab_keys SET used_at = coalesce(used_at, now())"
	    " WHERE id = $8::bigint AND EXISTS (SELECT 1 FROM a)),"
	    " l AS (INSERT INTO audit_log (actor, action, object_type, object_id, org_id, dept_id,"
	    " outcome, details) SELECT 'acme:' || a.id, 'acme.account.create', 'acme_account',"
	    " a.id, a.org_id, a.dept_id, 'ok', jsonb_build_object('endpoint_id', a.endpoint_id,"
	    " 'eab_key_id', a.eab_key_id) FROM a)"
	    " SELECT " SA_ACCOUNT_JSON("a") "::text FROM a";
	char endpoint[24], org[24], dept[24], eab[24];
	const char *params[8];

	params[0] = store_acme_id(endpoint, in->endpoint_id);
	params[1] = in->thumbprint;
	params[2] = in->jwk;
	params[3] = in->contact != NULL ? in->contact : "[]";
	params[4] = in->tos_agreed ? "true" : "false";
	params[5] = store_acme_id(org, in->org_id);
	params[6] = store_acme_id(dept, in->dept_id);
	params[7] = store_acme_id(eab, in->eab_key_id);
	return store_acme_json(db, SA_ACCOUNT_CREATE, sql, 8, params, out);
}

int
store_acme_account_update(struct db *db, int64_t account_id, const char *contact, bool set_tos,
    bool tos_agreed, bool deactivate, json_t **out)
{
	static const char sql[] =
	    "WITH a AS (UPDATE acme_accounts SET"
	    " contact = CASE WHEN $2::json IS NULL THEN contact"
	    " ELSE ARRAY(SELECT json_array_elements_text($2::json)) END,"
	    " tos_agreed = CASE WHEN $3::boolean THEN $4::boolean ELSE tos_agreed END,"
	    " status = CASE WHEN $5::boolean THEN 'deactivated' ELSE status END"
	    " WHERE id = $1::bigint AND status = 'valid' RETURNING *),"
	    " l AS (INSERT INTO audit_log (actor, action, object_type, object_id, org_id, dept_id,"
	    " outcome) SELECT 'acme:' || a.id, CASE WHEN $5::boolean"
	    " THEN 'acme.account.deactivate' ELSE 'acme.account.update' END, 'acme_account',"
	    " a.id, a.org_id, a.dept_id, 'ok' FROM a)"
	    " SELECT " SA_ACCOUNT_JSON("a") "::text FROM a";
	char account[24];
	const char *params[5];

	params[0] = store_acme_id(account, account_id);
	params[1] = contact;
	params[2] = set_tos ? "true" : "false";
	params[3] = tos_agreed ? "true" : "false";
	params[4] = deactivate ? "true" : "false";
	return store_acme_json(db, SA_ACCOUNT_UPDATE, sql, 5, params, out);
}

int
store_acme_account_by_key(struct db *db, int64_t endpoint_id, const char *thumbprint, int64_t *id)
{
	static const char sql[] = "SELECT id FROM acme_accounts"
				  " WHERE endpoint_id = $1::bigint AND key_thumbprint = $2";
	char endpoint[24];
	const char *params[2];
	PGresult *res = NULL;
	int rc = -1;

	*id = 0;
	params[0] = store_acme_id(endpoint, endpoint_id);
	params[1] = thumbprint;
	res = store_acme_exec(db, SA_ACCOUNT_BY_KEY, sql, 2, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		rc = 1;
	} else {
		rc = 0;
	}
	PQclear(res);
	return rc;
}

int
store_acme_account_key_change(struct db *db, int64_t endpoint_id, int64_t account_id,
    const char *old_thumbprint, const char *new_thumbprint, const char *new_jwk, json_t **out,
    int64_t *other_id)
{
	static const char sql[] =
	    "WITH a AS (UPDATE acme_accounts SET key_thumbprint = $4, jwk = $5::jsonb"
	    " WHERE id = $2::bigint AND endpoint_id = $1::bigint AND key_thumbprint = $3"
	    " AND status = 'valid' RETURNING *),"
	    " l AS (INSERT INTO audit_log (actor, action, object_type, object_id, org_id, dept_id,"
	    " outcome) SELECT 'acme:' || a.id, 'acme.account.key_change', 'acme_account', a.id,"
	    " a.org_id, a.dept_id, 'ok' FROM a)"
	    " SELECT " SA_ACCOUNT_JSON("a") "::text FROM a";
	char endpoint[24], account[24], sqlstate[6];
	const char *params[5];
	int rc;

	*other_id = 0;
	params[0] = store_acme_id(endpoint, endpoint_id);
	params[1] = store_acme_id(account, account_id);
	params[2] = old_thumbprint;
	params[3] = new_thumbprint;
	params[4] = new_jwk;
	rc = store_acme_json(db, SA_ACCOUNT_KEY_CHANGE, sql, 5, params, out);
	if (rc < 0 && strcmp(db->last_sqlstate, "23505") == 0) {
		memcpy(sqlstate, db->last_sqlstate, sizeof(sqlstate));
		if (store_acme_account_by_key(db, endpoint_id, new_thumbprint, other_id) < 0)
			*other_id = 0;
		memcpy(db->last_sqlstate, sqlstate, sizeof(sqlstate));
	}
	return rc;
}

/* ---------- orders ---------- */

/*
 * Every order create commits without waiting for its WAL flush: a CTE sets
 * synchronous_commit off for the statement's own transaction, and the final
 * SELECT reads it (a SELECT CTE runs only when read). The trade-off: a crash
 * within a WAL writer cycle (wal_writer_delay) after newOrder answered can
 * lose that order, its authorizations and a replacing order's claim, and the
 * client gets 404 for URLs it was given. Nothing was issued from such an
 * order: the certificate INSERT of its finalize commits synchronously, and
 * its flush covers every earlier WAL record, the order's included. Measured
 * (pgbench, backend schedstat, 5 alternating runs of 3000): 106.0 -> 92.2 us
 * backend CPU per order create, +5.1 us in the WAL writer, which flushes
 * for several at once.
 */
#define SA_ORDER_ASYNC_COMMIT "s AS (SELECT set_config('synchronous_commit', 'off', true) AS v),"
#define SA_ORDER_ASYNC_COMMIT_READ "(SELECT v FROM s) IS NOT NULL"

/* The order ($1-$9) of a newOrder that replaces nothing, inserted as o;
 * derived: SQL true when its authorizations are derived from it (no rows:
 * migration 009), else false. */
#define SA_ORDER_INSERT(derived)                                                                   \
	" o AS (INSERT INTO acme_orders (public_id, account_id, status, identifiers, profile_id,"  \
	" term_days, replaces, not_after, expires_at, authzs_derived)"                             \
	" VALUES ($1, $2::bigint, $3, $4::jsonb, $5::bigint, $6::int, $7,"                         \
	" to_timestamp($8::bigint), to_timestamp($9::bigint), " derived ")"                        \
	" RETURNING id, account_id, expires_at)"

/* The authorizations (parameter p, JSON text) and challenges of the order
 * inserted as o. */
#define SA_ORDER_AUTHZS_OF(p)                                                                      \
	" x AS (SELECT * FROM json_to_recordset(" p "::json) AS x(public_id text, status text,"    \
	" type text, value text, wildcard boolean, challenges json)),"                             \
	" z AS (INSERT INTO acme_authzs (public_id, order_id, account_id, status, id_type,"        \
	" id_value, wildcard, expires_at)"                                                         \
	" SELECT x.public_id, o.id, o.account_id, x.status, x.type, x.value, x.wildcard,"         \
	" o.expires_at FROM o CROSS JOIN x RETURNING id, public_id),"                              \
	" c AS (INSERT INTO acme_challenges (public_id, authz_id, type, token)"                    \
	" SELECT ch.public_id, z.id, ch.type, ch.token FROM x JOIN z ON z.public_id = x.public_id" \
	" CROSS JOIN LATERAL json_to_recordset(x.challenges) AS ch(public_id text, type text,"    \
	" token text))"
#define SA_ORDER_CREATE_AUTHZS SA_ORDER_AUTHZS_OF("$10")

/*
 * The replacing newOrder (RFC 9773 §5), $11 the replaced certificate's
 * serial:
 *   r  the certificate, when issued to an order of this account ($2), and
 *      whether it names one of the new order's identifiers ($4; both sides
 *      canonical: certificates.names 'dns:x' / 'ip:x', checked at issuance
 *      against the order's identifiers);
 *   f  releases the claim of the order of that certificate that reads
 *      invalid (SA_ORDER_STATUS: stored so - declined, deactivated, refused
 *      at finalize - or expired unfinalized, or an authorization failed).
 *      The INSERT
 *      reads f's row count, so f runs first, and the claim it released (a
 *      tuple this statement deleted) no longer conflicts;
 *   o  the order, claiming the certificate; ON CONFLICT DO NOTHING when a
 *      live order holds the claim (a concurrent INSERT of the same claim is
 *      waited for: exactly one of them is stored).
 * Returns the order id (NULL: not stored) and r's "shares" (NULL: no such
 * certificate of the account).
 */
#define SA_ORDER_CREATE_REPLACING_SQL                                                              \
	"WITH " SA_ORDER_ASYNC_COMMIT                                                              \
	" r AS (SELECT c.id, EXISTS (SELECT 1 FROM jsonb_array_elements($4::jsonb) i"             \
	" WHERE (i->>'type') || ':' || (i->>'value') = ANY (c.names)) AS shares"                   \
	" FROM certificates c JOIN acme_orders po ON po.id = CASE WHEN c.idempotency_key"         \
	" LIKE 'acme-order:%' THEN substr(c.idempotency_key, 12)::bigint END"                      \
	" WHERE c.serial = $11 AND c.cert_der IS NOT NULL AND po.account_id = $2::bigint),"       \
	" f AS (UPDATE acme_orders p SET replaces_certificate_id = NULL"                           \
	" WHERE p.replaces_certificate_id = (SELECT r.id FROM r WHERE r.shares)"                  \
	" AND " SA_ORDER_STATUS("p") " = 'invalid' RETURNING 1),"                                 \
	" o AS (INSERT INTO acme_orders (public_id, account_id, status, identifiers,"             \
	" profile_id, term_days, replaces, replaces_certificate_id, not_after, expires_at)"        \
	" SELECT $1, $2::bigint, $3, $4::jsonb, $5::bigint, $6::int, $7, r.id,"                    \
	" to_timestamp($8::bigint), to_timestamp($9::bigint)"                                      \
	" FROM r WHERE r.shares AND (SELECT count(*) FROM f) >= 0"                                 \
	" ON CONFLICT (replaces_certificate_id) WHERE replaces_certificate_id IS NOT NULL"         \
	" DO NOTHING RETURNING id, account_id, expires_at),"                                       \
	SA_ORDER_CREATE_AUTHZS                                                                     \
	" SELECT (SELECT o.id FROM o), (SELECT r.shares FROM r)"                                   \
	" WHERE " SA_ORDER_ASYNC_COMMIT_READ

int
store_acme_order_create(struct db *db, const struct store_acme_order_new *in, int64_t *order_id,
    enum store_acme_replace_refusal *refusal)
{
	/* An order that replaces nothing: the plain INSERT. */
	static const char sql[] =
	    "WITH " SA_ORDER_ASYNC_COMMIT SA_ORDER_INSERT("false") "," SA_ORDER_CREATE_AUTHZS
	    " SELECT o.id FROM o WHERE " SA_ORDER_ASYNC_COMMIT_READ;
	/* Every name already validated (the common case of a DCV-validated
	 * domain): the order alone, its authorizations derived from it. */
	static const char derived_sql[] =
	    "WITH " SA_ORDER_ASYNC_COMMIT SA_ORDER_INSERT("true")
	    " SELECT o.id FROM o WHERE " SA_ORDER_ASYNC_COMMIT_READ;
	static const char replacing_sql[] = SA_ORDER_CREATE_REPLACING_SQL;
	bool replacing = in->replaces_serial != NULL;
	char account[24], profile[24], term[16], not_after[24], expires[24];
	const char *params[11];
	PGresult *res = NULL;
	int rc = -1;

	*order_id = 0;
	*refusal = STORE_ACME_REPLACE_UNKNOWN;
	snprintf(term, sizeof(term), "%d", in->term_days);
	snprintf(not_after, sizeof(not_after), "%" PRId64, in->not_after);
	snprintf(expires, sizeof(expires), "%" PRId64, in->expires);
	params[0] = in->public_id;
	params[1] = store_acme_id(account, in->account_id);
	params[2] = in->status;
	params[3] = in->identifiers;
	params[4] = store_acme_id(profile, in->profile_id);
	params[5] = term;
	params[6] = in->replaces;
	params[7] = in->not_after != 0 ? not_after : NULL;
	params[8] = expires;
	params[9] = in->authzs;
	params[10] = in->replaces_serial;
	if (replacing)
		res = store_acme_exec(db, SA_ORDER_CREATE_REPLACING, replacing_sql, 11, params);
	else if (in->authzs_derived)
		res = store_acme_exec(db, SA_ORDER_CREATE_DERIVED_AUTHZS, derived_sql, 9, params);
	else
		res = store_acme_exec(db, SA_ORDER_CREATE, sql, 10, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		log_warnx("PQexecPrepared(acme_order_create): %d rows", PQntuples(res));
	} else if (!PQgetisnull(res, 0, 0)) {
		*order_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		rc = 1;
	} else if (replacing && PQnfields(res) == 2) {
		if (PQgetisnull(res, 0, 1))
			*refusal = STORE_ACME_REPLACE_UNKNOWN;
		else if (strcmp(PQgetvalue(res, 0, 1), "t") == 0)
			*refusal = STORE_ACME_REPLACE_TAKEN;
		else
			*refusal = STORE_ACME_REPLACE_DISJOINT;
		rc = 0;
	} else {
		log_warnx("PQexecPrepared(acme_order_create): no order id");
	}
	PQclear(res);
	return rc;
}

/*
 * newOrder in one round trip (store_acme_new_order()). $1-$5 as the auth
 * statement of STORE_ACME_OBJ_FACTS (nonce, its expiry, endpoint, account
 * id, the held key's thumbprint); $6 org, $7 dept (NULL: none), $8 facts
 * generation: what the caller decided with; $9-$15 the order (public id,
 * status, identifiers, profile, term, not_after, expires), $16 its
 * authorizations (not when derived). The nonce INSERT fails the whole
 * statement when the nonce was used (SA_AUTH_WITH): nothing written. a is
 * the account (or a row of NULLs) with the current generation (the one row
 * of policy_generation, joined ON true: see FACTS_GENERATION_SQL); the order
 * is inserted only when a says the decision still holds: valid, the held
 * key, the same organization and department, the same generation. The row
 * has the auth statement's columns (SA_COL_*: account, NULL object,
 * generation) and the new order's id (NULL: not stored) last. The order's
 * commit does not wait for its WAL flush, as store_acme_order_create()'s
 * (SA_ORDER_ASYNC_COMMIT); the nonce table is unlogged either way.
 */
#define SA_NEW_ORDER_SQL(derived, authzs)                                                          \
	SA_AUTH_WITH "," SA_ORDER_ASYNC_COMMIT                                                     \
	" a AS (SELECT a.id, a.status, a.org_id, a.dept_id, a.key_thumbprint,"                     \
	" CASE WHEN a.key_thumbprint = $5::text THEN NULL ELSE a.jwk::text END AS jwk,"          \
	" g.generation FROM (VALUES (1)) AS one LEFT JOIN acme_accounts a"                         \
	" ON a.id = $4::bigint AND a.endpoint_id = $3::bigint"                                     \
	" LEFT JOIN policy_generation g ON true),"                                                 \
	" o AS (INSERT INTO acme_orders (public_id, account_id, status, identifiers, profile_id,"  \
	" term_days, not_after, expires_at, authzs_derived)"                                       \
	" SELECT $9, a.id, $10, $11::jsonb, $12::bigint, $13::int,"                                \
	" to_timestamp($14::bigint), to_timestamp($15::bigint), " derived                          \
	" FROM a WHERE a.status = 'valid' AND a.key_thumbprint = $5::text"                         \
	" AND a.org_id IS NOT DISTINCT FROM $6::bigint AND a.dept_id IS NOT DISTINCT FROM $7::bigint" \
	" AND a.generation = $8::bigint RETURNING id, account_id, expires_at)"                    \
	authzs                                                                                     \
	" SELECT true, a.id, a.status, a.org_id, a.dept_id, a.key_thumbprint, a.jwk, NULL::text,"  \
	" a.generation::text, (SELECT o.id FROM o) FROM a WHERE " SA_ORDER_ASYNC_COMMIT_READ

/* The column of the new order's id, after the auth statement's. */
#define SA_COL_NEW_ORDER_ID (SA_COL_GENERATION + 1)

int
store_acme_new_order(struct db *db, const struct store_acme_auth_in *auth,
    const struct store_acme_new_order_guard *guard, const struct store_acme_order_new *order,
    struct store_acme_auth_out *out, int64_t *order_id)
{
	static const char sql[] = SA_NEW_ORDER_SQL("false", "," SA_ORDER_AUTHZS_OF("$16"));
	static const char derived_sql[] = SA_NEW_ORDER_SQL("true", "");
	char expires[24], endpoint[24], account[24], org[24], dept[24], generation[24];
	char profile[24], term[16], not_after[24], order_expires[24];
	const char *params[16];
	PGresult *res = NULL;
	int rc = -1, r;

	memset(out, 0, sizeof(*out));
	*order_id = 0;
	if (auth->account_id == 0 || auth->key_thumbprint == NULL ||
	    auth->key_thumbprint[0] == '\0' || order->replaces_serial != NULL ||
	    guard->facts_generation <= 0) {
		log_warnx("store_acme_new_order: needs an account by id, its held key, a "
			  "generation, and no replaced certificate");
		return -1;
	}
	r = store_acme_auth_begin(db, auth, out);
	if (r <= 0)
		return r;
	snprintf(expires, sizeof(expires), "%" PRId64, auth->nonce_expires);
	snprintf(generation, sizeof(generation), "%" PRId64, guard->facts_generation);
	snprintf(term, sizeof(term), "%d", order->term_days);
	snprintf(not_after, sizeof(not_after), "%" PRId64, order->not_after);
	snprintf(order_expires, sizeof(order_expires), "%" PRId64, order->expires);
	params[0] = auth->nonce;
	params[1] = expires;
	params[2] = store_acme_id(endpoint, auth->endpoint_id);
	params[3] = store_acme_id(account, auth->account_id);
	params[4] = auth->key_thumbprint;
	params[5] = store_acme_id(org, guard->org_id);
	params[6] = store_acme_id(dept, guard->dept_id);
	params[7] = generation;
	params[8] = order->public_id;
	params[9] = order->status;
	params[10] = order->identifiers;
	params[11] = store_acme_id(profile, order->profile_id);
	params[12] = term;
	params[13] = order->not_after != 0 ? not_after : NULL;
	params[14] = order_expires;
	params[15] = order->authzs;
	if (order->authzs_derived)
		res = store_acme_exec(db, SA_NEW_ORDER_DERIVED_AUTHZS, derived_sql, 15, params);
	else
		res = store_acme_exec(db, SA_NEW_ORDER, sql, 16, params);
	if (res == NULL) {
		/* the nonce was used before (SA_AUTH_WITH): nothing written; a
		 * clash of a new order's random public ids (also 23505) is a
		 * server failure, not the client's nonce */
		if (store_acme_nonce_reused(db)) {
			out->nonce_fresh = false;
			rc = 0;
		}
		goto out;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != SA_COL_NEW_ORDER_ID + 1) {
		log_warnx("PQexecPrepared(acme_new_order): %d rows", PQntuples(res));
		goto out;
	}
	out->nonce_fresh = strcmp(PQgetvalue(res, 0, SA_COL_NONCE_FRESH), "t") == 0;
	if (store_acme_auth_account(res, false, &out->account) != 0)
		goto out;
	if (!PQgetisnull(res, 0, SA_COL_GENERATION))
		out->facts_generation = strtoll(PQgetvalue(res, 0, SA_COL_GENERATION), NULL, 10);
	if (!PQgetisnull(res, 0, SA_COL_NEW_ORDER_ID))
		*order_id = strtoll(PQgetvalue(res, 0, SA_COL_NEW_ORDER_ID), NULL, 10);
	rc = 0;
out:
	if (rc != 0) {
		json_decref(out->account);
		out->account = NULL;
	}
	PQclear(res);
	return rc;
}

int
store_acme_order_list(struct db *db, int64_t account_id, int64_t before, int limit, json_t **out)
{
	static const char sql[] =
	    "SELECT json_build_object('items', coalesce(json_agg(json_build_object('id', x.id,"
	    " 'public_id', x.public_id) ORDER BY x.id DESC), '[]'::json))::text"
	    " FROM (SELECT o.id, o.public_id FROM acme_orders o WHERE o.account_id = $1::bigint"
	    " AND ($2::bigint IS NULL OR o.id < $2::bigint) AND o.status <> 'invalid'"
	    " AND NOT (o.status IN ('pending', 'ready') AND o.expires_at <= now())"
	    " ORDER BY o.id DESC LIMIT $3::int) x";
	char account[24], before_text[24], limit_text[16];
	const char *params[3];

	snprintf(limit_text, sizeof(limit_text), "%d", limit + 1);
	params[0] = store_acme_id(account, account_id);
	params[1] = store_acme_id(before_text, before);
	params[2] = limit_text;
	return store_acme_json(db, SA_ORDER_LIST, sql, 3, params, out) < 0 ? -1 : 0;
}

int
store_acme_order_set(struct db *db, int64_t order_id, const char *from, const char *status,
    int64_t certificate_id, const char *error)
{
	/* Committed asynchronously (synchronous_commit off for this statement's
	 * transaction only): used for a policy refusal (ready -> invalid), which
	 * a client whose order a crash left 'ready' repeats by finalizing
	 * again. */
	static const char sql[] =
	    "WITH s AS (SELECT set_config('synchronous_commit', 'off', true) AS v)"
	    " UPDATE acme_orders SET status = $3, certificate_id = coalesce($4::bigint,"
	    " certificate_id), error = $5::jsonb"
	    " WHERE id = $1::bigint AND status = ANY ($2::text[])"
	    " AND (SELECT v FROM s) IS NOT NULL RETURNING id";
	char order[24], cert[24];
	const char *params[5];

	params[0] = store_acme_id(order, order_id);
	params[1] = from;
	params[2] = status;
	params[3] = store_acme_id(cert, certificate_id);
	params[4] = error;
	return store_acme_changed(db, SA_ORDER_SET, sql, 5, params);
}

/* ---------- authorizations and challenges ---------- */

int
store_acme_authz_deactivate(struct db *db, int64_t authz_id)
{
	static const char sql[] =
	    "WITH z AS (UPDATE acme_authzs SET status = 'deactivated'"
	    " WHERE id = $1::bigint AND status IN ('pending', 'valid') RETURNING order_id),"
	    " o AS (UPDATE acme_orders SET status = 'invalid'"
	    " WHERE id IN (SELECT order_id FROM z) AND status IN ('pending', 'ready'))"
	    " SELECT 1 FROM z";
	char authz[24];
	const char *params[1];

	params[0] = store_acme_id(authz, authz_id);
	return store_acme_changed(db, SA_AUTHZ_DEACTIVATE, sql, 1, params);
}

int
store_acme_derived_authz_deactivate(struct db *db, int64_t order_id, int index)
{
	/* Guarded by the state it leaves: an index not yet deactivated. */
	static const char sql[] =
	    "UPDATE acme_orders SET authzs_deactivated = array_append(authzs_deactivated,"
	    " $2::smallint), status = CASE WHEN status IN ('pending', 'ready') THEN 'invalid'"
	    " ELSE status END"
	    " WHERE id = $1::bigint AND authzs_derived AND $2::smallint >= 0"
	    " AND $2::smallint < jsonb_array_length(identifiers)"
	    " AND NOT coalesce($2::smallint = ANY (authzs_deactivated), false) RETURNING id";
	char order[24], index_text[16];
	const char *params[2];

	snprintf(index_text, sizeof(index_text), "%d", index);
	params[0] = store_acme_id(order, order_id);
	params[1] = index_text;
	return store_acme_changed(db, SA_DERIVED_AUTHZ_DEACTIVATE, sql, 2, params);
}

int
store_acme_chall_start(struct db *db, int64_t challenge_id)
{
	static const char sql[] =
	    "UPDATE acme_challenges c SET status = 'processing' FROM acme_authzs z"
	    " WHERE c.id = $1::bigint AND c.status = 'pending' AND z.id = c.authz_id"
	    " AND z.status = 'pending' AND z.expires_at > now() RETURNING c.id";
	char chall[24];
	const char *params[1];

	params[0] = store_acme_id(chall, challenge_id);
	return store_acme_changed(db, SA_CHALL_START, sql, 1, params);
}

/* ---------- certificates ---------- */

int
store_acme_cert_by_serial(struct db *db, const char *serial_hex, int64_t account_id,
    json_t **out)
{
	static const char sql[] =
	    "SELECT json_build_object('id', c.id, 'status', c.status, 'org_id', c.org_id,"
	    " 'dept_id', c.dept_id, 'protocol', c.protocol,"
	    " 'cert_der', encode(c.cert_der, 'hex'),"
	    " 'not_before', extract(epoch FROM c.not_before)::bigint,"
	    " 'not_after', extract(epoch FROM c.not_after)::bigint,"
	    " 'revoked_at', extract(epoch FROM c.revoked_at)::bigint,"
	    " 'of_account', $2::bigint IS NOT NULL AND EXISTS (SELECT 1 FROM acme_orders o"
	    " WHERE o.id = CASE WHEN c.idempotency_key LIKE 'acme-order:%'"
	    " THEN substr(c.idempotency_key, 12)::bigint END AND o.account_id = $2::bigint))::text"
	    " FROM certificates c WHERE c.serial = $1 AND c.cert_der IS NOT NULL";
	char account[24];
	const char *params[2];

	params[0] = serial_hex;
	params[1] = store_acme_id(account, account_id);
	return store_acme_json(db, SA_CERT_BY_SERIAL, sql, 2, params, out);
}

/* ---------- administration ---------- */

int
store_acme_eab_create(struct db *db, int64_t endpoint_id, const char *kid,
    const unsigned char *hmac_key, size_t hmac_key_len, int64_t org_id, int64_t dept_id,
    int64_t created_by, json_t **out)
{
	static const char sql[] =
	    "INSERT INTO acme_eab_keys AS k (kid, hmac_key, endpoint_id, org_id, dept_id,"
	    " created_by) VALUES ($1, $2::bytea, $3::bigint, $4::bigint, $5::bigint, $6::bigint)"
	    " RETURNING " SA_EAB_JSON("k") "::text";
	char endpoint[24], org[24], dept[24], admin[24];
	char *key_param = NULL;
	const char *params[6];
	int rc;

	*out = NULL;
	key_param = store_acme_bytea(hmac_key, hmac_key_len);
	if (key_param == NULL)
		return -1;
	params[0] = kid;
	params[1] = key_param;
	params[2] = store_acme_id(endpoint, endpoint_id);
	params[3] = store_acme_id(org, org_id);
	params[4] = store_acme_id(dept, dept_id);
	params[5] = store_acme_id(admin, created_by);
	rc = store_acme_json(db, SA_EAB_CREATE, sql, 6, params, out);
	OPENSSL_cleanse(key_param, strlen(key_param));
	free(key_param);
	return rc == 1 ? 1 : -1;
}

int
store_acme_eab_list(struct db *db, int64_t endpoint_id, int64_t org_id, int64_t dept_id,
    int64_t after, int limit, json_t **items)
{
	static const char sql[] =
	    "SELECT coalesce(json_agg(j ORDER BY id), '[]'::json)::text FROM ("
	    "SELECT k.id, " SA_EAB_JSON("k") " AS j FROM acme_eab_keys k"
	    " WHERE k.endpoint_id = $1::bigint AND ($2::bigint IS NULL OR k.org_id = $2::bigint)"
	    " AND ($3::bigint IS NULL OR k.dept_id = $3::bigint) AND k.id > $4::bigint"
	    " ORDER BY k.id LIMIT $5::int) x";
	char endpoint[24], org[24], dept[24], after_text[24], limit_text[16];
	const char *params[5];
	int r;

	snprintf(after_text, sizeof(after_text), "%" PRId64, after);
	snprintf(limit_text, sizeof(limit_text), "%d", limit + 1);
	params[0] = store_acme_id(endpoint, endpoint_id);
	params[1] = store_acme_id(org, org_id);
	params[2] = store_acme_id(dept, dept_id);
	params[3] = after_text;
	params[4] = limit_text;
	r = store_acme_json(db, SA_EAB_LIST, sql, 5, params, items);
	if (r == 0)
		*items = json_array();
	return r < 0 || *items == NULL ? -1 : 0;
}

int
store_acme_eab_get(struct db *db, int64_t endpoint_id, const char *kid, json_t **out)
{
	static const char sql[] = "SELECT " SA_EAB_JSON("k") "::text FROM acme_eab_keys k"
				  " WHERE k.endpoint_id = $1::bigint AND k.kid = $2";
	char endpoint[24];
	const char *params[2];

	params[0] = store_acme_id(endpoint, endpoint_id);
	params[1] = kid;
	return store_acme_json(db, SA_EAB_GET, sql, 2, params, out);
}

int
store_acme_eab_revoke(struct db *db, int64_t endpoint_id, const char *kid, json_t **out)
{
	static const char sql[] =
	    "UPDATE acme_eab_keys k SET revoked_at = coalesce(revoked_at, now())"
	    " WHERE k.endpoint_id = $1::bigint AND k.kid = $2 RETURNING " SA_EAB_JSON("k") "::text";
	char endpoint[24];
	const char *params[2];

	params[0] = store_acme_id(endpoint, endpoint_id);
	params[1] = kid;
	return store_acme_json(db, SA_EAB_REVOKE, sql, 2, params, out);
}

int
store_acme_accounts_list(struct db *db, int64_t endpoint_id, int64_t org_id, int64_t dept_id,
    int64_t after, int limit, json_t **items)
{
	static const char sql[] =
	    "SELECT coalesce(json_agg(j ORDER BY id), '[]'::json)::text FROM ("
	    "SELECT a.id, json_build_object('id', a.id, 'endpoint_id', a.endpoint_id,"
	    " 'status', a.status, 'org_id', a.org_id, 'dept_id', a.dept_id,"
	    " 'contact', to_json(a.contact), 'eab_kid', k.kid,"
	    " 'created_at', " SA_TS("a.created_at") ") AS j"
	    " FROM acme_accounts a LEFT JOIN acme_eab_keys k ON k.id = a.eab_key_id"
	    " WHERE ($1::bigint IS NULL OR a.endpoint_id = $1::bigint)"
	    " AND ($2::bigint IS NULL OR a.org_id = $2::bigint)"
	    " AND ($3::bigint IS NULL OR a.dept_id = $3::bigint) AND a.id > $4::bigint"
	    " ORDER BY a.id LIMIT $5::int) x";
	char endpoint[24], org[24], dept[24], after_text[24], limit_text[16];
	const char *params[5];
	int r;

	snprintf(after_text, sizeof(after_text), "%" PRId64, after);
	snprintf(limit_text, sizeof(limit_text), "%d", limit + 1);
	params[0] = store_acme_id(endpoint, endpoint_id);
	params[1] = store_acme_id(org, org_id);
	params[2] = store_acme_id(dept, dept_id);
	params[3] = after_text;
	params[4] = limit_text;
	r = store_acme_json(db, SA_ACCOUNTS_LIST, sql, 5, params, items);
	if (r == 0)
		*items = json_array();
	return r < 0 || *items == NULL ? -1 : 0;
}

/* ---------- retention ---------- */

/*
 * $1 retention days, $2 batch. The cutoff is an initplan (computed once).
 * The created_at + term_days condition skips, without looking up the
 * certificate, a valid order whose certificate cannot be past the cutoff:
 * it was issued after the order was created, for term_days (a certificate
 * capped by its issuer's expiry ends earlier: its order is kept a little
 * longer, never deleted early). Measured on 120k orders (76k kept): a pass
 * that finds nothing costs 180 ms with the certificate looked up for every
 * row, 33 ms with this test, the cutoff computed once and a sequential scan
 * (314k kept orders: 125-250 ms; a batch of 1000 deletions: about 50 ms).
 * A plain scan, no ORDER BY: every batch deletes what it
 * finds, so the next batch starts over without those rows; no new index
 * (one on expires_at would not skip the valid orders kept for their
 * certificates, and every order INSERT would pay for it).
 *
 * Children first in the CTEs; the foreign keys are checked at the end of
 * the statement, when all three deletes are done.
 */
#define SA_RETENTION_CUTOFF "(SELECT now() - make_interval(days => $1::int))"

int
store_acme_retention_prune(struct db *db, int retention_days, int batch,
    struct store_acme_pruned *out)
{
	static const char sql[] =
	    "WITH o AS (SELECT o.id FROM acme_orders o"
	    " LEFT JOIN certificates c ON c.id = o.certificate_id"
	    " WHERE o.expires_at < " SA_RETENTION_CUTOFF " AND o.status <> 'processing'"
	    " AND (o.status <> 'valid' OR o.created_at + make_interval(days => o.term_days) < "
	    SA_RETENTION_CUTOFF ")"
	    " AND CASE WHEN c.cert_der IS NOT NULL THEN c.not_after < " SA_RETENTION_CUTOFF
	    " WHEN c.id IS NOT NULL THEN c.status = 'declined' AND c.updated_at < "
	    SA_RETENTION_CUTOFF
	    " ELSE o.status <> 'valid' END"
	    " LIMIT $2::int FOR UPDATE OF o SKIP LOCKED),"
	    " z AS (SELECT z.id FROM acme_authzs z WHERE z.order_id IN (SELECT id FROM o)),"
	    " dc AS (DELETE FROM acme_challenges c WHERE c.authz_id IN (SELECT id FROM z)"
	    " RETURNING 1),"
	    " dz AS (DELETE FROM acme_authzs z WHERE z.id IN (SELECT id FROM z) RETURNING 1),"
	    " d AS (DELETE FROM acme_orders x WHERE x.id IN (SELECT id FROM o) RETURNING 1)"
	    " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM dz),"
	    " (SELECT count(*) FROM dc)";
	char days[16], limit[16];
	const char *params[2] = { days, limit };
	PGresult *res = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	snprintf(days, sizeof(days), "%d", retention_days);
	snprintf(limit, sizeof(limit), "%d", batch);
	res = store_acme_exec(db, SA_RETENTION_PRUNE, sql, 2, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) != 1 || PQnfields(res) != 3) {
		log_warnx("PQexecParams(acme_retention_prune): %d rows", PQntuples(res));
		goto out;
	}
	out->orders = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	out->authzs = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	out->challenges = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	rc = 0;
out:
	PQclear(res);
	return rc;
}
