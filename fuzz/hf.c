/* libFuzzer harness: a Hugging Face model folder as nepenthe reads it (nepenthe/hf.h).
 * The first byte picks what is read, (byte & 0x7f) % 3; the rest is the files:
 *   0  config.json: nep_hf_config_parse on the bytes and nep_hf_config_read on the file
 *      (on the folder when byte 0 has 0x80) must agree; a config that parses is written
 *      back with nep_hf_config_write and must read back to the same configuration
 *   1  model.safetensors: nep_st_map and nep_st_read must agree on the file (status,
 *      tensors, bytes); nep_hf_weights_open on the folder must accept it exactly when
 *      nep_st_map does, and every tensor it lists must be usable
 *   2  sharded: byte 1 % 4 + 1 is the shard count N; then fields (little-endian u16
 *      length, then the bytes): model.safetensors.index.json, then the shards
 *      model-0000K-of-0000N.safetensors for K = 1..N (a missing field: an empty file);
 *      nep_hf_weights_open on the folder
 * What nep_hf_weights_open accepts must list each tensor once, in name order, found by
 * nep_hf_weights_find, in a file of the folder, and convert (float dtypes) with
 * nep_hf_weights_get_f32. */
#include "fuzz_common.h"

#include <math.h>

#include "nepenthe/hf.h"

static void fail(const char *what, const char *msg) {
    printf("%s%s%s\n", what, msg ? ": " : "", msg ? msg : "");
    fflush(stdout);
    abort();
}

/* ---- config.json ------------------------------------------------------------------ */

static int same_double(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

static void same_config(const nep_hf_config *a, const nep_hf_config *b) {
    int same = a->model_type == b->model_type && !strcmp(a->architecture, b->architecture) &&
               a->hidden_size == b->hidden_size && a->num_hidden_layers == b->num_hidden_layers &&
               a->num_attention_heads == b->num_attention_heads &&
               a->num_key_value_heads == b->num_key_value_heads && a->head_dim == b->head_dim &&
               a->intermediate_size == b->intermediate_size &&
               a->max_position_embeddings == b->max_position_embeddings &&
               a->vocab_size == b->vocab_size && a->hidden_act == b->hidden_act &&
               a->tie_word_embeddings == b->tie_word_embeddings &&
               a->pad_token_id == b->pad_token_id && a->bos_token_id == b->bos_token_id &&
               a->eos_token_id == b->eos_token_id && a->n_eos_token_ids == b->n_eos_token_ids &&
               a->num_labels == b->num_labels && a->has_dtype == b->has_dtype &&
               (!a->has_dtype || a->dtype == b->dtype);
    if (a->model_type == NEP_HF_LLAMA)
        same = same && same_double(a->rms_norm_eps, b->rms_norm_eps) &&
               same_double(a->rope_theta, b->rope_theta) &&
               a->attention_bias == b->attention_bias && a->mlp_bias == b->mlp_bias &&
               a->rope_scaling.present == b->rope_scaling.present &&
               (!a->rope_scaling.present ||
                (same_double(a->rope_scaling.factor, b->rope_scaling.factor) &&
                 same_double(a->rope_scaling.low_freq_factor, b->rope_scaling.low_freq_factor) &&
                 same_double(a->rope_scaling.high_freq_factor, b->rope_scaling.high_freq_factor) &&
                 a->rope_scaling.original_max_position_embeddings ==
                     b->rope_scaling.original_max_position_embeddings));
    else
        same = same && a->type_vocab_size == b->type_vocab_size &&
               same_double(a->layer_norm_eps, b->layer_norm_eps);
    for (int i = 0; same && i < a->n_eos_token_ids && i < NEP_HF_MAX_EOS; i++)
        same = a->eos_token_ids[i] == b->eos_token_ids[i];
    for (int i = 0; same && i < a->num_labels; i++)
        same = a->id2label && b->id2label && !strcmp(a->id2label[i], b->id2label[i]);
    if (!same) fail("config round trip failed: the written config reads back differently", NULL);
}

static void config(const char *dir, const uint8_t *data, size_t size, int folder) {
    char path[512], out[512];
    fuzz_write(fuzz_path(path, sizeof path, dir, "config.json"), data, size);
    nep_hf_config a, b;
    nep_err ea = {0}, eb = {0};
    nep_status sa = nep_hf_config_parse((const char *)data, size, path, &a, &ea);
    nep_status sb = nep_hf_config_read(folder ? dir : path, &b, &eb);
    if (sa != sb) fail("config: parse and read disagree", sa ? ea.msg : eb.msg);
    fuzz_note("config: %s", sa ? ea.msg : "ok");
    if (sa != NEP_OK) {
        if (!ea.msg[0] || !eb.msg[0]) abort();
        if (a.json || a.id2label || b.json || b.id2label) abort(); /* zeroed on failure */
        return;
    }
    if (a.num_labels < 1 || !a.id2label || !a.json) abort();
    same_config(&a, &b);
    nep_hf_config_free(&b);
    /* written back, it must read back the same */
    fuzz_path(out, sizeof out, dir, "written.json");
    if (nep_hf_config_write(&a, out, &ea) != NEP_OK)
        fail("config round trip failed: nep_hf_config_write refuses a config that read", ea.msg);
    if (nep_hf_config_read(out, &b, &eb) != NEP_OK)
        fail("config round trip failed: the written config does not read", eb.msg);
    same_config(&a, &b);
    nep_hf_config_free(&a);
    nep_hf_config_free(&b);
}

/* ---- weights ---------------------------------------------------------------------- */

static void use_weights(const nep_hf_weights *w) {
    const int n = nep_hf_weights_count(w);
    if (n < 0 || nep_hf_weights_at(w, n) || nep_hf_weights_file(w, n)) abort();
    nep_err err = {0};
    for (int i = 0; i < n; i++) {
        const nep_st_tensor *t = nep_hf_weights_at(w, i);
        const char *file = nep_hf_weights_file(w, i);
        if (!t || !file || !*file || strchr(file, '/')) abort();
        if (nep_hf_weights_find(w, t->name) != t) fail("weights: find disagrees with at", t->name);
        if (i && strcmp(nep_hf_weights_at(w, i - 1)->name, t->name) >= 0)
            fail("weights: names not sorted and unique", t->name);
        if (t->numel > (1 << 20)) continue; /* keeps real files cheap */
        float *f = malloc(sizeof(float) * (size_t)(t->numel + 1));
        if (!f) abort();
        nep_status s = nep_hf_weights_get_f32(w, t->name, f, t->numel, &err);
        int is_float = t->dtype == NEP_DT_F32 || t->dtype == NEP_DT_F64 ||
                       t->dtype == NEP_DT_F16 || t->dtype == NEP_DT_BF16;
        if ((s == NEP_OK) != is_float) fail("weights: get_f32 on a tensor of its dtype", err.msg);
        if (nep_hf_weights_get_f32(w, t->name, f, t->numel + 1, &err) == NEP_OK) abort();
        free(f);
    }
    if (nep_hf_weights_find(w, "\x01 no such tensor")) abort();
}

static void open_weights(const char *dir, int expect) {
    nep_hf_weights *w = (nep_hf_weights *)1;
    nep_err err = {0};
    nep_status s = nep_hf_weights_open(dir, &w, &err);
    if (expect >= 0 && (s == NEP_OK) != expect)
        fail("weights: nep_hf_weights_open and nep_st_map disagree", err.msg);
    fuzz_note("weights: %s", s ? err.msg : "ok");
    if (s != NEP_OK) {
        if (w || !err.msg[0]) abort();
        return;
    }
    use_weights(w);
    nep_hf_weights_close(w);
}

/* nep_st_map and nep_st_read see the same file. */
static int single(const char *dir, const uint8_t *data, size_t size) {
    char path[512];
    fuzz_write(fuzz_path(path, sizeof path, dir, "model.safetensors"), data, size);
    nep_safetensors m, r;
    nep_err em = {0}, er = {0};
    nep_status sm = nep_st_map(path, &m, &em), sr = nep_st_read(path, &r, &er);
    if ((sm == NEP_OK) != (sr == NEP_OK))
        fail("nep_st_map and nep_st_read disagree", sm ? em.msg : er.msg);
    if (sm != NEP_OK) {
        if (!em.msg[0] || m.tensors || m.buffer) abort();
        return 0;
    }
    if (m.n_tensors != r.n_tensors || m.n_meta != r.n_meta) fail("map/read: counts differ", NULL);
    for (int i = 0; i < m.n_tensors; i++) {
        const nep_st_tensor *a = &m.tensors[i], *b = nep_st_find(&r, a->name);
        if (!b || a->dtype != b->dtype || a->ndim != b->ndim || a->numel != b->numel ||
            a->nbytes != b->nbytes || memcmp(a->shape, b->shape, sizeof a->shape) ||
            (a->nbytes && memcmp(a->data, b->data, a->nbytes)))
            fail("map/read: tensors differ", a->name);
        if (nep_st_find(&m, a->name) != a) abort();
    }
    for (int i = 0; i < m.n_meta; i++) {
        const char *v = nep_st_meta_get(&r, m.meta[i].key);
        if (!v || strcmp(v, nep_st_meta_get(&m, m.meta[i].key)))
            fail("map/read: metadata differs", m.meta[i].key);
    }
    nep_st_free(&m);
    nep_st_free(&r);
    if (m.tensors || m.buffer || m.map_size) abort(); /* freed and zeroed */
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *dir = fuzz_dir("hf");
    fuzz_clear(dir); /* the folder holds this input's files only */
    const int mode = (data[0] & 0x7f) % 3, folder = data[0] & 0x80;
    data++;
    size--;
    if (mode == 0) {
        config(dir, data, size, folder);
    } else if (mode == 1) {
        int ok = single(dir, data, size);
        open_weights(dir, ok);
    } else if (size >= 1) {
        const int shards = data[0] % 4 + 1;
        data++;
        size--;
        char path[512], name[64];
        size_t n;
        const uint8_t *index = fuzz_take_field(&data, &size, &n);
        fuzz_write(fuzz_path(path, sizeof path, dir, "model.safetensors.index.json"), index, n);
        for (int k = 1; k <= shards; k++) {
            const uint8_t *shard = fuzz_take_field(&data, &size, &n);
            snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k, shards);
            fuzz_write(fuzz_path(path, sizeof path, dir, name), shard, n);
        }
        open_weights(dir, -1);
    }
    fuzz_clear(dir);
    return 0;
}
