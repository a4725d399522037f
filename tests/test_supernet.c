/* test_supernet.c — whole-subnet gradient checks, elastic kernel semantics,
 * checkpoint round trip, BN recalibration. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../supernet/supernet.h"

static struct space tiny_space(void) {
    struct space s;
    int rc = space_load("supernet/spaces/tiny.ini", &s);
    CHECK(rc == APQ_OK);
    return s;
}

static void random_batch(float *x, int *y, int n, int res, struct rng *r) {
    for (int i = 0; i < n * res * res; i++) x[i] = (float)rng_normal(r, 1.0);
    for (int i = 0; i < n; i++) y[i] = (int)rng_int(r, 10);
}

static double loss_of(struct supernet *sn, struct sn_ctx *c, const struct arch *a,
                      struct sn_quant *q, const float *x, const int *y, int n, float *dl) {
    const float *logits = supernet_forward(sn, c, a, q, x, n, SN_TRAIN);
    return nn_softmax_ce(dl, logits, y, NULL, n, sn->s.n_classes, 0.1f);
}

/* Directional derivative check (kann's kad_check_grad): g·d vs central difference. */
static void check_subnet_grad(struct supernet *sn, const struct arch *a, uint64_t seed) {
    const int n = 4;
    struct sn_ctx c;
    sn_ctx_init(&c, sn, n, 1);
    struct rng r;
    rng_init(&r, seed, RNG_DATA);
    float *x = malloc(sizeof(float) * n * a->res * a->res), dl[4 * 10];
    int y[4];
    random_batch(x, y, n, a->res, &r);
    memset(sn->grads, 0, sizeof(float) * sn->n_params);
    loss_of(sn, &c, a, NULL, x, y, n, dl);
    supernet_backward(sn, &c, dl);
    float *d = malloc(sizeof(float) * sn->n_params), *p0 = malloc(sizeof(float) * sn->n_params);
    memcpy(p0, sn->params, sizeof(float) * sn->n_params);
    /* direction: the normalised gradient plus half a random unit vector, so the
     * signal stays well above float rounding while off-gradient parts are probed */
    double gd = 0, dn = 0, gn = 0;
    for (size_t i = 0; i < sn->n_params; i++) {
        d[i] = (float)rng_normal(&r, 1.0);
        dn += (double)d[i] * d[i];
        gn += (double)sn->grads[i] * sn->grads[i];
    }
    for (size_t i = 0; i < sn->n_params; i++) {
        d[i] = (float)(sn->grads[i] / sqrt(gn) + 0.5 * d[i] / sqrt(dn));
        gd += (double)sn->grads[i] * d[i];
    }
    const float eps = 1e-3f; /* converges from above: kinks of ReLU6 dominate at 1e-2 */
    for (size_t i = 0; i < sn->n_params; i++) sn->params[i] = p0[i] + eps * d[i];
    double lp = loss_of(sn, &c, a, NULL, x, y, n, NULL);
    for (size_t i = 0; i < sn->n_params; i++) sn->params[i] = p0[i] - eps * d[i];
    double lm = loss_of(sn, &c, a, NULL, x, y, n, NULL);
    memcpy(sn->params, p0, sizeof(float) * sn->n_params);
    double fd = (lp - lm) / (2 * eps);
    char buf[ARCH_STR_MAX];
    arch_to_string(&sn->s, a, buf, sizeof buf);
    fprintf(stderr, "  %s: g.d %.6g, finite difference %.6g\n", buf, gd, fd);
    CHECK(fabs(gd) > 1e-3);
    CHECK_REL(gd, fd, 2e-2);
    free(x);
    free(d);
    free(p0);
    rng_free(&r);
    sn_ctx_free(&c);
}

TEST(sn_grad_smallest_largest_random) {
    struct space s = tiny_space();
    struct supernet sn;
    supernet_init(&sn, &s, 3, 0);
    struct arch a;
    arch_smallest(&s, 0, &a);
    check_subnet_grad(&sn, &a, 1);
    arch_largest(&s, 0, &a);
    check_subnet_grad(&sn, &a, 2);
    struct rng r;
    rng_init(&r, 5, RNG_SAMPLE);
    for (int t = 0; t < 3; t++) {
        arch_sample(&s, &r, 0, &a);
        check_subnet_grad(&sn, &a, 10 + t);
    }
    rng_free(&r);
    supernet_free(&sn);
}

/* With identity transforms a 5x5 / 3x3 kernel is the centre of the 7x7 one;
 * and transform gradients are non-zero only for archs using smaller kernels. */
TEST(sn_elastic_kernel_centre) {
    struct space s = tiny_space();
    struct supernet sn;
    supernet_init(&sn, &s, 4, 0);
    struct arch a;
    arch_largest(&s, 0, &a);
    a.ks[0] = 3;
    const int n = 2;
    struct sn_ctx c;
    sn_ctx_init(&c, &sn, n, 1);
    struct rng r;
    rng_init(&r, 9, RNG_DATA);
    float x[2 * 16 * 16], dl[20];
    int y[2];
    random_batch(x, y, n, 16, &r);
    memset(sn.grads, 0, sizeof(float) * sn.n_params);
    float *l1 = malloc(sizeof dl);
    memcpy(l1, supernet_forward(&sn, &c, &a, NULL, x, n, SN_TRAIN), sizeof dl);
    /* zero everything outside the 3x3 centre of block 0's 7x7 kernel: same logits */
    int mid_max = s.block[0].mid_max;
    for (int t = 0; t < 49; t++) {
        int r_ = t / 7, c_ = t % 7;
        if (r_ >= 2 && r_ <= 4 && c_ >= 2 && c_ <= 4) continue;
        for (int ch = 0; ch < mid_max; ch++) sn.block[0].dw_w[t * mid_max + ch] = 0;
    }
    const float *l2 = supernet_forward(&sn, &c, &a, NULL, x, n, SN_TRAIN);
    CHECK_ARRAY_REL(l2, l1, n * 10, 1e-6);
    loss_of(&sn, &c, &a, NULL, x, y, n, dl);
    supernet_backward(&sn, &c, dl);
    const struct sn_tensor *t53 = supernet_tensor(&sn, "stage1/block0/depthwise/transform_5to3");
    const struct sn_tensor *t75 = supernet_tensor(&sn, "stage1/block0/depthwise/transform_7to5");
    const struct sn_tensor *t75b = supernet_tensor(&sn, "stage1/block1/depthwise/transform_7to5");
    CHECK(t53 && t75 && t75b);
    double g53 = 0, g75 = 0, g75b = 0;
    for (size_t i = 0; i < t53->size; i++) g53 += fabs(sn.grads[t53->offset + i]);
    for (size_t i = 0; i < t75->size; i++) g75 += fabs(sn.grads[t75->offset + i]);
    for (size_t i = 0; i < t75b->size; i++) g75b += fabs(sn.grads[t75b->offset + i]);
    CHECK(g53 > 0 && g75 > 0);
    CHECK(g75b == 0); /* block 1 runs the full 7x7 kernel */
    free(l1);
    rng_free(&r);
    sn_ctx_free(&c);
    supernet_free(&sn);
}

TEST(sn_checkpoint_roundtrip) {
    struct space s = tiny_space();
    struct supernet a, b;
    supernet_init(&a, &s, 11, 0);
    supernet_init(&b, &s, 12, 0);
    for (size_t i = 0; i < a.n_bufs; i++) a.bufs[i] = (float)i * 0.001f;
    char path[600];
    snprintf(path, sizeof path, "%s/supernet.h5", test_tmpdir);
    CHECK(supernet_save(&a, path, 11, "tiny", NULL) == APQ_OK);
    CHECK(supernet_load(&b, path) == APQ_OK);
    CHECK(memcmp(a.params, b.params, sizeof(float) * a.n_params) == 0);
    CHECK(memcmp(a.bufs, b.bufs, sizeof(float) * a.n_bufs) == 0);
    struct space s2;
    CHECK(supernet_load_space(path, &s2) == APQ_OK && s2.hash == s.hash);
    /* PyTorch order on disk: a depthwise weight [C][1][7][7] */
    const struct sn_tensor *t = supernet_tensor(&a, "stage1/block0/depthwise/weight");
    CHECK(t && t->rank == 4 && t->dims[0] == s.block[0].mid_max && t->dims[2] == 7);
    /* another space is refused */
    struct space d;
    CHECK(space_load("supernet/spaces/fmnist-mbv2.ini", &d) == APQ_OK);
    struct supernet other;
    supernet_init(&other, &d, 1, 0);
    CHECK(supernet_load(&other, path) == APQ_EMISMATCH);
    CHECK(strstr(apq_last_error(), path) != NULL);
    supernet_free(&other);
    supernet_free(&a);
    supernet_free(&b);
}

/* Recalibrating on exactly one batch makes eval-mode BN equal train-mode BN
 * on that batch (biased variance in both), so the logits agree. */
TEST(sn_recalibration_matches_batch_stats) {
    struct space s = tiny_space();
    struct supernet sn;
    supernet_init(&sn, &s, 21, 0);
    struct dataset d = {.n = 16, .h = 28, .w = 28, .n_classes = 10};
    d.images = malloc(16 * 28 * 28);
    d.labels = malloc(16);
    struct rng r;
    rng_init(&r, 3, RNG_DATA);
    for (int i = 0; i < 16 * 28 * 28; i++) d.images[i] = (uint8_t)rng_int(&r, 256);
    for (int i = 0; i < 16; i++) d.labels[i] = (uint8_t)(i % 10);
    struct sn_ctx c;
    sn_ctx_init(&c, &sn, 16, 1);
    struct rng ra;
    rng_init(&ra, 8, RNG_SAMPLE);
    for (int t = 0; t < 3; t++) {
        struct arch a;
        arch_sample(&s, &ra, 0, &a);
        float *x = malloc(sizeof(float) * 16 * a.res * a.res),
              *tmp = malloc(sizeof(float) * 16 * 784);
        int idx[16], lab[16];
        for (int i = 0; i < 16; i++) idx[i] = i;
        sn_input_batch(x, lab, tmp, &d, idx, 16, a.res, 0, NULL);
        float *want = malloc(sizeof(float) * 160);
        memcpy(want, supernet_forward(&sn, &c, &a, NULL, x, 16, SN_TRAIN), sizeof(float) * 160);
        supernet_recalibrate(&sn, &c, &a, NULL, &d, 16);
        const float *got = supernet_forward(&sn, &c, &a, NULL, x, 16, SN_EVAL);
        CHECK_ARRAY_REL(got, want, 160, 1e-4);
        free(x);
        free(tmp);
        free(want);
    }
    free(d.images);
    free(d.labels);
    rng_free(&r);
    rng_free(&ra);
    sn_ctx_free(&c);
    supernet_free(&sn);
}
