/* tokenizer.json, the single file `tokenizers` saves: the model (WordPiece or BPE with
 * its vocabulary and merges), normalizer, pre_tokenizer, added_tokens, post_processor,
 * truncation and padding. Only what BERT, RoBERTa, GPT-2 and Llama 3 style files use is
 * read; any other component type is refused naming its key, so that such a file fails at
 * load rather than tokenizing differently from Hugging Face's library. The decoder
 * (ByteLevel, WordPiece or a Sequence of them) is read for nep_tokenizer_decode; one of
 * another type does not stop the file from opening, since encoding never uses it: decode
 * refuses it instead, naming it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "data/tokenizer_impl.h"

/* A JSON object {token: id} into v (vocab.json, model.vocab). */
nep_status nep_tok_json_vocab(const cJSON *o, const char *where, nep_vocab *v, nep_err *err) {
    if (!cJSON_IsObject(o)) return nep_fail(err, NEP_ERR_FORMAT, "%s is not a JSON object", where);
    for (const cJSON *e = o->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 2147483647.0 ||
            e->valuedouble != (double)(int32_t)e->valuedouble)
            return nep_fail(err, NEP_ERR_FORMAT, "%s: the id of '%s' is not a non-negative integer",
                            where, e->string);
        nep_err e2;
        if (nep_vocab_add(v, e->string, strlen(e->string), (int32_t)e->valuedouble, &e2) != NEP_OK)
            return nep_fail(err, e2.status, "%s: %s", where, e2.msg);
    }
    return NEP_OK;
}

typedef struct json_ctx {
    const char *path;
    nep_err *err;
} json_ctx;

static nep_status bad_key(const json_ctx *c, const char *key, const char *why) {
    return nep_fail(c->err, NEP_ERR_FORMAT, "%s: key \"%s\": %s", c->path, key, why);
}
static nep_status unsupported(const json_ctx *c, const char *key, const char *value) {
    return nep_fail(c->err, NEP_ERR_UNSUPPORTED,
                    "%s: key \"%s\": \"%s\" is not supported (WordPiece with BertNormalizer and "
                    "BertPreTokenizer, or BPE with ByteLevel, as BERT, RoBERTa and GPT-2 use, or "
                    "with Llama 3's Split and ByteLevel)",
                    c->path, key, value);
}

/* Optional boolean o[name] (absent or null: dflt). */
static nep_status get_bool(const json_ctx *c, const cJSON *o, const char *name, const char *key,
                           bool dflt, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) *out = dflt;
    else if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v);
    else return bad_key(c, key, "not a boolean");
    return NEP_OK;
}

/* Optional integer o[name] in [lo, hi] (absent or null: dflt). */
static nep_status get_int(const json_ctx *c, const cJSON *o, const char *name, const char *key,
                          int64_t lo, int64_t hi, int64_t dflt, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return NEP_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return bad_key(c, key, "not an integer in range");
    *out = (int64_t)v->valuedouble;
    return NEP_OK;
}

/* The "type" of component o (NULL when o is null or absent). */
static nep_status component_type(const json_ctx *c, const cJSON *o, const char *key,
                                 const char **type) {
    *type = NULL;
    if (!o || cJSON_IsNull(o)) return NEP_OK;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (!cJSON_IsObject(o) || !cJSON_IsString(ty)) return bad_key(c, key, "no \"type\" string");
    *type = ty->valuestring;
    return NEP_OK;
}

static nep_status json_normalizer(const json_ctx *c, const cJSON *o, nep_tokenizer *t) {
    const char *type;
    NEP_TRY(component_type(c, o, "normalizer", &type));
    if (!type) return NEP_OK;
    if (strcmp(type, "BertNormalizer") != 0) return unsupported(c, "normalizer.type", type);
    t->has_bert_norm = true;
    NEP_TRY(get_bool(c, o, "clean_text", "normalizer.clean_text", true, &t->norm.clean_text));
    NEP_TRY(get_bool(c, o, "handle_chinese_chars", "normalizer.handle_chinese_chars", true,
                     &t->norm.handle_chinese_chars));
    NEP_TRY(get_bool(c, o, "lowercase", "normalizer.lowercase", true, &t->norm.lowercase));
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "strip_accents");
    if (!s || cJSON_IsNull(s)) t->norm.strip_accents = -1; /* follow lowercase */
    else if (cJSON_IsBool(s)) t->norm.strip_accents = cJSON_IsTrue(s);
    else return bad_key(c, "normalizer.strip_accents", "not a boolean or null");
    return NEP_OK;
}

/* A ByteLevel pre-tokenizer at key (its add_prefix_space); use_regex must be as asked:
 * true alone (GPT-2's regex), false after Llama 3's Split. */
static nep_status json_byte_level(const json_ctx *c, const cJSON *o, const char *key,
                                  bool want_regex, nep_tokenizer *t) {
    char k[96];
    bool use_regex = true;
    snprintf(k, sizeof k, "%s.add_prefix_space", key);
    NEP_TRY(get_bool(c, o, "add_prefix_space", k, true, &t->bpe.add_prefix_space));
    snprintf(k, sizeof k, "%s.use_regex", key);
    NEP_TRY(get_bool(c, o, "use_regex", k, true, &use_regex));
    if (use_regex != want_regex) return unsupported(c, k, use_regex ? "true" : "false");
    return NEP_OK;
}

/* Llama 3's Split: its regex exactly, behavior Isolated, not inverted. */
static nep_status json_split(const json_ctx *c, const cJSON *o, nep_tokenizer *t) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(o, "behavior");
    if (!cJSON_IsObject(pat)) return bad_key(c, "pre_tokenizer.pretokenizers[0].pattern", "not an object");
    if (!re) return unsupported(c, "pre_tokenizer.pretokenizers[0].pattern",
                                cJSON_GetObjectItemCaseSensitive(pat, "String") ? "String" : "a non-Regex pattern");
    if (!cJSON_IsString(re)) return bad_key(c, "pre_tokenizer.pretokenizers[0].pattern.Regex", "not a string");
    if (strcmp(re->valuestring, NEP_LLAMA3_PATTERN) != 0)
        return nep_fail(c->err, NEP_ERR_UNSUPPORTED,
                        "%s: key \"pre_tokenizer.pretokenizers[0].pattern.Regex\": the regex \"%.200s\" is "
                        "not supported (a Split pre-tokenizer must use Llama 3's regex, \"%s\", which is "
                        "implemented by hand; no regex engine is built in)",
                        c->path, re->valuestring, NEP_LLAMA3_PATTERN);
    if (!cJSON_IsString(beh)) return bad_key(c, "pre_tokenizer.pretokenizers[0].behavior", "not a string");
    if (strcmp(beh->valuestring, "Isolated") != 0)
        return unsupported(c, "pre_tokenizer.pretokenizers[0].behavior", beh->valuestring);
    bool invert = false;
    NEP_TRY(get_bool(c, o, "invert", "pre_tokenizer.pretokenizers[0].invert", false, &invert));
    if (invert) return unsupported(c, "pre_tokenizer.pretokenizers[0].invert", "true");
    t->bpe.llama3_split = true;
    return NEP_OK;
}

/* Llama 3's Sequence: [Split(its regex, Isolated), ByteLevel(use_regex false)]. */
static nep_status json_pre_sequence(const json_ctx *c, const cJSON *o, nep_tokenizer *t) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers");
    if (!cJSON_IsArray(list)) return bad_key(c, "pre_tokenizer.pretokenizers", "not an array");
    if (cJSON_GetArraySize(list) != 2)
        return unsupported(c, "pre_tokenizer.pretokenizers",
                           "a Sequence other than [Split, ByteLevel] (Llama 3's)");
    const char *t0, *t1;
    const cJSON *p0 = cJSON_GetArrayItem(list, 0), *p1 = cJSON_GetArrayItem(list, 1);
    NEP_TRY(component_type(c, p0, "pre_tokenizer.pretokenizers[0]", &t0));
    NEP_TRY(component_type(c, p1, "pre_tokenizer.pretokenizers[1]", &t1));
    if (!t0 || strcmp(t0, "Split") != 0)
        return unsupported(c, "pre_tokenizer.pretokenizers[0].type", t0 ? t0 : "null");
    if (!t1 || strcmp(t1, "ByteLevel") != 0)
        return unsupported(c, "pre_tokenizer.pretokenizers[1].type", t1 ? t1 : "null");
    NEP_TRY(json_split(c, p0, t));
    return json_byte_level(c, p1, "pre_tokenizer.pretokenizers[1]", false, t);
}

static nep_status json_pre_tokenizer(const json_ctx *c, const cJSON *o, nep_tokenizer *t) {
    const char *type;
    NEP_TRY(component_type(c, o, "pre_tokenizer", &type));
    if (!type) return unsupported(c, "pre_tokenizer", "null");
    if (t->model == NEP_TOK_WORDPIECE) {
        if (strcmp(type, "BertPreTokenizer") != 0) return unsupported(c, "pre_tokenizer.type", type);
        return NEP_OK;
    }
    if (strcmp(type, "Sequence") == 0) return json_pre_sequence(c, o, t);
    if (strcmp(type, "ByteLevel") != 0) return unsupported(c, "pre_tokenizer.type", type);
    return json_byte_level(c, o, "pre_tokenizer", true, t);
}

static nep_status json_wordpiece(const json_ctx *c, const cJSON *m, nep_tokenizer *t) {
    NEP_TRY(nep_tok_json_vocab(cJSON_GetObjectItemCaseSensitive(m, "vocab"), "model.vocab", &t->wp.vocab, c->err));
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(m, "unk_token");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(m, "continuing_subword_prefix");
    if (!cJSON_IsString(unk)) return bad_key(c, "model.unk_token", "not a string");
    t->wp.unk_id = nep_vocab_find(&t->wp.vocab, unk->valuestring, strlen(unk->valuestring));
    if (t->wp.unk_id < 0) return bad_key(c, "model.unk_token", "not in the vocabulary");
    const char *prefix = cJSON_IsString(pre) ? pre->valuestring : "##";
    if (strlen(prefix) >= sizeof t->wp.prefix)
        return bad_key(c, "model.continuing_subword_prefix", "longer than 15 bytes");
    strcpy(t->wp.prefix, prefix);
    return get_int(c, m, "max_input_chars_per_word", "model.max_input_chars_per_word", 0,
                   INT32_MAX, 100, &t->wp.max_input_chars_per_word);
}

/* tokenizer.json's merges: "a b" strings (older files) or ["a", "b"] pairs. */
static nep_status json_merges(const json_ctx *c, const cJSON *ms, nep_bpe *b) {
    if (!cJSON_IsArray(ms)) return bad_key(c, "model.merges", "not an array");
    int64_t rank = 0;
    char where[1200];
    for (const cJSON *e = ms->child; e; e = e->next, rank++) {
        snprintf(where, sizeof where, "%s: model.merges[%lld]", c->path, (long long)rank);
        if (cJSON_IsString(e)) {
            NEP_TRY(nep_bpe_add_merge_line(b, e->valuestring, strlen(e->valuestring), rank, where, c->err));
            continue;
        }
        const cJSON *x = cJSON_GetArrayItem(e, 0), *y = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(x) || !cJSON_IsString(y))
            return nep_fail(c->err, NEP_ERR_FORMAT, "%s: not a string or a pair of strings", where);
        NEP_TRY(nep_bpe_add_merge(b, x->valuestring, y->valuestring, rank, where, c->err));
    }
    return NEP_OK;
}

static nep_status json_bpe(const json_ctx *c, const cJSON *m, nep_tokenizer *t) {
    static const char *const off[] = {"dropout", "continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, off[i]);
        char key[64];
        snprintf(key, sizeof key, "model.%s", off[i]);
        if (v && !cJSON_IsNull(v)) return unsupported(c, key, "a value other than null");
    }
    bool byte_fallback = false;
    NEP_TRY(get_bool(c, m, "byte_fallback", "model.byte_fallback", false, &byte_fallback));
    if (byte_fallback) return unsupported(c, "model.byte_fallback", "true");
    NEP_TRY(get_bool(c, m, "ignore_merges", "model.ignore_merges", false, &t->bpe.ignore_merges));
    NEP_TRY(nep_tok_json_vocab(cJSON_GetObjectItemCaseSensitive(m, "vocab"), "model.vocab", &t->bpe.vocab, c->err));
    NEP_TRY(json_merges(c, cJSON_GetObjectItemCaseSensitive(m, "merges"), &t->bpe));
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(m, "unk_token");
    if (cJSON_IsString(unk)) {
        t->bpe.unk_id = nep_vocab_find(&t->bpe.vocab, unk->valuestring, strlen(unk->valuestring));
        if (t->bpe.unk_id < 0) return bad_key(c, "model.unk_token", "not in the vocabulary");
    }
    nep_bpe_finish(&t->bpe);
    return NEP_OK;
}

static nep_status json_model(const json_ctx *c, const cJSON *m, nep_tokenizer *t) {
    const char *type;
    NEP_TRY(component_type(c, m, "model", &type));
    if (!type) return bad_key(c, "model", "missing");
    if (strcmp(type, "WordPiece") == 0) {
        t->model = NEP_TOK_WORDPIECE;
        return json_wordpiece(c, m, t);
    }
    if (strcmp(type, "BPE") == 0) {
        t->model = NEP_TOK_BPE;
        return json_bpe(c, m, t);
    }
    return unsupported(c, "model.type", type);
}

/* The id `tokenizers` (0.21) gives an added token when it reads tokenizer.json: the file's
 * "id" is not used (only warned about when it differs). A content added before keeps its
 * id; one in the model's vocabulary takes the model's id; any other takes the next free
 * id, one past the largest id given to an added token so far when that is not below the
 * model's vocabulary size (its number of entries), else that size. For files whose ids
 * follow the vocabulary (Llama 3's 128000 tokens, then 256 added ones) this is the
 * file's id. *max_id: the largest id given so far (-1 at first). */
static int64_t added_token_id(const nep_tokenizer *t, const char *content, int64_t *max_id) {
    for (int64_t k = 0; k < t->n_added; k++)
        if (strcmp(t->added[k].content, content) == 0) return t->added[k].id;
    const nep_vocab *v = t->model == NEP_TOK_WORDPIECE ? &t->wp.vocab : &t->bpe.vocab;
    int64_t id = nep_vocab_find(v, content, strlen(content));
    if (id < 0) id = *max_id >= v->n ? *max_id + 1 : v->n;
    if (id > *max_id) *max_id = id;
    return id;
}

static nep_status json_added_tokens(const json_ctx *c, const cJSON *a, nep_tokenizer *t) {
    if (!a || cJSON_IsNull(a)) return NEP_OK;
    if (!cJSON_IsArray(a)) return bad_key(c, "added_tokens", "not an array");
    int64_t i = 0, max_id = -1;
    char key[64];
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        snprintf(key, sizeof key, "added_tokens[%lld]", (long long)i);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsString(content)) return bad_key(c, key, "no \"content\" string");
        nep_added_token tk = {content->valuestring};
        int64_t id = -1;
        NEP_TRY(get_int(c, e, "id", key, 0, INT32_MAX, -1, &id));
        if (id < 0) return bad_key(c, key, "no \"id\"");
        if (!content->valuestring[0]) continue; /* tokenizers skips an empty one */
        id = added_token_id(t, content->valuestring, &max_id);
        if (id > INT32_MAX) return bad_key(c, key, "its id (the next after the largest) is past 2^31 - 1");
        tk.id = (int32_t)id;
        NEP_TRY(get_bool(c, e, "single_word", key, false, &tk.single_word));
        NEP_TRY(get_bool(c, e, "lstrip", key, false, &tk.lstrip));
        NEP_TRY(get_bool(c, e, "rstrip", key, false, &tk.rstrip));
        NEP_TRY(get_bool(c, e, "special", key, false, &tk.special));
        NEP_TRY(get_bool(c, e, "normalized", key, !tk.special, &tk.normalized));
        NEP_TRY(nep_tok_add_token(t, &tk, c->path, c->err));
    }
    return NEP_OK;
}

/* A [token, id] pair of BertProcessing / RobertaProcessing. */
static nep_status json_token_pair(const json_ctx *c, const cJSON *p, const char *key, int32_t *id) {
    const cJSON *v = cJSON_GetArrayItem(p, 1);
    if (!cJSON_IsArray(p) || !cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > INT32_MAX)
        return bad_key(c, key, "not a [token, id] pair");
    *id = (int32_t)v->valuedouble;
    return NEP_OK;
}

/* One piece of a TemplateProcessing template into it. */
static nep_status json_tpl_item(const json_ctx *c, const cJSON *e, const cJSON *specials,
                                const char *key, nep_tpl_item *it) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
    const cJSON *body = s ? s : q;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "id");
    int64_t type_id = 0;
    if (!body || !cJSON_IsString(id)) return bad_key(c, key, "not a SpecialToken or Sequence with an id");
    NEP_TRY(get_int(c, body, "type_id", key, 0, INT32_MAX, 0, &type_id));
    it->type_id = (int32_t)type_id;
    if (q) {
        if (strcmp(id->valuestring, "A") && strcmp(id->valuestring, "B"))
            return bad_key(c, key, "a Sequence id must be A or B");
        it->seq = id->valuestring[0] == 'B';
        it->nids = 0;
        return NEP_OK;
    }
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(specials, id->valuestring);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(sp, "ids");
    int n = cJSON_GetArraySize(ids);
    if (!cJSON_IsArray(ids) || n < 1 || n > 4)
        return bad_key(c, key, "its special token is not in special_tokens with 1 to 4 ids");
    it->seq = -1;
    it->nids = n;
    for (int k = 0; k < n; k++) {
        const cJSON *v = cJSON_GetArrayItem(ids, k);
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > INT32_MAX)
            return bad_key(c, key, "a special token id is not a non-negative integer");
        it->ids[k] = (int32_t)v->valuedouble;
    }
    return NEP_OK;
}

static nep_status json_template(const json_ctx *c, const cJSON *o, const char *at,
                                const char *name, nep_tpl_item *items, int *n) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, name);
    char key[128];
    snprintf(key, sizeof key, "%s.%s", at, name);
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > NEP_TPL_MAX)
        return bad_key(c, key, "not an array of at most 8 pieces");
    *n = 0;
    for (const cJSON *e = list->child; e; e = e->next, (*n)++) {
        snprintf(key, sizeof key, "%s.%s[%d]", at, name, *n);
        NEP_TRY(json_tpl_item(c, e, cJSON_GetObjectItemCaseSensitive(o, "special_tokens"), key, &items[*n]));
    }
    return NEP_OK;
}

/* One post-processor at key (`post_processor`, or an element of a Sequence's
 * processors); *templated says whether one already set the templates. */
static nep_status json_one_processor(const json_ctx *c, const cJSON *o, const char *key,
                                     bool *templated, nep_tokenizer *t) {
    const char *type;
    char k[96];
    NEP_TRY(component_type(c, o, key, &type));
    if (!type || strcmp(type, "ByteLevel") == 0) return NEP_OK; /* offsets only: no ids */
    snprintf(k, sizeof k, "%s.type", key);
    bool tpl = strcmp(type, "TemplateProcessing") == 0, bert = strcmp(type, "BertProcessing") == 0;
    if (!tpl && !bert && strcmp(type, "RobertaProcessing") != 0) return unsupported(c, k, type);
    if (*templated) return unsupported(c, k, "a second processor that adds special tokens");
    *templated = true;
    if (tpl) {
        NEP_TRY(json_template(c, o, key, "single", t->single, &t->n_single));
        return json_template(c, o, key, "pair", t->pair, &t->n_pair);
    }
    int32_t cls = 0, sep = 0;
    snprintf(k, sizeof k, "%s.cls", key);
    NEP_TRY(json_token_pair(c, cJSON_GetObjectItemCaseSensitive(o, "cls"), k, &cls));
    snprintf(k, sizeof k, "%s.sep", key);
    NEP_TRY(json_token_pair(c, cJSON_GetObjectItemCaseSensitive(o, "sep"), k, &sep));
    nep_tok_set_template(t, cls, sep, !bert);
    return NEP_OK;
}

/* The post-processor, or a Sequence of them (Llama 3's: ByteLevel, then
 * TemplateProcessing with <|begin_of_text|>), applied in order. */
static nep_status json_post_processor(const json_ctx *c, const cJSON *o, nep_tokenizer *t) {
    const char *type;
    bool templated = false;
    NEP_TRY(component_type(c, o, "post_processor", &type));
    if (!type || strcmp(type, "Sequence") != 0)
        return json_one_processor(c, o, "post_processor", &templated, t);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "processors");
    if (!cJSON_IsArray(list)) return bad_key(c, "post_processor.processors", "not an array");
    int i = 0;
    char key[64];
    for (const cJSON *e = list->child; e; e = e->next, i++) {
        snprintf(key, sizeof key, "post_processor.processors[%d]", i);
        NEP_TRY(json_one_processor(c, e, key, &templated, t));
    }
    return NEP_OK;
}

/* truncation and padding: kept as the defaults nep_tokenizer_default_opts returns. */
static nep_status json_limits(const json_ctx *c, const cJSON *root, nep_tokenizer *t) {
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(root, "truncation");
    if (tr && !cJSON_IsNull(tr)) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(tr, "strategy");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(tr, "direction");
        if (cJSON_IsString(s) && strcmp(s->valuestring, "LongestFirst"))
            return unsupported(c, "truncation.strategy", s->valuestring);
        if (cJSON_IsString(d) && strcmp(d->valuestring, "Right"))
            return unsupported(c, "truncation.direction", d->valuestring);
        NEP_TRY(get_int(c, tr, "max_length", "truncation.max_length", 1, INT32_MAX, 0, &t->file_max_length));
    }
    const cJSON *pd = cJSON_GetObjectItemCaseSensitive(root, "padding");
    if (!pd || cJSON_IsNull(pd)) return NEP_OK;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(pd, "direction");
    if (cJSON_IsString(d) && strcmp(d->valuestring, "Right")) return unsupported(c, "padding.direction", d->valuestring);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(pd, "pad_to_multiple_of");
    if (m && !cJSON_IsNull(m)) return unsupported(c, "padding.pad_to_multiple_of", "a number");
    const cJSON *fixed = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pd, "strategy"), "Fixed");
    if (fixed && (!cJSON_IsNumber(fixed) || fixed->valuedouble < 1 || fixed->valuedouble > INT32_MAX))
        return bad_key(c, "padding.strategy.Fixed", "not a positive integer");
    t->file_pad_length = fixed ? (int64_t)fixed->valuedouble : 0; /* BatchLongest: a lone text is not padded */
    int64_t v = 0;
    NEP_TRY(get_int(c, pd, "pad_id", "padding.pad_id", 0, INT32_MAX, -1, &v));
    t->pad_id = (int32_t)v;
    NEP_TRY(get_int(c, pd, "pad_type_id", "padding.pad_type_id", 0, INT32_MAX, 0, &v));
    t->pad_type_id = (int32_t)v;
    return NEP_OK;
}

/* Keeps the first decoder this code cannot run as the message decode fails with. */
static nep_status refuse_decoder(const json_ctx *c, nep_tokenizer *t, const char *key,
                                 const char *what) {
    if (t->dec_refusal) return NEP_OK;
    char m[1536];
    snprintf(m, sizeof m,
             "%s: key \"%s\": %s is not supported for decoding (ByteLevel, WordPiece, or a "
             "Sequence of them)", c->path, key, what);
    t->dec_refusal = strdup(m);
    if (!t->dec_refusal) return nep_fail(c->err, NEP_ERR_NOMEM, "%s: out of memory", c->path);
    return NEP_OK;
}

/* WordPiece's prefix and cleanup. Missing ones take the Rust defaults ("##", true), where
 * tokenizers refuses the file. */
static nep_status json_wordpiece_decoder(const json_ctx *c, const cJSON *o, const char *key,
                                         nep_tokenizer *t, nep_dec_step *d) {
    char k[128];
    snprintf(k, sizeof k, "%s.cleanup", key);
    NEP_TRY(get_bool(c, o, "cleanup", k, true, &d->cleanup));
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(o, "prefix");
    snprintf(k, sizeof k, "%s.prefix", key);
    if (pre && !cJSON_IsString(pre)) return bad_key(c, k, "not a string");
    const char *prefix = pre ? pre->valuestring : "##";
    if (strlen(prefix) >= sizeof d->prefix) return refuse_decoder(c, t, k, "a prefix longer than 15 bytes");
    strcpy(d->prefix, prefix);
    return NEP_OK;
}

/* The decoder at key, appended to t->dec; a Sequence's decoders are appended in turn,
 * which is what running it does. */
static nep_status json_decoder_at(const json_ctx *c, const cJSON *o, const char *key,
                                  nep_tokenizer *t) {
    const char *type;
    char k[128];
    NEP_TRY(component_type(c, o, key, &type));
    snprintf(k, sizeof k, "%s.type", key);
    if (!type) return refuse_decoder(c, t, key, "null inside a Sequence");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "decoders");
        snprintf(k, sizeof k, "%s.decoders", key);
        if (!cJSON_IsArray(list)) return bad_key(c, k, "not an array");
        int i = 0;
        for (const cJSON *e = list->child; e; e = e->next, i++) {
            snprintf(k, sizeof k, "%s.decoders[%d]", key, i);
            NEP_TRY(json_decoder_at(c, e, k, t));
        }
        return NEP_OK;
    }
    bool wordpiece = strcmp(type, "WordPiece") == 0;
    if (!wordpiece && strcmp(type, "ByteLevel") != 0) {
        char what[160];
        snprintf(what, sizeof what, "\"%.100s\"", type);
        return refuse_decoder(c, t, k, what);
    }
    if (t->n_dec == NEP_DEC_MAX) return refuse_decoder(c, t, key, "a decoder past the 8th");
    nep_dec_step *d = &t->dec[t->n_dec++];
    *d = (nep_dec_step){wordpiece ? NEP_DEC_WORDPIECE : NEP_DEC_BYTE_LEVEL};
    /* ByteLevel's options (add_prefix_space, trim_offsets, use_regex) do not touch decoding */
    return wordpiece ? json_wordpiece_decoder(c, o, key, t, d) : NEP_OK;
}

static nep_status json_decoder(const json_ctx *c, const cJSON *o, nep_tokenizer *t) {
    t->has_decoder = o && !cJSON_IsNull(o);
    return t->has_decoder ? json_decoder_at(c, o, "decoder", t) : NEP_OK;
}

static nep_status json_tokenizer(const json_ctx *c, const cJSON *root, nep_tokenizer *t) {
    if (!cJSON_IsObject(root)) return nep_fail(c->err, NEP_ERR_FORMAT, "%s: not a JSON object", c->path);
    NEP_TRY(json_model(c, cJSON_GetObjectItemCaseSensitive(root, "model"), t));
    NEP_TRY(json_normalizer(c, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), t));
    if (t->has_bert_norm && t->model == NEP_TOK_BPE) return unsupported(c, "normalizer.type", "BertNormalizer with BPE");
    NEP_TRY(json_pre_tokenizer(c, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), t));
    NEP_TRY(json_added_tokens(c, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), t));
    NEP_TRY(json_post_processor(c, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), t));
    NEP_TRY(json_limits(c, root, t));
    NEP_TRY(json_decoder(c, cJSON_GetObjectItemCaseSensitive(root, "decoder"), t));
    nep_tok_default_pad(t);
    return NEP_OK;
}

nep_status nep_tok_load_json(const char *path, nep_tokenizer *t, nep_err *err) {
    char *d;
    size_t n;
    NEP_TRY(nep_tok_read_text(path, &d, &n, err));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(d, n, &end, false);
    nep_status st;
    if (!root) {
        st = nep_fail(err, NEP_ERR_FORMAT, "%s: malformed JSON near byte %td", path,
                      end && end >= d ? end - d : (ptrdiff_t)0);
    } else {
        json_ctx c = {path, err};
        st = json_tokenizer(&c, root, t);
    }
    cJSON_Delete(root);
    free(d);
    return st;
}
