"""test_enrollment: manual enrollment through the admin API, end to end.

Against the real binary and a real PostgreSQL (enrolld_test harness):
  * bootstrap -> organization (with address), department, domain, delegation,
    ssl profile, an RAO and a DRAO with their own tokens;
  * enrollment of an EC and an RSA CSR: the certificate verifies with
    `openssl verify -CAfile root.pem -untrusted chain`, subject O/OU are the
    organization's and department's even when the CSR says otherwise, the
    SANs are the CSR's, the row and its audit entry are stored;
  * reads: GET one, GET its PEM chain, lists with filters, keyset pages and
    scope (an RAO of another organization sees nothing and gets 404);
  * approval: a requires_approval profile holds (202 requested), the
    requester cannot approve itself (403), another admin approves (issued,
    exactly once), declines, and an approval after the domain was
    deactivated declines with the policy reason;
  * revocation: the serial appears in the CRL fetched without auth from
    /crl/default.crl (openssl crl -inform DER -text), the CRL verifies
    against the issuing CA, the CRL number grows, revoking twice is 409;
    a fresh CRL is served from the database, a stale one is regenerated
    exactly once even when 8 clients ask at the same moment;
  * Idempotency-Key: 8 concurrent retries of one request get one row and
    the same certificate; the key is per administrator; a reused key for a
    different request is 409.
"""

import base64
import os
import re
import secrets
import subprocess
import threading

import enrolld_test as et


def x509_text(pem):
    return et.cert_text(pem)


def subject_of(pem):
    p = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
                       input=pem, capture_output=True, text=True, check=True)
    return p.stdout.strip()[len("subject="):]


def sans_of(pem):
    text = x509_text(pem)
    m = re.search(r"X509v3 Subject Alternative Name:.*?\n\s*(.*?)\n", text)
    if not m:
        return []
    return sorted(s.strip() for s in m.group(1).split(","))


def der_hex_of(pem):
    """Hex of the DER inside the first PEM block of `pem` (str or bytes)."""
    if isinstance(pem, bytes):
        pem = pem.decode()
    body = pem.split("-----")[2]  # "", "BEGIN ...", body, "END ...", ...
    return base64.b64decode("".join(body.split())).hex()


def first_cert(chain_pem):
    end = "-----END CERTIFICATE-----"
    return chain_pem.split(end)[0] + end + "\n"


def make_admin(d, role, org_id=None, dept_id=None, cert_types=("ssl",), privileges=()):
    """Creates an administrator and a token for it; returns (admin_id, token)."""
    body = {"login": "%s-%s" % (role, secrets.token_hex(4)), "email": "a@example.org",
            "role": role, "cert_types": list(cert_types), "privileges": list(privileges)}
    if org_id is not None:
        body["org_id"] = org_id
    if dept_id is not None:
        body["dept_id"] = dept_id
    admin = et.expect(d.api("POST", "/api/v1/admins", body), 201)
    tok = et.expect(d.api("POST", "/api/v1/admins/%d/tokens" % admin["id"],
                          {"description": "test"}), 201)
    return int(admin["id"]), tok["token"]


class EnrollmentTest(et.EnrolldTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.d
        cls.t = et.setup_tenant(d, domain="enroll.test")
        # the organization's full address, for the include_address profile
        r = d.api("PATCH", "/api/v1/organizations/%d" % cls.t["org_id"],
                  {"state": "Berlin", "street1": "Unter den Linden 1", "postal_code": "10117"})
        assert r.status in (200, 204), r
        cls.dept_name = d.sql("SELECT name FROM departments WHERE id = %d"
                              % cls.t["dept_id"])[0][0]
        # a profile that needs approval, and one that writes L/ST/C
        cls.approval_profile = et.expect(d.api("POST", "/api/v1/profiles", {
            "name": "ssl-approval-" + secrets.token_hex(3), "cert_type": "ssl",
            "terms_days": [90, 365], "key_types": ["p256", "rsa2048"],
            "key_usage": ["digitalSignature"], "ext_key_usage": ["serverAuth"],
            "requires_approval": True}), 201)["id"]
        cls.address_profile = et.expect(d.api("POST", "/api/v1/profiles", {
            "name": "ssl-address-" + secrets.token_hex(3), "cert_type": "ssl",
            "terms_days": [90], "key_types": ["p256"], "key_usage": ["digitalSignature"],
            "ext_key_usage": ["serverAuth"], "include_address": True}), 201)["id"]
        cls.rao_id, cls.rao = make_admin(d, "rao", org_id=cls.t["org_id"])
        cls.drao_id, cls.drao = make_admin(d, "drao", org_id=cls.t["org_id"],
                                           dept_id=cls.t["dept_id"])
        # a second tenant whose RAO must not see the first one's certificates
        cls.other = et.setup_tenant(d, domain="other-enroll.test")
        cls.other_rao_id, cls.other_rao = make_admin(d, "rao", org_id=cls.other["org_id"])
        with open(d.root_pem) as f:
            cls.root_text = f.read()

    # -- helpers

    def enroll(self, csr_pem, profile_id=None, dept=False, token=et._DEFAULT, term=90,
               extra=None):
        tenant = dict(self.t)
        if profile_id is not None:
            tenant["profile_id"] = profile_id
        return et.enroll(self.d, tenant, csr_pem, term_days=term, dept=dept, token=token,
                         extra=extra)

    def assert_chain_verifies(self, cert_pem, chain_pem):
        ok, out = et.openssl_verify(cert_pem, self.d.root_pem, untrusted_pem=chain_pem,
                                    tmpdir=self.tmp)
        self.assertTrue(ok, out)

    def issued(self, key="ec", dept=False, token=et._DEFAULT, sans=None):
        _, csr = self.csr(key=key, cn="host.enroll.test", sans=sans or ["host.enroll.test"])
        r = self.enroll(csr, dept=dept, token=token)
        return et.expect(r, 201)

    # -- enrollment

    def test_ec_and_rsa_enrollment(self):
        d = self.d
        for key, dept in (("ec", True), ("rsa2048", False)):
            with self.subTest(key=key):
                _, csr = self.csr(key=key, cn="www.enroll.test",
                                  sans=["www.enroll.test", "api.enroll.test"],
                                  o="Evil Corp", ou="Not Your Department")
                before = d.count("certificates")
                r = self.enroll(csr, dept=dept)
                c = et.expect(r, 201)
                self.assertEqual(c["status"], "issued")
                self.assertEqual(c["org_id"], self.t["org_id"])
                self.assertEqual(c["dept_id"], self.t["dept_id"] if dept else None)
                self.assertEqual(c["profile_id"], self.t["profile_id"])
                self.assertEqual(c["protocol"], "admin")
                self.assertEqual(c["key_type"], "p256" if key == "ec" else "rsa2048")
                self.assertEqual(sorted(c["names"]),
                                 ["dns:api.enroll.test", "dns:www.enroll.test"])
                self.assertRegex(c["serial"], r"^[0-9A-F]+$")
                self.assertRegex(c["not_after"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
                self.assertEqual(r.headers.get("Location"),
                                 "/api/v1/certificates/%d" % c["id"])
                self.assertEqual(d.count("certificates"), before + 1)

                pem = c["pem"]
                self.assertTrue(c["chain_pem"].startswith(pem.strip()))
                self.assertEqual(c["chain_pem"].count("BEGIN CERTIFICATE"), 3)
                self.assert_chain_verifies(pem, c["chain_pem"])

                subj = subject_of(pem)
                self.assertIn("O=%s" % self.t["org_name"], subj)
                self.assertNotIn("Evil Corp", subj)
                self.assertNotIn("Not Your Department", subj)
                if dept:
                    self.assertIn("OU=%s" % self.dept_name, subj)
                else:
                    self.assertNotIn("OU=", subj)
                self.assertIn("CN=www.enroll.test", subj)
                # the profile does not include the address
                self.assertNotIn("L=", subj)
                self.assertEqual(sans_of(pem), ["DNS:api.enroll.test", "DNS:www.enroll.test"])
                text = x509_text(pem)
                self.assertIn("TLS Web Server Authentication", text)
                self.assertIn("%s/crl/default.crl" % d.url, text)

                row = d.sql("SELECT status, serial, issuer, encode(cert_der, 'base64') IS NOT NULL,"
                            " requester, term_days, encode(csr_der, 'hex'),"
                            " encode(cert_der, 'hex') FROM certificates WHERE id = %d"
                            % c["id"])[0]
                self.assertEqual(row[0], "issued")
                self.assertEqual(row[1], c["serial"])
                self.assertEqual(row[2], "default")
                self.assertEqual(row[4], "admin:1")
                self.assertEqual(row[5], "90")
                # the DERs are stored byte for byte (they travel as binary
                # parameters): the request's CSR, the certificate answered
                self.assertEqual(row[6], der_hex_of(csr))
                self.assertEqual(row[7], der_hex_of(pem))
                audit = d.sql("SELECT outcome, actor, details->>'serial' FROM audit_log"
                              " WHERE action = 'certificate.issue' AND object_id = %d"
                              % c["id"])
                self.assertEqual(audit, [("ok", "admin:1", c["serial"])])

    def test_term_sets_validity(self):
        _, csr = self.csr(key="ec", cn="term.enroll.test")
        c = et.expect(self.enroll(csr, term=365), 201)
        days = self.d.sql("SELECT round(extract(epoch FROM not_after - not_before) / 86400)"
                          " FROM certificates WHERE id = %d" % c["id"])[0][0]
        self.assertIn(days, ("365", "366"))

    def test_cn_from_first_dns_name(self):
        _, csr = self.csr(key="ec", sans=["first.enroll.test", "second.enroll.test"])
        c = et.expect(self.enroll(csr), 201)
        self.assertIn("CN=first.enroll.test", subject_of(c["pem"]))
        self.assertEqual(c["common_name"], "first.enroll.test")

    def test_include_address(self):
        _, csr = self.csr(key="ec", cn="addr.enroll.test", o="Someone Else")
        c = et.expect(self.enroll(csr, profile_id=self.address_profile), 201)
        subj = subject_of(c["pem"])
        self.assertIn("O=%s" % self.t["org_name"], subj)
        self.assertIn("L=Berlin", subj)
        self.assertIn("ST=Berlin", subj)
        self.assertIn("C=DE", subj)

    def test_base64_der_csr(self):
        _, csr = self.csr(key="ec", cn="b64.enroll.test")
        b64 = "".join(l for l in csr.splitlines() if not l.startswith("-----"))
        c = et.expect(self.enroll(b64), 201)
        self.assert_chain_verifies(c["pem"], c["chain_pem"])

    def test_idempotency_key(self):
        d = self.d
        _, csr = self.csr(key="ec", cn="idem.enroll.test")
        key = "retry-" + secrets.token_hex(8)
        body = {"org_id": self.t["org_id"], "profile_id": self.t["profile_id"],
                "term_days": 90, "csr": csr}
        before = d.count("certificates")
        results = []

        def post():
            results.append(d.api("POST", "/api/v1/certificates", body,
                                 headers={"Idempotency-Key": key}))
        # concurrent retries of one request: one row, one certificate for all
        threads = [threading.Thread(target=post) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        post()
        self.assertEqual([r.status for r in results], [201] * 9, results)
        self.assertEqual(len({r.json["id"] for r in results}), 1)
        self.assertEqual(len({r.json["serial"] for r in results}), 1)
        self.assertEqual(len({r.json["pem"] for r in results}), 1)
        self.assertEqual(d.count("certificates"), before + 1)
        self.assertEqual(d.count("audit_log", "action = 'certificate.issue' AND object_id = %d"
                                 % results[0].json["id"]), 1)
        self.assert_chain_verifies(results[0].json["pem"], results[0].json["chain_pem"])
        # the same key from another administrator is another request
        r = d.api("POST", "/api/v1/certificates", body, token=self.rao,
                  headers={"Idempotency-Key": key})
        self.assertEqual(r.status, 201, r)
        self.assertNotEqual(r.json["id"], results[0].json["id"])
        # the key reused for a different request: refused, nothing written
        before = d.count("certificates")
        other = dict(body, profile_id=self.approval_profile)
        r = d.api("POST", "/api/v1/certificates", other, headers={"Idempotency-Key": key})
        self.assertEqual(r.status, 409, r)
        self.assertEqual(d.count("certificates"), before)
        r = d.api("POST", "/api/v1/certificates", body, headers={"Idempotency-Key": "a b"})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(d.count("certificates"), before)

    # -- reads

    def test_get_and_pem(self):
        d = self.d
        c = self.issued()
        r = d.api("GET", "/api/v1/certificates/%d" % c["id"])
        g = et.expect(r, 200)
        for k in ("id", "status", "org_id", "dept_id", "profile_id", "protocol", "requester",
                  "approver_admin_id", "common_name", "names", "key_type", "term_days",
                  "serial", "not_before", "not_after", "revoked_at", "revocation_reason",
                  "created_at"):
            self.assertIn(k, g)
        self.assertEqual(g["serial"], c["serial"])
        self.assertNotIn("pem", g)
        r = d.api("GET", "/api/v1/certificates/%d/pem" % c["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("Content-Type"), "application/pem-certificate-chain")
        self.assertEqual(r.text.count("BEGIN CERTIFICATE"), 3)
        self.assertEqual(first_cert(r.text).strip(), c["pem"].strip())
        self.assert_chain_verifies(first_cert(r.text), r.text)
        # absent
        r = d.api("GET", "/api/v1/certificates/999999999")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json["reason"], "not_found")
        r = d.api("GET", "/api/v1/certificates/abc")
        self.assertEqual(r.status, 404, r)

    def test_list_filters_and_pages(self):
        d = self.d
        ids = [self.issued()["id"] for _ in range(3)]
        r = d.api("GET", "/api/v1/certificates?status=issued&org_id=%d&limit=500"
                  % self.t["org_id"])
        page = et.expect(r, 200)
        got = [c["id"] for c in page["items"]]
        for i in ids:
            self.assertIn(i, got)
        self.assertTrue(all(c["status"] == "issued" and c["org_id"] == self.t["org_id"]
                            for c in page["items"]))
        self.assertEqual(got, sorted(got))
        self.assertIsNone(page["next_after"])
        # keyset pages of 1
        r = d.api("GET", "/api/v1/certificates?org_id=%d&limit=1&after=%d"
                  % (self.t["org_id"], ids[0] - 1))
        page = et.expect(r, 200)
        self.assertEqual([c["id"] for c in page["items"]], [ids[0]])
        self.assertEqual(page["next_after"], ids[0])
        r = d.api("GET", "/api/v1/certificates?org_id=%d&limit=1&after=%d"
                  % (self.t["org_id"], page["next_after"]))
        self.assertEqual([c["id"] for c in et.expect(r, 200)["items"]], [ids[1]])
        # expiring_before: nothing of ours expires before 2000
        r = d.api("GET", "/api/v1/certificates?expiring_before=2000-01-01T00:00:00Z")
        self.assertEqual(et.expect(r, 200)["items"], [])
        r = d.api("GET", "/api/v1/certificates?expiring_before=2999-01-01T00:00:00Z&limit=500"
                  "&org_id=%d" % self.t["org_id"])
        self.assertTrue(set(ids) <= {c["id"] for c in et.expect(r, 200)["items"]})
        # bad filters
        for q in ("status=bogus", "limit=0", "limit=501", "org_id=x", "expiring_before=soon",
                  "expiring_before=2026-02-30T00:00:00Z", "after=-1"):
            r = d.api("GET", "/api/v1/certificates?" + q)
            self.assertEqual(r.status, 400, (q, r))
            self.assertEqual(r.json["reason"], "invalid_field")

    def test_scope(self):
        d = self.d
        org_cert = self.issued()                # organization level
        dept_cert = self.issued(dept=True)      # in the department
        # the other organization's RAO: 404, audited, and absent from lists
        before = d.count("audit_log", "reason = 'out_of_scope'")
        r = d.api("GET", "/api/v1/certificates/%d" % org_cert["id"], token=self.other_rao)
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json["reason"], "not_found")
        self.assertEqual(d.count("audit_log", "reason = 'out_of_scope'"), before + 1)
        for path in ("/pem", "/approve", "/decline", "/revoke"):
            method = "GET" if path == "/pem" else "POST"
            body = {"reason": "x"} if path == "/decline" else None
            r = d.api(method, "/api/v1/certificates/%d%s" % (org_cert["id"], path), body,
                      token=self.other_rao)
            self.assertEqual(r.status, 404, (path, r))
        self.assertEqual(d.sql("SELECT status FROM certificates WHERE id = %d"
                               % org_cert["id"])[0][0], "issued")
        r = d.api("GET", "/api/v1/certificates?limit=500", token=self.other_rao)
        self.assertFalse({org_cert["id"], dept_cert["id"]}
                         & {c["id"] for c in et.expect(r, 200)["items"]})
        # ... nor may it enroll for this organization
        _, csr = self.csr(key="ec", cn="x.enroll.test")
        before_rows = d.count("certificates")
        r = self.enroll(csr, token=self.other_rao)
        self.assertEqual(r.status, 404, r)
        self.assertEqual(d.count("certificates"), before_rows)
        # the RAO sees both; the DRAO only the department's
        r = d.api("GET", "/api/v1/certificates?limit=500", token=self.rao)
        seen = {c["id"] for c in et.expect(r, 200)["items"]}
        self.assertTrue({org_cert["id"], dept_cert["id"]} <= seen)
        r = d.api("GET", "/api/v1/certificates?limit=500", token=self.drao)
        seen = {c["id"] for c in et.expect(r, 200)["items"]}
        self.assertIn(dept_cert["id"], seen)
        self.assertNotIn(org_cert["id"], seen)
        r = d.api("GET", "/api/v1/certificates/%d" % org_cert["id"], token=self.drao)
        self.assertEqual(r.status, 404, r)
        r = d.api("GET", "/api/v1/certificates/%d" % dept_cert["id"], token=self.drao)
        self.assertEqual(r.status, 200, r)
        # a DRAO may not enroll at organization level, may in its department
        r = self.enroll(csr, token=self.drao)
        self.assertEqual(r.status, 404, r)
        r = self.enroll(csr, token=self.drao, dept=True)
        self.assertEqual(r.status, 201, r)

    # -- approval

    def test_approval_flow(self):
        d = self.d
        _, csr = self.csr(key="ec", cn="approve.enroll.test")
        before = d.count("certificates")
        r = self.enroll(csr, profile_id=self.approval_profile, dept=True, token=self.drao)
        held = et.expect(r, 202)
        self.assertEqual(held["status"], "requested")
        self.assertIsNone(held["serial"])
        self.assertEqual(d.sql("SELECT encode(csr_der, 'hex'), cert_der IS NULL FROM certificates"
                               " WHERE id = %d" % held["id"]), [(der_hex_of(csr), "t")])
        self.assertNotIn("pem", held)
        self.assertEqual(d.count("certificates"), before + 1)
        self.assertEqual(d.sql("SELECT outcome, reason FROM audit_log WHERE object_id = %d"
                               " AND action = 'certificate.request'" % held["id"]),
                         [("held", "approval_required")])
        r = d.api("GET", "/api/v1/certificates/%d/pem" % held["id"], token=self.drao)
        self.assertEqual(r.status, 409, r)
        # four eyes: the DRAO cannot approve its own request
        r = d.api("POST", "/api/v1/certificates/%d/approve" % held["id"], token=self.drao)
        self.assertEqual(r.status, 403, r)
        self.assertEqual(r.json["reason"], "role_not_permitted")
        self.assertEqual(d.sql("SELECT status FROM certificates WHERE id = %d"
                               % held["id"])[0][0], "requested")
        # the RAO can
        r = d.api("POST", "/api/v1/certificates/%d/approve" % held["id"], token=self.rao)
        c = et.expect(r, 200)
        self.assertEqual(c["status"], "issued")
        self.assertEqual(c["approver_admin_id"], self.rao_id)
        self.assertRegex(c["serial"], r"^[0-9A-F]+$")
        self.assert_chain_verifies(c["pem"], c["chain_pem"])
        self.assertIn("OU=%s" % self.dept_name, subject_of(c["pem"]))
        self.assertEqual(d.count("certificates"), before + 1)  # the same row
        # approving again: conflict, nothing changes
        r = d.api("POST", "/api/v1/certificates/%d/approve" % held["id"], token=self.rao)
        self.assertEqual(r.status, 409, r)
        self.assertEqual(d.sql("SELECT serial FROM certificates WHERE id = %d"
                               % held["id"])[0][0], c["serial"])
        self.assertEqual(d.count("audit_log", "action = 'certificate.issue' AND object_id = %d"
                                 % held["id"]), 1)

    def test_decline_flow(self):
        d = self.d
        _, csr = self.csr(key="ec", cn="decline.enroll.test")
        held = et.expect(self.enroll(csr, profile_id=self.approval_profile, dept=True,
                                     token=self.drao), 202)
        r = d.api("POST", "/api/v1/certificates/%d/decline" % held["id"], {}, token=self.rao)
        self.assertEqual(r.status, 400, r)  # the reason is required
        r = d.api("POST", "/api/v1/certificates/%d/decline" % held["id"],
                  {"reason": "not this one"}, token=self.rao)
        c = et.expect(r, 200)
        self.assertEqual(c["status"], "declined")
        self.assertEqual(c["decline_reason"], "not this one")
        self.assertIsNone(c["serial"])
        r = d.api("POST", "/api/v1/certificates/%d/approve" % held["id"], token=self.rao)
        self.assertEqual(r.status, 409, r)
        r = d.api("POST", "/api/v1/certificates/%d/decline" % held["id"],
                  {"reason": "again"}, token=self.rao)
        self.assertEqual(r.status, 409, r)
        self.assertEqual(d.sql("SELECT status, decline_reason, cert_der IS NULL FROM"
                               " certificates WHERE id = %d" % held["id"]),
                         [("declined", "not this one", "t")])
        self.assertEqual(d.count("audit_log", "action = 'certificate.decline' AND object_id = %d"
                                 % held["id"]), 1)

    def test_mrao_skips_approval(self):
        _, csr = self.csr(key="ec", cn="master.enroll.test")
        c = et.expect(self.enroll(csr, profile_id=self.approval_profile), 201)
        self.assertEqual(c["status"], "issued")

    def test_approval_rechecks_policy(self):
        d = self.d
        dom = "recheck-%s.test" % secrets.token_hex(3)
        dom_id = et.expect(d.api("POST", "/api/v1/domains", {"name": dom}), 201)["id"]
        et.expect(d.api("POST", "/api/v1/domains/%d/delegations" % dom_id,
                        {"org_id": self.t["org_id"], "cert_types": ["ssl"]}), 201)
        _, csr = self.csr(key="ec", cn="www." + dom)
        held = et.expect(self.enroll(csr, profile_id=self.approval_profile, dept=True,
                                     token=self.drao), 202)
        d.sql("UPDATE domains SET active = false WHERE id = %d" % dom_id)
        r = d.api("POST", "/api/v1/certificates/%d/approve" % held["id"], token=self.rao)
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json["reason"], "domain_inactive")
        self.assertEqual(d.sql("SELECT status, decline_reason, serial FROM certificates"
                               " WHERE id = %d" % held["id"]),
                         [("declined", "domain_inactive", None)])

    # -- revocation and the CRL

    def fetch_crl(self, fmt="crl"):
        ctx = self.d.tls_context()
        return et.https_request(self.d.host, self.d.port, ctx, "GET", "/crl/default." + fmt)

    def crl_text(self, der):
        path = os.path.join(self.tmp, "crl-%s.der" % secrets.token_hex(4))
        with open(path, "wb") as f:
            f.write(der)
        issuing = os.path.join(self.tmp, "issuing-%s.pem" % secrets.token_hex(4))
        with open(issuing, "w") as f:
            f.write(et.issuing_pem(self.d))
        p = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", path, "-noout", "-text"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        v = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", path, "-noout",
                            "-CAfile", issuing], capture_output=True, text=True)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("verify OK", v.stdout + v.stderr)
        return p.stdout

    @staticmethod
    def crl_number(text):
        m = re.search(r"X509v3 CRL Number:\s*\n\s*(\d+)", text)
        return int(m.group(1)) if m else None

    def test_revoke_and_crl(self):
        d = self.d
        c = self.issued()
        r = self.fetch_crl()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("Content-Type"), "application/pkix-crl")
        n_before = self.crl_number(self.crl_text(r.body))

        r = d.api("POST", "/api/v1/certificates/%d/revoke" % c["id"],
                  {"reason": "keyCompromise"}, token=self.rao)
        rev = et.expect(r, 200)
        self.assertEqual(rev["status"], "revoked")
        self.assertEqual(rev["revocation_reason"], "keyCompromise")
        self.assertIsNotNone(rev["revoked_at"])
        self.assertEqual(d.sql("SELECT status, revocation_reason FROM certificates WHERE id = %d"
                               % c["id"]), [("revoked", "1")])
        self.assertEqual(d.count("audit_log", "action = 'certificate.revoke' AND object_id = %d"
                                 % c["id"]), 1)

        r = self.fetch_crl()
        self.assertEqual(r.status, 200, r)
        text = self.crl_text(r.body)
        serials = re.findall(r"Serial Number:\s*([0-9A-F]+)", text)
        self.assertIn(c["serial"], [s.upper().lstrip("0") for s in serials])
        self.assertIn("Key Compromise", text)
        n_after = self.crl_number(text)
        self.assertIsNotNone(n_after)
        if n_before is not None:
            self.assertGreater(n_after, n_before)
        # PEM form of the same CRL
        r = self.fetch_crl("pem")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.text.startswith("-----BEGIN X509 CRL-----"))
        # twice: 409 already_revoked, nothing more written
        r = d.api("POST", "/api/v1/certificates/%d/revoke" % c["id"], {"reason": 4})
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json["reason"], "already_revoked")
        self.assertEqual(d.sql("SELECT revocation_reason FROM certificates WHERE id = %d"
                               % c["id"])[0][0], "1")
        # a second revocation (default reason) gets a higher CRL number
        c2 = self.issued()
        et.expect(d.api("POST", "/api/v1/certificates/%d/revoke" % c2["id"]), 200)
        self.assertEqual(d.sql("SELECT revocation_reason FROM certificates WHERE id = %d"
                               % c2["id"])[0][0], "0")
        text2 = self.crl_text(self.fetch_crl().body)
        self.assertGreater(self.crl_number(text2), n_after)
        self.assertEqual(len(re.findall(r"Serial Number:", text2)), len(serials) + 1)

    def test_revoke_bad_input(self):
        d = self.d
        c = self.issued()
        for reason in ("nonsense", 7, 11, -1, True):
            r = d.api("POST", "/api/v1/certificates/%d/revoke" % c["id"], {"reason": reason})
            self.assertEqual(r.status, 400, (reason, r))
            self.assertEqual(r.json["reason"], "invalid_field")
        r = d.api("POST", "/api/v1/certificates/%d/revoke" % c["id"], {"why": "x"})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["reason"], "unknown_field")
        self.assertEqual(d.sql("SELECT status FROM certificates WHERE id = %d" % c["id"])[0][0],
                         "issued")
        # not issued (held) -> 409 conflict
        _, csr = self.csr(key="ec", cn="held.enroll.test")
        held = et.expect(self.enroll(csr, profile_id=self.approval_profile, dept=True,
                                     token=self.drao), 202)
        r = d.api("POST", "/api/v1/certificates/%d/revoke" % held["id"], token=self.rao)
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json["reason"], "conflict")
        r = d.api("POST", "/api/v1/certificates/999999999/revoke")
        self.assertEqual(r.status, 404, r)

    def test_crl_cached_then_regenerated(self):
        d = self.d
        first = self.crl_number(self.crl_text(self.fetch_crl().body))
        # fresh: the stored CRL is served again, same number, same bytes
        a, b = self.fetch_crl(), self.fetch_crl()
        self.assertEqual(a.body, b.body)
        self.assertEqual(self.crl_number(self.crl_text(a.body)), first)
        # past half its validity: regenerated once with the next number, even
        # when many relying parties ask at the same moment
        d.sql("UPDATE crl_state SET this_update = now() - interval '30 days'")
        number_before = int(d.sql("SELECT crl_number FROM crl_state")[0][0])
        got = []

        def fetch():
            got.append(self.fetch_crl())
        threads = [threading.Thread(target=fetch) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([r.status for r in got], [200] * 8)
        numbers = {self.crl_number(self.crl_text(r.body)) for r in got}
        self.assertEqual(numbers, {number_before + 1})
        self.assertEqual(int(d.sql("SELECT crl_number FROM crl_state")[0][0]), number_before + 1)
        self.assertEqual(d.sql("SELECT this_update > now() - interval '1 minute'"
                               " FROM crl_state"), [("t",)])

    def test_crl_door(self):
        ctx = self.d.tls_context()
        for path in ("/crl/unknown.crl", "/crl/default.txt", "/crl/default", "/crl/"):
            r = et.https_request(self.d.host, self.d.port, ctx, "GET", path)
            self.assertEqual(r.status, 404, (path, r))
        r = et.https_request(self.d.host, self.d.port, ctx, "POST", "/crl/default.crl", b"")
        self.assertEqual(r.status, 405, r)


if __name__ == "__main__":
    et.main()
