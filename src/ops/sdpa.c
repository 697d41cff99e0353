/* ScaledDotProductAttention: the attention of a text model, between projections that are
 * nodes of their own (Hugging Face's BERT, RoBERTa and Llama name q, k, v and the output
 * separately: attention.self.query/key/value, self_attn.q_proj/k_proj/v_proj), so that a
 * rotary embedding can sit between a projection and this node.
 *   inputs  q [T, heads hd], k [T, kv_heads hd], v [T, kv_heads hd], and optionally the
 *           key mask m [T] (1: a token, 0: padding; Hugging Face's attention_mask);
 *   for each head h (key/value head g = h / (heads / kv_heads)):
 *     S = q_h k_g^T / sqrt(hd),  P = softmax over the keys j kept (m_j != 0 and, when
 *     causal, j <= i), exactly 0 on the others;  o_h = P v_g
 *   output  o [T, heads hd], the heads side by side (as transformers' reshape joins them).
 * A query none of whose keys is kept (a padded row of a left-padded causal batch) weighs
 * every key alike, which is what the additive finfo.min mask gives in Hugging Face's
 * float32 attention. Masked keys weigh exactly 0: a padded position changes nothing in
 * the other positions' outputs. In training with attrs.sdpa.dropout p > 0, each weight
 * of P is dropped with probability p and the others scaled by 1 / (1 - p) before o = P v
 * (Hugging Face's dropout of attention_probs); in evaluation, and in ONNX, there is none.
 * No parameters; nothing here is ever pruned. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops/onnx_map.h"
#include "ops/sdpa.h"

static nep_status sdpa_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_sdpa_attrs *at = &n->attrs.sdpa;
    const nep_shape *q = nep_in_shape(g, n, 0);
    const int kv_heads = at->kv_heads > 0 ? at->kv_heads : at->heads;
    for (int i = 0; i < 3; i++) {
        const nep_shape *s = nep_in_shape(g, n, i);
        if (s->ndim != 2 || s->axis != 1 || s->d[0] != q->d[0])
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (ScaledDotProductAttention): input %d "
                            "('%s') must be a token sequence [T, C] (features last) of %lld tokens",
                            n->name, i, g->nodes[n->inputs[i]].name, (long long)q->d[0]);
    }
    if (!(at->dropout >= 0 && at->dropout < 1))
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (ScaledDotProductAttention): dropout = %g is "
                        "not in [0, 1)", n->name, at->dropout);
    if (at->heads < 1 || q->d[1] % at->heads || kv_heads < 1 || at->heads % kv_heads)
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (ScaledDotProductAttention): %d heads must "
                        "divide the %lld query features and be a multiple of %d key/value heads",
                        n->name, at->heads, (long long)q->d[1], kv_heads);
    const int64_t kv = q->d[1] / at->heads * kv_heads;
    for (int i = 1; i < 3; i++)
        if (nep_in_shape(g, n, i)->d[1] != kv)
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (ScaledDotProductAttention): %s has "
                            "%lld features, want %lld (%d heads of %lld)", n->name, i == 1 ? "k" : "v",
                            (long long)nep_in_shape(g, n, i)->d[1], (long long)kv, kv_heads,
                            (long long)(q->d[1] / at->heads));
    if (n->n_inputs == 4) {
        const nep_shape *m = nep_in_shape(g, n, 3);
        if (m->ndim != 1 || m->d[0] != q->d[0] || m->dtype != NEP_REAL)
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (ScaledDotProductAttention): the mask "
                            "'%s' must be reals [%lld]", n->name, g->nodes[n->inputs[3]].name,
                            (long long)q->d[0]);
    }
    n->shape = *q;
    return NEP_OK;
}

/* q k^T and P v: 2 T T hd FLOPs each per head (masked entries counted: they are computed). */
static int64_t sdpa_flops(const nep_graph *g, const nep_node *n) {
    const nep_shape *q = nep_in_shape(g, n, 0);
    return 4 * q->d[0] * q->d[0] * q->d[1];
}

/* ---- ONNX (opset 17) -----------------------------------------------------------------
 * q, k, v [N, T, C] -> [N, heads, T, hd] (Reshape, Transpose; grouped key/value heads
 * repeated by Expand); S = q k^T scale (MatMul, Mul); the mask as a bias, 0 where kept and
 * -3.4e38 (float32's lowest, as transformers adds) where not: (1 - m) [N, 1, 1, T] and,
 * causal, a constant [T, T]; Softmax; P v; heads joined [N, T, C]. The reshapes copy N
 * (0) and infer T (-1), so that without the causal constant any T runs. */
/* x [N, T, h hd] as heads [N, heads, T, hd] (h = heads / rep, each repeated rep times). */
static const char *onnx_heads(const nep_onnx_sink *s, const nep_node *n, const char *x, const char *what,
                              int64_t h, int64_t hd, int64_t rep) {
    char nm[3][24];
    snprintf(nm[0], sizeof nm[0], "%s4", what), snprintf(nm[1], sizeof nm[1], "%s_heads", what);
    snprintf(nm[2], sizeof nm[2], "%s_rep", what);
    x = nep_onnx_transpose(s, n, nep_onnx_reshape(s, n, x, nm[0], (const int64_t[]){0, -1, h, hd}, 4), nm[1], (const int64_t[]){0, 2, 1, 3}, 4);
    if (rep == 1) return x;
    /* [N, h, T, hd] -> [N, h, 1, T, hd] -> Expand [N, h, rep, T, hd] -> [N, h rep, T, hd] */
    char e[2][24];
    snprintf(e[0], sizeof e[0], "%s5", what), snprintf(e[1], sizeof e[1], "%s_expanded", what);
    const char *x5 = nep_onnx_reshape(s, n, x, e[0], (const int64_t[]){0, h, 1, -1, hd}, 5);
    const char *ex = s->step(s, n, e[1]);
    char sh[32];
    snprintf(sh, sizeof sh, "%s_expand_shape", what);
    nep_onnx_node(s, "Expand", ex, (const char *[]){x5, s->ints(s, n, sh, 1, (const int64_t[]){1, 1, rep, 1, 1}, 5)},
                  2, ex);
    return nep_onnx_reshape(s, n, ex, nm[2], (const int64_t[]){0, h * rep, -1, hd}, 4);
}

static void sdpa_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n, const char *const *in,
                      const char *out) {
    const nep_sdpa_attrs *at = &n->attrs.sdpa;
    const int64_t T = nep_in_shape(g, n, 0)->d[0], C = nep_in_shape(g, n, 0)->d[1], hd = C / at->heads;
    const int64_t kvh = at->kv_heads > 0 ? at->kv_heads : at->heads;
    const double scale = 1 / sqrt((double)hd), lowest = -3.4028234663852886e38;
    const char *q = onnx_heads(s, n, in[0], "q", at->heads, hd, 1);
    const char *k = onnx_heads(s, n, in[1], "k", kvh, hd, at->heads / kvh);
    const char *v = onnx_heads(s, n, in[2], "v", kvh, hd, at->heads / kvh);
    const char *kt = nep_onnx_transpose(s, n, k, "k_t", (const int64_t[]){0, 1, 3, 2}, 4);
    const char *qk = s->step(s, n, "qk"), *scores = s->step(s, n, "scores");
    nep_onnx_node(s, "MatMul", qk, (const char *[]){q, kt}, 2, qk);
    nep_onnx_node(s, "Mul", scores, (const char *[]){qk, s->reals(s, n, "scale", 0, &scale, 1)}, 2, scores);
    /* the bias: (1 - m) lowest as [N, 1, 1, T], plus, causal, lowest above the diagonal
     * [T, T], held at lowest where both add (every masked key alike, as transformers'
     * one mask of finfo.min has it) */
    const char *bias = NULL, *low = n->n_inputs == 4 ? s->reals(s, n, "lowest", 0, &lowest, 1) : NULL;
    if (n->n_inputs == 4) {
        const char *pad = s->step(s, n, "padding"), *pb = s->step(s, n, "padding_bias");
        nep_onnx_node(s, "Sub", pad, (const char *[]){s->constant(s, "one", 1.0), in[3]}, 2, pad);
        nep_onnx_node(s, "Mul", pb, (const char *[]){pad, low}, 2, pb);
        bias = nep_onnx_reshape(s, n, pb, "padding4", (const int64_t[]){0, 1, 1, -1}, 4);
    }
    if (at->causal) {
        double *tri = malloc(sizeof(double) * (size_t)(T * T));
        for (int64_t i = 0; i < T; i++)
            for (int64_t j = 0; j < T; j++) tri[i * T + j] = j > i ? lowest : 0;
        const char *c = nep_onnx_reshape(s, n, s->reals(s, n, "causal", 1, tri, (int)(T * T)), "causal2",
                                 (const int64_t[]){T, T}, 2);
        free(tri);
        if (bias) {
            const char *sum = s->step(s, n, "both"), *held = s->step(s, n, "both_held");
            nep_onnx_node(s, "Add", sum, (const char *[]){bias, c}, 2, sum);
            nep_onnx_node(s, "Max", held, (const char *[]){sum, low}, 2, held);
            c = held;
        }
        bias = c;
    }
    if (bias) {
        const char *masked = s->step(s, n, "masked");
        nep_onnx_node(s, "Add", masked, (const char *[]){scores, bias}, 2, masked);
        scores = masked;
    }
    const char *P = s->step(s, n, "softmax"), *o = s->step(s, n, "o");
    s->node(s, "Softmax", P, &scores, 1, P, NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", -1)));
    nep_onnx_node(s, "MatMul", o, (const char *[]){P, v}, 2, o);
    o = nep_onnx_transpose(s, n, o, "o_tokens", (const int64_t[]){0, 2, 1, 3}, 4);
    nep_onnx_node(s, "Reshape", n->name, (const char *[]){o, s->ints(s, n, "out_shape", 1, (const int64_t[]){0, -1, C}, 3)},
                  2, out);
}

static const nep_attr_field sdpa_attrs[] = {
    NEP_ATTR_FIELD("heads", sdpa.heads),
    NEP_ATTR_FIELD("kv_heads", sdpa.kv_heads),
    NEP_ATTR_FIELD("causal", sdpa.causal),
    NEP_ATTR_FIELD("p", sdpa.dropout), /* the key Dropout's p has in graph JSON */
};

const nep_op_def nep_op_sdpa = {
    .name = "ScaledDotProductAttention", .min_inputs = 3, .max_inputs = 4,
    .infer = sdpa_infer, .flops = sdpa_flops, .onnx = sdpa_onnx,
    NEP_ATTR_FIELDS(sdpa_attrs),
};
