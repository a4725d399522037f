/* test_devices.c — device files, the BitFusion cost model, the lookup table.
 *
 * Golden values: APQ's shipped LUT, lut/BitFusion_new.b1.dict of
 * mit-han-lab/apq (commit 428190a): the values quoted in reference/apq.md
 * §8.5 and §9, and further entries read from the file itself (test
 * dev_bitfusion_golden_apq_lut). Latency is compared to the cycle (1 cycle =
 * 2e-6 ms at 500 MHz), energy within 1% where it reproduces (the SRAM
 * energies are CACTI rows, leakage a fit; reference/apq.md §8.4); every value
 * that does not reproduce says so next to its check.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../devices/devices.h"
#include "../util/h5.h"

static struct device load_bitfusion(void) {
    struct device d;
    int rc = device_load("devices/bitfusion.ini", &d);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    return d;
}

static struct layer_desc layer(enum layer_kind kind, int cin, int cout, int h, int k, int s, int w,
                               int a) {
    struct layer_desc l = {kind, ROLE_EXPAND, 0, cin, cout, h, s == 2 ? (h + 1) / 2 : h,
                           k,    s,           w, a,   0};
    if (kind == LAYER_LINEAR) l.h_in = l.h_out = 1;
    return l;
}

static double cost_ms(const struct device *d, struct layer_desc l, double *mj) {
    double ms = -1, e = -1;
    int rc = device_layer_cost(d, &l, &ms, &e);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    if (mj) *mj = e;
    return ms;
}

static struct space load_space(const char *path) {
    struct space s;
    int rc = space_load(path, &s);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    return s;
}

// ---- device files ------------------------------------------------------------

TEST(dev_load_bitfusion) {
    struct device d = load_bitfusion();
    CHECK(!strcmp(d.name, "bitfusion") && !strcmp(d.model, "bitfusion"));
    CHECK(d.rows == 16 && d.cols == 32 && d.pmax == 8 && d.pmin == 2);
    CHECK(d.freq_mhz == 500 && d.dram_bits_per_cycle == 192);
    CHECK(d.wbuf_kb == 64 && d.ibuf_kb == 32 && d.obuf_kb == 16);
    CHECK_NEAR(d.core_pj_per_cycle, 235.104, 1e-9);
    CHECK_NEAR(d.leak_mw, 212.5, 1e-9);
    CHECK(strstr(d.text, "[device]") != NULL);
}

/* Write `text` to <tmpdir>/name and return the path (static buffer). */
static const char *write_tmp(const char *name, const char *text) {
    static char path[700];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

/* The shipped file with one line replaced (or appended when `old` is NULL). */
static char *edited(const char *old, const char *new) {
    struct device d = load_bitfusion();
    char *t = malloc(8192);
    if (!old) {
        snprintf(t, 8192, "%s%s\n", d.text, new);
        return t;
    }
    char *at = strstr(d.text, old);
    CHECK(at != NULL);
    if (!at) {
        snprintf(t, 8192, "%s", d.text);
        return t;
    }
    snprintf(t, 8192, "%.*s%s%s", (int)(at - d.text), d.text, new, at + strlen(old));
    return t;
}

static void expect_error(const char *text, const char *file, int code, const char *what) {
    struct device d;
    const char *path = write_tmp(file, text);
    int rc = device_load(path, &d);
    CHECK(rc == code);
    const char *msg = apq_last_error();
    if (!strstr(msg, path) || !strstr(msg, what))
        fprintf(stderr, "  message '%s' lacks '%s' or '%s'\n", msg, path, what);
    CHECK(strstr(msg, path) != NULL);
    CHECK(strstr(msg, what) != NULL);
}

TEST(dev_load_errors) {
    struct device d;
    CHECK(device_load("devices/no-such-device.ini", &d) == APQ_EIO);
    CHECK(strstr(apq_last_error(), "devices/no-such-device.ini") != NULL);
    CHECK(strstr(apq_last_error(), "bitfusion.ini") != NULL); /* hint lists the devices */

    char *t = edited(NULL, "bogus = 1");
    expect_error(t, "unknown-key.ini", APQ_ECONFIG, "unknown key");
    CHECK(strstr(apq_last_error(), "bogus") != NULL);
    free(t);

    t = edited("model = bitfusion", "model = tpu9000");
    expect_error(t, "unknown-model.ini", APQ_ECONFIG, "unknown model");
    CHECK(strstr(apq_last_error(), "tpu9000") != NULL);
    free(t);

    t = edited("rows = 16", "rows = sixteen");
    expect_error(t, "bad-number.ini", APQ_ECONFIG, "rows");
    free(t);
    t = edited("freq_mhz = 500", "freq_mhz = 500MHz");
    expect_error(t, "bad-number2.ini", APQ_ECONFIG, "freq_mhz");
    free(t);
    t = edited("cols = 32", "cols = 32.5");
    expect_error(t, "non-integer.ini", APQ_ECONFIG, "cols");
    free(t);
    t = edited("leak_mw = 212.5", "leak_mw = -1");
    expect_error(t, "negative.ini", APQ_ECONFIG, "leak_mw");
    free(t);

    t = edited("obuf_kb = 16\n", "");
    expect_error(t, "missing-key.ini", APQ_ECONFIG, "missing key 'obuf_kb'");
    free(t);
    t = edited("[device]", "[dev]");
    expect_error(t, "bad-section.ini", APQ_ECONFIG, "unknown section");
    free(t);
    t = edited("pmin = 2", "pmin = 16");
    expect_error(t, "pmin.ini", APQ_ECONFIG, "pmin");
    free(t);
}

// ---- BitFusion model -------------------------------------------------------------

TEST(dev_bitfusion_pf) {
    struct device d = load_bitfusion();
    static const struct {
        int w, a, pf;
    } tab[] = {{8, 8, 1}, {8, 4, 2}, {4, 8, 2}, {4, 4, 4}, {2, 2, 16}, {6, 6, 1},
               {6, 4, 2}, {8, 6, 1}, {2, 8, 4}, {3, 3, 4}, {5, 2, 4},  {1, 1, 16}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        int pf = bitfusion_pf(&d, tab[i].w, tab[i].a);
        if (pf != tab[i].pf) fprintf(stderr, "  W%dA%d: pf %d\n", tab[i].w, tab[i].a, pf);
        CHECK(pf == tab[i].pf);
    }
}

/* reference/apq.md §8.5: pointwise (cin, cout, h) at batch 1, matched to the
 * cycle by the §8.5 tile sizes. */
TEST(dev_bitfusion_golden_pointwise) {
    struct device d = load_bitfusion();
    double mj;
    CHECK_NEAR(cost_ms(&d, layer(LAYER_PW, 16, 64, 112, 1, 1, 8, 8), &mj), 0.552022, 1e-6);
    CHECK_REL(mj, 0.9316, 0.01); /* APQ LUT 0.9316 mJ; the notes' port gives 0.9321 */
    CHECK_NEAR(cost_ms(&d, layer(LAYER_PW, 1152, 320, 7, 1, 1, 8, 8), NULL), 0.088216, 1e-6);

    /* NOT reproduced exactly: APQ's LUT has 0.010852 ms = 5426 cycles, the
     * model 5427 (0.010854 ms). The layer is DRAM-bound (1,041,696 bits =
     * 5425.5 interface cycles) and the three separate ceilings of fill, drain
     * and the remaining traffic cost one cycle more. Of 17 pointwise entries
     * of APQ's LUT checked, 11 match to the cycle and 6 come out 1-2 cycles
     * slower, all with fractional fill/drain/traffic cycles; flooring the
     * traffic term fixes 16 of them but puts the head one cycle under, and
     * no single rounding rule matched all, so the model keeps the
     * simulator's ceilings. Ours is pinned exactly, APQ's within one cycle. */
    struct layer_desc l = layer(LAYER_PW, 456, 192, 7, 1, 1, 4, 4);
    struct bf_stats st;
    CHECK(bitfusion_layer_stats(&d, &l, &st) == APQ_OK);
    CHECK(st.cycles == 5427);
    CHECK_NEAR(cost_ms(&d, l, NULL), 0.010852, 2.0e-6 + 1e-9);
}

/* reference/apq.md §9: APQ's `head` (first conv 3->32, k3 s2 at 224, im2col,
 * W8A8) and `tail` (feature mix 320->1280 at 7x7, W8A8). */
TEST(dev_bitfusion_golden_head_tail) {
    struct device d = load_bitfusion();
    double mj;
    CHECK_NEAR(cost_ms(&d, layer(LAYER_CONV, 3, 32, 224, 3, 2, 8, 8), &mj), 0.295904, 1e-6);
    CHECK_REL(mj, 0.50618, 0.01);
    CHECK_NEAR(cost_ms(&d, layer(LAYER_PW, 320, 1280, 7, 1, 1, 8, 8), &mj), 0.081608, 1e-6);
    CHECK_REL(mj, 0.15181, 0.01);
}

/* More entries of APQ's LUT (lut/BitFusion_new.b1.dict) that the model
 * reproduces to the cycle: pointwise at mixed bits, and depthwise through
 * the fitted mapping (ceil(C/G) dense G->G convs, G = 8*pf; devices/bitfusion.c). */
TEST(dev_bitfusion_golden_apq_lut) {
    struct device d = load_bitfusion();
    double mj;
    CHECK_NEAR(cost_ms(&d, layer(LAYER_PW, 456, 96, 14, 1, 1, 4, 8), NULL), 0.021816, 1e-6);
    CHECK_NEAR(cost_ms(&d, layer(LAYER_PW, 96, 488, 14, 1, 1, 4, 8), NULL), 0.067288, 1e-6);
    CHECK_NEAR(cost_ms(&d, layer(LAYER_PW, 456, 192, 7, 1, 1, 8, 8), NULL), 0.020050, 1e-6);
    CHECK_NEAR(cost_ms(&d, layer(LAYER_PW, 96, 456, 14, 1, 1, 4, 4), &mj), 0.062192, 1e-6);
    CHECK_REL(mj, 0.106882, 0.01);
    /* depthwise, W4A4 (G = 32): latency to the cycle, energy within 0.4% */
    CHECK_NEAR(cost_ms(&d, layer(LAYER_DW, 768, 768, 7, 3, 1, 4, 4), &mj), 0.058128, 1e-6);
    CHECK_REL(mj, 0.0720275, 0.01);
    CHECK_NEAR(cost_ms(&d, layer(LAYER_DW, 456, 456, 14, 3, 2, 4, 4), &mj), 0.039210, 1e-6);
    CHECK_REL(mj, 0.0498194, 0.01);
    CHECK_NEAR(cost_ms(&d, layer(LAYER_DW, 512, 512, 14, 5, 1, 4, 4), &mj), 0.188544, 1e-6);
    CHECK_REL(mj, 0.358873, 0.01);
    /* W4A8 (G = 16) and W8A8 (G = 8): latency to the cycle; energy comes out
     * 3-4% (W4A8) and 9-10% (W8A8) below APQ's, not reproduced */
    CHECK_NEAR(cost_ms(&d, layer(LAYER_DW, 384, 384, 14, 5, 2, 4, 8), &mj), 0.083376, 1e-6);
    CHECK_REL(mj, 0.117217, 0.05);
    CHECK_NEAR(cost_ms(&d, layer(LAYER_DW, 384, 384, 14, 7, 2, 8, 8), &mj), 0.266688, 1e-6);
    CHECK_REL(mj, 0.262122, 0.11);
    CHECK_NEAR(cost_ms(&d, layer(LAYER_DW, 768, 768, 7, 3, 1, 8, 8), NULL), 0.119808, 1e-6);
    /* NOT reproduced: APQ has 0.66573 ms for (520, 14x14, k5, s1, W8A8); the
     * model's best schedule is 9.3% slower (one of 4 misses out of 18 checked
     * depthwise entries, all on the slow side). Pinned so a change shows. */
    double ms = cost_ms(&d, layer(LAYER_DW, 520, 520, 14, 5, 1, 8, 8), NULL);
    CHECK(ms > 0.66573 && ms < 0.66573 * 1.12);
}

/* The depthwise mapping's compute: ceil(C/G) groups, each a dense G->G
 * k x k conv: O^2 k^2 ceil(G/(N*pf)) ceil(G/M) cycles when untiled. */
TEST(dev_bitfusion_depthwise_mapping) {
    struct device d = load_bitfusion();
    struct bf_stats st;
    struct layer_desc l = layer(LAYER_DW, 144, 144, 56, 3, 1, 8, 8); /* G = 8: 18 groups */
    CHECK(bitfusion_layer_stats(&d, &l, &st) == APQ_OK);
    CHECK(st.compute_cycles == 18LL * 56 * 56 * 9);
    CHECK(st.tile_ic == 8 && st.tile_oc == 8);
    l = layer(LAYER_DW, 144, 144, 56, 7, 1, 8, 8);
    CHECK(bitfusion_layer_stats(&d, &l, &st) == APQ_OK);
    CHECK(st.compute_cycles == 18LL * 56 * 56 * 49);
    l = layer(LAYER_DW, 100, 100, 14, 3, 2, 4, 4); /* G = 32: 4 groups, the last padded */
    CHECK(bitfusion_layer_stats(&d, &l, &st) == APQ_OK);
    CHECK(st.tile_ic == 32 && st.compute_cycles % 4 == 0);
    double a = cost_ms(&d, l, NULL);
    l.cin = l.cout = 128;
    CHECK(cost_ms(&d, l, NULL) == a);
    l.cin = l.cout = 129;
    CHECK(cost_ms(&d, l, NULL) > a);
}

TEST(dev_bitfusion_linear_is_pw_at_1) {
    struct device d = load_bitfusion();
    double e1, e2;
    double a = cost_ms(&d, layer(LAYER_LINEAR, 640, 10, 4, 1, 1, 8, 8), &e1);
    struct layer_desc pw = layer(LAYER_PW, 640, 10, 1, 1, 1, 8, 8);
    double b = cost_ms(&d, pw, &e2);
    CHECK(a > 0 && a == b && e1 == e2);
}

TEST(dev_bitfusion_rejects_fp32) {
    struct device d = load_bitfusion();
    struct layer_desc l = layer(LAYER_PW, 16, 32, 8, 1, 1, 0, 0);
    double ms, mj;
    CHECK(device_layer_cost(&d, &l, &ms, &mj) == APQ_ECONFIG);
    CHECK(strstr(apq_last_error(), "bits") != NULL);
    l.w_bits = 8, l.a_bits = 9;
    CHECK(device_layer_cost(&d, &l, &ms, &mj) == APQ_ECONFIG);
}

/* More bits are never faster, with the model's known exceptions.
 *
 * BitFusion's schedule search minimises cycles with forced reuse: a tile
 * that still fits in half an SRAM is always promoted to the next loop level
 * and must be loaded before compute starts (the serial "fill"). A smaller
 * operand can therefore let a tile be promoted further and add fill time,
 * and the fitted depthwise mapping pads channels to groups of G = 8*pf. So
 * per layer, raising one operand by 2 bits lowers the latency of about 2%
 * of the shapes, by up to ~13% (e.g. dw 64 ch at 24x24, k3, s2: W4A8 is
 * faster than W4A6). What does hold and is checked here:
 *   - every shape of the default space runs faster at W4A4 than at W8A8;
 *   - single-operand inversions stay rare (< 4% of pairs) and small (> 0.85);
 *   - whole subnets at uniform 4, 6, 8 bits are strictly ordered.
 * Energy is not monotone in bits for depthwise layers (APQ's own LUT has
 * (488 ch, 14x14, k7, s1) at 0.851 mJ for W8A8 and 0.978 mJ for W4A8); only
 * pointwise/linear/conv layers are checked for W4A4 < W8A8 energy. */
/* Found by fuzz/fuzz_device.c: pmax below an operand's bits gives 0 products
 * per Fusion Unit per cycle, and the tiling divided by it (SIGFPE). The layer
 * is refused with a message naming pmax; layers within pmax still cost. */
TEST(dev_bitfusion_pmax_below_bits) {
    struct device d = load_bitfusion();
    d.pmax = 6;
    double ms = -1, mj = -1;
    struct layer_desc l8 = layer(LAYER_PW, 16, 32, 14, 1, 1, 8, 8);
    CHECK(device_layer_cost(&d, &l8, &ms, &mj) == APQ_ECONFIG);
    CHECK(strstr(apq_last_error(), "pmax") != NULL);
    struct layer_desc l4 = layer(LAYER_DW, 16, 16, 14, 3, 1, 4, 8);
    CHECK(device_layer_cost(&d, &l4, &ms, &mj) == APQ_ECONFIG);
    l4 = layer(LAYER_PW, 16, 32, 14, 1, 1, 4, 4);
    CHECK(device_layer_cost(&d, &l4, &ms, &mj) == APQ_OK && ms > 0 && mj > 0);
}

TEST(dev_bitfusion_bits_monotone) {
    struct space s = load_space("supernet/spaces/fmnist-mbv2.ini");
    struct device d = load_bitfusion();
    struct lut t;
    CHECK(lut_build(&t, &d, &s) == APQ_OK);
    int n44 = 0, bad44 = 0, pairs = 0, inv = 0;
    double worst = 1;
    for (int i = 0; i < t.n; i++) {
        struct lut_key k = t.e[i].key;
        struct layer_desc l = layer((enum layer_kind)k.kind, k.cin, k.cout, k.h_in, k.k, k.stride,
                                    k.w_bits, k.a_bits);
        if (k.w_bits == 4 && k.a_bits == 4) {
            l.w_bits = l.a_bits = 8;
            const struct lut_entry *e8 = lut_find(&t, &l);
            if (e8) {
                n44++;
                int ok = e8->latency_ms > t.e[i].latency_ms;
                if (k.kind != LAYER_DW) ok = ok && e8->energy_mj > t.e[i].energy_mj;
                if (!ok) {
                    char buf[64];
                    fprintf(stderr, "  %s: W8A8 %.6f ms %.6f mJ vs W4A4 %.6f ms %.6f mJ\n",
                            lut_key_string(&k, buf, sizeof buf), e8->latency_ms, e8->energy_mj,
                            t.e[i].latency_ms, t.e[i].energy_mj);
                    bad44++;
                }
            }
        }
        for (int u = 0; u < 2; u++) {
            l.w_bits = k.w_bits + 2 * (u == 0);
            l.a_bits = k.a_bits + 2 * (u == 1);
            const struct lut_entry *e = lut_find(&t, &l);
            if (!e) continue;
            pairs++;
            double r = e->latency_ms / t.e[i].latency_ms;
            if (r < 1) inv++;
            if (r < worst) worst = r;
        }
    }
    fprintf(stderr, "  %d shapes W4A4 < W8A8; %d of %d one-operand steps faster (worst %.3f)\n",
            n44 - bad44, inv, pairs, worst);
    CHECK(n44 > 1000 && bad44 == 0);
    CHECK(pairs > 10000 && inv < 0.04 * pairs && worst > 0.85);

    struct rng r;
    rng_init(&r, 3, RNG_SAMPLE);
    int bad = 0;
    for (int it = 0; it < 300; it++) {
        struct arch a;
        if (it == 0)
            arch_largest(&s, 8, &a);
        else if (it == 1)
            arch_smallest(&s, 8, &a);
        else
            arch_sample(&s, &r, 1, &a);
        double ms[3], mj[3];
        for (int b = 0; b < 3; b++) {
            arch_set_bits(&s, &a, 4 + 2 * b);
            CHECK(lut_arch_cost(&t, &s, &a, &ms[b], &mj[b]) == APQ_OK);
        }
        if (!(ms[0] < ms[1] && ms[1] < ms[2])) bad++;
    }
    CHECK(bad == 0);
    rng_free(&r);
    lut_free(&t);
}

/* Bigger layers cost more: doubling cin, cout (>= the 32 array columns) or
 * the resolution, or growing the kernel, raises latency and energy; doubling
 * a depthwise layer's channels never lowers them (channels come in groups).
 * Below 32 output channels an 8-wide pointwise layer can be slower than a
 * 16-wide one (forced reuse, see above), so cout starts at 32. */
TEST(dev_bitfusion_size_monotone) {
    struct device d = load_bitfusion();
    static const int bits[] = {4, 6, 8}, c1s[] = {8, 40, 96, 200}, c2s[] = {32, 64, 160, 320},
                     hs[] = {2, 5, 7, 14, 28};
    int n = 0, bad = 0;
    for (int wi = 0; wi < 3; wi++)
        for (int ai = 0; ai < 3; ai++)
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    for (int hi = 0; hi < 5; hi++) {
                        int w = bits[wi], a = bits[ai], c1 = c1s[i], c2 = c2s[j], h = hs[hi];
                        double m0, e0, m1, e1;
                        m0 = cost_ms(&d, layer(LAYER_PW, c1, c2, h, 1, 1, w, a), &e0);
                        struct layer_desc big[3] = {layer(LAYER_PW, 2 * c1, c2, h, 1, 1, w, a),
                                                    layer(LAYER_PW, c1, 2 * c2, h, 1, 1, w, a),
                                                    layer(LAYER_PW, c1, c2, 2 * h, 1, 1, w, a)};
                        for (int v = 0; v < 3; v++, n++) {
                            m1 = cost_ms(&d, big[v], &e1);
                            if (!(m1 > m0 && e1 > e0)) {
                                fprintf(stderr, "  pw %d->%d h%d W%dA%d, bigger #%d: %g -> %g ms\n",
                                        c1, c2, h, w, a, v, m0, m1);
                                bad++;
                            }
                        }
                        if (j) continue; /* depthwise: c1 channels */
                        for (int k = 3; k <= 7; k += 2)
                            for (int st = 1; st <= 2; st++) {
                                m0 = cost_ms(&d, layer(LAYER_DW, c1, c1, h, k, st, w, a), &e0);
                                m1 = cost_ms(&d, layer(LAYER_DW, 2 * c1, 2 * c1, h, k, st, w, a),
                                             &e1);
                                n++;
                                if (m1 < m0 || e1 < e0) bad++;
                                m1 = cost_ms(&d, layer(LAYER_DW, c1, c1, 2 * h, k, st, w, a), &e1);
                                n++;
                                if (!(m1 > m0 && e1 > e0)) bad++;
                                if (k < 7) {
                                    m1 = cost_ms(&d, layer(LAYER_DW, c1, c1, h, k + 2, st, w, a),
                                                 &e1);
                                    n++;
                                    if (!(m1 > m0 && e1 > e0)) bad++;
                                }
                            }
                    }
    fprintf(stderr, "  %d pairs, %d violations\n", n, bad);
    CHECK(bad == 0);
}

// ---- lookup table ----------------------------------------------------------------

static void build_tiny(struct lut *t, struct space *s, struct device *d) {
    *s = load_space("supernet/spaces/tiny.ini");
    *d = load_bitfusion();
    int rc = lut_build(t, d, s);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
}

/* Field by field: struct lut_key has a padding byte, so no memcmp. */
static int key_equal(const struct lut_key *a, const struct lut_key *b) {
    return a->kind == b->kind && a->k == b->k && a->stride == b->stride && a->w_bits == b->w_bits &&
           a->a_bits == b->a_bits && a->cin == b->cin && a->cout == b->cout && a->h_in == b->h_in;
}
static int tables_equal(const struct lut *a, const struct lut *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (!key_equal(&a->e[i].key, &b->e[i].key) || a->e[i].latency_ms != b->e[i].latency_ms ||
            a->e[i].energy_mj != b->e[i].energy_mj)
            return 0;
    return 1;
}

TEST(lut_key_string) {
    struct layer_desc l = layer(LAYER_PW, 16, 64, 28, 1, 1, 8, 6);
    struct lut_key k = lut_key_of(&l);
    char buf[64];
    CHECK(!strcmp(lut_key_string(&k, buf, sizeof buf), "pw_cin16_cout64_h28_k1_s1_w8a6"));
    l = layer(LAYER_DW, 96, 96, 14, 7, 2, 4, 4);
    k = lut_key_of(&l);
    CHECK(!strcmp(lut_key_string(&k, buf, sizeof buf), "dw_cin96_cout96_h14_k7_s2_w4a4"));
}

TEST(lut_build_tiny) {
    struct space s;
    struct device d;
    struct lut t;
    build_tiny(&t, &s, &d);
    fprintf(stderr, "  tiny: %d entries\n", t.n);
    CHECK(t.n > 100);
    CHECK(t.space_hash == s.hash && !strcmp(t.device, "bitfusion"));
    int sorted = 1, positive = 1;
    for (int i = 0; i < t.n; i++) {
        if (i && key_equal(&t.e[i - 1].key, &t.e[i].key)) sorted = 0;
        if (!(t.e[i].latency_ms > 0 && t.e[i].energy_mj > 0)) positive = 0;
        CHECK(lut_find(&t, &(struct layer_desc){.kind = t.e[i].key.kind,
                                                .cin = t.e[i].key.cin,
                                                .cout = t.e[i].key.cout,
                                                .h_in = t.e[i].key.h_in,
                                                .k = t.e[i].key.k,
                                                .stride = t.e[i].key.stride,
                                                .w_bits = t.e[i].key.w_bits,
                                                .a_bits = t.e[i].key.a_bits}) == &t.e[i]);
    }
    CHECK(sorted && positive);
    /* entries equal the model's direct cost */
    for (int i = 0; i < t.n; i += 37) {
        struct lut_key *k = &t.e[i].key;
        struct layer_desc l = layer((enum layer_kind)k->kind, k->cin, k->cout, k->h_in, k->k,
                                    k->stride, k->w_bits, k->a_bits);
        double mj, ms = cost_ms(&d, l, &mj);
        CHECK(t.e[i].latency_ms == (float)ms && t.e[i].energy_mj == (float)mj);
    }
    struct layer_desc absent = layer(LAYER_PW, 17, 64, 28, 1, 1, 8, 8);
    CHECK(lut_find(&t, &absent) == NULL);
    lut_free(&t);
    CHECK(t.n == 0 && t.e == NULL);
    lut_free(&t); /* twice is fine */
}

TEST(lut_build_thread_independent) {
    struct space s = load_space("supernet/spaces/tiny.ini");
    struct device d = load_bitfusion();
    struct lut a, b;
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK(lut_build(&a, &d, &s) == APQ_OK);
    omp_set_num_threads(3);
    CHECK(lut_build(&b, &d, &s) == APQ_OK);
    omp_set_num_threads(threads);
    CHECK(tables_equal(&a, &b));
    lut_free(&a);
    lut_free(&b);
}

/* Every layer of random quantized subnets is in the table, and the table's
 * sum equals the model's direct sum (to float rounding of the entries). */
TEST(lut_arch_cost_matches_direct) {
    struct space s;
    struct device d;
    struct lut t;
    build_tiny(&t, &s, &d);
    struct rng r;
    rng_init(&r, 7, RNG_SAMPLE);
    int bad = 0;
    for (int it = 0; it < 60; it++) {
        struct arch a;
        if (it == 0)
            arch_largest(&s, 8, &a);
        else if (it == 1)
            arch_smallest(&s, 4, &a);
        else
            arch_sample(&s, &r, 1, &a);
        double ms, mj, ms2 = 0, mj2 = 0;
        int rc = lut_arch_cost(&t, &s, &a, &ms, &mj);
        if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
        CHECK(rc == APQ_OK);
        struct layer_desc L[ARCH_MAX_LAYERS];
        int n = arch_layers(&s, &a, L);
        for (int i = 0; i < n; i++) {
            double x, y;
            CHECK(device_layer_cost(&d, &L[i], &x, &y) == APQ_OK);
            ms2 += x, mj2 += y;
        }
        if (fabs(ms - ms2) > 1e-6 * ms2 || fabs(mj - mj2) > 1e-6 * mj2) {
            fprintf(stderr, "  arch %d: lut %.9g ms %.9g mJ, direct %.9g ms %.9g mJ\n", it, ms, mj,
                    ms2, mj2);
            bad++;
        }
    }
    CHECK(bad == 0);
    /* the largest 8-bit subnet costs more than the smallest 4-bit one */
    struct arch big, small;
    double bm, be, sm, se;
    arch_largest(&s, 8, &big);
    arch_smallest(&s, 4, &small);
    CHECK(lut_arch_cost(&t, &s, &big, &bm, &be) == APQ_OK);
    CHECK(lut_arch_cost(&t, &s, &small, &sm, &se) == APQ_OK);
    CHECK(bm > sm && be > se);
    /* an fp32 arch has no device cost */
    arch_largest(&s, 0, &big);
    CHECK(lut_arch_cost(&t, &s, &big, &bm, &be) == APQ_ECONFIG);
    rng_free(&r);
    lut_free(&t);
}

TEST(lut_missing_entry) {
    struct space s;
    struct device d;
    struct lut t;
    build_tiny(&t, &s, &d);
    struct arch a;
    arch_largest(&s, 8, &a);
    struct layer_desc L[ARCH_MAX_LAYERS];
    arch_layers(&s, &a, L);
    const struct lut_entry *e = lut_find(&t, &L[4]); /* block 0's depthwise */
    CHECK(e != NULL);
    if (e) { /* drop it */
        int i = (int)(e - t.e);
        memmove(&t.e[i], &t.e[i + 1], (size_t)(t.n - i - 1) * sizeof *t.e);
        t.n--;
    }
    double ms, mj;
    CHECK(lut_arch_cost(&t, &s, &a, &ms, &mj) == APQ_EFORMAT);
    char key[64];
    struct lut_key k = lut_key_of(&L[4]);
    CHECK(strstr(apq_last_error(), lut_key_string(&k, key, sizeof key)) != NULL);
    CHECK(strstr(apq_last_error(), "depthwise") != NULL);
    lut_free(&t);
}

TEST(lut_save_load_roundtrip) {
    struct space s;
    struct device d;
    struct lut t, u;
    build_tiny(&t, &s, &d);
    char path[700];
    snprintf(path, sizeof path, "%s/lut.h5", test_tmpdir);
    int rc = lut_save(&t, path, 42, "tiny");
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    rc = lut_load(&u, path, &s);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    CHECK(u.n == t.n && u.space_hash == t.space_hash);
    CHECK(tables_equal(&u, &t));
    CHECK(!strcmp(u.device, "bitfusion") && !strcmp(u.device_model, "bitfusion"));
    CHECK(!strcmp(u.device_text, d.text));
    struct arch a;
    arch_largest(&s, 6, &a);
    double m1, e1, m2, e2;
    CHECK(lut_arch_cost(&t, &s, &a, &m1, &e1) == APQ_OK);
    CHECK(lut_arch_cost(&u, &s, &a, &m2, &e2) == APQ_OK);
    CHECK(m1 == m2 && e1 == e2);
    /* the readable key column and provenance are there */
    hid_t f;
    CHECK(h5_open_read(path, "lut", 1, &f) == APQ_OK);
    char **keys = NULL;
    size_t n = 0;
    CHECK(h5_read_strings(f, "key", &keys, &n) == APQ_OK);
    char buf[64];
    CHECK(n == (size_t)t.n && n > 0 && !strcmp(keys[0], lut_key_string(&t.e[0].key, buf, 64)));
    h5_free_strings(keys, n);
    char prof[32];
    CHECK(h5_attr_get_str(f, "profile", prof, sizeof prof) == APQ_OK && !strcmp(prof, "tiny"));
    h5_close(f);
    lut_free(&t);
    lut_free(&u);
}

TEST(lut_wrong_space) {
    struct space s;
    struct device d;
    struct lut t, u;
    build_tiny(&t, &s, &d);
    char path[700];
    snprintf(path, sizeof path, "%s/lut.h5", test_tmpdir);
    CHECK(lut_save(&t, path, 1, "tiny") == APQ_OK);
    struct space other = load_space("supernet/spaces/fmnist-mbv2.ini");
    CHECK(lut_load(&u, path, &other) == APQ_EMISMATCH);
    CHECK(strstr(apq_last_error(), "another search space") != NULL);
    CHECK(strstr(apq_last_error(), path) != NULL);
    CHECK(u.n == 0 && u.e == NULL);
    struct arch a;
    arch_largest(&other, 8, &a);
    double ms, mj;
    CHECK(lut_arch_cost(&t, &other, &a, &ms, &mj) == APQ_EMISMATCH);
    /* a file of another kind, and a missing file */
    CHECK(lut_load(&u, "devices/bitfusion.ini", &s) == APQ_EFORMAT);
    snprintf(path, sizeof path, "%s/none.h5", test_tmpdir);
    CHECK(lut_load(&u, path, &s) == APQ_EIO);
    lut_free(&t);
}
