/* test_search.c — evolution under budgets on the tiny space, the Pareto front, budget sweeps. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../devices/devices.h"
#include "../predictor/predictor.h"
#include "../search/search.h"
#include "../util/h5.h"

static struct space search_space(void) {
    struct space s;
    int rc = space_load("supernet/spaces/tiny.ini", &s);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    return s;
}

/* Stand-in costs: latency ~ MACs x w_bits x a_bits (BitFusion-like), energy ~ weight bytes. */
static int synth_cost(void *ctx, const struct arch *a, double *ms, double *mj) {
    const struct space *s = ctx;
    struct layer_desc L[ARCH_MAX_LAYERS];
    int n = arch_layers(s, a, L);
    double c = 0;
    for (int i = 0; i < n; i++) c += layer_macs(&L[i]) * L[i].w_bits * L[i].a_bits / 64.0;
    *ms = c / 1e5;
    *mj = arch_weight_bytes(s, a) / 1024.0;
    return APQ_OK;
}

/* Stand-in fitness: grows with log MACs and with the bit-widths. */
static double synth_acc(const struct space *s, const struct arch *a) {
    double b = 0;
    int k = 0;
    for (int i = 0; i < s->n_blocks; i++)
        if (arch_block_active(s, a, i))
            b += a->pw_w[i] + a->pw_a[i] + a->dw_w[i] + a->dw_a[i], k += 4;
    return 0.1 * log(arch_macs(s, a)) + 0.02 * b / k;
}

static void synth_fitness(void *ctx, const struct arch *a, int n, float *acc) {
    for (int i = 0; i < n; i++) acc[i] = (float)synth_acc(ctx, &a[i]);
}

static struct evo_cfg small_cfg(double latency_ms) {
    struct evo_cfg c = evo_cfg_default();
    c.population = 20;
    c.parents = 5;
    c.mutants = 10;
    c.crossovers = 10;
    c.generations = 30;
    c.latency_ms = latency_ms;
    return c;
}

TEST(search_cost_range_and_budgets) {
    struct space s = search_space();
    double lo_ms, lo_mj, hi_ms, hi_mj;
    CHECK(evo_cost_range(&s, synth_cost, &s, &lo_ms, &lo_mj, &hi_ms, &hi_mj) == APQ_OK);
    CHECK(lo_ms > 0 && hi_ms > 4 * lo_ms && hi_mj > lo_mj);
    double b[4];
    evo_budgets(1, 8, 0, 4, b);
    CHECK_NEAR(b[0], 1, 1e-12);
    CHECK_NEAR(b[1], 2, 1e-12);
    CHECK_NEAR(b[2], 4, 1e-12);
    CHECK_NEAR(b[3], 8, 1e-12);
    evo_budgets(lo_ms, hi_ms, 0.05, 4, b);
    CHECK_NEAR(b[0], 1.05 * lo_ms, 1e-9);
    CHECK(b[1] > b[0] && b[2] > b[1] && b[3] == hi_ms);
    evo_budgets(1, 8, 0.05, 1, b);
    CHECK(b[0] == 8);
}

TEST(search_respects_budget) {
    struct space s = search_space();
    double lo_ms, lo_mj, hi_ms, hi_mj, b[5];
    evo_cost_range(&s, synth_cost, &s, &lo_ms, &lo_mj, &hi_ms, &hi_mj);
    evo_budgets(lo_ms, hi_ms, 0.02, 5, b);
    double prev = -1;
    for (int k = 0; k < 5; k++) {
        struct evo_cfg c = small_cfg(b[k]);
        struct evo_result r;
        int rc = evo_run(&s, &c, synth_cost, &s, synth_fitness, &s, 7, NULL, 0, &r);
        if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
        CHECK(rc == APQ_OK);
        double ms, mj;
        synth_cost(&s, &r.best, &ms, &mj);
        CHECK(arch_check(&s, &r.best) == APQ_OK && arch_is_quantized(&r.best));
        CHECK(ms <= b[k] && r.latency_ms == ms && r.energy_mj == mj);
        CHECK_NEAR(r.acc, synth_acc(&s, &r.best), 1e-6);
        CHECK(r.acc >= prev - 1e-3); /* a looser budget is not worse (up to search noise) */
        prev = r.acc;
    }
    /* an energy budget alone, and both at once */
    struct evo_cfg c = small_cfg(0);
    c.energy_mj = 0.5 * (lo_mj + hi_mj);
    struct evo_result r;
    CHECK(evo_run(&s, &c, synth_cost, &s, synth_fitness, &s, 7, NULL, 0, &r) == APQ_OK);
    CHECK(r.energy_mj <= c.energy_mj);
    c.latency_ms = b[1];
    CHECK(evo_run(&s, &c, synth_cost, &s, synth_fitness, &s, 7, NULL, 0, &r) == APQ_OK);
    CHECK(r.energy_mj <= c.energy_mj && r.latency_ms <= c.latency_ms);
}

TEST(search_deterministic) {
    struct space s = search_space();
    double lo_ms, lo_mj, hi_ms, hi_mj;
    evo_cost_range(&s, synth_cost, &s, &lo_ms, &lo_mj, &hi_ms, &hi_mj);
    struct evo_cfg c = small_cfg(sqrt(lo_ms * hi_ms));
    struct evo_result a, b;
    CHECK(evo_run(&s, &c, synth_cost, &s, synth_fitness, &s, 3, NULL, 0, &a) == APQ_OK);
    CHECK(evo_run(&s, &c, synth_cost, &s, synth_fitness, &s, 3, NULL, 0, &b) == APQ_OK);
    CHECK(arch_equal(&a.best, &b.best) && a.acc == b.acc && a.n_evaluated == b.n_evaluated);
    CHECK(a.n_evaluated == 20 + 30 * 20);
}

/* Evolution beats the best of as many uniformly drawn feasible candidates. */
TEST(search_better_than_random) {
    struct space s = search_space();
    double lo_ms, lo_mj, hi_ms, hi_mj;
    evo_cost_range(&s, synth_cost, &s, &lo_ms, &lo_mj, &hi_ms, &hi_mj);
    double budget = pow(lo_ms, 0.7) * pow(hi_ms, 0.3);
    struct evo_cfg c = small_cfg(budget);
    struct evo_result r;
    CHECK(evo_run(&s, &c, synth_cost, &s, synth_fitness, &s, 11, NULL, 0, &r) == APQ_OK);
    struct rng g;
    rng_init(&g, 11, RNG_SAMPLE);
    double best = -1e9, mean = 0;
    int n = 0;
    while (n < r.n_evaluated) {
        struct arch a;
        double ms, mj;
        arch_sample(&s, &g, 1, &a);
        synth_cost(&s, &a, &ms, &mj);
        if (ms > budget) continue;
        double acc = synth_acc(&s, &a);
        best = fmax(best, acc);
        mean += acc;
        n++;
    }
    rng_free(&g);
    mean /= n;
    fprintf(stderr, "  evolution %.4f, random best %.4f, random mean %.4f (%d each)\n", r.acc, best,
            mean, n);
    CHECK(r.acc >= best);
    CHECK(r.acc > mean + 0.01);
}

TEST(search_infeasible_budget) {
    struct space s = search_space();
    double lo_ms, lo_mj, hi_ms, hi_mj;
    evo_cost_range(&s, synth_cost, &s, &lo_ms, &lo_mj, &hi_ms, &hi_mj);
    struct evo_cfg c = small_cfg(0.5 * lo_ms);
    struct evo_result r;
    CHECK(evo_run(&s, &c, synth_cost, &s, synth_fitness, &s, 1, NULL, 0, &r) == APQ_EINFEASIBLE);
    CHECK(strstr(apq_last_error(), "latency budget") &&
          strstr(apq_last_error(), "below the smallest subnet's"));
    c = small_cfg(0);
    c.energy_mj = 0.9 * lo_mj;
    CHECK(evo_run(&s, &c, synth_cost, &s, synth_fitness, &s, 1, NULL, 0, &r) == APQ_EINFEASIBLE);
    CHECK(strstr(apq_last_error(), "energy budget") != NULL);
    /* just above the smallest: feasible, though uniform draws almost never are */
    c = small_cfg(1.001 * lo_ms);
    c.generations = 5;
    CHECK(evo_run(&s, &c, synth_cost, &s, synth_fitness, &s, 1, NULL, 0, &r) == APQ_OK);
    CHECK(r.latency_ms <= c.latency_ms);
}

TEST(search_pareto_front) {
    /*           0    1    2    3    4    5    6    7 */
    double lat[] = {5, 1, 3, 3, 2, 6, 1, 4};
    double acc[] = {.9, .5, .7, .8, .5, .85, .4, .8};
    int idx[8];
    int n = pareto_front(lat, acc, 8, idx);
    /* 1 (1,.5) beats 6 and 4; 3 (3,.8) beats 2 and 7 (no faster); 0 (5,.9); 5 dominated by 0 */
    CHECK(n == 3);
    CHECK(idx[0] == 1 && idx[1] == 3 && idx[2] == 0);
    double dl[] = {2, 2, 1}, da[] = {.7, .7, .6};
    n = pareto_front(dl, da, 3, idx);
    CHECK(n == 2 && idx[0] == 2 && idx[1] == 0); /* of exact duplicates the first stays */
    CHECK(pareto_front(dl, da, 0, idx) == 0);
}

// ---- with the device LUT -------------------------------------------------------------

struct lut_ctx {
    const struct lut *t;
    const struct space *s;
};
static int lut_cost(void *ctx, const struct arch *a, double *ms, double *mj) {
    const struct lut_ctx *c = ctx;
    return lut_arch_cost(c->t, c->s, a, ms, mj);
}

/* The search under a real BitFusion LUT of the tiny space: every result within budget. */
TEST(search_with_lut) {
    struct space s = search_space();
    struct device d;
    struct lut t;
    int rc = device_load("devices/bitfusion.ini", &d);
    if (rc == APQ_OK) rc = lut_build(&t, &d, &s);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    if (rc < 0) return;
    struct lut_ctx c = {&t, &s};
    double lo_ms, lo_mj, hi_ms, hi_mj, b[3];
    CHECK(evo_cost_range(&s, lut_cost, &c, &lo_ms, &lo_mj, &hi_ms, &hi_mj) == APQ_OK);
    CHECK(lo_ms > 0 && hi_ms > lo_ms && hi_mj > lo_mj);
    evo_budgets(lo_ms, hi_ms, 0.05, 3, b);
    for (int k = 0; k < 3; k++) {
        struct evo_cfg cfg = small_cfg(b[k]);
        cfg.energy_mj = hi_mj;
        struct evo_result r;
        CHECK(evo_run(&s, &cfg, lut_cost, &c, synth_fitness, &s, 5, NULL, 0, &r) == APQ_OK);
        double ms, mj;
        CHECK(lut_arch_cost(&t, &s, &r.best, &ms, &mj) == APQ_OK);
        CHECK(ms <= b[k] && mj <= hi_mj && ms == r.latency_ms);
    }
    struct evo_cfg cfg = small_cfg(0.99 * lo_ms);
    struct evo_result r;
    CHECK(evo_run(&s, &cfg, lut_cost, &c, synth_fitness, &s, 5, NULL, 0, &r) == APQ_EINFEASIBLE);
    lut_free(&t);
}

// ---- apq-search and its predictor ---------------------------------------------------

static int run_search(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int run_search(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int st = test_vsh(1, out, n, fmt, ap);
    va_end(ap);
    return st;
}

/* A small ensemble for space s, saved to tmpdir/name: quantized or fp32, k members. */
static void save_ensemble(const struct space *s, int quant, int k, const char *name, char *path,
                          size_t size) {
    struct pred_ensemble e;
    CHECK(pred_ensemble_init(&e, k, encode_fp32_dim(s), quant ? encode_bits_dim(s) : 0, 16, 2, 3) ==
          APQ_OK);
    pred_ensemble_set_base(&e, 0.5);
    e.prov = (struct pred_provenance){"tiny", "samples.h5", 1, 40, 8, 10};
    snprintf(path, size, "%s/%s", test_tmpdir, name);
    CHECK(pred_ensemble_save(&e, s, path, 1) == APQ_OK);
    pred_ensemble_free(&e);
}

/* apq-search ranks by the ensemble mean and writes each row's spread, acc_pred_std. */
TEST(search_stage_writes_spread) {
    struct space s = search_space();
    struct device d;
    struct lut t;
    char lut[600], pred[600], out[600], log[4096];
    snprintf(lut, sizeof lut, "%s/lut.h5", test_tmpdir);
    CHECK(device_load("devices/bitfusion.ini", &d) == APQ_OK && lut_build(&t, &d, &s) == APQ_OK);
    CHECK(lut_save(&t, lut, 1, "tiny") == APQ_OK);
    lut_free(&t);
    save_ensemble(&s, 1, 3, "q3.h5", pred, sizeof pred);
    snprintf(out, sizeof out, "%s/search.h5", test_tmpdir);
    int st =
        run_search(log, sizeof log,
                   "%s/apq-search --space supernet/spaces/tiny.ini --profile profiles/tiny.ini "
                   "--predictor %s --lut %s --out %s",
                   test_build_dir(), pred, lut, out);
    if (st) fprintf(stderr, "%s", log);
    CHECK(st == 0);
    hid_t f;
    if (st || h5_open_read(out, "search", 1, &f) != APQ_OK) return;
    char **arch = NULL;
    size_t n = 0, n_sd = 0, n_acc = 0;
    double *sd = NULL, *acc = NULL;
    CHECK(h5_read_strings(f, "arch", &arch, &n) == APQ_OK && n >= 1);
    CHECK(h5_read_f64_alloc(f, "acc_pred_std", &sd, &n_sd) == APQ_OK && n_sd == n);
    CHECK(h5_read_f64_alloc(f, "acc_pred", &acc, &n_acc) == APQ_OK && n_acc == n);
    h5_close(f);
    struct pred_ensemble e;
    CHECK(pred_ensemble_load(&e, pred, &s) == APQ_OK);
    for (size_t i = 0; i < n && i < n_sd && i < n_acc; i++) {
        struct arch a;
        float m, v;
        CHECK(arch_from_string(&s, arch[i], &a) == APQ_OK);
        pred_ensemble_predict(&e, &s, &a, 1, &m, &v);
        CHECK(sd[i] > 0);
        CHECK_NEAR(sd[i], v, 1e-7);
        CHECK_NEAR(acc[i], m, 1e-5); /* the mean (batched in the search) */
    }
    pred_ensemble_free(&e);
    h5_free_strings(arch, n);
    free(sd);
    free(acc);
}

/* PREDICTOR= refusals: another space, another encoding, an fp32 predictor, an old
 * single-MLP file: one line naming the file, the reason and the fix; exit 1. */
TEST(search_refuses_wrong_predictor) {
    struct space s = search_space(), big;
    CHECK(space_load("supernet/spaces/fmnist-mbv2.ini", &big) == APQ_OK);
    char path[600], log[4096];
    const char *cmd = "%s/apq-search --space supernet/spaces/tiny.ini --profile profiles/tiny.ini "
                      "--predictor %s --lut %s/none.h5 --out %s/never.h5";
    const char *b = test_build_dir();
    struct {
        int quant;
        const struct space *sp;
        const char *name, *attr, *want[3];
    } cases[] = {
        {1,
         &big,
         "other-space.h5",
         NULL,
         {"trained for space 'fmnist-mbv2'", "not for 'tiny'", "PREDICTOR="}},
        {1,
         &s,
         "other-encoding.h5",
         "encoding_version",
         {"encoding version 99", "this build uses 1", "run make"}},
        {0, &s, "fp32.h5", NULL, {"is an fp32 predictor", "quantization-aware", "PREDICTOR="}},
        {1, &s, "v1.h5", "format_version", {"format_version is 99, expected 2", "run make", ""}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        save_ensemble(cases[i].sp, cases[i].quant, 2, cases[i].name, path, sizeof path);
        if (cases[i].attr) {
            hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
            CHECK(f >= 0 && H5Adelete(f, cases[i].attr) >= 0);
            CHECK(h5_attr_set_i64(f, cases[i].attr, 99) == APQ_OK);
            H5Fclose(f);
        }
        int st = run_search(log, sizeof log, cmd, b, path, test_tmpdir, test_tmpdir);
        int ok = st == 1 && test_n_lines(log) == 1 && strstr(log, path) &&
                 strstr(log, "apq-search: error: ");
        for (int k = 0; k < 3; k++) ok = ok && strstr(log, cases[i].want[k]);
        if (!ok) fprintf(stderr, "  %s: exit %d: %s", cases[i].name, st, log);
        CHECK(ok);
    }
}
