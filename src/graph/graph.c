/* Building, shape inference, ordering, rewiring and copying of the graph IR. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/graph.h"
#include "ops/ops.h"

void nep_graph_init(nep_graph *g) {
    memset(g, 0, sizeof *g);
    g->input = g->output = -1;
}

void nep_graph_free(nep_graph *g) {
    free(g->nodes);
    free(g->params);
    if (!g->values_borrowed) free(g->values);
    free(g->grads);
    free(g->masks);
    free(g->order);
    nep_graph_init(g);
}

static bool grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return true;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

int nep_graph_add(nep_graph *g, nep_op_kind op, const char *name, const int *inputs,
                  int n_inputs, nep_attrs attrs) {
    if (n_inputs > NEP_MAX_INPUTS ||
        !grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes))
        return -1;
    nep_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->op = op;
    n->n_inputs = n_inputs;
    for (int i = 0; i < n_inputs; i++) n->inputs[i] = inputs[i];
    n->attrs = attrs;
    g->output = g->n_nodes; /* the last node added is the output until said otherwise */
    return g->n_nodes++;
}

int nep_graph_add1(nep_graph *g, nep_op_kind op, const char *name, int input,
                   nep_attrs attrs) {
    return nep_graph_add(g, op, name, &input, 1, attrs);
}

int nep_graph_input(nep_graph *g, const char *name, nep_shape shape) {
    if (g->n_inputs == NEP_MAX_GRAPH_INPUTS) return -1;
    int id = nep_graph_add(g, NEP_OP_INPUT, name, NULL, 0, (nep_attrs){0});
    if (id >= 0) {
        g->nodes[id].shape = shape;
        g->inputs[g->n_inputs++] = id;
        g->input = g->inputs[0];
    }
    return id;
}

/* After finalize, the value blocks grow to hold a parameter declared late (a rewrite
 * adding a bias): new values and gradients are 0, masks 1. */
static bool grow_values(nep_graph *g, int64_t n_values) {
    if (!g->values) return true;
    const size_t old = (size_t)(g->n_values ? g->n_values : 1), nv = (size_t)n_values;
    if (nv <= old) return true;
    nep_real *v = realloc(g->values, nv * sizeof *v);
    if (v) g->values = v;
    nep_real *d = v ? realloc(g->grads, nv * sizeof *d) : NULL;
    if (d) g->grads = d;
    uint8_t *m = d ? realloc(g->masks, nv) : NULL;
    if (!m) return false;
    g->masks = m;
    memset(g->values + old, 0, (nv - old) * sizeof *v);
    memset(g->grads + old, 0, (nv - old) * sizeof *d);
    memset(g->masks + old, 1, nv - old);
    return true;
}

/* Storage for a parameter of numel values at the end of the blocks; 16-element
 * alignment keeps every parameter's start on a cache-line boundary. */
static bool place_param(nep_graph *g, nep_param *p) {
    const int64_t end = g->n_values + ((p->numel + 15) & ~(int64_t)15);
    if (g->values_borrowed || !grow_values(g, end)) return false; /* another graph's storage */
    p->offset = g->n_values;
    g->n_values = end;
    return true;
}

static void set_shape(nep_param *p, int ndim, const int64_t *shape) {
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= shape[i];
    }
}

int nep_graph_add_param(nep_graph *g, int node, const char *suffix, unsigned flags,
                        int ndim, const int64_t *shape) {
    nep_node *n = &g->nodes[node];
    if (n->n_params >= NEP_MAX_PARAMS || ndim > NEP_MAX_DIMS ||
        !grow((void **)&g->params, &g->cap_params, g->n_params + 1, sizeof *g->params))
        return -1;
    nep_param *p = &g->params[g->n_params];
    memset(p, 0, sizeof *p);
    /* "" names it as its node (a top-level nn.Parameter: "class_token") */
    snprintf(p->name, sizeof p->name, "%s%s%s", n->name, *suffix ? "." : "", suffix);
    p->node = node;
    p->flags = flags;
    set_shape(p, ndim, shape);
    if (!place_param(g, p)) return -1;
    n->params[n->n_params++] = g->n_params;
    return g->n_params++;
}

int nep_graph_share_param(nep_graph *g, int node, int param) {
    nep_node *n = &g->nodes[node];
    if (n->n_params >= NEP_MAX_PARAMS || param < 0 || param >= g->n_params) return -1;
    n->params[n->n_params++] = param;
    return param;
}

nep_status nep_graph_reshape_param(nep_graph *g, int param, int ndim, const int64_t *shape,
                                   nep_err *err) {
    nep_param *p = &g->params[param];
    if (ndim > NEP_MAX_DIMS)
        return nep_fail(err, NEP_ERR_ARG, "parameter '%s': %d dimensions", p->name, ndim);
    set_shape(p, ndim, shape);
    if (!place_param(g, p))
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory resizing '%s'", p->name);
    return NEP_OK;
}

/* Post-order DFS from the output: only nodes the output depends on are executed. */
static nep_status topo_visit(nep_graph *g, int id, char *mark, nep_err *err) {
    if (mark[id] == 2) return NEP_OK;
    if (mark[id] == 1)
        return nep_fail(err, NEP_ERR_ARG, "graph has a cycle through node '%s'",
                        g->nodes[id].name);
    mark[id] = 1;
    nep_node *n = &g->nodes[id];
    for (int i = 0; i < n->n_inputs; i++) {
        int in = n->inputs[i];
        if (in < 0 || in >= g->n_nodes || g->nodes[in].dead)
            return nep_fail(err, NEP_ERR_ARG, "node '%s': input %d is not a live node",
                            n->name, i);
        NEP_TRY(topo_visit(g, in, mark, err));
    }
    mark[id] = 2;
    g->order[g->n_order++] = id;
    return NEP_OK;
}

/* A shared parameter's declaring node runs before every node that shares it, so that
 * its backward is the last to add to the gradient: where the optimizer may update it
 * (nep_graph_share_param). */
static nep_status check_sharing(const nep_graph *g, nep_err *err) {
    bool *ran = calloc((size_t)g->n_nodes + 1, sizeof *ran);
    if (!ran) return nep_fail(err, NEP_ERR_NOMEM, "out of memory ordering the graph");
    nep_status s = NEP_OK;
    for (int k = 0; s == NEP_OK && k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        for (int i = 0; s == NEP_OK && i < n->n_params; i++) {
            const nep_param *p = &g->params[n->params[i]];
            if (p->node != g->order[k] && !ran[p->node])
                s = nep_fail(err, NEP_ERR_ARG, "node '%s' shares parameter '%s' but runs before "
                             "its node '%s'", n->name, p->name, g->nodes[p->node].name);
        }
        ran[g->order[k]] = true;
    }
    free(ran);
    return s;
}

nep_status nep_graph_finalize(nep_graph *g, nep_err *err) {
    if (g->input < 0 || g->output < 0)
        return nep_fail(err, NEP_ERR_ARG, "graph has no input or no output node");
    free(g->order);
    g->order = malloc(sizeof(int) * (size_t)g->n_nodes);
    char *mark = calloc((size_t)g->n_nodes, 1);
    if (!g->order || !mark) {
        free(mark);
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory ordering the graph");
    }
    /* The inputs first, in declaration order (they read nothing, so that is topological),
     * even one no output depends on: the order compaction and the JSON keep. */
    g->n_order = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        mark[g->inputs[i]] = 2;
        g->order[g->n_order++] = g->inputs[i];
    }
    nep_status s = topo_visit(g, g->output, mark, err);
    free(mark);
    if (s != NEP_OK) return s;
    for (int i = 0; i < g->n_inputs; i++) {
        const nep_node *n = &g->nodes[g->inputs[i]];
        const nep_shape *in = &n->shape;
        if (n->op != NEP_OP_INPUT || n->dead)
            return nep_fail(err, NEP_ERR_ARG, "graph input %d ('%s') is not a live Input node", i, n->name);
        if (in->ndim < 1 || in->ndim > NEP_MAX_DIMS || in->axis < 0 || in->axis >= in->ndim ||
            (in->axis != 0 && in->axis != in->ndim - 1))
            return nep_fail(err, NEP_ERR_SHAPE, "input '%s': %d dims with feature axis %d (wants "
                            "1 to %d dims, the features first or last)", n->name, in->ndim, in->axis,
                            NEP_MAX_DIMS);
    }
    for (int k = 0; k < g->n_order; k++) {
        nep_node *n = &g->nodes[g->order[k]];
        const nep_op_def *def = nep_op(n->op);
        if (n->n_inputs < def->min_inputs || n->n_inputs > def->max_inputs)
            return nep_fail(err, NEP_ERR_ARG, "node '%s' (%s) has %d inputs", n->name,
                            def->name, n->n_inputs);
        for (int i = 0; i < n->n_inputs; i++)
            if (nep_in_shape(g, n, i)->dtype == NEP_TOKEN_IDS && !def->takes_ids)
                return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (%s) reads token ids from '%s': "
                                "only an Embedding takes them", n->name, def->name,
                                g->nodes[n->inputs[i]].name);
        if (n->op != NEP_OP_INPUT) NEP_TRY(def->infer(g, n, err));
    }
    NEP_TRY(check_sharing(g, err));
    if (!g->values) {
        size_t nv = (size_t)(g->n_values ? g->n_values : 1);
        g->values = calloc(nv, sizeof *g->values);
        g->grads = calloc(nv, sizeof *g->grads);
        g->masks = malloc(nv);
        if (!g->values || !g->grads || !g->masks)
            return nep_fail(err, NEP_ERR_NOMEM, "out of memory for %lld parameters",
                            (long long)g->n_values);
        memset(g->masks, 1, nv);
    }
    return NEP_OK;
}

void nep_graph_replace_uses(nep_graph *g, int from, int to) {
    for (int i = 0; i < g->n_nodes; i++) {
        nep_node *n = &g->nodes[i];
        if (n->dead || i == to) continue;
        for (int j = 0; j < n->n_inputs; j++)
            if (n->inputs[j] == from) n->inputs[j] = to;
    }
    if (g->output == from) g->output = to;
}

nep_status nep_graph_bypass(nep_graph *g, int node, nep_err *err) {
    nep_node *n = &g->nodes[node];
    if (n->n_inputs != 1)
        return nep_fail(err, NEP_ERR_ARG, "cannot bypass node '%s': it has %d inputs",
                        n->name, n->n_inputs);
    nep_graph_replace_uses(g, node, n->inputs[0]);
    n->dead = true;
    return NEP_OK;
}

nep_status nep_graph_linearize(nep_graph *g, int node, nep_err *err) {
    nep_node *n = &g->nodes[node];
    if (!nep_op(n->op)->states)
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (%s) is not a rectifier", n->name, nep_op(n->op)->name);
    n->op = NEP_OP_IDENTITY;
    return nep_graph_finalize(g, err);
}

static void *dup_mem(const void *src, size_t n) {
    void *p = malloc(n ? n : 1);
    if (p && n) memcpy(p, src, n);
    return p;
}

nep_status nep_graph_copy(const nep_graph *src, nep_graph *dst, nep_err *err) {
    nep_graph_init(dst);
    *dst = *src;
    size_t nv = (size_t)(src->n_values ? src->n_values : 1);
    dst->nodes = dup_mem(src->nodes, sizeof *src->nodes * (size_t)src->n_nodes);
    dst->params = dup_mem(src->params, sizeof *src->params * (size_t)src->n_params);
    dst->order = dup_mem(src->order, sizeof(int) * (size_t)src->n_order);
    dst->values = src->values ? dup_mem(src->values, nv * sizeof(nep_real)) : NULL;
    dst->values_borrowed = false;
    dst->grads = src->grads ? dup_mem(src->grads, nv * sizeof(nep_real)) : NULL;
    dst->masks = src->masks ? dup_mem(src->masks, nv) : NULL;
    dst->cap_nodes = src->n_nodes;
    dst->cap_params = src->n_params;
    if (!dst->nodes || !dst->params || !dst->order || (src->values && !dst->values) ||
        (src->grads && !dst->grads) || (src->masks && !dst->masks)) {
        nep_graph_free(dst);
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory copying the graph");
    }
    return NEP_OK;
}

nep_status nep_graph_borrow_values(nep_graph *dst, nep_graph *src, nep_err *err) {
    bool same = dst->n_params == src->n_params && dst->n_values >= src->n_values;
    for (int i = 0; same && i < dst->n_params; i++) {
        const nep_param *a = &dst->params[i], *b = &src->params[i];
        same = strcmp(a->name, b->name) == 0 && a->numel == b->numel && !a->bf16;
    }
    if (!same) return nep_fail(err, NEP_ERR_ARG, "the graphs' parameters differ in names or shapes");
    for (int i = 0; i < dst->n_params; i++)
        dst->params[i].offset = src->params[i].offset, dst->params[i].bf16 = src->params[i].bf16;
    if (!dst->values_borrowed) free(dst->values);
    free(dst->grads), free(dst->masks);
    dst->values = src->values, dst->grads = NULL, dst->masks = NULL; /* forward only */
    dst->n_values = src->n_values;
    dst->values_borrowed = true;
    return NEP_OK;
}

nep_status nep_graph_map_bf16(nep_graph *g, int k, const uint16_t *data, nep_err *err) {
    if (g->values) return nep_fail(err, NEP_ERR_ARG, "parameter '%s': map it before the graph is finalized", g->params[k].name);
    if ((uintptr_t)data % sizeof *data) return nep_fail(err, NEP_ERR_ARG, "parameter '%s': bfloat16 data at an odd address", g->params[k].name);
    g->params[k].bf16 = data;
    g->n_values = 0; /* the others keep their order in the blocks, closed up */
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].bf16) g->params[i].offset = -1;
        else place_param(g, &g->params[i]);
    return NEP_OK;
}

nep_status nep_graph_check_resident(const nep_graph *g, const char *what, nep_err *err) {
    for (int k = 0; k < g->n_params; k++)
        if (g->params[k].bf16)
            return nep_fail(err, NEP_ERR_UNSUPPORTED, "%s: parameter '%s' is read-only bfloat16 mapped from its file; "
                            "load the model without mapping to change or write it", what, g->params[k].name);
    return NEP_OK;
}

nep_status nep_graph_compact(const nep_graph *src, nep_graph *dst, nep_err *err) {
    nep_graph_init(dst);
    NEP_TRY(nep_graph_check_resident(src, "compacting the graph", err));
    /* id: src node -> dst node; from: dst param -> src param; to: the reverse */
    int *id = malloc(sizeof(int) * (size_t)(src->n_nodes + 1));
    int *from = malloc(sizeof(int) * (size_t)(src->n_params + 1));
    int *to = malloc(sizeof(int) * (size_t)(src->n_params + 1));
    nep_status s = id && from && to ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory compacting the graph");
    for (int k = 0; s == NEP_OK && k < src->n_order; k++) {
        const nep_node *n = &src->nodes[src->order[k]];
        int in[NEP_MAX_INPUTS];
        for (int i = 0; i < n->n_inputs; i++) in[i] = id[n->inputs[i]];
        const int d = id[src->order[k]] = nep_graph_add(dst, n->op, n->name, in, n->n_inputs, n->attrs);
        if (d >= 0 && n->op == NEP_OP_INPUT) { /* in declaration order: they lead src->order */
            dst->nodes[d].shape = n->shape;
            dst->inputs[dst->n_inputs++] = d;
            dst->input = dst->inputs[0];
        }
        for (int i = 0; d >= 0 && i < n->n_params; i++) {
            const nep_param *p = &src->params[n->params[i]];
            if (p->node != src->order[k]) { /* shared: its node came first (check_sharing) */
                if (nep_graph_share_param(dst, d, to[n->params[i]]) < 0) break;
                continue;
            }
            const int q = nep_graph_add_param(dst, d, p->name + strlen(n->name) + 1, p->flags, p->ndim, p->shape);
            if (q < 0) break;
            from[q] = n->params[i];
            to[n->params[i]] = q;
        }
        if (d < 0 || dst->nodes[d].n_params != n->n_params)
            s = nep_fail(err, NEP_ERR_NOMEM, "out of memory compacting the graph");
    }
    if (s == NEP_OK) {
        dst->output = id[src->output];
        s = nep_graph_finalize(dst, err);
    }
    for (int q = 0; s == NEP_OK && q < dst->n_params; q++) {
        const nep_param *a = &dst->params[q], *b = &src->params[from[q]];
        memcpy(dst->values + a->offset, src->values + b->offset, sizeof(nep_real) * (size_t)a->numel);
        memcpy(dst->masks + a->offset, src->masks + b->offset, (size_t)a->numel);
    }
    free(id);
    free(from);
    free(to);
    if (s != NEP_OK) nep_graph_free(dst);
    return s;
}

int nep_graph_find_node(const nep_graph *g, const char *name) {
    for (int i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead && strcmp(g->nodes[i].name, name) == 0) return i;
    return -1;
}

int nep_graph_find_param(const nep_graph *g, const char *name) {
    for (int i = 0; i < g->n_params; i++)
        if (!g->nodes[g->params[i].node].dead && strcmp(g->params[i].name, name) == 0)
            return i;
    return -1;
}

int64_t nep_shape_numel(const nep_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->d[i];
    return n;
}

int64_t nep_node_flops(const nep_graph *g, const nep_node *n) {
    const nep_op_def *def = nep_op(n->op);
    return def->flops ? def->flops(g, n) : 0;
}

/* Whether node n counts parameter p: a shared one counts at its declaring node only, so
 * that per-node counts add up to the graph's. */
static bool counts_at(const nep_graph *g, const nep_node *n, const nep_param *p) {
    return (p->flags & NEP_PARAM_TRAINABLE) && &g->nodes[p->node] == n;
}

int64_t nep_node_param_count(const nep_graph *g, const nep_node *n) {
    int64_t c = 0;
    for (int i = 0; i < n->n_params; i++)
        if (counts_at(g, n, &g->params[n->params[i]])) c += g->params[n->params[i]].numel;
    return c;
}

int64_t nep_node_nonzero_count(const nep_graph *g, const nep_node *n) {
    int64_t c = 0;
    for (int i = 0; i < n->n_params; i++) {
        const nep_param *p = &g->params[n->params[i]];
        if (!counts_at(g, n, p)) continue;
        for (int64_t j = 0; j < p->numel; j++) c += g->values[p->offset + j] != 0;
    }
    return c;
}

int64_t nep_node_act_bytes(const nep_graph *g, const nep_node *n) {
    return nep_op(n->op)->view != NEP_VIEW_NONE ? 0
                                                : nep_shape_numel(&n->shape) * (int64_t)sizeof(nep_real);
}

int64_t nep_graph_param_count(const nep_graph *g) {
    int64_t c = 0;
    for (int i = 0; i < g->n_params; i++)
        if (!g->nodes[g->params[i].node].dead && (g->params[i].flags & NEP_PARAM_TRAINABLE))
            c += g->params[i].numel;
    return c;
}

void nep_graph_apply_masks(nep_graph *g) {
    for (int64_t i = 0; i < g->n_values; i++)
        if (!g->masks[i]) g->values[i] = 0;
}
