/* RotaryEmbedding (src/ops/rope.c) as transformers writes it, in double: per head,
 * y = x cos + rotate_half(x) sin with cos and sin of (t inv_freq, t inv_freq); backward
 * follows each input feature to the two outputs that read it. */
#include <stdlib.h>

#include "backend/ref/ref.h"
#include "ops/rope.h"

/* rotate_half's entry k of a head x [hd]: -x[k + half] for k < half, else x[k - half]. */
static double rotate_half(const nep_real *x, int64_t k, int64_t half) {
    return k < half ? -(double)x[k + half] : (double)x[k - half];
}

static void rope_forward(const nep_call *c) {
    const int64_t T = nep_in_shape(c->g, c->n, 0)->d[0], C = nep_in_shape(c->g, c->n, 0)->d[1];
    const int64_t hd = nep_rope_head_dim(c->g, c->n), half = hd / 2;
    double *cs = malloc(sizeof(double) * (size_t)(2 * T * half)), *sn = cs + T * half;
    nep_rope_table(&c->n->attrs.rope, T, hd, cs, sn);
    for (int64_t r = 0; r < c->batch * T; r++)
        for (int64_t k = 0; k < C; k++) {
            const int64_t t = r % T, j = k % hd % half;
            const nep_real *head = c->x[0] + r * C + k / hd * hd;
            c->y[r * C + k] = (nep_real)(head[k % hd] * cs[t * half + j] + rotate_half(head, k % hd, half) * sn[t * half + j]);
        }
    free(cs);
}

/* y[k] = x[k] cos_k + rotate_half(x)[k] sin_k, so x[m] reaches y[m] (cos_m) and, through
 * rotate_half, y[m - half] (m >= half: -sin) or y[m + half] (m < half: +sin). */
static void rope_backward(const nep_call *c) {
    if (!c->dx[0]) return;
    const int64_t T = nep_in_shape(c->g, c->n, 0)->d[0], C = nep_in_shape(c->g, c->n, 0)->d[1];
    const int64_t hd = nep_rope_head_dim(c->g, c->n), half = hd / 2;
    double *cs = malloc(sizeof(double) * (size_t)(2 * T * half)), *sn = cs + T * half;
    nep_rope_table(&c->n->attrs.rope, T, hd, cs, sn);
    for (int64_t r = 0; r < c->batch * T; r++)
        for (int64_t k = 0; k < C; k++) {
            const int64_t t = r % T, m = k % hd, j = m % half, base = r * C + k / hd * hd;
            const int64_t other = m < half ? m + half : m - half;
            const double via = m < half ? c->dy[base + other] : -(double)c->dy[base + other];
            ref_put(&c->dx[0][r * C + k], c->dy[r * C + k] * cs[t * half + j] + via * sn[t * half + j], c->dx_add[0]);
        }
    free(cs);
}

const nep_kernel nep_ref_rope = {.forward = rope_forward, .backward = rope_backward};
