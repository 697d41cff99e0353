"""ONNX Runtime's side of nepenthe's CPU benchmark: inference latency and throughput of an
.onnx file (a `nepenthe export` or `nepenthe collapse --onnx` of the model nepenthe times).

Usage: build/venv/bin/python bench/ort_peer.py --onnx M.onnx --model NAME --batch 128
         --steps 20 --warmup 3 --threads 2 [--json]

Session: CPUExecutionProvider, intra_op_num_threads = --threads, inter_op_num_threads 1,
sequential execution, ORT_ENABLE_ALL graph optimizations. Same method as bench/torch_peer.py:
one fixed random input, `warmup` untimed calls, then the median of per-call
time.perf_counter times, at batch 1 (over max(steps, 50) calls) and at batch B (over `steps`
calls). The input's shape is the model's first input; its batch dimension must be dynamic
(a name or unset) or fixed at exactly the batch asked for. With --json the last line printed
is a JSON object.
"""
import argparse
import json
import sys

import numpy as np
import onnxruntime as ort

from timing import median_times

DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--onnx", required=True)
    p.add_argument("--model", default=None, help="name in the JSON (default: the file's stem)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.onnx, sess_options=so, providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        sys.exit(f"ort_peer.py: {a.onnx} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                 "this benchmark feeds one image tensor")
    inp = inputs[0]
    if inp.type not in DTYPES:
        sys.exit(f"ort_peer.py: {a.onnx}: input {inp.name!r} is {inp.type}, not a float tensor")
    shape = list(inp.shape)
    if not shape:
        sys.exit(f"ort_peer.py: {a.onnx}: input {inp.name!r} is a scalar")
    rest = shape[1:]
    if any(not isinstance(d, int) or d <= 0 for d in rest):
        sys.exit(f"ort_peer.py: {a.onnx}: input {inp.name!r} has shape {shape}; only the batch "
                 "dimension (the first) may be dynamic")
    b0 = shape[0]
    if isinstance(b0, int) and b0 > 0:  # a fixed batch dimension: batch 1 and batch B cannot both run
        sys.exit(f"ort_peer.py: {a.onnx}: the exported model's batch dimension is fixed at {b0} "
                 f"(input {inp.name!r} {shape}); timing batch 1 and batch {a.batch} needs a dynamic "
                 "batch dimension: export with a symbolic first dimension")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.batch, *rest)).astype(DTYPES[inp.type])
    x1 = x[:1].copy()
    out_names = [o.name for o in sess.get_outputs()]
    t_b1 = median_times(lambda: sess.run(out_names, {inp.name: x1}), max(a.steps, 50), a.warmup)
    t_bb = median_times(lambda: sess.run(out_names, {inp.name: x}), a.steps, a.warmup)

    model = a.model or a.onnx.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    r = {"impl": "onnxruntime", "onnxruntime": ort.__version__, "threads": a.threads, "model": model,
         "batch": a.batch, "infer_ms_batch1": t_b1 * 1e3,
         "infer_ms_batch": t_bb * 1e3, "infer_img_per_s": a.batch / t_bb}
    print(f"onnxruntime {r['onnxruntime']} {model} threads={a.threads}: infer b1 "
          f"{r['infer_ms_batch1']:.3f} ms, infer b{a.batch} {r['infer_img_per_s']:.0f} img/s "
          f"({r['infer_ms_batch']:.2f} ms)")
    if a.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
