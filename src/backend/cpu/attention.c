/* Attention (src/ops/attention.c; windows: ops/attention.h). Per call of B samples, T
 * tokens of C features, nW windows of N slots, heads of hd features:
 *   qkv [B T, 3C] = x Wqkv^T + bqkv                     one GEMM over every token
 *   (windows: gathered into slot order [B nW N, 3C]; a padding slot holds bqkv)
 *   per sample, window and head, with q, k, v the head's columns (leading dimension 3C):
 *     P [N, N] = softmax_rows(scale q k^T + bias + mask)    o [N, hd] = P v
 *   (windows: o scattered back to token order [B T, C]; padding slots dropped)
 *   y [B T, C] = o Wproj^T + bproj                      one GEMM
 * backward, in reverse:
 *   do = dy Wproj;  dWproj (+)= dy^T o;  dbproj (+)= sum dy
 *   dv = P^T do;  dP = do v^T;  dS = P (dP - rowsum(dP P));  dq = scale dS k;  dk = scale dS^T q
 *   dtable[row(p, q), h] (+)= sum over samples and windows of dS[p, q]
 *   dWqkv (+)= dqkv^T x;  dbqkv (+)= sum dqkv (padding slots too);  dx (+)= dqkv Wqkv
 * OpenBLAS 0.3.21 has no batched GEMM, so the (sample, window, head) products run as
 * independent tasks over OpenMP threads, each a single-threaded GEMM on strided columns
 * (OpenBLAS runs one thread inside a parallel region). Every sum over samples (parameter
 * gradients) runs in a fixed order, so a run does not depend on the thread count. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "backend/cpu/blas.h"
#include "backend/cpu/kernels.h"
#include "ops/attention.h"

/* The call's state, per sample (regions follow one another, each B times these; with
 * slots in token order the slot regions are the token regions):
 *   qkv_tok [T, 3C]  qkv_win [nW N, 3C]  p [nW heads, N, N] (backward: dS)
 *   o_win [nW N, C]  o_tok [T, C]  do_tok [T, C]  do_win [nW N, C]
 *   dqkv_win [nW N, 3C]  dqkv_tok [T, 3C] */
typedef struct regions {
    nep_real *qkv_tok, *qkv_win, *p, *o_win, *o_tok, *do_tok, *do_win, *dqkv_win, *dqkv_tok;
} regions;

static int64_t per_sample(const nep_attention_geom *a, int64_t *sizes) {
    const int64_t slots = a->regroups ? a->nW * a->N : 0;
    const int64_t s[9] = {a->T * 3 * a->C, slots * 3 * a->C, a->nW * a->heads * a->N * a->N,
                          slots * a->C, a->T * a->C, a->T * a->C, slots * a->C,
                          slots * 3 * a->C, a->T * 3 * a->C};
    int64_t total = 0;
    for (int i = 0; i < 9; i++) total += s[i], sizes[i] = s[i];
    return total;
}

static regions regions_of(const nep_attention_geom *a, nep_real *state, int64_t B) {
    int64_t s[9];
    per_sample(a, s);
    nep_real *at[9];
    for (int i = 0; i < 9; i++) at[i] = state, state += B * s[i];
    regions r = {at[0], at[1], at[2], at[3], at[4], at[5], at[6], at[7], at[8]};
    if (!a->regroups) r.qkv_win = r.qkv_tok, r.o_win = r.o_tok, r.do_win = r.do_tok, r.dqkv_win = r.dqkv_tok;
    return r;
}

static int64_t attention_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) {
    const nep_attention_geom a = nep_attention_geom_of(g, n);
    int64_t s[9];
    return per_sample(&a, s);
}

/* Scratch: slot sources [nW N] (int64); in double, dtable's terms [heads, N, N] and column
 * sums [3C]; the bias of each head [heads, N, N] and per thread one dP [N, N]. */
static size_t scratch_of(const nep_attention_geom *a, int threads) {
    return sizeof(int64_t) * (size_t)(a->nW * a->N) +
           sizeof(double) * (size_t)(a->heads * a->N * a->N + 3 * a->C) +
           sizeof(nep_real) * (size_t)((a->heads + threads) * a->N * a->N);
}

static size_t attention_scratch(const nep_graph *g, const nep_node *n, bool nhwc) {
    const nep_attention_geom a = nep_attention_geom_of(g, n);
    return scratch_of(&a, omp_get_max_threads());
}

typedef struct tables {
    int64_t *src;       /* [nW N] each slot's token (-1: padding) */
    double *dbias;      /* [heads, N, N] */
    double *colsum;     /* [3C] */
    nep_real *bias;     /* [heads, N, N] relative position bias (0 without a table) */
    nep_real *dp;       /* [threads, N, N] */
} tables;

static tables tables_of(const nep_call *c, const nep_attention_geom *a) {
    char *s = nep_scratch_get(c->scratch, scratch_of(a, omp_get_max_threads()));
    tables t;
    t.src = (int64_t *)s, s += sizeof(int64_t) * (size_t)(a->nW * a->N);
    t.dbias = (double *)s, s += sizeof(double) * (size_t)(a->heads * a->N * a->N);
    t.colsum = (double *)s, s += sizeof(double) * (size_t)(3 * a->C);
    t.bias = (nep_real *)s, s += sizeof(nep_real) * (size_t)(a->heads * a->N * a->N);
    t.dp = (nep_real *)s;
    for (int64_t w = 0; w < a->nW; w++)
        for (int64_t k = 0; k < a->N; k++) t.src[w * a->N + k] = nep_attention_source(a, w, k);
    for (int64_t h = 0; h < a->heads; h++)
        for (int64_t p = 0; p < a->N; p++)
            for (int64_t q = 0; q < a->N; q++)
                t.bias[(h * a->N + p) * a->N + q] =
                    a->biased ? c->w[4][nep_attention_bias_row(a, p, q) * a->heads + h] : 0;
    return t;
}

/* out (+)= sum + the column sums of rows [R, n], summed in row order in double (sum). */
static void column_sums(const nep_real *rows, int64_t R, int64_t n, double *sum, nep_real *out, bool add) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < n; j++) sum[j] += rows[r * n + j];
    for (int64_t j = 0; j < n; j++) out[j] = (nep_real)(add ? out[j] + sum[j] : sum[j]);
}

/* y [R, out] = x [R, in] W^T (+ b), the projections. */
static void project(const nep_real *x, const nep_real *W, const nep_real *b, int64_t R, int64_t in,
                    int64_t out, nep_real *y) {
    for (int64_t i = 0; i < R; i++) memcpy(y + i * out, b, sizeof(nep_real) * (size_t)out);
    nep_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)R, (int)out, (int)in, 1, x, (int)in, W,
             (int)in, 1, y, (int)out);
}

/* Scores of one (sample, window, head) in place: add bias and mask, softmax each row. */
static void softmax_rows(const nep_attention_geom *a, const tables *t, int64_t w, int64_t h, nep_real *P) {
    const int64_t N = a->N;
    for (int64_t p = 0; p < N; p++) {
        nep_real *row = P + p * N;
        const nep_real *bias = t->bias + (h * N + p) * N;
        nep_real mx = -INFINITY;
        for (int64_t q = 0; q < N; q++) {
            row[q] += bias[q] + (nep_real)nep_attention_mask(a, w, p, q);
            mx = row[q] > mx ? row[q] : mx;
        }
        double sum = 0;
        for (int64_t q = 0; q < N; q++) sum += row[q] = (nep_real)exp((double)(row[q] - mx));
        const nep_real inv = (nep_real)(1 / sum);
        for (int64_t q = 0; q < N; q++) row[q] *= inv;
    }
}

static void attention_forward(const nep_call *c) {
    const nep_attention_geom a = nep_attention_geom_of(c->g, c->n);
    const int64_t B = c->batch, T = a.T, C = a.C, N = a.N, nW = a.nW, hd = a.hd, C3 = 3 * C;
    const regions r = regions_of(&a, c->state, B);
    const tables t = tables_of(c, &a);
    project(c->x[0], c->w[0], c->w[1], B * T, C, C3, r.qkv_tok);
    if (a.regroups) {
#pragma omp parallel for if (B * nW * N * C3 > NEP_PAR_MIN)
        for (int64_t k = 0; k < B * nW * N; k++) {
            const int64_t src = t.src[k % (nW * N)];
            memcpy(r.qkv_win + k * C3, src < 0 ? c->w[1] : r.qkv_tok + (k / (nW * N) * T + src) * C3,
                   sizeof(nep_real) * (size_t)C3);
        }
    }
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < B * nW * a.heads; task++) {
        const int64_t bw = task / a.heads, h = task % a.heads;
        const nep_real *q = r.qkv_win + bw * N * C3 + h * hd;
        nep_real *P = r.p + task * N * N;
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)N, (int)hd, (nep_real)a.scale,
                 q, (int)C3, q + C, (int)C3, 0, P, (int)N);
        softmax_rows(&a, &t, bw % nW, h, P);
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)hd, (int)N, 1, P, (int)N,
                 q + 2 * C, (int)C3, 0, r.o_win + bw * N * C + h * hd, (int)C);
    }
    if (a.regroups) {
#pragma omp parallel for if (B * nW * N * C > NEP_PAR_MIN)
        for (int64_t k = 0; k < B * nW * N; k++) {
            const int64_t src = t.src[k % (nW * N)];
            if (src >= 0)
                memcpy(r.o_tok + (k / (nW * N) * T + src) * C, r.o_win + k * C, sizeof(nep_real) * (size_t)C);
        }
    }
    project(r.o_tok, c->w[2], c->w[3], B * T, C, C, c->y);
}

static void attention_backward(const nep_call *c) {
    const nep_attention_geom a = nep_attention_geom_of(c->g, c->n);
    const int64_t B = c->batch, T = a.T, C = a.C, N = a.N, nW = a.nW, hd = a.hd, C3 = 3 * C;
    const regions r = regions_of(&a, c->state, B);
    const tables t = tables_of(c, &a);
    const bool acc = c->accumulate;
    /* the output projection */
    nep_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(B * T), (int)C, (int)C, 1, c->dy, (int)C,
             c->w[2], (int)C, 0, r.do_tok, (int)C);
    nep_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)C, (int)C, (int)(B * T), 1, c->dy, (int)C,
             r.o_tok, (int)C, acc, c->dw[2], (int)C);
    for (int64_t j = 0; j < C; j++) t.colsum[j] = 0;
    column_sums(c->dy, B * T, C, t.colsum, c->dw[3], acc);
    if (a.regroups) {
#pragma omp parallel for if (B * nW * N * C > NEP_PAR_MIN)
        for (int64_t k = 0; k < B * nW * N; k++) {
            const int64_t src = t.src[k % (nW * N)];
            if (src >= 0) memcpy(r.do_win + k * C, r.do_tok + (k / (nW * N) * T + src) * C, sizeof(nep_real) * (size_t)C);
            else memset(r.do_win + k * C, 0, sizeof(nep_real) * (size_t)C);
        }
    }
    /* per (sample, window, head): P becomes dS */
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < B * nW * a.heads; task++) {
        const int64_t bw = task / a.heads, h = task % a.heads;
        const nep_real *q = r.qkv_win + bw * N * C3 + h * hd, *k = q + C, *v = q + 2 * C;
        const nep_real *dout = r.do_win + bw * N * C + h * hd;
        nep_real *dq = r.dqkv_win + bw * N * C3 + h * hd, *dk = dq + C, *dv = dq + 2 * C;
        nep_real *P = r.p + task * N * N, *dP = t.dp + omp_get_thread_num() * N * N;
        nep_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)N, (int)hd, (int)N, 1, P, (int)N, dout,
                 (int)C, 0, dv, (int)C3);
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)N, (int)hd, 1, dout, (int)C, v,
                 (int)C3, 0, dP, (int)N);
        for (int64_t i = 0; i < N; i++) {
            double dot = 0;
            for (int64_t j = 0; j < N; j++) dot += (double)dP[i * N + j] * P[i * N + j];
            for (int64_t j = 0; j < N; j++) P[i * N + j] *= dP[i * N + j] - (nep_real)dot;
        }
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)hd, (int)N, (nep_real)a.scale, P,
                 (int)N, k, (int)C3, 0, dq, (int)C3);
        nep_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)N, (int)hd, (int)N, (nep_real)a.scale, P,
                 (int)N, q, (int)C3, 0, dk, (int)C3);
    }
    if (a.biased) {
        /* each head's dS summed over samples and windows in order, then into its table rows */
#pragma omp parallel for
        for (int64_t h = 0; h < a.heads; h++) {
            double *sum = t.dbias + h * N * N;
            for (int64_t i = 0; i < N * N; i++) sum[i] = 0;
            for (int64_t bw = 0; bw < B * nW; bw++) {
                const nep_real *dS = r.p + (bw * a.heads + h) * N * N;
                for (int64_t i = 0; i < N * N; i++) sum[i] += dS[i];
            }
        }
        nep_real *dtable = c->dw[4];
        const int64_t rows = (2 * a.wh - 1) * (2 * a.ww - 1);
        if (!acc) memset(dtable, 0, sizeof(nep_real) * (size_t)(rows * a.heads));
        for (int64_t p = 0; p < N; p++)
            for (int64_t q = 0; q < N; q++)
                for (int64_t h = 0; h < a.heads; h++)
                    dtable[nep_attention_bias_row(&a, p, q) * a.heads + h] += (nep_real)t.dbias[(h * N + p) * N + q];
    }
    /* back to token order; padding slots' gradients go to bqkv alone */
    double *sum = t.colsum;
    for (int64_t j = 0; j < C3; j++) sum[j] = 0;
    if (a.regroups) {
        for (int64_t kk = 0; kk < B * nW * N; kk++) {
            const int64_t src = t.src[kk % (nW * N)];
            const nep_real *d = r.dqkv_win + kk * C3;
            if (src >= 0) memcpy(r.dqkv_tok + (kk / (nW * N) * T + src) * C3, d, sizeof(nep_real) * (size_t)C3);
            else
                for (int64_t j = 0; j < C3; j++) sum[j] += d[j];
        }
    }
    nep_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)C3, (int)C, (int)(B * T), 1, r.dqkv_tok, (int)C3,
             c->x[0], (int)C, acc, c->dw[0], (int)C);
    column_sums(r.dqkv_tok, B * T, C3, sum, c->dw[1], acc);
    if (c->dx[0])
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(B * T), (int)C, (int)C3, 1, r.dqkv_tok,
                 (int)C3, c->w[0], (int)C, c->dx_add[0], c->dx[0], (int)C);
}

const nep_kernel nep_cpu_attention = {.state_reals = attention_state_reals, .scratch_bytes = attention_scratch,
                                      .forward = attention_forward, .backward = attention_backward};
