/* nepenthe lm-collapse: what removing a pruned decoder's SwiGLU layers can mean, done and
 * measured (nep_swiglu_shrink, collapse.h): features whose gate_proj row NEPENTHE zeroed
 * go exactly, always-OFF features (--always-off, from the entropy on a calibration draw)
 * approximately, and an MLP left with none goes whole (replaced by its mean output over the
 * calibration tokens when it went approximately, unless --empty-mlp nothing). Reports, before and after: the
 * features and MLPs, parameters, FLOPs per token, the batch-1 latency of a forward over
 * --seq-len tokens (medians of 20 calls, the models alternating over 5 rounds), the
 * held-out perplexity and the multiple-choice accuracy; writes the
 * shrunk model as a checkpoint (its graph whole: its MLPs no longer share one width, which
 * no config.json can say) and, with --onnx, as ONNX. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nepenthe/causal_lm.h"
#include "nepenthe/checkpoint.h"
#include "nepenthe/collapse.h"
#include "nepenthe/entropy.h"
#include "nepenthe/lm_score.h"
#include "nepenthe/onnx.h"
#include "nepenthe/report.h"

#define ROUNDS 5 /* of latency measurement, before and after alternating */

typedef struct lc_stats {
    int64_t params, flops;
    double latency, ppl, acc, acc_norm;
} lc_stats;

static int64_t flops_per_token(const nep_graph *g, int64_t T) {
    int64_t f = 0;
    for (int k = 0; k < g->n_order; k++) f += nep_node_flops(g, &g->nodes[g->order[k]]);
    return f / T;
}

/* Median seconds of `calls` forwards of row 0 at batch 1. */
static nep_status latency(nep_graph *g, const nep_text_tensors *rows, int calls, double *out, const nep_exec_opts *xo,
                          nep_err *err) {
    nep_exec *ex;
    nep_exec_opts o = *xo;
    o.inference = true;
    NEP_TRY(nep_exec_new(&ex, g, 1, &o, err));
    double t[64];
    nep_status s = NEP_OK;
    for (int k = -2; s == NEP_OK && k < calls; k++) {
        const nep_real *y;
        const double t0 = nep_now();
        s = nep_exec_run(ex, (const void *[]){rows->ids, rows->mask}, 2, 1, &y, err);
        if (k >= 0) t[k] = nep_now() - t0;
    }
    nep_exec_free(ex);
    *out = s == NEP_OK ? nep_median(t, calls) : 0;
    return s;
}

static int measure(const char *what, nep_graph *g, const nep_tokenizer *tok, int32_t eos, const nep_lm_rows *held,
                   const nep_mmlu_set *mc, int64_t n_mc, const nep_text_tensors *calib, int64_t batch,
                   const nep_exec_opts *xo, lc_stats *st) {
    nep_err err;
    double loss;
    st->params = nep_graph_param_count(g);
    st->flops = flops_per_token(g, held->T);
    int *pred = malloc(sizeof *pred * (size_t)n_mc + 1), *pred_norm = malloc(sizeof *pred_norm * (size_t)n_mc + 1);
    cli_progress prog = {.tty = isatty(2), .label = what, .unit = "req/s"};
    nep_status s = pred && pred_norm ? nep_lm_evaluate(g, held, batch, &loss, NULL, xo, &err)
                                     : nep_fail(&err, NEP_ERR_NOMEM, "out of memory");
    if (s == NEP_OK)
        s = nep_mc_predict(g, tok, eos, mc, n_mc, NEP_MC_CLOZE, NULL, 0, batch, pred, pred_norm, NULL, cli_progress_cb,
                           &prog, xo, &err);
    cli_progress_end(&prog);
    int64_t right = 0, right_norm = 0;
    for (int64_t i = 0; s == NEP_OK && i < n_mc; i++)
        right += pred[i] == mc->items[i].answer, right_norm += pred_norm[i] == mc->items[i].answer;
    st->ppl = exp(loss);
    st->acc = n_mc ? 100.0 * (double)right / (double)n_mc : 0;
    st->acc_norm = n_mc ? 100.0 * (double)right_norm / (double)n_mc : 0;
    free(pred), free(pred_norm);
    return s == NEP_OK ? 0 : cli_error("lm-collapse", &err);
}

int cmd_lm_collapse(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *out = NULL, *onnx = NULL, *backend = "cpu", *empty = "mean";
    int64_t seq_len = 128, calib_seqs = 128, seed = 0, batch = 16, max_questions = 0, threads = 0;
    bool always_off = false, json = false;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "a pruned decoder's folder (lm-prune's OUT/iter_<k>, its masks beside it) (required)"},
        {"data", OPT_STR, &data, "directory of train.txt, heldout.txt and mc/data, as lm-corpus writes it (required)"},
        {"always-off", OPT_FLAG, &always_off, "also drop the features always OFF on the calibration draw (approximate)"},
        {"empty-mlp", OPT_STR, &empty, "--always-off: an MLP left with no feature becomes its mean output over the "
                                       "calibration tokens (mean, a bias of o_proj) or nothing"},
        {"calib-seqs", OPT_INT, &calib_seqs, "calibration rows of train.txt for --always-off (as lm-prune draws them)"},
        {"seq-len", OPT_INT, &seq_len, "tokens per row"},
        {"seed", OPT_INT, &seed, "seed of the calibration draw"},
        {"batch", OPT_INT, &batch, "rows per forward pass"},
        {"max-questions", OPT_INT, &max_questions, "score the first N multiple-choice questions only (0: all)"},
        {"out", OPT_STR, &out, "checkpoint of the shrunk model (required)"},
        {"onnx", OPT_STR, &onnx, "also export it as ONNX"},
        THREADS_OPT(&threads),
        BACKEND_OPT(&backend),
        {"json", OPT_FLAG, &json, "end with one JSON line on stdout"},
        OPT_END,
    };
    int rc = cli_parse("lm-collapse", "--model DIR --data DIR --out FILE [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!model || !data || !out) return cli_errorf("lm-collapse", "--model DIR, --data DIR and --out FILE are required") + 1;
    if (seq_len < 2 || calib_seqs < 1 || batch < 1 || max_questions < 0)
        return cli_errorf("lm-collapse", "--seq-len at least 2, --calib-seqs and --batch positive") + 1;
    const bool mean = strcmp(empty, "mean") == 0;
    if (!mean && strcmp(empty, "nothing") != 0) return cli_errorf("lm-collapse", "--empty-mlp '%s': mean or nothing", empty) + 1;
    nep_exec_opts xo;
    if (cli_exec_opts("lm-collapse", backend, &xo)) return 2;
    cli_set_threads(threads);
    FILE *human = json ? stderr : stdout;
    nep_hf_config cfg = {0};
    nep_graph g = {0}, shrunk = {0};
    nep_tokenizer *tok = NULL;
    nep_lm_rows train = {0}, held = {0};
    nep_text_tensors calib = {0};
    nep_mmlu_set mc = {0};
    nep_entropy e = {0};
    nep_real **means = NULL;
    nep_err err;
    uint32_t *order = NULL;
    char path[4200];
    rc = 1;
    nep_text_load_report lr;
    if (cli_text_model_open("lm-collapse", model, seq_len, 0, NULL, NULL, true, &cfg, &g, &tok, &lr, NULL)) goto done;
    const int32_t eos = (int32_t)cfg.eos_token_id;
    snprintf(path, sizeof path, "%s/train.txt", data);
    nep_status s = nep_lm_rows_read(tok, path, eos, seq_len, &train, &err);
    snprintf(path, sizeof path, "%s/heldout.txt", data);
    if (s == NEP_OK) s = nep_lm_rows_read(tok, path, eos, seq_len, &held, &err);
    snprintf(path, sizeof path, "%s/mc/data", data);
    if (s == NEP_OK) s = nep_mmlu_load_split(path, "test", NULL, &mc, &err);
    if (s == NEP_OK && !(order = malloc(sizeof *order * (size_t)train.n + 1))) s = nep_fail(&err, NEP_ERR_NOMEM, "out of memory");
    if (s == NEP_OK) { /* lm-prune's draw */
        nep_rng rng;
        nep_rng_seed(&rng, (uint64_t)seed);
        for (int64_t i = 0; i < train.n; i++) order[i] = (uint32_t)i;
        nep_rng_shuffle_u32(&rng, order, (size_t)train.n);
        s = nep_lm_rows_as_text(&train, order, calib_seqs < train.n ? calib_seqs : train.n, &calib, &err);
    }
    const nep_split split = {.text = &calib, .decoder = true};
    if (s == NEP_OK) s = nep_entropy_init(&e, &g, false, &err);
    if (s == NEP_OK && always_off) s = nep_entropy_measure_split(&e, &g, &split, batch, 0, &xo, &err);
    if (s == NEP_OK && always_off && mean) {
        means = calloc((size_t)e.n_layers + 1, sizeof *means);
        s = means ? nep_swiglu_mean_outputs(&g, &e, &split, batch, means, &xo, &err)
                  : nep_fail(&err, NEP_ERR_NOMEM, "out of memory");
    }
    nep_swiglu_report r;
    if (s == NEP_OK) s = nep_swiglu_shrink(&g, &e, always_off, means, &shrunk, &r, &err);
    if (s != NEP_OK) {
        cli_error("lm-collapse", &err);
        goto done;
    }
    const int64_t n_mc = max_questions && max_questions < mc.n ? max_questions : mc.n;
    lc_stats before, after;
    if (measure("before", &g, tok, eos, &held, &mc, n_mc, &calib, batch, &xo, &before) ||
        measure("after", &shrunk, tok, eos, &held, &mc, n_mc, &calib, batch, &xo, &after))
        goto done;
    /* latency: the two models in alternating rounds, so that both see the same noise */
    double lat[2][ROUNDS];
    for (int k = 0; s == NEP_OK && k < ROUNDS; k++) {
        s = latency(&g, &calib, 20, &lat[0][k], &xo, &err);
        if (s == NEP_OK) s = latency(&shrunk, &calib, 20, &lat[1][k], &xo, &err);
    }
    if (s != NEP_OK) {
        cli_error("lm-collapse", &err);
        goto done;
    }
    before.latency = nep_median(lat[0], ROUNDS), after.latency = nep_median(lat[1], ROUNDS);
    nep_model_spec spec = nep_model_spec_default();
    snprintf(spec.name, sizeof spec.name, "llama");
    spec.in_c = spec.in_h = 1, spec.in_w = (int)seq_len, spec.n_hidden = 0, spec.act = NEP_OP_SILU, spec.collapsed = true;
    if (nep_checkpoint_save(out, &shrunk, &spec, NULL, NULL, NULL, 0, &err) != NEP_OK ||
        (onnx && nep_onnx_export(&shrunk, NULL, onnx, &err) != NEP_OK)) {
        cli_error("lm-collapse", &err);
        goto done;
    }
    fprintf(human, "SwiGLU features: %lld of %lld kept (%lld dropped exactly: gate row zero; %lld always OFF, "
            "approximately); %d of %d MLPs removed (%d replaced by their mean output)\n", (long long)r.kept,
            (long long)r.features, (long long)r.dropped_exact, (long long)r.dropped_off, r.mlps_removed, r.mlps,
            r.mlps_mean);
    fprintf(human, "%-30s %12s %12s\n%-30s %12lld %12lld\n%-30s %12.2f %12.2f\n%-30s %12.3f %12.3f\n"
            "%-30s %12.3f %12.3f\n%-30s %12.2f %12.2f\n%-30s %12.2f %12.2f\nwrote %s%s%s\n", "", "before", "after",
            "parameters", (long long)before.params, (long long)after.params, "MFLOPs per token",
            (double)before.flops / 1e6, (double)after.flops / 1e6, "latency batch 1 (ms)", 1e3 * before.latency,
            1e3 * after.latency, "held-out perplexity", before.ppl, after.ppl, "multiple choice acc (%)", before.acc,
            after.acc, "multiple choice acc_norm (%)", before.acc_norm, after.acc_norm, out, onnx ? " and " : "",
            onnx ? onnx : "");
    if (json)
        printf("{\"features\":%lld,\"kept\":%lld,\"dropped_exact\":%lld,\"dropped_off\":%lld,\"mlps\":%d,"
               "\"mlps_removed\":%d,\"mlps_mean\":%d,\"params\":[%lld,%lld],\"flops_per_token\":[%lld,%lld],\"latency_ms\":[%.4f,%.4f],"
               "\"ppl\":[%.4f,%.4f],\"mc_acc\":[%.4f,%.4f],\"mc_acc_norm\":[%.4f,%.4f],\"out\":\"%s\"}\n",
               (long long)r.features, (long long)r.kept, (long long)r.dropped_exact, (long long)r.dropped_off, r.mlps,
               r.mlps_removed, r.mlps_mean, (long long)before.params, (long long)after.params, (long long)before.flops,
               (long long)after.flops, 1e3 * before.latency, 1e3 * after.latency, before.ppl, after.ppl, before.acc,
               after.acc, before.acc_norm, after.acc_norm, out);
    rc = 0;
done:
    for (int l = 0; means && l < e.n_layers; l++) free(means[l]);
    free(means);
    free(order);
    if (e.layers) nep_entropy_free(&e);
    nep_mmlu_set_free(&mc);
    nep_text_tensors_free(&calib);
    nep_lm_rows_free(&train), nep_lm_rows_free(&held);
    nep_tokenizer_free(tok);
    nep_graph_free(&g), nep_graph_free(&shrunk);
    nep_hf_config_free(&cfg);
    return rc;
}
