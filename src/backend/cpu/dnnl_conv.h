/* 2-D convolution through oneDNN's C API (float builds only).
 *
 * The caller's tensors are plain row-major NCHW: x [N, C, H, W], w [F, C/g, kh, kw]
 * (oneDNN's oihw, or goihw viewed per group), b [F], y [N, F, Ho, Wo] (or NHWC
 * activations, see nhwc below). With NCHW activations each primitive is created with
 * format_tag_any so that oneDNN picks its fastest layout (blocked nChw16c / nChw8c on
 * AVX-512 / AVX2; its NCHW kernels are im2col+GEMM, 2-8x slower), and tensors are
 * reordered into and out of it around the call. A plan holds the primitives of one
 * geometry and batch, created once; the reorders' buffers are scratch memory the caller
 * lends for the duration of each call (the executor's, shared by all its nodes). Errors
 * (oneDNN cannot build a plan for the geometry, no memory) come from building a plan,
 * so the caller can fall back to another implementation; running one cannot fail.
 * Below AVX-512, where oneDNN has no Winograd kernels, a plan for NHWC 3x3 convolutions
 * of 64 channels and more runs nepenthe's (winograd.h) instead of oneDNN.
 */
#ifndef NEPENTHE_DNNL_CONV_H
#define NEPENTHE_DNNL_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nepenthe/real.h"
#include "nepenthe/status.h"

/* Geometry of one convolution call; symmetric zero padding ph (top and bottom), pw.
 * nhwc: x, y (and dx, dy) are [N, H, W, C] (PyTorch's channels_last) instead of NCHW;
 * the primitives then run in that layout and no activation is reordered.
 * rectify: forward's y is clamped to [0, cap] (a ReLU, cap infinite, or ReLU6, cap 6,
 * run as a post-op of the convolution).
 * frozen: a serving plan: forward only (oneDNN's forward_inference), and the weights the
 * first forward sees are reordered into the primitive's layout once and kept in the
 * plan, so later calls read neither w nor a reorder of it (backward is not available).
 * sum: forward adds its output to what y holds (before the rectifier), as oneDNN's sum
 * post-op: a residual Add fused into the convolution. */
typedef struct nep_conv_geom {
    int64_t batch, in_c, in_h, in_w, out_c, out_h, out_w;
    int kh, kw, sh, sw, ph, pw, groups;
    bool bias, nhwc, rectify, frozen, sum;
    float cap;
} nep_conv_geom;

#ifndef NEP_DOUBLE
typedef struct nep_conv_plan nep_conv_plan;

nep_status nep_dnnl_conv_plan_new(const nep_conv_geom *g, nep_conv_plan **out, nep_err *err);
void nep_dnnl_conv_plan_free(nep_conv_plan *p);
/* Whether p was built for exactly geometry g (batch included). */
bool nep_dnnl_conv_plan_fits(const nep_conv_plan *p, const nep_conv_geom *g);
/* Bytes of the weights a frozen plan packed (0 for the others, and for one that shares
 * another's). */
size_t nep_dnnl_conv_packed_bytes(const nep_conv_plan *p);
/* Frozen plan p (another batch of the same node: a serving executor's last, smaller
 * slice) reads the weights `from` packed instead of its own copy, where both packed them
 * into the same layout; from must outlive p. */
void nep_dnnl_conv_share_packed(nep_conv_plan *p, const nep_conv_plan *from);
/* Bytes of 64-byte-aligned scratch a call of p needs. */
size_t nep_dnnl_conv_scratch_bytes(const nep_conv_plan *p);

/* The name oneDNN gives the implementation p runs for a pass ("jit:avx2", "jit_1x1:avx512_core",
 * "gemm:jit", ...): for tests and profiles. */
typedef enum { NEP_CONV_FORWARD, NEP_CONV_BACKWARD_DATA, NEP_CONV_BACKWARD_WEIGHTS } nep_conv_pass;
const char *nep_dnnl_conv_impl(const nep_conv_plan *p, nep_conv_pass pass);

/* Floats per sample that a caller-owned `keep` buffer needs so that forward can leave
 * x there in the layout backward-weights reads (saves one reorder per step); 0 when
 * no reorder is expected (nhwc). */
int64_t nep_dnnl_conv_keep_per_sample(const nep_conv_geom *g);

/* y = conv(x, w) + b (b NULL without bias; y += with sum). keep: NULL, or batch *
 * nep_dnnl_conv_keep_per_sample floats that stay untouched until backward. A frozen
 * plan reads w at its first call only. */
void nep_dnnl_conv_forward(nep_conv_plan *p, void *scratch, const float *x, const float *w,
                           const float *b, float *y, float *keep);

/* dx = (or += when dx_add) conv_backward_data(dy, w) (skipped when dx is NULL);
 * dw = (or += when accumulate) conv_backward_weights(x, dy); db likewise (may be NULL
 * without bias). x and keep are what forward saw. */
void nep_dnnl_conv_backward(nep_conv_plan *p, void *scratch, const float *x, const float *keep,
                            const float *w, const float *dy, float *dx, bool dx_add, float *dw,
                            float *db, bool accumulate);
#endif

#endif
