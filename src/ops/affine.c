/* A fixed per-channel affine map, what collapse leaves where a rectifier was linearized
 * or a BatchNorm could not be folded into a neighbour.
 *   x [B, C, ...]   w [C] ("weight")   b [C] ("bias")   y [B, C, ...]
 * y = w_c x + b_c;  dx (+)= w_c dy;  dw_c = sum dy x;  db_c = sum dy */
#include "ops/ops.h"

static nep_status affine_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    bool ok = n->n_params == 2;
    for (int i = 0; ok && i < 2; i++) {
        const nep_param *p = &g->params[n->params[i]];
        ok = p->ndim == 1 && p->shape[0] == in->d[0];
    }
    if (!ok)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Affine): weight and bias must have one "
                        "value per channel (%lld)", n->name, (long long)in->d[0]);
    n->shape = *in;
    return NEP_OK;
}

static void affine_forward(nep_exec *ex, int id) {
    const nep_node *n = &ex->g->nodes[id];
    const nep_chan_dims d = nep_chan_dims_of(ex, n);
    const nep_real *x = ex->act[n->inputs[0]], *w = nep_param_ptr(ex->g, n, 0),
                   *b = nep_param_ptr(ex->g, n, 1);
    bool rectify;
    nep_real cap;
    nep_real *y = nep_epilogue_out(ex, id, &rectify, &cap);
    const int64_t rows = ex->batch * d.C;
#pragma omp parallel for if (rows * d.inner > NEP_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t c = r % d.C, o = nep_chan_start(&d, r / d.C, c);
        for (int64_t k = o; k < o + d.inner * d.step; k += d.step)
            y[k] = nep_stored(w[c] * x[k] + b[c], rectify, cap);
    }
}

static void affine_backward(nep_exec *ex, int id) {
    const nep_node *n = &ex->g->nodes[id];
    const nep_chan_dims d = nep_chan_dims_of(ex, n);
    const nep_real *x = ex->act[n->inputs[0]], *w = nep_param_ptr(ex->g, n, 0), *dy = ex->dact[id];
    nep_real *dw = nep_grad_ptr(ex->g, n, 0), *db = nep_grad_ptr(ex->g, n, 1);
    bool add;
    nep_real *dx = nep_input_grad(ex, n, 0, &add);
    /* Per-channel sums in a fixed order so runs reproduce. */
    for (int64_t c = 0; c < d.C; c++) {
        nep_real sw = 0, sb = 0;
        for (int64_t b = 0; b < ex->batch; b++) {
            const int64_t o = nep_chan_start(&d, b, c);
            for (int64_t k = o; k < o + d.inner * d.step; k += d.step) {
                if (dx) dx[k] = add ? dx[k] + w[c] * dy[k] : w[c] * dy[k];
                sw += dy[k] * x[k];
                sb += dy[k];
            }
        }
        dw[c] = ex->accumulate_grads ? dw[c] + sw : sw;
        db[c] = ex->accumulate_grads ? db[c] + sb : sb;
    }
}

static int64_t affine_flops(const nep_graph *g, const nep_node *n) {
    return 2 * nep_shape_numel(&n->shape);
}

const nep_op_def nep_op_affine = {
    .name = "Affine", .min_inputs = 1, .max_inputs = 1,
    .infer = affine_infer, .flops = affine_flops,
    .forward = affine_forward, .backward = affine_backward,
};
