/* libFuzzer harness: nep_tokenizer_open on each kind of tokenizer file, then
 * nep_tokenizer_encode of fuzzed text with the tokenizer that loaded. Layout:
 *   byte 0  bits 0-1: the files, (value % 3): 0 vocab.txt, 1 vocab.json + merges.txt,
 *           2 tokenizer.json; 0x08: opts.add_prefix_space; 0x10: opts.norm from byte 3
 *           (else NULL, the default); 0x20: encode with nep_tokenizer_default_opts (what
 *           the file asks for; a length over 65536 is cut to 65536 to bound memory)
 *           instead of bytes 1-2; 0x40: encode a pair; 0x80: open the directory instead
 *           of the file (the directory holds only these files)
 *   byte 1  bit 0: add_special_tokens; bit 1: pad
 *   byte 2  max_length (0: no truncation)
 *   byte 3  BertNormalizer: bit 0 clean_text, bit 1 handle_chinese_chars, bit 2
 *           lowercase, bits 3-4 strip_accents (0: -1 "as lowercase", 1: 0, else 1)
 *   then fields (little-endian u16 length, then the bytes): the first file (vocab.txt,
 *   vocab.json or tokenizer.json), for kind 1 merges.txt, then text a; the rest of the
 *   input is text b (used for pairs).
 * A failed open must leave NULL and a message. An encoding that succeeds must fit
 * max_length (exactly, when padded), have a mask of ones then (padding only) zeros,
 * non-negative ids and type ids, and come out the same when the text is encoded again
 * into the same (reused) result. */
#include "fuzz_common.h"

#include "nepenthe/tokenizer.h"

static void check_encoding(const nep_encoding *e, const nep_encode_opts *o) {
    if (e->n < 0 || (e->n && (!e->ids || !e->type_ids || !e->attention_mask))) abort();
    if (o->max_length > 0 && e->n > o->max_length) abort();
    if (o->pad && e->n != o->max_length) abort();
    int pad_seen = 0;
    for (int64_t i = 0; i < e->n; i++) {
        const uint8_t m = e->attention_mask[i];
        if (m > 1 || e->ids[i] < 0 || e->type_ids[i] < 0) abort();
        if (m == 0) {
            if (!o->pad) abort(); /* only padding is masked */
            pad_seen = 1;
        } else if (pad_seen) {
            abort(); /* padding is on the right */
        }
    }
}

static void encode(const nep_tokenizer *t, const nep_encode_opts *o, const uint8_t *a,
                   size_t a_len, const uint8_t *b, size_t b_len, int pair) {
    nep_encoding e = {0};
    nep_err err = {0};
    const char *bs = pair ? (const char *)b : NULL;
    const size_t bn = pair ? b_len : 0;
    if (nep_tokenizer_encode(t, (const char *)a, a_len, bs, bn, o, &e, &err) != NEP_OK) {
        if (!err.msg[0]) abort();
        fuzz_note("encode: %s", err.msg);
        nep_encoding_free(&e);
        return;
    }
    fuzz_note("encode: %lld tokens", (long long)e.n);
    check_encoding(&e, o);
    /* the same text again, into the result that already holds it: the same tokens */
    const int64_t n = e.n;
    int32_t *ids = malloc(sizeof *ids * (size_t)(n + 1));
    int32_t *types = malloc(sizeof *types * (size_t)(n + 1));
    if (!ids || !types) abort();
    if (n) memcpy(ids, e.ids, sizeof *ids * (size_t)n);
    if (n) memcpy(types, e.type_ids, sizeof *types * (size_t)n);
    if (nep_tokenizer_encode(t, (const char *)a, a_len, bs, bn, o, &e, &err) != NEP_OK ||
        e.n != n || (n && (memcmp(e.ids, ids, sizeof *ids * (size_t)n) ||
                           memcmp(e.type_ids, types, sizeof *types * (size_t)n)))) {
        printf("encoding the same text twice gave different results\n");
        fflush(stdout);
        abort();
    }
    free(ids);
    free(types);
    nep_encoding_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    const char *dir = fuzz_dir("tokenizer");
    fuzz_clear(dir); /* the directory holds this input's files only */
    const int kind = (data[0] & 3) % 3, pair = data[0] & 0x40, use_dir = data[0] & 0x80;
    const int file_opts = data[0] & 0x20;
    nep_tokenizer_opts topts = {.add_prefix_space = (data[0] & 0x08) != 0};
    const int sa = (data[3] >> 3) & 3;
    nep_bert_norm norm = {(data[3] & 1) != 0, (data[3] & 2) != 0, (data[3] & 4) != 0,
                          sa == 0 ? -1 : sa == 1 ? 0 : 1};
    if (data[0] & 0x10) topts.norm = &norm;
    nep_encode_opts eopts = {(data[1] & 1) != 0, data[2], (data[1] & 2) != 0};
    data += 4;
    size -= 4;

    static const char *const first_name[3] = {"vocab.txt", "vocab.json", "tokenizer.json"};
    char path[512], merges[512];
    size_t n;
    const uint8_t *f = fuzz_take_field(&data, &size, &n);
    fuzz_write(fuzz_path(path, sizeof path, dir, first_name[kind]), f, n);
    if (kind == 1) {
        const uint8_t *m = fuzz_take_field(&data, &size, &n);
        fuzz_write(fuzz_path(merges, sizeof merges, dir, "merges.txt"), m, n);
    }
    size_t a_len;
    const uint8_t *a = fuzz_take_field(&data, &size, &a_len);
    const uint8_t *b = data;
    const size_t b_len = size;

    nep_tokenizer *t = NULL;
    nep_err err = {0};
    if (nep_tokenizer_open(use_dir ? dir : path, &topts, &t, &err) != NEP_OK) {
        if (t || !err.msg[0]) abort(); /* fails with NULL, says why */
        fuzz_note("open: %s", err.msg);
    } else {
        if (!t || nep_tokenizer_vocab_size(t) < 1) abort();
        if (file_opts) {
            eopts = nep_tokenizer_default_opts(t);
            if (eopts.max_length > 65536) eopts.max_length = 65536;
        }
        encode(t, &eopts, a, a_len, b, b_len, pair);
        nep_tokenizer_free(t);
    }
    fuzz_clear(dir);
    return 0;
}
