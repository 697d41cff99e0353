/* Dropout, as torch.nn.Dropout(p), p (attrs.dropout.p) in [0, 1): x [...] -> y [...],
 * same shape. ONNX: Identity (what it is at evaluation). */
#include "ops/onnx_map.h"

static nep_status dropout_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const double p = n->attrs.dropout.p;
    if (!(p >= 0 && p < 1))
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (Dropout): p = %g is not in [0, 1)",
                        n->name, p);
    return nep_infer_same(g, n, err);
}

static const nep_attr_field dropout_attrs[] = {NEP_ATTR_FIELD("p", dropout.p)};

const nep_op_def nep_op_dropout = {
    .name = "Dropout", .min_inputs = 1, .max_inputs = 1,
    .infer = dropout_infer, .flops = nep_flops_elementwise, .value = nep_value_identity,
    .onnx = nep_onnx_identity, NEP_ATTR_FIELDS(dropout_attrs),
};
