/* Decoding: ids back to text, as PyPI tokenizers' Tokenizer.decode does it (0.21,
 * tokenizer/mod.rs, decoders/wordpiece.rs, decoders/sequence.rs and the ByteLevel decoder
 * of pre_tokenizers/byte_level.rs), so that text a model writes reads as it would in
 * Python. Each id becomes its token (an added token's content first, else the model's
 * token; special ones dropped on request), then tokenizer.json's decoder runs: ByteLevel
 * (the stand-in characters back to bytes, then lossy UTF-8), WordPiece ("##" pieces
 * joined, spaces between words, optional cleanup), a Sequence of them, or none (tokens
 * joined by spaces).
 *
 * A decoder works on a list of strings and gives a list of strings (a Sequence feeds one
 * into the next; ByteLevel gives a single string), so the tokens are kept as one buffer
 * with their end offsets: the final text, the strings concatenated, is then the buffer
 * itself. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_impl.h"

/* ---- tokens of ids ------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void nep_tok_set_decoder(nep_tokenizer *t, nep_dec_kind kind) {
    t->has_decoder = true;
    t->n_dec = 1;
    t->dec[0] = (nep_dec_step){kind, true, "##"}; /* cleanup and prefix: WordPiece's defaults */
}

nep_status nep_tok_decode_index(nep_tokenizer *t, nep_err *err) {
    t->added_by_id = malloc((size_t)(t->n_added ? t->n_added : 1) * sizeof *t->added_by_id);
    if (!t->added_by_id) return nep_fail(err, NEP_ERR_NOMEM, "tokenizer: out of memory");
    /* the id in the high half, so that sorting the keys sorts by id */
    for (int64_t k = 0; k < t->n_added; k++) t->added_by_id[k] = (int64_t)t->added[k].id << 32 | k;
    qsort(t->added_by_id, (size_t)t->n_added, sizeof *t->added_by_id, cmp_i64);
    /* tokenizers skips by content (is_special_token), so a set of contents, not of ids */
    for (int64_t k = 0; k < t->n_added; k++) {
        const char *c = t->added[k].content;
        if (t->added[k].special && nep_vocab_find(&t->specials, c, strlen(c)) < 0)
            NEP_TRY(nep_vocab_add(&t->specials, c, strlen(c), (int32_t)k, err));
    }
    return NEP_OK;
}

/* The content of the added token with id, or NULL (binary search of added_by_id). */
static const char *added_content(const nep_tokenizer *t, int32_t id) {
    int64_t lo = 0, hi = t->n_added;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2, at = t->added_by_id[mid] >> 32;
        if (at == id) return t->added[t->added_by_id[mid] & 0xFFFFFFFF].content;
        if (at < id) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Added tokens first, as tokenizers' simple_id_to_token then model.id_to_token. */
static const char *token_of(const nep_tokenizer *t, int32_t id) {
    const char *s = added_content(t, id);
    if (s) return s;
    return nep_vocab_token(t->model == NEP_TOK_WORDPIECE ? &t->wp.vocab : &t->bpe.vocab, id);
}

/* ---- lists of strings ------------------------------------------------------------------ */

/* Strings back to back in text; string k is text.s[end[k-1] .. end[k]) (from 0 for k 0). */
typedef struct str_list {
    nep_str text;
    size_t *end;
    int64_t n, cap;
} str_list;

/* Ends the string being appended to text. */
static nep_status list_close(str_list *l, nep_err *err) {
    if (l->n == l->cap) {
        int64_t cap = l->cap ? l->cap * 2 : 64;
        size_t *e = realloc(l->end, (size_t)cap * sizeof *e);
        if (!e) return nep_fail(err, NEP_ERR_NOMEM, "tokenizer: out of memory");
        l->end = e;
        l->cap = cap;
    }
    l->end[l->n++] = l->text.n;
    return NEP_OK;
}

static nep_status list_push(str_list *l, const char *s, size_t n, nep_err *err) {
    NEP_TRY(nep_str_append(&l->text, s, n, err));
    return list_close(l, err);
}

static const char *list_at(const str_list *l, int64_t k, size_t *n) {
    size_t start = k ? l->end[k - 1] : 0;
    *n = l->end[k] - start;
    return l->text.s + start;
}

static void list_clear(str_list *l) {
    l->text.n = 0;
    l->n = 0;
}

static void list_free(str_list *l) {
    free(l->text.s);
    free(l->end);
}

/* The tokens of ids, special ones left out when skip. */
static nep_status gather(const nep_tokenizer *t, const int32_t *ids, int64_t n, bool skip,
                         str_list *out, nep_err *err) {
    for (int64_t i = 0; i < n; i++) {
        const char *s = token_of(t, ids[i]);
        if (!s)
            return nep_fail(err, NEP_ERR_ARG, "id %d (ids[%lld]) has no token (the largest id is %lld)",
                            ids[i], (long long)i, (long long)nep_tokenizer_vocab_size(t) - 1);
        size_t len = strlen(s);
        if (skip && nep_vocab_find(&t->specials, s, len) >= 0) continue;
        NEP_TRY(list_push(out, s, len, err));
    }
    return NEP_OK;
}

/* ---- ByteLevel -------------------------------------------------------------------------- */

/* The byte that ByteLevel's character c stands for, or -1: the inverse of
 * nep_byte_level_char. Printable Latin-1 stands for itself; 256 + k is the k-th of the
 * other bytes in order: 0x00..0x20 (33 of them), 0x7F..0xA0 (34), then 0xAD. */
static int byte_of_char(int32_t c) {
    if ((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)) return c;
    int32_t k = c - 256;
    if (k < 0 || k > 67) return -1;
    return k < 33 ? k : k < 67 ? 0x7F + (k - 33) : 0xAD;
}

/* Appends token s's bytes: its characters' bytes when every one is a ByteLevel stand-in,
 * else (an added token such as " <mask>") its own bytes, as tokenizers' decode_chain. */
static nep_status byte_level_token(const char *s, size_t n, nep_str *bytes, nep_err *err) {
    size_t start = bytes->n;
    for (size_t i = 0; i < n;) {
        int32_t c = nep_utf8_next(s, n, &i);
        int b = c < 0 ? -1 : byte_of_char(c);
        if (b < 0) {
            bytes->n = start;
            return nep_str_append(bytes, s, n, err);
        }
        char ch = (char)b;
        NEP_TRY(nep_str_append(bytes, &ch, 1, err));
    }
    return NEP_OK;
}

/* The length of the well-formed UTF-8 sequence at s[i] (*ok), or of the longest start of
 * one there (at least 1 byte; !*ok): the part Rust's from_utf8_lossy replaces with one
 * U+FFFD (the Unicode standard's "maximal subpart" practice, which Python's "replace" error
 * handler also follows). */
static size_t utf8_span(const unsigned char *s, size_t n, size_t i, bool *ok) {
    unsigned char b = s[i];
    *ok = b < 0x80;
    if (*ok) return 1;
    size_t w = b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
    if (!w) return 1;
    /* the second byte's range excludes overlong forms, surrogates and code points past
     * U+10FFFF; later ones are any continuation byte */
    unsigned char lo = b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = b == 0xED ? 0x9F : b == 0xF4 ? 0x8F : 0xBF;
    for (size_t k = 1; k < w; k++) {
        if (i + k >= n || s[i + k] < lo || s[i + k] > hi) return k;
        lo = 0x80;
        hi = 0xBF;
    }
    *ok = true;
    return w;
}

/* Appends s (n bytes) to out with each ill-formed part replaced by U+FFFD. */
static nep_status append_lossy(nep_str *out, const char *s, size_t n, nep_err *err) {
    const unsigned char *u = (const unsigned char *)s;
    size_t from = 0; /* start of the well-formed run not yet appended */
    for (size_t i = 0; i < n;) {
        bool ok;
        size_t k = utf8_span(u, n, i, &ok);
        if (!ok) {
            NEP_TRY(nep_str_append(out, s + from, i - from, err));
            NEP_TRY(nep_str_append(out, "\xEF\xBF\xBD", 3, err));
            from = i + k;
        }
        i += k;
    }
    return nep_str_append(out, s + from, n - from, err);
}

/* All the tokens' bytes, then one lossy UTF-8 string. */
static nep_status byte_level(const str_list *in, str_list *out, nep_str *scratch, nep_err *err) {
    scratch->n = 0;
    for (int64_t k = 0; k < in->n; k++) {
        size_t n;
        const char *s = list_at(in, k, &n);
        NEP_TRY(byte_level_token(s, n, scratch, err));
    }
    NEP_TRY(append_lossy(&out->text, scratch->s ? scratch->s : "", scratch->n, err));
    return list_close(out, err);
}

/* ---- WordPiece --------------------------------------------------------------------------- */

static const char *const cleanup_from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm",
                                           " do not", " 's", " 've", " 're"};
static const char *const cleanup_to[] = {".", "?", "!", ",", "'", "n't", "'m", " don't", "'s",
                                         "'ve", "'re"};

/* Replaces every (non-overlapping, leftmost first) `from` in s->s[at..] by `to`, as Rust's
 * str::replace; scratch is working space. */
static nep_status replace_tail(nep_str *s, size_t at, const char *from, const char *to,
                               nep_str *scratch, nep_err *err) {
    size_t nf = strlen(from), nt = strlen(to);
    const char *p = memmem(s->s + at, s->n - at, from, nf);
    if (!p) return NEP_OK;
    scratch->n = 0;
    size_t i = at;
    for (; p; p = memmem(s->s + i, s->n - i, from, nf)) {
        size_t j = (size_t)(p - s->s);
        NEP_TRY(nep_str_append(scratch, s->s + i, j - i, err));
        NEP_TRY(nep_str_append(scratch, to, nt, err));
        i = j + nf;
    }
    NEP_TRY(nep_str_append(scratch, s->s + i, s->n - i, err));
    s->n = at;
    return nep_str_append(s, scratch->s, scratch->n, err);
}

/* tokenizers' cleanup on one token (s->s[at..]), its replacements in their order (a later
 * one can match what an earlier one made). Every pattern starts with a space. */
static nep_status cleanup(nep_str *s, size_t at, nep_str *scratch, nep_err *err) {
    if (!memchr(s->s + at, ' ', s->n - at)) return NEP_OK;
    for (size_t r = 0; r < sizeof cleanup_from / sizeof *cleanup_from; r++)
        NEP_TRY(replace_tail(s, at, cleanup_from[r], cleanup_to[r], scratch, err));
    return NEP_OK;
}

/* Every token but the first: without its prefix if it starts with it, else after a space. */
static nep_status wordpiece(const nep_dec_step *d, const str_list *in, str_list *out,
                            nep_str *scratch, nep_err *err) {
    size_t np = strlen(d->prefix);
    for (int64_t k = 0; k < in->n; k++) {
        size_t n, at = out->text.n;
        const char *s = list_at(in, k, &n);
        if (k > 0 && n >= np && memcmp(s, d->prefix, np) == 0) {
            s += np;
            n -= np;
        } else if (k > 0) {
            NEP_TRY(nep_str_append(&out->text, " ", 1, err));
        }
        NEP_TRY(nep_str_append(&out->text, s, n, err));
        if (d->cleanup) NEP_TRY(cleanup(&out->text, at, scratch, err));
        NEP_TRY(list_close(out, err));
    }
    return NEP_OK;
}

/* ---- the pipeline ------------------------------------------------------------------------ */

/* No decoder: the tokens joined by single spaces. */
static nep_status join_spaces(const str_list *in, str_list *out, nep_err *err) {
    for (int64_t k = 0; k < in->n; k++) {
        size_t n;
        const char *s = list_at(in, k, &n);
        if (k) NEP_TRY(nep_str_append(&out->text, " ", 1, err));
        NEP_TRY(nep_str_append(&out->text, s, n, err));
    }
    return list_close(out, err);
}

/* Runs the decoders on *a, swapping the two lists so that *a holds each step's result. */
static nep_status run_decoders(const nep_tokenizer *t, str_list *a, str_list *b, nep_str *scratch,
                               nep_err *err) {
    if (!t->has_decoder) {
        NEP_TRY(join_spaces(a, b, err));
        str_list x = *a;
        *a = *b;
        *b = x;
        return NEP_OK;
    }
    for (int k = 0; k < t->n_dec; k++) {
        list_clear(b);
        const nep_dec_step *d = &t->dec[k];
        NEP_TRY(d->kind == NEP_DEC_BYTE_LEVEL ? byte_level(a, b, scratch, err)
                                              : wordpiece(d, a, b, scratch, err));
        str_list x = *a;
        *a = *b;
        *b = x;
    }
    return NEP_OK;
}

nep_status nep_tokenizer_decode(const nep_tokenizer *t, const int32_t *ids, int64_t n, bool skip_special_tokens,
                                char **text, size_t *len, nep_err *err) {
    *text = NULL;
    *len = 0;
    if (n < 0 || (n > 0 && !ids)) return nep_fail(err, NEP_ERR_ARG, "decode: %lld ids at %p", (long long)n, (const void *)ids);
    if (t->dec_refusal) return nep_fail(err, NEP_ERR_UNSUPPORTED, "%s", t->dec_refusal);
    str_list a = {0}, b = {0};
    nep_str scratch = {0};
    nep_status st = gather(t, ids, n, skip_special_tokens, &a, err);
    if (st == NEP_OK) st = run_decoders(t, &a, &b, &scratch, err);
    /* the strings concatenated are the buffer; appending "" makes one when it is empty */
    if (st == NEP_OK) st = nep_str_append(&a.text, "", 0, err);
    if (st == NEP_OK) {
        *text = a.text.s;
        *len = a.text.n;
        a.text.s = NULL;
    }
    list_free(&a);
    list_free(&b);
    free(scratch.s);
    return st;
}
