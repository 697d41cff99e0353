/* Sharpness (paper Table 3, after Lee et al. 2025): the largest eigenvalue of the Hessian
 * of the training loss, found by power iteration on Hessian-vector products.
 *
 * The loss is the mean cross-entropy over a fixed set of rows: the first `batches`
 * batches of a split, in order, with the model in evaluation mode (BatchNorm's running
 * statistics, no dropout), so that it is one deterministic function of the weights.
 * The variables are the trainable parameters' entries that a mask keeps (a pruned
 * model's Hessian is over the weights it still has).
 *
 * A Hessian-vector product is a central difference of gradients,
 *   H v ~ (grad L(w + eps v) - grad L(w - eps v)) / (2 eps),   ||v|| = 1,
 *   eps = step * max(||w||, 1),
 * whose error is O(eps^2) from the third derivative plus the gradients' rounding over
 * 2 eps. test_sharpness.c measures it against PyTorch's exact product (double backward)
 * on a small network: at the default step 1e-3 in float32 the relative error of H v was
 * 7.7e-5 there, and the top eigenvalue 1.7e-6 off the dense Hessian's (NEP_TEST_VERBOSE=1
 * prints both). A ReLU network's loss is twice
 * differentiable in the weights only almost everywhere: a difference that straddles a
 * kink adds to that error.
 *
 * Power iteration converges to the eigenvalue of largest magnitude; for a trained
 * network that is the largest positive one, which is what sharpness means. The result
 * is the Rayleigh quotient v.Hv of the last iterate, with the residual ||Hv - lambda v||
 * saying how far v is from an eigenvector. */
#ifndef NEPENTHE_SHARPNESS_H
#define NEPENTHE_SHARPNESS_H

#include "nepenthe/rng.h"
#include "nepenthe/train.h"

typedef struct nep_power_opts {
    int max_iter;       /* products at most (default 20) */
    double tol;         /* stop once |lambda_k - lambda_{k-1}| <= tol |lambda_k| (default 1e-3) */
    nep_progress_fn progress; /* after each product: (done, max_iter, lambda, seconds); may be NULL */
    void *progress_ctx;
} nep_power_opts;

typedef struct nep_power_result {
    double lambda;      /* the Rayleigh quotient of the last iterate */
    double residual;    /* ||H v - lambda v|| / |lambda| of it */
    int iters;          /* products computed */
    bool converged;     /* the tolerance was met */
} nep_power_result;

/* hv = H v for the n-vector v. */
typedef nep_status (*nep_hvp_fn)(void *ctx, const double *v, double *hv, nep_err *err);

/* Power iteration from a random unit vector drawn from rng (normal entries). */
nep_status nep_power_iteration(nep_hvp_fn hvp, void *ctx, int64_t n, nep_rng *rng, const nep_power_opts *o,
                               nep_power_result *out, nep_err *err);

typedef struct nep_sharpness_opts {
    int64_t batch;      /* rows per batch (default 256) */
    int64_t batches;    /* the first this many batches of the split (0: all of it) */
    double step;        /* relative finite-difference step (default 1e-3) */
    nep_power_opts power;
    uint64_t seed;      /* of the starting vector */
} nep_sharpness_opts;
/* batch 256, 4 batches, step 1e-3, 20 iterations, tol 1e-3, seed 0. */
nep_sharpness_opts nep_sharpness_defaults(void);

/* The loss over s as above, its variables, and products with its Hessian. */
typedef struct nep_hessian {
    nep_graph *g;
    const nep_split *split;
    nep_sharpness_opts opts;
    const nep_exec_opts *exec;
    int64_t n;          /* variables */
    int64_t *index;     /* [n]: their offsets in g->values */
    double *w0, *gp;    /* [n]: the weights, a gradient */
    double eps;         /* the step in weight units */
    int64_t grads;      /* gradients computed */
} nep_hessian;
nep_status nep_hessian_init(nep_hessian *h, nep_graph *g, const nep_split *s, const nep_sharpness_opts *o,
                            const nep_exec_opts *xo, nep_err *err);
void nep_hessian_free(nep_hessian *h);
/* grad[n] = the loss's gradient at the current weights of g; *loss its value (may be NULL). */
nep_status nep_hessian_grad(nep_hessian *h, double *grad, double *loss, nep_err *err);
/* nep_hvp_fn with ctx a nep_hessian: the central difference above (g's weights restored). */
nep_status nep_hessian_vector(void *h, const double *v, double *hv, nep_err *err);

/* nep_hessian over s and power iteration: the sharpness of g. */
nep_status nep_sharpness(nep_graph *g, const nep_split *s, const nep_sharpness_opts *o, nep_power_result *out,
                         const nep_exec_opts *xo, nep_err *err);

#endif
