/* Conv2d (src/ops/conv2d.c) as direct loops, every sum in double:
 *   y[b,f,o,p] = bias[f] + sum_{c<C/g, i, j} W[f,c,i,j] x[b, G(f) C/g + c, o sh - ph + i, p sw - pw + j]
 *     (+ y[b,f,o,p] with nep_call.y_add)
 *   dx[b,ci,h,w] = sum over the outputs whose windows hold (h, w) of dy W   (a gather:
 *     each input element is written once, so dx needs no zeroing pass)
 *   dW[f,c,i,j] = sum_{b,o,p} dy x-patch   db[f] = sum_{b,o,p} dy
 * Either layout (nep_call.nhwc): the CPU backend falls back to these when oneDNN cannot
 * make a primitive, and its float64 build runs them. */
#include "backend/ref/ref.h"

typedef struct conv_dims {
    int64_t B, C, H, W, F, OH, OW, Cg, Fg;
    int kh, kw, sh, sw, ph, pw;
    bool nhwc;
} conv_dims;

static conv_dims dims_of(const nep_call *c) {
    const nep_shape *in = nep_in_shape(c->g, c->n, 0);
    const nep_conv2d_attrs *a = &c->n->attrs.conv;
    const int G = nep_conv_groups(c->n);
    return (conv_dims){.B = c->batch, .C = in->d[0], .H = in->d[1], .W = in->d[2],
                       .F = c->n->shape.d[0], .OH = c->n->shape.d[1], .OW = c->n->shape.d[2],
                       .Cg = in->d[0] / G, .Fg = c->n->shape.d[0] / G, .kh = a->kernel[0],
                       .kw = a->kernel[1], .sh = a->stride[0], .sw = a->stride[1],
                       .ph = a->pad[0], .pw = a->pad[1], .nhwc = c->nhwc};
}
/* Element (b, ch, h, w) of a [B, CH, HH, WW] tensor in the call's layout. */
static int64_t at(const conv_dims *d, int64_t b, int64_t ch, int64_t CH, int64_t hw, int64_t HW) {
    return nep_plane_start(d->nhwc, b, ch, CH, HW) + hw * nep_plane_step(d->nhwc, CH);
}

void nep_ref_conv2d_forward(const nep_call *c) {
    const conv_dims d = dims_of(c);
    const nep_real *x = c->x[0], *w = c->w[0], *bias = c->n->attrs.conv.bias ? c->w[1] : NULL;
    for (int64_t b = 0; b < d.B; b++)
        for (int64_t f = 0; f < d.F; f++)
            for (int64_t o = 0; o < d.OH; o++)
                for (int64_t p = 0; p < d.OW; p++) {
                    double acc = bias ? bias[f] : 0;
                    for (int64_t ch = 0; ch < d.Cg; ch++)
                        for (int i = 0; i < d.kh; i++)
                            for (int j = 0; j < d.kw; j++) {
                                const int64_t ih = o * d.sh - d.ph + i, iw = p * d.sw - d.pw + j;
                                if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
                                acc += (double)w[((f * d.Cg + ch) * d.kh + i) * d.kw + j] *
                                       (double)x[at(&d, b, f / d.Fg * d.Cg + ch, d.C, ih * d.W + iw, d.H * d.W)];
                            }
                    nep_real *y = &c->y[at(&d, b, f, d.F, o * d.OW + p, d.OH * d.OW)];
                    *y = (nep_real)ref_rectified(c, c->y_add ? acc + (double)*y : acc);
                }
}

void nep_ref_conv2d_backward(const nep_call *c) {
    const conv_dims d = dims_of(c);
    const nep_real *x = c->x[0], *w = c->w[0], *dy = c->dy;
    const int64_t HW = d.H * d.W, OHW = d.OH * d.OW;
    if (c->dx[0])
        for (int64_t b = 0; b < d.B; b++)
            for (int64_t ci = 0; ci < d.C; ci++)
                for (int64_t h = 0; h < d.H; h++)
                    for (int64_t wc = 0; wc < d.W; wc++) {
                        const int64_t grp = ci / d.Cg, ch = ci % d.Cg;
                        double acc = 0;
                        for (int64_t f = grp * d.Fg; f < (grp + 1) * d.Fg; f++)
                            for (int i = 0; i < d.kh; i++) {
                                const int64_t th = h + d.ph - i, o = th / d.sh;
                                if (th < 0 || th % d.sh || o >= d.OH) continue;
                                for (int j = 0; j < d.kw; j++) {
                                    const int64_t tw = wc + d.pw - j, p = tw / d.sw;
                                    if (tw < 0 || tw % d.sw || p >= d.OW) continue;
                                    acc += (double)dy[at(&d, b, f, d.F, o * d.OW + p, OHW)] *
                                           (double)w[((f * d.Cg + ch) * d.kh + i) * d.kw + j];
                                }
                            }
                        ref_put(&c->dx[0][at(&d, b, ci, d.C, h * d.W + wc, HW)], acc, c->dx_add[0]);
                    }
    for (int64_t f = 0; f < d.F; f++) {
        for (int64_t ch = 0; ch < d.Cg; ch++)
            for (int i = 0; i < d.kh; i++)
                for (int j = 0; j < d.kw; j++) {
                    double acc = 0;
                    for (int64_t b = 0; b < d.B; b++)
                        for (int64_t o = 0; o < d.OH; o++)
                            for (int64_t p = 0; p < d.OW; p++) {
                                const int64_t ih = o * d.sh - d.ph + i, iw = p * d.sw - d.pw + j;
                                if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
                                acc += (double)dy[at(&d, b, f, d.F, o * d.OW + p, OHW)] *
                                       (double)x[at(&d, b, f / d.Fg * d.Cg + ch, d.C, ih * d.W + iw, HW)];
                            }
                    ref_put(&c->dw[0][((f * d.Cg + ch) * d.kh + i) * d.kw + j], acc, c->accumulate);
                }
        if (!c->n->attrs.conv.bias) continue;
        double acc = 0;
        for (int64_t b = 0; b < d.B; b++)
            for (int64_t k = 0; k < OHW; k++) acc += (double)dy[at(&d, b, f, d.F, k, OHW)];
        ref_put(&c->dw[1][f], acc, c->accumulate);
    }
}

const nep_kernel nep_ref_conv2d = {.sums_into_y = true, .forward = nep_ref_conv2d_forward,
                                   .backward = nep_ref_conv2d_backward};
