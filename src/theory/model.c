/* The pruning model of SPEC section 7: C(t), g(t), f_Z, p(t, eps) = P[Z > eps] and the
 * ON/OFF entropy H(t, eps), all for standardized X, W ~ N(0, 1).
 *
 * p = (1 - I(x)) / 2 with x = eps / q. I(x) rises to 1, and 1 - I(x) ~ e^-x sqrt(2/(pi x)),
 * so 1 - I(x) is never formed by subtraction where it is small:
 *   x <= 2  I from the closed form x [L_{-1} K0 + L0 K1] (Struve functions from struve.c,
 *           K from GSL); here 1 - I >= 0.0618, so subtracting costs at most 4 bits.
 *   x > 2   1 - I(x) = (2/pi) int_x^inf K0(u) du = (2/pi) Ki1(x), the Bickley function
 *           Ki1(x) = int_0^inf e^(-x cosh s) / cosh s ds (put K0(u) = int_0^inf
 *           e^(-u cosh s) ds and integrate over u first). That integrand is positive,
 *           analytic in the strip |Im s| < pi/2 and falls double-exponentially, so the
 *           trapezoidal rule converges geometrically in 1/h; the step h = min(0.2,
 *           0.5 / sqrt(x)) keeps its error below 1e-17 relative for every x (measured
 *           against mpmath at 40 digits), with 16 to 24 terms. Its terms are all positive,
 *           so 1 - I keeps its relative accuracy however small it gets.
 * Accuracy against mpmath (30 digits, 3200 points of x in [1e-6, 700]): I(x) within 3.3e-16
 * absolute; 1 - I(x) within 3.6e-15 relative for x <= 2 and 8.7e-16 for 2 < x <= 700 (past
 * x ~ 745 it underflows to 0, where the true value is below the smallest double). So p is
 * within 2e-16 absolute everywhere; relative to p, add the conditioning of x = eps / q:
 * a relative rounding d of q (erfc) moves p by about x d relative.
 *
 * GSL: the special functions are called only where they cannot overflow or underflow (the
 * exponentially scaled K0, K0 and K1 for 1e-10 <= x <= 2), so GSL's error handler is never
 * reached from them. QAGIU in nep_theory_p_on_quad can fail (roundoff, too many
 * subdivisions) and then calls the handler before returning its error code; the default
 * handler aborts the process, which a library must not do. So the first call of
 * nep_theory_p_on_quad turns GSL's default handler off (errors are then only returned),
 * once, through pthread_once. That is GSL's process-wide setting, not state of ours, and we
 * change it only from GSL's default: a handler the application installed is left in place. */
#include <math.h>
#include <pthread.h>
#include <stddef.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_sf_bessel.h>

#include "nepenthe/theory.h"

#define NEP_PI 3.14159265358979323846
#define NEP_2_PI 0.63661977236758134308    /* 2 / pi */
#define NEP_SQRT1_2 0.70710678118654752440 /* 1 / sqrt 2 */
#define NEP_EULER 0.57721566490153286061   /* Euler's gamma */
#define NEP_LN2 0.69314718055994530942

/* Where 1 - I(x) switches from the Struve closed form to the Bickley function. */
#define CLOSED_FORM_END 2.0

double nep_theory_pruned(double t) {
    if (!(t >= 0)) return NAN;
    return erf(t * NEP_SQRT1_2);
}

double nep_theory_kept(double t) {
    if (!(t >= 0)) return NAN;
    /* erfc, not 1 - erf: g(t) stays accurate in relative terms where almost all is pruned. */
    return erfc(t * NEP_SQRT1_2);
}

/* K0(u) for u > 0 through the scaled function, which GSL evaluates without underflow; the
 * product underflows to 0 quietly where K0 itself is below the smallest double. */
static double k0(double u) {
    if (u > 800) return 0; /* K0(800) ~ 1e-349 */
    gsl_sf_result r;
    if (gsl_sf_bessel_K0_scaled_e(u, &r) != GSL_SUCCESS) return NAN;
    return r.val * exp(-u);
}

/* f_Z(z) = K0(|z| / q) / (pi q): the density of W' X for independent W' ~ N(0, q^2) and
 * X ~ N(0, 1), which is how eq. 9 models a connection after pruning (so Var Z = q^2). */
static double density_q(double z, double q) {
    if (z == 0) return INFINITY; /* K0's logarithmic singularity (and, at q = 0, a point mass) */
    if (q == 0) return 0;
    return k0(fabs(z) / q) / (NEP_PI * q);
}

double nep_theory_density(double z, double t) {
    if (isnan(z) || !(t >= 0)) return NAN;
    return density_q(z, nep_theory_kept(t));
}

/* I(x) from the closed form, 0 <= x <= CLOSED_FORM_END. */
static double i_closed_form(double x) {
    if (x == 0) return 0;
    /* Below 1e-10 K1 ~ 1/x and K0 ~ -ln(x/2) - gamma, and (2/pi) int_0^x of that is the
     * leading term, with relative error O(x^2); it also keeps K1 away from its overflow. */
    if (x < 1e-10) return NEP_2_PI * x * (1 - NEP_EULER - log(0.5 * x));
    gsl_sf_result k0r, k1r;
    if (gsl_sf_bessel_K0_e(x, &k0r) != GSL_SUCCESS || gsl_sf_bessel_K1_e(x, &k1r) != GSL_SUCCESS)
        return NAN;
    return x * (nep_struve_lm1(x) * k0r.val + nep_struve_l0(x) * k1r.val);
}

/* e^x Ki1(x) for x > 0 by the trapezoidal rule on s in [0, inf) (see the top of the file).
 * cosh s - 1 is written 2 sinh^2(s/2) so that it keeps its digits at small s. */
static double bickley_ki1_scaled(double x) {
    double h = fmin(0.2, 0.5 / sqrt(x));
    double sum = 0.5; /* half the s = 0 term, e^0 / cosh 0 */
    for (int k = 1; k < 1000; k++) {
        double sh = sinh(0.5 * k * h);
        double term = exp(-2 * x * sh * sh) / cosh(k * h);
        sum += term;
        if (term < 1e-18 * sum) break; /* the terms fall faster than geometrically */
    }
    return h * sum;
}

/* 1 - I(x), x >= 0, without cancellation where it is small. */
static double one_minus_i(double x) {
    if (x <= CLOSED_FORM_END) return 1 - i_closed_form(x);
    if (x > 800) return 0; /* below 1e-348 */
    return NEP_2_PI * bickley_ki1_scaled(x) * exp(-x);
}

double nep_theory_i(double x) {
    if (!(x >= 0)) return NAN;
    if (x <= CLOSED_FORM_END) return i_closed_form(x);
    return 1 - one_minus_i(x);
}

double nep_theory_p_on(double t, double eps) {
    if (!(t >= 0) || !(eps >= 0)) return NAN;
    /* For any finite t some weights are kept and Z is continuous and symmetric, so exactly
     * half its mass is above 0, even where q(t) underflows (t > ~38.5); only at t = inf is
     * Z = 0 surely. */
    if (eps == 0) return isinf(t) ? 0 : 0.5;
    double q = nep_theory_kept(t);
    if (q == 0) return 0;
    return 0.5 * one_minus_i(eps / q);
}

/* --- the check by quadrature ---------------------------------------------------------- */

static pthread_once_t gsl_handler_once = PTHREAD_ONCE_INIT;

/* See the top of the file: turn GSL's aborting default handler off, keep anyone else's. */
static void gsl_handler_init(void) {
    gsl_error_handler_t *previous = gsl_set_error_handler_off();
    if (previous != NULL) gsl_set_error_handler(previous);
}

/* f_Z in units of q: with z = q u, P[Z > eps] = int_{eps/q}^inf q f_Z(q u) du and
 * q f_Z(q u) = K0(u) / pi exactly, which is what is integrated. The scaling puts the mass
 * on u ~ 1 whatever t is (where QAGIU's mapping u = a + (1 - s) / s has its resolution),
 * and it stays finite where q is subnormal and 1 / q would overflow. The density's own
 * scaling is checked by the tests, which integrate nep_theory_density itself. */
static double quad_integrand(double u, void *arg) {
    (void)arg;
    return k0(u) / NEP_PI;
}

nep_status nep_theory_p_on_quad(double t, double eps, double *p, double *abserr, nep_err *err) {
    if (!p) return nep_fail(err, NEP_ERR_ARG, "theory: p_on_quad needs an output for p");
    if (!(t >= 0) || !(eps >= 0))
        return nep_fail(err, NEP_ERR_ARG,
                        "theory: p_on_quad needs t >= 0 and eps >= 0 (got t = %g, eps = %g)", t,
                        eps);
    double q = nep_theory_kept(t);
    if (abserr) *abserr = 0;
    if (q == 0) { /* nothing to integrate: Z = 0 up to the limits of doubles */
        *p = eps == 0 && !isinf(t) ? 0.5 : 0;
        return NEP_OK;
    }
    double a = eps / q;
    if (a > 800) { /* K0 underflows on the whole range: the integral is below 1e-348 */
        *p = 0;
        return NEP_OK;
    }
    pthread_once(&gsl_handler_once, gsl_handler_init);
    enum { LIMIT = 500 };
    gsl_integration_workspace *w = gsl_integration_workspace_alloc(LIMIT);
    if (!w) return nep_fail(err, NEP_ERR_NOMEM, "theory: no memory for the quadrature workspace");
    gsl_function f = {.function = quad_integrand, .params = NULL};
    double result = NAN, e = NAN;
    int rc = gsl_integration_qagiu(&f, a, 1e-15, 1e-12, LIMIT, w, &result, &e);
    gsl_integration_workspace_free(w);
    if (rc != GSL_SUCCESS)
        return nep_fail(err, NEP_ERR_NUMERIC,
                        "theory: quadrature of f_Z over (%g, inf) at t = %g failed: %s "
                        "(estimate %.17g, error %.3g)",
                        eps, t, gsl_strerror(rc), result, e);
    *p = result;
    if (abserr) *abserr = e;
    return NEP_OK;
}

/* --- entropy ---------------------------------------------------------------------------- */

double nep_entropy_bits(double p) {
    if (!(p >= 0 && p <= 1)) return NAN;
    if (p == 0 || p == 1) return 0;
    /* log1p keeps (1 - p) log(1 - p) ~ -p accurate when p is tiny. */
    return -(p * log(p) + (1 - p) * log1p(-p)) / NEP_LN2;
}

double nep_theory_entropy(double t, double eps) {
    return nep_entropy_bits(nep_theory_p_on(t, eps));
}
