/* The normalizations over the features of each token, by itself, in training and
 * evaluation alike:
 * LayerNorm, as torch.nn.LayerNorm(C, eps) with its affine parameters:
 *   x [..., C] (a token sequence [T, C], or a vector [C])   w, b [C] ("weight", "bias")
 *   y = (x - mean) / sqrt(var + eps) * w + b, mean and (biased) var over the C features.
 *   ONNX: LayerNormalization over the last axis (opset 17).
 * RMSNorm, as transformers' LlamaRMSNorm (torch.nn.RMSNorm with a weight):
 *   x [..., C]   w [C] ("weight")   y = x / sqrt(mean(x^2) + eps) * w
 *   ONNX: Mul, ReduceMean, Add, Sqrt, Div, Mul (opset 17 has no RMSNormalization). */
#include "ops/onnx_map.h"

static nep_status layernorm_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (in->ndim != 1 && !nep_shape_features_last(in))
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (%s): wants a vector or a token "
                        "sequence [T, C] (features last), got %d dimensions with the features at "
                        "axis %d", n->name, nep_op(n->op)->name, in->ndim, in->axis);
    const int64_t C = nep_shape_features(in);
    const int want = n->op == NEP_OP_LAYERNORM ? 2 : 1;
    for (int i = 0; i < want; i++) {
        const nep_param *p = n->n_params == want ? &g->params[n->params[i]] : NULL;
        if (!p || p->ndim != 1 || p->shape[0] != C)
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (%s): wants %s of %lld features", n->name,
                            nep_op(n->op)->name, want == 2 ? "a weight and a bias" : "a weight", (long long)C);
    }
    if (n->attrs.layernorm.eps < 0)
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (%s): eps %g is negative", n->name,
                        nep_op(n->op)->name, n->attrs.layernorm.eps);
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

/* Per element: square, normalize, scale (the mean of squares as one more pass). */
static int64_t rmsnorm_flops(const nep_graph *g, const nep_node *n) {
    return 4 * nep_shape_numel(&n->shape);
}

/* x / sqrt(ReduceMean(x * x) + eps) * w over the last axis (ReduceMean's axes are an
 * attribute in opset 17). */
static void rmsnorm_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                         const char *const *in, const char *out) {
    const double eps = nep_layernorm_eps(&n->attrs.layernorm);
    const char *sq = s->step(s, n, "square"), *ms = s->step(s, n, "mean_square"), *v = s->step(s, n, "plus_eps"),
               *rms = s->step(s, n, "rms"), *xhat = s->step(s, n, "normalized");
    nep_onnx_node(s, "Mul", sq, (const char *[]){in[0], in[0]}, 2, sq);
    s->node(s, "ReduceMean", ms, &sq, 1, ms,
            NEP_ONNX_ATTRS(NEP_ONNX_INTS_ATTR("axes", 1, -1), NEP_ONNX_INT_ATTR("keepdims", 1)));
    nep_onnx_node(s, "Add", v, (const char *[]){ms, s->reals(s, n, "eps", 0, &eps, 1)}, 2, v);
    nep_onnx_node(s, "Sqrt", rms, &v, 1, rms);
    nep_onnx_node(s, "Div", xhat, (const char *[]){in[0], rms}, 2, xhat);
    nep_onnx_node(s, "Mul", n->name, (const char *[]){xhat, s->param(s, n, 0, false)}, 2, out);
}

const nep_op_def nep_op_rmsnorm = {
    .name = "RMSNorm", .min_inputs = 1, .max_inputs = 1,
    .infer = layernorm_infer, .flops = rmsnorm_flops, .onnx = rmsnorm_onnx,
    NEP_ATTR_FIELDS(layernorm_attrs),
};
