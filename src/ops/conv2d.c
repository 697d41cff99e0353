/* Conv2d, as torch.nn.Conv2d (zero padding, no dilation).
 *   x [C, H, W]   W [F, C/g, kh, kw] ("weight")   b [F] ("bias", optional)
 *   y [F, Ho, Wo]   Ho = (H + 2 ph - kh) / sh + 1,  Wo likewise;  g = groups
 * attrs.conv: features (F), bias, kernel, stride, pad, groups, shortcut.
 * ONNX: Conv(x, weight, bias?), pads [t, l, b, r], group. */
#include "ops/onnx_map.h"

static nep_status conv2d_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    const nep_conv2d_attrs *a = &n->attrs.conv;
    NEP_TRY(nep_want_image(g, n, err));
    const int64_t C = in->d[0], H = in->d[1], W = in->d[2], F = a->features;
    const int G = nep_conv_groups(n);
    if (a->kernel[0] < 1 || a->kernel[1] < 1 || a->stride[0] < 1 || a->stride[1] < 1 ||
        a->pad[0] < 0 || a->pad[1] < 0)
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (Conv2d): kernel %dx%d, stride %dx%d, "
                        "padding %dx%d: kernel and stride must be >= 1, padding >= 0", n->name,
                        a->kernel[0], a->kernel[1], a->stride[0], a->stride[1], a->pad[0], a->pad[1]);
    if (F < 1 || C % G || F % G)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Conv2d): %lld input and %lld output "
                        "channels must both be positive multiples of groups = %d", n->name,
                        (long long)C, (long long)F, G);
    const int64_t Hp = H + 2 * a->pad[0], Wp = W + 2 * a->pad[1];
    if (Hp < a->kernel[0] || Wp < a->kernel[1])
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Conv2d): kernel %dx%d is larger than "
                        "the padded input %lldx%lld", n->name, a->kernel[0], a->kernel[1],
                        (long long)Hp, (long long)Wp);
    const nep_param *w = n->n_params >= 1 ? &g->params[n->params[0]] : NULL;
    if (n->n_params != 1 + a->bias || w->ndim != 4 || w->shape[0] != F || w->shape[1] != C / G ||
        w->shape[2] != a->kernel[0] || w->shape[3] != a->kernel[1])
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Conv2d): wants parameters weight "
                        "[%lld, %lld, %d, %d]%s", n->name, (long long)F, (long long)(C / G),
                        a->kernel[0], a->kernel[1], a->bias ? " and bias" : " only");
    if (a->bias) {
        const nep_param *b = &g->params[n->params[1]];
        if (b->ndim != 1 || b->shape[0] != F)
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Conv2d): bias must be [%lld]",
                            n->name, (long long)F);
    }
    n->shape = (nep_shape){3, {F, (Hp - a->kernel[0]) / a->stride[0] + 1,
                               (Wp - a->kernel[1]) / a->stride[1] + 1}};
    return NEP_OK;
}

static int64_t conv2d_flops(const nep_graph *g, const nep_node *n) {
    const int64_t C = nep_in_shape(g, n, 0)->d[0], out = nep_shape_numel(&n->shape);
    const nep_conv2d_attrs *a = &n->attrs.conv;
    return 2 * out * (C / nep_conv_groups(n)) * a->kernel[0] * a->kernel[1] + (a->bias ? out : 0);
}

static void conv2d_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                        const char *const *in, const char *out) {
    const nep_conv2d_attrs *a = &n->attrs.conv;
    const char *ins[3] = {in[0], s->param(s, n, 0, false), a->bias ? s->param(s, n, 1, false) : NULL};
    s->node(s, "Conv", n->name, ins, a->bias ? 3 : 2, out, NEP_ONNX_ATTRS(
        NEP_ONNX_INTS_ATTR("kernel_shape", 2, a->kernel[0], a->kernel[1]),
        NEP_ONNX_INTS_ATTR("strides", 2, a->stride[0], a->stride[1]),
        NEP_ONNX_INTS_ATTR("pads", 4, a->pad[0], a->pad[1], a->pad[0], a->pad[1]),
        NEP_ONNX_INT_ATTR("group", nep_conv_groups(n))));
}

static const nep_attr_field conv2d_attrs[] = {
    NEP_ATTR_FIELD("features", conv.features), NEP_ATTR_FIELD("bias", conv.bias),
    NEP_ATTR_FIELD("kernel", conv.kernel),     NEP_ATTR_FIELD("stride", conv.stride),
    NEP_ATTR_FIELD("pad", conv.pad),           NEP_ATTR_FIELD("groups", conv.groups),
    NEP_ATTR_FIELD("shortcut", conv.shortcut),
};

const nep_op_def nep_op_conv2d = {
    .name = "Conv2d", .min_inputs = 1, .max_inputs = 1, .fuses_rectifier = true, .matmul = true,
    .infer = conv2d_infer, .flops = conv2d_flops, .onnx = conv2d_onnx,
    NEP_ATTR_FIELDS(conv2d_attrs),
};
