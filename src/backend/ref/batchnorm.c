/* BatchNorm2d (src/ops/batchnorm.c), two-pass statistics in double. Training: per
 * channel over the n = B*H*W values, mean, biased variance var, inv = 1 / sqrt(var + eps),
 * y = (x - mean) inv w + b, and the running statistics move as PyTorch moves them
 * (running_var with the unbiased n / (n - 1) var; n = 1 counts as n - 1 = 1).
 * Evaluation: y = x scale + shift with nep_bn_eval_affine. State as the CPU kernel's:
 * mean [C], inv [C], mode [1] (1 = batch statistics), so backward uses what forward did:
 *   db = sum dy,  dw = sum dy xhat,  xhat = (x - mean) inv
 *   training: dx = w inv (dy - sum dy / n - xhat sum (dy xhat) / n);  eval: dx = w inv dy */
#include "backend/ref/ref.h"
#include "ops/batchnorm.h"

static int64_t bn_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) {
    return 2 * nep_in_shape(g, n, 0)->d[0] + 1;
}

static void bn_forward(const nep_call *c) {
    int64_t C, HW;
    ref_chan_dims(c, &C, &HW);
    const double eps = nep_bn_eps(&c->n->attrs.batchnorm), mom = nep_bn_momentum(&c->n->attrs.batchnorm);
    const int64_t n = c->batch * HW;
    nep_real *mean = c->state, *inv = mean + C, *rmean = c->w[BN_RMEAN], *rvar = c->w[BN_RVAR];
    mean[2 * C] = c->training ? 1 : 0;
    for (int64_t ch = 0; ch < C; ch++) {
        if (n == 0) { /* an empty batch: nothing to normalize, statistics untouched */
            mean[ch] = inv[ch] = 0;
            continue;
        }
        double m, scale, shift;
        if (c->training) {
            double s = 0, ss = 0;
            for (int64_t b = 0; b < c->batch; b++)
                for (int64_t k = 0; k < HW; k++) s += c->x[0][(b * C + ch) * HW + k];
            m = s / (double)n;
            for (int64_t b = 0; b < c->batch; b++)
                for (int64_t k = 0; k < HW; k++) {
                    const double d = c->x[0][(b * C + ch) * HW + k] - m;
                    ss += d * d;
                }
            rmean[ch] = (nep_real)((1 - mom) * rmean[ch] + mom * m);
            rvar[ch] = (nep_real)((1 - mom) * rvar[ch] + mom * ss / (double)(n > 1 ? n - 1 : 1));
            const double istd = nep_bn_inv_std(ss / (double)n, eps);
            mean[ch] = (nep_real)m, inv[ch] = (nep_real)istd;
            scale = c->w[BN_WEIGHT][ch] * istd;
            shift = c->w[BN_BIAS][ch] - m * scale;
        } else {
            nep_bn_eval_affine(c->w[BN_WEIGHT][ch], c->w[BN_BIAS][ch], rmean[ch], rvar[ch], eps,
                               &scale, &shift);
            mean[ch] = rmean[ch], inv[ch] = (nep_real)nep_bn_inv_std(rvar[ch], eps);
        }
        for (int64_t b = 0; b < c->batch; b++)
            for (int64_t k = 0; k < HW; k++) {
                const int64_t i = (b * C + ch) * HW + k;
                c->y[i] = (nep_real)ref_rectified(c, c->x[0][i] * scale + shift);
            }
    }
}

static void bn_backward(const nep_call *c) {
    int64_t C, HW;
    ref_chan_dims(c, &C, &HW);
    const int64_t n = c->batch * HW;
    const nep_real *mean = c->state, *inv = mean + C;
    const bool batch_stats = mean[2 * C] != 0 && n > 0;
    for (int64_t ch = 0; ch < C; ch++) {
        double sdy = 0, sdyx = 0; /* sum dy, sum dy xhat */
        for (int64_t b = 0; b < c->batch; b++)
            for (int64_t k = 0; k < HW; k++) {
                const int64_t i = (b * C + ch) * HW + k;
                sdy += c->dy[i];
                sdyx += (double)c->dy[i] * ((double)c->x[0][i] - mean[ch]) * inv[ch];
            }
        ref_put(&c->dw[BN_WEIGHT][ch], sdyx, c->accumulate);
        ref_put(&c->dw[BN_BIAS][ch], sdy, c->accumulate);
        if (!c->dx[0]) continue;
        const double a = (double)c->w[BN_WEIGHT][ch] * inv[ch];
        for (int64_t b = 0; b < c->batch; b++)
            for (int64_t k = 0; k < HW; k++) {
                const int64_t i = (b * C + ch) * HW + k;
                const double xhat = ((double)c->x[0][i] - mean[ch]) * inv[ch];
                const double g = batch_stats ? a * (c->dy[i] - sdy / (double)n - xhat * sdyx / (double)n)
                                             : a * c->dy[i];
                ref_put(&c->dx[0][i], g, c->dx_add[0]);
            }
    }
}

const nep_kernel nep_ref_batchnorm = {.state_reals = bn_state_reals, .forward = bn_forward,
                                      .backward = bn_backward};
