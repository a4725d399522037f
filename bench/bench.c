/* bench.c — apq's side of `make bench` (bench/torch_reference.py takes turns with it).
 *
 * Per case, images/s at batch 128 (fp32, resolution 28): training = SN_TRAIN
 * forward + label-smoothed CE + backward + one SGD-Nesterov update of the
 * whole supernet, as supernet_train does per subnet; inference = SN_EVAL
 * forward. Cases: the largest, the smallest and a fixed random subnet. Also
 * the machine's sgemm peak (one large cblas_sgemm at the same thread count),
 * each case's achieved GFLOP/s = MACs * 2 * (3 training, 1 inference) *
 * images/s and its fraction of that peak, and the process's peak RSS after
 * the training cases (getrusage). Not a pipeline stage: `make bench` runs it
 * in --serve mode (below) through bench/torch_reference.py.
 *
 *   APQ_THREADS=2 build/apq-bench --out bench/out [--seconds 4] [--batch 128]
 *   APQ_THREADS=2 build/apq-bench --out bench/out --serve      (bench/torch_reference.py)
 *
 * Writes OUT/apq.csv (case,arch,macs,images_per_s,gflops,frac_peak,seconds,iters),
 * OUT/apq.env (key=value: threads, OpenBLAS kernel, sgemm peak, peak RSS, git rev)
 * and OUT/bench-supernet.h5 (the weights, for the PyTorch side).
 *
 * --serve takes turns with the PyTorch side, so that both see the same machine
 * (its speed drifts by up to 30% within minutes): it writes bench-supernet.h5,
 * prints one line "case,arch,macs" per case and an empty line on stdout, then
 * reads case names from stdin, one per line, and answers each with
 * "case,images_per_s,seconds,iters" once it has run it; a line "case,N" runs
 * exactly N steps with no warm-up (bench/ab.py). On end of input it
 * writes apq.env and exits. apq.csv is not written in this mode.
 */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../supernet/supernet.h"

#define BENCH_SEED      1
#define BENCH_ARCH_SEED 2024 /* the fixed random subnet */
#define SGEMM_N         2048

struct bcase {
    const char *name;
    int train;
    struct arch a;
    double macs, images_per_s, seconds;
    long iters;
};

struct bench {
    struct supernet sn;
    struct sn_ctx c;
    float *x, *dlogits;
    int *y, batch;
};

// ---- one step ------------------------------------------------------------------

static void step(struct bench *b, const struct bcase *k) {
    struct supernet *sn = &b->sn;
    if (!k->train) {
        supernet_forward(sn, &b->c, &k->a, NULL, b->x, b->batch, SN_EVAL);
        return;
    }
    memset(sn->grads, 0, sizeof(float) * sn->n_params);
    const float *logits = supernet_forward(sn, &b->c, &k->a, NULL, b->x, b->batch, SN_TRAIN);
    nn_softmax_ce(b->dlogits, logits, b->y, NULL, b->batch, sn->s.n_classes, 0.1f);
    supernet_backward(sn, &b->c, b->dlogits);
    sn_sgd_update(sn, 1e-3f, 0.9f, 4e-5f); /* as supernet_train */
}

/* Two warm-up steps, then steps until `seconds` have passed (at least 3); or,
 * with exact_steps > 0, exactly that many steps and no warm-up (bench/ab.py's
 * short turns). */
static void run_case(struct bench *b, struct bcase *k, double seconds, long exact_steps) {
    if (exact_steps <= 0) {
        step(b, k);
        step(b, k);
    }
    long n = 0;
    double t0 = apq_time(), dt;
    do {
        step(b, k);
        n++;
        dt = apq_time() - t0;
    } while (exact_steps > 0 ? n < exact_steps : n < 3 || dt < seconds);
    k->iters = n;
    k->seconds = dt;
    k->images_per_s = (double)n * b->batch / dt;
}

// ---- machine facts ---------------------------------------------------------------

/* Best of 5 single-precision n x n x n products, GFLOP/s, on `threads` OpenBLAS threads. */
static double sgemm_peak(int threads) {
    const int n = SGEMM_N;
    float *a = apq_falloc((size_t)n * n), *bm = apq_falloc((size_t)n * n),
          *c = apq_falloc((size_t)n * n);
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        bm[i] = (float)(i % 5) * 0.1f;
    }
    openblas_set_num_threads(threads);
    double best = 1e30;
    for (int r = 0; r < 6; r++) {
        double t0 = apq_time();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, bm, n, 0.0f, c,
                    n);
        double dt = apq_time() - t0;
        if (r > 0 && dt < best) best = dt; /* the first call warms up */
    }
    openblas_set_num_threads(1); /* apq's own setting (apq_runtime_init) */
    free(a);
    free(bm);
    free(c);
    return 2.0 * n * n * (double)n / best / 1e9;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

// ---- main ------------------------------------------------------------------------

static void usage(const char *prog) {
    fprintf(stderr,
            "usage: %s --out DIR [--space FILE.ini] [--data DIR] [--seconds S] [--batch N]\n"
            "       [--case NAME]   (only that case, for profiling; nothing is written)\n"
            "       [--serve]       (run the cases named on stdin; see bench/bench.c)\n",
            prog);
    exit(2);
}

static void write_csv(const char *dir, const struct space *s, const struct bcase *cases, int n,
                      double peak) {
    char path[1024], tmp[1100], buf[ARCH_STR_MAX];
    snprintf(path, sizeof path, "%s/apq.csv", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) apq_die("%s: cannot write", tmp);
    fprintf(f, "case,arch,macs,images_per_s,gflops,frac_peak,seconds,iters\n");
    for (int i = 0; i < n; i++) {
        const struct bcase *k = &cases[i];
        double gflops = k->macs * 2 * (k->train ? 3 : 1) * k->images_per_s / 1e9;
        arch_to_string(s, &k->a, buf, sizeof buf);
        fprintf(f, "%s,%s,%.0f,%.6g,%.6g,%.6g,%.6g,%ld\n", k->name, buf, k->macs, k->images_per_s,
                gflops, gflops / peak, k->seconds, k->iters);
    }
    int rc = apq_fclose(f, tmp);
    if (rc < 0) {
        remove(tmp);
        apq_die_status(rc);
    }
    if (rename(tmp, path) != 0) apq_die("cannot rename %s to %s: %s", tmp, path, strerror(errno));
}

static void write_env(const char *dir, double peak, int threads, double rss_before,
                      double rss_train) {
    char path[1024], tmp[1100];
    snprintf(path, sizeof path, "%s/apq.env", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) apq_die("%s: cannot write", tmp);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    fprintf(f, "threads=%d\nopenblas_core=%s\nopenblas_coretype=%s\n", threads,
            openblas_get_corename(), ct ? ct : "unset");
    fprintf(f, "sgemm_n=%d\nsgemm_peak_gflops=%.6g\n", SGEMM_N, peak);
    fprintf(f, "peak_rss_mb_before_training=%.1f\npeak_rss_mb_training=%.1f\n", rss_before,
            rss_train);
    fprintf(f, "git_rev=%s\n", apq_git_rev());
    int rc = apq_fclose(f, tmp);
    if (rc < 0) {
        remove(tmp);
        apq_die_status(rc);
    }
    if (rename(tmp, path) != 0) apq_die("cannot rename %s to %s: %s", tmp, path, strerror(errno));
}

/* Time case k, log it, and after a training case record the peak RSS in *rss_train. */
static void bench_case(struct bench *b, struct bcase *k, double seconds, long exact_steps,
                       double peak, double *rss_train) {
    run_case(b, k, seconds, exact_steps);
    double gflops = k->macs * 2 * (k->train ? 3 : 1) * k->images_per_s / 1e9;
    if (exact_steps <= 0)
        apq_log("%-15s %8.1f images/s  %6.2f GFLOP/s (%.1f%% of peak)  %ld iterations", k->name,
                k->images_per_s, gflops, 100 * gflops / peak, k->iters);
    if (k->train) *rss_train = peak_rss_mb();
}

/* --serve: announce the cases, then run each case named on stdin and answer on stdout. */
static double serve(struct bench *b, const struct space *s, struct bcase *cases, int n,
                    double seconds, double peak) {
    char buf[ARCH_STR_MAX], line[256];
    double rss_train = 0;
    for (int i = 0; i < n; i++) {
        arch_to_string(s, &cases[i].a, buf, sizeof buf);
        printf("%s,%s,%.0f\n", cases[i].name, buf, cases[i].macs);
    }
    printf("\n");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        long exact = 0; /* "case,steps": exactly that many steps, no warm-up */
        char *comma = strchr(line, ',');
        if (comma) {
            *comma = 0;
            exact = atol(comma + 1);
            if (exact <= 0) apq_die("--serve: bad step count '%s' on stdin", comma + 1);
        }
        struct bcase *k = NULL;
        for (int i = 0; i < n && !k; i++)
            if (!strcmp(line, cases[i].name)) k = &cases[i];
        if (!k) apq_die("--serve: unknown case '%s' on stdin", line);
        bench_case(b, k, seconds, exact, peak, &rss_train);
        printf("%s,%.6g,%.6g,%ld\n", k->name, k->images_per_s, k->seconds, k->iters);
        fflush(stdout);
    }
    return rss_train;
}

int main(int argc, char **argv) {
    const char *out = NULL, *only = NULL, *space_path = "supernet/spaces/fmnist-mbv2.ini",
               *data = "/usr/share/datasets/fashion-mnist";
    double seconds = 4;
    int batch = 128, serving = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--serve")) {
            serving = 1;
            continue;
        }
        if (i + 1 >= argc) usage(argv[0]);
        if (!strcmp(argv[i], "--out"))
            out = argv[++i];
        else if (!strcmp(argv[i], "--space"))
            space_path = argv[++i];
        else if (!strcmp(argv[i], "--data"))
            data = argv[++i];
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--case"))
            only = argv[++i];
        else
            usage(argv[0]);
    }
    if (!out || seconds <= 0 || batch <= 0) usage(argv[0]);
    int threads = apq_runtime_init(argc, argv, 0);
    if (threads < 0) apq_die_status(threads);
    double peak = sgemm_peak(threads);
    apq_log("sgemm peak %.1f GFLOP/s (%dx%dx%d, %d threads, kernel %s)", peak, SGEMM_N, SGEMM_N,
            SGEMM_N, threads, openblas_get_corename());

    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    struct bench b = {.batch = batch};
    supernet_init(&b.sn, &s, BENCH_SEED, 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/bench-supernet.h5", out);
    rc = supernet_save(&b.sn, path, BENCH_SEED, "bench", NULL);
    if (rc < 0) apq_die_status(rc);

    /* the first `batch` training images (the same ones the PyTorch side reads) */
    struct dataset train, test;
    rc = idx_load_dir(data, &train, &test);
    if (rc < 0) apq_die_status(rc);
    if (train.n < batch || train.h != s.in_size)
        apq_die("%s: need %d images of %dx%d", data, batch, s.in_size, s.in_size);
    b.x = apq_falloc((size_t)batch * train.h * train.w);
    b.dlogits = apq_falloc((size_t)batch * s.n_classes);
    b.y = apq_xmalloc(sizeof(int) * (size_t)batch);
    int *idx = apq_xmalloc(sizeof(int) * (size_t)batch);
    for (int i = 0; i < batch; i++) idx[i] = i;
    dataset_batch(b.x, b.y, &train, idx, batch, 0, NULL);
    free(idx);
    dataset_free(&train);
    dataset_free(&test);
    rc = sn_ctx_init(&b.c, &b.sn, batch, BENCH_SEED);
    if (rc < 0) apq_die_status(rc);

    struct arch big, small, rnd;
    int res = s.in_size;
    arch_largest(&s, 0, &big);
    arch_smallest(&s, 0, &small);
    struct rng r;
    rng_init(&r, BENCH_ARCH_SEED, RNG_SAMPLE);
    arch_sample(&s, &r, 0, &rnd);
    rng_free(&r);
    big.res = small.res = rnd.res = (uint16_t)res;
    struct bcase cases[] = {
        {.name = "train-largest", .train = 1, .a = big},
        {.name = "train-smallest", .train = 1, .a = small},
        {.name = "train-random", .train = 1, .a = rnd},
        {.name = "infer-largest", .a = big},
        {.name = "infer-smallest", .a = small},
        {.name = "infer-random", .a = rnd},
    };
    int n_cases = (int)(sizeof cases / sizeof cases[0]), known = !only;
    for (int i = 0; i < n_cases && !known; i++) known = !strcmp(only, cases[i].name);
    if (!known) {
        fprintf(
            stderr,
            "%s: error: unknown --case '%s'; choose train-|infer- largest, smallest or random\n",
            argv[0], only);
        return 2;
    }
    double rss_before = peak_rss_mb(), rss_train = 0;
    for (int i = 0; i < n_cases; i++) cases[i].macs = arch_macs(&s, &cases[i].a);
    if (serving) rss_train = serve(&b, &s, cases, n_cases, seconds, peak);
    for (int i = 0; i < n_cases && !serving; i++) {
        struct bcase *k = &cases[i];
        if (only && strcmp(only, k->name)) continue;
        bench_case(&b, k, seconds, 0, peak, &rss_train);
    }
    apq_log("peak RSS %.1f MB after the training cases (%.1f MB before them); arena high-water "
            "%.1f MB",
            rss_train, rss_before, b.c.arena.high * 4.0 / 1e6);
    if (!only && !serving) write_csv(out, &s, cases, n_cases, peak);
    if (!only) write_env(out, peak, threads, rss_before, rss_train);
    free(b.x);
    free(b.dlogits);
    free(b.y);
    sn_ctx_free(&b.c);
    supernet_free(&b.sn);
    return 0;
}
