#include <stdlib.h>

#include "backend/backend.h"

void *nep_scratch_get(nep_scratch *s, size_t bytes) {
    if (bytes <= s->bytes) return s->p;
    const size_t n = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n);
    if (!p) return NULL;
    free(s->p);
    s->p = p;
    s->bytes = n;
    return p;
}

void nep_scratch_free(nep_scratch *s) {
    free(s->p);
    *s = (nep_scratch){0};
}
