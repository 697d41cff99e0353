/* Shrinking SwiGLU MLPs by features (nepenthe/collapse.h says what is exact and what is
 * not). The pattern, as nep_llama_build makes it: gate = Linear(m), act = SiLU(gate),
 * up = Linear(m), prod = Mul(act, up), down = Linear(prod), out = Add(x, down). */
#include <stdlib.h>
#include <string.h>

#include "collapse/rewrite.h"
#include "nepenthe/collapse.h"

/* The MLP around entropy layer l, or false when it is not a SwiGLU. */
typedef struct swiglu {
    int gate, act, up, mul, down, add;
} swiglu;

static int reader_of(const nep_graph *g, int id, nep_op_kind op) {
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        for (int i = 0; n->op == op && i < n->n_inputs; i++)
            if (n->inputs[i] == id) return g->order[k];
    }
    return -1;
}

static bool find_swiglu(const nep_graph *g, const nep_layer_states *l, swiglu *s) {
    *s = (swiglu){.gate = l->owner, .act = l->node};
    if (g->nodes[s->act].op != NEP_OP_SILU || s->gate < 0 || g->nodes[s->gate].op != NEP_OP_LINEAR) return false;
    s->mul = reader_of(g, s->act, NEP_OP_MUL);
    if (s->mul < 0 || nep_rw_uses(g, s->act) != 1 || nep_rw_uses(g, s->mul) != 1) return false;
    const nep_node *m = &g->nodes[s->mul];
    s->up = m->inputs[0] == s->act ? m->inputs[1] : m->inputs[0];
    s->down = reader_of(g, s->mul, NEP_OP_LINEAR);
    s->add = s->down >= 0 ? reader_of(g, s->down, NEP_OP_ADD) : -1;
    return g->nodes[s->up].op == NEP_OP_LINEAR && nep_rw_uses(g, s->up) == 1 && s->down >= 0 && s->add >= 0 &&
           nep_rw_uses(g, s->down) == 1;
}

/* Whether feature i's gate row and bias are all zero: z = 0 on every input. */
static bool zero_gate(nep_graph *g, int gate, int64_t i) {
    const nep_param *w = nep_rw_param(g, gate, 0);
    const nep_real *row = g->values + w->offset + i * w->shape[1];
    for (int64_t j = 0; j < w->shape[1]; j++)
        if (row[j] != 0) return false;
    return !g->nodes[gate].attrs.linear.bias || nep_rw_values(g, gate, 1)[i] == 0;
}

static nep_status shrink_one(nep_graph *g, const nep_layer_states *l, const swiglu *m, bool always_off,
                             nep_swiglu_report *r, nep_err *err) {
    const int64_t I = l->neurons;
    int64_t *keep = malloc(sizeof *keep * (size_t)I + 1), n = 0;
    if (!keep) return nep_fail(err, NEP_ERR_NOMEM, "out of memory shrinking '%s'", g->nodes[m->gate].name);
    for (int64_t i = 0; i < I; i++) {
        const uint64_t *c = l->counts + i * l->states;
        if (zero_gate(g, m->gate, i)) r->dropped_exact++;
        else if (always_off && c[NEP_STATE_ON] == 0 && c[NEP_STATE_OFF] > 0) r->dropped_off++;
        else keep[n++] = i;
    }
    r->features += I, r->kept += n;
    nep_status s = NEP_OK;
    if (n == 0) { /* nothing left: the block's output is its input */
        nep_graph_replace_uses(g, m->add, g->nodes[m->add].inputs[0] == m->down ? g->nodes[m->add].inputs[1]
                                                                                 : g->nodes[m->add].inputs[0]);
        g->nodes[m->add].dead = true;
        r->mlps_removed++;
    } else if (n < I) {
        for (int k = 0; s == NEP_OK && k < 2; k++) {
            const int lin = k ? m->up : m->gate;
            for (int p = 0; s == NEP_OK && p < g->nodes[lin].n_params; p++)
                s = nep_rw_select_param(g, g->nodes[lin].params[p], 0, keep, n, err);
            g->nodes[lin].attrs.linear.features = n;
        }
        if (s == NEP_OK) s = nep_rw_select_param(g, g->nodes[m->down].params[0], 1, keep, n, err);
    }
    free(keep);
    return s;
}

nep_status nep_swiglu_shrink(const nep_graph *src, const nep_entropy *e, bool always_off, nep_graph *dst,
                             nep_swiglu_report *r, nep_err *err) {
    memset(r, 0, sizeof *r);
    nep_graph g;
    NEP_TRY(nep_graph_copy(src, &g, err));
    nep_status s = NEP_OK;
    for (int l = 0; s == NEP_OK && l < e->n_layers; l++) {
        swiglu m;
        if (!find_swiglu(&g, &e->layers[l], &m)) continue;
        r->mlps++;
        s = shrink_one(&g, &e->layers[l], &m, always_off, r, err);
    }
    if (s == NEP_OK) s = nep_graph_finalize(&g, err);
    if (s == NEP_OK) s = nep_graph_compact(&g, dst, err);
    nep_graph_free(&g);
    return s;
}
