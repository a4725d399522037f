/* metrics.c — the train/held-out split and the predictor's metrics (RMSE, Kendall's tau-b,
 * pairwise ranking accuracy). */
#include <math.h>
#include <stdlib.h>

#include "predictor.h"

int predictor_split_held_out(int n, double held_out, uint64_t seed, int *perm, int *n_train) {
    int n_held;
    if (held_out >= 1 && held_out == floor(held_out) && held_out <= n)
        n_held = (int)held_out;
    else if (held_out > 0 && held_out < 1)
        n_held = (int)lround(held_out * n) > 0 ? (int)lround(held_out * n) : 1;
    else
        return apq_set_error(APQ_ECONFIG,
                             "held_out = %g: expected a count of rows (a whole number >= 1) or a "
                             "fraction in (0, 1)",
                             held_out);
    if (n - n_held < 2)
        return apq_set_error(APQ_ECONFIG,
                             "held_out = %g holds out %d of %d samples and leaves %d training "
                             "rows; at least 2 are needed (lower held_out or draw more samples)",
                             held_out, n_held, n, n - n_held);
    for (int i = 0; i < n; i++) perm[i] = i;
    struct rng r;
    rng_init(&r, seed, RNG_SPLIT);
    rng_shuffle_int(&r, perm, (size_t)n);
    rng_free(&r);
    *n_train = n - n_held;
    return APQ_OK;
}

void predictor_split(int n, uint64_t seed, int *perm, int *n_train) {
    APQ_ASSERT(n >= 3);
    int rc = predictor_split_held_out(n, 0.2, seed, perm, n_train);
    APQ_ASSERT(rc == APQ_OK);
}

double rmse_points(const double *pred, const double *truth, int n) {
    if (n <= 0) return 0;
    double s = 0;
    for (int i = 0; i < n; i++) s += (pred[i] - truth[i]) * (pred[i] - truth[i]);
    return 100.0 * sqrt(s / n);
}

double kendall_tau(const double *x, const double *y, int n) {
    long long conc = 0, disc = 0, tie_x = 0, tie_y = 0, pairs = (long long)n * (n - 1) / 2;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double dx = x[j] - x[i], dy = y[j] - y[i];
            if (dx == 0) tie_x++;
            if (dy == 0) tie_y++;
            if (dx == 0 || dy == 0) continue;
            if ((dx > 0) == (dy > 0))
                conc++;
            else
                disc++;
        }
    double den = sqrt((double)(pairs - tie_x) * (double)(pairs - tie_y));
    return den > 0 ? (double)(conc - disc) / den : 0.0;
}

double pair_accuracy(const double *pred, const double *truth, int n) {
    long long pairs = 0, right2 = 0; /* right2: twice the correctly ordered pairs */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double dt = truth[j] - truth[i], dp = pred[j] - pred[i];
            if (dt == 0) continue;
            pairs++;
            right2 += dp == 0 ? 1 : ((dp > 0) == (dt > 0)) * 2;
        }
    return pairs ? (double)right2 / (2.0 * (double)pairs) : 0.5;
}

void predictor_score(const struct predictor *p, const float *x, const float *y, int n, double *rmse,
                     double *tau) {
    float *out = apq_falloc((size_t)(n > 0 ? n : 1));
    double *a = apq_xmalloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    double *b = apq_xmalloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    predictor_forward(p, x, n, out);
    for (int i = 0; i < n; i++) {
        a[i] = out[i];
        b[i] = y[i];
    }
    *rmse = rmse_points(a, b, n);
    *tau = kendall_tau(a, b, n);
    free(b);
    free(a);
    free(out);
}
