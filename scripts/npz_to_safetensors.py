#!/usr/bin/python3
"""Converts a PyTorch state_dict saved with numpy into a nepenthe checkpoint. numpy only.

On the PyTorch side:  np.savez("model.npz", **{k: v.cpu().numpy() for k, v in
                                              model.state_dict().items()})
Then:  scripts/npz_to_safetensors.py model.npz model.safetensors --model resnet20 \\
           --input 1,28,28 --classes 10 --mean 0.2860 --std 0.3530

The tensor names must be those of nepenthe's model (torchvision's for the conv nets;
tests/tools/torch_models.py has the twins); `nepenthe eval` then says which one is
missing or misshapen. --mean/--std are the per-channel normalization the model was
trained with, for pixels scaled to [0, 1] (comma-separated per channel).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools"))
import safetensors_np  # noqa: E402


def floats(s):
    return [float(v) for v in s.split(",")]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("npz")
    p.add_argument("out")
    p.add_argument("--model", required=True, help="mlp, resmlp, cnn, resnet18/20/50/152, mobilenetv2, vit, swin")
    p.add_argument("--input", default="3,32,32", help="C,H,W")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--hidden", default="", help="mlp/resmlp hidden widths")
    p.add_argument("--width", type=int, default=256, help="resmlp embedding width")
    p.add_argument("--width-mult", type=float, default=1.0, help="mobilenetv2")
    p.add_argument("--stem-pool", action="store_true", help="resnet with max-pool after the stem")
    p.add_argument("--act", default=None, help="the MLP rectifier (default relu; vit, swin: gelu)")
    p.add_argument("--patch", type=int, help="vit, swin: patch size")
    p.add_argument("--depths", help="vit: layers; swin: blocks per stage, comma-separated")
    p.add_argument("--heads", help="vit: heads; swin: per stage, comma-separated")
    p.add_argument("--window", type=int, default=0, help="swin: window size")
    p.add_argument("--mlp-ratio", type=float, default=4.0, help="vit, swin")
    p.add_argument("--drop-path", type=float, default=0.0, help="swin: stochastic depth of the last block")
    p.add_argument("--mean", type=floats, required=True)
    p.add_argument("--std", type=floats, required=True)
    a = p.parse_args()

    c, h, w = (int(v) for v in a.input.split(","))
    if len(a.mean) != c or len(a.std) != c:
        sys.exit(f"--mean and --std need {c} values (one per input channel)")
    transformer = a.model in ("vit", "swin")
    arch = {"model": a.model, "input": [c, h, w], "classes": a.classes,
            "hidden": [int(v) for v in a.hidden.split(",") if v],
            "act": a.act or ("gelu" if transformer else "relu"), "slope": 0.01,
            "dropout": 0, "width": a.width, "width_mult": a.width_mult, "stem_pool": a.stem_pool}
    if transformer:
        if not (a.patch and a.depths and a.heads):
            sys.exit("vit and swin need --patch, --depths and --heads (and --width; swin --window)")
        arch.update({"patch": a.patch, "depths": [int(v) for v in a.depths.split(",")],
                     "heads": [int(v) for v in a.heads.split(",")], "window": a.window,
                     "mlp_ratio": a.mlp_ratio, "drop_path": a.drop_path})
    with np.load(a.npz) as z:
        tensors = {k: (z[k] if z[k].dtype.kind != "f" else z[k].astype(np.float32)) for k in z.files}
    # PyTorch's step counters are int64 and not parameters: nepenthe writes its own; Swin's
    # relative_position_index is an int64 buffer that nepenthe computes from the window.
    tensors = {k: v for k, v in tensors.items()
               if not k.endswith("num_batches_tracked") and not k.endswith("relative_position_index")}
    meta = {"format": "nepenthe", "arch": json.dumps(arch),
            "normalize": json.dumps({"mean": a.mean, "std": a.std})}
    safetensors_np.save(a.out, tensors, meta)
    print(f"{a.out}: {len(tensors)} tensors, arch {a.model}")


if __name__ == "__main__":
    main()
