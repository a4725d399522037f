/* test_study.c — make transfer-study (study.mk, stages/transfer_study.c) on PROFILE=tiny,
 * and the pairwise ranking accuracy it reports. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "../predictor/predictor.h"
#include "../util/csvio.h"
#include "../util/h5.h"

TEST(study_pair_accuracy) {
    double a[4] = {1, 2, 3, 4}, rev[4] = {4, 3, 2, 1};
    CHECK_NEAR(pair_accuracy(a, a, 4), 1.0, 0);
    CHECK_NEAR(pair_accuracy(rev, a, 4), 0.0, 0);
    double p3[3] = {1, 3, 2}; /* pairs (0,1) and (0,2) right, (1,2) wrong */
    CHECK_NEAR(pair_accuracy(p3, a, 3), 2.0 / 3, 1e-15);
    double tt[3] = {1, 1, 2}, pt[3] = {3, 2, 1}; /* the tied true pair (0,1) is not counted */
    CHECK_NEAR(pair_accuracy(pt, tt, 3), 0.0, 0);
    double same[2] = {5, 5}; /* a predicted tie is half right */
    CHECK_NEAR(pair_accuracy(same, a, 2), 0.5, 0);
    CHECK_NEAR(pair_accuracy(a, same, 2), 0.5, 0); /* no untied true pair: chance */
    /* without ties it is (tau + 1) / 2 */
    double x[30], y[30];
    struct rng r;
    rng_init(&r, 3, RNG_DATA);
    for (int i = 0; i < 30; i++) x[i] = rng_uniform(&r), y[i] = x[i] + 0.3 * rng_uniform(&r);
    rng_free(&r);
    double pa = pair_accuracy(x, y, 30);
    CHECK(pa > 0.6 && pa < 1);
    CHECK_NEAR(pa, (kendall_tau(x, y, 30) + 1) / 2, 1e-12);
}

static int sh(int quiet, char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int sh(int quiet, char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int st = test_vsh(quiet, out, n, fmt, ap);
    va_end(ap);
    return st;
}

/* Exit status want and exactly one output line holding `text`. */
static void check_fails(int st, int want, const char *out, const char *text) {
    int ok = st == want && test_n_lines(out) == 1 && strstr(out, text);
    if (!ok)
        fprintf(stderr, "  exit %d (want %d), want one line with '%s': %s", st, want, text, out);
    CHECK(ok);
}

static int file_equal(const char *a, const char *b) {
    char out[256];
    return sh(0, out, sizeof out, "cmp -s '%s' '%s'", a, b) == 0;
}

/* The study's table: 3 sizes x 2 methods x 3 seeds in order, values in range. */
static void check_csv(const char *path) {
    struct csv_table t;
    int rc = csv_read_table(path, &t);
    CHECK(rc == APQ_OK);
    if (rc) return;
    const char *cols[6] = {"samples", "method", "seed", "rmse", "tau", "pair_acc"};
    CHECK(t.n_cols == 6 && t.n_rows == 1 + 18);
    for (int j = 0; j < 6 && j < t.n_cols; j++) CHECK(!strcmp(t.cell[0][j], cols[j]));
    const int sizes[3] = {5, 10, 20};
    const char *methods[2] = {"transfer", "scratch"};
    for (int i = 0; i < 18 && t.n_cols == 6 && i + 1 < t.n_rows; i++) {
        char **c = t.cell[i + 1];
        double rmse = atof(c[3]), tau = atof(c[4]), pa = atof(c[5]);
        int ok = atoi(c[0]) == sizes[i / 6] && !strcmp(c[1], methods[i / 3 % 2]) &&
                 atoi(c[2]) == 1 + i % 3 && rmse > 0 && rmse < 60 && tau >= -1 && tau <= 1 &&
                 pa >= 0 && pa <= 1;
        if (!ok)
            fprintf(stderr, "  %s row %d: %s,%s,%s,%s,%s,%s\n", path, i + 1, c[0], c[1], c[2], c[3],
                    c[4], c[5]);
        CHECK(ok);
    }
    csv_table_free(&t);
}

/* make transfer-study PROFILE=tiny: 40 samples drawn into runs/tiny/transfer/,
 * the report's three files, nothing to redo on a second make, the same CSV
 * bytes from a second run, and one line + exit 1 (2 for the profile) for each
 * bad input. Reuses pipeline_tiny_end_to_end's runs/ when it ran before. */
TEST(pipeline_tiny_transfer_study) {
    static char out[1 << 16];
    char runs[600], reports[600], e2e[600], p[1400], q[1400], base[1300];
    snprintf(e2e, sizeof e2e, "%.*s/pipeline_tiny_end_to_end/runs",
             (int)(strrchr(test_tmpdir, '/') - test_tmpdir), test_tmpdir);
    snprintf(p, sizeof p, "%s/tiny/predictor-quant.h5", e2e);
    if (access(p, F_OK) == 0)
        snprintf(runs, sizeof runs, "%s", e2e);
    else
        snprintf(runs, sizeof runs, "%s/runs", test_tmpdir);
    snprintf(reports, sizeof reports, "%s/reports", test_tmpdir);
    const char *b = test_build_dir();
    /* the pipeline's own quantized samples and predictor too, for the bad-input checks */
    int st =
        sh(0, out, sizeof out,
           "make -s B=%s PROFILE=tiny RUNS=%s REPORTS=%s transfer-study %s/tiny/predictor-quant.h5",
           b, runs, reports, runs);
    if (st) fprintf(stderr, "%s", out);
    CHECK(st == 0);
    if (st) return;

    snprintf(p, sizeof p, "%s/tiny/transfer/samples-quant.h5", runs);
    hid_t f;
    char **arch = NULL;
    size_t n = 0;
    CHECK(h5_open_read(p, "samples", 1, &f) == APQ_OK);
    CHECK(h5_read_strings(f, "arch", &arch, &n) == APQ_OK && n == 40);
    h5_free_strings(arch, n);
    h5_close(f);
    snprintf(base, sizeof base, "%s/tiny/transfer", reports);
    snprintf(p, sizeof p, "%s/transfer.csv", base);
    check_csv(p);
    snprintf(q, sizeof q, "%s/README.md", base);
    CHECK(sh(0, out, sizeof out, "cat '%s'", q) == 0);
    CHECK(strstr(out, "Transfer needs ") || strstr(out, "not reached within the sizes"));
    CHECK(strstr(out, "| 20 | scratch | ") && strstr(out, "20 samples, fixed (seed 1)"));
    snprintf(q, sizeof q, "%s/transfer.png", base);
    FILE *png = fopen(q, "rb");
    unsigned char sig[8] = {0};
    CHECK(png && fread(sig, 1, 8, png) == 8 && !memcmp(sig, "\x89PNG\r\n\x1a\n", 8));
    if (png) fclose(png);

    /* incremental: nothing to redo */
    st = sh(0, out, sizeof out, "make B=%s PROFILE=tiny RUNS=%s REPORTS=%s transfer-study", b, runs,
            reports);
    CHECK(st == 0 && !strstr(out, "apq-sample-quant") && !strstr(out, "apq-transfer-study --"));

    /* deterministic: the same seed and threads give the same CSV bytes */
    char common[1300];
    snprintf(common, sizeof common,
             "%s/apq-transfer-study --space supernet/spaces/tiny.ini --profile profiles/tiny.ini",
             b);
    st = sh(1, out, sizeof out,
            "%s --samples %s/tiny/transfer/samples-quant.h5 --init %s/tiny/predictor-fp32.h5 "
            "--out-dir %s/again",
            common, runs, runs, test_tmpdir);
    CHECK(st == 0);
    snprintf(q, sizeof q, "%s/again/transfer.csv", test_tmpdir);
    CHECK(file_equal(p, q));

    /* bad inputs: one line, exit 1 */
    st = sh(1, out, sizeof out,
            "%s --samples %s/tiny/samples-quant.h5 --init %s/tiny/predictor-fp32.h5 --out-dir %s/x",
            common, runs, runs, test_tmpdir);
    check_fails(st, 1, out, "12 samples, but held_out 20 + the largest size 20 need 40");
    CHECK(strstr(out, "raise [transfer-study] samples") != NULL);
    st =
        sh(1, out, sizeof out,
           "%s --samples %s/tiny/predictor-fp32.h5 --init %s/tiny/predictor-fp32.h5 --out-dir %s/x",
           common, runs, runs, test_tmpdir);
    check_fails(st, 1, out, "predictor-fp32.h5");
    st = sh(1, out, sizeof out,
            "%s --samples %s/nosuch.h5 --init %s/tiny/predictor-fp32.h5 --out-dir %s/x", common,
            test_tmpdir, runs, test_tmpdir);
    check_fails(st, 1, out, "nosuch.h5");
    st = sh(1, out, sizeof out,
            "%s --samples %s/tiny/transfer/samples-quant.h5 --init %s/tiny/predictor-quant.h5 "
            "--out-dir %s/x",
            common, runs, runs, test_tmpdir);
    check_fails(st, 1, out, "predictor-quant.h5: is a quantized predictor");
    /* an fp32 predictor of another space */
    struct space s;
    struct pred_ensemble pr;
    CHECK(space_load("supernet/spaces/fmnist-mbv2.ini", &s) == APQ_OK);
    CHECK(pred_ensemble_init(&pr, 2, encode_dim(&s, 0), 0, 8, 1, 1) == APQ_OK);
    for (int i = 0; i < pr.k; i++) pr.m[i].space_hash = s.hash;
    pr.prov.n_train = 10, pr.prov.n_held_out = 2;
    snprintf(q, sizeof q, "%s/other-fp32.h5", test_tmpdir);
    CHECK(pred_ensemble_save(&pr, &s, q, 1) == APQ_OK);
    pred_ensemble_free(&pr);
    st = sh(1, out, sizeof out,
            "%s --samples %s/tiny/transfer/samples-quant.h5 --init %s --out-dir %s/x", common, runs,
            q, test_tmpdir);
    check_fails(st, 1, out, "predictor trained for space 'fmnist-mbv2'");
    snprintf(q, sizeof q, "%s/x", test_tmpdir);
    CHECK(access(q, F_OK) != 0); /* nothing written */

    /* bad profile values: exit 2 naming the key, through make before any sampling */
    const char *bad[][2] = {{"s/^held_out = 20/held_out = 1/", "held_out = 1"},
                            {"s/^sizes = .*/sizes = 10,5/", "sizes = 10,5"},
                            {"s/^sizes = .*/sizes = 5,x/", "sizes = 5,x"},
                            {"s/^seeds = 3/seeds = 0/", "seeds = 0"},
                            {"s/^samples = 40/samples = 30/", "exceeds samples = 30"},
                            {"s/^seeds = 3/seeds = 3\\nfoo = 1/", "unknown key 'foo'"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(q, sizeof q, "%s/bad%zu.ini", test_tmpdir, i);
        CHECK(sh(0, out, sizeof out, "sed '%s' profiles/tiny.ini > %s", bad[i][0], q) == 0);
        st = sh(1, out, sizeof out, "%s/apq-transfer-study --profile %s --print-samples", b, q);
        check_fails(st, 2, out, bad[i][1]);
        if (i) continue; /* make stops before the supernet and the sampler */
        st = sh(1, out, sizeof out,
                "make -s B=%s PROFILE=tiny PROF=%s RUNS=%s/r REPORTS=%s/r transfer-study", b, q,
                test_tmpdir, test_tmpdir);
        CHECK(st == 2 && strstr(out, bad[i][1]) && !strstr(out, "apq-train-supernet"));
    }
}
