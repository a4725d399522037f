/* test_pipeline_export.c — make export on the tiny pipeline (issue 15): every
 * verified row as an integer-only model, its standalone C built with cc alone
 * and checked against the library bit for bit; make export ARCH= for a report
 * point and for a subnet the search did not choose; the refusals. Runs after
 * tests/test_pipeline.c (file order), reusing pipeline_tiny_end_to_end's tree. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "../quant/qmodel.h"
#include "../stages/data.h"
#include "../supernet/supernet.h"
#include "../util/csvio.h"
#include "../util/h5.h"

static char runs[600], reports[600];

static int make_tiny(char *out, size_t n, const char *extra) {
    return test_make_tiny(out, n, runs, reports, extra);
}

/* Row 0's exported C (model.h, model.c, main.c beside model.h5) compiled with
 * cc alone, run on the test split: the int32 logits of the first 16 images
 * are the library's integer path's (qmodel_run) bit for bit, and its accuracy
 * line is exports.csv's acc_test_int on the same test_images. */
static void check_emitted_c(const struct qmodel *m, const char *acc_int, const char *n_test) {
    static char out[1 << 16];
    const int n = atoi(n_test);
    int st = test_sh(0, out, sizeof out,
                     "cd %s/tiny/bitfusion/models/0 && cc -std=c11 -O2 -Wall -Wextra -Werror -o "
                     "%s/model main.c model.c",
                     reports, test_tmpdir);
    if (st) fprintf(stderr, "%s", out);
    CHECK(st == 0);
    CHECK(test_sh(0, out, sizeof out,
                  "%s/model /usr/share/datasets/fashion-mnist --logits 16 --images %d", test_tmpdir,
                  n) == 0);
    struct dataset all, test;
    CHECK(idx_load_dir("/usr/share/datasets/fashion-mnist", &all, &test) == APQ_OK);
    void *work = aligned_alloc(64, (qmodel_work_bytes(m) + 63) / 64 * 64);
    const char *s = out;
    int mismatches = 0;
    for (int i = 0; i < 16; i++) {
        int32_t a[1000];
        qmodel_run(m, test.images + (size_t)i * test.h * test.w, a, work, 0);
        for (int k = 0; k < m->n_classes; k++) {
            char *end;
            long v = strtol(s, &end, 10);
            mismatches += end == s || v != a[k];
            s = end;
        }
    }
    CHECK(mismatches == 0);
    long hits = -1, total = -1;
    const char *line = strstr(s, "accuracy ");
    CHECK(line && sscanf(line, "accuracy %*f (%ld/%ld)", &hits, &total) == 2);
    fprintf(stderr, "  row 0's model.c: %s", line ? line : "no accuracy line\n");
    CHECK(total == n && n > 0 && fabs((double)hits / n - atof(acc_int)) < 5e-7);
    free(work);
    dataset_free(&all), dataset_free(&test);
}

/* make export on the tiny run: one integer model per verified row, measured
 * against its fake-quantized subnet on the test images; the figures in
 * exports.csv are those of model.h5, which loads and runs; row 0's model.c
 * compiles with cc alone and gives the library's logits; a verified.h5
 * without subnets is refused with one line. */
TEST(pipeline_tiny_export) {
    if (!test_tiny_tree(runs, sizeof runs, reports, sizeof reports)) return;
    static char out[1 << 16];
    int st = make_tiny(out, sizeof out, "export");
    if (st) fprintf(stderr, "%s", out);
    CHECK(st == 0);
    char p[1400];
    snprintf(p, sizeof p, "%s/tiny/bitfusion/models/exports.csv", reports);
    struct csv_table t;
    if (csv_read_table(p, &t) != APQ_OK) {
        CHECK(0);
        return;
    }
    snprintf(p, sizeof p, "%s/tiny/bitfusion/verified.h5", runs);
    hid_t f;
    char **archs = NULL;
    size_t n = 0;
    CHECK(h5_open_read(p, "verified", 1, &f) == APQ_OK);
    CHECK(h5_read_strings(f, "arch", &archs, &n) == APQ_OK);
    h5_free_strings(archs, n);
    h5_close(f);
    CHECK(n > 0 && t.n_rows - 1 == (int)n);
    int c_fake = csv_table_col(&t, "acc_test_fake"), c_int = csv_table_col(&t, "acc_test_int"),
        c_ag = csv_table_col(&t, "top1_agreement"), c_fl = csv_table_col(&t, "flash_bytes");
    CHECK(c_fake >= 0 && c_int >= 0 && c_ag >= 0 && c_fl >= 0);
    for (int r = 1; r < t.n_rows && c_fl >= 0; r++) {
        double fake = atof(t.cell[r][c_fake]), in = atof(t.cell[r][c_int]);
        CHECK(fake > 0.3 && fabs(fake - in) <= 0.05 && atof(t.cell[r][c_ag]) >= 0.9);
        snprintf(p, sizeof p, "%s/tiny/bitfusion/models/%d/model.h5", reports, r - 1);
        struct qmodel m;
        CHECK(qmodel_load(p, &m) == APQ_OK);
        size_t flash, ram;
        qmodel_memory(&m, &flash, &ram);
        CHECK((long long)flash == atoll(t.cell[r][c_fl]));
        if (r == 1)
            check_emitted_c(&m, t.cell[r][c_int], t.cell[r][csv_table_col(&t, "test_images")]);
        qmodel_free(&m);
    }
    csv_table_free(&t);
    /* a verified.h5 of old, without subnets */
    const char *b = test_build_dir();
    snprintf(
        p, sizeof p,
        "APQ_QUIET=1 %s/apq-export --space supernet/spaces/tiny.ini --profile profiles/tiny.ini "
        "--data /usr/share/datasets/fashion-mnist --verified %s/tiny/bitfusion/search.h5 "
        "--out-dir %s/x",
        b, runs, test_tmpdir);
    CHECK(test_sh(0, out, sizeof out, "%s", p) == 1 && test_n_lines(out) == 1 &&
          strstr(out, "search.h5"));
}

/* make export ARCH=: a report point is its verified row's subnet (the same
 * integer model, no QAT); another subnet is QAT-finetuned as verify does and
 * exported the same way; a bad arch, an fp32 arch and a malformed ARCH fail
 * with one line, nothing written. */
TEST(pipeline_tiny_export_arch) {
    if (!test_tiny_tree(runs, sizeof runs, reports, sizeof reports)) return;
    static char out[1 << 16];
    char p[2200], arg[4000], row0[ARCH_STR_MAX] = "";
    struct csv_table t;
    snprintf(p, sizeof p, "%s/tiny/bitfusion/models/exports.csv", reports);
    if (make_tiny(out, sizeof out, "export") != 0 || csv_read_table(p, &t) != APQ_OK) {
        CHECK(0);
        return;
    }
    snprintf(row0, sizeof row0, "%s", t.cell[1][csv_table_col(&t, "arch")]);
    const double int0 = atof(t.cell[1][csv_table_col(&t, "acc_test_int")]);
    csv_table_free(&t);
    /* a report point: no QAT, the row's model */
    snprintf(arg, sizeof arg, "export ARCH=%s", row0);
    int st = make_tiny(out, sizeof out, arg);
    CHECK(st == 0 && !strstr(out, "not a report point"));
    snprintf(p, sizeof p, "%s/tiny/bitfusion/models/%s/exports.csv", reports, row0);
    CHECK(csv_read_table(p, &t) == APQ_OK && t.n_rows == 2);
    if (t.n_rows == 2) CHECK(atof(t.cell[1][csv_table_col(&t, "acc_test_int")]) == int0);
    csv_table_free(&t);
    /* the same from another folder, with a relative output folder */
    const char *b = test_build_dir();
    char bin[1200];
    snprintf(bin, sizeof bin, "%s%s%s", b[0] == '/' ? "" : APQ_SRC_DIR, b[0] == '/' ? "" : "/", b);
    snprintf(arg, sizeof arg,
             "cd %s && APQ_QUIET=1 %s/apq-export --space %s/supernet/spaces/tiny.ini --profile "
             "%s/profiles/tiny.ini --data /usr/share/datasets/fashion-mnist --supernet "
             "%s/tiny/supernet.h5 --verified %s/tiny/bitfusion/verified.h5 --arch %s --out-dir rel",
             test_tmpdir, bin, APQ_SRC_DIR, APQ_SRC_DIR, runs, runs, row0);
    CHECK(test_sh(0, out, sizeof out, "%s", arg) == 0);
    snprintf(p, sizeof p, "%s/rel/model.c", test_tmpdir);
    CHECK(access(p, F_OK) == 0);
    /* another subnet of the tiny space, all blocks at 6 bits */
    struct space s;
    struct arch a;
    CHECK(space_load("supernet/spaces/tiny.ini", &s) == APQ_OK);
    arch_largest(&s, 6, &a);
    char other[ARCH_STR_MAX];
    arch_to_string(&s, &a, other, sizeof other);
    CHECK(strcmp(other, row0) != 0);
    snprintf(arg, sizeof arg, "export ARCH=%s", other);
    st = make_tiny(out, sizeof out, arg);
    if (st) fprintf(stderr, "%s", out);
    CHECK(st == 0 && strstr(out, "not a report point"));
    snprintf(p, sizeof p, "%s/tiny/bitfusion/models/%s/exports.csv", reports, other);
    CHECK(csv_read_table(p, &t) == APQ_OK && t.n_rows == 2);
    if (t.n_rows == 2) {
        const double fake = atof(t.cell[1][csv_table_col(&t, "acc_test_fake")]),
                     in = atof(t.cell[1][csv_table_col(&t, "acc_test_int")]);
        CHECK(fake > 0.3 && fabs(fake - in) <= 0.05);
    }
    csv_table_free(&t);
    snprintf(p, sizeof p, "%s/tiny/bitfusion/models/%s/model.c", reports, other);
    CHECK(access(p, F_OK) == 0);
    /* refusals: an arch outside the space, an fp32 arch, a malformed ARCH */
    arch_largest(&s, 0, &a);
    char fp32[ARCH_STR_MAX];
    arch_to_string(&s, &a, fp32, sizeof fp32);
    const char *bad[][2] = {{"r12_k9m8q8888", "ARCH=r12_k9m8q8888: bad arch"},
                            {fp32, "an fp32 subnet"},
                            {"'r12 k3'", "one word"}};
    for (int i = 0; i < 3; i++) { /* make's status 2 for a failed stage and for a bad setting */
        snprintf(arg, sizeof arg, "export ARCH=%s", bad[i][0]);
        st = make_tiny(out, sizeof out, arg);
        CHECK(st == 2 && strstr(out, bad[i][1]));
        snprintf(p, sizeof p, "%s/tiny/bitfusion/models/%s", reports, bad[i][0]);
        if (i < 2) CHECK(access(p, F_OK) != 0);
    }
}
