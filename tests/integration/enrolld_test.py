"""enrolld_test: the harness every integration test imports.

Integration tests drive the real enrolld binary on loopback against a real
PostgreSQL, with the standard library only:

  PgCluster   one throw-away PostgreSQL cluster per test process (initdb in a
              temp dir, run as the unprivileged user `enrolld` when we are root,
              listening on 127.0.0.1:<free port> and its own Unix socket dir,
              trust authentication, fsync on), started on first use by
              shared_pg() and stopped at exit.
  Enrolld     one daemon: fresh state dir, fresh database in the shared cluster
              (or embedded=True: the daemon runs its own PostgreSQL), a free
              port, a config file, the binary started and waited for until
              GET /api/v1/health answers 200 over TLS trusting STATE/ca/root.pem.
  make_csr    a key and a PKCS#10 request made with the `openssl` CLI.
  setup_tenant  org + department + domain + delegation + profile via the API.
  EnrolldTestCase  unittest base class owning one Enrolld per class; prints
              the daemon's log tail when a test fails.
  main()      unittest.main(): the process exits non-zero when a test fails,
              or when a daemon did not end cleanly: exit status 0 on
              SIGTERM and no sanitizer report in its log, which is how a leak
              or a UBSan error fails the sanitizer build's run (the test or
              class that owned the daemon fails in its clean-up).

Processes we start are also registered with a small watchdog process that
kills them (and removes temp dirs) if this test process dies without running
its atexit handlers (e.g. SIGKILL from a ctest timeout).

Environment: ENROLLD_BIN (the binary; default ENROLLD_BUILD_DIR/enrolld),
ENROLLD_BUILD_DIR, ENROLLD_SOURCE_DIR, ENROLLD_TEST_START_TIMEOUT (seconds,
default 60), ENROLLD_TEST_KEEP=1 (keep temp dirs for post-mortem),
ENROLLD_PG_BINDIR (default: newest /usr/lib/postgresql/*/bin).

Trust: every TLS context is built explicitly from enrolld's root; the
SSL_CERT_FILE / REQUESTS_CA_BUNDLE variables that may be set globally are
never consulted.
"""

import atexit
import ctypes
import glob
import http.client
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

PG_USER = "enrolld"          # unprivileged OS user for PostgreSQL and the daemon
DAEMON_USER = "enrolld"
START_TIMEOUT = float(os.environ.get("ENROLLD_TEST_START_TIMEOUT", "60"))
KEEP = os.environ.get("ENROLLD_TEST_KEEP") == "1"
IS_ROOT = os.geteuid() == 0

_DEFAULT = object()          # "use the default" sentinel for api(token=...)


# --------------------------------------------------------------------------
# Small utilities


def log(msg):
    """Progress message on stderr (ctest shows it with --output-on-failure)."""
    sys.stderr.write("[enrolld_test] %s\n" % msg)
    sys.stderr.flush()


def source_dir():
    return os.environ.get("ENROLLD_SOURCE_DIR") or os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", ".."))


def build_dir():
    return os.environ.get("ENROLLD_BUILD_DIR") or os.path.join(source_dir(), "build")


def enrolld_bin():
    return os.path.abspath(os.environ.get("ENROLLD_BIN") or os.path.join(build_dir(), "enrolld"))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir():
    """Directory holding initdb/postgres (newest installed major version)."""
    env = os.environ.get("ENROLLD_PG_BINDIR")
    if env:
        return env
    cands = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
             if os.path.exists(os.path.join(d, "initdb"))]
    if not cands:
        raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
    cands.sort(key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    return cands[-1]


def _user_ids(name):
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def chown_to(path, user):
    """chown path to `user` when we are root (no-op otherwise)."""
    if IS_ROOT:
        uid, gid = _user_ids(user)
        os.chown(path, uid, gid)


def make_tempdir(prefix, owner=None):
    """A new temp dir (mode 0700), owned by `owner` when we are root; removed
    at exit unless ENROLLD_TEST_KEEP=1."""
    path = tempfile.mkdtemp(prefix=prefix)
    if owner:
        chown_to(path, owner)
    _Watchdog.get().send("rmtree", path)
    _cleanup_dirs.append(path)
    return path


_PR_SET_PDEATHSIG = 1


def _drop_to(user, pdeathsig=None):
    """preexec_fn: become `user` (when root), then ask the kernel to signal us
    when the parent thread dies (set after setuid: credential changes clear it)."""
    def fn():
        if IS_ROOT and user:
            uid, gid = _user_ids(user)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        if pdeathsig:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(_PR_SET_PDEATHSIG, int(pdeathsig), 0, 0, 0)
            except OSError:
                pass
    return fn


def read_text(path, default=""):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------
# Watchdog: kills what we started if this process dies abruptly.


class _Watchdog:
    """A child python process reading commands on stdin. On EOF (this process
    exited, however it died) it kills the registered pids / pidfiles and
    removes the registered dirs, unless told 'clear' first."""

    _inst = None
    _lock = threading.Lock()

    SCRIPT = r"""
import os, shutil, signal, sys, time
pids, pidfiles, dirs = {}, {}, []
for line in sys.stdin:
    parts = line.rstrip("\n").split(" ", 2)
    cmd = parts[0]
    if cmd == "kill": pids[int(parts[1])] = int(parts[2])
    elif cmd == "forget": pids.pop(int(parts[1]), None)
    elif cmd == "pidfile": pidfiles[parts[2]] = int(parts[1])
    elif cmd == "unpidfile": pidfiles.pop(parts[1], None)
    elif cmd == "rmtree": dirs.append(parts[1])
    elif cmd == "clear": pids.clear(); pidfiles.clear(); dirs.clear()
for pid, sig in pids.items():
    try: os.kill(pid, sig)
    except OSError: pass
for path, sig in pidfiles.items():
    try:
        pid = int(open(path).readline())
        os.kill(pid, sig)
    except (OSError, ValueError): pass
if dirs and os.environ.get("ENROLLD_TEST_KEEP") != "1":
    time.sleep(3)
    for d in dirs: shutil.rmtree(d, ignore_errors=True)
"""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, text=True, bufsize=1)

    @classmethod
    def get(cls):
        with cls._lock:
            if cls._inst is None:
                cls._inst = _Watchdog()
            return cls._inst

    def send(self, *words):
        with self._lock:
            try:
                self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass

    def close(self):
        """Normal exit: everything was cleaned up; the watchdog does nothing."""
        self.send("clear")
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass


_cleanup_dirs = []
_live_daemons = []
# Daemons whose close() found an unclean end (see Enrolld.close) that no test
# has reported yet; main() fails the process for them.
_unreported_exit_problems = []

# What a sanitizer prints when it finds something (ASan, LSan, UBSan). The
# daemon's children (signer processes) inherit its stderr, so their reports
# land in the same log even though the daemon never sees their exit status.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "SUMMARY: UndefinedBehaviorSanitizer", ": runtime error: ")


def _cleanup_at_exit():
    for d in list(_live_daemons):
        try:
            d.close()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            log("cleanup of enrolld failed: %s" % e)
    if PgCluster._shared is not None:
        try:
            PgCluster._shared.close()
        except Exception as e:  # noqa: BLE001
            log("cleanup of PostgreSQL failed: %s" % e)
    if not KEEP:
        for path in _cleanup_dirs:
            shutil.rmtree(path, ignore_errors=True)
    else:
        for path in _cleanup_dirs:
            log("kept %s" % path)
    if _Watchdog._inst is not None:
        _Watchdog._inst.close()


atexit.register(_cleanup_at_exit)


def _exit_on_signal(signum, frame):
    # SystemExit unwinds the test and runs the atexit handlers.
    raise SystemExit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    try:
        signal.signal(_sig, _exit_on_signal)
    except (ValueError, OSError):
        pass


# --------------------------------------------------------------------------
# PostgreSQL


class PgError(Exception):
    pass


def _psql_rows(out):
    """Parses psql -A -t output with \\x1f field / \\x1e record separators:
    no rows print nothing; otherwise records joined by \\x1e and one final
    newline. NULL (printed as \\x01) becomes None."""
    if out == "":
        return []
    if out.endswith("\n"):
        out = out[:-1]
    return [tuple(None if f == "\x01" else f for f in rec.split("\x1f"))
            for rec in out.split("\x1e")]


def run_psql(args, sql, user=None):
    """Runs psql with connection `args` (list), returns rows (tuples of str,
    None for NULL). Raises PgError with psql's message on failure."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
           "-F", "\x1f", "-R", "\x1e", "-P", "null=\x01"] + args + ["-c", sql]
    env = dict(os.environ, PGCONNECT_TIMEOUT="10")
    env.pop("PGPASSWORD", None)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120,
                       preexec_fn=_drop_to(user) if user else None,
                       cwd="/")
    if p.returncode != 0:
        raise PgError("psql failed (%d): %s\nSQL: %s" % (p.returncode, p.stderr.strip(), sql))
    return _psql_rows(p.stdout)


class PgCluster:
    """A throw-away PostgreSQL cluster: trust auth, 127.0.0.1:port + its own
    Unix socket dir, superuser `postgres`. The postmaster is our child (run as
    user enrolld when we are root) and gets SIGQUIT if we die."""

    _shared = None

    def __init__(self):
        self.bindir = pg_bindir()
        self.dir = make_tempdir("enrolld-pg-", owner=PG_USER)
        self.datadir = os.path.join(self.dir, "data")
        self.sockdir = os.path.join(self.dir, "sock")
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        self.proc = None
        self._initdb()
        self.start()

    @classmethod
    def shared(cls):
        """The cluster of this test process, started on first use."""
        if cls._shared is None:
            cls._shared = PgCluster()
        return cls._shared

    def _as_pg(self):
        return _drop_to(PG_USER if IS_ROOT else None)

    def _initdb(self):
        os.mkdir(self.sockdir)
        chown_to(self.sockdir, PG_USER)
        # --no-sync only speeds up initdb itself; the server runs fsync=on.
        p = subprocess.run(
            [os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, preexec_fn=self._as_pg(), cwd="/", timeout=300)
        if p.returncode != 0:
            raise PgError("initdb failed: %s%s" % (p.stdout, p.stderr))
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# enrolld_test\n"
                    "listen_addresses = '127.0.0.1'\n"
                    "port = %d\n"
                    "unix_socket_directories = '%s'\n"
                    "fsync = on\n"
                    "max_connections = 300\n"
                    "shared_buffers = 64MB\n"
                    "log_min_messages = warning\n"
                    "log_line_prefix = '%%m [%%p] %%d '\n" % (self.port, self.sockdir))

    def start(self):
        """Starts the postmaster (again, on the same data dir and port) and
        waits until it accepts connections."""
        if self.running():
            return
        logf = open(self.logfile, "a")
        try:
            self.proc = subprocess.Popen(
                [os.path.join(self.bindir, "postgres"), "-D", self.datadir],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                preexec_fn=_drop_to(PG_USER if IS_ROOT else None, signal.SIGQUIT),
                cwd="/")
        finally:
            logf.close()
        _Watchdog.get().send("kill", self.proc.pid, int(signal.SIGQUIT))
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise PgError("postgres exited with %s:\n%s" % (
                    self.proc.returncode, tail(read_text(self.logfile))))
            try:
                run_psql(self.conn_args("postgres"), "SELECT 1")
                return
            except PgError:
                if time.time() > deadline:
                    raise PgError("postgres did not come up:\n" + tail(read_text(self.logfile)))
                time.sleep(0.1)

    def stop(self, mode="fast"):
        """Stops the postmaster: mode 'fast' (SIGINT, disconnects clients),
        'smart' (SIGTERM) or 'immediate' (SIGQUIT, crash-like)."""
        if not self.running():
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT,
               "immediate": signal.SIGQUIT}[mode]
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _Watchdog.get().send("forget", self.proc.pid)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def close(self):
        self.stop()
        if PgCluster._shared is self:
            PgCluster._shared = None

    def conn_args(self, dbname):
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", dbname]

    def url(self, dbname):
        """libpq URL of database `dbname` over TCP on loopback."""
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, dbname)

    def create_database(self):
        """Creates a database with a new random name and returns the name."""
        name = "enrolld_t_" + secrets.token_hex(6)
        run_psql(self.conn_args("postgres"), 'CREATE DATABASE "%s"' % name)
        return name

    def drop_database(self, name):
        run_psql(self.conn_args("postgres"), 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)

    def psql(self, dbname, sql):
        """Runs `sql`; returns the rows of its last statement as tuples of
        strings (None for NULL)."""
        return run_psql(self.conn_args(dbname), sql)


def shared_pg():
    return PgCluster.shared()


# --------------------------------------------------------------------------
# HTTP


class Headers(dict):
    """Case-insensitive header dict (keys stored lower-case)."""

    def __init__(self, items=()):
        super().__init__()
        for k, v in items:
            k = k.lower()
            super().__setitem__(k, v if k not in self else self[k] + ", " + v)

    def __getitem__(self, k):
        return super().__getitem__(k.lower())

    def __contains__(self, k):
        return super().__contains__(k.lower())

    def get(self, k, default=None):
        return super().get(k.lower(), default)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self.json = None
        if body:
            try:
                self.json = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                self.json = None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %d %s>" % (self.status, self.text[:500])


def tls_context(root_pem):
    """A client context trusting only `root_pem`, checking the host name."""
    ctx = ssl.create_default_context(cafile=root_pem)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def https_request(host, port, ctx, method, path, body=None, headers=None, timeout=60):
    """One request on a new connection; returns a Response."""
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, Headers(r.getheaders()), data)
    finally:
        conn.close()


# --------------------------------------------------------------------------
# The daemon


class EnrolldError(Exception):
    pass


class Enrolld:
    """One enrolld process on a fresh state dir and database.

    Attributes: url (https://127.0.0.1:PORT), port, state_dir, root_pem,
    token (first master admin token), dbname (None when embedded), pg,
    config_path, proc.
    """

    def __init__(self, pg=None, embedded=False, config_extra="", workers=4, env=None,
                 daemon_options=None, start=True, log_level="info"):
        self.embedded = embedded
        self.pg = None if embedded else (pg or shared_pg())
        self.dbname = None if embedded else self.pg.create_database()
        self.owns_database = not embedded  # close() drops it
        self.workers = workers
        self.env = dict(os.environ, **(env or {}))
        self.base = make_tempdir("enrolld-test-")
        os.chmod(self.base, 0o755)  # the daemon's user must traverse it
        self.state_dir = os.path.join(self.base, "state")
        os.mkdir(self.state_dir, 0o700)
        chown_to(self.state_dir, DAEMON_USER)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.url = "https://%s:%d" % (self.host, self.port)
        self.root_pem = os.path.join(self.state_dir, "ca", "root.pem")
        self.stdout_path = os.path.join(self.state_dir, "enrolld.stdout")
        self.stderr_path = os.path.join(self.state_dir, "enrolld.stderr")
        self.config_path = os.path.join(self.base, "enrolld.conf")
        self.token = None
        self.proc = None
        self._ctx = None
        self._embedded_psql = None
        opts = {"state_dir": self.state_dir, "user": DAEMON_USER,
                "workers": str(workers), "log_level": log_level,
                "public_url": self.url}
        opts.update(daemon_options or {})
        lines = ["# written by tests/integration/enrolld_test.py", "[daemon]"]
        lines += ["%s = %s" % (k, v) for k, v in opts.items()]
        if not embedded:
            lines += ["", "[database]", "database_url = %s" % self.pg.url(self.dbname)]
        lines += ["", "[listener main]", "address = 127.0.0.1", "port = %d" % self.port,
                  "tls = on", ""]
        self.config_text = "\n".join(lines) + "\n" + config_extra + "\n"
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        os.chmod(self.config_path, 0o644)
        _live_daemons.append(self)
        if start:
            self.start()

    def share_database(self, other):
        """Points this not yet started daemon at `other`'s database (its own,
        created by __init__, is dropped) and takes over `other`'s root and
        admin token: a second instance of the same deployment."""
        own_db = self.dbname
        self.dbname = other.dbname
        self.config_text = self.config_text.replace(self.pg.url(own_db), other.pg.url(other.dbname))
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        self.pg.drop_database(own_db)
        self.owns_database = False  # other's: it outlives this instance
        self.root_pem = other.root_pem
        self.token = other.token

    # -- process life

    def start(self, timeout=None):
        """Starts the binary (again, on the same state dir and database) and
        waits until GET /api/v1/health is 200. Reads the first admin token."""
        if self.running():
            raise EnrolldError("enrolld already running")
        binary = enrolld_bin()
        if not os.access(binary, os.X_OK):
            raise EnrolldError("enrolld binary not found: %s (set ENROLLD_BIN)" % binary)
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen([binary, "-c", self.config_path],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         env=self.env, cwd="/")
        finally:
            out.close()
            err.close()
        _Watchdog.get().send("kill", self.proc.pid, int(signal.SIGKILL))
        if self.embedded:
            _Watchdog.get().send("pidfile", int(signal.SIGQUIT),
                                 os.path.join(self.state_dir, "pgdata", "postmaster.pid"))
        self.wait_healthy(timeout or START_TIMEOUT)
        tok = read_text(os.path.join(self.state_dir, "initial-admin-token")).strip()
        if not tok:
            tok = self.stdout_token()
        if tok:
            self.token = tok
        elif self.token is None:
            raise EnrolldError("no first admin token in STATE/initial-admin-token or stdout\n"
                               + self.log_tail())
        return self

    def wait_healthy(self, timeout=START_TIMEOUT):
        deadline = time.time() + timeout
        last = "no answer yet"
        while time.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise EnrolldError("enrolld exited with status %s during start-up\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            if os.path.exists(self.root_pem):
                try:
                    r = self.api("GET", "/api/v1/health", token=None, timeout=5)
                    if r.status == 200:
                        return
                    last = repr(r)
                except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                    last = "%s: %s" % (type(e).__name__, e)
                    self._ctx = None  # root.pem may have been half-written
            time.sleep(0.2)
        raise EnrolldError("enrolld not healthy after %ds (last: %s)\n%s"
                           % (timeout, last, self.log_tail()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=60):
        """SIGTERM, wait, and assert a clean exit 0. Returns the exit status."""
        if not self.running():
            raise EnrolldError("enrolld is not running")
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise EnrolldError("enrolld did not exit within %ds of SIGTERM\n%s"
                               % (timeout, self.log_tail()))
        finally:
            _Watchdog.get().send("forget", self.proc.pid)
        if rc != 0:
            raise EnrolldError("enrolld exited with %d after SIGTERM\n%s" % (rc, self.log_tail()))
        return rc

    def kill9(self):
        """SIGKILL the daemon (the embedded PostgreSQL, if any, is left as the
        kernel leaves it)."""
        if self.running():
            self.proc.kill()
        self.proc.wait()
        _Watchdog.get().send("forget", self.proc.pid)

    def close(self):
        """Stops the daemon however it can and forgets it (the state dir goes
        at exit). Returns None after a clean end, else what was wrong: the
        SIGTERM this sends did not end the daemon with status 0 (under the
        sanitizer build that is how a leak or an error shows), or its log
        holds a sanitizer report (from the daemon or a child). A problem is
        also kept for main(), which fails the test process unless a test
        already reported it (EnrolldTestCase.close_daemon)."""
        if self in _live_daemons:
            _live_daemons.remove(self)
        problem = None
        if self.running():
            try:
                self.stop(timeout=60)
            except EnrolldError as e:
                problem = str(e)
        if problem is None:
            problem = self.sanitizer_report()
        if problem is not None:
            log("enrolld on port %d did not end cleanly: %s"
                % (self.port, problem.splitlines()[0]))
            _unreported_exit_problems.append(problem)
        if self.embedded:
            self._kill_embedded_postmaster()
        elif (self.pg is not None and self.dbname and self.owns_database and self.pg.running()
              and not KEEP):
            try:
                self.pg.drop_database(self.dbname)
            except PgError:
                pass
        return problem

    def sanitizer_report(self):
        """The daemon's log from the first sanitizer report on, or None."""
        text = self.logs()
        hits = [text.find(m) for m in SANITIZER_MARKERS if m in text]
        if not hits:
            return None
        start = text.rfind("\n", 0, min(hits)) + 1
        return "sanitizer report in the daemon's log:\n" + text[start:start + 6000]

    def _kill_embedded_postmaster(self):
        """After a crash the embedded postmaster may survive its daemon."""
        pidfile = os.path.join(self.state_dir, "pgdata", "postmaster.pid")
        try:
            pid = int(read_text(pidfile).splitlines()[0])
            if "postgres" in read_text("/proc/%d/cmdline" % pid):
                os.kill(pid, signal.SIGQUIT)
        except (IndexError, ValueError, OSError):
            pass

    # -- logs

    def logs(self):
        """Everything the daemon wrote to stdout and stderr so far."""
        return read_text(self.stdout_path) + read_text(self.stderr_path)

    @property
    def log(self):
        return self.logs()

    def log_tail(self, lines=80):
        return ("--- enrolld stdout (tail) ---\n%s\n--- enrolld stderr (tail) ---\n%s\n"
                % (tail(read_text(self.stdout_path), 20), tail(read_text(self.stderr_path), lines)))

    def stdout_token(self):
        for line in read_text(self.stdout_path).splitlines():
            if "first master admin token:" in line:
                return line.split("first master admin token:", 1)[1].strip()
        return None

    # -- HTTP

    def tls_context(self):
        if self._ctx is None:
            self._ctx = tls_context(self.root_pem)
        return self._ctx

    def api(self, method, path, body=None, token=_DEFAULT, raw=None, headers=None,
            timeout=60):
        """One HTTPS request. `body` (dict/list) is sent as JSON; `raw` (bytes)
        as is. `token`: default the first admin token; None for no
        Authorization header. Returns a Response."""
        hdrs = {}
        if token is _DEFAULT:
            token = self.token
        if token:
            hdrs["Authorization"] = "Bearer " + token
        data = None
        if raw is not None:
            data = raw
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        return https_request(self.host, self.port, self.tls_context(), method, path,
                             body=data, headers=hdrs, timeout=timeout)

    # -- SQL

    def sql(self, query):
        """Runs `query` on the daemon's database; rows as tuples of strings
        (None for NULL)."""
        if not self.embedded:
            return self.pg.psql(self.dbname, query)
        return run_psql(self._embedded_conn_args(), query, user=DAEMON_USER if IS_ROOT else None)

    def _embedded_conn_args(self):
        """Connection to the embedded cluster over its Unix socket in
        STATE/pgsock, as the OS user that owns it."""
        if self._embedded_psql:
            return self._embedded_psql
        sockdir = os.path.join(self.state_dir, "pgsock")
        socks = glob.glob(os.path.join(sockdir, ".s.PGSQL.*"))
        socks = [s for s in socks if not s.endswith(".lock")]
        if not socks:
            raise PgError("no PostgreSQL socket in %s" % sockdir)
        port = socks[0].rsplit(".", 1)[1]
        user = DAEMON_USER if IS_ROOT else pwd.getpwuid(os.geteuid()).pw_name
        user_flag = None
        dbname = None
        for u in (user, "postgres", "enrolld"):
            try:
                rows = run_psql(["-h", sockdir, "-p", port, "-U", u, "-d", "postgres"],
                                "SELECT datname FROM pg_database WHERE NOT datistemplate "
                                "AND datname <> 'postgres' ORDER BY oid",
                                user=DAEMON_USER if IS_ROOT else None)
            except PgError:
                continue
            user_flag = u
            dbname = rows[0][0] if rows else "postgres"
            break
        if user_flag is None:
            raise PgError("cannot connect to the embedded PostgreSQL in %s" % sockdir)
        self._embedded_psql = ["-h", sockdir, "-p", port, "-U", user_flag, "-d", dbname]
        return self._embedded_psql

    def count(self, table, where="true"):
        """SELECT count(*) FROM table WHERE where, as an int."""
        return int(self.sql("SELECT count(*) FROM %s WHERE %s" % (table, where))[0][0])


# --------------------------------------------------------------------------
# Keys, CSRs, certificates


_csr_counter = [0]
_csr_lock = threading.Lock()


def _newkey_args(key):
    key = key.lower()
    if key in ("ec", "p256", "ec-p256", "prime256v1"):
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    if key in ("p384", "ec-p384"):
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]
    if key in ("p521", "ec-p521"):
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"]
    if key in ("p224", "ec-p224"):
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-224"]
    if key in ("secp256k1",):
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"]
    if key.startswith("rsa"):
        bits = key[3:].lstrip("-") or "2048"
        return ["-newkey", "rsa:%d" % int(bits)]
    if key in ("ed25519", "ed448"):
        return ["-newkey", key]
    raise ValueError("unknown key type %r" % key)


def make_csr(tmpdir, key="ec", cn=None, sans=None, o=None, ou=None, key_path=None,
             subject=None):
    """Makes a key (or reuses `key_path`) and a PKCS#10 request with the
    openssl CLI. key: 'ec'/'p256', 'p384', 'p521', 'rsa1024', 'rsa2048',
    'rsa3072', 'rsa4096', 'ed25519', ... cn: common name; sans: names, a bare
    name is DNS, or typed 'IP:192.0.2.1', 'email:a@b', 'DNS:x'; o/ou: subject
    O/OU; subject: a full '/K=V/...' subject instead. Returns
    (key_path, csr_pem)."""
    with _csr_lock:
        _csr_counter[0] += 1
        n = _csr_counter[0]
    stem = os.path.join(tmpdir, "req-%d-%d-%s" % (os.getpid(), n, secrets.token_hex(3)))
    if subject is None:
        subject = ""
        if o:
            subject += "/O=" + o
        if ou:
            subject += "/OU=" + ou
        if cn:
            subject += "/CN=" + cn
        subject = subject or "/"
    cmd = ["openssl", "req", "-new", "-subj", subject, "-out", stem + ".csr"]
    if key_path:
        cmd += ["-key", key_path]
    else:
        key_path = stem + ".key"
        cmd += _newkey_args(key) + ["-nodes", "-keyout", key_path]
    if sans:
        typed = []
        for s in sans:
            if ":" in s and s.split(":", 1)[0].upper() in ("DNS", "IP", "EMAIL", "URI"):
                t, v = s.split(":", 1)
                typed.append("%s:%s" % ({"EMAIL": "email"}.get(t.upper(), t.upper()), v))
            else:
                typed.append("DNS:" + s)
        cmd += ["-addext", "subjectAltName=" + ",".join(typed)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OPENSSL_CONF="/dev/null"))
    if p.returncode != 0:
        raise RuntimeError("openssl req failed: %s" % p.stderr)
    with open(stem + ".csr") as f:
        return key_path, f.read()


def openssl_verify(cert_pem, root_pem_path, untrusted_pem=None, tmpdir=None,
                   purpose=None):
    """`openssl verify` of cert_pem (str/bytes PEM, or DER bytes) against
    root_pem_path with optional intermediates. Returns (ok, output)."""
    tmpdir = tmpdir or tempfile.gettempdir()
    fd, cert_path = tempfile.mkstemp(dir=tmpdir, suffix=".pem")
    paths = [cert_path]
    try:
        if isinstance(cert_pem, str):
            cert_pem = cert_pem.encode()
        if not cert_pem.lstrip().startswith(b"-----"):
            cert_pem = ssl.DER_cert_to_PEM_cert(cert_pem).encode()
        os.write(fd, cert_pem)
        os.close(fd)
        cmd = ["openssl", "verify", "-CAfile", root_pem_path]
        if untrusted_pem:
            ufd, upath = tempfile.mkstemp(dir=tmpdir, suffix=".pem")
            paths.append(upath)
            os.write(ufd, untrusted_pem.encode() if isinstance(untrusted_pem, str) else untrusted_pem)
            os.close(ufd)
            cmd += ["-untrusted", upath]
        if purpose:
            cmd += ["-purpose", purpose]
        cmd.append(cert_path)
        p = subprocess.run(cmd, capture_output=True, text=True)
        return p.returncode == 0, p.stdout + p.stderr
    finally:
        for path in paths:
            try:
                os.unlink(path)
            except OSError:
                pass


def cert_text(pem):
    """`openssl x509 -noout -text` of a PEM certificate."""
    p = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("openssl x509 failed: %s" % p.stderr)
    return p.stdout


def issuing_pem(d):
    """The issuing CA certificate of daemon `d` (STATE/ca/issuing.pem)."""
    return read_text(os.path.join(d.state_dir, "ca", "issuing.pem"))


# --------------------------------------------------------------------------
# API helpers


def expect(resp, *statuses):
    """Raises AssertionError (with the body) unless resp.status is one of
    `statuses`; returns resp.json."""
    if resp.status not in statuses:
        raise AssertionError("expected HTTP %s, got %r" % (
            "/".join(str(s) for s in statuses), resp))
    return resp.json


def setup_tenant(d, domain="example.test", key_types=("p256", "rsa2048"),
                 terms_days=(90, 365), requires_approval=False, suffix=None,
                 profile_extra=None):
    """Creates an organization, a department, the domain (or reuses it), a
    delegation of the domain to the organization for 'ssl', and an ssl
    profile. Returns a dict: org_id, dept_id, domain_id, delegation_id,
    profile_id, domain, org_name."""
    suffix = suffix or secrets.token_hex(4)
    org_name = "Org " + suffix
    org = expect(d.api("POST", "/api/v1/organizations",
                       {"name": org_name, "country": "DE", "city": "Berlin"}), 201)
    org_id = int(org["id"])
    dept = expect(d.api("POST", "/api/v1/organizations/%d/departments" % org_id,
                        {"name": "Dept " + suffix}), 201)
    dept_id = int(dept["id"])
    r = d.api("POST", "/api/v1/domains", {"name": domain})
    if r.status == 201:
        domain_id = int(r.json["id"])
    elif r.status == 409:
        rows = d.sql("SELECT id FROM domains WHERE name = '%s'" % domain.replace("'", "''"))
        if not rows:
            raise AssertionError("domain %s: 409 but not in the table: %r" % (domain, r))
        domain_id = int(rows[0][0])
    else:
        raise AssertionError("POST /api/v1/domains: %r" % r)
    dele = expect(d.api("POST", "/api/v1/domains/%d/delegations" % domain_id,
                        {"org_id": org_id, "cert_types": ["ssl"]}), 201)
    profile = {"name": "ssl-" + suffix, "cert_type": "ssl",
               "terms_days": list(terms_days), "key_types": list(key_types),
               "key_usage": ["digitalSignature"], "ext_key_usage": ["serverAuth"],
               "requires_approval": requires_approval}
    profile.update(profile_extra or {})
    prof = expect(d.api("POST", "/api/v1/profiles", profile), 201)
    return {"org_id": org_id, "dept_id": dept_id, "domain_id": domain_id,
            "delegation_id": int(dele["id"]), "profile_id": int(prof["id"]),
            "domain": domain, "org_name": org_name}


def enroll(d, tenant, csr_pem, term_days=90, dept=False, token=_DEFAULT, extra=None):
    """POST /api/v1/certificates for `tenant` (from setup_tenant). Returns the
    Response (201 issued / 202 requested / 422 denied / ...)."""
    body = {"org_id": tenant["org_id"], "profile_id": tenant["profile_id"],
            "term_days": term_days, "csr": csr_pem}
    if dept:
        body["dept_id"] = tenant["dept_id"]
    body.update(extra or {})
    return d.api("POST", "/api/v1/certificates", body, token=token)


# --------------------------------------------------------------------------
# unittest glue


class EnrolldTestCase(unittest.TestCase):
    """Base class: one Enrolld per test class (cls.d), started in setUpClass
    with cls.enrolld_args (a dict of Enrolld keyword arguments; None: no
    class-wide daemon, use self.start_enrolld() per test), and a temp dir
    cls.tmp for keys and CSRs. When a test fails, the log tail of the daemon
    it used (self.d) is printed."""

    enrolld_args = {}
    d = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = make_tempdir("enrolld-client-")
        if cls.enrolld_args is not None:
            cls.d = Enrolld(**cls.enrolld_args)

    @classmethod
    def tearDownClass(cls):
        d, cls.d = cls.d, None
        try:
            if d is not None:
                cls.close_daemon(d)
        finally:
            super().tearDownClass()

    @staticmethod
    def close_daemon(d):
        """d.close(), failing (AssertionError) when the daemon did not end
        cleanly: a leak or sanitizer error at exit fails the test class or
        test that owned the daemon."""
        problem = d.close()
        if problem is not None:
            _unreported_exit_problems.remove(problem)
            raise AssertionError("enrolld did not end cleanly: " + problem)

    def start_enrolld(self, **kw):
        """A daemon for this test only (self.d), closed when the test ends
        (the test fails if it does not end cleanly)."""
        self.d = Enrolld(**kw)
        self.addCleanup(self.close_daemon, self.d)
        return self.d

    def run(self, result=None):
        before = (len(result.failures) + len(result.errors)) if result is not None else 0
        out = super().run(result)
        res = result if result is not None else out
        if res is not None and len(res.failures) + len(res.errors) > before:
            d = self.d
            if d is not None:
                sys.stderr.write("\n=== %s failed; daemon log tail ===\n%s\n"
                                 % (self.id(), d.log_tail()))
                sys.stderr.flush()
        return out

    # conveniences
    def csr(self, **kw):
        return make_csr(self.tmp, **kw)


def main():
    """unittest.main with verbose output; exits non-zero when a test failed
    or a daemon the tests left running (or closed themselves) did not end
    cleanly."""
    prog = unittest.main(verbosity=2, exit=False)
    for d in list(_live_daemons):
        d.close()
    for problem in _unreported_exit_problems:
        sys.stderr.write("\n=== enrolld did not end cleanly ===\n%s\n" % problem)
    ok = prog.result.wasSuccessful() and not _unreported_exit_problems
    sys.exit(0 if ok else 1)
