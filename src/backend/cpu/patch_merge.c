/* PatchMerging's space to depth (src/ops/patch_merge.c), torchvision's _patch_merging_pad:
 *   x [B, H, W, C] -> y [B, H2, W2, 4C], H2 = ceil(H/2), W2 = ceil(W/2)
 *   y[b, i, j, k*C : (k+1)*C] = x[b, 2i + di, 2j + dj, :] for k = di + 2 dj, zeros past an
 *   odd H or W;  dx[b, h, w, :] = dy[b, h/2, w/2, k*C : (k+1)*C] for k = h%2 + 2 (w%2)
 * Whole feature rows move (C contiguous values); the backward visits each x element
 * once, so it needs no zeroing and no atomics. */
#include <string.h>

#include "backend/cpu/kernels.h"

typedef struct merge_dims {
    int64_t H, W, C, H2, W2;
} merge_dims;

static merge_dims dims_of(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    return (merge_dims){s->d[0], s->d[1], s->d[2], (s->d[0] + 1) / 2, (s->d[1] + 1) / 2};
}

static void patch_merge_forward(const nep_call *c) {
    const merge_dims d = dims_of(c);
    const size_t row = sizeof(nep_real) * (size_t)d.C;
#pragma omp parallel for collapse(2) if (c->batch * d.H2 * d.W2 * 4 * d.C > NEP_PAR_MIN)
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t i = 0; i < d.H2; i++)
            for (int64_t j = 0; j < d.W2; j++)
                for (int k = 0; k < 4; k++) {
                    const int64_t h = 2 * i + k % 2, w = 2 * j + k / 2;
                    nep_real *y = c->y + (((b * d.H2 + i) * d.W2 + j) * 4 + k) * d.C;
                    if (h < d.H && w < d.W) memcpy(y, c->x[0] + ((b * d.H + h) * d.W + w) * d.C, row);
                    else memset(y, 0, row); /* the zero padding */
                }
}

static void patch_merge_backward(const nep_call *c) {
    const merge_dims d = dims_of(c);
    nep_real *dx = c->dx[0];
    if (!dx) return;
    const bool add = c->dx_add[0];
#pragma omp parallel for collapse(2) if (c->batch * d.H * d.W * d.C > NEP_PAR_MIN)
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t h = 0; h < d.H; h++)
            for (int64_t w = 0; w < d.W; w++) {
                const int64_t k = h % 2 + 2 * (w % 2);
                const nep_real *g = c->dy + (((b * d.H2 + h / 2) * d.W2 + w / 2) * 4 + k) * d.C;
                nep_real *r = dx + ((b * d.H + h) * d.W + w) * d.C;
                for (int64_t j = 0; j < d.C; j++) r[j] = add ? r[j] + g[j] : g[j];
            }
}

const nep_kernel nep_cpu_patch_merge = {.forward = patch_merge_forward, .backward = patch_merge_backward};
