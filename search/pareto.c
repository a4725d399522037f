/* pareto.c — the Pareto front (latency vs accuracy) and the budget sweep helpers. */
#include <math.h>
#include <stdlib.h>

#include "search.h"

int evo_cost_range(const struct space *s, evo_cost_fn cost, void *cost_ctx, double *min_ms,
                   double *min_mj, double *max_ms, double *max_mj) {
    struct arch a;
    arch_smallest(s, s->bits[0], &a);
    int rc = cost(cost_ctx, &a, min_ms, min_mj);
    if (rc < 0) return rc;
    arch_largest(s, s->bits[s->n_bits - 1], &a);
    return cost(cost_ctx, &a, max_ms, max_mj);
}

void evo_budgets(double lo, double hi, double margin, int n, double *out) {
    APQ_ASSERT(n >= 1 && lo > 0 && hi > 0);
    double a = lo * (1.0 + margin);
    if (a > hi) a = hi;
    if (n == 1) {
        out[0] = hi;
        return;
    }
    for (int i = 0; i < n; i++) out[i] = a * pow(hi / a, (double)i / (n - 1));
    out[n - 1] = hi;
}

struct points {
    const double *lat, *acc;
};

/* ascending latency, then descending accuracy, then index */
static int by_latency(const void *pa, const void *pb, void *ctx) {
    const struct points *p = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    if (p->lat[a] != p->lat[b]) return p->lat[a] < p->lat[b] ? -1 : 1;
    if (p->acc[a] != p->acc[b]) return p->acc[a] > p->acc[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

int pareto_front(const double *latency, const double *acc, int n, int *idx_out) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(latency[i]) && !isnan(acc[i])) idx_out[m++] = i;
    struct points pts = {latency, acc};
    qsort_r(idx_out, (size_t)m, sizeof *idx_out, by_latency, &pts);
    int k = 0;
    double best = -INFINITY;
    for (int j = 0; j < m; j++) {
        int i = idx_out[j];
        if (acc[i] > best) {
            best = acc[i];
            idx_out[k++] = i;
        }
    }
    return k;
}
