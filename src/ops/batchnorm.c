/* BatchNorm2d, as torch.nn.BatchNorm2d(C, eps, momentum) (affine, tracking running
 * statistics): x [C, H, W] -> y [C, H, W]; parameters weight, bias [C] (trainable) and
 * the buffers running_mean, running_var [C] (flags 0, no gradient), in that order.
 * eps and momentum come from attrs.batchnorm (0 selects PyTorch's 1e-5 and 0.1).
 * ONNX: BatchNormalization(x, weight, bias, running_mean, running_var), epsilon. */
#include <math.h>

#include "ops/batchnorm.h"
#include "ops/onnx_map.h"

static nep_status bn_infer(nep_graph *g, nep_node *n, nep_err *err) {
    static const char *const names[BN_NPARAMS] = {"weight", "bias", "running_mean", "running_var"};
    const nep_shape *in = nep_in_shape(g, n, 0);
    NEP_TRY(nep_want_image(g, n, err));
    if (n->n_params != BN_NPARAMS)
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (BatchNorm2d): has %d parameters, wants 4 "
                        "(weight, bias, running_mean, running_var)", n->name, n->n_params);
    const int64_t C = in->d[0];
    for (int k = 0; k < BN_NPARAMS; k++) {
        const nep_param *p = &g->params[n->params[k]];
        if (p->ndim != 1 || p->shape[0] != C)
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (BatchNorm2d): parameter %d ('%s', the "
                            "%s) must have shape [%lld] (one per input channel)", n->name, k,
                            p->name, names[k], (long long)C);
        if (k >= BN_RMEAN && (p->flags & NEP_PARAM_TRAINABLE))
            return nep_fail(err, NEP_ERR_ARG, "node '%s' (BatchNorm2d): '%s' is a running "
                            "statistic and must not be trainable", n->name, p->name);
    }
    const double eps = n->attrs.batchnorm.eps, mom = n->attrs.batchnorm.momentum;
    if (!(eps >= 0 && isfinite(eps)))
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (BatchNorm2d): eps = %g must be >= 0 "
                        "(0 selects 1e-5)", n->name, eps);
    if (!(mom >= 0 && mom <= 1))
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (BatchNorm2d): momentum = %g is not in "
                        "[0, 1] (0 selects 0.1)", n->name, mom);
    n->shape = *in;
    return NEP_OK;
}

/* Scale and shift: two FLOPs per element (the inference cost; batch statistics in
 * training add about three more per element). */
static int64_t bn_flops(const nep_graph *g, const nep_node *n) {
    return 2 * nep_shape_numel(&n->shape);
}

/* Evaluation mode: x scale + shift with the running statistics (nep_bn_eval_affine). */
static double bn_value(const nep_graph *g, const nep_node *n, int64_t c, double x) {
    double scale, shift;
    nep_bn_eval_affine(nep_param_at(g, n, BN_WEIGHT, c), nep_param_at(g, n, BN_BIAS, c),
                       nep_param_at(g, n, BN_RMEAN, c), nep_param_at(g, n, BN_RVAR, c),
                       nep_bn_eps(&n->attrs.batchnorm), &scale, &shift);
    return scale * x + shift;
}

static void bn_onnx(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                    const char *const *in, const char *out) {
    const char *ins[5] = {in[0], s->param(s, n, 0, false), s->param(s, n, 1, false),
                          s->param(s, n, 2, false), s->param(s, n, 3, false)};
    s->node(s, "BatchNormalization", n->name, ins, 5, out,
            NEP_ONNX_ATTRS(NEP_ONNX_FLOAT_ATTR("epsilon", nep_bn_eps(&n->attrs.batchnorm))));
}

static const nep_attr_field bn_attrs[] = {
    NEP_ATTR_FIELD("eps", batchnorm.eps),
    NEP_ATTR_FIELD("momentum", batchnorm.momentum),
};

const nep_op_def nep_op_batchnorm = {
    .name = "BatchNorm2d", .min_inputs = 1, .max_inputs = 1, .fuses_rectifier = true,
    .infer = bn_infer, .flops = bn_flops, .value = bn_value, .onnx = bn_onnx,
    NEP_ATTR_FIELDS(bn_attrs),
};
