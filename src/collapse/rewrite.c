/* Helpers shared by the rules (rewrite.h). */
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

/* The one place that reads a conv's geometry for the rewrites: every other matmul is
 * a Linear, a 1x1 conv over its input's last axis. */
static bool is_conv(const nep_node *n) { return n->op == NEP_OP_CONV2D; }

nep_rw_geom nep_rw_geom_of(const nep_graph *g, int id) {
    const nep_node *n = &g->nodes[id];
    const nep_shape *x = &g->nodes[n->inputs[0]].shape;
    nep_rw_geom q = {.out = n->attrs.matmul.features, .in = nep_linear_fan_in(x), .groups = 1,
                     .kh = 1, .kw = 1, .sh = 1, .sw = 1};
    if (is_conv(n)) {
        q.in = x->d[0];
        q.groups = nep_conv_groups(n);
        q.kh = n->attrs.conv.kernel[0], q.kw = n->attrs.conv.kernel[1];
        q.sh = n->attrs.conv.stride[0], q.sw = n->attrs.conv.stride[1];
        q.ph = n->attrs.conv.pad[0], q.pw = n->attrs.conv.pad[1];
    }
    return q;
}

nep_rw_matmul nep_rw_matmul_of(nep_graph *g, int id) {
    const nep_node *n = &g->nodes[id];
    const nep_param *w = nep_rw_param(g, id, 0);
    nep_rw_matmul m = {.out = w->shape[0], .in_per_group = w->shape[1], .taps = 1,
                       .groups = is_conv(n) ? nep_conv_groups(n) : 1,
                       .w = nep_rw_values(g, id, 0),
                       .bias = n->attrs.matmul.bias ? nep_rw_values(g, id, 1) : NULL};
    for (int d = 2; d < w->ndim; d++) m.taps *= w->shape[d];
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
