/* Forward passes over a data set in order: evaluation, entropy counts, calibration. */
#include "nepenthe/train.h"

nep_status nep_for_each_batch(nep_graph *g, const nep_dataset *d, const nep_normalize *norm,
                              int64_t batch, int64_t max_batches, nep_probe_fn probe,
                              void *probe_ctx, nep_batch_fn fn, void *ctx,
                              const nep_exec_opts *xo, nep_err *err) {
    const nep_split split = {.images = d, .norm = norm};
    return nep_split_for_each_batch(&split, g, batch, max_batches, probe, probe_ctx, NULL, fn, ctx, xo, err);
}
