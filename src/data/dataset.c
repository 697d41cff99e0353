/* Data set ownership, train/validation splits and normalization statistics. */
#include "nepenthe/data.h"
#include "nepenthe/image_folder.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t sample_bytes(const nep_dataset *d) { return (size_t)d->c * d->h * d->w; }

void nep_dataset_free(nep_dataset *d) {
    if (!d) return;
    free(d->images);
    free(d->labels);
    free(d->rows);
    nep_image_source_release(d->source);
    *d = (nep_dataset){0};
}

/* An empty data set shaped like `like` with room for n samples (a streamed one: n rows
 * of like's source, which it then holds too). */
static nep_status dataset_alloc(const nep_dataset *like, int64_t n, nep_dataset *d,
                                nep_err *err) {
    *d = (nep_dataset){.n = n, .c = like->c, .h = like->h, .w = like->w,
                       .classes = like->classes};
    /* +1: a legal empty validation set must not look like a failed malloc(0). */
    if (like->source) {
        d->rows = malloc(sizeof *d->rows * (size_t)n + 1);
        if (d->rows) {
            d->source = like->source;
            d->source->refs++;
            return NEP_OK;
        }
    } else {
        d->images = malloc((size_t)n * sample_bytes(like) + 1);
        d->labels = malloc((size_t)n + 1);
        if (d->images && d->labels) return NEP_OK;
    }
    nep_dataset_free(d);
    return nep_fail(err, NEP_ERR_NOMEM, "split: cannot allocate %lld samples", (long long)n);
}

static void copy_sample(const nep_dataset *src, int64_t i, nep_dataset *dst, int64_t j) {
    if (src->source) {
        dst->rows[j] = src->rows[i];
        return;
    }
    size_t s = sample_bytes(src);
    memcpy(dst->images + (size_t)j * s, src->images + (size_t)i * s, s);
    dst->labels[j] = src->labels[i];
}

nep_status nep_split_members(int64_t n, int64_t n_val, uint64_t seed, uint8_t **in_val, nep_err *err) {
    *in_val = NULL;
    if (n_val < 0 || n_val >= n)
        return nep_fail(err, NEP_ERR_ARG, "split: %lld validation samples out of %lld (must be 0 <= n_val < n)",
                        (long long)n_val, (long long)n);
    if (n > (int64_t)UINT32_MAX)
        return nep_fail(err, NEP_ERR_ARG, "split: %lld samples is too many", (long long)n);
    uint32_t *perm = malloc((size_t)n * sizeof *perm);
    uint8_t *mark = calloc((size_t)n, 1);
    if (!perm || !mark) {
        free(perm), free(mark);
        return nep_fail(err, NEP_ERR_NOMEM, "split: cannot allocate %lld indices", (long long)n);
    }
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    nep_rng_shuffle_u32(&rng, perm, (size_t)n);
    for (int64_t i = 0; i < n_val; i++) mark[perm[i]] = 1;
    free(perm);
    *in_val = mark;
    return NEP_OK;
}

/* Both halves keep src's order (scanning the marks of nep_split_members sorts them by
 * index without a sort) and src's class count, so the model's output width does not
 * depend on which classes landed in val. */
nep_status nep_dataset_split(const nep_dataset *src, int64_t n_val, uint64_t seed,
                             nep_dataset *train, nep_dataset *val, nep_err *err) {
    const int64_t n = src->n;
    uint8_t *in_val;
    nep_dataset tr = {0}, va = {0};
    nep_status s = nep_split_members(n, n_val, seed, &in_val, err);
    if (s || (s = dataset_alloc(src, n - n_val, &tr, err)) || (s = dataset_alloc(src, n_val, &va, err)))
        goto done;
    int64_t it = 0, iv = 0;
    for (int64_t i = 0; i < n; i++) {
        if (in_val[i])
            copy_sample(src, i, &va, iv++);
        else
            copy_sample(src, i, &tr, it++);
    }
done:
    free(in_val);
    if (s) {
        nep_dataset_free(&tr);
        nep_dataset_free(&va);
    }
    *train = tr;
    *val = va;
    return s;
}

/* A histogram of byte values makes the statistics exact up to the final divisions
 * and independent of summation order. An empty data set gets mean 0, std 1. */
void nep_normalize_compute(const nep_dataset *d, nep_normalize *out) {
    assert(d->c >= 1 && d->c <= NEP_MAX_CHANNELS && (d->images || d->n == 0));
    int64_t hist[NEP_MAX_CHANNELS][256] = {{0}};
    size_t hw = (size_t)d->h * d->w;
    for (int ch = 0; ch < d->c; ch++)
        for (int64_t i = 0; i < d->n; i++) {
            const uint8_t *p = d->images + ((size_t)i * d->c + ch) * hw;
            for (size_t j = 0; j < hw; j++) hist[ch][p[j]]++;
        }
    nep_normalize_from_histograms(d->c, (const int64_t(*)[256])hist, out);
}

void nep_normalize_from_histograms(int c, const int64_t (*hist)[256], nep_normalize *out) {
    assert(c >= 1 && c <= NEP_MAX_CHANNELS);
    *out = (nep_normalize){.c = c};
    for (int ch = 0; ch < c; ch++) {
        double count = 0, sum = 0, var = 0;
        for (int k = 0; k < 256; k++) count += (double)hist[ch][k], sum += (double)hist[ch][k] * k;
        double mean = count > 0 ? sum / 255.0 / count : 0;
        for (int k = 0; k < 256; k++) {
            double dv = k / 255.0 - mean;
            var += (double)hist[ch][k] * dv * dv;
        }
        out->mean[ch] = (float)mean;
        out->std[ch] = count > 0 ? (float)sqrt(var / count) : 1.0f;
    }
}
