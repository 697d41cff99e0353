/* Fine-tuning a text classifier (nepenthe/text_model.h) on a text classification set
 * (nepenthe/text_data.h), with Hugging Face Trainer's recipe: AdamW, a learning rate
 * stepped after every optimizer step by get_linear_schedule_with_warmup, gradient
 * clipping, batches of a seeded shuffle. */
#ifndef NEPENTHE_TEXT_TRAIN_H
#define NEPENTHE_TEXT_TRAIN_H

#include "nepenthe/text_data.h"
#include "nepenthe/tokenizer.h"
#include "nepenthe/train.h"

/* A text set tokenized once: n rows of T tokens, padded on the right (the tokenizer's
 * pad id, type 0, mask 0) and truncated longest-first to T. */
typedef struct nep_text_tensors {
    int64_t n, T;
    int32_t *ids, *types;       /* [n, T] */
    nep_real *mask;             /* [n, T]: 1 token, 0 padding */
    int32_t *labels;            /* [n], -1 where unlabelled */
    int64_t truncated;          /* rows that lost tokens to T */
    int64_t tokens;             /* real (unpadded) tokens, all rows */
} nep_text_tensors;

/* Tokenizes every row of d (pairs where d has text_b). NEP_ERR_ARG, naming the row,
 * for text the tokenizer refuses. */
nep_status nep_text_tensors_build(const nep_tokenizer *tok, const nep_text_dataset *d, int64_t T,
                                  nep_text_tensors *out, nep_err *err);
void nep_text_tensors_free(nep_text_tensors *t);

/* get_linear_schedule_with_warmup's rate for the optimizer step after `step` steps:
 * lr * step / warmup during the warm-up, then lr * (total - step) / (total - warmup),
 * never below 0; total 0: lr after the warm-up (a constant rate). */
double nep_linear_lr(double lr, int64_t warmup, int64_t total, int64_t step);

/* One epoch over the rows of d in the order perm (n rows; NULL: in order), in batches of
 * t->batch (the last may be smaller), each step's rate from nep_linear_lr at the
 * optimizer's step count; rng drives dropout. The trainer's executor must have been made
 * for d->T tokens. out->img_per_s counts sequences. */
nep_status nep_text_train_epoch(nep_trainer *t, const nep_text_tensors *d, const uint32_t *perm,
                                double lr, int64_t warmup, int64_t total_steps, nep_rng *rng,
                                nep_progress_fn progress, void *progress_ctx,
                                nep_epoch_stats *out, nep_err *err);

/* Top-1 (percent) and mean loss over d's rows, in evaluation mode, in batches of
 * `batch`; NEP_ERR_ARG for a row without a label. */
nep_status nep_text_evaluate(nep_graph *g, const nep_text_tensors *d, int64_t batch, double *top1,
                             double *loss, const nep_exec_opts *xo, nep_err *err);

#endif
