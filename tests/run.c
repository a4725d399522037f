/* run.c — the test runner: runs every TEST() collected into build/tests/list.h
 * (or those whose name contains the -t argument, less those whose name
 * contains the -x argument) and ends with the line "N passed, N failed";
 * exit status 1 when any test failed. */
#include <fenv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "../util/util.h"

int test_failed_checks;
char test_tmpdir[512];

double test_max_rel_err(const float *got, const float *want, long n) {
    double scale = 1e-12, err = 0;
    for (long i = 0; i < n; i++) scale = fmax(scale, fabs((double)want[i]));
    for (long i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= err)) err = d; /* NaN propagates */
    }
    return err / scale;
}

const char *test_build_dir(void) {
    const char *b = getenv("APQ_BUILD_DIR");
    return b ? b : "build";
}

int test_vsh(int quiet, char *out, size_t n, const char *fmt, va_list ap) {
    /* a make running this runner (make -j2 test) must not reach the makes the
     * tests run: its jobserver and flags are not theirs (SANITIZE comes
     * through the environment, from the Makefile's test recipes) */
    char cmd[8192];
    int len = snprintf(cmd, sizeof cmd, "cd '%s' && unset MAKEFLAGS MFLAGS MAKELEVEL && ( %s",
                       APQ_SRC_DIR, quiet ? "APQ_QUIET=1 " : "");
    len += vsnprintf(cmd + len, sizeof cmd - (size_t)len, fmt, ap);
    if (len + 10 >= (int)sizeof cmd) return -1;
    snprintf(cmd + len, sizeof cmd - (size_t)len, " ) 2>&1");
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t got = 0;
    char buf[4096];
    for (size_t k; (k = fread(buf, 1, sizeof buf, p)) > 0;) /* all of it: no SIGPIPE */
        for (size_t i = 0; i < k && out && got + 1 < n; i++) out[got++] = buf[i];
    if (out && n) out[got] = 0;
    int st = pclose(p);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct dataset test_synthetic_dataset(int n, uint64_t seed) {
    struct dataset d = {.n = n, .h = 28, .w = 28, .n_classes = 10};
    d.images = apq_xmalloc((size_t)n * 28 * 28);
    d.labels = apq_xmalloc((size_t)n);
    struct rng r;
    rng_init(&r, seed, RNG_DATA);
    for (int i = 0; i < n * 28 * 28; i++) d.images[i] = (uint8_t)rng_int(&r, 256);
    for (int i = 0; i < n; i++) d.labels[i] = (uint8_t)rng_int(&r, 10);
    rng_free(&r);
    return d;
}

int test_sh(int quiet, char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int st = test_vsh(quiet, out, n, fmt, ap);
    va_end(ap);
    return st;
}

int test_make_tiny(char *out, size_t n, const char *runs, const char *reports, const char *extra) {
    return test_sh(0, out, n, "make -s B=%s PROFILE=tiny RUNS=%s REPORTS=%s %s", test_build_dir(),
                   runs, reports, extra);
}

int test_tiny_tree(char *runs, size_t n_runs, char *reports, size_t n_reports) {
    static char out[1 << 16];
    char e2e[600], p[1200];
    snprintf(e2e, sizeof e2e, "%.*s/pipeline_tiny_end_to_end",
             (int)(strrchr(test_tmpdir, '/') - test_tmpdir), test_tmpdir);
    snprintf(p, sizeof p, "%s/reports/tiny/bitfusion/README.md", e2e);
    const char *root = access(p, F_OK) == 0 ? e2e : test_tmpdir;
    snprintf(runs, n_runs, "%s/runs", root);
    snprintf(reports, n_reports, "%s/reports", root);
    int st = test_make_tiny(out, sizeof out, runs, reports, "");
    if (st) fprintf(stderr, "%s", out);
    CHECK(st == 0);
    return st == 0;
}

int test_n_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

#define X(name) void test_##name(void);
#include "list.h"
#undef X

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
#define X(name) {#name, test_##name},
#include "list.h"
#undef X
};

int main(int argc, char **argv) {
    const char *filter = NULL, *exclude = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            filter = argv[++i];
        else if (!strcmp(argv[i], "-x") && i + 1 < argc)
            exclude = argv[++i];
        else {
            fprintf(stderr, "usage: %s [-t name-substring] [-x name-substring]\n", argv[0]);
            return 2;
        }
    }
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    char base[] = "/tmp/apq-test-XXXXXX";
    if (!mkdtemp(base)) apq_die("cannot create a temporary directory under /tmp");
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        if (exclude && strstr(tests[i].name, exclude)) continue;
        snprintf(test_tmpdir, sizeof test_tmpdir, "%s/%s", base, tests[i].name);
        mkdir(test_tmpdir, 0700);
        test_failed_checks = 0;
        double t0 = apq_time();
        feenableexcept(FE_INVALID | FE_DIVBYZERO);
        tests[i].fn();
        fedisableexcept(FE_ALL_EXCEPT);
        double dt = apq_time() - t0;
        if (test_failed_checks) {
            failed++;
            fprintf(stderr, "FAIL %s (%d checks failed, %.2fs)\n", tests[i].name,
                    test_failed_checks, dt);
        } else {
            passed++;
            fprintf(stderr, "ok   %s (%.2fs)\n", tests[i].name, dt);
        }
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", base);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
