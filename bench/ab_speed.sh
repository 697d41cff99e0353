#!/bin/sh
# Speed of two nepenthe binaries side by side (before and after a change): `nepenthe
# bench` of each model, the two binaries alternating round by round so that both see the
# same background load; prints the median training img/s, batch-128 inference img/s and
# batch-1 latency of each, and new/old.
# usage: bench/ab_speed.sh OLD NEW   environment: ROUNDS (5), STEPS (20), THREADS (2),
#        MODELS ("mlp resnet20 mobilenetv2 resnet18")
set -eu
old=$1 new=$2
ROUNDS=${ROUNDS:-5} STEPS=${STEPS:-20} THREADS=${THREADS:-2}
MODELS=${MODELS:-"mlp resnet20 mobilenetv2 resnet18"}
export OMP_NUM_THREADS="$THREADS"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for model in $MODELS; do
    case $model in
        mlp) args="--model mlp --hidden 1024,1024,1024"; steps=$((STEPS * 3)) ;;
        *) args="--model $model --input 3,32,32"; steps=$STEPS ;;
    esac
    i=1
    while [ "$i" -le "$ROUNDS" ]; do
        for side in old new; do
            eval bin=\$$side
            # shellcheck disable=SC2086
            "$bin" bench $args --batch 128 --steps "$steps" --warmup 3 --threads "$THREADS" --json |
                tail -n 1 | sed "s/^{/{\"side\":\"$side\",/" >> "$out"
        done
        i=$((i + 1))
    done
done
/usr/bin/python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = [("train_img_per_s", "train img/s"), ("infer_img_per_s", "infer img/s b128"),
        ("infer_ms_batch1", "batch-1 ms")]
print("| model | metric | old | new | new/old |\n| --- | --- | --- | --- | --- |")
for m in dict.fromkeys(r["model"] for r in rows):
    for k, name in keys:
        o = statistics.median(r[k] for r in rows if r["model"] == m and r["side"] == "old")
        n = statistics.median(r[k] for r in rows if r["model"] == m and r["side"] == "new")
        print(f"| {m} | {name} | {o:g} | {n:g} | {n / o:.3f} |")
PY
