/* Shared by the libFuzzer harnesses: the readers under test take paths, so each input
 * is written to a file in a per-process directory on tmpfs (/dev/shm) and the real
 * function is called on it. The directory is created on first use and removed at
 * exit; only one harness runs per process, so these statics are the whole state. */
#ifndef NEP_FUZZ_COMMON_H
#define NEP_FUZZ_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir_[256];

/* Removes everything inside path (subdirectories too, depth-first); leaves path itself. */
static inline void fuzz_clear(const char *path) {
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
                fuzz_clear(p);
                rmdir(p);
            } else {
                unlink(p);
            }
        }
    closedir(d);
}

static inline void fuzz_rmdir_(void) {
    fuzz_clear(fuzz_dir_);
    rmdir(fuzz_dir_);
}

/* A crashing input ends the process without atexit: what a dead harness process left
 * in base (its scratch directory, and libomp's registration file) is removed by the
 * next one. Only names with a PID that no longer runs are touched. */
static inline void fuzz_sweep_(const char *base) {
    DIR *d = opendir(base);
    if (!d) return;
    struct dirent *e;
    char p[512], name[64];
    long pid;
    while ((e = readdir(d))) {
        int dir = sscanf(e->d_name, "nep-fuzz-%63[a-z_]-%ld", name, &pid) == 2;
        if (!dir && sscanf(e->d_name, "__KMP_REGISTERED_LIB_%ld_", &pid) != 1) continue;
        if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        snprintf(p, sizeof p, "%s/%s", base, e->d_name);
        if (dir) {
            snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s", p);
            fuzz_rmdir_();
        } else {
            unlink(p);
        }
    }
    closedir(d);
    fuzz_dir_[0] = 0;
}

/* The harness's scratch directory: /dev/shm/nep-fuzz-NAME-PID (or under $TMPDIR, /tmp,
 * where /dev/shm is missing). */
static inline const char *fuzz_dir(const char *name) {
    if (fuzz_dir_[0]) return fuzz_dir_;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm"
                       : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    fuzz_sweep_(base);
    snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/nep-fuzz-%s-%ld", base, name, (long)getpid());
    if (mkdir(fuzz_dir_, 0700) != 0 && stat(fuzz_dir_, &st) != 0) {
        perror(fuzz_dir_);
        abort();
    }
    atexit(fuzz_rmdir_);
    return fuzz_dir_;
}

/* dir/file, in a static buffer per call site's choice of buf. */
static inline const char *fuzz_path(char *buf, size_t cap, const char *dir, const char *file) {
    snprintf(buf, cap, "%s/%s", dir, file);
    return buf;
}

/* Writes n bytes to path, replacing it; aborts if the scratch file system fails (that
 * is the harness's problem, not an input's). */
static inline void fuzz_write(const char *path, const uint8_t *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* With NEP_FUZZ_VERBOSE set in the environment, prints a line on stderr (what a seed
 * reached: `NEP_FUZZ_VERBOSE=1 build/fuzz/NAME FILE...`); otherwise nothing. */
static inline void fuzz_note(const char *fmt, ...) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("NEP_FUZZ_VERBOSE") != NULL;
    if (!verbose) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Little-endian u16 from the input, advancing it; 0 once the input is used up. */
static inline size_t fuzz_take_u16(const uint8_t **data, size_t *size) {
    if (*size < 2) {
        *data += *size;
        *size = 0;
        return 0;
    }
    size_t v = (size_t)(*data)[0] | (size_t)(*data)[1] << 8;
    *data += 2;
    *size -= 2;
    return v;
}

/* The next field of the input: a little-endian u16 length, then that many bytes (fewer
 * where the input ends first). *n gets the field's length. */
static inline const uint8_t *fuzz_take_field(const uint8_t **data, size_t *size, size_t *n) {
    size_t want = fuzz_take_u16(data, size);
    *n = want < *size ? want : *size;
    const uint8_t *p = *data;
    *data += *n;
    *size -= *n;
    return p;
}

/* A NUL-terminated copy of the input (the JSON readers take C strings). */
static inline char *fuzz_cstr(const uint8_t *data, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, data, n);
    s[n] = 0;
    return s;
}

#endif
