/* Linear: y = x W^T + b over the last axis, as torch.nn.Linear: each position of a
 * token sequence (or any leading axes) by itself.
 *   x [..., in]   W [out, in] ("weight")   b [out] ("bias", optional)   y [..., out]
 * The output's features are its last axis. attrs.linear: features (out), bias.
 * ONNX: Gemm(x, weight, bias?), transB = 1; on tokens [N, T, in]
 * MatMul(x, Transpose(weight)) (+ Add(bias)). */
#include "ops/onnx_map.h"

static nep_status linear_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    const int64_t fan_in = nep_linear_fan_in(in);
    if (in->ndim == 3 && in->axis == 0)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Linear): input is an image [C, H, W]; "
                        "add a Flatten", n->name);
    const nep_linear_attrs *a = &n->attrs.linear;
    const nep_param *w = &g->params[n->params[0]];
    if (n->n_params < 1 + a->bias || w->ndim != 2 || w->shape[0] != a->features ||
        w->shape[1] != fan_in)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Linear): weight shape does not match "
                        "[%lld, %lld]", n->name, (long long)a->features, (long long)fan_in);
    n->shape = *in;
    n->shape.d[in->ndim - 1] = a->features;
    n->shape.axis = in->ndim - 1;
    return NEP_OK;
}

static int64_t linear_flops(const nep_graph *g, const nep_node *n) {
    const nep_shape *s = nep_in_shape(g, n, 0);
    const int64_t in = nep_linear_fan_in(s), out = n->attrs.linear.features;
    return nep_linear_rows(s) * (2 * in * out + (n->attrs.linear.bias ? out : 0));
}

static void linear_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                        const char *const *in, const char *out) {
    const bool bias = n->attrs.linear.bias;
    if (nep_in_shape(g, n, 0)->ndim == 1) { /* [N, in]: one Gemm */
        const char *ins[3] = {in[0], s->param(s, n, 0, false), bias ? s->param(s, n, 1, false) : NULL};
        s->node(s, "Gemm", n->name, ins, bias ? 3 : 2, out,
                NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("transB", 1)));
        return;
    }
    /* [N, ..., in] (tokens): MatMul with the transposed weight, then the bias */
    const char *wt = s->step(s, n, "weight_t"), *mm = bias ? s->step(s, n, "matmul") : out;
    s->node(s, "Transpose", wt, (const char *[]){s->param(s, n, 0, false)}, 1, wt,
            NEP_ONNX_ATTRS(NEP_ONNX_INTS_ATTR("perm", 2, 1, 0)));
    nep_onnx_node(s, "MatMul", bias ? mm : n->name, (const char *[]){in[0], wt}, 2, mm);
    if (bias) nep_onnx_node(s, "Add", n->name, (const char *[]){mm, s->param(s, n, 1, false)}, 2, out);
}

static const nep_attr_field linear_attrs[] = {
    NEP_ATTR_FIELD("features", linear.features),
    NEP_ATTR_FIELD("bias", linear.bias),
};

const nep_op_def nep_op_linear = {
    .name = "Linear", .min_inputs = 1, .max_inputs = 1, .fuses_rectifier = true, .matmul = true,
    .infer = linear_infer, .flops = linear_flops, .onnx = linear_onnx,
    NEP_ATTR_FIELDS(linear_attrs),
};
