/* Shrinking SwiGLU MLPs by features (nepenthe/collapse.h says what is exact and what is
 * not). The pattern, as nep_llama_build makes it: gate = Linear(m), act = SiLU(gate),
 * up = Linear(m), prod = Mul(act, up), down = Linear(prod), out = Add(x, down). */
#include <stdlib.h>
#include <string.h>

#include "collapse/rewrite.h"
#include "nepenthe/collapse.h"
#include "nepenthe/train.h"

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

/* Whether every feature of l is zero-gated or was always OFF, and not all zero-gated:
 * the MLP the approximate rewrite empties. */
static bool all_off(nep_graph *g, const nep_layer_states *l, const swiglu *m) {
    bool approx = false;
    for (int64_t i = 0; i < l->neurons; i++) {
        const uint64_t *c = l->counts + i * l->states;
        if (zero_gate(g, m->gate, i)) continue;
        if (c[NEP_STATE_ON] != 0 || c[NEP_STATE_OFF] == 0) return false;
        approx = true;
    }
    return approx;
}

typedef struct mean_sums {
    const nep_real *mask;       /* the batch's attention mask [b, T] */
    int64_t T, C, tokens;
    double *sum;                /* [C] */
} mean_sums;

static nep_status add_tokens(void *ctx, nep_exec *ex, const nep_real *y, const int32_t *labels, int64_t b,
                             nep_err *err) {
    mean_sums *m = ctx;
    for (int64_t t = 0; t < b * m->T; t++) {
        if (m->mask[t] == 0) continue;
        for (int64_t c = 0; c < m->C; c++) m->sum[c] += y[t * m->C + c];
        m->tokens++;
    }
    return NEP_OK;
}

nep_status nep_swiglu_mean_outputs(const nep_graph *g, const nep_entropy *e, const nep_split *d, int64_t batch,
                                   nep_real **means, const nep_exec_opts *xo, nep_err *err) {
    nep_status s = NEP_OK;
    for (int l = 0; l < e->n_layers; l++) means[l] = NULL;
    nep_graph *read = (nep_graph *)g; /* the two checks only read it */
    for (int l = 0; s == NEP_OK && l < e->n_layers; l++) {
        nep_graph h;
        swiglu m;
        if (!find_swiglu(read, &e->layers[l], &m) || !all_off(read, &e->layers[l], &m)) continue;
        NEP_TRY(nep_graph_copy(g, &h, err)); /* its output becomes the MLP's */
        const nep_shape *y = &h.nodes[m.down].shape; /* [T, C] per row */
        mean_sums sums = {.T = y->d[0], .C = y->d[1], .sum = calloc((size_t)y->d[1], sizeof(double))};
        h.output = m.down;
        s = sums.sum ? nep_graph_finalize(&h, err) : nep_fail(err, NEP_ERR_NOMEM, "out of memory");
        if (s == NEP_OK)
            s = nep_split_for_each_batch(d, &h, batch, 0, NULL, NULL, &sums.mask, add_tokens, &sums, xo, err);
        if (s == NEP_OK) s = nep_comm_sum(d->comm, sums.sum, sums.C, NEP_COMM_F64, err);
        if (s == NEP_OK) s = nep_comm_sum(d->comm, &sums.tokens, 1, NEP_COMM_I64, err);
        if (s == NEP_OK && !sums.tokens) s = nep_fail(err, NEP_ERR_ARG, "no calibration token to average over");
        if (s == NEP_OK && !(means[l] = malloc(sizeof(nep_real) * (size_t)sums.C)))
            s = nep_fail(err, NEP_ERR_NOMEM, "out of memory");
        for (int64_t c = 0; s == NEP_OK && c < sums.C; c++) means[l][c] = (nep_real)(sums.sum[c] / (double)sums.tokens);
        free(sums.sum);
        nep_graph_free(&h);
    }
    return s;
}

/* The MLP's output replaced by the constant c: the residual it adds to is
 * Add(x, o_proj(...)) in a Llama block, and o_proj reads nothing else, so c goes into
 * o_proj's bias; the MLP's own residual add then passes that sum on. */
static nep_status fold_mean(nep_graph *g, const swiglu *m, const nep_real *c, nep_err *err) {
    const nep_node *add = &g->nodes[m->add];
    const int x1 = add->inputs[0] == m->down ? add->inputs[1] : add->inputs[0];
    const nep_node *res = &g->nodes[x1];
    int proj = -1;
    for (int i = 0; res->op == NEP_OP_ADD && i < res->n_inputs; i++)
        if (g->nodes[res->inputs[i]].op == NEP_OP_LINEAR && nep_rw_uses(g, res->inputs[i]) == 1) proj = res->inputs[i];
    if (proj < 0)
        return nep_fail(err, NEP_ERR_UNSUPPORTED, "'%s': its residual input is not Add(x, Linear): no bias to hold "
                        "the MLP's mean output", g->nodes[m->down].name);
    NEP_TRY(nep_rw_ensure_bias(g, proj, err));
    nep_real *bias = nep_rw_values(g, proj, 1);
    for (int64_t k = 0; k < g->nodes[proj].attrs.linear.features; k++) bias[k] += c[k];
    return NEP_OK;
}

static nep_status shrink_one(nep_graph *g, const nep_layer_states *l, const swiglu *m, bool always_off,
                             const nep_real *mean, nep_swiglu_report *r, nep_err *err) {
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
    if (n == 0) { /* nothing left: the block's output is its input (plus the mean output) */
        if (mean && (s = fold_mean(g, m, mean, err)) == NEP_OK) r->mlps_mean++;
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

nep_status nep_swiglu_shrink(const nep_graph *src, const nep_entropy *e, bool always_off, nep_real *const *means,
                             nep_graph *dst, nep_swiglu_report *r, nep_err *err) {
    memset(r, 0, sizeof *r);
    NEP_TRY(nep_graph_check_resident(src, "shrinking SwiGLU layers", err));
    nep_graph g;
    NEP_TRY(nep_graph_copy(src, &g, err));
    nep_status s = NEP_OK;
    for (int l = 0; s == NEP_OK && l < e->n_layers; l++) {
        swiglu m;
        if (!find_swiglu(&g, &e->layers[l], &m)) continue;
        r->mlps++;
        s = shrink_one(&g, &e->layers[l], &m, always_off, always_off && means ? means[l] : NULL, r, err);
    }
    if (s == NEP_OK) s = nep_graph_finalize(&g, err);
    if (s == NEP_OK) s = nep_graph_compact(&g, dst, err);
    nep_graph_free(&g);
    return s;
}
