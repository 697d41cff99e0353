/* Elementwise and per-channel ops (src/ops/rectifiers.c, prelu.c, affine.c, dropout.c,
 * drop_path.c, structural.c), PyTorch's formulas and its choices at the kinks: ReLU'(0) = 0,
 * LeakyReLU'(0) = slope, ReLU6'(0) = ReLU6'(6) = 0. ReLU and ReLU6 take their backward
 * masks from the output, which a producer may have written for them (nep_call.rectify). */
#include <string.h>

#include "backend/ref/ref.h"
#include "nepenthe/rng.h"

/* Forward of every per-element op: the op's own value (nep_op_def.value, the definition
 * collapse evaluates too), feature by feature; with rectify, the reader's rectifier. */
static void value_forward(const nep_call *c) {
    const nep_op_def *op = nep_op(c->n->op);
    int64_t C, inner;
    ref_chan_dims(c, &C, &inner);
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t k = 0; k < inner; k++) {
                const int64_t i = ref_chan_at(c, C, inner, b, ch, k);
                c->y[i] = (nep_real)ref_rectified(c, op->value(c->g, c->n, ch, c->x[0][i]));
            }
}

/* df(z, y) * dy into dz. */
typedef double (*slope_fn)(double z, double y, double attr);
static void map_backward(const nep_call *c, slope_fn df, double attr) {
    for (int64_t i = 0; c->dx[0] && i < nep_call_numel(c); i++)
        ref_put(&c->dx[0][i], df(c->x[0][i], c->y[i], attr) * (double)c->dy[i], c->dx_add[0]);
}

static double relu_slope(double z, double y, double a) { return y > 0; }
static double leaky_slope(double z, double y, double s) { return z > 0 ? 1 : s; }
static double relu6_slope(double z, double y, double a) { return y > 0 && y < 6; }
/* tanh: the tanh form (nep_gelu_attrs), whose k = sqrt(2 / pi) and a = 0.044715 */
static double gelu_slope(double z, double y, double tanh_form) {
    if (tanh_form) {
        const double k = sqrt(2 / M_PI), a = 0.044715, t = tanh(k * (z + a * z * z * z));
        return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * k * (1 + 3 * a * z * z);
    }
    return 0.5 * (1 + erf(z / sqrt(2.0))) + z * exp(-0.5 * z * z) / sqrt(2 * M_PI);
}
static double tanh_slope(double z, double y, double a) {
    const double t = tanh(z);
    return 1 - t * t;
}
static double silu_slope(double z, double y, double a) {
    const double s = 1 / (1 + exp(-z));
    return s * (1 + z * (1 - s));
}

#define MAP_KERNEL(sym, df, attr)                                                      \
    static void sym##_bw(const nep_call *c) { map_backward(c, df, attr); }           \
    const nep_kernel sym = {.forward = value_forward, .backward = sym##_bw}

MAP_KERNEL(nep_ref_relu, relu_slope, 0);
MAP_KERNEL(nep_ref_leaky_relu, leaky_slope, c->n->attrs.leaky_relu.slope);
MAP_KERNEL(nep_ref_relu6, relu6_slope, 0);
MAP_KERNEL(nep_ref_gelu, gelu_slope, c->n->attrs.gelu.tanh);
MAP_KERNEL(nep_ref_tanh, tanh_slope, 0);
MAP_KERNEL(nep_ref_silu, silu_slope, 0);

/* PReLU: dz = z > 0 ? dy : a_c dy;  da_c = sum_{z <= 0} dy z */
static void prelu_backward(const nep_call *c) {
    int64_t C, inner;
    ref_chan_dims(c, &C, &inner);
    for (int64_t ch = 0; ch < C; ch++) {
        double da = 0;
        for (int64_t b = 0; b < c->batch; b++)
            for (int64_t k = 0; k < inner; k++) {
                const int64_t i = ref_chan_at(c, C, inner, b, ch, k);
                const double z = c->x[0][i], dy = c->dy[i];
                if (c->dx[0]) ref_put(&c->dx[0][i], z > 0 ? dy : (double)c->w[0][ch] * dy, c->dx_add[0]);
                if (z <= 0) da += dy * z;
            }
        ref_put(&c->dw[0][ch], da, c->accumulate);
    }
}
const nep_kernel nep_ref_prelu = {.forward = value_forward, .backward = prelu_backward};

/* Affine: dx = w_c dy;  dw_c = sum dy x;  db_c = sum dy */
static void affine_backward(const nep_call *c) {
    int64_t C, inner;
    ref_chan_dims(c, &C, &inner);
    for (int64_t ch = 0; ch < C; ch++) {
        double dw = 0, db = 0;
        for (int64_t b = 0; b < c->batch; b++)
            for (int64_t k = 0; k < inner; k++) {
                const int64_t i = ref_chan_at(c, C, inner, b, ch, k);
                if (c->dx[0]) ref_put(&c->dx[0][i], (double)c->w[0][ch] * c->dy[i], c->dx_add[0]);
                dw += (double)c->dy[i] * c->x[0][i];
                db += c->dy[i];
            }
        ref_put(&c->dw[0][ch], dw, c->accumulate);
        ref_put(&c->dw[1][ch], db, c->accumulate);
    }
}
const nep_kernel nep_ref_affine = {.forward = value_forward, .backward = affine_backward};

/* Dropout: in training, keep with probability 1 - p and scale by 1 / (1 - p), element i
 * keeping when draw i of the stream keyed by one draw of the call's generator does (the
 * masks every backend must draw); the identity in evaluation. State: the scale factor
 * of each element. */
static bool dropout_active(const nep_call *c) { return c->training && c->n->attrs.dropout.p > 0; }
static void dropout_forward(const nep_call *c) {
    const double p = c->n->attrs.dropout.p;
    nep_real *scale = c->state;
    const uint64_t key = dropout_active(c) ? nep_rng_u64(c->rng) : 0;
    for (int64_t i = 0; i < nep_call_numel(c); i++) {
        if (dropout_active(c)) scale[i] = nep_rng_stream_keeps(key, (uint64_t)i, nep_rng_keep_from(p)) ? (nep_real)(1 / (1 - p)) : 0;
        c->y[i] = dropout_active(c) ? c->x[0][i] * scale[i] : c->x[0][i];
    }
}
static void dropout_backward(const nep_call *c) {
    const nep_real *scale = c->state;
    for (int64_t i = 0; c->dx[0] && i < nep_call_numel(c); i++)
        ref_put(&c->dx[0][i], dropout_active(c) ? (double)c->dy[i] * scale[i] : c->dy[i], c->dx_add[0]);
}
static int64_t dropout_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) {
    return nep_shape_numel(&n->shape);
}
const nep_kernel nep_ref_dropout = {.state_reals = dropout_state_reals,
                                    .forward = dropout_forward, .backward = dropout_backward};

/* StochasticDepth: in training, sample b kept with probability 1 - p and scaled by
 * 1 / (1 - p) (never kept when p = 1), one draw of the call's generator per sample in
 * order (the masks every backend must draw); the identity in evaluation. State: the
 * scale factor of each sample. */
static bool drop_path_active(const nep_call *c) { return c->training && c->n->attrs.drop_path.p > 0; }
static void drop_path_forward(const nep_call *c) {
    const double p = c->n->attrs.drop_path.p;
    const int64_t per = nep_shape_numel(&c->n->shape);
    nep_real *scale = c->state;
    for (int64_t b = 0; drop_path_active(c) && b < c->batch; b++)
        scale[b] = nep_rng_uniform(c->rng) >= p ? (nep_real)(1 / (1 - p)) : 0;
    for (int64_t i = 0; i < nep_call_numel(c); i++)
        c->y[i] = drop_path_active(c) ? (nep_real)((double)c->x[0][i] * scale[i / per]) : c->x[0][i];
}
static void drop_path_backward(const nep_call *c) {
    const int64_t per = nep_shape_numel(&c->n->shape);
    const nep_real *scale = c->state;
    for (int64_t i = 0; c->dx[0] && i < nep_call_numel(c); i++)
        ref_put(&c->dx[0][i], drop_path_active(c) ? (double)c->dy[i] * scale[i / per] : c->dy[i], c->dx_add[0]);
}
static int64_t drop_path_state_reals(const nep_graph *g, const nep_node *n, bool nhwc) { return 1; }
const nep_kernel nep_ref_drop_path = {.state_reals = drop_path_state_reals,
                                      .forward = drop_path_forward, .backward = drop_path_backward};

/* Add: y = x0 + x1 (+ ...);  dx_k = dy */
static void add_forward(const nep_call *c) {
    for (int64_t i = 0; i < nep_call_numel(c); i++) {
        double s = 0;
        for (int k = 0; k < c->n->n_inputs; k++) s += c->x[k][i];
        c->y[i] = (nep_real)ref_rectified(c, s);
    }
}
static void add_backward(const nep_call *c) {
    for (int k = 0; k < c->n->n_inputs; k++) {
        if (!c->dx[k] || c->dx[k] == c->dy) continue; /* the executor shares dy's buffer */
        for (int64_t i = 0; i < nep_call_numel(c); i++) ref_put(&c->dx[k][i], c->dy[i], c->dx_add[k]);
    }
}
const nep_kernel nep_ref_add = {.forward = add_forward, .backward = add_backward};

/* Mul: y = x0 x1;  dx0 = dy x1, dx1 = dy x0 */
static void mul_forward(const nep_call *c) {
    for (int64_t i = 0; i < nep_call_numel(c); i++) c->y[i] = (nep_real)((double)c->x[0][i] * c->x[1][i]);
}
static void mul_backward(const nep_call *c) {
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; c->dx[k] && i < nep_call_numel(c); i++)
            ref_put(&c->dx[k][i], (double)c->dy[i] * c->x[1 - k][i], c->dx_add[k]);
}
const nep_kernel nep_ref_mul = {.forward = mul_forward, .backward = mul_backward};

/* Input, Identity, and Flatten in NCHW: the executor aliases their buffers. */
const nep_kernel nep_ref_none = {0};
