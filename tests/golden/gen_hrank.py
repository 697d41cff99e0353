"""Golden matrix ranks for HRank (tests/test_hrank.c): numpy.linalg.matrix_rank and
torch.linalg.matrix_rank, at their default tolerance S.max() * max(h, w) * eps(float32),
on float32 matrices whose rank is known by construction.

Usage: /usr/bin/python3 tests/golden/gen_hrank.py OUTDIR   -> writes OUTDIR/hrank.safetensors

Contents, for each case of CASES (tests/test_hrank.c holds the same list):
  <case>.maps        float32 [n, h, w]: the matrices
  <case>.rank        int64 [n]: numpy.linalg.matrix_rank of each
  <case>.rank_torch  int64 [n]: torch.linalg.matrix_rank of each (the generator checks
                     that the two agree, and with the rank built in where there is one)
Matrices of controlled rank r are products of h x r and r x w Gaussian factors, so every
r from 0 to min(h, w) appears. A draw is kept only when no singular value of the stored
float32 matrix (computed in float64) lies within a factor MARGIN of the tolerance, so
that any correct SVD in float32 -- LAPACK's in nepenthe, numpy's, torch's -- counts the
same rank.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402

MARGIN = 4.0
EPS32 = np.finfo(np.float32).eps


def tol_of(a):
    s = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    return s, (s.max() if s.size else 0.0) * max(a.shape) * EPS32


def clear_of_tolerance(a):
    s, tol = tol_of(a)
    if tol == 0:
        return True
    return not np.any((s > tol / MARGIN) & (s < tol * MARGIN))


def low_rank(rng, h, w, r, scale=1.0):
    if r == 0:
        return np.zeros((h, w), np.float32)
    return (rng.standard_normal((h, r)) @ rng.standard_normal((r, w)) * scale).astype(np.float32)


def draw(rng, make):
    """make(rng) -> (float32 matrix, built rank or None), redrawn until clear of the tolerance."""
    for _ in range(1000):
        a, r = make(rng)
        if clear_of_tolerance(a):
            return a, r
    raise RuntimeError("no draw clear of the tolerance")


def controlled(h, w, per_rank=2, scale=1.0):
    def gen(rng):
        out = []
        for r in range(min(h, w) + 1):
            for _ in range(per_rank):
                out.append(draw(rng, lambda g, r=r: (low_rank(g, h, w, r, scale), r)))
        return out
    return gen


def noisy(h, w, noise, full):
    """Rank-deficient products plus uniform noise: far below the tolerance (the rank
    stays r) or far above it (the matrix is of full rank). r from 1: noise alone is a
    matrix of full rank, whatever its scale."""
    def gen(rng):
        out = []
        for r in range(1, min(h, w)):
            for _ in range(2):
                def make(g, r=r):
                    a = low_rank(g, h, w, r).astype(np.float64) + noise * g.uniform(-1, 1, (h, w))
                    return a.astype(np.float32), (min(h, w) if full else r)
                out.append(draw(rng, make))
        return out
    return gen


def relu_maps(h, w, count):
    """ReLU feature maps: max(low-rank map + bias, 0), from dense to almost all zero."""
    def gen(rng):
        out = []
        for k in range(count):
            def make(g, k=k):
                r = int(g.integers(1, min(h, w) + 1))
                bias = [-3.0, -2.0, -1.0, 0.0, 0.5][k % 5]
                z = low_rank(g, h, w, r).astype(np.float64) / np.sqrt(r) + bias
                return np.maximum(z, 0).astype(np.float32), None
            out.append(draw(rng, make))
        return out
    return gen


def zeros(h, w, count):
    def gen(rng):
        return [(np.zeros((h, w), np.float32), 0)] * count
    return gen


def special(rng):
    """A constant map (rank 1), one non-zero entry, one tiny entry alone (rank 1: the
    tolerance is relative), a matrix with a repeated column (rank 4)."""
    out = [(np.full((6, 5), 0.5, np.float32), 1)]
    a = np.zeros((6, 5), np.float32)
    a[2, 3] = -7.0
    out.append((a, 1))
    a = np.zeros((6, 5), np.float32)
    a[4, 0] = 1e-30
    out.append((a, 1))

    def repeated(g):
        b = g.standard_normal((6, 5)).astype(np.float32)
        b[:, 3] = b[:, 1]
        return b, 4
    out.append(draw(rng, repeated))
    return out


# name: generator of [(matrix, built rank or None)], all of one shape
CASES = {
    "square8": controlled(8, 8),
    "tall12x5": controlled(12, 5),
    "wide5x12": controlled(5, 12),
    "row1x7": controlled(1, 7, per_rank=3),
    "col9x1": controlled(9, 1, per_rank=3),
    "big32": controlled(32, 32, per_rank=1),
    "tiny_scale": controlled(7, 6, scale=1e-18),
    "huge_scale": controlled(7, 6, scale=1e15),
    "noise_below": noisy(8, 6, 1e-9, full=False),
    "noise_above": noisy(8, 6, 1e-3, full=True),
    "zeros": zeros(4, 3, 3),
    "relu16": relu_maps(16, 16, 20),
    "relu8x6": relu_maps(8, 6, 20),
    "special": special,
}


def main(outdir):
    torch.set_num_threads(1)
    rng = np.random.default_rng(2020)
    t = {}
    for name, gen in CASES.items():
        mats = gen(rng)
        maps = np.stack([m for m, _ in mats]).astype(np.float32)
        r_np = np.array([np.linalg.matrix_rank(m) for m in maps], np.int64)
        r_torch = torch.linalg.matrix_rank(torch.from_numpy(maps)).numpy().astype(np.int64)
        if not np.array_equal(r_np, r_torch):
            raise RuntimeError(f"{name}: numpy {r_np} and torch {r_torch} disagree")
        built = np.array([-1 if r is None else r for _, r in mats])
        known = built >= 0
        if not np.array_equal(r_np[known], built[known]):
            raise RuntimeError(f"{name}: ranks {r_np} differ from the built ones {built}")
        t[f"{name}.maps"] = maps
        t[f"{name}.rank"] = r_np
        t[f"{name}.rank_torch"] = r_torch
    os.makedirs(outdir, exist_ok=True)
    safetensors_np.save(os.path.join(outdir, "hrank.safetensors"), t,
                        {"cases": ",".join(CASES), "numpy": np.__version__, "torch": torch.__version__})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
