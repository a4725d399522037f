/* nn_dw_simd.h — AVX-512 register tiles of the depthwise kernels (nn_dw.c),
 * included by nn_dw.c only when the compiler targets AVX-512F
 * (-march=native on such a CPU). Private to nn/.
 *
 * The generic tiles of nn_dw.c reload and store their accumulators for every
 * kernel row and load every input vector once per tap: about 1.5 memory
 * operations per FMA. These tiles slide along a row instead:
 *   - forward and input gradient: the accumulators of P = 8 (or 4)
 *     output pixels stay in registers over all kernel rows; per kernel row,
 *     the K weight vectors and the (P-1)*S+K input vectors under the tile are
 *     loaded once each (0.4 loads per FMA at k = 7); the stride-2 input
 *     gradient runs one stride-1 pass per tap class (din_row_simd);
 *   - weight gradient: the K tap accumulators of one kernel row stay in
 *     registers over a tile of P pixels.
 * Input columns outside the image are loaded as zero vectors (masked loads
 * that never touch memory), so every tile runs one straight-line body.
 * Every output element sums its products in the generic tiles' order (kernel
 * rows ascending, then taps) with one fused multiply-add each; the extra
 * products with those zeros add exactly 0. The results are therefore the
 * generic tiles' bits for finite inputs (test nn_dw_simd_bit_identical; the
 * only possible difference is a sum that underflowed to -0 reading +0).
 * Channels go 16 at a time, the last vector masked. Rows of the next output
 * row are prefetched into L2 (dws_prefetch): at 28x28 the activations live
 * in DRAM and the hardware prefetcher alone left the tiles waiting (measured
 * 2026-11-22: 0.7x of the generic tiles without it, 1.0-1.4x with it).
 */
#ifndef APQ_NN_DW_SIMD_H
#define APQ_NN_DW_SIMD_H

#include <immintrin.h>

#define DWS_MAXK 7 /* kernel sizes 3, 5, 7 */

static inline __mmask16 dws_mask(int left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

/* Ask for n floats from p into L2 (software prefetch: the rows of the next
 * output row, which the hardware prefetcher fetches too late). */
static inline void dws_prefetch(const float *p, size_t n) {
    for (size_t i = 0; i < n; i += 16) _mm_prefetch((const char *)(p + i), _MM_HINT_T1);
}

/* The input transform of nn_dw_pre, 16 channels: act(scale*(x - mean) + shift)
 * with ReLU6, bit for bit as nn_bn_act computes it (max then min: NaN -> 0,
 * -0 -> +0), and zero where the column is outside the image (mask mj). */
struct dws_pre {
    __m512 sc, mu, sh;
};

static inline __m512 dws_pre_apply(const struct dws_pre *q, __m512 x, __mmask16 mj) {
    __m512 z = _mm512_fmadd_ps(q->sc, _mm512_sub_ps(x, q->mu), q->sh);
    z = _mm512_min_ps(_mm512_max_ps(z, _mm512_setzero_ps()), _mm512_set1_ps(6.0f));
    return _mm512_maskz_mov_ps(mj, z);
}

/* Input column j of a tile (xp points at it): a zero vector outside the
 * image (bit j of valid clear; memory not touched), else the 16 channels of
 * mask m, through the prologue when PRE. */
static inline __attribute__((always_inline)) __m512 dws_load_x(const float *xp, unsigned valid,
                                                               int j, __mmask16 m,
                                                               const struct dws_pre *q,
                                                               const int PRE) {
    const __mmask16 mj = (valid >> j & 1) ? m : 0;
    const __m512 xv = _mm512_maskz_loadu_ps(mj, xp);
    return PRE ? dws_pre_apply(q, xv, mj) : xv;
}

static inline void dws_pre_load(struct dws_pre *q, const struct nn_dw_pre *pre, int c,
                                __mmask16 m) {
    q->sc = _mm512_maskz_loadu_ps(m, pre->scale + c);
    q->mu = _mm512_maskz_loadu_ps(m, pre->mean + c);
    q->sh = _mm512_maskz_loadu_ps(m, pre->shift + c);
}

/* Bit j set: input column iw0 + j lies in [0, W), for j < nj (nj <= 31). */
static inline unsigned dws_valid(int iw0, int nj, int W) {
    const int lo = iw0 < 0 ? -iw0 : 0, hi = W - iw0 < nj ? W - iw0 : nj;
    return hi > lo ? ((1u << hi) - 1) & ~((1u << lo) - 1) : 0;
}

/* Output-stationary tile, channels [0, C), output pixel stride os:
 *   o[p*os + c] = sum_{i<nkh} sum_{t<K} wr[i][t*wstep + c] * xr[i][(iw0 + p*S + t)*C + c],
 * p < npix <= P, over the columns iw0 + p*S + t inside [0, W); xr[i] is the
 * input row (column 0) of the i-th valid kernel row and wr[i] its tap 0. */
static inline __attribute__((always_inline)) void
dws_tile_out(float *o, ptrdiff_t os, const float *const *xr, const float *const *wr,
             ptrdiff_t wstep, int nkh, int C, int iw0, int W, int npix, const struct nn_dw_pre *pre,
             const int P, const int K, const int S, const int PRE) {
    const int NJ = (P - 1) * S + K;
    const unsigned valid = dws_valid(iw0, NJ, W);
    for (int c = 0; c < C; c += 16) {
        const __mmask16 m = dws_mask(C - c);
        struct dws_pre q;
        if (PRE) dws_pre_load(&q, pre, c, m);
        __m512 acc[8];
#pragma GCC unroll 8
        for (int p = 0; p < P; p++) acc[p] = _mm512_setzero_ps();
        for (int i = 0; i < nkh; i++) {
            __m512 wv[DWS_MAXK];
            const float *wp = wr[i] + c;
#pragma GCC unroll 8
            for (int t = 0; t < K; t++, wp += wstep) wv[t] = _mm512_maskz_loadu_ps(m, wp);
            const float *xp = xr[i] + c + (ptrdiff_t)iw0 * C;
#pragma GCC unroll 24
            for (int j = 0; j < NJ; j++, xp += C) {
                const __m512 xv = dws_load_x(xp, valid, j, m, &q, PRE);
#pragma GCC unroll 8
                for (int t = 0; t < K; t++) {
                    const int d = j - t;
                    if (d >= 0 && d % S == 0 && d / S < P)
                        acc[d / S] = _mm512_fmadd_ps(wv[t], xv, acc[d / S]);
                }
            }
        }
#pragma GCC unroll 8
        for (int p = 0; p < P; p++)
            if (p < npix) _mm512_mask_storeu_ps(o + p * os + c, m, acc[p]);
    }
}

/* Weight-stationary tile, channels [0, cw), for one kernel row and the
 * output pixels ow .. ow+npix-1 (npix = min(P, OW - ow)):
 *   acc[t*as + c] += sum_p g[(ow+p)*C + c] * x[((ow+p)*S - pad + t)*C + c],  t < K,
 * over the columns inside [0, W), p ascending. */
static inline __attribute__((always_inline)) void
dws_tile_w(float *acc, ptrdiff_t as, const float *g, const float *x, int C, int cw, int ow, int OW,
           int W, const struct nn_dw_pre *pre, const int P, const int K, const int S,
           const int PRE) {
    const int NJ = (P - 1) * S + K, npix = OW - ow < P ? OW - ow : P, iw0 = ow * S - K / 2;
    const unsigned valid = dws_valid(iw0, NJ, W);
    for (int c = 0; c < cw; c += 16) {
        const __mmask16 m = dws_mask(cw - c);
        struct dws_pre q;
        if (PRE) dws_pre_load(&q, pre, c, m);
        __m512 a[DWS_MAXK], gv[8];
#pragma GCC unroll 8
        for (int t = 0; t < K; t++) a[t] = _mm512_maskz_loadu_ps(m, acc + t * as + c);
        const float *gp = g + (ptrdiff_t)ow * C + c;
#pragma GCC unroll 8
        for (int p = 0; p < P; p++, gp += C) /* zero past the row's end */
            gv[p] = _mm512_maskz_loadu_ps(p < npix ? m : 0, gp);
        const float *xp = x + c + (ptrdiff_t)iw0 * C;
#pragma GCC unroll 24
        for (int j = 0; j < NJ; j++, xp += C) {
            const __m512 xv = dws_load_x(xp, valid, j, m, &q, PRE);
#pragma GCC unroll 8
            for (int t = 0; t < K; t++) {
                const int d = j - t;
                if (d >= 0 && d % S == 0 && d / S < P) a[t] = _mm512_fmadd_ps(gv[d / S], xv, a[t]);
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < K; t++) _mm512_mask_storeu_ps(acc + t * as + c, m, a[t]);
    }
}

/* Instantiations, P in {4, 8}: K in {3, 5, 7} at S in {1, 2} (forward with
 * and without the prologue, weight gradient, stride-1 input gradient);
 * DWS_CLASSES: K in {1, 2, 4} at S 1, the tap classes of the stride-2 input
 * gradient (output tiles only, never a prologue). */
#define DWS_KEY(p, k, s) (((p) / 4 * 8 + (k)) * 2 + (s)-1)
/* clang-format off */
#define DWS_CASES(X, p)                                                       \
    X(p, 3, 1) X(p, 5, 1) X(p, 7, 1) X(p, 3, 2) X(p, 5, 2) X(p, 7, 2)
#define DWS_CLASSES(Y, p) Y(p, 1) Y(p, 2) Y(p, 4)
/* clang-format on */

static int dws_supported(int k, int s) {
    return (k == 3 || k == 5 || k == 7) && (s == 1 || s == 2);
}

/* A row of Q output pixels (stride os) in dws_tile_out tiles, pixel q's taps
 * starting at input column iw_first + q*s: 8 pixels a tile, the last <= 4
 * pixels in a 4-pixel tile. */
static void dws_row_out(float *orow, ptrdiff_t os, const float *const *xr, const float *const *wr,
                        ptrdiff_t wstep, int nkh, int C, int W, int Q, int iw_first, int k, int s,
                        const struct nn_dw_pre *pre) {
    for (int q = 0; q < Q;) {
        const int left = Q - q, P = left <= 4 ? 4 : 8, npix = left < P ? left : P;
        float *o = orow + q * os;
        const int iw0 = iw_first + q * s;
        switch (DWS_KEY(P, k, s)) {
#define X(p, kk, ss)                                                                               \
    case DWS_KEY(p, kk, ss):                                                                       \
        if (pre)                                                                                   \
            dws_tile_out(o, os, xr, wr, wstep, nkh, C, iw0, W, npix, pre, p, kk, ss, 1);           \
        else                                                                                       \
            dws_tile_out(o, os, xr, wr, wstep, nkh, C, iw0, W, npix, NULL, p, kk, ss, 0);          \
        break;
#define Y(p, kk)                                                                                   \
    case DWS_KEY(p, kk, 1):                                                                        \
        APQ_ASSERT(!pre);                                                                          \
        dws_tile_out(o, os, xr, wr, wstep, nkh, C, iw0, W, npix, NULL, p, kk, 1, 0);               \
        break;
            DWS_CASES(X, 4)
            DWS_CASES(X, 8)
            DWS_CLASSES(Y, 4)
            DWS_CLASSES(Y, 8)
#undef X
#undef Y
        default:
            APQ_ASSERT(0 && "dws_row_out: no tile for this k and stride");
        }
        q += npix;
    }
}

/* One output row of dws_tile_w tiles (8 pixels, the last <= 4 pixels in a 4-pixel tile):
 *   acc[t*as + c] += sum_{ow<OW} g[ow*C + c] * x[(ow*s - pad + t)*C + c],  t < k, c < cw. */
static void dws_row_wgrad(float *acc, ptrdiff_t as, const float *g, const float *x, int C, int cw,
                          int OW, int W, int k, int s, const struct nn_dw_pre *pre) {
    for (int ow = 0; ow < OW;) {
        const int left = OW - ow, P = left <= 4 ? 4 : 8;
        switch (DWS_KEY(P, k, s)) {
#define X(p, kk, ss)                                                                               \
    case DWS_KEY(p, kk, ss):                                                                       \
        if (pre)                                                                                   \
            dws_tile_w(acc, as, g, x, C, cw, ow, OW, W, pre, p, kk, ss, 1);                        \
        else                                                                                       \
            dws_tile_w(acc, as, g, x, C, cw, ow, OW, W, NULL, p, kk, ss, 0);                       \
        break;
            DWS_CASES(X, 4)
            DWS_CASES(X, 8)
#undef X
        default:
            APQ_ASSERT(0 && "dws_row_wgrad: no tile for this k and stride");
        }
        ow += left < P ? left : P;
    }
}

#endif
