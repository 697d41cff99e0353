/* Fine-tuning and evaluating text classifiers (nepenthe/text_train.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/text_train.h"

void nep_text_tensors_free(nep_text_tensors *t) {
    free(t->ids), free(t->types), free(t->mask), free(t->labels);
    memset(t, 0, sizeof *t);
}

nep_status nep_text_tensors_build(const nep_tokenizer *tok, const nep_text_dataset *d, int64_t T,
                                  nep_text_tensors *out, nep_err *err) {
    memset(out, 0, sizeof *out);
    if (T < 1) return nep_fail(err, NEP_ERR_ARG, "a sequence length of %lld tokens", (long long)T);
    const size_t cells = (size_t)(d->n * T);
    *out = (nep_text_tensors){.n = d->n, .T = T, .ids = malloc(sizeof(int32_t) * cells + 1),
                              .types = malloc(sizeof(int32_t) * cells + 1),
                              .mask = malloc(sizeof(nep_real) * cells + 1),
                              .labels = malloc(sizeof(int32_t) * (size_t)d->n + 1)};
    nep_status s = out->ids && out->types && out->mask && out->labels
                       ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory for %lld rows of %lld tokens",
                                           (long long)d->n, (long long)T);
    nep_encode_opts o = nep_tokenizer_default_opts(tok);
    o.max_length = T, o.pad = true;
    nep_encoding e = {0}, whole = {0};
    nep_encode_opts untruncated = o;
    untruncated.max_length = 0, untruncated.pad = false;
    for (int64_t r = 0; s == NEP_OK && r < d->n; r++) {
        const char *a = d->text_a[r], *b = d->text_b ? d->text_b[r] : NULL;
        s = nep_tokenizer_encode(tok, a, strlen(a), b, b ? strlen(b) : 0, &o, &e, err);
        if (s == NEP_OK) s = nep_tokenizer_encode(tok, a, strlen(a), b, b ? strlen(b) : 0, &untruncated, &whole, err);
        if (s != NEP_OK) {
            char why[sizeof err->msg];
            memcpy(why, err->msg, sizeof why);
            s = nep_fail(err, s, "row %lld: %s", (long long)r, why);
            break;
        }
        for (int64_t t = 0; t < T; t++) {
            out->ids[r * T + t] = e.ids[t];
            out->types[r * T + t] = e.type_ids[t];
            out->mask[r * T + t] = e.attention_mask[t];
            out->tokens += e.attention_mask[t];
        }
        out->truncated += whole.n > T;
        out->labels[r] = d->labels[r];
    }
    nep_encoding_free(&e), nep_encoding_free(&whole);
    if (s != NEP_OK) nep_text_tensors_free(out);
    return s;
}

double nep_linear_lr(double lr, int64_t warmup, int64_t total, int64_t step) {
    if (step < warmup) return lr * (double)step / (double)warmup;
    if (total <= 0) return lr;
    return lr * fmax(0, (double)(total - step) / (double)(total > warmup ? total - warmup : 1));
}

/* The batch of rows rows[0..b) of d, gathered into ids, types, mask and y. */
static void gather(const nep_text_tensors *d, const uint32_t *rows, int64_t b, int32_t *ids, int32_t *types,
                   nep_real *mask, int32_t *y) {
    const int64_t T = d->T;
    for (int64_t i = 0; i < b; i++) {
        const int64_t r = rows[i];
        memcpy(ids + i * T, d->ids + r * T, sizeof *ids * (size_t)T);
        memcpy(types + i * T, d->types + r * T, sizeof *types * (size_t)T);
        memcpy(mask + i * T, d->mask + r * T, sizeof *mask * (size_t)T);
        if (y) y[i] = d->labels[r];
    }
}

/* Row numbers 0..n-1, or perm's. */
static uint32_t *row_order(const uint32_t *perm, int64_t n) {
    uint32_t *rows = malloc(sizeof *rows * (size_t)n + 1);
    for (int64_t i = 0; rows && i < n; i++) rows[i] = perm ? perm[i] : (uint32_t)i;
    return rows;
}

nep_status nep_text_train_epoch(nep_trainer *t, const nep_text_tensors *d, const uint32_t *perm,
                                double lr, int64_t warmup, int64_t total_steps, nep_rng *rng,
                                nep_progress_fn progress, void *progress_ctx,
                                nep_epoch_stats *out, nep_err *err) {
    const double t0 = nep_now();
    const int64_t B = t->batch, T = d->T;
    int32_t *ids = malloc(sizeof *ids * (size_t)(B * T)), *types = malloc(sizeof *types * (size_t)(B * T));
    nep_real *mask = malloc(sizeof *mask * (size_t)(B * T));
    uint32_t *rows = row_order(perm, d->n);
    nep_status s = ids && types && mask && rows ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory for a batch");
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    for (int64_t start = 0; s == NEP_OK && start < d->n; start += B) {
        const int64_t b = d->n - start < B ? d->n - start : B;
        gather(d, rows + start, b, ids, types, mask, t->y);
        const void *x[3] = {ids, types, mask};
        double loss;
        s = nep_train_step_inputs(t, x, 3, b, nep_linear_lr(lr, warmup, total_steps, t->opt.step), rng, &loss,
                                  &correct, err);
        loss_sum += loss * (double)b;
        seen += b;
        if (s == NEP_OK && progress) progress(progress_ctx, seen, d->n, loss_sum / (double)seen, nep_now() - t0);
    }
    free(ids), free(types), free(mask), free(rows);
    *out = (nep_epoch_stats){.samples = seen, .seconds = nep_now() - t0,
                             .loss = seen ? loss_sum / (double)seen : 0,
                             .top1 = seen ? 100.0 * (double)correct / (double)seen : 0};
    out->img_per_s = out->seconds > 0 ? (double)seen / out->seconds : 0;
    return s;
}

nep_status nep_text_evaluate(nep_graph *g, const nep_text_tensors *d, int64_t batch, double *top1,
                             double *loss, const nep_exec_opts *xo, nep_err *err) {
    nep_exec_opts o = xo ? *xo : (nep_exec_opts){0};
    o.inference = true;
    return nep_split_evaluate(&(nep_split){.text = d}, g, batch, top1, loss, &o, err);
}
