/* Streaming decoder: worker threads decode the batches of an epoch into `depth` slots
 * ahead of the consumer (include/nepenthe/image_folder.h, nep_image_stream).
 *
 * Position p of the epoch's order belongs to batch p / batch, which lives in slot
 * (p / batch) % depth. Workers claim positions in order, one file at a time (so the
 * threads share a batch instead of each taking one), but only for batches that are
 * fewer than `depth` ahead of the one the consumer reads next: that batch's slot is free.
 * A file lands at its position in its slot, so the bytes do not depend on which thread
 * decoded what. A slot is complete when all its files are done; next() waits for that,
 * copies it out, and frees the slot for batch + depth. One mutex guards the counters;
 * decoding runs outside it. */
#include "nepenthe/image_folder.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image_decode.h"

typedef struct slot {
    uint8_t *x;        /* [batch, c, h, w] */
    int32_t *y;        /* [batch] */
    int64_t done;      /* files of the slot's batch finished */
    int64_t err_pos;   /* lowest failed position in the batch, or INT64_MAX */
    nep_err err;
} slot;

struct nep_image_stream_impl {
    const nep_image_list *list;
    nep_image_opts o;
    size_t img_bytes;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* workers: a slot was freed, an epoch started, quit */
    pthread_cond_t ready_cv;  /* consumer: a file finished */
    pthread_cond_t idle_cv;   /* epoch(): no decode in flight */
    pthread_t *th;
    int nth;
    slot *slots;
    uint32_t *order;
    int64_t m, order_cap;     /* files in this epoch */
    int64_t nbatches;
    int64_t claim;            /* next position to decode */
    int64_t consumed;         /* batches handed to the consumer */
    int busy;                 /* decodes in flight */
    bool quit;
};

static int64_t batch_len(const nep_image_stream *s, int64_t b) {
    const int64_t m = s->impl->m, lo = b * s->batch;
    return m - lo < s->batch ? m - lo : s->batch;
}

static void *stream_worker(void *arg) {
    nep_image_stream *s = arg;
    struct nep_image_stream_impl *im = s->impl;
    nep_img_scratch scratch = {0};
    pthread_mutex_lock(&im->mu);
    while (!im->quit) {
        if (im->claim >= im->m || im->claim / s->batch >= im->consumed + s->depth) {
            pthread_cond_wait(&im->work_cv, &im->mu);
            continue;
        }
        const int64_t pos = im->claim++;
        slot *sl = &im->slots[(pos / s->batch) % s->depth];
        const int64_t at = pos % s->batch;
        const uint32_t file = im->order[pos];
        im->busy++;
        pthread_mutex_unlock(&im->mu);

        nep_err e = {0};
        nep_img_result r;
        const char *path = im->list->paths[file];
        nep_status st = nep_img_decode(path, &im->o, &scratch, &r, &e);
        if (!st && (r.oh != s->h || r.ow != s->w)) st = nep_img_size_error(path, &r, s->h, s->w, &e);
        if (!st) nep_img_write_chw(&r, sl->x + (size_t)at * im->img_bytes);
        else memset(sl->x + (size_t)at * im->img_bytes, 0, im->img_bytes);

        pthread_mutex_lock(&im->mu);
        sl->y[at] = im->list->labels[file];
        if (st && pos < sl->err_pos) {
            sl->err_pos = pos;
            sl->err = e;
        }
        sl->done++;
        im->busy--;
        pthread_cond_broadcast(&im->ready_cv);
        if (im->busy == 0) pthread_cond_broadcast(&im->idle_cv);
    }
    pthread_mutex_unlock(&im->mu);
    nep_img_scratch_free(&scratch);
    return NULL;
}

static void reset_slots(nep_image_stream *s) {
    for (int i = 0; i < s->depth; i++) {
        s->impl->slots[i].done = 0;
        s->impl->slots[i].err_pos = INT64_MAX;
    }
}

nep_status nep_image_stream_init(nep_image_stream *s, const nep_image_list *list,
                                 const nep_image_opts *img, int64_t batch, int threads,
                                 int depth, nep_err *err) {
    *s = (nep_image_stream){0};
    if (!list || list->n <= 0) return nep_fail(err, NEP_ERR_ARG, "image stream: an empty list");
    if (list->n > (int64_t)UINT32_MAX + 1)
        return nep_fail(err, NEP_ERR_ARG, "image stream: %lld files is more than uint32 indices "
                        "can address", (long long)list->n);
    if (batch < 1 || depth < 1 || depth > 1024)
        return nep_fail(err, NEP_ERR_ARG, "image stream: batch %lld and depth %d: need batch >= 1 "
                        "and 1 <= depth <= 1024", (long long)batch, depth);
    nep_image_opts o;
    NEP_TRY(nep_img_opts_check(img, &o, err));
    int h, w;
    if (!nep_img_fixed_size(&o, &h, &w)) { /* the first file sets the size */
        nep_img_scratch sc = {0};
        nep_img_result r;
        nep_status st = nep_img_decode(list->paths[0], &o, &sc, &r, err);
        h = st ? 0 : r.oh;
        w = st ? 0 : r.ow;
        nep_img_scratch_free(&sc);
        NEP_TRY(st);
    }
    struct nep_image_stream_impl *im = calloc(1, sizeof *im);
    if (!im) return nep_fail(err, NEP_ERR_NOMEM, "image stream: out of memory");
    im->list = list;
    im->o = o;
    im->img_bytes = (size_t)o.channels * (size_t)h * (size_t)w;
    s->c = o.channels;
    s->h = h;
    s->w = w;
    s->batch = batch;
    s->depth = depth;
    s->impl = im;
    im->slots = calloc((size_t)depth, sizeof *im->slots);
    bool ok = im->slots != NULL;
    if (ok && im->img_bytes > SIZE_MAX / (size_t)batch) ok = false;
    for (int i = 0; ok && i < depth; i++) {
        im->slots[i].x = malloc((size_t)batch * im->img_bytes);
        im->slots[i].y = malloc((size_t)batch * sizeof(int32_t));
        ok = im->slots[i].x && im->slots[i].y;
    }
    if (!ok) {
        nep_image_stream_free(s);
        return nep_fail(err, NEP_ERR_NOMEM, "image stream: cannot allocate %d batches of %lld "
                        "images of %dx%dx%d", depth, (long long)batch, o.channels, h, w);
    }
    reset_slots(s);
    pthread_mutex_init(&im->mu, NULL);
    pthread_cond_init(&im->work_cv, NULL);
    pthread_cond_init(&im->ready_cv, NULL);
    pthread_cond_init(&im->idle_cv, NULL);
    const int nt = nep_img_threads(threads, INT64_MAX);
    im->th = malloc((size_t)nt * sizeof *im->th);
    for (int t = 0; im->th && t < nt; t++) {
        if (pthread_create(&im->th[t], NULL, stream_worker, s) != 0) break;
        im->nth++;
    }
    s->threads = im->nth;
    if (im->nth == 0) {
        nep_image_stream_free(s);
        return nep_fail(err, NEP_ERR_NOMEM, "image stream: cannot start a decoding thread");
    }
    return NEP_OK;
}

nep_status nep_image_stream_epoch(nep_image_stream *s, const uint32_t *order, int64_t m,
                                  nep_err *err) {
    struct nep_image_stream_impl *im = s->impl;
    if (!im) return nep_fail(err, NEP_ERR_ARG, "image stream: not initialized");
    if (m < 0 || (m > 0 && !order))
        return nep_fail(err, NEP_ERR_ARG, "image stream: an order of %lld files", (long long)m);
    for (int64_t i = 0; i < m; i++)
        if ((int64_t)order[i] >= im->list->n)
            return nep_fail(err, NEP_ERR_ARG, "image stream: order[%lld] = %u, but the list has "
                            "%lld files", (long long)i, order[i], (long long)im->list->n);
    uint32_t *copy = im->order;
    if (m > im->order_cap) {
        copy = malloc((size_t)m * sizeof *copy);
        if (!copy) return nep_fail(err, NEP_ERR_NOMEM, "image stream: out of memory for the order");
    }
    pthread_mutex_lock(&im->mu);
    im->claim = im->m; /* no new work on the old epoch */
    while (im->busy > 0) pthread_cond_wait(&im->idle_cv, &im->mu);
    if (copy != im->order) {
        free(im->order);
        im->order = copy;
        im->order_cap = m;
    }
    if (m) memcpy(im->order, order, (size_t)m * sizeof *order);
    im->m = m;
    im->nbatches = (m + s->batch - 1) / s->batch;
    im->claim = 0;
    im->consumed = 0;
    reset_slots(s);
    pthread_cond_broadcast(&im->work_cv);
    pthread_mutex_unlock(&im->mu);
    return NEP_OK;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

nep_status nep_image_stream_next(nep_image_stream *s, uint8_t *x, int32_t *y, int64_t *b,
                                 nep_err *err) {
    struct nep_image_stream_impl *im = s->impl;
    *b = 0;
    if (!im) return nep_fail(err, NEP_ERR_ARG, "image stream: not initialized");
    pthread_mutex_lock(&im->mu);
    if (im->consumed >= im->nbatches) {
        pthread_mutex_unlock(&im->mu);
        return NEP_OK;
    }
    const int64_t bi = im->consumed, len = batch_len(s, bi);
    slot *sl = &im->slots[bi % s->depth];
    if (sl->done < len) {
        const double t0 = now_s();
        while (sl->done < len) pthread_cond_wait(&im->ready_cv, &im->mu);
        s->wait_s += now_s() - t0;
        s->waits++;
    }
    if (sl->err_pos != INT64_MAX) { /* stays failed until the next epoch */
        if (err) *err = sl->err;
        const nep_status st = sl->err.status;
        pthread_mutex_unlock(&im->mu);
        return st;
    }
    pthread_mutex_unlock(&im->mu);
    /* the slot is ours until consumed moves on: no worker writes it */
    memcpy(x, sl->x, (size_t)len * im->img_bytes);
    memcpy(y, sl->y, (size_t)len * sizeof *y);
    pthread_mutex_lock(&im->mu);
    sl->done = 0;
    sl->err_pos = INT64_MAX;
    im->consumed++;
    pthread_cond_broadcast(&im->work_cv);
    pthread_mutex_unlock(&im->mu);
    *b = len;
    return NEP_OK;
}

void nep_image_stream_free(nep_image_stream *s) {
    struct nep_image_stream_impl *im = s->impl;
    if (!im) return;
    if (im->nth > 0) {
        pthread_mutex_lock(&im->mu);
        im->quit = true;
        pthread_cond_broadcast(&im->work_cv);
        pthread_mutex_unlock(&im->mu);
        for (int t = 0; t < im->nth; t++) pthread_join(im->th[t], NULL);
    }
    if (im->th) { /* the sync objects exist once threads were attempted */
        pthread_cond_destroy(&im->work_cv);
        pthread_cond_destroy(&im->ready_cv);
        pthread_cond_destroy(&im->idle_cv);
        pthread_mutex_destroy(&im->mu);
    }
    for (int i = 0; im->slots && i < s->depth; i++) {
        free(im->slots[i].x);
        free(im->slots[i].y);
    }
    free(im->slots);
    free(im->th);
    free(im->order);
    free(im);
    *s = (nep_image_stream){0};
}
