/* NEPENTHE, IMP and EGP on a graph: layer entropies as each method defines them, Wanda's
 * input norms, and one pruning step that turns counts into cumulative masks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/prune.h"
#include "nepenthe/text_train.h"
#include "nepenthe/train.h"
#include "ops/ops.h"

static const char *const method_names[NEP_METHOD_COUNT] = {
    "nepenthe", "imp", "egp", "smallest-weights", "smallest-grads", "ssl", "nepenthe-ssl", "hrank"};

bool nep_method_structural(nep_method m) {
    return m == NEP_METHOD_SMALLEST_WEIGHTS || m == NEP_METHOD_SMALLEST_GRADS;
}
bool nep_method_ssl(nep_method m) { return m == NEP_METHOD_SSL || m == NEP_METHOD_NEPENTHE_SSL; }

const char *nep_method_name(nep_method m) { return method_names[m]; }

int nep_method_from_name(const char *name) {
    for (int m = 0; m < NEP_METHOD_COUNT; m++)
        if (strcmp(method_names[m], name) == 0) return m;
    return -1;
}

nep_prune_cfg nep_prune_cfg_for(nep_method method, nep_criterion criterion, double zeta) {
    nep_prune_cfg c = {.method = method, .criterion = criterion, .zeta = zeta,
                       .entropy_budget = true, .dont_care = true, .neuron_selection = true,
                       .ssl_threshold = nep_method_ssl(method) ? NEP_SSL_THRESHOLD : 0};
    if (method == NEP_METHOD_IMP) c.entropy_budget = false;
    if (method == NEP_METHOD_EGP) {
        c.dont_care = false;
        c.neuron_selection = false;
        c.nondegenerate_mean = true;
    }
    return c;
}

double nep_prune_layer_entropy(const nep_prune_cfg *cfg, const nep_layer_states *l) {
    return nep_layer_entropy(l, cfg->nondegenerate_mean);
}

const nep_param *nep_layer_weight(const nep_graph *g, const nep_layer_states *l) {
    if (l->owner < 0) return NULL;
    const nep_node *o = &g->nodes[l->owner];
    if (!o->n_params) return NULL;
    const nep_param *w = &g->params[o->params[0]];
    return (w->flags & NEP_PARAM_WEIGHT) && w->shape[0] == l->neurons ? w : NULL;
}

/* Rows of Wanda norms a layer's owner needs: its groups (1 for a Linear). */
static int64_t scale_groups(const nep_graph *g, const nep_layer_states *l) {
    const nep_node *o = &g->nodes[l->owner];
    return o->op == NEP_OP_CONV2D && o->attrs.conv.groups > 1 ? o->attrs.conv.groups : 1;
}

typedef struct wanda_ctx {
    const nep_entropy *e;
    double **sq;        /* [layer][fan_in] sums of squares */
    const nep_real *mask; /* a text batch's attention mask [b, T] while it runs, or NULL */
    int64_t T;
} wanda_ctx;

/* A convolution's input column (c', ki, kj) -- the im2col row a weight column multiplies
 * -- summed in squares over the samples and output positions; zero padding adds nothing.
 *   x [b, C, H, W]   sq [groups, C/groups, kh, kw]: group g's columns read channels
 *   g*C/groups + c', so each group has its own row of norms (depthwise: one per channel). */
static void conv_squares(const nep_graph *g, const nep_node *o, const nep_real *x, int64_t b,
                         bool nhwc, double *sq) {
    const nep_shape *in = &g->nodes[o->inputs[0]].shape, *out = &o->shape;
    const int64_t C = in->d[0], H = in->d[1], W = in->d[2], OH = out->d[1], OW = out->d[2];
    const int64_t step = nep_plane_step(nhwc, C);
    const nep_conv2d_attrs *a = &o->attrs.conv;
    const int kh = a->kernel[0], kw = a->kernel[1], sh = a->stride[0], sw = a->stride[1],
              ph = a->pad[0], pw = a->pad[1];
    for (int64_t n = 0; n < b; n++)
        for (int64_t c = 0; c < C; c++) {
            const nep_real *plane = x + nep_plane_start(nhwc, n, c, C, H * W);
            for (int ki = 0; ki < kh; ki++)
                for (int kj = 0; kj < kw; kj++) {
                    double acc = 0;
                    for (int64_t oh = 0; oh < OH; oh++) {
                        int64_t ih = oh * sh - ph + ki;
                        if (ih < 0 || ih >= H) continue;
                        const nep_real *row = plane + ih * W * step;
                        for (int64_t ow = 0; ow < OW; ow++) {
                            int64_t iw = ow * sw - pw + kj;
                            if (iw >= 0 && iw < W) acc += (double)row[iw * step] * row[iw * step];
                        }
                    }
                    sq[(c * kh + ki) * kw + kj] += acc; /* = [c / cpg][c % cpg][ki][kj] */
                }
        }
}

/* Adds the squares of each owner's input columns: [b x positions, fan_in] for a Linear
 * (each token of a sequence is a row), im2col rows for a Conv2d. */
static nep_status add_squares(void *ctx, nep_exec *ex, const nep_real *logits, const int32_t *y,
                              int64_t b, nep_err *err) {
    wanda_ctx *w = ctx;
    const nep_graph *g = nep_exec_graph(ex);
    for (int l = 0; l < w->e->n_layers; l++) {
        if (!w->sq[l]) continue;
        const nep_node *o = &g->nodes[w->e->layers[l].owner];
        const nep_real *a = nep_exec_node_output(ex, o->inputs[0]);
        if (o->op == NEP_OP_CONV2D) {
            conv_squares(g, o, a, b, nep_exec_channels_last(ex), w->sq[l]);
            continue;
        }
        const nep_param *p = &g->params[o->params[0]];
        const int64_t fan_in = p->numel / p->shape[0], per = nep_linear_rows(&g->nodes[o->inputs[0]].shape);
        const nep_real *mask = w->mask && per == w->T ? w->mask : NULL; /* a text's padding is not data */
        for (int64_t i = 0; i < b * per; i++) /* every token */
            for (int64_t j = 0; j < fan_in && (!mask || mask[i] != 0); j++)
                w->sq[l][j] += (double)a[i * fan_in + j] * a[i * fan_in + j];
    }
    return NEP_OK;
}

nep_status nep_wanda_norms(nep_graph *g, const nep_entropy *e, const nep_split *d, int64_t batch,
                           int64_t max_batches, double ***out, const nep_exec_opts *xo, nep_err *err) {
    wanda_ctx w = {e, calloc((size_t)e->n_layers + 1, sizeof(double *)), NULL, d->text ? d->text->T : 0};
    nep_status s = w.sq ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory for Wanda norms");
    for (int l = 0; s == NEP_OK && l < e->n_layers; l++) {
        const nep_param *p = nep_layer_weight(g, &e->layers[l]);
        if (p && !(w.sq[l] = calloc((size_t)(scale_groups(g, &e->layers[l]) * (p->numel / p->shape[0])),
                                    sizeof(double))))
            s = nep_fail(err, NEP_ERR_NOMEM, "out of memory for Wanda norms");
    }
    if (s == NEP_OK) s = nep_split_for_each_batch(d, g, batch, max_batches, NULL, NULL, &w.mask, add_squares, &w, xo, err);
    for (int l = 0; s == NEP_OK && l < e->n_layers; l++) {
        const nep_param *p = nep_layer_weight(g, &e->layers[l]);
        if (p) s = nep_comm_sum(d->comm, w.sq[l], scale_groups(g, &e->layers[l]) * (p->numel / p->shape[0]), NEP_COMM_F64, err);
    }
    for (int l = 0; s == NEP_OK && l < e->n_layers; l++) {
        const nep_param *p = nep_layer_weight(g, &e->layers[l]);
        const int64_t n = scale_groups(g, &e->layers[l]) * (p->numel / p->shape[0]);
        for (int64_t j = 0; w.sq[l] && j < n; j++) w.sq[l][j] = sqrt(w.sq[l][j]);
    }
    if (s != NEP_OK) nep_wanda_free(w.sq, e->n_layers);
    else *out = w.sq;
    return s;
}

void nep_wanda_free(double **norms, int n) {
    if (!norms) return;
    for (int l = 0; l < n; l++) free(norms[l]);
    free(norms);
}

nep_status nep_prune_step(nep_graph *g, const nep_entropy *e, const nep_prune_cfg *cfg,
                          double *const *scales, int64_t *pruned, int64_t *budget, nep_err *err) {
    NEP_TRY(nep_graph_check_resident(g, "pruning", err));
    const int n = e->n_layers;
    nep_budget_layer *bl = calloc((size_t)n + 1, sizeof *bl);
    double **hn = calloc((size_t)n + 1, sizeof *hn);
    uint8_t **masks = calloc((size_t)n + 1, sizeof *masks);
    int64_t *shares = calloc((size_t)n + 1, sizeof *shares);
    nep_status s = NEP_OK;
    if (!bl || !hn || !masks || !shares) {
        s = nep_fail(err, NEP_ERR_NOMEM, "out of memory for the pruning budget");
        goto done;
    }
    for (int l = 0; l < n; l++) {
        const nep_layer_states *ls = &e->layers[l];
        const nep_param *w = nep_layer_weight(g, ls);
        pruned[l] = 0;
        if (!w) continue; /* a rectifier without a weight of its own: nothing to prune */
        if (!(hn[l] = malloc(sizeof(double) * (size_t)ls->neurons))) {
            s = nep_fail(err, NEP_ERR_NOMEM, "out of memory for neuron entropies");
            goto done;
        }
        for (int64_t i = 0; i < ls->neurons; i++)
            hn[l][i] = nep_neuron_entropy(ls->counts + i * ls->states, ls->states);
        bl[l] = (nep_budget_layer){.entropy = nep_prune_layer_entropy(cfg, ls),
                                   .neuron_entropy = hn[l], .neurons = ls->neurons,
                                   .fan_in = w->numel / ls->neurons, .w = g->values + w->offset,
                                   .mask = g->masks + w->offset,
                                   .scale_groups = scale_groups(g, ls)};
        masks[l] = g->masks + w->offset;
    }
    if (!cfg->entropy_budget) {
        int64_t total = nep_prune_global(bl, n, cfg->zeta, (const double *const *)scales, masks, pruned);
        if (total < 0) s = nep_fail(err, NEP_ERR_NOMEM, "out of memory sorting weights");
        if (budget) *budget = total;
    } else {
        nep_budget_opts o = {.zeta = cfg->zeta, .neuron_selection = cfg->neuron_selection};
        nep_budget_shares(bl, n, &o, shares, budget);
        for (int l = 0; l < n && s == NEP_OK; l++) {
            if (!masks[l]) continue;
            pruned[l] = nep_prune_layer(&bl[l], cfg->neuron_selection, scales ? scales[l] : NULL,
                                        shares[l], masks[l]);
            if (pruned[l] < 0) s = nep_fail(err, NEP_ERR_NOMEM, "out of memory sorting weights");
        }
    }
    nep_graph_apply_masks(g);
done:
    for (int l = 0; hn && l < n; l++) free(hn[l]);
    free(bl), free(hn), free(masks), free(shares);
    return s;
}
