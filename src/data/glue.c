/* GLUE's TSV files as distributed, read the way the GLUE baseline and Hugging Face's
 * glue script read them (csv with delimiter '\t' and QUOTE_NONE): a header line names
 * the columns, every later line is one row, and fields are taken byte for byte, so a
 * sentence keeps its quotes and apostrophes. We are stricter than csv.DictReader where
 * it would silently fill a missing field with None or drop a surplus one: a row whose
 * field count differs from the header's is a malformed file (typically a tab inside a
 * sentence), reported with its file and line.
 *
 * The whole file is read into memory and cut in place (GLUE's largest file, QNLI's
 * train.tsv, is 28 MB); each returned string is then copied, so a data set owns its
 * strings one by one and a split can hand rows around without a shared arena. */
#include "nepenthe/text_data.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/data.h"
#include "nepenthe/file.h"
#include "nepenthe/utf8.h"

/* Larger than any GLUE file by far; a bound so that a wrong path (a disk image, say)
 * fails with a message instead of exhausting memory. */
#define GLUE_MAX_BYTES ((size_t)1 << 31)
/* Columns a header may have: GLUE's widest file (MNLI) has 12. */
#define GLUE_MAX_COLS 64

#define GLUE_HINT "GLUE is not downloaded by nepenthe: point at the task's directory"

/* --- tasks -------------------------------------------------------------------------- */

static const char *const SST2_LABELS[] = {"0", "1"};
static const char *const SST2_NAMES[] = {"negative", "positive"};
static const char *const NLI_LABELS[] = {"entailment", "not_entailment"};

typedef struct glue_task {
    const char *name;
    const char *col_a, *col_b;      /* col_b NULL: single sentence */
    const char *const *labels;      /* label strings as written, class k = labels[k];
                                     * NULL: an integer class index (fortunes) */
    const char *const *names;       /* class names */
    int classes;                    /* 0: from task.json (fortunes) */
} glue_task;

static const glue_task TASKS[] = {
    {"sst2", "sentence", NULL, SST2_LABELS, SST2_NAMES, 2},
    {"qnli", "question", "sentence", NLI_LABELS, NLI_LABELS, 2},
    {"rte", "sentence1", "sentence2", NLI_LABELS, NLI_LABELS, 2},
    {"fortunes", "sentence", NULL, NULL, NULL, 0},
};

static const glue_task *find_task(const char *name) {
    for (size_t i = 0; i < sizeof TASKS / sizeof *TASKS; i++)
        if (!strcmp(TASKS[i].name, name)) return &TASKS[i];
    return NULL;
}

/* --- the data set being built ------------------------------------------------------- */

void nep_text_dataset_free(nep_text_dataset *d) {
    for (int64_t i = 0; i < d->n; i++) {
        if (d->text_a) free(d->text_a[i]);
        if (d->text_b) free(d->text_b[i]);
    }
    for (int k = 0; d->label_names && k < d->classes; k++) free(d->label_names[k]);
    free(d->text_a);
    free(d->text_b);
    free(d->labels);
    free(d->label_names);
    free(d->index);
    *d = (nep_text_dataset){0};
}

/* Room for at least one more row; arrays double. d->n rows are in use. */
static bool grow(nep_text_dataset *d, int64_t *cap) {
    if (d->n < *cap) return true;
    int64_t nc = *cap ? 2 * *cap : 1024;
    char **a = realloc(d->text_a, (size_t)nc * sizeof *a);
    if (a) d->text_a = a;
    char **b = d->text_b ? realloc(d->text_b, (size_t)nc * sizeof *b) : NULL;
    if (b) d->text_b = b;
    int32_t *l = realloc(d->labels, (size_t)nc * sizeof *l);
    if (l) d->labels = l;
    int64_t *x = realloc(d->index, (size_t)nc * sizeof *x);
    if (x) d->index = x;
    if (!a || (d->text_b && !b) || !l || !x) return false;
    *cap = nc;
    return true;
}

/* Copies k class names into d. */
static bool set_names(nep_text_dataset *d, const char *const *names, int k) {
    d->label_names = calloc((size_t)k, sizeof *d->label_names);
    if (!d->label_names) return false;
    d->classes = k;
    for (int i = 0; i < k; i++)
        if (!(d->label_names[i] = strdup(names[i]))) return false;
    return true;
}

/* --- reading ------------------------------------------------------------------------ */

/* The whole file at path into a new NUL-terminated buffer (the caller frees it); hint
 * ends the message when the file cannot be read. */
static nep_status read_all(const char *path, const char *hint, char **buf, size_t *len,
                           nep_err *err) {
    nep_status s = nep_read_file(path, GLUE_MAX_BYTES, buf, len, err);
    if (s == NEP_ERR_IO && err) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        s = nep_fail(err, s, "%s; %s", why, hint);
    }
    return s;
}

/* Walks the buffer line by line, cutting each line and its fields in place. */
typedef struct tsv {
    const char *path;
    char *buf;
    size_t len, pos;
    long long line;        /* 1-based number of the current line */
    char *fields[GLUE_MAX_COLS];
    int nfields;           /* fields found (may exceed GLUE_MAX_COLS: only counted) */
} tsv;

/* Cuts the next line (LF, CRLF or CR ends it, as Python's universal newlines);
 * returns false at the end of the buffer. A NUL byte is an error: strings stop there. */
static nep_status next_line(tsv *t, char **line, bool *more, nep_err *err) {
    *more = t->pos < t->len;
    if (!*more) return NEP_OK;
    t->line++;
    char *p = t->buf + t->pos, *end = t->buf + t->len, *q = p;
    while (q < end && *q != '\n' && *q != '\r') {
        if (!*q)
            return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: NUL byte at column %td", t->path,
                            t->line, q - p + 1);
        q++;
    }
    size_t eol = q < end ? (q[0] == '\r' && q + 1 < end && q[1] == '\n' ? 2 : 1) : 0;
    *q = '\0';
    t->pos = (size_t)(q - t->buf) + eol;
    *line = p;
    return NEP_OK;
}

/* Splits a line at tabs into t->fields. */
static void split_fields(tsv *t, char *line) {
    t->nfields = 0;
    for (char *p = line;;) {
        char *tab = strchr(p, '\t');
        if (t->nfields < GLUE_MAX_COLS) t->fields[t->nfields] = p;
        t->nfields++;
        if (!tab) break;
        *tab = '\0';
        p = tab + 1;
    }
}

/* Where the columns the task uses sit in a row; -1: absent. */
typedef struct columns {
    int ncols;
    int a, b, label, index;
    char names[GLUE_MAX_COLS][64]; /* the header, for messages (cut at 63 bytes) */
} columns;

static int column_of(const tsv *t, const char *name) {
    for (int i = 0; i < t->nfields; i++)
        if (!strcmp(t->fields[i], name)) return i;
    return -1;
}

/* "index, sentence, label": the header as read, for a message about a missing column. */
static void header_list(const columns *c, char *out, size_t cap) {
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < c->ncols && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "", c->names[i]);
}

static nep_status require(const tsv *t, const columns *c, const char *name, int *col,
                          nep_err *err) {
    *col = column_of(t, name);
    if (*col >= 0) return NEP_OK;
    char have[512];
    header_list(c, have, sizeof have);
    return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: the header lacks column \"%s\" (it has: %s)",
                    t->path, t->line, name, have);
}

/* Reads the header line and finds the task's columns. */
static nep_status read_header(tsv *t, const glue_task *task, bool label_required, columns *c,
                              nep_err *err) {
    char *line;
    bool more;
    NEP_TRY(next_line(t, &line, &more, err));
    /* A byte order mark is not part of the first column's name. */
    if (more && !strncmp(line, "\xef\xbb\xbf", 3)) line += 3;
    if (!more || !*line)
        return nep_fail(err, NEP_ERR_FORMAT, "%s:1: %s, expected a header line of column names",
                        t->path, more ? "empty line" : "empty file");
    split_fields(t, line);
    if (t->nfields > GLUE_MAX_COLS)
        return nep_fail(err, NEP_ERR_FORMAT, "%s:1: %d columns in the header, at most %d",
                        t->path, t->nfields, GLUE_MAX_COLS);
    c->ncols = t->nfields;
    for (int i = 0; i < t->nfields; i++) {
        if (nep_utf8_invalid_at(t->fields[i], strlen(t->fields[i])) >= 0)
            return nep_fail(err, NEP_ERR_FORMAT, "%s:1: invalid UTF-8 in header column %d",
                            t->path, i + 1);
        snprintf(c->names[i], sizeof c->names[i], "%s", t->fields[i]);
        for (int j = 0; j < i; j++)
            if (!strcmp(t->fields[i], t->fields[j]))
                return nep_fail(err, NEP_ERR_FORMAT, "%s:1: column \"%s\" appears twice in the header",
                                t->path, t->fields[i]);
    }
    NEP_TRY(require(t, c, task->col_a, &c->a, err));
    c->b = -1;
    if (task->col_b) NEP_TRY(require(t, c, task->col_b, &c->b, err));
    c->label = column_of(t, "label");
    if (label_required) NEP_TRY(require(t, c, "label", &c->label, err));
    c->index = column_of(t, "index");
    return NEP_OK;
}

/* A sentence field: valid UTF-8, not empty or blank. */
static nep_status check_text(const tsv *t, const columns *c, int col, nep_err *err) {
    const char *s = t->fields[col];
    size_t n = strlen(s);
    int64_t bad = nep_utf8_invalid_at(s, n);
    if (bad >= 0)
        return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: invalid UTF-8 in column \"%s\" at byte %lld (0x%02x)",
                        t->path, t->line, c->names[col], (long long)bad + 1, (unsigned char)s[bad]);
    if (strspn(s, " \v\f") == n)
        return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: %s sentence in column \"%s\"", t->path,
                        t->line, n ? "blank" : "empty", c->names[col]);
    return NEP_OK;
}

/* A non-negative decimal integer of at most max, all digits; -1 otherwise. */
static int64_t parse_count(const char *s, int64_t max) {
    int64_t v = 0;
    if (!*s || strlen(s) > 18) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        v = 10 * v + (*s - '0');
    }
    return v <= max ? v : -1;
}

static nep_status parse_label(const tsv *t, const columns *c, const glue_task *task,
                              int classes, int32_t *label, nep_err *err) {
    const char *s = t->fields[c->label];
    if (task->labels) {
        for (int k = 0; k < classes; k++) {
            if (strcmp(s, task->labels[k])) continue;
            *label = k;
            return NEP_OK;
        }
        return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: unknown label \"%.64s\" in column \"label\" (expected %s or %s)",
                        t->path, t->line, s, task->labels[0], task->labels[1]);
    }
    int64_t v = parse_count(s, classes - 1);
    if (v < 0)
        return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: unknown label \"%.64s\" in column \"label\" (expected a class index 0..%d)",
                        t->path, t->line, s, classes - 1);
    *label = (int32_t)v;
    return NEP_OK;
}

/* Checks one data row's fields and appends the row to d. */
static nep_status add_row(const tsv *t, const columns *c, const glue_task *task,
                          nep_text_dataset *d, int64_t *cap, nep_err *err) {
    if (t->nfields != c->ncols)
        return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: %d fields, but the header has %d columns%s",
                        t->path, t->line, t->nfields, c->ncols,
                        t->nfields > c->ncols ? " (a tab inside a sentence?)" : "");
    NEP_TRY(check_text(t, c, c->a, err));
    if (c->b >= 0) NEP_TRY(check_text(t, c, c->b, err));
    int32_t label = -1;
    if (c->label >= 0) NEP_TRY(parse_label(t, c, task, d->classes, &label, err));
    int64_t index = d->n;
    if (c->index >= 0 && (index = parse_count(t->fields[c->index], INT64_MAX)) < 0)
        return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: bad index \"%.64s\" in column \"index\" (expected a non-negative integer)",
                        t->path, t->line, t->fields[c->index]);
    if (!grow(d, cap)) return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", t->path);
    int64_t i = d->n;
    d->text_a[i] = strdup(t->fields[c->a]);
    if (d->text_b) d->text_b[i] = c->b >= 0 ? strdup(t->fields[c->b]) : NULL;
    d->labels[i] = label;
    d->index[i] = index;
    d->n++; /* counted before checking, so that free releases whichever copy succeeded */
    if (!d->text_a[i] || (d->text_b && !d->text_b[i]))
        return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", t->path);
    return NEP_OK;
}

/* The fortunes task's class names: task.json's "categories", written next to the TSV
 * files by nep_fortunes_task_build. */
static nep_status fortunes_names(const char *dir, nep_text_dataset *d, nep_err *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/task.json", dir) >= (int)sizeof path)
        return nep_fail(err, NEP_ERR_ARG, "%s: directory name too long", dir);
    char *text;
    size_t len = 0;
    NEP_TRY(read_all(path, "nep_fortunes_task_build writes it beside the TSV files", &text,
                     &len, err));
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *cats = cJSON_GetObjectItemCaseSensitive(root, "categories");
    int k = cJSON_IsArray(cats) ? cJSON_GetArraySize(cats) : 0;
    const char *names[NEP_FORTUNES_MAX_CATEGORIES];
    bool ok = k >= 2 && k <= NEP_FORTUNES_MAX_CATEGORIES;
    for (int i = 0; ok && i < k; i++) {
        const cJSON *e = cJSON_GetArrayItem(cats, i);
        ok = cJSON_IsString(e) && *e->valuestring;
        if (ok) names[i] = e->valuestring;
    }
    nep_status s = NEP_OK;
    if (!ok)
        s = root ? nep_fail(err, NEP_ERR_FORMAT,
                            "%s: expected \"categories\": an array of 2 to %d non-empty strings",
                            path, NEP_FORTUNES_MAX_CATEGORIES)
                 : nep_fail(err, NEP_ERR_FORMAT, "%s: not valid JSON", path);
    else if (!set_names(d, names, k))
        s = nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    cJSON_Delete(root);
    return s;
}

/* Reads every row of the file held in t into d (whose classes are set). */
static nep_status read_rows(tsv *t, const glue_task *task, bool label_required,
                            nep_text_dataset *d, nep_err *err) {
    columns c;
    NEP_TRY(read_header(t, task, label_required, &c, err));
    int64_t cap = 0;
    for (;;) {
        char *line;
        bool more;
        NEP_TRY(next_line(t, &line, &more, err));
        if (!more) return NEP_OK;
        if (!*line) continue; /* csv.DictReader skips blank lines too */
        split_fields(t, line);
        NEP_TRY(add_row(t, &c, task, d, &cap, err));
    }
}

nep_status nep_glue_load(const char *dir, const char *task_name, const char *split,
                         nep_text_dataset *out, nep_err *err) {
    *out = (nep_text_dataset){0};
    const glue_task *task = find_task(task_name);
    if (!task)
        return nep_fail(err, NEP_ERR_ARG, "unknown text task \"%s\" (known: " NEP_GLUE_TASKS ")",
                        task_name);
    if (strcmp(split, "train") && strcmp(split, "dev") && strcmp(split, "test"))
        return nep_fail(err, NEP_ERR_ARG, "unknown split \"%s\" (known: train, dev, test)", split);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s.tsv", dir, split) >= (int)sizeof path)
        return nep_fail(err, NEP_ERR_ARG, "%s: directory name too long", dir);
    nep_text_dataset d = {0};
    nep_status s = task->classes ? (set_names(&d, task->names, task->classes)
                                        ? NEP_OK
                                        : nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path))
                                 : fortunes_names(dir, &d, err);
    tsv t = {.path = path};
    if (!s) s = read_all(path, GLUE_HINT, &t.buf, &t.len, err);
    /* The array exists even when empty, so that text_b != NULL says "pair task". */
    if (!s && task->col_b && !(d.text_b = malloc(sizeof *d.text_b)))
        s = nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", path);
    if (!s) s = read_rows(&t, task, strcmp(split, "test") != 0, &d, err);
    free(t.buf);
    if (s) {
        nep_text_dataset_free(&d);
        return s;
    }
    *out = d;
    return NEP_OK;
}

/* --- splitting ---------------------------------------------------------------------- */

/* Appends row i of src to dst (allocated for it), copying its strings. */
static bool copy_row(const nep_text_dataset *src, int64_t i, nep_text_dataset *dst) {
    int64_t j = dst->n++;
    dst->text_a[j] = strdup(src->text_a[i]);
    if (dst->text_b) dst->text_b[j] = strdup(src->text_b[i]);
    dst->labels[j] = src->labels[i];
    dst->index[j] = src->index[i];
    return dst->text_a[j] && (!dst->text_b || dst->text_b[j]);
}

/* An empty data set with room for n rows and src's classes. */
static bool alloc_like(const nep_text_dataset *src, int64_t n, nep_text_dataset *d) {
    size_t m = n ? (size_t)n : 1;
    d->text_a = calloc(m, sizeof *d->text_a);
    d->text_b = src->text_b ? calloc(m, sizeof *d->text_b) : NULL;
    d->labels = malloc(m * sizeof *d->labels);
    d->index = malloc(m * sizeof *d->index);
    return d->text_a && (!src->text_b || d->text_b) && d->labels && d->index &&
           set_names(d, (const char *const *)src->label_names, src->classes);
}

nep_status nep_text_dataset_split(const nep_text_dataset *src, int64_t n_val, uint64_t seed,
                                  nep_text_dataset *train, nep_text_dataset *val,
                                  nep_err *err) {
    *train = *val = (nep_text_dataset){0};
    const int64_t n = src->n;
    uint8_t *in_val;
    NEP_TRY(nep_split_members(n, n_val, seed, &in_val, err));
    nep_text_dataset tr = {0}, va = {0};
    bool ok = alloc_like(src, n - n_val, &tr) && alloc_like(src, n_val, &va);
    for (int64_t i = 0; ok && i < n; i++) ok = copy_row(src, i, in_val[i] ? &va : &tr);
    free(in_val);
    if (!ok) {
        nep_text_dataset_free(&tr);
        nep_text_dataset_free(&va);
        return nep_fail(err, NEP_ERR_NOMEM, "split: out of memory for %lld rows", (long long)n);
    }
    *train = tr;
    *val = va;
    return NEP_OK;
}
