/* safetensors reader and writer (format in nepenthe/safetensors.h). The reader trusts
 * nothing in the file: every size, offset and count is checked before it is used, so a
 * corrupt or hostile checkpoint yields NEP_ERR_FORMAT rather than a bad read. */
#include "nepenthe/safetensors.h"
#include "nepenthe/file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tensor bytes go between memory and file unchanged, and the format is little-endian. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "nepenthe's safetensors I/O assumes a little-endian host"
#endif

/* The reference implementation's limit; also bounds what a bad header makes us parse. */
#define MAX_HEADER 100000000u
/* JSON numbers are doubles: integers above 2^53 cannot be represented exactly. */
#define MAX_JSON_INT 9007199254740992.0

static const struct { const char *name; size_t size; } dtypes[] = {
    [NEP_DT_F32] = {"F32", 4},   [NEP_DT_F64] = {"F64", 8}, [NEP_DT_F16] = {"F16", 2},
    [NEP_DT_BF16] = {"BF16", 2}, [NEP_DT_I64] = {"I64", 8}, [NEP_DT_I32] = {"I32", 4},
    [NEP_DT_I16] = {"I16", 2},   [NEP_DT_I8] = {"I8", 1},   [NEP_DT_U8] = {"U8", 1},
    [NEP_DT_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((unsigned)(sizeof dtypes / sizeof dtypes[0]))

const char *nep_dtype_name(nep_dtype dt) {
    return (unsigned)dt < N_DTYPES ? dtypes[dt].name : "?";
}

size_t nep_dtype_size(nep_dtype dt) { return (unsigned)dt < N_DTYPES ? dtypes[dt].size : 0; }

static int dtype_parse(const char *s, nep_dtype *dt) {
    for (unsigned i = 0; i < N_DTYPES; i++)
        if (strcmp(s, dtypes[i].name) == 0) {
            *dt = (nep_dtype)i;
            return 0;
        }
    return -1;
}

/* Fills t->numel and t->nbytes from its shape; -1 on a negative dim or overflow. */
static int tensor_size(nep_st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0 || __builtin_mul_overflow(n, t->shape[i], &n)) return -1;
    if ((uint64_t)n > SIZE_MAX ||
        __builtin_mul_overflow((size_t)n, nep_dtype_size(t->dtype), &t->nbytes))
        return -1;
    t->numel = n;
    return 0;
}

/* "[10, 20]", for messages. */
static const char *shape_str(const nep_st_tensor *t, char *buf, size_t cap) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i ? ", " : "", t->shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
    return buf;
}

/* Returns a larger copy of arr (NULL, arr intact, when out of memory). */
static void *grow(void *arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return arr;
    int nc = *cap ? *cap : 8;
    while (nc < need) nc *= 2;
    void *p = realloc(arr, (size_t)nc * elem);
    if (p) *cap = nc;
    return p;
}

/* ---- reader ---------------------------------------------------------------------- */

static nep_status read_file(const char *path, nep_safetensors *st, size_t *size,
                            nep_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    nep_status s = NEP_OK;
    if (fstat(fileno(f), &sb) != 0)
        s = nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        s = nep_fail(err, NEP_ERR_IO, "%s: not a regular file", path);
    else if ((uintmax_t)sb.st_size > SIZE_MAX)
        s = nep_fail(err, NEP_ERR_IO, "%s: too large to read into memory", path);
    else if (!(st->buffer = malloc((size_t)sb.st_size + 1)))
        s = nep_fail(err, NEP_ERR_NOMEM, "%s: cannot allocate %jd bytes", path,
                     (intmax_t)sb.st_size);
    else if (fread(st->buffer, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size)
        s = nep_fail(err, NEP_ERR_IO, "%s: read failed: %s", path,
                     ferror(f) ? strerror(errno) : "file shrank while reading");
    else
        *size = (size_t)sb.st_size;
    fclose(f);
    return s;
}

/* A JSON number that is an exact integer in [0, 2^53]. */
static int json_uint(const cJSON *j, int64_t *v) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= MAX_JSON_INT) || d != (double)(int64_t)d) return -1;
    *v = (int64_t)d;
    return 0;
}

static nep_status parse_shape(const char *path, const cJSON *sh, nep_st_tensor *t,
                              nep_err *err) {
    if (!cJSON_IsArray(sh))
        return nep_fail(err, NEP_ERR_FORMAT, "%s: tensor '%s': missing or non-array shape",
                        path, t->name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > NEP_ST_MAX_DIMS)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: tensor '%s': %d dims, at most %d supported",
                        path, t->name, nd, NEP_ST_MAX_DIMS);
    const cJSON *d;
    t->ndim = 0;
    cJSON_ArrayForEach(d, sh) {
        if (json_uint(d, &t->shape[t->ndim]) != 0)
            return nep_fail(err, NEP_ERR_FORMAT,
                            "%s: tensor '%s': shape[%d] is not a non-negative integer", path,
                            t->name, t->ndim);
        t->ndim++;
    }
    if (tensor_size(t) != 0)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: tensor '%s': shape overflows", path,
                        t->name);
    return NEP_OK;
}

/* Checks data_offsets against the data section and the shape; points t->data at it. */
static nep_status parse_offsets(const char *path, const cJSON *off, nep_st_tensor *t,
                                const unsigned char *data, size_t data_len, nep_err *err) {
    int64_t b, e;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        json_uint(off->child, &b) != 0 || json_uint(off->child->next, &e) != 0)
        return nep_fail(err, NEP_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets must be [begin, end] integers", path,
                        t->name);
    if (b > e || (uint64_t)e > data_len)
        return nep_fail(err, NEP_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%" PRId64 ", %" PRId64
                        "] out of range (data section is %zu bytes)",
                        path, t->name, b, e, data_len);
    if ((uint64_t)(e - b) != t->nbytes) {
        char sh[256];
        return nep_fail(err, NEP_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%" PRId64 ", %" PRId64
                        "] but shape %s x %s needs %zu bytes",
                        path, t->name, b, e, shape_str(t, sh, sizeof sh),
                        nep_dtype_name(t->dtype), t->nbytes);
    }
    t->data = data + b;
    return NEP_OK;
}

static nep_status parse_tensor(const char *path, const cJSON *e, nep_safetensors *st,
                               const unsigned char *data, size_t data_len, nep_err *err) {
    nep_st_tensor *t = &st->tensors[st->n_tensors];
    *t = (nep_st_tensor){0};
    if (!(t->name = strdup(e->string)))
        return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    st->n_tensors++; /* now owned by st, freed with it on any later failure */
    if (!cJSON_IsObject(e))
        return nep_fail(err, NEP_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object",
                        path, t->name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt))
        return nep_fail(err, NEP_ERR_FORMAT, "%s: tensor '%s': missing or non-string dtype",
                        path, t->name);
    if (dtype_parse(dt->valuestring, &t->dtype) != 0)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: tensor '%s': unsupported dtype '%s'", path,
                        t->name, dt->valuestring);
    NEP_TRY(parse_shape(path, cJSON_GetObjectItemCaseSensitive(e, "shape"), t, err));
    return parse_offsets(path, cJSON_GetObjectItemCaseSensitive(e, "data_offsets"), t, data,
                         data_len, err);
}

static nep_status parse_meta(const char *path, const cJSON *m, nep_safetensors *st,
                             nep_err *err) {
    if (!cJSON_IsObject(m))
        return nep_fail(err, NEP_ERR_FORMAT, "%s: __metadata__ is not a JSON object", path);
    int n = cJSON_GetArraySize(m);
    if (!(st->meta = calloc((size_t)n + 1, sizeof *st->meta)))
        return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    st->cap_meta = n + 1;
    const cJSON *kv;
    cJSON_ArrayForEach(kv, m) {
        if (!cJSON_IsString(kv))
            return nep_fail(err, NEP_ERR_FORMAT, "%s: __metadata__ '%s' is not a string",
                            path, kv->string);
        nep_st_meta *e = &st->meta[st->n_meta++];
        e->key = strdup(kv->string);
        e->value = strdup(kv->valuestring);
        if (!e->key || !e->value)
            return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    }
    return NEP_OK;
}

static nep_status parse_entries(const char *path, const cJSON *root, nep_safetensors *st,
                                const unsigned char *data, size_t data_len, nep_err *err) {
    int n = cJSON_GetArraySize(root);
    if (!(st->tensors = calloc((size_t)n + 1, sizeof *st->tensors)))
        return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    st->cap_tensors = n + 1;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") != 0)
            NEP_TRY(parse_tensor(path, e, st, data, data_len, err));
        else if (st->meta) /* cJSON keeps repeated keys */
            return nep_fail(err, NEP_ERR_FORMAT, "%s: __metadata__ appears twice", path);
        else
            NEP_TRY(parse_meta(path, e, st, err));
    }
    return NEP_OK;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const nep_st_tensor *)a)->name, ((const nep_st_tensor *)b)->name);
}

static int cmp_meta_key(const void *a, const void *b) {
    return strcmp(((const nep_st_meta *)a)->key, ((const nep_st_meta *)b)->key);
}

/* Orders by start, then end, so that each tensor need only be compared with the
 * furthest end seen before it. */
static int cmp_tensor_data(const void *a, const void *b) {
    const nep_st_tensor *x = *(const nep_st_tensor *const *)a;
    const nep_st_tensor *y = *(const nep_st_tensor *const *)b;
    const char *xd = x->data, *yd = y->data;
    if (xd != yd) return xd < yd ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

static nep_status check_overlap(const char *path, const nep_safetensors *st, nep_err *err) {
    if (st->n_tensors < 2) return NEP_OK;
    const nep_st_tensor **by = malloc((size_t)st->n_tensors * sizeof *by);
    if (!by) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < st->n_tensors; i++) by[i] = &st->tensors[i];
    qsort(by, (size_t)st->n_tensors, sizeof *by, cmp_tensor_data);
    const nep_st_tensor *last = by[0]; /* the one reaching furthest so far */
    nep_status s = NEP_OK;
    for (int i = 1; i < st->n_tensors && s == NEP_OK; i++) {
        const char *end = (const char *)last->data + last->nbytes;
        if ((const char *)by[i]->data < end)
            s = nep_fail(err, NEP_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", path,
                         last->name, by[i]->name);
        else if ((const char *)by[i]->data + by[i]->nbytes > end)
            last = by[i];
    }
    free(by);
    return s;
}

/* Sorts tensors by name and metadata by key (lookups and writing want that order
 * anyway), which brings any repeated name next to its twin. */
static nep_status check_unique(const char *path, nep_safetensors *st, nep_err *err) {
    if (st->n_tensors) qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors,
                             cmp_tensor_name);
    for (int i = 1; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
            return nep_fail(err, NEP_ERR_FORMAT, "%s: tensor '%s' appears twice", path,
                            st->tensors[i].name);
    if (st->n_meta) qsort(st->meta, (size_t)st->n_meta, sizeof *st->meta, cmp_meta_key);
    for (int i = 1; i < st->n_meta; i++)
        if (strcmp(st->meta[i - 1].key, st->meta[i].key) == 0)
            return nep_fail(err, NEP_ERR_FORMAT, "%s: __metadata__ key '%s' appears twice",
                            path, st->meta[i].key);
    return NEP_OK;
}

static nep_status parse_file(const char *path, nep_safetensors *st, size_t size,
                             nep_err *err) {
    const unsigned char *b = st->buffer;
    if (size < 8)
        return nep_fail(err, NEP_ERR_FORMAT,
                        "%s: %zu bytes, too short for a safetensors file", path, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | b[i];
    if (n > MAX_HEADER || n > size - 8)
        return nep_fail(err, NEP_ERR_FORMAT,
                        "%s: header length %" PRIu64 " exceeds the %s (%zu bytes)", path, n,
                        n > MAX_HEADER ? "100 MB limit" : "file size", size);
    const char *hdr = (const char *)b + 8, *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: header is not valid JSON (at byte %td)",
                        path, end ? end - hdr : (ptrdiff_t)0);
    while (end < hdr + n && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    nep_status s = NEP_OK;
    if (end != hdr + n)
        s = nep_fail(err, NEP_ERR_FORMAT, "%s: bytes after the header's JSON", path);
    else if (!cJSON_IsObject(root))
        s = nep_fail(err, NEP_ERR_FORMAT, "%s: header is not a JSON object", path);
    else
        s = parse_entries(path, root, st, b + 8 + n, size - 8 - (size_t)n, err);
    cJSON_Delete(root);
    if (s == NEP_OK) s = check_unique(path, st, err);
    if (s == NEP_OK) s = check_overlap(path, st, err);
    return s;
}

nep_status nep_st_read(const char *path, nep_safetensors *out, nep_err *err) {
    *out = (nep_safetensors){0};
    size_t size = 0;
    nep_status s = read_file(path, out, &size, err);
    if (s == NEP_OK) s = parse_file(path, out, size, err);
    if (s != NEP_OK) nep_st_free(out);
    return s;
}

/* Maps the whole file read-only. An empty file maps nothing (mmap refuses length 0);
 * parse_file then rejects it as too short without touching the buffer. */
static nep_status map_file(const char *path, nep_safetensors *st, size_t *size,
                           nep_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    nep_status s = NEP_OK;
    if (fstat(fd, &sb) != 0)
        s = nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        s = nep_fail(err, NEP_ERR_IO, "%s: not a regular file", path);
    else if ((uintmax_t)sb.st_size > SIZE_MAX)
        s = nep_fail(err, NEP_ERR_IO, "%s: too large to map", path);
    else if (sb.st_size > 0) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
            s = nep_fail(err, errno == ENOMEM ? NEP_ERR_NOMEM : NEP_ERR_IO,
                         "%s: cannot map %jd bytes: %s", path, (intmax_t)sb.st_size,
                         strerror(errno));
        else {
            st->buffer = p;
            st->map_size = (size_t)sb.st_size;
        }
    }
    if (s == NEP_OK) *size = (size_t)sb.st_size;
    close(fd); /* the mapping keeps the file's pages reachable */
    return s;
}

nep_status nep_st_map(const char *path, nep_safetensors *out, nep_err *err) {
    *out = (nep_safetensors){0};
    size_t size = 0;
    nep_status s = map_file(path, out, &size, err);
    if (s == NEP_OK) s = parse_file(path, out, size, err);
    if (s != NEP_OK) nep_st_free(out);
    return s;
}

const nep_st_tensor *nep_st_find(const nep_safetensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *nep_st_meta_get(const nep_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].value;
    return NULL;
}

void nep_st_free(nep_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->tensors);
    free(st->meta);
    if (st->map_size)
        munmap(st->buffer, st->map_size);
    else
        free(st->buffer);
    *st = (nep_safetensors){0};
}

/* ---- writer ---------------------------------------------------------------------- */

nep_status nep_st_add(nep_safetensors *st, const char *name, nep_dtype dtype, int ndim,
                      const int64_t *shape, const void *data, nep_err *err) {
    if (!name || strcmp(name, "__metadata__") == 0)
        return nep_fail(err, NEP_ERR_ARG, "safetensors: invalid tensor name '%s'",
                        name ? name : "(null)");
    nep_st_tensor t = {.dtype = dtype, .ndim = ndim, .data = data};
    if ((unsigned)dtype >= N_DTYPES || ndim < 0 || ndim > NEP_ST_MAX_DIMS)
        return nep_fail(err, NEP_ERR_ARG, "tensor '%s': bad dtype %d or ndim %d", name,
                        (int)dtype, ndim);
    if (ndim) memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
    if (tensor_size(&t) != 0)
        return nep_fail(err, NEP_ERR_ARG, "tensor '%s': negative or overflowing shape", name);
    if (!data && t.nbytes)
        return nep_fail(err, NEP_ERR_ARG, "tensor '%s': NULL data", name);
    nep_st_tensor *arr = grow(st->tensors, &st->cap_tensors, st->n_tensors + 1, sizeof t);
    if (!arr || !(t.name = strdup(name)))
        return nep_fail(err, NEP_ERR_NOMEM, "tensor '%s': out of memory", name);
    st->tensors = arr;
    st->tensors[st->n_tensors++] = t;
    return NEP_OK;
}

nep_status nep_st_meta_set(nep_safetensors *st, const char *key, const char *value,
                           nep_err *err) {
    char *v = strdup(value);
    if (!v) return nep_fail(err, NEP_ERR_NOMEM, "metadata '%s': out of memory", key);
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[i].key, key) == 0) {
            free(st->meta[i].value);
            st->meta[i].value = v;
            return NEP_OK;
        }
    nep_st_meta *arr = grow(st->meta, &st->cap_meta, st->n_meta + 1, sizeof *arr);
    char *k = arr ? strdup(key) : NULL;
    if (!k) {
        free(v);
        return nep_fail(err, NEP_ERR_NOMEM, "metadata '%s': out of memory", key);
    }
    st->meta = arr;
    st->meta[st->n_meta++] = (nep_st_meta){k, v};
    return NEP_OK;
}

static int cmp_tensor_ptr_name(const void *a, const void *b) {
    return strcmp((*(const nep_st_tensor *const *)a)->name,
                  (*(const nep_st_tensor *const *)b)->name);
}

/* Shapes and offsets go in as raw JSON text: cJSON prints large doubles with exponents,
 * which other readers reject as sizes. */
static int add_tensor_json(cJSON *root, const nep_st_tensor *t, uint64_t begin) {
    char shape[NEP_ST_MAX_DIMS * 22 + 4], offs[48];
    size_t len = (size_t)snprintf(shape, sizeof shape, "[");
    for (int i = 0; i < t->ndim; i++)
        len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%" PRId64, i ? "," : "",
                                t->shape[i]);
    snprintf(shape + len, sizeof shape - len, "]");
    snprintf(offs, sizeof offs, "[%" PRIu64 ",%" PRIu64 "]", begin, begin + t->nbytes);
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "dtype", nep_dtype_name(t->dtype)) ||
        !cJSON_AddRawToObject(o, "shape", shape) ||
        !cJSON_AddRawToObject(o, "data_offsets", offs) ||
        !cJSON_AddItemToObject(root, t->name, o)) {
        cJSON_Delete(o);
        return -1;
    }
    return 0;
}

/* The header JSON, space-padded to a multiple of 8 so that the data starts aligned. */
static char *build_header(const nep_safetensors *st, const nep_st_tensor *const *order,
                          size_t *len) {
    cJSON *root = cJSON_CreateObject(), *m = NULL;
    int ok = root != NULL;
    if (ok && st->n_meta) ok = (m = cJSON_AddObjectToObject(root, "__metadata__")) != NULL;
    for (int i = 0; ok && i < st->n_meta; i++)
        ok = cJSON_AddStringToObject(m, st->meta[i].key, st->meta[i].value) != NULL;
    uint64_t off = 0;
    for (int i = 0; ok && i < st->n_tensors; i++) {
        ok = add_tensor_json(root, order[i], off) == 0;
        off += order[i]->nbytes;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL, *h = NULL;
    cJSON_Delete(root);
    if (json) {
        size_t n = strlen(json);
        *len = (n + 7) & ~(size_t)7;
        if ((h = malloc(*len))) {
            memcpy(h, json, n);
            memset(h + n, ' ', *len - n);
        }
    }
    cJSON_free(json);
    return h;
}

/* Writes everything and makes it durable; returns 0 or an errno, naming the step. */
/* What nep_write_atomic writes: length, header, then the tensors' bytes. */
typedef struct st_contents {
    const char *hdr;
    size_t hlen;
    const nep_st_tensor *const *order;
    int n;
} st_contents;

static int write_contents(void *ctx, FILE *f) {
    const st_contents *c = ctx;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)c->hlen >> (8 * i));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(c->hdr, 1, c->hlen, f) != c->hlen) return errno ? errno : EIO;
    for (int i = 0; i < c->n; i++) {
        const nep_st_tensor *t = c->order[i];
        if (t->nbytes && fwrite(t->data, 1, t->nbytes, f) != t->nbytes) return errno ? errno : EIO;
    }
    return 0;
}

nep_status nep_st_write(const nep_safetensors *st, const char *path, nep_err *err) {
    const nep_st_tensor **order = malloc(((size_t)st->n_tensors + 1) * sizeof *order);
    if (!order) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < st->n_tensors; i++) order[i] = &st->tensors[i];
    if (st->n_tensors) qsort(order, (size_t)st->n_tensors, sizeof *order, cmp_tensor_ptr_name);
    nep_status s = NEP_OK;
    for (int i = 1; i < st->n_tensors && s == NEP_OK; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            s = nep_fail(err, NEP_ERR_ARG, "%s: tensor '%s' added twice", path, order[i]->name);
    size_t hlen = 0;
    char *hdr = s == NEP_OK ? build_header(st, order, &hlen) : NULL;
    if (s == NEP_OK && !hdr) s = nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    st_contents c = {hdr, hlen, order, st->n_tensors};
    if (s == NEP_OK) s = nep_write_atomic(path, write_contents, &c, err);
    free(hdr);
    free(order);
    return s;
}

/* ---- conversion ------------------------------------------------------------------ */

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = h >> 10 & 0x1f, mant = h & 0x3ff;
    if (exp == 0) { /* zero or subnormal: mant x 2^-24, exact in float */
        float f = (float)mant * 0x1p-24f;
        return sign ? -f : f;
    }
    uint32_t bits = exp == 31 ? sign | 0x7f800000u | mant << 13 /* inf; NaN keeps payload */
                              : sign | (exp + 127 - 15) << 23 | mant << 13;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float bf16_to_float(uint16_t h) { /* bfloat16 is the top half of a float */
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Element i of a float tensor; data may be unaligned, hence memcpy. */
static double load_elem(const nep_st_tensor *t, int64_t i) {
    const unsigned char *p = (const unsigned char *)t->data + (size_t)i * nep_dtype_size(t->dtype);
    float f;
    double d;
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
    switch (t->dtype) {
    case NEP_DT_F32: memcpy(&f, p, sizeof f); return f;
    case NEP_DT_F64: memcpy(&d, p, sizeof d); return d;
    case NEP_DT_F16: return half_to_float(h);
    default: return bf16_to_float(h);
    }
}

static nep_status convert_check(const nep_st_tensor *t, int64_t n, nep_err *err) {
    if (t->dtype != NEP_DT_F32 && t->dtype != NEP_DT_F64 && t->dtype != NEP_DT_F16 &&
        t->dtype != NEP_DT_BF16)
        return nep_fail(err, NEP_ERR_FORMAT, "tensor '%s': dtype %s is not floating point",
                        t->name, nep_dtype_name(t->dtype));
    if (t->numel != n)
        return nep_fail(err, NEP_ERR_SHAPE, "tensor '%s': %" PRId64 " elements, expected %" PRId64,
                        t->name, t->numel, n);
    return NEP_OK;
}

nep_status nep_st_to_f32(const nep_st_tensor *t, float *dst, int64_t n, nep_err *err) {
    NEP_TRY(convert_check(t, n, err));
    if (t->dtype == NEP_DT_F32 && n)
        memcpy(dst, t->data, t->nbytes);
    else
        for (int64_t i = 0; i < n; i++) dst[i] = (float)load_elem(t, i);
    return NEP_OK;
}

nep_status nep_st_to_f64(const nep_st_tensor *t, double *dst, int64_t n, nep_err *err) {
    NEP_TRY(convert_check(t, n, err));
    if (t->dtype == NEP_DT_F64 && n)
        memcpy(dst, t->data, t->nbytes);
    else
        for (int64_t i = 0; i < n; i++) dst[i] = load_elem(t, i);
    return NEP_OK;
}
