/* A language-modelling corpus and a multiple-choice task from Debian's `fortunes`
 * (include/nepenthe/fortunes_lm.h gives the contract).
 *
 * Why this shape. The classification task (fortunes_task.c) keeps eight topical
 * categories and short entries, since an encoder labels them; a language model wants all
 * the text, so here every category file is read and nothing is cut for length. The
 * entries are read and cleaned by the same functions as the task's (fortunes_impl.h),
 * so a text is the same line in both.
 *
 * Held-out text only. The multiple-choice task scores continuations of held-out entries
 * against continuations of other held-out entries: a model trained on train.txt has seen
 * neither the question nor any choice, so the task measures what it learned about
 * language, not what it memorized. Deduplication runs across all files before the split
 * for the same reason: a text in two categories could otherwise land on both sides.
 *
 * Order of work. Everything is read, split and drawn in memory first; only when every
 * check has passed are the files written (each atomically), corpus.json last. A failure
 * therefore leaves out_dir as it was, or with complete files of this run and no
 * corpus.json. */
#include "nepenthe/fortunes_lm.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nepenthe/file.h"
#include "nepenthe/rng.h"
#include "nepenthe/utf8.h"
#include "data/fortunes_impl.h"

#define SUBJECT "fortunes"

typedef struct text {
    char *s;      /* cleaned, one line, NUL-terminated */
    size_t len;
    int64_t ord;  /* reading order: sorted file names, file order within one */
    bool dup;
} text;

/* A held-out entry cut in two for the multiple-choice task. */
typedef struct halves {
    const char *s;     /* the entry; the question is s[0..q_len) */
    size_t q_len;
    const char *cont;  /* the continuation: s + q_len + 1 */
} halves;

typedef struct question {
    uint32_t choice[4]; /* eligible entries whose continuations are A..D */
    int answer;         /* choice[answer] is the question's own entry */
} question;

typedef struct corpus {
    const char *dir, *out;
    uint64_t seed;
    double fraction;
    char **names;          /* category files, sorted */
    int64_t n_names, names_cap;
    text *e;               /* kept entries, reading order */
    int64_t n, cap;
    uint32_t *order;       /* shuffled: [0, heldout) held out, the rest train */
    halves *elig;          /* eligible held-out entries, held-out order */
    int64_t n_elig;
    question *q;           /* [n_elig]: question i is elig[i] */
    nep_fortunes_lm_summary sum;
} corpus;

static nep_status oom(nep_err *err) {
    return nep_fail(err, NEP_ERR_NOMEM, "fortunes corpus: out of memory");
}

static nep_status join(char *path, size_t cap, const char *dir, const char *name, nep_err *err) {
    if (snprintf(path, cap, "%s/%s", dir, name) >= (int)cap)
        return nep_fail(err, NEP_ERR_ARG, "%s: directory name too long", dir);
    return NEP_OK;
}

/* --- the category files -------------------------------------------------------------- */

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A category file: a regular file (or a link to one) whose name has no '.', which rules
 * out hidden files, the strfile indexes (*.dat) and the *.u8 links. */
static nep_status is_category(const corpus *c, const char *name, bool *yes, nep_err *err) {
    *yes = false;
    if (!name[0] || strchr(name, '.')) return NEP_OK;
    char path[4096];
    struct stat st;
    NEP_TRY(join(path, sizeof path, c->dir, name, err));
    *yes = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    if (*yes && nep_utf8_invalid_at(name, strlen(name)) >= 0)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: file name is not valid UTF-8 (corpus.json lists it)",
                        path);
    return NEP_OK;
}

static nep_status push_name(corpus *c, const char *name, nep_err *err) {
    if (c->n_names == c->names_cap) {
        int64_t nc = c->names_cap ? 2 * c->names_cap : 64;
        char **p = realloc(c->names, (size_t)nc * sizeof *p);
        if (!p) return oom(err);
        c->names = p;
        c->names_cap = nc;
    }
    if (!(c->names[c->n_names] = strdup(name))) return oom(err);
    c->n_names++;
    return NEP_OK;
}

static nep_status list_categories(corpus *c, nep_err *err) {
    DIR *d = opendir(c->dir);
    if (!d)
        return nep_fail(err, NEP_ERR_IO, "%s: cannot open the fortunes directory: %s; " NEP_FORTUNES_HINT,
                        c->dir, strerror(errno));
    nep_status s = NEP_OK;
    while (!s) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) s = nep_fail(err, NEP_ERR_IO, "%s: cannot read the directory: %s", c->dir, strerror(errno));
            break;
        }
        bool yes;
        s = is_category(c, de->d_name, &yes, err);
        if (!s && yes) s = push_name(c, de->d_name, err);
    }
    closedir(d);
    if (!s && c->n_names == 0)
        s = nep_fail(err, NEP_ERR_IO, "%s: no fortunes category file (a regular file whose name has no "
                     "'.'); " NEP_FORTUNES_HINT, c->dir);
    if (!s) qsort(c->names, (size_t)c->n_names, sizeof *c->names, by_name);
    return s;
}

/* --- entries ------------------------------------------------------------------------- */

static nep_status add_entry(void *ctx, const char *raw, size_t n, nep_err *err) {
    corpus *c = ctx;
    c->sum.entries_read++;
    if (nep_utf8_invalid_at(raw, n) >= 0) {
        c->sum.dropped_invalid_utf8++;
        return NEP_OK;
    }
    char *s = malloc(n + 1);
    if (!s) return oom(err);
    size_t m = nep_fortunes_clean(raw, n, s);
    if (m == 0) {
        c->sum.dropped_empty++;
        free(s);
        return NEP_OK;
    }
    if (c->n == c->cap) {
        int64_t nc = c->cap ? 2 * c->cap : 4096;
        text *e = realloc(c->e, (size_t)nc * sizeof *e);
        if (!e) {
            free(s);
            return oom(err);
        }
        c->e = e;
        c->cap = nc;
    }
    c->e[c->n] = (text){.s = s, .len = m, .ord = c->n};
    c->n++;
    return NEP_OK;
}

static nep_status read_all(corpus *c, nep_err *err) {
    for (int64_t i = 0; i < c->n_names; i++) {
        char path[4096];
        NEP_TRY(join(path, sizeof path, c->dir, c->names[i], err));
        NEP_TRY(nep_fortunes_read_entries(path, add_entry, c, err));
    }
    c->sum.files = c->n_names;
    return NEP_OK;
}

static int by_text(const void *pa, const void *pb) {
    const text *a = *(text *const *)pa, *b = *(text *const *)pb;
    int r = strcmp(a->s, b->s);
    return r ? r : (a->ord > b->ord) - (a->ord < b->ord);
}

/* Keeps the first occurrence of each text: sorting by (text, reading order) puts every
 * repeat right after its first; the survivors then close ranks in reading order. */
static nep_status dedupe(corpus *c, nep_err *err) {
    text **p = malloc((size_t)(c->n ? c->n : 1) * sizeof *p);
    if (!p) return oom(err);
    for (int64_t i = 0; i < c->n; i++) p[i] = &c->e[i];
    qsort(p, (size_t)c->n, sizeof *p, by_text);
    for (int64_t i = 1; i < c->n; i++) p[i]->dup = !strcmp(p[i]->s, p[i - 1]->s);
    free(p);
    int64_t w = 0;
    for (int64_t i = 0; i < c->n; i++) {
        if (c->e[i].dup) {
            free(c->e[i].s);
            c->sum.duplicates++;
        } else {
            c->e[w++] = c->e[i];
        }
    }
    c->n = w;
    return NEP_OK;
}

/* --- the split ----------------------------------------------------------------------- */

static nep_status split(corpus *c, nep_rng *rng, nep_err *err) {
    if (c->n > (int64_t)UINT32_MAX)
        return nep_fail(err, NEP_ERR_ARG, "%s: %lld entries, more than this corpus handles", c->dir,
                        (long long)c->n);
    if (!(c->order = malloc((size_t)(c->n ? c->n : 1) * sizeof *c->order))) return oom(err);
    for (int64_t i = 0; i < c->n; i++) c->order[i] = (uint32_t)i;
    nep_rng_shuffle_u32(rng, c->order, (size_t)c->n);
    /* round(fraction * n), halves up; fraction <= 0.5 keeps it within n. */
    c->sum.heldout = (int64_t)(c->fraction * (double)c->n + 0.5);
    c->sum.train = c->n - c->sum.heldout;
    for (int64_t i = 0; i < c->n; i++) {
        int64_t bytes = (int64_t)c->e[c->order[i]].len + 1;
        *(i < c->sum.heldout ? &c->sum.heldout_bytes : &c->sum.train_bytes) += bytes;
    }
    return NEP_OK;
}

/* --- the multiple-choice task -------------------------------------------------------- */

/* Cuts t at the floor(w/2)-th of its w - 1 spaces when it has w >= the minimum words
 * (cleaning left single spaces and no space at either end). */
static bool cut(const text *t, halves *h) {
    int64_t words = 1;
    for (size_t i = 0; i < t->len; i++) words += t->s[i] == ' ';
    if (words < NEP_FORTUNES_LM_MC_MIN_WORDS) return false;
    int64_t seen = 0, want = words / 2;
    size_t i = 0;
    for (; i < t->len; i++)
        if (t->s[i] == ' ' && ++seen == want) break;
    *h = (halves){.s = t->s, .q_len = i, .cont = t->s + i + 1};
    return true;
}

static nep_status find_eligible(corpus *c, nep_err *err) {
    if (!(c->elig = malloc((size_t)(c->sum.heldout ? c->sum.heldout : 1) * sizeof *c->elig)))
        return oom(err);
    for (int64_t i = 0; i < c->sum.heldout; i++)
        c->n_elig += cut(&c->e[c->order[i]], &c->elig[c->n_elig]);
    if (c->n_elig < NEP_FORTUNES_LM_MC_MIN)
        return nep_fail(err, NEP_ERR_ARG,
                        "fortunes corpus: %lld held-out entries of at least %d words, the "
                        "multiple-choice task needs at least %d (raise the held-out fraction or "
                        "use a larger fortunes directory)",
                        (long long)c->n_elig, NEP_FORTUNES_LM_MC_MIN_WORDS, NEP_FORTUNES_LM_MC_MIN);
    return NEP_OK;
}

/* Question i's three distractors, drawn without replacement from the other eligible
 * entries (pool has room for all of them), skipping continuations already among the
 * choices; then the answer's letter. */
static nep_status draw_question(const corpus *c, uint32_t i, nep_rng *rng, uint32_t *pool,
                                question *q, nep_err *err) {
    uint32_t m = 0;
    for (uint32_t j = 0; j < (uint32_t)c->n_elig; j++)
        if (j != i) pool[m++] = j;
    uint32_t pick[4] = {i};
    int k = 1;
    while (k < 4 && m > 0) {
        uint32_t r = (uint32_t)nep_rng_below(rng, m);
        uint32_t j = pool[r];
        pool[r] = pool[--m];
        bool seen = false;
        for (int t = 0; t < k; t++) seen |= !strcmp(c->elig[pick[t]].cont, c->elig[j].cont);
        if (!seen) pick[k++] = j;
    }
    if (k < 4)
        return nep_fail(err, NEP_ERR_ARG,
                        "fortunes corpus: the eligible held-out entries have fewer than 4 distinct "
                        "second halves, too few for the choices of \"%.60s\"",
                        c->elig[i].cont);
    q->answer = (int)nep_rng_below(rng, 4);
    for (int slot = 0, d = 1; slot < 4; slot++) q->choice[slot] = slot == q->answer ? i : pick[d++];
    return NEP_OK;
}

static nep_status draw_questions(corpus *c, nep_rng *rng, nep_err *err) {
    c->q = malloc((size_t)c->n_elig * sizeof *c->q);
    uint32_t *pool = malloc((size_t)c->n_elig * sizeof *pool);
    nep_status s = c->q && pool ? NEP_OK : oom(err);
    for (int64_t i = 0; !s && i < c->n_elig; i++) s = draw_question(c, (uint32_t)i, rng, pool, &c->q[i], err);
    free(pool);
    c->sum.mc_dev = NEP_FORTUNES_LM_MC_DEV;
    c->sum.mc_test = c->n_elig - NEP_FORTUNES_LM_MC_DEV;
    return s;
}

/* --- writing ------------------------------------------------------------------------- */

static int stream_status(FILE *f) { return ferror(f) ? (errno ? errno : EIO) : 0; }

typedef struct lines_out {
    const corpus *c;
    int64_t from, to; /* positions in c->order */
} lines_out;

static int fill_lines(void *ctx, FILE *f) {
    const lines_out *o = ctx;
    for (int64_t i = o->from; i < o->to; i++) {
        const text *t = &o->c->e[o->c->order[i]];
        fwrite(t->s, 1, t->len, f);
        fputc('\n', f);
    }
    return stream_status(f);
}

/* RFC 4180: quoted, quotes doubled, when the field holds a comma, a quote or a line
 * break (cleaning leaves no line break, but the rule costs nothing). */
static void csv_field(FILE *f, const char *s, size_t n) {
    bool quote = false;
    for (size_t i = 0; i < n; i++) quote |= s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        fwrite(s, 1, n, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') fputc('"', f);
        fputc(s[i], f);
    }
    fputc('"', f);
}

typedef struct csv_out {
    const corpus *c;
    int64_t from, to; /* questions */
} csv_out;

static int fill_csv(void *ctx, FILE *f) {
    const csv_out *o = ctx;
    for (int64_t i = o->from; i < o->to; i++) {
        const question *q = &o->c->q[i];
        const halves *h = &o->c->elig[i];
        csv_field(f, h->s, h->q_len);
        for (int k = 0; k < 4; k++) {
            const char *cont = o->c->elig[q->choice[k]].cont;
            fputc(',', f);
            csv_field(f, cont, strlen(cont));
        }
        fprintf(f, ",%c\n", 'A' + q->answer);
    }
    return stream_status(f);
}

/* The shortest decimal that reads back as v, so that 0.05 is written "0.05". */
static void shortest(char *buf, size_t cap, double v) {
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, cap, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static int fill_readme(void *ctx, FILE *f) {
    const corpus *c = ctx;
    char frac[32];
    shortest(frac, sizeof frac, c->fraction);
    fprintf(f,
            "fortunes: a multiple-choice continuation task from Debian's fortunes, built by\n"
            "nepenthe (nep_fortunes_lm_build, include/nepenthe/fortunes_lm.h).\n\n"
            "Each question is the first half (floor(w/2) of its w words) of a fortune held out\n"
            "of ../train.txt; the four choices are its true second half and the second halves\n"
            "of three other held-out fortunes, drawn at random; the answer is the true one\n"
            "(chance: 25%%). Only held-out fortunes of at least %d words are used, so a model\n"
            "trained on train.txt has seen none of this text.\n\n"
            "Layout: MMLU's CSV (question, A, B, C, D, answer letter; no header), subject\n"
            "\"" SUBJECT "\":\n"
            "  data/dev/" SUBJECT "_dev.csv    %lld questions (the %d-shot examples)\n"
            "  data/test/" SUBJECT "_test.csv  %lld questions\n\n"
            "Source: %s, %lld category files; seed %llu, held-out fraction %s:\n"
            "%lld entries after cleaning and deduplication, %lld held out (%lld of them of at\n"
            "least %d words), %lld in train.\n",
            NEP_FORTUNES_LM_MC_MIN_WORDS, (long long)c->sum.mc_dev, NEP_FORTUNES_LM_MC_DEV,
            (long long)c->sum.mc_test, c->dir, (long long)c->sum.files, (unsigned long long)c->seed,
            frac, (long long)c->n, (long long)c->sum.heldout, (long long)c->n_elig,
            NEP_FORTUNES_LM_MC_MIN_WORDS, (long long)c->sum.train);
    return stream_status(f);
}

/* Written by hand so that the seed, a full 64-bit value, is exact (cJSON holds numbers
 * as doubles) and the bytes are fixed by the content alone. */
static int fill_json(void *ctx, FILE *f) {
    const corpus *c = ctx;
    const nep_fortunes_lm_summary *m = &c->sum;
    char frac[32];
    shortest(frac, sizeof frac, c->fraction);
    fputs("{\n  \"corpus\": \"fortunes\",\n  \"source\": ", f);
    nep_fortunes_json_string(f, c->dir);
    fprintf(f, ",\n  \"seed\": %llu,\n  \"heldout_fraction\": %s,\n", (unsigned long long)c->seed, frac);
    fputs("  \"files\": [", f);
    for (int64_t i = 0; i < c->n_names; i++) {
        fputs(i ? ", " : "", f);
        nep_fortunes_json_string(f, c->names[i]);
    }
    fprintf(f,
            "],\n  \"counts\": {\n    \"files\": %lld,\n    \"entries_read\": %lld,\n"
            "    \"dropped_invalid_utf8\": %lld,\n    \"dropped_empty\": %lld,\n"
            "    \"duplicates\": %lld,\n    \"train\": %lld,\n    \"heldout\": %lld,\n"
            "    \"train_bytes\": %lld,\n    \"heldout_bytes\": %lld,\n    \"mc_dev\": %lld,\n"
            "    \"mc_test\": %lld\n  },\n",
            (long long)m->files, (long long)m->entries_read, (long long)m->dropped_invalid_utf8,
            (long long)m->dropped_empty, (long long)m->duplicates, (long long)m->train,
            (long long)m->heldout, (long long)m->train_bytes, (long long)m->heldout_bytes,
            (long long)m->mc_dev, (long long)m->mc_test);
    fprintf(f,
            "  \"files_written\": [\"train.txt\", \"heldout.txt\", \"mc/data/dev/" SUBJECT "_dev.csv\", "
            "\"mc/data/test/" SUBJECT "_test.csv\", \"mc/README.txt\"],\n"
            "  \"mc\": {\"subject\": \"" SUBJECT "\", \"format\": \"MMLU CSV\", \"min_words\": %d, "
            "\"eligible_heldout\": %lld}\n}\n",
            NEP_FORTUNES_LM_MC_MIN_WORDS, (long long)c->n_elig);
    return stream_status(f);
}

static nep_status make_dir(const char *dir, nep_err *err) {
    struct stat st;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return nep_fail(err, NEP_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return nep_fail(err, NEP_ERR_IO, "%s: not a directory", dir);
    return NEP_OK;
}

static nep_status write_file(const corpus *c, const char *name, nep_fill_fn fill, void *ctx,
                             nep_err *err) {
    char path[4096];
    NEP_TRY(join(path, sizeof path, c->out, name, err));
    return nep_write_atomic(path, fill, ctx, err);
}

static nep_status write_all(corpus *c, nep_err *err) {
    static const char *const DIRS[] = {"", "/mc", "/mc/data", "/mc/data/dev", "/mc/data/test"};
    for (size_t i = 0; i < sizeof DIRS / sizeof *DIRS; i++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s%s", c->out, DIRS[i]) >= (int)sizeof path)
            return nep_fail(err, NEP_ERR_ARG, "%s: directory name too long", c->out);
        NEP_TRY(make_dir(path, err));
    }
    int64_t h = c->sum.heldout, dev = NEP_FORTUNES_LM_MC_DEV;
    lines_out train = {c, h, c->n}, held = {c, 0, h};
    csv_out dev_csv = {c, 0, dev}, test_csv = {c, dev, c->n_elig};
    NEP_TRY(write_file(c, "train.txt", fill_lines, &train, err));
    NEP_TRY(write_file(c, "heldout.txt", fill_lines, &held, err));
    NEP_TRY(write_file(c, "mc/data/dev/" SUBJECT "_dev.csv", fill_csv, &dev_csv, err));
    NEP_TRY(write_file(c, "mc/data/test/" SUBJECT "_test.csv", fill_csv, &test_csv, err));
    NEP_TRY(write_file(c, "mc/README.txt", fill_readme, c, err));
    /* Last: its presence says every file above is complete. */
    return write_file(c, "corpus.json", fill_json, c, err);
}

/* --- the build ----------------------------------------------------------------------- */

static void corpus_free(corpus *c) {
    for (int64_t i = 0; i < c->n_names; i++) free(c->names[i]);
    free(c->names);
    for (int64_t i = 0; i < c->n; i++) free(c->e[i].s);
    free(c->e);
    free(c->order);
    free(c->elig);
    free(c->q);
}

nep_status nep_fortunes_lm_build(const char *fortunes_dir, uint64_t seed, double heldout_fraction,
                                 const char *out_dir, nep_fortunes_lm_summary *summary,
                                 nep_err *err) {
    if (summary) *summary = (nep_fortunes_lm_summary){0};
    if (!out_dir) return nep_fail(err, NEP_ERR_ARG, "fortunes corpus: no output directory");
    if (!(heldout_fraction > 0 && heldout_fraction <= 0.5)) /* NaN fails too */
        return nep_fail(err, NEP_ERR_ARG, "fortunes corpus: held-out fraction %g is outside (0, 0.5]",
                        heldout_fraction);
    corpus c = {.dir = fortunes_dir ? fortunes_dir : NEP_FORTUNES_DIR, .out = out_dir,
                .seed = seed, .fraction = heldout_fraction};
    nep_rng rng;
    nep_rng_seed(&rng, seed);
    nep_status s = list_categories(&c, err);
    if (!s) s = read_all(&c, err);
    if (!s) s = dedupe(&c, err);
    if (!s) s = split(&c, &rng, err);
    if (!s) s = find_eligible(&c, err);
    if (!s) s = draw_questions(&c, &rng, err);
    if (!s) s = write_all(&c, err);
    if (!s && summary) *summary = c.sum;
    corpus_free(&c);
    return s;
}
