/* qint_ref.c — the integer format's helpers (multiplier quantization, weight
 * packing) and the naive reference kernels that specify every integer layer
 * (qint.h; docs/integer.md). One output at a time, loop nests in the order
 * of the formula, int32 accumulators, the output stage of qint.h.
 *
 * Also the integer bilinear resize of the input image. Plain C11 with no apq
 * header: an exported model.c carries these functions' text (qmodel_emit.c
 * copies them from build/quant/qint_src.h, which the Makefile makes from
 * this file); preconditions are assert()s. Not here: the fast kernels
 * (qint_fast.c). */
#include "qint.h"

#include <assert.h>
#include <math.h>
#include <string.h>

// ---- requantization ----------------------------------------------------------

int32_t qint_requant(int32_t acc, int32_t m0, int shift) {
    assert(shift >= QINT_SHIFT_MIN && shift <= QINT_SHIFT_MAX);
    int64_t r = qint_requant_inline(acc, m0, shift);
    return r > INT32_MAX ? INT32_MAX : r < INT32_MIN ? INT32_MIN : (int32_t)r;
}

int qint_quantize_multiplier(double M, int32_t *m0, int *shift) {
    *m0 = 0;
    *shift = 0;
    if (!isfinite(M)) return QINT_ERANGE;
    if (M == 0) return QINT_OK;
    int e;
    double f = frexp(M, &e); /* M = f 2^e, 0.5 <= |f| < 1 */
    /* f 2^31 is exact in double (a power-of-two scaling); llround rounds half
     * away from zero */
    long long q = llround(ldexp(f, 31));
    if (q == (1LL << 31) || q == -(1LL << 31)) { /* f rounded up to 1 */
        q /= 2;
        e++;
    }
    if (e > -QINT_SHIFT_MIN) return QINT_ERANGE; /* |M| >= 2^31 */
    if (-e > QINT_SHIFT_MAX) return QINT_UNDERFLOW;
    *m0 = (int32_t)q;
    *shift = -e;
    return QINT_OK;
}

int qint_act_range(int bits, int is_signed, int *zp, int *lo, int *hi) {
    if (bits < 2 || bits > 8) return QINT_EBITS;
    if (is_signed) {
        const int h = (1 << (bits - 1)) - 1;
        *zp = 128;
        *lo = 128 - h;
        *hi = 128 + h;
    } else {
        *zp = 0;
        *lo = 0;
        *hi = (1 << bits) - 1;
    }
    return QINT_OK;
}

// ---- weight storage ----------------------------------------------------------

/* Field width of b-bit weights: 2, 4 or 8; 0 for an unsupported b. */
static int field_bits(int bits) {
    if (bits < 2 || bits > 8) return 0;
    return bits == 2 ? 2 : bits <= 4 ? 4 : 8;
}

size_t qint_packed_bytes(size_t n, int bits) {
    const int f = field_bits(bits);
    assert(f > 0);
    const size_t per = (size_t)(8 / f);
    return (n + per - 1) / per;
}

int qint_pack(uint8_t *dst, const int8_t *w, size_t n, int bits) {
    const int f = field_bits(bits);
    if (!f) return QINT_EBITS;
    const int per = 8 / f, lim = (1 << (bits - 1)) - 1;
    const unsigned mask = (1u << f) - 1;
    memset(dst, 0, qint_packed_bytes(n, bits));
    for (size_t i = 0; i < n; i++) {
        if (w[i] > lim || w[i] < -lim) return QINT_ERANGE;
        /* the f-bit two's complement field of w[i] */
        const unsigned field = (unsigned)(uint8_t)w[i] & mask;
        dst[i / per] |= (uint8_t)(field << (i % per) * f);
    }
    return QINT_OK;
}

int qint_unpack(int8_t *w, const uint8_t *src, size_t n, int bits) {
    const int f = field_bits(bits);
    if (!f) return QINT_EBITS;
    const int per = 8 / f;
    const unsigned mask = (1u << f) - 1, sign = 1u << (f - 1);
    for (size_t i = 0; i < n; i++) {
        const unsigned field = (unsigned)(src[i / per] >> (i % per) * f) & mask;
        w[i] = (int8_t)((int)(field ^ sign) - (int)sign); /* sign-extend */
    }
    return QINT_OK;
}

// ---- reference kernels ---------------------------------------------------------

/* The preconditions every accumulating kernel shares. */
static void check_layer(int zp_in, const int32_t *bias, const struct qint_out *q, int C, long K) {
    assert(zp_in >= 0 && zp_in <= 255 && K >= 1 && K <= QINT_MAX_K && C >= 1);
    if (q) assert(q->zp >= 0 && q->zp <= 255 && 0 <= q->lo && q->lo <= q->hi && q->hi <= 255);
    for (int c = 0; c < C; c++) {
        assert(bias[c] >= -QINT_MAX_BIAS && bias[c] <= QINT_MAX_BIAS);
        if (q) assert(q->shift[c] >= QINT_SHIFT_MIN && q->shift[c] <= QINT_SHIFT_MAX);
    }
}

static uint8_t out_stage(int32_t acc, const struct qint_out *q, int c) {
    return qint_out_inline(acc, q->m0[c], q->shift[c], q->zp, q->lo, q->hi);
}

void qint_conv_ref(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
                   const struct qint_out *q, int H, int W, int Cin, int Cout, int k, int stride) {
    assert(H >= 1 && W >= 1 && Cin >= 1 && k >= 1 && k % 2 == 1 && stride >= 1);
    check_layer(zp_in, bias, q, Cout, (long)k * k * Cin);
    const int pad = k / 2, OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1;
    for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++)
            for (int co = 0; co < Cout; co++) {
                int32_t acc = bias[co];
                for (int kh = 0; kh < k; kh++)
                    for (int kw = 0; kw < k; kw++) {
                        const int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue; /* x = zp_in */
                        for (int ci = 0; ci < Cin; ci++)
                            acc += (in[((size_t)ih * W + iw) * Cin + ci] - zp_in) *
                                   w[(((size_t)co * k + kh) * k + kw) * Cin + ci];
                    }
                out[((size_t)oh * OW + ow) * Cout + co] = out_stage(acc, q, co);
            }
}

void qint_pw_ref(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
                 const struct qint_out *q, int HW, int Cin, int Cout) {
    assert(HW >= 1);
    check_layer(zp_in, bias, q, Cout, Cin);
    for (int p = 0; p < HW; p++)
        for (int co = 0; co < Cout; co++) {
            int32_t acc = bias[co];
            for (int ci = 0; ci < Cin; ci++)
                acc += (in[(size_t)p * Cin + ci] - zp_in) * w[(size_t)co * Cin + ci];
            out[(size_t)p * Cout + co] = out_stage(acc, q, co);
        }
}

void qint_dw_ref(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
                 const struct qint_out *q, int H, int W, int C, int k, int stride) {
    assert(H >= 1 && W >= 1 && k >= 1 && k % 2 == 1 && stride >= 1);
    check_layer(zp_in, bias, q, C, (long)k * k);
    const int pad = k / 2, OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1;
    for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++)
            for (int c = 0; c < C; c++) {
                int32_t acc = bias[c];
                for (int kh = 0; kh < k; kh++)
                    for (int kw = 0; kw < k; kw++) {
                        const int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue; /* x = zp_in */
                        acc += (in[((size_t)ih * W + iw) * C + c] - zp_in) *
                               w[(size_t)(kh * k + kw) * C + c];
                    }
                out[((size_t)oh * OW + ow) * C + c] = out_stage(acc, q, c);
            }
}

void qint_avgpool_ref(uint8_t *out, const uint8_t *in, int zp_in, int32_t m0, int shift, int zp_out,
                      int lo, int hi, int HW, int C) {
    assert(HW >= 1 && HW <= (1 << 23) && C >= 1 && zp_in >= 0 && zp_in <= 255);
    assert(shift >= QINT_SHIFT_MIN && shift <= QINT_SHIFT_MAX);
    assert(zp_out >= 0 && zp_out <= 255 && 0 <= lo && lo <= hi && hi <= 255);
    for (int c = 0; c < C; c++) {
        int32_t sum = 0;
        for (int p = 0; p < HW; p++) sum += in[(size_t)p * C + c] - zp_in;
        out[c] = qint_out_inline(sum, m0, shift, zp_out, lo, hi);
    }
}

void qint_linear_s32_ref(int32_t *out, const uint8_t *in, int zp_in, const int8_t *w,
                         const int32_t *bias, int K, int N) {
    check_layer(zp_in, bias, NULL, N, K);
    for (int n = 0; n < N; n++) {
        int32_t acc = bias[n];
        for (int i = 0; i < K; i++) acc += (in[i] - zp_in) * w[(size_t)n * K + i];
        out[n] = acc;
    }
}

void qint_linear_ref(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w,
                     const int32_t *bias, const struct qint_out *q, int K, int N) {
    check_layer(zp_in, bias, q, N, K);
    for (int n = 0; n < N; n++) {
        int32_t acc = bias[n];
        for (int i = 0; i < K; i++) acc += (in[i] - zp_in) * w[(size_t)n * K + i];
        out[n] = out_stage(acc, q, n);
    }
}

void qint_add_ref(uint8_t *out, const uint8_t *a, const uint8_t *b, const struct qint_add *p,
                  size_t n) {
    assert(qint_add_valid(p));
    const int na = 31 + p->shift_a, nb = 31 + p->shift_b, nmax = na > nb ? na : nb;
    const int64_t ua = (int64_t)1 << (nmax - na), ub = (int64_t)1 << (nmax - nb);
    for (size_t i = 0; i < n; i++) {
        const int64_t t =
            (int64_t)(a[i] - p->zp_a) * p->m0_a * ua + (int64_t)(b[i] - p->zp_b) * p->m0_b * ub;
        const int64_t r = qint_round_shift(t, nmax) + p->zp;
        out[i] = (uint8_t)(r < p->lo ? p->lo : r > p->hi ? p->hi : r);
    }
}

// ---- the input image -----------------------------------------------------------

/* Source index and weight (in 1/32768) of output position d of an h -> oh
 * resize, half-pixel centres (nn_resize_bilinear's formula in exact
 * rationals: src = max(0, ((2d+1) h - oh) / (2 oh))). */
static void resize_index(int d, int h, int oh, int *i0, int *i1, int *lam) {
    long num = (long)(2 * d + 1) * h - oh, den = 2L * oh;
    if (num < 0) num = 0;
    long i = num / den;
    if (i > h - 1) i = h - 1;
    *i0 = (int)i;
    *i1 = (int)i + (i < h - 1);
    *lam = (int)(((num - i * den) * 32768 + oh) / den);
}

void qint_resize_bilinear(uint8_t *out, const uint8_t *in, int h, int oh) {
    if (oh == h) {
        memcpy(out, in, (size_t)h * h);
        return;
    }
    for (int y = 0; y < oh; y++) {
        int y0, y1, ly;
        resize_index(y, h, oh, &y0, &y1, &ly);
        for (int x = 0; x < oh; x++) {
            int x0, x1, lx;
            resize_index(x, h, oh, &x0, &x1, &lx);
            uint64_t top =
                (uint64_t)(32768 - lx) * in[y0 * h + x0] + (uint64_t)lx * in[y0 * h + x1];
            uint64_t bot =
                (uint64_t)(32768 - lx) * in[y1 * h + x0] + (uint64_t)lx * in[y1 * h + x1];
            uint64_t v = (uint64_t)(32768 - ly) * top + (uint64_t)ly * bot;
            out[y * oh + x] = (uint8_t)((v + (1u << 29)) >> 30);
        }
    }
}
