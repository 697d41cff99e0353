/* Each collapse rewrite rule alone (nep_collapse_rewrite with one rule): on a small graph
 * where it matches it applies (its count in nep_collapse_info.rules > 0) and the outputs
 * before and after agree on random inputs; on a graph where it must not match it leaves
 * the graph as it was. Images [C, H, W] and token sequences [T, C] alike.
 *
 * Outputs come from the ref backend (float64 loops), so a difference is the rule's own:
 * its algebra, and the rounding of the parameters it rewrites to float. Exact rules must
 * agree within EXACT_TOL of the largest |output| (a few float roundings of each weight,
 * summed over at most a few hundred terms); the approximate one only in the interior. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/collapse.h"
#include "nepenthe/rng.h"
#include "testutil.h"

#define EXACT_TOL 1e-5
#define B 4

/* Every rule a test below covers; test_every_rule_tested checks the table has no other. */
static const char *const covered[] = {
    "bn_to_affine", "remove_identity", "remove_dropout", "remove_identity_affine",
    "affine_into_matmul_after", "merge_affines", "affine_through_global_avgpool",
    "affine_into_matmul_before", "add_of_constant_to_affine", "drop_constant_channels",
    "residual_fold", "compose_linear_linear", "compose_conv_conv", "compose_conv_conv_border",
};

/* ---- building small graphs: each helper adds one node and finalizes with it as the
 * output, so the next one knows its input's shape ------------------------------------- */

static nep_graph start(nep_shape in) {
    nep_graph g;
    nep_graph_init(&g);
    g.output = nep_graph_input(&g, "input", in);
    return g;
}

static int finish(nep_graph *g, int id) {
    nep_err err;
    assert_true(id >= 0);
    g->output = id;
    nep_test_assert_ok(nep_graph_finalize(g, &err), &err);
    return id;
}

static int node(nep_graph *g, nep_op_kind op, const int *in, int n_in, nep_attrs a) {
    char name[16];
    snprintf(name, sizeof name, "n%d", g->n_nodes);
    return nep_graph_add(g, op, name, in, n_in, a);
}

static int unary(nep_graph *g, nep_op_kind op, int x) {
    return finish(g, node(g, op, &x, 1, (nep_attrs){.dropout = {.p = 0.5}}));
}

/* Over the input's last axis: token by token for a sequence. */
static int fan_in(const nep_shape *s) { return (int)s->d[s->ndim - 1]; }

static int linear(nep_graph *g, int x, int64_t out, bool bias) {
    const int64_t in = fan_in(&g->nodes[x].shape);
    const int id = node(g, NEP_OP_LINEAR, &x, 1, (nep_attrs){.linear = {.features = out, .bias = bias}});
    nep_graph_add_param(g, id, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2, (int64_t[]){out, in});
    if (bias) nep_graph_add_param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){out});
    return finish(g, id);
}

static int conv(nep_graph *g, int x, int64_t out, int k, int stride, int pad, int groups, bool bias) {
    const int64_t in = g->nodes[x].shape.d[0];
    const nep_attrs a = {.conv = {.features = out, .bias = bias, .kernel = {k, k}, .stride = {stride, stride},
                                  .pad = {pad, pad}, .groups = groups}};
    const int id = node(g, NEP_OP_CONV2D, &x, 1, a);
    nep_graph_add_param(g, id, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 4,
                        (int64_t[]){out, in / groups, k, k});
    if (bias) nep_graph_add_param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){out});
    return finish(g, id);
}

/* Per-channel parameters of node id, each [C] (C: its input's features). */
static int per_channel(nep_graph *g, nep_op_kind op, int x, const char *const *names, int n) {
    const int64_t C = nep_shape_features(&g->nodes[x].shape);
    const int id = node(g, op, &x, 1, (nep_attrs){0});
    for (int i = 0; i < n; i++) nep_graph_add_param(g, id, names[i], i < 2, 1, &C);
    return finish(g, id);
}
static int affine(nep_graph *g, int x) {
    return per_channel(g, NEP_OP_AFFINE, x, (const char *[]){"weight", "bias"}, 2);
}
static int batchnorm(nep_graph *g, int x) {
    return per_channel(g, NEP_OP_BATCHNORM, x,
                       (const char *[]){"weight", "bias", "running_mean", "running_var"}, 4);
}

static int add(nep_graph *g, int a, int b) {
    return finish(g, node(g, NEP_OP_ADD, (int[]){a, b}, 2, (nep_attrs){0}));
}

static nep_real *values(nep_graph *g, int id, int i) {
    return g->values + g->params[g->nodes[id].params[i]].offset;
}

/* Every parameter random (a BatchNorm's variance positive), as after training. */
static void randomize(nep_graph *g, uint64_t seed) {
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    for (int i = 0; i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        const bool var = strstr(p->name, "running_var") != NULL;
        for (int64_t j = 0; j < p->numel; j++)
            g->values[p->offset + j] = (nep_real)(var ? 0.5 + nep_rng_uniform(&rng) : 0.4 * nep_rng_normal(&rng));
    }
}

/* ---- running them --------------------------------------------------------------------- */

/* g's outputs on B random inputs (the same for the same graph input), float64 loops. */
static double *outputs(nep_graph *g, int64_t *n) {
    nep_err err;
    nep_exec *ex;
    nep_test_assert_ok(nep_exec_new(&ex, g, B, &(nep_exec_opts){.backend = "ref", .inference = true}, &err),
                       &err);
    const int64_t in = nep_shape_numel(&g->nodes[g->input].shape);
    nep_real *x = malloc(sizeof(nep_real) * (size_t)(B * in));
    nep_rng rng;
    nep_rng_seed(&rng, 99);
    for (int64_t i = 0; i < B * in; i++) x[i] = (nep_real)nep_rng_normal(&rng);
    *n = B * nep_shape_numel(&g->nodes[g->output].shape);
    const nep_real *y = nep_exec_forward(ex, x, B);
    double *out = malloc(sizeof(double) * (size_t)*n);
    for (int64_t i = 0; i < *n; i++) out[i] = y[i];
    nep_exec_free(ex);
    free(x);
    return out;
}

/* max |a - b| / max(1, max |a|) of two graphs' outputs. */
static double rel_diff(nep_graph *a, nep_graph *b) {
    int64_t na, nb;
    double *ya = outputs(a, &na), *yb = outputs(b, &nb), diff = 0, scale = 1;
    assert_int_equal(na, nb);
    for (int64_t i = 0; i < na; i++) {
        diff = fmax(diff, fabs(ya[i] - yb[i]));
        scale = fmax(scale, fabs(ya[i]));
    }
    free(ya), free(yb);
    return diff / scale;
}

static int count_of(const nep_collapse_info *info, const char *rule) {
    for (int r = 0; r < info->n_rules; r++)
        if (strcmp(info->rules[r].name, rule) == 0) return info->rules[r].count;
    fail_msg("no rule '%s' in the counts", rule);
    return -1;
}

static int count_op(const nep_graph *g, nep_op_kind op) {
    int n = 0;
    for (int k = 0; k < g->n_order; k++) n += g->nodes[g->order[k]].op == op;
    return n;
}

/* Rule `rule` alone on g (freed): it must apply and keep the outputs within EXACT_TOL.
 * Returns the rewritten graph for more checks. */
static nep_graph applies(nep_graph *g, const char *rule, const nep_collapse_opts *o) {
    nep_graph h;
    nep_collapse_info info = {0};
    nep_err err;
    nep_test_assert_ok(nep_collapse_rewrite(g, o, (const char *[]){rule, NULL}, &h, &info, &err), &err);
    const double d = rel_diff(g, &h);
    printf("%-30s applied %d time(s): nodes %d -> %d, max |diff| %.2g of max |output|\n", rule,
           count_of(&info, rule), g->n_order, h.n_order, d);
    assert_true(count_of(&info, rule) > 0);
    for (int r = 0; r < info.n_rules; r++)
        if (strcmp(info.rules[r].name, rule) != 0) assert_int_equal(info.rules[r].count, 0);
    assert_true(d <= EXACT_TOL);
    nep_graph_free(g);
    return h;
}

/* Rule `rule` alone on g (freed): it must not apply. */
static void not_applies(nep_graph *g, const char *rule, const nep_collapse_opts *o) {
    nep_graph h;
    nep_collapse_info info = {0};
    nep_err err;
    nep_test_assert_ok(nep_collapse_rewrite(g, o, (const char *[]){rule, NULL}, &h, &info, &err), &err);
    assert_int_equal(count_of(&info, rule), 0);
    assert_int_equal(h.n_order, g->n_order);
    assert_true(rel_diff(g, &h) == 0);
    nep_graph_free(g), nep_graph_free(&h);
}

static const nep_shape image = {3, {3, 6, 6}}, tokens = {2, {5, 6}, 1}, vector = {1, {12}};

/* ---- fold ------------------------------------------------------------------------------ */

static void test_bn_to_affine(void **state) {
    nep_graph g = start(image);
    batchnorm(&g, conv(&g, g.input, 4, 3, 1, 1, 1, true));
    randomize(&g, 1);
    nep_graph h = applies(&g, "bn_to_affine", NULL);
    assert_int_equal(count_op(&h, NEP_OP_BATCHNORM), 0);
    assert_int_equal(count_op(&h, NEP_OP_AFFINE), 1);
    nep_graph_free(&h);
    g = start(image);
    affine(&g, g.input);
    randomize(&g, 1);
    not_applies(&g, "bn_to_affine", NULL);
}

/* remove_dropout takes StochasticDepth too: both are the identity in evaluation. */
static void test_remove_identity_and_dropout(void **state) {
    const nep_op_kind ops[3] = {NEP_OP_IDENTITY, NEP_OP_DROPOUT, NEP_OP_DROP_PATH};
    const char *rules[3] = {"remove_identity", "remove_dropout", "remove_dropout"};
    for (int i = 0; i < 3; i++) {
        const nep_shape *shapes[2] = {&vector, &tokens};
        for (int s = 0; s < 2; s++) {
            nep_graph g = start(*shapes[s]);
            linear(&g, unary(&g, ops[i], linear(&g, g.input, 8, true)), 3, true);
            randomize(&g, 2);
            nep_graph h = applies(&g, rules[i], NULL);
            assert_int_equal(count_op(&h, ops[i]), 0);
            nep_graph_free(&h);
        }
        /* Identity is not remove_dropout's, nor the other two remove_identity's */
        for (int j = 0; j < 3; j++) {
            if ((i == 0) == (j == 0)) continue;
            nep_graph g = start(vector);
            unary(&g, ops[j], linear(&g, g.input, 8, true));
            randomize(&g, 2);
            not_applies(&g, rules[i], NULL);
        }
    }
}

static void test_remove_identity_affine(void **state) {
    for (int scaled = 0; scaled < 2; scaled++) {
        nep_graph g = start(tokens);
        const int a = affine(&g, unary(&g, NEP_OP_RELU, g.input));
        linear(&g, a, 4, true);
        randomize(&g, 3);
        for (int c = 0; c < 6; c++) values(&g, a, 0)[c] = scaled && c == 2 ? 2 : 1, values(&g, a, 1)[c] = 0;
        if (scaled) {
            not_applies(&g, "remove_identity_affine", NULL);
            continue;
        }
        nep_graph h = applies(&g, "remove_identity_affine", NULL);
        assert_int_equal(count_op(&h, NEP_OP_AFFINE), 0);
        nep_graph_free(&h);
    }
}

/* An Affine after a matmul it alone reads: a Linear on a vector, one token by token, a
 * conv. Not when the matmul has another reader. */
static void test_affine_into_matmul_after(void **state) {
    const nep_shape *shapes[3] = {&vector, &tokens, &image};
    for (int s = 0; s < 3; s++) {
        nep_graph g = start(*shapes[s]);
        const int m = s == 2 ? conv(&g, g.input, 5, 3, 2, 1, 1, false) : linear(&g, g.input, 7, false);
        unary(&g, NEP_OP_RELU, affine(&g, m));
        randomize(&g, 4);
        nep_graph h = applies(&g, "affine_into_matmul_after", NULL);
        assert_int_equal(count_op(&h, NEP_OP_AFFINE), 0);
        nep_graph_free(&h);
    }
    nep_graph g = start(tokens);
    const int m = linear(&g, g.input, 6, true);
    add(&g, m, affine(&g, m));
    randomize(&g, 4);
    not_applies(&g, "affine_into_matmul_after", NULL);
}

static void test_merge_affines(void **state) {
    nep_graph g = start(tokens);
    linear(&g, affine(&g, affine(&g, unary(&g, NEP_OP_RELU, g.input))), 3, true);
    randomize(&g, 5);
    nep_graph h = applies(&g, "merge_affines", NULL);
    assert_int_equal(count_op(&h, NEP_OP_AFFINE), 1);
    nep_graph_free(&h);
    /* the first one is read by the Add too */
    g = start(tokens);
    const int a = affine(&g, unary(&g, NEP_OP_RELU, g.input));
    add(&g, a, affine(&g, a));
    randomize(&g, 5);
    not_applies(&g, "merge_affines", NULL);
}

static void test_affine_through_global_avgpool(void **state) {
    for (int pool = 0; pool < 2; pool++) {
        nep_graph g = start(image);
        const int a = affine(&g, unary(&g, NEP_OP_RELU, conv(&g, g.input, 4, 3, 1, 1, 1, true)));
        int p;
        if (pool) {
            p = unary(&g, NEP_OP_GLOBAL_AVGPOOL, a);
        } else { /* a max-pool does not commute with a negative scale */
            p = finish(&g, node(&g, NEP_OP_MAXPOOL, &a, 1, (nep_attrs){.pool = {.kernel = {2, 2}, .stride = {2, 2}}}));
        }
        linear(&g, unary(&g, NEP_OP_FLATTEN, p), 3, true);
        randomize(&g, 6);
        if (!pool) {
            not_applies(&g, "affine_through_global_avgpool", NULL);
            continue;
        }
        nep_graph h = applies(&g, "affine_through_global_avgpool", NULL);
        const nep_node *moved = &h.nodes[h.nodes[h.nodes[h.output].inputs[0]].inputs[0]];
        assert_int_equal(moved->op, NEP_OP_AFFINE); /* now between the pool and the Flatten */
        nep_graph_free(&h);
    }
}

/* An Affine read by a matmul alone: a Linear (a vector; token by token), through a
 * Flatten (of an image: one feature per plane; of tokens: one per token's entry), a conv
 * without padding, a padded conv when the Affine has no shift. Not: a padded conv with a
 * shift (the border would see it), or a Flatten read by a conv-free chain's Add. */
static void test_affine_into_matmul_before(void **state) {
    for (int k = 0; k < 6; k++) {
        nep_graph g = start(k == 0 ? vector : k < 3 ? tokens : image);
        const int a = affine(&g, unary(&g, NEP_OP_RELU, g.input));
        if (k == 0 || k == 1) linear(&g, a, 5, false);
        if (k == 2 || k == 3) linear(&g, unary(&g, NEP_OP_FLATTEN, a), 5, k == 3);
        if (k == 4) conv(&g, a, 4, 3, 1, 0, 1, false);
        if (k == 5) conv(&g, a, 6, 3, 1, 1, 3, true);
        randomize(&g, 7);
        if (k == 5)
            for (int c = 0; c < 3; c++) values(&g, a, 1)[c] = 0;
        nep_graph h = applies(&g, "affine_into_matmul_before", NULL);
        assert_int_equal(count_op(&h, NEP_OP_AFFINE), 0);
        nep_graph_free(&h);
    }
    nep_graph g = start(image);
    conv(&g, affine(&g, unary(&g, NEP_OP_RELU, g.input)), 4, 3, 1, 1, 1, false);
    randomize(&g, 7);
    not_applies(&g, "affine_into_matmul_before", NULL);
}

/* ---- channels ---------------------------------------------------------------------------- */

/* x + k with k a Linear of zero weight (a constant per feature), on tokens and images. */
static void test_add_of_constant_to_affine(void **state) {
    for (int zero = 0; zero < 2; zero++) {
        nep_graph g = start(tokens);
        const int x = linear(&g, g.input, 6, true), k = linear(&g, g.input, 6, true);
        add(&g, x, k);
        randomize(&g, 8);
        if (!zero) {
            not_applies(&g, "add_of_constant_to_affine", NULL);
            continue;
        }
        memset(values(&g, k, 0), 0, sizeof(nep_real) * 36);
        nep_graph h = applies(&g, "add_of_constant_to_affine", NULL);
        assert_int_equal(count_op(&h, NEP_OP_ADD), 0);
        assert_int_equal(count_op(&h, NEP_OP_AFFINE), 1);
        nep_graph_free(&h);
    }
    nep_graph g = start(image);
    const int x = conv(&g, g.input, 4, 3, 1, 1, 1, true), k = conv(&g, g.input, 4, 3, 1, 1, 1, true);
    add(&g, k, x);
    randomize(&g, 8);
    memset(values(&g, k, 0), 0, sizeof(nep_real) * 4 * 27);
    nep_graph h = applies(&g, "add_of_constant_to_affine", NULL);
    nep_graph_free(&h);
}

/* A matmul whose rows 1 and 4 are all 0: after ReLU those channels are the constant
 * relu(bias), dropped from it and from the reader (a Linear on a vector, token by token,
 * an unpadded conv), their constant in the reader's bias. Not: no row is 0. */
static void test_drop_constant_channels(void **state) {
    for (int k = 0; k < 4; k++) {
        nep_graph g = start(k == 0 ? vector : k == 1 ? tokens : image);
        const bool img = k >= 2;
        const int p = img ? conv(&g, g.input, 6, 3, 1, 1, 1, true) : linear(&g, g.input, 6, true);
        const int r = unary(&g, NEP_OP_RELU, p);
        const int q = img ? conv(&g, r, 3, 1, 1, 0, 1, k == 3) : linear(&g, r, 3, false);
        (void)q;
        randomize(&g, 9);
        const int64_t row = img ? 27 : fan_in(&g.nodes[g.input].shape);
        if (k != 3) /* k = 3: nothing constant */
            for (int c = 1; c < 6; c += 3) {
                memset(values(&g, p, 0) + c * row, 0, sizeof(nep_real) * (size_t)row);
                values(&g, p, 1)[c] = c == 1 ? 0.75f : -0.5f; /* relu: 0.75 and 0 */
            }
        if (k == 3) {
            not_applies(&g, "drop_constant_channels", NULL);
            continue;
        }
        nep_graph h = applies(&g, "drop_constant_channels", NULL);
        assert_int_equal(nep_shape_features(&h.nodes[h.nodes[h.output].inputs[0]].shape), 4);
        nep_graph_free(&h);
    }
}

/* A constant channel passes a max-pool, and an average pool without padding, as the same
 * constant (an HRank-pruned filter in front of a pool): dropped exactly. Not through an
 * average pool that zero-pads (its border windows average in zeros: no longer constant). */
static void test_drop_constant_channels_through_pools(void **state) {
    const nep_pool_attrs pools[3] = {{.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}},
                                     {.kernel = {2, 2}, .stride = {2, 2}}, {.kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1}}};
    for (int k = 0; k < 3; k++) {
        nep_graph g = start(image);
        const int p = conv(&g, g.input, 6, 3, 1, 1, 1, true);
        const int r = unary(&g, NEP_OP_RELU, p);
        const int pool = finish(&g, node(&g, k == 0 ? NEP_OP_MAXPOOL : NEP_OP_AVGPOOL, &r, 1, (nep_attrs){.pool = pools[k]}));
        conv(&g, pool, 3, 1, 1, 0, 1, true);
        randomize(&g, 12);
        for (int c = 1; c < 6; c += 3) {
            memset(values(&g, p, 0) + c * 27, 0, sizeof(nep_real) * 27);
            values(&g, p, 1)[c] = c == 1 ? 0.75f : -0.5f;
        }
        if (k == 2) {
            not_applies(&g, "drop_constant_channels", NULL);
            continue;
        }
        nep_graph h = applies(&g, "drop_constant_channels", NULL);
        assert_int_equal(nep_shape_features(&h.nodes[h.nodes[h.output].inputs[0]].shape), 4);
        nep_graph_free(&h);
    }
}

/* ---- compose ------------------------------------------------------------------------------ */

/* x + L(x): a Linear on a vector and token by token, a 3x3 "same" conv. Not: a stride-2
 * conv (another shape), or L read by another node too. */
static void test_residual_fold(void **state) {
    for (int k = 0; k < 3; k++) {
        nep_graph g = start(k == 0 ? vector : k == 1 ? tokens : image);
        const int x = k == 2 ? conv(&g, g.input, 4, 1, 1, 0, 1, true) : linear(&g, g.input, 6, false);
        add(&g, x, k == 2 ? conv(&g, x, 4, 3, 1, 1, 1, true) : linear(&g, x, 6, true));
        randomize(&g, 10);
        nep_graph h = applies(&g, "residual_fold", NULL);
        assert_int_equal(count_op(&h, NEP_OP_ADD), 0);
        nep_graph_free(&h);
    }
    nep_graph g = start(tokens);
    const int x = linear(&g, g.input, 6, false), l = linear(&g, x, 6, true);
    add(&g, add(&g, x, l), l);
    randomize(&g, 10);
    not_applies(&g, "residual_fold", NULL);
}

/* Linear after Linear: composed when the middle is wide (fewer FLOPs), on vectors and
 * token by token; kept when it is narrow (on tokens the FLOPs of both sides are per
 * token: 6 -> 2 -> 5 costs 51 per token, 6 -> 5 would cost 65). */
static void test_compose_linear_linear(void **state) {
    for (int k = 0; k < 4; k++) {
        nep_graph g = start(k % 2 ? tokens : vector);
        linear(&g, linear(&g, g.input, k >= 2 ? 2 : 40, true), 5, true);
        randomize(&g, 11);
        if (k >= 2) {
            not_applies(&g, "compose_linear_linear", NULL);
            continue;
        }
        nep_graph h = applies(&g, "compose_linear_linear", NULL);
        assert_int_equal(count_op(&h, NEP_OP_LINEAR), 1);
        nep_graph_free(&h);
    }
}

/* 3x3 (padded, wide) then 1x1: exact; 3x3/2 then unpadded 3x3: exact. Not: 3x3 then a
 * padded 3x3 (the border differs: compose_conv_conv_border's). */
static void test_compose_conv_conv(void **state) {
    for (int k = 0; k < 3; k++) {
        nep_graph g = start((nep_shape){3, {2, 9, 9}});
        const int a = k == 1 ? conv(&g, g.input, 12, 3, 2, 1, 1, false) : conv(&g, g.input, 16, 3, 1, 1, 1, true);
        if (k == 0) conv(&g, a, 2, 1, 1, 0, 1, true);
        else conv(&g, a, 1, 3, 1, k == 2, 1, false);
        randomize(&g, 12);
        if (k == 2) {
            not_applies(&g, "compose_conv_conv", &(nep_collapse_opts){.allow_approx = true});
            continue;
        }
        nep_graph h = applies(&g, "compose_conv_conv", NULL);
        assert_int_equal(count_op(&h, NEP_OP_CONV2D), 1);
        nep_graph_free(&h);
    }
}

/* 3x3 then a padded 3x3, with allow_approx: one 5x5 conv, equal to the pair in the
 * interior (EXACT_TOL) and not at the border. Without allow_approx it does not run. */
static void test_compose_conv_conv_border(void **state) {
    const nep_collapse_opts approx = {.allow_approx = true};
    nep_graph g = start((nep_shape){3, {1, 8, 8}});
    conv(&g, conv(&g, g.input, 8, 3, 1, 1, 1, true), 1, 3, 1, 1, 1, false);
    randomize(&g, 13);
    nep_graph h, copy;
    nep_collapse_info info = {0};
    nep_err err;
    nep_test_assert_ok(nep_graph_copy(&g, &copy, &err), &err);
    not_applies(&copy, "compose_conv_conv_border", NULL);
    nep_test_assert_ok(nep_collapse_rewrite(&g, &approx, (const char *[]){"compose_conv_conv_border", NULL},
                                            &h, &info, &err), &err);
    assert_int_equal(count_of(&info, "compose_conv_conv_border"), 1);
    assert_int_equal(info.composed_approx, 1);
    assert_int_equal(count_op(&h, NEP_OP_CONV2D), 1);
    int64_t n;
    double *yg = outputs(&g, &n), *yh = outputs(&h, &n), interior = 0, border = 0, scale = 1;
    for (int64_t i = 0; i < n; i++) {
        const int64_t y = i / 8 % 8, x = i % 8;
        const double e = fabs(yg[i] - yh[i]);
        scale = fmax(scale, fabs(yg[i]));
        if (y == 0 || x == 0 || y == 7 || x == 7) border = fmax(border, e);
        else interior = fmax(interior, e);
    }
    printf("compose_conv_conv_border: interior %.2g, border %.2g (of max |output| %.3g)\n",
           interior / scale, border / scale, scale);
    assert_true(interior / scale <= EXACT_TOL);
    assert_true(border / scale > 1e-3);
    free(yg), free(yh);
    nep_graph_free(&g), nep_graph_free(&h);
}

/* ---- the table -------------------------------------------------------------------------- */

/* Every rule of the engine's table has a test here, an unknown name is refused, and the
 * exact flags say which rule changes outputs. */
static void test_every_rule_tested(void **state) {
    nep_graph g = start(vector), h;
    linear(&g, g.input, 3, true);
    nep_collapse_info info = {0};
    nep_err err;
    nep_test_assert_ok(nep_collapse_rewrite(&g, NULL, NULL, &h, &info, &err), &err);
    const int n_covered = (int)(sizeof covered / sizeof *covered);
    assert_int_equal(info.n_rules, n_covered);
    for (int r = 0; r < info.n_rules; r++) {
        bool found = false;
        for (int i = 0; i < n_covered; i++) found = found || strcmp(covered[i], info.rules[r].name) == 0;
        if (!found) fail_msg("rule '%s' has no test in tests/test_rules.c", info.rules[r].name);
        assert_int_equal(info.rules[r].exact, strcmp(info.rules[r].name, "compose_conv_conv_border") != 0);
        assert_int_equal(info.rules[r].count, 0);
    }
    nep_graph_free(&h);
    assert_int_equal(nep_collapse_rewrite(&g, NULL, (const char *[]){"fold_everything", NULL}, &h, &info, &err),
                     NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "fold_everything"));
    nep_graph_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_to_affine),
        cmocka_unit_test(test_remove_identity_and_dropout),
        cmocka_unit_test(test_remove_identity_affine),
        cmocka_unit_test(test_affine_into_matmul_after),
        cmocka_unit_test(test_merge_affines),
        cmocka_unit_test(test_affine_through_global_avgpool),
        cmocka_unit_test(test_affine_into_matmul_before),
        cmocka_unit_test(test_add_of_constant_to_affine),
        cmocka_unit_test(test_drop_constant_channels),
        cmocka_unit_test(test_drop_constant_channels_through_pools),
        cmocka_unit_test(test_residual_fold),
        cmocka_unit_test(test_compose_linear_linear),
        cmocka_unit_test(test_compose_conv_conv),
        cmocka_unit_test(test_compose_conv_conv_border),
        cmocka_unit_test(test_every_rule_tested),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
