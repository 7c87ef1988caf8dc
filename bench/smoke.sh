#!/usr/bin/env bash
# Smoke test of the benchmark harness (not a benchmark: nothing here looks at the numbers).
#
# Runs `bash bench/run --quick` (one round of one second, bare scenario) and checks that it exited 0, printed the
# results table with a row for every protocol x target of the bare scenario, wrote table.txt and results.json under
# bench/results/<timestamp>/, and left no process behind in its temp dir.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

fail() {
    echo "bench smoke: FAIL: $*" >&2
    tail -n 40 "$out" >&2
    exit 1
}

bash bench/run --quick >"$out" 2>&1 || fail "bench/run --quick exited $?"

grep -q '^RESULTS ' "$out" || fail "no RESULTS table"
for row in "h1 direct" "h1 nginx" "h1 haproxy" "h1 cephalo" "h2c nginx" "h2c haproxy" "h2c cephalo" \
    "h2tls nginx" "h2tls haproxy" "h2tls cephalo" "h1half nginx" "h1half haproxy" "h1half cephalo"; do
    # scenario, protocol, target, then an rps median that is a positive number
    grep -Eq "^bare +${row% *} +${row#* } +[1-9][0-9]* " "$out" || fail "no table row for bare $row"
done

dir=$(sed -n 's/^raw output: //p' "$out")
[[ -n $dir && -s $dir/table.txt && -s $dir/results.json ]] || fail "no table.txt/results.json in '$dir'"
/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]["bare"]; sys.exit(0 if len(r) == 13 else 1)' \
    "$dir/results.json" || fail "results.json does not hold the 13 bare runs"

tmp=$(sed -n 's/.*(temp dir \(.*\))$/\1/p' "$out")
[[ -n $tmp ]] || fail "no temp dir printed"
[[ ! -e $tmp ]] || fail "temp dir $tmp was not removed"
for cmdline in /proc/[0-9]*/cmdline; do
    if { tr '\0' ' ' <"$cmdline"; } 2>/dev/null | grep -qF "$tmp"; then
        fail "a process from the run is still alive: ${cmdline%/cmdline}"
    fi
done

echo "bench smoke: ok ($dir)"
