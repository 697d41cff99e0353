/* Text models and text data on the command line: a Hugging Face folder (config.json,
 * weights, tokenizer) and a task's split, tokenized (cli.h). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

bool cli_is_hf_folder(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int cli_text_model_open(const char *cmd, const char *dir, int64_t max_length, int n_labels,
                        const char *const *labels, nep_rng *rng, bool required, nep_hf_config *cfg,
                        nep_graph *g, nep_tokenizer **tok, nep_text_load_report *rep) {
    nep_err err;
    nep_hf_weights *w = NULL;
    *tok = NULL;
    memset(cfg, 0, sizeof *cfg);
    nep_graph_init(g);
    nep_status s = nep_hf_config_read(dir, cfg, &err);
    if (s == NEP_OK && n_labels > 0) {
        snprintf(cfg->architecture, sizeof cfg->architecture, "%s",
                 cfg->model_type == NEP_HF_ROBERTA ? "RobertaForSequenceClassification" : "BertForSequenceClassification");
        s = nep_hf_config_set_labels(cfg, n_labels, labels, &err);
    }
    if (s != NEP_OK || nep_tokenizer_open(dir, NULL, tok, &err) != NEP_OK ||
        nep_text_encoder_build(cfg, max_length, NEP_TEXT_HEAD_CLASSIFY, g, rng, &err) != NEP_OK ||
        nep_hf_weights_open(dir, &w, &err) != NEP_OK || nep_text_encoder_load(g, w, required, rep, &err) != NEP_OK) {
        nep_hf_weights_close(w);
        nep_tokenizer_free(*tok);
        *tok = NULL;
        nep_graph_free(g);
        nep_hf_config_free(cfg);
        return cli_error(cmd, &err);
    }
    nep_hf_weights_close(w);
    return 0;
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
