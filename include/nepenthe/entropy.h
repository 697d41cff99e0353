/* Activation-state entropy (SPEC sections 1-2). For every rectifier layer l and neuron i
 * (a feature of the rectifier's input: dim 0 of its per-sample shape, so a channel for
 * images), count the observations of the pre-activation z in each state over a data
 * set, as 64-bit integers so that sums over batches and threads are exact:
 *   2 states (ReLU, LeakyReLU, PReLU, GELU, SiLU): ON z > 0, OFF z < 0
 *   3 states (ReLU6): ON 0 < z < 6, OFF z < 0, OFF+ z > 6
 * z on a boundary (0, or 6 for ReLU6) is "don't care" and not counted, unless
 * zero_is_off, which counts z == 0 as OFF (and z == 6 as OFF+). */
#ifndef NEPENTHE_ENTROPY_H
#define NEPENTHE_ENTROPY_H

#include "nepenthe/data.h"
#include "nepenthe/exec.h"

enum { NEP_STATE_ON, NEP_STATE_OFF, NEP_STATE_OFF_PLUS, NEP_MAX_STATES };

typedef struct nep_layer_states {
    int node;           /* the rectifier */
    int owner;          /* node whose weight the layer owns (SPEC section 1), or -1 */
    int states;         /* 2 or 3 */
    int64_t neurons;
    uint64_t *counts;   /* [neurons, states] */
} nep_layer_states;

typedef struct nep_entropy {
    int n_layers;
    nep_layer_states *layers;   /* in network order */
    bool zero_is_off;
    int64_t samples;            /* samples seen since the last reset */
    /* A text model's padding (SPEC section 1: padding positions are never observations):
     * while a batch runs, its attention mask [batch, mask_positions] (1 token, 0 padding),
     * which the probe applies to every layer whose per-sample shape is [mask_positions, C];
     * NULL: every position counts. */
    const nep_real *token_mask;
    int64_t mask_positions;
    /* NULL, or called after every batch of nep_entropy_measure with the samples counted,
     * the samples it will count, NaN (no loss) and the seconds since it started. */
    void (*progress)(void *ctx, int64_t done, int64_t total, double loss, double seconds);
    void *progress_ctx;
} nep_entropy;

/* One layer per rectifier of g, in topological order. */
nep_status nep_entropy_init(nep_entropy *e, const nep_graph *g, bool zero_is_off, nep_err *err);
void nep_entropy_free(nep_entropy *e);
void nep_entropy_reset(nep_entropy *e);

/* nep_probe_fn: adds the states of z [batch, neurons, ...] to the rectifier's counts. */
void nep_entropy_probe(void *e, const nep_graph *g, int node, const nep_real *z, int64_t batch,
                       bool channels_last);

/* Counts states over d (evaluation mode, in order) in batches of `batch`, at most
 * max_batches of them (0 = all). Resets the counts first. */
nep_status nep_entropy_measure(nep_entropy *e, nep_graph *g, const nep_dataset *d,
                               const nep_normalize *norm, int64_t batch, int64_t max_batches,
                               const nep_exec_opts *xo, nep_err *err);

/* The same over a split of images or of tokenized text (nep_split, nepenthe/train.h),
 * a text's padding not counted. */
struct nep_split;
nep_status nep_entropy_measure_split(nep_entropy *e, nep_graph *g, const struct nep_split *d,
                                     int64_t batch, int64_t max_batches, const nep_exec_opts *xo,
                                     nep_err *err);

/* Entropy in bits of one neuron's counts (0 if it has no observation). */
double nep_neuron_entropy(const uint64_t *counts, int states);
/* Layer entropy: the mean of its neurons' entropies over all neurons, or with
 * nondegenerate_only (EGP) over the neurons with positive entropy (0 if none). */
double nep_layer_entropy(const nep_layer_states *l, bool nondegenerate_only);
/* Neurons of the layer whose every counted observation is in `state` (and that have
 * at least one), and neurons with observations in more than one state. */
int64_t nep_layer_count_always(const nep_layer_states *l, int state);
int64_t nep_layer_count_mixed(const nep_layer_states *l);

/* The node whose weight a rectifier owns (SPEC section 1): the Linear or Conv2d
 * producing its input, looking through BatchNorm and Identity; after a residual Add,
 * the residual branch's conv (never one marked attrs.conv.shortcut). -1 if there is none. */
int nep_rectifier_owner(const nep_graph *g, int rectifier);

#endif
