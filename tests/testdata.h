/* Real images for the tests that run whole models (not in testutil.c, which the IR-only
 * tests link too: reading data is above the IR). */
#ifndef NEPENTHE_TESTDATA_H
#define NEPENTHE_TESTDATA_H

#include <stdio.h>

#include "nepenthe/data.h"

/* Fashion-MNIST's test split (Debian's files) into *d; -1 after saying why (a cmocka
 * group setup returns it). */
static inline int nep_test_load_fashion_test(nep_dataset *d) {
    nep_err err;
    if (nep_fashion_mnist_load(NULL, false, d, &err) == NEP_OK) return 0;
    fprintf(stderr, "%s\n", err.msg);
    return -1;
}

/* n images of *all from `start`, as a view (no copy; valid while *all is). */
static inline nep_dataset nep_test_view(const nep_dataset *all, int64_t start, int64_t n) {
    nep_dataset v = *all;
    v.images += start * all->c * all->h * all->w;
    v.labels += start;
    v.n = n;
    return v;
}

#endif
