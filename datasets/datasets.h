/* datasets.h — IDX image-classification sets (Fashion-MNIST, MNIST), splits, batches.
 *
 * Reads the four IDX files (gzip-compressed or plain) with full validation:
 * magic number (0x00000803 images, 0x00000801 labels), dimensions, counts that
 * agree between images and labels, truncation, gzip errors, labels < 10 classes.
 * Every failure is one APQ_EFORMAT / APQ_EIO line naming the file and a fix.
 *
 *   struct dataset all, test, train, val;
 *   rc = idx_load_dir(dir, &all, &test);          // train-*.gz and t10k-*.gz
 *   dataset_split(&all, 10000, 0x5eed, &train, &val);
 *   dataset_batch(x, y, &train, idx, 128, 1, &rng); // normalised floats [128][28][28][1]
 */
#ifndef APQ_DATASETS_H
#define APQ_DATASETS_H

#include <stdint.h>

#include "../util/util.h"

/* Per-pixel normalisation of Fashion-MNIST (x/255 - mean)/std. */
#define FMNIST_MEAN 0.2860f
#define FMNIST_STD  0.3530f

struct dataset {
    int n, h, w;     /* n images of h x w, 1 channel */
    int n_classes;   /* max label + 1 (10 for Fashion-MNIST) */
    uint8_t *images; /* [n][h][w], owned */
    uint8_t *labels; /* [n], owned */
};

/* Load an images/labels IDX pair (".gz" decompressed with zlib when the name ends in .gz). */
int idx_load(struct dataset *d, const char *images_path, const char *labels_path);
/* Load dir/train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
 * t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (also without .gz). */
int idx_load_dir(const char *dir, struct dataset *train_all, struct dataset *test);
/* Whether the set loaded from dir fits a network of n_classes outputs and
 * channels x size x size inputs (the space named space_origin): APQ_EFORMAT
 * naming the images file when channels is not 1 (IDX images are grayscale)
 * or the images are not size x size, the labels file when a label is >=
 * n_classes. The test split's labels never exceed the training split's
 * (idx_load_dir). */
int idx_check_fit(const char *dir, const struct dataset *train_all, int n_classes, int channels,
                  int size, const char *space_origin);
void dataset_free(struct dataset *d);
/* Held-out split (copies): a permutation of all->n from `seed`; its first
 * n_val indices form val, the rest train (DESIGN.md §1: 50k / 10k). */
void dataset_split(const struct dataset *all, int n_val, uint64_t seed, struct dataset *train,
                   struct dataset *val);
/* The first n examples of d as a new dataset (copies); n clamped to d->n. */
void dataset_head(const struct dataset *d, int n, struct dataset *out);
/* Fill x [n][h][w][1] (normalised floats) and labels[n] with examples idx[0..n).
 * augment: random crop with 2-pixel zero padding and horizontal flip (p 0.5),
 * drawn from r (may be NULL when augment is 0). */
void dataset_batch(float *x, int *labels, const struct dataset *d, const int *idx, int n,
                   int augment, struct rng *r);

#endif
