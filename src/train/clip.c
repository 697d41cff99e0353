/* Gradient-norm clipping, torch.nn.utils.clip_grad_norm_(parameters, max_norm,
 * norm_type=2): one norm over every trainable gradient, then one scale for all. The
 * sum of squares runs in double and in offset order on one thread, so the norm does
 * not depend on the thread count; it is one pass over the gradient block, small
 * beside a step's GEMMs. */
#include <math.h>

#include "nepenthe/train.h"

/* The parameters an optimizer step updates (nep_optim_update skips the others). */
static bool updated(const nep_graph *g, const nep_param *p) {
    return (p->flags & NEP_PARAM_TRAINABLE) && !g->nodes[p->node].dead;
}

double nep_clip_grad_norm(nep_graph *g, double max_norm) {
    double sq = 0;
    for (int i = 0; i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        if (!updated(g, p)) continue;
        const nep_real *gr = g->grads + p->offset;
        const uint8_t *keep = g->masks + p->offset;
        /* A pruned entry's gradient is not a gradient PyTorch has: there the weight is
         * weight_orig * mask, so weight_orig's gradient is 0 where the mask is. */
        for (int64_t k = 0; k < p->numel; k++)
            if (keep[k]) sq += (double)gr[k] * (double)gr[k];
    }
    const double total = sqrt(sq), coef = max_norm / (total + 1e-6);
    if (!(coef < 1)) return total;
    const nep_real scale = (nep_real)coef;
    for (int i = 0; i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        if (!updated(g, p)) continue;
        nep_real *gr = g->grads + p->offset;
        for (int64_t k = 0; k < p->numel; k++) gr[k] *= scale;
    }
    return total;
}
