/* ensemble.c — K predictor MLPs: init, transfer, training on cross-validation folds, mean and
 * spread.
 *
 * Deep ensembles (Lakshminarayanan et al., NeurIPS 2017): members differ in
 * their initialisation and shuffling seeds and, with early stopping, in the
 * fold of training rows each keeps for validation. The prediction is the
 * members' mean, the spread their standard deviation.
 * Not here: one MLP (mlp.c), files (io.c).
 */
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predictor.h"

uint64_t pred_member_seed(uint64_t seed, int i) {
    return seed + (uint64_t)i * 0x9e3779b97f4a7c15ULL;
}

static int check_k(int k) {
    if (k < 1 || k > PRED_MAX_MEMBERS)
        return apq_set_error(APQ_ECONFIG, "predictor ensemble: %d members; need 1 to %d", k,
                             PRED_MAX_MEMBERS);
    return APQ_OK;
}

int pred_ensemble_init(struct pred_ensemble *e, int k, int in_dim, int bit_dim, int hidden,
                       int n_layers, uint64_t seed) {
    memset(e, 0, sizeof *e);
    int rc = check_k(k);
    for (int i = 0; i < k && rc == APQ_OK; i++, e->k = i)
        rc = predictor_init(&e->m[i], in_dim, bit_dim, hidden, n_layers, pred_member_seed(seed, i));
    if (rc < 0) pred_ensemble_free(e);
    return rc;
}

int pred_ensemble_init_transfer(struct pred_ensemble *q, const struct pred_ensemble *fp32,
                                int bit_dim, uint64_t seed) {
    memset(q, 0, sizeof *q);
    int rc = check_k(fp32->k);
    for (int i = 0; i < fp32->k && rc == APQ_OK; i++, q->k = i)
        rc = predictor_init_transfer(&q->m[i], &fp32->m[i], bit_dim, pred_member_seed(seed, i));
    if (rc < 0) pred_ensemble_free(q);
    return rc;
}

void pred_ensemble_free(struct pred_ensemble *e) {
    if (!e) return;
    for (int i = 0; i < PRED_MAX_MEMBERS; i++) predictor_free(&e->m[i]);
    memset(e, 0, sizeof *e);
}

void pred_ensemble_set_base(struct pred_ensemble *e, double mean_acc) {
    for (int i = 0; i < e->k; i++) predictor_set_base(&e->m[i], mean_acc);
}

/* Copy rows idx[0..n-1] of x (ld floats each), y into xo, yo. */
static void gather(const float *x, const float *y, size_t ld, const int *idx, int n, float *xo,
                   float *yo) {
    for (int i = 0; i < n; i++) {
        memcpy(xo + (size_t)i * ld, x + (size_t)idx[i] * ld, ld * sizeof(float));
        yo[i] = y[idx[i]];
    }
}

int pred_ensemble_train(struct pred_ensemble *e, const float *x, const float *y, int n,
                        const struct pred_train_cfg *cfg, uint64_t seed, int *n_val,
                        struct pred_fit *fits) {
    APQ_ASSERT(e->k >= 1 && n >= 2);
    int nv = 0;
    if (cfg->patience > 0) {
        nv = (int)lround(cfg->val_fraction * n);
        if (nv < 1) nv = 1;
        if (nv > n - 2) nv = n - 2; /* at least 2 rows to learn from */
    }
    size_t ld = (size_t)(e->m[0].in_dim + e->m[0].bit_dim);
    int *perm = apq_xmalloc(sizeof(int) * (size_t)n), *idx = apq_xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) perm[i] = i;
    struct rng r;
    rng_init(&r, seed, RNG_SPLIT + 100); /* the folds: apart from the held-out split's stream */
    rng_shuffle_int(&r, perm, (size_t)n);
    rng_free(&r);
    float *xt = apq_falloc((size_t)n * ld), *yt = apq_falloc((size_t)n);
    float *xv = apq_falloc((size_t)(nv > 0 ? nv : 1) * ld), *yv = apq_falloc((size_t)nv + 1);
    int rc = APQ_OK;
    for (int i = 0; i < e->k && rc == APQ_OK; i++) {
        /* fold i: positions [start, start + nv) of perm, wrapping; the rest trains */
        int start = (int)((long)i * n / e->k), nt = 0;
        for (int j = 0; j < n; j++) {
            int pos = ((j - start) % n + n) % n; /* position relative to the fold's start */
            if (pos >= nv) idx[nt++] = perm[j];
        }
        for (int j = 0; j < nv; j++) idx[nt + j] = perm[(start + j) % n];
        gather(x, y, ld, idx, nt, xt, yt);
        gather(x, y, ld, idx + nt, nv, xv, yv);
        struct pred_fit f;
        struct pred_train_cfg c = *cfg;
        char label[128];
        if (cfg->label) {
            snprintf(label, sizeof label, "%s, member %d/%d", cfg->label, i + 1, e->k);
            c.label = label;
        }
        rc = predictor_train_val(&e->m[i], xt, yt, nt, xv, yv, nv, &c, pred_member_seed(seed, i),
                                 &f);
        if (fits) fits[i] = f;
    }
    free(yv);
    free(xv);
    free(yt);
    free(xt);
    free(idx);
    free(perm);
    if (n_val) *n_val = nv;
    return rc;
}

void pred_ensemble_forward(const struct pred_ensemble *e, const float *x, int n, float *mean,
                           float *sd) {
    if (n <= 0) return;
    int k = e->k;
    float *out = apq_falloc((size_t)k * (size_t)n);
    double *v = apq_xmalloc(sizeof(double) * (size_t)k);
    for (int i = 0; i < k; i++) predictor_forward(&e->m[i], x, n, out + (size_t)i * n);
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < k; i++) v[i] = out[(size_t)i * n + j];
        mean[j] = (float)gsl_stats_mean(v, 1, (size_t)k);
        if (sd) sd[j] = k > 1 ? (float)gsl_stats_sd(v, 1, (size_t)k) : 0.0f;
    }
    free(v);
    free(out);
}

void pred_ensemble_predict(const struct pred_ensemble *e, const struct space *s,
                           const struct arch *a, int n, float *mean, float *sd) {
    if (n <= 0) return;
    const struct predictor *p = &e->m[0];
    int quant = p->bit_dim > 0, dim = encode_dim(s, quant), chunk = n < 1024 ? n : 1024;
    APQ_ASSERT(p->in_dim == encode_fp32_dim(s) && p->in_dim + p->bit_dim == dim);
    float *x = apq_falloc((size_t)chunk * (size_t)dim);
    for (int s0 = 0; s0 < n; s0 += chunk) {
        int m = n - s0 < chunk ? n - s0 : chunk;
        for (int i = 0; i < m; i++) encode_arch(s, &a[s0 + i], quant, x + (size_t)i * dim);
        pred_ensemble_forward(e, x, m, mean + s0, sd ? sd + s0 : NULL);
    }
    free(x);
}

void pred_ensemble_score(const struct pred_ensemble *e, const float *x, const float *y, int n,
                         struct pred_metrics *m) {
    size_t nn = (size_t)(n > 0 ? n : 1);
    float *mean = apq_falloc(nn);
    double *a = apq_xmalloc(sizeof(double) * nn), *b = apq_xmalloc(sizeof(double) * nn);
    pred_ensemble_forward(e, x, n, mean, NULL);
    for (int i = 0; i < n; i++) {
        a[i] = mean[i];
        b[i] = y[i];
    }
    m->rmse = rmse_points(a, b, n);
    m->tau = kendall_tau(a, b, n);
    m->member_rmse = m->member_tau = 0;
    for (int i = 0; i < e->k; i++) {
        double r, t;
        predictor_score(&e->m[i], x, y, n, &r, &t);
        m->member_rmse += r / e->k;
        m->member_tau += t / e->k;
    }
    free(b);
    free(a);
    free(mean);
}

uint64_t pred_samples_hash(const char *const *arch, const double *acc_val, size_t n) {
    uint64_t h = APQ_FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        h = apq_fnv1a(h, arch[i], strlen(arch[i]) + 1);
        uint64_t bits;
        memcpy(&bits, &acc_val[i], sizeof bits);
        unsigned char le[8];
        for (int j = 0; j < 8; j++) le[j] = (unsigned char)(bits >> (8 * j));
        h = apq_fnv1a(h, le, sizeof le);
    }
    return h;
}
