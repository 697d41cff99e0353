/* Tokens: an image as a sequence of tokens, the features last.
 *   x [C, H, W] -> y [H*W, C]       (ViT: x.reshape(n, C, h*w).permute(0, 2, 1))
 *               -> y [H, W, C]      with attrs.tokens.grid (Swin: Permute([0, 2, 3, 1]))
 *   y[h*W + w, c] = x[c, h, w];  dx is dy put back
 * Nothing is computed: the output is the image's values in [H, W, C] order
 * (NEP_VIEW_CHANNELS_LAST), the order an NHWC executor stores the image in, so that one
 * gives the output the input's buffers; an NCHW one runs the kernel, a transpose.
 * ONNX: Reshape to [N, C, H*W], then Transpose(0, 2, 1); the grid Transpose(0, 2, 3, 1). */
#include "ops/onnx_map.h"

static nep_status tokens_infer(nep_graph *g, nep_node *n, nep_err *err) {
    NEP_TRY(nep_want_image(g, n, err));
    const nep_shape *in = nep_in_shape(g, n, 0);
    const int64_t C = in->d[0], H = in->d[1], W = in->d[2];
    n->shape = n->attrs.tokens.grid ? (nep_shape){3, {H, W, C}, 2} : (nep_shape){2, {H * W, C}, 1};
    return NEP_OK;
}

static void tokens_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                        const char *const *in, const char *out) {
    if (n->attrs.tokens.grid) {
        s->node(s, "Transpose", n->name, in, 1, out, NEP_ONNX_ATTRS(NEP_ONNX_INTS_ATTR("perm", 4, 0, 2, 3, 1)));
        return;
    }
    const nep_shape *x = nep_in_shape(g, n, 0);
    /* 0 keeps the batch, whatever it is */
    const int64_t flat[3] = {0, x->d[0], x->d[1] * x->d[2]};
    const char *rows = s->step(s, n, "flat");
    nep_onnx_node(s, "Reshape", rows, (const char *[]){in[0], s->ints(s, n, "shape", 1, flat, 3)}, 2, rows);
    s->node(s, "Transpose", n->name, (const char *[]){rows}, 1, out,
            NEP_ONNX_ATTRS(NEP_ONNX_INTS_ATTR("perm", 3, 0, 2, 1)));
}

static const nep_attr_field tokens_attrs[] = {NEP_ATTR_FIELD("grid", tokens.grid)};

/* Values only move: no FLOPs. */
const nep_op_def nep_op_tokens = {
    .name = "Tokens", .min_inputs = 1, .max_inputs = 1, .view = NEP_VIEW_CHANNELS_LAST,
    .infer = tokens_infer, .onnx = tokens_onnx, NEP_ATTR_FIELDS(tokens_attrs),
};
