/* Post-op attributes shared by the oneDNN glue (dnnl_conv.c, dnnl_linear.c); float builds. */
#ifndef NEPENTHE_DNNL_ATTR_H
#define NEPENTHE_DNNL_ATTR_H

#include <math.h>
#include <stdbool.h>
#include <oneapi/dnnl/dnnl.h>

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
