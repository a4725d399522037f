/* test_quant.c — fake quantization (exact levels, round-half-even, ranges,
 * passthrough), the PACT/STE backward (finite differences on the clip, the
 * stated expectation for the rounding), and range calibration (max|w|, the
 * KL-J threshold against HAQ's numpy code, the clamp at 6).
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../quant/quant.h"
#include "../util/util.h"

// ---- weights ---------------------------------------------------------------

TEST(quant_weight_4bit_levels) {
    /* bits 4, T = 1: s = 1/7, levels k/7 for k in -7..7; row stride 5 > 3 columns */
    const float w[10] = {0.3f, -0.44f, 1.5f, 99, 99, -2.0f, 0.07f, 0.93f, 99, 99};
    const float want[6] = {2 / 7.f, -3 / 7.f, 1, -1, 0, 1.0f};
    float wq[6];
    quant_weight_fake(wq, w, 2, 3, 5, 4, 1.0f);
    for (int i = 0; i < 6; i++) CHECK_NEAR(wq[i], want[i], 1e-7);
    /* every output of a random tensor is an integer multiple of s within [-T, T] */
    struct rng r;
    rng_init(&r, 21, RNG_INIT);
    float x[200], xq[200];
    for (int i = 0; i < 200; i++) x[i] = (float)rng_normal(&r, 0.5);
    const float T = 0.8f, s = T / 7;
    quant_weight_fake(xq, x, 10, 20, 20, 4, T);
    int bad = 0;
    for (int i = 0; i < 200; i++) {
        float k = xq[i] / s;
        bad += fabsf(k - nearbyintf(k)) > 1e-4f || fabsf(xq[i]) > T * (1 + 1e-6f) ||
               fabsf(xq[i] - fminf(fmaxf(x[i], -T), T)) > s / 2 * (1 + 1e-5f);
    }
    CHECK(bad == 0);
    rng_free(&r);
}

TEST(quant_round_half_even) {
    /* weights bits 3, T = 3: s = 1 */
    const float w[6] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f}, ww[6] = {0, 2, 2, 0, -2, -2};
    float wq[6];
    quant_weight_fake(wq, w, 1, 6, 6, 3, 3.0f);
    for (int i = 0; i < 6; i++) CHECK(wq[i] == ww[i]);
    /* unsigned activations bits 2, R = 3: s = 1, range [0, 3] */
    const float x[5] = {0.5f, 1.5f, 2.5f, -1, 4}, xw[5] = {0, 2, 2, 0, 3};
    float y[5];
    quant_act_forward(y, x, 5, 2, 3.0f, 0);
    for (int i = 0; i < 5; i++) CHECK(y[i] == xw[i]);
    /* signed activations bits 3, R = 3: s = 3/(2^2-1) = 1, range [-3, 3] */
    const float xs[5] = {-2.5f, -4, 1.5f, 3.5f, -0.5f}, xsw[5] = {-2, -3, 2, 3, 0};
    quant_act_forward(y, xs, 5, 3, 3.0f, 1);
    for (int i = 0; i < 5; i++) CHECK(y[i] == xsw[i]);
}

TEST(quant_act_ranges) {
    float x[4] = {-1, 7, 3, 6}, y[4];
    quant_act_forward(y, x, 4, 8, 6.0f, 0); /* unsigned 8 bit: s = 6/255 */
    CHECK(y[0] == 0 && y[1] == 6 && y[3] == 6);
    CHECK_NEAR(y[2], nearbyintf(3 / (6 / 255.f)) * (6 / 255.f), 1e-7);
    x[0] = -7;
    quant_act_forward(y, x, 4, 8, 6.0f, 1); /* signed 8 bit: s = 6/127 */
    CHECK(y[0] == -6 && y[1] == 6);
    CHECK_NEAR(y[2], nearbyintf(3 / (6 / 127.f)) * (6 / 127.f), 1e-7);
    /* 4-bit unsigned has 16 levels, 4-bit signed 15 */
    float ramp[1000], q[1000];
    for (int i = 0; i < 1000; i++) ramp[i] = -7 + 14 * i / 999.f;
    for (int sg = 0; sg < 2; sg++) {
        quant_act_forward(q, ramp, 1000, 4, 6.0f, sg);
        int distinct = 1;
        for (int i = 1; i < 1000; i++) distinct += q[i] != q[i - 1];
        CHECK(distinct == (sg ? 15 : 16));
    }
}

TEST(quant_bits0_passthrough) {
    const float w[6] = {0.123f, -9, 7, 5, 1e-9f, 3};
    float wq[4];
    quant_weight_fake(wq, w, 2, 2, 3, 0, 1.0f);
    CHECK(wq[0] == w[0] && wq[1] == w[1] && wq[2] == w[3] && wq[3] == w[4]);
    float x[3] = {-8, 0.3f, 100}, y[3];
    quant_act_forward(y, x, 3, 0, 6.0f, 0);
    CHECK(!memcmp(x, y, sizeof x));
    quant_act_forward(x, x, 3, 0, 6.0f, 1); /* in place */
    CHECK(!memcmp(x, y, sizeof x));
    quant_act_forward(x, x, 3, 8, 6.0f, 0); /* in place, quantized */
    CHECK(x[0] == 0 && x[2] == 6);
}

// ---- activation backward -----------------------------------------------------

static struct {
    int n, is_signed;
    float *x, *rr, R;
} ab;

/* L = sum r * clip(x; R), in double: the differentiable part of the quantizer */
static double clip_loss(void) {
    double s = 0, lo = ab.is_signed ? -ab.R : 0;
    for (int i = 0; i < ab.n; i++) s += ab.rr[i] * fmin(fmax(ab.x[i], lo), ab.R);
    return s;
}

TEST(quant_act_backward_fd_clip) {
    struct rng r;
    rng_init(&r, 22, RNG_INIT);
    ab.n = 300, ab.R = 2.5f;
    ab.x = malloc(sizeof(float) * ab.n), ab.rr = malloc(sizeof(float) * ab.n);
    float *dx = malloc(sizeof(float) * ab.n), *fd = malloc(sizeof(float) * ab.n);
    for (ab.is_signed = 0; ab.is_signed < 2; ab.is_signed++) {
        for (int i = 0; i < ab.n; i++) { /* in [-5, 5], away from the kinks 0 and +-R */
            float v;
            do v = (float)(rng_uniform(&r) * 10 - 5);
            while (fabsf(v) < 0.01f || fabsf(fabsf(v) - ab.R) < 0.01f);
            ab.x[i] = v;
            ab.rr[i] = (float)rng_normal(&r, 1);
        }
        float dR = 1.0f; /* accumulated onto */
        quant_act_backward(dx, &dR, ab.rr, ab.x, ab.n, ab.R, ab.is_signed);
        for (int i = 0; i < ab.n; i++) {
            float *p = &ab.x[i], old = *p;
            *p = old + 1e-3f;
            double fp = clip_loss();
            *p = old - 1e-3f;
            double fm = clip_loss();
            *p = old;
            fd[i] = (float)((fp - fm) / ((double)(old + 1e-3f) - (double)(old - 1e-3f)));
        }
        CHECK_ARRAY_REL(dx, fd, ab.n, 1e-4);
        float R0 = ab.R;
        ab.R = R0 + 1e-3f;
        double fp = clip_loss();
        ab.R = R0 - 1e-3f;
        double fm = clip_loss();
        ab.R = R0;
        double want = 1 + (fp - fm) / ((double)(R0 + 1e-3f) - (double)(R0 - 1e-3f));
        CHECK_NEAR(dR, want, 1e-4 * (1 + fabs(want)));
    }
    free(ab.x), free(ab.rr), free(dx), free(fd);
    rng_free(&r);
}

TEST(quant_act_backward_ste) {
    /* STE: inside the clip interval the gradient passes unchanged although the
     * forward is a staircase; outside it is 0 and goes to R; exactly at a clip
     * boundary both get half (autograd's |.| subgradient in QModule's clip). */
    const float R = 3.0f;
    const float x[7] = {0.999f, 1.4f, -0.2f, 4.0f, 3.0f, 0.0f, 2.9999f};
    float dy[7] = {1, 2, 3, 4, 5, 6, 7}, dR = 0;
    quant_act_backward(dy, &dR, dy, x, 7, R, 0); /* dx aliases dy */
    const float want[7] = {1, 2, 0, 0, 2.5f, 3, 7};
    for (int i = 0; i < 7; i++) CHECK(dy[i] == want[i]);
    CHECK(dR == 4 + 2.5f);
    const float xs[5] = {-3.5f, -3.0f, -2.0f, 3.0f, 5.0f};
    float g[5] = {1, 1, 1, 1, 1}, dx[5];
    dR = 0;
    quant_act_backward(dx, &dR, g, xs, 5, R, 1);
    const float wants[5] = {0, 0.5f, 1, 0.5f, 0};
    for (int i = 0; i < 5; i++) CHECK(dx[i] == wants[i]);
    CHECK(dR == -1 - 0.5f + 0.5f + 1);
    quant_act_backward(dx, NULL, g, xs, 5, R, 1); /* dR may be NULL */
    CHECK(dx[1] == 0.5f);
}

TEST(quant_act_backward_thread_independent) {
    struct rng r;
    rng_init(&r, 23, RNG_INIT);
    const size_t n = 200000;
    float *x = malloc(sizeof(float) * n), *dy = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)rng_normal(&r, 3), dy[i] = (float)rng_normal(&r, 1);
    float d1 = 0, d3 = 0;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    quant_act_backward(NULL, &d1, dy, x, n, 2.0f, 1);
    omp_set_num_threads(3);
    quant_act_backward(NULL, &d3, dy, x, n, 2.0f, 1);
    omp_set_num_threads(saved);
    CHECK(d1 == d3 && d1 != 0);
    free(x), free(dy);
    rng_free(&r);
}

// ---- calibration ---------------------------------------------------------------

TEST(quant_weight_range_max) {
    const float w[8] = {0.5f, -1.25f, 0.75f, 100, -0.25f, 1.0f, 0.1f, -100}; /* 3 cols, ldw 4 */
    CHECK(quant_weight_range(w, 2, 3, 4, 8) == 1.25f);
    CHECK(quant_weight_range(w, 2, 3, 4, 6) == 1.25f);
    CHECK(quant_weight_range(w, 2, 3, 4, 5) == 1.25f);
    /* 4 bits: KL threshold; too few bins (ceil(sqrt(6)) = 3 < 2^3+1) -> max|w| */
    CHECK(quant_weight_range(w, 2, 3, 4, 4) == 1.25f);
    const float z[4] = {0, 0, 0, 0};
    CHECK(quant_weight_range(z, 2, 2, 2, 8) == 1e-8f);
    CHECK(quant_weight_range(z, 2, 2, 2, 4) == 1e-8f);
}

/* Deterministic pseudo-Gaussian with outliers, shared with the generator of
 * the golden values below. */
static void golden_data(float *x, int n) {
    for (int i = 0; i < n; i++) {
        double u1 = (i + 0.5) / n, u2 = fmod(i * 0.6180339887498949, 1.0);
        x[i] = (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
    }
    for (int i = 0; i < 10; i++) x[i] = (float)((15 + i) * (i % 2 ? 1 : -1));
    x[10] = 0;
}

TEST(quant_kl_threshold_haq_golden) {
    /* Golden values: HAQ/APQ QModule._compute_threshold (numpy 1.24, float64)
     * on the same data: x[i] = float32(sqrt(-2 log((i+.5)/N)) cos(2 pi frac(i*0.618...))),
     * N = 5000, x[0..9] = (-1)^(i+1) (15+i), x[10] = 0 (71 bins, max 24). */
    enum { N = 5000 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    golden_data(x, N);
    CHECK_REL(quant_kl_threshold(x, N, 2), 1.8591548949480057, 1e-6);
    CHECK_REL(quant_kl_threshold(x, N, 3), 2.535211220383644, 1e-6);
    CHECK_REL(quant_kl_threshold(x, N, 4), 3.2112675458192825, 1e-6);
    /* ReLU6-like data y = clip(2x+1, 0, 6): HAQ gives 5.112675961107016 for 3
     * bits, and 6.0422534 (the last cut, half a bin past max|y| = 6) for 4 bits,
     * which we clamp to max|y|. */
    for (int i = 0; i < N; i++) y[i] = fminf(fmaxf(x[i] * 2 + 1, 0), 6);
    CHECK_REL(quant_kl_threshold(y, N, 3), 5.112675961107016, 1e-6);
    CHECK(quant_kl_threshold(y, N, 4) == 6.0f);
    /* the weight range for < 5 bits is this threshold (ibits = bits), strided */
    float *w2 = malloc(sizeof(float) * 2 * N);
    for (int i = 0; i < N; i++)
        w2[(i / 100) * 200 + i % 100] = x[i], w2[(i / 100) * 200 + 100 + i % 100] = 1e6f;
    CHECK_REL(quant_weight_range(w2, 50, 100, 200, 3), 2.535211220383644, 1e-6);
    free(x), free(y), free(w2);
}

TEST(quant_kl_threshold_gaussian_outliers) {
    struct rng r;
    rng_init(&r, 24, RNG_INIT);
    enum { N = 20000 };
    float *x = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) x[i] = (float)rng_normal(&r, 1);
    for (int i = 0; i < 20; i++) x[i * 997] = 30.0f * (i % 2 ? 1 : -1); /* outliers at 30 sigma */
    for (int ib = 2; ib <= 4; ib++) {
        float t = quant_kl_threshold(x, N, ib);
        CHECK(t > 1.0f && t < 6.0f); /* clips the outliers, keeps the bulk */
    }
    /* more levels keep more of the tail */
    CHECK(quant_kl_threshold(x, N, 4) >= quant_kl_threshold(x, N, 2));
    /* fewer bins than levels: max|x| */
    CHECK(quant_kl_threshold(x, 9, 3) == 30.0f); /* x[0] is an outlier */
    free(x);
    rng_free(&r);
}

TEST(quant_act_range_clamps_at_6) {
    struct rng r;
    rng_init(&r, 25, RNG_INIT);
    enum { N = 4096 };
    float *x = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) x[i] = (float)(rng_uniform(&r) * 10); /* max ~10 */
    CHECK(quant_act_range(x, N, 8, 0) == 6.0f);
    CHECK(quant_act_range(x, N, 6, 1) == 6.0f); /* signed 6 bits: internal 5, no KL */
    float mx = 0;
    for (int i = 0; i < N; i++) mx = fmaxf(mx, x[i] *= 0.3f); /* max ~3 */
    CHECK(quant_act_range(x, N, 8, 0) == mx);
    /* internal bits < 5: also the KL threshold (4-bit unsigned: 4; 4-bit signed: 3) */
    CHECK(quant_act_range(x, N, 4, 0) == fminf(mx, quant_kl_threshold(x, N, 4)));
    CHECK(quant_act_range(x, N, 4, 1) == fminf(mx, quant_kl_threshold(x, N, 3)));
    CHECK(quant_act_range(x, N, 4, 1) <= mx);
    CHECK(quant_act_range(x, N, 0, 0) == mx); /* not quantized: no KL */
    memset(x, 0, sizeof(float) * N);
    CHECK(quant_act_range(x, N, 4, 0) > 0);
    free(x);
    rng_free(&r);
}
