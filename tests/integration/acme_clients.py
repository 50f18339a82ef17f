"""acme_clients: real ACME clients against enrolld's ACME door, for the tests
test_acme_certbot.py and test_acme_lego.py.

  ChallTestSrv   pebble-challtestsrv as the fake DNS server: answers every A
                 query with 127.0.0.1 (so the validator reaches the clients'
                 challenge servers on loopback) and serves the TXT records the
                 dns-01 hooks set through its management API.
  acme_config    the [acme] section pointing enrolld's validator at the test
                 ports and the fake DNS, private addresses allowed.
  AcmeTenant     org + department + delegated domain + profile + ACME endpoint
                 made through the admin API, and EAB keys bound to the
                 department.
  Certbot, Lego  one client state directory each; every run is a subprocess
                 in its own session with a timeout, killed (whole process
                 group) on timeout or when the test process dies.
  check_issued   openssl verify against enrolld's root with its issuing CA as
                 the untrusted intermediate, the chain the client got, the
                 names, and the subject O/OU against the tenant's.

Trust: the clients are told enrolld's root explicitly (REQUESTS_CA_BUNDLE for
certbot, LEGO_CA_CERTIFICATES for lego) and the global SSL_CERT_FILE /
REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE are overridden for every run.

Debian packages: certbot, lego, pebble (for pebble-challtestsrv).
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import enrolld_test as et

CLIENT_TIMEOUT = 150        # seconds one client run may take before it is killed
HOOK_PYTHON = sys.executable or "/usr/bin/python3"


def have_tools(*names):
    """The names in `names` that are not on PATH."""
    return [n for n in names if shutil.which(n) is None]


def free_port_tcp_udp():
    """A port free on 127.0.0.1 for both TCP and UDP a moment ago (DNS)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP")


def _wait_port(port, proc, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen on port %d" % (what, port))


def _kill_group(proc):
    """SIGKILL the process group of `proc` (started with a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


# --------------------------------------------------------------------------
# Fake DNS


class ChallTestSrv:
    """pebble-challtestsrv with only its DNS server (dns_port, UDP and TCP) and
    its management API (mgmt_port), both on 127.0.0.1. Every A query answers
    127.0.0.1, AAAA nothing; TXT records come from set_txt()."""

    def __init__(self, logdir):
        self.dns_port = free_port_tcp_udp()
        self.mgmt_port = et.free_port()
        self.log_path = os.path.join(logdir, "challtestsrv-%d.log" % self.dns_port)
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                ["pebble-challtestsrv",
                 "-dns01", "127.0.0.1:%d" % self.dns_port,
                 "-http01", "", "-https01", "", "-tlsalpn01", "",
                 "-management", "127.0.0.1:%d" % self.mgmt_port,
                 "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, cwd="/")
        finally:
            logf.close()
        et._Watchdog.get().send("kill", self.proc.pid, int(signal.SIGKILL))
        try:
            _wait_port(self.mgmt_port, self.proc, "pebble-challtestsrv")
            _wait_port(self.dns_port, self.proc, "pebble-challtestsrv (DNS over TCP)")
        except Exception:
            self.close()
            raise

    @property
    def resolver(self):
        return "127.0.0.1:%d" % self.dns_port

    @property
    def management_url(self):
        return "http://127.0.0.1:%d" % self.mgmt_port

    def _post(self, path, body):
        req = urllib.request.Request(self.management_url + path,
                                     data=json.dumps(body).encode(), method="POST")
        # plain HTTP on loopback: no proxy, no TLS trust involved
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as r:
            r.read()

    def set_txt(self, host, value):
        self._post("/set-txt", {"host": host.rstrip(".") + ".", "value": value})

    def clear_txt(self, host):
        self._post("/clear-txt", {"host": host.rstrip(".") + "."})

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc)
        et._Watchdog.get().send("forget", self.proc.pid)


# The dns-01 hook both clients run: sets / clears the TXT record through the
# management API whose URL is in CHALLTESTSRV_URL. certbot calls it with
# CERTBOT_DOMAIN / CERTBOT_VALIDATION in the environment (argv[1] says auth
# or cleanup); lego's exec provider calls it as `hook present|cleanup FQDN
# VALUE`. Every call is appended to HOOK_LOG so the tests can see it ran;
# HOOK_TXT_VALUE, when set, is published instead of the right value.
DNS_HOOK = r'''#!%(python)s
import json, os, sys, urllib.request
mode = sys.argv[1]
if len(sys.argv) >= 4:                   # lego: present|cleanup FQDN VALUE
    if mode not in ("present", "cleanup"):
        sys.exit(0)
    host, value = sys.argv[2], sys.argv[3]
    clear = mode == "cleanup"
else:                                    # certbot: auth|cleanup, names in the environment
    host = "_acme-challenge." + os.environ["CERTBOT_DOMAIN"] + "."
    value = os.environ.get("CERTBOT_VALIDATION", "")
    clear = mode == "cleanup"
body = {"host": host if host.endswith(".") else host + "."}
if not clear:
    # HOOK_TXT_VALUE: publish this instead (a test of a wrong record)
    body["value"] = os.environ.get("HOOK_TXT_VALUE") or value
url = os.environ["CHALLTESTSRV_URL"] + ("/clear-txt" if clear else "/set-txt")
req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10).read()
with open(os.environ["HOOK_LOG"], "a") as f:
    f.write("%%s %%s\n" %% ("clear" if clear else "set", body["host"]))
'''


def write_dns_hooks(directory):
    """Writes the dns-01 hook scripts into `directory`: returns (certbot auth
    hook command, certbot cleanup hook command, lego EXEC_PATH script)."""
    hook = os.path.join(directory, "dns-hook.py")
    with open(hook, "w") as f:
        f.write(DNS_HOOK % {"python": HOOK_PYTHON})
    os.chmod(hook, 0o755)
    # lego's exec provider passes "present"/"cleanup" itself
    lego = os.path.join(directory, "lego-exec.sh")
    with open(lego, "w") as f:
        f.write('#!/bin/sh\nexec "%s" "$@"\n' % hook)
    os.chmod(lego, 0o755)
    return hook + " auth", hook + " cleanup", lego


def acme_config(http_port, tls_port, dns):
    """The [acme] section: the validator contacts the test's http-01 and
    tls-alpn-01 ports, resolves through the fake DNS, may reach 127.0.0.1."""
    return ("[acme]\n"
            "validation_http_port = %d\n"
            "validation_tls_port = %d\n"
            "validation_dns_resolver = %s\n"
            "validation_allow_private = on\n"
            "validation_timeout = 10\n"
            "validation_workers = 2\n" % (http_port, tls_port, dns.resolver))


# --------------------------------------------------------------------------
# Tenant and endpoint through the admin API


class AcmeTenant:
    """An organization with a department, a domain delegated to the
    organization, an ssl profile (wildcards allowed), and an ACME endpoint
    requiring EAB whose names are always challenged. Attributes: t (the
    setup_tenant dict), domain, org_name, dept_name, endpoint (JSON),
    endpoint_id, name, directory."""

    def __init__(self, d, requires_approval=False, settings=None):
        self.d = d
        suffix = secrets.token_hex(4)
        self.domain = "acme-%s.test" % suffix
        self.t = et.setup_tenant(d, domain=self.domain, suffix=suffix,
                                 requires_approval=requires_approval,
                                 profile_extra={"allow_wildcards": True})
        self.org_name = "Org " + suffix
        self.dept_name = "Dept " + suffix
        self.name = "acme-" + suffix
        body = {"protocol": "acme", "name": self.name, "org_id": self.t["org_id"],
                "default_profile_id": self.t["profile_id"],
                "profile_ids": [self.t["profile_id"]],
                "settings": dict({"eab_required": True,
                                  "skip_challenges_when_dcv_validated": False},
                                 **(settings or {}))}
        self.endpoint = et.expect(d.api("POST", "/api/v1/endpoints", body), 201)
        self.endpoint_id = int(self.endpoint["id"])
        self.directory = "%s/acme/%s/directory" % (d.url, self.name)

    def eab(self, dept=True):
        """New EAB credentials (kid, hmac_key) bound to the department (or to
        the organization only)."""
        body = {"org_id": self.t["org_id"]}
        if dept:
            body["dept_id"] = self.t["dept_id"]
        key = et.expect(self.d.api("POST", "/api/v1/endpoints/%d/eab-keys" % self.endpoint_id,
                                   body), 201)
        return key["kid"], key["hmac_key"]

    def counts(self):
        """Rows of this tenant's ACME state and certificates."""
        d, org = self.d, self.t["org_id"]
        acct = "SELECT id FROM acme_accounts WHERE endpoint_id = %d" % self.endpoint_id
        row = d.sql(
            "SELECT (SELECT count(*) FROM acme_accounts WHERE endpoint_id = %d),"
            " (SELECT count(*) FROM acme_orders WHERE account_id IN (%s)),"
            " (SELECT count(*) FROM acme_authzs WHERE account_id IN (%s)),"
            " (SELECT count(*) FROM acme_challenges c JOIN acme_authzs a ON a.id = c.authz_id"
            "  WHERE a.account_id IN (%s)),"
            " (SELECT count(*) FROM certificates WHERE org_id = %d)"
            % (self.endpoint_id, acct, acct, acct, org))[0]
        return dict(zip(("accounts", "orders", "authzs", "challenges", "certificates"),
                        (int(x) for x in row)))


# --------------------------------------------------------------------------
# Running clients


class RealClientTestCase(et.EnrolldTestCase):
    """One enrolld set up for a real ACME client (CLIENT: the command name,
    PACKAGE: its Debian package): challenge ports of its own, a
    pebble-challtestsrv as the DNS server validation asks, an ACME tenant
    (cls.tenant), the DNS hook scripts (cls.auth_hook, cls.cleanup_hook,
    cls.exec_path) and their log (cls.hook_log). Subclasses add their
    client in client_setup(); everything is torn down on a failure."""

    CLIENT = None
    PACKAGE = None

    @classmethod
    def client_setup(cls):
        pass

    @classmethod
    def setUpClass(cls):
        missing = have_tools(cls.CLIENT, "pebble-challtestsrv", "openssl")
        if missing:
            raise RuntimeError("not installed: %s (Debian packages %s, pebble)"
                               % (", ".join(missing), cls.PACKAGE))
        cls.tmp_clients = et.make_tempdir("enrolld-%s-" % cls.CLIENT)
        cls.dns = ChallTestSrv(cls.tmp_clients)
        try:
            cls.http_port = et.free_port()
            cls.tls_port = et.free_port()
            cls.enrolld_args = {"config_extra": acme_config(cls.http_port, cls.tls_port,
                                                            cls.dns)}
            super().setUpClass()
            cls.tenant = AcmeTenant(cls.d)
            cls.hook_log = os.path.join(cls.tmp_clients, "hook.log")
            cls.auth_hook, cls.cleanup_hook, cls.exec_path = write_dns_hooks(cls.tmp_clients)
            cls.client_setup()
        except BaseException:
            cls.dns.close()
            if cls.d is not None:
                cls.d.close()
                cls.d = None
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.dns.close()


class ClientRun:
    """The outcome of one client run: rc, output (stdout + stderr), cmd."""

    def __init__(self, cmd, rc, output, seconds):
        self.cmd, self.rc, self.output, self.seconds = cmd, rc, output, seconds

    @property
    def ok(self):
        return self.rc == 0

    def __repr__(self):
        return "<%s rc=%s in %.1fs>\n%s" % (os.path.basename(self.cmd[0]), self.rc,
                                           self.seconds, et.tail(self.output, 40))


def run_client(cmd, env, cwd, timeout=CLIENT_TIMEOUT, on_start=None):
    """Runs `cmd` in a session of its own; kills the whole group on timeout
    (or when this process dies, through the harness watchdog). on_start(proc)
    runs once the process exists (e.g. to start an approver thread)."""
    t0 = time.time()
    out = tempfile.TemporaryFile(dir=cwd)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            env=env, cwd=cwd, start_new_session=True)
    et._Watchdog.get().send("kill", -proc.pid, int(signal.SIGKILL))
    try:
        if on_start:
            on_start(proc)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            rc = "timeout after %ds" % timeout
        else:
            # hooks or helpers left behind by the client
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
    finally:
        if proc.poll() is None:
            _kill_group(proc)
        et._Watchdog.get().send("forget", -proc.pid)
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
        out.close()
    run = ClientRun(cmd, rc, output, time.time() - t0)
    et.log("%s %s: rc=%s in %.1fs" % (os.path.basename(cmd[0]),
                                      " ".join(a for a in cmd[1:3]), rc, run.seconds))
    return run


def client_env(root_pem, extra=None):
    """The environment of a client run: enrolld's root trusted explicitly,
    whatever the global trust variables say, and no proxies."""
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY"):
        env.pop(k, None)
    env["NO_PROXY"] = env["no_proxy"] = "*"
    env["REQUESTS_CA_BUNDLE"] = root_pem
    env["SSL_CERT_FILE"] = root_pem
    env["CURL_CA_BUNDLE"] = root_pem
    env["LEGO_CA_CERTIFICATES"] = root_pem
    env.update(extra or {})
    return env


class Certbot:
    """certbot with its config, work and logs dirs under a temp dir of its
    own, talking to one directory URL."""

    def __init__(self, d, directory, tmp, http_port):
        self.d = d
        self.directory = directory
        self.http_port = http_port
        self.base = tempfile.mkdtemp(dir=tmp, prefix="certbot-")
        self.config_dir = os.path.join(self.base, "config")
        self.work_dir = os.path.join(self.base, "work")
        self.logs_dir = os.path.join(self.base, "logs")
        for p in (self.config_dir, self.work_dir, self.logs_dir):
            os.mkdir(p)

    def run(self, *args, env=None, server=True, timeout=CLIENT_TIMEOUT, on_start=None):
        cmd = ["certbot"] + list(args) + [
            "--config-dir", self.config_dir, "--work-dir", self.work_dir,
            "--logs-dir", self.logs_dir, "--non-interactive"]
        if server:
            cmd += ["--server", self.directory]
        return run_client(cmd, client_env(self.d.root_pem, env), self.base, timeout=timeout,
                          on_start=on_start)

    def register(self, kid, hmac_key, email="ops@example.org"):
        # "--opt=value": a base64url key may start with '-'
        return self.run("register", "--agree-tos", "-m", email, "--no-eff-email",
                        "--eab-kid=" + kid, "--eab-hmac-key=" + hmac_key)

    def http_args(self):
        return ["--standalone", "--preferred-challenges", "http",
                "--http-01-address", "127.0.0.1", "--http-01-port", str(self.http_port)]

    def certonly_http(self, cert_name, names, extra=(), **kw):
        args = ["certonly", "--cert-name", cert_name] + self.http_args()
        for n in names:
            args += ["-d", n]
        return self.run(*(args + list(extra)), **kw)

    def certonly_dns(self, cert_name, names, auth_hook, cleanup_hook, env, extra=(), **kw):
        args = ["certonly", "--cert-name", cert_name, "--manual", "--preferred-challenges", "dns",
                "--manual-auth-hook", auth_hook, "--manual-cleanup-hook", cleanup_hook]
        for n in names:
            args += ["-d", n]
        return self.run(*(args + list(extra)), env=env, **kw)

    def live(self, cert_name, what="cert.pem"):
        """Text of live/<cert_name>/<what> (cert.pem, chain.pem, fullchain.pem)."""
        return et.read_text(os.path.join(self.config_dir, "live", cert_name, what))

    def account_count(self):
        accts = []
        for root, _dirs, files in os.walk(os.path.join(self.config_dir, "accounts")):
            if "regr.json" in files:
                accts.append(root)
        return len(accts)

    def log_text(self):
        return et.read_text(os.path.join(self.logs_dir, "letsencrypt.log"))


class Lego:
    """lego with its own --path, registering with EAB on its first run."""

    def __init__(self, d, directory, tmp, eab, email="ops@example.org"):
        self.d = d
        self.directory = directory
        self.kid, self.hmac = eab
        self.email = email
        self.path = tempfile.mkdtemp(dir=tmp, prefix="lego-")

    def run(self, names, challenge_args, command="run", command_args=(), env=None,
            timeout=CLIENT_TIMEOUT, on_start=None, key_type="ec256"):
        cmd = ["lego", "--server", self.directory, "--path", self.path, "--accept-tos",
               "--email", self.email, "--eab", "--kid=" + self.kid, "--hmac=" + self.hmac,
               "--key-type", key_type]
        for n in names:
            cmd += ["--domains", n]
        cmd += list(challenge_args) + [command] + list(command_args)
        return run_client(cmd, client_env(self.d.root_pem, env), self.path, timeout=timeout,
                          on_start=on_start)

    def cert(self, name, what="crt"):
        """Text of certificates/<name>.<what> (crt: leaf + issuer bundle,
        issuer.crt, key); a wildcard's file is named with '_' for '*'."""
        return et.read_text(os.path.join(self.path, "certificates",
                                         "%s.%s" % (name.replace("*", "_"), what)))

    def account_dirs(self):
        accts = []
        for root, _dirs, files in os.walk(os.path.join(self.path, "accounts")):
            if "account.json" in files:
                accts.append(root)
        return accts


# --------------------------------------------------------------------------
# Checking what a client got


PEM_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*",
                         re.S)


def pem_certs(text):
    return [m.group(0).strip() + "\n" for m in PEM_CERT_RE.finditer(text or "")]


def subject_fields(pem):
    """{short name: [values]} of the subject of a PEM certificate."""
    p = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt",
                        "sep_multiline,sname,utf8,-esc_msb"],
                       input=pem, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("openssl x509 -subject: %s" % p.stderr)
    out = {}
    for line in p.stdout.splitlines()[1:]:
        if "=" in line:
            k, v = line.strip().split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def dns_names(pem):
    """Sorted DNS names of the subjectAltName of a PEM certificate."""
    p = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"],
                       input=pem, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("openssl x509 -ext: %s" % p.stderr)
    return sorted(re.findall(r"DNS:([^,\s]+)", p.stdout))


def serial_of(pem):
    """Upper-case hex serial of a PEM certificate without leading zeros (the
    spelling of certificates.serial)."""
    p = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("openssl x509 -serial: %s" % p.stderr)
    return p.stdout.strip().split("=", 1)[1].upper().lstrip("0") or "0"


def check_issued(test, d, tenant, leaf_pem, chain_pem, names, dept=True):
    """Asserts on a certificate a client got: it verifies against enrolld's
    root with enrolld's issuing CA as the untrusted intermediate, the chain the
    client stored carries that issuing CA, the SANs are exactly `names`, the
    subject O is the organization's and OU the department's (absent when the
    account is the organization's), and the certificate row is 'issued' for
    this organization. Returns the serial."""
    test.assertTrue(leaf_pem and "BEGIN CERTIFICATE" in leaf_pem, "no certificate stored")
    issuing = et.issuing_pem(d)
    ok, out = et.openssl_verify(leaf_pem, d.root_pem, untrusted_pem=issuing, tmpdir=test.tmp,
                                purpose="sslserver")
    test.assertTrue(ok, "openssl verify failed: %s" % out)
    chain = pem_certs(chain_pem)
    test.assertTrue(chain, "the client stored no chain")
    test.assertEqual(serial_of(chain[0]), serial_of(pem_certs(issuing)[0]),
                     "the chain served is not enrolld's issuing CA")
    # the served chain alone (no help from the state dir) is enough as well
    ok, out = et.openssl_verify(leaf_pem, d.root_pem, untrusted_pem="".join(chain),
                                tmpdir=test.tmp)
    test.assertTrue(ok, "openssl verify with the served chain failed: %s" % out)
    test.assertEqual(dns_names(leaf_pem), sorted(names))
    subj = subject_fields(leaf_pem)
    test.assertEqual(subj.get("O"), [tenant.org_name], subj)
    if dept:
        test.assertEqual(subj.get("OU"), [tenant.dept_name], subj)
    else:
        test.assertNotIn("OU", subj)
    serial = serial_of(leaf_pem)
    rows = d.sql("SELECT status, org_id, dept_id, protocol FROM certificates WHERE serial = '%s'"
                 % serial)
    test.assertEqual(len(rows), 1, "certificate %s not recorded once: %r" % (serial, rows))
    status, org_id, dept_id, protocol = rows[0]
    test.assertEqual((status, int(org_id), protocol),
                     ("issued", tenant.t["org_id"], "acme"))
    test.assertEqual(dept_id, str(tenant.t["dept_id"]) if dept else None)
    return serial


def crl_serials(test, d):
    """Serials on enrolld's CRL (GET /crl/<issuer>.crl, DER), after checking
    its signature against the issuing CA."""
    r = d.api("GET", "/crl/default.crl", token=None)
    test.assertEqual(r.status, 200, r)
    path = os.path.join(test.tmp, "crl-%s.der" % secrets.token_hex(4))
    with open(path, "wb") as f:
        f.write(r.body)
    issuing = os.path.join(d.state_dir, "ca", "issuing.pem")
    p = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", path, "-text", "-noout",
                        "-CAfile", issuing], capture_output=True, text=True)
    test.assertEqual(p.returncode, 0, p.stderr)
    test.assertIn("verify OK", p.stdout + p.stderr)
    return set(s.upper().lstrip("0") or "0"
               for s in re.findall(r"Serial Number:\s*([0-9A-Fa-f]+)", p.stdout))


# --------------------------------------------------------------------------
# Approving while a client polls


class Approver(threading.Thread):
    """Waits until the tenant's newest ACME order is 'processing' with its
    certificate 'requested', holds it there `hold` seconds while checking the
    client is still running (it polls), then approves it through the admin
    API. Records what it saw in .seen and any failure in .error."""

    def __init__(self, d, tenant, proc, hold=2.0, timeout=90):
        super().__init__(daemon=True)
        self.d, self.tenant, self.proc = d, tenant, proc
        self.hold, self.timeout = hold, timeout
        self.seen = {}
        self.error = None
        self.approved_id = None

    def _pending(self):
        rows = self.d.sql(
            "SELECT o.status, c.id, c.status, c.cert_der IS NULL FROM acme_orders o"
            " JOIN acme_accounts a ON a.id = o.account_id"
            " JOIN certificates c ON c.id = o.certificate_id"
            " WHERE a.endpoint_id = %d AND o.status = 'processing'"
            " ORDER BY o.id DESC LIMIT 1" % self.tenant.endpoint_id)
        return rows[0] if rows else None

    def run(self):
        try:
            deadline = time.time() + self.timeout
            row = None
            while time.time() < deadline and self.proc.poll() is None:
                row = self._pending()
                if row:
                    break
                time.sleep(0.2)
            if not row:
                self.error = "no order reached 'processing' while the client ran"
                return
            time.sleep(self.hold)
            row = self._pending()
            self.seen = {"order_status": row[0] if row else None,
                         "cert_status": row[2] if row else None,
                         "cert_der_null": row[3] if row else None,
                         "client_running": self.proc.poll() is None}
            if not row:
                self.error = "the order left 'processing' without an approval"
                return
            r = self.d.api("POST", "/api/v1/certificates/%s/approve" % row[1], {})
            if r.status not in (200, 201):
                self.error = "approve: %r" % r
                return
            self.approved_id = int(row[1])
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = "%s: %s" % (type(e).__name__, e)
