/* UTF-8 decoding and validation, one definition for the whole library (the tokenizers,
 * the GLUE loader, the fortunes task). Well-formed means the Unicode standard's table
 * 3-7: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no
 * sequence cut short. Needs nothing but libc. */
#ifndef NEPENTHE_UTF8_H
#define NEPENTHE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the code point at s[*i] (s has n bytes, *i < n) and advances *i past it;
 * returns -1, leaving *i where it was, when the bytes there are not a well-formed
 * sequence. */
int32_t nep_utf8_next(const char *s, size_t n, size_t *i);

/* Offset of the first byte of s[0..n) that does not start a well-formed sequence, or -1
 * when all n bytes are valid UTF-8. */
int64_t nep_utf8_invalid_at(const char *s, size_t n);

#endif
