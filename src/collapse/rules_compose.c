/* Composition: two linear layers with nothing nonlinear between them are one layer,
 * kept only where that costs fewer FLOPs than the pair (compose_linear_linear,
 * compose_conv_conv, and compose_conv_conv_border where the zero-padded border differs);
 * and x + L(x) is (I + W) x (residual_fold). A Linear maps every token of a sequence
 * alike, so all of it holds token by token. */
#include <stdlib.h>
#include <string.h>

#include "collapse/rewrite.h"

typedef nep_rw_geom geom;

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

/* The composed geometry of b after a. */
static geom composed(const geom *ga, const geom *gb) {
    return (geom){.out = gb->out, .in = ga->in, .groups = 1, .kh = ga->kh + ga->sh * (gb->kh - 1),
                  .kw = ga->kw + ga->sw * (gb->kw - 1), .sh = ga->sh * gb->sh, .sw = ga->sw * gb->sw,
                  .ph = ga->ph + ga->sh * gb->ph, .pw = ga->pw + ga->sw * gb->pw};
}

static const nep_real *bias_of(nep_graph *g, int id) {
    return g->nodes[id].attrs.matmul.bias ? nep_rw_values(g, id, 1) : NULL;
}

/* The second layer's zero padding pads the first one's output with 0; composed, the
 * border sees the first layer of zero-padded input instead. Equal when there is no such
 * padding, or when the first is a bias-free 1x1 that maps 0 to 0. */
static bool pair_exact(nep_graph *g, int a, const geom *ga, const geom *gb) {
    return (!gb->ph && !gb->pw) ||
           (ga->kh == 1 && ga->kw == 1 && ga->sh == 1 && ga->sw == 1 && !ga->ph && !ga->pw &&
            all_zero(bias_of(g, a), ga->out));
}

/* Matmul b reading matmul a of the same op (b a's only reader), composed if that keeps the
 * output's shape and costs fewer FLOPs, and is exact (or, want_exact false, is not). */
static bool pair_match(nep_graph *g, int b, nep_op_kind op, bool want_exact) {
    const nep_node *nb = &g->nodes[b];
    if (nb->op != op) return false;
    const int a = nb->inputs[0];
    const nep_node *na = &g->nodes[a];
    if (na->op != op || nep_rw_sole_reader(g, a) != b) return false;
    const geom ga = nep_rw_geom_of(g, a), gb = nep_rw_geom_of(g, b), c = composed(&ga, &gb);
    if (pair_exact(g, a, &ga, &gb) != want_exact) return false;
    const nep_shape *x = &g->nodes[na->inputs[0]].shape, *y = &nb->shape;
    if (op == NEP_OP_CONV2D &&
        ((x->d[1] + 2 * c.ph - c.kh) / c.sh + 1 != y->d[1] || (x->d[2] + 2 * c.pw - c.kw) / c.sw + 1 != y->d[2]))
        return false;
    /* at each position: each pixel of an image, each token of a sequence */
    const int64_t positions = nep_shape_positions(y);
    const int64_t flops = 2 * positions * c.out * c.in * c.kh * c.kw + positions * c.out;
    return flops < nep_node_flops(g, na) + nep_node_flops(g, nb);
}

static nep_status pair_apply(nep_graph *g, int b, nep_rw_ctx *cx, nep_err *err) {
    const int a = g->nodes[b].inputs[0];
    const geom ga = nep_rw_geom_of(g, a), gb = nep_rw_geom_of(g, b), c = composed(&ga, &gb);
    const bool exact = pair_exact(g, a, &ga, &gb);
    const nep_node *nb = &g->nodes[b];
    const int64_t nw = c.out * c.in * c.kh * c.kw;
    nep_real *w = malloc(sizeof(nep_real) * (size_t)(nw + c.out));
    if (!w) return nep_fail(err, NEP_ERR_NOMEM, "out of memory composing '%s'", nb->name);
    compose_weights(&ga, nep_rw_values(g, a, 0), bias_of(g, a), &gb, nep_rw_values(g, b, 0),
                    bias_of(g, b), &c, w, w + nw);
    const int64_t shape[4] = {c.out, c.in, c.kh, c.kw};
    const bool conv = nep_rw_param(g, b, 0)->ndim == 4;
    nep_status s = nep_graph_reshape_param(g, nb->params[0], conv ? 4 : 2, shape, err);
    if (s == NEP_OK) s = nep_rw_ensure_bias(g, b, err);
    if (s == NEP_OK) {
        memcpy(nep_rw_values(g, b, 0), w, sizeof(nep_real) * (size_t)nw);
        memcpy(nep_rw_values(g, b, 1), w + nw, sizeof(nep_real) * (size_t)c.out);
        nep_node *n = &g->nodes[b];
        n->inputs[0] = g->nodes[a].inputs[0];
        if (conv) {
            n->attrs.conv.groups = 1;
            n->attrs.conv.kernel[0] = (int)c.kh, n->attrs.conv.kernel[1] = (int)c.kw;
            n->attrs.conv.stride[0] = (int)c.sh, n->attrs.conv.stride[1] = (int)c.sw;
            n->attrs.conv.pad[0] = (int)c.ph, n->attrs.conv.pad[1] = (int)c.pw;
        }
        s = nep_graph_finalize(g, err);
    }
    free(w);
    cx->info->composed++;
    cx->info->composed_approx += !exact;
    return s;
}

static bool linear_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    return pair_match(g, id, NEP_OP_LINEAR, true);
}
static bool conv_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    return pair_match(g, id, NEP_OP_CONV2D, true);
}
static bool conv_border_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    return pair_match(g, id, NEP_OP_CONV2D, false);
}

const nep_rw_rule nep_rule_compose_linear_linear = {"compose_linear_linear", true, linear_match,
                                                    pair_apply};
const nep_rw_rule nep_rule_compose_conv_conv = {"compose_conv_conv", true, conv_match, pair_apply};
/* The composed conv computes the pair's output in the interior only; the border rows and
 * columns differ (measured by the caller's equivalence check). */
const nep_rw_rule nep_rule_compose_conv_conv_border = {"compose_conv_conv_border", false,
                                                       conv_border_match, pair_apply};

/* ---- residual_fold ---------------------------------------------------------------------- */

/* Add(x, L(x)), L read by the Add alone: which input is L (0 or 1), or -1. L is a Linear
 * (on a vector or token by token), or a stride-1 conv that keeps the shape centred (odd
 * kernel, padding k/2), mapping as many features as it reads. */
static int residual_branch(nep_graph *g, int add) {
    const nep_node *n = &g->nodes[add];
    if (n->op != NEP_OP_ADD || n->n_inputs != 2) return -1;
    for (int i = 0; i < 2; i++) {
        const int l = n->inputs[i], x = n->inputs[1 - i];
        if (!nep_rw_is_matmul(&g->nodes[l]) || g->nodes[l].inputs[0] != x || nep_rw_sole_reader(g, l) != add)
            continue;
        const geom q = nep_rw_geom_of(g, l);
        if (q.out != q.in || q.groups != 1 || q.sh != 1 || q.sw != 1 || q.kh % 2 == 0 || q.kw % 2 == 0 ||
            q.ph != q.kh / 2 || q.pw != q.kw / 2)
            continue;
        return i;
    }
    return -1;
}

static bool residual_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    return residual_branch(g, id) >= 0;
}

/* L with 1 added at its centre tap is the sum. */
static nep_status residual_apply(nep_graph *g, int add, nep_rw_ctx *cx, nep_err *err) {
    const int l = g->nodes[add].inputs[residual_branch(g, add)];
    const geom q = nep_rw_geom_of(g, l);
    nep_real *w = nep_rw_values(g, l, 0);
    for (int64_t o = 0; o < q.out; o++) w[((o * q.in + o) * q.kh + q.kh / 2) * q.kw + q.kw / 2] += 1;
    nep_graph_replace_uses(g, add, l);
    g->nodes[add].dead = true;
    cx->info->residual_folded++;
    return nep_graph_finalize(g, err);
}

const nep_rw_rule nep_rule_residual_fold = {"residual_fold", true, residual_match, residual_apply};
