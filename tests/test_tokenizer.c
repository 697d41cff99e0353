/* Tokenizers on tiny hand-written vocabularies (issue 15, item 3): BERT normalization,
 * punctuation and CJK splitting, WordPiece's greedy longest match and [UNK], GPT-2's
 * pre-tokenizer regex and byte-level BPE merges by rank, pairs with special tokens,
 * longest-first truncation, padding, and every error naming its file or key. The
 * expected ids were worked out by hand from the rules in tokenizers' source; the golden
 * comparison against PyPI's tokenizers on a real corpus is tests/tokenizer_test.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "nepenthe/tokenizer.h"
#include "data/tokenizer_impl.h" /* nep_byte_level_char */

static char dir[256];

static const char *write_file(const char *name, const char *text) {
    static char path[8][512];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* ids 0..: [PAD] [UNK] [CLS] [SEP] [MASK] un ##aff ##able hello , ! world ##s a 中 cafe */
static const char *VOCAB = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\nhello\n,\n!\n"
                           "world\n##s\na\n\xe4\xb8\xad\ncafe\n";

static void expect(const nep_encoding *e, const int32_t *ids, int n) {
    assert_int_equal(e->n, n);
    for (int i = 0; i < n; i++) assert_int_equal(e->ids[i], ids[i]);
}

static void encode(const nep_tokenizer *t, const char *a, const char *b, int64_t max_len, bool pad,
                   nep_encoding *e) {
    nep_encode_opts o = {true, max_len, pad};
    nep_err err;
    assert_int_equal(nep_tokenizer_encode(t, a, strlen(a), b, b ? strlen(b) : 0, &o, e, &err), NEP_OK);
}

static void test_wordpiece(void **state) {
    nep_tokenizer *t;
    nep_err err;
    assert_int_equal(nep_tokenizer_open(write_file("vocab.txt", VOCAB), NULL, &t, &err), NEP_OK);
    nep_encoding e = {0};
    /* lower-casing, accent stripping (café -> cafe), punctuation, ## continuations,
     * CJK spacing (a中 -> a 中), an uncoverable word -> [UNK], control chars dropped */
    encode(t, "UnAffable, Hello!\tWORLDs caf\xc3\xa9 a\xe4\xb8\xad zz\x01", NULL, 0, false, &e);
    int32_t want[] = {2, 5, 6, 7, 9, 8, 10, 11, 12, 15, 13, 14, 1, 3};
    expect(&e, want, 14);
    /* added tokens in the raw text: [SEP] is cut out before lower-casing */
    encode(t, "hello[SEP]a", NULL, 0, false, &e);
    int32_t want2[] = {2, 8, 3, 13, 3};
    expect(&e, want2, 5);
    nep_encoding_free(&e);
    nep_tokenizer_free(t);
}

static void test_cased(void **state) {
    nep_tokenizer *t;
    nep_err err;
    nep_bert_norm cased = {true, true, false, 0};
    nep_tokenizer_opts o = {&cased, false};
    assert_int_equal(nep_tokenizer_open(write_file("vocab.txt", VOCAB), &o, &t, &err), NEP_OK);
    nep_encoding e = {0};
    encode(t, "Hello hello caf\xc3\xa9", NULL, 0, false, &e);
    int32_t want[] = {2, 1, 8, 1, 3};
    expect(&e, want, 5);
    nep_encoding_free(&e);
    nep_tokenizer_free(t);
}

/* A long word (> 100 characters) is one [UNK]. */
static void test_long_word(void **state) {
    nep_tokenizer *t;
    nep_err err;
    assert_int_equal(nep_tokenizer_open(write_file("vocab.txt", VOCAB), NULL, &t, &err), NEP_OK);
    char s[256];
    memset(s, 'a', 101);
    s[101] = 0;
    nep_encoding e = {0};
    encode(t, s, NULL, 0, false, &e);
    int32_t want[] = {2, 1, 3};
    expect(&e, want, 3);
    nep_encoding_free(&e);
    nep_tokenizer_free(t);
}

/* Pairs: [CLS] a [SEP] b [SEP] with type ids 0/1; longest_first truncation; padding. */
static void test_pair_truncate_pad(void **state) {
    nep_tokenizer *t;
    nep_err err;
    assert_int_equal(nep_tokenizer_open(write_file("vocab.txt", VOCAB), NULL, &t, &err), NEP_OK);
    nep_encoding e = {0};
    encode(t, "a a a a a", "hello hello", 9, true, &e); /* 5 + 2 + 3 specials > 9: 6 left */
    int32_t ids[] = {2, 13, 13, 13, 13, 3, 8, 8, 3};
    expect(&e, ids, 9);
    int32_t types[] = {0, 0, 0, 0, 0, 0, 1, 1, 1};
    for (int i = 0; i < 9; i++) assert_int_equal(e.type_ids[i], types[i]);
    /* both long: halves, the odd token to the longer (the first here) */
    encode(t, "a a a a a a", "hello hello hello hello hello", 8, false, &e);
    int32_t ids2[] = {2, 13, 13, 13, 3, 8, 8, 3};
    expect(&e, ids2, 8);
    /* equal lengths: the second gets the odd one */
    encode(t, "a a a a", "hello hello hello hello", 8, false, &e);
    int32_t ids3[] = {2, 13, 13, 3, 8, 8, 8, 3};
    expect(&e, ids3, 8);
    encode(t, "a", NULL, 6, true, &e);
    int32_t ids4[] = {2, 13, 3, 0, 0, 0};
    expect(&e, ids4, 6);
    assert_int_equal(e.attention_mask[2], 1);
    assert_int_equal(e.attention_mask[3], 0);
    nep_encode_opts o = {true, 1, false};
    assert_int_equal(nep_tokenizer_encode(t, "a", 1, NULL, 0, &o, &e, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "max_length"));
    assert_int_equal(nep_tokenizer_encode(t, "a\xff", 2, NULL, 0, &o, &e, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "byte offset 1"));
    nep_encoding_free(&e);
    nep_tokenizer_free(t);
}

/* Byte-level BPE: Ġ (U+0120) is the space's stand-in; merges apply by rank. */
static void test_bpe(void **state) {
    const char *vocab = write_file("vocab.json",
        "{\"<s>\":0,\"<pad>\":1,\"</s>\":2,\"<unk>\":3,\"h\":4,\"e\":5,\"l\":6,\"o\":7,"
        "\"\\u0120\":8,\"he\":9,\"ll\":10,\"hell\":11,\"hello\":12,\"\\u0120h\":13,\"'\":14,\"s\":15,\"!\":16,"
        "\"\\u010a\":17}");
    write_file("merges.txt", "#version: 0.2\nl l\nh e\nhe ll\nhell o\n\xc4\xa0 h\n"); /* beside vocab.json */
    nep_tokenizer *t;
    nep_err err;
    assert_int_equal(nep_tokenizer_open(vocab, NULL, &t, &err), NEP_OK);
    nep_encoding e = {0};
    /* "hello" | " hello": "h e" (rank 1) merges before "Ġ h" (rank 4), so Ġ stays alone |
     * "'s" | "!!" | "\n" */
    encode(t, "hello hello's!!\n", NULL, 0, false, &e);
    int32_t want[] = {0, 12, 8, 12, 14, 15, 16, 16, 17, 2};
    expect(&e, want, 10);
    /* RoBERTa pairs: <s> a </s></s> b </s>, type ids 0 */
    encode(t, "he", "lo", 0, false, &e);
    int32_t want2[] = {0, 9, 2, 2, 6, 7, 2};
    expect(&e, want2, 7);
    for (int i = 0; i < 7; i++) assert_int_equal(e.type_ids[i], 0);
    /* \s+(?!\S): of "  h" the first space stands alone, the second joins h */
    encode(t, "  h", NULL, 0, false, &e);
    int32_t want3[] = {0, 8, 13, 2};
    expect(&e, want3, 4);
    nep_tokenizer_free(t);
    /* the add_prefix_space option: "he" is read as " he", Ġ then he (merged first) */
    nep_tokenizer_opts prefix = {NULL, true};
    assert_int_equal(nep_tokenizer_open(vocab, &prefix, &t, &err), NEP_OK);
    encode(t, "he", NULL, 0, false, &e);
    int32_t want4[] = {0, 8, 9, 2};
    expect(&e, want4, 4);
    nep_encoding_free(&e);
    nep_tokenizer_free(t);
    assert_int_equal(nep_byte_level_char(' '), 0x120);
    assert_int_equal(nep_byte_level_char('\n'), 0x10A);
    assert_int_equal(nep_byte_level_char('A'), 'A');
}

static void test_errors(void **state) {
    nep_tokenizer *t;
    nep_err err;
    char missing[512];
    snprintf(missing, sizeof missing, "%s/nothing.txt", dir);
    assert_int_equal(nep_tokenizer_open(missing, NULL, &t, &err), NEP_ERR_IO);
    assert_non_null(strstr(err.msg, missing));
    assert_null(t);
    assert_int_equal(nep_tokenizer_open(write_file("v1.txt", "[UNK]\n\n[CLS]\n"), NULL, &t, &err), NEP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "v1.txt:2"));
    assert_int_equal(nep_tokenizer_open(write_file("v2.txt", "[UNK]\n[CLS]\n[UNK]\n"), NULL, &t, &err), NEP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "v2.txt:3"));
    assert_int_equal(nep_tokenizer_open(write_file("v3.txt", "a\nb\n"), NULL, &t, &err), NEP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "[UNK]"));
    assert_int_equal(nep_tokenizer_open(write_file("bad.json", "{\"model\": "), NULL, &t, &err), NEP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "bad.json"));
    assert_int_equal(nep_tokenizer_open(write_file("u.json", "{\"model\": {\"type\": \"Unigram\"}}"), NULL, &t, &err),
                     NEP_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "model.type"));
    assert_int_equal(nep_tokenizer_open(write_file("n.json",
        "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0}},"
        " \"normalizer\": {\"type\": \"NFKC\"}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}"), NULL, &t, &err),
        NEP_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "normalizer.type"));
    const char *v = write_file("vocab.json", "{\"a\": 0, \"b\": 1}");
    write_file("merges.txt", "a b c\n");
    assert_int_equal(nep_tokenizer_open(v, NULL, &t, &err), NEP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "merges.txt:1"));
    assert_null(t);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/nep_tok_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wordpiece), cmocka_unit_test(test_cased),
        cmocka_unit_test(test_long_word), cmocka_unit_test(test_pair_truncate_pad),
        cmocka_unit_test(test_bpe), cmocka_unit_test(test_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) rc = rc ? rc : 1;
    return rc;
}
