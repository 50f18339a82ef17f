#!/usr/bin/env bash
# tests/fuzz/run.sh: builds every libFuzzer target in tests/fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined) and runs each one briefly: the "run
# briefly in CI" of STYLE.md. tests/run.sh calls it as its last phase.
#
#   bash tests/fuzz/run.sh OUT_DIR
#
# A target is its fuzz_*.c plus the few sources it exercises (the table
# below, the same commands as in each file's header comment), so a build
# takes seconds and needs nothing from CMake. A fuzz_*.c missing from the
# table is an error: a new target is run from the day it is added.
#
# Each target runs FUZZ_SECONDS (default 20) from a seed corpus in
# OUT_DIR/corpus-NAME (kept between local runs, so coverage accumulates):
# fuzz_csr gets CSRs made with openssl, fuzz_acme_jws the JWS table of the
# unit test test_acme_jws (from ENROLLD_BUILD_DIR, default build/, when it
# has been built) and a few recipes for its ES256 table keys. Fixed seed: a rerun explores the same inputs first.
# A crash, a sanitizer report, a leak or a broken invariant (the targets
# abort()) fails the run; the input is saved as OUT_DIR/crash-NAME-* and
# reproduced with `OUT_DIR/NAME OUT_DIR/crash-NAME-...`.
#
# Exit status: 0 all targets built and ran clean; 1 otherwise.
set -uo pipefail

cd "$(dirname "$0")/../.."
src=$PWD
out=${1:?usage: tests/fuzz/run.sh OUT_DIR}
seconds=${FUZZ_SECONDS:-20}
build_dir=${ENROLLD_BUILD_DIR:-$src/build}
cc=${FUZZ_CC:-clang}

# name -> "max_len|extra sources and flags"
declare -A targets=(
	[fuzz_names]="600|core/names.c"
	[fuzz_csr]="65536|core/csr.c core/names.c core/log.c -lcrypto"
	[fuzz_acme_jws]="65600|protocols/acme/acme_jws.c core/ecverify.c core/log.c -lcrypto -ljansson"
	[fuzz_ecverify]="97|core/ecverify.c -lcrypto"
)

if ! command -v "$cc" >/dev/null 2>&1; then
	echo "tests/fuzz/run.sh: $cc not found (.ci/deps installs clang)" >&2
	exit 1
fi
mkdir -p "$out" || exit 1

# fuzz_csr seeds: P-256 and RSA requests with several SAN types, DER and PEM.
seed_csr() {
	local dir=$1
	[ -e "$dir/p256.der" ] && return 0
	OPENSSL_CONF=/dev/null openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout /dev/null -subj "/O=Example/OU=Web/CN=www.example.com" -outform DER \
		-addext "subjectAltName=DNS:a.example.com,DNS:*.example.com,IP:192.0.2.1,IP:2001:db8::1,email:a@example.com" \
		-out "$dir/p256.der" 2>/dev/null &&
	OPENSSL_CONF=/dev/null openssl req -new -newkey rsa:2048 -nodes -keyout /dev/null \
		-subj "/CN=rsa.example.com" -addext "subjectAltName=DNS:rsa.example.com" \
		-out "$dir/rsa.pem" 2>/dev/null
}

# fuzz_acme_jws seeds: the signed JWS bodies of the unit test's table, and
# recipes (first byte 0, see the target's header comment) that the harness
# signs with its tabled ES256 keys: kid and jwk headers, another alg, s
# replaced by n - s, a header of the input's own.
seed_jws() {
	local dir=$1 k
	if [ -x "$build_dir/test_acme_jws" ]; then
		ENROLLD_FUZZ_SEED_DIR=$dir "$build_dir/test_acme_jws" >/dev/null 2>&1 || true
	fi
	k=$(printf 'k%.0s' {1..32})
	printf '\000\000%s\000\000\000\000{}' "$k" >"$dir/recipe-kid"
	printf '\000\005%s\000\000\000\000{"a":1}' "$k" >"$dir/recipe-jwk"
	printf '\000\032%s\000\000\000\000' "$k" >"$dir/recipe-alg"
	printf '\000\102%s\000\000\000\000{}' "$k" >"$dir/recipe-high-s"
	printf '\000\014%s\000\000\000\000%s\000{}' "$k" \
		'{"alg":"ES256","kid":"https://ra.example/acme/acct/1","nonce":"bm9uY2U","url":"https://ra.example/acme/new-order"}' \
		>"$dir/recipe-header"
	return 0
}

status=0
for path in "$src"/tests/fuzz/fuzz_*.c; do
	name=$(basename "$path" .c)
	entry=${targets[$name]:-}
	if [ -z "$entry" ]; then
		echo "=== fuzz: $name: not in the table of tests/fuzz/run.sh; add it" >&2
		status=1
		continue
	fi
	max_len=${entry%%|*}
	read -r -a extra <<<"${entry#*|}"
	bin=$out/$name
	echo "=== fuzz: build $name"
	if ! "$cc" -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -Icore -Iprotocols "$path" "${extra[@]}" -o "$bin"; then
		echo "=== fuzz: $name: build FAILED" >&2
		status=1
		continue
	fi
	corpus=$out/corpus-$name
	mkdir -p "$corpus"
	case $name in
	fuzz_csr) seed_csr "$corpus" ;;
	fuzz_acme_jws) seed_jws "$corpus" ;;
	esac
	echo "=== fuzz: run $name for ${seconds}s"
	log=$out/$name.log
	if "$bin" -seed=1 -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
		-rss_limit_mb=2048 -artifact_prefix="$out/crash-$name-" "$corpus" \
		</dev/null >"$log" 2>&1; then
		grep -E '^Done [0-9]+ runs' "$log" | sed "s/^/    $name: /"
	else
		echo "=== fuzz: $name FAILED; the end of $log:" >&2
		tail -n 60 "$log" >&2
		status=1
	fi
done
exit $status
