/* Conv2d property test: seeded random geometries of the kind the models and collapse
 * make, run as the library runs them (a one-conv graph through the executor, in both
 * activation layouts, with the ReLU or ReLU6 that follows fused into the convolution when
 * the geometry has one), against a float64 direct convolution written below, computed
 * from the same float32 inputs:
 *   x [B, C, H, W]   W [F, C/g, kh, kw]   b [F]   z, y, dy [B, F, Ho, Wo]
 *   forward      z[b,f,o,p] = b[f] + sum_{c,i,j} W[f,c,i,j] x[b, G(f) C/g + c, o sh - ph + i, p sw - pw + j]
 *                (G(f) = f / (F/g), output channel f's group; x is 0 outside the image)
 *                y = z, max(z, 0) or min(max(z, 0), 6)
 *   backward     dz = dy where the rectifier passes (read from the y the library returned,
 *                as its rectifier backward does), else 0
 *                dx[b, G(f) C/g + c, ...] = sum dz W     dW = sum_{b,o,p} dz x-patch   db = sum dz
 * and the backward contract (test_conv.c checks it on fixed cases): parameter gradients
 * are written over whatever was there (NaN here), or added with accumulate_grads; the
 * input gradient is added to what another consumer put there; with no input gradient
 * wanted, parameter gradients alone. A last, smaller batch through the same executor
 * (a second oneDNN plan) is checked on a share of geometries.
 *
 * Geometries (draw_geom): in/out channels 1..70 (most not multiples of 8 or 16: collapse
 * drops channels one by one), kernels 1/3/5/7 (some non-square), strides 1 and 2,
 * padding 0..k/2, groups 1, grouped (divisors of both channel counts) and depthwise, batch
 * 1..9, 1..17 pixels a side, bias on and off. A fifth are 1x1 stride-2 unpadded
 * convolutions (ResNet shortcuts after channels were dropped) with in_channels not a
 * multiple of 8, half of them below 16, batch >= 2, sides >= 4 and mostly even: oneDNN
 * 2.6's AVX2 and AVX-512 1x1 backward-weights kernels copy such an input into a
 * unit-stride workspace (only when the image is exactly twice the output) and, with a
 * channels-last source that has fewer channels than their block (8, 16), write past it
 * (uxlfoundation/oneDNN#6035: wrong weight gradients, heap corruption, hangs; batch 1
 * stays inside the slack), which src/backend/cpu/dnnl_conv.c has to steer clear of.
 * Without that, on this project's Xeon: AVX2 fails at 1 and 2 threads, release and
 * ASan (wrong dW, or glibc / ASan find the heap corrupted); AVX-512 at 2 threads (release:
 * heap corruption or a hang; ASan: now and then, its heap found corrupted at exit);
 * AVX-512 at 1 thread, and SSE4.1 (no 1x1 backward-weights kernel), pass.
 *
 * Reproducing: the default seed and count are fixed; NEP_CONV_PROPERTY_SEED=S and
 * NEP_CONV_PROPERTY_COUNT=N change them, NEP_CONV_PROPERTY_ONLY=I runs geometry I alone
 * (each geometry and its values come from its own generator, seeded from S and I, so I is
 * the same geometry whatever N is). A failure prints the geometry and the line that reruns
 * it; a crash, a sanitizer report or a hang (a geometry over HANG_S seconds) prints the
 * geometry that was running. Run once per ISA: ONEDNN_MAX_CPU_ISA=SSE41|AVX2|AVX512_CORE;
 * the ISA oneDNN ran is printed, and the worst error; NEP_TEST_VERBOSE adds where it was,
 * and the coverage.
 *
 * Tolerance, per tensor: |got - want| <= RTOL |want| + ATOL_REL scale, as test_conv.c
 * reasons: each output is a float32 sum of up to a few thousand products (forward:
 * C/g kh kw <= 3,430 terms; dW: B Ho Wo <= 2,601; dx: up to F/g kh kw), whose rounding
 * error grows with the sum of the terms' magnitudes, not with the (possibly cancelling)
 * result; scale = max|want| stands for that, as in test_conv.c, except that it is never
 * below the tensor's largest M / sqrt(n) (M the sum of an element's n term magnitudes;
 * see floor_of), which matters only for tensors of one or a few elements that all cancel
 * (one output channel's db or dW: 1,000 geometries of seeds 3, 5 and 6 have them at up
 * to 0.9 of the tolerance on max|want| alone). Blocked float32 accumulation (oneDNN splits the
 * reductions over channel blocks and threads) keeps the error near sqrt(terms) * 6e-8 of
 * the scale, under 4e-6 here; ATOL_REL = RTOL = 1e-5 leave a margin over it, while a
 * wrong or missing tap, sample, position or channel, or a stale gradient, is off by at
 * least one term, about 1/(3 sqrt(terms)) >= 5e-3 of the scale: hundreds of tolerances.
 * Measured over the 300 default geometries in both layouts, release and ASan, 1 and 2
 * threads, ISAs SSE41, AVX2 and AVX512_CORE: worst 0.16 of the tolerance (SSE4.1, forward
 * of #162: 65 -> 51 channels, 7x7 kernel on a 7x7 image, i.e. 3,185 terms into each of 51
 * outputs), about 2e-6 of the scale; over 1,000 geometries of each of seeds 1..6, 0.15.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "nepenthe/rng.h"
#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "testutil.h"

#define RTOL 1e-5
#define ATOL_REL 1e-5

#define DEFAULT_SEED 20240611u
#define DEFAULT_COUNT 300
/* Forward multiply-adds per geometry at most (B F Ho Wo C/g kh kw): keeps the float64
 * reference (three passes of this size) and the whole run fast; the largest channels x
 * kernel (70 x 70 x 7 x 7 = 240,100 per position) still fit at batch 1, one position. */
#define MAX_MACS 400000
/* A geometry takes milliseconds; one that runs this long has hung (oneDNN#6035 can spin). */
#define HANG_S 60
/* Failing geometries whose details are printed (the rest are counted). */
#define MAX_REPORTS 10

enum { ACT_NONE, ACT_RELU, ACT_RELU6 };
static const char *const act_names[] = {"none", "ReLU", "ReLU6"};
enum { KIND_DENSE, KIND_GROUPED, KIND_DEPTHWISE, KIND_1X1S2, KIND_COUNT };
static const char *const kind_names[] = {"dense", "grouped", "depthwise", "1x1 stride-2"};

typedef struct geom {
    int kind;
    int64_t B, C, F, H, W, Ho, Wo;
    int kh, kw, sh, sw, ph, pw, groups, act;
    bool bias;
} geom;

/* ---- the run's settings and what it found ------------------------------------------- */

static uint64_t seed = DEFAULT_SEED;
static int64_t count = DEFAULT_COUNT, only = -1;
static const char *layout_name = "?";

typedef struct stats {
    double worst;            /* largest error / tolerance over every comparison */
    char worst_at[640];
    int failed, reported;    /* geometries that failed; those printed in full */
} stats;
static stats st;

/* The geometry now running, for the crash, sanitizer and hang reports. */
static char running[512];

static void report_running(void) {
    if (!running[0]) return;
    static const char head[] = "\nconv property: died or hung while running ";
    static const char tail[] = "\n  (heap corruption can surface a few geometries after the one that did it)\n";
    ssize_t w = write(STDERR_FILENO, head, sizeof head - 1);
    w += write(STDERR_FILENO, running, strlen(running));
    w += write(STDERR_FILENO, tail, sizeof tail - 1);
    (void)w;
}

/* Async-signal-safe: write() only, then the signal's default action. */
static void on_fatal_signal(int sig) {
    report_running();
    signal(sig, SIG_DFL);
    raise(sig);
}

#if defined(__SANITIZE_ADDRESS__)
void __sanitizer_set_death_callback(void (*callback)(void));
#endif

static void install_reporters(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    /* cmocka replaces the SIGSEGV/SIGBUS handlers while a test runs (it then fails the
     * test and the teardown below reports); abort (glibc's heap checks) and the alarm
     * are ours. */
    const int sigs[] = {SIGABRT, SIGALRM, SIGSEGV, SIGBUS};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_set_death_callback(report_running);
#endif
}

static bool env_u64(const char *name, uint64_t *v) {
    const char *e = getenv(name);
    if (!e || !*e) return true;
    char *end;
    unsigned long long x = strtoull(e, &end, 0);
    if (*end || e[0] == '-') {
        fprintf(stderr, "%s=%s: not a non-negative integer\n", name, e);
        return false;
    }
    *v = x;
    return true;
}

static int group_setup(void **state) {
    uint64_t n = DEFAULT_COUNT, o = UINT64_MAX;
    if (!env_u64("NEP_CONV_PROPERTY_SEED", &seed) || !env_u64("NEP_CONV_PROPERTY_COUNT", &n) ||
        !env_u64("NEP_CONV_PROPERTY_ONLY", &o))
        return -1;
    count = (int64_t)n;
    only = o == UINT64_MAX ? -1 : (int64_t)o;
    const char *l = getenv("NEP_LAYOUT");
    layout_name = l ? l : "default";
    install_reporters();
    return 0;
}

/* ---- geometries ---------------------------------------------------------------------- */

static int64_t uniform(nep_rng *r, int64_t lo, int64_t hi) { /* lo..hi inclusive */
    return lo + (int64_t)nep_rng_below(r, (uint64_t)(hi - lo + 1));
}

/* 1..hi, a fifth of the time a width a model would have before collapse drops channels. */
static int64_t channels(nep_rng *r, int64_t hi) {
    static const int64_t widths[] = {1, 3, 8, 16, 24, 32, 48, 64};
    if (nep_rng_below(r, 5) == 0) {
        int64_t c = widths[nep_rng_below(r, sizeof widths / sizeof *widths)];
        if (c <= hi) return c;
    }
    return uniform(r, 1, hi);
}

static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

static int kernel_size(nep_rng *r) { return 1 + 2 * (int)nep_rng_below(r, 4); }

static int64_t macs(const geom *q) {
    return q->B * q->F * q->Ho * q->Wo * (q->C / q->groups) * q->kh * q->kw;
}

static void set_out(geom *q) {
    q->Ho = (q->H + 2 * q->ph - q->kh) / q->sh + 1;
    q->Wo = (q->W + 2 * q->pw - q->kw) / q->sw + 1;
}

/* Batch and image size: redrawn until the geometry fits MAX_MACS, else the smallest
 * (batch min_b, the kernel's own size or min_hw), which always fits. even: sides are even
 * (and at least 4) three times in four. */
static void draw_size(nep_rng *r, geom *q, int64_t min_b, int64_t min_hw, bool even) {
    const int64_t lo_h = imax(imax(1, q->kh - 2 * q->ph), min_hw);
    const int64_t lo_w = imax(imax(1, q->kw - 2 * q->pw), min_hw);
    for (int tries = 0; tries < 64; tries++) {
        q->B = uniform(r, min_b, 9);
        const bool ev = even && nep_rng_below(r, 4);
        q->H = ev ? 2 * uniform(r, imax(2, (lo_h + 1) / 2), 8) : uniform(r, lo_h, 17);
        /* Squares mostly (models' images), sometimes not. */
        q->W = nep_rng_below(r, 4) ? imax(q->H, lo_w)
               : ev ? 2 * uniform(r, imax(2, (lo_w + 1) / 2), 8) : uniform(r, lo_w, 17);
        set_out(q);
        if (macs(q) <= MAX_MACS) return;
    }
    q->B = min_b;
    q->H = lo_h;
    q->W = lo_w;
    set_out(q);
}

static geom draw_geom(nep_rng *r) {
    geom q = {.groups = 1};
    const uint64_t u = nep_rng_below(r, 100);
    q.kind = u < 20 ? KIND_1X1S2 : u < 40 ? KIND_DEPTHWISE : u < 55 ? KIND_GROUPED : KIND_DENSE;
    q.bias = nep_rng_below(r, 2);
    const uint64_t a = nep_rng_below(r, 20);
    q.act = a < 10 ? ACT_NONE : a < 17 ? ACT_RELU : ACT_RELU6;
    if (q.kind == KIND_1X1S2) {
        q.kh = q.kw = 1;
        q.sh = q.sw = 2;
        do q.C = nep_rng_below(r, 2) ? uniform(r, 1, 15) : uniform(r, 1, 70);
        while (q.C % 8 == 0);
        q.F = channels(r, 70);
        /* oneDNN's 1x1 kernels copy the input to the workspace (and so overflow it) only
         * when the image is exactly twice the output: even sides, mostly. */
        draw_size(r, &q, 2, 4, true);
        return q;
    }
    q.kh = kernel_size(r);
    q.kw = nep_rng_below(r, 10) ? q.kh : kernel_size(r);
    q.sh = 1 + (int)nep_rng_below(r, 2);
    q.sw = nep_rng_below(r, 10) ? q.sh : 1 + (int)nep_rng_below(r, 2);
    /* "Same" padding mostly (what the models use), any of 0..k/2 otherwise. */
    q.ph = nep_rng_below(r, 2) ? q.kh / 2 : (int)nep_rng_below(r, (uint64_t)(q.kh / 2 + 1));
    q.pw = q.kh == q.kw && nep_rng_below(r, 4) ? q.ph : (int)nep_rng_below(r, (uint64_t)(q.kw / 2 + 1));
    if (q.kind == KIND_DEPTHWISE) {
        q.C = q.F = q.groups = (int)channels(r, 70);
    } else if (q.kind == KIND_GROUPED) {
        q.groups = (int)uniform(r, 2, 8);
        q.C = q.groups * channels(r, 70 / q.groups);
        q.F = q.groups * channels(r, 70 / q.groups);
    } else {
        q.C = channels(r, 70);
        q.F = channels(r, 70);
    }
    draw_size(r, &q, 1, 1, false);
    return q;
}

/* Geometry i's generator under seed s: its own stream, so that i does not depend on the
 * count. */
static nep_rng geom_rng(uint64_t s, int64_t i) {
    nep_rng r;
    nep_rng_seed(&r, s ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1)));
    return r;
}

static void describe(const geom *q, int64_t i, char *buf, size_t n) {
    snprintf(buf, n,
             "#%lld (%s): B %lld, C %lld -> F %lld, %lldx%lld -> %lldx%lld, kernel %dx%d, "
             "stride %dx%d, pad %dx%d, groups %d, bias %d, %s; layout %s, oneDNN ISA %s; rerun: "
             "NEP_CONV_PROPERTY_SEED=%llu NEP_CONV_PROPERTY_ONLY=%lld",
             (long long)i, kind_names[q->kind], (long long)q->B, (long long)q->C, (long long)q->F,
             (long long)q->H, (long long)q->W, (long long)q->Ho, (long long)q->Wo, q->kh, q->kw,
             q->sh, q->sw, q->ph, q->pw, q->groups, (int)q->bias, act_names[q->act], layout_name,
             dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()), (unsigned long long)seed,
             (long long)i);
}

/* ---- float64 reference (NCHW, batch samples) ------------------------------------------ */

/* The input position tap (i, j) of output (o, p) reads, or false in the padding. */
static inline bool tap(const geom *q, int64_t o, int64_t p, int i, int j, int64_t *ih, int64_t *iw) {
    *ih = o * q->sh - q->ph + i;
    *iw = p * q->sw - q->pw + j;
    return *ih >= 0 && *ih < q->H && *iw >= 0 && *iw < q->W;
}

/* Each output element is a sum of n terms of magnitudes a_1..a_n; its float32 rounding
 * error scales with them. M / sqrt(n), M = sum a_j, is at most the typical size of such a
 * sum with random signs (sqrt(sum a_j^2) >= M / sqrt(n)): the largest over a tensor is its
 * floor() below, the scale check() uses where max|want| does not stand for it (a tensor of
 * one or a few elements, all cancelling). */
typedef struct mag {
    double sum, n;
} mag;
static double floor_of(const mag *m, int64_t n) {
    double f = 0;
    for (int64_t i = 0; i < n; i++)
        if (m[i].n > 0) f = fmax(f, m[i].sum / sqrt(m[i].n));
    return f;
}

/* z = conv(x, w) + b, then the rectifier; returns y's floor. */
static double ref_forward(const geom *q, int64_t batch, const float *x, const float *w,
                          const float *b, double *y) {
    const int64_t Cg = q->C / q->groups, Fg = q->F / q->groups;
    double fl = 0;
    for (int64_t n = 0; n < batch; n++)
        for (int64_t f = 0; f < q->F; f++) {
            const float *wf = w + f * Cg * q->kh * q->kw;
            const float *xg = x + (n * q->C + f / Fg * Cg) * q->H * q->W;
            for (int64_t o = 0; o < q->Ho; o++)
                for (int64_t p = 0; p < q->Wo; p++) {
                    double acc = b ? b[f] : 0;
                    mag m = {b ? fabs(acc) : 0, b ? 1 : 0};
                    for (int64_t c = 0; c < Cg; c++)
                        for (int i = 0; i < q->kh; i++)
                            for (int j = 0; j < q->kw; j++) {
                                int64_t ih, iw;
                                if (!tap(q, o, p, i, j, &ih, &iw)) continue;
                                const double t = (double)wf[(c * q->kh + i) * q->kw + j] *
                                                 xg[(c * q->H + ih) * q->W + iw];
                                acc += t;
                                m.sum += fabs(t), m.n++;
                            }
                    fl = fmax(fl, floor_of(&m, 1));
                    if (q->act != ACT_NONE) acc = fmax(acc, 0);
                    if (q->act == ACT_RELU6) acc = fmin(acc, 6);
                    y[((n * q->F + f) * q->Ho + o) * q->Wo + p] = acc;
                }
        }
    return fl;
}

/* dx = conv_transpose(dz, w); dw, db = sums over samples and positions of dz x, dz; and
 * their floors fl[0..2]. */
static void ref_backward(const geom *q, int64_t batch, const float *x, const float *w,
                         const float *dz, double *dx, double *dw, double *db, double fl[3]) {
    const int64_t Cg = q->C / q->groups, Fg = q->F / q->groups, K = Cg * q->kh * q->kw;
    const int64_t nx = batch * q->C * q->H * q->W, nw = q->F * K;
    memset(dx, 0, sizeof(double) * (size_t)nx);
    memset(dw, 0, sizeof(double) * (size_t)nw);
    memset(db, 0, sizeof(double) * (size_t)q->F);
    mag *mx = calloc((size_t)nx, sizeof *mx), *mw = calloc((size_t)nw, sizeof *mw);
    mag *mb = calloc((size_t)q->F, sizeof *mb);
    assert_true(mx && mw && mb);
    for (int64_t n = 0; n < batch; n++)
        for (int64_t f = 0; f < q->F; f++) {
            const float *wf = w + f * K;
            const int64_t g0 = (n * q->C + f / Fg * Cg) * q->H * q->W;
            const float *xg = x + g0;
            double *dxg = dx + g0, *dwf = dw + f * K;
            mag *mxg = mx + g0, *mwf = mw + f * K;
            for (int64_t o = 0; o < q->Ho; o++)
                for (int64_t p = 0; p < q->Wo; p++) {
                    const double d = dz[((n * q->F + f) * q->Ho + o) * q->Wo + p];
                    if (d == 0) continue; /* rectified away: adds nothing */
                    db[f] += d;
                    mb[f].sum += fabs(d), mb[f].n++;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int i = 0; i < q->kh; i++)
                            for (int j = 0; j < q->kw; j++) {
                                int64_t ih, iw;
                                if (!tap(q, o, p, i, j, &ih, &iw)) continue;
                                const int64_t xi = (c * q->H + ih) * q->W + iw, wi = (c * q->kh + i) * q->kw + j;
                                const double tx = d * wf[wi], tw = d * xg[xi];
                                dxg[xi] += tx;
                                dwf[wi] += tw;
                                mxg[xi].sum += fabs(tx), mxg[xi].n++;
                                mwf[wi].sum += fabs(tw), mwf[wi].n++;
                            }
                }
        }
    fl[0] = floor_of(mx, nx), fl[1] = floor_of(mw, nw), fl[2] = floor_of(mb, q->F);
    free(mx), free(mw), free(mb);
}

/* ---- one geometry through the executor ------------------------------------------------ */

/* What the checks of one geometry report under. */
typedef struct ctx {
    char desc[512];
    bool failed;
} ctx;

/* Largest error / tolerance of got against scale * want (n values, floor as the reference
 * gave it), recorded in st; on failure prints the element, and the geometry once. */
static void check(ctx *c, const char *what, const float *got, const double *want, int64_t n,
                  double scale, double floor) {
    double big = scale * floor;
    for (int64_t i = 0; i < n; i++) big = fmax(big, fabs(scale * want[i]));
    const double atol = ATOL_REL * big + 1e-30;
    double worst = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - scale * want[i]) / (atol + RTOL * fabs(scale * want[i]));
        if (!(e <= worst)) { /* also catches NaN */
            worst = isnan(e) ? INFINITY : e;
            wi = i;
        }
    }
    if (worst > st.worst) {
        st.worst = worst;
        snprintf(st.worst_at, sizeof st.worst_at, "%s of %s", what, c->desc);
    }
    if (worst <= 1) return;
    if (!c->failed && ++st.failed <= MAX_REPORTS) {
        fprintf(stderr, "conv property FAILED: %s\n", c->desc);
        st.reported++;
    }
    c->failed = true;
    if (st.failed <= MAX_REPORTS)
        fprintf(stderr, "  %s: element %lld of %lld: got %.9g, expected %.9g (%.3g of the tolerance; "
                "scale %.3g)\n", what, (long long)wi, (long long)n, (double)got[wi],
                scale * want[wi], worst, big);
}

static float *normal_floats(nep_rng *r, int64_t n, double sd) {
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    assert_non_null(v);
    for (int64_t i = 0; i < n; i++) v[i] = (float)(sd * nep_rng_normal(r));
    return v;
}

/* The float64 backward of one executor run, NCHW (dz: from the y it returned). */
typedef struct run_refs {
    double *dx, *dw, *db;
    float *dz;
} run_refs;

/* node id's [batch, C, H, W] gradient buffer as the executor keeps it -> NCHW. */
static void grad_to_nchw(const nep_exec *ex, int id, int64_t batch, float *nchw) {
    const nep_shape *s = &nep_exec_graph(ex)->nodes[id].shape;
    const float *src = nep_exec_node_grad(ex, id);
    if (nep_layout_moves(nep_exec_channels_last(ex), s)) nep_nhwc_to_nchw(src, nchw, batch, s->d[0], s->d[1] * s->d[2], false);
    else memcpy(nchw, src, sizeof(float) * (size_t)(batch * nep_shape_numel(s)));
}

static void run_geometry(int64_t idx) {
    nep_rng r = geom_rng(seed, idx);
    const geom g0 = draw_geom(&r), *q = &g0;
    nep_rng vr = nep_rng_split(&r);
    ctx c = {.failed = false};
    describe(q, idx, c.desc, sizeof c.desc);
    snprintf(running, sizeof running, "%s", c.desc);
    alarm(HANG_S);

    /* input -> conv [-> ReLU | ReLU6]: the rectifier alone reads the conv, so the
     * executor fuses it (asserted below). */
    nep_graph g;
    nep_graph_init(&g);
    const nep_attrs at = {.conv = {.features = q->F, .bias = q->bias, .kernel = {q->kh, q->kw},
                                   .stride = {q->sh, q->sw}, .pad = {q->ph, q->pw}, .groups = q->groups}};
    const int in = nep_graph_input(&g, "input", (nep_shape){3, {q->C, q->H, q->W}});
    const int conv = nep_graph_add1(&g, NEP_OP_CONV2D, "conv", in, at);
    const int64_t Cg = q->C / q->groups, K = Cg * q->kh * q->kw;
    const int pw = nep_graph_add_param(&g, conv, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 4,
                                       (int64_t[]){q->F, Cg, q->kh, q->kw});
    const int pb = q->bias ? nep_graph_add_param(&g, conv, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){q->F}) : -1;
    int act = -1;
    if (q->act != ACT_NONE)
        act = nep_graph_add1(&g, q->act == ACT_RELU ? NEP_OP_RELU : NEP_OP_RELU6, "act", conv, (nep_attrs){0});
    nep_err err;
    nep_test_assert_ok(nep_graph_finalize(&g, &err), &err);
    assert_int_equal(g.nodes[conv].shape.d[1], q->Ho);
    assert_int_equal(g.nodes[conv].shape.d[2], q->Wo);

    /* Values: x ~ N(0, 1); weights ~ N(0, 3 / fan_in), so that z spreads over a few
     * units and ReLU6 clips some of it; bias ~ N(0, 1); dy ~ N(0, 1). */
    const int64_t B = q->B, nx = B * q->C * q->H * q->W, ny = B * q->F * q->Ho * q->Wo, nw = q->F * K;
    float *x = normal_floats(&vr, nx, 1), *dy = normal_floats(&vr, ny, 1);
    float *w = g.values + g.params[pw].offset, *b = q->bias ? g.values + g.params[pb].offset : NULL;
    float *wv = normal_floats(&vr, nw, sqrt(3.0 / (double)K)), *bv = normal_floats(&vr, q->F, 1);
    memcpy(w, wv, sizeof(float) * (size_t)nw);
    if (b) memcpy(b, bv, sizeof(float) * (size_t)q->F);
    free(wv), free(bv);
    float *gw = g.grads + g.params[pw].offset, *gb = q->bias ? g.grads + g.params[pb].offset : NULL;

    nep_exec *ex;
    nep_test_assert_ok(nep_exec_new(&ex, &g, B, NULL, &err), &err);
    nep_test_assert_ok(nep_exec_enable_input_grad(ex, &err), &err);
    if (act >= 0) assert_int_equal(nep_exec_fused_rectifier(ex, conv), act);

    double *yref = malloc(sizeof(double) * (size_t)ny);
    run_refs rr = {malloc(sizeof(double) * (size_t)nx),
                   malloc(sizeof(double) * (size_t)nw), malloc(sizeof(double) * (size_t)q->F),
                   malloc(sizeof(float) * (size_t)ny)};
    float *dxe = malloc(sizeof(float) * (size_t)nx);
    assert_true(yref && rr.dx && rr.dw && rr.db && rr.dz && dxe);

    /* Full batch, then (a share of geometries) a smaller last batch: a second plan. */
    const int64_t batches[2] = {B, B > 1 && idx % 4 == 1 ? uniform(&vr, 1, B - 1) : 0};
    for (int k = 0; k < 2 && batches[k]; k++) {
        const int64_t n = batches[k], mx = n * q->C * q->H * q->W, my = n * q->F * q->Ho * q->Wo;
        char tag[32];
        snprintf(tag, sizeof tag, "%s", k ? "partial batch " : "");
        /* Garbage where the gradients go: they must be written, not added to. */
        for (int64_t i = 0; i < g.n_values; i++) g.grads[i] = NAN;
        for (int64_t i = 0; i < mx; i++) nep_exec_node_grad(ex, in)[i] = NAN;

        const float *y = nep_exec_forward(ex, x, n);
        const double fy = ref_forward(q, n, x, w, b, yref);
        char what[64];
        snprintf(what, sizeof what, "%sy", tag);
        check(&c, what, y, yref, my, 1, fy);
        /* The rectifier's backward reads its mask from the y it stored. */
        for (int64_t i = 0; i < my; i++) {
            const bool pass = q->act == ACT_NONE || (y[i] > 0 && (q->act == ACT_RELU || y[i] < 6));
            rr.dz[i] = pass ? dy[i] : 0;
        }
        double fl[3];
        ref_backward(q, n, x, w, rr.dz, rr.dx, rr.dw, rr.db, fl);
        nep_exec_backward(ex, dy);
        snprintf(what, sizeof what, "%sdx", tag);
        check(&c, what, nep_exec_input_grad(ex), rr.dx, mx, 1, fl[0]);
        snprintf(what, sizeof what, "%sdW", tag);
        check(&c, what, gw, rr.dw, nw, 1, fl[1]);
        if (gb) {
            snprintf(what, sizeof what, "%sdb", tag);
            check(&c, what, gb, rr.db, q->F, 1, fl[2]);
        }
        if (k) break;

        /* The contract. The op's backward again, alone (as after another consumer):
         * dx added to the one there (2x), dW, db written (1x) over garbage again. */
        for (int64_t i = 0; i < g.n_values; i++) g.grads[i] = NAN;
        nep_exec_node_backward(ex, conv);
        grad_to_nchw(ex, in, n, dxe);
        check(&c, "dx added to", dxe, rr.dx, mx, 2, fl[0]);
        check(&c, "dW rewritten", gw, rr.dw, nw, 1, fl[1]);
        if (gb) check(&c, "db rewritten", gb, rr.db, q->F, 1, fl[2]);
        /* No input gradient wanted (an executor without one): parameter gradients only
         * (written). */
        for (int64_t i = 0; i < nw; i++) gw[i] = NAN;
        nep_exec *no_dx;
        nep_test_assert_ok(nep_exec_new(&no_dx, &g, B, NULL, &err), &err);
        nep_exec_forward(no_dx, x, n);
        nep_exec_backward(no_dx, dy);
        nep_exec_free(no_dx);
        check(&c, "dW without dx", gw, rr.dw, nw, 1, fl[1]);
        /* accumulate_grads: dW, db added (2x); the input gradient written afresh. */
        nep_exec_set_accumulate(ex, true);
        nep_exec_backward(ex, dy);
        nep_exec_set_accumulate(ex, false);
        check(&c, "dx after accumulate", nep_exec_input_grad(ex), rr.dx, mx, 1, fl[0]);
        check(&c, "dW accumulated", gw, rr.dw, nw, 2, fl[1]);
        if (gb) check(&c, "db accumulated", gb, rr.db, q->F, 2, fl[2]);
    }

    free(x), free(dy), free(yref), free(dxe);
    free(rr.dx), free(rr.dw), free(rr.db), free(rr.dz);
    nep_exec_free(ex); /* where a corrupted heap often shows */
    nep_graph_free(&g);
    alarm(0);
    running[0] = 0;
}

static void test_random_geometries(void **state) {
    st = (stats){0};
    fprintf(stderr, "conv property: seed %llu, %lld geometries, layout %s, oneDNN ISA %s\n",
            (unsigned long long)seed, (long long)(only >= 0 ? 1 : count), layout_name,
            dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()));
    for (int64_t i = only >= 0 ? only : 0; i < (only >= 0 ? only + 1 : count); i++) run_geometry(i);
    fprintf(stderr, "conv property: worst error %.3g of the tolerance%s%s\n", st.worst,
            getenv("NEP_TEST_VERBOSE") ? ", at " : "", getenv("NEP_TEST_VERBOSE") ? st.worst_at : "");
    if (st.failed)
        fprintf(stderr, "conv property: %d of %lld geometries failed (%d printed)\n", st.failed,
                (long long)(only >= 0 ? 1 : count), st.reported);
    assert_int_equal(st.failed, 0);
}

/* The default run's geometries (whatever the environment says) cover what the header
 * promises, so that a change to the generator cannot quietly drop a case. */
static void test_coverage(void **state) {
    const int64_t n = DEFAULT_COUNT;
    int kinds[KIND_COUNT] = {0}, kernels[8] = {0}, strides[3] = {0}, acts[3] = {0};
    int bias = 0, batch1 = 0, batch9 = 0, odd_c = 0, small_1x1 = 0, padded_less = 0, non_square = 0;
    int64_t max_c = 0, max_f = 0, max_hw = 0, min_hw = 99;
    for (int64_t i = 0; i < n; i++) {
        nep_rng r = geom_rng(DEFAULT_SEED, i);
        const geom q = draw_geom(&r);
        assert_true(q.C >= 1 && q.C <= 70 && q.F >= 1 && q.F <= 70 && q.B >= 1 && q.B <= 9);
        assert_true(q.H >= 1 && q.H <= 17 && q.W >= 1 && q.W <= 17 && macs(&q) <= MAX_MACS);
        assert_true(q.C % q.groups == 0 && q.F % q.groups == 0 && q.ph <= q.kh / 2 && q.pw <= q.kw / 2);
        kinds[q.kind]++, kernels[q.kh]++, kernels[q.kw]++, strides[q.sh]++, strides[q.sw]++, acts[q.act]++;
        bias += q.bias, batch1 += q.B == 1, batch9 += q.B == 9, non_square += q.kh != q.kw;
        odd_c += q.C % 8 != 0 && q.C % 16 != 0;
        small_1x1 += q.kind == KIND_1X1S2 && q.C < 16 && q.H % 2 == 0 && q.W % 2 == 0; /* #6035's */
        padded_less += q.ph < q.kh / 2;
        max_c = q.C > max_c ? q.C : max_c, max_f = q.F > max_f ? q.F : max_f;
        max_hw = q.H > max_hw ? q.H : max_hw, min_hw = q.H < min_hw ? q.H : min_hw;
    }
    if (getenv("NEP_TEST_VERBOSE"))
        fprintf(stderr, "coverage of %lld: dense %d, grouped %d, depthwise %d, 1x1s2 %d (C < 16, even sides: %d); "
                "kernel sides 1/3/5/7: %d/%d/%d/%d (non-square %d); strides 1/2: %d/%d; "
                "act none/ReLU/ReLU6: %d/%d/%d; bias %d; batch 1: %d, 9: %d; C not /8: %d; "
                "less than same padding: %d; max C %lld, F %lld; H %lld..%lld\n",
                (long long)n, kinds[0], kinds[1], kinds[2], kinds[3], small_1x1, kernels[1],
                kernels[3], kernels[5], kernels[7], non_square, strides[1], strides[2], acts[0],
                acts[1], acts[2], bias, batch1, batch9, odd_c, padded_less, (long long)max_c,
                (long long)max_f, (long long)min_hw, (long long)max_hw);
    for (int k = 0; k < KIND_COUNT; k++) assert_true(kinds[k] >= n / 20);
    for (int k = 1; k <= 7; k += 2) assert_true(kernels[k] >= n / 20);
    assert_true(strides[1] >= n / 4 && strides[2] >= n / 4);
    assert_true(acts[1] >= n / 20 && acts[2] >= n / 20);
    assert_true(bias >= n / 4 && n - bias >= n / 4);
    assert_true(batch1 > 0 && batch9 > 0 && non_square > 0 && padded_less > 0);
    assert_true(small_1x1 >= n / 20 && odd_c >= n / 2);
    assert_true(max_c >= 60 && max_f >= 60 && min_hw == 1 && max_hw == 17);
}

/* A crash cmocka caught (SIGSEGV) leaves the geometry it was running: say which. */
static int test_teardown(void **state) {
    if (running[0]) {
        report_running();
        running[0] = 0;
        alarm(0);
    }
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_random_geometries, test_teardown),
        cmocka_unit_test(test_coverage),
    };
    return NEP_RUN_BOTH_LAYOUTS(tests, group_setup, NULL);
}
