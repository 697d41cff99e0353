#include "nepenthe/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    const uint64_t z = nep_rng_stream(*x, 0);
    *x += 0x9e3779b97f4a7c15ULL;
    return z;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void nep_rng_seed(nep_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

uint64_t nep_rng_u64(nep_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double nep_rng_uniform(nep_rng *r) { return (double)(nep_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t nep_rng_below(nep_rng *r, uint64_t n) {
    /* Rejection keeps the result exactly uniform. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = nep_rng_u64(r);
    while (x >= limit);
    return x % n;
}

double nep_rng_normal(nep_rng *r) {
    double u1 = 1.0 - nep_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = nep_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void nep_rng_shuffle_u32(nep_rng *r, uint32_t *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)nep_rng_below(r, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

nep_rng nep_rng_split(nep_rng *r) {
    nep_rng child;
    nep_rng_seed(&child, nep_rng_u64(r));
    return child;
}
