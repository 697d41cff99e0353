/* StochasticDepth, as torchvision.ops.stochastic_depth(x, p, "row", training) (Swin puts
 * it on each residual branch): in training each sample's whole tensor is kept with
 * probability 1 - p and scaled by 1 / (1 - p), or zeroed (always, when p = 1); in
 * evaluation the identity, which is its value (as Dropout's), so that the rewrites
 * remove it as they remove Dropout.
 *   x [...] -> y [...], same shape;  attrs.drop_path.p in [0, 1]
 * ONNX: Identity (what it is at evaluation). */
#include "ops/onnx_map.h"

static nep_status drop_path_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const double p = n->attrs.drop_path.p;
    if (!(p >= 0 && p <= 1))
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (StochasticDepth): p = %g is not in [0, 1]",
                        n->name, p);
    return nep_infer_same(g, n, err);
}

static const nep_attr_field drop_path_attrs[] = {NEP_ATTR_FIELD("p", drop_path.p)};

const nep_op_def nep_op_drop_path = {
    .name = "StochasticDepth", .min_inputs = 1, .max_inputs = 1,
    .infer = drop_path_infer, .flops = nep_flops_elementwise, .value = nep_value_identity,
    .onnx = nep_onnx_identity, NEP_ATTR_FIELDS(drop_path_attrs),
};
