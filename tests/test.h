/* test.h — the in-tree test harness (reference/aesthetics.md N5).
 *
 * A test file tests/test_<module>.c defines tests with
 *
 *   TEST(arch_roundtrip) {
 *       CHECK(x == 3);
 *       CHECK_NEAR(got, want, 1e-6);          // |got-want| <= tol
 *       CHECK_REL(got, want, 1e-4);           // relative error
 *       CHECK_ARRAY_REL(got, want, n, 1e-4);  // max relative error over n floats
 *   }
 *
 * The Makefile collects every TEST(name) into build/tests/list.h; the runner
 * (tests/run.c) runs them all, or those whose name contains argv[1]
 * ("-t substr"), and ends with the line "N passed, N failed".
 * A test passes when none of its checks failed. Checks print file:line and
 * the values on failure.
 */
#ifndef APQ_TEST_H
#define APQ_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "../datasets/datasets.h"

extern int test_failed_checks; /* reset by the runner before each test */
/* A fresh scratch directory for the current test (created by the runner). */
extern char test_tmpdir[512];

#define TEST(name) void test_##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);             \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(got, want, tol)                                                                 \
    do {                                                                                           \
        double g_ = (double)(got), w_ = (double)(want);                                            \
        if (!(fabs(g_ - w_) <= (double)(tol))) {                                                   \
            fprintf(stderr, "  %s:%d: %s = %.9g, want %.9g (tol %g)\n", __FILE__, __LINE__, #got,  \
                    g_, w_, (double)(tol));                                                        \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_REL(got, want, tol)                                                                  \
    do {                                                                                           \
        double g_ = (double)(got), w_ = (double)(want);                                            \
        double d_ = fabs(g_ - w_) / fmax(fabs(w_), 1e-12);                                         \
        if (!(d_ <= (double)(tol))) {                                                              \
            fprintf(stderr, "  %s:%d: %s = %.9g, want %.9g (rel err %.3g > %g)\n", __FILE__,       \
                    __LINE__, #got, g_, w_, d_, (double)(tol));                                    \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

/* The build folder of the programs under test ($APQ_BUILD_DIR, else "build"). */
const char *test_build_dir(void);
/* Run a shell command (printf format) in the source tree, with APQ_QUIET=1
 * when quiet (no start-up log lines); its stdout and stderr, truncated to
 * n - 1 bytes, into out (NUL-terminated; out may be NULL). Returns the
 * command's exit status, -1 when it could not run or died of a signal. */
int test_vsh(int quiet, char *out, size_t n, const char *fmt, va_list ap);
/* test_vsh with its arguments inline. */
int test_sh(int quiet, char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* make -s B=<build> PROFILE=tiny RUNS=runs REPORTS=reports <extra> through
 * test_vsh (not quiet); its exit status. */
int test_make_tiny(char *out, size_t n, const char *runs, const char *reports, const char *extra);
/* The tiny pipeline's folders, made complete by make: pipeline_tiny_end_to_end's
 * (when it ran before in this run of the tests) or the current test's own;
 * runs and reports set to them. 1 when make succeeded (else a failed CHECK). */
int test_tiny_tree(char *runs, size_t n_runs, char *reports, size_t n_reports);
/* The number of '\n' in s. */
int test_n_lines(const char *s);
/* n random 28x28 images (uniform bytes) with random labels 0..9, from seed
 * (RNG_DATA stream); free with dataset_free. */
struct dataset test_synthetic_dataset(int n, uint64_t seed);

/* Max over i of |got[i]-want[i]| / max(max_j |want[j]|, 1e-12): error relative
 * to the array's scale, so near-zero entries do not dominate. */
double test_max_rel_err(const float *got, const float *want, long n);
#define CHECK_ARRAY_REL(got, want, n, tol)                                                         \
    do {                                                                                           \
        double e_ = test_max_rel_err((got), (want), (n));                                          \
        if (!(e_ <= (double)(tol))) {                                                              \
            fprintf(stderr, "  %s:%d: %s vs %s: max rel err %.3g > %g\n", __FILE__, __LINE__,      \
                    #got, #want, e_, (double)(tol));                                               \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

#endif
