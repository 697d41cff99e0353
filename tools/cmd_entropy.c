/* nepenthe entropy: per rectifier layer, the activation-state entropy and how many
 * neurons are always ON, always OFF (OFF+) or mixed (SPEC sections 1-2), of a checkpoint
 * on images or of a Hugging Face text classifier folder on a text task (every real token
 * one observation, padding never counted). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/checkpoint.h"
#include "nepenthe/entropy.h"

/* {"name", "neurons", "entropy", "always_on", "always_off", "always_off_plus", "mixed",
 *  "neuron_entropy": [...], "counts": [[on, off(, off_plus)], ...]} */
cJSON *cli_layer_json(const nep_graph *g, const nep_layer_states *l, double entropy, bool detail) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", g->nodes[l->node].name);
    cJSON_AddNumberToObject(o, "neurons", (double)l->neurons);
    cJSON_AddNumberToObject(o, "entropy", entropy);
    cJSON_AddNumberToObject(o, "always_on", (double)nep_layer_count_always(l, NEP_STATE_ON));
    cJSON_AddNumberToObject(o, "always_off", (double)nep_layer_count_always(l, NEP_STATE_OFF));
    cJSON_AddNumberToObject(o, "always_off_plus",
                            l->states == 3 ? (double)nep_layer_count_always(l, NEP_STATE_OFF_PLUS) : 0);
    cJSON_AddNumberToObject(o, "mixed", (double)nep_layer_count_mixed(l));
    if (!detail) return o;
    cJSON *hn = cJSON_AddArrayToObject(o, "neuron_entropy"), *counts = cJSON_AddArrayToObject(o, "counts");
    for (int64_t i = 0; i < l->neurons; i++) {
        const uint64_t *c = l->counts + i * l->states;
        cJSON_AddItemToArray(hn, cJSON_CreateNumber(nep_neuron_entropy(c, l->states)));
        cJSON *ci = cJSON_CreateArray();
        for (int k = 0; k < l->states; k++) cJSON_AddItemToArray(ci, cJSON_CreateNumber((double)c[k]));
        cJSON_AddItemToArray(counts, ci);
    }
    return o;
}

/* The counts of a text classifier folder over a task's split. */
static int measure_text(const char *dir, const char *task, const char *data_dir, const char *split,
                        int64_t max_length, int64_t batch, int64_t max_batches, bool zero_is_off,
                        const nep_exec_opts *xo, const nep_comm *comm, nep_graph *g, nep_entropy *e) {
    nep_hf_config cfg;
    nep_tokenizer *tok;
    nep_text_load_report rep;
    nep_text_dataset d = {0};
    nep_text_tensors t = {0};
    nep_err err;
    if (!data_dir) return cli_errorf("entropy", "--data-dir: a text model needs the directory of the task's TSV files");
    if (cli_text_model_open("entropy", dir, max_length, 0, NULL, NULL, true, &cfg, g, &tok, &rep, NULL)) return 1;
    int rc = cli_text_split("entropy", task, data_dir, strcmp(split, "val") ? split : "dev", tok, max_length, 0, &d, &t);
    cli_progress prog = {.tty = isatty(2), .label = "activation states", .unit = "seq/s"};
    if (!rc && nep_entropy_init(e, g, zero_is_off, &err) == NEP_OK) {
        if (nep_comm_rank(comm) == 0) e->progress = cli_progress_cb, e->progress_ctx = &prog;
        const nep_split split_t = {.text = &t, .comm = comm};
        if (nep_entropy_measure_split(e, g, &split_t, batch ? batch : nep_split_pass_batch(&split_t), max_batches, xo, &err) != NEP_OK)
            rc = cli_error("entropy", &err);
        cli_progress_end(&prog);
    } else if (!rc) {
        rc = cli_error("entropy", &err);
    }
    nep_text_tensors_free(&t);
    nep_text_dataset_free(&d);
    nep_tokenizer_free(tok);
    nep_hf_config_free(&cfg);
    return rc;
}

int cmd_entropy(int argc, char **argv) { return cli_entropy(argc, argv, NULL); }

int cli_entropy(int argc, char **argv, const nep_comm *comm) {
    const char *ckpt = NULL, *split = "train", *task = "fortunes";
    cli_data_opts data = CLI_DATA_DEFAULT;
    int64_t batch = 0, max_batches = 0, threads = 0, max_length = 128;
    bool json = false, zero_is_off = false;
    const char *backend = "cpu";
    cli_opt opts[] = {
        {"ckpt", OPT_STR, &ckpt, "checkpoint (.safetensors), or a Hugging Face text classifier folder "
                                 "(nepenthe finetune's OUT/model) (required)"},
        DATA_OPTS(&data),
        {"task", OPT_STR, &task, "text models: the task of --data-dir's TSV files: " NEP_GLUE_TASKS},
        {"max-length", OPT_INT, &max_length, "text models: tokens per sequence"},
        {"split", OPT_STR, &split, "train, val or test (train/val: the split recorded at training; text: "
                                   "train, dev (val) or test)"},
        {"batch", OPT_INT, &batch, "batch size (0: 256 images, 32 texts)"},
        {"max-batches", OPT_INT, &max_batches, "count over at most this many batches (0: all)"},
        {"zero-is-off", OPT_FLAG, &zero_is_off, "count z == 0 as OFF instead of don't-care"},
        THREADS_OPT(&threads),
        BACKEND_OPT(&backend),
        {"json", OPT_FLAG, &json, "one JSON object on stdout (with per-neuron entropies and counts)"},
        OPT_END,
    };
    int rc = cli_parse("entropy", "--ckpt FILE [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!ckpt) return cli_errorf("entropy", "--ckpt FILE is required") + 1;
    if (batch < 0 || max_batches < 0)
        return cli_errorf("entropy", "--batch and --max-batches must be non-negative") + 1;
    cli_set_threads(threads);
    nep_exec_opts xo;
    if (cli_exec_opts("entropy", backend, &xo)) return 2;
    nep_graph g = {0};
    nep_model_spec spec;
    nep_normalize norm;
    nep_safetensors meta = {0};
    nep_entropy e = {0};
    cli_data d = {0};
    nep_err err;
    double t0 = nep_now();
    rc = 1;
    if (cli_is_hf_folder(ckpt)) {
        if (measure_text(ckpt, task, data.dir, split, max_length, batch, max_batches, zero_is_off, &xo, comm, &g, &e)) goto done;
        goto report;
    }
    if (nep_checkpoint_load(ckpt, &g, &spec, &norm, &meta, &err) != NEP_OK) return cli_error("entropy", &err);
    const nep_dataset *use;
    if (cli_load_splits("entropy", ckpt, &meta, &spec, &norm, &data, &d) || !(use = cli_split("entropy", &d, split)))
        goto done;
    if (use->n == 0) {
        cli_errorf("entropy", "--split %s: %s holds no images (trained with --val 0?)", split, ckpt);
        goto done;
    }
    cli_progress prog = {.tty = isatty(2), .label = "activation states"};
    nep_status s = nep_entropy_init(&e, &g, zero_is_off, &err);
    if (s == NEP_OK) {
        const nep_split sp = {.images = use, .norm = &norm, .comm = comm};
        if (nep_comm_rank(comm) == 0) e.progress = cli_progress_cb, e.progress_ctx = &prog;
        s = nep_entropy_measure_split(&e, &g, &sp, batch ? batch : nep_split_pass_batch(&sp), max_batches, &xo, &err);
        cli_progress_end(&prog);
    }
    if (s != NEP_OK) {
        cli_error("entropy", &err);
        goto done;
    }
report:;
    if (nep_comm_rank(comm) != 0) { /* rank 0 reports the counts every rank now holds */
        rc = 0;
        goto done;
    }
    double secs = nep_now() - t0;
    int removed = 0;
    cJSON *root = cJSON_CreateObject(), *layers = cJSON_AddArrayToObject(root, "layers");
    int width = 16; /* the name column fits the longest layer name */
    for (int i = 0; i < e.n_layers; i++) {
        int len = (int)strlen(g.nodes[e.layers[i].node].name);
        if (len > width) width = len;
    }
    if (!json)
        printf("%-*s %8s %9s %10s %10s %10s %10s\n", width, "layer", "neurons", "H_l", "always ON",
               "always OFF", "OFF+", "mixed");
    for (int i = 0; i < e.n_layers; i++) {
        const nep_layer_states *l = &e.layers[i];
        double h = nep_layer_entropy(l, false);
        removed += h == 0;
        if (json) {
            cJSON_AddItemToArray(layers, cli_layer_json(&g, l, h, true));
        } else {
            printf("%-*s %8lld %9.4f %10lld %10lld %10lld %10lld\n", width, g.nodes[l->node].name,
                   (long long)l->neurons, h, (long long)nep_layer_count_always(l, NEP_STATE_ON),
                   (long long)nep_layer_count_always(l, NEP_STATE_OFF),
                   l->states == 3 ? (long long)nep_layer_count_always(l, NEP_STATE_OFF_PLUS) : 0LL,
                   (long long)nep_layer_count_mixed(l));
        }
    }
    if (json) {
        cJSON_AddNumberToObject(root, "removed", removed);
        cJSON_AddNumberToObject(root, "samples", (double)e.samples);
        cJSON_AddNumberToObject(root, "seconds", secs);
        char *txt = cJSON_PrintUnformatted(root);
        printf("%s\n", txt);
        cJSON_free(txt);
    } else {
        printf("%d of %d layers have zero entropy (removable); %lld %s samples in %.2fs (%.0f/s)\n",
               removed, e.n_layers, (long long)e.samples, split, secs, secs > 0 ? (double)e.samples / secs : 0);
    }
    cJSON_Delete(root);
    rc = 0;
done:
    nep_entropy_free(&e);
    nep_graph_free(&g);
    nep_st_free(&meta);
    cli_data_free(&d);
    return rc;
}
