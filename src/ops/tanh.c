/* Tanh, as torch.nn.Tanh: x [...] -> y [...], same shape. Not a rectifier (it saturates
 * on both sides and no layer of SPEC section 1 uses it): BERT's pooler and RoBERTa's
 * classification head. ONNX: Tanh. */
#include <math.h>

#include "ops/onnx_map.h"

static double tanh_value(const nep_graph *g, const nep_node *n, int64_t c, double x) { return tanh(x); }

static void tanh_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                      const char *const *in, const char *out) {
    nep_onnx_node(s, "Tanh", n->name, in, 1, out);
}

const nep_op_def nep_op_tanh = {
    .name = "Tanh", .min_inputs = 1, .max_inputs = 1, .infer = nep_infer_same,
    .flops = nep_flops_elementwise, .value = tanh_value, .onnx = tanh_onnx,
};
