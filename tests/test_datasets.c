/* test_datasets.c — datasets/: IDX loading (plain, gzip) and its errors,
 * splits, batches with normalisation and augmentation. Synthetic IDX files are
 * written to test_tmpdir; the real Fashion-MNIST is checked when installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "test.h"
#include "../datasets/datasets.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

static const char *tmp_path(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", test_tmpdir, name);
    return buf;
}

static int has(const char *needle) {
    return strstr(apq_last_error(), needle) != NULL;
}

/* Write raw bytes, gzip-compressed when gz. */
static void write_bytes(const char *path, int gz, const uint8_t *p, size_t n) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        CHECK(f != NULL);
        if (!f) return;
        CHECK(n == 0 || gzwrite(f, p, (unsigned)n) == (int)n);
        CHECK(gzclose(f) == Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        if (!f) return;
        CHECK(fwrite(p, 1, n, f) == n);
        fclose(f);
    }
}

/* An IDX file: magic, ndim dims, then `len` payload bytes. */
static void write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int ndim,
                      const uint8_t *data, size_t len) {
    size_t hdr = 4 + 4 * (size_t)ndim;
    uint8_t *buf = malloc(hdr + len);
    uint32_t words[4] = {magic, ndim > 0 ? dims[0] : 0, ndim > 1 ? dims[1] : 0,
                         ndim > 2 ? dims[2] : 0};
    for (int i = 0; i <= ndim; i++)
        for (int b = 0; b < 4; b++) buf[4 * i + b] = (uint8_t)(words[i] >> (24 - 8 * b));
    if (len) memcpy(buf + hdr, data, len);
    write_bytes(path, gz, buf, hdr + len);
    free(buf);
}

/* n images of h x w with pixel (i, p) = (7*i + p + 1) % 256, labels i % k. */
static void write_set(const char *img, const char *lab, int gz, int n, int h, int w, int k) {
    size_t px = (size_t)h * w;
    uint8_t *x = malloc((size_t)n * px), *y = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        for (size_t p = 0; p < px; p++) x[i * px + p] = (uint8_t)((7 * i + p + 1) % 256);
        y[i] = (uint8_t)(i % k);
    }
    write_idx(img, gz, 0x803, (uint32_t[]){n, h, w}, 3, x, (size_t)n * px);
    write_idx(lab, gz, 0x801, (uint32_t[]){n}, 1, y, (size_t)n);
    free(x);
    free(y);
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

TEST(data_load_plain_and_gzip) {
    char img[600], lab[600];
    for (int gz = 0; gz < 2; gz++) {
        tmp_path(img, sizeof img, gz ? "i.gz" : "i.idx");
        tmp_path(lab, sizeof lab, gz ? "l.gz" : "l.idx");
        write_set(img, lab, gz, 5, 3, 4, 3);
        struct dataset d;
        CHECK(idx_load(&d, img, lab) == APQ_OK);
        CHECK(d.n == 5 && d.h == 3 && d.w == 4 && d.n_classes == 3);
        if (d.n == 5) {
            CHECK(d.images[0] == 1 && d.images[11] == 12);
            CHECK(d.images[2 * 12 + 5] == 7 * 2 + 5 + 1);
            CHECK(d.labels[0] == 0 && d.labels[4] == 1 && d.labels[2] == 2);
        }
        dataset_free(&d);
        CHECK(d.images == NULL && d.n == 0);
        dataset_free(&d);
    }
    /* a gzip file without .gz in its name is decompressed too */
    tmp_path(img, sizeof img, "gz-named-plain");
    tmp_path(lab, sizeof lab, "l2.idx");
    write_set(img, lab, 1, 4, 2, 2, 2);
    struct dataset d;
    CHECK(idx_load(&d, img, lab) == APQ_OK && d.n == 4 && d.n_classes == 2);
    dataset_free(&d);
}

TEST(data_load_errors) {
    char img[600], lab[600], bad[600];
    struct dataset d;
    tmp_path(img, sizeof img, "i.gz");
    tmp_path(lab, sizeof lab, "l.gz");
    write_set(img, lab, 1, 6, 4, 4, 2);
    uint8_t px[6 * 16] = {0};

    /* corrupt magic */
    tmp_path(bad, sizeof bad, "magic.gz");
    write_idx(bad, 1, 0x804, (uint32_t[]){6, 4, 4}, 3, px, sizeof px);
    CHECK(idx_load(&d, bad, lab) == APQ_EFORMAT);
    CHECK(has(bad) && has("bad magic 0x00000804"));
    CHECK(d.images == NULL && d.n == 0);
    /* images and labels swapped */
    CHECK(idx_load(&d, lab, img) == APQ_EFORMAT);
    CHECK(has(lab) && has("labels file"));

    /* wrong dims */
    tmp_path(bad, sizeof bad, "dims0.idx");
    write_idx(bad, 0, 0x803, (uint32_t[]){6, 0, 4}, 3, px, 0);
    CHECK(idx_load(&d, bad, lab) == APQ_EFORMAT);
    CHECK(has(bad) && has("0x4"));
    tmp_path(bad, sizeof bad, "dimsbig.idx");
    write_idx(bad, 0, 0x803, (uint32_t[]){1, 2000, 4}, 3, px, sizeof px);
    CHECK(idx_load(&d, bad, lab) == APQ_EFORMAT);
    CHECK(has(bad) && has("2000x4"));

    /* count mismatch */
    tmp_path(bad, sizeof bad, "l5.gz");
    write_idx(bad, 1, 0x801, (uint32_t[]){5}, 1, px, 5);
    CHECK(idx_load(&d, img, bad) == APQ_EFORMAT);
    CHECK(has(img) && has(bad) && has("6 images") && has("5 labels"));

    /* a single class */
    tmp_path(bad, sizeof bad, "l1class.idx");
    write_idx(bad, 0, 0x801, (uint32_t[]){6}, 1, px, 6);
    CHECK(idx_load(&d, img, bad) == APQ_EFORMAT);
    CHECK(has(bad) && has("2 classes"));

    /* truncated plain file: exact byte counts in the message */
    tmp_path(bad, sizeof bad, "short.idx");
    write_idx(bad, 0, 0x803, (uint32_t[]){6, 4, 4}, 3, px, 50);
    CHECK(idx_load(&d, bad, lab) == APQ_EFORMAT);
    CHECK(has(bad) && has("truncated: expected 96 bytes of images, got 50"));

    /* more data than the header says */
    tmp_path(bad, sizeof bad, "long.idx");
    write_idx(bad, 0, 0x803, (uint32_t[]){5, 4, 4}, 3, px, sizeof px);
    CHECK(idx_load(&d, bad, lab) == APQ_EFORMAT);
    CHECK(has(bad));

    /* truncated gzip: cut the compressed bytes of a real-sized file */
    tmp_path(bad, sizeof bad, "cut.gz");
    {
        char full[600];
        tmp_path(full, sizeof full, "full.gz");
        int n = 2000;
        uint8_t *x = malloc((size_t)n * 64);
        uint32_t s = 1;
        for (int i = 0; i < n * 64; i++) x[i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 24);
        write_idx(full, 1, 0x803, (uint32_t[]){n, 8, 8}, 3, x, (size_t)n * 64);
        free(x);
        long size = file_size(full);
        CHECK(size > 1000);
        FILE *f = fopen(full, "rb");
        uint8_t *z = malloc((size_t)size);
        CHECK(f && fread(z, 1, (size_t)size, f) == (size_t)size);
        if (f) fclose(f);
        write_bytes(bad, 0, z, (size_t)size / 2);
        char lab2[600];
        tmp_path(lab2, sizeof lab2, "l2000.gz");
        write_idx(lab2, 1, 0x801, (uint32_t[]){n}, 1, z, (size_t)n);
        CHECK(idx_load(&d, full, lab2) == APQ_OK);
        dataset_free(&d);
        CHECK(idx_load(&d, bad, lab2) == APQ_EFORMAT);
        CHECK(has(bad) && has("truncated: expected 128000 bytes of images, got"));
        /* cut inside the 8-byte trailer: all data present, the CRC/length check fails */
        write_bytes(bad, 0, z, (size_t)size - 3);
        CHECK(idx_load(&d, bad, lab2) == APQ_EFORMAT);
        CHECK(has(bad));
        /* a flipped byte in the deflate stream */
        z[size / 2] ^= 0x55;
        write_bytes(bad, 0, z, (size_t)size);
        CHECK(idx_load(&d, bad, lab2) == APQ_EFORMAT);
        CHECK(has(bad));
        free(z);
    }

    /* garbage in a .gz name */
    tmp_path(bad, sizeof bad, "garbage.gz");
    write_bytes(bad, 0, (const uint8_t *)"hello, this is no gzip at all", 29);
    CHECK(idx_load(&d, bad, lab) == APQ_EFORMAT);
    CHECK(has(bad) && has("not gzip"));

    /* missing file */
    tmp_path(bad, sizeof bad, "nope-images.gz");
    CHECK(idx_load(&d, bad, lab) == APQ_EIO);
    CHECK(has(bad) && has("dataset-fashion-mnist") && has("DATA_DIR"));
    tmp_path(bad, sizeof bad, "nope-labels.gz");
    CHECK(idx_load(&d, img, bad) == APQ_EIO);
    CHECK(has(bad));
    CHECK(d.images == NULL && d.labels == NULL);
}

/* Found by fuzz/fuzz_idx.c: a 32-byte file whose header claims 2^31 - 1
 * images of 1024 x 1024 is truncated, and says so, without first allocating
 * the 2 PiB it claims (the reader grows its buffer with the data it reads). */
TEST(data_load_huge_claim) {
    char img[600], lab[600], bad[600];
    struct dataset d;
    tmp_path(img, sizeof img, "i.idx");
    tmp_path(lab, sizeof lab, "l.idx");
    write_set(img, lab, 0, 6, 4, 4, 2);
    uint8_t px[16] = {0};
    for (int gz = 0; gz < 2; gz++) {
        tmp_path(bad, sizeof bad, gz ? "huge.gz" : "huge.idx");
        write_idx(bad, gz, 0x803, (uint32_t[]){0x7fffffff, 1024, 1024}, 3, px, sizeof px);
        CHECK(idx_load(&d, bad, lab) == APQ_EFORMAT);
        CHECK(has(bad) && has("truncated") && has("got 16"));
        CHECK(d.images == NULL && d.n == 0);
    }
    /* a file of many growth steps (64 KiB, doubling) still loads whole */
    tmp_path(bad, sizeof bad, "big.gz");
    tmp_path(lab, sizeof lab, "big-l.gz");
    write_set(bad, lab, 1, 3000, 28, 28, 10);
    CHECK(idx_load(&d, bad, lab) == APQ_OK);
    CHECK(d.n == 3000 && d.images[2999 * 784 + 783] == (uint8_t)((7 * 2999 + 783 + 1) % 256));
    dataset_free(&d);
}

TEST(data_load_dir) {
    char a[700], b[700], dir[600];
    snprintf(dir, sizeof dir, "%s/fm", test_tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(a, sizeof a, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(b, sizeof b, "%s/train-labels-idx1-ubyte", dir); /* plain, no .gz */
    write_set(a, b, 1, 12, 5, 5, 4);
    struct dataset tr, te;
    CHECK(idx_load_dir(dir, &tr, &te) == APQ_EIO);
    CHECK(has("t10k-images-idx3-ubyte.gz") && has(dir) && has("DATA_DIR"));
    snprintf(a, sizeof a, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(b, sizeof b, "%s/t10k-labels-idx1-ubyte.gz", dir);
    write_set(a, b, 1, 4, 5, 5, 3); /* test labels use classes 0..2 */
    CHECK(idx_load_dir(dir, &tr, &te) == APQ_OK);
    CHECK(tr.n == 12 && te.n == 4 && tr.h == 5 && te.w == 5);
    CHECK(tr.n_classes == 4 && te.n_classes == 4);
    dataset_free(&tr);
    dataset_free(&te);
    /* test images of another size */
    write_set(a, b, 1, 4, 6, 5, 3);
    CHECK(idx_load_dir(dir, &tr, &te) == APQ_EFORMAT);
    CHECK(has(a) && tr.images == NULL && te.images == NULL);
}

/* A dataset of n 1x2 images whose pixels encode the example index. */
static void make_indexed(struct dataset *d, int n) {
    d->n = n;
    d->h = 1;
    d->w = 2;
    d->n_classes = 10;
    d->images = malloc((size_t)n * 2);
    d->labels = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        d->images[2 * i] = (uint8_t)(i & 0xff);
        d->images[2 * i + 1] = (uint8_t)(i >> 8);
        d->labels[i] = (uint8_t)(i % 10);
    }
}

static int example_id(const struct dataset *d, int i) {
    return d->images[2 * i] | d->images[2 * i + 1] << 8;
}

TEST(data_split) {
    struct dataset all, tr, va, tr2, va2, tr3, va3;
    const int n = 1000, n_val = 200;
    make_indexed(&all, n);
    dataset_split(&all, n_val, 0x5eed, &tr, &va);
    CHECK(tr.n == n - n_val && va.n == n_val);
    CHECK(tr.h == 1 && tr.w == 2 && va.n_classes == 10);
    int *seen = calloc((size_t)n, sizeof *seen);
    int in_order = 0;
    for (int i = 0; i < va.n; i++) {
        int id = example_id(&va, i);
        seen[id]++;
        CHECK(va.labels[i] == id % 10); /* labels travel with their images */
        in_order += id == i;
    }
    for (int i = 0; i < tr.n; i++) {
        int id = example_id(&tr, i);
        seen[id]++;
        CHECK(tr.labels[i] == id % 10);
    }
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= seen[i] == 1; /* disjoint and covering */
    CHECK(ok);
    CHECK(in_order < 20); /* shuffled */
    free(seen);

    dataset_split(&all, n_val, 0x5eed, &tr2, &va2);
    CHECK(!memcmp(tr.images, tr2.images, (size_t)tr.n * 2));
    CHECK(!memcmp(va.images, va2.images, (size_t)va.n * 2));
    dataset_split(&all, n_val, 0x5eee, &tr3, &va3);
    CHECK(memcmp(va.images, va3.images, (size_t)va.n * 2) != 0);

    /* the permutation is rng_shuffle_int over 0..n-1 on stream RNG_SPLIT */
    int *perm = malloc((size_t)n * sizeof *perm);
    for (int i = 0; i < n; i++) perm[i] = i;
    struct rng r;
    rng_init(&r, 0x5eed, RNG_SPLIT);
    rng_shuffle_int(&r, perm, (size_t)n);
    rng_free(&r);
    CHECK(example_id(&va, 0) == perm[0] && example_id(&tr, 0) == perm[n_val]);
    free(perm);

    struct dataset h;
    dataset_head(&all, 3, &h);
    CHECK(h.n == 3 && example_id(&h, 2) == 2 && h.labels[2] == 2);
    dataset_free(&h);
    dataset_head(&all, 5000, &h);
    CHECK(h.n == n && !memcmp(h.images, all.images, (size_t)n * 2));
    dataset_free(&h);

    struct dataset *sets[] = {&all, &tr, &va, &tr2, &va2, &tr3, &va3};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) dataset_free(sets[i]);
}

TEST(data_batch_normalise) {
    uint8_t img[2][2][3] = {{{0, 128, 255}, {1, 2, 3}}, {{10, 20, 30}, {40, 50, 60}}};
    uint8_t lab[2] = {7, 3};
    struct dataset d = {
        .n = 2, .h = 2, .w = 3, .n_classes = 10, .images = &img[0][0][0], .labels = lab};
    float x[2 * 6];
    int y[2] = {-1, -1};
    dataset_batch(x, y, &d, (int[]){1, 0}, 2, 0, NULL);
    CHECK(y[0] == 3 && y[1] == 7);
    /* example 0 of the batch is image 1: x[0][1][2] = pixel 60 */
    CHECK_NEAR(x[5], (60.0 / 255.0 - 0.2860) / 0.3530, 1e-5);
    CHECK_NEAR(x[6 + 1], (128.0 / 255.0 - 0.2860) / 0.3530, 1e-5);
    CHECK_NEAR(x[6 + 1], 0.611787, 1e-5);
    CHECK_NEAR(x[6 + 0], -0.810198, 1e-5);
    CHECK_NEAR(x[6 + 2], 2.022663, 1e-5);
}

/* Independent reference: zero-pad by 2, crop h x w at (oy, ox), flip. */
static void ref_augment(uint8_t *out, const uint8_t *in, int h, int w, int oy, int ox, int flip) {
    uint8_t pad[16][16] = {{0}};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) pad[y + 2][x + 2] = in[y * w + x];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t v = pad[y + oy][x + ox];
            out[y * w + (flip ? w - 1 - x : x)] = v;
        }
}

TEST(data_batch_augment) {
    enum { H = 5, W = 6, N = 400 };
    uint8_t img[H * W], lab[1] = {4};
    for (int i = 0; i < H * W; i++) img[i] = (uint8_t)(8 * i + 5); /* distinct, nonzero */
    struct dataset d = {.n = 1, .h = H, .w = W, .n_classes = 5, .images = img, .labels = lab};
    int *idx = calloc(N, sizeof *idx);
    float *x = malloc(sizeof(float) * N * H * W);
    int y[N];
    struct rng r;
    rng_init(&r, 11, RNG_DATA);
    dataset_batch(x, y, &d, idx, N, 1, &r);
    rng_free(&r);

    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - FMNIST_MEAN) / FMNIST_STD;
    int hits[5][5][2] = {{{0}}}, unmatched = 0;
    for (int i = 0; i < N; i++) {
        int found = 0;
        CHECK(y[i] == 4);
        for (int oy = 0; oy < 5 && !found; oy++)
            for (int ox = 0; ox < 5 && !found; ox++)
                for (int fl = 0; fl < 2 && !found; fl++) {
                    uint8_t ref[H * W];
                    ref_augment(ref, img, H, W, oy, ox, fl);
                    int same = 1;
                    for (int p = 0; p < H * W; p++) same &= x[i * H * W + p] == lut[ref[p]];
                    if (same) {
                        hits[oy][ox][fl]++;
                        found = 1;
                    }
                }
        unmatched += !found;
    }
    CHECK(unmatched == 0);
    int distinct = 0, flips = 0;
    for (int oy = 0; oy < 5; oy++)
        for (int ox = 0; ox < 5; ox++) {
            distinct += (hits[oy][ox][0] > 0) + (hits[oy][ox][1] > 0);
            flips += hits[oy][ox][1];
        }
    CHECK(distinct >= 45); /* 50 equally likely transforms, 400 draws */
    CHECK(flips > N / 2 - 60 && flips < N / 2 + 60);

    /* the documented draw order: dy, dx, flip per example */
    rng_init(&r, 11, RNG_DATA);
    int mism = 0;
    for (int i = 0; i < N; i++) {
        int dy = (int)rng_int(&r, 5) - 2, dx = (int)rng_int(&r, 5) - 2;
        int fl = rng_uniform(&r) < 0.5;
        uint8_t ref[H * W];
        ref_augment(ref, img, H, W, dy + 2, dx + 2, fl);
        for (int p = 0; p < H * W; p++) mism += x[i * H * W + p] != lut[ref[p]];
    }
    rng_free(&r);
    CHECK(mism == 0);

    /* a hand-checked case: shift by (+1, -2) then flip maps out[0][0] to in[1][W-1-2] */
    uint8_t ref[H * W];
    ref_augment(ref, img, H, W, 3, 0, 1);
    CHECK(ref[0] == img[1 * W + (W - 1) - 2]);
    CHECK(ref[(H - 1) * W + 0] == 0); /* row H-1+1 is padding */
    free(idx);
    free(x);
}

TEST(data_real_fashion_mnist) {
    struct stat st;
    if (stat(FMNIST_DIR, &st) != 0) {
        fprintf(stderr, "  note: %s absent, skipping data_real_fashion_mnist\n", FMNIST_DIR);
        return;
    }
    struct dataset tr, te;
    int rc = idx_load_dir(FMNIST_DIR, &tr, &te);
    CHECK(rc == APQ_OK);
    if (rc < 0) {
        fprintf(stderr, "  %s\n", apq_last_error());
        return;
    }
    CHECK(tr.n == 60000 && te.n == 10000);
    CHECK(tr.h == 28 && tr.w == 28 && te.h == 28 && te.w == 28);
    CHECK(tr.n_classes == 10 && te.n_classes == 10);
    int count[10] = {0}, tcount[10] = {0};
    for (int i = 0; i < tr.n; i++) count[tr.labels[i]]++;
    for (int i = 0; i < te.n; i++) tcount[te.labels[i]]++;
    for (int c = 0; c < 10; c++) CHECK(count[c] == 6000 && tcount[c] == 1000);
    /* mean pixel matches the normalisation constant */
    double sum = 0;
    for (size_t i = 0; i < (size_t)tr.n * 784; i++) sum += tr.images[i];
    CHECK_NEAR(sum / (tr.n * 784.0) / 255.0, FMNIST_MEAN, 5e-4);
    dataset_free(&tr);
    dataset_free(&te);
}
