/* Image-folder data sets against PIL and torchvision: every expected listing, label and
 * pixel comes from tests/golden/gen_image_folder.py (torchvision 0.14's make_dataset,
 * find_classes and transforms, PIL's decoders), never from our own code. Covers the
 * ImageFolder, Tiny-ImageNet and DomainBed layouts, decoding of every JPEG and PNG kind
 * the generator writes (pixels equal to Image.open(f).convert("RGB") / .convert("L")),
 * PIL's antialiased bilinear resize and torchvision's center crop, the parallel load
 * (same bytes for 1 and 3 threads, skip_bad, errors naming the first bad file), the
 * prefetching stream (batches equal to PIL's pixels for a given order), and streamed
 * data sets (the loader's batches equal the in-memory set's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nepenthe/image_folder.h"
#include "testutil.h"

static nep_safetensors golden;
static char *base; /* <golden dir>/image_folder */

static int setup(void **state) {
    (void)state;
    base = nep_test_path(nep_test_golden_dir(), "image_folder");
    return nep_test_read_golden("image_folder/expected.safetensors", &golden);
}

static int teardown(void **state) {
    (void)state;
    nep_st_free(&golden);
    free(base);
    return 0;
}

/* --- helpers --------------------------------------------------------------------------- */

typedef struct sample {
    char rel[256];
    int label, dom;
} sample;

/* The generator's "<relative path>\t<label>[\t<domain>]" lines under key; returns count. */
static int samples(const char *key, sample **out) {
    const char *text = nep_st_meta_get(&golden, key);
    if (!text) fprintf(stderr, "golden metadata %s missing\n", key);
    assert_non_null(text);
    int n = 0, cap = 64;
    sample *v = malloc((size_t)cap * sizeof *v);
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[400];
        assert_true(len < sizeof line);
        memcpy(line, p, len);
        line[len] = 0;
        char *t1 = strchr(line, '\t');
        assert_non_null(t1);
        *t1 = 0;
        if (n == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        assert_true(strlen(line) < sizeof v[n].rel);
        memcpy(v[n].rel, line, strlen(line) + 1);
        v[n].label = atoi(t1 + 1);
        char *t2 = strchr(t1 + 1, '\t');
        v[n].dom = t2 ? atoi(t2 + 1) : -1;
        n++;
        p += len + (nl ? 1 : 0);
    }
    *out = v;
    return n;
}

/* Lines of a metadata string (names), count returned; free with free(*out[0]), free(*out). */
static int meta_lines(const char *key, char ***out) {
    const char *text = nep_st_meta_get(&golden, key);
    assert_non_null(text);
    char *copy = strdup(text), **v = malloc(sizeof *v * (strlen(text) + 2));
    int n = 0;
    for (char *p = copy;; p++) {
        v[n++] = p;
        p = strchr(p, '\n');
        if (!p) break;
        *p = 0;
    }
    *out = v;
    return n;
}

static void free_lines(char **v) {
    free(v[0]);
    free(v);
}

static char *tree(const char *name) { return nep_test_path(base, name); }

/* The listing equals the generator's (torchvision's) for key: paths root/rel, labels,
 * domains when the key has them, and per-class counts. */
static void expect_listing(const nep_image_list *l, const char *root, const char *key) {
    sample *s;
    int n = samples(key, &s);
    if (l->n != n) fprintf(stderr, "%s: %lld files listed, torchvision lists %d\n", key, (long long)l->n, n);
    assert_int_equal(l->n, n);
    int64_t *counts = calloc((size_t)l->classes, sizeof *counts);
    for (int i = 0; i < n; i++) {
        char *want = nep_test_path(root, s[i].rel);
        if (strcmp(l->paths[i], want) || l->labels[i] != s[i].label)
            fprintf(stderr, "%s: file %d is %s (label %d), torchvision has %s (label %d)\n", key,
                    i, l->paths[i], l->labels[i], want, s[i].label);
        assert_string_equal(l->paths[i], want);
        assert_int_equal(l->labels[i], s[i].label);
        if (s[i].dom >= 0) {
            assert_non_null(l->domain_of);
            assert_int_equal(l->domain_of[i], s[i].dom);
        }
        assert_true(s[i].label < l->classes);
        counts[s[i].label]++;
        free(want);
    }
    for (int c = 0; c < l->classes; c++) assert_int_equal(l->class_counts[c], counts[c]);
    free(counts);
    free(s);
}

static void expect_classes(const nep_image_list *l, const char *key) {
    char **names;
    int n = meta_lines(key, &names);
    assert_int_equal(l->classes, n);
    for (int i = 0; i < n; i++) assert_string_equal(l->class_names[i], names[i]);
    free_lines(names);
}

/* Warnings collected from a callback. */
typedef struct warns {
    int n;
    char path[16][512];
    char msg[16][512];
} warns;

static void on_warn(void *ctx, const char *path, const char *message) {
    warns *w = ctx;
    if (w->n < 16) {
        snprintf(w->path[w->n], sizeof w->path[0], "%s", path);
        snprintf(w->msg[w->n], sizeof w->msg[0], "%s", message);
    }
    w->n++;
}

/* Largest |ours - PIL's| over an image: ours [c, h, w], PIL's tensor [h, w, c] or [h, w]. */
static int max_diff(const uint8_t *chw, int c, int h, int w, const nep_st_tensor *t, const char *what) {
    const bool shape_ok = t->dtype == NEP_DT_U8 && t->ndim == (c == 3 ? 3 : 2) && t->shape[0] == h &&
                          t->shape[1] == w && (c == 1 || t->shape[2] == 3);
    if (!shape_ok)
        fprintf(stderr, "%s: ours is %dx%dx%d, PIL's [%lld, %lld%s]\n", what, c, h, w,
                (long long)t->shape[0], (long long)t->shape[1], t->ndim == 3 ? ", 3" : "");
    assert_true(shape_ok);
    const uint8_t *e = t->data;
    int worst = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                int d = abs((int)chw[((size_t)ch * h + y) * w + x] - (int)e[((size_t)y * w + x) * c + ch]);
                if (d > worst) worst = d;
            }
    return worst;
}

static const nep_st_tensor *tensor_k(const char *prefix, int k, const char *name) {
    char p[64];
    snprintf(p, sizeof p, "%s%d.", prefix, k);
    return nep_test_tensor(&golden, p, name);
}

/* --- ImageFolder listing ------------------------------------------------------------- */

static void test_folder_listing(void **state) {
    (void)state;
    char *root = tree("folder");
    nep_image_list l;
    nep_err err = {0};
    warns w = {0};
    nep_test_assert_ok(nep_image_folder_scan(root, on_warn, &w, &l, &err), &err);
    expect_classes(&l, "folder.classes");
    expect_listing(&l, root, "folder.samples");
    assert_int_equal(l.skipped, atoi(nep_st_meta_get(&golden, "folder.skipped")));
    assert_int_equal(l.domains, 0);
    assert_null(l.domain_of);
    /* the empty class is kept, with one warning naming it */
    int empty = -1;
    for (int c = 0; c < l.classes; c++)
        if (!strcmp(l.class_names[c], "empty")) empty = c;
    assert_true(empty >= 0);
    assert_int_equal(l.class_counts[empty], 0);
    assert_int_equal(w.n, 1);
    char *ep = nep_test_path(root, "empty");
    assert_string_equal(w.path[0], ep);
    assert_non_null(strstr(w.msg[0], "empty"));
    free(ep);
    /* a trailing slash on root changes nothing but the spelling */
    char *slashed = malloc(strlen(root) + 2);
    sprintf(slashed, "%s/", root);
    nep_image_list l2;
    nep_test_assert_ok(nep_image_folder_scan(slashed, NULL, NULL, &l2, &err), &err);
    expect_listing(&l2, root, "folder.samples");
    nep_image_list_free(&l2);
    free(slashed);
    nep_image_list_free(&l);
    assert_null(l.paths);
    free(root);
}

/* --- decoding one file ----------------------------------------------------------------- */

static const struct {
    const char *name;
    nep_image_opts o;
} CASES[] = {
    {"rgb", {.channels = 3}},
    {"l", {.channels = 1}},
    {"r16", {.resize = 16}},
    {"r16c12", {.resize = 16, .crop = 12}},
    {"hw", {.resize_h = 9, .resize_w = 23}},
    {"up", {.resize = 45}},
    {"r7", {.resize = 7}},
    {"c22", {.crop = 22}},
    {"l_r16c12", {.channels = 1, .resize = 16, .crop = 12}},
};
enum { NCASES = sizeof CASES / sizeof *CASES };
/* The largest difference to PIL accepted: none. */
#define PIXEL_TOLERANCE 0

static void test_decode_pixels(void **state) {
    (void)state;
    char *root = tree("folder");
    sample *s;
    const int n = samples("folder.samples", &s);
    int worst[NCASES] = {0};
    for (int k = 0; k < n; k++) {
        char *path = nep_test_path(root, s[k].rel);
        for (int ci = 0; ci < NCASES; ci++) {
            uint8_t *px = NULL;
            int c, h, w;
            nep_err err = {0};
            nep_test_assert_ok(nep_image_read(path, &CASES[ci].o, &px, &c, &h, &w, &err), &err);
            char what[400];
            snprintf(what, sizeof what, "%s %s", s[k].rel, CASES[ci].name);
            int d = max_diff(px, c, h, w, tensor_k("f", k, CASES[ci].name), what);
            if (d > PIXEL_TOLERANCE) fprintf(stderr, "%s: max |ours - PIL| = %d\n", what, d);
            if (d > worst[ci]) worst[ci] = d;
            free(px);
        }
        free(path);
    }
    for (int ci = 0; ci < NCASES; ci++) {
        if (getenv("NEP_TEST_VERBOSE"))
            fprintf(stderr, "%-9s max |ours - PIL| over %d files: %d\n", CASES[ci].name, n, worst[ci]);
        assert_true(worst[ci] <= PIXEL_TOLERANCE);
    }
    free(s);
    free(root);
}

static void test_read_errors(void **state) {
    (void)state;
    uint8_t *px = (uint8_t *)1;
    int c, h, w;
    nep_err err = {0};
    char *root = tree("folder"), *missing = nep_test_path(root, "cat/nope.jpg");
    nep_test_expect_fail(nep_image_read(missing, NULL, &px, &c, &h, &w, &err), &err, NEP_ERR_IO, missing, NULL);
    assert_null(px);
    char *txt = nep_test_path(root, "cat/notes.txt");
    nep_test_expect_fail(nep_image_read(txt, NULL, &px, &c, &h, &w, &err), &err, NEP_ERR_FORMAT, txt,
                         "not a JPEG or PNG");
    char *ok = nep_test_path(root, "Zebra/q.jpg");
    nep_image_opts bad[] = {{.channels = 2}, {.resize = 8, .resize_h = 8, .resize_w = 8},
                            {.resize_h = 8}, {.crop = -1}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        nep_test_expect_fail(nep_image_read(ok, &bad[i], &px, &c, &h, &w, &err), &err, NEP_ERR_ARG, "image", NULL);
    /* an empty file and a GIF are refused by name */
    char *dir = nep_test_tmpdir(), *empty = nep_test_path(dir, "e.jpg"), *gif = nep_test_path(dir, "g.png");
    assert_int_equal(nep_test_write_file(empty, "", 0), 0);
    assert_int_equal(nep_test_write_file(gif, "GIF89a\1\0\1\0", 10), 0);
    nep_test_expect_fail(nep_image_read(empty, NULL, &px, &c, &h, &w, &err), &err, NEP_ERR_FORMAT, empty, "empty");
    nep_test_expect_fail(nep_image_read(gif, NULL, &px, &c, &h, &w, &err), &err, NEP_ERR_FORMAT, gif, "GIF");
    free(empty);
    free(gif);
    nep_test_rmtree(dir);
    free(ok);
    free(txt);
    free(missing);
    free(root);
}

/* --- the in-memory load ---------------------------------------------------------------- */

typedef struct progress {
    int64_t calls, last, total;
    bool monotone;
} progress;

static void on_progress(void *ctx, int64_t done, int64_t total) {
    progress *p = ctx;
    if (done < p->last || done > total) p->monotone = false;
    p->last = done;
    p->total = total;
    p->calls++;
}

/* d's rows equal PIL's tensors "f<k>.<name>" of the listing, labels the listing's. */
static void expect_folder_rows(const nep_dataset *d, const char *name) {
    sample *s;
    const int n = samples("folder.samples", &s);
    assert_int_equal(d->n, n);
    const size_t img = (size_t)d->c * d->h * d->w;
    for (int k = 0; k < n; k++) {
        char what[300];
        snprintf(what, sizeof what, "load row %d (%s) %s", k, s[k].rel, name);
        assert_int_equal(max_diff(d->images + k * img, d->c, d->h, d->w, tensor_k("f", k, name), what), 0);
        assert_int_equal(d->labels[k], s[k].label);
    }
    free(s);
}

static void test_load_threads(void **state) {
    (void)state;
    char *root = tree("folder");
    nep_image_list l;
    nep_err err = {0};
    nep_test_assert_ok(nep_image_folder_scan(root, NULL, NULL, &l, &err), &err);
    nep_dataset d[3];
    const int threads[3] = {1, 3, 0};
    for (int t = 0; t < 3; t++) {
        progress p = {.monotone = true};
        nep_image_load_opts lo = {.threads = threads[t], .progress = on_progress, .progress_ctx = &p};
        nep_image_opts o = {.resize = 16, .crop = 12};
        nep_test_assert_ok(nep_image_folder_load(&l, &o, &lo, &d[t], &err), &err);
        assert_int_equal(d[t].c, 3);
        assert_int_equal(d[t].h, 12);
        assert_int_equal(d[t].w, 12);
        assert_int_equal(d[t].classes, l.classes);
        expect_folder_rows(&d[t], "r16c12");
        assert_true(p.monotone);
        assert_true(p.calls >= 1);
        assert_int_equal(p.last, l.n);
        assert_int_equal(p.total, l.n);
    }
    for (int t = 1; t < 3; t++) {
        assert_memory_equal(d[0].images, d[t].images, (size_t)d[0].n * 3 * 12 * 12);
        assert_memory_equal(d[0].labels, d[t].labels, (size_t)d[0].n);
    }
    for (int t = 0; t < 3; t++) nep_dataset_free(&d[t]);
    /* grayscale, and an exact size */
    nep_image_load_opts lo = {.threads = 2};
    nep_image_opts g = {.channels = 1, .resize = 16, .crop = 12}, hw = {.resize_h = 9, .resize_w = 23};
    nep_test_assert_ok(nep_image_folder_load(&l, &g, &lo, &d[0], &err), &err);
    assert_int_equal(d[0].c, 1);
    expect_folder_rows(&d[0], "l_r16c12");
    nep_dataset_free(&d[0]);
    nep_test_assert_ok(nep_image_folder_load(&l, &hw, &lo, &d[0], &err), &err);
    expect_folder_rows(&d[0], "hw");
    nep_dataset_free(&d[0]);
    /* without a resize the sizes differ: the error names the first file of another size */
    char *first_other = nep_test_path(root, nep_st_meta_get(&golden, "folder.first_other_size"));
    for (int t = 1; t <= 3; t += 2) {
        lo.threads = t;
        nep_dataset e = {.n = 5};
        nep_test_expect_fail(nep_image_folder_load(&l, NULL, &lo, &e, &err), &err, NEP_ERR_SHAPE,
                             first_other, "resize");
        assert_null(e.images);
        assert_int_equal(e.n, 0);
    }
    free(first_other);
    nep_image_list_free(&l);
    free(root);
}

static void test_load_bad(void **state) {
    (void)state;
    char *root = tree("bad");
    nep_image_list l;
    nep_err err = {0};
    nep_test_assert_ok(nep_image_folder_scan(root, NULL, NULL, &l, &err), &err);
    expect_listing(&l, root, "bad.samples");
    char **bad;
    const int nbad = meta_lines("bad.bad", &bad);
    assert_int_equal(nbad, 4);
    char *first_bad = nep_test_path(root, bad[0]);
    for (int t = 1; t <= 3; t += 2) {
        /* without skip_bad: the first bad file in listing order, whatever the threads */
        nep_image_load_opts lo = {.threads = t};
        nep_dataset d = {0};
        nep_test_expect_fail(nep_image_folder_load(&l, NULL, &lo, &d, &err), &err, NEP_ERR_FORMAT,
                             first_bad, NULL);
        assert_null(d.images);
        /* with it: the good ones, in order, with a warning naming each bad one */
        warns w = {0};
        int64_t index[8];
        lo = (nep_image_load_opts){.threads = t, .skip_bad = true, .warn = on_warn, .warn_ctx = &w,
                                   .index = index};
        nep_image_opts crop = {.crop = 24};
        nep_test_assert_ok(nep_image_folder_load(&l, t == 1 ? NULL : &crop, &lo, &d, &err), &err);
        assert_int_equal(d.n, 2);
        assert_int_equal(w.n, nbad);
        for (int i = 0; i < nbad; i++) {
            char *p = nep_test_path(root, bad[i]);
            assert_string_equal(w.path[i], p);
            assert_non_null(strstr(w.msg[i], "skipped"));
            free(p);
        }
        assert_int_equal(index[0], 1); /* x/good.jpg */
        assert_int_equal(index[1], 4); /* y/ok.png */
        assert_int_equal(d.labels[0], 0);
        assert_int_equal(d.labels[1], 1);
        for (int k = 0; k < 2; k++)
            assert_int_equal(max_diff(d.images + k * 3 * 24 * 24, 3, 24, 24, tensor_k("bad", k, "rgb"),
                                      "bad tree good file"), 0);
        nep_dataset_free(&d);
    }
    /* each bad file alone, with the reason */
    const char *why[4] = {"PNG", "JPEG", "not a JPEG or PNG", "CRC"};
    for (int i = 0; i < nbad; i++) {
        char *p = nep_test_path(root, bad[i]);
        uint8_t *px = NULL;
        int c, h, w;
        nep_test_expect_fail(nep_image_read(p, NULL, &px, &c, &h, &w, &err), &err, NEP_ERR_FORMAT, p, why[i]);
        free(p);
    }
    free(first_bad);
    free_lines(bad);
    nep_image_list_free(&l);
    free(root);
}

/* The error names the first bad file in listing order even when a later one is found
 * last: 0.jpg fails fast, 1.jpg (claimed by the second thread meanwhile) slowly. The same
 * for a stream batch holding both. */
static void test_first_error_wins(void **state) {
    (void)state;
    char *root = tree("bad_race");
    nep_image_list l;
    nep_err err = {0};
    nep_test_assert_ok(nep_image_folder_scan(root, NULL, NULL, &l, &err), &err);
    assert_int_equal(l.n, 2);
    char *first = nep_test_path(root, "a/0.jpg");
    for (int rep = 0; rep < 3; rep++) {
        nep_image_load_opts lo = {.threads = 2};
        nep_image_opts o = {.crop = 8};
        nep_dataset d = {0};
        nep_test_expect_fail(nep_image_folder_load(&l, &o, &lo, &d, &err), &err, NEP_ERR_FORMAT, first, NULL);
        nep_image_stream st;
        nep_test_assert_ok(nep_image_stream_init(&st, &l, &o, 2, 2, 1, &err), &err);
        uint32_t order[2] = {0, 1};
        nep_test_assert_ok(nep_image_stream_epoch(&st, order, 2, &err), &err);
        uint8_t x[2 * 3 * 8 * 8];
        int32_t y[2];
        int64_t b;
        nep_test_expect_fail(nep_image_stream_next(&st, x, y, &b, &err), &err, NEP_ERR_FORMAT, first, NULL);
        nep_image_stream_free(&st);
    }
    free(first);
    nep_image_list_free(&l);
    free(root);
}

/* --- the stream ------------------------------------------------------------------------ */

/* A fixed permutation of 0..n-1 (a seeded Fisher-Yates). */
static void permutation(uint32_t *o, int n, uint64_t seed) {
    for (int i = 0; i < n; i++) o[i] = (uint32_t)i;
    for (int i = n - 1; i > 0; i--) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((seed >> 33) % (uint64_t)(i + 1));
        uint32_t t = o[i];
        o[i] = o[j];
        o[j] = t;
    }
}

/* Streams one epoch of order and checks every batch against PIL's r16c12 rows; returns
 * all bytes streamed (malloc'd) for comparisons between epochs. */
static uint8_t *stream_epoch(nep_image_stream *st, const uint32_t *order, int m, const sample *s,
                             int64_t batch) {
    nep_err err = {0};
    nep_test_assert_ok(nep_image_stream_epoch(st, order, m, &err), &err);
    const size_t img = 3 * 12 * 12;
    uint8_t *all = malloc((size_t)m * img), *x = malloc((size_t)batch * img);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    int pos = 0;
    for (;;) {
        int64_t b = -1;
        nep_test_assert_ok(nep_image_stream_next(st, x, y, &b, &err), &err);
        if (b == 0) break;
        assert_true(b == batch || pos + b == m);
        for (int i = 0; i < b; i++) {
            const int k = (int)order[pos + i];
            assert_int_equal(y[i], s[k].label);
            assert_int_equal(max_diff(x + i * img, 3, 12, 12, tensor_k("f", k, "r16c12"), "stream"), 0);
        }
        memcpy(all + (size_t)pos * img, x, (size_t)b * img);
        pos += (int)b;
    }
    assert_int_equal(pos, m);
    int64_t b = -1; /* stays at the end */
    nep_test_assert_ok(nep_image_stream_next(st, x, y, &b, &err), &err);
    assert_int_equal(b, 0);
    free(x);
    free(y);
    return all;
}

static void test_stream(void **state) {
    (void)state;
    char *root = tree("folder");
    nep_image_list l;
    nep_err err = {0};
    nep_test_assert_ok(nep_image_folder_scan(root, NULL, NULL, &l, &err), &err);
    sample *s;
    const int n = samples("folder.samples", &s);
    uint32_t *order = malloc((size_t)n * sizeof *order), *rev = malloc((size_t)n * sizeof *rev);
    permutation(order, n, 7);
    for (int i = 0; i < n; i++) rev[i] = order[n - 1 - i];
    const struct { int threads, depth; int64_t batch; } cfg[] = {{2, 2, 5}, {1, 1, 4}, {3, 4, 1}};
    uint8_t *first = NULL;
    for (size_t ci = 0; ci < sizeof cfg / sizeof *cfg; ci++) {
        nep_image_stream st;
        nep_image_opts o = {.resize = 16, .crop = 12};
        nep_test_assert_ok(nep_image_stream_init(&st, &l, &o, cfg[ci].batch, cfg[ci].threads, cfg[ci].depth, &err), &err);
        assert_int_equal(st.c, 3);
        assert_int_equal(st.h, 12);
        assert_int_equal(st.w, 12);
        assert_int_equal(st.threads, cfg[ci].threads);
        uint8_t *a = stream_epoch(&st, order, n, s, cfg[ci].batch);
        uint8_t *b = stream_epoch(&st, order, n, s, cfg[ci].batch); /* same order: same bytes */
        assert_memory_equal(a, b, (size_t)n * 3 * 12 * 12);
        if (!first) first = a;
        else {
            assert_memory_equal(first, a, (size_t)n * 3 * 12 * 12); /* whatever the threads */
            free(a);
        }
        free(b);
        /* an epoch abandoned after one batch, then another order */
        uint8_t *x = malloc((size_t)cfg[ci].batch * 3 * 12 * 12);
        int32_t y[8];
        int64_t got;
        nep_test_assert_ok(nep_image_stream_epoch(&st, order, n, &err), &err);
        nep_test_assert_ok(nep_image_stream_next(&st, x, y, &got, &err), &err);
        assert_int_equal(got, cfg[ci].batch);
        free(stream_epoch(&st, rev, n, s, cfg[ci].batch));
        /* a part of the set; then free mid-epoch */
        free(stream_epoch(&st, order + 3, 7, s, cfg[ci].batch));
        nep_test_assert_ok(nep_image_stream_epoch(&st, order, n, &err), &err);
        nep_test_assert_ok(nep_image_stream_next(&st, x, y, &got, &err), &err);
        assert_true(st.wait_s >= 0.0 && st.waits >= 0);
        free(x);
        nep_image_stream_free(&st);
        assert_null(st.impl);
    }
    free(first);
    /* bad arguments */
    nep_image_stream st;
    nep_test_expect_fail(nep_image_stream_init(&st, &l, NULL, 0, 1, 2, &err), &err, NEP_ERR_ARG, "batch", NULL);
    nep_image_opts o = {.crop = 12};
    nep_test_assert_ok(nep_image_stream_init(&st, &l, &o, 4, 1, 2, &err), &err);
    uint32_t big = (uint32_t)n;
    nep_test_expect_fail(nep_image_stream_epoch(&st, &big, 1, &err), &err, NEP_ERR_ARG, "order", NULL);
    nep_image_stream_free(&st);
    /* without a fixed size, the first file sets it and another size fails next() */
    nep_test_assert_ok(nep_image_stream_init(&st, &l, NULL, 4, 2, 2, &err), &err);
    assert_int_equal(st.h, 18);
    assert_int_equal(st.w, 16);
    uint32_t idx[3] = {0, 1, 2};
    nep_test_assert_ok(nep_image_stream_epoch(&st, idx, 3, &err), &err);
    uint8_t *x = malloc(4 * 3 * 18 * 16);
    int32_t y[4];
    int64_t got;
    char *other = nep_test_path(root, s[2].rel);
    nep_test_expect_fail(nep_image_stream_next(&st, x, y, &got, &err), &err, NEP_ERR_SHAPE, other, NULL);
    free(other);
    free(x);
    nep_image_stream_free(&st);
    free(order);
    free(rev);
    free(s);
    nep_image_list_free(&l);
    free(root);
}

static void test_stream_bad(void **state) {
    (void)state;
    char *root = tree("bad");
    nep_image_list l;
    nep_err err = {0};
    nep_test_assert_ok(nep_image_folder_scan(root, NULL, NULL, &l, &err), &err);
    char **bad;
    meta_lines("bad.bad", &bad);
    nep_image_stream st;
    nep_image_opts o = {.crop = 24};
    nep_test_assert_ok(nep_image_stream_init(&st, &l, &o, 2, 2, 2, &err), &err);
    uint32_t order[5] = {1, 2, 0, 4, 3}; /* good, trunc | corrupt, ok | notimage */
    nep_test_assert_ok(nep_image_stream_epoch(&st, order, 5, &err), &err);
    uint8_t x[2 * 3 * 24 * 24];
    int32_t y[2];
    int64_t got;
    char *p = nep_test_path(root, bad[1]); /* x/trunc.jpg */
    for (int i = 0; i < 2; i++) /* and again: it stays failed */
        nep_test_expect_fail(nep_image_stream_next(&st, x, y, &got, &err), &err, NEP_ERR_FORMAT, p, NULL);
    free(p);
    uint32_t good[2] = {4, 1}; /* a new epoch over the good files works */
    nep_test_assert_ok(nep_image_stream_epoch(&st, good, 2, &err), &err);
    nep_test_assert_ok(nep_image_stream_next(&st, x, y, &got, &err), &err);
    assert_int_equal(got, 2);
    assert_int_equal(y[0], 1);
    assert_int_equal(y[1], 0);
    assert_int_equal(max_diff(x, 3, 24, 24, tensor_k("bad", 1, "rgb"), "stream ok.png"), 0);
    assert_int_equal(max_diff(x + 3 * 24 * 24, 3, 24, 24, tensor_k("bad", 0, "rgb"), "stream good.jpg"), 0);
    nep_image_stream_free(&st);
    /* a streamed data set fails the batch holding a bad file, naming the first in its
     * order, on every pass (the in-memory load refuses the whole set up front) */
    nep_dataset d;
    nep_test_assert_ok(nep_image_dataset_stream(&l, &o, 1, 1, &d, &err), &err);
    char *first_bad = nep_test_path(root, bad[0]);
    nep_normalize n;
    nep_test_expect_fail(nep_image_dataset_normalize(&d, &n, &err), &err, NEP_ERR_FORMAT, first_bad, NULL);
    nep_loader ld;
    nep_test_assert_ok(nep_loader_init(&ld, &d, NULL, 64, false, false, &err), &err);
    nep_real *xr = malloc(sizeof *xr * 64 * 3 * 24 * 24);
    int32_t yr[64];
    for (int e = 0; e < 2; e++) {
        nep_loader_epoch(&ld, NULL);
        assert_int_equal(nep_loader_next(&ld, xr, yr), -1);
        nep_test_expect_fail(ld.err.status, &ld.err, NEP_ERR_FORMAT, first_bad, NULL);
    }
    free(first_bad);
    free(xr);
    nep_loader_free(&ld);
    nep_dataset_free(&d);
    free_lines(bad);
    nep_image_list_free(&l);
    free(root);
}

/* --- streamed data sets ------------------------------------------------------------------ */

/* Two loaders, on the in-memory and the streamed set, shuffled and augmented from equal
 * seeds: the same batches for two epochs. */
static void expect_same_batches(const nep_dataset *mem, const nep_dataset *str, int64_t batch, bool shuffle,
                                bool drop_last) {
    nep_err err = {0};
    nep_normalize norm = {.c = 3, .mean = {0.4f, 0.5f, 0.6f}, .std = {0.2f, 0.25f, 0.3f}};
    nep_loader lm, ls;
    nep_test_assert_ok(nep_loader_init(&lm, mem, &norm, batch, shuffle, drop_last, &err), &err);
    nep_test_assert_ok(nep_loader_init(&ls, str, &norm, batch, shuffle, drop_last, &err), &err);
    nep_rng rm, rs;
    nep_rng_seed(&rm, 11);
    nep_rng_seed(&rs, 11);
    const nep_augment aug = {.pad = 2, .flip = true};
    nep_loader_set_augment(&lm, &aug, &rm);
    nep_loader_set_augment(&ls, &aug, &rs);
    assert_int_equal(nep_loader_batches(&lm), nep_loader_batches(&ls));
    const size_t img = 3 * 12 * 12;
    nep_real *xm = malloc(sizeof *xm * (size_t)batch * img), *xs = malloc(sizeof *xs * (size_t)batch * img);
    int32_t ym[64], ys[64];
    assert_true(batch <= 64);
    for (int e = 0; e < 2; e++) {
        nep_loader_epoch(&lm, &rm);
        nep_loader_epoch(&ls, &rs);
        int64_t bm, bs, batches = 0;
        do {
            bm = nep_loader_next(&lm, xm, ym);
            bs = nep_loader_next(&ls, xs, ys);
            assert_int_equal(bm, bs);
            assert_memory_equal(ym, ys, sizeof *ym * (size_t)bm);
            assert_memory_equal(xm, xs, sizeof *xm * (size_t)bm * img);
            batches += bm > 0;
        } while (bm > 0);
        assert_int_equal(batches, nep_loader_batches(&ls));
    }
    assert_true(nep_loader_wait_s(&ls) >= 0 && nep_loader_wait_s(&lm) == 0);
    free(xm), free(xs);
    nep_loader_free(&lm);
    nep_loader_free(&ls);
}

static void test_streamed_dataset(void **state) {
    (void)state;
    char *root = tree("folder");
    nep_image_list l;
    nep_err err = {0};
    const nep_image_opts o = {.resize = 16, .crop = 12};
    nep_test_assert_ok(nep_image_folder_scan(root, NULL, NULL, &l, &err), &err);
    nep_dataset mem, str, mtr, mva, st_tr, st_va;
    nep_image_load_opts lo = {.threads = 2};
    nep_test_assert_ok(nep_image_folder_load(&l, &o, &lo, &mem, &err), &err);
    const int64_t files = l.n;
    nep_test_assert_ok(nep_image_dataset_stream(&l, &o, 2, 2, &str, &err), &err);
    assert_int_equal(l.n, 0); /* taken over */
    assert_null(str.images);
    assert_int_equal(str.n, files);
    assert_true(str.c == mem.c && str.h == mem.h && str.w == mem.w && str.classes == mem.classes);
    /* the normalization a streamed pass computes is the in-memory one, to the bit */
    nep_normalize nm, ns;
    nep_normalize_compute(&mem, &nm);
    nep_test_assert_ok(nep_image_dataset_normalize(&str, &ns, &err), &err);
    assert_memory_equal(&nm, &ns, sizeof nm);
    expect_same_batches(&mem, &str, 4, true, false);
    expect_same_batches(&mem, &str, 5, true, true);
    expect_same_batches(&mem, &str, 64, false, false);
    /* a split of a streamed set holds the same samples as the in-memory split; its halves
     * outlive the set they came from (the source is counted) */
    nep_test_assert_ok(nep_dataset_split(&mem, 5, 3, &mtr, &mva, &err), &err);
    nep_test_assert_ok(nep_dataset_split(&str, 5, 3, &st_tr, &st_va, &err), &err);
    nep_dataset_free(&str);
    assert_int_equal(str.n, 0);
    assert_int_equal(st_tr.source->refs, 2);
    expect_same_batches(&mtr, &st_tr, 3, true, false);
    expect_same_batches(&mva, &st_va, 2, false, false);
    nep_dataset_free(&st_va);
    expect_same_batches(&mtr, &st_tr, 7, false, true);
    nep_dataset_free(&st_tr);
    nep_dataset_free(&mtr), nep_dataset_free(&mva), nep_dataset_free(&mem);
    nep_test_expect_fail(nep_image_dataset_stream(&l, &o, 2, 2, &str, &err), &err, NEP_ERR_ARG, "empty", NULL);
    nep_test_assert_ok(nep_image_folder_scan(root, NULL, NULL, &l, &err), &err);
    nep_test_expect_fail(nep_image_dataset_stream(&l, &o, 2, 0, &str, &err), &err, NEP_ERR_ARG, "depth", NULL);
    assert_true(l.n > 0); /* kept on failure */
    nep_image_list_free(&l);
    free(root);
}

/* More classes than nep_dataset's uint8 labels hold: refused in memory, streamed with
 * int32 labels. 300 class folders of one PNG each, copied from the golden tree. */
static void test_streamed_many_classes(void **state) {
    (void)state;
    sample *s;
    const int n = samples("folder.samples", &s);
    int png = -1;
    for (int k = 0; k < n && png < 0; k++)
        if (strstr(s[k].rel, ".png")) png = k;
    assert_true(png >= 0);
    char *folder = tree("folder"), *src = nep_test_path(folder, s[png].rel);
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    static uint8_t bytes[1 << 16];
    const size_t len = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    assert_true(len > 0 && len < sizeof bytes);
    char *tmp = nep_test_tmpdir();
    enum { CLASSES = 300 };
    for (int c = 0; c < CLASSES; c++) {
        char dir[600], file[700];
        snprintf(dir, sizeof dir, "%s/c%03d", tmp, c);
        assert_int_equal(mkdir(dir, 0755), 0);
        snprintf(file, sizeof file, "%s/x.png", dir);
        assert_int_equal(nep_test_write_file(file, bytes, len), 0);
    }
    nep_image_list l;
    nep_err err = {0};
    nep_dataset d;
    const nep_image_opts o = {.resize = 16, .crop = 12};
    nep_image_load_opts lo = {.threads = 2};
    nep_test_assert_ok(nep_image_folder_scan(tmp, NULL, NULL, &l, &err), &err);
    nep_test_expect_fail(nep_image_folder_load(&l, &o, &lo, &d, &err), &err, NEP_ERR_UNSUPPORTED, "256", NULL);
    nep_test_assert_ok(nep_image_dataset_stream(&l, &o, 2, 3, &d, &err), &err);
    assert_int_equal(d.classes, CLASSES);
    nep_loader ld;
    nep_test_assert_ok(nep_loader_init(&ld, &d, NULL, 128, false, false, &err), &err);
    nep_real *x = malloc(sizeof *x * 128 * 3 * 12 * 12);
    int32_t y[128];
    int64_t b, seen = 0;
    while ((b = nep_loader_next(&ld, x, y)) > 0)
        for (int64_t i = 0; i < b; i++, seen++) assert_int_equal(y[i], seen); /* c000 .. c299 */
    assert_int_equal(b, 0);
    assert_int_equal(seen, CLASSES);
    free(x);
    nep_loader_free(&ld);
    nep_dataset_free(&d);
    nep_test_rmtree(tmp);
    free(src), free(folder), free(s);
}

/* --- Tiny-ImageNet ------------------------------------------------------------------------ */

static void test_tiny(void **state) {
    (void)state;
    char *root = tree("tiny");
    nep_err err = {0};
    const char *splits[2] = {"train", "val"};
    for (int sp = 0; sp < 2; sp++) {
        nep_image_list l;
        warns w = {0};
        nep_test_assert_ok(nep_tiny_imagenet_scan(root, splits[sp], on_warn, &w, &l, &err), &err);
        char key[64];
        snprintf(key, sizeof key, "tiny.%s.samples", splits[sp]);
        expect_classes(&l, "tiny.classes");
        expect_listing(&l, root, key);
        if (sp == 0) {
            assert_int_equal(w.n, 0);
            assert_int_equal(l.skipped, 3); /* the <wnid>_boxes.txt files */
        } else {
            assert_int_equal(w.n, 1); /* val_5.JPEG has no annotation */
            assert_non_null(strstr(w.msg[0], "val_5.JPEG"));
        }
        nep_dataset d;
        nep_image_load_opts lo = {.threads = 2};
        nep_test_assert_ok(nep_image_folder_load(&l, NULL, &lo, &d, &err), &err);
        assert_int_equal(d.h, 16);
        assert_int_equal(d.w, 16);
        assert_int_equal(d.classes, 3);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "tiny.%s", splits[sp]);
        for (int k = 0; k < d.n; k++)
            assert_int_equal(max_diff(d.images + k * 3 * 16 * 16, 3, 16, 16, tensor_k(prefix, k, "rgb"), key), 0);
        nep_dataset_free(&d);
        nep_image_list_free(&l);
    }
    nep_image_list l;
    nep_test_expect_fail(nep_tiny_imagenet_scan(root, "test", NULL, NULL, &l, &err), &err, NEP_ERR_ARG, "test", NULL);
    const struct { const char *tree, *line, *also; } bad[] = {
        {"tiny_bad_wnid", "line 3", "n99"},
        {"tiny_bad_file", "line 2", "val_9.JPEG"},
        {"tiny_bad_tab", "line 4", "tab"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *r = tree(bad[i].tree), *ann = nep_test_path(r, "val/val_annotations.txt");
        nep_test_expect_fail(nep_tiny_imagenet_scan(r, "val", NULL, NULL, &l, &err), &err, NEP_ERR_FORMAT, ann,
                             bad[i].line);
        nep_test_expect_fail(NEP_ERR_FORMAT, &err, NEP_ERR_FORMAT, bad[i].also, NULL);
        assert_null(l.paths);
        free(ann);
        /* these trees have no train/ */
        char *train = nep_test_path(r, "train");
        nep_test_expect_fail(nep_tiny_imagenet_scan(r, "train", NULL, NULL, &l, &err), &err, NEP_ERR_IO, train, NULL);
        free(train);
        free(r);
    }
    free(root);
}

/* --- DomainBed ------------------------------------------------------------------------------ */

static void test_domainbed(void **state) {
    (void)state;
    char *root = tree("domainbed");
    nep_err err = {0};
    char **domains;
    const int nd = meta_lines("db.domains", &domains);
    const struct { const char *sel, *key; int warnings; } cases[] = {
        {"cartoon, art_painting", "db.train.samples", 1}, /* art_painting lacks person */
        {"art_painting,cartoon", "db.train.samples", 1},
        {"sketch", "db.test.samples", 2},                 /* lacks horse and person */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nep_image_list l;
        warns w = {0};
        nep_test_assert_ok(nep_domainbed_scan(root, cases[i].sel, on_warn, &w, &l, &err), &err);
        expect_classes(&l, "db.classes");
        expect_listing(&l, root, cases[i].key);
        assert_int_equal(l.domains, nd);
        for (int d = 0; d < nd; d++) assert_string_equal(l.domain_names[d], domains[d]);
        assert_int_equal(w.n, cases[i].warnings);
        for (int k = 0; k < w.n && k < 16; k++) assert_non_null(strstr(w.msg[k], "has no class folder"));
        nep_image_list_free(&l);
    }
    nep_image_list l;
    nep_test_assert_ok(nep_domainbed_scan(root, NULL, NULL, NULL, &l, &err), &err); /* all domains */
    assert_int_equal(l.n, 12 + 4);
    nep_image_list_free(&l);
    nep_test_expect_fail(nep_domainbed_scan(root, "photo", NULL, NULL, &l, &err), &err, NEP_ERR_ARG, "photo",
                         "art_painting, cartoon, sketch");
    nep_test_expect_fail(nep_domainbed_scan(root, "sketch,sketch", NULL, NULL, &l, &err), &err, NEP_ERR_ARG,
                         "twice", NULL);
    nep_test_expect_fail(nep_domainbed_scan(root, "sketch,", NULL, NULL, &l, &err), &err, NEP_ERR_ARG, "empty",
                         NULL);
    free_lines(domains);
    free(root);
}

/* --- missing and malformed roots ----------------------------------------------------------- */

static void test_scan_errors(void **state) {
    (void)state;
    nep_image_list l;
    nep_err err = {0};
    char *missing = tree("no_such_dir");
    nep_test_expect_fail(nep_image_folder_scan(missing, NULL, NULL, &l, &err), &err, NEP_ERR_IO, missing, NULL);
    nep_test_expect_fail(nep_tiny_imagenet_scan(missing, "val", NULL, NULL, &l, &err), &err, NEP_ERR_IO, missing, NULL);
    nep_test_expect_fail(nep_domainbed_scan(missing, NULL, NULL, NULL, &l, &err), &err, NEP_ERR_IO, missing, NULL);
    char *file = nep_test_path(base, "expected.safetensors");
    nep_test_expect_fail(nep_image_folder_scan(file, NULL, NULL, &l, &err), &err, NEP_ERR_IO, file, "not a directory");
    /* a root without class folders, and classes without images */
    char *dir = nep_test_tmpdir(), *cls = nep_test_path(dir, "a"), *txt = nep_test_path(cls, "x.txt");
    nep_test_expect_fail(nep_image_folder_scan(dir, NULL, NULL, &l, &err), &err, NEP_ERR_FORMAT, dir, "no class");
    assert_int_equal(mkdir(cls, 0755), 0);
    assert_int_equal(nep_test_write_file(txt, "x", 1), 0);
    nep_test_expect_fail(nep_image_folder_scan(dir, NULL, NULL, &l, &err), &err, NEP_ERR_FORMAT, dir, "1 other");
    free(txt);
    free(cls);
    nep_test_rmtree(dir);
    free(file);
    free(missing);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folder_listing),
        cmocka_unit_test(test_decode_pixels),
        cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_load_threads),
        cmocka_unit_test(test_load_bad),
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_stream_bad),
        cmocka_unit_test(test_streamed_dataset),
        cmocka_unit_test(test_streamed_many_classes),
        cmocka_unit_test(test_tiny),
        cmocka_unit_test(test_domainbed),
        cmocka_unit_test(test_scan_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
