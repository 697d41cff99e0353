/* Sharpness: power iteration on finite-difference Hessian-vector products of the
 * training loss (include/nepenthe/sharpness.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/sharpness.h"

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

nep_status nep_power_iteration(nep_hvp_fn hvp, void *ctx, int64_t n, nep_rng *rng, const nep_power_opts *o,
                               nep_power_result *out, nep_err *err) {
    *out = (nep_power_result){0};
    if (n < 1) return nep_fail(err, NEP_ERR_ARG, "power iteration over no variable");
    double *v = malloc(sizeof *v * (size_t)n), *hv = malloc(sizeof *hv * (size_t)n);
    nep_status s = v && hv ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory for %lld variables", (long long)n);
    for (int64_t i = 0; s == NEP_OK && i < n; i++) v[i] = nep_rng_normal(rng);
    double norm = s == NEP_OK ? sqrt(dot(v, v, n)) : 0, prev = NAN;
    const double t0 = nep_now();
    for (int k = 0; s == NEP_OK && k < o->max_iter; k++) {
        for (int64_t i = 0; i < n; i++) v[i] /= norm;
        if ((s = hvp(ctx, v, hv, err))) break;
        out->iters = k + 1;
        out->lambda = dot(v, hv, n);
        double r = 0;
        for (int64_t i = 0; i < n; i++) r += (hv[i] - out->lambda * v[i]) * (hv[i] - out->lambda * v[i]);
        out->residual = sqrt(r) / fabs(out->lambda);
        if (o->progress) o->progress(o->progress_ctx, k + 1, o->max_iter, out->lambda, nep_now() - t0);
        if (fabs(out->lambda - prev) <= o->tol * fabs(out->lambda)) {
            out->converged = true;
            break;
        }
        prev = out->lambda;
        norm = sqrt(dot(hv, hv, n));
        if (!(norm > 0)) break; /* H v = 0: v is an eigenvector of eigenvalue 0 */
        memcpy(v, hv, sizeof *v * (size_t)n);
    }
    free(v), free(hv);
    return s;
}

nep_sharpness_opts nep_sharpness_defaults(void) {
    return (nep_sharpness_opts){.batch = 256, .batches = 4, .step = 1e-3, .power = {20, 1e-3, NULL, NULL}};
}

nep_status nep_hessian_init(nep_hessian *h, nep_graph *g, const nep_split *s, const nep_sharpness_opts *o,
                            const nep_exec_opts *xo, nep_err *err) {
    *h = (nep_hessian){.g = g, .split = s, .opts = *o, .exec = xo};
    NEP_TRY(nep_graph_check_resident(g, "sharpness", err));
    for (int p = 0; p < g->n_params; p++) {
        const nep_param *q = &g->params[p];
        if (!(q->flags & NEP_PARAM_TRAINABLE) || g->nodes[q->node].dead) continue;
        for (int64_t k = 0; k < q->numel; k++) h->n += g->masks[q->offset + k];
    }
    h->index = malloc(sizeof *h->index * (size_t)h->n);
    h->w0 = malloc(sizeof *h->w0 * (size_t)h->n), h->gp = malloc(sizeof *h->gp * (size_t)h->n);
    if (!h->index || !h->w0 || !h->gp) {
        nep_hessian_free(h);
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory for %lld weights", (long long)h->n);
    }
    int64_t i = 0;
    for (int p = 0; p < g->n_params; p++) {
        const nep_param *q = &g->params[p];
        if (!(q->flags & NEP_PARAM_TRAINABLE) || g->nodes[q->node].dead) continue;
        for (int64_t k = 0; k < q->numel; k++)
            if (g->masks[q->offset + k]) h->index[i++] = q->offset + k;
    }
    for (i = 0; i < h->n; i++) h->w0[i] = g->values[h->index[i]];
    h->eps = o->step * fmax(sqrt(dot(h->w0, h->w0, h->n)), 1);
    return h->n ? NEP_OK : nep_fail(err, NEP_ERR_ARG, "sharpness: the model has no trainable weight");
}

void nep_hessian_free(nep_hessian *h) {
    free(h->index), free(h->w0), free(h->gp);
    h->index = NULL, h->w0 = h->gp = NULL;
}

typedef struct grad_acc {
    nep_hessian *h;
    double *grad, loss;
    int64_t rows;
    nep_real *dlogits;  /* [batch, classes] */
} grad_acc;

/* Adds a batch's summed loss and the gradient of its summed loss. */
static nep_status add_batch(void *ctx, nep_exec *ex, const nep_real *logits, const int32_t *y, int64_t b,
                            nep_err *err) {
    grad_acc *a = ctx;
    const nep_graph *g = a->h->g;
    const int64_t K = nep_shape_numel(&g->nodes[g->output].shape);
    for (int64_t i = 0; i < b; i++)
        if (y[i] < 0 || y[i] >= K)
            return nep_fail(err, NEP_ERR_ARG, "sharpness: a label (%d) outside the model's %lld classes", y[i],
                            (long long)K);
    a->loss += nep_xent(logits, y, b, K, a->dlogits, NULL) * (double)b; /* dlogits: of the batch's mean */
    nep_exec_backward(ex, a->dlogits);
    for (int64_t i = 0; i < a->h->n; i++) a->grad[i] += (double)b * (double)g->grads[a->h->index[i]];
    a->rows += b;
    return NEP_OK;
}

nep_status nep_hessian_grad(nep_hessian *h, double *grad, double *loss, nep_err *err) {
    const nep_graph *g = h->g;
    const int64_t K = nep_shape_numel(&g->nodes[g->output].shape);
    grad_acc a = {h, grad, 0, 0, malloc(sizeof(nep_real) * (size_t)(h->opts.batch * K))};
    if (!a.dlogits) return nep_fail(err, NEP_ERR_NOMEM, "out of memory");
    memset(grad, 0, sizeof *grad * (size_t)h->n);
    nep_status s = nep_split_for_each_batch(h->split, h->g, h->opts.batch, h->opts.batches, NULL, NULL, NULL,
                                            add_batch, &a, h->exec, err);
    free(a.dlogits);
    double rows = (double)a.rows;
    if (s == NEP_OK) s = nep_comm_sum(h->split->comm, &rows, 1, NEP_COMM_F64, err);
    if (s == NEP_OK) s = nep_comm_sum(h->split->comm, &a.loss, 1, NEP_COMM_F64, err);
    if (s == NEP_OK) s = nep_comm_sum(h->split->comm, grad, h->n, NEP_COMM_F64, err);
    if (s == NEP_OK && !(rows > 0)) s = nep_fail(err, NEP_ERR_ARG, "sharpness: the split has no rows");
    if (s != NEP_OK) return s;
    for (int64_t i = 0; i < h->n; i++) grad[i] /= rows;
    if (loss) *loss = a.loss / rows;
    h->grads++;
    return NEP_OK;
}

/* g's weights at w0 + t v (t = 0: w0 itself). */
static void set_weights(nep_hessian *h, const double *v, double t) {
    for (int64_t i = 0; i < h->n; i++) h->g->values[h->index[i]] = (nep_real)(h->w0[i] + t * v[i]);
}

nep_status nep_hessian_vector(void *ctx, const double *v, double *hv, nep_err *err) {
    nep_hessian *h = ctx;
    set_weights(h, v, h->eps);
    nep_status s = nep_hessian_grad(h, h->gp, NULL, err);
    set_weights(h, v, -h->eps);
    if (s == NEP_OK) s = nep_hessian_grad(h, hv, NULL, err);
    set_weights(h, v, 0);
    if (s != NEP_OK) return s;
    for (int64_t i = 0; i < h->n; i++) hv[i] = (h->gp[i] - hv[i]) / (2 * h->eps);
    return NEP_OK;
}

nep_status nep_sharpness(nep_graph *g, const nep_split *s, const nep_sharpness_opts *o, nep_power_result *out,
                         const nep_exec_opts *xo, nep_err *err) {
    nep_hessian h;
    NEP_TRY(nep_hessian_init(&h, g, s, o, xo, err));
    nep_rng rng;
    nep_rng_seed(&rng, o->seed);
    const nep_status st = nep_power_iteration(nep_hessian_vector, &h, h.n, &rng, &o->power, out, err);
    nep_hessian_free(&h);
    return st;
}
