/* libFuzzer harness: nep_st_read on arbitrary bytes (8-byte header length, header JSON,
 * dtypes, shapes, data offsets, __metadata__), then what callers do with a file that
 * passed: look tensors and keys up, convert every float tensor to float and double.
 * Any file the reader accepts must be safe to use that way. */
#include "fuzz_common.h"

#include "nepenthe/safetensors.h"

static void use(const nep_safetensors *st) {
    nep_err err;
    for (int i = 0; i < st->n_tensors; i++) {
        const nep_st_tensor *t = &st->tensors[i];
        if (nep_st_find(st, t->name) != t) abort(); /* names are unique */
        if (t->numel > (1 << 24)) continue;     /* keeps replays of large real files cheap */
        float *f = malloc(sizeof(float) * (size_t)(t->numel + 1));
        double *d = malloc(sizeof(double) * (size_t)(t->numel + 1));
        if (!f || !d) abort();
        nep_status a = nep_st_to_f32(t, f, t->numel, &err);
        nep_status b = nep_st_to_f64(t, d, t->numel, &err);
        if (a != b) abort(); /* both accept exactly the floating-point dtypes */
        free(f);
        free(d);
    }
    for (int i = 0; i < st->n_meta; i++)
        if (!nep_st_meta_get(st, st->meta[i].key)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    fuzz_path(path, sizeof path, fuzz_dir("safetensors"), "in.safetensors");
    fuzz_write(path, data, size);
    nep_safetensors st;
    nep_err err = {0};
    if (nep_st_read(path, &st, &err) == NEP_OK) {
        use(&st);
        nep_st_free(&st);
    } else if (!err.msg[0]) {
        abort(); /* a failure must say why */
    }
    return 0;
}
