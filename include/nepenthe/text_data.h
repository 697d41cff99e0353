/* Text classification data: GLUE's TSV files as distributed, and a real
 * sentence-classification task built from the Debian `fortunes` category files and
 * written in GLUE's SST-2 layout, so that one command trains and evaluates on either.
 *
 * Every string a loader returns is valid UTF-8, NUL-terminated and kept verbatim from
 * the file (quotes, apostrophes and inner spaces included: GLUE's files are read with no
 * quote processing, as csv.QUOTE_NONE in the GLUE baseline and Hugging Face's glue
 * script). */
#ifndef NEPENTHE_TEXT_DATA_H
#define NEPENTHE_TEXT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "nepenthe/rng.h"
#include "nepenthe/status.h"
/* nep_utf8_invalid_at, the check the loaders apply to every string */
#include "nepenthe/utf8.h"

typedef struct nep_text_dataset {
    int64_t n;            /* rows */
    char **text_a;        /* [n] first sentence (SST-2 sentence, QNLI question, RTE sentence1) */
    char **text_b;        /* [n] second sentence (QNLI sentence, RTE sentence2); NULL for
                           * single-sentence tasks */
    int32_t *labels;      /* [n] class index; -1 for an unlabelled (test) row */
    int classes;          /* number of classes of the task, whatever labels occur */
    char **label_names;   /* [classes] label_names[k] is class k's name */
    int64_t *index;       /* [n] the file's `index` column, or the row's number (0-based,
                           * data rows only) where the file has none */
} nep_text_dataset;

/* The task names nep_glue_load accepts (Hugging Face's names for GLUE's tasks). */
#define NEP_GLUE_TASKS "sst2, qnli, rte, fortunes"

/* Reads DIR/<split>.tsv of `task` ("sst2", "qnli", "rte", or "fortunes": the task
 * nep_fortunes_task_build writes) with split "train", "dev" or "test".
 *
 * The file is tab-separated with a header line; columns are found by header name (extra
 * columns are ignored), fields are taken verbatim (no quoting). Columns and labels:
 *   sst2      sentence, label in {0, 1} (names "negative", "positive")
 *   qnli      question, sentence, label in {entailment, not_entailment} -> 0, 1
 *   rte       sentence1, sentence2, label in {entailment, not_entailment} -> 0, 1
 *   fortunes  sentence, label an integer class index; class names and count come from
 *             DIR/task.json ("categories")
 * An `index` column, where present, fills out->index. The label column is required for
 * train and dev and optional for test (GLUE's test files have none: labels are -1; the
 * fortunes task's test.tsv has one). Lines may end in LF, CRLF or CR (as Python's
 * universal newlines), the last line may lack one, a UTF-8 byte order mark at the start
 * is skipped, and blank lines are skipped (as csv.DictReader does).
 *
 * Errors: unknown task or split (NEP_ERR_ARG); a missing or unreadable file (NEP_ERR_IO,
 * naming it); NEP_ERR_FORMAT, naming the file and line (path:line:), for a header
 * lacking a required column or repeating one, a row whose field count differs from the
 * header's, an unknown label, an empty or blank sentence, a bad index, invalid UTF-8 or
 * a NUL byte (naming the column). On failure *out is empty. */
nep_status nep_glue_load(const char *dir, const char *task, const char *split,
                         nep_text_dataset *out, nep_err *err);

void nep_text_dataset_free(nep_text_dataset *d);

/* Splits src into train and val, val holding n_val rows chosen by a seeded permutation
 * (the same permutation as nep_dataset_split for the same n and seed); both keep src's
 * row order and own copies of everything. */
nep_status nep_text_dataset_split(const nep_text_dataset *src, int64_t n_val, uint64_t seed,
                                  nep_text_dataset *train, nep_text_dataset *val,
                                  nep_err *err);

/* --- the fortunes task ---------------------------------------------------------------
 * Debian's `fortunes` package ships one file per category under
 * NEP_FORTUNES_DIR, entries separated by lines holding only "%". The task labels each
 * entry with its category. How it is built (src/data/fortunes_task.c says why):
 *   - each entry becomes one line: backspace overstrikes resolved ("_\bX" -> "X"), other
 *     control characters removed, whitespace runs -> one space, trimmed; entries that
 *     are not valid UTF-8, empty, or longer than NEP_FORTUNES_MAX_BYTES are dropped;
 *   - a text occurring more than once in a category is kept once; a text occurring in
 *     two categories is dropped from both (its label is ambiguous);
 *   - per category, a seeded shuffle puts round(10%) in test, round(10%) in dev and the
 *     rest in train (stratified); each split's rows are then shuffled with the seed;
 *   - out_dir gets train.tsv and dev.tsv (SST-2's "sentence\tlabel"), test.tsv
 *     ("index\tsentence\tlabel": SST-2's test layout plus the label), and task.json
 *     (categories, counts per split and class, drops, seed). nep_glue_load(out_dir,
 *     "fortunes", ...) reads them.
 * categories is a NULL-terminated list of category file names (2 to
 * NEP_FORTUNES_MAX_CATEGORIES, no repeats), or NULL for NEP_FORTUNES_DEFAULT_CATEGORIES;
 * class k is categories[k]. fortunes_dir NULL means
 * NEP_FORTUNES_DIR. out_dir is created if missing (its parent must exist). Files are
 * written atomically; the same inputs and seed give byte-identical files. */
#define NEP_FORTUNES_DIR "/usr/share/games/fortunes"
#define NEP_FORTUNES_MAX_BYTES 1000
#define NEP_FORTUNES_DEFAULT_CATEGORIES \
    "computers", "education", "food", "law", "love", "politics", "science", "sports"
#define NEP_FORTUNES_MAX_CATEGORIES 64
/* Each category needs this many usable entries, so that every split holds each class. */
#define NEP_FORTUNES_MIN_ENTRIES 10

nep_status nep_fortunes_task_build(const char *fortunes_dir, const char *const *categories,
                                   uint64_t seed, const char *out_dir, nep_err *err);

#endif
