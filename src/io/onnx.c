/* ONNX export (nepenthe/onnx.h). The model is built as the protobuf-c messages that
 * protoc-c generates from the official onnx.proto (build/gen/onnx/onnx.pb-c.h), then
 * packed straight into the file through nep_write_atomic. Every allocation goes into
 * one list freed at the end, so the many small messages need no per-type free code.
 *
 * Each op maps itself to ONNX nodes (nep_op_def.onnx, in its file in src/ops/) through
 * the sink below (ops/onnx_map.h); an op without a mapping is refused with the node's
 * name, so a new op is never exported wrongly. All at evaluation: nepenthe shapes are
 * per sample, and ONNX adds N in front. */
#include <assert.h>
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
#include "ops/onnx_map.h"

/* A scalar constant an op asked for (nep_onnx_sink.constant): one initializer each. */
typedef struct shared_const {
    const char *key;    /* as the op named it: "six" */
    const char *tensor; /* "const/six" */
    double value;
} shared_const;

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
    shared_const *consts;
    size_t n_consts, cap_consts;
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

/* Attribute a of an ONNX node, or NULL after any failure. */
static Onnx__AttributeProto *attribute(builder *b, const nep_onnx_attr *a) {
    Onnx__AttributeProto *p = alloc(b, sizeof *p);
    int64_t *ints = a->type == NEP_ONNX_INTS ? alloc(b, (size_t)a->n * sizeof *ints) : NULL;
    if (!p || (a->type == NEP_ONNX_INTS && !ints)) return NULL;
    onnx__attribute_proto__init(p);
    p->name = mut(a->name);
    p->has_type = 1;
    switch (a->type) {
    case NEP_ONNX_INT:
        p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        p->has_i = 1, p->i = a->v[0];
        break;
    case NEP_ONNX_FLOAT:
        p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
        p->has_f = 1, p->f = (float)a->f;
        break;
    case NEP_ONNX_INTS:
        p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        memcpy(ints, a->v, (size_t)a->n * sizeof *ints);
        p->n_ints = (size_t)a->n;
        p->ints = ints;
        break;
    }
    return p;
}

/* Appends node op_type(in[0..n_in)) -> out named name, with attrs[0..n_attrs); a no-op
 * after any failure. */
static void add_node(builder *b, const char *op_type, const char *name, const char *const *in,
                     int n_in, const char *out, const nep_onnx_attr *attrs, int n_attrs) {
    Onnx__NodeProto *n = alloc(b, sizeof *n);
    char **ins = alloc(b, (size_t)n_in * sizeof *ins), **outs = alloc(b, sizeof *outs);
    Onnx__AttributeProto **as = alloc(b, (size_t)n_attrs * sizeof *as);
    for (int i = 0; as && i < n_attrs; i++) as[i] = attribute(b, &attrs[i]);
    void *list = b->nodes;
    if (b->s != NEP_OK || !reserve(b, &list, b->n_nodes, &b->cap_nodes, sizeof *b->nodes)) return;
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
    n->n_attribute = (size_t)n_attrs;
    n->attribute = as;
    b->nodes[b->n_nodes++] = n;
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

/* Appends initializer name [dims] of type data_type holding the n elements of
 * element_size bytes at bytes (little-endian, owned by the builder or the graph);
 * returns name (NULL after a failure). */
static const char *add_tensor(builder *b, const char *name, int data_type, const uint8_t *bytes,
                              int64_t n, size_t element_size, int ndim, const int64_t *dims) {
    Onnx__TensorProto *t = alloc(b, sizeof *t);
    int64_t *d = alloc(b, (size_t)ndim * sizeof *d);
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
    t->data_type = data_type;
    t->has_raw_data = 1;
    t->raw_data = (ProtobufCBinaryData){(size_t)n * element_size, (uint8_t *)(uintptr_t)bytes};
    b->inits[b->n_inits++] = t;
    return name;
}

/* Adds float32 initializer name [dims] holding v; returns name (NULL after a failure). */
static const char *add_init(builder *b, const char *name, const nep_real *v, int64_t n,
                            int ndim, const int64_t *dims) {
    const uint8_t *bytes = float_bytes(b, v, n);
    return add_tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, bytes, n, 4, ndim, dims);
}

/* ---- the sink the ops write through (ops/onnx_map.h) ------------------------------ */

static void emit_node(const nep_onnx_sink *s, const char *op_type, const char *name,
                      const char *const *in, int n_in, const char *out, const nep_onnx_attr *attrs,
                      int n_attrs) {
    add_node(s->ctx, op_type, name, in, n_in, out, attrs, n_attrs);
}

static const char *emit_param(const nep_onnx_sink *s, const nep_node *n, int i, bool per_channel) {
    builder *b = s->ctx;
    const nep_param *p = &b->g->params[n->params[i]];
    if (&b->g->nodes[p->node] != n) /* shared: its declaring node, earlier, added it */
        return p->name;
    if (!per_channel)
        return add_init(b, p->name, b->g->values + p->offset, p->numel, p->ndim, p->shape);
    const nep_shape *in = nep_in_shape(b->g, n, 0);
    int64_t dims[NEP_MAX_DIMS] = {p->numel, 1, 1, 1};
    return add_init(b, p->name, b->g->values + p->offset, p->numel,
                    nep_shape_features_last(in) ? 1 : in->ndim, dims);
}

static const char *emit_constant(const nep_onnx_sink *s, const char *name, double value) {
    builder *b = s->ctx;
    for (size_t k = 0; k < b->n_consts; k++)
        if (strcmp(b->consts[k].key, name) == 0) {
            assert(b->consts[k].value == value); /* one name, one value, in every op file */
            return b->consts[k].tensor;
        }
    nep_real *v = alloc(b, sizeof *v);
    const char *tensor = str(b, "const/%s", name);
    void *list = b->consts;
    if (!v || !tensor || !reserve(b, &list, b->n_consts, &b->cap_consts, sizeof *b->consts))
        return NULL;
    b->consts = list;
    *v = (nep_real)value;
    b->consts[b->n_consts++] = (shared_const){name, tensor, value};
    return add_init(b, tensor, v, 1, 0, NULL);
}

static const char *emit_step(const nep_onnx_sink *s, const nep_node *n, const char *what) {
    return str(s->ctx, "%s/%s", n->name, what);
}

static const char *emit_ints(const nep_onnx_sink *s, const nep_node *n, const char *what, int ndim,
                             const int64_t *v, int count) {
    builder *b = s->ctx;
    assert((ndim == 0 && count == 1) || ndim == 1); /* the op files' own calls */
    const char *name = emit_step(s, n, what);
    uint8_t *bytes = alloc(b, (size_t)count * 8);
    for (int i = 0; bytes && i < count; i++) /* little-endian whatever the machine */
        for (int k = 0; k < 8; k++) bytes[8 * i + k] = (uint8_t)((uint64_t)v[i] >> (8 * k));
    const int64_t dims[1] = {count};
    return name && bytes ? add_tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, bytes, count,
                                      8, ndim, dims)
                         : NULL;
}

static const char *emit_reals(const nep_onnx_sink *s, const nep_node *n, const char *what, int ndim,
                              const double *v, int count) {
    builder *b = s->ctx;
    assert((ndim == 0 && count == 1) || ndim == 1); /* the op files' own calls */
    nep_real *copy = alloc(b, (size_t)count * sizeof *copy);
    for (int i = 0; copy && i < count; i++) copy[i] = (nep_real)v[i];
    const int64_t dims[1] = {count};
    const char *name = emit_step(s, n, what);
    return name && copy ? add_init(b, name, copy, count, ndim, dims) : NULL;
}

/* float32 (int32 for token ids) [N, shape...], N symbolic, and with seq the first
 * per-sample axis too ("T": a text model's sequence length). */
static Onnx__ValueInfoProto *value_info(builder *b, const char *name, const nep_shape *s, bool seq) {
    Onnx__ValueInfoProto *vi = alloc(b, sizeof *vi);
    Onnx__TypeProto *tp = alloc(b, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = alloc(b, sizeof *tt);
    Onnx__TensorShapeProto *sh = alloc(b, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = alloc(b, (size_t)(s->ndim + 1) * sizeof *dims);
    for (int d = 0; dims && d <= s->ndim; d++) {
        Onnx__TensorShapeProto__Dimension *dim = alloc(b, sizeof *dim);
        if (!dim) return NULL;
        onnx__tensor_shape_proto__dimension__init(dim);
        if (d == 0 || (d == 1 && seq)) {
            dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dim->dim_param = mut(d == 0 ? "N" : "T");
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
    tt->elem_type = s->dtype == NEP_TOKEN_IDS ? ONNX__TENSOR_PROTO__DATA_TYPE__INT32 : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    onnx__type_proto__init(tp);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    onnx__value_info_proto__init(vi);
    vi->name = mut(name);
    vi->type = tp;
    return vi;
}

/* ---- the graph -------------------------------------------------------------------- */

/* The ONNX name of graph input node id: "input" for a graph with one, else its node's
 * name (a text model's "input_ids", "token_type_ids", "attention_mask", as Hugging
 * Face's exports call them). */
static const char *input_name(const nep_graph *g, int id) {
    return g->n_inputs == 1 ? "input" : g->nodes[id].name;
}

/* ONNX tensors are named after nodes: live names must be unique, and only the input
 * and output nodes may be called "input" and "logits". */
static nep_status check_names(const nep_graph *g, nep_err *err) {
    for (int k = 0; k < g->n_order; k++) {
        const int id = g->order[k];
        const char *name = g->nodes[id].name;
        const bool takes_input = g->n_inputs == 1 && id != g->input && strcmp(name, "input") == 0,
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

/* Whether a parameter of node n is named as the node (an empty suffix: torchvision's
 * "class_token"), whose initializer then takes the name: the node's output tensor is
 * "<name>/output" instead, as ONNX names each tensor once. */
static bool owns_its_name(const nep_graph *g, const nep_node *n) {
    for (int i = 0; i < n->n_params; i++)
        if (strcmp(g->params[n->params[i]].name, n->name) == 0) return true;
    return false;
}

/* The ONNX nodes of every live node, in topological order. */
static void emit_graph(builder *b) {
    const nep_graph *g = b->g;
    const nep_onnx_sink sink = {b, emit_node, emit_param, emit_constant, emit_step, emit_ints, emit_reals};
    b->tensor = alloc(b, (size_t)g->n_nodes * sizeof *b->tensor);
    for (int k = 0; b->s == NEP_OK && k < g->n_order; k++) {
        const int id = g->order[k];
        const nep_node *n = &g->nodes[id];
        b->tensor[id] = n->op == NEP_OP_INPUT ? input_name(g, id) : id == g->output ? "logits"
                        : owns_its_name(g, n) ? str(b, "%s/output", n->name) : n->name;
        if (n->op == NEP_OP_INPUT) continue;
        const nep_op_def *op = (unsigned)n->op < NEP_OP_COUNT ? nep_op(n->op) : NULL;
        if (!op || !op->onnx) {
            b->s = nep_fail(b->err, NEP_ERR_ARG, "ONNX export: node '%s' has op kind %d (%s), "
                            "which has no ONNX mapping", n->name, (int)n->op,
                            op ? op->name : "unknown");
            return;
        }
        const char *in[NEP_MAX_INPUTS];
        for (int i = 0; i < n->n_inputs; i++) in[i] = b->tensor[n->inputs[i]];
        op->onnx(&sink, g, n, in, b->tensor[id]);
    }
    if (g->output == g->input) /* a graph that computes nothing still names its output */
        add_node(b, "Identity", "output", (const char *[]){b->tensor[g->input]}, 1, "logits", NULL, 0);
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
    free(b->consts);
}

/* Assembles the model around the emitted nodes and writes it. */
static nep_status write_model(builder *b, const nep_normalize *norm, const char *path,
                              nep_onnx_summary *out) {
    const nep_graph *g = b->g;
    /* A graph reading token ids takes sequences of any length T where its ops allow (a
     * causal attention's mask is a constant of its T): its inputs are [N, T], and so is
     * an output of tokens [N, T, C]. */
    const nep_shape *first = &g->nodes[g->input].shape, *y = &g->nodes[g->output].shape;
    const bool text = first->dtype == NEP_TOKEN_IDS && first->ndim == 1;
    Onnx__ValueInfoProto *in[NEP_MAX_GRAPH_INPUTS],
                         *logits = value_info(b, "logits", y, text && y->ndim == 2 && nep_shape_features_last(y) &&
                                                                  y->d[0] == first->d[0]);
    for (int i = 0; i < g->n_inputs; i++) {
        const nep_shape *s = &g->nodes[g->inputs[i]].shape;
        in[i] = value_info(b, input_name(g, g->inputs[i]), s, text && s->ndim == 1 && s->d[0] == first->d[0]);
    }
    Onnx__StringStringEntryProto *props[3];
    const size_t n_props = metadata(b, norm, props);
    if (b->s != NEP_OK) return b->s;

    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    graph.name = mut("nepenthe");
    graph.n_node = b->n_nodes;
    graph.node = b->nodes;
    graph.n_initializer = b->n_inits;
    graph.initializer = b->inits;
    graph.n_input = (size_t)g->n_inputs;
    graph.n_output = 1;
    graph.input = in;
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
    NEP_TRY(nep_graph_check_resident(g, path, err));
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
