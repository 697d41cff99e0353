/* nepenthe finetune: fine-tunes a Hugging Face BERT or RoBERTa folder for sentence
 * classification on a GLUE task (or the fortunes task), with the recipe of Hugging Face's
 * Trainer (AdamW, a linear decay stepped per optimizer step after an optional warm-up,
 * gradient clipping at 1, no decay on biases and LayerNorm weights). Every epoch writes
 * OUT/model/ (a folder transformers' from_pretrained loads: config.json with the task's
 * labels, model.safetensors, the tokenizer's files) and OUT/checkpoint.safetensors (the
 * weights, AdamW's state, the generator), so that --resume continues a killed run and
 * ends with the weights of an uninterrupted one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/file.h"
#include "nepenthe/text_model.h"
#include "nepenthe/text_train.h"

typedef struct ft_opts {
    const char *hf, *task, *data_dir, *out, *backend;
    int64_t max_length, epochs, batch, warmup_steps, seed, threads, max_train_rows, eval_batch;
    double lr, wd, clip;
    bool resume, json;
} ft_opts;

/* What must match for --resume to continue the same run: the epochs too, which set the
 * linear decay's length. */
static char *options_json(const ft_opts *o, const char *data_dir) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "hf", o->hf);
    cJSON_AddStringToObject(j, "task", o->task);
    cJSON_AddStringToObject(j, "data_dir", data_dir);
    cJSON_AddNumberToObject(j, "max_length", (double)o->max_length);
    cJSON_AddNumberToObject(j, "epochs", (double)o->epochs);
    cJSON_AddNumberToObject(j, "batch", (double)o->batch);
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "wd", o->wd);
    cJSON_AddNumberToObject(j, "warmup_steps", (double)o->warmup_steps);
    cJSON_AddNumberToObject(j, "clip_grad_norm", o->clip);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddNumberToObject(j, "max_train_rows", (double)o->max_train_rows);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

typedef struct ft_run {
    const ft_opts *o;
    nep_hf_config cfg;
    nep_graph g;
    nep_rng rng;
    int64_t epoch;
    char ckpt[4096], model[4096], log[4096];
    const char *options;
} ft_run;

/* The end of an epoch: OUT/model, the log line, then the checkpoint, whose rename marks
 * the epoch done (as nepenthe train). */
static int commit(ft_run *r, const nep_optim *opt, const char *line) {
    if (cli_text_write_folder("finetune", r->model, &r->cfg, &r->g, r->o->hf)) return 1;
    if (line && cli_append_line(r->log, line))
        return cli_errorf("finetune", "%s: cannot append: %s", r->log, strerror(errno));
    return line ? cli_run_save("finetune", r->ckpt, &r->g, opt, r->epoch, &r->rng, r->options) : 0;
}

int cmd_finetune(int argc, char **argv) {
    ft_opts o = {.task = "fortunes", .backend = "cpu", .max_length = 128, .epochs = 3, .batch = 32, .lr = 2e-5,
                 .clip = 1.0, .seed = 42, .eval_batch = 64};
    cli_opt opts[] = {
        {"hf", OPT_STR, &o.hf, "Hugging Face folder of a BERT or RoBERTa: config.json, model.safetensors "
                               "(or shards), tokenizer files (required)"},
        {"task", OPT_STR, &o.task, "task: " NEP_GLUE_TASKS},
        {"data-dir", OPT_STR, &o.data_dir, "the task's train.tsv, dev.tsv, test.tsv (default for fortunes: "
                                           "OUT/data, built from " NEP_FORTUNES_DIR " with seed 0)"},
        {"max-length", OPT_INT, &o.max_length, "tokens per sequence (longest-first truncation, padding)"},
        {"epochs", OPT_INT, &o.epochs, "epochs"},
        {"batch", OPT_INT, &o.batch, "batch size"},
        {"lr", OPT_REAL, &o.lr, "AdamW learning rate (betas 0.9 0.999, eps 1e-8)"},
        {"wd", OPT_REAL, &o.wd, "decoupled weight decay, not on biases and LayerNorm weights"},
        {"warmup-steps", OPT_INT, &o.warmup_steps, "optimizer steps of linear warm-up before the linear decay to 0"},
        {"clip-grad-norm", OPT_REAL, &o.clip, "clip the gradients' total L2 norm before each step (0: off)"},
        {"seed", OPT_INT, &o.seed, "seed of the new head's initialization, shuffling and dropout"},
        {"max-train-rows", OPT_INT, &o.max_train_rows, "train on the first N rows only (0: all)"},
        {"eval-batch", OPT_INT, &o.eval_batch, "batch size of evaluation"},
        THREADS_OPT(&o.threads),
        BACKEND_OPT(&o.backend),
        {"out", OPT_STR, &o.out, "output directory (required)"},
        {"resume", OPT_FLAG, &o.resume, "continue the run in --out from its last epoch"},
        {"json", OPT_FLAG, &o.json, "end with one JSON line on stdout"},
        OPT_END,
    };
    int rc = cli_parse("finetune", "--hf DIR --out DIR [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!o.hf || !o.out) return cli_errorf("finetune", "--hf DIR and --out DIR are required") + 1;
    if (o.epochs < 1 || o.batch < 1 || o.max_length < 2 || o.eval_batch < 1 || o.warmup_steps < 0 ||
        o.max_train_rows < 0 || !(o.lr > 0) || !(o.wd >= 0) || !(o.clip >= 0))
        return cli_errorf("finetune", "--epochs, --batch, --eval-batch must be positive, --max-length at least 2, "
                          "--lr positive, --wd, --clip-grad-norm, --warmup-steps, --max-train-rows not negative") + 1;
    nep_exec_opts xo;
    if (cli_exec_opts("finetune", o.backend, &xo)) return 2;
    cli_set_threads(o.threads);
    FILE *human = o.json ? stderr : stdout;

    ft_run r = {.o = &o};
    nep_tokenizer *tok = NULL;
    nep_text_dataset train = {0}, dev = {0}, test = {0};
    nep_text_tensors ttrain = {0}, tdev = {0}, ttest = {0};
    nep_trainer tr = {0};
    nep_err err;
    char *options = NULL, data_dir[4096];
    uint32_t *perm = NULL;
    rc = 1;
    if (cli_mkdirs(o.out)) {
        cli_errorf("finetune", "--out: cannot create directory %s: %s", o.out, strerror(errno));
        goto done;
    }
    snprintf(data_dir, sizeof data_dir, "%s", o.data_dir ? o.data_dir : "");
    if (!o.data_dir && strcmp(o.task, "fortunes") == 0) {
        snprintf(data_dir, sizeof data_dir, "%s/data", o.out);
        if (access(data_dir, F_OK) != 0 && nep_fortunes_task_build(NULL, NULL, 0, data_dir, &err) != NEP_OK) {
            cli_error("finetune", &err);
            goto done;
        }
    } else if (!o.data_dir) {
        cli_errorf("finetune", "--data-dir: task '%s' needs the directory of its TSV files", o.task);
        goto done;
    }
    /* the task's labels (the train split's), then the classifier for them */
    if (cli_text_split("finetune", o.task, data_dir, "train", NULL, 0, 0, &train, NULL)) goto done;
    nep_rng_seed(&r.rng, (uint64_t)o.seed);
    nep_text_load_report rep;
    if (cli_text_model_open("finetune", o.hf, o.max_length, train.classes, (const char *const *)train.label_names,
                            &r.rng, false, &r.cfg, &r.g, &tok, &rep, NULL))
        goto done;
    nep_text_dataset_free(&train);
    if (cli_text_split("finetune", o.task, data_dir, "train", tok, o.max_length, o.max_train_rows, &train, &ttrain) ||
        cli_text_split("finetune", o.task, data_dir, "dev", tok, o.max_length, 0, &dev, &tdev) ||
        cli_text_split("finetune", o.task, data_dir, "test", tok, o.max_length, 0, &test, &ttest))
        goto done;
    fprintf(human, "%s: %d tensors read, %d parameters new (%s%s), %d unused; %lld parameters\n", o.hf, rep.loaded,
            rep.missing, rep.first_missing, rep.missing > 1 ? ", ..." : "", rep.unused,
            (long long)nep_graph_param_count(&r.g));
    fprintf(human, "task %s: %lld train, %lld dev, %lld test rows of %lld tokens (%lld, %lld, %lld truncated)\n",
            o.task, (long long)ttrain.n, (long long)tdev.n, (long long)ttest.n, (long long)o.max_length,
            (long long)ttrain.truncated, (long long)tdev.truncated, (long long)ttest.truncated);

    nep_optim_cfg oc = nep_optim_defaults(NEP_OPTIM_ADAMW);
    oc.lr = o.lr, oc.weight_decay = o.wd, oc.clip_grad_norm = o.clip, oc.no_decay_1d = true;
    if (nep_trainer_init(&tr, &r.g, &oc, o.batch, &xo, &err) != NEP_OK) {
        cli_error("finetune", &err);
        goto done;
    }
    options = options_json(&o, data_dir);
    r.options = options;
    snprintf(r.ckpt, sizeof r.ckpt, "%s/checkpoint.safetensors", o.out);
    snprintf(r.model, sizeof r.model, "%s/model", o.out);
    snprintf(r.log, sizeof r.log, "%s/log.jsonl", o.out);
    if (o.resume && access(r.ckpt, F_OK) == 0) {
        if (cli_run_resume("finetune", r.ckpt, &r.g, &tr.opt, r.options, &r.epoch, &r.rng)) goto done;
        fprintf(human, "resuming %s after epoch %lld\n", r.ckpt, (long long)r.epoch);
        if (cli_trim_jsonl("finetune", r.log, "epoch", r.epoch)) goto done;
    } else {
        if (o.resume) fprintf(human, "no %s yet: starting a new run\n", r.ckpt);
        remove(r.log);
    }

    const int64_t steps_per_epoch = (ttrain.n + o.batch - 1) / o.batch, total = o.epochs * steps_per_epoch;
    perm = malloc(sizeof *perm * (size_t)ttrain.n + 1);
    double dev_top1 = 0, seq_s_sum = 0, t0 = nep_now();
    const int64_t start = r.epoch;
    for (; r.epoch < o.epochs; r.epoch++) {
        for (int64_t i = 0; i < ttrain.n; i++) perm[i] = (uint32_t)i;
        nep_rng_shuffle_u32(&r.rng, perm, (size_t)ttrain.n);
        char label[64];
        snprintf(label, sizeof label, "epoch %lld/%lld", (long long)r.epoch + 1, (long long)o.epochs);
        cli_progress prog = {.tty = isatty(2), .label = label, .unit = "seq/s"};
        nep_epoch_stats es;
        const double lr0 = nep_linear_lr(o.lr, o.warmup_steps, total, tr.opt.step);
        nep_status s = nep_text_train_epoch(&tr, &ttrain, perm, o.lr, o.warmup_steps, total, &r.rng, cli_progress_cb,
                                            &prog, &es, &err);
        cli_progress_end(&prog);
        double dev_loss = 0;
        if (s == NEP_OK) s = nep_text_evaluate(&r.g, &tdev, o.eval_batch, &dev_top1, &dev_loss, &xo, &err);
        if (s != NEP_OK) {
            cli_error("finetune", &err);
            goto done;
        }
        seq_s_sum += es.img_per_s;
        char line[512];
        snprintf(line, sizeof line, "{\"epoch\":%lld,\"lr\":%g,\"loss\":%.6f,\"train_top1\":%.4f,\"dev_top1\":%.4f,"
                 "\"dev_loss\":%.6f,\"seq_per_s\":%.2f,\"seconds\":%.3f}", (long long)r.epoch + 1, lr0, es.loss,
                 es.top1, dev_top1, dev_loss, es.img_per_s, es.seconds);
        r.epoch++;
        if (commit(&r, &tr.opt, line)) goto done;
        r.epoch--;
        fprintf(human, "epoch %3lld/%lld  lr %.3g  loss %.4f  train %.2f%%  dev %.2f%%  %.1f seq/s  %.1fs\n",
                (long long)r.epoch + 1, (long long)o.epochs, lr0, es.loss, es.top1, dev_top1, es.img_per_s, es.seconds);
        fflush(human);
    }
    if (start == o.epochs && (nep_text_evaluate(&r.g, &tdev, o.eval_batch, &dev_top1, NULL, &xo, &err) != NEP_OK ||
                              commit(&r, NULL, NULL))) /* a run killed after its last checkpoint */
        goto done;
    double test_top1 = 0;
    bool labelled = ttest.n > 0 && ttest.labels[0] >= 0;
    if (labelled && nep_text_evaluate(&r.g, &ttest, o.eval_batch, &test_top1, NULL, &xo, &err) != NEP_OK) {
        cli_error("finetune", &err);
        goto done;
    }
    const double secs = nep_now() - t0;
    if (labelled) fprintf(human, "test top-1 %.2f%%  (dev %.2f%%)  %s written\n", test_top1, dev_top1, r.model);
    else fprintf(human, "dev top-1 %.2f%% (the test split has no labels)  %s written\n", dev_top1, r.model);
    if (o.json) {
        printf("{\"task\":\"%s\",\"dev_top1\":%.4f,", o.task, dev_top1);
        if (labelled) printf("\"test_top1\":%.4f,", test_top1);
        else printf("\"test_top1\":null,");
        printf("\"epochs\":%lld,\"n_train\":%lld,\"params\":%lld,\"seconds\":%.3f,\"train_seq_per_s\":%.2f,"
               "\"model\":\"%s\"}\n", (long long)r.epoch, (long long)ttrain.n, (long long)nep_graph_param_count(&r.g),
               secs, r.epoch > start ? seq_s_sum / (double)(r.epoch - start) : 0, r.model);
    }
    rc = 0;
done:
    free(perm);
    free(options);
    nep_trainer_free(&tr);
    nep_text_tensors_free(&ttrain), nep_text_tensors_free(&tdev), nep_text_tensors_free(&ttest);
    nep_text_dataset_free(&train), nep_text_dataset_free(&dev), nep_text_dataset_free(&test);
    nep_tokenizer_free(tok);
    nep_graph_free(&r.g);
    nep_hf_config_free(&r.cfg);
    return rc;
}
