/* LayerNorm and RMSNorm (src/ops/layernorm.c) over the last axis, R = batch x positions
 * rows of C:
 *   y = xhat w + b, xhat = (x - mean) rstd, rstd = 1 / sqrt(var + eps)
 *   dx (+)= rstd (g - mean(g) - xhat mean(g xhat)), g = dy w;  dw = sum dy xhat;  db = sum dy
 * RMSNorm is the same with the mean taken as 0 (var is then the mean square; no mean(g)
 * term) and no bias.
 * Each row's sums in double; rows in parallel, the parameter sums over rows in row order
 * (into scratch) so that runs reproduce. Forward keeps each row's mean and rstd in the
 * call's state [R][2] (as PyTorch saves them), for backward. */
#include <math.h>

#include "backend/cpu/kernels.h"

static void row_stats(const nep_real *x, int64_t C, bool centered, double eps, double *mean, double *rstd) {
    double s = 0, q = 0;
    for (int64_t j = 0; centered && j < C; j++) s += x[j];
    const double m = s / (double)C;
    for (int64_t j = 0; j < C; j++) q += ((double)x[j] - m) * ((double)x[j] - m);
    *mean = m;
    *rstd = 1 / sqrt(q / (double)C + eps);
}

static void dims(const nep_call *c, int64_t *R, int64_t *C) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    *C = nep_shape_features(s);
    *R = c->batch * nep_shape_positions(s);
}

static int64_t layernorm_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) {
    return 2 * nep_shape_positions(nep_in_shape(g, n, 0));
}

static void layernorm_forward(const nep_call *c) {
    int64_t R, C;
    dims(c, &R, &C);
    const double eps = nep_layernorm_eps(&c->n->attrs.layernorm);
    const bool centered = c->n->op == NEP_OP_LAYERNORM;
    const nep_real *x = c->x[0], *w = c->w[0], *b = centered ? c->w[1] : NULL;
    nep_real *stats = c->state;
#pragma omp parallel for if (R * C > NEP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        double mean, rstd;
        row_stats(x + r * C, C, centered, eps, &mean, &rstd);
        stats[2 * r] = (nep_real)mean, stats[2 * r + 1] = (nep_real)rstd;
        for (int64_t j = 0; j < C; j++)
            c->y[r * C + j] = (nep_real)(((double)x[r * C + j] - mean) * rstd * w[j] + (b ? b[j] : 0));
    }
}

static size_t layernorm_scratch(const nep_graph *g, const nep_node *n, bool nhwc) {
    return 2 * sizeof(double) * (size_t)nep_shape_features(nep_in_shape(g, n, 0));
}

static void layernorm_backward(const nep_call *c) {
    int64_t R, C;
    dims(c, &R, &C);
    const bool centered = c->n->op == NEP_OP_LAYERNORM;
    const nep_real *x = c->x[0], *w = c->w[0], *dy = c->dy, *stats = c->state;
    nep_real *dx = c->dx[0];
    const bool add = c->dx_add[0];
#pragma omp parallel for if (dx && R * C > NEP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        if (!dx) continue;
        const double mean = stats[2 * r], rstd = stats[2 * r + 1];
        double mg = 0, mgx = 0;
        const nep_real *xr = x + r * C, *gr = dy + r * C;
        for (int64_t j = 0; j < C; j++) {
            const double g = (double)gr[j] * w[j];
            mg += g;
            mgx += g * ((double)xr[j] - mean) * rstd;
        }
        mg = centered ? mg / (double)C : 0, mgx /= (double)C;
        for (int64_t j = 0; j < C; j++) {
            const double xhat = ((double)xr[j] - mean) * rstd;
            const double v = rstd * ((double)gr[j] * w[j] - mg - xhat * mgx);
            dx[r * C + j] = (nep_real)(add ? dx[r * C + j] + v : v);
        }
    }
    double *sw = nep_scratch_get(c->scratch, 2 * sizeof(double) * (size_t)C), *sb = sw + C;
    for (int64_t j = 0; j < C; j++) sw[j] = sb[j] = 0;
    for (int64_t r = 0; r < R; r++) {
        const double mean = stats[2 * r], rstd = stats[2 * r + 1];
        for (int64_t j = 0; j < C; j++) {
            sw[j] += (double)dy[r * C + j] * ((double)x[r * C + j] - mean) * rstd;
            sb[j] += dy[r * C + j];
        }
    }
    for (int64_t j = 0; j < C; j++) {
        c->dw[0][j] = (nep_real)(c->accumulate ? c->dw[0][j] + sw[j] : sw[j]);
        if (centered) c->dw[1][j] = (nep_real)(c->accumulate ? c->dw[1][j] + sb[j] : sb[j]);
    }
}

const nep_kernel nep_cpu_layernorm = {.state_reals = layernorm_state_reals, .scratch_bytes = layernorm_scratch,
                                      .forward = layernorm_forward, .backward = layernorm_backward};
const nep_kernel nep_cpu_rmsnorm = {.state_reals = layernorm_state_reals, .scratch_bytes = layernorm_scratch,
                                    .forward = layernorm_forward, .backward = layernorm_backward};
