/* test_sharpness.c in float64 (NEP_DOUBLE): the method to 1e-3 of the dense Hessian. */
#include "test_sharpness.c"
