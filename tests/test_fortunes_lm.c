/* The fortunes language-modelling corpus and its multiple-choice task
 * (nepenthe/fortunes_lm.h): on a small category directory the test writes (every count
 * known exactly, the split and the questions checked entry by entry, the task read back
 * through the MMLU reader), on the installed Debian `fortunes` files (skipped with a
 * message where the package is missing), and the argument errors. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nepenthe/file.h"
#include "nepenthe/fortunes_lm.h"
#include "nepenthe/mmlu.h"
#include "testutil.h"

/* --- helpers ------------------------------------------------------------------- */

static const char *const OUTPUTS[] = {"train.txt", "heldout.txt", "mc/data/dev/fortunes_dev.csv",
                                      "mc/data/test/fortunes_test.csv", "mc/README.txt",
                                      "corpus.json"};
#define N_OUTPUTS (sizeof OUTPUTS / sizeof *OUTPUTS)

static char *slurp(const char *dir, const char *name, size_t *n) {
    char *p = nep_test_path(dir, name), *data;
    nep_err err = {0};
    nep_test_assert_ok(nep_read_file(p, (size_t)1 << 26, &data, n, &err), &err);
    free(p);
    return data;
}

static bool same_file(const char *a, const char *b, const char *name) {
    size_t na, nb;
    char *x = slurp(a, name, &na), *y = slurp(b, name, &nb);
    bool same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* A file's lines, cut in place (every line must end in LF); lines[] points into *buf. */
typedef struct lines {
    char *buf;
    char **v;
    int64_t n;
    size_t bytes;
} lines;

static lines read_lines(const char *dir, const char *name) {
    lines l = {0};
    l.buf = slurp(dir, name, &l.bytes);
    assert_true(l.bytes == 0 || l.buf[l.bytes - 1] == '\n');
    for (size_t i = 0; i < l.bytes; i++) l.n += l.buf[i] == '\n';
    l.v = malloc((size_t)(l.n ? l.n : 1) * sizeof *l.v);
    char *p = l.buf;
    for (int64_t i = 0; i < l.n; i++) {
        char *nl = strchr(p, '\n');
        *nl = '\0';
        l.v[i] = p;
        p = nl + 1;
    }
    return l;
}

static void free_lines(lines *l) {
    free(l->buf);
    free(l->v);
}

static int by_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int64_t words(const char *s) {
    int64_t w = 1;
    for (; *s; s++) w += *s == ' ';
    return w;
}

/* The task's cut, written again here: the first floor(w/2) words and the rest. */
static void halves(const char *s, char *first, char *second, size_t cap) {
    int64_t want = words(s) / 2, seen = 0;
    const char *p = s;
    for (; *p; p++)
        if (*p == ' ' && ++seen == want) break;
    assert_true(*p && (size_t)(p - s) < cap && strlen(p + 1) < cap);
    snprintf(first, cap, "%.*s", (int)(p - s), s);
    snprintf(second, cap, "%s", p + 1);
}

static bool is_half_of_any(const lines *l, const char *text, int which) {
    char a[4096], b[4096];
    for (int64_t i = 0; i < l->n; i++) {
        if (words(l->v[i]) < 2) continue;
        halves(l->v[i], a, b, sizeof a);
        if (!strcmp(which ? b : a, text)) return true;
    }
    return false;
}

/* --- a small category directory ------------------------------------------------------ */

/* One category file being written, and what the corpus should make of everything. */
typedef struct source {
    char buf[1 << 15];
    size_t len;
    char *want[256];   /* cleaned texts, first occurrences */
    int n_want;
    int raw;           /* entries written to files */
} source;

/* Appends a raw entry and its separator; clean is what it must become (NULL: dropped or
 * a repeat). */
static void entry(source *s, const char *raw, const char *clean) {
    s->len += (size_t)snprintf(s->buf + s->len, sizeof s->buf - s->len, "%s\n%%\n", raw);
    assert_true(s->len < sizeof s->buf);
    s->raw++;
    if (clean) s->want[s->n_want++] = strdup(clean);
}

/* 40 entries of file tag: every fourth short (4 words), the rest 12 to 15 words with
 * commas and quotes (so the CSV quotes them); both halves of each are unique. */
static void numbered(source *s, const char *tag) {
    for (int i = 0; i < 40; i++) {
        char t[512];
        if (i % 4 == 3) {
            snprintf(t, sizeof t, "%s %d short one", tag, i);
        } else {
            int n = snprintf(t, sizeof t, "%s %d, \"one\" two three four five six seven, eight "
                                          "\"nine\" %s-%d", tag, i, tag, i);
            for (int k = 0; k < i % 4; k++) n += snprintf(t + n, sizeof t - (size_t)n, " tail%d", k);
        }
        entry(s, t, t);
    }
}

static void flush(source *s, const char *dir, const char *name) {
    char *p = nep_test_path(dir, name);
    assert_int_equal(nep_test_write_file(p, s->buf, s->len), 0);
    free(p);
    s->len = 0;
}

#define SHARED "shared   text, said\tsomeone \"wise\", appears in two files and counts once here"
#define SHARED_CLEAN "shared text, said someone \"wise\", appears in two files and counts once here"

/* alpha, beta, gamma (the last entry with no separator after it), and what must be
 * skipped: an index file, a .u8 link, a subdirectory. */
static void write_source(const char *dir, source *s) {
    numbered(s, "alpha");
    entry(s, "An _\bI and ____\b\b\b\bdoes\tand Ren'\b\xc3\xa9 here.\n\t\t-- Someone",
          "An I and does and Ren\xc3\xa9 here. -- Someone");
    entry(s, SHARED, SHARED_CLEAN);
    entry(s, "bad \xff byte", NULL);
    entry(s, "   \n\n", NULL);
    flush(s, dir, "alpha");
    numbered(s, "beta");
    entry(s, SHARED, NULL);
    entry(s, "beta 0, \"one\" two three four five six seven, eight \"nine\" beta-0", NULL);
    flush(s, dir, "beta");
    s->len = (size_t)snprintf(s->buf, sizeof s->buf, "gamma one\n%%\ngamma two");
    s->raw += 2;
    s->want[s->n_want++] = strdup("gamma one");
    s->want[s->n_want++] = strdup("gamma two");
    flush(s, dir, "gamma");
    s->len = (size_t)snprintf(s->buf, sizeof s->buf, "DAT FILE\n%%\nnot an entry\n");
    flush(s, dir, "alpha.dat");
    char *link = nep_test_path(dir, "x.u8"), *sub = nep_test_path(dir, "off");
    assert_int_equal(symlink("alpha", link), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    s->len = (size_t)snprintf(s->buf, sizeof s->buf, "in a subdirectory\n");
    flush(s, sub, "rude");
    free(link);
    free(sub);
}

/* Questions in file order must be the eligible held-out entries in held-out order, each
 * with its own second half at the answer's letter and three other held-out second halves;
 * nothing may be a half of a train entry. Returns the next eligible position. */
static int64_t check_questions(const nep_mmlu_set *set, const lines *held, const lines *train,
                               int64_t from) {
    char a[4096], b[4096];
    assert_int_equal(set->n_subjects, 1);
    assert_string_equal(set->subjects[0], "fortunes");
    for (int64_t q = 0; q < set->n; q++) {
        while (from < held->n && words(held->v[from]) < NEP_FORTUNES_LM_MC_MIN_WORDS) from++;
        assert_true(from < held->n);
        halves(held->v[from++], a, b, sizeof a);
        const nep_mmlu_item *it = &set->items[q];
        assert_string_equal(it->question, a);
        assert_string_equal(it->choices[it->answer], b);
        assert_false(is_half_of_any(train, it->question, 0));
        for (int k = 0; k < 4; k++) {
            assert_true(is_half_of_any(held, it->choices[k], 1));
            assert_false(is_half_of_any(train, it->choices[k], 1));
            for (int j = 0; j < k; j++) assert_true(strcmp(it->choices[j], it->choices[k]) != 0);
        }
    }
    return from;
}

static void load_mc(const char *out, const char *split, nep_mmlu_set *set) {
    char *root = nep_test_path(out, "mc/data");
    nep_err err = {0};
    nep_test_assert_ok(nep_mmlu_load_split(root, split, "fortunes", set, &err), &err);
    free(root);
}

static void test_small(void **state) {
    (void)state;
    char *root = nep_test_tmpdir();
    char *src = nep_test_path(root, "src"), *out = nep_test_path(root, "out");
    char *again = nep_test_path(root, "again"), *other = nep_test_path(root, "other");
    assert_int_equal(mkdir(src, 0700), 0);
    source *s = calloc(1, sizeof *s);
    write_source(src, s);

    nep_err err = {0};
    nep_fortunes_lm_summary m, m2, m3;
    nep_test_assert_ok(nep_fortunes_lm_build(src, 7, 0.45, out, &m, &err), &err);
    /* alpha 44 entries, 42 kept (the bad byte and the blank one dropped); beta 42, 40
     * kept (both repeats dropped); gamma 2: 84 kept; 0.45 * 84 = 37.8 -> 38 held out. */
    assert_int_equal(m.files, 3);
    assert_int_equal(m.entries_read, s->raw);
    assert_int_equal(m.entries_read, 88);
    assert_int_equal(m.dropped_invalid_utf8, 1);
    assert_int_equal(m.dropped_empty, 1);
    assert_int_equal(m.duplicates, 2);
    assert_int_equal(m.train + m.heldout, s->n_want);
    assert_int_equal(m.heldout, (int64_t)(0.45 * s->n_want + 0.5));
    assert_int_equal(m.heldout, 38);

    /* train.txt and heldout.txt hold the cleaned, deduplicated set exactly. */
    lines train = read_lines(out, "train.txt"), held = read_lines(out, "heldout.txt");
    assert_int_equal(train.n, m.train);
    assert_int_equal(held.n, m.heldout);
    assert_int_equal((int64_t)train.bytes, m.train_bytes);
    assert_int_equal((int64_t)held.bytes, m.heldout_bytes);
    char **got = malloc((size_t)(train.n + held.n) * sizeof *got);
    memcpy(got, train.v, (size_t)train.n * sizeof *got);
    memcpy(got + train.n, held.v, (size_t)held.n * sizeof *got);
    qsort(got, (size_t)(train.n + held.n), sizeof *got, by_str);
    qsort(s->want, (size_t)s->n_want, sizeof *s->want, by_str);
    for (int i = 0; i < s->n_want; i++) assert_string_equal(got[i], s->want[i]);
    free(got);

    /* The task: read back by the MMLU reader, every question checked against heldout.txt. */
    nep_mmlu_set dev, test;
    load_mc(out, "dev", &dev);
    load_mc(out, "test", &test);
    assert_int_equal(dev.n, 5);
    assert_int_equal(m.mc_dev, 5);
    assert_int_equal(test.n, m.mc_test);
    int64_t eligible = 0;
    for (int64_t i = 0; i < held.n; i++) eligible += words(held.v[i]) >= NEP_FORTUNES_LM_MC_MIN_WORDS;
    assert_int_equal(m.mc_dev + m.mc_test, eligible);
    assert_true(m.mc_test >= 5);
    int64_t next = check_questions(&dev, &held, &train, 0);
    check_questions(&test, &held, &train, next);
    /* The answers are not all one letter (26 uniform draws). */
    int letters[4] = {0};
    for (int64_t i = 0; i < test.n; i++) letters[test.items[i].answer]++;
    assert_true(letters[0] < test.n && letters[1] < test.n && letters[2] < test.n);
    nep_mmlu_set_free(&dev);
    nep_mmlu_set_free(&test);

    size_t n;
    char *json = slurp(out, "corpus.json", &n);
    assert_non_null(strstr(json, "\"files\": [\"alpha\", \"beta\", \"gamma\"]"));
    assert_non_null(strstr(json, "\"seed\": 7,"));
    assert_non_null(strstr(json, "\"heldout_fraction\": 0.45,"));
    assert_non_null(strstr(json, "\"duplicates\": 2,"));
    free(json);

    /* The same seed gives the same bytes; another seed another split. */
    nep_test_assert_ok(nep_fortunes_lm_build(src, 7, 0.45, again, &m2, &err), &err);
    for (size_t i = 0; i < N_OUTPUTS; i++) assert_true(same_file(out, again, OUTPUTS[i]));
    assert_memory_equal(&m, &m2, sizeof m);
    nep_test_assert_ok(nep_fortunes_lm_build(src, 8, 0.45, other, &m3, &err), &err);
    assert_int_equal(m3.heldout, m.heldout);
    assert_false(same_file(out, other, "train.txt"));
    assert_false(same_file(out, other, "heldout.txt"));
    lines held3 = read_lines(other, "heldout.txt");
    qsort(held.v, (size_t)held.n, sizeof *held.v, by_str);
    qsort(held3.v, (size_t)held3.n, sizeof *held3.v, by_str);
    bool same_set = true;
    for (int64_t i = 0; i < held.n; i++) same_set &= !strcmp(held.v[i], held3.v[i]);
    assert_false(same_set);

    free_lines(&train);
    free_lines(&held);
    free_lines(&held3);
    for (int i = 0; i < s->n_want; i++) free(s->want[i]);
    free(s);
    free(src);
    free(out);
    free(again);
    free(other);
    nep_test_rmtree(root);
}

/* --- the installed package ------------------------------------------------------------ */

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void test_real(void **state) {
    (void)state;
    struct stat st;
    if (stat(NEP_FORTUNES_DIR, &st) != 0) {
        fprintf(stderr, "skipped: %s missing (install the Debian package fortunes)\n", NEP_FORTUNES_DIR);
        skip();
    }
    char *root = nep_test_tmpdir();
    char *out = nep_test_path(root, "corpus");
    nep_err err = {0};
    nep_fortunes_lm_summary m;
    double t0 = seconds();
    nep_test_assert_ok(nep_fortunes_lm_build(NULL, 0, 0.05, out, &m, &err), &err);
    double took = seconds() - t0;
    printf("fortunes corpus (%s, seed 0, held-out 0.05), built in %.2f s:\n"
           "  files %lld, entries %lld, dropped %lld invalid UTF-8 + %lld empty, duplicates %lld\n"
           "  train %lld entries / %lld bytes, held-out %lld entries / %lld bytes\n"
           "  multiple choice: %lld dev, %lld test\n",
           NEP_FORTUNES_DIR, took, (long long)m.files, (long long)m.entries_read,
           (long long)m.dropped_invalid_utf8, (long long)m.dropped_empty, (long long)m.duplicates,
           (long long)m.train, (long long)m.train_bytes, (long long)m.heldout,
           (long long)m.heldout_bytes, (long long)m.mc_dev, (long long)m.mc_test);
    int64_t kept = m.entries_read - m.dropped_invalid_utf8 - m.dropped_empty - m.duplicates;
    assert_true(m.files >= 1);
    assert_int_equal(m.train + m.heldout, kept);
    assert_int_equal(m.heldout, (int64_t)(0.05 * (double)kept + 0.5));
    assert_true(m.heldout > 0.04 * (double)kept && m.heldout < 0.06 * (double)kept);
    assert_int_equal(m.mc_dev, 5);
    assert_true(m.mc_test >= 100);
    lines train = read_lines(out, "train.txt"), held = read_lines(out, "heldout.txt");
    assert_int_equal(train.n, m.train);
    assert_int_equal(held.n, m.heldout);
    assert_int_equal((int64_t)train.bytes, m.train_bytes);
    nep_mmlu_set test;
    load_mc(out, "test", &test);
    assert_int_equal(test.n, m.mc_test);
    nep_mmlu_set_free(&test);
    free_lines(&train);
    free_lines(&held);
    free(out);
    nep_test_rmtree(root);
}

/* --- errors ---------------------------------------------------------------------------- */

static void test_errors(void **state) {
    (void)state;
    char *root = nep_test_tmpdir();
    char *missing = nep_test_path(root, "no-such-dir"), *out = nep_test_path(root, "out");
    char *empty = nep_test_path(root, "empty"), *few = nep_test_path(root, "few");
    nep_err err = {0};
    nep_fortunes_lm_summary m;
    nep_test_expect_fail(nep_fortunes_lm_build(missing, 0, 0.05, out, &m, &err), &err, NEP_ERR_IO,
                         missing, "fortunes");
    nep_test_expect_fail(nep_fortunes_lm_build(root, 0, 0.0, out, &m, &err), &err, NEP_ERR_ARG,
                         "fraction 0 ", "(0, 0.5]");
    nep_test_expect_fail(nep_fortunes_lm_build(root, 0, 0.7, out, &m, &err), &err, NEP_ERR_ARG,
                         "fraction 0.7 ", NULL);
    nep_test_expect_fail(nep_fortunes_lm_build(root, 0, 0.05, NULL, &m, &err), &err, NEP_ERR_ARG,
                         "output directory", NULL);
    /* A directory of index files only holds no category. */
    assert_int_equal(mkdir(empty, 0700), 0);
    char *dat = nep_test_path(empty, "art.dat");
    assert_int_equal(nep_test_write_file(dat, "x", 1), 0);
    nep_test_expect_fail(nep_fortunes_lm_build(empty, 0, 0.05, out, &m, &err), &err, NEP_ERR_IO, empty,
                         "no fortunes category file");
    /* Short entries only: nothing to make questions of, and nothing written. */
    assert_int_equal(mkdir(few, 0700), 0);
    char buf[4096];
    size_t len = 0;
    for (int i = 0; i < 50; i++) len += (size_t)snprintf(buf + len, sizeof buf - len, "short %d\n%%\n", i);
    char *p = nep_test_path(few, "short");
    assert_int_equal(nep_test_write_file(p, buf, len), 0);
    nep_test_expect_fail(nep_fortunes_lm_build(few, 0, 0.5, out, &m, &err), &err, NEP_ERR_ARG,
                         "0 held-out entries of at least 12 words", "at least 10");
    assert_int_equal(m.train, 0);
    assert_int_not_equal(access(out, F_OK), 0);
    free(p);
    free(dat);
    free(missing);
    free(out);
    free(empty);
    free(few);
    nep_test_rmtree(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small),
        cmocka_unit_test(test_real),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
