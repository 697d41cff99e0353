/* nepenthe lm-train: trains a Llama-style decoder (a Hugging Face folder: config.json
 * and tokenizer.json, weights optional) as a causal language model on a text corpus,
 * one document per line, packed into rows of --seq-len tokens (causal_lm.h), with
 * AdamW, a linear warm-up and a cosine decay per optimizer step, and gradient clipping:
 * the recipe of Hugging Face's run_clm.py with lr_scheduler_type cosine. Reports the
 * held-out loss and perplexity after every epoch. Every epoch writes OUT/model (a
 * folder transformers loads), OUT/log.jsonl and OUT/checkpoint.safetensors, so that
 * --resume continues a killed run. Without --data, the corpus is built from Debian's
 * fortunes (fortunes_lm.h, seed 0, 5% held out) into OUT/data. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/causal_lm.h"
#include "nepenthe/fortunes_lm.h"

typedef struct lm_opts {
    const char *model, *data, *out, *backend;
    int64_t seq_len, epochs, batch, warmup_steps, seed, threads, eval_batch;
    double lr, wd, clip;
    bool resume, json;
} lm_opts;

/* What must match for --resume to continue the same run. */
static char *options_json(const lm_opts *o, const char *data) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", o->model);
    cJSON_AddStringToObject(j, "data", data);
    cJSON_AddNumberToObject(j, "seq_len", (double)o->seq_len);
    cJSON_AddNumberToObject(j, "epochs", (double)o->epochs);
    cJSON_AddNumberToObject(j, "batch", (double)o->batch);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "wd", o->wd);
    cJSON_AddNumberToObject(j, "warmup_steps", (double)o->warmup_steps);
    cJSON_AddNumberToObject(j, "clip_grad_norm", o->clip);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* The rows of data/<name>.txt. */
static int read_rows(const char *data, const char *name, const nep_tokenizer *tok, const nep_hf_config *cfg,
                     int64_t T, nep_lm_rows *out) {
    char path[4200];
    nep_err err;
    snprintf(path, sizeof path, "%s/%s.txt", data, name);
    const int32_t eos = (int32_t)cfg->eos_token_id;
    if (nep_lm_rows_read(tok, path, eos, T, out, &err) != NEP_OK) return cli_error("lm-train", &err);
    return 0;
}

int cmd_lm_train(int argc, char **argv) {
    lm_opts o = {.backend = "cpu", .seq_len = 128, .epochs = 4, .batch = 16, .lr = 1e-3, .wd = 0.1, .clip = 1.0,
                 .warmup_steps = 100, .eval_batch = 16};
    cli_opt opts[] = {
        {"model", OPT_STR, &o.model, "Hugging Face folder of a Llama: config.json, tokenizer.json, and weights "
                                     "to start from (none: a new model initialized from --seed) (required)"},
        {"data", OPT_STR, &o.data, "directory of train.txt and heldout.txt, one document per line (default: "
                                   "OUT/data, built from " NEP_FORTUNES_DIR " with seed 0, 5% held out)"},
        {"seq-len", OPT_INT, &o.seq_len, "tokens per row (documents are packed, each ending in eos)"},
        {"epochs", OPT_INT, &o.epochs, "epochs"},
        {"batch", OPT_INT, &o.batch, "rows per optimizer step"},
        {"lr", OPT_REAL, &o.lr, "AdamW's peak learning rate (betas 0.9 0.999, eps 1e-8)"},
        {"wd", OPT_REAL, &o.wd, "decoupled weight decay, on matrices only (not norms, not biases)"},
        {"warmup-steps", OPT_INT, &o.warmup_steps, "optimizer steps of linear warm-up before the cosine decay to 0"},
        {"clip-grad-norm", OPT_REAL, &o.clip, "clip the gradients' total L2 norm before each step (0: off)"},
        {"seed", OPT_INT, &o.seed, "seed of a new model's initialization and of the shuffling"},
        {"eval-batch", OPT_INT, &o.eval_batch, "rows per batch of the held-out evaluation"},
        THREADS_OPT(&o.threads),
        BACKEND_OPT(&o.backend),
        {"out", OPT_STR, &o.out, "output directory (required)"},
        {"resume", OPT_FLAG, &o.resume, "continue the run in --out from its last epoch"},
        {"json", OPT_FLAG, &o.json, "end with one JSON line on stdout"},
        OPT_END,
    };
    int rc = cli_parse("lm-train", "--model DIR --out DIR [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!o.model || !o.out) return cli_errorf("lm-train", "--model DIR and --out DIR are required") + 1;
    if (o.epochs < 1 || o.batch < 1 || o.seq_len < 2 || o.eval_batch < 1 || o.warmup_steps < 0 || !(o.lr > 0) ||
        !(o.wd >= 0) || !(o.clip >= 0))
        return cli_errorf("lm-train", "--epochs, --batch, --eval-batch must be positive, --seq-len at least 2, --lr "
                          "positive, --wd, --clip-grad-norm, --warmup-steps not negative") + 1;
    nep_exec_opts xo;
    if (cli_exec_opts("lm-train", o.backend, &xo)) return 2;
    cli_set_threads(o.threads);
    FILE *human = o.json ? stderr : stdout;

    nep_hf_config cfg = {0};
    nep_graph g = {0};
    nep_tokenizer *tok = NULL;
    nep_lm_rows train = {0}, held = {0};
    nep_trainer tr = {0};
    nep_rng rng;
    nep_err err;
    char *options = NULL, data[4096], ckpt[4200], model[4200], log[4200];
    uint32_t *perm = NULL;
    rc = 1;
    if (cli_mkdirs(o.out)) {
        cli_errorf("lm-train", "--out: cannot create directory %s: %s", o.out, strerror(errno));
        goto done;
    }
    snprintf(data, sizeof data, "%s", o.data ? o.data : "");
    if (!o.data) {
        snprintf(data, sizeof data, "%s/data", o.out);
        char done_mark[4200];
        snprintf(done_mark, sizeof done_mark, "%s/corpus.json", data);
        nep_fortunes_lm_summary sum;
        if (access(done_mark, F_OK) != 0 && nep_fortunes_lm_build(NULL, 0, 0.05, data, &sum, &err) != NEP_OK) {
            cli_error("lm-train", &err);
            goto done;
        }
    }
    nep_rng_seed(&rng, (uint64_t)o.seed);
    nep_text_load_report rep;
    if (cli_text_model_open("lm-train", o.model, o.seq_len, 0, NULL, &rng, false, &cfg, &g, &tok, &rep, NULL)) goto done;
    if (cfg.model_type != NEP_HF_LLAMA) {
        cli_errorf("lm-train", "%s: model_type '%s': lm-train trains a Llama decoder", o.model,
                   nep_hf_model_type_name(cfg.model_type));
        goto done;
    }
    if (nep_tokenizer_vocab_size(tok) > cfg.vocab_size) {
        cli_errorf("lm-train", "%s: the tokenizer has %lld ids, more than the config's vocab_size %lld", o.model,
                   (long long)nep_tokenizer_vocab_size(tok), (long long)cfg.vocab_size);
        goto done;
    }
    if (read_rows(data, "train", tok, &cfg, o.seq_len, &train) || read_rows(data, "heldout", tok, &cfg, o.seq_len, &held))
        goto done;
    fprintf(human, "%s: %s, %lld parameters (%d tensors read); %s: %lld train rows (%lld tokens of %lld lines), "
            "%lld held-out rows of %lld tokens\n", o.model, rep.loaded ? "pretrained" : "new",
            (long long)nep_graph_param_count(&g), rep.loaded, data, (long long)train.n, (long long)train.tokens,
            (long long)train.lines, (long long)held.n, (long long)o.seq_len);

    nep_optim_cfg oc = nep_optim_defaults(NEP_OPTIM_ADAMW);
    oc.lr = o.lr, oc.weight_decay = o.wd, oc.clip_grad_norm = o.clip, oc.no_decay_1d = true;
    if (nep_trainer_init(&tr, &g, &oc, o.batch, &xo, &err) != NEP_OK) {
        cli_error("lm-train", &err);
        goto done;
    }
    options = options_json(&o, data);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", o.out);
    snprintf(model, sizeof model, "%s/model", o.out);
    snprintf(log, sizeof log, "%s/log.jsonl", o.out);
    int64_t epoch = 0;
    if (o.resume && access(ckpt, F_OK) == 0) {
        if (cli_run_resume("lm-train", ckpt, &g, &tr.opt, options, &epoch, &rng)) goto done;
        fprintf(human, "resuming %s after epoch %lld\n", ckpt, (long long)epoch);
        if (cli_trim_jsonl("lm-train", log, "epoch", epoch)) goto done;
    } else {
        if (o.resume) fprintf(human, "no %s yet: starting a new run\n", ckpt);
        remove(log);
    }
    const int64_t total = o.epochs * ((train.n + o.batch - 1) / o.batch);
    perm = malloc(sizeof *perm * (size_t)train.n + 1);
    double held_loss = NAN, tok_s_sum = 0, t0 = nep_now();
    const int64_t start = epoch;
    for (; epoch < o.epochs; epoch++) {
        for (int64_t i = 0; i < train.n; i++) perm[i] = (uint32_t)i;
        nep_rng_shuffle_u32(&rng, perm, (size_t)train.n);
        char label[64];
        snprintf(label, sizeof label, "epoch %lld/%lld", (long long)epoch + 1, (long long)o.epochs);
        cli_progress prog = {.tty = isatty(2), .label = label, .unit = "rows/s"};
        nep_epoch_stats es;
        const double lr0 = nep_cosine_lr(o.lr, o.warmup_steps, total, tr.opt.step);
        nep_status s = nep_lm_train_epoch(&tr, &train, perm, o.lr, o.warmup_steps, total, &rng, cli_progress_cb, &prog,
                                          &es, &err);
        cli_progress_end(&prog);
        double held_top1 = 0;
        if (s == NEP_OK) s = nep_lm_evaluate(&g, &held, o.eval_batch, &held_loss, &held_top1, &xo, &err);
        if (s != NEP_OK) {
            cli_error("lm-train", &err);
            goto done;
        }
        tok_s_sum += es.img_per_s;
        char line[512];
        snprintf(line, sizeof line, "{\"epoch\":%lld,\"lr\":%g,\"loss\":%.6f,\"train_ppl\":%.4f,\"heldout_loss\":%.6f,"
                 "\"heldout_ppl\":%.4f,\"heldout_top1\":%.4f,\"tokens_per_s\":%.1f,\"seconds\":%.3f}",
                 (long long)epoch + 1, lr0, es.loss, exp(es.loss), held_loss, exp(held_loss), held_top1, es.img_per_s,
                 es.seconds);
        if (cli_text_write_folder("lm-train", model, &cfg, &g, o.model) || cli_append_line(log, line) ||
            cli_run_save("lm-train", ckpt, &g, &tr.opt, epoch + 1, &rng, options)) {
            cli_errorf("lm-train", "%s: epoch %lld not committed", o.out, (long long)epoch + 1);
            goto done;
        }
        fprintf(human, "epoch %3lld/%lld  lr %.3g  loss %.4f (ppl %.2f)  held-out loss %.4f (ppl %.2f, next-token "
                "top-1 %.2f%%)  %.0f tokens/s  %.1fs\n", (long long)epoch + 1, (long long)o.epochs, lr0, es.loss,
                exp(es.loss), held_loss, exp(held_loss), held_top1, es.img_per_s, es.seconds);
        fflush(human);
    }
    if (start == o.epochs) { /* a finished run: report it again */
        if (nep_lm_evaluate(&g, &held, o.eval_batch, &held_loss, NULL, &xo, &err) != NEP_OK) {
            cli_error("lm-train", &err);
            goto done;
        }
    }
    fprintf(human, "held-out perplexity %.3f  %s written\n", exp(held_loss), model);
    if (o.json)
        printf("{\"heldout_loss\":%.6f,\"heldout_ppl\":%.4f,\"epochs\":%lld,\"train_rows\":%lld,\"params\":%lld,"
               "\"seconds\":%.3f,\"train_tokens_per_s\":%.1f,\"model\":\"%s\"}\n", held_loss, exp(held_loss),
               (long long)epoch, (long long)train.n, (long long)nep_graph_param_count(&g), nep_now() - t0,
               epoch > start ? tok_s_sum / (double)(epoch - start) : 0, model);
    rc = 0;
done:
    free(perm);
    free(options);
    nep_trainer_free(&tr);
    nep_lm_rows_free(&train), nep_lm_rows_free(&held);
    nep_tokenizer_free(tok);
    nep_graph_free(&g);
    nep_hf_config_free(&cfg);
    return rc;
}

/* nepenthe lm-corpus: the corpus and multiple-choice task lm-train reads by default,
 * built from Debian's fortunes (fortunes_lm.h), so that a tokenizer can be trained on
 * its train.txt before the model exists. */
int cmd_lm_corpus(int argc, char **argv) {
    const char *out = NULL, *dir = NULL;
    int64_t seed = 0;
    double heldout = 0.05;
    bool json = false;
    cli_opt opts[] = {
        {"fortunes", OPT_STR, &dir, "directory of the fortunes category files (default: " NEP_FORTUNES_DIR ")"},
        {"seed", OPT_INT, &seed, "seed of the held-out draw and of the multiple-choice task"},
        {"heldout", OPT_REAL, &heldout, "fraction of the entries held out, in (0, 0.5]"},
        {"out", OPT_STR, &out, "output directory: train.txt, heldout.txt, mc/, corpus.json (required)"},
        {"json", OPT_FLAG, &json, "print the counts as one JSON line"},
        OPT_END,
    };
    int rc = cli_parse("lm-corpus", "--out DIR [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!out) return cli_errorf("lm-corpus", "--out DIR is required") + 1;
    nep_fortunes_lm_summary s;
    nep_err err;
    if (nep_fortunes_lm_build(dir, (uint64_t)seed, heldout, out, &s, &err) != NEP_OK) return cli_error("lm-corpus", &err);
    if (json)
        printf("{\"files\":%lld,\"entries\":%lld,\"duplicates\":%lld,\"train\":%lld,\"heldout\":%lld,\"train_bytes\":%lld,"
               "\"heldout_bytes\":%lld,\"mc_dev\":%lld,\"mc_test\":%lld}\n", (long long)s.files, (long long)s.entries_read,
               (long long)s.duplicates, (long long)s.train, (long long)s.heldout, (long long)s.train_bytes,
               (long long)s.heldout_bytes, (long long)s.mc_dev, (long long)s.mc_test);
    else
        printf("%s: %lld entries from %lld files (%lld duplicates dropped): %lld train (%lld bytes), %lld held out "
               "(%lld bytes); multiple choice: %lld dev, %lld test questions\n", out, (long long)s.entries_read,
               (long long)s.files, (long long)s.duplicates, (long long)s.train, (long long)s.train_bytes,
               (long long)s.heldout, (long long)s.heldout_bytes, (long long)s.mc_dev, (long long)s.mc_test);
    return 0;
}
