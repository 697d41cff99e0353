#!/bin/sh
# Writes that fail: `nepenthe train` and `nepenthe prune` with --out on a file system that
# fills up mid-run, or that is read-only.
#
# usage (from the repository root): tests/fault_test.sh [BINARY]
#                                   (default build/asan/nepenthe)
#
# The faults come from tests/tools/failwrite.c, an LD_PRELOAD shim built here into the
# temporary directory: deterministic and needing no privilege, so this path is always
# taken. It is preloaded after the ASan runtime (LD_PRELOAD="libasan.so.8 failwrite.so")
# when the binary links one dynamically, since ASan must be the first object searched;
# its interceptors then call through to the shim. The error paths thus run under ASan,
# UBSan and the leak checker. Where mounting a tmpfs works (root, no container
# restriction) the same is done once more on a real, small tmpfs.
#
# A traced reference run records every write under --out (file, bytes before it, size);
# each fault then lets through the bytes up to the middle of one chosen file write (a
# checkpoint, a log line, progress.json, a figure, summary.json) and fails everything
# after with ENOSPC, as a full disk does. After each fault:
# - the command exits non-zero with a message naming the file and the errno text, and
#   the trace shows the fault landed in the chosen write;
# - no temporary file is left in --out, every checkpoint in it loads (`info --ckpt`),
#   the checkpoint is the last finished epoch's, and the logs hold whole JSON lines;
# - once space is back, --resume exits 0 and ends byte-identical to an uninterrupted
#   run (train: model and checkpoint; prune: iter_K, progress.json and the figures),
#   its logs equal row for row but for wall time, summary.json equal but for the
#   directory.
# Read-only --out (EROFS from the shim; root could write to a chmod'ed directory): a new
# directory under a read-only one, an existing empty one, and --resume of a finished run
# each fail naming the path and "Read-only file system", and leave everything as it was.
#
# Checks are shell code in single quotes, expanded when check evaluates them; variables
# set for a check are read inside its quoted condition:
# shellcheck disable=SC2016,SC2086,SC2034
BIN=${1:-build/asan/nepenthe}
. "$(dirname "$0")/lib.sh"

# v CHECK ARGS...: runs one of the Python checks below; its assertion message is the reason.
v() { $PY "$T/verify.py" "$@"; }
cat >"$T/verify.py" <<'EOF'
"""Checks on the traces and run directories; each subcommand exits non-zero with a reason."""
import json
import os
import re
import sys

sys.path.insert(0, os.environ["NEP_TOOLS"])
import safetensors_np as st  # noqa: E402


def fail(msg):
    sys.exit(msg)


def writes(trace):
    """The trace's file writes in order: [open#, first byte, bytes, path] per opened file."""
    files = {}
    for line in open(trace):
        f = line.split()
        if f[0] == "W":
            n, start, size, path = int(f[1]), int(f[2]), int(f[3]), f[4]
            w = files.setdefault(n, [n, start, 0, path])
            w[2] += size
    return list(files.values())


def pick(trace, name, k):
    """Bytes to let through: up to the middle of the k-th write of a file named ~ name."""
    hits = [w for w in writes(trace) if re.match(name, os.path.basename(w[3]))]
    if len(hits) < int(k):
        fail("%s: only %d writes of %s" % (trace, len(hits), name))
    w = hits[int(k) - 1]
    print(w[1] + w[2] // 2)


def failed_in(trace, name):
    """The first injected failure hit a file named ~ name."""
    for line in open(trace):
        f = line.split()
        if f[0] == "F":
            path = f[-1]
            if not re.match(name, os.path.basename(path)):
                fail("the first failure hit %s, not %s" % (path, name))
            return
    fail("%s: no failure was injected" % trace)


def jsonl(path):
    """Whole lines only, each a JSON object (no partial line left by a failed append)."""
    if not os.path.exists(path):
        return
    data = open(path, "rb").read()
    if data and not data.endswith(b"\n"):
        fail("%s ends in a partial line: %r" % (path, data[-60:]))
    for i, line in enumerate(data.decode().splitlines()):
        try:
            if not isinstance(json.loads(line), dict):
                raise ValueError("not an object")
        except ValueError as e:
            fail("%s line %d: %s: %r" % (path, i + 1, e, line[:80]))


def rows(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def same_rows(a, b):
    """Two logs agree row for row in everything but wall time and speed."""
    ra, rb = rows(a), rows(b)
    for x in ra + rb:
        for k in ("seconds", "img_per_s"):
            x.pop(k, None)
    if ra != rb:
        fail("%s and %s differ: %d and %d rows; first differing: %s" %
             (a, b, len(ra), len(rb), str([(x, y) for x, y in zip(ra, rb) if x != y][:1])[:600]))


def same_summary(a, b):
    """summary.json of two runs equal once b's directory is read as a's."""
    ja = json.load(open(os.path.join(a, "summary.json")))
    jb = json.loads(open(os.path.join(b, "summary.json")).read().replace(b, a))
    if ja != jb:
        fail("summaries differ: %s vs %s" % (ja, jb))


def meta(path, key, want):
    """A checkpoint's __metadata__ entry."""
    _, m = st.load(path)
    if m.get(key) != want:
        fail("%s: %s is %r, want %r" % (path, key, m.get(key), want))


def progress(d, want):
    """progress.json names iteration want (the last one finished before the fault)."""
    p = json.load(open(os.path.join(d, "progress.json")))
    if p.get("iter") != int(want):
        fail("%s/progress.json: iter %r, want %s" % (d, p.get("iter"), want))


cmd, args = sys.argv[1], sys.argv[2:]
{"pick": pick, "failed_in": failed_in, "jsonl": jsonl, "same_rows": same_rows,
 "same_summary": same_summary, "meta": meta, "progress": progress}[cmd](*args)
EOF
export NEP_TOOLS="$HERE/tools"

# --- the shim ------------------------------------------------------------------------
SHIM=$T/failwrite.so
if ! cc -std=c11 -O1 -Wall -shared -fPIC -o "$SHIM" "$HERE/tools/failwrite.c" -ldl 2>"$T/cc_err"; then
    echo "not ok - build tests/tools/failwrite.c"; sed 's/^/  # /' "$T/cc_err"
    echo "0 passed, 1 failed"; exit 1
fi
ASAN_RT=$(ldd "$BIN" 2>/dev/null | awk '/libasan/ { print $3; exit }')
PRELOAD="${ASAN_RT:+$ASAN_RT }$SHIM"

# fault DIR SETTING... -- ARGS...: runs the binary like nep with the shim preloaded,
# affecting the paths under DIR; SETTINGs are NEP_FAIL_*=VALUE words (no spaces).
fault() {
    settings="NEP_FAIL_PATH_PREFIX=$1"
    shift
    while [ "$1" != -- ]; do settings="$settings $1"; shift; done
    shift
    env LD_PRELOAD="$PRELOAD" $settings "$BIN" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}

# no_tmp DIR: no temporary file of nep_write_atomic left behind.
no_tmp() {
    left=$(find "$1" -name '*.tmp.*' 2>/dev/null)
    [ -z "$left" ] || { echo "left: $left" >&2; false; }
}
# all_load DIR: every checkpoint in DIR loads (`info --ckpt`).
all_load() {
    for f in "$1"/*.safetensors; do
        [ -e "$f" ] || continue
        "$BIN" info --ckpt "$f" >/dev/null 2>"$T/info_err" || { echo "$f:" >&2; cat "$T/info_err" >&2; return 1; }
    done
}
# snap DIR: every name under DIR and the checksum of every file.
snap() { (cd "$1" && find . | sort && find . -type f | sort | xargs -r cksum); }

D=$T/data
$PY "$HERE/tools/make_idx.py" "$D" --train 600 --test 200 ||
    { echo "not ok - make_idx.py"; echo "0 passed, 1 failed"; exit 1; }
TRAIN="--data-dir $D --batch 64 --threads 1 --hidden 32,32 --val 100 --epochs 3 --seed 1"

# --- train: references ---------------------------------------------------------------
# Run directories have names of one length (t0, t1, ...) so that the bytes written,
# which hold no path but summary.json's, line up with the reference trace.
nep train $TRAIN --out "$T/t0"
check "train: uninterrupted reference run" 'succeeded && [ -s "$T/t0/model.safetensors" ]'
fault "$T/tr/" NEP_FAIL_TRACE="$T/tr.trace" -- train $TRAIN --out "$T/tr"
check "train under the shim without a fault: exits 0, same model and checkpoint bytes, trace written" \
    'succeeded && cmp "$T/t0/model.safetensors" "$T/tr/model.safetensors" >&2 &&
     cmp "$T/t0/checkpoint.safetensors" "$T/tr/checkpoint.safetensors" >&2 && grep -q "^W .*log.jsonl" "$T/tr.trace"'

# train_fault NAME WHAT FILE K EPOCH: disk full in the middle of the K-th write of FILE
# (a regular expression on the file's name; EPOCH: the epoch the checkpoint holds after
# it, 0 for none), then --resume.
train_fault() {
    d=$T/$1 what=$2 file=$3 k=$4 ep=$5
    n=$(v pick "$T/tr.trace" "$file" "$k") || { check "train, $what: pick the byte to fail at" false; return; }
    fault "$d/" NEP_FAIL_WRITE_AFTER="$n" NEP_FAIL_TRACE="$d.trace" -- train $TRAIN --out "$d"
    base=$(echo "$file" | sed 's/\\//g; s/[.]tmp.*//; s/\$$//')
    check "train, disk full $what: non-zero exit naming $base and 'No space left on device'" \
        'failed_cleanly && says "$d/$base" && says "No space left on device"'
    check "train, disk full $what: the fault hit that write" 'v failed_in "$d.trace" "$file"'
    check "train, disk full $what: no temporary file left, every checkpoint loads, log.jsonl whole lines" \
        'no_tmp "$d" && all_load "$d" && v jsonl "$d/log.jsonl"'
    if [ "$ep" -gt 0 ]; then
        check "train, disk full $what: checkpoint.safetensors holds epoch $ep" \
            'v meta "$d/checkpoint.safetensors" epoch "$ep"'
    else
        check "train, disk full $what: no checkpoint yet" '[ ! -e "$d/checkpoint.safetensors" ]'
    fi
    nep train $TRAIN --out "$d" --resume
    check "train, disk full $what: --resume with space back exits 0" succeeded
    check "train, disk full $what: then model and checkpoint byte-identical to the uninterrupted run's" \
        'cmp "$T/t0/model.safetensors" "$d/model.safetensors" >&2 && cmp "$T/t0/checkpoint.safetensors" "$d/checkpoint.safetensors" >&2'
    check "train, disk full $what: then log.jsonl equals the uninterrupted run's row for row" \
        'v jsonl "$d/log.jsonl" && v same_rows "$T/t0/log.jsonl" "$d/log.jsonl"'
}
train_fault t1 "writing epoch 2's checkpoint" 'checkpoint\.safetensors\.tmp' 2 1
train_fault t2 "appending epoch 2's log line" 'log\.jsonl$' 2 1
train_fault t3 "writing epoch 3's model" 'model\.safetensors\.tmp' 3 2
train_fault t4 "writing epoch 1's model" 'model\.safetensors\.tmp' 1 0

# The Nth-write-call mode and another errno: the message carries the errno's own text.
fault "$T/t5/" NEP_FAIL_WRITE_CALL=1 NEP_FAIL_ERRNO=EDQUOT -- train $TRAIN --out "$T/t5"
check "train, EDQUOT at the first write: non-zero exit naming model.safetensors and 'Disk quota exceeded'" \
    'failed_cleanly && says "$T/t5/model.safetensors" && says "Disk quota exceeded" && no_tmp "$T/t5"'

# --- prune -----------------------------------------------------------------------------
DENSE=$T/t0/model.safetensors
PRUNE="--ckpt $DENSE --data-dir $D --batch 64 --threads 1 --delta 0 --max-iter 3 --retrain-epochs 1"
nep prune $PRUNE --out "$T/p0"
check "prune: uninterrupted reference run (3 iterations)" 'succeeded && [ -s "$T/p0/summary.json" ]'
fault "$T/pr/" NEP_FAIL_TRACE="$T/pr.trace" -- prune $PRUNE --out "$T/pr"
check "prune under the shim without a fault: exits 0, iter_3 bytes as without it" \
    'succeeded && cmp "$T/p0/iter_3.safetensors" "$T/pr/iter_3.safetensors" >&2'

# prune_fault NAME WHAT FILE K ITER: disk full in the middle of the K-th write of FILE;
# ITER: the iteration progress.json names after it (-1: no progress.json yet).
prune_fault() {
    d=$T/$1 what=$2 file=$3 k=$4 it=$5
    n=$(v pick "$T/pr.trace" "$file" "$k") || { check "prune, $what: pick the byte to fail at" false; return; }
    fault "$d/" NEP_FAIL_WRITE_AFTER="$n" NEP_FAIL_TRACE="$d.trace" -- prune $PRUNE --out "$d"
    base=$(echo "$file" | sed 's/\\//g; s/[.]tmp.*//; s/\$$//')
    check "prune, disk full $what: non-zero exit naming $base and 'No space left on device'" \
        'failed_cleanly && says "$d/$base" && says "No space left on device"'
    check "prune, disk full $what: the fault hit that write" 'v failed_in "$d.trace" "$file"'
    check "prune, disk full $what: no temporary file, every iter_K loads, iterations.jsonl whole lines" \
        'no_tmp "$d" && all_load "$d" && v jsonl "$d/iterations.jsonl"'
    if [ "$it" -ge 0 ]; then
        check "prune, disk full $what: progress.json names iteration $it" 'v progress "$d" "$it"'
    else
        check "prune, disk full $what: no progress.json yet" '[ ! -e "$d/progress.json" ]'
    fi
    nep prune $PRUNE --out "$d" --resume
    check "prune, disk full $what: --resume with space back exits 0" succeeded
    same=""
    for f in iter_1.safetensors iter_2.safetensors iter_3.safetensors progress.json \
             fig_entropy.svg fig_accuracy.svg fig_states.svg; do
        cmp -s "$T/p0/$f" "$d/$f" || same="$same $f"
    done
    check "prune, disk full $what: then iter_1..3, progress.json and figures byte-identical to the uninterrupted run's${same:+ (differ:$same)}" \
        '[ -z "$same" ]'
    check "prune, disk full $what: then iterations.jsonl equal row for row, summary.json equal" \
        'v jsonl "$d/iterations.jsonl" && v same_rows "$T/p0/iterations.jsonl" "$d/iterations.jsonl" && v same_summary "$T/p0" "$d"'
}
prune_fault p1 "writing iter_2.safetensors" 'iter_2\.safetensors\.tmp' 1 1
prune_fault p2 "appending iteration 2's log line" 'iterations\.jsonl$' 3 1
prune_fault p3 "writing iteration 2's progress.json" 'progress\.json\.tmp' 3 1
prune_fault p4 "appending the dense model's log line" 'iterations\.jsonl$' 1 -1
prune_fault p5 "writing fig_accuracy.svg" 'fig_accuracy\.svg\.tmp' 1 3
prune_fault p6 "writing summary.json" 'summary\.json\.tmp' 1 3

# --- read-only --out ---------------------------------------------------------------------
RO=$T/ro
mkdir -p "$RO/empty"
cp -R "$T/t0" "$RO/trun"
cp -R "$T/p0" "$RO/prun"
snap "$RO" >"$T/ro.before"
# readonly_case LABEL ARGS...: the command, with everything under $RO read-only, fails
# naming $path.
readonly_case() {
    label=$1
    shift
    fault "$RO" NEP_FAIL_READONLY=1 -- "$@"
    check "read-only: $label: non-zero exit naming $path and 'Read-only file system'" \
        'failed_cleanly && says "$path" && says "Read-only file system"'
}
path=$RO/new
readonly_case "train --out a new directory" train $TRAIN --out "$RO/new"
path=$RO/empty/model.safetensors
readonly_case "train --out an existing empty directory" train $TRAIN --out "$RO/empty"
path=$RO/trun/log.jsonl
# (the last --epochs given counts)
readonly_case "train --resume --epochs 4 of a finished run" train $TRAIN --epochs 4 --out "$RO/trun" --resume
path=$RO/new
readonly_case "prune --out a new directory" prune $PRUNE --out "$RO/new"
path=$RO/empty/iterations.jsonl
readonly_case "prune --out an existing empty directory" prune $PRUNE --out "$RO/empty"
path=$RO/prun/iterations.jsonl
readonly_case "prune --resume --max-iter 4 of a finished run" prune $PRUNE --max-iter 4 --out "$RO/prun" --resume
snap "$RO" >"$T/ro.after"
check "read-only: nothing was created, removed or changed" 'diff "$T/ro.before" "$T/ro.after" >&2'

# --- a real small tmpfs, where mounting is allowed ------------------------------------------
M=$T/mnt
mkdir "$M"
if mount -t tmpfs -o size=4m tmpfs "$M" 2>/dev/null; then
    trap 'umount "$M" 2>/dev/null; rm -rf "$T"' EXIT
    PAGE=$(getconf PAGESIZE)
    pages() { echo $(( ($(wc -c <"$1") + PAGE - 1) / PAGE )); }
    # fill_but PAGES: a filler file leaves that many pages of the 4 MiB free.
    fill_but() { rm -f "$M/fill"; head -c $(( 4 * 1024 * 1024 - $1 * PAGE )) /dev/zero >"$M/fill"; }
    # train: epoch 1 needs model + log + checkpoint's temporary; epoch 2's model
    # temporary runs out half way.
    m=$(pages "$T/t0/model.safetensors") c=$(pages "$T/t0/checkpoint.safetensors")
    fill_but $(( m + c + 1 + m / 2 ))
    nep train $TRAIN --out "$M/t"
    check "tmpfs: train fills it writing epoch 2's model: non-zero exit naming it, 'No space left on device'" \
        'failed_cleanly && says "$M/t/model.safetensors" && says "No space left on device"'
    check "tmpfs: no temporary file, checkpoint of epoch 1 loads, log.jsonl whole lines" \
        'no_tmp "$M/t" && all_load "$M/t" && v meta "$M/t/checkpoint.safetensors" epoch 1 && v jsonl "$M/t/log.jsonl"'
    rm -f "$M/fill"
    nep train $TRAIN --out "$M/t" --resume
    check "tmpfs: space freed, train --resume ends byte-identical to the uninterrupted run" \
        'succeeded && cmp "$T/t0/model.safetensors" "$M/t/model.safetensors" >&2 && v same_rows "$T/t0/log.jsonl" "$M/t/log.jsonl"'
    # prune: iter_1 and iter_2 fit, iter_3 runs out half way.
    rm -rf "$M/t"
    i=$(pages "$T/p0/iter_1.safetensors")
    fill_but $(( 5 * i / 2 + 4 ))
    nep prune $PRUNE --out "$M/p"
    check "tmpfs: prune fills it writing iter_3: non-zero exit naming it, 'No space left on device'" \
        'failed_cleanly && says "$M/p/iter_3.safetensors" && says "No space left on device"'
    check "tmpfs: no temporary file, iter_1, iter_2 load, progress at 2, iterations.jsonl whole lines" \
        'no_tmp "$M/p" && all_load "$M/p" && v progress "$M/p" 2 && v jsonl "$M/p/iterations.jsonl"'
    rm -f "$M/fill"
    nep prune $PRUNE --out "$M/p" --resume
    check "tmpfs: space freed, prune --resume ends byte-identical to the uninterrupted run" \
        'succeeded && cmp "$T/p0/iter_3.safetensors" "$M/p/iter_3.safetensors" >&2 && v same_rows "$T/p0/iterations.jsonl" "$M/p/iterations.jsonl"'
    umount "$M"
else
    echo "# skipped: the tmpfs part (mounting is not allowed here); the shim covered the same"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
