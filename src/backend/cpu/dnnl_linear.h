/* Linear for serving executors (nep_exec_opts.frozen_weights) through oneDNN's matmul,
 * float builds only:
 *   x [rows, in]   W [out, in]   b [out]   y [rows, out] = x W^T + b  (clamped to [0, cap]
 *   when rectify: the ReLU or ReLU6 that alone reads the node, as a post-op).
 * W is reordered once, at the first call, into the layout the primitive reads (blocked
 * for its brgemm kernels) and kept in the plan; OpenBLAS's sgemm packs W again at every
 * call. Measured on an Intel Xeon (Sapphire Rapids), one thread, 784-1024 and 1024-1024
 * layers: 1.25-1.3x sgemm at 128 rows (177-181 GFLOP/s), 2x at 16; its inner product
 * with the same packed weights was 4-6% slower than the matmul at 128 rows. Under AVX2
 * oneDNN runs a plain GEMM and it is even with sgemm. */
#ifndef NEPENTHE_DNNL_LINEAR_H
#define NEPENTHE_DNNL_LINEAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nepenthe/status.h"

/* sum: y += instead of = (before the rectifier), as oneDNN's sum post-op. */
typedef struct nep_linear_geom {
    int64_t rows, in, out;
    bool bias, rectify, sum;
    float cap;
} nep_linear_geom;

#ifndef NEP_DOUBLE
typedef struct nep_linear_plan nep_linear_plan;

/* Fails (NEP_ERR_UNSUPPORTED, NEP_ERR_NOMEM) when oneDNN cannot build the primitive; the
 * caller then runs its GEMM instead. */
nep_status nep_dnnl_linear_plan_new(const nep_linear_geom *g, nep_linear_plan **out, nep_err *err);
void nep_dnnl_linear_plan_free(nep_linear_plan *p);
/* Bytes of the packed weights p holds (0 when it shares another plan's). */
size_t nep_dnnl_linear_packed_bytes(const nep_linear_plan *p);
/* p (another row count of the same node) reads the weights `from` packed instead of its
 * own copy, where both packed them into the same layout; from must outlive p. */
void nep_dnnl_linear_share_packed(nep_linear_plan *p, const nep_linear_plan *from);
bool nep_dnnl_linear_plan_fits(const nep_linear_plan *p, const nep_linear_geom *g);
/* y = x W^T + b (b NULL without bias), rectified when the plan says; w is read at the
 * first call only. */
void nep_dnnl_linear_forward(nep_linear_plan *p, const float *x, const float *w, const float *b, float *y);
#endif

#endif
