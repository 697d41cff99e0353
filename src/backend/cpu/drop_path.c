/* StochasticDepth (src/ops/drop_path.c), torchvision.ops.stochastic_depth in "row" mode:
 * in training each sample is kept with probability 1 - p and scaled by 1 / (1 - p), or
 * zeroed; in evaluation (or p = 0) the identity.
 *   x [B, ...]   y [B, ...]   scale (state) [B]: 1 / (1 - p) or 0, one per sample
 * One draw of the call's generator per sample, in sample order: a seed reproduces the
 * masks whatever the layout, thread count or backend (a sample's values are together in
 * every layout). */
#include <string.h>

#include "nepenthe/rng.h"
#include "backend/cpu/kernels.h"

static bool drop_path_active(const nep_call *c) { return c->training && c->n->attrs.drop_path.p > 0; }

static void drop_path_forward(const nep_call *c) {
    const int64_t len = nep_call_numel(c), per = len / c->batch;
    if (!drop_path_active(c)) {
        memcpy(c->y, c->x[0], sizeof(nep_real) * (size_t)len);
        return;
    }
    const double p = c->n->attrs.drop_path.p;
    /* p = 1 keeps nothing (a uniform draw in [0, 1) is never >= 1): no 1 / 0 */
    const nep_real keep = p < 1 ? (nep_real)(1 / (1 - p)) : 0;
    nep_real *scale = c->state;
    for (int64_t b = 0; b < c->batch; b++) scale[b] = nep_rng_uniform(c->rng) >= p ? keep : 0;
#pragma omp parallel for simd if (parallel: len > NEP_PAR_MIN)
    for (int64_t i = 0; i < len; i++) c->y[i] = c->x[0][i] * scale[i / per];
}

static void drop_path_backward(const nep_call *c) {
    const int64_t len = nep_call_numel(c), per = len / c->batch;
    const nep_real *dy = c->dy, *scale = c->state;
    nep_real *dx = c->dx[0];
    if (!dx) return;
    const bool active = drop_path_active(c), add = c->dx_add[0];
#pragma omp parallel for simd if (parallel: len > NEP_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        const nep_real g = active ? dy[i] * scale[i / per] : dy[i]; /* the forward's mask */
        dx[i] = add ? dx[i] + g : g;
    }
}

/* One scale factor per sample. */
static int64_t drop_path_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) { return 1; }

const nep_kernel nep_cpu_drop_path = {
    .state_reals = drop_path_state_reals, .forward = drop_path_forward, .backward = drop_path_backward,
};
