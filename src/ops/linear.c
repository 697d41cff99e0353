/* Linear: y = x W^T + b over the last axis, as torch.nn.Linear: each position of a
 * token sequence (or any leading axes) by itself.
 *   x [..., in]   W [out, in] ("weight")   b [out] ("bias", optional)   y [..., out]
 * The output's features are its last axis. */
#include "ops/ops.h"

static nep_status linear_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    const int64_t fan_in = nep_linear_fan_in(in);
    if (in->ndim == 3 && in->axis == 0)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Linear): input is an image [C, H, W]; "
                        "add a Flatten", n->name);
    const nep_param *w = &g->params[n->params[0]];
    if (n->n_params < 1 + n->attrs.bias || w->ndim != 2 || w->shape[0] != n->attrs.features ||
        w->shape[1] != fan_in)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Linear): weight shape does not match "
                        "[%lld, %lld]", n->name, (long long)n->attrs.features, (long long)fan_in);
    n->shape = *in;
    n->shape.d[in->ndim - 1] = n->attrs.features;
    n->shape.axis = in->ndim - 1;
    return NEP_OK;
}

static int64_t linear_flops(const nep_graph *g, const nep_node *n) {
    const nep_shape *s = nep_in_shape(g, n, 0);
    const int64_t in = nep_linear_fan_in(s), out = n->attrs.features;
    return nep_linear_rows(s) * (2 * in * out + (n->attrs.bias ? out : 0));
}

const nep_op_def nep_op_linear = {
    .name = "Linear", .min_inputs = 1, .max_inputs = 1, .fuses_rectifier = true,
    .infer = linear_infer, .flops = linear_flops,
    .matmul = true,
};
