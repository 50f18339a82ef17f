"""test_acme_lego: the ACME door driven by the real lego (Debian package
lego), on loopback, against a real PostgreSQL.

One enrolld for the class, its validator pointed at the test's http-01 and
tls-alpn-01 ports and at pebble-challtestsrv as DNS server (every name
resolves to 127.0.0.1; dns-01 TXT records are set by lego's exec provider
through its management API). The tenant (organization, department, delegated
domain, profile, ACME endpoint requiring EAB) is made through the admin API;
every lego run registers its own account with its own EAB key bound to the
department (--eab --kid --hmac).

  * http-01 (--http --http.port), tls-alpn-01 (--tls --tls.port), dns-01
    (--dns exec, a wildcard with its apex), each: the account bound by EAB
    to the department, the certificate verified with `openssl verify -CAfile
    root -untrusted issuing`, subject O/OU the organization/department, the
    challenge type that made the authorization valid;
  * an approval-required profile: the order stays 'processing' while lego
    polls, until an administrator approves through the admin API;
  * a name outside the delegation: lego reports rejectedIdentifier and no
    order is stored.
"""

import re
import secrets

import acme_clients as ac
import enrolld_test as et


class LegoTest(ac.RealClientTestCase):

    CLIENT = "lego"
    PACKAGE = "lego"

    # -- helpers

    def lego(self, tenant=None):
        """A lego with a state dir and EAB credentials of its own; returns
        (lego, kid)."""
        tenant = tenant or self.tenant
        kid, hmac_key = tenant.eab()
        return ac.Lego(self.d, tenant.directory, self.tmp_clients, (kid, hmac_key)), kid

    def http_args(self):
        return ["--http", "--http.port", "127.0.0.1:%d" % self.http_port]

    def assertRan(self, run):
        self.assertTrue(run.ok, "lego failed: %r" % run)

    def assertAccountBound(self, lego, kid, tenant=None):
        """lego stored one account, and enrolld bound it through EAB key
        `kid` to the tenant's department."""
        tenant = tenant or self.tenant
        self.assertEqual(len(lego.account_dirs()), 1, lego.account_dirs())
        rows = self.d.sql(
            "SELECT a.status, a.org_id, a.dept_id FROM acme_accounts a"
            " JOIN acme_eab_keys k ON k.id = a.eab_key_id"
            " WHERE k.kid = '%s' AND a.endpoint_id = %d" % (kid, tenant.endpoint_id))
        self.assertEqual(rows, [("valid", str(tenant.t["org_id"]), str(tenant.t["dept_id"]))])

    def check(self, lego, names, tenant=None):
        tenant = tenant or self.tenant
        crt = lego.cert(names[0], "crt")
        certs = ac.pem_certs(crt)
        self.assertGreaterEqual(len(certs), 2, "lego stored no bundle: %r" % crt[:200])
        return ac.check_issued(self, self.d, tenant, certs[0], "".join(certs[1:]), names)

    def challenge_types(self, names):
        """{name: valid challenge types} of this endpoint's valid
        authorizations for `names`."""
        out = {}
        for n in names:
            wildcard = n.startswith("*.")
            rows = self.d.sql(
                "SELECT DISTINCT c.type FROM acme_challenges c"
                " JOIN acme_authzs a ON a.id = c.authz_id"
                " JOIN acme_accounts acc ON acc.id = a.account_id"
                " WHERE acc.endpoint_id = %d AND a.id_value = '%s' AND a.wildcard = %s"
                " AND a.status = 'valid' AND c.status = 'valid' ORDER BY 1"
                % (self.tenant.endpoint_id, n[2:] if wildcard else n,
                   "true" if wildcard else "false"))
            out[n] = [r[0] for r in rows]
        return out

    # -- tests

    def test_http01(self):
        lego, kid = self.lego()
        names = ["http." + self.tenant.domain, "www.http." + self.tenant.domain]
        run = lego.run(names, self.http_args())
        self.assertRan(run)
        self.assertAccountBound(lego, kid)
        self.check(lego, names)
        self.assertEqual(self.challenge_types(names), {n: ["http-01"] for n in names})

    def test_tls_alpn01(self):
        lego, kid = self.lego()
        names = ["tls." + self.tenant.domain]
        run = lego.run(names, ["--tls", "--tls.port", "127.0.0.1:%d" % self.tls_port])
        self.assertRan(run)
        self.assertAccountBound(lego, kid)
        self.check(lego, names)
        self.assertEqual(self.challenge_types(names), {names[0]: ["tls-alpn-01"]})

    def test_dns01_wildcard(self):
        lego, kid = self.lego()
        base = "dns." + self.tenant.domain
        names = ["*." + base, base]
        env = {"EXEC_PATH": self.exec_path,
               "EXEC_SEQUENCE_INTERVAL": "1",     # else 60 s between wildcard and apex
               "EXEC_PROPAGATION_TIMEOUT": "10", "EXEC_POLLING_INTERVAL": "1",
               "CHALLTESTSRV_URL": self.dns.management_url, "HOOK_LOG": self.hook_log}
        run = lego.run(names, ["--dns", "exec", "--dns.resolvers", self.dns.resolver,
                               "--dns.disable-cp"], env=env)
        self.assertRan(run)
        self.assertAccountBound(lego, kid)
        self.check(lego, names)
        self.assertEqual(self.challenge_types(names), {n: ["dns-01"] for n in names})
        log = et.read_text(self.hook_log)
        self.assertIn("set _acme-challenge.%s." % base, log)
        self.assertIn("clear _acme-challenge.%s." % base, log)

    def test_approval_required(self):
        t = ac.AcmeTenant(self.d, requires_approval=True)
        lego, kid = self.lego(t)
        names = ["approve." + t.domain]
        approver = []

        def start(proc):
            a = ac.Approver(self.d, t, proc, hold=2.5)
            a.start()
            approver.append(a)

        # lego polls a 'processing' order for --cert.timeout seconds
        run = lego.run(names, self.http_args() + ["--cert.timeout", "60"], on_start=start)
        approver[0].join(timeout=30)
        self.assertIsNone(approver[0].error, approver[0].error)
        self.assertEqual(approver[0].seen, {"order_status": "processing",
                                            "cert_status": "requested",
                                            "cert_der_null": "t",
                                            "client_running": True})
        self.assertRan(run)
        self.assertAccountBound(lego, kid, t)
        serial = self.check(lego, names, t)
        rows = self.d.sql("SELECT id, approver_admin_id IS NOT NULL FROM certificates"
                          " WHERE serial = '%s'" % serial)
        self.assertEqual(rows, [(str(approver[0].approved_id), "t")])

    def test_name_outside_delegation_refused(self):
        lego, kid = self.lego()
        outside = "www.not-delegated-%s.test" % secrets.token_hex(3)
        names = ["ok." + self.tenant.domain, outside]
        before = self.tenant.counts()
        run = lego.run(names, self.http_args())
        self.assertFalse(run.ok, run)
        self.assertIn("urn:ietf:params:acme:error:rejectedIdentifier", run.output, run)
        self.assertRegex(run.output, re.escape(outside) + r".*name_not_delegated", run)
        self.assertEqual(lego.cert(names[0]), "")
        # lego registered its account first (bound by EAB); the refused order
        # left nothing else behind
        self.assertAccountBound(lego, kid)
        after = self.tenant.counts()
        before["accounts"] += 1
        self.assertEqual(after, before, "a refused order wrote rows")

if __name__ == "__main__":
    et.main()
