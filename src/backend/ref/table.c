#include "backend/ref/ref.h"

static const nep_kernel *const table[NEP_OP_COUNT] = {
    [NEP_OP_INPUT] = &nep_ref_none,
    [NEP_OP_LINEAR] = &nep_ref_linear,
    [NEP_OP_RELU] = &nep_ref_relu,
    [NEP_OP_LEAKY_RELU] = &nep_ref_leaky_relu,
    [NEP_OP_PRELU] = &nep_ref_prelu,
    [NEP_OP_RELU6] = &nep_ref_relu6,
    [NEP_OP_GELU] = &nep_ref_gelu,
    [NEP_OP_SILU] = &nep_ref_silu,
    [NEP_OP_IDENTITY] = &nep_ref_none,
    [NEP_OP_FLATTEN] = &nep_ref_none, /* NCHW: the executor aliases it */
    [NEP_OP_DROPOUT] = &nep_ref_dropout,
    [NEP_OP_ADD] = &nep_ref_add,
    [NEP_OP_CONV2D] = &nep_ref_conv2d,
    [NEP_OP_BATCHNORM] = &nep_ref_batchnorm,
    [NEP_OP_MAXPOOL] = &nep_ref_maxpool,
    [NEP_OP_AVGPOOL] = &nep_ref_avgpool,
    [NEP_OP_GLOBAL_AVGPOOL] = &nep_ref_global_avgpool,
    [NEP_OP_AFFINE] = &nep_ref_affine,
    [NEP_OP_EMBEDDING] = &nep_ref_embedding,
    [NEP_OP_LAYERNORM] = &nep_ref_layernorm,
    [NEP_OP_ATTENTION] = &nep_ref_attention,
    [NEP_OP_SDPA] = &nep_ref_sdpa,
    [NEP_OP_TANH] = &nep_ref_tanh,
    [NEP_OP_RMSNORM] = &nep_ref_rmsnorm,
    [NEP_OP_ROPE] = &nep_ref_rope,
    [NEP_OP_MUL] = &nep_ref_mul,
    [NEP_OP_TOKENS] = &nep_ref_tokens, /* NCHW: a transpose (aliased for 1 channel or position) */
    [NEP_OP_CLASS_TOKEN] = &nep_ref_class_token,
    [NEP_OP_POS_EMBEDDING] = &nep_ref_pos_embedding,
    [NEP_OP_TAKE_TOKEN] = &nep_ref_take_token,
    [NEP_OP_TOKEN_MEAN] = &nep_ref_token_mean,
    [NEP_OP_PATCH_MERGE] = &nep_ref_patch_merge,
    [NEP_OP_DROP_PATH] = &nep_ref_drop_path,
};

static const nep_kernel *kernel(nep_op_kind kind) { return table[kind]; }

const nep_backend nep_backend_ref = {.name = "ref", .nhwc = false, .kernel = kernel};
