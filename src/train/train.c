/* Training step, epoch and evaluation loops. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nepenthe/train.h"

double nep_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int64_t out_features(const nep_graph *g) {
    return nep_shape_numel(&g->nodes[g->output].shape);
}

nep_status nep_trainer_init(nep_trainer *t, nep_graph *g, const nep_optim_cfg *cfg,
                            int64_t batch, const nep_exec_opts *xo, nep_err *err) {
    memset(t, 0, sizeof *t);
    t->g = g;
    t->batch = batch;
    NEP_TRY(nep_exec_new(&t->ex, g, batch, xo, err));
    nep_status s = nep_optim_init(&t->opt, cfg, g, err);
    if (s != NEP_OK) {
        nep_exec_free(t->ex);
        return s;
    }
    int64_t in = nep_shape_numel(&g->nodes[g->input].shape);
    t->x = aligned_alloc(64, ((size_t)(batch * in) * sizeof(nep_real) + 63) & ~(size_t)63);
    t->y = malloc(sizeof(int32_t) * (size_t)batch);
    t->dlogits = malloc(sizeof(nep_real) * (size_t)(batch * out_features(g)));
    if (!t->x || !t->y || !t->dlogits) {
        nep_trainer_free(t);
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory for a batch of %lld", (long long)batch);
    }
    if (cfg->group_lasso > 0) {
        t->lasso_group = malloc((size_t)g->n_params);
        t->lasso_coef = malloc(sizeof(double) * (size_t)g->n_params);
        const int groups = t->lasso_group && t->lasso_coef ? nep_group_lasso_groups(g, t->lasso_group) : -1;
        if (groups <= 0) {
            nep_trainer_free(t);
            return groups < 0 ? nep_fail(err, NEP_ERR_NOMEM, "out of memory")
                              : nep_fail(err, NEP_ERR_ARG, "group lasso: the model has no rectifier layer "
                                         "whose weight could form a group");
        }
    }
    return NEP_OK;
}

void nep_trainer_free(nep_trainer *t) {
    nep_exec_free(t->ex);
    nep_optim_free(&t->opt);
    free(t->x);
    free(t->y);
    free(t->dlogits);
    free(t->lasso_group);
    free(t->lasso_coef);
    memset(t, 0, sizeof *t);
}

/* Updates a node's parameters as soon as backward has produced their gradients: a
 * shared one's at its declaring node, the last to add to it (nep_graph_share_param). */
static void update_node(void *ctx, nep_graph *g, int node) {
    nep_trainer *t = ctx;
    const nep_node *n = &g->nodes[node];
    for (int k = 0; k < n->n_params; k++)
        if (g->params[n->params[k]].node == node) {
            if (t->lasso_coef) nep_group_lasso_grad(g, n->params[k], t->lasso_coef);
            nep_optim_update(&t->opt, g, n->params[k], t->lr);
        }
}

nep_status nep_train_step(nep_trainer *t, int64_t b, double lr, nep_rng *rng, double *loss,
                          int64_t *correct, nep_err *err) {
    const void *x[1] = {t->x};
    return nep_train_step_inputs(t, x, 1, b, lr, rng, loss, correct, err);
}

/* Classification: cross-entropy (smoothed) of the logits against t->y. */
typedef struct xent_ctx {
    nep_trainer *t;
    int64_t *correct;
} xent_ctx;

static double xent_loss(void *ctx, const nep_real *logits, int64_t b, nep_real *dlogits) {
    const xent_ctx *c = ctx;
    return nep_xent_smoothed(logits, c->t->y, b, out_features(c->t->g), c->t->opt.cfg.label_smoothing, dlogits,
                             c->correct);
}

nep_status nep_train_step_inputs(nep_trainer *t, const void *const *x, int n_inputs, int64_t b,
                                 double lr, nep_rng *rng, double *loss, int64_t *correct,
                                 nep_err *err) {
    const int64_t K = out_features(t->g);
    for (int64_t i = 0; i < b; i++)
        if (t->y[i] < 0 || t->y[i] >= K)
            return nep_fail(err, NEP_ERR_ARG, "label %d of sample %lld is outside the model's %lld "
                            "classes", t->y[i], (long long)i, (long long)K);
    return nep_train_step_loss(t, x, n_inputs, b, lr, rng, xent_loss, &(xent_ctx){t, correct}, loss, err);
}

/* Rank 0's buffers (parameters that are not trained: BatchNorm's running statistics) to
 * every rank. */
static nep_status share_buffers(const nep_trainer *t, nep_err *err) {
    const nep_graph *g = t->g;
    for (int k = 0; k < g->n_params; k++)
        if (!(g->params[k].flags & NEP_PARAM_TRAINABLE))
            NEP_TRY(nep_comm_bcast(t->comm, g->values + g->params[k].offset,
                                   g->params[k].numel * (int64_t)sizeof(nep_real), 0, err));
    return NEP_OK;
}

/* Forward, loss and backward of this rank's b rows of a batch over the ranks; the batch's
 * mean loss and, in g->grads, its gradient summed over the ranks. */
static nep_status data_parallel_grads(nep_trainer *t, const void *const *x, int n_inputs, int64_t b,
                                      nep_loss_fn loss_fn, void *loss_ctx, double *loss, nep_err *err) {
    nep_graph *g = t->g;
    double rows[2] = {(double)b, b > 0}; /* the batch's rows, and the ranks that have some */
    NEP_TRY(nep_comm_sum(t->comm, rows, 2, NEP_COMM_F64, err));
    if (rows[1] < t->comm->size && nep_exec_sync_bn(t->ex)) /* every rank sees it: none waits on another */
        return nep_fail(err, NEP_ERR_ARG, "a batch of %.0f rows over %d ranks leaves a rank none, and SyncBatchNorm "
                        "needs every rank (use a batch size, or a data set size, that gives each rank a row)",
                        rows[0], t->comm->size);
    NEP_TRY(share_buffers(t, err));
    double sum = 0; /* of the rows' losses */
    if (b > 0) {
        const nep_real *logits;
        NEP_TRY(nep_exec_run(t->ex, x, n_inputs, b, &logits, err));
        sum = loss_fn(loss_ctx, logits, b, t->dlogits) * (double)b;
        const nep_real scale = (nep_real)((double)b / rows[0]); /* of a mean over b to one over the batch */
        const int64_t n = b * out_features(g);
        for (int64_t i = 0; i < n; i++) t->dlogits[i] *= scale;
        nep_exec_set_on_grads(t->ex, NULL, NULL);
        nep_exec_backward(t->ex, t->dlogits);
    } else {
        memset(g->grads, 0, sizeof(nep_real) * (size_t)g->n_values);
    }
    NEP_TRY(nep_comm_sum(t->comm, &sum, 1, NEP_COMM_F64, err));
    *loss = sum / rows[0];
    if (!isfinite(*loss)) return NEP_OK; /* every rank sees it and stops */
    return nep_comm_sum(t->comm, g->grads, g->n_values, NEP_COMM_REAL, err);
}

nep_status nep_train_step_loss(nep_trainer *t, const void *const *x, int n_inputs, int64_t b, double lr,
                               nep_rng *rng, nep_loss_fn loss_fn, void *loss_ctx, double *loss, nep_err *err) {
    nep_exec_set_training(t->ex, true, rng);
    const bool parallel = nep_comm_many(t->comm);
    /* of the weights this step starts from, which backward leaves as they are */
    const double penalty = t->lasso_coef ? nep_group_lasso_coefs(t->g, t->lasso_group, t->opt.cfg.group_lasso,
                                                                 t->lasso_coef) : 0;
    double l = 0;
    if (parallel) {
        NEP_TRY(data_parallel_grads(t, x, n_inputs, b, loss_fn, loss_ctx, &l, err));
    } else {
        const nep_real *logits;
        NEP_TRY(nep_exec_run(t->ex, x, n_inputs, b, &logits, err));
        l = loss_fn(loss_ctx, logits, b, t->dlogits);
    }
    l += penalty;
    *loss = l;
    if (!isfinite(l))
        return nep_fail(err, NEP_ERR_NUMERIC, "loss is %g at optimizer step %lld: training "
                        "diverged (lower the learning rate)", l, (long long)t->opt.step + 1);
    t->lr = lr;
    if (parallel || t->opt.cfg.clip_grad_norm > 0) {
        /* Clipping scales every gradient by one factor from the norm of all of them, and
         * ranks sum theirs first, so no parameter can be updated before backward has
         * finished: no overlap. */
        if (!parallel) {
            nep_exec_set_on_grads(t->ex, NULL, NULL);
            nep_exec_backward(t->ex, t->dlogits);
        }
        if (t->lasso_coef) /* the penalty's gradient, once, as loss + penalty's backward gives it */
            for (int p = 0; p < t->g->n_params; p++) nep_group_lasso_grad(t->g, p, t->lasso_coef);
        if (t->opt.cfg.clip_grad_norm > 0) nep_clip_grad_norm(t->g, t->opt.cfg.clip_grad_norm);
        nep_optim_step(&t->opt, t->g, lr);
        return NEP_OK;
    }
    nep_exec_set_on_grads(t->ex, update_node, t);
    nep_optim_begin(&t->opt);
    nep_exec_backward(t->ex, t->dlogits);
    return NEP_OK;
}

nep_status nep_train_epoch(nep_trainer *t, nep_loader *loader, double lr, nep_rng *rng,
                           nep_progress_fn progress, void *progress_ctx,
                           nep_epoch_stats *out, nep_err *err) {
    const double t0 = nep_now();
    const int64_t total = nep_loader_batches(loader) * loader->batch;
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, b;
    int64_t lo, hi; /* this rank's rows of each batch, all it decodes */
    const double wait0 = nep_loader_wait_s(loader);
    nep_loader_epoch(loader, rng);
    while ((b = nep_loader_next_share(loader, t->comm, t->x, t->y, &lo, &hi)) > 0) {
        double loss = 0;
        NEP_TRY(nep_train_step(t, hi - lo, lr, rng, &loss, &correct, err));
        loss_sum += loss * (double)b;
        seen += b;
        if (progress) progress(progress_ctx, seen, total, loss_sum / (double)seen, nep_now() - t0);
    }
    if (b < 0) { /* a streamed image failed to decode: on every rank, as each decodes whole batches */
        if (err) *err = loader->err;
        return loader->err.status;
    }
    NEP_TRY(nep_comm_sum(t->comm, &correct, 1, NEP_COMM_I64, err));
    NEP_TRY(share_buffers(t, err)); /* the last step's running statistics: rank 0's, as the next forward's */
    NEP_TRY(nep_comm_agree(t->comm, t->g->values, t->g->n_values * (int64_t)sizeof(nep_real),
                           "the weights after an epoch (the ranks' gradient sums differed)", err));
    out->samples = seen;
    out->seconds = nep_now() - t0;
    out->loss = seen ? loss_sum / (double)seen : 0;
    out->top1 = seen ? 100.0 * (double)correct / (double)seen : 0;
    out->img_per_s = out->seconds > 0 ? (double)seen / out->seconds : 0;
    out->decode_wait_s = nep_loader_wait_s(loader) - wait0;
    return NEP_OK;
}

nep_status nep_evaluate(nep_graph *g, const nep_dataset *d, const nep_normalize *norm,
                        int64_t batch, double *top1, double *loss, const nep_exec_opts *xo,
                        nep_err *err) {
    if (d->classes > out_features(g))
        return nep_fail(err, NEP_ERR_SHAPE, "the data has %d classes but the model outputs %lld",
                        d->classes, (long long)out_features(g));
    return nep_split_evaluate(&(nep_split){.images = d, .norm = norm}, g, batch, top1, loss, xo, err);
}
