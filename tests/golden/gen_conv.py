"""Golden references for nepenthe's Conv2d.

Usage: /usr/bin/python3 tests/golden/gen_conv.py OUTDIR   -> writes OUTDIR/conv.safetensors

Inputs are drawn in float32 (stored as float32); references are computed by PyTorch in
float64 from exactly those float32 values, and stored as float64. For each case
`<name>.`: x, weight, (bias), gy, y, gx, gweight, (gbias); the case's attributes are in
the metadata as "<name>": "C,F,kh,kw,sh,sw,ph,pw,groups,bias".
The case "chain" is x -> a = conv(x) -> b = conv(a) -> out = a + b (both convs of the
same geometry): a's output gradient comes from two consumers.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402

# name: (batch, C, H, W, F, (kh, kw), (sh, sw), (ph, pw), groups, bias)
CASES = {
    "k3s1_bias": (3, 4, 8, 8, 6, (3, 3), (1, 1), (1, 1), 1, True),
    "k3s2": (2, 5, 10, 10, 8, (3, 3), (2, 2), (1, 1), 1, False),
    "k1s2": (2, 6, 8, 8, 12, (1, 1), (2, 2), (0, 0), 1, False),      # ResNet shortcut
    "dw_s1_bias": (2, 8, 10, 10, 8, (3, 3), (1, 1), (1, 1), 8, True),
    "dw_s2": (2, 24, 10, 10, 24, (3, 3), (2, 2), (1, 1), 24, False),   # C not a multiple of 16
    "grp2": (2, 6, 7, 7, 4, (3, 3), (1, 1), (1, 1), 2, True),
    "rect": (2, 3, 8, 11, 5, (3, 5), (2, 1), (1, 2), 1, True),       # non-square everything
    "stem": (4, 3, 12, 12, 16, (3, 3), (1, 1), (1, 1), 1, False),    # 3 input channels
    "c16": (4, 16, 16, 16, 16, (3, 3), (1, 1), (1, 1), 1, False),    # full 16-channel blocks
    "c16s2": (4, 16, 16, 16, 32, (3, 3), (2, 2), (1, 1), 1, False),
    "k5p0": (2, 4, 9, 9, 3, (5, 5), (1, 1), (0, 0), 1, True),        # no padding
    "c32": (4, 32, 16, 16, 32, (3, 3), (1, 1), (1, 1), 1, False),    # two 16-channel blocks
    "c64": (2, 64, 16, 16, 64, (3, 3), (1, 1), (1, 1), 1, True),     # Winograd on AVX-512
    "dw_tiny": (4, 144, 2, 2, 144, (3, 3), (1, 1), (1, 1), 144, False),  # MobileNetV2's last stage
    "k1_tiny": (4, 120, 2, 2, 720, (1, 1), (1, 1), (0, 0), 1, False),  # C not a multiple of 16
    "k1_tiny_back": (4, 720, 2, 2, 120, (1, 1), (1, 1), (0, 0), 1, False),
    "dw_720": (4, 720, 2, 2, 720, (3, 3), (1, 1), (1, 1), 720, False),
}


def f64(t):
    return t.detach().double().requires_grad_(True)


def out(t):
    return t.detach().numpy()


def weights(F_, Cg, kh, kw):
    bound = 1.0 / (Cg * kh * kw) ** 0.5  # PyTorch's default init scale
    return (torch.rand(F_, Cg, kh, kw) * 2 - 1) * bound


def main(outdir):
    torch.manual_seed(0)
    t, meta = {}, {"torch": torch.__version__}
    for name, (B, C, H, W, F_, k, s, p, g, bias) in CASES.items():
        x = torch.randn(B, C, H, W)
        w = weights(F_, C // g, *k)
        b = torch.randn(F_) * 0.5 if bias else None
        xd, wd = f64(x), f64(w)
        bd = f64(b) if bias else None
        y = F.conv2d(xd, wd, bd, stride=s, padding=p, groups=g)
        gy = torch.randn(y.shape)
        grads = torch.autograd.grad((y * gy.double()).sum(), (xd, wd) + ((bd,) if bias else ()))
        t.update({f"{name}.x": out(x), f"{name}.weight": out(w), f"{name}.gy": out(gy),
                  f"{name}.y": out(y), f"{name}.gx": out(grads[0]), f"{name}.gweight": out(grads[1])})
        if bias:
            t.update({f"{name}.bias": out(b), f"{name}.gbias": out(grads[2])})
        meta[name] = ",".join(str(v) for v in (C, F_, *k, *s, *p, g, int(bias)))

    # chain: out = a + conv_b(a), a = conv_a(x); both 16 -> 16, 3x3, stride 1, pad 1, bias.
    x = torch.randn(3, 16, 8, 8)
    wa, wb = weights(16, 16, 3, 3), weights(16, 16, 3, 3)
    ba, bb = torch.randn(16) * 0.5, torch.randn(16) * 0.5
    xd, wad, wbd, bad, bbd = (f64(v) for v in (x, wa, wb, ba, bb))
    a = F.conv2d(xd, wad, bad, padding=1)
    y = a + F.conv2d(a, wbd, bbd, padding=1)
    gy = torch.randn(y.shape)
    gx, gwa, gba, gwb, gbb = torch.autograd.grad((y * gy.double()).sum(), (xd, wad, bad, wbd, bbd))
    t.update({"chain.x": out(x), "chain.a.weight": out(wa), "chain.a.bias": out(ba),
              "chain.b.weight": out(wb), "chain.b.bias": out(bb), "chain.gy": out(gy),
              "chain.y": out(y), "chain.gx": out(gx), "chain.a.gweight": out(gwa),
              "chain.a.gbias": out(gba), "chain.b.gweight": out(gwb), "chain.b.gbias": out(gbb)})

    os.makedirs(outdir, exist_ok=True)
    safetensors_np.save(os.path.join(outdir, "conv.safetensors"), t, meta)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
