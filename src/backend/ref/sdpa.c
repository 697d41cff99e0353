/* ScaledDotProductAttention (src/ops/sdpa.c) in double, one (sample, head) at a time:
 * P = softmax over the kept keys of scale q_h k_g^T (0 on the others; uniform where no key
 * is kept), D = P times the dropout scale of each weight (training with attention
 * dropout; 1 otherwise), o_h = D v_g; backward dP = (do v^T) times the scales,
 * dS = P (dP - rowsum(dP P)), dq = scale dS k, dk = scale dS^T q, dv = D^T do, written in
 * input order (q, k, v may be one node). State (with attention dropout): the scale of
 * weight (b, h, i, j), kept when draw ((b heads + h) T + i) T + j of the stream keyed by
 * one draw of the call's generator keeps, as the cpu backend draws it. */
#include <stdlib.h>

#include "nepenthe/rng.h"
#include "backend/ref/ref.h"
#include "ops/sdpa.h"

static bool dropping(const nep_call *c) { return c->training && c->n->attrs.sdpa.dropout > 0; }

static int64_t sdpa_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) {
    const nep_sdpa_geom a = nep_sdpa_geom_of(g, n);
    return n->attrs.sdpa.dropout > 0 ? a.heads * a.T * a.T : 0;
}

/* The dropout scale of weight (b, h, i, j): 1 without dropout. */
static double weight_scale(const nep_call *c, const nep_sdpa_geom *a, int64_t b, int64_t h, int64_t e) {
    return dropping(c) ? ((const nep_real *)c->state)[(b * a->heads + h) * a->T * a->T + e] : 1;
}

/* P [T, T] of sample b, head h. */
static void probabilities(const nep_call *c, const nep_sdpa_geom *a, int64_t b, int64_t h, double *P) {
    const int64_t T = a->T, g = h / a->rep;
    const nep_real *m = a->masked ? c->x[3] + b * T : NULL;
    for (int64_t i = 0; i < T; i++) {
        double *row = P + i * T, mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < T; j++) {
            double s = 0;
            for (int64_t d = 0; d < a->hd; d++)
                s += (double)c->x[0][(b * T + i) * a->C + h * a->hd + d] * c->x[1][(b * T + j) * a->Ck + g * a->hd + d];
            row[j] = s * a->scale;
            if (nep_sdpa_kept(a, m, i, j)) mx = fmax(mx, row[j]);
        }
        for (int64_t j = 0; j < T; j++)
            sum += row[j] = mx == -INFINITY ? 1 : nep_sdpa_kept(a, m, i, j) ? exp(row[j] - mx) : 0;
        for (int64_t j = 0; j < T; j++) row[j] /= sum;
    }
}

static void sdpa_forward(const nep_call *c) {
    const nep_sdpa_geom a = nep_sdpa_geom_of(c->g, c->n);
    const int64_t T = a.T;
    double *P = malloc(sizeof(double) * (size_t)(T * T));
    if (dropping(c)) {
        const double p = c->n->attrs.sdpa.dropout;
        const uint64_t key = nep_rng_u64(c->rng);
        nep_real *scale = c->state;
        for (int64_t e = 0; e < c->batch * a.heads * T * T; e++)
            scale[e] = nep_rng_stream_keeps(key, (uint64_t)e, nep_rng_keep_from(p)) ? (nep_real)(1 / (1 - p)) : 0;
    }
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t h = 0; h < a.heads; h++) {
            probabilities(c, &a, b, h, P);
            for (int64_t i = 0; i < T; i++)
                for (int64_t d = 0; d < a.hd; d++) {
                    double o = 0;
                    for (int64_t j = 0; j < T; j++)
                        o += P[i * T + j] * weight_scale(c, &a, b, h, i * T + j) *
                             c->x[2][(b * T + j) * a.Ck + h / a.rep * a.hd + d];
                    c->y[(b * T + i) * a.C + h * a.hd + d] = (nep_real)o;
                }
        }
    free(P);
}

static void sdpa_backward(const nep_call *c) {
    const nep_sdpa_geom a = nep_sdpa_geom_of(c->g, c->n);
    const int64_t T = a.T, B = c->batch;
    /* every gradient in double first, then stored in input order */
    double *P = malloc(sizeof(double) * (size_t)(T * T)), *dS = malloc(sizeof(double) * (size_t)(T * T));
    double *dq = calloc((size_t)(B * T * a.C), sizeof(double)), *dk = calloc((size_t)(B * T * a.Ck), sizeof(double)),
           *dv = calloc((size_t)(B * T * a.Ck), sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < a.heads; h++) {
            const int64_t g = h / a.rep, qo = h * a.hd, ko = g * a.hd;
            probabilities(c, &a, b, h, P);
            for (int64_t i = 0; i < T; i++) {
                double dot = 0;
                for (int64_t j = 0; j < T; j++) {
                    double dp = 0;
                    for (int64_t d = 0; d < a.hd; d++)
                        dp += (double)c->dy[(b * T + i) * a.C + qo + d] * c->x[2][(b * T + j) * a.Ck + ko + d];
                    dS[i * T + j] = dp *= weight_scale(c, &a, b, h, i * T + j);
                    dot += dp * P[i * T + j];
                }
                for (int64_t j = 0; j < T; j++) dS[i * T + j] = P[i * T + j] * (dS[i * T + j] - dot);
            }
            for (int64_t i = 0; i < T; i++)
                for (int64_t j = 0; j < T; j++)
                    for (int64_t d = 0; d < a.hd; d++) {
                        dq[(b * T + i) * a.C + qo + d] += a.scale * dS[i * T + j] * c->x[1][(b * T + j) * a.Ck + ko + d];
                        dk[(b * T + j) * a.Ck + ko + d] += a.scale * dS[i * T + j] * c->x[0][(b * T + i) * a.C + qo + d];
                        dv[(b * T + j) * a.Ck + ko + d] += P[i * T + j] * weight_scale(c, &a, b, h, i * T + j) *
                                                           c->dy[(b * T + i) * a.C + qo + d];
                    }
        }
    const double *grads[3] = {dq, dk, dv};
    for (int in = 0; in < 3; in++)
        for (int64_t i = 0; c->dx[in] && i < B * T * (in ? a.Ck : a.C); i++) ref_put(&c->dx[in][i], grads[in][i], c->dx_add[in]);
    free(P), free(dS), free(dq), free(dk), free(dv);
}

const nep_kernel nep_ref_sdpa = {.state_reals = sdpa_state_reals, .forward = sdpa_forward, .backward = sdpa_backward};
