/* nn.c — linear (sgemm), dense conv (im2col + sgemm) and batch
 * normalisation, forward and backward.
 *
 * Not here: depthwise (nn_dw.c); element-wise ops, pooling, loss, resize,
 * optimizers and the arena (nn_ops.c); naive references (nn_ref.c).
 *
 * Parallelism: OpenMP over independent outputs (rows). Every
 * reduction over rows (BN statistics, bias and weight gradients) sums FIXED
 * row chunks, each in row order, and combines the chunk partials in chunk
 * order, so results are bit-identical for any thread count. Products use
 * fmaf so gcc emits vector FMAs (ISO C mode keeps -ffp-contract=off).
 */
#include "nn.h"
#include "nn_act.h"
#include "nn_internal.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../util/util.h"

/* Work (in multiply-adds or floats touched) below which a kernel runs on one
 * thread: a parallel region costs a few microseconds. Never changes results. */
#define PAR_MIN_WORK 32768

// ---- column reductions over rows -------------------------------------------

enum red_op {
    RED_SUM,   /* s1[c] = sum_r a[r][c] */
    RED_DOTDEV /* s1[c] = sum_r b'[r][c];  s2[c] = sum_r b'[r][c] * (a[r][c] - mu[c]), where
                * b' = b, or with `scale` given, b masked to 0 < scale*(a-mu)+shift < 6 (ReLU6) */
};

/* ReLU6 passes the gradient at pre-activation z: 0 < z < 6 (PyTorch's
 * hardtanh_backward; false for NaN). */
static inline int relu6_live(float z) {
    return z > 0.0f && z < 6.0f;
}

/* Add rows r0 .. r1-1 of the [*][C] arrays (row stride ld) onto p1/p2 [C],
 * row by row; scale/shift: RED_DOTDEV's ReLU6 mask, else NULL. */
static void red_rows_add(float *restrict p1, float *restrict p2, const float *a, const float *b,
                         const float *mu, const float *scale, const float *shift, size_t ld, int r0,
                         int r1, int C, enum red_op op) {
    for (int r = r0; r < r1; r++) {
        const float *restrict ar = a + (size_t)r * ld;
        if (op == RED_SUM) {
            for (int c = 0; c < C; c++) p1[c] += ar[c];
        } else if (!scale) {
            const float *restrict br = b + (size_t)r * ld, *restrict m = mu;
            for (int c = 0; c < C; c++) {
                p1[c] += br[c];
                p2[c] = fmaf(br[c], ar[c] - m[c], p2[c]);
            }
        } else {
            const float *restrict br = b + (size_t)r * ld, *restrict m = mu;
            const float *restrict sc = scale, *restrict sh = shift;
            for (int c = 0; c < C; c++) {
                const float d = ar[c] - m[c], z = fmaf(sc[c], d, sh[c]);
                const float g = relu6_live(z) ? br[c] : 0.0f;
                p1[c] += g;
                p2[c] = fmaf(g, d, p2[c]);
            }
        }
    }
}

void nn_red_dotdev_rows(float *p1, float *p2, const float *x, const float *dy, const float *mu,
                        const float *scale, const float *shift, size_t ld, int r0, int r1, int C) {
    red_rows_add(p1, p2, x, dy, mu, scale, shift, ld, r0, r1, C, RED_DOTDEV);
}

void nn_red_combine(float *s1, float *s2, const float *part1, const float *part2, int chunks,
                    int C) {
    for (int c = 0; c < C; c++) {
        float t1 = 0, t2 = 0;
        for (int ch = 0; ch < chunks; ch++) {
            t1 += part1[(size_t)ch * C + c];
            if (part2) t2 += part2[(size_t)ch * C + c];
        }
        s1[c] = t1;
        if (s2) s2[c] = t2;
    }
}

/* s1[c] (and s2[c] for RED_DOTDEV) = the reduction `op` over rows 0..M-1 of the
 * [M][C] arrays a (and b), row stride ld. Overwrites s1/s2; s2 may be NULL
 * unless op is RED_DOTDEV. scale/shift [C]: the fused ReLU6 mask of RED_DOTDEV
 * (NULL: none). All C columns go in one pass over whole rows (the partials,
 * 2*NN_RED_CHUNKS*C floats, are on the heap). */
static void col_reduce(float *s1, float *s2, const float *a, const float *b, const float *mu,
                       const float *scale, const float *shift, size_t ld, int M, int C,
                       enum red_op op) {
    const int chunks = M < NN_RED_CHUNKS ? (M > 0 ? M : 1) : NN_RED_CHUNKS;
    float *part1 = apq_falloc((size_t)2 * chunks * C), *part2 = part1 + (size_t)chunks * C;
#pragma omp parallel for schedule(static) if ((long)M * C >= PAR_MIN_WORK)
    for (int ch = 0; ch < chunks; ch++) {
        int r0 = (int)((long)M * ch / chunks), r1 = (int)((long)M * (ch + 1) / chunks);
        float *p1 = part1 + (size_t)ch * C, *p2 = part2 + (size_t)ch * C;
        for (int c = 0; c < C; c++) p1[c] = p2[c] = 0;
        red_rows_add(p1, p2, a, b, mu, scale, shift, ld, r0, r1, C, op);
    }
    nn_red_combine(s1, s2, part1, part2, chunks, C);
    free(part1);
}

// ---- sgemm split across OpenMP threads -----------------------------------------

/* OpenBLAS runs single-threaded (apq_runtime_init): its own thread pool would
 * compete with OpenMP's on a 2-core machine. Large products are split here
 * into fixed pieces along a dimension that needs no reduction across
 * threads, one sgemm each, so results do not depend on the thread count. */
#define SGEMM_SPLIT_MIN (1L << 18) /* multiply-adds below which one call is cheaper */
/* Row pieces of a larger product, the same for any thread count, so that the
 * results are too (test sn_step_thread_count_independent). With A transposed
 * (a weight gradient: few output rows, a long sum) each piece re-packs the
 * whole long operand, so those take 2 pieces. 4 pieces cost under 2% against
 * 2 at the 7x7 and 4x4 shapes (measured 2026-11-22). */
#define SGEMM_PIECES   4
#define SGEMM_PIECES_T 2

/* OpenBLAS 0.3.21 runs products of fewer than about 2^20 multiply-adds on its
 * small-matrix kernels: no packing, no separate pass for beta. The skinny
 * products of the high-resolution layers (n*k <= 3072 multiply-adds per row,
 * up to 100352 rows) run there 1.5-3x faster than whole (measured
 * 2026-11-22: the input and weight gradients of the 28x28 and 14x14
 * pointwise convs, 55-110 -> 140-210 GFLOP/s), so they are cut into FIXED
 * chunks of SMALL_MNK multiply-adds at most: the results do not depend on the
 * thread count. The forward products (B transposed) gain nothing this way. */
#define SMALL_MNK      (3L << 18) /* multiply-adds per chunk */
#define SMALL_MIN_ROWS 256        /* fewer rows per chunk: not worth it */

/* Rows per chunk (a power of two) for a product of nk multiply-adds per row
 * over m rows; 0: call OpenBLAS on the whole product. */
int nn_small_chunk_rows(long nk, long m) {
    if (nk <= 0 || SMALL_MNK / nk < SMALL_MIN_ROWS) return 0;
    int rows = SMALL_MIN_ROWS;
    while ((long)rows * 2 * nk <= SMALL_MNK) rows *= 2;
    return m >= 2L * rows ? rows : 0;
}

/* C[M][N] = alpha * A B + beta * C (row-major, no transposes) in fixed chunks
 * of `rows` rows (nn_small_chunk_rows) on the small-matrix kernels; with st,
 * each chunk's BN blocks of C (rows is a multiple of NN_BN_BLOCK) while the
 * chunk is in cache. */
static void sgemm_nn_chunks(int M, int N, int K, float alpha, const float *A, int lda,
                            const float *B, int ldb, float beta, float *C, int ldc, int rows,
                            struct nn_bn_blocks *st) {
    const int nch = (M + rows - 1) / rows;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < nch; ch++) {
        const int m0 = ch * rows, m = M - m0 < rows ? M - m0 : rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, N, K, alpha, A + (size_t)m0 * lda,
                    lda, B, ldb, beta, C + (size_t)m0 * ldc, ldc);
        if (st) nn_bn_blocks_rows(st, C + (size_t)m0 * ldc, (size_t)ldc, m0, m0 + m, N);
    }
}

/* C[M][N] = alpha * op(A) op(B) + beta * C, row-major, split along M (rows of C
 * and of op(A)). ta: A is stored [K][M] (transposed). */
static void sgemm_rows(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc) {
    const int rows = !ta && !tb ? nn_small_chunk_rows((long)N * K, M) : 0;
    if (rows) {
        sgemm_nn_chunks(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, rows, NULL);
        return;
    }
    const int T = ta ? SGEMM_PIECES_T : SGEMM_PIECES;
    if ((long)M * N * K < SGEMM_SPLIT_MIN || M < 2 * T) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        int m0 = (int)((long)M * t / T), m1 = (int)((long)M * (t + 1) / T);
        const float *a = ta ? A + m0 : A + (size_t)m0 * lda;
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    m1 - m0, N, K, alpha, a, lda, B, ldb, beta, C + (size_t)m0 * ldc, ldc);
    }
}

/* dw[N][K] (row stride lddw) += the sum of the nch partials part[nch][N][K], in
 * chunk order. */
void nn_wgrad_add_partials(float *dw, int lddw, const float *part, int nch, int N, int K) {
    const size_t nk = (size_t)N * K;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            float sum = 0;
            for (int ch = 0; ch < nch; ch++) sum += part[ch * nk + (size_t)n * K + k];
            dw[(size_t)n * lddw + k] += sum;
        }
}

/* Weight gradient dW[N][K] += G^T X (G [M][N] row stride ldg, X [M][K] row
 * stride ldx): a sum over the M rows. Skinny products (see SMALL_MNK) sum
 * fixed row chunks, each on OpenBLAS's small-matrix kernels into its own
 * partial, then add the partials in chunk order; others go to sgemm_rows. */
static void sgemm_wgrad(float *dw, int lddw, const float *G, int ldg, const float *X, int ldx,
                        int M, int N, int K) {
    const int rows = nn_small_chunk_rows((long)N * K, M);
    if (!rows) {
        sgemm_rows(1, 0, N, K, M, 1.0f, G, ldg, X, ldx, 1.0f, dw, lddw);
        return;
    }
    const int nch = (M + rows - 1) / rows;
    const size_t nk = (size_t)N * K;
    float *part = apq_falloc(nch * nk);
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < nch; ch++) {
        const int m0 = ch * rows, m = M - m0 < rows ? M - m0 : rows;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, m, 1.0f, G + (size_t)m0 * ldg,
                    ldg, X + (size_t)m0 * ldx, ldx, 0.0f, part + ch * nk, K);
    }
    nn_wgrad_add_partials(dw, lddw, part, nch, N, K);
    free(part);
}

float *nn_transposed(const float *w, int ldw, int N, int K) {
    float *wt = apq_falloc((size_t)K * N);
    cblas_somatcopy(CblasRowMajor, CblasTrans, N, K, 1.0f, w, ldw, wt, N); /* x * 1 is exact */
    return wt;
}

/* out[M][N] = in[M][K] w^T (w [N][ldw]). Skinny products (see SMALL_MNK) go
 * as in * (w^T, transposed into a scratch [K][N]) in fixed row chunks: the
 * small-matrix kernels run the untransposed form 1.2-2.3x faster (measured
 * 2026-11-22 at the 28x28 and 14x14 shapes); others as one split sgemm. */
static void sgemm_forward(float *out, int ldo, const float *in, int ldi, const float *w, int ldw,
                          int M, int K, int N, struct nn_bn_blocks *st) {
    const int rows = nn_small_chunk_rows((long)N * K, M);
    if (st) st->filled = rows > 0;
    if (!rows) {
        sgemm_rows(0, 1, M, N, K, 1.0f, in, ldi, w, ldw, 0.0f, out, ldo);
        return;
    }
    float *wt = nn_transposed(w, ldw, N, K);
    sgemm_nn_chunks(M, N, K, 1.0f, in, ldi, wt, N, 0.0f, out, ldo, rows, st);
    free(wt);
}

// ---- linear / pointwise ----------------------------------------------------

void nn_linear_forward(float *out, int ldo, const float *in, int ldi, const float *w, int ldw,
                       const float *bias, int M, int K, int N) {
    APQ_ASSERT(M > 0 && K > 0 && N > 0 && ldo >= N && ldi >= K && ldw >= K);
    sgemm_forward(out, ldo, in, ldi, w, ldw, M, K, N, NULL);
    if (!bias) return;
#pragma omp parallel for schedule(static) if ((long)M * N >= PAR_MIN_WORK)
    for (int m = 0; m < M; m++) {
        float *restrict o = out + (size_t)m * ldo;
        for (int n = 0; n < N; n++) o[n] += bias[n];
    }
}

void nn_linear_forward_bn_stats(float *out, int ldo, const float *in, int ldi, const float *w,
                                int ldw, int M, int K, int N, struct nn_bn_blocks *st) {
    APQ_ASSERT(M > 0 && K > 0 && N > 0 && ldo >= N && ldi >= K && ldw >= K);
    sgemm_forward(out, ldo, in, ldi, w, ldw, M, K, N, st);
}

void nn_linear_backward(float *din, int lddi, int din_acc, float *dw, int lddw, float *dbias,
                        const float *dout, int ldo, const float *in, int ldi, const float *w,
                        int ldw, int M, int K, int N) {
    APQ_ASSERT(M > 0 && K > 0 && N > 0 && ldo >= N);
    if (din) {
        APQ_ASSERT(lddi >= K && ldw >= K);
        sgemm_rows(0, 0, M, K, N, 1.0f, dout, ldo, w, ldw, din_acc ? 1.0f : 0.0f, din, lddi);
    }
    if (dw) {
        APQ_ASSERT(lddw >= K && ldi >= K);
        sgemm_wgrad(dw, lddw, dout, ldo, in, ldi, M, N, K);
    }
    if (dbias) {
        float *s = apq_falloc((size_t)N);
        col_reduce(s, NULL, dout, NULL, NULL, NULL, NULL, (size_t)ldo, M, N, RED_SUM);
        for (int c = 0; c < N; c++) dbias[c] += s[c];
        free(s);
    }
}

// ---- dense conv (im2col + sgemm) -------------------------------------------

size_t nn_conv_scratch_floats(int N, int H, int W, int Cin, int k, int stride) {
    return (size_t)N * nn_out_size(H, k, stride) * nn_out_size(W, k, stride) * k * k * Cin;
}

/* col[(n,oh,ow)][(kh,kw,ci)] = in[n][oh*s-pad+kh][ow*s-pad+kw][ci], 0 outside. */
static void im2col(float *col, const float *in, int N, int H, int W, int Cin, int k, int stride) {
    const int pad = k / 2, OH = nn_out_size(H, k, stride), OW = nn_out_size(W, k, stride);
    const size_t KK = (size_t)k * k * Cin;
#pragma omp parallel for schedule(static) if ((long)N * OH * OW * KK >= PAR_MIN_WORK)
    for (int r = 0; r < N * OH; r++) {
        const int n = r / OH, oh = r % OH;
        for (int ow = 0; ow < OW; ow++) {
            float *dst = col + ((size_t)r * OW + ow) * KK;
            for (int kh = 0; kh < k; kh++) {
                const int ih = oh * stride - pad + kh;
                for (int kw = 0; kw < k; kw++) {
                    const int iw = ow * stride - pad + kw;
                    float *d = dst + (size_t)(kh * k + kw) * Cin;
                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
                        if (Cin == 1) /* the first layer: no library call per float */
                            d[0] = 0.0f;
                        else
                            memset(d, 0, sizeof(float) * Cin);
                        continue;
                    }
                    const float *src = in + (((size_t)n * H + ih) * W + iw) * Cin;
                    if (Cin == 1)
                        d[0] = src[0];
                    else
                        memcpy(d, src, sizeof(float) * Cin);
                }
            }
        }
    }
}

/* din[n][ih][iw][ci] = sum of the col entries that copied it (gather per din row). */
static void col2im(float *din, const float *col, int N, int H, int W, int Cin, int k, int stride) {
    const int pad = k / 2, OH = nn_out_size(H, k, stride), OW = nn_out_size(W, k, stride);
    const size_t KK = (size_t)k * k * Cin;
#pragma omp parallel for schedule(static) if ((long)N * OH * OW * KK >= PAR_MIN_WORK)
    for (int r = 0; r < N * H; r++) {
        const int n = r / H, ih = r % H;
        float *restrict drow = din + (size_t)r * W * Cin;
        memset(drow, 0, sizeof(float) * W * Cin);
        for (int kh = 0; kh < k; kh++) {
            const int t = ih + pad - kh;
            if (t < 0 || t % stride) continue;
            const int oh = t / stride;
            if (oh >= OH) continue;
            for (int ow = 0; ow < OW; ow++) {
                const float *src = col + (((size_t)n * OH + oh) * OW + ow) * KK;
                for (int kw = 0; kw < k; kw++) {
                    const int iw = ow * stride - pad + kw;
                    if (iw < 0 || iw >= W) continue;
                    float *restrict d = drow + (size_t)iw * Cin;
                    const float *restrict s = src + (size_t)(kh * k + kw) * Cin;
                    for (int c = 0; c < Cin; c++) d[c] += s[c];
                }
            }
        }
    }
}

void nn_conv_forward(float *out, const float *in, const float *w, float *scratch, int N, int H,
                     int W, int Cin, int Cout, int k, int stride) {
    nn_conv_forward_bn_stats(out, in, w, scratch, N, H, W, Cin, Cout, k, stride, NULL);
}

void nn_conv_forward_bn_stats(float *out, const float *in, const float *w, float *scratch, int N,
                              int H, int W, int Cin, int Cout, int k, int stride,
                              struct nn_bn_blocks *st) {
    APQ_ASSERT(N > 0 && H > 0 && W > 0 && Cin > 0 && Cout > 0 && k % 2 == 1 && stride >= 1);
    const int M = N * nn_out_size(H, k, stride) * nn_out_size(W, k, stride), KK = k * k * Cin;
    im2col(scratch, in, N, H, W, Cin, k, stride);
    sgemm_forward(out, Cout, scratch, KK, w, KK, M, KK, Cout, st);
}

void nn_conv_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                      float *scratch, int col_kept, int N, int H, int W, int Cin, int Cout, int k,
                      int stride) {
    APQ_ASSERT(N > 0 && H > 0 && W > 0 && Cin > 0 && Cout > 0 && k % 2 == 1 && stride >= 1);
    const int M = N * nn_out_size(H, k, stride) * nn_out_size(W, k, stride), KK = k * k * Cin;
    if (dw) {
        if (!col_kept) im2col(scratch, in, N, H, W, Cin, k, stride);
        sgemm_wgrad(dw, KK, dout, Cout, scratch, KK, M, Cout, KK);
    }
    if (din) {
        sgemm_rows(0, 0, M, KK, Cout, 1.0f, dout, Cout, w, KK, 0.0f, scratch, KK);
        col2im(din, scratch, N, H, W, Cin, k, stride);
    }
}

// ---- batch normalisation ---------------------------------------------------

/* Block b's mean m[c] and sum of squared deviations from it q[c], rows r0..r1-1
 * of x (row stride ld): two passes while the block is in cache. */
static void bn_block_stats(float *restrict m, float *restrict q, const float *x, size_t ld, int r0,
                           int r1, int C) {
    for (int c = 0; c < C; c++) m[c] = q[c] = 0;
    for (int r = r0; r < r1; r++) {
        const float *restrict xr = x + (size_t)r * ld;
        for (int c = 0; c < C; c++) m[c] += xr[c];
    }
    for (int c = 0; c < C; c++) m[c] /= (float)(r1 - r0);
    for (int r = r0; r < r1; r++) {
        const float *restrict xr = x + (size_t)r * ld;
        for (int c = 0; c < C; c++) {
            const float d = xr[c] - m[c];
            q[c] = fmaf(d, d, q[c]);
        }
    }
}

void nn_bn_blocks_rows(struct nn_bn_blocks *st, const float *x, size_t ld, int r0, int r1, int C) {
    for (int r = r0; r < r1; r += NN_BN_BLOCK) {
        const size_t b = (size_t)(r / NN_BN_BLOCK) * C;
        const int n = r1 - r < NN_BN_BLOCK ? r1 - r : NN_BN_BLOCK;
        bn_block_stats(st->mean + b, st->m2 + b, x + (size_t)(r - r0) * ld, ld, 0, n, C);
    }
}

size_t nn_bn_blocks_floats(int M, int C) {
    return (size_t)2 * ((M + NN_BN_BLOCK - 1) / NN_BN_BLOCK) * C;
}

/* mean[c] and biased variance var[c] of x [M][C] with one pass over x from
 * memory: each block of NN_BN_BLOCK rows takes two passes while in cache (its
 * mean, then the sum of squared deviations from it: no E[x^2] - mean^2
 * cancellation), and the blocks are merged in block order by the pairwise
 * update of Chan, Golub & LeVeque (1979) in double. Fixed blocks and order:
 * the result does not depend on the thread count. With st filled (by the
 * tensor's producer), only the merge runs. */
static void bn_stats(float *mean, float *var, const float *x, int M, int C,
                     const struct nn_bn_blocks *st) {
    const int nb = (M + NN_BN_BLOCK - 1) / NN_BN_BLOCK;
    float *own = NULL;
    const float *bm, *bq;
    if (st && st->filled) {
        bm = st->mean, bq = st->m2;
    } else {
        own = apq_falloc((size_t)2 * nb * C);
        struct nn_bn_blocks b = {own, own + (size_t)nb * C, 0};
#pragma omp parallel for schedule(static) if ((long)M * C >= PAR_MIN_WORK)
        for (int r = 0; r < M; r += NN_BN_BLOCK)
            nn_bn_blocks_rows(&b, x + (size_t)r * C, (size_t)C, r,
                              M - r < NN_BN_BLOCK ? M : r + NN_BN_BLOCK, C);
        bm = b.mean, bq = b.m2;
    }
    double *mu = calloc((size_t)2 * C, sizeof(double)), *m2 = mu + C;
    APQ_ASSERT(mu);
    double n = 0;
    for (int b = 0; b < nb; b++) {
        const int rows = M - b * NN_BN_BLOCK < NN_BN_BLOCK ? M - b * NN_BN_BLOCK : NN_BN_BLOCK;
        const double nbk = (double)rows, tot = n + nbk, wb = nbk / tot, wab = n * nbk / tot;
        const float *m = bm + (size_t)b * C, *q = bq + (size_t)b * C;
        for (int c = 0; c < C; c++) {
            const double d = (double)m[c] - mu[c];
            mu[c] += d * wb;
            m2[c] += (double)q[c] + d * d * wab;
        }
        n = tot;
    }
    for (int c = 0; c < C; c++) {
        mean[c] = (float)mu[c];
        var[c] = (float)(m2[c] / M);
    }
    free(mu);
    free(own);
}

void nn_bn_apply(float *y, const float *x, const float *scale, const float *mu, const float *shift,
                 int M, int C, int relu6, const float *add) {
#pragma omp parallel for schedule(static) if ((long)M * C >= PAR_MIN_WORK)
    for (int m = 0; m < M; m++) { /* no restrict: y may alias x */
        const float *xr = x + (size_t)m * C;
        float *yr = y + (size_t)m * C;
        if (!add) {
            for (int c = 0; c < C; c++) yr[c] = nn_bn_act(scale[c], xr[c] - mu[c], shift[c], relu6);
            continue;
        }
        const float *ar = add + (size_t)m * C;
        for (int c = 0; c < C; c++)
            yr[c] = nn_bn_act(scale[c], xr[c] - mu[c], shift[c], relu6) + ar[c];
    }
}

void nn_bn_forward_train(float *y, float *mean, float *invstd, float *var_out, const float *x,
                         const float *gamma, const float *beta, int M, int C, float eps,
                         int relu6) {
    float *scale = apq_falloc((size_t)C);
    nn_bn_stats_train(scale, mean, invstd, var_out, x, gamma, M, C, eps, NULL);
    nn_bn_apply(y, x, scale, mean, beta, M, C, relu6, NULL);
    free(scale);
}

void nn_bn_stats_train(float *scale, float *mean, float *invstd, float *var_out, const float *x,
                       const float *gamma, int M, int C, float eps, const struct nn_bn_blocks *st) {
    APQ_ASSERT(M > 0 && C > 0 && eps > 0);
    bn_stats(mean, invstd, x, M, C, st); /* invstd holds the variance for now */
    for (int c = 0; c < C; c++) {
        const float var = invstd[c];
        if (var_out) var_out[c] = var;
        invstd[c] = 1.0f / sqrtf(var + eps);
        scale[c] = gamma[c] * invstd[c];
    }
}

void nn_bn_eval_scales(float *scale, const float *gamma, const float *rvar, int C, float eps) {
    for (int c = 0; c < C; c++) scale[c] = nn_bn_eval_scale(gamma[c], rvar[c], eps);
}

void nn_bn_forward_eval(float *y, const float *x, const float *gamma, const float *beta,
                        const float *rmean, const float *rvar, int M, int C, float eps, int relu6) {
    APQ_ASSERT(M > 0 && C > 0 && eps > 0);
    float *scale = apq_falloc((size_t)C);
    nn_bn_eval_scales(scale, gamma, rvar, C, eps);
    nn_bn_apply(y, x, scale, rmean, beta, M, C, relu6, NULL);
    free(scale);
}

/* Rows r0..r1-1 of dx = a*g + b*(x-mu) + d per column, g = dy masked by
 * ReLU6 at a*(x-mu) + shift when shift != NULL (row stride C); dx may alias dy. */
void nn_bn_backward_rows(float *dx, const float *dy, const float *x, const float *a, const float *b,
                         const float *d, const float *mu, const float *shift, int r0, int r1,
                         int C) {
    for (int m = r0; m < r1; m++) { /* no restrict: dx may alias dy */
        const float *dyr = dy + (size_t)m * C, *xr = x + (size_t)m * C;
        float *dxr = dx + (size_t)m * C;
        if (!shift) {
            for (int c = 0; c < C; c++)
                dxr[c] = fmaf(a[c], dyr[c], fmaf(b[c], xr[c] - mu[c], d[c]));
            continue;
        }
        for (int c = 0; c < C; c++) {
            const float dv = xr[c] - mu[c], z = fmaf(a[c], dv, shift[c]);
            const float g = relu6_live(z) ? dyr[c] : 0.0f;
            dxr[c] = fmaf(a[c], g, fmaf(b[c], dv, d[c]));
        }
    }
}

/* With xhat = (x-mean)*invstd, g = dy (masked by ReLU6's 0 < y < 6 when fused),
 * S1 = sum g, S2 = sum g*(x-mean):
 *   dbeta = S1, dgamma = S2*invstd,
 *   dx = gamma*invstd * (g - S1/M - (x-mean)*invstd^2*S2/M) = a*g + b*(x-mean) + d.
 * The sums and the parameter gradients; coef [3][C] = a, b, d. */
void nn_bn_backward_coef(float *coef, float *dgamma, float *dbeta, const float *s1, const float *s2,
                         const float *invstd, int M, int C) {
    const float *a = coef;
    float *b = coef + C, *d = b + C;
    if (dbeta)
        for (int c = 0; c < C; c++) dbeta[c] += s1[c];
    if (dgamma)
        for (int c = 0; c < C; c++) dgamma[c] += s2[c] * invstd[c];
    for (int c = 0; c < C; c++) {
        const float is = invstd[c], g = a[c];
        b[c] = -g * is * is * s2[c] / (float)M;
        d[c] = -g * s1[c] / (float)M;
    }
}

static void bn_backward_sums(float *coef, float *dgamma, float *dbeta, const float *dy,
                             const float *x, const float *mean, const float *invstd,
                             const float *gamma, const float *beta, int M, int C, int relu6) {
    float *s1 = apq_falloc((size_t)2 * C), *s2 = s1 + C;
    float *a = coef;
    for (int c = 0; c < C; c++) a[c] = gamma[c] * invstd[c];
    col_reduce(s1, s2, x, dy, mean, relu6 ? a : NULL, relu6 ? beta : NULL, (size_t)C, M, C,
               RED_DOTDEV);
    nn_bn_backward_coef(coef, dgamma, dbeta, s1, s2, invstd, M, C);
    free(s1);
}

/* The mask is recomputed from x exactly as the forward computed y. */
void nn_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                    const float *mean, const float *invstd, const float *gamma, const float *beta,
                    int M, int C, int relu6) {
    APQ_ASSERT(M > 0 && C > 0 && (!relu6 || beta));
    float *coef = apq_falloc((size_t)3 * C), *a = coef, *b = a + C, *d = b + C;
    bn_backward_sums(coef, dgamma, dbeta, dy, x, mean, invstd, gamma, beta, M, C, relu6);
    if (dx) {
        const float *shift = relu6 ? beta : NULL;
#pragma omp parallel for schedule(static) if ((long)M * C >= PAR_MIN_WORK)
        for (int m = 0; m < M; m++)
            nn_bn_backward_rows(dx, dy, x, a, b, d, mean, shift, m, m + 1, C);
    }
    free(coef);
}

// ---- a pointwise conv and its BN, backward in one pass ----------------------

int nn_linear_bn_backward_fused(int M, int K, int N) {
    return M > 0 && nn_small_chunk_rows((long)N * K, M) > 0;
}

void nn_linear_bn_backward(float *din, int lddi, int din_acc, float *dw, int lddw, float *dgamma,
                           float *dbeta, const float *dy, const float *y, const float *mean,
                           const float *invstd, const float *gamma, const float *beta, int relu6,
                           const float *in, int ldi, const float *w, int ldw, int M, int K, int N) {
    const int rows = nn_small_chunk_rows((long)N * K, M);
    APQ_ASSERT(rows > 0 && K > 0 && N > 0 && (!relu6 || beta));
    APQ_ASSERT((!din || (lddi >= K && ldw >= K)) && (!dw || (lddw >= K && ldi >= K)));
    float *coef = apq_falloc((size_t)3 * N), *a = coef, *b = a + N, *d = b + N;
    bn_backward_sums(coef, dgamma, dbeta, dy, y, mean, invstd, gamma, beta, M, N, relu6);
    const int nch = (M + rows - 1) / rows, nt = omp_get_max_threads();
    const size_t nk = (size_t)N * K;
    float *part = dw ? apq_falloc(nch * nk) : NULL;
    float *gbuf = apq_falloc((size_t)nt * rows * N);
    const float *shift = relu6 ? beta : NULL;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < nch; ch++) {
        const int m0 = ch * rows, m = M - m0 < rows ? M - m0 : rows;
        float *g = gbuf + (size_t)omp_get_thread_num() * rows * N; /* this chunk's BN dx */
        const size_t o = (size_t)m0 * N;
        nn_bn_backward_rows(g, dy + o, y + o, a, b, d, mean, shift, 0, m, N);
        if (din)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, K, N, 1.0f, g, N, w, ldw,
                        din_acc ? 1.0f : 0.0f, din + (size_t)m0 * lddi, lddi);
        if (dw)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, m, 1.0f, g, N,
                        in + (size_t)m0 * ldi, ldi, 0.0f, part + ch * nk, K);
    }
    if (dw) nn_wgrad_add_partials(dw, lddw, part, nch, N, K);
    free(part);
    free(gbuf);
    free(coef);
}

void nn_bn_update_running(float *rmean, float *rvar, const float *mean, const float *var, int C,
                          float momentum) {
    for (int c = 0; c < C; c++) {
        rmean[c] = (1.0f - momentum) * rmean[c] + momentum * mean[c];
        rvar[c] = (1.0f - momentum) * rvar[c] + momentum * var[c];
    }
}
