"""test_acme_protocol: the ACME door (RFC 8555) driven by our own small client.

Against the real binary and a real PostgreSQL (enrolld_test harness), with a
client written here on python3-cryptography (Debian package
python3-cryptography): JWS (ES256 / RS256, jwk or kid), EAB (HS256), CSRs.

  * directory (meta, profiles, renewalInfo), newNonce (HEAD 200 / GET 204,
    Cache-Control: no-store), Replay-Nonce and Link rel="index" on every
    response, errors included;
  * the full flow with names pre-validated (endpoint setting
    skip_challenges_when_dcv_validated and a DCV-validated domain): EAB
    account (201, then 200 with the same Location), order born ready,
    authorization valid, finalize, download (leaf + issuing CA), `openssl
    verify` against enrolld's root, the organization's O in the subject, ARI
    window, revocation (by account and by certificate key), alreadyRevoked;
  * the refusal battery - bad, reused and forged nonce, url mismatch, alg
    none, jwk and kid together, unknown kid, deactivated account, another
    account's order / authorization / certificate (404), CSR with an extra
    name, finalize before ready, EAB with a wrong MAC, missing EAB, names
    outside the delegation (rejectedIdentifier with one subproblem per
    refused identifier), wrong Content-Type - each answers the right problem
    type AND writes nothing (acme_* and certificates rows counted before and
    after);
  * challenges: their shapes per identifier kind, responding sets
    'processing';
  * two finalize requests at once issue ONE certificate; a retried finalize
    returns the same order;
  * an approval-required profile: the order stays 'processing' (with
    Retry-After) until an administrator approves through the admin API, then
    it is 'valid' and the certificate downloads;
  * key rollover; account deactivation;
  * an ES256 account past 64 verified requests (its key now checked with
    a precomputed table, core/ecverify.c) still refuses forged, flipped and
    other keys' signatures writing nothing, accepts the high-s twin, issues,
    and no longer trusts its old key after a key change;
  * RFC 9773 "replaces" (certIDs computed here from the certificate): the
    account's own certificate once (the order shows it back), a second
    replacement while the first is live or valid -> alreadyReplaced 409, an
    expired or invalid replacement no longer blocks, another account's
    certificate, no shared identifier and malformed certIDs -> malformed,
    four replacements at once -> one order; each refusal writes nothing;
  * two enrolld instances on one database, requests alternating between them
    (each using the nonce the other handed out): complete issuance; a key
    rollover and a deactivation through one are honoured by the other's
    next request (it caches parsed account keys).
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import subprocess
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

import enrolld_test as et

P = "urn:ietf:params:acme:error:"


# --------------------------------------------------------------------------
# A small ACME client


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_dec(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_change_inner(url, kid, old, new):
    """RFC 8555 §7.3.5: the inner JWS of a keyChange to key `new`, signed by
    it, naming account kid and its old key."""
    p64 = b64u(json.dumps({"alg": new.alg, "jwk": new.jwk(), "url": url}))
    pl64 = b64u(json.dumps({"account": kid, "oldKey": old.jwk()}))
    return {"protected": p64, "payload": pl64,
            "signature": b64u(new.sign(("%s.%s" % (p64, pl64)).encode()))}


class Key:
    """An account or certificate key: 'ec' (P-256, ES256) or 'rsa' (2048, RS256)."""

    def __init__(self, kind="ec"):
        self.kind = kind
        if kind == "ec":
            self.priv = ec.generate_private_key(ec.SECP256R1())
            self.alg = "ES256"
        else:
            self.priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg = "RS256"

    def jwk(self):
        pub = self.priv.public_key()
        if self.kind == "ec":
            nums = pub.public_numbers()
            return {"crv": "P-256", "kty": "EC", "x": b64u(nums.x.to_bytes(32, "big")),
                    "y": b64u(nums.y.to_bytes(32, "big"))}
        nums = pub.public_numbers()
        n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
        e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
        return {"e": b64u(e), "kty": "RSA", "n": b64u(n)}

    def thumbprint(self):
        canon = json.dumps(self.jwk(), sort_keys=True, separators=(",", ":"))
        return b64u(hashlib.sha256(canon.encode()).digest())

    def sign(self, data):
        if self.kind == "ec":
            r, s = decode_dss_signature(self.priv.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self.priv.sign(data, padding.PKCS1v15(), hashes.SHA256())


def make_csr(key, names, cn=None):
    """DER of a CSR for `names` ('dns' strings or 'ip:x') signed by key."""
    import ipaddress
    sans = []
    for n in names:
        if n.startswith("ip:"):
            sans.append(x509.IPAddress(ipaddress.ip_address(n[3:])))
        else:
            sans.append(x509.DNSName(n))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if cn else x509.Name([])
    b = x509.CertificateSigningRequestBuilder().subject_name(subject)
    b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = b.sign(key.priv, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


class AcmeClient:
    """One account key talking to one endpoint. Requests go to the daemons
    in `via` in turn (default: just d), always addressed with d's URLs (as a
    load balancer in front of several instances would see them)."""

    def __init__(self, d, endpoint, key=None, via=None):
        self.d = d
        self.endpoint = endpoint
        self.key = key or Key("ec")
        self.via = via or [d]
        self.turn = 0
        self.kid = None
        self.nonce = None
        self.prefix = "%s/acme/%s" % (d.url, endpoint)
        self.dir = None

    # -- transport

    def _target(self):
        t = self.via[self.turn % len(self.via)]
        self.turn += 1
        return t

    def request(self, method, url, body=None, headers=None):
        assert url.startswith(self.d.url), url
        path = url[len(self.d.url):]
        t = self._target()
        hdrs = {"Host": "%s:%d" % (self.d.host, self.d.port)}
        hdrs.update(headers or {})
        conn = http.client.HTTPSConnection(t.host, t.port, context=self.d.tls_context(),
                                           timeout=60)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            resp = et.Response(r.status, et.Headers(r.getheaders()), r.read())
        finally:
            conn.close()
        if "replay-nonce" in resp.headers:
            self.nonce = resp.headers["replay-nonce"]
        return resp

    def directory(self):
        if self.dir is None:
            r = self.request("GET", self.prefix + "/directory")
            assert r.status == 200, r
            self.dir = r.json
        return self.dir

    def new_nonce(self):
        r = self.request("HEAD", self.directory()["newNonce"])
        assert r.status == 200, r
        return r.headers["replay-nonce"]

    # -- JWS

    def jws(self, url, payload, use_jwk=None, nonce=None, key=None, protected_extra=None,
            alg=None, kid=None):
        key = key or self.key
        if use_jwk is None:
            use_jwk = self.kid is None
        if nonce is None:
            nonce = self.nonce or self.new_nonce()
            self.nonce = None
        prot = {"alg": alg or key.alg, "nonce": nonce, "url": url}
        if use_jwk:
            prot["jwk"] = key.jwk()
        else:
            prot["kid"] = kid or self.kid
        prot.update(protected_extra or {})
        p64 = b64u(json.dumps(prot))
        pl64 = "" if payload is None else b64u(json.dumps(payload))
        sig = key.sign(("%s.%s" % (p64, pl64)).encode())
        return json.dumps({"protected": p64, "payload": pl64, "signature": b64u(sig)}).encode()

    def post(self, url, payload=None, content_type="application/jose+json", **kw):
        body = self.jws(url, payload, **kw)
        return self.request("POST", url, body, {"Content-Type": content_type})

    def post_raw(self, url, body, content_type="application/jose+json"):
        return self.request("POST", url, body, {"Content-Type": content_type})

    # -- protocol steps

    def eab(self, kid, hmac_b64, url=None):
        prot = {"alg": "HS256", "kid": kid, "url": url or self.directory()["newAccount"]}
        p64 = b64u(json.dumps(prot))
        pl64 = b64u(json.dumps(self.key.jwk()))
        mac = hmac.new(b64u_dec(hmac_b64), ("%s.%s" % (p64, pl64)).encode(),
                       hashlib.sha256).digest()
        return {"protected": p64, "payload": pl64, "signature": b64u(mac)}

    def register(self, eab=None, contact=("mailto:ops@example.org",), extra=None):
        payload = {"termsOfServiceAgreed": True, "contact": list(contact)}
        if eab is not None:
            payload["externalAccountBinding"] = self.eab(*eab)
        payload.update(extra or {})
        r = self.post(self.directory()["newAccount"], payload, use_jwk=True)
        if r.status in (200, 201):
            self.kid = r.headers["location"]
        return r

    def new_order(self, names, extra=None):
        ids = []
        for n in names:
            if n.startswith("ip:"):
                ids.append({"type": "ip", "value": n[3:]})
            else:
                ids.append({"type": "dns", "value": n})
        payload = {"identifiers": ids}
        payload.update(extra or {})
        return self.post(self.directory()["newOrder"], payload)

    def finalize(self, order, csr_der):
        return self.post(order["finalize"], {"csr": b64u(csr_der)})

    def get(self, url):
        """POST-as-GET."""
        return self.post(url, None)


def problem_type(resp):
    return (resp.json or {}).get("type")


def cert_der_of(pem):
    m = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S)
    return base64.b64decode("".join(m.group(1).split()))


def pem_certs(text):
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", text,
                      re.S)


def ari_cert_id(pem):
    """RFC 9773 §4.1 certID of the (first) certificate in pem, computed here:
    base64url(AKI keyIdentifier) "." base64url(serial DER content octets)."""
    cert = x509.load_der_x509_certificate(cert_der_of(pem))
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    sn = cert.serial_number
    return b64u(aki.key_identifier) + "." + b64u(sn.to_bytes(sn.bit_length() // 8 + 1, "big"))


# --------------------------------------------------------------------------
# Fixtures


def make_endpoint(d, tenant, name=None, settings=None, profile_ids=None, default=None):
    body = {"protocol": "acme", "name": name or "acme-" + secrets.token_hex(4),
            "org_id": tenant["org_id"],
            "default_profile_id": default or tenant["profile_id"],
            "settings": settings if settings is not None else {}}
    if profile_ids:
        body["profile_ids"] = profile_ids
    return et.expect(d.api("POST", "/api/v1/endpoints", body), 201)


def make_eab(d, endpoint_id, org_id=None, dept_id=None):
    body = {}
    if org_id:
        body["org_id"] = org_id
    if dept_id:
        body["dept_id"] = dept_id
    r = d.api("POST", "/api/v1/endpoints/%d/eab-keys" % endpoint_id, body)
    if r.status == 404 and (r.json or {}).get("detail") == "no such resource":
        raise AssertionError("POST /api/v1/endpoints/{id}/eab-keys is not routed: "
                             "admin_acme_routes must be in admin_tables[] (admin.c): %r" % r)
    key = et.expect(r, 201)
    # shown once: the listing never carries the secret
    listed = et.expect(d.api("GET", "/api/v1/endpoints/%d/eab-keys" % endpoint_id), 200)
    assert any(k["kid"] == key["kid"] for k in listed["items"]), listed
    assert all("hmac_key" not in k for k in listed["items"]), listed
    return key["kid"], key["hmac_key"]


def validate_domain(d, domain_id):
    et.expect(d.api("PUT", "/api/v1/domains/%d/dcv" % domain_id,
                    {"status": "validated", "method": "manual"}), 200)


COUNTED = ("acme_accounts", "acme_orders", "acme_authzs", "acme_challenges", "certificates")


def counts(d):
    row = d.sql("SELECT " + ", ".join("(SELECT count(*) FROM %s)" % t for t in COUNTED))[0]
    out = dict(zip(COUNTED, (int(x) for x in row)))
    out["eab_used"] = int(d.sql("SELECT count(*) FROM acme_eab_keys WHERE used_at IS NOT NULL")
                          [0][0])
    out["certificates_revoked"] = int(
        d.sql("SELECT count(*) FROM certificates WHERE status = 'revoked'")[0][0])
    return out


class AcmeBase(et.EnrolldTestCase):
    """One daemon with: a tenant whose domain is DCV-validated, an endpoint
    that skips challenges for such names (fast path) and one that does not,
    an EAB key for each."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.d
        cls.domain = "acme-%s.test" % secrets.token_hex(3)
        cls.t = et.setup_tenant(d, domain=cls.domain,
                                profile_extra={"allow_wildcards": True})
        validate_domain(d, cls.t["domain_id"])
        # an address delegated to the organization (RFC 8738 ip identifiers),
        # through the admin API like any domain
        cls.ip = "192.0.2.%d" % (secrets.randbelow(200) + 20)
        ip_dom = et.expect(d.api("POST", "/api/v1/domains", {"name": cls.ip}), 201)
        et.expect(d.api("POST", "/api/v1/domains/%d/delegations" % int(ip_dom["id"]),
                        {"org_id": cls.t["org_id"], "cert_types": ["ssl"]}), 201)
        validate_domain(d, int(ip_dom["id"]))
        cls.fast = make_endpoint(d, cls.t, settings={"skip_challenges_when_dcv_validated": True,
                                                     "website": "https://example.org/acme"})
        cls.slow = make_endpoint(d, cls.t, settings={})
        cls.fast_eab = make_eab(d, int(cls.fast["id"]))
        cls.slow_eab = make_eab(d, int(cls.slow["id"]))

    def client(self, endpoint=None, key=None, register=True, via=None):
        ep = endpoint or self.fast
        c = AcmeClient(self.d, ep["name"], key=key, via=via)
        if register:
            eab = self.fast_eab if ep is self.fast else self.slow_eab
            r = c.register(eab=eab)
            self.assertEqual(r.status, 201, r)
        return c

    def assertProblem(self, resp, status, ptype):
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.headers.get("content-type"), "application/problem+json", resp)
        self.assertEqual(problem_type(resp), P + ptype, resp)
        self.assertIn("replay-nonce", resp.headers, "problem without Replay-Nonce")
        self.assertIn('rel="index"', resp.headers.get("link", ""), "problem without Link index")

    def assertNothingStored(self, before):
        self.assertEqual(counts(self.d), before, "a refused request wrote rows")

    def issue(self, c, names, key=None):
        """newOrder -> finalize -> download; returns (order, chain_pem, cert_key)."""
        r = c.new_order(names)
        self.assertEqual(r.status, 201, r)
        order = r.json
        order_url = r.headers["location"]
        for az in order["authorizations"]:
            a = c.get(az)
            self.assertEqual(a.status, 200, a)
            self.assertEqual(a.json["status"], "valid", a)
        ckey = key or Key("ec")
        f = c.finalize(order, make_csr(ckey, names))
        self.assertEqual(f.status, 200, f)
        o = f.json
        for _ in range(50):
            if o["status"] == "valid":
                break
            time.sleep(0.1)
            o = c.get(order_url).json
        self.assertEqual(o["status"], "valid", o)
        dl = c.get(o["certificate"])
        self.assertEqual(dl.status, 200, dl)
        self.assertEqual(dl.headers["content-type"], "application/pem-certificate-chain")
        return o, dl.text, ckey


# --------------------------------------------------------------------------
# Tests


class AcmeDirectoryTest(AcmeBase):

    def test_directory(self):
        c = AcmeClient(self.d, self.fast["name"])
        r = c.request("GET", c.prefix + "/directory")
        self.assertEqual(r.status, 200, r)
        dr = r.json
        for k in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange",
                  "renewalInfo"):
            self.assertTrue(dr[k].startswith(c.prefix + "/"), (k, dr[k]))
        self.assertIs(dr["meta"]["externalAccountRequired"], True)
        self.assertEqual(dr["meta"]["website"], "https://example.org/acme")
        self.assertIn("ssl-", " ".join(dr["meta"]["profiles"].keys()))
        self.assertIn("replay-nonce", r.headers)
        self.assertEqual(r.headers["link"], '<%s/directory>;rel="index"' % c.prefix)

    def test_new_nonce(self):
        c = AcmeClient(self.d, self.fast["name"])
        h = c.request("HEAD", c.prefix + "/new-nonce")
        self.assertEqual(h.status, 200, h)
        self.assertEqual(h.headers["cache-control"], "no-store")
        g = c.request("GET", c.prefix + "/new-nonce")
        self.assertEqual(g.status, 204, g)
        self.assertEqual(g.headers["cache-control"], "no-store")
        self.assertNotEqual(h.headers["replay-nonce"], g.headers["replay-nonce"])
        self.assertRegex(g.headers["replay-nonce"], r"^[A-Za-z0-9_-]{40,}$")
        self.assertIn('rel="index"', g.headers["link"])
        p = c.request("PUT", c.prefix + "/new-nonce", b"")
        self.assertEqual(p.status, 405, p)
        self.assertIn("replay-nonce", p.headers)

    def test_unknown_endpoint_and_resource(self):
        c = AcmeClient(self.d, "no-such-endpoint")
        r = c.request("GET", c.prefix + "/directory")
        self.assertEqual(r.status, 404, r)
        self.assertIn("replay-nonce", r.headers)
        c = AcmeClient(self.d, self.fast["name"])
        r = c.request("GET", c.prefix + "/order/xyz")
        self.assertEqual(r.status, 405, r)  # POST-as-GET only
        self.assertEqual(r.headers["allow"], "POST")
        r = c.request("GET", c.prefix + "/nope")
        self.assertEqual(r.status, 405, r)


class AcmeFlowTest(AcmeBase):

    def test_full_flow_pre_validated(self):
        before = counts(self.d)
        c = AcmeClient(self.d, self.fast["name"])
        r = c.register(eab=self.fast_eab)
        self.assertEqual(r.status, 201, r)
        acct_url = r.headers["location"]
        self.assertRegex(acct_url, r"/acme/%s/acct/\d+$" % self.fast["name"])
        self.assertEqual(r.json["status"], "valid")
        self.assertEqual(r.json["contact"], ["mailto:ops@example.org"])
        self.assertTrue(r.json["orders"].startswith(acct_url))
        # the same key again: 200, same account
        c2 = AcmeClient(self.d, self.fast["name"], key=c.key)
        r = c2.register(eab=self.fast_eab)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["location"], acct_url)
        r = c2.post(c2.directory()["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["location"], acct_url)
        # the account binds to the EAB key's organization
        org = self.d.sql("SELECT org_id FROM acme_accounts WHERE id = %s"
                         % acct_url.rsplit("/", 1)[1])[0][0]
        self.assertEqual(int(org), self.t["org_id"])

        names = ["www." + self.domain, self.domain]
        r = c.new_order(names)
        self.assertEqual(r.status, 201, r)
        order_url = r.headers["location"]
        order = r.json
        self.assertEqual(order["status"], "ready", order)
        self.assertEqual(sorted(i["value"] for i in order["identifiers"]), sorted(names))
        self.assertEqual(len(order["authorizations"]), 2)
        self.assertTrue(order["finalize"].startswith(order_url))
        self.assertRegex(order_url, r"/order/[A-Za-z0-9_-]{22}$")
        a = c.get(order["authorizations"][0])
        self.assertEqual(a.status, 200, a)
        self.assertEqual(a.json["status"], "valid")
        self.assertIn(a.json["identifier"]["value"], names)
        self.assertIsInstance(a.json["challenges"], list)

        ckey = Key("ec")
        f = c.finalize(order, make_csr(ckey, names, cn=names[0]))
        self.assertEqual(f.status, 200, f)
        self.assertEqual(f.json["status"], "valid", f.json)
        self.assertIn("certificate", f.json)
        o = c.get(order_url)
        self.assertEqual(o.status, 200, o)
        self.assertEqual(o.json["status"], "valid")
        dl = c.get(o.json["certificate"])
        self.assertEqual(dl.status, 200, dl)
        self.assertEqual(dl.headers["content-type"], "application/pem-certificate-chain")
        certs = pem_certs(dl.text)
        self.assertEqual(len(certs), 2, "leaf + issuing CA expected")
        ok, out = et.openssl_verify(certs[0], self.d.root_pem, untrusted_pem=certs[1],
                                    tmpdir=self.tmp)
        self.assertTrue(ok, out)
        text = et.cert_text(certs[0])
        self.assertIn("O = " + self.t["org_name"], text)
        for n in names:
            self.assertIn("DNS:" + n, text)
        # the certificate row: protocol acme, requester the account
        row = self.d.sql("SELECT protocol, requester, idempotency_key FROM certificates "
                         "ORDER BY id DESC LIMIT 1")[0]
        self.assertEqual(row[0], "acme")
        self.assertEqual(row[1], "acme:" + acct_url.rsplit("/", 1)[1])
        self.assertTrue(row[2].startswith("acme-order:"))
        after = counts(self.d)
        self.assertEqual(after["certificates"], before["certificates"] + 1)
        self.assertEqual(after["acme_orders"], before["acme_orders"] + 1)
        # every name was validated: the authorizations are derived from the
        # order, no row each (migration 009)
        self.assertEqual(after["acme_authzs"], before["acme_authzs"])
        self.assertEqual(order["authorizations"],
                         [order_url.replace("/order/", "/authz/") + ".%d" % i for i in (0, 1)])

        # orders list
        lst = c.get(r.json["orders"] if "orders" in r.json else acct_url + "/orders")
        lst = c.get(acct_url + "/orders")
        self.assertEqual(lst.status, 200, lst)
        self.assertIn(order_url, lst.json["orders"])

        # ARI
        cert = x509.load_der_x509_certificate(cert_der_of(certs[0]))
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        sn = cert.serial_number
        serial_bytes = sn.to_bytes((sn.bit_length() + 8) // 8, "big")
        cert_id = b64u(aki.key_identifier) + "." + b64u(serial_bytes)
        ari = c.request("GET", c.directory()["renewalInfo"] + "/" + cert_id)
        self.assertEqual(ari.status, 200, ari)
        self.assertEqual(ari.headers["retry-after"], "21600")
        win = ari.json["suggestedWindow"]
        self.assertLess(win["start"], win["end"])
        nb = cert.not_valid_before.strftime("%Y-%m-%dT%H:%M:%SZ")
        na = cert.not_valid_after.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.assertTrue(nb < win["start"] < win["end"] < na, (nb, win, na))
        bad = c.request("GET", c.directory()["renewalInfo"] + "/" + b64u(b"nope") + "."
                        + b64u(serial_bytes))
        self.assertEqual(bad.status, 404, bad)

        # revocation by the account, then again
        der = cert_der_of(certs[0])
        rv = c.post(c.directory()["revokeCert"], {"certificate": b64u(der), "reason": 4})
        self.assertEqual(rv.status, 200, rv)
        st = self.d.sql("SELECT status, revocation_reason FROM certificates WHERE serial = '%X'"
                        % sn)[0]
        self.assertEqual(st, ("revoked", "4"))
        rv = c.post(c.directory()["revokeCert"], {"certificate": b64u(der)})
        self.assertProblem(rv, 400, "alreadyRevoked")
        ari = c.request("GET", c.directory()["renewalInfo"] + "/" + cert_id)
        self.assertEqual(ari.status, 200, ari)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.assertLess(ari.json["suggestedWindow"]["end"], now)

    def test_revoke_by_certificate_key_and_reasons(self):
        c = self.client()
        _, chain, ckey = self.issue(c, ["rv." + self.domain])
        der = cert_der_of(chain)
        stranger = AcmeClient(self.d, self.fast["name"])
        before = counts(self.d)
        # a bad reason, signed by the certificate key
        r = stranger.post(stranger.directory()["revokeCert"],
                          {"certificate": b64u(der), "reason": 7}, key=ckey, use_jwk=True)
        self.assertProblem(r, 400, "badRevocationReason")
        # another key (not the certificate's, no account): unauthorized
        r = stranger.post(stranger.directory()["revokeCert"], {"certificate": b64u(der)},
                          use_jwk=True)
        self.assertProblem(r, 403, "unauthorized")
        # an account of another organization: unauthorized
        other_t = et.setup_tenant(self.d, domain="other-%s.test" % secrets.token_hex(3))
        other_ep = make_endpoint(self.d, other_t)
        oc = AcmeClient(self.d, other_ep["name"])
        self.assertEqual(oc.register(eab=make_eab(self.d, int(other_ep["id"]))).status, 201)
        r = oc.post(oc.directory()["revokeCert"], {"certificate": b64u(der)})
        self.assertProblem(r, 403, "unauthorized")
        self.assertEqual(counts(self.d)["certificates_revoked"], before["certificates_revoked"])
        # the certificate key may
        r = stranger.post(stranger.directory()["revokeCert"],
                          {"certificate": b64u(der), "reason": 1}, key=ckey, use_jwk=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(counts(self.d)["certificates_revoked"],
                         before["certificates_revoked"] + 1)

    def test_wildcard_and_ip(self):
        c = self.client()
        o, chain, _ = self.issue(c, ["*." + self.domain, self.domain, "ip:" + self.ip])
        text = et.cert_text(pem_certs(chain)[0])
        self.assertIn("DNS:*." + self.domain, text)
        self.assertIn("IP Address:" + self.ip, text)

    def test_key_change(self):
        c = self.client()
        old = c.key
        new = Key("ec")
        url = c.directory()["keyChange"]
        r = c.post(url, key_change_inner(url, c.kid, old, new))
        self.assertEqual(r.status, 200, r)
        # the old key no longer signs for the account
        r = c.new_order(["kc." + self.domain])
        self.assertProblem(r, 400, "malformed")
        c.key = new
        r = c.new_order(["kc." + self.domain])
        self.assertEqual(r.status, 201, r)
        # rolling over to a key another account holds: 409 with its Location
        other = self.client()
        r = c.post(url, key_change_inner(url, c.kid, new, other.key))
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.headers["location"], other.kid)

    def test_account_update_and_deactivation(self):
        c = self.client()
        r = c.post(c.kid, {"contact": ["mailto:new@Example.ORG"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["contact"], ["mailto:new@example.org"])
        r = c.post(c.kid, {"contact": ["tel:+1555"]})
        self.assertProblem(r, 400, "unsupportedContact")
        r = c.post(c.kid, {"contact": ["mailto:not-an-address"]})
        self.assertProblem(r, 400, "invalidContact")
        r = c.get(c.kid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["contact"], ["mailto:new@example.org"])
        r = c.post(c.kid, {"status": "deactivated"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "deactivated")
        before = counts(self.d)
        r = c.new_order(["x." + self.domain])
        self.assertProblem(r, 403, "unauthorized")
        r = c.get(c.kid)
        self.assertProblem(r, 403, "unauthorized")
        self.assertNothingStored(before)

    def test_finalize_twice_at_once_issues_once(self):
        c = self.client()
        names = ["race." + self.domain]
        r = c.new_order(names)
        self.assertEqual(r.status, 201, r)
        order = r.json
        csr = make_csr(Key("ec"), names)
        bodies = [c.jws(order["finalize"], {"csr": b64u(csr)}, nonce=c.new_nonce())
                  for _ in range(2)]
        results = [None, None]

        def go(i):
            results[i] = c.post_raw(order["finalize"], bodies[i])
        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for res in results:
            self.assertEqual(res.status, 200, res)
            self.assertEqual(res.json["status"], "valid", res)
        oid = self.d.sql("SELECT id FROM acme_orders WHERE public_id = '%s'"
                         % order["finalize"].split("/")[-2])[0][0]
        n = self.d.count("certificates", "idempotency_key = 'acme-order:%s'" % oid)
        self.assertEqual(n, 1)
        # a retried finalize returns the same order and issues nothing
        before = counts(self.d)
        r = c.finalize(order, csr)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["certificate"], results[0].json["certificate"])
        self.assertNothingStored(before)

    def test_challenges(self):
        c = self.client(endpoint=self.slow)
        r = c.new_order(["ch." + self.domain, "*." + self.domain, "ip:" + self.ip])
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "pending")
        kinds = {}
        for az in r.json["authorizations"]:
            a = c.get(az)
            self.assertEqual(a.status, 200, a)
            self.assertEqual(a.json["status"], "pending")
            types = sorted(ch["type"] for ch in a.json["challenges"])
            for ch in a.json["challenges"]:
                self.assertEqual(ch["status"], "pending")
                self.assertRegex(ch["token"], r"^[A-Za-z0-9_-]{43}$")
                self.assertTrue(ch["url"].startswith(c.prefix + "/chall/"))
            key = a.json["identifier"]["type"] + (":*" if a.json.get("wildcard") else "")
            kinds[key] = (types, a.json["identifier"]["value"])
        self.assertEqual(kinds["dns"][0], ["dns-01", "http-01", "tls-alpn-01"])
        self.assertEqual(kinds["dns:*"], (["dns-01"], self.domain))
        self.assertEqual(kinds["ip"][0], ["http-01", "tls-alpn-01"])
        # POST-as-GET reads; {} answers the challenge: processing, then the
        # validator decides (nothing answers here: invalid)
        a = c.get(r.json["authorizations"][0]).json
        ch = a["challenges"][0]
        g = c.get(ch["url"])
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json["status"], "pending")
        self.assertIn('rel="up"', g.headers["link"])
        p = c.post(ch["url"], {})
        self.assertEqual(p.status, 200, p)
        self.assertIn(p.json["status"], ("processing", "invalid"), p)
        # deactivating an authorization invalidates the order
        d = c.post(r.json["authorizations"][1], {"status": "deactivated"})
        self.assertEqual(d.status, 200, d)
        self.assertEqual(d.json["status"], "deactivated")
        o = c.get(r.headers["location"])
        self.assertEqual(o.json["status"], "invalid", o)

    def test_order_status_from_stored_authzs(self):
        """An order with authorization rows reads as its authorizations say
        (migration 012's functions, in the order read and in finalize's):
        pending while one is pending, ready when all are valid, invalid
        when one is past its expiry while pending; its authorizations are
        listed in id order. Finalize of an order that is not ready is
        orderNotReady and stores nothing."""
        d = self.d
        c = self.client(endpoint=self.slow)
        names = ["s1." + self.domain, "s2." + self.domain, "s3." + self.domain]
        r = c.new_order(names)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "pending")
        public_id = r.headers["location"].rsplit("/", 1)[1]
        oid = d.sql("SELECT id FROM acme_orders WHERE public_id = '%s'" % public_id)[0][0]
        stored = [row[0] for row in d.sql("SELECT public_id FROM acme_authzs"
                                          " WHERE order_id = %s ORDER BY id" % oid)]
        self.assertEqual(len(stored), 3)
        self.assertEqual([u.rsplit("/", 1)[1] for u in r.json["authorizations"]], stored)
        o = c.get(r.headers["location"])
        self.assertEqual(o.json, r.json)
        before = counts(d)
        f = c.finalize(r.json, make_csr(Key("ec"), names))
        self.assertProblem(f, 403, "orderNotReady")
        self.assertNothingStored(before)
        # two valid, one pending: still pending
        d.sql("UPDATE acme_authzs SET status = 'valid' WHERE public_id IN ('%s', '%s')"
              % (stored[0], stored[2]))
        self.assertEqual(c.get(r.headers["location"]).json["status"], "pending")
        # all valid: ready (the stored status is still pending)
        d.sql("UPDATE acme_authzs SET status = 'valid' WHERE order_id = %s" % oid)
        o = c.get(r.headers["location"])
        self.assertEqual(o.json["status"], "ready", o.json)
        self.assertEqual([u.rsplit("/", 1)[1] for u in o.json["authorizations"]], stored)
        self.assertEqual(d.sql("SELECT status FROM acme_orders WHERE id = %s" % oid)[0][0],
                         "pending")
        # one pending past its expiry: invalid, and finalize refuses
        d.sql("UPDATE acme_authzs SET status = 'pending', expires_at = now() - interval '1 minute'"
              " WHERE public_id = '%s'" % stored[1])
        self.assertEqual(c.get(r.headers["location"]).json["status"], "invalid")
        before = counts(d)
        f = c.finalize(r.json, make_csr(Key("ec"), names))
        self.assertProblem(f, 403, "orderNotReady")
        self.assertIn("invalid", f.json.get("detail", ""))
        self.assertNothingStored(before)

    def test_profile_and_term(self):
        c = self.client()
        r = c.new_order(["p." + self.domain], {"profile": "no-such-profile"})
        self.assertProblem(r, 400, "invalidProfile")
        r = c.new_order(["p." + self.domain], {"notBefore": "2030-01-01T00:00:00Z"})
        self.assertProblem(r, 400, "malformed")
        r = c.new_order(["p." + self.domain], {"notAfter": "2030-01-01T00:00:00Z"})
        self.assertProblem(r, 400, "malformed")
        na = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 365 * 86400))
        before = counts(self.d)
        r = c.new_order(["p." + self.domain], {"notAfter": na})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["notAfter"], na)
        # the order read back (its statement returns columns) is the order
        # as created, and as finalize reads it (json_build_object)
        o = c.get(r.headers["location"])
        self.assertEqual(o.status, 200, o)
        self.assertEqual(o.json, r.json)
        f = c.finalize(r.json, make_csr(Key("ec"), ["p." + self.domain]))
        self.assertEqual(f.status, 200, f)
        o = c.get(r.headers["location"])
        self.assertEqual(o.status, 200, o)
        self.assertEqual(o.json, f.json)
        self.assertEqual(o.json["notAfter"], na)
        self.assertIn("certificate", o.json)
        term = self.d.sql("SELECT term_days FROM certificates ORDER BY id DESC LIMIT 1")[0][0]
        self.assertEqual(term, "365")
        self.assertEqual(counts(self.d)["certificates"], before["certificates"] + 1)

    def test_policy_judged_again_at_finalize(self):
        """An order is judged at newOrder and again at finalize, with the
        facts as they are then (read in finalize's own statement): a
        department account's delegation withdrawn between the two makes
        finalize refuse, the order invalid, and no certificate row."""
        d = self.d
        dom = "dept-%s.test" % secrets.token_hex(3)
        dm = et.expect(d.api("POST", "/api/v1/domains", {"name": dom}), 201)
        dl = et.expect(d.api("POST", "/api/v1/domains/%d/delegations" % int(dm["id"]),
                             {"org_id": self.t["org_id"], "dept_id": self.t["dept_id"],
                              "cert_types": ["ssl"]}), 201)
        validate_domain(d, int(dm["id"]))
        c = AcmeClient(d, self.fast["name"])
        r = c.register(eab=make_eab(d, int(self.fast["id"]), org_id=self.t["org_id"],
                                    dept_id=self.t["dept_id"]))
        self.assertEqual(r.status, 201, r)
        # in scope: issued, with the department as OU
        _, chain, _ = self.issue(c, ["a." + dom])
        cert = x509.load_pem_x509_certificate(pem_certs(chain)[0].encode())
        dept_name = d.sql("SELECT name FROM departments WHERE id = %d" % self.t["dept_id"])[0][0]
        ou = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        self.assertEqual([a.value for a in ou], [dept_name], cert.subject)
        # withdrawn between newOrder and finalize
        r = c.new_order(["b." + dom])
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "ready", r.json)
        et.expect(d.api("DELETE", "/api/v1/delegations/%d" % int(dl["id"])), 200, 204)
        before = counts(d)
        f = c.finalize(r.json, make_csr(Key("ec"), ["b." + dom]))
        self.assertProblem(f, 403, "rejectedIdentifier")
        self.assertIn("name_not_delegated", f.json.get("detail", "") + f.json.get("reason", ""))
        self.assertEqual(counts(d), before, "a refused finalize wrote a certificate")
        o = c.get(r.headers["location"])
        self.assertEqual(o.json["status"], "invalid", o.json)
        self.assertEqual(int(d.sql("SELECT count(*) FROM audit_log WHERE outcome = 'denied'"
                                   " AND reason = 'name_not_delegated' AND actor = 'acme:%s'"
                                   % c.kid.rsplit("/", 1)[1])[0][0]), 1)


class AcmeRefusalTest(AcmeBase):
    """Each refusal: the right problem type, and nothing written."""

    def setUp(self):
        self.c = self.client()
        self.before = counts(self.d)

    def tearDown(self):
        self.assertNothingStored(self.before)

    def test_bad_nonce(self):
        r = self.c.post(self.c.directory()["newOrder"],
                        {"identifiers": [{"type": "dns", "value": "a." + self.domain}]},
                        nonce="bm90LWEtbm9uY2U")
        self.assertProblem(r, 400, "badNonce")

    def test_reused_nonce(self):
        nonce = self.c.new_nonce()
        payload = {"identifiers": [{"type": "dns", "value": "a." + self.domain}]}
        r = self.c.post(self.c.directory()["newOrder"], payload, nonce=nonce)
        self.assertEqual(r.status, 201, r)
        self.before = counts(self.d)
        r = self.c.post(self.c.directory()["newOrder"], payload, nonce=nonce)
        self.assertProblem(r, 400, "badNonce")

    def test_reused_nonce_every_statement(self):
        # every form of the auth statement refuses a spent nonce (its
        # INSERT fails on the primary key) and loads nothing, and the
        # connection and its prepared statements serve the next request
        o, _, _ = self.issue(self.c, ["rn." + self.domain])
        order_url = o["finalize"].rsplit("/", 1)[0]
        self.before = counts(self.d)
        cases = [(self.c.directory()["newOrder"],
                  {"identifiers": [{"type": "dns", "value": "rn." + self.domain}]}),
                 (order_url, None), (o["authorizations"][0], None),
                 (o["finalize"], {"csr": "AA"}), (o["certificate"], None),
                 (self.c.kid, None)]
        for url, payload in cases:
            nonce = self.c.new_nonce()
            r = self.c.post(order_url, None, nonce=nonce)
            self.assertEqual(r.status, 200, r)
            r = self.c.post(url, payload, nonce=nonce)
            self.assertProblem(r, 400, "badNonce")
        # the jwk form (newAccount of an existing key)
        nonce = self.c.new_nonce()
        self.assertEqual(self.c.post(order_url, None, nonce=nonce).status, 200)
        r = self.c.post(self.c.directory()["newAccount"], {"onlyReturnExisting": True},
                        nonce=nonce, use_jwk=True)
        self.assertProblem(r, 400, "badNonce")
        for url in (order_url, o["authorizations"][0], o["certificate"], self.c.kid):
            self.assertEqual(self.c.get(url).status, 200, url)

    def test_reused_nonce_older_statement(self):
        # rolling upgrade: an older enrolld on the same database consumes
        # nonces with INSERT ... ON CONFLICT (nonce) DO NOTHING RETURNING 1;
        # a nonce is single-use across both forms, in both directions
        older = ("WITH n AS (INSERT INTO acme_nonces (nonce, expires_at)"
                 " VALUES ('%s', now() + interval '1 hour')"
                 " ON CONFLICT (nonce) DO NOTHING RETURNING 1) SELECT EXISTS (SELECT 1 FROM n)")
        url = self.c.kid
        nonce = self.c.new_nonce()
        self.assertEqual(self.d.sql(older % nonce)[0][0], "t")
        self.assertProblem(self.c.post(url, None, nonce=nonce), 400, "badNonce")
        nonce = self.c.new_nonce()
        self.assertEqual(self.c.post(url, None, nonce=nonce).status, 200)
        self.assertEqual(self.d.sql(older % nonce)[0][0], "f")

    def test_forged_nonce(self):
        # the right shape (40 bytes: random, time, MAC) under another key
        raw = secrets.token_bytes(16) + int(time.time()).to_bytes(8, "big")
        forged = b64u(raw + hmac.new(secrets.token_bytes(32), raw, hashlib.sha256).digest()[:16])
        self.assertEqual(len(forged), len(self.c.new_nonce()))
        r = self.c.post(self.c.directory()["newOrder"],
                        {"identifiers": [{"type": "dns", "value": "a." + self.domain}]},
                        nonce=forged)
        self.assertProblem(r, 400, "badNonce")

    def test_url_mismatch(self):
        url = self.c.directory()["newOrder"]
        body = self.c.jws(url + "x", {"identifiers": [{"type": "dns", "value": "a." + self.domain}]})
        r = self.c.post_raw(url, body)
        self.assertProblem(r, 403, "unauthorized")

    def test_alg_none(self):
        url = self.c.directory()["newOrder"]
        prot = b64u(json.dumps({"alg": "none", "nonce": self.c.new_nonce(), "url": url,
                                "kid": self.c.kid}))
        pl = b64u(json.dumps({"identifiers": [{"type": "dns", "value": "a." + self.domain}]}))
        body = json.dumps({"protected": prot, "payload": pl, "signature": ""}).encode()
        r = self.c.post_raw(url, body)
        self.assertProblem(r, 400, "badSignatureAlgorithm")
        self.assertIn("ES256", r.json["algorithms"])
        # HS256 outside EAB likewise
        body = self.c.jws(url, {}, alg="HS256")
        r = self.c.post_raw(url, body)
        self.assertProblem(r, 400, "badSignatureAlgorithm")

    def test_jwk_and_kid(self):
        url = self.c.directory()["newOrder"]
        body = self.c.jws(url, {"identifiers": [{"type": "dns", "value": "a." + self.domain}]},
                          protected_extra={"jwk": self.c.key.jwk()})
        r = self.c.post_raw(url, body)
        self.assertProblem(r, 400, "malformed")

    def test_unknown_kid(self):
        url = self.c.directory()["newOrder"]
        kid = self.c.prefix + "/acct/987654321"
        body = self.c.jws(url, {"identifiers": [{"type": "dns", "value": "a." + self.domain}]},
                          kid=kid)
        r = self.c.post_raw(url, body)
        self.assertProblem(r, 400, "accountDoesNotExist")
        # an account of another endpoint is not one of this endpoint's
        body = self.c.jws(url, {}, kid=self.c.kid.replace(self.fast["name"], self.slow["name"]))
        r = self.c.post_raw(url, body)
        self.assertProblem(r, 400, "accountDoesNotExist")
        # jwk where kid is needed
        r = self.c.post(url, {}, use_jwk=True)
        self.assertProblem(r, 400, "malformed")

    def test_wrong_content_type(self):
        url = self.c.directory()["newOrder"]
        body = self.c.jws(url, {"identifiers": [{"type": "dns", "value": "a." + self.domain}]})
        r = self.c.post_raw(url, body, content_type="application/json")
        self.assertProblem(r, 415, "malformed")

    def test_bad_signature(self):
        url = self.c.directory()["newOrder"]
        body = json.loads(self.c.jws(url, {"identifiers": [{"type": "dns",
                                                             "value": "a." + self.domain}]}))
        body["signature"] = b64u(Key("ec").sign(b"something else"))
        r = self.c.post_raw(url, json.dumps(body).encode())
        self.assertProblem(r, 400, "malformed")

    def test_another_accounts_objects(self):
        other = self.client()
        r = other.new_order(["o." + self.domain])
        self.assertEqual(r.status, 201, r)
        o = r.json
        f = other.finalize(o, make_csr(Key("ec"), ["o." + self.domain]))
        self.assertEqual(f.status, 200, f)
        self.before = counts(self.d)
        for url in (r.headers["location"], o["authorizations"][0], f.json["certificate"],
                    other.kid, other.kid + "/orders"):
            g = self.c.get(url)
            self.assertProblem(g, 404, "malformed")
        g = self.c.finalize(o, make_csr(Key("ec"), ["o." + self.domain]))
        self.assertProblem(g, 404, "malformed")

    def test_csr_with_extra_name(self):
        r = self.c.new_order(["e." + self.domain])
        self.assertEqual(r.status, 201, r)
        self.before = counts(self.d)
        f = self.c.finalize(r.json, make_csr(Key("ec"), ["e." + self.domain,
                                                         "extra." + self.domain]))
        self.assertProblem(f, 400, "badCSR")
        f = self.c.finalize(r.json, make_csr(Key("ec"), ["e." + self.domain],
                                             cn="other." + self.domain))
        self.assertProblem(f, 400, "badCSR")
        # the account key as certificate key
        f = self.c.finalize(r.json, make_csr(self.c.key, ["e." + self.domain]))
        self.assertProblem(f, 400, "badCSR")
        o = self.c.get(r.headers["location"])
        self.assertEqual(o.json["status"], "ready", o)

    def test_csr_bad_signature_and_weak_key(self):
        names = ["sig." + self.domain]
        r = self.c.new_order(names)
        self.assertEqual(r.status, 201, r)
        self.before = counts(self.d)
        der = bytearray(make_csr(Key("ec"), names))
        der[-1] ^= 0x01  # the last byte is in the signature
        f = self.c.finalize(r.json, bytes(der))
        self.assertProblem(f, 400, "badCSR")
        weak = Key("ec")
        weak.priv = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        weak.kind = "rsa"
        f = self.c.finalize(r.json, make_csr(weak, names))
        self.assertProblem(f, 400, "badCSR")
        f = self.c.finalize(r.json, b"not a csr")
        self.assertProblem(f, 400, "badCSR")
        o = self.c.get(r.headers["location"])
        self.assertEqual(o.json["status"], "ready", o)

    def test_csr_missing_name(self):
        r = self.c.new_order(["m1." + self.domain, "m2." + self.domain])
        self.assertEqual(r.status, 201, r)
        self.before = counts(self.d)
        f = self.c.finalize(r.json, make_csr(Key("ec"), ["m1." + self.domain]))
        self.assertProblem(f, 400, "badCSR")

    def test_finalize_before_ready(self):
        c = self.client(endpoint=self.slow)
        r = c.new_order(["nr." + self.domain])
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "pending")
        self.before = counts(self.d)
        f = c.finalize(r.json, make_csr(Key("ec"), ["nr." + self.domain]))
        self.assertProblem(f, 403, "orderNotReady")

    def test_eab_wrong_mac(self):
        c = AcmeClient(self.d, self.fast["name"])
        kid, _ = self.fast_eab
        r = c.register(eab=(kid, b64u(secrets.token_bytes(32))))
        self.assertProblem(r, 403, "unauthorized")
        r = c.register(eab=None)
        self.assertProblem(r, 400, "externalAccountRequired")
        r = c.register(eab=("no-such-kid", self.fast_eab[1]))
        self.assertProblem(r, 403, "unauthorized")
        # the key of the other endpoint does not bind here
        r = c.register(eab=self.slow_eab)
        self.assertProblem(r, 403, "unauthorized")
        r = c.post(c.directory()["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
        self.assertProblem(r, 400, "accountDoesNotExist")

    def test_revoked_eab_key(self):
        kid, mac = make_eab(self.d, int(self.fast["id"]))
        et.expect(self.d.api("DELETE", "/api/v1/endpoints/%d/eab-keys/%s"
                             % (int(self.fast["id"]), kid)), 200)
        c = AcmeClient(self.d, self.fast["name"])
        r = c.register(eab=(kid, mac))
        self.assertProblem(r, 403, "unauthorized")

    def test_name_outside_delegation(self):
        names = ["ok." + self.domain, "www.not-delegated-%s.test" % secrets.token_hex(2),
                 "bad_name!", "10.0.0.1"]
        r = self.c.new_order(names[:3])
        self.assertProblem(r, 400, "rejectedIdentifier")
        subs = r.json["subproblems"]
        self.assertEqual(sorted(s["identifier"]["value"] for s in subs),
                         sorted(names[1:3]))
        for s in subs:
            self.assertEqual(s["type"], P + "rejectedIdentifier")
        by = {s["identifier"]["value"]: s for s in subs}
        self.assertIn("name_not_delegated", by[names[1]]["detail"])
        self.assertIn("name_invalid", by["bad_name!"]["detail"])
        # an address not delegated, and an unsupported type
        r = self.c.post(self.c.directory()["newOrder"], {"identifiers": [
            {"type": "ip", "value": "198.51.100.7"}, {"type": "email", "value": "a@b.c"}]})
        self.assertProblem(r, 400, "rejectedIdentifier")
        types = sorted(s["type"] for s in r.json["subproblems"])
        self.assertEqual(types, [P + "rejectedIdentifier", P + "unsupportedIdentifier"])
        # a wildcard only as the whole leftmost label
        r = self.c.new_order(["*.*." + self.domain])
        self.assertProblem(r, 400, "rejectedIdentifier")

    def test_malformed_payloads(self):
        url = self.c.directory()["newOrder"]
        for payload in ({}, {"identifiers": []}, {"identifiers": "x"},
                        {"identifiers": [{"type": "dns"}]}):
            r = self.c.post(url, payload)
            self.assertProblem(r, 400, "malformed")
        r = self.c.post_raw(url, b"{not json")
        self.assertProblem(r, 400, "malformed")
        r = self.c.post_raw(url, b"x" * (70 * 1024))
        self.assertProblem(r, 400, "malformed")


class AcmeBusyAccountTest(AcmeBase):
    """An ES256 account that has made 64 verified requests gets a table for
    its key (core/ecverify.c, built aside); after that it still verifies
    exactly as before: its own signatures (and their high-s twins, valid
    ECDSA) pass, forged, bit-flipped and other keys' do not and write
    nothing, and after a key change the old key no longer signs."""

    TABLE_LOG = "its verification table is built"

    def test_table_after_64_requests(self):
        c = self.client()
        o, _, _ = self.issue(c, ["busy." + self.domain])
        order_url = o["finalize"].rsplit("/", 1)[0]
        for _ in range(70):
            r = c.get(order_url)
            self.assertEqual(r.status, 200, r)
        for _ in range(100):
            if self.TABLE_LOG in self.d.log:
                break
            time.sleep(0.05)
        self.assertIn(self.TABLE_LOG, self.d.log)
        before = counts(self.d)
        url = c.directory()["newOrder"]
        payload = {"identifiers": [{"type": "dns", "value": "busy2." + self.domain}]}
        # another key's signature, a flipped bit, a signature over other bytes
        body = json.loads(c.jws(url, payload))
        body["signature"] = b64u(Key("ec").sign(
            ("%s.%s" % (body["protected"], body["payload"])).encode()))
        self.assertProblem(c.post_raw(url, json.dumps(body).encode()), 400, "malformed")
        for i in (0, 31, 32, 63):
            body = json.loads(c.jws(url, payload))
            sig = bytearray(b64u_dec(body["signature"]))
            sig[i] ^= 0x01
            body["signature"] = b64u(bytes(sig))
            self.assertProblem(c.post_raw(url, json.dumps(body).encode()), 400, "malformed")
        body = json.loads(c.jws(url, payload))
        body["signature"] = b64u(c.key.sign(b"something else"))
        self.assertProblem(c.post_raw(url, json.dumps(body).encode()), 400, "malformed")
        self.assertNothingStored(before)
        # the high-s twin of a good signature is valid ECDSA: accepted
        n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        body = json.loads(c.jws(order_url, None))
        sig = b64u_dec(body["signature"])
        s = int.from_bytes(sig[32:], "big")
        body["signature"] = b64u(sig[:32] + (n - s).to_bytes(32, "big"))
        r = c.post_raw(order_url, json.dumps(body).encode())
        self.assertEqual(r.status, 200, r)
        # a complete issuance with the table
        self.issue(c, ["busy3." + self.domain])
        # key change: the old key (the one with the table) signs no more
        old, new = c.key, Key("ec")
        kc = c.directory()["keyChange"]
        r = c.post(kc, key_change_inner(kc, c.kid, old, new))
        self.assertEqual(r.status, 200, r)
        before = counts(self.d)
        self.assertProblem(c.new_order(["busy4." + self.domain]), 400, "malformed")
        self.assertNothingStored(before)
        c.key = new
        self.assertEqual(c.new_order(["busy4." + self.domain]).status, 201)


class AcmeDerivedAuthzTest(AcmeBase):
    """Authorizations of an order whose names were all validated beforehand
    are derived from the order (authz/<order public id>.<index>), not
    stored (migration 009)."""

    def order_row(self, resp):
        pid = resp.headers["location"].rsplit("/", 1)[1]
        return self.d.sql("SELECT id, status, authzs_derived, authzs_deactivated"
                          " FROM acme_orders WHERE public_id = '%s'" % pid)[0]

    def test_same_answer_as_a_stored_authorization(self):
        """A derived authorization answers byte for byte what the row that
        newOrder stored before migration 009 answers (status, expires,
        identifier, wildcard, challenges []): the order is rewritten into
        that old form and read again."""
        c = self.client()
        names = ["same." + self.domain, "*." + self.domain, "ip:" + self.ip]
        before = counts(self.d)
        r = c.new_order(names)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "ready")
        self.assertEqual(counts(self.d)["acme_authzs"], before["acme_authzs"])
        oid, _, derived, _ = self.order_row(r)
        self.assertEqual(derived, "t")
        pid = r.headers["location"].rsplit("/", 1)[1]
        self.assertEqual(r.json["authorizations"],
                         ["%s/authz/%s.%d" % (c.prefix, pid, i) for i in range(3)])
        derived_bodies = []
        for i, az in enumerate(r.json["authorizations"]):
            a = c.get(az)
            self.assertEqual(a.status, 200, a)
            self.assertEqual(a.json["status"], "valid")
            self.assertEqual(a.json["challenges"], [])
            self.assertNotIn("retry-after", a.headers)
            derived_bodies.append(a.body)
        ident = [json.loads(b)["identifier"] for b in derived_bodies]
        self.assertEqual(ident, [{"type": "dns", "value": "same." + self.domain},
                                 {"type": "dns", "value": self.domain},
                                 {"type": "ip", "value": self.ip}])
        self.assertIs(json.loads(derived_bodies[1])["wildcard"], True)
        self.assertNotIn("wildcard", json.loads(derived_bodies[0]))
        # the order's URL list is the same as the order's own answer
        self.assertEqual(c.get(r.headers["location"]).json["authorizations"],
                         r.json["authorizations"])
        # the old form: one valid row per identifier, as the no-challenge
        # order create inserted them
        self.d.sql("UPDATE acme_orders SET authzs_derived = false WHERE id = %s" % oid)
        rows = [("old%s0" % pid[:12], "dns", "same." + self.domain, "false"),
                ("old%s1" % pid[:12], "dns", self.domain, "true"),
                ("old%s2" % pid[:12], "ip", self.ip, "false")]
        for public_id, typ, value, wildcard in rows:
            self.d.sql("INSERT INTO acme_authzs (public_id, order_id, account_id, status,"
                       " id_type, id_value, wildcard, expires_at) SELECT '%s', o.id,"
                       " o.account_id, 'valid', '%s', '%s', %s, o.expires_at FROM acme_orders o"
                       " WHERE o.id = %s" % (public_id, typ, value, wildcard, oid))
        o = c.get(r.headers["location"])
        self.assertEqual(o.json["authorizations"],
                         ["%s/authz/%s" % (c.prefix, row[0]) for row in rows])
        for az, body in zip(o.json["authorizations"], derived_bodies):
            a = c.get(az)
            self.assertEqual(a.status, 200, a)
            self.assertEqual(a.body, body)
        # an order of the old form has no derived authorizations
        self.assertProblem(c.get(r.json["authorizations"][0]), 404, "malformed")
        # and still finalizes
        f = c.finalize(o.json, make_csr(Key("ec"), names))
        self.assertEqual(f.status, 200, f)
        self.assertEqual(f.json["status"], "valid", f)

    def test_refusals_write_nothing(self):
        owner = self.client()
        r = owner.new_order(["mine." + self.domain])
        self.assertEqual(r.status, 201, r)
        pid = r.headers["location"].rsplit("/", 1)[1]
        az = r.json["authorizations"][0]
        self.assertEqual(az, "%s/authz/%s.0" % (owner.prefix, pid))
        other = self.client()
        before, row = counts(self.d), self.order_row(r)
        # what an unknown stored authorization answers
        unknown = owner.get("%s/authz/%s" % (owner.prefix, "A" * 22))
        self.assertProblem(unknown, 404, "malformed")
        for bad in (pid + ".1", pid + ".99", pid + ".100", pid + ".01", pid + ".-1",
                    pid + ".+0", pid + ".", pid + ".0.0", pid + "..0", pid[:-1] + ".0",
                    pid + "A.0", pid[:-1] + "!.0", ".0", "A" * 22 + ".0"):
            g = owner.get("%s/authz/%s" % (owner.prefix, bad))
            self.assertProblem(g, 404, "malformed")
            self.assertEqual(g.json, unknown.json, bad)
            d = owner.post("%s/authz/%s" % (owner.prefix, bad), {"status": "deactivated"})
            self.assertProblem(d, 404, "malformed")
        # another account: 404, for reading and for deactivating
        g = other.get(az)
        self.assertProblem(g, 404, "malformed")
        self.assertEqual(g.json, unknown.json)
        self.assertProblem(other.post(az, {"status": "deactivated"}), 404, "malformed")
        # the owner, with a status other than deactivated
        self.assertProblem(owner.post(az, {"status": "valid"}), 400, "malformed")
        self.assertEqual(counts(self.d), before)
        self.assertEqual(self.order_row(r), row)
        self.assertEqual(row[1:], ("ready", "t", None))
        self.assertEqual(owner.get(az).json["status"], "valid")

    def test_deactivation(self):
        c = self.client()
        names = ["d1." + self.domain, "d2." + self.domain]
        r = c.new_order(names)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["status"], "ready")
        before = counts(self.d)
        d = c.post(r.json["authorizations"][1], {"status": "deactivated"})
        self.assertEqual(d.status, 200, d)
        self.assertEqual(d.json["status"], "deactivated")
        self.assertEqual(d.json["identifier"], {"type": "dns", "value": names[1]})
        # remembered in the order row, the order invalid, no row added
        self.assertEqual(self.order_row(r)[1:], ("invalid", "t", "{1}"))
        self.assertEqual(counts(self.d), before)
        self.assertEqual(c.get(r.json["authorizations"][1]).json["status"], "deactivated")
        self.assertEqual(c.get(r.json["authorizations"][0]).json["status"], "valid")
        o = c.get(r.headers["location"])
        self.assertEqual(o.json["status"], "invalid", o)
        # once only
        again = c.post(r.json["authorizations"][1], {"status": "deactivated"})
        self.assertProblem(again, 400, "malformed")
        self.assertEqual(self.order_row(r)[1:], ("invalid", "t", "{1}"))
        # the other one is still valid, so it can be deactivated too
        d = c.post(r.json["authorizations"][0], {"status": "deactivated"})
        self.assertEqual(d.status, 200, d)
        self.assertEqual(self.order_row(r)[1:], ("invalid", "t", "{1,0}"))
        # a finalize afterwards issues nothing
        f = c.finalize(r.json, make_csr(Key("ec"), names))
        self.assertProblem(f, 403, "orderNotReady")
        self.assertEqual(counts(self.d), before)

    def test_deactivation_after_issuance(self):
        """As for a stored authorization: a valid order stays valid."""
        c = self.client()
        names = ["di." + self.domain]
        order, _, _ = self.issue(c, names)
        d = c.post(order["authorizations"][0], {"status": "deactivated"})
        self.assertEqual(d.status, 200, d)
        self.assertEqual(d.json["status"], "deactivated")
        pid = order["finalize"].split("/")[-2]
        self.assertEqual(self.d.sql("SELECT status, authzs_deactivated FROM acme_orders"
                                    " WHERE public_id = '%s'" % pid)[0], ("valid", "{0}"))


class AcmeDerivedAuthzUpgradeTest(AcmeBase):

    def test_migration_009_on_orders_with_rows(self):
        """Migration 009 on a database holding orders with authorization
        rows (before 009 every order had them): they keep working."""
        d = self.d
        c = self.client()
        slow = self.client(endpoint=self.slow)
        names = ["up." + self.domain]
        ready = c.new_order(names)
        self.assertEqual(ready.status, 201, ready)
        pending = slow.new_order(["up-p." + self.domain])
        self.assertEqual(pending.status, 201, pending)
        pid = ready.headers["location"].rsplit("/", 1)[1]
        d.stop()
        # the ready order as newOrder stored it before 009: one valid row
        d.sql("INSERT INTO acme_authzs (public_id, order_id, account_id, status, id_type,"
              " id_value, wildcard, expires_at) SELECT 'up%s', o.id, o.account_id, 'valid',"
              " 'dns', '%s', false, o.expires_at FROM acme_orders o WHERE o.public_id = '%s'"
              % (pid[:20], names[0], pid))
        d.sql("ALTER TABLE acme_orders DROP COLUMN authzs_derived,"
              " DROP COLUMN authzs_deactivated;"
              " DELETE FROM schema_migrations WHERE name LIKE '009%'")
        d.start()
        self.assertEqual(d.count("schema_migrations", "name LIKE '009%'"), 1)
        self.assertEqual(d.count("acme_orders", "authzs_derived"), 0)
        c.nonce = slow.nonce = None
        o = c.get(ready.headers["location"])
        self.assertEqual(o.json["status"], "ready", o.json)
        self.assertEqual(o.json["authorizations"], ["%s/authz/up%s" % (c.prefix, pid[:20])])
        self.assertEqual(c.get(o.json["authorizations"][0]).json["status"], "valid")
        p = slow.get(pending.headers["location"])
        self.assertEqual(p.json["authorizations"], pending.json["authorizations"])
        a = slow.get(p.json["authorizations"][0])
        self.assertEqual(a.json["status"], "pending", a.json)
        self.assertTrue(a.json["challenges"], a.json)
        f = c.finalize(o.json, make_csr(Key("ec"), names))
        self.assertEqual(f.status, 200, f)
        self.assertEqual(f.json["status"], "valid", f.json)
        # and a new order of validated names has derived authorizations
        r = c.new_order(["up2." + self.domain])
        self.assertEqual(r.status, 201, r)
        self.assertTrue(r.json["authorizations"][0].endswith(
            "/authz/%s.0" % r.headers["location"].rsplit("/", 1)[1]))


class AcmeAdminTest(AcmeBase):
    """The admin routes of the ACME door: EAB keys and accounts, in scope."""

    def make_admin(self, role, org_id, dept_id=None):
        body = {"login": "%s-%s" % (role, secrets.token_hex(4)), "email": "a@example.org",
                "role": role, "cert_types": ["ssl"], "org_id": org_id}
        if dept_id:
            body["dept_id"] = dept_id
        admin = et.expect(self.d.api("POST", "/api/v1/admins", body), 201)
        tok = et.expect(self.d.api("POST", "/api/v1/admins/%d/tokens" % admin["id"],
                                   {"description": "acme test"}), 201)
        return tok["token"]

    def test_eab_keys_and_accounts_in_scope(self):
        d = self.d
        ep = int(self.fast["id"])
        rao = self.make_admin("rao", self.t["org_id"])
        other = et.setup_tenant(d, domain="adm-%s.test" % secrets.token_hex(3))
        stranger = self.make_admin("rao", other["org_id"])
        # the RAO of the organization makes a key for its department
        r = d.api("POST", "/api/v1/endpoints/%d/eab-keys" % ep, {"dept_id": self.t["dept_id"]},
                  token=rao)
        key = et.expect(r, 201)
        self.assertEqual(key["org_id"], self.t["org_id"])
        self.assertEqual(key["dept_id"], self.t["dept_id"])
        self.assertEqual(len(b64u_dec(key["hmac_key"])), 32)
        audit = d.sql("SELECT count(*) FROM audit_log WHERE action = 'acme.eab_key.create'"
                      " AND details->>'kid' = '%s'" % key["kid"])[0][0]
        self.assertEqual(audit, "1")
        self.assertEqual(d.count("audit_log", "details::text LIKE '%%%s%%'" % key["hmac_key"]), 0)
        # an account registered with it belongs to the department
        c = AcmeClient(d, self.fast["name"])
        self.assertEqual(c.register(eab=(key["kid"], key["hmac_key"])).status, 201)
        acct = int(c.kid.rsplit("/", 1)[1])
        self.assertEqual(d.sql("SELECT org_id, dept_id FROM acme_accounts WHERE id = %d" % acct)[0],
                         (str(self.t["org_id"]), str(self.t["dept_id"])))
        lst = et.expect(d.api("GET", "/api/v1/acme-accounts?endpoint_id=%d" % ep, token=rao), 200)
        self.assertIn(acct, [a["id"] for a in lst["items"]])
        mine = [a for a in lst["items"] if a["id"] == acct][0]
        self.assertEqual(mine["eab_kid"], key["kid"])
        # another organization's RAO sees neither the endpoint nor its keys
        before = d.count("acme_eab_keys")
        for method, path, body in (
                ("GET", "/api/v1/endpoints/%d/eab-keys" % ep, None),
                ("POST", "/api/v1/endpoints/%d/eab-keys" % ep, {}),
                ("DELETE", "/api/v1/endpoints/%d/eab-keys/%s" % (ep, key["kid"]), None),
                ("GET", "/api/v1/acme-accounts?endpoint_id=%d" % ep, None)):
            r = d.api(method, path, body, token=stranger)
            self.assertEqual(r.status, 404, (method, path, r))
        self.assertEqual(d.count("acme_eab_keys"), before)
        self.assertEqual(d.count("acme_eab_keys", "revoked_at IS NOT NULL AND kid = '%s'"
                                 % key["kid"]), 0)
        lst = et.expect(d.api("GET", "/api/v1/acme-accounts", token=stranger), 200)
        self.assertNotIn(acct, [a["id"] for a in lst["items"]])
        # a key for another organization at this (organization's) endpoint: refused
        r = d.api("POST", "/api/v1/endpoints/%d/eab-keys" % ep, {"org_id": other["org_id"]})
        self.assertEqual(r.status, 400, r)
        # revocation: the key binds no further account
        r = et.expect(d.api("DELETE", "/api/v1/endpoints/%d/eab-keys/%s" % (ep, key["kid"]),
                            token=rao), 200)
        self.assertIsNotNone(r["revoked_at"])
        c2 = AcmeClient(d, self.fast["name"])
        self.assertProblem(c2.register(eab=(key["kid"], key["hmac_key"])), 403, "unauthorized")
        # accounts bound before keep working
        self.assertEqual(c.new_order(["adm." + self.domain]).status, 201)


class AcmeUpgradeTest(AcmeBase):
    """Orders finalized before migration 003 (which made an order follow its
    certificate row in the same transaction) are settled once by it: an
    issued order whose own update was lost becomes valid, a held one whose
    request was declined since becomes invalid with the reason. The schema
    is taken back to 002 by hand, the rows put in that state, and the
    daemon restarted to migrate again."""

    def test_migration_003_settles_older_orders(self):
        d = self.d
        t = et.setup_tenant(d, domain="upg-%s.test" % secrets.token_hex(3),
                            requires_approval=True)
        validate_domain(d, t["domain_id"])
        ep = make_endpoint(d, t, settings={"skip_challenges_when_dcv_validated": True})
        c = AcmeClient(d, ep["name"])
        self.assertEqual(c.register(eab=make_eab(d, int(ep["id"]))).status, 201)
        # a held order, and one whose request an administrator approves (issued)
        urls = {}
        for tag in ("held", "issued"):
            names = ["%s.%s" % (tag, t["domain"])]
            r = c.new_order(names)
            self.assertEqual(r.status, 201, r)
            f = c.finalize(r.json, make_csr(Key("ec"), names))
            self.assertEqual(f.json["status"], "processing", f.json)
            urls[tag] = r.headers["location"]
        pid = {k: v.rsplit("/", 1)[1] for k, v in urls.items()}
        cert = {k: int(d.sql("SELECT certificate_id FROM acme_orders WHERE public_id = '%s'"
                             % v)[0][0]) for k, v in pid.items()}
        et.expect(d.api("POST", "/api/v1/certificates/%d/approve" % cert["issued"], {}), 200, 201)
        d.stop()
        # back to the schema of 002, with the orders as a 002 daemon left them
        # (as far as 003 and 004 go: 006 already dropped the INSERT trigger,
        # and stays applied)
        d.sql("DROP TRIGGER IF EXISTS acme_order_follow_certificate ON certificates;"
              " DROP TRIGGER acme_order_follow_certificate_decision ON certificates;"
              " DROP FUNCTION acme_order_follow_certificate();"
              " ALTER TABLE acme_orders DROP COLUMN replaces_certificate_id;"
              " ALTER TABLE acme_orders RESET (fillfactor);"
              " CREATE INDEX acme_orders_certificate_idx ON acme_orders (certificate_id)"
              " WHERE certificate_id IS NOT NULL;"
              " DELETE FROM schema_migrations WHERE name LIKE '003%' OR name LIKE '004%'")
        d.sql("UPDATE acme_orders SET status = 'ready', certificate_id = NULL"
              " WHERE public_id = '%s'" % pid["issued"])
        d.sql("UPDATE acme_orders SET status = 'processing' WHERE public_id = '%s'"
              % pid["held"])
        d.sql("UPDATE certificates SET status = 'declined', decline_reason = 'not in 2026'"
              " WHERE id = %d" % cert["held"])
        self.assertEqual(d.sql("SELECT status FROM acme_orders WHERE public_id = '%s'"
                               % pid["issued"])[0][0], "ready")
        d.start()
        self.assertEqual(d.count("schema_migrations", "name LIKE '003%' OR name LIKE '004%'"), 2)
        rows = dict((r[0], r[1:]) for r in d.sql(
            "SELECT public_id, status, certificate_id, error->>'type', error->>'detail'"
            " FROM acme_orders WHERE public_id IN ('%s', '%s')" % (pid["issued"], pid["held"])))
        self.assertEqual(rows[pid["issued"]][:2], ("valid", str(cert["issued"])))
        self.assertEqual(rows[pid["held"]][0], "invalid")
        self.assertEqual(rows[pid["held"]][2], P + "unauthorized")
        self.assertIn("not in 2026", rows[pid["held"]][3])
        # and the client sees the same
        c.nonce = None
        o = c.get(urls["issued"])
        self.assertEqual(o.json["status"], "valid", o.json)
        self.assertEqual(c.get(o.json["certificate"]).status, 200)
        self.assertEqual(c.get(urls["held"]).json["status"], "invalid")


class AcmeApprovalTest(AcmeBase):

    def test_order_processing_until_approved(self):
        d = self.d
        t = et.setup_tenant(d, domain="appr-%s.test" % secrets.token_hex(3),
                            requires_approval=True)
        validate_domain(d, t["domain_id"])
        ep = make_endpoint(d, t, settings={"skip_challenges_when_dcv_validated": True})
        c = AcmeClient(d, ep["name"])
        self.assertEqual(c.register(eab=make_eab(d, int(ep["id"]))).status, 201)
        names = ["www." + t["domain"]]
        r = c.new_order(names)
        self.assertEqual(r.status, 201, r)
        order_url = r.headers["location"]
        f = c.finalize(r.json, make_csr(Key("ec"), names))
        self.assertEqual(f.status, 200, f)
        self.assertEqual(f.json["status"], "processing", f.json)
        self.assertEqual(f.headers["retry-after"], "3")
        self.assertNotIn("certificate", f.json)
        o = c.get(order_url)
        self.assertEqual(o.json["status"], "processing")
        self.assertIn("retry-after", o.headers)
        cert_id = int(d.sql("SELECT certificate_id FROM acme_orders WHERE public_id = '%s'"
                            % order_url.rsplit("/", 1)[1])[0][0])
        self.assertEqual(d.sql("SELECT status FROM certificates WHERE id = %d" % cert_id)[0][0],
                         "requested")
        et.expect(d.api("POST", "/api/v1/certificates/%d/approve" % cert_id, {}), 200, 201)
        o = c.get(order_url)
        self.assertEqual(o.json["status"], "valid", o)
        dl = c.get(o.json["certificate"])
        self.assertEqual(dl.status, 200, dl)
        ok, out = et.openssl_verify(pem_certs(dl.text)[0], d.root_pem,
                                    untrusted_pem=pem_certs(dl.text)[1], tmpdir=self.tmp)
        self.assertTrue(ok, out)

        # declined: the order becomes invalid with the reason
        r = c.new_order(["dec." + t["domain"]])
        f = c.finalize(r.json, make_csr(Key("ec"), ["dec." + t["domain"]]))
        self.assertEqual(f.json["status"], "processing", f.json)
        cert_id = int(d.sql("SELECT certificate_id FROM acme_orders WHERE public_id = '%s'"
                            % r.headers["location"].rsplit("/", 1)[1])[0][0])
        et.expect(d.api("POST", "/api/v1/certificates/%d/decline" % cert_id,
                        {"reason": "not today"}), 200)
        o = c.get(r.headers["location"])
        self.assertEqual(o.json["status"], "invalid", o)
        self.assertEqual(o.json["error"]["type"], P + "unauthorized")
        self.assertIn("not today", o.json["error"]["detail"])


class AcmeReplacesTest(AcmeBase):
    """RFC 9773 §5: newOrder "replaces"."""

    def order_row(self, resp):
        return self.d.sql("SELECT replaces, replaces_certificate_id FROM acme_orders"
                          " WHERE public_id = '%s'" % resp.headers["location"].rsplit("/", 1)[1])[0]

    def test_replace_own_certificate_once(self):
        c = self.client()
        names = ["rep." + self.domain]
        _, chain, _ = self.issue(c, names)
        cid = ari_cert_id(chain)
        serial = "%X" % x509.load_der_x509_certificate(cert_der_of(chain)).serial_number
        cert_row = self.d.sql("SELECT id FROM certificates WHERE serial = '%s'" % serial)[0][0]

        r = c.new_order(names, {"replaces": cid})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["replaces"], cid)
        self.assertEqual(self.order_row(r), (cid, cert_row))
        g = c.get(r.headers["location"])
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json["replaces"], cid)
        # an order that replaces nothing says nothing about it
        plain = c.new_order(names)
        self.assertEqual(plain.status, 201, plain)
        self.assertNotIn("replaces", plain.json)

        # the first replacement is live (ready): a second one is refused
        before = counts(self.d)
        again = c.new_order(names, {"replaces": cid})
        self.assertProblem(again, 409, "alreadyReplaced")
        self.assertNothingStored(before)
        # ... also once the first replacement is valid (it did replace it)
        f = c.finalize(r.json, make_csr(Key("ec"), names))
        self.assertEqual(f.status, 200, f)
        self.assertEqual(f.json["status"], "valid", f.json)
        self.assertEqual(f.json["replaces"], cid)
        before = counts(self.d)
        self.assertProblem(c.new_order(names, {"replaces": cid}), 409, "alreadyReplaced")
        self.assertNothingStored(before)

    def test_invalid_or_expired_replacement_does_not_block(self):
        """A replacement order that reads invalid - expired before it was
        finalized, or an authorization deactivated - no longer holds the
        certificate: RFC 9773 counts only orders that are not invalid."""
        c = self.client()
        names = ["exp." + self.domain]
        _, chain, _ = self.issue(c, names)
        cid = ari_cert_id(chain)
        first = c.new_order(names, {"replaces": cid})
        self.assertEqual(first.status, 201, first)
        self.assertProblem(c.new_order(names, {"replaces": cid}), 409, "alreadyReplaced")
        # the first replacement expires unfinalized (stored status stays 'ready')
        self.d.sql("UPDATE acme_orders SET expires_at = now() - interval '1 second'"
                   " WHERE public_id = '%s'" % first.headers["location"].rsplit("/", 1)[1])
        self.assertEqual(c.get(first.headers["location"]).json["status"], "invalid")
        second = c.new_order(names, {"replaces": cid})
        self.assertEqual(second.status, 201, second)
        self.assertEqual(self.order_row(first)[1], None, "the expired order kept its claim")
        self.assertEqual(self.order_row(second)[0], cid)
        # the second one is invalidated by deactivating its authorization
        az = second.json["authorizations"][0]
        d = c.post(az, {"status": "deactivated"})
        self.assertEqual(d.status, 200, d)
        self.assertEqual(c.get(second.headers["location"]).json["status"], "invalid")
        third = c.new_order(names, {"replaces": cid})
        self.assertEqual(third.status, 201, third)
        self.assertEqual(self.d.count("acme_orders", "replaces_certificate_id IS NOT NULL"
                                      " AND replaces = '%s'" % cid), 1)

    def test_another_accounts_certificate(self):
        owner = self.client()
        names = ["theirs." + self.domain]
        _, chain, _ = self.issue(owner, names)
        cid = ari_cert_id(chain)
        thief = self.client()
        before = counts(self.d)
        r = thief.new_order(names, {"replaces": cid})
        self.assertProblem(r, 400, "malformed")
        self.assertIn("no certificate issued to this account", r.json["detail"])
        self.assertNothingStored(before)
        # and the owner may still replace it
        self.assertEqual(owner.new_order(names, {"replaces": cid}).status, 201)

    def test_no_shared_identifier(self):
        c = self.client()
        _, chain, _ = self.issue(c, ["one." + self.domain])
        before = counts(self.d)
        r = c.new_order(["other." + self.domain], {"replaces": ari_cert_id(chain)})
        self.assertProblem(r, 400, "malformed")
        self.assertIn("shares no identifier", r.json["detail"])
        self.assertNothingStored(before)

    def test_malformed_cert_ids(self):
        c = self.client()
        names = ["mal." + self.domain]
        _, chain, _ = self.issue(c, names)
        good = ari_cert_id(chain)
        aki, serial = good.split(".")
        sn = b64u_dec(serial)
        unknown = bytes([0x11]) * 16  # a serial we never issued
        cases = [
            123,                                   # not a string
            "",                                    # empty
            aki,                                   # no dot
            aki + ".",                             # no serial
            "." + serial,                          # no key identifier
            aki + "=." + serial,                   # padded
            aki + ".!!" + serial,                  # not base64url
            aki + "." + b64u(b"\x80" + sn[1:]),    # negative serial
            aki + "." + b64u(b"\x00" + sn),           # a redundant leading zero
            b64u(b"not our CA key id") + "." + serial,  # another CA
        ]
        before = counts(self.d)
        for bad in cases:
            r = c.new_order(names, {"replaces": bad})
            self.assertProblem(r, 400, "malformed")
        self.assertNothingStored(before)
        # well-formed, ours, but no such certificate
        r = c.new_order(names, {"replaces": aki + "." + b64u(unknown)})
        self.assertProblem(r, 400, "malformed")
        self.assertIn("no certificate issued to this account", r.json["detail"])
        self.assertNothingStored(before)

    def test_two_replacements_at_once(self):
        c = self.client()
        names = ["race2." + self.domain]
        _, chain, _ = self.issue(c, names)
        cid = ari_cert_id(chain)
        url = c.directory()["newOrder"]
        payload = {"identifiers": [{"type": "dns", "value": names[0]}], "replaces": cid}
        bodies = [c.jws(url, payload, nonce=c.new_nonce()) for _ in range(4)]
        results = [None] * len(bodies)
        before = counts(self.d)

        def go(i):
            results[i] = c.post_raw(url, bodies[i])
        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(res.status for res in results)
        self.assertEqual(statuses, [201, 409, 409, 409], results)
        for res in results:
            if res.status == 409:
                self.assertProblem(res, 409, "alreadyReplaced")
        after = counts(self.d)
        self.assertEqual(after["acme_orders"], before["acme_orders"] + 1)
        self.assertEqual(after["acme_authzs"], before["acme_authzs"] + 1)
        self.assertEqual(self.d.count("acme_orders", "replaces = '%s'" % cid), 1)


class AcmeNonceResetTest(AcmeBase):
    """PostgreSQL crashes: crash recovery empties the UNLOGGED acme_nonces, so
    which nonces were used is forgotten. The door must notice (the nonce
    key's sentinel row is gone; enrolld checks it once per connection, and
    crash recovery ends every connection) and refuse every nonce of the old
    key, then hand out nonces of a new one."""

    def test_crash_forgets_used_nonces_and_rotates_the_key(self):
        d = self.d
        c = self.client()
        url = c.directory()["newOrder"]
        payload = {"identifiers": [{"type": "dns", "value": "reset." + self.domain}]}
        spent = c.new_nonce()
        r = c.post(url, payload, nonce=spent)
        self.assertEqual(r.status, 201, r)
        unused = c.new_nonce()
        # every worker has a connection that has checked the sentinel
        for _ in range(2 * 4):
            r = c.post(url, payload)
            self.assertEqual(r.status, 201, r)
        key_before = d.sql("SELECT encode(value, 'hex') FROM acme_secrets WHERE name = 'nonce'")
        d.pg.stop("immediate")
        d.pg.start()
        self.assertEqual(d.sql("SELECT count(*) FROM acme_nonces")[0][0], "0",
                         "crash recovery did not empty acme_nonces: the test proves nothing")
        before = counts(d)
        # the spent nonce would be accepted again if nothing noticed the reset
        r = c.post(url, payload, nonce=spent)
        self.assertProblem(r, 400, "badNonce")
        r = c.post(url, payload, nonce=unused)
        self.assertProblem(r, 400, "badNonce")
        self.assertNothingStored(before)
        key_after = d.sql("SELECT encode(value, 'hex') FROM acme_secrets WHERE name = 'nonce'")
        self.assertNotEqual(key_after, key_before, "the nonce key was not replaced")
        # the new key's nonces work, once
        fresh = c.new_nonce()
        r = c.post(url, payload, nonce=fresh)
        self.assertEqual(r.status, 201, r)
        r = c.post(url, payload, nonce=fresh)
        self.assertProblem(r, 400, "badNonce")
        r = c.post(url, payload, nonce=spent)
        self.assertProblem(r, 400, "badNonce")


class AcmeTwoInstancesTest(AcmeBase):

    def second_instance(self):
        """A second enrolld on self.d's database and CA, started."""
        d1 = self.d
        ca = os.path.join(d1.state_dir, "ca")
        d2 = et.Enrolld(start=False, config_extra="[ca]\nca_root_cert = %s\n"
                        "ca_issuing_cert = %s\nca_issuing_key = %s\n"
                        % (os.path.join(ca, "root.pem"), os.path.join(ca, "issuing.pem"),
                           os.path.join(ca, "issuing.key")))
        self.addCleanup(d2.close)
        d2.share_database(d1)
        d2.start()
        return d2

    def test_key_change_and_deactivation_on_the_other_instance(self):
        """Instance A caches the parsed account key; a key rollover or a
        deactivation through instance B is honoured by A's next request
        (the stored thumbprint and status are read on every request)."""
        d1 = self.d
        d2 = self.second_instance()
        c = self.client(via=[d1])
        old = c.key
        # A parses and caches the old key (twice: the second is a cache hit)
        for name in ("kc1.", "kc2."):
            r = c.new_order([name + self.domain])
            self.assertEqual(r.status, 201, r)
        # the rollover goes through B only
        c.via, c.nonce = [d2], None
        new = Key("ec")
        url = c.directory()["keyChange"]
        r = c.post(url, key_change_inner(url, c.kid, old, new))
        self.assertEqual(r.status, 200, r)
        self.assertGreaterEqual(len(re.findall(r"POST /acme/\S+/key-change 200 ", d2.logs())), 1)
        # A refuses the old key, and writes nothing
        c.via, c.nonce = [d1], None
        before = counts(d1)
        r = c.new_order(["kc3." + self.domain])
        self.assertProblem(r, 400, "malformed")
        self.assertIn("signature", r.json.get("detail", ""), r)
        r = c.get(c.kid)
        self.assertProblem(r, 400, "malformed")
        self.assertNothingStored(before)
        # A takes the new key, for objects and for the account
        c.key = new
        r = c.new_order(["kc4." + self.domain])
        self.assertEqual(r.status, 201, r)
        r = c.get(r.headers["location"])
        self.assertEqual(r.status, 200, r)
        r = c.get(c.kid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["key"], new.jwk(), r)
        # deactivated through B: A refuses the (cached) key's account
        c.via, c.nonce = [d2], None
        r = c.post(c.kid, {"status": "deactivated"})
        self.assertEqual(r.status, 200, r)
        c.via, c.nonce = [d1], None
        before = counts(d1)
        r = c.new_order(["kc5." + self.domain])
        self.assertProblem(r, 403, "unauthorized")
        self.assertNothingStored(before)

    def test_alternating_instances(self):
        d1 = self.d
        d2 = self.second_instance()

        c = AcmeClient(d1, self.fast["name"], via=[d1, d2])
        r = c.register(eab=self.fast_eab)
        self.assertEqual(r.status, 201, r)
        names = ["two." + self.domain, "ip:" + self.ip]
        order, chain, _ = self.issue(c, names)
        self.assertGreaterEqual(c.turn, 6)
        certs = pem_certs(chain)
        ok, out = et.openssl_verify(certs[0], d1.root_pem, untrusted_pem=certs[1],
                                    tmpdir=self.tmp)
        self.assertTrue(ok, out)
        # a nonce from one instance is spent for the other too
        n = c.new_nonce()  # handed out by one instance
        url = c.directory()["newOrder"]
        payload = {"identifiers": [{"type": "dns", "value": "n." + self.domain}]}
        r1 = c.request("POST", url, c.jws(url, payload, nonce=n),
                       {"Content-Type": "application/jose+json"})
        self.assertEqual(r1.status, 201, r1)
        r2 = c.request("POST", url, c.jws(url, payload, nonce=n),
                       {"Content-Type": "application/jose+json"})
        self.assertProblem(r2, 400, "badNonce")
        # a derived authorization deactivated through one instance reads
        # deactivated through the other (remembered in the database)
        r = c.new_order(["two-d." + self.domain])
        self.assertEqual(r.status, 201, r)
        t0 = c.turn
        d = c.post(r.json["authorizations"][0], {"status": "deactivated"})
        self.assertEqual(d.status, 200, d)
        g = c.get(r.json["authorizations"][0])
        self.assertEqual(c.turn - t0, 2, "not one request per instance")
        self.assertEqual(g.json["status"], "deactivated", g)
        self.assertEqual(c.get(r.headers["location"]).json["status"], "invalid")
        # both instances really served ACME requests
        for d in (d1, d2):
            self.assertGreaterEqual(len(re.findall(r"POST /acme/\S+ 20[01] ", d.logs())), 3)


if __name__ == "__main__":
    et.main()
