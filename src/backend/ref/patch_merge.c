/* PatchMerging's space to depth (src/ops/patch_merge.c): every element of y
 * [B, H2, W2, 4C] read from x [B, H, W, C] at (2i + di, 2j + dj), k = di + 2 dj, or 0
 * past an odd side; backward, every element of x from the one place of dy it went to. */
#include "backend/ref/ref.h"

static void patch_merge_forward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t H = s->d[0], W = s->d[1], C = s->d[2], H2 = (H + 1) / 2, W2 = (W + 1) / 2;
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t i = 0; i < H2; i++)
            for (int64_t j = 0; j < W2; j++)
                for (int64_t f = 0; f < 4 * C; f++) {
                    const int64_t k = f / C, h = 2 * i + k % 2, w = 2 * j + k / 2;
                    c->y[((b * H2 + i) * W2 + j) * 4 * C + f] =
                        h < H && w < W ? c->x[0][((b * H + h) * W + w) * C + f % C] : 0;
                }
}

static void patch_merge_backward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t H = s->d[0], W = s->d[1], C = s->d[2], H2 = (H + 1) / 2, W2 = (W + 1) / 2;
    for (int64_t b = 0; c->dx[0] && b < c->batch; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                for (int64_t ch = 0; ch < C; ch++) {
                    const int64_t k = h % 2 + 2 * (w % 2);
                    ref_put(&c->dx[0][((b * H + h) * W + w) * C + ch],
                            c->dy[((b * H2 + h / 2) * W2 + w / 2) * 4 * C + k * C + ch], c->dx_add[0]);
                }
}

const nep_kernel nep_ref_patch_merge = {.forward = patch_merge_forward, .backward = patch_merge_backward};
