/* The cpu backend's GELU (erf and tanh forms), SiLU and Tanh kernels, which run on oneDNN's eltwise primitives
 * (backend/cpu/dnnl_eltwise.c), against float64 formulas over z in [-12, 12]: forward,
 * backward written (oneDNN) and added to what dz holds (the kernels' own loop), at
 * changing batch sizes (the cache's two plans replaced and reused), the plans freed by
 * free_cache (AddressSanitizer's leak check). Tolerance: |got - want| <= TOL max(1, |want|),
 * a few float32 roundings (TOL_GELU_TANH for the tanh form's backward); measured (oneDNN 2.6, SSE41 to AVX-512): worst 4.7e-7 for
 * GELU, 8.2e-7 for SiLU (at z about 2 and 5.6), as the old libm loops. The relative
 * error is larger where the value vanishes, from rounding 1 + erf(z) in float32, for
 * libm and oneDNN alike. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/cpu/kernels.h"
#include "testutil.h"

#define TOL 1e-6
/* The tanh form's derivative sums (1 + t) / 2 and z (1 - t^2) k (1 + 3 a z^2) / 2, the
 * second up to 2.6 |1 - t^2| where t^2 is near 1: measured worst 1.34e-6 (oneDNN) and
 * 1.11e-6 (the loop), every ISA. */
#define TOL_GELU_TANH 2e-6
enum { PER = 1000 }; /* elements per sample */

static double gelu(double z) { return 0.5 * z * (1 + erf(z / sqrt(2))); }
static double gelu_slope(double z) { return 0.5 * (1 + erf(z / sqrt(2))) + z * exp(-0.5 * z * z) / sqrt(2 * M_PI); }
/* the tanh form: k = sqrt(2 / pi), a = 0.044715 */
static double gelu_tanh_t(double z) { return tanh(sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)); }
static double gelu_tanh(double z) { return 0.5 * z * (1 + gelu_tanh_t(z)); }
static double gelu_tanh_slope(double z) {
    const double t = gelu_tanh_t(z);
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * sqrt(2 / M_PI) * (1 + 3 * 0.044715 * z * z);
}
static double tanh_slope(double z) { return 1 - tanh(z) * tanh(z); }
static double silu(double z) { return z / (1 + exp(-z)); }
static double silu_slope(double z) {
    const double s = 1 / (1 + exp(-z));
    return s * (1 + z * (1 - s));
}

/* Worst |got - want| / (tol max(1, |want|)). */
static double worst(const nep_real *got, const double *want, int64_t n, double tol) {
    double w = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs(got[i] - want[i]) / (tol * fmax(1, fabs(want[i])));
        if (e > w) w = e;
    }
    return w;
}

static void check(const char *name, nep_op_kind op, nep_attrs a, const nep_kernel *k, double (*f)(double),
                  double (*df)(double), double tol) {
    nep_graph g;
    nep_graph_init(&g);
    const int id = nep_test_op_graph(&g, op, a, (nep_shape){1, {PER}});
    const int64_t batches[] = {64, 7, 64, 3, 7};
    const int64_t most = 64 * PER;
    nep_real *z = malloc(most * sizeof *z), *y = malloc(most * sizeof *y);
    nep_real *dy = malloc(most * sizeof *dy), *dz = malloc(most * sizeof *dz);
    double *want_y = malloc(most * sizeof *want_y), *want_dz = malloc(most * sizeof *want_dz);
    assert_non_null(z && y && dy && dz && want_y && want_dz);
    void *cache = NULL;
    for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
        const int64_t n = batches[b] * PER;
        for (int64_t i = 0; i < n; i++) {
            z[i] = (nep_real)(-12 + 24.0 * i / (n - 1));
            dy[i] = (nep_real)(0.5 + (i % 7) * 0.25);
        }
        nep_call c = {.g = &g, .n = &g.nodes[id], .batch = batches[b], .training = true,
                      .x = {z}, .y = y, .dy = dy, .dx = {dz}, .cache = &cache};
        k->forward(&c);
        for (int64_t i = 0; i < n; i++) want_y[i] = f(z[i]), want_dz[i] = dy[i] * df(z[i]);
        const double wf = worst(y, want_y, n, tol);
        for (int64_t i = 0; i < n; i++) dz[i] = NAN; /* overwritten: may hold anything */
        k->backward(&c);
        const double wb = worst(dz, want_dz, n, tol);
        c.dx_add[0] = true;
        for (int64_t i = 0; i < n; i++) dz[i] = 1, want_dz[i] += 1;
        k->backward(&c);
        const double wa = worst(dz, want_dz, n, tol);
        printf("%s batch %lld: worst forward %.3f, backward %.3f, added %.3f of the tolerance\n",
               name, (long long)batches[b], wf, wb, wa);
        assert_true(wf <= 1 && wb <= 1 && wa <= 1);
    }
    if (cache) k->free_cache(cache);
    free(z), free(y), free(dy), free(dz), free(want_y), free(want_dz);
    nep_graph_free(&g);
}

static void test_gelu(void **s) { check("GELU", NEP_OP_GELU, (nep_attrs){0}, &nep_cpu_gelu, gelu, gelu_slope, TOL); }
static void test_gelu_tanh(void **s) {
    check("GELU tanh", NEP_OP_GELU, (nep_attrs){.gelu = {.tanh = true}}, &nep_cpu_gelu, gelu_tanh, gelu_tanh_slope, TOL_GELU_TANH);
}
static void test_silu(void **s) { check("SiLU", NEP_OP_SILU, (nep_attrs){0}, &nep_cpu_silu, silu, silu_slope, TOL); }
static void test_tanh(void **s) { check("Tanh", NEP_OP_TANH, (nep_attrs){0}, &nep_cpu_tanh, tanh, tanh_slope, TOL); }

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gelu), cmocka_unit_test(test_gelu_tanh),
                                       cmocka_unit_test(test_silu), cmocka_unit_test(test_tanh)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
