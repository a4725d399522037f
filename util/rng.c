/* rng.c — RNG streams over GSL's mt19937 (reference/aesthetics.md A4). */
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "util.h"

/* splitmix64: mixes (seed, stream) into a well-spread 64-bit value. */
static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void rng_init(struct rng *r, uint64_t seed, uint64_t stream) {
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    if (!g) apq_oom("gsl_rng_alloc"); /* the program-level policy, util.h */
    /* mt19937 takes an unsigned long seed; 0 means GSL's default, avoid it */
    unsigned long s = (unsigned long)(mix64(seed ^ mix64(stream)) & 0xffffffffUL);
    gsl_rng_set(g, s ? s : 4357);
    r->gsl = g;
}

void rng_free(struct rng *r) {
    if (r && r->gsl) gsl_rng_free(r->gsl);
    if (r) r->gsl = NULL;
}

double rng_uniform(struct rng *r) {
    return gsl_rng_uniform(r->gsl);
}

unsigned long rng_int(struct rng *r, unsigned long n) {
    APQ_ASSERT(n > 0);
    return gsl_rng_uniform_int(r->gsl, n);
}

double rng_normal(struct rng *r, double sigma) {
    return gsl_ran_gaussian_ziggurat(r->gsl, sigma);
}

void rng_shuffle_int(struct rng *r, int *a, size_t n) {
    if (n > 1) gsl_ran_shuffle(r->gsl, a, n, sizeof(int));
}

size_t rng_state_size(const struct rng *r) {
    return gsl_rng_size(r->gsl);
}

void *rng_state(struct rng *r) {
    return gsl_rng_state(r->gsl);
}
