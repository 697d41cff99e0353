/* The key/value cache of generation (nepenthe/exec.h): its buffers, and attaching it to
 * an executor, whose attention and rotary kernels then read positions and the cache
 * through their call (backend.h: nep_call.pos, nep_call.kv). */
#include <stdlib.h>
#include <string.h>

#include "graph/exec_impl.h"
#include "ops/sdpa.h"

void nep_kv_cache_free(nep_kv_cache *kv) {
    for (int l = 0; kv->layers && l < kv->n_layers; l++)
        free(kv->layers[l].k), free(kv->layers[l].v), free(kv->layers[l].scores);
    free(kv->layers);
    memset(kv, 0, sizeof *kv);
}

nep_status nep_kv_cache_init(nep_kv_cache *kv, const nep_graph *g, int64_t batch, int64_t max_len, nep_err *err) {
    memset(kv, 0, sizeof *kv);
    if (batch < 1 || max_len < 1)
        return nep_fail(err, NEP_ERR_ARG, "a key/value cache of %lld rows of %lld positions", (long long)batch,
                        (long long)max_len);
    for (int k = 0; k < g->n_order; k++) kv->n_layers += g->nodes[g->order[k]].op == NEP_OP_SDPA;
    kv->layers = calloc((size_t)kv->n_layers + 1, sizeof *kv->layers);
    if (!kv->layers) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for a key/value cache");
    int l = 0;
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        if (n->op != NEP_OP_SDPA) continue;
        const nep_sdpa_geom a = nep_sdpa_geom_of(g, n);
        nep_kv_layer *c = &kv->layers[l++];
        *c = (nep_kv_layer){.width = a.Ck, .heads = a.heads, .max_len = max_len, .batch = batch};
        const size_t cells = (size_t)(batch * max_len * a.Ck);
        c->k = malloc(sizeof(nep_real) * cells), c->v = malloc(sizeof(nep_real) * cells);
        c->scores = malloc(sizeof(nep_real) * (size_t)(batch * a.heads * max_len));
        if (!c->k || !c->v || !c->scores) {
            nep_kv_cache_free(kv);
            return nep_fail(err, NEP_ERR_NOMEM, "out of memory for a key/value cache of %lld rows of %lld positions",
                            (long long)batch, (long long)max_len);
        }
    }
    return NEP_OK;
}

int64_t nep_kv_cache_bytes_per_token(const nep_kv_cache *kv) {
    int64_t w = 0;
    for (int l = 0; l < kv->n_layers; l++) w += 2 * kv->layers[l].width;
    return w * (int64_t)sizeof(nep_real);
}

nep_status nep_exec_set_kv_cache(nep_exec *ex, nep_kv_cache *kv, const int64_t *pos, nep_err *err) {
    const nep_graph *g = ex->g;
    ex->kv = NULL, ex->pos = NULL;
    if (!kv) return NEP_OK;
    if (strcmp(ex->backend->name, "cpu") != 0 || !ex->inference)
        return nep_fail(err, NEP_ERR_ARG, "a key/value cache needs an inference executor of the cpu backend "
                        "(this one: %s, %s)", ex->backend->name, ex->inference ? "inference" : "training");
    if (ex->slice)
        return nep_fail(err, NEP_ERR_ARG, "a key/value cache needs whole batches: not on a frozen_weights executor");
    if (!ex->kv_layer && !(ex->kv_layer = malloc(sizeof *ex->kv_layer * (size_t)g->n_nodes + 1)))
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory attaching a key/value cache");
    int l = 0;
    for (int i = 0; i < g->n_nodes; i++) ex->kv_layer[i] = -1;
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        if (n->op != NEP_OP_SDPA) continue;
        const nep_sdpa_geom a = nep_sdpa_geom_of(g, n);
        if (l >= kv->n_layers || kv->layers[l].width != a.Ck || kv->layers[l].heads != a.heads ||
            kv->layers[l].batch < ex->max_batch)
            return nep_fail(err, NEP_ERR_ARG, "the key/value cache was made for another model or a smaller batch "
                            "(attention node '%s')", n->name);
        ex->kv_layer[g->order[k]] = l++;
    }
    if (l != kv->n_layers)
        return nep_fail(err, NEP_ERR_ARG, "the key/value cache has %d layers, the model %d attention nodes", kv->n_layers, l);
    ex->kv = kv, ex->pos = pos;
    return NEP_OK;
}
