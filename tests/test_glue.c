/* GLUE TSV reading (SST-2, QNLI, RTE in their distributed layouts), UTF-8 checking, text
 * splits, and the fortunes task. The GLUE files are written by the test itself, byte
 * for byte in GLUE's format; the fortunes task is built from the installed Debian
 * `fortunes` files (skipped with a message where the package is missing) and from a
 * small category directory the test writes. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nepenthe/text_data.h"
#include "nepenthe/utf8.h"
#include "testutil.h"

/* --- helpers ------------------------------------------------------------------- */

static void write_text(const char *dir, const char *name, const char *text, size_t n) {
    char *p = nep_test_path(dir, name);
    assert_int_equal(nep_test_write_file(p, text, n), 0);
    free(p);
}
#define WRITE(dir, name, lit) write_text((dir), (name), (lit), sizeof(lit) - 1)

static void expect_empty(const nep_text_dataset *d) {
    assert_int_equal(d->n, 0);
    assert_null(d->text_a);
    assert_null(d->text_b);
    assert_null(d->labels);
    assert_null(d->label_names);
    assert_null(d->index);
}

static void load_ok(const char *dir, const char *task, const char *split, nep_text_dataset *d) {
    nep_err err = {0};
    nep_test_assert_ok(nep_glue_load(dir, task, split, d, &err), &err);
}

/* --- UTF-8 ----------------------------------------------------------------------- */

static void test_utf8(void **state) {
    (void)state;
    static const struct {
        const char *s;
        int64_t bad;
    } cases[] = {
        {"plain ASCII", -1},
        {"caf\xc3\xa9 \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80", -1},
        {"\xf4\x8f\xbf\xbf", -1},          /* U+10FFFF */
        {"ab\xff", 2},                     /* never in UTF-8 */
        {"a\xc0\xaf", 1},                  /* overlong '/' */
        {"\xe0\x80\xaf", 0},               /* overlong, 3 bytes */
        {"\xed\xa0\x80", 0},               /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 0},           /* above U+10FFFF */
        {"x\xe2\x82", 1},                  /* cut short */
        {"\x80", 0},                       /* stray continuation */
        {"\xc3\xa9\xc3", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_int_equal(nep_utf8_invalid_at(cases[i].s, strlen(cases[i].s)), cases[i].bad);
}

/* --- GLUE files as distributed ------------------------------------------------- */

/* SST-2's train.tsv: quotes and apostrophes kept verbatim (QUOTE_NONE), a unicode
 * sentence, LF endings. */
static void test_sst2_train(void **state) {
    (void)state;
    char *dir = nep_test_tmpdir();
    WRITE(dir, "train.tsv",
          "sentence\tlabel\n"
          "hide new secretions from the parental units \t0\n"
          "\"the greatest musicians \" -- it 's \"a \"\"quoted\"\" thing\t1\n"
          "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\t1\n"
          "that loves its characters and communicates something rather beautiful about human nature \t1\n");
    nep_text_dataset d;
    load_ok(dir, "sst2", "train", &d);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.classes, 2);
    assert_string_equal(d.label_names[0], "negative");
    assert_string_equal(d.label_names[1], "positive");
    assert_null(d.text_b);
    assert_string_equal(d.text_a[0], "hide new secretions from the parental units ");
    assert_string_equal(d.text_a[1], "\"the greatest musicians \" -- it 's \"a \"\"quoted\"\" thing");
    assert_string_equal(d.text_a[2], "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac");
    const int32_t labels[] = {0, 1, 1, 1};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(d.labels[i], labels[i]);
        assert_int_equal(d.index[i], i); /* no index column: the row number */
    }
    nep_text_dataset_free(&d);
    expect_empty(&d);
    nep_test_rmtree(dir);
}

/* SST-2's test.tsv: "index\tsentence", no labels. */
static void test_sst2_test(void **state) {
    (void)state;
    char *dir = nep_test_tmpdir();
    WRITE(dir, "test.tsv",
          "index\tsentence\n"
          "0\tuneasy mishmash of styles and genres .\n"
          "1\tthis film 's relationship to actual tension is the same as what christmas-tree flocking in a spray can is to actual snow : a poor -- if durable -- imitation .\n"
          "17\t`` it 's not a bad thing '' , he said .\n");
    nep_text_dataset d;
    load_ok(dir, "sst2", "test", &d);
    assert_int_equal(d.n, 3);
    assert_string_equal(d.text_a[2], "`` it 's not a bad thing '' , he said .");
    const int64_t index[] = {0, 1, 17};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(d.labels[i], -1);
        assert_int_equal(d.index[i], index[i]);
    }
    nep_text_dataset_free(&d);
    /* The same file is not a training file: train and dev need labels. */
    WRITE(dir, "dev.tsv", "index\tsentence\n0\tuneasy mishmash .\n");
    nep_err err = {0};
    nep_test_expect_fail(nep_glue_load(dir, "sst2", "dev", &d, &err), &err, NEP_ERR_FORMAT,
                "dev.tsv:1:", "\"label\"");
    expect_empty(&d);
    nep_test_rmtree(dir);
}

/* QNLI: index, question, sentence, label; CRLF line endings, no final newline. */
static void test_qnli_crlf(void **state) {
    (void)state;
    char *dir = nep_test_tmpdir();
    WRITE(dir, "dev.tsv",
          "index\tquestion\tsentence\tlabel\r\n"
          "0\tWhat came into force after the new constitution was herald?\tAs of that day, the new constitution heralding the Second Republic came into force.\tentailment\r\n"
          "1\tWhat is the first major city in the stream of the Rhine?\tThe most important tributaries in this area are the Ill below of Strasbourg, the Neckar in Mannheim and the Main across from Mainz.\tnot_entailment\r\n"
          "2\tWho said \"don't\"?\t'Twas \"Bob\" \xe2\x80\x93 the na\xc3\xafve one.\tnot_entailment");
    nep_text_dataset d;
    load_ok(dir, "qnli", "dev", &d);
    assert_int_equal(d.n, 3);
    assert_non_null(d.text_b);
    assert_string_equal(d.label_names[0], "entailment");
    assert_string_equal(d.label_names[1], "not_entailment");
    assert_string_equal(d.text_a[0], "What came into force after the new constitution was herald?");
    assert_string_equal(d.text_b[0], "As of that day, the new constitution heralding the Second Republic came into force.");
    assert_string_equal(d.text_a[2], "Who said \"don't\"?");
    assert_string_equal(d.text_b[2], "'Twas \"Bob\" \xe2\x80\x93 the na\xc3\xafve one.");
    const int32_t labels[] = {0, 1, 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(d.labels[i], labels[i]);
        assert_int_equal(d.index[i], i);
        assert_null(strchr(d.text_b[i], '\r'));
    }
    nep_text_dataset_free(&d);
    /* The unlabelled test file. */
    WRITE(dir, "test.tsv",
          "index\tquestion\tsentence\r\n"
          "0\tWhat organization is devoted to Jihad against Israel?\tFor some decades prior to the First Palestine Intifada in 1987, the Muslim Brotherhood in Palestine took a \"quiescent\" stance towards Israel.\r\n");
    load_ok(dir, "qnli", "test", &d);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.labels[0], -1);
    assert_string_equal(d.text_b[0], "For some decades prior to the First Palestine Intifada in 1987, the Muslim Brotherhood in Palestine took a \"quiescent\" stance towards Israel.");
    nep_text_dataset_free(&d);
    nep_test_rmtree(dir);
}

/* RTE: index, sentence1, sentence2, label. A byte order mark, columns found by name in
 * another order with an extra column, a blank line and old Mac CR endings. */
static void test_rte_by_name(void **state) {
    (void)state;
    char *dir = nep_test_tmpdir();
    WRITE(dir, "train.tsv",
          "index\tsentence1\tsentence2\tlabel\n"
          "0\tNo Weapons of Mass Destruction Found in Iraq Yet.\tWeapons of Mass Destruction Found in Iraq.\tnot_entailment\n"
          "1\tA place of sorrow, after Pope John Paul II died, became a place of celebration.\tPope Benedict XVI is the new leader of the Roman Catholic Church.\tentailment\n");
    nep_text_dataset d;
    load_ok(dir, "rte", "train", &d);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.text_a[1], "A place of sorrow, after Pope John Paul II died, became a place of celebration.");
    assert_string_equal(d.text_b[0], "Weapons of Mass Destruction Found in Iraq.");
    assert_int_equal(d.labels[0], 1);
    assert_int_equal(d.labels[1], 0);
    nep_text_dataset_free(&d);

    WRITE(dir, "dev.tsv",
          "\xef\xbb\xbflabel\tsentence2\tsource\tsentence1\tindex\r"
          "entailment\tB \xce\xb2.\tx\tA \xce\xb1.\t7\r"
          "\r"
          "not_entailment\tD\tyy\tC\t9\r");
    load_ok(dir, "rte", "dev", &d);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.text_a[0], "A \xce\xb1.");
    assert_string_equal(d.text_b[0], "B \xce\xb2.");
    assert_string_equal(d.text_a[1], "C");
    assert_string_equal(d.text_b[1], "D");
    assert_int_equal(d.labels[0], 0);
    assert_int_equal(d.labels[1], 1);
    assert_int_equal(d.index[0], 7);
    assert_int_equal(d.index[1], 9);
    nep_text_dataset_free(&d);

    /* A header with no data rows is an empty split, not an error. */
    WRITE(dir, "test.tsv", "index\tsentence1\tsentence2\n");
    load_ok(dir, "rte", "test", &d);
    assert_int_equal(d.n, 0);
    assert_non_null(d.text_b);
    nep_text_dataset_free(&d);
    nep_test_rmtree(dir);
}

/* Every malformed file: status, and a message naming the file and line and the column
 * or label at fault. */
static void test_malformed(void **state) {
    (void)state;
    static const struct {
        const char *task, *split, *content, *where, *what;
    } cases[] = {
        {"sst2", "train", "sentence\tlabel\ngood .\t1\nbad\tmovie .\t0\n", "train.tsv:3:",
         "3 fields, but the header has 2 columns"},
        {"qnli", "dev", "index\tquestion\tsentence\tlabel\n0\tWhy?\tentailment\n", "dev.tsv:2:",
         "3 fields, but the header has 4"},
        {"sst2", "dev", "sentence\tlabel\nok .\t1\nfine .\t2\n", "dev.tsv:3:", "unknown label \"2\""},
        {"sst2", "train", "sentence\tlabel\nok .\t\n", "train.tsv:2:", "unknown label \"\""},
        {"rte", "train", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tneutral\n", "train.tsv:2:",
         "unknown label \"neutral\" in column \"label\" (expected entailment or not_entailment)"},
        {"qnli", "train", "index\tquestion\tsentence\tlabel\n0\tQ?\tS.\tEntailment\n", "train.tsv:2:",
         "unknown label \"Entailment\""},
        {"sst2", "train", "sentence\tlabel\n\t1\n", "train.tsv:2:", "empty sentence in column \"sentence\""},
        {"rte", "dev", "index\tsentence1\tsentence2\tlabel\r\n0\tA.\t   \tentailment\r\n", "dev.tsv:2:",
         "blank sentence in column \"sentence2\""},
        {"rte", "train", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB\xff.\tentailment\n", "train.tsv:2:",
         "invalid UTF-8 in column \"sentence2\" at byte 2"},
        {"qnli", "test", "index\tquestion\tsentence\n0\t\xc0\xafQ?\tS.\n", "test.tsv:2:",
         "invalid UTF-8 in column \"question\""},
        {"qnli", "train", "index\tsentence\tlabel\n0\tS.\tentailment\n", "train.tsv:1:",
         "lacks column \"question\" (it has: index, sentence, label)"},
        {"rte", "test", "index\tsentence1\n0\tA.\n", "test.tsv:1:", "lacks column \"sentence2\""},
        {"sst2", "train", "sentence\n", "train.tsv:1:", "lacks column \"label\""},
        {"sst2", "train", "sentence\tlabel\tsentence\nA\t1\tB\n", "train.tsv:1:",
         "column \"sentence\" appears twice"},
        {"sst2", "test", "index\tsentence\n0\tok .\nx1\tbad .\n", "test.tsv:3:",
         "bad index \"x1\" in column \"index\""},
        {"sst2", "test", "index\tsentence\n-1\tbad .\n", "test.tsv:2:", "bad index \"-1\""},
        {"sst2", "train", "", "train.tsv:1:", "empty file"},
        {"sst2", "train", "\n", "train.tsv:1:", "empty line"},
        {"sst2", "train", "sent\xe9nce\tlabel\n", "train.tsv:1:", "invalid UTF-8 in header column 1"},
    };
    char *dir = nep_test_tmpdir();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s.tsv", cases[i].split);
        write_text(dir, name, cases[i].content, strlen(cases[i].content));
        nep_text_dataset d;
        nep_err err = {0};
        nep_status s = nep_glue_load(dir, cases[i].task, cases[i].split, &d, &err);
        nep_test_expect_fail(s, &err, NEP_ERR_FORMAT, cases[i].where, cases[i].what);
        assert_non_null(strstr(err.msg, dir)); /* the whole path */
        expect_empty(&d);
    }
    /* A NUL byte (strlen cannot write it). */
    WRITE(dir, "train.tsv", "sentence\tlabel\nab\0c\t1\n");
    nep_text_dataset d;
    nep_err err = {0};
    nep_test_expect_fail(nep_glue_load(dir, "sst2", "train", &d, &err), &err, NEP_ERR_FORMAT,
                "train.tsv:2:", "NUL byte at column 3");
    nep_test_rmtree(dir);
}

/* Bad arguments and missing files. */
static void test_load_args(void **state) {
    (void)state;
    char *dir = nep_test_tmpdir();
    nep_text_dataset d;
    nep_err err = {0};
    nep_test_expect_fail(nep_glue_load(dir, "mnli", "train", &d, &err), &err, NEP_ERR_ARG,
                "unknown text task \"mnli\"", "sst2, qnli, rte, fortunes");
    expect_empty(&d);
    nep_test_expect_fail(nep_glue_load(dir, "sst2", "validation", &d, &err), &err, NEP_ERR_ARG,
                "unknown split \"validation\"", "train, dev, test");
    nep_test_expect_fail(nep_glue_load(dir, "sst2", "train", &d, &err), &err, NEP_ERR_IO, "train.tsv",
                "No such file");
    assert_non_null(strstr(err.msg, dir));
    expect_empty(&d);
    /* The fortunes task needs its task.json for the class names. */
    WRITE(dir, "dev.tsv", "sentence\tlabel\nA\t0\n");
    nep_test_expect_fail(nep_glue_load(dir, "fortunes", "dev", &d, &err), &err, NEP_ERR_IO, "task.json",
                NULL);
    WRITE(dir, "task.json", "{\"categories\": [\"x\"]}");
    nep_test_expect_fail(nep_glue_load(dir, "fortunes", "dev", &d, &err), &err, NEP_ERR_FORMAT,
                "task.json", "\"categories\"");
    WRITE(dir, "task.json", "{\"categories\": [\"x\", ");
    nep_test_expect_fail(nep_glue_load(dir, "fortunes", "dev", &d, &err), &err, NEP_ERR_FORMAT,
                "task.json", "not valid JSON");
    WRITE(dir, "task.json", "{\"categories\": [\"art\", \"food\", \"law\"]}");
    WRITE(dir, "dev.tsv", "sentence\tlabel\nA\t2\nB\t3\n");
    nep_test_expect_fail(nep_glue_load(dir, "fortunes", "dev", &d, &err), &err, NEP_ERR_FORMAT,
                "dev.tsv:3:", "unknown label \"3\" in column \"label\" (expected a class index 0..2)");
    WRITE(dir, "dev.tsv", "sentence\tlabel\nA\t2\nB\t0\n");
    load_ok(dir, "fortunes", "dev", &d);
    assert_int_equal(d.classes, 3);
    assert_string_equal(d.label_names[2], "law");
    assert_int_equal(d.labels[0], 2);
    nep_text_dataset_free(&d);
    nep_test_rmtree(dir);
}

/* --- split ----------------------------------------------------------------------- */

static void test_split(void **state) {
    (void)state;
    char *dir = nep_test_tmpdir();
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf, "index\tsentence1\tsentence2\tlabel\n");
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%d\ta%d\tb%d\t%s\n", 100 + i, i, i,
                              i % 3 ? "entailment" : "not_entailment");
    write_text(dir, "train.tsv", buf, n);
    nep_text_dataset d, tr, va, tr2, va2;
    load_ok(dir, "rte", "train", &d);
    nep_err err = {0};
    nep_test_assert_ok(nep_text_dataset_split(&d, 12, 5, &tr, &va, &err), &err);
    assert_int_equal(tr.n, 38);
    assert_int_equal(va.n, 12);
    assert_int_equal(tr.classes, 2);
    assert_string_equal(va.label_names[1], "not_entailment");
    /* Each row in exactly one half, in the source's order, whole. */
    int seen[50] = {0};
    for (int h = 0; h < 2; h++) {
        const nep_text_dataset *p = h ? &va : &tr;
        for (int64_t i = 0; i < p->n; i++) {
            int k = (int)p->index[i] - 100;
            assert_true(k >= 0 && k < 50);
            if (i) assert_true(p->index[i] > p->index[i - 1]);
            seen[k]++;
            snprintf(buf, sizeof buf, "a%d", k);
            assert_string_equal(p->text_a[i], buf);
            snprintf(buf, sizeof buf, "b%d", k);
            assert_string_equal(p->text_b[i], buf);
            assert_int_equal(p->labels[i], k % 3 ? 0 : 1);
        }
    }
    for (int k = 0; k < 50; k++) assert_int_equal(seen[k], 1);
    /* The same seed, the same split; another seed, another. */
    nep_test_assert_ok(nep_text_dataset_split(&d, 12, 5, &tr2, &va2, &err), &err);
    for (int64_t i = 0; i < 12; i++) assert_int_equal(va.index[i], va2.index[i]);
    nep_text_dataset_free(&tr2);
    nep_text_dataset_free(&va2);
    nep_test_assert_ok(nep_text_dataset_split(&d, 12, 6, &tr2, &va2, &err), &err);
    assert_memory_not_equal(va.index, va2.index, 12 * sizeof *va.index);
    nep_text_dataset_free(&tr2);
    nep_text_dataset_free(&va2);
    nep_test_expect_fail(nep_text_dataset_split(&d, 50, 5, &tr2, &va2, &err), &err, NEP_ERR_ARG,
                "50 validation samples out of 50", NULL);
    expect_empty(&tr2);
    nep_text_dataset_free(&tr);
    nep_text_dataset_free(&va);
    nep_text_dataset_free(&d);
    nep_test_rmtree(dir);
}

/* --- the fortunes task ------------------------------------------------------------- */

static char *slurp(const char *dir, const char *name, size_t *n) {
    char *p = nep_test_path(dir, name);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    free(p);
    char *buf = malloc(1 << 22);
    *n = fread(buf, 1, (1 << 22) - 1, f);
    fclose(f);
    buf[*n] = '\0';
    return buf;
}

static bool same_file(const char *a, const char *b, const char *name) {
    size_t na, nb;
    char *x = slurp(a, name, &na), *y = slurp(b, name, &nb);
    bool same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* Nothing but the four files: the temporary names were renamed away. */
static void expect_only_task_files(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        assert_true(!strcmp(e->d_name, "train.tsv") || !strcmp(e->d_name, "dev.tsv") ||
                    !strcmp(e->d_name, "test.tsv") || !strcmp(e->d_name, "task.json"));
        n++;
    }
    closedir(d);
    assert_int_equal(n, 4);
}

static int by_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool have_fortunes(void) {
    struct stat st;
    if (stat(NEP_FORTUNES_DIR "/computers", &st) == 0) return true;
    fprintf(stderr, "skipped: %s/computers missing (install the Debian package fortunes)\n",
            NEP_FORTUNES_DIR);
    return false;
}

/* Debian 12's fortunes 1:1.99.1-7.3, default categories and seed: the numbers written
 * down in src/data/fortunes_task.c. */
static const int64_t COUNTS[3][8] = {
    {812, 159, 157, 155, 120, 556, 488, 116},
    {102, 20, 20, 20, 15, 69, 61, 14},
    {102, 20, 20, 20, 15, 69, 61, 14},
};
static const char *const SPLITS[3] = {"train", "dev", "test"};
static const char *const DEFAULT_CATS[] = {NEP_FORTUNES_DEFAULT_CATEGORIES};

static void test_fortunes_real(void **state) {
    (void)state;
    if (!have_fortunes()) skip();
    char *root = nep_test_tmpdir();
    char *a = nep_test_path(root, "a"), *b = nep_test_path(root, "b"), *c = nep_test_path(root, "c");
    nep_err err = {0};
    nep_test_assert_ok(nep_fortunes_task_build(NULL, NULL, 0, a, &err), &err);
    nep_test_assert_ok(nep_fortunes_task_build(NEP_FORTUNES_DIR, NULL, 0, b, &err), &err);
    nep_test_assert_ok(nep_fortunes_task_build(NULL, NULL, 1, c, &err), &err);
    expect_only_task_files(a);
    /* Determinism: byte-identical for the same seed; another seed moves rows. */
    const char *files[] = {"train.tsv", "dev.tsv", "test.tsv", "task.json"};
    for (int i = 0; i < 4; i++) assert_true(same_file(a, b, files[i]));
    for (int i = 0; i < 3; i++) assert_false(same_file(a, c, files[i]));

    /* Read back by the GLUE loader: counts per class, labels in range, every text one
     * clean line of at most NEP_FORTUNES_MAX_BYTES bytes, test labelled and indexed. */
    char **all = malloc(4000 * sizeof *all);
    int64_t total = 0;
    nep_text_dataset d[3];
    for (int sp = 0; sp < 3; sp++) {
        load_ok(a, "fortunes", SPLITS[sp], &d[sp]);
        assert_int_equal(d[sp].classes, 8);
        assert_null(d[sp].text_b);
        int64_t per[8] = {0};
        for (int64_t i = 0; i < d[sp].n; i++) {
            assert_true(d[sp].labels[i] >= 0 && d[sp].labels[i] < 8);
            per[d[sp].labels[i]]++;
            const char *t = d[sp].text_a[i];
            size_t len = strlen(t);
            assert_true(len > 0 && len <= NEP_FORTUNES_MAX_BYTES);
            assert_true(t[0] != ' ' && t[len - 1] != ' ' && !strstr(t, "  "));
            for (const char *p = t; *p; p++) assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
            if (sp == 2) assert_int_equal(d[sp].index[i], i);
            all[total++] = d[sp].text_a[i];
        }
        for (int k = 0; k < 8; k++) {
            assert_string_equal(d[sp].label_names[k], DEFAULT_CATS[k]);
            assert_int_equal(per[k], COUNTS[sp][k]);
        }
    }
    /* No text twice, within or across splits. */
    assert_int_equal(total, 2563 + 321 + 321);
    qsort(all, (size_t)total, sizeof *all, by_str);
    for (int64_t i = 1; i < total; i++) assert_true(strcmp(all[i - 1], all[i]) != 0);
    /* The overstrikes of the files are resolved ("_\bI" -> "I", "Ren'\be" -> "Rene"). */
    bool found = false;
    for (int64_t i = 0; i < total; i++)
        found |= !strcmp(all[i], "\"I don't think so,\" said Rene Descartes. Just then, he vanished.");
    assert_true(found);
    free(all);
    for (int sp = 0; sp < 3; sp++) nep_text_dataset_free(&d[sp]);

    /* task.json records the construction. */
    size_t n;
    char *json = slurp(a, "task.json", &n);
    assert_non_null(strstr(json, "\"categories\": [\"computers\", \"education\", \"food\", \"law\", "
                                 "\"love\", \"politics\", \"science\", \"sports\"]"));
    assert_non_null(strstr(json, "\"seed\": 0,"));
    assert_non_null(strstr(json, "\"train\": [812, 159, 157, 155, 120, 556, 488, 116]"));
    assert_non_null(strstr(json, "\"total\": [2563, 321, 321]"));
    free(json);
    free(a);
    free(b);
    free(c);
    nep_test_rmtree(root);
}

/* A category directory written here: cleaning, dropping and deduplication, exactly. */
static void write_category(const char *dir, const char *name, const char *extra, int n) {
    char buf[8192];
    size_t len = (size_t)snprintf(buf, sizeof buf, "%s", extra);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s entry number %d\n%%\n", name, i);
    write_text(dir, name, buf, len);
}

static void test_fortunes_small(void **state) {
    (void)state;
    char *root = nep_test_tmpdir();
    char *src = nep_test_path(root, "src"), *out = nep_test_path(root, "out");
    assert_int_equal(mkdir(src, 0700), 0);
    char longer[1200];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    char extra[2048];
    snprintf(extra, sizeof extra,
             "An _\bI and ____\b\b\b\bdoes\tand Ren'\b\xc3\xa9 here.\n\t\t-- Someone\n%%\n"
             "Bell\a and  escape\x1b kept out.\r\n%%\r\n"
             "shared text\n%%\n"
             "same here\n%%\nsame  here\n%%\n"
             "   \n\n%%\n"
             "bad \xff byte\n%%\n"
             "%s\n%%\n",
             longer);
    write_category(src, "alpha", extra, 12);
    write_category(src, "beta", "shared   text\n%\n", 10);
    /* The last entry has no separator after it. */
    WRITE(src, "gamma", "gamma one\n%\ngamma two");
    const char *cats[] = {"alpha", "beta", NULL};
    nep_err err = {0};
    nep_test_assert_ok(nep_fortunes_task_build(src, cats, 42, out, &err), &err);
    expect_only_task_files(out);

    /* alpha: 12 numbered + 2 cleaned + 1 of "same here" = 15 -> 2 test, 2 dev, 11 train;
     * beta: 10 -> 1, 1, 8. */
    nep_text_dataset d[3];
    const int64_t want[3][2] = {{11, 8}, {2, 1}, {2, 1}};
    bool got_clean = false, got_bell = false;
    int same = 0;
    for (int sp = 0; sp < 3; sp++) {
        load_ok(out, "fortunes", SPLITS[sp], &d[sp]);
        assert_string_equal(d[sp].label_names[0], "alpha");
        assert_string_equal(d[sp].label_names[1], "beta");
        int64_t per[2] = {0};
        for (int64_t i = 0; i < d[sp].n; i++) {
            const char *t = d[sp].text_a[i];
            per[d[sp].labels[i]]++;
            got_clean |= !strcmp(t, "An I and does and Ren\xc3\xa9 here. -- Someone");
            got_bell |= !strcmp(t, "Bell and escape kept out.");
            same += !strcmp(t, "same here");
            assert_null(strstr(t, "shared"));
            assert_null(strstr(t, "bad"));
            assert_true(strlen(t) < 1000);
            assert_int_equal(d[sp].labels[i], strncmp(t, "beta", 4) ? 0 : 1);
        }
        assert_int_equal(per[0], want[sp][0]);
        assert_int_equal(per[1], want[sp][1]);
        nep_text_dataset_free(&d[sp]);
    }
    assert_true(got_clean);
    assert_true(got_bell);
    assert_int_equal(same, 1);
    size_t n;
    char *json = slurp(out, "task.json", &n);
    assert_non_null(strstr(json, "\"seed\": 42,"));
    assert_non_null(strstr(json, "\"entries_in_files\": [20, 11]"));
    assert_non_null(strstr(json, "\"invalid_utf8\": [1, 0]"));
    assert_non_null(strstr(json, "\"empty\": [1, 0]"));
    assert_non_null(strstr(json, "\"too_long\": [1, 0]"));
    assert_non_null(strstr(json, "\"duplicate_in_category\": [1, 0]"));
    assert_non_null(strstr(json, "\"in_several_categories\": [1, 1]"));
    free(json);

    /* A seed beyond 2^53 is written exactly. */
    nep_test_assert_ok(nep_fortunes_task_build(src, cats, UINT64_MAX, out, &err), &err);
    json = slurp(out, "task.json", &n);
    assert_non_null(strstr(json, "\"seed\": 18446744073709551615,"));
    free(json);

    /* Errors: a missing file, too few entries, bad category lists. */
    const char *missing[] = {"alpha", "delta", NULL};
    nep_test_expect_fail(nep_fortunes_task_build(src, missing, 0, out, &err), &err, NEP_ERR_IO,
                "src/delta", "fortunes");
    const char *few[] = {"alpha", "gamma", NULL};
    nep_test_expect_fail(nep_fortunes_task_build(src, few, 0, out, &err), &err, NEP_ERR_FORMAT,
                "src/gamma: 2 usable entries", "at least 10");
    const char *one[] = {"alpha", NULL};
    nep_test_expect_fail(nep_fortunes_task_build(src, one, 0, out, &err), &err, NEP_ERR_ARG,
                "1 categories", NULL);
    const char *twice[] = {"alpha", "beta", "alpha", NULL};
    nep_test_expect_fail(nep_fortunes_task_build(src, twice, 0, out, &err), &err, NEP_ERR_ARG,
                "\"alpha\" given twice", NULL);
    const char *path[] = {"alpha", "../src/beta", NULL};
    nep_test_expect_fail(nep_fortunes_task_build(src, path, 0, out, &err), &err, NEP_ERR_ARG,
                "bad category \"../src/beta\"", NULL);
    char *nested = nep_test_path(root, "no/such/dir");
    nep_test_expect_fail(nep_fortunes_task_build(src, cats, 0, nested, &err), &err, NEP_ERR_IO, nested,
                "cannot create directory");
    free(nested);
    free(src);
    free(out);
    nep_test_rmtree(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_sst2_train),
        cmocka_unit_test(test_sst2_test),
        cmocka_unit_test(test_qnli_crlf),
        cmocka_unit_test(test_rte_by_name),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_load_args),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_fortunes_real),
        cmocka_unit_test(test_fortunes_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
