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

#endif
