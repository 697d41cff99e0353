/* IDX files (the MNIST / Fashion-MNIST format) and the Fashion-MNIST layout.
 *
 * An IDX file is a big-endian header -- magic 0x000008DD (0x08 = u8 elements, DD = the
 * number of dimensions), then one u32 per dimension -- followed by the elements.
 * zlib's gzread reads gzipped and plain files alike, so both are accepted by content.
 * A file holding more data than its header describes is rejected: that is a wrong or
 * corrupt header, and trusting it would silently drop samples. */
#include "nepenthe/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Larger than any real IDX file, small enough that a corrupt header cannot make us
 * allocate absurd amounts, and keeps every dimension within an int. */
#define IDX_MAX_BYTES ((uint64_t)INT32_MAX)
/* gzread takes an unsigned count and returns an int. */
#define IDX_CHUNK (1u << 30)

#define FMNIST_HINT "install the Debian package dataset-fashion-mnist or pass --data-dir"

/* Maps a failed gzread to a status whose message names the file. */
static nep_status gz_fail(gzFile f, const char *path, nep_err *err) {
    int zerr;
    const char *msg = gzerror(f, &zerr);
    if (zerr == Z_ERRNO) return nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(errno));
    if (zerr == Z_MEM_ERROR) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    size_t n = strlen(path); /* zlib's message repeats the path */
    if (!strncmp(msg, path, n) && msg[n] == ':') msg += n + 1 + (msg[n + 1] == ' ');
    return nep_fail(err, NEP_ERR_FORMAT, "%s: corrupt gzip data: %s", path, msg);
}

/* All the data but not the gzip trailer (CRC, length) reads as a clean end of file;
 * zlib only records it as Z_BUF_ERROR. */
static bool gz_cut_short(gzFile f) {
    int zerr;
    gzerror(f, &zerr);
    return zerr == Z_BUF_ERROR;
}

/* Reads up to n bytes into buf; *got says how many the file had. A short count is
 * not an error here (the caller words the truncation message). */
static nep_status read_upto(gzFile f, const char *path, void *buf, size_t n, size_t *got,
                            nep_err *err) {
    *got = 0;
    while (*got < n) {
        size_t left = n - *got;
        int r = gzread(f, (char *)buf + *got, left > IDX_CHUNK ? IDX_CHUNK : (unsigned)left);
        if (r < 0) return gz_fail(f, path, err);
        if (r == 0) break;
        *got += (size_t)r;
    }
    return NEP_OK;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* "60000 images of 28x28" or "60000 labels": how the header's shape reads in messages. */
static void describe(char *buf, size_t cap, int ndims, const uint32_t *dims) {
    if (ndims == 3)
        snprintf(buf, cap, "%u images of %ux%u", dims[0], dims[1], dims[2]);
    else
        snprintf(buf, cap, "%u labels", dims[0]);
}

/* Reads and checks the header: magic, dimension count, sizes; *bytes = element count. */
static nep_status read_header(gzFile f, const char *path, int ndims, uint32_t *dims,
                              uint64_t *bytes, nep_err *err) {
    const char *what = ndims == 3 ? "image" : "label";
    uint8_t h[4 + 4 * 3];
    size_t want = 4 + 4 * (size_t)ndims, got;
    NEP_TRY(read_upto(f, path, h, 4, &got, err));
    if (got < 4)
        return nep_fail(err, NEP_ERR_FORMAT,
                        "%s: truncated: %zu bytes, too short for an IDX header", path, got);
    uint32_t magic = be32(h);
    if ((magic & 0xffffff00u) != 0x00000800u)
        return nep_fail(err, NEP_ERR_FORMAT,
                        "%s: bad magic 0x%08x: not an IDX %s file of bytes (expected 0x%08x)",
                        path, magic, what, 0x800u | (unsigned)ndims);
    if ((int)(magic & 0xff) != ndims)
        return nep_fail(err, NEP_ERR_FORMAT,
                        "%s: IDX file with %u dimensions, expected %d for %s data (magic 0x%08x)",
                        path, magic & 0xff, ndims, what, magic);
    NEP_TRY(read_upto(f, path, h + 4, want - 4, &got, err));
    if (got < want - 4)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: truncated: the IDX header ends after %zu bytes",
                        path, 4 + got);
    for (int i = 0; i < ndims; i++) dims[i] = be32(h + 4 + 4 * i);
    *bytes = 1;
    for (int i = 0; i < ndims; i++) {
        /* One factor at a time, so the product never overflows. */
        if (dims[i] == 0 || dims[i] > IDX_MAX_BYTES / *bytes) {
            char shape[96];
            describe(shape, sizeof shape, ndims, dims);
            return nep_fail(err, NEP_ERR_FORMAT, "%s: header says %s: %s", path, shape,
                            dims[i] ? "more than 2 GiB (corrupt header?)" : "no data");
        }
        *bytes *= dims[i];
    }
    return NEP_OK;
}

/* Reads up to n bytes into a new buffer *data (the caller frees it, also on failure);
 * *got says how many the file had. The buffer grows with what actually arrives,
 * doubling from 64 KiB, rather than being sized by the header up front: a corrupt or
 * truncated 16-byte file claiming 2 GiB must not make us allocate 2 GiB. */
static nep_status read_data(gzFile f, const char *path, uint64_t n, uint8_t **data,
                            size_t *got, nep_err *err) {
    size_t cap = 0;
    *got = 0;
    while (*got < n) {
        size_t nc = cap ? 2 * cap : (size_t)1 << 16;
        if (nc > n) nc = (size_t)n;
        uint8_t *p = realloc(*data, nc);
        if (!p)
            return nep_fail(err, NEP_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, nc);
        *data = p;
        cap = nc;
        size_t k;
        NEP_TRY(read_upto(f, path, *data + *got, cap - *got, &k, err));
        *got += k;
        if (*got < cap) break; /* the file ended */
    }
    return NEP_OK;
}

/* Reads a whole IDX file of u8 with ndims dimensions into a new buffer *data. */
static nep_status read_idx(const char *path, int ndims, uint32_t *dims, uint8_t **data,
                           nep_err *err) {
    *data = NULL;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        int e = errno;
        return nep_fail(err, NEP_ERR_IO, "%s: %s", path, e ? strerror(e) : "cannot open");
    }
    uint64_t bytes = 0;
    size_t got = 0;
    uint8_t extra;
    nep_status s = read_header(f, path, ndims, dims, &bytes, err);
    if (s) goto done;
    s = read_data(f, path, bytes, data, &got, err);
    if (s) goto done;
    char shape[96];
    describe(shape, sizeof shape, ndims, dims);
    const char *unit = ndims == 3 ? "pixels" : "labels";
    if (got < bytes) {
        s = nep_fail(err, NEP_ERR_FORMAT,
                     "%s: truncated: header says %s but the file holds %zu bytes of %s", path,
                     shape, got, unit);
        goto done;
    }
    s = read_upto(f, path, &extra, 1, &got, err);
    if (!s && got)
        s = nep_fail(err, NEP_ERR_FORMAT,
                     "%s: header says %s but the file holds more data after them", path, shape);
    if (!s && gz_cut_short(f))
        s = nep_fail(err, NEP_ERR_FORMAT, "%s: truncated: the gzip stream ends early", path);
done:
    gzclose_r(f);
    if (s) {
        free(*data);
        *data = NULL;
    }
    return s;
}

nep_status nep_idx_load(const char *images_path, const char *labels_path, nep_dataset *out,
                        nep_err *err) {
    *out = (nep_dataset){0};
    uint32_t idims[3], ldims[1];
    uint8_t *images, *labels;
    NEP_TRY(read_idx(images_path, 3, idims, &images, err));
    nep_status s = read_idx(labels_path, 1, ldims, &labels, err);
    if (s) {
        free(images);
        return s;
    }
    if (ldims[0] != idims[0]) {
        free(images);
        free(labels);
        return nep_fail(err, NEP_ERR_FORMAT, "%s holds %u labels but %s holds %u images",
                        labels_path, ldims[0], images_path, idims[0]);
    }
    int maxlabel = 0;
    for (uint32_t i = 0; i < ldims[0]; i++)
        if (labels[i] > maxlabel) maxlabel = labels[i];
    *out = (nep_dataset){.n = idims[0], .c = 1, .h = (int)idims[1], .w = (int)idims[2],
                         .classes = maxlabel + 1, .images = images, .labels = labels};
    return NEP_OK;
}

/* dir/name.gz if it exists, else dir/name; a message naming both when neither does. */
static nep_status locate(const char *dir, const char *name, char *path, size_t cap,
                         nep_err *err) {
    if (snprintf(path, cap, "%s/%s.gz", dir, name) >= (int)cap)
        return nep_fail(err, NEP_ERR_ARG, "%s: directory name too long", dir);
    if (access(path, F_OK) == 0) return NEP_OK;
    snprintf(path, cap, "%s/%s", dir, name);
    if (access(path, F_OK) == 0) return NEP_OK;
    return nep_fail(err, NEP_ERR_IO, "%s/%s[.gz]: no such file (Fashion-MNIST); " FMNIST_HINT,
                    dir, name);
}

nep_status nep_fashion_mnist_load(const char *dir, bool train, nep_dataset *out,
                                  nep_err *err) {
    *out = (nep_dataset){0};
    if (!dir) dir = NEP_FASHION_MNIST_DIR;
    struct stat st;
    if (stat(dir, &st) != 0)
        return nep_fail(err, NEP_ERR_IO, "%s: %s (Fashion-MNIST directory); " FMNIST_HINT, dir,
                        strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return nep_fail(err, NEP_ERR_IO, "%s: not a directory (Fashion-MNIST); " FMNIST_HINT,
                        dir);
    const char *split = train ? "train" : "t10k";
    char name[64], images[4096], labels[4096];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", split);
    NEP_TRY(locate(dir, name, images, sizeof images, err));
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", split);
    NEP_TRY(locate(dir, name, labels, sizeof labels, err));
    return nep_idx_load(images, labels, out, err);
}
