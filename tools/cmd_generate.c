/* nepenthe generate: greedy continuations of prompts with a Llama decoder folder, through
 * a key/value cache (generate.h), as transformers' generate(do_sample=False) gives them;
 * every prompt of --prompts runs in one batch. Prints each continuation (decoded by the
 * folder's tokenizer) and the speed: prompt tokens/s, generated tokens/s, and the
 * memory the cache costs per token of context. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/file.h"
#include "nepenthe/generate.h"

/* The prompts: --prompt, or the non-empty lines of --prompts. */
static int read_prompts(const char *one, const char *file, char ***out, int64_t *n) {
    char *text = NULL;
    size_t len = 0;
    nep_err err;
    if (one) text = strdup(one), len = strlen(one);
    else if (nep_read_file(file, (size_t)1 << 28, &text, &len, &err) != NEP_OK) return cli_error("generate", &err);
    *out = calloc(len / 2 + 2, sizeof **out), *n = 0;
    if (!text || !*out) return cli_errorf("generate", "out of memory");
    for (char *line = strtok(text, one ? "" : "\n"); line; line = strtok(NULL, "\n"))
        if (*line) (*out)[(*n)++] = strdup(line);
    free(text);
    return *n ? 0 : cli_errorf("generate", "%s: no prompt", file ? file : "--prompt");
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *prompts_file = NULL, *backend = "cpu";
    int64_t max_new = 32, threads = 0;
    bool json = false, no_special = false, map_weights = false;
    cli_opt opts[] = {
        {"model", OPT_STR, &model, "Hugging Face folder of a Llama: config.json, weights, tokenizer.json (required)"},
        {"prompt", OPT_STR, &prompt, "the prompt"},
        {"prompts", OPT_STR, &prompts_file, "a file of prompts, one per line, run as one batch"},
        {"max-new-tokens", OPT_INT, &max_new, "tokens generated per prompt (fewer when it ends in eos)"},
        {"no-special-tokens", OPT_FLAG, &no_special, "encode the prompts without the tokenizer's special tokens "
                                                      "(<|begin_of_text|>)"},
        {"map-weights", OPT_FLAG, &map_weights, "map the folder's bfloat16 matrices instead of loading them as float32: each is converted as it is used, so a model near the machine's memory runs (slower: see the README)"},
        THREADS_OPT(&threads),
        BACKEND_OPT(&backend),
        {"json", OPT_FLAG, &json, "one JSON object: the continuations' text and ids, and the speeds"},
        OPT_END,
    };
    int rc = cli_parse("generate", "--model DIR (--prompt TEXT | --prompts FILE) [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!model || (!prompt == !prompts_file))
        return cli_errorf("generate", "--model DIR and one of --prompt TEXT or --prompts FILE are required") + 1;
    if (max_new < 1) return cli_errorf("generate", "--max-new-tokens must be positive") + 1;
    nep_exec_opts xo;
    if (cli_exec_opts("generate", backend, &xo)) return 2;
    cli_set_threads(threads);
    nep_hf_config cfg = {0};
    nep_graph g = {0};
    nep_tokenizer *tok = NULL;
    nep_encoding *enc = NULL;
    char **texts = NULL;
    int64_t n = 0, *len = NULL;
    const int32_t **ids = NULL;
    int32_t *out = NULL;
    nep_err err;
    nep_text_load_report lr;
    nep_hf_weights *mapped = NULL;
    rc = 1;
    if (read_prompts(prompt, prompts_file, &texts, &n)) goto done;
    /* any length works: generation builds the model at the prompts' and at one token */
    if (cli_text_model_open("generate", model, 1, 0, NULL, NULL, true, &cfg, &g, &tok, &lr,
                            map_weights ? &mapped : NULL)) goto done;
    if (cfg.model_type != NEP_HF_LLAMA) {
        cli_errorf("generate", "%s: model_type '%s': generate runs a Llama decoder", model, nep_hf_model_type_name(cfg.model_type));
        goto done;
    }
    enc = calloc((size_t)n, sizeof *enc), len = malloc(sizeof *len * (size_t)n), ids = malloc(sizeof *ids * (size_t)n);
    out = malloc(sizeof *out * (size_t)(n * max_new));
    if (!enc || !len || !ids || !out) {
        cli_errorf("generate", "out of memory");
        goto done;
    }
    nep_encode_opts eo = nep_tokenizer_default_opts(tok);
    eo.add_special_tokens = !no_special, eo.max_length = 0, eo.pad = false;
    for (int64_t i = 0; i < n; i++) {
        if (nep_tokenizer_encode(tok, texts[i], strlen(texts[i]), NULL, 0, &eo, &enc[i], &err) != NEP_OK) {
            cli_errorf("generate", "prompt %lld: %s", (long long)i + 1, err.msg);
            goto done;
        }
        ids[i] = enc[i].ids, len[i] = enc[i].n;
    }
    nep_generate_stats st;
    cli_progress prog = {.tty = isatty(2), .label = "generating", .unit = "steps/s"};
    const nep_status s = nep_generate_greedy(&cfg, &g, ids, len, n, max_new, (int32_t)cfg.eos_token_id, out, &st,
                                             cli_progress_cb, &prog, &xo, &err);
    cli_progress_end(&prog);
    if (s != NEP_OK) {
        cli_error("generate", &err);
        goto done;
    }
    cJSON *root = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(root, "continuations");
    for (int64_t i = 0; i < n; i++) {
        int64_t k = 0, known = 0;
        while (k < max_new && out[i * max_new + k] >= 0) k++;
        /* ids past the tokenizer's (a padded vocab_size) dropped, as tokenizers' decode drops them */
        int32_t *shown = malloc(sizeof *shown * (size_t)(k + 1));
        if (!shown) {
            cJSON_Delete(root);
            cli_errorf("generate", "out of memory");
            goto done;
        }
        for (int64_t j = 0; j < k; j++)
            if (out[i * max_new + j] < nep_tokenizer_vocab_size(tok)) shown[known++] = out[i * max_new + j];
        if (known < k)
            fprintf(stderr, "generate: prompt %lld: %lld generated id(s) past the tokenizer's vocabulary, left out of the "
                    "text (--json lists every id)\n", (long long)i + 1, (long long)(k - known));
        char *text;
        size_t tlen;
        const nep_status ds = nep_tokenizer_decode(tok, shown, known, true, &text, &tlen, &err);
        free(shown);
        if (ds != NEP_OK) {
            cJSON_Delete(root);
            cli_error("generate", &err);
            goto done;
        }
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "text", text);
            cJSON *a = cJSON_AddArrayToObject(o, "ids");
            for (int64_t j = 0; j < k; j++) cJSON_AddItemToArray(a, cJSON_CreateNumber(out[i * max_new + j]));
            cJSON_AddItemToArray(list, o);
        } else {
            printf("%s%s\n", texts[i], text);
        }
        free(text);
    }
    const double prompt_tps = st.prompt_seconds > 0 ? (double)st.prompt_tokens / st.prompt_seconds : 0,
                 step_tps = st.step_seconds > 0 ? (double)(st.steps * n) / st.step_seconds : 0;
    fprintf(json ? stderr : stdout, "%lld prompt tokens at %.0f tokens/s; %lld tokens generated in %lld steps at %.1f "
            "tokens/s (batch %lld); key/value cache %.1f KB per token of context (%.1f MB in all)\n",
            (long long)st.prompt_tokens, prompt_tps, (long long)st.new_tokens, (long long)st.steps, step_tps,
            (long long)n, (double)st.kv_bytes_per_token / 1e3, (double)st.kv_bytes / 1e6);
    if (json) {
        cJSON_AddNumberToObject(root, "prompt_tokens", (double)st.prompt_tokens);
        cJSON_AddNumberToObject(root, "new_tokens", (double)st.new_tokens);
        cJSON_AddNumberToObject(root, "prompt_tok_per_s", prompt_tps);
        cJSON_AddNumberToObject(root, "gen_tok_per_s", step_tps);
        cJSON_AddNumberToObject(root, "kv_bytes_per_token", (double)st.kv_bytes_per_token);
        char *txt = cJSON_PrintUnformatted(root);
        printf("%s\n", txt);
        free(txt);
    }
    cJSON_Delete(root);
    rc = 0;
done:
    for (int64_t i = 0; texts && i < n; i++) free(texts[i]);
    for (int64_t i = 0; enc && i < n; i++) nep_encoding_free(&enc[i]);
    free(texts), free(enc), free(len), free(ids), free(out);
    nep_tokenizer_free(tok);
    nep_graph_free(&g);
    nep_hf_weights_close(mapped);
    nep_hf_config_free(&cfg);
    return rc;
}
