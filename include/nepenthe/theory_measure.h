/* The theory of SPEC section 7 checked on a trained model: for a range of magnitude
 * thresholds t, in units of each layer's weight standard deviation (the model
 * standardizes W), prune every rectifier's owned weight at |w| < t sigma_l on a copy,
 * count activation states on data, and record per layer the fraction pruned and the
 * mean neuron entropy H_l; beside them the model's C(t) and H(t). Also the histograms
 * behind the model's Gaussian assumption (paper Appendix C.4): each layer's weights
 * and pre-activations, standardized. */
#ifndef NEPENTHE_THEORY_MEASURE_H
#define NEPENTHE_THEORY_MEASURE_H

#include "nepenthe/data.h"
#include "nepenthe/entropy.h"

#define NEP_HIST_BINS 81   /* over [-4, 4] standard deviations */

typedef struct nep_layer_curve {
    int node;               /* the rectifier */
    int owner;              /* the Linear/Conv2d whose weight it owns */
    double sigma;           /* the owned weight's standard deviation (mask-kept values) */
    double *pruned, *entropy;          /* [n_t] measured */
    double weight_hist[NEP_HIST_BINS]; /* density of w / sigma (unpruned model) */
    double z_hist[NEP_HIST_BINS];      /* density of (z - mean) / std of the pre-activation */
    double z_mean, z_std;
    /* Total variation distance of each histogram from N(0, 1) over [-4, 4]: 0 when the
     * Gaussian assumption holds exactly, 1 at most. */
    double weight_tv, z_tv;
} nep_layer_curve;

typedef struct nep_theory_curves {
    int n_layers, n_t;
    double *t;              /* [n_t] */
    nep_layer_curve *layers;
} nep_theory_curves;

/* g is not modified. States are counted on the first max_batches batches of d (0: all). */
nep_status nep_theory_measure(nep_graph *g, const nep_dataset *d, const nep_normalize *norm,
                              const double *t, int n_t, int64_t batch, int64_t max_batches,
                              nep_theory_curves *out, const nep_exec_opts *xo, nep_err *err);
void nep_theory_curves_free(nep_theory_curves *c);

#endif
