/* Command-line plumbing shared by the subcommands: option tables with --help,
 * value parsing with messages naming the flag, and output helpers. Only tools/
 * prints and exits. */
#ifndef NEPENTHE_CLI_H
#define NEPENTHE_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "nepenthe/data.h"
#include "nepenthe/model.h"
#include "nepenthe/safetensors.h"
#include "nepenthe/status.h"
#include "nepenthe/text_model.h"
#include "nepenthe/text_train.h"
#include "nepenthe/train.h"

typedef enum { OPT_STR, OPT_INT, OPT_REAL, OPT_FLAG } opt_kind;

typedef struct cli_opt {
    const char *name;    /* without the leading dashes */
    opt_kind kind;
    void *dst;           /* const char **, int64_t *, double *, bool * */
    const char *help;    /* the default, if any, is printed from *dst */
    bool seen;
} cli_opt;

#define OPT_END {NULL, OPT_FLAG, NULL, NULL, false}

/* Parses argv[1..] against opts (terminated by OPT_END). Returns 0 to go on, 1 after
 * printing --help, 2 after printing an error. */
int cli_parse(const char *cmd, const char *usage, cli_opt *opts, int argc, char **argv);
bool cli_seen(const cli_opt *opts, const char *name);

/* "a,b,c" -> values; errors name the flag. Returns count or -1. */
int cli_parse_list(const char *flag, const char *s, int64_t *out, int max);

/* Prints "nepenthe CMD: message" to stderr and returns the process exit code (1). */
int cli_error(const char *cmd, const nep_err *err);
int cli_errorf(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The data set a command reads: --data, --data-dir, and for folders of images how they
 * are decoded (tools/cli_data.c). A checkpoint records them ("data" metadata), and a
 * command on it takes the recorded ones where its own flags leave them unset. */
typedef struct cli_data_opts {
    const char *name, *dir;
    int64_t image_size;         /* image folders: Resize((N, N)); 0: the images' own size */
    const char *domains, *test_domains; /* domainbed: training and held-out domains */
    bool skip_bad;              /* a corrupt image is named and left out, not refused */
    bool stream;                /* image folders: decoded batch by batch, not held in memory */
} cli_data_opts;
#define CLI_DATA_DEFAULT {.name = "fashion-mnist"}
/* The data options, defined once for every command that reads a data set (inside an
 * option table's initializer: seven entries). */
#define DATA_OPTS(d)                                                                           \
    {"data", OPT_STR, &(d)->name, "data set: fashion-mnist, mnist, cifar10, folder (DIR/train and DIR/val, " \
     "torchvision's ImageFolder layout), tiny-imagenet, domainbed (PACS, VLCS, SVIRO: DIR/<domain>/<class>); " \
     "all but fashion-mnist need --data-dir", false},                                           \
    {"data-dir", OPT_STR, &(d)->dir, "directory of the data set's files (default for fashion-mnist: " \
     NEP_FASHION_MNIST_DIR ")", false},                                                       \
    {"image-size", OPT_INT, &(d)->image_size, "image folders: resize every image to NxN (bilinear with " \
     "antialias, as torchvision's Resize((N, N)) on PIL images; 0: keep, all must share a size)", false}, \
    {"domains", OPT_STR, &(d)->domains, "domainbed: training domains, comma-separated (default: all but " \
     "--test-domains)", false},                                                                \
    {"test-domains", OPT_STR, &(d)->test_domains, "domainbed: the held-out domains the test split reads " \
     "(required)", false},                                                                     \
    {"skip-bad-images", OPT_FLAG, &(d)->skip_bad, "image folders: leave out (and name) corrupt or truncated " \
     "files instead of stopping", false},                                                      \
    {"stream", OPT_FLAG, &(d)->stream, "image folders: decode each batch in worker threads ahead of the step " \
     "instead of decoding the whole set into memory first (sets larger than memory, more than 256 classes)", false}
#define DATA_OPTS_COUNT 7

/* --threads, the same in every command. */
#define THREADS_OPT(dst) {"threads", OPT_INT, (dst), "threads (0: all cores)", false}

/* --backend, the same in every command that runs a model; cli_exec_opts turns its value
 * into executor options, or prints why not and returns non-zero. */
#define BACKEND_OPT(dst)                                                                     \
    {"backend", OPT_STR, (dst), "kernels: cpu (OpenBLAS, oneDNN, OpenMP) or ref (float64 " \
     "loops over NCHW, single-threaded: the reference the cpu backend is tested against)", false}
int cli_exec_opts(const char *cmd, const char *backend, nep_exec_opts *out);

/* Model options shared by train and bench. */
/* Room in a command's option table for the model, training and data options together
 * (the tables of train, prune and bench are filled at run time). */
#define CLI_MAX_OPTS 96

typedef struct model_opts {
    const char *model, *hidden, *act, *input, *identity;
    double slope, dropout, width_mult;
    int64_t classes, width;     /* width 0: the model's default (resmlp 256, vit 768, swin 96) */
    bool stem_pool;
    /* vit, swin; unset (0, NULL, -1) keeps torchvision's ViT-B/16 or Swin-T value */
    int64_t patch, window;
    const char *depths, *heads;
    double mlp_ratio, drop_path;
} model_opts;
void model_opts_default(model_opts *m);
/* Appends the model options to an option table at *n. */
void model_opts_table(model_opts *m, cli_opt *opts, int *n);
/* The spec the options describe; --input defaults to 1,28,28 for MLPs and 3,32,32 for
 * conv nets (train then takes the data's shape unless --input was given). */
int model_opts_spec(const char *cmd, const model_opts *m, nep_model_spec *spec);

/* Optimizer, schedule and recipe flags shared by train and prune. */
typedef struct train_flags {
    const char *optimizer, *milestones, *schedule;
    double lr, momentum, wd, gamma, min_lr, warmup_start_factor, label_smoothing, clip_grad_norm, group_lasso;
    int64_t batch, warmup_epochs;
    bool nesterov, augment, no_decay_norms_biases, sync_bn;
} train_flags;
/* The augmentation --augment asks for (random crop after 4-pixel zero padding,
 * horizontal flip), or NULL without it. */
const nep_augment *train_flags_augmentation(const train_flags *t);
void train_flags_default(train_flags *t);
void train_flags_table(train_flags *t, cli_opt *opts, int *n);
/* The recipe the flags describe; its schedule spans `epochs` epochs (train: --epochs,
 * prune: --retrain-epochs, named by epochs_flag in errors): a cosine decays over the
 * epochs after the warm-up. Prints why not and returns non-zero. */
int train_flags_cfg(const char *cmd, const train_flags *t, int64_t epochs, const char *epochs_flag,
                    nep_optim_cfg *cfg);
struct cJSON;
/* Adds to a run's options object the recipe settings that are not off (warm-up, cosine,
 * label smoothing, clipping, the weight-decay exemption): options of runs that use none
 * stay what they were, byte for byte, and their checkpoints still resume. */
void cli_recipe_json(const nep_optim_cfg *cfg, struct cJSON *j);

/* Data: the training or test split of the data set d names. */
int cli_load_data(const char *cmd, const cli_data_opts *d, bool train, nep_dataset *out);
/* d as the "data" metadata of a checkpoint records it: {"name", "image_size", "domains",
 * "test_domains"} (the keys that are set); the caller frees it. */
struct cJSON;
void cli_data_json(const cli_data_opts *d, struct cJSON *j);

/* Fails (printing which) unless d's images have the model's input shape and its labels
 * fit the model's classes. */
int cli_check_data_fits(const char *cmd, const nep_model_spec *spec, const nep_dataset *d);

/* The splits a checkpoint was trained with: train and val from the training files
 * (the split recorded under "data" in its metadata), test from the test files. Fails
 * (printing why, naming ckpt) when the checkpoint's normalization does not cover the
 * data's channels. */
typedef struct cli_data {
    nep_dataset full, train, val, test;
} cli_data;
int cli_load_splits(const char *cmd, const char *ckpt, const nep_safetensors *meta,
                    const nep_model_spec *spec, const nep_normalize *norm, const cli_data_opts *d,
                    cli_data *out);
void cli_data_free(cli_data *d);
/* The split named "train", "val" or "test", or NULL (after printing why). */
const nep_dataset *cli_split(const char *cmd, const cli_data *d, const char *name);

/* Files: mkdir -p; rewrite a JSON Lines file atomically keeping the lines whose `key`
 * is <= max (the lines a killed run logged past its last checkpoint go; prints errors);
 * append one line, flushed and fsync'd. Return 0, or non-zero (errno set). */
int cli_mkdirs(const char *path);
int cli_trim_jsonl(const char *cmd, const char *path, const char *key, int64_t max);
int cli_append_line(const char *path, const char *line);

/* A generator's state as 64 hex digits (malloc'd), what a checkpoint records for
 * --resume, and back: 0, or -1 for anything but 64 hex digits of a valid state. */
char *cli_rng_hex(const nep_rng *r);
int cli_rng_from_hex(const char *hex, nep_rng *r);

/* Sets OpenMP and OpenBLAS threads (0 = leave the defaults). */
void cli_set_threads(int64_t n);

/* Progress with percent, img/s, loss and ETA: on a terminal one line rewritten in place,
 * elsewhere (a log) a line every 30 s. */
typedef struct cli_progress {
    bool tty;
    const char *label;
    const char *unit;   /* of the rate: "img/s" when NULL, "seq/s" for text */
    double last;
} cli_progress;
void cli_progress_cb(void *ctx, int64_t done, int64_t total, double loss, double seconds);
void cli_progress_end(cli_progress *p);

/* Text models. Whether path is a directory (a Hugging Face folder, not a checkpoint
 * file). The classifier in folder dir for sequences of max_length tokens, and its
 * tokenizer: with labels (n_labels names; 0: the config's), a classifier for them (the
 * architecture *ForSequenceClassification), initialized from rng (NULL: zeros) where the
 * folder has no tensor, which rep counts (required: an error); a Llama decoder (no
 * labels) for a Llama config; a folder without weights (not required) is a new model,
 * all of it from rng; the folder's
 * masks.safetensors, if any, applied (cli_text_write_folder). With mapped (not NULL), a
 * Llama's bfloat16 matrices are mapped from the folder's files, not copied
 * (nep_llama_build_mapped): *mapped receives the open weights, which the caller closes
 * after freeing g. The split of a task's
 * TSV files, tokenized (its first max_rows rows; 0: all) into t (NULL: the rows
 * only). Each prints why not and
 * returns non-zero. */
bool cli_is_hf_folder(const char *path);
int cli_text_model_open(const char *cmd, const char *dir, int64_t max_length, int n_labels,
                        const char *const *labels, nep_rng *rng, bool required, nep_hf_config *cfg,
                        nep_graph *g, nep_tokenizer **tok, nep_text_load_report *rep, nep_hf_weights **mapped);
int cli_text_split(const char *cmd, const char *task, const char *dir, const char *split, const nep_tokenizer *tok,
                   int64_t max_length, int64_t max_rows, nep_text_dataset *d, nep_text_tensors *t);
/* g as a folder transformers loads (dir/config.json, model.safetensors and the tokenizer's
 * files copied from tokenizer_from), its pruning masks beside it in dir/masks.safetensors
 * ("<param>_mask", U8; and in its metadata "identity", the GELU layers a structural
 * baseline made the identity; nothing: the file removed), which cli_text_model_open reads
 * back. Each file atomic; print why not and return non-zero. */
int cli_text_write_folder(const char *cmd, const char *dir, const nep_hf_config *cfg, const nep_graph *g,
                          const char *tokenizer_from);

/* A training run's checkpoint at path (cli_run.c): g's parameters, opt's state, and the
 * epochs done, rng's state and the run's options (JSON text) in its metadata; written
 * atomically. Resuming reads them back and refuses a checkpoint written with other
 * options. Each prints why not and returns non-zero. */
int cli_run_save(const char *cmd, const char *path, const nep_graph *g, const nep_optim *opt, int64_t epoch,
                 const nep_rng *rng, const char *options);
int cli_run_resume(const char *cmd, const char *path, nep_graph *g, nep_optim *opt, const char *options,
                   int64_t *epoch, nep_rng *rng);

/* Subcommands. */
int cmd_train(int argc, char **argv);
/* train, prune and entropy over data-parallel ranks (comm; NULL: one process), as nepenthe-mpi
 * runs them: rank 0 alone prints and writes files. */
int cli_train(int argc, char **argv, const nep_comm *comm);
int cli_prune(int argc, char **argv, const nep_comm *comm);
int cli_entropy(int argc, char **argv, const nep_comm *comm);
/* bad (non-zero: this rank failed) summed over comm's ranks, so that an error one rank
 * met (rank 0's, writing a file) stops every rank at the same point; non-zero: stop. */
int64_t cli_any_failed(const nep_comm *comm, int64_t bad);
/* Refuses (prints why, returns non-zero) ranks that differ from rank 0 in the n bytes at
 * data: options, data, weights (nep_comm_agree). */
int cli_ranks_agree(const char *cmd, const nep_comm *comm, const void *data, int64_t n, const char *what);
/* The same for a data set's samples: its labels, or a streamed set's file rows. */
int cli_ranks_agree_samples(const char *cmd, const nep_comm *comm, const nep_dataset *d, const char *what);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_entropy(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_collapse(int argc, char **argv);
int cmd_theory(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_lm_train(int argc, char **argv);
int cmd_lm_corpus(int argc, char **argv);
int cmd_lm_eval(int argc, char **argv);
int cmd_lm_prune(int argc, char **argv);
int cmd_lm_bench(int argc, char **argv);
int cmd_lm_collapse(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_sharpness(int argc, char **argv);

/* A per-sample shape as "16x32x32". */
void cli_shape_str(char *buf, size_t n, const nep_shape *s);

struct cJSON;
/* Whether v is a JSON number holding an integer in [lo, hi): converting anything else
 * from a file (1e300, -1, 2.5) to an integer type is undefined or silently wrong. */
bool cli_json_integer(const struct cJSON *v, double lo, double hi);
struct nep_layer_states;
/* One entropy layer as JSON (with per-neuron entropies and counts if detail). */
struct cJSON *cli_layer_json(const nep_graph *g, const struct nep_layer_states *l, double entropy,
                             bool detail);

#endif
