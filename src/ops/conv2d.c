/* Conv2d, as torch.nn.Conv2d (zero padding, no dilation).
 *   x [B, C, H, W]   W [F, C/g, kh, kw] ("weight")   b [F] ("bias", optional)
 *   y [B, F, Ho, Wo]   Ho = (H + 2 ph - kh) / sh + 1,  Wo likewise;  g = groups
 *   y[b,f,o,p] = b[f] + sum_{c<C/g, i<kh, j<kw} W[f,c,i,j] x[b, G(f) C/g + c, o sh - ph + i, p sw - pw + j]
 *   (G(f) = f / (F/g), the group of output channel f; x is 0 outside the image)
 * backward: dx (+)= conv_transpose(dy, W)   dW = sum_{b,o,p} dy x-patch   db = sum_{b,o,p} dy
 *   (dx: += when another consumer wrote it first; dW, db: += with accumulate_grads)
 * Float builds run oneDNN (backend/cpu/dnnl_conv.c); the float64 build, used by the
 * finite-difference checks, runs the direct loops below, which float builds also fall
 * back to should oneDNN fail to create a primitive. Both take activations in the
 * executor's layout (NCHW, or NHWC when ex->nhwc). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/dnnl_conv.h"
#include "ops/ops.h"

static int conv_groups(const nep_node *n) { return n->attrs.groups > 0 ? n->attrs.groups : 1; }

static nep_status conv2d_infer(nep_graph *g, nep_node *n, nep_err *err) {
    const nep_shape *in = nep_in_shape(g, n, 0);
    const nep_attrs *a = &n->attrs;
    if (in->ndim != 3)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Conv2d): input has %d dims, wants 3 "
                        "[C, H, W]", n->name, in->ndim);
    const int64_t C = in->d[0], H = in->d[1], W = in->d[2], F = a->features;
    const int G = conv_groups(n);
    if (a->kernel[0] < 1 || a->kernel[1] < 1 || a->stride[0] < 1 || a->stride[1] < 1 ||
        a->pad[0] < 0 || a->pad[1] < 0)
        return nep_fail(err, NEP_ERR_ARG, "node '%s' (Conv2d): kernel %dx%d, stride %dx%d, "
                        "padding %dx%d: kernel and stride must be >= 1, padding >= 0", n->name,
                        a->kernel[0], a->kernel[1], a->stride[0], a->stride[1], a->pad[0], a->pad[1]);
    if (F < 1 || C % G || F % G)
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Conv2d): %lld input and %lld output "
                        "channels must both be positive multiples of groups = %d", n->name,
                        (long long)C, (long long)F, G);
    const int64_t Hp = H + 2 * a->pad[0], Wp = W + 2 * a->pad[1];
    if (Hp < a->kernel[0] || Wp < a->kernel[1])
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Conv2d): kernel %dx%d is larger than "
                        "the padded input %lldx%lld", n->name, a->kernel[0], a->kernel[1],
                        (long long)Hp, (long long)Wp);
    const nep_param *w = n->n_params >= 1 ? &g->params[n->params[0]] : NULL;
    if (n->n_params != 1 + a->bias || w->ndim != 4 || w->shape[0] != F || w->shape[1] != C / G ||
        w->shape[2] != a->kernel[0] || w->shape[3] != a->kernel[1])
        return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Conv2d): wants parameters weight "
                        "[%lld, %lld, %d, %d]%s", n->name, (long long)F, (long long)(C / G),
                        a->kernel[0], a->kernel[1], a->bias ? " and bias" : " only");
    if (a->bias) {
        const nep_param *b = &g->params[n->params[1]];
        if (b->ndim != 1 || b->shape[0] != F)
            return nep_fail(err, NEP_ERR_SHAPE, "node '%s' (Conv2d): bias must be [%lld]",
                            n->name, (long long)F);
    }
    n->shape = (nep_shape){3, {F, (Hp - a->kernel[0]) / a->stride[0] + 1,
                               (Wp - a->kernel[1]) / a->stride[1] + 1}};
    return NEP_OK;
}

static int64_t conv2d_flops(const nep_graph *g, const nep_node *n) {
    const int64_t C = nep_in_shape(g, n, 0)->d[0], out = nep_shape_numel(&n->shape);
    return 2 * out * (C / conv_groups(n)) * n->attrs.kernel[0] * n->attrs.kernel[1] +
           (n->attrs.bias ? out : 0);
}

/* Node n's geometry at this batch; when node id's forward also applies the rectifier
 * after it (nep_epilogue), rectify and cap say so. */
static nep_conv_geom conv_geom(const nep_exec *ex, const nep_node *n, int64_t batch, nep_real **y) {
    const nep_graph *g = ex->g;
    const nep_shape *in = nep_in_shape(g, n, 0);
    bool rectify = false;
    nep_real cap = 0;
    const int id = (int)(n - g->nodes);
    nep_real *out = ex->epilogue ? nep_epilogue_out(ex, id, &rectify, &cap) : NULL;
    if (y) *y = out;
    return (nep_conv_geom){
        .batch = batch, .in_c = in->d[0], .in_h = in->d[1], .in_w = in->d[2],
        .out_c = n->shape.d[0], .out_h = n->shape.d[1], .out_w = n->shape.d[2],
        .kh = n->attrs.kernel[0], .kw = n->attrs.kernel[1], .sh = n->attrs.stride[0],
        .sw = n->attrs.stride[1], .ph = n->attrs.pad[0], .pw = n->attrs.pad[1],
        .groups = conv_groups(n), .bias = n->attrs.bias, .nhwc = ex->nhwc,
        .rectify = rectify, .cap = (float)cap,
    };
}

/* ---- reference: direct loops ------------------------------------------------ */

static void ref_forward(const nep_conv_geom *q, const nep_real *x, const nep_real *w,
                        const nep_real *bias, nep_real *y) {
    const int64_t Cg = q->in_c / q->groups, Fg = q->out_c / q->groups, HW = q->in_h * q->in_w;
    const int64_t OHW = q->out_h * q->out_w, rows = q->batch * q->out_c;
    const int64_t xs = nep_plane_step(q->nhwc, q->in_c), ys = nep_plane_step(q->nhwc, q->out_c);
#pragma omp parallel for if (rows * OHW * Cg * q->kh * q->kw > NEP_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t b = r / q->out_c, f = r % q->out_c;
        const nep_real *wf = w + f * Cg * q->kh * q->kw;
        nep_real *yr = y + nep_plane_start(q->nhwc, b, f, q->out_c, OHW);
        for (int64_t o = 0; o < q->out_h; o++)
            for (int64_t p = 0; p < q->out_w; p++) {
                nep_real acc = bias ? bias[f] : 0;
                for (int64_t c = 0; c < Cg; c++) {
                    const nep_real *xc = x + nep_plane_start(q->nhwc, b, f / Fg * Cg + c, q->in_c, HW);
                    for (int i = 0; i < q->kh; i++) {
                        const int64_t ih = o * q->sh - q->ph + i;
                        if (ih < 0 || ih >= q->in_h) continue;
                        for (int j = 0; j < q->kw; j++) {
                            const int64_t iw = p * q->sw - q->pw + j;
                            if (iw < 0 || iw >= q->in_w) continue;
                            acc += wf[(c * q->kh + i) * q->kw + j] * xc[(ih * q->in_w + iw) * xs];
                        }
                    }
                }
                yr[(o * q->out_w + p) * ys] = acc;
            }
    }
}

static void ref_backward(const nep_conv_geom *q, const nep_real *x, const nep_real *w,
                         const nep_real *dy, nep_real *dx, bool dx_add, nep_real *dw,
                         nep_real *db, bool accumulate) {
    const int64_t Cg = q->in_c / q->groups, Fg = q->out_c / q->groups, HW = q->in_h * q->in_w;
    const int64_t OHW = q->out_h * q->out_w, K = Cg * q->kh * q->kw;
    const int64_t xs = nep_plane_step(q->nhwc, q->in_c), ys = nep_plane_step(q->nhwc, q->out_c);
    if (dx && !dx_add) memset(dx, 0, sizeof(nep_real) * (size_t)(q->batch * q->in_c * HW));
    if (dx) {
        /* Scatter each sample's dy through W; samples write disjoint slices of dx. */
#pragma omp parallel for if (q->batch * q->out_c * OHW * K > NEP_PAR_MIN)
        for (int64_t b = 0; b < q->batch; b++)
            for (int64_t f = 0; f < q->out_c; f++) {
                const nep_real *dyr = dy + nep_plane_start(q->nhwc, b, f, q->out_c, OHW), *wf = w + f * K;
                for (int64_t o = 0; o < q->out_h; o++)
                    for (int64_t p = 0; p < q->out_w; p++) {
                        const nep_real d = dyr[(o * q->out_w + p) * ys];
                        for (int64_t c = 0; c < Cg; c++) {
                            nep_real *dxc = dx + nep_plane_start(q->nhwc, b, f / Fg * Cg + c, q->in_c, HW);
                            for (int i = 0; i < q->kh; i++) {
                                const int64_t ih = o * q->sh - q->ph + i;
                                if (ih < 0 || ih >= q->in_h) continue;
                                for (int j = 0; j < q->kw; j++) {
                                    const int64_t iw = p * q->sw - q->pw + j;
                                    if (iw < 0 || iw >= q->in_w) continue;
                                    dxc[(ih * q->in_w + iw) * xs] += d * wf[(c * q->kh + i) * q->kw + j];
                                }
                            }
                        }
                    }
            }
    }
    /* One output channel per iteration: its weights and bias are summed in a fixed
     * order (b, o, p), so runs reproduce. */
#pragma omp parallel for if (q->batch * q->out_c * OHW * K > NEP_PAR_MIN)
    for (int64_t f = 0; f < q->out_c; f++) {
        nep_real *dwf = dw + f * K;
        nep_real bacc = 0;
        if (!accumulate)
            for (int64_t k = 0; k < K; k++) dwf[k] = 0;
        for (int64_t b = 0; b < q->batch; b++) {
            const nep_real *dyr = dy + nep_plane_start(q->nhwc, b, f, q->out_c, OHW);
            for (int64_t o = 0; o < q->out_h; o++)
                for (int64_t p = 0; p < q->out_w; p++) {
                    const nep_real d = dyr[(o * q->out_w + p) * ys];
                    bacc += d;
                    for (int64_t c = 0; c < Cg; c++) {
                        const nep_real *xc = x + nep_plane_start(q->nhwc, b, f / Fg * Cg + c, q->in_c, HW);
                        for (int i = 0; i < q->kh; i++) {
                            const int64_t ih = o * q->sh - q->ph + i;
                            if (ih < 0 || ih >= q->in_h) continue;
                            for (int j = 0; j < q->kw; j++) {
                                const int64_t iw = p * q->sw - q->pw + j;
                                if (iw < 0 || iw >= q->in_w) continue;
                                dwf[(c * q->kh + i) * q->kw + j] += d * xc[(ih * q->in_w + iw) * xs];
                            }
                        }
                    }
                }
        }
        if (db) db[f] = accumulate ? db[f] + bacc : bacc;
    }
}

/* ---- the op ---------------------------------------------------------------------- */

#ifndef NEP_DOUBLE
/* Forward leaves x in oneDNN's layout here for backward-weights (see dnnl_conv.h). */
static int64_t conv2d_state_reals(const nep_exec *ex, const nep_node *n) {
    nep_conv_geom q = conv_geom(ex, n, 1, NULL);
    return nep_dnnl_conv_keep_per_sample(&q);
}
#endif

#ifndef NEP_DOUBLE
/* A node's oneDNN plans: the full batch and the last, smaller one of an epoch. */
typedef struct conv_plans {
    nep_conv_plan *p[2];
} conv_plans;

static void conv2d_free_backend(void *b) {
    conv_plans *c = b;
    for (int i = 0; i < 2; i++) nep_dnnl_conv_plan_free(c->p[i]);
    free(c);
}

/* The plan for this call and scratch for it; NULL to use the reference loops (oneDNN
 * could not build one, or no memory). */
static nep_conv_plan *plan_for(nep_exec *ex, int id, const nep_conv_geom *q, void **scratch) {
    conv_plans *c = ex->backend[id];
    if (!c && !(c = ex->backend[id] = calloc(1, sizeof *c))) return NULL;
    int slot = c->p[0] && nep_dnnl_conv_plan_fits(c->p[0], q) ? 0 : 1;
    if (!c->p[slot] || !nep_dnnl_conv_plan_fits(c->p[slot], q)) {
        if (!c->p[0]) slot = 0;
        nep_dnnl_conv_plan_free(c->p[slot]);
        c->p[slot] = NULL;
        if (nep_dnnl_conv_plan_new(q, &c->p[slot], NULL) != NEP_OK) return NULL;
    }
    *scratch = nep_exec_scratch(ex, nep_dnnl_conv_scratch_bytes(c->p[slot]));
    return *scratch ? c->p[slot] : NULL;
}
#endif

static void conv2d_forward(nep_exec *ex, int id) {
    const nep_graph *g = ex->g;
    const nep_node *n = &g->nodes[id];
    nep_real *y;
    const nep_conv_geom q = conv_geom(ex, n, ex->batch, &y);
    const nep_real *x = ex->act[n->inputs[0]], *w = nep_param_ptr(g, n, 0);
    const nep_real *b = n->attrs.bias ? nep_param_ptr(g, n, 1) : NULL;
#ifndef NEP_DOUBLE
    void *scratch;
    nep_conv_plan *p = plan_for(ex, id, &q, &scratch);
    if (p) {
        nep_dnnl_conv_forward(p, scratch, x, w, b, y, ex->state[id]);
        return;
    }
#endif
    ref_forward(&q, x, w, b, y);
    if (!q.rectify) return;
    const int64_t numel = nep_exec_numel(ex, id);
    for (int64_t i = 0; i < numel; i++) y[i] = nep_stored(y[i], true, (nep_real)q.cap);
}

static void conv2d_backward(nep_exec *ex, int id) {
    const nep_graph *g = ex->g;
    const nep_node *n = &g->nodes[id];
    const nep_conv_geom q = conv_geom(ex, n, ex->batch, NULL);
    const nep_real *x = ex->act[n->inputs[0]], *w = nep_param_ptr(g, n, 0), *dy = ex->dact[id];
    bool dx_add;
    nep_real *dx = nep_input_grad(ex, n, 0, &dx_add), *dw = nep_grad_ptr(g, n, 0);
    nep_real *db = n->attrs.bias ? nep_grad_ptr(g, n, 1) : NULL;
#ifndef NEP_DOUBLE
    void *scratch;
    nep_conv_plan *p = plan_for(ex, id, &q, &scratch);
    if (p) {
        nep_dnnl_conv_backward(p, scratch, x, ex->state[id], w, dy, dx, dx_add, dw, db,
                               ex->accumulate_grads);
        return;
    }
#endif
    ref_backward(&q, x, w, dy, dx, dx_add, dw, db, ex->accumulate_grads);
}

const nep_op_def nep_op_conv2d = {
    .name = "Conv2d", .min_inputs = 1, .max_inputs = 1,
    .infer = conv2d_infer, .flops = conv2d_flops,
#ifndef NEP_DOUBLE
    .state_reals = conv2d_state_reals, .free_backend = conv2d_free_backend,
#endif
    .forward = conv2d_forward, .backward = conv2d_backward,
};
