/* nepenthe's Winograd F(2x2, 3x3) convolution (backend/cpu/winograd.c) against float64
 * loops: forward (bias, added to y, rectified), backward data (written, added),
 * backward weights and bias (written, accumulated), on odd and even image sides (tiles
 * past the edge), channels in != out, one and two threads. It runs whatever the ISA:
 * dnnl_conv.c picks it only where oneDNN has no Winograd kernel (below AVX-512).
 * Tolerance as test_conv's: 1e-5 relative plus 1e-5 of max|want|. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/winograd.h"
#include "nepenthe/rng.h"
#include "testutil.h"

typedef struct problem {
    nep_wino_geom g;
    float *x, *w, *b, *dy;
    double *y, *dx, *dw, *db; /* float64 references */
    int64_t nx, ny, nw;
} problem;

static float *normals(nep_rng *r, int64_t n, double scale) {
    float *a = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) a[i] = (float)(scale * nep_rng_normal(r));
    return a;
}

/* x [N, H, W, C] at (n, h, w), or 0 outside the image. */
static double at(const float *x, const nep_wino_geom *g, int64_t ch, int64_t n, int64_t h, int64_t w, int64_t c) {
    return h < 0 || h >= g->h || w < 0 || w >= g->w ? 0 : x[((n * g->h + h) * g->w + w) * ch + c];
}

static void problem_new(problem *p, int64_t N, int64_t C, int64_t K, int64_t H, int64_t W, int threads) {
    nep_rng r;
    nep_rng_seed(&r, (uint64_t)(N * 1000 + C * 10 + H));
    p->g = (nep_wino_geom){.batch = N, .h = H, .w = W, .in_c = C, .out_c = K, .threads = threads};
    p->nx = N * H * W * C, p->ny = N * H * W * K, p->nw = K * C * 9;
    p->x = normals(&r, p->nx, 1), p->w = normals(&r, p->nw, 1 / sqrt(9.0 * C)), p->b = normals(&r, K, 1);
    p->dy = normals(&r, p->ny, 1);
    p->y = calloc((size_t)p->ny, sizeof(double)), p->dx = calloc((size_t)p->nx, sizeof(double));
    p->dw = calloc((size_t)p->nw, sizeof(double)), p->db = calloc((size_t)K, sizeof(double));
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                for (int64_t k = 0; k < K; k++) {
                    const int64_t o = ((n * H + h) * W + w) * K + k;
                    double y = p->b[k];
                    for (int i = 0; i < 9; i++)
                        for (int64_t c = 0; c < C; c++) {
                            const double wt = p->w[(k * C + c) * 9 + i];
                            y += wt * at(p->x, &p->g, C, n, h + i / 3 - 1, w + i % 3 - 1, c);
                            if (h + i / 3 - 1 >= 0 && h + i / 3 - 1 < H && w + i % 3 - 1 >= 0 && w + i % 3 - 1 < W)
                                p->dx[((n * H + h + i / 3 - 1) * W + w + i % 3 - 1) * C + c] += wt * p->dy[o];
                            p->dw[(k * C + c) * 9 + i] += p->dy[o] * at(p->x, &p->g, C, n, h + i / 3 - 1, w + i % 3 - 1, c);
                        }
                    p->y[o] = y;
                    p->db[k] += p->dy[o];
                }
}

static void problem_free(problem *p) {
    free(p->x), free(p->w), free(p->b), free(p->dy), free(p->y), free(p->dx), free(p->dw), free(p->db);
}

/* got against want * times + base (base NULL: 0), elementwise. */
static void expect(const char *what, const float *got, const double *want, double times, const double *base, int64_t n) {
    double *t = malloc(sizeof(double) * (size_t)n), top = 0;
    for (int64_t i = 0; i < n; i++) t[i] = times * want[i] + (base ? base[i] : 0), top = fmax(top, fabs(t[i]));
    NEP_ASSERT_CLOSE(got, t, n, 1e-5, 1e-5 * top, what);
    free(t);
}

/* Exactly the bytes a call asks for (malloc's, so that AddressSanitizer sees a call
 * running past them): a training call's (any call), or a serving forward's (given u),
 * which leaves u out. */
static void *scratch_for(const nep_wino_geom *g, bool training) {
    return malloc(nep_wino_scratch_bytes(g, training));
}

static void check(int64_t N, int64_t C, int64_t K, int64_t H, int64_t W, int threads) {
    problem p;
    problem_new(&p, N, C, K, H, W, threads);
    void *scratch = scratch_for(&p.g, true), *serving = scratch_for(&p.g, false);
    assert_true(nep_wino_scratch_bytes(&p.g, false) + sizeof(float) * nep_wino_weight_floats(&p.g) <=
                nep_wino_scratch_bytes(&p.g, true));
    float *y = malloc(sizeof(float) * (size_t)p.ny), *dx = malloc(sizeof(float) * (size_t)p.nx);
    float *dw = malloc(sizeof(float) * (size_t)p.nw), *db = malloc(sizeof(float) * (size_t)K);
    double *y0 = malloc(sizeof(double) * (size_t)p.ny), *relu6 = malloc(sizeof(double) * (size_t)p.ny);

    for (int64_t i = 0; i < p.ny; i++) y[i] = NAN; /* overwritten */
    nep_wino_forward(&p.g, scratch, p.x, p.w, NULL, p.b, y, false, false, 0);
    expect("y", y, p.y, 1, NULL, p.ny);

    /* y = relu6(y0 + conv(x) + b) on a y0 already there; u transformed once, as a
     * serving plan keeps it */
    float *u = malloc(sizeof(float) * nep_wino_weight_floats(&p.g));
    nep_wino_transform_weights(&p.g, p.w, u);
    for (int64_t i = 0; i < p.ny; i++) y[i] = (float)(y0[i] = (double)(i % 7) - 3);
    nep_wino_forward(&p.g, serving, p.x, NULL, u, p.b, y, true, true, 6);
    for (int64_t i = 0; i < p.ny; i++) relu6[i] = fmin(fmax(y0[i] + p.y[i], 0), 6);
    expect("relu6(y0 + y)", y, relu6, 1, NULL, p.ny);

    for (int64_t i = 0; i < p.nx; i++) dx[i] = NAN;
    for (int64_t i = 0; i < p.nw; i++) dw[i] = NAN;
    for (int64_t k = 0; k < K; k++) db[k] = NAN;
    for (int rep = 1; rep <= 2; rep++) { /* written, then added / accumulated */
        nep_wino_backward(&p.g, scratch, p.x, p.w, p.dy, dx, rep == 2, dw, db, rep == 2);
        expect("dx", dx, p.dx, rep, NULL, p.nx);
        expect("dw", dw, p.dw, rep, NULL, p.nw);
        expect("db", db, p.db, rep, NULL, K);
    }
    /* dx alone leaves dw and db; db alone leaves dx */
    nep_wino_backward(&p.g, scratch, p.x, p.w, p.dy, dx, false, NULL, NULL, false);
    expect("dx alone", dx, p.dx, 1, NULL, p.nx);
    expect("dw untouched", dw, p.dw, 2, NULL, p.nw);
    nep_wino_backward(&p.g, scratch, p.x, p.w, p.dy, NULL, false, NULL, db, false);
    expect("db alone", db, p.db, 1, NULL, K);
    expect("dx untouched", dx, p.dx, 1, NULL, p.nx);

    free(u), free(y), free(dx), free(dw), free(db), free(y0), free(relu6), free(scratch), free(serving);
    problem_free(&p);
}

static void test_odd_sides_one_thread(void **s) { check(2, 16, 32, 7, 5, 1); }
static void test_even_sides_two_threads(void **s) { check(3, 32, 16, 8, 10, 2); }
/* more tiles than one block (64): 4 images of 8x12 tiles, 6 whole blocks meeting
 * mid-image, 3 per thread, out channels the wider (so that the last thread's last
 * output block fills scratch to its end, where AddressSanitizer watches) */
static void test_many_blocks(void **s) { check(4, 16, 32, 15, 23, 2); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_odd_sides_one_thread),
        cmocka_unit_test(test_even_sides_two_threads),
        cmocka_unit_test(test_many_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
