/* Collapse rewrites: every rewrite leaves the function unchanged (outputs before and
 * after on the same inputs), and forced zero-entropy layers of an MLP, ResNet-20 and
 * MobileNetV2 are removed exactly. Inputs are real Fashion-MNIST test images. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/checkpoint.h"
#include "nepenthe/collapse.h"
#include "nepenthe/model.h"
#include "nepenthe/rng.h"
#include "nepenthe/train.h"
#include "testutil.h"

static nep_dataset data; /* the first n_images test images, loaded once */
static nep_normalize norm = {.c = 1, .mean = {0.2860f}, .std = {0.3530f}};

/* How many test images the equivalence checks and the entropy measurements use, and the
 * inference executor's batch (at most 8 of them): NEP_COLLAPSE_IMAGES, default 64.
 * tests/memcheck.sh sets 2: valgrind runs oneDNN's AVX2 kernels about 200 times slower
 * (one ResNet-20 image ~1.7 s), and with 64 this test took over 25 minutes there. The
 * assertions hold for any count: logits must agree on every image used, and what the
 * forced tests assert follows from states forced on every input (fewer images only make
 * a few more neurons look always OFF, and those are dropped as well). At least 2: on one
 * image every neuron is in one state, and the whole MLP would linearize, not just the
 * layers the forced tests force. */
static int64_t n_images = 64;
#define MAX_IMAGES 10000 /* the Fashion-MNIST test set */

static int read_n_images(void) {
    const char *e = getenv("NEP_COLLAPSE_IMAGES");
    if (!e) return 0;
    char *end;
    errno = 0;
    const long long v = strtoll(e, &end, 10);
    if (end == e || *end || errno || v < 2 || v > MAX_IMAGES) {
        fprintf(stderr, "NEP_COLLAPSE_IMAGES=%s: not a number of images from 2 to %d\n", e,
                MAX_IMAGES);
        return -1;
    }
    n_images = v;
    return 0;
}

static int load_data(void **state) {
    nep_err err;
    if (nep_fashion_mnist_load(NULL, false, &data, &err) != NEP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    if (data.n < n_images) {
        fprintf(stderr, "NEP_COLLAPSE_IMAGES=%lld: the test set has %lld images\n",
                (long long)n_images, (long long)data.n);
        nep_dataset_free(&data);
        return -1;
    }
    data.n = n_images;
    return 0;
}
static int free_data(void **state) {
    nep_dataset_free(&data);
    return 0;
}

/* Largest |logit difference| of a and b on the data, asserting identical top-1 classes. */
static double max_diff(nep_graph *a, nep_graph *b, int64_t min_agree) {
    nep_equivalence q;
    nep_err err;
    nep_test_assert_ok(nep_collapse_compare(a, b, &data, &norm, 64, 0, &q, NULL, &err), &err);
    assert_int_equal(q.samples, data.n);
    assert_true(q.agree >= min_agree);
    return q.max_abs_diff;
}

static nep_graph build(const char *name, int64_t hidden0, uint64_t seed) {
    nep_model_spec s = nep_model_spec_default();
    snprintf(s.name, sizeof s.name, "%s", name);
    if (strcmp(name, "mlp") == 0) {
        s.n_hidden = 3;
        s.hidden[0] = hidden0, s.hidden[1] = 48, s.hidden[2] = 32;
    } else if (strcmp(name, "mobilenetv2") == 0) {
        s.width_mult = 0.25;
        s.act = NEP_OP_RELU6;
    }
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    nep_graph g;
    nep_err err;
    nep_test_assert_ok(nep_model_build(&s, &g, &rng, &err), &err);
    /* BatchNorms with statistics that are not the identity's */
    for (int i = 0; i < g.n_params; i++) {
        nep_param *p = &g.params[i];
        const char *suf = strrchr(p->name, '.');
        if (g.nodes[p->node].op != NEP_OP_BATCHNORM) continue;
        for (int64_t j = 0; j < p->numel; j++) {
            nep_real *v = g.values + p->offset + j;
            if (!strcmp(suf, ".weight")) *v = (nep_real)(0.5 + nep_rng_uniform(&rng));
            if (!strcmp(suf, ".bias")) *v = (nep_real)(0.2 * nep_rng_normal(&rng));
            if (!strcmp(suf, ".running_mean")) *v = (nep_real)(0.1 * nep_rng_normal(&rng));
            if (!strcmp(suf, ".running_var")) *v = (nep_real)(0.5 + nep_rng_uniform(&rng));
        }
    }
    return g;
}

static int count_op(const nep_graph *g, nep_op_kind op) {
    int n = 0;
    for (int k = 0; k < g->n_order; k++) n += g->nodes[g->order[k]].op == op;
    return n;
}

static nep_real *param(nep_graph *g, const char *name) {
    const int i = nep_graph_find_param(g, name);
    assert_true(i >= 0);
    return g->values + g->params[i].offset;
}

/* ---- the graph travels whole ------------------------------------------------------ */

static void test_graph_json_roundtrip(void **state) {
    nep_graph g = build("resnet20", 0, 1), h, c;
    nep_err err;
    char *json = nep_graph_to_json(&g);
    nep_test_assert_ok(nep_graph_from_json(json, &h, &err), &err);
    assert_int_equal(h.n_params, g.n_params);
    assert_int_equal(h.n_values, g.n_values);
    memcpy(h.values, g.values, sizeof(nep_real) * (size_t)g.n_values);
    char *again = nep_graph_to_json(&h);
    assert_string_equal(json, again);
    assert_true(max_diff(&g, &h, data.n) == 0);
    /* compaction keeps the function and the parameters */
    nep_test_assert_ok(nep_graph_compact(&g, &c, &err), &err);
    assert_true(max_diff(&g, &c, data.n) == 0);
    assert_int_equal(nep_graph_param_count(&c), nep_graph_param_count(&g));
    /* a damaged graph is refused with the node named */
    nep_graph_free(&h);
    char *bad = strdup(json);
    char *op = strstr(bad, "\"op\":\"Conv2d\"");
    memcpy(op + 6, "Conv3d", 6);
    assert_int_equal(nep_graph_from_json(bad, &h, &err), NEP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'conv1'"));
    free(bad), free(json), free(again);
    nep_graph_free(&g), nep_graph_free(&h), nep_graph_free(&c);
}

/* ---- each pass of rewrites alone ------------------------------------------------------ */

/* The engine's passes (src/collapse/engine.c), by their rules' names. */
static const char *const fold_rules[] = {
    "bn_to_affine", "remove_identity", "remove_dropout", "remove_identity_affine",
    "affine_into_matmul_after", "merge_affines", "affine_through_global_avgpool",
    "affine_into_matmul_before", NULL};
static const char *const compose_rules[] = {"residual_fold", "compose_linear_linear", "compose_conv_conv",
                                            "compose_conv_conv_border", NULL};

static nep_status fold(const nep_graph *g, nep_graph *out, nep_collapse_info *info, nep_err *err) {
    return nep_collapse_rewrite(g, NULL, fold_rules, out, info, err);
}
static nep_status compose(const nep_graph *g, const nep_collapse_opts *o, nep_graph *out,
                          nep_collapse_info *info, nep_err *err) {
    return nep_collapse_rewrite(g, o, compose_rules, out, info, err);
}

static int rule_count(const nep_collapse_info *info, const char *rule) {
    for (int r = 0; r < info->n_rules; r++)
        if (strcmp(info->rules[r].name, rule) == 0) return info->rules[r].count;
    fail_msg("no rule '%s' in the counts", rule);
    return -1;
}

/* The per-rule counts add up to the totals the report has always had. */
static void check_rule_counts(const nep_collapse_info *i) {
    assert_int_equal(rule_count(i, "bn_to_affine"), i->bn_folded);
    assert_int_equal(rule_count(i, "remove_identity") + rule_count(i, "remove_dropout"), i->removed);
    assert_int_equal(rule_count(i, "remove_identity_affine") + rule_count(i, "affine_into_matmul_after") +
                         rule_count(i, "merge_affines") + rule_count(i, "affine_into_matmul_before"),
                     i->affine_folded);
    assert_int_equal(rule_count(i, "compose_linear_linear") + rule_count(i, "compose_conv_conv") +
                         rule_count(i, "compose_conv_conv_border"), i->composed);
    assert_int_equal(rule_count(i, "compose_conv_conv_border"), i->composed_approx);
    assert_int_equal(rule_count(i, "residual_fold"), i->residual_folded);
    assert_true(rule_count(i, "drop_constant_channels") <= i->channels_dropped + i->constants_folded);
    printf("rules:");
    for (int r = 0; r < i->n_rules; r++)
        if (i->rules[r].count) printf(" %s %d", i->rules[r].name, i->rules[r].count);
    printf("\n");
}

static void test_fold_batchnorm(void **state) {
    const char *models[] = {"resnet20", "mobilenetv2"};
    for (int m = 0; m < 2; m++) {
        nep_graph g = build(models[m], 0, 2), f;
        nep_collapse_info info = {0};
        nep_err err;
        nep_test_assert_ok(fold(&g, &f, &info, &err), &err);
        assert_int_equal(count_op(&f, NEP_OP_BATCHNORM), 0);
        assert_int_equal(info.bn_folded, count_op(&g, NEP_OP_BATCHNORM));
        assert_int_equal(rule_count(&info, "bn_to_affine"), info.bn_folded);
        /* every BN follows a conv that it is the only reader of */
        assert_int_equal(count_op(&f, NEP_OP_AFFINE), 0);
        const double d = max_diff(&g, &f, data.n);
        printf("fold BN %s: max |logit diff| %.3g\n", models[m], d);
        assert_true(d < 1e-4);
        nep_graph_free(&g), nep_graph_free(&f);
    }
}

/* Entropy counts, every neuron of listed rectifiers in one state (ON where on[i] says). */
static void fixed_states(nep_entropy *e, const nep_graph *g, const char *layer, const int *state) {
    for (int i = 0; i < e->n_layers; i++) {
        nep_layer_states *l = &e->layers[i];
        if (strcmp(g->nodes[l->node].name, layer) != 0) continue;
        memset(l->counts, 0, sizeof(uint64_t) * (size_t)(l->neurons * l->states));
        for (int64_t c = 0; c < l->neurons; c++) l->counts[c * l->states + state[c % 4]] = 10;
        return;
    }
    fail_msg("no rectifier '%s'", layer);
}

/* Mixed counts everywhere: nothing is fixed. */
static void mixed_states(nep_entropy *e) {
    for (int i = 0; i < e->n_layers; i++)
        for (int64_t j = 0; j < e->layers[i].neurons * e->layers[i].states; j++) e->layers[i].counts[j] = 1;
}

/* A fixed layer becomes an Affine: ON -> 1, OFF -> the slope (LeakyReLU 0.125, PReLU
 * its learned 0.25, GELU 0, counted as approximate). */
static void test_linearize_maps(void **state) {
    const nep_op_kind acts[3] = {NEP_OP_LEAKY_RELU, NEP_OP_PRELU, NEP_OP_GELU};
    const nep_real off[3] = {(nep_real)0.125, (nep_real)0.25, 0};
    for (int k = 0; k < 3; k++) {
        nep_model_spec s = nep_model_spec_default();
        s.n_hidden = 2, s.hidden[0] = 8, s.hidden[1] = 8, s.act = acts[k], s.slope = 0.125;
        nep_rng rng;
        nep_rng_seed(&rng, 3);
        nep_graph g, l;
        nep_err err;
        nep_entropy e;
        nep_test_assert_ok(nep_model_build(&s, &g, &rng, &err), &err);
        nep_test_assert_ok(nep_entropy_init(&e, &g, false, &err), &err);
        mixed_states(&e);
        const int st[4] = {NEP_STATE_ON, NEP_STATE_OFF, NEP_STATE_OFF, NEP_STATE_ON};
        fixed_states(&e, &g, "act2", st);
        nep_collapse_info info = {0};
        nep_test_assert_ok(nep_collapse_linearize(&g, &e, &l, &info, &err), &err);
        assert_int_equal(info.linearized, 1);
        assert_int_equal(info.approximate, acts[k] == NEP_OP_GELU);
        assert_int_equal(l.nodes[nep_graph_find_node(&l, "act2")].op, NEP_OP_AFFINE);
        const nep_real *w = param(&l, "act2.weight"), *b = param(&l, "act2.bias");
        for (int c = 0; c < 8; c++) {
            assert_true(w[c] == (st[c % 4] == NEP_STATE_ON ? 1 : off[k]));
            assert_true(b[c] == 0);
        }
        assert_int_equal(nep_graph_rectifiers(&l), 1);
        assert_int_equal(nep_graph_depth(&l), 1);
        /* counts from another graph are refused */
        e.layers[0].neurons = 3;
        nep_graph_free(&l);
        assert_int_equal(nep_collapse_linearize(&g, &e, &l, &info, &err), NEP_ERR_ARG);
        nep_entropy_free(&e);
        nep_graph_free(&g);
    }
}

/* Linear after Linear with the rectifier between them linearized: composed when the
 * middle is wide, kept when narrow; the function is the same. */
static void test_compose_linear(void **state) {
    for (int wide = 0; wide < 2; wide++) {
        nep_graph g = build("mlp", wide ? 600 : 8, 4), l, c;
        nep_err err;
        nep_entropy e;
        nep_test_assert_ok(nep_entropy_init(&e, &g, false, &err), &err);
        mixed_states(&e);
        const int on[4] = {NEP_STATE_ON, NEP_STATE_ON, NEP_STATE_ON, NEP_STATE_ON};
        fixed_states(&e, &g, "act1", on);
        nep_collapse_info info = {0};
        nep_collapse_opts o = {0};
        nep_test_assert_ok(nep_collapse(&g, &e, &o, &l, &c, &info, &err), &err);
        const double d = max_diff(&l, &c, data.n);
        printf("compose Linear (middle %d): composed %d, max |logit diff| %.3g\n", wide ? 600 : 8,
               info.composed, d);
        assert_true(d < 1e-4);
        assert_int_equal(info.composed, wide);
        check_rule_counts(&info);
        assert_int_equal(count_op(&c, NEP_OP_LINEAR), 4 - wide);
        assert_int_equal(nep_graph_depth(&c), 2);
        nep_entropy_free(&e);
        nep_graph_free(&g), nep_graph_free(&l), nep_graph_free(&c);
    }
}

/* A small image graph: input [1, 28, 28] -> conv a -> conv b -> flatten -> Linear. */
static nep_graph conv_pair(nep_attrs a, nep_attrs b, uint64_t seed) {
    nep_graph g;
    nep_graph_init(&g);
    const int x = nep_graph_input(&g, "input", (nep_shape){3, {1, 28, 28}});
    const int ca = nep_graph_add1(&g, NEP_OP_CONV2D, "a", x, a);
    const int cb = nep_graph_add1(&g, NEP_OP_CONV2D, "b", ca, b);
    const int f = nep_graph_add1(&g, NEP_OP_FLATTEN, "flatten", cb, (nep_attrs){0});
    const int64_t ha = (28 + 2 * a.conv.pad[0] - a.conv.kernel[0]) / a.conv.stride[0] + 1;
    const int64_t hb = (ha + 2 * b.conv.pad[0] - b.conv.kernel[0]) / b.conv.stride[0] + 1;
    const int fc = nep_graph_add1(&g, NEP_OP_LINEAR, "fc", f, (nep_attrs){.linear = {.features = 10, .bias = true}});
    nep_graph_add_param(&g, ca, "weight", 3, 4, (int64_t[]){a.conv.features, 1, a.conv.kernel[0], a.conv.kernel[1]});
    if (a.conv.bias) nep_graph_add_param(&g, ca, "bias", 1, 1, (int64_t[]){a.conv.features});
    nep_graph_add_param(&g, cb, "weight", 3, 4, (int64_t[]){b.conv.features, a.conv.features, b.conv.kernel[0], b.conv.kernel[1]});
    if (b.conv.bias) nep_graph_add_param(&g, cb, "bias", 1, 1, (int64_t[]){b.conv.features});
    nep_graph_add_param(&g, fc, "weight", 3, 2, (int64_t[]){10, b.conv.features * hb * hb});
    nep_graph_add_param(&g, fc, "bias", 1, 1, (int64_t[]){10});
    nep_err err;
    nep_test_assert_ok(nep_graph_finalize(&g, &err), &err);
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = (nep_real)(0.3 * nep_rng_normal(&rng));
    return g;
}

/* A BatchNorm after a ReLU folds into the conv after it (weights scaled per input
 * channel, its shift into the bias) when that conv reads no zero padding; with padding
 * the shift would be wrong at the border, so it stays an Affine. */
static void test_fold_bn_forward(void **state) {
    for (int padded = 0; padded < 2; padded++) {
        const nep_attrs a = {.conv = {.features = 6, .bias = true, .kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1}}};
        const nep_attrs b = {.conv = {.features = 4, .kernel = {1 + 2 * padded, 1 + 2 * padded}, .stride = {1, 1},
                                      .pad = {padded, padded}}};
        nep_graph g = conv_pair(a, b, 20), f;
        /* a -> ReLU -> BatchNorm -> b */
        const int ca = nep_graph_find_node(&g, "a"), cb = nep_graph_find_node(&g, "b");
        const int r = nep_graph_add1(&g, NEP_OP_RELU, "relu", ca, (nep_attrs){0});
        const int bn = nep_graph_add1(&g, NEP_OP_BATCHNORM, "bn", r, (nep_attrs){0});
        g.nodes[cb].inputs[0] = bn;
        g.output = nep_graph_find_node(&g, "fc");
        const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
        nep_rng rng;
        nep_rng_seed(&rng, 21);
        for (int i = 0; i < 4; i++) nep_graph_add_param(&g, bn, suffix[i], i < 2, 1, (int64_t[]){6});
        nep_err err;
        nep_test_assert_ok(nep_graph_finalize(&g, &err), &err);
        for (int i = 0; i < 4; i++) {
            nep_real *v = g.values + g.params[g.nodes[bn].params[i]].offset;
            for (int c = 0; c < 6; c++) v[c] = (nep_real)(i == 3 ? 0.5 + nep_rng_uniform(&rng) : nep_rng_normal(&rng));
        }
        nep_collapse_info info = {0};
        nep_test_assert_ok(fold(&g, &f, &info, &err), &err);
        assert_int_equal(count_op(&f, NEP_OP_AFFINE), padded);
        const double d = max_diff(&g, &f, data.n);
        printf("fold BN into the next conv (%s): max |logit diff| %.3g\n", padded ? "padded: kept" : "1x1", d);
        assert_true(d < 1e-4);
        nep_graph_free(&g), nep_graph_free(&f);
    }
}

static void test_compose_conv(void **state) {
    nep_collapse_opts exact = {0}, approx = {.allow_approx = true};
    nep_err err;
    /* 3x3 (padded) then 1x1: exact, and cheaper with a wide middle */
    const nep_attrs k3 = {.conv = {.features = 32, .bias = true, .kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1}}};
    const nep_attrs k1 = {.conv = {.features = 2, .bias = true, .kernel = {1, 1}, .stride = {1, 1}}};
    nep_graph g = conv_pair(k3, k1, 5), c;
    nep_collapse_info info = {0};
    nep_test_assert_ok(compose(&g, &exact, &c, &info, &err), &err);
    assert_int_equal(info.composed, 1);
    assert_int_equal(info.composed_approx, 0);
    assert_int_equal(count_op(&c, NEP_OP_CONV2D), 1);
    double d = max_diff(&g, &c, data.n);
    printf("compose 3x3 then 1x1: max |logit diff| %.3g\n", d);
    assert_true(d < 1e-3);
    nep_graph_free(&g), nep_graph_free(&c);

    /* stride 2 then unpadded 3x3: exact (the second reads no padding) */
    const nep_attrs s2 = {.conv = {.features = 16, .kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}}};
    const nep_attrs k3n = {.conv = {.features = 1, .kernel = {3, 3}, .stride = {1, 1}}};
    g = conv_pair(s2, k3n, 6);
    info = (nep_collapse_info){0};
    nep_test_assert_ok(compose(&g, &exact, &c, &info, &err), &err);
    assert_int_equal(info.composed, 1);
    assert_int_equal(c.nodes[nep_graph_find_node(&c, "b")].attrs.conv.kernel[0], 7);
    d = max_diff(&g, &c, data.n);
    printf("compose 3x3/2 then 3x3: max |logit diff| %.3g\n", d);
    assert_true(d < 1e-3);
    nep_graph_free(&g), nep_graph_free(&c);

    /* 3x3 then padded 3x3: the border differs, so only with allow_approx, and then the
     * interior of the output still matches */
    const nep_attrs p3 = {.conv = {.features = 8, .bias = true, .kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1}}};
    const nep_attrs q3 = {.conv = {.features = 1, .kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1}}};
    g = conv_pair(p3, q3, 7);
    info = (nep_collapse_info){0};
    nep_test_assert_ok(compose(&g, &exact, &c, &info, &err), &err);
    assert_int_equal(info.composed, 0);
    nep_graph_free(&c);
    nep_test_assert_ok(compose(&g, &approx, &c, &info, &err), &err);
    assert_int_equal(info.composed_approx, 1);
    nep_exec *eg, *ec;
    nep_test_assert_ok(nep_exec_new(&eg, &g, 1, NULL, &err), &err);
    nep_test_assert_ok(nep_exec_new(&ec, &c, 1, NULL, &err), &err);
    nep_real x[784];
    nep_rng rng;
    nep_rng_seed(&rng, 8);
    for (int i = 0; i < 784; i++) x[i] = (nep_real)nep_rng_normal(&rng);
    nep_exec_forward(eg, x, 1);
    nep_exec_forward(ec, x, 1);
    const nep_real *yg = nep_exec_node_output(eg, nep_graph_find_node(&g, "b")), *yc = nep_exec_node_output(ec, nep_graph_find_node(&c, "b"));
    double interior = 0, border = 0;
    for (int i = 0; i < 28; i++)
        for (int j = 0; j < 28; j++) {
            const double e = fabs((double)yg[i * 28 + j] - (double)yc[i * 28 + j]);
            if (i == 0 || j == 0 || i == 27 || j == 27) border = fmax(border, e);
            else interior = fmax(interior, e);
        }
    printf("compose 3x3 then padded 3x3: interior %.3g, border %.3g\n", interior, border);
    assert_true(interior < 1e-4);
    assert_true(border > 1e-3);
    nep_exec_free(eg), nep_exec_free(ec);
    nep_graph_free(&g), nep_graph_free(&c);
}

/* x + fc(x) -> one Linear with I + W. */
static void test_residual(void **state) {
    nep_graph g;
    nep_graph_init(&g);
    const int x = nep_graph_input(&g, "input", (nep_shape){3, {1, 28, 28}});
    const int f = nep_graph_add1(&g, NEP_OP_FLATTEN, "flatten", x, (nep_attrs){0});
    const int e = nep_graph_add1(&g, NEP_OP_LINEAR, "embed", f, (nep_attrs){.linear = {.features = 16}});
    const int fc = nep_graph_add1(&g, NEP_OP_LINEAR, "fc", e, (nep_attrs){.linear = {.features = 16, .bias = true}});
    const int add = nep_graph_add(&g, NEP_OP_ADD, "add", (int[]){e, fc}, 2, (nep_attrs){0});
    const int r = nep_graph_add1(&g, NEP_OP_RELU, "relu", add, (nep_attrs){0});
    const int h = nep_graph_add1(&g, NEP_OP_LINEAR, "head", r, (nep_attrs){.linear = {.features = 10}});
    nep_graph_add_param(&g, e, "weight", 3, 2, (int64_t[]){16, 784});
    nep_graph_add_param(&g, fc, "weight", 3, 2, (int64_t[]){16, 16});
    nep_graph_add_param(&g, fc, "bias", 1, 1, (int64_t[]){16});
    nep_graph_add_param(&g, h, "weight", 3, 2, (int64_t[]){10, 16});
    nep_err err;
    nep_test_assert_ok(nep_graph_finalize(&g, &err), &err);
    nep_rng rng;
    nep_rng_seed(&rng, 9);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = (nep_real)(0.2 * nep_rng_normal(&rng));
    nep_graph c;
    nep_collapse_info info = {0};
    nep_collapse_opts o = {0};
    nep_test_assert_ok(compose(&g, &o, &c, &info, &err), &err);
    assert_int_equal(info.residual_folded, 1);
    assert_int_equal(rule_count(&info, "residual_fold"), 1);
    assert_int_equal(count_op(&c, NEP_OP_ADD), 0);
    const double d = max_diff(&g, &c, data.n);
    printf("residual x + fc(x): max |logit diff| %.3g\n", d);
    assert_true(d < 1e-4);
    nep_graph_free(&g), nep_graph_free(&c);
}

/* ---- the inference executor ------------------------------------------------------------- */

/* Sharing buffers between nodes changes no number: the logits and a probe's counts are
 * bit-identical to the training executor's, with less memory. */
static void test_inference_executor(void **state) {
    const char *models[] = {"mlp", "resnet20", "mobilenetv2", "cnn"};
    for (int m = 0; m < 4; m++) {
        nep_graph g = build(models[m], 64, 30 + (uint64_t)m);
        nep_exec *a, *b;
        nep_err err;
        /* fewer with NEP_COLLAPSE_IMAGES < 8: both executors' buffers scale with it */
        const int64_t B = n_images < 8 ? n_images : 8;
        nep_test_assert_ok(nep_exec_new(&a, &g, B, NULL, &err), &err);
        nep_test_assert_ok(nep_exec_new(&b, &g, B, &(nep_exec_opts){.inference = true}, &err), &err);
        nep_entropy ea, eb;
        nep_test_assert_ok(nep_entropy_init(&ea, &g, false, &err), &err);
        nep_test_assert_ok(nep_entropy_init(&eb, &g, false, &err), &err);
        nep_loader l;
        nep_real x[8 * 784];
        int32_t y[8];
        nep_test_assert_ok(nep_loader_init(&l, &data, &norm, B, false, false, &err), &err);
        assert_int_equal(nep_loader_next(&l, x, y), B);
        for (int probe = 0; probe < 2; probe++) {
            nep_exec_set_probe(a, probe ? nep_entropy_probe : NULL, &ea);
            nep_exec_set_probe(b, probe ? nep_entropy_probe : NULL, &eb);
            nep_real ya[8 * 10];
            const size_t bytes = sizeof(nep_real) * (size_t)(B * 10);
            memcpy(ya, nep_exec_forward(a, x, B), bytes);
            assert_memory_equal(ya, nep_exec_forward(b, x, B), bytes);
        }
        for (int i = 0; i < ea.n_layers; i++)
            assert_memory_equal(ea.layers[i].counts, eb.layers[i].counts,
                                sizeof(uint64_t) * (size_t)(ea.layers[i].neurons * ea.layers[i].states));
        printf("%s: activations %.2f MB shared, %.2f MB one buffer per node\n", models[m],
               (double)nep_exec_activation_bytes(b) / 1e6, (double)nep_exec_activation_bytes(a) / 1e6);
        /* the two deep nets keep a small part of their activations alive at once */
        const int64_t shared = nep_exec_activation_bytes(b), own = nep_exec_activation_bytes(a);
        assert_true(shared < (m == 1 || m == 2 ? own / 4 : own));
        nep_loader_free(&l);
        nep_entropy_free(&ea), nep_entropy_free(&eb);
        nep_exec_free(a), nep_exec_free(b);
        nep_graph_free(&g);
    }
}

/* ---- forced zero entropy, end to end ------------------------------------------------- */

/* Shifts a BatchNorm (or Linear bias) so the rectifier after it is always ON or OFF on
 * any input: |shift| far above what the weights can produce. */
static void force(nep_graph *g, const char *bias, const char *weight, const double *shift, int period) {
    const int i = nep_graph_find_param(g, bias);
    assert_true(i >= 0);
    nep_real *b = g->values + g->params[i].offset;
    for (int64_t c = 0; c < g->params[i].numel; c++) b[c] = (nep_real)shift[c % period];
    if (weight) {
        const int j = nep_graph_find_param(g, weight);
        for (int64_t c = 0; c < g->params[j].numel; c++) g->values[g->params[j].offset + c] *= (nep_real)0.01;
    }
}

typedef struct forced_case {
    const char *model;
    int expect_linearized;
} forced_case;

/* Measures entropy on the data, collapses, and checks the collapsed model computes what
 * the original did (the forced states hold on every input, so linearizing is exact). */
static void collapse_forced(nep_graph *g, int expect_linearized, int64_t *params_after,
                            nep_graph *out) {
    nep_err err;
    nep_entropy e;
    nep_test_assert_ok(nep_entropy_init(&e, g, false, &err), &err);
    nep_test_assert_ok(nep_entropy_measure(&e, g, &data, &norm, 64, 0, NULL, &err), &err);
    nep_graph l, c;
    nep_collapse_info info = {0};
    nep_collapse_opts o = {0};
    nep_test_assert_ok(nep_collapse(g, &e, &o, &l, &c, &info, &err), &err);
    const double dl = max_diff(g, &l, data.n), dc = max_diff(&l, &c, data.n);
    printf("%d linearized, %lld channels dropped, %d constants folded, %d composed; rectifiers "
           "%d -> %d, depth %d -> %d, params %lld -> %lld; max |diff| original/linearized %.3g, "
           "linearized/collapsed %.3g\n", info.linearized, (long long)info.channels_dropped,
           info.constants_folded, info.composed, nep_graph_rectifiers(g), nep_graph_rectifiers(&c),
           nep_graph_depth(g), nep_graph_depth(&c), (long long)nep_graph_param_count(g),
           (long long)nep_graph_param_count(&c), dl, dc);
    check_rule_counts(&info);
    assert_int_equal(info.linearized, expect_linearized);
    assert_int_equal(nep_graph_rectifiers(&c), nep_graph_rectifiers(g) - expect_linearized);
    assert_true(dl < 1e-3);
    assert_true(dc < 1e-3);
    assert_int_equal(count_op(&c, NEP_OP_BATCHNORM), 0);
    *params_after = nep_graph_param_count(&c);
    nep_entropy_free(&e);
    nep_graph_free(&l);
    *out = c;
}

static void test_forced_mlp(void **state) {
    nep_graph g = build("mlp", 64, 10), c;
    /* act2: ON, OFF, OFF, ON ...; act1: a quarter always OFF (masked, then dropped).
     * act3 then reads 1000 + a little on every input and stays in one state as well. */
    const double s2[4] = {1000, -1000, -1000, 1000}, s1[4] = {-1000, 0, 0, 0};
    force(&g, "fc2.bias", NULL, s2, 4);
    force(&g, "fc1.bias", NULL, s1, 4);
    int64_t after;
    collapse_forced(&g, 2, &after, &c);
    /* fc2, fc3 and fc4 are one Linear after fc1, which lost at least its forced OFF rows */
    assert_int_equal(count_op(&c, NEP_OP_LINEAR), 2);
    assert_true(c.params[nep_graph_find_param(&c, "fc1.weight")].shape[0] <= 48);
    assert_true(after < nep_graph_param_count(&g));
    nep_graph_free(&g), nep_graph_free(&c);
}

static void test_forced_resnet20(void **state) {
    nep_graph g = build("resnet20", 0, 11), c;
    const double off[1] = {-100}, mixed[2] = {100, -100};
    force(&g, "layer3.0.bn1.bias", "layer3.0.bn1.weight", off, 1);   /* whole branch constant */
    force(&g, "layer3.1.bn1.bias", "layer3.1.bn1.weight", mixed, 2); /* half dropped */
    int64_t after;
    collapse_forced(&g, 2, &after, &c);
    /* layer3.0's residual branch is gone: its Add became a bias on the shortcut */
    assert_int_equal(nep_graph_find_node(&c, "layer3.0.conv2"), -1);
    assert_int_equal(nep_graph_find_node(&c, "layer3.0.conv1"), -1);
    assert_int_equal(c.params[nep_graph_find_param(&c, "layer3.1.conv1.weight")].shape[0], 32);
    assert_int_equal(nep_graph_depth(&c), nep_graph_depth(&g) - 2);
    assert_true(after < nep_graph_param_count(&g) - 2 * 64 * 64 * 9);
    /* the collapsed model saves, loads and computes the same */
    char *dir = nep_test_tmpdir(), *path = nep_test_path(dir, "c.safetensors");
    nep_model_spec spec = nep_model_spec_default(), back;
    snprintf(spec.name, sizeof spec.name, "resnet20");
    spec.collapsed = true;
    nep_err err;
    nep_graph h;
    nep_test_assert_ok(nep_checkpoint_save(path, &c, &spec, &norm, NULL, NULL, 0, &err), &err);
    nep_test_assert_ok(nep_checkpoint_load(path, &h, &back, NULL, NULL, &err), &err);
    assert_true(back.collapsed);
    assert_true(max_diff(&c, &h, data.n) == 0);
    free(path);
    nep_test_rmtree(dir);
    nep_graph_free(&g), nep_graph_free(&c), nep_graph_free(&h);
}

static void test_forced_mobilenetv2(void **state) {
    nep_graph g = build("mobilenetv2", 0, 12), c;
    /* features.2's depthwise ReLU6: OFF+ (the constant 6), OFF, ON, ON in turn;
     * features.3's expansion ReLU6: always ON (0 < z < 6) */
    const double dw[4] = {100, -100, 3, 3}, on[1] = {3};
    force(&g, "features.2.conv.1.1.bias", "features.2.conv.1.1.weight", dw, 4);
    force(&g, "features.3.conv.0.1.bias", "features.3.conv.0.1.weight", on, 1);
    const int64_t hidden = g.params[nep_graph_find_param(&g, "features.2.conv.1.0.weight")].shape[0];
    int64_t after;
    collapse_forced(&g, 2, &after, &c);
    /* half of features.2's expanded channels are constants (and a few more always OFF
     * after the expansion): gone from the expansion, the depthwise conv and the projection */
    const int64_t left = c.params[nep_graph_find_param(&c, "features.2.conv.1.0.weight")].shape[0];
    assert_true(left <= hidden / 2);
    assert_int_equal(c.params[nep_graph_find_param(&c, "features.2.conv.0.0.weight")].shape[0], left);
    assert_int_equal(c.params[nep_graph_find_param(&c, "features.2.conv.2.weight")].shape[1], left);
    assert_true(after < nep_graph_param_count(&g));
    nep_graph_free(&g), nep_graph_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_json_roundtrip), cmocka_unit_test(test_fold_batchnorm),
        cmocka_unit_test(test_linearize_maps),       cmocka_unit_test(test_compose_linear),
        cmocka_unit_test(test_fold_bn_forward),      cmocka_unit_test(test_compose_conv),
        cmocka_unit_test(test_residual),             cmocka_unit_test(test_inference_executor),
        cmocka_unit_test(test_forced_mlp),           cmocka_unit_test(test_forced_resnet20),
        cmocka_unit_test(test_forced_mobilenetv2),
    };
    if (read_n_images()) return 1;
    return NEP_RUN_BOTH_LAYOUTS(tests, load_data, free_data);
}
