/* Helpers shared by the collapse rewrites: who reads a node, weight matrices seen per
 * output channel, and the edit-a-copy-then-compact frame every rewrite has. */
#ifndef NEPENTHE_COLLAPSE_REWRITE_H
#define NEPENTHE_COLLAPSE_REWRITE_H

#include "nepenthe/collapse.h"
#include "ops/ops.h"

/* Live readers of node id (one per input slot), plus one if it is the graph output. */
int nep_rw_uses(const nep_graph *g, int id);
/* The node that is id's only reader, or -1 (none, several, or id is the output). */
int nep_rw_sole_reader(const nep_graph *g, int id);
/* Node id's parameter slot i, and its values. */
static inline nep_param *nep_rw_param(nep_graph *g, int id, int i) {
    return &g->params[g->nodes[id].params[i]];
}
static inline nep_real *nep_rw_values(nep_graph *g, int id, int i) {
    return g->values + nep_rw_param(g, id, i)->offset;
}

/* A Linear or Conv2d weight seen as [out, in_per_group, taps] in `groups` groups
 * (Linear: one group, one tap). bias is NULL when the layer has none. */
typedef struct nep_rw_matmul {
    int64_t out, in_per_group, groups, taps;
    nep_real *w, *bias;
} nep_rw_matmul;

static inline bool nep_rw_is_matmul(const nep_node *n) {
    return n->op == NEP_OP_LINEAR || n->op == NEP_OP_CONV2D;
}
nep_rw_matmul nep_rw_matmul_of(nep_graph *g, int id);
/* Gives a Linear or Conv2d a zero bias if it has none (pointers into values move). */
nep_status nep_rw_ensure_bias(nep_graph *g, int id, nep_err *err);
/* Adds a per-channel Affine (weight 1, bias 0, C channels) reading node `after`, and
 * makes every other reader of `after` read it instead. Returns its id or -1. */
int nep_rw_insert_affine(nep_graph *g, int after, const char *name, int64_t C);
/* Turns node id into an Affine of C channels with fresh weight 1 and bias 0, reading
 * input. Returns NEP_OK or out of memory. */
nep_status nep_rw_make_affine(nep_graph *g, int id, int input, int64_t C, nep_err *err);
/* Deletes a single-input node, its readers reading its input (then re-finalizes). */
nep_status nep_rw_bypass(nep_graph *g, int id, nep_err *err);

/* The frame of a rewrite: dst = compact(step applied to a copy of src until it reports
 * no change). step adds the number of changes it made to *changes. */
typedef nep_status (*nep_rw_step)(nep_graph *g, void *ctx, int *changes, nep_err *err);
nep_status nep_rw_run(const nep_graph *src, nep_graph *dst, nep_rw_step step, void *ctx,
                      nep_err *err);

#endif
