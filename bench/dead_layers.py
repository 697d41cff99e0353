"""Makes named rectifier layers of a checkpoint dead (always OFF) or linear (always ON), so
that `nepenthe collapse` has layers to remove in a randomly initialized benchmark model.

Usage: /usr/bin/python3 bench/dead_layers.py [--recalibrate N] IN.safetensors OUT.safetensors NAME[=off|=on]...

NAME is a rectifier layer as nepenthe names it (the names `--identity` and the prune logs
use). The layer feeding it is changed so that the rectifier's state is the same on every
input:
  a BatchNorm (conv nets): OFF sets its weight (gamma) to 0 and bias (beta) to -1, so the
    rectifier sees the constant -1 and outputs the constant 0 (ReLU and ReLU6 alike);
    ON sets gamma 0, beta +1 (the constant 1). Either way the rectifier's output is a
    constant and collapse removes the branch it feeds.
      resnets, cnn:  layerS.B.reluK -> layerS.B.bnK;  the stem's relu -> bn1;  reluK -> bnK
      mobilenetv2:   features.F.conv.K.2 (ReLU6) -> features.F.conv.K.1;  features.F.2 -> features.F.1
  a Linear (mlp: actK -> fcK): OFF sets its weight to 0 and bias to -1 (everything after it
    becomes constant); ON adds 10 to its bias, which keeps the pre-activation positive on
    inputs in [0, 1] for these small random weights, so collapse linearizes the rectifier
    and composes the Linear with the next one.
Every other tensor and the metadata are copied unchanged. Exits non-zero on a name whose
feeding layer the checkpoint lacks.

--recalibrate N: after the change, the statistics the rectifiers see are re-centred on N
uniform random images (the distribution of bench/make_data.py's): in conv nets every
BatchNorm's running mean and variance are recomputed in PyTorch's training-mode forward of
the model's twin (tests/tools/torch_models.py); in an MLP (ReLU) each hidden Linear's bias,
but for the named ones, is shifted so that its output averages 0 over the images. A
benchmark model has trained a few steps only, so many of its channels sit constant on such
images (ReLU6 at 0 or 6, ReLUs whose input never turns positive): collapse would drop those
too (half of MobileNetV2's FLOPs), and the collapsed variant would measure that accident
instead of the layers named here.
"""
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools"))
import safetensors_np  # noqa: E402


def feeding_layer(name):
    """The BatchNorm or Linear layer name feeding rectifier `name` (or `name` itself)."""
    m = re.fullmatch(r"(.*?)relu(\d+)", name)
    if m:
        return f"{m.group(1)}bn{m.group(2)}"
    if name == "relu":
        return "bn1"
    m = re.fullmatch(r"(features\.\d+(?:\.conv\.\d+)?)\.2", name)
    if m:
        return f"{m.group(1)}.1"
    m = re.fullmatch(r"act(\d+)", name)
    if m:
        return f"fc{m.group(1)}"
    return name


def recalibrate(tensors, meta, n):
    """Recomputes every BatchNorm's running statistics from n uniform random images, in place."""
    import json

    import torch
    import torch_models
    arch = json.loads(meta["arch"])
    norm = json.loads(meta.get("normalize", '{"mean": [0], "std": [1]}'))
    c, h, w = arch["input"]
    model = torch_models.build(arch["model"], in_c=c, classes=arch["classes"],
                               width_mult=arch.get("width_mult") or 1.0, stem_pool=bool(arch.get("stem_pool")))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches
    x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor(norm["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(norm["std"], dtype=torch.float32).view(1, -1, 1, 1)
    model.train()
    with torch.no_grad():
        model((x - mean) / std)
    for k, v in model.state_dict().items():
        if k.endswith((".running_mean", ".running_var")):
            tensors[k] = v.numpy().astype(tensors[k].dtype)


def recalibrate_mlp(tensors, meta, n, named):
    """Shifts the bias of each hidden Linear fcK (but those in `named`) so that its output
    averages 0 over n uniform random images, layer by layer, in place."""
    import json
    arch = json.loads(meta["arch"])
    if arch.get("act", "relu") != "relu":
        print(f"--recalibrate: an MLP with {arch['act']} left as it is", file=sys.stderr)
        return
    norm = json.loads(meta.get("normalize", '{"mean": [0], "std": [1]}'))
    x = np.random.default_rng(0).random((n, int(np.prod(arch["input"]))), dtype=np.float32)
    h = (x - np.float32(norm["mean"][0])) / np.float32(norm["std"][0])
    k = 1
    while f"fc{k + 1}.weight" in tensors:  # every Linear but the classifier
        z = h @ tensors[f"fc{k}.weight"].T + tensors[f"fc{k}.bias"]
        if f"fc{k}" not in named:
            shift = z.mean(axis=0).astype(np.float32)
            tensors[f"fc{k}.bias"] = tensors[f"fc{k}.bias"] - shift
            z = z - shift
        h = np.maximum(z, 0)
        k += 1


def main():
    args = sys.argv[1:]
    n_cal = 0
    if args[:1] == ["--recalibrate"]:
        n_cal, args = int(args[1]), args[2:]
    if len(args) < 3:
        sys.exit(__doc__)
    src, dst, names = args[0], args[1], args[2:]
    tensors, meta = safetensors_np.load(src)
    named = set()
    for arg in names:
        name, _, state = arg.partition("=")
        state = state or "off"
        if state not in ("off", "on"):
            sys.exit(f"dead_layers.py: {arg!r}: the state is off or on")
        layer = feeding_layer(name)
        w, b = f"{layer}.weight", f"{layer}.bias"
        if w not in tensors or b not in tensors:
            known = sorted({k.rsplit(".", 1)[0] for k in tensors if k.endswith(".bias")})
            sys.exit(f"dead_layers.py: {src} has no BatchNorm or Linear {layer!r} feeding {name!r}; "
                     f"its layers with a bias: {', '.join(known)}")
        named.add(layer)
        if f"{layer}.running_var" in tensors:  # BatchNorm: a constant output, -1 or +1
            tensors[w] = np.zeros_like(tensors[w])
            tensors[b] = np.full_like(tensors[b], -1.0 if state == "off" else 1.0)
            what = f"{w} = 0, {b} = {-1 if state == 'off' else 1}"
        elif state == "off":  # Linear: a constant -1
            tensors[w] = np.zeros_like(tensors[w])
            tensors[b] = np.full_like(tensors[b], -1.0)
            what = f"{w} = 0, {b} = -1"
        else:  # Linear: shifted well into the rectifier's linear range
            tensors[b] = tensors[b] + np.float32(10)
            what = f"{b} += 10"
        print(f"{name} always {state.upper()}: {what} ({tensors[b].size} channels)", file=sys.stderr)
    if n_cal and any(k.endswith(".running_var") for k in tensors):
        recalibrate(tensors, meta, n_cal)
        print(f"BatchNorm running statistics recomputed on {n_cal} random images", file=sys.stderr)
    elif n_cal and "fc1.weight" in tensors and "fc2.weight" in tensors:
        recalibrate_mlp(tensors, meta, n_cal, named)
        print(f"hidden Linear biases centred on {n_cal} random images", file=sys.stderr)
    safetensors_np.save(dst, tensors, meta)


if __name__ == "__main__":
    main()
