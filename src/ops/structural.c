/* Ops that move no data: Input (the batch itself), Identity and Flatten (their output
 * is their input's buffer, so forward and backward are nothing), and Add.
 *   Flatten: [B, C, H, W] -> [B, C*H*W]   Add: y = x0 + x1 (+ ...), same shapes
 * The exception: with NHWC activations, Flatten of an image with several channels and
 * positions has buffers of its own and puts the values in PyTorch's C, H, W order.
 * Add may write the output of the ReLU or ReLU6 that alone reads it (nep_epilogue). */
#include <string.h>

#include "ops/ops.h"

static nep_status flatten_infer(nep_graph *g, nep_node *n, nep_err *err) {
    n->shape = (nep_shape){1, {nep_shape_numel(nep_in_shape(g, n, 0))}};
    return NEP_OK;
}

static void flatten_forward(nep_exec *ex, int id) {
    const nep_shape *s = nep_in_shape(ex->g, &ex->g->nodes[id], 0);
    nep_nhwc_to_nchw(ex->act[ex->g->nodes[id].inputs[0]], ex->act[id], ex->batch, s->d[0],
                     s->d[1] * s->d[2], false);
}

static void flatten_backward(nep_exec *ex, int id) {
    const nep_shape *s = nep_in_shape(ex->g, &ex->g->nodes[id], 0);
    bool add;
    nep_real *dx = nep_input_grad(ex, &ex->g->nodes[id], 0, &add);
    if (dx) nep_nchw_to_nhwc(ex->dact[id], dx, ex->batch, s->d[0], s->d[1] * s->d[2], add);
}

static nep_status add_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *s0 = nep_in_shape(g, n, 0);
    for (int i = 1; i < n->n_inputs; i++) {
        const nep_shape *si = nep_in_shape(g, n, i);
        bool same = si->ndim == s0->ndim;
        for (int d = 0; same && d < s0->ndim; d++) same = si->d[d] == s0->d[d];
        if (!same)
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Add): input %d's shape differs "
                            "from input 0's", n->name, i);
    }
    n->shape = *s0;
    return NEP_OK;
}

static int64_t add_flops(const nep_graph *g, const nep_node *n) {
    return (n->n_inputs - 1) * nep_shape_numel(&n->shape);
}

static void add_forward(nep_exec *ex, int id) {
    const nep_node *n = &ex->g->nodes[id];
    const int64_t len = nep_exec_numel(ex, id);
    bool rect;
    nep_real cap;
    nep_real *y = nep_epilogue_out(ex, id, &rect, &cap);
    const nep_real *x0 = ex->act[n->inputs[0]];
    /* y = x0 + x1, then y += x2 ...; the last sum is the one rectified */
    for (int k = 1; k < n->n_inputs; k++) {
        const nep_real *a = k == 1 ? x0 : y, *xk = ex->act[n->inputs[k]];
        const bool r = rect && k == n->n_inputs - 1;
#pragma omp parallel for simd if (len > NEP_PAR_MIN)
        for (int64_t i = 0; i < len; i++) y[i] = nep_stored(a[i] + xk[i], r, cap);
    }
}

static void add_backward(nep_exec *ex, int id) {
    const nep_node *n = &ex->g->nodes[id];
    const int64_t len = nep_exec_numel(ex, id);
    const nep_real *dy = ex->dact[id];
    for (int k = 0; k < n->n_inputs; k++) {
        bool add;
        nep_real *dx = nep_input_grad(ex, n, k, &add);
        if (!dx || dx == dy) continue; /* dy itself: the executor shares the buffer */
        if (add) {
#pragma omp parallel for simd if (len > NEP_PAR_MIN)
            for (int64_t i = 0; i < len; i++) dx[i] += dy[i];
        } else {
            memcpy(dx, dy, sizeof(nep_real) * (size_t)len);
        }
    }
}

const nep_op_def nep_op_input = {.name = "Input", .min_inputs = 0, .max_inputs = 0};
const nep_op_def nep_op_identity = {.name = "Identity", .min_inputs = 1, .max_inputs = 1,
                                    .aliases_input = true, .infer = nep_infer_same};
const nep_op_def nep_op_flatten = {.name = "Flatten", .min_inputs = 1, .max_inputs = 1,
                                   .aliases_input = true, .infer = flatten_infer,
                                   .forward = flatten_forward, .backward = flatten_backward};
const nep_op_def nep_op_add = {.name = "Add", .min_inputs = 2, .max_inputs = NEP_MAX_INPUTS,
                               .infer = add_infer, .flops = add_flops,
                               .forward = add_forward, .backward = add_backward};
