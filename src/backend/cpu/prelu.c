/* PReLU with one learned slope per channel, as torch.nn.PReLU(num_parameters=C).
 *   z [B, C, ...]   a [C] ("weight")   y [B, C, ...]
 * y = z > 0 ? z : a_c z;  dz (+)= z > 0 ? dy : a_c dy;  da_c = sum_{z <= 0} dy z */
#include "backend/cpu/kernels.h"

static void prelu_forward(const nep_call *c) {
    const nep_chan_dims d = nep_chan_dims_of(c);
    const nep_real *z = c->x[0], *a = c->w[0];
    nep_real *y = c->y;
    const int64_t rows = c->batch * d.C;
#pragma omp parallel for if (rows * d.inner > NEP_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const nep_real s = a[r % d.C];
        const int64_t o = nep_chan_start(&d, r / d.C, r % d.C);
        for (int64_t k = o; k < o + d.inner * d.step; k += d.step) y[k] = z[k] > 0 ? z[k] : s * z[k];
    }
}

static void prelu_backward(const nep_call *c) {
    const nep_chan_dims d = nep_chan_dims_of(c);
    const nep_real *z = c->x[0], *a = c->w[0], *dy = c->dy;
    nep_real *da = c->dw[0];
    const bool add = c->dx_add[0];
    nep_real *dz = c->dx[0];
    /* Per-channel slope gradients are summed in a fixed order so runs reproduce. */
    for (int64_t ch = 0; ch < d.C; ch++) {
        nep_real acc = 0;
        for (int64_t b = 0; b < c->batch; b++) {
            const int64_t o = nep_chan_start(&d, b, ch);
            for (int64_t k = o; k < o + d.inner * d.step; k += d.step) {
                const nep_real g = z[k] > 0 ? dy[k] : a[ch] * dy[k];
                if (dz) dz[k] = add ? dz[k] + g : g;
                if (z[k] <= 0) acc += dy[k] * z[k];
            }
        }
        da[ch] = c->accumulate ? da[ch] + acc : acc;
    }
}

const nep_kernel nep_cpu_prelu = {.forward = prelu_forward, .backward = prelu_backward};
