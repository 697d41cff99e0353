/* oneDNN glue for GELU, SiLU and Tanh (see dnnl_eltwise.h). A plan per (algorithm, element
 * count): its engine and stream (its own, as dnnl_conv.c's plans: no state shared
 * between nodes or executors), the forward and backward primitives, and memory objects
 * whose data handles are set at each call. */
#include "backend/cpu/dnnl_eltwise.h"

#ifndef NEP_DOUBLE

#include <oneapi/dnnl/dnnl.h>
#include <assert.h>
#include <stdlib.h>

#include "backend/cpu/dnnl_glue.h"

enum { M_SRC, M_DST, M_DIFF_DST, M_DIFF_SRC, M_COUNT };

typedef struct plan {
    nep_eltwise_alg alg;
    int64_t n;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_t fwd, bwd;
    dnnl_memory_t mem[M_COUNT];
} plan;

/* A node's plans: the full batch and the last, smaller one of an epoch. */
typedef struct plans {
    plan *p[2];
} plans;

/* Destroys p's oneDNN objects, leaving its (alg, n). */
static void plan_release(plan *p) {
    if (p->fwd) dnnl_primitive_destroy(p->fwd);
    if (p->bwd) dnnl_primitive_destroy(p->bwd);
    for (int i = 0; i < M_COUNT; i++)
        if (p->mem[i]) dnnl_memory_destroy(p->mem[i]);
    if (p->stream) dnnl_stream_destroy(p->stream);
    if (p->engine) dnnl_engine_destroy(p->engine);
    *p = (plan){.alg = p->alg, .n = p->n};
}

static void plan_free(plan *p) {
    if (!p) return;
    plan_release(p);
    free(p);
}

void nep_dnnl_eltwise_cache_free(void *cache) {
    plans *ps = cache;
    if (!ps) return;
    for (int i = 0; i < 2; i++) plan_free(ps->p[i]);
    free(ps);
}

/* torch.nn.GELU() is the erf form (oneDNN's dnnl_eltwise_gelu is the tanh one); SiLU is
 * swish with alpha 1, z * sigmoid(1 * z). The backward algorithms without
 * _use_dst_for_bwd read src, the pre-activation z. */
static dnnl_alg_kind_t dnnl_alg(nep_eltwise_alg alg) {
    switch (alg) {
    case NEP_ELTWISE_GELU: return dnnl_eltwise_gelu_erf;
    case NEP_ELTWISE_GELU_TANH: return dnnl_eltwise_gelu_tanh;
    case NEP_ELTWISE_SILU: return dnnl_eltwise_swish;
    case NEP_ELTWISE_TANH: return dnnl_eltwise_tanh;
    }
    return dnnl_alg_kind_undef;
}

static dnnl_status_t plan_build(plan *p) {
    const dnnl_alg_kind_t alg = dnnl_alg(p->alg);
    const float alpha = p->alg == NEP_ELTWISE_SILU ? 1.0f : 0.0f;
    dnnl_memory_desc_t md;
    dnnl_eltwise_desc_t fd, bd;
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL;
    dnnl_status_t s = nep_dnnl_open(&p->engine, &p->stream);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(&md, 1, (dnnl_dims_t){p->n}, dnnl_f32, dnnl_x);
    if (s == dnnl_success) s = dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, alg, &md, alpha, 0.0f);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&fpd, &fd, NULL, p->engine, NULL);
    if (s == dnnl_success) s = dnnl_eltwise_backward_desc_init(&bd, alg, &md, &md, alpha, 0.0f);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&bpd, &bd, NULL, p->engine, fpd);
    if (s == dnnl_success) s = dnnl_primitive_create(&p->fwd, fpd);
    if (s == dnnl_success) s = dnnl_primitive_create(&p->bwd, bpd);
    for (int i = 0; i < M_COUNT && s == dnnl_success; i++)
        s = dnnl_memory_create(&p->mem[i], &md, p->engine, DNNL_MEMORY_NONE);
    if (bpd) dnnl_primitive_desc_destroy(bpd);
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    return s;
}

static bool fits(const plan *p, nep_eltwise_alg alg, int64_t n) { return p && p->alg == alg && p->n == n; }

/* The plan for (alg, n) from *cache, built on first use; NULL where there is none. A
 * batch that fits neither slot replaces the second, so the full batch's plan stays. */
static plan *plan_for(void **cache, nep_eltwise_alg alg, int64_t n) {
    if (!cache || n <= 0) return NULL;
    plans *ps = *cache;
    if (!ps && !(ps = *cache = calloc(1, sizeof *ps))) return NULL;
    for (int i = 0; i < 2; i++)
        if (fits(ps->p[i], alg, n)) return ps->p[i]->fwd ? ps->p[i] : NULL;
    const int slot = ps->p[0] ? 1 : 0;
    plan_free(ps->p[slot]);
    plan *p = ps->p[slot] = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->alg = alg, p->n = n;
    if (plan_build(p) != dnnl_success) {
        /* kept without primitives, so that the loop runs without asking oneDNN again */
        plan_release(p);
        return NULL;
    }
    return p;
}

/* Memory object of role r pointing at ptr. */
static dnnl_memory_t bind(plan *p, int r, const void *ptr) { return nep_dnnl_bind(p->mem[r], ptr); }

/* Executing a primitive created for these descriptors cannot fail short of a bug here. */
static void run(plan *p, dnnl_primitive_t prim, int nargs, const dnnl_exec_arg_t *args) {
    dnnl_status_t s = dnnl_primitive_execute(prim, p->stream, nargs, args);
    if (s == dnnl_success) s = dnnl_stream_wait(p->stream);
    assert(s == dnnl_success);
    (void)s;
}

bool nep_dnnl_eltwise_forward(void **cache, nep_eltwise_alg alg, int64_t n, const nep_real *z,
                              nep_real *y) {
    plan *p = plan_for(cache, alg, n);
    if (!p) return false;
    const dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, bind(p, M_SRC, z)}, {DNNL_ARG_DST, bind(p, M_DST, y)}};
    run(p, p->fwd, 2, args);
    return true;
}

bool nep_dnnl_eltwise_backward(void **cache, nep_eltwise_alg alg, int64_t n, const nep_real *z,
                               const nep_real *dy, nep_real *dz) {
    plan *p = plan_for(cache, alg, n);
    if (!p) return false;
    const dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, bind(p, M_SRC, z)},
                                    {DNNL_ARG_DIFF_DST, bind(p, M_DIFF_DST, dy)},
                                    {DNNL_ARG_DIFF_SRC, bind(p, M_DIFF_SRC, dz)}};
    run(p, p->bwd, 3, args);
    return true;
}

#else
/* The float64 build runs rectifiers.c's loops: oneDNN's eltwise is float only. */
bool nep_dnnl_eltwise_forward(void **cache, nep_eltwise_alg alg, int64_t n, const nep_real *z,
                              nep_real *y) {
    return false;
}
bool nep_dnnl_eltwise_backward(void **cache, nep_eltwise_alg alg, int64_t n, const nep_real *z,
                               const nep_real *dy, nep_real *dz) {
    return false;
}
void nep_dnnl_eltwise_cache_free(void *cache) {}
#endif
