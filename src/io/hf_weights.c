/* The weights of a Hugging Face model folder: model.safetensors, or shards listed by
 * model.safetensors.index.json, each memory-mapped once (nepenthe/hf.h). The index and
 * the shards are both user input and must agree exactly: a loader that trusted the
 * index alone would silently pick one of two copies of a tensor, or miss one. */
#include "nepenthe/hf.h"
#include "nepenthe/file.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SINGLE_NAME "model.safetensors"
#define INDEX_NAME "model.safetensors.index.json"
/* Indexes of the largest models are under a megabyte. */
#define MAX_INDEX_BYTES (256u << 20)

typedef struct entry {
    const char *name;          /* the tensor's own name (owned by its shard) */
    const nep_st_tensor *t;
    int file;
} entry;

struct nep_hf_weights {
    char *dir;
    int n_files;
    char **files;              /* names relative to dir */
    nep_safetensors *st;       /* one mapping per file */
    int n;
    entry *e;                  /* sorted by name */
};

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

/* Prepends "what: " to the message already in err (a shard's own message lacks the
 * context of the index that sent us there). */
static nep_status wrap(nep_err *err, nep_status s, const char *what) {
    if (!err) return s;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return nep_fail(err, s, "%s: %s", what, msg);
}

void nep_hf_weights_close(nep_hf_weights *w) {
    if (!w) return;
    for (int i = 0; i < w->n_files; i++) {
        if (w->st) nep_st_free(&w->st[i]);
        free(w->files[i]);
    }
    free(w->files);
    free(w->st);
    free(w->e);
    free(w->dir);
    free(w);
}

/* Room for up to n files, names and mappings zeroed. */
static nep_status alloc_files(nep_hf_weights *w, int n, nep_err *err) {
    w->files = calloc((size_t)n + 1, sizeof *w->files);
    w->st = calloc((size_t)n + 1, sizeof *w->st);
    if (!w->files || !w->st) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", w->dir);
    return NEP_OK;
}

static nep_status map_file(nep_hf_weights *w, int i, nep_err *err) {
    char *path = join(w->dir, w->files[i]);
    if (!path) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", w->dir);
    nep_status s = nep_st_map(path, &w->st[i], err);
    free(path);
    return s;
}

/* ---- a single model.safetensors --------------------------------------------------- */

static nep_status open_single(nep_hf_weights *w, nep_err *err) {
    NEP_TRY(alloc_files(w, 1, err));
    if (!(w->files[0] = strdup(SINGLE_NAME)))
        return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", w->dir);
    w->n_files = 1;
    NEP_TRY(map_file(w, 0, err));
    const nep_safetensors *st = &w->st[0];
    if (!(w->e = calloc((size_t)st->n_tensors + 1, sizeof *w->e)))
        return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", w->dir);
    /* nep_st_map leaves the tensors sorted by name and unique. */
    for (int i = 0; i < st->n_tensors; i++)
        w->e[w->n++] = (entry){st->tensors[i].name, &st->tensors[i], 0};
    return NEP_OK;
}

/* ---- a sharded folder ------------------------------------------------------------- */

static nep_status read_text(const char *path, char **text, size_t *len, nep_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    nep_status s = NEP_OK;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode))
        s = nep_fail(err, NEP_ERR_IO, "%s: not a regular file", path);
    else if ((uintmax_t)sb.st_size > MAX_INDEX_BYTES)
        s = nep_fail(err, NEP_ERR_FORMAT, "%s: %jd bytes, too large for an index", path,
                     (intmax_t)sb.st_size);
    else if (!(*text = malloc((size_t)sb.st_size + 1)))
        s = nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    else if ((*len = fread(*text, 1, (size_t)sb.st_size, f)) != (size_t)sb.st_size)
        s = nep_fail(err, NEP_ERR_IO, "%s: read failed", path);
    fclose(f);
    return s;
}

/* A shard must be a plain file name in dir: the index must not reach elsewhere. */
static int shard_name_ok(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* The index of file name in w->files, added when new; -1 when out of memory. */
static int file_id(nep_hf_weights *w, const char *name) {
    for (int i = 0; i < w->n_files; i++)
        if (strcmp(w->files[i], name) == 0) return i;
    if (!(w->files[w->n_files] = strdup(name))) return -1;
    return w->n_files++;
}

/* Records weight_map's files (each once) and, per tensor, the file the index names. */
static nep_status read_weight_map(nep_hf_weights *w, const char *ipath, const cJSON *map,
                                  int *file_of, nep_err *err) {
    int i = 0;
    const cJSON *kv;
    cJSON_ArrayForEach(kv, map) {
        if (!cJSON_IsString(kv) || !shard_name_ok(kv->valuestring))
            return nep_fail(err, NEP_ERR_FORMAT,
                            "%s: weight_map['%s'] is not a file name in the folder", ipath,
                            kv->string);
        if ((file_of[i++] = file_id(w, kv->valuestring)) < 0)
            return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", ipath);
    }
    return NEP_OK;
}

/* Every name the index lists must be in the shard it names. */
static nep_status index_entries(nep_hf_weights *w, const char *ipath, const cJSON *map,
                                const int *file_of, nep_err *err) {
    const cJSON *kv;
    int i = 0;
    cJSON_ArrayForEach(kv, map) {
        int f = file_of[i++];
        const nep_st_tensor *t = nep_st_find(&w->st[f], kv->string);
        if (!t)
            return nep_fail(err, NEP_ERR_FORMAT,
                            "%s: tensor '%s' is listed in %s but %s/%s does not contain it",
                            ipath, kv->string, INDEX_NAME, w->dir, w->files[f]);
        w->e[w->n++] = (entry){t->name, t, f};
    }
    qsort(w->e, (size_t)w->n, sizeof *w->e, cmp_entry);
    for (int k = 1; k < w->n; k++)
        if (strcmp(w->e[k - 1].name, w->e[k].name) == 0)
            return nep_fail(err, NEP_ERR_FORMAT, "%s: weight_map lists tensor '%s' twice",
                            ipath, w->e[k].name);
    return NEP_OK;
}

/* ... and every tensor of every shard must be listed, for that shard only. */
static nep_status shards_listed(const nep_hf_weights *w, const char *ipath, nep_err *err) {
    for (int f = 0; f < w->n_files; f++)
        for (int i = 0; i < w->st[f].n_tensors; i++) {
            const nep_st_tensor *t = &w->st[f].tensors[i];
            entry key = {.name = t->name};
            const entry *e = bsearch(&key, w->e, (size_t)w->n, sizeof *w->e, cmp_entry);
            if (!e)
                return nep_fail(err, NEP_ERR_FORMAT,
                                "%s/%s: tensor '%s' is not listed in %s", w->dir,
                                w->files[f], t->name, ipath);
            if (e->file != f)
                return nep_fail(err, NEP_ERR_FORMAT,
                                "%s: tensor '%s' is in two shards, %s and %s (%s names %s)",
                                w->dir, t->name, w->files[e->file], w->files[f], INDEX_NAME,
                                w->files[e->file]);
        }
    return NEP_OK;
}

static nep_status open_shards(nep_hf_weights *w, const char *ipath, const cJSON *map,
                              nep_err *err) {
    int n = cJSON_GetArraySize(map);
    int *file_of = malloc(((size_t)n + 1) * sizeof *file_of);
    if (!file_of) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", ipath);
    nep_status s = alloc_files(w, n, err);
    if (s == NEP_OK) s = read_weight_map(w, ipath, map, file_of, err);
    for (int f = 0; s == NEP_OK && f < w->n_files; f++)
        if ((s = map_file(w, f, err)) != NEP_OK) s = wrap(err, s, ipath);
    if (s == NEP_OK && !(w->e = calloc((size_t)n + 1, sizeof *w->e)))
        s = nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", ipath);
    if (s == NEP_OK) s = index_entries(w, ipath, map, file_of, err);
    if (s == NEP_OK) s = shards_listed(w, ipath, err);
    free(file_of);
    return s;
}

static nep_status open_index(nep_hf_weights *w, const char *ipath, nep_err *err) {
    char *text = NULL;
    size_t len = 0;
    nep_status s = read_text(ipath, &text, &len, err);
    if (s != NEP_OK) {
        free(text);
        return s;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!root)
        s = nep_fail(err, NEP_ERR_FORMAT, "%s: not valid JSON (at byte %td)", ipath,
                     end ? end - text : (ptrdiff_t)0);
    else if (!cJSON_IsObject(root) || !cJSON_IsObject(map))
        s = nep_fail(err, NEP_ERR_FORMAT, "%s: no 'weight_map' object", ipath);
    else
        s = open_shards(w, ipath, map, err);
    cJSON_Delete(root);
    free(text);
    return s;
}

nep_status nep_hf_weights_open(const char *dir, nep_hf_weights **out, nep_err *err) {
    *out = NULL;
    nep_hf_weights *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", dir);
    }
    char *single = join(dir, SINGLE_NAME), *index = join(dir, INDEX_NAME);
    nep_status s;
    if (!single || !index)
        s = nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", dir);
    else if (is_file(single))
        s = open_single(w, err);
    else if (is_file(index))
        s = open_index(w, index, err);
    else
        s = nep_fail(err, NEP_ERR_IO,
                     "%s: neither " SINGLE_NAME " nor " INDEX_NAME " (only safetensors "
                     "weights are read; convert pytorch_model.bin with transformers)", dir);
    free(single);
    free(index);
    if (s != NEP_OK)
        nep_hf_weights_close(w);
    else
        *out = w;
    return s;
}

const nep_st_tensor *nep_hf_weights_find(const nep_hf_weights *w, const char *name) {
    entry key = {.name = name};
    const entry *e = bsearch(&key, w->e, (size_t)w->n, sizeof *w->e, cmp_entry);
    return e ? e->t : NULL;
}

int nep_hf_weights_count(const nep_hf_weights *w) { return w->n; }

const nep_st_tensor *nep_hf_weights_at(const nep_hf_weights *w, int i) {
    return i >= 0 && i < w->n ? w->e[i].t : NULL;
}

const char *nep_hf_weights_file(const nep_hf_weights *w, int i) {
    return i >= 0 && i < w->n ? w->files[w->e[i].file] : NULL;
}

nep_status nep_hf_weights_get_f32(const nep_hf_weights *w, const char *name, float *dst,
                                  int64_t n, nep_err *err) {
    entry key = {.name = name};
    const entry *e = bsearch(&key, w->e, (size_t)w->n, sizeof *w->e, cmp_entry);
    if (!e)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: no tensor '%s' in the model's weights",
                        w->dir, name);
    nep_status s = nep_st_to_f32(e->t, dst, n, err);
    if (s != NEP_OK) {
        char where[4096];
        snprintf(where, sizeof where, "%s/%s", w->dir, w->files[e->file]);
        s = wrap(err, s, where);
    }
    return s;
}

/* ---- writer ----------------------------------------------------------------------- */

/* huggingface_hub's split_torch_state_dict_into_shards, in st's order: shard_of[i]
 * gets tensor i's shard; returns the number of shards. A tensor over the limit is a
 * shard by itself, numbered when met, before the shard still being filled. */
static int plan_shards(const nep_safetensors *st, size_t max, int *shard_of) {
    int n = 0, open_from = 0;
    size_t cur = 0;
    for (int i = 0; i < st->n_tensors; i++) {
        size_t sz = st->tensors[i].nbytes;
        shard_of[i] = -1;
        if (max && sz > max) {
            shard_of[i] = n++;
            continue;
        }
        if (max && cur + sz > max && cur > 0) {
            for (int k = open_from; k < i; k++)
                if (shard_of[k] < 0) shard_of[k] = n;
            n++;
            open_from = i;
            cur = 0;
        }
        cur += sz;
    }
    int any_open = 0;
    for (int k = open_from; k < st->n_tensors; k++) any_open |= shard_of[k] < 0;
    for (int k = open_from; any_open && k < st->n_tensors; k++)
        if (shard_of[k] < 0) shard_of[k] = n;
    return n + any_open;
}

/* The file name of shard k of n (or the single file). */
static void shard_name(char *buf, size_t cap, int k, int n) {
    if (n <= 1)
        snprintf(buf, cap, SINGLE_NAME);
    else
        snprintf(buf, cap, "model-%05d-of-%05d.safetensors", k + 1, n);
}

/* One file holding the tensors of shard k, with st's metadata and the "format" key
 * transformers' loader insists on. */
static nep_status write_shard(const char *dir, const nep_safetensors *st,
                              const int *shard_of, int k, int n, nep_err *err) {
    nep_safetensors sub = {0};
    nep_status s = NEP_OK;
    for (int i = 0; s == NEP_OK && i < st->n_tensors; i++) {
        const nep_st_tensor *t = &st->tensors[i];
        if (shard_of[i] == k)
            s = nep_st_add(&sub, t->name, t->dtype, t->ndim, t->shape, t->data, err);
    }
    for (int i = 0; s == NEP_OK && i < st->n_meta; i++)
        s = nep_st_meta_set(&sub, st->meta[i].key, st->meta[i].value, err);
    if (s == NEP_OK && !nep_st_meta_get(&sub, "format"))
        s = nep_st_meta_set(&sub, "format", "pt", err);
    char name[64];
    shard_name(name, sizeof name, k, n);
    char *path = join(dir, name);
    if (s == NEP_OK && !path) s = nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", dir);
    if (s == NEP_OK) s = nep_st_write(&sub, path, err);
    free(path);
    nep_st_free(&sub);
    return s;
}

static int cmp_tensor_ptr(const void *a, const void *b) {
    return strcmp((*(const nep_st_tensor *const *)a)->name,
                  (*(const nep_st_tensor *const *)b)->name);
}

/* {"metadata": {"total_size": bytes}, "weight_map": {name: file}}, names sorted as
 * save_pretrained sorts them. Integers as raw text: cJSON would use exponents. */
static char *index_json(const nep_safetensors *st, const int *shard_of, int n) {
    const nep_st_tensor **by = malloc(((size_t)st->n_tensors + 1) * sizeof *by);
    cJSON *root = cJSON_CreateObject(), *meta = NULL, *map = NULL;
    uint64_t total = 0;
    for (int i = 0; by && i < st->n_tensors; i++) {
        total += st->tensors[i].nbytes;
        by[i] = &st->tensors[i];
    }
    if (by && st->n_tensors) qsort(by, (size_t)st->n_tensors, sizeof *by, cmp_tensor_ptr);
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, total);
    int ok = by && root && (meta = cJSON_AddObjectToObject(root, "metadata")) &&
             cJSON_AddRawToObject(meta, "total_size", num) &&
             (map = cJSON_AddObjectToObject(root, "weight_map"));
    for (int i = 0; ok && i < st->n_tensors; i++) {
        char name[64];
        shard_name(name, sizeof name, shard_of[by[i] - st->tensors], n);
        ok = cJSON_AddStringToObject(map, by[i]->name, name) != NULL;
    }
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    free(by);
    return text;
}

/* Removes what would shadow or outlive the layout just written: the single file or the
 * index of the other layout, and shards named for another count. */
static nep_status remove_stale(const char *dir, int n, nep_err *err) {
    const char *other = n <= 1 ? INDEX_NAME : SINGLE_NAME;
    char *p = join(dir, other);
    if (!p) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", dir);
    nep_status s = NEP_OK;
    if (unlink(p) != 0 && errno != ENOENT)
        s = nep_fail(err, NEP_ERR_IO, "%s: cannot remove: %s", p, strerror(errno));
    free(p);
    DIR *d = opendir(dir);
    if (!d) return s != NEP_OK ? s : nep_fail(err, NEP_ERR_IO, "%s: %s", dir, strerror(errno));
    for (struct dirent *e; s == NEP_OK && (e = readdir(d));) {
        int k, of;
        char canon[64];
        if (sscanf(e->d_name, "model-%5d-of-%5d.safetensors", &k, &of) != 2 || k < 1 ||
            k > of)
            continue;
        shard_name(canon, sizeof canon, k - 1, of); /* exactly the pattern, nothing else */
        if (strcmp(canon, e->d_name) != 0 || (n > 1 && of == n)) continue;
        if (!(p = join(dir, e->d_name))) s = nep_fail(err, NEP_ERR_NOMEM, "out of memory");
        else if (unlink(p) != 0 && errno != ENOENT)
            s = nep_fail(err, NEP_ERR_IO, "%s: cannot remove: %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
    return s;
}

static nep_status check_names(const nep_safetensors *st, const char *dir, nep_err *err) {
    for (int i = 0; i < st->n_tensors; i++)
        for (int j = i + 1; j < st->n_tensors; j++)
            if (strcmp(st->tensors[i].name, st->tensors[j].name) == 0)
                return nep_fail(err, NEP_ERR_ARG, "%s: tensor '%s' added twice", dir,
                                st->tensors[i].name);
    return NEP_OK;
}

static nep_status make_dir(const char *dir, nep_err *err) {
    struct stat sb;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return nep_fail(err, NEP_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return nep_fail(err, NEP_ERR_IO, "%s: not a directory", dir);
    return NEP_OK;
}

static nep_status write_index(const char *dir, const nep_safetensors *st,
                              const int *shard_of, int n, nep_err *err) {
    char *text = index_json(st, shard_of, n), *path = join(dir, INDEX_NAME);
    nep_status s = !text || !path ? nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", dir)
                                  : nep_write_atomic_bytes(path, text, strlen(text), err);
    cJSON_free(text);
    free(path);
    return s;
}

nep_status nep_hf_weights_write(const char *dir, const nep_safetensors *st,
                                size_t max_shard_bytes, nep_err *err) {
    NEP_TRY(check_names(st, dir, err));
    NEP_TRY(make_dir(dir, err));
    int *shard_of = malloc(((size_t)st->n_tensors + 1) * sizeof *shard_of);
    if (!shard_of) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", dir);
    int n = plan_shards(st, max_shard_bytes, shard_of);
    if (n <= 1) /* also an empty model: one file, as transformers writes it */
        for (int i = 0; i < st->n_tensors; i++) shard_of[i] = 0;
    nep_status s = NEP_OK;
    for (int k = 0; s == NEP_OK && k < (n > 1 ? n : 1); k++)
        s = write_shard(dir, st, shard_of, k, n, err);
    if (s == NEP_OK && n > 1) s = write_index(dir, st, shard_of, n, err);
    if (s == NEP_OK) s = remove_stale(dir, n, err);
    free(shard_of);
    return s;
}
