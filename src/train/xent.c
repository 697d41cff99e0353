/* Softmax cross-entropy, fused forward and backward: the gradient of the mean loss
 * w.r.t. the logits is (softmax - onehot) / B. Rows are computed in double with the
 * max subtracted, so large logits neither overflow nor lose the loss. */
#include <math.h>

#include "nepenthe/train.h"

double nep_xent(const nep_real *logits, const int32_t *target, int64_t B, int64_t K,
                nep_real *dlogits, int64_t *correct) {
    double total = 0;
    for (int64_t b = 0; b < B; b++) {
        const nep_real *z = logits + b * K;
        int64_t arg = 0;
        for (int64_t k = 1; k < K; k++)
            if (z[k] > z[arg]) arg = k;
        const double mx = z[arg];
        double sum = 0;
        for (int64_t k = 0; k < K; k++) sum += exp((double)z[k] - mx);
        const double lse = mx + log(sum);
        total += lse - z[target[b]];
        if (correct) *correct += arg == target[b];
        if (dlogits) {
            nep_real *d = dlogits + b * K;
            for (int64_t k = 0; k < K; k++)
                d[k] = (nep_real)((exp((double)z[k] - lse) - (k == target[b])) / (double)B);
        }
    }
    return total / (double)B;
}
