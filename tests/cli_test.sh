#!/bin/sh
# End-to-end tests of the nepenthe command-line tool on a tiny generated data set.
#
# usage (from the repository root): tests/cli_test.sh [BINARY]   (default build/asan/nepenthe)
#
# Each check prints "ok - NAME" or "not ok - NAME" followed by the output of the command
# it looked at; the last line is "N passed, M failed" and the exit status is non-zero if
# any check failed. Models are tiny and single-threaded so that the whole script takes
# seconds even with the sanitized binary.
#
# Checks are shell code in single quotes, expanded when check evaluates them, and the
# shared option strings ($SMALL, $RES) are split on purpose:
# shellcheck disable=SC2016,SC2086
BIN=${1:-build/asan/nepenthe}
. "$(dirname "$0")/lib.sh"
# jlast FILE KEY: KEY of the JSON object on FILE's last line.
jlast() {
    tail -n 1 "$1" | $PY -c 'import json, sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$2"
}
# py EXPR: true if the Python expression is.
py() { $PY -c "import sys; sys.exit(0 if ($1) else 1)"; }
# epochs_are LOG N...: the log.jsonl lines' epochs are exactly N...
epochs_are() {
    $PY -c 'import json, sys
e = [json.loads(l)["epoch"] for l in open(sys.argv[1])]
w = [int(x) for x in sys.argv[2:]]
if e != w:
    sys.exit("epochs in %s: %s, want %s" % (sys.argv[1], e, w))' "$@"
}

D=$T/data
$PY "$HERE/tools/make_idx.py" "$D" || { echo "not ok - make_idx.py"; echo "0 passed, 1 failed"; exit 1; }
# What every run below shares: tiny model, single thread, 200 validation images.
SMALL="--data-dir $D --hidden 32,32 --batch 64 --val 200 --threads 1"

# --- help and usage -------------------------------------------------------------
nep --help
check "nepenthe --help lists the commands" \
    'succeeded && grep -q train "$T/out" && grep -q eval "$T/out" && grep -q info "$T/out" && grep -q bench "$T/out"'
RECIPE_FLAGS="--schedule --min-lr --warmup-epochs --warmup-start-factor --label-smoothing --clip-grad-norm --no-decay-norms-biases"
for spec in "train:--hidden --act --epochs --batch --lr --momentum --wd --milestones --gamma --optimizer --seed --out --resume --json --data-dir $RECIPE_FLAGS" \
            "prune:--ckpt --retrain-epochs --lr --milestones $RECIPE_FLAGS" \
            "eval:--ckpt --data --split --json" \
            "info:--ckpt" \
            "bench:--model --hidden --batch --steps --json"; do
    cmd=${spec%%:*}
    nep "$cmd" --help
    missing=""
    for flag in ${spec#*:}; do grep -qF -- "$flag" "$T/out" || missing="$missing $flag"; done
    check "$cmd --help exits 0 and mentions its flags${missing:+ (missing:$missing)}" \
        'succeeded && [ -z "$missing" ]'
done
nep
check "no command: non-zero exit with usage" 'failed_cleanly && says usage'
nep frobnicate
check "unknown command: non-zero exit naming it" 'failed_cleanly && says frobnicate'

# --- bad flags and values -------------------------------------------------------
nep train --out "$T/x" --bogus
check "train --bogus exits 2 naming --bogus" '[ "$rc" -eq 2 ] && failed_cleanly && says --bogus'
nep eval --bogus
check "eval --bogus exits 2 naming --bogus" '[ "$rc" -eq 2 ] && failed_cleanly && says --bogus'
for bad in "--epochs abc" "--act tanh" "--optimizer rmsprop" "--hidden 10,x" "--lr 1e999" "--milestones 1,y" \
           "--schedule linear" "--schedule cosine --milestones 1" "--schedule cosine --warmup-epochs 10" \
           "--min-lr 0.01" "--min-lr -1 --schedule cosine" "--warmup-epochs -1" "--warmup-start-factor 0" \
           "--label-smoothing 1.5" "--clip-grad-norm -1"; do
    flag=${bad%% *}
    nep train $SMALL --out "$T/bad" $bad
    check "train $bad: non-zero exit naming $flag" 'failed_cleanly && says "$flag"'
done
check "bad values wrote no output directory" '[ ! -e "$T/bad" ]'
nep prune --ckpt "$T/none.safetensors" --out "$T/bad" --retrain-epochs 2 --schedule cosine --warmup-epochs 2
check "prune: a cosine without epochs after the warm-up fails naming --retrain-epochs" \
    'failed_cleanly && says --retrain-epochs && [ ! -e "$T/bad" ]'
nep train --data-dir "$D"
check "train without --out: non-zero exit naming --out" 'failed_cleanly && says --out'
touch "$T/a_file"
nep train $SMALL --out "$T/a_file" --epochs 1
check "train --out naming an existing file: non-zero exit naming it" 'failed_cleanly && says a_file'

# --- data errors ----------------------------------------------------------------
nep train --data-dir "$T/no/such/dir" --out "$T/x" --epochs 1
check "missing data dir: names the path and dataset-fashion-mnist" \
    'failed_cleanly && says "$T/no/such/dir" && says dataset-fashion-mnist'
mkdir "$T/empty"
nep train --data-dir "$T/empty" --out "$T/x" --epochs 1
check "data dir without files: names the file and dataset-fashion-mnist" \
    'failed_cleanly && says train-images-idx3-ubyte && says dataset-fashion-mnist'

cp -r "$D" "$T/cut"
head -c 300000 "$D/train-images-idx3-ubyte.gz" >"$T/cut/train-images-idx3-ubyte.gz"
nep train $SMALL --data-dir "$T/cut" --out "$T/x" --epochs 1
check "truncated gzip IDX: non-zero exit naming the file" \
    'failed_cleanly && says "$T/cut/train-images-idx3-ubyte.gz"'

$PY "$HERE/tools/make_idx.py" "$T/plain" --plain
nep train $SMALL --data-dir "$T/plain" --out "$T/plainrun" --epochs 1
check "plain (not gzipped) IDX files train" 'succeeded && [ -s "$T/plainrun/model.safetensors" ]'
cp -r "$T/plain" "$T/pcut"
head -c 5000 "$T/plain/t10k-images-idx3-ubyte" >"$T/pcut/t10k-images-idx3-ubyte"
nep train $SMALL --data-dir "$T/pcut" --out "$T/x" --epochs 1
check "truncated plain IDX: non-zero exit naming the file" \
    'failed_cleanly && says "$T/pcut/t10k-images-idx3-ubyte" && says_i truncated'
cp -r "$T/plain" "$T/magic"
printf '\001\002\003\004' | dd of="$T/magic/train-labels-idx1-ubyte" bs=1 count=4 conv=notrunc 2>/dev/null
nep train $SMALL --data-dir "$T/magic" --out "$T/x" --epochs 1
check "corrupt IDX magic: non-zero exit naming the file" \
    'failed_cleanly && says "$T/magic/train-labels-idx1-ubyte" && says_i magic'
cp -r "$D" "$T/gzbad"
$PY - "$T/gzbad/train-images-idx3-ubyte.gz" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
for i in range(len(b) // 2, len(b) // 2 + 64):
    b[i] ^= 0xA5
open(p, "wb").write(bytes(b))
EOF
nep train $SMALL --data-dir "$T/gzbad" --out "$T/x" --epochs 1
check "corrupt gzip data in IDX: non-zero exit naming the file" \
    'failed_cleanly && says "$T/gzbad/train-images-idx3-ubyte.gz"'

# --- train, eval, info ----------------------------------------------------------
R=$T/run
nep train $SMALL --epochs 2 --seed 1 --out "$R" --json
cp "$T/out" "$T/train.out"
check "train 2 epochs succeeds" succeeded
check "train writes model.safetensors, checkpoint.safetensors, log.jsonl" \
    '[ -s "$R/model.safetensors" ] && [ -s "$R/checkpoint.safetensors" ] && [ -s "$R/log.jsonl" ]'
check "log.jsonl: 2 lines with epoch, loss, train_top1, val_top1, img_per_s, seconds" \
    '$PY - "$R/log.jsonl" <<EOF
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 2, lines
for i, l in enumerate(lines):
    d = json.loads(l)
    assert d["epoch"] == i + 1, d
    for k in ("loss", "train_top1", "val_top1", "img_per_s", "seconds"):
        assert isinstance(d[k], (int, float)), (k, d)
EOF'
check "train --json: last stdout line has test_top1, val_top1, params, seconds" \
    '$PY - "$T/train.out" <<EOF
import json, sys
d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
for k in ("test_top1", "val_top1", "params", "seconds"):
    assert isinstance(d[k], (int, float)), (k, d)
EOF'
test_top1=$(jlast "$T/train.out" test_top1 2>/dev/null)
val_top1=$(jlast "$T/train.out" val_top1 2>/dev/null)
params=$(jlast "$T/train.out" params 2>/dev/null)
check "test_top1 ($test_top1%) is well above chance (> 50%)" 'py "${test_top1:-0} > 50"'

nep eval --ckpt "$R/model.safetensors" --data-dir "$D" --threads 1 --json
eval_top1=$(jlast "$T/out" test_top1 2>/dev/null)
eval_loss=$(jlast "$T/out" loss 2>/dev/null)
check "eval --json: test_top1 ($eval_top1) equals train's ($test_top1)" \
    'succeeded && py "abs(${eval_top1:-1e9} - ${test_top1:-0}) <= 1e-3"'
nep eval --ckpt "$R/model.safetensors" --data-dir "$D" --threads 1 --split val --json
eval_val=$(jlast "$T/out" val_top1 2>/dev/null)
check "eval --split val: val_top1 ($eval_val) equals train's ($val_top1) on 200 images" \
    'succeeded && py "abs(${eval_val:-1e9} - ${val_top1:-0}) <= 1e-3" && grep -q "\"images\":200" "$T/out"'
nep eval --ckpt "$R/model.safetensors" --data-dir "$D" --split nope
check "eval --split nope: non-zero exit naming --split" 'failed_cleanly && says --split'

# --backend ref: the float64 reference loops run the same model; float32 against float64
# moves the mean loss by rounding only, and an image's top-1 only where two logits tie.
nep eval --ckpt "$R/model.safetensors" --data-dir "$D" --threads 1 --backend ref --json
ref_top1=$(jlast "$T/out" test_top1 2>/dev/null)
ref_loss=$(jlast "$T/out" loss 2>/dev/null)
check "eval --backend ref: test_top1 ($ref_top1) within 0.1 of cpu's ($eval_top1), loss ($ref_loss) within 1e-4 of cpu's ($eval_loss)" \
    'succeeded && py "abs(${ref_top1:-1e9} - ${eval_top1:-0}) <= 0.1 and abs(${ref_loss:-1e9} - ${eval_loss:-0}) <= 1e-4"'
nep eval --ckpt "$R/model.safetensors" --data-dir "$D" --backend cuda9
check "eval --backend cuda9: exit 2 naming --backend and the backends there are" \
    '[ "$rc" -eq 2 ] && failed_cleanly && says --backend && says "cpu, ref"'
nep train $SMALL --epochs 1 --seed 1 --backend ref --out "$T/refrun" --json
ref_train=$(jlast "$T/out" test_top1 2>/dev/null)
ref_train_loss=$(jlast "$T/refrun/log.jsonl" loss 2>/dev/null)
cpu_train_loss=$(head -1 "$R/log.jsonl" | jlast /dev/stdin loss 2>/dev/null)
check "train --backend ref: epoch 1's loss ($ref_train_loss) within 1e-4 of cpu's ($cpu_train_loss)" \
    'succeeded && py "abs(${ref_train_loss:-1e9} - ${cpu_train_loss:-0}) <= 1e-4"'

nep info --ckpt "$R/model.safetensors"
check "info: rows fc1, fc2, fc3 and total" \
    'succeeded && grep -q "^fc1 " "$T/out" && grep -q "^fc2 " "$T/out" && grep -q "^fc3 " "$T/out" && grep -q "^total " "$T/out"'
info_total=$(awk '$1 == "total" { print $2 }' "$T/out")
check "info: parameter total ($info_total) equals train's params ($params)" \
    '[ -n "$params" ] && [ "$info_total" = "$params" ]'
# 784*32+32 + 32*32+32 + 32*10+10
check "info: fc1 has 25120 parameters, fc3 330" \
    'awk '"'"'$1 == "fc1" && $4 == 25120 { a = 1 } $1 == "fc3" && $4 == 330 { b = 1 } END { exit !(a && b) }'"'"' "$T/out"'

# --- data that does not fit the model -------------------------------------------
$PY "$HERE/tools/make_idx.py" "$T/c12" --classes 12 --train 300 --test 100
$PY "$HERE/tools/make_idx.py" "$T/s14" --size 14 --train 300 --test 100
nep train $SMALL --epochs 1 --classes 2 --out "$T/x"
check "train --classes 2 on 10-class data: non-zero exit about the labels" \
    'failed_cleanly && { says_i label || says_i class; }'
nep eval --ckpt "$R/model.safetensors" --data-dir "$T/c12" --threads 1
check "eval of a 10-class model on 12-class data: non-zero exit about the labels" \
    'failed_cleanly && { says_i label || says_i class; }'
nep eval --ckpt "$R/model.safetensors" --data-dir "$T/s14" --threads 1
check "eval of a 28x28 model on 14x14 data: non-zero exit about the input shape" \
    'failed_cleanly && says 14'
nep train --data-dir "$T/s14" --hidden 32 --val 100 --threads 1 --epochs 1 --input 1,28,28 --out "$T/x"
check "train --input 1,28,28 on 14x14 data: non-zero exit naming --input" \
    'failed_cleanly && says --input'
nep train --data-dir "$T/s14" --hidden 32 --val 100 --threads 1 --epochs 1 --out "$T/x14"
check "train on 14x14 data without --input takes the data's shape (fc1 reads 196 features)" \
    'succeeded && "$BIN" info --ckpt "$T/x14/model.safetensors" | grep -q "fc1 .* 6304 "'

# --- bad checkpoints ------------------------------------------------------------
head -c 2000 "$R/model.safetensors" >"$T/trunc.safetensors" 2>/dev/null
printf 'this is not a safetensors file at all' >"$T/garbage.safetensors"
printf '\377\377\377\377\377\377\377\177{}' >"$T/hugehdr.safetensors"
for f in trunc garbage hugehdr; do
    for cmd in eval info; do
        if [ "$cmd" = eval ]; then nep eval --ckpt "$T/$f.safetensors" --data-dir "$D"; else nep info --ckpt "$T/$f.safetensors"; fi
        check "$cmd on $f.safetensors: non-zero exit naming the file" \
            'failed_cleanly && says "$T/$f.safetensors"'
    done
done
nep eval --ckpt "$T/does-not-exist.safetensors" --data-dir "$D"
check "eval on a missing checkpoint: non-zero exit naming it" \
    'failed_cleanly && says "$T/does-not-exist.safetensors"'
$PY - "$R/model.safetensors" "$T" "$HERE/tools" <<'EOF'
import sys
sys.path.insert(0, sys.argv[3])
import safetensors_np as st
src, out = sys.argv[1], sys.argv[2]
t, meta = st.load(src)
w = t["fc1.weight"]
st.save(out + "/transposed.safetensors", dict(t, **{"fc1.weight": w.T.copy()}), meta)
st.save(out + "/narrow.safetensors", dict(t, **{"fc1.weight": w[:, :-1].copy()}), meta)
st.save(out + "/roundtrip.safetensors", t, meta)
EOF
nep info --ckpt "$T/roundtrip.safetensors"
check "a checkpoint rewritten by safetensors_np.py loads (info)" 'succeeded && grep -q "^total " "$T/out"'
for f in transposed narrow; do
    for cmd in eval info; do
        if [ "$cmd" = eval ]; then nep eval --ckpt "$T/$f.safetensors" --data-dir "$D"; else nep info --ckpt "$T/$f.safetensors"; fi
        check "$cmd on a checkpoint with $f fc1.weight: non-zero exit naming the tensor" \
            'failed_cleanly && says fc1.weight && says "$T/$f.safetensors"'
    done
done

# --- resume ---------------------------------------------------------------------
# Larger than $SMALL (epochs of ~0.05 s released, ~0.3 s with ASan) so that the killed
# run below is killed mid-run rather than after its last epoch.
RES="--data-dir $D --hidden 256,256 --batch 16 --lr 0.01 --val 200 --threads 1 --seed 7"
nep train $RES --epochs 3 --out "$T/A"
check "resume: uninterrupted 3-epoch run A" 'succeeded && [ -s "$T/A/model.safetensors" ]'
nep train $RES --epochs 1 --out "$T/B"
check "resume: run B, first epoch" succeeded
nep train $RES --epochs 3 --resume --out "$T/B"
check "resume: run B, --resume --epochs 3" succeeded
check "resume: B's model.safetensors is byte-identical to A's" \
    'cmp "$T/A/model.safetensors" "$T/B/model.safetensors" >&2'
check "resume: B's log.jsonl has 3 lines, epochs 1, 2, 3" \
    'epochs_are "$T/B/log.jsonl" 1 2 3'

"$BIN" train $RES --epochs 3 --out "$T/K" >"$T/out" 2>"$T/err" &
pid=$!
while [ ! -e "$T/K/checkpoint.safetensors" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
kill -9 "$pid" 2>/dev/null && killed=killed || killed="finished before the kill"
wait "$pid" 2>/dev/null
nep train $RES --epochs 3 --resume --out "$T/K"
check "resume after kill -9 ($killed): succeeds" succeeded
check "resume after kill -9: model identical to A's" \
    'cmp "$T/A/model.safetensors" "$T/K/model.safetensors" >&2'

# An epoch ends by writing model.safetensors, then its log line, then the checkpoint
# (whose rename marks the epoch done). A kill can land between any two of them; these
# states are made here deterministically from the 2-epoch run in $R (same options).
W=$T/window
nep train $SMALL --epochs 1 --seed 1 --out "$W"
cp "$W/checkpoint.safetensors" "$T/c1.safetensors" 2>/dev/null
cp "$W/model.safetensors" "$T/m1.safetensors" 2>/dev/null
cp "$W/log.jsonl" "$T/log1.jsonl" 2>/dev/null
nep train $SMALL --epochs 2 --seed 1 --resume --out "$W"
check "resume 1 -> 2 epochs matches the uninterrupted 2-epoch run" \
    'succeeded && cmp "$R/model.safetensors" "$W/model.safetensors" >&2'
cp "$W/log.jsonl" "$T/log2.jsonl" 2>/dev/null
# Killed after epoch 2's model file, before its log line and checkpoint.
cp "$T/c1.safetensors" "$W/checkpoint.safetensors" 2>/dev/null
cp "$T/log1.jsonl" "$W/log.jsonl" 2>/dev/null
nep train $SMALL --epochs 2 --seed 1 --resume --out "$W"
check "killed before epoch 2's log line: --resume reaches the same weights" \
    'succeeded && cmp "$R/model.safetensors" "$W/model.safetensors" >&2'
check "killed before epoch 2's log line: log.jsonl has epochs 1, 2" \
    'epochs_are "$W/log.jsonl" 1 2'
# Killed after epoch 2's log line, before its checkpoint: the line is dropped and redone.
cp "$T/c1.safetensors" "$W/checkpoint.safetensors" 2>/dev/null
cp "$T/log2.jsonl" "$W/log.jsonl" 2>/dev/null
nep train $SMALL --epochs 2 --seed 1 --resume --out "$W"
check "killed before epoch 2's checkpoint: --resume reaches the same weights" \
    'succeeded && cmp "$R/model.safetensors" "$W/model.safetensors" >&2'
check "killed before epoch 2's checkpoint: log.jsonl has epochs 1, 2 once each" \
    'epochs_are "$W/log.jsonl" 1 2'
# Finished run whose model file is stale (e.g. restored by hand): --resume rewrites it.
cp "$T/m1.safetensors" "$W/model.safetensors" 2>/dev/null
nep train $SMALL --epochs 2 --seed 1 --resume --out "$W"
check "nothing left to train: --resume rewrites model.safetensors from the checkpoint" \
    'succeeded && cmp "$R/model.safetensors" "$W/model.safetensors" >&2'

nep train $RES --epochs 3 --resume --lr 0.02 --out "$T/B"
check "--resume with another --lr fails, saying the options differ" \
    'failed_cleanly && says_i options && says 0.02'
check "the refused --resume left B's model alone" \
    'cmp "$T/A/model.safetensors" "$T/B/model.safetensors" >&2'

# A recipe (warm-up, cosine, label smoothing, clipping, no decay on biases) resumes to the
# same weights: the learning rate comes from the epoch count.
RECIPE="--schedule cosine --min-lr 0.001 --warmup-epochs 1 --label-smoothing 0.1 --clip-grad-norm 1 --no-decay-norms-biases"
nep train $RES $RECIPE --epochs 3 --out "$T/CA"
check "recipe: uninterrupted 3-epoch run" 'succeeded && [ -s "$T/CA/model.safetensors" ]'
check "recipe: epoch lrs are warm-up, top, half-way down the cosine (0.0001, 0.01, 0.0055)" \
    '$PY -c "import json, sys
lr = [json.loads(l)[\"lr\"] for l in open(sys.argv[1])]
sys.exit(0 if lr == [0.0001, 0.01, 0.0055] else str(lr))" "$T/CA/log.jsonl"'
check "recipe: the run's options record every recipe setting" \
    'for k in schedule t_max min_lr warmup_epochs warmup_start_factor label_smoothing clip_grad_norm no_decay_norms_biases; do
         grep -aq "$k" "$T/CA/checkpoint.safetensors" || { echo "no $k" >&2; exit 1; }; done'
check "recipe: a run without them records none (its options are as before)" \
    '! grep -aqE "warmup_epochs|label_smoothing|clip_grad_norm|t_max|no_decay" "$T/A/checkpoint.safetensors"'
"$BIN" train $RES $RECIPE --epochs 3 --out "$T/CK" >"$T/out" 2>"$T/err" &
pid=$!
while [ ! -e "$T/CK/checkpoint.safetensors" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
kill -9 "$pid" 2>/dev/null && killed=killed || killed="finished before the kill"
wait "$pid" 2>/dev/null
nep train $RES $RECIPE --epochs 3 --resume --out "$T/CK"
check "recipe: resumed after kill -9 ($killed): model identical to the uninterrupted run's" \
    'succeeded && cmp "$T/CA/model.safetensors" "$T/CK/model.safetensors" >&2'
nep train $RES $RECIPE --epochs 4 --resume --out "$T/CK"
check "recipe: --resume with more --epochs fails (the cosine would span them), naming t_max" \
    'failed_cleanly && says_i options && says t_max'

# --- divergence -----------------------------------------------------------------
nep train $SMALL --epochs 3 --milestones 1 --gamma 1e30 --out "$T/nan"
check "exploding lr: non-zero exit saying the loss diverged / is not finite" \
    'failed_cleanly && grep -Eqi "diverg|non-finite|not finite|\bnan\b|\binf\b" "$T/err"'
check "exploding lr: log.jsonl holds only epoch 1" \
    '[ "$(wc -l <"$T/nan/log.jsonl")" -eq 1 ]'
nep eval --ckpt "$T/nan/checkpoint.safetensors" --data-dir "$D" --threads 1 --json
nan_top1=$(jlast "$T/out" test_top1 2>/dev/null)
check "exploding lr: epoch-1 checkpoint still loads with eval (top-1 $nan_top1)" \
    'succeeded && py "${nan_top1:--1} >= 0"'
nep train $SMALL --epochs 3 --milestones 1 --gamma 1e30 --resume --out "$T/nan"
check "exploding lr: --resume diverges again cleanly" 'failed_cleanly'

# --- bench ----------------------------------------------------------------------
nep bench --hidden 16 --steps 3 --warmup 1 --threads 1 --json
check "bench --json: train_img_per_s, infer_ms_batch1, infer_img_per_s > 0" \
    'succeeded && tail -n 1 "$T/out" | $PY -c "
import json, sys
d = json.loads(sys.stdin.read())
sys.exit(not all(d[k] > 0 for k in (\"train_img_per_s\", \"infer_ms_batch1\", \"infer_img_per_s\")))"'
nep bench --hidden 16 --steps 0
check "bench --steps 0: non-zero exit naming --steps" 'failed_cleanly && says --steps'
nep bench --model cnn --input 3,12,12 --steps 2 --warmup 1 --threads 1 --save "$T/bench.safetensors" --json
params_built=$(jlast "$T/out" params)
nep bench --ckpt "$T/bench.safetensors" --steps 2 --warmup 1 --threads 1 --json
check "bench --save writes the model it timed; bench --ckpt times it again (same parameters)" \
    'succeeded && [ "$(jlast "$T/out" params)" = "$params_built" ] && [ "$params_built" -gt 0 ]'
nep bench --ckpt "$T/missing.safetensors" --steps 2
check "bench --ckpt of a missing file: non-zero exit naming it" 'failed_cleanly && says missing.safetensors'

# --- unwritable output ----------------------------------------------------------
touch "$T/file"
nep train $SMALL --epochs 1 --out "$T/file/sub"
check "--out under a regular file: non-zero exit naming the path" \
    'failed_cleanly && says "$T/file/sub"'

# --- a PyTorch-trained conv net, converted with the numpy-only script -----------------
$PY "$HERE/tools/torch_train_small.py" "$D" "$T/torch.npz" >"$T/torch.json"
tjson() { $PY -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/torch.json" "$1"; }
$PY "$HERE/../scripts/npz_to_safetensors.py" "$T/torch.npz" "$T/torch.safetensors" --model cnn \
    --input 1,28,28 --mean "$(tjson mean)" --std "$(tjson std)" >/dev/null
nep eval --ckpt "$T/torch.safetensors" --data-dir "$D" --threads 1 --json
check "a PyTorch-trained cnn, converted from .npz, has PyTorch's test top-1 in nepenthe" \
    'succeeded && $PY -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); \
assert 20 < a and abs(a - b) < 1e-3, (a, b)" "$(tjson test_top1)" "$(jlast "$T/out" test_top1)"'

# --- image folders (torchvision's ImageFolder layout, DomainBed domains) ---------------
# Real JPEG and PNG files written by PIL, of several sizes; pixel equality with PIL's decode
# is tests/test_image_folder.c's job, this is the command line around it.
$PY - "$T/imf" <<'EOF'
import os, sys
import numpy as np
from PIL import Image
root, rng = sys.argv[1], np.random.default_rng(0)
def tree(base, per_class, classes=("cat", "dög", "zebra")):
    for c, name in enumerate(classes):
        os.makedirs(os.path.join(base, name), exist_ok=True)
        for i in range(per_class):
            h, w = (int(v) for v in rng.integers(20, 40, 2))
            px = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
            px[..., c] += 180
            im = Image.fromarray(px)
            im.save(os.path.join(base, name, "%d.%s" % (i, "jpg" if i % 2 else "png")), quality=90)
tree(os.path.join(root, "f", "train"), 10)
tree(os.path.join(root, "f", "val"), 4)
open(os.path.join(root, "f", "train", "cat", "notes.txt"), "w").write("not an image")
for d in ("art", "photo", "sketch"):
    tree(os.path.join(root, "db", d), 3)
EOF
IMF=$T/imf/f
nep train --model cnn --data folder --data-dir "$IMF" --image-size 16 --val 6 --epochs 1 --batch 8 --threads 1 --out "$T/imf_run"
check "train --data folder --image-size 16: 24 train, 6 val, 12 test images" \
    'succeeded && grep -q "24 train, 6 val, 12 test images" "$T/out"'
nep eval --ckpt "$T/imf_run/model.safetensors" --data folder --data-dir "$IMF" --json
check "eval of it reads the folder at the recorded --image-size: 12 test images" \
    'succeeded && [ "$(jlast "$T/out" images)" = 12 ]'
nep train --model cnn --data folder --data-dir "$IMF" --image-size 16 --val 6 --epochs 1 --batch 8 --threads 1 --stream \
    --out "$T/imf_stream"
check "train --stream: the weights of the in-memory run, bit for bit, and the wait on decoding logged" \
    'succeeded && grep -q "waiting on decoding" "$T/out" && grep -q decode_wait_s "$T/imf_stream/log.jsonl" && \
$PY -c "import sys; sys.path.insert(0, sys.argv[3]); import safetensors_np as s; \
a, b = s.load(sys.argv[1])[0], s.load(sys.argv[2])[0]; \
assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), \"weights differ\"" \
"$T/imf_run/model.safetensors" "$T/imf_stream/model.safetensors" "$HERE/tools"'
nep eval --ckpt "$T/imf_run/model.safetensors" --data folder --data-dir "$IMF" --json
top1_mem=$(jlast "$T/out" test_top1)
nep eval --ckpt "$T/imf_run/model.safetensors" --data folder --data-dir "$IMF" --stream --json
check "eval --stream: the in-memory test top-1" 'succeeded && [ "$(jlast "$T/out" test_top1)" = "$top1_mem" ]'
nep train --model cnn --data folder --data-dir "$IMF" --val 6 --epochs 1 --threads 1 --out "$T/imf_bad"
check "images of several sizes without --image-size: refused, naming a file and --image-size" \
    'failed_cleanly && says "$IMF/" && says --image-size'
cp -r "$IMF" "$T/imf/broken" && head -c 300 "$IMF/train/zebra/1.jpg" >"$T/imf/broken/train/zebra/1.jpg"
nep train --model cnn --data folder --data-dir "$T/imf/broken" --image-size 16 --val 6 --epochs 1 --threads 1 --out "$T/imf_bad"
check "a truncated JPEG: refused, naming it" 'failed_cleanly && says "broken/train/zebra/1.jpg"'
nep train --model cnn --data folder --data-dir "$T/imf/broken" --image-size 16 --val 6 --epochs 1 --threads 1 \
    --skip-bad-images --out "$T/imf_skip"
check "--skip-bad-images: trains on the 29 others, naming the skipped file" \
    'succeeded && says "broken/train/zebra/1.jpg" && grep -q "23 train, 6 val" "$T/out"'
nep train --model cnn --data folder --data-dir "$T/imf/broken" --image-size 16 --val 6 --epochs 1 --threads 1 \
    --stream --normalize imagenet --out "$T/imf_bad"
check "a truncated JPEG with --stream: the epoch stops, naming it" 'failed_cleanly && says "broken/train/zebra/1.jpg"'
nep train --model cnn --data folder --data-dir "$T/imf/broken" --image-size 16 --epochs 1 --stream --skip-bad-images \
    --out "$T/imf_bad"
check "--stream with --skip-bad-images: refused, naming both" 'failed_cleanly && says --stream && says --skip-bad-images'
nep train --model cnn --data domainbed --data-dir "$T/imf/db" --test-domains sketch --image-size 16 --val 3 \
    --epochs 1 --threads 1 --out "$T/db_run"
check "domainbed --test-domains sketch: trains on art and photo (18 images), tests on sketch (9)" \
    'succeeded && grep -q "15 train, 3 val, 9 test images" "$T/out"'
nep train --model cnn --data domainbed --data-dir "$T/imf/db" --image-size 16 --epochs 1 --out "$T/db_bad"
check "domainbed without --test-domains: refused, naming it" 'failed_cleanly && says --test-domains'
nep train --model cnn --data domainbed --data-dir "$T/imf/db" --test-domains cartoon --image-size 16 --epochs 1 --out "$T/db_bad"
check "domainbed --test-domains cartoon (no such domain): refused, listing the domains" \
    'failed_cleanly && says cartoon && says sketch'
nep train --model cnn --data folder --data-dir "$IMF" --image-size 16 --val 6 --epochs 1 --threads 1 \
    --normalize imagenet --out "$T/imf_in"
check "--normalize imagenet: the checkpoint holds torchvision's ImageNet statistics" \
    'succeeded && $PY -c "import sys, json; sys.path.insert(0, sys.argv[2]); import safetensors_np as s; \
n = json.loads(s.load(sys.argv[1])[1][\"normalize\"]); \
assert [round(v, 6) for v in n[\"mean\"]] == [0.485, 0.456, 0.406] and [round(v, 6) for v in n[\"std\"]] == [0.229, 0.224, 0.225], n" \
"$T/imf_in/model.safetensors" "$HERE/tools"'
nep train $SMALL --epochs 1 --normalize 0.5,0.5:0.2,0.2 --out "$T/bad_norm"
check "--normalize with 2 channels on 1-channel images: refused, naming it" 'failed_cleanly && says --normalize'
nep train $SMALL --image-size 16 --epochs 1 --out "$T/bad_is"
check "--image-size on fashion-mnist: refused, naming it" 'failed_cleanly && says --image-size'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
