/* Opening a tokenizer: which file a path means, the plain vocabulary files (vocab.txt;
 * vocab.json + merges.txt) with the special tokens and post-processor the Python classes
 * give them (BertWordPieceTokenizer, ByteLevelBPETokenizer with RobertaProcessing), and
 * what tokenizer.json's reader shares (reading text files, added tokens, templates, the
 * pad id). tokenizer.json itself is tokenizer_json.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "data/tokenizer_impl.h"
#include "nepenthe/file.h"

/* ---- reading files ----------------------------------------------------------------- */

/* A tokenizer file (tokenizer.json of a large vocabulary is tens of MB). */
#define TOKENIZER_MAX_BYTES ((size_t)1 << 30)
static nep_status read_file(const char *path, char **data, size_t *n, nep_err *err) {
    return nep_read_file(path, TOKENIZER_MAX_BYTES, data, n, err);
}

nep_status nep_utf8_check(const char *s, size_t n, const char *what, nep_err *err) {
    int64_t at = nep_utf8_invalid_at(s, n);
    if (at >= 0) return nep_fail(err, NEP_ERR_ARG, "%s: invalid UTF-8 at byte offset %lld", what, (long long)at);
    return NEP_OK;
}

nep_status nep_tok_read_text(const char *path, char **data, size_t *n, nep_err *err) {
    NEP_TRY(read_file(path, data, n, err));
    nep_status st = nep_utf8_check(*data, *n, path, err);
    if (st != NEP_OK) {
        free(*data);
        *data = NULL;
    }
    return st;
}

/* ---- what every loader sets up ------------------------------------------------------- */

/* Registers an added token; the list stays sorted longest first, so the first one that
 * matches at a position is the longest (the leftmost-longest rule of `tokenizers`). */
nep_status nep_tok_add_token(nep_tokenizer *t, const nep_added_token *a, const char *where,
                             nep_err *err) {
    if (!a->content[0]) return nep_fail(err, NEP_ERR_FORMAT, "%s: empty added token", where);
    nep_added_token *p = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *p);
    if (!p) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", where);
    t->added = p;
    char *c = strdup(a->content);
    if (!c) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", where);
    int64_t at = t->n_added;
    size_t len = strlen(c);
    while (at > 0 && strlen(p[at - 1].content) < len) at--;
    memmove(p + at + 1, p + at, (size_t)(t->n_added - at) * sizeof *p);
    p[at] = *a;
    p[at].content = c;
    t->n_added++;
    t->added_first[(unsigned char)c[0]] = true;
    return NEP_OK;
}

/* The special tokens of a BERT or RoBERTa vocabulary that the Python classes register
 * (BertWordPieceTokenizer; RoBERTa's <mask> strips spaces on its left). */
static nep_status add_known_specials(nep_tokenizer *t, const nep_vocab *v, const char *const *names,
                                     int n, const char *where, nep_err *err) {
    for (int i = 0; i < n; i++) {
        int32_t id = nep_vocab_find(v, names[i], strlen(names[i]));
        if (id < 0) continue;
        nep_added_token a = {(char *)names[i], id, false, strcmp(names[i], "<mask>") == 0, false,
                             false, true};
        NEP_TRY(nep_tok_add_token(t, &a, where, err));
    }
    return NEP_OK;
}

static void tpl_special(nep_tpl_item *it, int32_t id, int32_t type_id) {
    *it = (nep_tpl_item){-1, {id}, 1, type_id};
}
static void tpl_seq(nep_tpl_item *it, int seq, int32_t type_id) {
    *it = (nep_tpl_item){seq, {0}, 0, type_id};
}

/* BertProcessing: [CLS] A [SEP] and [CLS] A [SEP] B [SEP], B's part with type id 1.
 * RobertaProcessing: <s> A </s> and <s> A </s></s> B </s>, every type id 0. */
void nep_tok_set_template(nep_tokenizer *t, int32_t cls, int32_t sep, bool roberta) {
    tpl_special(&t->single[0], cls, 0);
    tpl_seq(&t->single[1], 0, 0);
    tpl_special(&t->single[2], sep, 0);
    t->n_single = 3;
    memcpy(t->pair, t->single, sizeof t->single);
    if (roberta) {
        tpl_special(&t->pair[3], sep, 0);
        tpl_seq(&t->pair[4], 1, 0);
        tpl_special(&t->pair[5], sep, 0);
        t->n_pair = 6;
    } else {
        tpl_seq(&t->pair[3], 1, 1);
        tpl_special(&t->pair[4], sep, 1);
        t->n_pair = 5;
    }
}

void nep_tok_default_pad(nep_tokenizer *t) {
    if (t->pad_id >= 0) return;
    int32_t id = nep_tokenizer_token_id(t, t->model == NEP_TOK_WORDPIECE ? "[PAD]" : "<pad>");
    t->pad_id = id >= 0 ? id : 0;
}

/* ---- vocab.txt ------------------------------------------------------------------------ */

/* One token a line, the id is the line's index; "\r\n" endings accepted. */
static nep_status parse_vocab_txt(const char *path, const char *d, size_t n, nep_vocab *v,
                                  nep_err *err) {
    int64_t line = 0;
    for (size_t i = 0; i < n;) {
        const char *e = memchr(d + i, '\n', n - i);
        size_t len = e ? (size_t)(e - (d + i)) : n - i;
        size_t next = i + len + 1;
        if (len && d[i + len - 1] == '\r') len--;
        if (len == 0)
            return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: empty line (a token is required)", path,
                            (long long)line + 1);
        nep_err e2;
        if (nep_vocab_add(v, d + i, len, (int32_t)line, &e2) != NEP_OK)
            return nep_fail(err, e2.status, "%s:%lld: %s", path, (long long)line + 1, e2.msg);
        line++;
        i = next;
    }
    if (line == 0) return nep_fail(err, NEP_ERR_FORMAT, "%s: empty vocabulary", path);
    return NEP_OK;
}

/* vocab.txt with BertNormalizer options norm (NULL: uncased BERT's) and BERT's
 * post-processor. */
static nep_status load_wordpiece(const char *vocab_txt, const nep_bert_norm *norm,
                                 nep_tokenizer *t, nep_err *err) {
    t->model = NEP_TOK_WORDPIECE;
    char *d;
    size_t n;
    NEP_TRY(nep_tok_read_text(vocab_txt, &d, &n, err));
    nep_status st = parse_vocab_txt(vocab_txt, d, n, &t->wp.vocab, err);
    free(d);
    static const nep_bert_norm uncased = {true, true, true, -1};
    t->has_bert_norm = true;
    t->norm = norm ? *norm : uncased;
    strcpy(t->wp.prefix, "##");
    t->wp.max_input_chars_per_word = 100;
    const nep_vocab *v = &t->wp.vocab;
    t->wp.unk_id = nep_vocab_find(v, "[UNK]", 5);
    int32_t cls = nep_vocab_find(v, "[CLS]", 5), sep = nep_vocab_find(v, "[SEP]", 5);
    if (st == NEP_OK && (t->wp.unk_id < 0 || cls < 0 || sep < 0))
        st = nep_fail(err, NEP_ERR_FORMAT, "%s: the vocabulary has no %s token", vocab_txt,
                      t->wp.unk_id < 0 ? "[UNK]" : cls < 0 ? "[CLS]" : "[SEP]");
    static const char *const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    if (st == NEP_OK) st = add_known_specials(t, v, specials, 5, vocab_txt, err);
    if (st == NEP_OK) nep_tok_set_template(t, cls, sep, false);
    nep_tok_set_decoder(t, NEP_DEC_WORDPIECE); /* BertWordPieceTokenizer's */
    nep_tok_default_pad(t);
    return st;
}

/* ---- vocab.json + merges.txt ------------------------------------------------------------ */

static nep_status parse_merges_txt(const char *path, const char *d, size_t n, nep_bpe *m,
                                   nep_err *err) {
    int64_t line = 0, rank = 0;
    char where[1024];
    for (size_t i = 0; i < n;) {
        const char *e = memchr(d + i, '\n', n - i);
        size_t len = e ? (size_t)(e - (d + i)) : n - i;
        size_t next = i + len + 1;
        line++;
        if (len && d[i + len - 1] == '\r') len--;
        if (!(len >= 8 && memcmp(d + i, "#version", 8) == 0)) { /* the comment GPT-2's file starts with */
            snprintf(where, sizeof where, "%s:%lld", path, (long long)line);
            NEP_TRY(nep_bpe_add_merge_line(m, d + i, len, rank++, where, err));
        }
        i = next;
    }
    return NEP_OK;
}

/* vocab.json + merges.txt with RoBERTa's post-processor and no prefix space. */
static nep_status load_bpe(const char *vocab_json, const char *merges_txt, nep_tokenizer *t,
                           nep_err *err) {
    t->model = NEP_TOK_BPE;
    char *d;
    size_t n;
    NEP_TRY(nep_tok_read_text(vocab_json, &d, &n, err));
    cJSON *j = cJSON_ParseWithLength(d, n);
    free(d);
    nep_status st = j ? nep_tok_json_vocab(j, vocab_json, &t->bpe.vocab, err)
                      : nep_fail(err, NEP_ERR_FORMAT, "%s: malformed JSON", vocab_json);
    cJSON_Delete(j);
    if (st == NEP_OK) st = nep_tok_read_text(merges_txt, &d, &n, err);
    if (st == NEP_OK) {
        st = parse_merges_txt(merges_txt, d, n, &t->bpe, err);
        free(d);
    }
    nep_bpe_finish(&t->bpe);
    const nep_vocab *v = &t->bpe.vocab;
    int32_t cls = nep_vocab_find(v, "<s>", 3), sep = nep_vocab_find(v, "</s>", 4);
    if (st == NEP_OK && (cls < 0 || sep < 0))
        st = nep_fail(err, NEP_ERR_FORMAT, "%s: the vocabulary has no %s token", vocab_json,
                      cls < 0 ? "<s>" : "</s>");
    static const char *const specials[] = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"};
    if (st == NEP_OK) st = add_known_specials(t, v, specials, 5, vocab_json, err);
    if (st == NEP_OK) nep_tok_set_template(t, cls, sep, true);
    nep_tok_set_decoder(t, NEP_DEC_BYTE_LEVEL); /* ByteLevelBPETokenizer's */
    nep_tok_default_pad(t);
    return st;
}

/* ---- which file a path means ------------------------------------------------------------- */

static bool is_file(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A directory: tokenizer.json, else vocab.json + merges.txt, else vocab.txt. */
static nep_status load_dir(const char *dir, const nep_bert_norm *norm, nep_tokenizer *t,
                           nep_err *err) {
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/tokenizer.json", dir);
    if (is_file(a)) return nep_tok_load_json(a, t, err);
    snprintf(a, sizeof a, "%s/vocab.json", dir);
    snprintf(b, sizeof b, "%s/merges.txt", dir);
    if (is_file(a) && is_file(b)) return load_bpe(a, b, t, err);
    snprintf(a, sizeof a, "%s/vocab.txt", dir);
    if (is_file(a)) return load_wordpiece(a, norm, t, err);
    return nep_fail(err, NEP_ERR_IO, "%s: no tokenizer.json, vocab.json + merges.txt or vocab.txt in it", dir);
}

static nep_status load_path(const char *path, const nep_bert_norm *norm, nep_tokenizer *t,
                            nep_err *err) {
    struct stat s;
    if (stat(path, &s) != 0) return nep_fail(err, NEP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(s.st_mode)) return load_dir(path, norm, t, err);
    if (ends_with(path, "vocab.json")) { /* GPT-2's pair of files: merges.txt beside it */
        char m[4096];
        snprintf(m, sizeof m, "%.*smerges.txt", (int)(strlen(path) - 10), path);
        return load_bpe(path, m, t, err);
    }
    if (ends_with(path, ".json")) return nep_tok_load_json(path, t, err);
    return load_wordpiece(path, norm, t, err);
}

nep_status nep_tokenizer_open(const char *path, const nep_tokenizer_opts *o, nep_tokenizer **out,
                              nep_err *err) {
    *out = NULL;
    static const nep_tokenizer_opts defaults = {0};
    if (!o) o = &defaults;
    nep_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    t->bpe.unk_id = -1;
    t->wp.unk_id = -1;
    t->pad_id = -1; /* -1 until a file gives one or nep_tok_default_pad picks it */
    nep_status st = load_path(path, o->norm, t, err);
    if (st == NEP_OK) st = nep_tok_decode_index(t, err);
    if (st != NEP_OK) {
        nep_tokenizer_free(t);
        return st;
    }
    if (o->add_prefix_space) t->bpe.add_prefix_space = true; /* only BPE reads it */
    *out = t;
    return NEP_OK;
}

void nep_tokenizer_free(nep_tokenizer *t) {
    if (!t) return;
    nep_vocab_free(&t->wp.vocab);
    nep_bpe_free(&t->bpe);
    for (int64_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t->dec_refusal);
    free(t->added_by_id);
    nep_vocab_free(&t->specials);
    free(t);
}
