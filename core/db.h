/*
 * db.h: one PostgreSQL connection and the few helpers every store_* file uses.
 *
 * Each worker owns one struct db; nothing here is shared between threads.
 * A connection that fails is marked broken and re-opened on the next
 * db_ensure(); while PostgreSQL is down, db_ensure() fails fast and handlers
 * answer 503 + Retry-After (http_response_unavailable()).
 *
 * Only core/ includes libpq. Store functions return plain C values or jansson
 * JSON (often built by PostgreSQL itself with json_build_object()).
 */
#ifndef ENROLLD_DB_H
#define ENROLLD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct db {
	PGconn *conn;
	char *conninfo;
	bool broken;
	/* Unique in the process for each connection made (0: none yet): what
	 * was learnt on one connection (store_acme's nonce sentinel check)
	 * is tied to it, not to the PGconn address, which a reconnect may
	 * reuse. */
	uint64_t conn_id;
	/* SQLSTATE of the last failed statement ("23505" unique violation, ...)
	 * or "" */
	char last_sqlstate[6];
	/* The constraint a failed statement violated ("acme_nonces_pkey", ...)
	 * or "": which unique key a 23505 was about */
	char last_constraint[64];
};

/* Newly allocated, not yet connected; the caller frees with db_close(). */
struct db *db_new(const char *conninfo);
void db_close(struct db *db);
/* Connects or reconnects if needed. 0 when usable, -1 when PostgreSQL cannot
 * be reached (the caller answers 503). */
int db_ensure(struct db *db) __attribute__((warn_unused_result));
/*
 * Around one request on a worker's connection: db_request_begin() is
 * db_ensure(), whose check of an idle connection for a server hang-up (one
 * poll()) it does once; until db_request_end(), db_ensure() on a connection
 * not marked broken answers 0 without polling again. A hang-up noticed by a
 * failing statement marks the connection broken, and db_ensure() then
 * reconnects as usual.
 */
int db_request_begin(struct db *db) __attribute__((warn_unused_result));
void db_request_end(struct db *db);
/* True when the last failure was the connection rather than the statement. */
bool db_unavailable(const struct db *db);

/* PQexecParams with text parameters (NULL entries are SQL NULL). Returns the
 * result on PGRES_COMMAND_OK / PGRES_TUPLES_OK; otherwise logs the failing
 * call as "PQexecParams(<what>): <message>", records last_sqlstate, clears and
 * returns NULL. The caller PQclear()s. */
PGresult *db_exec(struct db *db, const char *what, const char *sql,
    int nparams, const char *const *params);
/* Like db_exec(), for hot statements: prepared once per connection under
 * `name` (a static string, unique per SQL text), then executed by name.
 * Re-prepared after a reconnect. */
PGresult *db_exec_prepared(struct db *db, const char *name, const char *sql,
    int nparams, const char *const *params);
/* Same, with some parameters in binary format: formats[i] = 1 passes
 * params[i] as lengths[i] raw bytes (a bytea's own bytes, no hex text for the
 * server to decode), 0 as text (lengths[i] ignored). NULL formats: all text. */
PGresult *db_exec_prepared_formats(struct db *db, const char *name, const char *sql,
    int nparams, const char *const *params, const int *lengths, const int *formats);
/* Same, one row one column expected: returns a newly allocated copy of the
 * value ("" for SQL NULL), or NULL on error or no row. */
char *db_value(struct db *db, const char *what, const char *sql,
    int nparams, const char *const *params);

int db_begin(struct db *db) __attribute__((warn_unused_result));
int db_commit(struct db *db) __attribute__((warn_unused_result));
void db_rollback(struct db *db);

/* Applies compiled-in migrations (core/migrations/NNN_*.sql) not yet applied,
 * each in its own transaction, under an advisory lock so that several enrolld
 * instances may start at once. */
int db_migrate(struct db *db) __attribute__((warn_unused_result));

/* Appends an audit entry (within the caller's transaction if one is open).
 * details_json may be NULL. */
int db_audit(struct db *db, const char *actor, const char *action,
    const char *object_type, int64_t object_id, int64_t org_id, int64_t dept_id,
    const char *outcome, const char *reason, const char *details_json)
    __attribute__((warn_unused_result));

/*
 * The embedded PostgreSQL (no database.url): initdb in state_dir/pgdata on
 * first start, run as `user` (PostgreSQL refuses root), listening on a Unix
 * socket in state_dir/pgsock only (listen_addresses = ''), stopped by
 * pgsup_stop(). On success writes the conninfo to use into `conninfo`.
 */
struct pgsup;
int pgsup_start(const char *state_dir, const char *user, const char *pg_bindir,
    struct pgsup **out, char *conninfo, size_t conninfo_len)
    __attribute__((warn_unused_result));
void pgsup_stop(struct pgsup *pg);

#endif
