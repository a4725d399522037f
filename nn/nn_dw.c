/* nn_dw.c — depthwise k x k convolution (stride s, pad k/2), NHWC, forward
 * and backward. Not here: the naive reference (nn_ref.c).
 *
 * Every kernel is a loop over channels (contiguous in NHWC and in the
 * tap-major weights) whose body is a fully unrolled register tile: P output
 * pixels x NK taps of one kernel row. gcc vectorises the channel loop and
 * keeps the P (or NK) accumulators in vector registers, so each FMA needs
 * about one load instead of three loads and a store. Tiles cover the pixels
 * whose taps are all inside the image; border pixels take single-pixel tiles
 * over their valid taps. P, NK and S are compile-time constants of each
 * instantiation (tap_tile_* below); unusual shapes (k > 7, stride > 2) take
 * the same code with run-time sizes. The weight gradient supports k <= 7
 * (its accumulators live on the stack). On AVX-512 builds, k = 3, 5, 7 at
 * stride 1 or 2 take the sliding register
 * tiles of nn_dw_simd.h instead: the same bits, 1.3-2x faster (nn_dw_simd()).
 *
 * Inference can fuse the eval-mode BN and ReLU6 that follow the depthwise
 * conv into its forward (nn_dw_forward_bn_eval): each output row is
 * normalised while it is still in cache, which saves a pass over the
 * block's largest activation.
 *
 * Parallelism: forward and input gradient over output / input rows. The
 * weight gradient, a sum over all rows, goes channel block by channel block;
 * each block is split into DW_CHUNKS fixed row chunks whose partial sums
 * (50 KiB on the caller's stack) are added in chunk order. Per element the
 * summation order is therefore fixed, and results do not depend on the
 * thread count.
 */
#include "nn.h"
#include "nn_act.h"
#include "nn_internal.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../util/util.h"

#if defined(__AVX512F__)
#define DW_SIMD 1
#include "nn_dw_simd.h"
#else
#define DW_SIMD 0
#endif

static int dw_simd = DW_SIMD; /* nn_dw_simd(): the AVX-512 tiles are in use */

int nn_dw_pre_supported(int k, int stride) {
#if DW_SIMD
    return dw_simd && dws_supported(k, stride);
#else
    (void)k, (void)stride;
    return 0;
#endif
}

int nn_dw_simd(int on) {
    const int was = dw_simd;
    dw_simd = on && DW_SIMD;
    return was;
}

#define PAR_MIN_WORK 32768        /* multiply-adds below which a kernel runs on one thread */
#define DW_P         4            /* output pixels per register tile */
#define DW_MAXNK     7            /* taps per tile with an unrolled instantiation */
#define DW_AS        64           /* row stride of the weight-gradient accumulators: max channels */
#define DW_ACC       (49 * DW_AS) /* weight-gradient accumulators (stack): kernels up to 7x7 */
#define DW_CHUNKS    NN_DW_CHUNKS

#define ALWAYS_INLINE inline __attribute__((always_inline))

// ---- register tiles ----------------------------------------------------------

/* Output-stationary tile, channels c < cw:
 *   o[p*os + c] += sum_{t<NK} w[t*ws + c] * x[(p*S + t)*xt + c],  p < P. */
static ALWAYS_INLINE void tap_tile_out(float *restrict o, ptrdiff_t os, const float *restrict x,
                                       ptrdiff_t xt, const float *restrict w, ptrdiff_t ws, int cw,
                                       const int P, const int NK, const int S) {
    for (int c = 0; c < cw; c++) {
        float a[DW_P];
#pragma GCC unroll 8
        for (int p = 0; p < P; p++) a[p] = o[p * os + c];
#pragma GCC unroll 8
        for (int t = 0; t < NK; t++) {
            const float wv = w[t * ws + c];
#pragma GCC unroll 8
            for (int p = 0; p < P; p++) a[p] = fmaf(wv, x[(p * S + t) * xt + c], a[p]);
        }
#pragma GCC unroll 8
        for (int p = 0; p < P; p++) o[p * os + c] = a[p];
    }
}

/* Weight-stationary tile (weight gradient), channels c < cw <= DW_AS:
 *   acc[t*DW_AS + c] += sum_{p<P} g[p*gs + c] * x[(p*S + t)*xt + c],  t < NK.
 * (A compile-time row stride lets gcc see that the rows do not overlap.) */
static ALWAYS_INLINE void tap_tile_w(float *restrict acc, const float *restrict g, ptrdiff_t gs,
                                     const float *restrict x, ptrdiff_t xt, int cw, const int P,
                                     const int NK, const int S) {
    for (int c = 0; c < cw; c++) {
        float a[DW_MAXNK];
#pragma GCC unroll 8
        for (int t = 0; t < NK; t++) a[t] = acc[t * DW_AS + c];
#pragma GCC unroll 8
        for (int p = 0; p < P; p++) {
            const float gv = g[p * gs + c];
#pragma GCC unroll 8
            for (int t = 0; t < NK; t++) a[t] = fmaf(gv, x[(p * S + t) * xt + c], a[t]);
        }
#pragma GCC unroll 8
        for (int t = 0; t < NK; t++) acc[t * DW_AS + c] = a[t];
    }
}

/* The same tiles with run-time sizes (any P, NK, S; same summation order). */
static void tap_out_any(float *o, ptrdiff_t os, const float *x, ptrdiff_t xt, const float *w,
                        ptrdiff_t ws, int cw, int P, int NK, int S) {
    for (int p = 0; p < P; p++)
        for (int t = 0; t < NK; t++) {
            float *restrict op = o + p * os;
            const float *restrict xp = x + (p * S + t) * xt, *restrict wp = w + t * ws;
            for (int c = 0; c < cw; c++) op[c] = fmaf(wp[c], xp[c], op[c]);
        }
}

static void tap_w_any(float *acc, const float *g, ptrdiff_t gs, const float *x, ptrdiff_t xt,
                      int cw, int P, int NK, int S) {
    for (int t = 0; t < NK; t++)
        for (int p = 0; p < P; p++) {
            float *restrict ap = acc + t * DW_AS;
            const float *restrict gp = g + p * gs, *restrict xp = x + (p * S + t) * xt;
            for (int c = 0; c < cw; c++) ap[c] = fmaf(gp[c], xp[c], ap[c]);
        }
}

/* Instantiations: single pixels with 1..7 taps; 4-pixel tiles with 1..7 taps
 * at tap stride 1 (forward s=1, input gradient) and 3, 5, 7 taps at stride 2. */
#define TILE_KEY(p, nk, s) (((p)*8 + (nk)) * 2 + (s)-1)
/* clang-format off */
#define TILE_CASES(X)                                                                  \
    X(1, 1, 1) X(1, 2, 1) X(1, 3, 1) X(1, 4, 1) X(1, 5, 1) X(1, 6, 1) X(1, 7, 1)       \
    X(4, 1, 1) X(4, 2, 1) X(4, 3, 1) X(4, 4, 1) X(4, 5, 1) X(4, 6, 1) X(4, 7, 1)       \
    X(4, 3, 2) X(4, 5, 2) X(4, 7, 2)
/* clang-format on */

static void tile_out(float *o, ptrdiff_t os, const float *x, ptrdiff_t xt, const float *w,
                     ptrdiff_t ws, int cw, int P, int NK, int S) {
    if (P == 1) S = 1;
    switch (NK <= DW_MAXNK && S <= 2 ? TILE_KEY(P, NK, S) : -1) {
#define X(p, nk, s)                                                                                \
    case TILE_KEY(p, nk, s):                                                                       \
        tap_tile_out(o, os, x, xt, w, ws, cw, p, nk, s);                                           \
        return;
        TILE_CASES(X)
#undef X
    default:
        tap_out_any(o, os, x, xt, w, ws, cw, P, NK, S);
    }
}

static void tile_w(float *acc, const float *g, ptrdiff_t gs, const float *x, ptrdiff_t xt, int cw,
                   int P, int NK, int S) {
    if (P == 1) S = 1;
    switch (NK <= DW_MAXNK && S <= 2 ? TILE_KEY(P, NK, S) : -1) {
#define X(p, nk, s)                                                                                \
    case TILE_KEY(p, nk, s):                                                                       \
        tap_tile_w(acc, g, gs, x, xt, cw, p, nk, s);                                               \
        return;
        TILE_CASES(X)
#undef X
    default:
        tap_w_any(acc, g, gs, x, xt, cw, P, NK, S);
    }
}

// ---- geometry ------------------------------------------------------------------

static void dw_check(int ldw, int N, int H, int W, int C, int k, int stride) {
    APQ_ASSERT(N > 0 && H > 0 && W > 0 && C > 0 && ldw >= C);
    APQ_ASSERT(k >= 1 && k % 2 == 1 && stride >= 1);
}

/* Output columns [*lo, *hi] whose k input columns ow*s - pad + kw all lie in [0, W). */
static void interior(int *lo, int *hi, int W, int OW, int k, int s) {
    const int pad = k / 2;
    *lo = (pad + s - 1) / s;
    *hi = W - k + pad >= 0 ? (W - k + pad) / s : -1;
    if (*hi > OW - 1) *hi = OW - 1;
}

/* Valid taps [*kw0, *kw1) of output column ow. */
static void tap_range(int *kw0, int *kw1, int ow, int W, int k, int s) {
    const int pad = k / 2, base = ow * s - pad;
    *kw0 = base < 0 ? -base : 0;
    *kw1 = W - base < k ? W - base : k;
}

// ---- forward -------------------------------------------------------------------

#if DW_SIMD
/* Prefetch the input rows (channels c0.., whole rows) that output row oh + 1
 * of image n adds to those of row oh: fetched from DRAM while row oh computes. */
static void prefetch_next_rows(const float *in, int n, int oh, int OH, int H, int W, int C, int k,
                               int s, int c0) {
    if (oh + 1 >= OH) return;
    for (int ih = (oh + 1) * s - k / 2 + k - s; ih < (oh + 1) * s - k / 2 + k; ih++)
        if (ih >= 0 && ih < H) dws_prefetch(in + ((size_t)n * H + ih) * W * C + c0, (size_t)W * C);
}
#endif

/* The forward's geometry, computed once per call: input H x W x C, k x k
 * taps at stride s, output OH x OW, interior output columns [lo, hi]. */
struct dw_geom {
    int H, W, C, k, s, OH, OW, lo, hi;
};

/* One output row r = n*OH + oh; then, when scale, the eval BN (+ ReLU6) on
 * it while it is in cache. */
static void dw_forward_row(float *orow, const float *in, const float *w, int ldw,
                           const struct dw_geom *g, int r, const struct nn_dw_pre *pre,
                           const struct nn_dw_pre *post) {
    const int H = g->H, W = g->W, C = g->C, k = g->k, s = g->s, OW = g->OW, pad = k / 2;
    const int n = r / g->OH, oh = r % g->OH;
#if DW_SIMD
    if (nn_dw_pre_supported(k, s)) {
        const float *xr[DWS_MAXK], *wr[DWS_MAXK];
        int nkh = 0;
        for (int kh = 0; kh < k; kh++) {
            const int ih = oh * s - pad + kh;
            if (ih < 0 || ih >= H) continue;
            xr[nkh] = in + ((size_t)n * H + ih) * W * C;
            wr[nkh++] = w + (size_t)kh * k * ldw;
        }
        prefetch_next_rows(in, n, oh, g->OH, H, W, C, k, s, 0);
        dws_row_out(orow, C, xr, wr, ldw, nkh, C, W, OW, -pad, k, s, pre);
        goto epilogue;
    }
#endif
    memset(orow, 0, sizeof(float) * OW * C);
    for (int kh = 0; kh < k; kh++) {
        const int ih = oh * s - pad + kh;
        if (ih < 0 || ih >= H) continue;
        const float *xrow = in + ((size_t)n * H + ih) * W * C;
        const float *wrow = w + (size_t)kh * k * ldw;
        for (int ow = 0; ow < OW;) {
            if (ow >= g->lo && ow + DW_P - 1 <= g->hi) {
                tile_out(orow + (size_t)ow * C, C, xrow + (size_t)(ow * s - pad) * C, C, wrow, ldw,
                         C, DW_P, k, s);
                ow += DW_P;
            } else {
                int kw0, kw1;
                tap_range(&kw0, &kw1, ow, W, k, s);
                if (kw1 > kw0)
                    tile_out(orow + (size_t)ow * C, 0, xrow + (size_t)(ow * s - pad + kw0) * C, C,
                             wrow + (size_t)kw0 * ldw, ldw, C, 1, kw1 - kw0, 1);
                ow++;
            }
        }
    }
#if DW_SIMD
epilogue:
#endif
    if (!post) return;
    const float *scale = post->scale, *mean = post->mean, *shift = post->shift;
    for (int p = 0; p < OW; p++) {
        float *restrict o = orow + (size_t)p * C;
        for (int c = 0; c < C; c++)
            o[c] = nn_bn_act(scale[c], o[c] - mean[c], shift[c], post->relu6);
    }
}

void nn_dw_forward_ex(float *out, const float *in, const struct nn_dw_pre *pre, const float *w,
                      int ldw, int N, int H, int W, int C, int k, int s,
                      const struct nn_dw_pre *post) {
    dw_check(ldw, N, H, W, C, k, s);
    APQ_ASSERT(!pre || (pre->relu6 && nn_dw_pre_supported(k, s)));
    struct dw_geom g = {H, W, C, k, s, nn_out_size(H, k, s), nn_out_size(W, k, s), 0, 0};
    interior(&g.lo, &g.hi, W, g.OW, k, s);
    const long work = (long)N * g.OH * g.OW * C * k * k;
#pragma omp parallel for schedule(static) if (work >= PAR_MIN_WORK)
    for (int r = 0; r < N * g.OH; r++)
        dw_forward_row(out + (size_t)r * g.OW * C, in, w, ldw, &g, r, pre, post);
}

void nn_dw_forward_rows(float *out, const float *in, const struct nn_dw_pre *pre, const float *w,
                        int ldw, int H, int W, int C, int k, int s, int r0, int r1) {
    struct dw_geom g = {H, W, C, k, s, nn_out_size(H, k, s), nn_out_size(W, k, s), 0, 0};
    interior(&g.lo, &g.hi, W, g.OW, k, s);
    for (int r = r0; r < r1; r++)
        dw_forward_row(out + (size_t)(r - r0) * g.OW * C, in, w, ldw, &g, r, pre, NULL);
}

void nn_dw_forward(float *out, const float *in, const float *w, int ldw, int N, int H, int W, int C,
                   int k, int stride) {
    nn_dw_forward_ex(out, in, NULL, w, ldw, N, H, W, C, k, stride, NULL);
}

void nn_dw_forward_bn_eval(float *out, const float *in, const float *w, int ldw, int N, int H,
                           int W, int C, int k, int stride, const float *gamma, const float *beta,
                           const float *rmean, const float *rvar, float eps, int relu6) {
    APQ_ASSERT(C > 0 && eps > 0);
    float *scale = apq_falloc((size_t)C);
    nn_bn_eval_scales(scale, gamma, rvar, C, eps);
    const struct nn_dw_pre post = {scale, rmean, beta, relu6};
    nn_dw_forward_ex(out, in, NULL, w, ldw, N, H, W, C, k, stride, &post);
    free(scale);
}

// ---- backward: input gradient ----------------------------------------------------

/* din pixel iw of one input row gets, from one kernel row, the taps
 * kw = kwf + s*j (kwf = (iw + pad) mod s) at output column ow = ob - j,
 * ob = (iw + pad - kwf)/s, for the j with 0 <= ob - j < OW. The tiles walk j
 * downwards (t = j1-1-j), so x advances with t and w steps by -s*ldw. */
static void din_row(float *drow, const float *grow, const float *wrow, int ldw, int W, int OW,
                    int C, int k, int s) {
    const int pad = k / 2;
    for (int rho = 0; rho < s && rho < W; rho++) {
        const int kwf = (rho + pad) % s, nk = (k - kwf + s - 1) / s; /* taps of this class */
        for (int iw = rho; iw < W;) {
            const int ob = (iw + pad - kwf) / s;
            /* a full tile: every pixel has all nk taps inside [0, OW) */
            if (iw + (DW_P - 1) * s < W && ob - (nk - 1) >= 0 && ob + DW_P - 1 <= OW - 1) {
                tile_out(
                    drow + (size_t)iw * C, (ptrdiff_t)s * C, grow + (size_t)(ob - (nk - 1)) * C, C,
                    wrow + (size_t)(kwf + s * (nk - 1)) * ldw, -(ptrdiff_t)s * ldw, C, DW_P, nk, 1);
                iw += DW_P * s;
                continue;
            }
            const int j0 = ob - (OW - 1) > 0 ? ob - (OW - 1) : 0, j1 = ob + 1 < nk ? ob + 1 : nk;
            if (j1 > j0)
                tile_out(drow + (size_t)iw * C, 0, grow + (size_t)(ob - (j1 - 1)) * C, C,
                         wrow + (size_t)(kwf + s * (j1 - 1)) * ldw, -(ptrdiff_t)s * ldw, C, 1,
                         j1 - j0, 1);
            iw += s;
        }
    }
}

#if DW_SIMD
/* din_row with the sliding tiles, all valid kernel rows at once (their dout
 * rows xr[i], kernel rows khs[i]): per tap class rho (the din pixels
 * iw = rho + s*q), a stride-1 forward over dout with the class's taps
 * kw = kwf + s*j flipped, as din_row orders them. */
static void din_row_simd(float *drow, const float *const *xr, const int *khs, int nkh,
                         const float *w, int ldw, int W, int OW, int C, int k, int s) {
    const int pad = k / 2;
    for (int rho = 0; rho < s && rho < W; rho++) {
        const int kwf = (rho + pad) % s, nk = (k - kwf + s - 1) / s, e = (rho + pad - kwf) / s;
        const float *wr[DWS_MAXK];
        for (int i = 0; i < nkh; i++) wr[i] = w + (size_t)(khs[i] * k + kwf + s * (nk - 1)) * ldw;
        dws_row_out(drow + (size_t)rho * C, (ptrdiff_t)s * C, xr, wr, -(ptrdiff_t)s * ldw, nkh, C,
                    OW, (W - rho + s - 1) / s, e - (nk - 1), nk, 1, NULL);
    }
}
#endif

void nn_dw_din_row(float *drow, const float *dout, const float *w, int ldw, int r, int H, int W,
                   int C, int k, int s) {
    const int pad = k / 2, OH = nn_out_size(H, k, s), OW = nn_out_size(W, k, s);
    const int n = r / H, ih = r % H;
#if DW_SIMD
    if (nn_dw_pre_supported(k, s)) {
        const float *xr[DWS_MAXK];
        int khs[DWS_MAXK], nkh = 0;
        for (int kh = 0; kh < k; kh++) {
            const int t = ih + pad - kh;
            if (t < 0 || t % s || t / s >= OH) continue;
            xr[nkh] = dout + ((size_t)n * OH + t / s) * OW * C;
            khs[nkh++] = kh;
        }
        const int tn = ih + 1 + pad; /* the dout row the next din row adds */
        if (ih + 1 < H && tn % s == 0 && tn / s < OH)
            dws_prefetch(dout + ((size_t)n * OH + tn / s) * OW * C, (size_t)OW * C);
        din_row_simd(drow, xr, khs, nkh, w, ldw, W, OW, C, k, s);
        return;
    }
#endif
    memset(drow, 0, sizeof(float) * W * C);
    for (int kh = 0; kh < k; kh++) {
        const int t = ih + pad - kh;
        if (t < 0 || t % s) continue;
        const int oh = t / s;
        if (oh >= OH) continue;
        din_row(drow, dout + ((size_t)n * OH + oh) * OW * C, w + (size_t)kh * k * ldw, ldw, W, OW,
                C, k, s);
    }
}

static void dw_backward_din(float *din, const float *dout, const float *w, int ldw, int N, int H,
                            int W, int C, int k, int s) {
    const int OH = nn_out_size(H, k, s), OW = nn_out_size(W, k, s);
    const long work = (long)N * OH * OW * C * k * k;
#pragma omp parallel for schedule(static) if (work >= PAR_MIN_WORK)
    for (int r = 0; r < N * H; r++)
        nn_dw_din_row(din + (size_t)r * W * C, dout, w, ldw, r, H, W, C, k, s);
}

// ---- backward: weight gradient ------------------------------------------------------

/* acc[t][0..cw) (row stride as: DW_AS for the generic tiles, cw <= DW_AS) +=
 * the sum, row by row, over the output rows r0 .. r1-1 (r = n*OH + oh) and their columns ow of
 * dout * y for tap t, channels c0 .. c0+cw-1, y = in or pre(in). */
static void dw_wgrad_rows(float *acc, ptrdiff_t as, const float *dout, const float *in,
                          const struct nn_dw_pre *pre, int H, int W, int C, int k, int s, int r0,
                          int r1, int c0, int cw) {
    const int pad = k / 2, OH = nn_out_size(H, k, s), OW = nn_out_size(W, k, s);
    const int simd = nn_dw_pre_supported(k, s);
    int lo, hi;
    interior(&lo, &hi, W, OW, k, s);
    APQ_ASSERT(simd || as == DW_AS); /* the generic tiles' stride is a constant */
    for (int r = r0; r < r1; r++) {
        const int n = r / OH, oh = r % OH;
        const float *grow = dout + (size_t)r * OW * C + c0;
#if DW_SIMD
        if (simd && r + 1 < r1) { /* the rows the next output row adds */
            dws_prefetch(grow + (size_t)OW * C, (size_t)OW * C);
            prefetch_next_rows(in, n, oh, OH, H, W, C, k, s, c0);
        }
#endif
        for (int kh = 0; kh < k; kh++) {
            const int ih = oh * s - pad + kh;
            if (ih < 0 || ih >= H) continue;
            const float *xrow = in + ((size_t)n * H + ih) * W * C + c0;
            float *arow = acc + (size_t)kh * k * as;
#if DW_SIMD
            if (simd) {
                dws_row_wgrad(arow, as, grow, xrow, C, cw, OW, W, k, s, pre);
                continue;
            }
#endif
            for (int ow = 0; ow < OW;) {
                if (ow >= lo && ow + DW_P - 1 <= hi) {
                    tile_w(arow, grow + (size_t)ow * C, C, xrow + (size_t)(ow * s - pad) * C, C, cw,
                           DW_P, k, s);
                    ow += DW_P;
                } else {
                    int kw0, kw1;
                    tap_range(&kw0, &kw1, ow, W, k, s);
                    if (kw1 > kw0)
                        tile_w(arow + (size_t)kw0 * DW_AS, grow + (size_t)ow * C, 0,
                               xrow + (size_t)(ow * s - pad + kw0) * C, C, cw, 1, kw1 - kw0, 1);
                    ow++;
                }
            }
        }
    }
}

/* dw[t][c] += the sum of the chunk partials part[ch][t*as + c], in chunk order. */
static void dw_add_chunks(float *dw, int lddw, const float *part, size_t stride, int chunks, int kk,
                          ptrdiff_t as, int c0, int cw) {
    for (int t = 0; t < kk; t++)
        for (int c = 0; c < cw; c++) {
            float sum = 0;
            for (int ch = 0; ch < chunks; ch++) sum += part[ch * stride + t * as + c];
            dw[(size_t)t * lddw + c0 + c] += sum;
        }
}

void nn_dw_wgrad_rows_add(float *acc, const float *dout, const float *in,
                          const struct nn_dw_pre *pre, int H, int W, int C, int k, int s, int r0,
                          int r1) {
    APQ_ASSERT(nn_dw_pre_supported(k, s));
    dw_wgrad_rows(acc, C, dout, in, pre, H, W, C, k, s, r0, r1, 0, C);
}

void nn_dw_add_chunks(float *dw, int lddw, const float *part, int chunks, int k, int C) {
    dw_add_chunks(dw, lddw, part, (size_t)k * k * C, chunks, k * k, C, 0, C);
}

void nn_dw_backward(float *din, float *dw, int lddw, const float *dout, const float *in,
                    const float *w, int ldw, int N, int H, int W, int C, int k, int stride) {
    nn_dw_backward_ex(din, dw, lddw, dout, in, NULL, w, ldw, N, H, W, C, k, stride);
}

void nn_dw_backward_ex(float *din, float *dw, int lddw, const float *dout, const float *in,
                       const struct nn_dw_pre *pre, const float *w, int ldw, int N, int H, int W,
                       int C, int k, int stride) {
    dw_check(ldw, N, H, W, C, k, stride);
    APQ_ASSERT(!pre || (pre->relu6 && nn_dw_pre_supported(k, stride)));
    if (din) dw_backward_din(din, dout, w, ldw, N, H, W, C, k, stride);
    if (!dw) return;
    APQ_ASSERT(lddw >= C && k * k * DW_AS <= DW_ACC);
    const int OH = nn_out_size(H, k, stride), OW = nn_out_size(W, k, stride), rows = N * OH;
    const long work = (long)rows * OW * C * k * k;
    const int chunks = rows < DW_CHUNKS ? rows : DW_CHUNKS;
    if (nn_dw_pre_supported(k, stride)) {
        /* all channels in one sweep over the rows; the partials on the heap */
        const size_t stride_ch = (size_t)k * k * C;
        float *part = apq_falloc(chunks * stride_ch);
#pragma omp parallel for schedule(static) if (work >= PAR_MIN_WORK)
        for (int ch = 0; ch < chunks; ch++) {
            memset(part + ch * stride_ch, 0, sizeof(float) * stride_ch);
            dw_wgrad_rows(part + ch * stride_ch, C, dout, in, pre, H, W, C, k, stride,
                          (int)((long)rows * ch / chunks), (int)((long)rows * (ch + 1) / chunks), 0,
                          C);
        }
        dw_add_chunks(dw, lddw, part, stride_ch, chunks, k * k, C, 0, C);
        free(part);
        return;
    }
    float part[DW_CHUNKS][DW_ACC];
    for (int c0 = 0; c0 < C; c0 += DW_AS) {
        const int cw = C - c0 < DW_AS ? C - c0 : DW_AS;
#pragma omp parallel for schedule(static) if (work >= PAR_MIN_WORK)
        for (int ch = 0; ch < chunks; ch++) {
            memset(part[ch], 0, sizeof(float) * k * k * DW_AS);
            dw_wgrad_rows(part[ch], DW_AS, dout, in, NULL, H, W, C, k, stride,
                          (int)((long)rows * ch / chunks), (int)((long)rows * (ch + 1) / chunks),
                          c0, cw);
        }
        dw_add_chunks(dw, lddw, part[0], DW_ACC, chunks, k * k, DW_AS, c0, cw);
    }
}
