"""PyTorch side of tests/collapse_test.sh: the uncollapsed model's logits, computed by
PyTorch, for ONNX Runtime to compare the collapsed model's ONNX export with.

  force IN OUT PARAM V1,V2,...   copies checkpoint IN to OUT with PARAM[c] = V[c % len(V)]
                                 (a bias that keeps a rectifier always ON or OFF)
  case CKPT DATA_DIR OUTDIR N    writes OUTDIR/input.bin (float32 [N, C, H, W]: the first N
                                 test images of DATA_DIR, normalized as CKPT's metadata says),
                                 OUTDIR/expected.bin (float32 [N, classes]: CKPT's model in
                                 PyTorch, evaluation mode) and OUTDIR/meta.json (the shapes),
                                 the case format of tests/onnx_run.py.

Files are read with safetensors_np and torch_entropy.read_idx, independently of nepenthe.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402
from torch_checkpoint import MLP, _OPTIM_SUFFIXES  # noqa: E402
from torch_entropy import read_idx  # noqa: E402
import torch_models  # noqa: E402


def force(src, dst, param, values):
    tensors, meta = safetensors_np.load(src)
    v = [float(x) for x in values.split(",")]
    t = tensors[param]
    for c in range(t.shape[0]):
        t[c] = v[c % len(v)]
    safetensors_np.save(dst, tensors, meta)


def model_of(tensors, meta):
    arch = json.loads(meta["arch"])
    if arch["model"] == "mlp":
        model = MLP(arch)
    else:
        model = torch_models.build(arch["model"], arch["input"][0], arch["classes"],
                                   arch.get("width_mult", 1.0), arch.get("stem_pool", False))
    state = {k: torch.from_numpy(v) for k, v in tensors.items()
             if not k.endswith("_mask") and not k.endswith(_OPTIM_SUFFIXES)}
    model.load_state_dict(state, strict=True)
    return model.eval()


def case(ckpt, data_dir, out_dir, n):
    tensors, meta = safetensors_np.load(ckpt)
    norm = json.loads(meta["normalize"])
    images = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte"))[:n]
    x = images.astype(np.float32)[:, None] / np.float32(255)
    x = (x - np.float32(norm["mean"][0])) / np.float32(norm["std"][0])
    with torch.no_grad():
        logits = model_of(tensors, meta)(torch.from_numpy(x)).numpy()
    os.makedirs(out_dir, exist_ok=True)
    x.astype("<f4").tofile(os.path.join(out_dir, "input.bin"))
    logits.astype("<f4").tofile(os.path.join(out_dir, "expected.bin"))
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump({"input": list(x.shape), "output": list(logits.shape)}, f)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "force":
        force(*sys.argv[2:])
    elif len(sys.argv) == 6 and sys.argv[1] == "case":
        case(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(__doc__)
