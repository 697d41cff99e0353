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

/* A counter-based stream for large masks: draw i of the stream keyed by key (one
 * nep_rng_u64 of the caller's generator) is splitmix64's output function of
 * key + (i + 1) * golden gamma, i.e. the i-th output of a splitmix64 generator seeded
 * with key. Each draw depends on its index alone, so a mask is filled in any order, by
 * any number of threads, in vector lanes, and is the same. */
static inline uint64_t nep_rng_stream(uint64_t key, uint64_t i) {
    uint64_t z = key + (i + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
/* Whether a draw, read as a uniform double in [0, 1) as nep_rng_uniform reads it, is
 * >= p: (draw >> 11) * 2^-53 >= p exactly when (draw >> 11) >= ceil(p * 2^53), an
 * integer comparison (p * 2^53 is exact). keep_from = nep_rng_keep_from(p). */
static inline uint64_t nep_rng_keep_from(double p) { return (uint64_t)__builtin_ceil(p * 0x1.0p53); }
static inline int nep_rng_stream_keeps(uint64_t key, uint64_t i, uint64_t keep_from) {
    return (nep_rng_stream(key, i) >> 11) >= keep_from;
}

#endif
