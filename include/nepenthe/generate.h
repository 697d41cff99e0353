/* Greedy generation with a decoder (nepenthe/llama.h) and a key/value cache
 * (nepenthe/exec.h): the prompts run once through the model built at the longest
 * prompt's length, filling the cache; then each step runs the model built for one token
 * per row, reading the cache. Both graphs read one copy of the weights. */
#ifndef NEPENTHE_GENERATE_H
#define NEPENTHE_GENERATE_H

#include "nepenthe/hf.h"
#include "nepenthe/train.h"

typedef struct nep_generate_stats {
    int64_t prompt_tokens;      /* the prompts' tokens, all rows */
    int64_t new_tokens;         /* tokens generated, all rows, each row's eos included */
    int64_t steps;              /* one-token steps run (the batch's longest generation - 1) */
    double prompt_seconds, step_seconds;
    int64_t kv_bytes_per_token; /* the cache's bytes per row and position */
    int64_t kv_bytes;           /* the whole cache */
} nep_generate_stats;

/* Greedy decoding, as transformers' generate(do_sample=False, max_new_tokens=max_new) on
 * each prompt alone: row b's prompt is ids[b][0 .. len[b]) (len[b] >= 1), and
 * out[b * max_new + s] gets its s-th new token, the argmax of the last position's logits
 * (the first maximum), or -1 once the row has produced eos (eos < 0: never). g is the
 * decoder cfg describes, built for any length, with its weights (and masks applied).
 * progress (may be NULL) after every step with the steps done and the most possible.
 * NEP_ERR_ARG when a prompt plus max_new exceeds max_position_embeddings or a prompt is
 * empty. */
nep_status nep_generate_greedy(const nep_hf_config *cfg, nep_graph *g, const int32_t *const *ids, const int64_t *len,
                               int64_t B, int64_t max_new, int32_t eos, int32_t *out, nep_generate_stats *st,
                               nep_progress_fn progress, void *progress_ctx, const nep_exec_opts *xo, nep_err *err);

#endif
