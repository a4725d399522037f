/* evolve.c — evolutionary search under hard budgets (reference/apq.md §10, ofa.md §9.4).
 *
 * A candidate carries a genome: a full arch whose inactive blocks keep their
 * genes (kernel, mid, bits), so raising a stage's depth by mutation or
 * crossover wakes up blocks with the values they last had (as OFA's encoder
 * keeps all 20 blocks). Fitness and cost see the canonical arch.
 * Not here: the Pareto front and budget sweeps (pareto.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search.h"

#define CHILD_TRIES 100 /* redraws of one child before it falls back to a copy of its parent */

struct evo_cfg evo_cfg_default(void) {
    return (struct evo_cfg){.population = 100,
                            .parents = 25,
                            .mutants = 50,
                            .crossovers = 50,
                            .generations = 500,
                            .mutate_prob = 0.1,
                            .latency_ms = 0,
                            .energy_mj = 0,
                            .max_tries = 100000};
}

struct cand {
    struct arch gene; /* full genome */
    struct arch arch; /* canonical */
    uint64_t hash;    /* arch_hash of arch */
    float acc;
    double ms, mj;
};

struct evo {
    const struct space *s;
    const struct evo_cfg *cfg;
    evo_cost_fn cost;
    void *cost_ctx;
    struct rng r;
};

// ---- genomes -----------------------------------------------------------------------

static int pick(struct rng *r, const int *choices, int n) {
    return choices[rng_int(r, (unsigned long)n)];
}

static int pick_mid(struct rng *r, const struct space *s, int i) {
    const struct space_block *b = &s->block[i];
    return b->mid_min + s->mid_step * (int)rng_int(r, (unsigned long)b->n_mid);
}

static int pick_depth(struct rng *r, const struct space *s, int st) {
    int lo = s->stage[st].min_depth, hi = s->stage[st].max_depth;
    return lo + (int)rng_int(r, (unsigned long)(hi - lo + 1));
}

static void gene_sample(struct evo *e, struct arch *g) {
    const struct space *s = e->s;
    memset(g, 0, sizeof *g);
    g->res = (uint16_t)pick(&e->r, s->res, s->n_res);
    for (int st = 0; st < s->n_stages; st++) g->depth[st] = (uint8_t)pick_depth(&e->r, s, st);
    for (int i = 0; i < s->n_blocks; i++) {
        g->ks[i] = (uint8_t)pick(&e->r, s->kernels, s->n_kernels);
        g->mid[i] = (uint16_t)pick_mid(&e->r, s, i);
        g->pw_w[i] = (uint8_t)pick(&e->r, s->bits, s->n_bits);
        g->pw_a[i] = (uint8_t)pick(&e->r, s->bits, s->n_bits);
        g->dw_w[i] = (uint8_t)pick(&e->r, s->bits, s->n_bits);
        g->dw_a[i] = (uint8_t)pick(&e->r, s->bits, s->n_bits);
    }
}

/* Give the inactive blocks of a canonical arch the smallest genes. */
static void gene_fill(const struct space *s, struct arch *g) {
    for (int i = 0; i < s->n_blocks; i++) {
        if (arch_block_active(s, g, i)) continue;
        g->ks[i] = (uint8_t)s->kernels[0];
        g->mid[i] = (uint16_t)s->block[i].mid_min;
        g->pw_w[i] = g->pw_a[i] = g->dw_w[i] = g->dw_a[i] = (uint8_t)s->bits[0];
    }
}

/* Each gene resampled with probability p: resolution, depth per stage, and per
 * block kernel, mid and each of the four bit-widths. */
static void gene_mutate(struct evo *e, const struct arch *parent, struct arch *g) {
    const struct space *s = e->s;
    struct rng *r = &e->r;
    double p = e->cfg->mutate_prob;
    *g = *parent;
    if (rng_uniform(r) < p) g->res = (uint16_t)pick(r, s->res, s->n_res);
    for (int st = 0; st < s->n_stages; st++)
        if (rng_uniform(r) < p) g->depth[st] = (uint8_t)pick_depth(r, s, st);
    for (int i = 0; i < s->n_blocks; i++) {
        if (rng_uniform(r) < p) g->ks[i] = (uint8_t)pick(r, s->kernels, s->n_kernels);
        if (rng_uniform(r) < p) g->mid[i] = (uint16_t)pick_mid(r, s, i);
        uint8_t *bits[4] = {&g->pw_w[i], &g->pw_a[i], &g->dw_w[i], &g->dw_a[i]};
        for (int j = 0; j < 4; j++)
            if (rng_uniform(r) < p) *bits[j] = (uint8_t)pick(r, s->bits, s->n_bits);
    }
}

/* Resolution, each stage's depth and each block's genes from either parent. */
static void gene_cross(struct evo *e, const struct arch *a, const struct arch *b, struct arch *g) {
    const struct space *s = e->s;
    struct rng *r = &e->r;
    *g = *a;
    if (rng_uniform(r) < 0.5) g->res = b->res;
    for (int st = 0; st < s->n_stages; st++)
        if (rng_uniform(r) < 0.5) g->depth[st] = b->depth[st];
    for (int i = 0; i < s->n_blocks; i++) {
        if (rng_uniform(r) >= 0.5) continue;
        g->ks[i] = b->ks[i];
        g->mid[i] = b->mid[i];
        g->pw_w[i] = b->pw_w[i];
        g->pw_a[i] = b->pw_a[i];
        g->dw_w[i] = b->dw_w[i];
        g->dw_a[i] = b->dw_a[i];
    }
}

// ---- constraints -------------------------------------------------------------------

static int within(const struct evo_cfg *c, double ms, double mj) {
    return (c->latency_ms <= 0 || ms <= c->latency_ms) && (c->energy_mj <= 0 || mj <= c->energy_mj);
}

/* Canonicalise c->gene into c->arch and cost it; returns 1 when within the
 * budgets, 0 when not, or a negative status from the cost callback. */
static int cand_feasible(struct evo *e, struct cand *c) {
    c->arch = c->gene;
    arch_canonicalize(e->s, &c->arch);
    int rc = e->cost(e->cost_ctx, &c->arch, &c->ms, &c->mj);
    if (rc < 0) return rc;
    c->hash = arch_hash(&c->arch);
    return within(e->cfg, c->ms, c->mj);
}

static int infeasible(const struct evo_cfg *c, double ms, double mj) {
    if (c->latency_ms > 0 && ms > c->latency_ms)
        return apq_set_error(APQ_EINFEASIBLE,
                             "latency budget %g ms is below the smallest subnet's %g ms",
                             c->latency_ms, ms);
    return apq_set_error(APQ_EINFEASIBLE,
                         "energy budget %g mJ is below the smallest subnet's %g mJ", c->energy_mj,
                         mj);
}

/* Fill pop[0..population-1] (returns the count, >= 1) or a negative status. */
static int init_population(struct evo *e, struct cand *pop) {
    const struct space *s = e->s;
    const struct evo_cfg *c = e->cfg;
    struct cand small = {0};
    arch_smallest(s, s->bits[0], &small.gene);
    gene_fill(s, &small.gene);
    int rc = cand_feasible(e, &small);
    if (rc < 0) return rc;
    if (rc == 0) return infeasible(c, small.ms, small.mj);
    /* uniform draws first; when the budget rejects most of them, mutate feasible members */
    long tries = 0, uniform = (long)c->population * 50;
    if (uniform > c->max_tries) uniform = c->max_tries;
    int n = 0;
    while (n < c->population && tries < uniform) {
        tries++;
        gene_sample(e, &pop[n].gene);
        if ((rc = cand_feasible(e, &pop[n])) < 0) return rc;
        n += rc;
    }
    if (n == 0) pop[n++] = small;
    while (n < c->population && tries < c->max_tries) {
        tries++;
        gene_mutate(e, &pop[rng_int(&e->r, (unsigned long)n)].gene, &pop[n].gene);
        if ((rc = cand_feasible(e, &pop[n])) < 0) return rc;
        n += rc;
    }
    return n;
}

// ---- selection ---------------------------------------------------------------------

static int by_fitness(const void *pa, const void *pb) {
    const struct cand *a = pa, *b = pb;
    if (a->acc != b->acc) return a->acc > b->acc ? -1 : 1;
    if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
    return memcmp(&a->gene, &b->gene, sizeof a->gene);
}

/* Sort pop[0..n-1] by fitness and move the best `k` distinct archs to the front. */
static int select_parents(struct cand *pop, int n, int k) {
    qsort(pop, (size_t)n, sizeof *pop, by_fitness);
    int m = 0;
    for (int i = 0; i < n && m < k; i++) {
        int dup = 0;
        for (int j = 0; j < m && !dup; j++)
            dup = pop[j].hash == pop[i].hash && arch_equal(&pop[j].arch, &pop[i].arch);
        if (dup) continue;
        if (i != m) {
            struct cand t = pop[m];
            pop[m] = pop[i];
            pop[i] = t;
        }
        m++;
    }
    return m;
}

static void evaluate(struct cand *c, int n, struct arch *tmp, float *acc, evo_fitness_fn fitness,
                     void *fit_ctx, struct evo_result *best) {
    for (int i = 0; i < n; i++) tmp[i] = c[i].arch;
    fitness(fit_ctx, tmp, n, acc);
    for (int i = 0; i < n; i++) {
        c[i].acc = acc[i];
        if (acc[i] > best->acc) {
            best->acc = acc[i];
            best->best = c[i].arch;
            best->latency_ms = c[i].ms;
            best->energy_mj = c[i].mj;
        }
    }
    best->n_evaluated += n;
}

// ---- the loop ----------------------------------------------------------------------

int evo_run(const struct space *s, const struct evo_cfg *cfg, evo_cost_fn cost, void *cost_ctx,
            evo_fitness_fn fitness, void *fit_ctx, uint64_t seed, struct apq_progress *prog,
            long prog_base, struct evo_result *out) {
    APQ_ASSERT(cfg->population > 0 && cfg->parents > 0 && cfg->mutants >= 0 &&
               cfg->crossovers >= 0 && cfg->generations >= 0 && cfg->max_tries > 0);
    struct evo e = {s, cfg, cost, cost_ctx, {0}};
    int n_child = cfg->mutants + cfg->crossovers;
    int cap = cfg->parents + n_child > cfg->population ? cfg->parents + n_child : cfg->population;
    struct cand *pop = apq_xcalloc((size_t)cap, sizeof *pop);
    struct arch *tmp = apq_xcalloc((size_t)cap, sizeof *tmp);
    float *acc = apq_falloc((size_t)cap);
    memset(out, 0, sizeof *out);
    out->acc = -1e30f;
    rng_init(&e.r, seed, RNG_EVOLVE);
    int rc = init_population(&e, pop);
    if (rc < 0) goto done;
    int n = rc;
    rc = APQ_OK;
    evaluate(pop, n, tmp, acc, fitness, fit_ctx, out);
    char extra[64];
    for (int gen = 0; gen < cfg->generations; gen++) {
        int np = select_parents(pop, n, cfg->parents);
        struct cand *child = pop + np;
        for (int k = 0; k < n_child; k++) {
            const struct cand *a = &pop[rng_int(&e.r, (unsigned long)np)];
            const struct cand *b = k < cfg->mutants ? NULL : &pop[rng_int(&e.r, (unsigned long)np)];
            int ok = 0;
            for (int t = 0; t < CHILD_TRIES && !ok; t++) {
                if (b)
                    gene_cross(&e, &a->gene, &b->gene, &child[k].gene);
                else
                    gene_mutate(&e, &a->gene, &child[k].gene);
                if ((ok = cand_feasible(&e, &child[k])) < 0) {
                    rc = ok;
                    goto done;
                }
            }
            if (!ok) child[k] = *a;
        }
        evaluate(child, n_child, tmp, acc, fitness, fit_ctx, out);
        n = np + n_child;
        if (prog) {
            snprintf(extra, sizeof extra, "best predicted acc %.2f%%", 100.0 * out->acc);
            progress_update(prog, prog_base + gen + 1, extra);
        }
    }
done:
    rng_free(&e.r);
    free(acc);
    free(tmp);
    free(pop);
    return rc;
}
