#include "nepenthe/status.h"

#include <stdarg.h>
#include <stdio.h>

nep_status nep_fail(nep_err *err, nep_status s, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = s;
    }
    return s;
}

const char *nep_status_name(nep_status s) {
    switch (s) {
    case NEP_OK: return "ok";
    case NEP_ERR_ARG: return "argument";
    case NEP_ERR_IO: return "io";
    case NEP_ERR_FORMAT: return "format";
    case NEP_ERR_SHAPE: return "shape";
    case NEP_ERR_NOMEM: return "nomem";
    case NEP_ERR_NUMERIC: return "numeric";
    case NEP_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown";
}
