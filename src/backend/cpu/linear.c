/* Linear (src/ops/linear.c) as GEMMs over the rows of the last axis: B = batch x the
 * positions before it (one per token of a sequence).
 *   x [B, in]   W [out, in]   b [out]   y [B, out]   (y += with y_add: a fused residual Add)
 * backward: dx (+)= dy W   dW (+)= dy^T x   db (+)= sum_B dy */
#include <stdlib.h>

#include "backend/cpu/blas.h"
#include "backend/cpu/dnnl_linear.h"
#include "backend/cpu/kernels.h"

#ifndef NEP_DOUBLE
/* A serving node's oneDNN plans (dnnl_linear.h): the full batch and a last, smaller one
 * (the serving executor's last slice, or a short final batch). */
typedef struct linear_plans {
    nep_linear_plan *p[2];
} linear_plans;

static void linear_free_cache(void *cache) {
    linear_plans *plans = cache;
    for (int i = 0; i < 2; i++) nep_dnnl_linear_plan_free(plans->p[i]);
    free(plans);
}

static size_t linear_cache_bytes(const void *cache) {
    const linear_plans *plans = cache;
    size_t n = 0;
    for (int i = 0; i < 2; i++) n += plans->p[i] ? nep_dnnl_linear_packed_bytes(plans->p[i]) : 0;
    return n;
}

/* The plan for geometry q, built at first use; NULL to run the GEMM (no memory, or oneDNN
 * has no primitive for it). */
static nep_linear_plan *plan_for(void **cache, const nep_linear_geom *q) {
    linear_plans *plans = *cache;
    if (!plans && !(plans = *cache = calloc(1, sizeof *plans))) return NULL;
    for (int i = 0; i < 2; i++)
        if (plans->p[i] && nep_dnnl_linear_plan_fits(plans->p[i], q)) return plans->p[i];
    const int slot = plans->p[0] ? 1 : 0;
    nep_dnnl_linear_plan_free(plans->p[slot]);
    plans->p[slot] = NULL;
    if (nep_dnnl_linear_plan_new(q, &plans->p[slot], NULL) != NEP_OK) return NULL;
    if (slot == 1) nep_dnnl_linear_share_packed(plans->p[1], plans->p[0]); /* p[0] lives as long */
    return plans->p[slot];
}

/* Serving (weights frozen) with more than one row: oneDNN's matmul on weights
 * packed once. One row stays a GEMV, which reads W once either way and is as fast. */
static bool linear_forward_packed(const nep_call *c, int64_t B, int64_t in, int64_t out) {
    if (!c->frozen || B == 1) return false;
    const nep_linear_geom q = {.rows = B, .in = in, .out = out, .bias = c->n->attrs.linear.bias,
                               .rectify = c->rectify, .cap = (float)c->cap, .sum = c->y_add};
    nep_linear_plan *p = plan_for(c->cache, &q);
    if (!p) return false;
    nep_dnnl_linear_forward(p, c->x[0], c->w[0], q.bias ? c->w[1] : NULL, c->y);
    return true;
}
#endif

static void linear_forward(const nep_call *c) {
    const nep_graph *g = c->g;
    const nep_node *n = c->n;
    const nep_shape *s = nep_in_shape(g, n, 0);
    const int64_t in = nep_linear_fan_in(s), out = n->attrs.linear.features, B = c->batch * nep_linear_rows(s);
    const nep_real *x = c->x[0], *W = c->w[0];
    const bool rectify = c->rectify;
    const nep_real cap = c->cap;
#ifndef NEP_DOUBLE
    if (linear_forward_packed(c, B, in, out)) return;
#endif
    nep_real *y = c->y;
    /* y starts as the bias, or the summand plus the bias (y_add), and the product is added */
    const nep_real beta = n->attrs.linear.bias || c->y_add ? 1 : 0;
    if (n->attrs.linear.bias) {
        const nep_real *b = c->w[1];
        for (int64_t i = 0; i < B; i++)
            for (int64_t j = 0; j < out; j++) y[i * out + j] = c->y_add ? y[i * out + j] + b[j] : b[j];
    }
    /* One row is a matrix-vector product: OpenBLAS 0.3.21's sgemm would pack all of W
     * first (784-1024x3 MLP at batch 1: 1.5 ms, against 0.2 ms here). */
    if (B == 1)
        nep_gemv(CblasRowMajor, CblasNoTrans, (int)out, (int)in, 1, W, (int)in, x, 1, beta, y, 1);
    else
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)out, (int)in, 1, x,
                 (int)in, W, (int)in, beta, y, (int)out);
    if (rectify)
#pragma omp simd
        for (int64_t i = 0; i < B * out; i++) y[i] = nep_stored(y[i], true, cap);
}

static void linear_backward(const nep_call *c) {
    const nep_graph *g = c->g;
    const nep_node *n = c->n;
    const nep_shape *s = nep_in_shape(g, n, 0);
    const int64_t in = nep_linear_fan_in(s), out = n->attrs.linear.features, B = c->batch * nep_linear_rows(s);
    const nep_real *x = c->x[0], *W = c->w[0], *dy = c->dy;
    const bool add = c->dx_add[0];
    nep_real *dx = c->dx[0];
    if (dx)
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)in, (int)out, 1, dy,
                 (int)out, W, (int)in, add, dx, (int)in);
    nep_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)B, 1, dy,
             (int)out, x, (int)in, c->accumulate, c->dw[0], (int)in);
    if (n->attrs.linear.bias) {
        nep_real *db = c->dw[1];
        if (!c->accumulate)
            for (int64_t j = 0; j < out; j++) db[j] = 0;
        for (int64_t i = 0; i < B; i++)
            for (int64_t j = 0; j < out; j++) db[j] += dy[i * out + j];
    }
}

const nep_kernel nep_cpu_linear = {
    .sums_into_y = true,
#ifndef NEP_DOUBLE
    .free_cache = linear_free_cache,
    .cache_bytes = linear_cache_bytes,
#endif
    .forward = linear_forward, .backward = linear_backward};
