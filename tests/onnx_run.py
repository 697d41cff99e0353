"""Runs every exported test case in ONNX Runtime and compares with nepenthe's own output.

usage: build/venv/bin/python tests/onnx_run.py CASES_DIR
  CASES_DIR holds one directory per model (written by build/tests/onnx_fixture):
  model.onnx, input.bin (float32 [N, ...], or int32 token ids where meta.json says
  "dtype": "int32"), expected.bin (float32 [N, classes], or a causal LM's [N, T, vocab],
  compared token by token), meta.json; a case of several
  inputs lists them in meta.json's "inputs" ({name, dtype, shape}), each in <name>.bin.
  ONNX Runtime is PyPI's `onnxruntime`, pinned in scripts/requirements.txt and installed
  into build/venv by scripts/install-py-deps.sh (make build/venv/.stamp).
Prints "ok - ..." / "not ok - ..." per model with the largest |ORT - nepenthe|; a model
passes when that is at most 1e-4 and every row's argmax agrees. Exit status 1 if any
failed."""
import json
import os
import sys

import numpy as np

TOL = 1e-4


def compare(got, want):
    """(largest |got - want|, NaN if either has one; rows whose argmax differs), both [rows, cols]."""
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    max_diff = float("nan") if np.isnan(diff).any() else float(diff.max(initial=0.0))
    mismatch = int((got.argmax(axis=1) != want.argmax(axis=1)).sum())
    return max_diff, mismatch


def run_case(ort, case_dir):
    """None if ONNX Runtime reproduces nepenthe's logits, else why not; and a summary."""
    with open(os.path.join(case_dir, "meta.json")) as f:
        meta = json.load(f)
    if "inputs" in meta:  # several inputs, each in <name>.bin
        feeds = {i["name"]: np.fromfile(os.path.join(case_dir, i["name"] + ".bin"),
                                        dtype="<i4" if i["dtype"] == "int32" else "<f4").reshape(i["shape"])
                 for i in meta["inputs"]}
    else:
        dtype = "<i4" if meta.get("dtype") == "int32" else "<f4"  # token ids, or reals
        feeds = {"input": np.fromfile(os.path.join(case_dir, "input.bin"), dtype=dtype).reshape(meta["input"])}
    want = np.fromfile(os.path.join(case_dir, "expected.bin"), dtype="<f4")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(os.path.join(case_dir, "model.onnx"), opts,
                                   providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], feeds)
    if list(got.shape) != list(meta["output"]):
        return "output dims %s, want %s" % (list(got.shape), meta["output"]), ""
    rows = int(np.prod(meta["output"][:-1]))  # [N, classes]; a causal LM's [N, T, vocab] by token
    max_diff, mismatch = compare(got.reshape(rows, -1), want.reshape(rows, -1))
    summary = "max |ORT - nepenthe| = %.2e, argmax differs on %d/%d rows" % (max_diff, mismatch, rows)
    ok = max_diff <= TOL and mismatch == 0  # NaN fails the first test
    return (None if ok else summary), summary


def main(argv):
    if len(argv) != 2:
        print("usage: build/venv/bin/python tests/onnx_run.py CASES_DIR", file=sys.stderr)
        return 2
    cases_dir = argv[1]
    try:
        import onnxruntime as ort
    except ImportError as e:
        print("not ok - onnxruntime from %s: %s (make build/venv/.stamp)" % (sys.executable, e))
        return 1
    cases = sorted(d for d in os.listdir(cases_dir)
                   if os.path.exists(os.path.join(cases_dir, d, "model.onnx")))
    if not cases:
        print("not ok - no test cases in %s" % cases_dir)
        return 1
    failed = 0
    for name in cases:
        try:
            why, summary = run_case(ort, os.path.join(cases_dir, name))
        except Exception as e:  # ONNX Runtime's own exception types vary by version
            why, summary = "ONNX Runtime %s: %s" % (ort.__version__, str(e).strip().split("\n")[0]), ""
        if why is None:
            print("ok - onnxruntime matches nepenthe: %s (%s)" % (name, summary))
        else:
            failed += 1
            print("not ok - onnxruntime matches nepenthe: %s\n  # %s" % (name, why))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
