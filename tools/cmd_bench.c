/* nepenthe bench: times training steps and inference on random data, of a model the
 * options describe, of a checkpoint (--ckpt: a collapsed model too) or of a Hugging Face
 * text classifier folder (--hf: fine-tuning with AdamW on full sequences of random
 * tokens). Medians over steps after warm-up, so that one slow step on a shared machine
 * does not move them. --save writes the model timed, so that collapse, export and the
 * peers (bench/ort_peer.py) time the same weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nepenthe/checkpoint.h"
#include "nepenthe/collapse.h"
#include "nepenthe/report.h"
#include "ops/ops.h"

/* Median seconds of one inference call at batch b on the graph's n_in input tensors x;
 * with prof, each node's forward seconds summed over the calls. */
static int time_inference(nep_graph *g, int64_t b, int64_t calls, const void *const *x, int n_in,
                          const nep_exec_opts *xo, double *prof, double *out) {
    nep_exec *ex;
    nep_err err;
    const nep_real *y;
    nep_exec_opts o = *xo;
    o.inference = o.frozen_weights = true; /* served: buffers shared as under torch.no_grad(), weights prepacked */
    if (nep_exec_new(&ex, g, b, &o, &err) != NEP_OK) return cli_error("bench", &err);
    double *t = malloc(sizeof(double) * (size_t)calls);
    nep_status s = NEP_OK;
    for (int64_t i = 0; s == NEP_OK && i < 5; i++) s = nep_exec_run(ex, x, n_in, b, &y, &err);
    nep_exec_set_profile(ex, prof);
    for (int64_t i = 0; s == NEP_OK && i < calls; i++) {
        double t0 = nep_now();
        s = nep_exec_run(ex, x, n_in, b, &y, &err);
        t[i] = nep_now() - t0;
    }
    if (s == NEP_OK) *out = nep_median(t, calls);
    free(t);
    nep_exec_free(ex);
    return s == NEP_OK ? 0 : cli_error("bench", &err);
}

/* The random batch of a text classifier: ids in [1000, vocab) (past BERT's special
 * tokens), token type 0, no padding. */
typedef struct text_batch {
    int32_t *ids, *types;
    nep_real *mask;
} text_batch;
static void text_batch_fill(text_batch *tb, int64_t n, int64_t vocab, nep_rng *rng) {
    for (int64_t i = 0; i < n; i++) {
        tb->ids[i] = (int32_t)(1000 + nep_rng_below(rng, (uint64_t)(vocab - 1000)));
        tb->types[i] = 0;
        tb->mask[i] = 1;
    }
}

/* Per op kind: milliseconds per step in forward, backward and the optimizer update, and
 * their share of the median step; from the executor's per-node profile over `steps`. */
static void print_profile(const nep_graph *g, const double *prof, int64_t steps, int64_t batch, double step_s) {
    double ms[NEP_OP_COUNT][3] = {{0}};
    int nodes[NEP_OP_COUNT] = {0};
    for (int k = 0; k < g->n_order; k++) {
        int id = g->order[k];
        nodes[g->nodes[id].op]++;
        for (int c = 0; c < 3; c++) ms[g->nodes[id].op][c] += 1e3 * prof[3 * id + c] / (double)steps;
    }
    printf("%-18s %5s %9s %9s %9s %7s\n", "op", "nodes", "fwd ms", "bwd ms", "update ms", "share");
    double total = 0;
    for (int op = 0; op < NEP_OP_COUNT; op++) {
        double sum = ms[op][0] + ms[op][1] + ms[op][2];
        total += sum;
        if (nodes[op])
            printf("%-18s %5d %9.2f %9.2f %9.2f %6.1f%%\n", nep_op(op)->name, nodes[op], ms[op][0],
                   ms[op][1], ms[op][2], 100 * sum / (1e3 * step_s));
    }
    printf("%-18s %5s %29.2f %6.1f%% (the rest: loss, zeroing, bookkeeping)\n", "all ops", "", total,
           100 * total / (1e3 * step_s));
    /* The GEMM-like nodes one by one, against the sgemm peak bench/run.sh measures: the
     * backward does twice the forward's FLOPs (input and weight gradients). */
    printf("%-28s %-16s %9s %9s %9s %9s\n", "conv / linear node", "output", "fwd ms", "fwd GF/s", "bwd ms", "bwd GF/s");
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        if (n->op != NEP_OP_CONV2D && n->op != NEP_OP_LINEAR) continue;
        const double f = (double)nep_node_flops(g, n) * (double)batch;
        const double fwd = 1e3 * prof[3 * g->order[k]] / (double)steps, bwd = 1e3 * prof[3 * g->order[k] + 1] / (double)steps;
        char shape[32];
        cli_shape_str(shape, sizeof shape, &n->shape);
        printf("%-28s %-16s %9.3f %9.1f %9.3f %9.1f\n", n->name, shape, fwd, fwd > 0 ? f / fwd * 1e-6 : 0, bwd,
               bwd > 0 ? 2 * f / bwd * 1e-6 : 0);
    }
}

int cmd_bench(int argc, char **argv) {
    model_opts m;
    model_opts_default(&m);
    int64_t batch = 128, steps = 50, warmup = 5, threads = 0, seed = 0, max_length = 128;
    bool json = false, profile = false;
    const char *backend = "cpu", *hf = NULL, *ckpt = NULL, *save = NULL;
    cli_opt opts[CLI_MAX_OPTS];
    int n = 0;
    model_opts_table(&m, opts, &n);
    opts[n++] = (cli_opt){"hf", OPT_STR, &hf, "a Hugging Face BERT or RoBERTa folder instead of the model "
                                              "options: its classifier (2 classes) fine-tuned with AdamW"};
    opts[n++] = (cli_opt){"max-length", OPT_INT, &max_length, "--hf: tokens per sequence"};
    opts[n++] = (cli_opt){"ckpt", OPT_STR, &ckpt, "a checkpoint's model (dense, pruned or collapsed) instead of the "
                                                  "model options"};
    opts[n++] = (cli_opt){"save", OPT_STR, &save, "write the model timed, after its training steps, as a checkpoint "
                                                  "(for collapse and export)"};
    opts[n++] = (cli_opt){"batch", OPT_INT, &batch, "batch size"};
    opts[n++] = (cli_opt){"steps", OPT_INT, &steps, "timed steps"};
    opts[n++] = (cli_opt){"warmup", OPT_INT, &warmup, "untimed steps first"};
    opts[n++] = (cli_opt)THREADS_OPT(&threads);
    opts[n++] = (cli_opt)BACKEND_OPT(&backend);
    opts[n++] = (cli_opt){"seed", OPT_INT, &seed, "seed of weights and data"};
    opts[n++] = (cli_opt){"profile", OPT_FLAG, &profile, "time each op kind's forward, backward and update"};
    opts[n++] = (cli_opt){"json", OPT_FLAG, &json, "end with one JSON line on stdout"};
    opts[n++] = (cli_opt)OPT_END;
    int rc = cli_parse("bench", "[model options] [--batch B --steps S] [--profile] [--json]", opts,
                       argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (batch < 1 || steps < 1 || warmup < 0)
        return cli_errorf("bench", "--batch and --steps must be positive, --warmup non-negative") + 1;
    nep_model_spec spec;
    nep_exec_opts xo;
    if (hf && ckpt) return cli_errorf("bench", "--hf and --ckpt: one model at a time") + 1;
    if ((!hf && !ckpt && model_opts_spec("bench", &m, &spec)) || cli_exec_opts("bench", backend, &xo)) return 2;
    if (hf && max_length < 2) return cli_errorf("bench", "--max-length must be at least 2") + 1;
    cli_set_threads(threads);

    nep_rng rng;
    nep_rng_seed(&rng, (uint64_t)seed);
    nep_graph g, served = {0};
    nep_trainer t;
    nep_err err;
    nep_optim_cfg cfg = nep_optim_defaults(hf ? NEP_OPTIM_ADAMW : NEP_OPTIM_SGD);
    cfg.lr = hf ? 2e-5 : 1e-3; /* small enough that random labels do not blow the weights up */
    text_batch tb = {0};
    char name[64];
    if (hf) { /* the classifier with the folder's weights, a new head of 2 classes */
        nep_hf_config hc;
        nep_tokenizer *tok;
        nep_text_load_report rep;
        if (cli_text_model_open("bench", hf, max_length, 2, NULL, &rng, false, &hc, &g, &tok, &rep, NULL)) return 1;
        snprintf(name, sizeof name, "%s-L%lld-H%lld", nep_hf_model_type_name(hc.model_type),
                 (long long)hc.num_hidden_layers, (long long)hc.hidden_size);
        nep_tokenizer_free(tok);
        spec.classes = 2;
        const int64_t vocab = hc.vocab_size;
        nep_hf_config_free(&hc);
        tb = (text_batch){malloc(sizeof(int32_t) * (size_t)(batch * max_length)),
                          malloc(sizeof(int32_t) * (size_t)(batch * max_length)),
                          malloc(sizeof(nep_real) * (size_t)(batch * max_length))};
        if (!tb.ids || !tb.types || !tb.mask || vocab <= 1000) {
            free(tb.ids), free(tb.types), free(tb.mask);
            nep_graph_free(&g);
            return cli_errorf("bench", "%s: out of memory, or a vocabulary of at most 1000 tokens", hf);
        }
        text_batch_fill(&tb, batch * max_length, vocab, &rng);
    } else if (ckpt) {
        nep_normalize unused;
        if (nep_checkpoint_load(ckpt, &g, &spec, &unused, NULL, &err) != NEP_OK) return cli_error("bench", &err);
        snprintf(name, sizeof name, "%s", spec.name);
    } else {
        snprintf(name, sizeof name, "%s", spec.name);
        if (nep_model_build(&spec, &g, &rng, &err) != NEP_OK) return cli_error("bench", &err);
    }
    if (nep_trainer_init(&t, &g, &cfg, batch, &xo, &err) != NEP_OK) {
        nep_graph_free(&g);
        free(tb.ids), free(tb.types), free(tb.mask);
        return cli_error("bench", &err);
    }
    if (!hf)
        for (int64_t i = 0; i < batch * (int64_t)spec.in_c * spec.in_h * spec.in_w; i++)
            t.x[i] = (nep_real)nep_rng_normal(&rng);
    for (int64_t b = 0; b < batch; b++) t.y[b] = (int32_t)nep_rng_below(&rng, (uint64_t)spec.classes);
    const void *x_text[3] = {tb.ids, tb.types, tb.mask}, *x_image[1] = {t.x};
    const void *const *x = hf ? x_text : x_image;
    const int n_in = hf ? 3 : 1;

    double *times = malloc(sizeof(double) * (size_t)steps), loss;
    double *prof = profile ? calloc(3 * (size_t)g.n_nodes, sizeof(double)) : NULL;
    rc = 1;
    for (int64_t i = 0; i < warmup + steps; i++) {
        if (i == warmup) nep_exec_set_profile(t.ex, prof); /* a NULL profile times nothing */
        double t0 = nep_now();
        if (nep_train_step_inputs(&t, x, n_in, batch, cfg.lr, &rng, &loss, NULL, &err) != NEP_OK) {
            cli_error("bench", &err);
            goto done;
        }
        if (i >= warmup) times[i - warmup] = nep_now() - t0;
    }
    nep_exec_set_profile(t.ex, NULL);
    double step_s = nep_median(times, steps), infer1_s, inferb_s;
    if (prof) print_profile(&g, prof, steps, batch, step_s);
    if (save) {
        nep_normalize norm = {.c = spec.in_c};
        for (int c = 0; c < spec.in_c && c < NEP_MAX_CHANNELS; c++) norm.std[c] = 1;
        if (nep_checkpoint_save(save, &g, &spec, hf ? NULL : &norm, NULL, NULL, 0, &err) != NEP_OK) {
            cli_error("bench", &err);
            goto done;
        }
    }
    int64_t calls = steps > 50 ? steps : 50;
    /* Inference as a deployment runs it: the graph `collapse` writes with nothing to
     * remove (BatchNorm folded into the conv before it, identities gone), which is also
     * what ONNX Runtime does to the exported model when it loads it. Text models as they are. */
    nep_collapse_info info = {0};
    if (!hf && nep_collapse_rewrite(&g, NULL, NULL, &served, &info, &err) != NEP_OK) {
        cli_error("bench", &err);
        goto done;
    }
    nep_graph *run = hf ? &g : &served;
    for (int pass = 0; prof && pass < 2; pass++) {
        const int64_t b = pass ? batch : 1, k = pass ? steps : calls;
        double *rprof = calloc(3 * (size_t)run->n_nodes, sizeof *rprof);
        if (!rprof || time_inference(run, b, k, x, n_in, &xo, rprof, pass ? &inferb_s : &infer1_s)) {
            free(rprof);
            goto done;
        }
        printf("\ninference at batch %lld (%d BatchNorms folded):\n", (long long)b, info.bn_folded);
        print_profile(run, rprof, k, b, pass ? inferb_s : infer1_s);
        free(rprof);
    }
    if (time_inference(run, 1, calls, x, n_in, &xo, NULL, &infer1_s) ||
        time_inference(run, batch, steps, x, n_in, &xo, NULL, &inferb_s))
        goto done;
    int64_t flops = 0;
    for (int k = 0; k < g.n_order; k++) flops += nep_node_flops(&g, &g.nodes[g.order[k]]);
    /* Training costs about three forward passes (forward, input and weight gradients). */
    double train_ips = (double)batch / step_s, gflops = 3.0 * (double)flops * train_ips / 1e9;
    const char *unit = hf ? "seq" : "img";
    printf("%s batch %lld: train %.1f %s/s (%.2f ms/step, ~%.0f GFLOP/s); inference %.3f ms at "
           "batch 1, %.1f %s/s at batch %lld\n", name, (long long)batch, train_ips, unit, 1e3 * step_s,
           gflops, 1e3 * infer1_s, (double)batch / inferb_s, unit, (long long)batch);
    if (json)
        printf("{\"impl\":\"nepenthe\",\"model\":\"%s\",\"batch\":%lld,\"train_img_per_s\":%.1f,"
               "\"train_ms_median\":%.3f,\"train_gflops\":%.1f,\"infer_ms_batch1\":%.4f,"
               "\"infer_img_per_s\":%.1f,\"params\":%lld,\"forward_flops\":%lld}\n",
               name, (long long)batch, train_ips, 1e3 * step_s, gflops, 1e3 * infer1_s,
               (double)batch / inferb_s, (long long)nep_graph_param_count(&g), (long long)flops);
    rc = 0;
done:
    free(times);
    free(prof);
    nep_trainer_free(&t);
    nep_graph_free(&g);
    nep_graph_free(&served);
    free(tb.ids), free(tb.types), free(tb.mask);
    return rc;
}
