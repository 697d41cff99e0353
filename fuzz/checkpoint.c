/* libFuzzer harness: checkpoints as `train --resume`, `prune --resume` and every other
 * command read them. The input is a whole safetensors file; on top of nep_st_read this
 * reaches the metadata ("arch", "normalize", the "graph" of a collapsed model,
 * "options", "epoch", "rng", "data", "optim_step"), the model rebuilt from it, the
 * parameter, mask and optimizer tensors, and the graph's JSON round trip (collapse
 * writes back what it read).
 *
 * cmd_train.c is included for its static resume() (options, epoch, RNG state); it has
 * no main. Its messages go to stderr, which `make fuzz` closes (-close_fd_mask=2). */
#include "../tools/cmd_train.c"

#include "fuzz_common.h"

/* The options of the seed corpus's training checkpoints (a 1x6x6 MLP), so that seeds
 * and their mutants get past resume()'s comparison to the epoch. */
static const char seed_options[] =
    "{\"arch\":{\"model\":\"mlp\",\"input\":[1,6,6],\"classes\":10,\"hidden\":[8,8],"
    "\"act\":\"relu\",\"slope\":0.01,\"dropout\":0},\"data\":\"fashion-mnist\",\"val\":50,"
    "\"split_seed\":0,\"batch\":32,\"optimizer\":\"sgd\",\"augment\":false,\"lr\":0.05,"
    "\"momentum\":0.9,\"wd\":0.0005,\"nesterov\":false,\"milestones\":[],\"gamma\":0.1,"
    "\"seed\":0}";

/* What train does after resume(): optimizer state of either kind. */
static void load_optimizers(const char *path, const run_state *r) {
    for (int k = 0; k < 2; k++) {
        nep_optim_cfg cfg = nep_optim_defaults(k ? NEP_OPTIM_ADAMW : NEP_OPTIM_SGD);
        nep_optim o = {0};
        nep_err err = {0};
        if (nep_optim_init(&o, &cfg, &r->g, &err) != NEP_OK) abort(); /* the graph is small */
        if (nep_checkpoint_load_optim(path, &r->meta, &r->g, &o, &err) == NEP_OK)
            nep_optim_begin(&o); /* what the first resumed step does with the step count */
        else if (!err.msg[0])
            abort();
        nep_optim_free(&o);
    }
}

/* A loaded graph must survive nep_graph_to_json / nep_graph_from_json. */
static void round_trip(const nep_graph *g) {
    char *json = nep_graph_to_json(g);
    nep_graph g2;
    nep_err err = {0};
    if (!json) abort();
    if (nep_graph_from_json(json, &g2, &err) != NEP_OK) {
        fprintf(stdout, "graph JSON round trip failed: %s\n%s\n", err.msg, json);
        fflush(stdout);
        abort();
    }
    nep_graph_free(&g2);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    fuzz_path(path, sizeof path, fuzz_dir("checkpoint"), "checkpoint.safetensors");
    fuzz_write(path, data, size);
    if (size & 1) { /* prune --resume and eval: no metadata kept, no normalization */
        nep_graph g;
        nep_model_spec spec;
        nep_err err = {0};
        if (nep_checkpoint_load(path, &g, &spec, NULL, NULL, &err) == NEP_OK) {
            round_trip(&g);
            nep_graph_free(&g);
        } else if (!err.msg[0]) {
            abort();
        }
        return 0;
    }
    run_state r = {0};
    resume(path, seed_options, &r);
    if (r.meta.buffer) { /* the checkpoint itself loaded */
        load_optimizers(path, &r);
        round_trip(&r.g);
        /* the recorded split ("data"); "mnist" without a directory stops before any
         * data set is read */
        cli_data d;
        cli_load_splits("fuzz", path, &r.meta, &r.spec, &r.norm, &(cli_data_opts){.name = "mnist"}, &d);
        cli_data_free(&d);
    }
    nep_graph_free(&r.g);
    nep_st_free(&r.meta);
    return 0;
}
