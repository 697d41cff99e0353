/* Text encoders with Hugging Face's state_dict names and structure, built from a
 * config.json (nep_hf_config, model_type bert or roberta): BertModel, and
 * BertForSequenceClassification / RobertaForSequenceClassification.
 *
 * The graph has three inputs, in this order: input_ids [T] and token_type_ids [T] (token
 * ids), attention_mask [T] (reals: 1 on tokens, 0 on padding). T, the sequence length, is
 * fixed when the graph is built (sequences are padded to it). Structure (post-norm, as
 * BERT): embeddings (word + token type + position, LayerNorm, dropout); per layer
 * encoder.layer.<i>: attention.self.query|key|value (Linear) into a scaled dot-product
 * attention over the unpadded keys (attention.self.sdpa), attention.output.dense,
 * dropout, LayerNorm(x + that); intermediate.dense and its activation
 * (intermediate.intermediate_act_fn: the rectifier layer of SPEC section 1, owned by
 * intermediate.dense, every token one observation), output.dense, dropout,
 * LayerNorm(x + that). Heads: BERT's pooler (tanh of pooler.dense on the first token),
 * dropout and classifier; RoBERTa's classifier.dense, tanh and classifier.out_proj on the
 * first token, with dropout before each Linear. RoBERTa's positions start after
 * pad_token_id and skip padding (nep_embedding_attrs).
 *
 * Dropout: hidden_dropout_prob after the embeddings and each sublayer, classifier_dropout
 * in the heads, attention_probs_dropout_prob on the attention weights (inside the
 * attention node, nep_sdpa_attrs.dropout). */
#ifndef NEPENTHE_TEXT_MODEL_H
#define NEPENTHE_TEXT_MODEL_H

#include "nepenthe/graph.h"
#include "nepenthe/hf.h"
#include "nepenthe/rng.h"

typedef enum nep_text_head {
    NEP_TEXT_HEAD_NONE,     /* BertModel without its pooler: the last hidden state [T, C],
                             * parameters named without the "bert." prefix */
    NEP_TEXT_HEAD_CLASSIFY, /* *ForSequenceClassification: logits [num_labels] */
} nep_text_head;

/* Builds and finalizes the graph for sequences of seq_len tokens; with rng, initializes
 * as transformers' _init_weights does (Linear and Embedding weights
 * N(0, initializer_range^2), the padding rows of padded embeddings 0, biases 0, LayerNorm
 * 1 and 0); without, leaves the parameters zero. NEP_ERR_ARG for a seq_len beyond what
 * the position table holds, NEP_ERR_UNSUPPORTED for a llama config. */
nep_status nep_text_encoder_build(const nep_hf_config *cfg, int64_t seq_len, nep_text_head head,
                                  nep_graph *g, nep_rng *rng, nep_err *err);

/* What nep_text_encoder_load found. */
typedef struct nep_text_load_report {
    int loaded;             /* parameters read from the folder */
    int mapped;             /* of them, bfloat16 matrices mapped, not copied (nep_llama_build_mapped) */
    int64_t mapped_bytes;
    int missing;            /* left as they were (a new classification head) */
    char first_missing[2 * NEP_NAME_LEN];
    int unused;             /* the folder's tensors no parameter read (a pooler, an MLM head) */
} nep_text_load_report;

/* Reads every parameter of g from w by name, converting float16 and bfloat16 to float, as
 * from_pretrained does: a base model's checkpoint ("embeddings...") loads into a
 * classification graph ("bert.embeddings...") and the other way round. A tensor of
 * another shape is NEP_ERR_SHAPE naming it; parameters found nowhere are counted in the
 * report and keep their values (required: then they are NEP_ERR_FORMAT, naming the first). */
nep_status nep_text_encoder_load(nep_graph *g, const nep_hf_weights *w, bool required,
                                 nep_text_load_report *report, nep_err *err);

#endif
