/* MMLU (Hendrycks et al., "Measuring Massive Multitask Language Understanding") in its
 * CSV files as distributed (data.tar), the k-shot prompt lm-evaluation-harness builds from
 * them, and a per-subject accuracy report.
 *
 * Files. data.tar unpacks to data/dev, data/val and data/test (and data/auxiliary_train,
 * which is not read here), holding <subject>_<split>.csv, e.g.
 * data/test/high_school_us_history_test.csv. A file has no header; every row is one
 * question with exactly 6 fields:
 *     question, choice A, choice B, choice C, choice D, answer
 * where answer is exactly one of the letters A, B, C, D. Fields are comma-separated and
 * quoted as RFC 4180 (and Python's csv module) do: a field starting with '"' runs to the
 * next lone '"', may hold commas, line breaks and "" (one quote); after the closing quote
 * comes a comma, the end of the line or the end of the file. A '"' inside a field that
 * does not start with one is an ordinary character (as Python's csv.reader takes it).
 * Rows end in LF or CRLF (or a CR ending the file); the last row may lack a line end.
 * Line breaks inside a quoted field are kept byte for byte (a CRLF there stays CRLF, as
 * in the csv.reader over undecoded lines that built the Hugging Face copy cais/mmlu which
 * lm-evaluation-harness reads). Every field is kept verbatim (no trimming); text must be
 * valid UTF-8 and is handled as bytes.
 *
 * Malformed rows are NEP_ERR_FORMAT with a message "<path>:<line>: <problem>", line being
 * the 1-based line where the row starts (lines counted by LF): a field count other than
 * 6, an empty line, an answer other than A/B/C/D, a quoted field never closed, text after
 * a closing quote, an empty or blank question (nothing left after Python's str.strip()),
 * a NUL byte, invalid UTF-8, or a carriage return outside quotes that is not part of a
 * CRLF (Python's csv.reader rejects it too).
 *
 * The prompt, as lm-evaluation-harness builds it for task "mmlu_<subject>" (verified
 * against EleutherAI/lm-evaluation-harness at tags v0.4.0, v0.4.3, v0.4.9.2 and v0.4.11):
 *   - lm_eval/tasks/mmlu/default/_default_template_yaml:
 *       fewshot_split: dev, fewshot_config.sampler: first_n, output_type: multiple_choice,
 *       doc_to_text: "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\n
 *                     C. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:" (one line there),
 *       doc_to_choice: ["A", "B", "C", "D"], doc_to_target: answer, metric acc (mean);
 *     only the question is stripped (Python's str.strip(): Unicode whitespace at both
 *     ends); the choices go in verbatim.
 *   - lm_eval/tasks/mmlu/default/mmlu_<subject>.yaml, written by
 *     lm_eval/tasks/mmlu/_generate_configs.py: description
 *       "The following are multiple choice questions (with answers) about " +
 *       ' '.join(subject.split('_')) + ".\n\n"
 *     i.e. the subject with every underscore replaced by a space.
 *   - lm_eval/api/samplers.py FirstNSampler: the first k rows of the dev split, in file
 *     order (the dev split is not the evaluated one, so no row is dropped).
 *   - lm_eval/api/task.py ConfigurableTask.fewshot_context (and build_qa_turn,
 *     lm_eval/api/utils.py Message in v0.4.11; samplers.py get_context in v0.4.3), with
 *     the defaults target_delimiter " " and fewshot_delimiter "\n\n":
 *       description + for each shot (doc_to_text(shot) + " " + letter + "\n\n")
 *                   + doc_to_text(target)
 *     so a 0-shot prompt is the description followed by the target's text.
 *   - construct_requests: the four continuations scored are target_delimiter + choice:
 *     " A", " B", " C", " D"; acc takes the one of highest log-likelihood.
 *
 * Accuracy. lm-evaluation-harness's group "mmlu" (and the four category groups under it)
 * weights each subject's acc by its question count: default/_mmlu.yaml says
 * weight_by_size: True (v0.4.4 on), which lm_eval/api/metrics.py aggregate_subtask_metrics
 * computes as sum(acc_i * n_i) / sum(n_i) (its default in v0.4.3; v0.4.0's evaluator.py
 * kept the same running size-weighted mean). Nested groups of such means give the micro
 * average over all questions: nep_mmlu_report.acc. The unweighted mean over subjects
 * (acc_macro) is given beside it; the harness does not report it. */
#ifndef NEPENTHE_MMLU_H
#define NEPENTHE_MMLU_H

#include <stdint.h>
#include <stdio.h>

#include "nepenthe/status.h"

#define NEP_MMLU_CHOICES 4

typedef struct nep_mmlu_item {
    char *question;                   /* verbatim from the file (not stripped) */
    char *choices[NEP_MMLU_CHOICES];  /* verbatim: A, B, C, D */
    int answer;                       /* 0..3 for A..D */
    int subject;                      /* index into the set's subjects */
} nep_mmlu_item;

typedef struct nep_mmlu_set {
    int64_t n;
    nep_mmlu_item *items;   /* [n] by subject (in subjects' order), file order within one */
    int n_subjects;
    char **subjects;        /* [n_subjects] file names less "_<split>.csv", sorted by bytes */
} nep_mmlu_set;

/* Reads one CSV file as the questions of `subject` (a set of one subject, which may hold
 * no rows if the file is empty). Errors: NEP_ERR_IO for a missing or unreadable file,
 * NEP_ERR_FORMAT as above (path:line:), NEP_ERR_ARG for an empty subject. On failure
 * *out is empty. */
nep_status nep_mmlu_load_file(const char *path, const char *subject, nep_mmlu_set *out,
                              nep_err *err);

/* Reads root/<split>/<subject>_<split>.csv for split "dev", "val" or "test" (root is the
 * unpacked "data" folder). subject NULL reads every file of the folder whose name ends in
 * "_<split>.csv" (names starting with '.' are skipped), subjects sorted by name; otherwise
 * only that subject's file. Errors as nep_mmlu_load_file; also NEP_ERR_ARG for an unknown
 * split or a subject holding '/', NEP_ERR_IO when the folder cannot be read or holds no
 * such file. On failure *out is empty. */
nep_status nep_mmlu_load_split(const char *root, const char *split, const char *subject,
                               nep_mmlu_set *out, nep_err *err);

void nep_mmlu_set_free(nep_mmlu_set *s);

/* The k-shot prompt for `target` in lm-evaluation-harness's format (above): the
 * description for `subject`, the first k dev questions of `subject` with their answers,
 * then the target ending in "Answer:". dev may be NULL when k is 0. *prompt is a new
 * NUL-terminated string (the caller frees it). NEP_ERR_ARG when k < 0 or dev holds fewer
 * than k questions of the subject (the harness refuses too). */
nep_status nep_mmlu_prompt(const nep_mmlu_set *dev, const char *subject, int k,
                           const nep_mmlu_item *target, char **prompt, nep_err *err);

/* The continuation scored for choice c (0..3) after the prompt: " A", " B", " C", " D". */
const char *nep_mmlu_continuation(int c);

typedef struct nep_mmlu_subject_acc {
    char *subject;
    int64_t n, correct;
    double acc;             /* correct / n; 0 when n is 0 */
} nep_mmlu_subject_acc;

typedef struct nep_mmlu_report {
    int n_subjects;
    nep_mmlu_subject_acc *subjects;  /* [n_subjects] in the set's order */
    int64_t n, correct;
    double acc;             /* micro: correct / n, lm-evaluation-harness's "mmlu" acc */
    double acc_macro;       /* mean of acc over the subjects holding questions */
} nep_mmlu_report;

/* Scores pred[i] (the chosen choice 0..3 of set->items[i], for all n items) against the
 * answers. NEP_ERR_ARG names the first prediction outside 0..3. On failure *out is empty. */
nep_status nep_mmlu_score(const nep_mmlu_set *set, const int *pred, nep_mmlu_report *out,
                          nep_err *err);

/* Writes the report as a text table, columns padded with spaces: a header line
 * "subject correct n acc", one line per subject (its name, correct, n, acc with 4
 * decimals), then "all (micro, by size)" with the totals and acc, and "subjects (macro)"
 * with the subject count and acc_macro. Returns 0 or an errno value. */
int nep_mmlu_report_write(const nep_mmlu_report *r, FILE *f);

void nep_mmlu_report_free(nep_mmlu_report *r);

#endif
