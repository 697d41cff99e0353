/* A training run's checkpoint on the command line (finetune, lm-train): the parameters,
 * the optimizer's state, the generator, the epochs done and the options, so that
 * --resume continues a killed run and ends with the weights of an uninterrupted one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nepenthe/checkpoint.h"

int cli_run_save(const char *cmd, const char *path, const nep_graph *g, const nep_optim *opt, int64_t epoch,
                 const nep_rng *rng, const char *options) {
    nep_safetensors st = {0};
    nep_err err;
    char epochs[32];
    snprintf(epochs, sizeof epochs, "%lld", (long long)epoch);
    char *hex = cli_rng_hex(rng);
    nep_status s = hex ? NEP_OK : nep_fail(&err, NEP_ERR_NOMEM, "out of memory");
    for (int i = 0; s == NEP_OK && i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        s = nep_st_add(&st, p->name, NEP_DT_REAL, p->ndim, p->shape, g->values + p->offset, &err);
    }
    if (s == NEP_OK) s = nep_checkpoint_add_optim(&st, g, opt, &err);
    if (s == NEP_OK) s = nep_st_meta_set(&st, "epoch", epochs, &err);
    if (s == NEP_OK) s = nep_st_meta_set(&st, "rng", hex, &err);
    if (s == NEP_OK) s = nep_st_meta_set(&st, "options", options, &err);
    if (s == NEP_OK) s = nep_st_write(&st, path, &err);
    nep_st_free(&st);
    free(hex);
    return s == NEP_OK ? 0 : cli_error(cmd, &err);
}

int cli_run_resume(const char *cmd, const char *path, nep_graph *g, nep_optim *opt, const char *options,
                   int64_t *epoch, nep_rng *rng) {
    nep_safetensors st = {0};
    nep_err err;
    int rc = 0;
    if (nep_st_read(path, &st, &err) != NEP_OK) return cli_error(cmd, &err);
    const char *stored = nep_st_meta_get(&st, "options"), *done = nep_st_meta_get(&st, "epoch");
    char *end = NULL;
    const long long epochs = done ? strtoll(done, &end, 10) : -1;
    if (!stored || !done || end == done || *end || epochs < 0 || cli_rng_from_hex(nep_st_meta_get(&st, "rng"), rng))
        rc = cli_errorf(cmd, "%s: not a training checkpoint (no options, epoch count or RNG state)", path);
    else if (strcmp(stored, options) != 0)
        rc = cli_errorf(cmd, "--resume: %s was written with other options:\n  stored:  %s\n  current: %s", path,
                        stored, options);
    for (int i = 0; !rc && i < g->n_params; i++) {
        const nep_param *p = &g->params[i];
        const nep_st_tensor *t = nep_st_find(&st, p->name);
        if (!t || t->numel != p->numel) {
            rc = cli_errorf(cmd, "%s: tensor '%s' is missing or misshapen", path, p->name);
            break;
        }
        memcpy(g->values + p->offset, t->data, sizeof(nep_real) * (size_t)p->numel);
    }
    if (!rc && nep_checkpoint_load_optim(path, &st, g, opt, &err) != NEP_OK) rc = cli_error(cmd, &err);
    if (!rc) *epoch = epochs;
    nep_st_free(&st);
    return rc;
}
