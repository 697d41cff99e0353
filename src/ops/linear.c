/* Linear: y = x W^T + b, as torch.nn.Linear.
 *   x [B, in]   W [out, in] ("weight")   b [out] ("bias", optional)   y [B, out]
 * backward: dx += dy W   dW = dy^T x   db = sum_B dy   (+= with accumulate_grads) */
#include "backend/cpu/blas.h"
#include "ops/ops.h"

static nep_status linear_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    if (in->ndim != 1)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Linear): input has %d dims, wants 1 "
                        "(add a Flatten)", n->name, in->ndim);
    const nep_param *w = &g->params[n->params[0]];
    if (n->n_params < 1 + n->attrs.bias || w->ndim != 2 || w->shape[0] != n->attrs.features ||
        w->shape[1] != in->d[0])
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Linear): weight shape does not match "
                        "[%lld, %lld]", n->name, (long long)n->attrs.features, (long long)in->d[0]);
    n->shape = (nep_shape){1, {n->attrs.features}};
    return NEP_OK;
}

static int64_t linear_flops(const nep_graph *g, const nep_node *n) {
    int64_t in = nep_in_shape(g, n, 0)->d[0], out = n->attrs.features;
    return 2 * in * out + (n->attrs.bias ? out : 0);
}

static void linear_forward(nep_exec *ex, int id) {
    const nep_graph *g = ex->g;
    const nep_node *n = &g->nodes[id];
    const int64_t B = ex->batch, in = nep_in_shape(g, n, 0)->d[0], out = n->attrs.features;
    const nep_real *x = ex->act[n->inputs[0]], *W = nep_param_ptr(g, n, 0);
    bool rectify;
    nep_real cap;
    nep_real *y = nep_epilogue_out(ex, id, &rectify, &cap);
    nep_real beta = 0;
    if (n->attrs.bias) {
        const nep_real *b = nep_param_ptr(g, n, 1);
        for (int64_t i = 0; i < B; i++)
            for (int64_t j = 0; j < out; j++) y[i * out + j] = b[j];
        beta = 1;
    }
    nep_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)out, (int)in, 1, x,
             (int)in, W, (int)in, beta, y, (int)out);
    if (rectify)
        for (int64_t i = 0; i < B * out; i++) y[i] = nep_stored(y[i], true, cap);
}

static void linear_backward(nep_exec *ex, int id) {
    const nep_graph *g = ex->g;
    const nep_node *n = &g->nodes[id];
    const int64_t B = ex->batch, in = nep_in_shape(g, n, 0)->d[0], out = n->attrs.features;
    const nep_real *x = ex->act[n->inputs[0]], *W = nep_param_ptr(g, n, 0), *dy = ex->dact[id];
    bool add;
    nep_real *dx = nep_input_grad(ex, n, 0, &add);
    if (dx)
        nep_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)in, (int)out, 1, dy,
                 (int)out, W, (int)in, add, dx, (int)in);
    nep_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)B, 1, dy,
             (int)out, x, (int)in, ex->accumulate_grads, nep_grad_ptr(g, n, 0), (int)in);
    if (n->attrs.bias) {
        nep_real *db = nep_grad_ptr(g, n, 1);
        if (!ex->accumulate_grads)
            for (int64_t j = 0; j < out; j++) db[j] = 0;
        for (int64_t i = 0; i < B; i++)
            for (int64_t j = 0; j < out; j++) db[j] += dy[i * out + j];
    }
}

const nep_op_def nep_op_linear = {
    .name = "Linear", .min_inputs = 1, .max_inputs = 1,
    .infer = linear_infer, .flops = linear_flops,
    .forward = linear_forward, .backward = linear_backward,
};
