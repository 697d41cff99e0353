# Shared by the end-to-end test scripts (sourced after BIN is set): environment, a
# temporary directory $T removed on exit, and the check helpers. Each check prints
# "ok - NAME" or "not ok - NAME"; the script ends with "$pass passed, $fail failed".
# shellcheck shell=sh disable=SC2034
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
# ONNX Runtime (PyPI) lives in the project's venv: make build/venv/.stamp.
ORT_PY=${ORT_PY:-$HERE/../build/venv/bin/python}
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMP_NUM_THREADS=1
export PYTHONDONTWRITEBYTECODE=1

if [ ! -x "$BIN" ]; then
    echo "not ok - $BIN is not an executable (build it first: make all build/asan/nepenthe)"
    echo "0 passed, 1 failed"
    exit 1
fi
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
case $T in *[[:space:]]*) echo "not ok - temporary directory '$T' has spaces"; echo "0 passed, 1 failed"; exit 1 ;; esac
trap 'exit 130' INT TERM

pass=0
fail=0
rc=0

# nep ARGS...: runs the binary; stdout in $T/out, stderr in $T/err, exit status in $rc.
nep() {
    "$BIN" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}

# check NAME CONDITION: CONDITION is shell code (what it prints to stderr is kept as the
# reason); on failure, shows the reason and the last command's status and output.
check() {
    if eval "$2" 2>"$T/why"; then
        pass=$((pass + 1))
        echo "ok - $1"
    else
        fail=$((fail + 1))
        echo "not ok - $1"
        sed 's/^/  # why: /' "$T/why"
        echo "  # exit status $rc; stdout (last lines), stderr (first lines, marked !):"
        tail -n 8 "$T/out" | sed 's/^/  #   /'
        head -n 12 "$T/err" | sed 's/^/  # ! /'
    fi
}

# The last command failed with a message rather than a crash or a sanitizer report.
failed_cleanly() {
    [ "$rc" -ne 0 ] && [ "$rc" -lt 126 ] && ! grep -q 'Sanitizer\|runtime error:' "$T/err"
}
# The last command succeeded (a sanitizer report makes the exit status non-zero anyway).
succeeded() { [ "$rc" -eq 0 ] && ! grep -q 'Sanitizer\|runtime error:' "$T/err"; }
# Its stderr holds the fixed string $1.
says() { grep -qF -- "$1" "$T/err"; }
says_i() { grep -qi -- "$1" "$T/err"; }

# killed_once PATTERN FILE BINARY ARGS...: runs BINARY ARGS in the background and kills it
# (SIGKILL) as soon as FILE holds PATTERN (a commit it wrote), or after two minutes; a
# --resume of the same run should then end as an uninterrupted one.
killed_once() {
    pattern=$1 file=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err" &
    pid=$!
    n=0
    while ! grep -q "$pattern" "$file" 2>/dev/null && [ $n -lt 2400 ]; do sleep 0.05; n=$((n + 1)); done
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
}
