/* libFuzzer harness: nep_idx_load on an image file and a label file, each gzipped or
 * plain (the reader tells them apart by content). Input: a little-endian u16 n, then
 * n bytes of the image file (fewer if the input ends first), then the label file. */
#include "fuzz_common.h"

#include "nepenthe/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_dir("idx");
    char images[512], labels[512];
    fuzz_path(images, sizeof images, dir, "images-idx3-ubyte");
    fuzz_path(labels, sizeof labels, dir, "labels-idx1-ubyte");
    size_t n = fuzz_take_u16(&data, &size);
    if (n > size) n = size;
    fuzz_write(images, data, n);
    fuzz_write(labels, data + n, size - n);
    nep_dataset d;
    nep_err err = {0};
    if (nep_idx_load(images, labels, &d, &err) == NEP_OK) {
        /* what the loader and the split rely on */
        if (d.n < 1 || d.c != 1 || d.h < 1 || d.w < 1 || d.classes < 1 || d.classes > 256)
            abort();
        volatile uint8_t sink = d.images[(size_t)d.n * (size_t)d.h * (size_t)d.w - 1] ^
                                d.labels[d.n - 1];
        (void)sink;
        nep_dataset_free(&d);
    } else if (!err.msg[0]) {
        abort();
    }
    return 0;
}
