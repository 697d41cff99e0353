/* Pooling: placeholders until they land (issue 4). */
#include "ops/ops.h"

static nep_status pool_infer(nep_graph *g, nep_node *n, nep_err *err) {
    return nep_fail(err, NEP_ERR_UNSUPPORTED, "node '%s': pooling is not implemented yet", n->name);
}

const nep_op_def nep_op_maxpool = {.name = "MaxPool2d", .min_inputs = 1, .max_inputs = 1, .infer = pool_infer};
const nep_op_def nep_op_avgpool = {.name = "AvgPool2d", .min_inputs = 1, .max_inputs = 1, .infer = pool_infer};
const nep_op_def nep_op_global_avgpool = {.name = "AdaptiveAvgPool2d", .min_inputs = 1, .max_inputs = 1,
                                          .infer = pool_infer};
