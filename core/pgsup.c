/*
 * pgsup.c: the embedded PostgreSQL, supervised by enrolld (db.h).
 *
 * With no database.url, enrolld runs its own cluster in its state directory:
 *
 *   state_dir/pgdata/          the cluster (initdb on first start)
 *   state_dir/pgsock/          0700, owned by the run user: the only way in
 *   state_dir/postgresql.log   postgres's stderr
 *   state_dir/pgsup.lock       flock: one enrolld per state directory
 *
 * PostgreSQL refuses to run as root, so when enrolld starts as root the
 * postgres processes (initdb included) run as the configured user; otherwise
 * they run as the current user. The run user is the cluster's superuser and
 * the database role enrolld connects as. No TCP listener exists
 * (listen_addresses = ''); the Unix socket uses peer authentication mapped
 * (pg_ident.conf) from the run user and from root to that role, so only those
 * two can log in even if the directory's permissions were loosened.
 *
 * initdb runs into pgdata.init and is renamed to pgdata when complete, so a
 * start killed half-way leaves nothing that looks like a cluster.
 *
 * postgres is a child process in its own session (a Ctrl-C on the terminal or
 * a signal to enrolld's process group does not reach it: enrolld decides when
 * the database stops, after its workers are done). A watchdog thread waits
 * for it and restarts it, with back-off, if it dies while enrolld runs. The
 * daemon may setuid() to the run user after pgsup_start(): signalling and
 * restarting a postgres of that same uid still works.
 *
 * A postgres left running by an enrolld that was killed with SIGKILL keeps
 * serving (postgres is not told that its parent died). It is found through
 * postmaster.pid and stopped, then a fresh child is started: reusing it would
 * leave a postmaster we cannot wait for and whose settings may be stale. The
 * state-directory lock guarantees no live enrolld still owns it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"

#define PGSUP_PORT "5432"
#define PGSUP_DBNAME "enrolld"
/* How long postgres may take to accept connections after a (re)start. */
#define PGSUP_READY_TIMEOUT_MS 30000
/* Fast shutdown, then immediate shutdown (SIGQUIT), then SIGKILL. */
#define PGSUP_STOP_TIMEOUT_MS 20000
#define PGSUP_QUIT_TIMEOUT_MS 5000
/* Watchdog back-off between restarts: doubles from min to max. */
#define PGSUP_BACKOFF_MIN_MS 200
#define PGSUP_BACKOFF_MAX_MS 10000
/* postgresql.log is moved to postgresql.log.1 at start beyond this size. */
#define PGSUP_LOG_ROTATE_BYTES (16L * 1024 * 1024)

struct pgsup {
	char *state_dir; /* absolute */
	char *datadir;   /* state_dir/pgdata */
	char *sockdir;   /* state_dir/pgsock */
	char *logpath;   /* state_dir/postgresql.log */
	char *bindir;    /* holds initdb and postgres */
	char *role;      /* run user's name = database superuser */
	uid_t uid;       /* run user */
	gid_t gid;
	int lock_fd; /* flock on state_dir/pgsup.lock, held until stop */

	pthread_mutex_t mutex; /* guards the fields below */
	pthread_cond_t cond;
	pid_t pid;     /* running postmaster (our child), or -1 */
	bool stopping; /* pgsup_stop() called: do not restart */
	bool watchdog_done;
	bool watchdog_started;
	pthread_t watchdog;
};

/*
 * Tuning for an RA: many short transactions from up to 64 workers, each a
 * few rows and one commit. Rewritten at every start (edit with ALTER SYSTEM,
 * which overrides it, not by hand). fsync, synchronous_commit and
 * full_page_writes stay on: an issued certificate must survive a crash.
 */
static const char pgsup_conf[] =
    "# enrolld.conf: written by enrolld at every start; use ALTER SYSTEM to\n"
    "# override (postgresql.auto.conf wins over this file).\n"
    "# 64 workers + admin + background jobs of one enrolld, with room for a\n"
    "# second instance during a rolling restart and for psql.\n"
    "max_connections = 150\n"
    "superuser_reserved_connections = 3\n"
    "# Modest: the working set (profiles, domains, recent certificates) is\n"
    "# small and the OS page cache does the rest.\n"
    "shared_buffers = 128MB\n"
    "effective_cache_size = 512MB\n"
    "work_mem = 4MB\n"
    "maintenance_work_mem = 64MB\n"
    "random_page_cost = 1.1\n"
    "jit = off\n"
    "# Durability stays on.\n"
    "fsync = on\n"
    "synchronous_commit = on\n"
    "full_page_writes = on\n"
    "# Group commit: PostgreSQL already lets one WAL flush cover the\n"
    "# commits queued behind it. commit_delay adds a wait on top, which only\n"
    "# pays where a flush is slow: measured with pgbench (64 clients, one\n"
    "# audit_log INSERT per transaction, fsync ~50 us) it cost throughput:\n"
    "# 0: 22.7k tps, 25 us: 19.2k, 200 us: 13.4k, 1000 us: 12.3k. On a disk\n"
    "# with slow flushes set it (ALTER SYSTEM) to about half the 8kB flush\n"
    "# time reported by pg_test_fsync.\n"
    "commit_delay = 0\n"
    "commit_siblings = 5\n"
    "checkpoint_timeout = 15min\n"
    "max_wal_size = 1GB\n"
    "# A transaction leaked by a bug must not hold locks forever.\n"
    "idle_in_transaction_session_timeout = '60s'\n"
    "# Never copy bind parameters (token hashes, challenges) into the log.\n"
    "log_parameter_max_length = 0\n"
    "log_parameter_max_length_on_error = 0\n"
    "log_min_duration_statement = '2s'\n"
    "log_line_prefix = '%m [%p] %q%u@%d '\n"
    "log_timezone = 'UTC'\n"
    "timezone = 'UTC'\n"
    "cluster_name = 'enrolld'\n";

/* Returns "a/b", newly allocated; the caller frees. NULL on failure. */
static char *pgsup_path(const char *dir, const char *name)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", dir, name) < 0) {
		log_errorx("asprintf(path): %s", strerror(errno));
		return NULL;
	}
	return p;
}

static int64_t pgsup_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pgsup_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static bool pgsup_is_executable(const char *dir, const char *name)
{
	char *p = NULL;
	bool ok;

	p = pgsup_path(dir, name);
	if (p == NULL)
		return false;
	ok = access(p, X_OK) == 0;
	free(p);
	return ok;
}

/* Compares "15" and "9.6" style version directory names numerically. */
static int pgsup_version_cmp(const char *a, const char *b)
{
	long ma = strtol(a, NULL, 10), mb = strtol(b, NULL, 10);

	if (ma != mb)
		return ma < mb ? -1 : 1;
	return strcmp(a, b);
}

/*
 * Finds the directory holding postgres and initdb: `pg_config --bindir` when
 * that has them, else the highest /usr/lib/postgresql/<version>/bin (Debian
 * installs the server there, off PATH). Newly allocated; the caller frees.
 */
static char *pgsup_find_bindir(void)
{
	char line[PATH_MAX];
	char best_version[64] = "";
	char *found = NULL;
	FILE *f = NULL;
	DIR *d = NULL;
	struct dirent *de;

	f = popen("pg_config --bindir 2>/dev/null", "r");
	if (f != NULL) {
		if (fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\r\n")] = '\0';
			if (line[0] == '/' && pgsup_is_executable(line, "postgres") &&
			    pgsup_is_executable(line, "initdb"))
				found = strdup(line);
		}
		pclose(f);
		if (found != NULL)
			return found;
	}

	d = opendir("/usr/lib/postgresql");
	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9' ||
		    strlen(de->d_name) >= sizeof(best_version))
			continue;
		snprintf(line, sizeof(line), "/usr/lib/postgresql/%s/bin", de->d_name);
		if (!pgsup_is_executable(line, "postgres") || !pgsup_is_executable(line, "initdb"))
			continue;
		if (best_version[0] == '\0' || pgsup_version_cmp(de->d_name, best_version) > 0)
			snprintf(best_version, sizeof(best_version), "%s", de->d_name);
	}
	closedir(d);
	if (best_version[0] == '\0')
		return NULL;
	snprintf(line, sizeof(line), "/usr/lib/postgresql/%s/bin", best_version);
	return strdup(line);
}

/*
 * The bindir for an existing cluster is the one of its major version
 * (PG_VERSION), when Debian has it: after an upgrade installs a newer server
 * next to the old one, the highest version could not open the old cluster.
 * Otherwise pgsup_find_bindir(). Newly allocated; the caller frees.
 */
static char *pgsup_find_bindir_for(const char *datadir)
{
	char path[PATH_MAX], version[32] = "";
	FILE *f = NULL;

	snprintf(path, sizeof(path), "%s/PG_VERSION", datadir);
	f = fopen(path, "re");
	if (f != NULL) {
		if (fgets(version, sizeof(version), f) == NULL)
			version[0] = '\0';
		fclose(f);
		version[strcspn(version, "\r\n")] = '\0';
	}
	if (version[0] != '\0' && strspn(version, "0123456789.") == strlen(version)) {
		snprintf(path, sizeof(path), "/usr/lib/postgresql/%s/bin", version);
		if (pgsup_is_executable(path, "postgres") && pgsup_is_executable(path, "initdb"))
			return strdup(path);
	}
	return pgsup_find_bindir();
}

/*
 * Paths end up in postgresql settings (a comma-separated list) and in a
 * conninfo string: refuse the few characters that would need quoting there
 * rather than quote them in three different syntaxes.
 */
static bool pgsup_path_is_plain(const char *p)
{
	for (; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= ' ' || c == 0x7f || c == '\'' || c == '"' || c == '\\' || c == ',')
			return false;
	}
	return true;
}

/*
 * Makes dir exist as a directory (not a symlink) owned by the run user with
 * the given mode. Root fixes ownership; anyone else must already own it.
 */
static int pgsup_private_dir(const struct pgsup *pg, const char *dir, mode_t mode)
{
	struct stat st;

	if (mkdir(dir, mode) != 0 && errno != EEXIST) {
		log_errorx("mkdir(%s): %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) != 0) {
		log_errorx("lstat(%s): %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_errorx("pgsup: %s is not a directory", dir);
		return -1;
	}
	if (st.st_uid != pg->uid) {
		if (geteuid() != 0 || chown(dir, pg->uid, pg->gid) != 0) {
			log_errorx("pgsup: %s is owned by uid %u, not by %s", dir,
			           (unsigned)st.st_uid, pg->role);
			return -1;
		}
	}
	if ((st.st_mode & 07777) != mode && chmod(dir, mode) != 0) {
		log_errorx("chmod(%s): %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Replaces path with content, owned by the run user, mode 0600. */
static int pgsup_write_file(const struct pgsup *pg, const char *path, const char *content)
{
	char *tmp = NULL;
	size_t len = strlen(content);
	int fd = -1;
	int rc = -1;

	if (asprintf(&tmp, "%s.tmp", path) < 0) {
		tmp = NULL;
		log_errorx("asprintf(tmp): %s", strerror(errno));
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_errorx("open(%s): %s", tmp, strerror(errno));
		goto out;
	}
	if (geteuid() == 0 && fchown(fd, pg->uid, pg->gid) != 0) {
		log_errorx("fchown(%s): %s", tmp, strerror(errno));
		goto out;
	}
	if (write(fd, content, len) != (ssize_t)len) {
		log_errorx("write(%s): %s", tmp, strerror(errno));
		goto out;
	}
	if (fsync(fd) != 0) {
		log_errorx("fsync(%s): %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		log_errorx("close(%s): %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		log_errorx("rename(%s): %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0 && tmp != NULL)
		unlink(tmp);
	free(tmp);
	return rc;
}

static int pgsup_rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (remove(path) != 0 && errno != ENOENT) {
		log_warnx("remove(%s): %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* rm -rf dir; 0 also when it did not exist. */
static int pgsup_rmtree(const char *dir)
{
	struct stat st;

	if (lstat(dir, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	return nftw(dir, pgsup_rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

/*
 * fork + exec argv[0] as the run user, in a new session, stdin from
 * /dev/null, stdout and stderr to the PostgreSQL log, and no other descriptor
 * (the daemon's listeners and the signer socket must not leak into postgres).
 * Returns the child's pid, or -1.
 */
static pid_t pgsup_spawn(const struct pgsup *pg, char *const argv[])
{
	int devnull = -1, logfd = -1;
	bool drop = geteuid() == 0;
	pid_t pid = -1;

	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0) {
		log_errorx("open(/dev/null): %s", strerror(errno));
		goto out;
	}
	logfd = open(pg->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd < 0) {
		log_errorx("open(%s): %s", pg->logpath, strerror(errno));
		goto out;
	}
	if (drop && fchown(logfd, pg->uid, pg->gid) != 0) {
		log_errorx("fchown(%s): %s", pg->logpath, strerror(errno));
		goto out;
	}

	pid = fork();
	if (pid < 0) {
		log_errorx("fork(%s): %s", argv[0], strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* Child: async-signal-safe calls only until exec. */
		static const char fail[] = "enrolld: cannot start postgres child\n";
		struct sigaction dfl;
		sigset_t none;
		int in, lg;

		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		for (int s = 1; s < NSIG; s++)
			if (s != SIGKILL && s != SIGSTOP)
				(void)sigaction(s, &dfl, NULL);
		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		(void)setsid();
		in = fcntl(devnull, F_DUPFD, 10);
		lg = fcntl(logfd, F_DUPFD, 10);
		if (in < 0 || lg < 0 || dup2(in, 0) < 0 || dup2(lg, 1) < 0 || dup2(lg, 2) < 0)
			_exit(126);
		if (close_range(3, ~0U, 0) != 0)
			for (int fd = 3; fd < 65536; fd++)
				(void)close(fd);
		if (drop) {
			gid_t groups[1] = {pg->gid};

			if (setgroups(1, groups) != 0 || setgid(pg->gid) != 0 ||
			    setuid(pg->uid) != 0 || setuid(0) == 0) {
				(void)!write(2, fail, sizeof(fail) - 1);
				_exit(126);
			}
		}
		umask(077);
		if (chdir("/") != 0)
			_exit(126);
		execv(argv[0], argv);
		(void)!write(2, fail, sizeof(fail) - 1);
		_exit(127);
	}
out:
	if (devnull >= 0)
		close(devnull);
	if (logfd >= 0)
		close(logfd);
	return pid;
}

/* Describes a wait status for a log line. */
static void pgsup_status_str(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "status 0x%x", status);
}

/* Logs the last lines of postgresql.log: why postgres or initdb failed. */
static void pgsup_log_tail(const struct pgsup *pg)
{
	char buf[2048];
	char *line, *save = NULL;
	ssize_t n;
	off_t size;
	int fd;

	fd = open(pg->logpath, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)sizeof(buf) - 1)
		(void)lseek(fd, size - (off_t)sizeof(buf) + 1, SEEK_SET);
	else
		(void)lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	line = size > (off_t)sizeof(buf) - 1 ? strchr(buf, '\n') : buf;
	if (line == NULL)
		return;
	for (line = strtok_r(line, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		log_warnx("postgres log: %s", line);
}

/* Makes a rename in dir durable. */
static void pgsup_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (fsync(fd) != 0)
		log_warnx("fsync(%s): %s", dir, strerror(errno));
	close(fd);
}

/* Runs initdb into state_dir/pgdata.init, then renames it to pgdata. */
static int pgsup_initdb(struct pgsup *pg)
{
	char *initdb = NULL, *tmpdir = NULL, *conf = NULL;
	char *role_arg = NULL;
	char status_str[64];
	FILE *f = NULL;
	pid_t pid;
	int status;
	int rc = -1;

	initdb = pgsup_path(pg->bindir, "initdb");
	tmpdir = pgsup_path(pg->state_dir, "pgdata.init");
	if (initdb == NULL || tmpdir == NULL)
		goto out;
	if (asprintf(&role_arg, "--username=%s", pg->role) < 0) {
		role_arg = NULL;
		goto out;
	}
	/* A leftover of an initdb that was killed: ours to remove. */
	if (pgsup_rmtree(tmpdir) != 0) {
		log_errorx("pgsup: cannot remove %s", tmpdir);
		goto out;
	}
	if (pgsup_private_dir(pg, tmpdir, 0700) != 0)
		goto out;

	log_info("pgsup: creating a PostgreSQL cluster in %s", pg->datadir);
	{
		/* peer on the socket (pg_hba.conf is rewritten at start
		 * anyway); no TCP at all. */
		char *const argv[] = {initdb,
		                      "-D",
		                      tmpdir,
		                      role_arg,
		                      "--encoding=UTF8",
		                      "--locale=C",
		                      "--auth-local=peer",
		                      "--auth-host=reject",
		                      "--no-instructions",
		                      NULL};

		pid = pgsup_spawn(pg, argv);
	}
	if (pid < 0)
		goto out;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			log_errorx("waitpid(initdb): %s", strerror(errno));
			goto out;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		pgsup_status_str(status, status_str, sizeof(status_str));
		log_errorx("pgsup: initdb failed (%s)", status_str);
		pgsup_log_tail(pg);
		goto out;
	}

	/* Our settings live in enrolld.conf, included last so they win over
	 * initdb's defaults. */
	conf = pgsup_path(tmpdir, "postgresql.conf");
	if (conf == NULL)
		goto out;
	f = fopen(conf, "ae");
	if (f == NULL) {
		log_errorx("fopen(%s): %s", conf, strerror(errno));
		goto out;
	}
	fputs("\n# enrolld: its settings, rewritten at every start\n"
	      "include 'enrolld.conf'\n",
	      f);
	if (fclose(f) != 0) {
		f = NULL;
		log_errorx("fclose(%s): %s", conf, strerror(errno));
		goto out;
	}
	f = NULL;
	if (rename(tmpdir, pg->datadir) != 0) {
		log_errorx("rename(%s): %s", pg->datadir, strerror(errno));
		goto out;
	}
	pgsup_fsync_dir(pg->state_dir);
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	free(initdb);
	free(tmpdir);
	free(conf);
	free(role_arg);
	return rc;
}

/* Writes enrolld.conf, pg_hba.conf and pg_ident.conf for this start. */
static int pgsup_write_config(struct pgsup *pg)
{
	char *path = NULL, *ident = NULL;
	int rc = -1;
	static const char hba[] =
	    "# pg_hba.conf: written by enrolld at every start.\n"
	    "# Unix socket only (there is no TCP listener); peer authentication\n"
	    "# mapped in pg_ident.conf from the run user and root to the role.\n"
	    "local all all peer map=enrolld\n";

	path = pgsup_path(pg->datadir, "enrolld.conf");
	if (path == NULL || pgsup_write_file(pg, path, pgsup_conf) != 0)
		goto out;
	free(path);
	path = pgsup_path(pg->datadir, "pg_hba.conf");
	if (path == NULL || pgsup_write_file(pg, path, hba) != 0)
		goto out;
	free(path);
	path = pgsup_path(pg->datadir, "pg_ident.conf");
	if (path == NULL)
		goto out;
	if (asprintf(&ident,
	             "# pg_ident.conf: written by enrolld at every start.\n"
	             "# MAPNAME SYSTEM-USERNAME PG-USERNAME\n"
	             "enrolld %s %s\n"
	             "enrolld root %s\n",
	             pg->role, pg->role, pg->role) < 0) {
		ident = NULL;
		goto out;
	}
	if (pgsup_write_file(pg, path, ident) != 0)
		goto out;
	rc = 0;
out:
	free(path);
	free(ident);
	return rc;
}

/* True while pid exists (even if it belongs to another user) and is not a
 * zombie: an orphaned postmaster that exited stays a zombie for as long as
 * its new parent (often a container's pid 1) fails to reap it. */
static bool pgsup_alive(pid_t pid)
{
	char path[64], buf[512];
	char *state = NULL;
	ssize_t n;
	int fd;

	if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')'. */
	state = strrchr(buf, ')');
	return !(state != NULL && state[1] == ' ' && state[2] == 'Z');
}

/* Waits up to timeout_ms for a process that is not our child to go away. */
static bool pgsup_wait_gone(pid_t pid, long timeout_ms)
{
	int64_t deadline = pgsup_now_ms() + timeout_ms;

	while (pgsup_alive(pid)) {
		if (pgsup_now_ms() >= deadline)
			return false;
		pgsup_sleep_ms(50);
	}
	return true;
}

/* True when pid is a postgres whose working directory is our data
 * directory: the postmaster chdir()s there. */
static bool pgsup_is_our_postmaster(const struct pgsup *pg, pid_t pid)
{
	char proc[64], buf[PATH_MAX], real[PATH_MAX];
	ssize_t n;
	FILE *f = NULL;

	snprintf(proc, sizeof(proc), "/proc/%d/comm", (int)pid);
	f = fopen(proc, "re");
	if (f == NULL)
		return false;
	if (fgets(buf, sizeof(buf), f) == NULL) {
		fclose(f);
		return false;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	if (strcmp(buf, "postgres") != 0 && strcmp(buf, "postmaster") != 0)
		return false;
	snprintf(proc, sizeof(proc), "/proc/%d/cwd", (int)pid);
	n = readlink(proc, buf, sizeof(buf) - 1);
	if (n < 0)
		return false;
	buf[n] = '\0';
	if (realpath(pg->datadir, real) == NULL)
		return false;
	return strcmp(buf, real) == 0;
}

/*
 * Deals with a postmaster.pid left by an earlier run. A live postmaster of
 * our data directory (its enrolld was killed) is stopped; a pid file whose
 * pid now belongs to an unrelated process is removed, with the socket lock,
 * because postgres would refuse to start over it. A dead pid is left to
 * postgres, which removes such files itself.
 */
static int pgsup_clear_leftover(const struct pgsup *pg)
{
	char *pidfile = NULL, *socklock = NULL;
	char line[64];
	FILE *f = NULL;
	pid_t pid;
	int rc = -1;

	pidfile = pgsup_path(pg->datadir, "postmaster.pid");
	socklock = pgsup_path(pg->sockdir, ".s.PGSQL." PGSUP_PORT ".lock");
	if (pidfile == NULL || socklock == NULL)
		goto out;
	f = fopen(pidfile, "re");
	if (f == NULL) {
		rc = errno == ENOENT ? 0 : -1;
		if (rc != 0)
			log_errorx("fopen(%s): %s", pidfile, strerror(errno));
		goto out;
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	pid = (pid_t)strtol(line, NULL, 10);
	if (!pgsup_alive(pid)) {
		rc = 0;
		goto out;
	}
	if (!pgsup_is_our_postmaster(pg, pid)) {
		log_info("pgsup: removing stale %s (pid %d is not postgres)", pidfile, (int)pid);
		(void)unlink(pidfile);
		(void)unlink(socklock);
		rc = 0;
		goto out;
	}
	log_warnx("pgsup: postgres (pid %d) left running by a previous "
	          "enrolld; stopping it",
	          (int)pid);
	if (kill(pid, SIGINT) != 0 && errno != ESRCH) {
		log_errorx("kill(%d, SIGINT): %s", (int)pid, strerror(errno));
		goto out;
	}
	if (!pgsup_wait_gone(pid, PGSUP_STOP_TIMEOUT_MS)) {
		log_warnx("pgsup: postgres (pid %d) ignored fast shutdown; "
		          "sending SIGQUIT",
		          (int)pid);
		(void)kill(pid, SIGQUIT);
		if (!pgsup_wait_gone(pid, PGSUP_QUIT_TIMEOUT_MS)) {
			log_errorx("pgsup: postgres (pid %d) will not stop", (int)pid);
			goto out;
		}
	}
	rc = 0;
out:
	free(pidfile);
	free(socklock);
	return rc;
}

/* Moves a large postgresql.log aside so that it does not grow forever. */
static void pgsup_rotate_log(const struct pgsup *pg)
{
	char *old = NULL;
	struct stat st;

	if (stat(pg->logpath, &st) != 0 || st.st_size < PGSUP_LOG_ROTATE_BYTES)
		return;
	if (asprintf(&old, "%s.1", pg->logpath) < 0)
		return;
	if (rename(pg->logpath, old) != 0)
		log_warnx("rename(%s): %s", old, strerror(errno));
	free(old);
}

/* Starts postgres (our child); does not wait for it. -1 on failure. */
static pid_t pgsup_spawn_postgres(const struct pgsup *pg)
{
	char *postgres = NULL, *sockopt = NULL;
	pid_t pid = -1;

	postgres = pgsup_path(pg->bindir, "postgres");
	if (postgres == NULL)
		goto out;
	if (asprintf(&sockopt, "unix_socket_directories=%s", pg->sockdir) < 0) {
		sockopt = NULL;
		goto out;
	}
	{
		/* Listening settings on the command line: they override every
		 * configuration file, ALTER SYSTEM included. */
		char *const argv[] = {postgres,
		                      "-D",
		                      pg->datadir,
		                      "-p",
		                      PGSUP_PORT,
		                      "-c",
		                      "listen_addresses=",
		                      "-c",
		                      sockopt,
		                      "-c",
		                      "unix_socket_permissions=0700",
		                      NULL};

		pid = pgsup_spawn(pg, argv);
	}
out:
	free(postgres);
	free(sockopt);
	return pid;
}

/* conninfo for the run user on our socket; newly allocated. */
static char *pgsup_conninfo(const struct pgsup *pg, const char *dbname)
{
	char *ci = NULL;

	/* pgsup_path_is_plain() vetted the socket path; role names are
	 * login names (no quotes or spaces). */
	if (asprintf(&ci, "host=%s port=%s dbname=%s user=%s", pg->sockdir, PGSUP_PORT, dbname,
	             pg->role) < 0)
		return NULL;
	return ci;
}

/*
 * Waits until postgres pid accepts connections. -1 if it exits first or
 * the timeout passes (the caller then stops it).
 */
static int pgsup_wait_ready(const struct pgsup *pg, pid_t pid)
{
	char *ci = NULL;
	char status_str[64];
	int64_t deadline = pgsup_now_ms() + PGSUP_READY_TIMEOUT_MS;
	int status;
	int rc = -1;

	ci = pgsup_conninfo(pg, "postgres");
	if (ci == NULL)
		goto out;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid) {
			pgsup_status_str(status, status_str, sizeof(status_str));
			log_errorx("pgsup: postgres exited during start-up (%s)", status_str);
			pgsup_log_tail(pg);
			rc = -2; /* reaped: the caller must not wait again */
			goto out;
		}
		if (PQping(ci) == PQPING_OK) {
			rc = 0;
			goto out;
		}
		if (pgsup_now_ms() >= deadline) {
			log_errorx("pgsup: postgres did not accept connections "
			           "within %d s",
			           PGSUP_READY_TIMEOUT_MS / 1000);
			pgsup_log_tail(pg);
			goto out;
		}
		pgsup_sleep_ms(50);
	}
out:
	free(ci);
	return rc;
}

/* Creates the enrolld database unless it exists. */
static int pgsup_create_database(const struct pgsup *pg)
{
	char *ci = NULL;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	int rc = -1;

	ci = pgsup_conninfo(pg, "postgres");
	if (ci == NULL)
		goto out;
	conn = PQconnectdb(ci);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		log_errorx("PQconnectdb(embedded postgres): %s",
		           conn != NULL ? PQerrorMessage(conn) : "out of memory");
		goto out;
	}
	res = PQexec(conn, "SELECT 1 FROM pg_database WHERE datname = '" PGSUP_DBNAME "'");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_errorx("PQexec(find_database): %s", PQerrorMessage(conn));
		goto out;
	}
	if (PQntuples(res) == 1) {
		rc = 0;
		goto out;
	}
	PQclear(res);
	res = PQexec(conn, "CREATE DATABASE " PGSUP_DBNAME);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_errorx("PQexec(create_database): %s", PQerrorMessage(conn));
		goto out;
	}
	log_info("pgsup: created database " PGSUP_DBNAME);
	rc = 0;
out:
	PQclear(res);
	if (conn != NULL)
		PQfinish(conn);
	free(ci);
	return rc;
}

/* Waits for our child pid to exit. If someone else reaped it (ECHILD),
 * polls until the pid is gone. */
static void pgsup_reap(pid_t pid, int *status)
{
	*status = 0;
	for (;;) {
		if (waitpid(pid, status, 0) == pid)
			return;
		if (errno == EINTR)
			continue;
		while (pgsup_alive(pid))
			pgsup_sleep_ms(100);
		return;
	}
}

/*
 * The watchdog: waits for the postmaster; when it dies while enrolld still
 * runs, starts a new one after a back-off (doubling while restarts fail
 * quickly, e.g. while orphaned backends of a killed postmaster still hold
 * its shared memory). Runs off the event loop; workers notice through their
 * broken connections and reconnect by themselves.
 */
static void *pgsup_watchdog(void *arg)
{
	struct pgsup *pg = arg;
	long backoff = PGSUP_BACKOFF_MIN_MS;
	char status_str[64];
	int64_t started = pgsup_now_ms();
	pid_t pid;
	int status;

	for (;;) {
		pthread_mutex_lock(&pg->mutex);
		pid = pg->pid;
		pthread_mutex_unlock(&pg->mutex);

		if (pid > 0) {
			pgsup_reap(pid, &status);
			pthread_mutex_lock(&pg->mutex);
			pg->pid = -1;
			if (pg->stopping)
				break; /* mutex held */
			pthread_mutex_unlock(&pg->mutex);
			pgsup_status_str(status, status_str, sizeof(status_str));
			log_errorx("pgsup: postgres (pid %d) died (%s); "
			           "restarting it",
			           (int)pid, status_str);
			if (pgsup_now_ms() - started > 60000)
				backoff = PGSUP_BACKOFF_MIN_MS;
		}

		/* Sleep the back-off unless told to stop. */
		{
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += backoff / 1000;
			until.tv_nsec += (backoff % 1000) * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_mutex_lock(&pg->mutex);
			while (!pg->stopping &&
			       pthread_cond_timedwait(&pg->cond, &pg->mutex, &until) != ETIMEDOUT)
				;
			if (pg->stopping)
				break; /* mutex held */
			pthread_mutex_unlock(&pg->mutex);
		}
		backoff = backoff * 2 > PGSUP_BACKOFF_MAX_MS ? PGSUP_BACKOFF_MAX_MS : backoff * 2;

		if (pgsup_clear_leftover(pg) != 0)
			continue;
		/* Spawn under the mutex so pgsup_stop() sees the new pid. */
		pthread_mutex_lock(&pg->mutex);
		if (pg->stopping)
			break; /* mutex held */
		pid = pgsup_spawn_postgres(pg);
		pg->pid = pid;
		pthread_mutex_unlock(&pg->mutex);
		if (pid > 0) {
			started = pgsup_now_ms();
			log_info("pgsup: postgres restarted (pid %d)", (int)pid);
		}
	}
	pg->watchdog_done = true;
	pthread_cond_broadcast(&pg->cond);
	pthread_mutex_unlock(&pg->mutex);
	return NULL;
}

/* Frees pg; the postmaster must already be gone. */
static void pgsup_free(struct pgsup *pg)
{
	if (pg == NULL)
		return;
	if (pg->lock_fd >= 0)
		close(pg->lock_fd); /* releases the flock */
	pthread_mutex_destroy(&pg->mutex);
	pthread_cond_destroy(&pg->cond);
	free(pg->state_dir);
	free(pg->datadir);
	free(pg->sockdir);
	free(pg->logpath);
	free(pg->bindir);
	free(pg->role);
	free(pg);
}

/* Resolves who runs postgres: `user` when we are root, else ourselves. */
static int pgsup_resolve_user(struct pgsup *pg, const char *user)
{
	struct passwd *pw = NULL;

	if (geteuid() == 0) {
		if (user == NULL || user[0] == '\0') {
			log_errorx("pgsup: PostgreSQL refuses to run as root; "
			           "configure an unprivileged user");
			return -1;
		}
		pw = getpwnam(user);
		if (pw == NULL) {
			log_errorx("getpwnam(%s): no such user", user);
			return -1;
		}
		if (pw->pw_uid == 0) {
			log_errorx("pgsup: user %s is root; PostgreSQL refuses "
			           "to run as root",
			           user);
			return -1;
		}
	} else {
		pw = getpwuid(geteuid());
		if (pw == NULL) {
			log_errorx("getpwuid(%u): no such user", (unsigned)geteuid());
			return -1;
		}
		if (user != NULL && user[0] != '\0' && strcmp(user, pw->pw_name) != 0)
			log_info("pgsup: not root: PostgreSQL runs as %s, not %s", pw->pw_name,
			         user);
	}
	pg->uid = pw->pw_uid;
	pg->gid = pw->pw_gid;
	pg->role = strdup(pw->pw_name);
	if (pg->role == NULL)
		return -1;
	if (!pgsup_path_is_plain(pg->role)) {
		log_errorx("pgsup: user name %s needs quoting; not supported", pg->role);
		return -1;
	}
	return 0;
}

/*
 * Makes state_dir exist and be usable by the run user (postgres must reach
 * pgdata inside it), and takes the one-enrolld-per-state-directory lock.
 */
static int pgsup_prepare_state_dir(struct pgsup *pg, const char *state_dir)
{
	char real[PATH_MAX];
	char *lockpath = NULL;
	struct stat st;
	int rc = -1;

	if (mkdir(state_dir, 0700) == 0) {
		if (geteuid() == 0 && chown(state_dir, pg->uid, pg->gid) != 0) {
			log_errorx("chown(%s): %s", state_dir, strerror(errno));
			goto out;
		}
	} else if (errno != EEXIST) {
		log_errorx("mkdir(%s): %s", state_dir, strerror(errno));
		goto out;
	}
	if (realpath(state_dir, real) == NULL) {
		log_errorx("realpath(%s): %s", state_dir, strerror(errno));
		goto out;
	}
	if (!pgsup_path_is_plain(real)) {
		log_errorx("pgsup: state directory %s contains a space, quote, "
		           "backslash or comma; not supported",
		           real);
		goto out;
	}
	if (stat(real, &st) != 0) {
		log_errorx("stat(%s): %s", real, strerror(errno));
		goto out;
	}
	if (st.st_uid != pg->uid && !(st.st_mode & S_IXOTH) &&
	    !(st.st_gid == pg->gid && (st.st_mode & S_IXGRP))) {
		log_errorx("pgsup: %s is not accessible to user %s", real, pg->role);
		goto out;
	}
	pg->state_dir = strdup(real);
	pg->datadir = pgsup_path(real, "pgdata");
	pg->sockdir = pgsup_path(real, "pgsock");
	pg->logpath = pgsup_path(real, "postgresql.log");
	lockpath = pgsup_path(real, "pgsup.lock");
	if (pg->state_dir == NULL || pg->datadir == NULL || pg->sockdir == NULL ||
	    pg->logpath == NULL || lockpath == NULL)
		goto out;
	/* The socket path must fit in sun_path (108 bytes). */
	if (strlen(pg->sockdir) + sizeof("/.s.PGSQL." PGSUP_PORT) > 107) {
		log_errorx("pgsup: state directory path %s is too long for a "
		           "Unix socket",
		           real);
		goto out;
	}
	pg->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (pg->lock_fd < 0) {
		log_errorx("open(%s): %s", lockpath, strerror(errno));
		goto out;
	}
	/* Owned by the run user, so that a later start without root (the
	 * daemon run as that user directly) can open it too. */
	if (geteuid() == 0 && fchown(pg->lock_fd, pg->uid, pg->gid) != 0) {
		log_errorx("fchown(%s): %s", lockpath, strerror(errno));
		goto out;
	}
	if (flock(pg->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		log_errorx("flock(%s): %s; is another enrolld using this state "
		           "directory?",
		           lockpath, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(lockpath);
	return rc;
}

int pgsup_start(const char *state_dir, const char *user, const char *pg_bindir, struct pgsup **out,
                char *conninfo, size_t conninfo_len)
{
	struct pgsup *pg = NULL;
	char *version = NULL, *ci = NULL;
	pid_t pid = -1;
	int r;

	*out = NULL;
	pg = calloc(1, sizeof(*pg));
	if (pg == NULL) {
		log_errorx("calloc(pgsup): %s", strerror(errno));
		return -1;
	}
	pg->lock_fd = -1;
	pg->pid = -1;
	pthread_mutex_init(&pg->mutex, NULL);
	pthread_cond_init(&pg->cond, NULL);

	if (state_dir == NULL || state_dir[0] == '\0') {
		log_errorx("pgsup: no state directory");
		goto fail;
	}
	if (pgsup_resolve_user(pg, user) != 0)
		goto fail;
	if (pgsup_prepare_state_dir(pg, state_dir) != 0)
		goto fail;
	if (pg_bindir != NULL && pg_bindir[0] != '\0')
		pg->bindir = strdup(pg_bindir);
	else
		pg->bindir = pgsup_find_bindir_for(pg->datadir);
	if (pg->bindir == NULL || !pgsup_is_executable(pg->bindir, "postgres") ||
	    !pgsup_is_executable(pg->bindir, "initdb")) {
		log_errorx("pgsup: no PostgreSQL server binaries (postgres, "
		           "initdb) in %s; set database.pg_bindir",
		           pg->bindir != NULL ? pg->bindir
		                              : "pg_config --bindir or "
		                                "/usr/lib/postgresql/*/bin");
		goto fail;
	}
	/* The socket directory is the access control: 0700, run user's. */
	if (pgsup_private_dir(pg, pg->sockdir, 0700) != 0)
		goto fail;

	version = pgsup_path(pg->datadir, "PG_VERSION");
	if (version == NULL)
		goto fail;
	if (access(version, F_OK) != 0) {
		if (access(pg->datadir, F_OK) == 0) {
			log_errorx("pgsup: %s exists but is not a PostgreSQL "
			           "cluster (no PG_VERSION); move it away",
			           pg->datadir);
			goto fail;
		}
		if (pgsup_initdb(pg) != 0)
			goto fail;
	}
	if (pgsup_write_config(pg) != 0)
		goto fail;
	if (pgsup_clear_leftover(pg) != 0)
		goto fail;
	pgsup_rotate_log(pg);

	pid = pgsup_spawn_postgres(pg);
	if (pid < 0)
		goto fail;
	r = pgsup_wait_ready(pg, pid);
	if (r != 0) {
		if (r != -2) {
			int status;

			(void)kill(pid, SIGQUIT);
			pgsup_reap(pid, &status);
		}
		pid = -1;
		goto fail;
	}
	pg->pid = pid;
	if (pgsup_create_database(pg) != 0)
		goto fail;
	ci = pgsup_conninfo(pg, PGSUP_DBNAME);
	if (ci == NULL || strlen(ci) >= conninfo_len) {
		log_errorx("pgsup: conninfo buffer too small");
		goto fail;
	}
	if (pthread_create(&pg->watchdog, NULL, pgsup_watchdog, pg) != 0) {
		log_errorx("pthread_create(pgsup watchdog) failed");
		goto fail;
	}
	pg->watchdog_started = true;
	snprintf(conninfo, conninfo_len, "%s", ci);
	log_info("pgsup: postgres running (pid %d), socket in %s", (int)pid, pg->sockdir);
	free(version);
	free(ci);
	*out = pg;
	return 0;
fail:
	if (pg->pid > 0) {
		int status;

		(void)kill(pg->pid, SIGINT);
		pgsup_reap(pg->pid, &status);
	}
	free(version);
	free(ci);
	pgsup_free(pg);
	return -1;
}

/* Waits up to timeout_ms for the watchdog to see postgres gone. */
static bool pgsup_wait_watchdog(struct pgsup *pg, long timeout_ms)
{
	struct timespec until;
	bool done;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&pg->mutex);
	while (!pg->watchdog_done &&
	       pthread_cond_timedwait(&pg->cond, &pg->mutex, &until) != ETIMEDOUT)
		;
	done = pg->watchdog_done;
	pthread_mutex_unlock(&pg->mutex);
	return done;
}

void pgsup_stop(struct pgsup *pg)
{
	pid_t pid;

	if (pg == NULL)
		return;
	pthread_mutex_lock(&pg->mutex);
	pg->stopping = true;
	pid = pg->pid;
	pthread_cond_broadcast(&pg->cond); /* wakes a back-off sleep */
	pthread_mutex_unlock(&pg->mutex);

	/* Fast shutdown: abort open transactions, checkpoint, exit. */
	if (pid > 0) {
		log_info("pgsup: stopping postgres (pid %d)", (int)pid);
		(void)kill(pid, SIGINT);
	}
	if (!pgsup_wait_watchdog(pg, PGSUP_STOP_TIMEOUT_MS) && pid > 0) {
		log_warnx("pgsup: postgres (pid %d) still running; SIGQUIT", (int)pid);
		(void)kill(pid, SIGQUIT);
		if (!pgsup_wait_watchdog(pg, PGSUP_QUIT_TIMEOUT_MS)) {
			log_errorx("pgsup: postgres (pid %d) still running; "
			           "SIGKILL",
			           (int)pid);
			(void)kill(pid, SIGKILL);
		}
	}
	if (pg->watchdog_started)
		pthread_join(pg->watchdog, NULL);
	pgsup_free(pg);
}
