/* util.h — errors, logging, progress, runtime setup, RNG streams.
 *
 * Two error tiers (reference/aesthetics.md E1):
 *   - bugs (broken invariants) hit APQ_ASSERT, which prints file:line and aborts;
 *   - environmental failures (I/O, malformed files, bad config) return a
 *     negative apq_status and record one human-readable line with
 *     apq_set_error(); the stage's main prints it with apq_die_status().
 * Library code never calls exit().
 *
 *   int rc = h5_open_read(path, "supernet", 1, &f);
 *   if (rc < 0) apq_die_status(rc);   // "apq-search: error: <detail>"
 */
#ifndef APQ_UTIL_H
#define APQ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum apq_status {
    APQ_OK = 0,
    APQ_EIO = -1,         /* open/read/write/rename failed */
    APQ_EFORMAT = -2,     /* file content malformed, truncated, wrong version or shape */
    APQ_ECONFIG = -3,     /* bad .ini value, unknown key, bad arch string */
    APQ_ENOMEM = -4,      /* allocation failed */
    APQ_EHDF5 = -5,       /* the HDF5 library reported an error */
    APQ_EUSAGE = -6,      /* bad command line (stages exit 2) */
    APQ_EMISMATCH = -7,   /* artifact made for another space / encoding */
    APQ_EINFEASIBLE = -8, /* a budget no candidate can meet */
    APQ_ENONFINITE = -9   /* a loss or accuracy turned NaN or infinite (training diverged) */
};

/* Static text for a status code; never NULL. */
const char *apq_strerror(int status);

/* Record the detail line of the last error (printf format, no newline) and
 * return `status`, so library code can write `return apq_set_error(APQ_EIO, ...)`.
 * The buffer is per thread, 1 KiB, truncated when longer. */
int apq_set_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last recorded detail line ("" when none). Borrowed, valid until the next set. */
const char *apq_last_error(void);

/* Program name used as the log prefix (set by apq_runtime_init). */
extern const char *apq_prog;

/* Log one line to stderr: "<prog>: <message>". Results never go to stderr. */
void apq_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "<prog>: error: <message>" and exit(1). */
void apq_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Print the recorded detail of `status` and exit 1 (2 for APQ_EUSAGE). */
void apq_die_status(int status) __attribute__((noreturn));

#define APQ_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) apq_assert_fail(__FILE__, __LINE__, #cond);                                   \
    } while (0)
void apq_assert_fail(const char *file, int line, const char *cond) __attribute__((noreturn));

/* Allocation policy. Out of memory for a working buffer is a program-level
 * failure, not an input error: the helpers below print "<prog>: error: out of
 * memory (...)" and exit 1 through apq_oom, from library code too. They are
 * for buffers of bounded size (a batch, a table of samples, a GSL generator).
 * The one allocation a profile can make large, the per-step arena (its
 * batch), uses plain malloc and returns APQ_ENOMEM with a detail line instead
 * (arena_init, sn_ctx_init, supernet_train), as does the predictor's weight
 * block (predictor_init); the stages bound every profile size they read.
 * Sizes in bytes. */
void *apq_xmalloc(size_t bytes);
void *apq_xcalloc(size_t n, size_t size);
/* 64-byte-aligned allocation for float arrays; free with free(). */
float *apq_falloc(size_t n_floats);
/* The policy itself: "out of memory (<what, printf format>)", exit 1. */
void apq_oom(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* The temporary name of an artifact, "<path>.tmp.<pid>", into buf (size
 * bytes): unique per process, so two programs writing the same artifact at
 * once never share a file (the last rename wins, whole). Returns 1, or 0 when
 * it does not fit (buf then holds a truncated name). */
int apq_tmp_path(char *buf, size_t size, const char *path);

/* Flush and close f, written to `path`: APQ_OK, or APQ_EIO "path: write
 * failed: <strerror>" when any write on f or the close failed (a full disk,
 * EFBIG, EIO). f is closed in every case. */
int apq_fclose(FILE *f, const char *path);

/* Runtime setup, first thing in every program's main:
 *  - sets apq_prog from argv[0];
 *  - when OPENBLAS_CORETYPE is unset, chooses it from the CPU's features
 *    (AVX-512 -> SkylakeX, AVX2 -> Haswell) and re-executes the program so
 *    OpenBLAS sees it at load time (DESIGN.md §8); a value the user set is kept;
 *  - sets the thread count of OpenBLAS and OpenMP to `threads` (0 = the
 *    APQ_THREADS environment variable, else the number of online CPUs);
 *  - logs the OpenBLAS kernel in use;
 *  - ignores SIGXFSZ, so that a file-size limit is a write error (EFBIG)
 *    that the writers report, not a kill.
 * Returns the thread count in use (>= 1), or APQ_EUSAGE with a detail line
 * when APQ_THREADS is not a whole number from 1 to 1024 (the caller exits 2
 * with apq_die_status); nothing is set up then. */
int apq_runtime_init(int argc, char **argv, int threads);
/* Parse APQ_THREADS: *threads = its value (1..1024), or 0 when unset or
 * empty (meaning: all online CPUs). APQ_OK, or APQ_EUSAGE with the line
 * "APQ_THREADS=x: expected a whole number of threads from 1 to 1024 ...". */
int apq_threads_from_env(int *threads);
int apq_threads(void);
/* The OpenBLAS kernel in use ("Haswell", "SkylakeX", "Prescott", ...; static
 * text, never NULL). Artifacts record it beside seed, thread count and git
 * revision: the same seed and thread count give the same bits only on the
 * same kernel, since kernels may sum a product's terms in different orders. */
const char *apq_blas_kernel(void);
/* The git revision compiled in ("unknown" outside a checkout). */
const char *apq_git_rev(void);
/* Wall clock in seconds (monotonic). */
double apq_time(void);
/* 64-bit FNV-1a (Fowler-Noll-Vo) of n bytes at p, continuing from h; start
 * from APQ_FNV1A_INIT. The hash of spaces and of samples files. */
#define APQ_FNV1A_INIT 0xcbf29ce484222325ULL
uint64_t apq_fnv1a(uint64_t h, const void *p, size_t n);

/* ---- progress line ---------------------------------------------------- */
/* A progress line with rate and ETA. On a terminal it redraws in place
 * (at most 4 times a second); otherwise it logs a line every 10 s. The rate
 * shown is this run's mean (items since progress_init or progress_resume per
 * second); the ETA divides the work left by the recent rate of work (an
 * exponential average over about a minute), so it follows a change of pace,
 * e.g. a training phase whose steps cost twice as much. Work is the item
 * count unless progress_work gives it. */
struct apq_progress {
    const char *label;
    const char *unit; /* "img", "subnets", "gen" ... */
    long total, done0;
    double t0, t_last;
    double work, work_total, work_last, work_rate; /* work_total 0: work = items */
    int tty;
};
void progress_init(struct apq_progress *p, const char *label, const char *unit, long total);
/* The run starts at `done` items of total (a resumed training). */
void progress_resume(struct apq_progress *p, long done);
/* Work done and total work, in any unit proportional to time (e.g. MACs), for
 * the ETA when items differ in cost; call before each progress_update. */
void progress_work(struct apq_progress *p, double work, double work_total);
/* `done` items of `total` finished; `extra` (may be NULL) is appended, e.g. "loss 0.42". */
void progress_update(struct apq_progress *p, long done, const char *extra);
/* Final line with the total time. */
void progress_end(struct apq_progress *p, const char *extra);

/* ---- RNG streams (GSL mt19937) ---------------------------------------- */
/* One generator per purpose (weight init, sampling, evolution, shuffling),
 * seeded from (seed, stream) so that changing one stream's use does not move
 * the others (reference/aesthetics.md A4). */
struct rng {
    void *gsl; /* gsl_rng * */
};
enum rng_stream {
    RNG_INIT = 1,
    RNG_DATA = 2,
    RNG_SAMPLE = 3,
    RNG_EVOLVE = 4,
    RNG_SPLIT = 5,
    RNG_DROPOUT = 6,
    RNG_PREDICTOR = 7
};
void rng_init(struct rng *r, uint64_t seed, uint64_t stream);
void rng_free(struct rng *r);
double rng_uniform(struct rng *r);                     /* [0, 1) */
unsigned long rng_int(struct rng *r, unsigned long n); /* 0 .. n-1 */
double rng_normal(struct rng *r, double sigma);        /* N(0, sigma^2) */
void rng_shuffle_int(struct rng *r, int *a, size_t n);
/* The generator's raw state (for training checkpoints): size in bytes and a
 * pointer to it (borrowed; writing it restores a saved state). */
size_t rng_state_size(const struct rng *r);
void *rng_state(struct rng *r);

#endif
