/* LayerNorm and RMSNorm (src/ops/layernorm.c): each of the batch x positions rows of C
 * features normalized by its mean and biased variance (RMSNorm: by its root mean square,
 * the mean taken as 0), then scaled (and, LayerNorm, shifted); in double. */
#include "backend/ref/ref.h"

static void rows(const nep_call *c, int64_t *R, int64_t *C) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    *C = nep_shape_features(s);
    *R = c->batch * nep_shape_positions(s);
}

/* xhat of row r into h[0..C). */
static void normalized(const nep_call *c, int64_t r, int64_t C, double *h, double *rstd) {
    const nep_real *x = c->x[0] + r * C;
    double m = 0, v = 0;
    for (int64_t j = 0; c->n->op == NEP_OP_LAYERNORM && j < C; j++) m += x[j];
    m /= (double)C;
    for (int64_t j = 0; j < C; j++) v += ((double)x[j] - m) * ((double)x[j] - m);
    *rstd = 1 / sqrt(v / (double)C + nep_layernorm_eps(&c->n->attrs.layernorm));
    for (int64_t j = 0; j < C; j++) h[j] = ((double)x[j] - m) * *rstd;
}

static void layernorm_forward(const nep_call *c) {
    int64_t R, C;
    rows(c, &R, &C);
    double h[C], rstd;
    for (int64_t r = 0; r < R; r++) {
        normalized(c, r, C, h, &rstd);
        for (int64_t j = 0; j < C; j++) c->y[r * C + j] = (nep_real)(h[j] * c->w[0][j] + (c->n->n_params > 1 ? c->w[1][j] : 0));
    }
}

static void layernorm_backward(const nep_call *c) {
    int64_t R, C;
    rows(c, &R, &C);
    double h[C], sw[C], sb[C], rstd;
    for (int64_t j = 0; j < C; j++) sw[j] = sb[j] = 0;
    for (int64_t r = 0; r < R; r++) {
        normalized(c, r, C, h, &rstd);
        const nep_real *dy = c->dy + r * C;
        double mg = 0, mgh = 0;
        for (int64_t j = 0; j < C; j++) {
            mg += (double)dy[j] * c->w[0][j];
            mgh += (double)dy[j] * c->w[0][j] * h[j];
            sw[j] += (double)dy[j] * h[j];
            sb[j] += dy[j];
        }
        mg = c->n->op == NEP_OP_LAYERNORM ? mg / (double)C : 0, mgh /= (double)C;
        for (int64_t j = 0; c->dx[0] && j < C; j++)
            ref_put(&c->dx[0][r * C + j], rstd * ((double)dy[j] * c->w[0][j] - mg - h[j] * mgh), c->dx_add[0]);
    }
    for (int64_t j = 0; j < C; j++) {
        ref_put(&c->dw[0][j], sw[j], c->accumulate);
        if (c->n->n_params > 1) ref_put(&c->dw[1][j], sb[j], c->accumulate);
    }
}

const nep_kernel nep_ref_layernorm = {.forward = layernorm_forward, .backward = layernorm_backward};
const nep_kernel nep_ref_rmsnorm = {.forward = layernorm_forward, .backward = layernorm_backward};
