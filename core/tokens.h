/*
 * tokens.h: administrator bearer tokens.
 *
 * A token is "enr_" followed by 43 base64url characters (32 random bytes, no
 * padding). Only its SHA-256 is stored (admin_tokens.token_hash); the token
 * itself is shown once, to whoever created it, and never logged.
 *
 * tokens_bootstrap() makes the first master administrator and its token on a
 * fresh database; the daemon calls it at start.
 */
#ifndef ENROLLD_TOKENS_H
#define ENROLLD_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct db;
struct store_page;

#define TOKENS_PREFIX "enr_"
#define TOKENS_LEN 47      /* strlen("enr_") + 43 */
#define TOKENS_BUF_SIZE 48 /* TOKENS_LEN + NUL */
#define TOKENS_HASH_LEN 32 /* SHA-256 */

/* Writes a new random token into `token`. 0, or -1 when the CSPRNG fails. */
int tokens_generate(char token[TOKENS_BUF_SIZE]) __attribute__((warn_unused_result));
/* True when `token` has the shape of a token (prefix, length, alphabet). */
bool tokens_well_formed(const char *token);
/* SHA-256 of the token text. 0, or -1 (logged). */
int tokens_hash(const char *token, unsigned char hash[TOKENS_HASH_LEN])
    __attribute__((warn_unused_result));

/* Who a valid token belongs to, as the admins row says. */
struct tokens_principal {
	int64_t token_id;
	int64_t admin_id;
	char role[8];         /* "mrao", "rao", "drao" */
	int64_t org_id;       /* 0: none */
	int64_t dept_id;      /* 0: none */
	char cert_types[64];  /* comma-separated cert type names */
	char privileges[128]; /* comma-separated privilege names */
};

/* Looks the token up in one round trip (active admin, token neither revoked
 * nor expired; last_used_at refreshed at most once a minute) and compares the
 * stored hash in constant time. Returns 1 with *out, 0 when the token is not
 * valid, -1 on a database error. */
int tokens_authenticate(struct db *db, const char *token, struct tokens_principal *out)
    __attribute__((warn_unused_result));

/* When no active MRAO exists: creates one (login "admin", or "admin-<n>" when
 * that login is taken by an inactive admin; every cert type and privilege)
 * and a token for it, written to `token` (len >= TOKENS_BUF_SIZE), and
 * returns 1. Returns 0 when an active MRAO already exists, -1 on error.
 * Safe when several instances start at once (advisory lock). */
int tokens_bootstrap(struct db *db, char *token, size_t len) __attribute__((warn_unused_result));

/* Inserts a new token for admin_id within the caller's transaction.
 * description and expires_at (RFC 3339, checked by the caller) may be NULL.
 * Returns 0 with the token text in `token` and *created = {"id",
 * "expires_at"} (new reference), or -1. */
int tokens_create(struct db *db, int64_t admin_id, const char *description, const char *expires_at,
                  char token[TOKENS_BUF_SIZE], json_t **created)
    __attribute__((warn_unused_result));

/* Token JSON (never the secret): {"id", "admin_id", "description",
 * "created_at", "expires_at", "revoked_at", "last_used_at"}. */

/* Tokens of admin_id, one page (see store_json.h). 0 with *items, or -1. */
int tokens_list(struct db *db, int64_t admin_id, const struct store_page *page, json_t **items)
    __attribute__((warn_unused_result));
/* Token token_id of admin_id: 1 with *out, 0 absent, -1 on error. */
int tokens_get(struct db *db, int64_t admin_id, int64_t token_id, json_t **out)
    __attribute__((warn_unused_result));
/* Revokes token_id now. Returns 1 with *out (the revoked token), 0 when it
 * was already revoked (or is absent), -1 on error. */
int tokens_revoke(struct db *db, int64_t token_id, json_t **out)
    __attribute__((warn_unused_result));

#endif
