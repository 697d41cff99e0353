/* Attention (src/ops/attention.c; windows: ops/attention.h) in double, one window of one
 * sample at a time, as torchvision's shifted_window_attention reads: each slot's input is
 * its token's (padding: zero), projected to q, k, v; per head softmax(scale q k^T + bias +
 * mask) v; heads concatenated and projected; each token's output from its slot. */
#include <stdlib.h>

#include "backend/ref/ref.h"
#include "ops/attention.h"

/* One window's forward: xs [N, C] slot inputs, qkv [N, 3C], P [heads, N, N], o [N, C]. */
typedef struct window {
    double *xs, *qkv, *P, *o;
} window;

static window window_new(const nep_attention_geom *a) {
    const size_t N = (size_t)a->N, C = (size_t)a->C, H = (size_t)a->heads;
    return (window){malloc(sizeof(double) * N * C), malloc(sizeof(double) * N * 3 * C),
                    malloc(sizeof(double) * H * N * N), malloc(sizeof(double) * N * C)};
}
static void window_free(window *w) { free(w->xs), free(w->qkv), free(w->P), free(w->o); }

static void window_forward(const nep_call *c, const nep_attention_geom *a, int64_t b, int64_t w, window *s) {
    const int64_t N = a->N, C = a->C, hd = a->hd;
    const nep_real *Wqkv = c->w[0], *bqkv = c->w[1];
    for (int64_t n = 0; n < N; n++) {
        const int64_t src = nep_attention_source(a, w, n);
        for (int64_t j = 0; j < C; j++) s->xs[n * C + j] = src < 0 ? 0 : c->x[0][(b * a->T + src) * C + j];
        for (int64_t o = 0; o < 3 * C; o++) {
            double v = bqkv[o];
            for (int64_t j = 0; j < C; j++) v += Wqkv[o * C + j] * s->xs[n * C + j];
            s->qkv[n * 3 * C + o] = v;
        }
    }
    for (int64_t h = 0; h < a->heads; h++)
        for (int64_t p = 0; p < N; p++) {
            double *row = s->P + (h * N + p) * N, mx = -INFINITY, sum = 0;
            for (int64_t q = 0; q < N; q++) {
                double v = 0;
                for (int64_t d = 0; d < hd; d++) v += s->qkv[p * 3 * C + h * hd + d] * s->qkv[q * 3 * C + C + h * hd + d];
                v = v * a->scale + nep_attention_mask(a, w, p, q);
                if (a->biased) v += c->w[4][nep_attention_bias_row(a, p, q) * a->heads + h];
                row[q] = v;
                mx = fmax(mx, v);
            }
            for (int64_t q = 0; q < N; q++) sum += row[q] = exp(row[q] - mx);
            for (int64_t q = 0; q < N; q++) row[q] /= sum;
            for (int64_t d = 0; d < hd; d++) {
                double v = 0;
                for (int64_t q = 0; q < N; q++) v += row[q] * s->qkv[q * 3 * C + 2 * C + h * hd + d];
                s->o[p * C + h * hd + d] = v;
            }
        }
}

static void attention_forward(const nep_call *c) {
    const nep_attention_geom a = nep_attention_geom_of(c->g, c->n);
    const int64_t C = a.C;
    window s = window_new(&a);
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t w = 0; w < a.nW; w++) {
            window_forward(c, &a, b, w, &s);
            for (int64_t n = 0; n < a.N; n++) {
                const int64_t src = nep_attention_source(&a, w, n);
                for (int64_t o = 0; src >= 0 && o < C; o++) {
                    double v = c->w[3][o];
                    for (int64_t j = 0; j < C; j++) v += c->w[2][o * C + j] * s.o[n * C + j];
                    c->y[(b * a.T + src) * C + o] = (nep_real)v;
                }
            }
        }
    window_free(&s);
}

/* Parameter gradients are summed in double over the whole call, then stored. */
static void attention_backward(const nep_call *c) {
    const nep_attention_geom a = nep_attention_geom_of(c->g, c->n);
    const int64_t N = a.N, C = a.C, hd = a.hd, C3 = 3 * C;
    const int64_t rows = a.biased ? (2 * a.wh - 1) * (2 * a.ww - 1) : 0;
    const int64_t numel[5] = {C3 * C, C3, C * C, C, rows * a.heads};
    double *g[5];
    for (int i = 0; i < 5; i++) g[i] = calloc((size_t)numel[i] + 1, sizeof(double));
    double *dO = malloc(sizeof(double) * (size_t)(N * C)), *dqkv = malloc(sizeof(double) * (size_t)(N * C3));
    double *dS = malloc(sizeof(double) * (size_t)N);
    window s = window_new(&a);
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t w = 0; w < a.nW; w++) {
            window_forward(c, &a, b, w, &s);
            for (int64_t n = 0; n < N; n++) {  /* the output projection */
                const int64_t src = nep_attention_source(&a, w, n);
                const nep_real *dy = src < 0 ? NULL : c->dy + (b * a.T + src) * C;
                for (int64_t j = 0; j < C; j++) {
                    double v = 0;
                    for (int64_t o = 0; dy && o < C; o++) v += dy[o] * c->w[2][o * C + j];
                    dO[n * C + j] = v;
                }
                for (int64_t o = 0; dy && o < C; o++) {
                    g[3][o] += dy[o];
                    for (int64_t j = 0; j < C; j++) g[2][o * C + j] += dy[o] * s.o[n * C + j];
                }
            }
            for (int64_t i = 0; i < N * C3; i++) dqkv[i] = 0;
            for (int64_t h = 0; h < a.heads; h++)
                for (int64_t p = 0; p < N; p++) {
                    const double *P = s.P + (h * N + p) * N;
                    double dot = 0;
                    for (int64_t q = 0; q < N; q++) {  /* dP[p, q] = do_p . v_q */
                        double dp = 0;
                        for (int64_t d = 0; d < hd; d++) dp += dO[p * C + h * hd + d] * s.qkv[q * C3 + 2 * C + h * hd + d];
                        dS[q] = dp;
                        dot += dp * P[q];
                    }
                    for (int64_t q = 0; q < N; q++) {
                        dS[q] = P[q] * (dS[q] - dot);
                        if (a.biased) g[4][nep_attention_bias_row(&a, p, q) * a.heads + h] += dS[q];
                        for (int64_t d = 0; d < hd; d++) {
                            dqkv[p * C3 + h * hd + d] += a.scale * dS[q] * s.qkv[q * C3 + C + h * hd + d];
                            dqkv[q * C3 + C + h * hd + d] += a.scale * dS[q] * s.qkv[p * C3 + h * hd + d];
                            dqkv[q * C3 + 2 * C + h * hd + d] += P[q] * dO[p * C + h * hd + d];
                        }
                    }
                }
            for (int64_t n = 0; n < N; n++) {  /* the qkv projection */
                const int64_t src = nep_attention_source(&a, w, n);
                for (int64_t o = 0; o < C3; o++) {
                    g[1][o] += dqkv[n * C3 + o];
                    for (int64_t j = 0; j < C; j++) g[0][o * C + j] += dqkv[n * C3 + o] * s.xs[n * C + j];
                }
                for (int64_t j = 0; src >= 0 && c->dx[0] && j < C; j++) {
                    double v = 0;
                    for (int64_t o = 0; o < C3; o++) v += dqkv[n * C3 + o] * c->w[0][o * C + j];
                    ref_put(&c->dx[0][(b * a.T + src) * C + j], v, c->dx_add[0]);
                }
            }
        }
    for (int i = 0; i < (a.biased ? 5 : 4); i++)
        for (int64_t k = 0; k < numel[i]; k++) ref_put(&c->dw[i][k], g[i][k], c->accumulate);
    for (int i = 0; i < 5; i++) free(g[i]);
    free(dO), free(dqkv), free(dS);
    window_free(&s);
}

const nep_kernel nep_ref_attention = {.forward = attention_forward, .backward = attention_backward};
