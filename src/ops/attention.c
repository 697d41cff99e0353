/* Multi-head self-attention, the whole module as one node, as torchvision has it in both
 * of its vision transformers:
 *   ViT   nn.MultiheadAttention(C, heads, batch_first=True) on a sequence [T, C], window 0:
 *         parameters in_proj_weight [3C, C], in_proj_bias [3C], out_proj.weight [C, C],
 *         out_proj.bias [C];
 *   Swin  ShiftedWindowAttention(C, window, shift, heads) on a grid [H, W, C]: qkv.weight,
 *         qkv.bias, proj.weight, proj.bias (the same shapes), relative_position_bias_table
 *         [(2 wh - 1)(2 ww - 1), heads].
 *   qkv = x Wqkv^T + bqkv, split as [q | k | v], each as heads x hd (hd = C / heads);
 *   per window and head: softmax(q k^T / sqrt(hd) + bias + mask) v; heads concatenated;
 *   y = that Wproj^T + bproj, in the tokens' own order and shape. Where the windows are
 *   and what the mask is: ops/attention.h.
 * One node rather than Linear, attention, Linear: Swin pads the grid before its qkv
 * Linear, so a padding slot's key and value are that Linear's bias, which a separate
 * attention node could not see. The projections are never pruned (SPEC section 1): their
 * weights are not NEP_PARAM_WEIGHT. */
#include <math.h>
#include <stdio.h>

#include "ops/attention.h"

nep_attention_geom nep_attention_geom_of(const nep_graph *g, const nep_node *n) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    const nep_attention_attrs *at = &n->attrs.attention;
    nep_attention_geom a = {.C = nep_shape_features(in), .heads = at->heads};
    a.T = nep_shape_positions(in);
    a.hd = a.C / a.heads;
    a.H = in->ndim == 3 ? in->d[0] : 1;
    a.W = in->ndim == 3 ? in->d[1] : in->d[0];
    a.biased = at->window[0] > 0;
    a.wh = a.biased ? at->window[0] : a.H;
    a.ww = a.biased ? at->window[1] : a.W;
    a.PH = (a.H + a.wh - 1) / a.wh * a.wh;
    a.PW = (a.W + a.ww - 1) / a.ww * a.ww;
    a.sh = a.wh >= a.PH ? 0 : at->shift[0];
    a.sw = a.ww >= a.PW ? 0 : at->shift[1];
    a.nW = (a.PH / a.wh) * (a.PW / a.ww);
    a.N = a.wh * a.ww;
    a.masked = a.sh + a.sw > 0;
    a.regroups = a.nW > 1 || a.PH != a.H || a.PW != a.W || a.masked;
    a.scale = 1 / sqrt((double)a.hd);
    return a;
}

static nep_status want_param(const nep_graph *g, const nep_node *n, int i, int ndim,
                             int64_t d0, int64_t d1, nep_err *err) {
    const nep_param *p = &g->params[n->params[i]];
    if (p->ndim == ndim && p->shape[0] == d0 && (ndim == 1 || p->shape[1] == d1)) return NEP_OK;
    char want[48];
    if (ndim == 2) snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
    else snprintf(want, sizeof want, "[%lld]", (long long)d0);
    return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Attention): parameter '%s' must be %s",
                    n->name, p->name, want);
}

static nep_status attention_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    const nep_attention_attrs *at = &n->attrs.attention;
    if (!nep_shape_features_last(in) || in->ndim > 3)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Attention): wants a token sequence [T, C] "
                        "or a grid [H, W, C] (features last), got %d dimensions with the features "
                        "at axis %d", n->name, in->ndim, in->axis);
    const int64_t C = nep_shape_features(in);
    if (at->heads < 1 || C % at->heads)
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (Attention): %d heads do not divide %lld "
                        "features", n->name, at->heads, (long long)C);
    const bool windowed = at->window[0] > 0 || at->window[1] > 0;
    if (windowed && (at->window[0] < 1 || at->window[1] < 1 || in->ndim != 3))
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (Attention): a window [%d, %d] needs both "
                        "sizes and a grid [H, W, C]", n->name, at->window[0], at->window[1]);
    for (int d = 0; d < 2; d++)
        if (at->shift[d] < 0 || (at->shift[d] > 0 && at->shift[d] >= at->window[d]))
            return nep_fail(err, NEP_ERR_ARG, "node '%s' (Attention): shift %d must be in [0, "
                            "window %d)", n->name, at->shift[d], at->window[d]);
    if (n->n_params != (windowed ? 5 : 4))
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Attention): wants %d parameters, has %d",
                        n->name, windowed ? 5 : 4, n->n_params);
    NEP_TRY(want_param(g, n, 0, 2, 3 * C, C, err));
    NEP_TRY(want_param(g, n, 1, 1, 3 * C, 0, err));
    NEP_TRY(want_param(g, n, 2, 2, C, C, err));
    NEP_TRY(want_param(g, n, 3, 1, C, 0, err));
    if (windowed)
        NEP_TRY(want_param(g, n, 4, 2, (int64_t)(2 * at->window[0] - 1) * (2 * at->window[1] - 1),
                           at->heads, err));
    n->shape = *in;
    return NEP_OK;
}

/* The four matmuls (as fvcore counts: 2 per multiply-add): the projections over the
 * tokens, the scores and the weighted values over every slot of every window. */
static int64_t attention_flops(const nep_graph *g, const nep_node *n) {
    const nep_attention_geom a = nep_attention_geom_of(g, n);
    return 8 * a.T * a.C * a.C + 4 * a.nW * a.N * a.N * a.C;
}

int nep_graph_add_attention(nep_graph *g, const char *name, int x, int64_t C,
                            nep_attention_attrs attrs) {
    const int id = nep_graph_add1(g, NEP_OP_ATTENTION, name, x, (nep_attrs){.attention = attrs});
    if (id < 0) return -1;
    const bool swin = attrs.window[0] > 0;
    const char *names[2][5] = {
        {"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias", NULL},
        {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias", "relative_position_bias_table"}};
    const int64_t shapes[5][2] = {{3 * C, C}, {3 * C}, {C, C}, {C},
                                  {(int64_t)(2 * attrs.window[0] - 1) * (2 * attrs.window[1] - 1), attrs.heads}};
    for (int i = 0; i < (swin ? 5 : 4); i++)
        if (nep_graph_add_param(g, id, names[swin][i], NEP_PARAM_TRAINABLE, i % 2 == 0 ? 2 : 1,
                                shapes[i]) < 0)
            return -1;
    return id;
}

static const nep_attr_field attention_attrs[] = {
    NEP_ATTR_FIELD("heads", attention.heads),
    NEP_ATTR_FIELD("window", attention.window),
    NEP_ATTR_FIELD("shift", attention.shift),
};

const nep_op_def nep_op_attention = {
    .name = "Attention", .min_inputs = 1, .max_inputs = 1,
    .infer = attention_infer, .flops = attention_flops,
    NEP_ATTR_FIELDS(attention_attrs),
};
