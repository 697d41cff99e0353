/* ONNX export (nepenthe/onnx.h). The model is built as the protobuf-c messages that
 * protoc-c generates from the official onnx.proto (build/gen/onnx/onnx.pb-c.h), then
 * packed straight into the file through nep_write_atomic. Every allocation goes into
 * one list freed at the end, so the many small messages need no per-type free code.
 *
 * Each op kind maps to ONNX nodes through the table `emitters` below; a kind missing
 * there is refused with the node's name, so a new op is never exported wrongly.
 * Mappings, all at evaluation (nepenthe shapes are per sample; ONNX adds N in front):
 *   Linear     Gemm(x, weight [out, in], bias? [out]), transB = 1; on tokens [N, T, in]
 *              MatMul(x, Transpose(weight)) (+ Add(bias))
 *   Conv2d     Conv(x, weight [F, C/g, kh, kw], bias? [F]), pads [t, l, b, r], group
 *   BatchNorm  BatchNormalization(x, weight, bias, running_mean, running_var), epsilon
 *   ReLU       Relu;  LeakyReLU  LeakyRelu(alpha = slope);  ReLU6  Clip(x, 0, 6)
 *   PReLU      PRelu(x, weight as [C, 1, 1] for images, [C] for vectors)
 *   GELU       Mul(Mul(x, 1 + Erf(x * (1/sqrt 2))), 0.5): nepenthe's own formula (the
 *              Gelu op only exists from opset 20)
 *   SiLU       Mul(x, Sigmoid(x))
 *   Affine     Add(Mul(x, weight), bias), each as [C, 1, 1] for images, [C] for vectors
 *   Identity, Dropout   Identity;  Flatten  Flatten(axis = 1);  Add  a chain of Adds in
 *              nepenthe's summation order
 *   MaxPool2d  MaxPool;  AvgPool2d  AveragePool(count_include_pad = 1), as nepenthe
 *              divides by the whole window (padding included);  AdaptiveAvgPool2d
 *              GlobalAveragePool (both [C, 1, 1] per sample: no reshape needed) */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/file.h"
#include "nepenthe/onnx.h"
#include "onnx/onnx.pb-c.h"
#include "ops/batchnorm.h"
#include "ops/ops.h"

#define MAX_ATTRS 4 /* Conv: kernel_shape, strides, pads, group */

/* Scalar constants shared by all nodes that need them (one initializer each). */
enum { K_ZERO, K_ONE, K_HALF, K_SIX, K_RSQRT2, N_CONSTS };
static const struct {
    const char *name;
    double value;
} const_defs[N_CONSTS] = {
    [K_ZERO] = {"const/zero", 0},  [K_ONE] = {"const/one", 1},  [K_HALF] = {"const/half", 0.5},
    [K_SIX] = {"const/six", 6},
    /* the very constant GELU's forward multiplies by (src/ops/rectifiers.c) */
    [K_RSQRT2] = {"const/rsqrt2", 0.70710678118654752440},
};

typedef struct builder {
    const nep_graph *g;
    nep_err *err;
    nep_status s;            /* the first failure; every helper is a no-op after it */
    void **allocs;           /* everything below points into these */
    size_t n_allocs, cap_allocs;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    const char **tensor;     /* [g->n_nodes] name of each nepenthe node's output tensor */
    const char *consts[N_CONSTS];
} builder;

/* protobuf-c's messages take char *; packing only reads them. */
static char *mut(const char *s) { return (char *)s; }

static void fail_nomem(builder *b) {
    if (b->s == NEP_OK) b->s = nep_fail(b->err, NEP_ERR_NOMEM, "ONNX export: out of memory");
}

/* Doubles *cap until it holds n + 1 elements of size sz; false (and b->s) on failure. */
static bool reserve(builder *b, void **arr, size_t n, size_t *cap, size_t sz) {
    if (n < *cap) return true;
    size_t c = *cap ? 2 * *cap : 64;
    void *p = realloc(*arr, c * sz);
    if (!p) {
        fail_nomem(b);
        return false;
    }
    *arr = p;
    *cap = c;
    return true;
}

/* size zeroed bytes owned by the builder, or NULL after any failure. */
static void *alloc(builder *b, size_t size) {
    if (b->s != NEP_OK) return NULL;
    void *list = b->allocs;
    if (!reserve(b, &list, b->n_allocs, &b->cap_allocs, sizeof *b->allocs)) return NULL;
    b->allocs = list;
    void *p = calloc(1, size ? size : 1);
    if (!p) fail_nomem(b);
    else b->allocs[b->n_allocs++] = p;
    return p;
}

static char *str(builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *str(builder *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? alloc(b, (size_t)n + 1) : NULL;
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- messages ------------------------------------------------------------------- */

/* Appends node op_type(in[0..n_in)) -> out named name; NULL after any failure. */
static Onnx__NodeProto *add_node(builder *b, const char *op_type, const char *name,
                                 const char *const *in, int n_in, const char *out) {
    Onnx__NodeProto *n = alloc(b, sizeof *n);
    char **ins = alloc(b, (size_t)n_in * sizeof *ins), **outs = alloc(b, sizeof *outs);
    Onnx__AttributeProto **attrs = alloc(b, MAX_ATTRS * sizeof *attrs);
    void *list = b->nodes;
    if (!attrs || !reserve(b, &list, b->n_nodes, &b->cap_nodes, sizeof *b->nodes)) return NULL;
    b->nodes = list;
    onnx__node_proto__init(n);
    n->op_type = mut(op_type);
    n->name = mut(name);
    for (int i = 0; i < n_in; i++) ins[i] = mut(in[i]);
    n->n_input = (size_t)n_in;
    n->input = ins;
    outs[0] = mut(out);
    n->n_output = 1;
    n->output = outs;
    n->attribute = attrs;
    b->nodes[b->n_nodes++] = n;
    return n;
}

static Onnx__AttributeProto *new_attr(builder *b, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto *a = n ? alloc(b, sizeof *a) : NULL;
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = mut(name);
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void attr_int(builder *b, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = new_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = 1, a->i = v;
}

static void attr_float(builder *b, Onnx__NodeProto *n, const char *name, double v) {
    Onnx__AttributeProto *a = new_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = 1, a->f = (float)v;
}

static void attr_ints(builder *b, Onnx__NodeProto *n, const char *name, const int64_t *v, int k) {
    Onnx__AttributeProto *a = new_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *d = alloc(b, (size_t)k * sizeof *d);
    if (!a || !d) return;
    memcpy(d, v, (size_t)k * sizeof *d);
    a->n_ints = (size_t)k;
    a->ints = d;
}

/* v's n values as little-endian float32 bytes: v itself in a little-endian float build,
 * else a converted copy (the float64 build, or a big-endian machine). */
static uint8_t *float_bytes(builder *b, const nep_real *v, int64_t n) {
#if !defined(NEP_DOUBLE) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    (void)b, (void)n;
    return (uint8_t *)(uintptr_t)v;
#else
    uint8_t *out = alloc(b, (size_t)n * 4);
    for (int64_t i = 0; out && i < n; i++) {
        const float f = (float)v[i];
        uint32_t u;
        memcpy(&u, &f, 4);
        for (int k = 0; k < 4; k++) out[4 * i + k] = (uint8_t)(u >> (8 * k));
    }
    return out;
#endif
}

/* Adds float32 initializer name [dims] holding v; returns name (NULL after a failure). */
static const char *add_init(builder *b, const char *name, const nep_real *v, int64_t n,
                            int ndim, const int64_t *dims) {
    Onnx__TensorProto *t = alloc(b, sizeof *t);
    int64_t *d = alloc(b, (size_t)ndim * sizeof *d);
    uint8_t *bytes = float_bytes(b, v, n);
    void *list = b->inits;
    if (b->s != NEP_OK || !reserve(b, &list, b->n_inits, &b->cap_inits, sizeof *b->inits))
        return NULL;
    b->inits = list;
    onnx__tensor_proto__init(t);
    t->name = mut(name);
    if (ndim) memcpy(d, dims, (size_t)ndim * sizeof *d);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->has_raw_data = 1;
    t->raw_data = (ProtobufCBinaryData){(size_t)n * 4, bytes};
    b->inits[b->n_inits++] = t;
    return name;
}

/* Node n's parameter i as an initializer of its own shape. */
static const char *param(builder *b, const nep_node *n, int i) {
    const nep_param *p = &b->g->params[n->params[i]];
    return add_init(b, p->name, b->g->values + p->offset, p->numel, p->ndim, p->shape);
}

/* Node n's per-channel parameter i ([C]) shaped to broadcast over its input
 * [N, C, ...]: [C, 1, 1] for an image, [C] for a vector or a token sequence [N, T, C]. */
static const char *param_per_channel(builder *b, const nep_node *n, int i) {
    const nep_param *p = &b->g->params[n->params[i]];
    const nep_shape *in = nep_in_shape(b->g, n, 0);
    int64_t dims[NEP_MAX_DIMS] = {p->numel, 1, 1, 1};
    return add_init(b, p->name, b->g->values + p->offset, p->numel,
                    nep_shape_features_last(in) ? 1 : in->ndim, dims);
}

/* Shared scalar constant k, added on first use. */
static const char *constant(builder *b, int k) {
    if (!b->consts[k]) {
        nep_real *v = alloc(b, sizeof *v);
        if (!v) return NULL;
        *v = (nep_real)const_defs[k].value;
        b->consts[k] = add_init(b, const_defs[k].name, v, 1, 0, NULL);
    }
    return b->consts[k];
}

/* Tensor and node name of an intermediate step of node n. */
static const char *step(builder *b, const nep_node *n, const char *what) {
    return str(b, "%s/%s", n->name, what);
}

/* float32 [N, shape...], N symbolic. */
static Onnx__ValueInfoProto *value_info(builder *b, const char *name, const nep_shape *s) {
    Onnx__ValueInfoProto *vi = alloc(b, sizeof *vi);
    Onnx__TypeProto *tp = alloc(b, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = alloc(b, sizeof *tt);
    Onnx__TensorShapeProto *sh = alloc(b, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = alloc(b, (size_t)(s->ndim + 1) * sizeof *dims);
    for (int d = 0; dims && d <= s->ndim; d++) {
        Onnx__TensorShapeProto__Dimension *dim = alloc(b, sizeof *dim);
        if (!dim) return NULL;
        onnx__tensor_shape_proto__dimension__init(dim);
        if (d == 0) {
            dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dim->dim_param = mut("N");
        } else {
            dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dim->dim_value = s->d[d - 1];
        }
        dims[d] = dim;
    }
    if (!dims) return NULL;
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)s->ndim + 1;
    sh->dim = dims;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    onnx__type_proto__init(tp);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    onnx__value_info_proto__init(vi);
    vi->name = mut(name);
    vi->type = tp;
    return vi;
}

/* ---- op mappings: node n reads tensors in[0..n_inputs), writes tensor out ------------ */

typedef void (*emit_fn)(builder *b, const nep_node *n, const char *const *in, const char *out);

static void emit_linear(builder *b, const nep_node *n, const char *const *in, const char *out) {
    const bool bias = n->attrs.linear.bias;
    if (nep_in_shape(b->g, n, 0)->ndim == 1) { /* [N, in]: one Gemm */
        const char *ins[3] = {in[0], param(b, n, 0), bias ? param(b, n, 1) : NULL};
        attr_int(b, add_node(b, "Gemm", n->name, ins, bias ? 3 : 2, out), "transB", 1);
        return;
    }
    /* [N, ..., in] (tokens): MatMul with the transposed weight, then the bias */
    const char *wt = step(b, n, "weight_t"), *mm = bias ? step(b, n, "matmul") : out;
    attr_ints(b, add_node(b, "Transpose", wt, (const char *[]){param(b, n, 0)}, 1, wt), "perm",
              (int64_t[]){1, 0}, 2);
    add_node(b, "MatMul", bias ? mm : n->name, (const char *[]){in[0], wt}, 2, mm);
    if (bias) add_node(b, "Add", n->name, (const char *[]){mm, param(b, n, 1)}, 2, out);
}

static void emit_conv(builder *b, const nep_node *n, const char *const *in, const char *out) {
    const nep_conv2d_attrs *a = &n->attrs.conv;
    const char *ins[3] = {in[0], param(b, n, 0), a->bias ? param(b, n, 1) : NULL};
    Onnx__NodeProto *c = add_node(b, "Conv", n->name, ins, a->bias ? 3 : 2, out);
    attr_ints(b, c, "kernel_shape", (int64_t[]){a->kernel[0], a->kernel[1]}, 2);
    attr_ints(b, c, "strides", (int64_t[]){a->stride[0], a->stride[1]}, 2);
    attr_ints(b, c, "pads", (int64_t[]){a->pad[0], a->pad[1], a->pad[0], a->pad[1]}, 4);
    attr_int(b, c, "group", a->groups > 0 ? a->groups : 1);
}

static void emit_batchnorm(builder *b, const nep_node *n, const char *const *in, const char *out) {
    const char *ins[5] = {in[0], param(b, n, 0), param(b, n, 1), param(b, n, 2), param(b, n, 3)};
    attr_float(b, add_node(b, "BatchNormalization", n->name, ins, 5, out), "epsilon",
               nep_bn_eps(&n->attrs.batchnorm));
}

static void emit_relu(builder *b, const nep_node *n, const char *const *in, const char *out) {
    add_node(b, "Relu", n->name, in, 1, out);
}

static void emit_leaky_relu(builder *b, const nep_node *n, const char *const *in, const char *out) {
    attr_float(b, add_node(b, "LeakyRelu", n->name, in, 1, out), "alpha", n->attrs.leaky_relu.slope);
}

static void emit_prelu(builder *b, const nep_node *n, const char *const *in, const char *out) {
    add_node(b, "PRelu", n->name, (const char *[]){in[0], param_per_channel(b, n, 0)}, 2, out);
}

static void emit_relu6(builder *b, const nep_node *n, const char *const *in, const char *out) {
    const char *ins[3] = {in[0], constant(b, K_ZERO), constant(b, K_SIX)};
    add_node(b, "Clip", n->name, ins, 3, out);
}

/* 0.5 * (x * (1 + erf(x * (1/sqrt 2)))) */
static void emit_gelu(builder *b, const nep_node *n, const char *const *in, const char *out) {
    const char *scaled = step(b, n, "scaled"), *erf_ = step(b, n, "erf"),
               *cdf2 = step(b, n, "one_plus_erf"), *prod = step(b, n, "x_times");
    add_node(b, "Mul", scaled, (const char *[]){in[0], constant(b, K_RSQRT2)}, 2, scaled);
    add_node(b, "Erf", erf_, &scaled, 1, erf_);
    add_node(b, "Add", cdf2, (const char *[]){erf_, constant(b, K_ONE)}, 2, cdf2);
    add_node(b, "Mul", prod, (const char *[]){in[0], cdf2}, 2, prod);
    add_node(b, "Mul", n->name, (const char *[]){prod, constant(b, K_HALF)}, 2, out);
}

static void emit_silu(builder *b, const nep_node *n, const char *const *in, const char *out) {
    const char *sig = step(b, n, "sigmoid");
    add_node(b, "Sigmoid", sig, in, 1, sig);
    add_node(b, "Mul", n->name, (const char *[]){in[0], sig}, 2, out);
}

/* Identity, and Dropout (the identity at evaluation). */
static void emit_identity(builder *b, const nep_node *n, const char *const *in, const char *out) {
    add_node(b, "Identity", n->name, in, 1, out);
}

static void emit_flatten(builder *b, const nep_node *n, const char *const *in, const char *out) {
    attr_int(b, add_node(b, "Flatten", n->name, in, 1, out), "axis", 1);
}

/* ((x0 + x1) + x2) + ...: the order nepenthe sums in. */
static void emit_add(builder *b, const nep_node *n, const char *const *in, const char *out) {
    const char *acc = in[0];
    for (int k = 1; k < n->n_inputs; k++) {
        const bool last = k == n->n_inputs - 1;
        const char *t = last ? out : str(b, "%s/sum%d", n->name, k);
        add_node(b, "Add", last ? n->name : t, (const char *[]){acc, in[k]}, 2, t);
        acc = t;
    }
}

/* kernel_shape, strides (0 selects the kernel) and pads of a MaxPool or AveragePool. */
static void window_attrs(builder *b, Onnx__NodeProto *p, const nep_pool_attrs *a) {
    const int sh = a->stride[0] > 0 ? a->stride[0] : a->kernel[0],
              sw = a->stride[1] > 0 ? a->stride[1] : a->kernel[1];
    attr_ints(b, p, "kernel_shape", (int64_t[]){a->kernel[0], a->kernel[1]}, 2);
    attr_ints(b, p, "strides", (int64_t[]){sh, sw}, 2);
    attr_ints(b, p, "pads", (int64_t[]){a->pad[0], a->pad[1], a->pad[0], a->pad[1]}, 4);
}

static void emit_maxpool(builder *b, const nep_node *n, const char *const *in, const char *out) {
    window_attrs(b, add_node(b, "MaxPool", n->name, in, 1, out), &n->attrs.pool);
}

static void emit_avgpool(builder *b, const nep_node *n, const char *const *in, const char *out) {
    Onnx__NodeProto *p = add_node(b, "AveragePool", n->name, in, 1, out);
    window_attrs(b, p, &n->attrs.pool);
    attr_int(b, p, "count_include_pad", 1);
}

static void emit_global_avgpool(builder *b, const nep_node *n, const char *const *in,
                                const char *out) {
    add_node(b, "GlobalAveragePool", n->name, in, 1, out);
}

static void emit_affine(builder *b, const nep_node *n, const char *const *in, const char *out) {
    const char *scaled = step(b, n, "scaled");
    add_node(b, "Mul", scaled, (const char *[]){in[0], param_per_channel(b, n, 0)}, 2, scaled);
    add_node(b, "Add", n->name, (const char *[]){scaled, param_per_channel(b, n, 1)}, 2, out);
}

static const emit_fn emitters[NEP_OP_COUNT] = {
    [NEP_OP_LINEAR] = emit_linear,           [NEP_OP_RELU] = emit_relu,
    [NEP_OP_LEAKY_RELU] = emit_leaky_relu,   [NEP_OP_PRELU] = emit_prelu,
    [NEP_OP_RELU6] = emit_relu6,             [NEP_OP_GELU] = emit_gelu,
    [NEP_OP_SILU] = emit_silu,               [NEP_OP_IDENTITY] = emit_identity,
    [NEP_OP_FLATTEN] = emit_flatten,         [NEP_OP_DROPOUT] = emit_identity,
    [NEP_OP_ADD] = emit_add,                 [NEP_OP_CONV2D] = emit_conv,
    [NEP_OP_BATCHNORM] = emit_batchnorm,     [NEP_OP_MAXPOOL] = emit_maxpool,
    [NEP_OP_AVGPOOL] = emit_avgpool,         [NEP_OP_GLOBAL_AVGPOOL] = emit_global_avgpool,
    [NEP_OP_AFFINE] = emit_affine,
};

/* ---- the graph -------------------------------------------------------------------- */

/* ONNX tensors are named after nodes: live names must be unique, and only the input
 * and output nodes may be called "input" and "logits". */
static nep_status check_names(const nep_graph *g, nep_err *err) {
    for (int k = 0; k < g->n_order; k++) {
        const int id = g->order[k];
        const char *name = g->nodes[id].name;
        const bool takes_input = id != g->input && strcmp(name, "input") == 0,
                   takes_output = id != g->output && strcmp(name, "logits") == 0;
        if (takes_input || takes_output)
            return nep_fail(err, NEP_ERR_ARG, "ONNX export: node '%s' has the name of the graph's "
                            "%s tensor; rename it", name, takes_input ? "input" : "output");
        for (int j = 0; j < k; j++)
            if (strcmp(name, g->nodes[g->order[j]].name) == 0)
                return nep_fail(err, NEP_ERR_ARG, "ONNX export: two nodes are named '%s'", name);
    }
    return NEP_OK;
}

/* The normalization becomes JSON metadata: at most NEP_MAX_CHANNELS finite values. */
static nep_status check_normalize(const nep_normalize *norm, nep_err *err) {
    if (!norm || norm->c <= 0) return NEP_OK;
    bool ok = norm->c <= NEP_MAX_CHANNELS;
    for (int c = 0; ok && c < norm->c; c++) ok = isfinite(norm->mean[c]) && isfinite(norm->std[c]);
    return ok ? NEP_OK
              : nep_fail(err, NEP_ERR_ARG, "ONNX export: the input normalization (%d channels) "
                         "must have at most %d channels of finite mean and std", norm->c,
                         NEP_MAX_CHANNELS);
}

/* The ONNX nodes of every live node, in topological order. */
static void emit_graph(builder *b) {
    const nep_graph *g = b->g;
    b->tensor = alloc(b, (size_t)g->n_nodes * sizeof *b->tensor);
    for (int k = 0; b->s == NEP_OK && k < g->n_order; k++) {
        const int id = g->order[k];
        const nep_node *n = &g->nodes[id];
        b->tensor[id] = id == g->input ? "input" : id == g->output ? "logits" : n->name;
        if (id == g->input) continue;
        const emit_fn emit = (unsigned)n->op < NEP_OP_COUNT ? emitters[n->op] : NULL;
        if (!emit) {
            b->s = nep_fail(b->err, NEP_ERR_ARG, "ONNX export: node '%s' has op kind %d (%s), "
                            "which has no ONNX mapping", n->name, (int)n->op,
                            (unsigned)n->op < NEP_OP_COUNT ? nep_op(n->op)->name : "unknown");
            return;
        }
        const char *in[NEP_MAX_INPUTS];
        for (int i = 0; i < n->n_inputs; i++) in[i] = b->tensor[n->inputs[i]];
        emit(b, n, in, b->tensor[id]);
    }
    if (g->output == g->input) /* a graph that computes nothing still names its output */
        add_node(b, "Identity", "output", (const char *[]){"input"}, 1, "logits");
}

/* {"normalize_mean": "[...]", "normalize_std": "[...]"} (when there is a normalization)
 * and {"nepenthe_layout": "NCHW"}; returns how many. */
static size_t metadata(builder *b, const nep_normalize *norm, Onnx__StringStringEntryProto **out) {
    size_t n = 0;
    for (int which = 0; norm && norm->c > 0 && which < 2; which++) {
        const float *v = which ? norm->std : norm->mean;
        char *json = alloc(b, (size_t)norm->c * 24 + 3), *p = json;
        if (!json) return 0;
        *p++ = '[';
        for (int c = 0; c < norm->c; c++) p += sprintf(p, "%s%.9g", c ? "," : "", (double)v[c]);
        strcpy(p, "]");
        out[n] = alloc(b, sizeof *out[n]);
        if (!out[n]) return 0;
        onnx__string_string_entry_proto__init(out[n]);
        out[n]->key = mut(which ? "normalize_std" : "normalize_mean");
        out[n++]->value = json;
    }
    out[n] = alloc(b, sizeof *out[n]);
    if (!out[n]) return 0;
    onnx__string_string_entry_proto__init(out[n]);
    out[n]->key = mut("nepenthe_layout");
    out[n++]->value = mut("NCHW");
    return n;
}

/* ---- writing ------------------------------------------------------------------------ */

/* A protobuf-c output buffer that writes through to a FILE. */
typedef struct file_sink {
    ProtobufCBuffer base;
    FILE *f;
    int err;       /* first errno */
    int64_t bytes;
} file_sink;

static void sink_append(ProtobufCBuffer *buf, size_t len, const uint8_t *data) {
    file_sink *s = (file_sink *)buf;
    if (!s->err && fwrite(data, 1, len, s->f) != len) s->err = errno ? errno : EIO;
    s->bytes += (int64_t)len;
}

typedef struct pack_job {
    const Onnx__ModelProto *model;
    int64_t bytes;
} pack_job;

static int fill_model(void *ctx, FILE *f) {
    pack_job *job = ctx;
    file_sink sink = {{sink_append}, f, 0, 0};
    protobuf_c_message_pack_to_buffer(&job->model->base, &sink.base);
    job->bytes = sink.bytes;
    return sink.err;
}

static void builder_free(builder *b) {
    for (size_t i = 0; i < b->n_allocs; i++) free(b->allocs[i]);
    free(b->allocs);
    free(b->nodes);
    free(b->inits);
}

/* Assembles the model around the emitted nodes and writes it. */
static nep_status write_model(builder *b, const nep_normalize *norm, const char *path,
                              nep_onnx_summary *out) {
    const nep_graph *g = b->g;
    Onnx__ValueInfoProto *in = value_info(b, "input", &g->nodes[g->input].shape),
                         *logits = value_info(b, "logits", &g->nodes[g->output].shape);
    Onnx__StringStringEntryProto *props[3];
    const size_t n_props = metadata(b, norm, props);
    if (b->s != NEP_OK) return b->s;

    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    graph.name = mut("nepenthe");
    graph.n_node = b->n_nodes;
    graph.node = b->nodes;
    graph.n_initializer = b->n_inits;
    graph.initializer = b->inits;
    graph.n_input = graph.n_output = 1;
    graph.input = &in;
    graph.output = &logits;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opsets = &opset;
    opset.domain = mut("");
    opset.has_version = 1;
    opset.version = NEP_ONNX_OPSET;
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    model.has_ir_version = 1;
    model.ir_version = NEP_ONNX_IR_VERSION;
    model.n_opset_import = 1;
    model.opset_import = &opsets;
    model.producer_name = mut("nepenthe");
    model.graph = &graph;
    model.n_metadata_props = n_props;
    model.metadata_props = props;

    /* protobuf refuses to parse messages over 2 GiB; bigger models need ONNX's
     * external-data form, which this writer does not produce. */
    const size_t size = onnx__model_proto__get_packed_size(&model);
    if (size > INT32_MAX)
        return nep_fail(b->err, NEP_ERR_UNSUPPORTED, "%s: the model is %.2f GiB, over protobuf's "
                        "2 GiB limit (ONNX external data is not supported)", path,
                        (double)size / (1 << 30));
    pack_job job = {&model, 0};
    NEP_TRY(nep_write_atomic(path, fill_model, &job, b->err));
    if (out)
        *out = (nep_onnx_summary){.nodes = (int64_t)b->n_nodes, .initializers = (int64_t)b->n_inits,
                                  .bytes = job.bytes, .opset = NEP_ONNX_OPSET};
    return NEP_OK;
}

nep_status nep_onnx_export_summary(const nep_graph *g, const nep_normalize *norm,
                                   const char *path, nep_onnx_summary *out, nep_err *err) {
    if (g->n_order < 1 || g->input < 0 || g->input >= g->n_nodes || g->output < 0 ||
        g->output >= g->n_nodes)
        return nep_fail(err, NEP_ERR_ARG, "ONNX export: the graph is empty or not finalized");
    NEP_TRY(check_names(g, err));
    NEP_TRY(check_normalize(norm, err));
    builder b = {.g = g, .err = err};
    emit_graph(&b);
    nep_status s = b.s == NEP_OK ? write_model(&b, norm, path, out) : b.s;
    builder_free(&b);
    return s;
}

nep_status nep_onnx_export(const nep_graph *g, const nep_normalize *norm, const char *path,
                           nep_err *err) {
    return nep_onnx_export_summary(g, norm, path, NULL, err);
}
