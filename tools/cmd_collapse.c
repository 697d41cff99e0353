/* nepenthe collapse: remove the layers a pruned model no longer needs (SPEC section 6)
 * and report the model before and after, like the paper's Tables 10 and 15. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/checkpoint.h"
#include "nepenthe/collapse.h"
#include "nepenthe/onnx.h"
#include "nepenthe/report.h"

static cJSON *stats_json(const nep_model_stats *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rectifiers", s->rectifiers);
    cJSON_AddNumberToObject(o, "depth", s->depth);
    cJSON_AddNumberToObject(o, "params", (double)s->params);
    cJSON_AddNumberToObject(o, "nonzero", (double)s->nonzero);
    cJSON_AddNumberToObject(o, "mflops", (double)s->flops / 1e6);
    cJSON_AddNumberToObject(o, "latency_ms_batch1", 1e3 * s->latency_b1);
    cJSON_AddNumberToObject(o, "latency_ms_batch128", 1e3 * s->latency_b128);
    cJSON_AddNumberToObject(o, "peak_memory_mb_batch128", (double)(s->param_bytes + s->act_bytes_b128) / 1e6);
    if (isfinite(s->energy_b1)) cJSON_AddNumberToObject(o, "energy_mj_batch1", 1e3 * s->energy_b1);
    if (isfinite(s->energy_b128)) cJSON_AddNumberToObject(o, "energy_mj_batch128", 1e3 * s->energy_b128);
    cJSON_AddNumberToObject(o, "top1", s->top1);
    return o;
}

static cJSON *info_json(const nep_collapse_info *i) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "linearized", i->linearized);
    cJSON_AddNumberToObject(o, "approximate", i->approximate);
    cJSON_AddNumberToObject(o, "masked_layers", i->masked_layers);
    cJSON_AddNumberToObject(o, "masked_neurons", (double)i->masked_neurons);
    cJSON_AddNumberToObject(o, "bn_folded", i->bn_folded);
    cJSON_AddNumberToObject(o, "affine_folded", i->affine_folded);
    cJSON_AddNumberToObject(o, "removed", i->removed);
    cJSON_AddNumberToObject(o, "channels_dropped", (double)i->channels_dropped);
    cJSON_AddNumberToObject(o, "constants_folded", i->constants_folded);
    cJSON_AddNumberToObject(o, "composed", i->composed);
    cJSON_AddNumberToObject(o, "composed_approx", i->composed_approx);
    cJSON_AddNumberToObject(o, "residual_folded", i->residual_folded);
    return o;
}

/* Every rule of the engine's table with its applications, zeros included, so that the
 * object's keys are the same from run to run. */
static cJSON *rules_json(const nep_collapse_info *i) {
    cJSON *o = cJSON_CreateObject();
    for (int r = 0; r < i->n_rules; r++) cJSON_AddNumberToObject(o, i->rules[r].name, i->rules[r].count);
    return o;
}

/* The rules that applied, by name, the approximate ones marked. */
static void print_rules(const nep_collapse_info *i) {
    int shown = 0;
    printf("rules applied:");
    for (int r = 0; r < i->n_rules; r++)
        if (i->rules[r].count)
            printf("%s %s x%d%s", shown++ ? "," : "", i->rules[r].name, i->rules[r].count,
                   i->rules[r].exact ? "" : " (approximate)");
    printf("%s\n", shown ? "" : " none");
}

static cJSON *equiv_json(const nep_equivalence *q) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "samples", (double)q->samples);
    cJSON_AddNumberToObject(o, "max_abs_diff", q->max_abs_diff);
    cJSON_AddNumberToObject(o, "top1_agreement", q->samples ? 100.0 * (double)q->agree / (double)q->samples : 0);
    return o;
}

/* Live nodes of op kind op in g. */
static int count_live(const nep_graph *g, nep_op_kind op) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) n += !g->nodes[i].dead && g->nodes[i].op == op;
    return n;
}

/* What collapse leaves in place on a transformer, said plainly: a residual block
 * x + f(LN(x)) is not a linear map of x, so attention and LayerNorm stay even where every
 * rectifier around them is linearized. */
static cJSON *kept_json(const nep_graph *g) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "attention", count_live(g, NEP_OP_ATTENTION) + count_live(g, NEP_OP_SDPA));
    cJSON_AddNumberToObject(o, "layernorm", count_live(g, NEP_OP_LAYERNORM));
    return o;
}
static void print_kept(const nep_graph *g) {
    const int att = count_live(g, NEP_OP_ATTENTION) + count_live(g, NEP_OP_SDPA), ln = count_live(g, NEP_OP_LAYERNORM);
    if (att || ln)
        printf("kept: %d attention and %d LayerNorm node(s): collapse removes rectifiers and what they "
               "leave behind, never attention or normalization (x + W LN(x) is not a linear map of x)\n",
               att, ln);
}

/* Why the report has no energy, in RAPL's own words, into why. */
static const char *energy_note(nep_err *why) {
    nep_energy_meter m;
    return nep_energy_open(&m, NEP_RAPL_ROOT, why) == NEP_OK ? "measured" : why->msg;
}

/* unit: what one sample is ("image", "sequence") */
static void print_report(const nep_model_stats *b, const nep_model_stats *a, const char *unit) {
    const double mb = 1e6;
    printf("\n%-28s %12s %12s\n", "", "before", "after");
    printf("%-28s %12d %12d\n", "rectifier layers", b->rectifiers, a->rectifiers);
    printf("%-28s %12d %12d\n", "depth (rectifiers on a path)", b->depth, a->depth);
    printf("%-28s %12lld %12lld\n", "parameters", (long long)b->params, (long long)a->params);
    printf("%-28s %12lld %12lld\n", "non-zero parameters", (long long)b->nonzero, (long long)a->nonzero);
    char flops[40];
    snprintf(flops, sizeof flops, "MFLOPs per %s", unit);
    printf("%-28s %12.2f %12.2f\n", flops, (double)b->flops / 1e6, (double)a->flops / 1e6);
    printf("%-28s %12.3f %12.3f\n", "latency batch 1 (ms)", 1e3 * b->latency_b1, 1e3 * a->latency_b1);
    printf("%-28s %12.2f %12.2f\n", "latency batch 128 (ms)", 1e3 * b->latency_b128, 1e3 * a->latency_b128);
    printf("%-28s %12.1f %12.1f\n", "peak memory batch 128 (MB)", (double)(b->param_bytes + b->act_bytes_b128) / mb,
           (double)(a->param_bytes + a->act_bytes_b128) / mb);
    if (isfinite(b->energy_b1) && isfinite(a->energy_b1)) {
        printf("%-28s %12.3f %12.3f\n", "energy batch 1 (mJ)", 1e3 * b->energy_b1, 1e3 * a->energy_b1);
        printf("%-28s %12.2f %12.2f\n", "energy batch 128 (mJ)", 1e3 * b->energy_b128, 1e3 * a->energy_b128);
    } else {
        nep_err why;
        printf("%-28s %s\n", "energy per inference", energy_note(&why));
    }
    printf("%-28s %12.2f %12.2f\n", "top-1 test (%)", b->top1, a->top1);
}

/* A text classifier folder (its masks applied) and its task's train and test splits;
 * spec describes it for the checkpoint, which carries the collapsed graph whole. */
typedef struct text_data {
    nep_hf_config cfg;
    nep_tokenizer *tok;
    nep_text_dataset d[2];
    nep_text_tensors t[2];
} text_data;

static int load_text(const char *dir, const char *task, const char *data_dir, int64_t max_length, nep_graph *g,
                     nep_model_spec *spec, text_data *td) {
    nep_text_load_report rep;
    if (!data_dir) return cli_errorf("collapse", "--data-dir: a text model needs the directory of the task's TSV files");
    if (cli_text_model_open("collapse", dir, max_length, 0, NULL, NULL, true, &td->cfg, g, &td->tok, &rep, NULL) ||
        cli_text_split("collapse", task, data_dir, "train", td->tok, max_length, 0, &td->d[0], &td->t[0]) ||
        cli_text_split("collapse", task, data_dir, "test", td->tok, max_length, 0, &td->d[1], &td->t[1]))
        return 1;
    *spec = nep_model_spec_default();
    snprintf(spec->name, sizeof spec->name, "%s", nep_hf_model_type_name(td->cfg.model_type));
    spec->in_c = spec->in_h = 1, spec->in_w = (int)max_length, spec->classes = td->cfg.num_labels;
    spec->act = NEP_OP_GELU, spec->n_hidden = 0;
    return 0;
}

static void text_data_free(text_data *td) {
    for (int i = 0; i < 2; i++) nep_text_tensors_free(&td->t[i]), nep_text_dataset_free(&td->d[i]);
    nep_tokenizer_free(td->tok);
    nep_hf_config_free(&td->cfg);
}

int cmd_collapse(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *onnx = NULL, *task = "fortunes";
    cli_data_opts data = CLI_DATA_DEFAULT;
    int64_t batch = 0, max_batches = 0, calls = 40, threads = 0, max_length = 128;
    double tol = 1e-3;
    bool json = false, allow_approx = false;
    const char *backend = "cpu";
    cli_opt opts[] = {
        {"ckpt", OPT_STR, &ckpt, "pruned checkpoint (.safetensors), or a text classifier folder (a prune "
                                 "run's iter_K) (required)"},
        {"out", OPT_STR, &out, "collapsed checkpoint to write (required)"},
        {"onnx", OPT_STR, &onnx, "also write the collapsed model as ONNX (opset 17)"},
        DATA_OPTS(&data),
        {"task", OPT_STR, &task, "text models: the task of --data-dir's TSV files: " NEP_GLUE_TASKS},
        {"max-length", OPT_INT, &max_length, "text models: tokens per sequence"},
        {"batch", OPT_INT, &batch, "batch size for counting states and the checks (0: 256 images, 32 texts)"},
        {"max-batches", OPT_INT, &max_batches, "count states over at most this many train batches (0: all)"},
        {"tol", OPT_REAL, &tol, "largest |logit difference| allowed against the linearized model"},
        {"allow-approx", OPT_FLAG, &allow_approx,
         "compose kxk convs although their padded border differs, and exit 0 above --tol"},
        {"calls", OPT_INT, &calls, "timed forwards at batch 1 for the latency medians (a quarter at 128)"},
        THREADS_OPT(&threads),
        BACKEND_OPT(&backend),
        {"json", OPT_FLAG, &json, "one JSON object on stdout"},
        OPT_END,
    };
    int rc = cli_parse("collapse", "--ckpt FILE --out FILE [--onnx FILE] [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!ckpt || !out) return cli_errorf("collapse", "--ckpt FILE and --out FILE are required") + 1;
    if (batch < 0 || max_batches < 0 || calls < 1 || !(tol >= 0) || max_length < 2)
        return cli_errorf("collapse", "--calls must be positive, --batch, --max-batches and --tol "
                          "non-negative") + 1;
    cli_set_threads(threads);
    nep_exec_opts xo;
    if (cli_exec_opts("collapse", backend, &xo)) return 2;
    nep_graph g, lin, col;
    nep_model_spec spec;
    nep_normalize norm;
    nep_safetensors meta = {0};
    nep_entropy e = {0};
    cli_data d = {0};
    text_data td = {0};
    nep_err err;
    nep_graph_init(&g), nep_graph_init(&lin), nep_graph_init(&col);
    norm = (nep_normalize){0};
    const bool text = cli_is_hf_folder(ckpt);
    rc = 1;
    if (text) {
        if (load_text(ckpt, task, data.dir, max_length, &g, &spec, &td)) goto done;
    } else if (nep_checkpoint_load(ckpt, &g, &spec, &norm, &meta, &err) != NEP_OK) {
        cli_error("collapse", &err);
        goto done;
    }
    if (!text && cli_load_splits("collapse", ckpt, &meta, &spec, &norm, &data, &d)) goto done;
    const nep_split train = text ? (nep_split){.text = &td.t[0]} : (nep_split){&d.train, &norm, NULL},
                    test = text ? (nep_split){.text = &td.t[1]} : (nep_split){&d.test, &norm, NULL};
    nep_collapse_info info = {0};
    if (!batch) batch = nep_split_pass_batch(&train);
    cli_progress prog = {.tty = isatty(2), .label = "collapse: activation states", .unit = text ? "seq/s" : NULL};
    nep_collapse_opts o = {.allow_approx = allow_approx};
    nep_equivalence exact, vs_original;
    nep_model_stats before, after;
    if (nep_entropy_init(&e, &g, false, &err) != NEP_OK) {
        cli_error("collapse", &err);
        goto done;
    }
    e.progress = cli_progress_cb, e.progress_ctx = &prog;
    nep_status s = nep_entropy_measure_split(&e, &g, &train, batch, max_batches, &xo, &err);
    cli_progress_end(&prog);
    if (s != NEP_OK || nep_collapse(&g, &e, &o, &lin, &col, &info, &err) != NEP_OK ||
        nep_collapse_compare_split(&lin, &col, &test, batch, 0, &exact, &xo, &err) != NEP_OK ||
        nep_collapse_compare_split(&g, &col, &test, batch, 0, &vs_original, &xo, &err) != NEP_OK) {
        cli_error("collapse", &err);
        goto done;
    }
    if (!json) fprintf(stderr, "collapse: timing the model before and after\n");
    if (nep_model_stats_measure_split(&g, &test, calls, &before, &xo, &err) != NEP_OK ||
        nep_model_stats_measure_split(&col, &test, calls, &after, &xo, &err) != NEP_OK) {
        cli_error("collapse", &err);
        goto done;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "rewrites", info_json(&info));
    cJSON_AddItemToObject(root, "equivalence", equiv_json(&exact));
    cJSON_AddItemToObject(root, "vs_pruned", equiv_json(&vs_original));
    char *summary = cJSON_PrintUnformatted(root);
    nep_model_spec cspec = spec;
    cspec.collapsed = true;
    const char *split = nep_st_meta_get(&meta, "data");
    nep_st_meta extra[2] = {{"collapse", summary}, {"data", (char *)(split ? split : "{}")}};
    if (nep_checkpoint_save(out, &col, &cspec, text ? NULL : &norm, NULL, extra, 2, &err) != NEP_OK ||
        (onnx && nep_onnx_export(&col, text ? NULL : &norm, onnx, &err) != NEP_OK)) {
        cli_error("collapse", &err);
        cJSON_free(summary);
        cJSON_Delete(root);
        goto done;
    }
    cJSON_free(summary);
    const bool within = exact.max_abs_diff <= tol; /* false for NaN */
    if (json) {
        /* the report's only: the checkpoint's summary above keeps the keys it always had */
        cJSON_AddItemToObject(root, "rules", rules_json(&info));
        cJSON_AddItemToObject(root, "kept", kept_json(&col));
        cJSON_AddItemToObject(root, "before", stats_json(&before));
        cJSON_AddItemToObject(root, "after", stats_json(&after));
        nep_err why;
        if (!isfinite(before.energy_b1)) cJSON_AddStringToObject(root, "energy", energy_note(&why));
        cJSON_AddNumberToObject(root, "tol", tol);
        cJSON_AddBoolToObject(root, "within_tol", within);
        cJSON_AddStringToObject(root, "out", out);
        if (onnx) cJSON_AddStringToObject(root, "onnx", onnx);
        char *txt = cJSON_PrintUnformatted(root);
        printf("%s\n", txt);
        cJSON_free(txt);
    } else {
        printf("linearized %d rectifier layer(s)%s; %d masked layer(s) (%lld always-OFF neurons); "
               "%d BatchNorm(s) folded; %lld channel(s) dropped; %d constant(s) folded into a bias; "
               "%d pair(s) composed (%d with a different border); %d residual(s) folded\n",
               info.linearized, info.approximate ? " (GELU/SiLU ones approximately)" : "",
               info.masked_layers, (long long)info.masked_neurons, info.bn_folded,
               (long long)info.channels_dropped, info.constants_folded, info.composed,
               info.composed_approx, info.residual_folded);
        print_rules(&info);
        print_kept(&col);
        printf("equivalence on %lld test %s: max |logit diff| %.3g against the linearized model "
               "(tolerance %.3g), top-1 agreement %.2f%%; against the pruned model: top-1 "
               "agreement %.2f%%\n", (long long)exact.samples, text ? "sequences" : "images", exact.max_abs_diff, tol,
               100.0 * (double)exact.agree / (double)(exact.samples ? exact.samples : 1),
               100.0 * (double)vs_original.agree / (double)(vs_original.samples ? vs_original.samples : 1));
        print_report(&before, &after, text ? "sequence" : "image");
        printf("\nwrote %s%s%s\n", out, onnx ? " and " : "", onnx ? onnx : "");
    }
    cJSON_Delete(root);
    if (!within && !allow_approx) {
        fprintf(stderr, "nepenthe collapse: the collapsed model differs from the linearized one by "
                "%.3g, above --tol %.3g (--allow-approx accepts it)\n", exact.max_abs_diff, tol);
        goto done;
    }
    rc = 0;
done:
    nep_entropy_free(&e);
    nep_graph_free(&g), nep_graph_free(&lin), nep_graph_free(&col);
    nep_st_free(&meta);
    cli_data_free(&d);
    text_data_free(&td);
    return rc;
}
