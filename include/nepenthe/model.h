/* Model builders. A nep_model_spec names an architecture and its options; it is what a
 * checkpoint stores (as JSON, under "arch") so that a graph can be rebuilt from it. */
#ifndef NEPENTHE_MODEL_H
#define NEPENTHE_MODEL_H

#include "nepenthe/graph.h"
#include "nepenthe/rng.h"

#define NEP_MAX_HIDDEN 16
#define NEP_MAX_IDENTITY 64
#define NEP_MAX_STAGES 8

typedef struct nep_model_spec {
    char name[32];          /* "mlp", "resmlp", "tokmlp", "cnn", "resnet20", ... */
    int in_c, in_h, in_w;   /* per-sample input shape */
    int classes;
    int n_hidden;
    int64_t hidden[NEP_MAX_HIDDEN]; /* mlp: hidden Linear widths; resmlp: each block's inner width */
    int64_t width;          /* resmlp: embedding width (the residual stream) */
    nep_op_kind act;        /* rectifier after each hidden layer */
    double slope;           /* LeakyReLU negative slope */
    double dropout;         /* probability after each rectifier; 0 = none */
    double width_mult;      /* mobilenetv2: width multiplier (1.0, 0.75) */
    bool stem_pool;         /* resnet: max-pool after the stem (the authors' code) */
    /* vit, swin (torchvision's VisionTransformer and SwinTransformer): `width` is the
     * embedding width (Swin: of the first stage; each patch merging doubles it), `act` the
     * MLP's rectifier (GELU; ReLU for the paper's rectifier swap), `dropout` torchvision's
     * dropout (after the attention and in the MLP). */
    int patch;              /* patch size: the stem conv's kernel and stride */
    int n_stages;           /* vit: 1 */
    int depths[NEP_MAX_STAGES]; /* blocks per stage (vit: encoder layers) */
    int heads[NEP_MAX_STAGES];  /* attention heads per stage */
    int window;             /* swin: window size (shifted by half in every second block) */
    double mlp_ratio;       /* MLP hidden width / width */
    double drop_path;       /* swin: stochastic depth of the last block (linear from 0) */
    int n_identity;         /* rectifiers replaced by the identity (structural baselines) */
    bool collapsed;         /* rewritten by collapse: no builder makes this graph; a
                             * checkpoint carries it whole (its "graph" metadata) */
    char identity[NEP_MAX_IDENTITY][NEP_NAME_LEN];
} nep_model_spec;

/* mlp: input -> Flatten -> [fc_i -> act_i (-> drop_i)] x n_hidden -> fc_{n+1}.
 * resmlp (the transformer feed-forward shape): input -> Flatten -> embed (Linear to
 * width) -> blocks.i: x + fc2(act(fc1(x))) for each hidden width -> head.
 * tokmlp: resmlp token by token: the input's C*H rows are tokens of W features
 * ([T, W], features last; Fashion-MNIST: 28 tokens of 28), embed and the blocks map
 * each token's features, then Flatten -> head.
 * vit: torchvision's VisionTransformer: conv_proj (patch embedding) -> class_token ->
 * encoder.pos_embedding -> encoder.layers.encoder_layer_<i> (ln_1, self_attention, ln_2,
 * mlp.0, mlp.1 act, mlp.3) -> encoder.ln -> token 0 -> heads.head.
 * swin: torchvision's SwinTransformer: features.0 (conv, permute, norm), then per stage
 * features.<2s+1>.<b> blocks (norm1, attn in windows shifted every second block,
 * stochastic_depth, norm2, mlp.0, mlp.1 act, mlp.3) and features.<2s+2> patch merging
 * (norm, reduction) between stages -> norm -> token mean -> head.
 * The default: the MLP on Fashion-MNIST, 784-1024-1024-1024-10, ReLU. */
nep_model_spec nep_model_spec_default(void);
/* The architecture defaults of vit (ViT-B/16: patch 16, width 768, 12 layers of 12 heads,
 * MLP ratio 4) and swin (Swin-T: patch 4, width 96, depths 2 2 6 2, heads 3 6 12 24,
 * window 7, MLP ratio 4, stochastic depth 0.2), with GELU, into s; false for other names. */
bool nep_model_transformer_defaults(nep_model_spec *s);

/* Builds and finalizes the graph; with rng, initializes parameters like PyTorch's
 * defaults (Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias; PReLU 0.25);
 * without, leaves them zero (for loading). */
nep_status nep_model_build(const nep_model_spec *spec, nep_graph *g, nep_rng *rng,
                           nep_err *err);

/* Rectifier names used on the command line and in JSON: relu, leaky_relu, prelu,
 * relu6, gelu, silu. */
const char *nep_act_name(nep_op_kind act);
int nep_act_from_name(const char *name); /* -1 if unknown */

/* JSON round trip of a spec; the string is malloc'd. */
char *nep_model_spec_to_json(const nep_model_spec *spec);
nep_status nep_model_spec_from_json(const char *json, nep_model_spec *spec, nep_err *err);

#endif
