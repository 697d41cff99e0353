/* One image file to pixels, the way PIL and torchvision make them.
 *
 * JPEG: libjpeg (libjpeg62-turbo, the library Debian's PIL links) with the settings PIL
 * leaves at their defaults: islow DCT, fancy upsampling, no scaling; 1 component out as
 * gray, 3 as RGB, 4 as CMYK, which PIL reads inverted (Adobe's convention, "CMYK;I")
 * and turns into RGB with its cmyk2rgb. The same library and settings give the same
 * pixels. Errors leave libjpeg through our error_exit (longjmp), and every warning is
 * taken as corruption: libjpeg warns, fills gray and carries on for a truncated file or
 * damaged data. (A file cut anywhere, even just before its EOI marker, is refused, as
 * PIL refuses it.) jpeg_finish_decompress is not called: what follows the last scan's
 * data is not read, where PIL reads it but ignores libjpeg's warnings about it.
 *
 * PNG: libpng, with PIL's reading rules (PIL unpacks PNG itself): palettes expanded,
 * 1/2/4-bit gray scaled to 0..255 (0x55, 0x11 multiples, as PIL's L;2 and L;4
 * unpackers), 16-bit RGB, RGBA and gray+alpha samples reduced to their high byte (PIL's
 * RGB;16B, RGBA;16B, LA;16B), 16-bit gray kept as a number and clipped to 0..255 (PIL
 * opens it as mode "I"; convert("RGB") clips), alpha and tRNS ignored (convert("RGB")
 * drops alpha without compositing). A bad CRC in any chunk before the image data
 * refuses the file (PIL checks them all), as do bad zlib data and truncation; libpng's
 * other warnings (e.g. a known-incorrect sRGB profile) are ignored, as PIL ignores them.
 *
 * Resize: Pillow's ImagingResample with the bilinear filter, the path PIL's
 * Image.resize(size, BILINEAR) takes for 8-bit images. Per output pixel a window of
 * input pixels, weighted by a triangle whose support is widened by the downscale factor
 * (so a downscale averages instead of skipping pixels), the weights normalized to sum 1
 * and turned into integers with 22 fractional bits; the sums start at one half and are
 * shifted down and clamped to 0..255. Horizontal pass first (only the rows the vertical
 * pass reads), then vertical, each rounded to 8 bits; a pass whose size does not change
 * is skipped. The coefficients are computed in double with the same expressions in the
 * same order, so they are bit-identical, and the integer sums are exact. */
#include "image_decode.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

/* PIL refuses more pixels than this as a decompression bomb (2 x MAX_IMAGE_PIXELS). */
#define IMG_MAX_PIXELS 178956970LL
/* Largest accepted resize or crop side. */
#define IMG_MAX_SIDE 65500
#define PRECISION_BITS 22

void nep_img_scratch_free(nep_img_scratch *s) {
    free(s->file);
    free(s->pix);
    free(s->row);
    free(s->tmp);
    free(s->res);
    free(s->kk);
    free(s->bounds);
    free(s->acc);
    free(s->rows);
    *s = (nep_img_scratch){0};
}

/* Makes *p hold at least need bytes (contents not kept); 0 on allocation failure. */
static int grow(void *pp, size_t *cap, size_t need) {
    void **p = pp;
    if (need <= *cap && *p) return 1;
    size_t n = need + need / 4 + 64;
    void *q = malloc(n);
    if (!q) return 0;
    free(*p);
    *p = q;
    *cap = n;
    return 1;
}

nep_status nep_img_opts_check(const nep_image_opts *in, nep_image_opts *out, nep_err *err) {
    nep_image_opts o = in ? *in : (nep_image_opts){0};
    if (o.channels == 0) o.channels = 3;
    if (o.channels != 1 && o.channels != 3)
        return nep_fail(err, NEP_ERR_ARG, "image channels %d: must be 3 (RGB) or 1 (grayscale)",
                        o.channels);
    if (o.resize < 0 || o.resize_h < 0 || o.resize_w < 0 || o.crop < 0)
        return nep_fail(err, NEP_ERR_ARG, "image resize %d, resize_h %d, resize_w %d, crop %d: "
                        "sizes cannot be negative", o.resize, o.resize_h, o.resize_w, o.crop);
    if (o.resize > IMG_MAX_SIDE || o.resize_h > IMG_MAX_SIDE || o.resize_w > IMG_MAX_SIDE ||
        o.crop > IMG_MAX_SIDE)
        return nep_fail(err, NEP_ERR_ARG, "image resize or crop above %d pixels", IMG_MAX_SIDE);
    if ((o.resize_h > 0) != (o.resize_w > 0))
        return nep_fail(err, NEP_ERR_ARG, "image resize_h %d and resize_w %d: set both (an "
                        "exact size) or neither", o.resize_h, o.resize_w);
    if (o.resize > 0 && o.resize_h > 0)
        return nep_fail(err, NEP_ERR_ARG, "image resize %d (shorter side) and resize_h x "
                        "resize_w %dx%d (exact size) both set: choose one", o.resize,
                        o.resize_h, o.resize_w);
    *out = o;
    return NEP_OK;
}

/* torchvision's Resize: (h, w) given, or the shorter side to `resize` and the longer to
 * int(resize * long / short) (Python's true division, correctly rounded, then
 * truncation: the same as this double division of exact integers). */
static void resize_size(const nep_image_opts *o, int h, int w, int *rh, int *rw) {
    if (o->resize_h > 0) {
        *rh = o->resize_h;
        *rw = o->resize_w;
    } else if (o->resize > 0) {
        if (w <= h) {
            *rw = o->resize;
            *rh = (int)((double)((int64_t)o->resize * h) / w);
        } else {
            *rh = o->resize;
            *rw = (int)((double)((int64_t)o->resize * w) / h);
        }
    } else {
        *rh = h;
        *rw = w;
    }
}

void nep_img_out_size(const nep_image_opts *o, int h, int w, int *oh, int *ow) {
    if (o->crop > 0) {
        *oh = *ow = o->crop;
        return;
    }
    resize_size(o, h, w, oh, ow);
}

int nep_img_fixed_size(const nep_image_opts *o, int *oh, int *ow) {
    if (o->crop > 0 || o->resize_h > 0) {
        nep_img_out_size(o, 1, 1, oh, ow);
        return 1;
    }
    return 0;
}

/* torchvision's CenterCrop offset along one side: int(round((size - crop) / 2.0)) with
 * Python's round (half to even) when the crop fits; otherwise the image is padded by
 * (crop - size) // 2 before it, returned as a negative offset. */
static int center_offset(int size, int crop) {
    if (crop > size) return -((crop - size) / 2);
    int d = size - crop, half = d / 2;
    if ((d & 1) && (half & 1)) half++;
    return half;
}

int nep_img_threads(int threads, int64_t items) {
    int t = threads;
    if (t <= 0) {
        cpu_set_t set;
        t = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
        if (t <= 0) t = (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    if (t > 256) t = 256;
    if (items < t) t = (int)items;
    return t < 1 ? 1 : t;
}

/* --- reading the file ------------------------------------------------------------------ */

static nep_status read_whole(const char *path, nep_img_scratch *s, size_t *size, nep_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return nep_fail(err, NEP_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return nep_fail(err, NEP_ERR_IO, "%s: not a regular file", path);
    }
    size_t cap = (size_t)st.st_size;
    if (!grow(&s->file, &s->file_cap, cap + 1)) {
        close(fd);
        return nep_fail(err, NEP_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path, cap);
    }
    size_t got = 0;
    for (;;) { /* read to the end, even if the file grew since fstat */
        if (got == s->file_cap) {
            close(fd);
            return nep_fail(err, NEP_ERR_IO, "%s: the file grew while being read", path);
        }
        ssize_t r = read(fd, s->file + got, s->file_cap - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return nep_fail(err, NEP_ERR_IO, "%s: read error: %s", path, strerror(e));
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    *size = got;
    return NEP_OK;
}

/* --- pixel conversions (PIL's Convert.c formulas) --------------------------------------- */

/* convert("L") of an RGB pixel: ITU-R 601-2 luma in 16-bit fixed point. */
static inline uint8_t luma(unsigned r, unsigned g, unsigned b) {
    return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

/* PIL's MULDIV255: a * b / 255, rounded. */
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

static inline uint8_t clip8i(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* One row of n pixels with `in_c` channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA or
 * CMYK) to `out_c` channels (1 or 3). cmyk: in is libjpeg's CMYK, which PIL inverts
 * ("CMYK;I") and converts with cmyk2rgb. */
static void convert_row(const uint8_t *in, int in_c, bool cmyk, uint8_t *out, int out_c, int n) {
    for (int x = 0; x < n; x++, in += in_c) {
        unsigned r, g, b;
        if (cmyk) {
            int c = 255 - in[0], m = 255 - in[1], y = 255 - in[2], nk = in[3]; /* 255 - k */
            r = clip8i(nk - muldiv255(c, nk));
            g = clip8i(nk - muldiv255(m, nk));
            b = clip8i(nk - muldiv255(y, nk));
        } else if (in_c <= 2) {
            r = g = b = in[0];
        } else {
            r = in[0];
            g = in[1];
            b = in[2];
        }
        if (out_c == 3) {
            *out++ = (uint8_t)r;
            *out++ = (uint8_t)g;
            *out++ = (uint8_t)b;
        } else {
            *out++ = in_c <= 2 && !cmyk ? (uint8_t)r : luma(r, g, b);
        }
    }
}

static nep_status too_large(const char *path, int64_t w, int64_t h, nep_err *err) {
    return nep_fail(err, NEP_ERR_FORMAT, "%s: %lldx%lld pixels is more than %lld (PIL refuses "
                    "it too, as a decompression bomb)", path, (long long)w, (long long)h,
                    IMG_MAX_PIXELS);
}

/* --- JPEG -------------------------------------------------------------------------------- */

typedef struct jpeg_fail {
    struct jpeg_error_mgr pub; /* first: libjpeg passes &pub as cinfo->err */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    int warning;
} jpeg_fail;

static void jpeg_on_error(j_common_ptr ci) {
    jpeg_fail *f = (jpeg_fail *)ci->err;
    ci->err->format_message(ci, f->msg);
    longjmp(f->jump, 1);
}

/* Level -1 is a warning (corrupt or missing data): refused. Levels >= 0 are traces. */
static void jpeg_on_message(j_common_ptr ci, int level) {
    if (level >= 0) return;
    jpeg_fail *f = (jpeg_fail *)ci->err;
    ci->err->format_message(ci, f->msg);
    f->warning = 1;
    longjmp(f->jump, 1);
}

static void jpeg_silent(j_common_ptr ci) { (void)ci; }

static nep_status decode_jpeg(const char *path, const uint8_t *data, size_t size, int out_c,
                              nep_img_scratch *s, int *ph, int *pw, nep_err *err) {
    struct jpeg_decompress_struct ci;
    jpeg_fail jf;
    memset(&ci, 0, sizeof ci);
    ci.err = jpeg_std_error(&jf.pub);
    jf.pub.error_exit = jpeg_on_error;
    jf.pub.emit_message = jpeg_on_message;
    jf.pub.output_message = jpeg_silent;
    jf.warning = 0;
    jf.msg[0] = 0;
    if (setjmp(jf.jump)) {
        jpeg_destroy_decompress(&ci);
        return nep_fail(err, NEP_ERR_FORMAT, "%s: %s JPEG: %s", path,
                        jf.warning ? "corrupt or truncated" : "cannot decode", jf.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)size);
    jpeg_read_header(&ci, TRUE);
    const int comps = ci.num_components;
    if (comps != 1 && comps != 3 && comps != 4) {
        jpeg_destroy_decompress(&ci);
        return nep_fail(err, NEP_ERR_FORMAT, "%s: JPEG with %d components (PIL reads 1, 3 or 4)",
                        path, comps);
    }
    ci.out_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
    const int64_t w = ci.image_width, h = ci.image_height;
    if (w * h > IMG_MAX_PIXELS) {
        jpeg_destroy_decompress(&ci);
        return too_large(path, w, h, err);
    }
    if (!grow(&s->pix, &s->pix_cap, (size_t)(w * h * out_c)) ||
        !grow(&s->row, &s->row_cap, (size_t)(w * comps))) {
        jpeg_destroy_decompress(&ci);
        return nep_fail(err, NEP_ERR_NOMEM, "%s: cannot allocate a %lldx%lld image", path,
                        (long long)w, (long long)h);
    }
    jpeg_start_decompress(&ci);
    const bool direct = comps == out_c;
    for (JDIMENSION y = 0; y < ci.output_height;) {
        uint8_t *dst = s->pix + (size_t)y * (size_t)w * (size_t)out_c;
        JSAMPROW row = direct ? dst : s->row;
        JDIMENSION got = jpeg_read_scanlines(&ci, &row, 1);
        if (got != 1) { /* cannot happen with a memory source; refuse rather than loop */
            jpeg_destroy_decompress(&ci);
            return nep_fail(err, NEP_ERR_FORMAT, "%s: corrupt or truncated JPEG: no data for "
                            "row %u", path, (unsigned)y);
        }
        if (!direct) convert_row(s->row, comps, comps == 4, dst, out_c, (int)w);
        y++;
    }
    jpeg_destroy_decompress(&ci);
    *ph = (int)h;
    *pw = (int)w;
    return NEP_OK;
}

/* --- PNG --------------------------------------------------------------------------------- */

typedef struct png_src {
    const uint8_t *data;
    size_t size, pos;
    char msg[256];
} png_src;

static void png_on_error(png_structp p, png_const_charp m) {
    png_src *src = png_get_error_ptr(p);
    snprintf(src->msg, sizeof src->msg, "%s", m);
    png_longjmp(p, 1);
}

static void png_on_warning(png_structp p, png_const_charp m) {
    (void)p;
    (void)m;
}

static void png_on_read(png_structp p, png_bytep out, size_t n) {
    png_src *src = png_get_io_ptr(p);
    if (n > src->size - src->pos) png_error(p, "the file ends early (truncated)");
    memcpy(out, src->data + src->pos, n);
    src->pos += n;
}

static nep_status decode_png(const char *path, const uint8_t *data, size_t size, int out_c,
                             nep_img_scratch *s, int *ph, int *pw, nep_err *err) {
    png_src src = {.data = data, .size = size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error,
                                             png_on_warning);
    if (!png) return nep_fail(err, NEP_ERR_NOMEM, "%s: cannot start libpng", path);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return nep_fail(err, NEP_ERR_NOMEM, "%s: cannot start libpng", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return nep_fail(err, NEP_ERR_FORMAT, "%s: corrupt or truncated PNG: %s", path, src.msg);
    }
    png_set_read_fn(png, &src, png_on_read);
    /* PIL refuses a chunk with a bad CRC before the image data, ancillary or not;
     * libpng would only warn about an ancillary one */
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_read_info(png, info);
    const int64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    const int depth = png_get_bit_depth(png, info), ct = png_get_color_type(png, info);
    if (w * h > IMG_MAX_PIXELS) {
        png_destroy_read_struct(&png, &info, NULL);
        return too_large(path, w, h, err);
    }
    /* 16-bit gray is PIL mode "I": the whole sample, clipped to 0..255 below. */
    const bool gray16 = ct == PNG_COLOR_TYPE_GRAY && depth == 16;
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16 && !gray16) png_set_strip_16(png); /* high byte, as PIL's ;16B unpackers */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int in_c = png_get_channels(png, info);
    const size_t rb = png_get_rowbytes(png, info);
    if (in_c < 1 || in_c > 4 || rb != (size_t)w * (size_t)in_c * (gray16 ? 2 : 1)) {
        png_destroy_read_struct(&png, &info, NULL);
        return nep_fail(err, NEP_ERR_FORMAT, "%s: unexpected PNG layout (color type %d, %d-bit)",
                        path, ct, depth);
    }
    const bool direct = !gray16 && in_c == out_c;
    if (!grow(&s->pix, &s->pix_cap, (size_t)(w * h * out_c)) ||
        (!direct && !grow(&s->row, &s->row_cap, rb * (size_t)h)) ||
        !grow(&s->rows, &s->rows_cap, sizeof(void *) * (size_t)h)) {
        png_destroy_read_struct(&png, &info, NULL);
        return nep_fail(err, NEP_ERR_NOMEM, "%s: cannot allocate a %lldx%lld image", path,
                        (long long)w, (long long)h);
    }
    png_bytep *rows = (png_bytep *)s->rows;
    for (int64_t y = 0; y < h; y++)
        rows[y] = direct ? s->pix + (size_t)y * (size_t)w * (size_t)out_c : s->row + (size_t)y * rb;
    png_read_image(png, rows);
    png_destroy_read_struct(&png, &info, NULL);
    if (!direct)
        for (int64_t y = 0; y < h; y++) {
            uint8_t *dst = s->pix + (size_t)y * (size_t)w * (size_t)out_c;
            const uint8_t *r = s->row + (size_t)y * rb;
            if (gray16) {
                for (int64_t x = 0; x < w; x++) {
                    unsigned v = (unsigned)r[2 * x] << 8 | r[2 * x + 1];
                    uint8_t g = (uint8_t)(v > 255 ? 255 : v);
                    for (int ch = 0; ch < out_c; ch++) *dst++ = g;
                }
            } else {
                convert_row(r, in_c, false, dst, out_c, (int)w);
            }
        }
    *ph = (int)h;
    *pw = (int)w;
    return NEP_OK;
}

/* --- resize (Pillow's ImagingResample, bilinear, 8 bits per channel) -------------------- */

static inline double triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Coefficients of a resize from in to out samples: the number per output sample
 * (ksize), bounds[2 i] = first input sample, bounds[2 i + 1] = how many, and kk[i ksize
 * + k] the fixed-point weights. The same expressions as Pillow's precompute_coeffs and
 * normalize_coeffs_8bpc, so the same doubles and the same integers. */
static int coeff_ksize(int in, int out) {
    double scale = (double)in / out, fs = scale < 1.0 ? 1.0 : scale;
    return (int)ceil(1.0 * fs) * 2 + 1;
}

static void coeffs(int in, int out, int ksize, int *bounds, int32_t *kk, double *w) {
    const double scale = (double)in / out;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 1.0 * filterscale;
    for (int xx = 0; xx < out; xx++) {
        double center = 0.0 + (xx + 0.5) * scale;
        double ww = 0.0;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = triangle((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = kk + (size_t)xx * (size_t)ksize;
        for (int x = 0; x < xmax; x++) {
            if (ww != 0.0) w[x] /= ww;
            k[x] = w[x] < 0 ? (int32_t)(-0.5 + w[x] * (1 << PRECISION_BITS))
                            : (int32_t)(0.5 + w[x] * (1 << PRECISION_BITS));
        }
        for (int x = xmax; x < ksize; x++) k[x] = 0;
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
}

static inline uint8_t clip8(int32_t ss) {
    int32_t v = ss >> PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Rows [y0, y1) of src [*, w, c] resampled horizontally to dst [y1 - y0, ow, c]. */
static void pass_horizontal(const uint8_t *src, int w, int c, int y0, int y1, uint8_t *dst,
                            int ow, int ksize, const int *bounds, const int32_t *kk) {
    const int32_t half = 1 << (PRECISION_BITS - 1);
    for (int y = y0; y < y1; y++) {
        const uint8_t *in = src + (size_t)y * (size_t)w * (size_t)c;
        uint8_t *o = dst + (size_t)(y - y0) * (size_t)ow * (size_t)c;
        for (int xx = 0; xx < ow; xx++) {
            const int xmin = bounds[2 * xx], xmax = bounds[2 * xx + 1];
            const int32_t *k = kk + (size_t)xx * (size_t)ksize;
            const uint8_t *p = in + (size_t)xmin * (size_t)c;
            if (c == 3) {
                int32_t s0 = half, s1 = half, s2 = half;
                for (int x = 0; x < xmax; x++, p += 3) {
                    s0 += p[0] * k[x];
                    s1 += p[1] * k[x];
                    s2 += p[2] * k[x];
                }
                o[0] = clip8(s0);
                o[1] = clip8(s1);
                o[2] = clip8(s2);
                o += 3;
            } else {
                int32_t s0 = half;
                for (int x = 0; x < xmax; x++) s0 += p[x] * k[x];
                *o++ = clip8(s0);
            }
        }
    }
}

/* src [*, rowlen] resampled vertically to dst [oh, rowlen]; acc holds rowlen sums. */
static void pass_vertical(const uint8_t *src, size_t rowlen, uint8_t *dst, int oh, int ksize,
                          const int *bounds, const int32_t *kk, int32_t *acc) {
    const int32_t half = 1 << (PRECISION_BITS - 1);
    for (int yy = 0; yy < oh; yy++) {
        const int ymin = bounds[2 * yy], ymax = bounds[2 * yy + 1];
        const int32_t *k = kk + (size_t)yy * (size_t)ksize;
        for (size_t i = 0; i < rowlen; i++) acc[i] = half;
        for (int y = 0; y < ymax; y++) {
            const uint8_t *in = src + (size_t)(ymin + y) * rowlen;
            const int32_t ky = k[y];
            for (size_t i = 0; i < rowlen; i++) acc[i] += in[i] * ky;
        }
        uint8_t *o = dst + (size_t)yy * rowlen;
        for (size_t i = 0; i < rowlen; i++) o[i] = clip8(acc[i]);
    }
}

/* pix [h, w, c] in s resized to [oh, ow, c]; *out points at the result (s->pix when the
 * size does not change). */
static nep_status resize(const char *path, nep_img_scratch *s, int h, int w, int c, int oh,
                         int ow, const uint8_t **out, nep_err *err) {
    const bool need_h = ow != w, need_v = oh != h;
    if (!need_h && !need_v) {
        *out = s->pix;
        return NEP_OK;
    }
    const int kv = coeff_ksize(h, oh), kh = coeff_ksize(w, ow);
    const size_t nk = (size_t)kv * (size_t)oh + (size_t)kh * (size_t)ow;
    const int maxk = kv > kh ? kv : kh;
    if (!grow(&s->kk, &s->kk_cap, sizeof(int32_t) * nk) ||
        !grow(&s->bounds, &s->bounds_cap, sizeof(int) * 2 * ((size_t)oh + (size_t)ow)) ||
        !grow(&s->acc, &s->acc_cap,
              sizeof(int32_t) * ((size_t)ow * (size_t)c + 2) + sizeof(double) * (size_t)maxk))
        return nep_fail(err, NEP_ERR_NOMEM, "%s: cannot allocate the resize to %dx%d", path, oh, ow);
    int32_t *kk_v = s->kk, *kk_h = s->kk + (size_t)kv * (size_t)oh;
    int *b_v = s->bounds, *b_h = s->bounds + 2 * (size_t)oh;
    /* the weights' doubles go after the accumulators (both scratch, used in turn) */
    double *wbuf = (double *)(void *)(s->acc + (((size_t)ow * (size_t)c + 1) & ~(size_t)1));
    coeffs(h, oh, kv, b_v, kk_v, wbuf);
    const uint8_t *src = s->pix;
    if (need_h) {
        coeffs(w, ow, kh, b_h, kk_h, wbuf);
        const int y0 = b_v[0], y1 = b_v[2 * (oh - 1)] + b_v[2 * (oh - 1) + 1];
        if (!grow(&s->tmp, &s->tmp_cap, (size_t)(y1 - y0) * (size_t)ow * (size_t)c))
            return nep_fail(err, NEP_ERR_NOMEM, "%s: cannot allocate the resize to %dx%d", path, oh, ow);
        pass_horizontal(s->pix, w, c, y0, y1, s->tmp, ow, kh, b_h, kk_h);
        for (int i = 0; i < oh; i++) b_v[2 * i] -= y0;
        src = s->tmp;
    }
    if (!need_v) {
        *out = src;
        return NEP_OK;
    }
    if (!grow(&s->res, &s->res_cap, (size_t)oh * (size_t)ow * (size_t)c))
        return nep_fail(err, NEP_ERR_NOMEM, "%s: cannot allocate the resize to %dx%d", path, oh, ow);
    pass_vertical(src, (size_t)ow * (size_t)c, s->res, oh, kv, b_v, kk_v, s->acc);
    *out = s->res;
    return NEP_OK;
}

/* --- one file ---------------------------------------------------------------------------- */

static const char *sniff_other(const uint8_t *d, size_t n) {
    if (n >= 4 && !memcmp(d, "GIF8", 4)) return "a GIF";
    if (n >= 2 && !memcmp(d, "BM", 2)) return "a BMP";
    if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4)) return "a WebP";
    if (n >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4))) return "a TIFF";
    return NULL;
}

nep_status nep_img_decode(const char *path, const nep_image_opts *o, nep_img_scratch *s,
                          nep_img_result *r, nep_err *err) {
    size_t size = 0;
    NEP_TRY(read_whole(path, s, &size, err));
    const uint8_t *d = s->file;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    int h = 0, w = 0;
    const int c = o->channels;
    if (size == 0) return nep_fail(err, NEP_ERR_FORMAT, "%s: empty file", path);
    if (size >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
        NEP_TRY(decode_jpeg(path, d, size, c, s, &h, &w, err));
    } else if (size >= 8 && !memcmp(d, png_sig, 8)) {
        NEP_TRY(decode_png(path, d, size, c, s, &h, &w, err));
    } else {
        const char *other = sniff_other(d, size);
        if (other)
            return nep_fail(err, NEP_ERR_FORMAT, "%s: %s file: only JPEG and PNG are decoded",
                            path, other);
        return nep_fail(err, NEP_ERR_FORMAT, "%s: not a JPEG or PNG file (it starts with bytes "
                        "%02x %02x %02x %02x)", path, d[0], size > 1 ? d[1] : 0,
                        size > 2 ? d[2] : 0, size > 3 ? d[3] : 0);
    }
    int rh, rw;
    resize_size(o, h, w, &rh, &rw);
    if (rh < 1 || rw < 1 || (int64_t)rh * rw > IMG_MAX_PIXELS)
        return nep_fail(err, NEP_ERR_FORMAT, "%s: a %dx%d image resized to %dx%d: out of range",
                        path, h, w, rh, rw);
    const uint8_t *px = NULL;
    NEP_TRY(resize(path, s, h, w, c, rh, rw, &px, err));
    *r = (nep_img_result){.px = px, .c = c, .h = rh, .w = rw, .oh = rh, .ow = rw};
    if (o->crop > 0) {
        r->oh = r->ow = o->crop;
        r->top = center_offset(rh, o->crop);
        r->left = center_offset(rw, o->crop);
    }
    return NEP_OK;
}

void nep_img_write_chw(const nep_img_result *r, uint8_t *out) {
    const int c = r->c;
    const size_t plane = (size_t)r->oh * (size_t)r->ow;
    /* columns [x0, x1) of the output come from the image; the rest is padding */
    const int x0 = r->left < 0 ? -r->left : 0;
    const int x1 = r->w - r->left < r->ow ? r->w - r->left : r->ow;
    for (int y = 0; y < r->oh; y++) {
        const int sy = y + r->top;
        if (sy < 0 || sy >= r->h || x1 <= x0) {
            for (int ch = 0; ch < c; ch++) memset(out + ch * plane + (size_t)y * r->ow, 0, (size_t)r->ow);
            continue;
        }
        const uint8_t *row = r->px + ((size_t)sy * (size_t)r->w + (size_t)(x0 + r->left)) * (size_t)c;
        uint8_t *o0 = out + (size_t)y * r->ow;
        for (int ch = 0; ch < c; ch++) {
            memset(o0 + ch * plane, 0, (size_t)x0);
            memset(o0 + ch * plane + x1, 0, (size_t)(r->ow - x1));
        }
        const int n = x1 - x0;
        if (c == 3) { /* one pass, three planes: the loop the compiler vectorizes */
            uint8_t *restrict a = o0 + x0, *restrict b = a + plane, *restrict d = b + plane;
            for (int x = 0; x < n; x++) {
                a[x] = row[3 * x];
                b[x] = row[3 * x + 1];
                d[x] = row[3 * x + 2];
            }
        } else {
            memcpy(o0 + x0, row, (size_t)n);
        }
    }
}

nep_status nep_img_size_error(const char *path, const nep_img_result *r, int want_h,
                              int want_w, nep_err *err) {
    return nep_fail(err, NEP_ERR_SHAPE, "%s: this image is %dx%d (height x width) but the data "
                    "set's first is %dx%d: pass a resize to an exact size (resize_h, resize_w) "
                    "or a crop so that all images come out one size", path, r->oh, r->ow,
                    want_h, want_w);
}

nep_status nep_image_read(const char *path, const nep_image_opts *opts, uint8_t **chw,
                          int *c, int *h, int *w, nep_err *err) {
    *chw = NULL;
    nep_image_opts o;
    NEP_TRY(nep_img_opts_check(opts, &o, err));
    nep_img_scratch s = {0};
    nep_img_result r;
    nep_status st = nep_img_decode(path, &o, &s, &r, err);
    if (st == NEP_OK) {
        uint8_t *buf = malloc((size_t)r.c * (size_t)r.oh * (size_t)r.ow);
        if (!buf) {
            st = nep_fail(err, NEP_ERR_NOMEM, "%s: cannot allocate the %dx%d result", path,
                          r.oh, r.ow);
        } else {
            nep_img_write_chw(&r, buf);
            *chw = buf;
            *c = r.c;
            *h = r.oh;
            *w = r.ow;
        }
    }
    nep_img_scratch_free(&s);
    return st;
}
