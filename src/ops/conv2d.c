/* Conv2d: placeholder until the oneDNN implementation lands (issue 4). */
#include "ops/ops.h"

static nep_status conv2d_infer(nep_graph *g, nep_node *n, nep_err *err) {
    return nep_fail(err, NEP_ERR_UNSUPPORTED, "node '%s': Conv2d is not implemented yet", n->name);
}

const nep_op_def nep_op_conv2d = {.name = "Conv2d", .min_inputs = 1, .max_inputs = 1,
                                  .infer = conv2d_infer};
