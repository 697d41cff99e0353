/* Running a graph: forward in topological order, backward in reverse. Each node owns
 * an output buffer and a gradient buffer sized for max_batch, except ops whose output
 * aliases their input (Identity, Flatten), which share their input's buffers. With
 * NHWC activations the caller's tensors are moved at the boundary, and a Flatten of a
 * multi-channel image gets buffers of its own to put the values in PyTorch's order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nepenthe/graph.h"
#include "backend/backend.h"
#include "backend/cpu/kernels.h" /* the layout moves at the boundary */

static bool default_nhwc(void) {
    const char *e = getenv("NEP_LAYOUT");
    if (e && !strcmp(e, "nchw")) return false;
    if (e && !strcmp(e, "nhwc")) return true;
#ifdef NEP_DOUBLE
    return false;
#else
    return true;
#endif
}

static bool aliased(const nep_exec *ex, const nep_node *n) {
    return nep_op(n->op)->aliases_input &&
           !(n->op == NEP_OP_FLATTEN && nep_layout_moves(ex->nhwc, nep_in_shape(ex->g, n, 0)));
}

static const nep_kernel *kernel_of(const nep_exec *ex, const nep_node *n) {
    return ex->backend->kernel(n->op);
}

/* The rectifier node id's forward also computes (see nep_exec.epilogue), or -1. */
static int epilogue_of(const nep_exec *ex, int id) {
    return ex->probe ? -1 : ex->epilogue[id];
}

/* The description of node id's forward call, or its backward's; the latter claims the
 * input gradients (nep_exec.grad_fresh) in input order: the first claim of a buffer in
 * a backward overwrites it, later ones add. */
static nep_call call_of(nep_exec *ex, int id, bool backward) {
    const nep_graph *g = ex->g;
    const nep_node *n = &g->nodes[id];
    const int epi = epilogue_of(ex, id);
    nep_call c = {
        .g = g, .n = n, .batch = ex->batch, .training = ex->training, .nhwc = ex->nhwc,
        .rng = ex->rng, .y = ex->act[epi >= 0 && !backward ? epi : id], .rectify = epi >= 0,
        .cap = epi >= 0 && g->nodes[epi].op == NEP_OP_RELU6 ? 6 : (nep_real)INFINITY,
        .accumulate = ex->accumulate_grads, .state = ex->state[id], .cache = &ex->cache[id],
        .scratch = &ex->scratch,
    };
    for (int i = 0; i < n->n_inputs; i++) c.x[i] = ex->act[n->inputs[i]];
    for (int p = 0; p < n->n_params; p++) {
        c.w[p] = g->values + g->params[n->params[p]].offset;
        c.dw[p] = g->grads + g->params[n->params[p]].offset;
    }
    if (!backward) return c;
    c.dy = ex->dact[id];
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

static nep_real *alloc_reals(int64_t n) {
    size_t bytes = (size_t)n * sizeof(nep_real);
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

/* Moves [batch, shape] between the caller's NCHW and the executor's layout. */
static void to_exec_layout(const nep_exec *ex, const nep_shape *s, const nep_real *x, nep_real *y) {
    nep_nchw_to_nhwc(x, y, ex->batch, s->d[0], s->d[1] * s->d[2], false);
}
static void to_caller_layout(const nep_exec *ex, const nep_shape *s, const nep_real *x, nep_real *y) {
    nep_nhwc_to_nchw(x, y, ex->batch, s->d[0], s->d[1] * s->d[2], false);
}

/* How many times each live node is read (as an input, or as the graph's output). */
static int *count_uses(const nep_graph *g) {
    int *uses = calloc((size_t)g->n_nodes, sizeof *uses);
    if (!uses) return NULL;
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        for (int i = 0; i < n->n_inputs; i++) uses[n->inputs[i]]++;
    }
    uses[g->output]++;
    return uses;
}

/* An Add passes its gradient unchanged to each input, so an input whose only consumer is
 * the Add reads its gradient from the Add's buffer instead of a copy of it. And a
 * BatchNorm, Add, conv, Linear or Affine read only by a ReLU or ReLU6 can apply it in
 * its own pass (ex->epilogue; a conv as a oneDNN post-op). */
static void plan_sharing(nep_exec *ex, const int *uses) {
    const nep_graph *g = ex->g;
    /* Consumers first, so that a chain of Adds ends on the last one's buffer. */
    for (int k = g->n_order - 1; k >= 0; k--) {
        const int a = g->order[k];
        const nep_node *n = &g->nodes[a];
        const nep_op_kind in_op = n->n_inputs ? g->nodes[n->inputs[0]].op : NEP_OP_INPUT;
        if ((n->op == NEP_OP_RELU || n->op == NEP_OP_RELU6) && ex->owns[a] && uses[n->inputs[0]] == 1 &&
            (in_op == NEP_OP_BATCHNORM || in_op == NEP_OP_ADD || in_op == NEP_OP_CONV2D ||
             in_op == NEP_OP_LINEAR || in_op == NEP_OP_AFFINE))
            ex->epilogue[n->inputs[0]] = a;
        if (n->op != NEP_OP_ADD || !ex->owns[a] || ex->inference) continue;
        for (int i = 0; i < n->n_inputs; i++) {
            const int x = n->inputs[i];
            if (uses[x] != 1 || !ex->owns[x] || x == g->input) continue;
            free(ex->dact[x]);
            ex->dact[x] = ex->dact[a];
            ex->grad_owner[x] = ex->grad_owner[a];
        }
    }
}

/* Inference: a node's output buffer lives from the step that writes it (its own, or
 * its producer's when that applies it as an epilogue) to its last reader's (through
 * Identity and Flatten aliases; the graph output to the end). Buffers are handed out
 * in step order, each node taking the smallest free one that fits, and given back
 * after the step of their last reader. */
static bool share_buffers(nep_exec *ex) {
    const nep_graph *g = ex->g;
    const int n = g->n_nodes, steps = g->n_order;
    int *root = calloc((size_t)n, sizeof(int)), *birth = calloc((size_t)n, sizeof(int)),
        *death = calloc((size_t)n, sizeof(int)), *holder = calloc((size_t)n, sizeof(int));
    int64_t *cap = malloc(sizeof(int64_t) * (size_t)n);
    ex->pool = calloc((size_t)n, sizeof *ex->pool);
    bool ok = root && birth && death && holder && cap && ex->pool;
    for (int k = 0; ok && k < steps; k++) {
        const int id = g->order[k];
        const nep_node *nd = &g->nodes[id];
        const bool alias = nd->op != NEP_OP_INPUT && aliased(ex, nd);
        root[id] = alias ? root[nd->inputs[0]] : id;
        birth[id] = death[id] = k;
        holder[id] = -1;
        for (int i = 0; i < nd->n_inputs; i++) death[root[nd->inputs[i]]] = k;
    }
    if (ok) death[root[g->output]] = steps;
    for (int k = 0; ok && k < steps; k++) /* a rectifier its producer writes */
        if (ex->epilogue[g->order[k]] >= 0) birth[ex->epilogue[g->order[k]]] = k;
    for (int k = 0; ok && k < steps; k++) {
        for (int j = 0; ok && j < steps; j++) { /* outputs first written at step k */
            const int id = g->order[j];
            const nep_node *nd = &g->nodes[id];
            if (birth[id] != k || root[id] != id || nd->op == NEP_OP_INPUT) continue;
            const int64_t need = ex->max_batch * nep_shape_numel(&nd->shape);
            int best = -1;
            for (int b = 0; b < ex->n_pool; b++)
                if (holder[b] < 0 && cap[b] >= need && (best < 0 || cap[b] < cap[best])) best = b;
            if (best < 0) {
                best = ex->n_pool++;
                ex->pool[best] = alloc_reals(need);
                cap[best] = need;
                ok = ex->pool[best] != NULL;
                ex->act_bytes += need * (int64_t)sizeof(nep_real);
            }
            holder[best] = id;
            ex->act[id] = ex->pool[best];
        }
        for (int b = 0; b < ex->n_pool; b++) /* given back after their last reader */
            if (holder[b] >= 0 && death[holder[b]] == k) holder[b] = -1;
    }
    free(root), free(birth), free(death), free(holder), free(cap);
    return ok;
}

nep_status nep_exec_init_opts(nep_exec *ex, nep_graph *g, int64_t max_batch,
                              const nep_exec_opts *o, nep_err *err) {
    memset(ex, 0, sizeof *ex);
    const nep_backend *backend = nep_backend_named(o->backend ? o->backend : "cpu");
    if (!backend)
        return nep_fail(err, NEP_ERR_ARG, "unknown backend '%s' (there are: cpu, ref)", o->backend);
    const bool inference = o->inference;
    ex->g = g;
    ex->max_batch = max_batch;
    ex->backend = backend;
    if (o->layout == NEP_LAYOUT_NHWC && !backend->nhwc)
        return nep_fail(err, NEP_ERR_ARG, "backend '%s' runs NCHW activations only", backend->name);
    ex->nhwc = backend->nhwc && (o->layout == NEP_LAYOUT_AUTO ? default_nhwc() : o->layout == NEP_LAYOUT_NHWC);
    ex->inference = inference;
    size_t n = (size_t)g->n_nodes;
    ex->act = calloc(n, sizeof *ex->act);
    ex->dact = calloc(n, sizeof *ex->dact);
    ex->state = calloc(n, sizeof *ex->state);
    ex->owns = calloc(n, sizeof *ex->owns);
    ex->cache = calloc(n, sizeof *ex->cache);
    ex->grad_owner = calloc(n, sizeof *ex->grad_owner);
    ex->grad_fresh = calloc(n, sizeof *ex->grad_fresh); /* false: an op called alone adds */
    ex->epilogue = malloc(n * sizeof *ex->epilogue);
    if (!ex->act || !ex->dact || !ex->state || !ex->owns || !ex->cache || !ex->grad_owner ||
        !ex->grad_fresh || !ex->epilogue)
        goto nomem;
    for (size_t i = 0; i < n; i++) ex->epilogue[i] = -1;
    for (int k = 0; k < g->n_order; k++) {
        int id = g->order[k];
        const nep_node *nd = &g->nodes[id];
        const nep_kernel *def = kernel_of(ex, nd);
        if (def->state_reals) {
            ex->state[id] = malloc(sizeof(nep_real) * (size_t)(max_batch * def->state_reals(g, nd, ex->nhwc)));
            if (!ex->state[id]) goto nomem;
        }
        if (def->scratch_bytes && !nep_scratch_get(&ex->scratch, def->scratch_bytes(g, nd, ex->nhwc)))
            goto nomem;
        ex->grad_owner[id] = aliased(ex, nd) ? ex->grad_owner[nd->inputs[0]] : id;
        if (nd->op == NEP_OP_INPUT || aliased(ex, nd)) continue;
        ex->owns[id] = true;
        if (inference) continue; /* buffers shared below */
        const int64_t n_reals = max_batch * nep_shape_numel(&nd->shape);
        ex->act[id] = alloc_reals(n_reals);
        ex->dact[id] = alloc_reals(n_reals);
        ex->act_bytes += n_reals * (int64_t)sizeof(nep_real);
        if (!ex->act[id] || !ex->dact[id]) goto nomem;
    }
    int *uses = count_uses(g);
    if (!uses) goto nomem;
    plan_sharing(ex, uses);
    free(uses);
    if (inference) {
        if (!share_buffers(ex)) goto nomem;
        memset(ex->owns, 0, n * sizeof *ex->owns); /* the pool is freed instead */
    }
    const nep_shape *in = &g->nodes[g->input].shape, *out = &g->nodes[g->output].shape;
    if (nep_layout_moves(ex->nhwc, in) && !(ex->in_moved = alloc_reals(max_batch * nep_shape_numel(in))))
        goto nomem;
    if (nep_layout_moves(ex->nhwc, out) && !(ex->out_moved = alloc_reals(max_batch * nep_shape_numel(out))))
        goto nomem;
    return NEP_OK;
nomem:
    nep_exec_free(ex);
    return nep_fail(err, NEP_ERR_NOMEM, "out of memory for activations at batch %lld",
                    (long long)max_batch);
}

nep_status nep_exec_init(nep_exec *ex, nep_graph *g, int64_t max_batch, nep_err *err) {
    return nep_exec_init_opts(ex, g, max_batch, &(nep_exec_opts){0}, err);
}

nep_status nep_exec_init_inference(nep_exec *ex, nep_graph *g, int64_t max_batch, nep_err *err) {
    return nep_exec_init_opts(ex, g, max_batch, &(nep_exec_opts){.inference = true}, err);
}

nep_status nep_exec_enable_input_grad(nep_exec *ex, nep_err *err) {
    int in = ex->g->input;
    if (ex->owns[in]) return NEP_OK;
    const nep_shape *s = &ex->g->nodes[in].shape;
    const int64_t n = ex->max_batch * nep_shape_numel(s);
    ex->dact[in] = alloc_reals(n);
    if (ex->dact[in] && nep_layout_moves(ex->nhwc, s) && !(ex->in_grad = alloc_reals(n))) {
        free(ex->dact[in]);
        ex->dact[in] = NULL;
    }
    if (!ex->dact[in]) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for input gradients");
    ex->owns[in] = true;
    return NEP_OK;
}

nep_real *nep_exec_input_grad(const nep_exec *ex) {
    return ex->in_grad ? ex->in_grad : ex->dact[ex->g->input];
}

void nep_exec_free(nep_exec *ex) {
    if (ex->g)
        for (int i = 0; i < ex->g->n_nodes; i++) {
            if (ex->owns && ex->owns[i]) {
                if (i != ex->g->input) free(ex->act[i]);
                if (ex->grad_owner[i] == i) free(ex->dact[i]); /* else an Add's, shared */
            }
            if (ex->state) free(ex->state[i]);
            if (ex->cache && ex->cache[i]) {
                void (*release)(void *) = kernel_of(ex, &ex->g->nodes[i])->free_cache;
                if (release) release(ex->cache[i]);
            }
        }
    free(ex->act);
    free(ex->dact);
    free(ex->state);
    free(ex->owns);
    free(ex->cache);
    free(ex->grad_owner);
    free(ex->grad_fresh);
    free(ex->epilogue);
    nep_scratch_free(&ex->scratch);
    free(ex->in_moved);
    free(ex->in_grad);
    free(ex->out_moved);
    for (int b = 0; b < ex->n_pool; b++) free(ex->pool[b]);
    free(ex->pool);
    memset(ex, 0, sizeof *ex);
}

const nep_real *nep_exec_forward(nep_exec *ex, const nep_real *x, int64_t batch) {
    nep_graph *g = ex->g;
    ex->batch = batch;
    /* The input is read-only; its gradient is computed only when enabled. */
    if (ex->in_moved) to_exec_layout(ex, &g->nodes[g->input].shape, x, ex->in_moved);
    ex->act[g->input] = ex->in_moved ? ex->in_moved : (nep_real *)x;
    for (int k = 0; k < g->n_order; k++) {
        int id = g->order[k];
        const nep_node *n = &g->nodes[id];
        const nep_kernel *def = kernel_of(ex, n);
        if (aliased(ex, n)) {
            ex->act[id] = ex->act[n->inputs[0]];
            ex->dact[id] = ex->dact[n->inputs[0]];
            continue;
        }
        if (nep_op(n->op)->states && ex->probe)
            ex->probe(ex->probe_ctx, g, id, ex->act[n->inputs[0]], batch, ex->nhwc);
        if (n->n_inputs && epilogue_of(ex, n->inputs[0]) == id) continue; /* its input wrote y */
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

void nep_exec_node_backward(nep_exec *ex, int id) {
    const nep_call c = call_of(ex, id, true);
    kernel_of(ex, &ex->g->nodes[id])->backward(&c);
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
    int out = g->output;
    if (ex->dact[out] && ex->out_moved)
        to_exec_layout(ex, &g->nodes[out].shape, dy, ex->dact[out]);
    else if (ex->dact[out])
        memcpy(ex->dact[out], dy, (size_t)numel_of(ex, out) * sizeof(nep_real));
    ex->grad_fresh[ex->grad_owner[out]] = false;
    for (int k = g->n_order - 1; k >= 0; k--) {
        int id = g->order[k];
        const nep_kernel *def = kernel_of(ex, &g->nodes[id]);
        double t0 = ex->profile ? seconds() : 0;
        if (def->backward && ex->dact[id] && !aliased(ex, &g->nodes[id])) {
            settle_grad(ex, id); /* a node no consumer sent a gradient: zero */
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
