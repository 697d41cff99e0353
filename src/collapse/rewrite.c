#include <string.h>

#include "collapse/rewrite.h"

int nep_rw_uses(const nep_graph *g, int id) {
    int uses = g->output == id;
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        for (int i = 0; i < n->n_inputs; i++) uses += n->inputs[i] == id;
    }
    return uses;
}

int nep_rw_sole_reader(const nep_graph *g, int id) {
    if (g->output == id || nep_rw_uses(g, id) != 1) return -1;
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] == id) return g->order[k];
    }
    return -1;
}

nep_rw_matmul nep_rw_matmul_of(nep_graph *g, int id) {
    const nep_node *n = &g->nodes[id];
    const nep_param *w = nep_rw_param(g, id, 0);
    nep_rw_matmul m = {.out = w->shape[0], .in_per_group = w->shape[1], .groups = 1, .taps = 1,
                       .w = nep_rw_values(g, id, 0),
                       .bias = n->attrs.matmul.bias ? nep_rw_values(g, id, 1) : NULL};
    if (n->op == NEP_OP_CONV2D) {
        m.groups = n->attrs.conv.groups > 0 ? n->attrs.conv.groups : 1;
        m.taps = w->shape[2] * w->shape[3];
    }
    return m;
}

nep_status nep_rw_ensure_bias(nep_graph *g, int id, nep_err *err) {
    nep_node *n = &g->nodes[id];
    if (n->attrs.matmul.bias) return NEP_OK;
    if (nep_graph_add_param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){n->attrs.matmul.features}) < 0)
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory adding a bias to '%s'", n->name);
    g->nodes[id].attrs.matmul.bias = true;
    return NEP_OK;
}

static nep_status affine_params(nep_graph *g, int id, int64_t C, nep_err *err) {
    g->nodes[id].n_params = 0;
    if (nep_graph_add_param(g, id, "weight", NEP_PARAM_TRAINABLE, 1, &C) < 0 ||
        nep_graph_add_param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, &C) < 0)
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory making '%s' an Affine", g->nodes[id].name);
    nep_real *w = nep_rw_values(g, id, 0);
    for (int64_t c = 0; c < C; c++) w[c] = 1;
    return NEP_OK;
}

nep_status nep_rw_make_affine(nep_graph *g, int id, int input, int64_t C, nep_err *err) {
    nep_node *n = &g->nodes[id];
    n->op = NEP_OP_AFFINE;
    n->n_inputs = 1;
    n->inputs[0] = input;
    n->attrs = (nep_attrs){0};
    return affine_params(g, id, C, err);
}

int nep_rw_insert_affine(nep_graph *g, int after, const char *name, int64_t C) {
    const int out = g->output;
    const int id = nep_graph_add1(g, NEP_OP_AFFINE, name, after, (nep_attrs){0});
    if (id < 0) return -1;
    g->output = out;
    nep_graph_replace_uses(g, after, id);
    nep_err err;
    return affine_params(g, id, C, &err) == NEP_OK ? id : -1;
}

nep_status nep_rw_bypass(nep_graph *g, int id, nep_err *err) {
    NEP_TRY(nep_graph_bypass(g, id, err));
    return nep_graph_finalize(g, err);
}

nep_status nep_rw_run(const nep_graph *src, nep_graph *dst, nep_rw_step step, void *ctx,
                      nep_err *err) {
    nep_graph work;
    nep_graph_init(dst);
    /* The rewrites take a tensor's channels to be its dim 0; token sequences [T, C] (the
     * features last) are not theirs yet: refuse them rather than rewrite them wrong. */
    for (int k = 0; k < src->n_order; k++)
        if (nep_shape_features_last(&src->nodes[src->order[k]].shape))
            return nep_fail(err, NEP_ERR_UNSUPPORTED, "node '%s' holds a token sequence "
                            "(features last); collapsing those is not supported yet",
                            src->nodes[src->order[k]].name);
    NEP_TRY(nep_graph_copy(src, &work, err));
    nep_status s = nep_graph_finalize(&work, err);
    for (int changes = 1; s == NEP_OK && changes > 0;) {
        changes = 0;
        s = step(&work, ctx, &changes, err);
    }
    if (s == NEP_OK) s = nep_graph_compact(&work, dst, err);
    nep_graph_free(&work);
    return s;
}
