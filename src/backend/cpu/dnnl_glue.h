/* What the oneDNN glue (dnnl_conv.c, dnnl_linear.c, dnnl_eltwise.c) shares: the engine and
 * stream of a plan, post-op attributes, binding a memory object to a buffer and running a
 * primitive. Float builds. */
#ifndef NEPENTHE_DNNL_GLUE_H
#define NEPENTHE_DNNL_GLUE_H

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <oneapi/dnnl/dnnl.h>

/* A CPU engine and a stream on it (each plan owns its pair). */
static inline dnnl_status_t nep_dnnl_open(dnnl_engine_t *engine, dnnl_stream_t *stream) {
    dnnl_status_t s = dnnl_engine_create(engine, dnnl_cpu, 0);
    if (s == dnnl_success) s = dnnl_stream_create(stream, *engine, dnnl_stream_default_flags);
    return s;
}

/* Memory object m, pointing at ptr from now on. */
static inline dnnl_memory_t nep_dnnl_bind(dnnl_memory_t m, const void *ptr) {
    dnnl_memory_set_data_handle(m, (void *)ptr);
    return m;
}

/* Executing a primitive that was created for these descriptors cannot fail short of a
 * bug in the glue; a failure is not reported (outputs may be partly written) but trapped. */
#define NEP_DNNL_RUN(call)                          \
    do {                                            \
        dnnl_status_t nep_run_s_ = (call);          \
        assert(nep_run_s_ == dnnl_success);         \
        (void)nep_run_s_;                           \
    } while (0)

/* Post-ops on the primitive's output: with sum, the output is added to what dst holds
 * (oneDNN's sum post-op: dst = op(...) + dst); then with rectify a ReLU (cap infinite)
 * or a clip to [0, cap] (ReLU6). *attr is left NULL when there is neither. */
static inline dnnl_status_t nep_dnnl_output_attr(bool sum, bool rectify, float cap, dnnl_primitive_attr_t *attr) {
    *attr = NULL;
    if (!sum && !rectify) return dnnl_success;
    dnnl_post_ops_t po = NULL;
    dnnl_status_t s = dnnl_primitive_attr_create(attr);
    if (s == dnnl_success) s = dnnl_post_ops_create(&po);
    if (s == dnnl_success && sum) s = dnnl_post_ops_append_sum(po, 1.0f);
    if (s == dnnl_success && rectify)
        s = isinf(cap) ? dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f)
                       : dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, 0.0f, cap);
    if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(*attr, po);
    if (po) dnnl_post_ops_destroy(po);
    return s;
}

#endif
