/* Pruning (SPEC section 3): the NEPENTHE budget, IMP's global threshold, scores
 * (magnitude, Wanda) and cumulative masks on the weights owned by rectifier layers.
 * A "non-zero" weight is one its mask keeps and whose value is not 0. */
#ifndef NEPENTHE_PRUNE_H
#define NEPENTHE_PRUNE_H

#include "nepenthe/entropy.h"

typedef struct nep_split nep_split; /* nepenthe/train.h */

/* One rectifier layer as the budget sees it. The owned weight is [neurons, fan_in]
 * (row i feeds neuron i; a conv's [out, in/groups, kh, kw] flattens the same way). */
typedef struct nep_budget_layer {
    double entropy;                 /* H_l */
    const double *neuron_entropy;   /* [neurons] H_{l,i} */
    int64_t neurons, fan_in;
    const nep_real *w;              /* [neurons, fan_in] */
    const uint8_t *mask;            /* [neurons, fan_in], 1 = kept */
    int64_t scale_groups;           /* Wanda scales: rows of fan_in values; neuron i uses row
                                     * i / (neurons / scale_groups) (a grouped conv's groups);
                                     * 0 or 1: one row for all */
} nep_budget_layer;

typedef struct nep_budget_opts {
    double zeta;                /* pruning rate */
    bool neuron_selection;      /* candidates only in neurons with H_{l,i} > 0 (default on) */
} nep_budget_opts;

/* The number of weights to prune in each layer (SPEC section 3, steps 1-6):
 * active layers have H_l > 0 and a non-zero weight; B = floor(zeta * their non-zero
 * weights); I_l = H_l * mean |w| over the non-zero weights of neurons with H_{l,i} > 0;
 * R_l = sum I / I_l (0 if I_l = 0);
 * shares B * softmax(R), rounded by largest remainder (ties to the lower layer index)
 * so they add up to B; a share above the layer's candidates is capped at them and the
 * rest is redistributed over the other layers by the same softmax, until none exceeds.
 * The shares add up to min(B, total candidates). out[n] receives the shares; *budget
 * (if not NULL) receives B. A pure function (out of memory: all shares 0). */
void nep_budget_shares(const nep_budget_layer *layers, int n, const nep_budget_opts *o,
                       int64_t *out, int64_t *budget);

/* Candidate (prunable) weights of a layer: non-zero weights, restricted with neuron
 * selection to neurons of positive entropy. */
int64_t nep_budget_candidates(const nep_budget_layer *l, bool neuron_selection);

/* Masks the `count` candidates of a layer with the smallest score (ties to the lower
 * index); score = |w| * (scale ? scale[r * fan_in + j] : 1) with j the weight's input
 * column and r its neuron's scale row (see scale_groups; Wanda passes the input features'
 * L2 norms). Sets mask entries to 0; returns how many, or -1
 * if out of memory. */
int64_t nep_prune_layer(const nep_budget_layer *l, bool neuron_selection, const double *scale,
                        int64_t count, uint8_t *mask);

/* IMP: one global threshold. Masks the floor(zeta * non-zero) weights with the smallest
 * score over all layers together (ties by layer, then index); out[n] = pruned per layer.
 * Returns the number pruned, or -1 if out of memory. */
int64_t nep_prune_global(const nep_budget_layer *layers, int n, double zeta,
                      const double *const *scales, uint8_t *const *masks, int64_t *out);

/* ---- the method on a graph ------------------------------------------------------ */

/* SMALLEST_WEIGHTS and SMALLEST_GRADS are the paper's naive structural baselines: instead
 * of pruning weights, replace by the identity the rectifier whose owned weight has the
 * smallest sum of |w| (or of |gradient| over one pass of the training data), then
 * fine-tune. SSL prunes no weight: it retrains with the group-lasso penalty
 * (nep_optim_cfg.group_lasso) and removes the layers whose weight it drove below
 * ssl_threshold (nep_ssl_remove, after each retraining, before the evaluation);
 * NEPENTHE_SSL is NEPENTHE's step, then retraining with the penalty and SSL's removal
 * (paper Fig. 4). HRANK masks whole conv filters, zeta of each layer's alive ones per
 * iteration, those whose feature maps have the lowest average rank (nepenthe/hrank.h):
 * it shrinks width, never depth. */
typedef enum nep_method {
    NEP_METHOD_NEPENTHE, NEP_METHOD_IMP, NEP_METHOD_EGP,
    NEP_METHOD_SMALLEST_WEIGHTS, NEP_METHOD_SMALLEST_GRADS, NEP_METHOD_SSL, NEP_METHOD_NEPENTHE_SSL,
    NEP_METHOD_HRANK, NEP_METHOD_COUNT
} nep_method;
bool nep_method_structural(nep_method m); /* SMALLEST_WEIGHTS, SMALLEST_GRADS */
bool nep_method_ssl(nep_method m);        /* SSL, NEPENTHE_SSL: they need a group-lasso penalty */
typedef enum nep_criterion { NEP_CRIT_MAGNITUDE, NEP_CRIT_WANDA } nep_criterion;

typedef struct nep_prune_cfg {
    nep_method method;
    nep_criterion criterion;
    double zeta;
    /* Ablation switches (paper Table 5); nep_prune_cfg_for sets them from the method. */
    bool entropy_budget;    /* off: one global threshold (IMP) */
    bool dont_care;         /* off: z == 0 counts as OFF */
    bool neuron_selection;  /* off: zero-entropy neurons' weights are candidates too */
    bool nondegenerate_mean;/* layer entropy over neurons with H > 0 only (EGP) */
    double ssl_threshold;   /* SSL methods: remove a layer whose weight's RMS falls below it */
} nep_prune_cfg;

/* NEPENTHE (and NEPENTHE_SSL): budget, don't-care, neuron selection on. IMP: entropy
 * budget off. EGP: budget on, don't-care and neuron selection off, non-degenerate layer
 * mean. SSL methods: ssl_threshold NEP_SSL_THRESHOLD. */
#define NEP_SSL_THRESHOLD 1e-3
nep_prune_cfg nep_prune_cfg_for(nep_method method, nep_criterion criterion, double zeta);
const char *nep_method_name(nep_method m);
int nep_method_from_name(const char *name); /* -1 if unknown */

/* Layer entropy of e's layer l as the configuration defines it. */
double nep_prune_layer_entropy(const nep_prune_cfg *cfg, const nep_layer_states *l);

/* Wanda's input-feature norms: for every layer of e that owns a weight, the L2 norm over
 * d of each input column of the owner (a Linear's input features, over every token but a
 * text's padding; a conv's im2col rows, per group). out[l] is malloc'd [groups, fan_in]
 * (NULL for layers without owner); free with nep_wanda_free. */
nep_status nep_wanda_norms(nep_graph *g, const nep_entropy *e, const nep_split *d, int64_t batch,
                           int64_t max_batches, double ***out, const nep_exec_opts *xo, nep_err *err);
void nep_wanda_free(double **norms, int n);

/* One pruning step on g, from the state counts e measured on g: masks weights of the
 * layers' owners (cumulatively) and zeroes them. pruned[l] gets the count per layer of
 * e; *budget the budget B. scales: Wanda norms (NULL for magnitude). */
nep_status nep_prune_step(nep_graph *g, const nep_entropy *e, const nep_prune_cfg *cfg,
                          double *const *scales, int64_t *pruned, int64_t *budget, nep_err *err);

/* Structural baselines: the index in e of the layer, among those still rectifiers in g,
 * whose owned weight has the smallest sum of |w| (grad_sums NULL) or the smallest
 * grad_sums[l]; ties to the earlier layer; -1 if none is left. */
int nep_smallest_layer(const nep_graph *g, const nep_entropy *e, const double *grad_sums);
/* grad_sums[l] = sum over the batches of d of sum |dL/dw| over layer l's owned weight
 * (evaluation mode, cross-entropy loss, no update). */
nep_status nep_grad_sums(nep_graph *g, const nep_entropy *e, const nep_split *d, int64_t batch,
                         double *grad_sums, const nep_exec_opts *xo, nep_err *err);

/* SSL's removal: every layer of e whose owned weight W_l still has a non-zero entry and
 * whose RMS ||W_l||_2 / sqrt(|W_l|) is below threshold is zeroed and masked whole, so its
 * pre-activation is a constant and H_l = 0 from then on. The weights masked now are
 * added to removed[l]; returns the number of layers removed. */
int nep_ssl_remove(nep_graph *g, const nep_entropy *e, double threshold, int64_t *removed);

/* The owner's weight parameter of layer l (its first parameter), or NULL. */
const nep_param *nep_layer_weight(const nep_graph *g, const nep_layer_states *l);

#endif
