/* Atomic file writes (see file.h). */
#include "nepenthe/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static nep_status sync_dir(const char *path, nep_err *err) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY), e = 0;
    if (fd < 0 || fsync(fd) != 0) e = errno;
    if (fd >= 0) close(fd);
    /* Some file systems cannot fsync a directory at all (EINVAL); nothing to do there. */
    nep_status s = e && e != EINVAL
                       ? nep_fail(err, NEP_ERR_IO, "%s: written, but fsync of %s failed: %s",
                                  path, dir, strerror(e))
                       : NEP_OK;
    free(dir);
    return s;
}

nep_status nep_write_atomic(const char *path, nep_fill_fn fill, void *ctx, nep_err *err) {
    size_t cap = strlen(path) + 32;
    char *tmp = malloc(cap);
    if (!tmp) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        nep_status s = nep_fail(err, NEP_ERR_IO, "%s: cannot create %s: %s", path, tmp,
                                strerror(errno));
        free(tmp);
        return s;
    }
    const char *step = "write";
    errno = 0;
    int e = fill(ctx, f);
    if (!e && fflush(f) != 0) e = errno ? errno : EIO;
    if (!e && fsync(fileno(f)) != 0) e = errno, step = "fsync";
    if (fclose(f) != 0 && !e) e = errno ? errno : EIO, step = "close";
    if (!e && rename(tmp, path) != 0) e = errno, step = "rename";
    if (e) remove(tmp);
    free(tmp);
    if (e) return nep_fail(err, NEP_ERR_IO, "%s: %s failed: %s", path, step, strerror(e));
    return sync_dir(path, err);
}

typedef struct bytes {
    const void *data;
    size_t n;
} bytes;

static int fill_bytes(void *ctx, FILE *f) {
    const bytes *b = ctx;
    return b->n && fwrite(b->data, 1, b->n, f) != b->n ? (errno ? errno : EIO) : 0;
}

nep_status nep_write_atomic_bytes(const char *path, const void *data, size_t n, nep_err *err) {
    bytes b = {data, n};
    return nep_write_atomic(path, fill_bytes, &b, err);
}

nep_status nep_read_file(const char *path, size_t max_bytes, char **data, size_t *n, nep_err *err) {
    *data = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    nep_status s = NEP_OK;
    char *b = NULL;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode))
        s = nep_fail(err, NEP_ERR_IO, "%s: not a regular file", path);
    else if ((uintmax_t)sb.st_size > max_bytes)
        s = nep_fail(err, NEP_ERR_FORMAT, "%s: %jd bytes, over the %zu this reader takes", path,
                     (intmax_t)sb.st_size, max_bytes);
    else if (!(b = malloc((size_t)sb.st_size + 1)))
        s = nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory for %jd bytes", path, (intmax_t)sb.st_size);
    else if (fread(b, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size || ferror(f))
        s = nep_fail(err, NEP_ERR_IO, "%s: read error", path);
    fclose(f);
    if (s != NEP_OK) {
        free(b);
        return s;
    }
    b[sb.st_size] = 0;
    *data = b;
    *n = (size_t)sb.st_size;
    return NEP_OK;
}
