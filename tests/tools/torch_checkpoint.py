"""PyTorch side of tests/test_checkpoint.c: checkpoints cross between nepenthe and torch.

  forward MODEL X OUT   builds the torch MLP described by MODEL's "arch" metadata, loads
                        MODEL's parameters with load_state_dict(strict=True) (masks and
                        optimizer state are left out: they are not module state), runs it
                        on tensor "x" of X and writes tensor "logits" to OUT.
  prune ARCH OUT        builds the MLP described by the JSON file ARCH (seeded), applies
                        torch.nn.utils.prune.l1_unstructured to fc1.weight (amount 0.5) and
                        writes its state_dict (fc1.weight_orig, float fc1.weight_mask, ...)
                        to OUT with __metadata__ {"arch": <ARCH's text>}.

Files are read and written with safetensors_np, independently of nepenthe's C code.
"""
import json
import os
import sys

import torch
from torch import nn
from torch.nn.utils import prune

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402

_OPTIM_SUFFIXES = (".momentum_buffer", ".exp_avg", ".exp_avg_sq")


class MLP(nn.Module):
    """The module nepenthe's "mlp" mirrors: flatten -> fc1 -> act1 -> ... -> fcN."""

    def __init__(self, arch):
        super().__init__()
        assert arch["model"] == "mlp", arch
        c, h, w = arch["input"]
        width = c * h * w
        self.n_hidden = len(arch["hidden"])
        for i, out in enumerate(arch["hidden"], 1):
            setattr(self, f"fc{i}", nn.Linear(width, out))
            if arch["act"] == "prelu":
                act = nn.PReLU(num_parameters=out)
            elif arch["act"] == "relu":
                act = nn.ReLU()
            else:
                raise ValueError(f"unsupported act {arch['act']}")
            setattr(self, f"act{i}", act)
            width = out
        setattr(self, f"fc{self.n_hidden + 1}", nn.Linear(width, arch["classes"]))

    def forward(self, x):
        x = torch.flatten(x, 1)
        for i in range(1, self.n_hidden + 1):
            x = getattr(self, f"act{i}")(getattr(self, f"fc{i}")(x))
        return getattr(self, f"fc{self.n_hidden + 1}")(x)


def forward(model_path, x_path, out_path):
    tensors, meta = safetensors_np.load(model_path)
    model = MLP(json.loads(meta["arch"]))
    state = {k: torch.from_numpy(v) for k, v in tensors.items()
             if not k.endswith("_mask") and not k.endswith(_OPTIM_SUFFIXES)}
    model.load_state_dict(state, strict=True)
    model.eval()
    x = torch.from_numpy(safetensors_np.load(x_path)[0]["x"])
    with torch.no_grad():
        logits = model(x)
    safetensors_np.save(out_path, {"logits": logits.numpy()})


def prune_fc1(arch_path, out_path):
    with open(arch_path) as f:
        arch_text = f.read()
    torch.manual_seed(0)
    model = MLP(json.loads(arch_text))
    prune.l1_unstructured(model.fc1, name="weight", amount=0.5)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    assert "fc1.weight_orig" in state and state["fc1.weight_mask"].dtype.name == "float32"
    safetensors_np.save(out_path, state, {"arch": arch_text})


if __name__ == "__main__":
    torch.set_num_threads(1)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "forward":
        forward(*args)
    elif cmd == "prune":
        prune_fc1(*args)
    else:
        sys.exit(f"unknown command {cmd}")
