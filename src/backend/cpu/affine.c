/* A fixed per-channel affine map, what collapse leaves where a rectifier was linearized
 * or a BatchNorm could not be folded into a neighbour.
 *   x [B, C, ...]   w [C] ("weight")   b [C] ("bias")   y [B, C, ...]
 * y = w_c x + b_c;  dx (+)= w_c dy;  dw_c = sum dy x;  db_c = sum dy */
#include <string.h>

#include "backend/cpu/kernels.h"

static void affine_forward(const nep_call *c) {
    const nep_chan_dims d = nep_chan_dims_of(c);
    const nep_real *x = c->x[0], *w = c->w[0],
                   *b = c->w[1];
    const bool rectify = c->rectify;
    const nep_real cap = c->cap;
    nep_real *y = c->y;
    if (d.nhwc) { /* rows of C channels, each a vector of w and b: not a strided walk per channel
                   * (a collapsed ResNet-20's three Affines at batch 128: 7.9 -> ms) */
        const int64_t rows = c->batch * d.inner, C = d.C;
#pragma omp parallel for if (rows * C > NEP_PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            const nep_real *xr = x + r * C;
            nep_real *yr = y + r * C;
#pragma omp simd
            for (int64_t ch = 0; ch < C; ch++) yr[ch] = nep_stored(w[ch] * xr[ch] + b[ch], rectify, cap);
        }
        return;
    }
    const int64_t rows = c->batch * d.C;
#pragma omp parallel for if (rows * d.inner > NEP_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t ch = r % d.C;
        const nep_real *xr = x + r * d.inner;
        nep_real *yr = y + r * d.inner;
#pragma omp simd
        for (int64_t k = 0; k < d.inner; k++) yr[k] = nep_stored(w[ch] * xr[k] + b[ch], rectify, cap);
    }
}

/* Backward's per-channel sums in NHWC, [2, C]: reserved with the executor, not
 * allocated per step. */
static size_t affine_scratch_bytes(const nep_graph *g, const nep_node *n, bool nhwc) {
    return 2 * sizeof(nep_real) * (size_t)nep_shape_features(nep_in_shape(g, n, 0));
}

static void affine_backward(const nep_call *c) {
    const nep_chan_dims d = nep_chan_dims_of(c);
    const nep_real *x = c->x[0], *w = c->w[0], *dy = c->dy;
    nep_real *dw = c->dw[0], *db = c->dw[1];
    const bool add = c->dx_add[0];
    nep_real *dx = c->dx[0];
    /* Per-channel sums in a fixed order so runs reproduce: rows in order, each channel's
     * sum the same as the per-channel walk below adds. */
    if (d.nhwc) { /* rows of C channels */
        nep_real *sums = nep_scratch_get(c->scratch, affine_scratch_bytes(c->g, c->n, c->nhwc));
        memset(sums, 0, 2 * sizeof *sums * (size_t)d.C);
        nep_real *sw = sums, *sb = sums + d.C;
        const int64_t rows = c->batch * d.inner, C = d.C;
        for (int64_t r = 0; r < rows; r++) {
            const nep_real *xr = x + r * C, *dyr = dy + r * C;
            nep_real *dxr = dx ? dx + r * C : NULL;
            if (dxr && add) {
#pragma omp simd
                for (int64_t ch = 0; ch < C; ch++) dxr[ch] += w[ch] * dyr[ch];
            } else if (dxr) {
#pragma omp simd
                for (int64_t ch = 0; ch < C; ch++) dxr[ch] = w[ch] * dyr[ch];
            }
#pragma omp simd
            for (int64_t ch = 0; ch < C; ch++) sw[ch] += dyr[ch] * xr[ch], sb[ch] += dyr[ch];
        }
        for (int64_t ch = 0; ch < C; ch++) {
            dw[ch] = c->accumulate ? dw[ch] + sw[ch] : sw[ch];
            db[ch] = c->accumulate ? db[ch] + sb[ch] : sb[ch];
        }
        return;
    }
    for (int64_t ch = 0; ch < d.C; ch++) {
        nep_real sw = 0, sb = 0;
        for (int64_t b = 0; b < c->batch; b++) {
            const int64_t o = nep_chan_start(&d, b, ch);
            for (int64_t k = o; k < o + d.inner * d.step; k += d.step) {
                if (dx) dx[k] = add ? dx[k] + w[ch] * dy[k] : w[ch] * dy[k];
                sw += dy[k] * x[k];
                sb += dy[k];
            }
        }
        dw[ch] = c->accumulate ? dw[ch] + sw : sw;
        db[ch] = c->accumulate ? db[ch] + sb : sb;
    }
}

const nep_kernel nep_cpu_affine = {.scratch_bytes = affine_scratch_bytes, .forward = affine_forward,
                                   .backward = affine_backward};
