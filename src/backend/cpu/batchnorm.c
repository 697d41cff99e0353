/* BatchNorm2d, as torch.nn.BatchNorm2d(C, eps, momentum) (affine, tracking running
 * statistics).
 *   x [B, C, H, W]   weight, bias [C] (trainable)   running_mean, running_var [C]
 *   (buffers: params with flags 0, no gradient)   y [B, C, H, W]
 *   state (per node, the call's state): mean [C], inv_std [C], mode [1] (1 = batch statistics)
 *
 * Training (c->training): per channel c over the n = B*H*W values,
 *   mean = sum x / n,  var = sum (x - mean)^2 / n (biased),  inv = 1 / sqrt(var + eps)
 *   y = (x - mean) * inv * weight + bias
 *   SIDE EFFECT: forward also updates the buffers in g->values, exactly as PyTorch:
 *     running_mean = (1 - momentum) * running_mean + momentum * mean
 *     running_var  = (1 - momentum) * running_var  + momentum * var * n / (n - 1)
 *   so every training-mode forward (including ones whose backward never runs) moves
 *   them. PyTorch refuses n = 1; here n = 1 gives y = bias and running_var is updated
 *   with variance 0 (the trainer should not train with one value per channel).
 * Evaluation: y = x * scale + shift with nep_bn_eval_affine (running statistics), the
 *   very formula a BN fold uses; the buffers are not touched.
 * Backward (xhat = (x - mean) * inv with the statistics forward used):
 *   dbias = sum dy,  dweight = sum dy * xhat   (written, or added with accumulate_grads)
 *   training: dx (+)= weight * inv * (dy - sum dy / n - xhat * sum (dy * xhat) / n)
 *   eval:     dx (+)= weight * inv * dy   (+= when another consumer wrote dx first)
 * With call->rectify (the ReLU or ReLU6 that alone reads this node), forward
 * writes that rectifier's output max(y, 0) (min(max(y, 0), 6)) instead of y.
 * eps and momentum come from attrs.batchnorm (0 selects PyTorch's 1e-5 and 0.1).
 * Sums are accumulated in double, in an order fixed by the shape alone, so results do
 * not depend on the thread count: NCHW spreads channels over threads, one thread per
 * channel summing eight interleaved lanes, then the lanes in order; NHWC (c->nhwc,
 * x [B, H, W, C]) sums fixed chunks of rows, all channels at once, then the chunks in
 * order. The batch variance uses a one-pass sum of (x - K) and (x - K)^2 shifted by the
 * channel's first value K, which keeps the cancellation of E[x^2] - E[x]^2 away.
 * SyncBatchNorm (call->sync_bn, training): the sums of x and x^2 (K = 0: the ranks share
 * no first value; double sums of float values keep the cancellation small) and the
 * count are summed over the ranks before the statistics, so that every rank normalizes
 * by the whole batch's and updates the running statistics alike; backward sums dy and
 * dy * (x - mean) over the ranks for dx, while weight and bias take this rank's own sums
 * (the trainer sums the gradient block over the ranks afterwards, as DDP does). A failed
 * sum leaves NaN statistics: the loss turns NaN and the trainer stops. */
#include <math.h>
#include <stdbool.h>

#include "ops/batchnorm.h"
#include "backend/cpu/kernels.h"
#include "nepenthe/comm.h"

#define LANES 8

static int64_t bn_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) {
    return 2 * nep_in_shape(g, n, 0)->d[0] + 1;
}

/* s1 += x - K, s2 += (x - K)^2 over one contiguous plane, lane by lane. */
static void acc_moments(const nep_real *restrict x, int64_t len, double K, double *restrict s1,
                        double *restrict s2) {
    int64_t k = 0;
    for (; k + LANES <= len; k += LANES)
        for (int j = 0; j < LANES; j++) {
            double d = (double)x[k + j] - K;
            s1[j] += d;
            s2[j] += d * d;
        }
    for (; k < len; k++) {
        double d = (double)x[k] - K;
        s1[0] += d;
        s2[0] += d * d;
    }
}

static double lanes_sum(const double *s) {
    double t = 0;
    for (int j = 0; j < LANES; j++) t += s[j];
    return t;
}

/* Channel statistics from S1 = sum (x - K), S2 = sum (x - K)^2 over cnt values: the
 * batch mean and inverse std (into state), and the running statistics' update. */
static void batch_stats_of(double K, double S1, double S2, int64_t cnt, double eps, double mom,
                           nep_real *rmean, nep_real *rvar, nep_real *mean, nep_real *inv) {
    const double m = K + S1 / (double)cnt;
    double ss = S2 - S1 * S1 / (double)cnt; /* sum (x - m)^2 */
    if (ss < 0) ss = 0;
    *rmean = (nep_real)((1 - mom) * (double)*rmean + mom * m);
    *rvar = (nep_real)((1 - mom) * (double)*rvar + mom * ss / (double)(cnt > 1 ? cnt - 1 : 1));
    *mean = (nep_real)m;
    *inv = (nep_real)nep_bn_inv_std(ss / (double)cnt, eps);
}

/* What one forward or backward call works on. */
typedef struct bn_call {
    int64_t C, HW, B, cnt;                   /* cnt = B * HW values per channel */
    const nep_real *x, *w, *bias;
    nep_real *rmean, *rvar;                  /* running statistics (buffers) */
    nep_real *mean, *inv;                    /* state: the statistics forward used */
    double eps, mom;
    /* forward: where y goes (the epilogue rectifier's output when rect) */
    nep_real *y, cap;
    bool rect;
    /* backward */
    const nep_real *dy;
    nep_real *dx, *dw, *db;                  /* dx NULL: the input needs no gradient */
    bool dx_add, batch_stats, accumulate;
    const nep_comm *sync;                    /* SyncBatchNorm's ranks, or NULL */
} bn_call;

static bn_call call_of(const nep_call *call) {
    const nep_node *n = call->n;
    bn_call q = {.C = n->shape.d[0], .HW = n->shape.d[1] * n->shape.d[2], .B = call->batch,
                 .x = call->x[0], .w = call->w[BN_WEIGHT], .bias = call->w[BN_BIAS],
                 .rmean = call->w[BN_RMEAN], .rvar = call->w[BN_RVAR], .mean = call->state,
                 .eps = nep_bn_eps(&n->attrs.batchnorm), .mom = nep_bn_momentum(&n->attrs.batchnorm),
                 .sync = call->sync_bn};
    q.cnt = q.B * q.HW;
    q.inv = q.mean + q.C;
    return q;
}

/* Channel c's parameter gradients from sdy = sum dy and sdx = sum dy * (x - mean)
 * (written, or added with accumulate), and dx's coefficients:
 * dx = fa * dy + f0 + fp * (x - mean). With running statistics f0 = fp = 0. */
static void grad_coefficients(const bn_call *q, int64_t c, double sdy, double sdx, nep_real *fa,
                              nep_real *f0, nep_real *fp) {
    const double istd = (double)q->inv[c], dot = sdx * istd; /* sum dy * xhat */
    q->dw[c] = (nep_real)(q->accumulate ? (double)q->dw[c] + dot : dot);
    q->db[c] = (nep_real)(q->accumulate ? (double)q->db[c] + sdy : sdy);
    const double a = (double)q->w[c] * istd;
    const bool stats = q->batch_stats && q->cnt;
    *fa = (nep_real)a;
    *f0 = stats ? (nep_real)(-a * sdy / (double)q->cnt) : 0;
    *fp = stats ? (nep_real)(-a * istd * dot / (double)q->cnt) : 0;
}

/* Channel c's forward as y = (x - mu) * sc + sh (before the rectifier), from the
 * statistics in state: the batch's (mean, inverse std) or the running ones. */
static void channel_affine(const bn_call *q, int64_t c, bool batch_stats, nep_real *mu, nep_real *sc, nep_real *sh) {
    if (batch_stats) {
        *mu = q->mean[c], *sc = (nep_real)((double)q->w[c] * q->inv[c]), *sh = q->bias[c];
        return;
    }
    double scale, shift;
    nep_bn_eval_affine(q->w[c], q->bias[c], q->rmean[c], q->rvar[c], q->eps, &scale, &shift);
    *mu = 0, *sc = (nep_real)scale, *sh = (nep_real)shift;
}

/* The normalized value forward computed (the one expression, so that backward's
 * recomputation is that value to the bit). */
static inline nep_real normalized(nep_real x, nep_real mu, nep_real sc, nep_real sh) { return (x - mu) * sc + sh; }

/* With the rectifier folded into backward (q->rect), the gradient reaching the
 * BatchNorm's output: dy where the rectifier passed v = normalized(x) (0 < v < cap; cap
 * infinite for ReLU), else 0, the mask the rectifier's own backward reads off its output
 * (for finite v). */
static inline nep_real through_rectifier(bool rect, nep_real cap, nep_real dy, nep_real v) {
    const bool pass = (!rect) | ((v > 0) & (v < cap)); /* no short circuit: a vector select */
    return pass ? dy : 0;
}

/* g1 += dy, g2 += dy * (x - m) over one contiguous plane of channel c (mu, sc, sh its
 * forward: dy through the folded rectifier), lane by lane. */
static void acc_grads(const bn_call *q, const nep_real *restrict dy, const nep_real *restrict x, int64_t len,
                      nep_real m, nep_real mu, nep_real sc, nep_real sh, double *restrict g1, double *restrict g2) {
    const bool rect = q->rect; /* locals: a store through g1, g2 could alias q's fields */
    const nep_real cap = q->cap;
    int64_t k = 0;
    for (; k + LANES <= len; k += LANES)
        for (int j = 0; j < LANES; j++) {
            const double d = (double)through_rectifier(rect, cap, dy[k + j], normalized(x[k + j], mu, sc, sh));
            g1[j] += d;
            g2[j] += d * (double)(x[k + j] - m);
        }
    for (; k < len; k++) {
        const double d = (double)through_rectifier(rect, cap, dy[k], normalized(x[k], mu, sc, sh));
        g1[0] += d;
        g2[0] += d * (double)(x[k] - m);
    }
}

static void forward_nchw(const bn_call *q, bool batch_stats) {
    const int64_t C = q->C, HW = q->HW, B = q->B;
#pragma omp parallel for schedule(static) if (q->cnt * C > NEP_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        if (batch_stats) {
            double s1[LANES] = {0}, s2[LANES] = {0};
            const double K = (double)q->x[c * HW];
            for (int64_t b = 0; b < B; b++) acc_moments(q->x + (b * C + c) * HW, HW, K, s1, s2);
            batch_stats_of(K, lanes_sum(s1), lanes_sum(s2), q->cnt, q->eps, q->mom, q->rmean + c,
                           q->rvar + c, q->mean + c, q->inv + c);
        } else {
            q->mean[c] = q->rmean[c];
            q->inv[c] = (nep_real)nep_bn_inv_std(q->rvar[c], q->eps);
        }
        nep_real mu, sc, sh;
        channel_affine(q, c, batch_stats, &mu, &sc, &sh);
        for (int64_t b = 0; b < B; b++) {
            const nep_real *xp = q->x + (b * C + c) * HW;
            nep_real *yp = q->y + (b * C + c) * HW;
            for (int64_t k = 0; k < HW; k++) yp[k] = nep_stored(normalized(xp[k], mu, sc, sh), q->rect, q->cap);
        }
    }
}

static void backward_nchw(const bn_call *q) {
    const int64_t C = q->C, HW = q->HW, B = q->B, cnt = q->cnt;
    const bool rect = q->rect;
    const nep_real cap = q->cap;
#pragma omp parallel for schedule(static) if (cnt * C > NEP_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        double g1[LANES] = {0}, g2[LANES] = {0};
        const nep_real m = q->mean[c];
        nep_real mu, sc, sh;
        channel_affine(q, c, q->batch_stats, &mu, &sc, &sh);
        for (int64_t b = 0; b < B; b++)
            acc_grads(q, q->dy + (b * C + c) * HW, q->x + (b * C + c) * HW, HW, m, mu, sc, sh, g1, g2);
        nep_real fa, f0, fp;
        grad_coefficients(q, c, lanes_sum(g1), lanes_sum(g2), &fa, &f0, &fp);
        if (!q->dx) continue;
        for (int64_t b = 0; b < B; b++) {
            const nep_real *xp = q->x + (b * C + c) * HW, *dyp = q->dy + (b * C + c) * HW;
            nep_real *dxp = q->dx + (b * C + c) * HW;
            for (int64_t k = 0; k < HW; k++) {
                const nep_real d = fa * through_rectifier(rect, cap, dyp[k], normalized(xp[k], mu, sc, sh)) + f0 +
                                   fp * (xp[k] - m);
                dxp[k] = q->dx_add ? dxp[k] + d : d;
            }
        }
    }
}

/* ---- NHWC: x [R = B*H*W rows, C] ------------------------------------------------------ */

#define CHUNKS 16

/* Row range of chunk k of n over R rows. */
static int64_t chunk_start(int64_t R, int64_t n, int64_t k) { return R * k / n; }

/* Per-chunk sums [CHUNKS][2][C] doubles, then six [C] rows (backward: dx's coefficients
 * and the forward's affine); SyncBatchNorm's sums over the ranks [2C + 1] doubles
 * after them. */
static size_t bn_scratch_bytes(const nep_graph *g, const nep_node *n, bool nhwc) {
    const int64_t C = n->shape.d[0];
    return sizeof(double) * (size_t)(2 * CHUNKS * C) + 6 * sizeof(nep_real) * (size_t)C +
           sizeof(double) * (size_t)(2 * C + 1);
}

static void forward_nhwc(const bn_call *q, bool batch_stats, double *part) {
    const int64_t C = q->C, R = q->cnt, nch = R < CHUNKS ? R : CHUNKS;
    const nep_real *x = q->x;
    nep_real *mu = (nep_real *)(part + 2 * CHUNKS * C), *sc = mu + C, *sh = sc + C;
    if (batch_stats) {
#pragma omp parallel for schedule(static) if (R * C > NEP_PAR_MIN)
        for (int64_t k = 0; k < nch; k++) {
            double *s1 = part + 2 * k * C, *s2 = s1 + C;
            for (int64_t c = 0; c < C; c++) s1[c] = s2[c] = 0;
            for (int64_t r = chunk_start(R, nch, k); r < chunk_start(R, nch, k + 1); r++) {
                const nep_real *xr = x + r * C;
#pragma omp simd
                for (int64_t c = 0; c < C; c++) {
                    const double d = (double)xr[c] - (double)x[c];
                    s1[c] += d;
                    s2[c] += d * d;
                }
            }
        }
        for (int64_t c = 0; c < C; c++) {
            double S1 = 0, S2 = 0;
            for (int64_t k = 0; k < nch; k++) S1 += part[2 * k * C + c], S2 += part[(2 * k + 1) * C + c];
            batch_stats_of((double)x[c], S1, S2, R, q->eps, q->mom, q->rmean + c, q->rvar + c,
                           q->mean + c, q->inv + c);
        }
    } else {
        for (int64_t c = 0; c < C; c++) {
            q->mean[c] = q->rmean[c];
            q->inv[c] = (nep_real)nep_bn_inv_std(q->rvar[c], q->eps);
        }
    }
    for (int64_t c = 0; c < C; c++) channel_affine(q, c, batch_stats, mu + c, sc + c, sh + c);
#pragma omp parallel for schedule(static) if (R * C > NEP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const nep_real *xr = x + r * C;
        nep_real *yr = q->y + r * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) yr[c] = nep_stored(normalized(xr[c], mu[c], sc[c], sh[c]), q->rect, q->cap);
    }
}

/* Backward's scratch: the chunks' sums, dx's coefficients fa, f0, fp [C] each, and the
 * forward's mu, sc, sh [C] each for the folded rectifier's mask. */
static void backward_nhwc(const bn_call *q, double *part) {
    const int64_t C = q->C, R = q->cnt, nch = R < CHUNKS ? R : CHUNKS;
    const nep_real *x = q->x, *dy = q->dy, *mean = q->mean;
    nep_real *fa = (nep_real *)(part + 2 * CHUNKS * C), *f0 = fa + C, *fp = f0 + C;
    nep_real *mu = fp + C, *sc = mu + C, *sh = sc + C;
    const bool rect = q->rect;
    const nep_real cap = q->cap;
    for (int64_t c = 0; c < C; c++) channel_affine(q, c, q->batch_stats, mu + c, sc + c, sh + c);
#pragma omp parallel for schedule(static) if (R * C > NEP_PAR_MIN)
    for (int64_t k = 0; k < nch; k++) {
        double *g1 = part + 2 * k * C, *g2 = g1 + C;
        for (int64_t c = 0; c < C; c++) g1[c] = g2[c] = 0;
        for (int64_t r = chunk_start(R, nch, k); r < chunk_start(R, nch, k + 1); r++) {
            const nep_real *xr = x + r * C, *dyr = dy + r * C;
#pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                const double d = (double)through_rectifier(rect, cap, dyr[c], normalized(xr[c], mu[c], sc[c], sh[c]));
                g1[c] += d;
                g2[c] += d * (double)(xr[c] - mean[c]);
            }
        }
    }
    for (int64_t c = 0; c < C; c++) {
        double sdy = 0, sdx = 0;
        for (int64_t k = 0; k < nch; k++) sdy += part[2 * k * C + c], sdx += part[(2 * k + 1) * C + c];
        grad_coefficients(q, c, sdy, sdx, fa + c, f0 + c, fp + c);
    }
    if (!q->dx) return;
#pragma omp parallel for schedule(static) if (R * C > NEP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const nep_real *xr = x + r * C, *dyr = dy + r * C;
        nep_real *dxr = q->dx + r * C;
#define DX_NHWC(c) (fa[c] * through_rectifier(rect, cap, dyr[c], normalized(xr[c], mu[c], sc[c], sh[c])) + f0[c] + \
                    fp[c] * (xr[c] - mean[c]))
        if (q->dx_add) {
#pragma omp simd
            for (int64_t c = 0; c < C; c++) dxr[c] += DX_NHWC(c);
        } else {
#pragma omp simd
            for (int64_t c = 0; c < C; c++) dxr[c] = DX_NHWC(c);
        }
#undef DX_NHWC
    }
}

/* ---- SyncBatchNorm: sums over the ranks, either layout --------------------------------- */

/* x's element of channel c at sample b, position k. */
static int64_t at(const bn_call *q, bool nhwc, int64_t c, int64_t b, int64_t k) {
    return nhwc ? (b * q->HW + k) * q->C + c : (b * q->C + c) * q->HW + k;
}

/* s[c] = sum of a, s[C + c] = sum of b over this rank's values of channel c (a = x,
 * b = x^2 when u is NULL; a = u, b = u * (v - shift) otherwise, u = dy through the folded
 * rectifier, v = x), s[2C] their count. */
static void local_sums(const bn_call *q, bool nhwc, const nep_real *u, const nep_real *v, const nep_real *shift,
                       double *s) {
    const int64_t C = q->C;
    const bool rect = q->rect;
    const nep_real cap = q->cap;
#pragma omp parallel for schedule(static) if (q->cnt * C > NEP_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        double sa = 0, sb = 0;
        nep_real mu, sc, sh;
        channel_affine(q, c, true, &mu, &sc, &sh);
        for (int64_t b = 0; b < q->B; b++)
            for (int64_t k = 0; k < q->HW; k++) {
                const int64_t i = at(q, nhwc, c, b, k);
                const double d = (double)v[i] - (shift ? (double)shift[c] : 0);
                const double ui = u ? (double)through_rectifier(rect, cap, u[i], normalized(v[i], mu, sc, sh)) : 0;
                sa += u ? ui : d;
                sb += u ? ui * d : d * d;
            }
        s[c] = sa, s[C + c] = sb;
    }
    s[2 * C] = (double)q->cnt;
}

/* s [2C + 1] summed over the ranks (NaN where that fails). */
static void sum_over_ranks(const bn_call *q, double *s) {
    nep_err err;
    if (nep_comm_sum(q->sync, s, 2 * q->C + 1, NEP_COMM_F64, &err) != NEP_OK)
        for (int64_t k = 0; k <= 2 * q->C; k++) s[k] = NAN;
}

static void forward_sync(const bn_call *q, bool nhwc, double *s) {
    const int64_t C = q->C;
    local_sums(q, nhwc, NULL, q->x, NULL, s);
    sum_over_ranks(q, s);
    const int64_t total = (int64_t)s[2 * C];
    nep_real *mu = (nep_real *)(s + 2 * C + 1), *sc = mu + C, *sh = sc + C;
    for (int64_t c = 0; c < C; c++) {
        batch_stats_of(0, s[c], s[C + c], total, q->eps, q->mom, q->rmean + c, q->rvar + c, q->mean + c, q->inv + c);
        channel_affine(q, c, true, mu + c, sc + c, sh + c);
    }
#pragma omp parallel for schedule(static) if (q->cnt * C > NEP_PAR_MIN)
    for (int64_t c = 0; c < C; c++)
        for (int64_t b = 0; b < q->B; b++)
            for (int64_t k = 0; k < q->HW; k++) {
                const int64_t i = at(q, nhwc, c, b, k);
                q->y[i] = nep_stored(normalized(q->x[i], mu[c], sc[c], sh[c]), q->rect, q->cap);
            }
}

static void backward_sync(bn_call *q, bool nhwc, double *s) {
    const int64_t C = q->C;
    const bool rect = q->rect;
    const nep_real cap = q->cap;
    nep_real *fa = (nep_real *)(s + 2 * C + 1), *f0 = fa + C, *fp = f0 + C;
    local_sums(q, nhwc, q->dy, q->x, q->mean, s);
    for (int64_t c = 0; c < C; c++) { /* weight and bias: this rank's own sums */
        const double dot = s[C + c] * (double)q->inv[c];
        q->dw[c] = (nep_real)(q->accumulate ? (double)q->dw[c] + dot : dot);
        q->db[c] = (nep_real)(q->accumulate ? (double)q->db[c] + s[c] : s[c]);
    }
    sum_over_ranks(q, s); /* dx's coefficients: the ranks' */
    for (int64_t c = 0; c < C; c++) {
        const double istd = (double)q->inv[c], a = (double)q->w[c] * istd, n = s[2 * C];
        fa[c] = (nep_real)a;
        f0[c] = (nep_real)(-a * s[c] / n);
        fp[c] = (nep_real)(-a * istd * s[C + c] * istd / n);
    }
    if (!q->dx) return;
#pragma omp parallel for schedule(static) if (q->cnt * C > NEP_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        nep_real mu, sc, sh;
        channel_affine(q, c, true, &mu, &sc, &sh);
        for (int64_t b = 0; b < q->B; b++)
            for (int64_t k = 0; k < q->HW; k++) {
                const int64_t i = at(q, nhwc, c, b, k);
                const nep_real d = fa[c] * through_rectifier(rect, cap, q->dy[i], normalized(q->x[i], mu, sc, sh)) + f0[c] +
                                   fp[c] * (q->x[i] - q->mean[c]);
                q->dx[i] = q->dx_add ? q->dx[i] + d : d;
            }
    }
}

/* ---- the op ---------------------------------------------------------------------------- */

static void bn_forward(const nep_call *call) {
    bn_call q = call_of(call);
    q.y = call->y, q.rect = call->rectify, q.cap = call->cap;
    q.mean[2 * q.C] = call->training ? 1 : 0;
    if (q.cnt == 0) { /* an empty batch: nothing to normalize, statistics untouched */
        for (int64_t c = 0; c < 2 * q.C; c++) q.mean[c] = 0;
        return;
    }
    double *scratch = nep_scratch_get(call->scratch, bn_scratch_bytes(call->g, call->n, true));
    if (call->training && nep_comm_many(q.sync)) forward_sync(&q, call->nhwc, scratch + 2 * CHUNKS * q.C);
    else if (call->nhwc) forward_nhwc(&q, call->training, scratch);
    else forward_nchw(&q, call->training);
}

static void bn_backward(const nep_call *call) {
    bn_call q = call_of(call);
    q.dy = call->dy; /* with rectify: the gradient of the rectifier's output (folds_rectifier_backward) */
    q.rect = call->rectify, q.cap = call->cap;
    q.dx = call->dx[0], q.dx_add = call->dx_add[0];
    q.dw = call->dw[BN_WEIGHT];
    q.db = call->dw[BN_BIAS];
    q.batch_stats = q.mean[2 * q.C] != 0;
    q.accumulate = call->accumulate;
    double *scratch = nep_scratch_get(call->scratch, bn_scratch_bytes(call->g, call->n, true));
    if (q.batch_stats && nep_comm_many(q.sync)) backward_sync(&q, call->nhwc, scratch + 2 * CHUNKS * q.C);
    else if (call->nhwc) backward_nhwc(&q, scratch);
    else backward_nchw(&q);
}

const nep_kernel nep_cpu_batchnorm = {
    .folds_rectifier_backward = true, .state_reals = bn_state_reals, .scratch_bytes = bn_scratch_bytes,
    .forward = bn_forward, .backward = bn_backward,
};
