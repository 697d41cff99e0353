/* libFuzzer harness: nep_image_read on one JPEG or PNG file (libjpeg-turbo, libpng and
 * our resize and crop). Input: one byte of options (bit 0: grayscale; bits 1-2: no
 * resize, Resize((7, 5)), Resize(6) or Resize(6) + CenterCrop(9)), then the file. */
#include "fuzz_common.h"

#include "nepenthe/image_folder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t flags = data[0];
    char path[512];
    fuzz_path(path, sizeof path, fuzz_dir("image"), "file");
    fuzz_write(path, data + 1, size - 1);
    nep_image_opts o = {.channels = flags & 1 ? 1 : 3};
    switch ((flags >> 1) & 3) {
    case 1: o.resize_h = 7, o.resize_w = 5; break;
    case 2: o.resize = 6; break;
    case 3: o.resize = 6, o.crop = 9; break;
    default: break;
    }
    uint8_t *chw = NULL;
    int c = 0, h = 0, w = 0;
    nep_err err = {0};
    if (nep_image_read(path, &o, &chw, &c, &h, &w, &err) == NEP_OK) {
        /* what the loader relies on: the shape asked for, every byte written */
        if (c != o.channels || h < 1 || w < 1 || (o.resize_h && (h != 7 || w != 5)) || (o.crop && (h != 9 || w != 9)))
            abort();
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)c * (size_t)h * (size_t)w; i++) sum += chw[i];
        volatile unsigned sink = sum;
        (void)sink;
        free(chw);
    } else if (!err.msg[0] || !strstr(err.msg, path)) {
        abort(); /* every error names the file */
    }
    return 0;
}
