/* MMLU's CSV files, lm-evaluation-harness's k-shot prompt, and per-subject accuracy
 * (include/nepenthe/mmlu.h describes the format and where each detail was checked).
 *
 * A file is read whole and its rows are unquoted in place: a field's unquoted text is
 * never longer than its quoted form, so the write position never passes the read
 * position. Each field is then copied, so a set owns its strings one by one. */
#include "nepenthe/mmlu.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "nepenthe/file.h"
#include "nepenthe/utf8.h"

/* MMLU's largest file (professional_law_test.csv) is about 2 MB; a bound so that a wrong
 * path fails with a message instead of exhausting memory. */
#define MMLU_MAX_BYTES ((size_t)1 << 30)
#define MMLU_FIELDS 6
#define MMLU_HINT "MMLU is not downloaded by nepenthe: point at the unpacked data.tar's data folder"

/* --- sets --------------------------------------------------------------------------- */

static void item_free(nep_mmlu_item *it) {
    free(it->question);
    for (int c = 0; c < NEP_MMLU_CHOICES; c++) free(it->choices[c]);
}

void nep_mmlu_set_free(nep_mmlu_set *s) {
    for (int64_t i = 0; i < s->n; i++) item_free(&s->items[i]);
    for (int k = 0; k < s->n_subjects; k++) free(s->subjects[k]);
    free(s->items);
    free(s->subjects);
    *s = (nep_mmlu_set){0};
}

static nep_status nomem(nep_err *err, const char *what) {
    return nep_fail(err, NEP_ERR_NOMEM, "%s: out of memory", what);
}

/* Appends a subject name; its index is s->n_subjects - 1. */
static nep_status add_subject(nep_mmlu_set *s, const char *name, nep_err *err) {
    char **n = realloc(s->subjects, (size_t)(s->n_subjects + 1) * sizeof *n);
    if (!n) return nomem(err, name);
    s->subjects = n;
    if (!(n[s->n_subjects] = strdup(name))) return nomem(err, name);
    s->n_subjects++;
    return NEP_OK;
}

/* --- Python's str.strip() ----------------------------------------------------------- */

/* The code points Python's str.isspace() accepts, which str.strip() removes. */
static bool py_space(int32_t u) {
    return (u >= 0x09 && u <= 0x0d) || (u >= 0x1c && u <= 0x20) || u == 0x85 || u == 0xa0 ||
           u == 0x1680 || (u >= 0x2000 && u <= 0x200a) || u == 0x2028 || u == 0x2029 ||
           u == 0x202f || u == 0x205f || u == 0x3000;
}

/* s[*start..*end) is s (n bytes of valid UTF-8) stripped as Python's str.strip(). */
static void py_strip(const char *s, size_t n, size_t *start, size_t *end) {
    size_t i = 0;
    *start = *end = n;
    while (i < n) {
        size_t at = i;
        int32_t u = nep_utf8_next(s, n, &i);
        if (u < 0) i = at + 1; /* not reached for checked text; never loop forever */
        if (u >= 0 && py_space(u)) continue;
        if (*start == n) *start = at;
        *end = i;
    }
    if (*start == n) *end = n;
}

/* --- reading ------------------------------------------------------------------------ */

typedef struct csv {
    const char *path;
    char *buf;            /* the file, NUL after its len bytes */
    size_t len, pos;
    long long line;       /* 1-based line of buf[pos] */
} csv;

/* A line end at buf[r]: LF, CRLF, or a CR ending the file (Python's csv.reader takes a CR
 * as the end of its line; elsewhere a lone CR would not end a line for it). */
static bool at_eol(const csv *c, size_t r) {
    return c->buf[r] == '\n' ||
           (c->buf[r] == '\r' && (r + 1 == c->len || c->buf[r + 1] == '\n'));
}

/* Cuts the row starting at c->pos into fields (unquoted, NUL-terminated, in place);
 * *nf is the count found, of which the first MMLU_FIELDS are kept in f. */
static nep_status next_row(csv *c, char *f[MMLU_FIELDS], int *nf, nep_err *err) {
    char *b = c->buf, *w = b + c->pos;
    size_t r = c->pos;
    const long long row = c->line;
    *nf = 0;
    if (at_eol(c, r))
        return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: empty line, expected %d fields",
                        c->path, row, MMLU_FIELDS);
    for (;;) {
        char *start = w;
        int field = *nf + 1;
        if (r < c->len && b[r] == '"') {
            const long long opened = c->line;
            for (r++;; r++) {
                if (r >= c->len)
                    return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: field %d's quote (opened on line %lld) is never closed",
                                    c->path, row, field, opened);
                if (b[r] == '"') {
                    if (r + 1 < c->len && b[r + 1] == '"') {
                        *w++ = '"';
                        r++;
                        continue;
                    }
                    r++;
                    break;
                }
                if (!b[r])
                    return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: NUL byte in field %d",
                                    c->path, row, field);
                if (b[r] == '\n') c->line++;
                *w++ = b[r];
            }
            if (r < c->len && b[r] != ',' && !at_eol(c, r))
                return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: text after the closing quote of field %d (a quote inside a quoted field is written \"\")",
                                c->path, row, field);
        } else {
            for (; r < c->len && b[r] != ',' && b[r] != '\n' && b[r] != '\r'; r++) {
                if (!b[r])
                    return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: NUL byte in field %d",
                                    c->path, row, field);
                *w++ = b[r];
            }
            if (r < c->len && b[r] == '\r' && !at_eol(c, r))
                return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: carriage return in unquoted field %d (not part of a CRLF line end)",
                                c->path, row, field);
        }
        if (*nf < MMLU_FIELDS) f[*nf] = start;
        (*nf)++;
        /* What ends the field is read before the NUL goes in: it may land on it. */
        const char end = r < c->len ? b[r] : '\0';
        *w++ = '\0'; /* over the separator or a quote already read, or at buf[len] */
        if (end == ',') {
            r++;
            continue;
        }
        if (end) { /* LF or CRLF */
            r += end == '\r' && r + 1 < c->len ? 2 : 1;
            c->line++;
        }
        c->pos = r;
        return NEP_OK;
    }
}

/* Checks one row's fields and appends it to s as a question of subject k. */
static nep_status add_item(const csv *c, long long row, char *f[MMLU_FIELDS], int nf,
                           nep_mmlu_set *s, int k, int64_t *cap, nep_err *err) {
    if (nf != MMLU_FIELDS)
        return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: %d fields, expected %d (question, A, B, C, D, answer)%s",
                        c->path, row, nf, MMLU_FIELDS,
                        nf > MMLU_FIELDS ? " (an unquoted comma?)" : "");
    for (int i = 0; i < MMLU_FIELDS; i++) {
        int64_t bad = nep_utf8_invalid_at(f[i], strlen(f[i]));
        if (bad >= 0)
            return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: invalid UTF-8 in field %d at byte %lld (0x%02x)",
                            c->path, row, i + 1, (long long)bad + 1, (unsigned char)f[i][bad]);
    }
    size_t a, z;
    py_strip(f[0], strlen(f[0]), &a, &z);
    if (a == z)
        return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: %s question", c->path, row,
                        f[0][0] ? "blank" : "empty");
    const char *ans = f[5];
    if (!(ans[0] >= 'A' && ans[0] <= 'D' && !ans[1]))
        return nep_fail(err, NEP_ERR_FORMAT, "%s:%lld: answer \"%.32s\", expected A, B, C or D",
                        c->path, row, ans);
    if (s->n == *cap) {
        int64_t nc = *cap ? 2 * *cap : 256;
        nep_mmlu_item *items = realloc(s->items, (size_t)nc * sizeof *items);
        if (!items) return nomem(err, c->path);
        s->items = items;
        *cap = nc;
    }
    nep_mmlu_item *it = &s->items[s->n++]; /* counted first: free releases what was copied */
    *it = (nep_mmlu_item){.answer = ans[0] - 'A', .subject = k};
    it->question = strdup(f[0]);
    bool ok = it->question != NULL;
    for (int i = 0; i < NEP_MMLU_CHOICES; i++) ok = (it->choices[i] = strdup(f[1 + i])) && ok;
    return ok ? NEP_OK : nomem(err, c->path);
}

/* Appends the rows of the file at path to s as questions of subject k. */
static nep_status read_file(const char *path, nep_mmlu_set *s, int k, int64_t *cap,
                            nep_err *err) {
    csv c = {.path = path, .line = 1};
    nep_status st = nep_read_file(path, MMLU_MAX_BYTES, &c.buf, &c.len, err);
    if (st == NEP_ERR_IO && err) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return nep_fail(err, st, "%s; %s", why, MMLU_HINT);
    }
    while (!st && c.pos < c.len) {
        char *f[MMLU_FIELDS];
        int nf;
        long long row = c.line;
        st = next_row(&c, f, &nf, err);
        if (!st) st = add_item(&c, row, f, nf, s, k, cap, err);
    }
    free(c.buf);
    return st;
}

nep_status nep_mmlu_load_file(const char *path, const char *subject, nep_mmlu_set *out,
                              nep_err *err) {
    *out = (nep_mmlu_set){0};
    if (!subject || !*subject) return nep_fail(err, NEP_ERR_ARG, "%s: empty MMLU subject", path);
    nep_mmlu_set s = {0};
    int64_t cap = 0;
    nep_status st = add_subject(&s, subject, err);
    if (!st) st = read_file(path, &s, 0, &cap, err);
    if (st) {
        nep_mmlu_set_free(&s);
        return st;
    }
    *out = s;
    return NEP_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The subjects of root/<split>: every "<subject>_<split>.csv" there, sorted. */
static nep_status list_subjects(const char *dir, const char *split, char ***names, int *n,
                                nep_err *err) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return nep_fail(err, NEP_ERR_IO, "%s: %s; %s", dir, strerror(errno), MMLU_HINT);
    char suffix[32];
    snprintf(suffix, sizeof suffix, "_%s.csv", split);
    size_t ls = strlen(suffix);
    nep_status st = NEP_OK;
    for (struct dirent *e; !st && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= ls || strcmp(e->d_name + len - ls, suffix)) continue;
        char **nn = realloc(*names, (size_t)(*n + 1) * sizeof *nn);
        if (nn) *names = nn;
        if (!nn || !(nn[*n] = strndup(e->d_name, len - ls)))
            st = nomem(err, dir);
        else
            (*n)++;
    }
    closedir(d);
    if (!st && !*n)
        st = nep_fail(err, NEP_ERR_IO, "%s: no *%s files; %s", dir, suffix, MMLU_HINT);
    if (!st) qsort(*names, (size_t)*n, sizeof **names, by_name);
    return st;
}

nep_status nep_mmlu_load_split(const char *root, const char *split, const char *subject,
                               nep_mmlu_set *out, nep_err *err) {
    *out = (nep_mmlu_set){0};
    if (strcmp(split, "dev") && strcmp(split, "val") && strcmp(split, "test"))
        return nep_fail(err, NEP_ERR_ARG, "unknown MMLU split \"%s\" (known: dev, val, test)", split);
    if (subject && (!*subject || strchr(subject, '/')))
        return nep_fail(err, NEP_ERR_ARG, "bad MMLU subject \"%s\"", subject);
    char dir[4096], path[4096];
    if (snprintf(dir, sizeof dir, "%s/%s", root, split) >= (int)sizeof dir)
        return nep_fail(err, NEP_ERR_ARG, "%s: folder name too long", root);
    char **names = NULL;
    int n = 0;
    nep_status st = NEP_OK;
    if (subject) {
        if (!(names = malloc(sizeof *names)) || !(names[0] = strdup(subject)))
            st = nomem(err, dir);
        else
            n = 1;
    } else {
        st = list_subjects(dir, split, &names, &n, err);
    }
    nep_mmlu_set s = {0};
    int64_t cap = 0;
    for (int k = 0; !st && k < n; k++) {
        if (snprintf(path, sizeof path, "%s/%s_%s.csv", dir, names[k], split) >= (int)sizeof path)
            st = nep_fail(err, NEP_ERR_ARG, "%s: file name too long", dir);
        if (!st) st = add_subject(&s, names[k], err);
        if (!st) st = read_file(path, &s, k, &cap, err);
    }
    for (int k = 0; k < n; k++) free(names[k]);
    free(names);
    if (st) {
        nep_mmlu_set_free(&s);
        return st;
    }
    *out = s;
    return NEP_OK;
}

/* --- the prompt --------------------------------------------------------------------- */

/* A growing string; ok turns false (and stays) when memory runs out. */
typedef struct text {
    char *s;
    size_t n, cap;
    bool ok;
} text;

static void put(text *t, const char *s, size_t n) {
    if (!t->ok) return;
    if (t->n + n + 1 > t->cap) {
        size_t nc = t->cap ? t->cap : 4096;
        while (t->n + n + 1 > nc) nc *= 2;
        char *p = realloc(t->s, nc);
        if (!p) {
            t->ok = false;
            return;
        }
        t->s = p;
        t->cap = nc;
    }
    memcpy(t->s + t->n, s, n);
    t->n += n;
    t->s[t->n] = '\0';
}

static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

/* doc_to_text: "{{question.strip()}}\nA. {{choices[0]}}\n...\nD. {{choices[3]}}\nAnswer:" */
static void put_question(text *t, const nep_mmlu_item *it) {
    size_t a, z;
    py_strip(it->question, strlen(it->question), &a, &z);
    put(t, it->question + a, z - a);
    for (int c = 0; c < NEP_MMLU_CHOICES; c++) {
        char label[5] = {'\n', (char)('A' + c), '.', ' ', '\0'};
        puts_(t, label);
        puts_(t, it->choices[c]);
    }
    puts_(t, "\nAnswer:");
}

nep_status nep_mmlu_prompt(const nep_mmlu_set *dev, const char *subject, int k,
                           const nep_mmlu_item *target, char **prompt, nep_err *err) {
    *prompt = NULL;
    if (k < 0) return nep_fail(err, NEP_ERR_ARG, "MMLU prompt: %d shots", k);
    int ks = -1;
    for (int j = 0; k > 0 && dev && j < dev->n_subjects; j++)
        if (!strcmp(dev->subjects[j], subject)) ks = j;
    int64_t have = 0;
    for (int64_t i = 0; ks >= 0 && i < dev->n; i++) have += dev->items[i].subject == ks;
    if (have < k)
        return nep_fail(err, NEP_ERR_ARG, "MMLU prompt: %d shots asked, the dev split has %lld questions of \"%s\"",
                        k, (long long)have, subject);
    text t = {.ok = true};
    puts_(&t, "The following are multiple choice questions (with answers) about ");
    for (const char *p = subject; *p; p++) put(&t, *p == '_' ? " " : p, 1);
    puts_(&t, ".\n\n");
    for (int64_t i = 0, used = 0; used < k; i++) {
        const nep_mmlu_item *shot = &dev->items[i];
        if (shot->subject != ks) continue;
        put_question(&t, shot);
        char answer[5] = {' ', (char)('A' + shot->answer), '\n', '\n', '\0'};
        puts_(&t, answer);
        used++;
    }
    put_question(&t, target);
    if (!t.ok) {
        free(t.s);
        return nomem(err, "MMLU prompt");
    }
    *prompt = t.s;
    return NEP_OK;
}

const char *nep_mmlu_continuation(int c) {
    static const char *const CONT[NEP_MMLU_CHOICES] = {" A", " B", " C", " D"};
    return c >= 0 && c < NEP_MMLU_CHOICES ? CONT[c] : NULL;
}

/* --- accuracy ----------------------------------------------------------------------- */

void nep_mmlu_report_free(nep_mmlu_report *r) {
    for (int k = 0; k < r->n_subjects; k++) free(r->subjects[k].subject);
    free(r->subjects);
    *r = (nep_mmlu_report){0};
}

nep_status nep_mmlu_score(const nep_mmlu_set *set, const int *pred, nep_mmlu_report *out,
                          nep_err *err) {
    *out = (nep_mmlu_report){0};
    for (int64_t i = 0; i < set->n; i++)
        if (pred[i] < 0 || pred[i] >= NEP_MMLU_CHOICES)
            return nep_fail(err, NEP_ERR_ARG, "MMLU score: prediction %d for question %lld, expected 0..3",
                            pred[i], (long long)i);
    nep_mmlu_report r = {0};
    r.subjects = calloc(set->n_subjects ? (size_t)set->n_subjects : 1, sizeof *r.subjects);
    if (!r.subjects) return nomem(err, "MMLU score");
    for (; r.n_subjects < set->n_subjects; r.n_subjects++) {
        nep_mmlu_subject_acc *a = &r.subjects[r.n_subjects];
        if (!(a->subject = strdup(set->subjects[r.n_subjects]))) {
            nep_mmlu_report_free(&r);
            return nomem(err, "MMLU score");
        }
    }
    for (int64_t i = 0; i < set->n; i++) {
        nep_mmlu_subject_acc *a = &r.subjects[set->items[i].subject];
        bool right = pred[i] == set->items[i].answer;
        a->n++;
        a->correct += right;
        r.n++;
        r.correct += right;
    }
    int with = 0;
    for (int k = 0; k < r.n_subjects; k++) {
        nep_mmlu_subject_acc *a = &r.subjects[k];
        if (!a->n) continue;
        a->acc = (double)a->correct / (double)a->n;
        r.acc_macro += a->acc;
        with++;
    }
    r.acc = r.n ? (double)r.correct / (double)r.n : 0.0;
    r.acc_macro = with ? r.acc_macro / with : 0.0;
    *out = r;
    return NEP_OK;
}

int nep_mmlu_report_write(const nep_mmlu_report *r, FILE *f) {
    int w = 0;
    for (int k = 0; k < r->n_subjects; k++)
        if ((int)strlen(r->subjects[k].subject) > w) w = (int)strlen(r->subjects[k].subject);
    if (w < 24) w = 24;
    fprintf(f, "%-*s %8s %8s %7s\n", w, "subject", "correct", "n", "acc");
    for (int k = 0; k < r->n_subjects; k++) {
        const nep_mmlu_subject_acc *a = &r->subjects[k];
        fprintf(f, "%-*s %8lld %8lld %7.4f\n", w, a->subject, (long long)a->correct,
                (long long)a->n, a->acc);
    }
    fprintf(f, "%-*s %8lld %8lld %7.4f\n", w, "all (micro, by size)", (long long)r->correct,
            (long long)r->n, r->acc);
    fprintf(f, "%-*s %8s %8d %7.4f\n", w, "subjects (macro)", "", r->n_subjects, r->acc_macro);
    return ferror(f) ? (errno ? errno : EIO) : 0;
}
