#!/usr/bin/env bash
# tests/bench/run_bench.sh: the enrollment benchmark, end to end.
#
# Builds enrolld and bench_enroll (in build/ unless ENROLLD_BUILD_DIR is set),
# starts enrolld on a fresh state dir -- on its embedded PostgreSQL by default,
# or with --external on a throw-away local cluster (fsync on) -- creates an
# organization, the domain example.test delegated to it and an ssl profile
# through the admin API, then runs bench_enroll at each concurrency RUNS times
# and prints the median of each figure. Run as root (like the README's
# commands); the daemon and PostgreSQL run as user enrolld.
#
#   bash tests/bench/run_bench.sh [--external] [--workers N] [--duration S]
#        [--runs R] [--concurrency "4 16 64"] [--log-level info]
#
# Reading the output: "issued/s" is completed 201 enrollments per second seen
# by the driver; p50/p90/p99 are per-request latencies in ms; "errors" counts
# every non-201 answer or transport failure (should be 0); "signs/s" is what
# one core does with bare ECDSA P-256 signatures; "ratio" = issued/s divided
# by signs/s (the RA's whole path per certificate, relative to one signature
# on one core). The driver shares the machine with enrolld and PostgreSQL.
#
# CPU per issuance (ms, medians): "enrolld" is the daemon process (loop and
# worker threads), "signer" its key-holding children, "postgres" the
# postmaster and every backend under it, "driver" bench_enroll during the
# load. Unlike issued/s these barely move when something else loads the
# machine, so they are the figures to compare between two builds; their sum
# against the 2 cores says how far the machine can go. "others" is the share
# of all cores that other processes used during the run: issued/s is only
# comparable between runs where it is near 0.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The daemon drops to the system user enrolld (as in the README's first command).
if ! id enrolld >/dev/null 2>&1; then
	useradd --system --home-dir /var/lib/enrolld --no-create-home \
		--shell /usr/sbin/nologin enrolld
fi
build=${ENROLLD_BUILD_DIR:-$PWD/build}
if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
if ! cmake --build "$build" --target enrolld bench_enroll -j"${JOBS:-2}" >/dev/null 2>&1; then
	cmake --build "$build" --target enrolld bench_enroll -j"${JOBS:-2}"
	exit 1
fi
export ENROLLD_BIN=${ENROLLD_BIN:-$build/enrolld}
export ENROLLD_BENCH_BIN=${ENROLLD_BENCH_BIN:-$build/bench_enroll}
export ENROLLD_BUILD_DIR=$build ENROLLD_SOURCE_DIR=$PWD
export PYTHONPATH=$PWD/tests/integration${PYTHONPATH:+:$PYTHONPATH}

exec python3 - "$@" <<'PYEOF'
import argparse, os, resource, statistics, subprocess, sys, time
import enrolld_test as et

ap = argparse.ArgumentParser(prog="run_bench.sh")
ap.add_argument("--external", action="store_true",
                help="external PostgreSQL (a local throw-away cluster) instead of embedded")
ap.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "8")))
ap.add_argument("--duration", type=float, default=10.0, help="seconds per run")
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--concurrency", default="4 16 64")
ap.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up first")
ap.add_argument("--log-level", default="info")
args = ap.parse_args()

bench = os.environ["ENROLLD_BENCH_BIN"]
TICK = os.sysconf("SC_CLK_TCK")

def tree_cpu(root):
    """CPU seconds used so far by root and its descendants, by role."""
    parent, comm, used = {}, {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                st = f.read()
        except OSError:
            continue
        pid = int(name)
        rest = st[st.rindex(")") + 2:].split()
        comm[pid] = st[st.index("(") + 1:st.rindex(")")]
        parent[pid] = int(rest[1])
        used[pid] = (int(rest[11]) + int(rest[12])) / TICK
    roles = {"enrolld": 0.0, "signer": 0.0, "postgres": 0.0}
    for pid in used:
        p = pid
        while p in parent and p != root and p > 1:
            p = parent[p]
        if p != root:
            continue
        if pid == root:
            roles["enrolld"] += used[pid]
        elif comm[pid].startswith("postgres"):
            roles["postgres"] += used[pid]
        else:
            roles["signer"] += used[pid]
    return roles

d = et.Enrolld(embedded=not args.external, workers=args.workers,
               log_level=args.log_level, daemon_options={"queue_max": "4096"})
tenant = et.setup_tenant(d, domain="example.test")
base = [bench, "--url", d.url, "--token", d.token, "--cacert", d.root_pem,
        "--org", str(tenant["org_id"]), "--profile", str(tenant["profile_id"]),
        "--domain", "example.test", "--quiet"]

def machine_busy():
    """CPU seconds the whole machine has been busy (all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK  # all but idle and iowait

def run(conc, seconds):
    before = tree_cpu(d.proc.pid)
    busy0, kids0, wall0 = machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    p = subprocess.run(base + ["--concurrency", str(conc), "--duration", str(seconds)],
                       capture_output=True, text=True)
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if not line:
        sys.exit("bench_enroll failed:\n" + p.stdout + p.stderr + d.log_tail())
    if p.stderr.strip():
        sys.stderr.write(p.stderr)
    r = {k: float(v) for k, v in (kv.split("=") for kv in line[0].split()[1:])}
    after = tree_cpu(d.proc.pid)
    busy1, kids1, wall1 = machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    n = max(r["issued"], 1)
    # what everything else on the machine used meanwhile, in % of all cores:
    # figures taken while others load the machine are not comparable
    ours = sum(after[k] - before[k] for k in before) + \
        (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    r["others_pct"] = max(0.0, busy1 - busy0 - ours) * 100.0 / ((wall1 - wall0) * os.cpu_count())
    # the driver's sign loops run before and after the load: the server's
    # counters then see an idle second on each side, which costs ~nothing
    for role in before:
        r[role + "_ms"] = (after[role] - before[role]) * 1000.0 / n
    r["driver_ms"] = r.get("cpu_ms", 0.0)
    return r

print("enrolld %s, %s PostgreSQL, %d workers, %d x %.0f s per concurrency, %d cores"
      % (et.enrolld_bin(), "external" if args.external else "embedded",
         args.workers, args.runs, args.duration, os.cpu_count()))
if args.warmup > 0:
    run(max(int(c) for c in args.concurrency.split()), args.warmup)
fields = ["rate", "p50_ms", "p90_ms", "p99_ms", "errors", "signs_per_s", "ratio",
          "enrolld_ms", "signer_ms", "postgres_ms", "driver_ms", "others_pct"]
rows = []
for conc in [int(c) for c in args.concurrency.split()]:
    results = []
    for i in range(args.runs):
        r = run(conc, args.duration)
        results.append(r)
        print("  c=%-3d run %d: %7.1f issued/s  p50 %6.1f  p90 %6.1f  p99 %6.1f ms  errors %d"
              "  cpu ms/issue: enrolld %.3f signer %.3f postgres %.3f driver %.3f"
              "  others %.0f%%"
              % (conc, i + 1, r["rate"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["errors"],
                 r["enrolld_ms"], r["signer_ms"], r["postgres_ms"], r["driver_ms"],
                 r["others_pct"]),
              flush=True)
    rows.append((conc, {f: statistics.median(r[f] for r in results) for f in fields}))

print()
print("medians over %d runs" % args.runs)
print("%-11s %10s %9s %9s %9s %7s %10s %8s" % ("concurrency", "issued/s", "p50 ms", "p90 ms",
                                                "p99 ms", "errors", "signs/s", "ratio"))
for conc, m in rows:
    print("%-11d %10.1f %9.1f %9.1f %9.1f %7d %10.0f %8.4f" % (
        conc, m["rate"], m["p50_ms"], m["p90_ms"], m["p99_ms"], m["errors"],
        m["signs_per_s"], m["ratio"]))
print()
print("CPU ms per issuance (medians)")
print("%-11s %9s %9s %9s %9s %9s %9s" % ("concurrency", "enrolld", "signer", "postgres",
                                         "driver", "total", "others"))
for conc, m in rows:
    total = m["enrolld_ms"] + m["signer_ms"] + m["postgres_ms"] + m["driver_ms"]
    print("%-11d %9.3f %9.3f %9.3f %9.3f %9.3f %8.0f%%" % (
        conc, m["enrolld_ms"], m["signer_ms"], m["postgres_ms"], m["driver_ms"], total,
        m["others_pct"]))
issued = d.count("certificates", "status = 'issued'")
print("certificates issued in the database: %d" % issued)
d.stop()
PYEOF
