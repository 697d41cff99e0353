/* Modified Struve functions L0(x) and L_{-1}(x) for x >= 0 (GSL has none; SPEC section 7
 * needs them for I(x) = x [L_{-1}(x) K0(x) + L0(x) K1(x)]).
 *
 * Method, by range:
 *   x < 20   the power series L_nu(x) = sum_k (x/2)^(2k+nu+1) / (Gamma(k+3/2) Gamma(k+nu+3/2)).
 *            Every term is positive, so the sum is accurate in relative terms; it is summed
 *            in long double (64-bit mantissa on x86-64) so that the ~k roundings carried by
 *            the k-th term of the recurrence do not show in the double result.
 *   x >= 20  L0 = I0 - (I0 - L0) and L_{-1} = I1 + (L_{-1} - I1), I0 and I1 from GSL
 *            (exponentially scaled), the differences from their large-x expansions (DLMF
 *            11.6.1 with M_nu = L_nu - I_{-nu}):
 *              I0(x) - L0(x)     ~ (2/pi) sum_k ((2k-1)!!)^2 / x^(2k+1)
 *              L_{-1}(x) - I1(x) ~ (2/pi) sum_k (2k-1)!! (2k+1)!! / x^(2k+2).
 *            Both diverge; cut at the smallest term their error is about 2 e^-x times the
 *            difference (~ 1/x), while L itself is ~ e^x / sqrt(2 pi x): at x = 20 that is
 *            3e-18 of L, so the expansions are exact in double there, and the accuracy is
 *            GSL's I0 and I1. L overflows (returns +inf) a little above x = 713.
 * Accuracy against mpmath (30 digits), 3200 points of [1e-6, 700] (tests/golden/
 * gen_theory.py keeps 170 of them for tests/test_theory.c):
 *   L0:      max relative error 1.1e-16 for x < 20 (series), 6.3e-16 for x >= 20;
 *   L_{-1}:  max relative error 1.1e-16 for x < 20,          5.8e-16 for x >= 20.
 * Only the scaled GSL Bessel functions are called, and only with x >= 20, where they neither
 * overflow nor underflow: GSL's error handler (which aborts by default) is never reached. */
#include <math.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_bessel.h>

#include "nepenthe/theory.h"

#define NEP_2_PI 0.63661977236758134308 /* 2 / pi */
#define NEP_2_PI_L 0.636619772367581343075535053490057448L
/* Where the series hands over to the asymptotic form (see the top of the file). */
#define SERIES_END 20.0

/* The power series; nu is 0 or -1. The ratio of consecutive terms is
 * (x/2)^2 / ((k+3/2)(k+nu+3/2)), so no Gamma function and no large power is formed. */
static double struve_series(double x, int nu) {
    long double y = 0.25L * x * x;
    /* k = 0: (x/2) / Gamma(3/2)^2 = 2x/pi for nu = 0; 1 / (Gamma(3/2) Gamma(1/2)) = 2/pi
     * for nu = -1. */
    long double term = nu == 0 ? NEP_2_PI_L * x : NEP_2_PI_L;
    long double sum = term;
    for (int k = 0; k < 200; k++) {
        term *= y / ((k + 1.5L) * (k + nu + 1.5L));
        sum += term;
        /* Past the peak the ratio falls below 1/2, so the rest is under one such term. */
        if (term <= 0x1p-64L * sum && 2 * y < (k + 1.5) * (k + nu + 1.5)) break;
    }
    return (double)sum;
}

/* The asymptotic sums above, cut where the terms stop decreasing or stop mattering:
 * nu = 0 gives I0 - L0, nu = -1 gives L_{-1} - I1 (both positive). */
static double struve_minus_bessel(double x, int nu) {
    double r = 1 / (x * x);
    double term = nu == 0 ? NEP_2_PI / x : NEP_2_PI * r;
    double sum = term;
    for (int k = 0; k < 200; k++) {
        double ratio = (nu == 0 ? (2 * k + 1.0) * (2 * k + 1) : (2 * k + 1.0) * (2 * k + 3)) * r;
        if (ratio >= 1) break; /* smallest term reached: the series starts to diverge */
        term *= ratio;
        sum += term;
        if (term <= 0x1p-56 * sum) break;
    }
    return sum;
}

/* e^x * scaled - d without overflowing before the result does: e^(x/2) twice. */
static double unscale(double scaled, double d, double x) {
    double h = exp(0.5 * x);
    return (scaled * h + d / h) * h;
}

double nep_struve_l0(double x) {
    if (!(x >= 0)) return NAN;
    if (x < SERIES_END) return struve_series(x, 0);
    if (isinf(x)) return INFINITY;
    gsl_sf_result i0;
    if (gsl_sf_bessel_I0_scaled_e(x, &i0) != GSL_SUCCESS) return NAN;
    return unscale(i0.val, -struve_minus_bessel(x, 0), x);
}

double nep_struve_lm1(double x) {
    if (!(x >= 0)) return NAN;
    if (x < SERIES_END) return struve_series(x, -1);
    if (isinf(x)) return INFINITY;
    gsl_sf_result i1;
    if (gsl_sf_bessel_I1_scaled_e(x, &i1) != GSL_SUCCESS) return NAN;
    return unscale(i1.val, struve_minus_bessel(x, -1), x);
}
