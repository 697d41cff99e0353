/* Continuation log-likelihoods and multiple-choice predictions with a causal LM
 * (nepenthe/lm_score.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/lm_score.h"

/* One request, encoded: the last T + 1 tokens of context + continuation (the model
 * reads all but the last when there are T + 1), the continuation's count at their end,
 * and the forward row it is read from. */
typedef struct encoded {
    int32_t *ids;
    int64_t len, cont;
    int64_t row;
} encoded;

/* Python's str.isspace over ASCII: what the harness's rstrip takes off a context. */
static bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static nep_status encode_text(const nep_tokenizer *tok, const char *s, size_t n, nep_encoding *e, nep_err *err) {
    const nep_encode_opts plain = {0}; /* no special tokens, no truncation */
    return nep_tokenizer_encode(tok, s, n, NULL, 0, &plain, e, err);
}

/* The harness's _encode_pair, then the last T + 1 tokens. */
static nep_status encode_request(const nep_tokenizer *tok, int32_t eos, const nep_lm_request *r, int64_t T,
                                 encoded *out, nep_err *err) {
    size_t nc = strlen(r->context), nt = strlen(r->continuation), keep = nc;
    while (keep > 0 && is_space(r->context[keep - 1])) keep--;
    char *whole = malloc(nc + nt + 1);
    if (!whole) return nep_fail(err, NEP_ERR_NOMEM, "out of memory encoding a request");
    memcpy(whole, r->context, nc);
    memcpy(whole + nc, r->continuation, nt + 1); /* context (kept) + moved spaces + continuation */
    nep_encoding w = {0}, c = {0};
    nep_status s = NEP_OK;
    int64_t n_ctx;
    if (keep == 0) { /* an empty context: eos, then the continuation alone */
        s = eos >= 0 ? encode_text(tok, whole, nc + nt, &w, err)
                     : nep_fail(err, NEP_ERR_ARG, "an empty context needs the model's eos token, and its config has none");
        n_ctx = 1;
    } else {
        s = encode_text(tok, whole, nc + nt, &w, err);
        if (s == NEP_OK) s = encode_text(tok, whole, keep, &c, err);
        n_ctx = c.n;
    }
    const int64_t n_cont = keep == 0 ? w.n : w.n - c.n;
    if (s == NEP_OK && n_cont < 1)
        s = nep_fail(err, NEP_ERR_ARG, "continuation '%.40s' has no token of its own after its context", r->continuation);
    const int64_t full = n_ctx + n_cont, drop = full > T + 1 ? full - T - 1 : 0;
    if (s == NEP_OK && !(out->ids = malloc(sizeof *out->ids * (size_t)(full - drop))))
        s = nep_fail(err, NEP_ERR_NOMEM, "out of memory encoding a request");
    for (int64_t k = drop; s == NEP_OK && k < full; k++)
        out->ids[k - drop] = keep == 0 ? (k == 0 ? eos : w.ids[k - 1]) : (k < c.n ? c.ids[k] : w.ids[k]);
    out->len = full - drop;
    out->cont = n_cont < out->len - 1 ? n_cont : out->len - 1; /* position 0 predicts nothing */
    nep_encoding_free(&w), nep_encoding_free(&c);
    free(whole);
    return s;
}

/* Whether b reads the same forward row as a: one-token continuations after the same
 * tokens (the logits at the last context position serve both). */
static bool same_row(const encoded *a, const encoded *b) {
    return a->cont == 1 && b->cont == 1 && a->len == b->len &&
           memcmp(a->ids, b->ids, sizeof *a->ids * (size_t)(a->len - 1)) == 0;
}

/* log_softmax(z)[target] in double, and whether target is z's (first) argmax. */
static double logprob_at(const nep_real *z, int64_t V, int32_t target, bool *argmax) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++) best = z[v] > z[best] ? v : best;
    double sum = 0;
    for (int64_t v = 0; v < V; v++) sum += exp((double)z[v] - z[best]);
    *argmax = best == target;
    return (double)z[target] - z[best] - log(sum);
}

void nep_causal_lm_span_logprob(const nep_real *logits, const int32_t *ids, int64_t B, int64_t T, int64_t V,
                                const int64_t *start, const int64_t *end, double *logprob, bool *greedy) {
    for (int64_t r = 0; r < B; r++) {
        double sum = 0;
        bool all = true;
        for (int64_t t = start[r]; t < end[r]; t++) { /* token t is predicted at t - 1 */
            bool hit;
            sum += logprob_at(logits + (r * T + t - 1) * V, V, ids[r * T + t], &hit);
            all &= hit;
        }
        logprob[r] = sum;
        if (greedy) greedy[r] = all;
    }
}

nep_status nep_lm_loglikelihood(nep_graph *g, const nep_tokenizer *tok, int32_t eos, const nep_lm_request *req,
                                int64_t n, int64_t batch, double *logprob, bool *greedy, int64_t *rows,
                                nep_progress_fn progress, void *progress_ctx, const nep_exec_opts *xo,
                                nep_err *err) {
    const int64_t T = nep_shape_numel(&g->nodes[g->inputs[0]].shape),
                  V = nep_shape_numel(&g->nodes[g->output].shape) / T;
    encoded *e = calloc((size_t)n + 1, sizeof *e);
    if (!e) return nep_fail(err, NEP_ERR_NOMEM, "out of memory for %lld requests", (long long)n);
    nep_status s = NEP_OK;
    int64_t n_rows = 0;
    for (int64_t i = 0; s == NEP_OK && i < n; i++) {
        s = encode_request(tok, eos, &req[i], T, &e[i], err);
        if (s != NEP_OK) {
            char why[sizeof err->msg];
            memcpy(why, err->msg, sizeof why);
            s = nep_fail(err, s, "request %lld: %s", (long long)i, why);
        }
        e[i].row = i > 0 && s == NEP_OK && same_row(&e[i - 1], &e[i]) ? e[i - 1].row : n_rows++;
    }
    nep_exec *ex = NULL;
    nep_exec_opts o = xo ? *xo : (nep_exec_opts){0};
    o.inference = true;
    int32_t *ids = malloc(sizeof *ids * (size_t)(batch * T));
    nep_real *mask = malloc(sizeof *mask * (size_t)(batch * T));
    if (s == NEP_OK && (!ids || !mask)) s = nep_fail(err, NEP_ERR_NOMEM, "out of memory for a batch");
    if (s == NEP_OK) s = nep_exec_new(&ex, g, batch, &o, err);
    const double t0 = nep_now();
    for (int64_t first = 0, r0 = 0; s == NEP_OK && first < n; r0 += batch) {
        /* rows r0 .. r0 + batch: the requests from `first` that read them */
        int64_t last = first;
        while (last < n && e[last].row < r0 + batch) last++;
        const int64_t b = e[last - 1].row - r0 + 1;
        memset(ids, 0, sizeof *ids * (size_t)(b * T));
        memset(mask, 0, sizeof *mask * (size_t)(b * T));
        for (int64_t i = first; i < last; i++) {
            const int64_t r = e[i].row - r0;
            const int64_t fed = e[i].len < T ? e[i].len : T;
            memcpy(ids + r * T, e[i].ids, sizeof *ids * (size_t)fed);
            for (int64_t t = 0; t < fed; t++) mask[r * T + t] = 1;
        }
        const void *x[2] = {ids, mask};
        const nep_real *logits;
        s = nep_exec_run(ex, x, 2, b, &logits, err);
        for (int64_t i = first; s == NEP_OK && i < last; i++) {
            const nep_real *z = logits + (e[i].row - r0) * T * V;
            double sum = 0;
            bool all = true;
            for (int64_t t = e[i].len - e[i].cont; t < e[i].len; t++) {
                bool hit;
                sum += logprob_at(z + (t - 1) * V, V, e[i].ids[t], &hit);
                all &= hit;
            }
            logprob[i] = sum;
            if (greedy) greedy[i] = all;
        }
        first = last;
        if (s == NEP_OK && progress) progress(progress_ctx, first, n, 0, nep_now() - t0);
    }
    if (rows) *rows = n_rows;
    nep_exec_free(ex);
    free(ids), free(mask);
    for (int64_t i = 0; i < n; i++) free(e[i].ids);
    free(e);
    return s;
}

nep_status nep_mc_predict(nep_graph *g, const nep_tokenizer *tok, int32_t eos, const nep_mmlu_set *set, int64_t n,
                          nep_mc_mode mode, const nep_mmlu_set *dev, int shots, int64_t batch, int *pred,
                          int *pred_norm, double *logprob, nep_progress_fn progress, void *progress_ctx,
                          const nep_exec_opts *xo, nep_err *err) {
    const int C = NEP_MMLU_CHOICES;
    nep_lm_request *req = calloc((size_t)(n * C) + 1, sizeof *req);
    char **owned = calloc((size_t)(n * (C + 1)) + 1, sizeof *owned); /* prompts and " choice" texts */
    double *lp = malloc(sizeof *lp * (size_t)(n * C) + 1);
    nep_status s = req && owned && lp ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory for %lld questions", (long long)n);
    for (int64_t i = 0; s == NEP_OK && i < n; i++) {
        const nep_mmlu_item *it = &set->items[i];
        if (mode == NEP_MC_LETTER) {
            s = nep_mmlu_prompt(dev, set->subjects[it->subject], shots, it, &owned[i * (C + 1)], err);
            for (int c = 0; s == NEP_OK && c < C; c++)
                req[i * C + c] = (nep_lm_request){owned[i * (C + 1)], nep_mmlu_continuation(c)};
            continue;
        }
        for (int c = 0; s == NEP_OK && c < C; c++) {
            char *t = malloc(strlen(it->choices[c]) + 2);
            if (!t) {
                s = nep_fail(err, NEP_ERR_NOMEM, "out of memory for question %lld", (long long)i);
                break;
            }
            t[0] = ' ';
            strcpy(t + 1, it->choices[c]);
            owned[i * (C + 1) + 1 + c] = t;
            req[i * C + c] = (nep_lm_request){it->question, t};
        }
    }
    if (s == NEP_OK)
        s = nep_lm_loglikelihood(g, tok, eos, req, n * C, batch, lp, NULL, NULL, progress, progress_ctx, xo, err);
    for (int64_t i = 0; s == NEP_OK && i < n; i++) {
        int best = 0, best_norm = 0;
        for (int c = 1; c < C; c++) {
            best = lp[i * C + c] > lp[i * C + best] ? c : best;
            const double a = lp[i * C + c] / (double)strlen(req[i * C + c].continuation),
                         b = lp[i * C + best_norm] / (double)strlen(req[i * C + best_norm].continuation);
            best_norm = a > b ? c : best_norm;
        }
        pred[i] = best;
        if (pred_norm) pred_norm[i] = best_norm;
    }
    if (s == NEP_OK && logprob) memcpy(logprob, lp, sizeof *lp * (size_t)(n * C));
    for (int64_t k = 0; owned && k < n * (C + 1); k++) free(owned[k]);
    free(owned), free(req), free(lp);
    return s;
}
