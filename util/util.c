/* util.c — errors, logging, runtime setup (OpenBLAS kernel, threads), timing. */
#include "util.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *apq_prog = "apq";
static _Thread_local char errbuf[1024];
static int n_threads = 1;

const char *apq_strerror(int status) {
    switch (status) {
    case APQ_OK:
        return "ok";
    case APQ_EIO:
        return "I/O error";
    case APQ_EFORMAT:
        return "malformed file";
    case APQ_ECONFIG:
        return "bad configuration";
    case APQ_ENOMEM:
        return "out of memory";
    case APQ_EHDF5:
        return "HDF5 error";
    case APQ_EUSAGE:
        return "usage error";
    case APQ_EMISMATCH:
        return "artifact does not match this space";
    case APQ_EINFEASIBLE:
        return "infeasible budget";
    case APQ_ENONFINITE:
        return "non-finite value (diverged)";
    default:
        return "unknown error";
    }
}

int apq_set_error(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return status;
}

const char *apq_last_error(void) {
    return errbuf;
}

void apq_log(const char *fmt, ...) {
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", apq_prog, line);
}

void apq_die(const char *fmt, ...) {
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "%s: error: %s\n", apq_prog, line);
    exit(1);
}

void apq_die_status(int status) {
    fflush(stdout);
    fprintf(stderr, "%s: error: %s\n", apq_prog, errbuf[0] ? errbuf : apq_strerror(status));
    exit(status == APQ_EUSAGE ? 2 : 1);
}

void apq_assert_fail(const char *file, int line, const char *cond) {
    fflush(stdout);
    fprintf(stderr, "%s: internal error: %s:%d: assertion failed: %s\n", apq_prog, file, line,
            cond);
    abort();
}

void apq_oom(const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    apq_die("out of memory (%s)", what);
}

void *apq_xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) apq_oom("%zu bytes", bytes);
    return p;
}

void *apq_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) apq_oom("%zu x %zu bytes", n, size);
    return p;
}

float *apq_falloc(size_t n_floats) {
    size_t bytes = (n_floats * sizeof(float) + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) apq_oom("%zu floats", n_floats);
    return p;
}

int apq_tmp_path(char *buf, size_t size, const char *path) {
    int k = snprintf(buf, size, "%s.tmp.%ld", path, (long)getpid());
    return k > 0 && (size_t)k < size;
}

int apq_fclose(FILE *f, const char *path) {
    errno = 0;
    int bad = fflush(f) != 0, err = errno;
    bad |= ferror(f) != 0;
    errno = 0;
    if (fclose(f) != 0) {
        bad = 1;
        if (!err) err = errno;
    }
    if (!bad) return APQ_OK;
    return apq_set_error(APQ_EIO, "%s: write failed: %s", path,
                         err ? strerror(err) : "an earlier write failed (disk full?)");
}

double apq_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

uint64_t apq_fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* ---- runtime setup -------------------------------------------------------- */

/* Provided by OpenBLAS (declared here to avoid depending on its cblas.h variant). */
extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);

static const char *choose_coretype(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2")) return "Haswell";
    return NULL;
}

/* The most threads APQ_THREADS may ask for. More threads than CPUs is allowed
 * on purpose: it reproduces a run made on a bigger machine (the thread count
 * is part of an artifact's provenance), only slower. */
#define APQ_MAX_THREADS 1024

int apq_threads_from_env(int *threads) {
    const char *e = getenv("APQ_THREADS");
    *threads = 0;
    if (!e || !e[0]) return APQ_OK; /* unset or empty: the number of online CPUs */
    long v = 0;
    const char *c = e;
    for (; *c >= '0' && *c <= '9' && v <= APQ_MAX_THREADS; c++) v = 10 * v + (*c - '0');
    if (*c || v < 1 || v > APQ_MAX_THREADS)
        return apq_set_error(APQ_EUSAGE,
                             "APQ_THREADS=%s: expected a whole number of threads from 1 to %d "
                             "(or unset for all %ld CPUs)",
                             e, APQ_MAX_THREADS, sysconf(_SC_NPROCESSORS_ONLN));
    *threads = (int)v;
    return APQ_OK;
}

int apq_runtime_init(int argc, char **argv, int threads) {
    (void)argc;
    if (argv && argv[0]) {
        const char *s = strrchr(argv[0], '/');
        apq_prog = s ? s + 1 : argv[0];
    }
    /* A file-size limit (ulimit -f) is then a write error, "File too large",
     * which the writers report naming the file, not a silent kill. */
    signal(SIGXFSZ, SIG_IGN);
    if (threads <= 0) {
        int rc = apq_threads_from_env(&threads);
        if (rc < 0) return rc;
    }
    /* OpenBLAS reads OPENBLAS_CORETYPE, and libgomp GOMP_SPINCOUNT, once, when
     * the libraries load: set them and re-execute ourselves (DESIGN.md §8).
     * A short spin (5000) keeps idle-machine speed and, measured with one
     * competing busy process, cuts a training run from 69 s to 49 s (default
     * spin) -- idle OpenMP workers otherwise spin against the other process.
     * Values the user set are kept; APQ_REEXEC guards the loop. */
    if (!getenv("APQ_REEXEC") && argv) {
        const char *core = choose_coretype();
        int again = 0;
        if (!getenv("OPENBLAS_CORETYPE") && core) again = !setenv("OPENBLAS_CORETYPE", core, 1);
        if (!getenv("GOMP_SPINCOUNT") && !getenv("OMP_WAIT_POLICY"))
            again |= !setenv("GOMP_SPINCOUNT", "5000", 1);
        if (again) {
            setenv("APQ_REEXEC", "1", 1);
            execv("/proc/self/exe", argv);
            /* exec failed: carry on with the libraries' defaults */
        }
    }
    if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads <= 0) threads = 1;
    n_threads = threads;
    /* One thread pool: OpenMP. OpenBLAS runs single-threaded and nn/ splits
     * large products across OpenMP threads; two pools spinning against each
     * other on 2 cores cost a third of the time. */
    openblas_set_num_threads(1);
    omp_set_num_threads(threads);
    if (!getenv("APQ_QUIET"))
        apq_log("OpenBLAS kernel %s (OPENBLAS_CORETYPE=%s), %d OpenMP thread%s",
                openblas_get_corename(),
                getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset", threads,
                threads == 1 ? "" : "s");
    return threads;
}

int apq_threads(void) {
    return n_threads;
}

const char *apq_blas_kernel(void) {
    const char *k = openblas_get_corename();
    return k && *k ? k : "unknown";
}

const char *apq_git_rev(void) {
    static char rev[64];
    if (rev[0]) return rev;
    snprintf(rev, sizeof rev, "unknown");
#ifdef APQ_SRC_DIR
    FILE *p = popen("git -C '" APQ_SRC_DIR "' rev-parse --short=12 HEAD 2>/dev/null", "r");
    if (p) {
        char buf[64] = {0};
        if (fgets(buf, sizeof buf, p) && buf[0] >= '0') {
            buf[strcspn(buf, "\r\n")] = 0;
            snprintf(rev, sizeof rev, "%s", buf);
        }
        pclose(p);
        p = popen("git -C '" APQ_SRC_DIR "' status --porcelain --untracked-files=no 2>/dev/null",
                  "r");
        if (p && strcmp(rev, "unknown")) {
            char buf2[8];
            if (fgets(buf2, sizeof buf2, p)) strncat(rev, "-dirty", sizeof rev - strlen(rev) - 1);
        }
        if (p) pclose(p);
    }
#endif
    return rev;
}

/* ---- progress ------------------------------------------------------------- */

void progress_init(struct apq_progress *p, const char *label, const char *unit, long total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->t0 = p->t_last = apq_time();
    p->tty = isatty(2);
}

void progress_resume(struct apq_progress *p, long done) {
    p->done0 = done;
    if (p->work_total <= 0) p->work_last = (double)done;
}

void progress_work(struct apq_progress *p, double work, double work_total) {
    if (p->work_total <= 0) p->work_last = work; /* the first call: work before this run */
    p->work = work;
    p->work_total = work_total;
}

static void fmt_time(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

#define PROGRESS_TAU 60.0 /* s: time constant of the recent rate behind the ETA */

void progress_update(struct apq_progress *p, long done, const char *extra) {
    double now = apq_time();
    double gap = p->tty ? 0.25 : 10.0;
    if (now - p->t_last < gap && done < p->total) return;
    double dt = now - p->t_last, el = now - p->t0;
    double work = p->work_total > 0 ? p->work : (double)done;
    double work_total = p->work_total > 0 ? p->work_total : (double)p->total;
    double recent = dt > 0 ? (work - p->work_last) / dt : 0;
    if (p->work_rate <= 0)
        p->work_rate = el > 0 ? recent : 0; /* the first line: this run's mean */
    else
        p->work_rate += (1.0 - exp(-dt / PROGRESS_TAU)) * (recent - p->work_rate);
    p->t_last = now;
    p->work_last = work;
    double rate = el > 0 ? (done - p->done0) / el : 0;
    char eta[32], elapsed[32];
    fmt_time(eta, sizeof eta, p->work_rate > 0 ? (work_total - work) / p->work_rate : -1);
    fmt_time(elapsed, sizeof elapsed, el);
    fprintf(stderr, "%s%s: %s %ld/%ld %s, %.1f %s/s, %s elapsed, ETA %s%s%s%s", p->tty ? "\r" : "",
            apq_prog, p->label, done, p->total, p->unit, rate, p->unit, elapsed, eta,
            extra ? ", " : "", extra ? extra : "", p->tty ? "\033[K" : "\n");
}

void progress_end(struct apq_progress *p, const char *extra) {
    double el = apq_time() - p->t0;
    char elapsed[32];
    fmt_time(elapsed, sizeof elapsed, el);
    fprintf(stderr, "%s%s: %s done: %ld %s in %s (%.1f %s/s)%s%s%s\n", p->tty ? "\r" : "", apq_prog,
            p->label, p->total, p->unit, elapsed, el > 0 ? (p->total - p->done0) / el : 0.0,
            p->unit, extra ? ", " : "", extra ? extra : "", p->tty ? "\033[K" : "");
}
