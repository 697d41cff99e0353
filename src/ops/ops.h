/* The table of op kinds. Each op lives in its own file with its shape rule, FLOP
 * count, forward and backward side by side; this table is the only place that maps
 * an op kind to them. A CUDA backend later supplies its own forward/backward
 * columns for the same kinds. */
#ifndef NEPENTHE_OPS_H
#define NEPENTHE_OPS_H

#include <math.h>

#include "nepenthe/graph.h"

typedef struct nep_op_def {
    const char *name;      /* as PyTorch names the module: "Linear", "ReLU" */
    int min_inputs, max_inputs;
    int states;            /* rectifiers: activation states (2, or 3 for ReLU6); else 0 */
    bool aliases_input;    /* output and its gradient are input 0's buffers (Flatten: not
                            * when the layout moves; then forward/backward run) */
    /* Sets n->shape from the inputs' shapes; checks attributes and parameter shapes. */
    nep_status (*infer)(nep_graph *g, nep_node *n, nep_err *err);
    /* Per-sample forward FLOPs. */
    int64_t (*flops)(const nep_graph *g, const nep_node *n);
    /* Per-sample count of nep_real-sized state the op keeps between forward and backward
     * (ex->state[id]; it may hold other types, such as MaxPool's int32 argmaxes); NULL
     * for none. ex->g and ex->nhwc are set when it is called. */
    int64_t (*state_reals)(const nep_exec *ex, const nep_node *n);
    /* Bytes of executor scratch forward and backward use, reserved at init so that
     * asking for them cannot fail (NULL: none, or asked for at run time and checked). */
    size_t (*scratch_bytes)(const nep_exec *ex, const nep_node *n);
    /* Frees what the op left in ex->backend[id] (NULL: nothing to free). */
    void (*free_backend)(void *backend);
    void (*forward)(nep_exec *ex, int id);
    /* Writes or adds to the inputs' gradients as nep_input_grad says (skipping inputs
     * that need none); writes g->grads, or adds to them when ex->accumulate_grads. */
    void (*backward)(nep_exec *ex, int id);
} nep_op_def;

const nep_op_def *nep_op(nep_op_kind kind);
/* Op kind from its table name ("ReLU"), or -1. */
int nep_op_from_name(const char *name);

/* Shared helpers for op files. */
static inline const nep_shape *nep_in_shape(const nep_graph *g, const nep_node *n, int i) {
    return &g->nodes[n->inputs[i]].shape;
}
static inline nep_real *nep_param_ptr(const nep_graph *g, const nep_node *n, int i) {
    return g->values + g->params[n->params[i]].offset;
}
static inline nep_real *nep_grad_ptr(const nep_graph *g, const nep_node *n, int i) {
    return g->grads + g->params[n->params[i]].offset;
}
/* The gradient buffer of node n's input i, to be filled by n's backward; NULL when that
 * input needs no gradient. *add tells whether another consumer already put its part
 * there (add to it) or not (overwrite it: it may hold anything). */
static inline nep_real *nep_input_grad(nep_exec *ex, const nep_node *n, int i, bool *add) {
    const int owner = ex->grad_owner[n->inputs[i]];
    *add = !ex->grad_fresh[owner];
    ex->grad_fresh[owner] = false;
    return ex->dact[n->inputs[i]];
}

/* The rectifier node id's forward also computes this call (see nep_exec.epilogue), or -1. */
static inline int nep_epilogue(const nep_exec *ex, int id) {
    return ex->probe ? -1 : ex->epilogue[id];
}
/* Where node id's forward stores: its own output, or (*rectify) its epilogue's, capped
 * at *cap (6 for ReLU6, infinity for ReLU). */
static inline nep_real *nep_epilogue_out(const nep_exec *ex, int id, bool *rectify, nep_real *cap) {
    const int epi = nep_epilogue(ex, id);
    *rectify = epi >= 0;
    *cap = *rectify && ex->g->nodes[epi].op == NEP_OP_RELU6 ? 6 : (nep_real)INFINITY;
    return ex->act[*rectify ? epi : id];
}
/* The value stored: y, or the rectifier's output of y (NaN goes to 0, as in the
 * rectifiers' own forward). */
static inline nep_real nep_stored(nep_real y, bool rectify, nep_real cap) {
    return rectify ? (y > 0 ? (y < cap ? y : cap) : 0) : y;
}

/* Elements of node id's output for the current batch. */
static inline int64_t nep_exec_numel(const nep_exec *ex, int id) {
    return ex->batch * nep_shape_numel(&ex->g->nodes[id].shape);
}
/* Shape rule shared by elementwise ops: output shape = input 0's shape. */
nep_status nep_infer_same(nep_graph *g, nep_node *n, nep_err *err);
/* FLOPs of elementwise ops: one per element. */
int64_t nep_flops_elementwise(const nep_graph *g, const nep_node *n);

/* Layouts (see nep_exec.nhwc). Whether a tensor of this shape is stored differently in
 * NHWC than in NCHW (not when it has one channel or one position). */
static inline bool nep_layout_moves(bool nhwc, const nep_shape *s) {
    return nhwc && s->ndim == 3 && s->d[0] > 1 && s->d[1] * s->d[2] > 1;
}
/* x [B, C, HW] -> y [B, HW, C] and back (src/ops/layout.c); add: y += instead of =. */
void nep_nchw_to_nhwc(const nep_real *x, nep_real *y, int64_t B, int64_t C, int64_t HW, bool add);
void nep_nhwc_to_nchw(const nep_real *x, nep_real *y, int64_t B, int64_t C, int64_t HW, bool add);

/* Channel c of sample b in node n's input 0 ([B, C, ...], per-channel ops: PReLU,
 * Affine) is x[nep_chan_start(&d, b, c) + k * d.step] for k < d.inner. */
typedef struct nep_chan_dims {
    int64_t C, inner, step;
    bool nhwc;
} nep_chan_dims;
static inline nep_chan_dims nep_chan_dims_of(const nep_exec *ex, const nep_node *n) {
    const nep_shape *s = nep_in_shape(ex->g, n, 0);
    const int64_t C = s->d[0];
    const bool nhwc = ex->nhwc && s->ndim == 3;
    return (nep_chan_dims){C, nep_shape_numel(s) / C, nep_plane_step(nhwc, C), nhwc};
}
static inline int64_t nep_chan_start(const nep_chan_dims *d, int64_t b, int64_t c) {
    return nep_plane_start(d->nhwc, b, c, d->C, d->inner);
}

/* Threshold below which elementwise loops stay on one thread. */
#define NEP_PAR_MIN 32768

extern const nep_op_def nep_op_input, nep_op_linear, nep_op_relu, nep_op_leaky_relu,
    nep_op_prelu, nep_op_relu6, nep_op_gelu, nep_op_silu, nep_op_identity, nep_op_flatten,
    nep_op_dropout, nep_op_add, nep_op_conv2d, nep_op_batchnorm, nep_op_maxpool, nep_op_avgpool,
    nep_op_global_avgpool, nep_op_affine;

#endif
