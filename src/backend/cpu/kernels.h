/* The CPU backend (OpenBLAS, oneDNN, OpenMP): one file per op kind with its forward and
 * backward side by side, each a row of the table in table.c, and the helpers they
 * share. Kernels see only their call (src/backend/backend.h). */
#ifndef NEPENTHE_BACKEND_CPU_KERNELS_H
#define NEPENTHE_BACKEND_CPU_KERNELS_H

#include "backend/backend.h"
#include "ops/ops.h"

/* The value stored: y, or the rectifier's output of y (NaN goes to 0, as in the
 * rectifiers' own forward). */
static inline nep_real nep_stored(nep_real y, bool rectify, nep_real cap) {
    return rectify ? (y > 0 ? (y < cap ? y : cap) : 0) : y;
}

/* x [B, C, HW] -> y [B, HW, C] and back (layout.c); add: y += instead of =. */
void nep_nchw_to_nhwc(const nep_real *x, nep_real *y, int64_t B, int64_t C, int64_t HW, bool add);
void nep_nhwc_to_nchw(const nep_real *x, nep_real *y, int64_t B, int64_t C, int64_t HW, bool add);

/* Feature c of sample b in the call's input 0 (per-channel ops: PReLU, Affine) is
 * x[nep_chan_start(&d, b, c) + k * d.step] for k < d.inner: contiguous planes for
 * images in NCHW, stride C for images in NHWC and for token sequences [T, C]. */
typedef struct nep_chan_dims {
    int64_t C, inner, step;
    bool nhwc;
} nep_chan_dims;
static inline nep_chan_dims nep_chan_dims_of(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t C = nep_shape_features(s);
    const bool last = (c->nhwc && s->ndim == 3) || nep_shape_features_last(s);
    return (nep_chan_dims){C, nep_shape_positions(s), nep_plane_step(last, C), last};
}
static inline int64_t nep_chan_start(const nep_chan_dims *d, int64_t b, int64_t c) {
    return nep_plane_start(d->nhwc, b, c, d->C, d->inner);
}

/* Threshold below which elementwise loops stay on one thread. */
#define NEP_PAR_MIN 32768

extern const nep_kernel nep_cpu_input, nep_cpu_linear, nep_cpu_relu, nep_cpu_leaky_relu,
    nep_cpu_prelu, nep_cpu_relu6, nep_cpu_gelu, nep_cpu_silu, nep_cpu_identity, nep_cpu_flatten,
    nep_cpu_dropout, nep_cpu_add, nep_cpu_conv2d, nep_cpu_batchnorm, nep_cpu_maxpool,
    nep_cpu_avgpool, nep_cpu_global_avgpool, nep_cpu_affine, nep_cpu_embedding, nep_cpu_layernorm,
    nep_cpu_attention, nep_cpu_sdpa, nep_cpu_tanh, nep_cpu_rmsnorm, nep_cpu_rope, nep_cpu_mul, nep_cpu_tokens, nep_cpu_class_token, nep_cpu_pos_embedding, nep_cpu_take_token,
    nep_cpu_token_mean, nep_cpu_patch_merge, nep_cpu_drop_path;

#endif
