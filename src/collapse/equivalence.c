/* The equivalence check: two models on the same batches, logit by logit. */
#include <math.h>
#include <stdlib.h>

#include "nepenthe/collapse.h"
#include "nepenthe/train.h"

static int64_t argmax(const nep_real *v, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

nep_status nep_collapse_compare_split(nep_graph *a, nep_graph *b, const nep_split *d, int64_t batch,
                                      int64_t max_samples, nep_equivalence *out, const nep_exec_opts *xo,
                                      nep_err *err) {
    *out = (nep_equivalence){0};
    nep_split_iter it;
    nep_exec *ea = NULL, *eb = NULL;
    nep_exec_opts o = xo ? *xo : (nep_exec_opts){0};
    o.inference = true;
    NEP_TRY(nep_split_iter_init(&it, d, batch, err));
    nep_status s = nep_exec_new(&ea, a, batch, &o, err);
    if (s == NEP_OK) s = nep_exec_new(&eb, b, batch, &o, err);
    const int64_t K = nep_shape_numel(&a->nodes[a->output].shape);
    if (s == NEP_OK && K != nep_shape_numel(&b->nodes[b->output].shape))
        s = nep_fail(err, NEP_ERR_SHAPE, "the two models have different output sizes");
    int64_t hit_a = 0, hit_b = 0, n = 0;
    while (s == NEP_OK && (max_samples <= 0 || out->samples < max_samples) && (n = nep_split_iter_next(&it, err)) > 0) {
        if (max_samples > 0 && out->samples + n > max_samples) n = max_samples - out->samples;
        const nep_real *za, *zb;
        if ((s = nep_exec_run(ea, it.inputs, it.n_inputs, n, &za, err)) != NEP_OK ||
            (s = nep_exec_run(eb, it.inputs, it.n_inputs, n, &zb, err)) != NEP_OK)
            break;
        for (int64_t i = 0; i < n; i++) {
            for (int64_t k = 0; k < K; k++) {
                const double diff = fabs((double)za[i * K + k] - (double)zb[i * K + k]);
                if (!isnan(out->max_abs_diff) && !(diff <= out->max_abs_diff)) out->max_abs_diff = diff;
            }
            const int64_t pa = argmax(za + i * K, K), pb = argmax(zb + i * K, K);
            out->agree += pa == pb;
            hit_a += pa == it.y[i];
            hit_b += pb == it.y[i];
        }
        out->samples += n;
    }
    if (s == NEP_OK && n < 0) s = it.loader.err.status; /* a streamed image failed to decode */
    if (out->samples) {
        out->top1_a = 100.0 * (double)hit_a / (double)out->samples;
        out->top1_b = 100.0 * (double)hit_b / (double)out->samples;
    }
    nep_exec_free(ea), nep_exec_free(eb);
    nep_split_iter_free(&it);
    return s;
}

nep_status nep_collapse_compare(nep_graph *a, nep_graph *b, const nep_dataset *d,
                                const nep_normalize *norm, int64_t batch, int64_t max_samples,
                                nep_equivalence *out, const nep_exec_opts *xo, nep_err *err) {
    const nep_split split = {.images = d, .norm = norm};
    return nep_collapse_compare_split(a, b, &split, batch, max_samples, out, xo, err);
}
