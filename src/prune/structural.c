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

typedef struct grad_ctx {
    const nep_entropy *e;
    double *sums;
    nep_real *dlogits;  /* [batch, classes] */
} grad_ctx;

static nep_status add_grads(void *ctx, nep_exec *ex, const nep_real *logits, const int32_t *y,
                            int64_t b, nep_err *err) {
    grad_ctx *c = ctx;
    nep_graph *g = nep_exec_graph(ex);
    nep_xent(logits, y, b, nep_shape_numel(&g->nodes[g->output].shape), c->dlogits, NULL);
    nep_exec_backward(ex, c->dlogits);
    for (int l = 0; l < c->e->n_layers; l++) {
        const nep_param *w = nep_layer_weight(g, &c->e->layers[l]);
        for (int64_t k = 0; w && k < w->numel; k++) c->sums[l] += fabs((double)g->grads[w->offset + k]);
    }
    return NEP_OK;
}

nep_status nep_grad_sums(nep_graph *g, const nep_entropy *e, const nep_split *d, int64_t batch,
                         double *grad_sums, const nep_exec_opts *xo, nep_err *err) {
    const int64_t K = nep_shape_numel(&g->nodes[g->output].shape);
    grad_ctx c = {e, grad_sums, malloc(sizeof(nep_real) * (size_t)(batch * K))};
    if (!c.dlogits) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for gradients");
    for (int l = 0; l < e->n_layers; l++) grad_sums[l] = 0;
    nep_status s = nep_split_for_each_batch(d, g, batch, 0, NULL, NULL, NULL, add_grads, &c, xo, err);
    if (s == NEP_OK) s = nep_comm_sum(d->comm, grad_sums, e->n_layers, NEP_COMM_F64, err);
    free(c.dlogits);
    return s;
}
