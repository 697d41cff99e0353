/* The token-sequence ops (src/ops/tokens.c, class_token.c, pos_embedding.c,
 * take_token.c, token_mean.c) as index loops over NCHW images and [B, T, C] tokens, in
 * double; parameter gradients summed over the batch in sample order. */
#include "backend/ref/ref.h"

/* Tokens: y[b, h*W + w, c] = x[b, c, h, w] (an NCHW image: the executor aliases the
 * cases where the two orders agree, one channel or one position). */
static void tokens_forward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t C = s->d[0], P = s->d[1] * s->d[2];
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t k = 0; k < P; k++) c->y[(b * P + k) * C + ch] = c->x[0][(b * C + ch) * P + k];
}
static void tokens_backward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t C = s->d[0], P = s->d[1] * s->d[2];
    for (int64_t b = 0; c->dx[0] && b < c->batch; b++)
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t k = 0; k < P; k++)
                ref_put(&c->dx[0][(b * C + ch) * P + k], c->dy[(b * P + k) * C + ch], c->dx_add[0]);
}

/* ClassToken: y[b, 0] = p, y[b, 1 + t] = x[b, t];  dx[b, t] = dy[b, 1 + t];
 * dp = sum_b dy[b, 0] */
static void class_token_forward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t T = s->d[0], C = s->d[1];
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t t = 0; t <= T; t++)
            for (int64_t j = 0; j < C; j++)
                c->y[(b * (T + 1) + t) * C + j] = t == 0 ? c->w[0][j] : c->x[0][(b * T + t - 1) * C + j];
}
static void class_token_backward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t T = s->d[0], C = s->d[1];
    for (int64_t j = 0; j < C; j++) {
        double dp = 0;
        for (int64_t b = 0; b < c->batch; b++) {
            dp += c->dy[b * (T + 1) * C + j];
            for (int64_t t = 0; c->dx[0] && t < T; t++)
                ref_put(&c->dx[0][(b * T + t) * C + j], c->dy[(b * (T + 1) + t + 1) * C + j], c->dx_add[0]);
        }
        ref_put(&c->dw[0][j], dp, c->accumulate);
    }
}

/* PositionalEmbedding: y = x + p;  dx = dy;  dp = sum_b dy */
static void pos_embedding_forward(const nep_call *c) {
    const int64_t n = nep_shape_numel(&c->n->shape);
    for (int64_t i = 0; i < nep_call_numel(c); i++)
        c->y[i] = (nep_real)((double)c->x[0][i] + c->w[0][i % n]);
}
static void pos_embedding_backward(const nep_call *c) {
    const int64_t n = nep_shape_numel(&c->n->shape);
    for (int64_t i = 0; i < n; i++) {
        double dp = 0;
        for (int64_t b = 0; b < c->batch; b++) dp += c->dy[b * n + i];
        ref_put(&c->dw[0][i], dp, c->accumulate);
    }
    if (!c->dx[0] || c->dx[0] == c->dy) return; /* the executor shares dy's buffer */
    for (int64_t i = 0; i < nep_call_numel(c); i++) ref_put(&c->dx[0][i], c->dy[i], c->dx_add[0]);
}

/* TakeToken: y[b] = x[b, 0];  dx[b, 0] = dy[b], dx[b, t > 0] = 0 */
static void take_token_forward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t T = s->d[0], C = s->d[1];
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t j = 0; j < C; j++) c->y[b * C + j] = c->x[0][b * T * C + j];
}
static void take_token_backward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t T = s->d[0], C = s->d[1];
    for (int64_t b = 0; c->dx[0] && b < c->batch; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < C; j++)
                ref_put(&c->dx[0][(b * T + t) * C + j], t == 0 ? c->dy[b * C + j] : 0, c->dx_add[0]);
}

/* TokenMean: y[b, c] = mean over the P positions of x[b, :, c];  dx[b, t, c] = dy[b, c] / P */
static void token_mean_forward(const nep_call *c) {
    int64_t C, P;
    ref_chan_dims(c, &C, &P);
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t j = 0; j < C; j++) {
            double sum = 0;
            for (int64_t t = 0; t < P; t++) sum += c->x[0][(b * P + t) * C + j];
            c->y[b * C + j] = (nep_real)(sum / (double)P);
        }
}
static void token_mean_backward(const nep_call *c) {
    int64_t C, P;
    ref_chan_dims(c, &C, &P);
    for (int64_t b = 0; c->dx[0] && b < c->batch; b++)
        for (int64_t t = 0; t < P; t++)
            for (int64_t j = 0; j < C; j++)
                ref_put(&c->dx[0][(b * P + t) * C + j], (double)c->dy[b * C + j] / (double)P, c->dx_add[0]);
}

const nep_kernel nep_ref_tokens = {.forward = tokens_forward, .backward = tokens_backward};
const nep_kernel nep_ref_class_token = {.forward = class_token_forward, .backward = class_token_backward};
const nep_kernel nep_ref_pos_embedding = {.forward = pos_embedding_forward, .backward = pos_embedding_backward};
const nep_kernel nep_ref_take_token = {.forward = take_token_forward, .backward = take_token_backward};
const nep_kernel nep_ref_token_mean = {.forward = token_mean_forward, .backward = token_mean_backward};
