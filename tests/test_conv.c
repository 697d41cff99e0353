/* Conv2d forward and backward against PyTorch (build/golden/conv.safetensors, written
 * by tests/golden/gen_conv.py: float32 inputs, float64 references computed by PyTorch
 * from those inputs), and the backward contract: parameter gradients written, or added
 * with accumulate_grads; the input gradient always added to what is there.
 * Tolerance: |got - want| <= RTOL |want| + ATOL_REL * max|want| per tensor. Each output
 * is a float32 sum of up to a few thousand products (weight gradients sum over batch and
 * positions), whose rounding error grows with the sum of the terms' magnitudes, not with
 * the (possibly cancelling) result; max|want| stands for that scale. Measured (oneDNN
 * 2.6, AVX-512 kernels): direct kernels about 1e-6 of max|want|, Winograd (c32, c64)
 * within 3e-6: under a third of the tolerance. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "backend/cpu/dnnl_conv.h"
#include "nepenthe/rng.h"
#include "nepenthe/safetensors.h"
#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "testutil.h"

#define RTOL 1e-5
#define ATOL_REL 1e-5

static nep_safetensors golden;

static int load_golden(void **state) { return nep_test_read_golden("conv.safetensors", &golden); }
static int free_golden(void **state) {
    nep_st_free(&golden);
    return 0;
}

/* Compares n values of got with golden cs.name times `scale` (scale 2: added twice). */
static void expect_n(const char *cs, const char *name, const nep_real *got, int64_t n, double scale) {
    const nep_st_tensor *t = nep_test_case_tensor(&golden, cs, name);
    assert_true(n <= t->numel);
    double *want = nep_test_as_f64(t), big = 0;
    for (int64_t i = 0; i < n; i++) {
        want[i] *= scale;
        big = fmax(big, fabs(want[i]));
    }
    char what[128];
    snprintf(what, sizeof what, "conv %s.%s%s", cs, name, scale != 1 ? " (x2)" : "");
    NEP_ASSERT_CLOSE(got, want, n, RTOL, ATOL_REL * big + 1e-30, what);
    free(want);
}
static void expect(const char *cs, const char *name, const nep_real *got) {
    expect_n(cs, name, got, nep_test_case_tensor(&golden, cs, name)->numel, 1);
}

/* Attributes of golden case cs from its metadata "C,F,kh,kw,sh,sw,ph,pw,groups,bias". */
static nep_attrs case_attrs(const char *cs) {
    const char *m = nep_st_meta_get(&golden, cs);
    assert_non_null(m);
    int v[10];
    assert_int_equal(sscanf(m, "%d,%d,%d,%d,%d,%d,%d,%d,%d,%d", &v[0], &v[1], &v[2], &v[3], &v[4],
                            &v[5], &v[6], &v[7], &v[8], &v[9]), 10);
    return (nep_attrs){.conv = {.features = v[1], .kernel = {v[2], v[3]}, .stride = {v[4], v[5]},
                                .pad = {v[6], v[7]}, .groups = v[8], .bias = v[9] != 0}};
}

typedef struct fixture {
    nep_graph g;
    nep_exec *ex;
    int id;
    int64_t B;
    nep_real *x, *gy;
} fixture;

/* One-conv graph of case cs with the golden parameters, executor for its batch. */
static void setup(fixture *f, const char *cs) {
    const nep_st_tensor *tx = nep_test_case_tensor(&golden, cs, "x");
    nep_shape in = {3, {tx->shape[1], tx->shape[2], tx->shape[3]}};
    f->B = tx->shape[0];
    f->id = nep_test_op_graph(&f->g, NEP_OP_CONV2D, case_attrs(cs), in);
    const char *pnames[] = {"weight", "bias"};
    for (int k = 0; k < f->g.nodes[f->id].n_params; k++) {
        const nep_param *p = &f->g.params[f->g.nodes[f->id].params[k]];
        const nep_st_tensor *t = nep_test_case_tensor(&golden, cs, pnames[k]);
        assert_int_equal(t->numel, p->numel);
        nep_real *v = nep_test_as_real(t);
        memcpy(f->g.values + p->offset, v, sizeof(nep_real) * (size_t)p->numel);
        free(v);
    }
    assert_int_equal(nep_exec_new(&f->ex, &f->g, f->B, NULL, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(f->ex, NULL), NEP_OK);
    f->x = nep_test_as_real(tx);
    f->gy = nep_test_as_real(nep_test_case_tensor(&golden, cs, "gy"));
}

static void teardown(fixture *f) {
    free(f->x);
    free(f->gy);
    nep_exec_free(f->ex);
    nep_graph_free(&f->g);
}

static nep_real *grad(fixture *f, int k) { return f->g.grads + f->g.params[f->g.nodes[f->id].params[k]].offset; }

static void check_case(const char *cs) {
    fixture f;
    setup(&f, cs);
    const nep_real *y = nep_exec_forward(f.ex, f.x, f.B);
    const nep_shape *s = &f.g.nodes[f.id].shape;
    const nep_st_tensor *ty = nep_test_case_tensor(&golden, cs, "y");
    assert_int_equal(ty->numel, f.B * nep_shape_numel(s));
    for (int d = 0; d < 3; d++) assert_int_equal(ty->shape[d + 1], s->d[d]);
    expect(cs, "y", y);
    nep_exec_backward(f.ex, f.gy);
    expect(cs, "gx", nep_exec_input_grad(f.ex));
    expect(cs, "gweight", grad(&f, 0));
    if (f.g.nodes[f.id].attrs.conv.bias) expect(cs, "gbias", grad(&f, 1));
    teardown(&f);
}

static void test_k3s1_bias(void **s) { check_case("k3s1_bias"); }
static void test_k3s2(void **s) { check_case("k3s2"); }
static void test_k1s2_shortcut(void **s) { check_case("k1s2"); }
static void test_depthwise_s1_bias(void **s) { check_case("dw_s1_bias"); }
static void test_depthwise_s2(void **s) { check_case("dw_s2"); }
static void test_groups2(void **s) { check_case("grp2"); }
static void test_non_square(void **s) { check_case("rect"); }
static void test_stem_3_channels(void **s) { check_case("stem"); }
static void test_c16(void **s) { check_case("c16"); }
static void test_c16_s2(void **s) { check_case("c16s2"); }
static void test_k5_no_padding(void **s) { check_case("k5p0"); }
static void test_c32(void **s) { check_case("c32"); }
static void test_c64(void **s) { check_case("c64"); }
static void test_depthwise_2x2(void **s) { check_case("dw_tiny"); }
static void test_1x1_2x2(void **s) {
    check_case("k1_tiny");
    check_case("k1_tiny_back");
    check_case("dw_720");
}

/* Parameter gradients are written (whatever was there) unless accumulate_grads, then
 * added; run twice on the same plan. */
static void test_accumulate_grads(void **s) {
    const char *cs = "k3s1_bias";
    fixture f;
    setup(&f, cs);
    for (int64_t i = 0; i < f.g.n_values; i++) f.g.grads[i] = 1e3f;
    nep_exec_forward(f.ex, f.x, f.B);
    nep_exec_backward(f.ex, f.gy);
    expect(cs, "gweight", grad(&f, 0));
    expect(cs, "gbias", grad(&f, 1));
    nep_exec_set_accumulate(f.ex, true);
    nep_exec_forward(f.ex, f.x, f.B);
    nep_exec_backward(f.ex, f.gy);
    const int64_t nw = nep_test_case_tensor(&golden, cs, "gweight")->numel, nb = nep_test_case_tensor(&golden, cs, "gbias")->numel;
    expect_n(cs, "gweight", grad(&f, 0), nw, 2);
    expect_n(cs, "gbias", grad(&f, 1), nb, 2);
    /* And written again once accumulation is off. */
    nep_exec_set_accumulate(f.ex, false);
    nep_exec_backward(f.ex, f.gy);
    expect(cs, "gweight", grad(&f, 0));
    teardown(&f);
}

/* Node id's [B, C, H, W] tensor between NCHW and the executor's layout. */
static void to_exec(const fixture *f, int id, const nep_real *nchw, nep_real *dst) {
    const nep_shape *s = &f->g.nodes[id].shape;
    if (nep_exec_channels_last(f->ex)) nep_nchw_to_nhwc(nchw, dst, f->B, s->d[0], s->d[1] * s->d[2], false);
    else memcpy(dst, nchw, sizeof(nep_real) * (size_t)(f->B * nep_shape_numel(s)));
}
static void from_exec(const fixture *f, int id, const nep_real *src, nep_real *nchw) {
    const nep_shape *s = &f->g.nodes[id].shape;
    if (nep_exec_channels_last(f->ex)) nep_nhwc_to_nchw(src, nchw, f->B, s->d[0], s->d[1] * s->d[2], false);
    else memcpy(nchw, src, sizeof(nep_real) * (size_t)(f->B * nep_shape_numel(s)));
}

/* The op's backward adds to the input gradient: call it directly on a buffer that
 * already holds another consumer's contribution (here: the golden gx itself). */
static void test_dx_accumulates(void **s) {
    const char *cases[] = {"k3s1_bias", "dw_s2", "c16s2", "c32"};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        fixture f;
        setup(&f, cases[c]);
        nep_exec_forward(f.ex, f.x, f.B);
        const int64_t nx = f.B * nep_shape_numel(&f.g.nodes[f.g.input].shape);
        to_exec(&f, f.id, f.gy, nep_exec_node_grad(f.ex, f.id));
        nep_real *gx = nep_test_as_real(nep_test_case_tensor(&golden, cases[c], "gx"));
        nep_real *got = malloc(sizeof(nep_real) * (size_t)nx);
        to_exec(&f, f.g.input, gx, nep_exec_node_grad(f.ex, f.g.input));
        nep_exec_node_backward(f.ex, f.id);
        from_exec(&f, f.g.input, nep_exec_node_grad(f.ex, f.g.input), got);
        expect_n(cases[c], "gx", got, nx, 2);
        /* dx NULL (an executor whose input needs no gradient): parameter gradients only. */
        nep_exec *no_dx;
        assert_int_equal(nep_exec_new(&no_dx, &f.g, f.B, NULL, NULL), NEP_OK);
        nep_exec_forward(no_dx, f.x, f.B);
        to_exec(&f, f.id, f.gy, nep_exec_node_grad(no_dx, f.id));
        nep_exec_node_backward(no_dx, f.id);
        nep_exec_free(no_dx);
        expect(cases[c], "gweight", grad(&f, 0));
        free(gx);
        free(got);
        teardown(&f);
    }
}

/* A smaller batch through the same executor (a last partial batch): new primitives,
 * same per-sample results. */
static void test_partial_batch(void **s) {
    const char *cs = "c16s2";
    fixture f;
    setup(&f, cs);
    const int64_t b = f.B - 1;
    const nep_real *y = nep_exec_forward(f.ex, f.x, b);
    expect_n(cs, "y", y, b * nep_shape_numel(&f.g.nodes[f.id].shape), 1);
    nep_exec_backward(f.ex, f.gy);
    expect_n(cs, "gx", nep_exec_input_grad(f.ex), b * nep_shape_numel(&f.g.nodes[f.g.input].shape), 1);
    y = nep_exec_forward(f.ex, f.x, f.B);
    expect(cs, "y", y);
    teardown(&f);
}

/* x -> a = conv(x) -> b = conv(a); out = a + b. Both convs have the same geometry (so
 * they share oneDNN primitives and buffers) but different inputs; a's gradient comes
 * from the Add and from b's backward-data. */
static void test_chain(void **s) {
    const char *cs = "chain";
    nep_graph g;
    nep_graph_init(&g);
    nep_attrs at = {.conv = {.features = 16, .bias = true, .kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1}, .groups = 1}};
    int x = nep_graph_input(&g, "input", (nep_shape){3, {16, 8, 8}});
    int a = nep_graph_add1(&g, NEP_OP_CONV2D, "a", x, at);
    int b = nep_graph_add1(&g, NEP_OP_CONV2D, "b", a, at);
    const int64_t wshape[4] = {16, 16, 3, 3}, bshape[1] = {16};
    int pw[2], pb[2], nodes[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        pw[k] = nep_graph_add_param(&g, nodes[k], "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 4, wshape);
        pb[k] = nep_graph_add_param(&g, nodes[k], "bias", NEP_PARAM_TRAINABLE, 1, bshape);
    }
    nep_graph_add(&g, NEP_OP_ADD, "sum", (int[]){a, b}, 2, (nep_attrs){0});
    assert_int_equal(nep_graph_finalize(&g, NULL), NEP_OK);
    const char *names[4] = {"a.weight", "a.bias", "b.weight", "b.bias"};
    const int pidx[4] = {pw[0], pb[0], pw[1], pb[1]};
    for (int k = 0; k < 4; k++) {
        nep_real *v = nep_test_as_real(nep_test_case_tensor(&golden, cs, names[k]));
        memcpy(g.values + g.params[pidx[k]].offset, v, sizeof(nep_real) * (size_t)g.params[pidx[k]].numel);
        free(v);
    }
    const nep_st_tensor *tx = nep_test_case_tensor(&golden, cs, "x");
    const int64_t B = tx->shape[0];
    nep_exec *ex;
    assert_int_equal(nep_exec_new(&ex, &g, B, NULL, NULL), NEP_OK);
    assert_int_equal(nep_exec_enable_input_grad(ex, NULL), NEP_OK);
    nep_real *xv = nep_test_as_real(tx), *gy = nep_test_as_real(nep_test_case_tensor(&golden, cs, "gy"));
    expect(cs, "y", nep_exec_forward(ex, xv, B));
    nep_exec_backward(ex, gy);
    expect(cs, "gx", nep_exec_input_grad(ex));
    const char *gnames[4] = {"a.gweight", "a.gbias", "b.gweight", "b.gbias"};
    for (int k = 0; k < 4; k++) expect(cs, gnames[k], g.grads + g.params[pidx[k]].offset);
    free(xv);
    free(gy);
    nep_exec_free(ex);
    nep_graph_free(&g);
}

/* [N, C, H, W] <-> [N, H, W, C]. */
static void to_nhwc(const float *a, float *b, int64_t N, int64_t C, int64_t HW) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t k = 0; k < HW; k++) b[(n * HW + k) * C + c] = a[(n * C + c) * HW + k];
}
static void to_nchw(const float *a, float *b, int64_t N, int64_t C, int64_t HW) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t k = 0; k < HW; k++) b[(n * C + c) * HW + k] = a[(n * HW + k) * C + c];
}

/* The executor's layout moves (src/backend/cpu/layout.c, tiled) equal the plain loops above, for
 * sizes that are and are not multiples of the tile, overwriting and adding. */
static void test_layout_moves(void **s) {
    const int64_t shapes[][3] = {{2, 3, 5}, {3, 16, 32}, {2, 17, 33}, {1, 1, 7}, {4, 40, 1}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const int64_t N = shapes[k][0], C = shapes[k][1], HW = shapes[k][2], n = N * C * HW;
        float *a = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n);
        float *got = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) a[i] = (float)(i * 7 % 101) - 50;
        to_nhwc(a, want, N, C, HW);
        nep_nchw_to_nhwc(a, got, N, C, HW, false);
        assert_memory_equal(got, want, sizeof(float) * (size_t)n);
        nep_nchw_to_nhwc(a, got, N, C, HW, true); /* got = 2 * want */
        for (int64_t i = 0; i < n; i++) assert_true(got[i] == 2 * want[i]);
        to_nchw(want, got, N, C, HW);
        assert_memory_equal(got, a, sizeof(float) * (size_t)n);
        nep_nhwc_to_nchw(want, got, N, C, HW, false);
        assert_memory_equal(got, a, sizeof(float) * (size_t)n);
        nep_nhwc_to_nchw(want, got, N, C, HW, true);
        for (int64_t i = 0; i < n; i++) assert_true(got[i] == 2 * a[i]);
        free(a), free(want), free(got);
    }
}

/* The backend with channels_last activations (what an executor keeping NHWC tensors
 * would call): same results, dx added to, dw/db written then accumulated. */
static void test_backend_nhwc(void **s) {
    const char *cases[] = {"k3s1_bias", "dw_s2", "grp2", "rect", "c16s2", "c32", "c64"};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const char *cs = cases[c];
        nep_attrs a = case_attrs(cs);
        const nep_st_tensor *tx = nep_test_case_tensor(&golden, cs, "x"), *ty = nep_test_case_tensor(&golden, cs, "y");
        nep_conv_geom q = {.batch = tx->shape[0], .in_c = tx->shape[1], .in_h = tx->shape[2],
                           .in_w = tx->shape[3], .out_c = ty->shape[1], .out_h = ty->shape[2],
                           .out_w = ty->shape[3], .kh = a.conv.kernel[0], .kw = a.conv.kernel[1],
                           .sh = a.conv.stride[0], .sw = a.conv.stride[1], .ph = a.conv.pad[0], .pw = a.conv.pad[1],
                           .groups = a.conv.groups, .bias = a.conv.bias, .nhwc = true};
        const int64_t N = q.batch, HWi = q.in_h * q.in_w, HWo = q.out_h * q.out_w;
        const int64_t nx = tx->numel, ny = ty->numel, nw = nep_test_case_tensor(&golden, cs, "weight")->numel;
        float *x = nep_test_as_real(tx), *gy = nep_test_as_real(nep_test_case_tensor(&golden, cs, "gy")), *w = nep_test_as_real(nep_test_case_tensor(&golden, cs, "weight"));
        float *b = a.conv.bias ? nep_test_as_real(nep_test_case_tensor(&golden, cs, "bias")) : NULL, *db = a.conv.bias ? malloc(sizeof(float) * (size_t)q.out_c) : NULL;
        float *xh = malloc(sizeof(float) * (size_t)nx), *gyh = malloc(sizeof(float) * (size_t)ny);
        float *yh = malloc(sizeof(float) * (size_t)ny), *y = malloc(sizeof(float) * (size_t)ny);
        float *dxh = malloc(sizeof(float) * (size_t)nx), *dx = malloc(sizeof(float) * (size_t)nx);
        float *dw = malloc(sizeof(float) * (size_t)nw);
        for (int64_t i = 0; i < nx; i++) dxh[i] = 7;
        to_nhwc(x, xh, N, q.in_c, HWi);
        to_nhwc(gy, gyh, N, q.out_c, HWo);
        nep_conv_plan *plan;
        assert_int_equal(nep_dnnl_conv_plan_new(&q, &plan, NULL), NEP_OK);
        void *scratch = aligned_alloc(64, (nep_dnnl_conv_scratch_bytes(plan) + 64) & ~(size_t)63);
        nep_dnnl_conv_forward(plan, scratch, xh, w, b, yh, NULL);
        to_nchw(yh, y, N, q.out_c, HWo);
        expect(cs, "y", y);
        for (int rep = 1; rep <= 2; rep++) {
            /* rep 1 overwrites dx (which holds garbage), rep 2 adds to it */
            nep_dnnl_conv_backward(plan, scratch, xh, NULL, w, gyh, dxh, rep == 2, dw, db, rep == 2);
            to_nchw(dxh, dx, N, q.in_c, HWi);
            expect_n(cs, "gx", dx, nx, rep);
            expect_n(cs, "gweight", dw, nw, rep);
            if (a.conv.bias) expect_n(cs, "gbias", db, q.out_c, rep);
        }
        free(x), free(gy), free(w), free(b), free(db), free(xh), free(gyh), free(yh), free(y);
        free(dxh), free(dx), free(dw), free(scratch);
        nep_dnnl_conv_plan_free(plan);
    }
}

/* uxlfoundation/oneDNN#6035: oneDNN 2.6's 1x1 kernels corrupt memory in strided
 * backward-weights (see avoid_1x1_kernels in dnnl_conv.c). On AVX2 and AVX-512 they are
 * oneDNN's first choice for these geometries, so this fails without the workaround (its
 * gradients and heap damage show in test_k1s2_shortcut and test_conv_property only
 * sometimes, and not at all under AddressSanitizer); the reference loops are no way
 * around it either. Forward and backward-data keep their 1x1 kernels. */
static void test_impl_avoids_6035(void **s) {
    const int channels[] = {1, 3, 6, 13, 16, 27, 64};
    for (size_t c = 0; c < sizeof channels / sizeof *channels; c++)
        for (int stride = 1; stride <= 2; stride++)
            for (int nhwc = 0; nhwc <= 1; nhwc++) {
                nep_conv_geom q = {.batch = 4, .in_c = channels[c], .in_h = 8, .in_w = 8, .out_c = 12,
                                   .out_h = 8 / stride, .out_w = 8 / stride, .kh = 1, .kw = 1,
                                   .sh = stride, .sw = stride, .groups = 1, .nhwc = nhwc};
                nep_conv_plan *plan;
                assert_int_equal(nep_dnnl_conv_plan_new(&q, &plan, NULL), NEP_OK);
                const char *impl = nep_dnnl_conv_impl(plan, NEP_CONV_BACKWARD_WEIGHTS);
                if (stride > 1 && (!strncmp(impl, "jit_1x1", 7) || !strncmp(impl, "ref", 3)))
                    fail_msg("in_c %d, stride 2, %s: backward-weights runs %s", channels[c],
                             nhwc ? "nhwc" : "nchw", impl);
                nep_dnnl_conv_plan_free(plan);
            }
}

/* A forward whose output rows are narrower than 8 pixels runs on another implementation
 * than brgconv (whose tiles there are mostly empty) from batch 2, training or serving
 * (below AVX-512 there is no brgconv to avoid); batch 1 keeps oneDNN's choice. */
static void test_narrow_rows_avoid_brgconv(void **s) {
    const int64_t sides[] = {2, 4, 7};
    for (size_t k = 0; k < sizeof sides / sizeof *sides; k++)
        for (int frozen = 0; frozen <= 1; frozen++) {
            nep_conv_geom q = {.batch = 4, .in_c = 64, .in_h = sides[k], .in_w = sides[k], .out_c = 64,
                               .out_h = sides[k], .out_w = sides[k], .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1,
                               .pw = 1, .groups = 1, .nhwc = true, .frozen = frozen};
            nep_conv_plan *plan;
            assert_int_equal(nep_dnnl_conv_plan_new(&q, &plan, NULL), NEP_OK);
            const char *impl = nep_dnnl_conv_impl(plan, NEP_CONV_FORWARD);
            if (!strncmp(impl, "brgconv:", 8) || !strncmp(impl, "ref", 3))
                fail_msg("%lldx%lld output rows, batch 4: forward runs %s", (long long)sides[k], (long long)sides[k], impl);
            nep_dnnl_conv_plan_free(plan);
        }
}

/* Whether oneDNN runs its AVX-512 kernels here (ONEDNN_MAX_CPU_ISA included). */
static bool avx512(void) {
    return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
}

/* 3x3 stride-1 convolutions of 32 channels and more run oneDNN's Winograd kernels in
 * every pass where the CPU has AVX-512, and below it, with NHWC activations and 64
 * channels and more, nepenthe's (winograd.c; else the direct ones), from 512 output
 * pixels a call; 16 channels (or counts not a multiple of 16), strides, fewer pixels and
 * NEP_CONV_ALGO=direct keep the direct kernels. (Their results: test_c32, test_c64, test_backend_nhwc,
 * test_frozen_weights.) */
static void test_winograd_choice(void **s) {
    const struct {
        int64_t batch, c, side;
        int stride;
        bool wino, keep; /* keep: the geometry may run Winograd at some batch (AVX-512) */
    } cases[] = {{2, 32, 16, 1, true, true},   {128, 64, 8, 1, true, true}, {8, 512, 4, 1, false, true},
                 {32, 512, 4, 1, true, true},  {4, 16, 32, 1, false, false}, {4, 64, 32, 2, false, false},
                 {4, 40, 16, 1, false, false}};
    unsetenv("NEP_CONV_ALGO"); /* the choice under test, whatever the caller's */
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
        for (int v = 0; v < 3; v++) { /* training NCHW, training NHWC, serving NHWC */
            const int64_t out = cases[k].side / cases[k].stride;
            nep_conv_geom q = {.batch = cases[k].batch, .in_c = cases[k].c, .in_h = cases[k].side,
                               .in_w = cases[k].side, .out_c = cases[k].c, .out_h = out, .out_w = out, .kh = 3,
                               .kw = 3, .sh = cases[k].stride, .sw = cases[k].stride, .ph = 1, .pw = 1,
                               .groups = 1, .nhwc = v > 0, .frozen = v == 2, .rectify = v == 2, .cap = INFINITY};
            for (int direct = 0; direct <= 1; direct++) {
                if (direct) setenv("NEP_CONV_ALGO", "direct", 1);
                nep_conv_plan *plan;
                assert_int_equal(nep_dnnl_conv_plan_new(&q, &plan, NULL), NEP_OK);
                unsetenv("NEP_CONV_ALGO");
                /* oneDNN's Winograd on AVX-512; below it nepenthe's, for NHWC and 64 channels up */
                const bool own = !avx512() && q.nhwc && q.in_c >= 64;
                const bool want = (avx512() || own) && cases[k].wino && !direct;
                for (int pass = 0; pass < (q.frozen ? 1 : 3); pass++) {
                    const char *impl = nep_dnnl_conv_impl(plan, pass);
                    if ((strstr(impl, "wino") != NULL) != want || (want && own && strcmp(impl, "wino_2x2:nepenthe")))
                        fail_msg("batch %lld, %lld channels at %lldx%lld, stride %d, %s%s, pass %d: %s", (long long)q.batch,
                                 (long long)q.in_c, (long long)q.in_h, (long long)q.in_w, q.sh,
                                 q.nhwc ? "nhwc" : "nchw", direct ? ", NEP_CONV_ALGO=direct" : "", pass, impl);
                }
                nep_dnnl_conv_plan_free(plan);
            }
            /* an NHWC training conv keeps its input reordered for backward only for Winograd */
            if (v == 1) assert_true((nep_dnnl_conv_keep_per_sample(&q) > 0) == (avx512() && cases[k].keep));
        }
}

/* A serving executor (inference, frozen_weights: convolution weights packed once) gives
 * PyTorch's outputs on every case, on every call, and for a smaller batch too; it is
 * refused without inference. */
static void test_frozen_weights(void **s) {
    const char *cases[] = {"k3s1_bias", "k3s2", "k1s2", "dw_s1_bias", "grp2", "stem", "c16s2", "k5p0", "c32", "c64"};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        fixture f;
        setup(&f, cases[k]);
        nep_exec *ex;
        nep_err err;
        nep_test_assert_ok(nep_exec_new(&ex, &f.g, f.B, &(nep_exec_opts){.inference = true, .frozen_weights = true},
                                        &err), &err);
        const int64_t n = nep_shape_numel(&f.g.nodes[f.id].shape);
        for (int call = 0; call < 2; call++) expect(cases[k], "y", nep_exec_forward(ex, f.x, f.B));
        /* the packed weights are counted: oneDNN's blocked layouts for 16-channel blocks
         * hold at least the OIHW weights (Winograd's transforms of the 3x3 kernels 16/9
         * (F(2x2, 3x3): 4x4 tiles) or 4x (F(4x4, 3x3): 6x6) as many, oneDNN's choice by
         * threads); other geometries may run on the OIHW weights, packing nothing */
        const nep_param *w = &f.g.params[f.g.nodes[f.id].params[0]];
        const bool blocked = f.g.nodes[f.id].attrs.conv.groups == 1 && w->shape[1] % 16 == 0;
        const char *lay = getenv("NEP_LAYOUT"); /* oneDNN's Winograd on AVX-512, nepenthe's below it for NHWC */
        const bool wino = !strcmp(cases[k], "c64") && (avx512() || (lay && !strcmp(lay, "nhwc")));
        if (blocked && nep_exec_cache_bytes(ex) < (wino ? 16 : 9) * w->numel * (int64_t)sizeof(float) / 9)
            fail_msg("%s: %lld bytes of packed weights", cases[k], (long long)nep_exec_cache_bytes(ex));
        assert_int_equal(nep_exec_cache_bytes(f.ex), 0); /* a training executor packs nothing */
        const int64_t packed = nep_exec_cache_bytes(ex);
        if (f.B > 1) /* a second plan, for the last batch of an epoch */
            expect_n(cases[k], "y", nep_exec_forward(ex, f.x, f.B - 1), (f.B - 1) * n, 1);
        if (!strcmp(cases[k], "c16s2")) /* whose weights' layout is the first's: shared, not packed again */
            assert_int_equal(nep_exec_cache_bytes(ex), packed);
        nep_exec_free(ex);
        teardown(&f);
    }
    nep_graph g;
    nep_attrs at = {.conv = {.features = 4, .kernel = {3, 3}, .stride = {1, 1}, .pad = {1, 1}, .groups = 1}};
    nep_test_op_graph(&g, NEP_OP_CONV2D, at, (nep_shape){3, {2, 5, 5}});
    nep_exec *ex;
    nep_err err;
    nep_test_expect_fail(nep_exec_new(&ex, &g, 2, &(nep_exec_opts){.frozen_weights = true}, &err), &err,
                         NEP_ERR_ARG, "inference", NULL);
    nep_graph_free(&g);
}

/* A serving executor's large batch runs in slices (slice_rows) and gives the whole
 * batch's outputs: 37 rows in slices of 5 (the last of 2) against one batch of 37, for a
 * strided conv with a ReLU epilogue, and the automatic slice (here: none, the images are
 * small) likewise. */
static void test_serving_slices(void **s) {
    nep_graph g;
    nep_attrs at = {.conv = {.features = 16, .kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}, .groups = 1,
                             .bias = true}};
    const int id = nep_test_op_graph(&g, NEP_OP_CONV2D, at, (nep_shape){3, {8, 9, 11}});
    nep_rng rng;
    nep_rng_seed(&rng, 5);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = (nep_real)(0.3 * nep_rng_normal(&rng));
    enum { B = 37 };
    const int64_t nx = B * 8 * 9 * 11, ny = B * nep_shape_numel(&g.nodes[id].shape);
    nep_real *x = malloc(sizeof *x * (size_t)nx), *want = malloc(sizeof *want * (size_t)ny);
    for (int64_t i = 0; i < nx; i++) x[i] = (nep_real)nep_rng_normal(&rng);
    nep_exec *whole, *sliced, *automatic;
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&whole, &g, B, &(nep_exec_opts){.inference = true}, &err), &err);
    memcpy(want, nep_exec_forward(whole, x, B), sizeof *want * (size_t)ny);
    nep_test_assert_ok(nep_exec_new(&sliced, &g, B, &(nep_exec_opts){.inference = true, .frozen_weights = true,
                                                                       .slice_rows = 5}, &err), &err);
    nep_test_assert_ok(nep_exec_new(&automatic, &g, B, &(nep_exec_opts){.inference = true, .frozen_weights = true},
                                    &err), &err);
    double *w = malloc(sizeof *w * (size_t)ny);
    for (int64_t i = 0; i < ny; i++) w[i] = want[i];
    for (int call = 0; call < 2; call++) {
        NEP_ASSERT_CLOSE(nep_exec_forward(sliced, x, B), w, ny, 1e-6, 1e-6, "slices of 5");
        NEP_ASSERT_CLOSE(nep_exec_forward(automatic, x, B), w, ny, 1e-6, 1e-6, "automatic slices");
    }
    const nep_real *y;
    const void *xs[1] = {x};
    nep_test_assert_ok(nep_exec_run(sliced, xs, 1, 4, &y, &err), &err); /* fewer rows than a slice */
    NEP_ASSERT_CLOSE(y, w, 4 * ny / B, 1e-6, 1e-6, "a batch of 4");
    nep_exec_free(whole), nep_exec_free(sliced), nep_exec_free(automatic);
    free(x), free(want), free(w);
    nep_graph_free(&g);
}

/* A 3x3 conv of C channels (1x1 with k = 1) reading x, with random weights and bias. */
static int residual_conv(nep_graph *g, const char *name, int x, int k, int64_t C) {
    nep_attrs at = {.conv = {.features = C, .kernel = {k, k}, .stride = {1, 1}, .pad = {k / 2, k / 2}, .groups = 1,
                             .bias = true}};
    const int c = nep_graph_add1(g, NEP_OP_CONV2D, name, x, at);
    nep_graph_add_param(g, c, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 4, (int64_t[]){C, C, k, k});
    nep_graph_add_param(g, c, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){C});
    return c;
}

/* A serving executor sums a conv read only by a residual Add into the Add's other input
 * (nep_exec_fused_add) where that is safe, and computes what an executor without the
 * fusion computes: 13 rows whole, in slices of 5 and on the reference backend, in each
 * layout (NEP_RUN_BOTH_LAYOUTS).
 *   add0 = stem(x) + x               not fused: x is the caller's input
 *   r2 = relu(c2(relu(c1(r0))) + r0)  c2 fused, with the ReLU after the Add
 *   add2 = c3(r2) + d(r2)             c3 fused (d, computed first, holds the sum)
 *   add3 = c4(add2) + add2            not fused: add4 reads add2 after c4
 *   add4 = add3 + add2 -> out         not fused: no conv input
 * With 64 channels at 8x8 the whole batch's 3x3 convs run Winograd, the slices' direct. */
static void residual_fusion(int64_t C, int64_t H, int64_t W) {
    nep_graph g;
    nep_graph_init(&g);
    const int x = nep_graph_input(&g, "input", (nep_shape){3, {C, H, W}});
    const int stem = residual_conv(&g, "stem", x, 3, C);
    const int add0 = nep_graph_add(&g, NEP_OP_ADD, "add0", (int[]){stem, x}, 2, (nep_attrs){0});
    const int r0 = nep_graph_add1(&g, NEP_OP_RELU, "r0", add0, (nep_attrs){0});
    const int c1 = residual_conv(&g, "c1", r0, 3, C);
    const int r1 = nep_graph_add1(&g, NEP_OP_RELU, "r1", c1, (nep_attrs){0});
    const int c2 = residual_conv(&g, "c2", r1, 3, C);
    const int add1 = nep_graph_add(&g, NEP_OP_ADD, "add1", (int[]){c2, r0}, 2, (nep_attrs){0});
    const int r2 = nep_graph_add1(&g, NEP_OP_RELU, "r2", add1, (nep_attrs){0});
    const int d = residual_conv(&g, "d", r2, 1, C);
    const int c3 = residual_conv(&g, "c3", r2, 3, C);
    const int add2 = nep_graph_add(&g, NEP_OP_ADD, "add2", (int[]){d, c3}, 2, (nep_attrs){0});
    const int c4 = residual_conv(&g, "c4", add2, 3, C);
    const int add3 = nep_graph_add(&g, NEP_OP_ADD, "add3", (int[]){c4, add2}, 2, (nep_attrs){0});
    const int add4 = nep_graph_add(&g, NEP_OP_ADD, "add4", (int[]){add3, add2}, 2, (nep_attrs){0});
    assert_int_equal(nep_graph_finalize(&g, NULL), NEP_OK);
    nep_rng rng;
    nep_rng_seed(&rng, 11);
    for (int64_t i = 0; i < g.n_values; i++) g.values[i] = (nep_real)(0.2 * sqrt(8.0 / (double)C) * nep_rng_normal(&rng));
    enum { B = 13 };
    const int64_t nx = B * C * H * W;
    nep_real *xv = malloc(sizeof *xv * (size_t)nx);
    for (int64_t i = 0; i < nx; i++) xv[i] = (nep_real)nep_rng_normal(&rng);
    nep_exec *plain, *served[3]; /* whole, in slices, on the reference backend */
    nep_err err;
    nep_test_assert_ok(nep_exec_new(&plain, &g, B, &(nep_exec_opts){.inference = true}, &err), &err);
    for (int k = 0; k < 3; k++)
        nep_test_assert_ok(nep_exec_new(&served[k], &g, B, &(nep_exec_opts){.inference = true, .frozen_weights = true,
                                        .slice_rows = k ? 5 : -1, .backend = k == 2 ? "ref" : NULL}, &err), &err);
    double *want = malloc(sizeof *want * (size_t)nx);
    const nep_real *y = nep_exec_forward(plain, xv, B);
    double top = 0;
    for (int64_t i = 0; i < nx; i++) want[i] = y[i], top = fmax(top, fabs(want[i]));
    const char *what[3] = {"served whole", "served in slices of 5", "served on the reference backend"};
    for (int k = 0; k < 3; k++) {
        const int sums_into[] = {stem, c2, c3, c4, add3, d};
        const int into[] = {-1, add1, add2, -1, -1, -1};
        for (size_t i = 0; i < sizeof into / sizeof *into; i++)
            assert_int_equal(nep_exec_fused_add(served[k], sums_into[i]), into[i]);
        assert_int_equal(nep_exec_fused_add(plain, c2), -1);
        for (int call = 0; call < 2; call++)
            NEP_ASSERT_CLOSE(nep_exec_forward(served[k], xv, B), want, nx, 1e-5, 1e-5 * top, what[k]);
    }
    (void)add4;
    nep_exec_free(plain);
    for (int k = 0; k < 3; k++) nep_exec_free(served[k]);
    free(xv), free(want);
    nep_graph_free(&g);
}

static void test_residual_fusion(void **s) { residual_fusion(8, 6, 5); }
static void test_residual_fusion_winograd(void **s) { residual_fusion(64, 8, 8); }

/* Shape rule, FLOPs and the messages for bad attributes or parameters. */
static void test_infer(void **s) {
    nep_graph g;
    nep_attrs at = {.conv = {.features = 8, .kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}, .groups = 1, .bias = true}};
    int id = nep_test_op_graph(&g, NEP_OP_CONV2D, at, (nep_shape){3, {4, 9, 10}});
    const nep_shape *sh = &g.nodes[id].shape;
    assert_int_equal(sh->ndim, 3);
    assert_int_equal(sh->d[0], 8);
    assert_int_equal(sh->d[1], 5);
    assert_int_equal(sh->d[2], 5);
    assert_int_equal(nep_node_flops(&g, &g.nodes[id]), 2 * 8 * 25 * 4 * 9 + 8 * 25);
    nep_graph_free(&g);

    struct {
        nep_attrs at;
        nep_shape in;
        const char *msg;
        bool wrong_weight;
    } bad[] = {
        {{.conv = {.features = 6, .kernel = {3, 3}, .stride = {1, 1}, .groups = 4}}, {3, {6, 8, 8}}, "multiples of groups", false},
        {{.conv = {.features = 6, .kernel = {3, 3}, .stride = {1, 1}, .groups = 4}}, {3, {8, 8, 8}}, "multiples of groups", false},
        {{.conv = {.features = 4, .kernel = {5, 5}, .stride = {1, 1}}}, {3, {2, 3, 3}}, "larger than", false},
        {{.conv = {.features = 4, .kernel = {3, 3}, .stride = {0, 1}}}, {3, {2, 8, 8}}, "stride", false},
        {{.conv = {.features = 4, .kernel = {3, 3}, .stride = {1, 1}}}, {1, {8}}, "wants 3", false},
        {{.conv = {.features = 4, .kernel = {3, 3}, .stride = {1, 1}}}, {3, {2, 8, 8}}, "weight [4, 2, 3, 3]", true},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        nep_graph_init(&g);
        int x = nep_graph_input(&g, "input", bad[k].in);
        int c = nep_graph_add1(&g, NEP_OP_CONV2D, "layer1.0.conv1", x, bad[k].at);
        int G = bad[k].at.conv.groups > 0 ? bad[k].at.conv.groups : 1;
        int64_t w[4] = {bad[k].at.conv.features, bad[k].in.d[0] / G, bad[k].at.conv.kernel[0], bad[k].at.conv.kernel[1]};
        if (bad[k].wrong_weight) w[1] += 1;
        nep_graph_add_param(&g, c, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 4, w);
        nep_err err;
        assert_int_not_equal(nep_graph_finalize(&g, &err), NEP_OK);
        if (!strstr(err.msg, "layer1.0.conv1") || !strstr(err.msg, bad[k].msg))
            fprintf(stderr, "case %zu: message '%s'\n", k, err.msg);
        assert_non_null(strstr(err.msg, "layer1.0.conv1"));
        assert_non_null(strstr(err.msg, bad[k].msg));
        nep_graph_free(&g);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_k3s1_bias),         cmocka_unit_test(test_k3s2),
        cmocka_unit_test(test_k1s2_shortcut),     cmocka_unit_test(test_depthwise_s1_bias),
        cmocka_unit_test(test_depthwise_s2),      cmocka_unit_test(test_groups2),
        cmocka_unit_test(test_non_square),        cmocka_unit_test(test_stem_3_channels),
        cmocka_unit_test(test_c16),               cmocka_unit_test(test_c16_s2),
        cmocka_unit_test(test_k5_no_padding),     cmocka_unit_test(test_c32),
        cmocka_unit_test(test_depthwise_2x2),     cmocka_unit_test(test_1x1_2x2),
        cmocka_unit_test(test_accumulate_grads),
        cmocka_unit_test(test_dx_accumulates),    cmocka_unit_test(test_partial_batch),
        cmocka_unit_test(test_chain),             cmocka_unit_test(test_backend_nhwc),
        cmocka_unit_test(test_layout_moves),      cmocka_unit_test(test_impl_avoids_6035),
        cmocka_unit_test(test_infer),             cmocka_unit_test(test_frozen_weights),
        cmocka_unit_test(test_serving_slices),    cmocka_unit_test(test_residual_fusion), cmocka_unit_test(test_residual_fusion_winograd),
        cmocka_unit_test(test_narrow_rows_avoid_brgconv), cmocka_unit_test(test_winograd_choice),
        cmocka_unit_test(test_c64),
    };
    return NEP_RUN_BOTH_LAYOUTS(tests, load_golden, free_golden);
}
