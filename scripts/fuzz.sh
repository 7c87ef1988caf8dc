#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz/ with clang in build-fuzz/ and runs each for N minutes.
#
#   scripts/fuzz.sh [minutes] [target...]      default: 10 minutes, every target, one after the other
#
# Targets: snapshot admin_body jwt path router ratelimit auth_body explain headers (tests/fuzz/README.md says what each covers).
# New corpus entries go to build-fuzz/fuzz-corpus/<target>/ (scratch: minimise the good ones into
# tests/fuzz/corpus/<target>/ by hand, see the README); crashes, leaks and timeouts go to tests/fuzz/crashes/<target>/
# (ignored by git) and make the script exit non-zero. Logs: build-fuzz/fuzz-logs/<target>.log.
# Environment: CEPHALO_FUZZ_BUILD (build dir), CEPHALO_FUZZ_JOBS (harnesses run at once, default 1),
# CEPHALO_FUZZ_ARGS (extra libFuzzer flags), CEPHALO_FUZZ_NO_BUILD=1 (run the binaries already built). Needs clang and libclang-rt-14-dev (scripts/deps.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALL=(snapshot admin_body jwt path router ratelimit auth_body explain headers)
MINUTES=${1:-10}
[[ $# -gt 0 ]] && shift
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=("${ALL[@]}")
BUILD=${CEPHALO_FUZZ_BUILD:-$ROOT/build-fuzz}
JOBS=${CEPHALO_FUZZ_JOBS:-1}

if ! [[ "$MINUTES" =~ ^[0-9]+$ ]] || [[ "$MINUTES" -eq 0 ]]; then
    echo "usage: $0 [minutes] [target...]   targets: ${ALL[*]}" >&2
    exit 2
fi
for t in "${TARGETS[@]}"; do
    [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz: unknown target '$t' (targets: ${ALL[*]})" >&2; exit 2; }
done

if [[ -z "${CEPHALO_FUZZ_NO_BUILD:-}" ]]; then
    CC=${CC:-clang} cmake -S "$ROOT" -B "$BUILD" -DCEPHALO_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
    cmake --build "$BUILD" -j2 --target "${TARGETS[@]/#/fuzz_}"
fi

mkdir -p "$BUILD/fuzz-logs"
run_one() {
    local t=$1 scratch="$BUILD/fuzz-corpus/$1" crashes="$ROOT/tests/fuzz/crashes/$1" dict=()
    mkdir -p "$scratch" "$crashes"
    [[ -f "$ROOT/tests/fuzz/$t.dict" ]] && dict=(-dict="$ROOT/tests/fuzz/$t.dict")
    echo "fuzz: $t for $MINUTES min (log $BUILD/fuzz-logs/$t.log)"
    # shellcheck disable=SC2086
    if CEPHALO_SOURCE_DIR="$ROOT" LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
        "$BUILD/fuzz/fuzz_$t" -max_total_time=$((MINUTES * 60)) -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "${dict[@]}" ${CEPHALO_FUZZ_ARGS:-} \
        "$scratch" "$ROOT/tests/fuzz/corpus/$t" >"$BUILD/fuzz-logs/$t.log" 2>&1; then
        echo "fuzz: $t: no finding ($(grep -E '^stat::number_of_executed_units' "$BUILD/fuzz-logs/$t.log" | awk '{print $2}') runs)"
    else
        echo "fuzz: $t: FINDING - see $BUILD/fuzz-logs/$t.log and $crashes/" >&2
        return 1
    fi
}

status=0
pids=()
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    pids+=($!)
    if [[ ${#pids[@]} -ge $JOBS ]]; then
        wait "${pids[0]}" || status=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do
    wait "$p" || status=1
done
exit $status
