/* HRank (Lin et al. 2020): matrix ranks against numpy and torch
 * (build/golden/hrank.safetensors, tests/golden/gen_hrank.py), feature-map scores on a
 * small conv net against ranks of the executor's own rectifier outputs computed here by
 * Gaussian elimination (both activation layouts, and split over two fake ranks), and
 * filter masks against a selection written out here from the definition. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/hrank.h"
#include "nepenthe/model.h"
#include "nepenthe/prune.h"
#include "nepenthe/rng.h"
#include "nepenthe/train.h"
#include "testutil.h"

/* --- ranks against numpy.linalg.matrix_rank and torch.linalg.matrix_rank ------------ */

/* CASES of gen_hrank.py, in its order. */
static const char *const CASES[] = {"square8", "tall12x5", "wide5x12", "row1x7", "col9x1", "big32",
                                    "tiny_scale", "huge_scale", "noise_below", "noise_above", "zeros",
                                    "relu16", "relu8x6", "special"};
enum { N_CASES = sizeof CASES / sizeof *CASES };

static nep_safetensors golden;
static int load_golden(void **state) { return nep_test_read_golden("hrank.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

static void expect_ranks(const char *c, const char *how, const int32_t *got, const nep_st_tensor *want) {
    for (int64_t k = 0; k < want->numel; k++) {
        if (got[k] != nep_test_i64(want, k))
            print_error("%s matrix %lld (%s): rank %d, %s says %lld\n", c, (long long)k, how, got[k], want->name,
                        (long long)nep_test_i64(want, k));
        assert_int_equal(got[k], nep_test_i64(want, k));
    }
}

static void test_golden_ranks(void **state) {
    char list[512] = "";
    for (int i = 0; i < N_CASES; i++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "," : "", CASES[i]);
    const char *cases = nep_st_meta_get(&golden, "cases");
    assert_non_null(cases);
    assert_string_equal(cases, list); /* a case added to the generator is tested here too */
    int64_t total = 0;
    for (int i = 0; i < N_CASES; i++) {
        const nep_st_tensor *tm = nep_test_case_tensor(&golden, CASES[i], "maps");
        const nep_st_tensor *tr = nep_test_case_tensor(&golden, CASES[i], "rank");
        const nep_st_tensor *tt = nep_test_case_tensor(&golden, CASES[i], "rank_torch");
        assert_int_equal(tm->ndim, 3);
        const int64_t n = tm->shape[0], h = tm->shape[1], w = tm->shape[2];
        assert_int_equal(tr->numel, n);
        nep_real *maps = nep_test_as_real(tm);
        int32_t *ranks = malloc(sizeof(int32_t) * (size_t)n);
        nep_err err;
        nep_test_assert_ok(nep_matrix_ranks(maps, n, h, w, h * w, 1, ranks, &err), &err);
        expect_ranks(CASES[i], "contiguous", ranks, tr);
        expect_ranks(CASES[i], "contiguous", ranks, tt);
        /* the same matrices interleaved as an NHWC sample holds its channels: entry (i, j)
         * of matrix k at (i * w + j) * n + k */
        nep_real *nhwc = malloc(sizeof(nep_real) * (size_t)(n * h * w));
        for (int64_t k = 0; k < n; k++)
            for (int64_t p = 0; p < h * w; p++) nhwc[p * n + k] = maps[k * h * w + p];
        memset(ranks, 0xff, sizeof(int32_t) * (size_t)n);
        nep_test_assert_ok(nep_matrix_ranks(nhwc, n, h, w, 1, n, ranks, &err), &err);
        expect_ranks(CASES[i], "interleaved", ranks, tr);
        total += n;
        free(nhwc), free(ranks), free(maps);
    }
    assert_true(total > 100);
}

/* --- the tolerance and the contract's edges ----------------------------------------- */

/* diag(1, x) (and with a zero row): singular values 1 and x exactly; the tolerance is
 * 1 * max(h, w) * FLT_EPSILON. */
static void test_tolerance(void **state) {
    nep_err err;
    const double eps = FLT_EPSILON;
    struct { int64_t h, w; double x; int32_t want; } cases[] = {
        {2, 2, 1.25 * 2 * eps, 2}, {2, 2, 0.8 * 2 * eps, 1},
        {3, 2, 1.25 * 3 * eps, 2}, {3, 2, 0.8 * 3 * eps, 1},
        {2, 5, 1.25 * 5 * eps, 2}, {2, 5, 0.8 * 5 * eps, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        nep_real a[10] = {0};
        const int64_t h = cases[c].h, w = cases[c].w;
        a[0] = 1, a[w + 1] = (nep_real)cases[c].x;
        int32_t r = -1;
        nep_test_assert_ok(nep_matrix_ranks(a, 1, h, w, 0, 1, &r, &err), &err);
        if (r != cases[c].want) print_error("diag(1, %g) in %lld x %lld: rank %d\n", cases[c].x, (long long)h, (long long)w, r);
        assert_int_equal(r, cases[c].want);
    }
    /* the tolerance is relative: the same matrices scaled by 1e-30 and 1e30 */
    for (int s = -1; s <= 1; s += 2) {
        const nep_real k = (nep_real)pow(10.0, 30 * s);
        nep_real a[4] = {k, 0, 0, (nep_real)(1.25 * 2 * eps) * k}, b[4] = {k, 0, 0, (nep_real)(0.8 * 2 * eps) * k};
        int32_t r[2];
        nep_test_assert_ok(nep_matrix_ranks(a, 1, 2, 2, 4, 1, r, &err), &err);
        nep_test_assert_ok(nep_matrix_ranks(b, 1, 2, 2, 4, 1, r + 1, &err), &err);
        assert_int_equal(r[0], 2);
        assert_int_equal(r[1], 1);
    }
    /* all zero: rank 0; no matrix; a 0 x w matrix */
    nep_real z[12] = {0};
    int32_t r[3] = {-1, -1, -1};
    nep_test_assert_ok(nep_matrix_ranks(z, 3, 2, 2, 4, 1, r, &err), &err);
    assert_true(r[0] == 0 && r[1] == 0 && r[2] == 0);
    nep_test_assert_ok(nep_matrix_ranks(z, 0, 2, 2, 4, 1, r, &err), &err);
    r[0] = -1;
    nep_test_assert_ok(nep_matrix_ranks(z, 1, 0, 3, 0, 1, r, &err), &err);
    assert_int_equal(r[0], 0);
    /* a non-finite entry names its matrix */
    nep_real bad[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    bad[9] = (nep_real)NAN;
    nep_test_expect_fail(nep_matrix_ranks(bad, 3, 2, 2, 4, 1, r, &err), &err, NEP_ERR_NUMERIC, "matrix 2", NULL);
    bad[9] = (nep_real)INFINITY;
    nep_test_expect_fail(nep_matrix_ranks(bad, 3, 2, 2, 4, 1, r, &err), &err, NEP_ERR_NUMERIC, "matrix 2", NULL);
    nep_test_expect_fail(nep_matrix_ranks(bad, -1, 2, 2, 4, 1, r, &err), &err, NEP_ERR_ARG, "negative", NULL);
    nep_test_expect_fail(nep_matrix_ranks(bad, 1, (int64_t)1 << 20, (int64_t)1 << 20, 0, 1, r, &err), &err,
                         NEP_ERR_ARG, "int", NULL);
}

/* --- scores on a small conv net ------------------------------------------------------ */

/* input [1, 8, 6] -> conv1 (6, 3x3, pad 1) -> relu1 -> conv2 (5, 3x3, stride 2, pad 1)
 * -> relu6 [5, 4, 3] -> conv3 (4, 1x1) -> leaky (slope 1/8) -> avgpool -> flatten -> fc1 (3)
 * -> relu_fc -> fc2 (2). Random weights, but filters whose maps have a rank known by hand:
 *   conv1 c1: weights 0, bias +0.5: relu1 gives the constant 0.5, rank 1
 *   conv1 c2: weights 0, bias -0.5: relu1 gives 0, rank 0
 *   conv2 c1: bias +60: z > 6 everywhere (|conv| < 6 here), so ReLU6 gives the constant
 *             6, rank 1, where z itself is of full rank 3
 *   conv2 c4: bias -60: ReLU6 gives 0, rank 0
 *   conv3 c0: weights 0, bias -1: LeakyReLU gives the constant -1/8, rank 1 (ReLU: 0)
 * conv1's c1 and c2 and conv3's c0 are dead filters for pruning (no non-zero weight). */
enum { IMG_H = 8, IMG_W = 6, N_IMAGES = 10, BATCH = 4 };

typedef struct net {
    nep_graph g;
    int conv[3], rect[3], fc1, relu_fc;
} net;

static int add_conv(nep_graph *g, const char *name, int x, int64_t in_c, int64_t out_c, int k, int stride) {
    int id = nep_graph_add1(g, NEP_OP_CONV2D, name, x,
                            (nep_attrs){.conv = {.features = out_c, .bias = true, .kernel = {k, k},
                                                 .stride = {stride, stride}, .pad = {k / 2, k / 2}, .groups = 1}});
    assert_true(id >= 0);
    assert_true(nep_graph_add_param(g, id, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 4,
                                    (int64_t[]){out_c, in_c, k, k}) >= 0);
    assert_true(nep_graph_add_param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){out_c}) >= 0);
    return id;
}

static nep_real *param(nep_graph *g, int node, int i) { return g->values + g->params[g->nodes[node].params[i]].offset; }
static int64_t param_numel(const nep_graph *g, int node, int i) { return g->params[g->nodes[node].params[i]].numel; }

/* Filter o of a conv: weights all 0 (0) or scaled normal (scale), then bias. */
static void set_filter(net *m, int layer, int64_t o, double scale, double bias, nep_rng *r) {
    const int id = m->conv[layer];
    const int64_t fan = param_numel(&m->g, id, 0) / m->g.nodes[id].attrs.conv.features;
    for (int64_t k = 0; k < fan; k++) param(&m->g, id, 0)[o * fan + k] = (nep_real)(scale * nep_rng_normal(r));
    param(&m->g, id, 1)[o] = (nep_real)bias;
}

static void build_net(net *m) {
    nep_graph *g = &m->g;
    nep_graph_init(g);
    int x = nep_graph_input(g, "input", (nep_shape){3, {1, IMG_H, IMG_W}});
    m->conv[0] = add_conv(g, "conv1", x, 1, 6, 3, 1);
    m->rect[0] = nep_graph_add1(g, NEP_OP_RELU, "relu1", m->conv[0], (nep_attrs){0});
    m->conv[1] = add_conv(g, "conv2", m->rect[0], 6, 5, 3, 2);
    m->rect[1] = nep_graph_add1(g, NEP_OP_RELU6, "relu6", m->conv[1], (nep_attrs){0});
    m->conv[2] = add_conv(g, "conv3", m->rect[1], 5, 4, 1, 1);
    m->rect[2] = nep_graph_add1(g, NEP_OP_LEAKY_RELU, "leaky", m->conv[2], (nep_attrs){.leaky_relu = {.slope = 0.125}});
    x = nep_graph_add1(g, NEP_OP_GLOBAL_AVGPOOL, "avgpool", m->rect[2], (nep_attrs){0});
    x = nep_graph_add1(g, NEP_OP_FLATTEN, "flatten", x, (nep_attrs){0});
    m->fc1 = nep_graph_add1(g, NEP_OP_LINEAR, "fc1", x, (nep_attrs){.linear = {.features = 3, .bias = true}});
    nep_graph_add_param(g, m->fc1, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2, (int64_t[]){3, 4});
    nep_graph_add_param(g, m->fc1, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){3});
    m->relu_fc = nep_graph_add1(g, NEP_OP_RELU, "relu_fc", m->fc1, (nep_attrs){0});
    int fc2 = nep_graph_add1(g, NEP_OP_LINEAR, "fc2", m->relu_fc, (nep_attrs){.linear = {.features = 2, .bias = true}});
    nep_graph_add_param(g, fc2, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2, (int64_t[]){2, 3});
    nep_graph_add_param(g, fc2, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){2});
    g->output = fc2;
    nep_err err;
    nep_test_assert_ok(nep_graph_finalize(g, &err), &err);
    nep_rng r;
    nep_rng_seed(&r, 2020);
    for (int64_t k = 0; k < g->n_values; k++) g->values[k] = (nep_real)(0.5 * nep_rng_normal(&r));
    const double c1[6][2] = {{0.5, 0}, {0, 0.5}, {0, -0.5}, {0.5, -0.6}, {0.5, 0.3}, {0.3, 1.5}};
    for (int o = 0; o < 6; o++) set_filter(m, 0, o, c1[o][0], c1[o][1], &r);
    const double c2[5][2] = {{0.3, 0}, {0.3, 60}, {0.3, -0.2}, {0.3, 0.4}, {0.3, -60}};
    for (int o = 0; o < 5; o++) set_filter(m, 1, o, c2[o][0], c2[o][1], &r);
    const double c3[4][2] = {{0, -1}, {0.5, 0}, {0.5, 0.5}, {0.5, -0.5}};
    for (int o = 0; o < 4; o++) set_filter(m, 2, o, c3[o][0], c3[o][1], &r);
}

/* Bytes 0..255, pixel 0 of image 0 exactly the mean. */
static void make_images(nep_dataset *d, nep_normalize *norm) {
    *d = (nep_dataset){.n = N_IMAGES, .c = 1, .h = IMG_H, .w = IMG_W, .classes = 2};
    d->images = malloc(N_IMAGES * IMG_H * IMG_W);
    d->labels = malloc(N_IMAGES);
    nep_rng r;
    nep_rng_seed(&r, 8);
    for (int k = 0; k < N_IMAGES * IMG_H * IMG_W; k++) d->images[k] = (uint8_t)nep_rng_below(&r, 256);
    for (int i = 0; i < N_IMAGES; i++) d->labels[i] = (uint8_t)(i % 2);
    *norm = (nep_normalize){.c = 1, .mean = {0.5f}, .std = {0.25f}};
}

/* The rank of an h x w matrix (copied) by Gaussian elimination with partial pivoting in
 * double. The maps here are of full rank or deficient by structure (zero rows, constant
 * maps), whose eliminated rows are exact zeros or double rounding; a pivot below 1e-9 of
 * the largest entry counts as zero, far from either. */
static int ge_rank(const double *src, int64_t h, int64_t w) {
    double *a = malloc(sizeof(double) * (size_t)(h * w)), amax = 0;
    memcpy(a, src, sizeof(double) * (size_t)(h * w));
    for (int64_t k = 0; k < h * w; k++) amax = fmax(amax, fabs(a[k]));
    int rank = 0;
    for (int64_t col = 0; col < w && rank < h; col++) {
        int64_t p = rank;
        for (int64_t i = rank + 1; i < h; i++)
            if (fabs(a[i * w + col]) > fabs(a[p * w + col])) p = i;
        if (!(fabs(a[p * w + col]) > 1e-9 * amax)) continue;
        for (int64_t j = 0; j < w; j++) {
            double t = a[p * w + j];
            a[p * w + j] = a[rank * w + j], a[rank * w + j] = t;
        }
        for (int64_t i = rank + 1; i < h; i++) {
            const double f = a[i * w + col] / a[rank * w + col];
            for (int64_t j = col; j < w; j++) a[i * w + j] -= f * a[rank * w + j];
        }
        rank++;
    }
    free(a);
    return rank;
}

/* Mean rank over the first `images` images of each conv layer's rectifier output, as the
 * executor itself computes that output (not through a probe), read in its layout. */
static void reference_scores(net *m, const nep_dataset *d, const nep_normalize *norm, int layout, int64_t images,
                             double want[3][6]) {
    nep_exec_opts xo = {.layout = layout};
    nep_exec *ex;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&ex, &m->g, BATCH, &xo, &err), &err);
    assert_true(nep_exec_channels_last(ex) == (layout == NEP_LAYOUT_NHWC));
    memset(want, 0, sizeof(double) * 3 * 6);
    nep_real x[BATCH * IMG_H * IMG_W];
    double map[IMG_H * IMG_W];
    for (int64_t b0 = 0; b0 < images; b0 += BATCH) {
        const int64_t b = images - b0 < BATCH ? images - b0 : BATCH;
        for (int64_t k = 0; k < b * IMG_H * IMG_W; k++) /* the loader's documented normalization */
            x[k] = (nep_real)(((float)d->images[b0 * IMG_H * IMG_W + k] * (1.0f / 255.0f) - norm->mean[0]) / norm->std[0]);
        nep_exec_forward(ex, x, b);
        for (int l = 0; l < 3; l++) {
            const nep_shape *s = &m->g.nodes[m->rect[l]].shape;
            const int64_t C = s->d[0], H = s->d[1], W = s->d[2];
            const nep_real *y = nep_exec_node_output(ex, m->rect[l]);
            for (int64_t n = 0; n < b; n++)
                for (int64_t c = 0; c < C; c++) {
                    for (int64_t p = 0; p < H * W; p++)
                        map[p] = layout == NEP_LAYOUT_NHWC ? y[(n * H * W + p) * C + c] : y[(n * C + c) * H * W + p];
                    want[l][c] += ge_rank(map, H, W);
                }
        }
    }
    for (int l = 0; l < 3; l++)
        for (int c = 0; c < 6; c++) want[l][c] /= (double)images;
    nep_exec_free(ex);
}

static void expect_scores(const net *m, const nep_entropy *e, double **got, double want[3][6], const char *what) {
    for (int l = 0; l < e->n_layers; l++) {
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (e->layers[l].node == m->rect[i]) k = i;
        if (k < 0) { /* relu_fc: a Linear's, on vectors */
            assert_int_equal(e->layers[l].node, m->relu_fc);
            assert_null(got[l]);
            continue;
        }
        assert_non_null(got[l]);
        for (int64_t c = 0; c < e->layers[l].neurons; c++) {
            if (!(fabs(got[l][c] - want[k][c]) < 1e-12))
                print_error("%s: %s channel %lld: score %.17g, want %.17g\n", what, m->g.nodes[m->rect[k]].name,
                            (long long)c, got[l][c], want[k][c]);
            assert_true(fabs(got[l][c] - want[k][c]) < 1e-12);
        }
    }
}

static void test_scores(void **state) {
    net m;
    build_net(&m);
    nep_dataset d;
    nep_normalize norm;
    make_images(&d, &norm);
    nep_entropy e;
    nep_err err;
    nep_test_assert_ok(nep_entropy_init(&e, &m.g, false, &err), &err);
    assert_int_equal(e.n_layers, 4);
    const nep_split split = {.images = &d, .norm = &norm};
    for (int layout = NEP_LAYOUT_NCHW; layout <= NEP_LAYOUT_NHWC; layout++) {
        const char *what = layout == NEP_LAYOUT_NHWC ? "nhwc" : "nchw";
        const nep_exec_opts xo = {.layout = layout};
        double want[3][6];
        reference_scores(&m, &d, &norm, layout, N_IMAGES, want);
        /* the filters of known rank (see build_net): 1 and 0 whatever the image */
        assert_true(want[0][1] == 1 && want[0][2] == 0 && want[1][1] == 1 && want[1][4] == 0 && want[2][0] == 1);
        /* and ranks that vary: some channel's mean is not a whole number */
        bool fractional = false;
        for (int l = 0; l < 3; l++)
            for (int c = 0; c < 6; c++) fractional |= want[l][c] != floor(want[l][c]);
        assert_true(fractional);
        double **got = NULL;
        /* batches of 4, 4 and 2 */
        nep_test_assert_ok(nep_hrank_scores(&m.g, &e, &split, BATCH, 0, &got, &xo, &err), &err);
        expect_scores(&m, &e, got, want, what);
        nep_hrank_free(got, e.n_layers);
        /* one batch: its 4 images only */
        reference_scores(&m, &d, &norm, layout, BATCH, want);
        nep_test_assert_ok(nep_hrank_scores(&m.g, &e, &split, BATCH, 1, &got, &xo, &err), &err);
        expect_scores(&m, &e, got, want, what);
        nep_hrank_free(got, e.n_layers);
    }
    /* a layer made the identity has no maps any more */
    nep_test_assert_ok(nep_graph_linearize(&m.g, m.rect[1], &err), &err);
    double **got = NULL;
    nep_test_assert_ok(nep_hrank_scores(&m.g, &e, &split, BATCH, 0, &got, NULL, &err), &err);
    assert_non_null(got[0]);
    assert_null(got[1]);
    assert_non_null(got[2]);
    nep_hrank_free(got, e.n_layers);
    /* no image to average over */
    const nep_dataset empty = {.n = 0, .c = 1, .h = IMG_H, .w = IMG_W, .classes = 2, .images = d.images, .labels = d.labels};
    const nep_split none = {.images = &empty, .norm = &norm};
    got = NULL;
    nep_test_expect_fail(nep_hrank_scores(&m.g, &e, &none, BATCH, 0, &got, NULL, &err), &err, NEP_ERR_ARG, "no calibration", NULL);
    assert_null(got);
    nep_entropy_free(&e);
    nep_graph_free(&m.g);
    /* an MLP has no feature maps: every score NULL */
    nep_model_spec spec = nep_model_spec_default();
    spec.in_c = 1, spec.in_h = IMG_H, spec.in_w = IMG_W, spec.classes = 2, spec.n_hidden = 2;
    spec.hidden[0] = 5, spec.hidden[1] = 3;
    nep_rng r;
    nep_rng_seed(&r, 1);
    nep_test_assert_ok(nep_model_build(&spec, &m.g, &r, &err), &err);
    nep_test_assert_ok(nep_entropy_init(&e, &m.g, false, &err), &err);
    assert_int_equal(e.n_layers, 2);
    got = NULL;
    nep_test_assert_ok(nep_hrank_scores(&m.g, &e, &split, BATCH, 0, &got, NULL, &err), &err);
    assert_true(got && !got[0] && !got[1]);
    nep_hrank_free(got, e.n_layers);
    nep_entropy_free(&e);
    nep_graph_free(&m.g);
    nep_dataset_free(&d);
}

/* Two ranks simulated one after the other: rank 0 runs first and its sum() records its
 * partial sums; rank 1 then adds them to its own in the same order, so it ends with what
 * an allreduce gives every rank. */
enum { MAX_SUMS = 16 };
typedef struct fake_world {
    bool replay;
    int calls;
    int64_t n[MAX_SUMS];
    int64_t *data[MAX_SUMS];
} fake_world;

static nep_status fake_sum(void *ctx, void *data, int64_t n, nep_comm_dtype type, nep_err *err) {
    fake_world *w = ctx;
    assert_int_equal(type, NEP_COMM_I64); /* rank sums and image counts: integers, exact */
    assert_true(w->calls < MAX_SUMS);
    int64_t *v = data;
    if (!w->replay) {
        w->n[w->calls] = n;
        w->data[w->calls] = malloc(sizeof(int64_t) * (size_t)n);
        memcpy(w->data[w->calls], v, sizeof(int64_t) * (size_t)n);
    } else {
        assert_int_equal(w->n[w->calls], n);
        for (int64_t i = 0; i < n; i++) v[i] += w->data[w->calls][i];
    }
    w->calls++;
    return NEP_OK;
}
static nep_status fake_bcast(void *ctx, void *data, int64_t n, int root, nep_err *err) { return NEP_OK; }

static void test_scores_over_ranks(void **state) {
    net m;
    build_net(&m);
    nep_dataset d;
    nep_normalize norm;
    make_images(&d, &norm);
    nep_entropy e;
    nep_err err;
    nep_test_assert_ok(nep_entropy_init(&e, &m.g, false, &err), &err);
    fake_world w = {0};
    nep_comm c0 = {.rank = 0, .size = 2, .ctx = &w, .sum = fake_sum, .bcast = fake_bcast}, c1 = c0;
    c1.rank = 1;
    const nep_split s0 = {.images = &d, .norm = &norm, .comm = &c0}, s1 = {.images = &d, .norm = &norm, .comm = &c1};
    double **g0 = NULL, **g1 = NULL;
    /* rank 0 runs batches 0 and 2 (4 + 2 images), rank 1 batch 1 (4) */
    nep_test_assert_ok(nep_hrank_scores(&m.g, &e, &s0, BATCH, 0, &g0, NULL, &err), &err);
    const int recorded = w.calls;
    assert_true(recorded >= 4); /* three layers' sums and the image count */
    w.replay = true, w.calls = 0;
    nep_test_assert_ok(nep_hrank_scores(&m.g, &e, &s1, BATCH, 0, &g1, NULL, &err), &err);
    assert_int_equal(w.calls, recorded);
    double want[3][6];
    reference_scores(&m, &d, &norm, NEP_LAYOUT_NCHW, N_IMAGES, want);
    expect_scores(&m, &e, g1, want, "rank 1 of 2");
    for (int i = 0; i < recorded; i++) free(w.data[i]);
    nep_hrank_free(g0, e.n_layers);
    nep_hrank_free(g1, e.n_layers);
    nep_entropy_free(&e);
    nep_dataset_free(&d);
    nep_graph_free(&m.g);
}

/* --- pruning ------------------------------------------------------------------------ */

/* Whether filter i of weight [rows, fan] holds a kept non-zero weight. */
static bool ref_alive(const nep_graph *g, const nep_param *w, int64_t fan, int64_t i) {
    for (int64_t k = i * fan; k < (i + 1) * fan; k++)
        if (g->masks[w->offset + k] && g->values[w->offset + k] != 0) return true;
    return false;
}

/* The filters the definition masks: floor(rate * alive) times, the alive filter not yet
 * taken with the smallest score, the lower index on a tie. */
static int64_t ref_select(const nep_graph *g, const nep_param *w, int64_t rows, const double *score, double rate,
                          bool *take, int64_t *alive_out) {
    const int64_t fan = w->numel / rows;
    int64_t alive = 0;
    for (int64_t i = 0; i < rows; i++) alive += ref_alive(g, w, fan, i), take[i] = false;
    const int64_t count = (int64_t)floor(rate * (double)alive);
    *alive_out = alive;
    for (int64_t t = 0; t < count; t++) {
        int64_t best = -1;
        for (int64_t i = 0; i < rows; i++)
            if (ref_alive(g, w, fan, i) && !take[i] && (best < 0 || score[i] < score[best])) best = i;
        take[best] = true;
    }
    return count;
}

/* One call on m against the definition: pruned counts, the very rows masked (mask and
 * value 0), everything else untouched, biases and the Linear layers included. */
static void prune_and_check(net *m, const nep_entropy *e, double *const *scores, double rate) {
    nep_graph *g = &m->g;
    nep_real *v0 = malloc(sizeof(nep_real) * (size_t)g->n_values);
    uint8_t *m0 = malloc((size_t)g->n_values);
    memcpy(v0, g->values, sizeof(nep_real) * (size_t)g->n_values);
    memcpy(m0, g->masks, (size_t)g->n_values);
    bool take[4][8] = {{0}};
    int64_t want[4] = {0}, before[4] = {0};
    for (int l = 0; l < e->n_layers; l++)
        if (scores[l])
            want[l] = ref_select(g, nep_layer_weight(g, &e->layers[l]), e->layers[l].neurons, scores[l], rate, take[l],
                                 &before[l]);
    int64_t pruned[4] = {-1, -1, -1, -1};
    nep_err err;
    nep_test_assert_ok(nep_hrank_prune(g, e, scores, rate, pruned, &err), &err);
    for (int l = 0; l < e->n_layers; l++) {
        assert_int_equal(pruned[l], want[l]);
        const nep_param *w = nep_layer_weight(g, &e->layers[l]);
        const int64_t rows = e->layers[l].neurons, fan = w->numel / rows;
        for (int64_t i = 0; i < rows; i++)
            for (int64_t k = w->offset + i * fan; k < w->offset + (i + 1) * fan; k++) {
                if (take[l][i]) {
                    assert_int_equal(g->masks[k], 0);
                    assert_true(g->values[k] == 0);
                } else {
                    assert_int_equal(g->masks[k], m0[k]);
                    assert_true(g->values[k] == v0[k]);
                }
                v0[k] = g->values[k], m0[k] = g->masks[k];
            }
    }
    /* nothing outside the masked rows changed: biases, the other parameters */
    assert_memory_equal(g->values, v0, sizeof(nep_real) * (size_t)g->n_values);
    assert_memory_equal(g->masks, m0, (size_t)g->n_values);
    /* applying the masks keeps the masked rows at zero and changes nothing else but the
     * stale values the random cases leave under a 0 mask */
    nep_graph_apply_masks(g);
    for (int64_t k = 0; k < g->n_values; k++) assert_true(g->values[k] == (m0[k] ? v0[k] : 0));
    /* the masked filters are dead now, and a layer that had a filter alive keeps one */
    for (int l = 0; l < e->n_layers; l++) {
        if (!scores[l]) continue;
        const nep_param *w = nep_layer_weight(g, &e->layers[l]);
        int64_t alive = 0;
        for (int64_t i = 0; i < e->layers[l].neurons; i++) alive += ref_alive(g, w, w->numel / e->layers[l].neurons, i);
        assert_int_equal(alive, before[l] - want[l]);
        assert_true(alive >= 1 || before[l] == 0);
    }
    free(v0), free(m0);
}

static void test_prune(void **state) {
    net m;
    build_net(&m);
    nep_entropy e;
    nep_err err;
    nep_test_assert_ok(nep_entropy_init(&e, &m.g, false, &err), &err);
    double s1[6] = {2, 0, 0, 1, 1, 1}, s2[5] = {1, 1, 1, 1, 1}, s3[4] = {0, 3, 3, 2};
    double *scores[4] = {s1, s2, s3, NULL};
    /* worked out by hand: conv1 alive {0, 3, 4, 5} (1, 2 dead despite their low scores)
     * -> 2 of the three tied at 1: 3, 4; conv2 all tied -> floor(2.5) = 2: 0, 1; conv3
     * alive {1, 2, 3} -> 1: 3 */
    int64_t pruned[4];
    nep_graph g0;
    nep_test_assert_ok(nep_graph_copy(&m.g, &g0, &err), &err);
    nep_test_assert_ok(nep_hrank_prune(&m.g, &e, scores, 0.5, pruned, &err), &err);
    assert_true(pruned[0] == 2 && pruned[1] == 2 && pruned[2] == 1 && pruned[3] == 0);
    const int64_t fan[3] = {9, 54, 5};
    const int masked[3][6] = {{0, 0, 0, 1, 1, 0}, {1, 1, 0, 0, 0}, {0, 0, 0, 1}};
    for (int l = 0; l < 3; l++) {
        const nep_real *w = param(&m.g, m.conv[l], 0), *w0 = param(&g0, m.conv[l], 0);
        const uint8_t *mk = m.g.masks + m.g.params[m.g.nodes[m.conv[l]].params[0]].offset;
        for (int64_t i = 0; i < m.g.nodes[m.conv[l]].attrs.conv.features; i++)
            for (int64_t k = i * fan[l]; k < (i + 1) * fan[l]; k++) {
                assert_int_equal(mk[k], !masked[l][i]);
                assert_true(w[k] == (masked[l][i] ? 0 : w0[k]));
            }
    }
    /* again: conv1 alive {0, 5} -> 5; conv2 alive {2, 3, 4} -> 2; conv3 alive {1, 2}, tied -> 1 */
    prune_and_check(&m, &e, scores, 0.5);
    /* rate near 1 over and over: one filter stays in every layer */
    for (int it = 0; it < 4; it++) prune_and_check(&m, &e, scores, 0.999);
    for (int l = 0; l < 3; l++) {
        const nep_param *w = nep_layer_weight(&m.g, &e.layers[l]);
        int64_t alive = 0;
        for (int64_t i = 0; i < e.layers[l].neurons; i++) alive += ref_alive(&m.g, w, fan[l], i);
        assert_int_equal(alive, 1);
    }
    /* rates outside [0, 1) and NaN scores change nothing */
    nep_graph_free(&g0);
    nep_test_assert_ok(nep_graph_copy(&m.g, &g0, &err), &err);
    nep_test_expect_fail(nep_hrank_prune(&m.g, &e, scores, 1.0, pruned, &err), &err, NEP_ERR_ARG, "rate", NULL);
    nep_test_expect_fail(nep_hrank_prune(&m.g, &e, scores, -0.1, pruned, &err), &err, NEP_ERR_ARG, "rate", NULL);
    nep_test_expect_fail(nep_hrank_prune(&m.g, &e, scores, NAN, pruned, &err), &err, NEP_ERR_ARG, "rate", NULL);
    s2[3] = NAN;
    nep_test_expect_fail(nep_hrank_prune(&m.g, &e, scores, 0.5, pruned, &err), &err, NEP_ERR_ARG, "NaN", "conv2");
    assert_memory_equal(m.g.values, g0.values, sizeof(nep_real) * (size_t)m.g.n_values);
    assert_memory_equal(m.g.masks, g0.masks, (size_t)m.g.n_values);
    nep_graph_free(&g0);
    nep_entropy_free(&e);
    nep_graph_free(&m.g);
}

/* Random weights with zeros, partial masks (kept zeros, masked non-zeros), tied scores,
 * random rates, repeated calls: every call against the definition. */
static void test_prune_random(void **state) {
    nep_rng r;
    nep_rng_seed(&r, 77);
    for (int it = 0; it < 60; it++) {
        net m;
        build_net(&m);
        nep_entropy e;
        nep_err err;
        nep_test_assert_ok(nep_entropy_init(&e, &m.g, false, &err), &err);
        double s[3][6];
        double *scores[4] = {s[0], s[1], s[2], NULL};
        for (int l = 0; l < 3; l++) {
            const nep_param *w = nep_layer_weight(&m.g, &e.layers[l]);
            const int64_t rows = e.layers[l].neurons, fan = w->numel / rows;
            const double p = nep_rng_uniform(&r);
            for (int64_t i = 0; i < rows; i++) {
                s[l][i] = (double)nep_rng_below(&r, 4) / 2; /* ties are common */
                const int kind = (int)nep_rng_below(&r, 5);
                for (int64_t k = w->offset + i * fan; k < w->offset + (i + 1) * fan; k++) {
                    if (kind == 0) m.g.values[k] = 0;                          /* no weight */
                    if (kind == 1) m.g.masks[k] = 0;                           /* masked, stale value */
                    if (kind == 2 && nep_rng_uniform(&r) < p) m.g.masks[k] = 0; /* partly masked */
                    if (kind == 3 && nep_rng_uniform(&r) < p) m.g.values[k] = 0;
                }
            }
        }
        for (int call = 0; call < 3; call++) prune_and_check(&m, &e, scores, 0.95 * nep_rng_uniform(&r));
        nep_entropy_free(&e);
        nep_graph_free(&m.g);
    }
}

int main(void) {
    const struct CMUnitTest golden_tests[] = {cmocka_unit_test(test_golden_ranks)};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tolerance),
        cmocka_unit_test(test_scores),
        cmocka_unit_test(test_scores_over_ranks),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_prune_random),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed | cmocka_run_group_tests(golden_tests, load_golden, free_golden);
}
