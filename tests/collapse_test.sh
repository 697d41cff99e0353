#!/bin/sh
# End-to-end tests of `nepenthe collapse` (SPEC section 6) on a tiny generated data set.
#
# usage (from the repository root): tests/collapse_test.sh [BINARY]
#                                   (default build/asan/nepenthe)
#
# A small trained MLP gets a bias that keeps its second ReLU layer always ON or OFF
# (written by PyTorch's side, tests/tools/torch_reference.py). Collapse must then:
# - remove that layer (JSON report: one layer linearized, rectifiers and depth down by
#   one, each rule's count, the equivalence within tolerance, top-1 agreement 100%);
# - write a checkpoint that eval, info, export and collapse itself read, with eval's
#   top-1 equal to the report's;
# - write an ONNX file that onnx's checker accepts and that ONNX Runtime runs to the
#   logits PyTorch computes with the uncollapsed model (within 1e-4);
# - refuse bad flags and files with messages naming them.
# shellcheck disable=SC2016,SC2086
BIN=${1:-build/asan/nepenthe}
. "$(dirname "$0")/lib.sh"
# jq_ FILE EXPR: prints the Python expression EXPR over the JSON object j on FILE's last line.
jq_() { tail -n 1 "$1" | $PY -c 'import json, sys; j = json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$2"; }
# py EXPR: true if the Python expression is.
py() { $PY -c "import sys; sys.exit(0 if ($1) else 1)"; }

D=$T/data
$PY "$HERE/tools/make_idx.py" "$D" || { echo "not ok - make_idx.py"; echo "0 passed, 1 failed"; exit 1; }
SMALL="--data-dir $D --batch 64 --threads 1"

nep collapse --help
check "collapse --help mentions its flags" \
    'succeeded && for f in --ckpt --out --onnx --tol --allow-approx --json --max-batches; do grep -qF -- "$f" "$T/out" || exit 1; done'

nep train $SMALL --hidden 32,32 --val 200 --epochs 1 --seed 3 --out "$T/m"
check "train a small MLP" 'succeeded'
# fc2's bias far beyond what its inputs reach: act2 is ON, OFF, OFF, ON, ... on every input
$PY "$HERE/tools/torch_reference.py" force "$T/m/model.safetensors" "$T/forced.safetensors" fc2.bias 40,-40,-40,40
check "force act2 into fixed states" '[ -s "$T/forced.safetensors" ]'

mkdir "$T/case"
nep collapse --ckpt "$T/forced.safetensors" --out "$T/c.safetensors" --onnx "$T/case/model.onnx" --calls 3 --json $SMALL
cp "$T/out" "$T/report.json"
check "collapse exits 0 and writes the checkpoint and the ONNX file" \
    'succeeded && [ -s "$T/c.safetensors" ] && [ -s "$T/case/model.onnx" ]'
check "act2 is linearized and gone: rectifiers and depth 2 -> 1" \
    '[ "$(jq_ "$T/report.json" "j[\"rewrites\"][\"linearized\"], j[\"before\"][\"rectifiers\"], j[\"after\"][\"rectifiers\"], j[\"before\"][\"depth\"], j[\"after\"][\"depth\"]")" = "(1, 2, 1, 2, 1)" ]'
check "OFF channels dropped and fc3 composed with what is left of fc2" \
    'py "$(jq_ "$T/report.json" "j[\"rewrites\"][\"channels_dropped\"] >= 16 and j[\"rewrites\"][\"composed\"] == 1")"'
check "the report counts each rule by name: one composition, channels dropped, every rule listed" \
    'py "$(jq_ "$T/report.json" "j[\"rules\"][\"compose_linear_linear\"] == 1 and j[\"rules\"][\"drop_constant_channels\"] >= 1 and sum(j[\"rules\"][k] for k in (\"compose_linear_linear\", \"compose_conv_conv\", \"compose_conv_conv_border\")) == j[\"rewrites\"][\"composed\"] and len(j[\"rules\"]) >= 14")"'
check "equivalence: max |logit diff| within --tol, all top-1 classes agree, fewer parameters" \
    'py "$(jq_ "$T/report.json" "j[\"within_tol\"] and j[\"equivalence\"][\"max_abs_diff\"] <= 1e-4 and j[\"equivalence\"][\"top1_agreement\"] == 100 and j[\"vs_pruned\"][\"top1_agreement\"] == 100 and j[\"after\"][\"params\"] < j[\"before\"][\"params\"] and j[\"after\"][\"mflops\"] < j[\"before\"][\"mflops\"]")"'
check "the report has latency, memory and top-1 before and after" \
    'py "$(jq_ "$T/report.json" "all(j[s][k] > 0 for s in (\"before\", \"after\") for k in (\"latency_ms_batch1\", \"latency_ms_batch128\", \"peak_memory_mb_batch128\", \"top1\"))")"'
check "energy per inference: measured before and after where RAPL is readable, else the report says why" \
    'py "$(jq_ "$T/report.json" "all(j[s].get(k, 0) > 0 for s in (\"before\", \"after\") for k in (\"energy_mj_batch1\", \"energy_mj_batch128\")) if \"energy\" not in j else \"not available on this machine\" in j[\"energy\"] and \"energy_mj_batch1\" not in j[\"before\"]")"'

nep eval --ckpt "$T/c.safetensors" --data-dir "$D" --json
check "eval reads the collapsed checkpoint; its top-1 is the report's" \
    'succeeded && py "abs($(jq_ "$T/out" "j[\"test_top1\"]") - $(jq_ "$T/report.json" "j[\"after\"][\"top1\"]")) < 1e-3"'
nep info --ckpt "$T/c.safetensors"
check "info lists the collapsed layers: fc1, act1 and fc3 (fc2 composed into it), no act2" \
    'succeeded && grep -q "^fc1 " "$T/out" && grep -q "^act1 " "$T/out" && grep -q "^fc3 " "$T/out" && ! grep -q "^act2 \|^fc2 " "$T/out"'
nep collapse --ckpt "$T/c.safetensors" --out "$T/c2.safetensors" --calls 3 --json $SMALL
check "collapsing a collapsed model changes nothing more" \
    'succeeded && [ "$(jq_ "$T/out" "j[\"rewrites\"][\"linearized\"], j[\"rewrites\"][\"composed\"], j[\"after\"][\"params\"] == j[\"before\"][\"params\"]")" = "(0, 0, True)" ]'

$PY "$HERE/onnx_check.py" "$T/case" >"$T/out" 2>"$T/err"; rc=$?
check "onnx's checker accepts the collapsed model" 'succeeded'
$PY "$HERE/tools/torch_reference.py" case "$T/forced.safetensors" "$D" "$T/case" 64 >"$T/out" 2>"$T/err"; rc=$?
check "PyTorch computes the uncollapsed model's logits" 'succeeded'
"$ORT_PY" "$HERE/onnx_run.py" "$T" >"$T/out" 2>"$T/err"; rc=$?
check "ONNX Runtime on the collapsed model = PyTorch on the uncollapsed one (1e-4)" 'succeeded && grep -q "^ok" "$T/out"'

# --- bad input ---------------------------------------------------------------------
nep collapse --ckpt "$T/forced.safetensors" $SMALL
check "collapse without --out: non-zero exit naming --out" 'failed_cleanly && says --out'
nep collapse --ckpt "$T/none.safetensors" --out "$T/x.safetensors" $SMALL
check "collapse of a missing file: non-zero exit naming it" 'failed_cleanly && says none.safetensors'
nep collapse --ckpt "$T/forced.safetensors" --out "$T/x.safetensors" --tol -1 $SMALL
check "collapse --tol -1: non-zero exit naming --tol" 'failed_cleanly && says --tol'
check "refused runs wrote nothing" '[ ! -e "$T/x.safetensors" ]'
$PY - "$T/c.safetensors" "$T/broken.safetensors" <<'PYEOF'
import sys
sys.path.insert(0, "tests/tools")
import safetensors_np
t, m = safetensors_np.load(sys.argv[1])
m["graph"] = m["graph"].replace('"op":"Linear"', '"op":"Bilinear"', 1)
safetensors_np.save(sys.argv[2], t, m)
PYEOF
nep eval --ckpt "$T/broken.safetensors" --data-dir "$D"
check "a collapsed checkpoint with a damaged graph: non-zero exit naming the file and node" \
    'failed_cleanly && says broken.safetensors && says "is not a known op"'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
