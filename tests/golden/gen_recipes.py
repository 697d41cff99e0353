"""Golden training recipes computed by PyTorch: learning-rate schedules (LinearLR warm-up
chained by SequentialLR with MultiStepLR or CosineAnnealingLR), label smoothing, gradient
norm clipping and timm's no-weight-decay parameter groups.

Usage: /usr/bin/python3 tests/golden/gen_recipes.py OUTDIR   -> writes OUTDIR/recipes.safetensors

Contents:
  sched.<name>            the learning rate of each of 12 epochs (SCHEDULES), as the
                          scheduler sets it, stepped once per epoch
  ls.<eps>.{loss,grad}    F.cross_entropy(label_smoothing=eps) of ls.logits, ls.y and its
                          gradient w.r.t. the logits
  init.<param>, x, y      a 16-12-5 ReLU MLP (fc1, fc2) and STEPS batches of 8
  <run>.lr, .loss, .norm  per step of each of RUNS: the learning rate used, the loss, the
                          total gradient norm clip_grad_norm_ returned (before clipping)
  <run>.step<k>.<param>   the parameters after step k (0-based)
  <run>.clipped.<param>   the gradients of step 0 after clipping
Inputs and initial weights are float32 values (stored as float32), so that nepenthe
starts from exactly them; PyTorch computes in float64 and the results are stored as
float64: nepenthe's float32 run should agree to float32 rounding.
Schedulers step once per step in RUNS (each step stands for an epoch), as gen_mlp.py's
MultiStepLR does.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402

EPOCHS, STEPS, BATCH, IN, HIDDEN, CLASSES = 12, 5, 8, 16, 12, 5

# main: ("multistep", milestones, gamma) or ("cosine", T_max, eta_min); warmup: (epochs,
# start_factor) or None. tests/test_recipes.c holds the same table.
SCHEDULES = {
    "multistep": {"lr": 0.1, "main": ["multistep", [3, 7], 0.1], "warmup": None},
    "cosine": {"lr": 0.1, "main": ["cosine", 12, 0.0], "warmup": None},
    "cosine_min": {"lr": 0.05, "main": ["cosine", 12, 1e-3], "warmup": None},
    "warm_cosine": {"lr": 0.1, "main": ["cosine", 9, 1e-4], "warmup": [3, 0.01]},
    "warm_multistep": {"lr": 0.1, "main": ["multistep", [3, 6], 0.5], "warmup": [2, 0.1]},
    "warm_const": {"lr": 0.2, "main": ["multistep", [], 0.1], "warmup": [4, 0.25]},
}

RUNS = {
    # SGD with momentum and weight decay, 2 epochs of warm-up, then a cosine to 0.01.
    "sgd_cos": {"optim": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
                "schedule": {"lr": 0.1, "main": ["cosine", 3, 0.01], "warmup": [2, 0.25]},
                "label_smoothing": 0.0, "clip": None, "no_decay": False},
    # AdamW, label smoothing, clipping (every step clips), no decay on biases; warm-up then
    # a milestone 2 epochs after it.
    "adamw_ls": {"optim": "AdamW", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8,
                 "weight_decay": 0.05,
                 "schedule": {"lr": 0.01, "main": ["multistep", [2], 0.5], "warmup": [1, 0.5]},
                 "label_smoothing": 0.1, "clip": 0.5, "no_decay": True},
    # SGD, heavy weight decay kept off the biases, smoothing, a clip that some steps do
    # not reach, cosine without warm-up.
    "sgd_nodecay": {"optim": "SGD", "lr": 0.2, "momentum": 0.9, "weight_decay": 0.05,
                    "schedule": {"lr": 0.2, "main": ["cosine", 5, 0.0], "warmup": None},
                    "label_smoothing": 0.3, "clip": 0.55, "no_decay": True},
    # SSL's group lasso on the rectifier layer's weight (fc1.weight; fc2 feeds no
    # rectifier): with SGD, and with AdamW and clipping (the penalty's gradient is in the
    # clipped norm, as loss + penalty backpropagated together puts it).
    "sgd_gl": {"optim": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
               "schedule": {"lr": 0.1, "main": ["multistep", [], 0.1], "warmup": None},
               "label_smoothing": 0.0, "clip": None, "no_decay": False, "group_lasso": 0.02},
    "adamw_gl": {"optim": "AdamW", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01,
                 "schedule": {"lr": 0.01, "main": ["multistep", [], 0.1], "warmup": None},
                 "label_smoothing": 0.0, "clip": 0.5, "no_decay": False, "group_lasso": 0.05},
}


def group_lasso(model, lam):
    """lambda * sqrt(|W|) * ||W||_2 over the rectifier layers' weights (SPEC: L)."""
    w = model.fc1.weight
    return lam * (w.numel() ** 0.5) * torch.linalg.vector_norm(w)


def make_sched(opt, s):
    kind, a, b = s["main"]
    if kind == "multistep":
        main = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=a, gamma=b)
    else:
        main = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a, eta_min=b)
    if not s["warmup"]:
        return main
    w, f = s["warmup"]
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=f, end_factor=1.0, total_iters=w)
    # torchvision's references/classification/train.py builds the warm-up this way
    return torch.optim.lr_scheduler.SequentialLR(opt, schedulers=[warm, main], milestones=[w])


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(IN, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def param_groups(model, h):
    """timm's param_groups_weight_decay: no decay for ndim <= 1 and names ending in .bias."""
    if not h["no_decay"]:
        return model.parameters()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": h["weight_decay"]}]


def make_optim(model, h):
    groups = param_groups(model, h)
    if h["optim"] == "SGD":
        return torch.optim.SGD(groups, lr=h["lr"], momentum=h["momentum"], weight_decay=h["weight_decay"])
    return torch.optim.AdamW(groups, lr=h["lr"], betas=tuple(h["betas"]), eps=h["eps"],
                             weight_decay=h["weight_decay"])


def f64(a):
    return a.detach().double().numpy().copy()


def main(outdir):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    t = {}
    import warnings
    warnings.simplefilter("ignore")  # SequentialLR's scheduler.step(0) warns of the epoch argument

    for name, s in SCHEDULES.items():
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=s["lr"])
        sched = make_sched(opt, s)
        lrs = []
        for _ in range(EPOCHS):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        t[f"sched.{name}"] = torch.tensor(lrs, dtype=torch.float64).numpy()

    logits32 = torch.randn(6, CLASSES) * 3
    y = torch.randint(0, CLASSES, (6,))
    t.update({"ls.logits": logits32.numpy(), "ls.y": y.numpy()})
    for eps in (0.0, 0.1, 0.3, 1.0):
        z = logits32.double().requires_grad_(True)
        loss = F.cross_entropy(z, y, label_smoothing=eps)
        (g,) = torch.autograd.grad(loss, z)
        t[f"ls.{eps}.loss"] = loss.detach().numpy().reshape(1)
        t[f"ls.{eps}.grad"] = g.numpy()

    # The penalty's subgradient at W = 0 is 0 in PyTorch (nepenthe takes the same).
    w0 = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    (g0,) = torch.autograd.grad(torch.linalg.vector_norm(w0), w0)
    assert torch.all(g0 == 0), g0

    model = MLP()
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    t.update({f"init.{k}": v.numpy() for k, v in init.items()})
    x32, y = torch.randn(STEPS, BATCH, IN), torch.randint(0, CLASSES, (STEPS, BATCH))
    t.update({"x": x32.numpy(), "y": y.numpy()})
    for name, h in RUNS.items():
        model = MLP().double()
        model.load_state_dict({k: v.double() for k, v in init.items()})
        opt = make_optim(model, h)
        sched = make_sched(opt, h["schedule"])
        lrs, losses, norms = [], [], []
        for k in range(STEPS):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x32[k].double()), y[k], label_smoothing=h["label_smoothing"])
            if h.get("group_lasso"):
                pen = group_lasso(model, h["group_lasso"])
                if k == 0:
                    (gw,) = torch.autograd.grad(pen, model.fc1.weight, retain_graph=True)
                    t[f"{name}.gl_grad"] = f64(gw)
                    t[f"{name}.gl_penalty"] = pen.detach().numpy().reshape(1)
                loss = loss + pen
            loss.backward()
            if h["clip"]:
                norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), h["clip"]).item())
                if k == 0:
                    t.update({f"{name}.clipped.{n}": f64(p.grad) for n, p in model.named_parameters()})
            lrs.append(opt.param_groups[0]["lr"])
            losses.append(loss.item())
            opt.step()
            sched.step()
            t.update({f"{name}.step{k}.{n}": f64(v) for n, v in model.state_dict().items()})
        t[f"{name}.lr"] = torch.tensor(lrs, dtype=torch.float64).numpy()
        t[f"{name}.loss"] = torch.tensor(losses, dtype=torch.float64).numpy()
        if norms:
            t[f"{name}.norm"] = torch.tensor(norms, dtype=torch.float64).numpy()

    os.makedirs(outdir, exist_ok=True)
    safetensors_np.save(os.path.join(outdir, "recipes.safetensors"), t,
                        {"schedules": json.dumps(SCHEDULES), "runs": json.dumps(RUNS),
                         "torch": torch.__version__})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
