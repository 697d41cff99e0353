/* The floating-point type of tensors. float normally; double when the library is
 * built with -DNEP_DOUBLE, which the finite-difference gradient checks use. */
#ifndef NEPENTHE_REAL_H
#define NEPENTHE_REAL_H

#ifdef NEP_DOUBLE
typedef double nep_real;
#define NEP_REAL_NAME "f64"
#else
typedef float nep_real;
#define NEP_REAL_NAME "f32"
#endif

#endif
