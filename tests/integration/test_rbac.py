"""test_rbac: who may do what through the admin API.

One daemon, two organizations (A with departments A1 and A2, B with B1), and
six callers: the master administrator, a RAO of A, a RAO of B, a DRAO of A1,
no token, and a bad token. A table of routes (method, path template, body,
a factory that makes a fresh target object when the call changes it, and
the expected status per caller) is run cell by cell:
  * no token / bad token: 401 (token_missing / token_invalid);
  * in scope and allowed: 2xx;
  * in scope but not for this role: 403 role_not_permitted;
  * out of scope: 404 not_found, exactly like an absent object, with an
    audit entry outcome 'denied', reason 'out_of_scope';
  * every refusal leaves the target as it was (a witness query compared
    before and after).
The certificate routes (enroll, list, get, pem, approve, decline, revoke)
and the ACME administration routes (EAB keys, accounts) are in the table too. Further tests pin the list filtering per role, the
rules on creating administrators (no escalation), the RAO domain-request
flow and delegation approval.
"""

import secrets

import enrolld_test as et

API = "/api/v1"
CALLERS = ("mrao", "rao_a", "rao_b", "drao_a1", "none", "bad")
BAD_TOKEN = "enr_" + "Q" * 43


def uniq(prefix="x"):
    return "%s-%s" % (prefix, secrets.token_hex(4))


class RbacTest(et.EnrolldTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.d
        cls.tok = {"mrao": d.token, "none": None, "bad": BAD_TOKEN}
        cls.ids = {"mrao": 1}
        c = cls.ctx = {}

        def mk(path, body, status=201, token=None):
            return et.expect(d.api("POST", API + path, body, token=token or d.token), status)

        c["A"] = mk("/organizations", {"name": uniq("Org A")})["id"]
        c["B"] = mk("/organizations", {"name": uniq("Org B")})["id"]
        c["A1"] = mk("/organizations/%d/departments" % c["A"], {"name": "A1"})["id"]
        c["A2"] = mk("/organizations/%d/departments" % c["A"], {"name": "A2"})["id"]
        c["B1"] = mk("/organizations/%d/departments" % c["B"], {"name": "B1"})["id"]

        def admin(name, body):
            a = mk("/admins", dict(body, login=uniq(name)))
            t = mk("/admins/%d/tokens" % a["id"], {"description": name})["token"]
            cls.tok[name] = t
            cls.ids[name] = a["id"]
            return a

        admin("rao_a", {"role": "rao", "org_id": c["A"], "cert_types": ["ssl"]})
        admin("rao_b", {"role": "rao", "org_id": c["B"], "cert_types": ["ssl"]})
        admin("drao_a1", {"role": "drao", "dept_id": c["A1"], "cert_types": ["ssl"]})
        # a second RAO of A makes the certificate requests others approve
        admin("rao_a2", {"role": "rao", "org_id": c["A"], "cert_types": ["ssl"]})
        c.update({k: v for k, v in cls.ids.items()})

        c["domA_name"] = uniq("a") + ".test"
        c["domA"] = mk("/domains", {"name": c["domA_name"]})["id"]
        c["gA"] = mk("/domains/%d/delegations" % c["domA"],
                     {"org_id": c["A"], "cert_types": ["ssl"]})["id"]
        c["domB"] = mk("/domains", {"name": uniq("b") + ".test"})["id"]
        c["gB"] = mk("/domains/%d/delegations" % c["domB"],
                     {"org_id": c["B"], "cert_types": ["ssl"]})["id"]
        prof = {"cert_type": "ssl", "terms_days": [90], "key_types": ["p256"],
                "ext_key_usage": ["serverAuth"]}
        c["pA"] = mk("/profiles", dict(prof, name=uniq("pA"), allowed_org_ids=[c["A"]]))["id"]
        c["pB"] = mk("/profiles", dict(prof, name=uniq("pB"), allowed_org_ids=[c["B"]]))["id"]
        c["pAll"] = mk("/profiles", dict(prof, name=uniq("pAll")))["id"]
        c["pApprove"] = mk("/profiles", dict(prof, name=uniq("pApprove"),
                                             requires_approval=True))["id"]
        c["pClient"] = mk("/profiles", dict(prof, name=uniq("pClient"), cert_type="client",
                                            ext_key_usage=["clientAuth"]))["id"]
        c["eA"] = mk("/endpoints", {"protocol": "acme", "name": uniq("eA"), "org_id": c["A"],
                                    "default_profile_id": c["pAll"]})["id"]
        c["eA1"] = mk("/endpoints", {"protocol": "acme", "name": uniq("eA1"), "org_id": c["A"],
                                     "dept_id": c["A1"], "default_profile_id": c["pAll"]})["id"]
        c["eB"] = mk("/endpoints", {"protocol": "acme", "name": uniq("eB"), "org_id": c["B"],
                                    "default_profile_id": c["pAll"]})["id"]
        _, cls.csr = et.make_csr(cls.tmp, cn="www." + c["domA_name"])
        c["cA"] = cls.enroll(None, dept=False)["id"]
        c["cA1"] = cls.enroll(None)["id"]

    # -- factories (each returns a fresh ctx dict for one cell)

    @classmethod
    def enroll(cls, caller, dept=True, profile="pAll", status=201):
        c = cls.ctx
        body = {"org_id": c["A"], "profile_id": c[profile], "term_days": 90, "csr": cls.csr}
        if dept:
            body["dept_id"] = c["A1"]
        token = cls.tok[caller] if caller else cls.d.token
        return et.expect(cls.d.api("POST", API + "/certificates", body, token=token), status)

    def with_ctx(self, **extra):
        c = dict(self.ctx)
        c.update(extra)
        return c

    def f_requested_cert(self):
        return self.with_ctx(id=self.enroll("rao_a2", profile="pApprove", status=202)["id"])

    def f_issued_cert(self):
        return self.with_ctx(id=self.enroll(None)["id"])

    def f_drao(self):
        a = et.expect(self.d.api("POST", API + "/admins", {
            "login": uniq("fresh"), "role": "drao", "dept_id": self.ctx["A1"],
            "cert_types": ["ssl"]}), 201)
        t = et.expect(self.d.api("POST", API + "/admins/%d/tokens" % a["id"], {}), 201)
        return self.with_ctx(id=a["id"], token_id=t["id"])

    def f_dept_delegation(self):
        dept = et.expect(self.d.api("POST", API + "/organizations/%d/departments" % self.ctx["A"],
                                    {"name": uniq("D")}), 201)["id"]
        g = et.expect(self.d.api("POST", API + "/domains/%d/delegations" % self.ctx["domA"],
                                 {"org_id": self.ctx["A"], "dept_id": dept,
                                  "cert_types": ["ssl"]}), 201)
        return self.with_ctx(id=g["id"], dept=dept)

    def f_a1_delegation(self):
        dom = et.expect(self.d.api("POST", API + "/domains", {"name": uniq("f") + ".test"}), 201)
        g = et.expect(self.d.api("POST", API + "/domains/%d/delegations" % dom["id"],
                                 {"org_id": self.ctx["A"], "dept_id": self.ctx["A1"],
                                  "cert_types": ["ssl"]}), 201)
        return self.with_ctx(id=g["id"])

    def f_org_delegation(self):
        dom = et.expect(self.d.api("POST", API + "/domains", {"name": uniq("o") + ".test"}), 201)
        g = et.expect(self.d.api("POST", API + "/domains/%d/delegations" % dom["id"],
                                 {"org_id": self.ctx["A"], "cert_types": ["ssl"]}), 201)
        return self.with_ctx(id=g["id"])

    def f_requested_delegation(self):
        # a RAO's domain request: the domain with a 'requested' delegation to A
        dom = et.expect(self.d.api("POST", API + "/domains",
                                   {"name": uniq("r") + ".test", "cert_types": ["ssl"]},
                                   token=self.tok["rao_a2"]), 201)
        self.assertEqual(dom["delegation"]["state"], "requested")
        return self.with_ctx(id=dom["delegation"]["id"])

    def f_eab_key(self):
        key = et.expect(self.d.api("POST", API + "/endpoints/%d/eab-keys" % self.ctx["eA1"], {}), 201)
        return self.with_ctx(kid=key["kid"])

    def f_new_dept(self):
        dept = et.expect(self.d.api("POST", API + "/organizations/%d/departments" % self.ctx["A"],
                                    {"name": uniq("D")}), 201)["id"]
        return self.with_ctx(dept=dept)

    # -- the matrix

    def matrix(self):
        A1, A = self.ctx["A1"], self.ctx["A"]

        def admin_body(role):
            def b(ctx, caller):
                body = {"login": uniq("new"), "role": role, "cert_types": ["ssl"]}
                if role == "drao":
                    body["dept_id"] = A1
                else:
                    body["org_id"] = A
                return body
            return b

        def domain_body(ctx, caller):
            body = {"name": uniq("n") + ".test"}
            if caller.startswith("rao"):
                body["cert_types"] = ["ssl"]
            return body

        def endpoint_body(dept):
            def b(ctx, caller):
                body = {"protocol": "est", "name": uniq("e"), "org_id": A,
                        "default_profile_id": ctx["pAll"]}
                # explicit null: an endpoint of the whole organization (a
                # DRAO's would otherwise default to its department)
                body["dept_id"] = A1 if dept else None
                return body
            return b

        cert_body = {"org_id": A, "dept_id": A1, "profile_id": self.ctx["pAll"], "term_days": 90,
                     "csr": self.csr}
        # (method, path, body, factory, (mrao, rao_a, rao_b, drao_a1), witness)
        return [
            ("GET", "/me", None, None, (200, 200, 200, 200), None),
            # organizations and departments
            ("GET", "/organizations", None, None, (200, 200, 200, 200), None),
            ("POST", "/organizations", lambda c, w: {"name": uniq("Org")}, None,
             (201, 403, 403, 403), "SELECT count(*) FROM organizations"),
            ("GET", "/organizations/{A}", None, None, (200, 200, 404, 200), None),
            ("PATCH", "/organizations/{A}", lambda c, w: {"city": uniq("City")}, None,
             (200, 200, 404, 403), "SELECT city FROM organizations WHERE id = {A}"),
            ("PATCH", "/organizations/{A}", {"validation_status": "pending"}, None,
             (200, 403, 404, 403), "SELECT validation_status FROM organizations WHERE id = {A}"),
            ("GET", "/organizations/{A}/departments", None, None, (200, 200, 404, 200), None),
            ("POST", "/organizations/{A}/departments", lambda c, w: {"name": uniq("D")}, None,
             (201, 201, 404, 403), "SELECT count(*) FROM departments"),
            ("GET", "/departments/{A1}", None, None, (200, 200, 404, 200), None),
            ("GET", "/departments/{A2}", None, None, (200, 200, 404, 404), None),
            ("PATCH", "/departments/{A1}", {"active": True}, None, (200, 200, 404, 403),
             "SELECT count(*) FROM audit_log WHERE action = 'department.update'"),
            # administrators and tokens
            ("GET", "/admins", None, None, (200, 200, 200, 200), None),
            ("POST", "/admins", admin_body("drao"), None, (201, 201, 404, 403),
             "SELECT count(*) FROM admins"),
            ("POST", "/admins", admin_body("rao"), None, (201, 403, 404, 403),
             "SELECT count(*) FROM admins"),
            ("GET", "/admins/{drao_a1}", None, None, (200, 200, 404, 200), None),
            ("GET", "/admins/1", None, None, (200, 404, 404, 404), None),
            ("PATCH", "/admins/{id}", lambda c, w: {"email": uniq("m") + "@example.org"},
             self.f_drao, (200, 200, 404, 403), "SELECT email FROM admins WHERE id = {id}"),
            ("POST", "/admins/{id}/tokens", {}, self.f_drao, (201, 201, 404, 403),
             "SELECT count(*) FROM admin_tokens WHERE admin_id = {id}"),
            ("GET", "/admins/{id}/tokens", None, self.f_drao, (200, 200, 404, 403), None),
            ("DELETE", "/admins/{id}/tokens/{token_id}", None, self.f_drao, (204, 204, 404, 403),
             "SELECT revoked_at FROM admin_tokens WHERE id = {token_id}"),
            ("POST", "/admins/{self}/tokens", {}, None, (201, 201, 201, 201),
             "SELECT count(*) FROM admin_tokens"),
            # domains and delegations
            ("GET", "/domains", None, None, (200, 200, 200, 200), None),
            ("POST", "/domains", domain_body, None, (201, 201, 201, 403),
             "SELECT count(*) FROM domains"),
            ("GET", "/domains/{domA}", None, None, (200, 200, 404, 200), None),
            ("PATCH", "/domains/{domA}", lambda c, w: {"description": uniq("d")}, None,
             (200, 403, 404, 403), "SELECT description FROM domains WHERE id = {domA}"),
            ("PUT", "/domains/{domA}/dcv", {"status": "submitted", "method": "dns"}, None,
             (200, 403, 404, 403), "SELECT count(*) FROM audit_log WHERE action = 'domain.dcv'"),
            ("GET", "/domains/{domA}/delegations", None, None, (200, 200, 404, 200), None),
            ("POST", "/domains/{domA}/delegations",
             lambda c, w: {"org_id": A, "dept_id": c["dept"], "cert_types": ["ssl"]},
             self.f_new_dept, (201, 201, 404, 403),
             "SELECT count(*) FROM delegations WHERE domain_id = {domA}"),
            ("GET", "/delegations/{gA}", None, None, (200, 200, 404, 200), None),
            ("GET", "/delegations/{gB}", None, None, (200, 404, 200, 404), None),
            ("POST", "/delegations/{id}/approve", None, self.f_requested_delegation,
             (200, 403, 404, 403), "SELECT state FROM delegations WHERE id = {id}"),
            ("DELETE", "/delegations/{id}", None, self.f_dept_delegation, (204, 204, 404, 404),
             "SELECT count(*) FROM delegations WHERE id = {id}"),
            ("DELETE", "/delegations/{id}", None, self.f_a1_delegation, (204, 204, 404, 403),
             "SELECT count(*) FROM delegations WHERE id = {id}"),
            ("DELETE", "/delegations/{id}", None, self.f_org_delegation, (204, 403, 404, 403),
             "SELECT count(*) FROM delegations WHERE id = {id}"),
            # profiles
            ("GET", "/profiles", None, None, (200, 200, 200, 200), None),
            ("POST", "/profiles", lambda c, w: {"name": uniq("p"), "cert_type": "ssl",
                                                "terms_days": [30], "key_types": ["p256"]},
             None, (201, 403, 403, 403), "SELECT count(*) FROM profiles"),
            ("GET", "/profiles/{pA}", None, None, (200, 200, 404, 200), None),
            ("GET", "/profiles/{pAll}", None, None, (200, 200, 200, 200), None),
            ("PATCH", "/profiles/{pA}", lambda c, w: {"description": uniq("d")}, None,
             (200, 403, 404, 403), "SELECT description FROM profiles WHERE id = {pA}"),
            # endpoints
            ("GET", "/endpoints", None, None, (200, 200, 200, 200), None),
            ("POST", "/endpoints", endpoint_body(True), None, (201, 201, 404, 201),
             "SELECT count(*) FROM endpoints"),
            ("POST", "/endpoints", endpoint_body(False), None, (201, 201, 404, 404),
             "SELECT count(*) FROM endpoints"),
            ("GET", "/endpoints/{eA1}", None, None, (200, 200, 404, 200), None),
            ("GET", "/endpoints/{eA}", None, None, (200, 200, 404, 404), None),
            ("PATCH", "/endpoints/{eA1}", lambda c, w: {"settings": {"n": uniq()}}, None,
             (200, 200, 404, 200), "SELECT settings::text FROM endpoints WHERE id = {eA1}"),
            ("PATCH", "/endpoints/{eA}", lambda c, w: {"settings": {"n": uniq()}}, None,
             (200, 200, 404, 404), "SELECT settings::text FROM endpoints WHERE id = {eA}"),
            # ACME endpoints: EAB keys and accounts (admin_acme.c)
            ("POST", "/endpoints/{eA1}/eab-keys", {}, None, (201, 201, 404, 201),
             "SELECT count(*) FROM acme_eab_keys"),
            ("POST", "/endpoints/{eA}/eab-keys", {}, None, (201, 201, 404, 404),
             "SELECT count(*) FROM acme_eab_keys"),
            ("GET", "/endpoints/{eA1}/eab-keys", None, None, (200, 200, 404, 200), None),
            ("DELETE", "/endpoints/{eA1}/eab-keys/{kid}", None, self.f_eab_key, (200, 200, 404, 200),
             "SELECT revoked_at FROM acme_eab_keys WHERE kid = '{kid}'"),
            ("GET", "/acme-accounts", None, None, (200, 200, 200, 200), None),
            ("GET", "/acme-accounts?endpoint_id={eA}", None, None, (200, 200, 404, 404), None),
            # audit
            ("GET", "/audit", None, None, (200, 200, 200, 200), None),
            # certificates
            ("GET", "/certificates", None, None, (200, 200, 200, 200), None),
            ("POST", "/certificates", cert_body, None, (201, 201, 404, 201),
             "SELECT count(*) FROM certificates"),
            ("GET", "/certificates/{cA}", None, None, (200, 200, 404, 404), None),
            ("GET", "/certificates/{cA1}", None, None, (200, 200, 404, 200), None),
            ("GET", "/certificates/{cA1}/pem", None, None, (200, 200, 404, 200), None),
            ("POST", "/certificates/{id}/approve", None, self.f_requested_cert,
             (200, 200, 404, 200), "SELECT status FROM certificates WHERE id = {id}"),
            ("POST", "/certificates/{id}/decline", {"reason": "no"}, self.f_requested_cert,
             (200, 200, 404, 200), "SELECT status FROM certificates WHERE id = {id}"),
            ("POST", "/certificates/{id}/revoke", {"reason": "superseded"}, self.f_issued_cert,
             (200, 200, 404, 200), "SELECT status FROM certificates WHERE id = {id}"),
        ]

    def denied_count(self, caller):
        if caller not in self.ids:
            return 0
        return self.d.count("audit_log", "actor = 'admin:%d' AND outcome = 'denied' "
                            "AND reason = 'out_of_scope'" % self.ids[caller])

    def test_matrix(self):
        cells = 0
        for method, template, body, factory, expect, witness in self.matrix():
            for i, caller in enumerate(CALLERS):
                want = expect[i] if i < 4 else 401
                with self.subTest(route="%s %s" % (method, template), caller=caller):
                    ctx = factory() if factory else dict(self.ctx)
                    ctx["self"] = self.ids.get(caller, 1)
                    path = API + template.format(**ctx)
                    b = body(ctx, caller) if callable(body) else body
                    wsql = witness.format(**ctx) if witness else None
                    before = self.d.sql(wsql) if wsql else None
                    denied = self.denied_count(caller)
                    r = self.d.api(method, path, b, token=self.tok[caller])
                    self.assertEqual(r.status, want, "%s %s as %s: %r" % (method, path, caller, r))
                    if want >= 400:
                        self.assertEqual(r.headers.get("Content-Type"), "application/problem+json")
                        reason = {401: "token_missing" if caller == "none" else "token_invalid",
                                  403: "role_not_permitted", 404: "not_found"}[want]
                        self.assertEqual(r.json["reason"], reason, r)
                        if wsql:
                            self.assertEqual(self.d.sql(wsql), before,
                                             "refused %s %s as %s changed data" % (method, path, caller))
                    if want == 404:
                        self.assertEqual(self.denied_count(caller), denied + 1,
                                         "out-of-scope attempt not audited")
                    elif caller in self.ids:
                        self.assertEqual(self.denied_count(caller), denied)
                    cells += 1
        self.assertGreater(cells, 300)

    # -- lists show only what is in scope

    def ids_of(self, caller, path):
        items, after = [], 0
        while True:
            r = et.expect(self.d.api("GET", API + path + ("&" if "?" in path else "?")
                                     + "limit=500&after=%d" % after, token=self.tok[caller]), 200)
            items += [x["id"] for x in r["items"]]
            if r["next_after"] is None:
                return set(items)
            after = r["next_after"]

    def test_lists_are_scoped(self):
        c = self.ctx
        self.assertEqual(self.ids_of("rao_a", "/organizations"), {c["A"]})
        self.assertEqual(self.ids_of("drao_a1", "/organizations"), {c["A"]})
        self.assertEqual(self.ids_of("rao_b", "/organizations"), {c["B"]})
        self.assertTrue({c["A"], c["B"]} <= self.ids_of("mrao", "/organizations"))
        self.assertEqual(self.ids_of("drao_a1", "/organizations/%d/departments" % c["A"]), {c["A1"]})
        self.assertTrue({c["A1"], c["A2"]} <= self.ids_of("rao_a", "/organizations/%d/departments"
                                                             % c["A"]))

        admins_a = {int(r[0]) for r in self.d.sql("SELECT id FROM admins WHERE org_id = %d" % c["A"])}
        self.assertEqual(self.ids_of("rao_a", "/admins"), admins_a)
        admins_a1 = {int(r[0]) for r in self.d.sql("SELECT id FROM admins WHERE dept_id = %d" % c["A1"])}
        self.assertEqual(self.ids_of("drao_a1", "/admins"), admins_a1)
        self.assertNotIn(1, self.ids_of("rao_b", "/admins"))

        doms = self.ids_of("rao_a", "/domains")
        self.assertIn(c["domA"], doms)
        self.assertNotIn(c["domB"], doms)
        self.assertIn(c["domA"], self.ids_of("drao_a1", "/domains"))
        self.assertNotIn(c["domA"], self.ids_of("rao_b", "/domains"))
        self.assertEqual(self.ids_of("rao_b", "/domains/%d/delegations" % c["domB"]), {c["gB"]})

        profs = self.ids_of("rao_a", "/profiles")
        self.assertTrue({c["pA"], c["pAll"]} <= profs)
        self.assertNotIn(c["pB"], profs)
        self.assertNotIn(c["pA"], self.ids_of("rao_b", "/profiles"))

        eps = self.ids_of("drao_a1", "/endpoints")
        self.assertIn(c["eA1"], eps)
        self.assertNotIn(c["eA"], eps)
        self.assertTrue({c["eA"], c["eA1"]} <= self.ids_of("rao_a", "/endpoints"))
        self.assertNotIn(c["eA"], self.ids_of("rao_b", "/endpoints"))

        certs = self.ids_of("drao_a1", "/certificates")
        self.assertIn(c["cA1"], certs)
        self.assertNotIn(c["cA"], certs)
        self.assertTrue({c["cA"], c["cA1"]} <= self.ids_of("rao_a", "/certificates"))
        self.assertFalse({c["cA"], c["cA1"]} & self.ids_of("rao_b", "/certificates"))

        # audit: a RAO reads its organization's entries only
        for caller, col, value in (("rao_b", "org_id", c["B"]), ("rao_a", "org_id", c["A"]),
                                   ("drao_a1", "dept_id", c["A1"])):
            r = et.expect(self.d.api("GET", API + "/audit?limit=500", token=self.tok[caller]), 200)
            self.assertTrue(r["items"], caller)
            for e in r["items"]:
                self.assertEqual(e[col], value, (caller, e))

    def test_out_of_scope_is_like_absent(self):
        c = self.ctx
        for path, kind, oid in (("/organizations/%d" % c["B"], "organization", c["B"]),
                                ("/domains/%d" % c["domB"], "domain", c["domB"]),
                                ("/profiles/%d" % c["pB"], "profile", c["pB"]),
                                ("/endpoints/%d" % c["eB"], "endpoint", c["eB"])):
            hidden = self.d.api("GET", API + path, token=self.tok["rao_a"])
            absent = self.d.api("GET", API + path.rsplit("/", 1)[0] + "/987654321",
                                token=self.tok["rao_a"])
            self.assertEqual((hidden.status, absent.status), (404, 404))
            self.assertEqual(hidden.json, dict(absent.json, detail=absent.json["detail"].replace(
                "987654321", str(oid))))
            self.assertEqual(set(hidden.headers) - {"date", "content-length"},
                             set(absent.headers) - {"date", "content-length"})
            rows = self.d.sql("SELECT action, object_type, org_id, outcome, reason, details->>'path' "
                              "FROM audit_log WHERE actor = 'admin:%d' AND object_type = '%s' "
                              "AND object_id = %d ORDER BY id DESC LIMIT 1"
                              % (self.ids["rao_a"], kind, oid))
            self.assertEqual(rows, [("access", kind, None, "denied", "out_of_scope", API + path)])
            # the absent object is not audited as out of scope
            self.assertEqual(self.d.count("audit_log", "object_id = 987654321"), 0)

    # -- creating administrators: nobody hands out more than it holds

    def test_admin_creation_rules(self):
        c, d = self.ctx, self.d

        def post(caller, body, status, reason=None):
            before = d.count("admins")
            r = d.api("POST", API + "/admins", dict(body, login=uniq("esc")), token=self.tok[caller])
            self.assertEqual(r.status, status, (caller, body, r))
            if reason:
                self.assertEqual(r.json["reason"], reason)
            if status >= 400:
                self.assertEqual(d.count("admins"), before)
            return r.json

        drao = {"role": "drao", "dept_id": c["A1"], "cert_types": ["ssl"]}
        post("rao_a", dict(drao, cert_types=["ssl", "client"]), 403, "role_not_permitted")
        post("rao_a", dict(drao, privileges=["manage_admins"]), 403, "role_not_permitted")
        post("rao_a", {"role": "mrao"}, 403, "role_not_permitted")
        post("rao_a", dict(drao, dept_id=c["B1"]), 404, "not_found")
        post("rao_a", {"role": "rao", "org_id": c["B"], "cert_types": ["ssl"]}, 404, "not_found")
        # a RAO's new RAO defaults to its own organization
        made = post("rao_a", dict(drao, dept_id=c["A2"]), 201)
        self.assertEqual((made["org_id"], made["dept_id"], made["created_by"]),
                         (c["A"], c["A2"], self.ids["rao_a"]))
        # PATCH cannot escalate either
        r = d.api("PATCH", API + "/admins/%d" % made["id"], {"cert_types": ["ssl", "device"]},
                  token=self.tok["rao_a"])
        self.assertEqual((r.status, r.json["reason"]), (403, "role_not_permitted"), r)
        r = d.api("PATCH", API + "/admins/%d" % self.ids["rao_a"], {"cert_types": ["ssl", "device"]},
                  token=self.tok["rao_a"])
        self.assertEqual(r.status, 403, r)  # without manage_admins, not even itself
        self.assertEqual(d.sql("SELECT cert_types FROM admins WHERE id = %d" % made["id"]), [("{ssl}",)])

        # with manage_admins: RAOs of its organization, within its own rights
        mgr = et.expect(d.api("POST", API + "/admins", {
            "login": uniq("mgr"), "role": "rao", "org_id": c["A"], "cert_types": ["ssl", "client"],
            "privileges": ["manage_admins"]}), 201)
        mgr_tok = et.expect(d.api("POST", API + "/admins/%d/tokens" % mgr["id"], {}), 201)["token"]
        self.tok["mgr"] = mgr_tok
        post("mgr", {"role": "rao", "cert_types": ["client"], "privileges": ["manage_admins"]}, 201)
        post("mgr", {"role": "rao", "cert_types": ["client"], "privileges": ["approve_delegations"]},
             403, "role_not_permitted")
        post("mgr", {"role": "rao", "org_id": c["B"], "cert_types": ["ssl"]}, 404)
        # ... and may manage the tokens of the RAOs of its organization
        r = d.api("POST", API + "/admins/%d/tokens" % self.ids["rao_a"], {}, token=mgr_tok)
        self.assertEqual(r.status, 201, r)
        # a DRAO with manage_admins: DRAOs of its own department only
        dmgr = et.expect(d.api("POST", API + "/admins", {
            "login": uniq("dmgr"), "role": "drao", "dept_id": c["A1"], "cert_types": ["ssl"],
            "privileges": ["manage_admins"]}), 201)
        self.tok["dmgr"] = et.expect(d.api("POST", API + "/admins/%d/tokens" % dmgr["id"], {}),
                                     201)["token"]
        post("dmgr", {"role": "drao", "dept_id": c["A1"], "cert_types": ["ssl"]}, 201)
        post("dmgr", {"role": "drao", "dept_id": c["A2"], "cert_types": ["ssl"]}, 404)
        post("dmgr", {"role": "rao", "cert_types": ["ssl"]}, 403)

    # -- a RAO asks for domains; delegations are approved

    def test_rao_domain_requests(self):
        c, d = self.ctx, self.d
        rao = self.tok["rao_a"]
        name = uniq("req") + ".test"
        r = d.api("POST", API + "/domains", {"name": name, "cert_types": ["client"]}, token=rao)
        self.assertEqual((r.status, r.json["reason"]), (403, "role_not_permitted"), r)
        self.assertEqual(d.count("domains", "name = '%s'" % name), 0)
        r = d.api("POST", API + "/domains", {"name": name}, token=rao)
        self.assertEqual((r.status, r.json["reason"]), (400, "missing_field"), r)
        dom = et.expect(d.api("POST", API + "/domains", {"name": name, "cert_types": ["ssl"]},
                              token=rao), 201)
        g = dom["delegation"]
        self.assertEqual((g["org_id"], g["dept_id"], g["state"], g["requested_by"]),
                         (c["A"], None, "requested", self.ids["rao_a"]))
        self.assertEqual(d.sql("SELECT action FROM audit_log WHERE actor = 'admin:%d' AND "
                               "((object_type = 'domain' AND object_id = %d) OR "
                               "(object_type = 'delegation' AND object_id = %d)) "
                               "ORDER BY id" % (self.ids["rao_a"], dom["id"], g["id"])),
                         [("domain.create",), ("delegation.create",)])
        # visible to the requester, not yet usable for its departments
        et.expect(d.api("GET", API + "/domains/%d" % dom["id"], token=rao), 200)
        path = API + "/domains/%d/delegations" % dom["id"]
        r = d.api("POST", path, {"org_id": c["A"], "dept_id": c["A1"], "cert_types": ["ssl"]}, token=rao)
        self.assertEqual((r.status, r.json["reason"]), (403, "role_not_permitted"), r)
        # the RAO cannot approve its own request; the MRAO can
        r = d.api("POST", API + "/delegations/%d/approve" % g["id"], token=rao)
        self.assertEqual(r.status, 403, r)
        et.expect(d.api("POST", API + "/delegations/%d/approve" % g["id"]), 200)
        sub = et.expect(d.api("POST", path, {"org_id": c["A"], "dept_id": c["A1"],
                                             "cert_types": ["ssl"]}, token=rao), 201)
        self.assertEqual(sub["state"], "approved")
        self.assertIn(dom["id"], self.ids_of("drao_a1", "/domains"))
        # the RAO may delete its department's delegation, not its organization's
        self.assertEqual(d.api("DELETE", API + "/delegations/%d" % g["id"], token=rao).status, 403)
        self.assertEqual(d.api("DELETE", API + "/delegations/%d" % sub["id"], token=rao).status, 204)
        # a RAO asks for an existing domain for its organization: requested
        req = et.expect(d.api("POST", API + "/domains/%d/delegations" % c["domB"],
                              {"org_id": c["A"], "cert_types": ["ssl"]}, token=rao), 201)
        self.assertEqual(req["state"], "requested")
        r = d.api("POST", API + "/domains/%d/delegations" % c["domB"],
                  {"org_id": c["B"], "cert_types": ["ssl"]}, token=rao)
        self.assertEqual(r.status, 404, r)

    def test_rao_approves_department_delegation_with_privilege(self):
        c, d = self.ctx, self.d
        appr = et.expect(d.api("POST", API + "/admins", {
            "login": uniq("appr"), "role": "rao", "org_id": c["A"], "cert_types": ["ssl"],
            "privileges": ["approve_delegations"]}), 201)
        tok = et.expect(d.api("POST", API + "/admins/%d/tokens" % appr["id"], {}), 201)["token"]
        ctx1, ctx2 = self.f_a1_delegation(), self.f_a1_delegation()
        d.sql("UPDATE delegations SET state = 'requested', approved_by = NULL, approved_at = NULL "
              "WHERE id IN (%d, %d)" % (ctx1["id"], ctx2["id"]))
        r = d.api("POST", API + "/delegations/%d/approve" % ctx1["id"], token=self.tok["rao_a"])
        self.assertEqual((r.status, r.json["reason"]), (403, "role_not_permitted"), r)
        self.assertEqual(d.sql("SELECT state FROM delegations WHERE id = %d" % ctx1["id"]),
                         [("requested",)])
        ok = et.expect(d.api("POST", API + "/delegations/%d/approve" % ctx1["id"], token=tok), 200)
        self.assertEqual((ok["state"], ok["approved_by"]), ("approved", appr["id"]))
        r = d.api("POST", API + "/delegations/%d/approve" % ctx1["id"], token=tok)
        self.assertEqual((r.status, r.json["reason"]), (409, "conflict"), r)
        r = d.api("POST", API + "/delegations/%d/approve" % ctx2["id"], token=self.tok["rao_b"])
        self.assertEqual(r.status, 404, r)

    def test_endpoint_profiles_follow_scope(self):
        c, d = self.ctx, self.d
        base = {"protocol": "scep", "org_id": c["A"], "default_profile_id": c["pAll"]}
        before = d.count("endpoints")
        r = d.api("POST", API + "/endpoints", dict(base, name=uniq("e"), profile_ids=[c["pB"]]),
                  token=self.tok["rao_a"])
        self.assertEqual((r.status, r.json["reason"]), (404, "not_found"), r)
        r = d.api("POST", API + "/endpoints", dict(base, name=uniq("e"), profile_ids=[c["pClient"]]),
                  token=self.tok["rao_a"])
        self.assertEqual((r.status, r.json["reason"]), (403, "role_not_permitted"), r)
        r = d.api("PATCH", API + "/endpoints/%d" % c["eA1"], {"dept_id": c["A2"]},
                  token=self.tok["drao_a1"])
        self.assertEqual(r.status, 404, r)
        r = d.api("PATCH", API + "/endpoints/%d" % c["eA1"], {"org_id": c["B"]},
                  token=self.tok["rao_a"])
        self.assertEqual(r.status, 404, r)
        self.assertEqual(d.count("endpoints"), before)
        self.assertEqual(d.sql("SELECT org_id, dept_id FROM endpoints WHERE id = %d" % c["eA1"]),
                         [(str(c["A"]), str(c["A1"]))])


if __name__ == "__main__":
    et.main()
