/* nepenthe compare: several prune runs (e.g. NEPENTHE, IMP, EGP from one dense model) in
 * one figure of test accuracy against layers removed, and one table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/report.h"

enum { MAX_RUNS = 16, MAX_ITERS = 256 };

typedef struct run_curve {
    char label[128];
    int n;
    double removed[MAX_ITERS], top1[MAX_ITERS], sparsity[MAX_ITERS];
} run_curve;

/* The label of a run: its method from summary.json if there is one, else its directory. */
static int read_run(const char *dir, run_curve *c) {
    char path[4096];
    snprintf(path, sizeof path, "%s/iterations.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) return cli_errorf("compare", "%s: cannot open (is %s a prune run directory?)", path, dir);
    snprintf(c->label, sizeof c->label, "%s", dir);
    char *line = NULL;
    size_t cap = 0;
    c->n = 0;
    while (c->n < MAX_ITERS && getline(&line, &cap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *rem = cJSON_GetObjectItemCaseSensitive(j, "removed");
        const cJSON *acc = cJSON_GetObjectItemCaseSensitive(j, "test_top1");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(j, "sparsity");
        if (cJSON_IsNumber(rem) && cJSON_IsNumber(acc) && cJSON_IsNumber(sp)) {
            c->removed[c->n] = rem->valuedouble;
            c->top1[c->n] = acc->valuedouble;
            c->sparsity[c->n] = sp->valuedouble;
            c->n++;
        }
        cJSON_Delete(j);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    if ((f = fopen(path, "r"))) {
        ssize_t n = getline(&line, &cap, f);
        fclose(f);
        cJSON *j = n > 0 ? cJSON_Parse(line) : NULL;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "method");
        if (cJSON_IsString(m))
            snprintf(c->label, sizeof c->label, "%s", m->valuestring);
        cJSON_Delete(j);
    }
    free(line);
    return c->n ? 0 : cli_errorf("compare", "%s: no iterations logged", dir);
}

int cmd_compare(int argc, char **argv) {
    const char *runs = NULL, *labels = NULL, *out = NULL, *title = "test top-1 against layers removed";
    cli_opt opts[] = {
        {"runs", OPT_STR, &runs, "prune run directories, comma-separated (required)"},
        {"labels", OPT_STR, &labels, "a label per run, comma-separated (default: each run's method, else its directory)"},
        {"out", OPT_STR, &out, "SVG file to write (required)"},
        {"title", OPT_STR, &title, "figure title"},
        OPT_END,
    };
    int rc = cli_parse("compare", "--runs DIR1,DIR2,... --out FIG.svg", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!runs || !out) return cli_errorf("compare", "--runs and --out are required") + 1;
    run_curve *c = calloc(MAX_RUNS, sizeof *c);
    nep_svg_series s[MAX_RUNS];
    int n = 0;
    char *list = strdup(runs), *save = NULL;
    rc = 0;
    for (char *dir = strtok_r(list, ",", &save); dir && !rc; dir = strtok_r(NULL, ",", &save)) {
        if (n == MAX_RUNS) rc = cli_errorf("compare", "--runs: at most %d runs", MAX_RUNS);
        else if (!(rc = read_run(dir, &c[n])))
            s[n] = (nep_svg_series){.label = c[n].label, .n = c[n].n, .x = c[n].removed, .y = c[n].top1}, n++;
    }
    char *names = labels ? strdup(labels) : NULL;
    int k = 0;
    for (char *l = names ? strtok_r(names, ",", &save) : NULL; l && !rc; l = strtok_r(NULL, ",", &save), k++)
        if (k < n) snprintf(c[k].label, sizeof c[k].label, "%s", l);
    if (!rc && labels && k != n)
        rc = cli_errorf("compare", "--labels: %d label(s) for %d run(s)", k, n);
    free(names);
    nep_err err;
    if (!rc && nep_svg_lines(out, title, "layers removed (H_l = 0)", "test top-1 (%)", s, n, &err) != NEP_OK)
        rc = cli_error("compare", &err);
    if (!rc) {
        /* vs dense: the top-1 points gained (+) or lost (-) against the run's iteration 0 */
        printf("%-28s %5s %9s %9s %9s %9s\n", "run", "iter", "removed", "top-1", "vs dense", "sparsity");
        for (int r = 0; r < n; r++)
            for (int i = 0; i < c[r].n; i++)
                printf("%-28s %5d %9.0f %9.2f %+9.2f %8.2f%%\n", c[r].label, i, c[r].removed[i],
                       c[r].top1[i], c[r].top1[i] - c[r].top1[0], c[r].sparsity[i]);
        printf("figure: %s\n", out);
    }
    free(list);
    free(c);
    return rc;
}
