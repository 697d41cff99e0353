/* CIFAR-10's binary format (the "binary version" of the data set, cifar-10-batches-bin).
 *
 * A batch file is a sequence of 3073-byte records: one label byte (0..9), then 3072
 * pixel bytes, the 1024 red values first, then green, then blue, each 32x32 row-major.
 * That is already the [c, h, w] layout the data sets use, so a record's pixels are
 * copied as they are. The official files hold 10000 records each; any whole number of
 * records is accepted (tests write small ones). Nothing is ever downloaded: the files
 * must be on disk, and every error names the file concerned. */
#include "nepenthe/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_PIXELS (NEP_CIFAR10_C * NEP_CIFAR10_H * NEP_CIFAR10_W)
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_TRAIN_FILES 5
/* Records read per fread: 3 MB, so a whole file is never buffered twice. */
#define CIFAR_CHUNK 1024

#define CIFAR_HINT                                                                         \
    "nothing is downloaded: extract cifar-10-binary.tar.gz and point --data-dir at the " \
    "cifar-10-batches-bin directory it holds"

/* The file's record count, from its size: a size that is not a whole number of records
 * is a truncated (or foreign) file. */
static nep_status count_records(const char *path, int64_t *n, nep_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        if (e == ENOENT)
            return nep_fail(err, NEP_ERR_IO, "%s: no such file (CIFAR-10); " CIFAR_HINT, path);
        return nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode))
        return nep_fail(err, NEP_ERR_IO, "%s: not a regular file (CIFAR-10); " CIFAR_HINT, path);
    int64_t size = (int64_t)st.st_size;
    if (size == 0)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: empty file: no CIFAR-10 records", path);
    if (size % CIFAR_RECORD)
        return nep_fail(err, NEP_ERR_FORMAT,
                        "%s: truncated or not a CIFAR-10 batch: %lld bytes is %lld whole "
                        "records of %d bytes (1 label + 3x32x32 pixels) and %lld bytes over",
                        path, (long long)size, (long long)(size / CIFAR_RECORD), CIFAR_RECORD,
                        (long long)(size % CIFAR_RECORD));
    *n = size / CIFAR_RECORD;
    return NEP_OK;
}

/* Reads the n records of path into images/labels (room for n samples each). */
static nep_status read_batch(const char *path, int64_t n, uint8_t *images, uint8_t *labels,
                             uint8_t *buf, nep_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(e));
    }
    nep_status s = NEP_OK;
    for (int64_t r0 = 0; r0 < n && !s; r0 += CIFAR_CHUNK) {
        size_t k = (size_t)(n - r0 < CIFAR_CHUNK ? n - r0 : CIFAR_CHUNK);
        size_t got = fread(buf, CIFAR_RECORD, k, f);
        if (got < k) {
            s = ferror(f) ? nep_fail(err, NEP_ERR_IO, "%s: read error: %s", path, strerror(errno))
                          : nep_fail(err, NEP_ERR_FORMAT,
                                     "%s: truncated: the file ended at record %lld of %lld "
                                     "(did it change while being read?)",
                                     path, (long long)(r0 + (int64_t)got), (long long)n);
            break;
        }
        for (size_t i = 0; i < k; i++) {
            const uint8_t *rec = buf + i * CIFAR_RECORD;
            if (rec[0] >= NEP_CIFAR10_CLASSES) {
                s = nep_fail(err, NEP_ERR_FORMAT,
                             "%s: record %lld has label %u (CIFAR-10 labels are 0..%d): not a "
                             "CIFAR-10 binary batch",
                             path, (long long)(r0 + (int64_t)i), rec[0], NEP_CIFAR10_CLASSES - 1);
                break;
            }
            labels[r0 + (int64_t)i] = rec[0];
            memcpy(images + (size_t)(r0 + (int64_t)i) * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS);
        }
    }
    fclose(f);
    return s;
}

nep_status nep_cifar10_load(const char *dir, bool train, nep_dataset *out, nep_err *err) {
    *out = (nep_dataset){0};
    if (!dir || !*dir)
        return nep_fail(err, NEP_ERR_ARG, "CIFAR-10 needs a data directory; " CIFAR_HINT);
    struct stat st;
    if (stat(dir, &st) != 0)
        return nep_fail(err, NEP_ERR_IO, "%s: %s (CIFAR-10 directory); " CIFAR_HINT, dir,
                        strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return nep_fail(err, NEP_ERR_IO, "%s: not a directory (CIFAR-10); " CIFAR_HINT, dir);

    int files = train ? CIFAR_TRAIN_FILES : 1;
    char paths[CIFAR_TRAIN_FILES][4096];
    int64_t counts[CIFAR_TRAIN_FILES], total = 0;
    for (int i = 0; i < files; i++) {
        int len = train ? snprintf(paths[i], sizeof paths[i], "%s/data_batch_%d.bin", dir, i + 1)
                        : snprintf(paths[i], sizeof paths[i], "%s/test_batch.bin", dir);
        if (len >= (int)sizeof paths[i])
            return nep_fail(err, NEP_ERR_ARG, "%s: directory name too long", dir);
        NEP_TRY(count_records(paths[i], &counts[i], err));
        total += counts[i];
    }
    if (total > (int64_t)UINT32_MAX)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: %lld CIFAR-10 records is too many", dir,
                        (long long)total);

    nep_dataset d = {.n = total, .c = NEP_CIFAR10_C, .h = NEP_CIFAR10_H, .w = NEP_CIFAR10_W};
    d.images = malloc((size_t)total * CIFAR_PIXELS);
    d.labels = malloc((size_t)total);
    uint8_t *buf = malloc((size_t)CIFAR_CHUNK * CIFAR_RECORD);
    nep_status s = NEP_OK;
    if (!d.images || !d.labels || !buf) {
        s = nep_fail(err, NEP_ERR_NOMEM, "%s: cannot allocate %lld CIFAR-10 images", dir,
                     (long long)total);
        goto done;
    }
    int64_t at = 0;
    for (int i = 0; i < files && !s; i++) {
        s = read_batch(paths[i], counts[i], d.images + (size_t)at * CIFAR_PIXELS, d.labels + at,
                       buf, err);
        at += counts[i];
    }
    if (s) goto done;
    int maxlabel = 0;
    for (int64_t i = 0; i < total; i++)
        if (d.labels[i] > maxlabel) maxlabel = d.labels[i];
    d.classes = maxlabel + 1;
done:
    free(buf);
    if (s)
        nep_dataset_free(&d);
    else
        *out = d;
    return s;
}
