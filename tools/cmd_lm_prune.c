/* nepenthe lm-prune: NEPENTHE (or IMP) on a pretrained decoder without fine-tuning, as
 * the paper prunes Llama 3.1-8B (its Table 8). The rectifier layers are the SiLUs of
 * the MLPs, owned by gate_proj (SPEC section 1: attention, norms, embeddings and the
 * head are not pruned); every token of a calibration set of --calib-seqs rows of
 * --seq-len tokens, drawn with --seed from the training text, is one observation of the
 * entropy and of Wanda's input norms. Each iteration prunes by the method's budget and
 * reports, with no retraining in between: the layers with H_l = 0, the held-out
 * perplexity and the multiple-choice accuracy. Every iteration writes OUT/iter_<k> (a
 * folder transformers loads, its masks beside it), a line of OUT/iterations.jsonl, then
 * OUT/progress.json, the commit point --resume continues from. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/causal_lm.h"
#include "nepenthe/entropy.h"
#include "nepenthe/file.h"
#include "nepenthe/lm_score.h"
#include "nepenthe/prune.h"
#include "nepenthe/prune_loop.h"

typedef struct lp_opts {
    const char *model, *data, *mc, *method, *criterion, *out, *backend;
    int64_t seq_len, calib_seqs, iters, seed, batch, max_questions, threads;
    double zeta;
    bool resume, json;
} lp_opts;

/* Everything an iteration reads and writes. */
typedef struct lp_run {
    const lp_opts *o;
    nep_hf_config cfg;
    nep_graph g;
    nep_tokenizer *tok;
    nep_entropy e;
    nep_prune_cfg pcfg;
    nep_lm_rows held;
    nep_text_tensors calib;
    nep_split split;
    nep_mmlu_set mc;
    const nep_exec_opts *xo;
    char *options;
    char model_dir[4200], log[4200], progress[4200];
} lp_run;

static char *options_json(const lp_opts *o) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", o->model);
    cJSON_AddStringToObject(j, "data", o->data);
    cJSON_AddStringToObject(j, "method", o->method);
    cJSON_AddStringToObject(j, "criterion", o->criterion);
    cJSON_AddNumberToObject(j, "zeta", o->zeta);
    cJSON_AddNumberToObject(j, "seq_len", (double)o->seq_len);
    cJSON_AddNumberToObject(j, "calib_seqs", (double)o->calib_seqs);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* The calibration rows: --calib-seqs of the training text's rows, a seeded draw. */
static int calibration(lp_run *r, const char *train_path) {
    nep_lm_rows train;
    nep_err err;
    const int32_t eos = (int32_t)r->cfg.eos_token_id;
    if (nep_lm_rows_read(r->tok, train_path, eos, r->o->seq_len, &train, &err) != NEP_OK) return cli_error("lm-prune", &err);
    uint32_t *order = malloc(sizeof *order * (size_t)train.n + 1);
    nep_rng rng;
    nep_rng_seed(&rng, (uint64_t)r->o->seed);
    for (int64_t i = 0; order && i < train.n; i++) order[i] = (uint32_t)i;
    if (order) nep_rng_shuffle_u32(&rng, order, (size_t)train.n);
    const int64_t n = r->o->calib_seqs < train.n ? r->o->calib_seqs : train.n;
    nep_status s = order ? nep_lm_rows_as_text(&train, order, n, &r->calib, &err) : nep_fail(&err, NEP_ERR_NOMEM, "out of memory");
    free(order);
    nep_lm_rows_free(&train);
    if (s != NEP_OK) return cli_error("lm-prune", &err);
    r->split = (nep_split){.text = &r->calib, .decoder = true};
    return 0;
}

/* One iteration's numbers. */
typedef struct lp_row {
    int64_t iter, budget, pruned_total;
    int zero;
    double ppl, acc, acc_norm, sparsity, seconds;
} lp_row;

static int evaluate(lp_run *r, lp_row *row) {
    nep_err err;
    double loss;
    nep_status s = nep_lm_evaluate(&r->g, &r->held, r->o->batch, &loss, NULL, r->xo, &err);
    row->ppl = exp(loss);
    const int64_t n = r->o->max_questions && r->o->max_questions < r->mc.n ? r->o->max_questions : r->mc.n;
    int *pred = malloc(sizeof *pred * (size_t)n + 1), *pred_norm = malloc(sizeof *pred_norm * (size_t)n + 1);
    if (s == NEP_OK && (!pred || !pred_norm)) s = nep_fail(&err, NEP_ERR_NOMEM, "out of memory");
    cli_progress prog = {.tty = isatty(2), .label = "  multiple choice", .unit = "req/s"};
    const int32_t eos = (int32_t)r->cfg.eos_token_id;
    if (s == NEP_OK)
        s = nep_mc_predict(&r->g, r->tok, eos, &r->mc, n, NEP_MC_CLOZE, NULL, 0, r->o->batch, pred, pred_norm, NULL,
                           cli_progress_cb, &prog, r->xo, &err);
    cli_progress_end(&prog);
    int64_t right = 0, right_norm = 0;
    for (int64_t i = 0; s == NEP_OK && i < n; i++) {
        right += pred[i] == r->mc.items[i].answer;
        right_norm += pred_norm[i] == r->mc.items[i].answer;
    }
    row->acc = n ? 100.0 * (double)right / (double)n : 0;
    row->acc_norm = n ? 100.0 * (double)right_norm / (double)n : 0;
    free(pred), free(pred_norm);
    return s == NEP_OK ? 0 : cli_error("lm-prune", &err);
}

static int measure(lp_run *r) {
    nep_err err;
    nep_entropy_reset(&r->e);
    if (nep_entropy_measure_split(&r->e, &r->g, &r->split, r->o->batch, 0, r->xo, &err) != NEP_OK)
        return cli_error("lm-prune", &err);
    return 0;
}

/* The iteration's folder, log line and commit. */
static int commit(lp_run *r, const lp_row *row, const int64_t *pruned) {
    char dir[4300], line[8192], prog[128];
    snprintf(dir, sizeof dir, "%s/iter_%lld", r->o->out, (long long)row->iter);
    if (cli_text_write_folder("lm-prune", dir, &r->cfg, &r->g, r->o->model)) return 1;
    int at = snprintf(line, sizeof line, "{\"iter\":%lld,\"layers_zero\":%d,\"layers\":%d,\"budget\":%lld,\"pruned\":%lld,"
                      "\"sparsity\":%.4f,\"heldout_ppl\":%.4f,\"mc_acc\":%.4f,\"mc_acc_norm\":%.4f,\"seconds\":%.2f,"
                      "\"entropy\":[", (long long)row->iter, row->zero, r->e.n_layers, (long long)row->budget,
                      (long long)row->pruned_total, row->sparsity, row->ppl, row->acc, row->acc_norm, row->seconds);
    for (int l = 0; l < r->e.n_layers && at < (int)sizeof line - 64; l++)
        at += snprintf(line + at, sizeof line - (size_t)at, "%s%.6f", l ? "," : "",
                       nep_prune_layer_entropy(&r->pcfg, &r->e.layers[l]));
    at += snprintf(line + at, sizeof line - (size_t)at, "],\"pruned_per_layer\":[");
    for (int l = 0; l < r->e.n_layers && at < (int)sizeof line - 32; l++)
        at += snprintf(line + at, sizeof line - (size_t)at, "%s%lld", l ? "," : "", (long long)(pruned ? pruned[l] : 0));
    snprintf(line + at, sizeof line - (size_t)at, "]}");
    if (cli_append_line(r->log, line)) return cli_errorf("lm-prune", "%s: cannot append: %s", r->log, strerror(errno));
    snprintf(prog, sizeof prog, "{\"iter\":%lld}\n", (long long)row->iter);
    nep_err err;
    if (nep_write_atomic_bytes(r->progress, prog, strlen(prog), &err) != NEP_OK) return cli_error("lm-prune", &err);
    return 0;
}

/* The last committed iteration in OUT/progress.json, or -1 when there is none. */
static int64_t committed(const lp_run *r) {
    char *text;
    size_t n;
    nep_err err;
    if (access(r->progress, F_OK) != 0 || nep_read_file(r->progress, 4096, &text, &n, &err) != NEP_OK) return -1;
    cJSON *j = cJSON_Parse(text);
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, "iter");
    const int64_t k = cli_json_integer(it, 0, 1 << 30) ? (int64_t)it->valuedouble : -1;
    cJSON_Delete(j);
    free(text);
    return k;
}

static void print_row(FILE *f, const lp_run *r, const lp_row *row) {
    fprintf(f, "%4lld | ", (long long)row->iter);
    for (int l = 0; l < r->e.n_layers && l < 8; l++) fprintf(f, "%6.3f ", nep_prune_layer_entropy(&r->pcfg, &r->e.layers[l]));
    fprintf(f, "| %3d/%-3d | %7.2f | %6.2f %6.2f | %7.2f%% | %6.1fs\n", row->zero, r->e.n_layers, row->ppl, row->acc,
            row->acc_norm, row->sparsity, row->seconds);
    fflush(f);
}

static int zero_layers(const lp_run *r) {
    int z = 0;
    for (int l = 0; l < r->e.n_layers; l++) z += nep_prune_layer_entropy(&r->pcfg, &r->e.layers[l]) == 0;
    return z;
}

int cmd_lm_prune(int argc, char **argv) {
    lp_opts o = {.method = "nepenthe", .criterion = "magnitude", .backend = "cpu", .seq_len = 128, .calib_seqs = 128,
                 .iters = 6, .batch = 16, .zeta = 0.25};
    cli_opt opts[] = {
        {"model", OPT_STR, &o.model, "Hugging Face folder of a pretrained Llama (config.json, weights, tokenizer.json) (required)"},
        {"data", OPT_STR, &o.data, "directory of train.txt (calibration), heldout.txt (perplexity) and mc/data (the "
                                   "multiple-choice task), as lm-corpus writes it (required)"},
        {"method", OPT_STR, &o.method, "nepenthe (entropy budget) or imp (one global threshold)"},
        {"criterion", OPT_STR, &o.criterion, "magnitude or wanda (|w| times its input feature's norm)"},
        {"zeta", OPT_REAL, &o.zeta, "pruning rate: the fraction of the remaining SiLU layers' gate_proj weights pruned "
                                    "per iteration"},
        {"iters", OPT_INT, &o.iters, "iterations (no fine-tuning between them)"},
        {"calib-seqs", OPT_INT, &o.calib_seqs, "calibration sequences (rows of --seq-len tokens of train.txt, drawn with --seed)"},
        {"seq-len", OPT_INT, &o.seq_len, "tokens per row: calibration, perplexity and multiple choice"},
        {"seed", OPT_INT, &o.seed, "seed of the calibration draw"},
        {"batch", OPT_INT, &o.batch, "rows per forward pass"},
        {"max-questions", OPT_INT, &o.max_questions, "score the first N multiple-choice questions only (0: all)"},
        THREADS_OPT(&o.threads),
        BACKEND_OPT(&o.backend),
        {"out", OPT_STR, &o.out, "output directory (required)"},
        {"resume", OPT_FLAG, &o.resume, "continue the run in --out after its last committed iteration"},
        {"json", OPT_FLAG, &o.json, "end with one JSON line on stdout"},
        OPT_END,
    };
    int rc = cli_parse("lm-prune", "--model DIR --data DIR --out DIR [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!o.model || !o.data || !o.out) return cli_errorf("lm-prune", "--model DIR, --data DIR and --out DIR are required") + 1;
    const int method = nep_method_from_name(o.method);
    const bool wanda = strcmp(o.criterion, "wanda") == 0;
    if (method != NEP_METHOD_NEPENTHE && method != NEP_METHOD_IMP)
        return cli_errorf("lm-prune", "--method '%s': nepenthe or imp", o.method) + 1;
    if (!wanda && strcmp(o.criterion, "magnitude") != 0)
        return cli_errorf("lm-prune", "--criterion '%s': magnitude or wanda", o.criterion) + 1;
    if (!(o.zeta > 0 && o.zeta < 1) || o.iters < 1 || o.calib_seqs < 1 || o.seq_len < 2 || o.batch < 1 || o.max_questions < 0)
        return cli_errorf("lm-prune", "--zeta in (0, 1), --iters, --calib-seqs, --batch positive, --seq-len at least 2") + 1;
    nep_exec_opts xo;
    if (cli_exec_opts("lm-prune", o.backend, &xo)) return 2;
    cli_set_threads(o.threads);
    FILE *human = o.json ? stderr : stdout;
    lp_run r = {.o = &o, .xo = &xo};
    r.pcfg = nep_prune_cfg_for((nep_method)method, wanda ? NEP_CRIT_WANDA : NEP_CRIT_MAGNITUDE, o.zeta);
    nep_err err;
    char path[4200];
    int64_t *pruned = NULL;
    rc = 1;
    if (cli_mkdirs(o.out)) {
        cli_errorf("lm-prune", "--out: cannot create directory %s: %s", o.out, strerror(errno));
        goto done;
    }
    r.options = options_json(&o);
    snprintf(r.log, sizeof r.log, "%s/iterations.jsonl", o.out);
    snprintf(r.progress, sizeof r.progress, "%s/progress.json", o.out);
    int64_t start = o.resume ? committed(&r) : -1;
    snprintf(path, sizeof path, "%s/options.json", o.out);
    if (start >= 0) { /* the same options, then the last committed iteration's folder */
        char *stored = NULL;
        size_t n;
        if (nep_read_file(path, 1 << 20, &stored, &n, &err) != NEP_OK || strcmp(stored, r.options) != 0) {
            cli_errorf("lm-prune", "--resume: %s was written with other options:\n  stored:  %s\n  current: %s", path,
                       stored ? stored : "(none)", r.options);
            free(stored);
            goto done;
        }
        free(stored);
        snprintf(r.model_dir, sizeof r.model_dir, "%s/iter_%lld", o.out, (long long)start);
        if (cli_trim_jsonl("lm-prune", r.log, "iter", start)) goto done;
        fprintf(human, "resuming after iteration %lld (%s)\n", (long long)start, r.model_dir);
    } else {
        snprintf(r.model_dir, sizeof r.model_dir, "%s", o.model);
        remove(r.log);
        remove(r.progress);
        if (nep_write_atomic_bytes(path, r.options, strlen(r.options), &err) != NEP_OK) {
            cli_error("lm-prune", &err);
            goto done;
        }
    }
    nep_text_load_report lr;
    if (cli_text_model_open("lm-prune", r.model_dir, o.seq_len, 0, NULL, NULL, true, &r.cfg, &r.g, &r.tok, &lr, NULL)) goto done;
    if (r.cfg.model_type != NEP_HF_LLAMA) {
        cli_errorf("lm-prune", "%s: model_type '%s': lm-prune prunes a Llama decoder", o.model, nep_hf_model_type_name(r.cfg.model_type));
        goto done;
    }
    const int32_t eos = (int32_t)r.cfg.eos_token_id;
    snprintf(path, sizeof path, "%s/train.txt", o.data);
    if (calibration(&r, path)) goto done;
    snprintf(path, sizeof path, "%s/heldout.txt", o.data);
    if (nep_lm_rows_read(r.tok, path, eos, o.seq_len, &r.held, &err) != NEP_OK) {
        cli_error("lm-prune", &err);
        goto done;
    }
    snprintf(path, sizeof path, "%s/mc/data", o.data);
    if (nep_mmlu_load_split(path, "test", NULL, &r.mc, &err) != NEP_OK ||
        nep_entropy_init(&r.e, &r.g, !r.pcfg.dont_care, &err) != NEP_OK) {
        cli_error("lm-prune", &err);
        goto done;
    }
    pruned = calloc((size_t)r.e.n_layers + 1, sizeof *pruned);
    fprintf(human, "%s: %d SiLU layers (owned by gate_proj), %s + %s, zeta %g; calibration %lld rows of %lld tokens; "
            "held-out %lld rows; multiple choice %lld questions (cloze)\n", o.model, r.e.n_layers, o.method, o.criterion,
            o.zeta, (long long)r.calib.n, (long long)o.seq_len, (long long)r.held.n, (long long)r.mc.n);
    fprintf(human, "iter | layer entropies H_l (bits, first 8)                           | H_l=0   | ppl     |  acc  "
            "acc_norm | sparsity | time\n");
    lp_row row = {0};
    bool measured = false; /* e holds the current model's counts (no retraining changes them) */
    for (int64_t k = start + 1; k <= o.iters; k++) {
        const double t0 = nep_now();
        row = (lp_row){.iter = k};
        if (k > 0) {
            double **scales = NULL;
            nep_status s = !measured && measure(&r) ? NEP_ERR_ARG : NEP_OK; /* the budget's: the model as it is */
            if (s == NEP_OK && wanda)
                s = nep_wanda_norms(&r.g, &r.e, &r.split, o.batch, 0, &scales, &xo, &err);
            if (s == NEP_OK) s = nep_prune_step(&r.g, &r.e, &r.pcfg, scales, pruned, &row.budget, &err);
            nep_wanda_free(scales, r.e.n_layers);
            if (s != NEP_OK) {
                if (s != NEP_ERR_ARG) cli_error("lm-prune", &err);
                goto done;
            }
            for (int l = 0; l < r.e.n_layers; l++) row.pruned_total += pruned[l];
        }
        if (measure(&r) || evaluate(&r, &row)) goto done;
        measured = true;
        row.zero = zero_layers(&r);
        row.sparsity = nep_owned_sparsity(&r.g, &r.e);
        row.seconds = nep_now() - t0;
        if (commit(&r, &row, k > 0 ? pruned : NULL)) goto done;
        print_row(human, &r, &row);
    }
    if (o.json)
        printf("{\"iters\":%lld,\"layers_zero\":%d,\"layers\":%d,\"heldout_ppl\":%.4f,\"mc_acc\":%.4f,\"mc_acc_norm\":%.4f,"
               "\"sparsity\":%.4f,\"out\":\"%s\"}\n", (long long)o.iters, row.zero, r.e.n_layers, row.ppl, row.acc,
               row.acc_norm, row.sparsity, o.out);
    rc = 0;
done:
    free(pruned);
    free(r.options);
    if (r.e.layers) nep_entropy_free(&r.e);
    nep_mmlu_set_free(&r.mc);
    nep_lm_rows_free(&r.held);
    nep_text_tensors_free(&r.calib);
    nep_tokenizer_free(r.tok);
    nep_graph_free(&r.g);
    nep_hf_config_free(&r.cfg);
    return rc;
}
