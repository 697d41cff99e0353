/* Image-folder data sets: ImageFolder trees, Tiny-ImageNet and DomainBed domain folders
 * (PACS, VLCS, SVIRO), decoded from JPEG and PNG files on disk.
 *
 * Why this exists: the results we compare against come from PyTorch pipelines that read
 * these sets through torchvision's ImageFolder and PIL. To train on the same inputs, the
 * listing (class indices, sample order) is torchvision's, and every pixel is PIL's:
 * JPEG through the same libjpeg with the same settings, PNG with PIL's 16-bit and alpha
 * rules, and the resize is PIL's antialiased bilinear filter in the same fixed-point
 * arithmetic. The tests compare against PIL and torchvision themselves.
 *
 * Two ways to use a listing (nep_image_list):
 *   - nep_image_folder_load decodes everything into a nep_dataset (uint8 [n, c, h, w]),
 *     in parallel, for sets that fit in memory (PACS, VLCS, Tiny-ImageNet);
 *   - nep_image_stream decodes batches in worker threads ahead of the training step,
 *     for sets too large to hold decoded (ImageNet).
 * Nothing is downloaded; every error names the file or directory concerned. No global
 * state: every call may run concurrently with others on different objects. */
#ifndef NEPENTHE_IMAGE_FOLDER_H
#define NEPENTHE_IMAGE_FOLDER_H

#include <stdbool.h>
#include <stdint.h>

#include "nepenthe/data.h"
#include "nepenthe/status.h"

/* A warning: a file or directory (path) and what about it (message, no trailing
 * newline). Called on the caller's thread, in listing order, never concurrently. */
typedef void (*nep_image_warn_fn)(void *ctx, const char *path, const char *message);
/* Progress of a load: done of total files decoded (done ends at total). Called on the
 * caller's thread, so a progress bar needs no locking. */
typedef void (*nep_image_progress_fn)(void *ctx, int64_t done, int64_t total);

/* --- listings ------------------------------------------------------------------------ */

/* The files of a data set with their labels, in torchvision's order, so that the CLI can
 * print what it found before decoding anything. All strings are the bytes the file
 * system returned: UTF-8 names pass through unchanged and sort by byte (strcmp), which
 * for valid UTF-8 is the code-point order Python's sorted() gives torchvision.
 * Everything is owned by the list (nep_image_list_free). */
typedef struct nep_image_list {
    int64_t n;              /* files listed */
    char **paths;           /* [n] root joined with the file's path under it */
    int32_t *labels;        /* [n] index into class_names */
    int classes;
    char **class_names;     /* [classes] sorted by strcmp */
    int64_t *class_counts;  /* [classes] files listed per class (0: an empty class, kept) */
    int64_t skipped;        /* non-hidden files left out for their extension (not .jpg,
                               .jpeg, .png in any case), e.g. Tiny-ImageNet's *_boxes.txt */
    int domains;            /* DomainBed: every domain found under root, sorted; else 0 */
    char **domain_names;    /* [domains] */
    int32_t *domain_of;     /* DomainBed: [n] index into domain_names; else NULL */
    char *strings_;         /* internal: storage behind paths */
} nep_image_list;

/* torchvision.datasets.ImageFolder's layout: root/<class>/[subfolders/]<file>.
 * Classes are root's subdirectories sorted by name, labels index that list; a class's
 * files are found recursively and ordered as torchvision orders them (directories by
 * their whole path as a string, then file names), so subfolders work as they do there.
 * Accepted: .jpg .jpeg .png in any case (the part of torchvision's IMG_EXTENSIONS that
 * we decode); other files are skipped and counted in `skipped`. Unlike torchvision,
 * hidden entries (a leading '.': .ipynb_checkpoints, macOS "._x.jpg" files) are skipped
 * at every level, and an empty class folder is kept (count 0, one warning) where
 * torchvision 0.14 raises, so that indices stay those of the class folders on disk.
 * Errors: root missing or not a directory (NEP_ERR_IO), no class folder or no image
 * at all (NEP_ERR_FORMAT), a directory nested more than 64 deep (a symlink loop). */
nep_status nep_image_folder_scan(const char *root, nep_image_warn_fn warn, void *warn_ctx,
                                 nep_image_list *out, nep_err *err);

/* Tiny-ImageNet-200 as extracted from tiny-imagenet-200.zip:
 *   root/wnids.txt                        the class ids, one per line
 *   root/train/<wnid>/images/<file>       split "train" (the folder is read recursively,
 *                                         as ImageFolder on root/train would)
 *   root/val/images/<file>                split "val", labelled by
 *   root/val/val_annotations.txt          lines "file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1"
 * Classes are the wnids sorted by name, which is the order torchvision's ImageFolder
 * gives root/train. Val files are listed by class, then by file name: the order
 * ImageFolder gives the common val/<wnid>/ rearrangement. Errors: missing wnids.txt or
 * train/<wnid> (NEP_ERR_IO), a duplicate wnid, and a val_annotations.txt line with no
 * tab, an unknown wnid, a file missing from val/images or annotated twice
 * (NEP_ERR_FORMAT, naming val_annotations.txt and the line number); split not "train"
 * or "val" (NEP_ERR_ARG). Val files without an annotation are left out with a warning. */
nep_status nep_tiny_imagenet_scan(const char *root, const char *split,
                                  nep_image_warn_fn warn, void *warn_ctx,
                                  nep_image_list *out, nep_err *err);

/* DomainBed's MultipleEnvironmentImageFolder (PACS, VLCS, OfficeHome, SVIRO, ...):
 * root/<domain>/<class>/<file>. Domains are root's subdirectories sorted by name;
 * `domains` selects some by name, comma-separated ("art_painting,cartoon,photo" to
 * train, "sketch" to test), NULL for all. The selected domains are listed in sorted
 * order (whatever the order in `domains`), each as ImageFolder lists it. Classes are the
 * sorted union of class folders over ALL domains under root, not only the selected
 * ones, so that a train and a test listing agree on every index; a selected domain that
 * lacks a class, or has it empty, gets a warning. domain_of tells each file's domain.
 * Errors: a name that is not a domain (NEP_ERR_ARG, listing the available ones), a
 * name given twice or an empty name (NEP_ERR_ARG), and those of nep_image_folder_scan. */
nep_status nep_domainbed_scan(const char *root, const char *domains,
                              nep_image_warn_fn warn, void *warn_ctx,
                              nep_image_list *out, nep_err *err);

void nep_image_list_free(nep_image_list *l);

/* --- decoding ------------------------------------------------------------------------ */

/* What each file becomes, as torchvision's transforms on the PIL image that
 * ImageFolder's loader returns (Image.open(f).convert("RGB")):
 *   channels 3: that RGB image. JPEG through libjpeg with PIL's settings (islow DCT,
 *     fancy upsampling; CMYK JPEGs inverted and converted as PIL does); PNG: palettes
 *     expanded, gray replicated, alpha dropped without compositing (as convert("RGB")
 *     does), 16-bit RGB(A) and gray+alpha samples reduced to their high byte, and 16-bit
 *     gray (PIL mode "I") clipped to 0..255, as PIL does;
 *   channels 1: then convert("L"): L = (19595 R + 38470 G + 7471 B + 32768) >> 16
 *     (identity on gray files);
 *   resize > 0: Resize(resize): the shorter side becomes resize, the longer
 *     int(resize * long / short); resize_h, resize_w > 0: Resize((resize_h, resize_w)).
 *     Both are PIL's Image.resize(BILINEAR): a triangle filter widened by the
 *     downscale factor (antialiasing), horizontal pass then vertical, each rounded to
 *     8 bits, in PIL's 22-bit fixed point: pixels equal PIL's;
 *   crop > 0: then CenterCrop(crop): offsets round((H - crop) / 2) (half to even, as
 *     Python's round), and zero padding where the image is smaller than crop.
 * Channels are converted before the resize (Grayscale then Resize), so that one plane
 * is resized instead of three. Format is detected from the bytes, not the extension
 * (ImageNet holds a PNG named .JPEG). Any libjpeg warning (truncated data, corrupt
 * entropy-coded data, extraneous bytes) is taken as corruption and refused, where PIL
 * accepts a complete file whose data is damaged (it refuses truncated files, as we
 * do): with skip_bad such files are left out and named, so a set may lose a few files
 * that torchvision would have read. PNG: a bad CRC in any chunk before the image data,
 * bad zlib data and truncation are refused (PIL refuses them too); libpng's other
 * warnings (e.g. a known-incorrect sRGB profile) are ignored, as PIL ignores them. */
typedef struct nep_image_opts {
    int channels;            /* 3 (RGB) or 1 (L); 0 means 3 */
    int resize;              /* > 0: shorter side; 0: none */
    int resize_h, resize_w;  /* both > 0: exact size (not with resize); 0: none */
    int crop;                /* > 0: center crop side, after the resize; 0: none */
} nep_image_opts;

/* Decodes one file as opts say into *chw (malloc'd [c, h, w]; caller frees) and its
 * shape. Errors: unreadable file (NEP_ERR_IO), not a JPEG or PNG, corrupt or truncated
 * (NEP_ERR_FORMAT), bad opts (NEP_ERR_ARG); every message names path. */
nep_status nep_image_read(const char *path, const nep_image_opts *opts, uint8_t **chw,
                          int *c, int *h, int *w, nep_err *err);

/* --- in-memory load ------------------------------------------------------------------ */

typedef struct nep_image_load_opts {
    int threads;                     /* decoding threads; 0: every CPU this process may use */
    bool skip_bad;                   /* leave out files that fail to decode (see below) */
    nep_image_warn_fn warn;          /* skipped files (path, reason); may be NULL */
    void *warn_ctx;
    nep_image_progress_fn progress;  /* may be NULL */
    void *progress_ctx;
    int64_t *index;                  /* NULL, or [list->n]: row i of the result is
                                        list file index[i] (useful with skip_bad) */
} nep_image_load_opts;

/* Decodes every file of list into out: images [n, c, h, w] uint8 in listing order,
 * labels [n], classes = list->classes. The result is the same bytes whatever the
 * thread count (each file lands at its index). Every output must have one size: with
 * crop or resize_h/resize_w it is fixed, otherwise it is the first file's, and a file
 * of another size fails the load (NEP_ERR_SHAPE, naming the first such file in listing
 * order and saying to pass a resize or a crop). A file that cannot be read or decoded
 * fails the load (NEP_ERR_FORMAT or NEP_ERR_IO naming the first such file in listing
 * order) unless skip_bad, which leaves it out (n shrinks, labels stay aligned) and
 * reports it through warn after decoding, in listing order. Labels are uint8 in
 * nep_dataset: more than 256 classes is NEP_ERR_UNSUPPORTED (use nep_image_stream). */
nep_status nep_image_folder_load(const nep_image_list *list, const nep_image_opts *img,
                                 const nep_image_load_opts *opts, nep_dataset *out,
                                 nep_err *err);

/* --- streaming ----------------------------------------------------------------------- */

/* Decodes batches of a listing in worker threads, `depth` batches ahead of the consumer,
 * so that a training step waits only when decoding is slower than training. The caller
 * gives each epoch's order (its own shuffle, e.g. a seeded permutation), so batches are
 * reproducible: the same order gives the same bytes, whatever the thread count.
 *   init    shape: c, h, w from opts (crop, or resize_h/resize_w), otherwise from
 *           decoding the list's first file; batch >= 1, depth >= 1, threads 0: all CPUs.
 *   epoch   starts an epoch over order[0..m) (indices into the list, each < list->n;
 *           usually a permutation of 0..n-1; copied). May be called at any time: work
 *           on the previous epoch is abandoned.
 *   next    copies the next batch into x [b, c, h, w] and y [b] (room for `batch`),
 *           sets *b (the last batch may be short; 0 after the last). A file that fails
 *           to decode fails next() with its error (NEP_ERR_FORMAT or NEP_ERR_IO naming
 *           the path; the first in the batch's order), and every next() after it, until
 *           the next epoch. Labels are int32 because ImageNet has 1000 classes.
 *   free    stops the workers and frees everything (also mid-epoch).
 * The list must outlive the stream. wait_s grows by the time next() blocked waiting
 * for a batch ("the step waited X s on decoding"); `waits` counts those next() calls. */
typedef struct nep_image_stream {
    int c, h, w;          /* per-sample shape */
    int64_t batch;
    int depth, threads;   /* threads: the count actually started */
    double wait_s;        /* total seconds next() waited for decoding */
    int64_t waits;        /* next() calls that had to wait */
    struct nep_image_stream_impl *impl;
} nep_image_stream;

nep_status nep_image_stream_init(nep_image_stream *s, const nep_image_list *list,
                                 const nep_image_opts *img, int64_t batch, int threads,
                                 int depth, nep_err *err);
nep_status nep_image_stream_epoch(nep_image_stream *s, const uint32_t *order, int64_t m,
                                  nep_err *err);
nep_status nep_image_stream_next(nep_image_stream *s, uint8_t *x, int32_t *y, int64_t *b,
                                 nep_err *err);
void nep_image_stream_free(nep_image_stream *s);

/* --- streamed data sets -------------------------------------------------------------- */

/* The files a streamed nep_dataset reads (data.h), shared by the sets split from it. */
typedef struct nep_image_source {
    nep_image_list list;    /* owned */
    nep_image_opts img;
    int threads, depth;     /* of each loader's stream: decoding threads (0: all CPUs)
                               and batches decoded ahead */
    int refs;               /* data sets pointing here; the last one frees it */
} nep_image_source;

/* Makes *out a data set of every file of *list that holds no pixels: its loaders decode
 * batches in worker threads as the training step asks for them, so a set too large to
 * hold decoded (ImageNet's 1.28M images at 224x224 are 193 GB) trains in the memory of
 * `depth` batches. Takes *list over (it is emptied). A batch is the bytes
 * nep_image_folder_load gives for the same files; labels may exceed 255. The shape is
 * img's crop or resize_h/resize_w, or else the first file's: a file of another size, or
 * one that fails to decode, fails the batch holding it with its path (no skipping:
 * that needs every file decoded first). nep_dataset_split and nep_dataset_free work on
 * it; training, evaluation and every pass over it go through nep_loader. Errors: an
 * empty list, bad img, threads < 0, depth outside 1..1024 (NEP_ERR_ARG), the first
 * file's decoding when the size comes from it. */
nep_status nep_image_dataset_stream(nep_image_list *list, const nep_image_opts *img, int threads, int depth,
                                    nep_dataset *out, nep_err *err);

/* nep_normalize_compute of a data set, in memory or streamed (one decoding pass over
 * its files, with the source's threads). */
nep_status nep_image_dataset_normalize(const nep_dataset *d, nep_normalize *out, nep_err *err);

/* For data.c: drops one data set's hold on a source (freed with the last). */
void nep_image_source_release(nep_image_source *s);

#endif
