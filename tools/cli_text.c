/* Text models and text data on the command line: a Hugging Face folder (config.json,
 * weights, tokenizer) and a task's split, tokenized (cli.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "nepenthe/file.h"
#include "nepenthe/llama.h"

#include <cjson/cJSON.h>

bool cli_is_hf_folder(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* dir/masks.safetensors (none: nothing) into g: the masks, and the layers made the identity. */
static int read_masks(const char *cmd, const char *dir, nep_graph *g) {
    char path[4200], name[2 * NEP_NAME_LEN + 8];
    snprintf(path, sizeof path, "%s/masks.safetensors", dir);
    if (access(path, F_OK) != 0) return 0;
    nep_safetensors st = {0};
    nep_err err;
    if (nep_st_read(path, &st, &err) != NEP_OK) return cli_error(cmd, &err);
    int rc = 0, used = 0;
    for (int i = 0; !rc && i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        snprintf(name, sizeof name, "%s_mask", p->name);
        const nep_st_tensor *t = nep_st_find(&st, name);
        if (!t) continue;
        used++;
        if (p->bf16) continue; /* its file holds the masked values: nepenthe writes them so */
        if (t->dtype != NEP_DT_U8 || t->numel != p->numel) rc = cli_errorf(cmd, "%s: '%s' is not a U8 mask of %s's shape", path, name, p->name);
        for (int64_t k = 0; !rc && k < p->numel; k++) g->masks[p->offset + k] = ((const uint8_t *)t->data)[k] != 0;
    }
    if (!rc && used != st.n_tensors) rc = cli_errorf(cmd, "%s: %d tensor(s) are masks of no parameter", path, st.n_tensors - used);
    const char *ids = nep_st_meta_get(&st, "identity");
    cJSON *list = ids ? cJSON_Parse(ids) : NULL, *item;
    if (!rc && ids && !cJSON_IsArray(list)) rc = cli_errorf(cmd, "%s: 'identity' is not a list of layer names", path);
    cJSON *names = rc ? NULL : list;
    cJSON_ArrayForEach(item, names) {
        const int node = cJSON_IsString(item) ? nep_graph_find_node(g, item->valuestring) : -1;
        nep_err err2;
        if (node < 0) rc = cli_errorf(cmd, "%s: 'identity' names no layer of the model", path);
        else if (g->nodes[node].op != NEP_OP_IDENTITY && nep_graph_linearize(g, node, &err2) != NEP_OK) rc = cli_error(cmd, &err2);
        if (rc) break;
    }
    cJSON_Delete(list);
    if (!rc) nep_graph_apply_masks(g);
    nep_st_free(&st);
    return rc;
}

/* Whether folder dir has weights to read: a new model's folder (config.json and a
 * tokenizer) has none, unless they are required (then opening them says what is missing). */
static bool has_weights(const char *dir, bool required) {
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/model.safetensors", dir);
    snprintf(b, sizeof b, "%s/model.safetensors.index.json", dir);
    return required || access(a, F_OK) == 0 || access(b, F_OK) == 0;
}

int cli_text_model_open(const char *cmd, const char *dir, int64_t max_length, int n_labels,
                        const char *const *labels, nep_rng *rng, bool required, nep_hf_config *cfg,
                        nep_graph *g, nep_tokenizer **tok, nep_text_load_report *rep, nep_hf_weights **mapped) {
    nep_err err;
    nep_hf_weights *w = NULL;
    *tok = NULL;
    if (mapped) *mapped = NULL;
    memset(cfg, 0, sizeof *cfg);
    nep_graph_init(g);
    nep_status s = nep_hf_config_read(dir, cfg, &err);
    if (s == NEP_OK && n_labels > 0) {
        snprintf(cfg->architecture, sizeof cfg->architecture, "%s",
                 cfg->model_type == NEP_HF_ROBERTA ? "RobertaForSequenceClassification" : "BertForSequenceClassification");
        s = nep_hf_config_set_labels(cfg, n_labels, labels, &err);
    }
    const bool decoder = s == NEP_OK && cfg->model_type == NEP_HF_LLAMA;
    if (s == NEP_OK && decoder && n_labels > 0)
        s = nep_fail(&err, NEP_ERR_UNSUPPORTED, "%s: a Llama decoder has no sequence-classification head here", dir);
    *rep = (nep_text_load_report){0};
    if (s == NEP_OK && mapped && !decoder)
        s = nep_fail(&err, NEP_ERR_UNSUPPORTED, "%s: only a Llama decoder's weights are mapped", dir);
    if (s != NEP_OK || nep_tokenizer_open(dir, NULL, tok, &err) != NEP_OK ||
        (mapped ? nep_hf_weights_open(dir, &w, &err) != NEP_OK ||
                      nep_llama_build_mapped(cfg, max_length, w, g, rep, &err) != NEP_OK
                : (decoder ? nep_llama_build(cfg, max_length, g, rng, &err)
                           : nep_text_encoder_build(cfg, max_length, NEP_TEXT_HEAD_CLASSIFY, g, rng, &err)) != NEP_OK ||
                      (has_weights(dir, required) && (nep_hf_weights_open(dir, &w, &err) != NEP_OK ||
                                                      nep_text_encoder_load(g, w, required, rep, &err) != NEP_OK)))) {
        nep_hf_weights_close(w);
        nep_tokenizer_free(*tok);
        *tok = NULL;
        nep_graph_free(g);
        nep_hf_config_free(cfg);
        return cli_error(cmd, &err);
    }
    if (!mapped) nep_hf_weights_close(w), w = NULL;
    if (!read_masks(cmd, dir, g)) {
        if (mapped) *mapped = w;
        return 0;
    }
    nep_hf_weights_close(w);
    nep_tokenizer_free(*tok);
    *tok = NULL;
    nep_graph_free(g);
    nep_hf_config_free(cfg);
    return 1;
}

int cli_text_split(const char *cmd, const char *task, const char *dir, const char *split, const nep_tokenizer *tok,
                   int64_t max_length, int64_t max_rows, nep_text_dataset *d, nep_text_tensors *t) {
    nep_err err;
    if (nep_glue_load(dir, task, split, d, &err) != NEP_OK) return cli_error(cmd, &err);
    if (!t) return 0;
    nep_text_dataset rows = *d; /* max_rows: the first rows (d keeps them all, to free) */
    if (max_rows > 0 && max_rows < d->n) rows.n = max_rows;
    if (nep_text_tensors_build(tok, &rows, max_length, t, &err) != NEP_OK)
        return cli_errorf(cmd, "%s/%s.tsv: %s", dir, split, err.msg);
    return 0;
}

/* Copies the tokenizer's files (those of them the folder has) from one folder to another. */
static int copy_tokenizer(const char *cmd, const char *from, const char *to) {
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "vocab.txt", "vocab.json", "merges.txt"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char src[4200], dst[4200];
        if (snprintf(src, sizeof src, "%s/%s", from, files[i]) >= (int)sizeof src ||
            snprintf(dst, sizeof dst, "%s/%s", to, files[i]) >= (int)sizeof dst)
            return cli_errorf(cmd, "%s: path too long", to);
        if (access(src, F_OK) != 0) continue;
        char *data;
        size_t n;
        nep_err err;
        if (nep_read_file(src, (size_t)1 << 30, &data, &n, &err) != NEP_OK) return cli_error(cmd, &err);
        const nep_status s = nep_write_atomic_bytes(dst, data, n, &err);
        free(data);
        if (s != NEP_OK) return cli_error(cmd, &err);
    }
    return 0;
}

int cli_text_write_folder(const char *cmd, const char *dir, const nep_hf_config *cfg, const nep_graph *g,
                          const char *tokenizer_from) {
    nep_safetensors st = {0}, masks = {0};
    nep_err err;
    char path[4200], mask_name[2 * NEP_NAME_LEN + 8];
    if (nep_graph_check_resident(g, dir, &err) != NEP_OK) return cli_error(cmd, &err);
    if (cli_mkdirs(dir)) return cli_errorf(cmd, "cannot create directory %s", dir);
    /* the layers a structural baseline made the identity: the builder's act nodes, now Identity */
    cJSON *identity = cJSON_CreateArray();
    for (int k = 0; k < g->n_order; k++) {
        const nep_node *n = &g->nodes[g->order[k]];
        if (n->op == NEP_OP_IDENTITY && strstr(n->name, "intermediate_act_fn"))
            cJSON_AddItemToArray(identity, cJSON_CreateString(n->name));
    }
    char *ids = cJSON_PrintUnformatted(identity);
    nep_status s = cJSON_GetArraySize(identity) ? nep_st_meta_set(&masks, "identity", ids, &err) : NEP_OK;
    cJSON_Delete(identity);
    free(ids);
    for (int i = 0; s == NEP_OK && i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        s = nep_st_add(&st, p->name, NEP_DT_REAL, p->ndim, p->shape, g->values + p->offset, &err);
        bool pruned = false;
        for (int64_t k = 0; !pruned && k < p->numel; k++) pruned = !g->masks[p->offset + k];
        snprintf(mask_name, sizeof mask_name, "%s_mask", p->name);
        if (s == NEP_OK && pruned) s = nep_st_add(&masks, mask_name, NEP_DT_U8, p->ndim, p->shape, g->masks + p->offset, &err);
    }
    if (s == NEP_OK) s = nep_hf_weights_write(dir, &st, 0, &err);
    snprintf(path, sizeof path, "%s/masks.safetensors", dir);
    const bool any = masks.n_tensors || masks.n_meta;
    if (s == NEP_OK && any) s = nep_st_write(&masks, path, &err);
    if (s == NEP_OK && !any) remove(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (s == NEP_OK) s = nep_hf_config_write(cfg, path, &err);
    nep_st_free(&st), nep_st_free(&masks);
    if (s != NEP_OK) return cli_error(cmd, &err);
    return copy_tokenizer(cmd, tokenizer_from, dir);
}

