/* Pooling, as torch.nn.MaxPool2d, AvgPool2d (count_include_pad=True, ceil_mode=False,
 * dilation 1) and AdaptiveAvgPool2d(1).
 *   MaxPool2d, AvgPool2d: x [C, H, W] -> y [C, OH, OW],
 *     OH = (H + 2 pad[0] - kernel[0]) / stride[0] + 1 (floor), OW likewise;
 *     attrs.pool: kernel (> 0), stride (0 selects the kernel size, PyTorch's default),
 *     pad (0 <= pad <= kernel / 2, as PyTorch requires).
 *   AdaptiveAvgPool2d(1) ("global average pooling"): x [C, H, W] -> y [C, 1, 1].
 * ONNX: MaxPool; AveragePool(count_include_pad = 1); GlobalAveragePool (its [C, 1, 1]
 * per sample is AdaptiveAvgPool2d's: no reshape). */
#include <stdint.h>

#include "ops/onnx_map.h"
#include "ops/pool.h"

static nep_status window_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const char *op = nep_op(n->op)->name;
    NEP_TRY(nep_want_image(g, n, err));
    const nep_pool_attrs *a = &n->attrs.pool;
    if (a->kernel[0] <= 0 || a->kernel[1] <= 0)
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (%s): kernel %dx%d must be positive",
                        n->name, op, a->kernel[0], a->kernel[1]);
    if (a->stride[0] < 0 || a->stride[1] < 0)
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (%s): stride %dx%d must be positive (0 "
                        "selects the kernel size)", n->name, op, a->stride[0], a->stride[1]);
    for (int d = 0; d < 2; d++)
        if (a->pad[d] < 0 || a->pad[d] > a->kernel[d] / 2)
            return nep_fail(err, NEP_ERR_ARG, "node '%s' (%s): padding %d must be between 0 "
                            "and half the kernel size (%d)", n->name, op, a->pad[d],
                            a->kernel[d] / 2);
    const nep_pool_geom q = nep_pool_geom_of(g, n);
    if (q.H + 2 * q.ph < q.kh || q.W + 2 * q.pw < q.kw)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (%s): kernel %dx%d is larger than the "
                        "padded input %lldx%lld", n->name, op, q.kh, q.kw,
                        (long long)(q.H + 2 * q.ph), (long long)(q.W + 2 * q.pw));
    if (q.H * q.W > INT32_MAX)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (%s): input plane %lldx%lld is too large",
                        n->name, op, (long long)q.H, (long long)q.W);
    n->shape = (nep_shape){3, {q.C, q.OH, q.OW}};
    return NEP_OK;
}

/* One comparison (max) or addition (avg) per window element and output. */
static int64_t window_flops(const nep_graph *g, const nep_node *n) {
    const nep_pool_geom q = nep_pool_geom_of(g, n);
    return q.C * q.OH * q.OW * q.kh * q.kw;
}

static nep_status global_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    NEP_TRY(nep_want_image(g, n, err));
    n->shape = (nep_shape){3, {in->d[0], 1, 1}};
    return NEP_OK;
}

/* One addition per input element. */
static int64_t global_flops(const nep_graph *g, const nep_node *n) {
    return nep_shape_numel(nep_in_shape(g, n, 0));
}

/* MaxPool or AveragePool: kernel_shape, strides (the geometry's: 0 selects the kernel)
 * and pads; an AveragePool also counts the padding, as nepenthe divides by the whole
 * window (count_include_pad = 1). */
static void window_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                        const char *const *in, const char *out, bool average) {
    const nep_pool_geom q = nep_pool_geom_of(g, n);
    const nep_onnx_attr attrs[4] = {
        NEP_ONNX_INTS_ATTR("kernel_shape", 2, q.kh, q.kw),
        NEP_ONNX_INTS_ATTR("strides", 2, q.sh, q.sw),
        NEP_ONNX_INTS_ATTR("pads", 4, q.ph, q.pw, q.ph, q.pw),
        NEP_ONNX_INT_ATTR("count_include_pad", 1),
    };
    s->node(s, average ? "AveragePool" : "MaxPool", n->name, in, 1, out, attrs, average ? 4 : 3);
}

static void maxpool_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                         const char *const *in, const char *out) {
    window_onnx(s, g, n, in, out, false);
}

static void avgpool_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                         const char *const *in, const char *out) {
    window_onnx(s, g, n, in, out, true);
}

static void global_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                        const char *const *in, const char *out) {
    nep_onnx_node(s, "GlobalAveragePool", n->name, in, 1, out);
}

static const nep_attr_field window_attrs[] = {
    NEP_ATTR_FIELD("kernel", pool.kernel),
    NEP_ATTR_FIELD("stride", pool.stride),
    NEP_ATTR_FIELD("pad", pool.pad),
};

const nep_op_def nep_op_maxpool = {
    .name = "MaxPool2d", .min_inputs = 1, .max_inputs = 1,
    .infer = window_infer, .flops = window_flops, .onnx = maxpool_onnx,
    NEP_ATTR_FIELDS(window_attrs),
};
const nep_op_def nep_op_avgpool = {
    .name = "AvgPool2d", .min_inputs = 1, .max_inputs = 1,
    .infer = window_infer, .flops = window_flops, .onnx = avgpool_onnx,
    NEP_ATTR_FIELDS(window_attrs),
};
const nep_op_def nep_op_global_avgpool = {
    .name = "AdaptiveAvgPool2d", .min_inputs = 1, .max_inputs = 1,
    .infer = global_infer, .flops = global_flops, .onnx = global_onnx,
};
