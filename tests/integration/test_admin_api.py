"""test_admin_api: the admin JSON API, resource by resource, as an MRAO.

Runs the real enrolld against a real PostgreSQL (enrolld_test) and checks,
for organizations, departments, administrators and their tokens, domains,
DCV, delegations, profiles, endpoints and the audit log:
  * create / get / list / patch answer the documented JSON shapes, and every
    change leaves an audit entry by the caller;
  * lists page by keyset (?limit, ?after, next_after);
  * bad input -- malformed JSON, a non-object, too deep, duplicate keys,
    wrong types, unknown and missing fields, bad names and values -- gets
    400 with the stable reason, duplicates get 409, and a refused request
    writes nothing (rows counted before and after);
  * the router: unknown path 404, wrong method 405 + Allow, missing / bad
    tokens 401, health and the OpenAPI document without a token; every
    documented route exists with exactly the documented methods;
  * tokens: shown once, stored only as SHA-256, never logged, revocable,
    expiring.
"""

import hashlib
import json
import os
import re
import secrets

import enrolld_test as et

API = "/api/v1"


class AdminApiTest(et.EnrolldTestCase):

    # -- helpers

    def api(self, method, path, body=None, **kw):
        return self.d.api(method, API + path, body, **kw)

    def ok(self, method, path, body=None, status=200, **kw):
        r = self.api(method, path, body, **kw)
        self.assertEqual(r.status, status, r)
        return r.json

    def refused(self, status, reason, method, path, body=None, raw=None, table=None,
                where="true", token=et._DEFAULT):
        """Sends a request that must be refused with status + reason, and
        checks that `table` has as many rows (matching `where`) after as
        before."""
        table = table or self.table_of(path)
        before = self.d.count(table, where)
        if raw is not None:
            r = self.d.api(method, API + path, raw=raw, token=token,
                           headers={"Content-Type": "application/json"})
        else:
            r = self.d.api(method, API + path, body, token=token)
        self.assertEqual(r.status, status, r)
        self.assertIsNotNone(r.json, r)
        if reason is not None:
            self.assertEqual(r.json.get("reason"), reason, r)
        self.assertTrue(r.headers.get("Content-Type", "").startswith("application/problem+json"), r)
        self.assertEqual(self.d.count(table, where), before, "a refused request wrote a row")
        return r

    @staticmethod
    def table_of(path):
        """The table a write to `path` would add a row to."""
        p = path.split("?")[0].strip("/").split("/")
        if p[0] == "organizations":
            return "departments" if len(p) >= 3 else "organizations"
        if p[0] == "admins":
            return "admin_tokens" if len(p) >= 3 else "admins"
        if p[0] == "domains":
            return "delegations" if len(p) >= 3 and p[2] == "delegations" else "domains"
        return {"departments": "departments", "profiles": "profiles", "endpoints": "endpoints",
                "delegations": "delegations"}.get(p[0], "audit_log")

    def audited(self, action, object_id, actor="admin:1"):
        rows = self.d.sql("SELECT outcome, org_id, details FROM audit_log WHERE action = '%s' "
                          "AND object_id = %d AND actor = '%s'" % (action, object_id, actor))
        self.assertTrue(rows, "no audit entry %s for %d by %s" % (action, object_id, actor))
        return rows

    def new_org(self, **extra):
        body = {"name": "Org " + secrets.token_hex(5)}
        body.update(extra)
        return self.ok("POST", "/organizations", body, 201)

    def new_dept(self, org_id):
        return self.ok("POST", "/organizations/%d/departments" % org_id,
                       {"name": "Dept " + secrets.token_hex(4)}, 201)

    def new_profile(self, **extra):
        body = {"name": "p-" + secrets.token_hex(5), "cert_type": "ssl", "terms_days": [90],
                "key_types": ["p256"]}
        body.update(extra)
        return self.ok("POST", "/profiles", body, 201)

    # -- router, authentication, service routes

    def test_health_needs_no_token(self):
        r = self.d.api("GET", API + "/health", token=None)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"status": "ok", "database": "ok"})

    def test_unknown_path_and_wrong_method(self):
        r = self.api("GET", "/nothing-here")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json["reason"], "not_found")
        r = self.api("GET", "/organizations/")  # trailing slash: not a route
        self.assertEqual(r.status, 404, r)
        r = self.api("DELETE", "/organizations")
        self.assertEqual(r.status, 405, r)
        self.assertEqual(sorted(x.strip() for x in r.headers["Allow"].split(",")), ["GET", "POST"])
        r = self.api("POST", "/health")
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.headers["Allow"], "GET")

    def test_missing_and_bad_tokens(self):
        r = self.d.api("GET", API + "/organizations", token=None)
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.json["reason"], "token_missing")
        self.assertIn("Bearer", r.headers["WWW-Authenticate"])
        r = self.d.api("GET", API + "/organizations", token=None,
                       headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.json["reason"], "token_missing")
        for bad in ("enr_" + "A" * 43, "enr_short", "x" * 47, self.d.token + "x",
                    self.d.token[:-1] + ("A" if self.d.token[-1] != "A" else "B")):
            r = self.d.api("GET", API + "/me", token=bad)
            self.assertEqual(r.status, 401, (bad, r))
            self.assertEqual(r.json["reason"], "token_invalid")
            self.assertIn("invalid_token", r.headers["WWW-Authenticate"])
        # a refused write with a bad token writes nothing
        self.refused(401, "token_invalid", "POST", "/organizations", {"name": "never"},
                     token="enr_" + "B" * 43)

    def test_me(self):
        me = self.ok("GET", "/me")
        self.assertEqual(me["login"], "admin")
        self.assertEqual(me["role"], "mrao")
        self.assertIsNone(me["org_id"])
        self.assertEqual(set(me["cert_types"]), {"ssl", "client", "code_signing", "device"})
        self.assertIn("manage_admins", me["privileges"])

    def test_openapi_document_matches_router(self):
        r = self.d.api("GET", API + "/openapi.json", token=None)
        self.assertEqual(r.status, 200, r)
        doc = r.json
        src = os.path.join(et.source_dir(), "protocols", "admin", "openapi.json")
        with open(src) as f:
            self.assertEqual(doc, json.load(f), "served document differs from the source file")
        self.assertEqual(doc["openapi"], "3.0.3")
        # every $ref resolves
        refs = []

        def walk(x):
            if isinstance(x, dict):
                for k, v in x.items():
                    if k == "$ref":
                        refs.append(v)
                    else:
                        walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)
        walk(doc)
        for ref in set(refs):
            node = doc
            for part in ref[2:].split("/"):
                self.assertIn(part, node, "unresolved $ref " + ref)
                node = node[part]
        methods = {"get", "post", "put", "patch", "delete"}
        self.assertGreaterEqual(len(doc["paths"]), 25)
        for path, ops in doc["paths"].items():
            documented = {m.upper() for m in ops if m in methods}
            self.assertTrue(documented, path)
            # path parameters are declared
            names = set(re.findall(r"{(\w+)}", path))
            for m in documented:
                declared = {p["name"] for p in ops[m.lower()].get("parameters", [])
                            if p.get("in") == "path"}
                self.assertEqual(names, declared, (path, m))
            if path.endswith("/health") or path.endswith("/openapi.json"):
                continue
            # the router knows the path with exactly these methods
            concrete = re.sub(r"{\w+}", "999999", path)
            probe = "PUT" if "PUT" not in documented else "PATCH"
            if probe in documented:
                probe = "DELETE"
            r = self.d.api(probe, concrete, {})
            self.assertEqual(r.status, 405, (path, probe, r))
            allow = {x.strip() for x in r.headers["Allow"].split(",")}
            self.assertEqual(allow, documented, path)

    def test_body_parsing_errors(self):
        cases = [
            (b"", "malformed_json"),
            (b"{", "malformed_json"),
            (b"[1, 2]", "malformed_json"),
            (b"\"name\"", "malformed_json"),
            (b"{\"name\": \"a\", \"name\": \"b\"}", "malformed_json"),
            (b"{\"name\": " + b"[" * 40 + b"]" * 40 + b"}", "malformed_json"),
            (b"{\"name\": \"x\", \"colour\": \"red\"}", "unknown_field"),
            (b"{\"city\": \"Berlin\"}", "missing_field"),
            (b"{\"name\": 5}", "invalid_field"),
            (b"{\"name\": null}", "invalid_field"),
            (b"{\"name\": \"\"}", "invalid_field"),
            (b"{\"name\": \"bad\\u0001name\"}", "invalid_field"),
            (("{\"name\": \"%s\"}" % ("n" * 257)).encode(), "invalid_field"),
            (b"{\"name\": \"x\", \"country\": \"de\"}", "invalid_field"),
            (b"{\"name\": \"x\", \"country\": \"DEU\"}", "invalid_field"),
            (b"{\"name\": \"x\", \"country\": 49}", "invalid_field"),
            (b"{\"name\": \"x\", \"validation_status\": \"great\"}", "invalid_field"),
            (b"{\"name\": \"x\", \"active\": false}", "unknown_field"),
        ]
        for raw, reason in cases:
            with self.subTest(raw=raw[:60]):
                self.refused(400, reason, "POST", "/organizations", raw=raw)
        r = self.refused(400, "unknown_field", "POST", "/organizations", raw=b"{\"name\":\"x\",\"colour\":1}")
        self.assertIn("colour", r.json["detail"])
        r = self.refused(400, "invalid_field", "POST", "/organizations", raw=b"{\"name\":\"x\",\"city\":[]}")
        self.assertIn("city", r.json["detail"])

    # -- organizations and departments

    def test_organization_lifecycle(self):
        org = self.new_org(street1="Main St 1", city="Berlin", postal_code="10115", country="DE",
                           validation_status="pending")
        self.assertEqual(set(org), {"id", "name", "street1", "street2", "street3", "city", "state",
                                    "postal_code", "country", "validation_status", "active",
                                    "created_at"})
        self.assertIsInstance(org["id"], int)
        self.assertEqual(org["country"], "DE")
        self.assertEqual(org["validation_status"], "pending")
        self.assertTrue(org["active"])
        self.assertRegex(org["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.audited("organization.create", org["id"])
        got = self.ok("GET", "/organizations/%d" % org["id"])
        self.assertEqual(got, org)

        patched = self.ok("PATCH", "/organizations/%d" % org["id"],
                          {"city": "Hamburg", "street2": None, "validation_status": "validated"})
        self.assertEqual(patched["city"], "Hamburg")
        self.assertEqual(patched["street1"], "Main St 1")  # untouched
        self.assertEqual(patched["validation_status"], "validated")
        self.assertEqual(self.d.sql("SELECT city FROM organizations WHERE id = %d" % org["id"]),
                         [("Hamburg",)])
        self.audited("organization.update", org["id"])
        patched = self.ok("PATCH", "/organizations/%d" % org["id"], {"active": False})
        self.assertFalse(patched["active"])

        # duplicates and bad patches write nothing
        self.refused(409, "conflict", "POST", "/organizations", {"name": org["name"]})
        other = self.new_org()
        self.refused(409, "conflict", "PATCH", "/organizations/%d" % other["id"],
                     {"name": org["name"]}, where="name = '%s'" % org["name"].replace("'", "''"))
        for body, reason in (({"country": "xx"}, "invalid_field"), ({"active": "no"}, "invalid_field"),
                             ({"id": 5}, "unknown_field"), ({"created_at": "x"}, "unknown_field")):
            before = self.d.sql("SELECT * FROM organizations WHERE id = %d" % other["id"])
            r = self.api("PATCH", "/organizations/%d" % other["id"], body)
            self.assertEqual((r.status, r.json["reason"]), (400, reason), r)
            self.assertEqual(self.d.sql("SELECT * FROM organizations WHERE id = %d" % other["id"]),
                             before)
        r = self.api("GET", "/organizations/987654")
        self.assertEqual((r.status, r.json["reason"]), (404, "not_found"), r)
        r = self.api("GET", "/organizations/abc")
        self.assertEqual(r.status, 404, r)
        r = self.api("PATCH", "/organizations/987654", {"city": "x"})
        self.assertEqual(r.status, 404, r)

    def test_pagination(self):
        made = [self.new_org()["id"] for _ in range(7)]
        seen = []
        after = 0
        pages = 0
        while True:
            page = self.ok("GET", "/organizations?limit=3&after=%d" % after)
            self.assertLessEqual(len(page["items"]), 3)
            ids = [o["id"] for o in page["items"]]
            self.assertEqual(ids, sorted(ids))
            seen += ids
            pages += 1
            if page["next_after"] is None:
                break
            self.assertEqual(page["next_after"], ids[-1])
            after = page["next_after"]
        self.assertEqual(seen, sorted(set(seen)))
        self.assertTrue(set(made) <= set(seen))
        total = self.d.count("organizations")
        self.assertEqual(len(seen), total)
        self.assertGreaterEqual(pages, (total + 2) // 3)
        # exactly one page when limit covers everything
        page = self.ok("GET", "/organizations?limit=500")
        self.assertIsNone(page["next_after"])
        self.assertEqual(len(page["items"]), total)
        page = self.ok("GET", "/organizations?after=%d" % made[-1])
        self.assertEqual([o["id"] for o in page["items"] if o["id"] <= made[-1]], [])
        for q in ("limit=0", "limit=501", "limit=abc", "limit=", "after=-1", "after=1x"):
            r = self.api("GET", "/organizations?" + q)
            self.assertEqual((r.status, r.json["reason"]), (400, "invalid_field"), (q, r))

    def test_departments(self):
        org = self.new_org()
        dept = self.new_dept(org["id"])
        self.assertEqual(set(dept), {"id", "org_id", "name", "active", "created_at"})
        self.assertEqual(dept["org_id"], org["id"])
        self.audited("department.create", dept["id"])
        self.assertEqual(self.ok("GET", "/departments/%d" % dept["id"]), dept)
        lst = self.ok("GET", "/organizations/%d/departments" % org["id"])
        self.assertEqual([d["id"] for d in lst["items"]], [dept["id"]])
        patched = self.ok("PATCH", "/departments/%d" % dept["id"], {"name": "Renamed", "active": False})
        self.assertEqual((patched["name"], patched["active"]), ("Renamed", False))
        self.audited("department.update", dept["id"])
        # the same name in another organization is fine, in the same one a conflict
        other = self.new_org()
        self.ok("POST", "/organizations/%d/departments" % other["id"], {"name": "Renamed"}, 201)
        self.refused(409, "conflict", "POST", "/organizations/%d/departments" % org["id"],
                     {"name": "Renamed"})
        self.refused(400, "missing_field", "POST", "/organizations/%d/departments" % org["id"], {})
        self.refused(400, "invalid_field", "POST", "/organizations/%d/departments" % org["id"],
                     {"name": ["x"]})
        self.refused(400, "unknown_field", "POST", "/organizations/%d/departments" % org["id"],
                     {"name": "y", "org_id": other["id"]})
        self.refused(404, "not_found", "POST", "/organizations/987654/departments", {"name": "z"})
        r = self.api("GET", "/departments/987654")
        self.assertEqual(r.status, 404, r)

    # -- administrators and tokens

    def test_admins(self):
        org = self.new_org()
        dept = self.new_dept(org["id"])
        rao = self.ok("POST", "/admins", {"login": "rao-" + secrets.token_hex(3), "role": "rao",
                                          "org_id": org["id"], "cert_types": ["ssl", "client"],
                                          "privileges": ["manage_admins"],
                                          "email": "rao@example.org"}, 201)
        self.assertEqual(set(rao), {"id", "login", "email", "role", "org_id", "dept_id",
                                    "cert_types", "privileges", "active", "created_by",
                                    "created_at"})
        self.assertEqual((rao["role"], rao["org_id"], rao["dept_id"], rao["created_by"]),
                         ("rao", org["id"], None, 1))
        self.assertEqual(rao["cert_types"], ["ssl", "client"])
        self.audited("admin.create", rao["id"])
        # a DRAO's organization follows from its department
        drao = self.ok("POST", "/admins", {"login": "drao-" + secrets.token_hex(3), "role": "drao",
                                           "dept_id": dept["id"], "cert_types": ["ssl"]}, 201)
        self.assertEqual((drao["org_id"], drao["dept_id"]), (org["id"], dept["id"]))
        mrao = self.ok("POST", "/admins", {"login": "m-" + secrets.token_hex(3), "role": "mrao"}, 201)
        self.assertEqual((mrao["org_id"], mrao["cert_types"]), (None, []))
        self.assertEqual(self.ok("GET", "/admins/%d" % drao["id"]), drao)
        ids = [a["id"] for a in self.ok("GET", "/admins?limit=500")["items"]]
        self.assertTrue({rao["id"], drao["id"], mrao["id"], 1} <= set(ids))

        other = self.new_org()
        other_dept = self.new_dept(other["id"])
        bad = [
            ({"login": "x1", "role": "boss", "org_id": org["id"], "cert_types": ["ssl"]}, 400, "invalid_field"),
            ({"login": "x2", "role": "rao", "cert_types": ["ssl"]}, 400, "missing_field"),
            ({"login": "x3", "role": "rao", "org_id": org["id"]}, 400, "missing_field"),
            ({"login": "x4", "role": "rao", "org_id": org["id"], "cert_types": []}, 400, "invalid_field"),
            ({"login": "x5", "role": "rao", "org_id": org["id"], "cert_types": ["tls"]}, 400, "invalid_field"),
            ({"login": "x6", "role": "rao", "org_id": org["id"], "cert_types": ["ssl", "ssl"]}, 400, "invalid_field"),
            ({"login": "x7", "role": "rao", "org_id": org["id"], "cert_types": "ssl"}, 400, "invalid_field"),
            ({"login": "x8", "role": "rao", "org_id": org["id"], "cert_types": ["ssl"],
              "privileges": ["root"]}, 400, "invalid_field"),
            ({"login": "x9", "role": "mrao", "org_id": org["id"]}, 400, "invalid_field"),
            ({"login": "x10", "role": "rao", "org_id": org["id"], "dept_id": dept["id"],
              "cert_types": ["ssl"]}, 400, "invalid_field"),
            ({"login": "x11", "role": "drao", "org_id": org["id"], "cert_types": ["ssl"]}, 400, "missing_field"),
            ({"login": "x12", "role": "drao", "org_id": org["id"], "dept_id": other_dept["id"],
              "cert_types": ["ssl"]}, 400, "invalid_field"),
            ({"login": "has space", "role": "mrao"}, 400, "invalid_field"),
            ({"login": "", "role": "mrao"}, 400, "invalid_field"),
            ({"login": "x13", "role": "mrao", "email": "not-an-address"}, 400, "invalid_field"),
            ({"login": "x14", "role": "rao", "org_id": "1", "cert_types": ["ssl"]}, 400, "invalid_field"),
            ({"login": "x15", "role": "rao", "org_id": 987654, "cert_types": ["ssl"]}, 404, "not_found"),
            ({"login": "x16", "role": "drao", "dept_id": 987654, "cert_types": ["ssl"]}, 404, "not_found"),
            ({"login": "x17", "role": "mrao", "password": "x"}, 400, "unknown_field"),
            ({"role": "mrao"}, 400, "missing_field"),
            ({"login": rao["login"], "role": "mrao"}, 409, "conflict"),
        ]
        for body, status, reason in bad:
            with self.subTest(body=body):
                self.refused(status, reason, "POST", "/admins", body)

        patched = self.ok("PATCH", "/admins/%d" % rao["id"],
                          {"email": None, "cert_types": ["client"], "privileges": []})
        self.assertEqual((patched["email"], patched["cert_types"], patched["privileges"]),
                         (None, ["client"], []))
        self.audited("admin.update", rao["id"])
        r = self.api("PATCH", "/admins/%d" % rao["id"], {"cert_types": []})
        self.assertEqual((r.status, r.json["reason"]), (400, "invalid_field"), r)
        r = self.api("PATCH", "/admins/%d" % rao["id"], {"role": "mrao"})
        self.assertEqual((r.status, r.json["reason"]), (400, "unknown_field"), r)
        self.assertEqual(self.d.sql("SELECT role FROM admins WHERE id = %d" % rao["id"]), [("rao",)])

    def test_last_master_cannot_be_deactivated(self):
        # make sure this test's view is "admin:1 and maybe others": deactivate
        # every other MRAO first, then admin:1 itself must be refused.
        others = [int(r[0]) for r in self.d.sql(
            "SELECT id FROM admins WHERE role = 'mrao' AND active AND id <> 1")]
        for i in others:
            self.ok("PATCH", "/admins/%d" % i, {"active": False})
        r = self.api("PATCH", "/admins/1", {"active": False})
        self.assertEqual((r.status, r.json["reason"]), (409, "conflict"), r)
        self.assertEqual(self.d.sql("SELECT active FROM admins WHERE id = 1"), [("t",)])

    def test_tokens(self):
        org = self.new_org()
        rao = self.ok("POST", "/admins", {"login": "tok-" + secrets.token_hex(3), "role": "rao",
                                          "org_id": org["id"], "cert_types": ["ssl"]}, 201)
        path = "/admins/%d/tokens" % rao["id"]
        made = self.ok("POST", path, {"description": "ci", "expires_at": "2099-01-01T00:00:00Z"}, 201)
        self.assertEqual(set(made), {"id", "token", "expires_at"})
        token = made["token"]
        self.assertRegex(token, r"^enr_[A-Za-z0-9_-]{43}$")
        self.assertEqual(made["expires_at"], "2099-01-01T00:00:00Z")
        # only the SHA-256 is stored; the token is never written anywhere
        rows = self.d.sql("SELECT encode(token_hash, 'hex'), description FROM admin_tokens "
                          "WHERE id = %d" % made["id"])
        self.assertEqual(rows, [(hashlib.sha256(token.encode()).hexdigest(), "ci")])
        dump = self.d.sql("SELECT string_agg(t::text, ' ') FROM (SELECT * FROM admin_tokens) t")
        self.assertNotIn(token, dump[0][0])
        self.assertNotIn(token, self.d.sql("SELECT string_agg(details::text, ' ') FROM audit_log")[0][0])
        self.audited("token.create", made["id"])

        me = self.ok("GET", "/me", token=token)
        self.assertEqual(me["id"], rao["id"])
        self.assertNotEqual(self.d.sql("SELECT last_used_at FROM admin_tokens WHERE id = %d"
                                       % made["id"]), [(None,)])
        lst = self.ok("GET", path)
        self.assertEqual([t["id"] for t in lst["items"]], [made["id"]])
        self.assertEqual(set(lst["items"][0]), {"id", "admin_id", "description", "created_at",
                                                "expires_at", "revoked_at", "last_used_at"})
        self.assertNotIn(token, json.dumps(lst))
        # an empty body is fine
        second = self.ok("POST", path, raw=b"", status=201)
        self.assertIsNone(second["expires_at"])

        for body, reason in (({"expires_at": "2001-01-01T00:00:00Z"}, "invalid_field"),
                             ({"expires_at": "tomorrow"}, "invalid_field"),
                             ({"expires_at": "2099-02-30T00:00:00Z"}, "invalid_field"),
                             ({"description": 7}, "invalid_field"),
                             ({"token": "enr_mine"}, "unknown_field")):
            self.refused(400, reason, "POST", path, body)
        self.refused(404, "not_found", "POST", "/admins/987654/tokens", {})

        # revoke: 204, then the token is dead; again: already_revoked
        r = self.api("DELETE", "%s/%d" % (path, made["id"]))
        self.assertEqual(r.status, 204, r)
        self.audited("token.revoke", made["id"])
        r = self.api("GET", "/me", token=token)
        self.assertEqual((r.status, r.json["reason"]), (401, "token_invalid"), r)
        r = self.api("DELETE", "%s/%d" % (path, made["id"]))
        self.assertEqual((r.status, r.json["reason"]), (409, "already_revoked"), r)
        r = self.api("DELETE", "%s/%d" % (path, 987654))
        self.assertEqual(r.status, 404, r)
        # a token of another admin is not found under this one
        r = self.api("DELETE", "/admins/1/tokens/%d" % second["id"])
        self.assertEqual(r.status, 404, r)

        # expiry and an inactive admin end a token
        third = self.ok("POST", path, {}, 201)
        self.assertEqual(self.api("GET", "/me", token=third["token"]).status, 200)
        self.d.sql("UPDATE admin_tokens SET expires_at = now() - interval '1 second' WHERE id = %d"
                   % third["id"])
        self.assertEqual(self.api("GET", "/me", token=third["token"]).status, 401)
        self.assertEqual(self.api("GET", "/me", token=second["token"]).status, 200)
        self.ok("PATCH", "/admins/%d" % rao["id"], {"active": False})
        r = self.api("GET", "/me", token=second["token"])
        self.assertEqual((r.status, r.json["reason"]), (401, "token_invalid"), r)
        r = self.api("POST", path, {})
        self.assertEqual((r.status, r.json["reason"]), (409, "conflict"), r)
        # no token ever reached the log
        logs = self.d.logs()
        for t in (token, second["token"], third["token"]):
            self.assertNotIn(t, logs)

    # -- domains, DCV, delegations

    def test_domains(self):
        name = "dom-%s.example" % secrets.token_hex(3)
        dom = self.ok("POST", "/domains", {"name": name.upper() + ".", "description": "d"}, 201)
        self.assertEqual(dom["name"], name)  # canonical: lower case, no trailing dot
        self.assertEqual(set(dom), {"id", "name", "description", "active", "dcv_status",
                                    "dcv_method", "dcv_validated_at", "dcv_expires_at",
                                    "created_by", "created_at"})
        self.assertEqual(dom["dcv_status"], "not_started")
        self.audited("domain.create", dom["id"])
        self.assertEqual(self.ok("GET", "/domains/%d" % dom["id"]), dom)
        for bad in ("*.wild.example", "-lead.example", "a..b.example", "ex ample.com",
                    "b\u00fccher.example", "x" * 64 + ".example", "under_score.example",
                    "1.2.3.999", "2001:db8::g", ""):
            with self.subTest(name=bad):
                self.refused(400, "invalid_field", "POST", "/domains", {"name": bad})
        self.refused(400, "invalid_field", "POST", "/domains", {"name": 42})
        # IP addresses are domains too (for IP SANs), stored in canonical form
        v4 = "192.0.2.%d" % (secrets.randbelow(200) + 1)
        self.assertEqual(self.ok("POST", "/domains", {"name": v4}, 201)["name"], v4)
        v6 = "2001:db8::%x" % (secrets.randbelow(0xfff0) + 1)
        self.assertEqual(self.ok("POST", "/domains", {"name": v6.upper()}, 201)["name"], v6)
        self.refused(409, "conflict", "POST", "/domains", {"name": v6})
        self.refused(409, "conflict", "POST", "/domains", {"name": name})
        self.refused(409, "conflict", "POST", "/domains", {"name": name.upper()})
        self.refused(400, "invalid_field", "POST", "/domains",
                     {"name": "x-" + name, "cert_types": ["ssl"]})  # MRAO: delegate instead

        patched = self.ok("PATCH", "/domains/%d" % dom["id"], {"active": False, "description": None})
        self.assertEqual((patched["active"], patched["description"]), (False, None))
        self.refused(400, "unknown_field", "PATCH", "/domains/%d" % dom["id"], {"name": "y.example"},
                     table="domains", where="name = 'y.example'")

        dcv = self.ok("PUT", "/domains/%d/dcv" % dom["id"],
                      {"status": "validated", "method": "dns", "expires_at": "2030-01-01T00:00:00Z"})
        self.assertEqual((dcv["dcv_status"], dcv["dcv_method"], dcv["dcv_expires_at"]),
                         ("validated", "dns", "2030-01-01T00:00:00Z"))
        self.assertIsNotNone(dcv["dcv_validated_at"])
        self.audited("domain.dcv", dom["id"])
        for body in ({"status": "done"}, {"status": "validated", "method": "pigeon"},
                     {"method": "dns"}, {"status": "validated", "expires_at": "soon"}):
            r = self.api("PUT", "/domains/%d/dcv" % dom["id"], body)
            self.assertEqual(r.status, 400, (body, r))
        self.assertEqual(self.d.sql("SELECT dcv_status, dcv_method FROM domains WHERE id = %d"
                                    % dom["id"]), [("validated", "dns")])
        reset = self.ok("PUT", "/domains/%d/dcv" % dom["id"], {"status": "not_started"})
        self.assertEqual((reset["dcv_method"], reset["dcv_validated_at"]), (None, None))

    def test_delegations(self):
        org = self.new_org()
        dept = self.new_dept(org["id"])
        other = self.new_org()
        dom = self.ok("POST", "/domains", {"name": "deleg-%s.example" % secrets.token_hex(3)}, 201)
        path = "/domains/%d/delegations" % dom["id"]
        g = self.ok("POST", path, {"org_id": org["id"], "cert_types": ["client", "ssl"]}, 201)
        self.assertEqual(set(g), {"id", "domain_id", "domain", "org_id", "dept_id", "cert_types",
                                  "state", "requested_by", "approved_by", "created_at",
                                  "approved_at"})
        self.assertEqual((g["state"], g["approved_by"], g["dept_id"], g["cert_types"], g["domain"]),
                         ("approved", 1, None, ["ssl", "client"], dom["name"]))
        self.audited("delegation.create", g["id"])
        gd = self.ok("POST", path, {"org_id": org["id"], "dept_id": dept["id"], "cert_types": ["ssl"]}, 201)
        self.assertEqual(self.ok("GET", "/delegations/%d" % gd["id"]), gd)
        lst = self.ok("GET", path)
        self.assertEqual([x["id"] for x in lst["items"]], [g["id"], gd["id"]])
        for body, status, reason in (
                ({"org_id": org["id"], "cert_types": ["ssl"]}, 409, "conflict"),
                ({"org_id": 987654, "cert_types": ["ssl"]}, 404, "not_found"),
                ({"org_id": other["id"], "dept_id": dept["id"], "cert_types": ["ssl"]}, 404, "not_found"),
                ({"org_id": other["id"], "cert_types": []}, 400, "invalid_field"),
                ({"org_id": other["id"], "cert_types": ["smime"]}, 400, "invalid_field"),
                ({"org_id": other["id"]}, 400, "missing_field"),
                ({"org_id": other["id"], "cert_types": ["ssl"], "state": "approved"}, 400, "unknown_field")):
            with self.subTest(body=body):
                self.refused(status, reason, "POST", path, body)
        self.refused(404, "not_found", "POST", "/domains/987654/delegations",
                     {"org_id": org["id"], "cert_types": ["ssl"]})
        # approving an approved delegation is a conflict
        r = self.api("POST", "/delegations/%d/approve" % g["id"])
        self.assertEqual((r.status, r.json["reason"]), (409, "conflict"), r)
        # a requested one (as a RAO makes them) is approved by the MRAO
        req = self.ok("POST", path, {"org_id": other["id"], "cert_types": ["ssl"]}, 201)
        self.d.sql("UPDATE delegations SET state = 'requested', approved_by = NULL, approved_at = NULL "
                   "WHERE id = %d" % req["id"])
        ok = self.ok("POST", "/delegations/%d/approve" % req["id"])
        self.assertEqual((ok["state"], ok["approved_by"]), ("approved", 1))
        self.assertIsNotNone(ok["approved_at"])
        self.audited("delegation.approve", req["id"])
        # deleting the organization's delegation also removes its department's
        r = self.api("DELETE", "/delegations/%d" % g["id"])
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.d.count("delegations", "id IN (%d, %d)" % (g["id"], gd["id"])), 0)
        self.audited("delegation.delete", g["id"])
        r = self.api("DELETE", "/delegations/%d" % g["id"])
        self.assertEqual(r.status, 404, r)

    # -- profiles

    def test_profiles(self):
        org = self.new_org()
        p = self.new_profile(terms_days=[365, 90, 30], key_types=["p384", "rsa2048"],
                             key_usage=["keyEncipherment", "digitalSignature"],
                             ext_key_usage=["clientAuth", "serverAuth"], requires_approval=True,
                             allowed_org_ids=[org["id"]], description="web")
        self.assertEqual(p["terms_days"], [30, 90, 365])
        self.assertEqual(p["key_types"], ["rsa2048", "p384"])
        self.assertEqual(p["key_usage"], ["digitalSignature", "keyEncipherment"])
        self.assertEqual(p["ext_key_usage"], ["serverAuth", "clientAuth"])
        self.assertEqual((p["requires_approval"], p["allow_wildcards"], p["ca_backend"],
                          p["allowed_org_ids"], p["active"]),
                         (True, False, "private", [org["id"]], True))
        self.audited("profile.create", p["id"])
        self.assertEqual(self.ok("GET", "/profiles/%d" % p["id"]), p)
        minimal = self.new_profile()
        self.assertEqual((minimal["key_usage"], minimal["ext_key_usage"], minimal["allowed_org_ids"]),
                         (["digitalSignature"], [], None))
        base = {"name": "bad-" + secrets.token_hex(4), "cert_type": "ssl", "terms_days": [90],
                "key_types": ["p256"]}
        bad = [
            ({"terms_days": []}, "invalid_field"), ({"terms_days": [0]}, "invalid_field"),
            ({"terms_days": [3651]}, "invalid_field"), ({"terms_days": ["90"]}, "invalid_field"),
            ({"terms_days": [90, 90]}, "invalid_field"), ({"terms_days": 90}, "invalid_field"),
            ({"terms_days": [1.5]}, "invalid_field"),
            ({"key_types": ["rsa1024"]}, "invalid_field"), ({"key_types": ["ed25519"]}, "invalid_field"),
            ({"key_types": ["p192"]}, "invalid_field"), ({"key_types": []}, "invalid_field"),
            ({"key_usage": ["keyCertSign"]}, "invalid_field"),
            ({"ext_key_usage": ["anyExtendedKeyUsage"]}, "invalid_field"),
            ({"cert_type": "smime"}, "invalid_field"), ({"ca_backend": "upstream"}, "invalid_field"),
            ({"requires_approval": "yes"}, "invalid_field"), ({"allowed_org_ids": [0]}, "invalid_field"),
            ({"allowed_org_ids": "all"}, "invalid_field"),
            ({"name": ""}, "invalid_field"), ({"serial": 1}, "unknown_field"),
        ]
        for over, reason in bad:
            body = dict(base, **over)
            with self.subTest(body=over):
                self.refused(400, reason, "POST", "/profiles", body)
        for key in ("name", "cert_type", "terms_days", "key_types"):
            body = dict(base)
            del body[key]
            self.refused(400, "missing_field", "POST", "/profiles", body)
        self.refused(404, "not_found", "POST", "/profiles", dict(base, allowed_org_ids=[987654]))
        self.refused(409, "conflict", "POST", "/profiles", dict(base, name=p["name"]))

        patched = self.ok("PATCH", "/profiles/%d" % p["id"],
                          {"terms_days": [7], "allowed_org_ids": None, "active": False})
        self.assertEqual((patched["terms_days"], patched["allowed_org_ids"], patched["active"],
                          patched["key_types"]), ([7], None, False, ["rsa2048", "p384"]))
        self.audited("profile.update", p["id"])
        before = self.d.sql("SELECT * FROM profiles WHERE id = %d" % p["id"])
        for body in ({"key_types": ["dsa"]}, {"terms_days": [0]}, {"id": 3}):
            r = self.api("PATCH", "/profiles/%d" % p["id"], body)
            self.assertEqual(r.status, 400, r)
        self.assertEqual(self.d.sql("SELECT * FROM profiles WHERE id = %d" % p["id"]), before)

    # -- endpoints

    def test_endpoints(self):
        org = self.new_org()
        dept = self.new_dept(org["id"])
        p1 = self.new_profile()
        p2 = self.new_profile(allowed_org_ids=[org["id"]])
        elsewhere = self.new_profile(allowed_org_ids=[self.new_org()["id"]])
        name = "acme-" + secrets.token_hex(3)
        e = self.ok("POST", "/endpoints", {"protocol": "acme", "name": name, "org_id": org["id"],
                                           "dept_id": dept["id"], "default_profile_id": p1["id"],
                                           "profile_ids": [p2["id"]], "settings": {"eab_required": True}},
                    201)
        self.assertEqual(set(e), {"id", "protocol", "name", "org_id", "dept_id", "default_profile_id",
                                  "profile_ids", "settings", "active", "created_at"})
        self.assertEqual((e["protocol"], e["org_id"], e["dept_id"], e["profile_ids"], e["settings"]),
                         ("acme", org["id"], dept["id"], [p2["id"], p1["id"]], {"eab_required": True}))
        self.audited("endpoint.create", e["id"])
        self.assertEqual(self.ok("GET", "/endpoints/%d" % e["id"]), e)
        # the same name under another protocol is fine
        self.ok("POST", "/endpoints", {"protocol": "scep", "name": name, "org_id": org["id"],
                                       "default_profile_id": p1["id"]}, 201)
        base = {"protocol": "est", "name": "est-" + secrets.token_hex(3), "org_id": org["id"],
                "default_profile_id": p1["id"]}
        bad = [
            ({"protocol": "cmp"}, 400, "invalid_field"),
            ({"name": "has space"}, 400, "invalid_field"),
            ({"name": "x" * 65}, 400, "invalid_field"),
            ({"settings": []}, 400, "invalid_field"),
            ({"profile_ids": [p1["id"], p1["id"]]}, 400, "invalid_field"),
            ({"profile_ids": "1"}, 400, "invalid_field"),
            ({"default_profile_id": 987654}, 404, "not_found"),
            ({"profile_ids": [987654]}, 404, "not_found"),
            ({"profile_ids": [elsewhere["id"]]}, 400, "invalid_field"),
            ({"org_id": 987654}, 404, "not_found"),
            ({"dept_id": 987654}, 404, "not_found"),
            ({"active": 1}, 400, "invalid_field"),
            ({"secret": "x"}, 400, "unknown_field"),
            ({"protocol": "acme", "name": name}, 409, "conflict"),
        ]
        for over, status, reason in bad:
            with self.subTest(body=over):
                self.refused(status, reason, "POST", "/endpoints", dict(base, **over))
        body = dict(base)
        del body["default_profile_id"]
        self.refused(400, "missing_field", "POST", "/endpoints", body)

        patched = self.ok("PATCH", "/endpoints/%d" % e["id"],
                          {"settings": {"challenge": "static"}, "active": False, "dept_id": None})
        self.assertEqual((patched["settings"], patched["active"], patched["dept_id"], patched["org_id"]),
                         ({"challenge": "static"}, False, None, org["id"]))
        self.audited("endpoint.update", e["id"])
        patched = self.ok("PATCH", "/endpoints/%d" % e["id"], {"default_profile_id": p2["id"],
                                                               "profile_ids": []})
        self.assertEqual((patched["default_profile_id"], patched["profile_ids"]), (p2["id"], [p2["id"]]))
        before = self.d.sql("SELECT * FROM endpoints WHERE id = %d" % e["id"])
        for over in ({"protocol": "scep"}, {"profile_ids": [elsewhere["id"]]}, {"name": "bad name"}):
            r = self.api("PATCH", "/endpoints/%d" % e["id"], over)
            self.assertEqual(r.status, 400, (over, r))
        self.assertEqual(self.d.sql("SELECT * FROM endpoints WHERE id = %d" % e["id"]), before)

    # -- audit

    def test_audit_filters(self):
        org = self.new_org()
        self.ok("PATCH", "/organizations/%d" % org["id"], {"city": "A"})
        self.ok("PATCH", "/organizations/%d" % org["id"], {"city": "B"})
        lst = self.ok("GET", "/audit?object_type=organization&object_id=%d" % org["id"])
        self.assertEqual([(e["action"], e["object_id"]) for e in lst["items"]],
                         [("organization.create", org["id"]), ("organization.update", org["id"]),
                          ("organization.update", org["id"])])
        e = lst["items"][1]
        self.assertEqual(set(e), {"id", "at", "actor", "action", "object_type", "object_id",
                                  "org_id", "dept_id", "outcome", "reason", "details"})
        self.assertEqual((e["actor"], e["outcome"], e["org_id"], e["details"]),
                         ("admin:1", "ok", org["id"], {"city": "A"}))
        lst = self.ok("GET", "/audit?action=organization.update&object_id=%d&limit=1" % org["id"])
        self.assertEqual(len(lst["items"]), 1)
        self.assertEqual(lst["next_after"], lst["items"][0]["id"])
        nxt = self.ok("GET", "/audit?action=organization.update&object_id=%d&after=%d"
                      % (org["id"], lst["next_after"]))
        self.assertEqual(len(nxt["items"]), 1)
        self.assertIsNone(nxt["next_after"])
        self.assertEqual(self.ok("GET", "/audit?actor=admin:987654")["items"], [])
        for q in ("object_id=x", "object_id=0", "limit=9999", "action="):
            r = self.api("GET", "/audit?" + q)
            self.assertEqual((r.status, r.json["reason"]), (400, "invalid_field"), (q, r))


if __name__ == "__main__":
    et.main()
