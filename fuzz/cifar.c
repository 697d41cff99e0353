/* libFuzzer harness: nep_cifar10_load on a directory of CIFAR-10 binary batches. The
 * first byte picks the split: even, the test split (the rest of the input is
 * test_batch.bin); odd, the training split (four little-endian u16 sizes, then the
 * bytes of data_batch_1.bin .. data_batch_4.bin, each cut at its size or where the
 * input ends, and data_batch_5.bin is what is left). */
#include "fuzz_common.h"

#include "nepenthe/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *dir = fuzz_dir("cifar");
    const bool train = data[0] & 1;
    data++, size--;
    char path[512], name[64];
    if (train) {
        size_t len[5];
        for (int i = 0; i < 4; i++) len[i] = fuzz_take_u16(&data, &size);
        for (int i = 0; i < 5; i++) {
            size_t n = i < 4 && len[i] < size ? len[i] : size;
            snprintf(name, sizeof name, "data_batch_%d.bin", i + 1);
            fuzz_write(fuzz_path(path, sizeof path, dir, name), data, n);
            data += n, size -= n;
        }
    } else {
        fuzz_write(fuzz_path(path, sizeof path, dir, "test_batch.bin"), data, size);
    }
    nep_dataset d;
    nep_err err = {0};
    if (nep_cifar10_load(dir, train, &d, &err) == NEP_OK) {
        if (d.n < 1 || d.c != 3 || d.h != 32 || d.w != 32 || d.classes < 1 || d.classes > 10)
            abort();
        volatile uint8_t sink = d.images[(size_t)d.n * 3 * 32 * 32 - 1] ^ d.labels[d.n - 1];
        (void)sink;
        nep_dataset_free(&d);
    } else if (!err.msg[0]) {
        abort();
    }
    return 0;
}
