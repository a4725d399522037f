/* qint_internal.h — the pieces the fast integer kernels share (qint_fast.c:
 * plans, the portable C and the dispatch; qint_simd.c: AVX-512 VNNI): the
 * plan's layout, its views, and the switch between the two paths for tests
 * and benchmarks. Not a public API: only quant/ and tests/test_qint.c
 * include it. Plain C11 like qint.h.
 */
#ifndef APQ_QINT_INTERNAL_H
#define APQ_QINT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "qint.h"

/* The AVX-512 path needs VNNI (vpdpbusd), BW and VL (byte masks, 128/256-bit
 * forms), DQ (vpmullq, vpmovq2m) and VBMI (vpermb); built only when the
 * target has them all. */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) &&                      \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__) && defined(__AVX512VBMI__)
#define QINT_HAVE_SIMD 1
#else
#define QINT_HAVE_SIMD 0
#endif

/* Selects the AVX-512 path when on != 0 and the build has it (QINT_HAVE_SIMD),
 * else the portable one; returns the previous setting (1 at start on such a
 * build, 0 elsewhere). Both give the same bytes (tests/test_qint.c runs
 * both). For tests and benchmarks; not thread-safe against running kernels. */
int qint_simd(int on);

/* Output channels are handled in blocks of 16 (one 512-bit vector of int32). */
#define QINT_CB 16
static inline int qint_round_up(int n, int m) {
    return (n + m - 1) / m * m;
}

/* The output stage as per-channel tables (padded to Cp channels, a multiple
 * of QINT_CB; padded channels zero). With p = acc m0[c]:
 *     r = sign(p) ((|p| + off[c]) >> sh[c]),  out = clamp(r, lo, hi) + zp
 * in 64-bit unsigned magnitude, where lo/hi are the bounds less zp; with
 * n = 31 + shift: sh = n, off = 2^(n-1) (0 for n = 0), and m0 = sh = off = 0
 * when n >= 64 (|p| / 2^n < 1/2: r = 0). The same result as qint_out_inline
 * (|p| + off <= 2^63: no overflow). */
struct qint_epi {
    const int32_t *m0;
    const int64_t *sh, *off;
    int64_t lo, hi;
    int32_t zp;
};

/* A plan (qint.h): this header, then its arrays at byte offsets from the
 * plan's start (each 64-byte aligned). */
enum { QINT_PLAN_MM = 0x514d4d31, QINT_PLAN_DW = 0x51445731 }; /* "QMM1", "QDW1" */
struct qint_plan {
    int32_t kind;
    /* MM (first conv, pointwise): out[p][o] = stage(bias2[o] + sum_i x[p][i] w[o][i])
     * over K = k*k*Cin inputs. DW: K = k*k taps, Cout = Cin = C. */
    int32_t K, Cin, Cout, Cp, k, zp_in;
    int32_t nq; /* MM: groups of 4 inputs, ceil(K/4); DW: groups of 4 taps per kernel row */
    int32_t zp;
    int64_t lo, hi;
    /* MM: wp [nq][Cp][4] int8, wp[q][o][j] = w[o][4q+j] (0 beyond K, Cout): per output
     *     4 inputs in one 32-bit lane, the operand of vpdpbusd.
     * DW: wp [Cp/16][k][nq][16][4] int8, wp[b][kh][g][c][j] = w[kh*k + 4g+j][16b+c]
     *     (0 beyond k, C); w [k*k][C] as given (the portable path).
     * bias2 [Cp] = bias - zp_in * sum of the weights of the output (the zero
     *     point folded: the input is read raw, padding holds zp_in);
     * bias [Cp] as given (DW, the portable path); m0 [Cp], sh, off [Cp]: qint_epi. */
    uint32_t o_wp, o_w, o_bias2, o_bias, o_m0, o_sh, o_off;
};

/* Pointer views of a plan's arrays. */
struct qint_view {
    const struct qint_plan *p;
    const int8_t *wp, *w;
    const int32_t *bias2, *bias;
    struct qint_epi e;
};
static inline struct qint_view qint_view_of(const void *plan) {
    const struct qint_plan *p = plan;
    const uint8_t *b = plan;
    struct qint_view v = {p,
                          (const int8_t *)(b + p->o_wp),
                          (const int8_t *)(b + p->o_w),
                          (const int32_t *)(b + p->o_bias2),
                          (const int32_t *)(b + p->o_bias),
                          {(const int32_t *)(b + p->o_m0), (const int64_t *)(b + p->o_sh),
                           (const int64_t *)(b + p->o_off), p->lo, p->hi, p->zp}};
    return v;
}

/* The residual add's constants (qint_add): T = (a - zp_a) ma + (b - zp_b) mb,
 * r = sign(T) ((|T| + off) >> sh) (0 when zero is set), out = clamp(r, lo, hi) + zp. */
struct qint_add_k {
    int64_t ma, mb, off, lo, hi;
    int32_t zp_a, zp_b, zp, sh, zero;
};

#if QINT_HAVE_SIMD
/* AVX-512 path (qint_simd.c). */
/* Rows 0..P-1 of an MM plan's product: x [P][ldx] (K bytes read per row,
 * none beyond) to out [P][ldo]. */
void qint_simd_mm(uint8_t *out, int ldo, const uint8_t *x, int ldx, int P,
                  const struct qint_view *v);
/* qint_dw_run for k <= QINT_SIMD_DW_MAX_K (larger kernels take the portable path). */
#define QINT_SIMD_DW_MAX_K 7
void qint_simd_dw(uint8_t *out, const uint8_t *in, const struct qint_view *v, int H, int W,
                  int stride, void *scratch);
/* qint_add's elements [0, n). */
void qint_simd_add(uint8_t *out, const uint8_t *a, const uint8_t *b, const struct qint_add_k *k,
                   size_t n);
#endif

#endif
