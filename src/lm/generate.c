/* Greedy generation with a key/value cache (nepenthe/generate.h). */
#include <stdlib.h>
#include <string.h>

#include "nepenthe/generate.h"
#include "nepenthe/llama.h"

/* The first maximum of z[0..V). */
static int32_t argmax(const nep_real *z, int64_t V) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++) best = z[v] > z[best] ? v : best;
    return (int32_t)best;
}

nep_status nep_generate_greedy(const nep_hf_config *cfg, nep_graph *g, const int32_t *const *ids, const int64_t *len,
                               int64_t B, int64_t max_new, int32_t eos, int32_t *out, nep_generate_stats *st,
                               nep_progress_fn progress, void *progress_ctx, const nep_exec_opts *xo, nep_err *err) {
    memset(st, 0, sizeof *st);
    int64_t Tp = 0;
    for (int64_t b = 0; b < B; b++) {
        if (len[b] < 1) return nep_fail(err, NEP_ERR_ARG, "prompt %lld is empty", (long long)b);
        Tp = len[b] > Tp ? len[b] : Tp;
        st->prompt_tokens += len[b];
    }
    if (max_new < 1 || Tp + max_new > cfg->max_position_embeddings)
        return nep_fail(err, NEP_ERR_ARG, "the longest prompt (%lld tokens) and %lld new tokens exceed "
                        "max_position_embeddings %lld", (long long)Tp, (long long)max_new,
                        (long long)cfg->max_position_embeddings);
    const int64_t V = cfg->vocab_size;
    nep_graph prompt = {0}, step = {0};
    nep_exec *pex = NULL, *sex = NULL;
    nep_kv_cache kv = {0};
    nep_exec_opts o = xo ? *xo : (nep_exec_opts){0};
    o.inference = true;
    int32_t *x = calloc((size_t)(B * Tp) + 1, sizeof *x), *next = malloc(sizeof *next * (size_t)B + 1);
    nep_real *mask = calloc((size_t)(B * Tp) + 1, sizeof *mask);
    int64_t *pos = malloc(sizeof *pos * (size_t)B + 1);
    bool *done = calloc((size_t)B + 1, sizeof *done);
    nep_status s = x && next && mask && pos && done ? NEP_OK : nep_fail(err, NEP_ERR_NOMEM, "out of memory for %lld prompts", (long long)B);
    if (s == NEP_OK) s = nep_llama_build_borrowing(cfg, Tp, g, &prompt, err);
    if (s == NEP_OK) s = nep_llama_build_borrowing(cfg, 1, g, &step, err);
    if (s == NEP_OK) s = nep_exec_new(&pex, &prompt, B, &o, err);
    if (s == NEP_OK) s = nep_exec_new(&sex, &step, B, &o, err);
    if (s == NEP_OK) s = nep_kv_cache_init(&kv, &prompt, B, Tp + max_new, err);
    if (s == NEP_OK) s = nep_exec_set_kv_cache(pex, &kv, NULL, err);
    if (s == NEP_OK) s = nep_exec_set_kv_cache(sex, &kv, pos, err);
    st->kv_bytes_per_token = nep_kv_cache_bytes_per_token(&kv);
    st->kv_bytes = st->kv_bytes_per_token * B * (Tp + max_new);
    /* the prompts, right-padded: every row's cache from position 0 */
    double t0 = nep_now();
    const nep_real *logits = NULL;
    for (int64_t b = 0; s == NEP_OK && b < B; b++)
        for (int64_t t = 0; t < len[b]; t++) x[b * Tp + t] = ids[b][t], mask[b * Tp + t] = 1;
    if (s == NEP_OK) s = nep_exec_run(pex, (const void *[]){x, mask}, 2, B, &logits, err);
    for (int64_t b = 0; s == NEP_OK && b < B; b++) next[b] = argmax(logits + (b * Tp + len[b] - 1) * V, V);
    st->prompt_seconds = nep_now() - t0;
    /* one token per row and step, at position len[b] + s */
    t0 = nep_now();
    nep_real *ones = malloc(sizeof *ones * (size_t)B + 1);
    for (int64_t b = 0; ones && b < B; b++) ones[b] = 1;
    if (s == NEP_OK && !ones) s = nep_fail(err, NEP_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; s == NEP_OK && k < max_new; k++) {
        bool all_done = true;
        for (int64_t b = 0; b < B; b++) {
            out[b * max_new + k] = done[b] ? -1 : next[b];
            st->new_tokens += !done[b];
            done[b] |= next[b] == eos;
            all_done &= done[b];
        }
        if (all_done || k + 1 == max_new) break;
        for (int64_t b = 0; b < B; b++) x[b] = next[b], pos[b] = len[b] + k;
        s = nep_exec_run(sex, (const void *[]){x, ones}, 2, B, &logits, err);
        for (int64_t b = 0; s == NEP_OK && b < B; b++) next[b] = argmax(logits + b * V, V);
        st->steps++;
        if (s == NEP_OK && progress) progress(progress_ctx, k + 1, max_new - 1, 0, nep_now() - t0);
    }
    for (int64_t b = 0; s == NEP_OK && b < B; b++) /* rows cut short by the whole batch's end */
        for (int64_t k = st->steps + 1; k < max_new; k++) out[b * max_new + k] = -1;
    st->step_seconds = nep_now() - t0;
    free(ones);
    nep_exec_free(pex), nep_exec_free(sex);
    nep_kv_cache_free(&kv);
    nep_graph_free(&prompt), nep_graph_free(&step);
    free(x), free(next), free(mask), free(pos), free(done);
    return s;
}
