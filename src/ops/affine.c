/* Affine: a fixed per-channel map y = w_c x + b_c, what collapse leaves where a rectifier
 * was linearized or a BatchNorm could not be folded into a neighbour.
 *   x [C, ...]   w [C] ("weight")   b [C] ("bias")   y [C, ...]
 * ONNX: Add(Mul(x, weight), bias), each as [C, 1, 1] for images, [C] for vectors. */
#include "ops/onnx_map.h"

static nep_status affine_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    bool ok = n->n_params == 2;
    for (int i = 0; ok && i < 2; i++) {
        const nep_param *p = &g->params[n->params[i]];
        ok = p->ndim == 1 && p->shape[0] == nep_shape_features(in);
    }
    if (!ok)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Affine): weight and bias must have one "
                        "value per channel (%lld)", n->name, (long long)nep_shape_features(in));
    n->shape = *in;
    return NEP_OK;
}

static int64_t affine_flops(const nep_graph *g, const nep_node *n) {
    return 2 * nep_shape_numel(&n->shape);
}

static double affine_value(const nep_graph *g, const nep_node *n, int64_t c, double x) {
    return nep_param_at(g, n, 0, c) * x + nep_param_at(g, n, 1, c);
}

static void affine_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                        const char *const *in, const char *out) {
    const char *scaled = s->step(s, n, "scaled");
    nep_onnx_node(s, "Mul", scaled, (const char *[]){in[0], s->param(s, n, 0, true)}, 2, scaled);
    nep_onnx_node(s, "Add", n->name, (const char *[]){scaled, s->param(s, n, 1, true)}, 2, out);
}

const nep_op_def nep_op_affine = {
    .name = "Affine", .min_inputs = 1, .max_inputs = 1, .fuses_rectifier = true,
    .infer = affine_infer, .flops = affine_flops, .value = affine_value, .onnx = affine_onnx,
};
