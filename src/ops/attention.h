/* Where the tokens of an Attention node meet (src/ops/attention.c), shared by the
 * backends' kernels so that each computes the one geometry torchvision's
 * shifted_window_attention defines:
 *
 *   the grid [H, W] is zero-padded at its end to multiples of the window [PH, PW],
 *   rolled by (-shift) (torch.roll), and cut into nW = (PH / wh) (PW / ww) windows of
 *   N = wh ww slots; window w = a (PW / ww) + b holds the rolled positions
 *   (a wh + u, b ww + v), slot n = u ww + v.
 *
 * A shift is dropped on an axis whose window covers the padded grid (torchvision: "no need
 * to shift"). A padding slot holds the zero vector, so its query, key and value are the
 * qkv Linear's bias (torchvision pads before that Linear): it is attended to, and its own
 * output is discarded. Shifted windows mask (add -100 to) the scores between slots of
 * different regions of the rolled grid, exactly as torchvision's attn_mask. A sequence
 * [T, C], or a grid with window 0 0, is one window of every token in order (ViT). */
#ifndef NEPENTHE_OPS_ATTENTION_H
#define NEPENTHE_OPS_ATTENTION_H

#include "ops/ops.h"

typedef struct nep_attention_geom {
    int64_t T, C, heads, hd;    /* tokens, features, heads, features per head (C / heads) */
    int64_t H, W;               /* the grid (a sequence: 1 x T) */
    int64_t wh, ww, sh, sw;     /* window, and the shift in effect */
    int64_t PH, PW, nW, N;      /* padded grid, windows, slots per window */
    bool biased;                /* a relative_position_bias_table (parameter 4) */
    bool masked;                /* shifted: the region mask applies */
    bool regroups;              /* slots are not the tokens in order (padding, windows, shift) */
    double scale;               /* of the scores: 1 / sqrt(hd) */
} nep_attention_geom;

/* The geometry of Attention node n (after shape inference). */
nep_attention_geom nep_attention_geom_of(const nep_graph *g, const nep_node *n);

/* The token in slot s of window w: its index in [0, T), or -1 for padding. */
static inline int64_t nep_attention_source(const nep_attention_geom *a, int64_t w, int64_t s) {
    const int64_t i = (w / (a->PW / a->ww)) * a->wh + s / a->ww;
    const int64_t j = (w % (a->PW / a->ww)) * a->ww + s % a->ww;
    const int64_t pi = (i + a->sh) % a->PH, pj = (j + a->sw) % a->PW;
    return pi < a->H && pj < a->W ? pi * a->W + pj : -1;
}

/* The region of the rolled grid that slot s of window w lies in (masked geometries):
 * per axis, before the last window, in it before the shift, or in the shift. */
static inline int nep_attention_region(const nep_attention_geom *a, int64_t w, int64_t s) {
    const int64_t i = (w / (a->PW / a->ww)) * a->wh + s / a->ww;
    const int64_t j = (w % (a->PW / a->ww)) * a->ww + s % a->ww;
    const int ri = i < a->PH - a->wh ? 0 : i < a->PH - a->sh ? 1 : 2;
    const int rj = j < a->PW - a->ww ? 0 : j < a->PW - a->sw ? 1 : 2;
    return 3 * ri + rj;
}

/* What the mask adds to the score of slots p, q of window w. */
static inline double nep_attention_mask(const nep_attention_geom *a, int64_t w, int64_t p, int64_t q) {
    return a->masked && nep_attention_region(a, w, p) != nep_attention_region(a, w, q) ? -100.0 : 0.0;
}

/* The row of relative_position_bias_table [(2 wh - 1)(2 ww - 1), heads] that slots p, q
 * of a window read (torchvision's relative_position_index). */
static inline int64_t nep_attention_bias_row(const nep_attention_geom *a, int64_t p, int64_t q) {
    return (p / a->ww - q / a->ww + a->wh - 1) * (2 * a->ww - 1) + (p % a->ww - q % a->ww + a->ww - 1);
}

#endif
