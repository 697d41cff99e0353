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

nep_status nep_collapse_rewrite(const nep_graph *src, const nep_collapse_opts *o,
                                const char *const *only, nep_graph *dst,
                                nep_collapse_info *info, nep_err *err) {
    nep_rw_ctx cx = {.opts = o ? *o : (nep_collapse_opts){0}, .info = info};
    return nep_rw_run(src, dst, only, &cx, err);
}

nep_status nep_collapse(const nep_graph *src, const nep_entropy *e, const nep_collapse_opts *o,
                        nep_graph *linearized, nep_graph *collapsed, nep_collapse_info *info,
                        nep_err *err) {
    nep_graph lin;
    NEP_TRY(nep_collapse_linearize(src, e, &lin, info, err));
    nep_status s = linearized ? nep_graph_copy(&lin, linearized, err) : NEP_OK;
    if (s == NEP_OK && collapsed) {
        s = nep_collapse_rewrite(&lin, o, NULL, collapsed, info, err);
        if (s == NEP_OK) mask_zeros(collapsed);
    }
    if (s != NEP_OK && linearized) nep_graph_free(linearized);
    nep_graph_free(&lin);
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
