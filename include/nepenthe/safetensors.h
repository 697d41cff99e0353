/* safetensors files: https://github.com/huggingface/safetensors format.
 * 8-byte little-endian header size N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string value", ...}}, then the data section.
 * Tensor names and layouts follow PyTorch's state_dict (DESIGN.md, "Checkpoints"). */
#ifndef NEPENTHE_SAFETENSORS_H
#define NEPENTHE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "nepenthe/real.h"
#include "nepenthe/status.h"

typedef enum nep_dtype {
    NEP_DT_F32, NEP_DT_F64, NEP_DT_F16, NEP_DT_BF16,
    NEP_DT_I64, NEP_DT_I32, NEP_DT_I16, NEP_DT_I8, NEP_DT_U8, NEP_DT_BOOL
} nep_dtype;

/* The dtype of nep_real tensors. */
#ifdef NEP_DOUBLE
#define NEP_DT_REAL NEP_DT_F64
#else
#define NEP_DT_REAL NEP_DT_F32
#endif

#define NEP_ST_MAX_DIMS 8

typedef struct nep_st_tensor {
    char *name;
    nep_dtype dtype;
    int ndim;
    int64_t shape[NEP_ST_MAX_DIMS];
    int64_t numel;
    size_t nbytes;
    const void *data;   /* reader: points into the file's buffer or mapping; writer: caller's memory */
} nep_st_tensor;

typedef struct nep_st_meta {
    char *key;
    char *value;
} nep_st_meta;

/* A whole file read into memory, validated, or a set of tensors being assembled for
 * writing. The same struct serves both: a writer's tensors point at caller memory
 * that must stay alive until nep_st_write returns. */
typedef struct nep_safetensors {
    nep_st_tensor *tensors;
    int n_tensors, cap_tensors;
    nep_st_meta *meta;
    int n_meta, cap_meta;
    void *buffer;       /* reader: the file's bytes (nep_st_read: malloc'd copy;
                           nep_st_map: the read-only mapping) */
    size_t map_size;    /* nep_st_map: the mapping's length, 0 otherwise */
} nep_safetensors;

const char *nep_dtype_name(nep_dtype dt);   /* "F32" ... */
size_t nep_dtype_size(nep_dtype dt);

/* Reads and validates path: header size within file, JSON well formed, known dtypes,
 * non-negative shapes, offsets inside the data section and consistent with
 * shape x dtype size, no overlapping tensors, unique names. Any violation is
 * NEP_ERR_FORMAT with a message naming the file and, where there is one, the tensor.
 * A missing file is NEP_ERR_IO. */
nep_status nep_st_read(const char *path, nep_safetensors *out, nep_err *err);

/* The same validation as nep_st_read, with the file memory-mapped read-only instead of
 * copied, so that a model larger than free memory can be opened: pages are read only
 * when a tensor is touched, and the page cache holds them once for every process.
 * Tensor data then points into the mapping, which is read-only (writing through it
 * faults) and lives until nep_st_free. Shrinking the file while it is mapped makes a
 * later access fault with SIGBUS; tools write checkpoints by rename (nep_st_write),
 * which leaves a mapping of the old file intact. */
nep_status nep_st_map(const char *path, nep_safetensors *out, nep_err *err);

/* Lookups; NULL when absent. */
const nep_st_tensor *nep_st_find(const nep_safetensors *st, const char *name);
const char *nep_st_meta_get(const nep_safetensors *st, const char *key);

/* Writer side: start from a zeroed struct (nep_safetensors st = {0};). Names, keys and
 * values are copied; tensor data is not. */
nep_status nep_st_add(nep_safetensors *st, const char *name, nep_dtype dtype, int ndim,
                      const int64_t *shape, const void *data, nep_err *err);
nep_status nep_st_meta_set(nep_safetensors *st, const char *key, const char *value,
                           nep_err *err);
/* Writes atomically: to "<path>.tmp.<pid>", flushed and fsync'd, then renamed over
 * path (and the directory fsync'd). Tensors are written in name order; data is
 * 8-byte aligned. On failure nothing at path is damaged. */
nep_status nep_st_write(const nep_safetensors *st, const char *path, nep_err *err);

/* Frees what nep_st_read allocated or unmaps what nep_st_map mapped (tensor data
 * pointers are then dangling), and a writer's names; leaves st zeroed. */
void nep_st_free(nep_safetensors *st);

/* Copies tensor t into dst (n elements) converting F32/F64/F16/BF16 to float or double.
 * NEP_ERR_SHAPE if t->numel != n, NEP_ERR_FORMAT for a non-float dtype. */
nep_status nep_st_to_f32(const nep_st_tensor *t, float *dst, int64_t n, nep_err *err);
nep_status nep_st_to_f64(const nep_st_tensor *t, double *dst, int64_t n, nep_err *err);

#endif
