/* GELU (erf and tanh forms), SiLU and Tanh through oneDNN's eltwise primitives, whose JIT code computes
 * erf, tanh, exp and the sigmoid in vector registers on every ISA (the scalar libm calls of
 * rectifiers.c's loops do not vectorize, and made GELU about a quarter of a small ViT's
 * training step). Elementwise, so a plan sees a node's batch as one 1-D tensor of n
 * floats; it holds the forward and backward primitives for one n and is kept in the
 * kernel's cache (nep_call.cache), which holds two: the full batch and the last, smaller
 * one of an epoch.
 *
 * Each call returns false where it ran nothing, and the caller then runs its own loop:
 * the float64 build (oneDNN has no f64 eltwise), no cache, or a plan oneDNN could not
 * build (or no memory for one). Running a plan cannot fail.
 */
#ifndef NEPENTHE_DNNL_ELTWISE_H
#define NEPENTHE_DNNL_ELTWISE_H

#include <stdbool.h>
#include <stdint.h>

#include "nepenthe/real.h"

typedef enum { NEP_ELTWISE_GELU, NEP_ELTWISE_GELU_TANH, NEP_ELTWISE_SILU, NEP_ELTWISE_TANH } nep_eltwise_alg;

/* y = f(z) over n elements; cache is the kernel's nep_call.cache. */
bool nep_dnnl_eltwise_forward(void **cache, nep_eltwise_alg alg, int64_t n, const nep_real *z,
                              nep_real *y);
/* dz = dy * f'(z) (written, never added) over n elements; z is the pre-activation. */
bool nep_dnnl_eltwise_backward(void **cache, nep_eltwise_alg alg, int64_t n, const nep_real *z,
                               const nep_real *dy, nep_real *dz);
/* Frees what the calls above left in *cache (a nep_kernel's free_cache). */
void nep_dnnl_eltwise_cache_free(void *cache);

#endif
