/* Embedding (src/ops/embedding.c): y[b, t] = W[row(b, t)] (nep_embedding_row); dW[v] =
 * the sum, in double, of dy over the tokens reading row v (none for a padded table's
 * padding row). */
#include "backend/ref/ref.h"

static void embedding_forward(const nep_call *c) {
    const int32_t *ids = (const int32_t *)c->x[0];
    const int64_t C = nep_embedding_dim(c->g, c->n), T = nep_shape_numel(nep_in_shape(c->g, c->n, 0));
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t t = 0, seen = 0; t < T; t++) {
            const int64_t row = nep_embedding_row(&c->n->attrs.embedding, ids[b * T + t], t, &seen);
            for (int64_t j = 0; j < C; j++) c->y[(b * T + t) * C + j] = c->w[0][row * C + j];
        }
}

static void embedding_backward(const nep_call *c) {
    const int32_t *ids = (const int32_t *)c->x[0];
    const nep_embedding_attrs *a = &c->n->attrs.embedding;
    const int64_t V = nep_embedding_rows(c->g, c->n), C = nep_embedding_dim(c->g, c->n),
                  T = nep_shape_numel(nep_in_shape(c->g, c->n, 0));
    for (int64_t v = 0; v < V; v++)
        for (int64_t j = 0; j < C; j++) {
            double acc = 0;
            for (int64_t b = 0; b < c->batch && !nep_embedding_frozen_row(a, v); b++)
                for (int64_t t = 0, seen = 0; t < T; t++)
                    if (nep_embedding_row(a, ids[b * T + t], t, &seen) == v) acc += (double)c->dy[(b * T + t) * C + j];
            ref_put(&c->dw[0][v * C + j], acc, c->accumulate);
        }
}

const nep_kernel nep_ref_embedding = {.forward = embedding_forward, .backward = embedding_backward};
