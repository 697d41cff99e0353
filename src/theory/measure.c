/* The theory against a trained model (nepenthe/theory_measure.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/theory_measure.h"
#include "nepenthe/train.h"

#define HIST_LO (-4.0)
#define HIST_W (8.0 / NEP_HIST_BINS)

static void hist_add(double *h, double v) {
    const double b = floor((v - HIST_LO) / HIST_W);
    if (b >= 0 && b < NEP_HIST_BINS) h[(int)b] += 1;
}

/* Counts -> density (per unit of the standardized variable). */
static void hist_normalize(double *h, double n) {
    for (int i = 0; i < NEP_HIST_BINS; i++) h[i] = n > 0 ? h[i] / (n * HIST_W) : 0;
}

/* Half the L1 distance between a density histogram and N(0, 1)'s density per bin. */
static double gauss_tv(const double *h) {
    double tv = 0;
    for (int i = 0; i < NEP_HIST_BINS; i++) {
        const double a = HIST_LO + i * HIST_W, b = a + HIST_W;
        const double mass = 0.5 * (erf(b / sqrt(2.0)) - erf(a / sqrt(2.0)));
        tv += fabs(h[i] * HIST_W - mass);
    }
    return 0.5 * tv;
}

/* The owned weight of layer l, and its standard deviation over the values its mask keeps
 * (its histogram in units of that, too). */
static void weight_stats(const nep_graph *g, nep_layer_curve *l) {
    const nep_param *p = &g->params[g->nodes[l->owner].params[0]];
    const nep_real *w = g->values + p->offset;
    const uint8_t *m = g->masks + p->offset;
    double s = 0, ss = 0, n = 0;
    for (int64_t i = 0; i < p->numel; i++)
        if (m[i]) s += w[i], ss += (double)w[i] * w[i], n += 1;
    const double mean = n > 0 ? s / n : 0;
    l->sigma = n > 1 ? sqrt(fmax(ss / n - mean * mean, 0)) : 0;
    for (int64_t i = 0; i < p->numel && l->sigma > 0; i++)
        if (m[i]) hist_add(l->weight_hist, (w[i] - mean) / l->sigma);
    hist_normalize(l->weight_hist, n);
    l->weight_tv = gauss_tv(l->weight_hist);
}

/* Pre-activation statistics: pass 0 sums, pass 1 the histogram. */
typedef struct z_ctx {
    nep_theory_curves *c;
    int pass;
    double *n;
} z_ctx;

static void z_probe(void *ctx, const nep_graph *g, int node, const nep_real *z, int64_t batch,
                    bool channels_last) {
    z_ctx *q = ctx;
    for (int i = 0; i < q->c->n_layers; i++) {
        nep_layer_curve *l = &q->c->layers[i];
        if (l->node != node) continue;
        const int64_t n = batch * nep_shape_numel(&g->nodes[g->nodes[node].inputs[0]].shape);
        for (int64_t k = 0; k < n; k++) {
            if (q->pass == 0) l->z_mean += z[k], l->z_std += (double)z[k] * z[k];
            else if (l->z_std > 0) hist_add(l->z_hist, (z[k] - l->z_mean) / l->z_std);
        }
        q->n[i] += (double)n;
    }
}

static nep_status z_stats(nep_graph *g, const nep_dataset *d, const nep_normalize *norm, int64_t batch,
                          int64_t max_batches, nep_theory_curves *c, const nep_exec_opts *xo,
                          nep_err *err) {
    double *n = calloc((size_t)c->n_layers, sizeof(double));
    if (!n) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for pre-activation statistics");
    z_ctx q = {c, 0, n};
    nep_status s = nep_for_each_batch(g, d, norm, batch, max_batches, z_probe, &q, NULL, NULL, xo, err);
    for (int i = 0; s == NEP_OK && i < c->n_layers; i++) {
        nep_layer_curve *l = &c->layers[i];
        l->z_mean = n[i] > 0 ? l->z_mean / n[i] : 0;
        l->z_std = n[i] > 0 ? sqrt(fmax(l->z_std / n[i] - l->z_mean * l->z_mean, 0)) : 0;
        n[i] = 0;
    }
    q.pass = 1;
    if (s == NEP_OK) s = nep_for_each_batch(g, d, norm, batch, max_batches, z_probe, &q, NULL, NULL, xo, err);
    for (int i = 0; s == NEP_OK && i < c->n_layers; i++) {
        hist_normalize(c->layers[i].z_hist, n[i]);
        c->layers[i].z_tv = gauss_tv(c->layers[i].z_hist);
    }
    free(n);
    return s;
}

/* A copy of g with every owned weight pruned at |w| < t sigma_l; its layers' fraction
 * pruned and entropy. */
static nep_status at_threshold(nep_graph *g, const nep_dataset *d, const nep_normalize *norm, int64_t batch,
                               int64_t max_batches, nep_theory_curves *c, int k,
                               const nep_exec_opts *xo, nep_err *err) {
    nep_graph h;
    nep_entropy e;
    NEP_TRY(nep_graph_copy(g, &h, err));
    for (int i = 0; i < c->n_layers; i++) {
        nep_layer_curve *l = &c->layers[i];
        if (l->owner < 0) continue;
        const nep_param *p = &h.params[h.nodes[l->owner].params[0]];
        int64_t zeros = 0;
        for (int64_t j = p->offset; j < p->offset + p->numel; j++) {
            if (fabs((double)h.values[j]) < c->t[k] * l->sigma) h.values[j] = 0, h.masks[j] = 0;
            zeros += h.values[j] == 0;
        }
        l->pruned[k] = (double)zeros / (double)p->numel;
    }
    nep_status s = nep_entropy_init(&e, &h, false, err);
    if (s == NEP_OK) s = nep_entropy_measure(&e, &h, d, norm, batch, max_batches, xo, err);
    for (int i = 0; s == NEP_OK && i < c->n_layers; i++)
        c->layers[i].entropy[k] = nep_layer_entropy(&e.layers[i], false);
    nep_entropy_free(&e);
    nep_graph_free(&h);
    return s;
}

nep_status nep_theory_measure(nep_graph *g, const nep_dataset *d, const nep_normalize *norm,
                              const double *t, int n_t, int64_t batch, int64_t max_batches,
                              nep_theory_curves *out, const nep_exec_opts *xo, nep_err *err) {
    memset(out, 0, sizeof *out);
    nep_entropy e;
    NEP_TRY(nep_entropy_init(&e, g, false, err));
    out->n_t = n_t;
    out->n_layers = e.n_layers;
    out->t = malloc(sizeof(double) * (size_t)(n_t ? n_t : 1));
    out->layers = calloc((size_t)(e.n_layers ? e.n_layers : 1), sizeof *out->layers);
    nep_status s = out->t && out->layers ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory");
    for (int k = 0; s == NEP_OK && k < n_t; k++) out->t[k] = t[k];
    for (int i = 0; s == NEP_OK && i < e.n_layers; i++) {
        nep_layer_curve *l = &out->layers[i];
        l->node = e.layers[i].node;
        l->owner = nep_rectifier_owner(g, l->node);
        l->pruned = calloc((size_t)(n_t ? n_t : 1), sizeof(double));
        l->entropy = calloc((size_t)(n_t ? n_t : 1), sizeof(double));
        if (!l->pruned || !l->entropy) s = nep_fail(err, NEP_ERR_NOMEM, "out of memory");
        else if (l->owner >= 0) weight_stats(g, l);
    }
    nep_entropy_free(&e);
    if (s == NEP_OK) s = z_stats(g, d, norm, batch, max_batches, out, xo, err);
    for (int k = 0; s == NEP_OK && k < n_t; k++) s = at_threshold(g, d, norm, batch, max_batches, out, k, xo, err);
    if (s != NEP_OK) nep_theory_curves_free(out);
    return s;
}

void nep_theory_curves_free(nep_theory_curves *c) {
    for (int i = 0; c->layers && i < c->n_layers; i++) {
        free(c->layers[i].pruned);
        free(c->layers[i].entropy);
    }
    free(c->layers);
    free(c->t);
    memset(c, 0, sizeof *c);
}
