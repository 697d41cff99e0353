/* What a model costs: the before/after columns of the collapse report (the paper's
 * Tables 10 and 15). */
#include <math.h>
#include <stdlib.h>

#include "nepenthe/collapse.h"
#include "nepenthe/report.h"
#include "nepenthe/train.h"

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double nep_median(double *v, int64_t n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Joules of one forward where meter is open (else NaN): forwards for at least a second,
 * RAPL's counters moving in steps of about a millisecond's energy. */
static nep_status energy_per_forward(nep_exec *ex, const void *const *x, int n_in, int64_t b,
                                     nep_energy_meter *meter, double *joules, nep_err *err) {
    *joules = NAN;
    if (!meter || !meter->zones) return NEP_OK;
    const nep_real *y;
    int64_t n = 0;
    NEP_TRY(nep_energy_start(meter, err));
    const double t0 = nep_now();
    for (; nep_now() - t0 < 1.0; n++) NEP_TRY(nep_exec_run(ex, x, n_in, b, &y, err));
    double j;
    NEP_TRY(nep_energy_joules(meter, &j, err));
    *joules = j / (double)n;
    return NEP_OK;
}

/* Median seconds of `calls` evaluation forwards of the input tensors x at batch b (after
 * 3 untimed) by an inference executor, the bytes of activations and scratch it holds for
 * them, and (meter open) the joules of one. */
static nep_status time_forward(nep_graph *g, const void *const *x, int n_in, int64_t b, int64_t calls,
                               double *seconds, int64_t *bytes, nep_energy_meter *meter, double *joules,
                               const nep_exec_opts *xo, nep_err *err) {
    nep_exec *ex;
    nep_exec_opts o = xo ? *xo : (nep_exec_opts){0};
    o.inference = o.frozen_weights = true; /* served: the weights do not change between calls */
    NEP_TRY(nep_exec_new(&ex, g, b, &o, err));
    double *t = malloc(sizeof(double) * (size_t)calls);
    if (!t) {
        nep_exec_free(ex);
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory timing the model");
    }
    const nep_real *y;
    nep_status s = NEP_OK;
    for (int i = 0; s == NEP_OK && i < 3; i++) s = nep_exec_run(ex, x, n_in, b, &y, err);
    for (int64_t i = 0; s == NEP_OK && i < calls; i++) {
        const double t0 = nep_now();
        s = nep_exec_run(ex, x, n_in, b, &y, err);
        t[i] = nep_now() - t0;
    }
    if (s == NEP_OK) *seconds = nep_median(t, calls);
    if (s == NEP_OK) s = energy_per_forward(ex, x, n_in, b, meter, joules, err);
    *bytes = nep_exec_activation_bytes(ex) + nep_exec_scratch_bytes(ex) + nep_exec_cache_bytes(ex);
    free(t);
    nep_exec_free(ex);
    return s;
}

nep_status nep_model_stats_measure_split(nep_graph *g, const nep_split *test, int64_t calls,
                                         nep_model_stats *out, const nep_exec_opts *xo, nep_err *err) {
    *out = (nep_model_stats){.rectifiers = nep_graph_rectifiers(g), .depth = nep_graph_depth(g),
                             .params = nep_graph_param_count(g), .energy_b1 = NAN, .energy_b128 = NAN};
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        out->nonzero += nep_node_nonzero_count(g, n);
        out->flops += nep_node_flops(g, n);
    }
    for (int i = 0; i < g->n_params; i++)
        if (!g->nodes[g->params[i].node].dead) out->param_bytes += g->params[i].numel * (int64_t)sizeof(nep_real);
    if (!test) return NEP_OK;
    NEP_TRY(nep_split_evaluate(test, g, 256, &out->top1, NULL, xo, err));
    /* the first 128 test samples, as the loops feed them */
    nep_split_iter it;
    NEP_TRY(nep_split_iter_init(&it, test, 128, err));
    const int64_t b = nep_split_iter_next(&it, err);
    if (b < 0) {
        nep_split_iter_free(&it);
        return err ? err->status : NEP_ERR_IO;
    }
    int64_t bytes1;
    nep_energy_meter meter;
    nep_err no_rapl;
    const bool rapl = nep_energy_open(&meter, NEP_RAPL_ROOT, &no_rapl) == NEP_OK;
    nep_status s = time_forward(g, it.inputs, it.n_inputs, 1, calls, &out->latency_b1, &bytes1,
                                rapl ? &meter : NULL, &out->energy_b1, xo, err);
    if (s == NEP_OK)
        s = time_forward(g, it.inputs, it.n_inputs, b, calls > 10 ? calls / 4 : calls, &out->latency_b128,
                         &out->act_bytes_b128, rapl ? &meter : NULL, &out->energy_b128, xo, err);
    out->batch = b;
    nep_split_iter_free(&it);
    return s;
}

nep_status nep_model_stats_measure(nep_graph *g, const nep_dataset *test, const nep_normalize *norm,
                                   int64_t calls, nep_model_stats *out, const nep_exec_opts *xo,
                                   nep_err *err) {
    const nep_split split = {.images = test, .norm = norm};
    return nep_model_stats_measure_split(g, test ? &split : NULL, calls, out, xo, err);
}
