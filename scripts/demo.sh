#!/bin/sh
# The main job (README, first command): on Fashion-MNIST, train a dense ResNet-20 (the
# CIFAR ResNet: 19 ReLU layers, 0.27 M parameters), run NEPENTHE on it and, for
# comparison, IMP at the same pruning rate; print each run's iterations and a table of
# layers removed and top-1 against dense; then remove NEPENTHE's collapsed layers for
# real and report the model before and after, with its ONNX export. About 12 minutes on
# this project's 2 cores.
# Output: runs/demo (or $OUT); a killed demo picks up where it stopped when run again.
#
# The schedule is the shortest that shows layers collapsing (H_l = 0): 4 dense epochs,
# then 2 iterations at zeta 0.5 with 1 retraining epoch each. Short retraining costs
# accuracy; results/resnet20-fashion-mnist.md has the long recipe (8 dense epochs, 3
# retraining epochs per iteration, 4 iterations) and what it measured.
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo}
THREADS=${THREADS:-0}
mkdir -p "$OUT"
PRUNE="--zeta 0.5 --delta 0 --max-iter 2 --retrain-epochs 1 --lr 0.01 --momentum 0.9 --wd 5e-4 --seed 0"

echo "== 1/4 dense: ResNet-20 on Fashion-MNIST, 4 epochs -> $OUT/dense"
build/nepenthe train --model resnet20 --data fashion-mnist --epochs 4 --batch 128 --optimizer sgd \
    --lr 0.1 --momentum 0.9 --wd 5e-4 --milestones 3 --gamma 0.1 --seed 0 --threads "$THREADS" \
    --out "$OUT/dense" --resume --json > "$OUT/dense.json"
echo "dense: $(cat "$OUT/dense.json")"

for method in nepenthe imp; do
    echo "== $([ $method = nepenthe ] && echo 2 || echo 3)/4 $method (zeta 0.5, 2 iterations) -> $OUT/$method"
    build/nepenthe prune --ckpt "$OUT/dense/model.safetensors" --method $method $PRUNE \
        --threads "$THREADS" --out "$OUT/$method" --resume
done

echo "== layers removed (of 19) and test top-1 against dense (iteration 0)"
build/nepenthe compare --runs "$OUT/nepenthe,$OUT/imp" --out "$OUT/fig_accuracy_vs_removed.svg" \
    --title "ResNet-20 on Fashion-MNIST: NEPENTHE vs IMP"

echo "== 4/4 collapse: NEPENTHE's last model without its zero-entropy layers -> $OUT/collapsed.*"
build/nepenthe collapse --ckpt "$OUT/nepenthe/iter_2.safetensors" --out "$OUT/collapsed.safetensors" \
    --onnx "$OUT/collapsed.onnx" --threads "$THREADS"
echo "summaries: $OUT/nepenthe/summary.json, $OUT/imp/summary.json"
echo "figures:   $OUT/nepenthe/fig_*.svg (entropy per iteration, neuron states, accuracy)"
