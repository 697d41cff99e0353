/* The collapse rewrites as rules (name, exact or approximate, match, apply) and the one
 * engine that runs them to a fixed point on a copy of a graph (engine.c); plus the
 * helpers the rules share: who reads a node, weight matrices seen per output channel,
 * and where a neuron's entries sit in a flattened tensor. */
#ifndef NEPENTHE_COLLAPSE_REWRITE_H
#define NEPENTHE_COLLAPSE_REWRITE_H

#include "nepenthe/collapse.h"
#include "ops/ops.h"

/* What a rule sees besides the graph: the options and the counts it adds to. */
typedef struct nep_rw_ctx {
    nep_collapse_opts opts;
    nep_collapse_info *info;
} nep_rw_ctx;

/* One rewrite. match says whether apply would change the graph at node id now (it only
 * reads g; the engine stops when no rule matches anywhere, so a match that changes
 * nothing would loop). apply rewrites in place, re-finalizes what it reshaped, and adds
 * to the legacy counts of cx->info (the engine counts the application itself). An
 * approximate rule (exact false) changes the function: the engine runs it only with
 * opts.allow_approx. */
typedef struct nep_rw_rule {
    const char *name;
    bool exact;
    bool (*match)(nep_graph *g, int id, const nep_rw_ctx *cx);
    nep_status (*apply)(nep_graph *g, int id, nep_rw_ctx *cx, nep_err *err);
} nep_rw_rule;

/* dst = compact(a copy of src with the rules of the table (engine.c) run to a fixed
 * point): all of them, or only those named in `only` (NULL-terminated; NULL = all).
 * Unknown names are refused. */
nep_status nep_rw_run(const nep_graph *src, nep_graph *dst, const char *const *only,
                      nep_rw_ctx *cx, nep_err *err);

/* The rules, defined next to the helpers they need. */
extern const nep_rw_rule nep_rule_bn_to_affine, nep_rule_remove_identity, nep_rule_remove_dropout,
    nep_rule_remove_identity_affine, nep_rule_affine_into_matmul_after, nep_rule_merge_affines,
    nep_rule_affine_through_global_avgpool, nep_rule_affine_into_matmul_before,
    nep_rule_add_of_constant_to_affine, nep_rule_drop_constant_channels, nep_rule_residual_fold,
    nep_rule_compose_linear_linear, nep_rule_compose_conv_conv, nep_rule_compose_conv_conv_border;

/* ---- helpers ------------------------------------------------------------------------ */

/* Live readers of node id (one per input slot), plus one if it is the graph output. */
int nep_rw_uses(const nep_graph *g, int id);
/* Keeps the entries keep[0..n_keep) along dimension dim (0 or 1) of a parameter (values
 * and masks), in fresh storage (nep_graph_reshape_param). */
nep_status nep_rw_select_param(nep_graph *g, int param, int dim, const int64_t *keep, int64_t n_keep,
                               nep_err *err);
/* The node that is id's only reader, or -1 (none, several, or id is the output). */
int nep_rw_sole_reader(const nep_graph *g, int id);
/* Node id's parameter slot i, and its values. */
static inline nep_param *nep_rw_param(nep_graph *g, int id, int i) {
    return &g->params[g->nodes[id].params[i]];
}
static inline nep_real *nep_rw_values(nep_graph *g, int id, int i) {
    return g->values + nep_rw_param(g, id, i)->offset;
}
/* Per-element ops (the rectifiers, Affine, BatchNorm, Identity, Dropout, StochasticDepth:
 * in evaluation mode, which is what rewrites are made in): feature c of
 * the output depends on feature c of the input alone, through the op's value. */
static inline bool nep_rw_per_element(const nep_node *n) { return nep_op(n->op)->value != NULL; }
static inline bool nep_rw_is_matmul(const nep_node *n) { return nep_op(n->op)->matmul; }

/* A matmul's weight seen as [out, in_per_group, taps] in `groups` groups (Linear: one
 * group, one tap). bias is NULL when the layer has none. */
typedef struct nep_rw_matmul {
    int64_t out, in_per_group, groups, taps;
    nep_real *w, *bias;
} nep_rw_matmul;
nep_rw_matmul nep_rw_matmul_of(nep_graph *g, int id);

/* A matmul's geometry as a conv's: a Linear is a 1x1 conv on a 1x1 image, applied at
 * every position of its input (each token of a sequence). in: input features. */
typedef struct nep_rw_geom {
    int64_t out, in, groups, kh, kw, sh, sw, ph, pw;
} nep_rw_geom;
nep_rw_geom nep_rw_geom_of(const nep_graph *g, int id);

/* Entry j of a tensor of shape s, flattened row-major, is an observation of feature
 * (j / stride) % C, C = nep_shape_features(s), stride that of the neuron axis: H * W for
 * an image [C, H, W] (one feature per plane), 1 for a token sequence [T, C] or a vector. */
static inline int64_t nep_rw_feature_stride(const nep_shape *s) {
    int64_t stride = 1;
    for (int d = s->axis + 1; d < s->ndim; d++) stride *= s->d[d];
    return stride;
}

/* Gives a matmul a zero bias if it has none (pointers into values move). */
nep_status nep_rw_ensure_bias(nep_graph *g, int id, nep_err *err);
/* Adds a per-channel Affine (weight 1, bias 0, C channels) reading node `after`, and
 * makes every other reader of `after` read it instead. Returns its id or -1. */
int nep_rw_insert_affine(nep_graph *g, int after, const char *name, int64_t C);
/* Turns node id into an Affine of C channels with fresh weight 1 and bias 0, reading
 * input. Returns NEP_OK or out of memory. */
nep_status nep_rw_make_affine(nep_graph *g, int id, int input, int64_t C, nep_err *err);
/* Deletes a single-input node, its readers reading its input (then re-finalizes). */
nep_status nep_rw_bypass(nep_graph *g, int id, nep_err *err);

#endif
