/* PatchMerging's space to depth, exactly torchvision's _patch_merging_pad (Swin's
 * downsampling; its LayerNorm and bias-free Linear "reduction" are the next nodes):
 *   x [H, W, C] (a grid) -> y [H2, W2, 4C], H2 = ceil(H/2), W2 = ceil(W/2)
 *   y[i, j, k*C + c] = x[2i + di, 2j + dj, c] for k = di + 2 dj (torch.cat of x[0::2, 0::2],
 *   x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]), 0 past an odd H or W (torch pads the end)
 * Every x element lands in exactly one place of y, so dx is dy gathered back. Copies only:
 * no FLOPs. ONNX: Pad (odd sides only), four Slices of step 2, Concat on the features. */
#include "ops/onnx_map.h"

static nep_status patch_merge_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (in->ndim != 3 || in->axis != 2)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (PatchMerging): wants a grid [H, W, C] "
                        "(features last), got %d dimensions with the features at axis %d",
                        n->name, in->ndim, in->axis);
    const int64_t H = in->d[0], W = in->d[1], C = in->d[2];
    n->shape = (nep_shape){3, {(H + 1) / 2, (W + 1) / 2, 4 * C}, 2};
    return NEP_OK;
}

static void patch_merge_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                             const char *const *in, const char *out) {
    const nep_shape *x = nep_in_shape(g, n, 0);
    const int64_t H = x->d[0], W = x->d[1], Hp = H + H % 2, Wp = W + W % 2;
    const char *padded = in[0];
    if (Hp != H || Wp != W) { /* zeros after the last row and column, as F.pad does */
        const int64_t pads[8] = {0, 0, 0, 0, 0, H % 2, W % 2, 0};
        padded = s->step(s, n, "padded");
        nep_onnx_node(s, "Pad", padded, (const char *[]){in[0], s->ints(s, n, "pads", 1, pads, 8)}, 2, padded);
    }
    const char *ends = s->ints(s, n, "ends", 1, (const int64_t[]){Hp, Wp}, 2),
               *axes = s->ints(s, n, "axes", 1, (const int64_t[]){1, 2}, 2),
               *steps = s->ints(s, n, "steps", 1, (const int64_t[]){2, 2}, 2);
    static const char *const starts[4] = {"starts00", "starts10", "starts01", "starts11"},
                             *parts[4] = {"x00", "x10", "x01", "x11"};
    const char *part[4];
    for (int k = 0; k < 4; k++) { /* k = di + 2 dj, torchvision's order */
        const int64_t from[2] = {k % 2, k / 2};
        part[k] = s->step(s, n, parts[k]);
        nep_onnx_node(s, "Slice", part[k],
                      (const char *[]){padded, s->ints(s, n, starts[k], 1, from, 2), ends, axes, steps},
                      5, part[k]);
    }
    s->node(s, "Concat", n->name, part, 4, out, NEP_ONNX_ATTRS(NEP_ONNX_INT_ATTR("axis", 3)));
}

const nep_op_def nep_op_patch_merge = {
    .name = "PatchMerging", .min_inputs = 1, .max_inputs = 1,
    .infer = patch_merge_infer, .onnx = patch_merge_onnx,
};
