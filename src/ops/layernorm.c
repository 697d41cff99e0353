/* LayerNorm over the features, as torch.nn.LayerNorm(C, eps) with its affine parameters:
 *   x [..., C] (a token sequence [T, C], or a vector [C])   w, b [C] ("weight", "bias")
 *   y = (x - mean) / sqrt(var + eps) * w + b, mean and (biased) var over the C features
 * of each token. Each token by itself, in training and evaluation alike. ONNX:
 * LayerNormalization over the last axis (opset 17). */
#include "ops/onnx_map.h"

static nep_status layernorm_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (in->ndim != 1 && !nep_shape_features_last(in))
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (LayerNorm): wants a vector or a token "
                        "sequence [T, C] (features last), got %d dimensions with the features at "
                        "axis %d", n->name, in->ndim, in->axis);
    const int64_t C = nep_shape_features(in);
    for (int i = 0; i < 2; i++) {
        const nep_param *p = n->n_params == 2 ? &g->params[n->params[i]] : NULL;
        if (!p || p->ndim != 1 || p->shape[0] != C)
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (LayerNorm): wants a weight and a bias "
                            "of %lld features each", n->name, (long long)C);
    }
    if (n->attrs.layernorm.eps < 0)
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (LayerNorm): eps %g is negative", n->name,
                        n->attrs.layernorm.eps);
    n->shape = *in;
    return NEP_OK;
}

/* Per element: subtract the mean, square, normalize, scale, shift (as fvcore counts it). */
static int64_t layernorm_flops(const nep_graph *g, const nep_node *n) {
    return 5 * nep_shape_numel(&n->shape);
}

static void layernorm_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                           const char *const *in, const char *out) {
    const char *ins[3] = {in[0], s->param(s, n, 0, false), s->param(s, n, 1, false)};
    s->node(s, "LayerNormalization", n->name, ins, 3, out,
            NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", -1),
                           NEP_ONNX_FLOAT_ATTR("epsilon", nep_layernorm_eps(&n->attrs.layernorm))));
}

static const nep_attr_field layernorm_attrs[] = {NEP_ATTR_FIELD("eps", layernorm.eps)};

const nep_op_def nep_op_layernorm = {
    .name = "LayerNorm", .min_inputs = 1, .max_inputs = 1,
    .infer = layernorm_infer, .flops = layernorm_flops, .onnx = layernorm_onnx,
    NEP_ATTR_FIELDS(layernorm_attrs),
};
