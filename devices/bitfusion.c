/* bitfusion.c — the BitFusion accelerator cost model APQ's LUT came from
 * (reference/apq.md §8; hsharma35/bitfusion's simulator with bf_e_conf).
 *
 * An N x M systolic array of Fusion Units (16 rows = reduction dimension,
 * 32 columns = output channels), bit-brick fusion: pf = floor(pmax/max(a,pmin))
 * * floor(pmax/max(w,pmin)) MACs per unit per cycle. Per layer, an exhaustive
 * search over power-of-two tiles (b, ow = oh, ic, oc) and every order of the
 * tile loops (B, OW, OH, IC, OC) picks the schedule with the fewest cycles,
 * ties broken by the lowest dynamic energy (§8.3):
 *   - a tile must fit in half of each SRAM (double buffering);
 *   - walking the loops inner -> outer, a buffer's DRAM traffic is multiplied
 *     by the trip count of each loop it depends on while the grown tile still
 *     fits ("promotion", i.e. reuse), and by every loop once it no longer fits;
 *   - latency = compute + max(0, mem - compute) + fill + drain, with
 *     mem = ceil((DRAM bits - fill - drain) / if_width) and fill/drain the
 *     largest promoted tiles;
 *   - energy = core pJ per compute cycle + SRAM pJ per bit (the cheapest of
 *     input/output/weight-stationary access orders) + DRAM pJ per bit
 *     + leakage x latency (§8.4).
 * Tile sizes follow §8.5 (what reproduces APQ's LUT): weight tiles are not
 * padded to N*pf and output tiles not padded to M.
 *
 * Layer mapping:
 *   - pointwise and linear (a 1x1 conv at h = 1): the dense loop nest above;
 *   - a dense kxk conv (only the first conv, whose input is the image): im2col,
 *     k*k*cin on the reduction dimension, oc tiles of any power of two;
 *   - depthwise: APQ's mapping is unpublished (§8.5); this one is fitted to
 *     their LUT. The C channels run as ceil(C/G) independent groups of G
 *     channels (the last one padded), each costed as a dense k x k conv with
 *     G inputs and G outputs through the search above, G = 8*pf (8 channels
 *     at W8A8 and any 6-bit operand, 16 at W4A8/W8A4, 32 at W4A4; capped at
 *     M = 32 for 2-bit operands, which APQ's LUT does not have). Latency,
 *     energy and traffic are one group's times ceil(C/G). Checked against 18
 *     depthwise entries of APQ's LUT (k 3/5/7, stride 1/2, 7x7 and 14x14,
 *     W4A4/W4A8/W8A8): 14 agree to the cycle, the other 4 (three stride-1
 *     14x14 ones, one k5 stride 2 at W8A8) come out 3-12% slower. Energy is
 *     within 0.4% at W4A4, 3-4% below at W4A8 and 9-10% below at W8A8 on the
 *     matching ones. A fit, not a physical claim: a dense G->G conv per
 *     group wastes most of the array, and at 4 bits the G = 32 groups carry
 *     32x32 weight tiles, so a 4-bit depthwise layer can cost more energy
 *     than an 8-bit one (APQ's LUT shows such inversions too).
 *
 * Not here: device files (device.c), the lookup table (lut.c).
 */
#include <stdio.h>
#include <string.h>

#include "devices.h"

enum bf_mode { BF_DENSE, BF_IM2COL };
enum { L_B, L_OW, L_OH, L_IC, L_OC, L_N }; /* tile loops */
enum { NS_ACT, NS_WGT, NS_OUT, NS_N };     /* on-chip buffers: IBUF, WBUF, OBUF */
#define DEP(ns) (1u << (ns))
#define OPREC   32 /* partial sums and outputs in the array are 32-bit */

/* Which buffers each tile loop indexes (optimizer.py tile_deps). */
static const unsigned deps[L_N] = {DEP(NS_ACT) | DEP(NS_OUT), DEP(NS_ACT) | DEP(NS_OUT),
                                   DEP(NS_ACT) | DEP(NS_OUT), DEP(NS_ACT) | DEP(NS_WGT),
                                   DEP(NS_WGT) | DEP(NS_OUT)};
struct bf_problem {
    enum bf_mode mode;
    int64_t K, O, S, IC, OC, B;
    int64_t a, w, pf, N, M;
    int64_t half[NS_N]; /* half of each SRAM, bits */
    int64_t if_width;
    const struct device *d;
};

/* The best schedule found so far. */
struct bf_best {
    int found;
    int64_t cycles, compute, dram;
    double pj;
    int64_t tile[L_N];
};

static int64_t cdiv(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}
/* Smallest p with 2^p >= x (x >= 1). */
static int clog2(int64_t x) {
    int p = 0;
    while (((int64_t)1 << p) < x) p++;
    return p;
}

int bitfusion_pf(const struct device *d, int w_bits, int a_bits) {
    int a = a_bits > d->pmin ? a_bits : d->pmin, w = w_bits > d->pmin ? w_bits : d->pmin;
    return (d->pmax / a) * (d->pmax / w);
}

/* Next lexicographic permutation of v[0..n-1]; 0 after the last one. */
static int next_perm(int *v, int n) {
    int i = n - 2;
    while (i >= 0 && v[i] >= v[i + 1]) i--;
    if (i < 0) return 0;
    int j = n - 1;
    while (v[j] <= v[i]) j--;
    int t = v[i];
    v[i] = v[j];
    v[j] = t;
    for (int l = i + 1, r = n - 1; l < r; l++, r--) t = v[l], v[l] = v[r], v[r] = t;
    return 1;
}

// ---- one tiling --------------------------------------------------------------

/* SRAM reads and writes inside the array for one tile (energy only), from
 * the cheapest access order (optimizer.py: input-, output- or
 * weight-stationary). */
static void inner_sram(const struct bf_problem *p, const int64_t *sz, double *act_rd,
                       double *wgt_rd, double *out_rw) {
    int64_t b = sz[L_B], ow = sz[L_OW], oh = sz[L_OH], ic = sz[L_IC], oc = sz[L_OC];
    int64_t K2 = p->K * p->K, a = p->a, w = p->w, np = p->N * p->pf;
    int64_t isl = cdiv(oc, p->M) * p->M, wsl = b * oh * ow;
    int64_t osl = p->mode == BF_IM2COL ? cdiv(ic * K2, np) * np : cdiv(ic, np) * np * K2;
    int64_t is_e = osl * wsl * (a + isl * (w + OPREC));
    int64_t os_e = isl * wsl * (OPREC + osl * (a + w));
    int64_t ws_e = osl * isl * (w + wsl * (a + OPREC));
    int64_t mn = is_e < os_e ? is_e : os_e;
    mn = ws_e < mn ? ws_e : mn;
    double macs = (double)(K2 * ic) * (double)(oh * ow * b); /* per output channel */
    if (is_e == mn) {                                        /* input stationary */
        *act_rd = macs * a;
        *out_rw = macs * oc * OPREC;
        *wgt_rd = macs * oc * w;
    } else if (os_e == mn) { /* output stationary */
        *act_rd = macs * oc * a;
        *out_rw = (double)(oc * oh * ow * b) * OPREC;
        *wgt_rd = macs * oc * w;
    } else { /* weight stationary */
        *act_rd = macs * oc * a;
        *out_rw = macs * oc * OPREC;
        *wgt_rd = (double)(K2 * ic * oc) * w;
    }
}

/* Try one tiling under every order of its non-trivial loops; keep the best. */
static void try_tiling(const struct bf_problem *p, const int64_t *num, const int64_t *sz,
                       struct bf_best *best) {
    const struct device *d = p->d;
    int64_t b = sz[L_B], ow = sz[L_OW], oh = sz[L_OH], ic = sz[L_IC], oc = sz[L_OC];
    int64_t K = p->K, K2 = K * K, np = p->N * p->pf;
    int64_t tile[NS_N], per_tile;
    int64_t ih = K + (oh - 1) * p->S, iw = K + (ow - 1) * p->S;
    switch (p->mode) {
    case BF_DENSE:
        tile[NS_WGT] = K2 * ic * oc * p->w;
        tile[NS_ACT] = iw * ih * ic * b * p->a;
        tile[NS_OUT] = ow * oh * oc * b * OPREC;
        per_tile = b * cdiv(oc, p->M) * ow * oh * K2 * cdiv(ic, np);
        break;
    default: /* BF_IM2COL */
        tile[NS_WGT] = K2 * ic * oc * p->w;
        tile[NS_ACT] = ow * oh * K2 * ic * b * p->a;
        tile[NS_OUT] = ow * oh * oc * b * OPREC;
        per_tile = b * oh * ow * cdiv(oc, p->M) * cdiv(K2 * ic, np);
        break;
    }
    for (int ns = 0; ns < NS_N; ns++)
        if (tile[ns] > p->half[ns]) return;

    int64_t ntiles = 1;
    for (int l = 0; l < L_N; l++) ntiles *= num[l];
    int64_t compute = ntiles * per_tile;
    double act_rd, wgt_rd, out_rw;
    inner_sram(p, sz, &act_rd, &wgt_rd, &out_rw);
    act_rd *= ntiles, wgt_rd *= ntiles, out_rw *= ntiles;

    int order[L_N], n = 0;
    for (int l = 0; l < L_N; l++)
        if (num[l] > 1) order[n++] = l; /* a loop of one trip changes nothing */
    do {
        int64_t wr[NS_N], mx[NS_N];
        int promote[NS_N] = {1, 1, 1};
        for (int ns = 0; ns < NS_N; ns++) wr[ns] = mx[ns] = tile[ns];
        for (int i = n - 1; i >= 0; i--) { /* order[0] is the outermost loop */
            int l = order[i];
            for (int ns = 0; ns < NS_N; ns++) {
                if (!promote[ns]) {
                    wr[ns] *= num[l];
                } else if (deps[l] & DEP(ns)) {
                    wr[ns] *= num[l];
                    if (wr[ns] > p->half[ns])
                        promote[ns] = 0;
                    else
                        mx[ns] = wr[ns];
                }
            }
        }
        /* every fill is a DRAM read; output tiles are read in and written back */
        int64_t dram_rd = wr[NS_ACT] + wr[NS_WGT] + wr[NS_OUT], dram_wr = wr[NS_OUT];
        int64_t fill = mx[NS_ACT] + mx[NS_WGT] + mx[NS_OUT], drain = mx[NS_OUT];
        int64_t mem = cdiv(dram_rd + dram_wr - fill - drain, p->if_width);
        int64_t stall = (mem > compute ? mem - compute : 0) + cdiv(fill, p->if_width) +
                        cdiv(drain, p->if_width);
        int64_t cycles = compute + stall;
        double pj = (double)compute * d->core_pj_per_cycle + wgt_rd * d->wbuf_rd_pj +
                    (double)wr[NS_WGT] * d->wbuf_wr_pj + act_rd * d->ibuf_rd_pj +
                    (double)wr[NS_ACT] * d->ibuf_wr_pj + (out_rw + wr[NS_OUT]) * d->obuf_rd_pj +
                    (out_rw + wr[NS_OUT]) * d->obuf_wr_pj +
                    (double)(dram_rd + dram_wr) * d->dram_pj_per_bit;
        if (!best->found || cycles < best->cycles || (cycles == best->cycles && pj < best->pj)) {
            best->found = 1;
            best->cycles = cycles;
            best->compute = compute;
            best->dram = dram_rd + dram_wr;
            best->pj = pj;
            memcpy(best->tile, sz, sizeof best->tile);
        }
    } while (next_perm(order, n));
}

// ---- the search over tilings -------------------------------------------------

static void search(const struct bf_problem *p, struct bf_best *best) {
    int64_t num[L_N], sz[L_N];
    int pb = clog2(p->B), po = clog2(p->O), pic = clog2(p->IC);
    /* oc tiles: multiples of the M columns (im2col: any power of two) */
    int64_t step = p->mode == BF_DENSE ? p->M : 1;
    int poc = clog2(cdiv(p->OC, step));
    for (int ib = 0; ib <= pb; ib++) {
        sz[L_B] = ((int64_t)1 << ib) < p->B ? (int64_t)1 << ib : p->B;
        num[L_B] = cdiv(p->B, sz[L_B]);
        for (int io = 0; io <= po; io++) {
            sz[L_OW] = sz[L_OH] = ((int64_t)1 << io) < p->O ? (int64_t)1 << io : p->O;
            num[L_OW] = num[L_OH] = cdiv(p->O, sz[L_OW]);
            for (int ii = 0; ii <= pic; ii++) {
                sz[L_IC] = ((int64_t)1 << ii) < p->IC ? (int64_t)1 << ii : p->IC;
                num[L_IC] = cdiv(p->IC, sz[L_IC]);
                for (int ioc = 0; ioc <= poc; ioc++) {
                    int64_t oc = ((int64_t)1 << ioc) * step;
                    sz[L_OC] = oc < p->OC ? oc : p->OC;
                    num[L_OC] = cdiv(p->OC, sz[L_OC]);
                    try_tiling(p, num, sz, best);
                }
            }
        }
    }
}

static const char *kind_name(enum layer_kind k) {
    switch (k) {
    case LAYER_CONV:
        return "conv";
    case LAYER_DW:
        return "depthwise";
    case LAYER_PW:
        return "pointwise";
    case LAYER_LINEAR:
        return "linear";
    }
    return "?";
}

int bitfusion_layer_stats(const struct device *d, const struct layer_desc *l, struct bf_stats *st) {
    memset(st, 0, sizeof *st);
    if (l->w_bits < 2 || l->w_bits > 8 || l->a_bits < 2 || l->a_bits > 8)
        return apq_set_error(APQ_ECONFIG,
                             "%s: %s layer with w_bits %d, a_bits %d; the bitfusion model runs "
                             "2..8-bit layers (an fp32 arch has no cost here)",
                             d->name, kind_name(l->kind), l->w_bits, l->a_bits);
    if (l->cin < 1 || l->cout < 1 || l->h_in < 1 || l->h_out < 1 || l->k < 1 || l->stride < 1)
        return apq_set_error(APQ_ECONFIG, "%s: %s layer with a non-positive size", d->name,
                             kind_name(l->kind));
    if (bitfusion_pf(d, l->w_bits, l->a_bits) < 1)
        return apq_set_error(APQ_ECONFIG,
                             "%s: pmax = %d is below the %d-bit operands of a %s layer; hint: "
                             "raise pmax in the device file or drop those bits from the space",
                             d->name, d->pmax, l->w_bits > l->a_bits ? l->w_bits : l->a_bits,
                             kind_name(l->kind));
    struct bf_problem p = {.K = l->k,
                           .O = l->h_out,
                           .S = l->stride,
                           .IC = l->cin,
                           .OC = l->cout,
                           .B = 1,
                           .a = l->a_bits,
                           .w = l->w_bits,
                           .pf = bitfusion_pf(d, l->w_bits, l->a_bits),
                           .N = d->rows,
                           .M = d->cols,
                           .if_width = d->dram_bits_per_cycle,
                           .d = d};
    p.half[NS_WGT] = (int64_t)(d->wbuf_kb * 1024) * 8 / 2;
    p.half[NS_ACT] = (int64_t)(d->ibuf_kb * 1024) * 8 / 2;
    p.half[NS_OUT] = (int64_t)(d->obuf_kb * 1024) * 8 / 2;
    int64_t groups = 1;
    switch (l->kind) {
    case LAYER_CONV:
        p.mode = BF_IM2COL;
        break;
    case LAYER_DW: { /* ceil(C/G) dense G->G convs, G = 8*pf (file comment) */
        if (l->cin != l->cout)
            return apq_set_error(APQ_ECONFIG, "%s: depthwise layer with cin %d != cout %d", d->name,
                                 l->cin, l->cout);
        int64_t g = 8 * p.pf < p.M ? 8 * p.pf : p.M;
        groups = cdiv(l->cin, g);
        p.mode = BF_DENSE;
        p.IC = p.OC = g;
        break;
    }
    case LAYER_PW:
        p.mode = BF_DENSE, p.K = 1, p.S = 1;
        break;
    case LAYER_LINEAR:
        p.mode = BF_DENSE, p.K = 1, p.S = 1, p.O = 1;
        break;
    }
    struct bf_best best = {0};
    search(&p, &best);
    if (!best.found)
        return apq_set_error(APQ_ECONFIG,
                             "%s: no tile of a %s layer (cin %d, cout %d, h %d, k %d) fits in "
                             "half of the SRAMs; hint: check wbuf_kb/ibuf_kb/obuf_kb",
                             d->name, kind_name(l->kind), l->cin, l->cout, l->h_in, l->k);
    st->cycles = groups * best.cycles;
    st->compute_cycles = groups * best.compute;
    st->dram_bits = groups * best.dram;
    st->dynamic_pj = (double)groups * best.pj;
    st->tile_b = (int)best.tile[L_B];
    st->tile_o = (int)best.tile[L_OW];
    st->tile_ic = (int)best.tile[L_IC];
    st->tile_oc = (int)best.tile[L_OC];
    return APQ_OK;
}
