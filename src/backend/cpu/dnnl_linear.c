/* oneDNN glue for serving Linear layers (see dnnl_linear.h): one matmul primitive per
 * (rows, in, out), its weights packed into the primitive's layout once. */
#include "backend/cpu/dnnl_linear.h"

#ifndef NEP_DOUBLE

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <stdlib.h>

#include "backend/cpu/dnnl_glue.h"

#define ALIGN 64

enum { M_X, M_W, M_B, M_Y, M_PACKED, M_COUNT };

struct nep_linear_plan {
    nep_linear_geom g;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_t fwd, pack;  /* pack: W [out, in] -> the primitive's layout; NULL when equal */
    dnnl_memory_t mem[M_COUNT];
    void *packed;                /* W in the primitive's layout (when pack) */
    bool packed_ok;
    bool packed_shared;          /* packed is another plan's (nep_dnnl_linear_share_packed) */
};

static nep_status dnnl_fail(nep_err *err, dnnl_status_t s, const char *what) {
    return nep_fail(err, NEP_ERR_UNSUPPORTED, "oneDNN matmul: %s failed (%s)", what,
                    dnnl_status2str(s));
}

bool nep_dnnl_linear_plan_fits(const nep_linear_plan *p, const nep_linear_geom *b) {
    const nep_linear_geom *a = &p->g;
    return a->rows == b->rows && a->in == b->in && a->out == b->out && a->bias == b->bias &&
           a->sum == b->sum && a->rectify == b->rectify && (!a->rectify || a->cap == b->cap);
}

void nep_dnnl_linear_plan_free(nep_linear_plan *p) {
    if (!p) return;
    if (p->fwd) dnnl_primitive_destroy(p->fwd);
    if (p->pack) dnnl_primitive_destroy(p->pack);
    for (int i = 0; i < M_COUNT; i++)
        if (p->mem[i]) dnnl_memory_destroy(p->mem[i]);
    if (p->stream) dnnl_stream_destroy(p->stream);
    if (p->engine) dnnl_engine_destroy(p->engine);
    if (!p->packed_shared) free(p->packed);
    free(p);
}

/* The layout p packs W into; NULL when it packs nothing. */
static const dnnl_memory_desc_t *packed_md(const nep_linear_plan *p) {
    const dnnl_memory_desc_t *md = NULL;
    return p->packed && dnnl_memory_get_memory_desc(p->mem[M_PACKED], &md) == dnnl_success ? md : NULL;
}

size_t nep_dnnl_linear_packed_bytes(const nep_linear_plan *p) {
    const dnnl_memory_desc_t *md = packed_md(p);
    return md && !p->packed_shared ? dnnl_memory_desc_get_size(md) : 0;
}

void nep_dnnl_linear_share_packed(nep_linear_plan *p, const nep_linear_plan *from) {
    const dnnl_memory_desc_t *mine = packed_md(p), *theirs = packed_md(from);
    if (!mine || !theirs || from->packed_shared || !dnnl_memory_desc_equal(mine, theirs)) return;
    free(p->packed);
    p->packed = from->packed;
    p->packed_ok = from->packed_ok;
    p->packed_shared = true;
}

static nep_status plan_build(nep_linear_plan *p, nep_err *err) {
    const nep_linear_geom *g = &p->g;
    /* y = x W^T: W [out, in] row-major is the matmul's [in, out] weights in "ba" order */
    const dnnl_dims_t xd = {g->rows, g->in}, wd = {g->in, g->out}, bd = {1, g->out}, yd = {g->rows, g->out};
    dnnl_memory_desc_t md[M_COUNT], wany;
    dnnl_status_t s;
    nep_status st = NEP_OK;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_matmul_desc_t d;
#define TRY_DN(call, what)                  \
    do {                                    \
        if ((s = (call)) != dnnl_success) { \
            st = dnnl_fail(err, s, what);   \
            goto out;                       \
        }                                   \
    } while (0)
    TRY_DN(dnnl_memory_desc_init_by_tag(&md[M_X], 2, xd, dnnl_f32, dnnl_ab), "memory descriptor");
    TRY_DN(dnnl_memory_desc_init_by_tag(&md[M_W], 2, wd, dnnl_f32, dnnl_ba), "memory descriptor");
    TRY_DN(dnnl_memory_desc_init_by_tag(&md[M_B], 2, bd, dnnl_f32, dnnl_ab), "memory descriptor");
    TRY_DN(dnnl_memory_desc_init_by_tag(&md[M_Y], 2, yd, dnnl_f32, dnnl_ab), "memory descriptor");
    TRY_DN(dnnl_memory_desc_init_by_tag(&wany, 2, wd, dnnl_f32, dnnl_format_tag_any), "memory descriptor");
    TRY_DN(dnnl_matmul_desc_init(&d, &md[M_X], &wany, g->bias ? &md[M_B] : NULL, &md[M_Y]), "descriptor");
    TRY_DN(nep_dnnl_output_attr(g->sum, g->rectify, g->cap, &attr), "post-op");
    TRY_DN(dnnl_primitive_desc_create(&pd, &d, attr, p->engine, NULL), "primitive descriptor");
    md[M_PACKED] = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    TRY_DN(dnnl_primitive_create(&p->fwd, pd), "primitive");
    if (!dnnl_memory_desc_equal(&md[M_W], &md[M_PACKED])) {
        TRY_DN(dnnl_reorder_primitive_desc_create(&rpd, &md[M_W], p->engine, &md[M_PACKED], p->engine, NULL),
               "reorder descriptor");
        TRY_DN(dnnl_primitive_create(&p->pack, rpd), "reorder");
        const size_t bytes = (dnnl_memory_desc_get_size(&md[M_PACKED]) + ALIGN - 1) / ALIGN * ALIGN;
        if (!(p->packed = aligned_alloc(ALIGN, bytes))) {
            st = nep_fail(err, NEP_ERR_NOMEM, "out of memory for packed Linear weights");
            goto out;
        }
    }
    for (int i = 0; i < M_COUNT; i++) {
        if ((i == M_B && !g->bias) || (i == M_PACKED && !p->pack)) continue;
        TRY_DN(dnnl_memory_create(&p->mem[i], &md[i], p->engine, DNNL_MEMORY_NONE), "memory object");
    }
out:
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    return st;
#undef TRY_DN
}

nep_status nep_dnnl_linear_plan_new(const nep_linear_geom *g, nep_linear_plan **out, nep_err *err) {
    nep_linear_plan *p = calloc(1, sizeof *p);
    if (!p) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for a Linear plan");
    p->g = *g;
    dnnl_status_t s = nep_dnnl_open(&p->engine, &p->stream);
    nep_status st = s == dnnl_success ? plan_build(p, err) : dnnl_fail(err, s, "engine");
    if (st != NEP_OK) {
        nep_dnnl_linear_plan_free(p);
        return st;
    }
    *out = p;
    return NEP_OK;
}

/* Memory object of role r pointing at ptr. */
static dnnl_memory_t bind(nep_linear_plan *p, int r, const void *ptr) { return nep_dnnl_bind(p->mem[r], ptr); }

void nep_dnnl_linear_forward(nep_linear_plan *p, const float *x, const float *w, const float *b, float *y) {
    const void *wei = w;
    if (p->pack) {
        if (!p->packed_ok) {
            dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, bind(p, M_W, w)}, {DNNL_ARG_TO, bind(p, M_PACKED, p->packed)}};
            NEP_DNNL_RUN(dnnl_primitive_execute(p->pack, p->stream, 2, args));
            p->packed_ok = true;
        }
        wei = p->packed;
    }
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, bind(p, M_X, x)},
                               {DNNL_ARG_WEIGHTS, bind(p, p->pack ? M_PACKED : M_W, wei)},
                               {DNNL_ARG_DST, bind(p, M_Y, y)}};
    int n = 3;
    if (p->g.bias) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bind(p, M_B, b)};
    NEP_DNNL_RUN(dnnl_primitive_execute(p->fwd, p->stream, n, args));
    NEP_DNNL_RUN(dnnl_stream_wait(p->stream));
}

#else
typedef int nep_dnnl_linear_unused; /* the float64 build runs its GEMMs */
#endif
