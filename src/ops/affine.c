/* Affine: a fixed per-channel map y = w_c x + b_c, what collapse leaves where a rectifier
 * was linearized or a BatchNorm could not be folded into a neighbour.
 *   x [C, ...]   w [C] ("weight")   b [C] ("bias")   y [C, ...] */
#include "ops/ops.h"

static nep_status affine_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    bool ok = n->n_params == 2;
    for (int i = 0; ok && i < 2; i++) {
        const nep_param *p = &g->params[n->params[i]];
        ok = p->ndim == 1 && p->shape[0] == nep_shape_features(in);
    }
    if (!ok)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Affine): weight and bias must have one "
                        "value per channel (%lld)", n->name, (long long)nep_shape_features(in));
    n->shape = *in;
    return NEP_OK;
}

static int64_t affine_flops(const nep_graph *g, const nep_node *n) {
    return 2 * nep_shape_numel(&n->shape);
}

static double affine_value(const nep_graph *g, const nep_node *n, int64_t c, double x) {
    return nep_param_at(g, n, 0, c) * x + nep_param_at(g, n, 1, c);
}

const nep_op_def nep_op_affine = {
    .name = "Affine", .min_inputs = 1, .max_inputs = 1, .fuses_rectifier = true,
    .infer = affine_infer, .flops = affine_flops, .value = affine_value,
};
