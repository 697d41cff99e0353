#!/bin/sh
# Runs each test binary given, from the repository root, and closes with one
# "N passed, N failed" line over the binaries. Exit status is non-zero if any failed.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
pass=0; fail=0; failed=""
for t in "$@"; do
    start=$(date +%s)
    if "$t"; then pass=$((pass + 1)); r=ok; else fail=$((fail + 1)); failed="$failed $t"; r=FAILED; fi
    echo "== $t: $r ($(( $(date +%s) - start ))s)"
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
