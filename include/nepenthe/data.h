/* Data sets, splits, normalization and the batch loader.
 * Images are stored as uint8 N x C x H x W; labels as uint8 (class index). */
#ifndef NEPENTHE_DATA_H
#define NEPENTHE_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "nepenthe/real.h"
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

void nep_dataset_free(nep_dataset *d);

/* Splits src into train and val, val holding n_val samples chosen by a seeded
 * permutation (the same seed gives the same split). Both outputs own copies. */
nep_status nep_dataset_split(const nep_dataset *src, int64_t n_val, uint64_t seed,
                             nep_dataset *train, nep_dataset *val, nep_err *err);

/* Per-channel mean and (population) std of d's pixels scaled to [0, 1]. */
void nep_normalize_compute(const nep_dataset *d, nep_normalize *out);

/* Iterates over a data set in batches. With shuffle, each nep_loader_epoch draws a
 * new permutation from the rng passed in; without, the order is 0..n-1. */
typedef struct nep_loader {
    const nep_dataset *data;
    nep_normalize norm;
    int64_t batch;
    bool shuffle;
    bool drop_last;     /* skip a final partial batch */
    uint32_t *order;    /* [n] */
    nep_real *lut;      /* [c, 256]: normalized value of each pixel value, per channel */
    int64_t pos;
} nep_loader;

nep_status nep_loader_init(nep_loader *l, const nep_dataset *d, const nep_normalize *norm,
                           int64_t batch, bool shuffle, bool drop_last, nep_err *err);
/* Starts an epoch: resets the position and, with shuffle, reshuffles with rng. */
void nep_loader_epoch(nep_loader *l, nep_rng *rng);
/* Fills x [b, c, h, w] with normalized pixels and y [b] with labels for the next
 * b <= batch samples; returns b, or 0 at the end of the epoch. */
int64_t nep_loader_next(nep_loader *l, nep_real *x, int32_t *y);
/* Number of batches one epoch yields. */
int64_t nep_loader_batches(const nep_loader *l);
void nep_loader_free(nep_loader *l);

#endif
