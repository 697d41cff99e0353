/* Activation-state counts and entropies (SPEC sections 1-2): the layers, their owners
 * and the entropy of what was counted (counting itself: measure.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/entropy.h"
#include "ops/ops.h"

/* The Linear/Conv2d producing node id's output, looking through BatchNorm and
 * Identity; -1 if another op is in the way. */
static int weight_producer(const nep_graph *g, int id) {
    while (g->nodes[id].op == NEP_OP_IDENTITY || g->nodes[id].op == NEP_OP_BATCHNORM)
        id = g->nodes[id].inputs[0];
    return nep_op(g->nodes[id].op)->matmul ? id : -1;
}

/* SPEC section 1: the weight producing z, before BatchNorm; after a residual Add, the
 * residual branch's last conv (a shortcut conv, or an identity shortcut, is never it). */
int nep_rectifier_owner(const nep_graph *g, int rectifier) {
    int id = g->nodes[rectifier].inputs[0];
    while (g->nodes[id].op == NEP_OP_IDENTITY) id = g->nodes[id].inputs[0];
    if (g->nodes[id].op != NEP_OP_ADD) return weight_producer(g, id);
    for (int i = 0; i < g->nodes[id].n_inputs; i++) {
        int w = weight_producer(g, g->nodes[id].inputs[i]);
        if (w >= 0 && !(g->nodes[w].op == NEP_OP_CONV2D && g->nodes[w].attrs.conv.shortcut)) return w;
    }
    return -1;
}

nep_status nep_entropy_init(nep_entropy *e, const nep_graph *g, bool zero_is_off, nep_err *err) {
    memset(e, 0, sizeof *e);
    e->zero_is_off = zero_is_off;
    e->layers = calloc((size_t)(g->n_order ? g->n_order : 1), sizeof *e->layers);
    if (!e->layers) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for entropy counts");
    for (int k = 0; k < g->n_order; k++) {
        int id = g->order[k];
        const nep_node *n = &g->nodes[id];
        int states = nep_op(n->op)->states;
        if (!states) continue;
        nep_layer_states *l = &e->layers[e->n_layers++];
        l->node = id;
        l->owner = nep_rectifier_owner(g, id);
        l->states = states;
        l->neurons = nep_shape_features(&n->shape);
        l->counts = calloc((size_t)(l->neurons * states), sizeof *l->counts);
        if (!l->counts) {
            nep_entropy_free(e);
            return nep_fail(err, NEP_ERR_NOMEM, "out of memory for entropy counts");
        }
    }
    return NEP_OK;
}

void nep_entropy_free(nep_entropy *e) {
    for (int i = 0; i < e->n_layers; i++) free(e->layers[i].counts);
    free(e->layers);
    memset(e, 0, sizeof *e);
}

void nep_entropy_reset(nep_entropy *e) {
    for (int i = 0; i < e->n_layers; i++)
        memset(e->layers[i].counts, 0, sizeof(uint64_t) * (size_t)(e->layers[i].neurons * e->layers[i].states));
    e->samples = 0;
}

double nep_neuron_entropy(const uint64_t *counts, int states) {
    uint64_t total = 0;
    for (int k = 0; k < states; k++) total += counts[k];
    if (!total) return 0;
    double h = 0;
    for (int k = 0; k < states; k++)
        if (counts[k]) {
            double p = (double)counts[k] / (double)total;
            h -= p * log2(p);
        }
    /* A single state gives exactly 0 above; clamp the -0.0 of rounding elsewhere. */
    return h > 0 ? h : 0;
}

double nep_layer_entropy(const nep_layer_states *l, bool nondegenerate_only) {
    double sum = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < l->neurons; i++) {
        double h = nep_neuron_entropy(l->counts + i * l->states, l->states);
        if (nondegenerate_only && !(h > 0)) continue;
        sum += h;
        n++;
    }
    return n ? sum / (double)n : 0;
}

int64_t nep_layer_count_always(const nep_layer_states *l, int state) {
    int64_t n = 0;
    for (int64_t i = 0; i < l->neurons; i++) {
        const uint64_t *c = l->counts + i * l->states;
        uint64_t total = 0;
        for (int k = 0; k < l->states; k++) total += c[k];
        n += total > 0 && c[state] == total;
    }
    return n;
}

int64_t nep_layer_count_mixed(const nep_layer_states *l) {
    int64_t n = 0;
    for (int64_t i = 0; i < l->neurons; i++) {
        int used = 0;
        for (int k = 0; k < l->states; k++) used += l->counts[i * l->states + k] > 0;
        n += used > 1;
    }
    return n;
}
