/* The iterative loop of SPEC section 4, as a library function: each iteration measures
 * the activation-state entropy on the training split, prunes by the method's budget (or,
 * for the structural baselines, makes one layer the identity), retrains with a fresh
 * optimizer (masks re-applied after every step), evaluates, and hands the iteration to
 * the caller, who writes its checkpoint and log line; then the loop commits (the caller
 * writes the progress a resumed run continues from). It stops when validation accuracy
 * falls below delta x dense, after max_iter iterations, when retraining diverges, or
 * when a structural baseline has no rectifier left. A run resumed from its last commit
 * ends the same as an uninterrupted one: iteration k's randomness comes from (seed, k),
 * its starting weights from iteration k - 1's checkpoint. `nepenthe prune` is this loop
 * with files and a table around it. */
#ifndef NEPENTHE_PRUNE_LOOP_H
#define NEPENTHE_PRUNE_LOOP_H

#include "nepenthe/prune.h"
#include "nepenthe/train.h"

typedef struct nep_prune_loop_cfg {
    nep_prune_cfg prune;        /* method, criterion, zeta, ablation switches */
    nep_optim_cfg optim;        /* retraining, a fresh optimizer each iteration; its
                                 * milestones count retraining epochs */
    int64_t retrain_epochs, batch;
    int64_t max_iter;
    double delta;               /* stop once val top-1 < delta * the dense model's */
    uint64_t seed;              /* iteration k retrains with the rng seeded seed * 1000003 + k */
    int64_t entropy_batches;    /* batches of 256 counted for entropy (0 = the whole split) */
    int64_t wanda_batches;      /* calibration batches of the Wanda criterion (0 = all) */
    int64_t hrank_batches;      /* HRank: batches of 256 images whose feature-map ranks are averaged (0 = all) */
    int64_t sharpness_batches;  /* > 0: each iteration's sharpness (nepenthe/sharpness.h, its defaults) over
                                 * this many batches of 256 training images; 0: none */
    const nep_augment *augment; /* retraining augmentation of images, or NULL */
    /* Images (with their normalization) or tokenized text; val may be empty (no rows):
     * test stands in. Text retrains with a seeded shuffle of the rows each epoch. */
    nep_split train, val, test;
    const nep_exec_opts *exec;  /* how every executor of the loop runs (NULL: defaults) */
    /* Data-parallel ranks (NULL: one process): image retraining splits each batch over
     * them (nep_trainer.comm); the splits' passes take their comm (nep_split.comm).
     * Retraining text over ranks is NEP_ERR_UNSUPPORTED. */
    const nep_comm *comm;
} nep_prune_loop_cfg;

/* One iteration (0: the dense model), after retraining and evaluation. */
typedef struct nep_prune_row {
    int64_t iter;
    double val_top1, test_top1;
    double sparsity;            /* percent of the rectifier layers' own weights that are 0 */
    double seconds;
    int removed, layers;        /* layers with H_l = 0, of all */
    int64_t budget;             /* weights the budget allowed this iteration */
    double sharpness;           /* the largest Hessian eigenvalue of the training loss (NaN: not measured) */
    const double *entropy;      /* [layers] H_l of the model after the iteration */
    const int64_t *pruned;      /* [layers] weights pruned this iteration (NULL: none) */
} nep_prune_row;

/* Where a run stands: what the caller stores at each commit and passes back to resume. */
typedef struct nep_prune_progress {
    int64_t iter;               /* last committed iteration */
    int64_t selected;           /* the last iteration that passed the delta rule (0: dense) */
    double dense_val, dense_test;
    bool stopped;               /* iteration `iter` failed the delta rule */
} nep_prune_progress;

typedef enum nep_prune_end {
    NEP_PRUNE_BY_DELTA, NEP_PRUNE_MAX_ITER, NEP_PRUNE_DIVERGED, NEP_PRUNE_NO_LAYER_LEFT
} nep_prune_end;

typedef struct nep_prune_hooks {
    void *ctx;
    /* Iteration row->iter is done; g is its model. Write its checkpoint (iter > 0) and log
     * line here. An error stops the run before the commit. */
    nep_status (*iteration)(void *ctx, const nep_graph *g, const nep_entropy *e,
                            const nep_prune_row *row, nep_err *err);
    /* The commit point: a run resumed with *p continues after p->iter. */
    nep_status (*commit)(void *ctx, const nep_prune_progress *p, nep_err *err);
    /* Structural baselines: `node` becomes the identity now (record it, so that its
     * checkpoints rebuild the model that way). NULL: nothing to record. */
    nep_status (*linearized)(void *ctx, const nep_graph *g, int node, nep_err *err);
    /* A phase begins (label) or ends (NULL), and its progress; both may be NULL. */
    void (*phase)(void *ctx, const char *label);
    nep_progress_fn progress;
    /* Something the user should know (a diverged retraining); may be NULL. */
    void (*note)(void *ctx, const char *message);
} nep_prune_hooks;

/* Runs the loop on g (its rectifier layers in e, made by nep_entropy_init with
 * zero_is_off = !cfg->prune.dont_care). fresh: g is the dense model, *p is ignored, and
 * iteration 0 (evaluation and entropy of g) comes first; else g is iteration p->iter's
 * model and *p its commit. On success *p is the last commit and *end why the loop
 * stopped. */
nep_status nep_prune_run(nep_graph *g, nep_entropy *e, const nep_prune_loop_cfg *cfg, bool fresh,
                         nep_prune_progress *p, const nep_prune_hooks *h, nep_prune_end *end,
                         nep_err *err);

/* Non-zeros of the weight layer l owns (0 if it owns none), and the sparsity over all
 * owned weights (percent). */
int64_t nep_layer_nonzero(const nep_graph *g, const nep_layer_states *l);
double nep_owned_sparsity(const nep_graph *g, const nep_entropy *e);

#endif
