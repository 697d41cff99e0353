/* Running a graph: forward in topological order, backward in reverse, each node's
 * kernels called with a description of the call (nep_call), never the executor. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "graph/exec_impl.h"
#include "backend/cpu/kernels.h" /* the layout moves at the boundary */

/* The rectifier node id's forward also computes (see nep_exec.epilogue), or -1. */
static int epilogue_of(const nep_exec *ex, int id) {
    return ex->probe ? -1 : ex->epilogue[id];
}

/* The rectifier whose backward node id's backward folds in (its epilogue, where the
 * kernel folds_rectifier_backward), or -1. */
static int folded_rectifier(const nep_exec *ex, int id) {
    const int epi = epilogue_of(ex, id);
    return epi >= 0 && nep_exec_kernel(ex, &ex->g->nodes[id])->folds_rectifier_backward ? epi : -1;
}

/* Whether node n's backward adds to its parameters' gradients: when asked to, or when
 * another node sharing one of them already wrote it in this backward; then the node's
 * other, fresh parameter gradients are zeroed first (the kernel has one flag for all). */
static bool accumulates(nep_exec *ex, const nep_node *n) {
    const nep_graph *g = ex->g;
    bool stale = false;
    for (int p = 0; p < n->n_params; p++) stale |= !ex->param_fresh[n->params[p]];
    if (!ex->accumulate_grads && stale)
        for (int p = 0; p < n->n_params; p++)
            if (ex->param_fresh[n->params[p]]) {
                const nep_param *q = &g->params[n->params[p]];
                memset(g->grads + q->offset, 0, sizeof(nep_real) * (size_t)q->numel);
            }
    for (int p = 0; p < n->n_params; p++) ex->param_fresh[n->params[p]] = false;
    return ex->accumulate_grads || stale;
}

/* y[0..n) = the bfloat16 numbers h: each is the top half of a float's bits. */
static void bf16_to_real(const uint16_t *h, int64_t n, nep_real *y) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const uint32_t bits = (uint32_t)h[i] << 16;
        float f;
        memcpy(&f, &bits, sizeof f);
        y[i] = (nep_real)f;
    }
}

/* The description of node id's forward call, or its backward's; the latter claims the
 * input gradients (nep_exec.grad_fresh) in input order: the first claim of a buffer in
 * a backward overwrites it, later ones add; and the parameter gradients (accumulates). */
static nep_call call_of(nep_exec *ex, int id, bool backward) {
    const nep_graph *g = ex->g;
    const nep_node *n = &g->nodes[id];
    /* a residual fusion writes the Add's output, or that of the Add's rectifier */
    const int add = backward ? -1 : ex->residual[id], epi = epilogue_of(ex, add >= 0 ? add : id);
    nep_call c = {
        .g = g, .n = n, .batch = ex->batch, .training = ex->training, .frozen = ex->frozen, .nhwc = ex->nhwc,
        .rng = ex->rng, .sync_bn = ex->sync_bn, .y = ex->act[epi >= 0 && !backward ? epi : id], .rectify = epi >= 0,
        .y_add = add >= 0,
        .cap = epi >= 0 ? (nep_real)nep_op(g->nodes[epi].op)->epilogue_cap : (nep_real)INFINITY,
        .accumulate = ex->accumulate_grads, .state = ex->state[id], .cache = &ex->cache[id], .pos = ex->pos,
        .kv = ex->kv && ex->kv_layer[id] >= 0 ? &ex->kv->layers[ex->kv_layer[id]] : NULL,
        .scratch = &ex->scratch,
    };
    for (int i = 0; i < n->n_inputs; i++) c.x[i] = ex->act[n->inputs[i]];
    for (int p = 0; p < n->n_params; p++) {
        const nep_param *q = &g->params[n->params[p]];
        if (q->bf16) { /* forward only (nep_exec_new) */
            c.w[p] = ex->converted[p];
            bf16_to_real(q->bf16, q->numel, ex->converted[p]);
            continue;
        }
        c.w[p] = g->values + q->offset;
        c.dw[p] = g->grads ? g->grads + q->offset : NULL;
    }
    if (!backward) return c;
    const int folded = folded_rectifier(ex, id);
    c.dy = ex->dact[folded >= 0 ? folded : id];
    c.accumulate = accumulates(ex, n);
    for (int i = 0; i < n->n_inputs; i++) {
        const int owner = ex->grad_owner[n->inputs[i]];
        c.dx_add[i] = !ex->grad_fresh[owner];
        ex->grad_fresh[owner] = false;
        c.dx[i] = ex->dact[n->inputs[i]];
    }
    return c;
}

/* Elements of node id's output for the current batch. */
static int64_t numel_of(const nep_exec *ex, int id) {
    return ex->batch * nep_shape_numel(&ex->g->nodes[id].shape);
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Adds the seconds since *t0 to column col of node id's profile and restarts *t0. */
static void profile_add(nep_exec *ex, int id, int col, double *t0) {
    if (!ex->profile) return;
    double t = seconds();
    ex->profile[3 * id + col] += t - *t0;
    *t0 = t;
}

/* Moves [batch, shape] between the caller's NCHW and the executor's layout. */
static void to_exec_layout(const nep_exec *ex, const nep_shape *s, const nep_real *x, nep_real *y) {
    nep_nchw_to_nhwc(x, y, ex->batch, s->d[0], s->d[1] * s->d[2], false);
}
static void to_caller_layout(const nep_exec *ex, const nep_shape *s, const nep_real *x, nep_real *y) {
    nep_nhwc_to_nchw(x, y, ex->batch, s->d[0], s->d[1] * s->d[2], false);
}

/* Runs the graph on its inputs' tensors (x[i] for g->inputs[i]; token ids as int32). */
static const nep_real *run_forward(nep_exec *ex, const void *const *x, int64_t batch) {
    nep_graph *g = ex->g;
    ex->batch = batch;
    /* The inputs are read-only; the main one's gradient is computed only when enabled. */
    if (ex->in_moved) to_exec_layout(ex, &g->nodes[g->input].shape, x[0], ex->in_moved);
    ex->act[g->input] = ex->in_moved ? ex->in_moved : (nep_real *)x[0];
    for (int i = 1; i < g->n_inputs; i++) ex->act[g->inputs[i]] = (nep_real *)x[i];
    for (int k = 0; k < g->n_order; k++) {
        int id = g->order[k];
        const nep_node *n = &g->nodes[id];
        const nep_kernel *def = nep_exec_kernel(ex, n);
        if (ex->alias[id]) {
            ex->act[id] = ex->act[n->inputs[0]];
            ex->dact[id] = ex->dact[n->inputs[0]];
            continue;
        }
        if (nep_op(n->op)->states && ex->probe)
            ex->probe(ex->probe_ctx, g, id, ex->act[n->inputs[0]], batch, ex->nhwc);
        if (n->n_inputs && epilogue_of(ex, n->inputs[0]) == id) continue; /* its input wrote y */
        if (nep_exec_add_fused(ex, id)) continue; /* an input summed itself into the Add's output */
        double t0 = ex->profile ? seconds() : 0;
        if (def->forward) {
            const nep_call c = call_of(ex, id, false);
            def->forward(&c);
        }
        profile_add(ex, id, 0, &t0);
    }
    if (!ex->out_moved) return ex->act[g->output];
    to_caller_layout(ex, &g->nodes[g->output].shape, ex->act[g->output], ex->out_moved);
    return ex->out_moved;
}

/* run_forward over slices of ex->slice rows (a serving executor's large batch), the
 * outputs gathered into ex->sliced_out; otherwise run_forward itself. */
static const nep_real *run_batch(nep_exec *ex, const void *const *x, int64_t batch) {
    if (!ex->slice || batch <= ex->slice) return run_forward(ex, x, batch);
    const nep_graph *g = ex->g;
    const int64_t out_n = nep_shape_numel(&g->nodes[g->output].shape);
    const void *part[NEP_MAX_GRAPH_INPUTS];
    for (int64_t at = 0; at < batch; at += ex->slice) {
        const int64_t b = batch - at < ex->slice ? batch - at : ex->slice;
        for (int i = 0; i < g->n_inputs; i++) {
            const nep_shape *s = &g->nodes[g->inputs[i]].shape;
            const size_t elem = s->dtype == NEP_TOKEN_IDS ? sizeof(int32_t) : sizeof(nep_real);
            part[i] = (const char *)x[i] + (size_t)at * (size_t)nep_shape_numel(s) * elem;
        }
        const nep_real *y = run_forward(ex, part, b);
        memcpy(ex->sliced_out + at * out_n, y, sizeof(nep_real) * (size_t)(b * out_n));
    }
    ex->batch = batch;
    return ex->sliced_out;
}

/* An id outside its table would read past it: refused, as PyTorch raises IndexError. A
 * position embedding reads rows by position, which shape inference has bounded. */
static nep_status check_ids(const nep_exec *ex, const void *const *x, int64_t batch, nep_err *err) {
    const nep_graph *g = ex->g;
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *e = &g->nodes[g->order[k]];
        if (!nep_op(e->op)->takes_ids || e->attrs.embedding.positions) continue;
        int i = 0; /* ids come only from graph inputs (shape inference holds to it) */
        while (i < g->n_inputs && g->inputs[i] != e->inputs[0]) i++;
        if (i == g->n_inputs) continue;
        const int32_t *ids = x[i];
        const int64_t n = batch * nep_shape_numel(&g->nodes[g->inputs[i]].shape),
                      rows = nep_embedding_rows(g, e);
        for (int64_t j = 0; j < n; j++)
            if (ids[j] < 0 || ids[j] >= rows)
                return nep_fail(err, NEP_ERR_ARG, "token id %d at position %lld of input '%s' is "
                                "outside node '%s''s %lld rows", ids[j], (long long)j,
                                g->nodes[g->inputs[i]].name, e->name, (long long)rows);
    }
    return NEP_OK;
}

nep_status nep_exec_run(nep_exec *ex, const void *const *x, int n_inputs, int64_t batch,
                        const nep_real **y, nep_err *err) {
    const nep_graph *g = ex->g;
    if (n_inputs != g->n_inputs)
        return nep_fail(err, NEP_ERR_ARG, "the graph has %d input(s) (the first '%s'), given %d",
                        g->n_inputs, g->nodes[g->input].name, n_inputs);
    if (batch < 1 || batch > ex->max_batch)
        return nep_fail(err, NEP_ERR_ARG, "batch %lld is outside 1..%lld, the executor's",
                        (long long)batch, (long long)ex->max_batch);
    for (int i = 0; i < n_inputs; i++)
        if (!x[i]) return nep_fail(err, NEP_ERR_ARG, "no tensor for input '%s'", g->nodes[g->inputs[i]].name);
    NEP_TRY(check_ids(ex, x, batch, err));
    *y = run_batch(ex, x, batch);
    return NEP_OK;
}

const nep_real *nep_exec_forward(nep_exec *ex, const nep_real *x, int64_t batch) {
    const nep_graph *g = ex->g;
    if (g->n_inputs != 1 || g->nodes[g->input].shape.dtype != NEP_REAL) return NULL;
    const void *xs[1] = {x};
    return run_batch(ex, xs, batch);
}

nep_status nep_exec_forward_ids(nep_exec *ex, const int32_t *ids, int64_t batch, const nep_real **y,
                                nep_err *err) {
    const nep_node *in = &ex->g->nodes[ex->g->input];
    if (in->shape.dtype != NEP_TOKEN_IDS)
        return nep_fail(err, NEP_ERR_ARG, "the graph's input '%s' holds reals, not token ids", in->name);
    const void *xs[1] = {ids};
    return nep_exec_run(ex, xs, 1, batch, y, err);
}

void nep_exec_node_backward(nep_exec *ex, int id) {
    memset(ex->param_fresh, true, sizeof *ex->param_fresh * (size_t)ex->g->n_params); /* alone */
    const nep_call c = call_of(ex, id, true);
    nep_exec_kernel(ex, &ex->g->nodes[id])->backward(&c);
}

/* Zeroes node id's gradient buffer if nothing was written to it in this backward. */
static void settle_grad(nep_exec *ex, int id) {
    const int owner = ex->grad_owner[id];
    if (!ex->grad_fresh[owner] || !ex->dact[owner]) return;
    memset(ex->dact[owner], 0, (size_t)numel_of(ex, owner) * sizeof(nep_real));
    ex->grad_fresh[owner] = false;
}

void nep_exec_backward(nep_exec *ex, const nep_real *dy) {
    nep_graph *g = ex->g;
    if (ex->inference) return; /* no gradient buffers: see nep_exec_init_inference */
    for (int k = 0; k < g->n_order; k++) ex->grad_fresh[g->order[k]] = true;
    memset(ex->param_fresh, true, sizeof *ex->param_fresh * (size_t)g->n_params);
    int out = g->output;
    if (ex->dact[out] && ex->out_moved)
        to_exec_layout(ex, &g->nodes[out].shape, dy, ex->dact[out]);
    else if (ex->dact[out])
        memcpy(ex->dact[out], dy, (size_t)numel_of(ex, out) * sizeof(nep_real));
    ex->grad_fresh[ex->grad_owner[out]] = false;
    for (int k = g->n_order - 1; k >= 0; k--) {
        int id = g->order[k];
        const nep_node *n = &g->nodes[id];
        const nep_kernel *def = nep_exec_kernel(ex, n);
        if (n->n_inputs && folded_rectifier(ex, n->inputs[0]) == id) continue; /* its input's backward does it */
        double t0 = ex->profile ? seconds() : 0;
        if (def->backward && ex->dact[id] && !ex->alias[id]) {
            const int folded = folded_rectifier(ex, id);
            settle_grad(ex, folded >= 0 ? folded : id); /* a node no consumer sent a gradient: zero */
            const nep_call c = call_of(ex, id, true);
            def->backward(&c);
        }
        profile_add(ex, id, 1, &t0);
        if (ex->on_grads && g->nodes[id].n_params) ex->on_grads(ex->on_grads_ctx, g, id);
        profile_add(ex, id, 2, &t0);
    }
    settle_grad(ex, g->input);
    if (ex->in_grad)
        to_caller_layout(ex, &g->nodes[g->input].shape, ex->dact[g->input], ex->in_grad);
}
