/* apq-report — the per-device report (DESIGN.md §1, §6): pareto.csv,
 * pareto.h5, pareto.png (gnuplot) and README.md in reports/<profile>/<device>/.
 * Every searched budget's verified subnet is one row, sorted by latency; the
 * column on_front marks the rows no other row beats on both latency and
 * val accuracy. With --exports (apq-export's exports.csv) each row also gets
 * the exported integer model's test accuracy and its static memory. Columns
 * are documented in reports/README.md. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../search/search.h"
#include "../util/csvio.h"
#include "../util/h5.h"
#include "cli.h"

#define NC 14
static const char *num_cols[NC] = {
    "budget_latency_ms", "budget_energy_mj", "latency_ms",   "energy_mj",  "macs_m",
    "weight_kb",         "acc_pred",         "acc_pred_std", "acc_val",    "acc_test",
    "user_budget",       "acc_test_int",     "flash_kb",     "peak_ram_kb"};
/* columns C_BUD..C_USER come from verified.h5, C_TINT..C_RAM from exports.csv
 * (NaN without --exports) */
// clang-format off
enum { C_BUD, C_BUDE, C_LAT, C_EN, C_MACS, C_WKB, C_PRED, C_SD, C_VAL, C_TEST, C_USER,
       C_TINT, C_FLASH, C_RAM };
// clang-format on

struct table {
    size_t n;
    char **arch;
    double *col[NC];
    int *front;
    int *order; /* rows by ascending latency */
};

/* The artifact's `seed` attribute must be the run's seed: a report never
 * labels one seed's artifacts with another (make reruns them on a new SEED). */
static void check_seed(hid_t f, const char *path, long seed) {
    int64_t v;
    int rc = h5_attr_get_i64(f, "seed", &v);
    if (rc < 0) apq_die_status(rc);
    if (v != seed)
        apq_die("%s was made with seed %lld, not --seed %ld; hint: make SEED=%ld remakes it", path,
                (long long)v, seed, seed);
}

static void read_verified(const char *path, long seed, struct table *t) {
    hid_t f;
    int rc = h5_open_read(path, "verified", 1, &f);
    if (rc < 0) apq_die_status(rc);
    check_seed(f, path, seed);
    if ((rc = h5_read_strings(f, "arch", &t->arch, &t->n)) < 0) apq_die_status(rc);
    if (h5_exists(f, "acc_pred_std") != 1)
        apq_die("%s: no acc_pred_std column (the predictor's spread): made by an apq-verify "
                "older than the ensemble predictor; hint: delete it and run make",
                path);
    hsize_t dn = t->n;
    for (int j = 0; j < NC; j++) {
        t->col[j] = apq_xcalloc(t->n, sizeof(double));
        if (j > C_USER) {
            for (size_t i = 0; i < t->n; i++) t->col[j][i] = NAN;
        } else if (j == C_USER) {
            int32_t *u = apq_xcalloc(t->n, sizeof(int32_t));
            if ((rc = h5_read_i32(f, num_cols[j], 1, &dn, u)) < 0) apq_die_status(rc);
            for (size_t i = 0; i < t->n; i++) t->col[j][i] = u[i];
            free(u);
        } else if ((rc = h5_read_f64(f, num_cols[j], 1, &dn, t->col[j])) < 0) {
            apq_die_status(rc);
        }
    }
    h5_close(f);
    for (int j = C_PRED; j <= C_TEST; j++) /* fractions -> percent */
        for (size_t i = 0; i < t->n; i++) t->col[j][i] *= 100;
    t->front = apq_xcalloc(t->n, sizeof(int));
    t->order = apq_xcalloc(t->n, sizeof(int));
    int *idx = apq_xcalloc(t->n, sizeof(int));
    int nf = pareto_front(t->col[C_LAT], t->col[C_VAL], (int)t->n, idx);
    for (int i = 0; i < nf; i++) t->front[idx[i]] = 1;
    free(idx);
    for (size_t i = 0; i < t->n; i++) t->order[i] = (int)i;
    for (size_t i = 1; i < t->n; i++) /* insertion sort by latency: n is small */
        for (size_t j = i; j > 0 && t->col[C_LAT][t->order[j]] < t->col[C_LAT][t->order[j - 1]];
             j--) {
            int tmp = t->order[j];
            t->order[j] = t->order[j - 1];
            t->order[j - 1] = tmp;
        }
}

/* The exported models' figures (apq-export's exports.csv, docs/formats.md
 * §20) into the table: row i of the CSV must be verified row i (the same
 * arch). acc_test_int in percent; flash and peak RAM (the reference build's
 * static RAM: activation arena and unpack scratch) in KiB. */
static void read_exports(const char *path, struct table *t) {
    struct csv_table c;
    int rc = csv_read_table(path, &c);
    if (rc < 0) apq_die_status(rc);
    const char *names[4] = {"arch", "acc_test_int", "flash_bytes", "ram_bytes"};
    int col[4];
    for (int k = 0; k < 4; k++)
        if ((col[k] = csv_table_col(&c, names[k])) < 0)
            apq_die("%s: no column %s; hint: delete it and run make export", path, names[k]);
    if ((size_t)c.n_rows - 1 != t->n)
        apq_die("%s: %d rows for %zu verified points; hint: delete it and run make", path,
                c.n_rows - 1, t->n);
    for (size_t i = 0; i < t->n; i++) {
        char **r = c.cell[i + 1];
        if (strcmp(r[col[0]], t->arch[i]))
            apq_die("%s: row %zu is %s, not the verified %s; hint: delete it and run make", path, i,
                    r[col[0]], t->arch[i]);
        t->col[C_TINT][i] = 100 * atof(r[col[1]]);
        t->col[C_FLASH][i] = atof(r[col[2]]) / 1024;
        t->col[C_RAM][i] = atof(r[col[3]]) / 1024;
    }
    csv_table_free(&c);
}

static void write_csv(const char *path, const struct table *t) {
    struct csvw w;
    int rc = csvw_open(&w, path, NULL);
    if (rc < 0) apq_die_status(rc);
    csvw_str(&w, "arch");
    for (int j = 0; j < NC; j++) csvw_str(&w, num_cols[j]);
    csvw_str(&w, "on_front");
    csvw_end_row(&w);
    for (size_t r = 0; r < t->n; r++) {
        int i = t->order[r];
        csvw_str(&w, t->arch[i]);
        for (int j = 0; j < NC; j++) {
            if (j == C_USER)
                csvw_i64(&w, (long long)t->col[j][i]);
            else
                csvw_f64(&w, t->col[j][i], j >= C_PRED ? "%.2f" : "%.6g");
        }
        csvw_i64(&w, t->front[i]);
        csvw_end_row(&w);
    }
    if ((rc = csvw_commit(&w)) < 0) apq_die_status(rc);
}

static void write_h5(const char *path, const struct table *t, long seed, const char *profile,
                     const char *device) {
    hid_t f;
    int rc = h5_create(path, &f);
    if (rc < 0) apq_die_status(rc);
    hsize_t dn = t->n;
    const char **arch = apq_xcalloc(t->n, sizeof(char *));
    double *v = apq_xcalloc(t->n, sizeof(double));
    int32_t *fr = apq_xcalloc(t->n, sizeof(int32_t));
    for (size_t r = 0; r < t->n; r++) {
        arch[r] = t->arch[t->order[r]];
        fr[r] = t->front[t->order[r]];
    }
    rc = h5_write_provenance(f, "pareto", 1, (uint64_t)seed, profile);
    if (rc == 0) rc = h5_attr_set_str(f, "device", device);
    if (rc == 0) rc = h5_write_strings(f, "arch", arch, t->n);
    for (int j = 0; j < NC && rc == 0; j++) {
        for (size_t r = 0; r < t->n; r++) v[r] = t->col[j][t->order[r]];
        if (j != C_USER) {
            rc = h5_write_f64(f, num_cols[j], 1, &dn, v);
            continue;
        }
        for (size_t r = 0; r < t->n; r++) fr[r] = (int32_t)v[r];
        rc = h5_write_i32(f, num_cols[j], 1, &dn, fr);
        for (size_t r = 0; r < t->n; r++) fr[r] = t->front[t->order[r]];
    }
    if (rc == 0) rc = h5_write_i32(f, "on_front", 1, &dn, fr);
    free(arch);
    free(v);
    free(fr);
    if (rc < 0) {
        h5_abort(f, path);
        apq_die_status(rc);
    }
    if ((rc = h5_commit(f, path)) < 0) apq_die_status(rc);
}

/* Accuracy against latency and against energy: predicted, val and test. */
static void write_plot(const char *dir, const struct table *t, const char *device) {
    char dat[1100], gp[1100], png[1100], tmp[1200];
    long pid = (long)getpid(); /* temporary names unique per process */
    snprintf(dat, sizeof dat, "%s/.pareto.dat.tmp.%ld", dir, pid);
    snprintf(gp, sizeof gp, "%s/.pareto.gp.tmp.%ld", dir, pid);
    snprintf(png, sizeof png, "%s/pareto.png", dir);
    apq_tmp_path(tmp, sizeof tmp, png);
    FILE *f = fopen(dat, "w");
    if (!f) apq_die("%s: cannot write: %s", dat, strerror(errno));
    for (size_t r = 0; r < t->n; r++) {
        int i = t->order[r];
        fprintf(f, "%.6g %.6g %.4f %.4f %.4f %.4f\n", t->col[C_LAT][i], t->col[C_EN][i],
                t->col[C_PRED][i], t->col[C_VAL][i], t->col[C_TEST][i], t->col[C_SD][i]);
    }
    int rc = apq_fclose(f, dat);
    if (rc < 0) {
        remove(dat);
        apq_die_status(rc);
    }
    f = fopen(gp, "w");
    if (!f) apq_die("%s: cannot write: %s", gp, strerror(errno));
    fprintf(f,
            "set terminal pngcairo size 1200,500 font 'sans,10'\nset output '%s'\n"
            "set multiplot layout 1,2 title 'apq Pareto points on %s'\n"
            "set grid\nset key bottom right\nset ylabel 'top-1 accuracy (%%)'\n"
            "set xlabel 'latency (ms)'\n"
            "plot '%s' u 1:3:6 w yerrorlines pt 6 t 'predicted (± ensemble sd)', "
            "'' u 1:4 w lp pt 7 t 'val (QAT)', '' u 1:5 w lp pt 5 t 'test (QAT)'\n"
            "set xlabel 'energy (mJ)'\n"
            "plot '%s' u 2:3:6 w yerrorbars pt 6 t 'predicted (± ensemble sd)', "
            "'' u 2:4 w p pt 7 t 'val (QAT)', "
            "'' u 2:5 w p pt 5 t 'test (QAT)'\nunset multiplot\n",
            tmp, device, dat, dat);
    if ((rc = apq_fclose(f, gp)) < 0) {
        remove(dat);
        remove(gp);
        apq_die_status(rc);
    }
    cli_run_gnuplot(gp, tmp, png, dat);
}

/* Numeric attributes of an artifact for the README, formatted "%.4g" after
 * scaling (integer attributes as they are). The file must be readable and of
 * its kind and version, and every attribute present: a file that fails to
 * read stops the report (exit 1), never "n/a". */
static void attr_texts(const char *path, const char *kind, int version, long seed, int n,
                       const char *const *names, double scale, char (*buf)[32]) {
    hid_t f;
    int rc = h5_open_read(path, kind, version, &f);
    if (rc < 0) apq_die_status(rc);
    if (seed >= 0) check_seed(f, path, seed);
    for (int i = 0; i < n; i++) {
        double v;
        int64_t iv;
        if (h5_attr_get_f64(f, names[i], &v) == APQ_OK)
            snprintf(buf[i], 32, "%.4g", v * scale);
        else if ((rc = h5_attr_get_i64(f, names[i], &iv)) == APQ_OK)
            snprintf(buf[i], 32, "%lld", (long long)iv);
        else
            apq_die_status(rc);
    }
    h5_close(f);
}

struct inputs {
    const char *verified, *exports, *supernet, *pred_fp32, *pred_quant, *out_dir, *profile, *device;
    long seed;
    char a[12][32]; /* the stages' figures for the README (read_summaries) */
};

/* Read the figures the README states, before anything is written:
 * a[0..1] supernet; a[2..5] fp32 predictor rmse, tau, n_held_out, ensemble;
 * a[6..11] quant predictor rmse, tau, scratch rmse, scratch tau, n_held_out, ensemble. */
static void read_summaries(struct inputs *in) {
    static const char *acc[2] = {"acc_val_largest", "acc_val_smallest"},
                      *fp[4] = {"rmse", "kendall_tau", "n_held_out", "ensemble"},
                      *q[6] = {"rmse",       "kendall_tau", "scratch_rmse", "scratch_kendall_tau",
                               "n_held_out", "ensemble"};
    attr_texts(in->supernet, "supernet", 1, in->seed, 2, acc, 100, in->a);
    /* The one figure that may legitimately not exist: with PREDICTOR= the quant
     * predictor comes from another run, this run made no fp32 predictor, and
     * make passes no --predictor-fp32. (The reused predictor keeps its own
     * run's seed, so its seed is not checked.) */
    if (in->pred_fp32)
        attr_texts(in->pred_fp32, "predictor", 2, in->seed, 4, fp, 1, in->a + 2);
    else
        for (int i = 2; i < 6; i++) snprintf(in->a[i], 32, "n/a");
    attr_texts(in->pred_quant, "predictor", 2, -1, 6, q, 1, in->a + 6);
}

/* Mean, min and max of acc_pred - acc_val over the rows, in points. */
static void pred_bias(const struct table *t, double *mean, double *lo, double *hi) {
    *mean = 0, *lo = INFINITY, *hi = -INFINITY;
    for (size_t i = 0; i < t->n; i++) {
        double d = t->col[C_PRED][i] - t->col[C_VAL][i];
        *mean += d / (double)t->n;
        *lo = d < *lo ? d : *lo;
        *hi = d > *hi ? d : *hi;
    }
}

static void write_readme(const struct inputs *in, const struct table *t) {
    char path[1100], tmp[1200];
    snprintf(path, sizeof path, "%s/README.md", in->out_dir);
    apq_tmp_path(tmp, sizeof tmp, path);
    const char(*a)[32] = in->a;
    FILE *f = fopen(tmp, "w");
    if (!f) apq_die("%s: cannot write: %s", tmp, strerror(errno));
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fprintf(f, "# apq report: %s, profile %s\n\n", in->device, in->profile);
    fprintf(f,
            "Made by apq %s on %s; seed %ld, %d threads, OpenBLAS kernel %s. Columns and units: "
            "[reports/README.md](../../README.md).\n\n",
            apq_git_rev(), date, in->seed, apq_threads(), apq_blas_kernel());
    fprintf(f, "## Settings and quality of each stage\n\n| what | value |\n|---|---|\n");
    fprintf(f, "| device | `devices/%s.ini` |\n| profile | `profiles/%s.ini` |\n", in->device,
            in->profile);
    fprintf(
        f, "| supernet val accuracy, largest / smallest subnet (BN recalibrated) | %s%% / %s%% |\n",
        a[0], a[1]);
    fprintf(f,
            "| fp32 predictor (ensemble of %s), RMSE (points) / Kendall's tau on %s held-out "
            "samples | %s / %s%s |\n",
            a[5], a[4], a[2], a[3],
            in->pred_fp32 ? "" : " (reused quant predictor: this run made none)");
    fprintf(f, "| quant predictor | `%s` |\n", in->pred_quant);
    fprintf(f,
            "| quant predictor with transfer (ensemble of %s), RMSE / tau on %s held-out samples "
            "| %s / %s |\n",
            a[11], a[10], a[6], a[7]);
    fprintf(f, "| quant predictor from scratch, RMSE / tau, same split | %s / %s |\n\n", a[8],
            a[9]);
    fprintf(f,
            "## Pareto points\n\nOne row per latency budget of the sweep: the subnet the search "
            "chose, QAT-finetuned and measured. `on_front` marks rows no other row beats on both "
            "latency and val accuracy. Accuracy in %%; `pred sd` is the spread (standard "
            "deviation) of the predictor ensemble's members.\n\n");
    fprintf(f,
            "| budget ms | latency ms | energy mJ | MMACs | weights KiB | pred | pred sd | val | "
            "test | test int | flash KiB | RAM KiB | on_front | arch |\n");
    fprintf(f, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|---|\n");
    for (size_t r = 0; r < t->n; r++) {
        int i = t->order[r];
        fprintf(f,
                "| %.4g%s | %.4g | %.4g | %.2f | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f | "
                "%.1f | %s | `%s` |\n",
                t->col[C_BUD][i], t->col[C_USER][i] ? " (yours)" : "", t->col[C_LAT][i],
                t->col[C_EN][i], t->col[C_MACS][i], t->col[C_WKB][i], t->col[C_PRED][i],
                t->col[C_SD][i], t->col[C_VAL][i], t->col[C_TEST][i], t->col[C_TINT][i],
                t->col[C_FLASH][i], t->col[C_RAM][i], t->front[i] ? "yes" : "", t->arch[i]);
    }
    double bias, lo, hi;
    pred_bias(t, &bias, &lo, &hi);
    if (t->n > 0)
        fprintf(f,
                "\nPredicted minus measured: the mean of `acc_pred − acc_val` over the %zu rows is "
                "%+.2f points (min %+.2f, max %+.2f).\n",
                t->n, bias, lo, hi);
    fprintf(f, "\n![accuracy against latency and energy](pareto.png)\n\n"
               "Files: `pareto.csv` and `pareto.h5` hold the same table; `pareto.png` the plot.\n");
    int rc = apq_fclose(f, tmp);
    if (rc < 0) {
        remove(tmp);
        apq_die_status(rc);
    }
    if (rename(tmp, path) != 0) apq_die("cannot rename %s to %s: %s", tmp, path, strerror(errno));
}

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    struct inputs in = {.seed = 1};
    struct cli_opt opts[] = {
        {"verified", CLI_STR, &in.verified, "verified.h5 from apq-verify"},
        {"exports", CLI_STR, &in.exports,
         "exports.csv from apq-export (the integer models' columns; omitted: NaN)"},
        {"supernet", CLI_STR, &in.supernet, "supernet.h5 (for its training summary)"},
        {"predictor-fp32", CLI_STR, &in.pred_fp32,
         "predictor-fp32.h5 (its metrics; omit when the quant predictor was reused)"},
        {"predictor-quant", CLI_STR, &in.pred_quant, "predictor-quant.h5 (for its metrics)"},
        {"profile", CLI_STR, &in.profile, "profile name"},
        {"device", CLI_STR, &in.device, "device name"},
        {"seed", CLI_INT, &in.seed, "seed of the run"},
        {"out-dir", CLI_STR, &in.out_dir, "report folder (reports/<profile>/<device>)"},
    };
    cli_parse(argc, argv, opts, 9, "write the Pareto report");
    cli_require("verified", in.verified);
    cli_require("supernet", in.supernet);
    cli_require("predictor-quant", in.pred_quant);
    cli_require("out-dir", in.out_dir);
    cli_require("profile", in.profile);
    cli_require("device", in.device);
    struct table t;
    read_verified(in.verified, in.seed, &t);
    if (in.exports) read_exports(in.exports, &t);
    read_summaries(&in); /* every input read before any output is replaced */
    int rc = cli_mkdirs(in.out_dir);
    if (rc < 0) apq_die_status(rc);
    char path[1100];
    /* the plot first: the largest file, by another program, the likeliest to
     * fail on a full disk, and then before any other file has been replaced */
    write_plot(in.out_dir, &t, in.device);
    snprintf(path, sizeof path, "%s/pareto.csv", in.out_dir);
    write_csv(path, &t);
    snprintf(path, sizeof path, "%s/pareto.h5", in.out_dir);
    write_h5(path, &t, in.seed, in.profile, in.device);
    write_readme(&in, &t); /* last: it is the make target */
    apq_log("report written to %s (%zu points)", in.out_dir, t.n);
    h5_free_strings(t.arch, t.n);
    for (int j = 0; j < NC; j++) free(t.col[j]);
    free(t.front);
    free(t.order);
    return 0;
}
