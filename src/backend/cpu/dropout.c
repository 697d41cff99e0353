/* Dropout, as torch.nn.Dropout(p): in training, each element is kept with probability
 * 1-p and scaled by 1/(1-p); in evaluation it is the identity.
 *   x [B, ...]   y [B, ...]   keep mask (state) [B, ...] as scale factors
 * The mask is the counter-based stream (nep_rng_stream) of one key drawn from the call's
 * generator, element i of the call in NCHW order keeping when draw i does, so a seed
 * reproduces it whatever the thread count, layout or backend. */
#include "nepenthe/rng.h"
#include "backend/cpu/kernels.h"

static bool dropout_active(const nep_call *c) {
    return c->training && c->n->attrs.dropout.p > 0;
}

static void dropout_forward(const nep_call *c) {
    const nep_node *n = c->n;
    const int64_t len = nep_call_numel(c);
    const nep_real *x = c->x[0];
    nep_real *y = c->y;
    if (!dropout_active(c)) {
        for (int64_t i = 0; i < len; i++) y[i] = x[i];
        return;
    }
    nep_real *scale = c->state;
    const nep_real keep = (nep_real)(1 / (1 - n->attrs.dropout.p));
    const uint64_t key = nep_rng_u64(c->rng), keep_from = nep_rng_keep_from(n->attrs.dropout.p);
    /* An NHWC image's element (b, ch, k) lives at plane_start + k * plane_step but is
     * NCHW element (b * C + ch) * inner + k. */
    const nep_shape *s = &n->shape;
    const bool moved = nep_layout_moves(c->nhwc, s);
    const int64_t C = moved ? s->d[0] : 1, inner = len / (c->batch * C), step = nep_plane_step(moved, C);
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < c->batch * C; plane++) {
        const int64_t at = nep_plane_start(moved, plane / C, plane % C, C, inner);
#pragma omp simd
        for (int64_t k = 0; k < inner; k++) {
            const int64_t i = at + k * step;
            scale[i] = nep_rng_stream_keeps(key, (uint64_t)(plane * inner + k), keep_from) ? keep : 0;
            y[i] = x[i] * scale[i];
        }
    }
}

static void dropout_backward(const nep_call *c) {
    const int64_t len = nep_call_numel(c);
    const nep_real *dy = c->dy, *scale = c->state;
    const bool add = c->dx_add[0];
    nep_real *dx = c->dx[0];
    if (!dx) return;
    const bool active = dropout_active(c);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < len; i++) {
        const nep_real g = active ? dy[i] * scale[i] : dy[i];
        dx[i] = add ? dx[i] + g : g;
    }
}

/* One scale factor per element. */
static int64_t dropout_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) {
    return nep_shape_numel(&n->shape);
}

const nep_kernel nep_cpu_dropout = {
    .state_reals = dropout_state_reals, .forward = dropout_forward, .backward = dropout_backward,
};
