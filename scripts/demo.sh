#!/bin/sh
# The main job (README, first command): on Fashion-MNIST, train a dense residual MLP
# (embed 784->256, six blocks x + fc2(relu(fc1(x))) with 512 hidden units, head), run
# NEPENTHE on it and, for comparison, IMP at the same pruning rate; print the iteration
# tables and where the figures are. About 3 minutes on 2 cores. Output: runs/demo (or $OUT).
# Until the convolutional networks exist (issue 4) the model is an MLP.
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo}
THREADS=${THREADS:-0}
mkdir -p "$OUT"
MODEL="--model resmlp --width 256 --hidden 512,512,512,512,512,512 --act relu"
PRUNE="--zeta 0.5 --delta 0.98 --max-iter 8 --retrain-epochs 2 --lr 0.01 --momentum 0.9 --wd 5e-4 --seed 0"

echo "== 1/3 dense: resmlp 784-256-(6 blocks of 512)-10 on Fashion-MNIST, 10 epochs -> $OUT/dense"
build/nepenthe train $MODEL --data fashion-mnist --epochs 10 --batch 128 --optimizer sgd --lr 0.05 \
    --momentum 0.9 --wd 5e-4 --milestones 6,8 --gamma 0.1 --seed 0 --threads "$THREADS" \
    --out "$OUT/dense" --resume --json > "$OUT/dense.json"
echo "dense: $(cat "$OUT/dense.json")"

for method in nepenthe imp; do
    echo "== $([ $method = nepenthe ] && echo 2 || echo 3)/3 $method (zeta 0.5, stop below 0.98 x dense val) -> $OUT/$method"
    build/nepenthe prune --ckpt "$OUT/dense/model.safetensors" --method $method $PRUNE \
        --threads "$THREADS" --out "$OUT/$method" --resume
done

build/nepenthe compare --runs "$OUT/nepenthe,$OUT/imp" --out "$OUT/fig_accuracy_vs_removed.svg" \
    --title "resmlp on Fashion-MNIST: NEPENTHE vs IMP" | tail -1
echo "summaries: $OUT/nepenthe/summary.json, $OUT/imp/summary.json"
echo "figures:   $OUT/nepenthe/fig_*.svg (entropy per iteration, neuron states, accuracy)"
