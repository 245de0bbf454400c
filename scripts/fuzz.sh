#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after the other (one fuzzer process at a time),
# each from its committed seeds (fuzz/seeds/<target>/, real captured data) plus the corpus it
# grew before (fuzz/corpus/<target>/, not committed), and prints executions, coverage and
# findings per target. Exits non-zero if any target found a crash, timeout or OOM; the
# reproducer is in fuzz/artifacts/<target>/ (replay: cargo fuzz run -O <target> <file>).
#
#   scripts/fuzz.sh [seconds-per-target] [target...]   default: 600 s, every target
#   scripts/fuzz.sh --smoke [target...]                10 s per target
#
# Needs cargo-fuzz (installed with `cargo install cargo-fuzz --locked` if missing). Works on
# the stable toolchain: RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz passes.
# FUZZ_SANITIZER=none skips AddressSanitizer (panics, overflows, timeouts and OOMs are still
# caught; the pure core has no unsafe code).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=600
if [ "${1:-}" = "--smoke" ]; then
    seconds=10
    shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -O -s "$sanitizer"

logs=target/fuzz-logs
mkdir -p "$logs"
failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    echo "== $t: ${seconds}s"
    rc=0
    # One process (no -jobs/-workers: libFuzzer then runs in-process, a single worker).
    # -timeout: one input taking over 10 s is a finding (a hang), as is using over 2 GB.
    cargo fuzz run -O -s "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$logs/$t.log" 2>&1 || rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' || true)
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' || true)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$logs/$t.log" | tail -1 || true)
    after=$(find "artifacts/$t" -type f | wc -l)
    found=$((after - before))
    line=$(printf '%-16s %10s execs %7s exec/s  %-22s findings: %s' \
        "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" "$found")
    if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
        failed+=("$t")
        line+="  FAILED (exit $rc; see fuzz/$logs/$t.log and fuzz/artifacts/$t/)"
        grep -m3 -E "panicked at|ERROR: libFuzzer|SUMMARY" "$logs/$t.log" || true
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "== summary (${seconds}s per target, sanitizer $sanitizer)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "findings in: ${failed[*]}" >&2
    exit 1
fi
