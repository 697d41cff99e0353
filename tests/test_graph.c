/* The graph IR: shapes, order, accounting, rewiring (bypass, replace_uses), copy,
 * cycles, the rectifier probe, dropout and stochastic-depth masks, the executor's views
 * (Tokens aliased in NHWC, Flatten not), a parameter named as its node, optimizer masks
 * and seeded determinism. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/model.h"
#include "nepenthe/rng.h"
#include "nepenthe/train.h"
#include "testutil.h"

/* input[6] -> fc_a(6) -> relu -> add(relu, input) -> fc_out(3) */
static void build_residual(nep_graph *g, nep_rng *rng) {
    nep_graph_init(g);
    int x = nep_graph_input(g, "input", (nep_shape){1, {6}});
    int a = nep_graph_add1(g, NEP_OP_LINEAR, "fc_a", x, (nep_attrs){.linear = {.features = 6, .bias = true}});
    nep_graph_add_param(g, a, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2, (int64_t[]){6, 6});
    nep_graph_add_param(g, a, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){6});
    int r = nep_graph_add1(g, NEP_OP_RELU, "relu", a, (nep_attrs){0});
    int add = nep_graph_add(g, NEP_OP_ADD, "add", (int[]){r, x}, 2, (nep_attrs){0});
    int o = nep_graph_add1(g, NEP_OP_LINEAR, "fc_out", add, (nep_attrs){.linear = {.features = 3, .bias = true}});
    nep_graph_add_param(g, o, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2, (int64_t[]){3, 6});
    nep_graph_add_param(g, o, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){3});
    assert_int_equal(nep_graph_finalize(g, NULL), NEP_OK);
    for (int64_t i = 0; i < g->n_values; i++) g->values[i] = (nep_real)nep_rng_normal(rng);
}

static void forward(nep_graph *g, const nep_real *x, int64_t B, nep_real *out) {
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, g, B, NULL, NULL), NEP_OK);
    const nep_real *y = nep_exec_forward(ex, x, B);
    memcpy(out, y, sizeof(nep_real) * (size_t)(B * nep_shape_numel(&g->nodes[g->output].shape)));
    nep_exec_free(ex);
}

static void test_shapes_order_accounting(void **s) {
    nep_rng rng;
    nep_rng_seed(&rng, 1);
    nep_graph g;
    build_residual(&g, &rng);
    assert_int_equal(g.n_order, 5);
    for (int k = 0; k < g.n_order; k++) /* every node comes after its inputs */
        for (int i = 0; i < g.nodes[g.order[k]].n_inputs; i++) {
            int pos = -1;
            for (int j = 0; j < g.n_order; j++)
                if (g.order[j] == g.nodes[g.order[k]].inputs[i]) pos = j;
            assert_true(pos >= 0 && pos < k);
        }
    const nep_node *o = &g.nodes[nep_graph_find_node(&g, "fc_out")];
    assert_int_equal(o->shape.ndim, 1);
    assert_int_equal(o->shape.d[0], 3);
    assert_int_equal(nep_node_flops(&g, o), 2 * 6 * 3 + 3);
    assert_int_equal(nep_node_param_count(&g, o), 3 * 6 + 3);
    assert_int_equal(nep_graph_param_count(&g), 6 * 6 + 6 + 3 * 6 + 3);
    assert_int_equal(nep_node_act_bytes(&g, o), 3 * (int64_t)sizeof(nep_real));
    /* parameters sit at distinct, non-overlapping offsets */
    for (int i = 0; i < g.n_params; i++)
        for (int j = i + 1; j < g.n_params; j++)
            assert_true(g.params[i].offset + g.params[i].numel <= g.params[j].offset ||
                        g.params[j].offset + g.params[j].numel <= g.params[i].offset);
    assert_int_equal(nep_graph_find_param(&g, "fc_a.bias"), 1);
    nep_graph_free(&g);
}

/* Deleting the ReLU must give exactly the network written without it. */
static void test_bypass_and_replace(void **s) {
    nep_rng rng;
    nep_rng_seed(&rng, 2);
    nep_graph g;
    build_residual(&g, &rng);
    nep_real x[4 * 6], y_ref[4 * 3], y[4 * 3], y0[4 * 3];
    for (int i = 0; i < 24; i++) x[i] = (nep_real)nep_rng_normal(&rng);
    forward(&g, x, 4, y0);
    /* reference by hand: fc_out(fc_a(x) + x) */
    const nep_real *Wa = g.values, *ba = g.values + g.params[1].offset;
    const nep_real *Wo = g.values + g.params[2].offset, *bo = g.values + g.params[3].offset;
    for (int b = 0; b < 4; b++) {
        nep_real h[6];
        for (int i = 0; i < 6; i++) {
            double acc = ba[i];
            for (int j = 0; j < 6; j++) acc += (double)Wa[i * 6 + j] * x[b * 6 + j];
            h[i] = (nep_real)acc + x[b * 6 + i];
        }
        for (int i = 0; i < 3; i++) {
            double acc = bo[i];
            for (int j = 0; j < 6; j++) acc += (double)Wo[i * 6 + j] * h[j];
            y_ref[b * 3 + i] = (nep_real)acc;
        }
    }
    assert_int_equal(nep_graph_bypass(&g, nep_graph_find_node(&g, "relu"), NULL), NEP_OK);
    assert_int_equal(nep_graph_finalize(&g, NULL), NEP_OK);
    assert_int_equal(nep_graph_find_node(&g, "relu"), -1);
    assert_int_equal(g.n_order, 4);
    forward(&g, x, 4, y);
    for (int i = 0; i < 12; i++) assert_true(fabs((double)(y[i] - y_ref[i])) < 1e-5);
    /* the ReLU did something, or this test would prove nothing */
    double diff = 0;
    for (int i = 0; i < 12; i++) diff += fabs((double)(y[i] - y0[i]));
    assert_true(diff > 1e-3);
    /* Insert an Identity between fc_a and its consumers: output unchanged. */
    int fa = nep_graph_find_node(&g, "fc_a");
    int id = nep_graph_add1(&g, NEP_OP_IDENTITY, "id", fa, (nep_attrs){0});
    g.output = nep_graph_find_node(&g, "fc_out");
    nep_graph_replace_uses(&g, fa, id);
    assert_int_equal(nep_graph_finalize(&g, NULL), NEP_OK);
    assert_int_equal(g.nodes[nep_graph_find_node(&g, "add")].inputs[0], id);
    nep_real y2[12];
    forward(&g, x, 4, y2);
    assert_memory_equal(y, y2, sizeof y);
    /* Add has two inputs: bypass refuses it. */
    nep_err err;
    assert_int_equal(nep_graph_bypass(&g, nep_graph_find_node(&g, "add"), &err), NEP_ERR_ARG);
    nep_graph_free(&g);
}

static void test_copy_is_deep(void **s) {
    nep_rng rng;
    nep_rng_seed(&rng, 3);
    nep_graph g, c;
    build_residual(&g, &rng);
    assert_int_equal(nep_graph_copy(&g, &c, NULL), NEP_OK);
    nep_real x[6] = {1, -2, 3, -4, 5, -6}, a[3], b[3];
    forward(&g, x, 1, a);
    forward(&c, x, 1, b);
    assert_memory_equal(a, b, sizeof a);
    c.values[0] += 1;
    nep_graph_bypass(&c, nep_graph_find_node(&c, "relu"), NULL);
    assert_false(g.nodes[nep_graph_find_node(&g, "relu")].dead);
    forward(&g, x, 1, b);
    assert_memory_equal(a, b, sizeof a);
    nep_graph_free(&g);
    nep_graph_free(&c);
}

static void test_cycle_rejected(void **s) {
    nep_graph g;
    nep_graph_init(&g);
    int x = nep_graph_input(&g, "input", (nep_shape){1, {4}});
    int r1 = nep_graph_add1(&g, NEP_OP_RELU, "r1", x, (nep_attrs){0});
    int r2 = nep_graph_add1(&g, NEP_OP_RELU, "r2", r1, (nep_attrs){0});
    g.nodes[r1].inputs[0] = r2;
    nep_err err;
    assert_int_equal(nep_graph_finalize(&g, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "cycle"));
    nep_graph_free(&g);
}

typedef struct {
    int calls;
    nep_real z[8 * 6];
} probe_seen;

static void probe(void *ctx, const nep_graph *g, int node, const nep_real *z, int64_t batch,
                  bool channels_last) {
    probe_seen *p = ctx;
    p->calls++;
    memcpy(p->z, z, sizeof(nep_real) * (size_t)(batch * 6));
}

/* The probe sees the rectifier's input (the pre-activation), signs intact. */
static void test_probe_sees_preactivation(void **s) {
    nep_rng rng;
    nep_rng_seed(&rng, 4);
    nep_graph g;
    build_residual(&g, &rng);
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, 8, NULL, NULL), NEP_OK);
    probe_seen seen = {0};
    nep_exec_set_probe(ex, probe, &seen);
    nep_real x[8 * 6];
    for (int i = 0; i < 48; i++) x[i] = (nep_real)nep_rng_normal(&rng);
    nep_exec_forward(ex, x, 8);
    assert_int_equal(seen.calls, 1);
    int fa = nep_graph_find_node(&g, "fc_a");
    assert_memory_equal(seen.z, nep_exec_node_output(ex, fa), sizeof seen.z);
    int neg = 0;
    for (int i = 0; i < 48; i++) neg += nep_exec_node_output(ex, fa)[i] < 0;
    assert_true(neg > 0); /* the ReLU did not overwrite its input */
    nep_exec_free(ex);
    nep_graph_free(&g);
}

static void test_dropout_masks(void **s) {
    const double p = 0.3;
    nep_graph g;
    int id = nep_test_op_graph(&g, NEP_OP_DROPOUT, (nep_attrs){.dropout = {.p = p}}, (nep_shape){1, {1000}});
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, 4, NULL, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(ex, NULL), NEP_OK);
    nep_rng rng, again;
    nep_rng_seed(&rng, 5);
    again = rng;
    nep_exec_set_training(ex, true, &rng);
    static nep_real x[4000], dy[4000], y1[4000];
    for (int i = 0; i < 4000; i++) x[i] = (nep_real)(i % 7 + 1), dy[i] = 1;
    const nep_real *y = nep_exec_forward(ex, x, 4);
    int dropped = 0;
    for (int i = 0; i < 4000; i++) {
        if (y[i] == 0) dropped++;
        else assert_true(fabs((double)y[i] - x[i] / (1 - p)) < 1e-5 * x[i]);
    }
    /* 4000 Bernoulli(0.3) draws: mean 1200, sd 29; 6 sd either side. */
    assert_in_range(dropped, 1200 - 174, 1200 + 174);
    memcpy(y1, y, sizeof y1);
    nep_exec_backward(ex, dy);
    for (int i = 0; i < 4000; i++) assert_true((nep_exec_input_grad(ex)[i] == 0) == (y1[i] == 0));
    nep_exec_set_training(ex, true, &again); /* same seed, same mask, on one thread too */
    const int threads = omp_get_max_threads();
    omp_set_num_threads(threads > 1 ? 1 : 2);
    y = nep_exec_forward(ex, x, 4);
    omp_set_num_threads(threads);
    assert_memory_equal(y, y1, sizeof y1);
    nep_exec_set_training(ex, false, NULL); /* evaluation: identity */
    y = nep_exec_forward(ex, x, 4);
    assert_memory_equal(y, x, sizeof x);
    (void)id;
    nep_exec_free(ex);
    nep_graph_free(&g);
}

/* StochasticDepth in training, torchvision's "row" mode: each sample all zero or all
 * scaled by 1 / (1 - p); about 1 - p of them kept; the same seed, the same masks; the
 * gradient through the same mask; p = 1 drops every sample; evaluation the identity. */
static void test_drop_path_masks(void **s) {
    enum { B = 2000, PER = 6 };
    const double p = 0.3;
    nep_graph g;
    nep_test_op_graph(&g, NEP_OP_DROP_PATH, (nep_attrs){.drop_path = {.p = p}}, (nep_shape){2, {2, 3}, 1});
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, B, NULL, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(ex, NULL), NEP_OK);
    nep_rng rng, again;
    nep_rng_seed(&rng, 8);
    again = rng;
    nep_exec_set_training(ex, true, &rng);
    static nep_real x[B * PER], dy[B * PER], y1[B * PER];
    for (int i = 0; i < B * PER; i++) x[i] = (nep_real)(i % 5 + 1), dy[i] = (nep_real)(i % 3 + 1);
    const nep_real *y = nep_exec_forward(ex, x, B);
    int dropped = 0;
    for (int b = 0; b < B; b++) {
        const bool zero = y[b * PER] == 0;
        dropped += zero;
        for (int k = 0; k < PER; k++) {
            const int i = b * PER + k;
            if (zero) assert_true(y[i] == 0);
            else assert_true(fabs((double)y[i] - x[i] / (1 - p)) < 1e-5 * x[i]);
        }
    }
    /* 2000 Bernoulli(0.3) draws: mean 600, sd 20.5; 6 sd either side. */
    assert_in_range(dropped, 600 - 123, 600 + 123);
    memcpy(y1, y, sizeof y1);
    nep_exec_backward(ex, dy);
    for (int i = 0; i < B * PER; i++) {
        const double want = y1[i] == 0 ? 0 : dy[i] / (1 - p);
        assert_true(fabs(nep_exec_input_grad(ex)[i] - want) < 1e-5 * fabs(want) + 1e-12);
    }
    nep_exec_set_training(ex, true, &again); /* same seed, same masks */
    y = nep_exec_forward(ex, x, B);
    assert_memory_equal(y, y1, sizeof y1);
    nep_exec_set_training(ex, false, NULL); /* evaluation: identity */
    y = nep_exec_forward(ex, x, B);
    assert_memory_equal(y, x, sizeof x);
    nep_exec_free(ex);
    nep_graph_free(&g);
    nep_test_op_graph(&g, NEP_OP_DROP_PATH, (nep_attrs){.drop_path = {.p = 1}}, (nep_shape){2, {2, 3}, 1});
    assert_int_equal(nep_exec_new(&ex, &g, 4, NULL, NULL), NEP_OK);
    nep_exec_set_training(ex, true, &rng);
    y = nep_exec_forward(ex, x, 4);
    for (int i = 0; i < 4 * PER; i++) assert_true(y[i] == 0);
    nep_exec_free(ex);
    nep_graph_free(&g);
    nep_err err;
    nep_graph_init(&g);
    nep_graph_add1(&g, NEP_OP_DROP_PATH, "drop", nep_graph_input(&g, "input", (nep_shape){1, {3}}),
                   (nep_attrs){.drop_path = {.p = 1.5}});
    assert_int_equal(nep_graph_finalize(&g, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "'drop'"));
    nep_graph_free(&g);
}

/* input [3, 2, 4] -> Tokens (grid or not) -> Flatten: Tokens is its input's memory in an
 * NHWC executor and a transpose of it in NCHW, Flatten of tokens (never moved) aliases
 * them in both; the outputs agree, both PyTorch's order. */
static void test_tokens_view(void **s) {
    for (int grid = 0; grid < 2; grid++) {
        nep_graph g;
        nep_graph_init(&g);
        const int in = nep_graph_input(&g, "input", (nep_shape){3, {3, 2, 4}});
        const int t = nep_graph_add1(&g, NEP_OP_TOKENS, "tokens", in, (nep_attrs){.tokens = {.grid = grid}});
        const int f = nep_graph_add1(&g, NEP_OP_FLATTEN, "flatten", t, (nep_attrs){0});
        assert_int_equal(nep_graph_finalize(&g, NULL), NEP_OK);
        assert_int_equal(g.nodes[t].shape.ndim, grid ? 3 : 2);
        assert_int_equal(g.nodes[t].shape.axis, grid ? 2 : 1);
        assert_int_equal(g.nodes[t].shape.d[grid ? 2 : 1], 3);
        nep_real x[2 * 24];
        for (int i = 0; i < 48; i++) x[i] = (nep_real)i;
        for (int layout = NEP_LAYOUT_NCHW; layout <= NEP_LAYOUT_NHWC; layout++) {
            nep_exec *ex;
            assert_int_equal(nep_exec_new(&ex, &g, 2, &(nep_exec_opts){.layout = layout}, NULL), NEP_OK);
            const nep_real *y = nep_exec_forward(ex, x, 2);
            const bool nhwc = layout == NEP_LAYOUT_NHWC;
            assert_true((nep_exec_node_output(ex, t) == nep_exec_node_output(ex, in)) == nhwc);
            assert_ptr_equal(nep_exec_node_output(ex, f), nep_exec_node_output(ex, t));
            for (int b = 0; b < 2; b++) /* y[b, k, c] = x[b, c, k] */
                for (int k = 0; k < 8; k++)
                    for (int c = 0; c < 3; c++) assert_true(y[(b * 8 + k) * 3 + c] == x[(b * 3 + c) * 8 + k]);
            nep_exec_free(ex);
        }
        nep_graph_free(&g);
    }
    /* one channel: the two orders agree, aliased in either layout */
    nep_graph g;
    nep_graph_init(&g);
    const int in = nep_graph_input(&g, "input", (nep_shape){3, {1, 2, 4}});
    const int t = nep_graph_add1(&g, NEP_OP_TOKENS, "tokens", in, (nep_attrs){0});
    assert_int_equal(nep_graph_finalize(&g, NULL), NEP_OK);
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, 2, &(nep_exec_opts){.layout = NEP_LAYOUT_NCHW}, NULL), NEP_OK);
    nep_real x[8] = {0};
    nep_exec_forward(ex, x, 1);
    assert_ptr_equal(nep_exec_node_output(ex, t), nep_exec_node_output(ex, in));
    nep_exec_free(ex);
    nep_graph_free(&g);
}

/* An empty suffix names a parameter as its node (torchvision's top-level "class_token"),
 * through JSON and back; the wrong shape is refused naming the node. */
static void test_param_named_as_node(void **s) {
    nep_graph g, h;
    nep_err err;
    nep_graph_init(&g);
    const int in = nep_graph_input(&g, "input", (nep_shape){2, {4, 5}, 1});
    const int ct = nep_graph_add1(&g, NEP_OP_CLASS_TOKEN, "class_token", in, (nep_attrs){0});
    const int pe = nep_graph_add1(&g, NEP_OP_POS_EMBEDDING, "encoder.pos_embedding", ct, (nep_attrs){0});
    assert_int_equal(nep_graph_add_param(&g, ct, "", NEP_PARAM_TRAINABLE, 3, (int64_t[]){1, 1, 5}), 0);
    nep_graph_add_param(&g, pe, "", NEP_PARAM_TRAINABLE, 3, (int64_t[]){1, 5, 5});
    nep_test_assert_ok(nep_graph_finalize(&g, &err), &err);
    assert_string_equal(g.params[0].name, "class_token");
    assert_int_equal(nep_graph_find_param(&g, "encoder.pos_embedding"), 1);
    assert_int_equal(g.nodes[pe].shape.d[0], 5);
    char *json = nep_graph_to_json(&g);
    nep_test_assert_ok(nep_graph_from_json(json, &h, &err), &err);
    assert_int_equal(h.n_params, 2);
    assert_string_equal(h.params[0].name, "class_token");
    assert_string_equal(h.params[1].name, "encoder.pos_embedding");
    free(json);
    nep_graph_free(&h);
    nep_graph_free(&g);
    nep_graph_init(&g); /* a positional embedding for the wrong number of tokens */
    const int x = nep_graph_input(&g, "input", (nep_shape){2, {4, 5}, 1});
    const int bad = nep_graph_add1(&g, NEP_OP_POS_EMBEDDING, "pos", x, (nep_attrs){0});
    nep_graph_add_param(&g, bad, "", NEP_PARAM_TRAINABLE, 3, (int64_t[]){1, 5, 5});
    assert_int_equal(nep_graph_finalize(&g, &err), NEP_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "'pos'"));
    nep_graph_free(&g);
}

/* Each token op refuses an input of the wrong kind with a message naming the node and
 * what it got. */
static void test_token_ops_refuse_wrong_shapes(void **s) {
    const nep_shape img = {3, {4, 3, 3}}, tok = {2, {5, 4}, 1};
    const struct {
        nep_op_kind op;
        nep_shape in;
        const char *says;
    } cases[] = {
        {NEP_OP_TOKENS, tok, "wants 3 ([C, H, W]"},
        {NEP_OP_CLASS_TOKEN, img, "wants a token sequence [T, C]"},
        {NEP_OP_POS_EMBEDDING, img, "wants a token sequence [T, C]"},
        {NEP_OP_TAKE_TOKEN, (nep_shape){1, {4}}, "got 1 dimensions"},
        {NEP_OP_TOKEN_MEAN, img, "features at axis 0"},
        {NEP_OP_PATCH_MERGE, tok, "wants a grid [H, W, C]"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nep_graph g;
        nep_err err;
        nep_graph_init(&g);
        nep_graph_add1(&g, cases[k].op, "bad_node", nep_graph_input(&g, "input", cases[k].in), (nep_attrs){0});
        assert_int_equal(nep_graph_finalize(&g, &err), NEP_ERR_SHAPE);
        if (!strstr(err.msg, "'bad_node'") || !strstr(err.msg, cases[k].says))
            fail_msg("op %d: unexpected message: %s", (int)cases[k].op, err.msg);
        nep_graph_free(&g);
    }
}

/* A masked weight stays exactly zero through SGD with momentum and weight decay and
 * through AdamW, whatever its gradient. */
static void check_mask_holds(nep_optim_kind kind) {
    nep_model_spec spec = nep_model_spec_default();
    spec.n_hidden = 1, spec.hidden[0] = 16, spec.in_h = 4, spec.in_w = 4;
    nep_rng rng;
    nep_rng_seed(&rng, 6);
    nep_graph g;
    assert_int_equal(nep_model_build(&spec, &g, &rng, NULL), NEP_OK);
    const nep_param *w = &g.params[nep_graph_find_param(&g, "fc1.weight")];
    for (int64_t i = 0; i < w->numel; i += 3) g.masks[w->offset + i] = 0;
    nep_graph_apply_masks(&g);
    nep_optim_cfg cfg = nep_optim_defaults(kind);
    cfg.weight_decay = 0.1;
    nep_trainer t;
    assert_int_equal(nep_trainer_init(&t, &g, &cfg, 8, NULL, NULL), NEP_OK);
    for (int step = 0; step < 5; step++) {
        for (int i = 0; i < 8 * 16; i++) t.x[i] = (nep_real)nep_rng_normal(&rng);
        for (int b = 0; b < 8; b++) t.y[b] = (int32_t)nep_rng_below(&rng, 10);
        double loss;
        assert_int_equal(nep_train_step(&t, 8, 0.1, &rng, &loss, NULL, NULL), NEP_OK);
    }
    int64_t moved = 0;
    for (int64_t i = 0; i < w->numel; i++) {
        if (i % 3 == 0) assert_true(g.values[w->offset + i] == 0 && t.opt.m[w->offset + i] == 0);
        else moved += g.values[w->offset + i] != 0;
    }
    assert_true(moved > 0);
    nep_trainer_free(&t);
    nep_graph_free(&g);
}
static void test_masks_survive_sgd(void **s) { check_mask_holds(NEP_OPTIM_SGD); }
static void test_masks_survive_adamw(void **s) { check_mask_holds(NEP_OPTIM_ADAMW); }

/* Same seed, one thread: bit-identical weights after training with dropout. */
static void train_once(uint64_t seed, nep_graph *g) {
    nep_model_spec spec = nep_model_spec_default();
    spec.n_hidden = 2, spec.hidden[0] = 32, spec.hidden[1] = 16, spec.in_h = 6, spec.in_w = 6;
    spec.dropout = 0.2;
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    assert_int_equal(nep_model_build(&spec, g, &rng, NULL), NEP_OK);
    nep_optim_cfg cfg = nep_optim_defaults(NEP_OPTIM_SGD);
    nep_trainer t;
    assert_int_equal(nep_trainer_init(&t, g, &cfg, 16, NULL, NULL), NEP_OK);
    for (int step = 0; step < 10; step++) {
        for (int i = 0; i < 16 * 36; i++) t.x[i] = (nep_real)nep_rng_normal(&rng);
        for (int b = 0; b < 16; b++) t.y[b] = (int32_t)nep_rng_below(&rng, 10);
        double loss;
        assert_int_equal(nep_train_step(&t, 16, 0.05, &rng, &loss, NULL, NULL), NEP_OK);
    }
    nep_trainer_free(&t);
}

static void test_seed_reproduces(void **s) {
    omp_set_num_threads(1);
    nep_graph a, b, c;
    train_once(7, &a);
    train_once(7, &b);
    train_once(8, &c);
    assert_memory_equal(a.values, b.values, sizeof(nep_real) * (size_t)a.n_values);
    assert_memory_not_equal(a.values, c.values, sizeof(nep_real) * (size_t)a.n_values);
    nep_graph_free(&a);
    nep_graph_free(&b);
    nep_graph_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_order_accounting),
        cmocka_unit_test(test_bypass_and_replace),
        cmocka_unit_test(test_copy_is_deep),
        cmocka_unit_test(test_cycle_rejected),
        cmocka_unit_test(test_probe_sees_preactivation),
        cmocka_unit_test(test_dropout_masks),
        cmocka_unit_test(test_drop_path_masks),
        cmocka_unit_test(test_tokens_view),
        cmocka_unit_test(test_param_named_as_node),
        cmocka_unit_test(test_token_ops_refuse_wrong_shapes),
        cmocka_unit_test(test_masks_survive_sgd),
        cmocka_unit_test(test_masks_survive_adamw),
        cmocka_unit_test(test_seed_reproduces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
