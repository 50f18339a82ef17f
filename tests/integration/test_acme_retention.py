"""test_acme_retention: the ACME tables' retention (daemon/retention.c).

Against the real binary and a real PostgreSQL, with retention_days = 1 and a
pass every second ([acme] retention_interval = 1). Orders are made through
the ACME door (test_acme_protocol's client), then aged with SQL (their
expiry, their certificate's notAfter, an administrator's decision moved two
days back, or twelve hours: inside retention), then the daemon prunes:

  * past retention and deleted, with their authorizations and challenges: a
    pending order, a valid order whose certificate expired, a declined order;
  * kept: a pending order inside retention, a valid order whose certificate
    is still valid (even though the order itself expired long ago; the
    certificate still downloads), a held order ('processing'), a declined
    order decided inside retention;
  * certificates and audit_log rows are untouched (counted before and after;
    the pruned order's certificate still answers ARI);
  * an ACME client asking for a pruned order, its authorization, challenge or
    certificate URL gets a 404 problem document, not a 500;
  * one log line per pass that deleted something, with the counts;
  * two instances on one database pruning 2,500 aged orders at the same
    time: every order deleted once, the two instances' logged counts add up
    to exactly the rows there were, no failure logged;
  * SIGHUP takes a new retention_days: an order kept at 3 days goes at 1.
"""

import re
import secrets
import signal
import time

import enrolld_test as et
import test_acme_protocol as tap

RETENTION = "[acme]\nretention_days = 1\nretention_interval = 1\n"
PRUNED = re.compile(r"retention: deleted (\d+) ACME order\(s\), (\d+) authorization\(s\), "
                    r"(\d+) challenge\(s\) past 1 day\(s\)")


def public_id(url):
    return url.rsplit("/", 1)[1]


def order_exists(d, pid):
    return d.count("acme_orders", "public_id = '%s'" % pid) == 1


def wait_gone(d, pid, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not order_exists(d, pid):
            return True
        time.sleep(0.2)
    return False


def pruned_totals(d):
    """(orders, authzs, challenges) summed over the daemon's log lines."""
    total = [0, 0, 0]
    for m in PRUNED.finditer(d.logs()):
        for i in range(3):
            total[i] += int(m.group(i + 1))
    return tuple(total)


class AcmeRetentionTest(tap.AcmeBase):
    enrolld_args = {"config_extra": RETENTION}

    def age_order(self, pid, interval):
        """Makes the order (and its authorizations) expired `interval` ago,
        created an order lifetime (7 days) before that."""
        self.d.sql("UPDATE acme_orders SET expires_at = now() - interval '%s',"
                   " created_at = now() - interval '%s' - interval '7 days'"
                   " WHERE public_id = '%s'" % (interval, interval, pid))
        self.d.sql("UPDATE acme_authzs SET expires_at = now() - interval '%s'"
                   " WHERE order_id = (SELECT id FROM acme_orders WHERE public_id = '%s')"
                   % (interval, pid))

    def test_retention(self):
        d = self.d
        c = self.client()                       # fast endpoint: orders born ready
        slow = self.client(endpoint=self.slow)  # pending orders with challenges

        # pending, past retention / inside it
        old_pending = slow.new_order(["old." + self.domain])
        self.assertEqual(old_pending.status, 201, old_pending)
        authz_url = old_pending.json["authorizations"][0]
        az = slow.get(authz_url)
        self.assertEqual(az.status, 200, az)
        self.assertTrue(az.json["challenges"], az.json)
        chall_url = az.json["challenges"][0]["url"]
        new_pending = slow.new_order(["new." + self.domain])
        self.assertEqual(new_pending.status, 201, new_pending)

        # valid: certificate still valid / expired
        live, live_chain, _ = self.issue(c, ["live." + self.domain])
        live_url = c.get(c.kid + "/orders").json["orders"][0]
        dead_order = c.new_order(["dead." + self.domain])
        dead_url = dead_order.headers["location"]
        f = c.finalize(dead_order.json, tap.make_csr(tap.Key("ec"), ["dead." + self.domain]))
        self.assertEqual(f.json["status"], "valid", f.json)
        dead_cert_url = f.json["certificate"]
        dead_chain = c.get(dead_cert_url).text
        dead_cert_id = int(d.sql("SELECT certificate_id FROM acme_orders WHERE public_id = '%s'"
                                 % public_id(dead_url))[0][0])

        # held for approval; declined long ago / recently
        t = et.setup_tenant(d, domain="ret-%s.test" % secrets.token_hex(3),
                            requires_approval=True)
        tap.validate_domain(d, t["domain_id"])
        ep = tap.make_endpoint(d, t, settings={"skip_challenges_when_dcv_validated": True})
        h = tap.AcmeClient(d, ep["name"])
        self.assertEqual(h.register(eab=tap.make_eab(d, int(ep["id"]))).status, 201)
        held = {}
        for what in ("held", "declined_old", "declined_new"):
            names = ["%s.%s" % (what.replace("_", "-"), t["domain"])]
            r = h.new_order(names)
            self.assertEqual(r.status, 201, r)
            f = h.finalize(r.json, tap.make_csr(tap.Key("ec"), names))
            self.assertEqual(f.json["status"], "processing", f.json)
            held[what] = public_id(r.headers["location"])
            held[what + "_url"] = r.headers["location"]
        for what in ("declined_old", "declined_new"):
            cert_id = int(d.sql("SELECT certificate_id FROM acme_orders WHERE public_id = '%s'"
                                % held[what])[0][0])
            et.expect(d.api("POST", "/api/v1/certificates/%d/decline" % cert_id,
                            {"reason": "no"}), 200)

        # every API call done: what must not change from here on
        certs_before = d.sql("SELECT id, status, serial, not_after FROM certificates ORDER BY id")
        audit_before = d.count("audit_log")
        old_pid = public_id(old_pending.headers["location"])
        gone = "('%s', '%s', '%s')" % (old_pid, public_id(dead_url), held["declined_old"])
        gone_authzs = int(d.sql("SELECT count(*) FROM acme_authzs z JOIN acme_orders o"
                                " ON o.id = z.order_id WHERE o.public_id IN %s" % gone)[0][0])
        gone_challs = int(d.sql("SELECT count(*) FROM acme_challenges c JOIN acme_authzs z"
                                " ON z.id = c.authz_id JOIN acme_orders o ON o.id = z.order_id"
                                " WHERE o.public_id IN %s" % gone)[0][0])
        # the pending order's: the two others' names were validated, their
        # authorizations derived from the order (no rows, migration 009)
        self.assertEqual(gone_authzs, 1)
        self.assertGreaterEqual(gone_challs, 1)
        dead_authz_url = dead_order.json["authorizations"][0]
        self.assertTrue(dead_authz_url.endswith("/authz/%s.0" % public_id(dead_url)))
        self.assertEqual(c.get(dead_authz_url).status, 200)

        # age them: the pending, held and declined ones expired two days ago,
        # the valid ones a certificate term and more (their certificates were
        # issued then, as far as the order can tell)
        kept_long_ago = [public_id(live_url), held["held"]]
        for pid in [old_pid, held["declined_old"], held["held"]]:
            self.age_order(pid, "2 days")
        for pid in [public_id(dead_url), public_id(live_url)]:
            self.age_order(pid, "100 days")
        self.age_order(public_id(new_pending.headers["location"]), "12 hours")
        # the live order's certificate stays valid; the dead one expired two
        # days ago; the old decline was two days ago
        d.sql("UPDATE certificates SET not_after = now() - interval '2 days' WHERE id = %d"
              % dead_cert_id)
        d.sql("UPDATE certificates SET updated_at = now() - interval '2 days' WHERE id ="
              " (SELECT certificate_id FROM acme_orders WHERE public_id = '%s')"
              % held["declined_old"])
        certs_before = [(r[0], r[1], r[2], r[3] if r[0] != str(dead_cert_id) else None)
                        for r in certs_before]

        for pid in (old_pid, public_id(dead_url), held["declined_old"]):
            self.assertTrue(wait_gone(d, pid), "order %s not pruned" % pid)
        time.sleep(2)  # two more passes: nothing else may go
        for pid in kept_long_ago + [public_id(new_pending.headers["location"]),
                                    held["declined_new"]]:
            self.assertTrue(order_exists(d, pid), "order %s pruned" % pid)
        self.assertEqual(d.count("acme_authzs z", "NOT EXISTS (SELECT 1 FROM acme_orders o"
                                 " WHERE o.id = z.order_id)"), 0)

        # certificates and the audit log untouched
        certs_after = [(r[0], r[1], r[2], r[3] if r[0] != str(dead_cert_id) else None)
                       for r in d.sql("SELECT id, status, serial, not_after FROM certificates"
                                      " ORDER BY id")]
        self.assertEqual(certs_after, certs_before)
        self.assertEqual(d.count("audit_log"), audit_before)

        # one log line with the counts (this class's daemon pruned nothing else)
        self.assertEqual(pruned_totals(d), (3, gone_authzs, gone_challs))

        # the client: 404 problem documents for the pruned objects
        for url in (old_pending.headers["location"], authz_url, chall_url, dead_url,
                    dead_authz_url, dead_cert_url):
            g = slow.get(url) if url in (old_pending.headers["location"], authz_url,
                                         chall_url) else c.get(url)
            self.assertProblem(g, 404, "malformed")
        # the kept ones still answer; the live certificate still downloads
        g = c.get(live_url)
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json["status"], "valid")
        dl = c.get(g.json["certificate"])
        self.assertEqual(dl.status, 200, dl)
        self.assertEqual(dl.text, live_chain)
        g = h.get(held["held_url"])
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json["status"], "processing")
        # ARI does not need the order
        ari = c.request("GET", c.directory()["renewalInfo"] + "/" + tap.ari_cert_id(dead_chain))
        self.assertEqual(ari.status, 200, ari)
        # the account's order list no longer names the pruned ones
        listed = c.get(c.kid + "/orders").json["orders"]
        self.assertNotIn(dead_url, listed)
        self.assertIn(live_url, listed)


class AcmeRetentionTwoInstancesTest(tap.AcmeBase):
    enrolld_args = {"config_extra": "[acme]\nretention_days = 0\n"}

    def test_concurrent_pruners(self):
        d1 = self.d
        c = self.client(endpoint=self.slow)
        r = c.new_order(["bulk." + self.domain])
        self.assertEqual(r.status, 201, r)
        self.assertIn("kept forever", d1.logs())
        n = 2500
        # n aged copies of that order, each with an authorization and a
        # challenge; the original stays (not aged)
        d1.sql("WITH src AS (SELECT * FROM acme_orders WHERE public_id = '%s'),"
               " o AS (INSERT INTO acme_orders (public_id, account_id, status, identifiers,"
               " profile_id, term_days, expires_at, created_at)"
               " SELECT 'bulk-' || g, src.account_id, 'pending', src.identifiers,"
               " src.profile_id, src.term_days, now() - interval '3 days',"
               " now() - interval '4 days' FROM src, generate_series(1, %d) g"
               " RETURNING id, account_id, public_id),"
               " z AS (INSERT INTO acme_authzs (public_id, order_id, account_id, id_type,"
               " id_value, expires_at) SELECT 'z' || o.public_id, o.id, o.account_id, 'dns',"
               " 'bulk.x', now() - interval '3 days' FROM o RETURNING id, public_id)"
               " INSERT INTO acme_challenges (public_id, authz_id, type, token)"
               " SELECT 'c' || z.public_id, z.id, 'http-01', 'tok' FROM z"
               % (public_id(r.headers["location"]), n))
        self.assertEqual(d1.count("acme_orders", "public_id LIKE 'bulk-%'"), n)

        ca = d1.state_dir + "/ca"
        daemons = []
        for _ in range(2):
            d = et.Enrolld(start=False, config_extra=RETENTION +
                           "[ca]\nca_root_cert = %s/root.pem\nca_issuing_cert = %s/issuing.pem\n"
                           "ca_issuing_key = %s/issuing.key\n" % (ca, ca, ca))
            self.addCleanup(self.close_daemon, d)
            d.share_database(d1)
            daemons.append(d)
        for d in daemons:
            d.start()

        deadline = time.time() + 30
        while time.time() < deadline and d1.count("acme_orders",
                                                  "public_id LIKE 'bulk-%'") > 0:
            time.sleep(0.2)
        self.assertEqual(d1.count("acme_orders", "public_id LIKE 'bulk-%'"), 0)
        self.assertEqual(d1.count("acme_authzs", "public_id LIKE 'zbulk-%'"), 0)
        self.assertEqual(d1.count("acme_challenges", "public_id LIKE 'czbulk-%'"), 0)
        self.assertTrue(order_exists(d1, public_id(r.headers["location"])))
        time.sleep(1.5)
        totals = [pruned_totals(d) for d in daemons]
        self.assertEqual(tuple(sum(t[i] for t in totals) for i in range(3)), (n, n, n),
                         totals)
        for d in daemons:
            self.assertNotIn("retention_prune failed", d.logs())
            self.assertNotIn("PQexecParams(enrolld_acme_retention_prune", d.logs())


class AcmeRetentionReloadTest(tap.AcmeBase):
    enrolld_args = {"config_extra": "[acme]\nretention_days = 3\nretention_interval = 1\n"}

    def test_sighup_takes_new_retention(self):
        d = self.d
        c = self.client(endpoint=self.slow)
        r = c.new_order(["hup." + self.domain])
        self.assertEqual(r.status, 201, r)
        pid = public_id(r.headers["location"])
        d.sql("UPDATE acme_orders SET expires_at = now() - interval '2 days',"
              " created_at = now() - interval '9 days' WHERE public_id = '%s'" % pid)
        time.sleep(2.5)  # two passes at 3 days: inside retention
        self.assertTrue(order_exists(d, pid))
        self.assertEqual(pruned_totals(d), (0, 0, 0))
        with open(d.config_path, "w") as f:
            f.write(d.config_text.replace("retention_days = 3", "retention_days = 1"))
        d.signal(signal.SIGHUP)
        self.assertTrue(wait_gone(d, pid))
        self.assertIn("retention: now 1 day(s), a pass every 1 s", d.logs())
        g = c.get(r.headers["location"])
        self.assertProblem(g, 404, "malformed")


if __name__ == "__main__":
    et.main()
