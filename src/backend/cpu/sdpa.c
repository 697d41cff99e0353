/* ScaledDotProductAttention (src/ops/sdpa.c). Per call of B samples, T tokens, per sample
 * b and query head h (key/value head g = h / rep), with q_h, k_g, v_g strided columns of
 * the inputs (leading dimensions C and Ck):
 *   P [T, T] = softmax over the kept keys of (scale q_h k_g^T), 0 elsewhere    o_h = P v_g
 * backward, each phase writing one input's gradient, in input order (q, k and v may be
 * one node, whose single buffer the first write overwrites and the later ones add to):
 *   dS = P (dP - rowsum(dP P)) with dP = do_h v_g^T
 *   dq_h = scale dS k_g;   dk_g = scale sum_h dS_h^T q_h;   dv_g = sum_h P_h^T do_h
 * the sums over a group's heads in head order, so a run does not depend on the threads.
 * Each (sample, head) product is a single-threaded GEMM on strided columns, the tasks
 * spread over OpenMP (OpenBLAS 0.3.21 has no batched GEMM). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "backend/cpu/blas.h"
#include "backend/cpu/kernels.h"
#include "ops/sdpa.h"

/* State per sample: P [heads, T, T] and dS [heads, T, T] (backward). */
static int64_t sdpa_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) {
    const nep_sdpa_geom a = nep_sdpa_geom_of(g, n);
    return 2 * a.heads * a.T * a.T;
}

/* Row i of the scores in place: softmax over the kept keys, 0 on the others; a row with
 * no kept key weighs every key alike (ops/sdpa.c says why). */
static void softmax_row(const nep_sdpa_geom *a, const nep_real *m, int64_t i, nep_real *row) {
    const int64_t T = a->T;
    nep_real mx = -INFINITY;
    for (int64_t j = 0; j < T; j++)
        if (nep_sdpa_kept(a, m, i, j) && row[j] > mx) mx = row[j];
    if (mx == -INFINITY) {
        for (int64_t j = 0; j < T; j++) row[j] = (nep_real)(1.0 / (double)T);
        return;
    }
    double sum = 0;
    for (int64_t j = 0; j < T; j++)
        sum += row[j] = nep_sdpa_kept(a, m, i, j) ? (nep_real)exp((double)(row[j] - mx)) : 0;
    const nep_real inv = (nep_real)(1 / sum);
    for (int64_t j = 0; j < T; j++) row[j] *= inv;
}

static void sdpa_forward(const nep_call *c) {
    const nep_sdpa_geom a = nep_sdpa_geom_of(c->g, c->n);
    const int64_t T = a.T, C = a.C, Ck = a.Ck, hd = a.hd;
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < c->batch * a.heads; task++) {
        const int64_t b = task / a.heads, h = task % a.heads, g = h / a.rep;
        const nep_real *q = c->x[0] + b * T * C + h * hd, *k = c->x[1] + b * T * Ck + g * hd,
                       *v = c->x[2] + b * T * Ck + g * hd, *m = a.masked ? c->x[3] + b * T : NULL;
        nep_real *P = (nep_real *)c->state + task * T * T;
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, (nep_real)a.scale, q,
                 (int)C, k, (int)Ck, 0, P, (int)T);
        for (int64_t i = 0; i < T; i++) softmax_row(&a, m, i, P + i * T);
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1, P, (int)T, v, (int)Ck,
                 0, c->y + b * T * C + h * hd, (int)C);
    }
}

static void sdpa_backward(const nep_call *c) {
    const nep_sdpa_geom a = nep_sdpa_geom_of(c->g, c->n);
    const int64_t T = a.T, C = a.C, Ck = a.Ck, hd = a.hd, B = c->batch, TT = T * T;
    nep_real *Ps = c->state, *dSs = Ps + B * a.heads * TT;
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < B * a.heads; task++) {
        const int64_t b = task / a.heads, h = task % a.heads, g = h / a.rep;
        const nep_real *P = Ps + task * TT, *v = c->x[2] + b * T * Ck + g * hd, *dout = c->dy + b * T * C + h * hd;
        nep_real *dS = dSs + task * TT;
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, 1, dout, (int)C, v, (int)Ck,
                 0, dS, (int)T);
        for (int64_t i = 0; i < T; i++) {
            double dot = 0;
            for (int64_t j = 0; j < T; j++) dot += (double)dS[i * T + j] * P[i * T + j];
            for (int64_t j = 0; j < T; j++) dS[i * T + j] = P[i * T + j] * (dS[i * T + j] - (nep_real)dot);
        }
    }
    if (c->dx[0]) {
#pragma omp parallel for schedule(static)
        for (int64_t task = 0; task < B * a.heads; task++) {
            const int64_t b = task / a.heads, h = task % a.heads, g = h / a.rep;
            nep_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, (nep_real)a.scale,
                     dSs + task * TT, (int)T, c->x[1] + b * T * Ck + g * hd, (int)Ck, c->dx_add[0],
                     c->dx[0] + b * T * C + h * hd, (int)C);
        }
    }
    /* dk_g from dS and q, dv_g from P and do: each key/value head sums its group in order */
    for (int in = 1; in <= 2; in++) {
        if (!c->dx[in]) continue;
#pragma omp parallel for schedule(static)
        for (int64_t task = 0; task < B * a.kv_heads; task++) {
            const int64_t b = task / a.kv_heads, g = task % a.kv_heads;
            for (int64_t r = 0; r < a.rep; r++) {
                const int64_t h = g * a.rep + r, bh = b * a.heads + h;
                const nep_real beta = r > 0 || c->dx_add[in];
                nep_real *d = c->dx[in] + b * T * Ck + g * hd;
                if (in == 1)
                    nep_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, (nep_real)a.scale,
                             dSs + bh * TT, (int)T, c->x[0] + b * T * C + h * hd, (int)C, beta, d, (int)Ck);
                else
                    nep_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1, Ps + bh * TT,
                             (int)T, c->dy + b * T * C + h * hd, (int)C, beta, d, (int)Ck);
            }
        }
    }
}

const nep_kernel nep_cpu_sdpa = {.state_reals = sdpa_state_reals, .forward = sdpa_forward, .backward = sdpa_backward};
