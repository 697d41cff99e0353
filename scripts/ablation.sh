#!/bin/sh
# Paper Table 5: NEPENTHE's three components switched on one at a time, from the dense
# model of scripts/baselines.sh, and the depth-matched baseline.
#
#   entropy budget  don't care  neuron selection   run
#   off             off         off                IMP ($OUT/baselines/$TAG/imp)
#   on              off         off                --no-dont-care --no-neuron-selection
#   on              on          off                --no-neuron-selection
#   on              on          on                 NEPENTHE ($OUT/baselines/$TAG/nepenthe)
#   depth-reduced model trained from initialization: `train --identity L1,L2,...` with the
#   dense recipe, L = the layers with entropy 0 at the NEPENTHE run's reported iteration
#   (scripts/baselines_table.py's rule, δ = DELTA).
#
# The dense model, NEPENTHE and IMP are scripts/baselines.sh's (same directories, same
# commands: whichever script runs first makes them, the other resumes them, which is a
# no-op once they are complete). The two ablations go to $OUT/ablation/$TAG/budget and
# budget-dontcare (no --sharpness-batches: it does not change a run, only costs time),
# the depth-matched model to $OUT/ablation/$TAG/depth-matched. Writes
# $RESULTS/ablation-$TAG.md (scripts/ablation_table.py) and $RESULTS/ablation-$TAG.svg
# (nepenthe compare: test top-1 against layers removed; the depth-matched model is one
# point). Every command, as run, goes to $OUT/ablation/$TAG/commands.sh.
#
# usage: scripts/ablation.sh                          (hours of CPU at the defaults)
#        QUICK=1 OUT=/tmp/q scripts/ablation.sh        (seconds)
# Environment: as scripts/baselines.sh (MODEL, DATA, TAG, DENSE_*, ITERS, RETRAIN, ZETA,
# RETRAIN_LR, RETRAIN_MILESTONES, THREADS, SHARP_BATCHES, DELTA, OUT, RESULTS, QUICK, BIN).
# shellcheck disable=SC2086,SC2046
set -eu
BASELINES_SOURCED=1
# shellcheck source=scripts/baselines.sh
. "$(dirname "$0")/baselines.sh"
AB=$OUT/ablation/$TAG
START=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
mkdir -p "$AB" "$RESULTS"
CMDS=$AB/commands.sh
FAILED=$AB/failed.txt
printf '# scripts/ablation.sh, started %s\n' "$START" >"$CMDS"
rm -f "$FAILED"
quick_data
dense "$BASE/dense" "$MODEL" $MODEL_FLAGS
CK=$BASE/dense/model.safetensors
prune imp "$BASE/imp" "$CK" $(method_flags imp)
prune nepenthe "$BASE/nepenthe" "$CK" $(method_flags nepenthe)
prune nepenthe "$AB/budget" "$CK" --zeta "$ZETA" --no-dont-care --no-neuron-selection
prune nepenthe "$AB/budget-dontcare" "$CK" --zeta "$ZETA" --no-neuron-selection

# The depth-matched baseline: NEPENTHE's removable layers, the identity from initialization.
IDENT=$($PY scripts/ablation_table.py --zero-layers "$BASE/nepenthe")
DM=$AB/depth-matched
if [ -f "$DM/identity.txt" ] && [ "$(cat "$DM/identity.txt")" != "$IDENT" ]; then
    echo "ablation.sh: $DM was trained with --identity $(cat "$DM/identity.txt"), now $IDENT: moved to $DM.prev" >&2
    rm -rf "$DM.prev"
    mv "$DM" "$DM.prev"
fi
mkdir -p "$DM"
printf '%s\n' "$IDENT" >"$DM/identity.txt"
if [ -n "$IDENT" ]; then
    if ! dense "$DM" "$MODEL" $MODEL_FLAGS --identity "$IDENT"; then
        echo "$DM" >>"$FAILED"
        echo "ablation.sh: the depth-matched training failed; the table says so" >&2
    fi
else
    echo "ablation.sh: NEPENTHE removed no layer at its reported iteration: no depth-matched model" >&2
fi

meta "$AB/meta.json" "$START"
$PY scripts/ablation_table.py "$AB" "$BASE" >"$RESULTS/ablation-$TAG.md.tmp"
mv "$RESULTS/ablation-$TAG.md.tmp" "$RESULTS/ablation-$TAG.md"

# The figure: `nepenthe compare` labels a run by its summary's method ("nepenthe" for three
# of these), so it reads copies of the logs without summaries, named by their row.
FIG=$AB/compare
rm -rf "$FIG"
for pair in "IMP:$BASE/imp" "budget:$AB/budget" "budget+dont-care:$AB/budget-dontcare" \
    "NEPENTHE:$BASE/nepenthe"; do
    mkdir -p "$FIG/${pair%%:*}"
    cp "${pair#*:}/iterations.jsonl" "$FIG/${pair%%:*}/" 2>/dev/null || rm -rf "${FIG:?}/${pair%%:*}"
done
runs=""
for r in IMP budget budget+dont-care NEPENTHE; do
    if [ -d "$FIG/$r" ]; then runs="$runs${runs:+,}$r"; fi
done
if [ -f "$DM/eval.json" ]; then
    mkdir -p "$FIG/depth-matched"
    $PY scripts/ablation_table.py --point "$DM" >"$FIG/depth-matched/iterations.jsonl"
    runs="$runs${runs:+,}depth-matched"
fi
bin=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
svg=$(cd "$RESULTS" && pwd)/ablation-$TAG.svg
(cd "$FIG" && "$bin" compare --runs "$runs" --out "$svg" \
    --title "$TAG: NEPENTHE's components (paper Table 5)" >/dev/null)
cat "$RESULTS/ablation-$TAG.md"
if [ -s "$FAILED" ]; then
    echo "ablation.sh: failed:" $(cat "$FAILED") >&2
    exit 1
fi
