/* qint_simd.c — the AVX-512 VNNI path of the fast integer kernels (matrix
 * product, depthwise, residual add), built when the target has AVX-512
 * F/BW/VL/DQ/VNNI/VBMI (QINT_HAVE_SIMD, qint_internal.h); empty otherwise,
 * and qint_fast.c's portable path runs. Same bytes as the references
 * (tests/test_qint.c).
 *
 * Matrix product: a register tile of 4 pixels x 32 output channels (8 int32
 * accumulators); per group of 4 inputs, each pixel's 4 bytes are broadcast
 * and vpdpbusd adds their products with the plan's repacked weights into 16
 * channels at once, 64 multiply-adds per instruction.
 *
 * Depthwise: blocks of 16 channels. The block's input is copied into a
 * padded buffer of 16-byte pixels (pad = zp_in, so the zero point folds into
 * the plan's bias2 = bias - zp_in * sum of the k*k taps); one 64-byte
 * load then holds 4 horizontally adjacent pixels, vpermb regroups it as 16
 * channels x 4 taps, and vpdpbusd adds 4 taps of a kernel row per
 * instruction (ceil(k/4) per row; the weights of taps beyond k are 0).
 *
 * Output stage: qint.h's formula in 64-bit lanes (vpmuldq, vpabsq, vpsrlvq),
 * with the per-channel tables of struct qint_epi. Residual add: the same in
 * 64-bit lanes, 8 elements at a time (vpmullq by the aligned multipliers).
 */
#include "qint_internal.h"

#if QINT_HAVE_SIMD

#include <assert.h>
#include <immintrin.h>
#include <string.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* The output stage's constants in registers. The kernels build it once per
 * call in a local: the byte stores of the outputs may alias any memory, so
 * values read through the caller's pointers would be reloaded after each. */
struct stage {
    const int32_t *m0;
    const int64_t *sh, *off;
    __m512i lo, hi, zp; /* 16 x int32 */
};

static ALWAYS_INLINE struct stage stage_of(const struct qint_epi *e) {
    const struct stage st = {e->m0,
                             e->sh,
                             e->off,
                             _mm512_set1_epi32((int32_t)e->lo),
                             _mm512_set1_epi32((int32_t)e->hi),
                             _mm512_set1_epi32(e->zp)};
    return st;
}

/* Channels c..c+7 of the output stage before the clamp, as int32 (saturated:
 * the clamp bounds lie within int32, so saturating first changes nothing). */
static ALWAYS_INLINE __m256i requant8(__m256i acc, __m256i m0, const struct stage *st, int c) {
    const __m512i p = _mm512_mul_epi32(_mm512_cvtepi32_epi64(acc), _mm512_cvtepi32_epi64(m0));
    const __m512i off = _mm512_loadu_si512(st->off + c), sh = _mm512_loadu_si512(st->sh + c);
    __m512i r = _mm512_srlv_epi64(_mm512_add_epi64(_mm512_abs_epi64(p), off), sh);
    r = _mm512_mask_sub_epi64(r, _mm512_movepi64_mask(p), _mm512_setzero_si512(), r);
    return _mm512_cvtsepi64_epi32(r);
}

/* The 16 uint8 outputs of channels c..c+15 from their accumulators (qint_epi). */
static ALWAYS_INLINE __m128i stage16(__m512i acc, const struct stage *st, int c) {
    const __m512i m0 = _mm512_loadu_si512(st->m0 + c);
    const __m256i lo = requant8(_mm512_castsi512_si256(acc), _mm512_castsi512_si256(m0), st, c);
    const __m256i hi =
        requant8(_mm512_extracti64x4_epi64(acc, 1), _mm512_extracti64x4_epi64(m0, 1), st, c + 8);
    __m512i r = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    r = _mm512_min_epi32(_mm512_max_epi32(r, st->lo), st->hi);
    return _mm512_cvtepi32_epi8(_mm512_add_epi32(r, st->zp));
}

static ALWAYS_INLINE __mmask16 mask16(int n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

// ---- matrix product ----------------------------------------------------------------

/* Pixels i < P (rows of x, stride ldx) x output blocks b < NB from channel o0:
 * the product's tile, stored through the output stage. */
static ALWAYS_INLINE void mm_tile(uint8_t *out, int ldo, const uint8_t *x, int ldx,
                                  const struct qint_view *v, const struct stage *st, int o0,
                                  const int P, const int NB) {
    const struct qint_plan *p = v->p;
    __m512i acc[4][2];
    for (int b = 0; b < NB; b++) {
        const __m512i b2 = _mm512_loadu_si512(v->bias2 + o0 + 16 * b);
        for (int i = 0; i < P; i++) acc[i][b] = b2;
    }
    const int nqf = p->K / 4, rem = p->K % 4;
    const size_t wstride = (size_t)p->Cp * 4;
    const int8_t *wq = v->wp + (size_t)o0 * 4;
    for (int qd = 0; qd < nqf; qd++, wq += wstride) {
        __m512i wv[2];
        for (int b = 0; b < NB; b++) wv[b] = _mm512_loadu_si512(wq + 64 * b);
        for (int i = 0; i < P; i++) {
            int32_t xv;
            memcpy(&xv, x + (size_t)i * ldx + 4 * qd, 4);
            const __m512i xb = _mm512_set1_epi32(xv);
            for (int b = 0; b < NB; b++) acc[i][b] = _mm512_dpbusd_epi32(acc[i][b], xb, wv[b]);
        }
    }
    if (rem) { /* the last group, read with a byte mask (nothing beyond K) */
        __m512i wv[2];
        for (int b = 0; b < NB; b++) wv[b] = _mm512_loadu_si512(wq + 64 * b);
        for (int i = 0; i < P; i++) {
            const __m128i xv =
                _mm_maskz_loadu_epi8((__mmask16)((1u << rem) - 1), x + (size_t)i * ldx + 4 * nqf);
            const __m512i xb = _mm512_broadcastd_epi32(xv);
            for (int b = 0; b < NB; b++) acc[i][b] = _mm512_dpbusd_epi32(acc[i][b], xb, wv[b]);
        }
    }
    for (int b = 0; b < NB; b++) {
        const int c = o0 + 16 * b;
        if (c >= p->Cout) break;
        const __mmask16 mk = mask16(p->Cout - c);
        for (int i = 0; i < P; i++)
            _mm_mask_storeu_epi8(out + (size_t)i * ldo + c, mk, stage16(acc[i][b], st, c));
    }
}

void qint_simd_mm(uint8_t *out, int ldo, const uint8_t *x, int ldx, int P,
                  const struct qint_view *view) {
    const struct qint_view v = *view; /* locals: see struct stage */
    const struct stage st = stage_of(&view->e);
    const int Cp = v.p->Cp;
    int px = 0;
    for (; px + 4 <= P; px += 4) {
        uint8_t *op = out + (size_t)px * ldo;
        const uint8_t *xp = x + (size_t)px * ldx;
        int o0 = 0;
        for (; o0 + 32 <= Cp; o0 += 32) mm_tile(op, ldo, xp, ldx, &v, &st, o0, 4, 2);
        if (o0 < Cp) mm_tile(op, ldo, xp, ldx, &v, &st, o0, 4, 1);
    }
    for (; px < P; px++) {
        uint8_t *op = out + (size_t)px * ldo;
        const uint8_t *xp = x + (size_t)px * ldx;
        int o0 = 0;
        for (; o0 + 32 <= Cp; o0 += 32) mm_tile(op, ldo, xp, ldx, &v, &st, o0, 1, 2);
        if (o0 < Cp) mm_tile(op, ldo, xp, ldx, &v, &st, o0, 1, 1);
    }
}

// ---- depthwise ---------------------------------------------------------------------

/* vpermb index: byte 4c + j of the result = byte 16j + c of 4 pixels. */
static const uint8_t dw_perm[64] = {0,  16, 32, 48, 1,  17, 33, 49, 2,  18, 34, 50, 3,  19, 35, 51,
                                    4,  20, 36, 52, 5,  21, 37, 53, 6,  22, 38, 54, 7,  23, 39, 55,
                                    8,  24, 40, 56, 9,  25, 41, 57, 10, 26, 42, 58, 11, 27, 43, 59,
                                    12, 28, 44, 60, 13, 29, 45, 61, 14, 30, 46, 62, 15, 31, 47, 63};

/* All outputs of channel block c0 (mask mk) from the padded copy P (row
 * stride Wp pixels, zrow the all-zp row), for a kernel size k with G groups
 * of 4 taps per row (constants: the loops unroll). Two output pixels per
 * step: independent vpdpbusd chains. */
static ALWAYS_INLINE void dw_rows(uint8_t *out, const uint8_t *P, const uint8_t *zrow,
                                  const int8_t *wb, const int32_t *bias2, const struct stage *st,
                                  int C, int c0, __mmask16 mk, int H, int W, int stride,
                                  const int k, const int G) {
    const int pad = k / 2;
    const int OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1;
    const size_t Wp16 = (size_t)((OW - 1) * stride + 4 * G) * 16;
    const __m512i perm = _mm512_loadu_si512(dw_perm), b2 = _mm512_loadu_si512(bias2 + c0);
    __m512i wv[QINT_SIMD_DW_MAX_K][2];
    for (int kh = 0; kh < k; kh++)
        for (int g = 0; g < G; g++) wv[kh][g] = _mm512_loadu_si512(wb + (kh * G + g) * 64);
    for (int oh = 0; oh < OH; oh++) {
        const uint8_t *rows[QINT_SIMD_DW_MAX_K];
        for (int kh = 0; kh < k; kh++) {
            const int ih = oh * stride - pad + kh;
            rows[kh] = ih >= 0 && ih < H ? P + (size_t)ih * Wp16 : zrow;
        }
        uint8_t *orow = out + (size_t)oh * OW * C + c0;
        int ow = 0;
        for (; ow + 2 <= OW; ow += 2) {
            __m512i a0 = b2, a1 = b2;
            const size_t col0 = (size_t)ow * stride * 16, col1 = col0 + (size_t)stride * 16;
            for (int kh = 0; kh < k; kh++)
                for (int g = 0; g < G; g++) {
                    const __m512i x0 =
                        _mm512_permutexvar_epi8(perm, _mm512_loadu_si512(rows[kh] + col0 + 64 * g));
                    const __m512i x1 =
                        _mm512_permutexvar_epi8(perm, _mm512_loadu_si512(rows[kh] + col1 + 64 * g));
                    a0 = _mm512_dpbusd_epi32(a0, x0, wv[kh][g]);
                    a1 = _mm512_dpbusd_epi32(a1, x1, wv[kh][g]);
                }
            _mm_mask_storeu_epi8(orow + (size_t)ow * C, mk, stage16(a0, st, c0));
            _mm_mask_storeu_epi8(orow + (size_t)(ow + 1) * C, mk, stage16(a1, st, c0));
        }
        if (ow < OW) {
            __m512i a0 = b2;
            const size_t col0 = (size_t)ow * stride * 16;
            for (int kh = 0; kh < k; kh++)
                for (int g = 0; g < G; g++)
                    a0 = _mm512_dpbusd_epi32(
                        a0,
                        _mm512_permutexvar_epi8(perm, _mm512_loadu_si512(rows[kh] + col0 + 64 * g)),
                        wv[kh][g]);
            _mm_mask_storeu_epi8(orow + (size_t)ow * C, mk, stage16(a0, st, c0));
        }
    }
}

void qint_simd_dw(uint8_t *out, const uint8_t *in, const struct qint_view *v, int H, int W,
                  int stride, void *scratch) {
    const struct qint_plan *p = v->p;
    const int k = p->k, G = p->nq, C = p->Cin, pad = k / 2, nb = p->Cp / 16;
    assert(k <= QINT_SIMD_DW_MAX_K && k % 2 == 1);
    const struct stage st = stage_of(&v->e);
    const int32_t *bias2 = v->bias2;
    const int8_t *wp = v->wp;
    const int OW = (W - 1) / stride + 1;
    const int Wp = (OW - 1) * stride + 4 * G; /* the columns the last output's groups read */
    /* P [H+1][Wp][16]: 16 channels of the input, columns shifted by pad,
     * zp_in outside the image; row H all zp_in (the rows above and below) */
    uint8_t *P = scratch, *zrow = P + (size_t)H * Wp * 16;
    const __m128i zpv = _mm_set1_epi8((char)p->zp_in);
    for (int iw = 0; iw < Wp; iw++) _mm_storeu_si128((__m128i *)(zrow + 16 * iw), zpv);
    for (int b = 0; b < nb; b++) {
        const int c0 = 16 * b;
        const __mmask16 mk = mask16(C - c0);
        for (int ih = 0; ih < H; ih++) {
            uint8_t *prow = P + (size_t)ih * Wp * 16;
            const uint8_t *irow = in + (size_t)ih * W * C + c0;
            for (int iw = 0; iw < Wp; iw++) {
                const int x = iw - pad;
                const __m128i xv =
                    x >= 0 && x < W ? _mm_mask_loadu_epi8(zpv, mk, irow + (size_t)x * C) : zpv;
                _mm_storeu_si128((__m128i *)(prow + 16 * iw), xv);
            }
        }
        const int8_t *wb = wp + (size_t)b * k * G * 64;
        switch (k) { /* the tap loops unrolled, the weights in registers */
        case 1:
            dw_rows(out, P, zrow, wb, bias2, &st, C, c0, mk, H, W, stride, 1, 1);
            break;
        case 3:
            dw_rows(out, P, zrow, wb, bias2, &st, C, c0, mk, H, W, stride, 3, 1);
            break;
        case 5:
            dw_rows(out, P, zrow, wb, bias2, &st, C, c0, mk, H, W, stride, 5, 2);
            break;
        default:
            dw_rows(out, P, zrow, wb, bias2, &st, C, c0, mk, H, W, stride, 7, 2);
            break;
        }
    }
}

// ---- residual add --------------------------------------------------------------------

/* 8 outputs of the add from 8 input bytes each (struct qint_add_k). */
static ALWAYS_INLINE __m128i add8(__m128i a8, __m128i b8, const struct qint_add_k *k) {
    const __m512i ta =
        _mm512_mullo_epi64(_mm512_sub_epi64(_mm512_cvtepu8_epi64(a8), _mm512_set1_epi64(k->zp_a)),
                           _mm512_set1_epi64(k->ma));
    const __m512i tb =
        _mm512_mullo_epi64(_mm512_sub_epi64(_mm512_cvtepu8_epi64(b8), _mm512_set1_epi64(k->zp_b)),
                           _mm512_set1_epi64(k->mb));
    const __m512i t = _mm512_add_epi64(ta, tb);
    __m512i r = _mm512_srl_epi64(_mm512_add_epi64(_mm512_abs_epi64(t), _mm512_set1_epi64(k->off)),
                                 _mm_cvtsi32_si128(k->sh));
    r = _mm512_mask_sub_epi64(r, _mm512_movepi64_mask(t), _mm512_setzero_si512(), r);
    r = _mm512_min_epi64(_mm512_max_epi64(r, _mm512_set1_epi64(k->lo)), _mm512_set1_epi64(k->hi));
    return _mm512_cvtepi64_epi8(_mm512_add_epi64(r, _mm512_set1_epi64(k->zp)));
}

void qint_simd_add(uint8_t *out, const uint8_t *a, const uint8_t *b, const struct qint_add_k *k,
                   size_t n) {
    for (size_t i = 0; i < n; i += 8) {
        const __mmask8 mk = n - i >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (n - i)) - 1);
        const __m128i r = add8(_mm_maskz_loadu_epi8(mk, a + i), _mm_maskz_loadu_epi8(mk, b + i), k);
        _mm_mask_storeu_epi8(out + i, mk, r);
    }
}

#endif
