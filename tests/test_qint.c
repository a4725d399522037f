/* test_qint.c — the integer kernels (quant/qint.h): the requantization's
 * rounding against a long-double oracle (half values of both signs,
 * multiplier and shift extremes), the multiplier's quantization, weight
 * packing round trips, every fast kernel byte for byte against its
 * reference on odd, sliced and elastic shapes and every pair of input and
 * weight bit-widths (both the AVX-512 and the portable path), scratch and
 * output bounds (canaries), and a float-consistency check of a quantized
 * convolution against apq's float kernel.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../nn/nn.h"
#include "../quant/qint.h"
#include "../quant/qint_internal.h"
#include "../util/util.h"

// ---- helpers ---------------------------------------------------------------

/* The exact requantization: round(acc m0 2^-(31+shift)), half away from
 * zero, in long double (64-bit significand: acc m0 < 2^62 is exact, the
 * power-of-two scaling too). */
static long double oracle(int32_t acc, int32_t m0, int shift) {
    return roundl(ldexpl((long double)acc * m0, -(31 + shift)));
}

/* Mismatching bytes of got vs want [n]: prints the first few indices and the
 * count under `what`; returns the count. */
static long cmp_u8(const char *what, const uint8_t *got, const uint8_t *want, size_t n) {
    long bad = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i] && bad++ < 5)
            fprintf(stderr, "  %s: [%zu] = %d, want %d\n", what, i, got[i], want[i]);
    if (bad) fprintf(stderr, "  %s: %ld of %zu bytes differ\n", what, bad, n);
    return bad;
}

static long cmp_s32(const char *what, const int32_t *got, const int32_t *want, size_t n) {
    long bad = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i] && bad++ < 5)
            fprintf(stderr, "  %s: [%zu] = %d, want %d\n", what, i, got[i], want[i]);
    if (bad) fprintf(stderr, "  %s: %ld of %zu values differ\n", what, bad, n);
    return bad;
}

static int rnd(struct rng *r, int lo, int hi) {
    return lo + (int)rng_int(r, (unsigned long)(hi - lo + 1));
}
/* Uniform over all of int32 (two draws: the generator gives 32 bits at most). */
static int32_t rand_i32(struct rng *r) {
    const long u = (long)(rng_int(r, 1ul << 16) << 16 | rng_int(r, 1ul << 16));
    return (int32_t)(u - (1L << 31));
}

/* A random activation tensor kind: bits 2..8, signed or not; or (bits 0) any
 * byte with any zero point, beyond the format, which the kernels also take. */
struct act {
    int bits, zp, lo, hi;
};

static struct act act_kind(struct rng *r, int bits, int is_signed) {
    struct act a = {bits, 0, 0, 255};
    if (bits == 0)
        a.zp = rnd(r, 0, 255);
    else
        qint_act_range(bits, is_signed, &a.zp, &a.lo, &a.hi);
    return a;
}

static uint8_t *rand_act(struct rng *r, const struct act *a, size_t n) {
    uint8_t *x = apq_xmalloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) x[i] = (uint8_t)rnd(r, a->lo, a->hi);
    return x;
}

/* b-bit symmetric weights; bits 0: any int8, -128 included. */
static int8_t *rand_w(struct rng *r, int bits, size_t n) {
    int8_t *w = apq_xmalloc(n);
    const int h = bits ? (1 << (bits - 1)) - 1 : 127, lo = bits ? -h : -128;
    for (size_t i = 0; i < n; i++) w[i] = (int8_t)rnd(r, lo, h);
    return w;
}

/* A layer's output stage and bias for C channels whose accumulators spread
 * about acc_scale: multipliers that map that spread onto the output range
 * (times e^u, u uniform in [-1, 1]; 1 in 8 rounded down to a power of 2, so
 * that exact halves are frequent), and now and then (1 in 8) a random
 * extreme: any m0, any shift in range, a bias at the bound. */
struct stage {
    int32_t *m0, *bias;
    int8_t *shift;
    struct qint_out q;
};

static struct stage rand_stage(struct rng *r, int C, double acc_scale, const struct act *out) {
    struct stage s;
    s.m0 = apq_xmalloc(sizeof(int32_t) * C);
    s.bias = apq_xmalloc(sizeof(int32_t) * C);
    s.shift = apq_xmalloc((size_t)C);
    for (int c = 0; c < C; c++) {
        int32_t m0;
        int sh;
        const unsigned long kind = rng_int(r, 8);
        if (kind == 0) {
            static const int edge[] = {QINT_SHIFT_MIN, -30, 0, 31, 32, 33, QINT_SHIFT_MAX};
            m0 = rand_i32(r);
            sh = rng_int(r, 2) ? edge[rng_int(r, 7)] : rnd(r, QINT_SHIFT_MIN, QINT_SHIFT_MAX);
            s.bias[c] = (int32_t)(rng_int(r, 2) ? QINT_MAX_BIAS : -QINT_MAX_BIAS);
        } else {
            double M = (out->hi - out->lo + 1) / (2 * acc_scale) * exp(2 * rng_uniform(r) - 1);
            if (kind == 1) M = ldexp(1, (int)floor(log2(M))); /* a power of 2: exact halves */
            CHECK(qint_quantize_multiplier(rng_int(r, 16) ? M : -M, &m0, &sh) == QINT_OK);
            s.bias[c] = (int32_t)rnd(r, -(int)acc_scale, (int)acc_scale);
        }
        s.m0[c] = m0;
        s.shift[c] = (int8_t)sh;
    }
    s.q = (struct qint_out){s.m0, s.shift, out->zp, out->lo, out->hi};
    return s;
}

static void free_stage(struct stage *s) {
    free(s->m0), free(s->bias), free(s->shift);
}

/* A buffer of n bytes followed by GUARD canary bytes. */
#define GUARD  64
#define CANARY 0xa5
static void *guarded(size_t n) {
    uint8_t *p = apq_xmalloc(n + GUARD);
    memset(p, CANARY, n + GUARD);
    return p;
}
/* The same, 64-byte aligned (for plans). */
static void *guarded_aligned(size_t n) {
    uint8_t *p = aligned_alloc(64, (n + GUARD + 63) / 64 * 64);
    if (!p) apq_oom("%zu bytes", n);
    memset(p, CANARY, n + GUARD);
    return p;
}
static int guard_intact(const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = n; i < n + GUARD; i++)
        if (b[i] != CANARY) return 0;
    return 1;
}

/* The paths of the fast kernels to compare: AVX-512 (when built) and portable. */
static int n_paths(void) {
    return QINT_HAVE_SIMD ? 2 : 1;
}
static void set_path(int i) {
    qint_simd(QINT_HAVE_SIMD && i == 0);
}

// ---- requantization ------------------------------------------------------------

TEST(qint_requant_half_away) {
    /* m0 = 2^30, shift 0: y = acc / 2, every odd acc is a half */
    const int32_t acc[] = {1, -1, 3, -3, 5, -5, 0, 2, -2};
    const int64_t want[] = {1, -1, 2, -2, 3, -3, 0, 1, -1};
    for (int i = 0; i < 9; i++) CHECK(qint_requant_inline(acc[i], 1 << 30, 0) == want[i]);
    /* m0 = -2^30: the sign flips, still away from zero */
    for (int i = 0; i < 9; i++) CHECK(qint_requant_inline(acc[i], -(1 << 30), 0) == -want[i]);
    /* just below and above a half: (2^30 - 1) / 2^31 and (2^30 + 1) / 2^31 with acc = 1 */
    CHECK(qint_requant_inline(1, (1 << 30) - 1, 0) == 0);
    CHECK(qint_requant_inline(1, (1 << 30) + 1, 0) == 1);
    CHECK(qint_requant_inline(-1, (1 << 30) + 1, 0) == -1);
    /* shift -31: no rounding, y = acc m0; saturation of the int32 helper */
    CHECK(qint_requant_inline(3, 5, -31) == 15);
    CHECK(qint_requant(INT32_MAX, INT32_MAX, -31) == INT32_MAX);
    CHECK(qint_requant(INT32_MIN, INT32_MAX, -31) == INT32_MIN);
    /* shift 32 (n = 63): only |p| = 2^62 reaches a half; shift 62: always 0 */
    CHECK(qint_requant_inline(INT32_MIN, INT32_MIN, 32) == 1);
    CHECK(qint_requant_inline(INT32_MIN, INT32_MAX, 32) == 0); /* 1/2 - 2^-32 */
    CHECK(qint_requant_inline(INT32_MIN, INT32_MIN, 33) == 0);
    CHECK(qint_requant_inline(INT32_MAX, INT32_MAX, 62) == 0);
    /* the output stage: zero point after rounding, then the clamp */
    CHECK(qint_out_inline(5, 1 << 30, 0, 128, 121, 135) == 131);
    CHECK(qint_out_inline(-5, 1 << 30, 0, 128, 121, 135) == 125);
    CHECK(qint_out_inline(100, 1 << 30, 0, 128, 121, 135) == 135);
    CHECK(qint_out_inline(-100, 1 << 30, 0, 0, 0, 63) == 0);
}

TEST(qint_requant_matches_oracle) {
    CHECK(LDBL_MANT_DIG >= 64); /* the oracle's exactness */
    struct rng r;
    rng_init(&r, 15, RNG_INIT);
    const int32_t accs[] = {0, 1, -1, 2, -2, 3, 1000, -1000, INT32_MAX, INT32_MIN, INT32_MIN + 1};
    const int32_t m0s[] = {0,
                           1,
                           -1,
                           1 << 30,
                           -(1 << 30),
                           INT32_MAX,
                           INT32_MIN + 1,
                           INT32_MIN,
                           (1 << 30) + 12345,
                           -(1 << 30) - 777};
    long bad = 0, n = 0;
    for (int sh = QINT_SHIFT_MIN; sh <= QINT_SHIFT_MAX; sh++) {
        for (size_t i = 0; i < sizeof accs / sizeof accs[0]; i++)
            for (size_t j = 0; j < sizeof m0s / sizeof m0s[0]; j++, n++)
                bad += (long double)qint_requant_inline(accs[i], m0s[j], sh) !=
                       oracle(accs[i], m0s[j], sh);
        for (int t = 0; t < 2000; t++, n++) {
            /* random magnitudes of every size, and exact halves */
            const int32_t acc = rand_i32(&r) / (int32_t)(1u << rng_int(&r, 31));
            int32_t m0 = rand_i32(&r);
            if (t % 4 == 0) m0 = (rng_int(&r, 2) ? 1 : -1) * (1 << (30 - rng_int(&r, 4)));
            const long double want = oracle(acc, m0, sh);
            const long double got = qint_requant_inline(acc, m0, sh);
            if (got != want && bad++ < 5)
                fprintf(stderr, "  requant(%d, %d, %d) = %.0Lf, want %.0Lf\n", acc, m0, sh, got,
                        want);
            const long double sat = want > INT32_MAX   ? INT32_MAX
                                    : want < INT32_MIN ? INT32_MIN
                                                       : want;
            bad += (long double)qint_requant(acc, m0, sh) != sat;
        }
    }
    CHECK(bad == 0);
    CHECK(n > 180000);
    rng_free(&r);
}

TEST(qint_round_shift_int64) {
    /* the residual add's rounding of a full int64 */
    CHECK(qint_round_shift(INT64_MAX, 63) == 1); /* (2^63 - 1) / 2^63 > 1/2 */
    CHECK(qint_round_shift(-INT64_MAX, 63) == -1);
    CHECK(qint_round_shift((int64_t)1 << 62, 63) == 1); /* exactly 1/2 */
    CHECK(qint_round_shift(((int64_t)1 << 62) - 1, 63) == 0);
    CHECK(qint_round_shift(INT64_MAX, 64) == 0);
    CHECK(qint_round_shift(-7, 1) == -4 && qint_round_shift(7, 1) == 4);
    CHECK(qint_round_shift(-5, 2) == -1 && qint_round_shift(-6, 2) == -2);
    CHECK(qint_round_shift(12345, 0) == 12345);
}

TEST(qint_quantize_multiplier_cases) {
    int32_t m0;
    int sh;
    CHECK(qint_quantize_multiplier(0.0, &m0, &sh) == QINT_OK && m0 == 0 && sh == 0);
    CHECK(qint_quantize_multiplier(1.0, &m0, &sh) == QINT_OK && m0 == 1 << 30 && sh == -1);
    CHECK(qint_quantize_multiplier(0.5, &m0, &sh) == QINT_OK && m0 == 1 << 30 && sh == 0);
    CHECK(qint_quantize_multiplier(-0.75, &m0, &sh) == QINT_OK && m0 == -(3 << 29) && sh == 0);
    /* the largest: 2^31 - 1 (shift -31); 2^31 and above, or rounding up to it, fail */
    CHECK(qint_quantize_multiplier(2147483647.0, &m0, &sh) == QINT_OK && m0 == INT32_MAX &&
          sh == -31);
    CHECK(qint_quantize_multiplier(2147483648.0, &m0, &sh) == QINT_ERANGE && m0 == 0);
    CHECK(qint_quantize_multiplier(2147483647.9, &m0, &sh) == QINT_ERANGE);
    CHECK(qint_quantize_multiplier(-3e9, &m0, &sh) == QINT_ERANGE);
    CHECK(qint_quantize_multiplier(INFINITY, &m0, &sh) == QINT_ERANGE);
    CHECK(qint_quantize_multiplier(NAN, &m0, &sh) == QINT_ERANGE && m0 == 0 && sh == 0);
    /* the smallest: 2^-63 (shift 62); below it the flush to 0, exact for any acc */
    CHECK(qint_quantize_multiplier(ldexp(1, -63), &m0, &sh) == QINT_OK && m0 == 1 << 30 &&
          sh == 62);
    CHECK(qint_quantize_multiplier(ldexp(0.75, -63), &m0, &sh) == QINT_UNDERFLOW && m0 == 0 &&
          sh == 0);
    CHECK(qint_quantize_multiplier(-1e-30, &m0, &sh) == QINT_UNDERFLOW && m0 == 0);
    /* relative error <= 2^-31, |m0| in [2^30, 2^31), and the requantization of
     * the quantized multiplier is round(acc M) whenever acc M is not within
     * |acc M| 2^-30 of a half */
    struct rng r;
    rng_init(&r, 16, RNG_INIT);
    long bad = 0, checked = 0;
    for (int t = 0; t < 20000; t++) {
        const double M = (rng_int(&r, 2) ? 1 : -1) * ldexp(1 + rng_uniform(&r), rnd(&r, -60, 29));
        if (qint_quantize_multiplier(M, &m0, &sh) != QINT_OK) {
            bad++;
            continue;
        }
        const double got = ldexp((double)m0, -(31 + sh));
        bad += fabs(got - M) > ldexp(fabs(M), -31) || labs((long)m0) < (1L << 30) ||
               labs((long)m0) >= (1L << 31);
        const int32_t acc = (int32_t)(rng_int(&r, 1ul << 20)) - (1 << 19);
        const long double y = (long double)acc * M, frac = y - floorl(y);
        if (fabsl(frac - 0.5L) > fabsl(y) * ldexpl(1, -30) + 1e-9L && fabsl(y) < 1e9L) {
            checked++;
            bad += (long double)qint_requant_inline(acc, m0, sh) != roundl(y);
        }
    }
    CHECK(bad == 0);
    CHECK(checked > 10000);
    rng_free(&r);
}

TEST(qint_act_ranges) {
    int zp, lo, hi;
    CHECK(qint_act_range(8, 0, &zp, &lo, &hi) == QINT_OK && zp == 0 && lo == 0 && hi == 255);
    CHECK(qint_act_range(4, 0, &zp, &lo, &hi) == QINT_OK && zp == 0 && hi == 15);
    CHECK(qint_act_range(8, 1, &zp, &lo, &hi) == QINT_OK && zp == 128 && lo == 1 && hi == 255);
    CHECK(qint_act_range(2, 1, &zp, &lo, &hi) == QINT_OK && zp == 128 && lo == 127 && hi == 129);
    CHECK(qint_act_range(1, 0, &zp, &lo, &hi) == QINT_EBITS);
    CHECK(qint_act_range(9, 1, &zp, &lo, &hi) == QINT_EBITS);
}

// ---- weight packing ----------------------------------------------------------------

TEST(qint_pack_layout) {
    /* 4 bits: element i in byte i/2, the low nibble first */
    const int8_t w4[5] = {1, -2, 7, -7, 3};
    uint8_t p[8];
    CHECK(qint_packed_bytes(5, 4) == 3);
    CHECK(qint_pack(p, w4, 5, 4) == QINT_OK);
    CHECK(p[0] == 0xe1 && p[1] == 0x97 && p[2] == 0x03);
    /* 2 bits: four per byte from the low end; 3 bits: 4-bit fields */
    const int8_t w2[5] = {1, -1, 0, 1, -1};
    CHECK(qint_packed_bytes(5, 2) == 2 && qint_packed_bytes(5, 3) == 3);
    CHECK(qint_pack(p, w2, 5, 2) == QINT_OK);
    CHECK(p[0] == 0x4d && p[1] == 0x03);
    /* 8 bits (and 5..7): one two's complement byte each */
    const int8_t w8[3] = {-127, 0, 100};
    CHECK(qint_packed_bytes(3, 6) == 3);
    CHECK(qint_pack(p, w8, 3, 8) == QINT_OK && p[0] == 0x81 && p[1] == 0 && p[2] == 100);
    /* out of range (symmetric: -2^(b-1) is out too) and bad bit-widths */
    const int8_t o4[2] = {0, 8}, o4n[1] = {-8}, o8[1] = {-128}, o3[1] = {4};
    CHECK(qint_pack(p, o4, 2, 4) == QINT_ERANGE);
    CHECK(qint_pack(p, o4n, 1, 4) == QINT_ERANGE);
    CHECK(qint_pack(p, o8, 1, 8) == QINT_ERANGE);
    CHECK(qint_pack(p, o3, 1, 3) == QINT_ERANGE);
    CHECK(qint_pack(p, w2, 1, 1) == QINT_EBITS && qint_pack(p, w2, 1, 9) == QINT_EBITS);
    int8_t u[2];
    CHECK(qint_unpack(u, p, 2, 0) == QINT_EBITS);
}

TEST(qint_pack_roundtrip) {
    struct rng r;
    rng_init(&r, 17, RNG_INIT);
    for (int bits = 2; bits <= 8; bits++)
        for (size_t n = 1; n <= 67; n += 1 + n / 8) {
            int8_t *w = rand_w(&r, bits, n), *back = apq_xmalloc(n);
            const size_t nb = qint_packed_bytes(n, bits);
            uint8_t *p = guarded(nb);
            CHECK(qint_pack(p, w, n, bits) == QINT_OK);
            CHECK(guard_intact(p, nb));
            CHECK(qint_unpack(back, p, n, bits) == QINT_OK);
            CHECK(memcmp(back, w, n) == 0);
            /* the bytes: n * field bits / 8 rounded up, unused fields 0 */
            const int f = bits == 2 ? 2 : bits <= 4 ? 4 : 8;
            CHECK(nb == (n * f + 7) / 8);
            if ((n * f) % 8) CHECK((p[nb - 1] >> (n * f) % 8) == 0);
            free(w), free(back), free(p);
        }
    rng_free(&r);
}

// ---- kernels: fast vs reference, byte for byte -----------------------------------

/* The spread of (x - zp) w terms for these kinds: about half the ranges. */
static double term_scale(const struct act *a, int wbits) {
    const double xs = a->bits ? (a->hi - a->lo) / 2.0 + 0.5 : 128;
    return xs * ((wbits ? (1 << (wbits - 1)) - 1 : 127) + 0.5) / 2;
}

/* A layer case's tensors: input, weights, output stage. */
struct lcase {
    struct act in, out;
    uint8_t *x;
    int8_t *w;
    struct stage s;
};

static struct lcase make_case(struct rng *r, size_t nx, size_t nw, int C, int K, int abits,
                              int wbits) {
    struct lcase c;
    c.in = act_kind(r, abits, (int)rng_int(r, 2));
    const int ob = rng_int(r, 4) ? rnd(r, 2, 8) : 0;
    c.out = act_kind(r, ob, (int)rng_int(r, 2));
    c.x = rand_act(r, &c.in, nx);
    c.w = rand_w(r, wbits, nw);
    c.s = rand_stage(r, C, sqrt((double)K) * term_scale(&c.in, wbits), &c.out);
    return c;
}

static void free_case(struct lcase *c) {
    free(c->x), free(c->w);
    free_stage(&c->s);
}

/* Outputs strictly inside their clamp bounds, and all outputs, over the cases
 * of a test: the cases must exercise the rounding, not only the clamp. */
static long n_inner, n_outputs;
static void count_inner(const uint8_t *y, size_t n, const struct act *out) {
    for (size_t i = 0; i < n; i++) n_inner += y[i] > out->lo && y[i] < out->hi;
    n_outputs += (long)n;
}

/* Runs `run` (the fast kernel of a case) on every path into a guarded output
 * of n bytes and a guarded scratch of sb bytes; compares with want. */
#define FAST_VS_REF(label, want, n, sb, run)                                                       \
    do {                                                                                           \
        for (int path = 0; path < n_paths(); path++) {                                             \
            set_path(path);                                                                        \
            uint8_t *got = guarded(n), *scratch = guarded(sb);                                     \
            (void)scratch;                                                                         \
            run;                                                                                   \
            char what_[160];                                                                       \
            snprintf(what_, sizeof what_, "%s path %s", label, path ? "portable" : "simd");        \
            bad += cmp_u8(what_, got, want, n);                                                    \
            bad += !guard_intact(got, n) + !guard_intact(scratch, sb);                             \
            free(got), free(scratch);                                                              \
        }                                                                                          \
        qint_simd(1);                                                                              \
    } while (0)

static long pw_case(struct rng *r, int HW, int Cin, int Cout, int abits, int wbits) {
    struct lcase c = make_case(r, (size_t)HW * Cin, (size_t)Cout * Cin, Cout, Cin, abits, wbits);
    const size_t n = (size_t)HW * Cout, sb = qint_pw_scratch_bytes(Cin, Cout);
    uint8_t *want = apq_xmalloc(n);
    qint_pw_ref(want, c.x, c.in.zp, c.w, c.s.bias, &c.s.q, HW, Cin, Cout);
    count_inner(want, n, &c.out);
    char label[128];
    snprintf(label, sizeof label, "pw HW %d Cin %d Cout %d a%d w%d", HW, Cin, Cout, abits, wbits);
    long bad = 0;
    FAST_VS_REF(label, want, n, sb,
                qint_pw(got, c.x, c.in.zp, c.w, c.s.bias, &c.s.q, HW, Cin, Cout, scratch));
    /* a plan made once, run on both paths */
    const size_t pb = qint_pw_plan_bytes(Cin, Cout);
    void *plan = guarded_aligned(pb);
    qint_pw_plan(plan, c.w, c.s.bias, c.in.zp, &c.s.q, Cin, Cout);
    FAST_VS_REF(label, want, n, 0, qint_pw_run(got, c.x, plan, HW));
    bad += !guard_intact(plan, pb);
    free(plan);
    free(want);
    free_case(&c);
    return bad;
}

static long conv_case(struct rng *r, int H, int W, int Cin, int Cout, int k, int s, int abits,
                      int wbits) {
    const int OH = (H - 1) / s + 1, OW = (W - 1) / s + 1, K = k * k * Cin;
    struct lcase c = make_case(r, (size_t)H * W * Cin, (size_t)Cout * K, Cout, K, abits, wbits);
    const size_t n = (size_t)OH * OW * Cout, sb = qint_conv_scratch_bytes(W, Cin, Cout, k, s);
    uint8_t *want = apq_xmalloc(n);
    qint_conv_ref(want, c.x, c.in.zp, c.w, c.s.bias, &c.s.q, H, W, Cin, Cout, k, s);
    count_inner(want, n, &c.out);
    char label[128];
    snprintf(label, sizeof label, "conv %dx%dx%d->%d k%d s%d a%d w%d", H, W, Cin, Cout, k, s, abits,
             wbits);
    long bad = 0;
    FAST_VS_REF(
        label, want, n, sb,
        qint_conv(got, c.x, c.in.zp, c.w, c.s.bias, &c.s.q, H, W, Cin, Cout, k, s, scratch));
    const size_t pb = qint_conv_plan_bytes(Cin, Cout, k);
    void *plan = guarded_aligned(pb);
    qint_conv_plan(plan, c.w, c.s.bias, c.in.zp, &c.s.q, Cin, Cout, k);
    FAST_VS_REF(label, want, n, qint_conv_run_scratch_bytes(W, Cin, k, s),
                qint_conv_run(got, c.x, plan, H, W, s, scratch));
    bad += !guard_intact(plan, pb);
    free(plan);
    free(want);
    free_case(&c);
    return bad;
}

static long dw_case(struct rng *r, int H, int W, int C, int k, int s, int abits, int wbits) {
    const int OH = (H - 1) / s + 1, OW = (W - 1) / s + 1;
    CHECK(OH == nn_out_size(H, k, s) && OW == nn_out_size(W, k, s)); /* the float kernels' size */
    struct lcase c = make_case(r, (size_t)H * W * C, (size_t)k * k * C, C, k * k, abits, wbits);
    const size_t n = (size_t)OH * OW * C, sb = qint_dw_scratch_bytes(H, W, C, k, s);
    uint8_t *want = apq_xmalloc(n);
    qint_dw_ref(want, c.x, c.in.zp, c.w, c.s.bias, &c.s.q, H, W, C, k, s);
    count_inner(want, n, &c.out);
    char label[128];
    snprintf(label, sizeof label, "dw %dx%dx%d k%d s%d a%d w%d", H, W, C, k, s, abits, wbits);
    long bad = 0;
    FAST_VS_REF(label, want, n, sb,
                qint_dw(got, c.x, c.in.zp, c.w, c.s.bias, &c.s.q, H, W, C, k, s, scratch));
    const size_t pb = qint_dw_plan_bytes(C, k);
    void *plan = guarded_aligned(pb);
    qint_dw_plan(plan, c.w, c.s.bias, c.in.zp, &c.s.q, C, k);
    FAST_VS_REF(label, want, n, qint_dw_run_scratch_bytes(H, W, k, s),
                qint_dw_run(got, c.x, plan, H, W, s, scratch));
    bad += !guard_intact(plan, pb);
    free(plan);
    free(want);
    free_case(&c);
    return bad;
}

/* Bit-widths of a case: 2..8, and 0 for any byte / any int8 (beyond the format). */
static const int BITS[] = {2, 3, 4, 5, 6, 7, 8, 0};
#define NBITS ((int)(sizeof BITS / sizeof BITS[0]))

TEST(qint_pw_matches_ref) {
    struct rng r;
    n_inner = n_outputs = 0;
    rng_init(&r, 18, RNG_INIT);
    long bad = 0;
    /* every pair of input and weight bit-widths, on random small shapes */
    for (int a = 0; a < NBITS; a++)
        for (int b = 0; b < NBITS; b++)
            bad += pw_case(&r, rnd(&r, 1, 30), rnd(&r, 1, 40), rnd(&r, 1, 40), BITS[a], BITS[b]);
    /* odd and sliced channel counts (the elastic width keeps a prefix of the
     * channels: mid = 3*in .. 6*in on a grid of 8), pixel counts around the tile */
    const int cins[] = {1, 2, 3, 4, 5, 7, 16, 17, 24, 31, 33, 72, 144, 160, 576, 960};
    const int couts[] = {1, 3, 7, 10, 16, 17, 24, 32, 33, 48, 72, 144, 640};
    for (size_t i = 0; i < sizeof cins / sizeof cins[0]; i++)
        for (size_t j = 0; j < sizeof couts / sizeof couts[0]; j++) {
            const int HW = cins[i] * couts[j] > 20000 ? rnd(&r, 1, 9) : rnd(&r, 1, 60);
            bad += pw_case(&r, HW, cins[i], couts[j], rnd(&r, 2, 8), rnd(&r, 2, 8));
        }
    for (int mid = 72; mid <= 144; mid += 8) {
        bad += pw_case(&r, 196, 24, mid, 8, rnd(&r, 2, 8)); /* expand at 14x14 */
        bad += pw_case(&r, 49, mid, 32, rnd(&r, 2, 8), 4);  /* project at 7x7 */
    }
    /* a third at least are rounded, not clamped (unsigned outputs clamp
     * about half: the ReLU) */
    CHECK(n_inner * 3 >= n_outputs);
    CHECK(bad == 0);
    rng_free(&r);
}

TEST(qint_conv_matches_ref) {
    struct rng r;
    n_inner = n_outputs = 0;
    rng_init(&r, 19, RNG_INIT);
    long bad = 0;
    for (int a = 0; a < NBITS; a++)
        for (int b = 0; b < NBITS; b++)
            bad += conv_case(&r, rnd(&r, 1, 12), rnd(&r, 1, 12), rnd(&r, 1, 3), rnd(&r, 1, 20), 3,
                             rnd(&r, 1, 2), BITS[a], BITS[b]);
    /* the first layer of the space (28x28x1 -> 16, k3 s1), other resolutions, k, stride */
    bad += conv_case(&r, 28, 28, 1, 16, 3, 1, 8, 8);
    bad += conv_case(&r, 20, 20, 1, 16, 3, 1, 8, 8);
    const int ks[] = {1, 3, 5, 7};
    for (int t = 0; t < 40; t++)
        bad += conv_case(&r, rnd(&r, 1, 28), rnd(&r, 1, 28), rnd(&r, 1, 4), rnd(&r, 1, 40),
                         ks[rng_int(&r, 4)], rnd(&r, 1, 2), rnd(&r, 2, 8), rnd(&r, 2, 8));
    /* a third at least are rounded, not clamped (unsigned outputs clamp
     * about half: the ReLU) */
    CHECK(n_inner * 3 >= n_outputs);
    CHECK(bad == 0);
    rng_free(&r);
}

TEST(qint_dw_matches_ref) {
    struct rng r;
    n_inner = n_outputs = 0;
    rng_init(&r, 20, RNG_INIT);
    long bad = 0;
    const int ks[] = {3, 5, 7};
    for (int a = 0; a < NBITS; a++)
        for (int b = 0; b < NBITS; b++)
            bad += dw_case(&r, rnd(&r, 1, 10), rnd(&r, 1, 10), rnd(&r, 1, 40), ks[rng_int(&r, 3)],
                           rnd(&r, 1, 2), BITS[a], BITS[b]);
    /* every k and stride on odd, sliced and the space's channel counts, spatial 1..28 */
    const int cs[] = {1, 3, 7, 15, 16, 17, 33, 72, 80, 144, 200};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        for (int kk = 0; kk < 3; kk++)
            for (int s = 1; s <= 2; s++) {
                const int H = cs[i] > 100 ? rnd(&r, 1, 14) : rnd(&r, 1, 28);
                bad += dw_case(&r, H, rng_int(&r, 4) ? H : rnd(&r, 1, 28), cs[i], ks[kk], s,
                               rnd(&r, 2, 8), rnd(&r, 2, 8));
            }
    bad += dw_case(&r, 14, 14, 144, 5, 1, 8, 8);
    bad += dw_case(&r, 28, 28, 96, 7, 2, 4, 4);
    /* k 1 and 9 (the portable path on both settings), stride 3 */
    bad += dw_case(&r, 9, 11, 19, 1, 1, 8, 8);
    bad += dw_case(&r, 13, 12, 21, 9, 2, 6, 5);
    bad += dw_case(&r, 17, 16, 35, 5, 3, 8, 8);
    /* a third at least are rounded, not clamped (unsigned outputs clamp
     * about half: the ReLU) */
    CHECK(n_inner * 3 >= n_outputs);
    CHECK(bad == 0);
    rng_free(&r);
}

TEST(qint_linear_matches_ref) {
    struct rng r;
    rng_init(&r, 21, RNG_INIT);
    long bad = 0;
    const int Ks[] = {1, 3, 4, 17, 160, 640, 1001}, Ns[] = {1, 10, 16, 17, 40};
    for (size_t i = 0; i < sizeof Ks / sizeof Ks[0]; i++)
        for (size_t j = 0; j < sizeof Ns / sizeof Ns[0]; j++) {
            const int K = Ks[i], N = Ns[j];
            struct lcase c = make_case(&r, K, (size_t)N * K, N, K, BITS[rng_int(&r, NBITS)],
                                       BITS[rng_int(&r, NBITS)]);
            uint8_t *want = apq_xmalloc(N);
            int32_t *want32 = apq_xmalloc(sizeof(int32_t) * N);
            qint_linear_ref(want, c.x, c.in.zp, c.w, c.s.bias, &c.s.q, K, N);
            qint_linear_s32_ref(want32, c.x, c.in.zp, c.w, c.s.bias, K, N);
            char label[64];
            snprintf(label, sizeof label, "linear K %d N %d", K, N);
            FAST_VS_REF(label, want, (size_t)N, 0,
                        qint_linear(got, c.x, c.in.zp, c.w, c.s.bias, &c.s.q, K, N));
            for (int path = 0; path < n_paths(); path++) {
                set_path(path);
                int32_t *got32 = guarded(sizeof(int32_t) * N);
                qint_linear_s32(got32, c.x, c.in.zp, c.w, c.s.bias, K, N);
                bad += cmp_s32(label, got32, want32, N);
                bad += !guard_intact(got32, sizeof(int32_t) * N);
                free(got32);
            }
            qint_simd(1);
            free(want), free(want32);
            free_case(&c);
        }
    CHECK(bad == 0);
    rng_free(&r);
}

TEST(qint_avgpool_matches_ref) {
    struct rng r;
    rng_init(&r, 22, RNG_INIT);
    long bad = 0;
    const int HWs[] = {1, 4, 9, 16, 49, 784}, Cs[] = {1, 7, 160, 300, 640};
    for (size_t i = 0; i < sizeof HWs / sizeof HWs[0]; i++)
        for (size_t j = 0; j < sizeof Cs / sizeof Cs[0]; j++) {
            const int HW = HWs[i], C = Cs[j];
            struct act in = act_kind(&r, BITS[rng_int(&r, NBITS)], (int)rng_int(&r, 2));
            struct act out = act_kind(&r, rnd(&r, 2, 8), (int)rng_int(&r, 2));
            uint8_t *x = rand_act(&r, &in, (size_t)HW * C);
            int32_t m0;
            int sh;
            /* the mean at the input's scale, or at a random other one */
            const double M = (rng_int(&r, 2) ? 1.0 : exp(2 * rng_uniform(&r) - 1)) / HW;
            CHECK(qint_quantize_multiplier(M, &m0, &sh) == QINT_OK);
            uint8_t *want = apq_xmalloc(C), *got = guarded(C);
            qint_avgpool_ref(want, x, in.zp, m0, sh, out.zp, out.lo, out.hi, HW, C);
            qint_avgpool(got, x, in.zp, m0, sh, out.zp, out.lo, out.hi, HW, C);
            bad += cmp_u8("avgpool", got, want, C) + !guard_intact(got, C);
            free(x), free(want), free(got);
        }
    /* means of known values: (1 + 2) / 2 -> 2 and (2 - 3) / 2 -> -1 (halves away from 0) */
    const uint8_t x2[4] = {129, 130, 130, 125};
    uint8_t o[2];
    int32_t m0;
    int sh;
    CHECK(qint_quantize_multiplier(0.5, &m0, &sh) == QINT_OK);
    qint_avgpool_ref(o, x2, 128, m0, sh, 128, 0, 255, 2, 2);
    CHECK(o[0] == 130 && o[1] == 127);
    qint_avgpool(o, x2, 128, m0, sh, 128, 0, 255, 2, 2);
    CHECK(o[0] == 130 && o[1] == 127);
    CHECK(bad == 0);
    rng_free(&r);
}

TEST(qint_add_matches_ref) {
    struct rng r;
    rng_init(&r, 23, RNG_INIT);
    long bad = 0;
    for (int t = 0; t < 300; t++) {
        const size_t n = (size_t)rnd(&r, 1, 2000);
        struct act a = act_kind(&r, BITS[rng_int(&r, NBITS)], 1);
        struct act b = act_kind(&r, BITS[rng_int(&r, NBITS)], 1);
        struct act o = act_kind(&r, BITS[rng_int(&r, NBITS)], (int)rng_int(&r, 2));
        uint8_t *xa = rand_act(&r, &a, n), *xb = rand_act(&r, &b, n);
        struct qint_add p = {.zp_a = a.zp, .zp_b = b.zp, .zp = o.zp, .lo = o.lo, .hi = o.hi};
        if (t % 5) { /* scales of the same order, M about 1 */
            CHECK(qint_quantize_multiplier(exp(rng_uniform(&r) - 0.5), &p.m0_a, &p.shift_a) == 0);
            CHECK(qint_quantize_multiplier(exp(rng_uniform(&r) - 0.5), &p.m0_b, &p.shift_b) == 0);
        } else { /* any multipliers, shifts apart by up to the bound, the edges often */
            static const int edge[] = {QINT_SHIFT_MIN, -30, 0, 31, 32, 33, QINT_SHIFT_MAX};
            p.m0_a = rand_i32(&r), p.m0_b = rand_i32(&r);
            p.shift_a = t % 2 ? edge[rng_int(&r, 7)] : rnd(&r, QINT_SHIFT_MIN, QINT_SHIFT_MAX);
            const int d = t % 3 ? rnd(&r, -QINT_ADD_MAX_SHIFT_DIFF, QINT_ADD_MAX_SHIFT_DIFF)
                                : (int)rng_int(&r, 2) * QINT_ADD_MAX_SHIFT_DIFF;
            p.shift_b = p.shift_a + (rng_int(&r, 2) ? d : -d);
            p.shift_b = p.shift_b < QINT_SHIFT_MIN   ? QINT_SHIFT_MIN
                        : p.shift_b > QINT_SHIFT_MAX ? QINT_SHIFT_MAX
                                                     : p.shift_b;
        }
        uint8_t *want = apq_xmalloc(n), *got = guarded(n);
        qint_add_ref(want, xa, xb, &p, n);
        qint_add(got, xa, xb, &p, n);
        bad += cmp_u8("add", got, want, n) + !guard_intact(got, n);
        qint_add(xa, xa, xb, &p, n); /* in place */
        bad += cmp_u8("add in place", xa, want, n);
        free(xa), free(xb), free(want), free(got);
    }
    /* one rounding of the sum: 0.5 + 0.5 = 1 (two roundings would give 2);
     * -0.25 + -0.25 = -0.5 -> -1 */
    const uint8_t a2[2] = {129, 127}, b2[2] = {129, 127};
    struct qint_add p = {128, 128, 1 << 30, 1 << 30, 0, 0, 128, 0, 255}; /* Ma = Mb = 1/2 */
    uint8_t o[2];
    qint_add_ref(o, a2, b2, &p, 2);
    CHECK(o[0] == 129 && o[1] == 127);
    p.shift_a = p.shift_b = 1; /* 1/4 */
    qint_add(o, a2, b2, &p, 2);
    CHECK(o[0] == 129 && o[1] == 127);
    CHECK(bad == 0);
    rng_free(&r);
}

// ---- float consistency -------------------------------------------------------------

/* A convolution quantized by hand, as the converter will do it, against apq's
 * float kernel on the dequantized tensors. Input: b-bit codes q_x (unsigned,
 * scale 6/(2^b-1), or signed with zero point 128, scale R/(2^(b-1)-1)), so
 * x = s_x (q_x - zp) exactly. Weights: per output channel s_w = max|w|/127,
 * q_w = round(w/s_w) (quant_weight_fake's rule), wq = s_w q_w. Bias:
 * q_b = round(b/(s_x s_w)). Then the float output y = conv(x, wq) + s_x s_w q_b
 * (nn_ref_conv_forward) is s_x s_w acc up to float rounding, and its 8-bit
 * code after ReLU6 is clamp(round(y/s_y), 0, 255) with s_y = 6/255. The
 * integer kernel computes round(M acc) with M = s_x s_w / s_y to 31 bits, so
 * the codes may differ only where y/s_y is within about 1e-6 of a half:
 * at most one LSB, and rarely. */
TEST(qint_conv_float_consistency) {
    struct rng r;
    rng_init(&r, 24, RNG_INIT);
    const int H = 11, W = 9, Cin = 3, Cout = 6, k = 3;
    long total = 0, differ = 0, far = 0;
    for (int variant = 0; variant < 4; variant++) {
        const int is_signed = variant & 1, s = 1 + (variant >> 1);
        const int OH = (H - 1) / s + 1, OW = (W - 1) / s + 1, K = k * k * Cin;
        struct act in = act_kind(&r, 8, is_signed);
        const double s_x = is_signed ? 3.0 / 127 : 6.0 / 255, s_y = 6.0 / 255;
        uint8_t *qx = rand_act(&r, &in, (size_t)H * W * Cin);
        float *x = apq_falloc((size_t)H * W * Cin), *wq = apq_falloc((size_t)Cout * K);
        float *y = apq_falloc((size_t)OH * OW * Cout);
        for (int i = 0; i < H * W * Cin; i++) x[i] = (float)(s_x * (qx[i] - in.zp));
        int8_t *qw = apq_xmalloc((size_t)Cout * K);
        int32_t qb[6], m0[6];
        int8_t shift[6];
        double s_w[6];
        for (int o = 0; o < Cout; o++) {
            double w[81], mx = 0;
            for (int i = 0; i < K; i++) mx = fmax(mx, fabs(w[i] = rng_normal(&r, 0.3)));
            s_w[o] = mx / 127;
            for (int i = 0; i < K; i++) {
                qw[o * K + i] = (int8_t)nearbyint(w[i] / s_w[o]);
                wq[o * K + i] = (float)(s_w[o] * qw[o * K + i]);
            }
            qb[o] = (int32_t)lround(rng_normal(&r, 0.5) / (s_x * s_w[o]));
            int sh;
            CHECK(qint_quantize_multiplier(s_x * s_w[o] / s_y, &m0[o], &sh) == QINT_OK);
            shift[o] = (int8_t)sh;
        }
        nn_ref_conv_forward(y, x, wq, 1, H, W, Cin, Cout, k, s);
        const struct qint_out q = {m0, shift, 0, 0, 255};
        uint8_t *got = apq_xmalloc((size_t)OH * OW * Cout),
                *ref = apq_xmalloc((size_t)OH * OW * Cout);
        uint8_t *scratch = apq_xmalloc(qint_conv_scratch_bytes(W, Cin, Cout, k, s));
        qint_conv(got, qx, in.zp, qw, qb, &q, H, W, Cin, Cout, k, s, scratch);
        qint_conv_ref(ref, qx, in.zp, qw, qb, &q, H, W, Cin, Cout, k, s);
        CHECK(memcmp(got, ref, (size_t)OH * OW * Cout) == 0);
        for (int i = 0; i < OH * OW * Cout; i++) {
            const int o = i % Cout;
            const double yf = y[i] + s_x * s_w[o] * qb[o];
            const double code = fmin(fmax(round(yf / s_y), 0), 255);
            total++;
            differ += got[i] != code;
            far += fabs(got[i] - code) > 1;
            /* dequantized: within one LSB of the ReLU6 of the float output */
            if (fabs(s_y * got[i] - fmin(fmax(yf, 0), 6)) > s_y) far++;
        }
        free(qx), free(x), free(wq), free(y), free(qw), free(got), free(ref), free(scratch);
    }
    CHECK(far == 0);
    CHECK(differ * 100 <= total); /* codes equal but near halves */
    fprintf(stderr, "  float consistency: %ld of %ld codes differ by one\n", differ, total);
    rng_free(&r);
}
