/* nepenthe theory: the model of SPEC section 7 (paper Section 3.2, Fig. 2) as a table of
 * t, C(t), g(t), P[Z > eps] and H(t), and its figures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/checkpoint.h"
#include "nepenthe/report.h"
#include "nepenthe/theory.h"
#include "nepenthe/theory_measure.h"

/* "from:to:step" with 0 <= from <= to and step > 0; at most max points. */
static int parse_range(const char *s, double *from, double *to, double *step) {
    char *e1, *e2, *e3;
    *from = strtod(s, &e1);
    if (*e1 != ':') return -1;
    *to = strtod(e1 + 1, &e2);
    if (*e2 != ':') return -1;
    *step = strtod(e2 + 1, &e3);
    if (*e3 || !(*from >= 0) || !(*to >= *from) || !(*step > 0) || !isfinite(*to) ||
        (*to - *from) / *step > 100000)
        return -1;
    return 0;
}

/* The figures: (a) the weight density after pruning at a few t, (b) f_Z for the same t,
 * (c) H against t over the table's range. */
enum { N_T = 5, N_PTS = 401 };
static int write_figures(const char *dir, const double *t, const double *h, int n, double eps) {
    static const double ts[N_T] = {0, 0.5, 1, 1.5, 2};
    double x[N_PTS], wy[N_T][N_PTS], zy[N_T][N_PTS];
    char labels[N_T][32];
    nep_svg_series ws[N_T], zs[N_T];
    for (int i = 0; i < N_PTS; i++) x[i] = -4 + 8.0 * i / (N_PTS - 1) + 1e-9; /* z = 0 is K0's pole */
    for (int k = 0; k < N_T; k++) {
        snprintf(labels[k], sizeof labels[k], "t = %.1f", ts[k]);
        for (int i = 0; i < N_PTS; i++) {
            wy[k][i] = fabs(x[i]) < ts[k] ? 0 : exp(-0.5 * x[i] * x[i]) / sqrt(2 * M_PI);
            zy[k][i] = nep_theory_density(x[i], ts[k]);
            if (zy[k][i] > 1.5) zy[k][i] = NAN; /* the pole: off the chart */
        }
        ws[k] = (nep_svg_series){labels[k], N_PTS, x, wy[k], false};
        zs[k] = (nep_svg_series){labels[k], N_PTS, x, zy[k], false};
    }
    char *a = malloc(strlen(dir) + 32), *b = malloc(strlen(dir) + 32), *c = malloc(strlen(dir) + 32);
    char title[96];
    snprintf(title, sizeof title, "entropy of a neuron between Z > %g and Z <= %g", eps, eps);
    const nep_svg_series hs = {"H(t)", n, t, h, false};
    nep_err err;
    int rc = 0;
    if (!a || !b || !c) {
        rc = cli_errorf("theory", "out of memory");
    } else {
        sprintf(a, "%s/fig_weights.svg", dir), sprintf(b, "%s/fig_density.svg", dir);
        sprintf(c, "%s/fig_entropy.svg", dir);
        if (nep_svg_lines(a, "(a) weight density after magnitude pruning at t", "w", "density", ws, N_T, &err) ||
            nep_svg_lines(b, "(b) pre-activation density f_Z(z, t)", "z", "density", zs, N_T, &err) ||
            nep_svg_lines(c, title, "pruning threshold t", "H (bits)", &hs, 1, &err))
            rc = cli_error("theory", &err);
    }
    free(a), free(b), free(c);
    return rc;
}

/* "<dir>/<prefix><name>.svg" with the name's dots made dashes. */
static char *fig_path(const char *dir, const char *prefix, const char *name) {
    char *p = malloc(strlen(dir) + strlen(prefix) + strlen(name) + 8);
    if (!p) return NULL;
    sprintf(p, "%s/%s%s.svg", dir, prefix, name);
    for (char *c = p + strlen(dir) + 1; *c; c++)
        if (*c == '.' && strcmp(c, ".svg") != 0) *c = '-';
    return p;
}

/* Measured curves beside the model's, and the histograms of the Gaussian assumption. */
static int measured_figures(const char *dir, const nep_graph *g, const nep_theory_curves *c,
                            const double *theory_c, const double *theory_h) {
    const int L = c->n_layers;
    nep_svg_series *hs = calloc((size_t)L + 1, sizeof *hs), *ps = calloc((size_t)L + 1, sizeof *ps);
    if (!hs || !ps) {
        free(hs), free(ps);
        return cli_errorf("theory", "out of memory");
    }
    for (int i = 0; i < L; i++) {
        const char *name = g->nodes[c->layers[i].node].name;
        hs[i] = (nep_svg_series){name, c->n_t, c->t, c->layers[i].entropy, false};
        ps[i] = (nep_svg_series){name, c->n_t, c->t, c->layers[i].pruned, false};
    }
    hs[L] = (nep_svg_series){"model H(t)", c->n_t, c->t, theory_h, true};
    ps[L] = (nep_svg_series){"model C(t)", c->n_t, c->t, theory_c, true};
    nep_err err;
    char *a = fig_path(dir, "fig_", "measured_entropy"), *b = fig_path(dir, "fig_", "measured_pruned");
    int rc = 0;
    if (!a || !b ||
        nep_svg_lines(a, "mean neuron entropy after pruning at |w| < t sigma", "t (weight standard deviations)",
                      "H_l (bits)", hs, L + 1, &err) ||
        nep_svg_lines(b, "fraction of each layer's weights pruned", "t (weight standard deviations)",
                      "pruned", ps, L + 1, &err))
        rc = a && b ? cli_error("theory", &err) : cli_errorf("theory", "out of memory");
    free(a), free(b), free(hs), free(ps);
    double x[NEP_HIST_BINS], gauss[NEP_HIST_BINS];
    for (int k = 0; k < NEP_HIST_BINS; k++) {
        x[k] = -4 + 8.0 * (k + 0.5) / NEP_HIST_BINS;
        gauss[k] = exp(-0.5 * x[k] * x[k]) / sqrt(2 * M_PI);
    }
    for (int i = 0; !rc && i < L; i++) {
        const nep_layer_curve *l = &c->layers[i];
        const char *name = g->nodes[l->node].name;
        const nep_svg_series s3[3] = {{"weights w / sigma", NEP_HIST_BINS, x, l->weight_hist, false},
                                      {"pre-activations (z - mean) / std", NEP_HIST_BINS, x, l->z_hist, false},
                                      {"N(0, 1)", NEP_HIST_BINS, x, gauss, true}};
        char title[128], *path = fig_path(dir, "hist_", name);
        snprintf(title, sizeof title, "%s: standardized weights and pre-activations", name);
        if (!path) rc = cli_errorf("theory", "out of memory");
        else if (nep_svg_lines(path, title, "standard deviations", "density", s3, 3, &err)) rc = cli_error("theory", &err);
        free(path);
    }
    return rc;
}

/* nepenthe theory --ckpt: the model against a trained network. */
static int theory_measured(const char *ckpt, const cli_data_opts *data, int64_t max_batches,
                           const double *t, int n, double eps, bool json, const char *svg) {
    nep_graph g;
    nep_model_spec spec;
    nep_normalize norm;
    nep_safetensors meta = {0};
    nep_theory_curves c = {0};
    cli_data d = {0};
    nep_err err;
    if (nep_checkpoint_load(ckpt, &g, &spec, &norm, &meta, &err) != NEP_OK) return cli_error("theory", &err);
    int rc = 1;
    double *tc = malloc(sizeof(double) * (size_t)n), *th = malloc(sizeof(double) * (size_t)n);
    if (!tc || !th || cli_load_splits("theory", ckpt, &meta, &spec, &norm, data, &d)) goto done;
    if (!json) fprintf(stderr, "theory: %d thresholds x %lld batches of %s\n", n, (long long)max_batches, data->name);
    if (nep_theory_measure(&g, &d.train, &norm, t, n, 256, max_batches, &c, NULL, &err) != NEP_OK) {
        cli_error("theory", &err);
        goto done;
    }
    for (int k = 0; k < n; k++) tc[k] = nep_theory_pruned(t[k]), th[k] = nep_theory_entropy(t[k], eps);
    cJSON *root = cJSON_CreateObject(), *layers = cJSON_AddArrayToObject(root, "layers");
    cJSON_AddNumberToObject(root, "eps", eps);
    cJSON_AddItemToObject(root, "t", cJSON_CreateDoubleArray(t, n));
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddItemToObject(model, "pruned", cJSON_CreateDoubleArray(tc, n));
    cJSON_AddItemToObject(model, "entropy", cJSON_CreateDoubleArray(th, n));
    for (int i = 0; i < c.n_layers; i++) {
        const nep_layer_curve *l = &c.layers[i];
        const char *name = g.nodes[l->node].name;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddNumberToObject(o, "sigma", l->sigma);
        cJSON_AddNumberToObject(o, "z_mean", l->z_mean);
        cJSON_AddNumberToObject(o, "z_std", l->z_std);
        cJSON_AddNumberToObject(o, "weight_gauss_tv", l->weight_tv);
        cJSON_AddNumberToObject(o, "z_gauss_tv", l->z_tv);
        cJSON_AddItemToObject(o, "weight_hist", cJSON_CreateDoubleArray(l->weight_hist, NEP_HIST_BINS));
        cJSON_AddItemToObject(o, "z_hist", cJSON_CreateDoubleArray(l->z_hist, NEP_HIST_BINS));
        cJSON_AddItemToObject(o, "pruned", cJSON_CreateDoubleArray(l->pruned, n));
        cJSON_AddItemToObject(o, "entropy", cJSON_CreateDoubleArray(l->entropy, n));
        cJSON_AddItemToArray(layers, o);
        if (json) continue;
        printf("%s: weight sigma %.4g; pre-activation mean %.4g, std %.4g; distance from N(0, 1) "
               "(total variation): weights %.3f, pre-activations %.3f\n", name, l->sigma, l->z_mean,
               l->z_std, l->weight_tv, l->z_tv);
        printf("%8s %12s %12s %12s %12s\n", "t", "C(t) model", "pruned", "H(t) model", "H_l");
        for (int k = 0; k < n; k++)
            printf("%8.4g %12.6f %12.6f %12.6f %12.6f\n", t[k], tc[k], l->pruned[k], th[k], l->entropy[k]);
    }
    if (json) {
        char *txt = cJSON_PrintUnformatted(root);
        printf("%s\n", txt);
        cJSON_free(txt);
    }
    cJSON_Delete(root);
    rc = svg ? measured_figures(svg, &g, &c, tc, th) : 0;
    nep_theory_curves_free(&c);
done:
    cli_data_free(&d);
    free(tc), free(th);
    nep_graph_free(&g);
    nep_st_free(&meta);
    return rc;
}

int cmd_theory(int argc, char **argv) {
    const char *range = NULL, *svg = NULL, *ckpt = NULL;
    cli_data_opts data = CLI_DATA_DEFAULT;
    double eps = 0.1;
    int64_t max_batches = 8;
    bool json = false, csv = false, check = false;
    cli_opt opts[] = {
        {"t", OPT_STR, &range, "pruning thresholds from:to:step (default 0:2.5:0.1; with --ckpt 0:2:0.25)"},
        {"ckpt", OPT_STR, &ckpt, "a trained checkpoint: measure each layer's curves beside the model's"},
        DATA_OPTS(&data),
        {"max-batches", OPT_INT, &max_batches, "with --ckpt: count states over this many training batches of 256 (0: all)"},
        {"eps", OPT_REAL, &eps, "ON means Z > eps"},
        {"check", OPT_FLAG, &check, "add P[Z > eps] by numerical integration of f_Z, and the difference"},
        {"json", OPT_FLAG, &json, "one JSON object: {\"eps\", \"rows\": [{\"t\", \"pruned\", \"kept\", \"p_on\", \"entropy\"}]}"},
        {"csv", OPT_FLAG, &csv, "CSV with a header line"},
        {"svg", OPT_STR, &svg, "write fig_weights.svg, fig_density.svg, fig_entropy.svg (the paper's Fig. 2) into DIR"},
        OPT_END,
    };
    int rc = cli_parse("theory", "[--t from:to:step] [--eps E] [--json|--csv] [--svg DIR] [--ckpt F --data D]",
                       opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!range) range = ckpt ? "0:2:0.25" : "0:2.5:0.1";
    if (max_batches < 0) return cli_errorf("theory", "--max-batches must be non-negative") + 1;
    if (ckpt && (csv || check)) return cli_errorf("theory", "--csv and --check go without --ckpt") + 1;
    double from, to, step;
    if (parse_range(range, &from, &to, &step))
        return cli_errorf("theory", "--t '%s': want from:to:step with 0 <= from <= to, step > 0 "
                          "(at most 100000 steps)", range) + 1;
    if (!(eps >= 0) || !isfinite(eps)) return cli_errorf("theory", "--eps must be a finite number >= 0") + 1;
    if (json && csv) return cli_errorf("theory", "--json and --csv exclude each other") + 1;
    if (svg && cli_mkdirs(svg)) return cli_errorf("theory", "--svg %s: cannot create the directory", svg) + 1;
    const int n = (int)floor((to - from) / step + 1e-9) + 1;
    double *t = malloc(sizeof(double) * (size_t)n), *h = malloc(sizeof(double) * (size_t)n);
    if (!t || !h) {
        free(t), free(h);
        return cli_errorf("theory", "out of memory");
    }
    for (int i = 0; i < n; i++) t[i] = from + i * step;
    if (ckpt) {
        rc = theory_measured(ckpt, &data, max_batches, t, n, eps, json, svg);
        free(t), free(h);
        return rc;
    }
    cJSON *root = cJSON_CreateObject(), *rows = cJSON_AddArrayToObject(root, "rows");
    cJSON_AddNumberToObject(root, "eps", eps);
    if (csv) printf("t,pruned,kept,p_on,entropy%s\n", check ? ",p_on_quad,abs_diff" : "");
    if (!csv && !json)
        printf("%8s %10s %10s %14s %10s%s\n", "t", "pruned", "kept", "P[Z > eps]", "H (bits)",
               check ? "   P by quadrature   |diff|" : "");
    double worst = 0;
    for (int i = 0; i < n; i++) {
        const double p = nep_theory_p_on(t[i], eps);
        h[i] = nep_entropy_bits(p);
        double q = NAN, abserr;
        nep_err err;
        if (check && nep_theory_p_on_quad(t[i], eps, &q, &abserr, &err) != NEP_OK) {
            rc = cli_error("theory", &err);
            break;
        }
        if (check && !(fabs(q - p) <= worst)) worst = fabs(q - p);
        if (json) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddNumberToObject(r, "t", t[i]);
            cJSON_AddNumberToObject(r, "pruned", nep_theory_pruned(t[i]));
            cJSON_AddNumberToObject(r, "kept", nep_theory_kept(t[i]));
            cJSON_AddNumberToObject(r, "p_on", p);
            cJSON_AddNumberToObject(r, "entropy", h[i]);
            if (check) cJSON_AddNumberToObject(r, "p_on_quad", q);
            cJSON_AddItemToArray(rows, r);
        } else if (csv) {
            printf("%.6g,%.17g,%.17g,%.17g,%.17g", t[i], nep_theory_pruned(t[i]), nep_theory_kept(t[i]), p, h[i]);
            if (check) printf(",%.17g,%.3g", q, fabs(q - p));
            printf("\n");
        } else {
            printf("%8.4g %10.6f %10.6f %14.10f %10.6f", t[i], nep_theory_pruned(t[i]), nep_theory_kept(t[i]), p, h[i]);
            if (check) printf("   %17.14f %8.1e", q, fabs(q - p));
            printf("\n");
        }
    }
    if (!rc && json) {
        if (check) cJSON_AddNumberToObject(root, "max_abs_diff_quad", worst);
        char *txt = cJSON_PrintUnformatted(root);
        printf("%s\n", txt);
        cJSON_free(txt);
    } else if (!rc && check && !csv) {
        printf("closed form against quadrature: max |difference| %.2e over %d thresholds\n", worst, n);
    }
    if (!rc && svg) rc = write_figures(svg, t, h, n, eps);
    cJSON_Delete(root);
    free(t), free(h);
    return rc;
}
