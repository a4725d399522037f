/* test_util.c — RNG streams, error recording, the progress line. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "../util/util.h"

TEST(rng_streams_reproducible) {
    struct rng a, b, c;
    rng_init(&a, 42, RNG_SAMPLE);
    rng_init(&b, 42, RNG_SAMPLE);
    rng_init(&c, 42, RNG_EVOLVE);
    int same = 1, differ = 0;
    for (int i = 0; i < 100; i++) {
        unsigned long x = rng_int(&a, 1000), y = rng_int(&b, 1000), z = rng_int(&c, 1000);
        same &= x == y;
        differ += x != z;
    }
    CHECK(same);
    CHECK(differ > 90);
    double u = rng_uniform(&a);
    CHECK(u >= 0 && u < 1);
    rng_free(&a);
    rng_free(&b);
    rng_free(&c);
}

TEST(error_detail_recorded) {
    int rc = apq_set_error(APQ_EFORMAT, "file %s: bad magic %d", "x.gz", 7);
    CHECK(rc == APQ_EFORMAT);
    CHECK(!strcmp(apq_last_error(), "file x.gz: bad magic 7"));
    CHECK(!strcmp(apq_strerror(APQ_EIO), "I/O error"));
}

/* The progress line: a resumed run's rate counts only its own items, and the
 * ETA divides the work left (progress_work) by the rate of work, not the
 * items left by the item rate. */
TEST(progress_rate_and_eta) {
    char path[600], line[256] = "";
    snprintf(path, sizeof path, "%s/progress.txt", test_tmpdir);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    struct apq_progress p;
    const double t0 = apq_time(); /* a loaded machine sleeps longer: bound by the time taken */
    progress_init(&p, "test", "steps", 100);
    progress_resume(&p, 50);         /* 50 steps were done by an earlier run */
    progress_work(&p, 10.0, 1000.0); /* ... which did 10 of 1000 units of work */
    nanosleep(&(struct timespec){.tv_nsec = 200000000}, NULL);
    progress_work(&p, 11.0, 1000.0); /* 1 unit in 0.2 s: 989 left take ~198 s */
    progress_update(&p, 100, NULL);  /* done == total: printed */
    const double dt = apq_time() - t0;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    CHECK(f && fgets(line, sizeof line, f));
    if (f) fclose(f);
    double rate = 0;
    int m = -1, s = -1;
    const char *r = strstr(line, "100/100 steps, "), *e = strstr(line, "ETA ");
    CHECK(r && sscanf(r, "100/100 steps, %lf", &rate) == 1);
    CHECK(e && sscanf(e, "ETA %dm%ds", &m, &s) == 2);
    CHECK(rate >= 50 / dt - 0.5 && rate <= 250.5);          /* 50 steps in >= 0.2 s, not 100 */
    CHECK(m * 60 + s >= 197 && m * 60 + s <= 989 * dt + 1); /* 989 units at >= 0.2 s each */
}
