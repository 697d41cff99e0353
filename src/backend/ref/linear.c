/* Linear (src/ops/linear.c) over the last axis, B = batch x the positions before it:
 * y = x W^T + b (y += with nep_call.y_add);  dx = dy W,  dW = dy^T x,  db = sum_B dy. */
#include "backend/ref/ref.h"

static void linear_forward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t B = c->batch * nep_linear_rows(s), in = nep_linear_fan_in(s), out = c->n->attrs.linear.features;
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < out; o++) {
            double acc = c->n->attrs.linear.bias ? c->w[1][o] : 0;
            for (int64_t i = 0; i < in; i++) acc += (double)c->x[0][b * in + i] * (double)c->w[0][o * in + i];
            nep_real *y = &c->y[b * out + o];
            *y = (nep_real)ref_rectified(c, c->y_add ? acc + (double)*y : acc);
        }
}

static void linear_backward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    const int64_t B = c->batch * nep_linear_rows(s), in = nep_linear_fan_in(s), out = c->n->attrs.linear.features;
    const nep_real *x = c->x[0], *W = c->w[0], *dy = c->dy;
    for (int64_t b = 0; c->dx[0] && b < B; b++)
        for (int64_t i = 0; i < in; i++) {
            double acc = 0;
            for (int64_t o = 0; o < out; o++) acc += (double)dy[b * out + o] * (double)W[o * in + i];
            ref_put(&c->dx[0][b * in + i], acc, c->dx_add[0]);
        }
    for (int64_t o = 0; o < out; o++) {
        for (int64_t i = 0; i < in; i++) {
            double acc = 0;
            for (int64_t b = 0; b < B; b++) acc += (double)dy[b * out + o] * (double)x[b * in + i];
            ref_put(&c->dw[0][o * in + i], acc, c->accumulate);
        }
        if (!c->n->attrs.linear.bias) continue;
        double acc = 0;
        for (int64_t b = 0; b < B; b++) acc += (double)dy[b * out + o];
        ref_put(&c->dw[1][o], acc, c->accumulate);
    }
}

const nep_kernel nep_ref_linear = {.sums_into_y = true, .forward = linear_forward, .backward = linear_backward};
