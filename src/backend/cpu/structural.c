/* Ops that move no data: Input (the batch itself), Identity and Flatten (their output
 * is their input's buffer, so forward and backward are nothing), and Add; and Mul.
 *   Flatten: [B, C, H, W] -> [B, C*H*W]   Add: y = x0 + x1 (+ ...), same shapes
 *   Mul: y = x0 x1;  dx0 (+)= dy x1,  dx1 (+)= dy x0 (x0 and x1 may be one node)
 * The exception: with NHWC activations, Flatten of an image with several channels and
 * positions has buffers of its own and puts the values in PyTorch's C, H, W order.
 * Add may write the output of the ReLU or ReLU6 that alone reads it (nep_epilogue). */
#include <string.h>

#include "backend/cpu/kernels.h"

static void flatten_forward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    nep_nhwc_to_nchw(c->x[0], c->y, c->batch, s->d[0], s->d[1] * s->d[2], false);
}

static void flatten_backward(const nep_call *c) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    if (c->dx[0]) nep_nchw_to_nhwc(c->dy, c->dx[0], c->batch, s->d[0], s->d[1] * s->d[2], c->dx_add[0]);
}

static void add_forward(const nep_call *c) {
    const nep_node *n = c->n;
    const int64_t len = nep_call_numel(c);
    const bool rect = c->rectify;
    const nep_real cap = c->cap;
    nep_real *y = c->y;
    const nep_real *x0 = c->x[0];
    /* y = x0 + x1, then y += x2 ...; the last sum is the one rectified */
    for (int k = 1; k < n->n_inputs; k++) {
        const nep_real *a = k == 1 ? x0 : y, *xk = c->x[k];
        const bool r = rect && k == n->n_inputs - 1;
#pragma omp parallel for simd if (parallel: len > NEP_PAR_MIN)
        for (int64_t i = 0; i < len; i++) y[i] = nep_stored(a[i] + xk[i], r, cap);
    }
}

static void add_backward(const nep_call *c) {
    const nep_node *n = c->n;
    const int64_t len = nep_call_numel(c);
    const nep_real *dy = c->dy;
    for (int k = 0; k < n->n_inputs; k++) {
        const bool add = c->dx_add[k];
        nep_real *dx = c->dx[k];
        if (!dx || dx == dy) continue; /* dy itself: the executor shares the buffer */
        if (add) {
#pragma omp parallel for simd if (parallel: len > NEP_PAR_MIN)
            for (int64_t i = 0; i < len; i++) dx[i] += dy[i];
        } else {
            memcpy(dx, dy, sizeof(nep_real) * (size_t)len);
        }
    }
}

static void mul_forward(const nep_call *c) {
    const int64_t len = nep_call_numel(c);
    const nep_real *a = c->x[0], *b = c->x[1];
#pragma omp parallel for simd if (parallel: len > NEP_PAR_MIN)
    for (int64_t i = 0; i < len; i++) c->y[i] = a[i] * b[i];
}

static void mul_backward(const nep_call *c) {
    const int64_t len = nep_call_numel(c);
    for (int k = 0; k < 2; k++) {
        nep_real *dx = c->dx[k];
        const nep_real *other = c->x[1 - k], *dy = c->dy;
        const bool add = c->dx_add[k];
        if (!dx) continue;
#pragma omp parallel for simd if (parallel: len > NEP_PAR_MIN)
        for (int64_t i = 0; i < len; i++) dx[i] = add ? dx[i] + dy[i] * other[i] : dy[i] * other[i];
    }
}

const nep_kernel nep_cpu_mul = {.forward = mul_forward, .backward = mul_backward};
const nep_kernel nep_cpu_input = {0}, nep_cpu_identity = {0};
const nep_kernel nep_cpu_flatten = {.forward = flatten_forward, .backward = flatten_backward};
const nep_kernel nep_cpu_add = {.forward = add_forward, .backward = add_backward};
