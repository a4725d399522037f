/* nn_internal.h — pieces of the kernels in nn.c and nn_dw.c that the fused
 * kernels of nn_expand.c reuse, so that a fused pass performs exactly the
 * same floating-point operations, in the same order, as the separate
 * kernels it replaces (the same bits). Not a public API: only nn/ includes it.
 */
#ifndef APQ_NN_INTERNAL_H
#define APQ_NN_INTERNAL_H

#include <stddef.h>

#include "nn.h"

/* Fixed row chunks of a column reduction (nn.c col_reduce): a constant, so the
 * summation order does not depend on the thread count. */
#define NN_RED_CHUNKS 16
/* Fixed row chunks of the depthwise weight gradient (nn_dw.c). */
#define NN_DW_CHUNKS 4

/* Rows per chunk (a power of two) of a product with nk multiply-adds per row
 * over m rows on OpenBLAS's small-matrix kernels, 0: one whole product (nn.c). */
int nn_small_chunk_rows(long nk, long m);
/* wt [K][N] = w^T for w [N][ldw] (OpenBLAS's cblas_somatcopy; 64-byte
 * aligned, the caller frees; aborts when out of memory): the operand of the
 * small-matrix forward products (nn.c sgemm_forward, nn_expand.c). */
float *nn_transposed(const float *w, int ldw, int N, int K);
/* The BN blocks (NN_BN_BLOCK rows each) of rows r0..r1-1 of a [M][C] tensor
 * into st; x points at row r0 (row stride ld), r0 a multiple of NN_BN_BLOCK. */
void nn_bn_blocks_rows(struct nn_bn_blocks *st, const float *x, size_t ld, int r0, int r1, int C);
/* p1[c] += g, p2[c] += g * (x - mu[c]) over rows r0..r1-1 (row stride ld) in
 * row order, g = dy masked by ReLU6 at scale*(x - mu) + shift (no mask when
 * scale is NULL): the BN backward's sums (nn.c RED_DOTDEV). */
void nn_red_dotdev_rows(float *p1, float *p2, const float *x, const float *dy, const float *mu,
                        const float *scale, const float *shift, size_t ld, int r0, int r1, int C);
/* s1[c] = sum of part1[ch][c] in chunk order, s2 likewise (part2/s2 may be NULL). */
void nn_red_combine(float *s1, float *s2, const float *part1, const float *part2, int chunks,
                    int C);
/* The BN backward's coefficients from its sums S1 = s1, S2 = s2 over M rows:
 * coef [3][C] = a, b, d with a = gamma*invstd already in coef[0..C); adds
 * dbeta += S1 and dgamma += S2*invstd (either may be NULL). */
void nn_bn_backward_coef(float *coef, float *dgamma, float *dbeta, const float *s1, const float *s2,
                         const float *invstd, int M, int C);
/* Rows r0..r1-1 of dx = a*g + b*(x - mu) + d (g = dy, masked by ReLU6 at
 * a*(x - mu) + shift when shift != NULL), row stride C; dx may alias dy. */
void nn_bn_backward_rows(float *dx, const float *dy, const float *x, const float *a, const float *b,
                         const float *d, const float *mu, const float *shift, int r0, int r1,
                         int C);
/* dw[N][K] (row stride lddw) += the nch partials part[nch][N][K], in chunk order. */
void nn_wgrad_add_partials(float *dw, int lddw, const float *part, int nch, int N, int K);

/* Depthwise input gradient of row r = n*H + ih of din [N,H,W,C] (drow, W*C
 * floats) from dout [N,OH,OW,C]. */
void nn_dw_din_row(float *drow, const float *dout, const float *w, int ldw, int r, int H, int W,
                   int C, int k, int s);
/* Output rows r0..r1-1 (r = n*OH + oh) of the depthwise forward of pre(in);
 * out points at row r0. One thread. */
void nn_dw_forward_rows(float *out, const float *in, const struct nn_dw_pre *pre, const float *w,
                        int ldw, int H, int W, int C, int k, int s, int r0, int r1);
/* acc [k*k][C] += the depthwise weight gradient of output rows r0..r1-1, row
 * by row, from dout and pre(in) (AVX-512 tiles only: nn_dw_pre_supported). */
void nn_dw_wgrad_rows_add(float *acc, const float *dout, const float *in,
                          const struct nn_dw_pre *pre, int H, int W, int C, int k, int s, int r0,
                          int r1);
/* dw[t][c] (row stride lddw) += the chunk partials part[chunks][k*k][C], in chunk order. */
void nn_dw_add_chunks(float *dw, int lddw, const float *part, int chunks, int k, int C);

#endif
