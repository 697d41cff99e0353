/* PReLU with one learned slope per channel, as torch.nn.PReLU(num_parameters=C):
 *   z [C, ...]   a [C] ("weight")   y = z > 0 ? z : a_c z   (two states, as ReLU)
 * ONNX: PRelu(x, weight as [C, 1, 1] for images, [C] for vectors). */
#include "ops/onnx_map.h"

static nep_status prelu_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    const nep_param *a = &g->params[n->params[0]];
    if (n->n_params != 1 || a->ndim != 1 || a->shape[0] != nep_shape_features(in))
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (PReLU): weight must have one slope per "
                        "channel (%lld)", n->name, (long long)nep_shape_features(in));
    n->shape = *in;
    return NEP_OK;
}

static double prelu_value(const nep_graph *g, const nep_node *n, int64_t c, double x) {
    return x > 0 ? x : nep_param_at(g, n, 0, c) * x;
}

static double prelu_off_slope(const nep_graph *g, const nep_node *n, int64_t c) {
    return nep_param_at(g, n, 0, c);
}

static void prelu_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                       const char *const *in, const char *out) {
    nep_onnx_node(s, "PRelu", n->name, (const char *[]){in[0], s->param(s, n, 0, true)}, 2, out);
}

const nep_op_def nep_op_prelu = {
    .name = "PReLU", .min_inputs = 1, .max_inputs = 1, .states = 2, .exact_states = true,
    .off_slope = prelu_off_slope,
    .infer = prelu_infer, .flops = nep_flops_elementwise, .value = prelu_value,
    .onnx = prelu_onnx,
};
