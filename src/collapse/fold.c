/* Folding: per-channel affine maps (evaluation-mode BatchNorm, linearized rectifiers)
 * go into the weights of a neighbouring conv or Linear, or away. */
#include "collapse/rewrite.h"
#include "ops/batchnorm.h"

/* BatchNorm -> Affine with the forward's own scale and shift. */
static nep_status bn_to_affine(nep_graph *g, int id, nep_err *err) {
    const nep_node *n = &g->nodes[id];
    const int64_t C = nep_rw_param(g, id, 0)->numel;
    const double eps = nep_bn_eps(&n->attrs.batchnorm);
    nep_real *w = nep_rw_values(g, id, 0), *b = nep_rw_values(g, id, 1),
             *mean = nep_rw_values(g, id, 2), *var = nep_rw_values(g, id, 3);
    for (int64_t c = 0; c < C; c++) {
        double scale, shift;
        nep_bn_eval_affine(w[c], b[c], mean[c], var[c], eps, &scale, &shift);
        w[c] = (nep_real)scale, b[c] = (nep_real)shift;
    }
    g->nodes[id].op = NEP_OP_AFFINE;
    g->nodes[id].n_params = 2;
    g->nodes[id].attrs = (nep_attrs){0};
    return nep_graph_finalize(g, err);
}

static bool is_identity_affine(nep_graph *g, int id) {
    const int64_t C = nep_rw_param(g, id, 0)->numel;
    const nep_real *w = nep_rw_values(g, id, 0), *b = nep_rw_values(g, id, 1);
    for (int64_t c = 0; c < C; c++)
        if (w[c] != 1 || b[c] != 0) return false;
    return true;
}

/* Affine a after matmul p (a its only reader): row o of p scaled by w[o], bias
 * w[o] b[o] + shift[o]. */
static nep_status into_producer(nep_graph *g, int p, int a, nep_err *err) {
    NEP_TRY(nep_rw_ensure_bias(g, p, err));
    const nep_rw_matmul m = nep_rw_matmul_of(g, p);
    const nep_real *w = nep_rw_values(g, a, 0), *b = nep_rw_values(g, a, 1);
    const int64_t row = m.in_per_group * m.taps;
    for (int64_t o = 0; o < m.out; o++) {
        for (int64_t k = 0; k < row; k++) m.w[o * row + k] *= w[o];
        m.bias[o] = w[o] * m.bias[o] + b[o];
    }
    return nep_rw_bypass(g, a, err);
}

static bool any_nonzero(const nep_real *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (v[i] != 0) return true;
    return false;
}

/* Affine a before matmul r (r its only reader) on C channels, each feeding `spread`
 * consecutive inputs of r (a Flatten between them), or through a conv's taps. Input
 * column j of r is scaled by w[j / spread] and its contribution to a constant shift
 * goes to r's bias. Exact unless r zero-pads its input and a shift is not 0. */
static bool into_consumer_exact(nep_graph *g, int a, int r) {
    const nep_node *n = &g->nodes[r];
    const bool pads = n->op == NEP_OP_CONV2D && (n->attrs.conv.pad[0] || n->attrs.conv.pad[1]);
    return !pads || !any_nonzero(nep_rw_values(g, a, 1), nep_rw_param(g, a, 1)->numel);
}

static nep_status into_consumer(nep_graph *g, int a, int r, int64_t spread, nep_err *err) {
    const nep_real *b0 = nep_rw_values(g, a, 1);
    if (any_nonzero(b0, nep_rw_param(g, a, 1)->numel)) NEP_TRY(nep_rw_ensure_bias(g, r, err));
    const nep_rw_matmul m = nep_rw_matmul_of(g, r);
    const nep_real *w = nep_rw_values(g, a, 0), *b = nep_rw_values(g, a, 1);
    const int64_t out_per_group = m.out / m.groups;
    for (int64_t o = 0; o < m.out; o++) {
        const int64_t first = (o / out_per_group) * m.in_per_group; /* the group's first input */
        for (int64_t j = 0; j < m.in_per_group; j++) {
            const int64_t c = (first + j) / spread;
            nep_real *t = m.w + (o * m.in_per_group + j) * m.taps;
            for (int64_t k = 0; k < m.taps; k++) {
                if (m.bias) m.bias[o] += t[k] * b[c];
                t[k] *= w[c];
            }
        }
    }
    return nep_rw_bypass(g, a, err);
}

/* Node a's consumer after per-channel-preserving ops, for into_consumer: Flatten
 * (spread = the positions per channel) then a Linear, or a conv/Linear directly. */
static int consumer_through_flatten(nep_graph *g, int a, int64_t *spread) {
    int r = nep_rw_sole_reader(g, a);
    *spread = 1;
    if (r >= 0 && g->nodes[r].op == NEP_OP_FLATTEN) {
        const nep_shape *s = &g->nodes[a].shape;
        *spread = s->ndim == 3 ? s->d[1] * s->d[2] : 1;
        const int f = r;
        r = nep_rw_sole_reader(g, f);
        if (r < 0 || g->nodes[r].op != NEP_OP_LINEAR) return -1;
    }
    return r >= 0 && nep_rw_is_matmul(&g->nodes[r]) ? r : -1;
}

/* Affine a before global average pooling p: the mean of w x + b is w mean(x) + b, so a
 * moves after p (where it may meet the Linear that follows). */
static nep_status past_pool(nep_graph *g, int a, int p, nep_err *err) {
    g->nodes[p].inputs[0] = g->nodes[a].inputs[0];
    nep_graph_replace_uses(g, p, a);
    g->nodes[a].inputs[0] = p;
    return nep_graph_finalize(g, err);
}

/* Affine a2 after Affine a1 (its only reader): one Affine. */
static nep_status merge(nep_graph *g, int a1, int a2, nep_err *err) {
    const int64_t C = nep_rw_param(g, a1, 0)->numel;
    nep_real *w1 = nep_rw_values(g, a1, 0), *b1 = nep_rw_values(g, a1, 1);
    const nep_real *w2 = nep_rw_values(g, a2, 0), *b2 = nep_rw_values(g, a2, 1);
    for (int64_t c = 0; c < C; c++) {
        w1[c] = w2[c] * w1[c];
        b1[c] = w2[c] * b1[c] + b2[c];
    }
    return nep_rw_bypass(g, a2, err);
}

/* One change, the first that applies in topological order. */
static nep_status fold_step(nep_graph *g, void *ctx, int *changes, nep_err *err) {
    nep_collapse_info *info = ctx;
    for (int k = 0; k < g->n_order; k++) {
        const int id = g->order[k];
        const nep_node *n = &g->nodes[id];
        if (n->op == NEP_OP_BATCHNORM) {
            ++*changes, info->bn_folded++;
            return bn_to_affine(g, id, err);
        }
        if (n->op == NEP_OP_IDENTITY || n->op == NEP_OP_DROPOUT) {
            ++*changes, info->removed++;
            return nep_rw_bypass(g, id, err);
        }
        if (n->op != NEP_OP_AFFINE) continue;
        const int in = n->inputs[0], reader = nep_rw_sole_reader(g, id);
        int64_t spread;
        int r;
        if (is_identity_affine(g, id)) {
            ++*changes, info->affine_folded++;
            return nep_rw_bypass(g, id, err);
        }
        if (nep_rw_is_matmul(&g->nodes[in]) && nep_rw_sole_reader(g, in) == id) {
            ++*changes, info->affine_folded++;
            return into_producer(g, in, id, err);
        }
        if (g->nodes[in].op == NEP_OP_AFFINE && nep_rw_sole_reader(g, in) == id) {
            ++*changes, info->affine_folded++;
            return merge(g, in, id, err);
        }
        if (reader >= 0 && g->nodes[reader].op == NEP_OP_GLOBAL_AVGPOOL) {
            ++*changes;
            return past_pool(g, id, reader, err);
        }
        if ((r = consumer_through_flatten(g, id, &spread)) >= 0 && into_consumer_exact(g, id, r)) {
            ++*changes, info->affine_folded++;
            return into_consumer(g, id, r, spread, err);
        }
    }
    return NEP_OK;
}

nep_status nep_collapse_fold(const nep_graph *src, nep_graph *dst, nep_collapse_info *info,
                             nep_err *err) {
    return nep_rw_run(src, dst, fold_step, info, err);
}
