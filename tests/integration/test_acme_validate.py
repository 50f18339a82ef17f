"""test_acme_validate: the ACME validator inside the real daemon.

The unit test (tests/unit/test_acme_validate.c) covers the checks one by one;
this one proves the wiring in daemon/main.c and core/config.c: the [acme]
keys are read by the binary, the validator threads start after the privilege
drop with the daemon's own database connection, pick up challenges left
'processing' when the daemon starts, write the outcome (challenge, authz,
order, audit) and do not hold up SIGTERM while a check hangs.

The ACME door is not needed: challenges are put into the database directly,
the way the door leaves them ('processing'), and the daemon is restarted so
that its start-up sweep finds them. An HTTP responder in this process plays
the web server for http-01 on an ip identifier (127.0.0.1).
"""

import http.server
import os
import subprocess
import threading
import time

import enrolld_test as et

THUMB = "dGh1bWJwcmludC1vZi10aGUtaW50ZWdyYXRpb24tdGVzdA"


class Responder(http.server.ThreadingHTTPServer):
    """http-01 responder: /.well-known/acme-challenge/<token> answers
    <token>.THUMB, except 'wrong' (another body) and 'slow' (no answer for
    30 s). Counts requests per token."""

    daemon_threads = True

    def __init__(self):
        self.hits = {}
        self.lock = threading.Lock()
        self.closing = threading.Event()
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        prefix = "/.well-known/acme-challenge/"
        token = self.path[len(prefix):] if self.path.startswith(prefix) else ""
        with self.server.lock:
            self.server.hits[token] = self.server.hits.get(token, 0) + 1
        if token == "slow":
            self.server.closing.wait(30)
            return
        body = ("%s.%s" % (token, THUMB) if token != "wrong" else "nope").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def q(text):
    return "'" + text.replace("'", "''") + "'"


class ValidatorInDaemon(et.EnrolldTestCase):
    enrolld_args = None  # each test starts its own daemon

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.web = Responder()
        cls.web_thread = threading.Thread(target=cls.web.serve_forever, daemon=True)
        cls.web_thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.web.closing.set()
        cls.web.shutdown()
        cls.web.server_close()
        super().tearDownClass()

    def daemon(self, timeout=3):
        extra = ("[acme]\n"
                 "validation_http_port = %d\n"
                 "validation_allow_private = on\n"
                 "validation_timeout = %d\n"
                 "validation_workers = 2\n" % (self.web.server_address[1], timeout))
        return self.start_enrolld(config_extra=extra)

    def fixtures(self, d):
        """An organization, profile, ACME endpoint and account; returns the
        account id."""
        org = d.sql("INSERT INTO organizations (name) VALUES ('Validator Org') RETURNING id")[0][0]
        prof = d.sql("INSERT INTO profiles (name, cert_type, terms_days, key_types) VALUES"
                     " ('acme-val', 'ssl', '{90}', '{p256}') RETURNING id")[0][0]
        ep = d.sql("INSERT INTO endpoints (protocol, name, org_id, default_profile_id,"
                   " profile_ids) VALUES ('acme', 'val', %s, %s, ARRAY[%s::bigint])"
                   " RETURNING id" % (org, prof, prof))[0][0]
        acct = d.sql("INSERT INTO acme_accounts (endpoint_id, key_thumbprint, jwk, org_id)"
                     " VALUES (%s, %s, '{}', %s) RETURNING id" % (ep, q(THUMB), org))[0][0]
        self.profile = prof
        return acct

    def order(self, d, acct, tokens, status="processing"):
        """An order with one authz (ip 127.0.0.1) per token, each with one
        http-01 challenge; returns (order id, [challenge ids])."""
        order = d.sql("INSERT INTO acme_orders (public_id, account_id, identifiers, profile_id,"
                      " term_days, expires_at) VALUES (md5(random()::text), %s, '[]', %s, 90,"
                      " now() + interval '1 day') RETURNING id" % (acct, self.profile))[0][0]
        chals = []
        for token in tokens:
            authz = d.sql("INSERT INTO acme_authzs (public_id, order_id, account_id, id_type,"
                          " id_value, expires_at) VALUES (md5(random()::text), %s, %s, 'ip',"
                          " '127.0.0.1', now() + interval '1 day') RETURNING id"
                          % (order, acct))[0][0]
            chals.append(d.sql("INSERT INTO acme_challenges (public_id, authz_id, type, token,"
                               " status) VALUES (md5(random()::text), %s, 'http-01', %s, %s)"
                               " RETURNING id" % (authz, q(token), q(status)))[0][0])
        return order, chals

    def status(self, d, table, ident):
        return d.sql("SELECT status FROM %s WHERE id = %s" % (table, ident))[0][0]

    def wait_status(self, d, chal, want, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.status(d, "acme_challenges", chal) == want:
                return True
            time.sleep(0.1)
        return False

    def test_check_config_accepts_acme_section(self):
        path = os.path.join(self.tmp, "acme.conf")
        with open(path, "w") as f:
            f.write("[acme]\nvalidation_dns_resolver = 127.0.0.1:8053\n"
                    "validation_allow_private = on\n")
        r = subprocess.run([et.enrolld_bin(), "-c", path, "--check-config"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(path, "w") as f:
            f.write("[acme]\nvalidation_dns_resolver = resolver.example\n")
        r = subprocess.run([et.enrolld_bin(), "-c", path, "--check-config"],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("validation_dns_resolver", r.stderr)

    def test_leftovers_validated_at_start(self):
        d = self.daemon()
        acct = self.fixtures(d)
        good_order, (c_good, c_good2) = self.order(d, acct, ["tok-a", "tok-b"])
        bad_order, (c_bad,) = self.order(d, acct, ["wrong"])
        pending_order, (c_pending,) = self.order(d, acct, ["tok-p"], status="pending")
        audits = d.count("audit_log", "action = 'acme.challenge.validate'")

        # The running daemon was started before these rows existed: only a
        # restart's sweep finds them (the door would have submitted them).
        d.stop()
        d.start()
        self.assertTrue(self.wait_status(d, c_good, "valid"), d.log_tail())
        self.assertTrue(self.wait_status(d, c_good2, "valid"), d.log_tail())
        self.assertTrue(self.wait_status(d, c_bad, "invalid"), d.log_tail())
        time.sleep(0.3)
        self.assertEqual(self.status(d, "acme_orders", good_order), "ready")
        self.assertEqual(self.status(d, "acme_orders", bad_order), "invalid")
        err = d.sql("SELECT error->>'type' FROM acme_challenges WHERE id = %s" % c_bad)[0][0]
        self.assertEqual(err, "urn:ietf:params:acme:error:incorrectResponse")
        # The pending one was not touched, nor fetched.
        self.assertEqual(self.status(d, "acme_challenges", c_pending), "pending")
        self.assertEqual(self.status(d, "acme_orders", pending_order), "pending")
        self.assertNotIn("tok-p", self.web.hits)
        self.assertEqual(self.web.hits.get("tok-a"), 1)
        self.assertEqual(d.count("audit_log", "action = 'acme.challenge.validate'"), audits + 3)
        self.assertIn("acme validator: 2 thread(s)", d.logs())
        # The daemon runs as its own user: the checks did too.
        self.assertEqual(d.count("acme_challenges", "status = 'processing'"), 0)

    def test_sigterm_during_a_hanging_check(self):
        d = self.daemon(timeout=20)
        acct = self.fixtures(d)
        _, (c_slow,) = self.order(d, acct, ["slow"])
        d.stop()
        d.start()
        deadline = time.time() + 10
        while self.web.hits.get("slow", 0) == 0 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.web.hits.get("slow"), 1, d.log_tail())
        t = time.time()
        d.stop(timeout=15)  # asserts exit status 0
        self.assertLess(time.time() - t, 5, "SIGTERM waited for the 20 s check")
        # Cancelled, not judged: the next start checks it again.
        self.assertEqual(self.status(d, "acme_challenges", c_slow), "processing")
        self.assertIn("left processing", d.logs())


if __name__ == "__main__":
    et.main()
