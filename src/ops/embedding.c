/* Embedding, as torch.nn.Embedding: each int32 token id selects a row of the table.
 *   ids [...] (token ids, in [0, num))   W [num, C] ("weight")   y [..., C]
 * Its sizes are the weight's (num_embeddings, embedding_dim). Attributes
 * (nep_embedding_attrs): padded with padding_idx (nn.Embedding's padding_idx: that row
 * gets no gradient), and positions, which makes it a position embedding read by a
 * sequence of ids [T]: BERT's rows 0..T-1, or with padded RoBERTa's numbering
 * (nep_embedding_row). The output is a token sequence: its features are the new last
 * axis. */
#include "ops/onnx_map.h"

static nep_status embedding_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (in->dtype != NEP_TOKEN_IDS)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Embedding): its input '%s' holds reals, "
                        "not token ids", n->name, g->nodes[n->inputs[0]].name);
    if (in->ndim >= NEP_MAX_DIMS)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Embedding): ids of %d dimensions leave no "
                        "room for the features", n->name, in->ndim);
    const nep_param *w = n->n_params == 1 ? &g->params[n->params[0]] : NULL;
    if (!w || w->ndim != 2 || w->shape[0] < 1 || w->shape[1] < 1)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Embedding): wants one weight [num, C]", n->name);
    const nep_embedding_attrs *a = &n->attrs.embedding;
    const int64_t rows = w->shape[0];
    if (a->padded && (a->padding_idx < 0 || a->padding_idx >= rows))
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (Embedding): padding_idx %lld is not a row of "
                        "its %lld", n->name, (long long)a->padding_idx, (long long)rows);
    if (a->positions) {
        if (in->ndim != 1)
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Embedding of positions): wants one "
                            "sequence of ids [T], not %d dimensions", n->name, in->ndim);
        /* the last token's row: T - 1, or RoBERTa's padding_idx + T */
        const int64_t last = a->padded ? a->padding_idx + in->d[0] : in->d[0] - 1;
        if (last >= rows)
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Embedding of positions): %lld tokens "
                            "need row %lld, past its %lld (max_position_embeddings)", n->name,
                            (long long)in->d[0], (long long)last, (long long)rows);
    }
    n->shape = (nep_shape){.ndim = in->ndim + 1, .axis = in->ndim};
    for (int d = 0; d < in->ndim; d++) n->shape.d[d] = in->d[d];
    n->shape.d[in->ndim] = w->shape[1];
    return NEP_OK;
}

/* The row indices [N, T] (int64) of a position embedding, from the ids [N, T] (int32), by
 * a cumulative count along the sequence, which keeps T free: BERT's
 * CumSum(0 * ids + 1, axis 1) - 1, and RoBERTa's as Hugging Face computes them,
 * m = (ids != pad), CumSum(m, axis 1) * m + pad. */
static const char *position_rows_onnx(const nep_onnx_sink *s, const nep_node *n, const char *ids) {
    const nep_embedding_attrs *a = &n->attrs.embedding;
    const char *ids64 = s->step(s, n, "ids64"), *m = s->step(s, n, "counted"),
               *cs = s->step(s, n, "cumsum"), *rows = s->step(s, n, "rows");
    const char *axis = s->ints(s, n, "axis", 0, (const int64_t[]){1}, 1);
    s->node(s, "Cast", ids64, &ids, 1, ids64, NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("to", 7 /* INT64 */)));
    if (!a->padded) {
        const char *zeros = s->step(s, n, "zeros"), *one = s->ints(s, n, "one", 0, (const int64_t[]){1}, 1);
        nep_onnx_node(s, "Mul", zeros, (const char *[]){ids64, s->ints(s, n, "zero", 0, (const int64_t[]){0}, 1)}, 2, zeros);
        nep_onnx_node(s, "Add", m, (const char *[]){zeros, one}, 2, m);
        nep_onnx_node(s, "CumSum", cs, (const char *[]){m, axis}, 2, cs);
        nep_onnx_node(s, "Sub", rows, (const char *[]){cs, one}, 2, rows);
        return rows;
    }
    const char *pad = s->ints(s, n, "padding_idx", 0, (const int64_t[]){a->padding_idx}, 1);
    const char *is_pad = s->step(s, n, "is_pad"), *real = s->step(s, n, "not_pad"),
               *inc = s->step(s, n, "incremental");
    nep_onnx_node(s, "Equal", is_pad, (const char *[]){ids64, pad}, 2, is_pad);
    nep_onnx_node(s, "Not", real, &is_pad, 1, real);
    s->node(s, "Cast", m, &real, 1, m, NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("to", 7 /* INT64 */)));
    nep_onnx_node(s, "CumSum", cs, (const char *[]){m, axis}, 2, cs);
    nep_onnx_node(s, "Mul", inc, (const char *[]){cs, m}, 2, inc);
    nep_onnx_node(s, "Add", rows, (const char *[]){inc, pad}, 2, rows);
    return rows;
}

/* ONNX's Gather: rows of the weight at the ids (or at the positions). */
static void embedding_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                           const char *const *in, const char *out) {
    const char *rows = n->attrs.embedding.positions ? position_rows_onnx(s, n, in[0]) : in[0];
    s->node(s, "Gather", n->name, (const char *[]){s->param(s, n, 0, false), rows}, 2, out,
            NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", 0)));
}

static const nep_attr_field embedding_attrs[] = {NEP_ATTR_FIELD("positions", embedding.positions),
                                                 NEP_ATTR_FIELD("padded", embedding.padded),
                                                 NEP_ATTR_FIELD("padding_idx", embedding.padding_idx)};

const nep_op_def nep_op_embedding = {
    .name = "Embedding", .min_inputs = 1, .max_inputs = 1, .takes_ids = true,
    .infer = embedding_infer, .onnx = embedding_onnx, /* a lookup: no FLOPs */
    NEP_ATTR_FIELDS(embedding_attrs),
};
