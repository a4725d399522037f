/* batch.c — held-out splits, subsets and (augmented) normalised batches.
 *
 * Augmentation follows torchvision's RandomCrop(padding=2) then
 * RandomHorizontalFlip(0.5): per example, draws from r in this order
 *   dy = rng_int(r, 5) - 2, dx = rng_int(r, 5) - 2, flip = rng_uniform(r) < 0.5,
 * and out[y][x] = in[y + dy][xs + dx] with xs = flip ? w-1-x : x, where pixels
 * outside the image are raw 0 (padding happens before normalisation).
 *
 * Not here: reading files (idx.c).
 */
#include <stdlib.h>
#include <string.h>

#include "datasets.h"

/* Copy examples idx[0..n) of src into a new dataset. */
static void gather(struct dataset *out, const struct dataset *src, const int *idx, int n) {
    size_t px = (size_t)src->h * (size_t)src->w;
    out->n = n;
    out->h = src->h;
    out->w = src->w;
    out->n_classes = src->n_classes;
    out->images = apq_xmalloc((size_t)n * px);
    out->labels = apq_xmalloc((size_t)n);
    for (int i = 0; i < n; i++) {
        APQ_ASSERT(idx[i] >= 0 && idx[i] < src->n);
        memcpy(out->images + (size_t)i * px, src->images + (size_t)idx[i] * px, px);
        out->labels[i] = src->labels[idx[i]];
    }
}

void dataset_split(const struct dataset *all, int n_val, uint64_t seed, struct dataset *train,
                   struct dataset *val) {
    APQ_ASSERT(all && train && val && n_val >= 0 && n_val <= all->n);
    int *perm = apq_xmalloc((size_t)all->n * sizeof *perm);
    for (int i = 0; i < all->n; i++) perm[i] = i;
    struct rng r;
    rng_init(&r, seed, RNG_SPLIT);
    rng_shuffle_int(&r, perm, (size_t)all->n);
    rng_free(&r);
    gather(val, all, perm, n_val);
    gather(train, all, perm + n_val, all->n - n_val);
    free(perm);
}

void dataset_head(const struct dataset *d, int n, struct dataset *out) {
    APQ_ASSERT(d && out && n >= 0);
    if (n > d->n) n = d->n;
    int *idx = apq_xmalloc((size_t)(n ? n : 1) * sizeof *idx);
    for (int i = 0; i < n; i++) idx[i] = i;
    gather(out, d, idx, n);
    free(idx);
}

void dataset_batch(float *x, int *labels, const struct dataset *d, const int *idx, int n,
                   int augment, struct rng *r) {
    APQ_ASSERT(x && d && idx && n >= 0 && (!augment || r));
    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - FMNIST_MEAN) / FMNIST_STD;
    const int h = d->h, w = d->w;
    const size_t px = (size_t)h * (size_t)w;
    for (int i = 0; i < n; i++) {
        APQ_ASSERT(idx[i] >= 0 && idx[i] < d->n);
        const uint8_t *in = d->images + (size_t)idx[i] * px;
        float *out = x + (size_t)i * px;
        if (labels) labels[i] = d->labels[idx[i]];
        if (!augment) {
            for (size_t p = 0; p < px; p++) out[p] = lut[in[p]];
            continue;
        }
        int dy = (int)rng_int(r, 5) - 2, dx = (int)rng_int(r, 5) - 2;
        int flip = rng_uniform(r) < 0.5;
        for (int y = 0; y < h; y++) {
            int sy = y + dy;
            for (int xo = 0; xo < w; xo++) {
                int sx = (flip ? w - 1 - xo : xo) + dx;
                int inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
                out[(size_t)y * w + xo] = lut[inside ? in[(size_t)sy * w + sx] : 0];
            }
        }
    }
}
