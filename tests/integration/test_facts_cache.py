"""test_facts_cache: the policy facts cache (core/facts.c) is coherent across
instances sharing one database.

Two enrolld instances on one database (Enrolld.share_database()): A serves
the ACME requests, B the administrator. A's cache is warmed by a request
first (the facts of the organization are in A's memory), then the
administrator changes something through B's admin API - or directly in SQL,
the trigger path of migration 007 - and A's very next request must judge by
the new facts:

  * a delegation removed        -> newOrder refused (rejectedIdentifier,
                                   name_not_delegated), nothing stored;
  * a profile deactivated       -> finalize of an order that was ready
                                   refused, no certificate row, order invalid;
  * a domain's DCV revoked      -> newOrder no longer skips the challenges
                                   (order pending, authorization with
                                   challenges) on an endpoint that skips them
                                   for validated names;
  * organization deactivated in SQL (no enrolld involved) -> newOrder refused.

Each would pass on a stale cache only if A kept deciding by what it had
loaded: remove the generation check and they fail.

newOrder of an account A already authenticated runs ONE statement (nonce,
account and generation checks, order insert: store_acme_new_order()), with
the decision made before it from A's caches. Its guards, each tested after
two newOrders at A (the second already takes that path), then with nothing
stored by the refused request:

  * a delegation removed on B between two newOrders at A -> the next one at
    A refused (rejectedIdentifier), for an order that would store
    authorizations and challenges too (the generation guard);
  * the account deactivated through B -> refused at A (unauthorized, "the
    account is deactivated"; the status guard);
  * the account moved to another organization in SQL -> A decides for the
    new one (the organization guard);
  * a nonce used before - at A, or at B - replayed at A -> badNonce.
"""

import os
import secrets

import enrolld_test as et
from test_acme_protocol import (AcmeBase, AcmeClient, Key, counts, make_csr, make_eab,
                                make_endpoint, validate_domain)


class FactsCoherenceTest(AcmeBase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ca = os.path.join(cls.d.state_dir, "ca")
        cls.b = et.Enrolld(start=False, config_extra="[ca]\nca_root_cert = %s\n"
                           "ca_issuing_cert = %s\nca_issuing_key = %s\n"
                           % (os.path.join(ca, "root.pem"), os.path.join(ca, "issuing.pem"),
                              os.path.join(ca, "issuing.key")))
        try:
            cls.b.share_database(cls.d)
            cls.b.start()
        except Exception:
            cls.b.close()
            raise

    @classmethod
    def tearDownClass(cls):
        b, cls.b = getattr(cls, "b", None), None
        try:
            if b is not None:
                b.close()
        finally:
            super().tearDownClass()

    def tenant(self, skip_validated=True, validated=True):
        """A fresh organization (so that no other test shares its cache
        entry), an endpoint of it on A, a registered ACME client."""
        dom = "fc-%s.test" % secrets.token_hex(4)
        t = et.setup_tenant(self.b, domain=dom)
        if validated:
            validate_domain(self.b, t["domain_id"])
        ep = make_endpoint(self.b, t,
                           settings={"skip_challenges_when_dcv_validated": skip_validated})
        c = AcmeClient(self.d, ep["name"])
        r = c.register(eab=make_eab(self.b, int(ep["id"])))
        self.assertEqual(r.status, 201, r)
        return t, c

    def warm(self, c, t):
        """A newOrder on A: its facts are now cached there. Returns the
        order (ready: the domain is validated, the endpoint skips)."""
        r = c.new_order(["w%s.%s" % (secrets.token_hex(2), t["domain"])])
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "ready", r.json)
        return r

    def generation(self):
        return int(self.d.sql("SELECT generation FROM policy_generation")[0][0])

    def test_delegation_removed_on_b(self):
        t, c = self.tenant()
        self.warm(c, t)
        gen = self.generation()
        et.expect(self.b.api("DELETE", "/api/v1/delegations/%d" % t["delegation_id"]), 200, 204)
        self.assertGreater(self.generation(), gen, "the delegation's DELETE bumped nothing")
        before = counts(self.d)
        r = c.new_order(["x." + t["domain"]])
        self.assertProblem(r, 400, "rejectedIdentifier")
        self.assertIn("name_not_delegated", r.text)
        self.assertNothingStored(before)

    def test_profile_deactivated_on_b(self):
        t, c = self.tenant()
        o = self.warm(c, t)
        name = o.json["identifiers"][0]["value"]
        et.expect(self.b.api("PATCH", "/api/v1/profiles/%d" % t["profile_id"],
                             {"active": False}), 200)
        before = counts(self.d)
        f = c.finalize(o.json, make_csr(Key("ec"), [name]))
        self.assertEqual(f.status, 403, f)
        self.assertIn("profile_inactive", f.text)
        self.assertEqual(counts(self.d), before, "a refused finalize wrote a certificate")
        self.assertEqual(c.get(o.headers["location"]).json["status"], "invalid")

    def test_profile_renamed(self):
        """finalize's reply names the order's profile from A's facts cache,
        not from its statement: a rename through B, then one in SQL, each
        after A cached the facts, shows in A's next finalize reply (and in
        the retry of a finalized order), as GET on the order shows it."""
        t, c = self.tenant()
        o = self.warm(c, t)
        old = o.json["profile"]
        self.assertTrue(old)
        new = "renamed-%s" % secrets.token_hex(3)
        et.expect(self.b.api("PATCH", "/api/v1/profiles/%d" % t["profile_id"],
                             {"name": new}), 200)
        name = o.json["identifiers"][0]["value"]
        f = c.finalize(o.json, make_csr(Key("ec"), [name]))
        self.assertEqual(f.status, 200, f)
        self.assertEqual(f.json["status"], "valid", f.json)
        self.assertEqual(f.json["profile"], new, f.json)
        self.assertEqual(c.get(o.headers["location"]).json["profile"], new)
        newer = "sql-%s" % secrets.token_hex(3)
        self.d.sql("UPDATE profiles SET name = '%s' WHERE id = %d" % (newer, t["profile_id"]))
        again = c.finalize(o.json, make_csr(Key("ec"), [name]))
        self.assertEqual(again.status, 200, again)
        self.assertEqual(again.json["profile"], newer, again.json)
        self.assertEqual(again.json["certificate"], f.json["certificate"])
        self.assertEqual(c.get(o.headers["location"]).json["profile"], newer)

    def test_dcv_revoked_on_b(self):
        t, c = self.tenant()
        self.warm(c, t)
        et.expect(self.b.api("PUT", "/api/v1/domains/%d/dcv" % t["domain_id"],
                             {"status": "not_started"}), 200)
        r = c.new_order(["y." + t["domain"]])
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "pending", r.json)
        az = c.get(r.json["authorizations"][0])
        self.assertEqual(az.json["status"], "pending", az.json)
        self.assertTrue(az.json["challenges"], az.json)

    def test_organization_deactivated_in_sql(self):
        t, c = self.tenant()
        self.warm(c, t)
        gen = self.generation()
        self.d.sql("UPDATE organizations SET active = false WHERE id = %d" % t["org_id"])
        self.assertGreater(self.generation(), gen, "the UPDATE bumped nothing")
        before = counts(self.d)
        r = c.new_order(["z." + t["domain"]])
        self.assertProblem(r, 403, "unauthorized")
        self.assertIn("organization_inactive", r.text)
        self.assertNothingStored(before)
        # and back: the next request sees that too
        self.d.sql("UPDATE organizations SET active = true WHERE id = %d" % t["org_id"])
        r = c.new_order(["z." + t["domain"]])
        self.assertEqual(r.status, 201, r)

    def test_statement_without_rows_still_coherent(self):
        """A statement touching no row bumps too (statement-level): harmless,
        the next request reloads and decides the same."""
        t, c = self.tenant()
        self.warm(c, t)
        gen = self.generation()
        self.d.sql("UPDATE profiles SET active = active WHERE id = -1")
        self.assertGreater(self.generation(), gen)
        self.warm(c, t)

    # -- newOrder in one statement (store_acme_new_order())

    def known_to_a(self, c, t):
        """Two newOrders at A: the first authenticates the account (A now
        knows it), the second runs the one statement. Returns the second."""
        self.warm(c, t)
        return self.warm(c, t)

    def test_one_statement_neworder_policy_change_on_b(self):
        # challenges: an order here stores authorizations and challenges
        t, c = self.tenant(skip_validated=False)
        for _ in range(2):
            r = c.new_order(["p%s.%s" % (secrets.token_hex(2), t["domain"])])
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.json["status"], "pending", r.json)
        gen = self.generation()
        et.expect(self.b.api("DELETE", "/api/v1/delegations/%d" % t["delegation_id"]), 200, 204)
        self.assertGreater(self.generation(), gen)
        before = counts(self.d)
        r = c.new_order(["q." + t["domain"]])
        self.assertProblem(r, 400, "rejectedIdentifier")
        self.assertIn("name_not_delegated", r.text)
        self.assertNothingStored(before)

    def test_one_statement_neworder_account_deactivated_on_b(self):
        t, c = self.tenant()
        self.known_to_a(c, t)
        c.via = [self.b]
        r = c.post(c.kid, {"status": "deactivated"})
        c.via = [self.d]
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "deactivated", r.json)
        before = counts(self.d)
        r = c.new_order(["d." + t["domain"]])
        self.assertProblem(r, 403, "unauthorized")
        self.assertIn("the account is deactivated", r.text)
        self.assertNothingStored(before)

    def test_one_statement_neworder_account_moved_in_sql(self):
        t, c = self.tenant()
        other = et.setup_tenant(self.b, domain="fo-%s.test" % secrets.token_hex(4))
        # after the other tenant's creation: A's facts are of the current
        # generation, so only the account's organization can tell A
        self.known_to_a(c, t)
        gen = self.generation()
        self.d.sql("UPDATE acme_accounts SET org_id = %d, dept_id = NULL WHERE id = %d"
                   % (other["org_id"], int(c.kid.rsplit("/", 1)[1])))
        self.assertEqual(self.generation(), gen, "acme_accounts is not a facts table")
        before = counts(self.d)
        r = c.new_order(["m." + t["domain"]])
        self.assertProblem(r, 400, "rejectedIdentifier")
        self.assertIn("name_not_delegated", r.text)
        self.assertNothingStored(before)

    def test_one_statement_neworder_nonce_reused(self):
        t, c = self.tenant()
        self.known_to_a(c, t)
        url = c.directory()["newOrder"]
        for where in (self.d, self.b):
            nonce = c.new_nonce()
            c.via = [where]
            r = c.post(url, {"identifiers": [{"type": "dns", "value": "n1." + t["domain"]}]},
                       nonce=nonce)
            c.via = [self.d]
            self.assertEqual(r.status, 201, r)
            before = counts(self.d)
            r = c.post(url, {"identifiers": [{"type": "dns", "value": "n2." + t["domain"]}]},
                       nonce=nonce)
            self.assertProblem(r, 400, "badNonce")
            self.assertNothingStored(before)
            # and the account goes on on the one-statement path
            self.warm(c, t)


if __name__ == "__main__":
    et.main()
