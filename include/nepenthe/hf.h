/* Hugging Face model folders: config.json and the weights beside it (model.safetensors,
 * or shards listed by model.safetensors.index.json), read and written in the layout
 * transformers' from_pretrained / save_pretrained use, so that a folder goes from
 * transformers to nepenthe and back unchanged.
 *
 * config.json: the keys nepenthe's builders need are parsed into nep_hf_config and
 * checked (types, ranges, supported values); every other key is kept verbatim and
 * written back. Keys that define the architecture are required; the others take the
 * defaults of transformers' config class for the model type (BertConfig,
 * RobertaConfig, LlamaConfig), as from_pretrained would.
 *
 * Required for every model_type: model_type, hidden_size, num_hidden_layers,
 * num_attention_heads, intermediate_size, hidden_act, max_position_embeddings,
 * vocab_size; for bert and roberta also type_vocab_size and layer_norm_eps.
 * Defaults: num_key_value_heads = num_attention_heads; head_dim = hidden_size /
 * num_attention_heads; rms_norm_eps 1e-6; rope_theta 10000; rope_scaling none;
 * position_embedding_type "absolute"; num_labels 2 (or the length of id2label);
 * id2label "LABEL_<i>"; tie_word_embeddings true for bert/roberta, false for llama;
 * pad/bos/eos: bert 0/-/-, roberta 1/0/2, llama -/1/2 (- is NEP_HF_NO_TOKEN);
 * hidden_dropout_prob and attention_probs_dropout_prob 0.1, classifier_dropout
 * hidden_dropout_prob, initializer_range 0.02. */
#ifndef NEPENTHE_HF_H
#define NEPENTHE_HF_H

#include <stddef.h>
#include <stdint.h>

#include "nepenthe/safetensors.h"
#include "nepenthe/status.h"

typedef enum nep_hf_model_type { NEP_HF_BERT, NEP_HF_ROBERTA, NEP_HF_LLAMA } nep_hf_model_type;

/* hidden_act values: "gelu" (erf), "gelu_new" and "gelu_pytorch_tanh" (both the tanh
 * form), "relu", "silu". */
typedef enum nep_hf_act {
    NEP_HF_ACT_GELU, NEP_HF_ACT_GELU_NEW, NEP_HF_ACT_GELU_PYTORCH_TANH, NEP_HF_ACT_RELU,
    NEP_HF_ACT_SILU
} nep_hf_act;

#define NEP_HF_NO_TOKEN (-1)   /* pad/bos/eos id absent or null */
#define NEP_HF_MAX_EOS 8       /* Llama 3 instruct configs list several eos ids */

/* Llama 3's rope_scaling ({"rope_type": "llama3", ...}); present = 0 when the key is
 * absent, null, or of rope_type "default". */
typedef struct nep_hf_rope_scaling {
    int present;
    double factor, low_freq_factor, high_freq_factor;
    int64_t original_max_position_embeddings;
} nep_hf_rope_scaling;

typedef struct nep_hf_config {
    nep_hf_model_type model_type;
    char architecture[128];     /* architectures[0], "" when absent */
    int64_t hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads;
    int64_t head_dim, intermediate_size, max_position_embeddings, type_vocab_size;
    int64_t vocab_size;
    nep_hf_act hidden_act;
    double layer_norm_eps;      /* bert, roberta */
    /* bert, roberta, read but never written (the file's own keys are written back):
     * hidden_dropout_prob (0.1), attention_probs_dropout_prob (0.1), classifier_dropout
     * (null: hidden_dropout_prob), initializer_range (0.02; llama too) */
    double hidden_dropout, attention_dropout, classifier_dropout, initializer_range;
    double rms_norm_eps;        /* llama */
    double rope_theta;          /* llama */
    nep_hf_rope_scaling rope_scaling;
    int attention_bias, mlp_bias; /* llama: biases on the projections (default 0) */
    int tie_word_embeddings;
    int64_t pad_token_id, bos_token_id;           /* NEP_HF_NO_TOKEN when none */
    int64_t eos_token_id;                          /* the first of eos_token_ids */
    int n_eos_token_ids;
    int64_t eos_token_ids[NEP_HF_MAX_EOS];
    int num_labels;
    char **id2label;            /* num_labels names, owned */
    int has_dtype;              /* torch_dtype (or dtype) given */
    nep_dtype dtype;            /* F32, F16, BF16 or F64 when has_dtype */
    char *json;                 /* the parsed file's text: unknown keys are written back */
} nep_hf_config;

/* Parses path (a config.json, or a folder holding one). NEP_ERR_IO when unreadable;
 * NEP_ERR_FORMAT for bad JSON, a missing required key or a value of the wrong JSON
 * type; NEP_ERR_UNSUPPORTED for a model_type, hidden_act, position_embedding_type,
 * rope_scaling or dtype nepenthe does not implement. Messages name the file, the key
 * and the value. On failure cfg is zeroed. */
nep_status nep_hf_config_read(const char *path, nep_hf_config *cfg, nep_err *err);
/* The same from len bytes of JSON text; name is used in messages. */
nep_status nep_hf_config_parse(const char *text, size_t len, const char *name,
                               nep_hf_config *cfg, nep_err *err);

/* Replaces the labels: n names (NULL: "LABEL_<i>"), copied. */
nep_status nep_hf_config_set_labels(nep_hf_config *cfg, int n, const char *const *names,
                                    nep_err *err);

/* Writes cfg as a config.json that transformers loads back into the same
 * configuration: the fields above (id2label with label2id, torch_dtype, rope_scaling
 * as given) over the unknown keys kept from the file it was read from. Atomic
 * (nepenthe/file.h). NEP_ERR_ARG for a config that would not read back. */
nep_status nep_hf_config_write(const nep_hf_config *cfg, const char *path, nep_err *err);

void nep_hf_config_free(nep_hf_config *cfg);

/* Names for messages and for the writer: "bert", "gelu_new", ... */
const char *nep_hf_model_type_name(nep_hf_model_type t);
const char *nep_hf_act_name(nep_hf_act a);

/* ---- weights -------------------------------------------------------------------- */

/* A folder's weights, every file memory-mapped (nep_st_map) once: tensors point into
 * the mappings and are converted to float only when asked (nep_hf_weights_get_f32),
 * so a model larger than memory opens without a copy. */
typedef struct nep_hf_weights nep_hf_weights;

/* Opens dir/model.safetensors when it exists (transformers prefers it too), otherwise
 * dir/model.safetensors.index.json and the shards its weight_map names. Every shard
 * is validated as nep_st_read does; the index must agree with the shards exactly: a
 * name listed but missing from its shard, a tensor in a shard that the index does not
 * list for that shard, a tensor in two shards, a missing shard, or a shard name that
 * leaves dir is NEP_ERR_FORMAT (NEP_ERR_IO for a missing file), naming the file and
 * the tensor. */
nep_status nep_hf_weights_open(const char *dir, nep_hf_weights **out, nep_err *err);
void nep_hf_weights_close(nep_hf_weights *w);

/* Lookup by name; NULL when absent. */
const nep_st_tensor *nep_hf_weights_find(const nep_hf_weights *w, const char *name);
/* Iteration: tensors 0 .. count-1 in name order, and the file (relative to dir) that
 * holds tensor i. */
int nep_hf_weights_count(const nep_hf_weights *w);
const nep_st_tensor *nep_hf_weights_at(const nep_hf_weights *w, int i);
const char *nep_hf_weights_file(const nep_hf_weights *w, int i);
/* Finds name and converts it (F32, F64, F16, BF16) into dst, which holds n floats:
 * NEP_ERR_FORMAT naming the folder when absent, NEP_ERR_SHAPE when it has another
 * element count. */
nep_status nep_hf_weights_get_f32(const nep_hf_weights *w, const char *name, float *dst,
                                  int64_t n, nep_err *err);

/* Writes st's tensors (assembled with nep_st_add; metadata copied into every file,
 * with "format": "pt" added as transformers' loader requires) into dir, created if
 * missing. max_shard_bytes 0, or a model that fits in one shard: dir/model.safetensors.
 * Otherwise shards model-00001-of-0000N.safetensors filled in st's tensor order the way
 * huggingface_hub splits a state_dict (a tensor that would overflow the current shard
 * starts the next; one larger than the limit gets a shard of its own), then
 * model.safetensors.index.json ({"metadata": {"total_size": bytes}, "weight_map":
 * {name: file}}). Each file is written atomically, the index last; afterwards the
 * files of the other layout and stale shards (model-*-of-*.safetensors not written
 * now) are removed, so that from_pretrained cannot pick up old weights. */
nep_status nep_hf_weights_write(const char *dir, const nep_safetensors *st,
                                size_t max_shard_bytes, nep_err *err);

#endif
