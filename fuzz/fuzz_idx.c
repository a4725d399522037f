/* fuzz_idx.c — the IDX reader (datasets/idx.c idx_load), gzip and plain.
 * Input layout: byte 0 flags (bit 0: the images file is named *.gz, bit 1:
 * the labels file is), bytes 1-2 the images file's length n (little endian),
 * then n bytes of images file, the rest the labels file. Property of an
 * accepted pair: counts and sizes are positive and every label is below
 * n_classes. */
#include "fuzz.h"

/* The reader itself, with zlib's buffers at 4 KiB instead of its 256 KiB:
 * the same code paths, without two large allocations (mmap + munmap under
 * ASan) per input, which held the harness to 500 inputs/s. */
#include <zlib.h>
#define gzbuffer(file, size) gzbuffer(file, 4096)
#include "../datasets/idx.c"
#undef gzbuffer

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_runtime_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    size_t n = (size_t)data[1] | (size_t)data[2] << 8;
    if (n > size - 3) n = size - 3;
    const char *images = fuzz_write_file(0, data[0] & 1 ? "-images.gz" : "-images", data + 3, n);
    const char *labels =
        fuzz_write_file(1, data[0] & 2 ? "-labels.gz" : "-labels", data + 3 + n, size - 3 - n);
    struct dataset d;
    if (fuzz_note("idx_load", idx_load(&d, images, labels)) == APQ_OK) {
        if (d.n < 1 || d.h < 1 || d.w < 1 || d.n_classes < 2 || d.n_classes > 256)
            fuzz_fail("accepted n=%d h=%d w=%d classes=%d", d.n, d.h, d.w, d.n_classes);
        for (int i = 0; i < d.n; i++)
            if (d.labels[i] >= d.n_classes) fuzz_fail("label %d >= %d", d.labels[i], d.n_classes);
        dataset_free(&d);
    }
    return 0;
}
