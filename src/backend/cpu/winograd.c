/* Winograd F(2x2, 3x3) convolution on NHWC activations (see winograd.h).
 *
 * Output tile t (2x2 pixels of image n at rows 2ti.., columns 2tj..) reads the 4x4 input
 * patch from row 2ti-1, column 2tj-1 (zero outside the image). With
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * y_tile = A^T [ sum_c (G w G^T) . (B^T d B) ] A: for each of the 16 tile positions xi
 * a GEMM  M[xi] [tiles, K] = V[xi] [tiles, C] U[xi] [C, K]. The adjoints give the
 * backward passes: dU[xi] = V[xi]^T dM[xi] with dM = A dY A^T and dw = G^T dU G; and dx
 * is the forward convolution of dy with the kernels rotated by 180 degrees and their
 * channels swapped, whose transform is U's with positions 0 and 3 of each axis swapped
 * (G J = P G for the reversal J and that swap P), so dx reuses U transposed.
 * Tiles go in blocks of tile_block: a block's V and M stay in L2 while its 16 GEMMs run
 * (OpenBLAS packs the block once per GEMM). */
#include "backend/cpu/winograd.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

/* Eight floats, at any 4-byte alignment: the transforms run across channels, which are
 * contiguous in NHWC. (Macros, not functions: passing 32-byte vectors by value changes
 * the ABI where AVX is off, as in the sanitized build, which GCC warns about.) */
typedef float v8 __attribute__((vector_size(32), aligned(4), may_alias));
#define ld(p) (*(const v8 *)(p))
#define st(p, v) (*(v8 *)(p) = (v))

/* Tiles per block: 64 (V and M of 64 channels in and out: 0.5 MB), 128 from 256 channels in
 * and out together, where OpenBLAS's packing of U per GEMM costs more than L2 misses
 * (forward, measured on a Sapphire Rapids Xeon with OpenBLAS's Haswell kernels before
 * plane_of's padding: 64 channels at 32x32 63.6 ms at 64 tiles, 65.6 at 128, 71.5 at 512;
 * 512 at 4x4 48.4 at 64, 46.2 at 128). */
static int64_t tile_block(const nep_wino_geom *g) { return g->in_c + g->out_c > 256 ? 128 : 64; }

/* Floats from one tile position's [rows, ch] matrix to the next's: 16 more than the matrix,
 * so that the 16 positions' rows do not share cache sets (at a power-of-two distance the
 * transforms ran 2-5x slower: 512 channels' weights 10 ms). */
static size_t plane_of(int64_t rows, int64_t ch) { return (size_t)rows * ch + 16; }

typedef struct tiling {
    int64_t h, w, th, tw;
} tiling;

static tiling tiling_of(const nep_wino_geom *g) { return (tiling){g->h, g->w, (g->h + 1) / 2, (g->w + 1) / 2}; }

static void tile_at(const tiling *tl, int64_t t, int64_t *n, int64_t *ti, int64_t *tj) {
    const int64_t per = tl->th * tl->tw, r = t % per;
    *n = t / per, *ti = r / tl->tw, *tj = r % tl->tw;
}

/* v[16][nt][ch] = B^T d B for the nt tiles from t0 of a [N, H, W, ch] tensor. */
static void input_transform(const tiling *tl, const float *x, int64_t ch, int64_t t0, int64_t nt,
                            const float *zero, float *restrict v) {
    const size_t plane = plane_of(nt, ch);
    for (int64_t i = 0; i < nt; i++) {
        int64_t n, ti, tj;
        tile_at(tl, t0 + i, &n, &ti, &tj);
        const float *p[16];
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++) {
                const int64_t h = 2 * ti - 1 + a, w = 2 * tj - 1 + b;
                p[a * 4 + b] = h < 0 || h >= tl->h || w < 0 || w >= tl->w ? zero : x + ((n * tl->h + h) * tl->w + w) * ch;
            }
        float *o = v + (size_t)i * ch;
        for (int64_t c = 0; c < ch; c += 8) {
            v8 d[4][4];
            for (int s = 0; s < 4; s++) {
                const v8 a0 = ld(p[s] + c), a1 = ld(p[4 + s] + c), a2 = ld(p[8 + s] + c), a3 = ld(p[12 + s] + c);
                d[0][s] = a0 - a2, d[1][s] = a1 + a2, d[2][s] = a2 - a1, d[3][s] = a1 - a3;
            }
            for (int r = 0; r < 4; r++) {
                st(o + (r * 4 + 0) * plane + c, d[r][0] - d[r][2]);
                st(o + (r * 4 + 1) * plane + c, d[r][1] + d[r][2]);
                st(o + (r * 4 + 2) * plane + c, d[r][2] - d[r][1]);
                st(o + (r * 4 + 3) * plane + c, d[r][1] - d[r][3]);
            }
        }
    }
}

/* Each tile's 2x2 pixels of a [N, H, W, ch] tensor y (+)= A^T m A + b, then clamped to
 * [0, cap] with rectify; m [16][nt][ch]. */
static void output_transform(const tiling *tl, const float *m, int64_t ch, int64_t t0, int64_t nt, const float *b,
                             float *y, bool add, bool rectify, float cap) {
    const size_t plane = plane_of(nt, ch);
    for (int64_t i = 0; i < nt; i++) {
        int64_t n, ti, tj;
        tile_at(tl, t0 + i, &n, &ti, &tj);
        float *py[4];
        for (int r = 0; r < 2; r++)
            for (int q = 0; q < 2; q++) {
                const int64_t h = 2 * ti + r, w = 2 * tj + q;
                py[r * 2 + q] = h < tl->h && w < tl->w ? y + ((n * tl->h + h) * tl->w + w) * ch : NULL;
            }
        const float *mi = m + (size_t)i * ch;
        for (int64_t c = 0; c < ch; c += 8) {
            v8 o[2][4];
            for (int s = 0; s < 4; s++) {
                const v8 a0 = ld(mi + s * plane + c), a1 = ld(mi + (4 + s) * plane + c),
                         a2 = ld(mi + (8 + s) * plane + c), a3 = ld(mi + (12 + s) * plane + c);
                o[0][s] = a0 + a1 + a2, o[1][s] = a1 - a2 - a3;
            }
            v8 bias = {0};
            if (b) bias = ld(b + c);
            const v8 out[4] = {o[0][0] + o[0][1] + o[0][2] + bias, o[0][1] - o[0][2] - o[0][3] + bias,
                               o[1][0] + o[1][1] + o[1][2] + bias, o[1][1] - o[1][2] - o[1][3] + bias};
            for (int k = 0; k < 4; k++) {
                if (!py[k]) continue;
                v8 sum = out[k];
                if (add) sum += ld(py[k] + c);
                st(py[k] + c, sum);
            }
        }
        if (rectify)
            for (int k = 0; k < 4; k++)
                for (int64_t c = 0; py[k] && c < ch; c++) {
                    const float a = py[k][c];
                    py[k][c] = a > 0 ? (a < cap ? a : cap) : 0;
                }
    }
}

/* dm[16][nt][ch] = A dY A^T for the nt tiles from t0 of dy [N, H, W, ch] (zero past
 * its edge); db[ch] += each tile's sum of dy. */
static void gradient_transform(const tiling *tl, const float *dy, int64_t ch, int64_t t0, int64_t nt,
                               const float *zero, float *restrict dm, float *restrict db) {
    const size_t plane = plane_of(nt, ch);
    for (int64_t i = 0; i < nt; i++) {
        int64_t n, ti, tj;
        tile_at(tl, t0 + i, &n, &ti, &tj);
        const float *p[4];
        for (int r = 0; r < 2; r++)
            for (int q = 0; q < 2; q++) {
                const int64_t h = 2 * ti + r, w = 2 * tj + q;
                p[r * 2 + q] = h < tl->h && w < tl->w ? dy + ((n * tl->h + h) * tl->w + w) * ch : zero;
            }
        float *o = dm + (size_t)i * ch;
        for (int64_t c = 0; c < ch; c += 8) {
            const v8 y00 = ld(p[0] + c), y01 = ld(p[1] + c), y10 = ld(p[2] + c), y11 = ld(p[3] + c);
            st(db + c, ld(db + c) + y00 + y01 + y10 + y11);
            const v8 e[4][2] = {{y00, y01}, {y00 + y10, y01 + y11}, {y00 - y10, y01 - y11}, {-y10, -y11}};
            for (int r = 0; r < 4; r++) {
                st(o + (r * 4 + 0) * plane + c, e[r][0]);
                st(o + (r * 4 + 1) * plane + c, e[r][0] + e[r][1]);
                st(o + (r * 4 + 2) * plane + c, e[r][0] - e[r][1]);
                st(o + (r * 4 + 3) * plane + c, -e[r][1]);
            }
        }
    }
}

size_t nep_wino_weight_floats(const nep_wino_geom *g) { return 16 * plane_of(g->in_c, g->out_c); }

/* Sixteen output channels at a time, so that each of u's rows gets whole cache lines. */
void nep_wino_transform_weights(const nep_wino_geom *g, const float *w, float *u) {
    const int64_t C = g->in_c, K = g->out_c;
    for (int64_t k0 = 0; k0 < K; k0 += 16)
        for (int64_t c = 0; c < C; c++) {
            float gk[9][16];
            for (int kk = 0; kk < 16; kk++)
                for (int j = 0; j < 9; j++) gk[j][kk] = w[((k0 + kk) * C + c) * 9 + j];
            for (int h = 0; h < 16; h += 8) {
                v8 t[4][3];
                for (int s = 0; s < 3; s++) {
                    const v8 g0 = ld(gk[s] + h), g1 = ld(gk[3 + s] + h), g2 = ld(gk[6 + s] + h);
                    t[0][s] = g0, t[1][s] = 0.5f * (g0 + g1 + g2), t[2][s] = 0.5f * (g0 - g1 + g2), t[3][s] = g2;
                }
                for (int a = 0; a < 4; a++) {
                    const size_t plane = plane_of(C, K);
                    float *o = u + (size_t)(a * 4) * plane + (size_t)c * K + k0 + h;
                    st(o, t[a][0]);
                    st(o + plane, 0.5f * (t[a][0] + t[a][1] + t[a][2]));
                    st(o + 2 * plane, 0.5f * (t[a][0] - t[a][1] + t[a][2]));
                    st(o + 3 * plane, t[a][2]);
                }
            }
        }
}

/* dw (+)= G^T du G per (k, c); du [16][C][K]. */
static void weights_gradient(const nep_wino_geom *g, const float *du, float *dw, bool accumulate) {
    const int64_t C = g->in_c, K = g->out_c;
    const size_t plane = plane_of(C, K);
    for (int64_t k0 = 0; k0 < K; k0 += 16)
        for (int64_t c = 0; c < C; c++) {
            float gk[9][16];
            for (int h = 0; h < 16; h += 8) {
                v8 t[3][4];
                for (int s = 0; s < 4; s++) {
                    const float *col = du + (size_t)s * plane + (size_t)c * K + k0 + h;
                    const v8 u0 = ld(col), u1 = ld(col + 4 * plane), u2 = ld(col + 8 * plane), u3 = ld(col + 12 * plane);
                    t[0][s] = u0 + 0.5f * (u1 + u2), t[1][s] = 0.5f * (u1 - u2), t[2][s] = 0.5f * (u1 + u2) + u3;
                }
                for (int r = 0; r < 3; r++) {
                    st(gk[r * 3 + 0] + h, t[r][0] + 0.5f * (t[r][1] + t[r][2]));
                    st(gk[r * 3 + 1] + h, 0.5f * (t[r][1] - t[r][2]));
                    st(gk[r * 3 + 2] + h, 0.5f * (t[r][1] + t[r][2]) + t[r][3]);
                }
            }
            for (int kk = 0; kk < 16; kk++)
                for (int j = 0; j < 9; j++) {
                    float *o = dw + ((k0 + kk) * C + c) * 9 + j;
                    *o = accumulate ? *o + gk[j][kk] : gk[j][kk];
                }
        }
}

/* Scratch: a zero row, per thread two blocks of 16 x tile_block x the wider channel
 * count (and, in backward, a dU and a db), then u where the call transforms w itself.
 * All in floats, multiples of 16. */
typedef struct scratch_plan {
    size_t u, zero, block, per_thread;
} scratch_plan;

static scratch_plan scratch_of(const nep_wino_geom *g, bool backward) {
    const size_t wide = (size_t)(g->in_c > g->out_c ? g->in_c : g->out_c);
    scratch_plan s = {.u = nep_wino_weight_floats(g), .zero = wide, .block = 16 * plane_of(tile_block(g), (int64_t)wide)};
    s.per_thread = 2 * s.block + (backward ? s.u + (size_t)g->out_c : 0);
    return s;
}

/* The u after the threads' blocks. */
static float *scratch_u(const nep_wino_geom *g, const scratch_plan *s, void *scratch) {
    return (float *)scratch + s->zero + (size_t)g->threads * s->per_thread;
}

size_t nep_wino_scratch_bytes(const nep_wino_geom *g, bool training) {
    const scratch_plan s = scratch_of(g, training);
    return sizeof(float) * (s.zero + (size_t)g->threads * s.per_thread + (training ? s.u : 0));
}

void nep_wino_forward(const nep_wino_geom *g, void *scratch, const float *x, const float *w,
                      const float *u, const float *b, float *y, bool add, bool rectify, float cap) {
    const scratch_plan s = scratch_of(g, false);
    float *zero = scratch;
    if (!u) {
        float *t = scratch_u(g, &s, scratch);
        nep_wino_transform_weights(g, w, t);
        u = t;
    }
    memset(zero, 0, sizeof(float) * s.zero);
    const tiling tl = tiling_of(g);
    const int64_t C = g->in_c, K = g->out_c, tb = tile_block(g), tiles = g->batch * tl.th * tl.tw;
#pragma omp parallel for num_threads(g->threads) schedule(static) if (g->threads > 1)
    for (int64_t t0 = 0; t0 < tiles; t0 += tb) {
        const int64_t nt = tiles - t0 < tb ? tiles - t0 : tb;
        float *v = zero + s.zero + (size_t)omp_get_thread_num() * s.per_thread, *m = v + s.block;
        input_transform(&tl, x, C, t0, nt, zero, v);
        for (int e = 0; e < 16; e++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nt, (int)K, (int)C, 1.0f, v + e * plane_of(nt, C),
                        (int)C, u + e * plane_of(C, K), (int)K, 0.0f, m + e * plane_of(nt, K), (int)K);
        output_transform(&tl, m, K, t0, nt, b, y, add, rectify, cap);
    }
}

/* The tile position whose U, transposed, the rotated kernels have at position e. */
static int rotated(int e) {
    static const int swap03[4] = {3, 1, 2, 0};
    return swap03[e / 4] * 4 + swap03[e % 4];
}

void nep_wino_backward(const nep_wino_geom *g, void *scratch, const float *x, const float *w,
                       const float *dy, float *dx, bool dx_add, float *dw, float *db, bool accumulate) {
    const scratch_plan s = scratch_of(g, true);
    float *zero = scratch, *threads = zero + s.zero, *u = scratch_u(g, &s, scratch);
    if (dx) nep_wino_transform_weights(g, w, u);
    memset(zero, 0, sizeof(float) * s.zero);
    const bool weights = dw || db;
    const tiling tl = tiling_of(g);
    const int64_t C = g->in_c, K = g->out_c, tb = tile_block(g), tiles = g->batch * tl.th * tl.tw;
    for (int i = 0; weights && i < g->threads; i++) /* each thread's dU and db */
        memset(threads + (size_t)i * s.per_thread + 2 * s.block, 0, sizeof(float) * (s.u + (size_t)K));
#pragma omp parallel for num_threads(g->threads) schedule(static) if (g->threads > 1)
    for (int64_t t0 = 0; t0 < tiles; t0 += tb) {
        const int64_t nt = tiles - t0 < tb ? tiles - t0 : tb;
        float *v = threads + (size_t)omp_get_thread_num() * s.per_thread, *m = v + s.block, *du = m + s.block,
              *dbt = du + s.u;
        if (dx) { /* V' [16][nt][K] of dy, M' [16][nt][C] */
            input_transform(&tl, dy, K, t0, nt, zero, v);
            for (int e = 0; e < 16; e++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nt, (int)C, (int)K, 1.0f,
                            v + e * plane_of(nt, K), (int)K, u + rotated(e) * plane_of(C, K), (int)K, 0.0f,
                            m + e * plane_of(nt, C), (int)C);
            output_transform(&tl, m, C, t0, nt, NULL, dx, dx_add, false, 0);
        }
        if (weights) { /* V [16][nt][C] of x, dM [16][nt][K] of dy */
            gradient_transform(&tl, dy, K, t0, nt, zero, m, dbt);
            if (!dw) continue;
            input_transform(&tl, x, C, t0, nt, zero, v);
            for (int e = 0; e < 16; e++)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)C, (int)K, (int)nt, 1.0f,
                            v + e * plane_of(nt, C), (int)C, m + e * plane_of(nt, K), (int)K, 1.0f,
                            du + e * plane_of(C, K), (int)K);
        }
    }
    if (!weights) return;
    float *du = threads + 2 * s.block, *dbt = du + s.u;
    for (int i = 1; i < g->threads; i++) {
        const float *o = du + (size_t)i * s.per_thread;
        for (size_t j = 0; j < s.u + (size_t)K; j++) du[j] += o[j];
    }
    if (dw) weights_gradient(g, du, dw, accumulate);
    for (int64_t k = 0; db && k < K; k++) db[k] = accumulate ? db[k] + dbt[k] : dbt[k];
}
