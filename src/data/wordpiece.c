/* BERT's tokenizer as Hugging Face's `tokenizers` runs it: BertNormalizer (clean text,
 * space around CJK ideographs, accent stripping, lower-casing), BertPreTokenizer (split
 * on whitespace, isolate punctuation) and WordPiece (greedy longest match, "##"
 * continuations, [UNK] for a word it cannot cover or longer than 100 characters).
 * Character classes follow Rust's char methods and the unicode_categories crate that
 * `tokenizers` uses; utf8proc supplies the Unicode data. */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "data/tokenizer_impl.h"

/* BertNormalizer's is_whitespace: tab, newline, carriage return, or Rust's
 * char::is_whitespace (which already holds those three). */
static bool bert_is_whitespace(int32_t c) { return nep_uni_is_whitespace(c); }

/* BertNormalizer's is_control: unicode_categories' is_other (Cc, Cf, Co, Cs; unassigned
 * code points are kept, as there) except tab, newline and carriage return, which count
 * as whitespace. */
static bool bert_is_control(int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CS:
        return true;
    default:
        return false;
    }
}

/* The CJK Unified Ideographs blocks BertNormalizer pads with spaces (not Hangul, kana). */
static bool is_chinese_char(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* BertPreTokenizer's punctuation: ASCII punctuation (which includes symbols such as
 * $ + < = > ^ ` | ~) or any Unicode P* category. */
static bool is_bert_punct(int32_t c) {
    if (c < 0x80)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return true;
    default:
        return false;
    }
}

/* Steps 1 and 2 (clean text, CJK spacing), code point by code point into out. */
static nep_status clean_and_space(const nep_bert_norm *o, const char *s, size_t n, nep_str *out,
                                  nep_err *err) {
    size_t i = 0;
    while (i < n) {
        int32_t c = nep_utf8_next(s, n, &i);
        if (c < 0) return nep_fail(err, NEP_ERR_ARG, "BertNormalizer: invalid UTF-8 at byte %zu", i);
        if (o->clean_text) {
            if (c == 0 || c == 0xFFFD || bert_is_control(c)) continue;
            if (bert_is_whitespace(c)) c = ' ';
        }
        if (o->handle_chinese_chars && is_chinese_char(c)) {
            NEP_TRY(nep_str_append(out, " ", 1, err));
            NEP_TRY(nep_str_append_cp(out, c, err));
            NEP_TRY(nep_str_append(out, " ", 1, err));
        } else {
            NEP_TRY(nep_str_append_cp(out, c, err));
        }
    }
    return NEP_OK;
}

static bool all_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return false;
    return true;
}

/* Steps 3 and 4: NFD then drop nonspacing marks (Mn) when strip, then Rust's
 * char::to_lowercase when lower. Rust lower-cases with the full mapping, which differs
 * from the simple one utf8proc_tolower gives only at U+0130 (-> "i" U+0307). */
static nep_status strip_and_lower(bool strip, bool lower, const char *s, size_t n, nep_str *out,
                                  nep_err *err) {
    if (all_ascii(s, n)) { /* ASCII is its own NFD and has no marks */
        size_t at = out->n;
        NEP_TRY(nep_str_append(out, s, n, err));
        if (lower)
            for (size_t i = at; i < out->n; i++)
                if (out->s[i] >= 'A' && out->s[i] <= 'Z') out->s[i] = (char)(out->s[i] + 32);
        return NEP_OK;
    }
    utf8proc_uint8_t *nfd = NULL;
    const char *src = s;
    size_t len = n;
    if (strip) {
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &nfd,
                                          UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
        if (r < 0) return nep_fail(err, NEP_ERR_ARG, "BertNormalizer: NFD failed: %s", utf8proc_errmsg(r));
        src = (const char *)nfd;
        len = (size_t)r;
    }
    nep_status st = NEP_OK;
    size_t i = 0;
    while (i < len && st == NEP_OK) {
        int32_t c = nep_utf8_next(src, len, &i);
        if (strip && utf8proc_category(c) == UTF8PROC_CATEGORY_MN) continue;
        if (lower && c == 0x130) {
            st = nep_str_append(out, "i\xCC\x87", 3, err);
            continue;
        }
        st = nep_str_append_cp(out, lower ? utf8proc_tolower(c) : c, err);
    }
    free(nfd);
    return st;
}

nep_status nep_bert_normalize(const nep_bert_norm *o, const char *s, size_t n, nep_str *out,
                              nep_err *err) {
    nep_str tmp = {0};
    nep_status st = clean_and_space(o, s, n, &tmp, err);
    bool strip = o->strip_accents < 0 ? o->lowercase : o->strip_accents != 0;
    if (st == NEP_OK) st = strip_and_lower(strip, o->lowercase, tmp.s, tmp.n, out, err);
    free(tmp.s);
    return st;
}

/* The greedy cover of one word; key has room for the prefix and the word. */
static nep_status wordpiece_cover(const nep_wordpiece *wp, const char *s, size_t n, size_t plen,
                                  char *key, nep_ids *out, nep_err *err) {
    int64_t mark = out->n;
    size_t start = 0;
    while (start < n) {
        size_t end = n;
        int32_t id = -1;
        while (start < end) {
            size_t kn = 0;
            if (start > 0) {
                memcpy(key, wp->prefix, plen);
                kn = plen;
            }
            memcpy(key + kn, s + start, end - start);
            id = nep_vocab_find(&wp->vocab, key, kn + end - start);
            if (id >= 0) break;
            do end--; /* back off one whole UTF-8 character */
            while (end > start && ((unsigned char)s[end] & 0xC0) == 0x80);
        }
        if (id < 0) {
            out->n = mark;
            return nep_ids_push(out, wp->unk_id, err);
        }
        NEP_TRY(nep_ids_push(out, id, err));
        start = end;
    }
    return NEP_OK;
}

/* WordPiece on one word (bytes [s, s+n), chars characters): the longest vocabulary
 * entry from the start, then the longest "##" entry from where it ended, and so on; a
 * position nothing covers makes the whole word [UNK]. */
static nep_status wordpiece_word(const nep_wordpiece *wp, const char *s, size_t n, int64_t chars,
                                 nep_ids *out, nep_err *err) {
    if (chars > wp->max_input_chars_per_word) return nep_ids_push(out, wp->unk_id, err);
    size_t plen = strlen(wp->prefix);
    char small[sizeof wp->prefix + 4 * 128];
    char *key = small;
    if (plen + n > sizeof small) { /* only when a file raises max_input_chars_per_word */
        key = malloc(plen + n);
        if (!key) return nep_fail(err, NEP_ERR_NOMEM, "WordPiece: out of memory");
    }
    nep_status st = wordpiece_cover(wp, s, n, plen, key, out, err);
    if (key != small) free(key);
    return st;
}

/* BertPreTokenizer then WordPiece: words end at whitespace (dropped) and around each
 * punctuation character (kept as a word of its own). */
nep_status nep_wordpiece_encode(const nep_wordpiece *wp, const char *s, size_t n, nep_ids *out,
                                nep_err *err) {
    size_t i = 0, word = 0;
    int64_t chars = 0;
    while (i < n) {
        size_t at = i;
        int32_t c = nep_utf8_next(s, n, &i);
        if (c < 0) return nep_fail(err, NEP_ERR_ARG, "WordPiece: invalid UTF-8 at byte %zu", at);
        bool space = nep_uni_is_whitespace(c), punct = !space && is_bert_punct(c);
        if (space || punct) {
            if (at > word) NEP_TRY(wordpiece_word(wp, s + word, at - word, chars, out, err));
            if (punct) NEP_TRY(wordpiece_word(wp, s + at, i - at, 1, out, err));
            word = i;
            chars = 0;
        } else {
            chars++;
        }
    }
    if (n > word) NEP_TRY(wordpiece_word(wp, s + word, n - word, chars, out, err));
    return NEP_OK;
}
