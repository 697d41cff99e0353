/* nepenthe export: write a checkpoint's model as ONNX (opset 17) for other runtimes. */
#include <stdio.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "nepenthe/checkpoint.h"
#include "nepenthe/onnx.h"

#define EXPORT_USAGE "--ckpt FILE --onnx FILE [--json]"

static void print_summary(const char *onnx, const nep_onnx_summary *s, bool json) {
    if (!json) {
        printf("%s: %lld nodes, %lld initializers, %lld bytes (ONNX opset %d)\n", onnx,
               (long long)s->nodes, (long long)s->initializers, (long long)s->bytes, s->opset);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "onnx", onnx);
    cJSON_AddNumberToObject(o, "nodes", (double)s->nodes);
    cJSON_AddNumberToObject(o, "initializers", (double)s->initializers);
    cJSON_AddNumberToObject(o, "bytes", (double)s->bytes);
    cJSON_AddNumberToObject(o, "opset", s->opset);
    char *txt = cJSON_PrintUnformatted(o);
    printf("%s\n", txt);
    cJSON_free(txt);
    cJSON_Delete(o);
}

int cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *onnx = NULL;
    bool json = false;
    cli_opt opts[] = {
        {"ckpt", OPT_STR, &ckpt, "checkpoint (.safetensors) (required)"},
        {"onnx", OPT_STR, &onnx, "ONNX file to write (required); its input is the normalized "
                                 "image, the normalization is in its metadata"},
        {"json", OPT_FLAG, &json, "print one JSON object instead of the summary line"},
        OPT_END,
    };
    int rc = cli_parse("export", EXPORT_USAGE, opts, argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (!ckpt || !onnx)
        return cli_errorf("export", "%s is required (usage: nepenthe export %s)",
                          !ckpt ? "--ckpt FILE" : "--onnx FILE", EXPORT_USAGE) + 1;
    nep_graph g;
    nep_model_spec spec;
    nep_normalize norm;
    nep_err err;
    if (nep_checkpoint_load(ckpt, &g, &spec, &norm, NULL, &err) != NEP_OK) return cli_error("export", &err);
    nep_onnx_summary sum;
    rc = nep_onnx_export_summary(&g, &norm, onnx, &sum, &err) == NEP_OK ? 0 : cli_error("export", &err);
    if (rc == 0) print_summary(onnx, &sum, json);
    nep_graph_free(&g);
    return rc;
}
