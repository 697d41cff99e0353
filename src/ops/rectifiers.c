/* Elementwise rectifiers, as torch.nn.ReLU, LeakyReLU (attrs.slope), ReLU6, GELU (erf
 * form), SiLU: z [...] -> y [...], same shape. ReLU6 has three activation states (OFF,
 * ON, and OFF+ at the cap), the others two (OFF, ON). */
#include "ops/ops.h"

#define RECTIFIER(sym, nm, nstates)                                                    \
    const nep_op_def sym = {.name = nm, .min_inputs = 1, .max_inputs = 1,             \
                            .states = nstates, .infer = nep_infer_same,               \
                            .flops = nep_flops_elementwise}

RECTIFIER(nep_op_relu, "ReLU", 2);
RECTIFIER(nep_op_leaky_relu, "LeakyReLU", 2);
RECTIFIER(nep_op_relu6, "ReLU6", 3);
RECTIFIER(nep_op_gelu, "GELU", 2);
RECTIFIER(nep_op_silu, "SiLU", 2);
