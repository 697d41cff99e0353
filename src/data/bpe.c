/* Byte-level BPE as Hugging Face's `tokenizers` runs GPT-2's, RoBERTa's and Llama 3's
 * files. The pre-tokenizer is either ByteLevel alone (an optional leading space, then
 * GPT-2's regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * ) or Llama 3's Sequence: Split on the regex
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * with behavior Isolated (each match a pre-token), then ByteLevel without its regex (an
 * optional space before each pre-token that lacks one). Both regexes are hand-written
 * scanners over Unicode categories that give Oniguruma's leftmost-first matches; every
 * byte of a pre-token is then mapped to its printable stand-in character. The BPE model
 * merges the adjacent pair of lowest rank (the leftmost of equal ranks) until no pair has
 * a merge; with ignore_merges (Llama 3), a pre-token that is itself in the vocabulary is
 * that one token, merges or not. */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "data/tokenizer_impl.h"

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68
 * bytes take the code points 256, 257, ... in byte order. */
int32_t nep_byte_level_char(uint8_t b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    if (b < '!') return 256 + b; /* the loop's count, for the bytes text has most */
    int32_t n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) n++;
    return 256 + n;
}

/* ---- merges: (left id, right id) -> (rank, merged id) -------------------------- */

static uint64_t pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

/* Slot of key, or of the empty slot where it would go. vals[slot] == 0 means empty. */
static int64_t merge_slot(const nep_bpe *m, uint64_t key) {
    int64_t i = (int64_t)(pair_hash(key) & (uint64_t)(m->merge_cap - 1));
    while (m->merge_vals[i] != 0 && m->merge_slots[i] != key) i = (i + 1) & (m->merge_cap - 1);
    return i;
}

static nep_status merge_grow(nep_bpe *m, nep_err *err) {
    int64_t cap = m->merge_cap ? m->merge_cap * 2 : 1024;
    nep_bpe g = *m;
    g.merge_cap = cap;
    g.merge_slots = calloc((size_t)cap, sizeof *g.merge_slots);
    g.merge_vals = calloc((size_t)cap, sizeof *g.merge_vals);
    if (!g.merge_slots || !g.merge_vals) {
        free(g.merge_slots);
        free(g.merge_vals);
        return nep_fail(err, NEP_ERR_NOMEM, "BPE: out of memory for merges");
    }
    for (int64_t i = 0; i < m->merge_cap; i++) {
        if (!m->merge_vals[i]) continue;
        int64_t s = merge_slot(&g, m->merge_slots[i]);
        g.merge_slots[s] = m->merge_slots[i];
        g.merge_vals[s] = m->merge_vals[i];
    }
    free(m->merge_slots);
    free(m->merge_vals);
    m->merge_slots = g.merge_slots;
    m->merge_vals = g.merge_vals;
    m->merge_cap = cap;
    return NEP_OK;
}

/* As `tokenizers` builds its merge map: both halves and their concatenation must be in
 * the vocabulary; a pair listed twice keeps its later rank. */
nep_status nep_bpe_add_merge(nep_bpe *m, const char *a, const char *b, int64_t rank,
                             const char *where, nep_err *err) {
    size_t na = strlen(a), nb = strlen(b);
    int32_t ia = nep_vocab_find(&m->vocab, a, na), ib = nep_vocab_find(&m->vocab, b, nb);
    if (ia < 0 || ib < 0)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: merge token '%s' is not in the vocabulary", where,
                        ia < 0 ? a : b);
    char *ab = malloc(na + nb + 1);
    if (!ab) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", where);
    memcpy(ab, a, na);
    memcpy(ab + na, b, nb);
    int32_t iab = nep_vocab_find(&m->vocab, ab, na + nb);
    free(ab);
    if (iab < 0)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: merged token '%s%s' is not in the vocabulary",
                        where, a, b);
    if ((m->merges + 1) * 2 > m->merge_cap) NEP_TRY(merge_grow(m, err));
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    int64_t s = merge_slot(m, key);
    if (!m->merge_vals[s]) m->merges++;
    m->merge_slots[s] = key;
    m->merge_vals[s] = (uint64_t)(rank + 1) << 32 | (uint32_t)iab;
    return NEP_OK;
}

/* Exactly two tokens and one space: a token holding a space cannot be written this way,
 * which is why newer tokenizer.json files store merges as pairs. */
nep_status nep_bpe_add_merge_line(nep_bpe *m, const char *s, size_t n, int64_t rank,
                                  const char *where, nep_err *err) {
    const char *sp = memchr(s, ' ', n);
    if (!sp || sp == s || sp == s + n - 1 || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
        return nep_fail(err, NEP_ERR_FORMAT, "%s: a merge must be two tokens separated by one space: '%.*s'",
                        where, (int)n, s);
    char *a = strndup(s, (size_t)(sp - s)), *b = strndup(sp + 1, (size_t)(s + n - sp - 1));
    nep_status st = a && b ? nep_bpe_add_merge(m, a, b, rank, where, err)
                           : nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", where);
    free(a);
    free(b);
    return st;
}

/* The merge of (a, b): its rank + 1 (0: none) and the merged id. */
static uint64_t merge_find(const nep_bpe *m, int32_t a, int32_t b) {
    if (!m->merge_cap) return 0;
    return m->merge_vals[merge_slot(m, (uint64_t)(uint32_t)a << 32 | (uint32_t)b)];
}

void nep_bpe_finish(nep_bpe *m) {
    for (int b = 0; b < 256; b++) {
        char u[4];
        int32_t c = nep_byte_level_char((uint8_t)b);
        size_t n = (size_t)utf8proc_encode_char(c, (utf8proc_uint8_t *)u);
        m->byte_id[b] = nep_vocab_find(&m->vocab, u, n);
    }
}

void nep_bpe_free(nep_bpe *m) {
    nep_vocab_free(&m->vocab);
    free(m->merge_slots);
    free(m->merge_vals);
    memset(m, 0, sizeof *m);
}

/* ---- the model on one pre-token ---------------------------------------------------- */

/* Merges sym[0..n) in place, lowest rank first and leftmost among equal ranks (the
 * order of `tokenizers`' priority queue); returns the new length. Quadratic in the
 * word's length, which is a handful of bytes for text. */
static int64_t merge_word(const nep_bpe *m, int32_t *sym, int64_t n) {
    for (;;) {
        uint64_t best = 0;
        int64_t at = -1;
        for (int64_t i = 0; i + 1 < n; i++) {
            uint64_t v = merge_find(m, sym[i], sym[i + 1]);
            if (v && (!best || (v >> 32) < (best >> 32))) {
                best = v;
                at = i;
            }
        }
        if (at < 0) return n;
        sym[at] = (int32_t)(uint32_t)best;
        memmove(sym + at + 1, sym + at + 2, (size_t)(n - at - 2) * sizeof *sym);
        n--;
    }
}

/* One pre-token (raw bytes): its bytes' stand-in characters as symbols, then merges. */
static nep_status bpe_word(const nep_bpe *m, const char *s, size_t n, nep_ids *out,
                           nep_err *err) {
    if (n == 0) return NEP_OK; /* as tokenizers' BPE: an empty word has no tokens */
    if (m->ignore_merges) { /* the whole pre-token, if the vocabulary has it */
        int32_t id;
        if (2 * n <= 256) { /* every stand-in is below U+0800: one or two bytes */
            char w[256];
            size_t wn = 0;
            w[0] = 0; /* (GCC cannot tell that the loop writes it) */
            for (size_t i = 0; i < n; i++) {
                int32_t c = nep_byte_level_char((uint8_t)s[i]);
                if (c < 0x80) {
                    w[wn++] = (char)c;
                } else {
                    w[wn++] = (char)(0xC0 | c >> 6);
                    w[wn++] = (char)(0x80 | (c & 0x3F));
                }
            }
            id = nep_vocab_find(&m->vocab, w, wn);
        } else {
            nep_str w = {0};
            nep_status st = NEP_OK;
            for (size_t i = 0; i < n && st == NEP_OK; i++)
                st = nep_str_append_cp(&w, nep_byte_level_char((uint8_t)s[i]), err);
            id = st == NEP_OK ? nep_vocab_find(&m->vocab, w.s, w.n) : -1;
            free(w.s);
            NEP_TRY(st);
        }
        if (id >= 0) return nep_ids_push(out, id, err);
    }
    int32_t small[64], *sym = n <= 64 ? small : malloc(n * sizeof *sym);
    if (!sym) return nep_fail(err, NEP_ERR_NOMEM, "BPE: out of memory");
    int64_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = m->byte_id[(uint8_t)s[i]];
        if (id < 0) id = m->unk_id; /* without an unk token the byte is dropped, as there */
        if (id >= 0) sym[k++] = id;
    }
    k = merge_word(m, sym, k);
    nep_status st = NEP_OK;
    for (int64_t i = 0; i < k && st == NEP_OK; i++) st = nep_ids_push(out, sym[i], err);
    if (sym != small) free(sym);
    return st;
}

/* ---- GPT-2's pre-tokenizer regex ---------------------------------------------------- */

enum { CL_L, CL_N, CL_S, CL_O }; /* \p{L}, \p{N}, \s, anything else */

static int char_class(int32_t c) {
    if (c < 0x80) {
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return CL_L;
        if (c >= '0' && c <= '9') return CL_N;
        return nep_uni_is_whitespace(c) ? CL_S : CL_O;
    }
    if (nep_uni_is_whitespace(c)) return CL_S;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return CL_L;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return CL_N;
    default:
        return CL_O;
    }
}

/* Class of the character at s[i] (i < n), and where it ends in *next. */
static int class_at(const char *s, size_t n, size_t i, size_t *next) {
    *next = i;
    int32_t c = nep_utf8_next(s, n, next);
    return char_class(c);
}

/* End of the run of class cl starting at i. */
static size_t run_end(const char *s, size_t n, size_t i, int cl) {
    while (i < n) {
        size_t nx;
        if (class_at(s, n, i, &nx) != cl) break;
        i = nx;
    }
    return i;
}

/* The end of GPT-2's contraction alternatives at s[i] == '\'' (0: none); they are
 * tried in the regex's order, and none is a prefix of another. */
static size_t contraction(const char *s, size_t n, size_t i) {
    static const char *const suffix[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    for (size_t k = 0; k < sizeof suffix / sizeof *suffix; k++) {
        size_t len = strlen(suffix[k]);
        if (i + 1 + len <= n && memcmp(s + i + 1, suffix[k], len) == 0) return i + 1 + len;
    }
    return 0;
}

/* The end of the regex's match starting at i (< n); every position matches one
 * alternative, so the matches tile the text. */
static size_t gpt2_match(const char *s, size_t n, size_t i) {
    if (s[i] == '\'') {
        size_t e = contraction(s, n, i);
        if (e) return e;
    }
    size_t nx;
    int cl = class_at(s, n, i, &nx);
    if (s[i] == ' ' && nx < n) { /* " ?X+": a space takes the run that follows it */
        size_t nx2;
        int next = class_at(s, n, nx, &nx2);
        if (next != CL_S) return run_end(s, n, nx2, next);
    }
    if (cl != CL_S) return run_end(s, n, nx, cl);
    /* \s+(?!\S): all the whitespace when it ends the text, else all but its last
     * character (which then starts the next match) if that leaves any; else \s+. */
    size_t e = run_end(s, n, nx, CL_S);
    if (e == n) return e;
    size_t last = e;
    do last--;
    while (((unsigned char)s[last] & 0xC0) == 0x80);
    return last > i ? last : e;
}

/* ---- Llama 3's Split regex ------------------------------------------------------------- */

/* Whether s[i..] starts with suffix (lower-case ASCII) under (?i:...): ASCII letters in
 * either case, and U+017F LATIN SMALL LETTER LONG S for s, which Oniguruma's case folding
 * also takes (the only non-ASCII letter that folds to one of these; checked against PyPI
 * tokenizers over every letter). Returns the end, or 0. */
static size_t fold_prefix(const char *s, size_t n, size_t i, const char *suffix) {
    for (; *suffix; suffix++) {
        if (i < n && ((unsigned char)s[i] | 0x20) == (unsigned char)*suffix) {
            i++;
        } else if (*suffix == 's' && i + 1 < n && (unsigned char)s[i] == 0xC5 &&
                   (unsigned char)s[i + 1] == 0xBF) {
            i += 2;
        } else {
            return 0;
        }
    }
    return i;
}

static bool is_cr_lf(char c) { return c == '\r' || c == '\n'; }

/* The alternatives in the regex's order; the first that matches at i wins (Oniguruma's
 * leftmost-first rule), each greedy quantifier backtracking as far as the rest needs. */
size_t nep_llama3_match(const char *s, size_t n, size_t i) {
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (s[i] == '\'') {
        static const char *const suffix[] = {"s", "t", "re", "ve", "m", "ll", "d"};
        for (size_t k = 0; k < sizeof suffix / sizeof *suffix; k++) {
            size_t e = fold_prefix(s, n, i + 1, suffix[k]);
            if (e) return e;
        }
    }
    size_t nx, nx2;
    int cl = class_at(s, n, i, &nx);
    /* [^\r\n\p{L}\p{N}]?\p{L}+: letters, after at most one character that is none of
     * those (a space, any other whitespace, punctuation) */
    if (cl == CL_L) return run_end(s, n, nx, CL_L);
    if (cl != CL_N && !is_cr_lf(s[i]) && nx < n && class_at(s, n, nx, &nx2) == CL_L)
        return run_end(s, n, nx2, CL_L);
    /* \p{N}{1,3} */
    if (cl == CL_N) {
        size_t e = nx;
        for (int k = 1; k < 3 && e < n && class_at(s, n, e, &nx2) == CL_N; k++) e = nx2;
        return e;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]*: (a space and) a run of other characters, then any
     * line breaks */
    size_t o = 0;
    if (cl == CL_O) o = nx;
    else if (s[i] == ' ' && nx < n && class_at(s, n, nx, &nx2) == CL_O) o = nx2;
    if (o) {
        size_t e = run_end(s, n, o, CL_O);
        while (e < n && is_cr_lf(s[e])) e++;
        return e;
    }
    /* whitespace: \s*[\r\n]+ ends after the run's last line break, if it has one */
    size_t e = run_end(s, n, nx, CL_S);
    for (size_t j = e; j > i; j--)
        if (is_cr_lf(s[j - 1])) return j;
    /* \s+(?!\S), then \s+: as in GPT-2's regex */
    if (e == n) return e;
    size_t last = e;
    do last--;
    while (((unsigned char)s[last] & 0xC0) == 0x80);
    return last > i ? last : e;
}

/* BPE on one Split pre-token, with ByteLevel's prefix space when asked and it has none. */
static nep_status llama3_piece(const nep_bpe *m, const char *s, size_t n, nep_ids *out,
                               nep_err *err) {
    if (!m->add_prefix_space || s[0] == ' ') return bpe_word(m, s, n, out, err);
    char small[256], *buf = n + 1 <= sizeof small ? small : malloc(n + 1);
    if (!buf) return nep_fail(err, NEP_ERR_NOMEM, "BPE: out of memory");
    buf[0] = ' ';
    memcpy(buf + 1, s, n);
    nep_status st = bpe_word(m, buf, n + 1, out, err);
    if (buf != small) free(buf);
    return st;
}

nep_status nep_bpe_encode(const nep_bpe *m, const char *s, size_t n, nep_ids *out, nep_err *err) {
    if (n == 0) return NEP_OK; /* empty pieces never reach the pre-tokenizer there */
    if (m->llama3_split) {
        nep_status st = NEP_OK;
        for (size_t i = 0; i < n && st == NEP_OK;) {
            size_t e = nep_llama3_match(s, n, i);
            st = llama3_piece(m, s + i, e - i, out, err);
            i = e;
        }
        return st;
    }
    char *buf = NULL;
    if (m->add_prefix_space && s[0] != ' ') {
        buf = malloc(n + 1);
        if (!buf) return nep_fail(err, NEP_ERR_NOMEM, "BPE: out of memory");
        buf[0] = ' ';
        memcpy(buf + 1, s, n);
        s = buf;
        n++;
    }
    nep_status st = NEP_OK;
    for (size_t i = 0; i < n && st == NEP_OK;) {
        size_t e = gpt2_match(s, n, i);
        st = bpe_word(m, s + i, e - i, out, err);
        i = e;
    }
    free(buf);
    return st;
}
