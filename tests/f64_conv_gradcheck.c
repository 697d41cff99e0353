/* Finite-difference gradient checks of Conv2d in double precision (built against the
 * -DNEP_DOUBLE library, where Conv2d runs its direct-loop reference). Loss
 * L = sum(y * r) for a fixed random r; analytic dL/dx, dL/dweight, dL/dbias from
 * backward against central differences: relative error below 1e-6. Conv is linear in
 * each argument, so a central difference has no truncation error at any step; h = 1e-3
 * keeps the rounding error (~1e-16 |L| / h) near 1e-12.
 * Also the backward contract on the reference: input gradient added to what is there,
 * parameter gradients written, or added with accumulate_grads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/rng.h"
#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "testutil.h"

_Static_assert(sizeof(nep_real) == sizeof(double), "build with -DNEP_DOUBLE");

#define H 1e-3
#define TOL 1e-6
#define B 2

typedef struct setup {
    nep_graph g;
    nep_exec ex;
    int id;
    int64_t nx, ny;
    double *x, *r;
} setup;

static void make(setup *s, nep_attrs attrs, nep_shape in, uint64_t seed) {
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    s->id = nep_test_op_graph(&s->g, NEP_OP_CONV2D, attrs, in);
    for (int64_t i = 0; i < s->g.n_values; i++) s->g.values[i] = 0.5 * nep_rng_normal(&rng);
    assert_int_equal(nep_exec_init(&s->ex, &s->g, B, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(&s->ex, NULL), NEP_OK);
    s->nx = B * nep_shape_numel(&in);
    s->ny = B * nep_shape_numel(&s->g.nodes[s->g.output].shape);
    s->x = malloc(sizeof(double) * (size_t)s->nx);
    s->r = malloc(sizeof(double) * (size_t)s->ny);
    for (int64_t i = 0; i < s->nx; i++) s->x[i] = nep_rng_normal(&rng);
    for (int64_t i = 0; i < s->ny; i++) s->r[i] = nep_rng_normal(&rng);
}

static void unmake(setup *s) {
    free(s->x);
    free(s->r);
    nep_exec_free(&s->ex);
    nep_graph_free(&s->g);
}

static void gradcheck(nep_attrs attrs, nep_shape in) {
    setup s;
    make(&s, attrs, in, 4321 + (uint64_t)attrs.kernel[0] * 7 + (uint64_t)attrs.groups);
    nep_test_loss(&s.ex, s.x, B, s.r, s.ny);
    nep_exec_backward(&s.ex, s.r);
    double *dx = malloc(sizeof(double) * (size_t)s.nx), *dp = malloc(sizeof(double) * (size_t)s.g.n_values);
    memcpy(dx, nep_exec_input_grad(&s.ex), sizeof(double) * (size_t)s.nx);
    memcpy(dp, s.g.grads, sizeof(double) * (size_t)s.g.n_values);
    nep_test_fd_check("dx", s.x, dx, s.nx, &s.ex, s.x, B, s.r, s.ny, H, TOL);
    for (int k = 0; k < s.g.n_params; k++) {
        const nep_param *p = &s.g.params[k];
        nep_test_fd_check(p->name, s.g.values + p->offset, dp + p->offset, p->numel, &s.ex, s.x, B, s.r, s.ny, H, TOL);
    }
    free(dx), free(dp);
    unmake(&s);
}

#define CONV(F, kh, kw, sh, sw, ph, pw, G, BIAS)                                             \
    (nep_attrs) {                                                                         \
        .features = F, .kernel = {kh, kw}, .stride = {sh, sw}, .pad = {ph, pw}, .groups = G, \
        .bias = BIAS                                                                      \
    }

static void test_k3s1_bias(void **s) { gradcheck(CONV(4, 3, 3, 1, 1, 1, 1, 1, true), (nep_shape){3, {3, 5, 5}}); }
static void test_k3s2(void **s) { gradcheck(CONV(3, 3, 3, 2, 2, 1, 1, 1, false), (nep_shape){3, {2, 6, 6}}); }
static void test_k1s2(void **s) { gradcheck(CONV(4, 1, 1, 2, 2, 0, 0, 1, false), (nep_shape){3, {3, 5, 5}}); }
static void test_depthwise_s1_bias(void **s) {
    gradcheck(CONV(3, 3, 3, 1, 1, 1, 1, 3, true), (nep_shape){3, {3, 5, 5}});
}
static void test_depthwise_s2(void **s) { gradcheck(CONV(4, 3, 3, 2, 2, 1, 1, 4, false), (nep_shape){3, {4, 6, 6}}); }
static void test_groups2(void **s) { gradcheck(CONV(4, 3, 3, 1, 1, 1, 1, 2, true), (nep_shape){3, {4, 4, 4}}); }
static void test_non_square(void **s) { gradcheck(CONV(2, 3, 2, 2, 1, 1, 0, 1, true), (nep_shape){3, {2, 5, 4}}); }

static bool close(double a, double b) { return fabs(a - b) <= 1e-12 * (1 + fabs(b)); }

/* The reference's backward contract (the float build's oneDNN path is checked the same
 * way in test_conv). */
static void test_accumulation(void **unused) {
    setup s;
    make(&s, CONV(4, 3, 3, 2, 2, 1, 1, 2, true), (nep_shape){3, {4, 5, 5}}, 77);
    nep_exec_forward(&s.ex, s.x, B);
    nep_exec_backward(&s.ex, s.r);
    const int64_t nv = s.g.n_values;
    double *dx = malloc(sizeof(double) * (size_t)s.nx), *dp = malloc(sizeof(double) * (size_t)nv);
    /* The executor's own input-gradient buffer (its layout), which the op adds to. */
    memcpy(dx, s.ex.dact[s.g.input], sizeof(double) * (size_t)s.nx);
    memcpy(dp, s.g.grads, sizeof(double) * (size_t)nv);
    /* dx is added to; gradients are overwritten. */
    for (int64_t i = 0; i < nv; i++) s.g.grads[i] = 1e3;
    nep_exec_node_backward(&s.ex, s.id);
    for (int64_t i = 0; i < s.nx; i++) assert_true(close(s.ex.dact[s.g.input][i], 2 * dx[i]));
    for (int k = 0; k < s.g.n_params; k++)
        for (int64_t i = s.g.params[k].offset; i < s.g.params[k].offset + s.g.params[k].numel; i++)
            assert_true(close(s.g.grads[i], dp[i]));
    /* With accumulate_grads they are added to. */
    s.ex.accumulate_grads = true;
    nep_exec_node_backward(&s.ex, s.id);
    for (int k = 0; k < s.g.n_params; k++)
        for (int64_t i = s.g.params[k].offset; i < s.g.params[k].offset + s.g.params[k].numel; i++)
            assert_true(close(s.g.grads[i], 2 * dp[i]));
    free(dx), free(dp);
    unmake(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_k3s1_bias),         cmocka_unit_test(test_k3s2),
        cmocka_unit_test(test_k1s2),              cmocka_unit_test(test_depthwise_s1_bias),
        cmocka_unit_test(test_depthwise_s2),      cmocka_unit_test(test_groups2),
        cmocka_unit_test(test_non_square),        cmocka_unit_test(test_accumulation),
    };
    return NEP_RUN_BOTH_LAYOUTS(tests, NULL, NULL);
}
