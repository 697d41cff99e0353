/* safetensors reader/writer: round trips, interchange with an independent numpy
 * implementation (tests/tools/safetensors_np.py), rejection of corrupt files, atomic
 * writes, and half/bfloat16 conversion. Run from the repository root. */
#include "testutil.h"

#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nepenthe/safetensors.h"

#define PYTHON "PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3"
#define TOOLS_DIR "tests/tools"

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    char *b = malloc(*n + 1);
    if (fread(b, 1, *n, f) != *n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

/* Runs a Python snippet with safetensors_np importable as `st`; returns its exit code. */
static int run_python(const char *dir, const char *code) {
    char *script = nep_test_path(dir, "check.py");
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fprintf(f, "import sys\nsys.path.insert(0, %s)\nimport numpy as np\n"
               "import safetensors_np as st\n%s\n", "'" TOOLS_DIR "'", code);
    assert_int_equal(fclose(f), 0);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, PYTHON " %s", script);
    int rc = system(cmd);
    free(script);
    return rc;
}

static void assert_tensor(const nep_safetensors *st, const char *name, nep_dtype dt,
                          int ndim, const int64_t *shape, const void *data, size_t nbytes) {
    const nep_st_tensor *t = nep_st_find(st, name);
    assert_non_null(t);
    assert_string_equal(t->name, name);
    assert_int_equal(t->dtype, dt);
    assert_int_equal(t->ndim, ndim);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        assert_int_equal(t->shape[i], shape[i]);
        numel *= shape[i];
    }
    assert_int_equal(t->numel, numel);
    assert_int_equal(t->nbytes, nbytes);
    if (nbytes) assert_memory_equal(t->data, data, nbytes);
}

/* ---- round trips ----------------------------------------------------------------- */

static const float W[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
static const uint8_t MASK[5] = {1, 0, 1, 1, 0};
static const int64_t STEPS[4] = {0, -1, INT64_MAX, INT64_MIN};
static const double RM[3] = {0.1, -1e300, 4.9e-324};

static void build_sample(nep_safetensors *st) {
    nep_err err = {0};
    const int64_t sw[2] = {2, 3}, sm[1] = {5}, ss[2] = {2, 2}, sr[1] = {3}, se[2] = {0, 4};
    assert_int_equal(nep_st_add(st, "fc1.weight", NEP_DT_F32, 2, sw, W, &err), NEP_OK);
    assert_int_equal(nep_st_add(st, "fc1.weight_mask", NEP_DT_U8, 1, sm, MASK, &err), NEP_OK);
    assert_int_equal(nep_st_add(st, "bn1.running_mean", NEP_DT_F64, 1, sr, RM, &err), NEP_OK);
    assert_int_equal(nep_st_add(st, "steps", NEP_DT_I64, 2, ss, STEPS, &err), NEP_OK);
    assert_int_equal(nep_st_add(st, "empty", NEP_DT_F32, 2, se, NULL, &err), NEP_OK);
    assert_int_equal(nep_st_add(st, "scalar", NEP_DT_F64, 0, NULL, &RM[0], &err), NEP_OK);
    assert_int_equal(nep_st_meta_set(st, "arch", "mlp", &err), NEP_OK);
    assert_int_equal(nep_st_meta_set(st, "epoch", "1", &err), NEP_OK);
    assert_int_equal(nep_st_meta_set(st, "epoch", "7", &err), NEP_OK); /* replaces */
    assert_int_equal(nep_st_meta_set(st, "quote\"d", "{\"a\": [1]}\n", &err), NEP_OK);
    assert_int_equal(st->n_meta, 3);
}

static void check_sample(const nep_safetensors *st) {
    const int64_t sw[2] = {2, 3}, sm[1] = {5}, ss[2] = {2, 2}, sr[1] = {3}, se[2] = {0, 4};
    assert_int_equal(st->n_tensors, 6);
    assert_tensor(st, "fc1.weight", NEP_DT_F32, 2, sw, W, sizeof W);
    assert_tensor(st, "fc1.weight_mask", NEP_DT_U8, 1, sm, MASK, sizeof MASK);
    assert_tensor(st, "bn1.running_mean", NEP_DT_F64, 1, sr, RM, sizeof RM);
    assert_tensor(st, "steps", NEP_DT_I64, 2, ss, STEPS, sizeof STEPS);
    assert_tensor(st, "empty", NEP_DT_F32, 2, se, NULL, 0);
    assert_tensor(st, "scalar", NEP_DT_F64, 0, NULL, &RM[0], sizeof RM[0]);
    assert_null(nep_st_find(st, "fc2.weight"));
    assert_int_equal(st->n_meta, 3);
    assert_string_equal(nep_st_meta_get(st, "arch"), "mlp");
    assert_string_equal(nep_st_meta_get(st, "epoch"), "7");
    assert_string_equal(nep_st_meta_get(st, "quote\"d"), "{\"a\": [1]}\n");
    assert_null(nep_st_meta_get(st, "missing"));
}

static void test_roundtrip(void **state) {
    char *dir = nep_test_tmpdir(), *path = nep_test_path(dir, "model.safetensors");
    nep_safetensors w = {0}, r = {0};
    nep_err err = {0};
    build_sample(&w);
    assert_int_equal(nep_st_write(&w, path, &err), NEP_OK);
    nep_st_free(&w);
    assert_null(w.tensors);

    nep_status s = nep_st_read(path, &r, &err);
    if (s != NEP_OK) fail_msg("%s", err.msg);
    check_sample(&r);
    for (int i = 1; i < r.n_tensors; i++) /* name order */
        assert_true(strcmp(r.tensors[i - 1].name, r.tensors[i].name) < 0);

    /* Header length padded to 8 and data laid out in name order without gaps. */
    size_t n = 0;
    unsigned char *raw = (unsigned char *)read_all(path, &n);
    assert_non_null(raw);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(n, 8 + hlen + sizeof W + sizeof MASK + sizeof RM + sizeof STEPS + 8);
    assert_ptr_equal(r.tensors[0].data, (char *)r.buffer + 8 + hlen);
    assert_string_equal(r.tensors[0].name, "bn1.running_mean");
    free(raw);
    nep_st_free(&r);
    assert_null(r.buffer);
    assert_int_equal(r.n_tensors, 0);
    assert_int_equal(nep_test_count_entries(dir), 1);
    free(path);
    nep_test_rmtree(dir);
}

static void test_numpy_writes_we_read(void **state) {
    char *dir = nep_test_tmpdir(), *path = nep_test_path(dir, "np.safetensors");
    char code[2048];
    snprintf(code, sizeof code,
             "st.save('%s', {\n"
             " 'layer1.0.conv1.weight': np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) / 8,\n"
             " 'half': np.array([1.0, -2.5, 65504, 2.0**-24, np.inf, -0.0], dtype=np.float16),\n"
             " 'idx': np.array([[-7, 1 << 40]], dtype=np.int64),\n"
             " 'flags': np.array([True, False, True]),\n"
             " 'mask': np.array([0, 255], dtype=np.uint8)},\n"
             " {'arch': 'resnet18', 'epoch': 3})\n",
             path);
    assert_int_equal(run_python(dir, code), 0);

    nep_safetensors r = {0};
    nep_err err = {0};
    nep_status s = nep_st_read(path, &r, &err);
    if (s != NEP_OK) fail_msg("%s", err.msg);
    assert_int_equal(r.n_tensors, 5);
    assert_string_equal(nep_st_meta_get(&r, "arch"), "resnet18");
    assert_string_equal(nep_st_meta_get(&r, "epoch"), "3");

    const nep_st_tensor *c = nep_st_find(&r, "layer1.0.conv1.weight");
    assert_non_null(c);
    assert_int_equal(c->dtype, NEP_DT_F32);
    assert_int_equal(c->ndim, 4);
    assert_int_equal(c->shape[1], 3);
    double cw[24];
    assert_int_equal(nep_st_to_f64(c, cw, 24, &err), NEP_OK);
    for (int i = 0; i < 24; i++) assert_true(cw[i] == i / 8.0);

    float h[6];
    assert_int_equal(nep_st_to_f32(nep_st_find(&r, "half"), h, 6, &err), NEP_OK);
    assert_true(h[0] == 1.0f && h[1] == -2.5f && h[2] == 65504.0f && h[3] == 0x1p-24f);
    assert_true(isinf(h[4]) && h[4] > 0 && h[5] == 0 && signbit(h[5]));

    const int64_t si[2] = {1, 2}, sf[1] = {3}, sm[1] = {2};
    const int64_t idx[2] = {-7, (int64_t)1 << 40};
    const uint8_t flags[3] = {1, 0, 1}, mask[2] = {0, 255};
    assert_tensor(&r, "idx", NEP_DT_I64, 2, si, idx, sizeof idx);
    assert_tensor(&r, "flags", NEP_DT_BOOL, 1, sf, flags, sizeof flags);
    assert_tensor(&r, "mask", NEP_DT_U8, 1, sm, mask, sizeof mask);
    nep_st_free(&r);
    free(path);
    nep_test_rmtree(dir);
}

static void test_we_write_numpy_reads(void **state) {
    char *dir = nep_test_tmpdir(), *path = nep_test_path(dir, "ours.safetensors");
    nep_safetensors w = {0};
    nep_err err = {0};
    build_sample(&w);
    assert_int_equal(nep_st_write(&w, path, &err), NEP_OK);
    nep_st_free(&w);
    char code[2048];
    snprintf(code, sizeof code,
             "t, m = st.load('%s')\n"
             "assert sorted(t) == ['bn1.running_mean', 'empty', 'fc1.weight', "
             "'fc1.weight_mask', 'scalar', 'steps'], sorted(t)\n"
             "assert m == {'arch': 'mlp', 'epoch': '7', 'quote\"d': '{\"a\": [1]}\\n'}, m\n"
             "w = t['fc1.weight']\n"
             "assert w.dtype == np.float32 and w.shape == (2, 3), (w.dtype, w.shape)\n"
             "assert (w == np.array([[1.5, -2, 3.25], [0, 0, 1e-30]], np.float32)).all(), w\n"
             "assert t['fc1.weight_mask'].tolist() == [1, 0, 1, 1, 0]\n"
             "assert t['steps'].tolist() == [[0, -1], [2**63 - 1, -2**63]]\n"
             "assert t['bn1.running_mean'].tolist() == [0.1, -1e300, 5e-324]\n"
             "assert t['empty'].shape == (0, 4) and t['scalar'].shape == ()\n"
             "assert t['scalar'] == 0.1\n",
             path);
    assert_int_equal(run_python(dir, code), 0);
    free(path);
    nep_test_rmtree(dir);
}

/* ---- corrupt files --------------------------------------------------------------- */

/* Writes the 8-byte length (or hlen_override), header, then data_len bytes. */
static void craft(const char *path, const char *header, uint64_t hlen_override,
                  size_t data_len) {
    size_t h = strlen(header), n = 8 + h + data_len;
    unsigned char *b = calloc(1, n);
    uint64_t len = hlen_override ? hlen_override : h;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(len >> (8 * i));
    memcpy(b + 8, header, h);
    assert_int_equal(nep_test_write_file(path, b, n), 0);
    free(b);
}

static void expect_format(const char *path, const char *what) {
    nep_safetensors r = {0};
    nep_err err = {0};
    nep_status s = nep_st_read(path, &r, &err);
    if (s != NEP_ERR_FORMAT || !strstr(err.msg, what) || !strstr(err.msg, path))
        fail_msg("expected format error containing \"%s\", got %s: %s", what,
                 nep_status_name(s), err.msg);
    assert_null(r.tensors); /* nothing leaks out of a failed read */
    assert_null(r.buffer);
    assert_int_equal(r.n_tensors, 0);
}

static void test_corrupt_files(void **state) {
    static const struct { const char *header; uint64_t hlen; size_t data; const char *want; } C[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 1ull << 40, 16,
         "100 MB limit"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 4096, 16,
         "exceeds the file size"},
        {"{\"a\":{\"dtype\":\"F32\",", 0, 0, "not valid JSON"},
        {"{\"a\":1} x", 0, 0, "bytes after the header"},
        {"[1, 2]", 0, 0, "not a JSON object"},
        {"{\"fc1.weight\":[1]}", 0, 0, "tensor 'fc1.weight': entry is not a JSON object"},
        {"{\"fc1.weight\":{\"dtype\":\"F8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 0, 4,
         "tensor 'fc1.weight': unsupported dtype 'F8'"},
        {"{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", 0, 16, "tensor 'w': missing"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-2],\"data_offsets\":[0,16]}}", 0, 16,
         "tensor 'w': shape[1] is not a non-negative integer"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,16]}}", 0, 16,
         "shape[0] is not"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 0, 4,
         "9 dims"},
        {"{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
         0, 8, "tensor 'w': shape overflows"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", 0, 16, "tensor 'w': data_offsets must be"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", 0, 16, "data_offsets must be"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,100]}}", 0, 16,
         "tensor 'w': data_offsets [0, 100] out of range (data section is 16 bytes)"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 0, 16,
         "tensor 'w': data_offsets [8, 4] out of range"},
        {"{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[10,20],\"data_offsets\":[0,100]}}", 0,
         100, "tensor 'fc1.weight': data_offsets [0, 100] but shape [10, 20] x F32 needs 800 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 0, 24,
         "tensors 'a' and 'b' overlap"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 0, 16,
         "tensors 'a' and 'b' overlap"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8,
         "tensor 'w' appears twice"},
        {"{\"__metadata__\":{\"epoch\":3}}", 0, 0, "__metadata__ 'epoch' is not a string"},
        {"{\"__metadata__\":[\"a\"]}", 0, 0, "__metadata__ is not a JSON object"},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, 0, "key 'k' appears twice"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, 0, "__metadata__ appears twice"},
    };
    char *dir = nep_test_tmpdir(), *path = nep_test_path(dir, "bad.safetensors");
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        craft(path, C[i].header, C[i].hlen, C[i].data);
        expect_format(path, C[i].want);
    }
    assert_int_equal(nep_test_write_file(path, "\x10\0\0", 3), 0);
    expect_format(path, "3 bytes, too short");

    /* A header length within the file but past the 100 MB cap (sparse file). */
    const uint64_t big = 100000008;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(big >> (8 * i));
    assert_int_equal(nep_test_write_file(path, len8, 8), 0);
    assert_int_equal(truncate(path, (off_t)(8 + big + 16)), 0);
    expect_format(path, "header length 100000008 exceeds the 100 MB limit");

    /* A good file with its data cut short. */
    nep_safetensors w = {0};
    nep_err err = {0};
    build_sample(&w);
    assert_int_equal(nep_st_write(&w, path, &err), NEP_OK);
    nep_st_free(&w);
    size_t n = 0;
    char *raw = read_all(path, &n);
    assert_non_null(raw);
    assert_int_equal(nep_test_write_file(path, raw, n - 1), 0);
    expect_format(path, "tensor 'steps': data_offsets"); /* last in name order */
    free(raw);

    /* Valid edge cases stay accepted: padded header, zero-size tensors sharing an offset. */
    craft(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                "\"c\":{\"dtype\":\"I8\",\"shape\":[0,3],\"data_offsets\":[0,0]}}   ", 0, 4);
    nep_safetensors r = {0};
    nep_status s = nep_st_read(path, &r, &err);
    if (s != NEP_OK) fail_msg("%s", err.msg);
    assert_int_equal(r.n_tensors, 3);
    assert_int_equal(r.n_meta, 0);
    nep_st_free(&r);
    free(path);
    nep_test_rmtree(dir);
}

static void test_missing_file(void **state) {
    nep_safetensors r = {0};
    nep_err err = {0};
    const char *path = "/nonexistent-dir/model.safetensors";
    assert_int_equal(nep_st_read(path, &r, &err), NEP_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "No such file"));
    assert_null(r.buffer);

    char *dir = nep_test_tmpdir(); /* a directory is not a checkpoint either */
    assert_int_equal(nep_st_read(dir, &r, &err), NEP_ERR_IO);
    nep_test_rmtree(dir);
}

/* ---- atomic writes --------------------------------------------------------------- */

static void assert_file_is(const char *path, const char *content) {
    size_t n = 0;
    char *b = read_all(path, &n);
    assert_non_null(b);
    assert_int_equal(n, strlen(content));
    assert_memory_equal(b, content, n);
    free(b);
}

static nep_status write_one(const char *path, size_t nbytes, nep_err *err) {
    nep_safetensors w = {0};
    unsigned char *data = calloc(1, nbytes);
    const int64_t shape[1] = {(int64_t)nbytes};
    nep_status s = nep_st_add(&w, "x", NEP_DT_U8, 1, shape, data, err);
    if (s == NEP_OK) s = nep_st_write(&w, path, err);
    nep_st_free(&w);
    free(data);
    return s;
}

static void test_atomic_write(void **state) {
    char *dir = nep_test_tmpdir(), *path = nep_test_path(dir, "ckpt.safetensors");
    nep_err err = {0};
    assert_int_equal(nep_test_write_file(path, "old", 3), 0);

    /* Cannot create the temporary file: simulated by a directory in its way, which
     * also works as root. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(mkdir(tmp, 0700), 0);
    assert_int_equal(write_one(path, 16, &err), NEP_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_file_is(path, "old");
    assert_int_equal(rmdir(tmp), 0);

    /* Unwritable directory (root ignores the permission, so only check as a user). */
    if (geteuid() != 0) {
        assert_int_equal(chmod(dir, 0555), 0);
        assert_int_equal(write_one(path, 16, &err), NEP_ERR_IO);
        assert_int_equal(chmod(dir, 0700), 0);
        assert_file_is(path, "old");
    }

    /* A write failing midway (file size limit): the old file survives, no temp left. */
    struct rlimit old_lim, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
    lim = old_lim;
    lim.rlim_cur = 4096;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    nep_status s = write_one(path, 1 << 20, &err);
    setrlimit(RLIMIT_FSIZE, &old_lim);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(s, NEP_ERR_IO);
    assert_non_null(strstr(err.msg, "write failed"));
    assert_file_is(path, "old");
    assert_int_equal(nep_test_count_entries(dir), 1);

    /* The target is a directory: the rename fails and the temp file is removed. */
    char *sub = nep_test_path(dir, "sub.safetensors");
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(write_one(sub, 16, &err), NEP_ERR_IO);
    assert_non_null(strstr(err.msg, "rename failed"));
    struct stat sb;
    assert_int_equal(stat(sub, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(nep_test_count_entries(dir), 2);

    /* Success replaces the old file and leaves nothing else behind. */
    assert_int_equal(write_one(path, 16, &err), NEP_OK);
    assert_int_equal(nep_test_count_entries(dir), 2);
    nep_safetensors r = {0};
    assert_int_equal(nep_st_read(path, &r, &err), NEP_OK);
    assert_int_equal(r.n_tensors, 1);
    assert_int_equal(r.tensors[0].nbytes, 16);
    nep_st_free(&r);

    free(sub);
    free(path);
    nep_test_rmtree(dir);
}

/* ---- writer arguments and teardown ----------------------------------------------- */

static void test_writer_args(void **state) {
    nep_safetensors w = {0};
    nep_err err = {0};
    float x[2] = {1, 2};
    const int64_t good[1] = {2}, neg[2] = {2, -1}, huge[3] = {1LL << 40, 1LL << 40, 1LL << 40};
    nep_st_free(&w); /* safe on a zeroed struct */
    assert_int_equal(nep_st_add(&w, "a", NEP_DT_F32, 2, neg, x, &err), NEP_ERR_ARG);
    assert_int_equal(nep_st_add(&w, "a", NEP_DT_F32, 3, huge, x, &err), NEP_ERR_ARG);
    assert_int_equal(nep_st_add(&w, "a", NEP_DT_F32, 9, good, x, &err), NEP_ERR_ARG);
    assert_int_equal(nep_st_add(&w, "a", NEP_DT_F32, 1, good, NULL, &err), NEP_ERR_ARG);
    assert_int_equal(nep_st_add(&w, "__metadata__", NEP_DT_F32, 1, good, x, &err), NEP_ERR_ARG);
    assert_int_equal(w.n_tensors, 0);
    for (int i = 0; i < 40; i++) { /* several reallocations */
        char name[16];
        snprintf(name, sizeof name, "t%02d", 39 - i);
        assert_int_equal(nep_st_add(&w, name, NEP_DT_F32, 1, good, x, &err), NEP_OK);
        assert_int_equal(nep_st_meta_set(&w, name, "v", &err), NEP_OK);
    }
    assert_int_equal(w.n_tensors, 40);
    assert_int_equal(w.n_meta, 40);
    assert_int_equal(nep_st_add(&w, "t07", NEP_DT_F32, 1, good, x, &err), NEP_OK);
    char *dir = nep_test_tmpdir(), *path = nep_test_path(dir, "dup.safetensors");
    assert_int_equal(nep_st_write(&w, path, &err), NEP_ERR_ARG);
    assert_non_null(strstr(err.msg, "'t07'"));
    assert_int_equal(nep_test_count_entries(dir), 0);
    nep_st_free(&w); /* a half-built writer */
    assert_null(w.tensors);
    assert_null(w.meta);
    assert_int_equal(w.n_meta, 0);
    free(path);
    nep_test_rmtree(dir);
}

/* ---- conversion ------------------------------------------------------------------ */

static nep_st_tensor vec(nep_dtype dt, const void *data, int64_t n) {
    nep_st_tensor t = {.name = "v", .dtype = dt, .ndim = 1, .shape = {n}, .numel = n,
                       .nbytes = (size_t)n * nep_dtype_size(dt), .data = data};
    return t;
}

static void test_half_conversion(void **state) {
    nep_err err = {0};
    /* 1, -2.5, 65504 (max), 2^-24 (min subnormal), 1023 * 2^-24 (max subnormal),
     * 2^-14 (min normal), inf, -inf, -0, NaN */
    const uint16_t f16[10] = {0x3C00, 0xC100, 0x7BFF, 0x0001, 0x03FF,
                              0x0400, 0x7C00, 0xFC00, 0x8000, 0x7E00};
    const double want[9] = {1, -2.5, 65504, 0x1p-24, 1023 * 0x1p-24, 0x1p-14,
                            INFINITY, -INFINITY, 0};
    float f[10];
    double d[10];
    nep_st_tensor t = vec(NEP_DT_F16, f16, 10);
    assert_int_equal(nep_st_to_f32(&t, f, 10, &err), NEP_OK);
    assert_int_equal(nep_st_to_f64(&t, d, 10, &err), NEP_OK);
    for (int i = 0; i < 9; i++) {
        if (f[i] != (float)want[i] || d[i] != want[i])
            fail_msg("f16 %04x: got %g / %g, want %g", f16[i], f[i], d[i], want[i]);
    }
    assert_true(signbit(f[8]) && signbit(d[8]) && isnan(f[9]) && isnan(d[9]));

    /* bfloat16: 1, -2.5, 65280, 2^-133 (float subnormal), inf, 3.140625 */
    const uint16_t bf[6] = {0x3F80, 0xC020, 0x477F, 0x0001, 0x7F80, 0x4049};
    const double bwant[6] = {1, -2.5, 65280, 0x1p-133, INFINITY, 3.140625};
    t = vec(NEP_DT_BF16, bf, 6);
    assert_int_equal(nep_st_to_f32(&t, f, 6, &err), NEP_OK);
    assert_int_equal(nep_st_to_f64(&t, d, 6, &err), NEP_OK);
    for (int i = 0; i < 6; i++) {
        if (f[i] != (float)bwant[i] || d[i] != bwant[i])
            fail_msg("bf16 %04x: got %g / %g, want %g", bf[i], f[i], d[i], bwant[i]);
    }

    /* F64 -> float rounds; F32 -> double is exact; unaligned data is fine. */
    const double d64[2] = {0.1, -3};
    t = vec(NEP_DT_F64, d64, 2);
    assert_int_equal(nep_st_to_f32(&t, f, 2, &err), NEP_OK);
    assert_true(f[0] == 0.1f && f[1] == -3.0f);
    unsigned char buf[9];
    const float f32[2] = {0.1f, 7.5f};
    memcpy(buf + 1, f32, sizeof f32);
    t = vec(NEP_DT_F32, buf + 1, 2);
    assert_int_equal(nep_st_to_f64(&t, d, 2, &err), NEP_OK);
    assert_true(d[0] == (double)0.1f && d[1] == 7.5);

    /* Errors: integer dtypes and element count mismatch. */
    const int64_t i64[2] = {1, 2};
    t = vec(NEP_DT_I64, i64, 2);
    assert_int_equal(nep_st_to_f32(&t, f, 2, &err), NEP_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "I64"));
    assert_int_equal(nep_st_to_f64(&t, d, 2, &err), NEP_ERR_FORMAT);
    t = vec(NEP_DT_F32, f32, 2);
    assert_int_equal(nep_st_to_f32(&t, f, 3, &err), NEP_ERR_SHAPE);
    assert_int_equal(nep_st_to_f64(&t, d, 1, &err), NEP_ERR_SHAPE);
}

static void test_dtype_names(void **state) {
    assert_string_equal(nep_dtype_name(NEP_DT_BF16), "BF16");
    assert_string_equal(nep_dtype_name(NEP_DT_BOOL), "BOOL");
    assert_int_equal(nep_dtype_size(NEP_DT_F64), 8);
    assert_int_equal(nep_dtype_size(NEP_DT_I16), 2);
    assert_int_equal(nep_dtype_size(NEP_DT_U8), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_numpy_writes_we_read),
        cmocka_unit_test(test_we_write_numpy_reads),
        cmocka_unit_test(test_corrupt_files),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_writer_args),
        cmocka_unit_test(test_half_conversion),
        cmocka_unit_test(test_dtype_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
