/* Writes the ONNX export test cases that tests/onnx_test.sh hands to the ONNX checker
 * (tests/onnx_check.py) and to ONNX Runtime (tests/onnx_run.py).
 *
 * usage: build/tests/onnx_fixture OUTDIR
 *
 * For every model below, OUTDIR/<model>/ gets model.onnx, input.bin (float32 [N, C, H, W]:
 * the first N = 64 Fashion-MNIST test images, normalized with the test set's statistics),
 * expected.bin (float32 [N, classes]: nepenthe's evaluation-mode forward on them) and
 * meta.json ({"model", "input": [dims], "output": [dims]}); text_inputs, a graph of three
 * inputs with two attentions (a key mask; causal, grouped heads), and bert and roberta,
 * tiny classifiers built from config.json text (nep_text_encoder_build), write one file
 * per input, listed in meta.json's "inputs". Parameters are drawn from a
 * seeded generator, so the files are the same on every run; BatchNorm statistics are then
 * set from the batch (calibrate_bn) and the classifier rewritten (standardize_head) so
 * that the logits clearly depend on the image. The "collapsed" cases export what
 * nep_collapse makes of the model (with layers forced to zero entropy on these images)
 * while expected.bin stays the uncollapsed model's output. Exit status 0, or 1 with a
 * message. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nepenthe/collapse.h"
#include "nepenthe/data.h"
#include "nepenthe/llama.h"
#include "nepenthe/model.h"
#include "nepenthe/onnx.h"
#include "nepenthe/text_model.h"
#include "nepenthe/text_train.h"

#define N_IMAGES 64

/* ---- parameters ------------------------------------------------------------------ */

static void fill_uniform(nep_graph *g, const nep_param *p, double lo, double hi, nep_rng *rng) {
    for (int64_t i = 0; i < p->numel; i++)
        g->values[p->offset + i] = (nep_real)(lo + (hi - lo) * nep_rng_uniform(rng));
}

static const nep_param *node_param(const nep_graph *g, const nep_node *n, int i) {
    return &g->params[n->params[i]];
}

/* BatchNorm weight and bias away from their 1 and 0 start. */
static void randomize_bn(nep_graph *g, nep_rng *rng) {
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        if (n->op != NEP_OP_BATCHNORM) continue;
        fill_uniform(g, node_param(g, n, 0), 0.6, 1.2, rng);
        fill_uniform(g, node_param(g, n, 1), -0.2, 0.2, rng);
    }
}

/* Running statistics as a trained network has them: those of the batch x (one
 * training-mode forward with momentum 1), then moved at random (mean by up to 0.2
 * deviations, variance by a factor in [0.7, 1.4]) so that no BatchNorm is exactly a
 * standardization. Random statistics alone would blow up or wipe out the activations
 * of a deep random network, leaving logits that hardly depend on the image. */
static void calibrate_bn(nep_exec *ex, const nep_real *x, nep_rng *rng) {
    nep_graph *g = nep_exec_graph(ex);
    for (int k = 0; k < g->n_order; k++)
        if (g->nodes[g->order[k]].op == NEP_OP_BATCHNORM) g->nodes[g->order[k]].attrs.batchnorm.momentum = 1;
    nep_exec_set_training(ex, true, rng);
    nep_exec_forward(ex, x, N_IMAGES);
    nep_exec_set_training(ex, false, NULL);
    for (int k = 0; k < g->n_order; k++) {
        nep_node *n = &g->nodes[g->order[k]];
        if (n->op != NEP_OP_BATCHNORM) continue;
        n->attrs.batchnorm.momentum = 0.1;
        nep_real *mean = g->values + node_param(g, n, 2)->offset,
                 *var = g->values + node_param(g, n, 3)->offset;
        for (int64_t c = 0; c < node_param(g, n, 2)->numel; c++) {
            mean[c] += (nep_real)((nep_rng_uniform(rng) - 0.5) * 0.4 * sqrt((double)var[c]));
            var[c] *= (nep_real)(0.7 + 0.7 * nep_rng_uniform(rng));
        }
    }
}

/* Prunes about `frac` of every weight at random (mask 0, value 0). */
static void random_mask(nep_graph *g, double frac, nep_rng *rng) {
    for (int i = 0; i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        if (!(p->flags & NEP_PARAM_WEIGHT)) continue;
        for (int64_t k = 0; k < p->numel; k++)
            if (nep_rng_uniform(rng) < frac) g->masks[p->offset + k] = 0;
    }
    nep_graph_apply_masks(g);
}

/* ---- the models -------------------------------------------------------------------- */

static nep_status build_spec(nep_model_spec s, nep_graph *g, nep_rng *rng, nep_err *err) {
    return nep_model_build(&s, g, rng, err);
}

static nep_status mlp_masked(nep_graph *g, nep_rng *rng, nep_err *err) {
    NEP_TRY(build_spec(nep_model_spec_default(), g, rng, err));
    random_mask(g, 0.5, rng);
    return NEP_OK;
}

static nep_model_spec resmlp(nep_op_kind act) {
    nep_model_spec s = nep_model_spec_default();
    snprintf(s.name, sizeof s.name, "resmlp");
    s.width = 128, s.n_hidden = 2, s.hidden[0] = 256, s.hidden[1] = 192;
    s.act = act, s.dropout = 0.1;
    return s;
}
static nep_status resmlp_gelu(nep_graph *g, nep_rng *rng, nep_err *err) {
    return build_spec(resmlp(NEP_OP_GELU), g, rng, err);
}
static nep_status resmlp_silu(nep_graph *g, nep_rng *rng, nep_err *err) {
    return build_spec(resmlp(NEP_OP_SILU), g, rng, err);
}

/* The token-wise residual MLP: Linear on [N, 28, 28] tokens (MatMul in ONNX), PReLU
 * with one slope per feature on the last axis. */
static nep_status tokmlp_prelu(nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_model_spec s = nep_model_spec_default();
    snprintf(s.name, sizeof s.name, "tokmlp");
    s.width = 32, s.n_hidden = 2, s.hidden[0] = 48, s.hidden[1] = 40, s.act = NEP_OP_PRELU;
    return build_spec(s, g, rng, err);
}

/* The same with ReLU and blocks.0's rectifier forced into fixed states by fc1's bias
 * (+-100, far beyond what its inputs reach): collapsed before export, token by token
 * (the Affine into fc1, its OFF features dropped, fc1 into fc2, x + fc2(x), embed). */
static nep_status tokmlp_collapsed(nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_model_spec s = nep_model_spec_default();
    snprintf(s.name, sizeof s.name, "tokmlp");
    s.width = 32, s.n_hidden = 2, s.hidden[0] = 48, s.hidden[1] = 40;
    NEP_TRY(build_spec(s, g, rng, err));
    const nep_param *b = node_param(g, &g->nodes[nep_graph_find_node(g, "blocks.0.fc1")], 1);
    for (int64_t c = 0; c < b->numel; c++) g->values[b->offset + c] = c % 4 == 0 || c % 4 == 3 ? 100 : -100;
    return NEP_OK;
}

static nep_model_spec conv_spec(const char *name) {
    nep_model_spec s = nep_model_spec_default();
    snprintf(s.name, sizeof s.name, "%s", name);
    s.n_hidden = 0;
    return s;
}

static nep_status cnn(nep_graph *g, nep_rng *rng, nep_err *err) {
    NEP_TRY(build_spec(conv_spec("cnn"), g, rng, err));
    randomize_bn(g, rng);
    return NEP_OK;
}

/* With the stem's max-pool (padding 1) and one rectifier linearized to the identity. */
static nep_status resnet20(nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_model_spec s = conv_spec("resnet20");
    s.stem_pool = true;
    s.n_identity = 1;
    snprintf(s.identity[0], sizeof s.identity[0], "layer2.1.relu1");
    NEP_TRY(build_spec(s, g, rng, err));
    randomize_bn(g, rng);
    return NEP_OK;
}

/* Width 0.25: ReLU6, depthwise convolutions, the classifier's dropout. */
static nep_status mobilenetv2(nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_model_spec s = conv_spec("mobilenetv2");
    s.width_mult = 0.25;
    NEP_TRY(build_spec(s, g, rng, err));
    randomize_bn(g, rng);
    return NEP_OK;
}

/* Shifts a BatchNorm so that the ReLU after it is always ON (shift +100) or OFF (-100)
 * per channel, in turn as `shifts` says. */
static void force_bn(nep_graph *g, const char *node, const double *shifts, int period) {
    const nep_node *n = &g->nodes[nep_graph_find_node(g, node)];
    const nep_param *w = node_param(g, n, 0), *b = node_param(g, n, 1);
    for (int64_t c = 0; c < b->numel; c++) {
        g->values[w->offset + c] *= (nep_real)0.01;
        g->values[b->offset + c] = (nep_real)shifts[c % period];
    }
}

/* ResNet-20 with layer3.0's first ReLU always OFF (its branch becomes a bias) and half of
 * layer2.1's always ON, half OFF (the OFF channels are dropped): collapsed before export. */
static nep_status resnet20_collapsed(nep_graph *g, nep_rng *rng, nep_err *err) {
    NEP_TRY(build_spec(conv_spec("resnet20"), g, rng, err));
    randomize_bn(g, rng);
    const double off[1] = {-100}, mixed[2] = {100, -100};
    force_bn(g, "layer3.0.bn1", off, 1);
    force_bn(g, "layer2.1.bn1", mixed, 2);
    return NEP_OK;
}

/* Builder for the hand-made graphs: a failed allocation shows as a negative id, which
 * nep_graph_finalize then reports. */
static int add1(nep_graph *g, nep_op_kind op, const char *name, int x, nep_attrs a) {
    return x < 0 ? -1 : nep_graph_add1(g, op, name, x, a);
}
static void param(nep_graph *g, int node, const char *suffix, unsigned flags, int ndim,
                  const int64_t *shape) {
    if (node >= 0) nep_graph_add_param(g, node, suffix, flags, ndim, shape);
}
static int conv(nep_graph *g, const char *name, int x, int64_t in_c, int64_t out_c, int k, int stride,
                int pad, int groups, bool bias) {
    int id = add1(g, NEP_OP_CONV2D, name, x,
                  (nep_attrs){.conv = {.features = out_c, .bias = bias, .kernel = {k, k},
                                       .stride = {stride, stride}, .pad = {pad, pad}, .groups = groups}});
    param(g, id, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 4,
          (int64_t[]){out_c, in_c / groups, k, k});
    if (bias) param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){out_c});
    return id;
}
static int linear(nep_graph *g, const char *name, int x, int64_t in, int64_t out, bool bias) {
    int id = add1(g, NEP_OP_LINEAR, name, x, (nep_attrs){.linear = {.features = out, .bias = bias}});
    param(g, id, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2, (int64_t[]){out, in});
    if (bias) param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){out});
    return id;
}
static int per_channel(nep_graph *g, nep_op_kind op, const char *name, int x, int64_t c) {
    int id = add1(g, op, name, x, (nep_attrs){0});
    param(g, id, "weight", NEP_PARAM_TRAINABLE, 1, (int64_t[]){c});
    if (op == NEP_OP_AFFINE || op == NEP_OP_LAYERNORM) param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){c});
    return id;
}

/* Every parameter ~ N(0, 1/fan_in) (PReLU slopes and Affine scales around 0.25 and 1),
 * which keeps the logits of order one. */
static void init_handmade(nep_graph *g, nep_rng *rng) {
    for (int i = 0; i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        const nep_op_kind op = g->nodes[p->node].op;
        if (op == NEP_OP_PRELU) {
            fill_uniform(g, p, 0.05, 0.5, rng);
        } else if (op == NEP_OP_AFFINE || op == NEP_OP_LAYERNORM || op == NEP_OP_RMSNORM) {
            const bool scale = strstr(p->name, ".weight") != NULL;
            fill_uniform(g, p, scale ? 0.5 : -0.3, scale ? 1.5 : 0.3, rng);
        } else {
            const int64_t fan_in = p->ndim > 1 ? p->numel / p->shape[0] : 1;
            for (int64_t k = 0; k < p->numel; k++)
                g->values[p->offset + k] = (nep_real)(nep_rng_normal(rng) / sqrt((double)fan_in));
        }
    }
}

/* Image ops the model builders do not use: conv with bias, grouped conv, PReLU,
 * max-pool and average-pool (padding counted in the divisor), LeakyReLU, Affine, a
 * three-input Add, SiLU on an image, Dropout, Identity, a Linear without bias. */
static nep_status handmade_image(nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_graph_init(g);
    int x = nep_graph_input(g, "input", (nep_shape){3, {1, 28, 28}});
    x = conv(g, "conv1", x, 1, 8, 3, 1, 1, 1, true);
    x = per_channel(g, NEP_OP_PRELU, "act1", x, 8);
    x = add1(g, NEP_OP_MAXPOOL, "pool1", x, (nep_attrs){.pool = {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}}});
    x = conv(g, "conv2", x, 8, 16, 3, 1, 1, 2, false);
    x = add1(g, NEP_OP_LEAKY_RELU, "act2", x, (nep_attrs){.leaky_relu = {.slope = 0.1}});
    x = add1(g, NEP_OP_AVGPOOL, "pool2", x, (nep_attrs){.pool = {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}}});
    int a = per_channel(g, NEP_OP_AFFINE, "affine", x, 16);
    int c = conv(g, "conv3", x, 16, 16, 1, 1, 0, 1, true);
    c = add1(g, NEP_OP_SILU, "act3", c, (nep_attrs){0});
    x = x < 0 || a < 0 || c < 0 ? -1 : nep_graph_add(g, NEP_OP_ADD, "sum", (int[]){x, a, c}, 3, (nep_attrs){0});
    x = add1(g, NEP_OP_AVGPOOL, "pool3", x, (nep_attrs){.pool = {.kernel = {2, 2}}});
    x = add1(g, NEP_OP_DROPOUT, "drop", x, (nep_attrs){.dropout = {.p = 0.3}});
    x = add1(g, NEP_OP_FLATTEN, "flatten", x, (nep_attrs){0});
    x = linear(g, "fc1", x, 16 * 3 * 3, 32, false);
    x = add1(g, NEP_OP_IDENTITY, "keep", x, (nep_attrs){0});
    x = add1(g, NEP_OP_RELU6, "act4", x, (nep_attrs){0});
    x = linear(g, "head", x, 32, 10, true);
    if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building handmade_image");
    g->output = x;
    NEP_TRY(nep_graph_finalize(g, err));
    init_handmade(g, rng);
    return NEP_OK;
}

/* A vector input (ONNX input [N, 784]) with Affine and PReLU on vectors ([C] shaped
 * initializers), GELU, and a Linear without bias. */
static nep_status handmade_vector(nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_graph_init(g);
    int x = nep_graph_input(g, "input", (nep_shape){1, {784}});
    x = linear(g, "fc1", x, 784, 64, false);
    x = per_channel(g, NEP_OP_AFFINE, "affine", x, 64);
    x = per_channel(g, NEP_OP_PRELU, "act1", x, 64);
    x = add1(g, NEP_OP_DROPOUT, "drop", x, (nep_attrs){.dropout = {.p = 0.5}});
    x = linear(g, "fc2", x, 64, 48, true);
    x = add1(g, NEP_OP_GELU, "act2", x, (nep_attrs){0});
    x = linear(g, "head", x, 48, 10, true);
    if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building handmade_vector");
    g->output = x;
    NEP_TRY(nep_graph_finalize(g, err));
    init_handmade(g, rng);
    return NEP_OK;
}

/* Image rows as 28 tokens of 28 features through Llama's pieces: RMSNorm, a projection
 * to 2 heads of 8 and their rotary embedding with Llama 3's scaling (its three bands
 * reached: wavelengths 6.3, 63, 628 and 6283 against 16 and 64). */
static nep_status rmsnorm_rope_tokens(nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_graph_init(g);
    int x = nep_graph_input(g, "input", (nep_shape){2, {28, 28}, 1});
    x = per_channel(g, NEP_OP_RMSNORM, "norm", x, 28);
    x = add1(g, NEP_OP_ROPE, "rope", linear(g, "q_proj", x, 28, 16, false),
             (nep_attrs){.rope = {.heads = 2, .theta = 10000, .factor = 8, .low_freq_factor = 1, .high_freq_factor = 4,
                                  .original_max_position = 64}});
    x = linear(g, "head", add1(g, NEP_OP_FLATTEN, "flat", x, (nep_attrs){0}), 28 * 16, 10, true);
    if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building rmsnorm_rope_tokens");
    g->output = x;
    NEP_TRY(nep_graph_finalize(g, err));
    init_handmade(g, rng);
    return NEP_OK;
}

/* Image rows as 28 tokens of 28 features, LayerNorm'ed (a transformer block's norm). */
static nep_status layernorm_tokens(nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_graph_init(g);
    int x = nep_graph_input(g, "input", (nep_shape){2, {28, 28}, 1});
    x = per_channel(g, NEP_OP_LAYERNORM, "ln", x, 28);
    x = add1(g, NEP_OP_RELU, "act", linear(g, "fc", x, 28, 12, true), (nep_attrs){0});
    x = linear(g, "head", add1(g, NEP_OP_FLATTEN, "flat", x, (nep_attrs){0}), 28 * 12, 10, true);
    if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building layernorm_tokens");
    g->output = x;
    NEP_TRY(nep_graph_finalize(g, err));
    init_handmade(g, rng);
    return NEP_OK;
}

/* A parameter named as its node (torchvision's top-level ones), initialized by
 * init_handmade like the others. */
static int with_own_param(nep_graph *g, nep_op_kind op, const char *name, int x, int ndim,
                          const int64_t *shape) {
    int id = add1(g, op, name, x, (nep_attrs){0});
    param(g, id, "", NEP_PARAM_TRAINABLE, ndim, shape);
    return id;
}

/* A ViT without attention, torchvision's names: a 4x4 patch embedding (Conv2d), its 49
 * tokens (aliased in NHWC), the class token in front, the positional embedding, a
 * LayerNorm, a token-wise Linear and GELU, then the head on the class token. Without
 * attention nothing mixes the tokens, so the class token alone would not depend on the
 * image: the head reads it plus the tokens' mean. */
enum { VIT_DIM = 16, VIT_TOKENS = 49 };
static nep_status vit_tokens(nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_graph_init(g);
    int x = nep_graph_input(g, "input", (nep_shape){3, {1, 28, 28}});
    x = conv(g, "conv_proj", x, 1, VIT_DIM, 4, 4, 0, 1, true);
    x = add1(g, NEP_OP_TOKENS, "tokens", x, (nep_attrs){0});
    x = with_own_param(g, NEP_OP_CLASS_TOKEN, "class_token", x, 3, (int64_t[]){1, 1, VIT_DIM});
    x = with_own_param(g, NEP_OP_POS_EMBEDDING, "encoder.pos_embedding", x, 3,
                       (int64_t[]){1, VIT_TOKENS + 1, VIT_DIM});
    x = per_channel(g, NEP_OP_LAYERNORM, "encoder.ln", x, VIT_DIM);
    x = add1(g, NEP_OP_GELU, "mlp.act", linear(g, "mlp.fc", x, VIT_DIM, 32, true), (nep_attrs){0});
    const int cls = add1(g, NEP_OP_TAKE_TOKEN, "take_class", x, (nep_attrs){0});
    const int mean = add1(g, NEP_OP_TOKEN_MEAN, "token_mean", x, (nep_attrs){0});
    x = cls < 0 || mean < 0 ? -1 : nep_graph_add(g, NEP_OP_ADD, "pooled", (int[]){cls, mean}, 2, (nep_attrs){0});
    x = linear(g, "heads.head", x, 32, 10, true);
    if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building vit_tokens");
    g->output = x;
    NEP_TRY(nep_graph_finalize(g, err));
    init_handmade(g, rng);
    return NEP_OK;
}

/* A Swin without attention, torchvision's names: a 4x4 patch embedding to a 7x7 grid
 * (odd: PatchMerging pads it), its LayerNorm, PatchMerging (space to depth, its
 * LayerNorm and bias-free reduction), stochastic depth (the identity in evaluation),
 * the mean over the tokens and the head. */
static nep_status swin_grid(nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_graph_init(g);
    int x = nep_graph_input(g, "input", (nep_shape){3, {1, 28, 28}});
    x = conv(g, "features.0.0", x, 1, 8, 4, 4, 0, 1, true);
    x = add1(g, NEP_OP_TOKENS, "features.0.1", x, (nep_attrs){.tokens = {.grid = true}});
    x = per_channel(g, NEP_OP_LAYERNORM, "features.0.2", x, 8);
    x = add1(g, NEP_OP_PATCH_MERGE, "features.2", x, (nep_attrs){0});
    x = per_channel(g, NEP_OP_LAYERNORM, "features.2.norm", x, 32);
    x = linear(g, "features.2.reduction", x, 32, 16, false);
    x = add1(g, NEP_OP_DROP_PATH, "features.3.0.stochastic_depth", x, (nep_attrs){.drop_path = {.p = 0.2}});
    x = add1(g, NEP_OP_TOKEN_MEAN, "avgpool", x, (nep_attrs){0});
    x = linear(g, "head", x, 16, 10, true);
    if (x < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory building swin_grid");
    g->output = x;
    NEP_TRY(nep_graph_finalize(g, err));
    init_handmade(g, rng);
    return NEP_OK;
}

/* Token ids: each image's 4x4 patches, their normalized mean quantized to 8 levels
 * (49 ids), through an Embedding, a token-wise Linear and GELU, and a Linear head. */
enum { PATCHES = 49, LEVELS = 8 };
static nep_status embedding_patches(nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_graph_init(g);
    int x = nep_graph_input(g, "input", (nep_shape){.ndim = 1, .d = {PATCHES}, .dtype = NEP_TOKEN_IDS});
    int e = add1(g, NEP_OP_EMBEDDING, "emb", x, (nep_attrs){0});
    param(g, e, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){LEVELS, 6});
    int h = add1(g, NEP_OP_GELU, "act", linear(g, "fc", e, 6, 10, true), (nep_attrs){0});
    g->output = linear(g, "head", add1(g, NEP_OP_FLATTEN, "flat", h, (nep_attrs){0}), PATCHES * 10, 10, true);
    NEP_TRY(nep_graph_finalize(g, err));
    init_handmade(g, rng);
    return NEP_OK;
}
static void patch_ids(const nep_real *x, int32_t *ids) {
    for (int i = 0; i < N_IMAGES; i++)
        for (int p = 0; p < PATCHES; p++) {
            double sum = 0;
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) sum += x[i * 784 + (p / 7 * 4 + r) * 28 + p % 7 * 4 + c];
            const int level = (int)floor((sum / 16 + 1) * LEVELS / 4); /* x is about -1..3 */
            ids[i * PATCHES + p] = level < 0 ? 0 : level >= LEVELS ? LEVELS - 1 : level;
        }
}

/* nepenthe's vit and swin, small, with every parameter moved off its initialization (zero
 * biases and a near-zero position table would leave those paths of the export untested). */
static nep_status transformer(nep_graph *g, nep_rng *rng, nep_err *err, const char *name) {
    nep_model_spec s = conv_spec(name);
    nep_model_transformer_defaults(&s);
    s.in_c = 1, s.width = name[0] == 'v' ? 16 : 8, s.patch = name[0] == 'v' ? 7 : 2, s.mlp_ratio = 2;
    s.n_stages = name[0] == 'v' ? 1 : 2, s.window = 4, s.drop_path = 0.1;
    const int depths[2] = {2, 2}, heads[2] = {2, 4};
    memcpy(s.depths, depths, sizeof depths), memcpy(s.heads, heads, sizeof heads);
    NEP_TRY(build_spec(s, g, rng, err));
    for (int64_t i = 0; i < g->n_values; i++) g->values[i] += (nep_real)(0.1 * nep_rng_normal(rng));
    return NEP_OK;
}
/* 17 tokens, global attention */
static nep_status vit(nep_graph *g, nep_rng *rng, nep_err *err) { return transformer(g, rng, err, "vit"); }
/* 14x14 padded to 16 for windows of 4, shifted every second block; merged to 7x7 (padded to 8) */
static nep_status swin(nep_graph *g, nep_rng *rng, nep_err *err) { return transformer(g, rng, err, "swin"); }

/* The same with one block's GELU forced into fixed states by its mlp.0 bias (+-20, far
 * beyond what LayerNorm'd inputs reach, where GELU is z or 0 to float32's last bit):
 * collapsed before export (linearized, the OFF features dropped, mlp.3 composed with
 * mlp.0), so ONNX Runtime runs the collapsed graph against the uncollapsed model's output. */
static nep_status force_mlp(nep_graph *g, nep_err *err, const char *owner) {
    const int n = nep_graph_find_node(g, owner);
    if (n < 0) return nep_fail(err, NEP_ERR_ARG, "no node %s", owner);
    const nep_param *b = node_param(g, &g->nodes[n], 1);
    for (int64_t c = 0; c < b->numel; c++) g->values[b->offset + c] = c % 3 == 0 ? -20 : 20;
    return NEP_OK;
}
static nep_status vit_collapsed(nep_graph *g, nep_rng *rng, nep_err *err) {
    NEP_TRY(transformer(g, rng, err, "vit"));
    return force_mlp(g, err, "encoder.layers.encoder_layer_1.mlp.0");
}
static nep_status swin_collapsed(nep_graph *g, nep_rng *rng, nep_err *err) {
    NEP_TRY(transformer(g, rng, err, "swin"));
    return force_mlp(g, err, "features.1.1.mlp.0");
}

static const struct {
    const char *name;
    nep_status (*build)(nep_graph *g, nep_rng *rng, nep_err *err);
    bool collapse;
} models[] = {
    {"mlp_masked", mlp_masked},   {"resmlp_gelu", resmlp_gelu}, {"resmlp_silu", resmlp_silu},
    {"cnn", cnn},                 {"resnet20", resnet20},       {"mobilenetv2", mobilenetv2},
    {"handmade_image", handmade_image}, {"handmade_vector", handmade_vector},
    {"resnet20_collapsed", resnet20_collapsed, true}, {"tokmlp_prelu", tokmlp_prelu},
    {"tokmlp_collapsed", tokmlp_collapsed, true}, {"embedding_patches", embedding_patches},
    {"layernorm_tokens", layernorm_tokens}, {"rmsnorm_rope_tokens", rmsnorm_rope_tokens},
    {"vit_tokens", vit_tokens}, {"swin_grid", swin_grid},
    {"vit", vit}, {"swin", swin}, {"vit_collapsed", vit_collapsed, true},
    {"swin_collapsed", swin_collapsed, true},
};

/* nep_collapse of g with activation states counted on x; at least one layer must go. */
static nep_status collapse_on(nep_graph *g, const nep_real *x, nep_graph *out, nep_err *err) {
    nep_entropy e;
    nep_exec *ex;
    NEP_TRY(nep_entropy_init(&e, g, false, err));
    nep_status s = nep_exec_new(&ex, g, N_IMAGES, NULL, err);
    if (s == NEP_OK) {
        nep_exec_set_probe(ex, nep_entropy_probe, &e);
        nep_exec_forward(ex, x, N_IMAGES);
        nep_exec_free(ex);
        nep_collapse_info info = {0};
        s = nep_collapse(g, &e, &(nep_collapse_opts){0}, NULL, out, &info, err);
        if (s == NEP_OK && info.linearized == 0)
            s = nep_fail(err, NEP_ERR_ARG, "no layer was forced to zero entropy");
    }
    nep_entropy_free(&e);
    return s;
}

/* A random head gives logits that hardly depend on the image (so the argmax check would
 * say little) and that are a random projection catching a small part of the features'
 * variation, so that scaling them up also scales up float32 rounding (nepenthe's own
 * float and double outputs then differ by about 1e-4). So the head (a Linear with bias,
 * in every model here) becomes a nearest-prototype classifier: row c is the centered
 * feature vector of image c, W_c = h_c - mu (mu: the batch's mean features), then each
 * row is scaled so that logit c has mean 0 and deviation 1 over the batch (W_c /= s_c,
 * b_c = -m_c / s_c for the batch mean m_c and deviation s_c of W_c h). Masks are then
 * applied again. Returns the output after that. */
static const nep_real *standardize_head(nep_exec *ex, const nep_real *x) {
    nep_graph *g = nep_exec_graph(ex);
    const nep_node *head = &g->nodes[g->output];
    const nep_real *y = nep_exec_forward(ex, x, N_IMAGES);
    const int64_t C = head->attrs.linear.features;
    if (head->op != NEP_OP_LINEAR || !head->attrs.linear.bias || C > N_IMAGES) return y;
    const int64_t F = node_param(g, head, 0)->shape[1];
    nep_real *w = g->values + node_param(g, head, 0)->offset, *b = g->values + node_param(g, head, 1)->offset;
    const nep_real *h = nep_exec_node_output(ex, head->inputs[0]); /* [N_IMAGES, F] */
    for (int64_t f = 0; f < F; f++) {
        double mu = 0;
        for (int i = 0; i < N_IMAGES; i++) mu += (double)h[i * F + f] / N_IMAGES;
        for (int64_t c = 0; c < C; c++) w[c * F + f] = (nep_real)(h[c * F + f] - mu);
    }
    nep_graph_apply_masks(g); /* keeps pruned weights at exactly 0 */
    y = nep_exec_forward(ex, x, N_IMAGES);
    for (int64_t c = 0; c < C; c++) {
        double m = 0, v = 0;
        for (int i = 0; i < N_IMAGES; i++) m += (double)(y[i * C + c] - b[c]) / N_IMAGES;
        for (int i = 0; i < N_IMAGES; i++) v += pow((double)(y[i * C + c] - b[c]) - m, 2) / N_IMAGES;
        const double sd = sqrt(v) > 1e-12 ? sqrt(v) : 1;
        for (int64_t f = 0; f < F; f++) w[c * F + f] = (nep_real)(w[c * F + f] / sd);
        b[c] = (nep_real)(-m / sd);
    }
    return nep_exec_forward(ex, x, N_IMAGES);
}

/* ---- files ------------------------------------------------------------------------- */

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bool write_floats(const char *dir, const char *name, const nep_real *v, int64_t n) {
    char *path = join(dir, name);
    FILE *f = path ? fopen(path, "wb") : NULL;
    bool ok = f != NULL;
    for (int64_t i = 0; ok && i < n; i++) {
        const float x = (float)v[i];
        ok = fwrite(&x, sizeof x, 1, f) == 1;
    }
    if (f && fclose(f) != 0) ok = false;
    if (!ok) fprintf(stderr, "onnx_fixture: cannot write %s\n", path ? path : name);
    free(path);
    return ok;
}

static bool write_ids(const char *dir, const int32_t *ids, int64_t n) {
    char *path = join(dir, "input.bin");
    FILE *f = path ? fopen(path, "wb") : NULL;
    bool ok = f && fwrite(ids, sizeof *ids, (size_t)n, f) == (size_t)n;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) fprintf(stderr, "onnx_fixture: cannot write %s\n", path ? path : "input.bin");
    free(path);
    return ok;
}

static void dims_json(FILE *f, const nep_shape *s) {
    fprintf(f, "[%d", N_IMAGES);
    for (int d = 0; d < s->ndim; d++) fprintf(f, ", %lld", (long long)s->d[d]);
    fprintf(f, "]");
}

static bool write_meta(const char *dir, const char *model, const nep_graph *g) {
    char *path = join(dir, "meta.json");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f) {
        fprintf(f, "{\"model\": \"%s\", ", model);
        if (g->nodes[g->input].shape.dtype == NEP_TOKEN_IDS) fprintf(f, "\"dtype\": \"int32\", ");
        fprintf(f, "\"input\": ");
        dims_json(f, &g->nodes[g->input].shape);
        fprintf(f, ", \"output\": ");
        dims_json(f, &g->nodes[g->output].shape);
        fprintf(f, "}\n");
    }
    bool ok = f && fclose(f) == 0;
    if (!ok) fprintf(stderr, "onnx_fixture: cannot write %s\n", path ? path : "meta.json");
    free(path);
    return ok;
}

/* Builds one model, runs it on x [N_IMAGES, 784] in evaluation mode and writes its case. */
static bool write_case(const char *out, int m, const nep_real *x, const nep_normalize *norm) {
    char *dir = join(out, models[m].name), *onnx = dir ? join(dir, "model.onnx") : NULL;
    nep_graph g;
    nep_exec *ex;
    nep_err err = {0};
    nep_rng rng;
    nep_rng_seed(&rng, 1000 + (uint64_t)m);
    bool built = false, ran = false, ok = false;
    if (!onnx || (mkdir(dir, 0777) != 0 && errno != EEXIST)) {
        fprintf(stderr, "onnx_fixture: cannot create %s\n", dir ? dir : models[m].name);
        goto done;
    }
    if (models[m].build(&g, &rng, &err) != NEP_OK) goto fail;
    built = true;
    if (nep_exec_new(&ex, &g, N_IMAGES, NULL, &err) != NEP_OK) goto fail;
    ran = true;
    nep_exec_set_training(ex, false, NULL);
    const bool ids = g.nodes[g.input].shape.dtype == NEP_TOKEN_IDS;
    static int32_t tokens[N_IMAGES * PATCHES];
    const nep_real *y = NULL;
    if (ids) {
        patch_ids(x, tokens);
        if (nep_exec_forward_ids(ex, tokens, N_IMAGES, &y, &err) != NEP_OK) goto fail;
    } else {
        calibrate_bn(ex, x, &rng);
        y = standardize_head(ex, x);
    }
    nep_graph c;
    if (models[m].collapse && collapse_on(&g, x, &c, &err) != NEP_OK) goto fail;
    nep_status s = nep_onnx_export(models[m].collapse ? &c : &g, norm, onnx, &err);
    if (models[m].collapse) nep_graph_free(&c);
    if (s != NEP_OK) goto fail;
    ok = (ids ? write_ids(dir, tokens, N_IMAGES * PATCHES)
              : write_floats(dir, "input.bin", x, N_IMAGES * nep_shape_numel(&g.nodes[g.input].shape))) &&
         write_floats(dir, "expected.bin", y, N_IMAGES * nep_shape_numel(&g.nodes[g.output].shape)) &&
         write_meta(dir, models[m].name, &g);
    goto done;
fail:
    fprintf(stderr, "onnx_fixture: %s: %s\n", models[m].name, err.msg);
done:
    if (ran) nep_exec_free(ex);
    if (built) nep_graph_free(&g);
    free(onnx);
    free(dir);
    return ok;
}

/* A graph of three inputs, as a text encoder's: input_ids [TEXT_T] and token_type_ids
 * [TEXT_T] (int32, each through its own Embedding, summed, LayerNorm'd) and the
 * attention_mask [TEXT_T] (reals, 1 token / 0 padding), read by two attentions of
 * projections of the sum: one of 2 heads under the key mask, then one causal of 4 query
 * heads sharing 2 key/value heads; the token mean and a head. The ONNX inputs take the
 * nodes' names; each goes to its own file, listed in meta.json's "inputs". Ids, lengths
 * and parameters are drawn from a seeded generator. */
enum { TEXT_T = 6, TEXT_C = 8, TEXT_V = 11 };
static int text_linear(nep_graph *g, const char *name, int x, int64_t out) {
    const int id = nep_graph_add1(g, NEP_OP_LINEAR, name, x, (nep_attrs){.linear = {.features = out, .bias = true}});
    if (id >= 0 && (nep_graph_add_param(g, id, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){out, TEXT_C}) < 0 ||
                    nep_graph_add_param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){out}) < 0))
        return -1;
    return id;
}
static nep_status text_inputs(nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_graph_init(g);
    const nep_shape ids = {.ndim = 1, .d = {TEXT_T}, .dtype = NEP_TOKEN_IDS};
    const int words = nep_graph_input(g, "input_ids", ids);
    const int types = nep_graph_input(g, "token_type_ids", ids);
    const int mask = nep_graph_input(g, "attention_mask", (nep_shape){1, {TEXT_T}});
    const int w = nep_graph_add1(g, NEP_OP_EMBEDDING, "word", words, (nep_attrs){{0}});
    const int t = nep_graph_add1(g, NEP_OP_EMBEDDING, "type", types, (nep_attrs){{0}});
    const int s = nep_graph_add(g, NEP_OP_ADD, "sum", (int[]){w, t}, 2, (nep_attrs){{0}});
    const int ln = nep_graph_add1(g, NEP_OP_LAYERNORM, "ln", s, (nep_attrs){{0}});
    const int a1 = nep_graph_add(g, NEP_OP_SDPA, "att1",
                                 (int[]){text_linear(g, "q1", ln, TEXT_C), text_linear(g, "k1", ln, TEXT_C),
                                         text_linear(g, "v1", ln, TEXT_C), mask}, 4,
                                 (nep_attrs){.sdpa = {.heads = 2}});
    const int a2 = nep_graph_add(g, NEP_OP_SDPA, "att2",
                                 (int[]){text_linear(g, "q2", a1, TEXT_C), text_linear(g, "k2", a1, TEXT_C / 2),
                                         text_linear(g, "v2", a1, TEXT_C / 2)}, 3,
                                 (nep_attrs){.sdpa = {.heads = 4, .kv_heads = 2, .causal = true}});
    const int m = nep_graph_add1(g, NEP_OP_TOKEN_MEAN, "mean", a2, (nep_attrs){{0}});
    g->output = nep_graph_add1(g, NEP_OP_LINEAR, "head", m, (nep_attrs){.linear = {.features = 3, .bias = true}});
    if (g->output < 0 ||
        nep_graph_add_param(g, w, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){TEXT_V, TEXT_C}) < 0 ||
        nep_graph_add_param(g, t, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){2, TEXT_C}) < 0 ||
        nep_graph_add_param(g, ln, "weight", NEP_PARAM_TRAINABLE, 1, (int64_t[]){TEXT_C}) < 0 ||
        nep_graph_add_param(g, ln, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){TEXT_C}) < 0 ||
        nep_graph_add_param(g, g->output, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2,
                            (int64_t[]){3, TEXT_C}) < 0 ||
        nep_graph_add_param(g, g->output, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){3}) < 0)
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory building text_inputs");
    NEP_TRY(nep_graph_finalize(g, err));
    for (int64_t i = 0; i < g->n_values; i++) g->values[i] = (nep_real)nep_rng_normal(rng);
    return NEP_OK;
}

/* Tiny BERT (tanh GELU, sentence pairs) and RoBERTa (positions after padding row 1)
 * classifiers from config.json text, initialized as transformers does but with
 * initializer_range 0.5, so that the logits clearly depend on the tokens. */
static const char *const text_configs[2] = {
    "{\"model_type\": \"bert\", \"hidden_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 2, "
    "\"intermediate_size\": 24, \"hidden_act\": \"gelu_new\", \"max_position_embeddings\": 20, "
    "\"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12, \"vocab_size\": 11, \"pad_token_id\": 0, "
    "\"num_labels\": 3, \"initializer_range\": 0.5}",
    "{\"model_type\": \"roberta\", \"hidden_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
    "\"intermediate_size\": 24, \"hidden_act\": \"gelu\", \"max_position_embeddings\": 20, "
    "\"type_vocab_size\": 1, \"layer_norm_eps\": 1e-5, \"vocab_size\": 11, \"pad_token_id\": 1, "
    "\"num_labels\": 3, \"initializer_range\": 0.5}"};

static nep_status text_encoder(int which, int64_t T, nep_graph *g, nep_rng *rng, nep_err *err) {
    nep_hf_config cfg;
    NEP_TRY(nep_hf_config_parse(text_configs[which], strlen(text_configs[which]), "config.json", &cfg, err));
    const nep_status s = nep_text_encoder_build(&cfg, T, NEP_TEXT_HEAD_CLASSIFY, g, rng, err);
    nep_hf_config_free(&cfg);
    return s;
}

/* The text model g collapsed (into c) after its layer 0's GELU is forced into fixed
 * states by intermediate.dense's bias (+-20, as force_mlp), the states counted on the
 * case's sequences. The layer's output.dense is scaled by 1/20, else its outputs of 20
 * swamp the residual stream and leave layer 1's GELU in fixed states too, which would
 * linearize only approximately: exactly one layer collapses. */
static nep_status collapse_text(nep_graph *g, const int32_t *ids, const int32_t *types, const nep_real *mask,
                                nep_graph *c, nep_err *err) {
    const char *prefix = nep_graph_find_node(g, "roberta.embeddings.LayerNorm") >= 0 ? "roberta" : "bert";
    char owner[96], out[96];
    snprintf(owner, sizeof owner, "%s.encoder.layer.0.intermediate.dense", prefix);
    snprintf(out, sizeof out, "%s.encoder.layer.0.output.dense", prefix);
    NEP_TRY(force_mlp(g, err, owner));
    const int o = nep_graph_find_node(g, out);
    if (o < 0) return nep_fail(err, NEP_ERR_ARG, "no node %s", out);
    const nep_param *w = node_param(g, &g->nodes[o], 0);
    for (int64_t i = 0; i < w->numel; i++) g->values[w->offset + i] /= 20;
    static int32_t unlabelled[N_IMAGES];
    for (int i = 0; i < N_IMAGES; i++) unlabelled[i] = -1;
    nep_text_tensors d = {.n = N_IMAGES, .T = TEXT_T, .ids = (int32_t *)ids, .types = (int32_t *)types,
                          .mask = (nep_real *)mask, .labels = unlabelled};
    nep_entropy e;
    NEP_TRY(nep_entropy_init(&e, g, false, err));
    nep_status s = nep_entropy_measure_split(&e, g, &(nep_split){.text = &d}, N_IMAGES, 0, NULL, err);
    nep_collapse_info info = {0};
    if (s == NEP_OK) s = nep_collapse(g, &e, NULL, NULL, c, &info, err);
    nep_entropy_free(&e);
    if (s == NEP_OK && info.linearized != 1)
        s = nep_fail(err, NEP_ERR_ARG, "%s: %d layers collapsed, not 1", prefix, info.linearized);
    return s;
}

/* Case text_inputs (which -1), bert (0) or roberta (1): N_IMAGES sequences of 2..T
 * tokens, then padding (RoBERTa's pad id there, so that its positions skip them). T below
 * TEXT_T (bert_len4, roberta_len4): the model exported for TEXT_T tokens runs sequences of
 * T, against the same weights built for T. collapse (bert_collapsed, roberta_collapsed):
 * the model with a layer forced to fixed states, collapsed before export. */
static bool write_text_case(const char *out, int which, int T, bool collapse) {
    static const char *const names[3] = {"text_inputs", "bert", "roberta"};
    char name[32];
    snprintf(name, sizeof name, collapse ? "%s_collapsed" : T < TEXT_T ? "%s_len%d" : "%s", names[which + 1], T);
    char *dir = join(out, name), *onnx = dir ? join(dir, "model.onnx") : NULL;
    static int32_t words[N_IMAGES * TEXT_T], types[N_IMAGES * TEXT_T];
    static nep_real mask[N_IMAGES * TEXT_T];
    nep_graph g = {0}, run = {0}, collapsed = {0};
    nep_exec *ex = NULL;
    nep_err err = {0};
    nep_rng rng;
    nep_rng_seed(&rng, 77 + (uint64_t)(which + 1));
    bool ok = onnx && (mkdir(dir, 0777) == 0 || errno == EEXIST) &&
              (which < 0 ? text_inputs(&g, &rng, &err) : text_encoder(which, TEXT_T, &g, &rng, &err)) == NEP_OK;
    if (ok && T < TEXT_T) { /* the weights do not depend on T */
        ok = text_encoder(which, T, &run, NULL, &err) == NEP_OK && run.n_values == g.n_values;
        if (ok) memcpy(run.values, g.values, sizeof *g.values * (size_t)g.n_values);
    }
    for (int b = 0; ok && b < N_IMAGES; b++) {
        const int len = 2 + (int)nep_rng_below(&rng, (uint64_t)T - 1); /* 2..T tokens, then padding */
        for (int i = b * T; i < (b + 1) * T; i++) {
            const bool real = i - b * T < len;
            words[i] = which < 0 ? (int32_t)nep_rng_below(&rng, TEXT_V)
                       : real    ? 2 + (int32_t)nep_rng_below(&rng, TEXT_V - 2)
                                 : which; /* the pad id: BERT 0, RoBERTa 1 */
            types[i] = which == 1 ? 0 : (int32_t)nep_rng_below(&rng, 2);
            mask[i] = real;
        }
    }
    const nep_real *y = NULL;
    const void *x[3] = {words, types, mask};
    ok = ok && (!collapse || collapse_text(&g, words, types, mask, &collapsed, &err) == NEP_OK);
    ok = ok && nep_exec_new(&ex, T < TEXT_T ? &run : &g, N_IMAGES, NULL, &err) == NEP_OK &&
         nep_exec_run(ex, x, 3, N_IMAGES, &y, &err) == NEP_OK &&
         nep_onnx_export(collapse ? &collapsed : &g, NULL, onnx, &err) == NEP_OK;
    FILE *f = NULL;
    char *meta = ok ? join(dir, "meta.json") : NULL, *wpath = ok ? join(dir, "input_ids.bin") : NULL,
         *tpath = ok ? join(dir, "token_type_ids.bin") : NULL;
    ok = ok && meta && wpath && tpath;
    if (ok && (f = fopen(wpath, "wb"))) ok = fwrite(words, sizeof *words, N_IMAGES * T, f) == (size_t)(N_IMAGES * T);
    ok = ok && f && fclose(f) == 0;
    f = NULL;
    if (ok && (f = fopen(tpath, "wb"))) ok = fwrite(types, sizeof *types, N_IMAGES * T, f) == (size_t)(N_IMAGES * T);
    ok = ok && f && fclose(f) == 0;
    ok = ok && write_floats(dir, "attention_mask.bin", mask, N_IMAGES * T) &&
         write_floats(dir, "expected.bin", y, N_IMAGES * 3);
    f = ok ? fopen(meta, "w") : NULL;
    if (f)
        fprintf(f, "{\"model\": \"%s\", \"inputs\": ["
                   "{\"name\": \"input_ids\", \"dtype\": \"int32\", \"shape\": [%d, %d]}, "
                   "{\"name\": \"token_type_ids\", \"dtype\": \"int32\", \"shape\": [%d, %d]}, "
                   "{\"name\": \"attention_mask\", \"dtype\": \"float32\", \"shape\": [%d, %d]}], "
                   "\"output\": [%d, 3]}\n",
                name, N_IMAGES, T, N_IMAGES, T, N_IMAGES, T, N_IMAGES);
    ok = ok && f && fclose(f) == 0;
    if (!ok) fprintf(stderr, "onnx_fixture: %s: %s\n", name, err.msg[0] ? err.msg : "cannot write its files");
    nep_exec_free(ex);
    nep_graph_free(&g), nep_graph_free(&run), nep_graph_free(&collapsed);
    free(meta), free(wpath), free(tpath), free(onnx), free(dir);
    return ok;
}

/* Case llama: a tiny LlamaForCausalLM (RMSNorm, rotary q and k with Llama 3's scaling,
 * causal grouped-query attention, SwiGLU, lm_head tied to the embedding table) on N_IMAGES right-padded sequences of TEXT_T
 * tokens; its logits [N, T, vocab] against ONNX Runtime's. */
static bool write_llama_case(const char *out) {
    static const char config[] =
        "{\"model_type\": \"llama\", \"hidden_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
        "\"num_key_value_heads\": 2, \"intermediate_size\": 24, \"hidden_act\": \"silu\", "
        "\"max_position_embeddings\": 32, \"vocab_size\": 11, \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000, "
        "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1, "
        "\"high_freq_factor\": 4, \"original_max_position_embeddings\": 8}, \"initializer_range\": 0.5, "
        "\"tie_word_embeddings\": true}";
    enum { V = 11 };
    char *dir = join(out, "llama"), *onnx = dir ? join(dir, "model.onnx") : NULL, *meta = dir ? join(dir, "meta.json") : NULL;
    static int32_t ids[N_IMAGES * TEXT_T];
    static nep_real mask[N_IMAGES * TEXT_T];
    nep_hf_config cfg = {0};
    nep_graph g = {0};
    nep_exec *ex = NULL;
    nep_err err = {0};
    nep_rng rng;
    nep_rng_seed(&rng, 91);
    bool ok = onnx && meta && (mkdir(dir, 0777) == 0 || errno == EEXIST) &&
              nep_hf_config_parse(config, sizeof config - 1, "config.json", &cfg, &err) == NEP_OK &&
              nep_llama_build(&cfg, TEXT_T, &g, &rng, &err) == NEP_OK;
    for (int b = 0; ok && b < N_IMAGES; b++) {
        const int len = 2 + (int)nep_rng_below(&rng, TEXT_T - 1); /* 2..T tokens, then padding */
        for (int i = 0; i < TEXT_T; i++) {
            ids[b * TEXT_T + i] = i < len ? (int32_t)nep_rng_below(&rng, V) : 0;
            mask[b * TEXT_T + i] = i < len;
        }
    }
    const nep_real *y = NULL;
    const void *x[2] = {ids, mask};
    ok = ok && nep_exec_new(&ex, &g, N_IMAGES, NULL, &err) == NEP_OK && nep_exec_run(ex, x, 2, N_IMAGES, &y, &err) == NEP_OK &&
         nep_onnx_export(&g, NULL, onnx, &err) == NEP_OK;
    char *ipath = ok ? join(dir, "input_ids.bin") : NULL;
    FILE *f = ipath ? fopen(ipath, "wb") : NULL;
    ok = ok && f && fwrite(ids, sizeof *ids, N_IMAGES * TEXT_T, f) == (size_t)(N_IMAGES * TEXT_T);
    ok = ok && f && fclose(f) == 0;
    ok = ok && write_floats(dir, "attention_mask.bin", mask, N_IMAGES * TEXT_T) &&
         write_floats(dir, "expected.bin", y, (int64_t)N_IMAGES * TEXT_T * V);
    f = ok ? fopen(meta, "w") : NULL;
    if (f)
        fprintf(f, "{\"model\": \"llama\", \"inputs\": ["
                   "{\"name\": \"input_ids\", \"dtype\": \"int32\", \"shape\": [%d, %d]}, "
                   "{\"name\": \"attention_mask\", \"dtype\": \"float32\", \"shape\": [%d, %d]}], "
                   "\"output\": [%d, %d, %d]}\n",
                N_IMAGES, TEXT_T, N_IMAGES, TEXT_T, N_IMAGES, TEXT_T, V);
    ok = ok && f && fclose(f) == 0;
    if (!ok) fprintf(stderr, "onnx_fixture: llama: %s\n", err.msg[0] ? err.msg : "cannot write its files");
    nep_exec_free(ex);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
    free(ipath), free(meta), free(onnx), free(dir);
    return ok;
}

/* The first N_IMAGES test images, normalized with the test set's statistics. */
static bool load_images(nep_real *x, nep_normalize *norm) {
    nep_dataset d;
    nep_loader l;
    nep_err err;
    int32_t y[N_IMAGES];
    if (nep_fashion_mnist_load(NULL, false, &d, &err) != NEP_OK) {
        fprintf(stderr, "onnx_fixture: %s\n", err.msg);
        return false;
    }
    nep_normalize_compute(&d, norm);
    bool ok = nep_loader_init(&l, &d, norm, N_IMAGES, false, false, &err) == NEP_OK;
    if (ok) {
        ok = nep_loader_next(&l, x, y) == N_IMAGES;
        nep_loader_free(&l);
    } else {
        fprintf(stderr, "onnx_fixture: %s\n", err.msg);
    }
    nep_dataset_free(&d);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: onnx_fixture OUTDIR\n");
        return 2;
    }
    static nep_real x[N_IMAGES * 28 * 28];
    nep_normalize norm;
    if (!load_images(x, &norm)) return 1;
    for (size_t m = 0; m < sizeof models / sizeof *models; m++)
        if (!write_case(argv[1], (int)m, x, &norm)) return 1;
    for (int which = -1; which < 2; which++)
        if (!write_text_case(argv[1], which, TEXT_T, false) ||
            (which >= 0 && (!write_text_case(argv[1], which, 4, false) || !write_text_case(argv[1], which, TEXT_T, true))))
            return 1;
    if (!write_llama_case(argv[1])) return 1;
    printf("onnx_fixture: %zu models in %s\n", sizeof models / sizeof *models + 8, argv[1]);
    return 0;
}
