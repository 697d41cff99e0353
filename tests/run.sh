#!/bin/sh
# Runs each test given, from the repository root, and closes with one "N passed, N failed"
# line over the runs. Exit status is non-zero if any failed.
#
# usage: tests/run.sh [isa:]TEST...
# A test written isa:TEST reaches oneDNN and runs once per instruction set this CPU has
# among SSE41, AVX2 and AVX512_CORE (ONEDNN_MAX_CPU_ISA), so that an AVX-512 machine also
# runs the kernels AVX2 users get; NEP_ISAS="AVX2 ..." overrides the list. A release
# binary (build/tests/...) runs with 1 OpenMP thread, everything else with 2
# (OMP_NUM_THREADS overrides both): oneDNN splits work differently with each, and heap
# damage by its JIT code shows in release binaries that AddressSanitizer's layout hides.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# The ISAs of the matrix that this CPU can run (oneDNN clamps a higher one to what the
# CPU has, which would only repeat a run).
cpu_isas() {
    flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
    has() { for f in "$@"; do case " $flags " in *" $f "*) ;; *) return 1 ;; esac; done; }
    list=""
    has sse4_1 && list="SSE41"
    has avx2 fma && list="$list AVX2"
    has avx512f avx512bw avx512vl avx512dq && list="$list AVX512_CORE"
    echo $list
}
ISAS=${NEP_ISAS:-$(cpu_isas)}
echo "ISA matrix (ONEDNN_MAX_CPU_ISA) for isa: tests: ${ISAS:-none found} on $(grep -m1 '^model name' /proc/cpuinfo | sed 's/.*: //')"

pass=0; fail=0; failed=""
# run_one LABEL ISA TEST: ISA empty for oneDNN's default.
run_one() {
    start=$(date +%s)
    case $3 in build/tests/*) th=${OMP_NUM_THREADS:-1} ;; *) th=${OMP_NUM_THREADS:-2} ;; esac
    if [ -n "$2" ]; then
        ONEDNN_MAX_CPU_ISA=$2 OMP_NUM_THREADS=$th "$3"
    else
        OMP_NUM_THREADS=$th "$3"
    fi
    if [ $? -eq 0 ]; then pass=$((pass + 1)); r=ok; else fail=$((fail + 1)); failed="$failed $1"; r=FAILED; fi
    case $3 in *.sh) note="" ;; *) note=", $th threads" ;; esac  # the scripts set their own
    echo "== $1: $r ($(( $(date +%s) - start ))s$note)"
}
for t in "$@"; do
    case $t in
        isa:*)
            t=${t#isa:}
            for isa in $ISAS; do run_one "$t [$isa]" "$isa" "$t"; done
            [ -n "$ISAS" ] || run_one "$t" "" "$t"
            ;;
        *) run_one "$t" "" "$t" ;;
    esac
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
