/* TokenMean: each feature's mean over the tokens, what torchvision's Swin hands its head
 * (norm, Permute([0, 3, 1, 2]), AdaptiveAvgPool2d(1), flatten) and a ViT without class
 * token (x.mean(1)).
 *   x [T, C] or a grid [H, W, C] (features last) -> y [C];  dx = dy / P, P = T or H*W
 * ONNX: ReduceMean over the token axes (1 of [N, T, C], 1 and 2 of [N, H, W, C]),
 * keepdims 0. */
#include "ops/onnx_map.h"

static nep_status token_mean_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (!nep_shape_features_last(in))
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (TokenMean): wants tokens [T, C] or a grid "
                        "[H, W, C] (features last), got %d dimensions with the features at axis %d",
                        n->name, in->ndim, in->axis);
    n->shape = (nep_shape){1, {nep_shape_features(in)}};
    return NEP_OK;
}

/* One addition per input element (as GlobalAvgPool counts it). */
static int64_t token_mean_flops(const nep_graph *g, const nep_node *n) {
    return nep_shape_numel(nep_in_shape(g, n, 0));
}

static void token_mean_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                            const char *const *in, const char *out) {
    /* [N, positions..., C]: every axis but the batch and the features; opset 17 takes
     * them as an attribute (an input from opset 18) */
    nep_onnx_attr attrs[2] = {{.name = "axes", .type = NEP_ONNX_INTS}, NEP_ONNX_INT_ATTR("keepdims", 0)};
    for (int d = 1; d < nep_in_shape(g, n, 0)->ndim; d++) attrs[0].v[attrs[0].n++] = d;
    s->node(s, "ReduceMean", n->name, in, 1, out, attrs, 2);
}

const nep_op_def nep_op_token_mean = {
    .name = "TokenMean", .min_inputs = 1, .max_inputs = 1,
    .infer = token_mean_infer, .flops = token_mean_flops, .onnx = token_mean_onnx,
};
