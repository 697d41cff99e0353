/* SGD (momentum, weight decay, Nesterov) and AdamW with PyTorch's update rules,
 * fused with mask application: one pass over each parameter.
 *   SGD:   d = g + wd p;  m = mu m + d;  p -= lr (nesterov ? d + mu m : m)
 *   AdamW: p *= 1 - lr wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *          p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 * wd is per parameter: 0 for those nep_optim_decays exempts. */
#include <tgmath.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/train.h"

/* Below this many elements a parameter is updated on one thread. */
#define NEP_PAR_MIN_OPTIM 65536

nep_optim_cfg nep_optim_defaults(nep_optim_kind kind) {
    nep_optim_cfg c = {.kind = kind, .gamma = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                       .warmup_start_factor = 0.01};
    if (kind == NEP_OPTIM_SGD) {
        c.lr = 0.1;
        c.momentum = 0.9;
    } else {
        c.lr = 1e-3;
        c.weight_decay = 0.01;
    }
    return c;
}

static bool ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* timm's param_groups_weight_decay: ndim <= 1 or ".bias", plus the models'
 * no_weight_decay() names (ViT's class token and position embedding, Swin's relative
 * position bias table), here under torchvision's names. */
bool nep_optim_decays(const nep_optim_cfg *cfg, const nep_param *p) {
    static const char *const exempt[] = {".bias", "class_token", "pos_embedding",
                                         "relative_position_bias_table"};
    if (!cfg->no_decay_1d) return true;
    if (p->ndim <= 1) return false;
    for (size_t i = 0; i < sizeof exempt / sizeof *exempt; i++)
        if (ends_with(p->name, exempt[i])) return false;
    return true;
}

nep_status nep_optim_init(nep_optim *o, const nep_optim_cfg *cfg, const nep_graph *g,
                          nep_err *err) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = g->n_values;
    size_t bytes = sizeof(nep_real) * (size_t)(o->n ? o->n : 1);
    o->m = calloc(1, bytes);
    o->v = cfg->kind == NEP_OPTIM_ADAMW ? calloc(1, bytes) : NULL;
    if (!o->m || (cfg->kind == NEP_OPTIM_ADAMW && !o->v)) {
        nep_optim_free(o);
        return nep_fail(err, NEP_ERR_NOMEM, "out of memory for optimizer state");
    }
    return NEP_OK;
}

void nep_optim_free(nep_optim *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

/* wd: this parameter's weight decay (0 where nep_optim_decays exempts it: PyTorch's
 * parameter group with weight_decay 0, the same arithmetic). */
static void sgd_update(const nep_optim_cfg *c, nep_real lr, double decay, int64_t n, nep_real *restrict p,
                       const nep_real *restrict gr, nep_real *restrict m, const uint8_t *restrict keep) {
    const nep_real wd = (nep_real)decay, mu = (nep_real)c->momentum;
    const bool nesterov = c->nesterov;
#pragma omp parallel for simd if (parallel: n > NEP_PAR_MIN_OPTIM)
    for (int64_t i = 0; i < n; i++) {
        nep_real d = gr[i] + wd * p[i];
        nep_real mi = mu * m[i] + d;
        nep_real step = nesterov ? d + mu * mi : mi;
        p[i] = keep[i] ? p[i] - lr * step : 0;
        m[i] = keep[i] ? mi : 0;
    }
}

static void adamw_update(const nep_optim_cfg *c, nep_real lr, double wd, int64_t t, int64_t n,
                         nep_real *restrict p, const nep_real *restrict gr, nep_real *restrict m,
                         nep_real *restrict v, const uint8_t *restrict keep) {
    const nep_real b1 = (nep_real)c->beta1, b2 = (nep_real)c->beta2, eps = (nep_real)c->eps;
    const nep_real decay = (nep_real)(1 - (double)lr * wd);
    const nep_real step_size = (nep_real)((double)lr / (1 - pow(c->beta1, (double)t)));
    const nep_real bc2_sqrt = (nep_real)sqrt(1 - pow(c->beta2, (double)t));
#pragma omp parallel for simd if (parallel: n > NEP_PAR_MIN_OPTIM)
    for (int64_t i = 0; i < n; i++) {
        nep_real g = gr[i];
        nep_real mi = b1 * m[i] + (1 - b1) * g;
        nep_real vi = b2 * v[i] + (1 - b2) * g * g;
        nep_real pi = p[i] * decay - step_size * mi / (sqrt(vi) / bc2_sqrt + eps);
        p[i] = keep[i] ? pi : 0;
        m[i] = keep[i] ? mi : 0;
        v[i] = keep[i] ? vi : 0;
    }
}

void nep_optim_begin(nep_optim *o) { o->step++; }

void nep_optim_update(nep_optim *o, nep_graph *g, int param, double lr) {
    const nep_param *p = &g->params[param];
    if (!(p->flags & NEP_PARAM_TRAINABLE) || g->nodes[p->node].dead) return;
    const int64_t off = p->offset;
    const double wd = nep_optim_decays(&o->cfg, p) ? o->cfg.weight_decay : 0;
    if (o->cfg.kind == NEP_OPTIM_SGD)
        sgd_update(&o->cfg, (nep_real)lr, wd, p->numel, g->values + off, g->grads + off, o->m + off,
                   g->masks + off);
    else
        adamw_update(&o->cfg, (nep_real)lr, wd, o->step, p->numel, g->values + off, g->grads + off,
                     o->m + off, o->v + off, g->masks + off);
}

void nep_optim_step(nep_optim *o, nep_graph *g, double lr) {
    nep_optim_begin(o);
    for (int i = 0; i < g->n_params; i++) nep_optim_update(o, g, i, lr);
}
