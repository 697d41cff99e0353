/* Elementwise rectifiers, as torch.nn.ReLU, LeakyReLU (attrs.leaky_relu.slope), ReLU6,
 * GELU (erf form, or with attrs.gelu.tanh the tanh form), SiLU: z [...] -> y [...], same
 * shape. ReLU6 has three activation
 * states (OFF, ON, and OFF+ at the cap), the others two (OFF, ON).
 * ONNX: Relu; LeakyRelu(alpha = slope); ReLU6 Clip(x, 0, 6); GELU
 * Mul(Mul(x, 1 + Erf(x * (1/sqrt 2))), 0.5), or with tanh
 * Mul(Mul(x, 1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3))), 0.5), nepenthe's own formulas (the
 * Gelu op only exists from opset 20); SiLU Mul(x, Sigmoid(x)). */
#include <math.h>

#include "ops/onnx_map.h"

static double relu(const nep_graph *g, const nep_node *n, int64_t c, double x) { return x > 0 ? x : 0; }
static double leaky(const nep_graph *g, const nep_node *n, int64_t c, double x) {
    return x > 0 ? x : n->attrs.leaky_relu.slope * x;
}
static double leaky_off_slope(const nep_graph *g, const nep_node *n, int64_t c) {
    return n->attrs.leaky_relu.slope;
}
static double relu6(const nep_graph *g, const nep_node *n, int64_t c, double x) {
    return x > 0 ? (x < 6 ? x : 6) : 0;
}
/* sqrt(2 / pi) and the cubic's coefficient of the tanh form, as PyTorch writes them */
#define GELU_TANH_K 0.79788456080286535588
#define GELU_TANH_A 0.044715
static double gelu(const nep_graph *g, const nep_node *n, int64_t c, double x) {
    if (n->attrs.gelu.tanh) return 0.5 * x * (1 + tanh(GELU_TANH_K * (x + GELU_TANH_A * x * x * x)));
    return 0.5 * x * (1 + erf(x / sqrt(2.0)));
}
static double silu(const nep_graph *g, const nep_node *n, int64_t c, double x) { return x / (1 + exp(-x)); }

static void relu_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                      const char *const *in, const char *out) {
    nep_onnx_node(s, "Relu", n->name, in, 1, out);
}

static void leaky_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                       const char *const *in, const char *out) {
    s->node(s, "LeakyRelu", n->name, in, 1, out,
            NEP_ONNX_ATTRS(NEP_ONNX_FLOAT_ATTR("alpha", n->attrs.leaky_relu.slope)));
}

static void relu6_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                       const char *const *in, const char *out) {
    const char *ins[3] = {in[0], s->constant(s, "zero", 0), s->constant(s, "six", 6)};
    nep_onnx_node(s, "Clip", n->name, ins, 3, out);
}

/* 0.5 * (x * (1 + erf(x * (1/sqrt 2)))), or 0.5 * (x * (1 + tanh(k * (x + a * x^3)))) */
static void gelu_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                      const char *const *in, const char *out) {
    const bool tanh_form = n->attrs.gelu.tanh;
    const char *scaled = s->step(s, n, "scaled"), *squash = s->step(s, n, tanh_form ? "tanh" : "erf"),
               *cdf2 = s->step(s, n, "one_plus"), *prod = s->step(s, n, "x_times");
    if (tanh_form) {
        const char *sq = s->step(s, n, "x2"), *cube = s->step(s, n, "x3"), *ax3 = s->step(s, n, "ax3"),
                   *inner = s->step(s, n, "inner");
        nep_onnx_node(s, "Mul", sq, (const char *[]){in[0], in[0]}, 2, sq);
        nep_onnx_node(s, "Mul", cube, (const char *[]){sq, in[0]}, 2, cube);
        nep_onnx_node(s, "Mul", ax3, (const char *[]){cube, s->constant(s, "gelu_a", GELU_TANH_A)}, 2, ax3);
        nep_onnx_node(s, "Add", inner, (const char *[]){in[0], ax3}, 2, inner);
        nep_onnx_node(s, "Mul", scaled, (const char *[]){inner, s->constant(s, "gelu_k", GELU_TANH_K)}, 2, scaled);
        nep_onnx_node(s, "Tanh", squash, &scaled, 1, squash);
    } else {
        /* the very constant the cpu backend's GELU multiplies by (src/backend/cpu/rectifiers.c) */
        const char *rsqrt2 = s->constant(s, "rsqrt2", 0.70710678118654752440);
        nep_onnx_node(s, "Mul", scaled, (const char *[]){in[0], rsqrt2}, 2, scaled);
        nep_onnx_node(s, "Erf", squash, &scaled, 1, squash);
    }
    nep_onnx_node(s, "Add", cdf2, (const char *[]){squash, s->constant(s, "one", 1)}, 2, cdf2);
    nep_onnx_node(s, "Mul", prod, (const char *[]){in[0], cdf2}, 2, prod);
    nep_onnx_node(s, "Mul", n->name, (const char *[]){prod, s->constant(s, "half", 0.5)}, 2, out);
}

static void silu_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                      const char *const *in, const char *out) {
    const char *sig = s->step(s, n, "sigmoid");
    nep_onnx_node(s, "Sigmoid", sig, in, 1, sig);
    nep_onnx_node(s, "Mul", n->name, (const char *[]){in[0], sig}, 2, out);
}

static const nep_attr_field leaky_attrs[] = {NEP_ATTR_FIELD("slope", leaky_relu.slope)};
static const nep_attr_field gelu_attrs[] = {NEP_ATTR_FIELD("tanh", gelu.tanh)};

/* cap: the producer-fused form's clip (nep_op_def.epilogue_cap), 0 where none. */
#define RECTIFIER(sym, nm, nstates, fn, cap, onnx_fn, ...)                             \
    const nep_op_def sym = {.name = nm, .min_inputs = 1, .max_inputs = 1,             \
                            .states = nstates, .infer = nep_infer_same,               \
                            .flops = nep_flops_elementwise, .value = fn,              \
                            .epilogue_cap = cap, .onnx = onnx_fn, __VA_ARGS__}

RECTIFIER(nep_op_relu, "ReLU", 2, relu, INFINITY, relu_onnx, .exact_states = true);
RECTIFIER(nep_op_leaky_relu, "LeakyReLU", 2, leaky, 0, leaky_onnx, .exact_states = true,
          .off_slope = leaky_off_slope, NEP_ATTR_FIELDS(leaky_attrs));
RECTIFIER(nep_op_relu6, "ReLU6", 3, relu6, 6, relu6_onnx, .exact_states = true);
RECTIFIER(nep_op_gelu, "GELU", 2, gelu, 0, gelu_onnx, NEP_ATTR_FIELDS(gelu_attrs));
RECTIFIER(nep_op_silu, "SiLU", 2, silu, 0, silu_onnx);
