/* The executor's state, private to src/graph/: exec.c plans and allocates it,
 * exec_run.c runs forward and backward on it. */
#ifndef NEPENTHE_GRAPH_EXEC_IMPL_H
#define NEPENTHE_GRAPH_EXEC_IMPL_H

#include "nepenthe/exec.h"
#include "backend/backend.h"
#include "ops/ops.h"

struct nep_exec {
    nep_graph *g;
    int64_t max_batch, batch;
    bool training;            /* dropout active, BatchNorm batch statistics */
    bool nhwc;                /* see nep_exec_opts.layout */
    struct nep_rng *rng;      /* dropout masks; required when training */
    const struct nep_comm *sync_bn; /* nep_exec_opts.sync_bn */
    nep_real **act;           /* [n_nodes] output of each node */
    nep_real **dact;          /* [n_nodes] gradient w.r.t. each node's output */
    void **state;             /* [n_nodes] op-private buffers (dropout masks) */
    const nep_backend *backend; /* whose kernels run the ops */
    void **cache;             /* [n_nodes] kernel-private objects created on first use (cached
                               * oneDNN primitives), freed by the kernel's free_cache */
    nep_scratch scratch;      /* memory a kernel may use during one forward or backward call */
    bool *owns;               /* [n_nodes] whether act/dact were allocated here */
    /* [n_nodes] whether a node's output and gradient are its input's buffers (a view the
     * layout stores alike, nep_view_aliases: Identity, Flatten, Tokens of an NHWC image),
     * which a Flatten of an NHWC image and the Tokens of an NCHW one are not. */
    bool *alias;
    /* Backward writes each gradient buffer through its first consumer and adds through
     * the rest (no zeroing pass): grad_owner [n_nodes] is the node whose buffer a node's
     * dact is (itself unless aliased), grad_fresh [n_nodes] whether that buffer holds
     * no contribution yet in the current backward (nep_call.dx_add). */
    int *grad_owner;
    bool *grad_fresh;
    /* [n_params] whether a parameter's gradient has no contribution yet in the current
     * backward: a shared one (nep_graph_share_param) is written by its first node there
     * and added to by the rest. */
    bool *param_fresh;
    /* [n_nodes]: for a node whose op can apply a rectifier in its own pass
     * (nep_op_def.fuses_rectifier) and whose only consumer is such a rectifier, that
     * rectifier, else -1. Unless a probe needs the pre-activation, the node's forward
     * then writes the rectifier's output itself (nep_call.rectify) and the rectifier's
     * forward is skipped. */
    int *epilogue;
    /* [n_nodes], serving executors (frozen): for a node whose kernel sums_into_y and whose
     * only reader is a two-input Add, that Add, else -1. The node's forward adds its
     * output into the Add's other input's buffer (which the Add's output, and its
     * epilogue rectifier's, then are: nep_call.y_add) and the Add is skipped. Such an
     * executor takes no probe (the Add's output is never apart from its rectifier's). */
    int *residual;
    /* [NEP_MAX_PARAMS] by a node's parameter slot: its mapped parameter (nep_graph_map_bf16)
     * converted to nep_real for the node's forward; sized for the largest in that slot. */
    nep_real *converted[NEP_MAX_PARAMS];
    nep_real *in_moved;       /* the input in the executor's layout, when it differs */
    nep_real *in_grad;        /* the input gradient, NCHW, when the layouts differ */
    nep_real *out_moved;      /* the output moved back to NCHW, when the layouts differ */
    nep_probe_fn probe;
    void *probe_ctx;
    bool accumulate_grads;
    nep_kv_cache *kv;         /* generation: the attached cache and positions, or NULL */
    const int64_t *pos;
    int *kv_layer;            /* [n_nodes] an attention node's layer of kv, else -1 */
    void (*on_grads)(void *ctx, nep_graph *g, int node);
    void *on_grads_ctx;
    double *profile;
    /* Forward only, activation buffers shared (pool). */
    bool inference;
    bool frozen;          /* nep_exec_opts.frozen_weights */
    /* Serving (frozen): a batch above `slice` rows runs in slices of that many, so that
     * each node's output stays in the L2 cache for its reader, and the buffers hold
     * `slice` rows only; the slices' outputs are gathered in sliced_out [max_batch, out].
     * 0: whole batches. */
    int64_t slice;
    nep_real *sliced_out;
    nep_real **pool;
    int n_pool;
    int64_t act_bytes;        /* bytes of the output buffers allocated (gradients not counted) */
};

/* Whether node id is an Add that one of its inputs sums itself into (nep_exec.residual). */
static inline bool nep_exec_add_fused(const nep_exec *ex, int id) {
    const nep_node *n = &ex->g->nodes[id];
    return n->n_inputs == 2 && (ex->residual[n->inputs[0]] == id || ex->residual[n->inputs[1]] == id);
}

static inline const nep_kernel *nep_exec_kernel(const nep_exec *ex, const nep_node *n) {
    return ex->backend->kernel(n->op);
}

#endif
