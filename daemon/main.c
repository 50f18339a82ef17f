/*
 * main.c: enrolld's process life.
 *
 *   enrolld [-c FILE] [--check-config] [--version] [--help]
 *
 * Start-up, in this order (each step needs the one before):
 *   1. config (-c FILE, else $ENROLLD_CONFIG, else built-in defaults); logging
 *   2. as root: find the run user, create/own the state directory
 *   3. database: the embedded PostgreSQL (pgsup) unless database_url is set
 *   4. one connection: migrations, first master admin token (printed once and
 *      written to state_dir/initial-admin-token, 0600)
 *   5. ca_open(): forks the signer, so it comes before any of our threads
 *   6. listeners (bound while still root, for ports < 1024)
 *   7. as root: drop to the run user for good
 *   8. worker threads, the ACME validator threads (acme_validate.h), the
 *      retention thread (retention.h), "enrolld: ready", sd_notify READY=1
 *
 * Signals arrive as libevent events on the loop thread: SIGTERM/SIGINT stop
 * accepting, let in-flight requests finish (at most MAIN_DRAIN_SECONDS), then
 * stop workers, the ACME validator, the CA and PostgreSQL and exit 0. SIGHUP re-reads the config
 * file and the TLS certificates (http_server_reload()); a bad file is logged
 * and the running configuration kept.
 *
 * stdout carries the few lines an operator or a test harness waits for (the
 * admin URL, the first token, "enrolld: ready"), flushed as written; logs go
 * to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "acme/acme_jws.h"
#include "acme_validate.h"
#include "ca.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "notify.h"
#include "privdrop.h"
#include "retention.h"
#include "tokens.h"
#include "workers.h"

/* How long SIGTERM waits for requests already being handled. */
#define MAIN_DRAIN_SECONDS 10

#ifndef ENROLLD_VERSION
#define ENROLLD_VERSION "0.1.0"
#endif

/* Everything the signal handlers need; lives in main()'s frame. */
struct main_state {
	struct event_base *base;
	struct enrolld_config *cfg;	/* as started; the CA keeps a pointer */
	const char *config_path;	/* NULL: built-in defaults */
	struct http_server *http;
	struct workers *workers;
	bool validator_started;
	bool retention_started;
	struct event *drain_timer;
	struct timespec drain_started;
	bool stopping;
	bool drain_timed_out;
};

static void
main_usage(FILE *f)
{
	fprintf(f,
	    "usage: enrolld [-c FILE] [--check-config] [--version] [--help]\n"
	    "  -c, --config FILE   configuration file (default: $ENROLLD_CONFIG, else\n"
	    "                      built-in defaults)\n"
	    "  --check-config      parse the configuration, report, and exit\n"
	    "  --version           print the version and exit\n"
	    "  --help              this text\n");
}

/* Writes the first admin token to state_dir/initial-admin-token (0600). */
static int
main_write_token(const char *state_dir, const char *token, const struct privdrop_user *owner,
    char *path, size_t path_len)
{
	int fd = -1, rc = -1;
	size_t len = strlen(token), off = 0;
	ssize_t n;

	snprintf(path, path_len, "%s/initial-admin-token", state_dir);
	/* O_EXCL after unlink: never write through a planted symlink. */
	if (unlink(path) != 0 && errno != ENOENT) {
		log_errorx("unlink(%s): %s", path, strerror(errno));
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_errorx("open(%s): %s", path, strerror(errno));
		goto out;
	}
	while (off < len) {
		n = write(fd, token + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_errorx("write(%s): %s", path, strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	if (write(fd, "\n", 1) != 1) {
		log_errorx("write(%s): %s", path, strerror(errno));
		goto out;
	}
	if (owner != NULL && fchown(fd, owner->uid, owner->gid) != 0) {
		log_errorx("fchown(%s, %s): %s", path, owner->name, strerror(errno));
		goto out;
	}
	if (fsync(fd) != 0) {
		log_errorx("fsync(%s): %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/*
 * Step 4: migrations and the first master administrator, on a connection of
 * its own that is closed before the workers start.
 */
static int
main_prepare_database(const char *conninfo, const char *state_dir,
    const struct privdrop_user *owner)
{
	struct db *db = NULL;
	char token[TOKENS_BUF_SIZE];
	char path[PATH_MAX + 32];
	int rc = -1, made;

	db = db_new(conninfo);
	if (db == NULL) {
		log_errorx("db_new: failed");
		goto out;
	}
	if (db_ensure(db) != 0) {
		log_errorx("db_ensure: cannot connect to PostgreSQL");
		goto out;
	}
	if (db_migrate(db) != 0) {
		log_errorx("db_migrate: failed");
		goto out;
	}
	made = tokens_bootstrap(db, token, sizeof(token));
	if (made < 0) {
		log_errorx("tokens_bootstrap: failed");
		goto out;
	}
	if (made == 1) {
		if (main_write_token(state_dir, token, owner, path, sizeof(path)) != 0)
			goto out;
		printf("enrolld: first master admin token: %s\n", token);
		printf("enrolld: (also written to %s)\n", path);
		fflush(stdout);
		log_info("created the first master administrator; its token is in %s", path);
	}
	rc = 0;
out:
	OPENSSL_cleanse(token, sizeof(token));
	db_close(db);
	return rc;
}

/* --- signals --------------------------------------------------------------- */

static void
main_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct main_state *st = arg;
	struct timespec now;
	double waited;

	(void)fd;
	(void)what;
	clock_gettime(CLOCK_MONOTONIC, &now);
	waited = (double)(now.tv_sec - st->drain_started.tv_sec) +
	    (double)(now.tv_nsec - st->drain_started.tv_nsec) / 1e9;
	if ((st->workers == NULL || workers_in_flight(st->workers) == 0) &&
	    (st->http == NULL || http_server_sending(st->http) == 0)) {
		event_base_loopexit(st->base, NULL);
		return;
	}
	if (waited >= MAIN_DRAIN_SECONDS) {
		log_warnx("shutdown: %zu request(s) still running after %d s; exiting anyway",
		    workers_in_flight(st->workers), MAIN_DRAIN_SECONDS);
		st->drain_timed_out = true;
		event_base_loopexit(st->base, NULL);
	}
}

static void
main_on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct main_state *st = arg;
	struct timeval tick = { 0, 50 * 1000 };

	(void)what;
	if (st->stopping)
		return;
	st->stopping = true;
	log_info("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	(void)notify_send("STOPPING=1");
	http_server_stop_accepting(st->http);
	clock_gettime(CLOCK_MONOTONIC, &st->drain_started);
	/* Poll the in-flight count: cheap, and bounded by the deadline. */
	st->drain_timer = event_new(st->base, -1, EV_PERSIST, main_drain_check, st);
	if (st->drain_timer == NULL || event_add(st->drain_timer, &tick) != 0) {
		log_errorx("event_new(drain timer): failed; exiting now");
		event_base_loopexit(st->base, NULL);
		return;
	}
	main_drain_check(-1, 0, st);
}

static void
main_on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct main_state *st = arg;
	struct enrolld_config *next = NULL;
	char err[512];

	(void)sig;
	(void)what;
	if (st->stopping)
		return;
	(void)notify_reloading();
	log_info("SIGHUP: reloading %s", st->config_path != NULL ? st->config_path :
	    "(built-in defaults; TLS certificates only)");
	next = malloc(sizeof(*next));
	if (next == NULL) {
		log_errorx("reload: out of memory");
		goto out;
	}
	if (st->config_path != NULL) {
		if (config_load(next, st->config_path, err, sizeof(err)) != 0) {
			log_errorx("reload: %s; keeping the running configuration", err);
			goto out;
		}
	} else {
		memcpy(next, st->cfg, sizeof(*next));
	}
	if (http_server_reload(st->http, next) != 0)
		log_errorx("reload: failed; keeping the running configuration");
	else
		retention_reload(next);
out:
	free(next);
	(void)notify_send("READY=1");
}

/* --- main ------------------------------------------------------------------ */

int
main(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct main_state st;
	struct enrolld_config *cfg = NULL;
	struct privdrop_user run_user;
	const struct privdrop_user *owner = NULL;
	struct pgsup *pg = NULL;
	struct ca *ca = NULL;
	struct event *ev_term = NULL, *ev_int = NULL, *ev_hup = NULL;
	struct event_config *ev_cfg = NULL;
	char conninfo[2048];
	char err[512], url[PATH_MAX];
	const char *config_path = NULL;
	enum log_level level = LOG_LEVEL_INFO;
	bool check_only = false, as_root;
	int opt, rc = 1;

	memset(&st, 0, sizeof(st));
	while ((opt = getopt_long(argc, argv, "c:h", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'C':
			check_only = true;
			break;
		case 'V':
			printf("enrolld %s\n", ENROLLD_VERSION);
			return 0;
		case 'h':
			main_usage(stdout);
			return 0;
		default:
			main_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "enrolld: unexpected argument '%s'\n", argv[optind]);
		main_usage(stderr);
		return 2;
	}
	if (config_path == NULL) {
		const char *env = getenv("ENROLLD_CONFIG");

		if (env != NULL && env[0] != '\0')
			config_path = env;
	}

	/* 1. configuration and logging */
	cfg = malloc(sizeof(*cfg));
	if (cfg == NULL) {
		fprintf(stderr, "enrolld: out of memory\n");
		return 1;
	}
	if (config_path != NULL) {
		if (config_load(cfg, config_path, err, sizeof(err)) != 0) {
			fprintf(stderr, "enrolld: %s\n", err);
			goto out;
		}
	} else {
		config_defaults(cfg);
	}
	if (log_level_parse(cfg->log_level, &level) != 0)
		level = LOG_LEVEL_INFO;
	log_init(level);
	if (check_only) {
		printf("enrolld: configuration %s is valid\n",
		    config_path != NULL ? config_path : "(built-in defaults)");
		rc = 0;
		goto out;
	}
	st.cfg = cfg;
	st.config_path = config_path;

	/* A client closing early must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	/* stdout lines are what harnesses wait for: never leave them buffered. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* 2. run user and state directory */
	as_root = geteuid() == 0;
	if (as_root) {
		if (privdrop_lookup(cfg->user, &run_user) != 0)
			goto out;
		owner = &run_user;
	}
	if (privdrop_state_dir(cfg->state_dir, owner) != 0)
		goto out;

	/* 3. database */
	if (cfg->database_url[0] == '\0') {
		if (pgsup_start(cfg->state_dir, owner != NULL ? owner->name : NULL,
		    cfg->pg_bindir[0] != '\0' ? cfg->pg_bindir : NULL, &pg,
		    conninfo, sizeof(conninfo)) != 0) {
			log_errorx("pgsup_start(%s): cannot start the embedded PostgreSQL",
			    cfg->state_dir);
			goto out;
		}
	} else {
		snprintf(conninfo, sizeof(conninfo), "%s", cfg->database_url);
	}

	/* 4. schema and first administrator */
	if (main_prepare_database(conninfo, cfg->state_dir, owner) != 0)
		goto out;

	/* 5. the CA and its signer process */
	if (ca_open(cfg, &ca) != 0) {
		log_errorx("ca_open: failed");
		goto out;
	}
	/* Bootstrapped TLS files must stay readable after the privilege drop
	 * (SIGHUP re-reads them). The CA keys stay with the signer. */
	if (owner != NULL) {
		const char *tls_files[2] = { ca_tls_cert_path(ca), ca_tls_key_path(ca) };
		int i;

		for (i = 0; i < 2; i++) {
			if (tls_files[i] != NULL && tls_files[i][0] != '\0' &&
			    strncmp(tls_files[i], cfg->state_dir, strlen(cfg->state_dir)) == 0 &&
			    privdrop_chown(tls_files[i], owner) != 0)
				goto out;
		}
	}

	/* 6. listeners */
	/* The epoll change list folds the several changes a reply makes to one
	 * connection's interest set (enable write, enable read, disable write
	 * after the flush) into one epoll_ctl() per loop turn. It is unsafe
	 * only with dup()ed descriptors in the loop, and enrolld has none. */
	ev_cfg = event_config_new();
	if (ev_cfg == NULL ||
	    event_config_set_flag(ev_cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) != 0) {
		log_errorx("event_config_new: failed");
		goto out;
	}
	st.base = event_base_new_with_config(ev_cfg);
	event_config_free(ev_cfg);
	ev_cfg = NULL;
	if (st.base == NULL) {
		log_errorx("event_base_new: failed");
		goto out;
	}
	if (http_server_start(st.base, cfg, ca, &st.http) != 0)
		goto out;

	/* 7. no more root */
	if (owner != NULL && privdrop_drop(owner) != 0)
		goto out;

	/* 8. workers, signals, ready */
	if (workers_start(st.base, cfg->workers, cfg->queue_max, conninfo, ca,
	    http_server_job_done, st.http, &st.workers) != 0)
		goto out;
	http_server_set_workers(st.http, st.workers);
	/* After the privilege drop (the validator makes outbound connections)
	 * and after the workers (the ACME door submits to it). */
	if (acme_validator_start(cfg, conninfo) != 0) {
		log_errorx("acme_validator_start: failed");
		goto out;
	}
	st.validator_started = true;
	/* The ACME tables' retention: a thread and a connection of its own. */
	if (retention_start(cfg, conninfo) != 0)
		goto out;
	st.retention_started = true;

	ev_term = evsignal_new(st.base, SIGTERM, main_on_stop, &st);
	ev_int = evsignal_new(st.base, SIGINT, main_on_stop, &st);
	ev_hup = evsignal_new(st.base, SIGHUP, main_on_hup, &st);
	if (ev_term == NULL || ev_int == NULL || ev_hup == NULL ||
	    event_add(ev_term, NULL) != 0 || event_add(ev_int, NULL) != 0 ||
	    event_add(ev_hup, NULL) != 0) {
		log_errorx("evsignal_new/event_add: failed");
		goto out;
	}

	if (http_server_admin_url(st.http, url, sizeof(url)))
		printf("enrolld: admin API at %s\n", url);
	if (ca_root_cert_path(ca) != NULL)
		printf("enrolld: CA root certificate at %s\n", ca_root_cert_path(ca));
	printf("enrolld: ready\n");
	fflush(stdout);
	log_info("ready: %d workers, queue %d", cfg->workers, cfg->queue_max);
	(void)notify_send("READY=1");

	if (event_base_dispatch(st.base) < 0) {
		log_errorx("event_base_dispatch: failed");
		goto out;
	}
	rc = 0;
out:
	/* Tear down in reverse; each step tolerates what was never started. */
	if (ev_cfg != NULL)
		event_config_free(ev_cfg);
	if (st.drain_timer != NULL)
		event_free(st.drain_timer);
	if (ev_term != NULL)
		event_free(ev_term);
	if (ev_int != NULL)
		event_free(ev_int);
	if (ev_hup != NULL)
		event_free(ev_hup);
	if (st.workers != NULL) {
		workers_stop(st.workers);
		/* A worker stuck past the deadline may still hold the CA, the
		 * database and requests: leave them to exit(). */
		if (st.drain_timed_out)
			goto skip_free;
	}
	/* No request runs now, so no ES256 key table build starts; one still
	 * running must leave OpenSSL before exit() runs its cleanup. */
	acme_jws_tables_wait();
	/* Before PostgreSQL stops: a check in progress is cancelled and its
	 * challenge stays 'processing' for the next start. */
	if (st.retention_started)
		retention_stop();
	if (st.validator_started)
		acme_validator_stop();
	http_server_free(st.http);
	if (ca != NULL)
		ca_close(ca);
	if (pg != NULL)
		pgsup_stop(pg);
	if (st.base != NULL)
		event_base_free(st.base);
	free(cfg);
	if (rc == 0 && !check_only)
		log_info("stopped");
	return rc;
skip_free:
	/* A handler is still running: stop PostgreSQL, then leave without
	 * atexit handlers (OpenSSL's cleanup would pull state from under it). */
	if (st.retention_started)
		retention_stop();
	if (st.validator_started)
		acme_validator_stop();
	if (pg != NULL)
		pgsup_stop(pg);
	log_info("stopped (with requests abandoned)");
	fflush(stdout);
	_exit(rc);
}
