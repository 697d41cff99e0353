/* A real sentence-classification task from the Debian `fortunes` package, written in
 * GLUE's SST-2 layout so that the command that fine-tunes on GLUE runs unchanged on it.
 *
 * Source. /usr/share/games/fortunes/<category> (package fortunes 1:1.99.1-7.3 in
 * Debian 12): plain text, entries separated by lines holding only "%". We read the plain
 * name, not <category>.u8: in that package every .u8 name is a symbolic link to the
 * plain file, and all 43 plain files are valid UTF-8 (checked with iconv). An entry
 * that is not valid UTF-8 (another distribution's Latin-1 files, a local file) is
 * dropped and counted rather than guessed at.
 *
 * Categories. The default eight are the topical categories whose subjects differ most
 * and which hold at least ~150 entries; "people", "definitions", "cookie",
 * "miscellaneous" and "songs-poems" are larger but mixed in subject (any topic can be a
 * definition or a song), "men-women" overlaps "love", and "work" overlaps "computers".
 * In Debian 12 they give (entries in the file -> usable after cleaning and dedup ->
 * train / dev / test; task.json records the same):
 *   computers  1051 -> 1016 -> 812 / 102 / 102
 *   education   203 ->  199 -> 159 /  20 /  20
 *   food        198 ->  197 -> 157 /  20 /  20
 *   law         206 ->  195 -> 155 /  20 /  20
 *   love        150 ->  150 -> 120 /  15 /  15
 *   politics    703 ->  694 -> 556 /  69 /  69
 *   science     625 ->  610 -> 488 /  61 /  61
 *   sports      147 ->  144 -> 116 /  14 /  14
 *   total      3283 -> 3205 -> 2563 / 321 / 321
 * (The counts per split do not depend on the seed: only which entries land where.)
 * The classes are unbalanced (computers is 32%: a constant predictor's accuracy); we
 * keep every usable entry rather than cap the large classes, and report it.
 *
 * One entry becomes one line: old fortunes underline and accent with backspace
 * overstrikes ("_\bI", "____\b\b\b\bdoes", "Ren'\be"), so a backspace deletes the
 * character before it (the visible result on a terminal is the later character); other
 * control characters (bell, escape, DEL) are removed; every run of whitespace, newlines
 * and tabs included, becomes one space, and the ends are trimmed. That also guarantees
 * no tab or newline inside a TSV field. An entry that is empty afterwards, or longer
 * than NEP_FORTUNES_MAX_BYTES (long poems and transcripts, 2% of entries; a 128-token
 * encoder would see only their start), is dropped.
 *
 * Duplicates. A text found twice in one category is kept once (the first); a text found
 * in two categories is dropped from both, since its label is ambiguous.
 *
 * Split. Stratified: within each category (in the order given), a seeded shuffle puts
 * round(n/10) entries in test, the next round(n/10) in dev and the rest in train, so each
 * split has every class in the same proportion. Each split's rows are then shuffled,
 * so no file is sorted by class. One generator seeded with `seed` makes every draw, in
 * a fixed order, which makes the files a function of (files, categories, seed).
 *
 * Files. train.tsv and dev.tsv are SST-2's train/dev layout ("sentence\tlabel", label
 * the class index). test.tsv is SST-2's test layout ("index\tsentence") plus the
 * label column: GLUE keeps its test labels secret and reports dev accuracy, but here we
 * want a held-out test accuracy too; nep_glue_load reads a test file's label where it
 * has one, so the same command that predicts GLUE's test set evaluates this one. */
#include "nepenthe/text_data.h"
#include "nepenthe/utf8.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nepenthe/file.h"
#include "data/fortunes_impl.h"

/* An entry's place: a split, KEPT (usable, not yet assigned) or DROPPED. */
enum { SPLIT_TRAIN, SPLIT_DEV, SPLIT_TEST, NSPLITS, KEPT = NSPLITS, DROPPED = -1 };
static const char *const SPLIT_NAMES[NSPLITS] = {"train", "dev", "test"};

/* Why an entry is not used; counted per category for task.json. */
enum { DROP_UTF8, DROP_EMPTY, DROP_LONG, DROP_DUP_WITHIN, DROP_DUP_ACROSS, NDROPS };
static const char *const DROP_NAMES[NDROPS] = {"invalid_utf8", "empty", "too_long",
                                               "duplicate_in_category", "in_several_categories"};

typedef struct entry {
    char *text;   /* cleaned, one line */
    int cls;      /* category index */
    int64_t ord;  /* reading order: category by category, file order within */
    int split;    /* SPLIT_*, KEPT or DROPPED */
} entry;

typedef struct task {
    const char *dir;
    const char *const *cats;
    int k;
    entry *e;
    int64_t n, cap;
    int64_t read[NEP_FORTUNES_MAX_CATEGORIES];                 /* entries in the file */
    int64_t dropped[NDROPS][NEP_FORTUNES_MAX_CATEGORIES];
    int64_t counts[NSPLITS][NEP_FORTUNES_MAX_CATEGORIES];
    uint64_t seed;
} task;

static const char *const DEFAULT_CATEGORIES[] = {NEP_FORTUNES_DEFAULT_CATEGORIES, NULL};

/* --- arguments ---------------------------------------------------------------------- */

/* A category is a file name in the fortunes directory: no path, no hidden file. It goes
 * into task.json and messages, so it must be printable UTF-8 too. */
static bool category_name_ok(const char *c) {
    if (!*c || *c == '.' || strchr(c, '/') || nep_utf8_invalid_at(c, strlen(c)) >= 0) return false;
    for (const unsigned char *p = (const unsigned char *)c; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\') return false;
    return true;
}

static nep_status check_categories(const char *const *cats, int *k, nep_err *err) {
    int n = 0;
    while (n <= NEP_FORTUNES_MAX_CATEGORIES && cats[n]) n++; /* stops one past the limit */
    if (n < 2 || n > NEP_FORTUNES_MAX_CATEGORIES)
        return nep_fail(err, NEP_ERR_ARG, "fortunes task: %s categories, expected 2 to %d",
                        n < 2 ? (n ? "1" : "no") : "too many", NEP_FORTUNES_MAX_CATEGORIES);
    for (int i = 0; i < n; i++) {
        if (!category_name_ok(cats[i]))
            return nep_fail(err, NEP_ERR_ARG,
                            "fortunes task: bad category \"%s\" (a file name in the fortunes "
                            "directory: no '/', no leading '.', no quotes or control characters)",
                            cats[i]);
        for (int j = 0; j < i; j++)
            if (!strcmp(cats[i], cats[j]))
                return nep_fail(err, NEP_ERR_ARG, "fortunes task: category \"%s\" given twice",
                                cats[i]);
    }
    *k = n;
    return NEP_OK;
}

/* --- reading and cleaning ------------------------------------------------------------ */

static nep_status read_file(const char *path, char **buf, size_t *len, nep_err *err) {
    nep_status s = nep_read_file(path, NEP_FORTUNES_MAX_FILE, buf, len, err);
    if (s == NEP_ERR_IO && err) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        s = nep_fail(err, s, "%s (fortunes category file); " NEP_FORTUNES_HINT, why);
    }
    return s;
}

static bool is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Removes the last UTF-8 character of out[0..*n): its continuation bytes, then its lead. */
static void pop_char(const char *out, size_t *n) {
    while (*n && ((unsigned char)out[*n - 1] & 0xc0) == 0x80) (*n)--;
    if (*n) (*n)--;
}

/* Resolves overstrikes, drops control characters, turns whitespace into single spaces
 * and trims: raw[0..n) (valid UTF-8) -> out (room for n + 1 bytes); returns the length.
 * Every step keeps whole UTF-8 characters, so the result is valid UTF-8 too. Shared
 * with the language-modelling corpus (fortunes_impl.h). */
size_t nep_fortunes_clean(const char *raw, size_t n, char *out) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '\b')
            pop_char(out, &m);
        else if (is_space(c))
            out[m++] = ' ';
        else if (c >= 0x20 && c != 0x7f)
            out[m++] = (char)c;
    }
    size_t w = 0;
    for (size_t r = 0; r < m; r++) {
        if (out[r] == ' ' && (w == 0 || out[w - 1] == ' ')) continue;
        out[w++] = out[r];
    }
    if (w && out[w - 1] == ' ') w--;
    out[w] = '\0';
    return w;
}

static nep_status add_entry(task *t, int cls, const char *raw, size_t n, nep_err *err) {
    t->read[cls]++;
    if (nep_utf8_invalid_at(raw, n) >= 0) {
        t->dropped[DROP_UTF8][cls]++;
        return NEP_OK;
    }
    char *text = malloc(n + 1);
    if (!text) return nep_fail(err, NEP_ERR_NOMEM, "fortunes task: out of memory");
    size_t m = nep_fortunes_clean(raw, n, text);
    int drop = m == 0 ? DROP_EMPTY : m > NEP_FORTUNES_MAX_BYTES ? DROP_LONG : -1;
    if (drop >= 0) {
        t->dropped[drop][cls]++;
        free(text);
        return NEP_OK;
    }
    if (t->n == t->cap) {
        int64_t nc = t->cap ? 2 * t->cap : 1024;
        entry *e = realloc(t->e, (size_t)nc * sizeof *e);
        if (!e) {
            free(text);
            return nep_fail(err, NEP_ERR_NOMEM, "fortunes task: out of memory");
        }
        t->e = e;
        t->cap = nc;
    }
    t->e[t->n] = (entry){.text = text, .cls = cls, .ord = t->n, .split = KEPT};
    t->n++;
    return NEP_OK;
}

/* A line holding only "%" (CRLF tolerated) ends an entry. */
static bool is_separator(const char *line, size_t n) {
    return (n == 1 && line[0] == '%') || (n == 2 && line[0] == '%' && line[1] == '\r');
}

/* Cuts one category file into entries: the text before each separator line, and the
 * text after the last one where the file does not end with a separator. Shared with the
 * language-modelling corpus (fortunes_impl.h). */
nep_status nep_fortunes_read_entries(const char *path, nep_fortunes_entry_fn on_entry, void *ctx,
                                     nep_err *err) {
    char *buf;
    size_t len = 0;
    NEP_TRY(read_file(path, &buf, &len, err));
    nep_status s = NEP_OK;
    size_t start = 0;
    for (size_t pos = 0; !s && pos <= len;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        if (is_separator(buf + pos, end - pos)) {
            s = on_entry(ctx, buf + start, pos - start, err);
            start = end + 1;
        }
        if (!nl) {
            if (!s && start < len) s = on_entry(ctx, buf + start, len - start, err);
            break;
        }
        pos = end + 1;
    }
    free(buf);
    return s;
}

typedef struct category_reader {
    task *t;
    int cls;
} category_reader;

static nep_status add_category_entry(void *ctx, const char *raw, size_t n, nep_err *err) {
    const category_reader *r = ctx;
    return add_entry(r->t, r->cls, raw, n, err);
}

static nep_status read_category(task *t, int cls, nep_err *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", t->dir, t->cats[cls]) >= (int)sizeof path)
        return nep_fail(err, NEP_ERR_ARG, "%s: directory name too long", t->dir);
    category_reader r = {t, cls};
    return nep_fortunes_read_entries(path, add_category_entry, &r, err);
}

/* --- duplicates ---------------------------------------------------------------------- */

static int by_text(const void *pa, const void *pb) {
    const entry *a = *(entry *const *)pa, *b = *(entry *const *)pb;
    int c = strcmp(a->text, b->text);
    if (c) return c;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    return a->ord < b->ord ? -1 : a->ord > b->ord;
}

/* Marks each duplicate DROPPED (the rest stay KEPT), counting drops. Sorting pointers by (text, category, order) puts identical texts
 * side by side with the first occurrence in each category leading. */
static nep_status dedupe(task *t, nep_err *err) {
    entry **p = malloc((size_t)(t->n ? t->n : 1) * sizeof *p);
    if (!p) return nep_fail(err, NEP_ERR_NOMEM, "fortunes task: out of memory");
    for (int64_t i = 0; i < t->n; i++) p[i] = &t->e[i];
    qsort(p, (size_t)t->n, sizeof *p, by_text);
    for (int64_t i = 0, j; i < t->n; i = j) {
        bool mixed = false;
        for (j = i + 1; j < t->n && !strcmp(p[j]->text, p[i]->text); j++)
            mixed |= p[j]->cls != p[i]->cls;
        for (int64_t q = i; q < j; q++) {
            bool first = q == i || p[q]->cls != p[q - 1]->cls;
            int drop = mixed ? DROP_DUP_ACROSS : first ? -1 : DROP_DUP_WITHIN;
            p[q]->split = drop < 0 ? KEPT : DROPPED;
            if (drop >= 0) t->dropped[drop][p[q]->cls]++;
        }
    }
    free(p);
    return NEP_OK;
}

/* --- the split ----------------------------------------------------------------------- */

/* Entries of category cls still unassigned, in reading order, into idx; returns the count. */
static uint32_t members(const task *t, int cls, uint32_t *idx) {
    uint32_t m = 0;
    for (int64_t i = 0; i < t->n; i++)
        if (t->e[i].cls == cls && t->e[i].split == KEPT) idx[m++] = (uint32_t)i;
    return m;
}

static nep_status assign_splits(task *t, nep_rng *rng, nep_err *err) {
    uint32_t *idx = malloc((size_t)(t->n ? t->n : 1) * sizeof *idx);
    if (!idx) return nep_fail(err, NEP_ERR_NOMEM, "fortunes task: out of memory");
    nep_status s = NEP_OK;
    for (int c = 0; c < t->k && !s; c++) {
        uint32_t m = members(t, c, idx);
        if (m < NEP_FORTUNES_MIN_ENTRIES) {
            s = nep_fail(err, NEP_ERR_FORMAT,
                         "%s/%s: %u usable entries, a category needs at least %d", t->dir,
                         t->cats[c], m, NEP_FORTUNES_MIN_ENTRIES);
            break;
        }
        nep_rng_shuffle_u32(rng, idx, m);
        uint32_t tenth = (m + 5) / 10; /* round(m / 10), halves up */
        for (uint32_t i = 0; i < m; i++) {
            int sp = i < tenth ? SPLIT_TEST : i < 2 * tenth ? SPLIT_DEV : SPLIT_TRAIN;
            t->e[idx[i]].split = sp;
            t->counts[sp][c]++;
        }
    }
    free(idx);
    return s;
}

/* --- writing ------------------------------------------------------------------------- */

typedef struct tsv_out {
    const task *t;
    const uint32_t *rows; /* entries of the split, in file order */
    uint32_t n;
    bool with_index;      /* test.tsv: "index\tsentence\tlabel" */
} tsv_out;

static int fill_tsv(void *ctx, FILE *f) {
    const tsv_out *o = ctx;
    fputs(o->with_index ? "index\tsentence\tlabel\n" : "sentence\tlabel\n", f);
    for (uint32_t i = 0; i < o->n; i++) {
        const entry *e = &o->t->e[o->rows[i]];
        if (o->with_index) fprintf(f, "%u\t", i);
        fprintf(f, "%s\t%d\n", e->text, e->cls);
    }
    return ferror(f) ? (errno ? errno : EIO) : 0;
}

/* Writes one split's file, its rows in a seeded order. */
static nep_status write_split(const task *t, int sp, nep_rng *rng, const char *out_dir,
                              nep_err *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s.tsv", out_dir, SPLIT_NAMES[sp]) >= (int)sizeof path)
        return nep_fail(err, NEP_ERR_ARG, "%s: directory name too long", out_dir);
    uint32_t *rows = malloc((size_t)(t->n ? t->n : 1) * sizeof *rows);
    uint32_t n = 0;
    if (!rows) return nep_fail(err, NEP_ERR_NOMEM, "fortunes task: out of memory");
    for (int64_t i = 0; i < t->n; i++)
        if (t->e[i].split == sp) rows[n++] = (uint32_t)i;
    nep_rng_shuffle_u32(rng, rows, n);
    tsv_out o = {t, rows, n, sp == SPLIT_TEST};
    nep_status s = nep_write_atomic(path, fill_tsv, &o, err);
    free(rows);
    return s;
}

void nep_fortunes_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_counts(FILE *f, const char *key, const int64_t *v, int k, bool last) {
    fprintf(f, "    \"%s\": [", key);
    for (int i = 0; i < k; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)v[i]);
    fprintf(f, "]%s\n", last ? "" : ",");
}

static int64_t sum(const int64_t *v, int k) {
    int64_t s = 0;
    for (int i = 0; i < k; i++) s += v[i];
    return s;
}

/* task.json, written by hand so that the seed, a full 64-bit value, is exact (cJSON
 * holds numbers as doubles) and the bytes are fixed by the content alone. */
static int fill_json(void *ctx, FILE *f) {
    const task *t = ctx;
    fputs("{\n  \"task\": \"fortunes\",\n  \"format\": \"GLUE SST-2 TSV: train.tsv and dev.tsv "
          "'sentence<TAB>label', test.tsv 'index<TAB>sentence<TAB>label'; label = index into "
          "categories\",\n  \"source\": ", f);
    nep_fortunes_json_string(f, t->dir);
    fputs(",\n  \"categories\": [", f);
    for (int c = 0; c < t->k; c++) {
        fputs(c ? ", " : "", f);
        nep_fortunes_json_string(f, t->cats[c]);
    }
    fprintf(f, "],\n  \"seed\": %llu,\n  \"max_bytes\": %d,\n", (unsigned long long)t->seed,
            NEP_FORTUNES_MAX_BYTES);
    fputs("  \"split\": \"per category: round(n/10) test, round(n/10) dev, the rest train; "
          "rows shuffled\",\n  \"counts\": {\n", f);
    for (int sp = 0; sp < NSPLITS; sp++) json_counts(f, SPLIT_NAMES[sp], t->counts[sp], t->k, false);
    fprintf(f, "    \"total\": [%lld, %lld, %lld]\n  },\n", (long long)sum(t->counts[0], t->k),
            (long long)sum(t->counts[1], t->k), (long long)sum(t->counts[2], t->k));
    fputs("  \"entries_in_files\": [", f);
    for (int c = 0; c < t->k; c++) fprintf(f, "%s%lld", c ? ", " : "", (long long)t->read[c]);
    fputs("],\n  \"dropped\": {\n", f);
    for (int d = 0; d < NDROPS; d++) json_counts(f, DROP_NAMES[d], t->dropped[d], t->k, d == NDROPS - 1);
    fputs("  }\n}\n", f);
    return ferror(f) ? (errno ? errno : EIO) : 0;
}

static nep_status make_dir(const char *dir, nep_err *err) {
    struct stat st;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return nep_fail(err, NEP_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return nep_fail(err, NEP_ERR_IO, "%s: not a directory", dir);
    return NEP_OK;
}

static nep_status write_task(const task *t, nep_rng *rng, const char *out_dir, nep_err *err) {
    NEP_TRY(make_dir(out_dir, err));
    for (int sp = 0; sp < NSPLITS; sp++) NEP_TRY(write_split(t, sp, rng, out_dir, err));
    char path[4096];
    if (snprintf(path, sizeof path, "%s/task.json", out_dir) >= (int)sizeof path)
        return nep_fail(err, NEP_ERR_ARG, "%s: directory name too long", out_dir);
    /* Written last: its presence says the three TSV files beside it are complete. */
    return nep_write_atomic(path, fill_json, (void *)t, err);
}

nep_status nep_fortunes_task_build(const char *fortunes_dir, const char *const *categories,
                                   uint64_t seed, const char *out_dir, nep_err *err) {
    if (!out_dir) return nep_fail(err, NEP_ERR_ARG, "fortunes task: no output directory");
    task *t = calloc(1, sizeof *t);
    if (!t) return nep_fail(err, NEP_ERR_NOMEM, "fortunes task: out of memory");
    t->dir = fortunes_dir ? fortunes_dir : NEP_FORTUNES_DIR;
    t->cats = categories ? categories : DEFAULT_CATEGORIES;
    t->seed = seed;
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    nep_status s = check_categories(t->cats, &t->k, err);
    for (int c = 0; !s && c < t->k; c++) s = read_category(t, c, err);
    if (!s) s = dedupe(t, err);
    if (!s) s = assign_splits(t, &rng, err);
    if (!s) s = write_task(t, &rng, out_dir, err);
    for (int64_t i = 0; i < t->n; i++) free(t->e[i].text);
    free(t->e);
    free(t);
    return s;
}
