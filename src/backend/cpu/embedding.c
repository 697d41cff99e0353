/* Embedding (src/ops/embedding.c): each token id selects a row of the table, or each
 * position a row of a position table (nep_embedding_row).
 *   ids [B, T] (int32, in [0, num))   W [num, C] ("weight")   y [B, T, C]
 * y[b, t] = W[row(b, t)];  dW[v] (+)= sum over the tokens reading row v of dy[b, t], but
 * for a padded table's padding row. The ids were range-checked when they came in
 * (nep_exec_run), positions by shape inference, and an input of ids has no gradient. */
#include <string.h>

#include "backend/cpu/kernels.h"

static void embedding_forward(const nep_call *c) {
    const int32_t *ids = (const int32_t *)c->x[0];
    const nep_embedding_attrs *a = &c->n->attrs.embedding;
    const int64_t C = nep_embedding_dim(c->g, c->n), T = nep_shape_numel(nep_in_shape(c->g, c->n, 0));
#pragma omp parallel for if (c->batch * T * C > NEP_PAR_MIN)
    for (int64_t b = 0; b < c->batch; b++) {
        int64_t seen = 0;
        for (int64_t t = 0; t < T; t++) {
            const int64_t row = nep_embedding_row(a, ids[b * T + t], t, &seen);
            memcpy(c->y + (b * T + t) * C, c->w[0] + row * C, sizeof(nep_real) * (size_t)C);
        }
    }
}

static void embedding_backward(const nep_call *c) {
    const int32_t *ids = (const int32_t *)c->x[0];
    const nep_embedding_attrs *a = &c->n->attrs.embedding;
    const int64_t C = nep_embedding_dim(c->g, c->n), T = nep_shape_numel(nep_in_shape(c->g, c->n, 0));
    nep_real *dw = c->dw[0];
    if (!c->accumulate) memset(dw, 0, sizeof(nep_real) * (size_t)(nep_embedding_rows(c->g, c->n) * C));
    /* Tokens in order, so that repeated rows add up the same way in every run. */
    for (int64_t b = 0; b < c->batch; b++) {
        int64_t seen = 0;
        for (int64_t t = 0; t < T; t++) {
            const int64_t row = nep_embedding_row(a, ids[b * T + t], t, &seen);
            if (nep_embedding_frozen_row(a, row)) continue;
            nep_real *dst = dw + row * C;
            const nep_real *g = c->dy + (b * T + t) * C;
            for (int64_t j = 0; j < C; j++) dst[j] += g[j];
        }
    }
}

const nep_kernel nep_cpu_embedding = {.forward = embedding_forward, .backward = embedding_backward};
