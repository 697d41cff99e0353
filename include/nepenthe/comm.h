/* Processes that train one model together (data parallelism, issue 17). Each of `size`
 * ranks holds the same model and optimizer and runs its share of every batch; the library
 * sums what must be global through these two calls. Their implementation is the
 * caller's: the MPI-enabled CLI (build/nepenthe-mpi, tools/mpi/) provides one over
 * MPI_COMM_WORLD, so the library itself links no MPI. A NULL comm, or one of size 1, is
 * one process: every call below is then a no-op. */
#ifndef NEPENTHE_COMM_H
#define NEPENTHE_COMM_H

#include <stdbool.h>
#include <stdint.h>

#include "nepenthe/status.h"

typedef enum nep_comm_dtype {
    NEP_COMM_REAL,  /* nep_real */
    NEP_COMM_F64,
    NEP_COMM_I64,   /* activation-state counts: their sum over ranks is exact */
} nep_comm_dtype;

typedef struct nep_comm {
    int rank, size;
    void *ctx;
    /* data[0..n) replaced on every rank by its sum over the ranks (the same bits on
     * every rank); a rank that cannot take part is an error on all of them. */
    nep_status (*sum)(void *ctx, void *data, int64_t n, nep_comm_dtype type, nep_err *err);
    /* root's bytes[0..n) copied to every rank. */
    nep_status (*bcast)(void *ctx, void *data, int64_t n, int root, nep_err *err);
} nep_comm;

static inline bool nep_comm_many(const nep_comm *c) { return c && c->size > 1; }
static inline int nep_comm_rank(const nep_comm *c) { return c ? c->rank : 0; }

nep_status nep_comm_sum(const nep_comm *c, void *data, int64_t n, nep_comm_dtype type, nep_err *err);
nep_status nep_comm_bcast(const nep_comm *c, void *data, int64_t n, int root, nep_err *err);

/* NEP_ERR_ARG on every rank when the n bytes at data differ on any rank from rank 0's
 * (compared by a 64-bit FNV-1a hash), naming `what` and how many ranks differ: ranks
 * started with other options, data or weights, or whose sums came out differently. */
nep_status nep_comm_agree(const nep_comm *c, const void *data, int64_t n, const char *what, nep_err *err);

/* Rows [*lo, *hi) of a batch of b rows that rank takes: contiguous shares whose sizes
 * differ by at most one, in rank order (so that the ranks' rows, concatenated, are the
 * batch). */
void nep_comm_share(const nep_comm *c, int64_t b, int64_t *lo, int64_t *hi);

#endif
