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
#include <stdlib.h>

#include "ops/attention.h"
#include "ops/onnx_map.h"

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

/* ---- ONNX (opset 17), at evaluation, as torchvision computes it ----------------------
 * x [N, T, C] or [N, H, W, C]. Windows: Pad x with zeros to [N, PH, PW, C], roll by -shift
 * (Slice, Concat), cut into windows [N nW, S, C] (Reshape, Transpose, Reshape); global: x
 * as [N, 1 T, C]. Then qkv = x Wqkv^T + b -> [3, N nW, heads, S, hd] (Reshape, Transpose)
 * -> q, k, v (Gather); softmax(q k^T scale + bias + mask) v (MatMul, Mul, Add, Softmax);
 * heads joined, projected, and the windows undone in reverse. The bias is the table
 * gathered by the relative position index, the mask a Where of region labels that differ. */

/* y = x W^T + b for parameters w and b of n (W^T by a Transpose of the initializer). */
static const char *onnx_affine(const nep_onnx_sink *s, const nep_node *n, const char *x, int w,
                               const char *what) {
    char t[32], mm[32];
    snprintf(t, sizeof t, "%s_wt", what), snprintf(mm, sizeof mm, "%s_matmul", what);
    const char *wt = s->step(s, n, t), *xw = s->step(s, n, mm), *y = s->step(s, n, what);
    s->node(s, "Transpose", wt, (const char *[]){s->param(s, n, w, false)}, 1, wt,
            NEP_ONNX_ATTRS(NEP_ONNX_INTS_ATTR("perm", 2, 1, 0)));
    nep_onnx_node(s, "MatMul", xw, (const char *[]){x, wt}, 2, xw);
    nep_onnx_node(s, "Add", y, (const char *[]){xw, s->param(s, n, w + 1, false)}, 2, y);
    return y;
}

/* torch.roll of x [N, PH, PW, C] by -by[0], -by[1] on axes 1, 2 (back: +by). */
static const char *onnx_roll(const nep_onnx_sink *s, const nep_node *n, const char *x,
                             const nep_attention_geom *a, bool back, const char *what) {
    const int64_t size[2] = {a->PH, a->PW}, by[2] = {a->sh, a->sw};
    for (int ax = 0; ax < 2; ax++) {
        if (!by[ax]) continue;
        const int64_t cut = back ? size[ax] - by[ax] : by[ax];
        char nm[6][40];
        const char *names[5];
        for (int k = 0; k < 6; k++) {
            static const char *const part[6] = {"tail", "head", "cut", "end", "axis", "start"};
            snprintf(nm[k], sizeof nm[k], "%s%d_%s", what, ax, part[k]);
        }
        names[0] = s->step(s, n, nm[0]), names[1] = s->step(s, n, nm[1]);
        const char *cutv = s->ints(s, n, nm[2], 1, &cut, 1), *endv = s->ints(s, n, nm[3], 1, &size[ax], 1),
                   *zero = s->ints(s, n, nm[5], 1, (const int64_t[]){0}, 1),
                   *axis = s->ints(s, n, nm[4], 1, (const int64_t[]){ax + 1}, 1);
        nep_onnx_node(s, "Slice", names[0], (const char *[]){x, cutv, endv, axis}, 4, names[0]);
        nep_onnx_node(s, "Slice", names[1], (const char *[]){x, zero, cutv, axis}, 4, names[1]);
        char r[40];
        snprintf(r, sizeof r, "%s%d", what, ax);
        const char *y = s->step(s, n, r);
        s->node(s, "Concat", y, names, 2, y, NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", ax + 1)));
        x = y;
    }
    return x;
}

static void attention_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                           const char *const *in, const char *out) {
    const nep_attention_geom a = nep_attention_geom_of(g, n);
    const int64_t S = a.N, C = a.C, nh = a.PH / a.wh, nw = a.PW / a.ww;
    const bool grid = nep_in_shape(g, n, 0)->ndim == 3;
    const char *x = in[0];
    if (a.regroups) {
        if (a.PH != a.H || a.PW != a.W) {
            const int64_t pads[8] = {0, 0, 0, 0, 0, a.PH - a.H, a.PW - a.W, 0};
            const char *padded = s->step(s, n, "padded");
            nep_onnx_node(s, "Pad", padded, (const char *[]){x, s->ints(s, n, "pads", 1, pads, 8)}, 2, padded);
            x = padded;
        }
        x = onnx_roll(s, n, x, &a, false, "roll");
        x = nep_onnx_reshape(s, n, x, "grid6", (const int64_t[]){-1, nh, a.wh, nw, a.ww, C}, 6);
        x = nep_onnx_transpose(s, n, x, "windows6", (const int64_t[]){0, 1, 3, 2, 4, 5}, 6);
    }
    x = nep_onnx_reshape(s, n, x, "windows", (const int64_t[]){-1, S, C}, 3);
    const char *qkv = onnx_affine(s, n, x, 0, "qkv");
    qkv = nep_onnx_reshape(s, n, qkv, "qkv5", (const int64_t[]){-1, S, 3, a.heads, a.hd}, 5);
    qkv = nep_onnx_transpose(s, n, qkv, "qkv_heads", (const int64_t[]){2, 0, 3, 1, 4}, 5);
    const char *qkvs[3];
    static const char *const names[3] = {"q", "k", "v"}, *idx[3] = {"index_q", "index_k", "index_v"};
    for (int i = 0; i < 3; i++) {
        qkvs[i] = s->step(s, n, names[i]);
        s->node(s, "Gather", qkvs[i], (const char *[]){qkv, s->ints(s, n, idx[i], 0, (const int64_t[]){i}, 1)}, 2,
                qkvs[i], NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", 0)));
    }
    const char *kt = nep_onnx_transpose(s, n, qkvs[1], "k_t", (const int64_t[]){0, 1, 3, 2}, 4);
    const char *qk = s->step(s, n, "qk"), *scores = s->step(s, n, "scores");
    nep_onnx_node(s, "MatMul", qk, (const char *[]){qkvs[0], kt}, 2, qk);
    nep_onnx_node(s, "Mul", scores, (const char *[]){qk, s->reals(s, n, "scale", 0, &a.scale, 1)}, 2, scores);
    if (a.biased) { /* table[index] -> [S, S, heads] -> [heads, S, S] */
        int64_t *index = malloc(sizeof(int64_t) * (size_t)(S * S));
        for (int64_t p = 0; p < S; p++)
            for (int64_t q = 0; q < S; q++) index[p * S + q] = nep_attention_bias_row(&a, p, q);
        const char *rows = s->step(s, n, "bias_rows");
        s->node(s, "Gather", rows, (const char *[]){s->param(s, n, 4, false), s->ints(s, n, "relative_position_index", 1, index, (int)(S * S))},
                2, rows, NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", 0)));
        free(index);
        const char *bias = nep_onnx_transpose(s, n, nep_onnx_reshape(s, n, rows, "bias3", (const int64_t[]){S, S, a.heads}, 3),
                                          "bias", (const int64_t[]){2, 0, 1}, 3);
        const char *biased = s->step(s, n, "biased");
        nep_onnx_node(s, "Add", biased, (const char *[]){scores, bias}, 2, biased);
        scores = biased;
    }
    if (a.masked) { /* [N, nW, heads, S, S] + the mask [nW, 1, S, S] */
        double *mask = malloc(sizeof(double) * (size_t)(a.nW * S * S));
        for (int64_t w = 0; w < a.nW; w++)
            for (int64_t p = 0; p < S; p++)
                for (int64_t q = 0; q < S; q++) mask[(w * S + p) * S + q] = nep_attention_mask(&a, w, p, q);
        const char *m = nep_onnx_reshape(s, n, s->reals(s, n, "mask_values", 1, mask, (int)(a.nW * S * S)), "mask",
                                     (const int64_t[]){a.nW, 1, S, S}, 4);
        free(mask);
        const char *sc5 = nep_onnx_reshape(s, n, scores, "scores5", (const int64_t[]){-1, a.nW, a.heads, S, S}, 5);
        const char *masked = s->step(s, n, "masked");
        nep_onnx_node(s, "Add", masked, (const char *[]){sc5, m}, 2, masked);
        scores = nep_onnx_reshape(s, n, masked, "scores4", (const int64_t[]){-1, a.heads, S, S}, 4);
    }
    const char *P = s->step(s, n, "softmax"), *o = s->step(s, n, "o");
    s->node(s, "Softmax", P, &scores, 1, P, NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", -1)));
    nep_onnx_node(s, "MatMul", o, (const char *[]){P, qkvs[2]}, 2, o);
    o = nep_onnx_transpose(s, n, o, "o_tokens", (const int64_t[]){0, 2, 1, 3}, 4);
    o = nep_onnx_reshape(s, n, o, "o_joined", (const int64_t[]){-1, S, C}, 3);
    const char *y = onnx_affine(s, n, o, 2, "proj");
    if (a.regroups) {
        y = nep_onnx_reshape(s, n, y, "out6", (const int64_t[]){-1, nh, nw, a.wh, a.ww, C}, 6);
        y = nep_onnx_transpose(s, n, y, "out_grid6", (const int64_t[]){0, 1, 3, 2, 4, 5}, 6);
        y = nep_onnx_reshape(s, n, y, "out_grid", (const int64_t[]){-1, a.PH, a.PW, C}, 4);
        y = onnx_roll(s, n, y, &a, true, "unroll");
        if (a.PH != a.H || a.PW != a.W) {
            const char *cut = s->step(s, n, "unpadded");
            nep_onnx_node(s, "Slice", cut, (const char *[]){y, s->ints(s, n, "unpad_starts", 1, (const int64_t[]){0, 0}, 2),
                                                            s->ints(s, n, "unpad_ends", 1, (const int64_t[]){a.H, a.W}, 2),
                                                            s->ints(s, n, "unpad_axes", 1, (const int64_t[]){1, 2}, 2)}, 4, cut);
            y = cut;
        }
        nep_onnx_node(s, "Identity", n->name, &y, 1, out);
    } else if (grid) {
        const int64_t shape[4] = {-1, a.H, a.W, C};
        nep_onnx_node(s, "Reshape", n->name, (const char *[]){y, s->ints(s, n, "out_shape", 1, shape, 4)}, 2, out);
    } else {
        nep_onnx_node(s, "Identity", n->name, &y, 1, out);
    }
}

static const nep_attr_field attention_attrs[] = {
    NEP_ATTR_FIELD("heads", attention.heads),
    NEP_ATTR_FIELD("window", attention.window),
    NEP_ATTR_FIELD("shift", attention.shift),
};

const nep_op_def nep_op_attention = {
    .name = "Attention", .min_inputs = 1, .max_inputs = 1,
    .infer = attention_infer, .flops = attention_flops, .onnx = attention_onnx,
    NEP_ATTR_FIELDS(attention_attrs),
};
