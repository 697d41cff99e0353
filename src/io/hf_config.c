/* config.json of a Hugging Face model folder (the keys and defaults are listed in
 * nepenthe/hf.h). The file is user input: every key's JSON type and range is checked
 * before use, and each refusal names the file, the key and the value, because a user
 * holding a config that transformers accepts needs to know exactly which key nepenthe
 * does not implement. */
#include "nepenthe/hf.h"
#include "nepenthe/file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* JSON numbers are doubles: integers beyond 2^53 are not exact. */
#define MAX_JSON_INT 9007199254740992.0
/* config.json files are a few kB; this only stops a wrong path from being slurped. */
#define MAX_CONFIG_BYTES (64u << 20)

static const char *const model_types[] = {
    [NEP_HF_BERT] = "bert", [NEP_HF_ROBERTA] = "roberta", [NEP_HF_LLAMA] = "llama"};
static const char *const acts[] = {
    [NEP_HF_ACT_GELU] = "gelu", [NEP_HF_ACT_GELU_NEW] = "gelu_new",
    [NEP_HF_ACT_GELU_PYTORCH_TANH] = "gelu_pytorch_tanh", [NEP_HF_ACT_RELU] = "relu",
    [NEP_HF_ACT_SILU] = "silu"};
#define N_MODEL_TYPES ((int)(sizeof model_types / sizeof *model_types))
#define N_ACTS ((int)(sizeof acts / sizeof *acts))

/* torch dtype names as transformers writes them. */
static const struct { const char *name; nep_dtype dt; } torch_dtypes[] = {
    {"float32", NEP_DT_F32}, {"float16", NEP_DT_F16}, {"bfloat16", NEP_DT_BF16},
    {"float64", NEP_DT_F64}};
#define N_TORCH_DTYPES ((int)(sizeof torch_dtypes / sizeof *torch_dtypes))

const char *nep_hf_model_type_name(nep_hf_model_type t) {
    return (unsigned)t < (unsigned)N_MODEL_TYPES ? model_types[t] : "?";
}

const char *nep_hf_act_name(nep_hf_act a) {
    return (unsigned)a < (unsigned)N_ACTS ? acts[a] : "?";
}

static const char *torch_dtype_name(nep_dtype dt) {
    for (int i = 0; i < N_TORCH_DTYPES; i++)
        if (torch_dtypes[i].dt == dt) return torch_dtypes[i].name;
    return NULL;
}

/* ---- parsing helpers --------------------------------------------------------------- */

/* What every helper needs to name the culprit in a message. */
typedef struct pctx {
    const char *file;
    const cJSON *root;
    nep_err *err;
} pctx;

/* The JSON text of a value, shortened, for messages. */
static const char *json_text(const cJSON *j, char *buf, size_t cap) {
    char *s = cJSON_PrintUnformatted(j);
    snprintf(buf, cap, "%s", s ? s : "?");
    if (s && strlen(s) >= cap && cap > 4) strcpy(buf + cap - 4, "...");
    cJSON_free(s);
    return buf;
}

static nep_status type_error(const pctx *c, const char *key, const cJSON *j,
                             const char *want) {
    char v[80];
    return nep_fail(c->err, NEP_ERR_FORMAT, "%s: key '%s': expected %s, got %s", c->file,
                    key, want, json_text(j, v, sizeof v));
}

static nep_status missing(const pctx *c, const char *key) {
    return nep_fail(c->err, NEP_ERR_FORMAT, "%s: missing required key '%s'", c->file, key);
}

/* A value that is present and not null. */
static const cJSON *item(const cJSON *obj, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(j) ? NULL : j;
}

static int json_int(const cJSON *j, int64_t *v) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(fabs(d) <= MAX_JSON_INT) || d != floor(d)) return -1;
    *v = (int64_t)d;
    return 0;
}

/* Integer key of obj (named path in messages) at least min; def when absent unless
 * required. */
static nep_status get_int_in(const pctx *c, const cJSON *obj, const char *key,
                             const char *path, int required, int64_t def, int64_t min,
                             int64_t *out) {
    const cJSON *j = item(obj, key);
    if (!j) {
        if (required) return missing(c, path);
        *out = def;
        return NEP_OK;
    }
    if (json_int(j, out) != 0) return type_error(c, path, j, "an integer");
    if (*out < min)
        return nep_fail(c->err, NEP_ERR_FORMAT, "%s: key '%s': value %" PRId64
                        " is below %" PRId64, c->file, path, *out, min);
    return NEP_OK;
}

static nep_status get_int(const pctx *c, const char *key, int required, int64_t def,
                          int64_t min, int64_t *out) {
    return get_int_in(c, c->root, key, key, required, def, min, out);
}

/* A finite number; positive when positive is set (epsilons, rope_theta, factors). */
static nep_status get_num_in(const pctx *c, const cJSON *obj, const char *key,
                             const char *path, int required, double def, int positive,
                             double *out) {
    const cJSON *j = item(obj, key);
    if (!j) {
        if (required) return missing(c, path);
        *out = def;
        return NEP_OK;
    }
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
        return type_error(c, path, j, "a number");
    *out = j->valuedouble;
    if (positive && !(*out > 0))
        return nep_fail(c->err, NEP_ERR_FORMAT, "%s: key '%s': value %g must be positive",
                        c->file, path, *out);
    return NEP_OK;
}

static nep_status get_num(const pctx *c, const char *key, int required, double def,
                          double *out) {
    return get_num_in(c, c->root, key, key, required, def, 1, out);
}

/* A dropout probability in [0, 1); null or absent: def. */
static nep_status get_probability(const pctx *c, const char *key, double def, double *out) {
    NEP_TRY(get_num_in(c, c->root, key, key, 0, def, 0, out));
    if (!(*out >= 0 && *out < 1))
        return nep_fail(c->err, NEP_ERR_FORMAT, "%s: key '%s': value %g is not a probability "
                        "in [0, 1)", c->file, key, *out);
    return NEP_OK;
}

static nep_status get_bool(const pctx *c, const char *key, int def, int *out) {
    const cJSON *j = item(c->root, key);
    if (!j) {
        *out = def;
        return NEP_OK;
    }
    if (!cJSON_IsBool(j)) return type_error(c, key, j, "true or false");
    *out = cJSON_IsTrue(j);
    return NEP_OK;
}

/* A string key; NULL when absent or null. */
static nep_status get_str(const pctx *c, const char *key, const char **out) {
    const cJSON *j = item(c->root, key);
    *out = NULL;
    if (!j) return NEP_OK;
    if (!cJSON_IsString(j)) return type_error(c, key, j, "a string");
    *out = j->valuestring;
    return NEP_OK;
}

/* Index of s in names[n]; a refusal naming the key and listing the accepted values. */
static nep_status choose(const pctx *c, const char *key, const char *s,
                         const char *const *names, int n, int *out) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return NEP_OK;
        }
    char list[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 names[i]);
    return nep_fail(c->err, NEP_ERR_UNSUPPORTED,
                    "%s: key '%s': value '%s' is not supported (nepenthe implements %s)",
                    c->file, key, s, list);
}

/* ---- the keys ---------------------------------------------------------------------- */

static nep_status parse_model_type(const pctx *c, nep_hf_config *cfg) {
    const char *s;
    NEP_TRY(get_str(c, "model_type", &s));
    if (!s) return missing(c, "model_type");
    int t = 0;
    NEP_TRY(choose(c, "model_type", s, model_types, N_MODEL_TYPES, &t));
    cfg->model_type = (nep_hf_model_type)t;
    return NEP_OK;
}

static nep_status parse_architecture(const pctx *c, nep_hf_config *cfg) {
    const cJSON *j = item(c->root, "architectures");
    if (!j) return NEP_OK;
    if (!cJSON_IsArray(j)) return type_error(c, "architectures", j, "an array of strings");
    const cJSON *a = j->child;
    if (!a) return NEP_OK;
    if (!cJSON_IsString(a)) return type_error(c, "architectures", j, "an array of strings");
    if (strlen(a->valuestring) >= sizeof cfg->architecture)
        return nep_fail(c->err, NEP_ERR_FORMAT, "%s: key 'architectures': name too long",
                        c->file);
    strcpy(cfg->architecture, a->valuestring);
    return NEP_OK;
}

static nep_status parse_act(const pctx *c, nep_hf_config *cfg) {
    const char *s;
    NEP_TRY(get_str(c, "hidden_act", &s));
    if (!s) return missing(c, "hidden_act");
    int a = 0;
    NEP_TRY(choose(c, "hidden_act", s, acts, N_ACTS, &a));
    cfg->hidden_act = (nep_hf_act)a;
    return NEP_OK;
}

/* The sizes every model type has; heads must divide the width they split. */
static nep_status parse_sizes(const pctx *c, nep_hf_config *cfg) {
    NEP_TRY(get_int(c, "hidden_size", 1, 0, 1, &cfg->hidden_size));
    NEP_TRY(get_int(c, "num_hidden_layers", 1, 0, 0, &cfg->num_hidden_layers));
    NEP_TRY(get_int(c, "num_attention_heads", 1, 0, 1, &cfg->num_attention_heads));
    NEP_TRY(get_int(c, "intermediate_size", 1, 0, 1, &cfg->intermediate_size));
    NEP_TRY(get_int(c, "max_position_embeddings", 1, 0, 1, &cfg->max_position_embeddings));
    NEP_TRY(get_int(c, "vocab_size", 1, 0, 1, &cfg->vocab_size));
    int llama = cfg->model_type == NEP_HF_LLAMA;
    const int64_t heads = cfg->num_attention_heads;
    /* Only Llama reads head_dim; the encoders always split hidden_size evenly. */
    int explicit_hd = llama && item(c->root, "head_dim");
    if (!explicit_hd && cfg->hidden_size % heads != 0)
        return nep_fail(c->err, NEP_ERR_FORMAT,
                        "%s: key 'num_attention_heads': %" PRId64
                        " does not divide hidden_size %" PRId64, c->file, heads,
                        cfg->hidden_size);
    cfg->head_dim = cfg->hidden_size / heads;
    if (explicit_hd) NEP_TRY(get_int(c, "head_dim", 1, 0, 1, &cfg->head_dim));
    cfg->num_key_value_heads = heads;
    if (llama) NEP_TRY(get_int(c, "num_key_value_heads", 0, heads, 1, &cfg->num_key_value_heads));
    if (heads % cfg->num_key_value_heads != 0)
        return nep_fail(c->err, NEP_ERR_FORMAT,
                        "%s: key 'num_key_value_heads': %" PRId64
                        " does not divide num_attention_heads %" PRId64, c->file,
                        cfg->num_key_value_heads, heads);
    return NEP_OK;
}

/* bert / roberta: token types, LayerNorm, absolute positions only. */
static nep_status parse_encoder(const pctx *c, nep_hf_config *cfg) {
    NEP_TRY(get_int(c, "type_vocab_size", 1, 0, 1, &cfg->type_vocab_size));
    NEP_TRY(get_num(c, "layer_norm_eps", 1, 0, &cfg->layer_norm_eps));
    const char *pe;
    NEP_TRY(get_str(c, "position_embedding_type", &pe));
    static const char *const absolute[] = {"absolute"};
    int unused = 0;
    if (pe) NEP_TRY(choose(c, "position_embedding_type", pe, absolute, 1, &unused));
    NEP_TRY(get_probability(c, "hidden_dropout_prob", 0.1, &cfg->hidden_dropout));
    NEP_TRY(get_probability(c, "attention_probs_dropout_prob", 0.1, &cfg->attention_dropout));
    return get_probability(c, "classifier_dropout", cfg->hidden_dropout, &cfg->classifier_dropout);
}

/* Llama 3's frequency-dependent RoPE scaling; "default" means none, and other kinds
 * (linear, dynamic, yarn, ...) change the positions in ways not implemented. */
static nep_status parse_rope_scaling(const pctx *c, nep_hf_rope_scaling *rs) {
    const cJSON *j = item(c->root, "rope_scaling");
    *rs = (nep_hf_rope_scaling){0};
    if (!j) return NEP_OK;
    if (!cJSON_IsObject(j)) return type_error(c, "rope_scaling", j, "an object or null");
    /* transformers reads rope_type, falling back to the older "type". */
    const char *key = item(j, "rope_type") ? "rope_scaling.rope_type" : "rope_scaling.type";
    const cJSON *t = item(j, "rope_type") ? item(j, "rope_type") : item(j, "type");
    if (!t) return missing(c, "rope_scaling.rope_type");
    if (!cJSON_IsString(t)) return type_error(c, key, t, "a string");
    if (strcmp(t->valuestring, "default") == 0) return NEP_OK;
    static const char *const kinds[] = {"llama3"};
    int unused = 0;
    NEP_TRY(choose(c, key, t->valuestring, kinds, 1, &unused));
    NEP_TRY(get_num_in(c, j, "factor", "rope_scaling.factor", 1, 0, 1, &rs->factor));
    NEP_TRY(get_num_in(c, j, "low_freq_factor", "rope_scaling.low_freq_factor", 1, 0, 1,
                       &rs->low_freq_factor));
    NEP_TRY(get_num_in(c, j, "high_freq_factor", "rope_scaling.high_freq_factor", 1, 0, 1,
                       &rs->high_freq_factor));
    NEP_TRY(get_int_in(c, j, "original_max_position_embeddings",
                       "rope_scaling.original_max_position_embeddings", 1, 0, 1,
                       &rs->original_max_position_embeddings));
    /* The smoothing between the two bands divides by their difference. */
    if (!(rs->high_freq_factor > rs->low_freq_factor))
        return nep_fail(c->err, NEP_ERR_FORMAT,
                        "%s: key 'rope_scaling.high_freq_factor': %g must exceed "
                        "low_freq_factor %g", c->file, rs->high_freq_factor,
                        rs->low_freq_factor);
    rs->present = 1;
    return NEP_OK;
}

static nep_status parse_llama(const pctx *c, nep_hf_config *cfg) {
    NEP_TRY(get_num(c, "rms_norm_eps", 0, 1e-6, &cfg->rms_norm_eps));
    NEP_TRY(get_num(c, "rope_theta", 0, 10000.0, &cfg->rope_theta));
    NEP_TRY(get_bool(c, "attention_bias", 0, &cfg->attention_bias));
    NEP_TRY(get_bool(c, "mlp_bias", 0, &cfg->mlp_bias));
    return parse_rope_scaling(c, &cfg->rope_scaling);
}

/* A token id: an integer in [0, limit). */
static nep_status token_id(const pctx *c, const char *key, const cJSON *j, int64_t limit,
                           int64_t *out) {
    if (json_int(j, out) != 0 || *out < 0)
        return type_error(c, key, j, "a non-negative integer or null");
    if (*out >= limit)
        return nep_fail(c->err, NEP_ERR_FORMAT,
                        "%s: key '%s': value %" PRId64 " is not below vocab_size %" PRId64,
                        c->file, key, *out, limit);
    return NEP_OK;
}

/* Absent -> def, null -> none, else token_id. */
static nep_status get_token(const pctx *c, const char *key, int64_t def, int64_t limit,
                            int64_t *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(c->root, key);
    *out = !j ? def : NEP_HF_NO_TOKEN;
    if (!j || cJSON_IsNull(j)) return NEP_OK;
    return token_id(c, key, j, limit, out);
}

/* eos_token_id may be one id or (Llama 3 instruct) a list of them. */
static nep_status get_eos(const pctx *c, int64_t def, nep_hf_config *cfg) {
    const cJSON *j = item(c->root, "eos_token_id");
    cfg->n_eos_token_ids = 0;
    if (!cJSON_IsArray(j)) {
        NEP_TRY(get_token(c, "eos_token_id", def, INT64_MAX, &cfg->eos_token_id));
        if (cfg->eos_token_id != NEP_HF_NO_TOKEN)
            cfg->eos_token_ids[cfg->n_eos_token_ids++] = cfg->eos_token_id;
        return NEP_OK;
    }
    if (cJSON_GetArraySize(j) > NEP_HF_MAX_EOS)
        return nep_fail(c->err, NEP_ERR_UNSUPPORTED, "%s: key 'eos_token_id': more than %d ids",
                        c->file, NEP_HF_MAX_EOS);
    const cJSON *e;
    cJSON_ArrayForEach(e, j)
        NEP_TRY(token_id(c, "eos_token_id", e, INT64_MAX,
                         &cfg->eos_token_ids[cfg->n_eos_token_ids++]));
    cfg->eos_token_id = cfg->n_eos_token_ids ? cfg->eos_token_ids[0] : NEP_HF_NO_TOKEN;
    return NEP_OK;
}

/* Special tokens with the defaults of each config class. */
static nep_status parse_tokens(const pctx *c, nep_hf_config *cfg) {
    static const int64_t defs[][3] = {/* pad, bos, eos */
        [NEP_HF_BERT] = {0, NEP_HF_NO_TOKEN, NEP_HF_NO_TOKEN},
        [NEP_HF_ROBERTA] = {1, 0, 2},
        [NEP_HF_LLAMA] = {NEP_HF_NO_TOKEN, 1, 2}};
    const int64_t *d = defs[cfg->model_type];
    /* The pad id indexes the embedding table (padding_idx), so it must fit in it; bos
     * and eos ids are only compared with generated tokens. */
    NEP_TRY(get_token(c, "pad_token_id", d[0], cfg->vocab_size, &cfg->pad_token_id));
    NEP_TRY(get_token(c, "bos_token_id", d[1], INT64_MAX, &cfg->bos_token_id));
    return get_eos(c, d[2], cfg);
}

static void free_labels(nep_hf_config *cfg) {
    for (int i = 0; cfg->id2label && i < cfg->num_labels; i++) free(cfg->id2label[i]);
    free(cfg->id2label);
    cfg->id2label = NULL;
}

nep_status nep_hf_config_set_labels(nep_hf_config *cfg, int n, const char *const *names,
                                    nep_err *err) {
    if (n < 1) return nep_fail(err, NEP_ERR_ARG, "config: %d labels, need at least 1", n);
    char **l = calloc((size_t)n, sizeof *l);
    int ok = l != NULL;
    for (int i = 0; ok && i < n; i++) {
        char def[32];
        snprintf(def, sizeof def, "LABEL_%d", i);
        ok = (l[i] = strdup(names && names[i] ? names[i] : def)) != NULL;
    }
    if (!ok) {
        for (int i = 0; l && i < n; i++) free(l[i]);
        free(l);
        return nep_fail(err, NEP_ERR_NOMEM, "config: out of memory for %d labels", n);
    }
    free_labels(cfg);
    cfg->id2label = l;
    cfg->num_labels = n;
    return NEP_OK;
}

/* id2label: {"0": "NEGATIVE", "1": "POSITIVE"}; keys must be 0 .. n-1, each once. */
static nep_status parse_id2label(const pctx *c, const cJSON *j, const char **names, int n) {
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        char *end;
        errno = 0;
        long k = strtol(e->string, &end, 10);
        if (!*e->string || *end || errno || k < 0 || k >= n)
            return nep_fail(c->err, NEP_ERR_FORMAT,
                            "%s: key 'id2label': '%s' is not a label index in 0..%d", c->file,
                            e->string, n - 1);
        if (names[k])
            return nep_fail(c->err, NEP_ERR_FORMAT, "%s: key 'id2label': index %ld twice",
                            c->file, k);
        if (!cJSON_IsString(e)) return type_error(c, "id2label", e, "string label names");
        names[k] = e->valuestring;
    }
    return NEP_OK;
}

/* transformers: id2label decides the count when present; otherwise num_labels, or 2. */
static nep_status parse_labels(const pctx *c, nep_hf_config *cfg) {
    const cJSON *j = item(c->root, "id2label");
    int64_t n;
    NEP_TRY(get_int(c, "num_labels", 0, 2, 1, &n));
    if (j && !cJSON_IsObject(j)) return type_error(c, "id2label", j, "an object");
    int given = j ? cJSON_GetArraySize(j) : 0;
    if (j && item(c->root, "num_labels") && n != given)
        return nep_fail(c->err, NEP_ERR_FORMAT,
                        "%s: key 'num_labels': %" PRId64 " but id2label has %d entries",
                        c->file, n, given);
    if (j && given == 0)
        return nep_fail(c->err, NEP_ERR_FORMAT, "%s: key 'id2label': empty", c->file);
    if (j) n = given;
    if (n > 1000000)
        return nep_fail(c->err, NEP_ERR_FORMAT, "%s: key 'num_labels': %" PRId64
                        " is implausibly large", c->file, n);
    const char **names = calloc((size_t)n, sizeof *names);
    if (!names) return nep_fail(c->err, NEP_ERR_NOMEM, "%s: out of memory", c->file);
    nep_status s = j ? parse_id2label(c, j, names, (int)n) : NEP_OK;
    if (s == NEP_OK) s = nep_hf_config_set_labels(cfg, (int)n, names, c->err);
    free(names);
    return s;
}

/* torch_dtype, or dtype as transformers 4.56+ writes it; the two must agree. */
static nep_status parse_dtype(const pctx *c, nep_hf_config *cfg) {
    static const char *const keys[] = {"torch_dtype", "dtype"};
    for (int k = 0; k < 2; k++) {
        const char *s;
        NEP_TRY(get_str(c, keys[k], &s));
        if (!s) continue;
        const char *names[N_TORCH_DTYPES];
        for (int i = 0; i < N_TORCH_DTYPES; i++) names[i] = torch_dtypes[i].name;
        int i = 0;
        NEP_TRY(choose(c, keys[k], s, names, N_TORCH_DTYPES, &i));
        if (cfg->has_dtype && cfg->dtype != torch_dtypes[i].dt)
            return nep_fail(c->err, NEP_ERR_FORMAT,
                            "%s: keys 'torch_dtype' and 'dtype' disagree", c->file);
        cfg->has_dtype = 1;
        cfg->dtype = torch_dtypes[i].dt;
    }
    return NEP_OK;
}

static nep_status parse_root(const pctx *c, nep_hf_config *cfg) {
    NEP_TRY(parse_model_type(c, cfg));
    NEP_TRY(parse_architecture(c, cfg));
    NEP_TRY(parse_sizes(c, cfg));
    NEP_TRY(parse_act(c, cfg));
    NEP_TRY(get_num(c, "initializer_range", 0, 0.02, &cfg->initializer_range));
    if (cfg->model_type == NEP_HF_LLAMA)
        NEP_TRY(parse_llama(c, cfg));
    else
        NEP_TRY(parse_encoder(c, cfg));
    /* Encoders tie the MLM decoder to the word embeddings by default; Llama does not. */
    NEP_TRY(get_bool(c, "tie_word_embeddings", cfg->model_type != NEP_HF_LLAMA,
                     &cfg->tie_word_embeddings));
    NEP_TRY(parse_tokens(c, cfg));
    NEP_TRY(parse_labels(c, cfg));
    return parse_dtype(c, cfg);
}

nep_status nep_hf_config_parse(const char *text, size_t len, const char *name,
                               nep_hf_config *cfg, nep_err *err) {
    *cfg = (nep_hf_config){0};
    /* JSON has no raw NUL (Python's json.loads refuses it); cJSON would take one inside a
     * string, and the text kept for writing back would end there. */
    const char *nul = memchr(text, 0, len);
    if (nul)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: a NUL byte at byte %td is not JSON", name, nul - text);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: not valid JSON (at byte %td)", name,
                        end ? end - text : (ptrdiff_t)0);
    pctx c = {name, root, err};
    nep_status s = NEP_OK;
    if (!cJSON_IsObject(root))
        s = nep_fail(err, NEP_ERR_FORMAT, "%s: not a JSON object", name);
    else
        s = parse_root(&c, cfg);
    if (s == NEP_OK && !(cfg->json = strndup(text, len)))
        s = nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", name);
    cJSON_Delete(root);
    if (s != NEP_OK) nep_hf_config_free(cfg);
    return s;
}

/* The whole file; "<dir>/config.json" when path is a folder. */
static nep_status slurp(const char *path, char **file, char **text, size_t *len,
                        nep_err *err) {
    struct stat sb;
    int is_dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    size_t n = strlen(path) + sizeof "/config.json";
    if (!(*file = malloc(n))) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    snprintf(*file, n, is_dir ? "%s/config.json" : "%s", path);
    return nep_read_file(*file, MAX_CONFIG_BYTES, text, len, err);
}

nep_status nep_hf_config_read(const char *path, nep_hf_config *cfg, nep_err *err) {
    *cfg = (nep_hf_config){0};
    char *file = NULL, *text = NULL;
    size_t len = 0;
    nep_status s = slurp(path, &file, &text, &len, err);
    if (s == NEP_OK) s = nep_hf_config_parse(text, len, file, cfg, err);
    free(text);
    free(file);
    return s;
}

void nep_hf_config_free(nep_hf_config *cfg) {
    if (!cfg) return;
    free_labels(cfg);
    free(cfg->json);
    *cfg = (nep_hf_config){0};
}

/* ---- writer ------------------------------------------------------------------------ */

/* Replaces key in obj by v (every earlier copy: cJSON keeps repeated keys); takes v,
 * NULL v only deletes. Returns -1 when v could not be made. */
static int put(cJSON *obj, const char *key, cJSON *v, int made) {
    while (cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    if (!made) return 0;
    if (!v || !cJSON_AddItemToObject(obj, key, v)) {
        cJSON_Delete(v);
        return -1;
    }
    return 0;
}

/* Integers go out as raw text: cJSON would print large ones with an exponent. */
static cJSON *raw_int(int64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%" PRId64, v);
    return cJSON_CreateRaw(b);
}

static cJSON *token_json(int64_t id) {
    return id == NEP_HF_NO_TOKEN ? cJSON_CreateNull() : raw_int(id);
}

static int put_int(cJSON *o, const char *k, int64_t v) { return put(o, k, raw_int(v), 1); }
static int put_num(cJSON *o, const char *k, double v) {
    return put(o, k, cJSON_CreateNumber(v), 1);
}
static int put_bool(cJSON *o, const char *k, int v) { return put(o, k, cJSON_CreateBool(v), 1); }
static int put_str(cJSON *o, const char *k, const char *v) {
    return put(o, k, cJSON_CreateString(v), 1);
}

static cJSON *rope_json(const nep_hf_rope_scaling *rs) {
    if (!rs->present) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    if (o && (put_str(o, "rope_type", "llama3") || put_num(o, "factor", rs->factor) ||
              put_num(o, "low_freq_factor", rs->low_freq_factor) ||
              put_num(o, "high_freq_factor", rs->high_freq_factor) ||
              put_int(o, "original_max_position_embeddings",
                      rs->original_max_position_embeddings))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* id2label and label2id as save_pretrained writes them; num_labels is implied. */
static int put_labels(cJSON *root, const nep_hf_config *cfg) {
    cJSON *i2l = cJSON_CreateObject(), *l2i = cJSON_CreateObject();
    int bad = !i2l || !l2i;
    for (int i = 0; !bad && i < cfg->num_labels; i++) {
        char k[24], def[32];
        snprintf(k, sizeof k, "%d", i);
        snprintf(def, sizeof def, "LABEL_%d", i);
        const char *name = cfg->id2label ? cfg->id2label[i] : def;
        bad = put_str(i2l, k, name) || put_int(l2i, name, i);
    }
    if (bad) {
        cJSON_Delete(i2l);
        cJSON_Delete(l2i);
        return -1;
    }
    return put(root, "id2label", i2l, 1) || put(root, "label2id", l2i, 1) ||
           put(root, "num_labels", NULL, 0);
}

static cJSON *eos_json(const nep_hf_config *cfg) {
    if (cfg->n_eos_token_ids <= 1) return token_json(cfg->eos_token_id);
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < cfg->n_eos_token_ids; i++)
        if (!cJSON_AddItemToArray(a, raw_int(cfg->eos_token_ids[i]))) {
            cJSON_Delete(a);
            return NULL;
        }
    return a;
}

static cJSON *arch_json(const nep_hf_config *cfg) {
    cJSON *a = cJSON_CreateArray(), *n = cJSON_CreateString(cfg->architecture);
    if (!a || !n || !cJSON_AddItemToArray(a, n)) {
        cJSON_Delete(a);
        cJSON_Delete(n);
        return NULL;
    }
    return a;
}

static int put_common(cJSON *root, const nep_hf_config *cfg) {
    int has_arch = cfg->architecture[0] != 0;
    return put(root, "architectures", has_arch ? arch_json(cfg) : NULL, has_arch) ||
           put_str(root, "model_type", model_types[cfg->model_type]) ||
           put_int(root, "hidden_size", cfg->hidden_size) ||
           put_int(root, "num_hidden_layers", cfg->num_hidden_layers) ||
           put_int(root, "num_attention_heads", cfg->num_attention_heads) ||
           put_int(root, "intermediate_size", cfg->intermediate_size) ||
           put_str(root, "hidden_act", acts[cfg->hidden_act]) ||
           put_int(root, "max_position_embeddings", cfg->max_position_embeddings) ||
           put_int(root, "vocab_size", cfg->vocab_size) ||
           put_bool(root, "tie_word_embeddings", cfg->tie_word_embeddings) ||
           put(root, "pad_token_id", token_json(cfg->pad_token_id), 1) ||
           put(root, "bos_token_id", token_json(cfg->bos_token_id), 1) ||
           put(root, "eos_token_id", eos_json(cfg), 1) || put_labels(root, cfg) ||
           /* transformers 4.56+ reads either key; one copy cannot disagree with itself */
           put(root, "dtype", NULL, 0) ||
           put(root, "torch_dtype",
               cfg->has_dtype ? cJSON_CreateString(torch_dtype_name(cfg->dtype)) : NULL,
               cfg->has_dtype);
}

static int put_model(cJSON *root, const nep_hf_config *cfg) {
    if (cfg->model_type != NEP_HF_LLAMA)
        return put_int(root, "type_vocab_size", cfg->type_vocab_size) ||
               put_num(root, "layer_norm_eps", cfg->layer_norm_eps) ||
               put_str(root, "position_embedding_type", "absolute");
    return put_int(root, "num_key_value_heads", cfg->num_key_value_heads) ||
           put_int(root, "head_dim", cfg->head_dim) ||
           put_num(root, "rms_norm_eps", cfg->rms_norm_eps) ||
           put_num(root, "rope_theta", cfg->rope_theta) ||
           put(root, "rope_scaling", rope_json(&cfg->rope_scaling), 1) ||
           put_bool(root, "attention_bias", cfg->attention_bias) ||
           put_bool(root, "mlp_bias", cfg->mlp_bias);
}

/* What the reader would refuse, caught before anything is written. */
static nep_status check_writable(const nep_hf_config *cfg, const char *path, nep_err *err) {
    if ((unsigned)cfg->model_type >= (unsigned)N_MODEL_TYPES ||
        (unsigned)cfg->hidden_act >= (unsigned)N_ACTS)
        return nep_fail(err, NEP_ERR_ARG, "%s: config has an unknown model_type or hidden_act",
                        path);
    if (cfg->num_labels < 1 || (cfg->has_dtype && !torch_dtype_name(cfg->dtype)))
        return nep_fail(err, NEP_ERR_ARG, "%s: config has %d labels or a bad dtype", path,
                        cfg->num_labels);
    if (cfg->n_eos_token_ids < 0 || cfg->n_eos_token_ids > NEP_HF_MAX_EOS)
        return nep_fail(err, NEP_ERR_ARG, "%s: config has %d eos ids", path,
                        cfg->n_eos_token_ids);
    return NEP_OK;
}

static int write_text(void *ctx, FILE *f) {
    const char *text = ctx;
    return fputs(text, f) < 0 || fputc('\n', f) == EOF ? (errno ? errno : EIO) : 0;
}

nep_status nep_hf_config_write(const nep_hf_config *cfg, const char *path, nep_err *err) {
    NEP_TRY(check_writable(cfg, path, err));
    cJSON *root = cfg->json ? cJSON_Parse(cfg->json) : cJSON_CreateObject();
    if (cfg->json && !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return nep_fail(err, NEP_ERR_ARG, "%s: config's kept JSON is not an object", path);
    }
    int bad = !root || put_common(root, cfg) || put_model(root, cfg);
    char *text = bad ? NULL : cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    nep_status s = nep_write_atomic(path, write_text, text, err);
    cJSON_free(text);
    return s;
}
