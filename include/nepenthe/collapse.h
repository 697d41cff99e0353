/* Collapse (SPEC section 6): turn layers that NEPENTHE drove to zero entropy into a
 * shallower network for real. Every step is a function from a graph to a new graph
 * (src/collapse/); the input is never modified.
 *
 *   linearize  every rectifier layer whose neurons each stayed in one state on the data
 *              (H_l = 0) becomes a per-channel Affine: ON -> 1, OFF -> 0 (ReLU, ReLU6) or
 *              the slope (LeakyReLU, PReLU), OFF+ -> the constant 6 (ReLU6); GELU and
 *              SiLU the same way, which is approximate. ReLU and ReLU6 neurons always OFF
 *              in layers that stay get an Affine mask of 0 after them.
 *              This graph is the reference the others must equal.
 *   rewrite    a table of rules (src/collapse/engine.c), run to a fixed point, each
 *              counted by name in nep_collapse_info.rules:
 *     fold       bn_to_affine (nep_bn_eval_affine, the forward's own formula);
 *                affine_into_matmul_after / _before (an Affine into the conv or Linear
 *                before or after it); merge_affines; affine_through_global_avgpool;
 *                remove_identity, remove_dropout (Dropout and StochasticDepth),
 *                remove_identity_affine.
 *     channels   drop_constant_channels: channels that are constant after a conv/Linear
 *                (and the per-channel ops, depthwise convs, max-pools and unpadded
 *                average pools after it) are deleted with the matching inputs
 *                of their consumers, the constant folded into the consumers' bias where
 *                that is exact; add_of_constant_to_affine.
 *     compose    compose_linear_linear, compose_conv_conv (exact when the second has no
 *                padding, or the first is a bias-free 1x1), compose_conv_conv_border
 *                (otherwise, only with allow_approx, as the zero-padded border differs),
 *                each only when it lowers FLOPs; residual_fold: x + L(x) becomes one
 *                layer (I + W) when L is a Linear or a stride-1 "same" conv.
 * Channels are the neuron axis of each tensor (nep_shape.axis): an image's planes, or
 * the features of every token of a sequence [T, C], which Linear maps token by token. */
#ifndef NEPENTHE_COLLAPSE_H
#define NEPENTHE_COLLAPSE_H

#include "nepenthe/data.h"
#include "nepenthe/entropy.h"

typedef struct nep_collapse_opts {
    bool allow_approx;      /* compose kxk convs although the padded border differs */
} nep_collapse_opts;

/* How often one rewrite rule applied. */
#define NEP_COLLAPSE_MAX_RULES 24
typedef struct nep_rule_count {
    const char *name;       /* "bn_to_affine", ...: the rule's name in the engine's table */
    bool exact;             /* false: it changes the outputs (run only with allow_approx) */
    int count;
} nep_rule_count;

/* What the rewrites did, added to by each step. */
typedef struct nep_collapse_info {
    int linearized;         /* rectifier layers replaced by an Affine */
    int approximate;        /* of those, GELU/SiLU layers (not exact) */
    int masked_layers;      /* layers that stay but got an OFF mask */
    int64_t masked_neurons;
    int bn_folded;          /* BatchNorms turned into Affines (then folded where possible) */
    int affine_folded;      /* Affines folded into a conv or Linear, merged or removed */
    int removed;            /* Identity, Dropout nodes removed */
    int64_t channels_dropped;
    int constants_folded;   /* Adds of a constant turned into an Affine */
    int composed;           /* pairs of layers composed into one */
    int composed_approx;    /* of those, kxk convs composed with a different border */
    int residual_folded;    /* x + L(x) -> (I + W) x */
    /* Every rule of the table, in its order, with its applications (n_rules is 0 until
     * a rewrite ran). */
    int n_rules;
    nep_rule_count rules[NEP_COLLAPSE_MAX_RULES];
} nep_collapse_info;

nep_status nep_collapse_linearize(const nep_graph *src, const nep_entropy *e, nep_graph *dst,
                                  nep_collapse_info *info, nep_err *err);
/* The rewrite rules alone (no linearization) on src, to a fixed point, as nep_collapse
 * runs them: all of them, or only those named in `only` (a NULL-terminated list of the
 * names in nep_collapse_info.rules; NULL: all). o may be NULL (the defaults). */
nep_status nep_collapse_rewrite(const nep_graph *src, const nep_collapse_opts *o,
                                const char *const *only, nep_graph *dst,
                                nep_collapse_info *info, nep_err *err);

/* The whole pipeline: linearized (the reference) and collapsed from src and the states
 * counted on data (e, initialized for src). Weight masks of the result keep what is
 * zero (so fine-tuning keeps the sparsity); either output may be NULL. */
nep_status nep_collapse(const nep_graph *src, const nep_entropy *e, const nep_collapse_opts *o,
                        nep_graph *linearized, nep_graph *collapsed, nep_collapse_info *info,
                        nep_err *err);

/* Two models on the first max_samples (0 = all) samples of d, in evaluation mode:
 * the largest |logit difference| (NaN if any logit is), how often their top-1 classes
 * agree, and each one's top-1 accuracy (percent). */
typedef struct nep_equivalence {
    int64_t samples, agree;
    double max_abs_diff, top1_a, top1_b;
} nep_equivalence;
nep_status nep_collapse_compare(nep_graph *a, nep_graph *b, const nep_dataset *d,
                                const nep_normalize *norm, int64_t batch, int64_t max_samples,
                                nep_equivalence *out, const nep_exec_opts *xo, nep_err *err);
/* The same on a split of images or of tokenized text (nep_split, nepenthe/train.h). */
struct nep_split;
nep_status nep_collapse_compare_split(nep_graph *a, nep_graph *b, const struct nep_split *d, int64_t batch,
                                      int64_t max_samples, nep_equivalence *out, const nep_exec_opts *xo,
                                      nep_err *err);

/* Rectifier layers, and the depth: the most rectifiers on any path from input to output. */
int nep_graph_rectifiers(const nep_graph *g);
int nep_graph_depth(const nep_graph *g);

/* ---- SwiGLU MLPs (a decoder's down(silu(gate(x)) * up(x))) -------------------------
 * A linear SiLU would leave down(gate(x) * up(x)), bilinear in x: no matrix replaces it,
 * so a SwiGLU layer of zero entropy cannot be folded away as a ReLU layer can. What can
 * go is features:
 *   - exact: a feature whose gate_proj row (and bias) is all zero has z = 0, silu(0) = 0,
 *     and contributes nothing: its gate and up rows and its down column are dropped;
 *   - approximate (always_off): a feature the entropy saw always OFF on the calibration
 *     data (z < 0 there) contributes down[:, i] silu(z_i) up_i(x) with silu(z) in
 *     [-0.28, 0): dropping it changes the output by that much.
 * An MLP left with no feature is removed with its norm (its residual add bypassed):
 * exactly when every feature went the exact way. With means (always_off only), an MLP
 * emptied approximately is replaced by means[l], its mean output over the calibration
 * tokens (nep_swiglu_mean_outputs), a constant added to the block's o_proj as a bias,
 * rather than by nothing: the output's mean over those tokens is then kept. */
typedef struct nep_swiglu_report {
    int mlps, mlps_removed, mlps_mean; /* of the removed, those replaced by their mean output */
    int64_t features, kept, dropped_exact, dropped_off;
} nep_swiglu_report;
/* dst: src with its SwiGLU MLPs shrunk as above; e: src's entropy layers (the SiLUs, owned
 * by gate_proj), measured on calibration data when always_off. */
nep_status nep_swiglu_shrink(const nep_graph *src, const nep_entropy *e, bool always_off, nep_real *const *means,
                             nep_graph *dst, nep_swiglu_report *r, nep_err *err);
/* means[l] (malloc'd, hidden_size values; free each) = the mean of entropy layer l's MLP
 * output (down_proj) over the tokens of d (its attention mask's ones), for each SwiGLU MLP
 * whose every feature is zero-gated or was always OFF in e, not all zero-gated (those the
 * approximate rewrite empties); NULL for the others. */
nep_status nep_swiglu_mean_outputs(const nep_graph *g, const nep_entropy *e, const struct nep_split *d, int64_t batch,
                                   nep_real **means, const nep_exec_opts *xo, nep_err *err);

#endif
