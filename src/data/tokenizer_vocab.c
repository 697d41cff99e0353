/* The containers the tokenizers share: growable id arrays and byte strings, and the
 * token <-> id table every vocabulary (vocab.txt, vocab.json, tokenizer.json's
 * model.vocab) is read into. The table hashes the token bytes (FNV-1a, open addressing,
 * kept at most half full) and keeps the tokens in one arena, so a 50k-token vocabulary
 * is three allocations rather than 50k. */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "data/tokenizer_impl.h"

/* ---- growable arrays --------------------------------------------------------------- */

nep_status nep_ids_push(nep_ids *a, int32_t x, nep_err *err) {
    if (a->n == a->cap) {
        int64_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) return nep_fail(err, NEP_ERR_NOMEM, "tokenizer: out of memory");
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return NEP_OK;
}

nep_status nep_str_append(nep_str *b, const char *s, size_t n, nep_err *err) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return nep_fail(err, NEP_ERR_NOMEM, "tokenizer: out of memory");
        b->s = p;
        b->cap = cap;
    }
    if (n) memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0; /* always terminated: callers may print or look it up as a C string */
    return NEP_OK;
}

nep_status nep_str_append_cp(nep_str *b, int32_t c, nep_err *err) {
    utf8proc_uint8_t u[4];
    utf8proc_ssize_t n = utf8proc_encode_char(c, u);
    return nep_str_append(b, (const char *)u, (size_t)n, err);
}

/* ---- vocabulary ----------------------------------------------------------------------- */

static uint64_t str_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static int64_t vocab_slot(const nep_vocab *v, const char *s, size_t n) {
    int64_t i = (int64_t)(str_hash(s, n) & (uint64_t)(v->cap - 1));
    for (;; i = (i + 1) & (v->cap - 1)) {
        uint64_t e = v->slots[i];
        if (!e) return i;
        const char *t = v->arena + ((e >> 32) - 1);
        if (strncmp(t, s, n) == 0 && t[n] == 0) return i;
    }
}

static nep_status vocab_grow(nep_vocab *v, nep_err *err) {
    nep_vocab g = *v;
    g.cap = v->cap ? v->cap * 2 : 1024;
    g.slots = calloc((size_t)g.cap, sizeof *g.slots);
    if (!g.slots) return nep_fail(err, NEP_ERR_NOMEM, "vocabulary: out of memory");
    for (int64_t i = 0; i < v->cap; i++) {
        if (!v->slots[i]) continue;
        const char *t = v->arena + ((v->slots[i] >> 32) - 1);
        g.slots[vocab_slot(&g, t, strlen(t))] = v->slots[i];
    }
    free(v->slots);
    v->slots = g.slots;
    v->cap = g.cap;
    return NEP_OK;
}

static nep_status vocab_store(nep_vocab *v, const char *s, size_t n, size_t *off, nep_err *err) {
    if (v->arena_n + n + 1 > v->arena_cap) {
        size_t cap = v->arena_cap ? v->arena_cap : 4096;
        while (cap < v->arena_n + n + 1) cap *= 2;
        char *a = realloc(v->arena, cap);
        if (!a) return nep_fail(err, NEP_ERR_NOMEM, "vocabulary: out of memory");
        v->arena = a;
        v->arena_cap = cap;
    }
    *off = v->arena_n;
    memcpy(v->arena + v->arena_n, s, n);
    v->arena[v->arena_n + n] = 0;
    v->arena_n += n + 1;
    return NEP_OK;
}

static nep_status vocab_index_id(nep_vocab *v, int32_t id, size_t off, nep_err *err) {
    if (id >= v->id_cap) {
        int64_t cap = v->id_cap ? v->id_cap : 1024;
        while (cap <= id) cap *= 2;
        int64_t *b = realloc(v->by_id, (size_t)cap * sizeof *b);
        if (!b) return nep_fail(err, NEP_ERR_NOMEM, "vocabulary: out of memory");
        memset(b + v->id_cap, 0, (size_t)(cap - v->id_cap) * sizeof *b);
        v->by_id = b;
        v->id_cap = cap;
    }
    if (!v->by_id[id]) v->by_id[id] = (int64_t)off + 1;
    return NEP_OK;
}

nep_status nep_vocab_add(nep_vocab *v, const char *s, size_t n, int32_t id, nep_err *err) {
    if (id < 0) return nep_fail(err, NEP_ERR_FORMAT, "negative id %d", id);
    if (memchr(s, 0, n)) return nep_fail(err, NEP_ERR_FORMAT, "token holds a NUL byte");
    if ((v->n + 1) * 2 > v->cap) NEP_TRY(vocab_grow(v, err));
    int64_t i = vocab_slot(v, s, n);
    if (v->slots[i]) return nep_fail(err, NEP_ERR_FORMAT, "duplicate token '%.*s'", (int)n, s);
    size_t off = 0;
    NEP_TRY(vocab_store(v, s, n, &off, err));
    v->slots[i] = (uint64_t)(off + 1) << 32 | (uint32_t)id;
    v->n++;
    return vocab_index_id(v, id, off, err);
}

int32_t nep_vocab_find(const nep_vocab *v, const char *s, size_t n) {
    if (!v->cap) return -1;
    uint64_t e = v->slots[vocab_slot(v, s, n)];
    return e ? (int32_t)(uint32_t)e : -1;
}

const char *nep_vocab_token(const nep_vocab *v, int32_t id) {
    if (id < 0 || id >= v->id_cap || !v->by_id[id]) return NULL;
    return v->arena + (v->by_id[id] - 1);
}

int64_t nep_vocab_size(const nep_vocab *v) {
    int64_t n = v->id_cap;
    while (n > 0 && !v->by_id[n - 1]) n--;
    return n;
}

void nep_vocab_free(nep_vocab *v) {
    free(v->arena);
    free(v->slots);
    free(v->by_id);
    memset(v, 0, sizeof *v);
}
