"""test_bad_input: bad enrollment requests get the right 4xx and write nothing.

POST /api/v1/certificates against the real binary and PostgreSQL:
  * malformed JSON, wrong types, unknown and missing fields, an oversized
    body (413), a CSR that is not base64 / not a PKCS#10 -> 400 with the
    stable reason code;
  * a CSR with a broken signature, an RSA-1024 key, a name outside the
    delegation, a name in an inactive domain, a disallowed term, a disallowed
    key type, a wildcard the profile does not allow -> 422 with the policy
    reason code.
Every refusal is checked to have written no certificate row (count before
and after); every policy denial is checked to be in audit_log (outcome
'denied', the reason, the profile and the names in the details).
"""

import base64
import json
import secrets
import socket
import ssl

import enrolld_test as et


class BadCertificateInputTest(et.EnrolldTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.d
        cls.t = et.setup_tenant(d, domain="bad-input.test")
        # a delegated but inactive domain
        cls.inactive = "inactive-%s.test" % secrets.token_hex(3)
        dom_id = et.expect(d.api("POST", "/api/v1/domains", {"name": cls.inactive}), 201)["id"]
        et.expect(d.api("POST", "/api/v1/domains/%d/delegations" % dom_id,
                        {"org_id": cls.t["org_id"], "cert_types": ["ssl"]}), 201)
        d.sql("UPDATE domains SET active = false WHERE id = %d" % dom_id)
        _, cls.good_csr = et.make_csr(cls.tmp, key="ec", cn="www.bad-input.test")

    # -- helpers

    def body(self, **over):
        b = {"org_id": self.t["org_id"], "profile_id": self.t["profile_id"],
             "term_days": 90, "csr": self.good_csr}
        b.update(over)
        return b

    def refused(self, status, reason, body=None, raw=None, headers=None):
        """Sends the request, asserts status + reason and that no
        certificate row was written. Returns the response."""
        d = self.d
        before = d.count("certificates")
        if raw is not None:
            hdrs = {"Content-Type": "application/json"}
            hdrs.update(headers or {})
            r = d.api("POST", "/api/v1/certificates", raw=raw, headers=hdrs)
        else:
            r = d.api("POST", "/api/v1/certificates", body)
        self.assertEqual(r.status, status, r)
        if reason is not None:
            self.assertIsNotNone(r.json, r)
            self.assertEqual(r.json.get("reason"), reason, r)
            self.assertTrue(r.headers.get("Content-Type", "").startswith(
                "application/problem+json"), r.headers)
        self.assertEqual(d.count("certificates"), before, "a certificate row was written")
        return r

    def denied(self, reason, csr=None, names=None, **over):
        """A policy denial: 422 + reason, no row, and an audit entry."""
        d = self.d
        audit_before = d.count("audit_log", "action = 'certificate.request' AND outcome ="
                               " 'denied' AND reason = '%s'" % reason)
        body = self.body(**over)
        if csr is not None:
            body["csr"] = csr
        r = self.refused(422, reason, body)
        self.assertTrue(r.json.get("detail"), r)
        rows = d.sql("SELECT actor, org_id, details::text FROM audit_log WHERE action ="
                     " 'certificate.request' AND outcome = 'denied' AND reason = '%s'"
                     " ORDER BY id" % reason)
        self.assertEqual(len(rows), audit_before + 1, rows)
        actor, org_id, details = rows[-1]
        self.assertEqual(actor, "admin:1")
        self.assertEqual(int(org_id), self.t["org_id"])
        details = json.loads(details)
        self.assertEqual(details.get("profile_id"), self.t["profile_id"])
        self.assertIn("profile", details)
        if names is not None:
            self.assertEqual(sorted(details.get("names", [])), sorted(names))
        return r

    # -- the good request works (so the refusals below are about the input)

    def test_good_request_issues(self):
        r = self.d.api("POST", "/api/v1/certificates", self.body())
        self.assertEqual(r.status, 201, r)

    # -- 400s

    def test_malformed_json(self):
        for raw in (b"{", b"not json", b'{"org_id": 1,}', b"\xff\xfe", b""):
            with self.subTest(raw=raw):
                self.refused(400, "malformed_json", raw=raw)

    def test_not_an_object(self):
        for raw in (b"[]", b"42", b'"csr"', b"null"):
            with self.subTest(raw=raw):
                r = self.refused(400, None, raw=raw)
                self.assertIn(r.json.get("reason"), ("malformed_json", "invalid_field"), r)

    def test_wrong_types(self):
        cases = [
            ("org_id", "1"), ("org_id", 1.5), ("org_id", -3), ("org_id", True),
            ("org_id", None), ("dept_id", "x"), ("dept_id", 0), ("profile_id", [1]),
            ("profile_id", None), ("term_days", "90"), ("term_days", 0), ("term_days", -90),
            ("term_days", 10 ** 12), ("csr", 123), ("csr", ""), ("csr", {"pem": "x"}),
            ("comment", 5), ("comment", "x" * 5000),
        ]
        for field, value in cases:
            with self.subTest(field=field, value=value):
                r = self.refused(400, "invalid_field", self.body(**{field: value}))
                self.assertIn(field, r.json.get("detail", ""))

    def test_unknown_field(self):
        r = self.refused(400, "unknown_field", self.body(serial="01"))
        self.assertIn("serial", r.json.get("detail", ""))
        self.refused(400, "unknown_field", self.body(status="issued"))

    def test_missing_field(self):
        for field in ("org_id", "profile_id", "term_days", "csr"):
            with self.subTest(field=field):
                b = self.body()
                del b[field]
                r = self.refused(400, "missing_field", b)
                self.assertIn(field, r.json.get("detail", ""))

    def test_oversized_body(self):
        # More than the default max_body of 1 MiB. The daemon answers 413 as
        # soon as it has read the headers and then closes the connection, so
        # the client announces the size, sends the start of the body only,
        # and reads the answer (a client writing the whole body would see
        # the closed connection instead of the status).
        size = 1024 * 1024 + 4096
        head = ("POST /api/v1/certificates HTTP/1.1\r\nHost: %s:%d\r\n"
                "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (self.d.host, self.d.port, self.d.token, size))
        before = self.d.count("certificates")
        with socket.create_connection((self.d.host, self.d.port), timeout=30) as raw:
            with self.d.tls_context().wrap_socket(raw, server_hostname=self.d.host) as tls:
                tls.sendall(head.encode() + b'{"csr": "' + b"A" * 1000)
                data = b""
                try:
                    while b"\r\n" not in data:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except (ConnectionError, ssl.SSLError):
                    pass
        status_line = data.split(b"\r\n", 1)[0].decode("latin-1")
        self.assertRegex(status_line, r"^HTTP/1\.[01] 413 ", data[:300])
        self.assertEqual(self.d.count("certificates"), before)
        # and the daemon is fine afterwards
        self.assertEqual(self.d.api("GET", "/api/v1/health", token=None).status, 200)

    def test_bad_csr(self):
        der = base64.b64decode("".join(l for l in self.good_csr.splitlines()
                                       if not l.startswith("-----")))
        for csr in ("this is not base64 !!!", base64.b64encode(b"hello world").decode(),
                    "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                    base64.b64encode(der[:len(der) // 2]).decode()):
            with self.subTest(csr=csr[:40]):
                self.refused(400, "bad_csr", self.body(csr=csr))

    # -- 422 policy denials

    def test_broken_signature(self):
        der = bytearray(base64.b64decode("".join(
            l for l in self.good_csr.splitlines() if not l.startswith("-----"))))
        der[-1] ^= 0x01  # last byte of the ECDSA signature's s
        self.denied("csr_signature_invalid", csr=base64.b64encode(bytes(der)).decode())

    def test_rsa_1024(self):
        _, csr = et.make_csr(self.tmp, key="rsa1024", cn="www.bad-input.test")
        self.denied("weak_key", csr=csr)

    def test_name_outside_delegation(self):
        _, csr = et.make_csr(self.tmp, key="ec", cn="www.bad-input.test",
                             sans=["www.bad-input.test", "www.not-delegated.example"])
        self.denied("name_not_delegated", csr=csr,
                    names=["dns:www.bad-input.test", "dns:www.not-delegated.example"])
        # label-aligned: a look-alike suffix is outside too
        _, csr = et.make_csr(self.tmp, key="ec", cn="evilbad-input.test")
        self.denied("name_not_delegated", csr=csr)

    def test_inactive_domain(self):
        _, csr = et.make_csr(self.tmp, key="ec", cn="www." + self.inactive)
        self.denied("domain_inactive", csr=csr, names=["dns:www." + self.inactive])

    def test_disallowed_term(self):
        self.denied("term_not_allowed", term_days=30)

    def test_disallowed_key_type(self):
        _, csr = et.make_csr(self.tmp, key="p384", cn="www.bad-input.test")
        self.denied("key_type_not_allowed", csr=csr)

    def test_wildcard_not_allowed(self):
        _, csr = et.make_csr(self.tmp, key="ec", cn="*.bad-input.test")
        self.denied("wildcard_not_allowed", csr=csr)

    def test_unknown_organization_and_profile(self):
        self.refused(404, "not_found", self.body(org_id=999999))
        self.refused(404, "not_found", self.body(profile_id=999999))
        other = et.setup_tenant(self.d, domain="bad-input-other.test")
        self.refused(404, "not_found", self.body(dept_id=other["dept_id"]))


if __name__ == "__main__":
    et.main()
