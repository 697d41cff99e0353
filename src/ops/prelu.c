/* PReLU with one learned slope per channel, as torch.nn.PReLU(num_parameters=C).
 *   z [B, C, ...]   a [C] ("weight")   y [B, C, ...]
 * y = z > 0 ? z : a_c z;  dz (+)= z > 0 ? dy : a_c dy;  da_c = sum_{z <= 0} dy z */
#include "ops/ops.h"

static nep_status prelu_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    const nep_param *a = &g->params[n->params[0]];
    if (n->n_params != 1 || a->ndim != 1 || a->shape[0] != in->d[0])
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (PReLU): weight must have one slope per "
                        "channel (%lld)", n->name, (long long)in->d[0]);
    n->shape = *in;
    return NEP_OK;
}

static void prelu_forward(nep_exec *ex, int id) {
    const nep_node *n = &ex->g->nodes[id];
    const nep_chan_dims d = nep_chan_dims_of(ex, n);
    const nep_real *z = ex->act[n->inputs[0]], *a = nep_param_ptr(ex->g, n, 0);
    nep_real *y = ex->act[id];
    const int64_t rows = ex->batch * d.C;
#pragma omp parallel for if (rows * d.inner > NEP_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const nep_real s = a[r % d.C];
        const int64_t o = nep_chan_start(&d, r / d.C, r % d.C);
        for (int64_t k = o; k < o + d.inner * d.step; k += d.step) y[k] = z[k] > 0 ? z[k] : s * z[k];
    }
}

static void prelu_backward(nep_exec *ex, int id) {
    const nep_node *n = &ex->g->nodes[id];
    const nep_chan_dims d = nep_chan_dims_of(ex, n);
    const nep_real *z = ex->act[n->inputs[0]], *a = nep_param_ptr(ex->g, n, 0), *dy = ex->dact[id];
    nep_real *da = nep_grad_ptr(ex->g, n, 0);
    bool add;
    nep_real *dz = nep_input_grad(ex, n, 0, &add);
    /* Per-channel slope gradients are summed in a fixed order so runs reproduce. */
    for (int64_t c = 0; c < d.C; c++) {
        nep_real acc = 0;
        for (int64_t b = 0; b < ex->batch; b++) {
            const int64_t o = nep_chan_start(&d, b, c);
            for (int64_t k = o; k < o + d.inner * d.step; k += d.step) {
                const nep_real g = z[k] > 0 ? dy[k] : a[c] * dy[k];
                if (dz) dz[k] = add ? dz[k] + g : g;
                if (z[k] <= 0) acc += dy[k] * z[k];
            }
        }
        da[c] = ex->accumulate_grads ? da[c] + acc : acc;
    }
}

const nep_op_def nep_op_prelu = {
    .name = "PReLU", .min_inputs = 1, .max_inputs = 1, .states = 2,
    .infer = prelu_infer, .flops = nep_flops_elementwise,
    .forward = prelu_forward, .backward = prelu_backward,
};
