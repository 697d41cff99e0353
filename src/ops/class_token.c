/* ClassToken: a learned token put in front of each sample's sequence, as torchvision's
 * VisionTransformer does before its encoder (torch.cat([class_token.expand(n, -1, -1),
 * x], dim=1)).
 *   x [T, C]   class_token [1, 1, C]   y [T+1, C]: y[0] = class_token, y[1 + t] = x[t]
 *   dx[t] = dy[1 + t];  d class_token = the sum over the batch of dy[0]
 * The parameter is named as its node (an empty suffix), since torchvision holds it at the
 * top level: the node is called "class_token". Copies only: no FLOPs.
 * ONNX: the initializer Expanded to [N, 1, C] (N, the dynamic batch, from the input's
 * Shape), then Concat with x on the token axis. */
#include "ops/onnx_map.h"

static nep_status class_token_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (in->ndim != 2 || in->axis != 1)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (ClassToken): wants a token sequence [T, C] "
                        "(features last), got %d dimensions with the features at axis %d",
                        n->name, in->ndim, in->axis);
    const int64_t T = in->d[0], C = in->d[1];
    const nep_param *p = n->n_params == 1 ? &g->params[n->params[0]] : NULL;
    if (!p || p->ndim != 3 || p->shape[0] != 1 || p->shape[1] != 1 || p->shape[2] != C)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (ClassToken): wants one parameter [1, 1, %lld] "
                        "(the class token)", n->name, (long long)C);
    n->shape = (nep_shape){2, {T + 1, C}, 1};
    return NEP_OK;
}

static void class_token_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                             const char *const *in, const char *out) {
    const int64_t tail[2] = {1, nep_shape_features(&n->shape)};
    const char *batch = s->step(s, n, "batch"), *shape = s->step(s, n, "shape"),
               *token = s->step(s, n, "expanded");
    s->node(s, "Shape", batch, in, 1, batch,
            NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("start", 0), NEP_ONNX_INT_ATTR("end", 1)));
    s->node(s, "Concat", shape, (const char *[]){batch, s->ints(s, n, "token_shape", 1, tail, 2)}, 2,
            shape, NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", 0)));
    nep_onnx_node(s, "Expand", token, (const char *[]){s->param(s, n, 0, false), shape}, 2, token);
    s->node(s, "Concat", n->name, (const char *[]){token, in[0]}, 2, out,
            NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", 1)));
}

const nep_op_def nep_op_class_token = {
    .name = "ClassToken", .min_inputs = 1, .max_inputs = 1,
    .infer = class_token_infer, .onnx = class_token_onnx,
};
