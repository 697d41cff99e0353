#!/bin/sh
# ONNX export, end to end: the exports of twenty-six models (build/tests/onnx_fixture; seven
# read three inputs, two of them token ids, each under its node's name: a graph of two
# attentions, and tiny BERT (tanh GELU) and RoBERTa (positions after the padding row)
# classifiers, each exported for 6 tokens and run on 6 and, the sequence axis being free,
# on 4, and each collapsed (layer 0's GELU forced to fixed states) against the uncollapsed
# model; four more of
# them collapsed, a ResNet-20, a token-wise MLP, a ViT and a Swin (a block's GELU forced to
# fixed states: linearized, features dropped, mlp.3 composed with mlp.0), compared with the
# uncollapsed models;
# one reads int32 token ids through an Embedding, one LayerNorms tokens, two are a ViT and
# a Swin without attention: patch tokens, class token, positional embedding, patch
# merging of an odd grid, stochastic depth, token mean; two are nepenthe's vit and swin,
# attention included: global, and in padded, shifted, masked windows with their relative
# position bias) pass the ONNX checker
# (tests/onnx_check.py) and give nepenthe's outputs in ONNX Runtime
# (tests/onnx_run.py, PyPI's onnxruntime in build/venv); `nepenthe export`
# turns a trained checkpoint into a file the checker accepts and fails cleanly on bad
# arguments.
#
# usage (from the repository root): tests/onnx_test.sh [BINARY]   (default build/asan/nepenthe)
# Builds nothing: `make test` builds the binary, the fixture and build/venv first
# (ONNX_FIXTURE and ORT_PY, the venv's python, override where they are).
#
# Each check prints "ok - NAME" or "not ok - NAME"; the last line is "N passed, M failed"
# and the exit status is non-zero if any check failed.
# Checks are shell code in single quotes, expanded by check; BIN is read by lib.sh:
# shellcheck disable=SC2016,SC2034,SC1091
BIN=${1:-build/asan/nepenthe}
. "$(dirname "$0")/lib.sh"
FIXTURE=${ONNX_FIXTURE:-build/tests/onnx_fixture}

# tally CMD...: runs a script that prints its own "ok - " / "not ok - " lines, shows them
# and counts them; a failing exit with no "not ok" line counts as one failure.
tally() {
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    cat "$T/out"
    ok=$(grep -c '^ok - ' "$T/out")
    bad=$(grep -c '^not ok - ' "$T/out")
    pass=$((pass + ok))
    fail=$((fail + bad))
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
        fail=$((fail + 1))
        echo "not ok - $* exited with status $rc"
        head -n 12 "$T/err" | sed 's/^/  # ! /'
    fi
}

# --- the models: checker and ONNX Runtime ------------------------------------------
C=$T/cases
mkdir -p "$C"
"$FIXTURE" "$C" >"$T/out" 2>"$T/err"
rc=$?
check "onnx_fixture writes the test models" \
    'succeeded && [ "$(ls "$C"/*/model.onnx | wc -l)" -ge 10 ]'
tally "$PY" "$HERE/onnx_check.py" "$C"
tally "$ORT_PY" "$HERE/onnx_run.py" "$C"

# --- nepenthe export ----------------------------------------------------------------
nep export --help
missing=""
for flag in --ckpt --onnx --json; do grep -qF -- "$flag" "$T/out" || missing="$missing $flag"; done
check "export --help exits 0 and mentions its flags${missing:+ (missing:$missing)}" \
    'succeeded && [ -z "$missing" ]'

D=$T/data
$PY "$HERE/tools/make_idx.py" "$D" --train 600 --test 200 || echo "not ok - make_idx.py"
nep train --data-dir "$D" --hidden 16 --act gelu --batch 64 --val 100 --threads 1 --epochs 1 --out "$T/run"
check "train a tiny model" 'succeeded && [ -s "$T/run/model.safetensors" ]'
mkdir -p "$T/cli"
nep export --ckpt "$T/run/model.safetensors" --onnx "$T/cli/model.onnx" --json
check "export --json: one JSON object with onnx, nodes, initializers, bytes (the file's size), opset 17" \
    'succeeded && $PY - "$T/out" "$T/cli/model.onnx" <<EOF
import json, os, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
d = json.loads(lines[0])
assert d["onnx"] == sys.argv[2] and d["opset"] == 17, d
assert d["bytes"] == os.path.getsize(sys.argv[2]), (d, os.path.getsize(sys.argv[2]))
assert d["nodes"] > 0 and d["initializers"] > 0, d
EOF'
tally "$PY" "$HERE/onnx_check.py" "$T/cli"
check "the export records the checkpoint's normalization in its metadata" \
    '$PY - "$T/cli/model.onnx" <<EOF
import json, sys
import onnx
m = {p.key: p.value for p in onnx.load(sys.argv[1]).metadata_props}
mean, std = json.loads(m["normalize_mean"]), json.loads(m["normalize_std"])
assert len(mean) == 1 and len(std) == 1 and 0 < mean[0] < 1 and std[0] > 0, m
assert m["nepenthe_layout"] == "NCHW", m
EOF'
nep export --ckpt "$T/run/model.safetensors" --onnx "$T/cli/again.onnx"
check "export without --json: a one-line summary naming the file" \
    'succeeded && [ "$(wc -l <"$T/out")" -eq 1 ] && grep -qF "$T/cli/again.onnx" "$T/out" && grep -q initializers "$T/out"'

nep export --ckpt "$T/no_such.safetensors" --onnx "$T/bad.onnx"
check "export --ckpt missing file: non-zero exit naming it, nothing written" \
    'failed_cleanly && says "$T/no_such.safetensors" && [ ! -e "$T/bad.onnx" ]'
nep export --ckpt "$T/run/model.safetensors"
check "export without --onnx: usage error (exit 2) naming --onnx" \
    '[ "$rc" -eq 2 ] && failed_cleanly && says --onnx && says usage'
nep export --ckpt "$T/run/model.safetensors" --onnx "$T/no/such/dir/m.onnx"
check "export --onnx in a missing directory: non-zero exit naming the path" \
    'failed_cleanly && says "$T/no/such/dir/m.onnx"'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
