/* SVG figures (nepenthe/report.h): files are well-formed XML (checked with Python's
 * minidom), labels are escaped, one bar rect per non-empty segment, one polyline per
 * series, non-finite points skipped, "no data" figures, and I/O errors that name the path
 * and leave no temporary file. Run from the repository root. */
#include "testutil.h"

#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nepenthe/report.h"

static char *dir; /* one temporary directory for the whole group */

static int make_dir(void **state) { return (dir = nep_test_tmpdir()) ? 0 : -1; }
static int remove_dir(void **state) {
    nep_test_rmtree(dir);
    return 0;
}

/* Whole file as a string (caller frees); fails the test if it cannot be read. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static void assert_well_formed(const char *path) {
    char cmd[4352];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import xml.dom.minidom,sys; xml.dom.minidom.parse(sys.argv[1])\""
             " '%s'", path);
    assert_int_equal(system(cmd), 0);
}

/* Number of entries in dir other than . and .. */
static int dir_entries(void) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void test_bars(void **state) {
    char *path = nep_test_path(dir, "bars.svg");
    const char *names[] = {"conv1", "a<b&\"c\"", "fc'3", "empty"};
    int64_t off[] = {10, 0, 5, 0}, on[] = {20, 3, 0, 0}, mixed[] = {70, 0, 5, 0},
            offp[] = {0, 2, 1, 0};
    nep_err err;
    nep_test_assert_ok(nep_svg_state_bars(path, "States <per> layer", 4, names, off, on, offp, mixed, &err),
              &err);
    assert_well_formed(path);
    char *s = slurp(path);
    assert_non_null(strstr(s, "a&lt;b&amp;&quot;c&quot;"));
    assert_non_null(strstr(s, "fc&apos;3"));
    assert_non_null(strstr(s, "States &lt;per&gt; layer"));
    assert_null(strstr(s, "a<b"));
    /* non-zero segments: 3 + 2 + 3 + 0 */
    assert_int_equal(count(s, "class=\"bar\""), 8);
    assert_int_equal(count(s, "class=\"empty\""), 1);
    assert_non_null(strstr(s, "always OFF+"));
    free(s);
    /* two-state layers: no OFF+ in the legend */
    nep_test_assert_ok(nep_svg_state_bars(path, NULL, 4, NULL, off, on, NULL, mixed, &err), &err);
    assert_well_formed(path);
    s = slurp(path);
    assert_int_equal(count(s, "class=\"bar\""), 6); /* 3 + 1 + 2 + 0 */
    assert_null(strstr(s, "OFF+"));
    free(s);
    assert_int_equal(dir_entries(), 1);
    free(path);
}

static void test_many_layers(void **state) {
    enum { N = 160 };
    char *path = nep_test_path(dir, "many.svg");
    static char buf[N][32];
    const char *names[N];
    int64_t off[N], on[N], mixed[N], offp[N];
    int expect = 0;
    for (int i = 0; i < N; i++) {
        snprintf(buf[i], sizeof buf[i], "features.%d.conv", i);
        names[i] = buf[i];
        off[i] = i % 7, on[i] = i % 3, mixed[i] = 10 + i, offp[i] = i % 2;
        expect += (off[i] > 0) + (on[i] > 0) + (mixed[i] > 0) + (offp[i] > 0);
    }
    nep_err err;
    nep_test_assert_ok(nep_svg_state_bars(path, "many", N, names, off, on, offp, mixed, &err), &err);
    assert_well_formed(path);
    char *s = slurp(path);
    assert_int_equal(count(s, "class=\"bar\""), expect);
    /* only every k-th layer is labelled, vertically */
    int labels = count(s, ".conv</text>");
    assert_true(labels > 10 && labels < N);
    assert_non_null(strstr(s, "rotate(-90"));
    free(s);
    free(path);
}

static void test_lines(void **state) {
    char *path = nep_test_path(dir, "lines.svg");
    double x[] = {0, 1, 2, 3, 4}, y1[] = {0.1, 0.5, NAN, 0.7, 0.9},
           y2[] = {1, INFINITY, 0.2, -INFINITY, 0.4}, y3[] = {0.5, 0.5, 0.5, 0.5, 0.5};
    nep_svg_series sr[] = {{"train <a&b>", 5, x, y1, false},
                           {"test \"x\" 'y'", 5, x, y2, true},
                           {NULL, 5, x, y3, false},
                           {"empty", 0, NULL, NULL, false}};
    nep_err err;
    nep_test_assert_ok(nep_svg_lines(path, "Accuracy & loss", "epoch", "value <%>", sr, 4, &err), &err);
    assert_well_formed(path);
    char *s = slurp(path);
    assert_int_equal(count(s, "<polyline"), 4);
    assert_int_equal(count(s, "class=\"marker\""), 4 + 3 + 5);
    assert_non_null(strstr(s, "train &lt;a&amp;b&gt;"));
    assert_non_null(strstr(s, "test &quot;x&quot; &apos;y&apos;"));
    assert_non_null(strstr(s, "Accuracy &amp; loss"));
    assert_non_null(strstr(s, "value &lt;%&gt;"));
    assert_non_null(strstr(s, "stroke-dasharray"));
    assert_null(strstr(s, "nan"));
    assert_null(strstr(s, "inf"));
    free(s);
    free(path);
}

static void test_flat_and_many_series(void **state) {
    char *path = nep_test_path(dir, "flat.svg");
    double x[] = {3, 3}, y[] = {7, 7};
    nep_svg_series one = {"flat", 2, x, y, false};
    nep_err err;
    nep_test_assert_ok(nep_svg_lines(path, "flat", "x", "y", &one, 1, &err), &err);
    assert_well_formed(path);
    char *s = slurp(path);
    assert_null(strstr(s, "nan"));
    assert_int_equal(count(s, "class=\"marker\""), 2);
    free(s);
    enum { S = 20, P = 30 };
    static double xs[P], ys[S][P];
    nep_svg_series sr[S];
    char labels[S][16];
    for (int i = 0; i < P; i++) xs[i] = i;
    for (int k = 0; k < S; k++) {
        for (int i = 0; i < P; i++) ys[k][i] = 1e-3 * (k + 1) * sqrt(i);
        snprintf(labels[k], sizeof labels[k], "run %d", k);
        sr[k] = (nep_svg_series){labels[k], P, xs, ys[k], k % 3 == 0};
    }
    nep_test_assert_ok(nep_svg_lines(path, "twenty", "step", "loss", sr, S, &err), &err);
    assert_well_formed(path);
    s = slurp(path);
    assert_int_equal(count(s, "<polyline"), S);
    assert_int_equal(count(s, "class=\"marker\""), S * P);
    free(s);
    free(path);
}

static void test_no_data(void **state) {
    char *p1 = nep_test_path(dir, "nobars.svg"), *p2 = nep_test_path(dir, "nolines.svg");
    nep_err err;
    nep_test_assert_ok(nep_svg_state_bars(p1, "none", 0, NULL, NULL, NULL, NULL, NULL, &err), &err);
    nep_test_assert_ok(nep_svg_lines(p2, "none", NULL, NULL, NULL, 0, &err), &err);
    const char *paths[] = {p1, p2};
    for (int i = 0; i < 2; i++) {
        assert_well_formed(paths[i]);
        char *s = slurp(paths[i]);
        assert_non_null(strstr(s, "no data"));
        free(s);
    }
    free(p1);
    free(p2);
}

static void test_bad_args(void **state) {
    char *path = nep_test_path(dir, "bad.svg");
    int64_t neg[] = {-1}, one[] = {1};
    nep_err err;
    assert_int_equal(nep_svg_state_bars(path, "t", 1, NULL, neg, one, NULL, one, &err),
                     NEP_ERR_ARG);
    assert_int_equal(nep_svg_lines(path, "t", "x", "y", NULL, 2, &err), NEP_ERR_ARG);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    free(path);
}

static void test_io_error(void **state) {
    char *sub = nep_test_path(dir, "missing");
    char *path = nep_test_path(sub, "fig.svg");
    int64_t c[] = {1};
    double x[] = {0, 1};
    nep_svg_series s = {"a", 2, x, x, false};
    nep_err err;
    assert_int_equal(nep_svg_state_bars(path, "t", 1, NULL, c, c, NULL, c, &err), NEP_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(nep_svg_lines(path, "t", "x", "y", &s, 1, &err), NEP_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    /* the target is a directory: the temp file is created, the rename fails and the
     * temp file is removed */
    int before = dir_entries();
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(nep_svg_lines(sub, "t", "x", "y", &s, 1, &err), NEP_ERR_IO);
    assert_non_null(strstr(err.msg, sub));
    assert_int_equal(dir_entries(), before + 1);
    rmdir(sub);
    free(path);
    free(sub);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bars),
        cmocka_unit_test(test_many_layers),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_flat_and_many_series),
        cmocka_unit_test(test_no_data),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_io_error),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
