"""Golden references for the pruning model of SPEC section 7 (src/theory/), from mpmath.

Usage: /usr/bin/python3 tests/golden/gen_theory.py OUTDIR   -> writes OUTDIR/theory.safetensors

Everything is computed by mpmath at 30 significant digits (more where a difference would
cancel, see one_minus_I) from exactly the float64 arguments stored, then rounded once to
float64. All tensors are F64.

  x [n]: arguments in (0, 60], dense near 0 (1e-6 ... 1), then steps of 0.05 to 2, 0.25
    to 20 and 1 to 60.
  K0, K1 [n]: mpmath besselk(0 | 1, x).
  L0, Lm1 [n]: mpmath struvel(0 | -1, x), the modified Struve functions L0 and L_{-1}.
  I [n]: x [L_{-1}(x) K0(x) + L0(x) K1(x)].
  one_minus_I [n]: 1 - I(x), at 30 digits plus as many as the subtraction cancels, so it
    is accurate in relative terms (1 - I(60) ~ 1e-27).
  xq [m], I_quad [m]: a subset of x with I(x) = (2/pi) int_0^x K0(u) du by mpmath's
    quadrature, independent of the Struve functions (the generator also asserts that the
    two agree to 1e-25).
  xbig, L0_big, Lm1_big, one_minus_I_big: x = 100, 300, 700 (L0(700) ~ 1e302).
  p_t [nt], p_eps [ne], p [nt, ne], H [nt, ne]: P[Z > eps] = (1 - I(eps / q(t))) / 2 with
    q(t) = erfc(t / sqrt 2), t = 0 (0.25) 2.5, and the entropy -p log2 p - (1-p) log2 (1-p)
    in bits.
  as98.x, as98.eK0, as98.eK1: e^x K0(x) and e^x K1(x) at x = 1, 2, 5, the quantities that
    Abramowitz & Stegun (1964), Table 9.8 (modified Bessel functions of orders 0, 1 and 2,
    x = 0(.1)10(.2)20, 10 significant digits) tabulates. The literals below are those
    values to 10 significant digits as the author knew them; the printed page was not at
    hand to compare digit by digit, so they are asserted against mpmath to the table's
    precision here rather than trusted as a transcription.
"""
import os
import sys

import mpmath
import numpy as np
from mpmath import besselk, erfc, exp, log, mp, mpf, pi, quad, sqrt, struvel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import safetensors_np  # noqa: E402

mp.dps = 30

# (x, e^x K0(x), e^x K1(x)): see the docstring.
AS_TABLE_9_8 = [
    (1.0, 1.144463080, 1.636153486),
    (2.0, 0.8415682151, 1.033476847),
    (5.0, 0.5478075643, 0.6002738588),
]


def struve_i(x):
    return x * (struvel(-1, x) * besselk(0, x) + struvel(0, x) * besselk(1, x))


def one_minus_i(x):
    """1 - I(x) with enough extra digits for the cancellation (1 - I ~ e^-x)."""
    if x == 0:
        return mpf(1)  # I(0) = 0; the formula would be 0 * inf there
    with mp.workdps(mp.dps + int(float(x) / 2.3) + 10):
        return +(1 - struve_i(mpf(x)))


def i_quad(x):
    x = mpf(x)
    pts = [0, x] if x <= 1 else [0, 1, x]
    return 2 / pi * quad(lambda u: besselk(0, u), pts)


def entropy_bits(p):
    if p == 0 or p == 1:
        return mpf(0)
    return -(p * log(p, 2) + (1 - p) * log(1 - p, 2))


def main(outdir):
    xs = [1e-6, 1e-5, 1e-4, 1e-3, 0.005, 0.01, 0.02, 0.03]
    xs += [round(0.05 * k, 2) for k in range(1, 41)]      # 0.05 ... 2
    xs += [round(2 + 0.25 * k, 2) for k in range(1, 73)]  # 2.25 ... 20
    xs += [float(k) for k in range(21, 61)]                # 21 ... 60
    xs = sorted(set(xs))
    for must in (1e-6, 0.5, 1, 2, 5, 10, 20, 40, 60):
        assert must in xs, must
    t = {}
    f64 = lambda v: np.array([float(e) for e in v], dtype=np.float64)  # noqa: E731
    t["x"] = np.array(xs, dtype=np.float64)
    t["K0"] = f64(besselk(0, x) for x in xs)
    t["K1"] = f64(besselk(1, x) for x in xs)
    t["L0"] = f64(struvel(0, x) for x in xs)
    t["Lm1"] = f64(struvel(-1, x) for x in xs)
    t["I"] = f64(struve_i(x) for x in xs)
    t["one_minus_I"] = f64(one_minus_i(x) for x in xs)

    xq = [1e-6, 1e-3, 0.05, 0.3, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0,
          40.0, 60.0]
    iq = [i_quad(x) for x in xq]
    for x, v in zip(xq, iq):
        assert abs(v - struve_i(x)) < mpf(10) ** -25, (x, v, struve_i(x))
    t["xq"] = np.array(xq, dtype=np.float64)
    t["I_quad"] = f64(iq)

    xbig = [100.0, 300.0, 700.0]
    t["xbig"] = np.array(xbig, dtype=np.float64)
    t["L0_big"] = f64(struvel(0, x) for x in xbig)
    t["Lm1_big"] = f64(struvel(-1, x) for x in xbig)
    t["one_minus_I_big"] = f64(one_minus_i(x) for x in xbig)

    ts = [round(0.25 * k, 2) for k in range(11)]
    es = [0.0, 1e-3, 0.01, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0]
    p = np.zeros((len(ts), len(es)))
    h = np.zeros_like(p)
    for i, tv in enumerate(ts):
        q = erfc(mpf(tv) / sqrt(2))
        for j, ev in enumerate(es):
            pv = one_minus_i(mpf(ev) / q) / 2
            p[i, j] = float(pv)
            h[i, j] = float(entropy_bits(pv))
    t["p_t"] = np.array(ts, dtype=np.float64)
    t["p_eps"] = np.array(es, dtype=np.float64)
    t["p"] = p
    t["H"] = h

    for x, ek0, ek1 in AS_TABLE_9_8:
        for lit, ref in ((ek0, exp(x) * besselk(0, x)), (ek1, exp(x) * besselk(1, x))):
            assert abs(lit / ref - 1) < 1e-9, (x, lit, ref)
    t["as98.x"] = np.array([r[0] for r in AS_TABLE_9_8], dtype=np.float64)
    t["as98.eK0"] = np.array([r[1] for r in AS_TABLE_9_8], dtype=np.float64)
    t["as98.eK1"] = np.array([r[2] for r in AS_TABLE_9_8], dtype=np.float64)

    os.makedirs(outdir, exist_ok=True)
    safetensors_np.save(os.path.join(outdir, "theory.safetensors"), t,
                        {"generator": "mpmath %s, %d digits" % (mpmath.__version__, mp.dps)})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
