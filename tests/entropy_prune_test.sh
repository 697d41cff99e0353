#!/bin/sh
# End-to-end tests of `nepenthe entropy` and `nepenthe prune` (SPEC sections 1-4) on a
# tiny generated data set.
#
# usage (from the repository root): tests/entropy_prune_test.sh [BINARY]
#                                   (default build/asan/nepenthe)
#
# Each check prints "ok - NAME" or "not ok - NAME" followed by the output of the command
# it looked at; the last line is "N passed, M failed" and the exit status is non-zero if
# any check failed. What is checked:
# - entropy --json agrees with an independent PyTorch computation
#   (tests/tools/torch_entropy.py) on trained and pruned checkpoints: same layers and
#   neurons, per-neuron counts equal up to FLIPS observations per layer, H_l within 1e-3;
#   --zero-is-off leaves no observation uncounted; the table lists every layer;
# - prune with every method and criterion: iterations.jsonl, iter_K.safetensors,
#   summary.json and the figures; per-layer accounting (nonzero, pruned, removed,
#   sparsity) against the checkpoints' masks and weights; masks cumulative, pruned
#   weights exactly zero after retraining; NEPENTHE's neuron selection and zero-entropy
#   layers; IMP's global budget; the delta rule; prune-only runs;
# - resume (after --max-iter, after kill -9) ends byte-identical to an uninterrupted run,
#   and --resume with other options is refused;
# - bad flags and checkpoints fail with messages naming them.
# Models are tiny and single-threaded so that the script takes seconds even with ASan.
#
# Checks are shell code in single quotes, expanded when check evaluates them, and the
# shared option strings ($COMMON, $SLOW) are split on purpose; variables set for a check
# are read inside its quoted condition:
# shellcheck disable=SC2016,SC2086,SC2034
BIN=${1:-build/asan/nepenthe}
. "$(dirname "$0")/lib.sh"

# How many observations per layer may land in another state in PyTorch than in nepenthe.
# Both compute z = W x + b in float32 from identical inputs (the same normalization
# arithmetic), but OpenBLAS and PyTorch sum the products in different orders, so z
# differs by a few ulps; only an observation with |z| within ~1e-6 of |W||x| of zero can
# change sign, which on 300 test images is expected far less than once per layer (the
# runs below agree exactly). A flip moves one count from one state to another.
FLIPS=3
# v CHECK ARGS...: runs one of the Python checks below; its assertion message is the reason.
v() { $PY "$T/verify.py" "$@"; }

# --- the Python side of the checks -------------------------------------------------
cat >"$T/verify.py" <<'EOF'
"""Checks on nepenthe's outputs; each subcommand exits non-zero with a reason."""
import json
import math
import os
import re
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.environ["NEP_TOOLS"])
import numpy as np  # noqa: E402
import safetensors_np as st  # noqa: E402

FLIPS = int(os.environ.get("FLIPS", "3"))


def fail(msg):
    sys.exit(msg)


def jload(path):
    with open(path) as f:
        return json.load(f)


def rows(run):
    with open(os.path.join(run, "iterations.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def owner(arch, name):
    """The weight a rectifier layer owns (SPEC section 1)."""
    if arch["model"] == "mlp":
        m = re.fullmatch(r"act(\d+)", name)
        return "fc%s.weight" % m.group(1)
    m = re.fullmatch(r"blocks\.(\d+)\.act", name)
    return "blocks.%s.fc1.weight" % m.group(1)


def entropy_of(c):
    t = sum(c)
    return -sum(k / t * math.log2(k / t) for k in c if k) if t else 0.0


def agree(mine, torch_):
    """nepenthe entropy --json against torch_entropy.py."""
    a, b = jload(mine), jload(torch_)
    na = [l["name"] for l in a["layers"]]
    nb = [l["name"] for l in b["layers"]]
    if na != nb:
        fail("layers: nepenthe %s, torch %s" % (na, nb))
    if a.get("samples") != b["samples"]:
        fail("samples: nepenthe %s, torch %s" % (a.get("samples"), b["samples"]))
    worst = 0
    for la, lb in zip(a["layers"], b["layers"]):
        if la["neurons"] != lb["neurons"] or len(la["counts"]) != la["neurons"]:
            fail("%s: neurons %s (%d count rows), torch %s" % (la["name"], la["neurons"],
                                                               len(la["counts"]), lb["neurons"]))
        moved = 0
        for i, (ca, cb) in enumerate(zip(la["counts"], lb["counts"])):
            if len(ca) != len(cb):
                fail("%s neuron %d: states %s vs torch %s" % (la["name"], i, ca, cb))
            moved += sum(abs(x - y) for x, y in zip(ca, cb))
            # the JSON's own neuron entropy follows from its counts
            if abs(la["neuron_entropy"][i] - entropy_of(ca)) > 1e-12:
                fail("%s neuron %d: neuron_entropy %r but counts %s give %r" %
                     (la["name"], i, la["neuron_entropy"][i], ca, entropy_of(ca)))
        if (moved + 1) // 2 > FLIPS:
            bad = [(i, ca, cb) for i, (ca, cb) in enumerate(zip(la["counts"], lb["counts"]))
                   if ca != cb][:5]
            fail("%s: %d count units differ from torch (at most %d flips allowed): %s" %
                 (la["name"], moved, FLIPS, bad))
        worst = max(worst, moved)
        mean = sum(la["neuron_entropy"]) / la["neurons"]
        if abs(la["entropy"] - mean) > 1e-12:
            fail("%s: entropy %r is not the mean of its neurons' %r" % (la["name"], la["entropy"], mean))
        if abs(la["entropy"] - lb["entropy"]) > 1e-3:
            fail("%s: H_l %r, torch %r" % (la["name"], la["entropy"], lb["entropy"]))
    print("largest count difference in a layer: %d" % worst)


def zio(zero_json, default_json, positions):
    """--zero-is-off counts every observation; the default counts at most as many."""
    z, d = jload(zero_json), jload(default_json)
    n = z["samples"] * positions
    for lz, ld in zip(z["layers"], d["layers"]):
        for i, (cz, cd) in enumerate(zip(lz["counts"], ld["counts"])):
            if sum(cz) != n:
                fail("%s neuron %d: --zero-is-off counts %s sum to %d, not %d samples" %
                     (lz["name"], i, cz, sum(cz), n))
            if sum(cd) > n:
                fail("%s neuron %d: default counts %s exceed %d" % (ld["name"], i, cd, n))
            if cd[0] != cz[0]:
                fail("%s neuron %d: ON count changed with --zero-is-off: %s vs %s" %
                     (lz["name"], i, cd, cz))
    if len(z["layers"]) != len(d["layers"]):
        fail("layer counts differ")


def table(text_path, json_path):
    """The human table against the JSON of the same command."""
    lines = open(text_path).read().splitlines()
    j = jload(json_path)
    head = lines[0]
    for col in ("layer", "neurons", "H_l", "always ON", "always OFF", "OFF+", "mixed"):
        if col not in head:
            fail("header %r lacks %r" % (head, col))
    body = {l.split()[0]: l.split() for l in lines[1:] if l.split()}
    for l in j["layers"]:
        f = body.get(l["name"])
        if not f:
            fail("no row for %s in %s" % (l["name"], lines))
        want = [l["neurons"], l["always_on"], l["always_off"], l["always_off_plus"], l["mixed"]]
        got = [int(f[1]), int(f[3]), int(f[4]), int(f[5]), int(f[6])]
        if got != want or abs(float(f[2]) - l["entropy"]) > 5.01e-5:
            fail("row %s: %s; JSON neurons/on/off/off+/mixed %s, H_l %r" % (l["name"], f, want, l["entropy"]))
        if l["always_on"] + l["always_off"] + l["always_off_plus"] + l["mixed"] > l["neurons"]:
            fail("%s: more classified neurons than neurons: %s" % (l["name"], l))
    zero = sum(1 for l in j["layers"] if l["entropy"] == 0)
    m = [re.match(r"(\d+) of (\d+) layers have zero entropy", x) for x in lines]
    m = [x for x in m if x]
    if len(m) != 1 or (int(m[0].group(1)), int(m[0].group(2))) != (zero, len(j["layers"])):
        fail("want one line '%d of %d layers have zero entropy': %s" % (zero, len(j["layers"]), lines[-1]))


def load_ckpt(path):
    t, meta = st.load(path)
    return t, meta, json.loads(meta["arch"])


def run(d, dense, n_iter):
    """The files of a finished run and the consistency of iterations.jsonl."""
    r = rows(d)
    if [x["iter"] for x in r] != list(range(n_iter + 1)):
        fail("iterations.jsonl iters %s, want 0..%d once each" % ([x["iter"] for x in r], n_iter))
    t0, _, arch = load_ckpt(dense)
    names = r[0].get("names")
    L = len(r[0]["entropy"])
    owned = None
    if names:
        owned = [int(t0[owner(arch, n)].size) for n in names]
    for x in r:
        for k in ("iter", "val_top1", "test_top1", "removed", "layers", "entropy", "pruned",
                  "nonzero", "sparsity", "seconds"):
            if k not in x:
                fail("iteration %s: no %r in %s" % (x.get("iter"), k, sorted(x)))
        if not (len(x["entropy"]) == len(x["pruned"]) == len(x["nonzero"]) == x["layers"] == L):
            fail("iteration %d: layers %d, entropy %d, pruned %d, nonzero %d entries" %
                 (x["iter"], x["layers"], len(x["entropy"]), len(x["pruned"]), len(x["nonzero"])))
        if x["removed"] != sum(1 for h in x["entropy"] if h == 0):
            fail("iteration %d: removed %d but entropies %s" % (x["iter"], x["removed"], x["entropy"]))
        if any(not (h >= 0) for h in x["entropy"]) or not (x["seconds"] >= 0):
            fail("iteration %d: negative or NaN entropy/seconds" % x["iter"])
        if owned and x["nonzero"] and any(nz > o for nz, o in zip(x["nonzero"], owned)):
            fail("iteration %d: nonzero %s above owned %s" % (x["iter"], x["nonzero"], owned))
        if owned:
            sp = 100.0 * (sum(owned) - sum(x["nonzero"])) / sum(owned)
            if abs(sp - x["sparsity"]) > 1e-9:
                fail("iteration %d: sparsity %r, nonzero/owned give %r" % (x["iter"], x["sparsity"], sp))
    if any(r[0]["pruned"]):
        fail("iteration 0 (dense) pruned %s" % r[0]["pruned"])
    for a, b in zip(r, r[1:]):
        want = [n - p for n, p in zip(a["nonzero"], b["pruned"])]
        if b["nonzero"] != want:
            fail("iteration %d: nonzero %s, but iteration %d's %s minus pruned %s is %s" %
                 (b["iter"], b["nonzero"], a["iter"], a["nonzero"], b["pruned"], want))
    for k in range(1, n_iter + 1):
        if not os.path.getsize(os.path.join(d, "iter_%d.safetensors" % k)):
            fail("iter_%d.safetensors is empty" % k)
    if os.path.exists(os.path.join(d, "iter_%d.safetensors" % (n_iter + 1))):
        fail("iter_%d.safetensors exists after %d iterations" % (n_iter + 1, n_iter))
    s = jload(os.path.join(d, "summary.json"))
    for k in ("selected", "stopped_by"):
        if k not in s:
            fail("summary.json has no %r: %s" % (k, s))
    if not os.path.exists(s["selected"]):
        fail("summary.json selects %s, which does not exist" % s["selected"])
    for fig in ("fig_entropy.svg", "fig_accuracy.svg", "fig_states.svg"):
        root = ET.parse(os.path.join(d, fig)).getroot()
        if not root.tag.endswith("svg"):
            fail("%s: root element %s" % (fig, root.tag))
    text = open(os.path.join(d, "fig_entropy.svg")).read() + open(os.path.join(d, "fig_states.svg")).read()
    for n in names or []:
        if n not in text:
            fail("layer %s is named in neither fig_entropy.svg nor fig_states.svg" % n)


def masks(d, dense, n_iter):
    """Masks against weights in every iter_K.safetensors: cumulative, pruned == 0.0,
    counts as logged, and nothing but the owned weights masked."""
    r = rows(d)
    t0, _, arch = load_ckpt(dense)
    names = r[0]["names"]
    own = [owner(arch, n) for n in names]
    prev = {p: np.ones(t0[p].shape, dtype=np.uint8) for p in own}
    for k in range(1, n_iter + 1):
        t, meta, _ = load_ckpt(os.path.join(d, "iter_%d.safetensors" % k))
        if meta.get("iteration") != str(k):
            fail("iter_%d.safetensors: metadata iteration %r" % (k, meta.get("iteration")))
        for name in t:
            if name.endswith("_mask") and name[:-5] not in own and not np.all(t[name] == 1):
                fail("iter_%d: %s masks a weight no rectifier layer owns" % (k, name))
        for l, p in enumerate(own):
            w = t[p]
            m = t.get(p + "_mask")
            if m is None:
                m = np.ones(w.shape, dtype=np.uint8)
            if m.shape != w.shape or not np.all((m == 0) | (m == 1)):
                fail("iter_%d: %s_mask shape %s / values %s" % (k, p, m.shape, np.unique(m)))
            if np.any(w[m == 0] != 0.0):
                fail("iter_%d: %d weights of %s are masked but not 0.0" % (k, int(np.sum(w[m == 0] != 0)), p))
            if np.any((m == 1) & (prev[p] == 0)):
                fail("iter_%d: %d entries of %s_mask came back 0 -> 1" % (k, int(np.sum((m == 1) & (prev[p] == 0))), p))
            newly = int(np.sum((prev[p] == 1) & (m == 0)))
            if newly != r[k]["pruned"][l]:
                fail("iter_%d: %s: %d mask entries went 1 -> 0, log says pruned %d" % (k, p, newly, r[k]["pruned"][l]))
            nz = int(np.sum(w != 0))
            if nz != r[k]["nonzero"][l]:
                fail("iter_%d: %s has %d non-zero weights, log says %d" % (k, p, nz, r[k]["nonzero"][l]))
            prev[p] = m


def prune_only(d, dense, n_iter):
    """--retrain-epochs 0: the weights the masks keep are the dense ones, bit for bit."""
    t0, _, _ = load_ckpt(dense)
    for k in range(1, n_iter + 1):
        t, _, _ = load_ckpt(os.path.join(d, "iter_%d.safetensors" % k))
        for name, w in t.items():
            if name.endswith("_mask"):
                continue
            m = t.get(name + "_mask")
            keep = np.ones(w.shape, bool) if m is None else m == 1
            if not np.array_equal(w[keep], t0[name][keep]):
                fail("iter_%d: kept weights of %s changed without retraining" % (k, name))


def zero_layers(d):
    """A layer with H_l == 0 at iteration K gets nothing pruned at K + 1."""
    r = rows(d)
    seen = 0
    for a, b in zip(r, r[1:]):
        for l, h in enumerate(a["entropy"]):
            if h == 0:
                seen += 1
                if b["pruned"][l] != 0:
                    fail("%s has H_l 0 at iteration %d but %d weights pruned at %d" %
                         (a["names"][l], a["iter"], b["pruned"][l], b["iter"]))
    print("zero-entropy layers followed by an iteration: %d" % seen)


def selection(d, dense, n_iter):
    """Neuron selection: weights pruned at K lie in rows (neurons) with H > 0 as measured
    on model K-1 (ent_<K-1>.json from `entropy --split train --json`), and those
    measurements are the entropies the run logged for iteration K-1."""
    r = rows(d)
    t0, _, arch = load_ckpt(dense)
    own = [owner(arch, n) for n in r[0]["names"]]
    prev = {p: np.ones(t0[p].shape, dtype=np.uint8) for p in own}
    checked = 0
    for k in range(1, n_iter + 1):
        e = jload(os.path.join(d, "ent_%d.json" % (k - 1)))
        logged = r[k - 1]["entropy"]
        got = [l["entropy"] for l in e["layers"]]
        if any(abs(x - y) > 1e-12 for x, y in zip(got, logged)) or len(got) != len(logged):
            fail("entropy of iteration %d's model: %s, the run logged %s" % (k - 1, got, logged))
        t, _, _ = load_ckpt(os.path.join(d, "iter_%d.safetensors" % k))
        for l, p in enumerate(own):
            m = t.get(p + "_mask", np.ones(t[p].shape, dtype=np.uint8))
            newly = (prev[p] == 1) & (m == 0)
            hn = np.array(e["layers"][l]["neuron_entropy"])
            rows_hit = np.nonzero(newly.any(axis=1))[0]
            bad = [int(i) for i in rows_hit if not hn[i] > 0]
            if bad:
                fail("iteration %d: %s pruned in neurons %s whose entropy was 0" % (k, p, bad[:10]))
            checked += int(newly.sum())
            prev[p] = m
    print("pruned weights checked: %d" % checked)


def imp(d, zeta):
    """IMP: one global magnitude threshold; iteration 1 prunes floor(zeta * owned)."""
    r = rows(d)
    owned = sum(r[0]["nonzero"])
    want = math.floor(zeta * owned)
    got = sum(r[1]["pruned"])
    if got != want:
        fail("iteration 1 pruned %d, want floor(%g * %d) = %d" % (got, zeta, owned, want))
    sp = 100.0 * want / owned
    if abs(r[1]["sparsity"] - sp) > 1e-9:
        fail("sparsity after iteration 1: %r%%, want %r%%" % (r[1]["sparsity"], sp))


def delta(d, dense):
    s = jload(os.path.join(d, "summary.json"))
    r = rows(d)
    if [x["iter"] for x in r] != [0, 1]:
        fail("iterations %s, want [0, 1]" % [x["iter"] for x in r])
    if not r[1]["val_top1"] < r[0]["val_top1"]:
        fail("val top-1 did not drop (%r -> %r): the delta rule had nothing to stop" %
             (r[0]["val_top1"], r[1]["val_top1"]))
    if s.get("stopped_by") != "delta" or s.get("selected_iter") != 0:
        fail("summary %s: want stopped_by delta, selected_iter 0" % s)
    if s.get("selected") != dense:
        fail("selected %r, want the dense checkpoint %r" % (s.get("selected"), dense))
    if not str(s.get("failed", "")).endswith("/iter_1.safetensors"):
        fail("failed %r, want .../iter_1.safetensors" % s.get("failed"))


def same_rows(a, b):
    """Two runs' logs agree in everything but wall time."""
    ra, rb = rows(a), rows(b)
    for x in ra + rb:
        x.pop("seconds", None)
    if ra != rb:
        diff = [(x["iter"], {k: (x[k], y.get(k)) for k in x if x[k] != y.get(k)})
                for x, y in zip(ra, rb) if x != y]
        fail("logs differ (iter, {key: (first, second)}): %s" % str(diff)[:800])


def whole(d, n_iter, unit, zeta):
    """Masks of SSL (unit layer) and HRank (unit row) runs: every mask is whole per unit
    (all kept or all pruned), HRank keeps a filter per layer and masks floor(zeta x the
    filters alive before) per iteration; SSL zeroes at least one layer."""
    prev = None
    gone = 0
    for k in range(1, n_iter + 1):
        t, _, _ = load_ckpt(os.path.join(d, "iter_%d.safetensors" % k))
        masks = {n[:-5]: m.reshape(m.shape[0], -1) for n, m in t.items() if n.endswith("_mask")}
        for name, m in masks.items():
            rs = m.sum(axis=1)
            if unit == "layer" and not (m.all() or not m.any()):
                fail("iter_%d: %s is pruned in part (%d of %d kept), not whole" % (k, name, m.sum(), m.size))
            if unit == "row":
                if not np.all((rs == 0) | (rs == m.shape[1])):
                    fail("iter_%d: %s has filters pruned in part" % (k, name))
                if not rs.any():
                    fail("iter_%d: %s has no filter left" % (k, name))
                if prev is not None:
                    w = prev[name][0]
                    alive = int(np.sum((prev[name][1].sum(axis=1) > 0) & (np.abs(w).reshape(w.shape[0], -1).sum(axis=1) > 0)))
                    now = int(np.sum((prev[name][1].sum(axis=1) > 0) & (rs == 0)))
                    if now != int(math.floor(zeta * alive)):
                        fail("iter_%d: %s lost %d filters, want floor(%g x %d alive)" % (k, name, now, zeta, alive))
            gone += int(not m.any())
        prev = {n: (t[n], m) for n, m in masks.items()}
    if unit == "layer" and not gone:
        fail("no layer was removed")
    if unit == "row" and prev is None:
        fail("no masks")


cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "whole":
    whole(args[0], int(args[1]), args[2], float(args[3]))
elif cmd == "agree":
    agree(*args)
elif cmd == "zio":
    zio(args[0], args[1], int(args[2]))
elif cmd == "table":
    table(*args)
elif cmd == "run":
    run(args[0], args[1], int(args[2]))
elif cmd == "masks":
    masks(args[0], args[1], int(args[2]))
elif cmd == "prune_only":
    prune_only(args[0], args[1], int(args[2]))
elif cmd == "zero_layers":
    zero_layers(args[0])
elif cmd == "selection":
    selection(args[0], args[1], int(args[2]))
elif cmd == "imp":
    imp(args[0], float(args[1]))
elif cmd == "delta":
    delta(*args)
elif cmd == "same_rows":
    same_rows(*args)
else:
    fail("unknown check " + cmd)
EOF
export FLIPS NEP_TOOLS="$HERE/tools"

D=$T/data
$PY "$HERE/tools/make_idx.py" "$D" --train 1200 --test 300 ||
    { echo "not ok - make_idx.py"; echo "0 passed, 1 failed"; exit 1; }
COMMON="--data-dir $D --batch 64 --threads 1"

# --- help ---------------------------------------------------------------------------
for spec in "prune:--ckpt --method --criterion --zeta --delta --max-iter --retrain-epochs --out --resume --json" \
            "entropy:--ckpt --data-dir --split --zero-is-off --json"; do
    cmd=${spec%%:*}
    nep "$cmd" --help
    missing=""
    for flag in ${spec#*:}; do grep -qF -- "$flag" "$T/out" || missing="$missing $flag"; done
    check "$cmd --help exits 0 and mentions its flags${missing:+ (missing:$missing)}" \
        'succeeded && [ -z "$missing" ]'
done

# --- dense models ---------------------------------------------------------------------
nep train $COMMON --hidden 32,32,32 --val 200 --epochs 6 --seed 1 --out "$T/mlp"
check "train a 3x32 MLP" 'succeeded && [ -s "$T/mlp/model.safetensors" ]'
nep train $COMMON --model resmlp --width 32 --hidden 32,32 --val 200 --epochs 2 --seed 1 --out "$T/res"
check "train a resmlp (width 32, blocks 32,32)" 'succeeded && [ -s "$T/res/model.safetensors" ]'
nep train $COMMON --hidden 32,32 --act relu6 --val 200 --epochs 3 --seed 2 --out "$T/r6"
check "train a 2x32 ReLU6 MLP" 'succeeded && [ -s "$T/r6/model.safetensors" ]'
nep train $COMMON --model resmlp --width 32 --hidden 32,32 --act gelu --val 200 --epochs 2 --seed 3 --out "$T/gelu"
check "train a GELU resmlp" 'succeeded && [ -s "$T/gelu/model.safetensors" ]'
MLP=$T/mlp/model.safetensors
RES=$T/res/model.safetensors
touch "$T/a_file"
nep prune --ckpt "$MLP" $COMMON --max-iter 1 --out "$T/a_file"
check "prune --out naming an existing file: non-zero exit naming it" 'failed_cleanly && says a_file'

# --- entropy against PyTorch ------------------------------------------------------------
# compare_torch LABEL CKPT [--zero-is-off]: nepenthe entropy --json --split test against
# torch_entropy.py on the same checkpoint and test images.
compare_torch() {
    label=$1 ck=$2
    shift 2
    nep entropy --ckpt "$ck" --data-dir "$D" --split test --threads 1 --json "$@"
    cp "$T/out" "$T/nep_$label.json"
    check "entropy --json --split test${*:+ $*} ($label) succeeds" 'succeeded && [ -s "$T/nep_$label.json" ]'
    $PY "$HERE/tools/torch_entropy.py" "$ck" "$D" --split test "$@" >"$T/torch_$label.json" 2>"$T/torch_err"
    check "$label: counts agree with PyTorch (<= $FLIPS flips per layer), H_l within 1e-3" \
        '[ -s "$T/torch_$label.json" ] || { cat "$T/torch_err" >&2; false; }; v agree "$T/nep_$label.json" "$T/torch_$label.json" >/dev/null'
}
compare_torch mlp "$MLP"
compare_torch mlp_zio "$MLP" --zero-is-off
compare_torch res "$RES"
compare_torch res_zio "$RES" --zero-is-off
compare_torch relu6 "$T/r6/model.safetensors"
compare_torch relu6_zio "$T/r6/model.safetensors" --zero-is-off
compare_torch gelu "$T/gelu/model.safetensors"
check "entropy JSON: mlp layers act1..act3 of 32 neurons, 2 states" \
    '$PY -c "
import json, sys
j = json.load(open(sys.argv[1]))
assert [(l[\"name\"], l[\"neurons\"], len(l[\"counts\"][0])) for l in j[\"layers\"]] == [(\"act%d\" % i, 32, 2) for i in (1, 2, 3)], j[\"layers\"][0][\"name\"]
" "$T/nep_mlp.json"'
check "entropy JSON: resmlp layers blocks.0.act, blocks.1.act; relu6 counts have 3 states" \
    '$PY -c "
import json, sys
j = json.load(open(sys.argv[1])); k = json.load(open(sys.argv[2]))
assert [l[\"name\"] for l in j[\"layers\"]] == [\"blocks.0.act\", \"blocks.1.act\"], [l[\"name\"] for l in j[\"layers\"]]
assert all(len(c) == 3 for l in k[\"layers\"] for c in l[\"counts\"])
" "$T/nep_res.json" "$T/nep_relu6.json"'
for m in mlp res relu6; do
    check "--zero-is-off ($m): every neuron counts all 300 samples; the default counts <= 300" \
        'v zio "$T/nep_${m}_zio.json" "$T/nep_$m.json" 1'
done

nep entropy --ckpt "$MLP" --data-dir "$D" --split test --threads 1
cp "$T/out" "$T/table_mlp.txt"
check "entropy table (mlp): every layer with neurons, H_l, always ON/OFF/OFF+, mixed and the zero-entropy line" \
    'succeeded && v table "$T/table_mlp.txt" "$T/nep_mlp.json"'
nep entropy --ckpt "$T/r6/model.safetensors" --data-dir "$D" --split test --threads 1
cp "$T/out" "$T/table_r6.txt"
check "entropy table (relu6): rows agree with the JSON" \
    'succeeded && v table "$T/table_r6.txt" "$T/nep_relu6.json"'
nep entropy --ckpt "$MLP" --data-dir "$D" --split train --threads 1 --json
check "entropy --split train counts the 1000 training images (1200 - 200 val)" \
    'succeeded && grep -q "\"samples\":1000" "$T/out"'
nep entropy --ckpt "$MLP" --data-dir "$D" --split train --threads 1 --json --max-batches 2 --batch 100
check "entropy --max-batches 2 --batch 100 counts 200 images" \
    'succeeded && grep -q "\"samples\":200" "$T/out"'

# --- prune with every method -------------------------------------------------------------
# prune_run NAME CKPT ARGS...: a 3-iteration run (never stopped by delta) in $T/NAME.
prune_run() {
    name=$1 ck=$2
    shift 2
    nep prune --ckpt "$ck" $COMMON --delta 0 --max-iter 3 --retrain-epochs 1 --out "$T/$name" "$@"
    check "prune $* ($name): exits 0" succeeded
    check "$name: iterations.jsonl 0..3 consistent, iter_K, summary.json, figures parse" \
        'v run "$T/$name" "$ck" 3'
    check "$name: masks cumulative, masked weights exactly 0.0, counts match the checkpoints" \
        'v masks "$T/$name" "$ck" 3'
}
prune_run nep_mlp "$MLP" --method nepenthe
prune_run imp_mlp "$MLP" --method imp --zeta 0.3
prune_run egp_mlp "$MLP" --method egp
prune_run wanda_mlp "$MLP" --method nepenthe --criterion wanda
prune_run nep_res "$RES" --method nepenthe
prune_run impw_res "$RES" --method imp --criterion wanda

check "imp: iteration 1 prunes exactly floor(0.3 x owned weights), sparsity to match" \
    'v imp "$T/imp_mlp" 0.3'
for run in nep_mlp wanda_mlp nep_res; do
    check "$run: a layer with zero entropy gets nothing pruned in the next iteration" \
        'v zero_layers "$T/$run" >/dev/null'
done
check "nep_mlp: some layer reached zero entropy (so the check above was not vacuous)" \
    'grep -q "\"removed\":[1-9]" "$T/nep_mlp/iterations.jsonl"'
# Neuron selection: measure each model the run started an iteration from.
for run in nep_mlp nep_res; do
    ck=$MLP
    [ "$run" = nep_res ] && ck=$RES
    ok=1
    for k in 0 1 2; do
        src=$ck
        [ "$k" -gt 0 ] && src=$T/$run/iter_$k.safetensors
        nep entropy --ckpt "$src" --data-dir "$D" --split train --threads 1 --json
        cp "$T/out" "$T/$run/ent_$k.json"
        succeeded || ok=0
    done
    check "$run: weights are pruned only in neurons with H > 0; logged H_l equal entropy --split train of the saved models" \
        '[ "$ok" = 1 ] && v selection "$T/$run" "$ck" 3 >/dev/null'
done
compare_torch pruned "$T/nep_mlp/iter_2.safetensors"
compare_torch pruned_res "$T/nep_res/iter_3.safetensors"

# A convolutional network through the same loop: channels are the neurons, Wanda's
# norms are im2col rows, ownership goes through BatchNorm.
nep train $COMMON --model cnn --val 200 --epochs 1 --lr 0.02 --seed 1 --out "$T/cnn"
check "train the small cnn" 'succeeded && [ -s "$T/cnn/model.safetensors" ]'
nep prune --ckpt "$T/cnn/model.safetensors" $COMMON --criterion wanda --delta 0 --max-iter 2 \
    --retrain-epochs 1 --lr 0.01 --out "$T/cnn_wanda"
check "cnn, nepenthe with Wanda: 2 iterations; per layer, nonzero drops by exactly what was pruned" \
    'succeeded && $PY -c "import json, sys; r = [json.loads(l) for l in open(sys.argv[1])]; \
assert [x[\"iter\"] for x in r] == [0, 1, 2]; \
assert all(a - p == b for k in (1, 2) for a, p, b in zip(r[k-1][\"nonzero\"], r[k][\"pruned\"], r[k][\"nonzero\"])); \
assert sum(r[1][\"pruned\"]) == r[1][\"budget\"] > 0" "$T/cnn_wanda/iterations.jsonl"'
nep entropy --ckpt "$T/cnn/model.safetensors" --data-dir "$D" --split test --json
check "cnn entropy: one layer per ReLU, a neuron per channel, every position an observation" \
    'succeeded && $PY -c "import json, sys; j = json.loads(open(sys.argv[1]).read().splitlines()[-1]); \
assert [l[\"neurons\"] for l in j[\"layers\"]] == [32, 64, 128], j[\"layers\"]; \
assert all(sum(c) <= 300 * (28 // 2 ** i) ** 2 for i, l in enumerate(j[\"layers\"]) for c in l[\"counts\"]); \
assert max(sum(c) for c in j[\"layers\"][0][\"counts\"]) > 300 * 28 * 28 * 0.9" "$T/out"'

nep compare --runs "$T/nep_mlp,$T/imp_mlp" --out "$T/cmp.svg"
check "compare draws one line per run, labelled by method, in a well-formed SVG" \
    'succeeded && $PY -c "import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); \
assert len([p for p in d.getElementsByTagName(\"polyline\")]) == 2" "$T/cmp.svg" && grep -q ">imp<" "$T/cmp.svg"'
nep compare --runs "$T/nep_mlp,$T/nowhere" --out "$T/cmp2.svg"
check "compare with a missing run directory: non-zero exit naming it" 'failed_cleanly && says "$T/nowhere"'

# --- SSL, HRank, sharpness -----------------------------------------------------------------
nep prune --ckpt "$MLP" $COMMON --method ssl --group-lasso 0.05 --ssl-threshold 5e-3 --delta 0 --max-iter 2 \
    --retrain-epochs 2 --lr 0.05 --out "$T/ssl"
check "prune --method ssl: exits 0, log and checkpoints consistent" 'succeeded && v run "$T/ssl" "$MLP" 2 && v masks "$T/ssl" "$MLP" 2'
check "ssl: layers are removed whole (every owned mask all kept or all pruned), at least one" \
    'v whole "$T/ssl" 2 layer 0 && grep -q "group_lasso..:0.05" "$T/ssl/progress.json"'
nep prune --ckpt "$T/cnn/model.safetensors" $COMMON --method hrank --zeta 0.25 --hrank-batches 1 --delta 0 \
    --max-iter 2 --retrain-epochs 1 --lr 0.01 --sharpness-batches 1 --out "$T/hrank"
check "prune --method hrank: whole filters, floor(zeta x alive) per layer per iteration, one kept" \
    'succeeded && v whole "$T/hrank" 2 row 0.25'
check "prune --sharpness-batches: a positive sharpness on every iteration's line" \
    '$PY -c "import json, sys; r = [json.loads(l) for l in open(sys.argv[1])]; \
assert len(r) == 3 and all(x[\"sharpness\"] > 0 for x in r), r" "$T/hrank/iterations.jsonl"'
nep prune --ckpt "$MLP" $COMMON --method ssl --out "$T/bad"
check "prune --method ssl without --group-lasso: non-zero exit naming --group-lasso" 'failed_cleanly && says --group-lasso'
nep prune --ckpt "$MLP" $COMMON --method hrank --max-iter 1 --out "$T/bad_hrank"
check "prune --method hrank on an MLP: non-zero exit saying it needs convolutions" 'failed_cleanly && says convolution'
nep prune --ckpt "$T/cnn/model.safetensors" $COMMON --method hrank --zeta 1 --out "$T/bad"
check "prune --method hrank --zeta 1: non-zero exit naming --zeta" 'failed_cleanly && says --zeta'
# --tol 0.01: the MLP trained on an Intel Xeon (Sapphire Rapids) has eigenvalues of nearly
# equal magnitude and opposite signs (about 34.6 and -34.5), between which the power
# iteration's Rayleigh quotient swings by 0.3% for ever; the method's accuracy is
# test_sharpness's, this checks the command.
nep sharpness --ckpt "$MLP" --data-dir "$D" --batches 2 --batch 100 --iters 30 --tol 0.01 --threads 1 --json
check "sharpness --json: a positive eigenvalue over 200 rows, converged, small residual" \
    'succeeded && $PY -c "import json, sys; j = json.loads(open(sys.argv[1]).read().splitlines()[-1]); \
assert j[\"rows\"] == 200 and j[\"sharpness\"] > 0 and j[\"converged\"] and j[\"residual\"] < 0.2, j" "$T/out"'
nep sharpness --ckpt "$MLP" --data-dir "$D" --step 2
check "sharpness --step 2: non-zero exit naming --step" 'failed_cleanly && says --step'

# --- the naive structural baselines ---------------------------------------------------------
# One more rectifier becomes the identity per iteration; the checkpoint's arch records it.
for m in smallest-weights smallest-grads; do
    nep prune --ckpt "$MLP" $COMMON --method "$m" --delta 0 --max-iter 5 --retrain-epochs 1 --lr 0.01 --out "$T/$m"
    check "prune --method $m: exits 0 and stops when no rectifier is left" \
        'succeeded && grep -q "\"stopped_by\":\"no_layer_left\"" "$T/$m/summary.json"'
    check "$m: removed goes 0, 1, 2, 3 and no weight is pruned" \
        '$PY -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; \
assert [x[\"removed\"] for x in r]==[0,1,2,3], r; assert all(sum(x[\"pruned\"])==0 for x in r[1:])" \
        "$T/$m/iterations.jsonl"'
    nep info --ckpt "$T/$m/iter_2.safetensors"
    check "$m: iter_2 rebuilds with two Identity layers in place of ReLUs" \
        '[ "$(grep -c " Identity " "$T/out")" -eq 2 ] && [ "$(grep -c " ReLU " "$T/out")" -eq 1 ]'
done
nep eval --ckpt "$T/smallest-grads/iter_1.safetensors" --data-dir "$D" --json
check "eval of a baseline checkpoint matches its logged test top-1" \
    '$PY -c "import json,sys; e=json.loads(open(sys.argv[1]).read().splitlines()[-1]); \
r=[json.loads(l) for l in open(sys.argv[2])][1]; assert abs(e[\"test_top1\"]-r[\"test_top1\"])<1e-3" \
        "$T/out" "$T/smallest-grads/iterations.jsonl"'

nep prune --ckpt "$MLP" $COMMON --delta 0 --max-iter 3 --retrain-epochs 1 --lr 1e6 --out "$T/diverge"
check "a diverged retraining stops the run cleanly: exit 0, stopped_by diverged, dense selected" \
    'succeeded && grep -qi diverged "$T/out" && grep -q "\"stopped_by\":\"diverged\"" "$T/diverge/summary.json" \
     && grep -q "\"selected_iter\":0" "$T/diverge/summary.json"'

# --- prune only, and the delta rule -------------------------------------------------------
nep prune --ckpt "$MLP" $COMMON --method nepenthe --zeta 0.9 --retrain-epochs 0 --delta 1.0 \
    --max-iter 5 --out "$T/delta" --json
cp "$T/out" "$T/delta.out"
check "--retrain-epochs 0 --delta 1.0: exits 0" succeeded
check "delta: stopped_by delta after iteration 1, selected_iter 0 (the dense model), failed names iter_1" \
    'v delta "$T/delta" "$MLP"'
check "delta: --json prints the summary as the last stdout line" \
    'tail -n 1 "$T/delta.out" | grep -q "\"stopped_by\":\"delta\""'
check "delta: iterations.jsonl and masks consistent" \
    'v run "$T/delta" "$MLP" 1 && v masks "$T/delta" "$MLP" 1'
check "--retrain-epochs 0: kept weights, biases and the classifier are the dense ones bit for bit" \
    'v prune_only "$T/delta" "$MLP" 1'
nep prune --ckpt "$RES" $COMMON --method imp --retrain-epochs 0 --delta 0 --max-iter 2 --out "$T/ponly"
check "--retrain-epochs 0 for 2 iterations: consistent log, masks, untouched kept weights" \
    'succeeded && v run "$T/ponly" "$RES" 2 && v masks "$T/ponly" "$RES" 2 && v prune_only "$T/ponly" "$RES" 2'

# --- resume -------------------------------------------------------------------------------
# Long retraining (100 epochs of 1000 images) so that a kill lands mid-run.
SLOW="--ckpt $RES $COMMON --method nepenthe --delta 0 --retrain-epochs 100"
nep prune $SLOW --max-iter 3 --out "$T/A"
check "resume: uninterrupted 3-iteration run A" 'succeeded && [ -s "$T/A/iter_3.safetensors" ]'
nep prune $SLOW --max-iter 1 --out "$T/B"
check "resume: run B, --max-iter 1" 'succeeded && [ -s "$T/B/iter_1.safetensors" ] && [ ! -e "$T/B/iter_2.safetensors" ]'
nep prune $SLOW --max-iter 3 --out "$T/B" --resume
check "resume: run B, --resume --max-iter 3" succeeded
check "resume: B's iter_1..3.safetensors are byte-identical to A's" \
    'cmp "$T/A/iter_1.safetensors" "$T/B/iter_1.safetensors" >&2 && cmp "$T/A/iter_2.safetensors" "$T/B/iter_2.safetensors" >&2 && cmp "$T/A/iter_3.safetensors" "$T/B/iter_3.safetensors" >&2'
check "resume: B's iterations.jsonl has iterations 0..3 once each, equal to A's but for seconds" \
    'v run "$T/B" "$RES" 3 && v same_rows "$T/A" "$T/B"'
check "resume: B's summary.json selects iteration 3 like A's" \
    'grep -q "\"selected_iter\":3" "$T/A/summary.json" && grep -q "\"selected_iter\":3" "$T/B/summary.json"'

cp "$T/B/iterations.jsonl" "$T/B.jsonl"
nep prune $SLOW --max-iter 3 --out "$T/B" --resume --zeta 0.3
check "--resume with another --zeta is refused, naming the options" \
    'failed_cleanly && says_i options && says 0.3'
check "the refused --resume left B's log and checkpoints alone" \
    'cmp "$T/B.jsonl" "$T/B/iterations.jsonl" >&2 && cmp "$T/A/iter_3.safetensors" "$T/B/iter_3.safetensors" >&2'
nep prune $SLOW --max-iter 3 --out "$T/B" --resume --method imp
check "--resume with another --method is refused" 'failed_cleanly && says_i options'

"$BIN" prune $SLOW --max-iter 3 --out "$T/K" >"$T/out" 2>"$T/err" &
pid=$!
while [ ! -e "$T/K/iter_1.safetensors" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
kill -9 "$pid" 2>/dev/null && killed=killed || killed="finished before the kill"
wait "$pid" 2>/dev/null
check "kill -9 landed mid-run (after iter_1.safetensors appeared, before summary.json)" \
    '[ "$killed" = killed ] && [ ! -e "$T/K/summary.json" ] && [ ! -e "$T/K/iter_3.safetensors" ]'
nep prune $SLOW --max-iter 3 --out "$T/K" --resume
check "resume after kill -9: succeeds" succeeded
check "resume after kill -9: iter_3.safetensors byte-identical to A's" \
    'cmp "$T/A/iter_3.safetensors" "$T/K/iter_3.safetensors" >&2'
check "resume after kill -9: iterations.jsonl 0..3 once each, equal to A's but for seconds" \
    'v run "$T/K" "$RES" 3 && v same_rows "$T/A" "$T/K"'

# --- bad input ------------------------------------------------------------------------------
for bad in "--method foo" "--criterion foo" "--zeta 0" "--zeta 1.5" "--delta 2" "--zeta abc" "--max-iter 0"; do
    flag=${bad%% *}
    nep prune --ckpt "$MLP" $COMMON --out "$T/bad" $bad
    check "prune $bad: non-zero exit naming $flag" 'failed_cleanly && says "$flag"'
done
check "bad values wrote no run directory" '[ ! -e "$T/bad" ]'
nep prune $COMMON --out "$T/bad"
check "prune without --ckpt: non-zero exit naming --ckpt" 'failed_cleanly && says --ckpt'
nep prune --ckpt "$MLP" $COMMON
check "prune without --out: non-zero exit naming --out" 'failed_cleanly && says --out'
head -c 500 "$MLP" >"$T/trunc.safetensors"
printf 'this is not a safetensors file at all' >"$T/garbage.safetensors"
for f in trunc garbage; do
    nep prune --ckpt "$T/$f.safetensors" $COMMON --out "$T/bad"
    check "prune --ckpt $f.safetensors: non-zero exit naming the file" \
        'failed_cleanly && says "$T/$f.safetensors"'
    nep entropy --ckpt "$T/$f.safetensors" --data-dir "$D"
    check "entropy --ckpt $f.safetensors: non-zero exit naming the file" \
        'failed_cleanly && says "$T/$f.safetensors"'
done
nep prune --ckpt "$T/missing.safetensors" $COMMON --out "$T/bad"
check "prune on a missing checkpoint: non-zero exit naming it" \
    'failed_cleanly && says "$T/missing.safetensors"'
nep entropy --data-dir "$D"
check "entropy without --ckpt: non-zero exit naming --ckpt" 'failed_cleanly && says --ckpt'
nep entropy --ckpt "$MLP" --data-dir "$D" --split nope
check "entropy --split nope: non-zero exit naming --split" 'failed_cleanly && says --split'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
