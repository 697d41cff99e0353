/* Finite-difference gradient checks of every op, in double precision (built against the
 * -DNEP_DOUBLE library, where Conv2d runs the reference loops): one table of cases, one
 * driver. Loss L = sum(y * r) for a fixed random r; the analytic dL/dx and dL/d(trainable
 * parameters) from backward against central differences, relative error below 1e-6
 * (floor 1e-3 on the denominator). Running statistics are buffers: no gradient, not
 * checked (training-mode forwards move them, which does not change y in that mode).
 *
 * Steps and inputs, per case:
 * - h = 1e-6 by default: truncation O(h^2 f''') ~ 1e-12, rounding ~1e-16 |L| / h ~ 1e-10.
 *   Rectifier inputs avoid the kinks (|z| and |z - 6| >= 0.05), where the derivative is
 *   not defined.
 * - BatchNorm in training mode, h = 1e-4: every y depends on the whole channel, dx is a
 *   small difference of large terms (elements ~5e-5 occur), and the loss's rounding
 *   noise is ~6e-9 at h = 1e-6 (measured: relative 6e-6 at 1e-6 with a two-pass variance
 *   too, 5e-7 at 1e-5, 6e-8 at 1e-4).
 * - Conv2d, h = 1e-3: linear in each argument, so a central difference has no
 *   truncation error at any step; 1e-3 keeps the rounding near 1e-12.
 * - Max pooling: distinct multiples of 0.01 (a shuffled ramp), so every window's maximum
 *   leads the runner-up by far more than h and no tie is crossed.
 * Also: the cross-entropy's gradient, and the reference conv's backward contract. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/rng.h"
#include "nepenthe/train.h"
#include "testutil.h"

_Static_assert(sizeof(nep_real) == sizeof(double), "build with -DNEP_DOUBLE");

#define TOL 1e-6

enum input_kind {
    KINK_FREE,      /* 4 N(0, 1), away from the rectifiers' kinks */
    SHIFTED,        /* 1 + 2 N(0, 1) */
    STANDARD,       /* N(0, 1) */
    SHUFFLED_RAMP,  /* distinct multiples of 0.01 */
};

typedef struct gc_case {
    const char *name;
    nep_op_kind op;
    nep_attrs attrs;
    nep_shape in;
    int64_t batch;
    bool training;
    enum input_kind input;
    double h;
    uint64_t seed;
    nep_op_kind then;   /* a rectifier reading the op (NEP_OP_INPUT, the default: none) */
} gc_case;

static const nep_shape vec = {1, {7}}, tok = {2, {3, 5}, 1}, tok4 = {2, {3, 4}, 1}, img = {3, {3, 2, 2}}, img345 = {3, {3, 4, 5}},
                       img6 = {3, {2, 6, 7}}, grid = {3, {3, 5, 2}, 2}, grid_even = {3, {2, 4, 3}, 2};

#define ELEMENTWISE(nm, op, attrs, in) {nm, op, attrs, in, 3, false, KINK_FREE, 1e-6, 1234 + op}
#define BN_POOL(nm, op, attrs, in, training, kind, h) {nm, op, attrs, in, 3, training, kind, h, 4321 + op}
#define CONV(nm, F, kh, kw, sh, sw, ph, pw, G, BIAS, in)                                          \
    {nm, NEP_OP_CONV2D, {.conv = {.features = F, .kernel = {kh, kw}, .stride = {sh, sw}, .pad = {ph, pw}, \
                                  .groups = G, .bias = BIAS}}, in, 2, false, STANDARD, 1e-3, 4321 + kh * 7 + G}
#define WINDOW(k0, k1, s, p) {.pool = {.kernel = {k0, k1}, .stride = {s, s}, .pad = {p, p}}}

static const gc_case cases[] = {
    ELEMENTWISE("linear", NEP_OP_LINEAR, ((nep_attrs){.linear = {.features = 5, .bias = true}}), vec),
    ELEMENTWISE("linear_nobias", NEP_OP_LINEAR, ((nep_attrs){.linear = {.features = 4}}), vec),
    ELEMENTWISE("relu", NEP_OP_RELU, ((nep_attrs){{0}}), img),
    ELEMENTWISE("leaky_relu", NEP_OP_LEAKY_RELU, ((nep_attrs){.leaky_relu = {.slope = 0.2}}), img),
    ELEMENTWISE("prelu", NEP_OP_PRELU, ((nep_attrs){{0}}), img),
    ELEMENTWISE("prelu_vec", NEP_OP_PRELU, ((nep_attrs){{0}}), vec),
    ELEMENTWISE("relu6", NEP_OP_RELU6, ((nep_attrs){{0}}), img),
    ELEMENTWISE("gelu", NEP_OP_GELU, ((nep_attrs){{0}}), img),
    ELEMENTWISE("gelu_tanh", NEP_OP_GELU, ((nep_attrs){.gelu = {.tanh = true}}), tok),
    ELEMENTWISE("tanh", NEP_OP_TANH, ((nep_attrs){{0}}), vec),
    ELEMENTWISE("silu", NEP_OP_SILU, ((nep_attrs){{0}}), img),
    ELEMENTWISE("identity", NEP_OP_IDENTITY, ((nep_attrs){{0}}), img),
    ELEMENTWISE("flatten", NEP_OP_FLATTEN, ((nep_attrs){{0}}), img),
    ELEMENTWISE("add", NEP_OP_ADD, ((nep_attrs){{0}}), img),
    ELEMENTWISE("mul_square", NEP_OP_MUL, ((nep_attrs){{0}}), tok), /* x * x: one input twice */
    ELEMENTWISE("affine", NEP_OP_AFFINE, ((nep_attrs){{0}}), img),
    ELEMENTWISE("affine_vec", NEP_OP_AFFINE, ((nep_attrs){{0}}), vec),
    ELEMENTWISE("layernorm_vec", NEP_OP_LAYERNORM, ((nep_attrs){{0}}), vec),
    ELEMENTWISE("layernorm_tokens", NEP_OP_LAYERNORM, ((nep_attrs){.layernorm = {.eps = 1e-3}}), tok),
    ELEMENTWISE("rmsnorm_tokens", NEP_OP_RMSNORM, ((nep_attrs){.layernorm = {.eps = 1e-3}}), tok),
    ELEMENTWISE("rope", NEP_OP_ROPE, ((nep_attrs){.rope = {.heads = 1, .theta = 100}}), tok4),
    /* ViT's global attention, and Swin's padded, shifted, masked windows with their bias */
    {"attention_tokens", NEP_OP_ATTENTION, {.attention = {.heads = 2}}, {2, {4, 6}, 1}, 2, false, STANDARD, 1e-6, 808},
    {"attention_windows", NEP_OP_ATTENTION, {.attention = {.heads = 2, .window = {3, 3}, .shift = {1, 1}}},
     {3, {5, 4, 4}, 2}, 2, false, STANDARD, 1e-6, 809},
    /* a text model's attention of given q, k, v: plain, and causal with grouped heads */
    {"sdpa", NEP_OP_SDPA, {.sdpa = {.heads = 2}}, {2, {4, 6}, 1}, 2, false, STANDARD, 1e-6, 810},
    {"sdpa_causal_gqa", NEP_OP_SDPA, {.sdpa = {.heads = 4, .kv_heads = 2, .causal = true}}, {2, {5, 8}, 1}, 2,
     false, STANDARD, 1e-6, 811},
    /* the token ops around attention (an image's tokens in NCHW: a transpose) */
    ELEMENTWISE("tokens", NEP_OP_TOKENS, ((nep_attrs){{0}}), img345),
    ELEMENTWISE("tokens_grid", NEP_OP_TOKENS, ((nep_attrs){.tokens = {.grid = true}}), img345),
    ELEMENTWISE("class_token", NEP_OP_CLASS_TOKEN, ((nep_attrs){{0}}), tok),
    ELEMENTWISE("pos_embedding", NEP_OP_POS_EMBEDDING, ((nep_attrs){{0}}), tok),
    ELEMENTWISE("take_token", NEP_OP_TAKE_TOKEN, ((nep_attrs){{0}}), tok),
    ELEMENTWISE("token_mean", NEP_OP_TOKEN_MEAN, ((nep_attrs){{0}}), tok),
    ELEMENTWISE("token_mean_grid", NEP_OP_TOKEN_MEAN, ((nep_attrs){{0}}), grid),
    ELEMENTWISE("patch_merge_odd", NEP_OP_PATCH_MERGE, ((nep_attrs){{0}}), grid),
    ELEMENTWISE("patch_merge_even", NEP_OP_PATCH_MERGE, ((nep_attrs){{0}}), grid_even),
    /* evaluation mode: the identity (training-mode masks are checked in test_graph) */
    ELEMENTWISE("dropout_eval", NEP_OP_DROPOUT, ((nep_attrs){.dropout = {.p = 0.3}}), img),
    ELEMENTWISE("drop_path_eval", NEP_OP_DROP_PATH, ((nep_attrs){.drop_path = {.p = 0.3}}), grid),
    BN_POOL("bn_train", NEP_OP_BATCHNORM, ((nep_attrs){{0}}), img345, true, SHIFTED, 1e-4),
    BN_POOL("bn_train_eps", NEP_OP_BATCHNORM, ((nep_attrs){.batchnorm = {.eps = 0.1, .momentum = 0.5}}), img345, true, SHIFTED, 1e-4),
    BN_POOL("bn_eval", NEP_OP_BATCHNORM, ((nep_attrs){{0}}), img345, false, SHIFTED, 1e-6),
    /* the ReLU or ReLU6 the BatchNorm writes itself and whose backward it folds in */
    {"bn_train_relu", NEP_OP_BATCHNORM, {{0}}, img345, 3, true, SHIFTED, 1e-4, 4401, NEP_OP_RELU},
    {"bn_train_relu6", NEP_OP_BATCHNORM, {{0}}, img345, 3, true, SHIFTED, 1e-4, 4402, NEP_OP_RELU6},
    {"bn_eval_relu", NEP_OP_BATCHNORM, {{0}}, img345, 3, false, SHIFTED, 1e-6, 4403, NEP_OP_RELU},
    BN_POOL("maxpool_3x3s2p1", NEP_OP_MAXPOOL, ((nep_attrs)WINDOW(3, 3, 2, 1)), img6, true, SHUFFLED_RAMP, 1e-6),
    BN_POOL("maxpool_2x2s2", NEP_OP_MAXPOOL, ((nep_attrs)WINDOW(2, 2, 2, 0)), img6, true, SHUFFLED_RAMP, 1e-6),
    /* overlapping, non-square windows */
    BN_POOL("maxpool_3x2s1", NEP_OP_MAXPOOL, ((nep_attrs)WINDOW(3, 2, 1, 1)), img6, true, SHUFFLED_RAMP, 1e-6),
    BN_POOL("avgpool_2x2s2", NEP_OP_AVGPOOL, ((nep_attrs)WINDOW(2, 2, 2, 0)), img6, true, SHIFTED, 1e-6),
    BN_POOL("avgpool_3x3s1p1", NEP_OP_AVGPOOL, ((nep_attrs)WINDOW(3, 3, 1, 1)), img6, true, SHIFTED, 1e-6),
    BN_POOL("global_avgpool", NEP_OP_GLOBAL_AVGPOOL, ((nep_attrs){{0}}), img6, true, SHIFTED, 1e-6),
    CONV("conv_k3s1_bias", 4, 3, 3, 1, 1, 1, 1, 1, true, ((nep_shape){3, {3, 5, 5}})),
    CONV("conv_k3s2", 3, 3, 3, 2, 2, 1, 1, 1, false, ((nep_shape){3, {2, 6, 6}})),
    CONV("conv_k1s2", 4, 1, 1, 2, 2, 0, 0, 1, false, ((nep_shape){3, {3, 5, 5}})),
    CONV("conv_depthwise_s1_bias", 3, 3, 3, 1, 1, 1, 1, 3, true, ((nep_shape){3, {3, 5, 5}})),
    CONV("conv_depthwise_s2", 4, 3, 3, 2, 2, 1, 1, 4, false, ((nep_shape){3, {4, 6, 6}})),
    CONV("conv_groups2", 4, 3, 3, 1, 1, 1, 1, 2, true, ((nep_shape){3, {4, 4, 4}})),
    CONV("conv_non_square", 2, 3, 2, 2, 1, 1, 0, 1, true, ((nep_shape){3, {2, 5, 4}})),
};

static double kink_free(nep_rng *r) {
    for (;;) {
        double z = 4 * nep_rng_normal(r);
        if (fabs(z) >= 0.05 && fabs(z - 6) >= 0.05) return z;
    }
}

static void fill_input(const gc_case *c, nep_rng *rng, double *x, int64_t nx) {
    if (c->input == SHUFFLED_RAMP) {
        uint32_t *perm = malloc(sizeof(uint32_t) * (size_t)nx);
        for (int64_t i = 0; i < nx; i++) perm[i] = (uint32_t)i;
        nep_rng_shuffle_u32(rng, perm, (size_t)nx);
        for (int64_t i = 0; i < nx; i++) x[i] = 0.01 * ((double)perm[i] - (double)nx / 2);
        free(perm);
        return;
    }
    for (int64_t i = 0; i < nx; i++)
        x[i] = c->input == KINK_FREE ? kink_free(rng)
             : c->input == SHIFTED   ? 1 + 2 * nep_rng_normal(rng)
                                     : nep_rng_normal(rng);
}

static void gradcheck(void **state) {
    const gc_case *c = *state;
    const int64_t B = c->batch;
    nep_rng rng;
    nep_rng_seed(&rng, c->seed);
    nep_graph g;
    const int id = nep_test_op_graph_then(&g, c->op, c->attrs, c->in, c->then);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = 0.5 * nep_rng_normal(&rng);
    if (c->op == NEP_OP_BATCHNORM) { /* weight near 1, positive running variances */
        nep_real *wv = g.values + g.params[g.nodes[id].params[0]].offset;
        nep_real *rv = g.values + g.params[g.nodes[id].params[3]].offset;
        for (int64_t ch = 0; ch < c->in.d[0]; ch++) {
            wv[ch] += 1;
            rv[ch] = 0.5 + nep_rng_uniform(&rng);
        }
    }
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, B, NULL, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(ex, NULL), NEP_OK);
    nep_exec_set_training(ex, c->training, NULL);
    const int64_t nx = B * nep_shape_numel(&c->in), ny = B * nep_shape_numel(&g.nodes[g.output].shape);
    double *x = malloc(sizeof(double) * (size_t)nx), *r = malloc(sizeof(double) * (size_t)ny);
    fill_input(c, &rng, x, nx);
    for (int64_t i = 0; i < ny; i++) r[i] = nep_rng_normal(&rng);
    nep_test_loss(ex, x, B, r, ny);
    nep_exec_backward(ex, r);
    double *dx = malloc(sizeof(double) * (size_t)nx), *dp = malloc(sizeof(double) * (size_t)(g.n_values + 1));
    memcpy(dx, nep_exec_input_grad(ex), sizeof(double) * (size_t)nx);
    memcpy(dp, g.grads, sizeof(double) * (size_t)g.n_values);
    nep_test_fd_check("dx", x, dx, nx, ex, x, B, r, ny, c->h, TOL);
    for (int k = 0; k < g.n_params; k++) {
        const nep_param *p = &g.params[k];
        if (!(p->flags & NEP_PARAM_TRAINABLE)) continue;
        nep_test_fd_check(p->name, g.values + p->offset, dp + p->offset, p->numel, ex, x, B, r, ny, c->h, TOL);
    }
    free(x), free(r), free(dx), free(dp);
    nep_exec_free(ex);
    nep_graph_free(&g);
}

/* The loss: d(mean cross-entropy)/dlogits. */
static void test_cross_entropy(void **s) {
    enum { B = 4, K = 5 };
    const double h = 1e-6;
    nep_rng rng;
    nep_rng_seed(&rng, 99);
    double z[B * K], d[B * K];
    int32_t t[B] = {0, 3, 4, 1};
    for (int i = 0; i < B * K; i++) z[i] = 3 * nep_rng_normal(&rng);
    nep_xent(z, t, B, K, d, NULL);
    for (int i = 0; i < B * K; i++) {
        double keep = z[i];
        z[i] = keep + h;
        double lp = nep_xent(z, t, B, K, NULL, NULL);
        z[i] = keep - h;
        double lm = nep_xent(z, t, B, K, NULL, NULL);
        z[i] = keep;
        double num = (lp - lm) / (2 * h);
        assert_true(fabs(num - d[i]) / fmax(1e-3, fabs(num) + fabs(d[i])) <= TOL);
    }
}

static bool close(double a, double b) { return fabs(a - b) <= 1e-12 * (1 + fabs(b)); }

/* The reference conv's backward contract (the float build's oneDNN path is checked the
 * same way in test_conv): the input gradient added to what is there, parameter
 * gradients written, or added with accumulate_grads. */
static void test_conv_accumulation(void **unused) {
    enum { B = 2 };
    const nep_shape in = {3, {4, 5, 5}};
    const nep_attrs a = {.conv = {.features = 4, .kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}, .groups = 2, .bias = true}};
    nep_rng rng;
    nep_rng_seed(&rng, 77);
    nep_graph g;
    const int id = nep_test_op_graph(&g, NEP_OP_CONV2D, a, in);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = 0.5 * nep_rng_normal(&rng);
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, B, NULL, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(ex, NULL), NEP_OK);
    const int64_t nx = B * nep_shape_numel(&in), ny = B * nep_shape_numel(&g.nodes[g.output].shape);
    double *x = malloc(sizeof(double) * (size_t)nx), *r = malloc(sizeof(double) * (size_t)ny);
    for (int64_t i = 0; i < nx; i++) x[i] = nep_rng_normal(&rng);
    for (int64_t i = 0; i < ny; i++) r[i] = nep_rng_normal(&rng);
    nep_exec_forward(ex, x, B);
    nep_exec_backward(ex, r);
    const int64_t nv = g.n_values;
    double *dx = malloc(sizeof(double) * (size_t)nx), *dp = malloc(sizeof(double) * (size_t)nv);
    /* The executor's own input-gradient buffer (its layout), which the op adds to. */
    memcpy(dx, nep_exec_node_grad(ex, g.input), sizeof(double) * (size_t)nx);
    memcpy(dp, g.grads, sizeof(double) * (size_t)nv);
    for (int64_t i = 0; i < nv; i++) g.grads[i] = 1e3;
    nep_exec_node_backward(ex, id);
    for (int64_t i = 0; i < nx; i++) assert_true(close(nep_exec_node_grad(ex, g.input)[i], 2 * dx[i]));
    for (int k = 0; k < g.n_params; k++) /* (the blocks may hold padding between parameters) */
        for (int64_t i = g.params[k].offset; i < g.params[k].offset + g.params[k].numel; i++)
            assert_true(close(g.grads[i], dp[i]));
    nep_exec_set_accumulate(ex, true);
    nep_exec_node_backward(ex, id);
    for (int k = 0; k < g.n_params; k++)
        for (int64_t i = g.params[k].offset; i < g.params[k].offset + g.params[k].numel; i++)
            assert_true(close(g.grads[i], 2 * dp[i]));
    free(x), free(r), free(dx), free(dp);
    nep_exec_free(ex);
    nep_graph_free(&g);
}

/* A residual block x -> tanh(Linear(x)) -> Linear -> + x: the block input's gradient
 * shares the Add's buffer (the skip path copies nothing; the block's first Linear adds
 * its part after the second has read the Add's gradient), and every gradient still
 * matches the finite differences. */
static void test_residual_skip_gradient(void **unused) {
    nep_graph g;
    nep_graph_init(&g);
    const int x0 = nep_graph_input(&g, "input", (nep_shape){1, {5}});
    const int stem = nep_graph_add1(&g, NEP_OP_LINEAR, "stem", x0, (nep_attrs){.linear = {.features = 6, .bias = true}});
    const int b1 = nep_graph_add1(&g, NEP_OP_LINEAR, "block1", stem, (nep_attrs){.linear = {.features = 6, .bias = true}});
    const int t = nep_graph_add1(&g, NEP_OP_TANH, "tanh", b1, (nep_attrs){{0}});
    const int b2 = nep_graph_add1(&g, NEP_OP_LINEAR, "block2", t, (nep_attrs){.linear = {.features = 6, .bias = true}});
    const int add = nep_graph_add(&g, NEP_OP_ADD, "add", (int[]){b2, stem}, 2, (nep_attrs){{0}});
    const int head = nep_graph_add1(&g, NEP_OP_LINEAR, "head", add, (nep_attrs){.linear = {.features = 3, .bias = true}});
    const int lins[] = {stem, b1, b2, head};
    for (int k = 0; k < 4; k++) {
        const int64_t out = g.nodes[lins[k]].attrs.linear.features, inw = k == 0 ? 5 : 6;
        nep_graph_add_param(&g, lins[k], "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2, (int64_t[]){out, inw});
        nep_graph_add_param(&g, lins[k], "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){out});
    }
    assert_int_equal(nep_graph_finalize(&g, NULL), NEP_OK);
    nep_rng rng;
    nep_rng_seed(&rng, 77);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = 0.5 * nep_rng_normal(&rng);
    enum { B = 3 };
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, B, NULL, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(ex, NULL), NEP_OK);
    assert_ptr_equal(nep_exec_node_grad(ex, stem), nep_exec_node_grad(ex, add));
    double x[B * 5], r[B * 3], dx[B * 5];
    for (int i = 0; i < B * 5; i++) x[i] = nep_rng_normal(&rng);
    for (int i = 0; i < B * 3; i++) r[i] = nep_rng_normal(&rng);
    nep_test_loss(ex, x, B, r, B * 3);
    nep_exec_backward(ex, r);
    double *dp = malloc(sizeof(double) * (size_t)g.n_values);
    memcpy(dx, nep_exec_input_grad(ex), sizeof dx);
    memcpy(dp, g.grads, sizeof(double) * (size_t)g.n_values);
    nep_test_fd_check("dx", x, dx, B * 5, ex, x, B, r, B * 3, 1e-6, TOL);
    for (int k = 0; k < g.n_params; k++)
        nep_test_fd_check(g.params[k].name, g.values + g.params[k].offset, dp + g.params[k].offset,
                          g.params[k].numel, ex, x, B, r, B * 3, 1e-6, TOL);
    free(dp);
    nep_exec_free(ex);
    nep_graph_free(&g);
}

int main(void) {
    enum { N = sizeof cases / sizeof *cases };
    struct CMUnitTest tests[N + 3];
    for (int i = 0; i < N; i++)
        tests[i] = (struct CMUnitTest){.name = cases[i].name, .test_func = gradcheck,
                                       .initial_state = (void *)&cases[i]};
    tests[N] = (struct CMUnitTest)cmocka_unit_test(test_cross_entropy);
    tests[N + 1] = (struct CMUnitTest)cmocka_unit_test(test_conv_accumulation);
    tests[N + 2] = (struct CMUnitTest)cmocka_unit_test(test_residual_skip_gradient);
    return NEP_RUN_BOTH_LAYOUTS(tests, NULL, NULL);
}
