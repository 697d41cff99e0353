/* TakeToken: token 0 of each sample's sequence, what torchvision's ViT hands its head
 * (the class token, x[:, 0]).
 *   x [T, C] -> y [C] (a vector);  dx[0] = dy, dx[t > 0] = 0
 * A copy: no FLOPs. ONNX: Gather of index 0 on the token axis. */
#include "ops/onnx_map.h"

static nep_status take_token_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (in->ndim != 2 || in->axis != 1)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (TakeToken): wants a token sequence [T, C] "
                        "(features last), got %d dimensions with the features at axis %d",
                        n->name, in->ndim, in->axis);
    n->shape = (nep_shape){1, {in->d[1]}};
    return NEP_OK;
}

static void take_token_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                            const char *const *in, const char *out) {
    /* a scalar index drops the token axis: [N, T, C] -> [N, C] */
    const char *index = s->ints(s, n, "index", 0, (const int64_t[]){0}, 1);
    s->node(s, "Gather", n->name, (const char *[]){in[0], index}, 2, out,
            NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", 1)));
}

const nep_op_def nep_op_take_token = {
    .name = "TakeToken", .min_inputs = 1, .max_inputs = 1,
    .infer = take_token_infer, .onnx = take_token_onnx,
};
