/* Linear: y = x W^T + b over the last axis, as torch.nn.Linear: each position of a
 * token sequence (or any leading axes) by itself.
 *   x [..., in]   W [out, in] ("weight")   b [out] ("bias", optional)   y [..., out]
 * The output's features are its last axis. attrs.linear: features (out), bias. */
#include "ops/ops.h"

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

static const nep_attr_field linear_attrs[] = {
    NEP_ATTR_FIELD("features", linear.features),
    NEP_ATTR_FIELD("bias", linear.bias),
};

const nep_op_def nep_op_linear = {
    .name = "Linear", .min_inputs = 1, .max_inputs = 1,
    .infer = linear_infer, .flops = linear_flops,
    NEP_ATTR_FIELDS(linear_attrs),
};
