"""test_embedded: enrolld on its embedded default (no database_url).

With no database configured enrolld must initdb its own PostgreSQL cluster in
STATE/pgdata, run it as its unprivileged user on a Unix socket only, come up
healthy, issue a certificate, stop on SIGTERM with exit 0 taking PostgreSQL
down with it, and start again on the same state dir with the same CA and
without minting a second first-admin token.
"""

import hashlib
import os
import time
import enrolld_test as et


def postgres_processes(state_dir):
    """PIDs of live postgres processes that belong to state_dir: their cwd
    (the postmaster and its children chdir into the data dir) or command
    line mentions it, or the executable is postgres and the cwd is inside."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            try:
                cwd = os.readlink("/proc/%d/cwd" % pid)
            except OSError:
                cwd = ""
            try:
                exe = os.readlink("/proc/%d/exe" % pid)
            except OSError:
                exe = ""
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state == "Z":
            continue  # a zombie runs nothing; its parent has yet to reap it
        is_pg = "postgres" in os.path.basename(exe) or cmdline.startswith("postgres")
        if is_pg and (cwd.startswith(state_dir) or state_dir in cmdline):
            found.append((pid, cmdline.strip()))
    return found


def wait_no_postgres(state_dir, grace=5.0):
    deadline = time.time() + grace
    while True:
        procs = postgres_processes(state_dir)
        if not procs or time.time() > deadline:
            return procs
        time.sleep(0.1)


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class EmbeddedTest(et.EnrolldTestCase):
    enrolld_args = None  # one daemon per test, made by the test itself

    def test_embedded_lifecycle(self):
        d = self.start_enrolld(embedded=True)
        state = d.state_dir
        pgdata = os.path.join(state, "pgdata")

        # It made its own cluster in STATE/pgdata, owned by its user, not root.
        self.assertTrue(os.path.isfile(os.path.join(pgdata, "PG_VERSION")),
                        "no initdb'ed cluster in STATE/pgdata")
        if et.IS_ROOT:
            self.assertNotEqual(os.stat(pgdata).st_uid, 0, "pgdata owned by root")
        running = postgres_processes(state)
        self.assertTrue(running, "no postgres process runs in the state dir")
        for pid, _ in running:
            with open("/proc/%d/status" % pid) as f:
                uid = [l for l in f if l.startswith("Uid:")][0].split()[1]
            self.assertNotEqual(uid, "0", "postgres %d runs as root" % pid)

        # Health reports the database.
        r = d.api("GET", "/api/v1/health", token=None)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"status": "ok", "database": "ok"})

        # First start: the token is printed once and kept 0600.
        out = et.read_text(d.stdout_path)
        self.assertEqual(out.count("first master admin token:"), 1, out)
        self.assertIn("enrolld: ready", out)
        self.assertIn("enrolld: admin API at https://", out)
        tok_path = os.path.join(state, "initial-admin-token")
        self.assertEqual(os.stat(tok_path).st_mode & 0o777, 0o600)
        self.assertNotIn(d.token, et.read_text(d.stderr_path), "token in the log")

        # Unix socket only: no TCP listener.
        self.assertEqual(d.sql("SHOW listen_addresses"), [("",)])

        # Issue a certificate through the admin API.
        tenant = et.setup_tenant(d)
        key, csr = et.make_csr(self.tmp, cn="www.example.test", sans=["www.example.test"])
        r = et.enroll(d, tenant, csr)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "issued")
        ok, why = et.openssl_verify(r.json["pem"], d.root_pem, et.issuing_pem(d))
        self.assertTrue(ok, why)
        cert_id = int(r.json["id"])
        serial = r.json["serial"]
        self.assertEqual(d.sql("SELECT status, serial FROM certificates WHERE id = %d" % cert_id),
                         [("issued", serial)])

        root_hash = sha256_file(d.root_pem)
        issuing_hash = sha256_file(os.path.join(state, "ca", "issuing.pem"))

        # SIGTERM: exit 0 and PostgreSQL gone with it.
        d.stop()
        left = wait_no_postgres(state)
        self.assertEqual(left, [], "postgres still running after enrolld exited: %r" % left)
        self.assertFalse(os.path.exists(os.path.join(pgdata, "postmaster.pid")),
                         "postmaster.pid left behind: PostgreSQL was not shut down cleanly")

        # Second start on the same state dir: same CA, same data, no new token.
        d.start()
        out = et.read_text(d.stdout_path)
        self.assertEqual(out.count("first master admin token:"), 1,
                         "a second first-admin token was minted:\n" + out)
        self.assertEqual(out.count("enrolld: ready"), 2, out)
        self.assertEqual(sha256_file(d.root_pem), root_hash, "root CA changed on restart")
        self.assertEqual(sha256_file(os.path.join(state, "ca", "issuing.pem")), issuing_hash,
                         "issuing CA changed on restart")
        r = d.api("GET", "/api/v1/certificates/%d" % cert_id)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["serial"], serial)
        self.assertEqual(d.count("admins"), 1, "a second master admin was created")

        # It still issues, under the same root.
        key, csr = et.make_csr(self.tmp, cn="api.example.test", sans=["api.example.test"])
        r = et.enroll(d, tenant, csr)
        self.assertEqual(r.status, 201, r)
        ok, why = et.openssl_verify(r.json["pem"], d.root_pem, et.issuing_pem(d))
        self.assertTrue(ok, why)
        self.assertEqual(d.count("certificates", "status = 'issued'"), 2)

        d.stop()
        left = wait_no_postgres(state)
        self.assertEqual(left, [], "postgres still running after the second stop: %r" % left)


if __name__ == "__main__":
    et.main()
