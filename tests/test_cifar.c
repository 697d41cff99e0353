/* CIFAR-10's binary format, three-channel splits and normalization, and the loader's
 * augmentation (random crop after zero padding, horizontal flip). Every CIFAR file read
 * here is written by the test itself; nothing is downloaded. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nepenthe/data.h"
#include "testutil.h"

/* --- helpers ------------------------------------------------------------------- */

enum { REC = 3073, PIX = 3072, PLANE = 1024 };

/* Pixel byte of global sample s, channel ch, flat position j within the 32x32 plane:
 * a pattern that differs per sample, squeezed and shifted per channel so that the
 * three channels have different statistics. */
static uint8_t cpix(int s, int ch, int j) {
    static const int shift[3] = {0, 20, 150};
    return (uint8_t)(((uint8_t)(s * 31 + j * 7 + j / 32) >> ch) + shift[ch]);
}
static uint8_t clabel(int s) { return (uint8_t)((s * 3 + 1) % 10); }

/* A CIFAR batch file of n records for global samples first..first+n-1, then `extra`
 * junk bytes; record `bad` (if >= 0, within the file) gets label `bad_label`. */
static void write_batch(const char *dir, const char *name, int first, int n, size_t extra,
                        int bad, int bad_label) {
    size_t bytes = (size_t)n * REC + extra;
    uint8_t *buf = malloc(bytes + 1);
    for (int r = 0; r < n; r++) {
        uint8_t *rec = buf + (size_t)r * REC;
        rec[0] = r == bad ? (uint8_t)bad_label : clabel(first + r);
        for (int ch = 0; ch < 3; ch++)
            for (int j = 0; j < PLANE; j++) rec[1 + ch * PLANE + j] = cpix(first + r, ch, j);
    }
    memset(buf + (size_t)n * REC, 0x55, extra);
    char *p = nep_test_path(dir, name);
    assert_int_equal(nep_test_write_file(p, buf, bytes), 0);
    free(p);
    free(buf);
}

/* Record counts of the five small training files (any whole number is accepted). */
static const int TRAIN_COUNTS[5] = {7, 3, 1, 5, 2};
enum { TRAIN_N = 18, TEST_N = 4 };

static char *write_cifar_dir(void) {
    char *dir = nep_test_tmpdir();
    assert_non_null(dir);
    char name[32];
    for (int i = 0, first = 0; i < 5; first += TRAIN_COUNTS[i], i++) {
        snprintf(name, sizeof name, "data_batch_%d.bin", i + 1);
        write_batch(dir, name, first, TRAIN_COUNTS[i], 0, -1, 0);
    }
    write_batch(dir, "test_batch.bin", 100, TEST_N, 0, -1, 0);
    return dir;
}

/* The call failed with status `want`, and its message contains `needle`. */

/* Loading dir's train or test split fails with `want`, naming file `name` in dir and
 * containing `also` (if set); the output comes back empty. */
static void expect_cifar_fail(const char *dir, bool train, nep_status want, const char *name,
                              const char *also) {
    nep_err err = {0};
    nep_dataset d = {.n = 99};
    char *np = nep_test_path(dir, name);
    nep_test_expect_fail(nep_cifar10_load(dir, train, &d, &err), &err, want, np, NULL);
    if (also) nep_test_expect_fail(want, &err, want, also, NULL);
    assert_null(d.images);
    assert_null(d.labels);
    assert_int_equal(d.n, 0);
    free(np);
}

/* --- reading ---------------------------------------------------------------------- */

static void check_samples(const nep_dataset *d, int n, int first) {
    assert_int_equal(d->n, n);
    assert_int_equal(d->c, 3);
    assert_int_equal(d->h, 32);
    assert_int_equal(d->w, 32);
    int maxl = 0;
    for (int s = 0; s < n; s++) {
        assert_int_equal(d->labels[s], clabel(first + s));
        if (clabel(first + s) > maxl) maxl = clabel(first + s);
        for (int ch = 0; ch < 3; ch++)
            for (int j = 0; j < PLANE; j++)
                assert_int_equal(d->images[(size_t)s * PIX + ch * PLANE + j], cpix(first + s, ch, j));
    }
    assert_int_equal(d->classes, maxl + 1);
}

static void test_cifar_train(void **state) {
    char *dir = write_cifar_dir();
    nep_dataset d;
    nep_err err = {0};
    assert_int_equal(nep_cifar10_load(dir, true, &d, &err), NEP_OK);
    check_samples(&d, TRAIN_N, 0); /* files in order 1..5, records in file order */
    assert_int_equal(d.classes, 10);
    /* By hand: sample 8 (the second file's second record), green row 1 column 2. */
    /* (8*31 + 34*7 + 1) mod 256 = 231; 231 >> 1 = 115; + 20. */
    assert_int_equal(d.images[8 * PIX + 1 * PLANE + 32 + 2], 135);
    assert_int_equal(d.labels[8], 5);
    nep_dataset_free(&d);
    assert_null(d.images);
    nep_test_rmtree(dir);
}

static void test_cifar_test_split(void **state) {
    char *dir = write_cifar_dir();
    nep_dataset d;
    nep_err err = {0};
    assert_int_equal(nep_cifar10_load(dir, false, &d, &err), NEP_OK);
    check_samples(&d, TEST_N, 100); /* labels 1, 4, 7, 0 */
    assert_int_equal(d.classes, 8);
    nep_dataset_free(&d);
    nep_test_rmtree(dir);
}

static void test_cifar_missing(void **state) {
    nep_err err = {0};
    nep_dataset d = {.n = 5};
    /* No directory given, or one that does not exist, or a file in its place. */
    nep_test_expect_fail(nep_cifar10_load(NULL, true, &d, &err), &err, NEP_ERR_ARG, "nothing is downloaded", NULL);
    assert_null(d.images);
    char *dir = write_cifar_dir();
    char *gone = nep_test_path(dir, "nope");
    nep_test_expect_fail(nep_cifar10_load(gone, true, &d, &err), &err, NEP_ERR_IO, gone, NULL);
    nep_test_expect_fail(NEP_ERR_IO, &err, NEP_ERR_IO, "cifar-10-batches-bin", NULL);
    nep_test_expect_fail(NEP_ERR_IO, &err, NEP_ERR_IO, "nothing is downloaded", NULL);
    char *file = nep_test_path(dir, "test_batch.bin");
    nep_test_expect_fail(nep_cifar10_load(file, false, &d, &err), &err, NEP_ERR_IO, "not a directory", NULL);
    /* One training file missing: all five are required. */
    char *third = nep_test_path(dir, "data_batch_3.bin");
    assert_int_equal(unlink(third), 0);
    expect_cifar_fail(dir, true, NEP_ERR_IO, "data_batch_3.bin: no such file", "--data-dir");
    expect_cifar_fail(dir, true, NEP_ERR_IO, "data_batch_3.bin", "cifar-10-batches-bin");
    /* The test split does not need it. */
    assert_int_equal(nep_cifar10_load(dir, false, &d, &err), NEP_OK);
    nep_dataset_free(&d);
    assert_int_equal(unlink(file), 0);
    expect_cifar_fail(dir, false, NEP_ERR_IO, "test_batch.bin: no such file", "nothing is downloaded");
    /* A directory where a file should be. */
    assert_int_equal(mkdir(file, 0700), 0);
    expect_cifar_fail(dir, false, NEP_ERR_IO, "test_batch.bin: not a regular file", NULL);
    assert_int_equal(rmdir(file), 0);
    free(third);
    free(file);
    free(gone);
    nep_test_rmtree(dir);
}

static void test_cifar_truncated(void **state) {
    char *dir = write_cifar_dir();
    /* A record cut short: 3 whole records and 100 bytes of a fourth. */
    write_batch(dir, "data_batch_2.bin", 7, 3, 100, -1, 0);
    expect_cifar_fail(dir, true, NEP_ERR_FORMAT, "data_batch_2.bin: truncated",
                      "9319 bytes is 3 whole records of 3073 bytes");
    expect_cifar_fail(dir, true, NEP_ERR_FORMAT, "data_batch_2.bin", "and 100 bytes over");
    /* Less than one record. */
    write_batch(dir, "test_batch.bin", 0, 0, 3072, -1, 0);
    expect_cifar_fail(dir, false, NEP_ERR_FORMAT, "test_batch.bin: truncated",
                      "is 0 whole records");
    /* Empty. */
    write_batch(dir, "test_batch.bin", 0, 0, 0, -1, 0);
    expect_cifar_fail(dir, false, NEP_ERR_FORMAT, "test_batch.bin: empty", NULL);
    /* One byte too many (a record plus a stray byte is not a record). */
    write_batch(dir, "test_batch.bin", 0, 2, 1, -1, 0);
    expect_cifar_fail(dir, false, NEP_ERR_FORMAT, "test_batch.bin", "and 1 bytes over");
    nep_test_rmtree(dir);
}

static void test_cifar_bad_label(void **state) {
    char *dir = write_cifar_dir();
    write_batch(dir, "data_batch_4.bin", 11, 5, 0, 2, 10);
    expect_cifar_fail(dir, true, NEP_ERR_FORMAT, "data_batch_4.bin: record 2 has label 10",
                      "labels are 0..9");
    write_batch(dir, "data_batch_4.bin", 11, 5, 0, 4, 255);
    expect_cifar_fail(dir, true, NEP_ERR_FORMAT, "data_batch_4.bin: record 4 has label 255",
                      NULL);
    /* Label 9 is fine. */
    write_batch(dir, "data_batch_4.bin", 11, 5, 0, 0, 9);
    nep_dataset d;
    nep_err err = {0};
    assert_int_equal(nep_cifar10_load(dir, true, &d, &err), NEP_OK);
    assert_int_equal(d.labels[11], 9);
    nep_dataset_free(&d);
    nep_test_rmtree(dir);
}

/* Splits and normalization statistics on three channels. */
static void test_cifar_split_normalize(void **state) {
    char *dir = write_cifar_dir();
    nep_dataset d, tr, va;
    nep_err err = {0};
    assert_int_equal(nep_cifar10_load(dir, true, &d, &err), NEP_OK);
    assert_int_equal(nep_dataset_split(&d, 5, 3, &tr, &va, &err), NEP_OK);
    assert_int_equal(tr.n, 13);
    assert_int_equal(va.n, 5);
    const nep_dataset *parts[2] = {&tr, &va};
    int seen[TRAIN_N] = {0};
    for (int p = 0; p < 2; p++) {
        const nep_dataset *s = parts[p];
        assert_int_equal(s->c, 3);
        assert_int_equal(s->h, 32);
        assert_int_equal(s->w, 32);
        assert_int_equal(s->classes, 10);
        for (int64_t i = 0; i < s->n; i++) {
            /* Find the sample by its pixels (each sample's are distinct). */
            int found = -1;
            for (int k = 0; k < TRAIN_N; k++)
                if (!memcmp(s->images + i * PIX, d.images + (size_t)k * PIX, PIX)) found = k;
            assert_true(found >= 0);
            assert_int_equal(s->labels[i], d.labels[found]);
            seen[found]++;
        }
    }
    for (int k = 0; k < TRAIN_N; k++) assert_int_equal(seen[k], 1);
    /* Per-channel statistics against a direct double computation. */
    nep_normalize nm;
    nep_normalize_compute(&d, &nm);
    assert_int_equal(nm.c, 3);
    for (int ch = 0; ch < 3; ch++) {
        double sum = 0, sq = 0, cnt = (double)TRAIN_N * PLANE;
        for (int s = 0; s < TRAIN_N; s++)
            for (int j = 0; j < PLANE; j++) sum += cpix(s, ch, j) / 255.0;
        double mean = sum / cnt;
        for (int s = 0; s < TRAIN_N; s++)
            for (int j = 0; j < PLANE; j++) sq += pow(cpix(s, ch, j) / 255.0 - mean, 2);
        assert_float_equal(nm.mean[ch], mean, 1e-6);
        assert_float_equal(nm.std[ch], sqrt(sq / cnt), 1e-6);
    }
    /* The three channels do differ, so a mixed-up channel would show. */
    for (int ch = 0; ch < 2; ch++) {
        assert_true(fabsf(nm.mean[ch] - nm.mean[ch + 1]) > 0.05f);
        assert_true(nm.std[ch] > nm.std[ch + 1] * 1.5f);
    }
    nep_dataset_free(&tr);
    nep_dataset_free(&va);
    nep_dataset_free(&d);
    nep_test_rmtree(dir);
}

/* --- augmentation -------------------------------------------------------------------- */

/* A data set of n random images of c x h x w, label = index. */
static nep_dataset make_random(int n, int c, int h, int w, uint64_t seed) {
    nep_dataset d = {.n = n, .c = c, .h = h, .w = w, .classes = n};
    size_t s = (size_t)c * h * w;
    d.images = malloc((size_t)n * s);
    d.labels = malloc((size_t)n);
    nep_rng r;
    nep_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)n * s; i++) d.images[i] = (uint8_t)nep_rng_below(&r, 256);
    for (int i = 0; i < n; i++) d.labels[i] = (uint8_t)i;
    return d;
}

/* The reference, written the way torchvision does it: pad the uint8 image with zeros
 * into (h+2p) x (w+2p), cut the h x w window at (top, left), mirror it if flip, then
 * normalize each pixel as (p/255 - mean) / std in float. */
static void reference(const nep_dataset *d, int s, const nep_normalize *nm, int pad, int top,
                      int left, bool flip, nep_real *out) {
    int c = d->c, h = d->h, w = d->w, ph = h + 2 * pad, pw = w + 2 * pad;
    uint8_t *padded = calloc((size_t)c * ph * pw, 1);
    uint8_t *crop = malloc((size_t)c * h * w);
    const uint8_t *img = d->images + (size_t)s * c * h * w;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                padded[((size_t)ch * ph + y + pad) * pw + x + pad] = img[((size_t)ch * h + y) * w + x];
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                crop[((size_t)ch * h + y) * w + x] = padded[((size_t)ch * ph + y + top) * pw + x + left];
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int sx = flip ? w - 1 - x : x;
                float p = (float)crop[((size_t)ch * h + y) * w + sx];
                out[((size_t)ch * h + y) * w + x] =
                    (nep_real)((p * (1.0f / 255.0f) - nm->mean[ch]) / nm->std[ch]);
            }
    free(padded);
    free(crop);
}

/* The draws nep_loader_set_augment documents: top, left (when pad > 0), flip (when
 * enabled, the top bit of one 64-bit draw). */
static void draw(nep_rng *r, const nep_augment *a, int *top, int *left, bool *flip) {
    *top = *left = 0;
    if (a->pad > 0) {
        *top = (int)nep_rng_below(r, (uint64_t)(2 * a->pad + 1));
        *left = (int)nep_rng_below(r, (uint64_t)(2 * a->pad + 1));
    }
    *flip = a->flip && (nep_rng_u64(r) >> 63);
}

/* Two epochs of a shuffled loader with augmentation a match the reference sample by
 * sample, exactly. Returns how many samples were flipped. */
static int check_against_reference(const nep_dataset *d, const nep_augment *a, int batch) {
    nep_normalize nm = {.c = d->c, .mean = {0.49f, 0.48f, 0.45f, 0.1f},
                        .std = {0.247f, 0.243f, 0.261f, 0.3f}};
    nep_loader l;
    nep_err err = {0};
    assert_int_equal(nep_loader_init(&l, d, &nm, batch, true, false, &err), NEP_OK);
    nep_rng shuf, aug, mirror;
    nep_rng_seed(&shuf, 11);
    nep_rng_seed(&aug, 12);
    mirror = aug;
    nep_loader_set_augment(&l, a, &aug);
    size_t chw = (size_t)d->c * d->h * d->w;
    nep_real *x = malloc((size_t)batch * chw * sizeof(nep_real));
    nep_real *want = malloc(chw * sizeof(nep_real));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t));
    int flips = 0, seen = 0;
    for (int e = 0; e < 2; e++) {
        nep_loader_epoch(&l, &shuf);
        int64_t b;
        while ((b = nep_loader_next(&l, x, y)) > 0) {
            for (int64_t i = 0; i < b; i++, seen++) {
                int top, left;
                bool flip;
                draw(&mirror, a, &top, &left, &flip);
                flips += flip;
                reference(d, y[i], &nm, a->pad, top, left, flip, want);
                for (size_t k = 0; k < chw; k++)
                    if (x[i * chw + k] != want[k]) {
                        fprintf(stderr, "sample %d (pad %d top %d left %d flip %d) element %zu: "
                                "%.9g, expected %.9g\n", y[i], a->pad, top, left, flip, k,
                                (double)x[i * chw + k], (double)want[k]);
                        fail();
                    }
            }
        }
    }
    assert_int_equal(seen, 2 * d->n);
    /* The loader drew exactly what the reference did, no more. */
    assert_memory_equal(&aug, &mirror, sizeof aug);
    free(x);
    free(want);
    free(y);
    nep_loader_free(&l);
    return flips;
}

static void test_augment_reference(void **state) {
    nep_dataset d = make_random(37, 3, 32, 32, 5);
    int flips = check_against_reference(&d, &(nep_augment){.pad = 4, .flip = true}, 8);
    assert_true(flips > 0 && flips < 2 * 37);
    check_against_reference(&d, &(nep_augment){.pad = 4, .flip = false}, 8);
    assert_int_equal(check_against_reference(&d, &(nep_augment){.pad = 0, .flip = true}, 5) > 0, 1);
    check_against_reference(&d, &(nep_augment){.pad = 1, .flip = true}, 37);
    nep_dataset_free(&d);
    /* Other shapes: non-square, one channel, padding as large as or larger than the
     * image (windows wholly in the padding), a single column. */
    const int shapes[][4] = {{1, 28, 28, 4}, {2, 5, 7, 3}, {3, 4, 6, 6}, {1, 3, 2, 9}, {1, 6, 1, 2}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        d = make_random(23, shapes[i][0], shapes[i][1], shapes[i][2], 100 + i);
        check_against_reference(&d, &(nep_augment){.pad = shapes[i][3], .flip = true}, 4);
        check_against_reference(&d, &(nep_augment){.pad = shapes[i][3], .flip = false}, 4);
        nep_dataset_free(&d);
    }
}

/* Reads the crop offset and flip back from the output alone: channel 0 holds 1 + row,
 * channel 1 holds 1 + column, so the centre pixel (always inside the image for
 * pad <= 15) gives the offsets and its right neighbour the direction. */
static void test_augment_distribution(void **state) {
    enum { S = 32, NS = 8100, B = 100, P = 4 };
    nep_dataset d = {.n = 1, .c = 3, .h = S, .w = S, .classes = 1};
    d.images = malloc(3 * S * S);
    d.labels = calloc(1, 1);
    for (int yy = 0; yy < S; yy++)
        for (int x = 0; x < S; x++) {
            d.images[yy * S + x] = (uint8_t)(1 + yy);
            d.images[S * S + yy * S + x] = (uint8_t)(1 + x);
            d.images[2 * S * S + yy * S + x] = 200;
        }
    /* Repeat the one sample: a data set of NS views of the same bytes. */
    nep_dataset rep = d;
    rep.n = NS;
    rep.images = malloc((size_t)NS * 3 * S * S);
    rep.labels = calloc(NS, 1);
    for (int i = 0; i < NS; i++) memcpy(rep.images + (size_t)i * 3 * S * S, d.images, 3 * S * S);
    nep_loader l;
    nep_err err = {0};
    assert_int_equal(nep_loader_init(&l, &rep, NULL, B, false, false, &err), NEP_OK);
    nep_rng rng;
    nep_rng_seed(&rng, 2024);
    nep_loader_set_augment(&l, &(nep_augment){.pad = P, .flip = true}, &rng);
    nep_real *x = malloc((size_t)B * 3 * S * S * sizeof(nep_real));
    int32_t y[B];
    int count[2 * P + 1][2 * P + 1] = {{0}}, flips = 0, n = 0;
    int64_t b;
    while ((b = nep_loader_next(&l, x, y)) > 0) {
        for (int64_t i = 0; i < b; i++, n++) {
            const nep_real *o = x + i * 3 * S * S;
            int row = (int)lrint(o[16 * S + 16] * 255) - 1;
            int col = (int)lrint(o[S * S + 16 * S + 16] * 255) - 1;
            int next = (int)lrint(o[S * S + 16 * S + 17] * 255) - 1;
            bool flip = next == col - 1;
            assert_true(flip || next == col + 1);
            int oy = row - 16, ox = flip ? col - 15 : col - 16;
            assert_true(oy >= -P && oy <= P && ox >= -P && ox <= P);
            count[oy + P][ox + P]++;
            flips += flip;
            /* Padded pixels are pixel value 0, which nothing in the image is. */
            int zeros = 0;
            for (int k = 0; k < S * S; k++) zeros += o[k] == 0;
            int hy = S - abs(oy), wx = S - abs(ox);
            assert_int_equal(zeros, S * S - hy * wx);
            assert_true(o[2 * S * S + 16 * S + 16] == (nep_real)(200.0f * (1.0f / 255.0f)));
        }
    }
    assert_int_equal(n, NS);
    /* Every one of the 81 offsets appears (each expected 100 times) and none is far off
     * uniform; flips happen about half the time (sd of the fraction about 0.0056). */
    for (int a = 0; a < 2 * P + 1; a++)
        for (int c = 0; c < 2 * P + 1; c++) {
            assert_true(count[a][c] > 0);
            assert_true(count[a][c] > 50 && count[a][c] < 150);
        }
    double frac = (double)flips / NS;
    assert_true(frac > 0.47 && frac < 0.53);
    free(x);
    nep_loader_free(&l);
    nep_dataset_free(&rep);
    nep_dataset_free(&d);
}

/* Without augmentation (never set, set to NULL, or a no-op setting) the output is the
 * plain loader's, and a no-op setting draws nothing. */
static void test_augment_disabled(void **state) {
    enum { B = 6 };
    nep_dataset d = make_random(20, 3, 32, 32, 9);
    nep_normalize nm;
    nep_normalize_compute(&d, &nm);
    nep_loader plain, l;
    nep_err err = {0};
    assert_int_equal(nep_loader_init(&plain, &d, &nm, B, false, false, &err), NEP_OK);
    assert_int_equal(nep_loader_init(&l, &d, &nm, B, false, false, &err), NEP_OK);
    assert_null(l.augment_rng);
    nep_rng rng, before;
    nep_rng_seed(&rng, 3);
    before = rng;
    size_t chw = 3 * 32 * 32, sz = B * chw * sizeof(nep_real);
    nep_real *xp = malloc(sz), *xa = malloc(sz);
    int32_t yp[B], ya[B];
    for (int mode = 0; mode < 4; mode++) {
        if (mode == 1) nep_loader_set_augment(&l, &(nep_augment){.pad = 4, .flip = true}, &rng);
        if (mode == 1) nep_loader_set_augment(&l, NULL, &rng); /* off again */
        if (mode == 2) nep_loader_set_augment(&l, &(nep_augment){0}, &rng);
        if (mode == 3) nep_loader_set_augment(&l, NULL, NULL);
        nep_loader_epoch(&plain, NULL);
        nep_loader_epoch(&l, NULL);
        int64_t bp, ba;
        do {
            bp = nep_loader_next(&plain, xp, yp);
            ba = nep_loader_next(&l, xa, ya);
            assert_int_equal(bp, ba);
            if (bp) {
                assert_memory_equal(yp, ya, (size_t)bp * sizeof yp[0]);
                assert_memory_equal(xp, xa, (size_t)bp * chw * sizeof(nep_real));
            }
        } while (bp);
        assert_memory_equal(&rng, &before, sizeof rng);
    }
    /* And turned on, it does change the images (but not the labels). */
    nep_loader_set_augment(&l, &(nep_augment){.pad = 4, .flip = true}, &rng);
    nep_loader_epoch(&plain, NULL);
    nep_loader_epoch(&l, NULL);
    assert_int_equal(nep_loader_next(&plain, xp, yp), B);
    assert_int_equal(nep_loader_next(&l, xa, ya), B);
    assert_memory_equal(yp, ya, sizeof yp);
    assert_memory_not_equal(xp, xa, sz);
    assert_memory_not_equal(&rng, &before, sizeof rng);
    nep_loader_free(&plain);
    nep_loader_free(&l);
    free(xp);
    free(xa);
    nep_dataset_free(&d);
}

/* Two loaders whose generators start from the same seed give identical batches, epoch
 * after epoch, with one generator serving both shuffling and augmentation; another
 * seed gives other batches. */
static void test_augment_reproducible(void **state) {
    enum { B = 8 };
    nep_dataset d = make_random(29, 3, 32, 32, 17);
    nep_loader l[3];
    nep_rng rng[3];
    nep_err err = {0};
    const uint64_t seeds[3] = {77, 77, 78};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(nep_loader_init(&l[k], &d, NULL, B, true, true, &err), NEP_OK);
        nep_rng_seed(&rng[k], seeds[k]);
        nep_loader_set_augment(&l[k], &(nep_augment){.pad = 4, .flip = true}, &rng[k]);
    }
    size_t chw = 3 * 32 * 32, sz = B * chw * sizeof(nep_real);
    nep_real *x[3];
    int32_t y[3][B];
    for (int k = 0; k < 3; k++) x[k] = malloc(sz);
    int differ = 0;
    for (int e = 0; e < 3; e++) {
        for (int k = 0; k < 3; k++) nep_loader_epoch(&l[k], &rng[k]);
        int64_t n0, batches = 0;
        while ((n0 = nep_loader_next(&l[0], x[0], y[0])) > 0) {
            assert_int_equal(nep_loader_next(&l[1], x[1], y[1]), n0);
            assert_int_equal(nep_loader_next(&l[2], x[2], y[2]), n0);
            assert_memory_equal(y[0], y[1], sizeof y[0]);
            assert_memory_equal(x[0], x[1], sz);
            differ += memcmp(x[0], x[2], sz) != 0;
            batches++;
        }
        assert_int_equal(batches, 3);
    }
    assert_true(differ > 0);
    assert_memory_equal(&rng[0], &rng[1], sizeof rng[0]);
    for (int k = 0; k < 3; k++) {
        free(x[k]);
        nep_loader_free(&l[k]);
    }
    nep_dataset_free(&d);
}

/* The whole path: CIFAR files -> statistics -> augmented loader. */
static void test_cifar_pipeline(void **state) {
    char *dir = write_cifar_dir();
    nep_dataset d;
    nep_err err = {0};
    assert_int_equal(nep_cifar10_load(dir, true, &d, &err), NEP_OK);
    for (int i = 0; i < TRAIN_N; i++) d.labels[i] = (uint8_t)i; /* the reference's index */
    int flips = check_against_reference(&d, &(nep_augment){.pad = 4, .flip = true}, 5);
    assert_true(flips > 0);
    nep_dataset_free(&d);
    nep_test_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cifar_train),
        cmocka_unit_test(test_cifar_test_split),
        cmocka_unit_test(test_cifar_missing),
        cmocka_unit_test(test_cifar_truncated),
        cmocka_unit_test(test_cifar_bad_label),
        cmocka_unit_test(test_cifar_split_normalize),
        cmocka_unit_test(test_augment_reference),
        cmocka_unit_test(test_augment_distribution),
        cmocka_unit_test(test_augment_disabled),
        cmocka_unit_test(test_augment_reproducible),
        cmocka_unit_test(test_cifar_pipeline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
