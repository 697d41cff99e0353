/* PositionalEmbedding: a learned embedding added to each sample's tokens, as torchvision's
 * ViT encoder does (input + self.pos_embedding).
 *   x [T, C]   pos_embedding [1, T, C]   y = x + pos_embedding
 *   dx = dy (passes_gradient: the executor may hand x the output's gradient buffer);
 *   d pos_embedding = the sum over the batch of dy
 * The parameter is named as its node (an empty suffix): torchvision's
 * "encoder.pos_embedding" is the node "encoder.pos_embedding".
 * ONNX: Add (the [1, T, C] initializer broadcasts over N). */
#include "ops/onnx_map.h"

static nep_status pos_embedding_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (in->ndim != 2 || in->axis != 1)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (PositionalEmbedding): wants a token sequence "
                        "[T, C] (features last), got %d dimensions with the features at axis %d",
                        n->name, in->ndim, in->axis);
    const int64_t T = in->d[0], C = in->d[1];
    const nep_param *p = n->n_params == 1 ? &g->params[n->params[0]] : NULL;
    if (!p || p->ndim != 3 || p->shape[0] != 1 || p->shape[1] != T || p->shape[2] != C)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (PositionalEmbedding): wants one parameter "
                        "[1, %lld, %lld] for its input of %lld tokens of %lld features", n->name,
                        (long long)T, (long long)C, (long long)T, (long long)C);
    n->shape = *in;
    return NEP_OK;
}

static void pos_embedding_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                               const char *const *in, const char *out) {
    nep_onnx_node(s, "Add", n->name, (const char *[]){in[0], s->param(s, n, 0, false)}, 2, out);
}

const nep_op_def nep_op_pos_embedding = {
    .name = "PositionalEmbedding", .min_inputs = 1, .max_inputs = 1, .passes_gradient = true,
    .infer = pos_embedding_infer, .flops = nep_flops_elementwise, .onnx = pos_embedding_onnx,
};
