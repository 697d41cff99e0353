/* GEMM and GEMV on nep_real through OpenBLAS (the OpenMP build; see DESIGN.md). */
#ifndef NEPENTHE_BLAS_H
#define NEPENTHE_BLAS_H

#include <cblas.h>

#include "nepenthe/real.h"

#ifdef NEP_DOUBLE
#define nep_gemm cblas_dgemm
#define nep_gemv cblas_dgemv
#else
#define nep_gemm cblas_sgemm
#define nep_gemv cblas_sgemv
#endif

#endif
