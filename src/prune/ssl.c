/* SSL's layer removal (Wen et al. 2016): the group-lasso penalty (src/train/group_lasso.c)
 * drives the weight of unneeded layers towards zero; a layer whose weight's RMS fell
 * below the threshold is zeroed whole. Its pre-activation is then the same for every
 * input (a bias, or BatchNorm's shift), so every neuron stays in one state: H_l = 0,
 * the count every method's "removed" reads, and collapse folds the layer away. */
#include <math.h>

#include "nepenthe/prune.h"

int nep_ssl_remove(nep_graph *g, const nep_entropy *e, double threshold, int64_t *removed) {
    int layers = 0;
    for (int l = 0; l < e->n_layers; l++) {
        const nep_param *w = nep_layer_weight(g, &e->layers[l]);
        if (!w) continue;
        nep_real *v = g->values + w->offset;
        uint8_t *keep = g->masks + w->offset;
        double sq = 0;
        int64_t live = 0;
        for (int64_t k = 0; k < w->numel; k++) {
            sq += (double)v[k] * (double)v[k];
            live += keep[k] && v[k] != 0;
        }
        if (!live || !(sqrt(sq / (double)w->numel) < threshold)) continue;
        for (int64_t k = 0; k < w->numel; k++) {
            keep[k] = 0;
            v[k] = 0;
        }
        removed[l] += live;
        layers++;
    }
    return layers;
}
