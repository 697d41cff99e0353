/* Linearization (SPEC section 6): a rectifier layer whose every neuron stayed in one
 * state on the data computes, on that data, a fixed per-channel linear map. */
#include <stdio.h>
#include <stdlib.h>

#include "collapse/rewrite.h"

/* The one state a neuron was seen in; a neuron never counted (z always exactly on a
 * boundary) is OFF, which every rectifier maps as it maps 0. -1: more than one. */
static int fixed_state(const uint64_t *counts, int states) {
    int seen = -1;
    for (int s = 0; s < states; s++)
        if (counts[s]) {
            if (seen >= 0) return -1;
            seen = s;
        }
    return seen < 0 ? NEP_STATE_OFF : seen;
}

/* y = a x + b for rectifier node n in `state` (channel c): ON is the identity; OFF is
 * the op's off_slope (a leaky unit keeps its slope), else 0; OFF+ (ReLU6's only) is the
 * constant 6; GELU and SiLU are taken as ReLU. */
static void state_map(const nep_graph *g, const nep_node *n, int64_t c, int state, nep_real *a,
                      nep_real *b) {
    const nep_op_def *def = nep_op(n->op);
    *b = 0;
    if (state == NEP_STATE_ON) {
        *a = 1;
    } else if (state == NEP_STATE_OFF_PLUS) {
        *a = 0, *b = 6;
    } else {
        *a = def->off_slope ? (nep_real)def->off_slope(g, n, c) : 0;
    }
}

/* Replaces rectifier `id` (channels C, states from l) by its Affine. */
static nep_status linearize_layer(nep_graph *g, int id, const nep_layer_states *l, nep_err *err) {
    const int64_t C = l->neurons;
    nep_real *a = malloc(sizeof(nep_real) * 2 * (size_t)C);
    if (!a) return nep_fail(err, NEP_ERR_NOMEM, "out of memory linearizing '%s'", g->nodes[id].name);
    for (int64_t c = 0; c < C; c++)
        state_map(g, &g->nodes[id], c, fixed_state(l->counts + c * l->states, l->states), a + c, a + C + c);
    nep_status s = nep_rw_make_affine(g, id, g->nodes[id].inputs[0], C, err);
    for (int64_t c = 0; s == NEP_OK && c < C; c++) {
        nep_rw_values(g, id, 0)[c] = a[c];
        nep_rw_values(g, id, 1)[c] = a[C + c];
    }
    free(a);
    return s;
}

/* Neurons always OFF in a layer that stays output exactly 0 on the data where the op's
 * OFF state is 0 (ReLU, ReLU6): an Affine mask after the layer says so, for the channel
 * rewrites to delete them. */
static nep_status mask_always_off(nep_graph *g, const nep_layer_states *l, nep_collapse_info *info,
                                  nep_err *err) {
    const nep_node *n = &g->nodes[l->node];
    if (!nep_op(n->op)->exact_states || nep_op(n->op)->off_slope) return NEP_OK;
    int64_t off = 0;
    for (int64_t c = 0; c < l->neurons; c++)
        off += fixed_state(l->counts + c * l->states, l->states) == NEP_STATE_OFF;
    if (!off) return NEP_OK;
    char name[NEP_NAME_LEN];
    snprintf(name, sizeof name, "%.*s_off", NEP_NAME_LEN - 5, n->name);
    const int m = nep_rw_insert_affine(g, l->node, name, l->neurons);
    if (m < 0) return nep_fail(err, NEP_ERR_NOMEM, "out of memory masking '%s'", name);
    for (int64_t c = 0; c < l->neurons; c++)
        if (fixed_state(l->counts + c * l->states, l->states) == NEP_STATE_OFF) nep_rw_values(g, m, 0)[c] = 0;
    info->masked_layers++;
    info->masked_neurons += off;
    return NEP_OK;
}

nep_status nep_collapse_linearize(const nep_graph *src, const nep_entropy *e, nep_graph *dst,
                                  nep_collapse_info *info, nep_err *err) {
    nep_graph g;
    nep_graph_init(dst);
    NEP_TRY(nep_graph_copy(src, &g, err));
    nep_status s = NEP_OK;
    for (int i = 0; s == NEP_OK && i < e->n_layers; i++) {
        const nep_layer_states *l = &e->layers[i];
        const nep_op_kind op = l->node < g.n_nodes ? g.nodes[l->node].op : NEP_OP_INPUT;
        if (!nep_op(op)->states || l->neurons != nep_shape_features(&g.nodes[g.nodes[l->node].inputs[0]].shape)) {
            s = nep_fail(err, NEP_ERR_ARG, "linearize: the entropy counts do not belong to this graph");
            break;
        }
        bool fixed = true;
        for (int64_t c = 0; fixed && c < l->neurons; c++) fixed = fixed_state(l->counts + c * l->states, l->states) >= 0;
        if (!fixed) {
            s = mask_always_off(&g, l, info, err);
            continue;
        }
        s = linearize_layer(&g, l->node, l, err);
        info->linearized++;
        info->approximate += !nep_op(op)->exact_states;
    }
    if (s == NEP_OK) s = nep_graph_finalize(&g, err);
    if (s == NEP_OK) s = nep_graph_compact(&g, dst, err);
    nep_graph_free(&g);
    return s;
}
