/* Composition: two linear layers with nothing nonlinear between them are one layer,
 * kept only where that costs fewer FLOPs than the pair; and x + L(x) is (I + W) x. */
#include <stdlib.h>
#include <string.h>

#include "collapse/rewrite.h"

typedef struct compose_ctx {
    const nep_collapse_opts *opts;
    nep_collapse_info *info;
} compose_ctx;

/* Conv geometry of a matmul (a Linear is a 1x1 conv on a 1x1 image). */
typedef struct geom {
    int64_t out, in, groups, kh, kw, sh, sw, ph, pw;
} geom;

static geom geom_of(const nep_graph *g, int id) {
    const nep_node *n = &g->nodes[id];
    geom q = {.out = n->attrs.matmul.features, .in = g->nodes[n->inputs[0]].shape.d[0], .groups = 1,
              .kh = 1, .kw = 1, .sh = 1, .sw = 1};
    if (n->op == NEP_OP_CONV2D) {
        q.groups = n->attrs.conv.groups > 0 ? n->attrs.conv.groups : 1;
        q.kh = n->attrs.conv.kernel[0], q.kw = n->attrs.conv.kernel[1];
        q.sh = n->attrs.conv.stride[0], q.sw = n->attrs.conv.stride[1];
        q.ph = n->attrs.conv.pad[0], q.pw = n->attrs.conv.pad[1];
    }
    return q;
}

/* Weight w of geometry q at [o, i, y, x] with i a full input index (0 outside o's group). */
static double dense_at(const nep_real *w, const geom *q, int64_t o, int64_t i, int64_t y, int64_t x) {
    const int64_t ipg = q->in / q->groups, opg = q->out / q->groups;
    if (i / ipg != o / opg) return 0;
    return w[((o * ipg + i % ipg) * q->kh + y) * q->kw + x];
}

/* first (a) then second (b) as one conv of geometry *c, into w [c.out, c.in, c.kh, c.kw]
 * and bias [c.out]: w[o,i,y,x] = sum_{m,u,v} wb[o,m,u,v] wa[m,i,y - sa u, x - sa v]. */
static void compose_weights(const geom *a, const nep_real *wa, const nep_real *ba, const geom *b,
                            const nep_real *wb, const nep_real *bb, const geom *c, nep_real *w,
                            nep_real *bias) {
    memset(w, 0, sizeof(nep_real) * (size_t)(c->out * c->in * c->kh * c->kw));
#pragma omp parallel for
    for (int64_t o = 0; o < c->out; o++) {
        double bo = bb ? bb[o] : 0;
        for (int64_t m = 0; m < b->in; m++)
            for (int64_t u = 0; u < b->kh; u++)
                for (int64_t v = 0; v < b->kw; v++) {
                    const double t = dense_at(wb, b, o, m, u, v);
                    if (t == 0) continue;
                    if (ba) bo += t * ba[m];
                    for (int64_t i = 0; i < a->in; i++)
                        for (int64_t y = 0; y < a->kh; y++)
                            for (int64_t x = 0; x < a->kw; x++)
                                w[((o * c->in + i) * c->kh + y + a->sh * u) * c->kw + x + a->sw * v] +=
                                    (nep_real)(t * dense_at(wa, a, m, i, y, x));
                }
        bias[o] = (nep_real)bo;
    }
}

static bool all_zero(const nep_real *v, int64_t n) {
    for (int64_t i = 0; v && i < n; i++)
        if (v[i] != 0) return false;
    return true;
}

/* Matmul b reading matmul a (its only reader) as one layer, if that is cheaper and
 * (unless allowed) exact. */
static nep_status compose_pair(nep_graph *g, int a, int b, compose_ctx *cx, int *changes, nep_err *err) {
    const geom ga = geom_of(g, a), gb = geom_of(g, b);
    geom c = {.out = gb.out, .in = ga.in, .groups = 1, .kh = ga.kh + ga.sh * (gb.kh - 1),
              .kw = ga.kw + ga.sw * (gb.kw - 1), .sh = ga.sh * gb.sh, .sw = ga.sw * gb.sw,
              .ph = ga.ph + ga.sh * gb.ph, .pw = ga.pw + ga.sw * gb.pw};
    const nep_node *na = &g->nodes[a], *nb = &g->nodes[b];
    const nep_real *ba = na->attrs.matmul.bias ? nep_rw_values(g, a, 1) : NULL;
    /* The second layer's zero padding pads the first one's output with 0; composed, the
     * border sees the first layer of zero-padded input instead. Equal when there is no
     * such padding, or when the first is a bias-free 1x1 that maps 0 to 0. */
    const bool exact = (!gb.ph && !gb.pw) ||
                       (ga.kh == 1 && ga.kw == 1 && ga.sh == 1 && ga.sw == 1 && !ga.ph && !ga.pw &&
                        all_zero(ba, ga.out));
    if (!exact && !cx->opts->allow_approx) return NEP_OK;
    const nep_shape *x = &g->nodes[na->inputs[0]].shape, *y = &nb->shape;
    const int64_t positions = nb->shape.ndim == 3 ? y->d[1] * y->d[2] : 1;
    if (nb->op == NEP_OP_CONV2D &&
        ((x->d[1] + 2 * c.ph - c.kh) / c.sh + 1 != y->d[1] || (x->d[2] + 2 * c.pw - c.kw) / c.sw + 1 != y->d[2]))
        return NEP_OK;
    const int64_t flops = 2 * positions * c.out * c.in * c.kh * c.kw + positions * c.out;
    if (flops >= nep_node_flops(g, na) + nep_node_flops(g, nb)) return NEP_OK;

    const int64_t nw = c.out * c.in * c.kh * c.kw;
    nep_real *w = malloc(sizeof(nep_real) * (size_t)(nw + c.out));
    if (!w) return nep_fail(err, NEP_ERR_NOMEM, "out of memory composing '%s'", nb->name);
    compose_weights(&ga, nep_rw_values(g, a, 0), ba, &gb, nep_rw_values(g, b, 0),
                    nb->attrs.matmul.bias ? nep_rw_values(g, b, 1) : NULL, &c, w, w + nw);
    const int64_t shape[4] = {c.out, c.in, c.kh, c.kw};
    nep_status s = nep_graph_reshape_param(g, g->nodes[b].params[0], nb->op == NEP_OP_LINEAR ? 2 : 4,
                                           shape, err);
    if (s == NEP_OK) s = nep_rw_ensure_bias(g, b, err);
    if (s == NEP_OK) {
        memcpy(nep_rw_values(g, b, 0), w, sizeof(nep_real) * (size_t)nw);
        memcpy(nep_rw_values(g, b, 1), w + nw, sizeof(nep_real) * (size_t)c.out);
        nep_node *n = &g->nodes[b];
        n->inputs[0] = g->nodes[a].inputs[0];
        if (n->op == NEP_OP_CONV2D) {
            n->attrs.conv.groups = 1;
            n->attrs.conv.kernel[0] = (int)c.kh, n->attrs.conv.kernel[1] = (int)c.kw;
            n->attrs.conv.stride[0] = (int)c.sh, n->attrs.conv.stride[1] = (int)c.sw;
            n->attrs.conv.pad[0] = (int)c.ph, n->attrs.conv.pad[1] = (int)c.pw;
        }
        s = nep_graph_finalize(g, err);
    }
    free(w);
    ++*changes;
    cx->info->composed++;
    cx->info->composed_approx += !exact;
    return s;
}

/* Add(x, L(x)) with L a Linear or a stride-1 conv that keeps the shape centred (odd
 * kernel, padding k/2): L with 1 added at its centre tap is the sum. */
static nep_status residual(nep_graph *g, int add, int *changes, nep_err *err) {
    const nep_node *n = &g->nodes[add];
    if (n->n_inputs != 2) return NEP_OK;
    for (int i = 0; i < 2; i++) {
        const int l = n->inputs[i], x = n->inputs[1 - i];
        if (!nep_rw_is_matmul(&g->nodes[l]) || g->nodes[l].inputs[0] != x || nep_rw_sole_reader(g, l) != add)
            continue;
        const geom q = geom_of(g, l);
        if (q.out != q.in || q.groups != 1 || q.sh != 1 || q.sw != 1 || q.kh % 2 == 0 || q.kw % 2 == 0 ||
            q.ph != q.kh / 2 || q.pw != q.kw / 2)
            continue;
        nep_real *w = nep_rw_values(g, l, 0);
        for (int64_t o = 0; o < q.out; o++) w[((o * q.in + o) * q.kh + q.kh / 2) * q.kw + q.kw / 2] += 1;
        nep_graph_replace_uses(g, add, l);
        g->nodes[add].dead = true;
        ++*changes;
        return nep_graph_finalize(g, err);
    }
    return NEP_OK;
}

static nep_status compose_step(nep_graph *g, void *ctx, int *changes, nep_err *err) {
    compose_ctx *cx = ctx;
    for (int k = 0; k < g->n_order && !*changes; k++) {
        const int id = g->order[k];
        const nep_node *n = &g->nodes[id];
        if (n->op == NEP_OP_ADD) {
            NEP_TRY(residual(g, id, changes, err));
            cx->info->residual_folded += *changes;
        } else if (nep_rw_is_matmul(n) && nep_rw_is_matmul(&g->nodes[n->inputs[0]]) &&
                   g->nodes[n->inputs[0]].op == n->op && nep_rw_sole_reader(g, n->inputs[0]) == id) {
            NEP_TRY(compose_pair(g, n->inputs[0], id, cx, changes, err));
        }
    }
    return NEP_OK;
}

nep_status nep_collapse_compose(const nep_graph *src, const nep_collapse_opts *o, nep_graph *dst,
                                nep_collapse_info *info, nep_err *err) {
    compose_ctx cx = {o, info};
    return nep_rw_run(src, dst, compose_step, &cx, err);
}
