/* Elementwise rectifiers, as torch.nn.ReLU, LeakyReLU, ReLU6, GELU (erf or tanh form), SiLU.
 *   z [B, ...] (the pre-activation, never overwritten: the entropy probe reads it)
 *   y [B, ...] same shape
 * Backward writes dz, or adds to it (nep_call.dx_add), and follows PyTorch at the kinks:
 * ReLU'(0) = 0, LeakyReLU'(0) = slope, ReLU6'(0) = ReLU6'(6) = 0.
 * GELU and SiLU run on oneDNN's vectorized eltwise primitives (dnnl_eltwise.h); their
 * loops here serve the float64 build, a plan oneDNN cannot build, and a backward that
 * adds to dz (the primitive only writes). */
#include <tgmath.h>

#include "backend/cpu/dnnl_eltwise.h"
#include "backend/cpu/kernels.h"

/* Loop header shared by every kernel below: i over the batch's elements. */
#define EACH_ELEMENT(n) _Pragma("omp parallel for simd if (parallel: n > NEP_PAR_MIN)") \
    for (int64_t i = 0; i < n; i++)

/* dz = (or += when another consumer wrote dz first) the value of expr at element i;
 * ends the backward when the input needs no gradient. */
#define INPUT_GRAD(expr)                                          \
    do {                                                          \
        nep_real *dz = c->dx[0];                                  \
        if (!dz) return;                                          \
        if (c->dx_add[0]) EACH_ELEMENT(n) dz[i] += (expr);        \
        else EACH_ELEMENT(n) dz[i] = (expr);                      \
    } while (0)

#define ELEMENTWISE_IO                                            \
    const nep_node *node = c->n;                                  \
    const int64_t n = nep_call_numel(c);                          \
    const nep_real *z = c->x[0];                                  \
    (void)z, (void)node

static void relu_forward(const nep_call *c) {
    ELEMENTWISE_IO;
    nep_real *y = c->y;
    EACH_ELEMENT(n) y[i] = z[i] > 0 ? z[i] : 0;
}
/* ReLU and ReLU6 take their masks from the output (y > 0 iff z > 0; 0 < y < 6 iff
 * 0 < z < 6), so they also work when a BatchNorm wrote y without z (nep_call.rectify). */
static void relu_backward(const nep_call *c) {
    ELEMENTWISE_IO;
    const nep_real *dy = c->dy, *y = c->y;
    INPUT_GRAD(y[i] > 0 ? dy[i] : 0);
}

static void leaky_forward(const nep_call *c) {
    ELEMENTWISE_IO;
    const nep_real s = (nep_real)node->attrs.leaky_relu.slope;
    nep_real *y = c->y;
    EACH_ELEMENT(n) y[i] = z[i] > 0 ? z[i] : s * z[i];
}
static void leaky_backward(const nep_call *c) {
    ELEMENTWISE_IO;
    const nep_real s = (nep_real)node->attrs.leaky_relu.slope, *dy = c->dy;
    INPUT_GRAD(z[i] > 0 ? dy[i] : s * dy[i]);
}

static void relu6_forward(const nep_call *c) {
    ELEMENTWISE_IO;
    nep_real *y = c->y;
    EACH_ELEMENT(n) y[i] = z[i] > 0 ? (z[i] < 6 ? z[i] : 6) : 0;
}
static void relu6_backward(const nep_call *c) {
    ELEMENTWISE_IO;
    const nep_real *dy = c->dy, *y = c->y;
    INPUT_GRAD((y[i] > 0 && y[i] < 6) ? dy[i] : 0);
}

/* GELU(z) = z * Phi(z), Phi the standard normal CDF; GELU'(z) = Phi(z) + z * phi(z).
 * The tanh form: GELU(z) = z (1 + t) / 2, t = tanh(k (z + a z^3)), k = sqrt(2 / pi),
 * a = 0.044715; GELU'(z) = (1 + t) / 2 + z (1 - t^2) k (1 + 3 a z^2) / 2. */
#define GELU_K ((nep_real)0.79788456080286535588)
#define GELU_A ((nep_real)0.044715)
static inline nep_real gelu_tanh_t(nep_real z) { return tanh(GELU_K * (z + GELU_A * z * z * z)); }
static inline nep_real gelu_tanh_slope(nep_real z) {
    const nep_real t = gelu_tanh_t(z);
    return (nep_real)0.5 * (1 + t) + (nep_real)0.5 * z * (1 - t * t) * GELU_K * (1 + 3 * GELU_A * z * z);
}
static nep_eltwise_alg gelu_alg(const nep_node *node) {
    return node->attrs.gelu.tanh ? NEP_ELTWISE_GELU_TANH : NEP_ELTWISE_GELU;
}
static void gelu_forward(const nep_call *c) {
    ELEMENTWISE_IO;
    nep_real *y = c->y;
    if (nep_dnnl_eltwise_forward(c->cache, gelu_alg(node), n, z, y)) return;
    const nep_real r = (nep_real)0.70710678118654752440;
    if (node->attrs.gelu.tanh) EACH_ELEMENT(n) y[i] = (nep_real)0.5 * z[i] * (1 + gelu_tanh_t(z[i]));
    else EACH_ELEMENT(n) y[i] = (nep_real)0.5 * z[i] * (1 + erf(z[i] * r));
}
static void gelu_backward(const nep_call *c) {
    ELEMENTWISE_IO;
    const nep_real *dy = c->dy;
    if (c->dx[0] && !c->dx_add[0] &&
        nep_dnnl_eltwise_backward(c->cache, gelu_alg(node), n, z, dy, c->dx[0]))
        return;
    if (node->attrs.gelu.tanh) {
        INPUT_GRAD(dy[i] * gelu_tanh_slope(z[i]));
        return;
    }
    const nep_real r = (nep_real)0.70710678118654752440, k = (nep_real)0.39894228040143267794;
    /* cdf + z * pdf */
    INPUT_GRAD(dy[i] * ((nep_real)0.5 * (1 + erf(z[i] * r)) + z[i] * k * exp((nep_real)-0.5 * z[i] * z[i])));
}

/* SiLU(z) = z * sigmoid(z); SiLU'(z) = sigmoid(z) * (1 + z * (1 - sigmoid(z))). */
static inline nep_real silu_slope(nep_real z) {
    nep_real sg = 1 / (1 + exp(-z));
    return sg * (1 + z * (1 - sg));
}
static void silu_forward(const nep_call *c) {
    ELEMENTWISE_IO;
    nep_real *y = c->y;
    if (nep_dnnl_eltwise_forward(c->cache, NEP_ELTWISE_SILU, n, z, y)) return;
    EACH_ELEMENT(n) y[i] = z[i] / (1 + exp(-z[i]));
}
static void silu_backward(const nep_call *c) {
    ELEMENTWISE_IO;
    const nep_real *dy = c->dy;
    if (c->dx[0] && !c->dx_add[0] &&
        nep_dnnl_eltwise_backward(c->cache, NEP_ELTWISE_SILU, n, z, dy, c->dx[0]))
        return;
    INPUT_GRAD(dy[i] * silu_slope(z[i]));
}

/* Tanh (not a rectifier; its kernels live here with the other elementwise maps):
 * y = tanh(z), dz = dy (1 - y^2). */
static void tanh_forward(const nep_call *c) {
    ELEMENTWISE_IO;
    nep_real *y = c->y;
    if (nep_dnnl_eltwise_forward(c->cache, NEP_ELTWISE_TANH, n, z, y)) return;
    EACH_ELEMENT(n) y[i] = tanh(z[i]);
}
static void tanh_backward(const nep_call *c) {
    ELEMENTWISE_IO;
    const nep_real *dy = c->dy, *y = c->y;
    INPUT_GRAD(dy[i] * (1 - y[i] * y[i]));
}

#define RECTIFIER(sym, fw, bw) const nep_kernel sym = {.forward = fw, .backward = bw}

RECTIFIER(nep_cpu_relu, relu_forward, relu_backward);
RECTIFIER(nep_cpu_leaky_relu, leaky_forward, leaky_backward);
RECTIFIER(nep_cpu_relu6, relu6_forward, relu6_backward);
const nep_kernel nep_cpu_gelu = {.forward = gelu_forward, .backward = gelu_backward,
                                 .free_cache = nep_dnnl_eltwise_cache_free};
const nep_kernel nep_cpu_tanh = {.forward = tanh_forward, .backward = tanh_backward,
                                 .free_cache = nep_dnnl_eltwise_cache_free};
const nep_kernel nep_cpu_silu = {.forward = silu_forward, .backward = silu_backward,
                                 .free_cache = nep_dnnl_eltwise_cache_free};
