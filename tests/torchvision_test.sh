#!/bin/sh
# vit and swin between nepenthe and torchvision 0.14, both ways, end to end:
# - `nepenthe train` writes a checkpoint that torchvision's VisionTransformer /
#   SwinTransformer load by their own state_dict names and evaluate to nepenthe's `eval`
#   top-1 and loss (tests/torchvision_check.py to-torch);
# - torchvision weights, saved with numpy and converted by scripts/npz_to_safetensors.py,
#   evaluate in nepenthe to torchvision's top-1 and loss;
# - `info` (which names what is prunable), `entropy` and a one-iteration `prune` (Wanda:
#   input norms over tokens) run on both and count the MLP GELUs (mlp.1) as the rectifier
#   layers.
#
# usage (from the repository root): tests/torchvision_test.sh [BINARY]   (default build/asan/nepenthe)
BIN=${1:-build/asan/nepenthe}
. "$(dirname "$0")/lib.sh"

# jtrue EXPR...: every Python expression over the JSON object j on $T/out's last line holds.
jtrue() {
    tail -n 1 "$T/out" | $PY -c 'import json, sys
j = json.loads(sys.stdin.read())
bad = [e for e in sys.argv[1:] if not eval(e)]
print("\n".join(bad), file=sys.stderr)
sys.exit(1 if bad else 0)' "$@"
}

D=$T/data
$PY "$HERE/tools/make_idx.py" "$D" --train 600 --test 200 || echo "not ok - make_idx.py"

VIT="--model vit --width 16 --patch 7 --depths 2 --heads 2 --mlp-ratio 2"
SWIN="--model swin --width 8 --patch 2 --depths 2,2 --heads 2,4 --window 4 --mlp-ratio 2 --drop-path 0.1"
for m in vit swin; do
    if [ $m = vit ]; then flags=$VIT layers=2; else flags=$SWIN layers=4; fi
    # shellcheck disable=SC2086
    nep train --data-dir "$D" $flags --optimizer adamw --lr 1e-3 --wd 0.05 --batch 64 --val 100 \
        --threads 1 --epochs 1 --out "$T/$m"
    check "$m: train a tiny model" 'succeeded && [ -s "$T/$m/model.safetensors" ]'
    nep eval --ckpt "$T/$m/model.safetensors" --data-dir "$D" --json
    check "$m: eval --json" 'succeeded'
    top1=$(tail -1 "$T/out" | $PY -c 'import json,sys; print(json.load(sys.stdin)["test_top1"])')
    loss=$(tail -1 "$T/out" | $PY -c 'import json,sys; print(json.load(sys.stdin)["loss"])')
    "$PY" "$HERE/torchvision_check.py" to-torch "$T/$m/model.safetensors" "$D" "$top1" "$loss" >"$T/tv" 2>"$T/tverr"
    cat "$T/tv"
    pass=$((pass + $(grep -c '^ok - ' "$T/tv")))
    bad=$(grep -c '^not ok - ' "$T/tv")
    [ "$(grep -c '^ok - ' "$T/tv")" -eq 2 ] || bad=$((bad + 1))
    fail=$((fail + bad))
    [ "$bad" -eq 0 ] || head -n 12 "$T/tverr" | sed 's/^/  # ! /'

    nep info --ckpt "$T/$m/model.safetensors"
    check "$m: info says what is prunable" 'succeeded && grep -q "prunable: the $layers rectifier layers" "$T/out" \
        && grep -q "never pruned" "$T/out"'
    nep entropy --ckpt "$T/$m/model.safetensors" --data-dir "$D" --max-batches 2
    check "$m: entropy counts the $layers MLP GELUs" 'succeeded && [ "$(grep -c "mlp.1 " "$T/out")" -eq "$layers" ]'
    nep prune --ckpt "$T/$m/model.safetensors" --data-dir "$D" --out "$T/${m}_prune" --criterion wanda \
        --zeta 0.25 --max-iter 1 --retrain-epochs 1 --optimizer adamw --lr 5e-4 --batch 64 --threads 1
    check "$m: one Wanda iteration prunes 25% of the mlp.0 weights" 'succeeded && grep -q "25.00%" "$T/err" "$T/out"'

    # a block whose GELU is always ON (its mlp.0 bias raised by 20) collapses: linearized
    # (approximately: GELU(z) ~ z for z >> 0), then mlp.3 composed with mlp.0
    if [ $m = vit ]; then owner=encoder.layers.encoder_layer_1.mlp.0; else owner=features.1.1.mlp.0; fi
    $PY - "$T/$m/model.safetensors" "$T/$m.on.safetensors" "$owner" "$HERE/tools" <<'EOF'
import sys
sys.path.insert(0, sys.argv[4])
import safetensors_np
t, meta = safetensors_np.load(sys.argv[1])
t[sys.argv[3] + ".bias"] = t[sys.argv[3] + ".bias"] + 20
safetensors_np.save(sys.argv[2], t, meta)
EOF
    nep collapse --ckpt "$T/$m.on.safetensors" --out "$T/$m.collapsed.safetensors" --onnx "$T/$m.collapsed.onnx" \
        --data-dir "$D" --threads 1 --json
    check "$m: an always-ON GELU block collapses (linearized approximately, mlp.3 composed with mlp.0, logits within 1e-3; attention and LayerNorms kept)" \
        'succeeded && jtrue \
            "j[\"rewrites\"][\"linearized\"] == 1 and j[\"rewrites\"][\"approximate\"] == 1" \
            "j[\"rules\"][\"compose_linear_linear\"] == 1" \
            "j[\"after\"][\"rectifiers\"] == $layers - 1 and j[\"after\"][\"mflops\"] < j[\"before\"][\"mflops\"]" \
            "j[\"vs_pruned\"][\"max_abs_diff\"] < 1e-3 and j[\"vs_pruned\"][\"top1_agreement\"] == 100" \
            "j[\"kept\"][\"attention\"] == $layers and j[\"kept\"][\"layernorm\"] >= 2 * $layers"'
    mkdir -p "$T/${m}_onnx" && cp "$T/$m.collapsed.onnx" "$T/${m}_onnx/model.onnx"
    "$PY" "$HERE/onnx_check.py" "$T/${m}_onnx" >"$T/out" 2>"$T/err"
    rc=$?
    check "$m: the collapsed model's ONNX export passes the checker" '[ "$rc" -eq 0 ] && ! grep -q "^not ok" "$T/out"'

    "$PY" "$HERE/torchvision_check.py" from-torch $m "$T/$m.npz" "$D" >"$T/ft" 2>"$T/err"
    rc=$?
    check "$m: torchvision weights saved with numpy" '[ "$rc" -eq 0 ] && [ "$(wc -l <"$T/ft")" -eq 2 ]'
    # shellcheck disable=SC2046
    "$PY" "$HERE/../scripts/npz_to_safetensors.py" "$T/$m.npz" "$T/$m.from_torch.safetensors" \
        $(head -1 "$T/ft") >/dev/null 2>"$T/err"
    nep eval --ckpt "$T/$m.from_torch.safetensors" --data-dir "$D" --json
    check "$m: converted torchvision weights give torchvision's top-1 and loss" 'succeeded && $PY - "$T/out" "$T/ft" <<EOF
import json, sys
got = json.loads(open(sys.argv[1]).read().splitlines()[-1])
top1, loss = (float(v) for v in open(sys.argv[2]).read().splitlines()[1].split())
assert abs(got["test_top1"] - top1) <= 0.5 + 1e-9 and abs(got["loss"] - loss) <= 1e-4 * abs(loss), (got, top1, loss)
EOF'
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
