#!/bin/sh
# The issue-3 study: NEPENTHE vs IMP vs EGP (and the structural baselines that make the
# layer with the smallest sum of |w| or |grad| the identity) on Fashion-MNIST, on a plain MLP with six
# hidden layers and on a residual MLP (blocks x + fc2(relu(fc1(x)))), every iteration
# logged. Writes runs/study/<model>/<method>/ and results/study.md.
# Environment: THREADS (default 0 = all), ITERS (6), RETRAIN (2), DENSE_EPOCHS (10), ZETA (0.5).
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-0}; ITERS=${ITERS:-6}; RETRAIN=${RETRAIN:-2}; EPOCHS=${DENSE_EPOCHS:-10}
ZETA=${ZETA:-0.5}
OUT=runs/study
TRAIN="--epochs $EPOCHS --batch 128 --lr 0.05 --momentum 0.9 --wd 5e-4 --milestones 6,8 --seed 0 --threads $THREADS"
mkdir -p "$OUT" results
run_model() { # name, model flags
    name=$1; shift
    [ -f "$OUT/$name/dense/model.safetensors" ] ||
        build/nepenthe train "$@" $TRAIN --out "$OUT/$name/dense" --resume
    for m in nepenthe imp egp smallest-weights smallest-grads; do
        build/nepenthe prune --ckpt "$OUT/$name/dense/model.safetensors" --method "$m" --zeta "$ZETA" \
            --delta 0 --max-iter "$ITERS" --retrain-epochs "$RETRAIN" --lr 0.01 --momentum 0.9 \
            --wd 5e-4 --seed 0 --threads "$THREADS" --out "$OUT/$name/$m" --resume
    done
}
run_model mlp6 --model mlp --hidden 512,512,512,512,512,512 --act relu
run_model resmlp6 --model resmlp --width 256 --hidden 512,512,512,512,512,512 --act relu
/usr/bin/python3 scripts/study_table.py "$OUT" > results/study.md
cat results/study.md
