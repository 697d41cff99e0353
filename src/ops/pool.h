/* The window geometry of MaxPool2d and AvgPool2d, shared by their shape rule
 * (src/ops/pool.c) and their kernels. */
#ifndef NEPENTHE_OPS_POOL_H
#define NEPENTHE_OPS_POOL_H

#include "ops/ops.h"

typedef struct nep_pool_geom {
    int64_t C, H, W, OH, OW;
    int kh, kw, sh, sw, ph, pw;
    int64_t step; /* distance between a plane's consecutive positions */
} nep_pool_geom;

static inline nep_pool_geom nep_pool_geom_of(const nep_graph *g, const nep_node *n) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    const nep_pool_attrs *a = &n->attrs.pool;
    nep_pool_geom q = {.C = in->d[0], .H = in->d[1], .W = in->d[2],
                   .kh = a->kernel[0], .kw = a->kernel[1],
                   .sh = a->stride[0] > 0 ? a->stride[0] : a->kernel[0],
                   .sw = a->stride[1] > 0 ? a->stride[1] : a->kernel[1],
                   .ph = a->pad[0], .pw = a->pad[1]};
    q.OH = q.sh > 0 ? (q.H + 2 * q.ph - q.kh) / q.sh + 1 : 0;
    q.OW = q.sw > 0 ? (q.W + 2 * q.pw - q.kw) / q.sw + 1 : 0;
    return q;
}


#endif
