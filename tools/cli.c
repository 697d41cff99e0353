#include "cli.h"
#include "nepenthe/file.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>
#include <cjson/cJSON.h>
#include <omp.h>

static void print_default(const cli_opt *o) {
    switch (o->kind) {
    case OPT_STR:
        if (*(const char **)o->dst) printf(" (default: %s)", *(const char **)o->dst);
        break;
    case OPT_INT: printf(" (default: %lld)", (long long)*(int64_t *)o->dst); break;
    case OPT_REAL: printf(" (default: %g)", *(double *)o->dst); break;
    case OPT_FLAG: break;
    }
}

static void print_help(const char *cmd, const char *usage, const cli_opt *opts) {
    printf("usage: nepenthe %s %s\n\n%s options:\n", cmd, usage, cmd);
    for (const cli_opt *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s", o->name,
                 o->kind == OPT_FLAG ? "" : o->kind == OPT_STR ? " S" : o->kind == OPT_INT ? " N" : " X");
        printf("  %-24s %s", left, o->help);
        if (!strstr(o->help, "(default")) print_default(o); /* else the help states it */
        printf("\n");
    }
    printf("  %-24s %s\n", "--help", "show this help");
}

static int parse_value(const char *cmd, cli_opt *o, const char *v) {
    char *end;
    errno = 0;
    if (o->kind == OPT_STR) {
        *(const char **)o->dst = v;
    } else if (o->kind == OPT_INT) {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end)
            return cli_errorf(cmd, "--%s: '%s' is not an integer", o->name, v) + 1;
        *(int64_t *)o->dst = x;
    } else {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x))
            return cli_errorf(cmd, "--%s: '%s' is not a finite number", o->name, v) + 1;
        *(double *)o->dst = x;
    }
    return 0;
}

int cli_parse(const char *cmd, const char *usage, cli_opt *opts, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help(cmd, usage, opts);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0)
            return cli_errorf(cmd, "unexpected argument '%s' (see nepenthe %s --help)", a, cmd) + 1;
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        cli_opt *o = opts;
        while (o->name && !(strlen(o->name) == len && strncmp(o->name, name, len) == 0)) o++;
        if (!o->name)
            return cli_errorf(cmd, "unknown option '--%.*s' (see nepenthe %s --help)", (int)len,
                              name, cmd) + 1;
        o->seen = true;
        if (o->kind == OPT_FLAG) {
            if (eq) return cli_errorf(cmd, "--%s takes no value", o->name) + 1;
            *(bool *)o->dst = true;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return cli_errorf(cmd, "--%s needs a value", o->name) + 1;
        if (parse_value(cmd, o, v)) return 2;
    }
    return 0;
}

bool cli_seen(const cli_opt *opts, const char *name) {
    for (; opts->name; opts++)
        if (strcmp(opts->name, name) == 0) return opts->seen;
    return false;
}

int cli_parse_list(const char *flag, const char *s, int64_t *out, int max) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || (*end && *end != ',') || n >= max) {
            fprintf(stderr, "nepenthe: --%s: '%s' is not a list of at most %d integers like 1024,1024\n",
                    flag, s, max);
            return -1;
        }
        out[n++] = v;
        p = *end ? end + 1 : end;
    }
    return n;
}

int cli_error(const char *cmd, const nep_err *err) {
    fprintf(stderr, "nepenthe %s: %s\n", cmd, err->msg);
    return 1;
}

int cli_errorf(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nepenthe %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

void model_opts_default(model_opts *m) {
    *m = (model_opts){.model = "mlp", .hidden = "1024,1024,1024", .slope = 0.01, .dropout = 0,
                      .classes = 10, .width_mult = 1.0, .drop_path = -1};
}

void model_opts_table(model_opts *m, cli_opt *opts, int *n) {
    opts[(*n)++] = (cli_opt){"model", OPT_STR, &m->model, "architecture: mlp, resmlp, tokmlp, cnn, resnet18, resnet20, resnet50, resnet152, mobilenetv2, vit, swin"};
    opts[(*n)++] = (cli_opt){"width-mult", OPT_REAL, &m->width_mult, "mobilenetv2 width multiplier"};
    opts[(*n)++] = (cli_opt){"stem-pool", OPT_FLAG, &m->stem_pool, "resnet: max-pool after the stem"};
    opts[(*n)++] = (cli_opt){"hidden", OPT_STR, &m->hidden, "hidden widths, comma-separated (resmlp, tokmlp: one per block)"};
    opts[(*n)++] = (cli_opt){"width", OPT_INT, &m->width, "embedding width (default: resmlp, tokmlp 256; vit 768; swin 96, the first stage's)"};
    opts[(*n)++] = (cli_opt){"patch", OPT_INT, &m->patch, "vit, swin: patch size (default: vit 16, swin 4)"};
    opts[(*n)++] = (cli_opt){"depths", OPT_STR, &m->depths, "vit: encoder layers; swin: blocks per stage, comma-separated (default: vit 12, swin 2,2,6,2)"};
    opts[(*n)++] = (cli_opt){"heads", OPT_STR, &m->heads, "vit: attention heads; swin: per stage (default: vit 12, swin 3,6,12,24)"};
    opts[(*n)++] = (cli_opt){"window", OPT_INT, &m->window, "swin: window size (default: 7)"};
    opts[(*n)++] = (cli_opt){"mlp-ratio", OPT_REAL, &m->mlp_ratio, "vit, swin: MLP hidden width / width (default: 4)"};
    opts[(*n)++] = (cli_opt){"drop-path", OPT_REAL, &m->drop_path, "swin: stochastic depth of the last block, linear from 0 at the first (default: 0.2)"};
    opts[(*n)++] = (cli_opt){"act", OPT_STR, &m->act, "rectifier: relu, leaky_relu, prelu, relu6, gelu, silu (default relu; vit, swin: gelu)"};
    opts[(*n)++] = (cli_opt){"slope", OPT_REAL, &m->slope, "leaky_relu negative slope"};
    opts[(*n)++] = (cli_opt){"dropout", OPT_REAL, &m->dropout, "dropout after each rectifier (vit, swin: torchvision's dropout)"};
    opts[(*n)++] = (cli_opt){"input", OPT_STR, &m->input, "input shape C,H,W (default: the data's; bench: 1,28,28 for MLPs and transformers, 3,32,32 for conv nets)"};
    opts[(*n)++] = (cli_opt){"classes", OPT_INT, &m->classes, "output classes"};
    opts[(*n)++] = (cli_opt){"identity", OPT_STR, &m->identity, "rectifier layers that are the identity from initialization, comma-separated names (the depth-matched baseline of paper Table 5: the layers a prune run removed)"};
}

/* --identity's comma-separated layer names into spec (the builder refuses unknown ones). */
static int identity_opts(const char *cmd, const char *names, nep_model_spec *spec) {
    for (const char *p = names; p && *p;) {
        const size_t len = strcspn(p, ",");
        if (len == 0 || len >= NEP_NAME_LEN)
            return cli_errorf(cmd, "--identity: '%s' is not a comma-separated list of layer names", names);
        if (spec->n_identity == NEP_MAX_IDENTITY)
            return cli_errorf(cmd, "--identity: more than %d layers", NEP_MAX_IDENTITY);
        snprintf(spec->identity[spec->n_identity++], NEP_NAME_LEN, "%.*s", (int)len, p);
        p += len + (p[len] == ',');
    }
    return 0;
}

/* vit, swin: the flags given, over torchvision's defaults in spec. */
static int transformer_opts(const char *cmd, const model_opts *m, nep_model_spec *spec) {
    if (m->width) spec->width = m->width;
    if (m->patch) spec->patch = (int)m->patch;
    if (m->window) spec->window = (int)m->window;
    if (m->mlp_ratio) spec->mlp_ratio = m->mlp_ratio;
    if (m->drop_path >= 0) spec->drop_path = m->drop_path;
    int64_t v[NEP_MAX_STAGES];
    const char *lists[2] = {m->depths, m->heads}, *flags[2] = {"depths", "heads"};
    int *dst[2] = {spec->depths, spec->heads}, n[2] = {spec->n_stages, spec->n_stages};
    for (int k = 0; k < 2; k++) {
        if (!lists[k]) continue;
        if ((n[k] = cli_parse_list(flags[k], lists[k], v, NEP_MAX_STAGES)) < 0) return 1;
        for (int i = 0; i < n[k]; i++) {
            if (v[i] < 1 || v[i] > 4096) return cli_errorf(cmd, "--%s: %lld is not in [1, 4096]", flags[k], (long long)v[i]);
            dst[k][i] = (int)v[i];
        }
    }
    const bool vit = strcmp(spec->name, "vit") == 0;
    if (n[0] != n[1] || (vit && n[0] != 1))
        return cli_errorf(cmd, "--depths, --heads: %s (got %d and %d entries)",
                          vit ? "vit has one stage: one number each" : "one entry per stage each", n[0], n[1]);
    spec->n_stages = n[0];
    if (spec->patch < 1 || spec->patch > 4096) return cli_errorf(cmd, "--patch: must be in [1, 4096]");
    if (!vit && (spec->window < 1 || spec->window > 4096)) return cli_errorf(cmd, "--window: must be in [1, 4096]");
    if (!(spec->mlp_ratio > 0 && spec->mlp_ratio <= 64)) return cli_errorf(cmd, "--mlp-ratio: must be in (0, 64]");
    if (!(spec->drop_path >= 0 && spec->drop_path < 1)) return cli_errorf(cmd, "--drop-path: must be in [0, 1)");
    return 0;
}

int model_opts_spec(const char *cmd, const model_opts *m, nep_model_spec *spec) {
    static const char *const known[] = {"mlp", "resmlp", "tokmlp", "cnn", "resnet18", "resnet20",
                                        "resnet50", "resnet152", "mobilenetv2", "vit", "swin"};
    *spec = nep_model_spec_default();
    bool ok = false, mlp_like = strcmp(m->model, "mlp") == 0 || strcmp(m->model, "resmlp") == 0 ||
                        strcmp(m->model, "tokmlp") == 0;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) ok |= strcmp(m->model, known[i]) == 0;
    if (!ok)
        return cli_errorf(cmd, "--model: unknown model '%s' (known: mlp, resmlp, tokmlp, cnn, resnet18, resnet20, "
                          "resnet50, resnet152, mobilenetv2, vit, swin)", m->model);
    if (!(m->width_mult > 0 && m->width_mult <= 4)) return cli_errorf(cmd, "--width-mult: must be in (0, 4]");
    spec->width_mult = m->width_mult;
    spec->stem_pool = m->stem_pool;
    if (m->width < 0) return cli_errorf(cmd, "--width: must be positive");
    if (m->width) spec->width = m->width;
    snprintf(spec->name, sizeof spec->name, "%s", m->model);
    int n = cli_parse_list("hidden", m->hidden, spec->hidden, NEP_MAX_HIDDEN);
    if (n < 0) return 1;
    spec->n_hidden = n;
    const bool transformer = nep_model_transformer_defaults(spec);
    if (transformer && transformer_opts(cmd, m, spec)) return 1;
    if (transformer) spec->n_hidden = 0;
    int a = nep_act_from_name(m->act ? m->act : transformer ? "gelu" : "relu");
    if (a < 0)
        return cli_errorf(cmd, "--act: unknown rectifier '%s' (relu, leaky_relu, prelu, relu6, "
                          "gelu, silu)", m->act);
    spec->act = (nep_op_kind)a;
    int64_t in[3];
    const char *input = m->input ? m->input : mlp_like || transformer ? "1,28,28" : "3,32,32";
    if (cli_parse_list("input", input, in, 3) != 3 || in[0] < 1 || in[1] < 1 || in[2] < 1)
        return cli_errorf(cmd, "--input: '%s' is not C,H,W with positive sizes", input);
    spec->in_c = (int)in[0], spec->in_h = (int)in[1], spec->in_w = (int)in[2];
    if (m->classes < 2) return cli_errorf(cmd, "--classes: needs at least 2");
    spec->classes = (int)m->classes;
    if (!(m->dropout >= 0 && m->dropout < 1)) return cli_errorf(cmd, "--dropout: must be in [0, 1)");
    spec->slope = m->slope;
    spec->dropout = m->dropout;
    return identity_opts(cmd, m->identity, spec);
}

void train_flags_default(train_flags *t) {
    *t = (train_flags){.optimizer = "sgd", .milestones = "", .schedule = "multistep", .lr = 0.05,
                       .momentum = 0.9, .wd = 5e-4, .gamma = 0.1, .batch = 128,
                       .warmup_start_factor = nep_optim_defaults(NEP_OPTIM_SGD).warmup_start_factor};
}

void train_flags_table(train_flags *t, cli_opt *opts, int *n) {
    opts[(*n)++] = (cli_opt){"batch", OPT_INT, &t->batch, "batch size"};
    opts[(*n)++] = (cli_opt){"optimizer", OPT_STR, &t->optimizer, "sgd or adamw"};
    opts[(*n)++] = (cli_opt){"lr", OPT_REAL, &t->lr, "learning rate"};
    opts[(*n)++] = (cli_opt){"momentum", OPT_REAL, &t->momentum, "SGD momentum"};
    opts[(*n)++] = (cli_opt){"nesterov", OPT_FLAG, &t->nesterov, "Nesterov momentum"};
    opts[(*n)++] = (cli_opt){"wd", OPT_REAL, &t->wd, "weight decay (decoupled for adamw)"};
    opts[(*n)++] = (cli_opt){"milestones", OPT_STR, &t->milestones, "epochs at which lr *= gamma, e.g. 5,8"};
    opts[(*n)++] = (cli_opt){"gamma", OPT_REAL, &t->gamma, "learning-rate decay at each milestone"};
    opts[(*n)++] = (cli_opt){"schedule", OPT_STR, &t->schedule, "learning-rate schedule, stepped per epoch: multistep (--milestones, --gamma; MultiStepLR) or cosine (CosineAnnealingLR down to --min-lr over the epochs after the warm-up)"};
    opts[(*n)++] = (cli_opt){"min-lr", OPT_REAL, &t->min_lr, "cosine: the final learning rate (eta_min)"};
    opts[(*n)++] = (cli_opt){"warmup-epochs", OPT_INT, &t->warmup_epochs, "epochs of linear warm-up from lr x --warmup-start-factor (LinearLR, then the schedule via SequentialLR: milestones count from its end)"};
    opts[(*n)++] = (cli_opt){"warmup-start-factor", OPT_REAL, &t->warmup_start_factor, "warm-up: the first epoch's fraction of --lr, in (0, 1]"};
    opts[(*n)++] = (cli_opt){"label-smoothing", OPT_REAL, &t->label_smoothing, "training loss label smoothing in [0, 1] (F.cross_entropy's label_smoothing)"};
    opts[(*n)++] = (cli_opt){"clip-grad-norm", OPT_REAL, &t->clip_grad_norm, "clip the gradients' total L2 norm to this before each step (clip_grad_norm_; 0: off)"};
    opts[(*n)++] = (cli_opt){"group-lasso", OPT_REAL, &t->group_lasso, "SSL's group lasso: add lambda * sum_l sqrt(|W_l|) ||W_l||_2 over the weights of the rectifier layers to the loss (0: off)"};
    opts[(*n)++] = (cli_opt){"sync-bn", OPT_FLAG, &t->sync_bn, "nepenthe-mpi: BatchNorm's batch statistics over "
                             "all ranks, as PyTorch's SyncBatchNorm (default: each rank its own rows, as DDP)"};
    opts[(*n)++] = (cli_opt){"no-decay-norms-biases", OPT_FLAG, &t->no_decay_norms_biases, "no weight decay on biases, norm weights (every parameter of ndim <= 1), class tokens, position embeddings and relative position bias tables, as timm"};
    opts[(*n)++] = (cli_opt){"augment", OPT_FLAG, &t->augment, "random crop after 4-pixel zero padding and horizontal flip"};
}

const nep_augment *train_flags_augmentation(const train_flags *t) {
    static const nep_augment crop_flip = {.pad = 4, .flip = true};
    return t->augment ? &crop_flip : NULL;
}

/* The schedule and recipe flags, after the optimizer's (train_flags_cfg). */
static int recipe_cfg(const char *cmd, const train_flags *t, int64_t epochs, const char *epochs_flag,
                      nep_optim_cfg *cfg) {
    if (strcmp(t->schedule, "cosine") == 0)
        cfg->schedule = NEP_SCHEDULE_COSINE;
    else if (strcmp(t->schedule, "multistep") != 0)
        return cli_errorf(cmd, "--schedule: unknown '%s' (multistep, cosine)", t->schedule);
    if (t->warmup_epochs < 0) return cli_errorf(cmd, "--warmup-epochs: must be non-negative");
    if (!(t->warmup_start_factor > 0 && t->warmup_start_factor <= 1))
        return cli_errorf(cmd, "--warmup-start-factor: must be in (0, 1]");
    if (!(t->min_lr >= 0)) return cli_errorf(cmd, "--min-lr: must be non-negative");
    if (t->min_lr > 0 && cfg->schedule != NEP_SCHEDULE_COSINE)
        return cli_errorf(cmd, "--min-lr needs --schedule cosine");
    if (!(t->label_smoothing >= 0 && t->label_smoothing <= 1))
        return cli_errorf(cmd, "--label-smoothing: must be in [0, 1]");
    if (!(t->group_lasso >= 0 && isfinite(t->group_lasso))) return cli_errorf(cmd, "--group-lasso: must be non-negative");
    cfg->group_lasso = t->group_lasso;
    if (!(t->clip_grad_norm >= 0)) return cli_errorf(cmd, "--clip-grad-norm: must be non-negative (0: off)");
    cfg->warmup_epochs = t->warmup_epochs;
    cfg->warmup_start_factor = t->warmup_start_factor;
    cfg->min_lr = t->min_lr;
    cfg->label_smoothing = t->label_smoothing;
    cfg->clip_grad_norm = t->clip_grad_norm;
    cfg->no_decay_1d = t->no_decay_norms_biases;
    if (cfg->schedule != NEP_SCHEDULE_COSINE) return 0;
    if (cfg->n_milestones)
        return cli_errorf(cmd, "--schedule cosine takes no --milestones (they are the multistep schedule's)");
    /* CosineAnnealingLR(T_max = epochs - warm-up), as torchvision's reference recipe;
     * no epochs (prune --retrain-epochs 0) train nothing and need no schedule. */
    cfg->t_max = epochs - t->warmup_epochs;
    if (epochs > 0 && cfg->t_max < 1)
        return cli_errorf(cmd, "--schedule cosine: --%s (%lld) must exceed --warmup-epochs (%lld)",
                          epochs_flag, (long long)epochs, (long long)t->warmup_epochs);
    return 0;
}

void cli_recipe_json(const nep_optim_cfg *cfg, cJSON *j) {
    if (cfg->schedule == NEP_SCHEDULE_COSINE) {
        cJSON_AddStringToObject(j, "schedule", "cosine");
        cJSON_AddNumberToObject(j, "t_max", (double)cfg->t_max);
        cJSON_AddNumberToObject(j, "min_lr", cfg->min_lr);
    }
    if (cfg->warmup_epochs > 0) {
        cJSON_AddNumberToObject(j, "warmup_epochs", (double)cfg->warmup_epochs);
        cJSON_AddNumberToObject(j, "warmup_start_factor", cfg->warmup_start_factor);
    }
    if (cfg->label_smoothing > 0) cJSON_AddNumberToObject(j, "label_smoothing", cfg->label_smoothing);
    if (cfg->clip_grad_norm > 0) cJSON_AddNumberToObject(j, "clip_grad_norm", cfg->clip_grad_norm);
    if (cfg->no_decay_1d) cJSON_AddBoolToObject(j, "no_decay_norms_biases", true);
    if (cfg->group_lasso > 0) cJSON_AddNumberToObject(j, "group_lasso", cfg->group_lasso);
}

int train_flags_cfg(const char *cmd, const train_flags *t, int64_t epochs, const char *epochs_flag,
                    nep_optim_cfg *cfg) {
    if (strcmp(t->optimizer, "sgd") == 0)
        *cfg = nep_optim_defaults(NEP_OPTIM_SGD);
    else if (strcmp(t->optimizer, "adamw") == 0)
        *cfg = nep_optim_defaults(NEP_OPTIM_ADAMW);
    else
        return cli_errorf(cmd, "--optimizer: unknown '%s' (sgd, adamw)", t->optimizer);
    cfg->lr = t->lr;
    cfg->momentum = t->momentum;
    cfg->weight_decay = t->wd;
    cfg->nesterov = t->nesterov;
    cfg->gamma = t->gamma;
    if (t->batch < 1) return cli_errorf(cmd, "--batch: must be positive");
    if (!(t->lr > 0)) return cli_errorf(cmd, "--lr: must be positive");
    if (!(t->momentum >= 0 && t->momentum < 1)) return cli_errorf(cmd, "--momentum: must be in [0, 1)");
    if (!(t->wd >= 0)) return cli_errorf(cmd, "--wd: must be non-negative");
    if (t->nesterov && (cfg->kind != NEP_OPTIM_SGD || t->momentum <= 0))
        return cli_errorf(cmd, "--nesterov needs --optimizer sgd and a positive --momentum");
    if (*t->milestones) {
        int n = cli_parse_list("milestones", t->milestones, cfg->milestones, NEP_MAX_MILESTONES);
        if (n < 0) return 1;
        cfg->n_milestones = n;
    }
    return recipe_cfg(cmd, t, epochs, epochs_flag, cfg);
}

int cli_check_data_fits(const char *cmd, const nep_model_spec *spec, const nep_dataset *d) {
    if (d->c != spec->in_c || d->h != spec->in_h || d->w != spec->in_w)
        return cli_errorf(cmd, "the data's images are %dx%dx%d but the model's input is %dx%dx%d "
                          "(--input)", d->c, d->h, d->w, spec->in_c, spec->in_h, spec->in_w);
    if (d->classes > spec->classes)
        return cli_errorf(cmd, "the data has %d classes but the model outputs %d (--classes)",
                          d->classes, spec->classes);
    return 0;
}

bool cli_json_integer(const cJSON *v, double lo, double hi) {
    return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble < hi &&
           v->valuedouble == floor(v->valuedouble);
}

/* An integer of the "data" metadata in [lo, hi) into *out; 0 when the key is absent
 * (older checkpoints: *out stays), -1 when it is there but not such an integer. */
static int data_int(const cJSON *j, const char *key, double lo, double hi, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) return 0;
    if (!cli_json_integer(v, lo, hi)) return -1;
    *out = (int64_t)v->valuedouble;
    return 0;
}

/* A string of the "data" metadata, where the command's own flag left *out unset. */
static void data_str(const cJSON *j, const char *key, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!*out && cJSON_IsString(v)) *out = v->valuestring;
}

int cli_load_splits(const char *cmd, const char *ckpt, const nep_safetensors *meta,
                    const nep_model_spec *spec, const nep_normalize *norm, const cli_data_opts *d,
                    cli_data *out) {
    memset(out, 0, sizeof *out);
    const char *dj = nep_st_meta_get(meta, "data");
    cJSON *j = cJSON_Parse(dj ? dj : "{}");
    int64_t val = 0, split_seed = 0; /* train records --split-seed as a signed integer */
    cli_data_opts use = *d; /* the image decoding the model was trained with, unless given */
    int bad = data_int(j, "val", 0, 0x1p53, &val) ||
              data_int(j, "split_seed", -0x1p63, 0x1p63, &split_seed) ||
              (!use.image_size && data_int(j, "image_size", 1, 1 << 16, &use.image_size));
    data_str(j, "domains", &use.domains);
    data_str(j, "test_domains", &use.test_domains);
    if (bad) {
        cJSON_Delete(j);
        return cli_errorf(cmd, "%s: its 'data' metadata has a 'val', 'split_seed' or 'image_size' that is not "
                          "an integer in range", ckpt);
    }
    const uint64_t seed = (uint64_t)split_seed;
    nep_err err;
    const int failed = cli_load_data(cmd, &use, true, &out->full) || cli_load_data(cmd, &use, false, &out->test);
    cJSON_Delete(j); /* use's strings may point into it */
    if (failed ||
        cli_check_data_fits(cmd, spec, &out->full) || cli_check_data_fits(cmd, spec, &out->test))
        return 1;
    if (norm->c != out->full.c)
        return cli_errorf(cmd, "%s: no input normalization for %d channel(s) in its metadata", ckpt,
                          out->full.c);
    if (val <= 0 || val >= out->full.n) {
        /* no recorded split: everything is training data, validation is empty */
        return nep_dataset_split(&out->full, 0, seed, &out->train, &out->val, &err) == NEP_OK
                   ? 0 : cli_error(cmd, &err);
    }
    if (nep_dataset_split(&out->full, val, seed, &out->train, &out->val, &err) != NEP_OK)
        return cli_error(cmd, &err);
    return 0;
}

void cli_data_free(cli_data *d) {
    nep_dataset_free(&d->full);
    nep_dataset_free(&d->train);
    nep_dataset_free(&d->val);
    nep_dataset_free(&d->test);
}

const nep_dataset *cli_split(const char *cmd, const cli_data *d, const char *name) {
    if (strcmp(name, "train") == 0) return &d->train;
    if (strcmp(name, "val") == 0) return &d->val;
    if (strcmp(name, "test") == 0) return &d->test;
    cli_errorf(cmd, "--split: '%s' is not train, val or test", name);
    return NULL;
}

void cli_set_threads(int64_t n) {
    if (n <= 0) return;
    omp_set_num_threads((int)n);
    openblas_set_num_threads((int)n);
}

int cli_exec_opts(const char *cmd, const char *backend, nep_exec_opts *out) {
    *out = (nep_exec_opts){.backend = backend};
    if (nep_exec_backend_known(backend)) return 0;
    return cli_errorf(cmd, "--backend: unknown backend '%s' (there are: cpu, ref)", backend);
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 359999) s = 0;
    snprintf(buf, n, "%d:%02d", (int)s / 60, (int)s % 60);
}

void cli_progress_cb(void *ctx, int64_t done, int64_t total, double loss, double seconds) {
    cli_progress *p = ctx;
    /* A log file gets one line every 30 s (none for a short pass), a terminal one line
     * rewritten 5 times a second. */
    if (seconds - p->last < (p->tty ? 0.2 : 30) && (done < total || !p->tty)) return;
    p->last = seconds;
    double frac = total ? (double)done / (double)total : 1;
    char eta[16];
    fmt_eta(eta, sizeof eta, frac > 0 ? seconds * (1 - frac) / frac : 0);
    int width = 24, filled = (int)(frac * width);
    fprintf(stderr, "%s%s [", p->tty ? "\r" : "", p->label);
    for (int i = 0; i < width; i++) fputc(i < filled ? '#' : '.', stderr);
    fprintf(stderr, "] %3.0f%% %7.0f %s", 100 * frac, seconds > 0 ? (double)done / seconds : 0, p->unit ? p->unit : "img/s");
    if (!isnan(loss)) fprintf(stderr, " loss %.4f", loss);
    fprintf(stderr, " ETA %s %s", eta, p->tty ? "" : "\n");
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->tty) fprintf(stderr, "\r\033[K");
    p->last = 0;
}

int cli_mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) == 0) return 0;
    struct stat st;
    if (errno != EEXIST || stat(buf, &st)) return -1;
    if (!S_ISDIR(st.st_mode)) { /* an existing file of that name */
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

typedef struct trim_ctx {
    FILE *in;
    const char *key;
    int64_t max;
} trim_ctx;

/* One JSON object and nothing else but white space: a line a run wrote whole. */
static cJSON *parse_line(const char *line, size_t len) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    while (j && end < line + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (j && (end != line + len || !cJSON_IsObject(j))) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* Copies the lines whose `key` is <= max; lines of any length (getline). A kept line
 * always ends in a newline: a last line that lost it (killed mid-append, an editor)
 * would otherwise run into the line the resumed run appends. Lines with anything
 * after their JSON object (two lines run together, a NUL byte) are dropped, since
 * they are not what a run writes. */
static int fill_trimmed(void *ctx, FILE *out) {
    trim_ctx *t = ctx;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int e = 0;
    while (!e && (n = getline(&line, &cap, t->in)) > 0) {
        cJSON *j = parse_line(line, (size_t)n);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, t->key);
        if (cJSON_IsNumber(v) && v->valuedouble <= (double)t->max &&
            (fwrite(line, 1, (size_t)n, out) != (size_t)n ||
             (line[n - 1] != '\n' && fputc('\n', out) == EOF)))
            e = errno ? errno : EIO;
        cJSON_Delete(j);
    }
    free(line);
    return e;
}

int cli_trim_jsonl(const char *cmd, const char *path, const char *key, int64_t max) {
    trim_ctx t = {fopen(path, "r"), key, max};
    if (!t.in) return 0;
    nep_err err;
    nep_status s = nep_write_atomic(path, fill_trimmed, &t, &err);
    fclose(t.in);
    return s == NEP_OK ? 0 : cli_error(cmd, &err);
}

/* A disk that fills up mid-line leaves part of the line behind; the file is cut back to
 * where it ended, so that it stays whole lines (compare and jq read it; --resume trims
 * it to rows). */
int cli_append_line(const char *path, const char *line) {
    struct stat st;
    const off_t before = stat(path, &st) == 0 ? st.st_size : 0;
    FILE *f = fopen(path, "a");
    if (!f) return -1;
    int bad = fputs(line, f) < 0 || fputc('\n', f) < 0 || fflush(f) || fsync(fileno(f));
    if (!(fclose(f) || bad)) return 0;
    const int e = errno ? errno : EIO;
    if (stat(path, &st) == 0 && st.st_size > before && truncate(path, before) != 0) {
        /* nothing better to do: the append's error is the one to report */
    }
    errno = e;
    return -1;
}

char *cli_rng_hex(const nep_rng *r) {
    char *s = malloc(80);
    snprintf(s, 80, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, r->s[0], r->s[1],
             r->s[2], r->s[3]);
    return s;
}

/* 64 hex digits and nothing else (strtoull alone would take signs, spaces and "0x"),
 * not all zero: xoshiro256's one state it never leaves, drawing only zeros. */
int cli_rng_from_hex(const char *hex, nep_rng *r) {
    if (!hex || strlen(hex) != 64 || strspn(hex, "0123456789abcdefABCDEF") != 64) return -1;
    for (int i = 0; i < 4; i++) {
        char part[17];
        memcpy(part, hex + 16 * i, 16);
        part[16] = 0;
        char *end;
        r->s[i] = strtoull(part, &end, 16);
        if (*end) return -1;
    }
    return (r->s[0] | r->s[1] | r->s[2] | r->s[3]) ? 0 : -1;
}

int64_t cli_any_failed(const nep_comm *comm, int64_t bad) {
    nep_err err;
    return nep_comm_sum(comm, &bad, 1, NEP_COMM_I64, &err) != NEP_OK || bad != 0;
}

int cli_ranks_agree(const char *cmd, const nep_comm *comm, const void *data, int64_t n, const char *what) {
    nep_err err;
    return nep_comm_agree(comm, data, n, what, &err) == NEP_OK ? 0 : cli_error(cmd, &err);
}

int cli_ranks_agree_samples(const char *cmd, const nep_comm *comm, const nep_dataset *d, const char *what) {
    return d->source ? cli_ranks_agree(cmd, comm, d->rows, d->n * (int64_t)sizeof *d->rows, what)
                     : cli_ranks_agree(cmd, comm, d->labels, d->n * (int64_t)sizeof *d->labels, what);
}

void cli_shape_str(char *buf, size_t n, const nep_shape *s) {
    buf[0] = 0;
    for (int d = 0; d < s->ndim; d++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%lld", d ? "x" : "", (long long)s->d[d]);
}
