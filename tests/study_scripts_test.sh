#!/bin/sh
# End-to-end test of the study scripts scripts/baselines.sh (paper Tables 2 and 3) and
# scripts/ablation.sh (paper Table 5) in QUICK mode: a residual MLP on a generated data
# set, every run under a temporary OUT and RESULTS.
#
# usage (from the repository root): tests/study_scripts_test.sh [BINARY]
#                                   (default build/nepenthe: the runs take seconds)
#
# Each check prints "ok - NAME" or "not ok - NAME"; the last line is "N passed, M failed"
# and the exit status is non-zero if any check failed. What is checked:
# - baselines.sh: every method's run directory holds a complete run (ITERS iterations,
#   summary.json); its table parses as Markdown tables with the expected rows in the
#   paper's order, and each row's numbers (reported iteration by the δ rule, recomputed
#   here; val/test top-1, Rem./|L|, zero-entropy layers, sparsity, stopped by) equal the
#   run's iterations.jsonl and summary.json, the dense row its log.jsonl and a fresh
#   `nepenthe eval`; the sharpness table equals every iteration's "sharpness" of NEPENTHE
#   and IMP (and only they have one); the paper's Table 2 column and Table 3 are there;
#   the header names this commit and CPU; every logged prune command is the one its run
#   was started with (a --resume of it is accepted and changes nothing); a second run
#   changes no run and writes the same tables; a run killed midway and run again ends
#   with the same iterations as the uninterrupted one; results/ and runs/ are untouched;
# - ablation.sh: it reuses the baselines' dense model, NEPENTHE and IMP (unchanged); the
#   ablation runs were started with the switches of their rows (progress.json); the
#   depth-matched model has exactly NEPENTHE's zero-entropy layers (at the reported
#   iteration, recomputed here) as op Identity in `nepenthe info`, the dense model has
#   them as ReLU; the table's rows are paper Table 5's, with the runs' numbers and the
#   paper's values; both SVG figures parse and name their runs.
# The checks' shell code is in single quotes, expanded when check evaluates it:
# shellcheck disable=SC2016,SC2086,SC2034,SC2154,SC1091
BIN=${1:-build/nepenthe}
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$HERE/.." && pwd)
cd "$ROOT" || exit 1
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
# Only QUICK's defaults: nothing from the caller's environment.
unset MODEL MODEL_FLAGS DATA DATA_DIR VAL TAG DENSE_EPOCHS DENSE_LR DENSE_MILESTONES BATCH \
    MOMENTUM WD SEED ITERS RETRAIN ZETA RETRAIN_LR RETRAIN_MILESTONES THREADS SHARP_BATCHES \
    LAMBDA SSL_THRESHOLD HRANK_ZETA HRANK_BATCHES HRANK_MODEL HRANK_MODEL_FLAGS METHODS DELTA \
    BASELINES_SOURCED
ITERS=2                      # QUICK's
TAG=resmlp-quick             # QUICK's
METHODS="nepenthe imp egp smallest-weights smallest-grads ssl nepenthe-ssl hrank"
OUT=$T/runs RES=$T/results
B=$OUT/baselines/$TAG A=$OUT/ablation/$TAG
v() { $PY "$T/verify.py" "$@"; }
# quick SCRIPT [VAR=VALUE...]: runs a study script in QUICK mode; output in $T/out, $T/err.
quick() {
    s=$1
    shift
    env QUICK=1 OUT="$OUT" RESULTS="$RES" BIN="$BIN" "$@" sh "scripts/$s.sh" >"$T/out" 2>"$T/err"
    rc=$?
}
# digest DIR...: one line per run file that matters (iterations, summaries, checkpoints).
digest() { find "$@" -type f \( -name '*.jsonl' -o -name 'summary.json' -o -name '*.safetensors' \) | sort | xargs md5sum; }

cat >"$T/verify.py" <<'EOF'
"""Checks of the study scripts' outputs; each subcommand exits non-zero with a reason."""
import json
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

# The paper's values, transcribed here independently of the table scripts.
T2 = {"dense": ("91.66", "0/17"), "smallest-weights": ("10.00", "1/17"),
      "smallest-grads": ("9.29", "1/17"), "hrank": ("91.70", "0/17"), "ssl": ("92.11", "1/17"),
      "imp": ("91.66", "0/17"), "egp": ("92.18", "3/17"), "nepenthe": ("92.55", "3/17")}
T3 = [("Dense", "20.62", "91.54", "0/12"), ("IMP (iter #1)", "6.78", "91.73", "0/12"),
      ("IMP (iter #7)", "7.66", "90.53", "0/12"), ("NEPENTHE (iter #4)", "1.17", "92.31", "0/12"),
      ("NEPENTHE (iter #5)", "1.85", "92.29", "2/12"), ("NEPENTHE (iter #7)", "1.72", "92.11", "2/12")]
T5 = [("imp", "91.66", "0/17"), ("budget", "92.18", "3/17"), ("budget-dontcare", "92.33", "3/17"),
      ("nepenthe", "92.55", "3/17"), ("depth-matched", "91.57", "3/17")]
ORDER = ["smallest-weights", "smallest-grads", "hrank", "ssl", "imp", "egp", "nepenthe", "nepenthe-ssl"]


def fail(msg):
    sys.exit(msg)


def jload(path):
    with open(path) as f:
        return json.load(f)


def rows(run):
    with open(os.path.join(run, "iterations.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def rule(rs, delta):
    """The reported iteration: the last before the first val < delta x iteration 0's."""
    for i in range(1, len(rs)):
        if rs[i]["val_top1"] < delta * rs[0]["val_top1"]:
            return i - 1
    return len(rs) - 1


def zero(r):
    return [n for n, h in zip(r["names"], r["entropy"]) if h == 0]


def tables(md):
    """Every Markdown table: (header cells, row cells), each row as wide as the header."""
    out, block = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            cells = [[c.strip() for c in re.split(r"(?<!\\)\|", l)[1:-1]] for l in block]
            if len(cells) < 2 or not all(re.fullmatch(r":?-+:?", c) for c in cells[1]):
                fail("not a table (no separator row): %s" % block[:2])
            for c in cells:
                if len(c) != len(cells[0]):
                    fail("row %s has %d cells, the header %d" % (c, len(c), len(cells[0])))
            out.append((cells[0], cells[2:]))
            block = []
    return out


def table(md, first_cols):
    for head, body in tables(md):
        if head[:len(first_cols)] == first_cols:
            return head, [dict(zip(head, r)) for r in body]
    fail("no table with columns %s" % first_cols)


def f2(x):
    return "%.2f" % x


def eq(what, got, want):
    if got != want:
        fail("%s: table says %r, the run %r" % (what, got, want))


def dense_log(d):
    with open(os.path.join(d, "log.jsonl")) as f:
        return [json.loads(l) for l in f if l.strip()][-1]


def fresh_eval(binary, ckpt, data_dir):
    """Test top-1 of a checkpoint by `nepenthe eval --json`, run here."""
    p = subprocess.run([binary, "eval", "--ckpt", ckpt, "--data-dir", data_dir, "--split", "test",
                        "--threads", "1", "--json"], capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])["test_top1"]


def row_matches(name, row, run, delta):
    rs = rows(run)
    k = rule(rs, delta)
    r = rs[k]
    eq(name + " reported iter", row["reported iter"], "%d of %d" % (k, rs[-1]["iter"]))
    eq(name + " val top-1", row["val top-1"], f2(r["val_top1"]))
    eq(name + " test top-1", row["test top-1"], f2(r["test_top1"]))
    eq(name + " Rem./|L|", row["Rem./\\|L\\|"], "%d/%d" % (r["removed"], r["layers"]))
    if len(zero(r)) != r["removed"]:
        fail("%s: removed %d but %d layers with entropy 0" % (name, r["removed"], len(zero(r))))
    eq(name + " removed layers", row["removed layers"], ", ".join("`%s`" % n for n in zero(r)) or "-")
    eq(name + " sparsity", row["sparsity"], "%.2f%%" % r["sparsity"])
    return rs, k


def baselines(root, md_path, iters, binary, data_dir):
    md = open(md_path).read()
    delta = 0.99
    _, body = table(md, ["approach", "method", "reported iter"])
    got = [r["method"].strip("`") for r in body]
    if got != ["train"] + ORDER:
        fail("rows %s, expected train then %s" % (got, ORDER))
    d = body[0]
    log = dense_log(os.path.join(root, "dense"))
    ev = jload(os.path.join(root, "dense", "eval.json"))["test_top1"]
    fresh = fresh_eval(binary, os.path.join(root, "dense", "model.safetensors"), data_dir)
    if abs(fresh - ev) > 1e-3:
        fail("dense eval.json %r, eval run now %r" % (ev, fresh))
    eq("dense val", d["val top-1"], f2(log["val_top1"]))
    eq("dense test", d["test top-1"], f2(ev))
    eq("dense paper", (d["paper top-1"], d["paper Rem."]), T2["dense"])
    for r in body[1:]:
        m = r["method"].strip("`")
        run = os.path.join(root, m)
        rs, _ = row_matches(m, r, run, delta)
        s = jload(os.path.join(run, "summary.json"))
        eq(m + " stopped by", r["stopped by"], s["stopped_by"])
        if len(rs) != iters + 1 and s["stopped_by"] == "max_iter":
            fail("%s: %d iterations logged, --max-iter %d" % (m, len(rs) - 1, iters))
        if s["dense_val_top1"] != rs[0]["val_top1"]:
            fail("%s: summary's dense val %r, iteration 0's %r" % (m, s["dense_val_top1"], rs[0]["val_top1"]))
        eq(m + " vs dense", r["vs dense"], "%+.2f" % (rs[rule(rs, delta)]["test_top1"] - rs[0]["test_top1"]))
        if m != "hrank" and abs(rs[0]["test_top1"] - ev) > 0.01:
            fail("%s: iteration 0 test top-1 %r, the dense model's eval %r" % (m, rs[0]["test_top1"], ev))
        if m in T2:
            eq(m + " paper", (r["paper top-1"], r["paper Rem."]), T2[m])
        has = ["sharpness" in x for x in rs]
        want = m in ("nepenthe", "imp")
        if has != [want] * len(rs):
            fail("%s: sharpness logged at iterations %s (expected %s)" % (m, has, "all" if want else "none"))
    print("baselines table: %d rows agree" % len(body))


def sharpness(root, md_path):
    md = open(md_path).read()
    head, body = table(md, ["approach", "sharpness", "val top-1"])
    imp, nep = rows(os.path.join(root, "imp")), rows(os.path.join(root, "nepenthe"))
    if imp[0]["sharpness"] != nep[0]["sharpness"]:
        fail("dense sharpness differs: imp %r, nepenthe %r" % (imp[0]["sharpness"], nep[0]["sharpness"]))
    want = [("Dense", imp[0])] + [("IMP (iter #%d)" % r["iter"], r) for r in imp[1:]] + \
           [("NEPENTHE (iter #%d)" % r["iter"], r) for r in nep[1:]]
    eq("sharpness rows", [r["approach"] for r in body], [w[0] for w in want])
    for row, (name, r) in zip(body, want):
        s = r["sharpness"]
        if not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0):
            fail("%s: sharpness %r" % (name, s))
        eq(name + " sharpness", row["sharpness"], "%.4g" % s)
        eq(name + " test", row["test top-1"], f2(r["test_top1"]))
        eq(name + " Rem.", row["Rem./\\|L\\|"], "%d/%d" % (r["removed"], r["layers"]))
    _, paper = table(md, ["approach", "sharpness", "top-1", "Rem."])
    got = {r["approach"]: (r["sharpness"], r["top-1"], r["Rem."]) for r in paper}
    if len(paper) != 15:
        fail("paper Table 3: %d rows, not 15" % len(paper))
    for row in T3:
        eq("paper Table 3 " + row[0], got.get(row[0]), row[1:])


def header(md_path, commit, cpu, isa):
    md = open(md_path).read()
    # HEAD when the test started or now (a commit may land while the scripts run)
    if not any(("commit `%s`" % c) in md for c in commit.split(",")):
        fail("no 'commit `%s`'" % commit)
    line = next((l for l in md.splitlines() if l.startswith("- **CPU:**")), "")
    if cpu not in line:
        fail("CPU line %r lacks %r" % (line, cpu))
    for f in ("avx2", "avx512f"):
        want = "%s %s" % (f, "yes" if f in isa.split() else "no")
        if want not in line:
            fail("CPU line %r lacks %r" % (line, want))
    if not re.search(r"- \*\*Date:\*\* started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", md):
        fail("no start date")
    if "```sh" not in md or "## Commands" not in md:
        fail("no commands block")


def commands(md_path, root, methods):
    """Prints the prune commands of the Markdown's commands block, one a line."""
    md = open(md_path).read()
    block = md.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [l for l in block.splitlines() if " prune " in l and not l.startswith("#")]
    for m in methods.split():
        out = "--out %s/%s --resume" % (root, m)
        if not any(("--method %s " % m) in l and l.endswith(out) for l in lines):
            fail("no prune command for %s ending %r" % (m, out))
    if not any(" train " in l for l in block.splitlines()):
        fail("no train command")
    print("\n".join(lines))


def same_iterations(a, b, methods):
    """The runs under a and b logged the same iterations (wall-clock seconds aside)."""
    for m in methods.split():
        ra, rb = rows(os.path.join(a, m)), rows(os.path.join(b, m))
        for x in ra + rb:
            x.pop("seconds", None)
        if ra != rb:
            fail("%s: iterations differ after the killed run was resumed" % m)


def no_dates(md_path):
    """The Markdown up to its commands block, without the date line."""
    md = open(md_path).read().split("## Commands", 1)[0]
    print("\n".join(l for l in md.splitlines() if not l.startswith("- **Date:**")))


def options(run, want):
    o = json.loads(jload(os.path.join(run, "progress.json"))["options"])
    for kv in want.split(","):
        k, v = kv.split("=")
        got = o.get(k)
        got = ("true" if got else "false") if isinstance(got, bool) else str(got)
        if got != v:
            fail("%s: option %s is %r, expected %s" % (run, k, o.get(k), v))


def identity(base, dm, delta, info_dm, info_dense):
    rs = rows(os.path.join(base, "nepenthe"))
    r = rs[rule(rs, delta)]
    z = zero(r)
    if not z:
        fail("NEPENTHE removed no layer at its reported iteration %d: nothing to check" % r["iter"])
    with open(os.path.join(dm, "identity.txt")) as f:
        eq("identity.txt", f.read().strip(), ",".join(z))
    ops = {l["name"]: l["op"] for l in jload(info_dm)["layers"]}
    dense_ops = {l["name"]: l["op"] for l in jload(info_dense)["layers"]}
    for n in r["names"]:
        want = "Identity" if n in z else dense_ops.get(n)
        if dense_ops.get(n) != "ReLU":
            fail("dense model: %s is %r, not ReLU" % (n, dense_ops.get(n)))
        if ops.get(n) != want:
            fail("depth-matched model: %s is %r, expected %s" % (n, ops.get(n), want))
    print("identity layers: %s" % z)


def ablation(ab, base, md_path, delta, binary, data_dir):
    md = open(md_path).read()
    _, body = table(md, ["entropy budget", "don't care", "neuron selection", "run"])
    if len(body) != 6:
        fail("%d rows, expected the dense model and Table 5's five" % len(body))
    eq("dense row", body[0]["run"].split(" ")[0], "Dense")
    runs = {"imp": os.path.join(base, "imp"), "budget": os.path.join(ab, "budget"),
            "budget-dontcare": os.path.join(ab, "budget-dontcare"), "nepenthe": os.path.join(base, "nepenthe")}
    comps = {"imp": ("off", "off", "off"), "budget": ("on", "off", "off"),
             "budget-dontcare": ("on", "on", "off"), "nepenthe": ("on", "on", "on")}
    ev = jload(os.path.join(base, "dense", "eval.json"))["test_top1"]
    for row, (key, top1, rem) in zip(body[1:], T5):
        eq(key + " paper", (row["paper top-1"], row["paper Rem."]), (top1, rem))
        if key == "depth-matched":
            continue
        if "(`%s`)" % os.path.basename(runs[key]) not in row["run"]:
            fail("row %r is not %s's" % (row["run"], key))
        eq(key + " components", (row["entropy budget"], row["don't care"], row["neuron selection"]), comps[key])
        rs, k = row_matches(key, row, runs[key], delta)
        eq(key + " vs dense", row["vs dense"], "%+.2f" % (rs[k]["test_top1"] - ev))
    row = body[5]
    if not row["entropy budget"].startswith("Depth-reduced model trained from initialization"):
        fail("last row %r" % row["entropy budget"])
    dm = os.path.join(ab, "depth-matched")
    with open(os.path.join(dm, "identity.txt")) as f:
        ident = f.read().strip().split(",")
    layers = rows(runs["nepenthe"])[0]["layers"]
    eq("depth-matched Rem.", row["Rem./\\|L\\|"], "%d/%d" % (len(ident), layers))
    eq("depth-matched layers", row["removed layers"], ", ".join("`%s`" % n for n in ident))
    eq("depth-matched val", row["val top-1"], f2(dense_log(dm)["val_top1"]))
    eq("depth-matched test", row["test top-1"],
       f2(fresh_eval(binary, os.path.join(dm, "model.safetensors"), data_dir)))


def svg(path, labels):
    texts = [t.text or "" for t in ET.parse(path).iter() if t.tag.endswith("text")]
    for l in labels.split(","):
        if l not in texts:
            fail("%s: no label %r among %s" % (path, l, texts))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "baselines":
        baselines(args[0], args[1], int(args[2]), args[3], args[4])
    elif cmd == "ablation":
        ablation(args[0], args[1], args[2], float(args[3]), args[4], args[5])
    elif cmd == "identity":
        identity(args[0], args[1], float(args[2]), args[3], args[4])
    else:
        globals()[cmd](*args)
EOF

COMMIT=$(git rev-parse --short HEAD)
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
ISA=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -x 'avx2\|avx512f' | tr '\n' ' ')
# The paths a QUICK run would write in the repository if it ignored OUT and RESULTS.
touch "$T/stamp"
sleep 1
untouched() {
    for p in results/baselines-$TAG.md results/ablation-$TAG.md runs/quick runs/baselines/$TAG \
        runs/ablation/$TAG; do
        if [ -e "$p" ] && [ -n "$(find "$p" -newer "$T/stamp" | head -n 1)" ]; then
            echo "$p was written" >&2
            return 1
        fi
    done
}

# --- scripts/baselines.sh ------------------------------------------------------------
quick baselines
check "baselines.sh (QUICK=1) succeeds" '[ "$rc" -eq 0 ]'
MD=$RES/baselines-$TAG.md
DATA=$OUT/data
for m in $METHODS; do
    check "baselines.sh: $m has a complete run directory" \
        '[ -f "$B/$m/iterations.jsonl" ] && [ -f "$B/$m/summary.json" ] && [ -f "$B/$m/iter_$ITERS.safetensors" ]'
done
check "baselines.sh: the dense model, its log and eval.json" \
    '[ -f "$B/dense/model.safetensors" ] && [ -f "$B/dense/log.jsonl" ] && [ -f "$B/dense/eval.json" ]'
check "baselines.sh: HRank pruned a conv net (dense-cnn)" \
    'v options "$B/hrank" "ckpt=$B/dense-cnn/model.safetensors,method=hrank"'
check "baselines table: rows in Table 2 order, numbers equal the runs (δ 0.99 recomputed)" \
    'v baselines "$B" "$MD" "$ITERS" "$BIN" "$DATA"'
check "baselines table: sharpness per iteration equals NEPENTHE's and IMP's logs; paper Table 3" \
    'v sharpness "$B" "$MD"'
check "baselines table: header names the commit, the CPU and its avx2/avx512f" \
    'v header "$MD" "$COMMIT,$(git rev-parse --short HEAD)" "$CPU" "$ISA"'
check "baselines table: the commands block has every method's prune command" \
    'v commands "$MD" "$B" "$METHODS" >"$T/prunes"'
digest "$B" >"$T/digest1"
resumed=0
while read -r line; do
    # each logged command, run again: resume accepts only the options the run started with
    if sh -c "$line" >"$T/rout" 2>&1 && grep -q "^resuming" "$T/rout"; then resumed=$((resumed + 1)); fi
done <"$T/prunes"
check "baselines: each logged prune command resumes its run (same options)" '[ "$resumed" -eq 8 ]'
digest "$B" >"$T/digest2"
check "baselines: resuming the logged commands changed no run file" 'cmp -s "$T/digest1" "$T/digest2"'
check "baselines.svg parses and names every method" \
    'v svg "$RES/baselines-$TAG.svg" "nepenthe,imp,egp,smallest-weights,smallest-grads,ssl,nepenthe-ssl,hrank"'

v no_dates "$MD" >"$T/md1"
quick baselines
check "baselines.sh run again succeeds" '[ "$rc" -eq 0 ]'
digest "$B" >"$T/digest3"
check "baselines.sh run again changes no run file" 'cmp -s "$T/digest1" "$T/digest3"'
v no_dates "$MD" >"$T/md2"
check "baselines.sh run again writes the same table (dates aside)" 'cmp -s "$T/md1" "$T/md2"'
check "baselines.sh run again: the dense training is skipped" \
    'grep -q "^# present, not run again: .* train --model" "$B/commands.sh"'

# Killed midway (the whole process group, once the EGP run has begun), then run again.
OUT0=$OUT
OUT=$T/killed
mkdir -p "$OUT"
env QUICK=1 OUT="$OUT" RESULTS="$T/killed-results" BIN="$BIN" setsid sh scripts/baselines.sh \
    >"$T/out" 2>"$T/err" &
pid=$!
n=0
while [ ! -f "$OUT/baselines/$TAG/egp/progress.json" ] && [ $n -lt 1200 ] && kill -0 $pid 2>/dev/null; do
    sleep 0.05
    n=$((n + 1))
done
kill -9 -$pid 2>/dev/null
wait $pid 2>/dev/null
check "baselines.sh killed midway: it had not finished" '[ ! -f "$T/killed-results/baselines-$TAG.md" ]'
RES0=$RES
RES=$T/killed-results
quick baselines
check "baselines.sh run again after the kill succeeds" '[ "$rc" -eq 0 ]'
check "baselines.sh after the kill: the same iterations as the uninterrupted run" \
    'v same_iterations "$OUT0/baselines/$TAG" "$OUT/baselines/$TAG" "$METHODS"'
OUT=$OUT0 RES=$RES0

# --- scripts/ablation.sh -------------------------------------------------------------
# δ = 0 (the last iteration is reported): NEPENTHE's zero-entropy layers at its last iteration.
quick ablation DELTA=0
check "ablation.sh (QUICK=1, DELTA=0) succeeds" '[ "$rc" -eq 0 ]'
digest "$B" >"$T/digest4"
check "ablation.sh reused the baselines' dense model, NEPENTHE and IMP (unchanged)" \
    'cmp -s "$T/digest1" "$T/digest4" && [ ! -d "$A/nepenthe" ] && [ ! -d "$A/imp" ]'
for d in budget budget-dontcare depth-matched; do
    check "ablation.sh: $d exists" '[ -d "$A/$d" ]'
done
check "ablation: budget was run with the entropy budget only" \
    'v options "$A/budget" "method=nepenthe,entropy_budget=true,dont_care=false,neuron_selection=false,ckpt=$B/dense/model.safetensors"'
check "ablation: budget-dontcare with the budget and don't care, no neuron selection" \
    'v options "$A/budget-dontcare" "method=nepenthe,entropy_budget=true,dont_care=true,neuron_selection=false,ckpt=$B/dense/model.safetensors"'
check "ablation: NEPENTHE with all three" \
    'v options "$B/nepenthe" "method=nepenthe,entropy_budget=true,dont_care=true,neuron_selection=true"'
nep info --ckpt "$A/depth-matched/model.safetensors" --json
cp "$T/out" "$T/info_dm.json"
nep info --ckpt "$B/dense/model.safetensors" --json
cp "$T/out" "$T/info_dense.json"
check "ablation: the depth-matched model has NEPENTHE's zero-entropy layers as op Identity" \
    'v identity "$B" "$A/depth-matched" 0 "$T/info_dm.json" "$T/info_dense.json"'
MDA=$RES/ablation-$TAG.md
check "ablation table: Table 5's rows, the runs' numbers and the paper's" \
    'v ablation "$A" "$B" "$MDA" 0 "$BIN" "$DATA"'
check "ablation table: header names the commit, the CPU and its avx2/avx512f" \
    'v header "$MDA" "$COMMIT,$(git rev-parse --short HEAD)" "$CPU" "$ISA"'
check "ablation.svg parses and names its five series" \
    'v svg "$RES/ablation-$TAG.svg" "IMP,budget,budget+dont-care,NEPENTHE,depth-matched"'
check "neither script wrote to results/ or runs/" 'untouched'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
