#!/bin/sh
# Issue 14's phenomenon run: NEPENTHE vs IMP at zeta = 0.25 on a small ViT and a small Swin
# (shifted windows of 4, patch merging) on Fashion-MNIST, each also with ReLU in its MLPs
# (the paper's rectifier swap), every iteration logged. Dense recipe: AdamW lr 1e-3, weight
# decay 0.05 without norms and biases, 2 warm-up epochs, cosine decay, label smoothing 0.1,
# random crops and flips; retraining: AdamW lr 5e-4, same decay rule and data, constant lr. Writes runs/transformers/<model>/<method>/ and
# results/transformers.md, with each run's figures copied to results/.
# Environment: THREADS (0 = all), ITERS (6), RETRAIN (1), VIT_EPOCHS (15), SWIN_EPOCHS (10),
# MODELS ("vit vit-relu swin swin-relu").
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-0}; ITERS=${ITERS:-6}; RETRAIN=${RETRAIN:-1}
MODELS=${MODELS:-"vit vit-relu swin swin-relu"}
OUT=runs/transformers
VIT="--model vit --patch 4 --width 64 --depths 4 --heads 4 --mlp-ratio 2"
SWIN="--model swin --patch 2 --width 32 --depths 2,2 --heads 2,4 --window 4 --mlp-ratio 2 --drop-path 0.1"
DATA="--augment --label-smoothing 0.1 --batch 128 --seed 0 --threads $THREADS"
RECIPE="--optimizer adamw --lr 1e-3 --wd 0.05 --no-decay-norms-biases --schedule cosine --warmup-epochs 2 $DATA"
mkdir -p "$OUT" results
for name in $MODELS; do
    case $name in
        vit) flags="$VIT" epochs=${VIT_EPOCHS:-15} ;;
        vit-relu) flags="$VIT --act relu" epochs=${VIT_EPOCHS:-15} ;;
        swin) flags="$SWIN" epochs=${SWIN_EPOCHS:-10} ;;
        swin-relu) flags="$SWIN --act relu" epochs=${SWIN_EPOCHS:-10} ;;
        *) echo "unknown model $name" >&2; exit 2 ;;
    esac
    # shellcheck disable=SC2086
    [ -f "$OUT/$name/dense/model.safetensors" ] ||
        build/nepenthe train $flags $RECIPE --epochs "$epochs" --out "$OUT/$name/dense" --resume
    for m in nepenthe imp; do
        build/nepenthe prune --ckpt "$OUT/$name/dense/model.safetensors" --method "$m" --zeta 0.25 --delta 0 \
            --max-iter "$ITERS" --retrain-epochs "$RETRAIN" --optimizer adamw --lr 5e-4 --wd 0.05 \
            --no-decay-norms-biases $DATA --out "$OUT/$name/$m" --resume
        for f in "$OUT/$name/$m"/fig_*.svg; do
            cp "$f" "results/transformers-$name-$m-$(basename "$f" .svg | sed 's/^fig_//').svg"
        done
    done
done
CPU=$(grep -m1 "model name" /proc/cpuinfo | sed 's/.*: //')
/usr/bin/python3 scripts/study_table.py "$OUT" "NEPENTHE vs IMP on small vision transformers (Fashion-MNIST)" \
    "Written by \`scripts/transformer_study.sh\` (\`scripts/study_table.py\`) at commit $(git rev-parse --short HEAD) on $CPU, $THREADS threads (results/README.md says which commit ran which rows)." \
    > results/transformers.md
cat results/transformers.md
