/* The paper's naive structural baselines: pick the rectifier layer whose weights look
 * least important (smallest sum of |w| or of |gradient|) and make it the identity. */
#include <math.h>
#include <stdlib.h>

#include "nepenthe/prune.h"
#include "nepenthe/train.h"
#include "ops/ops.h"

int nep_smallest_layer(const nep_graph *g, const nep_entropy *e, const double *grad_sums) {
    int best = -1;
    double best_v = INFINITY;
    for (int l = 0; l < e->n_layers; l++) {
        const nep_layer_states *ls = &e->layers[l];
        const nep_param *w = nep_layer_weight(g, ls);
        if (!w || !nep_op(g->nodes[ls->node].op)->states) continue;
        double v = 0;
        if (grad_sums)
            v = grad_sums[l];
        else
            for (int64_t k = 0; k < w->numel; k++) v += fabs((double)g->values[w->offset + k]);
        if (v < best_v) best = l, best_v = v;
    }
    return best;
}

nep_status nep_grad_sums(nep_graph *g, const nep_entropy *e, const nep_dataset *d,
                         const nep_normalize *norm, int64_t batch, double *grad_sums, nep_err *err) {
    nep_loader loader;
    nep_exec ex;
    NEP_TRY(nep_loader_init(&loader, d, norm, batch, false, false, err));
    nep_status s = nep_exec_init(&ex, g, batch, err);
    if (s != NEP_OK) {
        nep_loader_free(&loader);
        return s;
    }
    const int64_t in = nep_shape_numel(&g->nodes[g->input].shape);
    const int64_t K = nep_shape_numel(&g->nodes[g->output].shape);
    nep_real *x = malloc(sizeof(nep_real) * (size_t)(batch * in));
    nep_real *dl = malloc(sizeof(nep_real) * (size_t)(batch * K));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)batch);
    if (!x || !dl || !y) s = nep_fail(err, NEP_ERR_NOMEM, "out of memory for a gradient batch");
    for (int l = 0; l < e->n_layers; l++) grad_sums[l] = 0;
    int64_t b;
    nep_loader_epoch(&loader, NULL);
    while (s == NEP_OK && (b = nep_loader_next(&loader, x, y)) > 0) {
        nep_xent(nep_exec_forward(&ex, x, b), y, b, K, dl, NULL);
        nep_exec_backward(&ex, dl);
        for (int l = 0; l < e->n_layers; l++) {
            const nep_param *w = nep_layer_weight(g, &e->layers[l]);
            for (int64_t k = 0; w && k < w->numel; k++) grad_sums[l] += fabs((double)g->grads[w->offset + k]);
        }
    }
    free(x), free(dl), free(y);
    nep_exec_free(&ex);
    nep_loader_free(&loader);
    return s;
}
