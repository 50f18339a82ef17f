/*
 * store_json.h: what the admin API's store files (store_orgs.c,
 * store_admins.c, store_domains.c, store_profiles.c, store_endpoints.c,
 * store_audit.c, tokens.c) share.
 *
 * The admin API speaks JSON and PostgreSQL speaks it too: a store function
 * lets PostgreSQL build each object with json_build_object() (one shape per
 * resource, the same for a fetched and a created object) and takes validated
 * request fields as one JSON object that SQL expands with
 * json_populate_record(). The C side only runs the statement and parses the
 * single JSON value that comes back.
 *
 * Lists are keyset pages: ids greater than `after`, ascending, at most
 * limit + 1 rows, so that the caller can tell whether another page exists
 * (it drops the extra row and answers next_after).
 */
#ifndef ENROLLD_STORE_JSON_H
#define ENROLLD_STORE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct db;

/* RFC 3339 UTC text ("2026-11-26T10:00:00Z") of a timestamptz SQL
 * expression; NULL stays NULL. */
#define STORE_JSON_TS(expr)                                                                        \
	"to_char((" expr ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/*
 * The part of the world an administrator may see, as SQL filters take it.
 * MRAO: everything zero. RAO: org_id, cert_types. DRAO: org_id, dept_id,
 * cert_types.
 */
struct store_scope {
	int64_t org_id;      /* 0: every organization */
	int64_t dept_id;     /* 0: every department of org_id */
	unsigned cert_types; /* enum cert_type bits; 0: every type */
};

/* A page of a list: ids greater than `after`, at most `limit` (1..500). */
struct store_page {
	int64_t after;
	int limit;
};

/* Runs a query expected to yield one row with one JSON column. Returns 1 with
 * *out (a new reference; the caller json_decref()s it), 0 when there is no
 * row or the value is SQL NULL, -1 on a database error (logged; see
 * db->last_sqlstate) or unparseable JSON. */
int store_json_one(struct db *db, const char *what, const char *sql, int nparams,
                   const char *const *params, json_t **out) __attribute__((warn_unused_result));

/* store_json_one() for a query that always yields a value (a list built
 * with coalesce(json_agg(...), '[]'), an INSERT ... RETURNING): 0 with *out,
 * or -1 on error or when no value came back. */
int store_json_must(struct db *db, const char *what, const char *sql, int nparams,
                    const char *const *params, json_t **out) __attribute__((warn_unused_result));

/* Runs a statement whose result is ignored. 0, or -1 on error. */
int store_json_exec(struct db *db, const char *what, const char *sql, int nparams,
                    const char *const *params) __attribute__((warn_unused_result));

/* Runs a statement yielding one bigint (e.g. RETURNING id). Returns 1 with
 * *id, 0 when no row came back, -1 on error. */
int store_json_id(struct db *db, const char *what, const char *sql, int nparams,
                  const char *const *params, int64_t *id) __attribute__((warn_unused_result));

/* Decimal text of v in buf for a query parameter; NULL (SQL NULL) when v is
 * 0, which no id ever is. */
const char *store_json_int(char buf[24], int64_t v);

/* PostgreSQL array literal of the cert type names in `bits`
 * ("{ssl,client}") in buf; NULL (SQL NULL: no filter) when bits is 0. */
const char *store_json_cert_types(char buf[64], unsigned bits);

/* The page parameters as query text: after (never NULL) and limit + 1. */
void store_json_page(const struct store_page *page, char after[24], char limit[24]);

/* Serialises obj compactly (newly allocated; the caller frees), NULL on
 * failure. For passing validated request fields as one $n::json. */
char *store_json_text(const json_t *obj);

#endif
