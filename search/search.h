/* search.h — evolutionary search under hard cost budgets, the Pareto front, budget sweeps.
 *
 * Evolution as in APQ (reference/apq.md §10) with its quirks fixed: every
 * child is kept (mutants and crossovers), depth and resolution mutate too,
 * parents are deduplicated by arch_hash, and the RNG is seeded (RNG_EVOLVE).
 * Candidates are quantized archs; fitness is the predicted accuracy; the
 * constraints are hard (rejection sampling). Cost and fitness come from
 * callbacks, so the search does not depend on how they are computed
 * (the stage passes a LUT and the quantized predictor).
 *
 *   struct evo_cfg c = evo_cfg_default();  c.latency_ms = 8;
 *   struct evo_result best;
 *   int rc = evo_run(&space, &c, cost, &lut_ctx, fitness, &pred_ctx, seed, NULL, 0, &best);
 */
#ifndef APQ_SEARCH_H
#define APQ_SEARCH_H

#include <stdint.h>

#include "../supernet/arch.h"

/* Latency (ms) and energy (mJ) of a quantized arch; APQ_OK or a negative
 * apq_status with a detail line (the search stops and returns it). */
typedef int (*evo_cost_fn)(void *ctx, const struct arch *a, double *latency_ms, double *energy_mj);
/* Predicted accuracy (fraction) of n archs into acc[n]. */
typedef void (*evo_fitness_fn)(void *ctx, const struct arch *a, int n, float *acc);

struct evo_cfg {
    int population;     /* initial population (100) */
    int parents;        /* survivors per generation, top by fitness, unique (25) */
    int mutants;        /* children by mutation per generation (50) */
    int crossovers;     /* children by crossover per generation (50) */
    int generations;    /* (500) */
    double mutate_prob; /* per block gene, per stage depth, resolution (0.1) */
    double latency_ms;  /* hard budget, <= 0: off */
    double energy_mj;   /* hard budget, <= 0: off */
    int max_tries;      /* draws allowed to fill the initial population (100000) */
};
struct evo_cfg evo_cfg_default(void);

struct evo_result {
    struct arch best; /* canonical, quantized */
    float acc;        /* its predicted accuracy */
    double latency_ms, energy_mj;
    long n_evaluated; /* fitness evaluations */
};

/* Run the evolution; the best candidate ever seen goes into *out. The
 * initial population is drawn uniformly (arch_sample's distribution) by
 * rejection, up to 50 draws per member; when a tight budget rejects most
 * draws it is topped up by mutating feasible members (the smallest subnet
 * when none), all within cfg->max_tries draws. Children that stay over budget
 * after 100 redraws fall back to a copy of their parent. APQ_EINFEASIBLE,
 * with the line "latency budget X ms is below the smallest subnet's Y ms"
 * (or energy), when the smallest subnet at the lowest bit-width is over a
 * budget; a cost callback's error is returned as is. `prog` (may be NULL) is
 * updated to prog_base + generations done. Deterministic for a seed (given
 * deterministic callbacks). */
int evo_run(const struct space *s, const struct evo_cfg *cfg, evo_cost_fn cost, void *cost_ctx,
            evo_fitness_fn fitness, void *fit_ctx, uint64_t seed, struct apq_progress *prog,
            long prog_base, struct evo_result *out);

/* Cost range of the space: the smallest subnet at the lowest bit-width and
 * the largest at the highest (arch_smallest / arch_largest). */
int evo_cost_range(const struct space *s, evo_cost_fn cost, void *cost_ctx, double *min_ms,
                   double *min_mj, double *max_ms, double *max_mj);
/* n log-spaced budgets from lo*(1+margin) to hi, ascending (n == 1: hi). */
void evo_budgets(double lo, double hi, double margin, int n, double *out);

/* Indices of the Pareto-optimal points (minimise latency, maximise acc)
 * into idx_out, sorted by ascending latency; returns their count. A point
 * is dropped when another is no slower and no less accurate and better in
 * one; of exact duplicates the first is kept. */
int pareto_front(const double *latency, const double *acc, int n, int *idx_out);

#endif
