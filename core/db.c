/*
 * db.c: one PostgreSQL connection per worker, and the helpers every store_*
 * file builds on (db.h).
 *
 * A struct db is owned by one thread. It is allocated inside a larger private
 * struct (db_conn) that remembers when the last connection attempt failed, so
 * that while PostgreSQL is down db_ensure() answers -1 at once instead of
 * trying to connect on every request: a 503 must stay cheap under load.
 *
 * Errors: db_exec() records the SQLSTATE and decides whether the failure was
 * the connection (broken: reconnect on the next db_ensure()) or the statement.
 * Log lines carry only the primary message and the constraint name, never the
 * DETAIL line: for a unique violation PostgreSQL puts the offending key value
 * there, and that value may be a token hash or a challenge.
 *
 * Migrations (core/migrations/NNN_*.sql, compiled in through embedded.h) are
 * applied by db_migrate(), each in its own transaction that first takes a
 * transaction-scoped advisory lock, so several enrolld instances sharing one
 * database can start at the same moment.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "embedded.h"
#include "log.h"

/* Wait at least this long between two connection attempts after a failure. */
#define DB_RETRY_INTERVAL_MS 500

/* Key of the advisory lock serializing migrations ("enrolld" in ASCII). */
#define DB_MIGRATE_LOCK_KEY "28549048094926948"

#define DB_MAX_PREPARED 64

struct db_conn {
	struct db pub;           /* must stay first: db_new() returns &pub */
	int64_t next_attempt_ms; /* monotonic ms; 0: may connect now */
	/* Between db_request_begin() and db_request_end(): the connection was
	 * found alive at the start of the request, so db_ensure() does not
	 * poll it again for a hang-up (a failure since then marks it broken). */
	bool in_request;
	/* statements prepared on `prepared_conn` (names are static strings) */
	const PGconn *prepared_conn;
	const char *prepared[DB_MAX_PREPARED];
	int n_prepared;
};

/* Connections made by this process: each one's db->conn_id. */
static _Atomic uint64_t db_connections_made;

static struct db_conn *db_conn_of(struct db *db)
{
	return (struct db_conn *)db;
}

static int64_t db_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void db_set_sqlstate(struct db *db, const char *sqlstate)
{
	snprintf(db->last_sqlstate, sizeof(db->last_sqlstate), "%s",
	         sqlstate != NULL ? sqlstate : "");
}

/* True for SQLSTATEs that mean the session is gone or going: class 08
 * (connection exception) and 57P01..57P03 (admin/crash shutdown, cannot
 * connect now). */
static bool db_sqlstate_is_connection(const char *sqlstate)
{
	if (sqlstate == NULL)
		return false;
	if (strncmp(sqlstate, "08", 2) == 0)
		return true;
	return strcmp(sqlstate, "57P01") == 0 || strcmp(sqlstate, "57P02") == 0 ||
	       strcmp(sqlstate, "57P03") == 0;
}

/* Copies at most len-1 bytes of msg into buf, dropping trailing newlines. */
static void db_copy_message(char *buf, size_t len, const char *msg)
{
	size_t n;

	snprintf(buf, len, "%s", msg != NULL ? msg : "(no message)");
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
}

struct db *db_new(const char *conninfo)
{
	struct db_conn *dc = NULL;

	dc = calloc(1, sizeof(*dc));
	if (dc == NULL) {
		log_errorx("calloc(db): %s", strerror(errno));
		return NULL;
	}
	dc->pub.conninfo = strdup(conninfo != NULL ? conninfo : "");
	if (dc->pub.conninfo == NULL) {
		log_errorx("strdup(conninfo): %s", strerror(errno));
		free(dc);
		return NULL;
	}
	return &dc->pub;
}

void db_close(struct db *db)
{
	if (db == NULL)
		return;
	if (db->conn != NULL)
		PQfinish(db->conn);
	free(db->conninfo);
	free(db_conn_of(db));
}

/* Records a failed statement or connection; see db_exec(). */
static void db_fail(struct db *db, const char *call, const char *what, PGresult *res)
{
	const char *sqlstate = NULL;
	const char *primary = NULL;
	const char *constraint = NULL;
	char msg[512];

	if (res != NULL) {
		sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
	}
	if (primary == NULL && db->conn != NULL)
		primary = PQerrorMessage(db->conn); /* client-side failure */
	db_copy_message(msg, sizeof(msg), primary);

	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK ||
	    db_sqlstate_is_connection(sqlstate)) {
		db->broken = true;
		/* A client-side connection loss carries no SQLSTATE; report
		 * 08006 (connection_failure) so callers see one convention. */
		if (sqlstate == NULL || sqlstate[0] == '\0')
			sqlstate = "08006";
	}
	db_set_sqlstate(db, sqlstate);
	snprintf(db->last_constraint, sizeof(db->last_constraint), "%s",
	         constraint != NULL ? constraint : "");

	/* Integrity violations are often an expected outcome the caller
	 * handles (a duplicate idempotency key, a second approval): info.
	 * Anything else is worth a warning. */
	if (strncmp(db->last_sqlstate, "23", 2) == 0)
		log_info("%s(%s): %s [%s]%s%s", call, what, msg, db->last_sqlstate,
		         constraint != NULL ? " constraint " : "",
		         constraint != NULL ? constraint : "");
	else
		log_warnx("%s(%s): %s [%s]%s", call, what, msg, db->last_sqlstate,
		          db->broken ? " (connection lost)" : "");
}

static void db_notice(void *arg, const char *message)
{
	char msg[512];

	db_copy_message(msg, sizeof(msg), message);
	log_debug("postgres: %s", msg);
}

/*
 * Did the server hang up on this idle connection? A PostgreSQL that was
 * restarted, or that crashed, has sent its goodbye (FATAL 57P01 / 57P02) and
 * closed the socket while the connection sat idle; libpq learns it only when
 * the next statement fails, and that request would get a 503. Between
 * statements the server sends nothing unasked except NOTICE/NOTIFY, so a
 * readable socket is read (one poll() costs a microsecond) and the
 * connection judged by what libpq made of it. The goodbye message and the
 * end of the stream are two reads for libpq (PQconsumeInput() returns after
 * the message, with the connection still CONNECTION_OK), so the socket is
 * read for as long as it stays readable, a few times at most.
 */
static bool db_hung_up(PGconn *conn)
{
	struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};

	if (pfd.fd < 0)
		return true;
	for (int i = 0; i < 4; i++) {
		if (poll(&pfd, 1, 0) <= 0)
			return false;
		if (PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK)
			return true;
	}
	return false;
}

int db_ensure(struct db *db)
{
	struct db_conn *dc = db_conn_of(db);
	/* Defaults first: values in the caller's conninfo (expanded from
	 * "dbname", a key=value string or a postgresql:// URI) override them. */
	const char *const keywords[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *values[] = {"2", "enrolld", db->conninfo, NULL};
	int64_t now;

	if (db->conn != NULL && !db->broken && PQstatus(db->conn) == CONNECTION_OK &&
	    (dc->in_request || PQtransactionStatus(db->conn) != PQTRANS_IDLE ||
	     !db_hung_up(db->conn)))
		return 0;
	if (db->conn != NULL && !db->broken) {
		/* not a failure of ours: reconnect at once, no back-off */
		log_info("postgres: the server closed an idle connection; reconnecting");
		dc->next_attempt_ms = 0;
	}

	now = db_now_ms();
	if (dc->next_attempt_ms != 0 && now < dc->next_attempt_ms) {
		/* Failed a moment ago: do not hammer a server that is down. */
		db->broken = true;
		db_set_sqlstate(db, "08006");
		return -1;
	}

	if (db->conn != NULL) {
		PQfinish(db->conn);
		db->conn = NULL;
	}
	db->broken = false;
	db->conn = PQconnectdbParams(keywords, values, 1);
	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
		char msg[512];

		db_copy_message(msg, sizeof(msg),
		                db->conn != NULL ? PQerrorMessage(db->conn) : "out of memory");
		/* The message names host and database, never the password. */
		log_warnx("PQconnectdbParams: %s", msg);
		if (db->conn != NULL) {
			PQfinish(db->conn);
			db->conn = NULL;
		}
		db->broken = true;
		db_set_sqlstate(db, "08006");
		dc->next_attempt_ms = db_now_ms() + DB_RETRY_INTERVAL_MS;
		return -1;
	}
	/* NOTICEs ("relation already exists, skipping") go to the debug log
	 * instead of libpq's default, a bare line on stderr. */
	PQsetNoticeProcessor(db->conn, db_notice, NULL);
	db->conn_id = atomic_fetch_add(&db_connections_made, 1) + 1;
	dc->next_attempt_ms = 0;
	db_set_sqlstate(db, "");
	return 0;
}

int db_request_begin(struct db *db)
{
	struct db_conn *dc = db_conn_of(db);

	dc->in_request = false;
	if (db_ensure(db) != 0)
		return -1;
	dc->in_request = true;
	return 0;
}

void db_request_end(struct db *db)
{
	db_conn_of(db)->in_request = false;
}

bool db_unavailable(const struct db *db)
{
	return db->conn == NULL || db->broken;
}

PGresult *db_exec(struct db *db, const char *what, const char *sql, int nparams,
                  const char *const *params)
{
	PGresult *res = NULL;
	ExecStatusType status;

	if (db->conn == NULL || db->broken) {
		/* The caller skipped or ignored db_ensure(). */
		db->broken = true;
		db_set_sqlstate(db, "08003"); /* connection_does_not_exist */
		log_warnx("PQexecParams(%s): not connected", what);
		return NULL;
	}
	res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
		db_set_sqlstate(db, "");
		return res;
	}
	db_fail(db, "PQexecParams", what, res);
	PQclear(res);
	return NULL;
}

/* Has `name` been prepared on the current connection? A new connection has
 * nothing prepared, so the list is forgotten when the connection changes. */
static bool db_is_prepared(struct db_conn *dc, const char *name)
{
	if (dc->prepared_conn != dc->pub.conn) {
		dc->prepared_conn = dc->pub.conn;
		dc->n_prepared = 0;
	}
	for (int i = 0; i < dc->n_prepared; i++)
		if (strcmp(dc->prepared[i], name) == 0)
			return true;
	return false;
}

static void db_forget_prepared(struct db_conn *dc, const char *name)
{
	for (int i = 0; i < dc->n_prepared; i++)
		if (strcmp(dc->prepared[i], name) == 0) {
			dc->prepared[i] = dc->prepared[--dc->n_prepared];
			return;
		}
}

PGresult *db_exec_prepared(struct db *db, const char *name, const char *sql, int nparams,
                           const char *const *params)
{
	return db_exec_prepared_formats(db, name, sql, nparams, params, NULL, NULL);
}

PGresult *db_exec_prepared_formats(struct db *db, const char *name, const char *sql, int nparams,
                                   const char *const *params, const int *lengths,
                                   const int *formats)
{
	struct db_conn *dc = db_conn_of(db);
	PGresult *res = NULL;
	const char *sqlstate = NULL;

	if (db->conn == NULL || db->broken) {
		db->broken = true;
		db_set_sqlstate(db, "08003");
		log_warnx("PQexecPrepared(%s): not connected", name);
		return NULL;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!db_is_prepared(dc, name)) {
			res = PQprepare(db->conn, name, sql, nparams, NULL);
			sqlstate = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
			/* 42P05: already prepared (our memory of it was lost) */
			if (PQresultStatus(res) != PGRES_COMMAND_OK &&
			    (sqlstate == NULL || strcmp(sqlstate, "42P05") != 0)) {
				db_fail(db, "PQprepare", name, res);
				PQclear(res);
				return NULL;
			}
			PQclear(res);
			if (dc->n_prepared < DB_MAX_PREPARED)
				dc->prepared[dc->n_prepared++] = name;
		}
		res = PQexecPrepared(db->conn, name, nparams, params, lengths, formats, 0);
		if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK) {
			db_set_sqlstate(db, "");
			return res;
		}
		/* 26000: not prepared on this connection after all (DISCARD ALL,
		 * a pooler); prepare again once when no transaction was spoiled */
		sqlstate = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		if (attempt == 0 && sqlstate != NULL && strcmp(sqlstate, "26000") == 0 &&
		    PQtransactionStatus(db->conn) == PQTRANS_IDLE) {
			PQclear(res);
			db_forget_prepared(dc, name);
			continue;
		}
		db_fail(db, "PQexecPrepared", name, res);
		PQclear(res);
		return NULL;
	}
	return NULL;
}

char *db_value(struct db *db, const char *what, const char *sql, int nparams,
               const char *const *params)
{
	PGresult *res = NULL;
	char *value = NULL;

	res = db_exec(db, what, sql, nparams, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) < 1 || PQnfields(res) < 1)
		goto out;
	value = strdup(PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
	if (value == NULL)
		log_errorx("strdup(%s): %s", what, strerror(errno));
out:
	PQclear(res);
	return value;
}

int db_begin(struct db *db)
{
	PGresult *res = NULL;

	res = db_exec(db, "begin", "BEGIN", 0, NULL);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int db_commit(struct db *db)
{
	PGresult *res = NULL;
	int rc = -1;

	res = db_exec(db, "commit", "COMMIT", 0, NULL);
	if (res == NULL)
		goto out; /* if the connection broke, the outcome is unknown */
	/* COMMIT of a transaction that already failed "succeeds" with the tag
	 * ROLLBACK: that is a failure for the caller. */
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		db_set_sqlstate(db, "25P02"); /* in_failed_sql_transaction */
		log_warnx("PQexecParams(commit): transaction was rolled back");
		goto out;
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

void db_rollback(struct db *db)
{
	PGresult *res = NULL;
	char saved[sizeof(db->last_sqlstate)];

	if (db->conn == NULL || db->broken || PQtransactionStatus(db->conn) == PQTRANS_IDLE)
		return;
	/* Keep the SQLSTATE of the failure that made the caller roll back. */
	memcpy(saved, db->last_sqlstate, sizeof(saved));
	res = db_exec(db, "rollback", "ROLLBACK", 0, NULL);
	PQclear(res);
	if (res != NULL)
		memcpy(db->last_sqlstate, saved, sizeof(saved));
}

/* Runs a multi-statement script (a migration) with PQexec inside the open
 * transaction. 0 on success, -1 on failure (logged like db_exec). */
static int db_exec_script(struct db *db, const char *what, const char *sql)
{
	PGresult *res = NULL;
	ExecStatusType status;

	res = PQexec(db->conn, sql);
	status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ||
	    status == PGRES_EMPTY_QUERY) {
		PQclear(res);
		return 0;
	}
	db_fail(db, "PQexec", what, res);
	PQclear(res);
	return -1;
}

/* Executes sql (no parameters) and discards the result. */
static int db_run(struct db *db, const char *what, const char *sql, int nparams,
                  const char *const *params)
{
	PGresult *res = NULL;

	res = db_exec(db, what, sql, nparams, params);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

/* Applies one migration unless already applied. Returns 1 when applied now,
 * 0 when it had been applied before, -1 on failure (rolled back). */
static int db_migrate_one(struct db *db, const struct embedded_file *m)
{
	const char *params[1] = {m->name};
	char *applied = NULL;
	int rc = -1;

	if (db_begin(db) != 0)
		return -1;
	/* Serializes migrating instances; released at COMMIT/ROLLBACK. */
	if (db_run(db, "migrate_lock", "SELECT pg_advisory_xact_lock(" DB_MIGRATE_LOCK_KEY ")", 0,
	           NULL) != 0)
		goto out;
	if (db_run(db, "migrate_table",
	           "CREATE TABLE IF NOT EXISTS schema_migrations ("
	           " name text PRIMARY KEY,"
	           " applied_at timestamptz NOT NULL DEFAULT now())",
	           0, NULL) != 0)
		goto out;
	applied = db_value(db, "migrate_check",
	                   "SELECT count(*) FROM schema_migrations WHERE name = $1", 1, params);
	if (applied == NULL)
		goto out;
	if (strcmp(applied, "0") != 0) {
		rc = 0;
		goto out;
	}
	if (db_exec_script(db, m->name, m->text) != 0)
		goto out;
	if (db_run(db, "migrate_record", "INSERT INTO schema_migrations (name) VALUES ($1)", 1,
	           params) != 0)
		goto out;
	if (db_commit(db) != 0) {
		free(applied);
		return -1;
	}
	free(applied);
	log_info("db_migrate: applied %s", m->name);
	return 1;
out:
	free(applied);
	if (rc == 0) {
		if (db_commit(db) != 0)
			return -1;
		return 0;
	}
	db_rollback(db);
	return -1;
}

int db_migrate(struct db *db)
{
	const struct embedded_file *m = NULL;
	int applied = 0;
	int r;

	if (db_ensure(db) != 0)
		return -1;
	for (m = embedded_migrations; m->name != NULL; m++) {
		r = db_migrate_one(db, m);
		if (r < 0) {
			log_errorx("db_migrate: %s failed [%s]", m->name, db->last_sqlstate);
			return -1;
		}
		applied += r;
	}
	log_info("db_migrate: schema up to date (%d applied now)", applied);
	return 0;
}

int db_audit(struct db *db, const char *actor, const char *action, const char *object_type,
             int64_t object_id, int64_t org_id, int64_t dept_id, const char *outcome,
             const char *reason, const char *details_json)
{
	char object_buf[24], org_buf[24], dept_buf[24];
	const char *params[9];

	snprintf(object_buf, sizeof(object_buf), "%" PRId64, object_id);
	snprintf(org_buf, sizeof(org_buf), "%" PRId64, org_id);
	snprintf(dept_buf, sizeof(dept_buf), "%" PRId64, dept_id);
	params[0] = actor;
	params[1] = action;
	params[2] = object_type;
	params[3] = object_id != 0 ? object_buf : NULL; /* 0: no object */
	params[4] = org_id != 0 ? org_buf : NULL;
	params[5] = dept_id != 0 ? dept_buf : NULL;
	params[6] = outcome;
	params[7] = reason;
	params[8] = details_json;
	return db_run(db, "audit_insert",
	              "INSERT INTO audit_log (actor, action, object_type, object_id,"
	              " org_id, dept_id, outcome, reason, details)"
	              " VALUES ($1, $2, $3, $4::bigint, $5::bigint, $6::bigint,"
	              " COALESCE($7, 'ok'), $8, COALESCE($9::jsonb, '{}'::jsonb))",
	              9, params);
}
