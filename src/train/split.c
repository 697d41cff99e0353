/* A split of images or of text behind one set of loops (nep_split, train.h). */
#include "nepenthe/text_train.h"

int64_t nep_split_rows(const nep_split *s) { return s->text ? s->text->n : s->images ? s->images->n : 0; }

nep_status nep_split_for_each_batch(const nep_split *s, nep_graph *g, int64_t batch,
                                    int64_t max_batches, nep_probe_fn probe, void *probe_ctx,
                                    const nep_real **mask_out, nep_batch_fn fn, void *ctx,
                                    const nep_exec_opts *xo, nep_err *err) {
    if (s->text)
        return nep_text_for_each_batch(g, s->text, batch, max_batches, false, probe, probe_ctx, mask_out, fn, ctx,
                                       xo, err);
    if (mask_out) *mask_out = NULL;
    return nep_for_each_batch(g, s->images, s->norm, batch, max_batches, probe, probe_ctx, fn, ctx, xo, err);
}

nep_status nep_split_evaluate(const nep_split *s, nep_graph *g, int64_t batch, double *top1,
                              const nep_exec_opts *xo, nep_err *err) {
    return s->text ? nep_text_evaluate(g, s->text, batch, top1, NULL, xo, err)
                   : nep_evaluate(g, s->images, s->norm, batch, top1, NULL, xo, err);
}
