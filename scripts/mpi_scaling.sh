#!/bin/sh
# Data-parallel scaling, measured here and modelled beyond (issue 17): ResNet-20's training
# images/s on 1 rank of 2 threads and on 2 ranks of 1 thread (global batch 128, the same
# 5,000 Fashion-MNIST images, rounds alternated), the gradient sum's time for ResNet-20,
# ResNet-18 and Swin-T on 2 ranks over this machine's shared memory, and one process's
# training images/s of ResNet-18 (32x32) and Swin-T (224x224); then
# scripts/mpi_scaling_model.py writes results/mpi-scaling.md from them.
#
# usage (from the repository root, after make): scripts/mpi_scaling.sh [OUT]  (default runs/mpi_scaling)
# About 5 minutes on 2 cores; run it alone (two jobs on 2 cores time each other).
set -eu
OUT=${1:-runs/mpi_scaling}
ROUNDS=${ROUNDS:-3}
NEP=${NEP:-build/nepenthe}
MPI=${MPI:-build/nepenthe-mpi}
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
git rev-parse --short HEAD >"$OUT/commit"
: >"$OUT/train.jsonl"
R20="--model resnet20 --val 55000 --epochs 1 --batch 128"
for k in $(seq 1 "$ROUNDS"); do
    for ranks in 1 2; do
        rm -rf "$OUT/r20"
        echo "round $k: ResNet-20, $ranks rank(s)" >&2
        # shellcheck disable=SC2086
        if [ "$ranks" = 1 ]; then "$NEP" train $R20 --threads 2 --out "$OUT/r20" >/dev/null
        else mpirun -np 2 -x OMP_NUM_THREADS=1 --bind-to none "$MPI" train $R20 --threads 1 --out "$OUT/r20" >/dev/null; fi
        sed -n "s/.*\"img_per_s\":\([0-9.]*\).*/{\"ranks\":$ranks,\"img_per_s\":\1}/p" "$OUT/r20/log.jsonl" >>"$OUT/train.jsonl"
    done
done
echo "one process: ResNet-18, Swin-T, ResNet-20" >&2
"$NEP" bench --model resnet18 --batch 128 --steps 5 --warmup 1 --json 2>/dev/null | tail -n 1 >"$OUT/bench.jsonl"
"$NEP" bench --model swin --input 3,224,224 --batch 16 --steps 3 --warmup 1 --json 2>/dev/null | tail -n 1 >>"$OUT/bench.jsonl"
"$NEP" bench --model resnet20 --input 1,28,28 --batch 128 --steps 20 --warmup 3 --json 2>/dev/null | tail -n 1 >>"$OUT/bench.jsonl"
: >"$OUT/comm.jsonl"
for n in $(sed -n 's/.*"params":\([0-9]*\).*/\1/p' "$OUT/bench.jsonl"); do # each model's gradient block
    echo "comm-bench: $n reals" >&2
    mpirun -np 2 -x OMP_NUM_THREADS=1 --bind-to none "$MPI" comm-bench --reals "$n" --reps 20 --json >>"$OUT/comm.jsonl"
done
python3 scripts/mpi_scaling_model.py "$OUT" results/mpi-scaling.md
