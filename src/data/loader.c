/* The batch loader: permutes sample indices and turns bytes into normalized reals.
 *
 * Normalization goes through a 256-entry table per channel, computed once in float as
 * ((float)pix * (1/255.f) - mean) / std: each pixel costs one load instead of a
 * division, and the values are the same whatever the compiler vectorizes.
 *
 * Augmentation (random crop of the zero-padded image, horizontal flip) happens on the
 * way through the table, so an augmented batch costs about what a plain one does.
 *
 * A streamed data set's bytes come from a nep_image_stream fed with the epoch's order
 * (as file indices), one batch at a time, and then take the same path: the stream only
 * replaces where a sample's bytes are. */
#include "nepenthe/data.h"
#include "nepenthe/image_folder.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LUT_SIZE 256

static void lut_fill(nep_real *lut, float mean, float std) {
    for (int p = 0; p < LUT_SIZE; p++)
        lut[p] = (nep_real)(((float)p * (1.0f / 255.0f) - mean) / std);
}

static nep_status check_norm(const nep_normalize *norm, const nep_dataset *d, nep_err *err) {
    if (norm->c != d->c)
        return nep_fail(err, NEP_ERR_ARG,
                        "loader: normalization has %d channels but the data set has %d", norm->c,
                        d->c);
    for (int ch = 0; ch < d->c; ch++)
        if (!isfinite(norm->mean[ch]) || !isfinite(norm->std[ch]) || !(norm->std[ch] > 0))
            return nep_fail(err, NEP_ERR_ARG,
                            "loader: channel %d normalization mean %g std %g (std must be "
                            "finite and positive)",
                            ch, norm->mean[ch], norm->std[ch]);
    return NEP_OK;
}

/* A streamed data set's stream and batch buffers; its shape must be the data set's. */
static nep_status stream_init(nep_loader *l, nep_err *err) {
    const nep_dataset *d = l->data;
    const nep_image_source *src = d->source;
    l->stream = calloc(1, sizeof *l->stream);
    l->bytes = malloc((size_t)l->batch * d->c * d->h * d->w);
    l->labels = malloc(sizeof *l->labels * (size_t)l->batch);
    l->files = malloc(sizeof *l->files * (size_t)(d->n ? d->n : 1));
    if (!l->stream || !l->bytes || !l->labels || !l->files)
        return nep_fail(err, NEP_ERR_NOMEM, "loader: out of memory for a streamed batch of %lld", (long long)l->batch);
    NEP_TRY(nep_image_stream_init(l->stream, &src->list, &src->img, l->batch, src->threads, src->depth, err));
    if (l->stream->c != d->c || l->stream->h != d->h || l->stream->w != d->w)
        return nep_fail(err, NEP_ERR_SHAPE, "loader: the stream decodes %dx%dx%d images, the data set holds %dx%dx%d",
                        l->stream->c, l->stream->h, l->stream->w, d->c, d->h, d->w);
    return NEP_OK;
}

/* norm may be NULL: pixels are then only scaled to [0, 1] (mean 0, std 1). The order
 * starts as 0..n-1, so a loader works before its first nep_loader_epoch. */
nep_status nep_loader_init(nep_loader *l, const nep_dataset *d, const nep_normalize *norm,
                           int64_t batch, bool shuffle, bool drop_last, nep_err *err) {
    *l = (nep_loader){0};
    if (batch <= 0)
        return nep_fail(err, NEP_ERR_ARG, "loader: batch size %lld must be positive",
                        (long long)batch);
    if (d->c < 1 || d->c > NEP_MAX_CHANNELS)
        return nep_fail(err, NEP_ERR_ARG, "loader: %d channels (at most %d)", d->c,
                        NEP_MAX_CHANNELS);
    if (d->n < 0 || d->n > (int64_t)UINT32_MAX)
        return nep_fail(err, NEP_ERR_ARG, "loader: %lld samples is too many", (long long)d->n);
    nep_normalize unit = {.c = d->c};
    for (int ch = 0; ch < d->c; ch++) unit.std[ch] = 1.0f;
    if (!norm) norm = &unit;
    NEP_TRY(check_norm(norm, d, err));
    uint32_t *order = malloc(sizeof(uint32_t) * (size_t)(d->n ? d->n : 1));
    nep_real *lut = malloc(sizeof(nep_real) * (size_t)d->c * LUT_SIZE);
    if (!order || !lut) {
        free(order);
        free(lut);
        return nep_fail(err, NEP_ERR_NOMEM, "loader: out of memory for %lld samples",
                        (long long)d->n);
    }
    *l = (nep_loader){.data = d, .norm = *norm, .batch = batch, .shuffle = shuffle,
                      .drop_last = drop_last, .order = order, .lut = lut};
    for (int64_t i = 0; i < d->n; i++) order[i] = (uint32_t)i;
    for (int ch = 0; ch < d->c; ch++) lut_fill(lut + ch * LUT_SIZE, norm->mean[ch], norm->std[ch]);
    if (!d->source) return NEP_OK;
    const nep_status st = stream_init(l, err);
    if (st != NEP_OK) nep_loader_free(l);
    return st;
}

/* The order restarts from the identity before shuffling, so an epoch's order depends
 * only on the rng state passed in: saving that state is enough to resume exactly.
 * rng may be NULL without shuffle. */
void nep_loader_epoch(nep_loader *l, nep_rng *rng) {
    int64_t n = l->data->n;
    l->pos = 0;
    for (int64_t i = 0; i < n; i++) l->order[i] = (uint32_t)i;
    if (l->shuffle) nep_rng_shuffle_u32(rng, l->order, (size_t)n);
    l->streaming = false; /* the stream starts on the new order at the first batch */
}

/* Hands the stream the rest of this epoch's order, from position l->pos (all of it,
 * but for a final partial batch that drop_last skips). */
static nep_status stream_start(nep_loader *l) {
    const nep_dataset *d = l->data;
    int64_t m = d->n - l->pos;
    if (l->drop_last) m -= m % l->batch;
    for (int64_t i = 0; i < m; i++) l->files[i] = d->rows[l->order[l->pos + i]];
    NEP_TRY(nep_image_stream_epoch(l->stream, l->files, m, &l->err));
    l->streaming = true;
    return NEP_OK;
}

/* A shuffled order defeats the hardware prefetcher; asking for the sample two ahead
 * hides most misses (128 shuffled Fashion-MNIST images: about 58 -> 33 us). */
static void prefetch(const uint8_t *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o);
}

void nep_loader_set_augment(nep_loader *l, const nep_augment *a, nep_rng *rng) {
    if (!a || (a->pad == 0 && !a->flip)) {
        l->augment = (nep_augment){0};
        l->augment_rng = NULL;
        return;
    }
    assert(a->pad >= 0 && a->pad <= NEP_AUGMENT_MAX_PAD);
    assert(rng);
    l->augment = *a;
    l->augment_rng = rng;
}

#define FLIP_CHUNK 256

/* n copies of v. */
static void fill(nep_real *dst, int n, nep_real v) {
    for (int i = 0; i < n; i++) dst[i] = v;
}

/* One sample through crop-after-zero-padding and an optional flip, into normalized
 * reals. (oy, ox) is the window's offset relative to the unpadded image, in
 * [-pad, pad]: output (y, x) reads source (y + oy, x + ox), or with the flip source
 * (y + oy, w-1-x + ox); a source position outside the image is a padded zero, whose
 * normalized value is the table's entry 0. Each row is at most three runs -- padding,
 * a table-mapped stretch of the source row, padding -- whose bounds are computed once,
 * so the inner loops carry no bounds checks. */
static void augment_sample(const uint8_t *src, nep_real *dst, int c, int h, int w,
                           const nep_real *lut, int oy, int ox, bool flip) {
    size_t hw = (size_t)h * w;
    /* Columns [x0, x1) of each output row come from the image. */
    int x0, x1;
    if (!flip) {
        x0 = -ox;
        x1 = w - ox;
    } else {
        x0 = ox;
        x1 = w + ox;
    }
    x0 = x0 < 0 ? 0 : x0 > w ? w : x0;
    x1 = x1 < 0 ? 0 : x1 > w ? w : x1;
    if (x1 < x0) x1 = x0;
    int run = x1 - x0;
    /* Source column of output column x0: increasing from there, or decreasing (flip). */
    int s0 = flip ? w - 1 - x0 + ox : x0 + ox;
    for (int ch = 0; ch < c; ch++) {
        const nep_real *t = lut + ch * LUT_SIZE;
        const nep_real z = t[0];
        const uint8_t *plane = src + ch * hw;
        nep_real *out = dst + ch * hw;
        for (int yy = 0; yy < h; yy++, out += w) {
            int sy = yy + oy;
            if (sy < 0 || sy >= h || run == 0) {
                fill(out, w, z);
                continue;
            }
            const uint8_t *row = plane + (size_t)sy * w + s0;
            fill(out, x0, z);
            nep_real *o = out + x0;
            if (!flip) {
                for (int k = 0; k < run; k++) o[k] = t[row[k]];
            } else {
                /* Reversing the bytes first keeps the table loop a forward one, which
                 * compilers unroll better than a descending read (128 flipped CIFAR
                 * images: about 230 -> 160 us; unaugmented, 123 us). */
                for (int k0 = 0; k0 < run; k0 += FLIP_CHUNK) {
                    uint8_t rev[FLIP_CHUNK];
                    int m = run - k0 < FLIP_CHUNK ? run - k0 : FLIP_CHUNK;
                    const uint8_t *r = row - k0;
                    for (int k = 0; k < m; k++) rev[k] = r[-k];
                    for (int k = 0; k < m; k++) o[k0 + k] = t[rev[k]];
                }
            }
            fill(out + x1, w - x1, z);
        }
    }
}

int64_t nep_loader_next(nep_loader *l, nep_real *x, int32_t *y) {
    int64_t lo, hi;
    return nep_loader_next_share(l, NULL, x, y, &lo, &hi);
}

int64_t nep_loader_next_share(nep_loader *l, const nep_comm *c, nep_real *x, int32_t *y, int64_t *lo,
                              int64_t *hi) {
    const nep_dataset *d = l->data;
    int64_t b = d->n - l->pos;
    if (b > l->batch) b = l->batch;
    *lo = *hi = 0;
    if (b <= 0 || (l->drop_last && b < l->batch)) return 0;
    nep_comm_share(c, b, lo, hi);
    const nep_real *lut = l->lut;
    const uint32_t *order = l->order + l->pos;
    size_t hw = (size_t)d->h * d->w, chw = hw * d->c;
    if (l->stream) {
        int64_t got;
        if ((!l->streaming && stream_start(l) != NEP_OK) ||
            nep_image_stream_next(l->stream, l->bytes, l->labels, &got, &l->err) != NEP_OK)
            return -1;
        if (got != b) {
            nep_fail(&l->err, NEP_ERR_SHAPE, "loader: the stream gave %lld images where %lld were due",
                     (long long)got, (long long)b);
            return -1;
        }
    }
    /* with augmentation every row's draws are taken, in batch order, the other ranks' too,
     * so that each rank's generator stays where one process's would be */
    for (int64_t i = l->augment_rng ? 0 : *lo; i < (l->augment_rng ? b : *hi); i++) {
        const bool mine = i >= *lo && i < *hi;
        if (mine && i + 2 < *hi && !l->stream) prefetch(d->images + order[i + 2] * chw, chw);
        const uint8_t *src = l->stream ? l->bytes + i * chw : d->images + order[i] * chw;
        nep_real *dst = mine ? x + (size_t)(i - *lo) * chw : NULL;
        if (mine) y[i - *lo] = l->stream ? l->labels[i] : d->labels[order[i]];
        if (l->augment_rng) {
            /* Drawn in this order, per sample, as nep_loader_set_augment documents. */
            nep_rng *r = l->augment_rng;
            int pad = l->augment.pad, oy = 0, ox = 0;
            if (pad > 0) {
                oy = (int)nep_rng_below(r, (uint64_t)(2 * pad + 1)) - pad;
                ox = (int)nep_rng_below(r, (uint64_t)(2 * pad + 1)) - pad;
            }
            bool flip = l->augment.flip && (nep_rng_u64(r) >> 63);
            if (mine) augment_sample(src, dst, d->c, d->h, d->w, lut, oy, ox, flip);
            continue;
        }
        for (int ch = 0; ch < d->c; ch++) {
            const nep_real *t = lut + ch * LUT_SIZE;
            for (size_t j = 0; j < hw; j++) dst[ch * hw + j] = t[src[ch * hw + j]];
        }
    }
    l->pos += b;
    return b;
}

int64_t nep_loader_batches(const nep_loader *l) {
    int64_t n = l->data->n;
    return l->drop_last ? n / l->batch : (n + l->batch - 1) / l->batch;
}

double nep_loader_wait_s(const nep_loader *l) { return l->stream ? l->stream->wait_s : 0; }

void nep_loader_free(nep_loader *l) {
    if (!l) return;
    if (l->stream) nep_image_stream_free(l->stream);
    free(l->stream), free(l->bytes), free(l->labels), free(l->files);
    free(l->order);
    free(l->lut);
    *l = (nep_loader){0};
}
