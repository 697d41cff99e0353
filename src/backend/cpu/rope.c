/* RotaryEmbedding (src/ops/rope.c) on R = batch x T rows of heads x hd, half = hd / 2:
 *   y[j] = x[j] c - x[j + half] s,   y[j + half] = x[j + half] c + x[j] s
 *   dx[j] = dy[j] c + dy[j + half] s,   dx[j + half] = dy[j + half] c - dy[j] s
 * with c, s the cos and sin of token t's angle for frequency j, tabulated per call in
 * double (scratch [2][T][half]); rows in parallel. In generation (nep_call.pos) row b's
 * token t is at position pos[b] + t, its angles computed per row. */
#include "backend/cpu/kernels.h"
#include "ops/rope.h"

static size_t rope_scratch(const nep_graph *g, const nep_node *n, bool nhwc) {
    return 2 * sizeof(double) * (size_t)(nep_in_shape(g, n, 0)->d[0] * (nep_rope_head_dim(g, n) / 2));
}

/* Rotates rows of src into dst by sign * the angles (sign -1: backward), adding to dst
 * when add. */
static void rotate(const nep_call *c, const nep_real *src, nep_real *dst, double sign, bool add) {
    const int64_t T = nep_in_shape(c->g, c->n, 0)->d[0], C = nep_in_shape(c->g, c->n, 0)->d[1];
    const int64_t hd = nep_rope_head_dim(c->g, c->n), half = hd / 2, heads = C / hd;
    double *cs = nep_scratch_get(c->scratch, rope_scratch(c->g, c->n, c->nhwc)), *sn = cs + T * half;
    double inv_freq[half];
    if (c->pos) nep_rope_inv_freq(&c->n->attrs.rope, hd, inv_freq); /* generation: each row's own positions */
    else nep_rope_table(&c->n->attrs.rope, T, hd, cs, sn);
#pragma omp parallel for if (c->batch * T * C > NEP_PAR_MIN)
    for (int64_t r = 0; r < c->batch * T; r++) {
        double at_c[c->pos ? half : 1], at_s[c->pos ? half : 1];
        const double *ct = cs + (r % T) * half, *st = sn + (r % T) * half;
        if (c->pos) {
            const double p = (double)(c->pos[r / T] + r % T);
            for (int64_t j = 0; j < half; j++) at_c[j] = cos(p * inv_freq[j]), at_s[j] = sin(p * inv_freq[j]);
            ct = at_c, st = at_s;
        }
        for (int64_t h = 0; h < heads; h++) {
            const nep_real *x = src + r * C + h * hd;
            nep_real *y = dst + r * C + h * hd;
            for (int64_t j = 0; j < half; j++) {
                const double a = x[j], b = x[j + half], s = sign * st[j];
                const double y0 = a * ct[j] - b * s, y1 = b * ct[j] + a * s;
                y[j] = (nep_real)(add ? y[j] + y0 : y0);
                y[j + half] = (nep_real)(add ? y[j + half] + y1 : y1);
            }
        }
    }
}

static void rope_forward(const nep_call *c) { rotate(c, c->x[0], c->y, 1, false); }

static void rope_backward(const nep_call *c) {
    if (c->dx[0]) rotate(c, c->dy, c->dx[0], -1, c->dx_add[0]);
}

const nep_kernel nep_cpu_rope = {.scratch_bytes = rope_scratch, .forward = rope_forward, .backward = rope_backward};
