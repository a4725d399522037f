/* qint.h — integer-only inference kernels (ICN: reference/ecosystem.md (a);
 * the number format is docs/integer.md, summarised here).
 *
 * Plain C11 with no other apq header: this header, qint_ref.c, qint_fast.c and
 * qint_simd.c compile on their own (`cc -std=c11 -c`), so an exported model.c
 * can carry them. Batch 1 (a device runs one image), NHWC, dense.
 *
 * Number format
 *  - Activations: one byte per value (uint8_t), per-tensor zero point zp:
 *    real = s * (q - zp). Unsigned tensors (after ReLU6): zp = 0, q in
 *    [0, 2^b-1]. Signed tensors (block inputs, residual sums): zp = 128
 *    (offset binary), q - zp in [-(2^(b-1)-1), 2^(b-1)-1]. b in 2..8; the
 *    bit-width lives only in the clamp bounds [lo, hi] (qint_act_range).
 *  - Weights: int8_t, symmetric (zero point 0), in [-(2^(b-1)-1), 2^(b-1)-1],
 *    b in 2..8; stored packed (qint_pack). Layouts as apq's float kernels
 *    (nn/nn.h): conv OHWI [Cout][k][k][Cin], pointwise [Cout][Cin],
 *    depthwise [k*k][C] (tap-major), linear [N][K]; all dense.
 *  - Accumulator int32: acc[o] = bias[o] + sum (x - zp_in) * w. Bias int32
 *    per output channel, |bias| <= QINT_MAX_BIAS; K (the terms of one sum)
 *    <= QINT_MAX_K. Then no sum, partial sums included, leaves int32.
 *  - Requantization per output channel (ICN): y = M * acc with
 *    M = m0 * 2^-(31 + shift), m0 int32 (|m0| in [2^30, 2^31) or 0 from
 *    qint_quantize_multiplier), shift in [QINT_SHIFT_MIN, QINT_SHIFT_MAX]
 *    (negative: a left shift). Rounding half away from zero, once, exactly:
 *        p = (int64) acc * m0              (|p| <= 2^62, exact)
 *        n = 31 + shift                    (0 .. 93)
 *        r = sign(p) * ((|p| + 2^(n-1)) >> n)   for 1 <= n <= 63
 *        r = p for n = 0;  r = 0 for n >= 64 (|p| / 2^n < 1/2 there)
 *    in 64-bit unsigned arithmetic (|p| + 2^(n-1) < 2^64: no overflow).
 *    Output: q = clamp(r + zp_out, lo, hi), stored as uint8. The clamp is
 *    the ReLU6 (unsigned outputs: [0, 2^b-1]) or the bit-width limit.
 *  - Padding k/2 with the input zero point (padded positions are a real 0,
 *    they add nothing to acc). Output size nn_out_size: (H-1)/stride + 1 for
 *    odd k.
 *
 * Kernels come in pairs: a naive reference qint_*_ref (qint_ref.c, loop
 * nests, the specification) and a fast qint_* (qint_fast.c, qint_simd.c;
 * AVX-512 VNNI when the build targets it, else portable C the compiler
 * vectorises). Both give the same bytes for every input that meets the
 * preconditions (tests/test_qint.c). Fast kernels that need workspace take
 * `scratch` of at least qint_*_scratch_bytes(...) bytes (any alignment;
 * caller-owned, contents not kept between calls; may be NULL when the size
 * is 0). No kernel allocates or returns an error: a violated precondition
 * fails an assert() (these files carry no apq header; NDEBUG is never set by
 * the build).
 *
 *   qint_quantize_multiplier(s_in * s_w[o] / s_out, &m0[o], &sh);  shift[o] = sh;  // per channel
 *   qint_pw_plan(plan, w, bias, zp_in, &(struct qint_out){m0, shift, 0, 0, 15}, Cin, Cout);
 *   qint_pw_run(out, in, plan, HW);              // 4-bit unsigned output (ReLU6)
 */
#ifndef APQ_QINT_H
#define APQ_QINT_H

#include <stddef.h>
#include <stdint.h>

#define QINT_SHIFT_MIN          (-31)
#define QINT_SHIFT_MAX          62
#define QINT_MAX_K              16384      /* terms of one accumulator sum */
#define QINT_MAX_BIAS           (1L << 29) /* |bias| bound */
#define QINT_ADD_MAX_SHIFT_DIFF 24         /* |shift_a - shift_b| bound of qint_add */

/* Status of qint_quantize_multiplier and qint_pack (0 is success). */
enum qint_status {
    QINT_OK = 0,
    QINT_UNDERFLOW = 1, /* |M| < 2^-63: flushed to m0 = 0, which is exact (below) */
    QINT_ERANGE = -1,   /* |M| >= 2^31, not finite, or a weight outside its bit-width */
    QINT_EBITS = -2     /* bit-width not in 2..8 */
};

// ---- requantization ----------------------------------------------------------

/* The output stage of a layer: per-output-channel multipliers, per-tensor
 * zero point and clamp. Arrays [C] borrowed from the caller. */
struct qint_out {
    const int32_t *m0;   /* [C] multipliers */
    const int8_t *shift; /* [C] shifts in [QINT_SHIFT_MIN, QINT_SHIFT_MAX] */
    int zp;              /* output zero point, 0..255 */
    int lo, hi;          /* clamp bounds, 0 <= lo <= hi <= 255 */
};

/* round(v / 2^n), half away from zero, exact; n >= 0, v != INT64_MIN. */
static inline int64_t qint_round_shift(int64_t v, int n) {
    if (n == 0) return v;
    if (n >= 64) return 0; /* |v| / 2^n < 1/2 */
    uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    uint64_t r = (a + ((uint64_t)1 << (n - 1))) >> n;
    return v < 0 ? -(int64_t)r : (int64_t)r;
}

/* round(acc * m0 * 2^-(31+shift)), half away from zero, exact (the formula
 * at the top), as int64 (|result| <= 2^62). shift in [QINT_SHIFT_MIN,
 * QINT_SHIFT_MAX]. The header-only twin of qint_requant, for generated code. */
static inline int64_t qint_requant_inline(int32_t acc, int32_t m0, int shift) {
    return qint_round_shift((int64_t)acc * m0, 31 + shift);
}

/* The whole output stage: clamp(qint_requant_inline(acc, m0, shift) + zp, lo, hi). */
static inline uint8_t qint_out_inline(int32_t acc, int32_t m0, int shift, int zp, int lo, int hi) {
    int64_t r = qint_requant_inline(acc, m0, shift) + zp;
    return (uint8_t)(r < lo ? lo : r > hi ? hi : r);
}

/* qint_requant_inline saturated to int32: the helper the converter and the
 * library share (qint_ref.c). */
int32_t qint_requant(int32_t acc, int32_t m0, int shift);

/* (m0, shift) with m0 * 2^-(31+shift) = M rounded to 31 significant bits
 * (frexp: M = f * 2^e, f in [0.5, 1); m0 = round(f * 2^31) half away from
 * zero, renormalised when it reaches 2^31; shift = -e), so |m0| in
 * [2^30, 2^31) and |relative error| <= 2^-31. M = 0 gives (0, 0). Returns
 * QINT_OK; QINT_UNDERFLOW when |M| < 2^-63 (shift would exceed
 * QINT_SHIFT_MAX; (0, 0) is stored, and the result is the same as the exact
 * product rounds to, 0, for every int32 acc); QINT_ERANGE when |M| >= 2^31
 * (shift below QINT_SHIFT_MIN) or M is not finite (m0 = shift = 0 then). */
int qint_quantize_multiplier(double M, int32_t *m0, int *shift);

/* Zero point and clamp bounds of a b-bit activation tensor (b in 2..8):
 * unsigned: zp = 0, [0, 2^b-1]; signed: zp = 128, [128-(2^(b-1)-1),
 * 128+2^(b-1)-1]. Returns QINT_OK or QINT_EBITS. */
int qint_act_range(int bits, int is_signed, int *zp, int *lo, int *hi);

// ---- weight storage ----------------------------------------------------------

/* Packed weights: b-bit values in fields of f bits, f = 2 for b = 2, 4 for
 * b = 3..4, 8 for b = 5..8; element i goes to byte i / (8/f), bits
 * (i % (8/f)) * f upwards from the low end, as an f-bit two's complement
 * field. Bytes: ceil(n / (8/f)); unused high fields of the last byte are 0. */
size_t qint_packed_bytes(size_t n, int bits);
/* dst [qint_packed_bytes(n, bits)] = w [n] packed. Returns QINT_OK,
 * QINT_EBITS, or QINT_ERANGE when some |w[i]| > 2^(b-1)-1 (dst is then
 * incomplete). */
int qint_pack(uint8_t *dst, const int8_t *w, size_t n, int bits);
/* w [n] = the fields of src (sign-extended). Returns QINT_OK or QINT_EBITS. */
int qint_unpack(int8_t *w, const uint8_t *src, size_t n, int bits);

// ---- reference kernels (qint_ref.c) -------------------------------------------
/* The specification: loop nests, one output at a time. Shapes as the fast
 * kernels below; no scratch. */
void qint_conv_ref(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
                   const struct qint_out *q, int H, int W, int Cin, int Cout, int k, int stride);
void qint_pw_ref(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
                 const struct qint_out *q, int HW, int Cin, int Cout);
void qint_dw_ref(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
                 const struct qint_out *q, int H, int W, int C, int k, int stride);
void qint_avgpool_ref(uint8_t *out, const uint8_t *in, int zp_in, int32_t m0, int shift, int zp_out,
                      int lo, int hi, int HW, int C);
void qint_linear_s32_ref(int32_t *out, const uint8_t *in, int zp_in, const int8_t *w,
                         const int32_t *bias, int K, int N);
void qint_linear_ref(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w,
                     const int32_t *bias, const struct qint_out *q, int K, int N);

/* Residual add: out = clamp(round(Ma (a - zp_a) + Mb (b - zp_b)) + zp, lo, hi)
 * with Ma = m0_a 2^-(31+shift_a), Mb likewise. One rounding: with
 * na = 31+shift_a, nb = 31+shift_b, n = max(na, nb),
 *     T = (a - zp_a) m0_a 2^(n-na) + (b - zp_b) m0_b 2^(n-nb)     (int64, exact)
 *     r = qint_round_shift(T, n)
 * (|T| < 2^63 because |shift_a - shift_b| <= QINT_ADD_MAX_SHIFT_DIFF). */
struct qint_add {
    int zp_a, zp_b;
    int32_t m0_a, m0_b;
    int shift_a, shift_b; /* each in [QINT_SHIFT_MIN, QINT_SHIFT_MAX] */
    int zp, lo, hi;       /* output zero point and clamp, as struct qint_out */
};
/* 1 when p meets qint_add's preconditions (shifts in range and at most
 * QINT_ADD_MAX_SHIFT_DIFF apart, zero points and clamp within 0..255), else 0. */
static inline int qint_add_valid(const struct qint_add *p) {
    return p->shift_a >= QINT_SHIFT_MIN && p->shift_a <= QINT_SHIFT_MAX &&
           p->shift_b >= QINT_SHIFT_MIN && p->shift_b <= QINT_SHIFT_MAX &&
           p->shift_a - p->shift_b <= QINT_ADD_MAX_SHIFT_DIFF &&
           p->shift_b - p->shift_a <= QINT_ADD_MAX_SHIFT_DIFF && p->zp_a >= 0 && p->zp_a <= 255 &&
           p->zp_b >= 0 && p->zp_b <= 255 && p->zp >= 0 && p->zp <= 255 && 0 <= p->lo &&
           p->lo <= p->hi && p->hi <= 255;
}
void qint_add_ref(uint8_t *out, const uint8_t *a, const uint8_t *b, const struct qint_add *p,
                  size_t n);

/* Integer bilinear resize of one image: out [oh][oh] from in [h][h] bytes,
 * half-pixel centres (nn_resize_bilinear's formula in exact rationals:
 * src = max(0, ((2d+1) h - oh) / (2 oh))), weights in 1/32768, one rounding
 * half up; out = in when oh == h. h, oh in 1..2^15. */
void qint_resize_bilinear(uint8_t *out, const uint8_t *in, int h, int oh);

// ---- fast kernels (qint_fast.c, qint_simd.c) -----------------------------------
/* Each convolution comes in two forms with the same bytes out:
 *  - one call, qint_pw(...): repacks the layer into scratch on every call;
 *  - a plan made once per layer, qint_pw_plan(...), then qint_pw_run(...) per
 *    image: the plan holds the repacked weights, the bias with the input zero
 *    point folded in, and the output stage as tables. A plan is a byte blob
 *    of qint_*_plan_bytes(...) bytes in caller memory aligned to 64 bytes,
 *    self-contained (no pointers inside: it can be copied or saved, for
 *    this build's path or the other), read-only once made. w, bias and q are
 *    not kept. */

/* First convolution k x k (odd k), stride >= 1, pad k/2 with zp_in:
 * in [H][W][Cin], w OHWI [Cout][k][k][Cin], bias [Cout], q arrays [Cout],
 * out [OH][OW][Cout] with OH = (H-1)/stride + 1 (OW likewise).
 * k*k*Cin <= QINT_MAX_K. Scratch of qint_conv_scratch_bytes (one call) or
 * qint_conv_run_scratch_bytes (plan): the patches of one output row. */
size_t qint_conv_scratch_bytes(int W, int Cin, int Cout, int k, int stride);
void qint_conv(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
               const struct qint_out *q, int H, int W, int Cin, int Cout, int k, int stride,
               void *scratch);
size_t qint_conv_plan_bytes(int Cin, int Cout, int k);
void qint_conv_plan(void *plan, const int8_t *w, const int32_t *bias, int zp_in,
                    const struct qint_out *q, int Cin, int Cout, int k);
size_t qint_conv_run_scratch_bytes(int W, int Cin, int k, int stride);
void qint_conv_run(uint8_t *out, const uint8_t *in, const void *plan, int H, int W, int stride,
                   void *scratch);

/* Pointwise 1x1 convolution: in [HW][Cin], w [Cout][Cin], bias [Cout], q
 * arrays [Cout], out [HW][Cout]. Cin <= QINT_MAX_K. The one call's scratch:
 * qint_pw_scratch_bytes (= the plan); the plan's run needs none. */
size_t qint_pw_scratch_bytes(int Cin, int Cout);
void qint_pw(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
             const struct qint_out *q, int HW, int Cin, int Cout, void *scratch);
size_t qint_pw_plan_bytes(int Cin, int Cout);
void qint_pw_plan(void *plan, const int8_t *w, const int32_t *bias, int zp_in,
                  const struct qint_out *q, int Cin, int Cout);
void qint_pw_run(uint8_t *out, const uint8_t *in, const void *plan, int HW);

/* Depthwise k x k (odd k; 3, 5, 7 in the space), stride >= 1, pad k/2 with
 * zp_in: in [H][W][C], w [k*k][C], bias [C], q arrays [C], out [OH][OW][C].
 * Scratch of qint_dw_scratch_bytes (one call) or qint_dw_run_scratch_bytes
 * (plan): a padded copy of 16 channels of the input. */
size_t qint_dw_scratch_bytes(int H, int W, int C, int k, int stride);
void qint_dw(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
             const struct qint_out *q, int H, int W, int C, int k, int stride, void *scratch);
size_t qint_dw_plan_bytes(int C, int k);
void qint_dw_plan(void *plan, const int8_t *w, const int32_t *bias, int zp_in,
                  const struct qint_out *q, int C, int k);
size_t qint_dw_run_scratch_bytes(int H, int W, int k, int stride);
void qint_dw_run(uint8_t *out, const uint8_t *in, const void *plan, int H, int W, int stride,
                 void *scratch);

/* Global average pooling: out[c] = clamp(requant(sum_p (in[p][c] - zp_in),
 * m0, shift) + zp_out, lo, hi) over in [HW][C]; one multiplier for the
 * tensor, M = s_in / (s_out * HW) (the 1/HW is folded into it). HW <= 2^23. */
void qint_avgpool(uint8_t *out, const uint8_t *in, int zp_in, int32_t m0, int shift, int zp_out,
                  int lo, int hi, int HW, int C);

/* Linear (classifier), in [K], w [N][K], bias [N]. K <= QINT_MAX_K.
 * _s32: out [N] = the int32 accumulators (logits with scale s_in * s_w[n]),
 * no requantization; otherwise out [N] uint8 through q (arrays [N]).
 * One dot product per output (vectorised over K); no scratch, no plan. */
void qint_linear_s32(int32_t *out, const uint8_t *in, int zp_in, const int8_t *w,
                     const int32_t *bias, int K, int N);
void qint_linear(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
                 const struct qint_out *q, int K, int N);

/* Residual add over n elements (out may alias a or b); formula at qint_add_ref. */
void qint_add(uint8_t *out, const uint8_t *a, const uint8_t *b, const struct qint_add *p, size_t n);

#endif
