/* Op metadata: what each op kind is, apart from any backend. Each op's file here holds
 * its attributes, shape rule, FLOP count and ONNX mapping; its kernels (forward and
 * backward side by side) live in each backend's table (src/backend/cpu/kernels.h). The
 * IR, the rewrites and the ONNX writer need only this layer, so they link without
 * oneDNN or OpenBLAS (and the ONNX mapping without protobuf: ops/onnx_map.h). */
#ifndef NEPENTHE_OPS_H
#define NEPENTHE_OPS_H

#include <stddef.h>

#include "nepenthe/graph.h"

/* One attribute of an op: its key in the graph JSON, its C type and where it lives in
 * nep_attrs. Declared with NEP_ATTR_FIELD, which derives the type from the member, so
 * a declaration cannot disagree with the struct. */
typedef enum nep_attr_type {
    NEP_ATTR_BOOL, NEP_ATTR_INT, NEP_ATTR_INT64, NEP_ATTR_DOUBLE, NEP_ATTR_INT_PAIR
} nep_attr_type;
typedef struct nep_attr_field {
    const char *key;
    nep_attr_type type;
    size_t offset;
} nep_attr_field;
#define NEP_ATTR_FIELD(key, member)                                                         \
    {key,                                                                                   \
     _Generic(&((nep_attrs *)0)->member, bool *: NEP_ATTR_BOOL, int *: NEP_ATTR_INT,        \
              int64_t *: NEP_ATTR_INT64, double *: NEP_ATTR_DOUBLE,                         \
              int (*)[2]: NEP_ATTR_INT_PAIR),                                               \
     offsetof(nep_attrs, member)}

/* The bytes of an attribute of type t. */
static inline size_t nep_attr_size(nep_attr_type t) {
    switch (t) {
    case NEP_ATTR_BOOL: return sizeof(bool);
    case NEP_ATTR_INT: return sizeof(int);
    case NEP_ATTR_INT64: return sizeof(int64_t);
    case NEP_ATTR_DOUBLE: return sizeof(double);
    case NEP_ATTR_INT_PAIR: return 2 * sizeof(int);
    }
    return 0;
}

/* .attrs and .n_attrs of an op_def from a static array of fields. */
#define NEP_ATTR_FIELDS(array) .attrs = array, .n_attrs = (int)(sizeof array / sizeof *array)

struct nep_onnx_sink;

/* What an op's output is of its input 0's values, for ops that move data but compute
 * nothing: not a view (the default: the op computes); a reshape (Identity, Flatten: the
 * values in the same row-major order); the channels-last view of an image (Tokens: an
 * image [C, H, W]'s values in [H, W, C] order, as tokens [H*W, C] or a grid [H, W, C]). */
typedef enum nep_view { NEP_VIEW_NONE, NEP_VIEW_RESHAPE, NEP_VIEW_CHANNELS_LAST } nep_view;

typedef struct nep_op_def {
    const char *name;      /* as PyTorch names the module: "Linear", "ReLU" */
    int min_inputs, max_inputs;
    int states;            /* rectifiers: activation states (2, or 3 for ReLU6); else 0 */
    /* Whether the output is input 0's values in another arrangement (nep_view), which
     * lets the executor give it input 0's buffers (output and gradient, no copy) when
     * its layout stores the two alike (nep_view_aliases, backend/backend.h). */
    nep_view view;
    /* The gradient w.r.t. every input is the output's (Add): an input read only here can
     * take its gradient from the output's buffer. */
    bool passes_gradient;
    /* Rectifiers, for linearization: exact_states when the op is linear in each state
     * (ReLU, LeakyReLU, PReLU, ReLU6; not GELU or SiLU, which linearize approximately),
     * and the OFF state's map y = off_slope(c) x (NULL: y = 0, as ReLU and ReLU6). */
    bool exact_states;
    double (*off_slope)(const nep_graph *g, const nep_node *n, int64_t c);
    /* Reads int32 token ids (nep_shape.dtype) in input 0: Embedding. */
    bool takes_ids;
    /* Fusion: a producer that fuses_rectifier (a matmul, BatchNorm, Add, Affine) can
     * apply, in its own pass, a following rectifier whose epilogue_cap is > 0:
     * y = min(max(x, 0), epilogue_cap) (ReLU: INFINITY, ReLU6: 6). */
    bool fuses_rectifier;
    double epilogue_cap;
    /* Sets n->shape from the inputs' shapes; checks attributes and parameter shapes. */
    nep_status (*infer)(nep_graph *g, nep_node *n, nep_err *err);
    /* Per-sample forward FLOPs. */
    int64_t (*flops)(const nep_graph *g, const nep_node *n);
    /* Per-element ops: the value at x of feature `c` in evaluation mode, in double: the
     * one definition the rewrites evaluate and the reference backend computes (NULL:
     * not a per-element op). */
    double (*value)(const nep_graph *g, const nep_node *n, int64_t c, double x);
    /* Linear and Conv2d: output channel o is bias[o] (parameter 1, if attrs.bias) plus the
     * sum of weight[o, i, taps...] (parameter 0) times input channel i of o's group; what
     * the rewrites fold per-channel maps into and compose. */
    bool matmul;
    /* Its attributes (none: NULL, 0). */
    const nep_attr_field *attrs;
    int n_attrs;
    /* The ONNX nodes of node n, reading tensors in[0..n_inputs) and writing tensor out,
     * appended through the writer's sink (ops/onnx_map.h); NULL: not exportable. */
    void (*onnx)(const struct nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                 const char *const *in, const char *out);
} nep_op_def;

const nep_op_def *nep_op(nep_op_kind kind);
/* Op kind from its table name ("ReLU"), or -1. */
int nep_op_from_name(const char *name);

/* Shared helpers for op files. */
static inline const nep_shape *nep_in_shape(const nep_graph *g, const nep_node *n, int i) {
    return &g->nodes[n->inputs[i]].shape;
}
/* Parameter i of node n, entry c (per-element ops' per-feature parameters). */
static inline double nep_param_at(const nep_graph *g, const nep_node *n, int i, int64_t c) {
    return g->values[g->params[n->params[i]].offset + c];
}
/* The value of the identity (Identity, Dropout in evaluation mode). */
double nep_value_identity(const nep_graph *g, const nep_node *n, int64_t c, double x);
/* Shape rule shared by elementwise ops: output shape = input 0's shape. */
nep_status nep_infer_same(nep_graph *g, nep_node *n, nep_err *err);
/* FLOPs of elementwise ops: one per element. */
int64_t nep_flops_elementwise(const nep_graph *g, const nep_node *n);

/* The check of ops that read an image [C, H, W] (channels first): Conv2d, BatchNorm2d,
 * the pools. NEP_OK, or a message naming the node and what it got. */
nep_status nep_want_image(const nep_graph *g, const nep_node *n, nep_err *err);

/* A Linear's fan-in (its input's last axis), and the rows it multiplies per sample (the
 * positions before that axis: 1 for a vector, T for a token sequence [T, C]). */
static inline int64_t nep_linear_fan_in(const nep_shape *in) { return in->d[in->ndim - 1]; }
static inline int64_t nep_linear_rows(const nep_shape *in) {
    return nep_shape_numel(in) / nep_linear_fan_in(in);
}

/* LayerNorm's eps: attrs.eps, where 0 means torch.nn.LayerNorm's default 1e-5. */
static inline double nep_layernorm_eps(const nep_layernorm_attrs *a) { return a->eps > 0 ? a->eps : 1e-5; }

/* An Embedding's table, from its weight [num, C]: rows (num_embeddings) and columns
 * (embedding_dim). */
static inline int64_t nep_embedding_rows(const nep_graph *g, const nep_node *n) {
    return g->params[n->params[0]].shape[0];
}
static inline int64_t nep_embedding_dim(const nep_graph *g, const nep_node *n) {
    return g->params[n->params[0]].shape[1];
}
/* The row of an Embedding's table that token t of a sequence reads (nep_embedding_attrs):
 * its id, its position t, or RoBERTa's position. *seen counts the non-padding tokens of
 * the sequence so far: set it to 0 before each sequence's first token and visit its
 * tokens in order. */
static inline int64_t nep_embedding_row(const nep_embedding_attrs *a, int32_t id, int64_t t,
                                        int64_t *seen) {
    if (!a->positions) return id;
    if (!a->padded) return t;
    if (id == a->padding_idx) return a->padding_idx;
    return a->padding_idx + ++*seen;
}
/* Whether row receives no gradient: the padding row of a padded table. */
static inline bool nep_embedding_frozen_row(const nep_embedding_attrs *a, int64_t row) {
    return a->padded && row == a->padding_idx;
}

/* Conv2d's groups: attrs.conv.groups, where 0 means 1. */
static inline int nep_conv_groups(const nep_node *n) {
    return n->attrs.conv.groups > 0 ? n->attrs.conv.groups : 1;
}

extern const nep_op_def nep_op_input, nep_op_linear, nep_op_relu, nep_op_leaky_relu,
    nep_op_prelu, nep_op_relu6, nep_op_gelu, nep_op_silu, nep_op_identity, nep_op_flatten,
    nep_op_dropout, nep_op_add, nep_op_conv2d, nep_op_batchnorm, nep_op_maxpool, nep_op_avgpool,
    nep_op_global_avgpool, nep_op_affine, nep_op_embedding, nep_op_layernorm, nep_op_attention,
    nep_op_tokens, nep_op_class_token, nep_op_pos_embedding, nep_op_take_token, nep_op_token_mean,
    nep_op_patch_merge, nep_op_drop_path, nep_op_sdpa, nep_op_tanh, nep_op_rmsnorm, nep_op_rope, nep_op_mul;

#endif
