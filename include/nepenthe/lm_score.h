/* Scoring continuations with a causal language model as lm-evaluation-harness 0.4 does
 * (its HFLM.loglikelihood), and multiple-choice accuracy built on it.
 *
 * Tokens. A request (context, continuation) is encoded as the harness's _encode_pair:
 * trailing whitespace of the context moves to the front of the continuation; the whole
 * text and the context alone are encoded without special tokens (the harness's default
 * for causal LMs), and the continuation's tokens are the whole's past the context's
 * count. An empty context becomes the eos token. The row fed to the model is the last
 * T + 1 tokens of context + continuation less the last, which predicts nothing (the
 * harness's inp = (context + continuation)[-(T + 1):][:-1]). A continuation longer
 * than the T positions scores its last T tokens (where the harness's slice breaks).
 *
 * Result. The sum over the continuation's tokens of log_softmax(logits at the previous
 * position)[token] (double), and whether every one is its logits' argmax.
 *
 * Requests that share the row up to a one-token continuation (MMLU's " A" .. " D" after
 * one prompt) share one forward pass, so four choices cost one row. */
#ifndef NEPENTHE_LM_SCORE_H
#define NEPENTHE_LM_SCORE_H

#include "nepenthe/mmlu.h"
#include "nepenthe/tokenizer.h"
#include "nepenthe/train.h"

/* lm-evaluation-harness's loglikelihood of a continuation, from a causal LM's logits
 * [B, T, V] of the rows ids [B, T]: for row r, the sum over t in [start[r], end[r]) of
 * log_softmax(logits[r, t - 1])[ids[r, t]] (in double), and greedy[r] (if not NULL):
 * whether every such token is the argmax of its logits (the first maximum, as torch's
 * argmax). 1 <= start[r] <= end[r] <= T. */
void nep_causal_lm_span_logprob(const nep_real *logits, const int32_t *ids, int64_t B, int64_t T, int64_t V,
                                const int64_t *start, const int64_t *end, double *logprob, bool *greedy);

typedef struct nep_lm_request {
    const char *context, *continuation;
} nep_lm_request;

/* Scores the n requests with g, a decoder for T tokens (inputs input_ids and
 * attention_mask [T], output logits [T, V]; nep_llama_build), in batches of `batch` rows
 * of T (right-padded, masked), eos the id an empty context becomes (-1: the model has
 * none, and an empty context is refused). logprob[i] and
 * greedy[i] (NULL: not wanted) as above; *rows (NULL: not wanted) the forward rows run.
 * progress (may be NULL) after each batch, in requests done. NEP_ERR_ARG for text the
 * tokenizer refuses (naming the request), an empty continuation, or an empty context
 * without eos. */
nep_status nep_lm_loglikelihood(nep_graph *g, const nep_tokenizer *tok, int32_t eos, const nep_lm_request *req,
                                int64_t n, int64_t batch, double *logprob, bool *greedy, int64_t *rows,
                                nep_progress_fn progress, void *progress_ctx, const nep_exec_opts *xo,
                                nep_err *err);

/* How a multiple-choice question is asked. */
typedef enum nep_mc_mode {
    /* MMLU's: the k-shot prompt (nep_mmlu_prompt) and the continuations " A" .. " D" */
    NEP_MC_LETTER,
    /* cloze, as the harness's HellaSwag or ARC: the question as context and each choice's
     * text (after target_delimiter " ") as continuation; acc by log-likelihood, acc_norm
     * by log-likelihood per byte of the continuation */
    NEP_MC_CLOZE,
} nep_mc_mode;

/* Predictions for the n first questions of set (all: n = set->n): pred[i] by
 * log-likelihood, pred_norm[i] (NULL: not wanted; cloze only) by log-likelihood per
 * byte; ties to the first choice, as numpy's argmax; logprob[4 i + c] (NULL: not
 * wanted) choice c's log-likelihood. dev: the k-shot examples (letter mode). */
nep_status nep_mc_predict(nep_graph *g, const nep_tokenizer *tok, int32_t eos, const nep_mmlu_set *set, int64_t n,
                          nep_mc_mode mode, const nep_mmlu_set *dev, int shots, int64_t batch, int *pred,
                          int *pred_norm, double *logprob, nep_progress_fn progress, void *progress_ctx,
                          const nep_exec_opts *xo, nep_err *err);

#endif
