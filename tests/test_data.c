/* IDX reading, Fashion-MNIST location, splits, normalization and the batch loader.
 * Every file read here is written by the test itself, except the optional check of
 * the installed Fashion-MNIST. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nepenthe/data.h"
#include "testutil.h"

/* --- helpers ------------------------------------------------------------------- */

enum { N = 5, ROWS = 3, COLS = 4 };
static const uint8_t LABELS[N] = {2, 0, 4, 1, 2};

static uint8_t pixel(int i) { return (uint8_t)(i * 37 + 11); }

/* An IDX file: magic, dims (big-endian), then nbytes of body. */
static void write_idx(const char *path, bool gz, uint32_t magic, const uint32_t *dims,
                      int ndims, const uint8_t *body, size_t nbytes) {
    size_t hdr = 4 + 4 * (size_t)ndims;
    uint8_t *buf = malloc(hdr + nbytes + 1);
    uint32_t words[4] = {magic};
    for (int i = 0; i < ndims; i++) words[1 + i] = dims[i];
    for (size_t w = 0; w < 1 + (size_t)ndims; w++)
        for (int b = 0; b < 4; b++) buf[4 * w + b] = (uint8_t)(words[w] >> (24 - 8 * b));
    if (nbytes) memcpy(buf + hdr, body, nbytes);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, buf, (unsigned)(hdr + nbytes)), (int)(hdr + nbytes));
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        assert_int_equal(nep_test_write_file(path, buf, hdr + nbytes), 0);
    }
    free(buf);
}

/* Images of n x ROWS x COLS with pixel(i) at flat index i, of which only `have`
 * pixel bytes are written (to craft truncated files). */
static void write_images(const char *path, bool gz, uint32_t n, size_t have) {
    uint8_t px[N * ROWS * COLS];
    for (int i = 0; i < N * ROWS * COLS; i++) px[i] = pixel(i);
    write_idx(path, gz, 0x803, (uint32_t[]){n, ROWS, COLS}, 3, px, have);
}

static void write_labels(const char *path, bool gz, uint32_t n) {
    write_idx(path, gz, 0x801, (uint32_t[]){n}, 1, LABELS, n);
}

static void check_small(const nep_dataset *d) {
    assert_int_equal(d->n, N);
    assert_int_equal(d->c, 1);
    assert_int_equal(d->h, ROWS);
    assert_int_equal(d->w, COLS);
    assert_int_equal(d->classes, 5);
    for (int i = 0; i < N * ROWS * COLS; i++) assert_int_equal(d->images[i], pixel(i));
    assert_memory_equal(d->labels, LABELS, N);
}

/* The call failed with status `want`, and its message contains `needle`. */

/* Loads img/lbl from dir, which must fail with `want` and a message naming `needle`
 * (relative to dir) and containing `also`; the output must come back empty. */
static void expect_load_fail(const char *dir, const char *img, const char *lbl,
                             nep_status want, const char *needle, const char *also) {
    char *ip = nep_test_path(dir, img), *lp = nep_test_path(dir, lbl);
    char *np = nep_test_path(dir, needle);
    nep_err err = {0};
    nep_dataset d = {.n = 99};
    nep_test_expect_fail(nep_idx_load(ip, lp, &d, &err), &err, want, np, NULL);
    if (also) nep_test_expect_fail(want, &err, want, also, NULL);
    assert_null(d.images);
    assert_null(d.labels);
    assert_int_equal(d.n, 0);
    free(ip);
    free(lp);
    free(np);
}

/* --- IDX ------------------------------------------------------------------------ */

static void load_small(bool gz_images, bool gz_labels) {
    char *dir = nep_test_tmpdir();
    char *ip = nep_test_path(dir, "img"), *lp = nep_test_path(dir, "lbl");
    write_images(ip, gz_images, N, N * ROWS * COLS);
    write_labels(lp, gz_labels, N);
    nep_err err = {0};
    nep_dataset d;
    assert_int_equal(nep_idx_load(ip, lp, &d, &err), NEP_OK);
    check_small(&d);
    nep_dataset_free(&d);
    assert_null(d.images);
    free(ip);
    free(lp);
    nep_test_rmtree(dir);
}

static void test_idx_plain(void **state) { load_small(false, false); }
static void test_idx_gzip(void **state) { load_small(true, true); }
static void test_idx_mixed(void **state) { load_small(true, false); }

static void test_idx_truncated_plain(void **state) {
    char *dir = nep_test_tmpdir();
    char *ip = nep_test_path(dir, "img"), *lp = nep_test_path(dir, "lbl");
    write_images(ip, false, N, 50);
    write_labels(lp, false, N);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img: truncated",
                     "header says 5 images of 3x4 but the file holds 50 bytes of pixels");
    write_images(ip, false, N, N * ROWS * COLS);
    write_labels(lp, false, N);
    /* A label file shorter than its header. */
    write_idx(lp, false, 0x801, (uint32_t[]){N}, 1, LABELS, 3);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "lbl: truncated",
                     "header says 5 labels but the file holds 3 bytes of labels");
    /* Shorter than the header itself. */
    assert_int_equal(nep_test_write_file(ip, "\0\0\x08", 3), 0);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img: truncated", "IDX header");
    write_idx(ip, false, 0x803, (uint32_t[]){N, ROWS}, 2, NULL, 0);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img: truncated", "header ends");
    free(ip);
    free(lp);
    nep_test_rmtree(dir);
}

/* Rewrites path keeping only its first `keep` bytes (or all but -keep when negative). */
static void cut_file(const char *path, long keep) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t k = keep >= 0 ? (size_t)keep : n - (size_t)-keep;
    assert_true(k < n);
    assert_int_equal(nep_test_write_file(path, buf, k), 0);
}

static void test_idx_truncated_gzip(void **state) {
    char *dir = nep_test_tmpdir();
    char *ip = nep_test_path(dir, "img"), *lp = nep_test_path(dir, "lbl");
    write_labels(lp, false, N);
    write_images(ip, true, N, N * ROWS * COLS);
    cut_file(ip, 30); /* the compressed stream stops inside the data */
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img: truncated", NULL);
    write_images(ip, true, N, N * ROWS * COLS);
    cut_file(ip, -4); /* every byte of data, but the gzip trailer's length is gone */
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img: truncated", "gzip");
    write_images(ip, true, N, N * ROWS * COLS);
    FILE *f = fopen(ip, "r+b"); /* corrupt the deflate data itself */
    assert_non_null(f);
    fseek(f, 12, SEEK_SET);
    fputc(0xff, f);
    fputc(0xff, f);
    fclose(f);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img", NULL);
    free(ip);
    free(lp);
    nep_test_rmtree(dir);
}

static void test_idx_bad_magic(void **state) {
    char *dir = nep_test_tmpdir();
    char *ip = nep_test_path(dir, "img"), *lp = nep_test_path(dir, "lbl");
    uint8_t px[N * ROWS * COLS] = {0};
    write_idx(ip, false, 0x12345678, (uint32_t[]){N, ROWS, COLS}, 3, px, sizeof px);
    write_labels(lp, false, N);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img: bad magic 0x12345678", NULL);
    /* Right dimension count, wrong element type (0x0D = float). */
    write_idx(ip, true, 0x0D03, (uint32_t[]){N, ROWS, COLS}, 3, px, sizeof px);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img: bad magic 0x00000d03", NULL);
    free(ip);
    free(lp);
    nep_test_rmtree(dir);
}

static void test_idx_wrong_ndims(void **state) {
    char *dir = nep_test_tmpdir();
    char *ip = nep_test_path(dir, "img"), *lp = nep_test_path(dir, "lbl");
    uint8_t px[N * ROWS * COLS] = {0};
    write_idx(ip, false, 0x802, (uint32_t[]){N, ROWS * COLS}, 2, px, sizeof px);
    write_labels(lp, false, N);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img: IDX file with 2 dimensions",
                     "expected 3");
    /* Files passed the wrong way round. */
    write_images(ip, false, N, N * ROWS * COLS);
    expect_load_fail(dir, "lbl", "img", NEP_ERR_FORMAT, "lbl: IDX file with 1 dimensions",
                     "expected 3");
    free(ip);
    free(lp);
    nep_test_rmtree(dir);
}

static void test_idx_count_mismatch(void **state) {
    char *dir = nep_test_tmpdir();
    char *ip = nep_test_path(dir, "img"), *lp = nep_test_path(dir, "lbl");
    write_images(ip, false, N, N * ROWS * COLS);
    write_labels(lp, true, N - 1);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "lbl holds 4 labels", "holds 5 images");
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img holds 5 images", NULL);
    free(ip);
    free(lp);
    nep_test_rmtree(dir);
}

static void test_idx_missing(void **state) {
    char *dir = nep_test_tmpdir();
    char *ip = nep_test_path(dir, "img");
    write_images(ip, false, N, N * ROWS * COLS);
    expect_load_fail(dir, "nope", "img", NEP_ERR_IO, "nope: No such file", NULL);
    expect_load_fail(dir, "img", "nolabels", NEP_ERR_IO, "nolabels: No such file", NULL);
    /* A directory opens but cannot be read. */
    expect_load_fail(dir, ".", "img", NEP_ERR_IO, ".: Is a directory", NULL);
    free(ip);
    nep_test_rmtree(dir);
}

static void test_idx_absurd_header(void **state) {
    char *dir = nep_test_tmpdir();
    char *ip = nep_test_path(dir, "img"), *lp = nep_test_path(dir, "lbl");
    uint8_t px[16] = {0};
    write_labels(lp, false, N);
    write_idx(ip, false, 0x803, (uint32_t[]){0xffffffffu, 28, 28}, 3, px, sizeof px);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT,
                     "img: header says 4294967295 images of 28x28", "2 GiB");
    write_idx(ip, false, 0x803, (uint32_t[]){1, 0xffffffffu, 0xffffffffu}, 3, px, sizeof px);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img: header says 1 images", "2 GiB");
    write_idx(ip, false, 0x803, (uint32_t[]){N, 0, COLS}, 3, px, sizeof px);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img: header says 5 images of 0x4",
                     "no data");
    free(ip);
    free(lp);
    nep_test_rmtree(dir);
}

static void test_idx_trailing_data(void **state) {
    char *dir = nep_test_tmpdir();
    char *ip = nep_test_path(dir, "img"), *lp = nep_test_path(dir, "lbl");
    write_images(ip, true, N - 1, N * ROWS * COLS);
    write_labels(lp, false, N - 1);
    expect_load_fail(dir, "img", "lbl", NEP_ERR_FORMAT, "img: header says 4 images of 3x4",
                     "more data");
    free(ip);
    free(lp);
    nep_test_rmtree(dir);
}

/* --- Fashion-MNIST location --------------------------------------------------------- */

static void test_fashion_missing_dir(void **state) {
    char *dir = nep_test_tmpdir();
    char *gone = nep_test_path(dir, "no-such-dir");
    nep_err err = {0};
    nep_dataset d = {.n = 7};
    nep_test_expect_fail(nep_fashion_mnist_load(gone, true, &d, &err), &err, NEP_ERR_IO, gone, NULL);
    nep_test_expect_fail(NEP_ERR_IO, &err, NEP_ERR_IO, "install the Debian package dataset-fashion-mnist", NULL);
    nep_test_expect_fail(NEP_ERR_IO, &err, NEP_ERR_IO, "--data-dir", NULL);
    assert_int_equal(d.n, 0);
    /* A regular file where the directory should be. */
    char *file = nep_test_path(dir, "file");
    assert_int_equal(nep_test_write_file(file, "x", 1), 0);
    nep_test_expect_fail(nep_fashion_mnist_load(file, false, &d, &err), &err, NEP_ERR_IO,
                "file: not a directory", NULL);
    free(gone);
    free(file);
    nep_test_rmtree(dir);
}

static void test_fashion_missing_file(void **state) {
    char *dir = nep_test_tmpdir();
    char *ip = nep_test_path(dir, "train-images-idx3-ubyte");
    write_images(ip, false, N, N * ROWS * COLS);
    char *want = nep_test_path(dir, "train-labels-idx1-ubyte");
    nep_err err = {0};
    nep_dataset d;
    nep_test_expect_fail(nep_fashion_mnist_load(dir, true, &d, &err), &err, NEP_ERR_IO, want, NULL);
    nep_test_expect_fail(NEP_ERR_IO, &err, NEP_ERR_IO, "dataset-fashion-mnist", NULL);
    char *want2 = nep_test_path(dir, "t10k-images-idx3-ubyte");
    nep_test_expect_fail(nep_fashion_mnist_load(dir, false, &d, &err), &err, NEP_ERR_IO, want2, NULL);
    free(ip);
    free(want);
    free(want2);
    nep_test_rmtree(dir);
}

static void test_fashion_layout(void **state) {
    char *dir = nep_test_tmpdir();
    const char *names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte"};
    char *p[5];
    for (int i = 0; i < 5; i++) p[i] = nep_test_path(dir, names[i]);
    write_images(p[0], false, N, N * ROWS * COLS);
    write_labels(p[1], false, N);
    write_images(p[2], true, N, N * ROWS * COLS);
    write_labels(p[3], false, N);
    /* The plain file beside the .gz is garbage: loading proves the .gz is preferred. */
    assert_int_equal(nep_test_write_file(p[4], "junk", 4), 0);
    nep_err err = {0};
    nep_dataset d;
    assert_int_equal(nep_fashion_mnist_load(dir, true, &d, &err), NEP_OK);
    check_small(&d);
    nep_dataset_free(&d);
    assert_int_equal(nep_fashion_mnist_load(dir, false, &d, &err), NEP_OK);
    check_small(&d);
    nep_dataset_free(&d);
    for (int i = 0; i < 5; i++) free(p[i]);
    nep_test_rmtree(dir);
}

static void check_real_split(bool train, int64_t n) {
    nep_err err = {0};
    nep_dataset d;
    assert_int_equal(nep_fashion_mnist_load(NULL, train, &d, &err), NEP_OK);
    assert_int_equal(d.n, n);
    assert_int_equal(d.c, 1);
    assert_int_equal(d.h, 28);
    assert_int_equal(d.w, 28);
    assert_int_equal(d.classes, 10);
    int64_t hist[256] = {0};
    for (int64_t i = 0; i < d.n; i++) hist[d.labels[i]]++;
    for (int k = 0; k < 10; k++) assert_int_equal(hist[k], n / 10);
    if (train) { /* the statistics everyone quotes for Fashion-MNIST's training set */
        nep_normalize nm;
        nep_normalize_compute(&d, &nm);
        assert_float_equal(nm.mean[0], 0.2860, 1e-4);
        assert_float_equal(nm.std[0], 0.3530, 1e-4);
    }
    nep_dataset_free(&d);
}

static void test_fashion_real(void **state) {
    struct stat st;
    if (stat(NEP_FASHION_MNIST_DIR, &st) != 0) {
        skip();
        return;
    }
    check_real_split(false, 10000);
    check_real_split(true, 60000);
}

/* --- split and normalization ----------------------------------------------------------- */

enum { SN = 100, SC = 2, SH = 1, SW = 3 };

/* Sample i holds bytes i, i+1, ..., so each sample names itself. */
static nep_dataset make_indexed(int64_t n, int c, int h, int w) {
    size_t s = (size_t)c * h * w;
    nep_dataset d = {.n = n, .c = c, .h = h, .w = w, .classes = 0};
    d.images = malloc((size_t)n * s);
    d.labels = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) {
        for (size_t j = 0; j < s; j++) d.images[(size_t)i * s + j] = (uint8_t)(i + j);
        d.labels[i] = (uint8_t)i;
    }
    d.classes = n > 256 ? 256 : (int)n;
    return d;
}

/* Checks that part is a subsequence of src in ascending order; marks seen[]. */
static void check_part(const nep_dataset *src, const nep_dataset *part, int64_t n,
                       int *seen) {
    size_t s = (size_t)src->c * src->h * src->w;
    assert_int_equal(part->n, n);
    assert_int_equal(part->c, src->c);
    assert_int_equal(part->h, src->h);
    assert_int_equal(part->w, src->w);
    assert_int_equal(part->classes, src->classes);
    int prev = -1;
    for (int64_t i = 0; i < n; i++) {
        int id = part->labels[i];
        assert_true(id > prev);
        prev = id;
        assert_memory_equal(part->images + (size_t)i * s, src->images + (size_t)id * s, s);
        seen[id]++;
    }
}

static void test_split(void **state) {
    nep_dataset src = make_indexed(SN, SC, SH, SW);
    nep_dataset tr, va, tr2, va2;
    nep_err err = {0};
    assert_int_equal(nep_dataset_split(&src, 30, 42, &tr, &va, &err), NEP_OK);
    int seen[SN] = {0};
    check_part(&src, &tr, 70, seen);
    check_part(&src, &va, 30, seen);
    for (int i = 0; i < SN; i++) assert_int_equal(seen[i], 1); /* disjoint and complete */
    /* Same seed, same split; another seed, another split. */
    assert_int_equal(nep_dataset_split(&src, 30, 42, &tr2, &va2, &err), NEP_OK);
    assert_memory_equal(va.labels, va2.labels, 30);
    assert_memory_equal(tr.images, tr2.images, 70 * SC * SH * SW);
    nep_dataset_free(&tr2);
    nep_dataset_free(&va2);
    assert_int_equal(nep_dataset_split(&src, 30, 43, &tr2, &va2, &err), NEP_OK);
    assert_memory_not_equal(va.labels, va2.labels, 30);
    nep_dataset_free(&tr2);
    nep_dataset_free(&va2);
    nep_dataset_free(&tr);
    nep_dataset_free(&va);
    nep_dataset_free(&src);
}

static void test_split_edges(void **state) {
    nep_dataset src = make_indexed(SN, SC, SH, SW);
    nep_dataset tr, va;
    nep_err err = {0};
    assert_int_equal(nep_dataset_split(&src, 0, 1, &tr, &va, &err), NEP_OK);
    int seen[SN] = {0};
    check_part(&src, &tr, SN, seen);
    assert_int_equal(va.n, 0);
    nep_dataset_free(&tr);
    nep_dataset_free(&va);
    assert_int_equal(nep_dataset_split(&src, SN - 1, 1, &tr, &va, &err), NEP_OK);
    assert_int_equal(tr.n, 1);
    nep_dataset_free(&tr);
    nep_dataset_free(&va);
    nep_test_expect_fail(nep_dataset_split(&src, SN, 1, &tr, &va, &err), &err, NEP_ERR_ARG,
                "100 validation samples out of 100", NULL);
    assert_null(tr.images);
    assert_null(va.images);
    nep_test_expect_fail(nep_dataset_split(&src, -1, 1, &tr, &va, &err), &err, NEP_ERR_ARG, "-1", NULL);
    nep_dataset_free(&src);
}

static void test_normalize(void **state) {
    /* Channel 0: 0, 1, 0.2, 0.4 -> mean 0.4, var (0.16 + 0.36 + 0.04 + 0) / 4 = 0.14.
     * Channel 1: 1, 1, 1, 0 -> mean 0.75, var (3 * 0.0625 + 0.5625) / 4 = 0.1875. */
    uint8_t px[] = {0, 255, 255, 255, /* sample 0: c0 = {0, 255}, c1 = {255, 255} */
                    51, 102, 255, 0};
    nep_dataset d = {.n = 2, .c = 2, .h = 1, .w = 2, .classes = 1, .images = px};
    nep_normalize nm;
    nep_normalize_compute(&d, &nm);
    assert_int_equal(nm.c, 2);
    assert_float_equal(nm.mean[0], 0.4, 1e-7);
    assert_float_equal(nm.std[0], sqrt(0.14), 1e-7);
    assert_float_equal(nm.mean[1], 0.75, 1e-7);
    assert_float_equal(nm.std[1], sqrt(0.1875), 1e-7);
    d.n = 0;
    nep_normalize_compute(&d, &nm);
    assert_float_equal(nm.mean[0], 0, 0);
    assert_float_equal(nm.std[1], 1, 0);
}

/* --- loader ------------------------------------------------------------------------ */

enum { LN = 103, LB = 10 };

/* Runs one epoch; ids[] gets the sample order (labels are sample indices), sizes of
 * each batch go to sizes[]; returns the batch count. */
static int run_epoch(nep_loader *l, nep_rng *rng, int *ids, int64_t *sizes, nep_real *x) {
    int32_t y[LB];
    int nb = 0, k = 0;
    nep_loader_epoch(l, rng);
    int64_t b;
    while ((b = nep_loader_next(l, x, y)) > 0) {
        sizes[nb++] = b;
        for (int64_t i = 0; i < b; i++) ids[k++] = y[i];
    }
    assert_int_equal(nep_loader_next(l, x, y), 0); /* stays at the end */
    return nb;
}

static nep_real *batch_buf(const nep_dataset *d) {
    return malloc((size_t)LB * d->c * d->h * d->w * sizeof(nep_real));
}

static void test_loader_values(void **state) {
    enum { C = 2, HW = 128 }; /* each sample holds 256 consecutive byte values */
    nep_dataset d = make_indexed(LN, C, 2, HW / 2);
    /* Stds that are not powers of two, so dividing differs from multiplying by 1/std. */
    nep_normalize nm = {.c = C, .mean = {0.5f, 0.25f}, .std = {0.3f, 0.7f}};
    nep_loader l;
    nep_err err = {0};
    assert_int_equal(nep_loader_init(&l, &d, &nm, LB, false, false, &err), NEP_OK);
    nep_real *x = batch_buf(&d);
    int32_t y[LB];
    nep_loader_epoch(&l, NULL);
    int64_t b, s = 0;
    while ((b = nep_loader_next(&l, x, y)) > 0) {
        for (int i = 0; i < b; i++, s++) {
            assert_int_equal(y[i], s);
            for (int ch = 0; ch < C; ch++)
                for (int j = 0; j < HW; j++) {
                    float p = (float)d.images[(s * C + ch) * HW + j];
                    nep_real want = (nep_real)((p * (1.0f / 255.0f) - nm.mean[ch]) / nm.std[ch]);
                    assert_true(x[(i * C + ch) * HW + j] == want);
                }
        }
    }
    assert_int_equal(s, LN);
    /* By hand: sample 0 holds bytes 0..255, channel 1 starting at byte 128. */
    nep_loader_epoch(&l, NULL);
    assert_int_equal(nep_loader_next(&l, x, y), LB);
    assert_float_equal(x[0], -0.5 / 0.3, 1e-6);
    assert_float_equal(x[HW + 3], (131.0 / 255 - 0.25) / 0.7, 1e-6);
    nep_loader_free(&l);
    /* No normalization: pixels scaled to [0, 1]. */
    assert_int_equal(nep_loader_init(&l, &d, NULL, LB, false, false, &err), NEP_OK);
    assert_int_equal(nep_loader_next(&l, x, y), LB); /* works before the first epoch */
    assert_true(x[C * HW * 9 + 5] == (nep_real)(14.0f * (1.0f / 255.0f)));
    nep_loader_free(&l);
    free(x);
    nep_dataset_free(&d);
}

static void test_loader_shuffle(void **state) {
    nep_dataset d = make_indexed(LN, 1, 2, 2);
    nep_loader l;
    nep_err err = {0};
    assert_int_equal(nep_loader_init(&l, &d, NULL, LB, true, false, &err), NEP_OK);
    assert_int_equal(nep_loader_batches(&l), 11);
    nep_rng rng;
    nep_rng_seed(&rng, 7);
    nep_real *x = batch_buf(&d);
    int ids[2][LN];
    int64_t sizes[16];
    for (int e = 0; e < 2; e++) {
        assert_int_equal(run_epoch(&l, &rng, ids[e], sizes, x), 11);
        for (int b = 0; b < 10; b++) assert_int_equal(sizes[b], LB);
        assert_int_equal(sizes[10], 3);
        int seen[LN] = {0};
        int identity = 1;
        for (int i = 0; i < LN; i++) {
            seen[ids[e][i]]++;
            identity &= ids[e][i] == i;
        }
        for (int i = 0; i < LN; i++) assert_int_equal(seen[i], 1);
        assert_false(identity);
    }
    assert_memory_not_equal(ids[0], ids[1], sizeof ids[0]);
    nep_loader_free(&l);
    free(x);
    nep_dataset_free(&d);
}

/* Two loaders fed equal rng states give identical batches, even if one ran an extra
 * epoch before: the order depends on the rng state alone (what --resume relies on). */
static void test_loader_reproducible(void **state) {
    nep_dataset d = make_indexed(LN, 1, 2, 2);
    nep_loader a, b;
    nep_err err = {0};
    assert_int_equal(nep_loader_init(&a, &d, NULL, LB, true, true, &err), NEP_OK);
    assert_int_equal(nep_loader_init(&b, &d, NULL, LB, true, true, &err), NEP_OK);
    nep_rng ra, rb, other;
    nep_rng_seed(&ra, 99);
    nep_rng_seed(&rb, 99);
    nep_rng_seed(&other, 5);
    nep_loader_epoch(&b, &other); /* b's order is now unrelated to a's */
    nep_real *xa = batch_buf(&d), *xb = batch_buf(&d);
    int32_t ya[LB], yb[LB];
    size_t sz = (size_t)LB * 4 * sizeof(nep_real);
    for (int e = 0; e < 3; e++) {
        nep_loader_epoch(&a, &ra);
        nep_loader_epoch(&b, &rb);
        int64_t na, nb, batches = 0;
        do {
            na = nep_loader_next(&a, xa, ya);
            nb = nep_loader_next(&b, xb, yb);
            assert_int_equal(na, nb);
            if (na) {
                assert_memory_equal(ya, yb, (size_t)na * sizeof ya[0]);
                assert_memory_equal(xa, xb, sz);
                batches++;
            }
        } while (na);
        assert_int_equal(batches, 10);
    }
    nep_loader_free(&a);
    nep_loader_free(&b);
    free(xa);
    free(xb);
    nep_dataset_free(&d);
}

static void test_loader_drop_last(void **state) {
    nep_dataset d = make_indexed(LN, 1, 1, 1);
    nep_loader l;
    nep_err err = {0};
    nep_real *x = batch_buf(&d);
    int ids[LN];
    int64_t sizes[16];
    assert_int_equal(nep_loader_init(&l, &d, NULL, LB, false, true, &err), NEP_OK);
    assert_int_equal(nep_loader_batches(&l), 10);
    assert_int_equal(run_epoch(&l, NULL, ids, sizes, x), 10);
    for (int i = 0; i < 100; i++) assert_int_equal(ids[i], i); /* in order, last 3 dropped */
    for (int b = 0; b < 10; b++) assert_int_equal(sizes[b], LB);
    nep_loader_free(&l);
    /* Batch counts at and around exact multiples. */
    const struct { int64_t n, batch; bool drop; int64_t want; } cases[] = {
        {100, 10, true, 10}, {100, 10, false, 10}, {101, 10, false, 11}, {101, 10, true, 10},
        {9, 10, true, 0},    {9, 10, false, 1},    {1, 1, true, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        d.n = cases[i].n;
        assert_int_equal(nep_loader_init(&l, &d, NULL, cases[i].batch, false, cases[i].drop, &err),
                         NEP_OK);
        assert_int_equal(nep_loader_batches(&l), cases[i].want);
        if (cases[i].batch <= LB)
            assert_int_equal(run_epoch(&l, NULL, ids, sizes, x), cases[i].want);
        nep_loader_free(&l);
    }
    d.n = LN;
    free(x);
    nep_dataset_free(&d);
}

static void test_loader_bad_args(void **state) {
    nep_dataset d = make_indexed(LN, 2, 1, 1);
    nep_loader l;
    nep_err err = {0};
    nep_test_expect_fail(nep_loader_init(&l, &d, NULL, 0, false, false, &err), &err, NEP_ERR_ARG,
                "batch size 0", NULL);
    assert_null(l.order);
    nep_normalize one = {.c = 1, .std = {1}};
    nep_test_expect_fail(nep_loader_init(&l, &d, &one, LB, false, false, &err), &err, NEP_ERR_ARG,
                "1 channels but the data set has 2", NULL);
    nep_normalize zero = {.c = 2, .std = {1, 0}};
    nep_test_expect_fail(nep_loader_init(&l, &d, &zero, LB, false, false, &err), &err, NEP_ERR_ARG,
                "channel 1", NULL);
    nep_normalize nan = {.c = 2, .mean = {NAN, 0}, .std = {1, 1}};
    nep_test_expect_fail(nep_loader_init(&l, &d, &nan, LB, false, false, &err), &err, NEP_ERR_ARG,
                "channel 0", NULL);
    nep_loader_free(&l); /* harmless after a failed init */
    nep_dataset_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_plain),
        cmocka_unit_test(test_idx_gzip),
        cmocka_unit_test(test_idx_mixed),
        cmocka_unit_test(test_idx_truncated_plain),
        cmocka_unit_test(test_idx_truncated_gzip),
        cmocka_unit_test(test_idx_bad_magic),
        cmocka_unit_test(test_idx_wrong_ndims),
        cmocka_unit_test(test_idx_count_mismatch),
        cmocka_unit_test(test_idx_missing),
        cmocka_unit_test(test_idx_absurd_header),
        cmocka_unit_test(test_idx_trailing_data),
        cmocka_unit_test(test_fashion_missing_dir),
        cmocka_unit_test(test_fashion_missing_file),
        cmocka_unit_test(test_fashion_layout),
        cmocka_unit_test(test_fashion_real),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_split_edges),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_loader_values),
        cmocka_unit_test(test_loader_shuffle),
        cmocka_unit_test(test_loader_reproducible),
        cmocka_unit_test(test_loader_drop_last),
        cmocka_unit_test(test_loader_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
