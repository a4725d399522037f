/* test_pipeline.c — the whole pipeline on PROFILE=tiny: every artifact exists,
 * matches its documented schema (docs/formats.md) and holds finite values;
 * make is incremental; bad input gets one line and a non-zero exit. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "../stages/data.h"
#include "../supernet/subnet.h"
#include "../supernet/supernet.h"
#include "../util/csvio.h"
#include "../util/h5.h"

static char runs[600], reports[600];

static int make_tiny(char *out, size_t n, const char *extra) {
    return test_make_tiny(out, n, runs, reports, extra);
}

static void check_finite_col(hid_t f, const char *path, const char *name, size_t n, double lo,
                             double hi) {
    double *v;
    size_t m = 0;
    int rc = h5_read_f64_alloc(f, name, &v, &m);
    CHECK(rc == APQ_OK);
    if (rc) {
        fprintf(stderr, "  %s: %s\n", path, apq_last_error());
        return;
    }
    CHECK(m == n);
    for (size_t i = 0; i < m; i++)
        if (!(isfinite(v[i]) && v[i] >= lo && v[i] <= hi)) {
            fprintf(stderr, "  %s: %s[%zu] = %g outside [%g, %g]\n", path, name, i, v[i], lo, hi);
            test_failed_checks++;
            break;
        }
    free(v);
}

/* Open an artifact, check its kind, return the row count of its arch column. */
static size_t open_table(const char *path, const char *kind, hid_t *f, const struct space *s) {
    int rc = h5_open_read(path, kind, 1, f);
    if (rc) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    if (rc) return 0;
    char **arch;
    size_t n = 0;
    CHECK(h5_read_strings(*f, "arch", &arch, &n) == APQ_OK);
    for (size_t i = 0; i < n; i++) {
        struct arch a;
        int ok = arch_from_string(s, arch[i], &a) == APQ_OK;
        if (!ok) fprintf(stderr, "  %s: %s\n", path, apq_last_error());
        CHECK(ok);
    }
    h5_free_strings(arch, n);
    return n;
}

/* Top-1 accuracy of net on d, in batches of B images, as supernet_accuracy counts it. */
static double subnet_accuracy(const struct subnet *net, const struct dataset *d, int B) {
    const int res = net->res, nc = net->n_classes;
    float *x = malloc(sizeof(float) * B * res * res),
          *tmp = malloc(sizeof(float) * B * d->h * d->w);
    float *logits = malloc(sizeof(float) * B * nc),
          *scratch = apq_falloc(subnet_scratch_floats(net, B));
    int *idx = malloc(sizeof(int) * B), *lab = malloc(sizeof(int) * B);
    long correct = 0;
    for (int off = 0; off < d->n; off += B) {
        const int n = d->n - off < B ? d->n - off : B;
        for (int i = 0; i < n; i++) idx[i] = off + i;
        sn_input_batch(x, lab, tmp, d, idx, n, res, 0, NULL);
        subnet_forward(logits, net, x, n, scratch);
        correct += nn_count_correct(logits, lab, n, nc);
    }
    free(x), free(tmp), free(logits), free(scratch), free(idx), free(lab);
    return (double)correct / d->n;
}

/* verified.h5 keeps each row's subnet (subnet/<i>, docs/formats.md "A
 * subnet's weights"): it loads, is the row's arch, and its reference forward
 * on the val images verify measured, in verify's batches (tiny: 64), gives
 * the row's acc_val: the kept subnet is what verify measured. */
static void check_verified_subnets(hid_t f, const char *path, const struct space *s) {
    char **arch = NULL, hash[32];
    size_t n = 0, m = 0;
    double *acc = NULL;
    int64_t n_val = 0;
    CHECK(h5_read_strings(f, "arch", &arch, &n) == APQ_OK && n > 0);
    CHECK(h5_read_f64_alloc(f, "acc_val", &acc, &m) == APQ_OK && m == n);
    CHECK(h5_attr_get_i64(f, "val_images", &n_val) == APQ_OK && n_val > 0);
    if (test_failed_checks) return;
    struct dataset all, test, train, val, head;
    CHECK(idx_load_dir("/usr/share/datasets/fashion-mnist", &all, &test) == APQ_OK);
    dataset_split(&all, VAL_SIZE, SPLIT_SEED, &train, &val);
    dataset_head(&val, (int)n_val, &head);
    space_hash_text(s, hash);
    for (size_t i = 0; i < n; i++) {
        char group[64];
        snprintf(group, sizeof group, "subnet/%zu", i);
        struct subnet net;
        const int rc = subnet_read(f, group, &net);
        if (rc) fprintf(stderr, "  %s: %s\n", path, apq_last_error());
        CHECK(rc == APQ_OK);
        if (rc) continue;
        CHECK(!strcmp(net.arch, arch[i]) && !strcmp(net.space_hash, hash));
        const double a = subnet_accuracy(&net, &head, 64);
        if (fabs(a - acc[i]) > 1e-9)
            fprintf(stderr, "  %s: %s: %.6f, verify %.6f\n", path, group, a, acc[i]);
        CHECK_NEAR(a, acc[i], 1e-9);
        subnet_free(&net);
    }
    h5_free_strings(arch, n);
    free(acc);
    dataset_free(&all), dataset_free(&test), dataset_free(&train), dataset_free(&val);
    dataset_free(&head);
}

TEST(pipeline_tiny_end_to_end) {
    snprintf(runs, sizeof runs, "%s/runs", test_tmpdir);
    snprintf(reports, sizeof reports, "%s/reports", test_tmpdir);
    static char out[1 << 16];
    int st = make_tiny(out, sizeof out, "");
    if (st) fprintf(stderr, "%s", out);
    CHECK(st == 0);
    if (st) return;
    char p[1200];
    struct space s;
    CHECK(space_load("supernet/spaces/tiny.ini", &s) == APQ_OK);

    /* supernet.h5: every tensor present, right shape, finite */
    snprintf(p, sizeof p, "%s/tiny/supernet.h5", runs);
    struct supernet sn;
    supernet_init(&sn, &s, 0, 0);
    CHECK(supernet_load(&sn, p) == APQ_OK);
    int finite = 1;
    for (size_t i = 0; i < sn.n_params; i++) finite &= isfinite(sn.params[i]);
    for (size_t i = 0; i < sn.n_bufs; i++) finite &= isfinite(sn.bufs[i]);
    CHECK(finite);
    supernet_free(&sn);

    hid_t f;
    size_t n;
    const char *samples[2] = {"samples-fp32.h5", "samples-quant.h5"};
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/tiny/%s", runs, samples[k]);
        n = open_table(p, "samples", &f, &s);
        CHECK(n == (k ? 12u : 24u));
        check_finite_col(f, p, "acc_val", n, 0, 1);
        check_finite_col(f, p, "macs_m", n, 0, 1e4);
        h5_close(f);
    }
    const char *preds[2] = {"predictor-fp32.h5", "predictor-quant.h5"};
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/tiny/%s", runs, preds[k]);
        CHECK(h5_open_read(p, "predictor", 2, &f) == APQ_OK);
        double rmse = NAN, tau = NAN;
        CHECK(h5_attr_get_f64(f, "rmse", &rmse) == APQ_OK && isfinite(rmse) && rmse >= 0);
        CHECK(h5_attr_get_f64(f, "kendall_tau", &tau) == APQ_OK && tau >= -1 && tau <= 1);
        h5_close(f);
    }
    snprintf(p, sizeof p, "%s/tiny/bitfusion/lut.h5", runs);
    CHECK(h5_open_read(p, "lut", 1, &f) == APQ_OK);
    h5_close(f);
    snprintf(p, sizeof p, "%s/tiny/bitfusion/search.h5", runs);
    n = open_table(p, "search", &f, &s);
    CHECK(n >= 6);
    check_finite_col(f, p, "acc_pred", n, 0, 1);
    check_finite_col(f, p, "latency_ms", n, 1e-9, 1e6);
    check_finite_col(f, p, "energy_mj", n, 1e-9, 1e6);
    double *lat, *bud;
    size_t m1, m2;
    CHECK(h5_read_f64_alloc(f, "latency_ms", &lat, &m1) == 0);
    CHECK(h5_read_f64_alloc(f, "budget_latency_ms", &bud, &m2) == 0);
    for (size_t i = 0; i < m1 && i < m2; i++) CHECK(lat[i] <= bud[i] * (1 + 1e-9));
    free(lat);
    free(bud);
    h5_close(f);
    snprintf(p, sizeof p, "%s/tiny/bitfusion/verified.h5", runs);
    size_t nv = open_table(p, "verified", &f, &s);
    CHECK(nv == n);
    check_finite_col(f, p, "acc_val", nv, 0, 1);
    check_finite_col(f, p, "acc_test", nv, 0, 1);
    check_verified_subnets(f, p, &s);
    h5_close(f);

    /* the report */
    snprintf(p, sizeof p, "%s/tiny/bitfusion/pareto.csv", reports);
    struct csv_table t;
    CHECK(csv_read_table(p, &t) == APQ_OK);
    const char *cols[] = {"arch",      "budget_latency_ms", "latency_ms", "energy_mj", "macs_m",
                          "weight_kb", "acc_pred",          "acc_val",    "acc_test",  "on_front"};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        CHECK(csv_table_col(&t, cols[i]) >= 0);
    CHECK(t.n_rows == (int)nv + 1);
    /* the exported models' columns (make runs apq-export): the integer model's
     * test accuracy near the fake-quantized one, memory of a tiny net */
    const int c_test = csv_table_col(&t, "acc_test"), c_int = csv_table_col(&t, "acc_test_int"),
              c_fl = csv_table_col(&t, "flash_kb"), c_ram = csv_table_col(&t, "peak_ram_kb");
    CHECK(c_int >= 0 && c_fl >= 0 && c_ram >= 0);
    for (int r = 1; r < t.n_rows && c_int >= 0 && c_fl >= 0 && c_ram >= 0; r++) {
        const double a = atof(t.cell[r][c_int]), fl = atof(t.cell[r][c_fl]),
                     ram = atof(t.cell[r][c_ram]);
        CHECK(a > 30 && a <= 100 && fabs(a - atof(t.cell[r][c_test])) < 5);
        CHECK(fl > 0.5 && fl < 1000 && ram > 0.5 && ram < 1000);
    }
    csv_table_free(&t);
    snprintf(p, sizeof p, "%s/tiny/bitfusion/pareto.h5", reports);
    CHECK(open_table(p, "pareto", &f, &s) == nv);
    h5_close(f);
    snprintf(p, sizeof p, "%s/tiny/bitfusion/pareto.png", reports);
    FILE *png = fopen(p, "rb");
    unsigned char magic[8] = {0};
    CHECK(png && fread(magic, 1, 8, png) == 8 && magic[1] == 'P' && magic[2] == 'N');
    if (png) fclose(png);
    snprintf(p, sizeof p, "%s/tiny/bitfusion/README.md", reports);
    struct stat stt;
    CHECK(stat(p, &stt) == 0 && stt.st_size > 500);

    /* incremental: a second make has nothing to do; a new budget reruns search and after only */
    CHECK(make_tiny(out, sizeof out, "-n") == 0);
    CHECK(!strstr(out, "apq-"));
    CHECK(make_tiny(out, sizeof out, "-n LATENCY_MS=0.05") == 0);
    CHECK(strstr(out, "apq-search") && strstr(out, "apq-verify") && strstr(out, "apq-report"));
    CHECK(!strstr(out, "apq-train-supernet") && !strstr(out, "apq-sample") &&
          !strstr(out, "apq-build-lut") && !strstr(out, "apq-train-predictor") &&
          !strstr(out, "apq-transfer-predictor"));
    /* an edit under search/ rebuilds the search and after, never the supernet */
    CHECK(make_tiny(out, sizeof out, "-n -W search/evolve.c") == 0);
    CHECK(strstr(out, "apq-search") && strstr(out, "apq-verify") && strstr(out, "apq-report"));
    CHECK(!strstr(out, "apq-train-supernet") && !strstr(out, "apq-sample") &&
          !strstr(out, "apq-build-lut") && !strstr(out, "apq-train-predictor") &&
          !strstr(out, "apq-transfer-predictor"));
}

/* `make PROFILE=tiny TARGET` into the test's runs/ and reports/, then read
 * reports/tiny/TARGET.csv into t; 0 (checks failed, t unset) on failure. */
static int make_tiny_report(const char *target, struct csv_table *t) {
    static char out[1 << 16];
    snprintf(runs, sizeof runs, "%s/runs", test_tmpdir);
    snprintf(reports, sizeof reports, "%s/reports", test_tmpdir);
    int st = make_tiny(out, sizeof out, target);
    if (st) fprintf(stderr, "%s", out);
    CHECK(st == 0);
    char p[1200];
    snprintf(p, sizeof p, "%s/tiny/%s.csv", reports, target);
    int rc = csv_read_table(p, t);
    CHECK(rc == APQ_OK);
    if (test_failed_checks && rc == APQ_OK) csv_table_free(t);
    return !test_failed_checks;
}

/* make scratch-baseline: three subnets from scratch against the same subnets
 * extracted from the supernet, one row each, accuracies in percent. */
TEST(pipeline_tiny_scratch_baseline) {
    struct csv_table t;
    if (!make_tiny_report("scratch-baseline", &t)) return;
    char p[1200];
    CHECK(t.n_rows == 4);
    const char *cols[] = {"acc_val_supernet", "acc_test_supernet", "acc_val_scratch",
                          "acc_test_scratch"};
    for (size_t c = 0; c < 4; c++) {
        int j = csv_table_col(&t, cols[c]);
        CHECK(j >= 0);
        for (int r = 1; r < t.n_rows && j >= 0; r++) {
            double v = atof(t.cell[r][j]);
            CHECK(v > 0 && v <= 100);
        }
    }
    CHECK(!strcmp(t.cell[1][0], "smallest") && !strcmp(t.cell[3][0], "largest"));
    csv_table_free(&t);
    snprintf(p, sizeof p, "%s/tiny/scratch/middle.h5", runs);
    CHECK(access(p, F_OK) == 0);
}

/* make supernet-eval: five extracted subnets, smallest to largest, MACs
 * strictly increasing, accuracies in percent. */
TEST(pipeline_tiny_supernet_eval) {
    struct csv_table t;
    if (!make_tiny_report("supernet-eval", &t)) return;
    char p[1200];
    CHECK(t.n_rows == 6);
    int jm = csv_table_col(&t, "macs_m"), jv = csv_table_col(&t, "acc_val"),
        jt = csv_table_col(&t, "acc_test");
    CHECK(jm >= 0 && jv >= 0 && jt >= 0);
    const char *want[5] = {"smallest", "q25", "middle", "q75", "largest"};
    for (int r = 1; r < t.n_rows && jm >= 0 && jv >= 0 && jt >= 0; r++) {
        CHECK(!strcmp(t.cell[r][0], want[r - 1]));
        double v = atof(t.cell[r][jv]), te = atof(t.cell[r][jt]);
        CHECK(v > 0 && v <= 100 && te > 0 && te <= 100);
        if (r > 1) CHECK(atof(t.cell[r][jm]) > atof(t.cell[r - 1][jm]));
    }
    csv_table_free(&t);
    snprintf(p, sizeof p, "%s/tiny/supernet-eval.md", reports);
    CHECK(access(p, F_OK) == 0);
}

/* Bad input: one line naming the problem, exit 1 (2 for usage), nothing written. */
TEST(pipeline_bad_input) {
    static char out[1 << 14];
    char tmp[700];
    const char *b = test_build_dir();
    CHECK(test_sh(0, out, sizeof out, "make -s PROFILE=tiny DEVICE=nosuchdevice RUNS=%s/r",
                  test_tmpdir) == 2);
    CHECK(strstr(out, "unknown device 'nosuchdevice'") != NULL);
    CHECK(test_sh(0, out, sizeof out, "make -s PROFILE=nosuch RUNS=%s/r", test_tmpdir) == 2);
    CHECK(strstr(out, "unknown profile") != NULL);
    /* missing dataset folder */
    snprintf(tmp, sizeof tmp, "%s/sn.h5", test_tmpdir);
    CHECK(test_sh(0, out, sizeof out,
                  "%s/apq-train-supernet --space supernet/spaces/tiny.ini --profile "
                  "profiles/tiny.ini --data /nonexistent --out %s",
                  b, tmp) == 1);
    CHECK(strstr(out, "/nonexistent") != NULL);
    CHECK(access(tmp, F_OK) != 0);
    /* a truncated supernet.h5 */
    snprintf(tmp, sizeof tmp, "%s/bad.h5", test_tmpdir);
    FILE *f = fopen(tmp, "wb");
    fputs("\x89HDF\r\n\x1a\n truncated", f);
    fclose(f);
    CHECK(test_sh(0, out, sizeof out,
                  "%s/apq-sample-fp32 --space supernet/spaces/tiny.ini --profile "
                  "profiles/tiny.ini --data /usr/share/datasets/fashion-mnist "
                  "--supernet %s --out %s/s.h5",
                  b, tmp, test_tmpdir) == 1);
    CHECK(strstr(out, "bad.h5") != NULL);
    /* the progressive-shrinking schedule runs through the stage; an unknown one is a usage error */
    snprintf(tmp, sizeof tmp, "%s/ps.h5", test_tmpdir);
    int st = test_sh(0, out, sizeof out,
                     "%s/apq-train-supernet --space supernet/spaces/tiny.ini --profile "
                     "profiles/tiny.ini --data /usr/share/datasets/fashion-mnist "
                     "--schedule ps --out %s",
                     b, tmp);
    if (st) fprintf(stderr, "%s", out);
    CHECK(st == 0 && access(tmp, F_OK) == 0);
    CHECK(strstr(out, "phase width-2") && strstr(out, "channels re-sorted"));
    CHECK(test_sh(0, out, sizeof out,
                  "%s/apq-train-supernet --space supernet/spaces/tiny.ini --profile "
                  "profiles/tiny.ini --data /usr/share/datasets/fashion-mnist "
                  "--schedule bogus --out %s/x.h5",
                  b, test_tmpdir) == 2);
    CHECK(strstr(out, "unknown schedule 'bogus'") != NULL);
    /* usage errors */
    CHECK(test_sh(0, out, sizeof out, "%s/apq-search --bogus 1", b) == 2);
    CHECK(test_sh(0, out, sizeof out, "%s/apq-train-supernet --space supernet/spaces/tiny.ini",
                  b) == 2);
    CHECK(strstr(out, "missing --profile") != NULL);
}

// ---- determinism ---------------------------------------------------------------

/* Raw bytes of a dataset or attribute (native type); *n its size. malloc'ed. */
static void *read_raw(hid_t obj, int is_attr, size_t *n) {
    hid_t ft = is_attr ? H5Aget_type(obj) : H5Dget_type(obj);
    hid_t sp = is_attr ? H5Aget_space(obj) : H5Dget_space(obj);
    hid_t mt = H5Tget_native_type(ft, H5T_DIR_DEFAULT);
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    void *buf = NULL;
    *n = np >= 0 ? (size_t)np * H5Tget_size(mt) : 0;
    if (np >= 0 && H5Tis_variable_str(ft) <= 0 && (buf = calloc(1, *n + 1)) &&
        (is_attr ? H5Aread(obj, mt, buf) : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)) <
            0) {
        free(buf);
        buf = NULL;
    }
    H5Tclose(mt), H5Sclose(sp), H5Tclose(ft);
    return buf;
}

struct cmp_ctx {
    hid_t other;
    const char *path;
    int n_datasets, n_attrs;
};

/* 0 when `name` of file a and of ctx->other hold the same bytes. */
static int same_object(hid_t a, const char *name, int is_attr, struct cmp_ctx *c) {
    hid_t oa = is_attr ? H5Aopen(a, name, H5P_DEFAULT) : H5Dopen2(a, name, H5P_DEFAULT);
    hid_t ob =
        is_attr ? H5Aopen(c->other, name, H5P_DEFAULT) : H5Dopen2(c->other, name, H5P_DEFAULT);
    size_t na = 0, nb = 0;
    void *ba = oa >= 0 ? read_raw(oa, is_attr, &na) : NULL;
    void *bb = ob >= 0 ? read_raw(ob, is_attr, &nb) : NULL;
    const int same = ba && bb && na == nb && !memcmp(ba, bb, na);
    if (!same)
        fprintf(stderr, "  %s: %s '%s' differs between the two runs\n", c->path,
                is_attr ? "attribute" : "dataset", name);
    free(ba), free(bb);
    if (oa >= 0) is_attr ? H5Aclose(oa) : H5Dclose(oa);
    if (ob >= 0) is_attr ? H5Aclose(ob) : H5Dclose(ob);
    return same ? 0 : 1;
}

static herr_t cmp_link(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    struct cmp_ctx *c = data;
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    const int is_ds = o >= 0 && H5Iget_type(o) == H5I_DATASET;
    if (o >= 0) H5Oclose(o);
    if (!is_ds) return 0;
    c->n_datasets++;
    test_failed_checks += same_object(g, name, 0, c);
    return 0;
}

static herr_t cmp_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    struct cmp_ctx *c = data;
    const size_t n = strlen(name);
    if (!strcmp(name, "created") || (n > 8 && !strcmp(name + n - 8, "_seconds")))
        return 0; /* the time of writing, wall times */
    c->n_attrs++;
    test_failed_checks += same_object(loc, name, 1, c);
    return 0;
}

/* Every dataset and root attribute (but times: `created`, `*_seconds`) of
 * HDF5 file a equals b's, bit for bit, and b has no more datasets than a. */
static void check_same_h5(const char *a, const char *b) {
    hid_t fa, fb;
    int ra = h5_open_read(a, NULL, 0, &fa), rb = h5_open_read(b, NULL, 0, &fb);
    CHECK(ra == APQ_OK && rb == APQ_OK);
    if (ra || rb) {
        if (!ra) h5_close(fa);
        if (!rb) h5_close(fb);
        return;
    }
    struct cmp_ctx c = {fb, a, 0, 0}, cb = {fa, b, 0, 0};
    CHECK(H5Lvisit(fa, H5_INDEX_NAME, H5_ITER_INC, cmp_link, &c) >= 0);
    CHECK(H5Aiterate2(fa, H5_INDEX_NAME, H5_ITER_INC, NULL, cmp_attr, &c) >= 0);
    const int failed = test_failed_checks;
    CHECK(H5Lvisit(fb, H5_INDEX_NAME, H5_ITER_INC, cmp_link, &cb) >= 0);
    test_failed_checks = failed; /* differences are reported once, from a's side */
    CHECK(c.n_datasets > 0 && cb.n_datasets == c.n_datasets && c.n_attrs >= 6);
    h5_close(fa), h5_close(fb);
}

/* Same seed, same thread count, same OpenBLAS kernel: the same artifacts.
 * The tiny pipeline twice in the same folders (the first run's moved aside,
 * so that the input paths artifacts record are the same); every dataset and
 * root attribute of every HDF5 artifact (but times) and the report's CSV are
 * the same bytes (docs/formats.md §2, "Determinism"). */
TEST(pipeline_tiny_deterministic) {
    static char out[1 << 16];
    char r[700], r1[700], p1[1400], p2[1400];
    snprintf(r, sizeof r, "%s/r", test_tmpdir);
    snprintf(r1, sizeof r1, "%s/first", test_tmpdir);
    for (int k = 0; k < 2; k++) {
        int st =
            test_sh(0, out, sizeof out, "make -s B=%s PROFILE=tiny RUNS=%s/runs REPORTS=%s/reports",
                    test_build_dir(), r, r);
        if (st) fprintf(stderr, "%s", out);
        CHECK(st == 0);
        if (st) return;
        if (!k) CHECK(rename(r, r1) == 0);
    }
    const char *files[] = {"runs/tiny/supernet.h5",           "runs/tiny/samples-fp32.h5",
                           "runs/tiny/predictor-fp32.h5",     "runs/tiny/samples-quant.h5",
                           "runs/tiny/predictor-quant.h5",    "runs/tiny/bitfusion/lut.h5",
                           "runs/tiny/bitfusion/search.h5",   "runs/tiny/bitfusion/verified.h5",
                           "reports/tiny/bitfusion/pareto.h5"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p1, sizeof p1, "%s/%s", r1, files[i]);
        snprintf(p2, sizeof p2, "%s/%s", r, files[i]);
        check_same_h5(p1, p2);
    }
    CHECK(test_sh(0, out, sizeof out,
                  "cmp %s/reports/tiny/bitfusion/pareto.csv %s/reports/tiny/bitfusion/pareto.csv",
                  r1, r) == 0);
}

// ---- faults: SIGKILL and resume ----------------------------------------------------

/* Run `make ... target` in a process group of its own, SIGKILL the group
 * `delay` seconds after the start, or after file `after` appears when not
 * NULL; returns 1 when it was killed, 0 when make ended first (its exit
 * status checked 0). The log goes to log. */
static int make_and_kill(const char *args, const char *target, double delay, const char *after,
                         const char *log) {
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        char cmd[6000];
        snprintf(cmd, sizeof cmd, "cd '%s' && exec make -s %s %s >>'%s' 2>&1", APQ_SRC_DIR, args,
                 target, log);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    if (pid < 0) return -1;
    setpgid(pid, pid);
    int st = 0;
    double t0 = apq_time();
    for (;;) {
        if (after && access(after, F_OK) != 0)
            t0 = apq_time(); /* the delay counts from its appearance */
        else if (apq_time() - t0 >= delay)
            break;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
            return 0;
        }
        usleep(2000);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &st, 0);
    return 1;
}

/* Kill one stage at 5 random points, each 15-45% of its uninterrupted
 * duration into a run (a resumed run is shorter, and may finish first), a
 * plain make after each kill; the final artifact must be
 * the uninterrupted run's, bit for bit. `ref_dir` holds that run's runs/
 * (moved aside from `dir`, so recorded paths agree). The first kill comes
 * 0-50 ms after file `after` (NULL: none) appears. Returns the number of kills that
 * hit a running stage. */
static int kill_and_resume(const char *args, const char *dir, const char *ref_dir,
                           const char *artifact, double duration, const char *after,
                           const char *log) {
    char target[1400], ref[1400];
    snprintf(target, sizeof target, "%s/runs/tiny/%s", dir, artifact);
    snprintf(ref, sizeof ref, "%s/runs/tiny/%s", ref_dir, artifact);
    struct rng r;
    rng_init(&r, (uint64_t)getpid() ^ (uint64_t)(apq_time() * 1e6), RNG_SAMPLE);
    int kills = 0;
    for (int i = 0; i < 5; i++) {
        /* the first kill 0-50 ms after `after` appears, the others at random */
        const double at =
            i || !after ? duration * (0.15 + 0.3 * rng_uniform(&r)) : 0.05 * rng_uniform(&r);
        const int killed = make_and_kill(args, target, at, i ? NULL : after, log);
        fprintf(stderr, "  %s: SIGKILL at %.2f s: %s\n", artifact, at,
                killed ? "killed" : "had finished");
        kills += killed == 1;
        if (!killed) break;
        CHECK(access(target, F_OK) != 0); /* nothing that looks finished */
    }
    rng_free(&r);
    CHECK(make_and_kill(args, target, 1e9, NULL, log) == 0);
    check_same_h5(ref, target);
    return kills;
}

/* A SIGKILL at 5 points of each long stage (training, both sampling stages,
 * verify), each followed by make, ends with the artifacts of an
 * uninterrupted run, bit for bit. Training checkpoints every 5 steps here (a
 * copy of the tiny profile) and the sampling stages after every sample, so
 * the kills land between checkpoints and the runs resume from them; verify
 * starts over. */
TEST(pipeline_kill_and_resume) {
    static char out[1 << 14];
    char dir[700], ref[700], prof[700], log[700], args[2600], target[1400];
    snprintf(dir, sizeof dir, "%s/r", test_tmpdir);
    snprintf(ref, sizeof ref, "%s/ref", test_tmpdir);
    snprintf(prof, sizeof prof, "%s/tiny.ini", test_tmpdir);
    snprintf(log, sizeof log, "%s/make.log", test_tmpdir);
    CHECK(test_sh(0, out, sizeof out,
                  "sed 's/^checkpoint_every = 0$/checkpoint_every = 5/' profiles/tiny.ini > %s && "
                  "grep -q '^checkpoint_every = 5$' %s",
                  prof, prof) == 0);
    /* one sampling process: its partial file is samples-*.h5.partial */
    snprintf(args, sizeof args,
             "B=%s PROFILE=tiny PROF=%s RUNS=%s/runs REPORTS=%s/reports SHARDS=1", test_build_dir(),
             prof, dir, dir);
    /* each stage, and what it needs made first (uninterrupted) */
    const char *stages[4] = {"supernet.h5", "samples-fp32.h5", "samples-quant.h5",
                             "bitfusion/verified.h5"};
    const char *before[4] = {NULL, NULL, NULL, "bitfusion/search.h5"};
    double dur[4];
    for (int k = 0; k < 4; k++) { /* the uninterrupted run, each stage timed */
        if (before[k]) {
            snprintf(target, sizeof target, "%s/runs/tiny/%s", dir, before[k]);
            CHECK(make_and_kill(args, target, 1e9, NULL, log) == 0);
        }
        snprintf(target, sizeof target, "%s/runs/tiny/%s", dir, stages[k]);
        const double t0 = apq_time();
        CHECK(make_and_kill(args, target, 1e9, NULL, log) == 0);
        dur[k] = apq_time() - t0;
    }
    CHECK(rename(dir, ref) == 0);
    for (int k = 0; k < 4 && !test_failed_checks; k++) {
        if (before[k]) {
            snprintf(target, sizeof target, "%s/runs/tiny/%s", dir, before[k]);
            CHECK(make_and_kill(args, target, 1e9, NULL, log) == 0);
        }
        char after[1500]; /* training's checkpoint, a sampling stage's partial file */
        snprintf(after, sizeof after, "%s/runs/tiny/%s.%s", dir, stages[k], k ? "partial" : "ckpt");
        CHECK(kill_and_resume(args, dir, ref, stages[k], dur[k], k < 3 ? after : NULL, log) >= 2);
    }
    /* training resumed from its checkpoint, sampling from its partial file */
    CHECK(test_sh(0, out, sizeof out, "grep -q 'resuming .*supernet.h5.ckpt at step' %s", log) ==
          0);
    CHECK(test_sh(0, out, sizeof out, "grep -q 'resuming from .*samples-fp32.h5.partial' %s",
                  log) == 0);
    CHECK(test_sh(0, out, sizeof out, "grep -q 'resuming from .*samples-quant.h5.partial' %s",
                  log) == 0);
    if (test_failed_checks) test_sh(0, NULL, 0, "tail -n 30 %s >&2", log);
}

/* make -j2 SHARDS=3 measures the samples in 3 processes and joins them into
 * the same bytes as SHARDS=1 (APQ_THREADS and SOURCE_DATE_EPOCH fixed); a
 * shard of another identity is refused by the merge with one line; the
 * profile's n is overridden by --n. */
TEST(pipeline_sampling_shards_same_bytes) {
    static char out[1 << 14];
    char args[2200], f[1000];
    snprintf(args, sizeof args,
             "SOURCE_DATE_EPOCH=1700000000 APQ_THREADS=1 B=%s PROFILE=tiny RUNS=%s/runs "
             "REPORTS=%s/reports",
             test_build_dir(), test_tmpdir, test_tmpdir);
    snprintf(f, sizeof f, "%s/runs/tiny/samples-quant", test_tmpdir);
    CHECK(test_sh(0, out, sizeof out, "make -s %s %s.h5 && mv %s.h5 %s.one.h5", args, f, f, f) ==
          0);
    CHECK(test_sh(0, out, sizeof out, "make -s -j2 %s SHARDS=3 %s.h5", args, f) == 0);
    CHECK(test_sh(0, out, sizeof out, "cmp %s.one.h5 %s.h5", f, f) == 0);
    CHECK(test_sh(0, out, sizeof out, "ls %s.1-of-3.h5 %s.2-of-3.h5 %s.3-of-3.h5", f, f, f) == 0);
    /* SHARDS is not part of the samples' record: another count redoes nothing */
    CHECK(test_sh(0, out, sizeof out, "make -s -q %s SHARDS=2 %s.h5", args, f) == 0);
    /* a shard of other settings (another seed) is refused by the merge */
    char prog[1600];
    snprintf(prog, sizeof prog,
             "APQ_THREADS=1 %s/apq-sample --space supernet/spaces/tiny.ini --profile "
             "profiles/tiny.ini --data /usr/share/datasets/fashion-mnist --supernet "
             "%s/runs/tiny/supernet.h5",
             test_build_dir(), test_tmpdir);
    char *dash = strstr(prog, "apq-sample") + strlen("apq-sample");
    memmove(dash + 6, dash, strlen(dash) + 1); /* apq-sample -> apq-sample-quant */
    memcpy(dash, "-quant", 6);
    CHECK(test_sh(0, out, sizeof out, "%s --seed 2 --shard 2/3 --out %s.2-of-3.h5", prog, f) == 0);
    CHECK(test_sh(0, out, sizeof out, "%s --merge 3 --out %s.h5", prog, f) == 1);
    CHECK(strstr(out, "samples-quant.2-of-3.h5: made with other settings: quantized 1, n 12, "
                      "seed 2") != NULL);
    CHECK(strstr(out, "hint: rerun make to remake the shards") != NULL);
    /* --n overrides the profile's n */
    memcpy(dash, "-fp32 ", 6);
    CHECK(test_sh(0, out, sizeof out, "%s --n 11 --out %s/runs/tiny/n11.h5", prog, test_tmpdir) ==
          0);
    char n11[1000];
    snprintf(n11, sizeof n11, "%s/runs/tiny/n11.h5", test_tmpdir);
    hid_t h;
    size_t n = 0;
    double *acc = NULL;
    CHECK(h5_open_read(n11, "samples", 1, &h) == APQ_OK);
    CHECK(h5_read_f64_alloc(h, "acc_val", &acc, &n) == APQ_OK && n == 11);
    free(acc);
    h5_close(h);
}

// ---- every input noticed, every bad one refused (issue 13) -----------------------

/* A finished tiny pipeline to try inputs on, in runs/ and reports/: the tree
 * pipeline_tiny_end_to_end made when it ran before in this process (its
 * folder beside this test's), else a new one in this test's folder. 0 (a
 * failed check) when make failed. */
static int tiny_tree(void) {
    return test_tiny_tree(runs, sizeof runs, reports, sizeof reports);
}

/* Lines in out, and whether exactly one of them holds `want`. */

/* The `seed` attribute of an HDF5 artifact (-1 when unreadable). */
static long long h5_seed(const char *path) {
    hid_t f;
    int64_t v = -1;
    if (h5_open_read(path, NULL, 0, &f) != APQ_OK) return -1;
    if (h5_attr_get_i64(f, "seed", &v) != APQ_OK) v = -1;
    h5_close(f);
    return v;
}

/* PREDICTOR missing or of the wrong kind; bad budgets, seeds and thread
 * counts: one line naming the variable, exit 2 (1 for a file that fails to
 * read), before any stage runs where make can tell. */
TEST(pipeline_bad_options) {
    if (!tiny_tree()) return;
    static char out[1 << 16];
    char arg[4096];
    CHECK(make_tiny(out, sizeof out, "PREDICTOR=/nonexistent/p.h5") == 2);
    CHECK(test_n_lines(out) == 1 && strstr(out, "PREDICTOR=/nonexistent/p.h5: no such file"));
    /* the fp32 predictor where the quantization-aware one belongs: apq-search refuses it */
    snprintf(arg, sizeof arg, "PREDICTOR=%s/tiny/predictor-fp32.h5", runs);
    CHECK(make_tiny(out, sizeof out, arg) == 2);
    const char *e = strstr(out, "error:");
    CHECK(e && strstr(e, "predictor-fp32.h5: is an fp32 predictor") && !strstr(e + 1, "error:"));
    CHECK(make_tiny(out, sizeof out, "-n") == 0 && !strstr(out, "apq-"));

    const char *bad[] = {"LATENCY_MS=0",
                         "LATENCY_MS=-1",
                         "LATENCY_MS=nan",
                         "LATENCY_MS=inf",
                         "LATENCY_MS=0.1,x",
                         "LATENCY_MS=1e999",
                         "LATENCY_MS=0.1,0.1",
                         "ENERGY_MJ=0",
                         "ENERGY_MJ=-0.5",
                         "ENERGY_MJ='0.1 0.2'",
                         "SEED=x",
                         "SEED=-1",
                         "APQ_THREADS=0",
                         "APQ_THREADS=x",
                         "APQ_THREADS=-4",
                         "APQ_THREADS=3x",
                         "SHARDS=0",
                         "SHARDS=65",
                         "SHARDS=x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = make_tiny(out, sizeof out, bad[i]);
        char var[32];
        snprintf(var, sizeof var, "%.*s=", (int)strcspn(bad[i], "="), bad[i]);
        int ok = st == 2 && test_n_lines(out) == 1 && strstr(out, var) && !strstr(out, "apq-");
        if (!ok) fprintf(stderr, "  make %s: exit %d: %s", bad[i], st, out);
        CHECK(ok);
    }
    /* several budgets, blanks or commas, reach apq-search as one list */
    CHECK(make_tiny(out, sizeof out, "-n LATENCY_MS='0.05 0.06, 0.07'") == 0);
    CHECK(strstr(out, "apq-search") && strstr(out, "--latency-ms 0.05,0.06,0.07 "));
    /* the stage programs check the same when called directly */
    const char *b = test_build_dir();
    /* the sampling programs' --shard, --merge and --n */
    const char *bad_sample[] = {"--shard 0/2", "--shard 3/2",  "--shard 1/2x",
                                "--shard x",   "--merge 2000", "--merge 2 --shard 1/2",
                                "--n 5"};
    for (size_t i = 0; i < sizeof bad_sample / sizeof bad_sample[0]; i++) {
        int st =
            test_sh(0, out, sizeof out,
                    "APQ_QUIET=1 %s/apq-sample-quant --space supernet/spaces/tiny.ini --profile "
                    "profiles/tiny.ini --data d --supernet s --out o %s",
                    b, bad_sample[i]);
        char opt[32]; /* "--shard" */
        snprintf(opt, sizeof opt, "%.*s", (int)strcspn(bad_sample[i], " "), bad_sample[i]);
        int ok = st == 2 && test_n_lines(out) == 1 && strstr(out, opt);
        if (!ok) fprintf(stderr, "  apq-sample-quant %s: exit %d: %s", bad_sample[i], st, out);
        CHECK(ok);
    }
    const char *bad_search[] = {"--latency-ms 0",       "--latency-ms nan", "--latency-ms inf",
                                "--latency-ms '0.1 x'", "--energy-mj -0.5", "--energy-mj 0"};
    for (size_t i = 0; i < sizeof bad_search / sizeof bad_search[0]; i++) {
        int st =
            test_sh(0, out, sizeof out,
                    "APQ_QUIET=1 %s/apq-search --predictor p --lut l --out o %s", b, bad_search[i]);
        char opt[32]; /* "--latency-ms" */
        snprintf(opt, sizeof opt, "%.*s", (int)strcspn(bad_search[i], " "), bad_search[i]);
        int ok = st == 2 && test_n_lines(out) == 1 && strstr(out, opt);
        if (!ok) fprintf(stderr, "  apq-search %s: exit %d: %s", bad_search[i], st, out);
        CHECK(ok);
    }
    const char *threads[] = {"0", "x", "-4", "3x", "1025", " 2"};
    for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++) {
        int st =
            test_sh(0, out, sizeof out, "APQ_THREADS='%s' %s/apq-search --help", threads[i], b);
        int ok = st == 2 && test_n_lines(out) == 1 && strstr(out, "APQ_THREADS=") &&
                 strstr(out, "from 1 to 1024");
        if (!ok) fprintf(stderr, "  APQ_THREADS='%s': exit %d: %s", threads[i], st, out);
        CHECK(ok);
    }
    /* several latency budgets are several rows of the user's (the search alone) */
    snprintf(arg, sizeof arg,
             "APQ_QUIET=1 %s/apq-search --space supernet/spaces/tiny.ini --profile "
             "profiles/tiny.ini --predictor %s/tiny/predictor-quant.h5 --lut "
             "%s/tiny/bitfusion/lut.h5 --latency-ms '0.05, 0.06,0.07' --out %s/s.h5",
             b, runs, runs, test_tmpdir);
    int st = test_sh(0, out, sizeof out, "%s", arg);
    if (st) fprintf(stderr, "%s", out);
    CHECK(st == 0);
    snprintf(arg, sizeof arg, "%s/s.h5", test_tmpdir);
    hid_t f;
    if (h5_open_read(arg, "search", 1, &f) == APQ_OK) {
        double *bud;
        size_t n = 0;
        int32_t user[64] = {0};
        CHECK(h5_read_f64_alloc(f, "budget_latency_ms", &bud, &n) == APQ_OK && n <= 64);
        CHECK(h5_read_i32(f, "user_budget", 1, (hsize_t[]){n}, user) == APQ_OK);
        int mine = 0;
        for (size_t i = 0; i < n; i++)
            if (user[i]) mine += bud[i] == 0.05 || bud[i] == 0.06 || bud[i] == 0.07;
        CHECK(mine == 3);
        free(bud);
        h5_close(f);
    } else {
        CHECK(0);
    }
}

/* Two makes of one run folder at once: the second waits for the first (one
 * line says so), then finds its work done or redoes it whole; the artifacts
 * at the end agree with each other and no temporary file is left. */
TEST(pipeline_two_makes_at_once) {
    if (!tiny_tree()) return;
    static char out[1 << 16];
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/a.log", test_tmpdir);
    snprintf(b, sizeof b, "%s/b.log", test_tmpdir);
    int st = test_sh(0, out, sizeof out,
                     "m='make -s B=%s PROFILE=tiny RUNS=%s REPORTS=%s'; "
                     "$m LATENCY_MS=0.05 > %s 2>&1 & $m LATENCY_MS=0.06 > %s 2>&1; s2=$?; "
                     "wait $!; s1=$?; echo $s1 $s2",
                     test_build_dir(), runs, reports, a, b);
    CHECK(st == 0 && !strcmp(out, "0 0\n"));
    int waited = 0;
    const char *logs[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        CHECK(test_sh(0, out, sizeof out, "cat %s", logs[k]) == 0);
        waited += strstr(out, "is in use by another make") != NULL;
        CHECK(!strstr(out, "error"));
    }
    CHECK(waited == 1);
    /* the last one's budget runs through search, verify and the report */
    char p[1200];
    snprintf(p, sizeof p, "%s/tiny/bitfusion/search.h5", runs);
    hid_t f;
    double *bud = NULL, mine = 0;
    size_t n = 0;
    int32_t user[64] = {0};
    CHECK(h5_open_read(p, "search", 1, &f) == APQ_OK);
    CHECK(h5_read_f64_alloc(f, "budget_latency_ms", &bud, &n) == APQ_OK && n <= 64);
    CHECK(h5_read_i32(f, "user_budget", 1, (hsize_t[]){n}, user) == APQ_OK);
    h5_close(f);
    for (size_t i = 0; i < n; i++)
        if (user[i]) mine = bud[i];
    free(bud);
    CHECK(mine == 0.05 || mine == 0.06);
    char **sa, **va;
    size_t ns = 0, nv = 0;
    CHECK(h5_open_read(p, "search", 1, &f) == APQ_OK && h5_read_strings(f, "arch", &sa, &ns) == 0);
    h5_close(f);
    snprintf(p, sizeof p, "%s/tiny/bitfusion/verified.h5", runs);
    CHECK(h5_open_read(p, "verified", 1, &f) == APQ_OK &&
          h5_read_strings(f, "arch", &va, &nv) == 0);
    h5_close(f);
    CHECK(ns == nv && ns > 0);
    for (size_t i = 0; i < ns && i < nv; i++) CHECK(!strcmp(sa[i], va[i]));
    h5_free_strings(sa, ns);
    h5_free_strings(va, nv);
    CHECK(test_sh(0, out, sizeof out, "grep -c '| %g (yours) |' %s/tiny/bitfusion/README.md", mine,
                  reports) == 0);
    CHECK(test_sh(0, out, sizeof out, "find %s %s -name '*.tmp*' | wc -l", runs, reports) == 0 &&
          !strcmp(out, "0\n"));
    char arg[64];
    snprintf(arg, sizeof arg, "-n LATENCY_MS=%g", mine);
    CHECK(make_tiny(out, sizeof out, arg) == 0 && !strstr(out, "apq-"));
}

/* A new SEED, DATA_DIR, SCHEDULE or PREDICTOR reruns what reads it; after
 * `make SEED=2` every artifact and the report carry seed 2. Last of the
 * tests on the shared tree: it leaves that tree at seed 2. */
TEST(pipeline_inputs_noticed) {
    if (!tiny_tree()) return;
    static char out[1 << 16];
    char dir[700], arg[4096];
    /* another copy of the data (links to the same files): training and after rerun */
    snprintf(dir, sizeof dir, "%s/data", test_tmpdir);
    CHECK(test_sh(0, out, sizeof out,
                  "mkdir -p %s && ln -sf /usr/share/datasets/fashion-mnist/* %s", dir, dir) == 0);
    snprintf(arg, sizeof arg, "-n DATA_DIR=%s", dir);
    CHECK(make_tiny(out, sizeof out, arg) == 0);
    CHECK(strstr(out, "apq-train-supernet") && strstr(out, "apq-verify") &&
          strstr(out, "apq-report") && !strstr(out, "apq-build-lut"));
    CHECK(make_tiny(out, sizeof out, "-n SCHEDULE=ps") == 0);
    CHECK(strstr(out, "apq-train-supernet --space") != NULL);
    /* another predictor file: the search and after, not the training */
    snprintf(arg, sizeof arg, "-n PREDICTOR=%s/tiny/predictor-fp32.h5", runs);
    CHECK(make_tiny(out, sizeof out, arg) == 0);
    CHECK(strstr(out, "apq-search") && strstr(out, "apq-report") &&
          !strstr(out, "apq-train-supernet") && !strstr(out, "apq-transfer-predictor"));
    /* a dry run changes nothing: the plain make after it has nothing to do */
    CHECK(make_tiny(out, sizeof out, "-n") == 0);
    CHECK(!strstr(out, "apq-"));

    /* SEED=2 remakes every artifact with seed 2, and the report says so */
    int st = make_tiny(out, sizeof out, "SEED=2");
    if (st) fprintf(stderr, "%s", out);
    CHECK(st == 0);
    CHECK(strstr(out, "apq-train-supernet: phase") != NULL);
    const char *art[] = {"supernet.h5",         "samples-fp32.h5",      "predictor-fp32.h5",
                         "samples-quant.h5",    "predictor-quant.h5",   "bitfusion/lut.h5",
                         "bitfusion/search.h5", "bitfusion/verified.h5"};
    for (size_t i = 0; i < sizeof art / sizeof art[0]; i++) {
        snprintf(arg, sizeof arg, "%s/tiny/%s", runs, art[i]);
        long long seed = h5_seed(arg);
        if (seed != 2) fprintf(stderr, "  %s: seed %lld\n", arg, seed);
        CHECK(seed == 2);
    }
    snprintf(arg, sizeof arg, "%s/tiny/bitfusion/pareto.h5", reports);
    CHECK(h5_seed(arg) == 2);
    snprintf(arg, sizeof arg, "grep -c 'seed 2,' %s/tiny/bitfusion/README.md", reports);
    CHECK(test_sh(0, out, sizeof out, "%s", arg) == 0);
    CHECK(make_tiny(out, sizeof out, "-n SEED=2") == 0 && !strstr(out, "apq-"));
    CHECK(make_tiny(out, sizeof out, "-n") == 0 && strstr(out, "apq-train-supernet"));

    /* the report refuses artifacts of another seed, and inputs it cannot read */
    const char *b = test_build_dir();
    snprintf(arg, sizeof arg,
             "--verified %s/tiny/bitfusion/verified.h5 --supernet %s/tiny/supernet.h5 "
             "--predictor-quant %s/tiny/predictor-quant.h5 --profile tiny --device bitfusion "
             "--out-dir %s/rep",
             runs, runs, runs, test_tmpdir);
    CHECK(test_sh(0, out, sizeof out, "APQ_QUIET=1 %s/apq-report %s --seed 3", b, arg) == 1);
    CHECK(test_n_lines(out) == 1 && strstr(out, "verified.h5 was made with seed 2, not --seed 3"));
    CHECK(test_sh(0, out, sizeof out,
                  "APQ_QUIET=1 %s/apq-report %s --seed 2 --predictor-fp32 /no/p.h5", b, arg) == 1);
    CHECK(test_n_lines(out) == 1 && strstr(out, "/no/p.h5"));
    snprintf(dir, sizeof dir, "%s/rep/README.md", test_tmpdir);
    CHECK(access(dir, F_OK) != 0);
}

/* Shipped artifacts (scripts/pretrained.sh): a run packed with
 * `make pretrained-pack` is reused by a fresh run folder stage by stage (no
 * training, no sampling, the same bytes); a shipped file that fails its
 * checksum is made again with everything after it, and RETRAIN=1 makes all. */
TEST(pipeline_pretrained_reuse) {
    if (!tiny_tree()) return;
    static char out[1 << 16];
    char ship[700], arg[4096], a[1400], b[1400];
    snprintf(ship, sizeof ship, "%s/ship", test_tmpdir);
    snprintf(arg, sizeof arg, "PRETRAINED=%s pretrained-pack", ship);
    CHECK(make_tiny(out, sizeof out, arg) == 0);
    snprintf(a, sizeof a, "cd %s && sha256sum -c --quiet SHA256SUMS && grep -c . MANIFEST", ship);
    CHECK(test_sh(0, out, sizeof out, "%s", a) == 0 && atoi(out) == 4);

    char first[600];
    snprintf(first, sizeof first, "%s", runs);
    snprintf(runs, sizeof runs, "%s/runs2", test_tmpdir);
    snprintf(reports, sizeof reports, "%s/reports2", test_tmpdir);
    snprintf(arg, sizeof arg, "PRETRAINED=%s", ship);
    int st = make_tiny(out, sizeof out, arg);
    if (st) fprintf(stderr, "%s", out);
    CHECK(st == 0);
    int shipped = 0;
    for (const char *p = out; (p = strstr(p, "is the shipped")); p++) shipped++;
    CHECK(shipped == 3);
    CHECK(!strstr(out, "apq-train-supernet") && !strstr(out, "apq-sample") &&
          !strstr(out, "apq-train-predictor") && !strstr(out, "apq-transfer-predictor"));
    CHECK(strstr(out, "apq-verify") && strstr(out, "apq-report"));
    const char *art[] = {"supernet.h5", "predictor-fp32.h5", "predictor-quant.h5"};
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "cmp %s/tiny/%s %s/%s", runs, art[i], ship, art[i]);
        CHECK(test_sh(0, out, sizeof out, "%s", a) == 0);
    }
    CHECK(make_tiny(out, sizeof out, arg) == 0 && !strstr(out, "apq-") && !strstr(out, "shipped"));

    /* one byte of the shipped quantization-aware predictor changed: it and what follows */
    snprintf(a, sizeof a, "printf x | dd of=%s/predictor-quant.h5 bs=1 seek=3000 conv=notrunc",
             ship);
    CHECK(test_sh(0, out, sizeof out, "%s", a) == 0);
    snprintf(b, sizeof b, "-n PRETRAINED=%s", ship);
    CHECK(make_tiny(out, sizeof out, b) == 0);
    CHECK(strstr(out, "predictor-quant.h5 is missing or fails its checksum") &&
          strstr(out, "apq-sample-quant") && strstr(out, "apq-transfer-predictor") &&
          !strstr(out, "apq-train-supernet") && !strstr(out, "apq-sample-fp32"));
    snprintf(b, sizeof b, "-n PRETRAINED=%s RETRAIN=1", ship);
    CHECK(make_tiny(out, sizeof out, b) == 0);
    CHECK(strstr(out, "apq-train-supernet --space") && strstr(out, "apq-sample-fp32") &&
          !strstr(out, "shipped"));

    /* the supernet shipped alone (PACK=supernet): the predictors are made over it */
    snprintf(runs, sizeof runs, "%s", first);
    snprintf(b, sizeof b, "PRETRAINED=%s2 PACK=supernet pretrained-pack", ship);
    CHECK(make_tiny(out, sizeof out, b) == 0);
    snprintf(a, sizeof a, "cd %s2 && ls && grep -c . MANIFEST", ship);
    CHECK(test_sh(0, out, sizeof out, "%s", a) == 0 && strstr(out, "supernet.h5") &&
          !strstr(out, "predictor") && strstr(out, "\n2\n"));
    snprintf(runs, sizeof runs, "%s/runs3", test_tmpdir);
    snprintf(b, sizeof b, "-n PRETRAINED=%s2", ship);
    CHECK(make_tiny(out, sizeof out, b) == 0);
    CHECK(strstr(out, "ships no predictor-fp32.h5") && strstr(out, "apq-sample-fp32") &&
          strstr(out, "apq-train-predictor") && !strstr(out, "apq-train-supernet"));
    snprintf(runs, sizeof runs, "%s", first);
}
