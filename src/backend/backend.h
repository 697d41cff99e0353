/* What every backend implements, and what the executor hands it: a kernel table with
 * one row per op kind, and for each call a small description of it (nep_call). Kernels
 * see only the call (never the executor): where their inputs and output are, the
 * shapes and attributes (through the node), where gradients go and whether to
 * overwrite or add to them, their state, cached objects and scratch. */
#ifndef NEPENTHE_BACKEND_H
#define NEPENTHE_BACKEND_H

#include <stddef.h>

#include "nepenthe/exec.h"
#include "ops/ops.h"

/* Memory a kernel may use during one call, shared by the nodes of an executor. */
typedef struct nep_scratch {
    void *p;
    size_t bytes;
} nep_scratch;

/* Scratch of at least `bytes` (64-byte aligned), valid until the next request; NULL if
 * out of memory (the old block stays). */
void *nep_scratch_get(nep_scratch *s, size_t bytes);
void nep_scratch_free(nep_scratch *s);

/* One forward or backward call of node n. Activations are [batch, per-sample shape],
 * images stored NCHW, or NHWC per sample when nhwc. */
typedef struct nep_call {
    const nep_graph *g;
    const nep_node *n;          /* attributes, shapes (nep_in_shape), parameters */
    int64_t batch;
    bool training;              /* dropout active, BatchNorm batch statistics */
    bool frozen;                /* the weights never change (nep_exec_opts.frozen_weights):
                                 * a kernel may keep them packed from its first call */
    bool nhwc;
    struct nep_rng *rng;        /* dropout's masks (training) */
    const struct nep_comm *sync_bn; /* BatchNorm's statistics over these ranks (nep_exec_opts) */
    const nep_real *x[NEP_MAX_INPUTS];
    /* forward: where the output goes; with rectify, the output of the ReLU (cap
     * infinity) or ReLU6 (cap 6) that alone reads this node, applied here (the
     * executor then skips that rectifier). backward: this node's output, and rectify
     * and cap as its forward had them (dy is then the rectifier's output gradient
     * where the kernel folds_rectifier_backward). */
    nep_real *y;
    bool rectify;
    nep_real cap;
    /* forward, serving executors (kernels with sums_into_y): y already holds the other
     * input of the residual Add that alone reads this node, and the output is added to
     * it (before the rectifier): the Add is fused away. */
    bool y_add;
    nep_real *w[NEP_MAX_PARAMS];  /* the node's parameters (BatchNorm's forward updates its
                                   * running statistics in place) */
    /* backward */
    const nep_real *dy;
    nep_real *dx[NEP_MAX_INPUTS]; /* NULL: that input needs no gradient */
    bool dx_add[NEP_MAX_INPUTS];  /* add to dx (another consumer wrote its part), or
                                   * overwrite it (it may hold anything) */
    /* Parameter gradients: written, or added to when accumulate. */
    nep_real *dw[NEP_MAX_PARAMS];
    bool accumulate;
    /* Generation (nep_exec_set_kv_cache): row b's tokens sit at positions pos[b] .. of its
     * sequence (NULL: from 0), and an attention node appends to and reads kv (NULL: none). */
    const int64_t *pos;
    nep_kv_layer *kv;
    void *state;                  /* state_reals * batch, kept from forward to backward */
    void **cache;                 /* objects the kernel keeps across calls (free_cache) */
    nep_scratch *scratch;
} nep_call;

typedef struct nep_kernel {
    /* Per-sample count of nep_real-sized state kept from forward to backward (it may
     * hold other types, such as MaxPool's int32 argmaxes); NULL for none. */
    int64_t (*state_reals)(const nep_graph *g, const nep_node *n, bool nhwc);
    /* Scratch bytes forward and backward use, reserved when the executor is made so
     * that asking for them cannot fail (NULL: none, or asked for and checked). */
    size_t (*scratch_bytes)(const nep_graph *g, const nep_node *n, bool nhwc);
    void (*free_cache)(void *cache);
    /* Bytes the cache holds besides the graph's tensors (weights packed into a library's
     * layout), for memory reports; NULL: nothing worth counting. */
    size_t (*cache_bytes)(const void *cache);
    /* Whether forward honours nep_call.y_add. */
    bool sums_into_y;
    /* Whether backward, called with rectify (its forward wrote the rectifier's output),
     * takes dy as the gradient of the rectifier's output and applies the rectifier's
     * mask itself: the executor then runs no backward for that rectifier. */
    bool folds_rectifier_backward;
    void (*forward)(const nep_call *c);
    void (*backward)(const nep_call *c);
} nep_kernel;

/* A backend: its name, whether it runs NHWC activations, and its kernel for each op
 * kind (never NULL; a row may be empty: an op that computes nothing, such as Identity). */
typedef struct nep_backend {
    const char *name;
    bool nhwc;
    const nep_kernel *(*kernel)(nep_op_kind kind);
} nep_backend;

/* "cpu": OpenBLAS, oneDNN, OpenMP; "ref": float64 loops, the reference (backend/ref/). */
extern const nep_backend nep_backend_cpu, nep_backend_ref;
/* The backend of that name, or NULL (registry.c lists them). */
const nep_backend *nep_backend_named(const char *name);

/* Elements of the call's output. */
static inline int64_t nep_call_numel(const nep_call *c) {
    return c->batch * nep_shape_numel(&c->n->shape);
}

/* Whether a tensor of this shape is stored differently in NHWC than in NCHW: an image
 * [C, H, W] with more than one channel and one position (a token sequence [T, C] has its
 * features last already). */
static inline bool nep_layout_moves(bool nhwc, const nep_shape *s) {
    return nhwc && s->ndim == 3 && s->axis == 0 && s->d[0] > 1 && s->d[1] * s->d[2] > 1;
}

/* Whether an image [C, H, W] is stored in [H, W, C] order: in NHWC, and in NCHW too when
 * it has one channel or one position (the two orders are then the same). */
static inline bool nep_stored_channels_last(bool nhwc, const nep_shape *s) {
    return nhwc || !nep_layout_moves(true, s);
}

/* Whether an op whose output is a view of input 0's values (nep_op_def.view) can take
 * input 0's buffers, output and gradient, in this layout: when the layout stores the
 * input's values in the order the output's storage has them. A tensor the layout does
 * not move is stored in its row-major order; a moved image, channels last.
 *   reshape (Identity, Flatten): both stored row-major, or both moved (an Identity of an
 *     NHWC image); not a Flatten of an NHWC image, whose values must go to C, H, W order;
 *   channels-last (Tokens): the input image stored [H, W, C], which is the row-major
 *     order of the output's tokens [H*W, C] or grid [H, W, C] (features last: never
 *     moved); an NCHW image's tokens are a transpose, which the op's kernel makes. */
static inline bool nep_view_aliases(bool nhwc, nep_view view, const nep_shape *in,
                                    const nep_shape *out) {
    switch (view) {
    case NEP_VIEW_NONE: return false;
    case NEP_VIEW_RESHAPE: return nep_layout_moves(nhwc, in) == nep_layout_moves(nhwc, out);
    case NEP_VIEW_CHANNELS_LAST: return nep_stored_channels_last(nhwc, in) && !nep_layout_moves(nhwc, out);
    }
    return false;
}

#endif
