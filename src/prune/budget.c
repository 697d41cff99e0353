/* The NEPENTHE budget (SPEC section 3, eqs. 13-16 and the authors' cap-and-redistribute)
 * and the selection of weights inside a layer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/prune.h"

static bool is_nonzero(const nep_budget_layer *l, int64_t k) { return l->mask[k] && l->w[k] != 0; }

static bool row_is_candidate(const nep_budget_layer *l, int64_t row, bool neuron_selection) {
    return !neuron_selection || l->neuron_entropy[row] > 0;
}

static int64_t count_nonzero(const nep_budget_layer *l) {
    int64_t n = 0;
    for (int64_t k = 0; k < l->neurons * l->fan_in; k++) n += is_nonzero(l, k);
    return n;
}

int64_t nep_budget_candidates(const nep_budget_layer *l, bool neuron_selection) {
    int64_t n = 0;
    for (int64_t i = 0; i < l->neurons; i++)
        if (row_is_candidate(l, i, neuron_selection))
            for (int64_t k = i * l->fan_in; k < (i + 1) * l->fan_in; k++) n += is_nonzero(l, k);
    return n;
}

/* I_l = H_l * mean |w| over the non-zero weights of neurons with positive entropy
 * (eq. 13: zero-entropy neurons are left out whether or not they are candidates);
 * 0 when there are none. */
static double irrelevance(const nep_budget_layer *l) {
    double sum = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < l->neurons; i++)
        if (row_is_candidate(l, i, true))
            for (int64_t k = i * l->fan_in; k < (i + 1) * l->fan_in; k++)
                if (is_nonzero(l, k)) {
                    sum += fabs((double)l->w[k]);
                    n++;
                }
    return n ? l->entropy * sum / (double)n : 0;
}

/* Splits `total` over the layers in pool by softmax(R) (eq. 15), in integers that add up
 * to total: floors first, then one more to the largest remainders (lower index first). */
static void softmax_split(const double *R, const bool *pool, int n, int64_t total, int64_t *out,
                          double *frac) {
    double mx = -INFINITY, z = 0;
    for (int l = 0; l < n; l++)
        if (pool[l] && R[l] > mx) mx = R[l];
    for (int l = 0; l < n; l++) z += pool[l] ? exp(R[l] - mx) : 0;
    int64_t given = 0;
    for (int l = 0; l < n; l++) {
        out[l] = 0;
        frac[l] = -1;
        if (!pool[l]) continue;
        double share = (double)total * exp(R[l] - mx) / z;
        out[l] = (int64_t)floor(share);
        frac[l] = share - (double)out[l];
        given += out[l];
    }
    for (int64_t left = total - given; left > 0; left--) {
        int best = -1;
        for (int l = 0; l < n; l++)
            if (pool[l] && frac[l] >= 0 && (best < 0 || frac[l] > frac[best])) best = l;
        if (best < 0) break;
        out[best]++;
        frac[best] = -1; /* one extra at most per layer */
    }
}

void nep_budget_shares(const nep_budget_layer *layers, int n, const nep_budget_opts *o,
                       int64_t *out, int64_t *budget) {
    double *I = calloc((size_t)n + 1, sizeof *I), *R = calloc((size_t)n + 1, sizeof *R);
    double *frac = calloc((size_t)n + 1, sizeof *frac);
    int64_t *cap = calloc((size_t)n + 1, sizeof *cap), *split = calloc((size_t)n + 1, sizeof *split);
    bool *pool = calloc((size_t)n + 1, sizeof *pool);
    int64_t nonzero = 0;
    if (budget) *budget = 0;
    for (int l = 0; l < n; l++) out[l] = 0;
    if (!I || !R || !frac || !cap || !split || !pool) goto done;
    double sum_I = 0;
    for (int l = 0; l < n; l++) {
        out[l] = 0;
        int64_t nz = count_nonzero(&layers[l]);
        pool[l] = layers[l].entropy > 0 && nz > 0; /* step 1: active layers */
        if (!pool[l]) continue;
        nonzero += nz;
        cap[l] = nep_budget_candidates(&layers[l], o->neuron_selection);
        I[l] = irrelevance(&layers[l]);
        sum_I += I[l];
    }
    const int64_t B = (int64_t)floor(o->zeta * (double)nonzero); /* step 2, eq. 16 */
    for (int l = 0; l < n; l++) R[l] = pool[l] && I[l] > 0 ? sum_I / I[l] : 0; /* eq. 14 */
    /* Steps 5-6: shares, then cap the layers that cannot take theirs and redistribute
     * what is left over the others, until every share fits. */
    int64_t left = B;
    for (;;) {
        softmax_split(R, pool, n, left, split, frac);
        bool capped = false;
        for (int l = 0; l < n; l++)
            if (pool[l] && split[l] > cap[l]) {
                out[l] = cap[l];
                left -= cap[l];
                pool[l] = false;
                capped = true;
            }
        if (!capped) {
            for (int l = 0; l < n; l++)
                if (pool[l]) out[l] = split[l];
            break;
        }
    }
    if (budget) *budget = B;
done:
    free(I), free(R), free(frac), free(cap), free(split), free(pool);
}

typedef struct scored {
    double score;
    int64_t index;
    int layer;
} scored;

static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Appends the layer's candidates with their scores to v. */
static int64_t gather(const nep_budget_layer *l, int layer, bool neuron_selection,
                      const double *scale, scored *v) {
    const int64_t per_row = l->scale_groups > 1 ? l->neurons / l->scale_groups : l->neurons;
    int64_t n = 0;
    for (int64_t i = 0; i < l->neurons; i++) {
        if (!row_is_candidate(l, i, neuron_selection)) continue;
        const double *s = scale ? scale + (i / per_row) * l->fan_in : NULL;
        for (int64_t j = 0; j < l->fan_in; j++) {
            int64_t k = i * l->fan_in + j;
            if (is_nonzero(l, k)) v[n++] = (scored){fabs((double)l->w[k]) * (s ? s[j] : 1), k, layer};
        }
    }
    return n;
}

int64_t nep_prune_layer(const nep_budget_layer *l, bool neuron_selection, const double *scale,
                        int64_t count, uint8_t *mask) {
    if (count <= 0) return 0;
    scored *v = malloc(sizeof *v * (size_t)(l->neurons * l->fan_in + 1));
    if (!v) return -1;
    int64_t n = gather(l, 0, neuron_selection, scale, v);
    qsort(v, (size_t)n, sizeof *v, cmp_scored);
    if (count > n) count = n;
    for (int64_t k = 0; k < count; k++) mask[v[k].index] = 0;
    free(v);
    return count;
}

int64_t nep_prune_global(const nep_budget_layer *layers, int n, double zeta,
                         const double *const *scales, uint8_t *const *masks, int64_t *out) {
    int64_t total = 0;
    for (int l = 0; l < n; l++) total += layers[l].neurons * layers[l].fan_in;
    scored *v = malloc(sizeof *v * (size_t)(total + 1));
    if (!v) return -1;
    int64_t m = 0;
    for (int l = 0; l < n; l++) {
        out[l] = 0;
        m += gather(&layers[l], l, false, scales ? scales[l] : NULL, v + m);
    }
    qsort(v, (size_t)m, sizeof *v, cmp_scored);
    const int64_t B = (int64_t)floor(zeta * (double)m);
    for (int64_t k = 0; k < B; k++) {
        masks[v[k].layer][v[k].index] = 0;
        out[v[k].layer]++;
    }
    free(v);
    return B;
}
