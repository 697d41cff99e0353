"""Golden data for whole conv nets: ResNet-20 and MobileNetV2 (width 0.75), CIFAR shape.

Usage: /usr/bin/python3 tests/golden/gen_convnets.py OUTDIR -> OUTDIR/convnets.safetensors

For each model M (twin of nepenthe's builder, tests/tools/torch_models.py), from seeded
initial weights `M.init.<state_dict name>` (float32) and one batch `M.x` [4, 3, 16, 16],
`M.y` [4]; MobileNetV2's dropout is disabled so that a step is deterministic:
- float32, as the peer computes: training-mode `M.logits` and `M.loss` (BatchNorm batch
  statistics, which also moves the running statistics), then `M.eval_logits`;
- float64, from the same weights and batch: training-mode `M.f64.logits`, `M.f64.loss`,
  `M.f64.grad.<param>` for every parameter, and after one SGD step (lr 0.1, momentum
  0.9, weight decay 5e-4) `M.f64.after.<name>` for every state_dict entry.
Gradients are compared in float64 because in float32 a rectifier input within rounding
of a kink (0, or 6 for ReLU6) may fall on either side in the two implementations, and
through BatchNorm's batch statistics one such element moves every gradient below it.
"""
import copy
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import safetensors_np  # noqa: E402
import torch_models  # noqa: E402


def state(model, out, prefix):
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out[prefix + k] = v.detach().numpy().copy()


def case(name, model, out, seed):
    torch.manual_seed(seed)
    for m in model.modules():  # non-trivial BatchNorm affine parameters and statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    state(model, out, f"{name}.init.")
    x = torch.randn(4, 3, 16, 16)
    y = torch.randint(0, 10, (4,))
    out[f"{name}.x"] = x.numpy()
    out[f"{name}.y"] = y.numpy().astype(np.int64)

    m64 = copy.deepcopy(model).double()
    model.train()
    with torch.no_grad():
        logits = model(x)
        out[f"{name}.logits"] = logits.numpy()
        out[f"{name}.loss"] = np.array([F.cross_entropy(logits, y).item()], dtype=np.float32)
        model.eval()
        out[f"{name}.eval_logits"] = model(x).numpy()

    m64.train()
    opt = torch.optim.SGD(m64.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    logits = m64(x.double())
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out[f"{name}.f64.logits"] = logits.detach().numpy()
    out[f"{name}.f64.loss"] = np.array([loss.item()])
    for k, p in m64.named_parameters():
        out[f"{name}.f64.grad.{k}"] = p.grad.detach().numpy().copy()
    opt.step()
    state(m64, out, f"{name}.f64.after.")


def main(outdir):
    torch.set_num_threads(1)
    out = {}
    torch.manual_seed(0)
    case("resnet20", torch_models.build("resnet20"), out, 1)
    torch.manual_seed(0)
    case("mobilenetv2", torch_models.build("mobilenetv2", width_mult=0.75), out, 2)
    safetensors_np.save(os.path.join(outdir, "convnets.safetensors"), out,
                        {"torch": torch.__version__, "sgd": "lr 0.1 momentum 0.9 wd 5e-4"})


if __name__ == "__main__":
    main(sys.argv[1])
