/* oneDNN glue for Conv2d (see dnnl_conv.h). A plan per (geometry, batch): its engine
 * and stream, the forward, backward-data and backward-weights primitives, the reorders
 * between the caller's NCHW/OIHW tensors and the layouts oneDNN chose, and memory
 * objects whose data handles are set at each call. Reorder targets live in scratch
 * memory the caller lends for the duration of a call. */
#include "backend/cpu/dnnl_conv.h"

#ifndef NEP_DOUBLE

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <assert.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/dnnl_glue.h"
#include "backend/cpu/winograd.h"

#define ALIGN 64

/* Memory roles of a plan: the caller's tensors, then each primitive's view. */
enum {
    M_X, M_W, M_B, M_Y, M_DY, M_DX, M_DW, M_DB,  /* caller's layouts */
    M_FSRC, M_FWEI, M_FDST,                      /* forward */
    M_DDDST, M_DWEI, M_DDSRC,                    /* backward data */
    M_WSRC, M_WDDST, M_WDWEI, M_WDB,             /* backward weights */
    M_COUNT
};

struct nep_conv_plan {
    nep_conv_geom g;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_memory_desc_t md[M_COUNT];
    dnnl_memory_t mem[M_COUNT];
    dnnl_primitive_t fwd, bwd_d, bwd_w;
    /* Reorders; NULL where the layouts already agree. */
    dnnl_primitive_t r_x_fsrc, r_w_fwei, r_fdst_y, r_y_fdst; /* forward (r_y_fdst: sum's summand) */
    dnnl_primitive_t r_dy_dddst, r_w_dwei, r_ddsrc_dx, r_ddsrc_dx_sum; /* backward data */
    dnnl_primitive_t r_x_wsrc, r_dy_wddst, r_wdwei_dw, r_wdwei_dw_sum;
    bool keep_ok;           /* forward leaves x in M_WSRC's layout in the caller's keep */
    bool wddst_is_dddst;    /* both backward primitives read dy in the same layout */
    size_t off[M_COUNT];    /* scratch offsets of the primitive-side buffers */
    size_t scratch_need;
    char impl[3][48];       /* oneDNN's implementation names: forward, backward data, weights */
    void *packed;           /* frozen: the weights in M_FWEI's layout, once packed */
    bool packed_ok;
    bool packed_shared;     /* packed is another plan's (nep_dnnl_conv_share_packed) */
    bool own_wino;          /* runs winograd.c instead of oneDNN (own_winograd) */
    nep_wino_geom wino;
};
typedef struct nep_conv_plan plan;

typedef enum { LAYOUT_ANY, LAYOUT_NCHW, LAYOUT_NHWC } layout_mode;
/* NEP_CONV_LAYOUT=nchw|nhwc|any (default any) forces the primitives' activation layout;
 * for benchmarking the alternatives. */
static layout_mode layout(void) {
    const char *e = getenv("NEP_CONV_LAYOUT");
    return e && !strcmp(e, "nchw") ? LAYOUT_NCHW : e && !strcmp(e, "nhwc") ? LAYOUT_NHWC : LAYOUT_ANY;
}

static nep_status dnnl_fail(nep_err *err, dnnl_status_t s, const char *what) {
    return nep_fail(err, NEP_ERR_UNSUPPORTED, "oneDNN convolution: %s failed (%s)", what,
                    dnnl_status2str(s));
}

#define DN(call, what)                                            \
    do {                                                          \
        dnnl_status_t s_ = (call);                                \
        if (s_ != dnnl_success) return dnnl_fail(err, s_, what);  \
    } while (0)

bool nep_dnnl_conv_plan_fits(const nep_conv_plan *p, const nep_conv_geom *b) {
    const nep_conv_geom *a = &p->g;
    return a->batch == b->batch && a->in_c == b->in_c && a->in_h == b->in_h &&
           a->in_w == b->in_w && a->out_c == b->out_c && a->out_h == b->out_h &&
           a->out_w == b->out_w && a->kh == b->kh && a->kw == b->kw && a->sh == b->sh &&
           a->sw == b->sw && a->ph == b->ph && a->pw == b->pw && a->groups == b->groups &&
           a->bias == b->bias && a->nhwc == b->nhwc && a->rectify == b->rectify &&
           a->frozen == b->frozen && a->sum == b->sum && (!a->rectify || a->cap == b->cap);
}

/* Winograd convolution (oneDNN's jit_wino_4x3 / jit_fp32_wino_2x3: F(4x4, 3x3) and
 * F(2x2, 3x3), AVX-512 only, blocked nChw16c activations) for 3x3 stride-1 convolutions
 * of at least 32 channels in and out, multiples of 16 (other counts would only keep a
 * reordered input for backward that no Winograd kernel reads). oneDNN's own choice (convolution_auto) never takes
 * it; measured on an Intel Xeon (Sapphire Rapids), one thread, against the direct kernel
 * oneDNN picks for NHWC: batch 128 training (forward, backward data, backward weights
 * alike) 32 channels at 16x16 1.3x faster, 64 at 8x8 1.6x, 64 at 32x32 to 512 at 4x4
 * 1.8-2.2x; serving (weights transformed once) batch 16 1.35x (32 at 16x16) to 3.7x
 * (512 at 4x4), batch 1 0.99x (512 at 4x4) to 1.8x; 16 channels are slower (0.7-0.9x).
 * Its rounding differs from the direct kernels': on ReLU-scaled data about 1e-6 of the
 * output's magnitude against 2e-7 (checked against float64 loops, 16-512 channels).
 * NEP_CONV_ALGO=direct turns it off, for comparisons. */
static bool winograd_shape(const nep_conv_geom *g) {
    const char *e = getenv("NEP_CONV_ALGO");
    if (e && !strcmp(e, "direct")) return false;
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->groups == 1 && g->in_c >= 32 &&
           g->out_c >= 32 && g->in_c % 16 == 0 && g->out_c % 16 == 0; /* whole nChw16c blocks, as oneDNN needs */
}

/* ...and from 512 output pixels a call: below, the reorders to and from nChw16c and the
 * transformed weights (4x the direct kernel's for F(4x4, 3x3)) cost what the fewer
 * multiplications save (ResNet-18 at batch 1: 512 channels at 4x4 0.69 -> 0.79 ms, 256
 * at 8x8 even; ResNet-20's 32 and 64 channels even; ResNet-18's 64 at 32x32 0.41 ->
 * 0.33 ms). */
static bool winograd_wanted(const nep_conv_geom *g) {
    return winograd_shape(g) && g->batch * g->out_h * g->out_w >= 512;
}

/* Whether oneDNN may run its AVX-512 kernels here (ONEDNN_MAX_CPU_ISA included). */
static bool avx512_core(void) {
    return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
}

/* Below AVX-512, where oneDNN has no Winograd kernel, NHWC convolutions of 64 channels
 * and more run nepenthe's F(2x2, 3x3) (winograd.c: transforms around OpenBLAS sgemm).
 * Measured on a Sapphire Rapids Xeon held to AVX2 (oneDNN's jit:avx2 direct kernels and
 * OpenBLAS's Haswell ones), one thread, batch 128, ms per pass forward / backward data /
 * backward weights, direct -> F(2x2, 3x3) (forward and backward data with the weights'
 * transform): 64 channels at 8x8 4.8/4.4/5.2 -> 3.8/4.1/3.5, 64 at 32x32 80/78/92 ->
 * 60/64/55, 128 at 16x16 79/77/84 -> 56/57/50, 256 at 8x8 80/77/86 -> 50/51/46, 512 at
 * 4x4 90/91/115 -> 54/52/52; 32 channels at 16x16 about even (5.0/4.8/5.3 -> 4.7/5.2/4.4). */
static bool own_winograd(const nep_conv_geom *g) {
    return g->nhwc && !avx512_core() && winograd_wanted(g) && g->ph == 1 && g->pw == 1 && g->in_c >= 64 &&
           g->out_c >= 64;
}

int64_t nep_dnnl_conv_keep_per_sample(const nep_conv_geom *g) {
    /* Channel-blocked layouts pad C up to the block (at most 16 for f32); NHWC
     * activations are reordered only for Winograd. */
    if (g->nhwc && !(winograd_shape(g) && avx512_core())) return 0;
    return (g->in_c + 15) / 16 * 16 * g->in_h * g->in_w;
}

void nep_dnnl_conv_plan_free(nep_conv_plan *p) {
    if (!p) return;
    dnnl_primitive_t *prims[] = {&p->fwd, &p->bwd_d, &p->bwd_w, &p->r_x_fsrc, &p->r_w_fwei,
                                 &p->r_fdst_y, &p->r_y_fdst, &p->r_dy_dddst, &p->r_w_dwei, &p->r_ddsrc_dx, &p->r_ddsrc_dx_sum,
                                 &p->r_x_wsrc, &p->r_dy_wddst, &p->r_wdwei_dw, &p->r_wdwei_dw_sum};
    for (size_t i = 0; i < sizeof prims / sizeof *prims; i++)
        if (*prims[i]) dnnl_primitive_destroy(*prims[i]);
    for (int i = 0; i < M_COUNT; i++)
        if (p->mem[i]) dnnl_memory_destroy(p->mem[i]);
    if (p->stream) dnnl_stream_destroy(p->stream);
    if (p->engine) dnnl_engine_destroy(p->engine);
    if (!p->packed_shared) free(p->packed);
    free(p);
}

/* oneDNN 2.6's 1x1 kernels ("jit_1x1:avx2", "jit_1x1:avx512_core", ...) reduce a strided
 * convolution to a unit-stride one by copying the subsampled input into a workspace
 * ("rtus": used when the stride is above 1 and there is no padding, see rtus_prepare in
 * its jit_uni_1x1_conv_utils.hpp). In backward-weights they write past that workspace
 * when the input channels are not a multiple of the kernel's channel block: wrong weight
 * gradients and heap corruption, on AVX2 and AVX-512 alike (uxlfoundation/oneDNN#6035,
 * open against 2.6.3, Debian 12's version; tests/test_conv_property.c and
 * test_conv.c's test_k1s2_shortcut catch it, test_conv's test_impl_avoids_6035 checks
 * the choice). Collapse makes any channel count, so every strided 1x1 backward-weights
 * skips those kernels, whatever its channels: the next implementation in oneDNN's list
 * computes the same thing, and only shortcut convs have this geometry. */
static bool avoid_1x1_kernels(const nep_conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && (g->sh > 1 || g->sw > 1);
}

static const char *impl_name(const_dnnl_primitive_desc_t pd) {
    const char *name = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) != dnnl_success || !name)
        return "";
    return name;
}

/* Implementations create_pd passes over. */
enum { SKIP_1X1 = 1, SKIP_REF = 2, SKIP_BRGCONV = 4 };
static bool skipped(const char *impl, int skip) {
    return ((skip & SKIP_1X1) && !strncmp(impl, "jit_1x1", 7)) || ((skip & SKIP_REF) && !strncmp(impl, "ref", 3)) ||
           ((skip & SKIP_BRGCONV) && !strncmp(impl, "brgconv:", 8));
}

/* oneDNN 2.6's brgconv (AVX-512; its first choice for NHWC) blocks the output row: on
 * rows of fewer than 8 pixels its GEMM tiles are mostly empty. Measured on an Intel Xeon
 * (Sapphire Rapids), one thread, 3x3 NHWC forward, batch 16: 512 channels at 4x4 123
 * GFLOP/s against 189 for jit:avx512_core, at 2x2 46 against 169, at 7x7 180 against
 * 197; at 8x8 brgconv is ahead (187 against 175), and at batch 1 it is ahead everywhere
 * (512 at 4x4: 116 against 97). 1x1 convolutions are brgconv_1x1, not concerned. */
static bool narrow_rows(const nep_conv_geom *g) { return g->out_w < 8 && g->batch > 1; }

/* The first implementation oneDNN offers for op (dnnl_primitive_desc_create's choice)
 * that skip does not name. */
static dnnl_status_t create_pd(dnnl_primitive_desc_t *out, const void *op, const_dnnl_primitive_attr_t attr,
                               dnnl_engine_t engine, const_dnnl_primitive_desc_t hint, int skip) {
    *out = NULL;
    if (!skip) return dnnl_primitive_desc_create(out, op, attr, engine, hint);
    dnnl_primitive_desc_iterator_t it = NULL;
    dnnl_status_t s = dnnl_primitive_desc_iterator_create(&it, op, attr, engine, hint);
    while (s == dnnl_success) {
        dnnl_primitive_desc_t pd = dnnl_primitive_desc_iterator_fetch(it);
        if (!pd) {
            s = dnnl_out_of_memory;
            break;
        }
        if (!skipped(impl_name(pd), skip)) {
            *out = pd;
            break;
        }
        dnnl_primitive_desc_destroy(pd);
        s = dnnl_primitive_desc_iterator_next(it);
    }
    if (it) dnnl_primitive_desc_iterator_destroy(it);
    return s == dnnl_iterator_ends ? dnnl_unimplemented : s;
}

static dnnl_status_t make_prim(dnnl_primitive_t *out, const_dnnl_primitive_desc_t pd) {
    return dnnl_primitive_create(out, pd);
}

/* Reorder from -> to (to += from with sum); leaves *out NULL when the layouts agree and
 * no sum is asked for. */
static dnnl_status_t make_reorder(dnnl_engine_t engine, dnnl_primitive_t *out,
                                  const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                  bool sum) {
    *out = NULL;
    if (!sum && dnnl_memory_desc_equal(from, to)) return dnnl_success;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_success;
    if (sum) {
        if ((s = dnnl_primitive_attr_create(&attr)) != dnnl_success) goto done;
        if ((s = dnnl_post_ops_create(&po)) != dnnl_success) goto done;
        if ((s = dnnl_post_ops_append_sum(po, 1.0f)) != dnnl_success) goto done;
        if ((s = dnnl_primitive_attr_set_post_ops(attr, po)) != dnnl_success) goto done;
    }
    if ((s = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, attr)) != dnnl_success)
        goto done;
    s = dnnl_primitive_create(out, pd);
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return s;
}

/* Places the n roles' buffers one after another in the scratch arena, each 64-byte
 * aligned, from offset 0; returns the bytes they take. */
static size_t arena(plan *p, const int *roles, size_t n) {
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        p->off[roles[i]] = at;
        at += (dnnl_memory_desc_get_size(&p->md[roles[i]]) + ALIGN - 1) / ALIGN * ALIGN;
    }
    return at;
}

/* The rest of a frozen plan: the forward primitive, its reorders, its memory objects,
 * the buffer the weights are packed into, and scratch for x and y only. */
static nep_status plan_forward_only(plan *p, const_dnnl_primitive_desc_t fpd, nep_err *err) {
    dnnl_memory_desc_t *md = p->md;
    snprintf(p->impl[NEP_CONV_FORWARD], sizeof p->impl[0], "%s", impl_name(fpd));
    DN(make_prim(&p->fwd, fpd), "forward primitive");
    DN(make_reorder(p->engine, &p->r_x_fsrc, &md[M_X], &md[M_FSRC], false), "reorder");
    DN(make_reorder(p->engine, &p->r_w_fwei, &md[M_W], &md[M_FWEI], false), "reorder");
    DN(make_reorder(p->engine, &p->r_fdst_y, &md[M_FDST], &md[M_Y], false), "reorder");
    if (p->g.sum) DN(make_reorder(p->engine, &p->r_y_fdst, &md[M_Y], &md[M_FDST], false), "reorder");
    const int roles[] = {M_X, M_W, M_B, M_Y, M_FSRC, M_FWEI, M_FDST};
    for (size_t i = 0; i < sizeof roles / sizeof *roles; i++) {
        if (roles[i] == M_B && !p->g.bias) continue;
        DN(dnnl_memory_create(&p->mem[roles[i]], &md[roles[i]], p->engine, DNNL_MEMORY_NONE), "memory object");
    }
    const size_t wbytes = dnnl_memory_desc_get_size(&md[M_FWEI]);
    if (p->r_w_fwei && !(p->packed = aligned_alloc(ALIGN, (wbytes + ALIGN - 1) / ALIGN * ALIGN)))
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory for packed convolution weights");
    const int fwd_roles[] = {M_FSRC, M_FDST};
    p->scratch_need = arena(p, fwd_roles, 2);
    return NEP_OK;
}

static nep_status plan_build(plan *p, nep_err *err) {
    const nep_conv_geom *g = &p->g;
    dnnl_engine_t engine = p->engine;
    const int64_t G = g->groups;
    dnnl_memory_desc_t *md = p->md;
    const dnnl_dims_t xd = {g->batch, g->in_c, g->in_h, g->in_w};
    const dnnl_dims_t yd = {g->batch, g->out_c, g->out_h, g->out_w};
    const dnnl_dims_t bd = {g->out_c};
    const dnnl_dims_t strides = {g->sh, g->sw}, pad = {g->ph, g->pw};
    const dnnl_format_tag_t user_act = g->nhwc ? dnnl_nhwc : dnnl_nchw;
    DN(dnnl_memory_desc_init_by_tag(&md[M_X], 4, xd, dnnl_f32, user_act), "memory descriptor");
    DN(dnnl_memory_desc_init_by_tag(&md[M_Y], 4, yd, dnnl_f32, user_act), "memory descriptor");
    if (G == 1) {
        const dnnl_dims_t wd = {g->out_c, g->in_c, g->kh, g->kw};
        DN(dnnl_memory_desc_init_by_tag(&md[M_W], 4, wd, dnnl_f32, dnnl_oihw), "memory descriptor");
    } else {
        const dnnl_dims_t wd = {G, g->out_c / G, g->in_c / G, g->kh, g->kw};
        DN(dnnl_memory_desc_init_by_tag(&md[M_W], 5, wd, dnnl_f32, dnnl_goihw), "memory descriptor");
    }
    if (g->bias) DN(dnnl_memory_desc_init_by_tag(&md[M_B], 1, bd, dnnl_f32, dnnl_x), "memory descriptor");
    md[M_DY] = md[M_Y];
    md[M_DX] = md[M_X];
    md[M_DW] = md[M_W];
    md[M_DB] = md[M_B];

    /* What the primitives are offered: NHWC activations stay NHWC; NCHW ones go to
     * whatever layout oneDNN prefers, unless NEP_CONV_LAYOUT forces one. */
    dnnl_memory_desc_t ax, ay, aw;
    layout_mode lm = layout();
    dnnl_format_tag_t act = lm == LAYOUT_NCHW ? dnnl_nchw : lm == LAYOUT_NHWC ? dnnl_nhwc : dnnl_format_tag_any;
    if (g->nhwc && lm == LAYOUT_ANY) act = dnnl_nhwc;
    DN(dnnl_memory_desc_init_by_tag(&ax, 4, xd, dnnl_f32, act), "memory descriptor");
    DN(dnnl_memory_desc_init_by_tag(&ay, 4, yd, dnnl_f32, act), "memory descriptor");
    aw = md[M_W];
    if (lm != LAYOUT_NCHW)
        DN(dnnl_memory_desc_init_by_tag(&aw, md[M_W].ndims, md[M_W].dims, dnnl_f32, dnnl_format_tag_any),
           "memory descriptor");
    const dnnl_memory_desc_t *bmd = g->bias ? &md[M_B] : NULL;

    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t fpd = NULL, dpd = NULL, wpd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    nep_status st = NEP_OK;
    dnnl_status_t s;
#define TRY_DN(call, what)                                  \
    do {                                                    \
        if ((s = (call)) != dnnl_success) {                 \
            st = dnnl_fail(err, s, what);                   \
            goto out;                                       \
        }                                                   \
    } while (0)
    const dnnl_prop_kind_t prop = g->frozen ? dnnl_forward_inference : dnnl_forward_training;
    TRY_DN(nep_dnnl_output_attr(g->sum, g->rectify, g->cap, &attr), "post-op");
    /* Winograd where wanted and oneDNN has it (AVX-512, channels a multiple of 16, the
     * post-ops), else the direct kernels. */
    dnnl_alg_kind_t alg = dnnl_convolution_direct;
    if (winograd_wanted(g)) {
        dnnl_memory_desc_t bx, by;
        TRY_DN(dnnl_memory_desc_init_by_tag(&bx, 4, xd, dnnl_f32, dnnl_nChw16c), "memory descriptor");
        TRY_DN(dnnl_memory_desc_init_by_tag(&by, 4, yd, dnnl_f32, dnnl_nChw16c), "memory descriptor");
        if (dnnl_convolution_forward_desc_init(&cd, prop, dnnl_convolution_winograd, &bx, &aw, bmd, &by, strides,
                                               pad, pad) == dnnl_success &&
            dnnl_primitive_desc_create(&fpd, &cd, attr, engine, NULL) == dnnl_success) {
            alg = dnnl_convolution_winograd;
            ax = bx;
            ay = by;
        } else {
            fpd = NULL;
        }
    }
    if (!fpd) {
        TRY_DN(dnnl_convolution_forward_desc_init(&cd, prop, alg, &ax, &aw, bmd, &ay, strides, pad, pad),
               "forward descriptor");
        if (!narrow_rows(g) || create_pd(&fpd, &cd, attr, engine, NULL, SKIP_BRGCONV | SKIP_REF) != dnnl_success)
            TRY_DN(dnnl_primitive_desc_create(&fpd, &cd, attr, engine, NULL), "forward primitive descriptor");
    }
    md[M_FSRC] = *dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0);
    md[M_FWEI] = *dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
    md[M_FDST] = *dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0);
    if (g->frozen) {
        st = plan_forward_only(p, fpd, err);
        goto out;
    }

    TRY_DN(dnnl_convolution_backward_data_desc_init(&cd, alg, &ax, &aw, &ay,
                                                    strides, pad, pad),
           "backward-data descriptor");
    TRY_DN(dnnl_primitive_desc_create(&dpd, &cd, NULL, engine, fpd), "backward-data primitive descriptor");
    md[M_DDSRC] = *dnnl_primitive_desc_query_md(dpd, dnnl_query_diff_src_md, 0);
    md[M_DWEI] = *dnnl_primitive_desc_query_md(dpd, dnnl_query_weights_md, 0);
    md[M_DDDST] = *dnnl_primitive_desc_query_md(dpd, dnnl_query_diff_dst_md, 0);

    /* Backward weights: first ask for forward's src layout and backward-data's diff_dst
     * layout (so x and dy are each reordered once), else let it choose. */
    dnnl_memory_desc_t dbmd;
    if (g->bias) dbmd = md[M_B];
    TRY_DN(dnnl_convolution_backward_weights_desc_init(&cd, alg, &md[M_FSRC], &aw,
                                                       g->bias ? &dbmd : NULL, &md[M_DDDST], strides,
                                                       pad, pad),
           "backward-weights descriptor");
    /* When oneDNN has only its reference loops (10-100x slower) for the forced layouts,
     * it chooses the layouts too: one more reorder of x costs less. */
    const int skip = avoid_1x1_kernels(g) ? SKIP_1X1 : 0;
    if (create_pd(&wpd, &cd, NULL, engine, fpd, skip | SKIP_REF) != dnnl_success) {
        TRY_DN(dnnl_convolution_backward_weights_desc_init(&cd, alg, &ax, &aw,
                                                           g->bias ? &dbmd : NULL, &ay, strides, pad, pad),
               "backward-weights descriptor");
        TRY_DN(create_pd(&wpd, &cd, NULL, engine, fpd, skip), "backward-weights primitive descriptor");
    }
    md[M_WSRC] = *dnnl_primitive_desc_query_md(wpd, dnnl_query_src_md, 0);
    md[M_WDWEI] = *dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_weights_md, 0);
    md[M_WDDST] = *dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_dst_md, 0);
    if (g->bias) md[M_WDB] = *dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_weights_md, 1);

    const_dnnl_primitive_desc_t pds[3] = {fpd, dpd, wpd};
    for (int i = 0; i < 3; i++) snprintf(p->impl[i], sizeof p->impl[i], "%s", impl_name(pds[i]));
    TRY_DN(make_prim(&p->fwd, fpd), "forward primitive");
    TRY_DN(make_prim(&p->bwd_d, dpd), "backward-data primitive");
    TRY_DN(make_prim(&p->bwd_w, wpd), "backward-weights primitive");
    TRY_DN(make_reorder(p->engine, &p->r_x_fsrc, &md[M_X], &md[M_FSRC], false), "reorder");
    TRY_DN(make_reorder(p->engine, &p->r_w_fwei, &md[M_W], &md[M_FWEI], false), "reorder");
    TRY_DN(make_reorder(p->engine, &p->r_fdst_y, &md[M_FDST], &md[M_Y], false), "reorder");
    if (g->sum) TRY_DN(make_reorder(p->engine, &p->r_y_fdst, &md[M_Y], &md[M_FDST], false), "reorder");
    TRY_DN(make_reorder(p->engine, &p->r_dy_dddst, &md[M_DY], &md[M_DDDST], false), "reorder");
    TRY_DN(make_reorder(p->engine, &p->r_w_dwei, &md[M_W], &md[M_DWEI], false), "reorder");
    TRY_DN(make_reorder(p->engine, &p->r_ddsrc_dx, &md[M_DDSRC], &md[M_DX], false), "reorder");
    TRY_DN(make_reorder(p->engine, &p->r_ddsrc_dx_sum, &md[M_DDSRC], &md[M_DX], true), "reorder");
    TRY_DN(make_reorder(p->engine, &p->r_x_wsrc, &md[M_X], &md[M_WSRC], false), "reorder");
    TRY_DN(make_reorder(p->engine, &p->r_dy_wddst, &md[M_DY], &md[M_WDDST], false), "reorder");
    TRY_DN(make_reorder(p->engine, &p->r_wdwei_dw, &md[M_WDWEI], &md[M_DW], false), "reorder");
    TRY_DN(make_reorder(p->engine, &p->r_wdwei_dw_sum, &md[M_WDWEI], &md[M_DW], true), "reorder");
    for (int i = 0; i < M_COUNT; i++) {
        if (!g->bias && (i == M_B || i == M_DB || i == M_WDB)) continue;
        TRY_DN(dnnl_memory_create(&p->mem[i], &md[i], engine, DNNL_MEMORY_NONE), "memory object");
    }

    /* keep: forward's reordered x is exactly what backward-weights reads. */
    const size_t keep_bytes = sizeof(float) * (size_t)(g->batch * nep_dnnl_conv_keep_per_sample(g));
    p->keep_ok = p->r_x_fsrc && dnnl_memory_desc_equal(&md[M_FSRC], &md[M_WSRC]) &&
                 dnnl_memory_desc_get_size(&md[M_FSRC]) <= keep_bytes;
    p->wddst_is_dddst = dnnl_memory_desc_equal(&md[M_DDDST], &md[M_WDDST]);

    /* Arena: the forward buffers and the backward buffers are never live together. */
    const int fwd_roles[] = {M_FSRC, M_FWEI, M_FDST};
    const int bwd_roles[] = {M_DDDST, M_DWEI, M_DDSRC, M_WSRC, M_WDDST, M_WDWEI, M_WDB}; /* M_WDB last */
    const size_t need = arena(p, fwd_roles, 3), back = arena(p, bwd_roles, g->bias ? 7 : 6);
    p->scratch_need = need > back ? need : back;
out:
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (dpd) dnnl_primitive_desc_destroy(dpd);
    if (wpd) dnnl_primitive_desc_destroy(wpd);
    return st;
#undef TRY_DN
}

nep_status nep_dnnl_conv_plan_new(const nep_conv_geom *g, nep_conv_plan **out, nep_err *err) {
    plan *p = calloc(1, sizeof *p);
    if (!p) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for a convolution plan");
    p->g = *g;
    if (own_winograd(g)) {
        p->own_wino = true;
        p->wino = (nep_wino_geom){.batch = g->batch, .h = g->in_h, .w = g->in_w, .in_c = g->in_c,
                                  .out_c = g->out_c, .threads = omp_get_max_threads()};
        for (int pass = 0; pass < 3; pass++) snprintf(p->impl[pass], sizeof p->impl[pass], "wino_2x2:nepenthe");
        p->scratch_need = nep_wino_scratch_bytes(&p->wino, !g->frozen);
        if (g->frozen && !(p->packed = malloc(sizeof(float) * nep_wino_weight_floats(&p->wino)))) {
            free(p);
            return nep_fail(err, NEP_ERR_NOMEM, "out of memory for a convolution plan");
        }
        *out = p;
        return NEP_OK;
    }
    dnnl_status_t s = nep_dnnl_open(&p->engine, &p->stream);
    nep_status st = s == dnnl_success ? plan_build(p, err) : dnnl_fail(err, s, "engine");
    if (st != NEP_OK) {
        nep_dnnl_conv_plan_free(p);
        return st;
    }
    *out = p;
    return NEP_OK;
}

size_t nep_dnnl_conv_scratch_bytes(const nep_conv_plan *p) { return p->scratch_need; }

size_t nep_dnnl_conv_packed_bytes(const nep_conv_plan *p) {
    if (!p->packed || p->packed_shared) return 0;
    return p->own_wino ? sizeof(float) * nep_wino_weight_floats(&p->wino) : dnnl_memory_desc_get_size(&p->md[M_FWEI]);
}

void nep_dnnl_conv_share_packed(nep_conv_plan *p, const nep_conv_plan *from) {
    if (!p->packed || !from->packed || from->packed_shared || p->own_wino != from->own_wino ||
        (!p->own_wino && !dnnl_memory_desc_equal(&p->md[M_FWEI], &from->md[M_FWEI])))
        return;
    free(p->packed);
    p->packed = from->packed;
    p->packed_ok = from->packed_ok;
    p->packed_shared = true;
}

const char *nep_dnnl_conv_impl(const nep_conv_plan *p, nep_conv_pass pass) { return p->impl[pass]; }

/* Memory object of role r pointing at ptr. */
static dnnl_memory_t bind(plan *p, int r, const void *ptr) { return nep_dnnl_bind(p->mem[r], ptr); }

static void *buf(const plan *p, char *scratch, int r) { return scratch + p->off[r]; }

static dnnl_status_t run_reorder(plan *p, dnnl_primitive_t r, int from, const void *src, int to, void *dst) {
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, bind(p, from, src)}, {DNNL_ARG_TO, bind(p, to, dst)}};
    return dnnl_primitive_execute(r, p->stream, 2, args);
}

void nep_dnnl_conv_forward(nep_conv_plan *p, void *scratch_, const float *x, const float *w,
                           const float *b, float *y, float *keep) {
    const nep_conv_geom *g = &p->g;
    if (p->own_wino) {
        if (g->frozen && !p->packed_ok) nep_wino_transform_weights(&p->wino, w, p->packed);
        p->packed_ok = true;
        nep_wino_forward(&p->wino, scratch_, x, w, g->frozen ? p->packed : NULL, b, y, g->sum, g->rectify, g->cap);
        return;
    }
    char *scratch = scratch_;
    const void *src = x, *wei = w;
    void *dst = y;
    if (p->r_x_fsrc) {
        void *t = p->keep_ok && keep ? (void *)keep : buf(p, scratch, M_FSRC);
        NEP_DNNL_RUN(run_reorder(p, p->r_x_fsrc, M_X, x, M_FSRC, t));
        src = t;
    }
    if (p->r_w_fwei && g->frozen) {
        if (!p->packed_ok) NEP_DNNL_RUN(run_reorder(p, p->r_w_fwei, M_W, w, M_FWEI, p->packed));
        p->packed_ok = true;
        wei = p->packed;
    } else if (p->r_w_fwei) {
        NEP_DNNL_RUN(run_reorder(p, p->r_w_fwei, M_W, w, M_FWEI, buf(p, scratch, M_FWEI)));
        wei = buf(p, scratch, M_FWEI);
    }
    if (p->r_fdst_y) dst = buf(p, scratch, M_FDST);
    if (p->r_y_fdst) NEP_DNNL_RUN(run_reorder(p, p->r_y_fdst, M_Y, y, M_FDST, dst)); /* the summand */
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, bind(p, M_FSRC, src)},
                               {DNNL_ARG_WEIGHTS, bind(p, M_FWEI, wei)},
                               {DNNL_ARG_DST, bind(p, M_FDST, dst)}};
    int n = 3;
    if (g->bias) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bind(p, M_B, b)};
    NEP_DNNL_RUN(dnnl_primitive_execute(p->fwd, p->stream, n, args));
    if (p->r_fdst_y) NEP_DNNL_RUN(run_reorder(p, p->r_fdst_y, M_FDST, dst, M_Y, y));
    NEP_DNNL_RUN(dnnl_stream_wait(p->stream));
}

void nep_dnnl_conv_backward(nep_conv_plan *p, void *scratch_, const float *x, const float *keep,
                            const float *w, const float *dy, float *dx, bool dx_add, float *dw,
                            float *db, bool accumulate) {
    const nep_conv_geom *g = &p->g;
    assert(!g->frozen);
    if (p->own_wino) {
        nep_wino_backward(&p->wino, scratch_, x, w, dy, dx, dx_add, dw, db, accumulate);
        return;
    }
    char *scratch = scratch_;
    const void *ddst_d = dy; /* dy in backward-data's layout, once reordered */
    bool have_ddst_d = !p->r_dy_dddst;
    if (dx) {
        if (!have_ddst_d) {
            NEP_DNNL_RUN(run_reorder(p, p->r_dy_dddst, M_DY, dy, M_DDDST, buf(p, scratch, M_DDDST)));
            ddst_d = buf(p, scratch, M_DDDST);
            have_ddst_d = true;
        }
        const void *wei = w;
        if (p->r_w_dwei) {
            NEP_DNNL_RUN(run_reorder(p, p->r_w_dwei, M_W, w, M_DWEI, buf(p, scratch, M_DWEI)));
            wei = buf(p, scratch, M_DWEI);
        }
        /* Backward-data overwrites its output: straight into dx when it is overwritten in
         * the same layout, else into the arena, then reordered or added. */
        const bool direct = !dx_add && !p->r_ddsrc_dx;
        void *dsrc = direct ? (void *)dx : buf(p, scratch, M_DDSRC);
        dnnl_exec_arg_t args[] = {{DNNL_ARG_DIFF_DST, bind(p, M_DDDST, ddst_d)},
                                  {DNNL_ARG_WEIGHTS, bind(p, M_DWEI, wei)},
                                  {DNNL_ARG_DIFF_SRC, bind(p, M_DDSRC, dsrc)}};
        NEP_DNNL_RUN(dnnl_primitive_execute(p->bwd_d, p->stream, 3, args));
        if (!direct)
            NEP_DNNL_RUN(run_reorder(p, dx_add ? p->r_ddsrc_dx_sum : p->r_ddsrc_dx, M_DDSRC, dsrc, M_DX, dx));
    }
    const void *src = x;
    if (p->r_x_wsrc) {
        if (p->keep_ok && keep) {
            src = keep;
        } else {
            NEP_DNNL_RUN(run_reorder(p, p->r_x_wsrc, M_X, x, M_WSRC, buf(p, scratch, M_WSRC)));
            src = buf(p, scratch, M_WSRC);
        }
    }
    const void *ddst_w = dy;
    if (p->r_dy_wddst) {
        if (p->wddst_is_dddst && have_ddst_d) {
            ddst_w = ddst_d;
        } else {
            NEP_DNNL_RUN(run_reorder(p, p->r_dy_wddst, M_DY, dy, M_WDDST, buf(p, scratch, M_WDDST)));
            ddst_w = buf(p, scratch, M_WDDST);
        }
    }
    /* Straight into dw/db when the layout agrees and they are overwritten. */
    void *dwei = !accumulate && !p->r_wdwei_dw ? (void *)dw : buf(p, scratch, M_WDWEI);
    void *dbias = g->bias ? (accumulate ? buf(p, scratch, M_WDB) : (void *)db) : NULL;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, bind(p, M_WSRC, src)},
                               {DNNL_ARG_DIFF_DST, bind(p, M_WDDST, ddst_w)},
                               {DNNL_ARG_DIFF_WEIGHTS, bind(p, M_WDWEI, dwei)}};
    int n = 3;
    if (g->bias) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, bind(p, M_WDB, dbias)};
    NEP_DNNL_RUN(dnnl_primitive_execute(p->bwd_w, p->stream, n, args));
    if (dwei != dw) {
        dnnl_primitive_t r = accumulate ? p->r_wdwei_dw_sum : p->r_wdwei_dw;
        NEP_DNNL_RUN(run_reorder(p, r, M_WDWEI, dwei, M_DW, dw));
    }
    NEP_DNNL_RUN(dnnl_stream_wait(p->stream));
    if (g->bias && accumulate) {
        const float *t = dbias;
        for (int64_t f = 0; f < g->out_c; f++) db[f] += t[f];
    }
}

#else
typedef int nep_dnnl_conv_unused; /* the float64 build uses the reference loops in conv2d.c */
#endif
