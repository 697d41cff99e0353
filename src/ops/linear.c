/* Linear: y = x W^T + b, as torch.nn.Linear.
 *   x [B, in]   W [out, in] ("weight")   b [out] ("bias", optional)   y [B, out]
 * backward: dx += dy W   dW = dy^T x   db = sum_B dy   (+= with accumulate_grads) */
#include "ops/ops.h"

static nep_status linear_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (in->ndim != 1)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Linear): input has %d dims, wants 1 "
                        "(add a Flatten)", n->name, in->ndim);
    const nep_param *w = &g->params[n->params[0]];
    if (n->n_params < 1 + n->attrs.bias || w->ndim != 2 || w->shape[0] != n->attrs.features ||
        w->shape[1] != in->d[0])
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Linear): weight shape does not match "
                        "[%lld, %lld]", n->name, (long long)n->attrs.features, (long long)in->d[0]);
    n->shape = (nep_shape){1, {n->attrs.features}};
    return NEP_OK;
}

static int64_t linear_flops(const nep_graph *g, const nep_node *n) {
    int64_t in = nep_in_shape(g, n, 0)->d[0], out = n->attrs.features;
    return 2 * in * out + (n->attrs.bias ? out : 0);
}

const nep_op_def nep_op_linear = {
    .name = "Linear", .min_inputs = 1, .max_inputs = 1,
    .infer = linear_infer, .flops = linear_flops,
};
