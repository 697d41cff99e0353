/* BatchNorm2d, as torch.nn.BatchNorm2d(C, eps, momentum) (affine, tracking running
 * statistics).
 *   x [B, C, H, W]   weight, bias [C] (trainable)   running_mean, running_var [C]
 *   (buffers: params with flags 0, no gradient)   y [B, C, H, W]
 *   state (per node, in ex->state): mean [C], inv_std [C], mode [1] (1 = batch statistics)
 *
 * Training (ex->training): per channel c over the n = B*H*W values,
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
 * With an epilogue (nep_epilogue: the ReLU or ReLU6 that alone reads this node), forward
 * writes that rectifier's output max(y, 0) (min(max(y, 0), 6)) instead of y.
 * eps and momentum come from attrs (0 selects PyTorch's 1e-5 and 0.1).
 * Sums are accumulated in double, in an order fixed by the shape alone, so results do
 * not depend on the thread count: NCHW spreads channels over threads, one thread per
 * channel summing eight interleaved lanes, then the lanes in order; NHWC (ex->nhwc,
 * x [B, H, W, C]) sums fixed chunks of rows, all channels at once, then the chunks in
 * order. The batch variance uses a one-pass sum of (x - K) and (x - K)^2 shifted by the
 * channel's first value K, which keeps the cancellation of E[x^2] - E[x]^2 away. */
#include <math.h>
#include <stdbool.h>

#include "ops/batchnorm.h"
#include "ops/ops.h"

enum { BN_WEIGHT, BN_BIAS, BN_RMEAN, BN_RVAR, BN_NPARAMS };
#define LANES 8

static nep_status bn_infer(nep_graph *g, nep_node *n, nep_err *err) {
    static const char *const names[BN_NPARAMS] = {"weight", "bias", "running_mean", "running_var"};
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (in->ndim != 3)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (BatchNorm2d): input has %d dims, wants "
                        "3 ([C, H, W] per sample)", n->name, in->ndim);
    if (n->n_params != BN_NPARAMS)
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (BatchNorm2d): has %d parameters, wants 4 "
                        "(weight, bias, running_mean, running_var)", n->name, n->n_params);
    const int64_t C = in->d[0];
    for (int k = 0; k < BN_NPARAMS; k++) {
        const nep_param *p = &g->params[n->params[k]];
        if (p->ndim != 1 || p->shape[0] != C)
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (BatchNorm2d): parameter %d ('%s', the "
                            "%s) must have shape [%lld] (one per input channel)", n->name, k,
                            p->name, names[k], (long long)C);
        if (k >= BN_RMEAN && (p->flags & NEP_PARAM_TRAINABLE))
            return nep_fail(err, NEP_ERR_ARG, "node '%s' (BatchNorm2d): '%s' is a running "
                            "statistic and must not be trainable", n->name, p->name);
    }
    const double eps = n->attrs.eps, mom = n->attrs.momentum;
    if (!(eps >= 0 && isfinite(eps)))
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (BatchNorm2d): eps = %g must be >= 0 "
                        "(0 selects 1e-5)", n->name, eps);
    if (!(mom >= 0 && mom <= 1))
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (BatchNorm2d): momentum = %g is not in "
                        "[0, 1] (0 selects 0.1)", n->name, mom);
    n->shape = *in;
    return NEP_OK;
}

/* Scale and shift: two FLOPs per element (the inference cost; batch statistics in
 * training add about three more per element). */
static int64_t bn_flops(const nep_graph *g, const nep_node *n) {
    return 2 * nep_shape_numel(&n->shape);
}

static int64_t bn_state_reals(const nep_exec *ex, const nep_node *n) {
    return 2 * nep_in_shape(ex->g, n, 0)->d[0] + 1;
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

/* g1 += dy, g2 += dy * (x - m) over one contiguous plane, lane by lane. */
static void acc_grads(const nep_real *restrict dy, const nep_real *restrict x, int64_t len,
                      nep_real m, double *restrict g1, double *restrict g2) {
    int64_t k = 0;
    for (; k + LANES <= len; k += LANES)
        for (int j = 0; j < LANES; j++) {
            g1[j] += (double)dy[k + j];
            g2[j] += (double)dy[k + j] * (double)(x[k + j] - m);
        }
    for (; k < len; k++) {
        g1[0] += (double)dy[k];
        g2[0] += (double)dy[k] * (double)(x[k] - m);
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

static void bn_forward_nchw(nep_exec *ex, int id) {
    nep_graph *g = ex->g;
    const nep_node *n = &g->nodes[id];
    const int64_t C = n->shape.d[0], HW = n->shape.d[1] * n->shape.d[2], B = ex->batch;
    const int64_t cnt = B * HW;
    const nep_real *x = ex->act[n->inputs[0]];
    const nep_real *w = nep_param_ptr(g, n, BN_WEIGHT), *bias = nep_param_ptr(g, n, BN_BIAS);
    nep_real *rmean = nep_param_ptr(g, n, BN_RMEAN), *rvar = nep_param_ptr(g, n, BN_RVAR);
    nep_real *mean = ex->state[id], *inv = mean + C, cap;
    bool rect;
    nep_real *y = nep_epilogue_out(ex, id, &rect, &cap);
    const double eps = nep_bn_eps(&n->attrs), mom = nep_bn_momentum(&n->attrs);
    const bool batch_stats = ex->training;
    mean[2 * C] = batch_stats ? 1 : 0;
    if (cnt == 0) { /* an empty batch: nothing to normalize, statistics untouched */
        for (int64_t c = 0; c < 2 * C; c++) mean[c] = 0;
        return;
    }
#pragma omp parallel for schedule(static) if (cnt * C > NEP_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        if (batch_stats) {
            double s1[LANES] = {0}, s2[LANES] = {0};
            const double K = (double)x[c * HW];
            for (int64_t b = 0; b < B; b++) acc_moments(x + (b * C + c) * HW, HW, K, s1, s2);
            batch_stats_of(K, lanes_sum(s1), lanes_sum(s2), cnt, eps, mom, rmean + c, rvar + c,
                           mean + c, inv + c);
            const nep_real mf = mean[c], sc = (nep_real)((double)w[c] * inv[c]), sh = bias[c];
            for (int64_t b = 0; b < B; b++) {
                const nep_real *xp = x + (b * C + c) * HW;
                nep_real *yp = y + (b * C + c) * HW;
                for (int64_t k = 0; k < HW; k++) yp[k] = nep_stored((xp[k] - mf) * sc + sh, rect, cap);
            }
        } else {
            double scale, shift;
            nep_bn_eval_affine(w[c], bias[c], rmean[c], rvar[c], eps, &scale, &shift);
            mean[c] = rmean[c];
            inv[c] = (nep_real)nep_bn_inv_std(rvar[c], eps);
            const nep_real sc = (nep_real)scale, sh = (nep_real)shift;
            for (int64_t b = 0; b < B; b++) {
                const nep_real *xp = x + (b * C + c) * HW;
                nep_real *yp = y + (b * C + c) * HW;
                for (int64_t k = 0; k < HW; k++) yp[k] = nep_stored(xp[k] * sc + sh, rect, cap);
            }
        }
    }
}

static void bn_backward_nchw(nep_exec *ex, int id) {
    nep_graph *g = ex->g;
    const nep_node *n = &g->nodes[id];
    const int64_t C = n->shape.d[0], HW = n->shape.d[1] * n->shape.d[2], B = ex->batch;
    const int64_t cnt = B * HW;
    const nep_real *x = ex->act[n->inputs[0]], *dy = ex->dact[id];
    const nep_real *w = nep_param_ptr(g, n, BN_WEIGHT);
    const nep_real *mean = ex->state[id], *inv = mean + C;
    bool add;
    nep_real *dx = nep_input_grad(ex, n, 0, &add);
    nep_real *dw = nep_grad_ptr(g, n, BN_WEIGHT), *db = nep_grad_ptr(g, n, BN_BIAS);
    const bool batch_stats = mean[2 * C] != 0, acc = ex->accumulate_grads;
#pragma omp parallel for schedule(static) if (cnt * C > NEP_PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        double g1[LANES] = {0}, g2[LANES] = {0};
        const nep_real m = mean[c];
        for (int64_t b = 0; b < B; b++)
            acc_grads(dy + (b * C + c) * HW, x + (b * C + c) * HW, HW, m, g1, g2);
        const double sdy = lanes_sum(g1), istd = (double)inv[c];
        const double dot = lanes_sum(g2) * istd; /* sum dy * xhat */
        dw[c] = (nep_real)(acc ? (double)dw[c] + dot : dot);
        db[c] = (nep_real)(acc ? (double)db[c] + sdy : sdy);
        if (!dx) continue;
        const double a = (double)w[c] * istd;
        /* training: dx += a * dy - a * mean(dy) - a * inv * dot / n * (x - mean) */
        const nep_real fa = (nep_real)a;
        const nep_real f0 = batch_stats && cnt ? (nep_real)(-a * sdy / (double)cnt) : 0;
        const nep_real fp = batch_stats && cnt ? (nep_real)(-a * istd * dot / (double)cnt) : 0;
        for (int64_t b = 0; b < B; b++) {
            const nep_real *xp = x + (b * C + c) * HW, *dyp = dy + (b * C + c) * HW;
            nep_real *dxp = dx + (b * C + c) * HW;
            /* f0 = fp = 0 with running statistics */
            if (add)
                for (int64_t k = 0; k < HW; k++) dxp[k] += fa * dyp[k] + f0 + fp * (xp[k] - m);
            else
                for (int64_t k = 0; k < HW; k++) dxp[k] = fa * dyp[k] + f0 + fp * (xp[k] - m);
        }
    }
}

/* ---- NHWC: x [R = B*H*W rows, C] ------------------------------------------------------ */

#define CHUNKS 16

/* Row range of chunk k of n over R rows. */
static int64_t chunk_start(int64_t R, int64_t n, int64_t k) { return R * k / n; }

/* Per-chunk sums [CHUNKS][2][C] doubles, then three [C] coefficient rows. */
static size_t bn_scratch_bytes(const nep_exec *ex, const nep_node *n) {
    const int64_t C = n->shape.d[0];
    return sizeof(double) * (size_t)(2 * CHUNKS * C) + 3 * sizeof(nep_real) * (size_t)C;
}

static void bn_forward_nhwc(nep_exec *ex, int id) {
    nep_graph *g = ex->g;
    const nep_node *n = &g->nodes[id];
    const int64_t C = n->shape.d[0], R = ex->batch * n->shape.d[1] * n->shape.d[2];
    const nep_real *x = ex->act[n->inputs[0]];
    const nep_real *w = nep_param_ptr(g, n, BN_WEIGHT), *bias = nep_param_ptr(g, n, BN_BIAS);
    nep_real *rmean = nep_param_ptr(g, n, BN_RMEAN), *rvar = nep_param_ptr(g, n, BN_RVAR);
    nep_real *mean = ex->state[id], *inv = mean + C, cap;
    bool rect;
    nep_real *y = nep_epilogue_out(ex, id, &rect, &cap);
    const double eps = nep_bn_eps(&n->attrs), mom = nep_bn_momentum(&n->attrs);
    const int64_t nch = R < CHUNKS ? R : CHUNKS;
    /* scratch: per-chunk sums, then y = (x - mu) * sc + sh's coefficients */
    double *part = nep_exec_scratch(ex, bn_scratch_bytes(ex, n));
    nep_real *mu = (nep_real *)(part + 2 * CHUNKS * C), *sc = mu + C, *sh = sc + C;
    mean[2 * C] = ex->training ? 1 : 0;
    if (R == 0) {
        for (int64_t c = 0; c < 2 * C; c++) mean[c] = 0;
        return;
    }
    if (ex->training) {
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
            batch_stats_of((double)x[c], S1, S2, R, eps, mom, rmean + c, rvar + c, mean + c, inv + c);
            mu[c] = mean[c];
            sc[c] = (nep_real)((double)w[c] * inv[c]);
            sh[c] = bias[c];
        }
    } else {
        for (int64_t c = 0; c < C; c++) {
            double scale, shift;
            nep_bn_eval_affine(w[c], bias[c], rmean[c], rvar[c], eps, &scale, &shift);
            mean[c] = rmean[c];
            inv[c] = (nep_real)nep_bn_inv_std(rvar[c], eps);
            mu[c] = 0;
            sc[c] = (nep_real)scale;
            sh[c] = (nep_real)shift;
        }
    }
#pragma omp parallel for schedule(static) if (R * C > NEP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const nep_real *xr = x + r * C;
        nep_real *yr = y + r * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) yr[c] = nep_stored((xr[c] - mu[c]) * sc[c] + sh[c], rect, cap);
    }
}

static void bn_backward_nhwc(nep_exec *ex, int id) {
    nep_graph *g = ex->g;
    const nep_node *n = &g->nodes[id];
    const int64_t C = n->shape.d[0], R = ex->batch * n->shape.d[1] * n->shape.d[2];
    const nep_real *x = ex->act[n->inputs[0]], *dy = ex->dact[id];
    const nep_real *w = nep_param_ptr(g, n, BN_WEIGHT);
    const nep_real *mean = ex->state[id], *inv = mean + C;
    bool add;
    nep_real *dx = nep_input_grad(ex, n, 0, &add);
    nep_real *dw = nep_grad_ptr(g, n, BN_WEIGHT), *db = nep_grad_ptr(g, n, BN_BIAS);
    const bool batch_stats = mean[2 * C] != 0, acc = ex->accumulate_grads;
    const int64_t nch = R < CHUNKS ? R : CHUNKS;
    /* scratch: per-chunk sums, then the dx coefficients */
    double *part = nep_exec_scratch(ex, bn_scratch_bytes(ex, n));
    nep_real *fa = (nep_real *)(part + 2 * CHUNKS * C), *f0 = fa + C, *fp = f0 + C;
#pragma omp parallel for schedule(static) if (R * C > NEP_PAR_MIN)
    for (int64_t k = 0; k < nch; k++) {
        double *g1 = part + 2 * k * C, *g2 = g1 + C;
        for (int64_t c = 0; c < C; c++) g1[c] = g2[c] = 0;
        for (int64_t r = chunk_start(R, nch, k); r < chunk_start(R, nch, k + 1); r++) {
            const nep_real *xr = x + r * C, *dyr = dy + r * C;
#pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                g1[c] += (double)dyr[c];
                g2[c] += (double)dyr[c] * (double)(xr[c] - mean[c]);
            }
        }
    }
    for (int64_t c = 0; c < C; c++) {
        double sdy = 0, sdx = 0;
        for (int64_t k = 0; k < nch; k++) sdy += part[2 * k * C + c], sdx += part[(2 * k + 1) * C + c];
        const double istd = (double)inv[c], dot = sdx * istd; /* sum dy * xhat */
        dw[c] = (nep_real)(acc ? (double)dw[c] + dot : dot);
        db[c] = (nep_real)(acc ? (double)db[c] + sdy : sdy);
        const double a = (double)w[c] * istd;
        fa[c] = (nep_real)a;
        f0[c] = batch_stats && R ? (nep_real)(-a * sdy / (double)R) : 0;
        fp[c] = batch_stats && R ? (nep_real)(-a * istd * dot / (double)R) : 0;
    }
    if (!dx) return;
#pragma omp parallel for schedule(static) if (R * C > NEP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const nep_real *xr = x + r * C, *dyr = dy + r * C;
        nep_real *dxr = dx + r * C;
        if (add) {
#pragma omp simd
            for (int64_t c = 0; c < C; c++) dxr[c] += fa[c] * dyr[c] + f0[c] + fp[c] * (xr[c] - mean[c]);
        } else {
#pragma omp simd
            for (int64_t c = 0; c < C; c++) dxr[c] = fa[c] * dyr[c] + f0[c] + fp[c] * (xr[c] - mean[c]);
        }
    }
}

static void bn_forward(nep_exec *ex, int id) {
    if (ex->nhwc) bn_forward_nhwc(ex, id);
    else bn_forward_nchw(ex, id);
}

static void bn_backward(nep_exec *ex, int id) {
    if (ex->nhwc) bn_backward_nhwc(ex, id);
    else bn_backward_nchw(ex, id);
}

const nep_op_def nep_op_batchnorm = {
    .name = "BatchNorm2d", .min_inputs = 1, .max_inputs = 1,
    .infer = bn_infer, .flops = bn_flops, .state_reals = bn_state_reals,
    .scratch_bytes = bn_scratch_bytes,
    .forward = bn_forward, .backward = bn_backward,
};
