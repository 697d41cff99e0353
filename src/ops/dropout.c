/* Dropout, as torch.nn.Dropout(p): in training, each element is kept with probability
 * 1-p and scaled by 1/(1-p); in evaluation it is the identity.
 *   x [B, ...]   y [B, ...]   keep mask (state) [B, ...] as scale factors
 * The mask is drawn sequentially from ex->rng, so a seed reproduces it whatever the
 * thread count. */
#include "nepenthe/rng.h"
#include "ops/ops.h"

static nep_status dropout_infer(nep_graph *g, nep_node *n, nep_err *err) {
    if (!(n->attrs.p >= 0 && n->attrs.p < 1))
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (Dropout): p = %g is not in [0, 1)",
                        n->name, n->attrs.p);
    return nep_infer_same(g, n, err);
}

static bool dropout_active(const nep_exec *ex, const nep_node *n) {
    return ex->training && n->attrs.p > 0;
}

static void dropout_forward(nep_exec *ex, int id) {
    const nep_node *n = &ex->g->nodes[id];
    const int64_t len = nep_exec_numel(ex, id);
    const nep_real *x = ex->act[n->inputs[0]];
    nep_real *y = ex->act[id];
    if (!dropout_active(ex, n)) {
        for (int64_t i = 0; i < len; i++) y[i] = x[i];
        return;
    }
    nep_real *scale = ex->state[id];
    const nep_real keep = (nep_real)(1 / (1 - n->attrs.p));
    for (int64_t i = 0; i < len; i++)
        scale[i] = nep_rng_uniform(ex->rng) >= n->attrs.p ? keep : 0;
    for (int64_t i = 0; i < len; i++) y[i] = x[i] * scale[i];
}

static void dropout_backward(nep_exec *ex, int id) {
    const nep_node *n = &ex->g->nodes[id];
    const int64_t len = nep_exec_numel(ex, id);
    const nep_real *dy = ex->dact[id], *scale = ex->state[id];
    bool add;
    nep_real *dx = nep_input_grad(ex, n, 0, &add);
    if (!dx) return;
    const bool active = dropout_active(ex, n);
    for (int64_t i = 0; i < len; i++) {
        const nep_real g = active ? dy[i] * scale[i] : dy[i];
        dx[i] = add ? dx[i] + g : g;
    }
}

/* One scale factor per element. */
static int64_t dropout_state_reals(const nep_exec *ex, const nep_node *n) {
    return nep_shape_numel(&n->shape);
}

const nep_op_def nep_op_dropout = {
    .name = "Dropout", .min_inputs = 1, .max_inputs = 1,
    .state_reals = dropout_state_reals,
    .infer = dropout_infer, .flops = nep_flops_elementwise,
    .forward = dropout_forward, .backward = dropout_backward,
};
