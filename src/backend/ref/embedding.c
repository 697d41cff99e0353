/* Embedding (src/ops/embedding.c): y[b, t] = W[ids[b, t]]; dW[v] = the sum, in double,
 * of dy over the tokens whose id is v. */
#include "backend/ref/ref.h"

static void embedding_forward(const nep_call *c) {
    const int32_t *ids = (const int32_t *)c->x[0];
    const int64_t C = nep_embedding_dim(c->g, c->n);
    const int64_t tokens = c->batch * nep_shape_numel(nep_in_shape(c->g, c->n, 0));
    for (int64_t t = 0; t < tokens; t++)
        for (int64_t j = 0; j < C; j++) c->y[t * C + j] = c->w[0][(int64_t)ids[t] * C + j];
}

static void embedding_backward(const nep_call *c) {
    const int32_t *ids = (const int32_t *)c->x[0];
    const int64_t V = nep_embedding_rows(c->g, c->n), C = nep_embedding_dim(c->g, c->n);
    const int64_t tokens = c->batch * nep_shape_numel(nep_in_shape(c->g, c->n, 0));
    for (int64_t v = 0; v < V; v++)
        for (int64_t j = 0; j < C; j++) {
            double acc = 0;
            for (int64_t t = 0; t < tokens; t++)
                if (ids[t] == v) acc += (double)c->dy[t * C + j];
            ref_put(&c->dw[0][v * C + j], acc, c->accumulate);
        }
}

const nep_kernel nep_ref_embedding = {.forward = embedding_forward, .backward = embedding_backward};
