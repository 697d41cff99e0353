/* Softmax cross-entropy, fused forward and backward: the gradient of the mean loss
 * w.r.t. the logits is (softmax - target distribution) / B. Rows are computed in double
 * with the max subtracted, so large logits neither overflow nor lose the loss. */
#include <math.h>

#include "nepenthe/train.h"

double nep_xent_smoothed(const nep_real *logits, const int32_t *target, int64_t B, int64_t K,
                         double eps, nep_real *dlogits, int64_t *correct) {
    /* Each class gets eps / K of the mass and the target 1 - eps on top, as
     * F.cross_entropy's label_smoothing; eps = 0 takes the plain path, so that runs
     * without smoothing compute exactly what they always did. */
    const bool smooth = eps > 0;
    const double on = 1 - eps, off = eps / (double)K;
    double total = 0;
    for (int64_t b = 0; b < B; b++) {
        const nep_real *z = logits + b * K;
        int64_t arg = 0;
        for (int64_t k = 1; k < K; k++)
            if (z[k] > z[arg]) arg = k;
        const double mx = z[arg];
        double sum = 0, zsum = 0;
        for (int64_t k = 0; k < K; k++) sum += exp((double)z[k] - mx);
        const double lse = mx + log(sum);
        if (smooth) {
            for (int64_t k = 0; k < K; k++) zsum += (double)z[k];
            /* sum_k (lse - z_k) = K lse - sum_k z_k */
            total += on * (lse - z[target[b]]) + off * ((double)K * lse - zsum);
        } else {
            total += lse - z[target[b]];
        }
        if (correct) *correct += arg == target[b];
        if (dlogits) {
            nep_real *d = dlogits + b * K;
            for (int64_t k = 0; k < K; k++) {
                const double want = smooth ? on * (k == target[b]) + off : (k == target[b]);
                d[k] = (nep_real)((exp((double)z[k] - lse) - want) / (double)B);
            }
        }
    }
    return total / (double)B;
}

double nep_xent(const nep_real *logits, const int32_t *target, int64_t B, int64_t K,
                nep_real *dlogits, int64_t *correct) {
    return nep_xent_smoothed(logits, target, B, K, 0, dlogits, correct);
}
