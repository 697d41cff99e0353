/* The tokenizers' insides, shared by their source files and by tests that check the
 * parts (nothing outside src/data/ needs them: include/nepenthe/tokenizer.h is the API).
 *   tokenizer_vocab.c   the token table and the growable arrays
 *   wordpiece.c         BertNormalizer, BertPreTokenizer and WordPiece
 *   bpe.c               ByteLevel (GPT-2's regex), Llama 3's Split regex, byte-level BPE,
 *                       merges lines
 *   tokenizer_files.c   vocab.txt, vocab.json + merges.txt, opening a path, freeing
 *   tokenizer_json.c    tokenizer.json
 *   tokenizer.c         encoding: added tokens, pairs, truncation, templates, padding
 *   tokenizer_decode.c  decoding: ids to tokens to text (ByteLevel, WordPiece decoders) */
#ifndef NEPENTHE_DATA_TOKENIZER_IMPL_H
#define NEPENTHE_DATA_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nepenthe/status.h"
#include "nepenthe/tokenizer.h"
#include "nepenthe/utf8.h"

/* ---- containers (tokenizer_vocab.c) --------------------------------------------------- */

/* A growable array of int32 (token ids). Zero-initialize; free with free(v). */
typedef struct nep_ids {
    int32_t *v;
    int64_t n, cap;
} nep_ids;
nep_status nep_ids_push(nep_ids *a, int32_t x, nep_err *err);

/* A growable byte string, kept NUL-terminated after any append. Zero-initialize; free
 * with free(s). */
typedef struct nep_str {
    char *s;
    size_t n, cap;
} nep_str;
nep_status nep_str_append(nep_str *b, const char *s, size_t n, nep_err *err);
/* Appends code point c (< 0x110000, not a surrogate) as UTF-8. */
nep_status nep_str_append_cp(nep_str *b, int32_t c, nep_err *err);

/* A token <-> id table (open addressing over the token bytes). Ids are 0..n-1 but may
 * be sparse in files; nep_vocab_token returns NULL for an id no token has. Owns copies
 * of the strings. Zero-initialize, free with nep_vocab_free. */
typedef struct nep_vocab {
    char *arena;          /* the tokens' bytes, each followed by a NUL */
    size_t arena_n, arena_cap;
    uint64_t *slots;      /* [cap]: (arena offset + 1) << 32 | id, 0 = empty */
    int64_t cap, n;
    int64_t *by_id;       /* [id_cap]: arena offset + 1 of each id, 0 = none */
    int64_t id_cap;
} nep_vocab;
/* Adds token s (n bytes) with id. A token already present keeps its first id and the
 * call returns NEP_ERR_FORMAT (callers name their file and line). */
nep_status nep_vocab_add(nep_vocab *v, const char *s, size_t n, int32_t id, nep_err *err);
/* The id of token s (n bytes), or -1. */
int32_t nep_vocab_find(const nep_vocab *v, const char *s, size_t n);
/* The token of id (NUL-terminated), or NULL. */
const char *nep_vocab_token(const nep_vocab *v, int32_t id);
/* 1 + the largest id. */
int64_t nep_vocab_size(const nep_vocab *v);
void nep_vocab_free(nep_vocab *v);

/* ---- characters ------------------------------------------------------------------------ */

/* NEP_OK when s is valid UTF-8; otherwise NEP_ERR_ARG with the offset of the first bad
 * byte, the message starting with `what` (tokenizer_files.c). */
nep_status nep_utf8_check(const char *s, size_t n, const char *what, nep_err *err);

/* Unicode's White_Space property, as Rust's char::is_whitespace (which `tokenizers`
 * uses) has it. Inline: the pre-tokenizers ask it of every character. */
static inline bool nep_uni_is_whitespace(int32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ---- WordPiece (wordpiece.c) ------------------------------------------------------------- */

/* BertNormalizer: appends the normalized form of s (n bytes, valid UTF-8) to out. */
nep_status nep_bert_normalize(const nep_bert_norm *o, const char *s, size_t n, nep_str *out,
                              nep_err *err);

/* WordPiece model: greedy longest-match-first with "##" continuations. */
typedef struct nep_wordpiece {
    nep_vocab vocab;
    int32_t unk_id;             /* id of unk_token ("[UNK]") */
    char prefix[16];            /* continuing_subword_prefix ("##") */
    int64_t max_input_chars_per_word; /* 100 */
} nep_wordpiece;
/* BertPreTokenizer (split on whitespace, isolate punctuation) then WordPiece on each
 * word of s (normalized text, n bytes), appending ids to out. */
nep_status nep_wordpiece_encode(const nep_wordpiece *wp, const char *s, size_t n, nep_ids *out,
                                nep_err *err);

/* ---- byte-level BPE (bpe.c) --------------------------------------------------------------- */

typedef struct nep_bpe {
    nep_vocab vocab;
    uint64_t *merge_slots;      /* [merge_cap] open addressing: key (a << 32 | b) */
    uint64_t *merge_vals;       /* [merge_cap] rank << 32 | new id */
    int64_t merge_cap, merges;
    int32_t byte_id[256];       /* id of each byte's ByteLevel character, -1 if absent */
    int32_t unk_id;             /* -1: none (characters missing from vocab are dropped) */
    bool add_prefix_space;      /* ByteLevel pre-tokenizer's option (per pre-token after a
                                 * Split, as there) */
    bool ignore_merges;         /* a whole pre-token found in vocab is one token */
    bool llama3_split;          /* pre-tokenizer Sequence[Split(Llama 3's regex, Isolated),
                                 * ByteLevel(use_regex false)] instead of GPT-2's regex */
} nep_bpe;

/* Llama 3's pre-tokenizer regex, the one Split pattern this code implements (by hand, in
 * bpe.c): tokenizer.json's pre_tokenizer.pretokenizers[0].pattern.Regex must equal it. */
#define NEP_LLAMA3_PATTERN                                                       \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"         \
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* The end of the match of Llama 3's regex that starts at s[i] (i < n, s valid UTF-8):
 * every position starts a non-empty match, so the matches tile the text. */
size_t nep_llama3_match(const char *s, size_t n, size_t i);
/* The code point ByteLevel maps byte b to (GPT-2's bytes_to_unicode). */
int32_t nep_byte_level_char(uint8_t b);
/* Records merge `a b` (tokens, NUL-terminated) with rank; errors name `where`. */
nep_status nep_bpe_add_merge(nep_bpe *m, const char *a, const char *b, int64_t rank,
                             const char *where, nep_err *err);
/* The same from one line "a b" (s, n bytes: merges.txt's lines, the strings of
 * tokenizer.json's model.merges). */
nep_status nep_bpe_add_merge_line(nep_bpe *m, const char *s, size_t n, int64_t rank,
                                  const char *where, nep_err *err);
/* Fills byte_id from the vocabulary; call after the vocabulary is complete. */
void nep_bpe_finish(nep_bpe *m);
/* The pre-tokenizer (ByteLevel with its optional prefix space and GPT-2's regex, or Llama
 * 3's Split then ByteLevel) and BPE merges by rank on s (n bytes, valid UTF-8), appending
 * ids to out. */
nep_status nep_bpe_encode(const nep_bpe *m, const char *s, size_t n, nep_ids *out, nep_err *err);
void nep_bpe_free(nep_bpe *m);

/* ---- the tokenizer ----------------------------------------------------------------------- */

typedef enum nep_tok_model { NEP_TOK_WORDPIECE, NEP_TOK_BPE } nep_tok_model;

/* A token cut out of the raw text before normalization (added_tokens). */
typedef struct nep_added_token {
    char *content;
    int32_t id;
    bool single_word, lstrip, rstrip, normalized, special;
} nep_added_token;

/* One element of a post-processing template: a special token's ids, or sequence A (0)
 * or B (1), each with its type id. */
typedef struct nep_tpl_item {
    int seq;            /* 0: A, 1: B, -1: special token */
    int32_t ids[4];     /* the special token's ids */
    int nids;
    int32_t type_id;
} nep_tpl_item;
#define NEP_TPL_MAX 8

/* One decoder of tokenizer.json's "decoder" (a Sequence's are run in order). */
typedef enum nep_dec_kind { NEP_DEC_BYTE_LEVEL, NEP_DEC_WORDPIECE } nep_dec_kind;
typedef struct nep_dec_step {
    nep_dec_kind kind;
    bool cleanup;       /* WordPiece: undo the spaces before punctuation and contractions */
    char prefix[16];    /* WordPiece: the continuing-subword prefix it removes ("##") */
} nep_dec_step;
#define NEP_DEC_MAX 8

struct nep_tokenizer {
    nep_tok_model model;
    nep_wordpiece wp;              /* model == NEP_TOK_WORDPIECE */
    nep_bpe bpe;                   /* model == NEP_TOK_BPE */
    bool has_bert_norm;            /* normalizer: BertNormalizer, or none */
    nep_bert_norm norm;
    nep_added_token *added;        /* [n_added], longest first (leftmost-longest match) */
    int64_t n_added;
    bool added_first[256];         /* whether some added token starts with this byte */
    nep_tpl_item single[NEP_TPL_MAX], pair[NEP_TPL_MAX]; /* post-processor templates */
    int n_single, n_pair;          /* 0 and 0: no post-processor */
    int64_t file_max_length;       /* tokenizer.json's truncation.max_length, 0: none */
    int64_t file_pad_length;       /* its padding Fixed length, 0: none */
    int32_t pad_id, pad_type_id;   /* padding's ids (file's, or the pad token's; 0) */
    /* decoding (tokenizer_decode.c) */
    bool has_decoder;              /* false: tokens joined by spaces */
    nep_dec_step dec[NEP_DEC_MAX]; /* the decoders, in order (none: an empty Sequence) */
    int n_dec;
    char *dec_refusal;             /* a decoder not implemented: decode's error message */
    int64_t *added_by_id;          /* [n_added] id << 32 | index into added, sorted */
    nep_vocab specials;            /* the contents of the special added tokens */
};

/* ---- loading, shared by tokenizer_files.c and tokenizer_json.c ---------------------- */

/* Reads a whole file that must be UTF-8 into *data (NUL-terminated, n bytes; free it). */
nep_status nep_tok_read_text(const char *path, char **data, size_t *n, nep_err *err);
/* Registers an added token (its content is copied); errors name `where`. */
nep_status nep_tok_add_token(nep_tokenizer *t, const nep_added_token *a, const char *where,
                             nep_err *err);
/* BertProcessing's template around cls and sep, or RobertaProcessing's when roberta. */
void nep_tok_set_template(nep_tokenizer *t, int32_t cls, int32_t sep, bool roberta);
/* The pad id when the file gives none: the vocabulary's pad token, else 0. */
void nep_tok_default_pad(nep_tokenizer *t);
/* A JSON object {token: id} into v; errors name `where` (tokenizer_json.c). */
struct cJSON;
nep_status nep_tok_json_vocab(const struct cJSON *o, const char *where, nep_vocab *v,
                              nep_err *err);
/* Reads tokenizer.json at path into t (zeroed but for unk and pad ids of -1). */
nep_status nep_tok_load_json(const char *path, nep_tokenizer *t, nep_err *err);
/* Builds what decoding looks added tokens up by (added_by_id, specials); call once the
 * added tokens are final (tokenizer_decode.c). */
nep_status nep_tok_decode_index(nep_tokenizer *t, nep_err *err);
/* The decoder set to one step of kind (vocab.txt's WordPiece "##" with cleanup, vocab.json
 * + merges.txt's ByteLevel). */
void nep_tok_set_decoder(nep_tokenizer *t, nep_dec_kind kind);

#endif
