#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>
#include <omp.h>

static void print_default(const cli_opt *o) {
    switch (o->kind) {
    case OPT_STR:
        if (*(const char **)o->dst) printf(" (default: %s)", *(const char **)o->dst);
        break;
    case OPT_INT: printf(" (default: %lld)", (long long)*(int64_t *)o->dst); break;
    case OPT_REAL: printf(" (default: %g)", *(double *)o->dst); break;
    case OPT_FLAG: break;
    }
}

static void print_help(const char *cmd, const char *usage, const cli_opt *opts) {
    printf("usage: nepenthe %s %s\n\n%s options:\n", cmd, usage, cmd);
    for (const cli_opt *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s", o->name,
                 o->kind == OPT_FLAG ? "" : o->kind == OPT_STR ? " S" : o->kind == OPT_INT ? " N" : " X");
        printf("  %-24s %s", left, o->help);
        print_default(o);
        printf("\n");
    }
    printf("  %-24s %s\n", "--help", "show this help");
}

static int parse_value(const char *cmd, cli_opt *o, const char *v) {
    char *end;
    errno = 0;
    if (o->kind == OPT_STR) {
        *(const char **)o->dst = v;
    } else if (o->kind == OPT_INT) {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end)
            return cli_errorf(cmd, "--%s: '%s' is not an integer", o->name, v) + 1;
        *(int64_t *)o->dst = x;
    } else {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x))
            return cli_errorf(cmd, "--%s: '%s' is not a finite number", o->name, v) + 1;
        *(double *)o->dst = x;
    }
    return 0;
}

int cli_parse(const char *cmd, const char *usage, cli_opt *opts, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help(cmd, usage, opts);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0)
            return cli_errorf(cmd, "unexpected argument '%s' (see nepenthe %s --help)", a, cmd) + 1;
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        cli_opt *o = opts;
        while (o->name && !(strlen(o->name) == len && strncmp(o->name, name, len) == 0)) o++;
        if (!o->name)
            return cli_errorf(cmd, "unknown option '--%.*s' (see nepenthe %s --help)", (int)len,
                              name, cmd) + 1;
        o->seen = true;
        if (o->kind == OPT_FLAG) {
            if (eq) return cli_errorf(cmd, "--%s takes no value", o->name) + 1;
            *(bool *)o->dst = true;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return cli_errorf(cmd, "--%s needs a value", o->name) + 1;
        if (parse_value(cmd, o, v)) return 2;
    }
    return 0;
}

bool cli_seen(const cli_opt *opts, const char *name) {
    for (; opts->name; opts++)
        if (strcmp(opts->name, name) == 0) return opts->seen;
    return false;
}

int cli_parse_list(const char *flag, const char *s, int64_t *out, int max) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || (*end && *end != ',') || n >= max) {
            fprintf(stderr, "nepenthe: --%s: '%s' is not a list of at most %d integers like 1024,1024\n",
                    flag, s, max);
            return -1;
        }
        out[n++] = v;
        p = *end ? end + 1 : end;
    }
    return n;
}

int cli_error(const char *cmd, const nep_err *err) {
    fprintf(stderr, "nepenthe %s: %s\n", cmd, err->msg);
    return 1;
}

int cli_errorf(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nepenthe %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

void model_opts_default(model_opts *m) {
    *m = (model_opts){.model = "mlp", .hidden = "1024,1024,1024", .act = "relu", .input = "1,28,28",
                      .slope = 0.01, .dropout = 0, .classes = 10};
}

void model_opts_table(model_opts *m, cli_opt *opts, int *n) {
    opts[(*n)++] = (cli_opt){"model", OPT_STR, &m->model, "architecture: mlp"};
    opts[(*n)++] = (cli_opt){"hidden", OPT_STR, &m->hidden, "mlp hidden widths, comma-separated"};
    opts[(*n)++] = (cli_opt){"act", OPT_STR, &m->act, "rectifier: relu, leaky_relu, prelu, relu6, gelu, silu"};
    opts[(*n)++] = (cli_opt){"slope", OPT_REAL, &m->slope, "leaky_relu negative slope"};
    opts[(*n)++] = (cli_opt){"dropout", OPT_REAL, &m->dropout, "dropout after each rectifier"};
    opts[(*n)++] = (cli_opt){"input", OPT_STR, &m->input, "input shape C,H,W"};
    opts[(*n)++] = (cli_opt){"classes", OPT_INT, &m->classes, "output classes"};
}

int model_opts_spec(const char *cmd, const model_opts *m, nep_model_spec *spec) {
    *spec = nep_model_spec_default();
    if (strcmp(m->model, "mlp") != 0)
        return cli_errorf(cmd, "--model: unknown model '%s' (known: mlp)", m->model);
    snprintf(spec->name, sizeof spec->name, "%s", m->model);
    int n = cli_parse_list("hidden", m->hidden, spec->hidden, NEP_MAX_HIDDEN);
    if (n < 0) return 1;
    spec->n_hidden = n;
    int a = nep_act_from_name(m->act);
    if (a < 0)
        return cli_errorf(cmd, "--act: unknown rectifier '%s' (relu, leaky_relu, prelu, relu6, "
                          "gelu, silu)", m->act);
    spec->act = (nep_op_kind)a;
    int64_t in[3];
    if (cli_parse_list("input", m->input, in, 3) != 3 || in[0] < 1 || in[1] < 1 || in[2] < 1)
        return cli_errorf(cmd, "--input: '%s' is not C,H,W with positive sizes", m->input);
    spec->in_c = (int)in[0], spec->in_h = (int)in[1], spec->in_w = (int)in[2];
    if (m->classes < 2) return cli_errorf(cmd, "--classes: needs at least 2");
    spec->classes = (int)m->classes;
    if (!(m->dropout >= 0 && m->dropout < 1)) return cli_errorf(cmd, "--dropout: must be in [0, 1)");
    spec->slope = m->slope;
    spec->dropout = m->dropout;
    return 0;
}

int cli_load_data(const char *cmd, const char *name, const char *dir, bool train,
                  nep_dataset *out) {
    nep_err err;
    if (strcmp(name, "fashion-mnist") != 0 && strcmp(name, "mnist") != 0)
        return cli_errorf(cmd, "--data: unknown data set '%s' (known: fashion-mnist, mnist with "
                          "--data-dir)", name);
    if (strcmp(name, "mnist") == 0 && !dir)
        return cli_errorf(cmd, "--data mnist needs --data-dir (a directory with the IDX files)");
    if (nep_fashion_mnist_load(dir, train, out, &err) != NEP_OK) return cli_error(cmd, &err);
    return 0;
}

int cli_check_data_fits(const char *cmd, const nep_model_spec *spec, const nep_dataset *d) {
    if (d->c != spec->in_c || d->h != spec->in_h || d->w != spec->in_w)
        return cli_errorf(cmd, "the data's images are %dx%dx%d but the model's input is %dx%dx%d "
                          "(--input)", d->c, d->h, d->w, spec->in_c, spec->in_h, spec->in_w);
    if (d->classes > spec->classes)
        return cli_errorf(cmd, "the data has %d classes but the model outputs %d (--classes)",
                          d->classes, spec->classes);
    return 0;
}

void cli_set_threads(int64_t n) {
    if (n <= 0) return;
    omp_set_num_threads((int)n);
    openblas_set_num_threads((int)n);
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 359999) s = 0;
    snprintf(buf, n, "%d:%02d", (int)s / 60, (int)s % 60);
}

void cli_progress_cb(void *ctx, int64_t done, int64_t total, double loss, double seconds) {
    cli_progress *p = ctx;
    if (!p->tty || (seconds - p->last < 0.2 && done < total)) return;
    p->last = seconds;
    double frac = total ? (double)done / (double)total : 1;
    char eta[16];
    fmt_eta(eta, sizeof eta, frac > 0 ? seconds * (1 - frac) / frac : 0);
    int width = 24, filled = (int)(frac * width);
    fprintf(stderr, "\r%s [", p->label);
    for (int i = 0; i < width; i++) fputc(i < filled ? '#' : '.', stderr);
    fprintf(stderr, "] %3.0f%% %7.0f img/s loss %.4f ETA %s ", 100 * frac,
            seconds > 0 ? (double)done / seconds : 0, loss, eta);
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->tty) fprintf(stderr, "\r\033[K");
    p->last = 0;
}
