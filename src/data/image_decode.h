/* One image file to pixels, PIL's way (include/nepenthe/image_folder.h says which way):
 * decode (JPEG, PNG), channel conversion, PIL's antialiased bilinear resize, center
 * crop. Internal to the image-folder loader and stream. */
#ifndef NEPENTHE_IMAGE_DECODE_H
#define NEPENTHE_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "nepenthe/image_folder.h"

/* Growable buffers reused from file to file by one thread, so that decoding a data set
 * does not call malloc per image. Zero-initialize; nep_img_scratch_free releases. */
typedef struct nep_img_scratch {
    uint8_t *file;  size_t file_cap;   /* the file's bytes */
    uint8_t *pix;   size_t pix_cap;    /* decoded pixels, [h, w, c] */
    uint8_t *row;   size_t row_cap;    /* decoder rows before conversion */
    uint8_t *tmp;   size_t tmp_cap;    /* horizontal pass of the resize */
    uint8_t *res;   size_t res_cap;    /* resized pixels, [h, w, c] */
    int32_t *kk;    size_t kk_cap;     /* resize coefficients, 22-bit fixed point */
    int *bounds;    size_t bounds_cap; /* resize windows: first input index, length */
    int32_t *acc;   size_t acc_cap;    /* vertical pass accumulators */
    void **rows;    size_t rows_cap;   /* row pointers for libjpeg / libpng */
} nep_img_scratch;

void nep_img_scratch_free(nep_img_scratch *s);

/* Checks opts and fills in the default channel count. NEP_ERR_ARG naming the field. */
nep_status nep_img_opts_check(const nep_image_opts *in, nep_image_opts *out, nep_err *err);

/* The output shape opts give an image of h x w: *oh x *ow (crop, or the resize, or h x w). */
void nep_img_out_size(const nep_image_opts *o, int h, int w, int *oh, int *ow);

/* The output shape when it does not depend on the image (crop, or resize_h/resize_w):
 * returns 1 and sets *oh, *ow; 0 when it does. */
int nep_img_fixed_size(const nep_image_opts *o, int *oh, int *ow);

/* One file after decoding, channel conversion and resize, before the crop: px points
 * into the scratch buffers ([h, w, c], valid until the scratch is used again); the
 * output is oh x ow, taken at row top, column left of px (negative: zero padding). */
typedef struct nep_img_result {
    const uint8_t *px;
    int c, h, w;
    int oh, ow, top, left;
} nep_img_result;

/* Reads, decodes and resizes path (opts already checked) into r. Errors name path:
 * NEP_ERR_IO (cannot read), NEP_ERR_FORMAT (not JPEG/PNG, corrupt, truncated, too
 * large), NEP_ERR_NOMEM. */
nep_status nep_img_decode(const char *path, const nep_image_opts *o, nep_img_scratch *s,
                          nep_img_result *r, nep_err *err);

/* Writes r's output window as [c, oh, ow] to out, zero where it pads. */
void nep_img_write_chw(const nep_img_result *r, uint8_t *out);

/* The error for a file whose output is not want_h x want_w: NEP_ERR_SHAPE naming path
 * and both sizes, and saying to pass a resize or a crop. */
nep_status nep_img_size_error(const char *path, const nep_img_result *r, int want_h,
                              int want_w, nep_err *err);

/* Worker threads for a request of `threads` (0: every CPU this process may run on) and
 * `items` pieces of work: at least 1, at most items and 256. */
int nep_img_threads(int threads, int64_t items);

#endif
