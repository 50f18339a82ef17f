"""test_faults: enrolld when the world misbehaves.

(a) PostgreSQL stopped under a running daemon: requests get 503 with
    Retry-After, the daemon stays up, nothing is written, and when PostgreSQL
    comes back the service recovers by itself (health, then a real
    enrollment). Done for a clean ('fast') and a crash-like ('immediate')
    PostgreSQL shutdown. Restarted while the daemon is idle: not one request
    fails afterwards (a worker reconnects before using a hung-up connection).
(b) SIGKILL in the middle of a stream of enrollments from several client
    threads, then a restart on the same state dir and database: every stored
    certificate verifies against the root and carries the serial of its row,
    no serial appears twice, every certificate a client received is stored as
    issued (byte for byte), and the restarted daemon keeps issuing.
"""

import base64
import os
import random
import ssl
import subprocess
import threading
import time
import http.client

import enrolld_test as et


def der_serial_hex(der):
    """Serial number of a DER certificate, upper-case hex without leading
    zeros (as enrolld stores it). Minimal DER walk: Certificate SEQUENCE ->
    tbsCertificate SEQUENCE -> optional [0] version -> INTEGER serial."""
    def header(buf, pos):
        tag = buf[pos]
        length = buf[pos + 1]
        pos += 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(buf[pos:pos + n], "big")
            pos += n
        return tag, length, pos

    tag, _, pos = header(der, 0)
    assert tag == 0x30, "not a SEQUENCE"
    tag, _, pos = header(der, pos)
    assert tag == 0x30, "tbsCertificate not a SEQUENCE"
    tag, length, body = header(der, pos)
    if tag == 0xA0:  # [0] EXPLICIT version
        pos = body + length
        tag, length, body = header(der, pos)
    assert tag == 0x02, "serial not an INTEGER"
    value = int.from_bytes(der[body:body + length], "big", signed=True)
    return "%X" % value


def pem_to_der(pem):
    return ssl.PEM_cert_to_DER_cert(pem.strip().split("-----END CERTIFICATE-----")[0]
                                    + "-----END CERTIFICATE-----\n")


def verify_many(tmpdir, ders, root_pem, issuing_pem):
    """openssl verify of many DER certificates in one run; returns the list
    of (index, output line) that did not verify."""
    paths = []
    for i, der in enumerate(ders):
        path = os.path.join(tmpdir, "c%05d.pem" % i)
        with open(path, "w") as f:
            f.write(ssl.DER_cert_to_PEM_cert(der))
        paths.append(path)
    untrusted = os.path.join(tmpdir, "issuing.pem")
    with open(untrusted, "w") as f:
        f.write(issuing_pem)
    bad = []
    for start in range(0, len(paths), 200):
        chunk = paths[start:start + 200]
        p = subprocess.run(["openssl", "verify", "-CAfile", root_pem, "-untrusted", untrusted]
                           + chunk, capture_output=True, text=True)
        ok_lines = {line.split(":", 1)[0] for line in p.stdout.splitlines()
                    if line.endswith(": OK")}
        for i, path in enumerate(chunk):
            if path not in ok_lines:
                bad.append((start + i, p.stdout + p.stderr))
    for path in paths:
        os.unlink(path)
    return bad


class DatabaseOutageTest(et.EnrolldTestCase):
    """(a) PostgreSQL stopped and started again under a running daemon."""

    enrolld_args = {"workers": 4}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tenant = et.setup_tenant(cls.d)

    def enroll_one(self, cn):
        key, csr = et.make_csr(self.tmp, cn=cn, sans=[cn])
        return et.enroll(self.d, self.tenant, csr)

    def assert_unavailable(self, r, what):
        self.assertEqual(r.status, 503, "%s while PostgreSQL is down: %r" % (what, r))
        ra = r.headers.get("Retry-After")
        self.assertIsNotNone(ra, "%s: 503 without Retry-After" % what)
        self.assertTrue(ra.strip().isdigit() and int(ra) > 0, "Retry-After %r" % ra)

    def outage(self, mode):
        d, pg = self.d, self.d.pg
        r = self.enroll_one("before-%s.example.test" % mode)
        self.assertEqual(r.status, 201, r)
        before = d.count("certificates")
        audit_before = d.count("audit_log")

        pg.stop(mode)
        try:
            key, csr = et.make_csr(self.tmp, cn="during.example.test",
                                   sans=["during.example.test"])
            # Every worker's connection is dead: ask more times than there
            # are workers, so each one meets the outage.
            for i in range(3):
                self.assert_unavailable(d.api("GET", "/api/v1/health", token=None), "health")
                self.assert_unavailable(et.enroll(d, self.tenant, csr), "enrollment")
                self.assert_unavailable(d.api("GET", "/api/v1/organizations"), "list orgs")
                self.assert_unavailable(
                    d.api("POST", "/api/v1/organizations", {"name": "during-%s-%d" % (mode, i)}),
                    "create org")
            self.assertTrue(d.running(), "enrolld died while PostgreSQL was down")
            time.sleep(1.0)  # let a reconnect loop, if any, spin against the dead server
            self.assert_unavailable(et.enroll(d, self.tenant, csr), "enrollment (later)")
        finally:
            pg.start()

        # Service comes back by itself.
        deadline = time.time() + 30
        while True:
            r = d.api("GET", "/api/v1/health", token=None)
            if r.status == 200:
                break
            self.assertEqual(r.status, 503, r)
            self.assertLess(time.time(), deadline, "health not 200 30 s after PostgreSQL returned")
            time.sleep(0.2)
        self.assertEqual(r.json, {"status": "ok", "database": "ok"})
        # Nothing was written during the outage.
        self.assertEqual(d.count("certificates"), before)
        self.assertEqual(d.count("organizations", "name LIKE 'during-%'"), 0)
        # Each worker reconnects. A worker whose connection died with the old
        # server may learn it only on its next statement: that request gets
        # 503 + Retry-After (never anything else) and the worker reconnects,
        # so at most one such answer per worker, then everything works.
        stale = 0
        issued = 0
        n = 0
        while issued < 6:
            n += 1
            r = self.enroll_one("after-%s-%d.example.test" % (mode, n))
            if r.status == 503:
                self.assert_unavailable(r, "enrollment after recovery")
                stale += 1
                self.assertLessEqual(stale, self.enrolld_args["workers"],
                                     "more 503s after recovery than workers")
                time.sleep(min(1.0, float(r.headers.get("Retry-After"))))
                continue
            self.assertEqual(r.status, 201, r)
            ok, why = et.openssl_verify(r.json["pem"], d.root_pem, et.issuing_pem(d))
            self.assertTrue(ok, why)
            issued += 1
        if stale:
            et.log("%s: %d request(s) met a stale connection after PostgreSQL returned"
                   % (mode, stale))
        self.assertEqual(d.count("certificates"), before + 6)
        self.assertGreater(d.count("audit_log"), audit_before)
        self.assertTrue(d.running())

    def test_a1_postgres_fast_shutdown(self):
        self.outage("fast")

    def test_a2_postgres_crash(self):
        self.outage("immediate")

    def restart_while_idle(self, mode):
        """PostgreSQL goes away and comes back while no request is in
        flight: every worker's connection is dead, none has failed yet. The
        next requests must not pay for it - not one 503: a worker finds its
        idle connection hung up before using it and reconnects."""
        d, pg = self.d, self.d.pg
        # every worker holds a live connection first
        for i in range(2 * self.enrolld_args["workers"]):
            r = self.enroll_one("idle-before-%s-%d.example.test" % (mode, i))
            self.assertEqual(r.status, 201, r)
        before = d.count("certificates")
        pg.stop(mode)
        pg.start()
        n = 3 * self.enrolld_args["workers"]
        for i in range(n):
            r = self.enroll_one("idle-after-%s-%d.example.test" % (mode, i))
            self.assertEqual(r.status, 201, "request %d after PostgreSQL restarted: %r" % (i, r))
            ok, why = et.openssl_verify(r.json["pem"], d.root_pem, et.issuing_pem(d))
            self.assertTrue(ok, why)
        self.assertEqual(d.count("certificates"), before + n)
        self.assertTrue(d.running())

    def test_a3_postgres_restarted_while_idle(self):
        self.restart_while_idle("fast")

    def test_a4_postgres_crashed_while_idle(self):
        self.restart_while_idle("immediate")


class KillNineTest(et.EnrolldTestCase):
    """(b) SIGKILL mid-stream, restart, and audit what was stored."""

    enrolld_args = {"workers": 4}
    THREADS = 6
    POOL = 48

    def test_kill9_mid_stream(self):
        d = self.d
        tenant = et.setup_tenant(d)
        csrs = [et.make_csr(self.tmp, cn="k%d.example.test" % i,
                            sans=["k%d.example.test" % i])[1] for i in range(self.POOL)]
        received = []          # (serial, id, pem) of every 201 a client got
        others = []            # (status, body) of unexpected answers
        errors = [0]           # transport errors (expected after the kill)
        lock = threading.Lock()
        stop = threading.Event()

        def client(n):
            i = n
            while not stop.is_set():
                csr = csrs[i % len(csrs)]
                i += self.THREADS
                try:
                    r = et.enroll(d, tenant, csr)
                except (OSError, ssl.SSLError, http.client.HTTPException):
                    with lock:
                        errors[0] += 1
                    time.sleep(0.05)
                    continue
                with lock:
                    if r.status == 201 and r.json and r.json.get("serial"):
                        received.append((r.json["serial"], int(r.json["id"]), r.json["pem"]))
                    else:
                        others.append((r.status, r.text[:300]))

        threads = [threading.Thread(target=client, args=(n,), daemon=True)
                   for n in range(self.THREADS)]
        for t in threads:
            t.start()
        # Let the stream run, then kill at an unpredictable moment.
        deadline = time.time() + 60
        while len(received) < 30 and time.time() < deadline:
            time.sleep(0.02)
        self.assertGreaterEqual(len(received), 30, "stream never got going: %r" % others[:5])
        time.sleep(random.uniform(0.05, 0.6))
        d.kill9()
        n_at_kill = len(received)
        time.sleep(0.5)        # clients now meet a dead port
        stop.set()
        for t in threads:
            t.join(timeout=90)
        self.assertFalse(any(t.is_alive() for t in threads), "a client thread hung")
        self.assertEqual(others, [], "answers other than 201 before the kill")
        self.assertGreater(errors[0], 0, "no client noticed the kill")
        self.assertLessEqual(len(received) - n_at_kill, self.THREADS,
                             "more answers after the kill than requests in flight")

        # Nothing of the old instance survives it (e.g. the signer process).
        deadline = time.time() + 10
        while True:
            left = [pid for pid, cmd in et_procs_with(d.config_path)]
            if not left or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(left, [], "processes of the killed enrolld still running")

        d.start()
        et.log("kill -9 after %d issued answers (%d after the kill); %d transport errors"
               % (n_at_kill, len(received) - n_at_kill, errors[0]))

        rows = d.sql("SELECT id, status, serial, encode(cert_der, 'base64') FROM certificates "
                     "ORDER BY id")
        by_id = {int(r[0]): r for r in rows}
        with_der = [r for r in rows if r[3] is not None]
        self.assertGreaterEqual(len(with_der), len(received))
        et.log("%d certificate rows stored, %d with a certificate" % (len(rows), len(with_der)))

        # No serial twice (the column, and the serials inside the DER).
        dup = d.sql("SELECT serial, count(*) FROM certificates WHERE serial IS NOT NULL "
                    "GROUP BY serial HAVING count(*) > 1")
        self.assertEqual(dup, [], "duplicate serials")
        ders = [base64.b64decode(r[3]) for r in with_der]
        inner = [der_serial_hex(der) for der in ders]
        self.assertEqual(len(set(inner)), len(inner), "duplicate serials inside certificates")
        for r, s in zip(with_der, inner):
            self.assertEqual(r[2], s, "row %s: serial column %s, certificate %s" % (r[0], r[2], s))
            self.assertIn(r[1], ("issued", "revoked", "expired"),
                          "row %s has a certificate but status %s" % (r[0], r[1]))

        # Every stored certificate verifies against the root.
        bad = verify_many(self.tmp, ders, d.root_pem, et.issuing_pem(d))
        self.assertEqual(bad, [], "stored certificates that do not verify")

        # Issued means signed and stored (the schema also says so).
        self.assertEqual(d.count("certificates", "status = 'issued' AND cert_der IS NULL"), 0)

        # Every certificate a client received is stored, as issued, byte for byte.
        for serial, cert_id, pem in received:
            self.assertIn(cert_id, by_id, "received certificate %d not in the table" % cert_id)
            row = by_id[cert_id]
            self.assertEqual(row[1], "issued", "received certificate %d is %s" % (cert_id, row[1]))
            self.assertEqual(row[2], serial)
            self.assertEqual(base64.b64decode(row[3]), pem_to_der(pem),
                             "certificate %d differs from what the client got" % cert_id)
        self.assertEqual(len({s for s, _, _ in received}), len(received),
                         "a client received the same serial twice")

        # Nothing signed is missing: every issuance the audit log records has
        # its certificate row, and every issued row has an audit entry.
        orphans = d.sql("SELECT c.id FROM certificates c WHERE c.status = 'issued' AND NOT EXISTS "
                        "(SELECT 1 FROM audit_log a WHERE a.object_type = 'certificate' "
                        "AND a.object_id = c.id)")
        self.assertEqual(orphans, [], "issued certificates without an audit entry")
        dangling = d.sql("SELECT a.id FROM audit_log a WHERE a.object_type = 'certificate' "
                         "AND a.object_id IS NOT NULL AND NOT EXISTS "
                         "(SELECT 1 FROM certificates c WHERE c.id = a.object_id)")
        self.assertEqual(dangling, [], "audit entries for certificates that are not stored")

        # The restarted daemon keeps issuing, with fresh serials.
        before = d.count("certificates", "status = 'issued'")
        for i in range(3):
            r = et.enroll(d, tenant, csrs[i])
            self.assertEqual(r.status, 201, r)
            self.assertNotIn(r.json["serial"], inner)
        self.assertEqual(d.count("certificates", "status = 'issued'"), before + 3)
        d.stop()


def et_procs_with(needle):
    """(pid, cmdline) of live, non-zombie processes whose command line
    contains `needle`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open("/proc/%s/stat" % name) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and needle in cmd:
            found.append((int(name), cmd))
    return found


if __name__ == "__main__":
    et.main()
