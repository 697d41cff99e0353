/* Pooling, as torch.nn.MaxPool2d, AvgPool2d (count_include_pad=True, ceil_mode=False,
 * dilation 1) and AdaptiveAvgPool2d(1).
 *   MaxPool2d, AvgPool2d: x [B, C, H, W] -> y [B, C, OH, OW],
 *     OH = (H + 2 pad[0] - kernel[0]) / stride[0] + 1 (floor), OW likewise;
 *     attrs.pool: kernel (> 0), stride (0 selects the kernel size, PyTorch's default),
 *     pad (0 <= pad <= kernel / 2, as PyTorch requires).
 *   MaxPool2d: y = max over the window, padding counting as -inf; the argmax of each
 *     output (flat index into its H x W input plane) is kept in state as int32 [C, OH, OW]
 *     per sample. Ties go to the first element in row-major window order, and a NaN wins
 *     (the last NaN of the window), as PyTorch's CPU kernel. dx[argmax] += dy (dx zeroed
 *     first unless another consumer wrote it, see nep_input_grad).
 *   AvgPool2d: y = sum over the window's in-image elements / (the window's size clipped to
 *     the padded image, which with ceil_mode=False is always kernel[0] * kernel[1]);
 *     dx += dy / that divisor over the window.
 *   AdaptiveAvgPool2d(1) ("global average pooling"): x [B, C, H, W] -> y [B, C, 1, 1],
 *     y = mean over H x W;  dx += dy / (H W).
 * Sums are in double. Work is spread over the B*C planes with OpenMP; each plane is
 * written by one thread, so results do not depend on the thread count. A plane is
 * contiguous in NCHW and strided by C in NHWC (c->nhwc); argmaxes index positions
 * within the plane either way. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "ops/pool.h"

_Static_assert(sizeof(int32_t) <= sizeof(nep_real), "argmax indices live in nep_real state");

/* The geometry and the layout of one call. */
static nep_pool_geom exec_geom(const nep_call *c) {
    nep_pool_geom q = nep_pool_geom_of(c->g, c->n);
    q.step = nep_plane_step(c->nhwc, q.C);
    return q;
}

/* Plane p = b * C + c's start in an [B, C, hw] tensor. */
static int64_t plane(const nep_call *c, int64_t p, int64_t C, int64_t hw) {
    return nep_plane_start(c->nhwc, p / C, p % C, C, hw);
}

static int64_t maxpool_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) {
    return nep_shape_numel(&n->shape);
}

/* Rows [*h0, *h1) and columns [*w0, *w1) of output (oh, ow)'s window inside the image. */
static void window(const nep_pool_geom *q, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                   int64_t *w0, int64_t *w1) {
    int64_t hs = oh * q->sh - q->ph, ws = ow * q->sw - q->pw;
    *h1 = hs + q->kh < q->H ? hs + q->kh : q->H;
    *w1 = ws + q->kw < q->W ? ws + q->kw : q->W;
    *h0 = hs > 0 ? hs : 0;
    *w0 = ws > 0 ? ws : 0;
}

/* Output (oh, ow) of one plane, any window (the image border). */
static void max_window(const nep_pool_geom *q, const nep_real *xp, int64_t oh, int64_t ow,
                       nep_real *y, int32_t *arg) {
    int64_t h0, h1, w0, w1;
    window(q, oh, ow, &h0, &h1, &w0, &w1);
    int64_t best_i = h0 * q->W + w0;
    nep_real best = -INFINITY;
    for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t iw = w0; iw < w1; iw++) {
            const nep_real v = xp[(ih * q->W + iw) * q->step];
            if (v > best || isnan(v)) {
                best = v;
                best_i = ih * q->W + iw;
            }
        }
    *y = best;
    *arg = (int32_t)best_i;
}

/* One plane. Columns whose windows lie inside the image horizontally are done a whole
 * output row at a time, window element by window element (row-major, so the first of
 * equal maxima still wins), with branch-free selects the compiler can vectorize. */
static void max_plane(const nep_pool_geom *q, const nep_real *restrict xp, nep_real *restrict yp,
                      int32_t *restrict ap) {
    const int64_t sw = q->sw, W = q->W, st = q->step;
    /* interior columns [lo, hi): ow * sw - pw >= 0 and ow * sw - pw + kw <= W */
    int64_t lo = (q->pw + sw - 1) / sw;
    int64_t hi = W + q->pw - q->kw >= 0 ? (W + q->pw - q->kw) / sw + 1 : 0;
    if (hi > q->OW) hi = q->OW;
    if (lo > hi) lo = hi;
    for (int64_t oh = 0; oh < q->OH; oh++) {
        nep_real *yr = yp + oh * q->OW * st;
        int32_t *ar = ap + oh * q->OW;
        for (int64_t ow = 0; ow < lo; ow++) max_window(q, xp, oh, ow, yr + ow * st, ar + ow);
        for (int64_t ow = hi; ow < q->OW; ow++) max_window(q, xp, oh, ow, yr + ow * st, ar + ow);
        int64_t h0, h1, w0, w1;
        window(q, oh, lo, &h0, &h1, &w0, &w1);
        for (int64_t ow = lo; ow < hi; ow++) {
            yr[ow * st] = -INFINITY;
            ar[ow] = (int32_t)(h0 * W + ow * sw - q->pw);
        }
        for (int64_t ih = h0; ih < h1; ih++)
            for (int64_t kw = 0; kw < q->kw; kw++) {
                const int64_t off = ih * W + kw - q->pw; /* input index of ow = 0's element */
                for (int64_t ow = lo; ow < hi; ow++) {
                    const nep_real v = xp[(off + ow * sw) * st];
                    const bool take = (v > yr[ow * st]) | (v != v);
                    yr[ow * st] = take ? v : yr[ow * st];
                    ar[ow] = take ? (int32_t)(off + ow * sw) : ar[ow];
                }
            }
    }
}

static void maxpool_forward(const nep_call *c) {
    const nep_pool_geom q = exec_geom(c);
    const int64_t planes = c->batch * q.C, in_sz = q.H * q.W, out_sz = q.OH * q.OW;
    const nep_real *x = c->x[0];
    nep_real *y = c->y;
    int32_t *arg = c->state;
#pragma omp parallel for schedule(static) if (planes * in_sz > NEP_PAR_MIN)
    for (int64_t p = 0; p < planes; p++)
        max_plane(&q, x + plane(c, p, q.C, in_sz), y + plane(c, p, q.C, out_sz), arg + p * out_sz);
}

static void maxpool_backward(const nep_call *c) {
    const bool add = c->dx_add[0];
    nep_real *dx = c->dx[0];
    if (!dx) return;
    const nep_pool_geom q = exec_geom(c);
    const int64_t planes = c->batch * q.C, in_sz = q.H * q.W, out_sz = q.OH * q.OW;
    const nep_real *dy = c->dy;
    const int32_t *arg = c->state;
    if (!add) memset(dx, 0, sizeof(nep_real) * (size_t)(planes * in_sz)); /* windows scatter */
#pragma omp parallel for schedule(static) if (planes * in_sz > NEP_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        nep_real *dxp = dx + plane(c, p, q.C, in_sz);
        const nep_real *dyp = dy + plane(c, p, q.C, out_sz);
        for (int64_t o = 0; o < out_sz; o++) dxp[arg[p * out_sz + o] * q.step] += dyp[o * q.step];
    }
}

/* count_include_pad=True: the window clipped to the padded image, before clipping to
 * the image itself. */
static int64_t avg_divisor(const nep_pool_geom *q, int64_t oh, int64_t ow) {
    int64_t hs = oh * q->sh - q->ph, ws = ow * q->sw - q->pw;
    int64_t he = hs + q->kh < q->H + q->ph ? hs + q->kh : q->H + q->ph;
    int64_t we = ws + q->kw < q->W + q->pw ? ws + q->kw : q->W + q->pw;
    return (he - hs) * (we - ws);
}

static void avgpool_forward(const nep_call *c) {
    const nep_pool_geom q = exec_geom(c);
    const int64_t planes = c->batch * q.C, in_sz = q.H * q.W, out_sz = q.OH * q.OW;
    const nep_real *x = c->x[0];
    nep_real *y = c->y;
#pragma omp parallel for schedule(static) if (planes * in_sz > NEP_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const nep_real *xp = x + plane(c, p, q.C, in_sz);
        nep_real *yp = y + plane(c, p, q.C, out_sz);
        for (int64_t oh = 0; oh < q.OH; oh++)
            for (int64_t ow = 0; ow < q.OW; ow++) {
                int64_t h0, h1, w0, w1;
                window(&q, oh, ow, &h0, &h1, &w0, &w1);
                double s = 0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) s += (double)xp[(ih * q.W + iw) * q.step];
                yp[(oh * q.OW + ow) * q.step] = (nep_real)(s / (double)avg_divisor(&q, oh, ow));
            }
    }
}

static void avgpool_backward(const nep_call *c) {
    const bool add = c->dx_add[0];
    nep_real *dx = c->dx[0];
    if (!dx) return;
    const nep_pool_geom q = exec_geom(c);
    const int64_t planes = c->batch * q.C, in_sz = q.H * q.W, out_sz = q.OH * q.OW;
    const nep_real *dy = c->dy;
    if (!add) memset(dx, 0, sizeof(nep_real) * (size_t)(planes * in_sz)); /* windows overlap */
#pragma omp parallel for schedule(static) if (planes * in_sz > NEP_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        nep_real *dxp = dx + plane(c, p, q.C, in_sz);
        const nep_real *dyp = dy + plane(c, p, q.C, out_sz);
        for (int64_t oh = 0; oh < q.OH; oh++)
            for (int64_t ow = 0; ow < q.OW; ow++) {
                int64_t h0, h1, w0, w1;
                window(&q, oh, ow, &h0, &h1, &w0, &w1);
                const nep_real d = (nep_real)((double)dyp[(oh * q.OW + ow) * q.step] /
                                              (double)avg_divisor(&q, oh, ow));
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) dxp[(ih * q.W + iw) * q.step] += d;
            }
    }
}

static void global_forward(const nep_call *c) {
    const nep_shape *in = nep_in_shape(c->g, c->n, 0);
    const int64_t C = in->d[0], planes = c->batch * C, hw = in->d[1] * in->d[2];
    const int64_t step = nep_plane_step(c->nhwc, C);
    const nep_real *x = c->x[0];
    nep_real *y = c->y; /* [B, C] in either layout */
#pragma omp parallel for schedule(static) if (planes * hw > NEP_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const nep_real *xp = x + plane(c, p, C, hw);
        double s = 0;
        for (int64_t k = 0; k < hw; k++) s += (double)xp[k * step];
        y[p] = (nep_real)(s / (double)hw);
    }
}

static void global_backward(const nep_call *c) {
    const bool add = c->dx_add[0];
    nep_real *dx = c->dx[0];
    if (!dx) return;
    const nep_shape *in = nep_in_shape(c->g, c->n, 0);
    const int64_t C = in->d[0], planes = c->batch * C, hw = in->d[1] * in->d[2];
    const int64_t step = nep_plane_step(c->nhwc, C);
    const nep_real *dy = c->dy;
#pragma omp parallel for schedule(static) if (planes * hw > NEP_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        nep_real *dxp = dx + plane(c, p, C, hw);
        const nep_real d = (nep_real)((double)dy[p] / (double)hw);
        for (int64_t k = 0; k < hw; k++) dxp[k * step] = add ? dxp[k * step] + d : d;
    }
}

const nep_kernel nep_cpu_maxpool = {
    .state_reals = maxpool_state_reals, .forward = maxpool_forward, .backward = maxpool_backward,
};
const nep_kernel nep_cpu_avgpool = {.forward = avgpool_forward, .backward = avgpool_backward};
const nep_kernel nep_cpu_global_avgpool = {.forward = global_forward, .backward = global_backward};
