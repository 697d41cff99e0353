/* Status codes and error messages. Library functions return a nep_status and,
 * on failure, leave a human-readable message in the caller's nep_err. They never
 * print and never exit: only tools/ does. */
#ifndef NEPENTHE_STATUS_H
#define NEPENTHE_STATUS_H

typedef enum nep_status {
    NEP_OK = 0,
    NEP_ERR_ARG,         /* bad argument or option value */
    NEP_ERR_IO,          /* file missing, unreadable, unwritable */
    NEP_ERR_FORMAT,      /* file exists but its content is malformed */
    NEP_ERR_SHAPE,       /* tensor shapes disagree */
    NEP_ERR_NOMEM,       /* allocation failed */
    NEP_ERR_NUMERIC,     /* NaN or inf where a finite number was required */
    NEP_ERR_UNSUPPORTED  /* valid request the library does not implement */
} nep_status;

typedef struct nep_err {
    nep_status status;
    char msg[1024];
} nep_err;

/* Records status s and a printf-style message in err (err may be NULL); returns s
 * so that callers can write `return nep_fail(err, NEP_ERR_IO, "...", ...);`. */
nep_status nep_fail(nep_err *err, nep_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Short stable name of a status ("io", "format", ...), for logs and JSON. */
const char *nep_status_name(nep_status s);

/* Evaluates expr (a nep_status expression) and returns it from the caller on failure. */
#define NEP_TRY(expr)                          \
    do {                                       \
        nep_status nep_try_s_ = (expr);        \
        if (nep_try_s_ != NEP_OK) return nep_try_s_; \
    } while (0)

#endif
