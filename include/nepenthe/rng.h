/* Seeded pseudo-random generator (xoshiro256**, seeded through splitmix64).
 * There is no global generator: every random choice takes a nep_rng* so that a
 * seed reproduces a run exactly. The state is four words and can be saved. */
#ifndef NEPENTHE_RNG_H
#define NEPENTHE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct nep_rng {
    uint64_t s[4];
} nep_rng;

void nep_rng_seed(nep_rng *r, uint64_t seed);
uint64_t nep_rng_u64(nep_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double nep_rng_uniform(nep_rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t nep_rng_below(nep_rng *r, uint64_t n);
/* Standard normal (Box-Muller, one value per call). */
double nep_rng_normal(nep_rng *r);
/* Fisher-Yates shuffle of a[0..n). */
void nep_rng_shuffle_u32(nep_rng *r, uint32_t *a, size_t n);
/* An independent generator derived from r (advances r once). */
nep_rng nep_rng_split(nep_rng *r);

#endif
