/* The collapse pipeline and the depth measures its report compares. */
#include <stdlib.h>

#include "collapse/rewrite.h"

/* A weight's mask keeps exactly what is not zero after the rewrites. */
static void mask_zeros(nep_graph *g) {
    for (int i = 0; i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        if (!(p->flags & NEP_PARAM_WEIGHT)) continue;
        for (int64_t j = p->offset; j < p->offset + p->numel; j++) g->masks[j] = g->values[j] != 0;
    }
}

/* Every rewrite counts itself in info. */
static int64_t changes(const nep_collapse_info *i) {
    return i->bn_folded + i->affine_folded + i->removed + i->channels_dropped + i->constants_folded +
           i->composed + i->residual_folded;
}

nep_status nep_collapse(const nep_graph *src, const nep_entropy *e, const nep_collapse_opts *o,
                        nep_graph *linearized, nep_graph *collapsed, nep_collapse_info *info,
                        nep_err *err) {
    nep_graph cur, next;
    NEP_TRY(nep_collapse_linearize(src, e, &cur, info, err));
    nep_status s = linearized ? nep_graph_copy(&cur, linearized, err) : NEP_OK;
    /* Each step can open the way for another (a fold leaves a constant channel, a
     * dropped channel makes a composition cheaper); the graph shrinks at each change. */
    nep_graph_init(&next);
    while (s == NEP_OK && collapsed) {
        const int64_t before = changes(info);
        if ((s = nep_collapse_fold(&cur, &next, info, err)) != NEP_OK) break;
        nep_graph_free(&cur);
        if ((s = nep_collapse_channels(&next, &cur, info, err)) != NEP_OK) break;
        nep_graph_free(&next);
        if ((s = nep_collapse_compose(&cur, o, &next, info, err)) != NEP_OK) break;
        nep_graph_free(&cur);
        cur = next;
        nep_graph_init(&next);
        if (changes(info) == before) break;
    }
    if (s == NEP_OK && collapsed) {
        mask_zeros(&cur);
        *collapsed = cur;
    } else {
        nep_graph_free(&cur);
        if (linearized && s != NEP_OK) nep_graph_free(linearized);
    }
    nep_graph_free(&next);
    return s;
}

int nep_graph_rectifiers(const nep_graph *g) {
    int n = 0;
    for (int k = 0; k < g->n_order; k++) n += nep_op(g->nodes[g->order[k]].op)->states > 0;
    return n;
}

int nep_graph_depth(const nep_graph *g) {
    int *d = calloc((size_t)g->n_nodes, sizeof(int));
    if (!d) return -1;
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        int best = 0;
        for (int i = 0; i < n->n_inputs; i++) best = d[n->inputs[i]] > best ? d[n->inputs[i]] : best;
        d[g->order[k]] = best + (nep_op(n->op)->states > 0);
    }
    const int depth = d[g->output];
    free(d);
    return depth;
}
