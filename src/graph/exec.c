/* Running a graph: forward in topological order, backward in reverse. Each node owns
 * an output buffer and a gradient buffer sized for max_batch, except ops whose output
 * aliases their input (Identity, Flatten), which share their input's buffers. */
#include <stdlib.h>
#include <string.h>

#include "nepenthe/graph.h"
#include "ops/ops.h"

nep_status nep_exec_init(nep_exec *ex, nep_graph *g, int64_t max_batch, nep_err *err) {
    memset(ex, 0, sizeof *ex);
    ex->g = g;
    ex->max_batch = max_batch;
    size_t n = (size_t)g->n_nodes;
    ex->act = calloc(n, sizeof *ex->act);
    ex->dact = calloc(n, sizeof *ex->dact);
    ex->state = calloc(n, sizeof *ex->state);
    ex->owns = calloc(n, sizeof *ex->owns);
    ex->backend = calloc(n, sizeof *ex->backend);
    if (!ex->act || !ex->dact || !ex->state || !ex->owns || !ex->backend) goto nomem;
    for (int k = 0; k < g->n_order; k++) {
        int id = g->order[k];
        const nep_node *nd = &g->nodes[id];
        const nep_op_def *def = nep_op(nd->op);
        if (def->state_reals) {
            ex->state[id] = malloc(sizeof(nep_real) * (size_t)(max_batch * def->state_reals(g, nd)));
            if (!ex->state[id]) goto nomem;
        }
        if (nd->op == NEP_OP_INPUT || def->aliases_input) continue;
        size_t bytes = (size_t)(max_batch * nep_shape_numel(&nd->shape)) * sizeof(nep_real);
        ex->act[id] = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        ex->dact[id] = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        ex->owns[id] = true;
        if (!ex->act[id] || !ex->dact[id]) goto nomem;
    }
    return NEP_OK;
nomem:
    nep_exec_free(ex);
    return nep_fail(err, NEP_ERR_NOMEM, "out of memory for activations at batch %lld",
                    (long long)max_batch);
}

nep_status nep_exec_enable_input_grad(nep_exec *ex, nep_err *err) {
    int in = ex->g->input;
    if (ex->owns[in]) return NEP_OK;
    size_t n = (size_t)(ex->max_batch * nep_shape_numel(&ex->g->nodes[in].shape));
    ex->dact[in] = malloc(sizeof(nep_real) * n);
    if (!ex->dact[in]) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for input gradients");
    ex->owns[in] = true;
    return NEP_OK;
}

void *nep_exec_scratch(nep_exec *ex, size_t bytes) {
    if (bytes <= ex->scratch_bytes) return ex->scratch;
    size_t n = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n);
    if (!p) return NULL;
    free(ex->scratch);
    ex->scratch = p;
    ex->scratch_bytes = n;
    return p;
}

void nep_exec_free(nep_exec *ex) {
    if (ex->g)
        for (int i = 0; i < ex->g->n_nodes; i++) {
            if (ex->owns && ex->owns[i]) {
                if (i != ex->g->input) free(ex->act[i]);
                free(ex->dact[i]);
            }
            if (ex->state) free(ex->state[i]);
            if (ex->backend && ex->backend[i]) {
                void (*release)(void *) = nep_op(ex->g->nodes[i].op)->free_backend;
                if (release) release(ex->backend[i]);
            }
        }
    free(ex->act);
    free(ex->dact);
    free(ex->state);
    free(ex->owns);
    free(ex->backend);
    free(ex->scratch);
    memset(ex, 0, sizeof *ex);
}

const nep_real *nep_exec_forward(nep_exec *ex, const nep_real *x, int64_t batch) {
    nep_graph *g = ex->g;
    ex->batch = batch;
    /* The input is read-only; its gradient is never computed (dact stays NULL). */
    ex->act[g->input] = (nep_real *)x;
    for (int k = 0; k < g->n_order; k++) {
        int id = g->order[k];
        const nep_node *n = &g->nodes[id];
        const nep_op_def *def = nep_op(n->op);
        if (def->aliases_input) {
            ex->act[id] = ex->act[n->inputs[0]];
            ex->dact[id] = ex->dact[n->inputs[0]];
            continue;
        }
        if (def->states && ex->probe)
            ex->probe(ex->probe_ctx, g, id, ex->act[n->inputs[0]], batch);
        if (def->forward) def->forward(ex, id);
    }
    return ex->act[g->output];
}

void nep_exec_backward(nep_exec *ex, const nep_real *dy) {
    nep_graph *g = ex->g;
    for (int k = 0; k < g->n_order; k++) {
        int id = g->order[k];
        if (ex->owns[id]) memset(ex->dact[id], 0, (size_t)nep_exec_numel(ex, id) * sizeof(nep_real));
    }
    int out = g->output;
    if (ex->dact[out])
        memcpy(ex->dact[out], dy, (size_t)nep_exec_numel(ex, out) * sizeof(nep_real));
    for (int k = g->n_order - 1; k >= 0; k--) {
        int id = g->order[k];
        const nep_op_def *def = nep_op(g->nodes[id].op);
        if (def->backward && ex->dact[id]) def->backward(ex, id);
        if (ex->on_grads && g->nodes[id].n_params) ex->on_grads(ex->on_grads_ctx, g, id);
    }
}
