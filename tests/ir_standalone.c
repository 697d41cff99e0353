/* The IR without a backend: this test links build/libnepenthe_ir.a and neither oneDNN
 * nor OpenBLAS (the Makefile links it with IR_LDLIBS only), so a dependency of the graph,
 * the op metadata, the models, the rewrites, checkpoints or the ONNX writer on a kernel
 * breaks its link. What it computes is checked with plain loops here: no executor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/checkpoint.h"
#include "nepenthe/collapse.h"
#include "nepenthe/model.h"
#include "nepenthe/onnx.h"
#include "nepenthe/rng.h"
#include "onnx/onnx.pb-c.h"
#include "ops/ops.h"
#include "testutil.h"

static nep_graph build(const char *name, uint64_t seed) {
    nep_model_spec s = nep_model_spec_default();
    snprintf(s.name, sizeof s.name, "%s", name);
    if (!strcmp(name, "mlp")) {
        s.n_hidden = 3;
        s.hidden[0] = 32, s.hidden[1] = 24, s.hidden[2] = 16;
    } else if (!strcmp(name, "mobilenetv2")) {
        s.width_mult = 0.25;
        s.act = NEP_OP_RELU6;
    }
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    nep_graph g;
    nep_err err;
    nep_test_assert_ok(nep_model_build(&s, &g, &rng, &err), &err);
    return g;
}

static int count_op(const nep_graph *g, nep_op_kind op) {
    int n = 0;
    for (int k = 0; k < g->n_order; k++) n += g->nodes[g->order[k]].op == op;
    return n;
}

/* Every model's graph goes to JSON and back with the same nodes, shapes (with their
 * neuron axes: tokmlp's are last), parameters and FLOPs. */
static void test_models_roundtrip(void **state) {
    const char *models[] = {"mlp", "resmlp", "tokmlp", "cnn", "resnet20", "resnet18", "mobilenetv2"};
    for (size_t m = 0; m < sizeof models / sizeof *models; m++) {
        nep_graph g = build(models[m], 1), h;
        nep_err err;
        char *json = nep_graph_to_json(&g);
        assert_non_null(json);
        nep_test_assert_ok(nep_graph_from_json(json, &h, &err), &err);
        free(json);
        assert_int_equal(h.n_order, g.n_order);
        assert_int_equal(h.n_params, g.n_params);
        assert_int_equal(h.n_values, g.n_values);
        int64_t fg = 0, fh = 0;
        for (int k = 0; k < g.n_order; k++) {
            const nep_node *a = &g.nodes[g.order[k]], *b = &h.nodes[h.order[k]];
            assert_string_equal(a->name, b->name);
            assert_int_equal(a->op, b->op);
            assert_int_equal(a->shape.ndim, b->shape.ndim);
            assert_int_equal(a->shape.axis, b->shape.axis);
            for (int d = 0; d < a->shape.ndim; d++) assert_int_equal(a->shape.d[d], b->shape.d[d]);
            fg += nep_node_flops(&g, a), fh += nep_node_flops(&h, b);
        }
        assert_true(fg > 0);
        assert_int_equal(fg, fh);
        nep_graph_free(&g), nep_graph_free(&h);
    }
}

/* Each op's attributes, as its file declares them (nep_op_def.attrs), go to JSON and back
 * unchanged; every op that declares any has a case here. */
static void test_attrs_roundtrip(void **state) {
    const nep_shape img = {3, {4, 9, 9}}, vec = {1, {6}}, grid = {3, {5, 4, 6}, 2};
    const struct {
        nep_op_kind op;
        nep_attrs a;
        nep_shape in;
    } cases[] = {
        {NEP_OP_LINEAR, {.linear = {.features = 5, .bias = true}}, vec},
        {NEP_OP_CONV2D, {.conv = {.features = 8, .bias = true, .kernel = {3, 1}, .stride = {2, 1},
                                  .pad = {1, 0}, .groups = 2, .shortcut = true}}, img},
        {NEP_OP_MAXPOOL, {.pool = {.kernel = {3, 2}, .stride = {2, 1}, .pad = {1, 1}}}, img},
        {NEP_OP_AVGPOOL, {.pool = {.kernel = {2, 3}, .stride = {0, 2}, .pad = {1, 0}}}, img},
        {NEP_OP_BATCHNORM, {.batchnorm = {.eps = 1e-3, .momentum = 0.25}}, img},
        {NEP_OP_LEAKY_RELU, {.leaky_relu = {.slope = 0.125}}, vec},
        {NEP_OP_DROPOUT, {.dropout = {.p = 0.375}}, vec},
        {NEP_OP_LAYERNORM, {.layernorm = {.eps = 1e-6}}, vec},
        {NEP_OP_ATTENTION, {.attention = {.heads = 2, .window = {3, 2}, .shift = {1, 1}}}, grid},
        {NEP_OP_TOKENS, {.tokens = {.grid = true}}, img},
        {NEP_OP_DROP_PATH, {.drop_path = {.p = 0.625}}, vec},
        {NEP_OP_SDPA, {.sdpa = {.heads = 4, .kv_heads = 2, .causal = true, .dropout = 0.125}}, (nep_shape){2, {5, 8}, 1}},
        {NEP_OP_RMSNORM, {.layernorm = {.eps = 1e-6}}, vec},
        {NEP_OP_ROPE, {.rope = {.heads = 2, .theta = 500000, .factor = 8, .low_freq_factor = 1, .high_freq_factor = 4,
                                .original_max_position = 8192}}, (nep_shape){2, {5, 8}, 1}},
        {NEP_OP_GELU, {.gelu = {.tanh = true}}, vec},
        {NEP_OP_EMBEDDING, {.embedding = {.positions = true, .padded = true, .padding_idx = 3}},
         (nep_shape){.ndim = 1, .d = {5}, .dtype = NEP_TOKEN_IDS}},
    };
    bool covered[NEP_OP_COUNT] = {0};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const nep_op_def *def = nep_op(cases[k].op);
        nep_graph g, h;
        nep_err err;
        const int id = nep_test_op_graph(&g, cases[k].op, cases[k].a, cases[k].in);
        char *json = nep_graph_to_json(&g);
        nep_test_assert_ok(nep_graph_from_json(json, &h, &err), &err);
        const nep_node *n = &h.nodes[nep_graph_find_node(&h, "op")];
        assert_int_equal(n->op, cases[k].op);
        assert_true(def->n_attrs > 0);
        for (int i = 0; i < def->n_attrs; i++) {
            const size_t at = def->attrs[i].offset;
            if (memcmp((const char *)&g.nodes[id].attrs + at, (const char *)&n->attrs + at,
                       nep_attr_size(def->attrs[i].type)))
                fail_msg("%s: attribute '%s' changed on its way through JSON", def->name,
                         def->attrs[i].key);
        }
        covered[cases[k].op] = true;
        free(json);
        nep_graph_free(&g), nep_graph_free(&h);
    }
    for (int k = 0; k < NEP_OP_COUNT; k++)
        if (nep_op(k)->n_attrs && !covered[k]) fail_msg("no case for %s's attributes", nep_op(k)->name);
}

/* y = W x + b of the Linear named `name`, in double; x has the Linear's input width. */
static void linear_apply(const nep_graph *g, const char *name, const double *x, double *y) {
    const int id = nep_graph_find_node(g, name);
    assert_true(id >= 0);
    const nep_node *n = &g->nodes[id];
    const nep_param *w = &g->params[n->params[0]];
    const nep_real *W = g->values + w->offset, *b = n->attrs.linear.bias ? g->values + g->params[n->params[1]].offset : NULL;
    for (int64_t o = 0; o < w->shape[0]; o++) {
        double s = b ? b[o] : 0;
        for (int64_t i = 0; i < w->shape[1]; i++) s += (double)W[o * w->shape[1] + i] * x[i];
        y[o] = s;
    }
}

/* An MLP whose every neuron was always ON is one affine map: collapse leaves a single
 * Linear, equal to fc4 fc3 fc2 fc1 composed (checked on random inputs in double). */
static void test_collapse_all_on(void **state) {
    nep_graph g = build("mlp", 2), l, c;
    nep_err err;
    nep_entropy e;
    nep_test_assert_ok(nep_entropy_init(&e, &g, false, &err), &err);
    for (int i = 0; i < e.n_layers; i++)
        for (int64_t n = 0; n < e.layers[i].neurons; n++)
            e.layers[i].counts[n * e.layers[i].states + NEP_STATE_ON] = 10;
    e.samples = 10;
    nep_collapse_info info = {0};
    nep_collapse_opts o = {0};
    nep_test_assert_ok(nep_collapse(&g, &e, &o, &l, &c, &info, &err), &err);
    assert_int_equal(info.linearized, 3);
    assert_int_equal(nep_graph_rectifiers(&c), 0);
    assert_int_equal(count_op(&c, NEP_OP_LINEAR), 1);
    int fc = -1;
    for (int k = 0; k < c.n_order; k++)
        if (c.nodes[c.order[k]].op == NEP_OP_LINEAR) fc = c.order[k];
    nep_rng rng;
    nep_rng_seed(&rng, 7);
    double x[784], h1[32], h2[24], h3[16], want[10], got[10];
    for (int t = 0; t < 4; t++) {
        for (int i = 0; i < 784; i++) x[i] = nep_rng_normal(&rng);
        linear_apply(&g, "fc1", x, h1), linear_apply(&g, "fc2", h1, h2);
        linear_apply(&g, "fc3", h2, h3), linear_apply(&g, "fc4", h3, want);
        linear_apply(&c, c.nodes[fc].name, x, got);
        for (int k = 0; k < 10; k++) assert_true(fabs(got[k] - want[k]) <= 1e-4 * (1 + fabs(want[k])));
    }
    nep_entropy_free(&e);
    nep_graph_free(&g), nep_graph_free(&l), nep_graph_free(&c);
}

/* The ONNX writer and the checkpoint writer work without a backend: the ONNX file parses
 * back with one initializer per parameter it exports, by name, and the checkpoint
 * loads the same values. */
static void test_export_and_checkpoint(void **state) {
    nep_graph g = build("resnet20", 3), h;
    char *dir = nep_test_tmpdir(), *onnx = nep_test_path(dir, "m.onnx"),
         *ckpt = nep_test_path(dir, "m.safetensors");
    nep_err err;
    nep_normalize norm = {.c = 1, .mean = {0.2860f}, .std = {0.3530f}};
    nep_test_assert_ok(nep_onnx_export(&g, &norm, onnx, &err), &err);
    FILE *f = fopen(onnx, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    rewind(f);
    uint8_t *buf = malloc((size_t)len);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, (size_t)len, buf);
    assert_non_null(m);
    assert_true(m->graph->n_node >= (size_t)(g.n_order - 1));
    assert_string_equal(m->graph->output[0]->name, "logits");
    for (int p = 0; p < g.n_params; p++) {
        bool found = false;
        for (size_t i = 0; i < m->graph->n_initializer && !found; i++)
            found = !strcmp(m->graph->initializer[i]->name, g.params[p].name);
        assert_true(found);
    }
    onnx__model_proto__free_unpacked(m, NULL);
    free(buf);

    nep_model_spec spec = nep_model_spec_default(), back;
    snprintf(spec.name, sizeof spec.name, "resnet20");
    nep_test_assert_ok(nep_checkpoint_save(ckpt, &g, &spec, &norm, NULL, NULL, 0, &err), &err);
    nep_test_assert_ok(nep_checkpoint_load(ckpt, &h, &back, NULL, NULL, &err), &err);
    assert_int_equal(h.n_values, g.n_values);
    assert_memory_equal(h.values, g.values, sizeof(nep_real) * (size_t)g.n_values);
    free(onnx), free(ckpt);
    nep_test_rmtree(dir);
    nep_graph_free(&g), nep_graph_free(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_roundtrip),
        cmocka_unit_test(test_attrs_roundtrip),
        cmocka_unit_test(test_collapse_all_on),
        cmocka_unit_test(test_export_and_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
