/* MMLU: CSV reading in the format of Hendrycks et al.'s data.tar (no header; question,
 * four choices, answer letter; RFC 4180 quoting), malformed rows reported as file:line,
 * split folders, lm-evaluation-harness's 0- and 5-shot prompts written out literally, and
 * the per-subject accuracy report. MMLU cannot be fetched here: the test writes small
 * files byte for byte in its format. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nepenthe/mmlu.h"
#include "testutil.h"

/* --- helpers ------------------------------------------------------------------- */

static void write_text(const char *dir, const char *name, const char *text, size_t n) {
    char *p = nep_test_path(dir, name);
    assert_int_equal(nep_test_write_file(p, text, n), 0);
    free(p);
}
#define WRITE(dir, name, lit) write_text((dir), (name), (lit), sizeof(lit) - 1)

static char *subdir(const char *dir, const char *name) {
    char *p = nep_test_path(dir, name);
    assert_int_equal(mkdir(p, 0700), 0);
    return p;
}

/* cmocka 1.1 has no assert_double_equal. */
#define ASSERT_NEAR(got, want, tol) assert_true(fabs((got) - (want)) <= (tol))

static void expect_empty(const nep_mmlu_set *s) {
    assert_int_equal(s->n, 0);
    assert_null(s->items);
    assert_int_equal(s->n_subjects, 0);
    assert_null(s->subjects);
}

static void expect_item(const nep_mmlu_item *it, const char *q, const char *a, const char *b,
                        const char *c, const char *d, int answer, int subject) {
    assert_string_equal(it->question, q);
    assert_string_equal(it->choices[0], a);
    assert_string_equal(it->choices[1], b);
    assert_string_equal(it->choices[2], c);
    assert_string_equal(it->choices[3], d);
    assert_int_equal(it->answer, answer);
    assert_int_equal(it->subject, subject);
}

/* --- reading ------------------------------------------------------------------- */

/* Quoted commas, a quoted line break, "" escapes, a CRLF row end and a CRLF kept inside a
 * quoted field, fields kept verbatim (spaces, a bare quote in an unquoted field), UTF-8,
 * and a last row without a line end. */
static void test_load_file(void **state) {
    (void)state;
    char *dir = nep_test_tmpdir();
    WRITE(dir, "astronomy_test.csv",
          "What is 1+1?,1,2,3,4,B\n"
          "\"Which, of these, is a planet?\",Mars,\"Sun, a star\",Moon, Comet ,A\n"
          "\"He said \"\"hi\"\".\nThen what?\",\"a \"\"b\"\"\",\"\",\"two\r\nlines\",e,D\r\n"
          "Caf\xc3\xa9 is 5\" tall?,x,y,z,\xe2\x80\x94,C");
    char *path = nep_test_path(dir, "astronomy_test.csv");
    nep_mmlu_set s;
    nep_err err = {0};
    nep_test_assert_ok(nep_mmlu_load_file(path, "astronomy", &s, &err), &err);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.n_subjects, 1);
    assert_string_equal(s.subjects[0], "astronomy");
    expect_item(&s.items[0], "What is 1+1?", "1", "2", "3", "4", 1, 0);
    expect_item(&s.items[1], "Which, of these, is a planet?", "Mars", "Sun, a star", "Moon",
                " Comet ", 0, 0);
    expect_item(&s.items[2], "He said \"hi\".\nThen what?", "a \"b\"", "", "two\r\nlines", "e",
                3, 0);
    expect_item(&s.items[3], "Caf\xc3\xa9 is 5\" tall?", "x", "y", "z", "\xe2\x80\x94", 2, 0);
    nep_mmlu_set_free(&s);
    expect_empty(&s);

    /* A CR ending the file ends its last row. */
    WRITE(dir, "cr_test.csv", "q,a,b,c,d,A\r\nr,a,b,c,d,B\r");
    char *cr = nep_test_path(dir, "cr_test.csv");
    nep_test_assert_ok(nep_mmlu_load_file(cr, "cr", &s, &err), &err);
    assert_int_equal(s.n, 2);
    expect_item(&s.items[1], "r", "a", "b", "c", "d", 1, 0);
    nep_mmlu_set_free(&s);
    free(cr);

    /* An empty file is a subject without questions; a missing one is an I/O error. */
    WRITE(dir, "empty_test.csv", "");
    char *empty = nep_test_path(dir, "empty_test.csv");
    nep_test_assert_ok(nep_mmlu_load_file(empty, "empty", &s, &err), &err);
    assert_int_equal(s.n, 0);
    assert_int_equal(s.n_subjects, 1);
    nep_mmlu_set_free(&s);
    char *missing = nep_test_path(dir, "nope_test.csv");
    nep_test_expect_fail(nep_mmlu_load_file(missing, "nope", &s, &err), &err, NEP_ERR_IO, missing, NULL);
    expect_empty(&s);
    nep_test_expect_fail(nep_mmlu_load_file(path, "", &s, &err), &err, NEP_ERR_ARG, "subject", NULL);
    free(missing);
    free(empty);
    free(path);
    nep_test_rmtree(dir);
}

/* Every malformed row fails with NEP_ERR_FORMAT naming the file and the line where the
 * row starts (after rows spanning several lines, too), and leaves the set empty. */
static void test_malformed(void **state) {
    (void)state;
    static const struct {
        const char *text;
        const char *where; /* "<file>:<line>:" */
        const char *what;
    } cases[] = {
        {"q,a,b,c,d,A\nq,a,b,c,A\n", ":2:", "5 fields, expected 6"},
        {"q,a,b,c,d,e,A\n", ":1:", "7 fields"},
        {"\"q\nstill q\",a,b,c,d,A\nq,a,b,c,d,E\n", ":3:", "answer \"E\""},
        {"q,a,b,c,d,a\n", ":1:", "answer \"a\""},
        {"q,a,b,c,d, A\n", ":1:", "answer \" A\""},
        {"q,a,b,c,d,\n", ":1:", "answer \"\""},
        {"q,a,b,c,d,AB", ":1:", "answer \"AB\""},
        {"q,a,b,c,d,A\n\"open,a,b,c,d,A\nq,a,b,c,d,B\n", ":2:", "never closed"},
        {"q,a,b,c,d,A\r\n,a,b,c,d,A\r\n", ":2:", "empty question"},
        {"\" \t\n\xc2\xa0\",a,b,c,d,A\n", ":1:", "blank question"},
        {"q,a,b,c,d,A\n\nq,a,b,c,d,A\n", ":2:", "empty line"},
        {"\"ab\"c,a,b,c,d,A\n", ":1:", "after the closing quote of field 1"},
        {"q,a,\"b\" ,c,d,A\n", ":1:", "after the closing quote of field 3"},
        {"q,a,b\xff,c,d,A\n", ":1:", "invalid UTF-8 in field 3"},
        {"q,a\rb,c,d,e,A\n", ":1:", "carriage return"},
        {"q,a,b,c,d,A\nq\0x,a,b,c,d,A\n", ":2:", "NUL byte in field 1"},
        {"\"multi\nline\n\",a,b,c,d,C\n\"q\",\"a\nb\",c,d,e\n", ":4:", "5 fields"},
    };
    char *dir = nep_test_tmpdir();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char name[64], want[96];
        snprintf(name, sizeof name, "bad%zu_test.csv", i);
        /* The NUL case is sized by hand: strlen stops at its NUL. */
        size_t n = strlen(cases[i].text);
        if (strstr(cases[i].what, "NUL")) n += 1 + strlen(cases[i].text + n + 1);
        write_text(dir, name, cases[i].text, n);
        snprintf(want, sizeof want, "%s%s", name, cases[i].where);
        char *path = nep_test_path(dir, name);
        nep_mmlu_set s;
        nep_err err = {0};
        nep_test_expect_fail(nep_mmlu_load_file(path, "bad", &s, &err), &err, NEP_ERR_FORMAT, want,
                    cases[i].what);
        expect_empty(&s);
        free(path);
    }
    nep_test_rmtree(dir);
}

/* --- split folders ------------------------------------------------------------- */

/* Shots for the prompt test: six abstract_algebra dev questions (the 5-shot prompt takes
 * the first five in file order), questions with spaces and line breaks around them. */
#define AA_DEV                                                                          \
    "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.,0,1,2,3,B\n"              \
    "\"Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. "     \
    "Statement 2 | If H and K are subgroups of G then HK is a subgroup of G.\","         \
    "\"True, True\",\"False, False\",\"True, False\",\"False, True\",B\n"               \
    "\"  Leading and trailing spaces are stripped.\n\",  kept , x ,\" y\", z,C\n"        \
    "Statement 1 | Every element of a group generates a cyclic subgroup.,"              \
    "\"True, True\",\"False, False\",\"True, False\",\"False, True\",C\n"               \
    "Find the characteristic of the ring 2Z.,0,3,12,30,A\n"                             \
    "The sixth question is not a shot.,a,b,c,d,D\n"

static void make_data(const char *root) {
    char *dev = subdir(root, "dev"), *test = subdir(root, "test");
    free(subdir(root, "val"));
    WRITE(dev, "high_school_us_history_dev.csv",
          "\"This question refers to the following information.\n\"\"We the People\"\"\","
          "Lincoln,Jefferson,Madison,Washington,C\r\n");
    WRITE(dev, "abstract_algebra_dev.csv", AA_DEV);
    /* Written in reverse order: the loader sorts. Other names are not subjects. */
    WRITE(test, "high_school_us_history_test.csv", "US q1,a,b,c,d,A\nUS q2,a,b,c,d,D");
    WRITE(test, "abstract_algebra_test.csv",
          "\"\xc2\xa0 Find the order of the factor group Z_6/<3>. \n\",2,3,6,12,B\n"
          "AA q2,a,b,c,d,C\n"
          "AA q3,a,b,c,d,A\n");
    WRITE(test, "notes.txt", "not a csv\n");
    WRITE(test, "._abstract_algebra_test.csv", "\x00\x05\x16\x07");
    WRITE(test, "readme_dev.csv", "q,a,b,c,d,A\n");
    free(dev);
    free(test);
}

static void test_load_split(void **state) {
    (void)state;
    char *root = nep_test_tmpdir();
    make_data(root);
    nep_mmlu_set s;
    nep_err err = {0};
    nep_test_assert_ok(nep_mmlu_load_split(root, "test", NULL, &s, &err), &err);
    assert_int_equal(s.n_subjects, 2);
    assert_string_equal(s.subjects[0], "abstract_algebra");
    assert_string_equal(s.subjects[1], "high_school_us_history");
    assert_int_equal(s.n, 5);
    expect_item(&s.items[0], "\xc2\xa0 Find the order of the factor group Z_6/<3>. \n", "2",
                "3", "6", "12", 1, 0);
    expect_item(&s.items[1], "AA q2", "a", "b", "c", "d", 2, 0);
    expect_item(&s.items[2], "AA q3", "a", "b", "c", "d", 0, 0);
    expect_item(&s.items[3], "US q1", "a", "b", "c", "d", 0, 1);
    expect_item(&s.items[4], "US q2", "a", "b", "c", "d", 3, 1);
    nep_mmlu_set_free(&s);

    /* One subject only. */
    nep_test_assert_ok(nep_mmlu_load_split(root, "dev", "high_school_us_history", &s, &err),
                       &err);
    assert_int_equal(s.n_subjects, 1);
    assert_int_equal(s.n, 1);
    expect_item(&s.items[0],
                "This question refers to the following information.\n\"We the People\"",
                "Lincoln", "Jefferson", "Madison", "Washington", 2, 0);
    nep_mmlu_set_free(&s);

    /* Errors: the message names the file or folder. */
    nep_test_expect_fail(nep_mmlu_load_split(root, "train", NULL, &s, &err), &err, NEP_ERR_ARG,
                "unknown MMLU split \"train\"", NULL);
    nep_test_expect_fail(nep_mmlu_load_split(root, "test", "../dev/x", &s, &err), &err, NEP_ERR_ARG,
                "bad MMLU subject", NULL);
    nep_test_expect_fail(nep_mmlu_load_split(root, "test", "anatomy", &s, &err), &err, NEP_ERR_IO,
                "test/anatomy_test.csv", NULL);
    nep_test_expect_fail(nep_mmlu_load_split(root, "val", NULL, &s, &err), &err, NEP_ERR_IO,
                "val: no *_val.csv files", NULL);
    char *nowhere = nep_test_path(root, "nowhere");
    nep_test_expect_fail(nep_mmlu_load_split(nowhere, "dev", NULL, &s, &err), &err, NEP_ERR_IO,
                "nowhere/dev", NULL);
    free(nowhere);
    expect_empty(&s);
    /* A malformed row in a later subject's file still names that file and line. */
    char *test = nep_test_path(root, "test");
    WRITE(test, "world_religions_test.csv", "q,a,b,c,d,A\nq,a,b,c,d,A\nq,a,b,c,d,F\n");
    nep_test_expect_fail(nep_mmlu_load_split(root, "test", NULL, &s, &err), &err, NEP_ERR_FORMAT,
                "test/world_religions_test.csv:3:", "answer \"F\"");
    expect_empty(&s);
    free(test);
    nep_test_rmtree(root);
}

/* --- prompts ------------------------------------------------------------------- */

/* lm-evaluation-harness's mmlu_abstract_algebra prompt, written out: the description,
 * the first five dev rows as "<question.strip()>\nA. ..\nD. ..\nAnswer: <letter>\n\n",
 * then the target's text ending in "Answer:". Only the questions are stripped. */
static const char AA_5SHOT[] =
    "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
    "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\n"
    "A. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n"
    "Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. "
    "Statement 2 | If H and K are subgroups of G then HK is a subgroup of G.\n"
    "A. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer: B\n\n"
    "Leading and trailing spaces are stripped.\n"
    "A.   kept \nB.  x \nC.  y\nD.  z\nAnswer: C\n\n"
    "Statement 1 | Every element of a group generates a cyclic subgroup.\n"
    "A. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer: C\n\n"
    "Find the characteristic of the ring 2Z.\n"
    "A. 0\nB. 3\nC. 12\nD. 30\nAnswer: A\n\n"
    "Find the order of the factor group Z_6/<3>.\n"
    "A. 2\nB. 3\nC. 6\nD. 12\nAnswer:";

static const char US_0SHOT[] =
    "The following are multiple choice questions (with answers) about high school us history.\n\n"
    "US q2\n"
    "A. a\nB. b\nC. c\nD. d\nAnswer:";

static void test_prompt(void **state) {
    (void)state;
    char *root = nep_test_tmpdir();
    make_data(root);
    nep_mmlu_set dev, test;
    nep_err err = {0};
    nep_test_assert_ok(nep_mmlu_load_split(root, "dev", NULL, &dev, &err), &err);
    nep_test_assert_ok(nep_mmlu_load_split(root, "test", NULL, &test, &err), &err);
    char *p;
    nep_test_assert_ok(nep_mmlu_prompt(&dev, test.subjects[test.items[0].subject], 5,
                                       &test.items[0], &p, &err), &err);
    assert_string_equal(p, AA_5SHOT);
    free(p);
    nep_test_assert_ok(nep_mmlu_prompt(&dev, "high_school_us_history", 0, &test.items[4], &p,
                                       &err), &err);
    assert_string_equal(p, US_0SHOT);
    free(p);
    /* 0 shots need no dev split. */
    nep_test_assert_ok(nep_mmlu_prompt(NULL, "high_school_us_history", 0, &test.items[4], &p,
                                       &err), &err);
    assert_string_equal(p, US_0SHOT);
    free(p);
    /* One shot from the other subject's dev file (its quoted line break and "" kept). */
    nep_test_assert_ok(nep_mmlu_prompt(&dev, "high_school_us_history", 1, &test.items[3], &p,
                                       &err), &err);
    assert_string_equal(p,
        "The following are multiple choice questions (with answers) about high school us history.\n\n"
        "This question refers to the following information.\n\"We the People\"\n"
        "A. Lincoln\nB. Jefferson\nC. Madison\nD. Washington\nAnswer: C\n\n"
        "US q1\nA. a\nB. b\nC. c\nD. d\nAnswer:");
    free(p);
    nep_test_expect_fail(nep_mmlu_prompt(&dev, "high_school_us_history", 2, &test.items[3], &p, &err),
                &err, NEP_ERR_ARG, "2 shots", "has 1 questions");
    assert_null(p);
    nep_test_expect_fail(nep_mmlu_prompt(&dev, "anatomy", 1, &test.items[3], &p, &err), &err,
                NEP_ERR_ARG, "has 0 questions", NULL);
    nep_test_expect_fail(nep_mmlu_prompt(&dev, "anatomy", -1, &test.items[3], &p, &err), &err,
                NEP_ERR_ARG, "-1 shots", NULL);
    assert_string_equal(nep_mmlu_continuation(0), " A");
    assert_string_equal(nep_mmlu_continuation(1), " B");
    assert_string_equal(nep_mmlu_continuation(2), " C");
    assert_string_equal(nep_mmlu_continuation(3), " D");
    assert_null(nep_mmlu_continuation(4));
    nep_mmlu_set_free(&dev);
    nep_mmlu_set_free(&test);
    nep_test_rmtree(root);
}

/* --- accuracy ------------------------------------------------------------------ */

/* abstract_algebra 2 of 3 right, high_school_us_history 1 of 2: micro 3/5 (the harness's
 * weight_by_size), macro (2/3 + 1/2) / 2. */
static void test_score(void **state) {
    (void)state;
    char *root = nep_test_tmpdir();
    make_data(root);
    nep_mmlu_set s;
    nep_err err = {0};
    nep_test_assert_ok(nep_mmlu_load_split(root, "test", NULL, &s, &err), &err);
    /* Answers: B C A | A D. */
    const int pred[] = {1, 2, 3, 0, 0};
    nep_mmlu_report r;
    nep_test_assert_ok(nep_mmlu_score(&s, pred, &r, &err), &err);
    assert_int_equal(r.n_subjects, 2);
    assert_string_equal(r.subjects[0].subject, "abstract_algebra");
    assert_int_equal(r.subjects[0].n, 3);
    assert_int_equal(r.subjects[0].correct, 2);
    ASSERT_NEAR(r.subjects[0].acc, 2.0 / 3.0, 1e-12);
    assert_string_equal(r.subjects[1].subject, "high_school_us_history");
    assert_int_equal(r.subjects[1].n, 2);
    assert_int_equal(r.subjects[1].correct, 1);
    ASSERT_NEAR(r.subjects[1].acc, 0.5, 1e-12);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.correct, 3);
    ASSERT_NEAR(r.acc, 0.6, 1e-12);
    ASSERT_NEAR(r.acc_macro, (2.0 / 3.0 + 0.5) / 2.0, 1e-12);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(nep_mmlu_report_write(&r, f), 0);
    fclose(f);
    assert_string_equal(text,
        "subject                   correct        n     acc\n"
        "abstract_algebra                2        3  0.6667\n"
        "high_school_us_history          1        2  0.5000\n"
        "all (micro, by size)            3        5  0.6000\n"
        "subjects (macro)                         2  0.5833\n");
    free(text);
    nep_mmlu_report_free(&r);
    assert_null(r.subjects);

    const int bad[] = {1, 2, 3, 4, 0};
    nep_test_expect_fail(nep_mmlu_score(&s, bad, &r, &err), &err, NEP_ERR_ARG,
                "prediction 4 for question 3", NULL);
    assert_null(r.subjects);
    nep_mmlu_set_free(&s);
    nep_test_rmtree(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_load_split),
        cmocka_unit_test(test_prompt),
        cmocka_unit_test(test_score),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
