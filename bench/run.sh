#!/bin/sh
# Side-by-side benchmark of nepenthe and PyTorch on this machine, same shapes, same
# thread count, alternating rounds so that both see the same background noise.
# Writes bench/results.jsonl (every run) and bench/RESULTS.md (the medians, as ratios).
# Environment: THREADS (default 2), ROUNDS (default 5), STEPS (default 50).
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-5}
STEPS=${STEPS:-50}
export OMP_NUM_THREADS="$THREADS"
BLASDIR=/usr/lib/x86_64-linux-gnu/openblas-openmp
mkdir -p build
cc -O2 -std=c11 -I/usr/include/x86_64-linux-gnu/openblas-openmp bench/sgemm_peak.c \
    -L$BLASDIR -Wl,-rpath,$BLASDIR -lopenblas -fopenmp -o build/sgemm_peak
out=build/bench.jsonl
: > "$out"
build/sgemm_peak 2>/dev/null | sed 's/^{/{"impl":"sgemm",/' >> "$out"

MODEL="--model mlp --hidden 1024,1024,1024 --act relu --batch 128"
i=1
while [ "$i" -le "$ROUNDS" ]; do
    echo "round $i/$ROUNDS" >&2
    build/nepenthe bench $MODEL --steps "$STEPS" --threads "$THREADS" --json | tail -1 >> "$out"
    /usr/bin/python3 bench/torch_peer.py $MODEL --input 784 --classes 10 --steps "$STEPS" \
        --threads "$THREADS" --json | tail -1 >> "$out"
    i=$((i + 1))
done
/usr/bin/python3 bench/summarize.py "$out" "$THREADS" >> bench/results.jsonl.new
cat bench/results.jsonl.new >> bench/results.jsonl && rm -f bench/results.jsonl.new
/usr/bin/python3 bench/summarize.py --markdown bench/results.jsonl > bench/RESULTS.md
cat bench/RESULTS.md
