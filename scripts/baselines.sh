#!/bin/sh
# Paper Tables 2 and 3 on one dense model: NEPENTHE against every baseline the CLI has
# (IMP, EGP, the structural baselines smallest-weights and smallest-grads, SSL's group
# lasso, NEPENTHE+SSL (paper Fig. 4) and HRank), and the sharpness (largest Hessian
# eigenvalue of the training loss) after every iteration of NEPENTHE and IMP.
#
# Trains the dense model into $OUT/baselines/$TAG/dense (skipped when its model is there),
# runs every method into $OUT/baselines/$TAG/<method>/ with --delta 0 (every iteration
# logged) and --resume (a killed script, run again, continues where it stopped), then
# writes $RESULTS/baselines-$TAG.md (scripts/baselines_table.py) and
# $RESULTS/baselines-$TAG.svg (nepenthe compare). The runs' directory also gets
# commands.sh (every command, as run) and meta.json (commit, CPU, dates, settings).
#
# usage: scripts/baselines.sh            (hours of CPU at the default settings)
#        QUICK=1 OUT=/tmp/q scripts/baselines.sh   (seconds: tests/study_scripts_test.sh)
#
# Environment (defaults: the recipe of results/resnet20-fashion-mnist.md, schedule A):
#   MODEL resnet20, MODEL_FLAGS '' (more train flags, e.g. --hidden 32,32,32),
#   DATA fashion-mnist, DATA_DIR '' (the data set's default), VAL '' (train's default),
#   TAG $MODEL-$DATA (names the run directory and the result files),
#   DENSE_EPOCHS 8, DENSE_LR 0.1, DENSE_MILESTONES 5,7, BATCH 128, MOMENTUM 0.9, WD 5e-4,
#   ITERS 4, RETRAIN 3, ZETA 0.5, RETRAIN_LR 0.1, RETRAIN_MILESTONES 1,2, SEED 0,
#   THREADS 0 (all cores), SHARP_BATCHES 4 (nepenthe and imp only),
#   LAMBDA 1e-5 (ssl, nepenthe-ssl: --group-lasso), SSL_THRESHOLD 1e-3,
#   HRANK_ZETA $ZETA (fraction of each layer's filters per iteration), HRANK_BATCHES 4,
#   HRANK_MODEL $MODEL (HRank needs convolutions: another model gets its own dense run,
#   dense-$HRANK_MODEL, trained with the same recipe), HRANK_MODEL_FLAGS '',
#   METHODS (all eight), DELTA 0.99 (the reporting rule, see baselines_table.py),
#   OUT runs, RESULTS results, BIN build/nepenthe.
# QUICK=1 changes the defaults (explicit settings still win): resmlp --width 32 --hidden
# 32,32,32 on a generated IDX data set ($OUT/data, 1200 train / 300 test, VAL 200), 2
# dense epochs at batch 32, lr 0.02, no milestones; ZETA 0.8, ITERS 2, RETRAIN 1,
# RETRAIN_LR 0.02, THREADS 1, SHARP_BATCHES 1, HRANK_BATCHES 1, HRANK_MODEL cnn, TAG
# resmlp-quick, OUT runs/quick, RESULTS $OUT/results (never results/). The residual MLP
# because NEPENTHE then removes one of its three layers and keeps its accuracy (a plain
# 32-wide MLP collapses all three at once, and its depth-matched model, purely linear,
# diverges at the dense learning rate).
#
# scripts/ablation.sh sources this file with BASELINES_SOURCED=1 to share its settings
# and functions (same dense model, same NEPENTHE and IMP runs).
# Paths must not contain spaces (option strings are split on purpose):
# shellcheck disable=SC2086,SC2046
set -eu
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1  # ablation_table.py imports baselines_table.py
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    : "${OUT:=runs/quick}"
    : "${RESULTS:=$OUT/results}" "${MODEL:=resmlp}" "${MODEL_FLAGS:=--width 32 --hidden 32,32,32}"
    : "${DATA_DIR:=$OUT/data}" "${VAL:=200}" "${TAG:=resmlp-quick}" "${ZETA:=0.8}"
    : "${DENSE_EPOCHS:=2}" "${DENSE_LR:=0.02}" "${DENSE_MILESTONES:=}" "${BATCH:=32}"
    : "${ITERS:=2}" "${RETRAIN:=1}" "${RETRAIN_LR:=0.02}" "${RETRAIN_MILESTONES:=}"
    : "${THREADS:=1}" "${SHARP_BATCHES:=1}" "${HRANK_BATCHES:=1}" "${HRANK_MODEL:=cnn}"
fi
BIN=${BIN:-build/nepenthe}
OUT=${OUT:-runs}; RESULTS=${RESULTS:-results}
MODEL=${MODEL:-resnet20}; MODEL_FLAGS=${MODEL_FLAGS:-}
DATA=${DATA:-fashion-mnist}; DATA_DIR=${DATA_DIR:-}; VAL=${VAL:-}
TAG=${TAG:-$MODEL-$DATA}
DENSE_EPOCHS=${DENSE_EPOCHS:-8}; DENSE_LR=${DENSE_LR:-0.1}; DENSE_MILESTONES=${DENSE_MILESTONES-5,7}
BATCH=${BATCH:-128}; MOMENTUM=${MOMENTUM:-0.9}; WD=${WD:-5e-4}; SEED=${SEED:-0}
ITERS=${ITERS:-4}; RETRAIN=${RETRAIN:-3}; ZETA=${ZETA:-0.5}
RETRAIN_LR=${RETRAIN_LR:-0.1}; RETRAIN_MILESTONES=${RETRAIN_MILESTONES-1,2}
THREADS=${THREADS:-0}; SHARP_BATCHES=${SHARP_BATCHES:-4}
LAMBDA=${LAMBDA:-1e-5}; SSL_THRESHOLD=${SSL_THRESHOLD:-1e-3}
HRANK_ZETA=${HRANK_ZETA:-$ZETA}; HRANK_BATCHES=${HRANK_BATCHES:-4}
HRANK_MODEL=${HRANK_MODEL:-$MODEL}; HRANK_MODEL_FLAGS=${HRANK_MODEL_FLAGS:-}
METHODS=${METHODS:-nepenthe imp egp smallest-weights smallest-grads ssl nepenthe-ssl hrank}
DELTA=${DELTA:-0.99}
export DELTA
BASE=$OUT/baselines/$TAG

DATA_FLAGS="--data $DATA${DATA_DIR:+ --data-dir $DATA_DIR}"
RECIPE="--batch $BATCH --momentum $MOMENTUM --wd $WD --seed $SEED --threads $THREADS"
DENSE_FLAGS="$DATA_FLAGS${VAL:+ --val $VAL} --epochs $DENSE_EPOCHS --lr $DENSE_LR${DENSE_MILESTONES:+ --milestones $DENSE_MILESTONES} $RECIPE"
PRUNE_FLAGS="$DATA_FLAGS --delta 0 --max-iter $ITERS --retrain-epochs $RETRAIN --lr $RETRAIN_LR${RETRAIN_MILESTONES:+ --milestones $RETRAIN_MILESTONES} $RECIPE"

# logged CMD...: appends the command to $CMDS, then runs it.
logged() {
    printf '%s\n' "$*" >>"$CMDS"
    "$@"
}

# quick_data: QUICK's generated data set (deterministic; written once).
quick_data() {
    [ "$QUICK" = 1 ] || return 0
    [ -f "$DATA_DIR/t10k-labels-idx1-ubyte.gz" ] && return 0
    logged $PY tests/tools/make_idx.py "$DATA_DIR" --train 1200 --test 300
}

# dense DIR MODEL [TRAIN FLAGS...]: the dense recipe into DIR unless DIR/model.safetensors
# is there (--resume: a killed training continues), extra train flags (--identity) after
# the model; then DIR/eval.json, `nepenthe eval --json` on the test split.
dense() {
    dir=$1 model=$2
    shift 2
    if [ -f "$dir/model.safetensors" ]; then
        printf '# present, not run again: ' >>"$CMDS"
        printf '%s\n' "$BIN train --model $model $* $DENSE_FLAGS --out $dir --resume" >>"$CMDS"
    else
        logged "$BIN" train --model "$model" "$@" $DENSE_FLAGS --out "$dir" --resume || return 1
    fi
    if [ ! -f "$dir/eval.json" ] || [ -n "$(find "$dir/model.safetensors" -newer "$dir/eval.json")" ]; then
        printf '%s\n' "$BIN eval --ckpt $dir/model.safetensors $DATA_FLAGS --split test --threads $THREADS --json | tail -n 1 > $dir/eval.json" >>"$CMDS"
        "$BIN" eval --ckpt "$dir/model.safetensors" $DATA_FLAGS --split test --threads "$THREADS" --json \
            >"$dir/eval.tmp" || return 1
        tail -n 1 "$dir/eval.tmp" >"$dir/eval.json" && rm -f "$dir/eval.tmp"
    fi
}

# The dense checkpoint a method prunes (HRank's may be another model's).
ckpt_of() {
    if [ "$1" = hrank ] && [ "$HRANK_MODEL" != "$MODEL" ]; then
        echo "$BASE/dense-$HRANK_MODEL/model.safetensors"
    else
        echo "$BASE/dense/model.safetensors"
    fi
}

# The flags of one method in this study.
method_flags() {
    case $1 in
        nepenthe | imp) [ "$SHARP_BATCHES" -gt 0 ] && echo "--zeta $ZETA --sharpness-batches $SHARP_BATCHES" ||
            echo "--zeta $ZETA" ;;
        ssl | nepenthe-ssl) echo "--zeta $ZETA --group-lasso $LAMBDA --ssl-threshold $SSL_THRESHOLD" ;;
        hrank) echo "--zeta $HRANK_ZETA --hrank-batches $HRANK_BATCHES" ;;
        *) echo "--zeta $ZETA" ;;
    esac
}

# prune METHOD DIR CKPT [FLAGS...]: one prune run (resumed if DIR has one). A failure is
# written to $FAILED and does not stop the script, which exits non-zero at its end.
prune() {
    m=$1 dir=$2 ck=$3
    shift 3
    if ! logged "$BIN" prune --ckpt "$ck" --method "$m" "$@" $PRUNE_FLAGS --out "$dir" --resume; then
        echo "$dir" >>"$FAILED"
        echo "baselines.sh: prune --method $m into $dir failed; going on" >&2
    fi
}

# meta FILE START: the facts the table's header reports.
# shellcheck disable=SC2089,SC2090  # the quotes in SETTINGS are for the reader
meta() (
    export MODEL DATA TAG HRANK_MODEL QUICK THREADS DELTA
    COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    DIRTY=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
    CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
    ISA=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -x 'avx2\|avx512f' | tr '\n' ' ')
    CORES=$(nproc)
    START=$2
    END=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
    SETTINGS="QUICK=$QUICK MODEL=$MODEL MODEL_FLAGS='$MODEL_FLAGS' DATA=$DATA DATA_DIR=$DATA_DIR VAL=$VAL"
    SETTINGS="$SETTINGS DENSE_EPOCHS=$DENSE_EPOCHS DENSE_LR=$DENSE_LR DENSE_MILESTONES=$DENSE_MILESTONES"
    SETTINGS="$SETTINGS BATCH=$BATCH MOMENTUM=$MOMENTUM WD=$WD SEED=$SEED ITERS=$ITERS RETRAIN=$RETRAIN"
    SETTINGS="$SETTINGS ZETA=$ZETA RETRAIN_LR=$RETRAIN_LR RETRAIN_MILESTONES=$RETRAIN_MILESTONES"
    SETTINGS="$SETTINGS THREADS=$THREADS SHARP_BATCHES=$SHARP_BATCHES LAMBDA=$LAMBDA SSL_THRESHOLD=$SSL_THRESHOLD"
    SETTINGS="$SETTINGS HRANK_ZETA=$HRANK_ZETA HRANK_BATCHES=$HRANK_BATCHES HRANK_MODEL=$HRANK_MODEL DELTA=$DELTA"
    export COMMIT DIRTY CPU ISA CORES START END SETTINGS
    $PY -c 'import json, os, sys
keys = ("COMMIT", "DIRTY", "CPU", "ISA", "CORES", "START", "END", "SETTINGS", "MODEL", "DATA",
        "TAG", "HRANK_MODEL", "QUICK", "THREADS", "DELTA")
json.dump({k.lower(): os.environ.get(k, "") for k in keys}, open(sys.argv[1], "w"), indent=1)' "$1"
)

if [ "${BASELINES_SOURCED:-0}" = 1 ]; then
    return 0
fi

START=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
mkdir -p "$BASE" "$RESULTS"
CMDS=$BASE/commands.sh
FAILED=$BASE/failed.txt
printf '# scripts/baselines.sh, started %s\n' "$START" >"$CMDS"
rm -f "$FAILED"
quick_data
dense "$BASE/dense" "$MODEL" $MODEL_FLAGS
case " $METHODS " in
    *" hrank "*) [ "$HRANK_MODEL" = "$MODEL" ] || dense "$BASE/dense-$HRANK_MODEL" "$HRANK_MODEL" $HRANK_MODEL_FLAGS ;;
esac
for m in $METHODS; do
    prune "$m" "$BASE/$m" "$(ckpt_of "$m")" $(method_flags "$m")
done
meta "$BASE/meta.json" "$START"
$PY scripts/baselines_table.py "$BASE" >"$RESULTS/baselines-$TAG.md.tmp"
mv "$RESULTS/baselines-$TAG.md.tmp" "$RESULTS/baselines-$TAG.md"
runs=""
for m in $METHODS; do
    if [ -f "$BASE/$m/iterations.jsonl" ]; then runs="$runs${runs:+,}$BASE/$m"; fi
done
"$BIN" compare --runs "$runs" --out "$RESULTS/baselines-$TAG.svg" \
    --title "$TAG: test top-1 against layers removed" >/dev/null
cat "$RESULTS/baselines-$TAG.md"
if [ -s "$FAILED" ]; then
    echo "baselines.sh: failed runs:" $(cat "$FAILED") >&2
    exit 1
fi
