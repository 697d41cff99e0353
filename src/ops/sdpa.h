/* What the kernels of ScaledDotProductAttention (src/ops/sdpa.c) share: its dimensions
 * and which keys a query may attend to. */
#ifndef NEPENTHE_OPS_SDPA_H
#define NEPENTHE_OPS_SDPA_H

#include <math.h>

#include "ops/ops.h"

typedef struct nep_sdpa_geom {
    int64_t T, C, Ck;           /* tokens; query features (heads hd); key/value features */
    int64_t heads, kv_heads, hd, rep; /* rep = heads / kv_heads queries share a key head */
    bool causal, masked;        /* masked: a key mask is input 3 */
    double scale;               /* 1 / sqrt(hd) */
} nep_sdpa_geom;

static inline nep_sdpa_geom nep_sdpa_geom_of(const nep_graph *g, const nep_node *n) {
    const nep_sdpa_attrs *at = &n->attrs.sdpa;
    nep_sdpa_geom a = {.T = nep_in_shape(g, n, 0)->d[0], .C = nep_in_shape(g, n, 0)->d[1],
                       .Ck = nep_in_shape(g, n, 1)->d[1], .heads = at->heads,
                       .kv_heads = at->kv_heads > 0 ? at->kv_heads : at->heads,
                       .causal = at->causal, .masked = n->n_inputs == 4};
    a.hd = a.C / a.heads;
    a.rep = a.heads / a.kv_heads;
    a.scale = 1 / sqrt((double)a.hd);
    return a;
}

/* Whether query i attends to key j, with m the sample's key mask [T] (NULL: none). */
static inline bool nep_sdpa_kept(const nep_sdpa_geom *a, const nep_real *m, int64_t i, int64_t j) {
    return (!m || m[j] != 0) && (!a->causal || j <= i);
}

#endif
