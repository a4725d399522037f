/* test_predictor.c — the encoding, the MLP's gradients, training, transfer, files, metrics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../predictor/predictor.h"
#include "../util/h5.h"

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
    double after = 0;
    CHECK(predictor_train(&p, xtr, ytr, ntr, &cfg, 5, &after) == APQ_OK);
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
    CHECK(predictor_train(&p2, xtr, ytr, ntr, &cfg, 9, NULL) == APQ_OK);
    CHECK(predictor_train(&p3, xtr, ytr, ntr, &cfg, 9, NULL) == APQ_OK);
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

// ---- ensembles -----------------------------------------------------------------------

/* A member whose output is the constant c: every weight zero, regressor bias c. */
static void set_constant(struct predictor *p, float c) {
    memset(p->params, 0, p->n_params * sizeof(float));
    p->v.bo[0] = c;
}

TEST(pred_ensemble_mean_sd_by_hand) {
    struct pred_ensemble e;
    CHECK(pred_ensemble_init(&e, 3, 4, 0, 5, 2, 7) == APQ_OK);
    set_constant(&e.m[0], 0.5f);
    set_constant(&e.m[1], 0.6f);
    set_constant(&e.m[2], 0.8f);
    float x[2 * 4] = {1, 0, 0, 1, 0, 1, 1, 0}, mean[2], sd[2];
    pred_ensemble_forward(&e, x, 2, mean, sd);
    /* mean (0.5 + 0.6 + 0.8) / 3; sample sd: deviations -2/15, -1/30, 1/6, squares
     * summing to 7/150, over k - 1 = 2 */
    for (int i = 0; i < 2; i++) {
        CHECK_NEAR(mean[i], 1.9 / 3, 1e-6);
        CHECK_NEAR(sd[i], sqrt(7.0 / 300), 1e-6);
    }
    /* random members: mean and n-1 sd of the members' own forward passes */
    for (int i = 0; i < 3; i++) predictor_free(&e.m[i]);
    CHECK(pred_ensemble_init(&e, 3, 4, 0, 5, 2, 7) == APQ_OK);
    float out[3][2];
    for (int i = 0; i < 3; i++) predictor_forward(&e.m[i], x, 2, out[i]);
    CHECK(out[0][0] != out[1][0]); /* own seeds */
    pred_ensemble_forward(&e, x, 2, mean, sd);
    for (int j = 0; j < 2; j++) {
        double m = (out[0][j] + out[1][j] + out[2][j]) / 3.0, v = 0;
        for (int i = 0; i < 3; i++) v += (out[i][j] - m) * (out[i][j] - m) / 2.0;
        CHECK_NEAR(mean[j], m, 1e-6);
        CHECK_NEAR(sd[j], sqrt(v), 1e-6);
    }
    pred_ensemble_forward(&e, x, 2, mean, NULL); /* sd may be NULL */
    /* one member: its own output, spread 0 */
    struct pred_ensemble one;
    CHECK(pred_ensemble_init(&one, 1, 4, 0, 5, 2, 7) == APQ_OK);
    CHECK(!memcmp(one.m[0].params, e.m[0].params, e.m[0].n_params * sizeof(float)));
    pred_ensemble_forward(&one, x, 2, mean, sd);
    CHECK(mean[0] == out[0][0] && mean[1] == out[0][1] && sd[0] == 0 && sd[1] == 0);
    pred_ensemble_free(&one);
    CHECK(pred_ensemble_init(&one, 0, 4, 0, 5, 2, 7) == APQ_ECONFIG);
    CHECK(pred_ensemble_init(&one, PRED_MAX_MEMBERS + 1, 4, 0, 5, 2, 7) == APQ_ECONFIG);
    pred_ensemble_free(&one);
    pred_ensemble_free(&e);
}

TEST(pred_ensemble_transfer_members) {
    struct space s = pred_space("tiny");
    struct pred_ensemble f, q;
    CHECK(pred_ensemble_init(&f, 3, encode_fp32_dim(&s), 0, 16, 3, 1) == APQ_OK);
    CHECK(pred_ensemble_init_transfer(&q, &f, encode_bits_dim(&s), 2) == APQ_OK);
    CHECK(q.k == 3);
    for (int i = 0; i < 3; i++) { /* member i starts from fp32 member i */
        struct predictor one;
        CHECK(predictor_init_transfer(&one, &f.m[i], encode_bits_dim(&s), pred_member_seed(2, i)) ==
              APQ_OK);
        CHECK(!memcmp(one.params, q.m[i].params, one.n_params * sizeof(float)));
        CHECK(!memcmp(q.m[i].v.w[1], f.m[i].v.w[1], 16 * 16 * sizeof(float)));
        predictor_free(&one);
    }
    CHECK(memcmp(q.m[0].v.w[1], q.m[1].v.w[1], 16 * 16 * sizeof(float)));
    CHECK(pred_member_seed(5, 0) == 5 && pred_member_seed(1, 1) != 2);
    pred_ensemble_free(&q);
    pred_ensemble_free(&f);
}

/* Training rows that pull the output to 0.9, validation rows (a copy of the
 * first 8 inputs) that want 0.1 (all zero in x, so only biases matter at init). */
static void diverging_sets(float *x, float *y, float *xv, float *yv) {
    for (int i = 0; i < 16; i++) {
        for (int j = 0; j < 4; j++) x[i * 4 + j] = (float)((i + j) % 3 == 0);
        y[i] = 0.9f;
    }
    memcpy(xv, x, 8 * 4 * sizeof(float));
    for (int i = 0; i < 8; i++) yv[i] = 0.1f;
}

TEST(pred_early_stopping_keeps_best_epoch) {
    float x[64], y[16], xv[32], yv[8];
    diverging_sets(x, y, xv, yv);
    struct pred_train_cfg cfg = {.epochs = 40, .batch = 8, .lr = 1e-2, .patience = 1};
    struct predictor p[4];
    struct pred_fit f[4];
    for (int i = 0; i < 4; i++) CHECK(predictor_init(&p[i], 4, 0, 8, 2, 3) == APQ_OK);
    /* starting at 0.5, every epoch moves away from 0.1: the first epoch is best */
    for (int i = 0; i < 3; i++) predictor_set_base(&p[i], 0.5);
    float *init = malloc(p[0].n_params * sizeof(float));
    memcpy(init, p[0].params, p[0].n_params * sizeof(float));
    double v0 = predictor_loss_grad(&p[0], xv, yv, 8, NULL);
    CHECK(predictor_train_val(&p[0], x, y, 16, xv, yv, 8, &cfg, 9, &f[0]) == APQ_OK);
    cfg.patience = 5;
    CHECK(predictor_train_val(&p[1], x, y, 16, xv, yv, 8, &cfg, 9, &f[1]) == APQ_OK);
    cfg.patience = 0; /* off: all 40 epochs, the last parameters */
    CHECK(predictor_train_val(&p[2], x, y, 16, xv, yv, 8, &cfg, 9, &f[2]) == APQ_OK);
    CHECK(f[0].best_epoch == 1 && f[0].epochs_run == 2 && f[0].val_loss > v0);
    CHECK(f[1].best_epoch == 1 && f[1].epochs_run == 6 && f[1].val_loss == f[0].val_loss);
    CHECK(f[2].best_epoch == 40 && f[2].epochs_run == 40 && f[2].val_loss == 0);
    /* both kept epoch 1's parameters: the same bits, not the initial ones */
    CHECK(!memcmp(p[0].params, p[1].params, p[0].n_params * sizeof(float)));
    CHECK(memcmp(p[0].params, init, p[0].n_params * sizeof(float)));
    CHECK(predictor_loss_grad(&p[0], xv, yv, 8, NULL) == f[0].val_loss);
    CHECK(predictor_loss_grad(&p[2], xv, yv, 8, NULL) > f[0].val_loss);
    /* starting at 0, the output rises through 0.1 on its way to 0.9: the best
     * epoch lies between, and its parameters (not the last) are kept */
    predictor_set_base(&p[3], 0.0);
    cfg.lr = 2e-3;
    cfg.patience = 3;
    CHECK(predictor_train_val(&p[3], x, y, 16, xv, yv, 8, &cfg, 9, &f[3]) == APQ_OK);
    fprintf(stderr, "  kept epoch %d of %d, validation MSE %.4g\n", f[3].best_epoch,
            f[3].epochs_run, f[3].val_loss);
    CHECK(f[3].best_epoch >= 1 && f[3].epochs_run == f[3].best_epoch + 3);
    CHECK(f[3].epochs_run < 40);
    CHECK(predictor_loss_grad(&p[3], xv, yv, 8, NULL) == f[3].val_loss);
    /* the same run without stopping passes the minimum: its last loss is higher */
    struct predictor q;
    CHECK(predictor_init(&q, 4, 0, 8, 2, 3) == APQ_OK);
    predictor_set_base(&q, 0.0);
    cfg.patience = 0;
    CHECK(predictor_train_val(&q, x, y, 16, xv, yv, 8, &cfg, 9, NULL) == APQ_OK);
    CHECK(predictor_loss_grad(&q, xv, yv, 8, NULL) > f[3].val_loss);
    cfg.patience = -1;
    CHECK(predictor_train_val(&q, x, y, 16, xv, yv, 8, &cfg, 9, NULL) == APQ_ECONFIG);
    for (int i = 0; i < 4; i++) predictor_free(&p[i]);
    predictor_free(&q);
    free(init);
}

TEST(pred_ensemble_train_folds) {
    struct space s = pred_space("fmnist-mbv2");
    int n = 100, dim = encode_dim(&s, 0), nv = -1;
    float *x = malloc(sizeof(float) * n * dim), *y = malloc(sizeof(float) * n);
    synth_set(&s, 0, n, 4, x, y);
    struct pred_ensemble e;
    CHECK(pred_ensemble_init(&e, 5, dim, 0, 32, 2, 4) == APQ_OK);
    pred_ensemble_set_base(&e, 0.8);
    struct pred_train_cfg cfg = {
        .epochs = 30, .batch = 32, .lr = 1e-3, .patience = 5, .val_fraction = 0.2};
    struct pred_fit fit[5];
    CHECK(pred_ensemble_train(&e, x, y, n, &cfg, 4, &nv, fit) == APQ_OK);
    CHECK(nv == 20);
    for (int i = 0; i < 5; i++)
        CHECK(fit[i].best_epoch >= 1 && fit[i].best_epoch <= fit[i].epochs_run &&
              fit[i].val_loss > 0);
    /* deterministic; 2 rows leave nothing for validation */
    struct pred_ensemble e2;
    CHECK(pred_ensemble_init(&e2, 5, dim, 0, 32, 2, 4) == APQ_OK);
    pred_ensemble_set_base(&e2, 0.8);
    CHECK(pred_ensemble_train(&e2, x, y, n, &cfg, 4, &nv, NULL) == APQ_OK);
    for (int i = 0; i < 5; i++)
        CHECK(!memcmp(e.m[i].params, e2.m[i].params, e.m[i].n_params * sizeof(float)));
    CHECK(pred_ensemble_train(&e2, x, y, 2, &cfg, 4, &nv, fit) == APQ_OK);
    CHECK(nv == 0 && fit[0].epochs_run == 30);
    pred_ensemble_free(&e2);
    pred_ensemble_free(&e);
    free(x), free(y);
}

// ---- files ---------------------------------------------------------------------------

static void make_quant(const struct space *s, struct pred_ensemble *q) {
    struct pred_ensemble f;
    CHECK(pred_ensemble_init(&f, 2, encode_fp32_dim(s), 0, 48, 3, 4) == APQ_OK);
    CHECK(pred_ensemble_init_transfer(q, &f, encode_bits_dim(s), 4) == APQ_OK);
    q->metrics = (struct pred_metrics){1.5, 0.7, 1.75, 0.65, 1, 2.5, 0.5};
    q->prov = (struct pred_provenance){
        "tiny", "runs/tiny/samples-quant.h5", 0xfedcba9876543210ULL, 80, 16, 20};
    pred_ensemble_free(&f);
}

TEST(pred_save_load_roundtrip) {
    struct space s = pred_space("fmnist-mbv2");
    struct pred_ensemble q, r;
    make_quant(&s, &q);
    char path[600];
    snprintf(path, sizeof path, "%s/predictor-quant.h5", test_tmpdir);
    int rc = pred_ensemble_save(&q, &s, path, 4);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    rc = pred_ensemble_load(&r, path, &s);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    if (rc == APQ_OK) {
        CHECK(r.k == 2 && r.m[1].n_params == q.m[1].n_params && r.m[0].bit_dim == q.m[0].bit_dim);
        for (int i = 0; i < 2; i++)
            CHECK(!memcmp(r.m[i].params, q.m[i].params, q.m[i].n_params * sizeof(float)));
        CHECK(r.metrics.rmse == 1.5 && r.metrics.tau == 0.7 && r.metrics.member_rmse == 1.75 &&
              r.metrics.member_tau == 0.65);
        CHECK(r.metrics.has_scratch && r.metrics.scratch_rmse == 2.5 &&
              r.metrics.scratch_tau == 0.5);
        CHECK(!strcmp(r.prov.profile, "tiny") &&
              !strcmp(r.prov.samples, "runs/tiny/samples-quant.h5"));
        CHECK(r.prov.samples_hash == 0xfedcba9876543210ULL && r.prov.n_train == 80 &&
              r.prov.n_val == 16 && r.prov.n_held_out == 20);
        struct arch a[40];
        float pa[40], pb[40], sa[40], sb[40];
        struct rng g;
        rng_init(&g, 1, RNG_SAMPLE);
        for (int i = 0; i < 40; i++) arch_sample(&s, &g, 1, &a[i]);
        rng_free(&g);
        pred_ensemble_predict(&q, &s, a, 40, pa, sa);
        pred_ensemble_predict(&r, &s, a, 40, pb, sb);
        CHECK(!memcmp(pa, pb, sizeof pa) && !memcmp(sa, sb, sizeof sa));
        CHECK(sa[0] > 0);
        /* one MLP from the file: member 0 */
        struct predictor one;
        CHECK(predictor_load(&one, path, &s) == APQ_OK);
        CHECK(one.n_params == q.m[0].n_params &&
              !memcmp(one.params, q.m[0].params, one.n_params * sizeof(float)));
        predictor_free(&one);
    }
    pred_ensemble_free(&r);
    pred_ensemble_free(&q);
}

/* Overwrite the i64 attribute `name` of the file at path. */
static void set_attr_i64(const char *path, const char *name, int64_t v) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(f >= 0);
    CHECK(H5Adelete(f, name) >= 0);
    CHECK(h5_attr_set_i64(f, name, v) == APQ_OK);
    H5Fclose(f);
}

TEST(pred_load_refuses_other_space_or_encoding) {
    struct space s = pred_space("fmnist-mbv2"), t = pred_space("tiny");
    struct pred_ensemble q, r;
    make_quant(&s, &q);
    char path[600];
    snprintf(path, sizeof path, "%s/p.h5", test_tmpdir);
    CHECK(pred_ensemble_save(&q, &s, path, 4) == APQ_OK);
    CHECK(pred_ensemble_load(&r, path, &t) == APQ_EMISMATCH);
    const char *e = apq_last_error();
    CHECK(strstr(e, path) && strstr(e, "trained for space 'fmnist-mbv2'") &&
          strstr(e, "not for 'tiny'") && strstr(e, "PREDICTOR=") && strstr(e, "make"));
    CHECK(r.k == 0 && r.m[0].params == NULL);
    set_attr_i64(path, "encoding_version", PRED_ENCODING_VERSION + 1);
    CHECK(pred_ensemble_load(&r, path, &s) == APQ_EMISMATCH);
    e = apq_last_error();
    CHECK(strstr(e, path) && strstr(e, "encoding version 2, this build uses 1") &&
          strstr(e, "make"));
    /* a version-1 file (one MLP, before ensembles) */
    CHECK(pred_ensemble_save(&q, &s, path, 4) == APQ_OK);
    set_attr_i64(path, "format_version", 1);
    CHECK(pred_ensemble_load(&r, path, &s) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "format_version is 1, expected 2"));
    snprintf(path, sizeof path, "%s/missing.h5", test_tmpdir);
    CHECK(pred_ensemble_load(&r, path, &s) == APQ_EIO);
    pred_ensemble_free(&q);
}

TEST(pred_samples_hash_covers_rows) {
    /* FNV-1a 64 test vector: "a" */
    CHECK(apq_fnv1a(APQ_FNV_OFFSET, "a", 1) == 0xaf63dc4c8601ec8cULL);
    const char *arch[2] = {"r12_k3m48", "r12_k5m48"}, *swapped[2] = {"r12_k5m48", "r12_k3m48"};
    double acc[2] = {0.5, 0.75}, acc2[2] = {0.5, nextafter(0.75, 1)};
    uint64_t h = pred_samples_hash(arch, acc, 2);
    CHECK(h == pred_samples_hash(arch, acc, 2));
    CHECK(h != pred_samples_hash(arch, acc2, 2));
    CHECK(h != pred_samples_hash(swapped, acc, 2));
    CHECK(h != pred_samples_hash(arch, acc, 1));
}

TEST(pred_split_held_out) {
    int perm[60], ntr;
    CHECK(predictor_split_held_out(60, 50, 1, perm, &ntr) == APQ_OK && ntr == 10);
    CHECK(predictor_split_held_out(10, 0.01, 1, perm, &ntr) == APQ_OK && ntr == 9);
    CHECK(predictor_split_held_out(60, 0.25, 1, perm, &ntr) == APQ_OK && ntr == 45);
    int seen[60] = {0};
    for (int i = 0; i < 60; i++) seen[perm[i]]++;
    for (int i = 0; i < 60; i++) CHECK(seen[i] == 1);
    int perm2[60];
    CHECK(predictor_split_held_out(60, 0.25, 1, perm2, &ntr) == APQ_OK);
    CHECK(!memcmp(perm, perm2, sizeof perm)); /* seeded */
    CHECK(predictor_split_held_out(60, 0.25, 2, perm2, &ntr) == APQ_OK);
    CHECK(memcmp(perm, perm2, sizeof perm));
    CHECK(predictor_split_held_out(60, 59, 1, perm, &ntr) == APQ_ECONFIG);
    CHECK(strstr(apq_last_error(), "leaves 1 training rows; at least 2"));
    CHECK(predictor_split_held_out(60, 2.5, 1, perm, &ntr) == APQ_ECONFIG);
    CHECK(predictor_split_held_out(60, 0, 1, perm, &ntr) == APQ_ECONFIG);
    /* the old 80/20 split is the fraction 0.2 */
    predictor_split(50, 3, perm2, &ntr);
    CHECK(ntr == 40);
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
