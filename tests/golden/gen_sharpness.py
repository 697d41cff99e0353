"""The Hessian of a small ReLU network's training loss, computed by PyTorch in float64,
for tests/test_sharpness.c and tests/f64_sharpness.c.

Usage: /usr/bin/python3 tests/golden/gen_sharpness.py OUTDIR -> OUTDIR/sharpness.safetensors

Model: nepenthe's "mlp" spec with input 1x2x5, hidden 8 and 6, 3 classes (Flatten, fc1,
ReLU, fc2, ReLU, fc3). Data: 16 images of uint8 pixels, normalized as nepenthe's loader
does, (p / 255 - 0.5) / 0.25, and labels. Loss: the mean cross-entropy over the 16 rows.
Contents:
  init.<param>     float32 weights (nepenthe starts from exactly them)
  pixels, labels   uint8 [16, 1, 2, 5] and [16]
  eig              every eigenvalue of the dense Hessian over all parameters, ascending
  top              the eigenvalue of largest magnitude
  v.<param>, hv.<param>   a unit vector (float64) and H v by double backward
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402

N = 16


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 8)
        self.fc2 = nn.Linear(8, 6)
        self.fc3 = nn.Linear(6, 3)

    def forward(self, x):
        x = x.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def main(outdir):
    torch.manual_seed(7)
    model = MLP()
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    pixels = torch.randint(0, 256, (N, 1, 2, 5), dtype=torch.uint8)
    labels = torch.randint(0, 3, (N,), dtype=torch.uint8)
    x = ((pixels.double() / 255.0) - 0.5) / 0.25
    names = list(init)
    shapes = [init[k].shape for k in names]
    sizes = [init[k].numel() for k in names]

    def loss_of(flat):
        parts = torch.split(flat, sizes)
        p = {k: t.view(s) for k, t, s in zip(names, parts, shapes)}
        h = F.relu(F.linear(x.flatten(1), p["fc1.weight"], p["fc1.bias"]))
        h = F.relu(F.linear(h, p["fc2.weight"], p["fc2.bias"]))
        z = F.linear(h, p["fc3.weight"], p["fc3.bias"])
        return F.cross_entropy(z, labels.long())

    w = torch.cat([init[k].double().flatten() for k in names])
    H = torch.autograd.functional.hessian(loss_of, w)
    eig = torch.linalg.eigvalsh(H)
    top = eig[torch.argmax(eig.abs())]
    v = torch.randn(w.numel(), dtype=torch.float64)
    v /= v.norm()
    hv = H @ v
    t = {f"init.{k}": v_.numpy() for k, v_ in init.items()}
    t.update({"pixels": pixels.numpy(), "labels": labels.numpy(), "eig": eig.numpy(),
              "top": top.reshape(1).numpy()})
    for k, a, b in zip(names, torch.split(v, sizes), torch.split(hv, sizes)):
        t[f"v.{k}"] = a.numpy().copy()
        t[f"hv.{k}"] = b.numpy().copy()
    os.makedirs(outdir, exist_ok=True)
    safetensors_np.save(os.path.join(outdir, "sharpness.safetensors"), t, {"torch": torch.__version__})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
