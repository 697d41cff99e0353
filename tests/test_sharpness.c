/* Sharpness (include/nepenthe/sharpness.h): power iteration on a known quadratic, and
 * the finite-difference Hessian-vector product and top eigenvalue of a small ReLU
 * network against PyTorch's dense float64 Hessian (tests/golden/gen_sharpness.py).
 * Built twice: in float32 (the default step's error, measured) and as
 * tests/f64_sharpness.c in float64 (the method itself, to 1e-3 of the eigenvalue). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/model.h"
#include "nepenthe/sharpness.h"
#include "testutil.h"

#ifdef NEP_DOUBLE
#define STEP 1e-5     /* truncation 1e-10, rounding 1e-16 / 1e-5: both far below 1e-3 */
#define HV_RTOL 1e-6
#define TOP_RTOL 1e-5
#else
#define STEP 1e-3     /* the default */
#define HV_RTOL 1e-3     /* measured 7.7e-5 */
#define TOP_RTOL 1e-3    /* measured 1.7e-6 */
#endif

static bool verbose(void) { return getenv("NEP_TEST_VERBOSE") != NULL; }

/* H = Q diag(lambda) Q^T, Q a product of three random Householder reflections. */
enum { QN = 12 };
typedef struct quadratic {
    double q[QN][QN];
    double lambda[QN];
} quadratic;

static nep_status quadratic_hvp(void *ctx, const double *v, double *hv, nep_err *err) {
    const quadratic *h = ctx;
    double t[QN];
    for (int j = 0; j < QN; j++) { /* Q^T v, scaled */
        t[j] = 0;
        for (int i = 0; i < QN; i++) t[j] += h->q[i][j] * v[i];
        t[j] *= h->lambda[j];
    }
    for (int i = 0; i < QN; i++) {
        hv[i] = 0;
        for (int j = 0; j < QN; j++) hv[i] += h->q[i][j] * t[j];
    }
    return NEP_OK;
}

static void test_known_quadratic(void **s) {
    static const double lambda[QN] = {5, 3, 2.5, 1, 0.5, 0.1, 0, -0.2, -1, -1.5, -2, -2.5};
    quadratic h;
    memcpy(h.lambda, lambda, sizeof lambda);
    nep_rng rng;
    nep_rng_seed(&rng, 11);
    for (int i = 0; i < QN; i++)
        for (int j = 0; j < QN; j++) h.q[i][j] = i == j;
    for (int r = 0; r < 3; r++) { /* Q = Q (I - 2 u u^T) */
        double u[QN], n = 0;
        for (int i = 0; i < QN; i++) {
            u[i] = nep_rng_normal(&rng);
            n += u[i] * u[i];
        }
        for (int i = 0; i < QN; i++) u[i] /= sqrt(n);
        for (int i = 0; i < QN; i++) {
            double d = 0;
            for (int j = 0; j < QN; j++) d += h.q[i][j] * u[j];
            for (int j = 0; j < QN; j++) h.q[i][j] -= 2 * d * u[j];
        }
    }
    nep_power_result res;
    nep_err err;
    nep_test_assert_ok(nep_power_iteration(quadratic_hvp, &h, QN, &rng, &(nep_power_opts){500, 1e-13, NULL, NULL}, &res, &err),
                       &err);
    if (verbose()) fprintf(stderr, "quadratic: lambda %.12g after %d products, residual %.3g\n", res.lambda,
                           res.iters, res.residual);
    assert_true(res.converged);
    assert_true(fabs(res.lambda - 5) <= 1e-6 * 5);
    /* the largest magnitude wins: flip the signs and -5 is found */
    for (int i = 0; i < QN; i++) h.lambda[i] = -lambda[i];
    nep_test_assert_ok(nep_power_iteration(quadratic_hvp, &h, QN, &rng, &(nep_power_opts){500, 1e-13, NULL, NULL}, &res, &err),
                       &err);
    assert_true(fabs(res.lambda + 5) <= 1e-6 * 5);
}

/* ---- the network -------------------------------------------------------------------- */

static nep_safetensors golden;
static int load_golden(void **state) { return nep_test_read_golden("sharpness.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

typedef struct net {
    nep_graph g;
    nep_dataset d;
    nep_normalize norm;
    nep_split split;
} net;

static void net_init(net *n) {
    nep_model_spec spec = nep_model_spec_default();
    spec.in_c = 1, spec.in_h = 2, spec.in_w = 5, spec.classes = 3;
    spec.n_hidden = 2, spec.hidden[0] = 8, spec.hidden[1] = 6;
    nep_err err;
    nep_test_assert_ok(nep_model_build(&spec, &n->g, NULL, &err), &err);
    for (int i = 0; i < n->g.n_params; i++) {
        const nep_param *p = &n->g.params[i];
        double *w = nep_test_as_f64(nep_test_tensor(&golden, "init.", p->name));
        for (int64_t k = 0; k < p->numel; k++) n->g.values[p->offset + k] = (nep_real)w[k];
        free(w);
    }
    const nep_st_tensor *px = nep_test_tensor(&golden, "", "pixels"), *y = nep_test_tensor(&golden, "", "labels");
    n->d = (nep_dataset){.n = 16, .c = 1, .h = 2, .w = 5, .classes = 3, .images = malloc(160), .labels = malloc(16)};
    memcpy(n->d.images, px->data, 160);
    memcpy(n->d.labels, y->data, 16);
    n->norm = (nep_normalize){.c = 1, .mean = {0.5f}, .std = {0.25f}};
    n->split = (nep_split){.images = &n->d, .norm = &n->norm};
}

static void net_free(net *n) {
    nep_graph_free(&n->g);
    nep_dataset_free(&n->d);
}

/* Batches of 6, 6 and 4 rows: the loss is the mean over all 16 all the same. */
static nep_sharpness_opts opts(void) {
    nep_sharpness_opts o = nep_sharpness_defaults();
    o.batch = 6, o.batches = 0, o.step = STEP;
    o.power = (nep_power_opts){400, 1e-10, NULL, NULL};
    return o;
}

static void test_hessian_vector(void **s) {
    net n;
    net_init(&n);
    nep_hessian h;
    nep_err err;
    const nep_sharpness_opts o = opts();
    nep_test_assert_ok(nep_hessian_init(&h, &n.g, &n.split, &o, NULL, &err), &err);
    double *v = malloc(sizeof *v * (size_t)h.n), *hv = malloc(sizeof *hv * (size_t)h.n),
           *want = malloc(sizeof *want * (size_t)h.n);
    int64_t i = 0;
    for (int p = 0; p < n.g.n_params; p++) { /* the variables are every entry, in parameter order */
        double *a = nep_test_as_f64(nep_test_tensor(&golden, "v.", n.g.params[p].name));
        double *b = nep_test_as_f64(nep_test_tensor(&golden, "hv.", n.g.params[p].name));
        for (int64_t k = 0; k < n.g.params[p].numel; k++, i++) v[i] = a[k], want[i] = b[k];
        free(a), free(b);
    }
    assert_int_equal(i, h.n);
    nep_test_assert_ok(nep_hessian_vector(&h, v, hv, &err), &err);
    double e2 = 0, w2 = 0;
    for (i = 0; i < h.n; i++) e2 += (hv[i] - want[i]) * (hv[i] - want[i]), w2 += want[i] * want[i];
    const double rel = sqrt(e2 / w2);
    if (verbose()) fprintf(stderr, "H v at step %g: relative error %.3g against double backward\n", STEP, rel);
    assert_true(rel <= HV_RTOL);
    /* the weights are restored exactly */
    for (i = 0; i < h.n; i++) assert_true(n.g.values[h.index[i]] == (nep_real)h.w0[i]);
    free(v), free(hv), free(want);
    nep_hessian_free(&h);
    net_free(&n);
}

static void test_top_eigenvalue(void **s) {
    net n;
    net_init(&n);
    nep_power_result res;
    nep_err err;
    const nep_sharpness_opts o = opts();
    nep_test_assert_ok(nep_sharpness(&n.g, &n.split, &o, &res, NULL, &err), &err);
    double *top = nep_test_as_f64(nep_test_tensor(&golden, "", "top"));
    if (verbose())
        fprintf(stderr, "top eigenvalue %.9g (PyTorch's dense Hessian: %.9g) after %d products, residual %.3g\n",
                res.lambda, top[0], res.iters, res.residual);
    assert_true(fabs(res.lambda - top[0]) <= TOP_RTOL * fabs(top[0]));
    free(top);
    net_free(&n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_quadratic),
        cmocka_unit_test(test_hessian_vector),
        cmocka_unit_test(test_top_eigenvalue),
    };
    return cmocka_run_group_tests(tests, load_golden, free_golden);
}
