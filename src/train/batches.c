/* Forward passes over a data set in order: evaluation, entropy counts, calibration. */
#include <stdlib.h>

#include "nepenthe/train.h"

nep_status nep_for_each_batch(nep_graph *g, const nep_dataset *d, const nep_normalize *norm,
                              int64_t batch, int64_t max_batches, nep_probe_fn probe,
                              void *probe_ctx, nep_batch_fn fn, void *ctx,
                              const nep_exec_opts *xo, nep_err *err) {
    nep_loader loader;
    nep_exec *ex;
    NEP_TRY(nep_loader_init(&loader, d, norm, batch, false, false, err));
    nep_status s = nep_exec_new(&ex, g, batch, xo, err);
    if (s != NEP_OK) {
        nep_loader_free(&loader);
        return s;
    }
    nep_exec_set_probe(ex, probe, probe_ctx);
    const int64_t in = nep_shape_numel(&g->nodes[g->input].shape);
    nep_real *x = malloc(sizeof(nep_real) * (size_t)(batch * in));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)batch);
    if (!x || !y) s = nep_fail(err, NEP_ERR_NOMEM, "out of memory for a batch of %lld", (long long)batch);
    nep_loader_epoch(&loader, NULL);
    int64_t b;
    for (int64_t done = 0; s == NEP_OK && (max_batches <= 0 || done < max_batches) &&
                           (b = nep_loader_next(&loader, x, y)) > 0;
         done++) {
        const nep_real *logits = nep_exec_forward(ex, x, b);
        if (fn) s = fn(ctx, ex, logits, y, b, err);
    }
    free(x);
    free(y);
    nep_exec_free(ex);
    nep_loader_free(&loader);
    return s;
}
