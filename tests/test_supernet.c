/* test_supernet.c — whole-subnet gradient checks, elastic kernel semantics,
 * checkpoint round trip, BN recalibration. */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    CHECK(sn_ctx_init(&c, sn, n, 1) == APQ_OK);
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

/* A supernet, one subnet at 28x28 (the smallest or a seeded random one) and a
 * seeded random batch of 128: the setting of the whole-step tests below. */
struct step_run {
    struct supernet sn;
    struct arch a;
    struct sn_ctx c;
    float *x, *dl;
    int *y, n, nc;
};

static void step_setup(struct step_run *t, uint64_t seed, int smallest) {
    struct space s;
    CHECK(space_load("supernet/spaces/fmnist-mbv2.ini", &s) == APQ_OK);
    supernet_init(&t->sn, &s, seed, 0);
    struct rng r;
    rng_init(&r, seed + 1, RNG_SAMPLE);
    if (smallest)
        arch_smallest(&s, 0, &t->a);
    else
        arch_sample(&s, &r, 0, &t->a);
    t->a.res = 28;
    t->n = 128, t->nc = s.n_classes;
    CHECK(sn_ctx_init(&t->c, &t->sn, t->n, 1) == APQ_OK);
    t->x = malloc(sizeof(float) * t->n * 28 * 28), t->dl = malloc(sizeof(float) * t->n * t->nc);
    t->y = malloc(sizeof(int) * t->n);
    random_batch(t->x, t->y, t->n, 28, &r);
    rng_free(&r);
}

/* One training step: its logits [n][classes] into *out (malloc'd, room for
 * two sets) and the gradients into *grads (malloc'd); with eval, the eval-BN
 * logits follow in *out. The caller picks the path (threads, nn_dw_simd). */
static void step_outputs(struct step_run *t, int eval, float **out, float **grads) {
    const size_t nl = (size_t)t->n * t->nc;
    *out = malloc(sizeof(float) * nl * 2);
    *grads = malloc(sizeof(float) * t->sn.n_params);
    memset(t->sn.grads, 0, sizeof(float) * t->sn.n_params);
    const float *lt = supernet_forward(&t->sn, &t->c, &t->a, NULL, t->x, t->n, SN_TRAIN);
    memcpy(*out, lt, sizeof(float) * nl);
    nn_softmax_ce(t->dl, lt, t->y, NULL, t->n, t->nc, 0.1f);
    supernet_backward(&t->sn, &t->c, t->dl);
    memcpy(*grads, t->sn.grads, sizeof(float) * t->sn.n_params);
    if (eval)
        memcpy(*out + nl, supernet_forward(&t->sn, &t->c, &t->a, NULL, t->x, t->n, SN_EVAL),
               sizeof(float) * nl);
}

static void step_free(struct step_run *t) {
    free(t->x), free(t->dl), free(t->y);
    sn_ctx_free(&t->c);
    supernet_free(&t->sn);
}

/* The whole tape with the AVX-512 depthwise tiles and, at batch 128 and
 * 28x28, where the smallest subnet's first expand output is 19 MB (above
 * DW_PRE_MIN_BYTES), the expand's BN + ReLU6 applied inside the depthwise
 * conv (emit_bn_pre), against the generic tiles with every tensor written
 * out: the same logits (train and eval BN) and the same gradients, bit for
 * bit, on every OpenBLAS kernel. True by construction: both tapes issue the
 * same products, and the tiles and the prologue do each element's arithmetic
 * in the generic order. The op that recomputes the expanded tensor
 * (nn_expand_dw_*) is off here; sn_expand_dw_step_close compares it. Without
 * AVX-512 both runs are the generic path; the test says so. */
TEST(sn_dw_prologue_bit_identical) {
    struct step_run t;
    step_setup(&t, 41, 1);
    const int had = nn_dw_simd(1), had_ex = nn_expand_dw_enable(0);
    if (!nn_dw_pre_supported(3, 2)) fprintf(stderr, "  (no AVX-512 in this build)\n");
    float *out[2], *grads[2];
    for (int v = 0; v < 2; v++) {
        nn_dw_simd(!v);
        step_outputs(&t, 1, &out[v], &grads[v]);
    }
    nn_dw_simd(had), nn_expand_dw_enable(had_ex);
    CHECK(!memcmp(out[0], out[1], sizeof(float) * 2 * t.n * t.nc));
    CHECK(!memcmp(grads[0], grads[1], sizeof(float) * t.sn.n_params));
    for (int v = 0; v < 2; v++) free(out[v]), free(grads[v]);
    step_free(&t);
}

/* Euclidean norm of a - b over the norm of b, in double. */
static double rel_l2(const float *a, const float *b, size_t n) {
    double d = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = (double)a[i] - b[i];
        d += e * e, nb += (double)b[i] * b[i];
    }
    return sqrt(d / fmax(nb, 1e-300));
}

/* The training tape with the expand -> BN -> ReLU6 -> depthwise op that
 * recomputes the expanded tensor (emit_expand_dw) against the same tape with
 * the op off, smallest subnet, batch 128, 28x28, where the op replaces the
 * first block's 16 -> 48 expand. The batch statistics are the same bits
 * (nn_expand.c), so the running statistics and with them the eval-BN logits
 * are too. The rest differs by the rounding of the recomputed K-term
 * products (K = 16), at most 2*K*u of their magnitude (u = 2^-24; Higham,
 * Accuracy and Stability of Numerical Algorithms, §3.1), carried through the
 * network:
 *  - train logits: bounded as in nn_expand_dw_matches_separate_kernels by
 *    2*(K + L)*u of their magnitude, L the longest chain of sums behind a
 *    logit (the feature mix's and the classifier's, at most 1280 terms, with
 *    the block's 64); measured 29*u on Haswell's kernel, 0 on SkylakeX's;
 *  - gradients, as one vector (Euclidean norm): a training step at random
 *    initialisation is ill-conditioned (batch-statistics BN backward
 *    subtracts means of nearly equal terms; a perturbation moves the
 *    pre-activations lying within it of a ReLU6 kink across it). The test
 *    measures that conditioning instead of guessing it: a probe nudges every
 *    input pixel by one ulp (a relative perturbation of at most 2*u) and
 *    records how far the gradients move. The op's perturbation is at most K
 *    times the probe's, so to first order its effect is at most K times the
 *    probe's. Measured on Haswell: op 3.9e-3, probe 1-2e-3; a misplaced stride
 *    or chunk gives an error of order 1. */
TEST(sn_expand_dw_step_close) {
    struct step_run t;
    step_setup(&t, 41, 1);
    const int had = nn_dw_simd(1), had_ex = nn_expand_dw_enable(1);
    if (!nn_dw_pre_supported(3, 2)) fprintf(stderr, "  (no AVX-512 in this build)\n");
    float *out[3], *grads[3];
    for (int v = 0; v < 3; v++) {
        nn_expand_dw_enable(v == 1);
        if (v == 2) /* the probe: the op off, every pixel one ulp up */
            for (int i = 0; i < t.n * 28 * 28; i++) t.x[i] = nextafterf(t.x[i], INFINITY);
        step_outputs(&t, 1, &out[v], &grads[v]);
    }
    nn_dw_simd(had), nn_expand_dw_enable(had_ex);
    const size_t nl = (size_t)t.n * t.nc;
    const double u = FLT_EPSILON / 2, K = 16;
    const double op = rel_l2(grads[1], grads[0], t.sn.n_params);
    const double probe = rel_l2(grads[2], grads[0], t.sn.n_params);
    fprintf(stderr, "  train logits %.3g u; gradients (Euclidean): op %.3g, probe %.3g\n",
            test_max_rel_err(out[1], out[0], (long)nl) / u, op, probe);
    CHECK_ARRAY_REL(out[1], out[0], (long)nl, 2 * (K + 64 + 1280) * u);
    CHECK(!memcmp(out[0] + nl, out[1] + nl, sizeof(float) * nl));
    CHECK(probe > 0 && op <= K * probe);
    for (int v = 0; v < 3; v++) free(out[v]), free(grads[v]);
    step_free(&t);
}

/* A training step's logits and gradients at 1, 2 and 3 threads: the same
 * bits (fixed reduction chunks everywhere; pointwise products split along
 * rows only, in fixed pieces). Batch 128 at 28x28 takes every path of the
 * step: the small-matrix chunks, the depthwise prologue, the parallel BN. */
TEST(sn_step_thread_count_independent) {
    struct step_run t;
    step_setup(&t, 43, 0);
    const int saved = omp_get_max_threads();
    float *out[3], *grads[3];
    for (int v = 0; v < 3; v++) {
        omp_set_num_threads(v + 1);
        step_outputs(&t, 0, &out[v], &grads[v]);
    }
    omp_set_num_threads(saved);
    for (int v = 1; v < 3; v++) {
        CHECK(!memcmp(out[0], out[v], sizeof(float) * t.n * t.nc));
        CHECK(!memcmp(grads[0], grads[v], sizeof(float) * t.sn.n_params));
    }
    for (int v = 0; v < 3; v++) free(out[v]), free(grads[v]);
    step_free(&t);
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
    CHECK(sn_ctx_init(&c, &sn, n, 1) == APQ_OK);
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
    CHECK(sn_ctx_init(&c, &sn, 16, 1) == APQ_OK);
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

/* Re-sorting middle channels permutes them consistently: the largest subnet
 * computes the same logits (train and eval BN), a narrower one does not. */
TEST(sn_sort_channels_preserves_largest) {
    struct space s = tiny_space();
    struct supernet sn;
    supernet_init(&sn, &s, 31, 0);
    for (size_t i = 0; i < sn.n_bufs; i++) sn.bufs[i] = 0.5f + 0.001f * (float)(i % 97);
    struct sn_ctx c;
    CHECK(sn_ctx_init(&c, &sn, 4, 1) == APQ_OK);
    struct rng r;
    rng_init(&r, 4, RNG_DATA);
    struct arch big, narrow;
    arch_largest(&s, 0, &big);
    narrow = big;
    narrow.mid[0] = (uint16_t)s.block[0].mid_min;
    float x[4 * 16 * 16], want[40], want_eval[40], want_narrow[40];
    int y[4];
    random_batch(x, y, 4, 16, &r);
    memcpy(want, supernet_forward(&sn, &c, &big, NULL, x, 4, SN_TRAIN), sizeof want);
    memcpy(want_eval, supernet_forward(&sn, &c, &big, NULL, x, 4, SN_EVAL), sizeof want_eval);
    memcpy(want_narrow, supernet_forward(&sn, &c, &narrow, NULL, x, 4, SN_TRAIN),
           sizeof want_narrow);
    for (int protect = 0; protect <= 4; protect += 4) {
        sn_sort_channels(&sn, protect);
        CHECK_ARRAY_REL(supernet_forward(&sn, &c, &big, NULL, x, 4, SN_TRAIN), want, 40, 1e-5);
        CHECK_ARRAY_REL(supernet_forward(&sn, &c, &big, NULL, x, 4, SN_EVAL), want_eval, 40, 1e-5);
    }
    const float *got = supernet_forward(&sn, &c, &narrow, NULL, x, 4, SN_TRAIN);
    CHECK(test_max_rel_err(got, want_narrow, 40) > 1e-3);
    /* importance is now descending in block 0 (full sort last applied with protect 4:
     * within the protected first 4*cin channels) */
    int n = s.block[0].mid_max, prot = 4 * s.block[0].cin, sorted = 1;
    for (int ch = 1; ch < prot; ch++) {
        double a = 0, b = 0;
        for (int o = 0; o < s.block[0].cout; o++) {
            a += fabs(sn.block[0].project_w[o * n + ch - 1]);
            b += fabs(sn.block[0].project_w[o * n + ch]);
        }
        sorted &= a >= b;
    }
    CHECK(sorted);
    rng_free(&r);
    sn_ctx_free(&c);
    supernet_free(&sn);
}

TEST(sn_sample_elastic_respects_phase) {
    struct space s;
    CHECK(space_load("supernet/spaces/fmnist-mbv2.ini", &s) == APQ_OK);
    struct rng r;
    rng_init(&r, 6, RNG_SAMPLE);
    struct sn_elastic el = {5, 1, 4};
    int seen_k5 = 0, seen_low_depth = 0;
    for (int t = 0; t < 300; t++) {
        struct arch a;
        sn_sample_elastic(&s, &el, &r, &a);
        CHECK(arch_check(&s, &a) == APQ_OK);
        for (int st = 0; st < s.n_stages; st++) {
            int lo = s.stage[st].max_depth - 1 < s.stage[st].min_depth ? s.stage[st].min_depth
                                                                       : s.stage[st].max_depth - 1;
            CHECK(a.depth[st] >= lo);
            seen_low_depth += st < 4 && a.depth[st] == lo;
        }
        for (int i = 0; i < s.n_blocks; i++) {
            if (!arch_block_active(&s, &a, i)) continue;
            CHECK(a.ks[i] >= 5);
            CHECK(a.mid[i] >= 4 * s.block[i].cin);
            seen_k5 += a.ks[i] == 5;
        }
    }
    CHECK(seen_k5 > 0 && seen_low_depth > 0);
    rng_free(&r);
}

/* A run killed after step 7 (last checkpoint at step 6) and resumed ends with
 * the same weights and BN buffers, bit for bit, as a run never stopped; also
 * across a phase boundary with a channel sort and teacher distillation. */
TEST(sn_train_resume_bit_exact) {
    struct space s = tiny_space();
    struct dataset d = test_synthetic_dataset(96, 5), v = test_synthetic_dataset(16, 6);
    struct sn_train_cfg cfg = {.batch = 8,
                               .momentum = 0.9f,
                               .weight_decay = 3e-5f,
                               .label_smoothing = 0.1f,
                               .dropout = 0.1f,
                               .calib_images = 16,
                               .eval_images = 16,
                               .seed = 9,
                               .ckpt_every = 3};
    long ps[6] = {2, 2, 2, 2, 2, 2};
    sn_schedule_ps(&cfg, &s, ps, 0.05f, 1);
    char ck1[600], ck2[600];
    snprintf(ck1, sizeof ck1, "%s/a.ckpt", test_tmpdir);
    snprintf(ck2, sizeof ck2, "%s/b.ckpt", test_tmpdir);
    struct supernet a, b;
    struct sn_train_report rep;
    supernet_init(&a, &s, 9, 1);
    cfg.ckpt_path = ck1;
    CHECK(supernet_train(&a, &d, &v, &cfg, &rep) == APQ_OK);
    CHECK(rep.resumed_from == 0);
    supernet_init(&b, &s, 9, 1);
    cfg.ckpt_path = ck2;
    cfg.stop_after = 7;
    CHECK(supernet_train(&b, &d, &v, &cfg, &rep) == APQ_OK);
    CHECK(access(ck2, F_OK) == 0);
    supernet_free(&b);
    supernet_init(&b, &s, 123, 1); /* different init: everything must come from the checkpoint */
    cfg.stop_after = 0;
    CHECK(supernet_train(&b, &d, &v, &cfg, &rep) == APQ_OK);
    CHECK(rep.resumed_from == 6);
    CHECK(memcmp(a.params, b.params, sizeof(float) * a.n_params) == 0);
    CHECK(memcmp(a.bufs, b.bufs, sizeof(float) * a.n_bufs) == 0);
    /* a checkpoint of other settings is ignored */
    cfg.seed = 10;
    supernet_free(&b);
    supernet_init(&b, &s, 9, 1);
    CHECK(supernet_train(&b, &d, &v, &cfg, &rep) == APQ_OK);
    CHECK(rep.resumed_from == 0);
    supernet_free(&a);
    supernet_free(&b);
    dataset_free(&d);
    dataset_free(&v);
}

/* The sandwich schedule is one warm-up + cosine over both phases; PS restarts
 * each phase's own curve (checked through the phase table). */
TEST(sn_schedules_phase_tables) {
    struct space s = tiny_space();
    struct sn_train_cfg cfg = {0};
    sn_schedule_sandwich(&cfg, &s, 100, 400, 0.1f, 10, 2, 1);
    CHECK(cfg.n_phases == 2);
    CHECK(cfg.phase[0].n_sub == 1 && cfg.phase[0].steps == 100 && !cfg.phase[0].lr_continue);
    CHECK(cfg.phase[1].n_sub == 4 && cfg.phase[1].sandwich && cfg.phase[1].kd == 1 &&
          cfg.phase[1].lr_continue && cfg.phase[1].el.mid_ratio_min == s.mid_ratio_min);
    long ps[6] = {10, 20, 30, 40, 50, 60};
    sn_schedule_ps(&cfg, &s, ps, 1.0f, 5);
    CHECK(cfg.n_phases == 6);
    const int n_sub[6] = {1, 1, 2, 2, 4, 4};
    const float ratio[6] = {1, 0.37f, 0.03f, 0.09f, 0.03f, 0.09f};
    for (int i = 0; i < 6; i++) {
        CHECK(cfg.phase[i].n_sub == n_sub[i] && cfg.phase[i].steps == ps[i]);
        CHECK_NEAR(cfg.phase[i].lr, ratio[i], 1e-6);
        CHECK(!cfg.phase[i].lr_continue && cfg.phase[i].kd == (i ? 2 : 0));
    }
    CHECK(cfg.phase[0].el.kernel_min == 7 && cfg.phase[1].el.kernel_min == 3);
    CHECK(cfg.phase[2].el.depth_drop == 1 && cfg.phase[3].el.depth_drop > 1);
    CHECK(cfg.phase[4].sort == 0 && cfg.phase[5].sort == cfg.phase[4].el.mid_ratio_min);
    CHECK(cfg.phase[4].el.mid_ratio_min == 4 && cfg.phase[5].el.mid_ratio_min == 3);
}
