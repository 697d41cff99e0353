/* A language-modelling corpus and a multiple-choice task from Debian's `fortunes`
 * package: small, real, English text that is installed with one apt-get and needs no
 * download, for a decoder to be trained, pruned and evaluated on (perplexity on the
 * held-out file; accuracy on the multiple-choice task, through the MMLU reader and
 * prompt of nepenthe/mmlu.h, so the same evaluation code runs on it).
 *
 * Source. Every plain category file of the fortunes directory (NEP_FORTUNES_DIR of
 * nepenthe/text_data.h when NULL): every regular file whose name holds no '.', so the
 * index files (*.dat) and the *.u8 links to the plain files are skipped; a link with a
 * plain name is read as the file it points to. Names are sorted by bytes, so nothing
 * depends on readdir's order. Debian 12 (fortunes 1:1.99.1-7.3) has 43 such files.
 *
 * Entries. As the fortunes task reads and cleans them (text_data.h; the same code):
 * separated by lines holding only "%", one line each (overstrikes resolved, control
 * characters removed, whitespace runs -> one space, trimmed). Dropped and counted:
 * entries that are not valid UTF-8 and entries empty after cleaning. No length limit:
 * a language model should see the long poems too. A text found more than once, in one
 * file or several, is kept once: its first occurrence in sorted-file order.
 *
 * Split. One nep_rng seeded with `seed` makes every draw, in this order: a shuffle of
 * the deduplicated entries (in reading order); the first round(heldout_fraction * n)
 * (halves up) are held out, the rest train, each file in the shuffled order; then, per
 * multiple-choice question in order, its distractors and its answer's position.
 *
 * The multiple-choice task ("fortunes"), built from held-out entries only, so that a
 * model trained on train.txt has never seen its text. Eligible: held-out entries of at
 * least NEP_FORTUNES_LM_MC_MIN_WORDS words (split on single spaces, as cleaning leaves
 * them). With w words, the question is the first floor(w/2) words and the true choice
 * the remaining words (no leading space); the three distractors are the second halves,
 * by the same rule, of three other eligible entries drawn uniformly without replacement,
 * skipping any whose text equals the true choice or a distractor already drawn; the
 * answer's letter is drawn uniformly. The first NEP_FORTUNES_LM_MC_DEV eligible entries
 * (in held-out order) make the dev file (the k-shot examples), the rest the test file.
 *
 * Files written under out_dir (created if missing; its parent must exist), each
 * atomically (nepenthe/file.h), byte-identical for the same inputs and seed:
 *   train.txt, heldout.txt   one entry per line, LF-terminated, UTF-8
 *   mc/data/dev/fortunes_dev.csv, mc/data/test/fortunes_test.csv
 *                            MMLU's CSV layout (nepenthe/mmlu.h: question, A, B, C, D,
 *                            answer letter; RFC 4180 quoting; LF row ends), so that
 *                            nep_mmlu_load_split(out_dir/mc/data, split, "fortunes")
 *                            reads them
 *   mc/README.txt            what the task is, the seed, the counts
 *   corpus.json              seed, held-out fraction, source directory, the summary's
 *                            counts and the files read; written last, so its presence
 *                            says the rest is complete
 * Nothing is written before every check has passed.
 *
 * Errors: NEP_ERR_IO when the directory cannot be read or holds no category file, or a
 * file cannot be read or written (messages name the path); NEP_ERR_ARG for no out_dir,
 * a held-out fraction outside (0, 0.5] (named), or held-out entries too few or too alike
 * for the multiple-choice task (fewer than NEP_FORTUNES_LM_MC_MIN eligible, or fewer
 * than four distinct second halves); NEP_ERR_FORMAT for a category file name that is not
 * valid UTF-8 (corpus.json could not hold it). */
#ifndef NEPENTHE_FORTUNES_LM_H
#define NEPENTHE_FORTUNES_LM_H

#include <stdint.h>

#include "nepenthe/status.h"
#include "nepenthe/text_data.h"

/* An entry needs this many words to be cut into a question and a continuation that
 * each carry some meaning (six words at least). */
#define NEP_FORTUNES_LM_MC_MIN_WORDS 12
/* Dev questions: lm-evaluation-harness's MMLU prompt is 5-shot. */
#define NEP_FORTUNES_LM_MC_DEV 5
/* Eligible held-out entries needed: the dev questions and at least as many to test. */
#define NEP_FORTUNES_LM_MC_MIN 10

typedef struct nep_fortunes_lm_summary {
    int64_t files;                 /* category files read */
    int64_t entries_read;          /* entries in them, before any drop */
    int64_t dropped_invalid_utf8, dropped_empty;
    int64_t duplicates;            /* later occurrences of a text, dropped */
    int64_t train, heldout;        /* entries written to each file */
    int64_t train_bytes, heldout_bytes; /* each file's size, line ends included */
    int64_t mc_dev, mc_test;       /* multiple-choice questions written */
} nep_fortunes_lm_summary;

/* Builds the corpus and the task as described above. fortunes_dir NULL means
 * NEP_FORTUNES_DIR; heldout_fraction is e.g. 0.05. summary may be NULL; it is zeroed
 * first and filled on success. */
nep_status nep_fortunes_lm_build(const char *fortunes_dir, uint64_t seed, double heldout_fraction,
                                 const char *out_dir, nep_fortunes_lm_summary *summary,
                                 nep_err *err);

#endif
