/* apq-evaluate — the supernet's fixed subnets on the val and test splits.
 *
 * With --scratch-dir: OFA's central claim, checked (issue #3): three fixed
 * subnets (smallest, middle, largest) extracted from the supernet (BN
 * recalibrated) against the same subnets trained from scratch with the same
 * step budget (runs/<profile>/scratch/<name>.h5 from apq-train-supernet
 * --fixed); writes scratch-baseline.csv and scratch-baseline.md into --out-dir.
 * Without: five extracted subnets (smallest, q25, middle, q75, largest: the
 * same quantile of every elastic dimension) -> supernet-eval.{csv,md}.
 * `--print-arch NAME` only prints that subnet's arch string (for make). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../supernet/supernet.h"
#include "../util/csvio.h"
#include "cli.h"
#include "data.h"

#define N_NAMED 5
static const char *names[N_NAMED] = {"smallest", "q25", "middle", "q75", "largest"};
static const double quantile[N_NAMED] = {0, 0.25, 0.5, 0.75, 1};

/* Grid index q of the way from 0 to n-1, rounded half up. */
static int qidx(double q, int n) {
    return (int)(q * (n - 1) + 0.5);
}

/* The subnet at quantile q of every elastic dimension (resolution, depth,
 * kernel, mid channels); q = 0.5 is the middle grid point, 0 and 1 the
 * smallest and largest. */
static void arch_quantile(const struct space *s, double q, struct arch *a) {
    memset(a, 0, sizeof *a);
    a->res = (uint16_t)s->res[qidx(q, s->n_res)];
    for (int st = 0; st < s->n_stages; st++) {
        int lo = s->stage[st].min_depth, hi = s->stage[st].max_depth;
        a->depth[st] = (uint8_t)(lo + qidx(q, hi - lo + 1));
    }
    for (int i = 0; i < s->n_blocks; i++) {
        if (!arch_block_active(s, a, i)) continue;
        a->ks[i] = (uint8_t)s->kernels[qidx(q, s->n_kernels)];
        a->mid[i] = (uint16_t)(s->block[i].mid_min + s->mid_step * qidx(q, s->block[i].n_mid));
    }
}

/* Named subnet k of names[]: smallest and largest exactly as the supernet's. */
static void named_arch(const struct space *s, int k, struct arch *a) {
    if (k == 0)
        arch_smallest(s, 0, a);
    else if (k == N_NAMED - 1)
        arch_largest(s, 0, a);
    else
        arch_quantile(s, quantile[k], a);
}

/* val and test accuracy of subnet a of the supernet stored at path: APQ_OK,
 * or the status of a file that cannot be loaded or outputs that are not
 * finite (detail recorded). */
static int measure(const struct space *s, const char *path, const struct arch *a,
                   const struct dataset *train, const struct dataset *val,
                   const struct dataset *test, int calib, double *acc_val, double *acc_test) {
    struct supernet sn;
    struct sn_ctx c = {0};
    supernet_init(&sn, s, 0, 0);
    int rc = supernet_load(&sn, path);
    if (rc == 0) rc = sn_ctx_init(&c, &sn, 250, 1);
    if (rc == 0) {
        supernet_recalibrate(&sn, &c, a, NULL, train, calib);
        *acc_val = supernet_accuracy(&sn, &c, a, NULL, val, val->n);
        *acc_test = supernet_accuracy(&sn, &c, a, NULL, test, test->n);
        if (!isfinite(*acc_val) || !isfinite(*acc_test))
            rc = apq_set_error(APQ_ENONFINITE,
                               "%s: the subnet's outputs are not finite; hint: retrain it "
                               "(rerun make)",
                               path);
    }
    sn_ctx_free(&c);
    supernet_free(&sn);
    return rc;
}

/* A report pair OUT_DIR/BASE.csv (header row written) and OUT_DIR/BASE.md
 * (written to BASE.md.tmp.<pid>, renamed by report_commit). */
struct report {
    struct csvw w;
    FILE *md;
    char md_path[1100], tmp[1200];
};

static void report_open(struct report *r, const char *out_dir, const char *base,
                        const char *const *hdr, int n_hdr) {
    char csv[1100];
    int rc;
    snprintf(csv, sizeof csv, "%s/%s.csv", out_dir, base);
    snprintf(r->md_path, sizeof r->md_path, "%s/%s.md", out_dir, base);
    apq_tmp_path(r->tmp, sizeof r->tmp, r->md_path);
    if ((rc = csvw_open(&r->w, csv, NULL)) < 0) apq_die_status(rc);
    for (int j = 0; j < n_hdr; j++) csvw_str(&r->w, hdr[j]);
    csvw_end_row(&r->w);
    r->md = fopen(r->tmp, "w");
    if (!r->md) apq_die("%s: cannot write: %s", r->tmp, strerror(errno));
}

/* Remove both temporary files and exit with status rc's detail. */
static void report_fail(struct report *r, int rc) {
    csvw_abort(&r->w);
    fclose(r->md);
    remove(r->tmp);
    apq_die_status(rc);
}

static void report_commit(struct report *r) {
    int rc = csvw_commit(&r->w);
    if (rc < 0) report_fail(r, rc);
    if ((rc = apq_fclose(r->md, r->tmp)) < 0) {
        remove(r->tmp);
        apq_die_status(rc);
    }
    if (rename(r->tmp, r->md_path) != 0)
        apq_die("cannot rename %s to %s: %s", r->tmp, r->md_path, strerror(errno));
}

/* Named subnet k into a (its text form into buf, ARCH_STR_MAX bytes), and the
 * first three CSV columns of its row: subnet, arch, macs_m. Returns MMACs. */
static double report_subnet(struct report *r, const struct space *s, int k, struct arch *a,
                            char *buf) {
    named_arch(s, k, a);
    arch_to_string(s, a, buf, ARCH_STR_MAX);
    double macs = arch_macs(s, a) / 1e6;
    csvw_str(&r->w, names[k]);
    csvw_str(&r->w, buf);
    csvw_f64(&r->w, macs, "%.3f");
    return macs;
}

/* scratch-baseline.{csv,md}: smallest, middle and largest, extracted vs scratch. */
static void write_scratch_baseline(const struct space *s, const char *supernet, const char *scratch,
                                   const char *out_dir, const char *profile_path, long seed,
                                   int calib, const struct dataset *train,
                                   const struct dataset *val, const struct dataset *test) {
    const char *hdr[] = {"subnet",
                         "arch",
                         "macs_m",
                         "acc_val_supernet",
                         "acc_test_supernet",
                         "acc_val_scratch",
                         "acc_test_scratch",
                         "test_gap"};
    struct report r;
    report_open(&r, out_dir, "scratch-baseline", hdr, 8);
    FILE *f = r.md;
    struct csvw *w = &r.w;
    fprintf(f,
            "# Extracted subnets against the same subnets trained from scratch\n\n"
            "Profile `%s`, seed %ld, apq %s, %d threads, OpenBLAS kernel %s. Each scratch subnet "
            "trained alone for as many "
            "steps as the whole supernet schedule; both BN-recalibrated on %d train images. "
            "Accuracy in %%; `gap` = supernet − scratch on test.\n\n"
            "| subnet | MMACs | supernet val | supernet test | scratch val | scratch test | gap | "
            "arch |\n"
            "|---|---:|---:|---:|---:|---:|---:|---|\n",
            profile_path, seed, apq_git_rev(), apq_threads(), apq_blas_kernel(), calib);
    const int pick[3] = {0, 2, N_NAMED - 1}; /* smallest, middle, largest */
    for (int i = 0; i < 3; i++) {
        const int k = pick[i];
        struct arch a;
        char buf[ARCH_STR_MAX], path[1100];
        double macs = report_subnet(&r, s, k, &a, buf);
        snprintf(path, sizeof path, "%s/%s.h5", scratch, names[k]);
        double sv, st, cv, ct;
        int rc = measure(s, supernet, &a, train, val, test, calib, &sv, &st);
        if (rc == 0) rc = measure(s, path, &a, train, val, test, calib, &cv, &ct);
        if (rc < 0) report_fail(&r, rc);
        apq_log("%s: supernet val %.2f%% test %.2f%%, scratch val %.2f%% test %.2f%%", names[k],
                100 * sv, 100 * st, 100 * cv, 100 * ct);
        double v[5] = {100 * sv, 100 * st, 100 * cv, 100 * ct, 100 * (st - ct)};
        for (int j = 0; j < 5; j++) csvw_f64(w, v[j], "%.2f");
        csvw_end_row(w);
        fprintf(f, "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %+.2f | `%s` |\n", names[k], macs,
                v[0], v[1], v[2], v[3], v[4], buf);
    }
    report_commit(&r);
}

/* supernet-eval.{csv,md}: the five named subnets, extracted and BN-recalibrated. */
static void write_supernet_eval(const struct space *s, const char *supernet, const char *out_dir,
                                const char *profile_path, long seed, int calib,
                                const struct dataset *train, const struct dataset *val,
                                const struct dataset *test) {
    const char *hdr[] = {"subnet", "arch", "macs_m", "acc_val", "acc_test"};
    struct report r;
    report_open(&r, out_dir, "supernet-eval", hdr, 5);
    FILE *f = r.md;
    struct csvw *w = &r.w;
    fprintf(f,
            "# Subnets extracted from the supernet\n\n"
            "Supernet `%s`, profile `%s`, seed %ld, apq %s, %d threads, OpenBLAS kernel %s. Each "
            "subnet BN-recalibrated on %d "
            "train images; accuracy in %% on the whole val and test splits. q25/middle/q75: "
            "that quantile of every elastic dimension (resolution, depth, kernel, width).\n\n"
            "| subnet | MMACs | val | test | arch |\n|---|---:|---:|---:|---|\n",
            supernet, profile_path, seed, apq_git_rev(), apq_threads(), apq_blas_kernel(), calib);
    for (int k = 0; k < N_NAMED; k++) {
        struct arch a;
        char buf[ARCH_STR_MAX];
        double av, at, macs = report_subnet(&r, s, k, &a, buf);
        int rc = measure(s, supernet, &a, train, val, test, calib, &av, &at);
        if (rc < 0) report_fail(&r, rc);
        apq_log("%s: val %.2f%% test %.2f%% (%.2f MMACs)", names[k], 100 * av, 100 * at, macs);
        csvw_f64(w, 100 * av, "%.2f");
        csvw_f64(w, 100 * at, "%.2f");
        csvw_end_row(w);
        fprintf(f, "| %s | %.2f | %.2f | %.2f | `%s` |\n", names[k], macs, 100 * av, 100 * at, buf);
    }
    report_commit(&r);
}

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    const char *space_path = NULL, *profile_path = NULL, *data = NULL, *supernet = NULL,
               *scratch = NULL, *out_dir = NULL, *print = NULL;
    long seed = 1;
    struct cli_opt opts[] = {
        {"space", CLI_STR, &space_path, "search-space .ini"},
        {"profile", CLI_STR, &profile_path, "profile .ini, section [evaluate]"},
        {"seed", CLI_INT, &seed, "random seed of the run"},
        {"data", CLI_STR, &data, "folder with the four IDX files"},
        {"supernet", CLI_STR, &supernet, "the trained supernet.h5"},
        {"scratch-dir", CLI_STR, &scratch,
         "folder with smallest.h5, middle.h5, largest.h5 (omit: evaluate the supernet alone)"},
        {"out-dir", CLI_STR, &out_dir, "where scratch-baseline.{csv,md} (or supernet-eval.*) go"},
        {"print-arch", CLI_STR, &print,
         "print the arch string of smallest|q25|middle|q75|largest and exit"},
    };
    cli_parse(argc, argv, opts, 8,
              "evaluate the supernet's fixed subnets; with --scratch-dir, against subnets "
              "trained from scratch");
    cli_require("space", space_path);
    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    if (print) {
        for (int k = 0; k < N_NAMED; k++) {
            if (strcmp(print, names[k])) continue;
            struct arch a;
            char buf[ARCH_STR_MAX];
            named_arch(&s, k, &a);
            arch_to_string(&s, &a, buf, sizeof buf);
            printf("%s\n", buf);
            if (fflush(stdout) != 0 || ferror(stdout))
                apq_die("cannot write to the standard output: %s", strerror(errno));
            return 0;
        }
        fprintf(stderr, "%s: error: --print-arch takes smallest, q25, middle, q75 or largest\n",
                apq_prog);
        return 2;
    }
    cli_require("profile", profile_path);
    cli_require("data", data);
    cli_require("supernet", supernet);
    cli_require("out-dir", out_dir);
    struct profile *p = profile_load(profile_path, "evaluate");
    const int IMAGES = 10000000; /* more than any IDX set holds */
    int calib = (int)profile_int(p, "calib_images", 2000, 1, IMAGES);
    int n_train = (int)profile_int(p, "train_images", 0, 0, IMAGES),
        n_val = (int)profile_int(p, "val_images", 0, 0, IMAGES),
        n_test = (int)profile_int(p, "test_images", 0, 0, IMAGES);
    profile_finish(p);
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/supernet-eval.csv", out_dir);
    cli_require_writable(probe);
    struct dataset train, val, test;
    stage_load_data(data, &s, space_path, n_train, n_val, n_test, &train, &val, &test);

    if (scratch)
        write_scratch_baseline(&s, supernet, scratch, out_dir, profile_path, seed, calib, &train,
                               &val, &test);
    else
        write_supernet_eval(&s, supernet, out_dir, profile_path, seed, calib, &train, &val, &test);
    stage_free_data(&train, &val, &test);
    return 0;
}
