#!/bin/bash
# Bit-identity of two nepenthe binaries (say, before and after a refactor): each trains
# MLP, ResNet-20 and MobileNetV2 for two steps of batch 128 on 1 thread, same seed, and
# the checkpoints' tensors must be byte for byte the same; then each runs two NEPENTHE
# iterations on the MLP, whose checkpoints and logs (less the seconds) must be the same.
# usage: bench/ab_identity.sh OLD_BINARY NEW_BINARY [MODEL...]
set -u
old=$1 new=$2
shift 2
models=${*:-mlp resnet20 mobilenetv2}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0
for m in $models; do
    for side in old new; do
        eval bin=\$$side
        # 60000 - 59744 = 256 training images: two steps; the rest is the validation split
        OMP_NUM_THREADS=1 "$bin" train --model "$m" --val 59744 --epochs 1 --threads 1 \
            --seed 3 --out "$dir/$m.$side" >/dev/null 2>"$dir/$m.$side.err" ||
            { echo "not ok - $m: $bin failed: $(tail -n 1 "$dir/$m.$side.err")"; fail=1; continue 2; }
    done
    # the tensors start after the header (8-byte length + JSON); the header may differ in
    # what it records of the run, the data must not
    same=1
    for f in model.safetensors checkpoint.safetensors; do
        a=$dir/$m.old/$f b=$dir/$m.new/$f
        ha=$(od -An -t u8 -N 8 "$a" | tr -d ' ') hb=$(od -An -t u8 -N 8 "$b" | tr -d ' ')
        if ! cmp -s <(tail -c +$((ha + 9)) "$a") <(tail -c +$((hb + 9)) "$b") 2>/dev/null; then same=0; fi
    done
    if [ "$same" = 1 ]; then echo "ok - $m: weights and optimizer state bit-identical"
    else echo "not ok - $m: tensors differ"; fail=1; fi
done
# the tensors of a safetensors file (after its 8-byte header length and JSON header)
tensors() { tail -c +$(( $(od -An -t u8 -N 8 "$1" | tr -d ' ') + 9 )) "$1"; }
for side in old new; do
    eval bin=\$$side
    OMP_NUM_THREADS=1 "$bin" prune --ckpt "$dir/mlp.old/model.safetensors" --max-iter 2 \
        --retrain-epochs 1 --threads 1 --out "$dir/prune.$side" >/dev/null 2>"$dir/prune.$side.err" ||
        { echo "not ok - prune: $bin failed: $(tail -n 1 "$dir/prune.$side.err")"; exit 1; }
done
same=1
for k in 1 2; do
    cmp -s <(tensors "$dir/prune.old/iter_$k.safetensors") <(tensors "$dir/prune.new/iter_$k.safetensors") || same=0
done
strip() { sed 's/"seconds":[0-9.e+-]*//' "$1"; }
cmp -s <(strip "$dir/prune.old/iterations.jsonl") <(strip "$dir/prune.new/iterations.jsonl") || same=0
cmp -s "$dir/prune.old/progress.json" "$dir/prune.new/progress.json" || same=0
if [ "$same" = 1 ]; then echo "ok - prune: iterations 1-2 bit-identical (checkpoints, log, progress)"
else echo "not ok - prune: the runs differ"; fail=1; fi
exit $fail
