/* Reshape and Transpose steps of a node's ONNX mapping (ops/onnx_map.h), shared by the
 * attention ops. */
#include <stdio.h>

#include "ops/onnx_map.h"

const char *nep_onnx_reshape(const nep_onnx_sink *s, const nep_node *n, const char *x,
                                const char *what, const int64_t *shape, int ndim) {
    char sh[40];
    snprintf(sh, sizeof sh, "%s_shape", what);
    const char *y = s->step(s, n, what);
    nep_onnx_node(s, "Reshape", y, (const char *[]){x, s->ints(s, n, sh, 1, shape, ndim)}, 2, y);
    return y;
}

const char *nep_onnx_transpose(const nep_onnx_sink *s, const nep_node *n, const char *x,
                                  const char *what, const int64_t *perm, int ndim) {
    nep_onnx_attr a = {.name = "perm", .type = NEP_ONNX_INTS, .n = ndim};
    const char *y = s->step(s, n, what);
    for (int i = 0; i < ndim; i++) a.v[i] = perm[i];
    s->node(s, "Transpose", y, &x, 1, y, &a, 1);
    return y;
}
