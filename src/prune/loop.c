/* The loop of SPEC section 4 (include/nepenthe/prune_loop.h): measure, prune, retrain,
 * evaluate, hand the iteration to the caller, commit; stop by delta. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nepenthe/hrank.h"
#include "nepenthe/prune_loop.h"
#include "nepenthe/sharpness.h"
#include "nepenthe/text_train.h"

static void phase(const nep_prune_hooks *h, const char *label) {
    if (h->phase) h->phase(h->ctx, label);
}

int64_t nep_layer_nonzero(const nep_graph *g, const nep_layer_states *l) {
    const nep_param *w = nep_layer_weight(g, l);
    int64_t n = 0;
    for (int64_t k = 0; w && k < w->numel; k++) n += g->values[w->offset + k] != 0;
    return n;
}

double nep_owned_sparsity(const nep_graph *g, const nep_entropy *e) {
    int64_t total = 0, nz = 0;
    for (int l = 0; l < e->n_layers; l++) {
        const nep_param *w = nep_layer_weight(g, &e->layers[l]);
        if (!w) continue;
        total += w->numel;
        nz += nep_layer_nonzero(g, &e->layers[l]);
    }
    return total ? 100.0 * (double)(total - nz) / (double)total : 0;
}

/* Counts states on the training split with the method's don't-care rule; H_l of each
 * layer into H. */
static nep_status measure(nep_graph *g, nep_entropy *e, const nep_prune_loop_cfg *c,
                          const nep_prune_hooks *h, double *H, nep_err *err) {
    phase(h, "activation states");
    e->progress = h->progress, e->progress_ctx = h->ctx;
    const nep_status s = nep_entropy_measure_split(e, g, &c->train, nep_split_pass_batch(&c->train), c->entropy_batches, c->exec, err);
    e->progress = NULL;
    phase(h, NULL);
    for (int l = 0; s == NEP_OK && l < e->n_layers; l++) H[l] = nep_prune_layer_entropy(&c->prune, &e->layers[l]);
    return s;
}

/* The iteration's sharpness on the training split (NaN when the loop measures none). */
static nep_status sharpness(nep_graph *g, const nep_prune_loop_cfg *c, const nep_prune_hooks *h, nep_prune_row *row,
                            nep_err *err) {
    row->sharpness = NAN;
    if (c->sharpness_batches <= 0 || c->train.text) return NEP_OK;
    nep_sharpness_opts o = nep_sharpness_defaults();
    o.batches = c->sharpness_batches;
    o.seed = c->seed;
    o.power.progress = h->progress, o.power.progress_ctx = h->ctx;
    phase(h, "sharpness");
    nep_power_result r;
    const nep_status s = nep_sharpness(g, &c->train, &o, &r, c->exec, err);
    phase(h, NULL);
    if (s == NEP_OK) row->sharpness = r.lambda;
    return s;
}

static nep_status evaluate(nep_graph *g, const nep_prune_loop_cfg *c, nep_prune_row *row, nep_err *err) {
    const bool val = nep_split_rows(&c->val) > 0;
    if (val) NEP_TRY(nep_split_evaluate(&c->val, g, nep_split_pass_batch(&c->val), &row->val_top1, NULL, c->exec, err));
    NEP_TRY(nep_split_evaluate(&c->test, g, nep_split_pass_batch(&c->test), &row->test_top1, NULL, c->exec, err));
    if (!val) row->val_top1 = row->test_top1;
    return NEP_OK;
}

/* One epoch of text: the rows in a shuffle drawn from rng, at a constant rate. */
static nep_status text_epoch(nep_trainer *t, const nep_text_tensors *d, double lr, nep_rng *rng,
                             const nep_prune_hooks *h, nep_err *err) {
    uint32_t *perm = malloc(sizeof *perm * (size_t)d->n + 1);
    if (!perm) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for %lld rows", (long long)d->n);
    for (int64_t i = 0; i < d->n; i++) perm[i] = (uint32_t)i;
    nep_rng_shuffle_u32(rng, perm, (size_t)d->n);
    nep_epoch_stats st;
    const nep_status s = nep_text_train_epoch(t, d, perm, lr, 0, 0, rng, h->progress, h->ctx, &st, err);
    free(perm);
    return s;
}

/* Retraining of iteration k; NEP_ERR_NUMERIC when the loss diverged. */
static nep_status retrain(nep_graph *g, const nep_prune_loop_cfg *c, const nep_prune_hooks *h,
                          int64_t k, nep_err *err) {
    if (c->retrain_epochs <= 0) return NEP_OK;
    if (c->train.text && nep_comm_many(c->comm))
        return nep_fail(err, NEP_ERR_UNSUPPORTED, "retraining a text model over %d ranks: not yet (one process does)",
                        c->comm->size);
    nep_trainer t;
    nep_loader loader = {0};
    nep_rng rng;
    nep_rng_seed(&rng, c->seed * 1000003u + (uint64_t)k);
    NEP_TRY(nep_trainer_init(&t, g, &c->optim, c->batch, c->exec, err));
    t.comm = c->comm;
    nep_status s = c->train.text ? NEP_OK : nep_loader_init(&loader, c->train.images, c->train.norm, c->batch, true,
                                                             false, err);
    if (s != NEP_OK) {
        nep_trainer_free(&t);
        return s;
    }
    if (c->augment && !c->train.text) nep_loader_set_augment(&loader, c->augment, &rng);
    for (int64_t ep = 0; ep < c->retrain_epochs && s == NEP_OK; ep++) {
        char label[96];
        snprintf(label, sizeof label, "iter %lld retrain %lld/%lld", (long long)k, (long long)ep + 1,
                 (long long)c->retrain_epochs);
        phase(h, label);
        nep_epoch_stats st;
        const double lr = nep_lr_at(&c->optim, ep);
        s = c->train.text ? text_epoch(&t, c->train.text, lr, &rng, h, err)
                          : nep_train_epoch(&t, &loader, lr, &rng, h->progress, h->ctx, &st, err);
        phase(h, NULL);
    }
    if (!c->train.text) nep_loader_free(&loader);
    nep_trainer_free(&t);
    return s;
}

/* Structural baselines: the chosen layer becomes the identity; *none_left when every
 * layer already is. */
static nep_status linearize_smallest(nep_graph *g, const nep_entropy *e, const nep_prune_loop_cfg *c,
                                     const nep_prune_hooks *h, bool *none_left, nep_err *err) {
    double *sums = NULL;
    if (c->prune.method == NEP_METHOD_SMALLEST_GRADS) {
        if (!(sums = calloc((size_t)e->n_layers, sizeof *sums)))
            return nep_fail(err, NEP_ERR_NOMEM, "out of memory");
        const nep_status s = nep_grad_sums(g, e, &c->train, nep_split_pass_batch(&c->train), sums, c->exec, err);
        if (s != NEP_OK) {
            free(sums);
            return s;
        }
    }
    const int l = nep_smallest_layer(g, e, sums);
    free(sums);
    *none_left = l < 0;
    if (l < 0) return NEP_OK;
    if (h->linearized) NEP_TRY(h->linearized(h->ctx, g, e->layers[l].node, err));
    return nep_graph_linearize(g, e->layers[l].node, err);
}

/* HRank's step: the lowest-ranked filters of every conv layer, pruned[l] the weights that
 * took (for the log's per-layer counts, which count weights for every method). */
static nep_status hrank_step(nep_graph *g, const nep_entropy *e, const nep_prune_loop_cfg *c, int64_t *pruned,
                             nep_err *err) {
    double **scores = NULL;
    NEP_TRY(nep_hrank_scores(g, e, &c->train, nep_split_pass_batch(&c->train), c->hrank_batches, &scores, c->exec,
                             err));
    int64_t *filters = calloc((size_t)e->n_layers, sizeof *filters);
    nep_status s = filters ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory");
    for (int l = 0; s == NEP_OK && l < e->n_layers; l++) pruned[l] = nep_layer_nonzero(g, &e->layers[l]);
    if (s == NEP_OK) s = nep_hrank_prune(g, e, scores, c->prune.zeta, filters, err);
    for (int l = 0; s == NEP_OK && l < e->n_layers; l++) pruned[l] -= nep_layer_nonzero(g, &e->layers[l]);
    free(filters);
    nep_hrank_free(scores, e->n_layers);
    return s;
}

static void finish_row(const nep_graph *g, const nep_entropy *e, nep_prune_row *row, const double *H,
                       double t0) {
    row->layers = e->n_layers;
    row->removed = 0;
    for (int l = 0; l < e->n_layers; l++) row->removed += H[l] == 0;
    row->sparsity = nep_owned_sparsity(g, e);
    row->seconds = nep_now() - t0;
    row->entropy = H;
}

/* HRank's layers: rectifiers owned by a convolution (nep_hrank_scores' rule). */
static bool has_conv_layer(const nep_graph *g, const nep_entropy *e) {
    for (int l = 0; l < e->n_layers; l++)
        if (nep_layer_weight(g, &e->layers[l]) && g->nodes[e->layers[l].owner].op == NEP_OP_CONV2D) return true;
    return false;
}

nep_status nep_prune_run(nep_graph *g, nep_entropy *e, const nep_prune_loop_cfg *c, bool fresh,
                         nep_prune_progress *p, const nep_prune_hooks *h, nep_prune_end *end,
                         nep_err *err) {
    const int n = e->n_layers;
    if (!n) return nep_fail(err, NEP_ERR_ARG, "the model has no rectifier layer to prune");
    if (c->prune.method == NEP_METHOD_HRANK && !has_conv_layer(g, e)) /* before iteration 0 writes anything */
        return nep_fail(err, NEP_ERR_ARG, "hrank prunes conv filters by their feature maps' rank: this model has no "
                        "rectifier fed by a convolution");
    double *H = calloc((size_t)n, sizeof *H), **scales = NULL;
    int64_t *pruned = calloc((size_t)n, sizeof *pruned);
    bool have_counts = false, none_left = false, diverged = false;
    nep_status s = H && pruned ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory");
    if (s == NEP_OK && fresh) {
        const double t0 = nep_now();
        nep_prune_row dense = {0};
        if ((s = evaluate(g, c, &dense, err)) || (s = sharpness(g, c, h, &dense, err)) ||
            (s = measure(g, e, c, h, H, err)))
            goto done;
        finish_row(g, e, &dense, H, t0);
        if ((s = h->iteration(h->ctx, g, e, &dense, err))) goto done;
        *p = (nep_prune_progress){0, 0, dense.val_top1, dense.test_top1, false};
        if ((s = h->commit(h->ctx, p, err))) goto done;
        have_counts = true;
    }
    while (s == NEP_OK && !p->stopped && p->iter < c->max_iter) {
        const int64_t k = p->iter + 1;
        const double t0 = nep_now();
        nep_prune_row row = {.iter = k, .pruned = pruned};
        if (!have_counts && (s = measure(g, e, c, h, H, err))) goto done; /* resumed: the current model's */
        for (int l = 0; l < n; l++) pruned[l] = 0;
        if (nep_method_structural(c->prune.method)) {
            if ((s = linearize_smallest(g, e, c, h, &none_left, err)) || none_left) break;
        } else if (c->prune.method == NEP_METHOD_HRANK) {
            if ((s = hrank_step(g, e, c, pruned, err))) goto done;
        } else if (c->prune.method != NEP_METHOD_SSL) {
            if (c->prune.criterion == NEP_CRIT_WANDA &&
                (s = nep_wanda_norms(g, e, &c->train, nep_split_pass_batch(&c->train), c->wanda_batches, &scales, c->exec, err)))
                goto done;
            s = nep_prune_step(g, e, &c->prune, scales, pruned, &row.budget, err);
            nep_wanda_free(scales, n);
            scales = NULL;
            if (s) goto done;
        }
        if ((s = retrain(g, c, h, k, err)) == NEP_ERR_NUMERIC) {
            if (h->note) {
                char msg[sizeof err->msg + 96];
                snprintf(msg, sizeof msg, "iteration %lld: %s; stopping after iteration %lld",
                         (long long)k, err->msg, (long long)k - 1);
                h->note(h->ctx, msg);
            }
            diverged = true;
            s = NEP_OK;
            break;
        }
        /* SSL: the layers the penalty drove below the threshold now go, before the
         * iteration is evaluated */
        if (s == NEP_OK && nep_method_ssl(c->prune.method)) nep_ssl_remove(g, e, c->prune.ssl_threshold, pruned);
        if (s || (s = evaluate(g, c, &row, err)) || (s = sharpness(g, c, h, &row, err)) ||
            (s = measure(g, e, c, h, H, err)))
            goto done;
        have_counts = true;
        finish_row(g, e, &row, H, t0);
        if ((s = h->iteration(h->ctx, g, e, &row, err))) goto done;
        p->iter = k;
        p->stopped = row.val_top1 < c->delta * p->dense_val;
        if (!p->stopped) p->selected = k;
        s = h->commit(h->ctx, p, err);
    }
    *end = p->stopped ? NEP_PRUNE_BY_DELTA : none_left ? NEP_PRUNE_NO_LAYER_LEFT
         : diverged ? NEP_PRUNE_DIVERGED : NEP_PRUNE_MAX_ITER;
done:
    nep_wanda_free(scales, n);
    free(H), free(pruned);
    return s;
}
