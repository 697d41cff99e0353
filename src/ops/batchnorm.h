/* BatchNorm2d's numeric helpers, shared by the op (src/ops/batchnorm.c, its kernels in
 * src/backend/cpu/batchnorm.c) and by every
 * rewrite that folds a BatchNorm into a neighbouring layer: a fold must use exactly
 * these, so that the folded model computes what the unfolded one did. */
#ifndef NEPENTHE_OPS_BATCHNORM_H
#define NEPENTHE_OPS_BATCHNORM_H

#include <math.h>

#include "nepenthe/graph.h"

/* The order of a BatchNorm node's parameters. */
enum { BN_WEIGHT, BN_BIAS, BN_RMEAN, BN_RVAR, BN_NPARAMS };

#define NEP_BN_DEFAULT_EPS 1e-5
#define NEP_BN_DEFAULT_MOMENTUM 0.1

/* The node's epsilon and momentum: attrs.batchnorm.eps / .momentum, or PyTorch's
 * defaults (1e-5, 0.1) where they are 0. */
static inline double nep_bn_eps(const nep_batchnorm_attrs *a) {
    return a->eps > 0 ? a->eps : NEP_BN_DEFAULT_EPS;
}
static inline double nep_bn_momentum(const nep_batchnorm_attrs *a) {
    return a->momentum > 0 ? a->momentum : NEP_BN_DEFAULT_MOMENTUM;
}

/* 1 / sqrt(var + eps) in double, as PyTorch computes its invstd. */
static inline double nep_bn_inv_std(double var, double eps) {
    return 1.0 / sqrt(var + eps);
}

/* Evaluation-mode BatchNorm of one channel as y = x * scale + shift:
 *   scale = weight / sqrt(running_var + eps),  shift = bias - running_mean * scale.
 * The op's evaluation forward uses exactly this, so a fold that multiplies a conv's
 * weights by `scale` and sets its bias to `shift` (+ conv bias * scale) matches it. */
static inline void nep_bn_eval_affine(double weight, double bias, double running_mean,
                                      double running_var, double eps, double *scale,
                                      double *shift) {
    *scale = weight * nep_bn_inv_std(running_var, eps);
    *shift = bias - running_mean * *scale;
}

#endif
