/* The token-sequence ops around a transformer's attention (src/ops/tokens.c,
 * class_token.c, pos_embedding.c, take_token.c, token_mean.c), forward and backward
 * side by side. They move values, except TokenMean's sums; batch B, features C last.
 *   Tokens:              x [B, C, H, W] (NCHW) -> y [B, H*W, C], a transpose; an NHWC
 *                        image is already in that order (the executor aliases it)
 *   ClassToken:          x [B, T, C], p [1, 1, C] -> y [B, T+1, C]
 *   PositionalEmbedding: x [B, T, C] + p [1, T, C] -> y [B, T, C]
 *   TakeToken:           x [B, T, C] -> y [B, C], token 0
 *   TokenMean:           x [B, P, C] (P tokens, or H*W of a grid) -> y [B, C]
 * Parameter gradients sum over the batch in sample order, so that runs reproduce. */
#include <string.h>

#include "backend/cpu/kernels.h"

/* *d = v, or *d += v when add. */
static inline void put(nep_real *d, nep_real v, bool add) { *d = add ? *d + v : v; }

/* ---- Tokens ------------------------------------------------------------------------- */

static void tokens_forward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    if (nep_stored_channels_last(c->nhwc, s)) /* called directly on an aliased node */
        memcpy(c->y, c->x[0], sizeof(nep_real) * (size_t)nep_call_numel(c));
    else
        nep_nchw_to_nhwc(c->x[0], c->y, c->batch, s->d[0], s->d[1] * s->d[2], false);
}

static void tokens_backward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    nep_real *dx = c->dx[0];
    if (!dx) return;
    const int64_t len = nep_call_numel(c);
    if (nep_stored_channels_last(c->nhwc, s))
        for (int64_t i = 0; i < len; i++) put(&dx[i], c->dy[i], c->dx_add[0]);
    else
        nep_nhwc_to_nchw(c->dy, dx, c->batch, s->d[0], s->d[1] * s->d[2], c->dx_add[0]);
}

/* ---- ClassToken --------------------------------------------------------------------- */

static void class_token_forward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t T = s->d[0], C = s->d[1];
    const size_t row = sizeof(nep_real) * (size_t)C;
    for (int64_t b = 0; b < c->batch; b++) {
        nep_real *y = c->y + b * (T + 1) * C;
        memcpy(y, c->w[0], row);
        memcpy(y + C, c->x[0] + b * T * C, row * (size_t)T);
    }
}

static void class_token_backward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t T = s->d[0], C = s->d[1];
    for (int64_t b = 0; c->dx[0] && b < c->batch; b++) {
        const nep_real *dy = c->dy + b * (T + 1) * C + C;
        nep_real *dx = c->dx[0] + b * T * C;
        for (int64_t i = 0; i < T * C; i++) put(&dx[i], dy[i], c->dx_add[0]);
    }
    for (int64_t j = 0; j < C; j++) {
        double sum = 0;
        for (int64_t b = 0; b < c->batch; b++) sum += c->dy[b * (T + 1) * C + j];
        put(&c->dw[0][j], (nep_real)sum, c->accumulate);
    }
}

/* ---- PositionalEmbedding -------------------------------------------------------------- */

static void pos_embedding_forward(const nep_call *c) {
    const int64_t n = nep_shape_numel(&c->n->shape), len = nep_call_numel(c);
    const nep_real *x = c->x[0], *p = c->w[0];
#pragma omp parallel for simd if (parallel: len > NEP_PAR_MIN)
    for (int64_t i = 0; i < len; i++) c->y[i] = x[i] + p[i % n];
}

static void pos_embedding_backward(const nep_call *c) {
    const int64_t n = nep_shape_numel(&c->n->shape), len = nep_call_numel(c);
    nep_real *dx = c->dx[0];
    /* dx = dy; dy itself when the executor shares the buffer (passes_gradient) */
    if (dx && dx != c->dy)
        for (int64_t i = 0; i < len; i++) put(&dx[i], c->dy[i], c->dx_add[0]);
#pragma omp parallel for if (len > NEP_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double sum = 0;
        for (int64_t b = 0; b < c->batch; b++) sum += c->dy[b * n + i];
        put(&c->dw[0][i], (nep_real)sum, c->accumulate);
    }
}

/* ---- TakeToken ------------------------------------------------------------------------ */

static void take_token_forward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t T = s->d[0], C = s->d[1];
    for (int64_t b = 0; b < c->batch; b++)
        memcpy(c->y + b * C, c->x[0] + b * T * C, sizeof(nep_real) * (size_t)C);
}

static void take_token_backward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t T = s->d[0], C = s->d[1];
    nep_real *dx = c->dx[0];
    if (!dx) return;
    for (int64_t b = 0; b < c->batch; b++) {
        nep_real *row = dx + b * T * C;
        for (int64_t j = 0; j < C; j++) put(&row[j], c->dy[b * C + j], c->dx_add[0]);
        /* the other tokens had no say: 0, unless another reader's gradient is there */
        if (!c->dx_add[0]) memset(row + C, 0, sizeof(nep_real) * (size_t)((T - 1) * C));
    }
}

/* ---- TokenMean ------------------------------------------------------------------------ */

static void token_mean_forward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t C = nep_shape_features(s), P = nep_shape_positions(s), B = c->batch;
#pragma omp parallel for collapse(2) if (B * P * C > NEP_PAR_MIN)
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < C; j++) {
            const nep_real *x = c->x[0] + b * P * C + j;
            double sum = 0;
            for (int64_t t = 0; t < P; t++) sum += x[t * C];
            c->y[b * C + j] = (nep_real)(sum / (double)P);
        }
}

static void token_mean_backward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t C = nep_shape_features(s), P = nep_shape_positions(s), B = c->batch;
    nep_real *dx = c->dx[0];
    if (!dx) return;
    const nep_real inv = (nep_real)(1 / (double)P);
#pragma omp parallel for collapse(2) if (B * P * C > NEP_PAR_MIN)
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < P; t++)
            for (int64_t j = 0; j < C; j++) put(&dx[(b * P + t) * C + j], c->dy[b * C + j] * inv, c->dx_add[0]);
}

const nep_kernel nep_cpu_tokens = {.forward = tokens_forward, .backward = tokens_backward};
const nep_kernel nep_cpu_class_token = {.forward = class_token_forward, .backward = class_token_backward};
const nep_kernel nep_cpu_pos_embedding = {.forward = pos_embedding_forward, .backward = pos_embedding_backward};
const nep_kernel nep_cpu_take_token = {.forward = take_token_forward, .backward = take_token_backward};
const nep_kernel nep_cpu_token_mean = {.forward = token_mean_forward, .backward = token_mean_backward};
