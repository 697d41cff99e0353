/* What the kernels and the ONNX export of RotaryEmbedding (src/ops/rope.c) share: the
 * frequencies, as transformers' ROPE_INIT_FUNCTIONS compute them, in double. */
#ifndef NEPENTHE_OPS_ROPE_H
#define NEPENTHE_OPS_ROPE_H

#include <math.h>

#include "ops/ops.h"

/* Head width of node n's input. */
static inline int64_t nep_rope_head_dim(const nep_graph *g, const nep_node *n) {
    return nep_in_shape(g, n, 0)->d[1] / n->attrs.rope.heads;
}

/* inv_freq[0..hd/2): theta^(-2j / hd), then Llama 3's rescaling when factor > 0 (long
 * wavelengths divided by factor, short ones kept, the band between blended). */
static inline void nep_rope_inv_freq(const nep_rope_attrs *a, int64_t hd, double *inv_freq) {
    const double old = a->original_max_position, low_wavelen = old / a->low_freq_factor,
                 high_wavelen = old / a->high_freq_factor;
    for (int64_t j = 0; j < hd / 2; j++) {
        double f = 1 / pow(a->theta, (double)(2 * j) / (double)hd);
        if (a->factor > 0) {
            const double wavelen = 2 * M_PI / f;
            if (wavelen > low_wavelen) {
                f /= a->factor;
            } else if (wavelen >= high_wavelen) {
                const double smooth = (old / wavelen - a->low_freq_factor) / (a->high_freq_factor - a->low_freq_factor);
                f = (1 - smooth) * f / a->factor + smooth * f;
            }
        }
        inv_freq[j] = f;
    }
}

/* cos and sin [T][hd/2] of position t's angle for frequency j. */
static inline void nep_rope_table(const nep_rope_attrs *a, int64_t T, int64_t hd, double *cs, double *sn) {
    const int64_t half = hd / 2;
    double inv_freq[half];
    nep_rope_inv_freq(a, hd, inv_freq);
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < half; j++) {
            cs[t * half + j] = cos((double)t * inv_freq[j]);
            sn[t * half + j] = sin((double)t * inv_freq[j]);
        }
}

#endif
