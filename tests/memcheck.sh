#!/bin/sh
# valgrind memcheck over test binaries that run oneDNN (built by `make test-memcheck` for
# x86-64-v3): any invalid read or write, use of uninitialised memory in a branch, or bad
# free fails the run. AddressSanitizer cannot see stores made by oneDNN's JIT code, which
# is how uxlfoundation/oneDNN#6035 corrupted our heap; valgrind translates that code too.
# valgrind 3.19 has no AVX-512, so oneDNN and OpenBLAS are held to AVX2 kernels here: the
# kernels the AVX2 machines run by default. Leaks are left to the ASan runs.
# usage: tests/memcheck.sh BINARY...   closes with "N passed, N failed".
export ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# valgrind runs 20-100x slower: the conv property test's first 60 geometries per layout.
export NEP_CONV_PROPERTY_COUNT=${NEP_CONV_PROPERTY_COUNT:-60}
# valgrind runs the AVX2 kernels ~200x slower (one ResNet-20 image ~1.7 s): test_collapse
# checks its rewrites on 2 Fashion-MNIST images instead of 64, in both layouts (each runs
# other oneDNN kernels; about 4 minutes in all, over 25 with 64 images).
export NEP_COLLAPSE_IMAGES=${NEP_COLLAPSE_IMAGES:-2}
if ! command -v valgrind >/dev/null 2>&1; then
    echo "not ok - valgrind is not installed (scripts/install-deps.sh installs it)"
    echo "0 passed, 1 failed"
    exit 1
fi
pass=0; fail=0
for t in "$@"; do
    start=$(date +%s)
    log=${TMPDIR:-/tmp}/memcheck.$$.log
    valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --track-origins=no \
        --log-file="$log" "$t" >/dev/null 2>&1
    rc=$?
    errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ] && [ "${errs:-x}" = 0 ]; then
        pass=$((pass + 1)); echo "ok - memcheck $t: 0 errors ($(( $(date +%s) - start ))s)"
    else
        fail=$((fail + 1)); echo "not ok - memcheck $t: exit $rc, ${errs:-unknown} errors"
        grep -m 40 -E '^==[0-9]+== ( |[A-Z])' "$log" | sed 's/^/  # /'
    fi
    rm -f "$log"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
