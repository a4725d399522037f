/* test_predictor.c — the encoding, the MLP's gradients, training, transfer, files, metrics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../predictor/predictor.h"

static struct space pred_space(const char *name) {
    struct space s;
    char path[256];
    snprintf(path, sizeof path, "supernet/spaces/%s.ini", name);
    int rc = space_load(path, &s);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    return s;
}

// ---- encoding ----------------------------------------------------------------------

TEST(pred_encode_dims) {
    struct space s = pred_space("fmnist-mbv2");
    /* mids per block: cin 16 -> 7; cin 24 -> 10; cin 32 -> 13; cin 64 -> 25; cin 96 -> 37
     * stage1 7+3*10, stage2 10+3*13, stage3 13+3*25, stage4 25+3*37, stage5 37 = 347 */
    CHECK(encode_fp32_dim(&s) == 3 + 17 * 3 + 347);
    CHECK(encode_bits_dim(&s) == 4 * 17 * 3);
    CHECK(encode_dim(&s, 0) == 401);
    CHECK(encode_dim(&s, 1) == 605);
    struct space t = pred_space("tiny");
    /* 2 resolutions, 4 blocks x 3 kernels, mids 4 + 7 + 7 + 10, bits 4 x 4 x 3 */
    CHECK(encode_dim(&t, 0) == 2 + 12 + 28);
    CHECK(encode_dim(&t, 1) == 42 + 48);
}

TEST(pred_encode_positions) {
    struct space s = pred_space("tiny");
    struct arch a;
    /* stage 1 depth 2, stage 2 depth 1 (block 3 inactive) */
    int rc = arch_from_string(&s, "r16_k5m32q4686.k7m96q8444_k3m64q6688", &a);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    float x[90];
    encode_arch(&s, &a, 1, x);
    float want[90] = {0};
    want[1] = 1;                         /* r16 */
    want[2 + 0 * 3 + 1] = 1;             /* block 0 k5 */
    want[2 + 1 * 3 + 2] = 1;             /* block 1 k7 */
    want[2 + 2 * 3 + 0] = 1;             /* block 2 k3 */
    int mid0 = 14;                       /* mids start after 2 + 12 */
    want[mid0 + (32 - 24) / 8] = 1;      /* block 0: 24..48 */
    want[mid0 + 4 + (96 - 48) / 8] = 1;  /* block 1: 48..96 */
    want[mid0 + 11 + (64 - 48) / 8] = 1; /* block 2: 48..96 */
    int q = 42, g = 12;                  /* 4 blocks x 3 bits per group */
    int bits[3][4] = {{4, 6, 8, 6}, {8, 4, 4, 4}, {6, 6, 8, 8}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) want[q + j * g + i * 3 + (bits[i][j] - 4) / 2] = 1;
    for (int k = 0; k < 90; k++)
        if (x[k] != want[k]) fprintf(stderr, "  x[%d] = %g, want %g\n", k, x[k], want[k]);
    CHECK(!memcmp(x, want, sizeof x));
    /* inactive block 3: all zero in every group */
    for (int j = 0; j < 3; j++) CHECK(x[2 + 9 + j] == 0);
    for (int j = 0; j < 10; j++) CHECK(x[mid0 + 18 + j] == 0);
    for (int gg = 0; gg < 4; gg++)
        for (int j = 0; j < 3; j++) CHECK(x[q + gg * g + 9 + j] == 0);
    /* fp32 part alone is the prefix; an fp32 arch has an all-zero quant part */
    float y[90];
    encode_arch(&s, &a, 0, y);
    CHECK(!memcmp(x, y, 42 * sizeof(float)));
    arch_set_bits(&s, &a, 0);
    encode_arch(&s, &a, 1, y);
    CHECK(!memcmp(x, y, 42 * sizeof(float)));
    for (int k = 42; k < 90; k++) CHECK(y[k] == 0);
}

// ---- gradients ---------------------------------------------------------------------

static void grad_check(int bit_dim) {
    struct predictor p;
    int in = 7, H = 6, n = 5, ld = in + bit_dim;
    CHECK(predictor_init(&p, in, bit_dim, H, 3, 11) == APQ_OK);
    struct rng r;
    rng_init(&r, 3, RNG_DATA);
    float x[5 * 12], y[5];
    for (int i = 0; i < n * ld; i++) x[i] = (float)rng_normal(&r, 1.0);
    for (int i = 0; i < n; i++) y[i] = (float)rng_uniform(&r);
    rng_free(&r);
    float *g = malloc(p.n_params * sizeof(float));
    predictor_loss_grad(&p, x, y, n, g);
    const float h = 1e-3f;
    int bad = 0;
    for (size_t k = 0; k < p.n_params; k++) {
        float keep = p.params[k];
        p.params[k] = keep + h;
        double up = predictor_loss_grad(&p, x, y, n, NULL);
        p.params[k] = keep - h;
        double dn = predictor_loss_grad(&p, x, y, n, NULL);
        p.params[k] = keep;
        double num = (up - dn) / (2.0 * h);
        if (fabs(num - g[k]) > 1e-3 + 1e-2 * fabs(num)) {
            if (bad++ < 5)
                fprintf(stderr, "  param %zu: analytic %.6g, numeric %.6g\n", k, g[k], num);
        }
    }
    CHECK(bad == 0);
    free(g);
    predictor_free(&p);
}

TEST(pred_grad_check_fp32) {
    grad_check(0);
}
TEST(pred_grad_check_bits) {
    grad_check(5);
}

// ---- training ----------------------------------------------------------------------

/* Synthetic accuracy: rises with log MACs (and with bits on a quantized arch), plus noise. */
static void synth_set(const struct space *s, int quant, int n, uint64_t seed, float *x, float *y) {
    struct rng r;
    rng_init(&r, seed, RNG_SAMPLE);
    struct arch lo, hi;
    arch_smallest(s, 0, &lo);
    arch_largest(s, 0, &hi);
    double l0 = log(arch_macs(s, &lo)), l1 = log(arch_macs(s, &hi));
    int dim = encode_dim(s, quant);
    for (int i = 0; i < n; i++) {
        struct arch a;
        arch_sample(s, &r, quant, &a);
        encode_arch(s, &a, quant, x + (size_t)i * dim);
        double t = (log(arch_macs(s, &a)) - l0) / (l1 - l0), b = 0;
        if (quant) {
            int k = 0;
            for (int j = 0; j < s->n_blocks; j++)
                if (arch_block_active(s, &a, j)) b += a.pw_w[j] + a.pw_a[j], k += 2;
            b = (b / k - 6) / 2; /* -1 .. 1 */
        }
        y[i] = (float)(0.70 + 0.2 * t + 0.05 * b + rng_normal(&r, 0.003));
    }
    rng_free(&r);
}

static void take_rows(const float *x, const float *y, const int *idx, int n, int dim, float *xo,
                      float *yo) {
    for (int i = 0; i < n; i++) {
        memcpy(xo + (size_t)i * dim, x + (size_t)idx[i] * dim, dim * sizeof(float));
        yo[i] = y[idx[i]];
    }
}

TEST(pred_train_fits_synthetic) {
    struct space s = pred_space("fmnist-mbv2");
    int n = 800, dim = encode_dim(&s, 0), perm[800], ntr;
    float *x = malloc(sizeof(float) * n * dim), *y = malloc(sizeof(float) * n);
    float *xtr = malloc(sizeof(float) * n * dim), *ytr = malloc(sizeof(float) * n);
    float *xte = malloc(sizeof(float) * n * dim), *yte = malloc(sizeof(float) * n);
    synth_set(&s, 0, n, 5, x, y);
    predictor_split(n, 5, perm, &ntr);
    CHECK(ntr == 640);
    take_rows(x, y, perm, ntr, dim, xtr, ytr);
    take_rows(x, y, perm + ntr, n - ntr, dim, xte, yte);
    struct predictor p;
    CHECK(predictor_init(&p, dim, 0, 128, 3, 5) == APQ_OK);
    double mean = 0;
    for (int i = 0; i < ntr; i++) mean += ytr[i] / ntr;
    predictor_set_base(&p, mean);
    double before = predictor_loss_grad(&p, xtr, ytr, ntr, NULL);
    struct pred_train_cfg cfg = {.epochs = 60, .batch = 64, .lr = 1e-3, .weight_decay = 1e-4};
    double after = predictor_train(&p, xtr, ytr, ntr, &cfg, 5);
    double rmse, tau;
    predictor_score(&p, xte, yte, n - ntr, &rmse, &tau);
    fprintf(stderr, "  loss %.3g -> %.3g, held-out RMSE %.2f points, tau %.3f\n", before, after,
            rmse, tau);
    CHECK(after < before / 5);
    CHECK(tau > 0.8);
    CHECK(rmse < 2.0);
    /* deterministic for a seed */
    struct predictor p2;
    CHECK(predictor_init(&p2, dim, 0, 128, 3, 5) == APQ_OK);
    predictor_set_base(&p2, mean);
    cfg.epochs = 2;
    struct predictor p3;
    CHECK(predictor_init(&p3, dim, 0, 128, 3, 5) == APQ_OK);
    predictor_set_base(&p3, mean);
    predictor_train(&p2, xtr, ytr, ntr, &cfg, 9);
    predictor_train(&p3, xtr, ytr, ntr, &cfg, 9);
    CHECK(!memcmp(p2.params, p3.params, p2.n_params * sizeof(float)));
    predictor_free(&p);
    predictor_free(&p2);
    predictor_free(&p3);
    free(x), free(y), free(xtr), free(ytr), free(xte), free(yte);
}

TEST(pred_transfer_copies) {
    struct space s = pred_space("fmnist-mbv2");
    struct predictor f, q, scratch;
    int in = encode_fp32_dim(&s), bd = encode_bits_dim(&s);
    CHECK(predictor_init(&f, in, 0, 32, 3, 1) == APQ_OK);
    predictor_set_base(&f, 0.83);
    f.space_hash = s.hash;
    CHECK(predictor_init_transfer(&q, &f, bd, 2) == APQ_OK);
    CHECK(predictor_init(&scratch, in, bd, 32, 3, 2) == APQ_OK);
    CHECK(q.in_dim == in && q.bit_dim == bd && q.hidden == 32 && q.n_layers == 3);
    CHECK(q.space_hash == s.hash);
    CHECK(!memcmp(q.v.w[0], f.v.w[0], sizeof(float) * 32 * in));
    for (int l = 0; l < 3; l++) CHECK(!memcmp(q.v.b[l], f.v.b[l], sizeof(float) * 32));
    for (int l = 1; l < 3; l++) CHECK(!memcmp(q.v.w[l], f.v.w[l], sizeof(float) * 32 * 32));
    CHECK(!memcmp(q.v.wo, f.v.wo, sizeof(float) * 32) && q.v.bo[0] == f.v.bo[0]);
    /* the bit branch is the scratch model's */
    CHECK(!memcmp(q.v.wq, scratch.v.wq, sizeof(float) * 32 * bd));
    CHECK(!memcmp(q.v.bq, scratch.v.bq, sizeof(float) * 32));
    float bound = 1.0f / sqrtf((float)bd), mx = 0;
    for (int k = 0; k < 32 * bd; k++) mx = fmaxf(mx, fabsf(q.v.wq[k]));
    CHECK(mx <= bound && mx > 0.9f * bound);
    predictor_free(&f);
    predictor_free(&q);
    predictor_free(&scratch);
    predictor_free(&scratch); /* no-op on a freed (zeroed) struct */
}

// ---- files ---------------------------------------------------------------------------

static void make_quant(const struct space *s, struct predictor *q) {
    struct predictor f;
    CHECK(predictor_init(&f, encode_fp32_dim(s), 0, 48, 3, 4) == APQ_OK);
    CHECK(predictor_init_transfer(q, &f, encode_bits_dim(s), 4) == APQ_OK);
    q->metrics = (struct pred_metrics){1.5, 0.7, 80, 20, 1, 2.5, 0.5};
    predictor_free(&f);
}

TEST(pred_save_load_roundtrip) {
    struct space s = pred_space("fmnist-mbv2");
    struct predictor q, r;
    make_quant(&s, &q);
    char path[600];
    snprintf(path, sizeof path, "%s/predictor-quant.h5", test_tmpdir);
    int rc = predictor_save(&q, &s, path, 4, "tiny");
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    rc = predictor_load(&r, path, &s);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    if (rc == APQ_OK) {
        CHECK(r.n_params == q.n_params && r.bit_dim == q.bit_dim && r.hidden == 48);
        CHECK(!memcmp(r.params, q.params, q.n_params * sizeof(float)));
        CHECK(r.metrics.rmse == 1.5 && r.metrics.tau == 0.7 && r.metrics.n_train == 80);
        CHECK(r.metrics.has_scratch && r.metrics.scratch_rmse == 2.5);
        struct arch a[40];
        float pa[40], pb[40];
        struct rng g;
        rng_init(&g, 1, RNG_SAMPLE);
        for (int i = 0; i < 40; i++) arch_sample(&s, &g, 1, &a[i]);
        rng_free(&g);
        predictor_predict(&q, &s, a, 40, pa);
        predictor_predict(&r, &s, a, 40, pb);
        CHECK(!memcmp(pa, pb, sizeof pa));
    }
    predictor_free(&r);
    predictor_free(&q);
}

TEST(pred_load_refuses_other_space) {
    struct space s = pred_space("fmnist-mbv2"), t = pred_space("tiny");
    struct predictor q, r;
    make_quant(&s, &q);
    char path[600];
    snprintf(path, sizeof path, "%s/p.h5", test_tmpdir);
    CHECK(predictor_save(&q, &s, path, 4, "tiny") == APQ_OK);
    CHECK(predictor_load(&r, path, &t) == APQ_EMISMATCH);
    CHECK(strstr(apq_last_error(), path) && strstr(apq_last_error(), "make"));
    CHECK(r.params == NULL);
    snprintf(path, sizeof path, "%s/missing.h5", test_tmpdir);
    CHECK(predictor_load(&r, path, &s) == APQ_EIO);
    predictor_free(&q);
}

/* A predictor whose weights are not finite predicts NaN for every arch: the
 * reader refuses it, naming the tensor (fuzz/fuzz_h5.c asserts a loaded
 * predictor predicts a finite accuracy). */
TEST(pred_load_refuses_non_finite) {
    struct space s = pred_space("fmnist-mbv2");
    struct predictor q, r;
    make_quant(&s, &q);
    char path[600];
    snprintf(path, sizeof path, "%s/nan.h5", test_tmpdir);
    q.params[q.n_params - 1] = NAN; /* the regressor's bias */
    CHECK(predictor_save(&q, &s, path, 4, "tiny") == APQ_OK);
    CHECK(predictor_load(&r, path, &s) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "nan.h5") && strstr(apq_last_error(), "not finite"));
    CHECK(r.params == NULL);
    predictor_free(&q);
}

// ---- metrics -------------------------------------------------------------------------

TEST(pred_kendall_tau) {
    double a[] = {1, 2, 3, 4, 5}, b[] = {3, 1, 2, 5, 4}, rev[] = {5, 4, 3, 2, 1};
    CHECK_NEAR(kendall_tau(a, a, 5), 1.0, 1e-12);
    CHECK_NEAR(kendall_tau(a, rev, 5), -1.0, 1e-12);
    CHECK_NEAR(kendall_tau(a, b, 5), 0.4, 1e-12); /* 7 concordant, 3 discordant */
    /* ties: one pair tied in x only, one in y only: 4 / sqrt(5 * 5) */
    double tx[] = {1, 2, 2, 3}, ty[] = {1, 3, 2, 3};
    CHECK_NEAR(kendall_tau(tx, ty, 4), 0.8, 1e-12);
    /* a pair tied on both sides counts in both corrections: (2 - 0) / sqrt(2 * 2) */
    double ux[] = {1, 1, 2}, uy[] = {5, 5, 7};
    CHECK_NEAR(kendall_tau(ux, uy, 3), 1.0, 1e-12);
    double c[] = {2, 2, 2};
    CHECK_NEAR(kendall_tau(a, c, 3), 0.0, 0);
}

TEST(pred_rmse_points) {
    double p[] = {0.5, 0.6}, t[] = {0.5, 0.8};
    CHECK_NEAR(rmse_points(p, t, 2), 100.0 * sqrt(0.02), 1e-9);
    CHECK_NEAR(rmse_points(t, t, 2), 0.0, 0);
}
