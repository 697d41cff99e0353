"""Activation-state counts and entropies of a nepenthe checkpoint, computed by PyTorch.

usage: /usr/bin/python3 tests/tools/torch_entropy.py CKPT DATA_DIR [--split test|full|train]
                                                      [--zero-is-off] [--batch N]

An implementation independent of nepenthe's C code (SPEC sections 1-2), used by
tests/entropy_prune_test.sh to check `nepenthe entropy --json`:

- the checkpoint is read with safetensors_np; its metadata "arch" (JSON) describes the
  model: "mlp" (flatten -> fc1 -> act1 -> ... -> fcN -> act N -> fc{N+1}) or "resmlp"
  (flatten -> embed -> blocks.i: x + fc2(act(fc1(x))) -> head); "normalize" holds
  {"mean": [...], "std": [...]} applied as (pixel/255 - mean) / std in float32;
- parameters masked by a "<param>_mask" tensor are zeroed (as nepenthe does on load);
- the images are the IDX files in DATA_DIR (gzipped or plain); --split test reads the
  t10k files, --split full the whole training file. --split train is the training file
  only when the checkpoint records no validation split ("data": {"val": 0}): nepenthe
  draws its train/val split with its own RNG, which this tool does not re-implement;
- the model runs in float32 (eval mode: dropout off); for every rectifier the
  pre-activation z (its input) is classified per neuron (dim 1 of [batch, features]):
  two states ON z > 0, OFF z < 0 (ReLU, LeakyReLU, PReLU, GELU, SiLU) or three for ReLU6
  (ON 0 < z < 6, OFF z < 0, OFF+ z > 6); boundary values are not counted unless
  --zero-is-off (z == 0 counts as OFF, z == 6 as OFF+);
- neuron entropy in bits (0 without observations), layer entropy the mean over neurons.

Prints one JSON object shaped like `nepenthe entropy --json`:
{"layers": [{"name", "neurons", "entropy", "neuron_entropy": [...], "counts": [[...]]}],
 "samples": N}
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402


def read_idx(path):
    """IDX (u8 elements): magic 0x00000800 | ndim, big-endian u32 dims, data."""
    for p in (path + ".gz", path):
        if os.path.exists(p):
            with open(p, "rb") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            magic, = struct.unpack(">I", raw[:4])
            if magic >> 8 != 0x08:
                raise SystemExit(f"{p}: not an u8 IDX file (magic {magic:#x})")
            ndim = magic & 0xFF
            dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
            data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
            return data[:int(np.prod(dims))].reshape(dims)
    raise SystemExit(f"{path}[.gz]: no such file")


def activation(name, slope, weight):
    if name == "relu":
        return F.relu
    if name == "leaky_relu":
        return lambda z: F.leaky_relu(z, slope)
    if name == "prelu":
        return lambda z: F.prelu(z, weight)
    if name == "relu6":
        return F.relu6
    if name == "gelu":
        return lambda z: F.gelu(z)  # erf form, like nepenthe
    if name == "silu":
        return F.silu
    raise SystemExit(f"unsupported activation {name!r}")


class Counter:
    """Per-layer state counts, in network order, as int64."""

    def __init__(self, three, zero_is_off):
        self.three, self.zero_is_off = three, zero_is_off
        self.layers = []  # [name, counts (neurons, states)]
        self.index = {}

    def add(self, name, z):
        z = z.reshape(z.shape[0], z.shape[1], -1)  # [batch, neurons, positions]
        if self.zero_is_off:
            off = (z <= 0)
            on = (z > 0) & (z < 6) if self.three else (z > 0)
            offp = (z >= 6)
        else:
            off = (z < 0)
            on = (z > 0) & (z < 6) if self.three else (z > 0)
            offp = (z > 6)
        states = [on, off] + ([offp] if self.three else [])
        c = torch.stack([s.sum(dim=(0, 2), dtype=torch.int64) for s in states], dim=1)
        if name not in self.index:
            self.index[name] = len(self.layers)
            self.layers.append([name, torch.zeros_like(c)])
        self.layers[self.index[name]][1] += c


def neuron_entropy(c):
    total = sum(c)
    if total == 0:
        return 0.0
    h = 0.0
    for k in c:
        if k:
            p = k / total
            h -= p * math.log2(p)
    return max(h, 0.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("data_dir")
    ap.add_argument("--split", default="test", choices=("test", "full", "train"))
    ap.add_argument("--zero-is-off", action="store_true")
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()

    tensors, meta = safetensors_np.load(a.ckpt)
    arch = json.loads(meta["arch"])
    norm = json.loads(meta.get("normalize", '{"mean": [0], "std": [1]}'))
    data = json.loads(meta.get("data", "{}"))
    for k in list(tensors):
        if k.endswith("_mask"):
            base = k[:-len("_mask")]
            tensors[base] = np.where(tensors[k] != 0, tensors[base], 0).astype(np.float32)
    P = {k: torch.from_numpy(v) for k, v in tensors.items() if not k.endswith("_mask")}

    if a.split == "test":
        images = read_idx(os.path.join(a.data_dir, "t10k-images-idx3-ubyte"))
    else:
        if a.split == "train" and int(data.get("val", 0)) > 0:
            raise SystemExit("--split train: the checkpoint records a validation split of "
                             f"{data['val']} images drawn by nepenthe's RNG; use --split test")
        images = read_idx(os.path.join(a.data_dir, "train-images-idx3-ubyte"))
    c, h, w = arch["input"]
    images = images.reshape(-1, c, h, w)

    # The same float32 arithmetic as nepenthe's loader table: (p * (1/255) - mean) / std.
    mean = np.array(norm["mean"], dtype=np.float32).reshape(1, c, 1, 1)
    std = np.array(norm["std"], dtype=np.float32).reshape(1, c, 1, 1)
    x_all = ((images.astype(np.float32) * np.float32(1.0 / 255.0)) - mean) / std
    x_all = torch.from_numpy(np.ascontiguousarray(x_all, dtype=np.float32))

    act = arch["act"]
    counter = Counter(act == "relu6", a.zero_is_off)
    slope = float(arch.get("slope", 0.01))

    def lin(name, x):
        return F.linear(x, P[name + ".weight"], P.get(name + ".bias"))

    def rect(name, z):
        counter.add(name, z)
        return activation(act, slope, P.get(name + ".weight"))(z)

    torch.set_num_threads(1)
    with torch.no_grad():
        for s in range(0, x_all.shape[0], a.batch):
            x = torch.flatten(x_all[s:s + a.batch], 1)
            if arch["model"] == "mlp":
                n = len(arch["hidden"])
                for i in range(1, n + 1):
                    x = rect(f"act{i}", lin(f"fc{i}", x))
                lin(f"fc{n + 1}", x)
            elif arch["model"] == "resmlp":
                x = lin("embed", x)
                for i in range(len(arch["hidden"])):
                    hdn = rect(f"blocks.{i}.act", lin(f"blocks.{i}.fc1", x))
                    x = x + lin(f"blocks.{i}.fc2", hdn)
                lin("head", x)
            else:
                raise SystemExit(f"unsupported model {arch['model']!r}")

    out = {"layers": [], "samples": int(x_all.shape[0])}
    for name, counts in counter.layers:
        cl = counts.tolist()
        hn = [neuron_entropy(ci) for ci in cl]
        out["layers"].append({"name": name, "neurons": len(cl), "entropy": sum(hn) / len(hn),
                              "neuron_entropy": hn, "counts": cl})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
