/* nepenthe eval and nepenthe info: read a checkpoint (or a Hugging Face text classifier
 * folder, its pruning masks applied); report accuracy or its layers. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/checkpoint.h"
#include "nepenthe/entropy.h"
#include "nepenthe/prune.h"
#include "ops/ops.h"

/* A text classifier folder (its masks applied), for sequences of max_length tokens; the
 * tokenizer into *tok when tok is not NULL. */
static int open_text(const char *cmd, const char *dir, int64_t max_length, nep_hf_config *cfg, nep_graph *g,
                     nep_tokenizer **tok) {
    nep_text_load_report rep;
    nep_tokenizer *t;
    if (cli_text_model_open(cmd, dir, max_length, 0, NULL, NULL, true, cfg, g, &t, &rep, NULL)) return 1;
    if (tok) *tok = t;
    else nep_tokenizer_free(t);
    return 0;
}

/* eval of a text classifier folder on a task's split (val: dev). */
static int eval_text(const char *ckpt, const char *task, const char *dir, const char *split, int64_t max_length,
                     int64_t batch, bool json, const nep_exec_opts *xo) {
    nep_hf_config cfg;
    nep_graph g;
    nep_tokenizer *tok;
    nep_text_dataset d = {0};
    nep_text_tensors t = {0};
    nep_err err;
    const char *file = strcmp(split, "val") ? split : "dev";
    if (!dir) return cli_errorf("eval", "--data-dir: a text model needs the directory of the task's TSV files");
    if (open_text("eval", ckpt, max_length, &cfg, &g, &tok)) return 1;
    int rc = cli_text_split("eval", task, dir, file, tok, max_length, 0, &d, &t);
    double top1, loss, t0 = nep_now();
    if (!batch) batch = nep_split_pass_batch(&(nep_split){.text = &t});
    if (!rc && nep_text_evaluate(&g, &t, batch, &top1, &loss, xo, &err) != NEP_OK) rc = cli_error("eval", &err);
    if (!rc) {
        const double secs = nep_now() - t0;
        printf("%s on %s %s (%lld sequences): top-1 %.2f%%  loss %.4f  %.2fs\n", ckpt, task, file, (long long)t.n,
               top1, loss, secs);
        if (json)
            printf("{\"%s_top1\":%.4f,\"loss\":%.6f,\"sequences\":%lld,\"seconds\":%.3f}\n", split, top1, loss,
                   (long long)t.n, secs);
    }
    nep_text_tensors_free(&t);
    nep_text_dataset_free(&d);
    nep_tokenizer_free(tok);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *split = "test", *task = "fortunes";
    cli_data_opts data = CLI_DATA_DEFAULT;
    int64_t batch = 0, threads = 0, max_length = 128;
    bool json = false;
    const char *backend = "cpu";
    cli_opt opts[] = {
        {"ckpt", OPT_STR, &ckpt, "checkpoint (.safetensors), or a text classifier folder (required)"},
        DATA_OPTS(&data),
        {"task", OPT_STR, &task, "text models: the task of --data-dir's TSV files: " NEP_GLUE_TASKS},
        {"max-length", OPT_INT, &max_length, "text models: tokens per sequence"},
        {"split", OPT_STR, &split, "test, val or train (val/train: the split recorded at training; text: "
                                   "the task's test, dev or train file)"},
        {"batch", OPT_INT, &batch, "batch size (0: 256 images, 32 texts)"},
        THREADS_OPT(&threads),
        BACKEND_OPT(&backend),
        {"json", OPT_FLAG, &json, "end with one JSON line on stdout"},
        OPT_END,
    };
    int rc = cli_parse("eval", "--ckpt FILE [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!ckpt) return cli_errorf("eval", "--ckpt FILE is required") + 1;
    if (strcmp(split, "test") && strcmp(split, "val") && strcmp(split, "train"))
        return cli_errorf("eval", "--split: '%s' is not test, val or train", split) + 1;
    if (batch < 0 || max_length < 2) return cli_errorf("eval", "--batch must be non-negative, --max-length at least 2") + 1;
    cli_set_threads(threads);
    nep_exec_opts xo;
    if (cli_exec_opts("eval", backend, &xo)) return 2;
    if (cli_is_hf_folder(ckpt)) return eval_text(ckpt, task, data.dir, split, max_length, batch, json, &xo);
    nep_graph g;
    nep_model_spec spec;
    nep_normalize norm;
    nep_safetensors meta = {0};
    cli_data d;
    nep_err err;
    if (nep_checkpoint_load(ckpt, &g, &spec, &norm, &meta, &err) != NEP_OK) return cli_error("eval", &err);
    rc = 1;
    if (cli_load_splits("eval", ckpt, &meta, &spec, &norm, &data, &d)) goto done;
    const nep_dataset *use = cli_split("eval", &d, split);
    double top1, loss;
    double t0 = nep_now();
    if (nep_evaluate(&g, use, &norm, batch ? batch : nep_split_pass_batch(&(nep_split){use, &norm, NULL}), &top1, &loss, &xo, &err) != NEP_OK) {
        cli_error("eval", &err);
        goto done;
    }
    double secs = nep_now() - t0;
    printf("%s on %s %s (%lld images): top-1 %.2f%%  loss %.4f  %.2fs\n", ckpt, data.name, split,
           (long long)use->n, top1, loss, secs);
    if (json)
        printf("{\"%s_top1\":%.4f,\"loss\":%.6f,\"images\":%lld,\"seconds\":%.3f}\n", split, top1,
               loss, (long long)use->n, secs);
    rc = 0;
done:
    nep_graph_free(&g);
    nep_st_free(&meta);
    cli_data_free(&d);
    return rc;
}
/* What pruning may touch (SPEC section 1): the weight of each rectifier layer's owner, and
 * nothing else; into JSON (an array of owner names) or as two lines of text. */
static void report_prunable(const nep_graph *g, cJSON *root) {
    nep_entropy e;
    nep_err err;
    if (nep_entropy_init(&e, g, false, &err) != NEP_OK) return;
    cJSON *names = root ? cJSON_AddArrayToObject(root, "prunable") : NULL;
    int n = 0;
    for (int i = 0; i < e.n_layers; i++) n += nep_layer_weight(g, &e.layers[i]) != NULL;
    if (!root) printf("prunable: the %d rectifier layers' owners' weights:", n);
    for (int i = 0, k = 0; i < e.n_layers; i++) {
        const nep_param *w = nep_layer_weight(g, &e.layers[i]);
        if (!w) continue;
        if (names) cJSON_AddItemToArray(names, cJSON_CreateString(g->nodes[e.layers[i].owner].name));
        else printf("%s %s", k++ ? "," : "", g->nodes[e.layers[i].owner].name);
    }
    if (!root)
        printf("\nnever pruned: every other parameter (attention, norms, embeddings, the head, "
               "shortcuts, biases)\n");
    nep_entropy_free(&e);
}

int cmd_info(int argc, char **argv) {
    const char *ckpt = NULL;
    bool json = false;
    int64_t max_length = 128;
    cli_opt opts[] = {
        {"ckpt", OPT_STR, &ckpt, "checkpoint (.safetensors), or a text classifier folder (required)"},
        {"max-length", OPT_INT, &max_length, "text models: tokens per sequence (the FLOPs are per sequence of them)"},
        {"json", OPT_FLAG, &json, "one JSON object on stdout instead of the table"},
        OPT_END,
    };
    int rc = cli_parse("info", "--ckpt FILE [--json]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!ckpt) return cli_errorf("info", "--ckpt FILE is required") + 1;
    nep_graph g;
    nep_model_spec spec;
    nep_normalize norm;
    nep_err err;
    if (max_length < 2) return cli_errorf("info", "--max-length must be at least 2") + 1;
    if (cli_is_hf_folder(ckpt)) {
        nep_hf_config cfg;
        if (open_text("info", ckpt, max_length, &cfg, &g, NULL)) return 1;
        nep_hf_config_free(&cfg);
    } else if (nep_checkpoint_load(ckpt, &g, &spec, &norm, NULL, &err) != NEP_OK) {
        return cli_error("info", &err);
    }
    cJSON *root = cJSON_CreateObject(), *layers = cJSON_AddArrayToObject(root, "layers");
    int nw = 16, ow = 10; /* columns fit the longest name and op */
    for (int k = 0; k < g.n_order; k++) {
        const nep_node *nd = &g.nodes[g.order[k]];
        if ((int)strlen(nd->name) > nw) nw = (int)strlen(nd->name);
        if ((int)strlen(nep_op(nd->op)->name) > ow) ow = (int)strlen(nep_op(nd->op)->name);
    }
    if (!json)
        printf("%-*s %-*s %-10s %12s %12s %10s %10s\n", nw, "name", ow, "op", "output", "params", "nonzero",
               "masked", "MFLOPs");
    int64_t tp = 0, tn = 0, tf = 0, tm = 0;
    for (int k = 0; k < g.n_order; k++) {
        const nep_node *nd = &g.nodes[g.order[k]];
        if (nd->op == NEP_OP_INPUT) continue;
        char shape[64];
        cli_shape_str(shape, sizeof shape, &nd->shape);
        int64_t p = nep_node_param_count(&g, nd), nz = nep_node_nonzero_count(&g, nd),
                f = nep_node_flops(&g, nd), masked = 0;
        for (int q = 0; q < nd->n_params; q++) {
            const nep_param *pa = &g.params[nd->params[q]];
            for (int64_t i = 0; i < pa->numel; i++) masked += !g.masks[pa->offset + i];
        }
        tm += masked;
        tp += p, tn += nz, tf += f;
        if (json) {
            cJSON *l = cJSON_CreateObject();
            cJSON_AddStringToObject(l, "name", nd->name);
            cJSON_AddStringToObject(l, "op", nep_op(nd->op)->name);
            cJSON_AddStringToObject(l, "output", shape);
            cJSON_AddNumberToObject(l, "params", (double)p);
            cJSON_AddNumberToObject(l, "nonzero", (double)nz);
            cJSON_AddNumberToObject(l, "masked", (double)masked);
            cJSON_AddNumberToObject(l, "flops", (double)f);
            cJSON_AddItemToArray(layers, l);
        } else {
            printf("%-*s %-*s %-10s %12lld %12lld %10lld %10.3f\n", nw, nd->name, ow, nep_op(nd->op)->name,
                   shape, (long long)p, (long long)nz, (long long)masked, (double)f / 1e6);
        }
    }
    if (json) {
        cJSON_AddNumberToObject(root, "params", (double)tp);
        cJSON_AddNumberToObject(root, "nonzero", (double)tn);
        cJSON_AddNumberToObject(root, "masked", (double)tm);
        cJSON_AddNumberToObject(root, "flops", (double)tf);
        report_prunable(&g, root);
        char *s = cJSON_PrintUnformatted(root);
        printf("%s\n", s);
        cJSON_free(s);
    } else {
        printf("%-*s %-*s %-10s %12lld %12lld %10lld %10.3f\n", nw, "total", ow, "", "", (long long)tp,
               (long long)tn, (long long)tm, (double)tf / 1e6);
        printf("sparsity %.2f%%  (per sample forward FLOPs, multiply-add = 2)\n",
               tp ? 100.0 * (double)(tp - tn) / (double)tp : 0);
        report_prunable(&g, NULL);
    }
    cJSON_Delete(root);
    nep_graph_free(&g);
    return 0;
}
