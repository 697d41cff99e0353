"""Golden references for nepenthe's Attention op: torch.nn.MultiheadAttention (ViT's global
attention) and torchvision's ShiftedWindowAttention (Swin's windows, shifts, padding and
relative position bias), forward and backward.

Usage: /usr/bin/python3 tests/golden/gen_attention.py OUTDIR   -> OUTDIR/attention.safetensors

Per case: x (float32 input), p0..p4 (float32 parameters, in the op's order: qkv weight, qkv
bias, proj weight, proj bias, relative position bias table), gy; references computed by the
modules themselves in float64 from exactly those values: y, gx, gp0..gp4. Metadata
"<case>.attrs" holds "heads window_h window_w shift_h shift_w".
"""
import os
import sys

import torch
from torchvision.models.swin_transformer import ShiftedWindowAttention

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402


def out(t):
    return t.detach().numpy()


def randomize(params, gen):
    """Parameters drawn in float32 (bias table and biases larger than the modules' init, so
    that they matter), then made float64 leaves."""
    for p in params:
        with torch.no_grad():
            p.copy_((torch.randn(p.shape, generator=gen) * 0.4).double())


def record(t, meta, name, module, params, x, attrs, forward):
    gen = torch.Generator().manual_seed(len(t) + 7)
    module.double()
    randomize(params, gen)
    x32 = torch.randn(x, generator=gen) * 1.5
    xd = x32.double().requires_grad_(True)
    y = forward(module, xd)
    gy = torch.randn(y.shape, generator=gen)
    grads = torch.autograd.grad((y * gy.double()).sum(), [xd] + params)
    t[f"{name}.x"], t[f"{name}.gy"], t[f"{name}.y"], t[f"{name}.gx"] = out(x32), out(gy), out(y), out(grads[0])
    for i, (p, g) in enumerate(zip(params, grads[1:])):
        t[f"{name}.p{i}"] = out(p).astype("float32")
        t[f"{name}.gp{i}"] = out(g)
    meta[f"{name}.attrs"] = " ".join(str(v) for v in attrs)


def main(outdir):
    torch.manual_seed(0)
    t, meta = {}, {"torch": torch.__version__}

    # ViT: torch.nn.MultiheadAttention(C, heads, batch_first=True), self-attention on [B, T, C]
    for name, (B, T, C, heads) in (("mha", (3, 5, 8, 2)), ("mha_one_head", (2, 4, 6, 1))):
        m = torch.nn.MultiheadAttention(C, heads, batch_first=True)
        params = [m.in_proj_weight, m.in_proj_bias, m.out_proj.weight, m.out_proj.bias]
        record(t, meta, name, m, params, (B, T, C), (heads, 0, 0, 0, 0),
               lambda mod, xd: mod(xd, xd, xd, need_weights=False)[0])

    # Swin: ShiftedWindowAttention(C, window, shift, heads) on [B, H, W, C]
    for name, (B, H, W, C, heads, window, shift) in (
        ("swin_shift_pad", (2, 5, 7, 8, 2, [3, 3], [1, 1])),   # padding to 6 x 9, 6 windows, mask
        ("swin_rect", (2, 4, 6, 6, 3, [2, 3], [1, 1])),       # rectangular windows
        ("swin_plain", (2, 4, 4, 4, 1, [2, 2], [0, 0])),      # windows, no shift
        ("swin_big_window", (2, 3, 3, 4, 2, [4, 4], [2, 2])),  # one padded window: no shift
        ("swin_one_axis", (1, 4, 8, 4, 2, [4, 4], [2, 2])),   # shift on one axis only
    ):
        m = ShiftedWindowAttention(C, window, shift, heads)
        params = [m.qkv.weight, m.qkv.bias, m.proj.weight, m.proj.bias, m.relative_position_bias_table]
        record(t, meta, name, m, params, (B, H, W, C), (heads, *window, *shift), lambda mod, xd: mod(xd))

    os.makedirs(outdir, exist_ok=True)
    safetensors_np.save(os.path.join(outdir, "attention.safetensors"), t, meta)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
