/* Streamed image data sets: a nep_dataset that names files instead of holding pixels
 * (include/nepenthe/image_folder.h, nep_image_dataset_stream). The loader decodes its
 * batches through a nep_image_stream (loader.c); this file makes such sets, frees them
 * and computes their normalization. */
#include <stdlib.h>
#include <string.h>

#include "image_decode.h"
#include "nepenthe/image_folder.h"

nep_status nep_image_dataset_stream(nep_image_list *list, const nep_image_opts *img, int threads, int depth,
                                    nep_dataset *out, nep_err *err) {
    *out = (nep_dataset){0};
    if (!list || list->n <= 0) return nep_fail(err, NEP_ERR_ARG, "streamed images: an empty list");
    if (list->n > (int64_t)UINT32_MAX)
        return nep_fail(err, NEP_ERR_ARG, "streamed images: %lld files is too many", (long long)list->n);
    if (threads < 0 || depth < 1 || depth > 1024)
        return nep_fail(err, NEP_ERR_ARG, "streamed images: %d threads and depth %d (need threads >= 0 and "
                        "1 <= depth <= 1024)", threads, depth);
    nep_image_opts o;
    NEP_TRY(nep_img_opts_check(img, &o, err));
    int h = 0, w = 0;
    if (!nep_img_fixed_size(&o, &h, &w)) { /* the first file sets the size, as the in-memory load does */
        nep_img_scratch sc = {0};
        nep_img_result r;
        const nep_status st = nep_img_decode(list->paths[0], &o, &sc, &r, err);
        if (st == NEP_OK) h = r.oh, w = r.ow;
        nep_img_scratch_free(&sc);
        NEP_TRY(st);
    }
    nep_image_source *src = malloc(sizeof *src);
    uint32_t *rows = malloc(sizeof *rows * (size_t)list->n);
    if (!src || !rows) {
        free(src), free(rows);
        return nep_fail(err, NEP_ERR_NOMEM, "streamed images: out of memory for %lld files", (long long)list->n);
    }
    *src = (nep_image_source){.list = *list, .img = o, .threads = threads, .depth = depth, .refs = 1};
    *list = (nep_image_list){0};
    for (int64_t i = 0; i < src->list.n; i++) rows[i] = (uint32_t)i;
    *out = (nep_dataset){.n = src->list.n, .c = o.channels, .h = h, .w = w, .classes = src->list.classes,
                         .source = src, .rows = rows};
    return NEP_OK;
}

void nep_image_source_release(nep_image_source *s) {
    if (!s || --s->refs > 0) return;
    nep_image_list_free(&s->list);
    free(s);
}

/* One unshuffled, unaugmented, unnormalized pass: the loader's bytes come back as
 * x / 255 in float, which maps back to the byte exactly. Streamed sets only decode
 * once; in memory it is nep_normalize_compute. */
nep_status nep_image_dataset_normalize(const nep_dataset *d, nep_normalize *out, nep_err *err) {
    if (!d->source) {
        nep_normalize_compute(d, out);
        return NEP_OK;
    }
    enum { BATCH = 64 };
    const size_t hw = (size_t)d->h * d->w;
    nep_real *x = malloc(sizeof *x * BATCH * hw * (size_t)d->c);
    int32_t y[BATCH];
    int64_t(*hist)[256] = calloc((size_t)d->c, sizeof *hist);
    nep_loader l = {0};
    nep_status st = x && hist ? nep_loader_init(&l, d, NULL, BATCH, false, false, err)
                              : nep_fail(err, NEP_ERR_NOMEM, "normalization: out of memory");
    int64_t b = 0;
    while (st == NEP_OK && (b = nep_loader_next(&l, x, y)) > 0)
        for (int64_t i = 0; i < b; i++)
            for (int ch = 0; ch < d->c; ch++) {
                const nep_real *p = x + ((size_t)i * d->c + ch) * hw;
                for (size_t j = 0; j < hw; j++) hist[ch][(int)(p[j] * 255 + 0.5f)]++;
            }
    if (st == NEP_OK && b < 0) {
        st = l.err.status;
        if (err) *err = l.err;
    }
    if (st == NEP_OK) nep_normalize_from_histograms(d->c, (const int64_t(*)[256])hist, out);
    nep_loader_free(&l);
    free(x), free(hist);
    return st;
}
