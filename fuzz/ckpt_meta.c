/* libFuzzer harness: the JSON strings a checkpoint's __metadata__ carries, fed straight
 * to their readers (through a whole safetensors file, most mutations would only break
 * the header). The first byte picks the reader, the rest is the string:
 *   0  "arch"       nep_model_spec_from_json, then the model it describes is built
 *   1  "normalize"  nep_normalize_from_json
 *   2  "graph"      nep_graph_from_json (a collapsed model), then its JSON round trip
 *   3  "rng"        cli_rng_from_hex (tools/cli.c: the RNG state train --resume restores)
 * What a reader accepts must also survive what the loader does next. */
#include "../tools/cmd_train.c"

#include "fuzz_common.h"

/* Models larger than this are not built: building allocates and zeroes every
 * parameter, and a checkpoint holding that many values could not be in the corpus
 * anyway (the loader rejects the file once a tensor is missing). */
#define MAX_BUILD_VALUES (1 << 22)

/* An upper bound of an MLP's or resmlp's parameter count; -1 for other models (their
 * widths are fixed by the architecture, so their size follows from the input's). */
static double mlp_values(const nep_model_spec *s) {
    double in = (double)s->in_c * s->in_h * s->in_w, n = 0, prev = in;
    bool res = strcmp(s->name, "resmlp") == 0;
    if (!res && strcmp(s->name, "mlp") != 0) return -1;
    if (res) n += in * (double)s->width, prev = (double)s->width;
    for (int i = 0; i < s->n_hidden; i++) {
        n += (prev + 2) * (double)s->hidden[i] * (res ? 2 : 1);
        if (!res) prev = (double)s->hidden[i];
    }
    return n + (prev + 1) * s->classes;
}

static void arch(const char *json) {
    nep_model_spec spec, again;
    nep_err err = {0};
    if (nep_model_spec_from_json(json, &spec, &err) != NEP_OK) {
        if (!err.msg[0]) abort();
        return;
    }
    char *out = nep_model_spec_to_json(&spec);
    if (!out || nep_model_spec_from_json(out, &again, &err) != NEP_OK) abort();
    free(out);
    double n = mlp_values(&spec);
    if (spec.collapsed || n > MAX_BUILD_VALUES ||
        (n < 0 && (double)spec.in_c * spec.in_h * spec.in_w > 64 * 64 * 3))
        return;
    nep_graph g;
    if (nep_model_build(&spec, &g, NULL, &err) == NEP_OK) {
        char *gj = nep_graph_to_json(&g);
        nep_graph g2;
        if (!gj || nep_graph_from_json(gj, &g2, &err) != NEP_OK) abort();
        nep_graph_free(&g2);
        free(gj);
        nep_graph_free(&g);
    } else if (!err.msg[0]) {
        abort();
    }
}

static void graph(const char *json) {
    nep_graph g, g2;
    nep_err err = {0};
    if (nep_graph_from_json(json, &g, &err) != NEP_OK) {
        if (!err.msg[0]) abort();
        return;
    }
    char *out = nep_graph_to_json(&g);
    if (!out) abort();
    if (nep_graph_from_json(out, &g2, &err) != NEP_OK) {
        printf("graph JSON round trip failed: %s\n%s\n", err.msg, out);
        fflush(stdout);
        abort();
    }
    nep_graph_free(&g2);
    free(out);
    nep_graph_free(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char *s = fuzz_cstr(data + 1, size - 1);
    nep_err err = {0};
    nep_normalize norm;
    nep_rng rng;
    switch (data[0] & 3) {
    case 0: arch(s); break;
    case 1:
        if (nep_normalize_from_json(s, &norm, &err) != NEP_OK && !err.msg[0]) abort();
        break;
    case 2: graph(s); break;
    case 3: cli_rng_from_hex(s, &rng); break;
    }
    free(s);
    return 0;
}
