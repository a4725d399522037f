/* test_util.c — RNG streams, error recording. */
#include <string.h>

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
