/* Model builders. A nep_model_spec names an architecture and its options; it is what a
 * checkpoint stores (as JSON, under "arch") so that a graph can be rebuilt from it. */
#ifndef NEPENTHE_MODEL_H
#define NEPENTHE_MODEL_H

#include "nepenthe/graph.h"
#include "nepenthe/rng.h"

#define NEP_MAX_HIDDEN 16
#define NEP_MAX_IDENTITY 64

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
 * The default: the MLP on Fashion-MNIST, 784-1024-1024-1024-10, ReLU. */
nep_model_spec nep_model_spec_default(void);

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
