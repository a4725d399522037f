/* params.c — the supernet's parameter block: tensor table, views, initialisation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supernet.h"

// ---- tensor table -------------------------------------------------------------

struct builder {
    struct supernet *sn;
    int cap;
    int count_only;
};

/* Register a tensor; returns its view (NULL while counting). */
static float *add(struct builder *b, const char *name, int layout, int is_buffer, int no_decay,
                  int rank, int d0, int d1, int d2, int d3) {
    struct supernet *sn = b->sn;
    int dims[4] = {d0, d1, d2, d3};
    size_t size = 1;
    for (int i = 0; i < rank; i++) size *= (size_t)dims[i];
    size_t *total = is_buffer ? &sn->n_bufs : &sn->n_params;
    size_t off = *total;
    *total += size;
    if (b->count_only) {
        sn->n_tensors++;
        return NULL;
    }
    APQ_ASSERT(sn->n_tensors < b->cap);
    struct sn_tensor *t = &sn->tensors[sn->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rank = rank;
    memcpy(t->dims, dims, sizeof dims);
    t->layout = layout;
    t->is_buffer = is_buffer;
    t->no_decay = no_decay;
    t->offset = off;
    t->size = size;
    return (is_buffer ? sn->bufs : sn->params) + off;
}

static void add_bn(struct builder *b, const char *prefix, int c, struct sn_bn *bn) {
    char n[96];
    snprintf(n, sizeof n, "%s/bn/weight", prefix);
    bn->gamma = add(b, n, SN_LAYOUT_PLAIN, 0, 1, 1, c, 0, 0, 0);
    snprintf(n, sizeof n, "%s/bn/bias", prefix);
    bn->beta = add(b, n, SN_LAYOUT_PLAIN, 0, 1, 1, c, 0, 0, 0);
    snprintf(n, sizeof n, "%s/bn/running_mean", prefix);
    bn->mean = add(b, n, SN_LAYOUT_PLAIN, 1, 1, 1, c, 0, 0, 0);
    snprintf(n, sizeof n, "%s/bn/running_var", prefix);
    bn->var = add(b, n, SN_LAYOUT_PLAIN, 1, 1, 1, c, 0, 0, 0);
}

/* Walk the network once; fills views when not counting. */
static void build(struct builder *b) {
    struct supernet *sn = b->sn;
    const struct space *s = &sn->s;
    int c0 = s->first_conv_ch, c1 = s->first_block_ch, k0 = s->first_conv_k, K = s->max_kernel;
    char n[96], p[64];
    sn->first_conv_w = add(b, "first_conv/weight", SN_LAYOUT_OHWI, 0, 0, 4, c0, s->in_ch, k0, k0);
    add_bn(b, "first_conv", c0, &sn->first_conv_bn);
    sn->first_dw_w =
        add(b, "first_block/depthwise/weight", SN_LAYOUT_DW_TAPMAJOR, 0, 0, 4, c0, 1, 3, 3);
    add_bn(b, "first_block/depthwise", c0, &sn->first_dw_bn);
    sn->first_pw_w = add(b, "first_block/pointwise/weight", SN_LAYOUT_PLAIN, 0, 0, 4, c1, c0, 1, 1);
    add_bn(b, "first_block/pointwise", c1, &sn->first_pw_bn);
    for (int i = 0; i < s->n_blocks; i++) {
        const struct space_block *sb = &s->block[i];
        struct sn_block *blk = &sn->block[i];
        snprintf(p, sizeof p, "stage%d/block%d", sb->stage + 1, sb->slot);
        snprintf(n, sizeof n, "%s/expand/weight", p);
        blk->expand_w = add(b, n, SN_LAYOUT_PLAIN, 0, 0, 4, sb->mid_max, sb->cin, 1, 1);
        snprintf(n, sizeof n, "%s/expand", p);
        add_bn(b, n, sb->mid_max, &blk->expand_bn);
        snprintf(n, sizeof n, "%s/depthwise/weight", p);
        blk->dw_w = add(b, n, SN_LAYOUT_DW_TAPMAJOR, 0, 0, 4, sb->mid_max, 1, K, K);
        for (int j = s->n_kernels - 2; j >= 0; j--) {
            int kb = s->kernels[j + 1], ks = s->kernels[j];
            snprintf(n, sizeof n, "%s/depthwise/transform_%dto%d", p, kb, ks);
            blk->transform[j] = add(b, n, SN_LAYOUT_PLAIN, 0, 0, 2, ks * ks, ks * ks, 0, 0);
        }
        snprintf(n, sizeof n, "%s/depthwise", p);
        add_bn(b, n, sb->mid_max, &blk->dw_bn);
        snprintf(n, sizeof n, "%s/project/weight", p);
        blk->project_w = add(b, n, SN_LAYOUT_PLAIN, 0, 0, 4, sb->cout, sb->mid_max, 1, 1);
        snprintf(n, sizeof n, "%s/project", p);
        add_bn(b, n, sb->cout, &blk->project_bn);
    }
    int last = s->stage[s->n_stages - 1].width;
    sn->mix_w =
        add(b, "feature_mix/weight", SN_LAYOUT_PLAIN, 0, 0, 4, s->feature_mix_ch, last, 1, 1);
    add_bn(b, "feature_mix", s->feature_mix_ch, &sn->mix_bn);
    sn->cls_w = add(b, "classifier/weight", SN_LAYOUT_PLAIN, 0, 0, 2, s->n_classes,
                    s->feature_mix_ch, 0, 0);
    sn->cls_b = add(b, "classifier/bias", SN_LAYOUT_PLAIN, 0, 1, 1, s->n_classes, 0, 0, 0);
}

// ---- initialisation --------------------------------------------------------------

static void fill_normal(float *w, size_t n, double sigma, struct rng *r) {
    for (size_t i = 0; i < n; i++) w[i] = (float)rng_normal(r, sigma);
}

static void init_bn(struct sn_bn *bn, int c, float gamma) {
    for (int i = 0; i < c; i++) {
        bn->gamma[i] = gamma;
        bn->beta[i] = 0;
        bn->mean[i] = 0;
        bn->var[i] = 1;
    }
}

static void init_identity(float *m, int n) {
    memset(m, 0, sizeof(float) * (size_t)n * n);
    for (int i = 0; i < n; i++) m[i * n + i] = 1;
}

void supernet_init(struct supernet *sn, const struct space *s, uint64_t seed, int zero_last_gamma) {
    memset(sn, 0, sizeof *sn);
    sn->s = *s;
    struct builder b = {.sn = sn, .count_only = 1};
    build(&b);
    b.cap = sn->n_tensors;
    sn->tensors = apq_xcalloc((size_t)b.cap, sizeof *sn->tensors);
    sn->params = apq_falloc(sn->n_params);
    sn->grads = apq_falloc(sn->n_params);
    sn->mom = apq_falloc(sn->n_params);
    sn->bufs = apq_falloc(sn->n_bufs);
    memset(sn->grads, 0, sizeof(float) * sn->n_params);
    memset(sn->mom, 0, sizeof(float) * sn->n_params);
    sn->n_tensors = 0;
    sn->n_params = sn->n_bufs = 0;
    b.count_only = 0;
    build(&b);

    /* "he_fout" (ofa.md §6.1): N(0, sqrt(2 / (k*k*C_out))); linear U(+-1/sqrt(fan_in)) */
    struct rng r;
    rng_init(&r, seed, RNG_INIT);
    int c0 = s->first_conv_ch, c1 = s->first_block_ch, k0 = s->first_conv_k, K = s->max_kernel;
    fill_normal(sn->first_conv_w, (size_t)c0 * k0 * k0 * s->in_ch, sqrt(2.0 / (k0 * k0 * c0)), &r);
    init_bn(&sn->first_conv_bn, c0, 1);
    fill_normal(sn->first_dw_w, (size_t)9 * c0, sqrt(2.0 / (9 * c0)), &r);
    init_bn(&sn->first_dw_bn, c0, 1);
    fill_normal(sn->first_pw_w, (size_t)c1 * c0, sqrt(2.0 / c1), &r);
    init_bn(&sn->first_pw_bn, c1, 1);
    for (int i = 0; i < s->n_blocks; i++) {
        const struct space_block *sb = &s->block[i];
        struct sn_block *blk = &sn->block[i];
        fill_normal(blk->expand_w, (size_t)sb->mid_max * sb->cin, sqrt(2.0 / sb->mid_max), &r);
        init_bn(&blk->expand_bn, sb->mid_max, 1);
        fill_normal(blk->dw_w, (size_t)K * K * sb->mid_max, sqrt(2.0 / (K * K * sb->mid_max)), &r);
        for (int j = 0; j + 1 < s->n_kernels; j++)
            init_identity(blk->transform[j], s->kernels[j] * s->kernels[j]);
        init_bn(&blk->dw_bn, sb->mid_max, 1);
        fill_normal(blk->project_w, (size_t)sb->cout * sb->mid_max, sqrt(2.0 / sb->cout), &r);
        init_bn(&blk->project_bn, sb->cout, zero_last_gamma && sb->residual ? 0.0f : 1.0f);
    }
    int last = s->stage[s->n_stages - 1].width, F = s->feature_mix_ch;
    fill_normal(sn->mix_w, (size_t)F * last, sqrt(2.0 / F), &r);
    init_bn(&sn->mix_bn, F, 1);
    double bound = 1.0 / sqrt((double)F);
    for (int i = 0; i < s->n_classes * F; i++)
        sn->cls_w[i] = (float)((2 * rng_uniform(&r) - 1) * bound);
    for (int i = 0; i < s->n_classes; i++)
        sn->cls_b[i] = (float)((2 * rng_uniform(&r) - 1) * bound);
    rng_free(&r);
}

void supernet_free(struct supernet *sn) {
    if (!sn) return;
    free(sn->params);
    free(sn->grads);
    free(sn->mom);
    free(sn->bufs);
    free(sn->tensors);
    memset(sn, 0, sizeof *sn);
}

const struct sn_tensor *supernet_tensor(const struct supernet *sn, const char *name) {
    for (int i = 0; i < sn->n_tensors; i++)
        if (!strcmp(sn->tensors[i].name, name)) return &sn->tensors[i];
    return NULL;
}
