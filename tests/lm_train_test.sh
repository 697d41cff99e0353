#!/bin/sh
# `nepenthe lm-corpus` and `nepenthe lm-train`, end to end on real text: the fortunes
# corpus (train.txt, heldout.txt and the multiple-choice files), a tokenizer trained on a
# slice of it with PyPI's tokenizers (scripts/decoder_model.py), a tiny Llama trained two
# epochs from scratch. Its OUT/model loads in transformers, which gets nepenthe's
# held-out loss on the same packed rows; a run killed after its first epoch resumes to
# the bytes of an uninterrupted one; `nepenthe lm-eval` gets the same held-out loss and,
# on the multiple-choice task (cloze and MMLU's letter prompt), every log-likelihood of
# lm-evaluation-harness's scoring over transformers (tests/hf_eval_mc.py); bad arguments
# fail cleanly, naming the flag or file. `nepenthe lm-prune` (NEPENTHE without fine-tuning)
# writes folders transformers evaluates to its perplexities and resumes to the same bytes;
# `nepenthe generate` gives transformers' greedy tokens; a bfloat16 folder mapped
# (--map-weights) scores and generates as its float32 load does;
# and `nepenthe lm-collapse` drops the SwiGLU features it zeroed without changing them.
# About a minute on 2 cores.
#
# usage (from the repository root): tests/lm_train_test.sh [BINARY]   (default build/asan/nepenthe)
# Training runs use the release binary build/nepenthe (FAST_BIN overrides) when it exists.
# Prints "ok - NAME" / "not ok - NAME", then "N passed, M failed".
# shellcheck disable=SC2016,SC2034,SC1091
BIN=${1:-build/asan/nepenthe}
. "$(dirname "$0")/lib.sh"
FAST=${FAST_BIN:-build/nepenthe}
[ -x "$FAST" ] || FAST=$BIN
fast() {
    "$FAST" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}

nep lm-corpus --out "$T/data" --json
check "lm-corpus builds the fortunes corpus: 43 files, 5% held out, a 5-shot multiple-choice task" \
    'succeeded && grep -q "\"files\":43" "$T/out" && grep -q "\"heldout\":755" "$T/out" && grep -q "\"mc_dev\":5" "$T/out" && [ -s "$T/data/mc/data/test/fortunes_test.csv" ]'
# a small slice, so that the test stays short: 300 train lines, 40 held out
head -n 300 "$T/data/train.txt" >"$T/small_train.txt"
mkdir -p "$T/small" && mv "$T/small_train.txt" "$T/small/train.txt" && head -n 40 "$T/data/heldout.txt" >"$T/small/heldout.txt"
"$ORT_PY" scripts/decoder_model.py "$T/small/train.txt" "$T/init" --vocab 512 --layers 2 --hidden 32 --heads 4 \
    --kv-heads 2 --intermediate 64 --max-positions 128 >"$T/out" 2>"$T/err"
rc=$?
check "decoder_model.py writes a tokenizer and a Llama config" 'succeeded && [ -s "$T/init/tokenizer.json" ] && [ -s "$T/init/config.json" ]'

TINY="--model $T/init --data $T/small --seq-len 32 --batch 8 --epochs 2 --lr 3e-3 --warmup-steps 5"
nep lm-train --help
missing=""
for flag in --model --data --seq-len --epochs --lr --warmup-steps --clip-grad-norm --resume --json; do
    grep -qF -- "$flag" "$T/out" || missing="$missing $flag"
done
check "lm-train --help exits 0 and mentions its flags${missing:+ (missing:$missing)}" 'succeeded && [ -z "$missing" ]'
# shellcheck disable=SC2086
fast lm-train $TINY --out "$T/a" --json
check "a tiny decoder trains two epochs from scratch and reports its held-out perplexity" \
    'succeeded && grep -q "\"heldout_ppl\":" "$T/out" && [ "$(wc -l <"$T/a/log.jsonl")" -eq 2 ]'
first=$(sed -n '1s/.*"heldout_loss":\([0-9.]*\).*/\1/p' "$T/a/log.jsonl")
second=$(sed -n '2s/.*"heldout_loss":\([0-9.]*\).*/\1/p' "$T/a/log.jsonl")
check "the held-out loss falls from epoch 1 ($first) to epoch 2 ($second) and is below uniform's ln 512" \
    'awk -v a="$first" -v b="$second" "BEGIN { exit !(b < a && b < log(512)) }"'
ours=$(sed -n 's/.*"heldout_loss":\([0-9.]*\).*/\1/p' "$T/out")
"$ORT_PY" "$HERE/hf_eval_lm.py" "$T/a/model" "$T/small/heldout.txt" 32 >"$T/hf" 2>"$T/err"
rc=$?
theirs=$(sed -n 's/^loss //p' "$T/hf")
check "transformers loads OUT/model and gets nepenthe's held-out loss ($ours against $theirs)" \
    'succeeded && awk -v a="$ours" -v b="$theirs" "BEGIN { d = a - b; exit !(d < 1e-4 * b && -d < 1e-4 * b) }"'

# lm-eval: the perplexity lm-train reported, and the multiple-choice log-likelihoods of
# lm-evaluation-harness's scoring as tests/hf_eval_mc.py writes it out over transformers
nep lm-eval --model "$T/a/model" --text "$T/small/heldout.txt" --seq-len 32 --json
check "lm-eval gets lm-train's held-out loss ($ours)" 'succeeded && grep -q "\"loss\":$ours," "$T/out"'
head -n 12 "$T/data/mc/data/test/fortunes_test.csv" >"$T/mc12.csv"
for mode in cloze letter; do
    nep lm-eval --model "$T/a/model" --mc "$T/data/mc/data" --mode $mode --max-questions 12 --seq-len 64 \
        --predictions "$T/pred_$mode.jsonl" --json
    ok=$rc
    "$ORT_PY" "$HERE/hf_eval_mc.py" "$T/a/model" "$T/mc12.csv" fortunes $mode 64 >"$T/hf_$mode.jsonl" 2>"$T/err"
    rc=$((rc + ok))
    worst=$("$ORT_PY" -c 'import json,sys
a=[json.loads(l)["logprob"] for l in open(sys.argv[1])]; b=[json.loads(l)["logprob"] for l in open(sys.argv[2])]
assert len(a) == len(b) == 12
print(max(abs(p - q) / (1e-3 + abs(q)) for x, y in zip(a, b) for p, q in zip(x, y)))' "$T/pred_$mode.jsonl" "$T/hf_$mode.jsonl" 2>>"$T/err")
    check "lm-eval --mode $mode: every choice's log-likelihood within 1e-5 of lm-evaluation-harness's scoring (worst $worst)" \
        'succeeded && awk -v w="$worst" "BEGIN { exit !(w != \"\" && w < 1e-5) }"'
done

# generate: three prompts of different lengths in one batch, greedy, through the cache, on
# a folder transformers saved (tied embeddings: no lm_head.weight in it) with weights wide
# enough (N(0, 0.5^2)) that the greedy tokens vary
"$ORT_PY" -c 'import shutil,sys,torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(3)
c = LlamaConfig.from_json_file(sys.argv[1] + "/config.json"); c.initializer_range = 0.5
LlamaForCausalLM(c).save_pretrained(sys.argv[2]); shutil.copy(sys.argv[1] + "/tokenizer.json", sys.argv[2])' \
    "$T/init" "$T/wide" >"$T/out" 2>"$T/err"
rc=$?
check "transformers saves a random tied Llama folder (no lm_head.weight)" 'succeeded && [ -s "$T/wide/model.safetensors" ]'
printf 'Love is\nA computer scientist once said that the best\nWhy\n' >"$T/prompts.txt"
nep generate --model "$T/wide" --prompts "$T/prompts.txt" --max-new-tokens 10 --json
"$ORT_PY" -c 'import json,sys
for c in json.loads(open(sys.argv[1]).read().splitlines()[-1])["continuations"]: print(" ".join(map(str, c["ids"])))' \
    "$T/out" >"$T/ours_gen" 2>>"$T/err"
ok=$rc
"$ORT_PY" "$HERE/hf_generate.py" "$T/wide" "$T/prompts.txt" 10 >"$T/hf_gen" 2>"$T/err"
rc=$((rc + ok))
check "generate continues three prompts in one batch with transformers' greedy tokens" \
    'succeeded && [ "$(wc -l <"$T/ours_gen")" -eq 3 ] && cmp -s "$T/ours_gen" "$T/hf_gen" && [ "$(tr " " "\n" <"$T/ours_gen" | sort -u | wc -l)" -gt 5 ]'
# the same weights saved by transformers in bfloat16: read as float32 on both sides
"$ORT_PY" -c 'import shutil,sys,torch
from transformers import LlamaForCausalLM
LlamaForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.bfloat16).save_pretrained(sys.argv[2])
shutil.copy(sys.argv[1] + "/tokenizer.json", sys.argv[2])' "$T/wide" "$T/bf16" >"$T/out" 2>"$T/err"
nep lm-eval --model "$T/bf16" --text "$T/small/heldout.txt" --seq-len 32 --json
ours=$(sed -n 's/.*"loss":\([0-9.]*\),.*/\1/p' "$T/out")
ok=$rc
"$ORT_PY" "$HERE/hf_eval_lm.py" "$T/bf16" "$T/small/heldout.txt" 32 >"$T/hf" 2>"$T/err"
rc=$((rc + ok))
theirs=$(sed -n 's/^loss //p' "$T/hf")
check "a bfloat16 folder transformers saved: nepenthe's held-out loss is transformers' ($ours against $theirs)" \
    'succeeded && grep -q "bfloat16" "$T/bf16/config.json" && awk -v a="$ours" -v b="$theirs" "BEGIN { d = a - b; exit !(a != \"\" && d < 1e-4 * b && -d < 1e-4 * b) }"'
# the same folder with its bfloat16 matrices mapped, converted as each is used: the same
# numbers as the float32 load, and the same greedy tokens
MCQ="--mc $T/data/mc/data --mode cloze --max-questions 24 --seq-len 32"
nep lm-eval --model "$T/bf16" $MCQ --predictions "$T/copied.jsonl"
nep lm-eval --model "$T/bf16" $MCQ --predictions "$T/mapped.jsonl" --map-weights --json
check "lm-eval --map-weights maps the bfloat16 matrices and scores every choice as the float32 load does" \
    'succeeded && grep -q "\"mapped\":[1-9]" "$T/out" && [ -s "$T/mapped.jsonl" ] && cmp -s "$T/copied.jsonl" "$T/mapped.jsonl"'
nep generate --model "$T/bf16" --prompts "$T/prompts.txt" --max-new-tokens 10 --json
mv "$T/out" "$T/copied_gen"
nep generate --model "$T/bf16" --prompts "$T/prompts.txt" --max-new-tokens 10 --json --map-weights
check "generate --map-weights gives the float32 load's greedy tokens" \
    'succeeded && grep -q "\"ids\"" "$T/out" && [ "$(grep -o "\"ids\":[^]]*" "$T/out")" = "$(grep -o "\"ids\":[^]]*" "$T/copied_gen")" ]'
nep generate --model "$T/a/model" --prompt "Why" --max-new-tokens 200
check "generate past max_position_embeddings fails naming it" 'failed_cleanly && says "max_position_embeddings"'

# lm-prune: NEPENTHE with Wanda on the trained decoder, no fine-tuning, two iterations
mkdir -p "$T/pd" && cp "$T/small/train.txt" "$T/small/heldout.txt" "$T/pd/" && ln -s "$T/data/mc" "$T/pd/mc"
PRUNE="--model $T/a/model --data $T/pd --seq-len 32 --calib-seqs 16 --iters 2 --zeta 0.3 --criterion wanda --max-questions 24"
# shellcheck disable=SC2086
fast lm-prune $PRUNE --out "$T/p" --json
check "lm-prune runs two NEPENTHE+Wanda iterations on the decoder, each a folder with its masks" \
    'succeeded && [ "$(wc -l <"$T/p/iterations.jsonl")" -eq 3 ] && [ -f "$T/p/iter_2/masks.safetensors" ] && grep -q "\"layers\":2" "$T/out"'
s1=$(sed -n '2s/.*"sparsity":\([0-9.]*\).*/\1/p' "$T/p/iterations.jsonl")
s2=$(sed -n '3s/.*"sparsity":\([0-9.]*\).*/\1/p' "$T/p/iterations.jsonl")
check "the owned sparsity grows by about zeta of what is left each iteration ($s1%, then $s2%)" \
    'awk -v a="$s1" -v b="$s2" "BEGIN { exit !(a > 29 && a < 31 && b > 50 && b < 52) }"'
ppl2=$(sed -n '3s/.*"heldout_ppl":\([0-9.]*\).*/\1/p' "$T/p/iterations.jsonl")
"$ORT_PY" "$HERE/hf_eval_lm.py" "$T/p/iter_2" "$T/small/heldout.txt" 32 >"$T/hf" 2>"$T/err"
rc=$?
hfloss=$(sed -n 's/^loss //p' "$T/hf")
check "transformers loads the pruned iter_2 folder and gets its held-out perplexity ($ppl2)" \
    'succeeded && awk -v p="$ppl2" -v l="$hfloss" "BEGIN { d = exp(l) - p; exit !(d < 1e-4 * p && -d < 1e-4 * p) }"'
# killed after iteration 1's commit, then resumed
# shellcheck disable=SC2086
killed_once '"iter":1' "$T/q/progress.json" "$FAST" lm-prune $PRUNE --out "$T/q"
# shellcheck disable=SC2086
fast lm-prune $PRUNE --out "$T/q" --resume
check "an lm-prune run killed after iteration 1 resumes to the bytes of an uninterrupted one" \
    'succeeded && cmp -s "$T/p/iter_2/model.safetensors" "$T/q/iter_2/model.safetensors" && cmp -s "$T/p/iter_2/masks.safetensors" "$T/q/iter_2/masks.safetensors" && [ "$(wc -l <"$T/q/iterations.jsonl")" -eq 3 ]'
# shellcheck disable=SC2086
nep lm-prune $PRUNE --out "$T/q" --resume --zeta 0.5
check "lm-prune --resume with another --zeta is refused, naming the stored options" 'failed_cleanly && says "other options"'
nep lm-prune --model "$T/a/model" --data "$T/pd" --out "$T/r" --criterion snip
check "lm-prune --criterion snip fails naming it" 'failed_cleanly && says "snip"'

# lm-collapse: the pruned decoder's SwiGLU features with a zero gate row go exactly
nep lm-collapse --model "$T/p/iter_2" --data "$T/pd" --seq-len 32 --max-questions 24 --out "$T/col.safetensors" \
    --onnx "$T/col.onnx" --json
ppls=$(sed -n 's/.*"ppl":\[\([0-9.]*\),\([0-9.]*\)\].*/\1 \2/p' "$T/out")
check "lm-collapse drops the features NEPENTHE zeroed and keeps the perplexity ($ppls), writing a checkpoint and ONNX" \
    'succeeded && [ -n "$ppls" ] && [ "${ppls% *}" = "${ppls#* }" ] && [ -s "$T/col.onnx" ] && grep -q "\"dropped_off\":0" "$T/out"'
nep lm-collapse --model "$T/p/iter_2" --data "$T/pd" --out "$T/col2.safetensors" --always-off --empty-mlp half
check "lm-collapse --empty-mlp half fails naming the value" 'failed_cleanly && says "half" && [ ! -e "$T/col2.safetensors" ]'
nep info --ckpt "$T/col.safetensors" --json
check "info reads the shrunk decoder's checkpoint" 'succeeded && grep -q "gate_proj" "$T/out"'

# killed after epoch 1's log line (before or after its checkpoint), then resumed
# shellcheck disable=SC2086
killed_once '"epoch":1' "$T/b/log.jsonl" "$FAST" lm-train $TINY --out "$T/b"
# shellcheck disable=SC2086
fast lm-train $TINY --out "$T/b" --resume
check "a run killed after its first epoch resumes to the bytes of an uninterrupted one" \
    'succeeded && cmp -s "$T/a/model/model.safetensors" "$T/b/model/model.safetensors" && [ "$(wc -l <"$T/b/log.jsonl")" -eq 2 ]'
# shellcheck disable=SC2086
nep lm-train $TINY --out "$T/b" --resume --lr 1e-2
check "--resume with another --lr is refused, naming the stored options" 'failed_cleanly && says "other options"'

nep lm-train --out "$T/c"
check "lm-train without --model fails cleanly" 'failed_cleanly && says "--model"'
# shellcheck disable=SC2086
nep lm-train $TINY --out "$T/c" --seq-len 200
check "a --seq-len past max_position_embeddings fails naming it" 'failed_cleanly && says "max_position_embeddings"'
nep lm-train --model "$T/init" --data "$T/nothing" --seq-len 32 --out "$T/c"
check "a missing --data directory fails naming its train.txt" 'failed_cleanly && says "$T/nothing/train.txt"'
nep lm-corpus --out "$T/d" --heldout 0.7
check "lm-corpus --heldout 0.7 fails naming the value" 'failed_cleanly && says "0.7"'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
