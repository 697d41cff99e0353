"""Golden float32 MLP (784-128-64-10) step and short training runs, computed by PyTorch.

Usage: /usr/bin/python3 tests/golden/gen_mlp.py OUTDIR   -> writes OUTDIR/mlp.safetensors

Everything is float32, single-threaded: this is PyTorch's own float32 computation, which
nepenthe should match to float32 rounding tolerance, not bit for bit.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402

STEPS, BATCH = 20, 32
RUNS = {
    "sgd": {"optim": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": False,
            "scheduler": {"type": "MultiStepLR", "milestones": [10, 15], "gamma": 0.1, "step": "per_batch"}},
    "sgdn": {"optim": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True},
    "adamw": {"optim": "AdamW", "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01},
}


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def params(model, prefix):
    return {f"{prefix}.{k}": v.detach().numpy().copy() for k, v in model.state_dict().items()}


def make_optim(model, h):
    if h["optim"] == "SGD":
        opt = torch.optim.SGD(model.parameters(), lr=h["lr"], momentum=h["momentum"],
                              weight_decay=h["weight_decay"], nesterov=h["nesterov"])
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=h["lr"], betas=tuple(h["betas"]),
                                eps=h["eps"], weight_decay=h["weight_decay"])
    s = h.get("scheduler")
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, s["milestones"], s["gamma"]) if s else None
    return opt, sched


def main(outdir):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = MLP()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    t = params(model, "init")

    x, y = torch.randn(BATCH, 784), torch.randint(0, 10, (BATCH,))
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    t.update({"x": x.numpy(), "y": y.numpy(), "loss": loss.detach().numpy().reshape(1)})
    t.update({f"grad.{k}": p.grad.numpy().copy() for k, p in model.named_parameters()})

    run_x, run_y = torch.randn(STEPS, BATCH, 784), torch.randint(0, 10, (STEPS, BATCH))
    t.update({"run.x": run_x.numpy(), "run.y": run_y.numpy()})
    for name, h in RUNS.items():
        model = MLP()
        model.load_state_dict(init)
        opt, sched = make_optim(model, h)
        losses = []
        for i in range(STEPS):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(run_x[i]), run_y[i])
            losses.append(loss.item())
            loss.backward()
            opt.step()
            if sched:
                sched.step()  # stepped once per batch (step), not per epoch: lr drops after steps 10 and 15
        t[f"{name}.losses"] = torch.tensor(losses, dtype=torch.float32).numpy()
        t.update(params(model, f"{name}.final"))

    os.makedirs(outdir, exist_ok=True)
    safetensors_np.save(os.path.join(outdir, "mlp.safetensors"), t,
                        {"runs": json.dumps(RUNS), "torch": torch.__version__})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
