/* libFuzzer harness: the text-classification readers, nep_glue_load on GLUE's TSV files
 * and nep_fortunes_task_build on fortune category files. The first byte picks what is
 * read, the second is a parameter, the rest holds the files:
 *   0 sst2, 1 qnli, 2 rte   DIR/<split>.tsv is the rest (split: parameter % 3 of train,
 *                           dev, test)
 *   3 fortunes              a field (little-endian u16 length, then the bytes) that is
 *                           DIR/task.json, then the rest is DIR/<split>.tsv
 *   4 fortunes build        a field that is category file "alpha", then the rest is
 *                           category file "beta" (entries separated by lines of "%");
 *                           the task is built with the parameter as seed (an odd seed:
 *                           twice, into two directories)
 * (the first byte is taken mod 5). A loaded data set must hold what text_data.h
 * promises (valid UTF-8 texts, labels in range, text_b exactly for pair tasks, -1 only
 * for unlabelled test rows) and survive nep_text_dataset_split with parameter / 3 rows
 * (at most n) for validation. A task that builds must be byte-identical for the same
 * (odd) seed, and nep_glue_load must read each of its splits with every class present. */
#include "fuzz_common.h"

#include "nepenthe/text_data.h"

static const char *const SPLITS[3] = {"train", "dev", "test"};
static const char *const TASKS[4] = {"sst2", "qnli", "rte", "fortunes"};

static void check_dataset(const nep_text_dataset *d, int task, int split) {
    if (d->n < 0 || d->classes < 2 || !d->label_names) abort();
    if ((task == 1 || task == 2) != (d->text_b != NULL)) abort(); /* pair tasks only */
    for (int k = 0; k < d->classes; k++)
        if (!d->label_names[k] || !d->label_names[k][0]) abort();
    for (int64_t i = 0; i < d->n; i++) {
        const char *a = d->text_a[i];
        if (!a || !a[0] || nep_utf8_invalid_at(a, strlen(a)) >= 0) abort();
        if (d->text_b) {
            const char *b = d->text_b[i];
            if (!b || !b[0] || nep_utf8_invalid_at(b, strlen(b)) >= 0) abort();
        }
        if (d->labels[i] < -1 || d->labels[i] >= d->classes) abort();
        if (d->labels[i] == -1 && split != 2) abort(); /* only test rows may lack labels */
        if (d->index[i] < 0) abort();
    }
}

static void split_dataset(const nep_text_dataset *d, int64_t n_val) {
    if (n_val > d->n) n_val = d->n;
    nep_text_dataset tr, va;
    nep_err err = {0};
    if (nep_text_dataset_split(d, n_val, 7, &tr, &va, &err) != NEP_OK) {
        if (!err.msg[0]) abort();
        return;
    }
    if (tr.n + va.n != d->n || va.n != n_val || tr.classes != d->classes) abort();
    nep_text_dataset_free(&tr);
    nep_text_dataset_free(&va);
}

static void load(const char *dir, int task, int param) {
    nep_text_dataset d;
    nep_err err = {0};
    const int split = param % 3;
    if (nep_glue_load(dir, TASKS[task], SPLITS[split], &d, &err) != NEP_OK) {
        if (!err.msg[0] || d.n || d.text_a || d.label_names) abort(); /* fails empty, says why */
        fuzz_note("load %s %s: %s", TASKS[task], SPLITS[split], err.msg);
        return;
    }
    fuzz_note("load %s %s: %lld rows", TASKS[task], SPLITS[split], (long long)d.n);
    check_dataset(&d, task, split);
    split_dataset(&d, param / 3);
    nep_text_dataset_free(&d);
}

/* The whole file at path, or NULL (and *n = 0) when missing. */
static uint8_t *slurp(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *b = NULL;
    size_t cap = 0;
    for (;;) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *p = realloc(b, cap);
            if (!p) abort();
            b = p;
        }
        size_t k = fread(b + *n, 1, cap - *n, f);
        if (!k) break;
        *n += k;
    }
    fclose(f);
    return b;
}

static void same_file(const char *a_dir, const char *b_dir, const char *name) {
    char pa[512], pb[512];
    size_t na, nb;
    uint8_t *a = slurp(fuzz_path(pa, sizeof pa, a_dir, name), &na);
    uint8_t *b = slurp(fuzz_path(pb, sizeof pb, b_dir, name), &nb);
    if (!a || !b || na != nb || memcmp(a, b, na)) {
        printf("fortunes task: %s differs between two builds with the same seed\n", name);
        fflush(stdout);
        abort();
    }
    free(a);
    free(b);
}

static void build(const char *dir, uint64_t seed) {
    static const char *const cats[] = {"alpha", "beta", NULL};
    char out[2][512];
    nep_err err = {0};
    fuzz_path(out[0], sizeof out[0], dir, "task1");
    fuzz_path(out[1], sizeof out[1], dir, "task2");
    nep_status s = nep_fortunes_task_build(dir, cats, seed, out[0], &err);
    if (s != NEP_OK) {
        if (!err.msg[0]) abort();
        fuzz_note("build: %s", err.msg);
        return;
    }
    fuzz_note("build: ok");
    if (seed & 1) { /* every other seed: each build reads 2 x 64 MiB buffers, slow under ASan */
        if (nep_fortunes_task_build(dir, cats, seed, out[1], &err) != NEP_OK) abort();
        static const char *const files[] = {"train.tsv", "dev.tsv", "test.tsv", "task.json"};
        for (int i = 0; i < 4; i++) same_file(out[0], out[1], files[i]);
    }
    for (int split = 0; split < 3; split++) {
        nep_text_dataset d;
        if (nep_glue_load(out[0], "fortunes", SPLITS[split], &d, &err) != NEP_OK) {
            printf("fortunes task: the built %s split does not load: %s\n", SPLITS[split],
                   err.msg);
            fflush(stdout);
            abort();
        }
        check_dataset(&d, 3, split);
        if (d.classes != 2) abort();
        int seen[2] = {0, 0};
        for (int64_t i = 0; i < d.n; i++) {
            if (d.labels[i] < 0) abort(); /* the task's test split is labelled */
            seen[d.labels[i]] = 1;
        }
        if (!seen[0] || !seen[1]) {
            printf("fortunes task: the %s split lacks a class\n", SPLITS[split]);
            fflush(stdout);
            abort();
        }
        nep_text_dataset_free(&d);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const char *dir = fuzz_dir("glue");
    fuzz_clear(dir); /* nothing of the last input may be read for this one */
    const int mode = data[0] % 5, param = data[1];
    data += 2;
    size -= 2;
    char path[512];
    size_t n;
    if (mode < 3) {
        fuzz_path(path, sizeof path, dir, SPLITS[param % 3]);
        strcat(path, ".tsv");
        fuzz_write(path, data, size);
        load(dir, mode, param);
    } else if (mode == 3) {
        const uint8_t *json = fuzz_take_field(&data, &size, &n);
        fuzz_write(fuzz_path(path, sizeof path, dir, "task.json"), json, n);
        fuzz_path(path, sizeof path, dir, SPLITS[param % 3]);
        strcat(path, ".tsv");
        fuzz_write(path, data, size);
        load(dir, 3, param);
    } else {
        const uint8_t *alpha = fuzz_take_field(&data, &size, &n);
        fuzz_write(fuzz_path(path, sizeof path, dir, "alpha"), alpha, n);
        fuzz_write(fuzz_path(path, sizeof path, dir, "beta"), data, size);
        build(dir, param);
    }
    fuzz_clear(dir);
    return 0;
}
