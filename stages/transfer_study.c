/* apq-transfer-study — APQ's predictor-transfer claim re-measured (issue 14; make transfer-study).
 *
 *   apq-transfer-study --space S --profile P --seed N --samples runs/<p>/transfer/samples-quant.h5
 *                      --init runs/<p>/predictor-fp32.h5 --out-dir reports/<p>/transfer
 *   apq-transfer-study --profile P --print-samples   the [transfer-study] samples count (for make)
 *
 * APQ (reference/apq.md §4) trains the quantization-aware predictor by
 * transfer from the fp32 one, for sample efficiency; issue 14 states the
 * claim as "a quarter of the quantized samples or fewer". Here a fixed seeded set of held_out
 * samples is put aside; from the other rows, for each of `seeds` replicates, one seeded permutation
 * gives nested training sets of every size (its prefixes), and the same MLP is trained on each with
 * transfer (predictor_init_transfer) and from scratch (predictor_init + predictor_set_base), with
 * the [transfer-predictor] settings, then scored on the held-out set (RMSE, Kendall's tau-b,
 * pairwise ranking accuracy). Writes transfer.png, transfer.csv and README.md (last: the make
 * target) into --out-dir; the schema is in reports/README.md.
 */
#include <errno.h>
#include <gsl/gsl_statistics_double.h>
#include <gsl/gsl_statistics_float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../predictor/predictor.h"
#include "../util/csvio.h"
#include "../util/h5.h"
#include "cli.h"
#include "pred_cfg.h"

#define MAX_SIZES 16
#define SECTION   "transfer-study"
enum { TRANSFER, SCRATCH, N_METHODS };
static const char *method_name[N_METHODS] = {"transfer", "scratch"};
enum { M_RMSE, M_TAU, M_PAIR, N_METRICS };

struct study_cfg {
    int samples, held_out, seeds, n_sizes, sizes[MAX_SIZES];
    struct pred_train_cfg train; /* [transfer-predictor], as apq-transfer-predictor trains */
    int zero_bits;               /* transfer: the bit branch starts at zero */
    double scratch_lr;           /* the from-scratch ensemble's lr */
    char profile[64];
};

/* sizes = "25,50,100": 1..MAX_SIZES strictly increasing whole numbers >= 1. */
static void parse_sizes(const char *path, const char *text, struct study_cfg *c) {
    const char *p = text;
    c->n_sizes = 0;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        while (*end == ' ') end++;
        if (end == p || errno || v < 1 || v > 1000000 || (*end && *end != ',') ||
            c->n_sizes == MAX_SIZES || (c->n_sizes && v <= c->sizes[c->n_sizes - 1]))
            profile_die(path, SECTION,
                        "sizes = %s: expected 1 to %d strictly increasing whole numbers from 1 to "
                        "1000000, separated by commas (e.g. 25,50,100,200,400)",
                        text, MAX_SIZES);
        c->sizes[c->n_sizes++] = (int)v;
        if (!*end) return;
        p = end + 1;
    }
}

/* Both sections the study reads; bad values exit 2 naming the key. */
static void read_cfg(const char *path, struct study_cfg *c) {
    struct profile *p = profile_load(path, SECTION);
    c->samples = (int)profile_int(p, "samples", 600, 2, 1000000);
    c->held_out = (int)profile_int(p, "held_out", 200, 2, 1000000);
    c->seeds = (int)profile_int(p, "seeds", 3, 1, 100);
    parse_sizes(path, profile_str(p, "sizes", "25,50,100,200,400"), c);
    snprintf(c->profile, sizeof c->profile, "%s", profile_name(p));
    profile_finish(p);
    int largest = c->sizes[c->n_sizes - 1];
    if (c->held_out + largest > c->samples)
        profile_die(path, SECTION,
                    "held_out %d + the largest size %d = %d exceeds samples = %d; raise samples or "
                    "lower held_out or sizes",
                    c->held_out, largest, c->held_out + largest, c->samples);
    /* the keys apq-transfer-predictor reads (stage_pred_cfg_load), plus its own below */
    p = profile_load(path, "transfer-predictor");
    c->train = stage_pred_cfg_load(p);
    (void)profile_f64(p, "held_out", 0.2, 1e-6,
                      1e9); /* the pipeline's split; the study has its own */
    c->zero_bits = (int)profile_int(p, "zero_bit_branch", 0, 0, 1);
    c->scratch_lr = profile_f64(p, "scratch_lr", c->train.lr, 1e-8, 10);
    profile_finish(p);
}

/* Rows idx[0..n-1] of d into x (n x dim), y (n). */
static void gather(const struct pred_samples *d, const int *idx, int n, float *x, float *y) {
    for (int i = 0; i < n; i++) {
        memcpy(x + (size_t)i * d->dim, d->x + (size_t)idx[i] * d->dim,
               sizeof(float) * (size_t)d->dim);
        y[i] = d->y[idx[i]];
    }
}

/* RMSE (points), tau and pairwise accuracy of the ensemble mean of e on n
 * rows; dim inputs per row of x, of which e reads the first in_dim + bit_dim. */
static void score(const struct pred_ensemble *e, const float *x, const float *y, int n, int dim,
                  double m[N_METRICS]) {
    int pd = e->m[0].in_dim + e->m[0].bit_dim;
    float *xi = apq_falloc((size_t)n * (size_t)pd), *out = apq_falloc((size_t)n);
    double *a = apq_xmalloc(sizeof(double) * (size_t)n), *b = apq_xmalloc(sizeof(double) * n);
    for (int i = 0; i < n; i++)
        memcpy(xi + (size_t)i * pd, x + (size_t)i * dim, sizeof(float) * (size_t)pd);
    pred_ensemble_forward(e, xi, n, out, NULL);
    for (int i = 0; i < n; i++) a[i] = out[i], b[i] = y[i];
    m[M_RMSE] = rmse_points(a, b, n);
    m[M_TAU] = kendall_tau(a, b, n);
    m[M_PAIR] = pair_accuracy(a, b, n);
    free(xi), free(out), free(a), free(b);
}

struct study {
    struct study_cfg cfg;
    long seed;
    const char *samples_path, *init_path, *out_dir, *profile_path;
    struct pred_samples d;
    struct pred_ensemble fp;
    double fp_alone[N_METRICS]; /* the fp32 predictor on the held-out set, no quantized samples */
    double *res;                /* [size][method][seed][metric] */
    double train_seconds;
};

static double *res_at(const struct study *st, int k, int m, int r) {
    return st->res + (((size_t)k * N_METHODS + m) * st->cfg.seeds + r) * N_METRICS;
}

/* The trainings: for each replicate r (seed + r), one permutation of the
 * non-held-out rows from (seed + r, RNG_SAMPLE); each size trains on its
 * prefix, so larger sets contain the smaller ones; both methods see the same
 * rows, init stream and shuffling seed. */
static void run_study(struct study *st) {
    const struct study_cfg *c = &st->cfg;
    const struct pred_samples *d = &st->d;
    int *perm = apq_xmalloc(sizeof(int) * (size_t)d->n);
    for (int i = 0; i < d->n; i++) perm[i] = i;
    struct rng r;
    rng_init(&r, (uint64_t)st->seed, RNG_SPLIT);
    rng_shuffle_int(&r, perm, (size_t)d->n);
    rng_free(&r);
    const int *held = perm, n_pool = d->n - c->held_out;
    float *hx = apq_falloc((size_t)c->held_out * d->dim), *hy = apq_falloc((size_t)c->held_out);
    gather(d, held, c->held_out, hx, hy);
    score(&st->fp, hx, hy, c->held_out, d->dim, st->fp_alone);
    int largest = c->sizes[c->n_sizes - 1];
    int *pool = apq_xmalloc(sizeof(int) * (size_t)n_pool);
    float *tx = apq_falloc((size_t)largest * d->dim), *ty = apq_falloc((size_t)largest);
    struct apq_progress pr;
    progress_init(&pr, "transfer study", "trainings", (long)c->seeds * c->n_sizes * N_METHODS);
    double work_total = 0, work = 0; /* training cost ~ minibatch steps ~ size */
    for (int k = 0; k < c->n_sizes; k++) work_total += (double)c->seeds * N_METHODS * c->sizes[k];
    double t0 = apq_time();
    long done = 0;
    for (int rep = 0; rep < c->seeds; rep++) {
        uint64_t seed = (uint64_t)st->seed + (uint64_t)rep;
        memcpy(pool, perm + c->held_out, sizeof(int) * (size_t)n_pool);
        rng_init(&r, seed, RNG_SAMPLE);
        rng_shuffle_int(&r, pool, (size_t)n_pool);
        rng_free(&r);
        gather(d, pool, largest, tx, ty);
        for (int k = 0; k < c->n_sizes; k++) {
            int n = c->sizes[k];
            for (int m = 0; m < N_METHODS; m++) {
                /* the ensemble apq-transfer-predictor trains (stages/train_predictor.c) */
                struct pred_ensemble e;
                const struct predictor *f0 = &st->fp.m[0];
                int bit_dim = d->dim - f0->in_dim;
                int rc = m == TRANSFER ? pred_ensemble_init_transfer(&e, &st->fp, bit_dim, seed)
                                       : pred_ensemble_init(&e, st->fp.k, f0->in_dim, bit_dim,
                                                            f0->hidden, f0->n_layers, seed);
                if (rc < 0) apq_die_status(rc);
                for (int i = 0; i < e.k && m == TRANSFER && c->zero_bits; i++)
                    predictor_zero_bit_branch(&e.m[i]);
                if (m == SCRATCH)
                    pred_ensemble_set_base(&e, gsl_stats_float_mean(ty, 1, (size_t)n));
                struct pred_train_cfg cfg = c->train;
                if (m == SCRATCH) cfg.lr = c->scratch_lr;
                if ((rc = pred_ensemble_train(&e, tx, ty, n, &cfg, seed, NULL, NULL)) < 0)
                    apq_die("%s, %d samples, seed %llu: %s", method_name[m], n,
                            (unsigned long long)seed, apq_last_error());
                double *out = res_at(st, k, m, rep);
                score(&e, hx, hy, c->held_out, d->dim, out);
                pred_ensemble_free(&e);
                char extra[96];
                snprintf(extra, sizeof extra, "%s n=%d seed %llu: tau %.3f", method_name[m], n,
                         (unsigned long long)seed, out[M_TAU]);
                progress_work(&pr, work += n, work_total);
                progress_update(&pr, ++done, extra);
            }
        }
    }
    st->train_seconds = apq_time() - t0;
    progress_end(&pr, NULL);
    free(perm), free(pool), free(hx), free(hy), free(tx), free(ty);
}

// ---- summaries -------------------------------------------------------------------

struct summary {
    double mean, sd, lo, hi; /* over the seeds; sd 0 for one seed */
};

static struct summary summarize(const struct study *st, int k, int m, int metric) {
    const double *v = res_at(st, k, m, 0) + metric;
    size_t n = (size_t)st->cfg.seeds;
    struct summary s = {.mean = gsl_stats_mean(v, N_METRICS, n)};
    s.sd = n > 1 ? gsl_stats_sd_m(v, N_METRICS, n, s.mean) : 0;
    gsl_stats_minmax(&s.lo, &s.hi, v, N_METRICS, n);
    return s;
}

/* Scratch's mean tau at the largest size (*target), and the index of the
 * smallest size whose mean transfer tau reaches it (-1: none). */
static int sizes_to_reach(const struct study *st, double *target) {
    int last = st->cfg.n_sizes - 1;
    *target = summarize(st, last, SCRATCH, M_TAU).mean;
    for (int k = 0; k <= last; k++)
        if (summarize(st, k, TRANSFER, M_TAU).mean >= *target) return k;
    return -1;
}

// ---- outputs ---------------------------------------------------------------------

/* transfer.png: tau and RMSE against training samples (log x), both
 * methods, mean with the seeds' min-max as error bars, methods nudged apart. */
static void write_plot(const struct study *st) {
    const struct study_cfg *c = &st->cfg;
    char dat[1100], gp[1100], png[1100], tmp[1200], tics[MAX_SIZES * 12 + 4] = "";
    long pid = (long)getpid();
    snprintf(dat, sizeof dat, "%s/.transfer.dat.tmp.%ld", st->out_dir, pid);
    snprintf(gp, sizeof gp, "%s/.transfer.gp.tmp.%ld", st->out_dir, pid);
    snprintf(png, sizeof png, "%s/transfer.png", st->out_dir);
    apq_tmp_path(tmp, sizeof tmp, png);
    FILE *f = fopen(dat, "w");
    if (!f) apq_die("%s: cannot write: %s", dat, strerror(errno));
    for (int k = 0; k < c->n_sizes; k++) {
        fprintf(f, "%d", c->sizes[k]);
        for (int metric = M_RMSE; metric <= M_TAU; metric++)
            for (int m = 0; m < N_METHODS; m++) {
                struct summary s = summarize(st, k, m, metric);
                fprintf(f, " %.6f %.6f %.6f", s.mean, s.lo, s.hi);
            }
        fprintf(f, "\n");
        snprintf(tics + strlen(tics), sizeof tics - strlen(tics), "%s%d", k ? "," : "",
                 c->sizes[k]);
    }
    int rc = apq_fclose(f, dat);
    if (rc < 0) remove(dat), apq_die_status(rc);
    double target;
    sizes_to_reach(st, &target);
    f = fopen(gp, "w");
    if (!f) remove(dat), apq_die("%s: cannot write: %s", gp, strerror(errno));
    /* columns: 1 size; RMSE transfer 2-4, scratch 5-7; tau transfer 8-10, scratch 11-13 */
    fprintf(f,
            "set terminal pngcairo size 1200,500 font 'sans,10'\nset output '%s'\n"
            "set multiplot layout 1,2 title \"quantization-aware predictor, profile %s: %d "
            "held-out samples, mean and min-max over %d seeds\"\n"
            "set grid\nset logscale x\nset xtics (%s)\nset xrange [%g:%g]\n"
            "set xlabel 'quantized training samples (log scale)'\n"
            "set key bottom right\nset ylabel \"Kendall's tau on the held-out samples\"\n"
            "plot '%s' u ($1*0.96):8:9:10 w yerrorlines pt 7 t 'transfer from fp32', "
            "'' u ($1*1.04):11:12:13 w yerrorlines pt 5 t 'from scratch', "
            "%.6f w l dt 2 lc rgb 'gray40' t 'scratch, %d samples', "
            "%.6f w l dt 3 lc rgb 'black' t 'fp32 predictor alone'\n"
            "set key top right\nset ylabel 'RMSE on the held-out samples (points)'\n"
            "plot '%s' u ($1*0.96):2:3:4 w yerrorlines pt 7 t 'transfer from fp32', "
            "'' u ($1*1.04):5:6:7 w yerrorlines pt 5 t 'from scratch', "
            "%.6f w l dt 3 lc rgb 'black' t 'fp32 predictor alone'\nunset multiplot\n",
            tmp, c->profile, c->held_out, c->seeds, tics, c->sizes[0] * 0.8,
            c->sizes[c->n_sizes - 1] * 1.25, dat, target, c->sizes[c->n_sizes - 1],
            st->fp_alone[M_TAU], dat, st->fp_alone[M_RMSE]);
    if ((rc = apq_fclose(f, gp)) < 0) remove(dat), remove(gp), apq_die_status(rc);
    cli_run_gnuplot(gp, tmp, png, NULL);
    remove(dat);
}

/* transfer.csv: one row per (size, method, seed); same bits for a seed and thread count. */
static void write_csv(const struct study *st) {
    const struct study_cfg *c = &st->cfg;
    char path[1100];
    snprintf(path, sizeof path, "%s/transfer.csv", st->out_dir);
    struct csvw w;
    int rc = csvw_open(&w, path, NULL);
    if (rc < 0) apq_die_status(rc);
    const char *cols[] = {"samples", "method", "seed", "rmse", "tau", "pair_acc"};
    for (int j = 0; j < 6; j++) csvw_str(&w, cols[j]);
    csvw_end_row(&w);
    for (int k = 0; k < c->n_sizes; k++)
        for (int m = 0; m < N_METHODS; m++)
            for (int r = 0; r < c->seeds; r++) {
                const double *v = res_at(st, k, m, r);
                csvw_i64(&w, c->sizes[k]);
                csvw_str(&w, method_name[m]);
                csvw_i64(&w, st->seed + r);
                csvw_f64(&w, v[M_RMSE], "%.4f");
                csvw_f64(&w, v[M_TAU], "%.4f");
                csvw_f64(&w, v[M_PAIR], "%.4f");
                csvw_end_row(&w);
            }
    if ((rc = csvw_commit(&w)) < 0) apq_die_status(rc);
}

static void fmt_ms(char *buf, size_t n, struct summary s, int seeds) {
    if (seeds > 1)
        snprintf(buf, n, "%.3f ± %.3f", s.mean, s.sd);
    else
        snprintf(buf, n, "%.3f", s.mean);
}

/* The finding in one sentence, compared with APQ's claim (a quarter of the samples or fewer). */
static void write_finding(FILE *f, const struct study *st) {
    const struct study_cfg *c = &st->cfg;
    double target;
    int k = sizes_to_reach(st, &target), largest = c->sizes[c->n_sizes - 1];
    if (k < 0) {
        int best = 0;
        for (int j = 1; j < c->n_sizes; j++)
            if (summarize(st, j, TRANSFER, M_TAU).mean > summarize(st, best, TRANSFER, M_TAU).mean)
                best = j;
        fprintf(f,
                "**Transfer does not reach scratch's %d-sample tau (%.3f): not reached within the "
                "sizes** (its best mean tau is %.3f, at %d samples). APQ's claim, that transfer "
                "needs a quarter of the samples or fewer (here %g), is not borne out.\n\n",
                largest, target, summarize(st, best, TRANSFER, M_TAU).mean, c->sizes[best],
                largest / 4.0);
        return;
    }
    int n = c->sizes[k];
    /* reached at the smallest size tried: fewer might do, so only "at most n" is known */
    const char *verdict = 4 * n <= largest ? "borne out"
                          : k == 0         ? "not decided by these sizes (add smaller ones)"
                                           : "not borne out";
    fprintf(f,
            "**Transfer needs %s%d samples to reach scratch's %d-sample tau (%.3f)** (its mean "
            "tau there: %.3f): %.0f%% of scratch's samples. APQ's claim, a quarter of the "
            "samples or fewer (here %g), is %s.\n\n",
            k == 0 ? "at most " : "", n, largest, target, summarize(st, k, TRANSFER, M_TAU).mean,
            100.0 * n / largest, largest / 4.0, verdict);
}

static void write_readme(const struct study *st) {
    const struct study_cfg *c = &st->cfg;
    char path[1100], tmp[1200], date[32], cell[3][48];
    snprintf(path, sizeof path, "%s/README.md", st->out_dir);
    apq_tmp_path(tmp, sizeof tmp, path);
    FILE *f = fopen(tmp, "w");
    if (!f) apq_die("%s: cannot write: %s", tmp, strerror(errno));
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fprintf(f, "# apq transfer study: profile %s\n\n", c->profile);
    fprintf(f,
            "APQ trains its quantization-aware accuracy predictor by transfer from the fp32 one; "
            "its abstract says transfer \"greatly improves the sample efficiency\" "
            "(reference/apq.md §4). The claim tested here: with transfer, a quarter of the "
            "quantized samples or fewer rank subnets as well as the same predictor trained "
            "from scratch on all of them. Measured on held-out samples no training saw.\n\n");
    write_finding(f, st);
    fprintf(f,
            "Made by apq %s on %s; seed %ld, %d threads, OpenBLAS kernel %s. Columns and units: "
            "[reports/README.md](../../README.md).\n\n",
            apq_git_rev(), date, st->seed, apq_threads(), apq_blas_kernel());
    fprintf(f, "## Setup\n\n| what | value |\n|---|---|\n");
    fprintf(f, "| profile | `%s` ([transfer-study], [transfer-predictor]) |\n", st->profile_path);
    fprintf(f,
            "| quantized samples | `%s`: %d samples (seed %lld, accuracy on %lld val images, QAT "
            "%lld steps) |\n",
            st->samples_path, st->d.n, (long long)st->d.seed, (long long)st->d.val_images,
            (long long)st->d.qat_steps);
    fprintf(f, "| held out | %d samples, fixed (seed %ld), never trained on |\n", c->held_out,
            st->seed);
    fprintf(f, "| training sets | ");
    for (int k = 0; k < c->n_sizes; k++) fprintf(f, "%s%d", k ? ", " : "", c->sizes[k]);
    fprintf(f,
            " samples: nested prefixes of one permutation of the other %d rows per seed |\n"
            "| seeds | %d (%ld to %ld): training rows, bit-branch or full init, shuffling |\n",
            st->d.n - c->held_out, c->seeds, st->seed, st->seed + c->seeds - 1);
    fprintf(f,
            "| methods | the ensemble of %d %dx%d MLPs apq-transfer-predictor trains; transfer: "
            "member i initialised from member i of `%s`, bit branch %s; scratch: the same "
            "ensemble freshly initialised, output bias at the training mean |\n",
            st->fp.k, st->fp.m[0].n_layers, st->fp.m[0].hidden, st->init_path,
            c->zero_bits ? "at zero" : "fresh (uniform)");
    fprintf(f,
            "| training | up to %d epochs, batch %d, Adam lr %g (scratch %g), weight decay %g, "
            "early stopping with patience %d on a %.0f%% validation fold of the training rows "
            "per member |\n",
            c->train.epochs, c->train.batch, c->train.lr, c->scratch_lr, c->train.weight_decay,
            c->train.patience, 100 * c->train.val_fraction);
    fprintf(f, "| training wall time | %.1f s for %d trainings |\n", st->train_seconds,
            c->n_sizes * N_METHODS * c->seeds);
    fprintf(f,
            "| fp32 predictor alone (no quantized samples) | RMSE %.3f points, tau %.3f, pairwise "
            "accuracy %.3f |\n\n",
            st->fp_alone[M_RMSE], st->fp_alone[M_TAU], st->fp_alone[M_PAIR]);
    fprintf(
        f,
        "## Held-out figures\n\n%s over the seeds; RMSE in accuracy points; pairwise accuracy "
        "is the fraction of held-out pairs of different accuracy ordered correctly.\n\n"
        "| samples | method | RMSE | Kendall's tau | pairwise accuracy |\n|---:|---|---:|---:|---:|"
        "\n",
        c->seeds > 1 ? "Mean ± standard deviation" : "One seed: the value");
    for (int k = 0; k < c->n_sizes; k++)
        for (int m = 0; m < N_METHODS; m++) {
            for (int j = 0; j < N_METRICS; j++)
                fmt_ms(cell[j], sizeof cell[j], summarize(st, k, m, j), c->seeds);
            fprintf(f, "| %d | %s | %s | %s | %s |\n", c->sizes[k], method_name[m], cell[M_RMSE],
                    cell[M_TAU], cell[M_PAIR]);
        }
    fprintf(f, "\n![tau and RMSE against training samples](transfer.png)\n\n"
               "Files: `transfer.csv` holds every training's figures; `transfer.png` the plot.\n");
    int rc = apq_fclose(f, tmp);
    if (rc < 0) remove(tmp), apq_die_status(rc);
    if (rename(tmp, path) != 0) apq_die("cannot rename %s to %s: %s", tmp, path, strerror(errno));
}

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    struct study st = {.seed = 1, .profile_path = "profiles/quick.ini"};
    const char *space_path = "supernet/spaces/fmnist-mbv2.ini";
    int print_samples = 0;
    struct cli_opt opts[] = {
        {"space", CLI_STR, &space_path, "search-space .ini"},
        {"profile", CLI_STR, &st.profile_path,
         "profile .ini ([transfer-study], [transfer-predictor])"},
        {"seed", CLI_INT, &st.seed,
         "random seed: held-out split; replicates use seed .. seed+seeds-1"},
        {"samples", CLI_STR, &st.samples_path, "quantized samples .h5 (required)"},
        {"init", CLI_STR, &st.init_path, "predictor-fp32.h5 to transfer from (required)"},
        {"out-dir", CLI_STR, &st.out_dir, "report folder, reports/<profile>/transfer (required)"},
        {"print-samples", CLI_FLAG, &print_samples,
         "check the profile and print its [transfer-study] samples count"},
    };
    cli_parse(argc, argv, opts, 7, "re-measure APQ's predictor transfer claim");
    struct study_cfg *c = &st.cfg;
    if (print_samples) {
        read_cfg(st.profile_path, c);
        printf("%d\n", c->samples);
        return 0;
    }
    cli_require("samples", st.samples_path);
    cli_require("init", st.init_path);
    cli_require("out-dir", st.out_dir);
    if (st.seed < 0) {
        fprintf(stderr, "%s: error: --seed %ld: expected a whole number >= 0\n", apq_prog, st.seed);
        exit(2);
    }
    read_cfg(st.profile_path, c);

    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    if ((rc = pred_samples_load(st.samples_path, &s, 1, &st.d)) < 0) apq_die_status(rc);
    int need = c->held_out + c->sizes[c->n_sizes - 1];
    if (st.d.n < need)
        apq_die("%s: %d samples, but held_out %d + the largest size %d need %d; hint: raise "
                "[transfer-study] samples (make transfer-study draws that many) or lower held_out "
                "or sizes in %s",
                st.samples_path, st.d.n, c->held_out, c->sizes[c->n_sizes - 1], need,
                st.profile_path);
    if ((rc = pred_ensemble_load(&st.fp, st.init_path, &s)) < 0) apq_die_status(rc);
    if (st.fp.m[0].bit_dim)
        apq_die("%s: is a quantized predictor; --init wants the fp32 one (predictor-fp32.h5)",
                st.init_path);
    if ((rc = cli_mkdirs(st.out_dir)) < 0) apq_die_status(rc);
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/README.md", st.out_dir);
    cli_require_writable(probe);
    apq_log("%d quantized samples from %s: %d held out, %d training sizes x %d methods x %d seeds",
            st.d.n, st.samples_path, c->held_out, c->n_sizes, N_METHODS, c->seeds);
    st.res = apq_xcalloc((size_t)c->n_sizes * N_METHODS * c->seeds * N_METRICS, sizeof(double));
    run_study(&st);
    double target;
    int k = sizes_to_reach(&st, &target);
    char at[32] = "no size";
    if (k >= 0) snprintf(at, sizeof at, "%d samples", c->sizes[k]);
    apq_log("%d trainings in %.1f s; transfer reaches scratch's %d-sample tau %.3f at %s",
            c->n_sizes * N_METHODS * c->seeds, st.train_seconds, c->sizes[c->n_sizes - 1], target,
            at);
    write_plot(&st); /* first: by another program, the likeliest to fail */
    write_csv(&st);
    write_readme(&st); /* last: the make target */
    apq_log("study written to %s", st.out_dir);
    pred_ensemble_free(&st.fp);
    pred_samples_free(&st.d);
    free(st.res);
    return 0;
}
