"""test_daemon: enrolld's process life, end to end against the real binary.

(1) Queue full: with workers=1 and queue_max=1, one request blocked in the
    database (a psql session holds LOCK TABLE organizations IN ACCESS
    EXCLUSIVE MODE) occupies the worker, a second one waits in the queue, a
    third gets 503 at once with Retry-After and a problem document; once the
    lock is released the first two complete with 200.
(2) SIGTERM with a request in flight: the daemon stops accepting at once
    (new connections are refused), the blocked request still completes with
    200 when the lock goes, and the daemon then exits 0.
(3) SIGHUP TLS reload: the listener's certificate/private_key are files the
    test controls; after replacing them and SIGHUP, an open keep-alive
    connection keeps working and a new connection presents the new
    certificate. A SIGHUP with a config file that does not parse keeps the
    daemon serving with the old settings (not even the TLS files are re-read)
    and logs the error.
(4) sd_notify: a datagram socket bound by the test as NOTIFY_SOCKET receives
    READY=1 at start, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on
    SIGTERM.
(5) Privilege drop: started as root, the daemon, its signer processes and
    the PostgreSQL it talks to (shared cluster and embedded mode) run with
    real/effective/saved/fs uid and gid of user enrolld.
(6) Request logs: one line per request with the X-Request-Id, method, path,
    status and duration; no query string; no bearer token anywhere in the
    daemon's output (the first admin token only on its one stdout line).
"""

import concurrent.futures
import email.utils
import hashlib
import http.client
import os
import pwd
import re
import signal
import socket
import ssl
import subprocess
import time
import unittest

import enrolld_test as et

USER = et.DAEMON_USER


# --------------------------------------------------------------------------
# Helpers


def wait_for(pred, timeout, what):
    """Polls pred() every 50 ms until it returns a true value (returned), or
    raises AssertionError naming `what` after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(0.05)


class TableLock:
    """A psql session (our child, reading SQL from a pipe we keep open) that
    holds LOCK TABLE <table> IN ACCESS EXCLUSIVE MODE until release(): every
    statement of the daemon touching that table blocks meanwhile."""

    def __init__(self, d, table="organizations"):
        self.d = d
        self.table = table
        cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"] + \
            d.pg.conn_args(d.dbname)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, cwd="/",
                                     env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
        self.proc.stdin.write("BEGIN;\nLOCK TABLE %s IN ACCESS EXCLUSIVE MODE;\n" % table)
        self.proc.stdin.flush()
        wait_for(lambda: self._count(True) >= 1 or self.proc.poll() is not None, 20,
                 "psql to take the lock on %s" % table)
        if self.proc.poll() is not None:
            raise AssertionError("psql exited (%s): %s" % (self.proc.returncode,
                                                           self.proc.stderr.read()))

    def _count(self, granted):
        return int(self.d.sql(
            "SELECT count(*) FROM pg_locks WHERE relation = '%s'::regclass AND %sgranted"
            % (self.table, "" if granted else "NOT "))[0][0])

    def waiters(self):
        """Sessions waiting for a lock on the table."""
        return self._count(False)

    def release(self):
        """COMMIT and end the session (idempotent)."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("COMMIT;\n")
                self.proc.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def proc_ids(pid):
    """(uids, gids) of a process from /proc/PID/status: each a list of the
    real, effective, saved and filesystem ids, as ints."""
    uids = gids = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                uids = [int(x) for x in line.split()[1:]]
            elif line.startswith("Gid:"):
                gids = [int(x) for x in line.split()[1:]]
    return uids, gids


def descendants(pid):
    """PIDs of all live (non-zombie) descendants of `pid`."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def exe_of(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return ""


def openssl(*args):
    p = subprocess.run(["openssl"] + list(args), capture_output=True, text=True,
                       env=dict(os.environ, OPENSSL_CONF="/dev/null"), timeout=60)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], p.stderr))
    return p.stdout


def make_test_ca(tmpdir):
    """A throw-away CA (EC P-256) made with the openssl CLI. Returns
    (ca_pem_path, ca_key_path)."""
    ca_pem, ca_key = os.path.join(tmpdir, "ca.pem"), os.path.join(tmpdir, "ca.key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", ca_key, "-out", ca_pem, "-days", "2",
            "-subj", "/CN=test_daemon reload CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return ca_pem, ca_key


def make_server_cert(tmpdir, ca_pem, ca_key, stem):
    """A server certificate for IP:127.0.0.1 signed by the test CA. Returns
    (cert_pem_text, key_pem_text)."""
    key, csr, crt = (os.path.join(tmpdir, stem + ext) for ext in (".key", ".csr", ".pem"))
    ext = os.path.join(tmpdir, stem + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1 " + stem)
    openssl("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", crt)
    return et.read_text(crt), et.read_text(key)


def install_file(path, text, mode):
    """Atomically replaces `path` with `text` (rename over it), owned by the
    daemon's user so that it can read it after its privilege drop."""
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    et.chown_to(tmp, USER)
    os.replace(tmp, path)


def fingerprint_of_pem(pem):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def peer_fingerprint(conn):
    return hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest()


def get(conn, path):
    """One request on an existing (keep-alive) connection."""
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


def connection_refused(port):
    """True when a TCP connect to 127.0.0.1:port is refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


# --------------------------------------------------------------------------
# (1), (5), (6): one daemon with one worker and a queue of one


class QueueLogsPrivilegesTest(et.EnrolldTestCase):
    enrolld_args = {"workers": 1, "daemon_options": {"queue_max": "1"}}

    def setUp(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
        self.addCleanup(self.pool.shutdown, wait=True)

    def lock(self):
        lk = TableLock(self.d)
        self.addCleanup(lk.release)
        return lk

    def send_then_wait(self, path):
        """Sends GET `path` on a new connection now; returns a future of the
        et.Response."""
        conn = http.client.HTTPSConnection(self.d.host, self.d.port,
                                           context=self.d.tls_context(), timeout=30)
        self.addCleanup(conn.close)
        conn.request("GET", path, headers={"Authorization": "Bearer " + self.d.token})

        def finish():
            r = conn.getresponse()
            return et.Response(r.status, et.Headers(r.getheaders()), r.read())
        return self.pool.submit(finish)

    def test_queue_full_503(self):
        d = self.d
        orgs_before = d.count("organizations")
        lk = self.lock()
        first = self.pool.submit(d.api, "GET", "/api/v1/organizations", timeout=30)
        # The single worker has taken it and waits for the lock.
        wait_for(lambda: lk.waiters() >= 1, 15, "request 1 to block on the table lock")
        # Request 2 is written in full before request 3 starts its TLS
        # handshake, whose round trips through the loop thread read it: it is
        # queued before request 3 arrives.
        second = self.send_then_wait("/api/v1/organizations")
        time.sleep(0.3)
        self.assertFalse(first.done(), "request 1 finished although the table is locked")
        self.assertFalse(second.done(), "request 2 finished although the worker is busy")

        t0 = time.monotonic()
        third = d.api("GET", "/api/v1/organizations", timeout=10)
        self.assertLess(time.monotonic() - t0, 5, "the 503 was not immediate")
        self.assertEqual(third.status, 503, third)
        ra = third.headers.get("Retry-After")
        self.assertIsNotNone(ra, "503 without Retry-After: %r" % third.headers)
        self.assertTrue(ra.isdigit() and int(ra) >= 1, "bad Retry-After %r" % ra)
        self.assertTrue(third.headers.get("Content-Type", "").startswith(
            "application/problem+json"), third.headers)
        self.assertIsInstance(third.json, dict, third)
        self.assertEqual(third.json.get("status"), 503)
        self.assertIn("title", third.json)
        self.assertIn("type", third.json)
        self.assertTrue(third.headers.get("X-Request-Id", "").startswith("r-"))
        # The 503 came while both others were still held.
        self.assertFalse(first.done() or second.done())
        self.assertEqual(lk.waiters(), 1, "only the worker's session should wait")
        wait_for(lambda: "worker queue full" in d.logs(), 5, "the queue-full warning")

        lk.release()
        r1 = first.result(timeout=20)
        r2 = second.result(timeout=20)
        self.assertEqual(r1.status, 200, r1)
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r1.json.get("items"), r2.json.get("items"))
        # The queue drained: a new request is served again.
        self.assertEqual(d.api("GET", "/api/v1/organizations").status, 200)
        self.assertEqual(d.count("organizations"), orgs_before)

    def _log_lines_for(self, rid):
        return [ln for ln in et.read_text(self.d.stderr_path).splitlines()
                if "[%s]" % rid in ln]

    def test_request_log_lines(self):
        d = self.d
        me = et.expect(d.api("GET", "/api/v1/me"), 200)
        created = et.expect(d.api("POST", "/api/v1/admins/%d/tokens" % int(me["id"]),
                                  {"description": "test_daemon bearer"}), 201)
        bearer = created["token"]
        self.assertTrue(bearer and bearer != d.token)
        secret_query = "secret-value-" + os.urandom(6).hex()
        cases = [
            # (method, path as sent, path expected in the log, token, status)
            ("GET", "/api/v1/health", "/api/v1/health", None, 200),
            ("GET", "/api/v1/organizations", "/api/v1/organizations", bearer, 200),
            ("GET", "/api/v1/organizations?token=" + secret_query, "/api/v1/organizations",
             bearer, 200),
            ("GET", "/api/v1/organizations", "/api/v1/organizations", "not-a-token", 401),
            ("POST", "/api/v1/organizations", "/api/v1/organizations", bearer, 400),
            ("GET", "/api/v1/no-such-thing", "/api/v1/no-such-thing", bearer, 404),
            ("GET", "/not-routed", "/not-routed", None, 404),
            ("DELETE", "/api/v1/organizations/999999", "/api/v1/organizations/999999",
             bearer, 405),
        ]
        orgs_before = d.count("organizations")
        seen = []
        for method, path, logged_path, token, status in cases:
            raw = b"{" if method == "POST" else None  # malformed JSON: 400
            r = d.api(method, path, token=token, raw=raw,
                      headers={"Content-Type": "application/json"} if raw else None)
            self.assertEqual(r.status, status, "%s %s: %r" % (method, path, r))
            rid = r.headers.get("X-Request-Id")
            self.assertTrue(rid and re.fullmatch(r"r-[0-9a-f]{12}", rid), rid)
            self.assertNotIn(rid, [s[0] for s in seen], "request id reused")
            seen.append((rid, method, logged_path, status))
        self.assertEqual(d.count("organizations"), orgs_before)

        for rid, method, logged_path, status in seen:
            pattern = re.compile(r"\[%s\] %s %s %d \d+(\.\d+)? ms " % (
                re.escape(rid), method, re.escape(logged_path), status))
            # The line is written right after the reply: allow a moment.
            wait_for(lambda: any(pattern.search(ln) for ln in self._log_lines_for(rid)), 5,
                     "the log line of %s %s (%s)" % (method, logged_path, rid))
            lines = self._log_lines_for(rid)
            access = [ln for ln in lines if pattern.search(ln)]
            self.assertEqual(len(access), 1, "request %s: %r" % (rid, lines))
            self.assertNotIn("?", access[0], access[0])

        out = et.read_text(d.stdout_path)
        err = et.read_text(d.stderr_path)
        self.assertNotIn(secret_query, out + err)
        self.assertNotIn("token=", err)
        self.assertNotIn(bearer, out + err)
        self.assertNotIn("not-a-token", out + err)
        # The first admin token: never in the log, and on stdout only on the
        # one line that hands it to the operator at first start.
        self.assertNotIn(d.token, err)
        self.assertEqual(out.count(d.token), 1, "first admin token on stdout more than once")
        self.assertIn("first master admin token: " + d.token, out)

    def _raw_replies(self, payload, count):
        """Sends `payload` in one TLS write on a new connection and reads
        `count` replies; returns [(status line, [(name, value)], body)]."""
        raw = socket.create_connection((self.d.host, self.d.port), timeout=15)
        tls = self.d.tls_context().wrap_socket(raw, server_hostname=self.d.host)
        self.addCleanup(tls.close)
        tls.sendall(payload)
        buf, replies = b"", []
        while len(replies) < count:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                lines = buf[:end].decode("latin-1").split("\r\n")
                headers = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:]]
                length = dict((k.lower(), v) for k, v in headers).get("content-length")
                if length is None:  # HTTP/1.0 without keep-alive: up to the close
                    chunk = tls.recv(65536)
                    if chunk:
                        buf += chunk
                        continue
                    length = len(buf) - end - 4
                length = int(length)
                if len(buf) >= end + 4 + length:
                    replies.append((lines[0], headers, buf[end + 4:end + 4 + length]))
                    buf = buf[end + 4 + length:]
                    continue
            chunk = tls.recv(65536)
            self.assertTrue(chunk, "connection closed after %d replies" % len(replies))
            buf += chunk
        return replies

    def test_reply_headers_raw(self):
        """Two pipelined HTTP/1.1 requests in one TLS record get two replies
        on the connection, each with exactly one well-formed, current Date;
        an HTTP/1.0 request gets none (as evhttp does)."""
        host = "%s:%d" % (self.d.host, self.d.port)
        req = ("GET /api/v1/health?probe=%d HTTP/1.1\r\nHost: " + host +
               "\r\nX-Extra-A: one\r\nX-Extra-B: two\r\n\r\n")
        replies = self._raw_replies((req % 1 + req % 2).encode(), 2)
        rids = set()
        for status, headers, body in replies:
            self.assertEqual(status, "HTTP/1.1 200 OK", (status, headers, body))
            dates = [v for k, v in headers if k.lower() == "date"]
            self.assertEqual(len(dates), 1, headers)
            self.assertRegex(dates[0], r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                             r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                             r"\d\d:\d\d:\d\d GMT$")
            when = email.utils.parsedate_to_datetime(dates[0]).timestamp()
            self.assertLess(abs(when - time.time()), 10, dates[0])
            rids.update(v for k, v in headers if k.lower() == "x-request-id")
        self.assertEqual(len(rids), 2, "two replies need two request ids: %r" % replies)

        old = self._raw_replies(("GET /api/v1/health HTTP/1.0\r\nHost: " + host +
                                 "\r\n\r\n").encode(), 1)
        status, headers, _ = old[0]
        self.assertTrue(status.endswith(" 200 OK"), status)
        self.assertEqual([v for k, v in headers if k.lower() == "date"], [], headers)

    def test_privilege_drop(self):
        d = self.d
        pw = pwd.getpwnam(USER)
        want_u, want_g = [pw.pw_uid] * 4, [pw.pw_gid] * 4
        self.assertNotEqual(pw.pw_uid, 0)
        pid = d.proc.pid
        self.assertEqual(proc_ids(pid), (want_u, want_g), "enrolld itself")
        kids = descendants(pid)
        signers = [k for k in kids if exe_of(k) == et.enrolld_bin()]
        self.assertGreaterEqual(len(signers), 1, "no signer process under %d" % pid)
        for k in kids:
            self.assertEqual(proc_ids(k), (want_u, want_g),
                             "child %d (%s) of enrolld" % (k, exe_of(k)))
        # The shared cluster this daemon uses.
        pg_pids = [d.pg.proc.pid] + descendants(d.pg.proc.pid)
        self.assertGreater(len(pg_pids), 1)
        for p in pg_pids:
            self.assertEqual(proc_ids(p)[0], want_u, "postgres %d" % p)
        self.assertIn("running as user %s (uid %d)" % (USER, pw.pw_uid), d.logs())

    @unittest.skipUnless(et.IS_ROOT, "privilege drop needs a root start")
    def test_privilege_drop_embedded(self):
        e = self.start_enrolld(embedded=True, workers=1)
        pw = pwd.getpwnam(USER)
        want = ([pw.pw_uid] * 4, [pw.pw_gid] * 4)
        self.assertEqual(proc_ids(e.proc.pid), want, "enrolld (embedded)")
        kids = descendants(e.proc.pid)
        pgs = [k for k in kids if os.path.basename(exe_of(k)) == "postgres"]
        signers = [k for k in kids if exe_of(k) == et.enrolld_bin()]
        self.assertGreaterEqual(len(pgs), 2, "postmaster and its children: %r" % kids)
        self.assertGreaterEqual(len(signers), 1)
        for k in kids:
            self.assertEqual(proc_ids(k), want, "child %d (%s)" % (k, exe_of(k)))
        self.assertEqual(e.api("GET", "/api/v1/organizations").status, 200)


# --------------------------------------------------------------------------
# (2), (3), (4): a daemon per test


class ProcessLifeTest(et.EnrolldTestCase):
    enrolld_args = None

    def test_sigterm_drains_in_flight(self):
        d = self.start_enrolld(workers=1)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        self.addCleanup(pool.shutdown, wait=True)
        lk = TableLock(d)
        self.addCleanup(lk.release)
        blocked = pool.submit(d.api, "GET", "/api/v1/organizations", timeout=30)
        wait_for(lambda: lk.waiters() >= 1, 15, "the request to block on the table lock")

        d.signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM: shutting down" in d.logs(), 5, "the SIGTERM log line")
        # Draining: alive, request still held, no new connections.
        self.assertTrue(d.running(), "enrolld exited with a request in flight")
        self.assertFalse(blocked.done())
        self.assertTrue(connection_refused(d.port), "new connection accepted while stopping")
        time.sleep(1.0)
        self.assertTrue(d.running(), "enrolld exited with a request in flight")
        self.assertFalse(blocked.done())

        t0 = time.monotonic()
        lk.release()
        # The daemon's end first, so that a lost reply is reported as such
        # and not as an unclean exit.
        try:
            rc = d.proc.wait(timeout=20)
        finally:
            et._Watchdog.get().send("forget", d.proc.pid)
        self.assertEqual(rc, 0, d.log_tail())
        self.assertLess(time.monotonic() - t0, 8, "exit waited for the drain deadline")
        try:
            r = blocked.result(timeout=20)
        except (OSError, http.client.HTTPException) as e:
            self.fail("the in-flight request got no reply: %s: %s" % (type(e).__name__, e))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("Connection", "").lower(), "close")
        self.assertTrue(connection_refused(d.port))
        logs = d.logs()
        self.assertNotIn("still running after", logs)
        self.assertNotIn("abandoned", logs)
        self.assertRegex(logs, r"info stopped\n")

    def _notify_socket(self):
        tmp = et.make_tempdir("enrolld-notify-")
        os.chmod(tmp, 0o755)  # the daemon reaches it after its privilege drop
        path = os.path.join(tmp, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        os.chmod(path, 0o666)
        return sock, path

    @staticmethod
    def _next(sock, timeout=15):
        sock.settimeout(timeout)
        try:
            return sock.recv(4096).decode()
        except socket.timeout:
            raise AssertionError("no sd_notify message within %d s" % timeout)

    def _assert_quiet(self, sock, secs=0.3):
        sock.settimeout(secs)
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            return
        self.fail("unexpected sd_notify message %r" % msg)

    def test_sd_notify(self):
        sock, path = self._notify_socket()
        d = self.start_enrolld(workers=1, env={"NOTIFY_SOCKET": path})
        self.assertEqual(self._next(sock), "READY=1")
        self._assert_quiet(sock)

        d.signal(signal.SIGHUP)
        msg = self._next(sock)
        lines = msg.split("\n")
        self.assertEqual(lines[0], "RELOADING=1", msg)
        # systemd's Type=notify-reload wants the CLOCK_MONOTONIC stamp too.
        self.assertEqual(len(lines), 2, msg)
        self.assertRegex(lines[1], r"^MONOTONIC_USEC=\d+$")
        usec = int(lines[1].split("=")[1])
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.assertTrue(0 <= now - usec < 30 * 10**6, (usec, now))
        self.assertEqual(self._next(sock), "READY=1")
        self.assertEqual(d.api("GET", "/api/v1/health", token=None).status, 200)
        self._assert_quiet(sock)

        d.stop()
        self.assertEqual(self._next(sock, 5), "STOPPING=1")
        self._assert_quiet(sock)
        self.assertNotIn("sendto(NOTIFY_SOCKET", d.logs())

    def test_sighup_tls_reload(self):
        tmp = et.make_tempdir("enrolld-tls-")
        os.chmod(tmp, 0o755)
        ca_pem, ca_key = make_test_ca(tmp)
        cert1, key1 = make_server_cert(tmp, ca_pem, ca_key, "one")
        cert2, key2 = make_server_cert(tmp, ca_pem, ca_key, "two")
        cert3, key3 = make_server_cert(tmp, ca_pem, ca_key, "three")
        live = os.path.join(tmp, "live")
        os.mkdir(live, 0o755)
        crt_path, key_path = os.path.join(live, "server.pem"), os.path.join(live, "server.key")
        install_file(crt_path, cert1, 0o644)
        install_file(key_path, key1, 0o600)

        # The [listener main] section is last in the harness's config.
        d = et.Enrolld(workers=2, start=False,
                       config_extra="certificate = %s\nprivate_key = %s\n" % (crt_path, key_path))
        self.d = d
        self.addCleanup(self.close_daemon, d)
        ctx = et.tls_context(ca_pem)  # trusts only the test CA
        d.tls_context = lambda: ctx
        d.start()

        def new_conn():
            c = http.client.HTTPSConnection(d.host, d.port, context=ctx, timeout=20)
            c.connect()
            self.addCleanup(c.close)
            return c

        def reloads(marker):
            return d.logs().count(marker)

        old = new_conn()
        self.assertEqual(get(old, "/api/v1/health")[0], 200)
        self.assertEqual(peer_fingerprint(old), fingerprint_of_pem(cert1))

        # Replace the files, SIGHUP, wait for the reload to be applied.
        applied = "reload: configuration applied"
        n_applied = reloads(applied)
        install_file(crt_path, cert2, 0o644)
        install_file(key_path, key2, 0o600)
        d.signal(signal.SIGHUP)
        wait_for(lambda: reloads(applied) > n_applied, 10, "the reload to be applied")

        status, _ = get(old, "/api/v1/health")
        self.assertEqual(status, 200, "the old keep-alive connection broke on reload")
        self.assertEqual(peer_fingerprint(old), fingerprint_of_pem(cert1))
        fresh = new_conn()
        self.assertEqual(peer_fingerprint(fresh), fingerprint_of_pem(cert2),
                         "a new connection does not present the new certificate")
        self.assertEqual(get(fresh, "/api/v1/health")[0], 200)
        self.assertEqual(d.api("GET", "/api/v1/organizations").status, 200)

        # A config file with a syntax error: logged, nothing applied -- not
        # even the (valid) new TLS files on disk.
        install_file(crt_path, cert3, 0o644)
        install_file(key_path, key3, 0o600)
        good_config = d.config_text
        with open(d.config_path, "w") as f:
            f.write(good_config + "\n[listener\nthis is not a key value line\n")
        kept = "keeping the running configuration"
        n_kept = reloads(kept)
        n_applied = reloads(applied)
        d.signal(signal.SIGHUP)
        wait_for(lambda: reloads(kept) > n_kept, 10, "the reload error in the log")
        err_line = [ln for ln in d.logs().splitlines() if kept in ln][-1]
        self.assertIn("error", err_line)
        self.assertIn("reload", err_line)
        self.assertEqual(reloads(applied), n_applied, "a broken config was applied")
        self.assertTrue(d.running())
        again = new_conn()
        self.assertEqual(peer_fingerprint(again), fingerprint_of_pem(cert2),
                         "a broken config file still re-read the TLS files")
        self.assertEqual(get(again, "/api/v1/health")[0], 200)
        self.assertEqual(get(old, "/api/v1/health")[0], 200)
        self.assertEqual(d.api("GET", "/api/v1/organizations").status, 200)

        # Fixed again: the next SIGHUP picks up the files on disk.
        with open(d.config_path, "w") as f:
            f.write(good_config)
        d.signal(signal.SIGHUP)
        wait_for(lambda: reloads(applied) > n_applied, 10, "the reload to be applied")
        self.assertEqual(peer_fingerprint(new_conn()), fingerprint_of_pem(cert3))


if __name__ == "__main__":
    et.main()
