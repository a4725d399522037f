/* test_nn.c — nn kernels: optimised vs naive references on random and sliced
 * shapes, finite-difference gradient checks of every backward, accumulation
 * of parameter gradients, thread-count independence, optimizers against
 * torch.optim values, the arena.
 *
 * Tolerances: kernel vs reference, max error relative to the array's largest
 * magnitude <= 1e-5 (float sums of <= 1,200 terms against double references).
 * Gradient checks: central differences of L = sum(r * forward) evaluated by
 * the float kernels and summed in double; for ops linear in the perturbed
 * input a large step (0.25) makes the difference exact up to rounding (tol
 * 1e-4); for BN and softmax the step is 1e-2 and the tolerance 2e-3.
 */
#include <float.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "../nn/nn.h"
#include "../util/util.h"

// ---- helpers -----------------------------------------------------------------

static float *randn(struct rng *r, size_t n, double sigma) {
    float *p = apq_falloc(n);
    for (size_t i = 0; i < n; i++) p[i] = (float)rng_normal(r, sigma);
    return p;
}

static float *zeros(size_t n) {
    float *p = apq_falloc(n);
    memset(p, 0, sizeof(float) * n);
    return p;
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* The objective of a gradient check: a scalar of the current parameters. */
typedef double (*objective)(void);

/* g[i] = (f(p_i + eps) - f(p_i - eps)) / (actual step), for i < n (stride ld
 * between rows of cols elements; g dense rows x cols). */
static void fd_grad(float *g, float *p, int rows, int cols, int ld, float eps, objective f) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float *x = p + (size_t)r * ld + c, old = *x;
            float hi = old + eps, lo = old - eps;
            *x = hi;
            double fp = f();
            *x = lo;
            double fm = f();
            *x = old;
            g[(size_t)r * cols + c] = (float)((fp - fm) / ((double)hi - (double)lo));
        }
}

/* Copy rows x cols from a strided array into a dense one. */
static void gather(float *dst, const float *src, int rows, int cols, int ld) {
    for (int r = 0; r < rows; r++) memcpy(dst + (size_t)r * cols, src + (size_t)r * ld, 4 * cols);
}

// ---- naive backward references (loop nests, scatter form) -------------------

static void ref_dw_backward(float *din, float *dw, int lddw, const float *dout, const float *in,
                            const float *w, int ldw, int N, int H, int W, int C, int k, int s) {
    const int pad = k / 2, OH = nn_out_size(H, k, s), OW = nn_out_size(W, k, s);
    double *di = calloc((size_t)N * H * W * C, sizeof(double));
    double *dwd = calloc((size_t)k * k * C, sizeof(double));
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int kh = 0; kh < k; kh++)
                    for (int kw = 0; kw < k; kw++) {
                        int ih = oh * s - pad + kh, iw = ow * s - pad + kw;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                        for (int c = 0; c < C; c++) {
                            double g = dout[(((size_t)n * OH + oh) * OW + ow) * C + c];
                            size_t ii = (((size_t)n * H + ih) * W + iw) * C + c;
                            di[ii] += g * w[(kh * k + kw) * ldw + c];
                            dwd[(kh * k + kw) * C + c] += g * in[ii];
                        }
                    }
    for (size_t i = 0; i < (size_t)N * H * W * C; i++) din[i] = (float)di[i];
    for (int t = 0; t < k * k; t++)
        for (int c = 0; c < C; c++) dw[t * lddw + c] += (float)dwd[t * C + c];
    free(di);
    free(dwd);
}

// ---- linear ------------------------------------------------------------------

TEST(nn_linear_matches_ref) {
    struct rng r;
    rng_init(&r, 1, RNG_INIT);
    /* M, K, N, ldi, ldw, ldo, bias */
    const int shapes[][7] = {{7, 5, 3, 5, 5, 3, 1},
                             {33, 17, 9, 20, 24, 12, 0},
                             {1, 1, 1, 1, 1, 1, 1},
                             {392, 144, 24, 144, 160, 32, 1},
                             {129, 40, 61, 48, 40, 64, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        const int ldi = shapes[s][3], ldw = shapes[s][4], ldo = shapes[s][5];
        float *in = randn(&r, (size_t)M * ldi, 1), *w = randn(&r, (size_t)N * ldw, 1);
        float *b = shapes[s][6] ? randn(&r, N, 1) : NULL;
        float *got = randn(&r, (size_t)M * ldo, 1), *want = apq_falloc((size_t)M * ldo);
        memcpy(want, got, sizeof(float) * M * ldo); /* padding columns must survive */
        nn_linear_forward(got, ldo, in, ldi, w, ldw, b, M, K, N);
        nn_ref_linear_forward(want, ldo, in, ldi, w, ldw, b, M, K, N);
        CHECK_ARRAY_REL(got, want, (long)M * ldo, 1e-5);
        free(in), free(w), free(b), free(got), free(want);
    }
    rng_free(&r);
}

static struct {
    int M, K, N, ldi, ldw, ldo;
    float *in, *w, *b, *out, *rr;
} lin;

static double lin_loss(void) {
    nn_linear_forward(lin.out, lin.ldo, lin.in, lin.ldi, lin.w, lin.ldw, lin.b, lin.M, lin.K,
                      lin.N);
    double s = 0;
    for (int m = 0; m < lin.M; m++) s += dot(lin.out + m * lin.ldo, lin.rr + m * lin.ldo, lin.N);
    return s;
}

TEST(nn_linear_backward_fd) {
    struct rng r;
    rng_init(&r, 2, RNG_INIT);
    lin.M = 3, lin.K = 4, lin.N = 5, lin.ldi = 6, lin.ldw = 7, lin.ldo = 8;
    lin.in = randn(&r, lin.M * lin.ldi, 1), lin.w = randn(&r, lin.N * lin.ldw, 1);
    lin.b = randn(&r, lin.N, 1), lin.out = zeros(lin.M * lin.ldo),
    lin.rr = randn(&r, lin.M * lin.ldo, 1);
    float *din = zeros(lin.M * 9), *dw = zeros(lin.N * 10), *db = zeros(lin.N);
    nn_linear_backward(din, 9, 0, dw, 10, db, lin.rr, lin.ldo, lin.in, lin.ldi, lin.w, lin.ldw,
                       lin.M, lin.K, lin.N);
    float fd[64], an[64];
    fd_grad(fd, lin.in, lin.M, lin.K, lin.ldi, 0.25f, lin_loss);
    gather(an, din, lin.M, lin.K, 9);
    CHECK_ARRAY_REL(an, fd, lin.M * lin.K, 1e-4);
    fd_grad(fd, lin.w, lin.N, lin.K, lin.ldw, 0.25f, lin_loss);
    gather(an, dw, lin.N, lin.K, 10);
    CHECK_ARRAY_REL(an, fd, lin.N * lin.K, 1e-4);
    fd_grad(fd, lin.b, 1, lin.N, lin.N, 0.25f, lin_loss);
    CHECK_ARRAY_REL(db, fd, lin.N, 1e-4);
    for (int n = 0; n < lin.N; n++)
        for (int c = lin.K; c < 10; c++) CHECK(dw[n * 10 + c] == 0); /* outside the block */

    /* parameter gradients accumulate, the input gradient is overwritten */
    float dw1[64], db1[8], din1[64];
    memcpy(dw1, dw, sizeof(float) * lin.N * 10), memcpy(db1, db, sizeof(float) * lin.N);
    memcpy(din1, din, sizeof(float) * lin.M * 9);
    nn_linear_backward(din, 9, 0, dw, 10, db, lin.rr, lin.ldo, lin.in, lin.ldi, lin.w, lin.ldw,
                       lin.M, lin.K, lin.N);
    for (int i = 0; i < lin.N * 10; i++) CHECK_NEAR(dw[i], 2 * dw1[i], 1e-5 * fabsf(dw1[i]));
    for (int i = 0; i < lin.N; i++) CHECK_NEAR(db[i], 2 * db1[i], 1e-5 * fabsf(db1[i]));
    CHECK(!memcmp(din, din1, sizeof(float) * lin.M * 9));
    /* din_acc: the input gradient adds onto what is there */
    nn_linear_backward(din, 9, 1, NULL, 0, NULL, lin.rr, lin.ldo, lin.in, lin.ldi, lin.w, lin.ldw,
                       lin.M, lin.K, lin.N);
    for (int i = 0; i < lin.M * 9; i++) CHECK_NEAR(din[i], 2 * din1[i], 1e-5 * fabsf(din1[i]));
    /* NULL gradients are skipped */
    nn_linear_backward(NULL, 0, 0, NULL, 0, db, lin.rr, lin.ldo, lin.in, lin.ldi, lin.w, lin.ldw,
                       lin.M, lin.K, lin.N);
    for (int i = 0; i < lin.N; i++) CHECK_NEAR(db[i], 3 * db1[i], 1e-5 * fabsf(db1[i]));
    free(lin.in), free(lin.w), free(lin.b), free(lin.out), free(lin.rr), free(din), free(dw),
        free(db);
    rng_free(&r);
}

// ---- depthwise ---------------------------------------------------------------

/* N, H, W, C, k, stride, ldw: odd sizes, sliced weights, every k and stride */
static const int dw_shapes[][7] = {
    {2, 7, 7, 19, 7, 2, 24},     {3, 5, 6, 16, 5, 1, 16},   {1, 4, 4, 33, 3, 2, 40},
    {2, 3, 3, 8, 7, 1, 8},       {2, 5, 5, 3, 3, 1, 5},     {4, 14, 14, 48, 5, 2, 56},
    {2, 14, 14, 144, 7, 1, 160}, {1, 9, 7, 17, 7, 2, 17},   {1, 1, 1, 5, 3, 1, 5},
    {2, 9, 10, 20, 3, 3, 24},    {1, 6, 5, 8, 1, 1, 8},     {3, 28, 28, 16, 3, 1, 16},
    {2, 8, 8, 200, 5, 2, 208},   {2, 16, 15, 24, 3, 2, 24}, {1, 20, 21, 24, 7, 2, 32},
    {1, 5, 30, 16, 3, 3, 16},    {2, 4, 4, 576, 7, 1, 576}, {3, 7, 7, 100, 3, 2, 112},
    {2, 12, 13, 40, 5, 1, 48}}; /* stride 3 takes the run-time-size tiles */

TEST(nn_dw_forward_matches_ref) {
    struct rng r;
    rng_init(&r, 3, RNG_INIT);
    for (size_t s = 0; s < sizeof dw_shapes / sizeof dw_shapes[0]; s++) {
        const int *d = dw_shapes[s], N = d[0], H = d[1], W = d[2], C = d[3], k = d[4], st = d[5];
        const int ldw = d[6], OH = nn_out_size(H, k, st), OW = nn_out_size(W, k, st);
        const size_t no = (size_t)N * OH * OW * C;
        float *in = randn(&r, (size_t)N * H * W * C, 1), *w = randn(&r, (size_t)k * k * ldw, 1);
        float *got = randn(&r, no, 1), *want = zeros(no);
        nn_dw_forward(got, in, w, ldw, N, H, W, C, k, st);
        nn_ref_dw_forward(want, in, w, ldw, N, H, W, C, k, st);
        CHECK_ARRAY_REL(got, want, (long)no, 1e-5);
        free(in), free(w), free(got), free(want);
    }
    rng_free(&r);
}

/* The fused inference epilogue is the two calls, bit for bit (ReLU6 on and off;
 * values on all three pieces of ReLU6; shapes that take the parallel path). */
TEST(nn_dw_forward_bn_eval_matches_unfused) {
    struct rng r;
    rng_init(&r, 6, RNG_INIT);
    for (size_t s = 0; s < sizeof dw_shapes / sizeof dw_shapes[0]; s++) {
        const int *d = dw_shapes[s], N = d[0], H = d[1], W = d[2], C = d[3], k = d[4], st = d[5];
        const int ldw = d[6], M = N * nn_out_size(H, k, st) * nn_out_size(W, k, st);
        const int relu6 = (int)(s % 2);
        float *in = randn(&r, (size_t)N * H * W * C, 1), *w = randn(&r, (size_t)k * k * ldw, 1);
        float *g = randn(&r, (size_t)C, 2), *b = randn(&r, (size_t)C, 3);
        float *mu = randn(&r, (size_t)C, 1), *var = randn(&r, (size_t)C, 1);
        for (int c = 0; c < C; c++) var[c] = var[c] * var[c] + 0.1f;
        float *got = randn(&r, (size_t)M * C, 1), *want = randn(&r, (size_t)M * C, 1);
        nn_dw_forward_bn_eval(got, in, w, ldw, N, H, W, C, k, st, g, b, mu, var, 1e-5f, relu6);
        nn_dw_forward(want, in, w, ldw, N, H, W, C, k, st);
        nn_bn_forward_eval(want, want, g, b, mu, var, M, C, 1e-5f, relu6);
        CHECK(!memcmp(got, want, sizeof(float) * (size_t)M * C));
        if (relu6 && M * C > 1000) { /* the clamps were exercised */
            int lo = 0, hi = 0;
            for (int i = 0; i < M * C; i++) lo += got[i] == 0.0f, hi += got[i] == 6.0f;
            CHECK(lo > 0 && hi > 0);
        }
        free(in), free(w), free(g), free(b), free(mu), free(var), free(got), free(want);
    }
    rng_free(&r);
}

TEST(nn_dw_backward_matches_ref) {
    struct rng r;
    rng_init(&r, 4, RNG_INIT);
    for (size_t s = 0; s < sizeof dw_shapes / sizeof dw_shapes[0]; s++) {
        const int *d = dw_shapes[s], N = d[0], H = d[1], W = d[2], C = d[3], k = d[4], st = d[5];
        const int ldw = d[6], OH = nn_out_size(H, k, st), OW = nn_out_size(W, k, st);
        const size_t ni = (size_t)N * H * W * C, no = (size_t)N * OH * OW * C;
        const size_t nw = (size_t)k * k * ldw;
        float *in = randn(&r, ni, 1), *w = randn(&r, nw, 1), *dout = randn(&r, no, 1);
        float *din = randn(&r, ni, 1), *dw = randn(&r, nw, 1);
        float *rdin = zeros(ni), *rdw = apq_falloc(nw);
        memcpy(rdw, dw, sizeof(float) * nw); /* accumulated onto the same start */
        nn_dw_backward(din, dw, ldw, dout, in, w, ldw, N, H, W, C, k, st);
        ref_dw_backward(rdin, rdw, ldw, dout, in, w, ldw, N, H, W, C, k, st);
        CHECK_ARRAY_REL(din, rdin, (long)ni, 1e-5);
        CHECK_ARRAY_REL(dw, rdw, (long)nw, 1e-5);
        free(in), free(w), free(dout), free(din), free(dw), free(rdin), free(rdw);
    }
    rng_free(&r);
}

/* The AVX-512 tiles (nn/nn_dw_simd.h) against the generic tiles: the same
 * bits for forward, input and weight gradient, every dw_shapes entry (tails
 * of 16 channels, 4- and 8-pixel tiles, rows narrower than the kernel).
 * Without AVX-512 both runs take the generic tiles and this checks nothing
 * more than determinism; it says so. */
TEST(nn_dw_simd_bit_identical) {
    struct rng r;
    rng_init(&r, 8, RNG_INIT);
    const int had = nn_dw_simd(1);
    if (!nn_dw_simd(1)) fprintf(stderr, "  (no AVX-512 in this build: generic tiles only)\n");
    for (size_t s = 0; s < sizeof dw_shapes / sizeof dw_shapes[0]; s++) {
        const int *d = dw_shapes[s], N = d[0], H = d[1], W = d[2], C = d[3], k = d[4], st = d[5];
        const int ldw = d[6], OH = nn_out_size(H, k, st), OW = nn_out_size(W, k, st);
        const size_t ni = (size_t)N * H * W * C, no = (size_t)N * OH * OW * C;
        const size_t nw = (size_t)k * k * ldw;
        float *in = randn(&r, ni, 1), *w = randn(&r, nw, 1), *dout = randn(&r, no, 1);
        float *out[2], *din[2], *dw[2];
        for (int v = 0; v < 2; v++) {
            nn_dw_simd(v);
            out[v] = zeros(no), din[v] = zeros(ni), dw[v] = zeros(nw);
            nn_dw_forward(out[v], in, w, ldw, N, H, W, C, k, st);
            nn_dw_backward(din[v], dw[v], ldw, dout, in, w, ldw, N, H, W, C, k, st);
        }
        CHECK(!memcmp(out[0], out[1], sizeof(float) * no));
        CHECK(!memcmp(din[0], din[1], sizeof(float) * ni));
        CHECK(!memcmp(dw[0], dw[1], sizeof(float) * nw));
        free(in), free(w), free(dout);
        for (int v = 0; v < 2; v++) free(out[v]), free(din[v]), free(dw[v]);
    }
    nn_dw_simd(had);
    rng_free(&r);
}

/* The BN + ReLU6 prologue (nn_dw_forward_ex / nn_dw_backward_ex reading x)
 * against the kernels reading y = the same BN + ReLU6 written out by
 * nn_bn_forward_eval: the same bits, forward with and without the epilogue,
 * input and weight gradient; the clamps are hit and the padding stays zero
 * in y (a shift makes act(0) != 0). */
TEST(nn_dw_pre_matches_materialised) {
    struct rng r;
    rng_init(&r, 9, RNG_INIT);
    int tested = 0;
    for (size_t s = 0; s < sizeof dw_shapes / sizeof dw_shapes[0]; s++) {
        const int *d = dw_shapes[s], N = d[0], H = d[1], W = d[2], C = d[3], k = d[4], st = d[5];
        if (!nn_dw_pre_supported(k, st)) continue;
        tested++;
        const int ldw = d[6], OH = nn_out_size(H, k, st), OW = nn_out_size(W, k, st);
        const size_t ni = (size_t)N * H * W * C, no = (size_t)N * OH * OW * C;
        const size_t nw = (size_t)k * k * ldw;
        float *x = randn(&r, ni, 2), *w = randn(&r, nw, 1), *dout = randn(&r, no, 1);
        float *g = randn(&r, (size_t)C, 2), *b = randn(&r, (size_t)C, 2);
        float *mu = randn(&r, (size_t)C, 1), *var = randn(&r, (size_t)C, 1);
        float *scale = zeros((size_t)C), *y = zeros(ni);
        for (int c = 0; c < C; c++) var[c] = var[c] * var[c] + 0.1f;
        for (int c = 0; c < C; c++) scale[c] = g[c] / sqrtf(var[c] + 1e-5f);
        nn_bn_forward_eval(y, x, g, b, mu, var, N * H * W, C, 1e-5f, 1);
        const struct nn_dw_pre pre = {scale, mu, b, 1}, post = {scale, mu, b, (int)(s % 2)};
        float *o[2], *di[2], *dw[2];
        for (int v = 0; v < 2; v++) o[v] = zeros(no), di[v] = zeros(ni), dw[v] = zeros(nw);
        nn_dw_forward_ex(o[0], x, &pre, w, ldw, N, H, W, C, k, st, NULL);
        nn_dw_forward(o[1], y, w, ldw, N, H, W, C, k, st);
        CHECK(!memcmp(o[0], o[1], sizeof(float) * no));
        nn_dw_forward_ex(o[0], x, &pre, w, ldw, N, H, W, C, k, st, &post);
        nn_dw_forward_bn_eval(o[1], y, w, ldw, N, H, W, C, k, st, g, b, mu, var, 1e-5f, s % 2);
        CHECK(!memcmp(o[0], o[1], sizeof(float) * no));
        nn_dw_backward_ex(di[0], dw[0], ldw, dout, x, &pre, w, ldw, N, H, W, C, k, st);
        nn_dw_backward(di[1], dw[1], ldw, dout, y, w, ldw, N, H, W, C, k, st);
        CHECK(!memcmp(di[0], di[1], sizeof(float) * ni));
        CHECK(!memcmp(dw[0], dw[1], sizeof(float) * nw));
        int lo = 0, hi = 0;
        for (size_t i = 0; i < ni; i++) lo += y[i] == 0.0f, hi += y[i] == 6.0f;
        CHECK(ni < 1000 || (lo > 0 && hi > 0));
        free(x), free(w), free(dout), free(g), free(b), free(mu), free(var), free(scale), free(y);
        for (int v = 0; v < 2; v++) free(o[v]), free(di[v]), free(dw[v]);
    }
    if (!tested) fprintf(stderr, "  (no AVX-512 in this build: no prologue to test)\n");
    rng_free(&r);
}

static struct {
    int N, H, W, C, k, s, ldw;
    float *in, *w, *out, *rr;
} dwc;

static double dw_loss(void) {
    nn_dw_forward(dwc.out, dwc.in, dwc.w, dwc.ldw, dwc.N, dwc.H, dwc.W, dwc.C, dwc.k, dwc.s);
    size_t no =
        (size_t)dwc.N * nn_out_size(dwc.H, dwc.k, dwc.s) * nn_out_size(dwc.W, dwc.k, dwc.s) * dwc.C;
    return dot(dwc.out, dwc.rr, no);
}

TEST(nn_dw_backward_fd) {
    struct rng r;
    rng_init(&r, 5, RNG_INIT);
    const int cases[][7] = {{2, 5, 5, 3, 3, 1, 4}, {1, 7, 7, 2, 7, 2, 3}, {2, 4, 5, 3, 5, 2, 3}};
    for (int cs = 0; cs < 3; cs++) {
        const int *d = cases[cs];
        dwc.N = d[0], dwc.H = d[1], dwc.W = d[2], dwc.C = d[3], dwc.k = d[4], dwc.s = d[5];
        dwc.ldw = d[6];
        const int OH = nn_out_size(dwc.H, dwc.k, dwc.s), OW = nn_out_size(dwc.W, dwc.k, dwc.s);
        const int ni = dwc.N * dwc.H * dwc.W * dwc.C, no = dwc.N * OH * OW * dwc.C;
        const int kk = dwc.k * dwc.k;
        dwc.in = randn(&r, ni, 1), dwc.w = randn(&r, kk * dwc.ldw, 1);
        dwc.out = zeros(no), dwc.rr = randn(&r, no, 1);
        float *din = randn(&r, ni, 1), *dw = zeros(kk * dwc.ldw), *fd = zeros(ni + kk * dwc.ldw);
        float *an = zeros(kk * dwc.C);
        nn_dw_backward(din, dw, dwc.ldw, dwc.rr, dwc.in, dwc.w, dwc.ldw, dwc.N, dwc.H, dwc.W, dwc.C,
                       dwc.k, dwc.s);
        fd_grad(fd, dwc.in, 1, ni, ni, 0.25f, dw_loss);
        CHECK_ARRAY_REL(din, fd, ni, 1e-4);
        fd_grad(fd, dwc.w, kk, dwc.C, dwc.ldw, 0.25f, dw_loss);
        gather(an, dw, kk, dwc.C, dwc.ldw);
        CHECK_ARRAY_REL(an, fd, kk * dwc.C, 1e-4);
        /* accumulation: a second call doubles dw */
        nn_dw_backward(NULL, dw, dwc.ldw, dwc.rr, dwc.in, dwc.w, dwc.ldw, dwc.N, dwc.H, dwc.W,
                       dwc.C, dwc.k, dwc.s);
        for (int t = 0; t < kk; t++)
            for (int c = 0; c < dwc.C; c++)
                CHECK_NEAR(dw[t * dwc.ldw + c], 2 * an[t * dwc.C + c], 1e-5);
        free(dwc.in), free(dwc.w), free(dwc.out), free(dwc.rr), free(din), free(dw), free(fd),
            free(an);
    }
    rng_free(&r);
}

// ---- dense conv --------------------------------------------------------------

/* N, H, W, Cin, Cout, k, stride */
static const int conv_shapes[][7] = {{2, 7, 7, 1, 16, 3, 1},
                                     {2, 5, 5, 3, 4, 5, 2},
                                     {1, 4, 4, 2, 3, 7, 1},
                                     {3, 28, 28, 1, 16, 3, 1},
                                     {2, 9, 6, 5, 7, 3, 2}};

TEST(nn_conv_forward_matches_ref) {
    struct rng r;
    rng_init(&r, 6, RNG_INIT);
    for (size_t s = 0; s < sizeof conv_shapes / sizeof conv_shapes[0]; s++) {
        const int *d = conv_shapes[s], N = d[0], H = d[1], W = d[2], Ci = d[3], Co = d[4];
        const int k = d[5], st = d[6], OH = nn_out_size(H, k, st), OW = nn_out_size(W, k, st);
        const size_t no = (size_t)N * OH * OW * Co;
        float *in = randn(&r, (size_t)N * H * W * Ci, 1),
              *w = randn(&r, (size_t)Co * k * k * Ci, 1);
        float *got = zeros(no), *want = zeros(no);
        float *scratch = apq_falloc(nn_conv_scratch_floats(N, H, W, Ci, k, st));
        nn_conv_forward(got, in, w, scratch, N, H, W, Ci, Co, k, st);
        nn_ref_conv_forward(want, in, w, N, H, W, Ci, Co, k, st);
        CHECK_ARRAY_REL(got, want, (long)no, 1e-5);
        free(in), free(w), free(got), free(want), free(scratch);
    }
    rng_free(&r);
}

static struct {
    int N, H, W, Ci, Co, k, s;
    float *in, *w, *out, *rr, *scratch;
} cv;

static double conv_loss(void) {
    nn_conv_forward(cv.out, cv.in, cv.w, cv.scratch, cv.N, cv.H, cv.W, cv.Ci, cv.Co, cv.k, cv.s);
    return dot(cv.out, cv.rr,
               (size_t)cv.N * nn_out_size(cv.H, cv.k, cv.s) * nn_out_size(cv.W, cv.k, cv.s) *
                   cv.Co);
}

TEST(nn_conv_backward_fd) {
    struct rng r;
    rng_init(&r, 7, RNG_INIT);
    const int cases[][7] = {{2, 5, 5, 2, 3, 3, 1}, {1, 5, 4, 2, 3, 3, 2}, {1, 4, 4, 1, 2, 5, 1}};
    for (int cs = 0; cs < 3; cs++) {
        const int *d = cases[cs];
        cv.N = d[0], cv.H = d[1], cv.W = d[2], cv.Ci = d[3], cv.Co = d[4], cv.k = d[5], cv.s = d[6];
        const int ni = cv.N * cv.H * cv.W * cv.Ci, nw = cv.Co * cv.k * cv.k * cv.Ci;
        const int no = cv.N * nn_out_size(cv.H, cv.k, cv.s) * nn_out_size(cv.W, cv.k, cv.s) * cv.Co;
        cv.in = randn(&r, ni, 1), cv.w = randn(&r, nw, 1), cv.out = zeros(no);
        cv.rr = randn(&r, no, 1);
        cv.scratch = apq_falloc(nn_conv_scratch_floats(cv.N, cv.H, cv.W, cv.Ci, cv.k, cv.s));
        float *din = randn(&r, ni, 1), *dw = zeros(nw), *dw2 = zeros(nw), *fd = zeros(ni + nw);
        nn_conv_backward(din, dw, cv.rr, cv.in, cv.w, cv.scratch, 0, cv.N, cv.H, cv.W, cv.Ci, cv.Co,
                         cv.k, cv.s);
        fd_grad(fd, cv.in, 1, ni, ni, 0.25f, conv_loss);
        CHECK_ARRAY_REL(din, fd, ni, 1e-4);
        fd_grad(fd, cv.w, 1, nw, nw, 0.25f, conv_loss);
        CHECK_ARRAY_REL(dw, fd, nw, 1e-4);
        /* din == NULL (first layer) gives the same dw; dw accumulates */
        nn_conv_backward(NULL, dw2, cv.rr, cv.in, cv.w, cv.scratch, 0, cv.N, cv.H, cv.W, cv.Ci,
                         cv.Co, cv.k, cv.s);
        CHECK(!memcmp(dw, dw2, sizeof(float) * nw));
        nn_conv_backward(NULL, dw2, cv.rr, cv.in, cv.w, cv.scratch, 0, cv.N, cv.H, cv.W, cv.Ci,
                         cv.Co, cv.k, cv.s);
        for (int i = 0; i < nw; i++) CHECK_NEAR(dw2[i], 2 * dw[i], 1e-5 * (1 + fabsf(dw[i])));
        /* the forward's im2col kept in scratch: the same dw */
        memset(dw2, 0, sizeof(float) * nw);
        nn_conv_forward(cv.out, cv.in, cv.w, cv.scratch, cv.N, cv.H, cv.W, cv.Ci, cv.Co, cv.k,
                        cv.s);
        nn_conv_backward(NULL, dw2, cv.rr, cv.in, cv.w, cv.scratch, 1, cv.N, cv.H, cv.W, cv.Ci,
                         cv.Co, cv.k, cv.s);
        CHECK(!memcmp(dw, dw2, sizeof(float) * nw));
        free(cv.in), free(cv.w), free(cv.out), free(cv.rr), free(cv.scratch), free(din), free(dw),
            free(dw2), free(fd);
    }
    rng_free(&r);
}

// ---- batch norm --------------------------------------------------------------

/* BN statistics from the blocks the product computed as it wrote each chunk
 * (nn_linear_forward_bn_stats) against the BN reading the tensor: the same
 * bits; a skinny product fills the blocks, a wide one leaves them. And
 * nn_bn_apply's residual sum against a separate nn_add. */
TEST(nn_bn_stats_from_producer_blocks) {
    struct rng r;
    rng_init(&r, 12, RNG_INIT);
    const int shapes[][3] = {{4096 + 300, 16, 16}, {9000, 24, 48}, {3000, 96, 96}}; /* M, K, N */
    /* (K == N: x [M][K] doubles as the residual of y [M][N]) */
    for (int s = 0; s < 3; s++) {
        const int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        float *x = randn(&r, (size_t)M * K, 1), *w = randn(&r, (size_t)N * K, 1);
        float *y = zeros((size_t)M * N), *g = randn(&r, (size_t)N, 1);
        float *blk = zeros(nn_bn_blocks_floats(M, N)), *out = zeros((size_t)8 * N);
        struct nn_bn_blocks st = {blk, blk + nn_bn_blocks_floats(M, N) / 2, 0};
        nn_linear_forward_bn_stats(y, N, x, K, w, K, M, K, N, &st);
        CHECK(st.filled == (s < 2)); /* 16*16 and 24*48 multiply-adds per row: skinny */
        nn_bn_stats_train(out, out + N, out + 2 * N, out + 3 * N, y, g, M, N, 1e-5f, &st);
        nn_bn_stats_train(out + 4 * N, out + 5 * N, out + 6 * N, out + 7 * N, y, g, M, N, 1e-5f,
                          NULL);
        CHECK(!memcmp(out, out + 4 * N, sizeof(float) * 4 * N));
        if (K == N) { /* the residual sum in the normalising pass is nn_add's sum */
            float *y1 = zeros((size_t)M * N), *y2 = zeros((size_t)M * N);
            float *b = randn(&r, (size_t)N, 1);
            nn_bn_apply(y1, y, out, out + N, b, M, N, 0, x);
            nn_bn_apply(y2, y, out, out + N, b, M, N, 0, NULL);
            nn_add(y2, y2, x, (size_t)M * N);
            CHECK(!memcmp(y1, y2, sizeof(float) * M * N));
            free(y1), free(y2), free(b);
        }
        free(x), free(w), free(y), free(g), free(blk), free(out);
    }
    rng_free(&r);
}

TEST(nn_bn_forward_values) {
    /* one channel: x = 1,2,3,4 -> mean 2.5, biased var 1.25; another constant */
    const float x[8] = {1, 7, 2, 7, 3, 7, 4, 7}, gamma[2] = {2, 1}, beta[2] = {0.5f, -1};
    float y[8], mean[2], invstd[2], var[2];
    nn_bn_forward_train(y, mean, invstd, var, x, gamma, beta, 4, 2, 1e-5f, 0);
    CHECK_NEAR(mean[0], 2.5, 1e-6);
    CHECK_NEAR(var[0], 1.25, 1e-6);
    CHECK_NEAR(mean[1], 7, 1e-6);
    CHECK_NEAR(var[1], 0, 1e-6);
    CHECK_REL(invstd[0], 1 / sqrt(1.25 + 1e-5), 1e-6);
    CHECK_REL(invstd[1], 1 / sqrt(1e-5), 1e-5);
    for (int m = 0; m < 4; m++) {
        CHECK_NEAR(y[2 * m], 2 * (x[2 * m] - 2.5) / sqrt(1.25 + 1e-5) + 0.5, 1e-5);
        CHECK_NEAR(y[2 * m + 1], -1, 1e-6);
    }
    /* eval with the batch statistics reproduces train mode */
    float ye[8];
    nn_bn_forward_eval(ye, x, gamma, beta, mean, var, 4, 2, 1e-5f, 0);
    CHECK_ARRAY_REL(ye, y, 8, 1e-6);
    float rm[2] = {0, 0}, rv[2] = {1, 1};
    nn_bn_update_running(rm, rv, mean, var, 2, 0.1f);
    CHECK_NEAR(rm[0], 0.25, 1e-7);
    CHECK_NEAR(rv[0], 0.9 + 0.125, 1e-6);
    CHECK_NEAR(rm[1], 0.7, 1e-6);
    CHECK_NEAR(rv[1], 0.9, 1e-6);
}

TEST(nn_bn_wide_matches_double) {
    /* C > 128 takes several column passes; statistics against double sums */
    struct rng r;
    rng_init(&r, 13, RNG_INIT);
    enum { M = 50, C = 300 };
    float *x = randn(&r, M * C, 3), *g = randn(&r, C, 1), *b = randn(&r, C, 1);
    float *y = zeros(M * C), *ye = zeros(M * C), mean[C], invstd[C], var[C];
    for (int i = 0; i < M * C; i++) x[i] += (float)(i % C) * 0.1f; /* per-channel offsets */
    nn_bn_forward_train(y, mean, invstd, var, x, g, b, M, C, 1e-5f, 0);
    int bad = 0;
    for (int c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int m = 0; m < M; m++) s += x[m * C + c];
        for (int m = 0; m < M; m++) ss += (x[m * C + c] - s / M) * (x[m * C + c] - s / M);
        bad += fabs(mean[c] - s / M) > 1e-5 * (1 + fabs(s / M)) ||
               fabs(var[c] - ss / M) > 1e-5 * ss / M;
    }
    CHECK(bad == 0);
    nn_bn_forward_eval(ye, x, g, b, mean, var, M, C, 1e-5f, 0);
    CHECK_ARRAY_REL(ye, y, M * C, 1e-5);
    /* in place: y over x, dx over dy */
    float *xi = zeros(M * C), *dy = randn(&r, M * C, 1), *dx = zeros(M * C);
    memcpy(xi, x, sizeof(float) * M * C);
    nn_bn_forward_train(xi, mean, invstd, NULL, xi, g, b, M, C, 1e-5f, 0);
    CHECK(!memcmp(xi, y, sizeof(float) * M * C));
    nn_bn_backward(dx, NULL, NULL, dy, x, mean, invstd, g, b, M, C, 0);
    nn_bn_backward(dy, NULL, NULL, dy, x, mean, invstd, g, b, M, C, 0);
    CHECK(!memcmp(dx, dy, sizeof(float) * M * C));
    free(x), free(g), free(b), free(y), free(ye), free(xi), free(dy), free(dx);
    rng_free(&r);
}

static struct {
    int M, C, relu6;
    float *x, *gamma, *beta, *y, *rr, mean[8], invstd[8];
} bn;

static double bn_loss(void) {
    nn_bn_forward_train(bn.y, bn.mean, bn.invstd, NULL, bn.x, bn.gamma, bn.beta, bn.M, bn.C, 1e-5f,
                        bn.relu6);
    return dot(bn.y, bn.rr, (size_t)bn.M * bn.C);
}

TEST(nn_bn_backward_fd) {
    struct rng r;
    rng_init(&r, 8, RNG_INIT);
    bn.M = 6, bn.C = 5, bn.relu6 = 0;
    const int n = bn.M * bn.C;
    bn.x = randn(&r, n, 2), bn.gamma = randn(&r, bn.C, 1), bn.beta = randn(&r, bn.C, 1);
    bn.y = zeros(n), bn.rr = randn(&r, n, 1);
    float *dx = zeros(n), dg[8] = {0}, db[8] = {0}, fd[64];
    bn_loss();
    nn_bn_backward(dx, dg, db, bn.rr, bn.x, bn.mean, bn.invstd, bn.gamma, bn.beta, bn.M, bn.C, 0);
    fd_grad(fd, bn.x, 1, n, n, 1e-2f, bn_loss);
    CHECK_ARRAY_REL(dx, fd, n, 2e-3);
    fd_grad(fd, bn.gamma, 1, bn.C, bn.C, 0.25f, bn_loss); /* linear in gamma and beta */
    CHECK_ARRAY_REL(dg, fd, bn.C, 1e-4);
    fd_grad(fd, bn.beta, 1, bn.C, bn.C, 0.25f, bn_loss);
    CHECK_ARRAY_REL(db, fd, bn.C, 1e-4);
    /* accumulation */
    float dg1[8], db1[8];
    memcpy(dg1, dg, sizeof dg), memcpy(db1, db, sizeof db);
    nn_bn_backward(NULL, dg, db, bn.rr, bn.x, bn.mean, bn.invstd, bn.gamma, bn.beta, bn.M, bn.C, 0);
    for (int c = 0; c < bn.C; c++) {
        CHECK_NEAR(dg[c], 2 * dg1[c], 1e-5 * (1 + fabsf(dg1[c])));
        CHECK_NEAR(db[c], 2 * db1[c], 1e-5 * (1 + fabsf(db1[c])));
    }
    free(bn.x), free(bn.gamma), free(bn.beta), free(bn.y), free(bn.rr), free(dx);
    rng_free(&r);
}

/* BN fused with ReLU6 against BN, then nn_relu6_forward / nn_relu6_backward:
 * bit for bit (forward train and eval, dx, dgamma, dbeta), at a size that
 * takes the parallel paths and two column passes, with z = BN(x) spread over
 * all three pieces of ReLU6. */
TEST(nn_bn_relu6_fused_matches_unfused) {
    struct rng r;
    rng_init(&r, 14, RNG_INIT);
    enum { M = 2 * 14 * 14 * 4, C = 144 };
    const size_t n = (size_t)M * C;
    float *x = randn(&r, n, 2), *g = randn(&r, C, 3), *b = randn(&r, C, 3), *dy = randn(&r, n, 1);
    float *y1 = zeros(n), *y2 = zeros(n), *dx1 = zeros(n), *dx2 = zeros(n), *g1 = zeros(n);
    float mean[C], invstd[C], var[C], dg1[C], db1[C], dg2[C], db2[C];
    memset(dg1, 0, sizeof dg1), memset(db1, 0, sizeof db1);
    memset(dg2, 0, sizeof dg2), memset(db2, 0, sizeof db2);
    nn_bn_forward_train(y1, mean, invstd, var, x, g, b, M, C, 1e-5f, 0);
    nn_relu6_forward(y1, y1, n);
    nn_bn_forward_train(y2, mean, invstd, var, x, g, b, M, C, 1e-5f, 1);
    CHECK(!memcmp(y1, y2, sizeof(float) * n));
    size_t lo = 0, mid = 0, hi = 0;
    for (size_t i = 0; i < n; i++)
        lo += y2[i] == 0, hi += y2[i] == 6, mid += y2[i] > 0 && y2[i] < 6;
    CHECK(lo > n / 10 && mid > n / 10 && hi > n / 20);
    nn_relu6_backward(g1, dy, y1, n);
    nn_bn_backward(dx1, dg1, db1, g1, x, mean, invstd, g, b, M, C, 0);
    nn_bn_backward(dx2, dg2, db2, dy, x, mean, invstd, g, b, M, C, 1);
    CHECK(!memcmp(dx1, dx2, sizeof(float) * n));
    CHECK(!memcmp(dg1, dg2, sizeof dg1) && !memcmp(db1, db2, sizeof db1));
    /* eval form, in place */
    nn_bn_forward_eval(y1, x, g, b, mean, var, M, C, 1e-5f, 0);
    nn_relu6_forward(y1, y1, n);
    memcpy(y2, x, sizeof(float) * n);
    nn_bn_forward_eval(y2, y2, g, b, mean, var, M, C, 1e-5f, 1);
    CHECK(!memcmp(y1, y2, sizeof(float) * n));
    free(x), free(g), free(b), free(dy), free(y1), free(y2), free(dx1), free(dx2), free(g1);
    rng_free(&r);
}

/* nn_linear_bn_backward against nn_bn_backward then nn_linear_backward: the
 * same bits, with and without ReLU6 and din accumulation, on the shapes of
 * the 28x28 and 14x14 layers (fixed small-matrix chunks, a partial last one). */
TEST(nn_linear_bn_backward_matches_unfused) {
    struct rng r;
    rng_init(&r, 16, RNG_INIT);
    const int shapes[][3] = {
        {4 * 28 * 28 + 40, 16, 48}, {4 * 14 * 14, 72, 24}, {3 * 14 * 14, 24, 72}};
    for (int si = 0; si < 3; si++) {
        const int M = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
        CHECK(nn_linear_bn_backward_fused(M, K, N));
        const size_t mk = (size_t)M * K, mn = (size_t)M * N, nk = (size_t)N * K;
        float *in = randn(&r, mk, 1), *w = randn(&r, nk, 0.3), *y = zeros(mn);
        float *g = randn(&r, N, 1), *b = randn(&r, N, 2), *dy = randn(&r, mn, 1);
        float *z = zeros(mn), *dout = zeros(mn), *mean = zeros(N), *invstd = zeros(N);
        nn_linear_forward(y, N, in, K, w, K, NULL, M, K, N);
        nn_bn_forward_train(z, mean, invstd, NULL, y, g, b, M, N, 1e-5f, 1);
        for (int relu6 = 0; relu6 <= 1; relu6++)
            for (int acc = 0; acc <= 1; acc++) {
                float *din1 = randn(&r, mk, 1), *din2 = apq_falloc(mk);
                float *dw1 = randn(&r, nk, 1), *dw2 = apq_falloc(nk);
                float *gb1 = randn(&r, 2 * (size_t)N, 1), *gb2 = apq_falloc(2 * (size_t)N);
                memcpy(din2, din1, 4 * mk), memcpy(dw2, dw1, 4 * nk), memcpy(gb2, gb1, 8 * N);
                nn_bn_backward(dout, gb1, gb1 + N, dy, y, mean, invstd, g, b, M, N, relu6);
                nn_linear_backward(din1, K, acc, dw1, K, NULL, dout, N, in, K, w, K, M, K, N);
                nn_linear_bn_backward(din2, K, acc, dw2, K, gb2, gb2 + N, dy, y, mean, invstd, g, b,
                                      relu6, in, K, w, K, M, K, N);
                CHECK(!memcmp(din1, din2, 4 * mk));
                CHECK(!memcmp(dw1, dw2, 4 * nk));
                CHECK(!memcmp(gb1, gb2, 8 * N));
                free(din1), free(din2), free(dw1), free(dw2), free(gb1), free(gb2);
            }
        free(in), free(w), free(y), free(g), free(b), free(dy), free(z), free(dout), free(mean);
        free(invstd);
    }
    rng_free(&r);
}

/* The expand -> BN -> ReLU6 -> depthwise block half with the expanded tensor
 * recomputed (nn_expand_dw_*) against the separate kernels, at 1 and 2
 * threads, with weight row strides of supernet slices, a partial last product
 * chunk, stride 1 and 2.
 *
 * The batch statistics are the same bits on every OpenBLAS kernel: the fused
 * op's first pass issues the separate kernels' products, call for call. The
 * rest is not a bit-for-bit claim: the expanded tensor y is recomputed an
 * image at a time, and a kernel may sum a row's K terms in another order for
 * another row count (Haswell's does). Two orders of a K-term sum differ by at
 * most 2*gamma_K*sum|x_k w_k| ~ 2*K*u times the terms' magnitude (Higham,
 * Accuracy and Stability of Numerical Algorithms, 2nd ed., §3.1; u = 2^-24).
 * Every later value is computed by the same code in the same order on both
 * paths, from inputs that differ by that much, through sums of L more terms:
 * L = k*k for the output, and for the gradients also the BN backward's and
 * the weight gradients' sums over the M = N*H*W positions and the input
 * gradient's over the C channels, each adding at most gamma_L of each side's
 * magnitude. Hence the bound 2*(K + L)*u on the error over each array's
 * largest magnitude (test_max_rel_err). Measured on Haswell's kernel: at most
 * 4*u, so a misplaced chunk or stride (an error of order 1) cannot hide. */
static void expand_dw_separate(float *out, float *st3, float *dx, int acc, float *dwp, float *gb,
                               float *dwd, const float *dout, const float *x,
                               const struct nn_expand_dw *p) {
    const int M = p->N * p->H * p->W, C = p->C, K = p->K;
    float *y = zeros((size_t)M * C), *gy = zeros((size_t)M * C);
    float *blk = zeros(nn_bn_blocks_floats(M, C));
    struct nn_bn_blocks st = {blk, blk + nn_bn_blocks_floats(M, C) / 2, 0};
    float *scale = st3, *mean = st3 + C, *invstd = st3 + 2 * C;
    nn_linear_forward_bn_stats(y, C, x, K, p->w_pw, p->ldw_pw, M, K, C, &st);
    nn_bn_stats_train(scale, mean, invstd, NULL, y, p->gamma, M, C, 1e-5f, &st);
    const struct nn_dw_pre pre = {scale, mean, p->beta, 1};
    nn_dw_forward_ex(out, y, &pre, p->w_dw, p->ldw_dw, p->N, p->H, p->W, C, p->k, p->s, NULL);
    nn_dw_backward_ex(gy, dwd, C + 3, dout, y, &pre, p->w_dw, p->ldw_dw, p->N, p->H, p->W, C, p->k,
                      p->s);
    nn_linear_bn_backward(dx, K, acc, dwp, K + 1, gb, gb + C, gy, y, mean, invstd, p->gamma,
                          p->beta, 1, x, K, p->w_pw, p->ldw_pw, M, K, C);
    free(y), free(gy), free(blk);
}

TEST(nn_expand_dw_matches_separate_kernels) {
    struct rng r;
    rng_init(&r, 17, RNG_INIT);
    const int shapes[][6] = {{16, 28, 16, 48, 3, 2}, {16, 28, 8, 24, 5, 1}, {32, 14, 24, 72, 7, 2}};
    const int saved = omp_get_max_threads();
    for (int si = 0; si < 3; si++) {
        const int N = shapes[si][0], H = shapes[si][1], K = shapes[si][2], C = shapes[si][3];
        const int k = shapes[si][4], s = shapes[si][5], OH = nn_out_size(H, k, s);
        const size_t mk = (size_t)N * H * H * K, mo = (size_t)N * OH * OH * C;
        const size_t nwp = (size_t)C * (K + 1), nwd = (size_t)k * k * (C + 3);
        float *x = randn(&r, mk, 1), *wp = randn(&r, (size_t)C * (K + 2), 0.4);
        float *wd = randn(&r, (size_t)k * k * (C + 5), 0.3), *gamma = randn(&r, C, 1);
        float *beta = randn(&r, C, 1), *dout = randn(&r, mo, 1);
        struct nn_expand_dw p = {N, H, H, K, C, k, s, wp, wd, gamma, beta, K + 2, C + 5};
        CHECK(nn_expand_dw_supported(&p));
        for (int t = 1; t <= 2; t++)
            for (int acc = 0; acc <= 1; acc++) {
                omp_set_num_threads(t);
                float *o1 = zeros(mo), *o2 = zeros(mo), *s1 = zeros(3 * (size_t)C);
                float *s2 = zeros(3 * (size_t)C), *dx1 = randn(&r, mk, 1), *dx2 = apq_falloc(mk);
                float *dp1 = randn(&r, nwp, 1), *dp2 = apq_falloc(nwp), *dd1 = randn(&r, nwd, 1);
                float *dd2 = apq_falloc(nwd), *gb1 = randn(&r, 2 * (size_t)C, 1);
                float *gb2 = apq_falloc(2 * (size_t)C);
                memcpy(dx2, dx1, 4 * mk), memcpy(dp2, dp1, 4 * nwp), memcpy(dd2, dd1, 4 * nwd);
                memcpy(gb2, gb1, 8 * (size_t)C);
                expand_dw_separate(o1, s1, dx1, acc, dp1, gb1, dd1, dout, x, &p);
                nn_expand_dw_forward(o2, s2, s2 + C, s2 + 2 * C, x, &p, 1e-5f);
                nn_expand_dw_backward(dx2, acc, dp2, K + 1, gb2, gb2 + C, dd2, C + 3, dout, x, s2,
                                      s2 + C, s2 + 2 * C, &p);
                const double u = FLT_EPSILON / 2, M = (double)N * H * H;
                CHECK(!memcmp(s1, s2, 12 * (size_t)C));
                CHECK_ARRAY_REL(o2, o1, (long)mo, 2 * (K + k * k) * u);
                const double tol_grad = 2 * (K + k * k + M + C) * u;
                CHECK_ARRAY_REL(dx2, dx1, (long)mk, tol_grad);
                CHECK_ARRAY_REL(dp2, dp1, (long)nwp, tol_grad);
                CHECK_ARRAY_REL(dd2, dd1, (long)nwd, tol_grad);
                CHECK_ARRAY_REL(gb2, gb1, 2L * C, tol_grad);
                free(o1), free(o2), free(s1), free(s2), free(dx1), free(dx2), free(dp1);
                free(dp2), free(dd1), free(dd2), free(gb1), free(gb2);
            }
        free(x), free(wp), free(wd), free(gamma), free(beta), free(dout);
    }
    omp_set_num_threads(saved);
    struct nn_expand_dw odd = {12, 28, 28, 16, 48, 3, 2, NULL, NULL, NULL, NULL, 16, 48};
    CHECK(!nn_expand_dw_supported(&odd)); /* 12 images: the sums' chunks split images */
    rng_free(&r);
}

/* Finite differences through the fused BN + ReLU6, with every z = BN(x) at
 * least 0.05 from the kinks at 0 and 6 (asserted: the FD step must not cross one). */
TEST(nn_bn_relu6_backward_fd) {
    struct rng r;
    rng_init(&r, 15, RNG_INIT);
    bn.M = 8, bn.C = 4, bn.relu6 = 1;
    const int n = bn.M * bn.C;
    bn.x = randn(&r, n, 2), bn.gamma = zeros(bn.C), bn.beta = zeros(bn.C);
    for (int c = 0; c < bn.C; c++) bn.gamma[c] = 2.0f + c, bn.beta[c] = 3.0f;
    bn.y = zeros(n), bn.rr = randn(&r, n, 1);
    float *dx = zeros(n), dg[8] = {0}, db[8] = {0}, fd[64];
    bn_loss();
    int clipped = 0, near = 0;
    for (int i = 0; i < n; i++) {
        int c = i % bn.C;
        float z = bn.gamma[c] * (bn.x[i] - bn.mean[c]) * bn.invstd[c] + bn.beta[c];
        near += fabsf(z) < 0.05f || fabsf(z - 6) < 0.05f;
        clipped += z <= 0 || z >= 6;
    }
    CHECK(near == 0 && clipped >= 4);
    nn_bn_backward(dx, dg, db, bn.rr, bn.x, bn.mean, bn.invstd, bn.gamma, bn.beta, bn.M, bn.C, 1);
    fd_grad(fd, bn.x, 1, n, n, 2e-3f, bn_loss);
    CHECK_ARRAY_REL(dx, fd, n, 3e-3);
    fd_grad(fd, bn.gamma, 1, bn.C, bn.C, 2e-3f, bn_loss);
    CHECK_ARRAY_REL(dg, fd, bn.C, 3e-3);
    fd_grad(fd, bn.beta, 1, bn.C, bn.C, 2e-3f, bn_loss);
    CHECK_ARRAY_REL(db, fd, bn.C, 3e-3);
    free(bn.x), free(bn.gamma), free(bn.beta), free(bn.y), free(bn.rr), free(dx);
    rng_free(&r);
}

// ---- thread-count independence -----------------------------------------------

/* Run BN (train + backward), depthwise backward and the linear bias gradient
 * at sizes that take the parallel paths; compare 1 thread with 3, bitwise.
 * out holds y, dx, din [M][C], then mean, invstd, var, dgamma, dbeta, dbias
 * [C], dw [49][C], and a second dw [25][96]. */
static void run_reductions(int threads, float *out, const float *x, const float *dy,
                           const float *w) {
    const int M = 2 * 14 * 14 * 4, C = 144; /* [8,14,14,144] as dw input */
    omp_set_num_threads(threads);
    float *y = out, *mean = y + M * C, *invstd = mean + C, *var = invstd + C;
    float *dx = var + C, *dg = dx + M * C, *db = dg + C, *din = db + C, *dw = din + M * C;
    float *dbias = dw + 49 * C;
    nn_bn_forward_train(y, mean, invstd, var, x, w, w + C, M, C, 1e-5f, 0);
    nn_bn_backward(dx, dg, db, dy, x, mean, invstd, w, w + C, M, C, 0);
    nn_dw_backward(din, dw, C, dy, x, w, C, 8, 14, 14, C, 7, 1);
    nn_linear_backward(NULL, 0, 0, NULL, 0, dbias, dy, C, x, C, w, C, M, C, C);
    /* stride 2, 96 channels (a partial channel block), 56 rows in 4 chunks */
    nn_dw_backward(NULL, dbias + C, 96, dy, x, w, 96, 8, 7, 7, 96, 5, 2);
    /* BN fused with ReLU6: y2, dx2 [M][C] after the second dw */
    float *y2 = dbias + C + 25 * 96, *dx2 = y2 + M * C;
    nn_bn_forward_train(y2, mean, invstd, var, x, w, w + C, M, C, 1e-5f, 1);
    nn_bn_backward(dx2, dg, db, dy, x, mean, invstd, w, w + C, M, C, 1);
}

TEST(nn_reductions_thread_independent) {
    struct rng r;
    rng_init(&r, 9, RNG_INIT);
    const int M = 2 * 14 * 14 * 4, C = 144;
    const size_t nout = (size_t)5 * M * C + 7 * C + 49 * C + 25 * 96;
    float *x = randn(&r, (size_t)M * C, 1), *dy = randn(&r, (size_t)M * C, 1);
    float *w = randn(&r, 49 * C, 1);
    float *a = zeros(nout), *b = zeros(nout);
    int saved = omp_get_max_threads();
    run_reductions(1, a, x, dy, w);
    run_reductions(3, b, x, dy, w);
    omp_set_num_threads(saved);
    CHECK(!memcmp(a, b, sizeof(float) * nout));
    free(x), free(dy), free(w), free(a), free(b);
    rng_free(&r);
}

// ---- activations, pooling ----------------------------------------------------

static struct {
    int n;
    float *x, *y, *rr;
} act;

static double relu6_loss(void) {
    nn_relu6_forward(act.y, act.x, act.n);
    return dot(act.y, act.rr, act.n);
}

TEST(nn_relu6_fd) {
    struct rng r;
    rng_init(&r, 10, RNG_INIT);
    act.n = 200;
    act.x = zeros(act.n), act.y = zeros(act.n), act.rr = randn(&r, act.n, 1);
    for (int i = 0; i < act.n; i++) { /* in [-2, 8], away from the kinks at 0 and 6 */
        float v;
        do v = (float)(rng_uniform(&r) * 10 - 2);
        while (fabsf(v) < 0.01f || fabsf(v - 6) < 0.01f);
        act.x[i] = v;
    }
    float *dx = zeros(act.n), *fd = zeros(act.n);
    relu6_loss();
    nn_relu6_backward(dx, act.rr, act.y, act.n);
    fd_grad(fd, act.x, 1, act.n, act.n, 1e-3f, relu6_loss);
    CHECK_ARRAY_REL(dx, fd, act.n, 1e-4);
    /* in place forms */
    float v[4] = {-1, 3, 6, 9}, g[4] = {1, 2, 3, 4};
    nn_relu6_forward(v, v, 4);
    CHECK(v[0] == 0 && v[1] == 3 && v[2] == 6 && v[3] == 6);
    nn_relu6_backward(g, g, v, 4);
    CHECK(g[0] == 0 && g[1] == 2 && g[2] == 0 && g[3] == 0);
    free(act.x), free(act.y), free(act.rr), free(dx), free(fd);
    rng_free(&r);
}

static double pool_loss(void) {
    nn_avgpool_forward(act.y, act.x, 3, 5, 4);
    return dot(act.y, act.rr, 12);
}

TEST(nn_avgpool_fd) {
    struct rng r;
    rng_init(&r, 11, RNG_INIT);
    act.x = randn(&r, 60, 1), act.y = zeros(12), act.rr = randn(&r, 12, 1);
    float *din = zeros(60), fd[60];
    nn_avgpool_backward(din, act.rr, 3, 5, 4);
    fd_grad(fd, act.x, 1, 60, 60, 0.25f, pool_loss);
    CHECK_ARRAY_REL(din, fd, 60, 1e-4);
    pool_loss();
    double s = 0;
    for (int p = 0; p < 5; p++) s += act.x[(1 * 5 + p) * 4 + 2];
    CHECK_NEAR(act.y[1 * 4 + 2], s / 5, 1e-6);
    float o[3], a[3] = {1, 2, 3}, b[3] = {0.5f, -2, 4};
    nn_add(o, a, b, 3);
    CHECK(o[0] == 1.5f && o[1] == 0 && o[2] == 7);
    nn_add(a, a, b, 3);
    CHECK(!memcmp(a, o, sizeof o));
    free(act.x), free(act.y), free(act.rr), free(din);
    rng_free(&r);
}

// ---- loss ----------------------------------------------------------------------

static struct {
    int N, C;
    float *logits, *soft, ls;
    int *labels;
} ce;

static double ce_loss(void) {
    return nn_softmax_ce(NULL, ce.logits, ce.labels, ce.soft, ce.N, ce.C, ce.ls);
}

TEST(nn_softmax_ce_fd) {
    struct rng r;
    rng_init(&r, 12, RNG_INIT);
    ce.N = 4, ce.C = 6;
    const int n = ce.N * ce.C;
    int labels[4] = {0, 5, 2, 2};
    ce.logits = randn(&r, n, 2), ce.labels = labels;
    float *soft = zeros(n), dl[24], fd[24];
    for (int i = 0; i < ce.N; i++) { /* random distributions over C */
        double s = 0;
        for (int c = 0; c < ce.C; c++) s += soft[i * ce.C + c] = (float)rng_uniform(&r);
        for (int c = 0; c < ce.C; c++) soft[i * ce.C + c] /= (float)s;
    }
    for (int mode = 0; mode < 3; mode++) { /* labels, labels + smoothing, soft */
        ce.soft = mode == 2 ? soft : NULL;
        ce.ls = mode == 1 ? 0.1f : 0.0f;
        nn_softmax_ce(dl, ce.logits, ce.labels, ce.soft, ce.N, ce.C, ce.ls);
        fd_grad(fd, ce.logits, 1, n, n, 1e-2f, ce_loss);
        CHECK_ARRAY_REL(dl, fd, n, 2e-3);
        double rowsum = 0;
        for (int c = 0; c < ce.C; c++) rowsum += dl[c];
        CHECK_NEAR(rowsum, 0, 1e-7); /* softmax and target both sum to 1 */
    }
    /* known values: equal logits -> loss log C; dlogits = (1/C - target)/N */
    float z[12] = {0}, d[12];
    int lab[2] = {1, 3};
    CHECK_NEAR(nn_softmax_ce(d, z, lab, NULL, 2, 6, 0), log(6.0), 1e-6);
    CHECK_NEAR(d[1], (1.0 / 6 - 1) / 2, 1e-7);
    CHECK_NEAR(d[0], 1.0 / 12, 1e-7);
    CHECK_NEAR(nn_softmax_ce(d, z, lab, NULL, 2, 6, 0.3f), log(6.0), 1e-6);
    CHECK_NEAR(d[9], (1.0 / 6 - (0.7 + 0.05)) / 2, 1e-7);
    /* large logits stay finite */
    float big[3] = {1000, 0, -1000};
    int l0 = 0;
    CHECK_NEAR(nn_softmax_ce(d, big, &l0, NULL, 1, 3, 0), 0, 1e-6);
    float p[3];
    nn_softmax(p, big, 1, 3);
    CHECK_NEAR(p[0], 1, 1e-7);
    CHECK(p[2] == 0);
    free(ce.logits), free(soft);
    rng_free(&r);
}

TEST(nn_count_correct_first_max) {
    const float l[9] = {1, 3, 3, /* tie: the first maximum (1) wins */ 5, 0, 0, 0, 0, 0};
    int y1[3] = {1, 0, 0}, y2[3] = {2, 1, 1};
    CHECK(nn_count_correct(l, y1, 3, 3) == 3);
    CHECK(nn_count_correct(l, y2, 3, 3) == 0);
}

// ---- resize ----------------------------------------------------------------------

TEST(nn_resize_bilinear_pytorch) {
    /* F.interpolate([[1,2],[3,4]], size=(4,4), mode="bilinear", align_corners=False) */
    const float in[4] = {1, 2, 3, 4};
    const float want[16] = {1,    1.25f, 1.75f, 2,    1.5f, 1.75f, 2.25f, 2.5f,
                            2.5f, 2.75f, 3.25f, 3.5f, 3,    3.25f, 3.75f, 4};
    float out[16];
    nn_resize_bilinear(out, in, 1, 2, 2, 1, 4, 4);
    CHECK_ARRAY_REL(out, want, 16, 1e-7);
    /* a ramp f = 100*c + 5*h + w is reproduced at the clamped source coordinates */
    const int sizes[][4] = {{28, 28, 20, 20}, {20, 20, 28, 28}, {5, 5, 3, 4}, {7, 3, 7, 3}};
    for (int s = 0; s < 4; s++) {
        const int H = sizes[s][0], W = sizes[s][1], OH = sizes[s][2], OW = sizes[s][3], C = 3;
        float *x = zeros((size_t)2 * H * W * C), *y = zeros((size_t)2 * OH * OW * C);
        for (int n = 0; n < 2; n++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    for (int c = 0; c < C; c++)
                        x[((n * H + h) * W + w) * C + c] = (float)(100 * c + 5 * h + w + 1000 * n);
        nn_resize_bilinear(y, x, 2, H, W, C, OH, OW);
        int bad = 0;
        for (int n = 0; n < 2; n++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++)
                    for (int c = 0; c < C; c++) {
                        double sh = fmin(fmax((oh + 0.5) * H / OH - 0.5, 0), H - 1);
                        double sw = fmin(fmax((ow + 0.5) * W / OW - 0.5, 0), W - 1);
                        double e = 100 * c + 5 * sh + sw + 1000 * n;
                        bad += fabs(y[((n * OH + oh) * OW + ow) * C + c] - e) > 1e-3;
                    }
        CHECK(bad == 0);
        free(x), free(y);
    }
}

// ---- optimizers --------------------------------------------------------------------

/* Expected values: torch 1.13 (Debian python3-torch), float64, w0 = {1, -2},
 * gradients {0.5, 0.25}, {-0.3, 0.75}, {0.2, -1.0}. */
static const float opt_grads[3][2] = {{0.5f, 0.25f}, {-0.3f, 0.75f}, {0.2f, -1.0f}};

TEST(nn_sgd_steps) {
    const double nesterov[3][2] = {
        {0.9031, -2.0437}, {0.91707411, -2.20094697}, {0.863721158191, -2.082626773757}};
    const double plain[3][2] = {{0.95, -2.025}, {0.935, -2.1225}, {0.9015, -2.11025}};
    float w[2] = {1, -2}, m[2] = {0, 0}, w2[2] = {1, -2}, m2[2] = {0, 0};
    for (int t = 0; t < 3; t++) {
        nn_sgd_step(w, opt_grads[t], m, 2, 0.1f, 0.9f, 0.01f, 1);
        nn_sgd_step(w2, opt_grads[t], m2, 2, 0.1f, 0.9f, 0.0f, 0);
        for (int i = 0; i < 2; i++) {
            CHECK_NEAR(w[i], nesterov[t][i], 1e-6);
            CHECK_NEAR(w2[i], plain[t][i], 1e-6);
        }
    }
}

TEST(nn_adam_steps) {
    const double plain[3][2] = {{0.9900000002, -2.0099999996},
                                {0.9880850198941775, -2.019177810625658},
                                {0.9846107430790882, -2.0185638006398183}};
    const double wd[3][2] = {{0.9900000001666667, -2.0099999980000005},
                             {0.9860115861622782, -2.0180181623107245},
                             {0.9804955265761179, -2.014794345786112}};
    float w[2] = {1, -2}, m[2] = {0}, v[2] = {0}, w2[2] = {1, -2}, m2[2] = {0}, v2[2] = {0};
    for (int t = 0; t < 3; t++) {
        nn_adam_step(w, opt_grads[t], m, v, 2, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, t + 1);
        nn_adam_step(w2, opt_grads[t], m2, v2, 2, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, t + 1);
        for (int i = 0; i < 2; i++) {
            CHECK_NEAR(w[i], plain[t][i], 2e-6);
            CHECK_NEAR(w2[i], wd[t][i], 2e-6);
        }
    }
}

// ---- arena ---------------------------------------------------------------------------

TEST(nn_arena_alignment_high_water) {
    struct arena a;
    CHECK(arena_init(&a, 1000) == APQ_OK);
    float *p = arena_alloc(&a, 5), *q = arena_alloc(&a, 17), *s = arena_alloc(&a, 16);
    CHECK((uintptr_t)p % 64 == 0 && (uintptr_t)q % 64 == 0 && (uintptr_t)s % 64 == 0);
    CHECK(q == p + 16 && s == q + 32);
    CHECK(a.used == 64 && a.high == 64);
    for (int i = 0; i < 16; i++) s[i] = 1; /* writable */
    arena_reset(&a);
    CHECK(a.used == 0 && a.high == 64);
    float *t = arena_alloc(&a, 10);
    CHECK(t == p && a.high == 64);
    arena_alloc(&a, 984); /* exactly fills the block */
    CHECK(a.used == 1000 && a.high == 1000);
    arena_reset(&a);

    /* overflow is a bug: APQ_ASSERT aborts (checked in a child process) */
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(3);
        arena_alloc(&a, 1001);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);

    arena_free(&a);
    CHECK(a.base == NULL && a.cap == 0);
    arena_free(&a); /* a zeroed arena frees as a no-op */
}
