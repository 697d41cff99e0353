/* Elementwise rectifiers, as torch.nn.ReLU, LeakyReLU, ReLU6, GELU (erf form), SiLU.
 *   z [B, ...] (the pre-activation, never overwritten: the entropy probe reads it)
 *   y [B, ...] same shape
 * Backward writes dz, or adds to it (nep_input_grad), and follows PyTorch at the kinks:
 * ReLU'(0) = 0, LeakyReLU'(0) = slope, ReLU6'(0) = ReLU6'(6) = 0. */
#include <tgmath.h>

#include "ops/ops.h"

/* Loop header shared by every kernel below: i over the batch's elements. */
#define EACH_ELEMENT(n) _Pragma("omp parallel for simd if (n > NEP_PAR_MIN)") \
    for (int64_t i = 0; i < n; i++)

/* dz = (or += when another consumer wrote dz first) the value of expr at element i;
 * ends the backward when the input needs no gradient. */
#define INPUT_GRAD(expr)                                          \
    do {                                                          \
        bool add_;                                                \
        nep_real *dz = nep_input_grad(ex, node, 0, &add_);        \
        if (!dz) return;                                          \
        if (add_) EACH_ELEMENT(n) dz[i] += (expr);                \
        else EACH_ELEMENT(n) dz[i] = (expr);                      \
    } while (0)

#define ELEMENTWISE_IO                                                   \
    const nep_node *node = &ex->g->nodes[id];                            \
    const int64_t n = nep_exec_numel(ex, id);                            \
    const nep_real *z = ex->act[node->inputs[0]];                        \
    (void)z

static void relu_forward(nep_exec *ex, int id) {
    ELEMENTWISE_IO;
    nep_real *y = ex->act[id];
    EACH_ELEMENT(n) y[i] = z[i] > 0 ? z[i] : 0;
}
/* ReLU and ReLU6 take their masks from the output (y > 0 iff z > 0; 0 < y < 6 iff
 * 0 < z < 6), so they also work when a BatchNorm wrote y without z (ex->epilogue). */
static void relu_backward(nep_exec *ex, int id) {
    ELEMENTWISE_IO;
    const nep_real *dy = ex->dact[id], *y = ex->act[id];
    INPUT_GRAD(y[i] > 0 ? dy[i] : 0);
}

static void leaky_forward(nep_exec *ex, int id) {
    ELEMENTWISE_IO;
    const nep_real s = (nep_real)node->attrs.slope;
    nep_real *y = ex->act[id];
    EACH_ELEMENT(n) y[i] = z[i] > 0 ? z[i] : s * z[i];
}
static void leaky_backward(nep_exec *ex, int id) {
    ELEMENTWISE_IO;
    const nep_real s = (nep_real)node->attrs.slope, *dy = ex->dact[id];
    INPUT_GRAD(z[i] > 0 ? dy[i] : s * dy[i]);
}

static void relu6_forward(nep_exec *ex, int id) {
    ELEMENTWISE_IO;
    nep_real *y = ex->act[id];
    EACH_ELEMENT(n) y[i] = z[i] > 0 ? (z[i] < 6 ? z[i] : 6) : 0;
}
static void relu6_backward(nep_exec *ex, int id) {
    ELEMENTWISE_IO;
    const nep_real *dy = ex->dact[id], *y = ex->act[id];
    INPUT_GRAD((y[i] > 0 && y[i] < 6) ? dy[i] : 0);
}

/* GELU(z) = z * Phi(z), Phi the standard normal CDF; GELU'(z) = Phi(z) + z * phi(z). */
static void gelu_forward(nep_exec *ex, int id) {
    ELEMENTWISE_IO;
    nep_real *y = ex->act[id];
    const nep_real r = (nep_real)0.70710678118654752440;
    EACH_ELEMENT(n) y[i] = (nep_real)0.5 * z[i] * (1 + erf(z[i] * r));
}
static void gelu_backward(nep_exec *ex, int id) {
    ELEMENTWISE_IO;
    const nep_real *dy = ex->dact[id];
    const nep_real r = (nep_real)0.70710678118654752440, c = (nep_real)0.39894228040143267794;
    /* cdf + z * pdf */
    INPUT_GRAD(dy[i] * ((nep_real)0.5 * (1 + erf(z[i] * r)) + z[i] * c * exp((nep_real)-0.5 * z[i] * z[i])));
}

/* SiLU(z) = z * sigmoid(z); SiLU'(z) = sigmoid(z) * (1 + z * (1 - sigmoid(z))). */
static inline nep_real silu_slope(nep_real z) {
    nep_real sg = 1 / (1 + exp(-z));
    return sg * (1 + z * (1 - sg));
}
static void silu_forward(nep_exec *ex, int id) {
    ELEMENTWISE_IO;
    nep_real *y = ex->act[id];
    EACH_ELEMENT(n) y[i] = z[i] / (1 + exp(-z[i]));
}
static void silu_backward(nep_exec *ex, int id) {
    ELEMENTWISE_IO;
    const nep_real *dy = ex->dact[id];
    INPUT_GRAD(dy[i] * silu_slope(z[i]));
}

#define RECTIFIER(sym, nm, nstates, fw, bw)                                           \
    const nep_op_def sym = {.name = nm, .min_inputs = 1, .max_inputs = 1,            \
                            .states = nstates, .infer = nep_infer_same,              \
                            .flops = nep_flops_elementwise, .forward = fw, .backward = bw}

RECTIFIER(nep_op_relu, "ReLU", 2, relu_forward, relu_backward);
RECTIFIER(nep_op_leaky_relu, "LeakyReLU", 2, leaky_forward, leaky_backward);
RECTIFIER(nep_op_relu6, "ReLU6", 3, relu6_forward, relu6_backward);
RECTIFIER(nep_op_gelu, "GELU", 2, gelu_forward, gelu_backward);
RECTIFIER(nep_op_silu, "SiLU", 2, silu_forward, silu_backward);
