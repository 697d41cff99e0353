/* The group-lasso penalty of SSL (include/nepenthe/train.h): one group per rectifier
 * layer, the weight of the layer that owns it. The norms run in double on one thread in
 * offset order, so a run does not depend on the thread count; one pass over the
 * groups' weights per step, small beside the step's GEMMs. */
#include <math.h>
#include <string.h>

#include "nepenthe/prune.h"
#include "nepenthe/train.h"

int nep_group_lasso_groups(const nep_graph *g, uint8_t *in_group) {
    memset(in_group, 0, (size_t)g->n_params);
    nep_entropy e;
    nep_err err;
    if (nep_entropy_init(&e, g, true, &err) != NEP_OK) return -1;
    int n = 0;
    for (int l = 0; l < e.n_layers; l++) {
        const nep_param *w = nep_layer_weight(g, &e.layers[l]);
        if (w && !in_group[w - g->params]) {
            in_group[w - g->params] = 1;
            n++;
        }
    }
    nep_entropy_free(&e);
    return n;
}

double nep_group_lasso_coefs(const nep_graph *g, const uint8_t *in_group, double lambda, double *coef) {
    double penalty = 0;
    for (int p = 0; p < g->n_params; p++) {
        coef[p] = 0;
        if (!in_group[p]) continue;
        const nep_param *w = &g->params[p];
        const nep_real *v = g->values + w->offset;
        double sq = 0;
        for (int64_t k = 0; k < w->numel; k++) sq += (double)v[k] * (double)v[k];
        const double norm = sqrt(sq), scale = lambda * sqrt((double)w->numel);
        penalty += scale * norm;
        if (norm > 0) coef[p] = scale / norm;
    }
    return penalty;
}

void nep_group_lasso_grad(nep_graph *g, int p, const double *coef) {
    if (coef[p] == 0) return;
    const nep_param *w = &g->params[p];
    const nep_real *v = g->values + w->offset;
    nep_real *gr = g->grads + w->offset;
    const nep_real c = (nep_real)coef[p];
    for (int64_t k = 0; k < w->numel; k++) gr[k] += c * v[k];
}
