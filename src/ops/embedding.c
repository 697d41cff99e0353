/* Embedding, as torch.nn.Embedding: each int32 token id selects a row of the table.
 *   ids [...] (token ids, in [0, num))   W [num, C] ("weight")   y [..., C]
 * Its sizes are the weight's (num_embeddings, embedding_dim), so it has no attributes.
 * The output is a token sequence: its features are the new last axis. */
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
    n->shape = (nep_shape){.ndim = in->ndim + 1, .axis = in->ndim};
    for (int d = 0; d < in->ndim; d++) n->shape.d[d] = in->d[d];
    n->shape.d[in->ndim] = w->shape[1];
    return NEP_OK;
}

/* ONNX's Gather: rows of the weight at the ids. */
static void embedding_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                           const char *const *in, const char *out) {
    s->node(s, "Gather", n->name, (const char *[]){s->param(s, n, 0, false), in[0]}, 2, out,
            NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", 0)));
}

const nep_op_def nep_op_embedding = {
    .name = "Embedding", .min_inputs = 1, .max_inputs = 1, .takes_ids = true,
    .infer = embedding_infer, .onnx = embedding_onnx, /* a lookup: no FLOPs */
};
