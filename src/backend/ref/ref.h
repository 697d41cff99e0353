/* The reference backend: every op as plain loops in float64 over NCHW activations,
 * single-threaded and written for clarity, not speed. It defines what the other
 * backends must compute (tests/test_backend_parity.c runs each of them against it), and
 * `--backend ref` runs any model on it. Inputs and outputs are nep_real; every sum and
 * every function is evaluated in double and rounded once when stored. */
#ifndef NEPENTHE_BACKEND_REF_H
#define NEPENTHE_BACKEND_REF_H

#include <math.h>

#include "backend/backend.h"
#include "ops/ops.h"

/* y as stored by a call that may apply its reader's rectifier (nep_call.rectify); NaN
 * goes to 0, as the rectifiers' own forward does. */
static inline double ref_rectified(const nep_call *c, double y) {
    return !c->rectify ? y : y > 0 ? (y < (double)c->cap ? y : (double)c->cap) : 0;
}
/* *d = v, or *d += v when add. */
static inline void ref_put(nep_real *d, double v, bool add) {
    *d = (nep_real)(add ? (double)*d + v : v);
}
/* Features and positions per sample of the call's input 0. */
static inline void ref_chan_dims(const nep_call *c, int64_t *C, int64_t *inner) {
    const nep_shape *s = nep_in_shape(c->g, c->n, 0);
    *C = nep_shape_features(s);
    *inner = nep_shape_positions(s);
}
/* Where feature ch of sample b at position k is: [B, C, inner] for images (NCHW) and
 * vectors, [B, inner, C] for token sequences. */
static inline int64_t ref_chan_at(const nep_call *c, int64_t C, int64_t inner, int64_t b,
                                  int64_t ch, int64_t k) {
    return nep_shape_features_last(nep_in_shape(c->g, c->n, 0)) ? (b * inner + k) * C + ch
                                                                  : (b * C + ch) * inner + k;
}

/* Conv2d in either layout (the CPU backend falls back to these, and the float64 build
 * runs them). */
void nep_ref_conv2d_forward(const nep_call *c);
void nep_ref_conv2d_backward(const nep_call *c);

extern const nep_kernel nep_ref_none, nep_ref_linear, nep_ref_relu, nep_ref_leaky_relu,
    nep_ref_prelu, nep_ref_relu6, nep_ref_gelu, nep_ref_silu, nep_ref_dropout, nep_ref_add,
    nep_ref_conv2d, nep_ref_batchnorm, nep_ref_maxpool, nep_ref_avgpool,
    nep_ref_global_avgpool, nep_ref_affine, nep_ref_embedding, nep_ref_layernorm,
    nep_ref_attention, nep_ref_sdpa, nep_ref_tanh, nep_ref_rmsnorm, nep_ref_rope, nep_ref_mul, nep_ref_tokens, nep_ref_class_token, nep_ref_pos_embedding, nep_ref_take_token,
    nep_ref_token_mean, nep_ref_patch_merge, nep_ref_drop_path;

#endif
