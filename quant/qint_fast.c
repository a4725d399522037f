/* qint_fast.c — the fast integer kernels of qint.h: plans, the portable C
 * path, and the dispatch to the AVX-512 VNNI path (qint_simd.c) when the
 * build targets it. Every kernel gives the bytes of its reference in
 * qint_ref.c (tests/test_qint.c).
 *
 * Method. Convolutions that reduce over channels (first conv, pointwise) are
 * one matrix product out[p][o] = stage(bias2[o] + sum_i x[p][i] w[o][i]) on
 * raw input bytes, where bias2 = bias - zp_in * sum_i w[o][i] folds the zero
 * point (a padded position holds zp_in, so the fold stays exact across
 * padding); the first conv gathers each output row's k x k patches first
 * (im2col of one row). The plan repacks the weights in groups of 4 inputs
 * per output (struct qint_plan): the operand of vpdpbusd (u8 x s8, 4
 * products summed into an int32 lane) on the AVX-512 path, and a loop over
 * a tile of output channels the compiler vectorises on the portable one.
 * The portable depthwise kernel accumulates blocks of channels in int32
 * with channels innermost ((x - zp) w fits int16 exactly). The linear layer
 * is one dot product per output (K long; the compiler vectorises it).
 * Integer sums are exact in any order, so the paths agree to the bit; the
 * bounds that keep every partial sum in int32 are in qint.h.
 *
 * Plain C11 with no apq header (an exported model.c may copy this file).
 */
#include "qint_internal.h"

#include <assert.h>
#include <string.h>

static int use_simd = QINT_HAVE_SIMD;

int qint_simd(int on) {
    const int was = use_simd;
    use_simd = on && QINT_HAVE_SIMD;
    return was;
}

// ---- plans -------------------------------------------------------------------------

#define ALIGN 64
static size_t align_up(size_t n) {
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}
static void *align_ptr(void *p) {
    return (void *)(((uintptr_t)p + ALIGN - 1) / ALIGN * ALIGN);
}

/* Sets p's offsets for its kind and sizes (K, Cin, Cout, Cp, k, nq set);
 * returns the plan's bytes. Arrays a kind does not use get size 0. */
static size_t plan_layout(struct qint_plan *p) {
    const int dw = p->kind == QINT_PLAN_DW;
    const size_t Cp = (size_t)p->Cp;
    size_t at = align_up(sizeof *p);
#define PLACE(field, bytes) (p->field = (uint32_t)at, at += align_up(bytes))
    PLACE(o_wp, dw ? Cp / 16 * p->k * p->nq * 64 : (size_t)p->nq * Cp * 4);
    PLACE(o_w, dw ? (size_t)p->K * p->Cin : 0);
    PLACE(o_bias2, Cp * 4);
    PLACE(o_bias, dw ? Cp * 4 : 0);
    PLACE(o_m0, Cp * 4);
    PLACE(o_sh, Cp * 8);
    PLACE(o_off, Cp * 8);
#undef PLACE
    return at;
}

static struct qint_plan mm_header(int Cin, int Cout, int k) {
    struct qint_plan p = {.kind = QINT_PLAN_MM, .K = k * k * Cin, .Cin = Cin, .Cout = Cout, .k = k};
    p.Cp = qint_round_up(Cout, QINT_CB);
    p.nq = (p.K + 3) / 4;
    return p;
}

static struct qint_plan dw_header(int C, int k) {
    struct qint_plan p = {.kind = QINT_PLAN_DW, .K = k * k, .Cin = C, .Cout = C, .k = k};
    p.Cp = qint_round_up(C, QINT_CB);
    p.nq = (k + 3) / 4;
    return p;
}

/* The output stage tables of plan p (base: its bytes) from q, C channels. */
static void epi_fill(struct qint_plan *p, uint8_t *base, const struct qint_out *q, int C) {
    assert(q->zp >= 0 && q->zp <= 255 && 0 <= q->lo && q->lo <= q->hi && q->hi <= 255);
    int32_t *m0 = (int32_t *)(base + p->o_m0);
    int64_t *sh = (int64_t *)(base + p->o_sh), *off = (int64_t *)(base + p->o_off);
    for (int c = 0; c < p->Cp; c++) {
        m0[c] = 0;
        sh[c] = off[c] = 0;
        if (c >= C) continue;
        assert(q->shift[c] >= QINT_SHIFT_MIN && q->shift[c] <= QINT_SHIFT_MAX);
        const int n = 31 + q->shift[c];
        if (n >= 64) continue; /* |p| / 2^n < 1/2: r = 0, as m0 = 0 gives */
        m0[c] = q->m0[c];
        sh[c] = n;
        off[c] = n ? (int64_t)1 << (n - 1) : 0;
    }
    p->zp = q->zp;
    p->lo = q->lo - q->zp;
    p->hi = q->hi - q->zp;
}

static void check_common(const int32_t *bias, int zp_in, int C) {
    assert(zp_in >= 0 && zp_in <= 255);
    for (int c = 0; c < C; c++) assert(bias[c] >= -QINT_MAX_BIAS && bias[c] <= QINT_MAX_BIAS);
}

/* An MM plan of w [Cout][K] (dense). */
static void mm_plan(void *plan, struct qint_plan hd, const int8_t *w, const int32_t *bias,
                    int zp_in, const struct qint_out *q) {
    assert((uintptr_t)plan % ALIGN == 0 && hd.K >= 1 && hd.K <= QINT_MAX_K && hd.Cout >= 1);
    check_common(bias, zp_in, hd.Cout);
    struct qint_plan *p = plan;
    uint8_t *base = plan;
    const size_t bytes = plan_layout(&hd);
    memset(base, 0, bytes);
    *p = hd;
    p->zp_in = zp_in;
    int8_t *wp = (int8_t *)(base + p->o_wp);
    int32_t *bias2 = (int32_t *)(base + p->o_bias2);
    const int K = p->K, Cp = p->Cp;
    for (int o = 0; o < p->Cout; o++) {
        const int8_t *wo = w + (size_t)o * K;
        int32_t sum = 0;
        for (int i = 0; i < K; i++) {
            sum += wo[i];
            wp[((size_t)(i / 4) * Cp + o) * 4 + i % 4] = wo[i];
        }
        bias2[o] = bias[o] - zp_in * sum; /* |.| < 2^29 + 255 * 128 * 2^14 < 2^30 */
    }
    epi_fill(p, base, q, p->Cout);
}

size_t qint_pw_plan_bytes(int Cin, int Cout) {
    struct qint_plan p = mm_header(Cin, Cout, 1);
    return plan_layout(&p);
}

void qint_pw_plan(void *plan, const int8_t *w, const int32_t *bias, int zp_in,
                  const struct qint_out *q, int Cin, int Cout) {
    mm_plan(plan, mm_header(Cin, Cout, 1), w, bias, zp_in, q);
}

size_t qint_conv_plan_bytes(int Cin, int Cout, int k) {
    struct qint_plan p = mm_header(Cin, Cout, k);
    return plan_layout(&p);
}

void qint_conv_plan(void *plan, const int8_t *w, const int32_t *bias, int zp_in,
                    const struct qint_out *q, int Cin, int Cout, int k) {
    assert(Cin >= 1 && k >= 1 && k % 2 == 1);
    mm_plan(plan, mm_header(Cin, Cout, k), w, bias, zp_in, q);
}

size_t qint_dw_plan_bytes(int C, int k) {
    struct qint_plan p = dw_header(C, k);
    return plan_layout(&p);
}

void qint_dw_plan(void *plan, const int8_t *w, const int32_t *bias, int zp_in,
                  const struct qint_out *q, int C, int k) {
    assert((uintptr_t)plan % ALIGN == 0 && C >= 1 && k >= 1 && k % 2 == 1 && k * k <= QINT_MAX_K);
    check_common(bias, zp_in, C);
    struct qint_plan hd = dw_header(C, k), *p = plan;
    uint8_t *base = plan;
    memset(base, 0, plan_layout(&hd));
    *p = hd;
    p->zp_in = zp_in;
    int8_t *wp = (int8_t *)(base + p->o_wp);
    int32_t *bias2 = (int32_t *)(base + p->o_bias2), *b = (int32_t *)(base + p->o_bias);
    memcpy(base + p->o_w, w, (size_t)k * k * C);
    memcpy(b, bias, sizeof(int32_t) * C);
    memcpy(bias2, bias, sizeof(int32_t) * C);
    const int G = p->nq;
    for (int kh = 0; kh < k; kh++)
        for (int kw = 0; kw < k; kw++)
            for (int c = 0; c < C; c++) {
                const int8_t v = w[(size_t)(kh * k + kw) * C + c];
                wp[((((size_t)(c / 16) * k + kh) * G + kw / 4) * 16 + c % 16) * 4 + kw % 4] = v;
                bias2[c] -= zp_in * v;
            }
    epi_fill(p, base, q, C);
}

// ---- the output stage, portable ----------------------------------------------------

/* Channel c's output byte from its accumulator (struct qint_epi). */
static inline uint8_t epi1(int32_t acc, const struct qint_epi *e, int c) {
    const int64_t p = (int64_t)acc * e->m0[c];
    const uint64_t a = p < 0 ? 0 - (uint64_t)p : (uint64_t)p;
    const int64_t m = (int64_t)((a + (uint64_t)e->off[c]) >> e->sh[c]);
    const int64_t r = p < 0 ? -m : m;
    return (uint8_t)((r < e->lo ? e->lo : r > e->hi ? e->hi : r) + e->zp);
}

// ---- matrix product (first conv, pointwise) ---------------------------------------------

#define MM_OB 64 /* output channels per tile of the portable product */

/* acc[j] += the 4 products of input group x (4 bytes) with wq[j][0..3], j < OB. */
static inline void mm_group(int32_t *restrict acc, const uint8_t x[4], const int8_t *restrict wq,
                            const int OB) {
    const uint8_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
    for (int j = 0; j < OB; j++)
        acc[j] += x0 * wq[4 * j] + x1 * wq[4 * j + 1] + x2 * wq[4 * j + 2] + x3 * wq[4 * j + 3];
}

/* Outputs o0 .. o0+OB-1 (those below Cout stored) of one pixel xp. */
static inline void mm_tile_portable(uint8_t *out, const uint8_t *xp, const struct qint_view *v,
                                    int o0, const int OB) {
    const struct qint_plan *p = v->p;
    const int nqf = p->K / 4;
    const size_t wstride = (size_t)p->Cp * 4;
    const int8_t *wq = v->wp + (size_t)o0 * 4;
    int32_t acc[MM_OB];
    memcpy(acc, v->bias2 + o0, sizeof(int32_t) * OB);
    for (int qd = 0; qd < nqf; qd++, wq += wstride) mm_group(acc, xp + 4 * qd, wq, OB);
    if (p->K % 4) { /* the last group: the K % 4 inputs left, zeros after */
        uint8_t x[4] = {0, 0, 0, 0};
        memcpy(x, xp + 4 * nqf, (size_t)(p->K % 4));
        mm_group(acc, x, wq, OB);
    }
    const int n = p->Cout - o0 < OB ? p->Cout - o0 : OB;
    for (int j = 0; j < n; j++) out[o0 + j] = epi1(acc[j], &v->e, o0 + j);
}

/* Rows 0..P-1 of the product: x [P][ldx] (K bytes read per row) to out [P][ldo]. */
static void mm_run(uint8_t *out, int ldo, const uint8_t *x, int ldx, int P,
                   const struct qint_view *v) {
#if QINT_HAVE_SIMD
    if (use_simd) {
        qint_simd_mm(out, ldo, x, ldx, P, v);
        return;
    }
#endif
    const struct qint_view vl = *v; /* a local: the byte stores cannot change it */
    for (int px = 0; px < P; px++) {
        uint8_t *op = out + (size_t)px * ldo;
        const uint8_t *xp = x + (size_t)px * ldx;
        int o0 = 0;
        for (; o0 + MM_OB <= vl.p->Cp; o0 += MM_OB) mm_tile_portable(op, xp, &vl, o0, MM_OB);
        for (; o0 < vl.p->Cp; o0 += QINT_CB) mm_tile_portable(op, xp, &vl, o0, QINT_CB);
    }
}

void qint_pw_run(uint8_t *out, const uint8_t *in, const void *plan, int HW) {
    const struct qint_view v = qint_view_of(plan);
    assert(v.p->kind == QINT_PLAN_MM && v.p->k == 1 && HW >= 1);
    mm_run(out, v.p->Cout, in, v.p->K, HW, &v);
}

size_t qint_pw_scratch_bytes(int Cin, int Cout) {
    return qint_pw_plan_bytes(Cin, Cout) + ALIGN;
}

void qint_pw(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
             const struct qint_out *q, int HW, int Cin, int Cout, void *scratch) {
    void *plan = align_ptr(scratch);
    qint_pw_plan(plan, w, bias, zp_in, q, Cin, Cout);
    qint_pw_run(out, in, plan, HW);
}

#define COPY_SLACK 16 /* bytes a patch copy may read or write past its end */

/* row [OW][k*k*Cin] = the patches of output row oh, padded with zp, through
 * prow: the k input rows it reads, each padded to W + 2*pad pixels (rows
 * outside the image all zp). A patch row is k*Cin contiguous bytes of a
 * padded row; when that is at most 16 bytes it moves as one fixed 8- or
 * 16-byte copy (the excess lands on bytes written next, or in the slack). */
static void im2col_row(uint8_t *restrict row, uint8_t *restrict prow, const uint8_t *restrict in,
                       int zp, int oh, int H, int W, int Cin, int k, int stride) {
    const int pad = k / 2, OW = (W - 1) / stride + 1, kc = k * Cin;
    const size_t rowb = (size_t)(W + 2 * pad) * Cin;
    for (int kh = 0; kh < k; kh++) {
        const int ih = oh * stride - pad + kh;
        uint8_t *pr = prow + kh * rowb;
        if (ih < 0 || ih >= H) {
            memset(pr, zp, rowb);
            continue;
        }
        memset(pr, zp, (size_t)pad * Cin);
        memcpy(pr + (size_t)pad * Cin, in + (size_t)ih * W * Cin, (size_t)W * Cin);
        memset(pr + (size_t)(pad + W) * Cin, zp, (size_t)pad * Cin);
    }
    for (int ow = 0; ow < OW; ow++)
        for (int kh = 0; kh < k; kh++) {
            uint8_t *dst = row + ((size_t)ow * k + kh) * kc;
            const uint8_t *src = prow + kh * rowb + (size_t)ow * stride * Cin;
            if (kc <= 8)
                memcpy(dst, src, 8);
            else if (kc <= 16)
                memcpy(dst, src, 16);
            else
                memcpy(dst, src, (size_t)kc);
        }
}

size_t qint_conv_run_scratch_bytes(int W, int Cin, int k, int stride) {
    const size_t OW = (size_t)((W - 1) / stride + 1), K = (size_t)k * k * Cin;
    return OW * K + COPY_SLACK + (size_t)k * (W + 2 * (k / 2)) * Cin + COPY_SLACK;
}

void qint_conv_run(uint8_t *out, const uint8_t *in, const void *plan, int H, int W, int stride,
                   void *scratch) {
    const struct qint_view v = qint_view_of(plan);
    const struct qint_plan *p = v.p;
    assert(p->kind == QINT_PLAN_MM && H >= 1 && W >= 1 && stride >= 1);
    const int OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1;
    uint8_t *row = scratch, *prow = row + (size_t)OW * p->K + COPY_SLACK;
    for (int oh = 0; oh < OH; oh++) {
        im2col_row(row, prow, in, p->zp_in, oh, H, W, p->Cin, p->k, stride);
        mm_run(out + (size_t)oh * OW * p->Cout, p->Cout, row, p->K, OW, &v);
    }
}

size_t qint_conv_scratch_bytes(int W, int Cin, int Cout, int k, int stride) {
    return qint_conv_plan_bytes(Cin, Cout, k) + ALIGN +
           qint_conv_run_scratch_bytes(W, Cin, k, stride);
}

void qint_conv(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
               const struct qint_out *q, int H, int W, int Cin, int Cout, int k, int stride,
               void *scratch) {
    void *plan = align_ptr(scratch);
    qint_conv_plan(plan, w, bias, zp_in, q, Cin, Cout, k);
    qint_conv_run(out, in, plan, H, W, stride,
                  (uint8_t *)plan + qint_conv_plan_bytes(Cin, Cout, k));
}

// ---- depthwise -------------------------------------------------------------------------

#define DW_CB 32 /* channels per block of the portable kernel */

/* acc[j] += (x - zp) w over the valid taps of one output pixel, for n <= DW_CB
 * channels from c0 (called with n = DW_CB, a constant the loop vectorises on,
 * and with the tail). */
static inline void dw_taps(int32_t *restrict acc, int n, const uint8_t *in, int zp, const int8_t *w,
                           int W, int C, int k, int ih0, int iw0, int kh0, int kh1, int kw0,
                           int kw1, int c0) {
    for (int kh = kh0; kh < kh1; kh++)
        for (int kw = kw0; kw < kw1; kw++) {
            const uint8_t *restrict xp = in + ((size_t)(ih0 + kh) * W + iw0 + kw) * C + c0;
            const int8_t *restrict wp = w + (size_t)(kh * k + kw) * C + c0;
            /* |(x - zp) w| <= 255 * 128 < 2^15: exact in int16 */
            for (int j = 0; j < n; j++) acc[j] += (int16_t)((xp[j] - zp) * wp[j]);
        }
}

static void dw_portable(uint8_t *out, const uint8_t *in, const struct qint_view *view, int H, int W,
                        int s) {
    const struct qint_view vl = *view, *v = &vl; /* a local: the byte stores cannot change it */
    const struct qint_plan *p = v->p;
    const int C = p->Cin, k = p->k, zp = p->zp_in, pad = k / 2;
    const int OH = (H - 1) / s + 1, OW = (W - 1) / s + 1;
    for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
            const int ih0 = oh * s - pad, iw0 = ow * s - pad;
            const int kh0 = ih0 < 0 ? -ih0 : 0, kh1 = ih0 + k > H ? H - ih0 : k;
            const int kw0 = iw0 < 0 ? -iw0 : 0, kw1 = iw0 + k > W ? W - iw0 : k;
            uint8_t *op = out + ((size_t)oh * OW + ow) * C;
            for (int c0 = 0; c0 < C; c0 += DW_CB) {
                const int n = C - c0 < DW_CB ? C - c0 : DW_CB;
                int32_t acc[DW_CB];
                memcpy(acc, v->bias + c0, sizeof(int32_t) * n);
                if (n == DW_CB)
                    dw_taps(acc, DW_CB, in, zp, v->w, W, C, k, ih0, iw0, kh0, kh1, kw0, kw1, c0);
                else
                    dw_taps(acc, n, in, zp, v->w, W, C, k, ih0, iw0, kh0, kh1, kw0, kw1, c0);
                for (int j = 0; j < n; j++) op[c0 + j] = epi1(acc[j], &v->e, c0 + j);
            }
        }
}

/* The AVX-512 kernel's padded copy of 16 channels: H+1 rows (the last all
 * zp) of (OW-1)*stride + 4*ceil(k/4) pixels of 16 bytes (qint_simd.c). */
size_t qint_dw_run_scratch_bytes(int H, int W, int k, int stride) {
    const int OW = (W - 1) / stride + 1;
    return ALIGN + (size_t)(H + 1) * ((OW - 1) * stride + 4 * ((k + 3) / 4)) * 16;
}

void qint_dw_run(uint8_t *out, const uint8_t *in, const void *plan, int H, int W, int stride,
                 void *scratch) {
    const struct qint_view v = qint_view_of(plan);
    assert(v.p->kind == QINT_PLAN_DW && H >= 1 && W >= 1 && stride >= 1);
#if QINT_HAVE_SIMD
    if (use_simd && v.p->k <= QINT_SIMD_DW_MAX_K) {
        qint_simd_dw(out, in, &v, H, W, stride, align_ptr(scratch));
        return;
    }
#endif
    (void)scratch; /* the portable kernel reads the input in place */
    dw_portable(out, in, &v, H, W, stride);
}

size_t qint_dw_scratch_bytes(int H, int W, int C, int k, int stride) {
    return qint_dw_plan_bytes(C, k) + ALIGN + qint_dw_run_scratch_bytes(H, W, k, stride);
}

void qint_dw(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
             const struct qint_out *q, int H, int W, int C, int k, int stride, void *scratch) {
    void *plan = align_ptr(scratch);
    qint_dw_plan(plan, w, bias, zp_in, q, C, k);
    qint_dw_run(out, in, plan, H, W, stride, (uint8_t *)plan + qint_dw_plan_bytes(C, k));
}

// ---- average pooling, linear, residual add -------------------------------------------------

#define POOL_CB 256 /* channels per block of column sums */

void qint_avgpool(uint8_t *out, const uint8_t *in, int zp_in, int32_t m0, int shift, int zp_out,
                  int lo, int hi, int HW, int C) {
    assert(HW >= 1 && HW <= (1 << 23) && C >= 1 && zp_in >= 0 && zp_in <= 255);
    assert(shift >= QINT_SHIFT_MIN && shift <= QINT_SHIFT_MAX);
    assert(zp_out >= 0 && zp_out <= 255 && 0 <= lo && lo <= hi && hi <= 255);
    for (int c0 = 0; c0 < C; c0 += POOL_CB) {
        const int n = C - c0 < POOL_CB ? C - c0 : POOL_CB;
        int32_t sum[POOL_CB] = {0}; /* raw sums: <= 255 * 2^23 < 2^31 */
        for (int p = 0; p < HW; p++) {
            const uint8_t *restrict xp = in + (size_t)p * C + c0;
            for (int j = 0; j < n; j++) sum[j] += xp[j];
        }
        for (int j = 0; j < n; j++)
            out[c0 + j] = qint_out_inline(sum[j] - HW * zp_in, m0, shift, zp_out, lo, hi);
    }
}

/* bias + sum (x - zp) w over K, as sum x w - zp sum w (|each| < 2^29). */
static int32_t linear_acc(const uint8_t *restrict x, int zp, const int8_t *restrict w, int32_t bias,
                          int K) {
    int32_t dot = 0, wsum = 0;
    for (int i = 0; i < K; i++) dot += x[i] * w[i];
    for (int i = 0; i < K; i++) wsum += w[i];
    return bias + dot - zp * wsum;
}

void qint_linear_s32(int32_t *out, const uint8_t *in, int zp_in, const int8_t *w,
                     const int32_t *bias, int K, int N) {
    assert(K >= 1 && K <= QINT_MAX_K && N >= 1);
    check_common(bias, zp_in, N);
    for (int n = 0; n < N; n++) out[n] = linear_acc(in, zp_in, w + (size_t)n * K, bias[n], K);
}

void qint_linear(uint8_t *out, const uint8_t *in, int zp_in, const int8_t *w, const int32_t *bias,
                 const struct qint_out *q, int K, int N) {
    assert(K >= 1 && K <= QINT_MAX_K && N >= 1);
    assert(q->zp >= 0 && q->zp <= 255 && 0 <= q->lo && q->lo <= q->hi && q->hi <= 255);
    check_common(bias, zp_in, N);
    for (int n = 0; n < N; n++) {
        assert(q->shift[n] >= QINT_SHIFT_MIN && q->shift[n] <= QINT_SHIFT_MAX);
        const int32_t acc = linear_acc(in, zp_in, w + (size_t)n * K, bias[n], K);
        out[n] = qint_out_inline(acc, q->m0[n], q->shift[n], q->zp, q->lo, q->hi);
    }
}

void qint_add(uint8_t *out, const uint8_t *a, const uint8_t *b, const struct qint_add *p,
              size_t n) {
    assert(qint_add_valid(p));
    const int na = 31 + p->shift_a, nb = 31 + p->shift_b, nmax = na > nb ? na : nb;
    /* the aligned multipliers (|m0| 2^d < 2^55) and qint_round_shift by nmax,
     * r = 0 for every T when nmax >= 64 (|T| < 2^63) */
    struct qint_add_k c = {
        .ma = (int64_t)p->m0_a * ((int64_t)1 << (nmax - na)),
        .mb = (int64_t)p->m0_b * ((int64_t)1 << (nmax - nb)),
        .off = nmax >= 64 || nmax == 0 ? 0 : (int64_t)1 << (nmax - 1),
        .lo = p->lo - p->zp,
        .hi = p->hi - p->zp,
        .zp_a = p->zp_a,
        .zp_b = p->zp_b,
        .zp = p->zp,
        .sh = nmax >= 64 ? 0 : nmax,
        .zero = nmax >= 64,
    };
    size_t i = 0;
#if QINT_HAVE_SIMD
    if (use_simd && !c.zero) {
        qint_simd_add(out, a, b, &c, n);
        return;
    }
#endif
    for (; i < n; i++) {
        const int64_t t = (a[i] - c.zp_a) * c.ma + (b[i] - c.zp_b) * c.mb;
        const uint64_t mag = t < 0 ? 0 - (uint64_t)t : (uint64_t)t;
        const int64_t m = c.zero ? 0 : (int64_t)((mag + (uint64_t)c.off) >> c.sh);
        const int64_t r = t < 0 ? -m : m;
        out[i] = (uint8_t)((r < c.lo ? c.lo : r > c.hi ? c.hi : r) + c.zp);
    }
}
