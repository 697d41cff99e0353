#include <string.h>

#include "ops/onnx_map.h"

static const nep_op_def *const table[NEP_OP_COUNT] = {
    [NEP_OP_INPUT] = &nep_op_input,
    [NEP_OP_LINEAR] = &nep_op_linear,
    [NEP_OP_RELU] = &nep_op_relu,
    [NEP_OP_LEAKY_RELU] = &nep_op_leaky_relu,
    [NEP_OP_PRELU] = &nep_op_prelu,
    [NEP_OP_RELU6] = &nep_op_relu6,
    [NEP_OP_GELU] = &nep_op_gelu,
    [NEP_OP_SILU] = &nep_op_silu,
    [NEP_OP_IDENTITY] = &nep_op_identity,
    [NEP_OP_FLATTEN] = &nep_op_flatten,
    [NEP_OP_DROPOUT] = &nep_op_dropout,
    [NEP_OP_ADD] = &nep_op_add,
    [NEP_OP_CONV2D] = &nep_op_conv2d,
    [NEP_OP_BATCHNORM] = &nep_op_batchnorm,
    [NEP_OP_MAXPOOL] = &nep_op_maxpool,
    [NEP_OP_AVGPOOL] = &nep_op_avgpool,
    [NEP_OP_GLOBAL_AVGPOOL] = &nep_op_global_avgpool,
    [NEP_OP_AFFINE] = &nep_op_affine,
    [NEP_OP_EMBEDDING] = &nep_op_embedding,
    [NEP_OP_LAYERNORM] = &nep_op_layernorm,
    [NEP_OP_ATTENTION] = &nep_op_attention,
    [NEP_OP_SDPA] = &nep_op_sdpa,
    [NEP_OP_TANH] = &nep_op_tanh,
    [NEP_OP_RMSNORM] = &nep_op_rmsnorm,
    [NEP_OP_ROPE] = &nep_op_rope,
    [NEP_OP_MUL] = &nep_op_mul,
    [NEP_OP_TOKENS] = &nep_op_tokens,
    [NEP_OP_CLASS_TOKEN] = &nep_op_class_token,
    [NEP_OP_POS_EMBEDDING] = &nep_op_pos_embedding,
    [NEP_OP_TAKE_TOKEN] = &nep_op_take_token,
    [NEP_OP_TOKEN_MEAN] = &nep_op_token_mean,
    [NEP_OP_PATCH_MERGE] = &nep_op_patch_merge,
    [NEP_OP_DROP_PATH] = &nep_op_drop_path,
};

const nep_op_def *nep_op(nep_op_kind kind) { return table[kind]; }

int nep_op_from_name(const char *name) {
    for (int k = 0; k < NEP_OP_COUNT; k++)
        if (strcmp(table[k]->name, name) == 0) return k;
    return -1;
}

nep_status nep_infer_same(nep_graph *g, nep_node *n, nep_err *err) {
    n->shape = *nep_in_shape(g, n, 0);
    return NEP_OK;
}

double nep_value_identity(const nep_graph *g, const nep_node *n, int64_t c, double x) { return x; }

void nep_onnx_identity(const nep_onnx_sink *s, const nep_graph *g, const nep_node *n,
                       const char *const *in, const char *out) {
    nep_onnx_node(s, "Identity", n->name, in, 1, out);
}

nep_status nep_want_image(const nep_graph *g, const nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (in->ndim == 3 && in->axis == 0) return NEP_OK;
    return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (%s): input has %d dims with the features "
                    "on axis %d, wants 3 ([C, H, W] per sample, channels first)", n->name,
                    nep_op(n->op)->name, in->ndim, in->axis);
}

int64_t nep_flops_elementwise(const nep_graph *g, const nep_node *n) {
    return nep_shape_numel(&n->shape);
}
