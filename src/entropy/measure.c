/* Counting activation states (SPEC section 2): the probe the executor calls with each
 * rectifier's pre-activation, and a pass over a data set with it. */
#include <math.h>

#include "backend/cpu/kernels.h"
#include "nepenthe/entropy.h"
#include "nepenthe/text_train.h"
#include "nepenthe/train.h"

static nep_layer_states *find_layer(nep_entropy *e, int node) {
    for (int i = 0; i < e->n_layers; i++)
        if (e->layers[i].node == node) return &e->layers[i];
    return NULL;
}

/* Counts of one neuron over z[b*stride + k], k < inner. Branch-free compares so the
 * loop vectorizes; boundary values fall in no state unless zero_is_off. */
static void count_neuron(const nep_real *z, int64_t batch, int64_t stride, int64_t inner,
                         int states, bool zero_is_off, uint64_t *c) {
    uint64_t on = 0, off = 0, offp = 0;
    for (int64_t b = 0; b < batch; b++) {
        const nep_real *p = z + b * stride;
        if (states == 2) {
            for (int64_t k = 0; k < inner; k++) {
                on += p[k] > 0;
                off += zero_is_off ? p[k] <= 0 : p[k] < 0;
            }
        } else {
            for (int64_t k = 0; k < inner; k++) {
                on += p[k] > 0 && p[k] < 6;
                off += zero_is_off ? p[k] <= 0 : p[k] < 0;
                offp += zero_is_off ? p[k] >= 6 : p[k] > 6;
            }
        }
    }
    c[NEP_STATE_ON] += on;
    c[NEP_STATE_OFF] += off;
    if (states == 3) c[NEP_STATE_OFF_PLUS] += offp;
}

/* Counts over NHWC rows: z [rows, C], one neuron per column, in blocks of columns, but
 * for the rows whose mask entry is 0 (mask NULL: all rows). Rows are split over the
 * threads, each counting into its own arrays, which are then added: integer sums, so
 * exact whatever the split. */
static void count_rows(const nep_real *z, const nep_real *mask, int64_t rows, int64_t C, int states,
                       bool zero_is_off, uint64_t *counts) {
    enum { BLOCK = 64 };
    for (int64_t c0 = 0; c0 < C; c0 += BLOCK) {
        const int64_t nc = C - c0 < BLOCK ? C - c0 : BLOCK;
#pragma omp parallel if (rows * nc > NEP_PAR_MIN)
        {
            uint64_t on[BLOCK] = {0}, off[BLOCK] = {0}, offp[BLOCK] = {0};
#pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                if (mask && mask[r] == 0) continue;
                const nep_real *p = z + r * C + c0;
                for (int64_t i = 0; i < nc; i++) {
                    on[i] += states == 2 ? p[i] > 0 : p[i] > 0 && p[i] < 6;
                    off[i] += zero_is_off ? p[i] <= 0 : p[i] < 0;
                    offp[i] += zero_is_off ? p[i] >= 6 : p[i] > 6;
                }
            }
#pragma omp critical
            for (int64_t i = 0; i < nc; i++) {
                uint64_t *c = counts + (c0 + i) * states;
                c[NEP_STATE_ON] += on[i];
                c[NEP_STATE_OFF] += off[i];
                if (states == 3) c[NEP_STATE_OFF_PLUS] += offp[i];
            }
        }
    }
}

void nep_entropy_probe(void *ctx, const nep_graph *g, int node, const nep_real *z, int64_t batch,
                       bool channels_last) {
    nep_entropy *e = ctx;
    nep_layer_states *l = find_layer(e, node);
    if (!l) return;
    const int64_t inner = nep_shape_numel(&g->nodes[node].shape) / l->neurons;
    const int64_t stride = l->neurons * inner;
    const nep_shape *sh = &g->nodes[node].shape;
    if ((channels_last && sh->ndim == 3) || nep_shape_features_last(sh)) { /* z [rows, C] */
        const nep_real *mask = e->token_mask && inner == e->mask_positions ? e->token_mask : NULL;
        count_rows(z, mask, batch * inner, l->neurons, l->states, e->zero_is_off, l->counts);
        return;
    }
    /* Each neuron's counts are summed by one thread: exact and order-independent. */
#pragma omp parallel for schedule(static) if (batch * stride > NEP_PAR_MIN)
    for (int64_t i = 0; i < l->neurons; i++)
        count_neuron(z + i * inner, batch, stride, inner, l->states, e->zero_is_off,
                     l->counts + i * l->states);
}

typedef struct measure_ctx {
    nep_entropy *e;
    int64_t total;
    double start;
} measure_ctx;

static nep_status count_samples(void *ctx, nep_exec *ex, const nep_real *logits, const int32_t *y,
                                int64_t b, nep_err *err) {
    measure_ctx *m = ctx;
    m->e->samples += b;
    if (m->e->progress) m->e->progress(m->e->progress_ctx, m->e->samples, m->total, NAN, nep_now() - m->start);
    return NEP_OK;
}

nep_status nep_entropy_measure_split(nep_entropy *e, nep_graph *g, const nep_split *d,
                                     int64_t batch, int64_t max_batches, const nep_exec_opts *xo,
                                     nep_err *err) {
    nep_entropy_reset(e);
    const int64_t n = nep_split_rows(d);
    measure_ctx m = {e, max_batches > 0 && max_batches * batch < n ? max_batches * batch : n, nep_now()};
    e->mask_positions = d->text ? d->text->T : 0;
    nep_status s = nep_split_for_each_batch(d, g, batch, max_batches, nep_entropy_probe, e, &e->token_mask,
                                            count_samples, &m, xo, err);
    e->token_mask = NULL;
    for (int l = 0; s == NEP_OK && l < e->n_layers; l++) /* integers: the sum over ranks is exact */
        s = nep_comm_sum(d->comm, e->layers[l].counts, e->layers[l].neurons * e->layers[l].states, NEP_COMM_I64, err);
    if (s == NEP_OK) s = nep_comm_sum(d->comm, &e->samples, 1, NEP_COMM_I64, err);
    return s;
}

nep_status nep_entropy_measure(nep_entropy *e, nep_graph *g, const nep_dataset *d,
                               const nep_normalize *norm, int64_t batch, int64_t max_batches,
                               const nep_exec_opts *xo, nep_err *err) {
    const nep_split split = {.images = d, .norm = norm};
    return nep_entropy_measure_split(e, g, &split, batch, max_batches, xo, err);
}
