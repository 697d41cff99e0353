#include "backend/cpu/kernels.h"

static const nep_kernel *const table[NEP_OP_COUNT] = {
    [NEP_OP_INPUT] = &nep_cpu_input,
    [NEP_OP_LINEAR] = &nep_cpu_linear,
    [NEP_OP_RELU] = &nep_cpu_relu,
    [NEP_OP_LEAKY_RELU] = &nep_cpu_leaky_relu,
    [NEP_OP_PRELU] = &nep_cpu_prelu,
    [NEP_OP_RELU6] = &nep_cpu_relu6,
    [NEP_OP_GELU] = &nep_cpu_gelu,
    [NEP_OP_SILU] = &nep_cpu_silu,
    [NEP_OP_IDENTITY] = &nep_cpu_identity,
    [NEP_OP_FLATTEN] = &nep_cpu_flatten,
    [NEP_OP_DROPOUT] = &nep_cpu_dropout,
    [NEP_OP_ADD] = &nep_cpu_add,
    [NEP_OP_CONV2D] = &nep_cpu_conv2d,
    [NEP_OP_BATCHNORM] = &nep_cpu_batchnorm,
    [NEP_OP_MAXPOOL] = &nep_cpu_maxpool,
    [NEP_OP_AVGPOOL] = &nep_cpu_avgpool,
    [NEP_OP_GLOBAL_AVGPOOL] = &nep_cpu_global_avgpool,
    [NEP_OP_AFFINE] = &nep_cpu_affine,
    [NEP_OP_EMBEDDING] = &nep_cpu_embedding,
    [NEP_OP_LAYERNORM] = &nep_cpu_layernorm,
    [NEP_OP_ATTENTION] = &nep_cpu_attention,
    [NEP_OP_SDPA] = &nep_cpu_sdpa,
    [NEP_OP_TANH] = &nep_cpu_tanh,
    [NEP_OP_RMSNORM] = &nep_cpu_rmsnorm,
    [NEP_OP_ROPE] = &nep_cpu_rope,
    [NEP_OP_MUL] = &nep_cpu_mul,
    [NEP_OP_TOKENS] = &nep_cpu_tokens,
    [NEP_OP_CLASS_TOKEN] = &nep_cpu_class_token,
    [NEP_OP_POS_EMBEDDING] = &nep_cpu_pos_embedding,
    [NEP_OP_TAKE_TOKEN] = &nep_cpu_take_token,
    [NEP_OP_TOKEN_MEAN] = &nep_cpu_token_mean,
    [NEP_OP_PATCH_MERGE] = &nep_cpu_patch_merge,
    [NEP_OP_DROP_PATH] = &nep_cpu_drop_path,
};

static const nep_kernel *kernel(nep_op_kind kind) { return table[kind]; }

const nep_backend nep_backend_cpu = {.name = "cpu", .nhwc = true, .kernel = kernel};
