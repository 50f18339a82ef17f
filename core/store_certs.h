/*
 * store_certs.h: certificate rows as the admin API reads them.
 *
 * core/ra.c writes certificate rows (enroll, approve, decline, revoke); this
 * file reads them for the admin routes, so that protocols/ never holds SQL.
 * STORE_CERT_JSON() is the one JSON shape of a certificate, built by
 * PostgreSQL, used both here and in the RETURNING clauses of core/ra.c so a
 * created certificate looks exactly like a fetched one.
 */
#ifndef ENROLLD_STORE_CERTS_H
#define ENROLLD_STORE_CERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

struct db;

/* clang-format off */

/* RFC 3339 UTC text of a timestamptz expression, NULL stays NULL. */
#define STORE_RFC3339(expr) \
	"to_char((" expr ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* RFC 5280 CRLReason names indexed by value + 1 (7 is unused). */
#define STORE_CRL_REASON_NAMES \
	"(ARRAY['unspecified','keyCompromise','cACompromise','affiliationChanged'," \
	"'superseded','cessationOfOperation','certificateHold',NULL,'removeFromCRL'," \
	"'privilegeWithdrawn','aACompromise']::text[])"

/* json_build_object(...) of the certificates row aliased `c` (a string
 * literal such as "c"). */
#define STORE_CERT_JSON(c) \
	"json_build_object(" \
	"'id', " c ".id, " \
	"'status', " c ".status, " \
	"'org_id', " c ".org_id, " \
	"'dept_id', " c ".dept_id, " \
	"'profile_id', " c ".profile_id, " \
	"'endpoint_id', " c ".endpoint_id, " \
	"'protocol', " c ".protocol, " \
	"'requester', " c ".requester, " \
	"'requester_admin_id', " c ".requester_admin_id, " \
	"'approver_admin_id', " c ".approver_admin_id, " \
	"'common_name', " c ".common_name, " \
	"'names', to_json(" c ".names), " \
	"'key_type', " c ".key_type, " \
	"'term_days', " c ".term_days, " \
	"'serial', " c ".serial, " \
	"'issuer', " c ".issuer, " \
	"'not_before', " STORE_RFC3339(c ".not_before") ", " \
	"'not_after', " STORE_RFC3339(c ".not_after") ", " \
	"'revoked_at', " STORE_RFC3339(c ".revoked_at") ", " \
	"'revocation_reason', " STORE_CRL_REASON_NAMES "[" c ".revocation_reason + 1], " \
	"'decline_reason', " c ".decline_reason, " \
	"'created_at', " STORE_RFC3339(c ".created_at") ", " \
	"'updated_at', " STORE_RFC3339(c ".updated_at") ")"

/* clang-format on */

/* One certificate with what a scope check needs. */
struct store_cert_row {
	int64_t id;
	int status; /* enum cert_status */
	int64_t org_id;
	int64_t dept_id;            /* 0: none */
	unsigned cert_type;         /* enum cert_type bit of its profile */
	int64_t requester_admin_id; /* 0: not an administrator */
	json_t *json;               /* STORE_CERT_JSON (owned) */
	unsigned char *cert_der;    /* when asked for and issued (owned, malloc) */
	size_t cert_der_len;
};

/* Loads certificate `id`. Returns 1 found, 0 absent, -1 on a database error
 * (db_unavailable() tells whether it was the connection). Free with
 * store_cert_row_free(). */
int store_cert_get(struct db *db, int64_t id, bool want_der, struct store_cert_row *out)
    __attribute__((warn_unused_result));
void store_cert_row_free(struct store_cert_row *row);

/* A list request: filters (0 / NULL: any) and the caller's scope. */
struct store_cert_filter {
	const char *status; /* a cert_status name */
	int64_t org_id;
	int64_t dept_id;
	int64_t profile_id;
	const char *expiring_before; /* RFC 3339, checked by the caller */
	int64_t after;               /* keyset: ids greater than this */
	int limit;                   /* 1..500 */
	int64_t scope_org_id;        /* 0: every organization (MRAO) */
	int64_t scope_dept_id;       /* 0: every department of scope_org_id */
	unsigned scope_cert_types;   /* enum cert_type bits; 0: every type */
};

/* Returns 0 with *items (a new JSON array of STORE_CERT_JSON objects, id
 * ascending, at most f->limit + 1: the extra one only says that another page
 * exists, as admin_list_reply() expects), or -1. */
int store_cert_list(struct db *db, const struct store_cert_filter *f, json_t **items)
    __attribute__((warn_unused_result));

/* The certificate type (enum cert_type bit) of profile `profile_id`: returns 1
 * with *cert_type, 0 when there is no such profile, -1 on error. */
int store_cert_profile_type(struct db *db, int64_t profile_id, unsigned *cert_type)
    __attribute__((warn_unused_result));

/*
 * The hot path's statements, prepared once per connection: planning the
 * facts query costs more than running it (measured 3.5x), so ra_enroll and
 * the certificate reads run them by name. The set of statements prepared on
 * the current connection is remembered per thread and per struct db; a
 * reconnect starts afresh, and should a statement be missing anyway (SQLSTATE
 * 26000) outside a transaction, it is prepared and the call retried once.
 */
enum store_cert_stmt {
	STORE_CERT_STMT_FACTS,        /* ra.c: facts generation + idempotency row */
	STORE_CERT_STMT_INSERT,       /* ra.c: certificate row + audit, row as JSON */
	STORE_CERT_STMT_INSERT_ID,    /* ra.c: the same, answering the id alone */
	STORE_CERT_STMT_GET,          /* store_cert_get */
	STORE_CERT_STMT_PROFILE_TYPE, /* store_cert_profile_type */
	STORE_CERT_STMT__MAX,
};

/* Like db_exec() (same logging, last_sqlstate and broken-connection
 * conventions), for statement `stmt` whose text is `sql` (the same text on
 * every call). The caller PQclear()s. */
PGresult *store_cert_exec(struct db *db, enum store_cert_stmt stmt, const char *sql, int nparams,
                          const char *const *params);

#endif
