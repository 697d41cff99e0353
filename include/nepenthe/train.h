/* Loss, optimizers, learning-rate schedule, and the training and evaluation loops. */
#ifndef NEPENTHE_TRAIN_H
#define NEPENTHE_TRAIN_H

#include "nepenthe/comm.h"
#include "nepenthe/data.h"
#include "nepenthe/exec.h"
#include "nepenthe/rng.h"

/* Softmax cross-entropy averaged over the batch, as F.cross_entropy.
 *   logits [B, K]   target [B]   dlogits [B, K] = (softmax - onehot) / B (skipped if NULL)
 * Adds to *correct (if not NULL) the samples whose first largest logit is the target. */
double nep_xent(const nep_real *logits, const int32_t *target, int64_t B, int64_t K,
                nep_real *dlogits, int64_t *correct);
/* The same with label smoothing eps in [0, 1], as F.cross_entropy(label_smoothing=eps):
 * the target distribution is (1 - eps) onehot + eps / K, so
 *   loss = mean_b [(1 - eps) (lse_b - z_b,y) + eps/K sum_k (lse_b - z_b,k)]
 *   dlogits = (softmax - (1 - eps) onehot - eps / K) / B
 * eps = 0 is nep_xent exactly. *correct counts against the hard targets. */
double nep_xent_smoothed(const nep_real *logits, const int32_t *target, int64_t B, int64_t K,
                         double eps, nep_real *dlogits, int64_t *correct);

typedef enum nep_optim_kind { NEP_OPTIM_SGD, NEP_OPTIM_ADAMW } nep_optim_kind;

#define NEP_MAX_MILESTONES 16

/* The main learning-rate schedule (after any warm-up). */
typedef enum nep_schedule {
    NEP_SCHEDULE_MULTISTEP, /* MultiStepLR(milestones, gamma); no milestones: constant */
    NEP_SCHEDULE_COSINE,    /* CosineAnnealingLR(T_max = t_max, eta_min = min_lr) */
} nep_schedule;

/* A training recipe: PyTorch's torch.optim.SGD / AdamW, its learning-rate schedulers,
 * and what else shapes a step (label smoothing, gradient clipping). Every field's zero
 * (or nep_optim_defaults) is off, so a recipe without them trains as before. */
typedef struct nep_optim_cfg {
    nep_optim_kind kind;
    double lr;
    double weight_decay;
    double momentum;     /* SGD */
    bool nesterov;       /* SGD */
    double beta1, beta2, eps; /* AdamW */
    nep_schedule schedule;
    int n_milestones;
    int64_t milestones[NEP_MAX_MILESTONES]; /* lr *= gamma at each, counted in epochs */
    double gamma;
    int64_t t_max;       /* cosine: epochs of the decay (>= 1) */
    double min_lr;       /* cosine: eta_min */
    /* Linear warm-up, LinearLR(start_factor = warmup_start_factor, end_factor = 1,
     * total_iters = warmup_epochs) before the main schedule, chained as SequentialLR
     * (milestones = [warmup_epochs]) chains them: the main schedule's epochs (its
     * milestones, its cosine) count from the end of the warm-up. */
    int64_t warmup_epochs;
    double warmup_start_factor; /* in (0, 1] */
    double label_smoothing;     /* F.cross_entropy(label_smoothing=); 0: off */
    double clip_grad_norm;      /* clip_grad_norm_(max_norm) before each step; 0: off */
    /* timm's weight-decay exemption: no decay for parameters with ndim <= 1 (biases,
     * norm weights) or named *.bias, *class_token, *pos_embedding or
     * *relative_position_bias_table (see nep_optim_decays). */
    bool no_decay_1d;
    /* Group lasso (SSL: Wen et al. 2016, one group per layer as Ochiai et al. 2017):
     * lambda of the penalty nep_group_lasso_coefs defines, added to the loss; 0: off. */
    double group_lasso;
} nep_optim_cfg;

/* SGD: lr 0.1, momentum 0.9, no weight decay; AdamW: lr 1e-3, betas (0.9, 0.999),
 * eps 1e-8, weight decay 0.01 (PyTorch's AdamW default). gamma 0.1, no milestones,
 * no warm-up (its start factor 0.01, torchvision's --lr-warmup-decay), no smoothing, no
 * clipping, weight decay on every parameter. */
nep_optim_cfg nep_optim_defaults(nep_optim_kind kind);
/* The learning rate of epoch t (0-based: after t scheduler steps), in closed form, so a
 * resumed run recomputes it from the epoch count:
 *   t < W (warm-up epochs):  lr (f + (1 - f) t / W)
 *   multistep:               lr gamma^(number of milestones <= t - W)
 *   cosine:                  min_lr + (lr - min_lr) (1 + cos(pi (t - W) / t_max)) / 2
 * the values PyTorch's schedulers reach by their recursive updates, to rounding. */
double nep_lr_at(const nep_optim_cfg *cfg, int64_t t);
/* Whether weight decay applies to p under cfg (always, unless cfg->no_decay_1d). */
bool nep_optim_decays(const nep_optim_cfg *cfg, const nep_param *p);
/* torch.nn.utils.clip_grad_norm_(norm_type=2) over g's trainable parameters (the kept
 * entries of masked weights: torch.nn.utils.prune's weight_orig sees grad * mask):
 * total = ||grads||_2 summed in double in offset order; if max_norm / (total + 1e-6)
 * < 1 every gradient is multiplied by it. Returns total, the norm before clipping. */
double nep_clip_grad_norm(nep_graph *g, double max_norm);

/* The group-lasso penalty over the layers L (SPEC section 1: the rectifier layers, each
 * the weight W_l of the conv or Linear that owns it; biases and norms are not in a
 * group):
 *   P = lambda * sum_l sqrt(|W_l|) ||W_l||_2,   |W_l| = W_l's number of entries,
 *   dP/dW_l = coef_l W_l,   coef_l = lambda sqrt(|W_l|) / ||W_l||_2.
 * ||W_l|| = 0 (a removed layer) is where P is not differentiable: the subgradient 0 is
 * taken there (coef_l = 0), as PyTorch's autograd of torch.norm does. Pruned entries
 * count in |W_l| (the tensor's size, as sqrt(w.numel()) in PyTorch) and, being 0, add
 * nothing to the norm and get no gradient (torch.nn.utils.prune's weight_orig * mask).
 * nep_group_lasso_groups marks the parameters that are groups: in_group [n_params];
 * returns how many (-1: out of memory). nep_group_lasso_coefs writes coef [n_params] (0
 * outside the groups) from the current values, in double and offset order (so thread
 * counts agree), and returns P. */
int nep_group_lasso_groups(const nep_graph *g, uint8_t *in_group);
double nep_group_lasso_coefs(const nep_graph *g, const uint8_t *in_group, double lambda, double *coef);
/* Adds coef[p] * W_p to p's gradient. */
void nep_group_lasso_grad(nep_graph *g, int p, const double *coef);

/* Optimizer state: one block per state with the graph's parameter offsets. */
typedef struct nep_optim {
    nep_optim_cfg cfg;
    int64_t n;          /* = graph n_values */
    nep_real *m;        /* SGD momentum buffer / AdamW exp_avg */
    nep_real *v;        /* AdamW exp_avg_sq */
    int64_t step;       /* updates done */
} nep_optim;

nep_status nep_optim_init(nep_optim *o, const nep_optim_cfg *cfg, const nep_graph *g,
                          nep_err *err);
void nep_optim_free(nep_optim *o);
/* Updates every trainable parameter from g->grads with learning rate lr and zeroes
 * masked weights (and their optimizer state). */
void nep_optim_step(nep_optim *o, nep_graph *g, double lr);
/* The same, split so that parameters can be updated during backward: one begin per
 * step, then one update per trainable parameter. */
void nep_optim_begin(nep_optim *o);
void nep_optim_update(nep_optim *o, nep_graph *g, int param, double lr);

/* Everything one training process needs besides data. */
typedef struct nep_trainer {
    nep_graph *g;
    nep_exec *ex;
    nep_optim opt;
    int64_t batch;
    nep_real *x;        /* [batch, input] */
    int32_t *y;         /* [batch] */
    nep_real *dlogits;  /* [batch, classes] */
    double lr;          /* of the step in progress */
    /* Data parallelism (NULL: one process): a step's b rows are this rank's share of a
     * batch, the ranks' rows together. The loss is the batch's mean, its gradient summed
     * over the ranks in one call on the gradient block, and every rank takes the same
     * optimizer step; before each forward, rank 0's buffers (BatchNorm's running
     * statistics) are copied to every rank, as PyTorch's DistributedDataParallel does
     * (each rank normalizes by its own batch statistics unless nep_exec_opts.sync_bn). */
    const nep_comm *comm;
    /* optim.group_lasso > 0: the groups and this step's coefficients [n_params] */
    uint8_t *lasso_group;
    double *lasso_coef;
} nep_trainer;

/* xo: how its executor runs (NULL: the defaults). */
nep_status nep_trainer_init(nep_trainer *t, nep_graph *g, const nep_optim_cfg *cfg,
                            int64_t batch, const nep_exec_opts *xo, nep_err *err);
void nep_trainer_free(nep_trainer *t);

/* One step on t->x, t->y (b samples): forward, loss, backward, optimizer update; *loss
 * includes the group-lasso penalty of the weights the step started from (when on).
 * A non-finite loss returns NEP_ERR_NUMERIC before anything is updated. */
nep_status nep_train_step(nep_trainer *t, int64_t b, double lr, nep_rng *rng, double *loss,
                          int64_t *correct, nep_err *err);
/* The same on the graph's n_inputs input tensors x (nep_exec_run) and t->y: a text
 * model's ids, token types and mask. */
nep_status nep_train_step_inputs(nep_trainer *t, const void *const *x, int n_inputs, int64_t b,
                                 double lr, nep_rng *rng, double *loss, int64_t *correct,
                                 nep_err *err);

/* A loss of the logits [b, outputs] of a batch: returns it and writes its gradient with
 * respect to them into dlogits. */
typedef double (*nep_loss_fn)(void *ctx, const nep_real *logits, int64_t b, nep_real *dlogits);
/* One step as nep_train_step_inputs with another loss than classification's (a causal
 * language model's, causal_lm.h); t->y is not read. */
nep_status nep_train_step_loss(nep_trainer *t, const void *const *x, int n_inputs, int64_t b, double lr,
                               nep_rng *rng, nep_loss_fn loss_fn, void *loss_ctx, double *loss, nep_err *err);

typedef struct nep_epoch_stats {
    double loss;        /* mean over samples */
    double top1;        /* training accuracy over the epoch, percent */
    double seconds;
    double img_per_s;
    int64_t samples;
    double decode_wait_s; /* of seconds, those the steps waited on a streamed set's decoding */
} nep_epoch_stats;

/* Called after each step with samples done so far out of total. */
typedef void (*nep_progress_fn)(void *ctx, int64_t done, int64_t total, double loss,
                                double seconds);

/* One epoch over loader (shuffled by rng, which also drives dropout). With t->comm, every
 * rank shuffles alike and decodes and trains on its share of each batch's rows
 * (nep_loader_next_share); the statistics are the whole batches'. Dropout draws its masks per rank: a model with
 * dropout trains differently over N ranks than in one process. */
nep_status nep_train_epoch(nep_trainer *t, nep_loader *loader, double lr, nep_rng *rng,
                           nep_progress_fn progress, void *progress_ctx,
                           nep_epoch_stats *out, nep_err *err);

/* Called after the forward pass of each batch: ex holds every activation, logits the
 * output [b, classes], y the labels. */
typedef nep_status (*nep_batch_fn)(void *ctx, nep_exec *ex, const nep_real *logits,
                                   const int32_t *y, int64_t b, nep_err *err);

/* Runs g over d in order and in evaluation mode, in batches of `batch`, at most
 * max_batches of them (0 = all), calling probe (if any) at every rectifier and fn (if
 * any) after every batch. The one loop behind evaluation, entropy and calibration. */
nep_status nep_for_each_batch(nep_graph *g, const nep_dataset *d, const nep_normalize *norm,
                              int64_t batch, int64_t max_batches, nep_probe_fn probe,
                              void *probe_ctx, nep_batch_fn fn, void *ctx,
                              const nep_exec_opts *xo, nep_err *err);

/* Top-1 accuracy (percent) and mean loss of g on d, in evaluation mode. */
nep_status nep_evaluate(nep_graph *g, const nep_dataset *d, const nep_normalize *norm,
                        int64_t batch, double *top1, double *loss, const nep_exec_opts *xo,
                        nep_err *err);

/* A data split a loop runs over: images (and their normalization) or a tokenized text
 * set (nepenthe/text_train.h), so that pruning, probing and evaluating take either. */
struct nep_text_tensors;
typedef struct nep_split {
    const nep_dataset *images;
    const nep_normalize *norm;
    const struct nep_text_tensors *text;
    bool decoder;   /* text for a decoder: its inputs are input_ids and attention_mask only */
    /* Ranks that share the passes (NULL: one process): batch k runs on rank k mod size,
     * and what a pass accumulates (entropy counts, accuracy, Wanda's norms, gradient
     * sums) is summed over the ranks, so every rank ends with the whole split's. */
    const nep_comm *comm;
} nep_split;
int64_t nep_split_rows(const nep_split *s);
/* Rows per forward-only pass (entropy, evaluation, Wanda, gradient sums): 256 images, 32
 * texts (256 sequences of 128 tokens would hold gigabytes of attention state). */
int64_t nep_split_pass_batch(const nep_split *s);
/* nep_for_each_batch over s, images or text, this rank's batches of s->comm only;
 * *mask_out (if not NULL) points at a text batch's attention mask [b, T] while it runs
 * (NULL for images). */
nep_status nep_split_for_each_batch(const nep_split *s, nep_graph *g, int64_t batch,
                                    int64_t max_batches, nep_probe_fn probe, void *probe_ctx,
                                    const nep_real **mask_out, nep_batch_fn fn, void *ctx,
                                    const nep_exec_opts *xo, nep_err *err);
/* The batches of a split in order, as a graph's input tensors: a normalized image batch,
 * or a text batch's ids, token types and mask (a decoder's: ids and mask). */
typedef struct nep_split_iter {
    const nep_split *split;
    int64_t batch, next;        /* next: the first row of the next batch */
    nep_loader loader;          /* images */
    nep_real *x;                /* images [batch, C, H, W] */
    int32_t *ids, *types;       /* text [batch, T] */
    nep_real *mask;             /* text [batch, T] */
    int32_t *y;                 /* [batch] labels (-1: none) */
    const void *inputs[3];      /* the graph's input tensors of the current batch */
    int n_inputs;
} nep_split_iter;
nep_status nep_split_iter_init(nep_split_iter *it, const nep_split *s, int64_t batch, nep_err *err);
/* The next batch into it->inputs and it->y; its size, 0 at the end, -1 when a streamed
 * image fails to decode (err says which). */
int64_t nep_split_iter_next(nep_split_iter *it, nep_err *err);
void nep_split_iter_free(nep_split_iter *it);

/* Top-1 (percent) and mean loss (loss may be NULL) of g over s in evaluation mode, the
 * executor as xo makes it: what nep_evaluate and nep_text_evaluate run. NEP_ERR_ARG for
 * a row without a label, NEP_ERR_SHAPE for one outside the model's classes. */
nep_status nep_split_evaluate(const nep_split *s, nep_graph *g, int64_t batch, double *top1, double *loss,
                              const nep_exec_opts *xo, nep_err *err);

/* ---- a training run: epochs, a commit after each, --resume -------------------------- */

typedef struct nep_train_cfg {
    nep_optim_cfg optim;        /* its milestones count epochs */
    int64_t epochs, batch;
    const nep_augment *augment; /* or NULL */
    const nep_dataset *train, *val;
    const nep_normalize *norm;
    const nep_exec_opts *exec;  /* how the executors run (NULL: defaults) */
    const nep_comm *comm;       /* data parallelism (nep_trainer.comm), or NULL */
} nep_train_cfg;

/* One finished epoch. */
typedef struct nep_train_row {
    int64_t epoch;              /* epochs done, this one included */
    double lr, loss, train_top1, val_top1, val_loss, img_per_s, seconds;
    double decode_wait_s;       /* nep_epoch_stats' */
} nep_train_row;

typedef struct nep_train_hooks {
    void *ctx;
    /* Epoch row->epoch is done: g and o hold its weights and optimizer state, rng the
     * state the next epoch starts from. Write its files here (the commit a resumed run
     * continues from); an error stops the run. */
    nep_status (*epoch)(void *ctx, const nep_graph *g, const nep_optim *o, const nep_rng *rng,
                        const nep_train_row *row, nep_err *err);
    /* A resumed run: the optimizer state the committed epoch left, into o (NULL: a fresh
     * optimizer). */
    nep_status (*restore_optim)(void *ctx, const nep_graph *g, nep_optim *o, nep_err *err);
    /* A phase (an epoch) begins (label) or ends (NULL), and its progress; may be NULL. */
    void (*phase)(void *ctx, const char *label);
    nep_progress_fn progress;
} nep_train_hooks;

/* Trains g from *epoch epochs done (0: a fresh run) to cfg->epochs; rng shuffles,
 * augments and drops out, and holds the state epoch *epoch left (a fresh run: after
 * initialization). Resumed from a commit it ends with the weights of an uninterrupted
 * run. On return *epoch is the epochs done; a loss that diverged returns
 * NEP_ERR_NUMERIC, *epoch then being the last committed epoch. */
nep_status nep_train_run(nep_graph *g, const nep_train_cfg *cfg, int64_t *epoch, nep_rng *rng,
                         const nep_train_hooks *h, nep_err *err);

/* Monotonic wall clock in seconds. */
double nep_now(void);

#endif
