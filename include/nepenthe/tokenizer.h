/* Text tokenizers that give, id for id, what Hugging Face's `tokenizers` (PyPI 0.21.4,
 * pinned in scripts/requirements-nodeps.txt) gives: WordPiece (BERT) and byte-level BPE
 * (GPT-2, RoBERTa, Llama 3).
 *
 * Files: vocab.txt (WordPiece, one token a line, id = line number - 1); vocab.json +
 * merges.txt (byte-level BPE); tokenizer.json (either, model.type "WordPiece" or "BPE",
 * with its normalizer, pre_tokenizer, post_processor, added_tokens, truncation and
 * padding as far as BERT, RoBERTa, GPT-2 and Llama 3 style files use them; any other
 * component is refused with a message naming the key). Llama 3's file: BPE with
 * ignore_merges (a pre-token that is itself a token is taken whole), pre_tokenizer
 * Sequence [Split on Llama 3's regex (the only Split regex accepted), ByteLevel without
 * its regex], post_processor Sequence [ByteLevel, TemplateProcessing]. Added tokens get
 * the ids `tokenizers` gives them on reading (the vocabulary's id, else the next free
 * one), which for such files are the ids written in them.
 *
 * Text is UTF-8. Hugging Face's library takes Rust strings, which are valid UTF-8 by
 * construction, so invalid UTF-8 is refused here (NEP_ERR_ARG, naming the byte offset)
 * rather than guessed at.
 *
 * The pipeline, as in `tokenizers`: added (special) tokens are cut out of the raw text
 * first; each remaining piece is normalized (BertNormalizer), pre-tokenized
 * (BertPreTokenizer, ByteLevel with GPT-2's regex, or Llama 3's Split then ByteLevel) and
 * run through the model (WordPiece or BPE); then a pair is truncated (longest first),
 * special tokens are added by the post-processor (BERT `[CLS] a [SEP] b [SEP]`, type ids
 * 0/1; RoBERTa `<s> a </s></s> b </s>`, type ids all 0; Llama 3 `<|begin_of_text|> a`),
 * and the result is padded. */
#ifndef NEPENTHE_TOKENIZER_H
#define NEPENTHE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nepenthe/status.h"

/* A loaded tokenizer; opaque, immutable once open (encode takes it const, so threads may
 * share one). */
typedef struct nep_tokenizer nep_tokenizer;

/* BertNormalizer's options. strip_accents < 0 means "as lowercase" (null in JSON). */
typedef struct nep_bert_norm {
    bool clean_text, handle_chinese_chars, lowercase;
    int strip_accents;
} nep_bert_norm;

/* What a file does not say. Zero-initialized (or NULL) means the defaults. */
typedef struct nep_tokenizer_opts {
    /* vocab.txt: its BertNormalizer; NULL: bert-base-uncased's (clean text, CJK spacing,
     * lower-casing and accent stripping). tokenizer.json names its own. */
    const nep_bert_norm *norm;
    /* byte-level BPE: a space before each text (ByteLevel's add_prefix_space). false
     * leaves vocab.json + merges.txt without one (RoBERTa's) and tokenizer.json as the
     * file says; true turns it on for either. Ignored for WordPiece. */
    bool add_prefix_space;
} nep_tokenizer_opts;

/* Opens path: a tokenizer.json (ends in .json), a vocab.json with merges.txt beside it, a
 * vocab.txt (any other file), or a directory holding tokenizer.json, else vocab.json +
 * merges.txt, else vocab.txt. vocab.txt gets BERT's post-processor ([UNK], [CLS] and [SEP]
 * must be in it); vocab.json + merges.txt (the first line of merges.txt may be a
 * "#version" comment) RoBERTa's (<s> and </s> must be in it). o NULL: the defaults.
 * Errors (the message names the file, and the line or JSON key): missing or unreadable
 * file (NEP_ERR_IO), malformed line or JSON, duplicate token, missing special token
 * (NEP_ERR_FORMAT), a model type or component this code does not implement
 * (NEP_ERR_UNSUPPORTED), out of memory. On failure *out is NULL. */
nep_status nep_tokenizer_open(const char *path, const nep_tokenizer_opts *o, nep_tokenizer **out,
                              nep_err *err);
/* Frees t (NULL is allowed). */
void nep_tokenizer_free(nep_tokenizer *t);

/* What encode does after the model. max_length 0: no truncation; pad needs
 * max_length > 0 and pads to exactly max_length (padding Fixed). */
typedef struct nep_encode_opts {
    bool add_special_tokens;   /* run the post-processor (true in Hugging Face's default) */
    int64_t max_length;        /* truncate (longest_first) so the result fits, 0: never */
    bool pad;                  /* pad on the right to max_length */
} nep_encode_opts;
/* The options tokenizer.json asks for (its truncation and Fixed padding), special
 * tokens on. */
nep_encode_opts nep_tokenizer_default_opts(const nep_tokenizer *t);

/* The result: n tokens, each with its id, type id and attention mask (0 on padding).
 * Zero-initialize; reusable across calls (the arrays grow); free with nep_encoding_free. */
typedef struct nep_encoding {
    int64_t n, cap;
    int32_t *ids, *type_ids;
    uint8_t *attention_mask;
} nep_encoding;

/* Encodes text a (a_len bytes) or the pair a, b (b != NULL) into out. Errors: invalid
 * UTF-8 (NEP_ERR_ARG, naming "first text" / "second text" and the byte offset),
 * max_length smaller than the special tokens it must hold, or pad without max_length
 * (NEP_ERR_ARG), out of memory. */
nep_status nep_tokenizer_encode(const nep_tokenizer *t, const char *a, size_t a_len,
                                const char *b, size_t b_len, const nep_encode_opts *o,
                                nep_encoding *out, nep_err *err);
void nep_encoding_free(nep_encoding *e);

/* The text of ids[0..n), as PyPI tokenizers' Tokenizer.decode(ids, skip_special_tokens)
 * gives it, byte for byte. Each id becomes its token: an added token's content when an
 * added token has the id, else the vocabulary's token (no normalization is undone: an
 * uncased vocabulary decodes lower-cased); with skip_special_tokens, tokens equal to the
 * content of an added token marked special ([CLS], <s>, <|begin_of_text|>, ...) are
 * dropped. The decoder then turns the tokens into text:
 *   - none (tokenizer.json's "decoder" null or absent): the tokens joined by spaces;
 *   - ByteLevel (GPT-2, RoBERTa, Llama 3, and vocab.json + merges.txt): each token whose
 *     characters are all ByteLevel stand-ins (Ġ for the space, ...) becomes those bytes,
 *     any other token (an added token such as " <mask>" or "é") its own UTF-8 bytes; the
 *     bytes of all the tokens are concatenated, and whatever is not well-formed UTF-8
 *     there (a character cut between tokens, a lone byte) becomes U+FFFD, one for each
 *     maximal part of an ill-formed sequence (Rust's String::from_utf8_lossy);
 *   - WordPiece (BERT, and vocab.txt, which gets prefix "##" and cleanup on): every token
 *     but the first loses its first prefix ("##") if it starts with it, else gets a space
 *     before it; with cleanup, each token so made then has " ." " ?" " !" " ," " ' "
 *     " n't" " 'm" " do not" " 's" " 've" " 're" replaced, in that order, by "." "?" "!"
 *     "," "'" "n't" "'m" " don't" "'s" "'ve" "'re" (token by token, so "do ' t" stays);
 *   - Sequence: its decoders in order, each on the strings the previous one gave (a
 *     ByteLevel gives one), concatenated at the end.
 * Errors: an id that has no token (NEP_ERR_ARG naming the id and its position; PyPI
 * silently drops such an id instead), a decoder type this code does not implement
 * (NEP_ERR_UNSUPPORTED naming the file, the key and the type: the file still opens and
 * encodes), out of memory. *text is malloc'd and NUL-terminated (free it), *len its length
 * in bytes (it may hold NUL bytes: ByteLevel's token for byte 0 decodes to one); NULL and 0
 * on failure. */
nep_status nep_tokenizer_decode(const nep_tokenizer *t, const int32_t *ids, int64_t n, bool skip_special_tokens,
                                char **text, size_t *len, nep_err *err);

/* The id of token s, or -1. */
int32_t nep_tokenizer_token_id(const nep_tokenizer *t, const char *s);
/* 1 + the largest id (added tokens included). */
int64_t nep_tokenizer_vocab_size(const nep_tokenizer *t);

#endif
