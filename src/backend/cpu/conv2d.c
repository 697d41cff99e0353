/* Conv2d (src/ops/conv2d.c) on oneDNN (dnnl_conv.c), in the executor's layout (NCHW, or
 * NHWC when c->nhwc):
 *   y = conv(x, W) + b (y += with y_add)   dx (+)= conv_transpose(dy, W)   dW (+)= sum_{b,o,p} dy x-patch
 *   db (+)= sum_{b,o,p} dy   (dx: += when dx_add; dW, db: += when accumulate)
 * Should oneDNN fail to create a primitive it falls back to the reference backend's loops
 * (backend/ref/conv2d.c), which the float64 build, used by the finite-difference
 * checks, always runs. */
#include <stdlib.h>

#include "backend/cpu/kernels.h"
#include "backend/ref/ref.h"

#ifdef NEP_DOUBLE
const nep_kernel nep_cpu_conv2d = {.sums_into_y = true, .forward = nep_ref_conv2d_forward,
                                   .backward = nep_ref_conv2d_backward};
#else
#include "backend/cpu/dnnl_conv.h"

/* Node n's geometry at this batch, with the rectifier its forward applies (if any). */
static nep_conv_geom conv_geom(const nep_graph *g, const nep_node *n, int64_t batch, bool nhwc,
                               bool rectify, nep_real cap, bool frozen, bool sum) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    return (nep_conv_geom){
        .batch = batch, .in_c = in->d[0], .in_h = in->d[1], .in_w = in->d[2],
        .out_c = n->shape.d[0], .out_h = n->shape.d[1], .out_w = n->shape.d[2],
        .kh = n->attrs.conv.kernel[0], .kw = n->attrs.conv.kernel[1], .sh = n->attrs.conv.stride[0],
        .sw = n->attrs.conv.stride[1], .ph = n->attrs.conv.pad[0], .pw = n->attrs.conv.pad[1],
        .groups = nep_conv_groups(n), .bias = n->attrs.conv.bias, .nhwc = nhwc,
        .rectify = rectify, .cap = (float)cap, .frozen = frozen, .sum = sum,
    };
}

/* Forward leaves x in oneDNN's layout here for backward-weights (see dnnl_conv.h). */
static int64_t conv2d_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) {
    nep_conv_geom q = conv_geom(g, n, 1, nhwc, false, 0, false, false);
    return nep_dnnl_conv_keep_per_sample(&q);
}

/* A node's oneDNN plans: the full batch and the last, smaller one of an epoch. */
typedef struct conv_plans {
    nep_conv_plan *p[2];
} conv_plans;

static void conv2d_free_cache(void *cache) {
    conv_plans *plans = cache;
    for (int i = 0; i < 2; i++) nep_dnnl_conv_plan_free(plans->p[i]);
    free(plans);
}

static size_t conv2d_cache_bytes(const void *cache) {
    const conv_plans *plans = cache;
    size_t n = 0;
    for (int i = 0; i < 2; i++) n += plans->p[i] ? nep_dnnl_conv_packed_bytes(plans->p[i]) : 0;
    return n;
}

/* The plan for this call and scratch for it; NULL to use the reference loops (oneDNN
 * could not build one, or no memory). */
static nep_conv_plan *plan_for(const nep_call *c, const nep_conv_geom *q, void **scratch) {
    conv_plans *plans = *c->cache;
    if (!plans && !(plans = *c->cache = calloc(1, sizeof *plans))) return NULL;
    int slot = plans->p[0] && nep_dnnl_conv_plan_fits(plans->p[0], q) ? 0 : 1;
    if (!plans->p[slot] || !nep_dnnl_conv_plan_fits(plans->p[slot], q)) {
        if (!plans->p[0]) slot = 0;
        nep_dnnl_conv_plan_free(plans->p[slot]);
        plans->p[slot] = NULL;
        if (nep_dnnl_conv_plan_new(q, &plans->p[slot], NULL) != NEP_OK) return NULL;
        if (slot == 1) nep_dnnl_conv_share_packed(plans->p[1], plans->p[0]); /* p[0] lives as long */
    }
    *scratch = nep_scratch_get(c->scratch, nep_dnnl_conv_scratch_bytes(plans->p[slot]));
    return *scratch ? plans->p[slot] : NULL;
}

static void conv2d_forward(const nep_call *c) {
    const nep_node *n = c->n;
    nep_real *y = c->y;
    const nep_conv_geom q = conv_geom(c->g, n, c->batch, c->nhwc, c->rectify, c->cap, c->frozen, c->y_add);
    const nep_real *x = c->x[0], *w = c->w[0];
    const nep_real *b = n->attrs.conv.bias ? c->w[1] : NULL;
    void *scratch;
    nep_conv_plan *p = plan_for(c, &q, &scratch);
    if (p) {
        nep_dnnl_conv_forward(p, scratch, x, w, b, y, c->state);
        return;
    }
    nep_ref_conv2d_forward(c);
}

static void conv2d_backward(const nep_call *c) {
    const nep_node *n = c->n;
    /* the forward's rectifier too, so that the forward's oneDNN plan serves */
    const nep_conv_geom q = conv_geom(c->g, n, c->batch, c->nhwc, c->rectify, c->cap, false, false);
    const nep_real *x = c->x[0], *w = c->w[0], *dy = c->dy;
    const bool dx_add = c->dx_add[0];
    nep_real *dx = c->dx[0], *dw = c->dw[0];
    nep_real *db = n->attrs.conv.bias ? c->dw[1] : NULL;
    void *scratch;
    nep_conv_plan *p = plan_for(c, &q, &scratch);
    if (p) {
        nep_dnnl_conv_backward(p, scratch, x, c->state, w, dy, dx, dx_add, dw, db,
                               c->accumulate);
        return;
    }
    nep_ref_conv2d_backward(c);
}

const nep_kernel nep_cpu_conv2d = {
    .sums_into_y = true, .state_reals = conv2d_state_reals, .free_cache = conv2d_free_cache,
    .cache_bytes = conv2d_cache_bytes,
    .forward = conv2d_forward, .backward = conv2d_backward,
};
#endif
