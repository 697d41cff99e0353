/* Reading and cleaning Debian's fortunes files, shared by the classification task
 * (fortunes_task.c, which defines these) and the language-modelling corpus
 * (fortunes_lm.c), so that both see exactly the same entries, cleaned byte for byte
 * alike. Nothing outside src/data/ needs them: include/nepenthe/text_data.h and
 * include/nepenthe/fortunes_lm.h are the API. */
#ifndef NEPENTHE_DATA_FORTUNES_IMPL_H
#define NEPENTHE_DATA_FORTUNES_IMPL_H

#include <stddef.h>
#include <stdio.h>

#include "nepenthe/status.h"

/* Far above any fortune file (the largest is 245 kB): a bound against a wrong path. */
#define NEP_FORTUNES_MAX_FILE ((size_t)64 << 20)
#define NEP_FORTUNES_HINT "install the Debian package fortunes or pass the directory of its files"

/* Called with each raw entry of a file: raw[0..n), as in the file (not NUL-terminated,
 * not checked for UTF-8, not cleaned). A status other than NEP_OK stops the reading. */
typedef nep_status (*nep_fortunes_entry_fn)(void *ctx, const char *raw, size_t n, nep_err *err);

/* Cuts the category file at path into entries: the text before each line holding only
 * "%" (CRLF tolerated), and the text after the last such line where the file does not
 * end with one; calls on_entry with each, in file order. A missing or unreadable file is
 * NEP_ERR_IO naming path (with a hint to install the package). */
nep_status nep_fortunes_read_entries(const char *path, nep_fortunes_entry_fn on_entry, void *ctx,
                                     nep_err *err);

/* One entry as one line: backspace overstrikes resolved (a backspace deletes the
 * character before it), other control characters removed, every whitespace run -> one
 * space, ends trimmed. raw[0..n) must be valid UTF-8; out has room for n + 1 bytes and
 * gets the NUL-terminated result, valid UTF-8 too. Returns its length (0: empty). */
size_t nep_fortunes_clean(const char *raw, size_t n, char *out);

/* s as a JSON string: quotes and backslashes escaped, control characters as \u00XX
 * (category names need none, but a directory may). */
void nep_fortunes_json_string(FILE *f, const char *s);

#endif
