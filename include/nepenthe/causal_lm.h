/* Causal language modelling with a decoder (nepenthe/llama.h): text packed into rows of
 * T tokens, transformers' causal-LM loss, training epochs with a warm-up and cosine
 * decay stepped per optimizer step (get_cosine_schedule_with_warmup), and perplexity. */
#ifndef NEPENTHE_CAUSAL_LM_H
#define NEPENTHE_CAUSAL_LM_H

#include "nepenthe/tokenizer.h"
#include "nepenthe/train.h"

/* A corpus as rows of T tokens, packed: every token real (no padding). */
typedef struct nep_lm_rows {
    int64_t n, T;
    int32_t *ids;               /* [n, T] */
    int64_t lines;              /* text lines read */
    int64_t tokens;             /* of the stream, the dropped tail included */
} nep_lm_rows;

/* Reads the UTF-8 text file at path, one document per line (LF; empty lines skipped),
 * encodes each with the tokenizer's default options (its template's special tokens: a
 * Llama 3 tokenizer puts <|begin_of_text|> first) followed by eos (-1: nothing),
 * concatenates them all and cuts the stream into rows of T tokens, as pretraining
 * scripts group texts (run_clm.py's group_texts): the tail shorter than T is dropped.
 * NEP_ERR_ARG naming path and line for text the tokenizer refuses, or a stream
 * shorter than one row. */
nep_status nep_lm_rows_read(const nep_tokenizer *tok, const char *path, int32_t eos, int64_t T,
                            nep_lm_rows *out, nep_err *err);
void nep_lm_rows_free(nep_lm_rows *r);

/* The n rows rows[0..n) of d as tokenized text (types 0, mask 1, no labels), for the
 * loops over a nep_split with decoder set: entropy, Wanda's norms. */
struct nep_text_tensors;
nep_status nep_lm_rows_as_text(const nep_lm_rows *d, const uint32_t *rows, int64_t n, struct nep_text_tensors *out,
                               nep_err *err);

/* transformers' causal-LM loss of logits [B, T, V] over rows ids [B, T]: logits[b, t]
 * predicts ids[b, t + 1], counted where mask[b, t + 1] is 1 (mask NULL: everywhere);
 * returns the mean over those in nats, and writes its gradient into dlogits (NULL: not
 * computed; 0 at the positions not counted), how many were counted into *count, and
 * how many were the logits' argmax into *correct (either may be NULL). Rows run in
 * parallel; the sum is taken in row order, so the result does not depend on threads. */
double nep_causal_lm_loss(const nep_real *logits, const int32_t *ids, const nep_real *mask, int64_t B,
                          int64_t T, int64_t V, nep_real *dlogits, int64_t *count, int64_t *correct);

/* get_cosine_schedule_with_warmup's rate after `step` optimizer steps: lr * step /
 * warmup during the warm-up, then lr * max(0, (1 + cos(pi * progress)) / 2) with progress
 * (step - warmup) / (total - warmup): 0 at total (and, as there, rising again past it). */
double nep_cosine_lr(double lr, int64_t warmup, int64_t total, int64_t step);

/* One epoch over d's rows in the order perm (NULL: in order), batches of t->batch (the
 * last may be smaller), each step's rate nep_cosine_lr(lr, warmup, total, step); rng
 * drives dropout. t's graph takes input_ids and attention_mask [T] and gives [T, V].
 * out: loss the mean per token, top1 the next-token accuracy, img_per_s tokens/s. */
nep_status nep_lm_train_epoch(nep_trainer *t, const nep_lm_rows *d, const uint32_t *perm, double lr,
                              int64_t warmup, int64_t total, nep_rng *rng, nep_progress_fn progress,
                              void *progress_ctx, nep_epoch_stats *out, nep_err *err);

/* Mean loss per predicted token (nats; the perplexity is its exp) and next-token top-1
 * (percent, may be NULL) of g over d's rows, in batches of `batch`, in evaluation mode. */
nep_status nep_lm_evaluate(nep_graph *g, const nep_lm_rows *d, int64_t batch, double *loss, double *top1,
                           const nep_exec_opts *xo, nep_err *err);

#endif
