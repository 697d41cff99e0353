/* Embedding (src/ops/embedding.c): each token id selects a row of the table.
 *   ids [B, T] (int32, in [0, num))   W [num, C] ("weight")   y [B, T, C]
 * y[b, t] = W[ids[b, t]];  dW[v] (+)= sum over the tokens with id v of dy[b, t]. The ids
 * were range-checked when they came in (nep_exec_forward_ids), and an input of ids has
 * no gradient. */
#include <string.h>

#include "backend/cpu/kernels.h"

static void embedding_forward(const nep_call *c) {
    const int32_t *ids = (const int32_t *)c->x[0];
    const int64_t C = nep_embedding_dim(c->g, c->n);
    const int64_t tokens = c->batch * nep_shape_numel(nep_in_shape(c->g, c->n, 0));
#pragma omp parallel for if (tokens * C > NEP_PAR_MIN)
    for (int64_t t = 0; t < tokens; t++)
        memcpy(c->y + t * C, c->w[0] + (int64_t)ids[t] * C, sizeof(nep_real) * (size_t)C);
}

static void embedding_backward(const nep_call *c) {
    const int32_t *ids = (const int32_t *)c->x[0];
    const int64_t C = nep_embedding_dim(c->g, c->n);
    const int64_t tokens = c->batch * nep_shape_numel(nep_in_shape(c->g, c->n, 0));
    nep_real *dw = c->dw[0];
    if (!c->accumulate) memset(dw, 0, sizeof(nep_real) * (size_t)(nep_embedding_rows(c->g, c->n) * C));
    /* Tokens in order, so that repeated ids add up the same way in every run. */
    for (int64_t t = 0; t < tokens; t++) {
        nep_real *row = dw + (int64_t)ids[t] * C;
        const nep_real *g = c->dy + t * C;
        for (int64_t j = 0; j < C; j++) row[j] += g[j];
    }
}

const nep_kernel nep_cpu_embedding = {.forward = embedding_forward, .backward = embedding_backward};
