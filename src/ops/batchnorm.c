/* BatchNorm2d: placeholder until it lands (issue 4). */
#include "ops/ops.h"

static nep_status bn_infer(nep_graph *g, nep_node *n, nep_err *err) {
    return nep_fail(err, NEP_ERR_UNSUPPORTED, "node '%s': BatchNorm2d is not implemented yet", n->name);
}

const nep_op_def nep_op_batchnorm = {.name = "BatchNorm2d", .min_inputs = 1, .max_inputs = 1,
                                     .infer = bn_infer};
