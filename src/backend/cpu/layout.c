/* Moving image tensors between the two layouts the executor knows: NCHW (PyTorch's
 * default and the layout of every tensor a caller hands in or gets back) and NHWC
 * (channels_last: what the executor keeps activations in (nep_exec_opts.layout), so that
 * oneDNN's convolutions read and write them without reorders).
 *   x [B, C, HW] <-> y [B, HW, C]; with add the destination is accumulated into. */
#include "backend/cpu/kernels.h"

/* Tiles of T x T elements keep both sides of the transpose in cache. */
#define T 16

static void transpose(const nep_real *restrict x, nep_real *restrict y, int64_t B, int64_t R,
                      int64_t S, bool add) {
    /* per sample: x [R, S] -> y [S, R] */
#pragma omp parallel for collapse(2) schedule(static) if (B * R * S > NEP_PAR_MIN)
    for (int64_t b = 0; b < B; b++)
        for (int64_t r0 = 0; r0 < R; r0 += T) {
            const nep_real *xs = x + b * R * S;
            nep_real *ys = y + b * R * S;
            const int64_t r1 = r0 + T < R ? r0 + T : R;
            for (int64_t s0 = 0; s0 < S; s0 += T) {
                const int64_t s1 = s0 + T < S ? s0 + T : S;
                for (int64_t s = s0; s < s1; s++)
                    for (int64_t r = r0; r < r1; r++)
                        ys[s * R + r] = add ? ys[s * R + r] + xs[r * S + s] : xs[r * S + s];
            }
        }
}

void nep_nchw_to_nhwc(const nep_real *x, nep_real *y, int64_t B, int64_t C, int64_t HW, bool add) {
    transpose(x, y, B, C, HW, add);
}

void nep_nhwc_to_nchw(const nep_real *x, nep_real *y, int64_t B, int64_t C, int64_t HW, bool add) {
    transpose(x, y, B, HW, C, add);
}
