/* The pruning model of SPEC section 7 (src/theory/) against mpmath (tests/golden/
 * gen_theory.py, 30 digits), against GSL's adaptive quadrature, and against identities
 * that hold whatever the implementation: C + g = 1, f_Z integrates to 1 and has variance
 * q^2, L0' = L_{-1}, H(t) falls as t grows. The bounds are set a few times above what the
 * code achieves (printed by each test) so that a real regression, not rounding, fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_sf_bessel.h>

#include "nepenthe/theory.h"
#include "testutil.h"

static nep_safetensors golden;
static int load_golden(void **state) { return nep_test_read_golden("theory.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

/* Where the Struve functions switch from the series to the asymptotic form (struve.c). */
#define SERIES_END 20.0

typedef struct worst {
    double err, x;
} worst;
static void track(worst *w, double err, double x) {
    if (err > w->err || isnan(err)) *w = (worst){err, x};
}
static double rel(double a, double b) { return fabs(a - b) / fabs(b); }

/* Golden tensor name as doubles, with its length; caller frees. */
static double *vec(const char *name, int64_t *n) {
    const nep_st_tensor *t = nep_test_tensor(&golden, "", name);
    if (n) *n = t->numel;
    return nep_test_as_f64(t);
}

/* Runs first, before anything else touches GSL's error handler: the library must replace
 * GSL's default handler (NULL, which aborts on any error) on its first quadrature, so that
 * a failing integration is a returned status and not the end of the process. */
static void test_gsl_handler(void **state) {
    double p;
    nep_err err;
    nep_test_assert_ok(nep_theory_p_on_quad(1, 0.5, &p, NULL, &err), &err);
    gsl_error_handler_t *was = gsl_set_error_handler(NULL);
    assert_non_null(was);
    gsl_set_error_handler(was);
    /* Where q is subnormal (t ~ 38) the scaled integrand stays finite. */
    nep_test_assert_ok(nep_theory_p_on_quad(38, 1e-316, &p, NULL, &err), &err);
    assert_true(fabs(p - nep_theory_p_on(38, 1e-316)) < 1e-12);
}

/* --- special functions against mpmath ------------------------------------------------ */

static void test_bessel_k_gsl(void **state) {
    int64_t n;
    double *x = vec("x", &n), *k0 = vec("K0", NULL), *k1 = vec("K1", NULL);
    worst w0 = {0, 0}, w1 = {0, 0};
    for (int64_t i = 0; i < n; i++) {
        track(&w0, rel(gsl_sf_bessel_K0(x[i]), k0[i]), x[i]);
        track(&w1, rel(gsl_sf_bessel_K1(x[i]), k1[i]), x[i]);
    }
    printf("GSL K0: max rel err %.2g (x = %g); K1: %.2g (x = %g)\n", w0.err, w0.x, w1.err, w1.x);
    assert_true(w0.err < 1e-14);
    assert_true(w1.err < 1e-14);
    free(x), free(k0), free(k1);
}

/* Abramowitz & Stegun Table 9.8 values (see gen_theory.py) against GSL's scaled K. */
static void test_bessel_k_table(void **state) {
    int64_t n;
    double *x = vec("as98.x", &n), *ek0 = vec("as98.eK0", NULL), *ek1 = vec("as98.eK1", NULL);
    assert_int_equal(n, 3);
    for (int64_t i = 0; i < n; i++) {
        /* 10 significant digits: half a unit in the last place is <= 5e-10 relative. */
        assert_true(rel(gsl_sf_bessel_K0_scaled(x[i]), ek0[i]) < 5e-10);
        assert_true(rel(gsl_sf_bessel_K1_scaled(x[i]), ek1[i]) < 5e-10);
    }
    free(x), free(ek0), free(ek1);
    /* K0 to 16 digits as tabulated in A&S chapter 9 and Mathematica (J. Burkardt's
     * test_values collection, bessel_k0_values). */
    static const double k0[][2] = {{0.1, 0.2427069024702017e+01}, {0.4, 0.1114529134524434e+01},
                                   {1.0, 0.4210244382407083e+00}, {2.0, 0.1138938727495334e+00},
                                   {3.5, 0.1959889717036849e-01}, {6.0, 0.1243994328013123e-02},
                                   {10.0, 0.1778006231616765e-04}};
    for (size_t i = 0; i < sizeof k0 / sizeof *k0; i++) assert_true(rel(gsl_sf_bessel_K0(k0[i][0]), k0[i][1]) < 1e-14);
}

static void check_struve(const char *xs, const char *l0s, const char *lm1s) {
    int64_t n;
    double *x = vec(xs, &n), *l0 = vec(l0s, NULL), *lm1 = vec(lm1s, NULL);
    worst a0 = {0, 0}, a1 = {0, 0}, b0 = {0, 0}, b1 = {0, 0}; /* a: series, b: asymptotic */
    int na = 0;
    for (int64_t i = 0; i < n; i++) {
        double e0 = rel(nep_struve_l0(x[i]), l0[i]), e1 = rel(nep_struve_lm1(x[i]), lm1[i]);
        na += x[i] < SERIES_END;
        track(x[i] < SERIES_END ? &a0 : &b0, e0, x[i]);
        track(x[i] < SERIES_END ? &a1 : &b1, e1, x[i]);
    }
    if (na)
        printf("%s: series (%d points, x < 20): L0 max rel err %.2g (x = %g), L_-1 %.2g (x = %g)\n",
               xs, na, a0.err, a0.x, a1.err, a1.x);
    printf("%s: asymptotic (%d points, x >= 20): L0 max rel err %.2g (x = %g), L_-1 %.2g (x = %g)\n",
           xs, (int)n - na, b0.err, b0.x, b1.err, b1.x);
    /* Measured: <= 1.1e-16 (series) and <= 6.5e-16 (asymptotic, where GSL's I0, I1 set it). */
    assert_true(a0.err <= 5e-16 && a1.err <= 5e-16);
    assert_true(b0.err <= 2e-15 && b1.err <= 2e-15);
    free(x), free(l0), free(lm1);
}

static void test_struve_golden(void **state) {
    check_struve("x", "L0", "Lm1");
    check_struve("xbig", "L0_big", "Lm1_big");
}

/* Published values: A. J. MacLeod, Algorithm 757 (MISCFUN), ACM TOMS 22(3), 1996, pp.
 * 288-301, tables of L0 and L1 to 20 digits (arguments of either sign there; L0 is odd, L1
 * even, so these are the absolute values). L_{-1} = L1 + 2/pi (A&S 12.2.4 with nu = 0). */
static void test_struve_published(void **state) {
    static const struct { double x, l0, l1; } t[] = {
        {0.001953125, 0.12433985199262820188e-02, 0.80950410749865126939e-06},
        {0.03125, 0.19896526647882937004e-01, 0.20724649092571514607e-03},
        {0.125, 0.79715713253115014945e-01, 0.33191834066894516744e-02},
        {0.5, 0.32724069939418078025e+00, 0.53942182623522663292e-01},
        {1, 0.71024318593789088874e+00, 0.22676438105580863683e+00},
        {2, 0.19374337579914456612e+01, 0.11027597873677158176e+01},
        {4, 0.11131050203248583431e+02, 0.91692778117386847344e+01},
        {7, 0.16850062034703267148e+03, 0.15541656652426660966e+03},
        {10, 0.28156522493745948555e+04, 0.26703582852084829694e+04},
        {16, 0.89344618796978400815e+06, 0.86505880175304633906e+06},
        {16.25, 0.11382025002851451057e+07, 0.11026046613094942620e+07},
        {17, 0.23549701855860190304e+07, 0.22846209494153934787e+07},
        {20, 0.43558282527641046718e+08, 0.42454972750111979449e+08},
        {22.5, 0.49993516476037957165e+09, 0.48869614587997695539e+09},
        {25, 0.57745606064408041689e+10, 0.56578651292431051863e+10},
        {30, 0.78167229782395624524e+12, 0.76853203893832108948e+12},
        {40, 0.14894774793419899908e+17, 0.14707396163259352103e+17},
        {50, 0.29325537838493363267e+21, 0.29030785901035567967e+21},
        {60, 0.58940770556098011683e+25, 0.58447515883904682813e+25},
        {70, 0.12015889579125463605e+30, 0.11929750788892311875e+30},
    };
    double worst0 = 0, worst1 = 0;
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        worst0 = fmax(worst0, rel(nep_struve_l0(t[i].x), t[i].l0));
        worst1 = fmax(worst1, rel(nep_struve_lm1(t[i].x), t[i].l1 + 2 / M_PI));
    }
    printf("MacLeod's published values: L0 max rel err %.2g, L_-1 %.2g\n", worst0, worst1);
    assert_true(worst0 <= 2e-15 && worst1 <= 2e-15);
}

/* L0' = L_{-1}, and both are continuous where the method changes (x = 20). */
static void test_struve_identities(void **state) {
    assert_true(nep_struve_l0(0) == 0);
    assert_true(fabs(nep_struve_lm1(0) - 2 / M_PI) < 1e-16);
    for (double x = 0.5; x < 60; x += 0.75) {
        double h = 1e-6 * x;
        double d = (nep_struve_l0(x + h) - nep_struve_l0(x - h)) / (2 * h);
        assert_true(rel(d, nep_struve_lm1(x)) < 1e-8);
    }
    /* One step of x down from 20 changes L by about L' * 3.6e-15 (L' ~ L there); what is
     * left after that is the disagreement of the two methods. */
    double below = nextafter(SERIES_END, 0), at = SERIES_END;
    assert_true(rel(nep_struve_l0(below) + (at - below) * nep_struve_lm1(at), nep_struve_l0(at)) < 1e-15);
    assert_true(rel(nep_struve_lm1(below) + (at - below) * nep_struve_lm1(at), nep_struve_lm1(at)) < 1e-15);
    /* L_{-1} = L1 + 2/pi > 2/pi, and L0 grows like I0 ~ e^x / sqrt(2 pi x). */
    assert_true(nep_struve_lm1(1e-3) > 2 / M_PI);
    assert_true(isfinite(nep_struve_l0(700)) && nep_struve_l0(700) > 1e300);
    assert_true(isinf(nep_struve_l0(720)) && isinf(nep_struve_lm1(720)));
    assert_true(isinf(nep_struve_l0(INFINITY)) && isinf(nep_struve_lm1(INFINITY)));
    assert_true(isnan(nep_struve_l0(-1)) && isnan(nep_struve_lm1(-1e-300)));
    assert_true(isnan(nep_struve_l0(NAN)) && isnan(nep_struve_lm1(NAN)));
}

/* I(x) against mpmath's Struve formula and its quadrature; 1 - I in relative terms (p at
 * t = 0 is (1 - I(eps)) / 2, since q(0) = 1 exactly). */
static void test_i_golden(void **state) {
    int64_t n, nq, nb;
    double *x = vec("x", &n), *ig = vec("I", NULL), *omi = vec("one_minus_I", NULL);
    double *xq = vec("xq", &nq), *iq = vec("I_quad", NULL);
    double *xb = vec("xbig", &nb), *omib = vec("one_minus_I_big", NULL);
    worst wa = {0, 0}, wr = {0, 0}, wq = {0, 0}, wf = {0, 0};
    for (int64_t i = 0; i < n; i++) {
        track(&wa, fabs(nep_theory_i(x[i]) - ig[i]), x[i]);
        track(&wr, rel(2 * nep_theory_p_on(0, x[i]), omi[i]), x[i]);
        /* The header's formula, assembled here from the parts, for every x: this is what
         * the closed form means, whichever way the library evaluates 1 - I. */
        double f = x[i] * (nep_struve_lm1(x[i]) * gsl_sf_bessel_K0(x[i]) +
                           nep_struve_l0(x[i]) * gsl_sf_bessel_K1(x[i]));
        track(&wf, fabs(f - ig[i]), x[i]);
    }
    for (int64_t i = 0; i < nb; i++) track(&wr, rel(2 * nep_theory_p_on(0, xb[i]), omib[i]), xb[i]);
    for (int64_t i = 0; i < nq; i++) track(&wq, fabs(nep_theory_i(xq[i]) - iq[i]), xq[i]);
    printf("I: max abs err %.2g (x = %g), against quadrature %.2g (x = %g); "
           "x [L-1 K0 + L0 K1] from the parts: %.2g (x = %g)\n",
           wa.err, wa.x, wq.err, wq.x, wf.err, wf.x);
    printf("1 - I: max rel err %.2g (x = %g)\n", wr.err, wr.x);
    assert_true(wa.err < 2e-15 && wq.err < 2e-15 && wf.err < 5e-15);
    assert_true(wr.err < 2e-14);
    assert_true(nep_theory_i(0) == 0 && nep_theory_i(INFINITY) == 1);
    assert_true(isnan(nep_theory_i(-1)) && isnan(nep_theory_i(NAN)));
    /* Rises from 0 to 1. */
    for (double v = 0.01, prev = 0; v < 30; v *= 1.1) { /* I(30) = 1 - 1e-14 */
        double i = nep_theory_i(v);
        assert_true(i > prev && i < 1);
        prev = i;
    }
    free(x), free(ig), free(omi), free(xq), free(iq), free(xb), free(omib);
}

/* --- the model ------------------------------------------------------------------------ */

static void test_p_h_golden(void **state) {
    int64_t nt, ne;
    double *t = vec("p_t", &nt), *e = vec("p_eps", &ne), *p = vec("p", NULL), *h = vec("H", NULL);
    worst wp = {0, 0}, wpr = {0, 0}, wh = {0, 0};
    for (int64_t i = 0; i < nt; i++)
        for (int64_t j = 0; j < ne; j++) {
            double pv = nep_theory_p_on(t[i], e[j]), x = e[j] / nep_theory_kept(t[i]);
            track(&wp, fabs(pv - p[i * ne + j]), x);
            /* p ~ e^-x / 2 sqrt(x): a relative error d in x = eps / q (rounding of erfc
             * and of the division, ~2e-16) is one of about x d in p. So the relative error
             * is measured in units of 1 + x: the method adds nothing to that. */
            track(&wpr, rel(pv, p[i * ne + j]) / (1 + x), x);
            track(&wh, fabs(nep_theory_entropy(t[i], e[j]) - h[i * ne + j]), x);
        }
    printf("p: max abs err %.2g (eps/q = %g), max rel err / (1 + eps/q) %.2g (eps/q = %g); "
           "H: max abs err %.2g bits (eps/q = %g), over %lld (t, eps)\n",
           wp.err, wp.x, wpr.err, wpr.x, wh.err, wh.x, (long long)(nt * ne));
    assert_true(wp.err < 1e-15 && wpr.err < 2e-15 && wh.err < 1e-14);
    free(t), free(e), free(p), free(h);
}

/* The closed form against GSL's adaptive quadrature of f_Z, on a grid wider than the
 * golden one. */
static void test_p_closed_vs_quad(void **state) {
    const double eps[] = {0, 1e-6, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5,
                          0.75, 1, 1.25, 1.5, 2, 2.5, 3};
    worst w = {0, 0};
    double worst_t = 0, worst_e = 0, max_abserr = 0;
    int n = 0;
    for (int it = 0; it <= 25; it++) {
        double t = 0.1 * it;
        for (size_t j = 0; j < sizeof eps / sizeof *eps; j++) {
            double pq, ae;
            nep_err err;
            nep_test_assert_ok(nep_theory_p_on_quad(t, eps[j], &pq, &ae, &err), &err);
            double d = fabs(pq - nep_theory_p_on(t, eps[j]));
            if (d > w.err) w.err = d, worst_t = t, worst_e = eps[j];
            if (ae > max_abserr) max_abserr = ae;
            n++;
        }
    }
    printf("p closed form vs quadrature: max |diff| %.2g at t = %g, eps = %g over %d points "
           "(largest error estimate of the quadrature %.2g)\n",
           w.err, worst_t, worst_e, n, max_abserr);
    assert_true(w.err < 1e-12);
    /* abserr may be NULL. */
    double pq;
    nep_err err;
    nep_test_assert_ok(nep_theory_p_on_quad(1, 0.5, &pq, NULL, &err), &err);
    assert_true(fabs(pq - nep_theory_p_on(1, 0.5)) < 1e-12);
}

static void test_pruned_kept(void **state) {
    /* The 68-95-99.7 rule: P[|W| < k] for W ~ N(0, 1). */
    assert_true(fabs(nep_theory_pruned(1) - 0.6826894921370859) < 1e-15);
    assert_true(fabs(nep_theory_pruned(2) - 0.9544997361036416) < 1e-15);
    assert_true(fabs(nep_theory_pruned(3) - 0.9973002039367398) < 1e-15);
    assert_true(nep_theory_pruned(0) == 0 && nep_theory_kept(0) == 1);
    double prev = 2;
    for (double t = 0; t < 8; t += 0.01) {
        double c = nep_theory_pruned(t), g = nep_theory_kept(t);
        assert_true(fabs(c + g - 1) <= 2e-16);
        assert_true(g < prev && g > 0);
        prev = g;
    }
    /* g stays accurate in relative terms where C has rounded to 1: g(10) = erfc(10/sqrt 2). */
    assert_true(nep_theory_pruned(10) == 1);
    assert_true(rel(nep_theory_kept(10), 1.523970604832105e-23) < 1e-13);
    assert_true(nep_theory_kept(40) == 0 && nep_theory_kept(INFINITY) == 0);
    assert_true(nep_theory_pruned(INFINITY) == 1);
    assert_true(isnan(nep_theory_pruned(-0.1)) && isnan(nep_theory_kept(-0.1)));
    assert_true(isnan(nep_theory_pruned(NAN)) && isnan(nep_theory_kept(NAN)));
}

/* Moments of f_Z by GSL quadrature, written here independently of p_on_quad. */
typedef struct moment_arg {
    double t;
    int power;
} moment_arg;
static double moment_integrand(double z, void *arg) {
    const moment_arg *m = arg;
    return pow(z, m->power) * nep_theory_density(z, m->t);
}

static void test_density(void **state) {
    /* GSL's quadrature is called directly here: a failure must show as its return code. */
    gsl_set_error_handler_off();
    gsl_integration_workspace *ws = gsl_integration_workspace_alloc(500);
    worst w0 = {0, 0}, w2 = {0, 0};
    for (double t = 0; t <= 3; t += 0.25) {
        double q = nep_theory_kept(t), r, e;
        moment_arg m = {t, 0};
        gsl_function f = {.function = moment_integrand, .params = &m};
        /* f_Z is even: twice the integral over (0, inf). */
        assert_int_equal(gsl_integration_qagiu(&f, 0, 1e-14, 1e-12, 500, ws, &r, &e), GSL_SUCCESS);
        track(&w0, fabs(2 * r - 1), t);
        /* Var Z = q^2: the model is Z = W' X with W' ~ N(0, q^2), X ~ N(0, 1). */
        m.power = 2;
        assert_int_equal(gsl_integration_qagiu(&f, 0, 1e-14, 1e-12, 500, ws, &r, &e), GSL_SUCCESS);
        track(&w2, rel(2 * r, q * q), t);
        for (double z = 0.01; z < 5; z *= 1.7)
            assert_true(nep_theory_density(-z, t) == nep_theory_density(z, t));
    }
    gsl_integration_workspace_free(ws);
    printf("f_Z: max |int f_Z - 1| %.2g (t = %g); max rel err of its variance %.2g (t = %g)\n",
           w0.err, w0.x, w2.err, w2.x);
    assert_true(w0.err < 1e-11 && w2.err < 1e-11);
    /* K0(1) / pi at t = 0 (q = 1). */
    assert_true(rel(nep_theory_density(1, 0), 0.42102443824070833 / M_PI) < 1e-14);
    assert_true(isinf(nep_theory_density(0, 0)) && isinf(nep_theory_density(0, 2)));
    assert_true(nep_theory_density(1e-3, 40) == 0 && nep_theory_density(1, INFINITY) == 0);
    assert_true(nep_theory_density(1e300, 0) == 0);
    assert_true(isnan(nep_theory_density(NAN, 1)) && isnan(nep_theory_density(1, -1)));
    assert_true(isnan(nep_theory_density(1, NAN)));
}

static void test_entropy(void **state) {
    assert_true(nep_entropy_bits(0) == 0 && nep_entropy_bits(1) == 0);
    assert_true(fabs(nep_entropy_bits(0.5) - 1) < 1e-15);
    /* (1/4, 3/4): 2 - (3/4) log2 3. */
    assert_true(fabs(nep_entropy_bits(0.25) - (2 - 0.75 * log2(3.0))) < 1e-15);
    assert_true(fabs(nep_entropy_bits(0.3) - nep_entropy_bits(0.7)) < 1e-15);
    /* Small p: H ~ p log2(e / p), kept in relative terms. */
    double p = 1e-20;
    assert_true(rel(nep_entropy_bits(p), p * log2(M_E / p)) < 1e-12);
    assert_true(isnan(nep_entropy_bits(-1e-9)) && isnan(nep_entropy_bits(1.5)));
    assert_true(isnan(nep_entropy_bits(NAN)));

    /* eps = 0: p = 1/2 for every finite t, so H = 1 bit. */
    for (double t = 0; t <= 50; t += 0.5) {
        assert_true(nep_theory_p_on(t, 0) == 0.5);
        assert_true(fabs(nep_theory_entropy(t, 0) - 1) < 1e-15);
    }
    /* eps > 0: H(t) strictly decreasing on the grid of Fig. 2c, and below 1 bit. */
    const double eps[] = {1e-3, 0.01, 0.1, 0.5, 1, 2, 3};
    for (size_t j = 0; j < sizeof eps / sizeof *eps; j++) {
        double prev = 1;
        for (double t = 0; t <= 2.5 + 1e-9; t += 0.05) {
            double h = nep_theory_entropy(t, eps[j]);
            if (!(h < prev && h > 0))
                fail_msg("H(%g, %g) = %.17g, not below H at the previous t (%.17g)", t, eps[j],
                         h, prev);
            prev = h;
        }
    }
}

static void test_edges(void **state) {
    /* t = 0: nothing pruned, q = 1, p = (1 - I(eps)) / 2. */
    for (double e = 0.1; e < 5; e += 0.7)
        assert_true(fabs(nep_theory_p_on(0, e) - (1 - nep_theory_i(e)) / 2) < 1e-16);
    /* t large: g -> 0, p -> 0, H -> 0. */
    assert_true(nep_theory_p_on(6, 0.1) < 1e-300); /* eps / q ~ 5e7 */
    assert_true(nep_theory_p_on(10, 0.1) == 0 && nep_theory_entropy(10, 0.1) == 0);
    assert_true(nep_theory_p_on(INFINITY, 0.1) == 0 && nep_theory_entropy(INFINITY, 0.1) == 0);
    assert_true(nep_theory_p_on(1e300, 1) == 0);
    /* Everything pruned (t = inf): Z = 0, so P[Z > 0] = 0 too. */
    assert_true(nep_theory_p_on(INFINITY, 0) == 0 && nep_theory_entropy(INFINITY, 0) == 0);
    /* The far tail keeps relative accuracy: p(2.5, 3) ~ 1e-106 is not 0. */
    assert_true(nep_theory_p_on(2.5, 3) > 1e-110 && nep_theory_p_on(2.5, 3) < 1e-100);
    assert_true(nep_theory_p_on(0, INFINITY) == 0);
    /* NaN and negative arguments. */
    assert_true(isnan(nep_theory_p_on(NAN, 1)) && isnan(nep_theory_p_on(1, NAN)));
    assert_true(isnan(nep_theory_p_on(-1, 1)) && isnan(nep_theory_p_on(1, -0.5)));
    assert_true(isnan(nep_theory_entropy(NAN, 1)) && isnan(nep_theory_entropy(1, -1)));

    double p = -1, ae = -1;
    nep_err err;
    assert_int_equal(nep_theory_p_on_quad(-1, 1, &p, &ae, &err), NEP_ERR_ARG);
    assert_int_equal(nep_theory_p_on_quad(1, NAN, &p, &ae, &err), NEP_ERR_ARG);
    assert_int_equal(nep_theory_p_on_quad(NAN, 1, &p, &ae, &err), NEP_ERR_ARG);
    assert_int_equal(nep_theory_p_on_quad(1, 1, NULL, &ae, &err), NEP_ERR_ARG);
    /* Degenerate cases agree with the closed form. */
    nep_test_assert_ok(nep_theory_p_on_quad(40, 0, &p, &ae, &err), &err);
    assert_true(p == 0.5 && ae == 0);
    nep_test_assert_ok(nep_theory_p_on_quad(40, 0.1, &p, &ae, &err), &err);
    assert_true(p == 0);
    nep_test_assert_ok(nep_theory_p_on_quad(INFINITY, 0, &p, NULL, &err), &err);
    assert_true(p == 0);
    nep_test_assert_ok(nep_theory_p_on_quad(6, 0.1, &p, &ae, &err), &err);
    assert_true(p < 1e-300);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gsl_handler),
        cmocka_unit_test(test_bessel_k_gsl),     cmocka_unit_test(test_bessel_k_table),
        cmocka_unit_test(test_struve_golden),    cmocka_unit_test(test_struve_identities),
        cmocka_unit_test(test_struve_published),
        cmocka_unit_test(test_i_golden),         cmocka_unit_test(test_p_h_golden),
        cmocka_unit_test(test_p_closed_vs_quad), cmocka_unit_test(test_pruned_kept),
        cmocka_unit_test(test_density),          cmocka_unit_test(test_entropy),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests_name("theory", tests, load_golden, free_golden);
}
