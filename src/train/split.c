/* A split of images or of text behind one set of loops (nep_split, train.h). */
#include <stdlib.h>
#include <string.h>

#include "nepenthe/text_train.h"

int64_t nep_split_rows(const nep_split *s) { return s->text ? s->text->n : s->images ? s->images->n : 0; }

int64_t nep_split_pass_batch(const nep_split *s) { return s->text ? 32 : 256; }

nep_status nep_split_for_each_batch(const nep_split *s, nep_graph *g, int64_t batch,
                                    int64_t max_batches, nep_probe_fn probe, void *probe_ctx,
                                    const nep_real **mask_out, nep_batch_fn fn, void *ctx,
                                    const nep_exec_opts *xo, nep_err *err) {
    nep_split_iter it;
    nep_exec *ex;
    NEP_TRY(nep_split_iter_init(&it, s, batch, err));
    nep_status st = nep_exec_new(&ex, g, batch, xo, err);
    if (st != NEP_OK) {
        nep_split_iter_free(&it);
        return st;
    }
    nep_exec_set_probe(ex, probe, probe_ctx);
    if (mask_out) *mask_out = it.mask; /* NULL for images */
    int64_t b = 0;
    const int64_t ranks = nep_comm_many(s->comm) ? s->comm->size : 1, rank = nep_comm_rank(s->comm);
    for (int64_t done = 0; st == NEP_OK && (max_batches <= 0 || done < max_batches) && (b = nep_split_iter_next(&it, err)) > 0;
         done++) {
        if (done % ranks != rank) continue; /* another rank's: the batches stay those of one process */
        const nep_real *logits;
        st = nep_exec_run(ex, it.inputs, it.n_inputs, b, &logits, err);
        if (st == NEP_OK && fn) st = fn(ctx, ex, logits, it.y, b, err);
    }
    if (b < 0) st = it.loader.err.status;
    if (mask_out) *mask_out = NULL;
    nep_exec_free(ex);
    nep_split_iter_free(&it);
    return st;
}

typedef struct eval_sums {
    double loss;
    int64_t correct, seen;
} eval_sums;

static nep_status add_batch(void *ctx, nep_exec *ex, const nep_real *logits, const int32_t *y, int64_t b,
                            nep_err *err) {
    eval_sums *e = ctx;
    const nep_graph *g = nep_exec_graph(ex);
    const int64_t K = nep_shape_numel(&g->nodes[g->output].shape);
    for (int64_t i = 0; i < b; i++)
        if (y[i] < 0 || y[i] >= K)
            return nep_fail(err, y[i] < 0 ? NEP_ERR_ARG : NEP_ERR_SHAPE, y[i] < 0 ? "a row without a label (GLUE's test "
                            "files have none)" : "label %d is outside the model's %lld classes", y[i], (long long)K);
    e->loss += nep_xent(logits, y, b, K, NULL, &e->correct) * (double)b;
    e->seen += b;
    return NEP_OK;
}

nep_status nep_split_evaluate(const nep_split *s, nep_graph *g, int64_t batch, double *top1, double *loss,
                              const nep_exec_opts *xo, nep_err *err) {
    eval_sums e = {0};
    NEP_TRY(nep_split_for_each_batch(s, g, batch, 0, NULL, NULL, NULL, add_batch, &e, xo, err));
    NEP_TRY(nep_comm_sum(s->comm, &e.loss, 1, NEP_COMM_F64, err));
    NEP_TRY(nep_comm_sum(s->comm, &e.correct, 2, NEP_COMM_I64, err)); /* correct, seen */
    *top1 = e.seen ? 100.0 * (double)e.correct / (double)e.seen : 0;
    if (loss) *loss = e.seen ? e.loss / (double)e.seen : 0;
    return NEP_OK;
}

nep_status nep_split_iter_init(nep_split_iter *it, const nep_split *s, int64_t batch, nep_err *err) {
    memset(it, 0, sizeof *it);
    it->split = s, it->batch = batch;
    it->y = malloc(sizeof *it->y * (size_t)batch);
    if (s->text) {
        const size_t cells = (size_t)(batch * s->text->T);
        it->ids = malloc(sizeof *it->ids * cells), it->types = malloc(sizeof *it->types * cells);
        it->mask = malloc(sizeof *it->mask * cells);
        if (s->decoder) it->inputs[0] = it->ids, it->inputs[1] = it->mask, it->n_inputs = 2;
        else it->inputs[0] = it->ids, it->inputs[1] = it->types, it->inputs[2] = it->mask, it->n_inputs = 3;
        if (it->y && it->ids && it->types && it->mask) return NEP_OK;
    } else {
        const nep_dataset *d = s->images;
        it->x = malloc(sizeof *it->x * (size_t)(batch * d->c * d->h * d->w));
        it->inputs[0] = it->x, it->n_inputs = 1;
        if (it->y && it->x) {
            const nep_status st = nep_loader_init(&it->loader, d, s->norm, batch, false, false, err);
            if (st == NEP_OK) return NEP_OK;
            nep_split_iter_free(it);
            return st;
        }
    }
    nep_split_iter_free(it);
    return nep_fail(err, NEP_ERR_NOMEM, "out of memory for a batch of %lld", (long long)batch);
}

int64_t nep_split_iter_next(nep_split_iter *it, nep_err *err) {
    const nep_text_tensors *d = it->split->text;
    if (!d) {
        const int64_t b = nep_loader_next(&it->loader, it->x, it->y);
        if (b < 0 && err) *err = it->loader.err;
        return b;
    }
    const int64_t b = d->n - it->next < it->batch ? d->n - it->next : it->batch, T = d->T;
    if (b <= 0) return 0;
    memcpy(it->ids, d->ids + it->next * T, sizeof *it->ids * (size_t)(b * T));
    memcpy(it->types, d->types + it->next * T, sizeof *it->types * (size_t)(b * T));
    memcpy(it->mask, d->mask + it->next * T, sizeof *it->mask * (size_t)(b * T));
    memcpy(it->y, d->labels + it->next, sizeof *it->y * (size_t)b);
    it->next += b;
    return b;
}

void nep_split_iter_free(nep_split_iter *it) {
    if (!it->split) return;
    if (it->x) nep_loader_free(&it->loader);
    free(it->x), free(it->ids), free(it->types), free(it->mask), free(it->y);
    memset(it, 0, sizeof *it);
}
