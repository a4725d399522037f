/* qint_bench.c — times the integer kernels of quant/qint.h (reference, fast
 * AVX-512 path, fast portable path) beside apq's float kernels at batch 1,
 * one thread, on the layer shapes of the fmnist-mbv2 space, and on the
 * whole layer list of its largest subnet at resolution 28. Prints Markdown
 * tables of microseconds per call (docs/integer.md holds a run). Not a
 * test, not built by `make`:
 *
 *   make build/apq-test   # the library objects
 *   cc -O3 -march=native -std=c11 -D_GNU_SOURCE -fopenmp -I. quant/bench/qint_bench.c \
 *      build/quant/qint_*.o build/nn/*.o build/util/*.o -o build/qint-bench \
 *      -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5_serial_hl -lhdf5_serial -lgsl \
 *      -lopenblas -lcsv -linih -lz -lm
 *   build/qint-bench [seconds per measurement, default 0.05]
 *
 * Each figure is the best of 7 rounds of the mean time per call over the
 * given seconds (the machine is shared; the best round is the least
 * disturbed). Float "+BN" adds the inference BN + ReLU6 pass the fp32
 * network runs after each convolution (folded into the requantization in
 * the integer network).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../nn/nn.h"
#include "../../util/util.h"
#include "../qint.h"
#include "../qint_internal.h"

enum kind { PW, DW, CONV, POOL, LIN, ADD };

/* One layer: shapes, integer and float operands, outputs, scratch. */
struct op {
    enum kind kind;
    int H, W, Cin, Cout, k, s, OH, OW;
    uint8_t *x, *x2, *y;
    int8_t *w;
    int32_t *bias, *m0, *y32;
    int8_t *shift;
    struct qint_out q;
    struct qint_add add;
    float *xf, *x2f, *wf, *yf, *scr, *g, *b, *rm, *rv;
    void *scratch, *plan, *rscratch;
};

static double seconds = 0.05;

static void op_init(struct op *o, enum kind kind, int H, int Cin, int Cout, int k, int s,
                    struct rng *r) {
    memset(o, 0, sizeof *o);
    o->kind = kind, o->H = o->W = H, o->Cin = Cin, o->Cout = Cout, o->k = k, o->s = s;
    o->OH = o->OW = (H - 1) / s + 1;
    const size_t nx = (size_t)H * H * Cin, nw = kind == DW     ? (size_t)k * k * Cin
                                                : kind == CONV ? (size_t)Cout * k * k * Cin
                                                               : (size_t)Cout * Cin;
    const size_t ny = (size_t)o->OH * o->OW * Cout;
    o->x = apq_xmalloc(nx), o->x2 = apq_xmalloc(nx), o->y = apq_xmalloc(ny + 64);
    o->y32 = apq_xmalloc(4 * (size_t)Cout);
    o->w = apq_xmalloc(nw);
    o->xf = apq_falloc(nx), o->x2f = apq_falloc(nx), o->wf = apq_falloc(nw), o->yf = apq_falloc(ny);
    for (size_t i = 0; i < nx; i++) {
        o->x[i] = (uint8_t)rng_int(r, 256), o->x2[i] = (uint8_t)rng_int(r, 256);
        o->xf[i] = o->x[i] / 40.f, o->x2f[i] = o->x2[i] / 40.f;
    }
    for (size_t i = 0; i < nw; i++) {
        o->w[i] = (int8_t)((int)rng_int(r, 255) - 127);
        o->wf[i] = o->w[i] / 100.f;
    }
    o->bias = apq_xmalloc(4 * (size_t)Cout), o->m0 = apq_xmalloc(4 * (size_t)Cout);
    o->shift = apq_xmalloc((size_t)Cout);
    o->g = apq_falloc(Cout), o->b = apq_falloc(Cout), o->rm = apq_falloc(Cout);
    o->rv = apq_falloc(Cout);
    for (int c = 0; c < Cout; c++) {
        int sh;
        o->bias[c] = (int32_t)rng_int(r, 2001) - 1000;
        qint_quantize_multiplier(1.0 / (40 * sqrt((double)nw / Cout) * 60), &o->m0[c], &sh);
        o->shift[c] = (int8_t)sh;
        o->g[c] = 1, o->b[c] = 0.1f, o->rm[c] = 0.2f, o->rv[c] = 1.5f;
    }
    o->q = (struct qint_out){o->m0, o->shift, 0, 0, 255};
    o->add = (struct qint_add){128, 128, 1 << 30, 1 << 30, 0, -1, 128, 0, 255};
    size_t sb = 0;
    if (kind == PW) sb = qint_pw_scratch_bytes(Cin, Cout);
    if (kind == DW) sb = qint_dw_scratch_bytes(H, H, Cin, k, s);
    if (kind == CONV) sb = qint_conv_scratch_bytes(H, Cin, Cout, k, s);
    o->scratch = apq_xmalloc(sb + 1);
    size_t pb = 0, rb = 0;
    if (kind == PW) pb = qint_pw_plan_bytes(Cin, Cout);
    if (kind == DW) pb = qint_dw_plan_bytes(Cin, k), rb = qint_dw_run_scratch_bytes(H, H, k, s);
    if (kind == CONV)
        pb = qint_conv_plan_bytes(Cin, Cout, k), rb = qint_conv_run_scratch_bytes(H, Cin, k, s);
    o->plan = aligned_alloc(64, (pb + 64) / 64 * 64);
    o->rscratch = apq_xmalloc(rb + 1);
    if (kind == PW) qint_pw_plan(o->plan, o->w, o->bias, 0, &o->q, Cin, Cout);
    if (kind == DW) qint_dw_plan(o->plan, o->w, o->bias, 0, &o->q, Cin, k);
    if (kind == CONV) qint_conv_plan(o->plan, o->w, o->bias, 0, &o->q, Cin, Cout, k);
    if (kind == CONV) o->scr = apq_falloc(nn_conv_scratch_floats(1, H, H, Cin, k, s));
}

static void op_free(struct op *o) {
    free(o->x), free(o->x2), free(o->y), free(o->y32), free(o->w), free(o->xf), free(o->x2f);
    free(o->wf), free(o->yf), free(o->bias), free(o->m0), free(o->shift), free(o->g), free(o->b);
    free(o->rm), free(o->rv), free(o->scratch), free(o->scr), free(o->plan), free(o->rscratch);
}

/* variant: 0 reference, 1 fast with a plan (the path qint_simd selected), 2 float,
 * 3 float + BN + ReLU6, 4 fast in one call (repacking the weights). */
static void run(struct op *o, int variant) {
    const int HW = o->H * o->W, OHW = o->OH * o->OW;
    switch (o->kind) {
    case PW:
        if (variant == 0)
            qint_pw_ref(o->y, o->x, 0, o->w, o->bias, &o->q, HW, o->Cin, o->Cout);
        else if (variant == 1)
            qint_pw_run(o->y, o->x, o->plan, HW);
        else if (variant == 4)
            qint_pw(o->y, o->x, 0, o->w, o->bias, &o->q, HW, o->Cin, o->Cout, o->scratch);
        else
            nn_linear_forward(o->yf, o->Cout, o->xf, o->Cin, o->wf, o->Cin, NULL, HW, o->Cin,
                              o->Cout);
        break;
    case DW:
        if (variant == 0)
            qint_dw_ref(o->y, o->x, 0, o->w, o->bias, &o->q, o->H, o->W, o->Cin, o->k, o->s);
        else if (variant == 1)
            qint_dw_run(o->y, o->x, o->plan, o->H, o->W, o->s, o->rscratch);
        else if (variant == 4)
            qint_dw(o->y, o->x, 0, o->w, o->bias, &o->q, o->H, o->W, o->Cin, o->k, o->s,
                    o->scratch);
        else if (variant == 2)
            nn_dw_forward(o->yf, o->xf, o->wf, o->Cin, 1, o->H, o->W, o->Cin, o->k, o->s);
        else
            nn_dw_forward_bn_eval(o->yf, o->xf, o->wf, o->Cin, 1, o->H, o->W, o->Cin, o->k, o->s,
                                  o->g, o->b, o->rm, o->rv, 1e-5f, 1);
        break;
    case CONV:
        if (variant == 0)
            qint_conv_ref(o->y, o->x, 0, o->w, o->bias, &o->q, o->H, o->W, o->Cin, o->Cout, o->k,
                          o->s);
        else if (variant == 1)
            qint_conv_run(o->y, o->x, o->plan, o->H, o->W, o->s, o->rscratch);
        else if (variant == 4)
            qint_conv(o->y, o->x, 0, o->w, o->bias, &o->q, o->H, o->W, o->Cin, o->Cout, o->k, o->s,
                      o->scratch);
        else
            nn_conv_forward(o->yf, o->xf, o->wf, o->scr, 1, o->H, o->W, o->Cin, o->Cout, o->k,
                            o->s);
        break;
    case POOL:
        if (variant == 0)
            qint_avgpool_ref(o->y, o->x, 0, o->m0[0], o->shift[0], 0, 0, 255, HW, o->Cin);
        else if (variant == 1 || variant == 4)
            qint_avgpool(o->y, o->x, 0, o->m0[0], o->shift[0], 0, 0, 255, HW, o->Cin);
        else
            nn_avgpool_forward(o->yf, o->xf, 1, HW, o->Cin);
        break;
    case LIN:
        if (variant == 0)
            qint_linear_s32_ref(o->y32, o->x, 0, o->w, o->bias, o->Cin, o->Cout);
        else if (variant == 1 || variant == 4)
            qint_linear_s32(o->y32, o->x, 0, o->w, o->bias, o->Cin, o->Cout);
        else
            nn_linear_forward(o->yf, o->Cout, o->xf, o->Cin, o->wf, o->Cin, o->b, 1, o->Cin,
                              o->Cout);
        break;
    case ADD:
        if (variant == 0)
            qint_add_ref(o->y, o->x, o->x2, &o->add, (size_t)HW * o->Cin);
        else if (variant == 1 || variant == 4)
            qint_add(o->y, o->x, o->x2, &o->add, (size_t)HW * o->Cin);
        else
            nn_add(o->yf, o->xf, o->x2f, (size_t)HW * o->Cin);
        break;
    }
    if (variant == 3 && (o->kind == PW || o->kind == CONV))
        nn_bn_forward_eval(o->yf, o->yf, o->g, o->b, o->rm, o->rv, OHW, o->Cout, 1e-5f, 1);
}

/* Seconds per call: the best of 7 rounds of the mean over `seconds`. */
static double time_op(struct op *o, int variant) {
    double best = 1e30;
    for (int round = 0; round < 7; round++) {
        long n = 0;
        const double t0 = apq_time();
        double dt;
        do {
            run(o, variant);
            n++;
        } while ((dt = apq_time() - t0) < seconds);
        if (dt / n < best) best = dt / n;
    }
    return best;
}

static const char *kind_name(const struct op *o, char *buf, size_t n) {
    switch (o->kind) {
    case PW:
        snprintf(buf, n, "pointwise %d->%d @%dx%d", o->Cin, o->Cout, o->H, o->W);
        break;
    case DW:
        snprintf(buf, n, "depthwise k%d s%d %dch @%dx%d", o->k, o->s, o->Cin, o->H, o->W);
        break;
    case CONV:
        snprintf(buf, n, "conv k%d s%d %d->%d @%dx%d", o->k, o->s, o->Cin, o->Cout, o->H, o->W);
        break;
    case POOL:
        snprintf(buf, n, "avgpool %dch @%dx%d", o->Cin, o->H, o->W);
        break;
    case LIN:
        snprintf(buf, n, "linear %d->%d (int32 logits)", o->Cin, o->Cout);
        break;
    case ADD:
        snprintf(buf, n, "residual add %dch @%dx%d", o->Cin, o->H, o->W);
        break;
    }
    return buf;
}

/* The layers of the largest subnet of fmnist-mbv2 at r = 28: depth 4 (stage 5: 1), k = 7,
 * mid = 6 x in. */
static int largest_subnet(struct op *ops, struct rng *r) {
    int n = 0, H = 28, in = 16;
    op_init(&ops[n++], CONV, 28, 1, 16, 3, 1, r);
    op_init(&ops[n++], DW, 28, 16, 16, 3, 1, r);
    op_init(&ops[n++], PW, 28, 16, 16, 1, 1, r);
    const int widths[5] = {24, 32, 64, 96, 160}, strides[5] = {2, 2, 1, 2, 1},
              depth[5] = {4, 4, 4, 4, 1};
    for (int st = 0; st < 5; st++)
        for (int b = 0; b < depth[st]; b++) {
            const int s = b ? 1 : strides[st], mid = 6 * in, OH = (H - 1) / s + 1;
            op_init(&ops[n++], PW, H, in, mid, 1, 1, r);
            op_init(&ops[n++], DW, H, mid, mid, 7, s, r);
            op_init(&ops[n++], PW, OH, mid, widths[st], 1, 1, r);
            if (s == 1 && in == widths[st]) op_init(&ops[n++], ADD, OH, in, in, 1, 1, r);
            H = OH, in = widths[st];
        }
    op_init(&ops[n++], PW, H, 160, 640, 1, 1, r);
    op_init(&ops[n++], POOL, H, 640, 640, 1, 1, r);
    op_init(&ops[n++], LIN, 1, 640, 10, 1, 1, r);
    return n;
}

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 1) < 0) apq_die_status(APQ_EUSAGE);
    if (argc > 1) seconds = atof(argv[1]);
    struct rng r;
    rng_init(&r, 1, RNG_INIT);
    struct op ops[16];
    int n = 0;
    op_init(&ops[n++], PW, 14, 72, 144, 1, 1, &r);
    op_init(&ops[n++], PW, 14, 24, 144, 1, 1, &r);
    op_init(&ops[n++], PW, 14, 144, 24, 1, 1, &r);
    op_init(&ops[n++], PW, 4, 160, 640, 1, 1, &r);
    op_init(&ops[n++], DW, 14, 144, 144, 3, 1, &r);
    op_init(&ops[n++], DW, 14, 144, 144, 5, 1, &r);
    op_init(&ops[n++], DW, 14, 144, 144, 7, 1, &r);
    op_init(&ops[n++], DW, 28, 96, 96, 7, 2, &r);
    op_init(&ops[n++], CONV, 28, 1, 16, 3, 1, &r);
    op_init(&ops[n++], POOL, 4, 640, 640, 1, 1, &r);
    op_init(&ops[n++], LIN, 1, 640, 10, 1, 1, &r);
    op_init(&ops[n++], ADD, 14, 24, 24, 1, 1, &r);
    printf("| layer | reference | fast, one call | fast, plan | fast, plan, portable | fp32 | "
           "fp32 + BN | fp32 + BN / fast plan |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < n; i++) {
        char name[96];
        qint_simd(1);
        const double tr = time_op(&ops[i], 0), t1 = time_op(&ops[i], 4), tf = time_op(&ops[i], 1);
        qint_simd(0);
        const double tp = time_op(&ops[i], 1);
        qint_simd(1);
        const double t2 = time_op(&ops[i], 2), t3 = time_op(&ops[i], 3);
        printf("| %s | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2fx |\n",
               kind_name(&ops[i], name, sizeof name), tr * 1e6, t1 * 1e6, tf * 1e6, tp * 1e6,
               t2 * 1e6, t3 * 1e6, t3 / tf);
        op_free(&ops[i]);
    }
    struct op net[80];
    const int nn_ = largest_subnet(net, &r);
    double t[4] = {0, 0, 0, 0};
    for (int i = 0; i < nn_; i++) {
        qint_simd(1);
        t[0] += time_op(&net[i], 1);
        qint_simd(0);
        t[1] += time_op(&net[i], 1);
        qint_simd(1);
        t[2] += time_op(&net[i], 2);
        t[3] += time_op(&net[i], 3);
        op_free(&net[i]);
    }
    printf("\nLargest subnet, r = 28, %d layers, sum of per-layer times (images/s):\n\n"
           "| int8 fast, plans | int8 fast, plans, portable | fp32 kernels | fp32 + BN + ReLU6 |\n"
           "|---:|---:|---:|---:|\n| %.0f | %.0f | %.0f | %.0f |\n",
           nn_, 1 / t[0], 1 / t[1], 1 / t[2], 1 / t[3]);
    rng_free(&r);
    return 0;
}
