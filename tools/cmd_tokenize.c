/* nepenthe tokenize: token ids of texts read from standard input, with a Hugging Face
 * tokenizer (tokenizer.json, vocab.txt, vocab.json + merges.txt, or their directory).
 * One output line per text: the ids separated by spaces, or with --json an object with
 * ids, type_ids and attention_mask. With --decode the other way: each input line is a
 * text's ids, and its text is written as tokenizers' decode gives it (followed by a line
 * of the separator, if one is given, so that texts holding newlines stay apart and the
 * output reads back with the same --separator). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "nepenthe/tokenizer.h"

int cmd_tokenize(int argc, char **argv);

#define TOKENIZE_USAGE                                                                        \
    "--tokenizer PATH [--pair-file F] [--max-length N [--pad]] [--separator S] [--json] < TEXT\n" \
    "       nepenthe tokenize --tokenizer PATH --decode [--skip-special-tokens] [--separator S] < IDS"

typedef struct texts {
    char **s;
    size_t *n;
    int64_t count, cap;
    char *data; /* owns the bytes the texts point into */
} texts;

static int texts_push(texts *t, char *s, size_t n) {
    if (t->count == t->cap) {
        int64_t cap = t->cap ? t->cap * 2 : 1024;
        char **ps = realloc(t->s, (size_t)cap * sizeof *ps);
        if (ps) t->s = ps;
        size_t *pn = ps ? realloc(t->n, (size_t)cap * sizeof *pn) : NULL;
        if (!pn) return -1;
        t->n = pn;
        t->cap = cap;
    }
    t->s[t->count] = s;
    t->n[t->count++] = n;
    return 0;
}

/* Splits data into texts: each line (without its "\n"), or with a separator the lines
 * between lines equal to it (joined by "\n"; the fortune files' "%" convention). */
static int split_texts(char *data, size_t n, const char *sep, texts *out) {
    out->data = data;
    size_t seplen = sep ? strlen(sep) : 0;
    size_t start = 0;   /* start of the current text */
    bool open = false;  /* the current text has a line */
    for (size_t i = 0; i < n;) {
        char *e = memchr(data + i, '\n', n - i);
        size_t len = e ? (size_t)(e - (data + i)) : n - i;
        size_t next = i + len + (e != NULL);
        if (!sep) {
            if (texts_push(out, data + i, len)) return -1;
        } else if (len == seplen && memcmp(data + i, sep, len) == 0) {
            if (texts_push(out, data + start, open ? i - 1 - start : 0)) return -1;
            open = false;
            start = next;
        } else {
            open = true;
        }
        i = next;
    }
    if (sep && open) {
        size_t end = n > start && data[n - 1] == '\n' ? n - 1 : n;
        if (texts_push(out, data + start, end - start)) return -1;
    }
    return 0;
}

static char *slurp(FILE *f, size_t *n) {
    size_t cap = 1 << 20, len = 0;
    char *d = malloc(cap);
    while (d) {
        size_t got = fread(d + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
        if (len == cap) {
            char *p = realloc(d, cap *= 2);
            if (!p) free(d);
            d = p;
        }
    }
    if (d && ferror(f)) {
        free(d);
        return NULL;
    }
    *n = len;
    return d;
}

static void print_ints(FILE *f, const int32_t *v, int64_t n, char sep) {
    for (int64_t i = 0; i < n; i++) {
        if (i) putc(sep, f);
        fprintf(f, "%d", v[i]);
    }
}

static void print_encoding(const nep_encoding *e, bool json) {
    if (!json) {
        print_ints(stdout, e->ids, e->n, ' ');
        putchar('\n');
        return;
    }
    fputs("{\"ids\":[", stdout);
    print_ints(stdout, e->ids, e->n, ',');
    fputs("],\"type_ids\":[", stdout);
    print_ints(stdout, e->type_ids, e->n, ',');
    fputs("],\"attention_mask\":[", stdout);
    for (int64_t i = 0; i < e->n; i++) printf(i ? ",%d" : "%d", e->attention_mask[i]);
    fputs("]}\n", stdout);
}

static int load_texts(const char *path, const char *sep, texts *out) {
    FILE *f = path ? fopen(path, "rb") : stdin;
    if (!f) return cli_errorf("tokenize", "%s: cannot open", path);
    size_t n;
    char *d = slurp(f, &n);
    if (path) fclose(f);
    if (!d) return cli_errorf("tokenize", "%s: read error", path ? path : "standard input");
    if (split_texts(d, n, sep, out)) return cli_errorf("tokenize", "out of memory");
    return 0;
}

static void texts_free(texts *t) {
    free(t->s);
    free(t->n);
    free(t->data);
}

static int load_tokenizer(const char *path, bool cased, bool prefix_space, nep_tokenizer **t) {
    nep_bert_norm norm = {true, true, false, 0};
    nep_tokenizer_opts o = {cased ? &norm : NULL, prefix_space};
    nep_err err;
    if (nep_tokenizer_open(path, &o, t, &err) != NEP_OK) return cli_error("tokenize", &err);
    return 0;
}

static int run(const nep_tokenizer *tok, const texts *a, const texts *b, const nep_encode_opts *o,
               bool json, bool stats) {
    nep_encoding enc = {0};
    nep_err err;
    int64_t tokens = 0, bytes = 0;
    double clock_s = 0;
    for (int64_t i = 0; i < a->count; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        nep_status st = nep_tokenizer_encode(tok, a->s[i], a->n[i], b ? b->s[i] : NULL,
                                             b ? b->n[i] : 0, o, &enc, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        clock_s += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (st != NEP_OK) {
            nep_encoding_free(&enc);
            return cli_errorf("tokenize", "text %lld: %s", (long long)i + 1, err.msg);
        }
        tokens += enc.n;
        bytes += (int64_t)a->n[i] + (b ? (int64_t)b->n[i] : 0);
        print_encoding(&enc, json);
    }
    nep_encoding_free(&enc);
    if (stats)
        fprintf(stderr, "tokenize: %lld texts, %lld bytes, %lld tokens in %.3f s: %.2f MB/s\n",
                (long long)a->count, (long long)bytes, (long long)tokens, clock_s,
                clock_s > 0 ? (double)bytes / 1e6 / clock_s : 0.0);
    return 0;
}

/* ---- --decode --------------------------------------------------------------------------- */

typedef struct id_list {
    int32_t *v;
    int64_t n, cap;
} id_list;

static int ids_push(id_list *l, int32_t x) {
    if (l->n == l->cap) {
        int64_t cap = l->cap ? l->cap * 2 : 256;
        int32_t *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return 0;
}

static bool id_sep(char c) { return c == ' ' || c == ',' || c == '\t' || c == '\r'; }

/* The ids of one line (integers separated by spaces, tabs or commas) into out; on a word
 * that is not an id in 0..2^31-1, -1 with the reason in why. */
static int parse_ids(const char *s, size_t n, id_list *out, char *why, size_t why_n) {
    out->n = 0;
    for (size_t i = 0; i < n;) {
        if (id_sep(s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        int64_t v = 0;
        while (j < n && s[j] >= '0' && s[j] <= '9') {
            if (v <= INT32_MAX) v = v * 10 + (s[j] - '0'); /* past it, it stays past */
            j++;
        }
        size_t e = j;
        while (e < n && !id_sep(s[e])) e++;
        if (j == i || j != e || v > INT32_MAX) {
            snprintf(why, why_n, "'%.*s' is not an id (an integer 0..2147483647)", (int)(e - i > 40 ? 40 : e - i), s + i);
            return -1;
        }
        if (ids_push(out, (int32_t)v)) {
            snprintf(why, why_n, "out of memory");
            return -1;
        }
        i = e;
    }
    return 0;
}

/* One decoded text a line of ids, each followed by a line equal to sep when given. */
static int run_decode(const nep_tokenizer *tok, const texts *lines, bool skip, const char *sep,
                      bool stats) {
    id_list ids = {0};
    nep_err err;
    char why[128];
    int64_t total = 0, bytes = 0;
    double clock_s = 0;
    int rc = 0;
    for (int64_t i = 0; i < lines->count; i++) {
        if (parse_ids(lines->s[i], lines->n[i], &ids, why, sizeof why)) {
            rc = cli_errorf("tokenize", "line %lld: %s", (long long)i + 1, why);
            break;
        }
        char *text;
        size_t len;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        nep_status st = nep_tokenizer_decode(tok, ids.v, ids.n, skip, &text, &len, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        clock_s += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (st != NEP_OK) {
            rc = cli_errorf("tokenize", "line %lld: %s", (long long)i + 1, err.msg);
            break;
        }
        fwrite(text, 1, len, stdout); /* len, not strlen: byte 0's token decodes to a NUL */
        putchar('\n');
        if (sep) printf("%s\n", sep);
        free(text);
        total += ids.n;
        bytes += (int64_t)len;
    }
    free(ids.v);
    if (!rc && stats)
        fprintf(stderr, "tokenize: %lld lines, %lld ids, %lld bytes decoded in %.3f s: %.2f MB/s\n",
                (long long)lines->count, (long long)total, (long long)bytes, clock_s,
                clock_s > 0 ? (double)bytes / 1e6 / clock_s : 0.0);
    return rc;
}

/* The encoding options --decode has no use for: refused rather than ignored. */
static int decode_conflicts(const char *pair, int64_t max_length, bool pad, bool json, bool no_special) {
    const char *opt = pair ? "--pair-file" : max_length >= 0 ? "--max-length" : pad ? "--pad"
                      : json ? "--json" : no_special ? "--no-special-tokens" : NULL;
    if (!opt) return 0;
    return cli_errorf("tokenize", "%s does not apply to --decode (usage: nepenthe tokenize %s)", opt,
                      TOKENIZE_USAGE) + 1;
}

/* ---- the command ---------------------------------------------------------------------- */

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL, *pair = NULL, *sep = NULL;
    int64_t max_length = -1;
    bool pad = false, json = false, cased = false, prefix = false, no_special = false, stats = false;
    bool decode = false, skip_special = false;
    static char buf[1 << 16];
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    cli_opt opts[] = {
        {"tokenizer", OPT_STR, &path, "tokenizer.json, vocab.txt, vocab.json (beside merges.txt) "
                                      "or a directory holding them (required)"},
        {"pair-file", OPT_STR, &pair, "second texts (split as the input is): encode pairs"},
        {"max-length", OPT_INT, &max_length, "truncate (longest first) to N tokens, specials "
                                             "included; 0: never; default: what tokenizer.json says"},
        {"pad", OPT_FLAG, &pad, "pad every text to --max-length (attention mask 0 there)"},
        {"separator", OPT_STR, &sep, "a line equal to this ends a text (default: every line is a "
                                    "text); --decode: written after each text"},
        {"json", OPT_FLAG, &json, "print ids, type_ids and attention_mask as one JSON object a text"},
        {"cased", OPT_FLAG, &cased, "vocab.txt: no lower-casing or accent stripping"},
        {"add-prefix-space", OPT_FLAG, &prefix, "byte-level BPE: a space before each text"},
        {"no-special-tokens", OPT_FLAG, &no_special, "leave out [CLS]/[SEP] (<s>/</s>)"},
        {"stats", OPT_FLAG, &stats, "print texts, bytes, tokens and MB/s to stderr"},
        {"decode", OPT_FLAG, &decode, "the other way: each input line is ids (separated by spaces "
                                      "or commas), each output the text (PyPI tokenizers' decode)"},
        {"skip-special-tokens", OPT_FLAG, &skip_special, "--decode: leave out the special added "
                                                         "tokens ([CLS], <s>, ...)"},
        OPT_END,
    };
    int rc = cli_parse("tokenize", TOKENIZE_USAGE, opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!path) return cli_errorf("tokenize", "--tokenizer PATH is required (usage: nepenthe tokenize %s)",
                                 TOKENIZE_USAGE) + 1;
    if (skip_special && !decode)
        return cli_errorf("tokenize", "--skip-special-tokens needs --decode") + 1;
    if (decode && (rc = decode_conflicts(pair, max_length, pad, json, no_special))) return rc;
    nep_tokenizer *tok;
    if (load_tokenizer(path, cased, prefix, &tok)) return 1;
    if (decode) {
        texts lines = {0};
        rc = load_texts(NULL, NULL, &lines);
        if (!rc) rc = run_decode(tok, &lines, skip_special, sep, stats);
        texts_free(&lines);
        nep_tokenizer_free(tok);
        return rc;
    }
    nep_encode_opts o = nep_tokenizer_default_opts(tok);
    if (max_length >= 0) {
        o.max_length = max_length;
        o.pad = pad;
    } else if (pad) {
        o.pad = true;
    }
    o.add_special_tokens = !no_special;
    texts a = {0}, b = {0};
    rc = load_texts(NULL, sep, &a);
    if (!rc && pair) rc = load_texts(pair, sep, &b);
    if (!rc && pair && a.count != b.count)
        rc = cli_errorf("tokenize", "%s has %lld texts, standard input %lld", pair, (long long)b.count,
                        (long long)a.count);
    if (!rc) rc = run(tok, &a, pair ? &b : NULL, &o, json, stats);
    texts_free(&a);
    texts_free(&b);
    nep_tokenizer_free(tok);
    return rc;
}
