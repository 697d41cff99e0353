/* Winograd F(2x2, 3x3) convolution (Lavin and Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2016) of 3x3, stride-1, pad-1, ungrouped convolutions on NHWC
 * activations: 16 GEMMs through OpenBLAS between the transforms, 2.25x fewer
 * multiply-adds than a direct convolution. oneDNN 2.6 has Winograd kernels only for
 * AVX-512; this one serves the other CPUs (dnnl_conv.c chooses).
 *
 * Tensors: x [N, H, W, C], y [N, H, W, K], w [K, C, 3, 3] (PyTorch's OIHW), b [K];
 * u, the transformed weights, [16][C][K]: u[(r*4+s)] = (G w G^T)[r][s] per (c, k).
 * C and K are multiples of 16. Calls run on `threads` OpenMP threads (OpenBLAS single-
 * threaded inside them); scratch is 64-byte-aligned memory the caller lends. */
#ifndef NEPENTHE_WINOGRAD_H
#define NEPENTHE_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nep_wino_geom {
    int64_t batch, h, w, in_c, out_c;
    int threads;
} nep_wino_geom;

/* Floats of u. */
size_t nep_wino_weight_floats(const nep_wino_geom *g);
/* u = the transform of w. */
void nep_wino_transform_weights(const nep_wino_geom *g, const float *w, float *u);

/* Bytes of scratch a call needs: training, any call (a forward transforming w itself, a
 * backward); else a forward given u. */
size_t nep_wino_scratch_bytes(const nep_wino_geom *g, bool training);

/* y = conv(x, w) + b (b may be NULL), or y += with add; then, with rectify, y clamped to
 * [0, cap]. u: the transformed weights, or NULL to transform w into scratch. */
void nep_wino_forward(const nep_wino_geom *g, void *scratch, const float *x, const float *w,
                      const float *u, const float *b, float *y, bool add, bool rectify, float cap);

/* dx = (or += with dx_add) conv_backward_data(dy, w), skipped when dx is NULL;
 * dw = (or += with accumulate) conv_backward_weights(x, dy) and db likewise, each
 * skipped when NULL. */
void nep_wino_backward(const nep_wino_geom *g, void *scratch, const float *x, const float *w,
                       const float *dy, float *dx, bool dx_add, float *dw, float *db, bool accumulate);

#endif
