/* nepenthe lm-eval: a causal LM folder's held-out perplexity (a text file packed as
 * lm-train packs it) and its multiple-choice accuracy on MMLU-format CSV files, scored
 * as lm-evaluation-harness scores them (lm_score.h): MMLU's letter prompt (k-shot) or
 * cloze continuations, with a per-subject report. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nepenthe/causal_lm.h"
#include "nepenthe/lm_score.h"

typedef struct eval_opts {
    const char *model, *text, *mc, *split, *subject, *mode, *predictions, *backend;
    int64_t seq_len, batch, shots, max_questions, threads;
    bool json, map_weights;
} eval_opts;

/* Held-out loss of the file at path, packed into rows of T. */
static int perplexity(const eval_opts *o, nep_graph *g, const nep_tokenizer *tok, const nep_hf_config *cfg,
                      const nep_exec_opts *xo, double *loss, int64_t *rows) {
    nep_lm_rows d;
    nep_err err;
    const int32_t eos = (int32_t)cfg->eos_token_id;
    if (nep_lm_rows_read(tok, o->text, eos, o->seq_len, &d, &err) != NEP_OK) return cli_error("lm-eval", &err);
    const nep_status s = nep_lm_evaluate(g, &d, o->batch, loss, NULL, xo, &err);
    *rows = d.n;
    nep_lm_rows_free(&d);
    return s == NEP_OK ? 0 : cli_error("lm-eval", &err);
}

/* One line per question: index, subject, answer, predictions, the four log-likelihoods. */
static int write_predictions(const char *path, const nep_mmlu_set *set, int64_t n, const int *pred,
                             const int *pred_norm, const double *lp) {
    FILE *f = fopen(path, "w");
    if (!f) return cli_errorf("lm-eval", "--predictions: cannot write %s", path);
    for (int64_t i = 0; i < n; i++)
        fprintf(f, "{\"i\":%lld,\"subject\":\"%s\",\"answer\":%d,\"pred\":%d,\"pred_norm\":%d,\"logprob\":[%.9g,%.9g,"
                "%.9g,%.9g]}\n", (long long)i, set->subjects[set->items[i].subject], set->items[i].answer, pred[i],
                pred_norm[i], lp[4 * i], lp[4 * i + 1], lp[4 * i + 2], lp[4 * i + 3]);
    return fclose(f) == 0 ? 0 : cli_errorf("lm-eval", "--predictions: cannot write %s", path);
}

int cmd_lm_eval(int argc, char **argv) {
    eval_opts o = {.split = "test", .mode = "letter", .backend = "cpu", .seq_len = 128, .batch = 16};
    cli_opt opts[] = {
        {"model", OPT_STR, &o.model, "Hugging Face folder of a Llama: config.json, weights, tokenizer.json (and "
                                     "masks.safetensors of a pruned one) (required)"},
        {"text", OPT_STR, &o.text, "a text file, one document per line: its perplexity, packed as lm-train packs"},
        {"mc", OPT_STR, &o.mc, "MMLU's data folder (dev/, test/ of <subject>_<split>.csv): multiple-choice accuracy"},
        {"split", OPT_STR, &o.split, "the MMLU split scored: dev, val or test"},
        {"subject", OPT_STR, &o.subject, "one subject only (default: every file of the split)"},
        {"mode", OPT_STR, &o.mode, "letter: MMLU's prompt and ' A'..' D'; cloze: each choice's text after the question "
                                   "(acc and acc_norm)"},
        {"shots", OPT_INT, &o.shots, "letter mode: examples from the dev split in the prompt (MMLU's: 5)"},
        {"seq-len", OPT_INT, &o.seq_len, "tokens per row (longer requests keep their last tokens)"},
        {"batch", OPT_INT, &o.batch, "rows per forward pass"},
        {"max-questions", OPT_INT, &o.max_questions, "score the first N questions only (0: all)"},
        {"predictions", OPT_STR, &o.predictions, "write each question's predictions and log-likelihoods (JSON lines)"},
        {"map-weights", OPT_FLAG, &o.map_weights, "map the folder's bfloat16 matrices instead of loading them as float32: each is converted as it is used, so a model near the machine's memory runs (slower: see the README)"},
        THREADS_OPT(&o.threads),
        BACKEND_OPT(&o.backend),
        {"json", OPT_FLAG, &o.json, "end with one JSON line on stdout"},
        OPT_END,
    };
    int rc = cli_parse("lm-eval", "--model DIR [--text FILE] [--mc DIR] [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!o.model || (!o.text && !o.mc)) return cli_errorf("lm-eval", "--model DIR and --text FILE or --mc DIR are required") + 1;
    const bool cloze = strcmp(o.mode, "cloze") == 0;
    if (!cloze && strcmp(o.mode, "letter") != 0) return cli_errorf("lm-eval", "--mode '%s': letter or cloze", o.mode) + 1;
    if (o.seq_len < 2 || o.batch < 1 || o.shots < 0 || o.max_questions < 0 || (cloze && o.shots))
        return cli_errorf("lm-eval", "--seq-len at least 2, --batch positive, --shots and --max-questions not negative, "
                          "--shots only in letter mode") + 1;
    nep_exec_opts xo;
    if (cli_exec_opts("lm-eval", o.backend, &xo)) return 2;
    cli_set_threads(o.threads);
    FILE *human = o.json ? stderr : stdout;
    nep_hf_config cfg = {0};
    nep_graph g = {0};
    nep_tokenizer *tok = NULL;
    nep_mmlu_set set = {0}, dev = {0};
    nep_mmlu_report rep = {0}, rep_norm = {0};
    int *pred = NULL, *pred_norm = NULL;
    double *lp = NULL, loss = NAN, t_ppl = 0, t_mc = 0;
    int64_t rows = 0, n = 0;
    nep_err err;
    nep_text_load_report lr;
    nep_hf_weights *mapped = NULL;
    rc = 1;
    if (cli_text_model_open("lm-eval", o.model, o.seq_len, 0, NULL, NULL, true, &cfg, &g, &tok, &lr,
                            o.map_weights ? &mapped : NULL)) goto done;
    if (cfg.model_type != NEP_HF_LLAMA) {
        cli_errorf("lm-eval", "%s: model_type '%s': lm-eval scores a Llama decoder", o.model, nep_hf_model_type_name(cfg.model_type));
        goto done;
    }
    if (o.map_weights)
        fprintf(human, "%s: %d bfloat16 matrices mapped (%.1f MB), converted as they are used\n", o.model, lr.mapped,
                (double)lr.mapped_bytes / 1e6);
    double t0 = nep_now();
    if (o.text) {
        if (perplexity(&o, &g, tok, &cfg, &xo, &loss, &rows)) goto done;
        t_ppl = nep_now() - t0;
        fprintf(human, "%s: loss %.4f, perplexity %.3f over %lld rows of %lld tokens (%.1fs)\n", o.text, loss, exp(loss),
                (long long)rows, (long long)o.seq_len, t_ppl);
    }
    if (o.mc) {
        if (nep_mmlu_load_split(o.mc, o.split, o.subject, &set, &err) != NEP_OK ||
            (o.shots && nep_mmlu_load_split(o.mc, "dev", o.subject, &dev, &err) != NEP_OK)) {
            cli_error("lm-eval", &err);
            goto done;
        }
        n = o.max_questions && o.max_questions < set.n ? o.max_questions : set.n;
        pred = malloc(sizeof *pred * (size_t)n + 1), pred_norm = malloc(sizeof *pred_norm * (size_t)n + 1);
        lp = malloc(sizeof *lp * (size_t)(4 * n) + 1);
        cli_progress prog = {.tty = isatty(2), .label = "scoring", .unit = "req/s"};
        t0 = nep_now();
        const int32_t eos = (int32_t)cfg.eos_token_id;
        const nep_mmlu_set head = {.n = n, .items = set.items, .n_subjects = set.n_subjects, .subjects = set.subjects};
        nep_status s = pred && pred_norm && lp ? NEP_OK : nep_fail(&err, NEP_ERR_NOMEM, "out of memory");
        if (s == NEP_OK)
            s = nep_mc_predict(&g, tok, eos, &set, n, cloze ? NEP_MC_CLOZE : NEP_MC_LETTER, &dev, (int)o.shots, o.batch,
                               pred, pred_norm, lp, cli_progress_cb, &prog, &xo, &err);
        cli_progress_end(&prog);
        if (s == NEP_OK) s = nep_mmlu_score(&head, pred, &rep, &err);
        if (s == NEP_OK && cloze) s = nep_mmlu_score(&head, pred_norm, &rep_norm, &err);
        if (s != NEP_OK) {
            cli_error("lm-eval", &err);
            goto done;
        }
        t_mc = nep_now() - t0;
        if (o.predictions && write_predictions(o.predictions, &set, n, pred, pred_norm, lp)) goto done;
        nep_mmlu_report_write(&rep, human);
        fprintf(human, "%s, %s mode%s: acc %.4f", o.mc, o.mode, cloze ? "" : (o.shots ? ", k-shot" : ", 0-shot"), rep.acc);
        if (cloze) fprintf(human, ", acc_norm %.4f", rep_norm.acc);
        fprintf(human, " over %lld questions (%.1fs)\n", (long long)n, t_mc);
    }
    if (o.json) {
        printf("{\"model\":\"%s\",\"mapped\":%d", o.model, lr.mapped);
        if (o.text) printf(",\"loss\":%.6f,\"ppl\":%.4f,\"rows\":%lld,\"ppl_seconds\":%.3f", loss, exp(loss), (long long)rows, t_ppl);
        if (o.mc) {
            printf(",\"mode\":\"%s\",\"shots\":%lld,\"questions\":%lld,\"acc\":%.6f", o.mode, (long long)o.shots, (long long)n, rep.acc);
            if (cloze) printf(",\"acc_norm\":%.6f", rep_norm.acc);
            printf(",\"mc_seconds\":%.3f", t_mc);
        }
        printf("}\n");
    }
    rc = 0;
done:
    free(pred), free(pred_norm), free(lp);
    nep_mmlu_report_free(&rep), nep_mmlu_report_free(&rep_norm);
    nep_mmlu_set_free(&set), nep_mmlu_set_free(&dev);
    nep_tokenizer_free(tok);
    nep_graph_free(&g);
    nep_hf_weights_close(mapped);
    nep_hf_config_free(&cfg);
    return rc;
}
