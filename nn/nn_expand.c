/* nn_expand.c — the expand half of an inverted-residual block in training,
 * pointwise expand -> BN (batch statistics) -> ReLU6 -> depthwise, with the
 * expanded tensor never stored: each pass recomputes it from the block input
 * an image (or a product chunk) at a time, while it fits in cache.
 *
 * At the high resolutions the expanded tensor is the network's largest (19 MB
 * at batch 128, 28x28, 48 channels), far beyond the cache. The separate
 * kernels write it and its gradient once and read them five times in all;
 * here the passes recompute it from the block input (a third as large or
 * less) with three more small products (reference/ofa.md §1 for the block;
 * the recomputation is that of gradient checkpointing, done per image).
 * Measured 2026-11-22 (batch 128, make ab): training steps 1.5% faster for the
 * smallest subnet, 2.6% for the largest (0.3% for a random one, within
 * noise); the arena's high-water mark 33 MB (smallest) and 77 MB (largest)
 * lower. The pair alone is no faster: at 16 -> 48 channels a product costs
 * about as much as the memory traffic it replaces.
 *
 * Every value is computed by the same kernels, with the same chunking of
 * every sum, as by nn_linear_forward_bn_stats, nn_bn_stats_train,
 * nn_dw_forward_ex (with the BN applied as it loads), nn_dw_backward_ex and
 * nn_linear_bn_backward in sequence, the fixed row chunks of the sums falling
 * on image boundaries (nn_expand_dw_supported). The one difference is the
 * expanded tensor itself: recomputed an image at a time, its rows come from
 * products of another row count than the separate kernels' chunks, and an
 * OpenBLAS kernel may sum a row's K terms in another order for another row
 * count (Haswell's does; SkylakeX's and Prescott's do not). The batch
 * statistics (pass 1 issues the separate kernels' products) are the same bits
 * on every kernel; the outputs and gradients agree within the rounding of a
 * K-term sum carried through the rest of the op (tests/test_nn.c
 * nn_expand_dw_matches_separate_kernels states the bound).
 */
#include "nn.h"
#include "nn_internal.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../util/util.h"

static int expand_dw_on = 1; /* nn_expand_dw_enable() */

int nn_expand_dw_enable(int on) {
    const int was = expand_dw_on;
    expand_dw_on = on != 0;
    return was;
}

int nn_expand_dw_supported(const struct nn_expand_dw *p) {
    if (!expand_dw_on) return 0;
    const long M = (long)p->N * p->H * p->W;
    const int rows = p->N > 0 ? nn_small_chunk_rows((long)p->C * p->K, M) : 0;
    return rows > 0 && rows % NN_BN_BLOCK == 0 && p->N % NN_RED_CHUNKS == 0 &&
           p->N % NN_DW_CHUNKS == 0 && nn_dw_pre_supported(p->k, p->s);
}

/* y [m][C] = rows of x [m][K] times wt: the expand output, recomputed. */
static void expand_rows(float *y, const float *x, const float *wt, int m, int K, int C) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, C, K, 1.0f, x, K, wt, C, 0.0f, y, C);
}

void nn_expand_dw_forward(float *out, float *scale, float *mean, float *invstd, const float *x,
                          const struct nn_expand_dw *p, float eps) {
    APQ_ASSERT(nn_expand_dw_supported(p));
    const int N = p->N, H = p->H, W = p->W, K = p->K, C = p->C, HW = H * W, M = N * HW;
    const int OH = nn_out_size(H, p->k, p->s), OW = nn_out_size(W, p->k, p->s);
    const int rows = nn_small_chunk_rows((long)C * K, M), nch = (M + rows - 1) / rows;
    const int nt = omp_get_max_threads(), per = rows > HW ? rows : HW;
    float *wt = nn_transposed(p->w_pw, p->ldw_pw, p->C, p->K),
          *ybuf = apq_falloc((size_t)nt * per * C);
    const size_t nbf = nn_bn_blocks_floats(M, C);
    float *blk = apq_falloc(nbf);
    struct nn_bn_blocks st = {blk, blk + nbf / 2, 1};
    /* pass 1: the BN blocks of y, chunk by chunk as nn_linear_forward_bn_stats */
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < nch; ch++) {
        const int m0 = ch * rows, m = M - m0 < rows ? M - m0 : rows;
        float *y = ybuf + (size_t)omp_get_thread_num() * per * C;
        expand_rows(y, x + (size_t)m0 * K, wt, m, K, C);
        nn_bn_blocks_rows(&st, y, (size_t)C, m0, m0 + m, C);
    }
    nn_bn_stats_train(scale, mean, invstd, NULL, NULL, p->gamma, M, C, eps, &st);
    /* pass 2: per image, y again, then the depthwise conv of ReLU6(BN(y)) */
    const struct nn_dw_pre pre = {scale, mean, p->beta, 1};
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *y = ybuf + (size_t)omp_get_thread_num() * per * C;
        expand_rows(y, x + (size_t)n * HW * K, wt, HW, K, C);
        nn_dw_forward_rows(out + (size_t)n * OH * OW * C, y, &pre, p->w_dw, p->ldw_dw, H, W, C,
                           p->k, p->s, 0, OH);
    }
    free(blk);
    free(ybuf);
    free(wt);
}

/* Backward pass 1, the images of one depthwise weight-gradient chunk in
 * order: y and the depthwise input gradient g_y recomputed per image; the
 * weight gradient into acc [k*k][C] and the BN backward's sums into p1/p2
 * [NN_RED_CHUNKS][C] (each red chunk's images lie in one dw chunk). */
static void backward_sums_images(float *acc, float *p1, float *p2, float *y, float *gy,
                                 const float *x, const float *wt, const float *dout,
                                 const struct nn_dw_pre *pre, const float *a,
                                 const struct nn_expand_dw *p, int n0, int n1) {
    const int H = p->H, W = p->W, C = p->C, HW = H * W, per_red = p->N / NN_RED_CHUNKS;
    const int OH = nn_out_size(H, p->k, p->s), OW = nn_out_size(W, p->k, p->s);
    memset(acc, 0, sizeof(float) * p->k * p->k * C);
    for (int n = n0; n < n1; n++) {
        const float *dimg = dout + (size_t)n * OH * OW * C;
        expand_rows(y, x + (size_t)n * HW * p->K, wt, HW, p->K, C);
        for (int ih = 0; ih < H; ih++)
            nn_dw_din_row(gy + (size_t)ih * W * C, dimg, p->w_dw, p->ldw_dw, ih, H, W, C, p->k,
                          p->s);
        float *q1 = p1 + (size_t)(n / per_red) * C, *q2 = p2 + (size_t)(n / per_red) * C;
        if (n % per_red == 0)
            for (int c = 0; c < C; c++) q1[c] = q2[c] = 0;
        nn_red_dotdev_rows(q1, q2, y, gy, pre->mean, a, p->beta, (size_t)C, 0, HW, C);
        nn_dw_wgrad_rows_add(acc, dimg, y, pre, H, W, C, p->k, p->s, 0, OH);
    }
}

/* Backward pass 2, product chunk m0..m0+m-1 (the chunks of
 * nn_linear_bn_backward): y and g_y recomputed for its rows, the BN's input
 * gradient, then the expand's input gradient and weight-gradient partial. */
static void backward_chunk(float *dx, int lddx, int dx_acc, float *part, float *y, float *gbuf,
                           const float *x, const float *wt, const float *dout, const float *coef,
                           const float *mean, const struct nn_expand_dw *p, int m0, int m) {
    const int W = p->W, C = p->C, K = p->K, ir0 = m0 / W, ir1 = (m0 + m + W - 1) / W;
    expand_rows(y, x + (size_t)m0 * K, wt, m, K, C);
    for (int ir = ir0; ir < ir1; ir++)
        nn_dw_din_row(gbuf + (size_t)(ir - ir0) * W * C, dout, p->w_dw, p->ldw_dw, ir, p->H, W, C,
                      p->k, p->s);
    float *g = gbuf + (size_t)(m0 - ir0 * W) * C;
    nn_bn_backward_rows(g, g, y, coef, coef + C, coef + 2 * C, mean, p->beta, 0, m, C);
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, K, C, 1.0f, g, C, p->w_pw,
                    p->ldw_pw, dx_acc ? 1.0f : 0.0f, dx + (size_t)m0 * lddx, lddx);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, K, m, 1.0f, g, C, x + (size_t)m0 * K, K,
                0.0f, part, K);
}

void nn_expand_dw_backward(float *dx, int dx_acc, float *dw_pw, int lddw_pw, float *dgamma,
                           float *dbeta, float *dw_dw, int lddw_dw, const float *dout,
                           const float *x, const float *scale, const float *mean,
                           const float *invstd, const struct nn_expand_dw *p) {
    APQ_ASSERT(nn_expand_dw_supported(p) && dw_pw && dw_dw);
    const int N = p->N, H = p->H, W = p->W, K = p->K, C = p->C, k = p->k, HW = H * W;
    const int M = N * HW, rows = nn_small_chunk_rows((long)C * K, M), nch = (M + rows - 1) / rows;
    const int nt = omp_get_max_threads(), per = (rows > HW ? rows : HW) + 2 * W;
    float *wt = nn_transposed(p->w_pw, p->ldw_pw, p->C, p->K),
          *buf = apq_falloc((size_t)nt * 2 * per * C);
    float *coef = apq_falloc((size_t)5 * C), *s1 = coef + 3 * C, *s2 = s1 + C;
    float *red = apq_falloc((size_t)2 * NN_RED_CHUNKS * C);
    float *part_dw = apq_falloc((size_t)NN_DW_CHUNKS * k * k * C);
    const struct nn_dw_pre pre = {scale, mean, p->beta, 1};
    for (int c = 0; c < C; c++) coef[c] = p->gamma[c] * invstd[c];
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < NN_DW_CHUNKS; ch++) {
        float *y = buf + (size_t)omp_get_thread_num() * 2 * per * C, *gy = y + (size_t)per * C;
        backward_sums_images(part_dw + (size_t)ch * k * k * C, red, red + NN_RED_CHUNKS * C, y, gy,
                             x, wt, dout, &pre, coef, p, N * ch / NN_DW_CHUNKS,
                             N * (ch + 1) / NN_DW_CHUNKS);
    }
    nn_dw_add_chunks(dw_dw, lddw_dw, part_dw, NN_DW_CHUNKS, k, C);
    nn_red_combine(s1, s2, red, red + NN_RED_CHUNKS * C, NN_RED_CHUNKS, C);
    nn_bn_backward_coef(coef, dgamma, dbeta, s1, s2, invstd, M, C);
    float *part = apq_falloc((size_t)nch * C * K);
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < nch; ch++) {
        const int m0 = ch * rows, m = M - m0 < rows ? M - m0 : rows;
        float *y = buf + (size_t)omp_get_thread_num() * 2 * per * C, *gb = y + (size_t)per * C;
        backward_chunk(dx, K, dx_acc, part + (size_t)ch * C * K, y, gb, x, wt, dout, coef, mean, p,
                       m0, m);
    }
    nn_wgrad_add_partials(dw_pw, lddw_pw, part, nch, C, K);
    free(part);
    free(part_dw);
    free(red);
    free(coef);
    free(buf);
    free(wt);
}
