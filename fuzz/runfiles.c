/* libFuzzer harness: the run files `--resume` reads back from a run directory, which a
 * killed run, a full disk or a hand edit may have left in any state. The first byte
 * picks the file, the second is a parameter, the rest is the file:
 *   0  train's log.jsonl: cli_trim_jsonl keeping epochs <= the parameter (signed)
 *   1  prune's progress.json: cmd_prune.c's load_progress
 *   2  prune's iterations.jsonl: cli_trim_jsonl keeping iterations <= the parameter,
 *      then cmd_prune.c's draw_figures on what is left (2 or 3 states per layer, by
 *      the parameter's top bit)
 * cmd_prune.c is included for its static functions; it has no main. The trimmed file
 * must hold only whole lines (newline-terminated), each one JSON object and nothing
 * more, whose key is <= the limit. */
#include "../tools/cmd_prune.c"

#include "fuzz_common.h"

/* The options of the seed corpus's prune run, so that seeds get past the comparison. */
static const char seed_options[] =
    "{\"ckpt\":\"m/model.safetensors\",\"method\":\"nepenthe\",\"criterion\":\"magnitude\","
    "\"zeta\":0.9,\"delta\":0,\"entropy_budget\":true,\"dont_care\":true,"
    "\"neuron_selection\":true,\"retrain_epochs\":1,\"batch\":32,\"optimizer\":\"sgd\","
    "\"lr\":0.05,\"momentum\":0.9,\"wd\":0.0005,\"nesterov\":false,\"milestones\":\"\","
    "\"gamma\":0.1,\"augment\":false,\"seed\":0,\"entropy_batches\":0,\"wanda_batches\":16}";

/* Checks what cli_trim_jsonl left at path. */
static void check_trimmed(const char *path, const char *key, int64_t max) {
    FILE *f = fopen(path, "r");
    if (!f) return; /* no file: nothing to trim, nothing written */
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(line, (size_t)n, &end, 0);
        while (j && end < line + n && *end && strchr(" \t\r\n", *end)) end++;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
        if (line[n - 1] != '\n' || !cJSON_IsObject(j) || end != line + n || !cJSON_IsNumber(v) ||
            !(v->valuedouble <= (double)max)) {
            printf("trimmed %s keeps a bad line: '%.*s'\n", path, (int)n, line);
            fflush(stdout);
            abort();
        }
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
}

/* A prune run of two rectifier layers, act1 and act2, writing its figures to dir. */
static void figures(const char *dir, const char *log, int states) {
    prune_run r = {0};
    nep_layer_states layers[2] = {{.node = 0, .owner = -1, .states = states},
                                  {.node = 1, .owner = -1, .states = states}};
    nep_graph_init(&r.g);
    if (nep_graph_add(&r.g, NEP_OP_RELU, "act1", NULL, 0, (nep_attrs){0}) < 0 ||
        nep_graph_add(&r.g, NEP_OP_RELU, "act2", NULL, 0, (nep_attrs){0}) < 0)
        abort();
    r.e.n_layers = 2;
    r.e.layers = layers;
    r.o.out = dir;
    r.o.method = "nepenthe";
    r.o.zeta = 0.5;
    draw_figures(&r, log);
    nep_graph_free(&r.g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const char *dir = fuzz_dir("runfiles");
    const int mode = data[0] % 3, param = (int8_t)data[1];
    char path[512];
    fuzz_path(path, sizeof path, dir, mode == 0 ? "log.jsonl" : mode == 1 ? "progress.json"
                                                                         : "iterations.jsonl");
    fuzz_write(path, data + 2, size - 2);
    if (mode == 0) {
        if (cli_trim_jsonl("train", path, "epoch", param) == 0) check_trimmed(path, "epoch", param);
    } else if (mode == 1) {
        prune_run r = {.options = (char *)seed_options};
        nep_prune_progress p;
        load_progress(&r, path, &p);
    } else {
        if (cli_trim_jsonl("prune", path, "iter", param) == 0) check_trimmed(path, "iter", param);
        figures(dir, path, data[1] & 0x80 ? 3 : 2);
    }
    return 0;
}
