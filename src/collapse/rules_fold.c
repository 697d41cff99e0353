/* Folding rules: per-channel affine maps (evaluation-mode BatchNorm, linearized
 * rectifiers, masks of always-OFF neurons) go into the weights of a neighbouring matmul,
 * into each other, or away; ops that compute the identity in evaluation go too. */
#include "collapse/rewrite.h"
#include "ops/batchnorm.h"

static bool is_op(const nep_graph *g, int id, nep_op_kind op) { return g->nodes[id].op == op; }

/* ---- bn_to_affine: BatchNorm -> Affine with the forward's own scale and shift ---------- */

static bool bn_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    return is_op(g, id, NEP_OP_BATCHNORM);
}

static nep_status bn_apply(nep_graph *g, int id, nep_rw_ctx *cx, nep_err *err) {
    const nep_node *n = &g->nodes[id];
    const int64_t C = nep_rw_param(g, id, 0)->numel;
    const double eps = nep_bn_eps(&n->attrs.batchnorm);
    nep_real *w = nep_rw_values(g, id, BN_WEIGHT), *b = nep_rw_values(g, id, BN_BIAS),
             *mean = nep_rw_values(g, id, BN_RMEAN), *var = nep_rw_values(g, id, BN_RVAR);
    for (int64_t c = 0; c < C; c++) {
        double scale, shift;
        nep_bn_eval_affine(w[c], b[c], mean[c], var[c], eps, &scale, &shift);
        w[c] = (nep_real)scale, b[c] = (nep_real)shift;
    }
    g->nodes[id].op = NEP_OP_AFFINE;
    g->nodes[id].n_params = 2;
    g->nodes[id].attrs = (nep_attrs){0};
    cx->info->bn_folded++;
    return nep_graph_finalize(g, err);
}

const nep_rw_rule nep_rule_bn_to_affine = {"bn_to_affine", true, bn_match, bn_apply};

/* ---- remove_identity, remove_dropout: the identity in evaluation mode ------------------ */

static bool identity_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    return is_op(g, id, NEP_OP_IDENTITY);
}
/* Dropout, and StochasticDepth (which drops whole samples): random in training only. */
static bool dropout_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    return is_op(g, id, NEP_OP_DROPOUT) || is_op(g, id, NEP_OP_DROP_PATH);
}
static nep_status remove_apply(nep_graph *g, int id, nep_rw_ctx *cx, nep_err *err) {
    cx->info->removed++;
    return nep_rw_bypass(g, id, err);
}

const nep_rw_rule nep_rule_remove_identity = {"remove_identity", true, identity_match, remove_apply};
const nep_rw_rule nep_rule_remove_dropout = {"remove_dropout", true, dropout_match, remove_apply};

/* ---- remove_identity_affine: weight 1, bias 0 ------------------------------------------ */

static bool identity_affine_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    if (!is_op(g, id, NEP_OP_AFFINE)) return false;
    const int64_t C = nep_rw_param(g, id, 0)->numel;
    const nep_real *w = nep_rw_values(g, id, 0), *b = nep_rw_values(g, id, 1);
    for (int64_t c = 0; c < C; c++)
        if (w[c] != 1 || b[c] != 0) return false;
    return true;
}

static nep_status affine_away_apply(nep_graph *g, int id, nep_rw_ctx *cx, nep_err *err) {
    cx->info->affine_folded++;
    return nep_rw_bypass(g, id, err);
}

const nep_rw_rule nep_rule_remove_identity_affine = {"remove_identity_affine", true,
                                                     identity_affine_match, affine_away_apply};

/* ---- affine_into_matmul_after: Affine a after matmul p, a its only reader -------------- */

static bool after_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    if (!is_op(g, id, NEP_OP_AFFINE)) return false;
    const int p = g->nodes[id].inputs[0];
    return nep_rw_is_matmul(&g->nodes[p]) && nep_rw_sole_reader(g, p) == id;
}

/* Row o of p scaled by w[o], bias w[o] b[o] + shift[o]: output feature o, at every
 * position (pixel or token) alike. */
static nep_status after_apply(nep_graph *g, int a, nep_rw_ctx *cx, nep_err *err) {
    const int p = g->nodes[a].inputs[0];
    NEP_TRY(nep_rw_ensure_bias(g, p, err));
    const nep_rw_matmul m = nep_rw_matmul_of(g, p);
    const nep_real *w = nep_rw_values(g, a, 0), *b = nep_rw_values(g, a, 1);
    const int64_t row = m.in_per_group * m.taps;
    for (int64_t o = 0; o < m.out; o++) {
        for (int64_t k = 0; k < row; k++) m.w[o * row + k] *= w[o];
        m.bias[o] = w[o] * m.bias[o] + b[o];
    }
    cx->info->affine_folded++;
    return nep_rw_bypass(g, a, err);
}

const nep_rw_rule nep_rule_affine_into_matmul_after = {"affine_into_matmul_after", true,
                                                       after_match, after_apply};

/* ---- merge_affines: Affine a2 after Affine a1, a2 a1's only reader ----------------------- */

static bool merge_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    if (!is_op(g, id, NEP_OP_AFFINE)) return false;
    const int a1 = g->nodes[id].inputs[0];
    return is_op(g, a1, NEP_OP_AFFINE) && nep_rw_sole_reader(g, a1) == id;
}

static nep_status merge_apply(nep_graph *g, int a2, nep_rw_ctx *cx, nep_err *err) {
    const int a1 = g->nodes[a2].inputs[0];
    const int64_t C = nep_rw_param(g, a1, 0)->numel;
    nep_real *w1 = nep_rw_values(g, a1, 0), *b1 = nep_rw_values(g, a1, 1);
    const nep_real *w2 = nep_rw_values(g, a2, 0), *b2 = nep_rw_values(g, a2, 1);
    for (int64_t c = 0; c < C; c++) {
        w1[c] = w2[c] * w1[c];
        b1[c] = w2[c] * b1[c] + b2[c];
    }
    cx->info->affine_folded++;
    return nep_rw_bypass(g, a2, err);
}

const nep_rw_rule nep_rule_merge_affines = {"merge_affines", true, merge_match, merge_apply};

/* ---- affine_through_global_avgpool ------------------------------------------------------ */

/* The mean of w x + b is w mean(x) + b: Affine a moves after the pool p that is its only
 * reader, where it may meet the Linear that follows. */
static bool pool_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    if (!is_op(g, id, NEP_OP_AFFINE)) return false;
    const int p = nep_rw_sole_reader(g, id);
    return p >= 0 && is_op(g, p, NEP_OP_GLOBAL_AVGPOOL);
}

static nep_status pool_apply(nep_graph *g, int a, nep_rw_ctx *cx, nep_err *err) {
    const int p = nep_rw_sole_reader(g, a);
    g->nodes[p].inputs[0] = g->nodes[a].inputs[0];
    nep_graph_replace_uses(g, p, a);
    g->nodes[a].inputs[0] = p;
    return nep_graph_finalize(g, err);
}

const nep_rw_rule nep_rule_affine_through_global_avgpool = {"affine_through_global_avgpool", true,
                                                            pool_match, pool_apply};

/* ---- affine_into_matmul_before: Affine a read by a matmul r alone -------------------------- */

/* r, reading a directly or through a Flatten (then a Linear), or -1. */
static int consumer(nep_graph *g, int a) {
    int r = nep_rw_sole_reader(g, a);
    if (r >= 0 && is_op(g, r, NEP_OP_FLATTEN)) {
        r = nep_rw_sole_reader(g, r);
        if (r < 0 || !is_op(g, r, NEP_OP_LINEAR)) return -1;
    }
    return r >= 0 && nep_rw_is_matmul(&g->nodes[r]) ? r : -1;
}

static bool any_nonzero(const nep_real *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (v[i] != 0) return true;
    return false;
}

/* Exact unless r zero-pads its input and a shift is not 0 (the padding stays 0, where
 * the shifted input would not be). */
static bool before_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    if (!is_op(g, id, NEP_OP_AFFINE)) return false;
    const int r = consumer(g, id);
    if (r < 0) return false;
    const nep_rw_geom q = nep_rw_geom_of(g, r);
    return (!q.ph && !q.pw) || !any_nonzero(nep_rw_values(g, id, 1), nep_rw_param(g, id, 1)->numel);
}

/* Input column j of r reads feature c of a: c = j when r reads a itself (a conv's input
 * channel, a Linear's feature of every token); through a Flatten, column j is entry j
 * of a's output flattened (nep_rw_feature_stride). It is scaled by w[c], and its part
 * of the constant shift goes to r's bias; through a conv's taps alike. */
static nep_status before_apply(nep_graph *g, int a, nep_rw_ctx *cx, nep_err *err) {
    const int r = consumer(g, a);
    const nep_shape *s = &g->nodes[a].shape;
    const int64_t C = nep_shape_features(s);
    const int64_t stride = g->nodes[r].inputs[0] == a ? 1 : nep_rw_feature_stride(s);
    if (any_nonzero(nep_rw_values(g, a, 1), nep_rw_param(g, a, 1)->numel))
        NEP_TRY(nep_rw_ensure_bias(g, r, err));
    const nep_rw_matmul m = nep_rw_matmul_of(g, r);
    const nep_real *w = nep_rw_values(g, a, 0), *b = nep_rw_values(g, a, 1);
    const int64_t out_per_group = m.out / m.groups;
    for (int64_t o = 0; o < m.out; o++) {
        const int64_t first = (o / out_per_group) * m.in_per_group; /* the group's first input */
        for (int64_t j = 0; j < m.in_per_group; j++) {
            const int64_t c = (first + j) / stride % C;
            nep_real *t = m.w + (o * m.in_per_group + j) * m.taps;
            for (int64_t k = 0; k < m.taps; k++) {
                if (m.bias) m.bias[o] += t[k] * b[c];
                t[k] *= w[c];
            }
        }
    }
    cx->info->affine_folded++;
    return nep_rw_bypass(g, a, err);
}

const nep_rw_rule nep_rule_affine_into_matmul_before = {"affine_into_matmul_before", true,
                                                        before_match, before_apply};
