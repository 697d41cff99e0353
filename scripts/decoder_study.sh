#!/bin/sh
# Issue 16's real-data run: a Llama-shaped decoder pretrained by nepenthe on Debian's
# fortunes, then pruned without fine-tuning as the paper prunes Llama 3.1-8B (Table 8).
#   corpus   nepenthe lm-corpus: 43 files, 15,100 entries, a seeded 5% held out, and a
#            4-way continuation task (555 test questions) in MMLU's CSV format from
#            held-out text only
#   model    scripts/decoder_model.py: a byte-level BPE of 4,096 ids trained on train.txt
#            (Llama 3's pre-tokenizer) and a config: 6 layers, width 256, 8:2 heads, MLP
#            768, tied embeddings (5.6 M parameters)
#   train    nepenthe lm-train: 8 epochs, rows of 128 tokens, batch 16, AdamW 2e-3 (wd 0.1),
#            200 warm-up steps then cosine decay, clipping at 1
#   eval     nepenthe lm-eval: held-out perplexity; the task in cloze form (rows of 128) and
#            in MMLU's 0-shot letter form (rows of 512)
#   prune    nepenthe lm-prune, zeta 0.25, 8 iterations, 128 calibration rows: NEPENTHE
#            with magnitude and with Wanda, and IMP with magnitude
#   collapse nepenthe lm-collapse on each run's last iteration (exact, then --always-off)
# Writes runs/decoder/ (results/decoder.md: scripts/decoder_table.py); every stage resumes
# or is skipped once done.
# Environment: THREADS (0 = all), STAGES ("corpus model train eval prune collapse"),
# NEPENTHE (the binary, build/nepenthe: a copy lets a long run go on while build/ changes).
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-0}
STAGES=${STAGES-"corpus model train eval prune collapse"}
NEPENTHE=${NEPENTHE:-build/nepenthe}
PY=build/venv/bin/python
OUT=runs/decoder
mkdir -p "$OUT"
[ -s "$OUT/commit" ] || git rev-parse --short HEAD > "$OUT/commit" # the commit whose binary made the runs
M=$OUT/train/model
for stage in $STAGES; do
    case $stage in
    corpus) [ -s "$OUT/data/corpus.json" ] || "$NEPENTHE" lm-corpus --out "$OUT/data" ;;
    model) [ -s "$OUT/init/config.json" ] || "$PY" scripts/decoder_model.py "$OUT/data/train.txt" "$OUT/init" ;;
    train)
        [ -s "$OUT/train.json" ] || {
            "$NEPENTHE" lm-train --model "$OUT/init" --data "$OUT/data" --out "$OUT/train" --epochs 8 --lr 2e-3 \
                --warmup-steps 200 --seed 0 --threads "$THREADS" --resume --json > "$OUT/train.json.tmp"
            tail -1 "$OUT/train.json.tmp" > "$OUT/train.json" && rm "$OUT/train.json.tmp"
        } ;;
    eval)
        # cloze at the training length (as lm-prune scores it); the letter prompt holds the
        # question and four continuations, longer than 128 tokens: 512 (past the lengths
        # the model was trained at, which it only extrapolates to)
        for run in cloze:128 letter:512; do
            mode=${run%:*} T=${run#*:}
            [ -s "$OUT/eval_$mode.json" ] || "$NEPENTHE" lm-eval --model "$M" --text "$OUT/data/heldout.txt" \
                --mc "$OUT/data/mc/data" --mode $mode --seq-len $T --threads "$THREADS" --json > "$OUT/eval_$mode.json"
        done ;;
    prune)
        for run in nepenthe:magnitude nepenthe:wanda imp:magnitude; do
            method=${run%:*} crit=${run#*:}
            "$NEPENTHE" lm-prune --model "$M" --data "$OUT/data" --method "$method" --criterion "$crit" --zeta 0.25 \
                --iters 8 --calib-seqs 128 --threads "$THREADS" --out "$OUT/prune/$method-$crit" --resume
        done ;;
    collapse)
        for run in nepenthe-magnitude nepenthe-wanda imp-magnitude; do
            for mode in exact always-off; do
                flag=""; [ $mode = always-off ] && flag=--always-off
                [ -s "$OUT/prune/$run/collapse_$mode.json" ] || "$NEPENTHE" lm-collapse --model "$OUT/prune/$run/iter_8" \
                    --data "$OUT/data" $flag --out "$OUT/prune/$run/collapsed_$mode.safetensors" --threads "$THREADS" \
                    --json > "$OUT/prune/$run/collapse_$mode.json"
            done
        done ;;
    *) echo "decoder_study.sh: unknown stage $stage" >&2; exit 2 ;;
    esac
done
