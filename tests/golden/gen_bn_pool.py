"""Golden references for nepenthe's BatchNorm2d and pooling ops.

Usage: /usr/bin/python3 tests/golden/gen_bn_pool.py OUTDIR   -> writes OUTDIR/bn_pool.safetensors

Inputs are drawn in float32 (stored as float32); references are computed by PyTorch in
float64 from exactly those float32 values, and stored as float64. Gradients come from
autograd with the loss sum(y * gy).

Cases (tensor names "<case>.<name>"):
  bn_train, bn_train_custom: training mode, default eps/momentum and eps 1e-3 /
    momentum 0.3 (metadata <case>.eps, <case>.momentum; 0 = default). Inputs x, weight,
    bias, running_mean, running_var (before), gy; references y, gx, gweight, gbias,
    running_mean1 / running_var1 after the forward of x, then y2, running_mean2 /
    running_var2 after a second training forward of x2.
  bn_eval: evaluation mode (running statistics); running stats must stay unchanged.
  maxpool_3x3s2p1 (all inputs negative, so zero padding would be visible),
  maxpool_2x2s2 (odd width: the last column is dropped), maxpool_ties (small integers:
    many ties, which go to the first element of the window in row-major order),
  maxpool_tiny (3x1 images: every window is clipped by the padding),
  avgpool_2x2s2, avgpool_3x3s1p1 (count_include_pad=True), global_avgpool:
    x, gy -> y, gx. Pool attributes are in metadata "<case>.kernel", ".stride", ".pad"
    as "h,w".
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402


def f64(t):
    return t.detach().double().requires_grad_(True)


def out(t):
    return t.detach().numpy().copy()


def bn_case(t, meta, name, shape, training, eps, momentum):
    """eps / momentum: None = PyTorch defaults (stored as 0 in metadata)."""
    C = shape[1]
    # Per-channel offsets and scales, so normalization does real work.
    off = torch.randn(1, C, 1, 1) * 3
    scl = torch.rand(1, C, 1, 1) * 2 + 0.5
    x = torch.randn(shape) * scl + off
    x2 = torch.randn(shape) * scl * 0.7 + off - 1
    w, b = torch.randn(C) * 0.5 + 1, torch.randn(C) * 0.5
    rm, rv = torch.randn(C) * 0.3, torch.rand(C) + 0.5
    gy = torch.randn(shape)
    kw = {}
    if eps is not None:
        kw["eps"] = eps
    if momentum is not None:
        kw["momentum"] = momentum
    xd, wd, bd = f64(x), f64(w), f64(b)
    rmd, rvd = rm.double().clone(), rv.double().clone()
    y = F.batch_norm(xd, rmd, rvd, wd, bd, training=training, **kw)
    gx, gw, gb = torch.autograd.grad((y * gy.double()).sum(), (xd, wd, bd))
    t.update({f"{name}.x": out(x), f"{name}.weight": out(w), f"{name}.bias": out(b),
              f"{name}.running_mean": out(rm), f"{name}.running_var": out(rv),
              f"{name}.gy": out(gy), f"{name}.y": out(y), f"{name}.gx": out(gx),
              f"{name}.gweight": out(gw), f"{name}.gbias": out(gb),
              f"{name}.running_mean1": out(rmd), f"{name}.running_var1": out(rvd)})
    if training:
        # The second pass starts from the float64 running stats of the first, as
        # PyTorch would; nepenthe keeps them in float32 in between (rounding ~6e-8).
        y2 = F.batch_norm(x2.double(), rmd, rvd, w.double(), b.double(), training=True, **kw)
        t.update({f"{name}.x2": out(x2), f"{name}.y2": out(y2),
                  f"{name}.running_mean2": out(rmd), f"{name}.running_var2": out(rvd)})
    meta[f"{name}.eps"] = str(eps or 0)
    meta[f"{name}.momentum"] = str(momentum or 0)


def pool_case(t, meta, name, fn, x, kernel, stride, pad):
    gy = torch.randn(fn(x.double()).shape)
    xd = f64(x)
    y = fn(xd)
    (gx,) = torch.autograd.grad((y * gy.double()).sum(), xd)
    t.update({f"{name}.x": out(x), f"{name}.gy": out(gy), f"{name}.y": out(y), f"{name}.gx": out(gx)})
    meta[f"{name}.kernel"] = "%d,%d" % kernel
    meta[f"{name}.stride"] = "%d,%d" % stride
    meta[f"{name}.pad"] = "%d,%d" % pad


def main(outdir):
    torch.manual_seed(0)
    t, meta = {}, {"torch": torch.__version__}

    bn_case(t, meta, "bn_train", (4, 3, 5, 6), True, None, None)
    bn_case(t, meta, "bn_train_custom", (3, 5, 4, 3), True, 1e-3, 0.3)
    bn_case(t, meta, "bn_eval", (4, 3, 5, 6), False, None, None)

    def maxpool(k, s, p):
        return lambda x: F.max_pool2d(x, k, s, p)

    def avgpool(k, s, p):
        return lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=True)

    pool_case(t, meta, "maxpool_3x3s2p1", maxpool(3, 2, 1), torch.randn(2, 3, 9, 9) - 3,
              (3, 3), (2, 2), (1, 1))
    pool_case(t, meta, "maxpool_2x2s2", maxpool(2, 2, 0), torch.randn(2, 3, 8, 7),
              (2, 2), (2, 2), (0, 0))
    pool_case(t, meta, "maxpool_ties", maxpool(3, 1, 1),
              torch.randint(-2, 2, (2, 2, 6, 5)).float(), (3, 3), (1, 1), (1, 1))
    pool_case(t, meta, "maxpool_tiny", maxpool(3, 2, 1), torch.randn(2, 2, 3, 1) - 3,
              (3, 3), (2, 2), (1, 1))
    pool_case(t, meta, "avgpool_2x2s2", avgpool(2, 2, 0), torch.randn(2, 3, 8, 8),
              (2, 2), (2, 2), (0, 0))
    pool_case(t, meta, "avgpool_3x3s1p1", avgpool(3, 1, 1), torch.randn(2, 3, 7, 6),
              (3, 3), (1, 1), (1, 1))
    pool_case(t, meta, "global_avgpool", lambda x: F.adaptive_avg_pool2d(x, 1),
              torch.randn(2, 4, 5, 6), (0, 0), (0, 0), (0, 0))

    os.makedirs(outdir, exist_ok=True)
    safetensors_np.save(os.path.join(outdir, "bn_pool.safetensors"), t, meta)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
