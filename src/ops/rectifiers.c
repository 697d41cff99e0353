/* Elementwise rectifiers, as torch.nn.ReLU, LeakyReLU (attrs.leaky_relu.slope), ReLU6,
 * GELU (erf form), SiLU: z [...] -> y [...], same shape. ReLU6 has three activation
 * states (OFF, ON, and OFF+ at the cap), the others two (OFF, ON). */
#include <math.h>

#include "ops/ops.h"

static double relu(const nep_graph *g, const nep_node *n, int64_t c, double x) { return x > 0 ? x : 0; }
static double leaky(const nep_graph *g, const nep_node *n, int64_t c, double x) {
    return x > 0 ? x : n->attrs.leaky_relu.slope * x;
}
static double relu6(const nep_graph *g, const nep_node *n, int64_t c, double x) {
    return x > 0 ? (x < 6 ? x : 6) : 0;
}
static double gelu(const nep_graph *g, const nep_node *n, int64_t c, double x) {
    return 0.5 * x * (1 + erf(x / sqrt(2.0)));
}
static double silu(const nep_graph *g, const nep_node *n, int64_t c, double x) { return x / (1 + exp(-x)); }

static const nep_attr_field leaky_attrs[] = {NEP_ATTR_FIELD("slope", leaky_relu.slope)};

#define RECTIFIER(sym, nm, nstates, fn, ...)                                           \
    const nep_op_def sym = {.name = nm, .min_inputs = 1, .max_inputs = 1,             \
                            .states = nstates, .infer = nep_infer_same,               \
                            .flops = nep_flops_elementwise, .value = fn, __VA_ARGS__}

RECTIFIER(nep_op_relu, "ReLU", 2, relu);
RECTIFIER(nep_op_leaky_relu, "LeakyReLU", 2, leaky, NEP_ATTR_FIELDS(leaky_attrs));
RECTIFIER(nep_op_relu6, "ReLU6", 3, relu6);
RECTIFIER(nep_op_gelu, "GELU", 2, gelu);
RECTIFIER(nep_op_silu, "SiLU", 2, silu);
