/* BatchNorm2d (training and evaluation modes, running statistics) and pooling (max,
 * average, global average) against PyTorch (build/golden/bn_pool.safetensors, written by
 * tests/golden/gen_bn_pool.py: float32 inputs, float64 references computed by PyTorch
 * from those inputs). Tolerance: relative 1e-5, absolute 1e-6; measured worst, as a
 * fraction of that tolerance: BN 0.13 (y after the second training pass), 0.09 (y),
 * 0.035 (gx), 0.007 (parameter gradients), 0.005 (running statistics); pools 0 (max
 * pool y) to 0.06 (max pool gx, float sums of overlapping windows' gy).
 * NEP_TEST_VERBOSE=1 prints them.
 * Also: thread-count independence, shape-rule errors, FLOP counts. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/model.h"
#include "nepenthe/rng.h"
#include "nepenthe/safetensors.h"
#include "testutil.h"

#define RTOL 1e-5
#define ATOL 1e-6

static nep_safetensors golden;

static int load_golden(void **state) { return nep_test_read_golden("bn_pool.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

static void expect(const char *c, const char *name, const nep_real *got) {
    const nep_st_tensor *t = nep_test_case_tensor(&golden, c, name);
    double *want = malloc(sizeof(double) * (size_t)t->numel);
    assert_int_equal(nep_st_to_f64(t, want, t->numel, NULL), NEP_OK);
    char what[128];
    snprintf(what, sizeof what, "%s.%s", c, name);
    NEP_ASSERT_CLOSE(got, want, t->numel, RTOL, ATOL, what);
    free(want);
}

static const char *meta(const char *c, const char *key) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", c, key);
    const char *v = nep_st_meta_get(&golden, k);
    assert_non_null(v);
    return v;
}

static nep_shape sample_shape(const nep_st_tensor *t) {
    nep_shape s = {t->ndim - 1, {0}};
    for (int d = 1; d < t->ndim; d++) s.d[d - 1] = t->shape[d];
    return s;
}

static nep_real *param(nep_graph *g, int id, int k) {
    return g->values + g->params[g->nodes[id].params[k]].offset;
}
static nep_real *grad(nep_graph *g, int id, int k) {
    return g->grads + g->params[g->nodes[id].params[k]].offset;
}

/* ---- BatchNorm2d ------------------------------------------------------------------ */

static const char *const bn_params[] = {"weight", "bias", "running_mean", "running_var"};

static void check_bn(const char *c, bool training) {
    const nep_st_tensor *tx = nep_test_case_tensor(&golden, c, "x");
    const int64_t B = tx->shape[0];
    nep_attrs a = {.batchnorm = {.eps = atof(meta(c, "eps")), .momentum = atof(meta(c, "momentum"))}};
    nep_graph g;
    int id = nep_test_op_graph(&g, NEP_OP_BATCHNORM, a, sample_shape(tx));
    const int64_t C = tx->shape[1];
    for (int k = 0; k < 4; k++) {
        nep_real *v = nep_test_as_real(nep_test_case_tensor(&golden, c, bn_params[k]));
        memcpy(param(&g, id, k), v, sizeof(nep_real) * (size_t)C);
        free(v);
    }
    nep_real *rm0 = nep_test_as_real(nep_test_case_tensor(&golden, c, "running_mean")), *rv0 = nep_test_as_real(nep_test_case_tensor(&golden, c, "running_var"));
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, B, NULL, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(ex, NULL), NEP_OK);
    nep_exec_set_training(ex, training, NULL);
    nep_real *x = nep_test_as_real(tx), *gy = nep_test_as_real(nep_test_case_tensor(&golden, c, "gy"));
    expect(c, "y", nep_exec_forward(ex, x, B));
    nep_exec_backward(ex, gy);
    expect(c, "gx", nep_exec_input_grad(ex));
    expect(c, "gweight", grad(&g, id, 0));
    expect(c, "gbias", grad(&g, id, 1));
    expect(c, "running_mean1", param(&g, id, 2));
    expect(c, "running_var1", param(&g, id, 3));
    /* Buffers receive no gradient. */
    for (int64_t i = 0; i < C; i++) {
        assert_true(grad(&g, id, 2)[i] == 0);
        assert_true(grad(&g, id, 3)[i] == 0);
    }
    if (training) {
        nep_real *x2 = nep_test_as_real(nep_test_case_tensor(&golden, c, "x2"));
        expect(c, "y2", nep_exec_forward(ex, x2, B));
        expect(c, "running_mean2", param(&g, id, 2));
        expect(c, "running_var2", param(&g, id, 3));
        free(x2);
    } else {
        /* Evaluation leaves the running statistics exactly as they were. */
        assert_memory_equal(param(&g, id, 2), rm0, sizeof(nep_real) * (size_t)C);
        assert_memory_equal(param(&g, id, 3), rv0, sizeof(nep_real) * (size_t)C);
        /* accumulate_grads adds a second backward's gradients to the first's. */
        nep_real *gw1 = malloc(sizeof(nep_real) * (size_t)(2 * C));
        memcpy(gw1, grad(&g, id, 0), sizeof(nep_real) * (size_t)C);
        memcpy(gw1 + C, grad(&g, id, 1), sizeof(nep_real) * (size_t)C);
        nep_exec_set_accumulate(ex, true);
        nep_exec_backward(ex, gy);
        for (int64_t i = 0; i < C; i++) {
            assert_true(grad(&g, id, 0)[i] == 2 * gw1[i]);
            assert_true(grad(&g, id, 1)[i] == 2 * gw1[C + i]);
        }
        free(gw1);
    }
    free(x), free(gy), free(rm0), free(rv0);
    nep_exec_free(ex);
    nep_graph_free(&g);
}

static void test_bn_train(void **s) { check_bn("bn_train", true); }
static void test_bn_train_custom_eps_momentum(void **s) { check_bn("bn_train_custom", true); }
static void test_bn_eval(void **s) { check_bn("bn_eval", false); }

/* ---- pooling ---------------------------------------------------------------------- */

static void pair(const char *s, int v[2]) { assert_int_equal(sscanf(s, "%d,%d", &v[0], &v[1]), 2); }

static void check_pool(const char *c, nep_op_kind op) {
    const nep_st_tensor *tx = nep_test_case_tensor(&golden, c, "x");
    const int64_t B = tx->shape[0];
    nep_attrs a = {0};
    pair(meta(c, "kernel"), a.pool.kernel);
    pair(meta(c, "stride"), a.pool.stride);
    pair(meta(c, "pad"), a.pool.pad);
    nep_graph g;
    int id = nep_test_op_graph(&g, op, a, sample_shape(tx));
    const nep_st_tensor *ty = nep_test_case_tensor(&golden, c, "y");
    assert_int_equal(g.nodes[id].shape.ndim, ty->ndim - 1);
    for (int d = 1; d < ty->ndim; d++) assert_int_equal(g.nodes[id].shape.d[d - 1], ty->shape[d]);
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, B, NULL, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(ex, NULL), NEP_OK);
    nep_exec_set_training(ex, true, NULL);
    nep_real *x = nep_test_as_real(tx), *gy = nep_test_as_real(nep_test_case_tensor(&golden, c, "gy"));
    expect(c, "y", nep_exec_forward(ex, x, B));
    nep_exec_backward(ex, gy);
    expect(c, "gx", nep_exec_input_grad(ex));
    free(x), free(gy);
    nep_exec_free(ex);
    nep_graph_free(&g);
}

static void test_maxpool_3x3s2p1(void **s) { check_pool("maxpool_3x3s2p1", NEP_OP_MAXPOOL); }
static void test_maxpool_2x2s2(void **s) { check_pool("maxpool_2x2s2", NEP_OP_MAXPOOL); }
static void test_maxpool_ties(void **s) { check_pool("maxpool_ties", NEP_OP_MAXPOOL); }
static void test_maxpool_tiny(void **s) { check_pool("maxpool_tiny", NEP_OP_MAXPOOL); }
static void test_avgpool_2x2s2(void **s) { check_pool("avgpool_2x2s2", NEP_OP_AVGPOOL); }
static void test_avgpool_3x3s1p1(void **s) { check_pool("avgpool_3x3s1p1", NEP_OP_AVGPOOL); }
static void test_global_avgpool(void **s) { check_pool("global_avgpool", NEP_OP_GLOBAL_AVGPOOL); }

/* Stride 0 means stride = kernel, as PyTorch's default. */
static void test_pool_default_stride(void **s) {
    nep_graph g;
    int id = nep_test_op_graph(&g, NEP_OP_MAXPOOL, (nep_attrs){.pool = {.kernel = {2, 3}}},
                               (nep_shape){3, {2, 8, 9}});
    assert_int_equal(g.nodes[id].shape.d[1], 4);
    assert_int_equal(g.nodes[id].shape.d[2], 3);
    nep_graph_free(&g);
}

/* ---- results do not depend on the thread count ----------------------------------- */

typedef struct run_out {
    nep_real *y, *dx, *grads, *values;
} run_out;

static run_out run_threads(nep_op_kind op, nep_attrs a, nep_shape in, int64_t B, int threads) {
    omp_set_num_threads(threads);
    nep_graph g;
    nep_test_op_graph(&g, op, a, in);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = (nep_real)(1 + 0.01 * (double)(i % 7));
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, B, NULL, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(ex, NULL), NEP_OK);
    nep_exec_set_training(ex, true, NULL);
    const int64_t nx = B * nep_shape_numel(&in), ny = B * nep_shape_numel(&g.nodes[g.output].shape);
    nep_real *x = malloc(sizeof(nep_real) * (size_t)nx), *dy = malloc(sizeof(nep_real) * (size_t)ny);
    uint64_t st = 42;
    for (int64_t i = 0; i < nx; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (nep_real)((double)(st >> 11) / 9007199254740992.0 * 4 - 1.5);
    }
    for (int64_t i = 0; i < ny; i++) dy[i] = (nep_real)((double)((i * 37) % 101) / 50 - 1);
    run_out r = {malloc(sizeof(nep_real) * (size_t)ny), malloc(sizeof(nep_real) * (size_t)nx),
                 malloc(sizeof(nep_real) * (size_t)g.n_values), malloc(sizeof(nep_real) * (size_t)g.n_values)};
    memcpy(r.y, nep_exec_forward(ex, x, B), sizeof(nep_real) * (size_t)ny);
    nep_exec_backward(ex, dy);
    memcpy(r.dx, nep_exec_input_grad(ex), sizeof(nep_real) * (size_t)nx);
    memcpy(r.grads, g.grads, sizeof(nep_real) * (size_t)g.n_values);
    memcpy(r.values, g.values, sizeof(nep_real) * (size_t)g.n_values);
    free(x), free(dy);
    nep_exec_free(ex);
    nep_graph_free(&g);
    return r;
}

static void same_across_threads(nep_op_kind op, nep_attrs a, nep_shape in, int64_t B) {
    const int saved = omp_get_max_threads();
    run_out r1 = run_threads(op, a, in, B, 1), r3 = run_threads(op, a, in, B, 3);
    omp_set_num_threads(saved);
    nep_graph g;
    nep_test_op_graph(&g, op, a, in);
    const int64_t nx = B * nep_shape_numel(&in), ny = B * nep_shape_numel(&g.nodes[g.output].shape);
    assert_memory_equal(r1.y, r3.y, sizeof(nep_real) * (size_t)ny);
    assert_memory_equal(r1.dx, r3.dx, sizeof(nep_real) * (size_t)nx);
    assert_memory_equal(r1.grads, r3.grads, sizeof(nep_real) * (size_t)g.n_values);
    assert_memory_equal(r1.values, r3.values, sizeof(nep_real) * (size_t)g.n_values);
    nep_graph_free(&g);
    free(r1.y), free(r1.dx), free(r1.grads), free(r1.values);
    free(r3.y), free(r3.dx), free(r3.grads), free(r3.values);
}

static void test_deterministic_threads(void **s) {
    const nep_shape big = {3, {5, 24, 20}}; /* 8 x 2400 elements: above NEP_PAR_MIN */
    same_across_threads(NEP_OP_BATCHNORM, (nep_attrs){0}, big, 8);
    same_across_threads(NEP_OP_MAXPOOL, (nep_attrs){.pool = {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}}}, big, 8);
    same_across_threads(NEP_OP_AVGPOOL, (nep_attrs){.pool = {.kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1}}}, big, 8);
    same_across_threads(NEP_OP_GLOBAL_AVGPOOL, (nep_attrs){0}, big, 8);
}

/* ---- shape rules: clear errors naming the node -------------------------------------- */

static nep_status build(nep_op_kind op, nep_attrs a, nep_shape in, int64_t pc, unsigned rstat_flags,
                        nep_err *err) {
    nep_graph g;
    nep_graph_init(&g);
    int x = nep_graph_input(&g, "input", in);
    int id = nep_graph_add1(&g, op, "layer1.bn1", x, a);
    if (op == NEP_OP_BATCHNORM) {
        nep_graph_add_param(&g, id, "weight", NEP_PARAM_TRAINABLE, 1, (int64_t[]){pc});
        nep_graph_add_param(&g, id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){pc});
        nep_graph_add_param(&g, id, "running_mean", rstat_flags, 1, (int64_t[]){pc});
        nep_graph_add_param(&g, id, "running_var", rstat_flags, 1, (int64_t[]){pc});
    }
    nep_status st = nep_graph_finalize(&g, err);
    nep_graph_free(&g);
    return st;
}

static void expect_fail(nep_status want, nep_op_kind op, nep_attrs a, nep_shape in, int64_t pc,
                        unsigned rstat_flags, const char *needle) {
    nep_err err = {0};
    assert_int_equal(build(op, a, in, pc, rstat_flags, &err), want);
    if (!strstr(err.msg, "layer1.bn1") || !strstr(err.msg, needle))
        fprintf(stderr, "unexpected message: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "layer1.bn1"));
    assert_non_null(strstr(err.msg, needle));
}

static void ignore_probe(void *ctx, const nep_graph *g, int node, const nep_real *z,
                         int64_t batch, bool channels_last) {}

/* One training step of g[0] with a probe (so no node applies the rectifier after it) and
 * of g[1] (a copy) without: logits, gradients and updated values must be bit-identical.
 * Returns how many nodes of g[1] applied a rectifier as their epilogue. */
static int step_with_and_without_epilogue(nep_graph g[2], const nep_real *x, int64_t B,
                                          const nep_real *dy) {
    const int64_t K = nep_shape_numel(&g[0].nodes[g[0].output].shape);
    nep_real *logits = malloc(sizeof(nep_real) * (size_t)(2 * B * K));
    int fused = 0;
    for (int run = 0; run < 2; run++) {
        nep_rng rng;
        nep_rng_seed(&rng, 1);
        nep_exec *ex;
        assert_int_equal(nep_exec_new(&ex, &g[run], B, NULL, NULL), NEP_OK);
        nep_exec_set_training(ex, true, &rng);
        if (run == 0) nep_exec_set_probe(ex, ignore_probe, NULL);
        for (int i = 0; i < g[run].n_nodes; i++) fused += run == 1 && nep_exec_fused_rectifier(ex, i) >= 0;
        memcpy(logits + run * B * K, nep_exec_forward(ex, x, B), sizeof(nep_real) * (size_t)(B * K));
        nep_exec_backward(ex, dy);
        nep_exec_free(ex);
    }
    assert_memory_equal(logits, logits + B * K, sizeof(nep_real) * (size_t)(B * K));
    assert_memory_equal(g[0].grads, g[1].grads, sizeof(nep_real) * (size_t)g[0].n_values);
    assert_memory_equal(g[0].values, g[1].values, sizeof(nep_real) * (size_t)g[0].n_values);
    free(logits);
    return fused;
}

/* A BatchNorm or Add whose only reader is a ReLU or ReLU6 writes the rectifier's output
 * itself unless a probe needs the pre-activation: one training step of ResNet-20 (ReLU
 * after BatchNorm and after Add) and MobileNetV2 (ReLU6) gives bit-identical logits,
 * gradients and running statistics either way. */
static void test_bn_rectifier_epilogue(void **s) {
    const char *models[] = {"resnet20", "mobilenetv2"};
    for (int m = 0; m < 2; m++) {
        nep_model_spec spec = nep_model_spec_default();
        snprintf(spec.name, sizeof spec.name, "%s", models[m]);
        spec.in_c = 3, spec.in_h = spec.in_w = 8, spec.width_mult = 0.75;
        nep_graph g[2];
        nep_rng rng;
        const int64_t B = 4, nx = B * 3 * 8 * 8;
        nep_real *x = malloc(sizeof(nep_real) * (size_t)nx), dy[4 * 10];
        nep_rng_seed(&rng, 5);
        for (int64_t i = 0; i < nx; i++) x[i] = (nep_real)nep_rng_normal(&rng);
        for (int i = 0; i < 40; i++) dy[i] = (nep_real)nep_rng_normal(&rng);
        for (int run = 0; run < 2; run++) {
            nep_rng_seed(&rng, 1);
            assert_int_equal(nep_model_build(&spec, &g[run], &rng, NULL), NEP_OK);
        }
        assert_true(step_with_and_without_epilogue(g, x, B, dy) >= 10); /* it is exercised */
        nep_graph_free(&g[0]);
        nep_graph_free(&g[1]);
        free(x);
    }
}

/* What collapse leaves: a conv, a depthwise conv, an Affine and a Linear each read only by
 * a ReLU or ReLU6, which they apply themselves (the convs as a oneDNN post-op). */
static void test_matmul_rectifier_epilogue(void **s) {
    nep_graph g[2];
    nep_graph_init(&g[0]);
    const int x = nep_graph_input(&g[0], "input", (nep_shape){3, {3, 8, 8}});
    const int c1 = nep_graph_add1(&g[0], NEP_OP_CONV2D, "c1", x,
                                  (nep_attrs){.conv = {.features = 8, .bias = true, .kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1}}});
    const int r1 = nep_graph_add1(&g[0], NEP_OP_RELU, "r1", c1, (nep_attrs){0});
    const int c2 = nep_graph_add1(&g[0], NEP_OP_CONV2D, "c2", r1,
                                  (nep_attrs){.conv = {.features = 8, .kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}, .groups = 8}});
    const int r2 = nep_graph_add1(&g[0], NEP_OP_RELU6, "r2", c2, (nep_attrs){0});
    const int a = nep_graph_add1(&g[0], NEP_OP_AFFINE, "a", r2, (nep_attrs){0});
    const int r3 = nep_graph_add1(&g[0], NEP_OP_RELU, "r3", a, (nep_attrs){0});
    const int f = nep_graph_add1(&g[0], NEP_OP_FLATTEN, "flatten", r3, (nep_attrs){0});
    const int l1 = nep_graph_add1(&g[0], NEP_OP_LINEAR, "l1", f, (nep_attrs){.linear = {.features = 16, .bias = true}});
    const int r4 = nep_graph_add1(&g[0], NEP_OP_RELU6, "r4", l1, (nep_attrs){0});
    const int l2 = nep_graph_add1(&g[0], NEP_OP_LINEAR, "l2", r4, (nep_attrs){.linear = {.features = 10}});
    nep_graph_add_param(&g[0], c1, "weight", 3, 4, (int64_t[]){8, 3, 3, 3});
    nep_graph_add_param(&g[0], c1, "bias", 1, 1, (int64_t[]){8});
    nep_graph_add_param(&g[0], c2, "weight", 3, 4, (int64_t[]){8, 1, 3, 3});
    nep_graph_add_param(&g[0], a, "weight", 1, 1, (int64_t[]){8});
    nep_graph_add_param(&g[0], a, "bias", 1, 1, (int64_t[]){8});
    nep_graph_add_param(&g[0], l1, "weight", 3, 2, (int64_t[]){16, 8 * 4 * 4});
    nep_graph_add_param(&g[0], l1, "bias", 1, 1, (int64_t[]){16});
    nep_graph_add_param(&g[0], l2, "weight", 3, 2, (int64_t[]){10, 16});
    assert_int_equal(nep_graph_finalize(&g[0], NULL), NEP_OK);
    nep_rng rng;
    nep_rng_seed(&rng, 6);
    /* wide enough that some outputs pass 6 */
    for (int64_t i = 0; i < g[0].n_values; i++) g[0].values[i] = (nep_real)(1.5 * nep_rng_normal(&rng));
    assert_int_equal(nep_graph_copy(&g[0], &g[1], NULL), NEP_OK);
    const int64_t B = 4, nx = B * 3 * 8 * 8;
    nep_real *xs = malloc(sizeof(nep_real) * (size_t)nx), dy[4 * 10];
    for (int64_t i = 0; i < nx; i++) xs[i] = (nep_real)nep_rng_normal(&rng);
    for (int i = 0; i < 40; i++) dy[i] = (nep_real)nep_rng_normal(&rng);
    assert_int_equal(step_with_and_without_epilogue(g, xs, B, dy), 4);
    nep_graph_free(&g[0]);
    nep_graph_free(&g[1]);
    free(xs);
}

static void test_infer_errors(void **s) {
    const nep_shape img = {3, {4, 6, 6}}, vec = {1, {4}};
    const nep_attrs k3 = {.pool = {.kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1}}};
    expect_fail(NEP_ERR_SHAPE, NEP_OP_BATCHNORM, (nep_attrs){0}, vec, 4, 0, "wants 3");
    expect_fail(NEP_ERR_SHAPE, NEP_OP_BATCHNORM, (nep_attrs){0}, img, 5, 0, "layer1.bn1.weight");
    expect_fail(NEP_ERR_ARG, NEP_OP_BATCHNORM, (nep_attrs){0}, img, 4, NEP_PARAM_TRAINABLE,
                "layer1.bn1.running_mean");
    expect_fail(NEP_ERR_ARG, NEP_OP_BATCHNORM, (nep_attrs){.batchnorm = {.eps = -1}}, img, 4, 0, "eps");
    expect_fail(NEP_ERR_ARG, NEP_OP_BATCHNORM, (nep_attrs){.batchnorm = {.momentum = 1.5}}, img, 4, 0, "momentum");
    expect_fail(NEP_ERR_SHAPE, NEP_OP_MAXPOOL, k3, vec, 0, 0, "MaxPool2d");
    expect_fail(NEP_ERR_ARG, NEP_OP_MAXPOOL, (nep_attrs){.pool = {.kernel = {0, 3}}}, img, 0, 0, "kernel");
    expect_fail(NEP_ERR_ARG, NEP_OP_AVGPOOL, (nep_attrs){.pool = {.kernel = {3, 3}, .pad = {2, 1}}}, img, 0, 0,
                "padding");
    expect_fail(NEP_ERR_ARG, NEP_OP_AVGPOOL, (nep_attrs){.pool = {.kernel = {3, 3}, .stride = {-1, 1}}}, img, 0,
                0, "stride");
    expect_fail(NEP_ERR_SHAPE, NEP_OP_MAXPOOL, (nep_attrs){.pool = {.kernel = {7, 3}}}, img, 0, 0, "larger");
    expect_fail(NEP_ERR_SHAPE, NEP_OP_GLOBAL_AVGPOOL, (nep_attrs){0}, vec, 0, 0, "AdaptiveAvgPool2d");
    /* The same graphs build when the inputs are right. */
    assert_int_equal(build(NEP_OP_BATCHNORM, (nep_attrs){0}, img, 4, 0, NULL), NEP_OK);
    assert_int_equal(build(NEP_OP_MAXPOOL, k3, img, 0, 0, NULL), NEP_OK);
}

static void test_flops(void **s) {
    const nep_shape img = {3, {4, 8, 8}};
    struct { nep_op_kind op; nep_attrs a; int64_t want; } cases[] = {
        {NEP_OP_BATCHNORM, {{0}}, 2 * 4 * 8 * 8},
        {NEP_OP_MAXPOOL, {.pool = {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}}}, 4 * 4 * 4 * 9},
        {NEP_OP_AVGPOOL, {.pool = {.kernel = {2, 2}, .stride = {2, 2}}}, 4 * 4 * 4 * 4},
        {NEP_OP_GLOBAL_AVGPOOL, {{0}}, 4 * 8 * 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nep_graph g;
        int id = nep_test_op_graph(&g, cases[i].op, cases[i].a, img);
        assert_int_equal(nep_node_flops(&g, &g.nodes[id]), cases[i].want);
        nep_graph_free(&g);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_train),
        cmocka_unit_test(test_bn_train_custom_eps_momentum),
        cmocka_unit_test(test_bn_eval),
        cmocka_unit_test(test_maxpool_3x3s2p1),
        cmocka_unit_test(test_maxpool_2x2s2),
        cmocka_unit_test(test_maxpool_ties),
        cmocka_unit_test(test_maxpool_tiny),
        cmocka_unit_test(test_avgpool_2x2s2),
        cmocka_unit_test(test_avgpool_3x3s1p1),
        cmocka_unit_test(test_global_avgpool),
        cmocka_unit_test(test_pool_default_stride),
        cmocka_unit_test(test_deterministic_threads),
        cmocka_unit_test(test_bn_rectifier_epilogue),
        cmocka_unit_test(test_matmul_rectifier_epilogue),
        cmocka_unit_test(test_infer_errors),
        cmocka_unit_test(test_flops),
    };
    return NEP_RUN_BOTH_LAYOUTS(tests, load_golden, free_golden);
}
