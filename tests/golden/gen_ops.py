"""Golden references for nepenthe's elementwise activations, linear layer, LayerNorm, the
token ops around a transformer's attention (as torchvision 0.14's ViT and Swin write them)
and cross entropy.

Usage: /usr/bin/python3 tests/golden/gen_ops.py OUTDIR   -> writes OUTDIR/ops.safetensors

Inputs are drawn in float32 (stored as float32); references are computed by PyTorch in
float64 from exactly those float32 values, and stored as float64. Gradients come from
autograd, so they follow PyTorch's conventions at kinks (x == 0, relu6 at x == 6).
"""
import os
import sys

import torch
import torch.nn.functional as F
from torchvision.models.swin_transformer import _patch_merging_pad
from torchvision.ops import stochastic_depth

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402

SLOPE = 0.1
ACTS = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, negative_slope=SLOPE),
    "relu6": F.relu6,
    "gelu": lambda x: F.gelu(x, approximate="none"),
    "silu": F.silu,
    "identity": lambda x: x * 1.0,  # "* 1.0" keeps an autograd node; exact in float64
}


def f64(t):
    return t.detach().double().requires_grad_(True)


def out(t):
    return t.detach().numpy()


def act_input(shape, relu6=False):
    """randn*3 with a few exact zeros (and exact sixes for relu6)."""
    x = torch.randn(shape) * 3
    flat = x.view(-1)
    flat[[0, 7, 19, 33]] = 0.0
    if relu6:
        flat[[3, 11, 25, 40]] = 6.0
    return x


def main(outdir):
    torch.manual_seed(0)
    t = {}

    for name, fn in ACTS.items():
        x, gy = act_input((8, 6), relu6=(name == "relu6")), torch.randn(8, 6)
        xd = f64(x)
        y = fn(xd)
        (gx,) = torch.autograd.grad((y * gy.double()).sum(), xd)
        t.update({f"{name}.x": out(x), f"{name}.gy": out(gy), f"{name}.y": out(y), f"{name}.gx": out(gx)})

    for name, shape in (("prelu", (8, 6)), ("prelu4d", (4, 6, 3, 5))):
        x, gy = act_input(shape), torch.randn(shape)
        w = torch.rand(6) * 0.5
        xd, wd = f64(x), f64(w)
        y = F.prelu(xd, wd)
        gx, gw = torch.autograd.grad((y * gy.double()).sum(), (xd, wd))
        t.update({f"{name}.x": out(x), f"{name}.weight": out(w), f"{name}.gy": out(gy),
                  f"{name}.y": out(y), f"{name}.gx": out(gx), f"{name}.gweight": out(gw)})

    x, w, b, gy = torch.randn(8, 20), torch.randn(12, 20) * 0.2, torch.randn(12) * 0.2, torch.randn(8, 12)
    xd, wd, bd = f64(x), f64(w), f64(b)
    y = F.linear(xd, wd, bd)
    gx, gw, gb = torch.autograd.grad((y * gy.double()).sum(), (xd, wd, bd))
    t.update({"linear.x": out(x), "linear.weight": out(w), "linear.bias": out(b), "linear.gy": out(gy),
              "linear.y": out(y), "linear.gx": out(gx), "linear.gweight": out(gw), "linear.gbias": out(gb)})

    # LayerNorm over the features of each row, as torch.nn.LayerNorm(6, eps)
    for name, eps in (("layernorm", 1e-5), ("layernorm_eps", 0.1)):
        x, w, b, gy = torch.randn(8, 6) * 2 + 1, torch.randn(6), torch.randn(6), torch.randn(8, 6)
        xd, wd, bd = f64(x), f64(w), f64(b)
        y = F.layer_norm(xd, (6,), wd, bd, eps)
        gx, gw, gb = torch.autograd.grad((y * gy.double()).sum(), (xd, wd, bd))
        t.update({f"{name}.x": out(x), f"{name}.weight": out(w), f"{name}.bias": out(b), f"{name}.gy": out(gy),
                  f"{name}.y": out(y), f"{name}.gx": out(gx), f"{name}.gweight": out(gw), f"{name}.gbias": out(gb)})

    # RMSNorm as transformers' LlamaRMSNorm computes it (torch 1.13 has no nn.RMSNorm):
    # weight * x * rsqrt(mean(x^2, -1) + eps)
    x, w, gy = torch.randn(8, 6) * 2 + 1, torch.randn(6), torch.randn(8, 6)
    xd, wd = f64(x), f64(w)
    y = wd * (xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + 1e-6))
    gx, gw = torch.autograd.grad((y * gy.double()).sum(), (xd, wd))
    t.update({"rmsnorm.x": out(x), "rmsnorm.weight": out(w), "rmsnorm.gy": out(gy), "rmsnorm.y": out(y),
              "rmsnorm.gx": out(gx), "rmsnorm.gweight": out(gw)})

    # The token ops, each as torchvision computes it; a parameter is stored as "weight"
    # (the test's name for a node's first parameter), its gradient as "gweight".
    def case(name, fn, x, weight=None):
        xd = f64(x)
        args = (xd,) if weight is None else (xd, f64(weight))
        y = fn(*args)
        gy = torch.randn(y.shape)
        grads = torch.autograd.grad((y * gy.double()).sum(), args)
        t.update({f"{name}.x": out(x), f"{name}.gy": out(gy), f"{name}.y": out(y), f"{name}.gx": out(grads[0])})
        if weight is not None:
            t.update({f"{name}.weight": out(weight), f"{name}.gweight": out(grads[1])})

    def vit_tokens(x):  # VisionTransformer._process_input after conv_proj
        n, c, h, w = x.shape
        return x.reshape(n, c, h * w).permute(0, 2, 1)

    case("tokens", vit_tokens, torch.randn(3, 4, 3, 5))
    case("tokens_grid", lambda x: x.permute(0, 2, 3, 1), torch.randn(3, 4, 3, 5))  # Swin's Permute
    case("class_token", lambda x, ct: torch.cat([ct.expand(x.shape[0], -1, -1), x], dim=1),
         torch.randn(3, 5, 6), torch.randn(1, 1, 6))
    case("pos_embedding", lambda x, p: x + p, torch.randn(3, 5, 6), torch.randn(1, 5, 6) * 0.02)
    case("take_token", lambda x: x[:, 0], torch.randn(3, 5, 6))
    case("token_mean", lambda x: x.mean(1), torch.randn(3, 5, 6))
    # Swin's head: norm, Permute([0, 3, 1, 2]), AdaptiveAvgPool2d(1), flatten
    case("token_mean_grid", lambda x: F.adaptive_avg_pool2d(x.permute(0, 3, 1, 2), 1).flatten(1),
         torch.randn(3, 3, 4, 6))
    for name, shape in (("patch_merge", (3, 5, 7, 4)), ("patch_merge_even", (3, 4, 6, 2)),
                        ("patch_merge_odd_h", (2, 3, 4, 3))):
        case(name, _patch_merging_pad, torch.randn(shape))
    case("drop_path_eval", lambda x: stochastic_depth(x, 0.3, "row", training=False), torch.randn(3, 5, 6))
    # p = 1 in training drops every sample: the one training case with no randomness
    case("drop_path_all", lambda x: stochastic_depth(x, 1.0, "row", training=True), torch.randn(3, 5, 6))

    logits, target = torch.randn(8, 10) * 2, torch.randint(0, 10, (8,))
    for name, lg in (("ce", logits), ("ce_big", logits * 100)):  # ce_big: same target, huge logits
        ld = f64(lg)
        loss = F.cross_entropy(ld, target)  # mean reduction
        (gl,) = torch.autograd.grad(loss, ld)
        t.update({f"{name}.logits": out(lg), f"{name}.target": out(target),
                  f"{name}.loss": out(loss).reshape(1), f"{name}.glogits": out(gl)})

    os.makedirs(outdir, exist_ok=True)
    safetensors_np.save(os.path.join(outdir, "ops.safetensors"), t,
                        {"leaky_relu.slope": str(SLOPE), "torch": torch.__version__})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
