/* Constant channels: a channel that is the same number for every input (an OFF neuron
 * after linearization, a masked one, a conv row pruned to nothing) carries no
 * information; it is deleted from the layer that makes it, from the per-channel ops
 * it passes, and from the inputs of the layers that read it, whose bias takes the
 * constant where that is exact (drop_constant_channels). A channel is a feature of
 * the neuron axis: an image's plane, or one feature of every token of a sequence.
 * An Add of a constant tensor becomes an Affine (add_of_constant_to_affine). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "collapse/rewrite.h"

/* A depthwise conv maps channel c to channel c: it can sit inside a region. */
static bool depthwise(const nep_graph *g, int id) {
    if (!nep_rw_is_matmul(&g->nodes[id])) return false;
    const nep_rw_geom q = nep_rw_geom_of(g, id);
    return q.groups > 1 && q.groups == q.out && q.in == q.out;
}

/* A pooling that maps channel c to channel c and a constant channel to the same constant:
 * MaxPool (its padding is -inf, and a window always holds an input), GlobalAveragePool,
 * and AveragePool without padding (a padded window would average in zeros). */
static bool constant_preserving_pool(const nep_graph *g, int id) {
    const nep_node *n = &g->nodes[id];
    return n->op == NEP_OP_MAXPOOL || n->op == NEP_OP_GLOBAL_AVGPOOL ||
           (n->op == NEP_OP_AVGPOOL && n->attrs.pool.pad[0] == 0 && n->attrs.pool.pad[1] == 0);
}

/* Per-channel op id at x on channel c, in evaluation mode (the op's own definition). */
static double channel_eval(nep_graph *g, int id, int64_t c, double x) {
    return nep_op(g->nodes[id].op)->value(g, &g->nodes[id], c, x);
}

/* A matmul p with one group, the per-channel ops, depthwise convs and constant-preserving
 * poolings after it (each the previous one's only reader), and the layers reading the
 * last of them (all matmuls with one group): the nodes a channel of p's output runs
 * through. */
#define MAX_CHAIN 8
#define MAX_READERS 8
typedef struct region {
    int p, chain[MAX_CHAIN], n_chain, readers[MAX_READERS], n_readers;
    int64_t C;
} region;

static bool one_group_matmul(const nep_graph *g, int id) {
    return nep_rw_is_matmul(&g->nodes[id]) && nep_rw_geom_of(g, id).groups == 1;
}

static bool find_region(nep_graph *g, int p, region *r) {
    if (!one_group_matmul(g, p)) return false;
    *r = (region){.p = p, .C = nep_shape_features(&g->nodes[p].shape)};
    int t = p, e;
    while ((e = nep_rw_sole_reader(g, t)) >= 0 &&
           (nep_rw_per_element(&g->nodes[e]) || depthwise(g, e) || constant_preserving_pool(g, e)) &&
           r->n_chain < MAX_CHAIN)
        r->chain[r->n_chain++] = t = e;
    if (g->output == t) return false;
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *q = &g->nodes[g->order[k]];
        if (q->inputs[0] != t || q->n_inputs != 1) {
            for (int i = 0; i < q->n_inputs; i++)
                if (q->inputs[i] == t) return false;
            continue;
        }
        if (!one_group_matmul(g, g->order[k]) || r->n_readers == MAX_READERS)
            return false;
        r->readers[r->n_readers++] = g->order[k];
    }
    return r->n_readers > 0;
}

/* Whether channel c of a matmul's output is a constant for every input (its row of
 * weights is all 0; a depthwise conv's also when its input channel is 0, since its zero
 * padding adds 0 too): the bias. */
static bool row_constant(nep_graph *g, int id, int64_t c, bool input_zero, double *v) {
    const nep_rw_matmul m = nep_rw_matmul_of(g, id);
    const int64_t row = m.in_per_group * m.taps;
    bool zero = true;
    for (int64_t k = 0; zero && k < row; k++) zero = m.w[c * row + k] == 0;
    *v = m.bias ? m.bias[c] : 0;
    return zero || input_zero;
}

/* The constant channel c has at the end of the region, if it is one. */
static bool channel_constant(nep_graph *g, const region *r, int64_t c, double *v) {
    bool known = row_constant(g, r->p, c, false, v);
    for (int i = 0; i < r->n_chain; i++) {
        const int e = r->chain[i];
        if (nep_rw_is_matmul(&g->nodes[e])) { /* a depthwise conv */
            known = row_constant(g, e, c, known && *v == 0, v);
        } else if (constant_preserving_pool(g, e)) {
            continue; /* the same constant */
        } else if (g->nodes[e].op == NEP_OP_AFFINE && nep_rw_values(g, e, 0)[c] == 0) {
            known = true;
            *v = nep_rw_values(g, e, 1)[c];
        } else if (known) {
            *v = channel_eval(g, e, c, *v);
        }
    }
    return known && isfinite(*v);
}

/* A reader takes a constant input channel into its bias exactly unless it zero-pads. */
static bool absorbs(const nep_graph *g, int q) {
    const nep_rw_geom m = nep_rw_geom_of(g, q);
    return !m.ph && !m.pw;
}

nep_status nep_rw_select_param(nep_graph *g, int param, int dim, const int64_t *keep, int64_t n_keep,
                               nep_err *err) {
    nep_param *p = &g->params[param];
    const int64_t outer = dim ? p->shape[0] : 1, len = p->shape[dim],
                  inner = p->numel / outer / len;
    nep_real *v = malloc(sizeof(nep_real) * (size_t)p->numel);
    uint8_t *m = malloc((size_t)p->numel);
    if (!v || !m) {
        free(v), free(m);
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory resizing '%s'", p->name);
    }
    memcpy(v, g->values + p->offset, sizeof(nep_real) * (size_t)p->numel);
    memcpy(m, g->masks + p->offset, (size_t)p->numel);
    int64_t shape[NEP_MAX_DIMS];
    memcpy(shape, p->shape, sizeof shape);
    shape[dim] = n_keep;
    nep_status s = nep_graph_reshape_param(g, param, p->ndim, shape, err);
    p = &g->params[param];
    for (int64_t o = 0; s == NEP_OK && o < outer; o++)
        for (int64_t j = 0; j < n_keep; j++) {
            const int64_t from = (o * len + keep[j]) * inner, to = (o * n_keep + j) * inner;
            memcpy(g->values + p->offset + to, v + from, sizeof(nep_real) * (size_t)inner);
            memcpy(g->masks + p->offset + to, m + from, (size_t)inner);
        }
    free(v), free(m);
    return s;
}

/* Folds constant channel c (value v) of a reader's input into its bias and zeroes the
 * weights that read it. */
static nep_status fold_constant(nep_graph *g, int q, int64_t c, double v, nep_err *err) {
    if (v != 0) NEP_TRY(nep_rw_ensure_bias(g, q, err));
    const nep_rw_matmul m = nep_rw_matmul_of(g, q);
    for (int64_t o = 0; o < m.out; o++) {
        nep_real *t = m.w + (o * m.in_per_group + c) * m.taps;
        for (int64_t k = 0; k < m.taps; k++) {
            if (m.bias) m.bias[o] += (nep_real)(t[k] * v);
            t[k] = 0;
        }
    }
    return NEP_OK;
}

static bool column_zero(nep_graph *g, int q, int64_t c) {
    const nep_rw_matmul m = nep_rw_matmul_of(g, q);
    for (int64_t o = 0; o < m.out; o++)
        for (int64_t k = 0; k < m.taps; k++)
            if (m.w[(o * m.in_per_group + c) * m.taps + k] != 0) return false;
    return true;
}

/* Whether the region drops channel c (and the constant *v its readers' biases take):
 * a constant that every reader absorbs (0 needs no bias), or a channel no reader uses
 * (its weight columns are all 0: masked, or zeroed by a fold). exact: every reader
 * absorbs. */
static bool drops(nep_graph *g, const region *r, bool exact, int64_t c, double *v) {
    bool unused = true;
    for (int i = 0; unused && i < r->n_readers; i++) unused = column_zero(g, r->readers[i], c);
    const bool drop = channel_constant(g, r, c, v) && (*v == 0 || exact);
    if (unused && !drop) *v = 0;
    return drop || unused;
}

static bool all_absorb(const nep_graph *g, const region *r) {
    bool exact = true;
    for (int i = 0; i < r->n_readers; i++) exact = exact && absorbs(g, r->readers[i]);
    return exact;
}

/* With every channel dropped, channel 0 stays (the tensor keeps a shape) and its readers'
 * weights are zeroed: a change while one of them still reads it. */
static bool reads_channel0(nep_graph *g, const region *r) {
    bool live = false;
    for (int i = 0; i < r->n_readers; i++) live = live || !column_zero(g, r->readers[i], 0);
    return live;
}

static bool drop_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    region r;
    if (!find_region(g, id, &r)) return false;
    const bool exact = all_absorb(g, &r);
    int64_t n_keep = 0;
    double v;
    for (int64_t c = 0; c < r.C; c++) n_keep += !drops(g, &r, exact, c, &v);
    return n_keep ? n_keep < r.C : r.C > 1 || reads_channel0(g, &r);
}

static nep_status drop_apply(nep_graph *g, int id, nep_rw_ctx *cx, nep_err *err) {
    region reg, *r = &reg;
    find_region(g, id, r);
    const bool exact = all_absorb(g, r);
    double *val = malloc(sizeof(double) * (size_t)r->C);
    int64_t *keep = malloc(sizeof(int64_t) * (size_t)r->C), n_keep = 0;
    bool *drop = calloc((size_t)r->C, sizeof(bool));
    if (!val || !keep || !drop) {
        free(val), free(keep), free(drop);
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory dropping channels");
    }
    for (int64_t c = 0; c < r->C; c++)
        if (!(drop[c] = drops(g, r, exact, c, &val[c]))) keep[n_keep++] = c;
    if (n_keep == 0) keep[n_keep++] = 0;
    nep_status s = NEP_OK;
    for (int i = 0; s == NEP_OK && i < r->n_readers; i++)
        for (int64_t c = 0; s == NEP_OK && c < r->C; c++)
            if (drop[c]) s = fold_constant(g, r->readers[i], c, val[c], err);
    if (s == NEP_OK && n_keep < r->C) {
        for (int i = 0; s == NEP_OK && i < r->n_readers; i++)
            s = nep_rw_select_param(g, g->nodes[r->readers[i]].params[0], 1, keep, n_keep, err);
        const nep_node *p = &g->nodes[r->p];
        for (int i = 0; s == NEP_OK && i < p->n_params; i++) s = nep_rw_select_param(g, p->params[i], 0, keep, n_keep, err);
        for (int i = 0; s == NEP_OK && i < r->n_chain; i++) {
            nep_node *e = &g->nodes[r->chain[i]];
            for (int j = 0; s == NEP_OK && j < e->n_params; j++) s = nep_rw_select_param(g, e->params[j], 0, keep, n_keep, err);
            if (nep_rw_is_matmul(e)) e->attrs.conv.features = e->attrs.conv.groups = (int)n_keep; /* depthwise */
        }
        g->nodes[r->p].attrs.matmul.features = n_keep;
        if (s == NEP_OK) s = nep_graph_finalize(g, err);
    }
    /* all constant: folded into the readers, one channel kept */
    if (s == NEP_OK && n_keep == r->C) cx->info->constants_folded++;
    cx->info->channels_dropped += r->C - n_keep;
    free(val), free(keep), free(drop);
    return s;
}

const nep_rw_rule nep_rule_drop_constant_channels = {"drop_constant_channels", true, drop_match,
                                                     drop_apply};

/* ---- add_of_constant_to_affine --------------------------------------------------------- */

/* A matmul whose weights are all 0, or an Affine whose weights are: each channel is a
 * constant, its bias. */
static const nep_real *constant_of(nep_graph *g, int id) {
    const nep_node *n = &g->nodes[id];
    const bool affine = n->op == NEP_OP_AFFINE;
    if (!affine && !nep_rw_is_matmul(n)) return NULL;
    const nep_param *w = nep_rw_param(g, id, 0);
    const nep_real *v = nep_rw_values(g, id, 0);
    for (int64_t i = 0; i < w->numel; i++)
        if (v[i] != 0) return NULL;
    static const nep_real none = 0;
    return affine || n->attrs.matmul.bias ? nep_rw_values(g, id, 1) : &none;
}

/* x + k, k a constant tensor: which input is k (0 or 1), or -1. */
static int constant_input(nep_graph *g, int add) {
    const nep_node *n = &g->nodes[add];
    if (n->op != NEP_OP_ADD || n->n_inputs != 2 || n->inputs[0] == n->inputs[1]) return -1;
    for (int i = 0; i < 2; i++)
        if (constant_of(g, n->inputs[i])) return i;
    return -1;
}

static bool add_match(nep_graph *g, int id, const nep_rw_ctx *cx) {
    return constant_input(g, id) >= 0;
}

/* x + k -> Affine(x) with weight 1 and k's bias. */
static nep_status add_apply(nep_graph *g, int add, nep_rw_ctx *cx, nep_err *err) {
    const nep_node *n = &g->nodes[add];
    const int i = constant_input(g, add), k = n->inputs[i], x = n->inputs[1 - i];
    const nep_real *b = constant_of(g, k);
    const int64_t C = nep_shape_features(&n->shape);
    const bool has_bias = g->nodes[k].op == NEP_OP_AFFINE || g->nodes[k].attrs.matmul.bias;
    nep_real *copy = malloc(sizeof(nep_real) * (size_t)C);
    if (!copy) return nep_fail(err, NEP_ERR_NOMEM, "out of memory folding '%s'", n->name);
    for (int64_t c = 0; c < C; c++) copy[c] = has_bias ? b[c] : 0;
    nep_status s = nep_rw_make_affine(g, add, x, C, err);
    if (s == NEP_OK) memcpy(nep_rw_values(g, add, 1), copy, sizeof(nep_real) * (size_t)C);
    free(copy);
    cx->info->constants_folded++;
    return s == NEP_OK ? nep_graph_finalize(g, err) : s;
}

const nep_rw_rule nep_rule_add_of_constant_to_affine = {"add_of_constant_to_affine", true,
                                                        add_match, add_apply};
