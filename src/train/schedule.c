/* Learning-rate schedules (nep_lr_at, include/nepenthe/train.h), stepped once per epoch
 * as PyTorch's schedulers and torchvision's reference recipes step them. Each is the
 * closed form of what the PyTorch scheduler computes recursively, so the rate of any
 * epoch follows from the epoch count alone: --resume needs nothing else, and nothing is
 * accumulated that a resumed run could get wrong. */
#include <math.h>

#include "nepenthe/train.h"

/* LinearLR(start_factor = f, end_factor = 1, total_iters = W) at epoch t < W. */
static double warmup(const nep_optim_cfg *c, int64_t t) {
    const double f = c->warmup_start_factor;
    return c->lr * (f + (1 - f) * (double)t / (double)c->warmup_epochs);
}

/* MultiStepLR at epoch t of the main schedule: one factor gamma per milestone <= t. */
static double multistep(const nep_optim_cfg *c, int64_t t) {
    double lr = c->lr;
    for (int i = 0; i < c->n_milestones; i++)
        if (t >= c->milestones[i]) lr *= c->gamma;
    return lr;
}

/* CosineAnnealingLR at epoch t of the main schedule. Past t_max it rises again, as
 * PyTorch's does (a run never gets there: t_max is its epochs after the warm-up). */
static double cosine(const nep_optim_cfg *c, int64_t t) {
    const double pi = 3.14159265358979323846;
    return c->min_lr + (c->lr - c->min_lr) * (1 + cos(pi * (double)t / (double)c->t_max)) / 2;
}

double nep_lr_at(const nep_optim_cfg *cfg, int64_t t) {
    /* SequentialLR(milestones = [W]) hands over at epoch W with main.step(0): the main
     * schedule restarts its own count there. */
    if (t < cfg->warmup_epochs) return warmup(cfg, t);
    t -= cfg->warmup_epochs;
    return cfg->schedule == NEP_SCHEDULE_COSINE && cfg->t_max > 0 ? cosine(cfg, t) : multistep(cfg, t);
}
