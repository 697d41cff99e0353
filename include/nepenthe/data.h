/* Data sets, splits, normalization and the batch loader.
 * Images are stored as uint8 N x C x H x W; labels as uint8 (class index). A data set
 * too large to hold decoded is streamed from its image files instead (source). */
#ifndef NEPENTHE_DATA_H
#define NEPENTHE_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "nepenthe/real.h"
#include "nepenthe/comm.h"
#include "nepenthe/rng.h"
#include "nepenthe/status.h"

#define NEP_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define NEP_MAX_CHANNELS 4

typedef struct nep_dataset {
    int64_t n;          /* samples */
    int c, h, w;        /* per-sample shape */
    int classes;        /* 1 + largest label */
    uint8_t *images;    /* [n, c, h, w] */
    uint8_t *labels;    /* [n] */
    /* Or, streamed (nep_image_dataset_stream, nepenthe/image_folder.h): images and labels
     * are NULL, sample i is file rows[i] of source's listing, and each loader decodes
     * its batches in worker threads as it reads them. */
    struct nep_image_source *source; /* shared by the sets split from one, counted */
    uint32_t *rows;     /* [n] */
} nep_dataset;

/* Per-channel normalization applied to pixels scaled to [0, 1]: (x/255 - mean) / std. */
typedef struct nep_normalize {
    int c;
    float mean[NEP_MAX_CHANNELS];
    float std[NEP_MAX_CHANNELS];
} nep_normalize;

/* Reads an IDX image file (magic 0x00000803, u8, 3 dims: n, rows, cols) and an IDX
 * label file (0x00000801, u8, 1 dim), each gzipped or plain (detected by content).
 * Errors name the file: missing (NEP_ERR_IO), bad magic, truncated data, count
 * mismatch between images and labels (NEP_ERR_FORMAT). */
nep_status nep_idx_load(const char *images_path, const char *labels_path,
                        nep_dataset *out, nep_err *err);

/* Fashion-MNIST's train (60000) or test (10000) split from dir, or from
 * NEP_FASHION_MNIST_DIR when dir is NULL. Accepts the standard file names
 * (train-images-idx3-ubyte[.gz], ...). A missing directory's message names the
 * path and the Debian package dataset-fashion-mnist. */
nep_status nep_fashion_mnist_load(const char *dir, bool train, nep_dataset *out,
                                  nep_err *err);

/* CIFAR-10's binary version: the five training batches data_batch_1.bin ..
 * data_batch_5.bin (all five required) or test_batch.bin, read from dir (the extracted
 * cifar-10-batches-bin directory). Each file is a sequence of 3073-byte records: a
 * label byte (0..9), then 1024 red, 1024 green and 1024 blue pixels, each plane 32x32
 * row-major. Any whole number of records per file is accepted (the official files hold
 * 10000). The result is [n, 3, 32, 32] in file order, classes = 1 + largest label.
 * Nothing is downloaded. Errors name the file: missing or unreadable (NEP_ERR_IO, with a
 * hint to point --data-dir at cifar-10-batches-bin), empty, a size that is not a whole
 * number of records, or a label above 9 (NEP_ERR_FORMAT, naming the record). */
#define NEP_CIFAR10_C 3
#define NEP_CIFAR10_H 32
#define NEP_CIFAR10_W 32
#define NEP_CIFAR10_CLASSES 10
nep_status nep_cifar10_load(const char *dir, bool train, nep_dataset *out, nep_err *err);

void nep_dataset_free(nep_dataset *d);

/* Splits src into train and val, val holding n_val samples chosen by a seeded
 * permutation (the same seed gives the same split). Both outputs own copies. */
nep_status nep_dataset_split(const nep_dataset *src, int64_t n_val, uint64_t seed,
                             nep_dataset *train, nep_dataset *val, nep_err *err);

/* The seeded split behind nep_dataset_split and nep_text_dataset_split: *in_val[i] is 1
 * for the n_val of n samples that go to validation (the first n_val of a seeded
 * permutation of 0..n-1), 0 for the rest; the caller frees *in_val. NEP_ERR_ARG unless
 * 0 <= n_val < n <= UINT32_MAX. */
nep_status nep_split_members(int64_t n, int64_t n_val, uint64_t seed, uint8_t **in_val, nep_err *err);

/* Per-channel mean and (population) std of d's pixels scaled to [0, 1]; d in memory
 * (a streamed set: nep_image_dataset_normalize). */
void nep_normalize_compute(const nep_dataset *d, nep_normalize *out);
/* The same statistics from per-channel counts of byte values (hist[ch][v]: pixels of
 * channel ch with value v), for callers that see the pixels a batch at a time. */
void nep_normalize_from_histograms(int c, const int64_t (*hist)[256], nep_normalize *out);

/* Training-time augmentation, as torchvision's RandomCrop(size=(h, w), padding=pad)
 * followed by RandomHorizontalFlip(p=0.5), both applied to the raw pixels before
 * normalization: the image is padded with pixel value 0 on every side (so a padded
 * pixel normalizes to (0 - mean) / std), an h x w window is cut at an offset drawn
 * uniformly from [0, 2*pad] in each direction, and the result is mirrored left-right
 * with probability 1/2. pad 0 and flip false is no augmentation. */
typedef struct nep_augment {
    int pad;    /* zero padding on each side, 0 <= pad <= NEP_AUGMENT_MAX_PAD */
    bool flip;  /* random horizontal flip */
} nep_augment;
#define NEP_AUGMENT_MAX_PAD 1024

/* Iterates over a data set in batches. With shuffle, each nep_loader_epoch draws a
 * new permutation from the rng passed in; without, the order is 0..n-1. On a streamed
 * data set the loader runs its own nep_image_stream (the source's threads and depth)
 * over the epoch's order, and its batches are the bytes the in-memory load gives. */
struct nep_image_stream;
typedef struct nep_loader {
    const nep_dataset *data;
    nep_normalize norm;
    int64_t batch;
    bool shuffle;
    bool drop_last;     /* skip a final partial batch */
    uint32_t *order;    /* [n] */
    nep_real *lut;      /* [c, 256]: normalized value of each pixel value, per channel */
    int64_t pos;
    nep_augment augment; /* in effect when augment_rng is set */
    nep_rng *augment_rng; /* not owned; NULL: no augmentation */
    /* streamed data sets only: */
    struct nep_image_stream *stream;
    uint8_t *bytes;     /* [batch, c, h, w]: the stream's current batch */
    int32_t *labels;    /* [batch] */
    uint32_t *files;    /* [n] the epoch's order as file indices */
    bool streaming;     /* the stream runs this epoch's order */
    nep_err err;        /* why nep_loader_next returned -1 */
} nep_loader;

nep_status nep_loader_init(nep_loader *l, const nep_dataset *d, const nep_normalize *norm,
                           int64_t batch, bool shuffle, bool drop_last, nep_err *err);
/* Starts an epoch: resets the position and, with shuffle, reshuffles with rng. */
void nep_loader_epoch(nep_loader *l, nep_rng *rng);
/* Fills x [b, c, h, w] with normalized pixels and y [b] with labels for the next
 * b <= batch samples; returns b, or 0 at the end of the epoch, or -1 with l->err set
 * when a streamed file fails to decode (in memory it cannot fail). */
int64_t nep_loader_next(nep_loader *l, nep_real *x, int32_t *y);
/* The same for one rank's rows of the next batch: [*lo, *hi) of its b rows
 * (nep_comm_share; c NULL: all), decoded into x [hi - lo, c, h, w] and y; the other rows
 * are not read, but their augmentation draws are taken, so that the ranks' shares
 * together are the batch one process gets. Returns b, 0 at the end of the epoch, -1 on
 * a decoding failure (l->err). A streamed set decodes the whole batch on every rank. */
int64_t nep_loader_next_share(nep_loader *l, const nep_comm *c, nep_real *x, int32_t *y, int64_t *lo, int64_t *hi);
/* Turns augmentation on (a != NULL) or off (a == NULL, or a does nothing) for the
 * following nep_loader_next calls; call it after nep_loader_init, which starts with it
 * off. The loader keeps the rng pointer (it must outlive the loader's use, and may be
 * the generator that shuffles) and draws from it in nep_loader_next, for each sample
 * in batch order: the crop's row offset, its column offset (each when pad > 0), then
 * the flip (when flip is set). So a seed, or a saved rng state, reproduces every
 * augmented batch exactly, whatever the thread count. */
void nep_loader_set_augment(nep_loader *l, const nep_augment *a, nep_rng *rng);
/* Number of batches one epoch yields. */
int64_t nep_loader_batches(const nep_loader *l);
/* Seconds the loader's batches waited on decoding so far (0 in memory). */
double nep_loader_wait_s(const nep_loader *l);
void nep_loader_free(nep_loader *l);

#endif
