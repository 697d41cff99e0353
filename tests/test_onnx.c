/* ONNX export: the written file, read back with the protobuf-c code generated from
 * onnx.proto, has the promised opset, IR version, input and output, op sequence,
 * attributes, initializer values and shapes, and metadata; errors (an unknown op kind,
 * clashing names, an unwritable path) name what is wrong and write nothing. Running the
 * exports in ONNX Runtime is tests/onnx_test.sh's job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nepenthe/onnx.h"
#include "onnx/onnx.pb-c.h"
#include "testutil.h"

static char *dir; /* one temporary directory for the whole group */

static int make_dir(void **state) { return (dir = nep_test_tmpdir()) ? 0 : -1; }
static int remove_dir(void **state) {
    nep_test_rmtree(dir);
    return 0;
}

/* ---- graphs ------------------------------------------------------------------------ */

static int add_param(nep_graph *g, int node, const char *suffix, int ndim, const int64_t *shape) {
    return nep_graph_add_param(g, node, suffix, NEP_PARAM_TRAINABLE | (ndim > 1 ? NEP_PARAM_WEIGHT : 0),
                               ndim, shape);
}

/* input [2, 4, 4] -> conv (3, k3, p1, bias) -> bn -> relu6 -> pool (avg k2 p1 s2)
 * -> flatten -> fc (5): values[i] = i / 100 (running variances positive). */
static void build_tiny(nep_graph *g) {
    nep_graph_init(g);
    int x = nep_graph_input(g, "input", (nep_shape){3, {2, 4, 4}});
    x = nep_graph_add1(g, NEP_OP_CONV2D, "conv", x,
                       (nep_attrs){.conv = {.features = 3, .bias = true, .kernel = {3, 3}, .stride = {1, 1},
                                            .pad = {1, 1}}});
    add_param(g, x, "weight", 4, (int64_t[]){3, 2, 3, 3});
    add_param(g, x, "bias", 1, (int64_t[]){3});
    x = nep_graph_add1(g, NEP_OP_BATCHNORM, "bn", x, (nep_attrs){.batchnorm = {.eps = 1e-3, .momentum = 0.1}});
    add_param(g, x, "weight", 1, (int64_t[]){3});
    add_param(g, x, "bias", 1, (int64_t[]){3});
    nep_graph_add_param(g, x, "running_mean", 0, 1, (int64_t[]){3});
    nep_graph_add_param(g, x, "running_var", 0, 1, (int64_t[]){3});
    x = nep_graph_add1(g, NEP_OP_RELU6, "act", x, (nep_attrs){0});
    x = nep_graph_add1(g, NEP_OP_AVGPOOL, "pool", x,
                       (nep_attrs){.pool = {.kernel = {2, 2}, .stride = {2, 2}, .pad = {1, 1}}});
    x = nep_graph_add1(g, NEP_OP_FLATTEN, "flatten", x, (nep_attrs){0});
    x = nep_graph_add1(g, NEP_OP_LINEAR, "fc", x, (nep_attrs){.linear = {.features = 5, .bias = true}});
    add_param(g, x, "weight", 2, (int64_t[]){5, 27});
    add_param(g, x, "bias", 1, (int64_t[]){5});
    assert_int_equal(nep_graph_finalize(g, NULL), NEP_OK);
    for (int64_t i = 0; i < g->n_values; i++) g->values[i] = (nep_real)i / 100;
}

/* input [3] -> affine -> prelu -> gelu -> silu -> dropout -> leaky -> fc (2, no bias);
 * add(input, affine, prelu) feeds nothing but shows a three-input Add. */
static void build_vector(nep_graph *g) {
    nep_graph_init(g);
    int in = nep_graph_input(g, "input", (nep_shape){1, {3}});
    int a = nep_graph_add1(g, NEP_OP_AFFINE, "affine", in, (nep_attrs){0});
    add_param(g, a, "weight", 1, (int64_t[]){3});
    add_param(g, a, "bias", 1, (int64_t[]){3});
    int p = nep_graph_add1(g, NEP_OP_PRELU, "prelu", a, (nep_attrs){0});
    add_param(g, p, "weight", 1, (int64_t[]){3});
    int s = nep_graph_add(g, NEP_OP_ADD, "sum", (int[]){in, a, p}, 3, (nep_attrs){0});
    int x = nep_graph_add1(g, NEP_OP_GELU, "gelu", s, (nep_attrs){0});
    x = nep_graph_add1(g, NEP_OP_SILU, "silu", x, (nep_attrs){0});
    x = nep_graph_add1(g, NEP_OP_DROPOUT, "drop", x, (nep_attrs){.dropout = {.p = 0.5}});
    x = nep_graph_add1(g, NEP_OP_LEAKY_RELU, "leaky", x, (nep_attrs){.leaky_relu = {.slope = 0.125}});
    x = nep_graph_add1(g, NEP_OP_LINEAR, "fc", x, (nep_attrs){.linear = {.features = 2}});
    add_param(g, x, "weight", 2, (int64_t[]){2, 3});
    assert_int_equal(nep_graph_finalize(g, NULL), NEP_OK);
    for (int64_t i = 0; i < g->n_values; i++) g->values[i] = (nep_real)(i + 1) / 8;
}

/* ---- reading back ------------------------------------------------------------------- */

static Onnx__ModelProto *load(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, (size_t)n, buf);
    free(buf);
    assert_non_null(m);
    return m;
}

static const Onnx__NodeProto *node(const Onnx__ModelProto *m, const char *name) {
    for (size_t i = 0; i < m->graph->n_node; i++)
        if (strcmp(m->graph->node[i]->name, name) == 0) return m->graph->node[i];
    fail_msg("no ONNX node named %s", name);
    return NULL;
}

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i];
    fail_msg("node %s has no attribute %s", n->name, name);
    return NULL;
}

static void assert_ints(const Onnx__AttributeProto *a, const int64_t *want, size_t n) {
    assert_int_equal(a->type, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    assert_int_equal(a->n_ints, n);
    for (size_t i = 0; i < n; i++) assert_int_equal(a->ints[i], want[i]);
}

static const Onnx__TensorProto *init(const Onnx__ModelProto *m, const char *name) {
    for (size_t i = 0; i < m->graph->n_initializer; i++)
        if (strcmp(m->graph->initializer[i]->name, name) == 0) return m->graph->initializer[i];
    fail_msg("no initializer named %s", name);
    return NULL;
}

/* Initializer `name` is float32 [dims] and holds the parameter's values. */
static void assert_init(const Onnx__ModelProto *m, const nep_graph *g, const char *name,
                        const int64_t *dims, size_t ndim) {
    const Onnx__TensorProto *t = init(m, name);
    assert_int_equal(t->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    assert_int_equal(t->n_dims, ndim);
    for (size_t d = 0; d < ndim; d++) assert_int_equal(t->dims[d], dims[d]);
    const nep_param *p = &g->params[nep_graph_find_param(g, name)];
    assert_int_equal(t->raw_data.len, 4 * (size_t)p->numel);
    for (int64_t i = 0; i < p->numel; i++) {
        float v;
        memcpy(&v, t->raw_data.data + 4 * i, 4);
        assert_true(v == (float)g->values[p->offset + i]);
    }
}

/* Graph value `vi` is float32 [N, dims...] with N symbolic. */
static void assert_value(const Onnx__ValueInfoProto *vi, const char *name, const int64_t *dims,
                         size_t ndim) {
    assert_string_equal(vi->name, name);
    const Onnx__TypeProto__Tensor *t = vi->type->tensor_type;
    assert_int_equal(t->elem_type, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    assert_int_equal(t->shape->n_dim, ndim + 1);
    assert_string_equal(t->shape->dim[0]->dim_param, "N");
    for (size_t d = 0; d < ndim; d++) assert_int_equal(t->shape->dim[d + 1]->dim_value, dims[d]);
}

static const char *meta(const Onnx__ModelProto *m, const char *key) {
    for (size_t i = 0; i < m->n_metadata_props; i++)
        if (strcmp(m->metadata_props[i]->key, key) == 0) return m->metadata_props[i]->value;
    return NULL;
}

static void assert_op_types(const Onnx__ModelProto *m, const char *const *want, size_t n) {
    assert_int_equal(m->graph->n_node, n);
    for (size_t i = 0; i < n; i++) assert_string_equal(m->graph->node[i]->op_type, want[i]);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_tiny_model(void **s) {
    nep_graph g;
    build_tiny(&g);
    const nep_normalize norm = {.c = 2, .mean = {0.5f, 0.25f}, .std = {0.125f, 2}};
    char *path = nep_test_path(dir, "tiny.onnx");
    nep_onnx_summary sum;
    nep_err err;
    nep_test_assert_ok(nep_onnx_export_summary(&g, &norm, path, &sum, &err), &err);
    Onnx__ModelProto *m = load(path);

    assert_int_equal(m->ir_version, 8);
    assert_int_equal(m->n_opset_import, 1);
    assert_string_equal(m->opset_import[0]->domain, "");
    assert_int_equal(m->opset_import[0]->version, 17);
    assert_string_equal(m->producer_name, "nepenthe");
    assert_int_equal(m->graph->n_input, 1);
    assert_int_equal(m->graph->n_output, 1);
    assert_value(m->graph->input[0], "input", (int64_t[]){2, 4, 4}, 3);
    assert_value(m->graph->output[0], "logits", (int64_t[]){5}, 1);
    assert_op_types(m, (const char *[]){"Conv", "BatchNormalization", "Clip", "AveragePool",
                                        "Flatten", "Gemm"}, 6);
    /* names and wiring: node names are nepenthe's, the last node writes "logits" */
    assert_string_equal(m->graph->node[0]->input[0], "input");
    assert_string_equal(m->graph->node[1]->input[0], "conv");
    assert_string_equal(m->graph->node[5]->output[0], "logits");
    const Onnx__NodeProto *conv = node(m, "conv");
    assert_ints(attr(conv, "kernel_shape"), (int64_t[]){3, 3}, 2);
    assert_ints(attr(conv, "pads"), (int64_t[]){1, 1, 1, 1}, 4);
    assert_int_equal(attr(conv, "group")->i, 1);
    assert_int_equal(conv->n_input, 3);
    assert_string_equal(conv->input[2], "conv.bias");
    const Onnx__NodeProto *bn = node(m, "bn");
    assert_true(attr(bn, "epsilon")->f == 1e-3f);
    assert_string_equal(bn->input[3], "bn.running_mean");
    assert_string_equal(bn->input[4], "bn.running_var");
    assert_int_equal(attr(node(m, "pool"), "count_include_pad")->i, 1);
    assert_ints(attr(node(m, "pool"), "pads"), (int64_t[]){1, 1, 1, 1}, 4);
    assert_int_equal(attr(node(m, "flatten"), "axis")->i, 1);
    assert_int_equal(attr(node(m, "fc"), "transB")->i, 1);
    const Onnx__NodeProto *clip = node(m, "act");
    assert_int_equal(clip->n_input, 3);
    assert_int_equal(init(m, clip->input[1])->n_dims, 0); /* scalar min 0 and max 6 */
    float six;
    memcpy(&six, init(m, clip->input[2])->raw_data.data, 4);
    assert_true(six == 6.0f);
    /* values: float32 copies of the parameters, in their shapes */
    assert_init(m, &g, "conv.weight", (int64_t[]){3, 2, 3, 3}, 4);
    assert_init(m, &g, "bn.running_var", (int64_t[]){3}, 1);
    assert_init(m, &g, "fc.weight", (int64_t[]){5, 27}, 2);
    assert_init(m, &g, "fc.bias", (int64_t[]){5}, 1);
    /* metadata: the normalization the input expects */
    assert_string_equal(meta(m, "normalize_mean"), "[0.5,0.25]");
    assert_string_equal(meta(m, "normalize_std"), "[0.125,2]");
    assert_string_equal(meta(m, "nepenthe_layout"), "NCHW");
    /* the summary counts what is in the file */
    assert_int_equal(sum.nodes, (int64_t)m->graph->n_node);
    assert_int_equal(sum.initializers, (int64_t)m->graph->n_initializer);
    assert_int_equal(sum.opset, 17);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(sum.bytes, (int64_t)st.st_size);

    onnx__model_proto__free_unpacked(m, NULL);
    free(path);
    nep_graph_free(&g);
}

static void test_vector_ops(void **s) {
    nep_graph g;
    build_vector(&g);
    char *path = nep_test_path(dir, "vector.onnx");
    nep_err err;
    nep_test_assert_ok(nep_onnx_export(&g, NULL, path, &err), &err);
    Onnx__ModelProto *m = load(path);
    assert_value(m->graph->input[0], "input", (int64_t[]){3}, 1);
    assert_value(m->graph->output[0], "logits", (int64_t[]){2}, 1);
    assert_op_types(m, (const char *[]){"Mul", "Add",                        /* affine */
                                        "PRelu", "Add", "Add",               /* prelu, sum */
                                        "Mul", "Erf", "Add", "Mul", "Mul",   /* gelu */
                                        "Sigmoid", "Mul", "Identity",        /* silu, drop */
                                        "LeakyRelu", "Gemm"}, 15);
    /* per-channel parameters of a vector stay [C] */
    assert_init(m, &g, "affine.weight", (int64_t[]){3}, 1);
    assert_init(m, &g, "affine.bias", (int64_t[]){3}, 1);
    assert_init(m, &g, "prelu.weight", (int64_t[]){3}, 1);
    /* the three-input Add sums in nepenthe's order: (input + affine) + prelu */
    const Onnx__NodeProto *sum = node(m, "sum"), *partial = node(m, "sum/sum1");
    assert_string_equal(partial->input[0], "input");
    assert_string_equal(partial->input[1], "affine");
    assert_string_equal(sum->input[0], "sum/sum1");
    assert_string_equal(sum->input[1], "prelu");
    assert_true(attr(node(m, "leaky"), "alpha")->f == 0.125f);
    assert_int_equal(node(m, "fc")->n_input, 2); /* no bias */
    /* no normalization given: only the layout */
    assert_int_equal(m->n_metadata_props, 1);
    assert_null(meta(m, "normalize_mean"));
    onnx__model_proto__free_unpacked(m, NULL);
    free(path);
    nep_graph_free(&g);
}

/* Image PReLU, Affine and pooling: [C, 1, 1] slopes, stride 0 = kernel, grouped conv. */
static void test_image_ops(void **s) {
    nep_graph g;
    nep_graph_init(&g);
    int x = nep_graph_input(&g, "input", (nep_shape){3, {4, 6, 6}});
    x = nep_graph_add1(&g, NEP_OP_CONV2D, "dw", x,
                       (nep_attrs){.conv = {.features = 4, .kernel = {3, 3}, .stride = {2, 2}, .groups = 4}});
    add_param(&g, x, "weight", 4, (int64_t[]){4, 1, 3, 3});
    x = nep_graph_add1(&g, NEP_OP_PRELU, "prelu", x, (nep_attrs){0});
    add_param(&g, x, "weight", 1, (int64_t[]){4});
    x = nep_graph_add1(&g, NEP_OP_AFFINE, "affine", x, (nep_attrs){0});
    add_param(&g, x, "weight", 1, (int64_t[]){4});
    add_param(&g, x, "bias", 1, (int64_t[]){4});
    x = nep_graph_add1(&g, NEP_OP_MAXPOOL, "max", x, (nep_attrs){.pool = {.kernel = {2, 2}}});
    x = nep_graph_add1(&g, NEP_OP_IDENTITY, "same", x, (nep_attrs){0});
    x = nep_graph_add1(&g, NEP_OP_GLOBAL_AVGPOOL, "gap", x, (nep_attrs){0});
    assert_int_equal(nep_graph_finalize(&g, NULL), NEP_OK);
    char *path = nep_test_path(dir, "image.onnx");
    nep_err err;
    nep_test_assert_ok(nep_onnx_export(&g, NULL, path, &err), &err);
    Onnx__ModelProto *m = load(path);
    assert_op_types(m, (const char *[]){"Conv", "PRelu", "Mul", "Add", "MaxPool", "Identity",
                                        "GlobalAveragePool"}, 7);
    assert_value(m->graph->output[0], "logits", (int64_t[]){4, 1, 1}, 3);
    assert_int_equal(attr(node(m, "dw"), "group")->i, 4);
    assert_ints(attr(node(m, "dw"), "strides"), (int64_t[]){2, 2}, 2);
    assert_ints(attr(node(m, "max"), "strides"), (int64_t[]){2, 2}, 2);
    assert_init(m, &g, "prelu.weight", (int64_t[]){4, 1, 1}, 3);
    assert_init(m, &g, "affine.weight", (int64_t[]){4, 1, 1}, 3);
    assert_init(m, &g, "affine.bias", (int64_t[]){4, 1, 1}, 3);
    onnx__model_proto__free_unpacked(m, NULL);
    free(path);
    nep_graph_free(&g);
}

static void test_unwritable_path(void **s) {
    nep_graph g;
    build_tiny(&g);
    char *path = nep_test_path(dir, "no/such/dir/model.onnx");
    nep_err err = {0};
    assert_int_equal(nep_onnx_export(&g, NULL, path, &err), NEP_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    free(path);
    nep_graph_free(&g);
}

/* A kind the exporter has no mapping for is refused by name, and nothing is written. */
static void test_unknown_op(void **s) {
    nep_graph g;
    build_tiny(&g);
    g.nodes[nep_graph_find_node(&g, "act")].op = NEP_OP_COUNT;
    char *path = nep_test_path(dir, "unknown.onnx");
    nep_err err = {0};
    assert_int_equal(nep_onnx_export(&g, NULL, path, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "'act'"));
    assert_false(exists(path));
    free(path);
    nep_graph_free(&g);
}

/* Tensor names come from node names: a clash is refused, and an existing file stays. */
static void test_name_clashes(void **s) {
    nep_graph g;
    build_tiny(&g);
    char *path = nep_test_path(dir, "clash.onnx");
    assert_int_equal(nep_test_write_file(path, "old", 3), 0);
    nep_err err = {0};
    snprintf(g.nodes[nep_graph_find_node(&g, "act")].name, NEP_NAME_LEN, "bn");
    assert_int_equal(nep_onnx_export(&g, NULL, path, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "'bn'"));
    snprintf(g.nodes[nep_graph_find_node(&g, "pool")].name, NEP_NAME_LEN, "logits");
    snprintf(g.nodes[nep_graph_find_node(&g, "bn")].name, NEP_NAME_LEN, "bn1");
    assert_int_equal(nep_onnx_export(&g, NULL, path, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "'logits'"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 3);
    free(path);
    nep_graph_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_model),      cmocka_unit_test(test_vector_ops),
        cmocka_unit_test(test_image_ops),       cmocka_unit_test(test_unwritable_path),
        cmocka_unit_test(test_unknown_op),      cmocka_unit_test(test_name_clashes),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
