/* nepenthe train: trains a model (nep_train_run), checkpointing after every epoch so that
 * --resume continues a killed run and ends with the same weights as an uninterrupted one. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/image_folder.h"
#include "nepenthe/checkpoint.h"

typedef struct train_opts {
    model_opts m;
    train_flags t;
    const char *out, *backend, *normalize;
    cli_data_opts data;
    int64_t epochs, seed, val, split_seed, threads;
    bool resume, json;
} train_opts;

/* Everything that must match for --resume to continue the same run (not --epochs,
 * which a resumed run may extend). */
static char *options_json(const train_opts *o, const nep_model_spec *spec,
                          const nep_optim_cfg *cfg) {
    cJSON *j = cJSON_CreateObject();
    char *arch = nep_model_spec_to_json(spec);
    cJSON_AddItemToObject(j, "arch", cJSON_Parse(arch));
    free(arch);
    cJSON_AddStringToObject(j, "data", o->data.name);
    if (o->data.image_size) cJSON_AddNumberToObject(j, "image_size", (double)o->data.image_size);
    if (o->data.domains) cJSON_AddStringToObject(j, "domains", o->data.domains);
    if (o->data.test_domains) cJSON_AddStringToObject(j, "test_domains", o->data.test_domains);
    cJSON_AddNumberToObject(j, "val", (double)o->val);
    cJSON_AddNumberToObject(j, "split_seed", (double)o->split_seed);
    if (strcmp(o->normalize, "computed")) cJSON_AddStringToObject(j, "normalize", o->normalize);
    cJSON_AddNumberToObject(j, "batch", (double)o->t.batch);
    cJSON_AddStringToObject(j, "optimizer", o->t.optimizer);
    cJSON_AddBoolToObject(j, "augment", o->t.augment);
    cJSON_AddNumberToObject(j, "lr", cfg->lr);
    cJSON_AddNumberToObject(j, "momentum", cfg->momentum);
    cJSON_AddNumberToObject(j, "wd", cfg->weight_decay);
    cJSON_AddBoolToObject(j, "nesterov", cfg->nesterov);
    cJSON *ms = cJSON_AddArrayToObject(j, "milestones");
    for (int i = 0; i < cfg->n_milestones; i++)
        cJSON_AddItemToArray(ms, cJSON_CreateNumber((double)cfg->milestones[i]));
    cJSON_AddNumberToObject(j, "gamma", cfg->gamma);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    /* a cosine's t_max is recorded: a resumed run cannot stretch its decay by --epochs */
    cli_recipe_json(cfg, j);
    if (o->t.sync_bn) cJSON_AddBoolToObject(j, "sync_bn", true);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

typedef struct run_state {
    nep_graph g;
    nep_model_spec spec;
    nep_normalize norm;
    nep_rng rng;
    int64_t epoch;          /* epochs completed */
    nep_safetensors meta;   /* resumed checkpoint (for optimizer state) */
    /* for the hooks */
    const train_opts *o;
    const char *options, *ckpt, *model, *log;
    FILE *human;
    cli_progress prog;
    double img_s_sum, val_top1; /* over the epochs run; of the last one */
    bool reported;          /* a hook printed the error already */
    const nep_comm *comm;   /* data-parallel ranks, or NULL; rank 0 alone writes and prints */
} run_state;

/* Appends one line to log.jsonl; says why when it cannot. */
static int append_log(const char *log, const char *line) {
    if (!cli_append_line(log, line)) return 0;
    return cli_errorf("train", "%s: cannot append: %s", log, strerror(errno));
}

/* The end of an epoch: model.safetensors, then the log line, then the checkpoint. The
 * checkpoint's rename is what marks the epoch done: a run killed before it redoes the
 * epoch on --resume (which drops log lines past the checkpoint) and ends the same.
 * With log_line NULL only the model file is written. */
static int save_epoch(run_state *r, const nep_optim *opt, const char *log_line) {
    const train_opts *o = r->o;
    if (nep_comm_rank(r->comm) != 0) return 0;
    char epoch[32];
    snprintf(epoch, sizeof epoch, "%lld", (long long)r->epoch);
    /* {"name", the image options, "val", "split_seed"}: the seed printed as the exact
     * integer it is (cJSON prints doubles) */
    cJSON *dj = cJSON_CreateObject();
    cli_data_json(&o->data, dj);
    char *head = cJSON_PrintUnformatted(dj), data[1024];
    cJSON_Delete(dj);
    if (!head) return cli_errorf("train", "out of memory");
    head[strlen(head) - 1] = 0; /* its closing brace */
    snprintf(data, sizeof data, "%s,\"val\":%lld,\"split_seed\":%lld}", head, (long long)o->val,
             (long long)o->split_seed);
    free(head);
    char *rng = cli_rng_hex(&r->rng);
    nep_st_meta extra[] = {{"epoch", epoch}, {"rng", rng}, {"options", (char *)r->options}, {"data", data}};
    nep_err err;
    int rc = 0;
    if (nep_checkpoint_save(r->model, &r->g, &r->spec, &r->norm, NULL, extra, 4, &err) != NEP_OK)
        rc = cli_error("train", &err);
    else if (log_line && append_log(r->log, log_line))
        rc = 1;
    else if (log_line &&
             nep_checkpoint_save(r->ckpt, &r->g, &r->spec, &r->norm, opt, extra, 4, &err) != NEP_OK)
        rc = cli_error("train", &err);
    free(rng);
    return rc;
}

/* --normalize: computed (each channel's mean and std over the training images), imagenet
 * (torchvision's 0.485,0.456,0.406 / 0.229,0.224,0.225), or MEANS:STDS given. */
static int parse_normalize(const char *s, const nep_dataset *train, nep_normalize *out) {
    static const nep_normalize imagenet = {3, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
    if (strcmp(s, "computed") == 0) {
        nep_err err;
        if (train->source)
            fprintf(stderr, "nepenthe train: computing the normalization: one decoding pass over %lld images "
                    "(--normalize imagenet or MEANS:STDS skips it)\n", (long long)train->n);
        return nep_image_dataset_normalize(train, out, &err) == NEP_OK ? 0 : cli_error("train", &err);
    }
    if (strcmp(s, "imagenet") == 0) {
        *out = imagenet;
    } else {
        *out = (nep_normalize){.c = 0};
        const char *p = s;
        int n_std = 0;
        for (bool stds = false;;) {
            char *end;
            const double v = strtod(p, &end);
            if (end == p || (stds ? n_std : out->c) == NEP_MAX_CHANNELS) break;
            if (stds) out->std[n_std++] = (float)v;
            else out->mean[out->c++] = (float)v;
            p = end;
            if (*p == ',') p++;
            else if (*p == ':' && !stds) p++, stds = true;
            else break;
        }
        bool ok = *p == 0 && out->c > 0 && n_std == out->c;
        for (int i = 0; ok && i < out->c; i++) ok = out->std[i] > 0 && isfinite(out->mean[i]) && isfinite(out->std[i]);
        if (!ok)
            return cli_errorf("train", "--normalize: '%s' is not computed, imagenet or MEANS:STDS (one per channel, "
                              "stds positive, e.g. 0.5,0.5,0.5:0.25,0.25,0.25)", s);
    }
    if (out->c != train->c)
        return cli_errorf("train", "--normalize: %d channel(s) given, the images have %d", out->c, train->c);
    return 0;
}

static int resume(const char *ckpt, const char *options, run_state *r) {
    nep_err err;
    nep_normalize norm;
    if (nep_checkpoint_load(ckpt, &r->g, &r->spec, &norm, &r->meta, &err) != NEP_OK)
        return cli_error("train", &err);
    const char *stored = nep_st_meta_get(&r->meta, "options");
    const char *epoch = nep_st_meta_get(&r->meta, "epoch");
    /* The epoch count a run completed: a damaged one ("-3", "x") would restart the
     * schedule somewhere else or skip restoring the optimizer. */
    char *end = NULL;
    errno = 0;
    long long epochs = epoch ? strtoll(epoch, &end, 10) : -1;
    if (!stored || !epoch || errno || end == epoch || *end || epochs < 0 ||
        cli_rng_from_hex(nep_st_meta_get(&r->meta, "rng"), &r->rng))
        return cli_errorf("train", "%s: not a training checkpoint (no options, epoch count or "
                          "RNG state)", ckpt);
    if (strcmp(stored, options) != 0)
        return cli_errorf("train", "--resume: %s was written with other options:\n  stored:  %s\n  "
                          "current: %s", ckpt, stored, options);
    r->epoch = epochs;
    r->norm = norm;
    return 0;
}

/* ---- nep_train_run's hooks ------------------------------------------------------------- */

static nep_status on_epoch(void *ctx, const nep_graph *g, const nep_optim *opt, const nep_rng *rng,
                           const nep_train_row *row, nep_err *err) {
    run_state *r = ctx;
    r->epoch = row->epoch;
    r->img_s_sum += row->img_per_s;
    r->val_top1 = row->val_top1;
    char line[512];
    snprintf(line, sizeof line, "{\"epoch\":%lld,\"lr\":%g,\"loss\":%.6f,\"train_top1\":%.4f,"
             "\"val_top1\":%.4f,\"val_loss\":%.6f,\"img_per_s\":%.1f,\"seconds\":%.3f,\"decode_wait_s\":%.3f}",
             (long long)row->epoch, row->lr, row->loss, row->train_top1, row->val_top1, row->val_loss,
             row->img_per_s, row->seconds, row->decode_wait_s);
    if (cli_any_failed(r->comm, save_epoch(r, opt, line))) { /* rank 0 said why */
        r->reported = true;
        return nep_fail(err, NEP_ERR_IO, "(reported)");
    }
    fprintf(r->human, "epoch %3lld/%lld  lr %.4g  loss %.4f  train %.2f%%  val %.2f%%  %.*f img/s  %.1fs",
            (long long)row->epoch, (long long)r->o->epochs, row->lr, row->loss, row->train_top1,
            row->val_top1, row->img_per_s < 10 ? 2 : 0, row->img_per_s, row->seconds); /* ResNet-18 at 224: 0.46 */
    if (r->o->data.stream) fprintf(r->human, " (%.1fs waiting on decoding)", row->decode_wait_s);
    fputc('\n', r->human);
    fflush(r->human);
    return NEP_OK;
}

static nep_status on_restore_optim(void *ctx, const nep_graph *g, nep_optim *opt, nep_err *err) {
    run_state *r = ctx;
    return nep_checkpoint_load_optim(r->ckpt, &r->meta, g, opt, err);
}

static void on_phase(void *ctx, const char *label) {
    run_state *r = ctx;
    if (nep_comm_rank(r->comm) != 0) return;
    if (label) r->prog = (cli_progress){.tty = isatty(2), .label = label};
    else cli_progress_end(&r->prog);
}

static void on_progress(void *ctx, int64_t done, int64_t total, double loss, double seconds) {
    if (nep_comm_rank(((run_state *)ctx)->comm) != 0) return;
    cli_progress_cb(&((run_state *)ctx)->prog, done, total, loss, seconds);
}

int cmd_train(int argc, char **argv) { return cli_train(argc, argv, NULL); }

int cli_train(int argc, char **argv, const nep_comm *comm) {
    train_opts o = {.data = CLI_DATA_DEFAULT, .backend = "cpu", .normalize = "computed", .epochs = 10, .val = 5000};
    model_opts_default(&o.m);
    train_flags_default(&o.t);
    cli_opt opts[CLI_MAX_OPTS];
    int n = 0;
    model_opts_table(&o.m, opts, &n);
    const cli_opt data_opts[] = {DATA_OPTS(&o.data)};
    for (int i = 0; i < DATA_OPTS_COUNT; i++) opts[n++] = data_opts[i];
    opts[n++] = (cli_opt){"val", OPT_INT, &o.val, "training images held out for validation"};
    opts[n++] = (cli_opt){"split-seed", OPT_INT, &o.split_seed, "seed of the train/validation split"};
    opts[n++] = (cli_opt){"normalize", OPT_STR, &o.normalize, "per-channel input normalization (x/255 - mean) / std: computed (over the training images), imagenet (torchvision's 0.485,0.456,0.406:0.229,0.224,0.225) or MEANS:STDS"};
    opts[n++] = (cli_opt){"epochs", OPT_INT, &o.epochs, "epochs"};
    train_flags_table(&o.t, opts, &n);
    opts[n++] = (cli_opt){"seed", OPT_INT, &o.seed, "seed of initialization, shuffling and dropout"};
    opts[n++] = (cli_opt)THREADS_OPT(&o.threads);
    opts[n++] = (cli_opt)BACKEND_OPT(&o.backend);
    opts[n++] = (cli_opt){"out", OPT_STR, &o.out, "output directory (required)"};
    opts[n++] = (cli_opt){"resume", OPT_FLAG, &o.resume, "continue the run in --out from its last epoch"};
    opts[n++] = (cli_opt){"json", OPT_FLAG, &o.json, "end with one JSON line on stdout"};
    opts[n++] = (cli_opt)OPT_END;
    int rc = cli_parse("train", "--out DIR [options]", opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!o.out) return cli_errorf("train", "--out DIR is required") + 1;
    if (o.epochs < 1) return cli_errorf("train", "--epochs must be positive") + 1;
    cli_set_threads(o.threads);

    run_state r = {0};
    nep_optim_cfg cfg;
    nep_exec_opts xo;
    if (model_opts_spec("train", &o.m, &r.spec) || train_flags_cfg("train", &o.t, o.epochs, "epochs", &cfg) ||
        cli_exec_opts("train", o.backend, &xo))
        return 2;
    const bool lead = nep_comm_rank(comm) == 0;
    FILE *quiet = lead ? NULL : fopen("/dev/null", "w"), *human = !lead ? quiet : o.json ? stderr : stdout;
    if (!human) return cli_errorf("train", "rank %d: cannot open /dev/null", nep_comm_rank(comm));
    nep_dataset full = {0}, train = {0}, val = {0}, test = {0};
    nep_err err;
    char *options = NULL;
    char ckpt[4096], model[4096], log[4096];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", o.out);
    snprintf(model, sizeof model, "%s/model.safetensors", o.out);
    snprintf(log, sizeof log, "%s/log.jsonl", o.out);
    rc = 1;
    if (cli_load_data("train", &o.data, true, &full) || cli_load_data("train", &o.data, false, &test))
        goto done;
    if (!o.m.input) r.spec.in_c = full.c, r.spec.in_h = full.h, r.spec.in_w = full.w;
    if (cli_check_data_fits("train", &r.spec, &full) || cli_check_data_fits("train", &r.spec, &test))
        goto done;
    options = options_json(&o, &r.spec, &cfg);
    if (o.val < 0 || o.val >= full.n) {
        cli_errorf("train", "--val: %lld is not in [0, %lld)", (long long)o.val, (long long)full.n);
        goto done;
    }
    if (nep_dataset_split(&full, o.val, (uint64_t)o.split_seed, &train, &val, &err) != NEP_OK) {
        cli_error("train", &err);
        goto done;
    }
    if (o.resume && access(ckpt, F_OK) == 0) {
        if (resume(ckpt, options, &r)) goto done;
        fprintf(human, "resuming %s after epoch %lld\n", ckpt, (long long)r.epoch);
        if (lead && cli_trim_jsonl("train", log, "epoch", r.epoch)) goto done;
    } else {
        if (o.resume) fprintf(human, "no %s yet: starting a new run\n", ckpt);
        if (lead && cli_mkdirs(o.out)) {
            cli_errorf("train", "--out: cannot create directory %s: %s", o.out, strerror(errno));
            goto done;
        }
        if (parse_normalize(o.normalize, &train, &r.norm)) goto done;
        nep_rng_seed(&r.rng, (uint64_t)o.seed);
        if (nep_model_build(&r.spec, &r.g, &r.rng, &err) != NEP_OK) {
            cli_error("train", &err);
            goto done;
        }
        if (lead) remove(log);
    }
    fprintf(human, "model %s: %lld parameters; %lld train, %lld val, %lld test images\n",
            r.spec.name, (long long)nep_graph_param_count(&r.g), (long long)train.n,
            (long long)val.n, (long long)test.n);
    const double t0 = nep_now();
    const int64_t start = r.epoch;
    if (o.t.sync_bn) xo.sync_bn = comm; /* one process: its batch is the whole batch already */
    r.o = &o, r.options = options, r.ckpt = ckpt, r.model = model, r.log = log, r.human = human, r.comm = comm;
    if (nep_comm_many(comm)) {
        const char *what = "the options, data split, normalization and weights";
        if (cli_ranks_agree("train", comm, options, (int64_t)strlen(options), what) ||
            cli_ranks_agree("train", comm, &r.norm, sizeof r.norm, what) ||
            cli_ranks_agree_samples("train", comm, &train, what) ||
            cli_ranks_agree("train", comm, r.g.values, r.g.n_values * (int64_t)sizeof(nep_real), what))
            goto done;
        fprintf(human, "data parallel over %d ranks: each takes 1/%d of every batch of %lld\n", comm->size, comm->size,
                (long long)o.t.batch);
    }
    const nep_train_cfg tc = {.optim = cfg, .epochs = o.epochs, .batch = o.t.batch,
                              .augment = train_flags_augmentation(&o.t), .train = &train,
                              .val = &val, .norm = &r.norm, .exec = &xo, .comm = comm};
    const nep_train_hooks hooks = {.ctx = &r, .epoch = on_epoch, .restore_optim = on_restore_optim,
                                   .phase = on_phase, .progress = on_progress};
    nep_status s = nep_train_run(&r.g, &tc, &r.epoch, &r.rng, &hooks, &err);
    if (s == NEP_ERR_NUMERIC) {
        cli_errorf("train", "%s; stopped, the last good checkpoint (%lld epochs) stays in %s",
                   err.msg, (long long)r.epoch, ckpt);
        goto done;
    }
    if (s != NEP_OK) {
        if (!r.reported) cli_error("train", &err);
        goto done;
    }
    double val_top1 = r.val_top1;
    double test_top1 = 0, test_loss = 0, secs = nep_now() - t0;
    if (nep_split_evaluate(&(nep_split){.images = &test, .norm = &r.norm, .comm = comm}, &r.g, 256, &test_top1,
                           &test_loss, &xo, &err) != NEP_OK) {
        cli_error("train", &err);
        goto done;
    }
    if (r.epoch == start && start > 0) { /* a run killed after its last checkpoint */
        nep_split_evaluate(&(nep_split){.images = &val, .norm = &r.norm, .comm = comm}, &r.g, 256, &val_top1, NULL, &xo,
                           &err);
        if (save_epoch(&r, NULL, NULL)) goto done;
    }
    fprintf(human, "test top-1 %.2f%%  (val %.2f%%)  %s written\n", test_top1, val_top1, model);
    if (o.json && lead)
        printf("{\"test_top1\":%.4f,\"val_top1\":%.4f,\"test_loss\":%.6f,\"params\":%lld,"
               "\"epochs\":%lld,\"seconds\":%.3f,\"train_img_per_s\":%.1f,\"checkpoint\":\"%s\"}\n",
               test_top1, val_top1, test_loss, (long long)nep_graph_param_count(&r.g),
               (long long)r.epoch, secs,
               r.epoch > start ? r.img_s_sum / (double)(r.epoch - start) : 0, model);
    rc = 0;
done:
    if (quiet) fclose(quiet);
    free(options);
    nep_graph_free(&r.g);
    nep_st_free(&r.meta);
    nep_dataset_free(&full);
    nep_dataset_free(&train);
    nep_dataset_free(&val);
    nep_dataset_free(&test);
    return rc;
}
