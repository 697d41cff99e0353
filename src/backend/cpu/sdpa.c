/* ScaledDotProductAttention (src/ops/sdpa.c). Per call of B samples, T tokens, per sample
 * b and query head h (key/value head g = h / rep), with q_h, k_g, v_g strided columns of
 * the inputs (leading dimensions C and Ck):
 *   P [T, T] = softmax over the kept keys of (scale q_h k_g^T), 0 elsewhere
 *   D = P * M / (1 - p) in training with attention dropout p (M the keep mask), else P
 *   o_h = D v_g
 * backward, each phase writing one input's gradient, in input order (q, k and v may be
 * one node, whose single buffer the first write overwrites and the later ones add to):
 *   dP = (do_h v_g^T) * M / (1 - p)    dS = P (dP - rowsum(dP P))
 *   dq_h = scale dS k_g;   dk_g = scale sum_h dS_h^T q_h;   dv_g = sum_h D_h^T do_h
 * the sums over a group's heads in head order, so a run does not depend on the threads.
 * M is read back from D: where D is 0 but M is not, P is 0 and so is dS.
 * Each (sample, head) product is a single-threaded GEMM on strided columns, the tasks
 * spread over OpenMP (OpenBLAS 0.3.21 has no batched GEMM). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "nepenthe/rng.h"
#include "backend/cpu/blas.h"
#include "backend/cpu/kernels.h"
#include "ops/sdpa.h"

/* glibc's vector exp (libmvec): with -fno-math-errno the softmax's loop calls it on whole
 * vectors, not one element at a time. */
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
double exp(double);
#define VEXP(x) _Generic((x), float: expf, double: exp)(x)

static bool dropping(const nep_call *c) { return c->training && c->n->attrs.sdpa.dropout > 0; }

/* State per sample: P [heads, T, T], D [heads, T, T] (with attention dropout) and
 * dS [heads, T, T] (backward). */
static int64_t sdpa_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) {
    const nep_sdpa_geom a = nep_sdpa_geom_of(g, n);
    return (n->attrs.sdpa.dropout > 0 ? 3 : 2) * a.heads * a.T * a.T;
}

/* Row i of the scores in place: softmax over the kept keys, 0 on the others; a row with
 * no kept key weighs every key alike (ops/sdpa.c says why). */
static void softmax_row(const nep_sdpa_geom *a, const nep_real *m, int64_t i, nep_real *row) {
    const int64_t T = a->T, end = a->causal ? i + 1 : T; /* keys from end on are not kept */
    nep_real mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < end; j++) {
        const nep_real s = m && m[j] == 0 ? (nep_real)-INFINITY : row[j];
        mx = s > mx ? s : mx;
    }
    if (mx == -INFINITY) {
        for (int64_t j = 0; j < T; j++) row[j] = (nep_real)(1.0 / (double)T);
        return;
    }
#pragma omp simd
    for (int64_t j = 0; j < T; j++) row[j] = j < end && !(m && m[j] == 0) ? row[j] - mx : (nep_real)-INFINITY;
    nep_real sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < T; j++) sum += row[j] = VEXP(row[j]); /* exp(-inf) = 0 exactly */
    const nep_real inv = 1 / sum;
#pragma omp simd
    for (int64_t j = 0; j < T; j++) row[j] *= inv;
}

/* Generation (nep_call.kv): the T new keys and values of each row go to the cache at its
 * positions pos[b] ..; rows that start at 0 (a prompt) then attend as without a cache,
 * and the others (decoding) query by query over the cache's positions 0 .. pos[b] + t:
 *   s = K[0..n) q * scale (gemv), softmax (the new keys under the mask), o = V[0..n)^T s. */
static bool append_to_cache(const nep_call *c, const nep_sdpa_geom *a) {
    nep_kv_layer *kv = c->kv;
    bool from_zero = true;
    for (int64_t b = 0; b < c->batch; b++) {
        const int64_t p0 = c->pos ? c->pos[b] : 0;
        from_zero &= p0 == 0;
        for (int in = 1; in <= 2; in++)
            memcpy((in == 1 ? kv->k : kv->v) + (b * kv->max_len + p0) * a->Ck, c->x[in] + b * a->T * a->Ck,
                   sizeof(nep_real) * (size_t)(a->T * a->Ck));
    }
    return from_zero;
}

static void attend_cached(const nep_call *c, const nep_sdpa_geom *a) {
    const nep_kv_layer *kv = c->kv;
    const int64_t T = a->T, L = kv->max_len;
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < c->batch * a->heads; task++) {
        const int64_t b = task / a->heads, h = task % a->heads, g = h / a->rep, p0 = c->pos ? c->pos[b] : 0;
        const nep_real *K = kv->k + b * L * a->Ck + g * a->hd, *V = kv->v + b * L * a->Ck + g * a->hd,
                       *m = a->masked ? c->x[3] + b * T : NULL;
        nep_real *s = kv->scores + task * L;
        for (int64_t t = 0; t < T; t++) {
            const int64_t n = p0 + t + 1; /* causal: the cache's positions up to this token's */
            nep_gemv(CblasRowMajor, CblasNoTrans, (int)n, (int)a->hd, (nep_real)a->scale, K, (int)a->Ck,
                        c->x[0] + (b * T + t) * a->C + h * a->hd, 1, 0, s, 1);
            nep_real mx = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                if (m && j >= p0 && m[j - p0] == 0) s[j] = (nep_real)-INFINITY;
                mx = s[j] > mx ? s[j] : mx;
            }
            nep_real sum = 0;
            for (int64_t j = 0; j < n; j++) sum += s[j] = VEXP(s[j] - mx);
            for (int64_t j = 0; j < n; j++) s[j] /= sum;
            nep_gemv(CblasRowMajor, CblasTrans, (int)n, (int)a->hd, 1, V, (int)a->Ck, s, 1, 0,
                        c->y + (b * T + t) * a->C + h * a->hd, 1);
        }
    }
}

static void sdpa_forward(const nep_call *c) {
    const nep_sdpa_geom a = nep_sdpa_geom_of(c->g, c->n);
    if (c->kv && !append_to_cache(c, &a)) {
        attend_cached(c, &a);
        return;
    }
    const int64_t T = a.T, C = a.C, Ck = a.Ck, hd = a.hd, TT = T * T, tasks = c->batch * a.heads;
    const bool drop = dropping(c);
    const double p = c->n->attrs.sdpa.dropout;
    const uint64_t key = drop ? nep_rng_u64(c->rng) : 0, keep_from = nep_rng_keep_from(p);
    const nep_real keep = (nep_real)(1 / (1 - p));
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < tasks; task++) {
        const int64_t b = task / a.heads, h = task % a.heads, g = h / a.rep;
        const nep_real *q = c->x[0] + b * T * C + h * hd, *k = c->x[1] + b * T * Ck + g * hd,
                       *v = c->x[2] + b * T * Ck + g * hd, *m = a.masked ? c->x[3] + b * T : NULL;
        nep_real *P = (nep_real *)c->state + task * TT, *D = P;
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, (nep_real)a.scale, q,
                 (int)C, k, (int)Ck, 0, P, (int)T);
        for (int64_t i = 0; i < T; i++) softmax_row(&a, m, i, P + i * T);
        if (drop) { /* mask element (b, h, i, j) is draw task * T * T + i * T + j */
            D = (nep_real *)c->state + (tasks + task) * TT;
#pragma omp simd
            for (int64_t e = 0; e < TT; e++)
                D[e] = nep_rng_stream_keeps(key, (uint64_t)(task * TT + e), keep_from) ? P[e] * keep : 0;
        }
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1, D, (int)T, v, (int)Ck,
                 0, c->y + b * T * C + h * hd, (int)C);
    }
}

static void sdpa_backward(const nep_call *c) {
    const nep_sdpa_geom a = nep_sdpa_geom_of(c->g, c->n);
    const int64_t T = a.T, C = a.C, Ck = a.Ck, hd = a.hd, B = c->batch, TT = T * T;
    const bool drop = dropping(c);
    const nep_real keep = (nep_real)(1 / (1 - c->n->attrs.sdpa.dropout));
    nep_real *Ps = c->state, *Ds = drop ? Ps + B * a.heads * TT : Ps, *dSs = Ps + (drop ? 2 : 1) * B * a.heads * TT;
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < B * a.heads; task++) {
        const int64_t b = task / a.heads, h = task % a.heads, g = h / a.rep;
        const nep_real *P = Ps + task * TT, *D = Ds + task * TT, *v = c->x[2] + b * T * Ck + g * hd,
                       *dout = c->dy + b * T * C + h * hd;
        nep_real *dS = dSs + task * TT;
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, 1, dout, (int)C, v, (int)Ck,
                 0, dS, (int)T);
        if (drop)
#pragma omp simd
            for (int64_t e = 0; e < TT; e++) dS[e] = D[e] != 0 ? dS[e] * keep : 0;
        for (int64_t i = 0; i < T; i++) {
            double dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int64_t j = 0; j < T; j++) dot += (double)dS[i * T + j] * P[i * T + j];
#pragma omp simd
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
                    nep_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1, Ds + bh * TT,
                             (int)T, c->dy + b * T * C + h * hd, (int)C, beta, d, (int)Ck);
            }
        }
    }
}

const nep_kernel nep_cpu_sdpa = {.state_reals = sdpa_state_reals, .forward = sdpa_forward, .backward = sdpa_backward};
