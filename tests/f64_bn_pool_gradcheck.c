/* Finite-difference gradient checks of BatchNorm2d (training and evaluation modes),
 * MaxPool2d, AvgPool2d and global average pooling, in double precision (built against
 * the -DNEP_DOUBLE library). Loss L = sum(y * r) for a fixed random r; the analytic
 * dL/dx and dL/d(trainable params) from backward are compared with central differences,
 * relative error below 1e-6 (floor 1e-3 on the denominator), as tests/f64_gradcheck.c.
 * Step h = 1e-6, except BatchNorm in training mode: there every y depends on the whole
 * channel, dx is a small difference of large terms (elements ~5e-5 occur), and the
 * loss's rounding noise, ~1e-16 |L| / h, is ~6e-9 at h = 1e-6 (measured: relative
 * 6e-6 at h = 1e-6 with the naive two-pass variance too, 5e-7 at 1e-5, 6e-8 at 1e-4);
 * h = 1e-4 keeps both that and the truncation error, O(h^2 f'''), far below 1e-6. The running
 * statistics are buffers: they get no gradient and are not checked (training-mode
 * forwards move them, which does not change y in that mode).
 * Max pooling: the inputs are distinct multiples of 0.01 (a shuffled ramp), so every
 * window's maximum leads the runner-up by far more than h and no tie is crossed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nepenthe/rng.h"
#include "testutil.h"

_Static_assert(sizeof(nep_real) == sizeof(double), "build with -DNEP_DOUBLE");

#define TOL 1e-6

static double H;

enum input_kind { NORMAL, SHUFFLED_RAMP };

static void gradcheck(nep_op_kind op, nep_attrs attrs, nep_shape in, bool training,
                      enum input_kind kind) {
    const int64_t B = 3;
    H = op == NEP_OP_BATCHNORM && training ? 1e-4 : 1e-6;
    nep_rng rng;
    nep_rng_seed(&rng, 4321 + op);
    nep_graph g;
    int id = nep_test_op_graph(&g, op, attrs, in);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = 0.5 * nep_rng_normal(&rng);
    if (op == NEP_OP_BATCHNORM) { /* weight near 1, positive running variances */
        nep_real *wv = g.values + g.params[g.nodes[id].params[0]].offset;
        nep_real *rv = g.values + g.params[g.nodes[id].params[3]].offset;
        for (int64_t c = 0; c < in.d[0]; c++) {
            wv[c] += 1;
            rv[c] = 0.5 + nep_rng_uniform(&rng);
        }
    }
    nep_exec ex;
    assert_int_equal(nep_exec_init(&ex, &g, B, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(&ex, NULL), NEP_OK);
    ex.training = training;
    const int64_t nx = B * nep_shape_numel(&in), ny = B * nep_shape_numel(&g.nodes[g.output].shape);
    double *x = malloc(sizeof(double) * (size_t)nx), *r = malloc(sizeof(double) * (size_t)ny);
    if (kind == SHUFFLED_RAMP) {
        uint32_t *perm = malloc(sizeof(uint32_t) * (size_t)nx);
        for (int64_t i = 0; i < nx; i++) perm[i] = (uint32_t)i;
        nep_rng_shuffle_u32(&rng, perm, (size_t)nx);
        for (int64_t i = 0; i < nx; i++) x[i] = 0.01 * ((double)perm[i] - (double)nx / 2);
        free(perm);
    } else {
        for (int64_t i = 0; i < nx; i++) x[i] = 1 + 2 * nep_rng_normal(&rng);
    }
    for (int64_t i = 0; i < ny; i++) r[i] = nep_rng_normal(&rng);
    nep_test_loss(&ex, x, B, r, ny);
    nep_exec_backward(&ex, r);
    double *dx = malloc(sizeof(double) * (size_t)nx), *dp = malloc(sizeof(double) * (size_t)(g.n_values + 1));
    for (int64_t i = 0; i < nx; i++) dx[i] = nep_exec_input_grad(&ex)[i];
    for (int64_t i = 0; i < g.n_values; i++) dp[i] = g.grads[i];
    nep_test_fd_check("dx", x, dx, nx, &ex, x, B, r, ny, H, TOL);
    for (int k = 0; k < g.n_params; k++) {
        const nep_param *p = &g.params[k];
        if (!(p->flags & NEP_PARAM_TRAINABLE)) continue;
        nep_test_fd_check(p->name, g.values + p->offset, dp + p->offset, p->numel, &ex, x, B, r, ny, H, TOL);
    }
    free(x), free(r), free(dx), free(dp);
    nep_exec_free(&ex);
    nep_graph_free(&g);
}

static const nep_shape img = {3, {3, 4, 5}}, img6 = {3, {2, 6, 7}};

static void test_bn_train(void **s) { gradcheck(NEP_OP_BATCHNORM, (nep_attrs){0}, img, true, NORMAL); }
static void test_bn_train_eps(void **s) {
    gradcheck(NEP_OP_BATCHNORM, (nep_attrs){.eps = 0.1, .momentum = 0.5}, img, true, NORMAL);
}
static void test_bn_eval(void **s) { gradcheck(NEP_OP_BATCHNORM, (nep_attrs){0}, img, false, NORMAL); }
static void test_maxpool_3x3s2p1(void **s) {
    gradcheck(NEP_OP_MAXPOOL, (nep_attrs){.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}}, img6,
              true, SHUFFLED_RAMP);
}
static void test_maxpool_2x2s2(void **s) {
    gradcheck(NEP_OP_MAXPOOL, (nep_attrs){.kernel = {2, 2}, .stride = {2, 2}}, img6, true, SHUFFLED_RAMP);
}
static void test_maxpool_3x2s1(void **s) { /* overlapping, non-square windows */
    gradcheck(NEP_OP_MAXPOOL, (nep_attrs){.kernel = {3, 2}, .stride = {1, 1}, .pad = {1, 1}}, img6,
              true, SHUFFLED_RAMP);
}
static void test_avgpool_2x2s2(void **s) {
    gradcheck(NEP_OP_AVGPOOL, (nep_attrs){.kernel = {2, 2}, .stride = {2, 2}}, img6, true, NORMAL);
}
static void test_avgpool_3x3s1p1(void **s) {
    gradcheck(NEP_OP_AVGPOOL, (nep_attrs){.kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1}}, img6,
              true, NORMAL);
}
static void test_global_avgpool(void **s) {
    gradcheck(NEP_OP_GLOBAL_AVGPOOL, (nep_attrs){0}, img6, true, NORMAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_train),        cmocka_unit_test(test_bn_train_eps),
        cmocka_unit_test(test_bn_eval),         cmocka_unit_test(test_maxpool_3x3s2p1),
        cmocka_unit_test(test_maxpool_2x2s2),   cmocka_unit_test(test_maxpool_3x2s1),
        cmocka_unit_test(test_avgpool_2x2s2),   cmocka_unit_test(test_avgpool_3x3s1p1),
        cmocka_unit_test(test_global_avgpool),
    };
    return NEP_RUN_BOTH_LAYOUTS(tests, NULL, NULL);
}
