/* failwrite: an LD_PRELOAD shim that makes writes under one directory fail the way a full
 * or read-only file system does, deterministically, without mounting anything.
 *
 * Built by tests/fault_test.sh:  cc -shared -fPIC -O1 -o failwrite.so failwrite.c -ldl
 *
 * Environment (all optional):
 *   NEP_FAIL_PATH_PREFIX=P   only paths that start with the string P are affected (a
 *                            relative path is made absolute with the working directory
 *                            first; no symlinks are resolved). Unset: every path.
 *   NEP_FAIL_WRITE_AFTER=N   a full disk: the first N bytes written to affected files are
 *                            accepted, the write that crosses N is short (like the
 *                            kernel's), and every later one fails with NEP_FAIL_ERRNO.
 *   NEP_FAIL_WRITE_CALL=N    the same from the Nth write call (1-based) on.
 *   NEP_FAIL_READONLY=1      a read-only file system: opening an affected path for
 *                            writing, mkdir (of a path that does not exist yet: the
 *                            kernel says EEXIST first), rename, link, symlink, unlink,
 *                            remove, rmdir and truncate fail with NEP_FAIL_ERRNO.
 *   NEP_FAIL_ERRNO=NAME      ENOSPC (default; EROFS with NEP_FAIL_READONLY), EROFS,
 *                            EACCES, EPERM, EIO, EDQUOT, EFBIG, or a number.
 *   NEP_FAIL_TRACE=FILE      appends one line per write call to an affected file,
 *                            "W <open#> <bytes before> <bytes> <path>", and one
 *                            "F <op> <path>" per injected failure, so that a test can
 *                            pick N for the part of a run it wants to break.
 *
 * Why stdio is wrapped: glibc's fwrite/fputs/fflush/fclose reach the kernel through
 * internal calls that an LD_PRELOAD'ed write() never sees. So fopen of an affected path
 * for writing opens the file itself and hands back a fopencookie stream whose write
 * function goes through the same accounting as write(); glibc's own buffering, short
 * write and error-flag logic stay in the loop, so fwrite, fflush and fclose fail exactly
 * where they would on a full disk. fileno() of such a stream returns its real descriptor
 * (nep_write_atomic fsyncs it). remove() is wrapped for the same reason (glibc's remove
 * calls its internal unlink).
 *
 * With an AddressSanitizer binary the ASan runtime must stay the first object searched:
 * LD_PRELOAD="libasan.so.8 failwrite.so". ASan's interceptors (fopen, fwrite, write,
 * fopencookie, ...) then run first and call through to these, which call libc.
 * The tool under test does its I/O from one thread; no locking here. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define REAL(name, ret, ...)                                              \
    static ret (*real_##name)(__VA_ARGS__);                               \
    if (!real_##name) real_##name = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

enum { MAX_FD = 4096, MAX_STREAMS = 256 };

static struct {
    int init;
    const char *prefix;
    int readonly, err, trace_fd;
    long long after, call; /* -1: not set */
    long long written, calls, opens;
} S = {.trace_fd = -1, .after = -1, .call = -1};

static char *fd_path[MAX_FD]; /* affected descriptors open for writing */
static long long fd_open[MAX_FD];

typedef struct stream {
    FILE *f;
    int fd;
} stream;
static stream streams[MAX_STREAMS];

static int errno_named(const char *s, int dflt) {
    static const struct { const char *name; int e; } names[] = {
        {"ENOSPC", ENOSPC}, {"EROFS", EROFS}, {"EACCES", EACCES}, {"EPERM", EPERM},
        {"EIO", EIO},       {"EDQUOT", EDQUOT}, {"EFBIG", EFBIG}};
    if (!s || !*s) return dflt;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) return names[i].e;
    int e = atoi(s);
    return e > 0 ? e : dflt;
}

static long long num(const char *s) { return s && *s ? strtoll(s, NULL, 10) : -1; }

static void init(void) {
    if (S.init) return;
    S.init = 1;
    S.prefix = getenv("NEP_FAIL_PATH_PREFIX");
    if (S.prefix && !*S.prefix) S.prefix = NULL;
    S.readonly = num(getenv("NEP_FAIL_READONLY")) > 0;
    S.err = errno_named(getenv("NEP_FAIL_ERRNO"), S.readonly ? EROFS : ENOSPC);
    S.after = num(getenv("NEP_FAIL_WRITE_AFTER"));
    S.call = num(getenv("NEP_FAIL_WRITE_CALL"));
    const char *t = getenv("NEP_FAIL_TRACE");
    if (t && *t) {
        REAL(open, int, const char *, int, ...);
        S.trace_fd = real_open(t, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
}

__attribute__((constructor)) static void ctor(void) {
    int e = errno;
    init();
    errno = e;
}

static void trace(const char *fmt, ...) {
    if (S.trace_fd < 0) return;
    char line[4200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    if (n >= (int)sizeof line) n = (int)sizeof line - 1;
    REAL(write, ssize_t, int, const void *, size_t);
    ssize_t w = real_write(S.trace_fd, line, (size_t)n);
    (void)w;
}

/* The absolute form of path (malloc'ed), or NULL when it is not affected. */
static char *affected(const char *path) {
    init();
    if (!path) return NULL;
    char *abs;
    if (path[0] == '/') {
        abs = strdup(path);
    } else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) return NULL;
        size_t n = strlen(cwd) + strlen(path) + 2;
        if (!(abs = malloc(n))) return NULL;
        snprintf(abs, n, "%s/%s", cwd, path);
    }
    if (abs && S.prefix && strncmp(abs, S.prefix, strlen(S.prefix)) != 0) {
        free(abs);
        return NULL;
    }
    return abs;
}

static int is_affected(const char *path) {
    char *a = affected(path);
    free(a);
    return a != NULL;
}

/* Fails the call (returns 1, errno set) when a read-only file system would. */
static int readonly_fail(const char *op, const char *path) {
    if (!S.init) init();
    if (!S.readonly || !is_affected(path)) return 0;
    trace("F %s %s\n", op, path);
    errno = S.err;
    return 1;
}

static int writes_flags(int flags) {
    return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC | O_APPEND));
}

static void track(int fd, const char *path) {
    if (fd < 0 || fd >= MAX_FD) return;
    free(fd_path[fd]);
    fd_path[fd] = affected(path);
    fd_open[fd] = ++S.opens;
}

/* How many of n bytes an affected descriptor may write now: n, fewer (a short write),
 * or -1 with errno set. */
static ssize_t allowance(int fd, size_t n) {
    if (fd < 0 || fd >= MAX_FD || !fd_path[fd]) return (ssize_t)n;
    S.calls++;
    ssize_t ok = (ssize_t)n;
    if (S.call > 0 && S.calls >= S.call) ok = -1;
    if (ok > 0 && S.after >= 0) {
        long long left = S.after - S.written;
        if (left <= 0) ok = -1;
        else if ((long long)n > left) ok = (ssize_t)left;
    }
    if (n == 0 && ok < 0) ok = 0; /* a zero-byte write never fails for want of space */
    trace("%s %lld %lld %zu %s\n", ok == (ssize_t)n ? "W" : "F write", fd_open[fd], S.written, n,
          fd_path[fd]);
    if (ok < 0) errno = S.err;
    return ok;
}

static void account(int fd, ssize_t w) {
    if (fd >= 0 && fd < MAX_FD && fd_path[fd] && w > 0) S.written += w;
}

/* ---- descriptors ----------------------------------------------------------------- */

static int open_common(int dirfd, const char *path, int flags, mode_t mode, int at) {
    REAL(open, int, const char *, int, ...);
    REAL(openat, int, int, const char *, int, ...);
    init();
    if (writes_flags(flags) && readonly_fail("open", path)) return -1;
    int fd = at ? real_openat(dirfd, path, flags, mode) : real_open(path, flags, mode);
    if (fd >= 0 && writes_flags(flags)) {
        int e = errno;
        if (is_affected(path)) track(fd, path);
        errno = e;
    }
    return fd;
}

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return open_common(AT_FDCWD, path, flags, m, 0);
}
int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return open_common(AT_FDCWD, path, flags, m, 0);
}
int openat(int dirfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return open_common(dirfd, path, flags, m, 1);
}
int openat64(int dirfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return open_common(dirfd, path, flags, m, 1);
}
int creat(const char *path, mode_t mode) {
    return open_common(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode, 0);
}
int creat64(const char *path, mode_t mode) {
    return open_common(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode, 0);
}

int close(int fd) {
    REAL(close, int, int);
    if (fd >= 0 && fd < MAX_FD && fd_path[fd]) {
        free(fd_path[fd]);
        fd_path[fd] = NULL;
    }
    return real_close(fd);
}

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write, ssize_t, int, const void *, size_t);
    ssize_t ok = allowance(fd, n);
    if (ok < 0) return -1;
    ssize_t w = real_write(fd, buf, (size_t)ok);
    account(fd, w);
    return w;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite, ssize_t, int, const void *, size_t, off_t);
    ssize_t ok = allowance(fd, n);
    if (ok < 0) return -1;
    ssize_t w = real_pwrite(fd, buf, (size_t)ok, off);
    account(fd, w);
    return w;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    REAL(writev, ssize_t, int, const struct iovec *, int);
    size_t n = 0;
    for (int i = 0; i < cnt; i++) n += iov[i].iov_len;
    ssize_t ok = allowance(fd, n);
    if (ok < 0) return -1;
    if ((size_t)ok == n) {
        ssize_t w = real_writev(fd, iov, cnt);
        account(fd, w);
        return w;
    }
    /* A short write: the first ok bytes of the vector. */
    struct iovec part[64];
    int k = 0;
    size_t left = (size_t)ok;
    for (int i = 0; i < cnt && left && k < 64; i++, k++) {
        part[k] = iov[i];
        if (part[k].iov_len > left) part[k].iov_len = left;
        left -= part[k].iov_len;
    }
    ssize_t w = real_writev(fd, part, k);
    account(fd, w);
    return w;
}

/* ---- stdio ------------------------------------------------------------------------ */

static ssize_t cookie_read(void *c, char *buf, size_t n) {
    REAL(read, ssize_t, int, void *, size_t);
    return real_read(*(int *)c, buf, n);
}

/* Like glibc's _IO_new_file_write: loops over short writes, stops at an error (errno
 * kept) and returns what got written; glibc flags the stream's error when that is short. */
static ssize_t cookie_write(void *c, const char *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(*(int *)c, buf + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return done ? (ssize_t)done : -1;
        }
        if (w == 0) break;
        done += (size_t)w;
    }
    return (ssize_t)done;
}

static int cookie_seek(void *c, off64_t *pos, int whence) {
    off64_t r = lseek64(*(int *)c, *pos, whence);
    if (r < 0) return -1;
    *pos = r;
    return 0;
}

static int cookie_close(void *c) {
    int fd = *(int *)c;
    free(c);
    return close(fd);
}

static FILE *fopen_common(const char *path, const char *mode, int is64) {
    REAL(fopen, FILE *, const char *, const char *);
    REAL(fopen64, FILE *, const char *, const char *);
    init();
    int flags;
    switch (mode[0]) {
    case 'w': flags = O_WRONLY | O_CREAT | O_TRUNC; break;
    case 'a': flags = O_WRONLY | O_CREAT | O_APPEND; break;
    default: flags = O_RDONLY; break;
    }
    for (const char *m = mode + 1; *m && *m != ','; m++) {
        if (*m == '+') flags = (flags & ~O_ACCMODE) | O_RDWR;
        if (*m == 'x') flags |= O_EXCL;
        if (*m == 'e') flags |= O_CLOEXEC;
    }
    if (!writes_flags(flags) || !is_affected(path))
        return is64 ? real_fopen64(path, mode) : real_fopen(path, mode);
    if (readonly_fail("fopen", path)) return NULL;
    int slot = 0;
    while (slot < MAX_STREAMS && streams[slot].f) slot++;
    if (slot == MAX_STREAMS) return is64 ? real_fopen64(path, mode) : real_fopen(path, mode);
    int *c = malloc(sizeof *c);
    if (!c) return NULL;
    *c = open(path, flags, 0666);
    if (*c < 0) {
        int e = errno;
        free(c);
        errno = e;
        return NULL;
    }
    cookie_io_functions_t io = {cookie_read, cookie_write, cookie_seek, cookie_close};
    FILE *f = fopencookie(c, mode, io);
    if (!f) {
        int e = errno;
        close(*c);
        free(c);
        errno = e;
        return NULL;
    }
    streams[slot] = (stream){f, *c};
    return f;
}

FILE *fopen(const char *path, const char *mode) { return fopen_common(path, mode, 0); }
FILE *fopen64(const char *path, const char *mode) { return fopen_common(path, mode, 1); }

static int stream_slot(FILE *f) {
    for (int i = 0; f && i < MAX_STREAMS; i++)
        if (streams[i].f == f) return i;
    return -1;
}

int fileno(FILE *f) {
    REAL(fileno, int, FILE *);
    int i = stream_slot(f);
    return i >= 0 ? streams[i].fd : real_fileno(f);
}

int fileno_unlocked(FILE *f) {
    REAL(fileno_unlocked, int, FILE *);
    int i = stream_slot(f);
    return i >= 0 ? streams[i].fd : real_fileno_unlocked(f);
}

int fclose(FILE *f) {
    REAL(fclose, int, FILE *);
    int i = stream_slot(f);
    if (i >= 0) streams[i] = (stream){0};
    return real_fclose(f);
}

/* ---- names ------------------------------------------------------------------------ */

int mkdir(const char *path, mode_t mode) {
    REAL(mkdir, int, const char *, mode_t);
    struct stat st;
    if (S.readonly && is_affected(path) && stat(path, &st) != 0 && readonly_fail("mkdir", path))
        return -1;
    return real_mkdir(path, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode) {
    REAL(mkdirat, int, int, const char *, mode_t);
    struct stat st;
    if (S.readonly && is_affected(path) && fstatat(dirfd, path, &st, 0) != 0 &&
        readonly_fail("mkdir", path))
        return -1;
    return real_mkdirat(dirfd, path, mode);
}

int rename(const char *from, const char *to) {
    REAL(rename, int, const char *, const char *);
    if (readonly_fail("rename", from) || readonly_fail("rename", to)) return -1;
    return real_rename(from, to);
}

int renameat(int fd1, const char *from, int fd2, const char *to) {
    REAL(renameat, int, int, const char *, int, const char *);
    if (readonly_fail("rename", from) || readonly_fail("rename", to)) return -1;
    return real_renameat(fd1, from, fd2, to);
}

int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned flags) {
    REAL(renameat2, int, int, const char *, int, const char *, unsigned);
    if (readonly_fail("rename", from) || readonly_fail("rename", to)) return -1;
    return real_renameat2(fd1, from, fd2, to, flags);
}

int link(const char *from, const char *to) {
    REAL(link, int, const char *, const char *);
    if (readonly_fail("link", to)) return -1;
    return real_link(from, to);
}

int symlink(const char *from, const char *to) {
    REAL(symlink, int, const char *, const char *);
    if (readonly_fail("symlink", to)) return -1;
    return real_symlink(from, to);
}

int unlink(const char *path) {
    REAL(unlink, int, const char *);
    if (readonly_fail("unlink", path)) return -1;
    return real_unlink(path);
}

int unlinkat(int dirfd, const char *path, int flags) {
    REAL(unlinkat, int, int, const char *, int);
    if (readonly_fail("unlink", path)) return -1;
    return real_unlinkat(dirfd, path, flags);
}

int rmdir(const char *path) {
    REAL(rmdir, int, const char *);
    if (readonly_fail("rmdir", path)) return -1;
    return real_rmdir(path);
}

int remove(const char *path) {
    REAL(remove, int, const char *);
    if (readonly_fail("remove", path)) return -1;
    return real_remove(path);
}

int truncate(const char *path, off_t len) {
    REAL(truncate, int, const char *, off_t);
    if (readonly_fail("truncate", path)) return -1;
    return real_truncate(path, len);
}
