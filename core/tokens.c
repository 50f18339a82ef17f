/*
 * tokens.c: administrator bearer tokens (tokens.h): generation, hashing,
 * authentication in one round trip, the first-start bootstrap of a master
 * administrator, and the admin_tokens rows behind /api/v1/admins/{id}/tokens.
 *
 * The token text lives only in the caller's buffer and in the one response
 * that shows it; the database and the logs see its SHA-256 at most.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "db.h"
#include "log.h"
#include "store_json.h"
#include "tokens.h"

#define TOKENS_RANDOM_BYTES 32
/* Key of the advisory lock serializing bootstraps ("tokens" in ASCII). */
#define TOKENS_BOOTSTRAP_LOCK_KEY "128021035249267"

static const char tokens_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The JSON shape of a token row aliased k (no secret). */
#define TOKENS_JSON                                                                                \
	"json_build_object('id', k.id, 'admin_id', k.admin_id, 'description', k.description, "     \
	"'created_at', " STORE_JSON_TS("k.created_at") ", 'expires_at', " STORE_JSON_TS(           \
	    "k.expires_at") ", 'revoked_at', " STORE_JSON_TS("k.revoked_at") ", "                  \
	                                                                     "'last_used_at',"     \
	                                                                     " " STORE_JSON_TS(    \
	                                                                         "k.last_used_at") ")"

/* base64url without padding of len bytes into out (4 * ceil(len / 3) + 1). */
static void tokens_b64url_encode(const unsigned char *in, size_t len, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

		out[o++] = tokens_b64url[(v >> 18) & 63];
		out[o++] = tokens_b64url[(v >> 12) & 63];
		out[o++] = tokens_b64url[(v >> 6) & 63];
		out[o++] = tokens_b64url[v & 63];
	}
	if (len - i == 1) {
		unsigned v = (unsigned)in[i] << 16;

		out[o++] = tokens_b64url[(v >> 18) & 63];
		out[o++] = tokens_b64url[(v >> 12) & 63];
	} else if (len - i == 2) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;

		out[o++] = tokens_b64url[(v >> 18) & 63];
		out[o++] = tokens_b64url[(v >> 12) & 63];
		out[o++] = tokens_b64url[(v >> 6) & 63];
	}
	out[o] = '\0';
}

int tokens_generate(char token[TOKENS_BUF_SIZE])
{
	unsigned char raw[TOKENS_RANDOM_BYTES];

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		log_ssl_warnx("RAND_bytes(token)");
		return -1;
	}
	memcpy(token, TOKENS_PREFIX, strlen(TOKENS_PREFIX));
	tokens_b64url_encode(raw, sizeof(raw), token + strlen(TOKENS_PREFIX));
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

bool tokens_well_formed(const char *token)
{
	size_t i, n;

	if (token == NULL || strncmp(token, TOKENS_PREFIX, strlen(TOKENS_PREFIX)) != 0)
		return false;
	n = strlen(token);
	if (n != TOKENS_LEN)
		return false;
	for (i = strlen(TOKENS_PREFIX); i < n; i++) {
		if (token[i] == '\0' || strchr(tokens_b64url, token[i]) == NULL)
			return false;
	}
	return true;
}

int tokens_hash(const char *token, unsigned char hash[TOKENS_HASH_LEN])
{
	unsigned int len = 0;

	if (EVP_Digest(token, strlen(token), hash, &len, EVP_sha256(), NULL) != 1 ||
	    len != TOKENS_HASH_LEN) {
		log_ssl_warnx("EVP_Digest(token)");
		return -1;
	}
	return 0;
}

static void tokens_hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int64_t tokens_field_id(const PGresult *res, int col)
{
	if (PQgetisnull(res, 0, col))
		return 0;
	return strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

int tokens_authenticate(struct db *db, const char *token, struct tokens_principal *out)
{
	unsigned char hash[TOKENS_HASH_LEN];
	char hash_hex[2 * TOKENS_HASH_LEN + 1];
	const char *params[1];
	PGresult *res = NULL;
	const char *stored = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!tokens_well_formed(token))
		return 0;
	if (tokens_hash(token, hash) != 0)
		return -1;
	tokens_hex(hash, sizeof(hash), hash_hex);
	params[0] = hash_hex;
	/* One round trip: find the token and its admin, and refresh
	 * last_used_at when it is more than a minute old (so that a busy
	 * client does not write a row per request). */
	res =
	    db_exec_prepared(db, "enrolld_token_authenticate",
	            "WITH t AS ("
	            " SELECT k.id AS token_id, encode(k.token_hash, 'hex') AS token_hash,"
	            "  a.id AS admin_id, a.role, a.org_id, a.dept_id,"
	            "  array_to_string(a.cert_types, ',') AS cert_types,"
	            "  array_to_string(a.privileges, ',') AS privileges"
	            " FROM admin_tokens k JOIN admins a ON a.id = k.admin_id"
	            " WHERE k.token_hash = decode($1, 'hex') AND k.revoked_at IS NULL"
	            "  AND (k.expires_at IS NULL OR k.expires_at > now()) AND a.active),"
	            " u AS (UPDATE admin_tokens SET last_used_at = now()"
	            "  WHERE id = (SELECT token_id FROM t)"
	            "  AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds'))"
	            " SELECT token_id, token_hash, admin_id, role, org_id, dept_id, cert_types,"
	            " privileges FROM t",
	            1, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		rc = 0;
		goto out;
	}
	stored = PQgetvalue(res, 0, 1);
	if (strlen(stored) != strlen(hash_hex) ||
	    CRYPTO_memcmp(stored, hash_hex, strlen(hash_hex)) != 0) {
		rc = 0;
		goto out;
	}
	out->token_id = tokens_field_id(res, 0);
	out->admin_id = tokens_field_id(res, 2);
	snprintf(out->role, sizeof(out->role), "%s", PQgetvalue(res, 0, 3));
	out->org_id = tokens_field_id(res, 4);
	out->dept_id = tokens_field_id(res, 5);
	snprintf(out->cert_types, sizeof(out->cert_types), "%s", PQgetvalue(res, 0, 6));
	snprintf(out->privileges, sizeof(out->privileges), "%s", PQgetvalue(res, 0, 7));
	rc = 1;
out:
	OPENSSL_cleanse(hash_hex, sizeof(hash_hex));
	PQclear(res);
	return rc;
}

int tokens_create(struct db *db, int64_t admin_id, const char *description, const char *expires_at,
                  char token[TOKENS_BUF_SIZE], json_t **created)
{
	unsigned char hash[TOKENS_HASH_LEN];
	char hash_hex[2 * TOKENS_HASH_LEN + 1];
	char admin_buf[24];
	const char *params[4];
	int rc = -1;

	*created = NULL;
	if (tokens_generate(token) != 0 || tokens_hash(token, hash) != 0)
		goto out;
	tokens_hex(hash, sizeof(hash), hash_hex);
	params[0] = store_json_int(admin_buf, admin_id);
	params[1] = hash_hex;
	params[2] = description;
	params[3] = expires_at;
	if (store_json_one(
	        db, "token_insert",
	        "INSERT INTO admin_tokens (admin_id, token_hash, description, expires_at)"
	        " VALUES ($1::bigint, decode($2, 'hex'), $3, $4::timestamptz)"
	        " RETURNING json_build_object('id', id, 'expires_at', " STORE_JSON_TS(
	            "expires_at") ")",
	        4, params, created) != 1)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		OPENSSL_cleanse(token, TOKENS_BUF_SIZE);
		token[0] = '\0';
	}
	return rc;
}

int tokens_bootstrap(struct db *db, char *token, size_t len)
{
	char tok[TOKENS_BUF_SIZE] = "";
	char *count = NULL;
	json_t *created = NULL;
	int64_t admin_id = 0;
	int rc = -1;

	if (token == NULL || len < TOKENS_BUF_SIZE) {
		log_warnx("tokens_bootstrap: token buffer too small");
		return -1;
	}
	token[0] = '\0';
	if (db_ensure(db) != 0)
		return -1;
	if (db_begin(db) != 0)
		return -1;
	/* Two instances starting on one fresh database make one MRAO. */
	if (store_json_exec(db, "bootstrap_lock",
	                    "SELECT pg_advisory_xact_lock(" TOKENS_BOOTSTRAP_LOCK_KEY ")", 0,
	                    NULL) != 0)
		goto out;
	count = db_value(db, "bootstrap_count",
	                 "SELECT count(*) FROM admins WHERE role = 'mrao' AND active", 0, NULL);
	if (count == NULL)
		goto out;
	if (strcmp(count, "0") != 0) {
		rc = 0;
		goto out;
	}
	if (store_json_id(db, "bootstrap_admin",
	                  "INSERT INTO admins (login, role, cert_types, privileges)"
	                  " VALUES (CASE WHEN EXISTS (SELECT 1 FROM admins WHERE login = 'admin')"
	                  "  THEN 'admin-' || (SELECT max(id) + 1 FROM admins) ELSE 'admin' END,"
	                  " 'mrao', '{ssl,client,code_signing,device}',"
	                  " '{manage_admins,approve_delegations,auto_approve_ssl,api_only}')"
	                  " RETURNING id",
	                  0, NULL, &admin_id) != 1)
		goto out;
	if (tokens_create(db, admin_id, "bootstrap", NULL, tok, &created) != 0)
		goto out;
	if (db_audit(db, "system", "admin.create", "admin", admin_id, 0, 0, "ok", "bootstrap",
	             NULL) != 0)
		goto out;
	if (db_audit(db, "system", "token.create", "admin_token",
	             json_integer_value(json_object_get(created, "id")), 0, 0, "ok", "bootstrap",
	             NULL) != 0)
		goto out;
	if (db_commit(db) != 0) {
		OPENSSL_cleanse(tok, sizeof(tok));
		free(count);
		json_decref(created);
		return -1;
	}
	snprintf(token, len, "%s", tok);
	log_info("tokens_bootstrap: created master administrator admin:%" PRId64, admin_id);
	rc = 1;
out:
	if (rc != 1) {
		if (rc == 0) {
			if (db_commit(db) != 0)
				rc = -1;
		} else {
			db_rollback(db);
		}
	}
	OPENSSL_cleanse(tok, sizeof(tok));
	free(count);
	json_decref(created);
	return rc;
}

int tokens_list(struct db *db, int64_t admin_id, const struct store_page *page, json_t **items)
{
	char admin_buf[24], after[24], limit[24];
	const char *params[3];

	store_json_page(page, after, limit);
	params[0] = store_json_int(admin_buf, admin_id);
	params[1] = after;
	params[2] = limit;
	return store_json_must(db, "token_list",
	                       "SELECT coalesce(json_agg(j ORDER BY id), '[]') FROM ("
	                       " SELECT k.id, " TOKENS_JSON " AS j FROM admin_tokens k"
	                       " WHERE k.admin_id = $1::bigint AND k.id > $2::bigint"
	                       " ORDER BY k.id LIMIT $3::int) s",
	                       3, params, items);
}

int tokens_get(struct db *db, int64_t admin_id, int64_t token_id, json_t **out)
{
	char admin_buf[24], token_buf[24];
	const char *params[2];

	params[0] = store_json_int(admin_buf, admin_id);
	params[1] = store_json_int(token_buf, token_id);
	return store_json_one(db, "token_get",
	                      "SELECT " TOKENS_JSON " FROM admin_tokens k"
	                      " WHERE k.admin_id = $1::bigint AND k.id = $2::bigint",
	                      2, params, out);
}

int tokens_revoke(struct db *db, int64_t token_id, json_t **out)
{
	char token_buf[24];
	const char *params[1];

	params[0] = store_json_int(token_buf, token_id);
	return store_json_one(
	    db, "token_revoke",
	    "UPDATE admin_tokens k SET revoked_at = now()"
	    " WHERE k.id = $1::bigint AND k.revoked_at IS NULL RETURNING " TOKENS_JSON,
	    1, params, out);
}
