#include "testutil.h"

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double nep_test_close(const nep_real *a, const double *b, int64_t n, double rtol,
                      double atol, const char *what) {
    double worst = 0;
    int64_t wi = -1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (atol + rtol * fabs(b[i]));
        if (!(d <= worst)) { /* also catches NaN */
            worst = isnan(d) ? INFINITY : d;
            wi = i;
        }
    }
    if (getenv("NEP_TEST_VERBOSE"))
        fprintf(stderr, "%s: worst error %.3g of tolerance\n", what, worst);
    if (worst > 1.0)
        fprintf(stderr, "%s: element %lld: got %.9g, expected %.9g (rtol %g, atol %g)\n",
                what, (long long)wi, (double)a[wi], b[wi], rtol, atol);
    return worst;
}

int nep_test_both_layouts(const char *name, const struct CMUnitTest *tests, size_t n,
                          CMFixtureFunction setup, CMFixtureFunction teardown) {
    int failed = 0;
    const char *layouts[] = {"nchw", "nhwc"};
    for (int i = 0; i < 2; i++) {
        setenv("NEP_LAYOUT", layouts[i], 1);
        fprintf(stderr, "layout %s:\n", layouts[i]);
        failed |= _cmocka_run_group_tests(name, tests, n, setup, teardown);
    }
    unsetenv("NEP_LAYOUT");
    return failed;
}

char *nep_test_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char *tmpl = malloc(4096);
    snprintf(tmpl, 4096, "%s/nepenthe-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) {
        free(tmpl);
        return NULL;
    }
    return tmpl;
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(p);
}

void nep_test_rmtree(char *dir) {
    if (!dir) return;
    chmod(dir, 0700);
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

void nep_test_assert_ok(nep_status s, const nep_err *err) {
    if (s != NEP_OK) fprintf(stderr, "unexpected failure: %s\n", err->msg);
    assert_int_equal(s, NEP_OK);
}

char *nep_test_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

const char *nep_test_golden_dir(void) {
    const char *d = getenv("NEP_GOLDEN_DIR");
    return d && *d ? d : "build/golden";
}

int nep_test_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

int nep_test_op_graph(nep_graph *g, nep_op_kind op, nep_attrs attrs, nep_shape in) {
    return nep_test_op_graph_then(g, op, attrs, in, NEP_OP_INPUT);
}

int nep_test_op_graph_then(nep_graph *g, nep_op_kind op, nep_attrs attrs, nep_shape in, nep_op_kind then) {
    nep_graph_init(g);
    int x = nep_graph_input(g, "input", in);
    int ins[3] = {x, x, x};
    if (op == NEP_OP_SDPA) /* q = x; k, v: Linears of x to the key/value heads' width */
        for (int i = 1; i < 3; i++) {
            const int64_t C = nep_shape_features(&in), heads = attrs.sdpa.heads,
                          kv = C / heads * (attrs.sdpa.kv_heads > 0 ? attrs.sdpa.kv_heads : heads);
            ins[i] = nep_graph_add1(g, NEP_OP_LINEAR, i == 1 ? "k" : "v", x, (nep_attrs){.linear = {.features = kv}});
            nep_graph_add_param(g, ins[i], "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){kv, C});
        }
    int id = op == NEP_OP_ATTENTION ? nep_graph_add_attention(g, "op", x, nep_shape_features(&in), attrs.attention)
                                    : nep_graph_add(g, op, "op", ins, op == NEP_OP_ADD || op == NEP_OP_MUL ? 2 : op == NEP_OP_SDPA ? 3 : 1, attrs);
    if (op == NEP_OP_LINEAR) {
        const nep_linear_attrs *l = &attrs.linear;
        nep_graph_add_param(g, id, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 2,
                            (int64_t[]){l->features, in.d[0]});
        if (l->bias)
            nep_graph_add_param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){l->features});
    } else if (op == NEP_OP_PRELU) {
        nep_graph_add_param(g, id, "weight", NEP_PARAM_TRAINABLE, 1, (int64_t[]){in.d[0]});
    } else if (op == NEP_OP_EMBEDDING) { /* rows for the ids 0..7 or for positions past a padding row 3 */
        nep_graph_add_param(g, id, "weight", NEP_PARAM_TRAINABLE, 2, (int64_t[]){8 + 4 + in.d[0], 4});
    } else if (op == NEP_OP_AFFINE || op == NEP_OP_LAYERNORM || op == NEP_OP_RMSNORM) {
        const int64_t c[1] = {nep_shape_features(&in)};
        nep_graph_add_param(g, id, "weight", NEP_PARAM_TRAINABLE, 1, c);
        if (op != NEP_OP_RMSNORM) nep_graph_add_param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, c);
    } else if (op == NEP_OP_CLASS_TOKEN) { /* named as the node, as torchvision's */
        nep_graph_add_param(g, id, "", NEP_PARAM_TRAINABLE, 3, (int64_t[]){1, 1, in.d[1]});
    } else if (op == NEP_OP_POS_EMBEDDING) {
        nep_graph_add_param(g, id, "", NEP_PARAM_TRAINABLE, 3, (int64_t[]){1, in.d[0], in.d[1]});
    } else if (op == NEP_OP_CONV2D) {
        const nep_conv2d_attrs *c = &attrs.conv;
        int groups = c->groups > 0 ? c->groups : 1;
        nep_graph_add_param(g, id, "weight", NEP_PARAM_TRAINABLE | NEP_PARAM_WEIGHT, 4,
                            (int64_t[]){c->features, in.d[0] / groups, c->kernel[0], c->kernel[1]});
        if (c->bias)
            nep_graph_add_param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, (int64_t[]){c->features});
    } else if (op == NEP_OP_BATCHNORM) {
        const int64_t c[1] = {in.d[0]};
        nep_graph_add_param(g, id, "weight", NEP_PARAM_TRAINABLE, 1, c);
        nep_graph_add_param(g, id, "bias", NEP_PARAM_TRAINABLE, 1, c);
        nep_graph_add_param(g, id, "running_mean", 0, 1, c);
        nep_graph_add_param(g, id, "running_var", 0, 1, c);
    }
    if (then != NEP_OP_INPUT) nep_graph_add1(g, then, "then", id, (nep_attrs){{0}});
    nep_err err;
    assert_int_equal(nep_graph_finalize(g, &err), NEP_OK);
    return id;
}

int64_t nep_test_i64(const nep_st_tensor *t, int64_t i) {
    int64_t v;
    memcpy(&v, (const char *)t->data + 8 * i, sizeof v);
    return v;
}

int nep_test_read_golden(const char *file, nep_safetensors *st) {
    char *path = nep_test_path(nep_test_golden_dir(), file);
    nep_err err;
    int rc = nep_st_read(path, st, &err) == NEP_OK ? 0 : -1;
    if (rc) fprintf(stderr, "%s (run `make golden`)\n", err.msg);
    free(path);
    return rc;
}

const nep_st_tensor *nep_test_tensor(const nep_safetensors *st, const char *prefix,
                                     const char *name) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const nep_st_tensor *t = nep_st_find(st, full);
    if (!t) fprintf(stderr, "golden tensor %s missing\n", full);
    assert_non_null(t);
    return t;
}

const nep_st_tensor *nep_test_case_tensor(const nep_safetensors *st, const char *c, const char *name) {
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s.", c);
    return nep_test_tensor(st, prefix, name);
}

nep_real *nep_test_as_real(const nep_st_tensor *t) {
    double *d = nep_test_as_f64(t);
    nep_real *r = malloc(sizeof(nep_real) * (size_t)(t->numel ? t->numel : 1));
    for (int64_t i = 0; i < t->numel; i++) r[i] = (nep_real)d[i];
    free(d);
    return r;
}

double *nep_test_as_f64(const nep_st_tensor *t) {
    double *d = malloc(sizeof(double) * (size_t)(t->numel ? t->numel : 1));
    assert_int_equal(nep_st_to_f64(t, d, t->numel, NULL), NEP_OK);
    return d;
}

#ifdef NEP_DOUBLE
double nep_test_loss(nep_exec *ex, const double *x, int64_t batch, const double *r, int64_t ny) {
    const double *y = nep_exec_forward(ex, x, batch);
    double l = 0;
    for (int64_t i = 0; i < ny; i++) l += y[i] * r[i];
    return l;
}

void nep_test_fd_check(const char *what, double *v, const double *analytic, int64_t n,
                       nep_exec *ex, const double *x, int64_t batch, const double *r,
                       int64_t ny, double h, double tol) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double keep = v[i];
        v[i] = keep + h;
        double lp = nep_test_loss(ex, x, batch, r, ny);
        v[i] = keep - h;
        double lm = nep_test_loss(ex, x, batch, r, ny);
        v[i] = keep;
        double num = (lp - lm) / (2 * h);
        double rel = fabs(num - analytic[i]) / fmax(1e-3, fabs(num) + fabs(analytic[i]));
        if (rel > tol)
            fprintf(stderr, "%s[%lld]: analytic %.12g numeric %.12g\n", what, (long long)i,
                    analytic[i], num);
        assert_true(rel <= tol);
        worst = fmax(worst, rel);
    }
    if (getenv("NEP_TEST_VERBOSE")) fprintf(stderr, "%s: worst relative error %.3g\n", what, worst);
}
#endif

void nep_test_expect_scaled(const char *what, const nep_real *got, const nep_st_tensor *t, double rtol,
                            double atol_rel) {
    double *want = nep_test_as_f64(t), largest = 0;
    for (int64_t i = 0; i < t->numel; i++) largest = fmax(largest, fabs(want[i]));
    NEP_ASSERT_CLOSE(got, want, t->numel, rtol, atol_rel * largest, what);
    free(want);
}

void nep_test_expect_case(const nep_safetensors *st, const char *c, const char *name, const char *on,
                          const nep_real *got, double rtol, double atol) {
    char what[128];
    snprintf(what, sizeof what, "%s.%s on %s", c, name, on);
    nep_test_expect_scaled(what, got, nep_test_case_tensor(st, c, name), rtol, atol);
}

void nep_test_expect_fail(nep_status got, const nep_err *err, nep_status want, const char *n1, const char *n2) {
    const bool ok = got == want && strstr(err->msg, n1) && (!n2 || strstr(err->msg, n2));
    if (!ok)
        fprintf(stderr, "status %s, message \"%s\"; wanted %s containing \"%s\" and \"%s\"\n",
                nep_status_name(got), err->msg, nep_status_name(want), n1, n2 ? n2 : "");
    assert_true(ok);
}

int nep_test_count_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}
