/* Pooling (src/ops/pool.c) over NCHW planes. MaxPool2d: the first maximum in row-major
 * window order (padding counts as -inf; a NaN wins, the window's last), its index in
 * the plane kept as int32 state; dx[argmax] += dy. AvgPool2d (count_include_pad): the
 * window's in-image sum over its size clipped to the padded image; dx += dy / that.
 * AdaptiveAvgPool2d(1): the plane's mean; dx = dy / (H W). */
#include <stdint.h>
#include <string.h>

#include "backend/ref/ref.h"
#include "ops/pool.h"

/* Output (oh, ow)'s window: rows [h0, h1), columns [w0, w1) inside the image, and the
 * count_include_pad divisor. */
static int64_t window(const nep_pool_geom *q, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                      int64_t *w0, int64_t *w1) {
    const int64_t hs = oh * q->sh - q->ph, ws = ow * q->sw - q->pw;
    const int64_t hp = hs + q->kh < q->H + q->ph ? hs + q->kh : q->H + q->ph;
    const int64_t wp = ws + q->kw < q->W + q->pw ? ws + q->kw : q->W + q->pw;
    *h0 = hs > 0 ? hs : 0, *w0 = ws > 0 ? ws : 0;
    *h1 = hs + q->kh < q->H ? hs + q->kh : q->H;
    *w1 = ws + q->kw < q->W ? ws + q->kw : q->W;
    return (hp - hs) * (wp - ws);
}

static void pool_forward(const nep_call *c, bool max) {
    const nep_pool_geom q = nep_pool_geom_of(c->g, c->n);
    const int64_t HW = q.H * q.W, OHW = q.OH * q.OW;
    int32_t *arg = c->state;
    for (int64_t p = 0; p < c->batch * q.C; p++)
        for (int64_t oh = 0; oh < q.OH; oh++)
            for (int64_t ow = 0; ow < q.OW; ow++) {
                int64_t h0, h1, w0, w1, best_i = -1;
                const int64_t div = window(&q, oh, ow, &h0, &h1, &w0, &w1);
                double best = -INFINITY, sum = 0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) {
                        const double v = c->x[0][p * HW + ih * q.W + iw];
                        sum += v;
                        if (best_i < 0 || v > best || isnan(v)) best = v, best_i = ih * q.W + iw;
                    }
                c->y[p * OHW + oh * q.OW + ow] = (nep_real)(max ? best : sum / (double)div);
                if (max) arg[p * OHW + oh * q.OW + ow] = (int32_t)best_i;
            }
}

/* One input plane of doubles (reserved by the executor, so asking cannot fail). */
static size_t plane_bytes(const nep_graph *g, const nep_node *n, bool nhwc) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    return sizeof(double) * (size_t)(in->d[1] * in->d[2]);
}

static void pool_backward(const nep_call *c, bool max) {
    if (!c->dx[0]) return;
    const nep_pool_geom q = nep_pool_geom_of(c->g, c->n);
    const int64_t HW = q.H * q.W, OHW = q.OH * q.OW, planes = c->batch * q.C;
    const int32_t *arg = c->state;
    /* each input element's sum over the windows it is in, in double, then stored once */
    double *acc = nep_scratch_get(c->scratch, plane_bytes(c->g, c->n, false));
    for (int64_t p = 0; p < planes; p++) {
        memset(acc, 0, sizeof *acc * (size_t)HW);
        for (int64_t oh = 0; oh < q.OH; oh++)
            for (int64_t ow = 0; ow < q.OW; ow++) {
                const double d = c->dy[p * OHW + oh * q.OW + ow];
                int64_t h0, h1, w0, w1;
                const int64_t div = window(&q, oh, ow, &h0, &h1, &w0, &w1);
                if (max) {
                    acc[arg[p * OHW + oh * q.OW + ow]] += d;
                    continue;
                }
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) acc[ih * q.W + iw] += d / (double)div;
            }
        for (int64_t k = 0; k < HW; k++) ref_put(&c->dx[0][p * HW + k], acc[k], c->dx_add[0]);
    }
}

static void maxpool_forward(const nep_call *c) { pool_forward(c, true); }
static void maxpool_backward(const nep_call *c) { pool_backward(c, true); }
static void avgpool_forward(const nep_call *c) { pool_forward(c, false); }
static void avgpool_backward(const nep_call *c) { pool_backward(c, false); }
static int64_t maxpool_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) {
    return nep_shape_numel(&n->shape);
}

static void global_forward(const nep_call *c) {
    int64_t C, HW;
    ref_chan_dims(c, &C, &HW);
    for (int64_t p = 0; p < c->batch * C; p++) {
        double s = 0;
        for (int64_t k = 0; k < HW; k++) s += c->x[0][p * HW + k];
        c->y[p] = (nep_real)(s / (double)HW);
    }
}
static void global_backward(const nep_call *c) {
    int64_t C, HW;
    ref_chan_dims(c, &C, &HW);
    for (int64_t p = 0; c->dx[0] && p < c->batch * C; p++)
        for (int64_t k = 0; k < HW; k++)
            ref_put(&c->dx[0][p * HW + k], (double)c->dy[p] / (double)HW, c->dx_add[0]);
}

const nep_kernel nep_ref_maxpool = {.state_reals = maxpool_state_reals, .scratch_bytes = plane_bytes,
                                    .forward = maxpool_forward, .backward = maxpool_backward};
const nep_kernel nep_ref_avgpool = {.scratch_bytes = plane_bytes, .forward = avgpool_forward,
                                    .backward = avgpool_backward};
const nep_kernel nep_ref_global_avgpool = {.forward = global_forward, .backward = global_backward};
