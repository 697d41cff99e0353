/* An executor's plan and buffers: each node owns an output buffer and a gradient buffer
 * sized for max_batch, except ops whose output is a view of their input that the layout
 * stores alike (nep_view_aliases: Identity, Flatten; Tokens of an NHWC image), which
 * share their input's buffers. With NHWC activations the caller's tensors are moved at
 * the boundary (exec_run.c), and a Flatten of a multi-channel image gets buffers of its
 * own to put the values in PyTorch's order; in NCHW, so do the Tokens of one. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graph/exec_impl.h"

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
    return nep_view_aliases(ex->nhwc, nep_op(n->op)->view, nep_in_shape(ex->g, n, 0), &n->shape);
}

static nep_real *alloc_reals(int64_t n) {
    size_t bytes = (size_t)n * sizeof(nep_real);
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
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

/* Node x's gradient is node a's buffer from now on. */
static void share_grad(nep_exec *ex, int x, int a) {
    free(ex->dact[x]);
    ex->dact[x] = ex->dact[a];
    ex->grad_owner[x] = ex->grad_owner[a];
}

/* Whether the skip input x of the two-input Add a (a = x + p, x read by one more node c:
 * a residual block's input and its first layer) can take its gradient in a's buffer
 * too: p, read only by a, shares that buffer and reads it in its backward, which runs
 * before c's (c comes before p), and c's adds its part to it; nothing else reads it (a
 * owns its buffer). Then the Add's backward copies nothing. */
static bool skip_shares_grad(const nep_exec *ex, const int *uses, const int *pos, int a, int x, int p) {
    const nep_graph *g = ex->g;
    if (uses[x] != 2 || !ex->owns[x] || ex->grad_owner[x] != x || x == g->input || x == p || uses[p] != 1 ||
        ex->grad_owner[p] != ex->grad_owner[a] || ex->grad_owner[a] != a || nep_op(g->nodes[p].op)->passes_gradient)
        return false;
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *c = &g->nodes[g->order[k]];
        if (g->order[k] == a) continue;
        for (int i = 0; i < c->n_inputs; i++)
            if (c->inputs[i] == x) return pos[g->order[k]] < pos[p];
    }
    return false;
}

/* An op that passes its gradient unchanged to each input (Add): an input whose only
 * consumer it is reads its gradient from the op's buffer instead of a copy of it, and so
 * may a residual Add's skip input (skip_shares_grad). And a producer read only by a
 * rectifier it can fuse applies it in its own pass (ex->epilogue; a conv as a oneDNN
 * post-op). */
static void plan_sharing(nep_exec *ex, const int *uses) {
    const nep_graph *g = ex->g;
    int *pos = malloc(sizeof *pos * (size_t)g->n_nodes);
    for (int k = 0; pos && k < g->n_order; k++) pos[g->order[k]] = k;
    /* Consumers first, so that a chain of Adds ends on the last one's buffer. */
    for (int k = g->n_order - 1; k >= 0; k--) {
        const int a = g->order[k];
        const nep_node *n = &g->nodes[a];
        const nep_op_def *def = nep_op(n->op);
        if (def->epilogue_cap > 0 && ex->owns[a] && uses[n->inputs[0]] == 1 &&
            nep_op(g->nodes[n->inputs[0]].op)->fuses_rectifier)
            ex->epilogue[n->inputs[0]] = a;
        if (!def->passes_gradient || !ex->owns[a] || ex->inference) continue;
        for (int i = 0; i < n->n_inputs; i++) {
            const int x = n->inputs[i];
            if (uses[x] == 1 && ex->owns[x] && x != g->input) share_grad(ex, x, a);
        }
        for (int i = 0; pos && n->n_inputs == 2 && i < 2; i++)
            if (skip_shares_grad(ex, uses, pos, a, n->inputs[i], n->inputs[1 - i])) share_grad(ex, n->inputs[i], a);
    }
    free(pos);
}

/* A serving executor's residual fusions (nep_exec.residual): an Add a = p + s where p's
 * kernel can add its output into s's buffer, p is read by a alone and writes no
 * rectifier of its own, s is computed before p and read by nothing at or after p but a,
 * and s's buffer is the executor's own (not an input's, nor the graph's output). */
static void plan_residuals(nep_exec *ex, const int *uses) {
    const nep_graph *g = ex->g;
    const int n = g->n_nodes;
    int *step = malloc(sizeof(int) * (size_t)n), *root = malloc(sizeof(int) * (size_t)n);
    if (step && root)
        for (int k = 0; k < g->n_order; k++) {
            const int id = g->order[k];
            step[id] = k;
            root[id] = ex->alias[id] ? root[g->nodes[id].inputs[0]] : id;
        }
    for (int k = 0; step && root && k < g->n_order; k++) {
        const int a = g->order[k];
        const nep_node *add = &g->nodes[a];
        if (add->op != NEP_OP_ADD || add->n_inputs != 2) continue;
        for (int j = 0; j < 2; j++) {
            const int p = add->inputs[j], s = add->inputs[1 - j];
            const nep_node *pn = &g->nodes[p];
            if (p == s || !nep_exec_kernel(ex, pn)->sums_into_y || ex->alias[p] || uses[p] != 1 ||
                ex->epilogue[p] >= 0 || ex->residual[p] >= 0 || step[s] >= step[p] ||
                g->nodes[root[s]].op == NEP_OP_INPUT || root[s] == root[g->output] ||
                nep_shape_numel(&pn->shape) != nep_shape_numel(&g->nodes[s].shape))
                continue;
            bool late_reader = false; /* of s's buffer, at or after p, other than a */
            for (int r = step[p]; r < g->n_order && !late_reader; r++) {
                const nep_node *rn = &g->nodes[g->order[r]];
                if (g->order[r] == a || ex->alias[g->order[r]]) continue;
                for (int i = 0; i < rn->n_inputs; i++) late_reader |= root[rn->inputs[i]] == root[s];
            }
            if (late_reader) continue;
            ex->residual[p] = a;
            break;
        }
    }
    free(step), free(root);
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
        const bool alias = ex->alias[id];
        root[id] = alias ? root[nd->inputs[0]] : id;
        /* a residual fusion's node, its Add and the Add's rectifier: the buffer of the
         * Add's other input */
        const int a = ex->residual[id];
        if (a >= 0) root[id] = root[g->nodes[a].inputs[g->nodes[a].inputs[0] == id ? 1 : 0]];
        if (nep_exec_add_fused(ex, id) || /* both inputs have that root now */
            (nd->n_inputs == 1 && ex->epilogue[nd->inputs[0]] == id && nep_exec_add_fused(ex, nd->inputs[0])))
            root[id] = root[nd->inputs[0]];
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
            const int64_t need = (ex->slice ? ex->slice : ex->max_batch) * nep_shape_numel(&nd->shape);
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
    for (int k = 0; ok && k < steps; k++) /* the nodes of a residual fusion */
        if (root[g->order[k]] != g->order[k] && !ex->alias[g->order[k]]) ex->act[g->order[k]] = ex->act[root[g->order[k]]];
    free(root), free(birth), free(death), free(holder), free(cap);
    return ok;
}

/* The buffers the nodes' mapped parameters are converted into, one per parameter slot. */
static bool alloc_converted(nep_exec *ex) {
    const nep_graph *g = ex->g;
    int64_t need[NEP_MAX_PARAMS] = {0};
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *nd = &g->nodes[g->order[k]];
        for (int p = 0; p < nd->n_params; p++) {
            const nep_param *q = &g->params[nd->params[p]];
            if (q->bf16 && q->numel > need[p]) need[p] = q->numel;
        }
    }
    for (int p = 0; p < NEP_MAX_PARAMS; p++)
        if (need[p] && !(ex->converted[p] = alloc_reals(need[p]))) return false;
    return true;
}

/* Rows per slice of a serving executor's batches (see nep_exec.slice), 0 for none: as
 * many samples as fit the L2 cache with the largest activation of the graph, at least
 * 16 (below that, convolutions lose more to their per-call work than the cache gives;
 * measured on ResNet-20, ResNet-18 and MobileNetV2 at 3x32x32: slices of 16 run
 * 14-15% faster than batches of 128, or as fast). An MLP's activations fit whole: its
 * weights, read once per slice, are what a large batch amortizes. */
static int64_t serving_slice(const nep_graph *g, int64_t max_batch) {
    int64_t widest = 1;
    for (int k = 0; k < g->n_order; k++) {
        const int64_t n = nep_shape_numel(&g->nodes[g->order[k]].shape);
        if (n > widest) widest = n;
    }
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (l2 <= 0) l2 = 1 << 20;
    int64_t rows = (int64_t)l2 / (widest * (int64_t)sizeof(nep_real));
    if (rows < 16) rows = 16;
    return rows < max_batch ? rows : 0;
}

nep_status nep_exec_new(nep_exec **out, nep_graph *g, int64_t max_batch_asked, const nep_exec_opts *o,
                        nep_err *err) {
    static const nep_exec_opts defaults = {0};
    if (!o) o = &defaults;
    *out = NULL;
    const nep_backend *backend = nep_backend_named(o->backend ? o->backend : "cpu");
    if (!backend)
        return nep_fail(err, NEP_ERR_ARG, "unknown backend '%s' (there are: cpu, ref)", o->backend);
    if (o->layout == NEP_LAYOUT_NHWC && !backend->nhwc)
        return nep_fail(err, NEP_ERR_ARG, "backend '%s' runs NCHW activations only", backend->name);
    if (o->frozen_weights && !o->inference)
        return nep_fail(err, NEP_ERR_ARG, "frozen_weights is for inference executors (it packs weights once)");
    if (!o->inference) NEP_TRY(nep_graph_check_resident(g, "an executor for training", err));
    if (!o->inference && !g->grads)
        return nep_fail(err, NEP_ERR_ARG, "an executor for training: the graph borrows its values (forward only)");
    if (o->sync_bn && strcmp(backend->name, "cpu") != 0)
        return nep_fail(err, NEP_ERR_UNSUPPORTED, "sync_bn: the %s backend's BatchNorm has no statistics over ranks",
                        backend->name);
    nep_exec *ex = calloc(1, sizeof *ex);
    if (!ex) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for an executor");
    const bool inference = o->inference;
    ex->g = g;
    ex->max_batch = max_batch_asked;
    ex->slice = !o->frozen_weights || o->slice_rows < 0 ? 0
                : o->slice_rows > 0 ? (o->slice_rows < max_batch_asked ? o->slice_rows : 0)
                                    : serving_slice(g, max_batch_asked);
    /* the rows every buffer below holds */
    const int64_t max_batch = ex->slice ? ex->slice : max_batch_asked;
    ex->backend = backend;
    ex->nhwc = backend->nhwc && (o->layout == NEP_LAYOUT_AUTO ? default_nhwc() : o->layout == NEP_LAYOUT_NHWC);
    ex->inference = inference;
    ex->frozen = o->frozen_weights;
    ex->sync_bn = o->sync_bn;
    size_t n = (size_t)g->n_nodes;
    ex->act = calloc(n, sizeof *ex->act);
    ex->dact = calloc(n, sizeof *ex->dact);
    ex->state = calloc(n, sizeof *ex->state);
    ex->owns = calloc(n, sizeof *ex->owns);
    ex->alias = calloc(n, sizeof *ex->alias);
    ex->cache = calloc(n, sizeof *ex->cache);
    ex->grad_owner = calloc(n, sizeof *ex->grad_owner);
    ex->grad_fresh = calloc(n, sizeof *ex->grad_fresh); /* false: an op called alone adds */
    ex->param_fresh = calloc((size_t)g->n_params + 1, sizeof *ex->param_fresh);
    ex->epilogue = malloc(n * sizeof *ex->epilogue);
    ex->residual = malloc(n * sizeof *ex->residual);
    if (!ex->act || !ex->dact || !ex->state || !ex->owns || !ex->alias || !ex->cache || !ex->grad_owner ||
        !ex->grad_fresh || !ex->param_fresh || !ex->epilogue || !ex->residual)
        goto nomem;
    for (size_t i = 0; i < n; i++) ex->epilogue[i] = ex->residual[i] = -1;
    for (int k = 0; k < g->n_order; k++) {
        int id = g->order[k];
        const nep_node *nd = &g->nodes[id];
        const nep_kernel *def = nep_exec_kernel(ex, nd);
        if (def->state_reals) {
            ex->state[id] = malloc(sizeof(nep_real) * (size_t)(max_batch * def->state_reals(g, nd, ex->nhwc)));
            if (!ex->state[id]) goto nomem;
        }
        if (def->scratch_bytes && !nep_scratch_get(&ex->scratch, def->scratch_bytes(g, nd, ex->nhwc)))
            goto nomem;
        ex->alias[id] = nd->op != NEP_OP_INPUT && aliased(ex, nd);
        ex->grad_owner[id] = ex->alias[id] ? ex->grad_owner[nd->inputs[0]] : id;
        if (nd->op == NEP_OP_INPUT || ex->alias[id]) continue;
        ex->owns[id] = true;
        if (inference) continue; /* buffers shared below */
        const int64_t n_reals = max_batch * nep_shape_numel(&nd->shape);
        ex->act[id] = alloc_reals(n_reals);
        ex->dact[id] = alloc_reals(n_reals);
        ex->act_bytes += n_reals * (int64_t)sizeof(nep_real);
        if (!ex->act[id] || !ex->dact[id]) goto nomem;
    }
    if (!alloc_converted(ex)) goto nomem;
    int *uses = count_uses(g);
    if (!uses) goto nomem;
    plan_sharing(ex, uses);
    if (ex->frozen) plan_residuals(ex, uses);
    free(uses);
    if (inference) {
        if (!share_buffers(ex)) goto nomem;
        memset(ex->owns, 0, n * sizeof *ex->owns); /* the pool is freed instead */
    }
    for (int i = 1; i < g->n_inputs; i++) /* moved at the boundary: the main input only */
        if (nep_layout_moves(ex->nhwc, &g->nodes[g->inputs[i]].shape)) {
            nep_fail(err, NEP_ERR_UNSUPPORTED, "graph input '%s' is an image: only the first input may be",
                     g->nodes[g->inputs[i]].name);
            nep_exec_free(ex);
            return err ? err->status : NEP_ERR_UNSUPPORTED;
        }
    const nep_shape *in = &g->nodes[g->input].shape, *y = &g->nodes[g->output].shape;
    if (nep_layout_moves(ex->nhwc, in) && !(ex->in_moved = alloc_reals(max_batch * nep_shape_numel(in))))
        goto nomem;
    if (nep_layout_moves(ex->nhwc, y) && !(ex->out_moved = alloc_reals(max_batch * nep_shape_numel(y))))
        goto nomem;
    if (ex->slice) {
        if (!(ex->sliced_out = alloc_reals(ex->max_batch * nep_shape_numel(y)))) goto nomem;
        ex->act_bytes += ex->max_batch * nep_shape_numel(y) * (int64_t)sizeof(nep_real);
    }
    *out = ex;
    return NEP_OK;
nomem:
    nep_exec_free(ex);
    return nep_fail(err, NEP_ERR_NOMEM, "out of memory for activations at batch %lld",
                    (long long)max_batch_asked);
}

nep_status nep_exec_enable_input_grad(nep_exec *ex, nep_err *err) {
    int in = ex->g->input;
    if (ex->g->nodes[in].shape.dtype == NEP_TOKEN_IDS)
        return nep_fail(err, NEP_ERR_ARG, "the graph's input '%s' holds token ids: it has no gradient",
                        ex->g->nodes[in].name);
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
    if (!ex) return;
    for (int i = 0; i < ex->g->n_nodes; i++) {
        if (ex->owns && ex->owns[i]) {
            if (i != ex->g->input) free(ex->act[i]);
            if (ex->grad_owner[i] == i) free(ex->dact[i]); /* else an Add's, shared */
        }
        if (ex->state) free(ex->state[i]);
        if (ex->cache && ex->cache[i]) {
            void (*release)(void *) = nep_exec_kernel(ex, &ex->g->nodes[i])->free_cache;
            if (release) release(ex->cache[i]);
        }
    }
    free(ex->act);
    free(ex->dact);
    free(ex->state);
    free(ex->owns);
    free(ex->alias);
    free(ex->cache);
    free(ex->grad_owner);
    free(ex->kv_layer);
    free(ex->grad_fresh);
    free(ex->param_fresh);
    free(ex->epilogue);
    free(ex->residual);
    nep_scratch_free(&ex->scratch);
    for (int p = 0; p < NEP_MAX_PARAMS; p++) free(ex->converted[p]);
    free(ex->in_moved);
    free(ex->in_grad);
    free(ex->out_moved);
    free(ex->sliced_out);
    for (int b = 0; b < ex->n_pool; b++) free(ex->pool[b]);
    free(ex->pool);
    free(ex);
}

bool nep_exec_backend_known(const char *name) { return nep_backend_named(name) != NULL; }

void nep_exec_set_training(nep_exec *ex, bool training, struct nep_rng *rng) {
    ex->training = training;
    ex->rng = rng;
}
void nep_exec_set_probe(nep_exec *ex, nep_probe_fn probe, void *ctx) {
    assert(!ex->frozen || !probe); /* see nep_exec.residual */
    ex->probe = probe;
    ex->probe_ctx = ctx;
}
void nep_exec_set_accumulate(nep_exec *ex, bool accumulate) { ex->accumulate_grads = accumulate; }
void nep_exec_set_on_grads(nep_exec *ex, void (*on_grads)(void *ctx, nep_graph *g, int node),
                           void *ctx) {
    ex->on_grads = on_grads;
    ex->on_grads_ctx = ctx;
}
void nep_exec_set_profile(nep_exec *ex, double *profile) { ex->profile = profile; }

nep_graph *nep_exec_graph(const nep_exec *ex) { return ex->g; }
bool nep_exec_channels_last(const nep_exec *ex) { return ex->nhwc; }
nep_real *nep_exec_node_output(const nep_exec *ex, int id) { return ex->act[id]; }
nep_real *nep_exec_node_grad(const nep_exec *ex, int id) { return ex->dact[id]; }
int nep_exec_fused_rectifier(const nep_exec *ex, int id) { return ex->epilogue[id]; }
int nep_exec_fused_add(const nep_exec *ex, int id) { return ex->residual[id]; }
int64_t nep_exec_activation_bytes(const nep_exec *ex) { return ex->act_bytes; }
int64_t nep_exec_scratch_bytes(const nep_exec *ex) { return (int64_t)ex->scratch.bytes; }

int64_t nep_exec_cache_bytes(const nep_exec *ex) {
    int64_t n = 0;
    for (int i = 0; ex->cache && i < ex->g->n_nodes; i++) {
        size_t (*bytes)(const void *) = ex->cache[i] ? nep_exec_kernel(ex, &ex->g->nodes[i])->cache_bytes : NULL;
        if (bytes) n += (int64_t)bytes(ex->cache[i]);
    }
    return n;
}
bool nep_exec_sync_bn(const nep_exec *ex) { return ex->sync_bn != NULL; }
