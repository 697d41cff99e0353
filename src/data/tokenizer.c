/* Encoding, the pipeline shared by WordPiece and byte-level BPE: added tokens cut out
 * of the raw and of the normalized text, the model on what lies between, then
 * truncation (longest first), post-processing templates and padding, each as Hugging
 * Face's `tokenizers` 0.23 does them (tokenizers/src/tokenizer/mod.rs,
 * added_vocabulary.rs, utils/truncation.rs, utils/padding.rs, processors/). */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "data/tokenizer_impl.h"

/* ---- lookups ------------------------------------------------------------------------ */

static const nep_vocab *tok_vocab(const nep_tokenizer *t) {
    return t->model == NEP_TOK_WORDPIECE ? &t->wp.vocab : &t->bpe.vocab;
}

int32_t nep_tokenizer_token_id(const nep_tokenizer *t, const char *s) {
    for (int64_t i = 0; i < t->n_added; i++)
        if (strcmp(t->added[i].content, s) == 0) return t->added[i].id;
    return nep_vocab_find(tok_vocab(t), s, strlen(s));
}

int64_t nep_tokenizer_vocab_size(const nep_tokenizer *t) {
    int64_t n = nep_vocab_size(tok_vocab(t));
    for (int64_t i = 0; i < t->n_added; i++)
        if (t->added[i].id >= n) n = (int64_t)t->added[i].id + 1;
    return n;
}

/* ---- encoding ---------------------------------------------------------------------- */

nep_encode_opts nep_tokenizer_default_opts(const nep_tokenizer *t) {
    nep_encode_opts o = {true, t->file_max_length, false};
    if (t->file_pad_length > 0) {
        /* padding Fixed(N) with truncation to N is what such files (MiniLM's) describe; a
         * pad length without truncation pads shorter texts and leaves longer ones */
        o.pad = t->file_max_length == 0 || t->file_max_length == t->file_pad_length;
        if (!t->file_max_length) o.max_length = t->file_pad_length;
    }
    return o;
}

/* Rust regex's \w at the edges of a single_word token: letters, marks, digits,
 * connector punctuation, the joiners. */
static bool is_word_char(int32_t c) {
    if (c == 0x200C || c == 0x200D) return true;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return true;
    default:
        return false;
    }
}

/* The code point that ends at s[e] (e > 0). */
static int32_t cp_before(const char *s, size_t e, size_t *start) {
    size_t b = e - 1;
    while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80) b--;
    size_t i = b;
    if (start) *start = b;
    return nep_utf8_next(s, e, &i);
}

/* The added token (of the normalized kind or not) that matches at s[i], or NULL. */
static const nep_added_token *added_at(const nep_tokenizer *t, bool normalized, const char *s,
                                       size_t n, size_t i) {
    if (!t->added_first[(unsigned char)s[i]]) return NULL; /* most bytes start none */
    for (int64_t k = 0; k < t->n_added; k++) {
        const nep_added_token *a = &t->added[k];
        if (a->normalized != normalized) continue;
        size_t len = strlen(a->content);
        if (len <= n - i && memcmp(s + i, a->content, len) == 0) return a;
    }
    return NULL;
}

/* Whether a single_word token at [i, e) stands alone (no word character either side). */
static bool stands_alone(const char *s, size_t n, size_t i, size_t e) {
    if (i > 0 && is_word_char(cp_before(s, i, NULL))) return false;
    size_t j = e;
    return e == n || !is_word_char(nep_utf8_next(s, n, &j));
}

typedef nep_status (*piece_fn)(const nep_tokenizer *t, const char *s, size_t n, nep_ids *out,
                               nep_err *err);

/* Cuts the added tokens of one kind out of s as `tokenizers`' find_matches does (leftmost
 * match, longest at that position; lstrip / rstrip take the whitespace beside it), emits
 * their ids, and hands the text between them to piece. */
static nep_status split_added(const nep_tokenizer *t, bool normalized, const char *s, size_t n,
                              piece_fn piece, nep_ids *out, nep_err *err) {
    size_t from = 0; /* start of the text not yet emitted */
    for (size_t i = 0; i < n;) {
        const nep_added_token *a = added_at(t, normalized, s, n, i);
        size_t e = a ? i + strlen(a->content) : 0;
        if (!a) {
            i++;
            continue;
        }
        if (a->single_word && !stands_alone(s, n, i, e)) { /* the search resumes after it */
            i = e;
            continue;
        }
        size_t start = i;
        if (a->lstrip)
            while (start > from) {
                size_t b;
                if (!nep_uni_is_whitespace(cp_before(s, start, &b))) break;
                start = b;
            }
        if (a->rstrip)
            for (size_t j = e; j < n;) {
                if (!nep_uni_is_whitespace(nep_utf8_next(s, n, &j))) break;
                e = j;
            }
        if (start > from) NEP_TRY(piece(t, s + from, start - from, out, err));
        NEP_TRY(nep_ids_push(out, a->id, err));
        from = i = e;
    }
    if (n > from) NEP_TRY(piece(t, s + from, n - from, out, err));
    return NEP_OK;
}

static nep_status model_piece(const nep_tokenizer *t, const char *s, size_t n, nep_ids *out,
                              nep_err *err) {
    if (t->model == NEP_TOK_WORDPIECE) return nep_wordpiece_encode(&t->wp, s, n, out, err);
    return nep_bpe_encode(&t->bpe, s, n, out, err);
}

/* A piece between raw-text added tokens: normalized, then searched for the added tokens
 * that match normalized text, then the model. */
static nep_status normalize_piece(const nep_tokenizer *t, const char *s, size_t n, nep_ids *out,
                                  nep_err *err) {
    if (!t->has_bert_norm) return split_added(t, true, s, n, model_piece, out, err);
    nep_str norm = {0};
    nep_status st = nep_bert_normalize(&t->norm, s, n, &norm, err);
    if (st == NEP_OK) st = split_added(t, true, norm.s, norm.n, model_piece, out, err);
    free(norm.s);
    return st;
}

/* One text's ids, before truncation and special tokens. */
static nep_status encode_one(const nep_tokenizer *t, const char *s, size_t n, const char *what,
                             nep_ids *out, nep_err *err) {
    NEP_TRY(nep_utf8_check(s, n, what, err));
    return split_added(t, false, s, n, normalize_piece, out, err);
}

/* `tokenizers`' longest_first rule for a pair under limit m: the shorter text keeps
 * all it can up to half, the longer one gets the rest (the extra token of an odd m goes
 * to the longer text; to the second on a tie). */
static void truncate_pair(int64_t *n1, int64_t *n2, int64_t m) {
    int64_t a = *n1, b = *n2;
    bool swap = a > b;
    if (swap) {
        int64_t x = a;
        a = b;
        b = x;
    }
    b = a > m ? a : (a > m - a ? a : m - a);
    if (a + b > m) {
        a = m / 2;
        b = a + m % 2;
    }
    if (swap) {
        int64_t x = a;
        a = b;
        b = x;
    }
    if (*n1 > a) *n1 = a;
    if (*n2 > b) *n2 = b;
}

static int tpl_specials(const nep_tpl_item *items, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) k += items[i].seq < 0 ? items[i].nids : 0;
    return k;
}

static nep_status enc_reserve(nep_encoding *e, int64_t n, nep_err *err) {
    if (n <= e->cap) return NEP_OK;
    int32_t *ids = realloc(e->ids, (size_t)n * sizeof *ids);
    if (ids) e->ids = ids;
    int32_t *ty = ids ? realloc(e->type_ids, (size_t)n * sizeof *ty) : NULL;
    if (ty) e->type_ids = ty;
    uint8_t *m = ty ? realloc(e->attention_mask, (size_t)n) : NULL;
    if (!m) return nep_fail(err, NEP_ERR_NOMEM, "tokenizer: out of memory");
    e->attention_mask = m;
    e->cap = n;
    return NEP_OK;
}

static void enc_put(nep_encoding *e, int32_t id, int32_t type_id, uint8_t mask) {
    e->ids[e->n] = id;
    e->type_ids[e->n] = type_id;
    e->attention_mask[e->n] = mask;
    e->n++;
}

/* Post-processing: the template's special tokens around the (truncated) texts; with no
 * template, A then B with type ids 0 and 1. */
static void assemble(const nep_tokenizer *t, const nep_ids *seq, const int64_t *len, bool pair,
                     bool specials, nep_encoding *out) {
    const nep_tpl_item *items = pair ? t->pair : t->single;
    int n = pair ? t->n_pair : t->n_single;
    if (!specials || n == 0) {
        for (int s = 0; s < 1 + pair; s++)
            for (int64_t i = 0; i < len[s]; i++) enc_put(out, seq[s].v[i], s, 1);
        return;
    }
    for (int k = 0; k < n; k++) {
        const nep_tpl_item *it = &items[k];
        if (it->seq < 0)
            for (int i = 0; i < it->nids; i++) enc_put(out, it->ids[i], it->type_id, 1);
        else
            for (int64_t i = 0; i < len[it->seq]; i++) enc_put(out, seq[it->seq].v[i], it->type_id, 1);
    }
}

static nep_status finish(const nep_tokenizer *t, const nep_ids *seq, bool pair,
                         const nep_encode_opts *o, nep_encoding *out, nep_err *err) {
    int nspecial = 0;
    if (o->add_special_tokens) nspecial = pair ? tpl_specials(t->pair, t->n_pair) : tpl_specials(t->single, t->n_single);
    int64_t len[2] = {seq[0].n, pair ? seq[1].n : 0};
    if (o->max_length > 0) {
        if (o->max_length < nspecial)
            return nep_fail(err, NEP_ERR_ARG, "max_length %lld cannot hold the %d special tokens",
                            (long long)o->max_length, nspecial);
        int64_t m = o->max_length - nspecial;
        if (m == 0) len[0] = len[1] = 0;
        else if (len[0] + len[1] > m) {
            if (pair) truncate_pair(&len[0], &len[1], m);
            else len[0] = m;
        }
    }
    int64_t total = len[0] + len[1] + nspecial;
    int64_t want = o->pad && o->max_length > total ? o->max_length : total;
    NEP_TRY(enc_reserve(out, want > 0 ? want : 1, err));
    out->n = 0;
    assemble(t, seq, len, pair, o->add_special_tokens, out);
    while (out->n < want) enc_put(out, t->pad_id, t->pad_type_id, 0);
    return NEP_OK;
}

nep_status nep_tokenizer_encode(const nep_tokenizer *t, const char *a, size_t a_len,
                                const char *b, size_t b_len, const nep_encode_opts *o,
                                nep_encoding *out, nep_err *err) {
    if (o->pad && o->max_length <= 0)
        return nep_fail(err, NEP_ERR_ARG, "padding needs a max_length (got %lld)", (long long)o->max_length);
    if (o->max_length < 0) return nep_fail(err, NEP_ERR_ARG, "max_length %lld is negative", (long long)o->max_length);
    nep_ids seq[2] = {{0}, {0}};
    nep_status st = encode_one(t, a, a_len, "first text", &seq[0], err);
    if (st == NEP_OK && b) st = encode_one(t, b, b_len, "second text", &seq[1], err);
    if (st == NEP_OK) st = finish(t, seq, b != NULL, o, out, err);
    free(seq[0].v);
    free(seq[1].v);
    return st;
}

void nep_encoding_free(nep_encoding *e) {
    free(e->ids);
    free(e->type_ids);
    free(e->attention_mask);
    memset(e, 0, sizeof *e);
}
