/* UTF-8 by the Unicode standard's table 3-7. The second byte's range alone rules out
 * overlong forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4), so one
 * table-driven check covers every ill-formed case without decoding first. */
#include "nepenthe/utf8.h"

int32_t nep_utf8_next(const char *s, size_t n, size_t *i) {
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = n - *i;
    unsigned c = p[0];
    if (c < 0x80) { /* the common case first: text is mostly ASCII */
        *i += 1;
        return (int32_t)c;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* the second byte's range */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return -1; /* a continuation byte, C0/C1 (always overlong) or F5..FF */
    if (left < len || p[1] < lo || p[1] > hi) return -1;
    int32_t cp = (int32_t)(c & (0x7F >> len));
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) return -1;
        cp = cp << 6 | (p[k] & 0x3F);
    }
    *i += len;
    return cp;
}

int64_t nep_utf8_invalid_at(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t at = i;
        if (nep_utf8_next(s, n, &i) < 0) return (int64_t)at;
    }
    return -1;
}
