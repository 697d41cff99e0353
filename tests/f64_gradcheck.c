/* Finite-difference gradient checks of every op, in double precision (this file is
 * built against the -DNEP_DOUBLE library). Loss L = sum(y * r) for a fixed random r;
 * analytic dL/dx and dL/dparams from backward are compared with central differences
 * (h = 1e-6): relative error below 1e-6 (the differences' truncation error is
 * O(h^2 * f''') ~ 1e-12, rounding ~1e-16/h ~ 1e-10). Inputs avoid the kinks
 * (|z| and |z - 6| >= 0.05) where the derivative is not defined. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nepenthe/rng.h"
#include "nepenthe/train.h"
#include "testutil.h"

_Static_assert(sizeof(nep_real) == sizeof(double), "build with -DNEP_DOUBLE");

#define H 1e-6
#define TOL 1e-6

static double kink_free(nep_rng *r) {
    for (;;) {
        double z = 4 * nep_rng_normal(r);
        if (fabs(z) >= 0.05 && fabs(z - 6) >= 0.05) return z;
    }
}

static void gradcheck(nep_op_kind op, nep_attrs attrs, nep_shape in) {
    const int64_t B = 3;
    nep_rng rng;
    nep_rng_seed(&rng, 1234 + op);
    nep_graph g;
    nep_test_op_graph(&g, op, attrs, in);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = 0.5 * nep_rng_normal(&rng);
    nep_exec ex;
    assert_int_equal(nep_exec_init(&ex, &g, B, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(&ex, NULL), NEP_OK);
    const int64_t nx = B * nep_shape_numel(&in), ny = B * nep_shape_numel(&g.nodes[g.output].shape);
    double *x = malloc(sizeof(double) * (size_t)nx), *r = malloc(sizeof(double) * (size_t)ny);
    for (int64_t i = 0; i < nx; i++) x[i] = kink_free(&rng);
    for (int64_t i = 0; i < ny; i++) r[i] = nep_rng_normal(&rng);
    nep_test_loss(&ex, x, B, r, ny);
    nep_exec_backward(&ex, r);
    double *dx = malloc(sizeof(double) * (size_t)nx), *dp = malloc(sizeof(double) * (size_t)(g.n_values + 1));
    for (int64_t i = 0; i < nx; i++) dx[i] = nep_exec_input_grad(&ex)[i];
    for (int64_t i = 0; i < g.n_values; i++) dp[i] = g.grads[i];
    nep_test_fd_check("dx", x, dx, nx, &ex, x, B, r, ny, H, TOL);
    for (int k = 0; k < g.n_params; k++) {
        const nep_param *p = &g.params[k];
        nep_test_fd_check(p->name, g.values + p->offset, dp + p->offset, p->numel, &ex, x, B, r, ny, H, TOL);
    }
    free(x), free(r), free(dx), free(dp);
    nep_exec_free(&ex);
    nep_graph_free(&g);
}

static const nep_shape vec = {1, {7}}, img = {3, {3, 2, 2}};

static void test_linear(void **s) { gradcheck(NEP_OP_LINEAR, (nep_attrs){.features = 5, .bias = true}, vec); }
static void test_linear_nobias(void **s) { gradcheck(NEP_OP_LINEAR, (nep_attrs){.features = 4}, vec); }
static void test_relu(void **s) { gradcheck(NEP_OP_RELU, (nep_attrs){0}, img); }
static void test_leaky_relu(void **s) { gradcheck(NEP_OP_LEAKY_RELU, (nep_attrs){.slope = 0.2}, img); }
static void test_prelu(void **s) { gradcheck(NEP_OP_PRELU, (nep_attrs){0}, img); }
static void test_prelu_vec(void **s) { gradcheck(NEP_OP_PRELU, (nep_attrs){0}, vec); }
static void test_relu6(void **s) { gradcheck(NEP_OP_RELU6, (nep_attrs){0}, img); }
static void test_gelu(void **s) { gradcheck(NEP_OP_GELU, (nep_attrs){0}, img); }
static void test_silu(void **s) { gradcheck(NEP_OP_SILU, (nep_attrs){0}, img); }
static void test_identity(void **s) { gradcheck(NEP_OP_IDENTITY, (nep_attrs){0}, img); }
static void test_flatten(void **s) { gradcheck(NEP_OP_FLATTEN, (nep_attrs){0}, img); }
static void test_add(void **s) { gradcheck(NEP_OP_ADD, (nep_attrs){0}, img); }
static void test_affine(void **s) { gradcheck(NEP_OP_AFFINE, (nep_attrs){0}, img); }
static void test_affine_vec(void **s) { gradcheck(NEP_OP_AFFINE, (nep_attrs){0}, vec); }
/* Evaluation mode: dropout is the identity (training-mode masks are random and are
 * checked against their own mask in test_graph). */
static void test_dropout_eval(void **s) { gradcheck(NEP_OP_DROPOUT, (nep_attrs){.p = 0.3}, img); }

/* The loss: d(mean cross-entropy)/dlogits. */
static void test_cross_entropy(void **s) {
    enum { B = 4, K = 5 };
    nep_rng rng;
    nep_rng_seed(&rng, 99);
    double z[B * K], d[B * K];
    int32_t t[B] = {0, 3, 4, 1};
    for (int i = 0; i < B * K; i++) z[i] = 3 * nep_rng_normal(&rng);
    nep_xent(z, t, B, K, d, NULL);
    for (int i = 0; i < B * K; i++) {
        double keep = z[i];
        z[i] = keep + H;
        double lp = nep_xent(z, t, B, K, NULL, NULL);
        z[i] = keep - H;
        double lm = nep_xent(z, t, B, K, NULL, NULL);
        z[i] = keep;
        double num = (lp - lm) / (2 * H);
        assert_true(fabs(num - d[i]) / fmax(1e-3, fabs(num) + fabs(d[i])) <= TOL);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),   cmocka_unit_test(test_linear_nobias),
        cmocka_unit_test(test_relu),     cmocka_unit_test(test_leaky_relu),
        cmocka_unit_test(test_prelu),    cmocka_unit_test(test_prelu_vec),
        cmocka_unit_test(test_relu6),    cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_silu),     cmocka_unit_test(test_identity),
        cmocka_unit_test(test_flatten),  cmocka_unit_test(test_add),
        cmocka_unit_test(test_affine),   cmocka_unit_test(test_affine_vec),
        cmocka_unit_test(test_dropout_eval), cmocka_unit_test(test_cross_entropy),
    };
    return NEP_RUN_BOTH_LAYOUTS(tests, NULL, NULL);
}
