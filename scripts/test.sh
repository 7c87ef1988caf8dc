#!/usr/bin/env bash
# README command 2: install deps, build with ASan + UBSan into build-asan/, run the unit tests (ctest) and the
# end-to-end suite (pytest, tests/e2e) against the sanitized binaries, then a smoke run of the benchmark harness.
# Exits non-zero on any failure.
#
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k admin -x`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/deps.sh

JOBS=${CEPHALO_JOBS:-$(nproc 2>/dev/null || echo 2)}
[[ "$JOBS" -gt 2 ]] && JOBS=2

cmake -S . -B build-asan -DCEPHALO_SANITIZE=ON
cmake --build build-asan -j"$JOBS"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== unit tests (ctest) =="
(cd build-asan && ctest --output-on-failure)

echo "== end-to-end tests (pytest) =="
export CEPHALO_BIN_DIR=$ROOT/build-asan/bin
export CEPHALO_SOURCE_DIR=$ROOT
# Debian's python3 has pytest and h2; a pyenv python3 earlier on PATH does not.
/usr/bin/python3 -m pytest -v -p no:cacheprovider tests/e2e "$@"

# The benchmark harness itself (bench/run --quick: one 1-second round, release build); nothing here judges the numbers.
echo "== benchmark harness smoke test =="
bash bench/smoke.sh
echo "== all tests passed =="
