#!/bin/sh
# The main job (README, first command): train the MLP 784-1024-1024-1024-10 (ReLU) on
# Fashion-MNIST with the recipe below and print its test accuracy. Later issues extend
# this to the whole NEPENTHE pipeline. Output goes to runs/demo (or $OUT).
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/demo}
THREADS=${THREADS:-0}
mkdir -p "$OUT"
echo "training mlp 784-1024x3-10 on Fashion-MNIST -> $OUT"
build/nepenthe train --model mlp --hidden 1024,1024,1024 --act relu --data fashion-mnist \
    --epochs 10 --batch 128 --optimizer sgd --lr 0.05 --momentum 0.9 --wd 5e-4 \
    --milestones 6,8 --gamma 0.1 --seed 0 --threads "$THREADS" --out "$OUT" --json > "$OUT/result.json"
echo "result: $(cat "$OUT/result.json")"
build/nepenthe info --ckpt "$OUT/model.safetensors" | tail -2
