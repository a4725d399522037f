/* main.c — runs model.c (an integer-only model exported by apq) on the
 * Fashion-MNIST test files and prints its top-1 accuracy. Copied as is by
 * apq's exporter (quant/qmodel_emit.c) beside model.c and model.h:
 *
 *     cc -std=c11 -O2 -o model main.c model.c
 *     ./model [DIR] [--logits N] [--images N]
 *
 * DIR holds t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (default
 * /usr/share/datasets/fashion-mnist); a file missing there is read from its
 * .gz through `gzip -dc` (no zlib). Prints "accuracy 0.8534 (8534/10000)";
 * --logits N first prints the int32 logits of the first N images, one line
 * each, space separated; --images N runs the first N images only. A missing
 * or malformed file: one line on stderr, exit 1; a bad option: exit 2. */
#define _POSIX_C_SOURCE 200809L /* popen */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static const char *prog = "model";

static void fail(int status, const char *what, const char *why) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, why);
    exit(status);
}

/* The whole of dir/name, or of dir/name.gz decompressed by gzip; *n bytes,
 * malloc'd. */
static unsigned char *read_file(const char *dir, const char *name, size_t *n) {
    char path[4096], cmd[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    int piped = 0;
    if (!f) {
        snprintf(path, sizeof path, "%s/%s.gz", dir, name);
        FILE *g = fopen(path, "rb");
        if (!g)
            fail(1, path,
                 "missing (nor without .gz); give the folder of the Fashion-MNIST test "
                 "files as the first argument");
        fclose(g);
        if (strchr(path, '\'')) fail(1, path, "a path with a quote; use the plain file");
        snprintf(cmd, sizeof cmd, "gzip -dc '%s'", path);
        if (!(f = popen(cmd, "r"))) fail(1, path, "cannot run gzip -dc; gunzip it first");
        piped = 1;
    }
    size_t cap = 1 << 20, len = 0, got;
    unsigned char *buf = malloc(cap);
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0)
        if ((len += got) == cap) {
            unsigned char *b = realloc(buf, cap *= 2);
            if (!b) free(buf);
            buf = b;
        }
    if (!buf) fail(1, path, "out of memory");
    int bad = ferror(f);
    bad |= piped ? pclose(f) != 0 : fclose(f) != 0;
    if (bad) fail(1, path, piped ? "gzip -dc failed (not a gzip file?)" : "read failed");
    *n = len;
    return buf;
}

static unsigned long be32(const unsigned char *p) {
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}

static long parse_count(const char *opt, const char *v) {
    char *end;
    long n = v ? strtol(v, &end, 10) : -1;
    if (!v || *end || n < 0) {
        fprintf(stderr, "%s: %s: expected a count >= 0\n", prog, opt);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    long n_logits = 0, n_images = -1;
    if (argc > 0) prog = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--logits") || !strcmp(argv[i], "--images")) {
            long v = parse_count(argv[i], i + 1 < argc ? argv[i + 1] : NULL);
            *(argv[i][2] == 'l' ? &n_logits : &n_images) = v;
            i++;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "%s: %s: unknown option; usage: %s [DIR] [--logits N] [--images N]\n",
                    prog, argv[i], prog);
            return 2;
        } else
            dir = argv[i];
    }
    size_t ni, nl;
    unsigned char *img = read_file(dir, "t10k-images-idx3-ubyte", &ni);
    unsigned char *lab = read_file(dir, "t10k-labels-idx1-ubyte", &nl);
    const unsigned long side = APQ_MODEL_IN_SIZE, px = side * side;
    if (ni < 16 || be32(img) != 0x803 || be32(img + 8) != side || be32(img + 12) != side ||
        ni != 16 + be32(img + 4) * px)
        fail(1, dir, "t10k-images-idx3-ubyte is not an IDX file of images of the model's size");
    if (nl < 8 || be32(lab) != 0x801 || be32(lab + 4) != be32(img + 4) || nl != 8 + be32(lab + 4))
        fail(1, dir, "t10k-labels-idx1-ubyte is not an IDX label file for the images");
    long n = (long)be32(img + 4), correct = 0;
    if (n_images >= 0 && n_images < n) n = n_images;
    for (long i = 0; i < n; i++) {
        int32_t logits[APQ_MODEL_N_CLASSES];
        int top = apq_model_run(img + 16 + (size_t)i * px, logits);
        correct += top == lab[8 + i];
        if (i < n_logits) {
            for (int c = 0; c < APQ_MODEL_N_CLASSES; c++)
                printf("%ld%c", (long)logits[c], c + 1 < APQ_MODEL_N_CLASSES ? ' ' : '\n');
        }
    }
    printf("accuracy %.4f (%ld/%ld)\n", n ? (double)correct / n : 0.0, correct, n);
    free(img);
    free(lab);
    return 0;
}
