/* HRank (Lin et al. 2020, "HRank: Filter Pruning using High-Rank Feature Map"), the
 * width-pruning baseline of SPEC section 5: a conv filter whose feature maps have a low
 * average rank over calibration images carries little information, so whole filters
 * (rows of the owner's weight) are masked in increasing order of that average rank.
 * It shrinks layers' width and never their depth: at least one filter of every layer
 * stays alive, so no layer is removed whole. */
#ifndef NEPENTHE_HRANK_H
#define NEPENTHE_HRANK_H

#include "nepenthe/entropy.h"

typedef struct nep_split nep_split; /* nepenthe/train.h */

/* ranks[k] = the rank of matrix k, for k < n, each h x w with entry (i, j) at
 *   maps[k * matrix_step + (i * w + j) * elem_step]
 * (contiguous matrices: matrix_step h * w, elem_step 1; the channels of one sample of an
 * NHWC image tensor: matrix_step 1, elem_step C). The rank is the number of singular
 * values (LAPACK's ?gesdd, singular values only, in nep_real's precision) above
 *   tol = S.max * max(h, w) * eps,   eps = FLT_EPSILON (DBL_EPSILON with NEP_DOUBLE),
 * the default of numpy.linalg.matrix_rank and torch.linalg.matrix_rank, computed as they
 * do in the element type; an all-zero matrix (tol = 0) has rank 0. One workspace per
 * thread and call. NEP_ERR_ARG for negative sizes or steps or a matrix side past int's
 * range, NEP_ERR_NUMERIC (naming the matrix) for a non-finite entry or an SVD that did
 * not converge, NEP_ERR_NOMEM. */
nep_status nep_matrix_ranks(const nep_real *maps, int64_t n, int64_t h, int64_t w, int64_t matrix_step,
                            int64_t elem_step, int32_t *ranks, nep_err *err);

/* HRank's scores over d (evaluation mode, in batches of `batch`, at most max_batches of
 * them, 0 = all): for every layer l of e that is still a rectifier of g, whose owner
 * (nep_layer_weight) is a Conv2d and whose maps are images [C, H, W], scores[l][c] is the
 * mean over the images of the rank of channel c's H x W map at the rectifier's output
 * (HRank hooks the ReLU outputs): the probed pre-activation passed through the layer's
 * own rectifier (its op's value function: ReLU, ReLU6's clamp, LeakyReLU's slope, ...).
 * Layers on vectors or tokens have no feature maps, and a layer owned by a Linear or by
 * nothing no filters: their scores[l] are NULL. *scores is malloc'd [e->n_layers], each
 * non-NULL entry [neurons]; free with nep_hrank_free. Over ranks (d->comm), each runs its
 * batches and the rank sums and image counts are summed, so every rank gets the whole
 * split's scores. A graph without such a layer gets all NULL, without a pass over d.
 * NEP_ERR_ARG for a split without images to average over. */
nep_status nep_hrank_scores(nep_graph *g, const nep_entropy *e, const nep_split *d, int64_t batch,
                            int64_t max_batches, double ***scores, const nep_exec_opts *xo, nep_err *err);
void nep_hrank_free(double **scores, int n);

/* One HRank step on g: in every layer l with scores[l] (NULL: skipped, pruned[l] = 0),
 * among the alive filters (rows of the owner's weight that still hold a kept non-zero
 * weight) masks the floor(rate * alive) with the lowest scores (ties to the lower index)
 * whole: their mask entries and values become 0. The owner's bias, if any, stays, so a
 * masked filter's channel is a constant, which collapse deletes as any constant channel.
 * rate in [0, 1) leaves at least one filter alive in every layer: width shrinks, depth
 * never. Masks are cumulative: a later call only counts and ranks the filters still
 * alive. pruned[l] = filters masked now in layer l. NEP_ERR_ARG for rate outside [0, 1)
 * or a NaN score; NEP_ERR_UNSUPPORTED for a graph with mapped weights. */
nep_status nep_hrank_prune(nep_graph *g, const nep_entropy *e, double *const *scores, double rate,
                           int64_t *pruned, nep_err *err);

#endif
