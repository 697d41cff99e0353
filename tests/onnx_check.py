"""ONNX checker (full_check: also type and shape inference) on every model.onnx under the
directories given, plus what nepenthe promises about its exports: opset 17, IR version 8,
one input "input" (or several, named after their nodes) and one output "logits", float32
(an input int32 where it holds token ids), each with the symbolic batch "N".

usage: /usr/bin/python3 tests/onnx_check.py DIR...   (each DIR holds model.onnx, or
subdirectories that do). Prints "ok - ..." / "not ok - ..." per model; exit status 1 if
any failed."""
import glob
import os
import sys

import onnx


def expectations(model):
    """Why the model breaks nepenthe's export contract, or None."""
    opsets = [(o.domain, o.version) for o in model.opset_import]
    if model.ir_version != 8 or opsets != [("", 17)]:
        return "ir_version %d, opsets %s; want 8 and [('', 17)]" % (model.ir_version, opsets)
    g = model.graph
    if [v.name for v in g.output] != ["logits"]:
        return "graph outputs are %s, want ['logits']" % [v.name for v in g.output]
    if len(g.input) == 1 and g.input[0].name != "input":
        return "the one graph input is '%s', want 'input'" % g.input[0].name
    for v in list(g.input) + list(g.output):
        t = v.type.tensor_type
        types = (onnx.TensorProto.FLOAT,) if v.name == "logits" else (onnx.TensorProto.FLOAT, onnx.TensorProto.INT32)
        if t.elem_type not in types or t.shape.dim[0].dim_param != "N":
            return "%s is not %s [N, ...]" % (v.name, "float32" if v.name == "logits" else "float32 or int32")
    return None


def main(dirs):
    paths = []
    for d in dirs:
        paths += sorted(glob.glob(os.path.join(d, "model.onnx")) + glob.glob(os.path.join(d, "*", "model.onnx")))
    if not paths:
        print("not ok - no model.onnx under %s" % " ".join(dirs))
        return 1
    failed = 0
    for p in paths:
        name = os.path.basename(os.path.dirname(p))
        try:
            model = onnx.load(p)
            onnx.checker.check_model(model, full_check=True)
            why = expectations(model)
        except Exception as e:  # the checker's own exception types vary by version
            why = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else "")
        if why:
            failed += 1
            print("not ok - onnx checker: %s (%s)" % (name, p))
            print("  # " + why)
        else:
            print("ok - onnx checker: %s (%d nodes)" % (name, len(model.graph.node)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
