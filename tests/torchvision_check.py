"""nepenthe's vit and swin checkpoints as torchvision modules, and back.

usage: /usr/bin/python3 tests/torchvision_check.py to-torch CKPT DATA_DIR TOP1 LOSS
       /usr/bin/python3 tests/torchvision_check.py from-torch MODEL OUT_NPZ DATA_DIR

to-torch: builds torchvision's VisionTransformer or SwinTransformer from the checkpoint's
"arch" metadata (the stem conv made for the data's channels), loads the checkpoint with
load_state_dict (the only keys allowed to be missing are Swin's relative_position_index
buffers, which nepenthe computes from the window; none may be unexpected), and evaluates
the test split of DATA_DIR (Fashion-MNIST's file layout) with the checkpoint's
normalization: top-1 within one image and mean loss within 1e-4 relative of nepenthe's
TOP1 / LOSS. Prints "ok - ..." or "not ok - ..." lines.
from-torch: a torchvision MODEL ("vit" or "swin", the configuration below) with seeded
random weights, saved as the numpy state_dict scripts/npz_to_safetensors.py converts;
prints the converter's flags on one line, then its top-1 and loss on DATA_DIR's test split.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools"))
import safetensors_np  # noqa: E402


def build(arch):
    c, h, _ = arch["input"]
    if arch["model"] == "vit":
        m = VisionTransformer(image_size=h, patch_size=arch["patch"], num_layers=arch["depths"][0],
                              num_heads=arch["heads"][0], hidden_dim=arch["width"],
                              mlp_dim=int(arch["width"] * arch["mlp_ratio"]), num_classes=arch["classes"])
        m.conv_proj = torch.nn.Conv2d(c, arch["width"], kernel_size=arch["patch"], stride=arch["patch"])
    else:
        w = arch["window"]
        m = SwinTransformer(patch_size=[arch["patch"]] * 2, embed_dim=arch["width"], depths=arch["depths"],
                            num_heads=arch["heads"], window_size=[w, w], mlp_ratio=arch["mlp_ratio"],
                            stochastic_depth_prob=arch["drop_path"], num_classes=arch["classes"])
        m.features[0][0] = torch.nn.Conv2d(c, arch["width"], kernel_size=arch["patch"], stride=arch["patch"])
    if arch["act"] == "relu":
        for mod in m.modules():
            if hasattr(mod, "mlp"):
                mod.mlp[1] = torch.nn.ReLU()
    return m.eval()


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def evaluate(m, data_dir, norm):
    x = idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255
    y = torch.tensor(idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    mean, std = np.array(norm["mean"], np.float32), np.array(norm["std"], np.float32)
    x = torch.tensor((x[:, None] - mean[None, :, None, None]) / std[None, :, None, None])
    with torch.no_grad():
        logits = m(x)
    return 100.0 * (logits.argmax(1) == y).double().mean().item(), F.cross_entropy(logits, y).item(), len(y)


def to_torch(ckpt, data_dir, top1, loss):
    tensors, meta = safetensors_np.load(ckpt)
    arch, norm = json.loads(meta["arch"]), json.loads(meta["normalize"])
    m = build(arch)
    state = {k: torch.tensor(v) for k, v in tensors.items()}
    missing, unexpected = m.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.endswith("relative_position_index")]
    print(("ok" if not bad and not unexpected else "not ok") +
          f" - {arch['model']}: torchvision takes the checkpoint (missing {bad or 'none'}, unexpected {unexpected or 'none'})")
    t1, l, n = evaluate(m, data_dir, norm)
    same = abs(t1 - float(top1)) <= 100.0 / n + 1e-9 and abs(l - float(loss)) <= 1e-4 * abs(float(loss))
    print(("ok" if same else "not ok") + f" - {arch['model']}: torchvision top-1 {t1:.2f}% loss {l:.6f}, "
          f"nepenthe {float(top1):.2f}% {float(loss):.6f}")


CONFIGS = {  # (constructor arguments, the converter's flags)
    "vit": "--model vit --input 1,28,28 --width 16 --patch 7 --depths 2 --heads 2 --mlp-ratio 2",
    "swin": "--model swin --input 1,28,28 --width 8 --patch 2 --depths 2,2 --heads 2,4 --window 4 --mlp-ratio 2",
}


def from_torch(model, out, data_dir):
    flags = CONFIGS[model].split()
    arg = {flags[i][2:]: flags[i + 1] for i in range(0, len(flags), 2)}
    arch = {"model": model, "input": [1, 28, 28], "classes": 10, "width": int(arg["width"]),
            "patch": int(arg["patch"]), "depths": [int(v) for v in arg["depths"].split(",")],
            "heads": [int(v) for v in arg["heads"].split(",")], "window": int(arg.get("window", 0)),
            "mlp_ratio": float(arg["mlp-ratio"]), "drop_path": 0.0, "act": "gelu"}
    torch.manual_seed(3)
    m = build(arch)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    np.savez(out, **{k: v.numpy() for k, v in m.state_dict().items()})
    t1, l, _ = evaluate(m, data_dir, {"mean": [0.5], "std": [0.25]})
    print(CONFIGS[model], "--mean 0.5 --std 0.25")
    print(f"{t1:.4f} {l:.6f}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "to-torch":
        to_torch(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "from-torch":
        from_torch(*sys.argv[2:])
    else:
        sys.exit(__doc__)
