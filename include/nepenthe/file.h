/* Files that are never half-written: content goes to "<path>.tmp.<pid>", is flushed and
 * fsync'd, then renamed over path and the directory fsync'd. On any failure the
 * temporary file is removed and whatever was at path is untouched. */
#ifndef NEPENTHE_FILE_H
#define NEPENTHE_FILE_H

#include <stdio.h>

#include "nepenthe/status.h"

/* Writes the file's content to f; returns 0 or an errno value. */
typedef int (*nep_fill_fn)(void *ctx, FILE *f);

nep_status nep_write_atomic(const char *path, nep_fill_fn fill, void *ctx, nep_err *err);
/* The same for n bytes at data. */
nep_status nep_write_atomic_bytes(const char *path, const void *data, size_t n, nep_err *err);

/* Reads the whole regular file at path into *data (n bytes and a NUL after them; the
 * caller frees it). A missing or unreadable path, or one that is not a regular file, is
 * NEP_ERR_IO; a file over max_bytes (a wrong path, not a text file) NEP_ERR_FORMAT;
 * messages name the path. */
nep_status nep_read_file(const char *path, size_t max_bytes, char **data, size_t *n, nep_err *err);

#endif
