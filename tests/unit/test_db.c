/*
 * test_db.c: the store foundation against a real, embedded PostgreSQL.
 *
 * Starts a cluster with pgsup_start() in a fresh temporary state directory
 * (owned by user enrolld when run as root), then checks: migrations apply
 * once (also when four connections migrate at the same time), the schema's
 * guards (append-only audit_log, the admins role CHECK, UNIQUE NULLS NOT
 * DISTINCT on delegations), the error path of db_exec (SQLSTATE, nothing
 * written), transactions, behaviour while PostgreSQL is down (db_ensure fails
 * fast, db_unavailable) and recovery after a restart, the watchdog restarting
 * a postmaster killed with SIGKILL, the takeover of a postgres left running
 * by a killed enrolld, and that pgsup_stop leaves no postgres behind. And
 * the policy facts cache (core/facts.c) against that database: one load per
 * organization however many threads miss at once, a policy change seen by
 * the next request, an older generation answered from a newer cache.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "embedded.h"
#include "facts.h"
#include "log.h"

static int passed, failed;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (cond) {                                                                        \
			passed++;                                                                  \
		} else {                                                                           \
			failed++;                                                                  \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
		}                                                                                  \
	} while (0)

static char state_dir[PATH_MAX];
static char datadir[PATH_MAX + 16];
static const char *run_user;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static bool streq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* Runs sql, returns its single value as a long (-1 on error or no row). */
static long value_long(struct db *db, const char *sql)
{
	char *v = db_value(db, "test_value", sql, 0, NULL);
	long n = -1;

	if (v != NULL && v[0] != '\0')
		n = strtol(v, NULL, 10);
	free(v);
	return n;
}

/* Runs sql expecting success. */
static bool exec_ok(struct db *db, const char *sql)
{
	PGresult *res = db_exec(db, "test_exec", sql, 0, NULL);

	PQclear(res);
	return res != NULL;
}

/* Runs sql expecting failure with the given SQLSTATE. */
static bool exec_fails(struct db *db, const char *sql, const char *sqlstate)
{
	PGresult *res = db_exec(db, "test_refused", sql, 0, NULL);

	if (res != NULL) {
		PQclear(res);
		return false;
	}
	if (!streq(db->last_sqlstate, sqlstate)) {
		fprintf(stderr, "  expected SQLSTATE %s, got %s\n", sqlstate, db->last_sqlstate);
		return false;
	}
	return true;
}

/* Postmaster pid from postmaster.pid, or -1. */
static pid_t postmaster_pid(void)
{
	char path[PATH_MAX + 32];
	FILE *f;
	long pid = -1;

	snprintf(path, sizeof(path), "%s/postmaster.pid", datadir);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = -1;
	fclose(f);
	return (pid_t)pid;
}

/* True if pid exists and is not a zombie. */
static bool process_alive(pid_t pid)
{
	char path[64], buf[512];
	FILE *f;
	char *p;

	if (pid <= 0 || kill(pid, 0) != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	p = strrchr(buf, ')');
	return !(p != NULL && p[1] == ' ' && p[2] == 'Z');
}

/* Number of live processes whose working directory is our data directory
 * (every postgres process of the cluster chdir()s there). */
static int cluster_processes(void)
{
	char real[PATH_MAX], link[PATH_MAX], path[300];
	struct dirent *de;
	DIR *d;
	int n = 0;

	if (realpath(datadir, real) == NULL)
		return 0;
	d = opendir("/proc");
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		ssize_t len;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cwd", de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0)
			continue;
		link[len] = '\0';
		if (strcmp(link, real) == 0 && process_alive((pid_t)atol(de->d_name)))
			n++;
	}
	closedir(d);
	return n;
}

/* Waits up to ms for the cluster's processes to be gone. */
static bool cluster_gone_within(long ms)
{
	double deadline = now_ms() + ms;

	while (cluster_processes() != 0) {
		if (now_ms() > deadline)
			return false;
		sleep_ms(50);
	}
	return true;
}

static int count_migrations(void)
{
	int n = 0;

	for (const struct embedded_file *m = embedded_migrations; m->name; m++)
		n++;
	return n;
}

static void test_migrate(struct db *db)
{
	char *first = NULL, *second = NULL;
	const char *sql_applied =
	    "SELECT string_agg(name || '@' || applied_at::text, ',' ORDER BY name)"
	    " FROM schema_migrations";

	CHECK(db_migrate(db) == 0);
	CHECK(value_long(db, "SELECT count(*) FROM schema_migrations") == count_migrations());
	CHECK(value_long(db, "SELECT count(*) FROM schema_migrations WHERE "
	                     "name = '001_init.sql'") == 1);
	CHECK(value_long(db, "SELECT count(*) FROM information_schema.tables "
	                     "WHERE table_schema = 'public' AND table_name IN "
	                     "('organizations','departments','admins',"
	                     "'admin_tokens','domains','delegations','profiles',"
	                     "'endpoints','certificates','audit_log','crl_state')") == 11);
	first = db_value(db, "applied", sql_applied, 0, NULL);
	/* The second run is a no-op: same rows, same timestamps. */
	CHECK(db_migrate(db) == 0);
	second = db_value(db, "applied", sql_applied, 0, NULL);
	CHECK(first != NULL && first[0] != '\0' && streq(first, second));
	CHECK(value_long(db, "SELECT count(*) FROM schema_migrations") == count_migrations());
	free(first);
	free(second);
}

struct migrate_arg {
	const char *conninfo;
	int rc;
};

static void *migrate_thread(void *p)
{
	struct migrate_arg *arg = p;
	struct db *db = db_new(arg->conninfo);

	arg->rc = -1;
	if (db != NULL && db_ensure(db) == 0)
		arg->rc = db_migrate(db);
	db_close(db);
	return NULL;
}

/* Four instances starting together on an empty database. */
static void test_concurrent_migrate(struct db *db, const char conninfo[1024])
{
	char ci[1100];
	struct migrate_arg args[4];
	pthread_t threads[4];
	struct db *other = NULL;

	CHECK(exec_ok(db, "CREATE DATABASE enrolld_concurrent"));
	snprintf(ci, sizeof(ci), "%s dbname=enrolld_concurrent", conninfo);
	for (int i = 0; i < 4; i++) {
		args[i].conninfo = ci;
		pthread_create(&threads[i], NULL, migrate_thread, &args[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		CHECK(args[i].rc == 0);
	}
	other = db_new(ci);
	CHECK(other != NULL && db_ensure(other) == 0);
	CHECK(value_long(other, "SELECT count(*) FROM schema_migrations") == count_migrations());
	CHECK(value_long(other, "SELECT count(*) FROM pg_tables WHERE "
	                        "tablename = 'audit_log'") == 1);
	db_close(other);
	CHECK(exec_ok(db, "DROP DATABASE enrolld_concurrent"));
}

static void test_audit(struct db *db)
{
	long before = value_long(db, "SELECT count(*) FROM audit_log");

	CHECK(before == 0);
	CHECK(db_audit(db, "system", "test.start", NULL, 0, 0, 0, NULL, NULL, NULL) == 0);
	CHECK(db_audit(db, "admin:1", "org.create", "organization", 42, 7, 0, "denied",
	               "name_taken", "{\"name\": \"Example\"}") == 0);
	CHECK(value_long(db, "SELECT count(*) FROM audit_log") == 2);
	/* 0 ids are NULL, outcome defaults to ok, details to {}. */
	CHECK(value_long(db, "SELECT count(*) FROM audit_log WHERE action = "
	                     "'test.start' AND object_id IS NULL AND org_id IS "
	                     "NULL AND dept_id IS NULL AND outcome = 'ok' AND "
	                     "details = '{}'::jsonb") == 1);
	CHECK(value_long(db, "SELECT count(*) FROM audit_log WHERE action = "
	                     "'org.create' AND object_id = 42 AND org_id = 7 "
	                     "AND dept_id IS NULL AND outcome = 'denied' AND "
	                     "reason = 'name_taken' AND details->>'name' = "
	                     "'Example'") == 1);
	/* Bad JSON and a bad outcome are refused and write nothing. */
	CHECK(db_audit(db, "system", "x", NULL, 0, 0, 0, NULL, NULL, "{not json") == -1);
	CHECK(streq(db->last_sqlstate, "22P02"));
	CHECK(db_audit(db, "system", "x", NULL, 0, 0, 0, "maybe", NULL, NULL) == -1);
	CHECK(streq(db->last_sqlstate, "23514"));
	CHECK(!db_unavailable(db));
	CHECK(value_long(db, "SELECT count(*) FROM audit_log") == 2);

	/* Append-only: UPDATE, DELETE and TRUNCATE raise (P0001). */
	CHECK(exec_fails(db, "UPDATE audit_log SET actor = 'mallory'", "P0001"));
	CHECK(exec_fails(db, "DELETE FROM audit_log", "P0001"));
	CHECK(exec_fails(db, "TRUNCATE audit_log", "P0001"));
	CHECK(value_long(db, "SELECT count(*) FROM audit_log") == 2);
	CHECK(value_long(db, "SELECT count(*) FROM audit_log WHERE actor = "
	                     "'mallory'") == 0);
}

static void test_schema_guards(struct db *db)
{
	/* admins: the role decides which scope columns are set. */
	CHECK(exec_ok(db, "INSERT INTO organizations (name) VALUES ('Org A')"));
	CHECK(exec_fails(db,
	                 "INSERT INTO admins (login, role, org_id) SELECT 'm1', 'mrao', id "
	                 "FROM organizations WHERE name = 'Org A'",
	                 "23514"));
	CHECK(exec_fails(db,
	                 "INSERT INTO admins (login, role) VALUES "
	                 "('r1', 'rao')",
	                 "23514"));
	CHECK(exec_fails(db,
	                 "INSERT INTO admins (login, role) VALUES "
	                 "('s1', 'superuser')",
	                 "23514"));
	CHECK(value_long(db, "SELECT count(*) FROM admins") == 0);
	CHECK(exec_ok(db, "INSERT INTO admins (login, role) VALUES "
	                  "('m1', 'mrao')"));
	CHECK(exec_ok(db, "INSERT INTO admins (login, role, org_id, cert_types)"
	                  " SELECT 'r1', 'rao', id, '{ssl}' FROM organizations "
	                  "WHERE name = 'Org A'"));
	CHECK(value_long(db, "SELECT count(*) FROM admins") == 2);

	/* delegations: one per (domain, org, dept), a NULL dept included. */
	CHECK(exec_ok(db, "INSERT INTO domains (name) VALUES ('example.com')"));
	CHECK(exec_ok(db, "INSERT INTO delegations (domain_id, org_id, "
	                  "cert_types, state) SELECT d.id, o.id, '{ssl}', "
	                  "'approved' FROM domains d, organizations o"));
	CHECK(exec_fails(db,
	                 "INSERT INTO delegations (domain_id, org_id, cert_types, state) "
	                 "SELECT d.id, o.id, '{client}', 'requested' FROM domains d, "
	                 "organizations o",
	                 "23505"));
	CHECK(!db_unavailable(db));
	CHECK(value_long(db, "SELECT count(*) FROM delegations") == 1);

	/* certificates: the CHECKs (as migration 006 wrote them) refuse any
	 * value out of their set and write nothing; a NULL revocation_reason
	 * and an issued row with its serial and DER pass. */
	CHECK(exec_ok(db, "INSERT INTO profiles (name, cert_type, terms_days, key_types)"
	                  " VALUES ('p1', 'ssl', '{90}', '{p256}')"));
#define CERT_ROW(status, protocol, serial, der, reason)                                            \
	"INSERT INTO certificates (status, org_id, profile_id, protocol, requester, csr_der,"      \
	" key_type, term_days, serial, cert_der, revocation_reason) SELECT " status ", o.id,"      \
	" p.id, " protocol ", 'admin:1', '\\x00', 'p256', 90, " serial ", " der ", " reason      \
	" FROM organizations o, profiles p"
	CHECK(exec_fails(db, CERT_ROW("'bogus'", "'acme'", "NULL", "NULL", "NULL"), "23514"));
	CHECK(exec_fails(db, CERT_ROW("'requested'", "'smtp'", "NULL", "NULL", "NULL"), "23514"));
	CHECK(exec_fails(db, CERT_ROW("'issued'", "'acme'", "'01'", "NULL", "NULL"), "23514"));
	CHECK(exec_fails(db, CERT_ROW("'revoked'", "'acme'", "NULL", "'\\x30'", "1"), "23514"));
	CHECK(exec_fails(db, CERT_ROW("'revoked'", "'acme'", "'01'", "'\\x30'", "11"), "23514"));
	CHECK(exec_fails(db, CERT_ROW("'revoked'", "'acme'", "'01'", "'\\x30'", "-1"), "23514"));
	CHECK(value_long(db, "SELECT count(*) FROM certificates") == 0);
	CHECK(exec_ok(db, CERT_ROW("'requested'", "'scep'", "NULL", "NULL", "NULL")));
	CHECK(exec_ok(db, CERT_ROW("'revoked'", "'est'", "'01'", "'\\x30'", "10")));
	CHECK(value_long(db, "SELECT count(*) FROM certificates") == 2);
#undef CERT_ROW

	/* The value lists of migration 006's domains and the ranges of
	 * 008's: each takes its values and refuses others (23514, as the
	 * table CHECKs did). */
	static const struct {
		const char *domain, *good, *bad;
	} lists[] = {
	    {"certificate_status", "expired", "valid"},
	    {"certificate_protocol", "est", "smtp"},
	    {"audit_outcome", "held", "maybe"},
	    {"acme_order_status", "processing", "expired"},
	    {"acme_authz_status", "deactivated", "ready"},
	    {"acme_identifier_type", "ip", "email"},
	    {"acme_challenge_type", "tls-alpn-01", "dns-02"},
	    {"acme_challenge_status", "processing", "expired"},
	    /* migration 008's, from the table CHECKs of term_days and
	     * revocation_reason */
	    {"term_days", "1", "0"},
	    {"revocation_reason", "10", "11"},
	};
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		char sql[160];

		snprintf(sql, sizeof(sql), "SELECT '%s'::%s", lists[i].good, lists[i].domain);
		CHECK(exec_ok(db, sql));
		snprintf(sql, sizeof(sql), "SELECT '%s'::%s", lists[i].bad, lists[i].domain);
		CHECK(exec_fails(db, sql, "23514"));
	}

	/* The plain unique violation of db_exec's error path. */
	CHECK(exec_fails(db,
	                 "INSERT INTO organizations (name) VALUES "
	                 "('Org A')",
	                 "23505"));
	CHECK(value_long(db, "SELECT count(*) FROM organizations") == 1);
	/* A syntax error is the statement's fault, not the connection's. */
	CHECK(exec_fails(db, "SELEC 1", "42601"));
	CHECK(!db_unavailable(db));
}

/* Migration 008: the parents that the rows of every issuance reference
 * (organizations, departments, profiles, endpoints, admins, ACME accounts,
 * certificates) keep their rows: no foreign key from certificates,
 * acme_orders or acme_authzs is checked per insert any more, and a DELETE or
 * TRUNCATE of a parent is refused with the foreign key's SQLSTATE (23503),
 * with or without children, and changes nothing. The foreign keys to
 * parents that retention deletes stay. Runs after test_schema_guards (Org A,
 * profile p1, admins m1 and r1, two certificates). */
static void test_never_deleted(struct db *db)
{
	static const char *const parents[] = {
	    "organizations", "departments",   "profiles",     "endpoints",
	    "admins",        "acme_accounts", "certificates",
	};
	static const char counts_sql[] = "SELECT (SELECT count(*) FROM organizations) * 1000000"
	                                 " + (SELECT count(*) FROM departments) * 100000"
	                                 " + (SELECT count(*) FROM profiles) * 10000"
	                                 " + (SELECT count(*) FROM endpoints) * 1000"
	                                 " + (SELECT count(*) FROM admins) * 100"
	                                 " + (SELECT count(*) FROM acme_accounts) * 10"
	                                 " + (SELECT count(*) FROM certificates)";
	long before;
	char sql[160];

	CHECK(exec_ok(db, "INSERT INTO departments (org_id, name) SELECT id, 'Dept A'"
	                  " FROM organizations WHERE name = 'Org A'"));
	CHECK(exec_ok(db, "INSERT INTO endpoints (protocol, name, org_id, default_profile_id,"
	                  " profile_ids) SELECT 'acme', 'e1', o.id, p.id, ARRAY[p.id]"
	                  " FROM organizations o, profiles p"));
	CHECK(exec_ok(db, "INSERT INTO acme_accounts (endpoint_id, key_thumbprint, jwk)"
	                  " SELECT id, 'tp1', '{}' FROM endpoints"));
	/* An issuance's rows: a certificate naming every parent, its order,
	 * and the order's authorization and challenge. */
	CHECK(exec_ok(db, "INSERT INTO certificates (status, org_id, dept_id, profile_id,"
	                  " endpoint_id, protocol, requester, requester_admin_id, csr_der,"
	                  " key_type, term_days, idempotency_key)"
	                  " SELECT 'requested', o.id, d.id, p.id, e.id, 'acme', 'acme:1', a.id,"
	                  " '\\x00', 'p256', 90, 'acme-order:1'"
	                  " FROM organizations o, departments d, profiles p, endpoints e, admins a"
	                  " WHERE a.login = 'r1'"));
	CHECK(exec_ok(db, "INSERT INTO acme_orders (public_id, account_id, identifiers,"
	                  " profile_id, term_days, expires_at, certificate_id)"
	                  " SELECT 'o1', a.id, '[]', p.id, 90, now(), c.id"
	                  " FROM acme_accounts a, profiles p, certificates c"
	                  " WHERE c.idempotency_key = 'acme-order:1'"));
	CHECK(exec_ok(db, "INSERT INTO acme_authzs (public_id, order_id, account_id, id_type,"
	                  " id_value, expires_at) SELECT 'z1', id, account_id, 'dns',"
	                  " 'example.com', now() FROM acme_orders"));
	CHECK(exec_ok(db, "INSERT INTO acme_challenges (public_id, authz_id, type, token)"
	                  " SELECT 'c1', id, 'http-01', 't' FROM acme_authzs"));
	before = value_long(db, counts_sql);
	CHECK(before ==
	      1111213); /* 1 org, dept, profile, endpoint; 2 admins; 1 account; 3 certificates */

	for (size_t i = 0; i < sizeof(parents) / sizeof(parents[0]); i++) {
		/* with children, as the foreign key refused it */
		snprintf(sql, sizeof(sql), "DELETE FROM %s", parents[i]);
		CHECK(exec_fails(db, sql, "23503"));
		/* and a row that nothing references (the admin m1, the
		 * certificates of test_schema_guards) */
		snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = (SELECT max(id) FROM %s)",
		         parents[i], parents[i]);
		CHECK(exec_fails(db, sql, "23503"));
		snprintf(sql, sizeof(sql), "TRUNCATE %s CASCADE", parents[i]);
		CHECK(exec_fails(db, sql, "23503"));
	}
	CHECK(exec_fails(db, "DELETE FROM admins WHERE login = 'm1'", "23503"));
	CHECK(value_long(db, counts_sql) == before);
	CHECK(value_long(db, "SELECT count(*) FROM acme_orders o JOIN acme_authzs z"
	                     " ON z.order_id = o.id JOIN acme_challenges c ON c.authz_id = z.id"
	                     " JOIN certificates x ON x.id = o.certificate_id") == 1);

	/* The foreign keys to parents that retention deletes still hold. */
	CHECK(exec_fails(db, "DELETE FROM acme_orders", "23503"));
	CHECK(exec_fails(db, "DELETE FROM acme_authzs", "23503"));
	CHECK(exec_fails(db,
	                 "INSERT INTO acme_authzs (public_id, order_id, account_id,"
	                 " id_type, id_value, expires_at) SELECT 'z2', max(id) + 1, 1,"
	                 " 'dns', 'example.com', now() FROM acme_orders",
	                 "23503"));
	CHECK(value_long(db, "SELECT count(*) FROM acme_orders") == 1);
	CHECK(value_long(db, "SELECT count(*) FROM acme_authzs") == 1);
	/* ... and retention's delete, children first, goes through. */
	CHECK(exec_ok(db, "WITH dc AS (DELETE FROM acme_challenges RETURNING 1),"
	                  " dz AS (DELETE FROM acme_authzs RETURNING 1)"
	                  " DELETE FROM acme_orders"));
	CHECK(value_long(db, "SELECT count(*) FROM acme_orders") == 0);
	CHECK(value_long(db, counts_sql) == before);
}

/* ---------- the policy facts cache (core/facts.c) ---------- */

#define FACTS_THREADS 8

struct facts_arg {
	const char *conninfo;
	pthread_barrier_t *barrier;
	long long org_id;
	int rc;
	bool org_found;
	char org_name[64];
};

/* One request's facts on a connection of its own, after every thread is
 * ready (so that they all miss together). */
static void *facts_thread(void *p)
{
	struct facts_arg *a = p;
	struct db *db = db_new(a->conninfo);
	struct facts_view v;
	int ok = db != NULL && db_ensure(db) == 0;

	a->rc = -1;
	pthread_barrier_wait(a->barrier);
	if (ok && facts_get(db, 0, a->org_id, 0, 0, 0, NULL, 0, &v) == 0) {
		a->rc = 0;
		a->org_found = v.org_found;
		snprintf(a->org_name, sizeof(a->org_name), "%s", v.org_name ? v.org_name : "");
		facts_view_free(&v);
	}
	db_close(db);
	return NULL;
}

/* FACTS_THREADS requests of org_id at once: how many loads they ran; each
 * must have found the organization named `name`. */
static long facts_burst(const char *conninfo, long long org_id, const char *name)
{
	struct facts_arg args[FACTS_THREADS];
	pthread_t threads[FACTS_THREADS];
	pthread_barrier_t barrier;
	long before = facts_loads();

	pthread_barrier_init(&barrier, NULL, FACTS_THREADS);
	for (int i = 0; i < FACTS_THREADS; i++) {
		memset(&args[i], 0, sizeof(args[i]));
		args[i].conninfo = conninfo;
		args[i].barrier = &barrier;
		args[i].org_id = org_id;
		pthread_create(&threads[i], NULL, facts_thread, &args[i]);
	}
	for (int i = 0; i < FACTS_THREADS; i++) {
		pthread_join(threads[i], NULL);
		CHECK(args[i].rc == 0 && args[i].org_found && strcmp(args[i].org_name, name) == 0);
	}
	pthread_barrier_destroy(&barrier);
	return facts_loads() - before;
}

static void test_facts_cache(struct db *db, const char *conninfo)
{
	long long org = 0;
	long before;
	struct facts_view v;

	CHECK(exec_ok(db, "INSERT INTO organizations (name) VALUES ('facts-single-flight')"));
	org = value_long(db, "SELECT id FROM organizations WHERE name = 'facts-single-flight'");
	CHECK(org > 0);
	facts_cache_flush();
	/* every thread misses at once: one load between them */
	CHECK(facts_burst(conninfo, org, "facts-single-flight") == 1);
	/* cached: no load */
	CHECK(facts_burst(conninfo, org, "facts-single-flight") == 0);
	/* a policy change (the trigger bumps the generation): the next
	 * requests see it, again with one load between them */
	CHECK(exec_ok(db, "UPDATE organizations SET name = 'facts-renamed' WHERE name = "
	                  "'facts-single-flight'"));
	CHECK(facts_burst(conninfo, org, "facts-renamed") == 1);
	/* a request that read an older generation is answered from the newer
	 * cache, without a load */
	before = facts_loads();
	CHECK(facts_get(db, 1, org, 0, 0, 0, NULL, 0, &v) == 0);
	CHECK(v.org_found && strcmp(v.org_name, "facts-renamed") == 0);
	facts_view_free(&v);
	CHECK(facts_loads() == before);
	facts_cache_flush();
}

static void test_values_and_transactions(struct db *db)
{
	char *v = NULL;
	const char *params[2] = {"Org B", NULL};

	/* db_value: NULL column is "", no row is NULL without an error. */
	v = db_value(db, "null_value", "SELECT NULL::text", 0, NULL);
	CHECK(streq(v, ""));
	free(v);
	v = db_value(db, "no_row", "SELECT 1 WHERE false", 0, NULL);
	CHECK(v == NULL && db->last_sqlstate[0] == '\0');
	free(v);
	/* Parameters are text; a NULL entry is SQL NULL. */
	v = db_value(db, "params", "SELECT $1 || coalesce($2, '-null')", 2, params);
	CHECK(streq(v, "Org B-null"));
	free(v);

	/* Rolled back: nothing written. */
	CHECK(db_begin(db) == 0);
	CHECK(exec_ok(db, "INSERT INTO organizations (name) VALUES ('Org B')"));
	db_rollback(db);
	CHECK(value_long(db, "SELECT count(*) FROM organizations WHERE name = "
	                     "'Org B'") == 0);
	/* A failed statement poisons the transaction: COMMIT reports it. */
	CHECK(db_begin(db) == 0);
	CHECK(exec_ok(db, "INSERT INTO organizations (name) VALUES ('Org B')"));
	CHECK(exec_fails(db, "INSERT INTO organizations (name) VALUES ('')", "23514"));
	CHECK(db_commit(db) == -1);
	CHECK(value_long(db, "SELECT count(*) FROM organizations WHERE name = "
	                     "'Org B'") == 0);
	/* Committed: written. */
	CHECK(db_begin(db) == 0);
	CHECK(exec_ok(db, "INSERT INTO organizations (name) VALUES ('Org B')"));
	CHECK(db_audit(db, "system", "org.create", "organization", 2, 0, 0, NULL, NULL, NULL) == 0);
	CHECK(db_commit(db) == 0);
	CHECK(value_long(db, "SELECT count(*) FROM organizations WHERE name = "
	                     "'Org B'") == 1);
}

/* Ends `db`'s server session from `other` and waits until its goodbye has
 * reached db's socket (readable), as for a session ended while idle. */
static bool terminate_backend(struct db *other, struct db *db)
{
	long pid = value_long(db, "SELECT pg_backend_pid()");
	char sql[128];
	struct pollfd pfd;

	if (pid <= 0)
		return false;
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%ld)::int", pid);
	if (value_long(other, sql) != 1)
		return false;
	pfd.fd = PQsocket(db->conn);
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 5000) != 1)
		return false;
	sleep_ms(100); /* the FIN after the FATAL message */
	return true;
}

/*
 * db_request_begin() finds an idle connection the server closed and
 * reconnects before the request; inside the request db_ensure() trusts the
 * connection (no poll), a failing statement still marks it broken and
 * db_ensure() reconnects; after db_request_end() every db_ensure() checks
 * again.
 */
static void test_request_scope(struct db *db, const char *conninfo)
{
	struct db *other = db_new(conninfo);
	uint64_t id;

	CHECK(other != NULL && db_ensure(other) == 0);
	CHECK(db_ensure(db) == 0);
	id = db->conn_id;
	CHECK(terminate_backend(other, db));
	CHECK(db_request_begin(db) == 0);
	CHECK(db->conn_id != id); /* reconnected before the request */
	CHECK(!db_unavailable(db) && exec_ok(db, "SELECT 1"));

	id = db->conn_id;
	CHECK(terminate_backend(other, db));
	CHECK(db_ensure(db) == 0);
	CHECK(db->conn_id == id); /* trusted within the request: not polled */
	CHECK(!exec_ok(db, "SELECT 1"));
	CHECK(db_unavailable(db));
	CHECK(db_ensure(db) == 0); /* broken: reconnects at once */
	CHECK(db->conn_id != id && exec_ok(db, "SELECT 1"));
	db_request_end(db);

	id = db->conn_id;
	CHECK(terminate_backend(other, db));
	CHECK(db_ensure(db) == 0);
	CHECK(db->conn_id != id); /* outside a request: polled, reconnected */
	CHECK(exec_ok(db, "SELECT 1"));
	db_close(other);
}

/* PostgreSQL stopped under an open connection, then started again. */
static void test_outage(struct pgsup **pg, struct db *db, char *conninfo, size_t len)
{
	double t;
	pid_t pid = postmaster_pid();

	CHECK(process_alive(pid));
	pgsup_stop(*pg);
	*pg = NULL;
	CHECK(!process_alive(pid));
	CHECK(cluster_gone_within(2000));

	CHECK(!exec_ok(db, "SELECT 1"));
	CHECK(db_unavailable(db));
	t = now_ms();
	CHECK(db_ensure(db) == -1);
	CHECK(db_unavailable(db));
	CHECK(now_ms() - t < 1000);
	/* Within the retry interval: no attempt at all. */
	t = now_ms();
	for (int i = 0; i < 100; i++)
		CHECK(db_ensure(db) == -1);
	CHECK(now_ms() - t < 50);
	CHECK(db_unavailable(db));

	/* Restart the same cluster: no initdb, the data is still there. */
	CHECK(pgsup_start(state_dir, run_user, NULL, pg, conninfo, len) == 0);
	sleep_ms(550);
	CHECK(db_ensure(db) == 0);
	CHECK(!db_unavailable(db));
	CHECK(value_long(db, "SELECT count(*) FROM audit_log") == 3);
}

/* The postmaster dies behind enrolld's back: the watchdog restarts it. */
static void test_watchdog(struct db *db)
{
	pid_t old = postmaster_pid();
	pid_t now = -1;
	double deadline;
	bool recovered = false;

	CHECK(old > 0 && kill(old, SIGKILL) == 0);
	sleep_ms(100);
	CHECK(!exec_ok(db, "SELECT 1"));
	CHECK(db_unavailable(db));
	deadline = now_ms() + 15000;
	while (now_ms() < deadline) {
		if (db_ensure(db) == 0 && value_long(db, "SELECT count(*) FROM audit_log") == 3) {
			recovered = true;
			break;
		}
		sleep_ms(100);
	}
	CHECK(recovered);
	now = postmaster_pid();
	CHECK(now > 0 && now != old && process_alive(now));
}

/* A second enrolld on the same state directory is refused. */
static void test_lock(void)
{
	struct pgsup *second = NULL;
	char ci[1024];
	pid_t pid = postmaster_pid();

	CHECK(pgsup_start(state_dir, run_user, NULL, &second, ci, sizeof(ci)) == -1);
	CHECK(second == NULL);
	CHECK(process_alive(pid) && postmaster_pid() == pid);
}

/*
 * An enrolld killed with SIGKILL leaves its postgres running; the next
 * start stops that one and runs its own.
 */
static void test_leftover(char *conninfo, size_t len)
{
	struct pgsup *pg = NULL;
	struct db *db = NULL;
	pid_t child, leftover;
	int status;

	child = fork();
	if (child == 0) {
		struct pgsup *cpg = NULL;
		char ci[1024];

		if (pgsup_start(state_dir, run_user, NULL, &cpg, ci, sizeof(ci)) != 0)
			_exit(1);
		kill(getpid(), SIGKILL);
		_exit(2);
	}
	CHECK(child > 0);
	waitpid(child, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	leftover = postmaster_pid();
	CHECK(process_alive(leftover));

	CHECK(pgsup_start(state_dir, run_user, NULL, &pg, conninfo, len) == 0);
	CHECK(!process_alive(leftover));
	CHECK(postmaster_pid() != leftover && process_alive(postmaster_pid()));
	db = db_new(conninfo);
	CHECK(db != NULL && db_ensure(db) == 0);
	CHECK(value_long(db, "SELECT count(*) FROM audit_log") == 3);
	db_close(db);

	pgsup_stop(pg);
	CHECK(cluster_gone_within(2000));
	CHECK(!process_alive(leftover));
}

/*
 * The daemon starts the cluster as root, then setuid()s to the run user:
 * the watchdog must still restart a killed postmaster, and pgsup_stop must
 * still stop it. Runs in a child process (the drop cannot be undone).
 */
static void test_privilege_drop(void)
{
	pid_t child;
	int status;

	child = fork();
	if (child == 0) {
		struct pgsup *pg = NULL;
		struct db *db = NULL;
		struct passwd *pw = getpwnam(run_user);
		char ci[1024];
		double deadline;
		pid_t old, now;
		int bad = 0;

		if (pw == NULL)
			_exit(20);
		if (pgsup_start(state_dir, run_user, NULL, &pg, ci, sizeof(ci)) != 0)
			_exit(21);
		if (setgroups(1, &pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
		    setuid(pw->pw_uid) != 0)
			_exit(22);
		old = postmaster_pid();
		if (old <= 0 || kill(old, SIGKILL) != 0)
			bad |= 1;
		db = db_new(ci);
		deadline = now_ms() + 15000;
		while (now_ms() < deadline) {
			if (db_ensure(db) == 0 &&
			    value_long(db, "SELECT count(*) FROM audit_log") == 3)
				break;
			sleep_ms(100);
		}
		if (db_unavailable(db))
			bad |= 2;
		now = postmaster_pid();
		if (now <= 0 || now == old || !process_alive(now))
			bad |= 4;
		db_close(db);
		pgsup_stop(pg);
		if (!cluster_gone_within(2000) || process_alive(now))
			bad |= 8;
		_exit(bad);
	}
	CHECK(child > 0);
	CHECK(waitpid(child, &status, 0) == child);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "  privilege-drop child: status 0x%x\n", status);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(cluster_processes() == 0);
}

static int make_state_dir(void)
{
	char tmpl[] = "/tmp/enrolld-test-db-XXXXXX";
	struct passwd *pw;

	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(state_dir, sizeof(state_dir), "%s/state", tmpl);
	snprintf(datadir, sizeof(datadir), "%s/pgdata", state_dir);
	if (mkdir(state_dir, 0700) != 0) {
		perror("mkdir");
		return -1;
	}
	if (getuid() == 0) {
		run_user = "enrolld";
		pw = getpwnam(run_user);
		if (pw == NULL) {
			fprintf(stderr, "no user %s\n", run_user);
			return -1;
		}
		if (chown(tmpl, pw->pw_uid, pw->pw_gid) != 0 ||
		    chown(state_dir, pw->pw_uid, pw->pw_gid) != 0) {
			perror("chown");
			return -1;
		}
	}
	return 0;
}

static void remove_state_dir(void)
{
	char cmd[PATH_MAX + 32];
	char *slash;

	slash = strrchr(state_dir, '/');
	if (slash == NULL || strncmp(state_dir, "/tmp/enrolld-test-db-", 21) != 0)
		return;
	*slash = '\0';
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", state_dir);
}

int main(void)
{
	struct pgsup *pg = NULL;
	struct db *db = NULL;
	char conninfo[1024];
	double t0 = now_ms();

	log_init(LOG_LEVEL_WARN);
	if (make_state_dir() != 0)
		return 1;

	CHECK(pgsup_start(state_dir, run_user, NULL, &pg, conninfo, sizeof(conninfo)) == 0);
	if (pg == NULL) {
		printf("%d passed, %d failed\n", passed, failed + 1);
		remove_state_dir();
		return 1;
	}
	CHECK(strstr(conninfo, "dbname=enrolld") != NULL);
	CHECK(strstr(conninfo, "/pgsock") != NULL);
	fprintf(stderr, "cluster up after %.0f ms\n", now_ms() - t0);

	db = db_new(conninfo);
	CHECK(db != NULL && db_ensure(db) == 0);
	/* Only the Unix socket: no TCP listener. */
	CHECK(value_long(db, "SELECT count(*) FROM pg_settings WHERE name = "
	                     "'listen_addresses' AND setting = ''") == 1);
	CHECK(value_long(db, "SELECT count(*) FROM pg_settings WHERE name = "
	                     "'fsync' AND setting = 'on'") == 1);

	test_migrate(db);
	test_concurrent_migrate(db, conninfo);
	test_audit(db);
	test_schema_guards(db);
	test_never_deleted(db);
	test_facts_cache(db, conninfo);
	test_values_and_transactions(db);
	test_request_scope(db, conninfo);
	test_lock();
	test_outage(&pg, db, conninfo, sizeof(conninfo));
	test_watchdog(db);

	pgsup_stop(pg);
	pg = NULL;
	CHECK(cluster_gone_within(2000));
	CHECK(!exec_ok(db, "SELECT 1") && db_unavailable(db));
	db_close(db);

	test_leftover(conninfo, sizeof(conninfo));
	CHECK(cluster_processes() == 0);
	if (getuid() == 0)
		test_privilege_drop();

	fprintf(stderr, "total %.0f ms\n", now_ms() - t0);
	printf("%d passed, %d failed\n", passed, failed);
	if (failed == 0)
		remove_state_dir();
	else
		fprintf(stderr, "state left in %s\n", state_dir);
	return failed == 0 ? 0 : 1;
}
