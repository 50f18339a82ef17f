#!/usr/bin/env bash
# tests/bench/run_bench_acme.sh: complete ACME issuances per second, enrolld
# against pebble, with the same driver (bench_acme) and the same key types.
#
# Builds enrolld and bench_acme (in build/ unless ENROLLD_BUILD_DIR is set),
# starts enrolld on a fresh state dir -- on its embedded PostgreSQL by default
# (the postmaster and its backends are then enrolld's descendants), or with
# --external on a throw-away local cluster (fsync on) whose postmaster is
# counted as well -- and creates through the admin API an organization, the
# domain bench-acme.test delegated to it with DCV 'validated', an ssl profile
# and an ACME endpoint (EAB required, challenges skipped for DCV-validated
# names: orders are born 'ready'). Then, for each concurrency and each run, it
# runs bench_acme against enrolld (with one fresh EAB key per flow) and
# against a FRESH pebble (PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_VA_NOSLEEP=1
# PEBBLE_WFE_NONCEREJECT=0; pebble keeps everything in memory and deadlocks
# under load, so every run gets a new one, which also makes its linear
# authorization scans start from an empty store), and prints the medians, a
# table and the ratios.
#
#   bash tests/bench/run_bench_acme.sh [--quick] [--runs 3] [--duration 10]
#        [--warmup 1] [--concurrency "4 16 64"] [--external] [--workers N]
#        [--servers "enrolld pebble"] [--log-level warn]
#
# --quick is one run per concurrency instead of three (medians of 3 need
# about 4 minutes). Run as root (like the README's commands): the daemon,
# PostgreSQL and pebble run as the unprivileged user enrolld. Everything
# listens on 127.0.0.1 only. The only thing this script may install is the
# Debian package pebble, through apt-get, when the pebble binary is missing
# (it says so first).
#
# Reading the output: "iss/s" is complete issuances per second (newOrder to
# certificate download) inside the measured window; p50/p99 are flow
# latencies in ms; "err" counts failed flows (any unexpected answer or
# timeout); "cpu ms/iss" is the server's CPU per issuance read from /proc
# (enrolld + its signer + its PostgreSQL postmaster and backends; pebble's
# own process); "req/iss" is HTTP requests per issuance (enrolld: newOrder,
# authorization, finalize, certificate; pebble adds the challenge, its polls
# and an order poll); "drv ms/iss" is the driver's own CPU per issuance. The
# driver shares the machine with the servers. A STALLED run is one where the
# server stopped answering (pebble's deadlock): "iss/s" counts what it issued
# before over the whole window, and the ratios compare against its rate up to
# its last answer (issued / seconds until the stall), the fairest figure a
# stalled run has.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The daemon drops to the system user enrolld (as in the README's first command).
if ! id enrolld >/dev/null 2>&1; then
	useradd --system --home-dir /var/lib/enrolld --no-create-home \
		--shell /usr/sbin/nologin enrolld
fi

if ! command -v pebble >/dev/null 2>&1; then
	echo "run_bench_acme.sh: pebble is missing; installing the Debian package 'pebble' with apt-get" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y pebble >&2
fi

build=${ENROLLD_BUILD_DIR:-$PWD/build}
if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" --target enrolld bench_acme -j"${JOBS:-2}" >/dev/null
export ENROLLD_BIN=${ENROLLD_BIN:-$build/enrolld}
export ENROLLD_BENCH_ACME_BIN=${ENROLLD_BENCH_ACME_BIN:-$build/bench_acme}
export ENROLLD_BUILD_DIR=$build ENROLLD_SOURCE_DIR=$PWD
export PYTHONPATH=$PWD/tests/integration${PYTHONPATH:+:$PYTHONPATH}

exec python3 - "$@" <<'PYEOF'
import argparse, json, os, shutil, signal, ssl, statistics, subprocess, sys, time
import urllib.request
import enrolld_test as et

ap = argparse.ArgumentParser(prog="run_bench_acme.sh")
ap.add_argument("--quick", action="store_true", help="one run per concurrency, not three")
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each")
ap.add_argument("--concurrency", default="4 16 64")
ap.add_argument("--servers", default="enrolld pebble")
ap.add_argument("--external", action="store_true",
                help="external PostgreSQL (a local throw-away cluster) instead of embedded")
# default: the daemon's own (core/config.c, config_default_workers())
ap.add_argument("--workers", type=int, default=int(os.environ.get(
    "WORKERS", str(2 * min(max(os.cpu_count() or 2, 2), 32)))))
ap.add_argument("--log-level", default="warn")
args = ap.parse_args()
runs = 1 if args.quick else max(1, args.runs)
concs = [int(c) for c in args.concurrency.split()]
servers = args.servers.split()
if not concs or any(c < 1 or c > 1024 for c in concs) or not set(servers) <= {"enrolld", "pebble"}:
    sys.exit("run_bench_acme.sh: bad --concurrency or --servers")
bench = os.environ["ENROLLD_BENCH_ACME_BIN"]
DOMAIN = "bench-acme.test"


def run_driver(label, directory, cacert, conc, pids, eab_file=None):
    cmd = [bench, "--directory", directory, "--cacert", cacert, "--label", label,
           "--domain", DOMAIN, "--concurrency", str(conc), "--duration", str(args.duration),
           "--warmup", str(args.warmup), "--quiet"]
    for pid in pids:
        cmd += ["--pid", str(pid)]
    if eab_file:
        cmd += ["--eab-file", eab_file]
    limit = args.warmup + args.duration + 300  # accounts, drain, timeouts: bounded
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if p.stderr.strip():
        sys.stderr.write(p.stderr)
    if not line:
        return None
    out = {}
    for kv in line[0].split()[1:]:
        k, v = kv.split("=", 1)
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return out


# ---------------------------------------------------------------- enrolld

class EnrolldSide:
    def __init__(self):
        self.d = et.Enrolld(embedded=not args.external, workers=args.workers,
                            log_level=args.log_level, daemon_options={"queue_max": "4096"})
        d = self.d
        self.tenant = et.setup_tenant(d, domain=DOMAIN)
        et.expect(d.api("PUT", "/api/v1/domains/%d/dcv" % self.tenant["domain_id"],
                        {"status": "validated", "method": "manual"}), 200)
        self.endpoint = et.expect(d.api("POST", "/api/v1/endpoints", {
            "protocol": "acme", "name": "bench",
            "org_id": self.tenant["org_id"],
            "default_profile_id": self.tenant["profile_id"],
            "profile_ids": [self.tenant["profile_id"]],
            "settings": {"eab_required": True,
                         "skip_challenges_when_dcv_validated": True}}), 201)
        self.directory = "%s/acme/%s/directory" % (d.url, self.endpoint["name"])
        self.tmp = et.make_tempdir("bench-acme-")

    def pids(self):
        pids = [self.d.proc.pid]  # its signer and an embedded PostgreSQL descend from it
        if args.external:
            pids.append(self.d.pg.proc.pid)  # the postmaster (backends are its children)
        return pids

    def run(self, conc):
        # EAB keys are single-use: one fresh key per flow and run
        path = os.path.join(self.tmp, "eab-%d-%d.txt" % (conc, time.monotonic_ns()))
        with open(path, "w") as f:
            os.chmod(path, 0o600)
            for _ in range(conc):
                k = et.expect(self.d.api("POST", "/api/v1/endpoints/%d/eab-keys"
                                         % int(self.endpoint["id"]),
                                         {"org_id": self.tenant["org_id"]}), 201)
                f.write("%s %s\n" % (k["kid"], k["hmac_key"]))
        try:
            return run_driver("enrolld", self.directory, self.d.root_pem, conc, self.pids(), path)
        finally:
            os.unlink(path)

    def close(self):
        issued = self.d.count("certificates", "status = 'issued'")
        print("enrolld: certificates issued in its database: %d" % issued)
        self.d.close()


# ----------------------------------------------------------------- pebble

class PebbleSide:
    """A fresh pebble per run, on free loopback ports, run as user enrolld,
    with a localhost TLS certificate made here."""

    def __init__(self):
        self.dir = et.make_tempdir("bench-pebble-", owner=et.DAEMON_USER)
        os.chmod(self.dir, 0o755)
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        p = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "7",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            capture_output=True, text=True, env=dict(os.environ, OPENSSL_CONF="/dev/null"))
        if p.returncode != 0:
            sys.exit("openssl req (pebble certificate) failed: " + p.stderr)
        for path in (self.cert, self.key):
            et.chown_to(path, et.DAEMON_USER)
        self.proc = None

    def start(self):
        port, mport = et.free_port(), et.free_port()
        cfg = {"pebble": {
            "listenAddress": "127.0.0.1:%d" % port,
            "managementListenAddress": "127.0.0.1:%d" % mport,
            "certificate": self.cert, "privateKey": self.key,
            "httpPort": et.free_port(), "tlsPort": et.free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        cfg_path = os.path.join(self.dir, "pebble-config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        os.chmod(cfg_path, 0o644)
        env = dict(os.environ, PEBBLE_VA_ALWAYS_VALID="1", PEBBLE_VA_NOSLEEP="1",
                   PEBBLE_WFE_NONCEREJECT="0")
        log = open(os.path.join(self.dir, "pebble.log"), "ab")
        try:
            self.proc = subprocess.Popen(["pebble", "-config", cfg_path], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, env=env, cwd="/",
                                         preexec_fn=et._drop_to(et.DAEMON_USER, signal.SIGKILL))
        finally:
            log.close()
        et._Watchdog.get().send("kill", self.proc.pid, int(signal.SIGKILL))
        self.directory = "https://127.0.0.1:%d/dir" % port
        ctx = ssl.create_default_context(cafile=self.cert)
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                sys.exit("pebble exited with %s:\n%s" % (self.proc.returncode, et.tail(
                    et.read_text(os.path.join(self.dir, "pebble.log")))))
            try:
                with urllib.request.urlopen(self.directory, context=ctx, timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("pebble did not answer at %s" % self.directory)
            time.sleep(0.1)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            et._Watchdog.get().send("forget", self.proc.pid)
        self.proc = None
        # the log grows by a few lines per request: keep the last run's only
        try:
            os.truncate(os.path.join(self.dir, "pebble.log"), 0)
        except OSError:
            pass

    def run(self, conc):
        self.start()
        try:
            return run_driver("pebble", self.directory, self.cert, conc, [self.proc.pid])
        finally:
            self.stop()

    def close(self):
        self.stop()


sides = {}
try:
    if "enrolld" in servers:
        sides["enrolld"] = EnrolldSide()
    if "pebble" in servers:
        sides["pebble"] = PebbleSide()
    print("bench_acme: %s; %d run(s) x %.0f s (+%.0f s warm-up) per concurrency; %s PostgreSQL, "
          "%d workers; %d cores; pebble %s; load average %.2f"
          % (", ".join(servers), runs, args.duration, args.warmup,
             "external" if args.external else "embedded", args.workers, os.cpu_count(),
             shutil.which("pebble"), os.getloadavg()[0]), flush=True)
    fields = ["rate", "p50_ms", "p99_ms", "errors", "cpu_ms_per_issue", "req_per_issue",
              "driver_cpu_ms_per_issue"]
    med = {}
    stalls = {}
    for conc in concs:
        results = {s: [] for s in servers}
        for i in range(runs):
            for s in servers:  # interleaved: drift of the machine hits both alike
                r = sides[s].run(conc)
                if r is None:
                    print("  %-7s c=%-3d run %d: driver failed (see above)" % (s, conc, i + 1),
                          flush=True)
                    continue
                # the rate while the server answered: a run that stalled
                # (pebble's deadlock) counts its issuances over the time
                # before the stall, not over the whole window
                r["live_rate"] = r["rate"]
                if r["stalled"]:
                    r["live_rate"] = (r["issued"] / r["stalled_at_s"]
                                      if r["stalled_at_s"] >= 1.0 else float("nan"))
                results[s].append(r)
                stall = ""
                if r["stalled"]:
                    stall = ("  STALLED %.1f s into the window" % r["stalled_at_s"]
                             if r["stalled_at_s"] >= 0 else "  STALLED during the warm-up")
                print("  %-7s c=%-3d run %d: %7.1f iss/s  p50 %6.1f  p99 %7.1f ms  err %3d  "
                      "cpu %6.3f ms/iss%s"
                      % (s, conc, i + 1, r["rate"], r["p50_ms"], r["p99_ms"], r["errors"],
                         r["cpu_ms_per_issue"], stall), flush=True)
        for s in servers:
            if results[s]:
                med[(s, conc)] = {f: statistics.median(r[f] for r in results[s]) for f in fields}
                live = [r["live_rate"] for r in results[s] if r["live_rate"] == r["live_rate"]]
                med[(s, conc)]["live_rate"] = statistics.median(live) if live else 0.0
                stalls[(s, conc)] = sum(1 for r in results[s] if r["stalled"])

    print()
    print("medians over %d run(s) of %.0f s (load average now %.2f)"
          % (runs, args.duration, os.getloadavg()[0]))
    print("%-8s %5s %9s %8s %8s %5s %11s %8s %11s %s" % (
        "server", "flows", "iss/s", "p50 ms", "p99 ms", "err", "cpu ms/iss", "req/iss",
        "drv ms/iss", "stalled runs"))
    for conc in concs:
        for s in servers:
            m = med.get((s, conc))
            if m is None:
                print("%-8s %5d   (no result)" % (s, conc))
                continue
            print("%-8s %5d %9.1f %8.1f %8.1f %5d %11.3f %8.2f %11.3f %s" % (
                s, conc, m["rate"], m["p50_ms"], m["p99_ms"], m["errors"],
                m["cpu_ms_per_issue"], m["req_per_issue"], m["driver_cpu_ms_per_issue"],
                "%d/%d" % (stalls[(s, conc)], runs) if stalls[(s, conc)] else ""))
    if "enrolld" in servers and "pebble" in servers:
        print()
        print("ratios enrolld/pebble (target: rate >= 2, CPU per issuance <= 0.5)")
        for conc in concs:
            e, p = med.get(("enrolld", conc)), med.get(("pebble", conc))
            if not e or not p:
                continue
            rate = "x%.2f" % (e["rate"] / p["rate"]) if p["rate"] > 0 else "n/a"
            if stalls.get(("pebble", conc)):
                # against what pebble did while it still answered
                rate = ("x%.2f (pebble %.0f/s until it stalled)"
                        % (e["rate"] / p["live_rate"], p["live_rate"])
                        if p["live_rate"] > 0 else "n/a")
            cpu = ("x%.2f" % (e["cpu_ms_per_issue"] / p["cpu_ms_per_issue"])
                   if p["cpu_ms_per_issue"] > 0 and e["cpu_ms_per_issue"] > 0 else "n/a")
            note = ""
            if stalls.get(("pebble", conc)):
                note = "   (pebble stalled in %d of %d runs: rate and CPU up to the stall)" % (
                    stalls[("pebble", conc)], runs)
            print("  %3d flows: issuance rate %s   CPU per issuance %s%s" % (conc, rate, cpu, note))
        top = max(concs)
        e, p = med.get(("enrolld", top)), med.get(("pebble", top))
        if e and p:
            print("  p99 at %d flows: enrolld %.1f ms (target < 50), pebble %.1f ms%s"
                  % (top, e["p99_ms"], p["p99_ms"],
                     " (pebble stalled in %d of %d runs)" % (stalls[("pebble", top)], runs)
                     if stalls[("pebble", top)] else ""))
finally:
    for side in sides.values():
        side.close()
PYEOF
