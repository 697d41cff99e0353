/* nepenthe prune: the iterative loop of SPEC section 4 (nep_prune_run, src/prune/loop.c)
 * with its files around it: each iteration's checkpoint (iter_K.safetensors; for a text
 * classifier folder, a folder iter_K/ with its masks in masks.safetensors) and line of
 * iterations.jsonl, progress.json as the commit point that --resume continues from, the
 * table, the figures and summary.json. A killed run resumes after its last committed
 * iteration and ends the same. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/checkpoint.h"
#include "nepenthe/file.h"
#include "nepenthe/prune_loop.h"
#include "nepenthe/report.h"

typedef struct prune_opts {
    const char *ckpt, *method, *criterion, *out, *backend, *task;
    cli_data_opts data;
    double zeta, delta, ssl_threshold;
    int64_t max_iter, retrain_epochs, seed, entropy_batches, wanda_batches, hrank_batches, sharpness_batches, threads, max_length, max_train_rows;
    bool no_budget, no_dont_care, no_neuron_selection, resume, json;
    train_flags t;      /* retraining */
} prune_opts;

typedef struct prune_run {
    prune_opts o;
    nep_prune_cfg cfg;
    nep_optim_cfg optim;
    nep_exec_opts exec;
    nep_graph g;
    nep_model_spec spec;
    nep_normalize norm;
    nep_safetensors meta;
    cli_data d;
    nep_entropy e;
    /* a text classifier folder (--ckpt a directory): its config, tokenizer and splits */
    bool text;
    nep_hf_config hf;
    nep_tokenizer *tok;
    nep_text_dataset td[3];
    nep_text_tensors tt[3];     /* train, dev, test */
    char *options;          /* what must match for --resume */
    char *log, *progress_path;
    FILE *human;
    cli_progress prog;
    bool reported;          /* a hook printed the error already */
    const nep_comm *comm;   /* data-parallel ranks, or NULL */
    bool lead;              /* rank 0: prints, writes files */
} prune_run;

static char *path_in(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Writes a small text file atomically; prints the error. */
static int write_text(const char *path, const char *text) {
    nep_err err;
    return nep_write_atomic_bytes(path, text, strlen(text), &err) == NEP_OK ? 0 : cli_error("prune", &err);
}

static char *options_json(const prune_opts *o, const nep_prune_cfg *c, const nep_optim_cfg *optim, bool text) {
    const train_flags *t = &o->t;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "ckpt", o->ckpt);
    cJSON_AddStringToObject(j, "method", o->method);
    cJSON_AddStringToObject(j, "criterion", o->criterion);
    cJSON_AddNumberToObject(j, "zeta", o->zeta);
    cJSON_AddNumberToObject(j, "delta", o->delta);
    cJSON_AddBoolToObject(j, "entropy_budget", c->entropy_budget);
    cJSON_AddBoolToObject(j, "dont_care", c->dont_care);
    cJSON_AddBoolToObject(j, "neuron_selection", c->neuron_selection);
    if (c->ssl_threshold > 0) cJSON_AddNumberToObject(j, "ssl_threshold", c->ssl_threshold);
    if (c->method == NEP_METHOD_HRANK) cJSON_AddNumberToObject(j, "hrank_batches", (double)o->hrank_batches);
    if (o->sharpness_batches > 0) cJSON_AddNumberToObject(j, "sharpness_batches", (double)o->sharpness_batches);
    cJSON_AddNumberToObject(j, "retrain_epochs", (double)o->retrain_epochs);
    cJSON_AddNumberToObject(j, "batch", (double)t->batch);
    cJSON_AddStringToObject(j, "optimizer", t->optimizer);
    cJSON_AddNumberToObject(j, "lr", t->lr);
    cJSON_AddNumberToObject(j, "momentum", t->momentum);
    cJSON_AddNumberToObject(j, "wd", t->wd);
    cJSON_AddBoolToObject(j, "nesterov", t->nesterov);
    cJSON_AddStringToObject(j, "milestones", t->milestones);
    cJSON_AddNumberToObject(j, "gamma", t->gamma);
    cJSON_AddBoolToObject(j, "augment", t->augment);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddNumberToObject(j, "entropy_batches", (double)o->entropy_batches);
    cJSON_AddNumberToObject(j, "wanda_batches", (double)o->wanda_batches);
    if (text) { /* a text model's data (the keys absent for images, as before) */
        cJSON_AddStringToObject(j, "task", o->task);
        cJSON_AddStringToObject(j, "data_dir", o->data.dir);
        cJSON_AddNumberToObject(j, "max_length", (double)o->max_length);
        cJSON_AddNumberToObject(j, "max_train_rows", (double)o->max_train_rows);
    }
    cli_recipe_json(optim, j);
    if (t->sync_bn) cJSON_AddBoolToObject(j, "sync_bn", true);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The paper's table row: six lowest H_l, top-1, Rem./|L|, time. */
static void print_row(const prune_run *r, const nep_prune_row *row) {
    const double *H = row->entropy;
    int n = r->e.n_layers;
    double *sorted = malloc(sizeof(double) * (size_t)(n + 1));
    memcpy(sorted, H, sizeof(double) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(double), cmp_double);
    fprintf(r->human, "%4lld |", (long long)row->iter);
    for (int i = 0; i < 6; i++) {
        if (i < n) fprintf(r->human, " %6.3f", sorted[i]);
        else fprintf(r->human, " %6s", "-");
    }
    fprintf(r->human, " | %6.2f %6.2f | %3d/%-3d | %6.2f%% | %7.1fs\n", row->val_top1, row->test_top1,
            row->removed, row->layers, row->sparsity, row->seconds);
    if (!isnan(row->sharpness)) fprintf(r->human, "     | sharpness (largest Hessian eigenvalue) %.4g\n", row->sharpness);
    fflush(r->human);
    free(sorted);
}

static void print_header(FILE *f) {
    fprintf(f, "iter |  six lowest layer entropies H_l (bits)          |    val   test | Rem./|L| | sparsity |   time\n");
}

/* One JSON line of iterations.jsonl. */
static char *row_json(const prune_run *r, const nep_graph *g, const nep_prune_row *row) {
    const double *H = row->entropy;
    const int64_t *pruned = row->pruned;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "iter", (double)row->iter);
    cJSON_AddNumberToObject(j, "val_top1", row->val_top1);
    cJSON_AddNumberToObject(j, "test_top1", row->test_top1);
    cJSON_AddNumberToObject(j, "removed", row->removed);
    cJSON_AddNumberToObject(j, "layers", row->layers);
    cJSON_AddNumberToObject(j, "sparsity", row->sparsity);
    cJSON_AddNumberToObject(j, "budget", (double)row->budget);
    if (!isnan(row->sharpness)) cJSON_AddNumberToObject(j, "sharpness", row->sharpness);
    cJSON_AddNumberToObject(j, "seconds", row->seconds);
    cJSON *names = cJSON_AddArrayToObject(j, "names"), *ent = cJSON_AddArrayToObject(j, "entropy");
    cJSON *pr = cJSON_AddArrayToObject(j, "pruned"), *nz = cJSON_AddArrayToObject(j, "nonzero");
    cJSON *st = cJSON_AddArrayToObject(j, "states");
    for (int l = 0; l < r->e.n_layers; l++) {
        const nep_layer_states *ls = &r->e.layers[l];
        cJSON_AddItemToArray(names, cJSON_CreateString(g->nodes[ls->node].name));
        cJSON_AddItemToArray(ent, cJSON_CreateNumber(H[l]));
        cJSON_AddItemToArray(pr, cJSON_CreateNumber(pruned ? (double)pruned[l] : 0));
        cJSON_AddItemToArray(nz, cJSON_CreateNumber((double)nep_layer_nonzero(g, ls)));
        cJSON_AddItemToArray(st, cli_layer_json(g, ls, H[l], false));
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}


/* Whether a line of iterations.jsonl has every field draw_figures reads, each a number,
 * the counts integers in [0, 2^53] (so that converting them is defined). A line that
 * a killed run, a full disk or a hand edit damaged is skipped, not dereferenced. */
static bool row_ok(const cJSON *j, int n) {
    static const char *const row[] = {"iter", "removed", "test_top1"};
    static const char *const counts[] = {"always_on", "always_off", "always_off_plus", "mixed"};
    const cJSON *ent = cJSON_GetObjectItemCaseSensitive(j, "entropy");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "states");
    if (!cJSON_IsArray(ent) || !cJSON_IsArray(st) || cJSON_GetArraySize(ent) != n ||
        cJSON_GetArraySize(st) != n)
        return false;
    for (int k = 0; k < 3; k++)
        if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, row[k]))) return false;
    for (int l = 0; l < n; l++) {
        if (!cJSON_IsNumber(cJSON_GetArrayItem(ent, l))) return false;
        const cJSON *s = cJSON_GetArrayItem(st, l);
        for (int k = 0; k < 4; k++) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(s, counts[k]);
            if (!cJSON_IsNumber(c) || !(c->valuedouble >= 0 && c->valuedouble <= 9007199254740992.0))
                return false;
        }
    }
    return true;
}

/* Figures from iterations.jsonl (so a resumed run draws its whole history): layer
 * entropy per iteration, accuracy against removed layers, and the last row's states.
 * Returns 0, or 1 after printing why: a figure that cannot be written (a full disk)
 * stops the run before summary.json, so that the error names the figure and --resume
 * draws them all again. */
static int draw_figures(const prune_run *r, const char *log) {
    FILE *f = fopen(log, "r");
    if (!f) return cli_errorf("prune", "%s: cannot read: %s", log, strerror(errno));
    enum { MAXI = 256 };
    const int n = r->e.n_layers;
    double *H = calloc((size_t)(MAXI * n + 1), sizeof *H), it[MAXI], rem[MAXI], acc[MAXI];
    int64_t *on = calloc((size_t)n + 1, sizeof *on), *off = calloc((size_t)n + 1, sizeof *off);
    int64_t *offp = calloc((size_t)n + 1, sizeof *offp), *mixed = calloc((size_t)n + 1, sizeof *mixed);
    int rows = 0;
    char *line = NULL;
    size_t cap = 0;
    while (H && rows < MAXI && getline(&line, &cap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *ent = cJSON_GetObjectItemCaseSensitive(j, "entropy");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "states");
        if (!row_ok(j, n)) {
            cJSON_Delete(j);
            continue;
        }
        it[rows] = cJSON_GetObjectItemCaseSensitive(j, "iter")->valuedouble;
        rem[rows] = cJSON_GetObjectItemCaseSensitive(j, "removed")->valuedouble;
        acc[rows] = cJSON_GetObjectItemCaseSensitive(j, "test_top1")->valuedouble;
        for (int l = 0; l < n; l++) {
            H[l * MAXI + rows] = cJSON_GetArrayItem(ent, l)->valuedouble;
            const cJSON *s = cJSON_GetArrayItem(st, l);
            on[l] = (int64_t)cJSON_GetObjectItemCaseSensitive(s, "always_on")->valuedouble;
            off[l] = (int64_t)cJSON_GetObjectItemCaseSensitive(s, "always_off")->valuedouble;
            offp[l] = (int64_t)cJSON_GetObjectItemCaseSensitive(s, "always_off_plus")->valuedouble;
            mixed[l] = (int64_t)cJSON_GetObjectItemCaseSensitive(s, "mixed")->valuedouble;
        }
        rows++;
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    nep_svg_series *series = calloc((size_t)n + 1, sizeof *series);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    bool three = false;
    for (int l = 0; series && names && l < n; l++) {
        names[l] = r->g.nodes[r->e.layers[l].node].name;
        series[l] = (nep_svg_series){.label = names[l], .n = rows, .x = it, .y = H + l * MAXI};
        three |= r->e.layers[l].states == 3;
    }
    char title[160];
    nep_err err;
    int rc = 0;
    snprintf(title, sizeof title, "%s: layer entropy per iteration (zeta %g)", r->o.method, r->o.zeta);
    if (!H || !on || !off || !offp || !mixed || !series || !names) {
        rc = cli_errorf("prune", "out of memory drawing the figures of %s", log);
    } else if (rows) {
        char *fe = path_in(r->o.out, "fig_entropy.svg"), *fa = path_in(r->o.out, "fig_accuracy.svg");
        char *fs = path_in(r->o.out, "fig_states.svg");
        nep_status s = nep_svg_lines(fe, title, "iteration", "H_l (bits)", series, n, &err);
        if (s == NEP_OK) {
            nep_svg_series a = {.label = r->o.method, .n = rows, .x = rem, .y = acc};
            snprintf(title, sizeof title, "%s: test top-1 against layers removed (H_l = 0)", r->o.method);
            s = nep_svg_lines(fa, title, "layers removed", "test top-1 (%)", &a, 1, &err);
        }
        if (s == NEP_OK) {
            snprintf(title, sizeof title, "%s: neuron states after iteration %g", r->o.method, it[rows - 1]);
            s = nep_svg_state_bars(fs, title, n, names, off, on, three ? offp : NULL, mixed, &err);
        }
        free(fe), free(fa), free(fs);
        if (s != NEP_OK) rc = cli_error("prune", &err);
    }
    free(H), free(on), free(off), free(offp), free(mixed), free(series), free(names);
    return rc;
}

static int parse_opts(prune_run *r, int argc, char **argv) {
    prune_opts *o = &r->o;
    *o = (prune_opts){.method = "nepenthe", .criterion = "magnitude", .data = CLI_DATA_DEFAULT,
                      .backend = "cpu", .task = "fortunes", .max_length = 128,
                      .zeta = 0.5, .delta = 0.99, .max_iter = 10, .retrain_epochs = 1,
                      .wanda_batches = 16, .hrank_batches = 4, .ssl_threshold = NEP_SSL_THRESHOLD};
    train_flags_default(&o->t);
    cli_opt opts[CLI_MAX_OPTS];
    int n = 0;
    opts[n++] = (cli_opt){"ckpt", OPT_STR, &o->ckpt, "dense checkpoint, or a Hugging Face text classifier "
                                                     "folder (nepenthe finetune's OUT/model) (required)"};
    opts[n++] = (cli_opt){"method", OPT_STR, &o->method, "nepenthe, imp, egp; the structural baselines smallest-weights, smallest-grads (one more layer made the identity per iteration); ssl (retraining with --group-lasso, no weight pruning; layers below --ssl-threshold removed) or nepenthe-ssl (both, paper Fig. 4); hrank (conv filters with the lowest feature-map rank, --zeta of each layer per iteration: width, not depth)"};
    opts[n++] = (cli_opt){"criterion", OPT_STR, &o->criterion, "magnitude or wanda"};
    opts[n++] = (cli_opt){"zeta", OPT_REAL, &o->zeta, "pruning rate per iteration"};
    opts[n++] = (cli_opt){"delta", OPT_REAL, &o->delta, "stop when val top-1 < delta x dense"};
    opts[n++] = (cli_opt){"max-iter", OPT_INT, &o->max_iter, "at most this many iterations"};
    opts[n++] = (cli_opt){"retrain-epochs", OPT_INT, &o->retrain_epochs, "retraining epochs per iteration (0: prune only)"};
    opts[n++] = (cli_opt){"entropy-batches", OPT_INT, &o->entropy_batches, "entropy over at most this many batches of 256 images or 32 texts (0: the whole training split)"};
    opts[n++] = (cli_opt){"wanda-batches", OPT_INT, &o->wanda_batches, "Wanda calibration batches of 256 images or 32 texts"};
    opts[n++] = (cli_opt){"no-entropy-budget", OPT_FLAG, &o->no_budget, "ablation: one global magnitude threshold"};
    opts[n++] = (cli_opt){"no-dont-care", OPT_FLAG, &o->no_dont_care, "ablation: count z == 0 as OFF"};
    opts[n++] = (cli_opt){"no-neuron-selection", OPT_FLAG, &o->no_neuron_selection, "ablation: prune zero-entropy neurons too"};
    opts[n++] = (cli_opt){"hrank-batches", OPT_INT, &o->hrank_batches, "hrank: average the feature maps' ranks over this many batches of 256 training images (0: all)"};
    opts[n++] = (cli_opt){"sharpness-batches", OPT_INT, &o->sharpness_batches, "after every iteration, the sharpness (largest Hessian eigenvalue of the training loss, as `nepenthe sharpness`) over this many batches of 256 training images (0: none)"};
    opts[n++] = (cli_opt){"ssl-threshold", OPT_REAL, &o->ssl_threshold, "ssl, nepenthe-ssl: a layer whose weight RMS ||W_l|| / sqrt(|W_l|) is below this is zeroed whole (removed)"};
    train_flags_table(&o->t, opts, &n);
    opts[n++] = (cli_opt){"seed", OPT_INT, &o->seed, "seed of retraining (shuffling, dropout)"};
    const cli_opt data_opts[] = {DATA_OPTS(&o->data)};
    for (int i = 0; i < DATA_OPTS_COUNT; i++) opts[n++] = data_opts[i];
    opts[n++] = (cli_opt){"task", OPT_STR, &o->task, "text models: the task of --data-dir's TSV files: " NEP_GLUE_TASKS};
    opts[n++] = (cli_opt){"max-length", OPT_INT, &o->max_length, "text models: tokens per sequence"};
    opts[n++] = (cli_opt){"max-train-rows", OPT_INT, &o->max_train_rows, "text models: the first N training rows only (0: all)"};
    opts[n++] = (cli_opt)THREADS_OPT(&o->threads);
    opts[n++] = (cli_opt)BACKEND_OPT(&o->backend);
    opts[n++] = (cli_opt){"out", OPT_STR, &o->out, "run directory (required)"};
    opts[n++] = (cli_opt){"resume", OPT_FLAG, &o->resume, "continue the run in --out after its last iteration"};
    opts[n++] = (cli_opt){"json", OPT_FLAG, &o->json, "end with one JSON line on stdout"};
    opts[n++] = (cli_opt)OPT_END;
    int rc = cli_parse("prune", "--ckpt DENSE --out DIR [options]", opts, argc, argv);
    if (rc) return rc == 1 ? -1 : 2;
    if (!o->ckpt || !o->out) return cli_errorf("prune", "--ckpt and --out are required") + 1;
    int m = nep_method_from_name(o->method);
    if (m < 0)
        return cli_errorf("prune", "--method: unknown '%s' (nepenthe, imp, egp, smallest-weights, "
                          "smallest-grads, ssl, nepenthe-ssl, hrank)", o->method) + 1;
    bool wanda = strcmp(o->criterion, "wanda") == 0;
    if (!wanda && strcmp(o->criterion, "magnitude"))
        return cli_errorf("prune", "--criterion: unknown '%s' (magnitude, wanda)", o->criterion) + 1;
    if (!(o->zeta > 0 && o->zeta <= 1)) return cli_errorf("prune", "--zeta: must be in (0, 1]") + 1;
    if (!(o->delta >= 0 && o->delta <= 1)) return cli_errorf("prune", "--delta: must be in [0, 1]") + 1;
    if (o->max_iter < 1 || o->retrain_epochs < 0 || o->entropy_batches < 0 || o->wanda_batches < 1 ||
        o->max_length < 2 || o->max_train_rows < 0)
        return cli_errorf("prune", "--max-iter, --wanda-batches must be positive; --retrain-epochs, "
                          "--entropy-batches, --max-train-rows non-negative; --max-length at least 2") + 1;
    if (train_flags_cfg("prune", &o->t, o->retrain_epochs, "retrain-epochs", &r->optim) ||
        cli_exec_opts("prune", o->backend, &r->exec))
        return 2;
    if (nep_method_ssl((nep_method)m) && !(r->optim.group_lasso > 0))
        return cli_errorf("prune", "--method %s retrains with the group-lasso penalty: give --group-lasso "
                          "LAMBDA (the penalty is about LAMBDA x the weights x their RMS: 1e-5 puts it near the loss for a 0.3M-weight ResNet-20)", o->method) + 1;
    if (!(o->ssl_threshold >= 0)) return cli_errorf("prune", "--ssl-threshold: must be non-negative") + 1;
    if (o->hrank_batches < 0 || o->sharpness_batches < 0)
        return cli_errorf("prune", "--hrank-batches and --sharpness-batches must be non-negative") + 1;
    if (m == NEP_METHOD_HRANK && !(o->zeta < 1))
        return cli_errorf("prune", "--method hrank: --zeta is the fraction of each layer's filters pruned per "
                          "iteration and must be below 1 (a layer keeps a filter)") + 1;
    r->cfg = nep_prune_cfg_for((nep_method)m, wanda ? NEP_CRIT_WANDA : NEP_CRIT_MAGNITUDE, o->zeta);
    if (nep_method_ssl((nep_method)m)) r->cfg.ssl_threshold = o->ssl_threshold;
    if (o->no_budget) r->cfg.entropy_budget = false;
    if (o->no_dont_care) r->cfg.dont_care = false;
    if (o->no_neuron_selection) r->cfg.neuron_selection = false;
    return 0;
}

/* Appends one line to iterations.jsonl; says why when it cannot. */
static int append_log(const char *log, const char *line) {
    if (!cli_append_line(log, line)) return 0;
    return cli_errorf("prune", "%s: cannot append: %s", log, strerror(errno));
}

/* progress.json is the commit point of an iteration: written after its checkpoint and
 * its log line. */
static int save_progress(const prune_run *r, const char *path, const nep_prune_progress *p) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "iter", (double)p->iter);
    cJSON_AddNumberToObject(j, "selected", (double)p->selected);
    cJSON_AddNumberToObject(j, "dense_val_top1", p->dense_val);
    cJSON_AddNumberToObject(j, "dense_test_top1", p->dense_test);
    cJSON_AddBoolToObject(j, "stopped", p->stopped);
    cJSON_AddStringToObject(j, "options", r->options);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    int rc = write_text(path, s);
    free(s);
    return rc;
}

/* An iteration number in progress.json: an integer in [0, 2^31) (no run has more). */
static bool iter_number(const cJSON *v) { return cli_json_integer(v, 0, 2147483648.0); }

static int load_progress(const prune_run *r, const char *path, nep_prune_progress *p) {
    FILE *f = fopen(path, "r");
    char buf[8192];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, "iter");
    const cJSON *sel = cJSON_GetObjectItemCaseSensitive(j, "selected");
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(j, "dense_val_top1");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dense_test_top1");
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(j, "options");
    int rc = 0;
    if (!iter_number(it) || !iter_number(sel) || sel->valuedouble > it->valuedouble ||
        !cJSON_IsNumber(dv) || !cJSON_IsNumber(dt) || !cJSON_IsString(opt))
        rc = cli_errorf("prune", "%s: not a prune progress file", path);
    else if (strcmp(opt->valuestring, r->options) != 0)
        rc = cli_errorf("prune", "--resume: %s was written with other options:\n  stored:  %s\n  current: %s",
                        path, opt->valuestring, r->options);
    else
        *p = (nep_prune_progress){(int64_t)it->valuedouble, (int64_t)sel->valuedouble, dv->valuedouble,
                        dt->valuedouble, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stopped"))};
    cJSON_Delete(j);
    return rc;
}

/* Iteration k's checkpoint: a file, or a text model's folder. */
static char *iter_path(const prune_run *r, int64_t k) {
    char name[64];
    snprintf(name, sizeof name, r->text ? "iter_%lld" : "iter_%lld.safetensors", (long long)k);
    return path_in(r->o.out, name);
}

static int save_iter(prune_run *r, const nep_graph *g, int64_t k) {
    char iter[32], *path = iter_path(r, k);
    if (r->text) {
        const int rc = cli_text_write_folder("prune", path, &r->hf, g, r->o.ckpt);
        free(path);
        return rc;
    }
    snprintf(iter, sizeof iter, "%lld", (long long)k);
    const char *data = nep_st_meta_get(&r->meta, "data");
    nep_st_meta extra[] = {{"iteration", iter}, {"prune_options", r->options}, {"data", (char *)(data ? data : "{}")}};
    nep_err err;
    int rc = nep_checkpoint_save(path, g, &r->spec, &r->norm, NULL, extra, 3, &err) != NEP_OK
                 ? cli_error("prune", &err) : 0;
    free(path);
    return rc;
}

/* A plain MLP has no path around a layer whose neurons are all OFF (or that has lost
 * every weight): the network then outputs a constant. Say which layers did it. */
static void warn_if_chance(const prune_run *r, const nep_graph *g, const nep_prune_row *row) {
    const double *H = row->entropy;
    if (row->test_top1 > 150.0 / (r->text ? r->hf.num_labels : r->spec.classes)) return;
    fprintf(r->human, "  accuracy is at chance (%.2f%%):", row->test_top1);
    for (int l = 0; l < r->e.n_layers; l++) {
        const nep_layer_states *ls = &r->e.layers[l];
        if (H[l] > 0) continue;
        int64_t off = nep_layer_count_always(ls, NEP_STATE_OFF);
        fprintf(r->human, " %s has %lld/%lld neurons always OFF%s;", g->nodes[ls->node].name,
                (long long)off, (long long)ls->neurons,
                nep_layer_weight(g, ls) && nep_layer_nonzero(g, ls) == 0 ? " and no weight left" : "");
    }
    fprintf(r->human, " without a skip connection there is no path around such a layer\n");
}

/* ---- the loop's hooks: files, table, messages -------------------------------------- */

/* A hook's error already printed: the loop passes it on without a second message. */
static nep_status reported(prune_run *r, nep_err *err) {
    r->reported = true;
    return nep_fail(err, NEP_ERR_IO, "(reported)");
}

static nep_status on_iteration(void *ctx, const nep_graph *g, const nep_entropy *e,
                               const nep_prune_row *row, nep_err *err) {
    prune_run *r = ctx;
    print_row(r, row);
    if (row->iter > 0) warn_if_chance(r, g, row);
    char *line = row_json(r, g, row);
    const int bad = r->lead && ((row->iter > 0 && save_iter(r, g, row->iter)) || append_log(r->log, line));
    free(line);
    return cli_any_failed(r->comm, bad) ? reported(r, err) : NEP_OK;
}

static nep_status on_commit(void *ctx, const nep_prune_progress *p, nep_err *err) {
    prune_run *r = ctx;
    return cli_any_failed(r->comm, r->lead && save_progress(r, r->progress_path, p)) ? reported(r, err) : NEP_OK;
}

/* Structural baselines: the layer made the identity is recorded in the arch, so its
 * checkpoints rebuild it that way. */
static nep_status on_linearized(void *ctx, const nep_graph *g, int node, nep_err *err) {
    prune_run *r = ctx;
    if (r->text) { /* a text folder records it with its masks (cli_text_write_folder) */
        fprintf(r->human, "  %s: %s is now the identity\n", r->o.method, g->nodes[node].name);
        return NEP_OK;
    }
    if (r->spec.n_identity == NEP_MAX_IDENTITY)
        return nep_fail(err, NEP_ERR_ARG, "more than %d layers made the identity", NEP_MAX_IDENTITY);
    snprintf(r->spec.identity[r->spec.n_identity++], NEP_NAME_LEN, "%s", g->nodes[node].name);
    fprintf(r->human, "  %s: %s is now the identity\n", r->o.method, g->nodes[node].name);
    return NEP_OK;
}

static void on_phase(void *ctx, const char *label) {
    prune_run *r = ctx;
    if (!r->lead) return;
    if (label) r->prog = (cli_progress){.tty = isatty(2), .label = label, .unit = r->text ? "seq/s" : NULL};
    else cli_progress_end(&r->prog);
}

static void on_progress(void *ctx, int64_t done, int64_t total, double loss, double seconds) {
    if (!((prune_run *)ctx)->lead) return;
    cli_progress_cb(&((prune_run *)ctx)->prog, done, total, loss, seconds);
}

static void on_note(void *ctx, const char *message) {
    fprintf(((prune_run *)ctx)->human, "  %s\n", message);
}

/* stopped_by: "delta", "max_iter", "diverged" or "no_layer_left" (structural baselines). */
static int write_summary(const prune_run *r, const char *path, const nep_prune_progress *p, const char *stopped_by) {
    const bool by_delta = strcmp(stopped_by, "delta") == 0;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "method", r->o.method);
    cJSON_AddStringToObject(j, "criterion", r->o.criterion);
    cJSON_AddNumberToObject(j, "zeta", r->o.zeta);
    cJSON_AddNumberToObject(j, "delta", r->o.delta);
    cJSON_AddNumberToObject(j, "dense_val_top1", p->dense_val);
    cJSON_AddNumberToObject(j, "dense_test_top1", p->dense_test);
    cJSON_AddNumberToObject(j, "iterations", (double)p->iter);
    cJSON_AddNumberToObject(j, "selected_iter", (double)p->selected);
    char *sel = p->selected ? iter_path(r, p->selected) : strdup(r->o.ckpt);
    cJSON_AddStringToObject(j, "selected", sel);
    free(sel);
    if (by_delta) {
        char *failed = iter_path(r, p->iter);
        cJSON_AddStringToObject(j, "failed", failed);
        free(failed);
    } else {
        cJSON_AddNullToObject(j, "failed");
    }
    cJSON_AddStringToObject(j, "stopped_by", stopped_by);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    int rc = write_text(path, s);
    if (!rc && r->o.json) printf("%s\n", s);
    free(s);
    return rc;
}

/* The text classifier in folder dir, its masks applied (the config and tokenizer of the
 * last one read stay in r). */
static int text_model(prune_run *r, const char *dir) {
    nep_text_load_report rep;
    nep_tokenizer_free(r->tok);
    nep_hf_config_free(&r->hf);
    return cli_text_model_open("prune", dir, r->o.max_length, 0, NULL, NULL, true, &r->hf, &r->g, &r->tok, &rep, NULL);
}

/* --ckpt a text classifier folder: the model and the task's splits (train, dev, test). */
static int load_text(prune_run *r) {
    static const char *const splits[3] = {"train", "dev", "test"};
    if (!r->o.data.dir) return cli_errorf("prune", "--data-dir: a text model needs the directory of the task's TSV files");
    if (text_model(r, r->o.ckpt)) return 1;
    for (int i = 0; i < 3; i++)
        if (cli_text_split("prune", r->o.task, r->o.data.dir, splits[i], r->tok, r->o.max_length,
                           i == 0 ? r->o.max_train_rows : 0, &r->td[i], &r->tt[i]))
            return 1;
    return 0;
}

int cmd_prune(int argc, char **argv) { return cli_prune(argc, argv, NULL); }

int cli_prune(int argc, char **argv, const nep_comm *comm) {
    prune_run r = {.comm = comm, .lead = nep_comm_rank(comm) == 0};
    int rc = parse_opts(&r, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    cli_set_threads(r.o.threads);
    FILE *quiet = r.lead ? NULL : fopen("/dev/null", "w");
    r.human = !r.lead ? quiet : r.o.json ? stderr : stdout;
    if (!r.human) return cli_errorf("prune", "rank %d: cannot open /dev/null", nep_comm_rank(comm));
    r.text = cli_is_hf_folder(r.o.ckpt);
    r.options = options_json(&r.o, &r.cfg, &r.optim, r.text);
    r.log = path_in(r.o.out, "iterations.jsonl"), r.progress_path = path_in(r.o.out, "progress.json");
    char *summary = path_in(r.o.out, "summary.json");
    nep_err err;
    nep_prune_progress p = {0};
    rc = 1;
    if (r.text) {
        if (load_text(&r)) goto done;
    } else if (nep_checkpoint_load(r.o.ckpt, &r.g, &r.spec, &r.norm, &r.meta, &err) != NEP_OK) {
        cli_error("prune", &err);
        goto done;
    }
    if (!r.text && cli_load_splits("prune", r.o.ckpt, &r.meta, &r.spec, &r.norm, &r.o.data, &r.d))
        goto done;
    if (r.text && nep_comm_many(comm)) {
        cli_errorf("prune", "%s: pruning a text model over ranks: not yet (run build/nepenthe prune)", r.o.ckpt);
        goto done;
    }
    if (nep_entropy_init(&r.e, &r.g, !r.cfg.dont_care, &err) != NEP_OK) {
        cli_error("prune", &err);
        goto done;
    }
    if (!r.e.n_layers) {
        cli_errorf("prune", "%s: the model has no rectifier layer to prune", r.o.ckpt);
        goto done;
    }
    const bool fresh = !r.o.resume || access(r.progress_path, F_OK) != 0;
    if (!fresh) {
        if (load_progress(&r, r.progress_path, &p)) goto done;
        if (p.iter > 0) {
            char *path = iter_path(&r, p.iter);
            nep_graph_free(&r.g);
            nep_status s = r.text ? (text_model(&r, path) ? NEP_ERR_IO : NEP_OK)
                                  : nep_checkpoint_load(path, &r.g, &r.spec, NULL, NULL, &err);
            free(path);
            if (s != NEP_OK) {
                if (!r.text) cli_error("prune", &err);
                goto done;
            }
        }
        if (r.lead && cli_trim_jsonl("prune", r.log, "iter", p.iter)) goto done;
        fprintf(r.human, "resuming %s after iteration %lld\n", r.o.out, (long long)p.iter);
    } else {
        if (r.o.resume) fprintf(r.human, "no %s yet: starting a new run\n", r.progress_path);
        if (cli_any_failed(comm, r.lead && cli_mkdirs(r.o.out))) {
            cli_errorf("prune", "--out: cannot create directory %s: %s", r.o.out, strerror(errno));
            goto done;
        }
        if (r.lead) remove(r.log);
        fprintf(r.human, "%s on %s (%s, zeta %g, delta %g): %d rectifier layers\n", r.o.method, r.o.ckpt,
                r.o.criterion, r.o.zeta, r.o.delta, r.e.n_layers);
    }
    print_header(r.human);
    nep_prune_loop_cfg cfg = {
        .prune = r.cfg, .optim = r.optim, .retrain_epochs = r.o.retrain_epochs, .batch = r.o.t.batch,
        .max_iter = r.o.max_iter, .delta = r.o.delta, .seed = (uint64_t)r.o.seed,
        .entropy_batches = r.o.entropy_batches, .wanda_batches = r.o.wanda_batches,
        .hrank_batches = r.o.hrank_batches, .sharpness_batches = r.o.sharpness_batches,
        .augment = train_flags_augmentation(&r.o.t), .train = {&r.d.train, &r.norm, NULL},
        .val = {&r.d.val, &r.norm, NULL}, .test = {&r.d.test, &r.norm, NULL}, .exec = &r.exec};
    if (r.text)
        cfg.train = (nep_split){.text = &r.tt[0]}, cfg.val = (nep_split){.text = &r.tt[1]},
        cfg.test = (nep_split){.text = &r.tt[2]};
    cfg.comm = comm, cfg.train.comm = cfg.val.comm = cfg.test.comm = comm;
    if (r.o.t.sync_bn) r.exec.sync_bn = comm;
    const char *what = "the options, data splits and weights";
    if (nep_comm_many(comm) &&
        (cli_ranks_agree("prune", comm, r.options, (int64_t)strlen(r.options), what) ||
         cli_ranks_agree_samples("prune", comm, &r.d.train, what) ||
         cli_ranks_agree_samples("prune", comm, &r.d.test, what) ||
         cli_ranks_agree("prune", comm, r.g.values, r.g.n_values * (int64_t)sizeof(nep_real), what)))
        goto done;
    const nep_prune_hooks hooks = {.ctx = &r, .iteration = on_iteration, .commit = on_commit,
                                   .linearized = on_linearized, .phase = on_phase,
                                   .progress = on_progress, .note = on_note};
    nep_prune_end end;
    if (nep_prune_run(&r.g, &r.e, &cfg, fresh, &p, &hooks, &end, &err) != NEP_OK) {
        if (!r.reported) cli_error("prune", &err);
        goto done;
    }
    if (r.lead && draw_figures(&r, r.log)) goto done;
    static const char *const why[] = {[NEP_PRUNE_BY_DELTA] = "delta", [NEP_PRUNE_MAX_ITER] = "max_iter",
                                      [NEP_PRUNE_DIVERGED] = "diverged", [NEP_PRUNE_NO_LAYER_LEFT] = "no_layer_left"};
    static const char *const said[] = {[NEP_PRUNE_BY_DELTA] = "the delta rule", [NEP_PRUNE_MAX_ITER] = "--max-iter",
                                       [NEP_PRUNE_DIVERGED] = "a diverged retraining",
                                       [NEP_PRUNE_NO_LAYER_LEFT] = "having no rectifier left"};
    if (r.lead && write_summary(&r, summary, &p, why[end])) goto done;
    fprintf(r.human, "stopped by %s after %lld iterations; selected: iteration %lld (dense val %.2f%%); "
            "figures: %s/fig_*.svg; summary: %s\n", said[end], (long long)p.iter, (long long)p.selected,
            p.dense_val, r.o.out, summary);
    rc = 0;
done:
    if (quiet) fclose(quiet);
    free(r.log), free(r.progress_path), free(summary), free(r.options);
    nep_entropy_free(&r.e);
    nep_graph_free(&r.g);
    nep_st_free(&r.meta);
    cli_data_free(&r.d);
    for (int i = 0; i < 3; i++) nep_text_tensors_free(&r.tt[i]), nep_text_dataset_free(&r.td[i]);
    nep_tokenizer_free(r.tok);
    nep_hf_config_free(&r.hf);
    return rc;
}
