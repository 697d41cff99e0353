/* Calls through a nep_comm (nepenthe/comm.h): no-ops for one process. */
#include "nepenthe/comm.h"

nep_status nep_comm_sum(const nep_comm *c, void *data, int64_t n, nep_comm_dtype type, nep_err *err) {
    return nep_comm_many(c) && n > 0 ? c->sum(c->ctx, data, n, type, err) : NEP_OK;
}

nep_status nep_comm_bcast(const nep_comm *c, void *data, int64_t n, int root, nep_err *err) {
    return nep_comm_many(c) && n > 0 ? c->bcast(c->ctx, data, n, root, err) : NEP_OK;
}

nep_status nep_comm_agree(const nep_comm *c, const void *data, int64_t n, const char *what, nep_err *err) {
    if (!nep_comm_many(c)) return NEP_OK;
    uint64_t h = 14695981039346656037ull, mine;
    for (int64_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)data)[i]) * 1099511628211ull;
    mine = h;
    NEP_TRY(nep_comm_bcast(c, &h, sizeof h, 0, err));
    int64_t differ = h != mine;
    NEP_TRY(nep_comm_sum(c, &differ, 1, NEP_COMM_I64, err));
    return differ ? nep_fail(err, NEP_ERR_ARG, "%s: %lld of %d ranks differ from rank 0's", what, (long long)differ,
                             c->size)
                  : NEP_OK;
}

void nep_comm_share(const nep_comm *c, int64_t b, int64_t *lo, int64_t *hi) {
    const int64_t n = nep_comm_many(c) ? c->size : 1, r = nep_comm_rank(c);
    *lo = b * r / n;
    *hi = b * (r + 1) / n;
}
