/* mlp.c — the predictor MLP: init, transfer, batched forward/backward (OpenBLAS), Adam training.
 *
 * Forward, n rows at once (x rows hold the fp32 part, then the quant part):
 *   a0 = ReLU(x[:, :in] W0^T + b0) [+ x[:, in:] Wq^T + bq]   bit branch: no activation of its own
 *   al = ReLU(a(l-1) Wl^T + bl), l = 1 .. n_layers-1
 *   out = a(L-1) wo + bo
 * Not here: the encoding (encode.c), metrics and the split (metrics.c), files (io.c).
 */
#include <cblas.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predictor.h"

// ---- parameter layout ------------------------------------------------------------

/* Carve base (NULL: only count) into the views of p's layout; returns the float count. */
static size_t carve(const struct predictor *p, float *base, struct pred_views *v) {
    size_t o = 0, H = (size_t)p->hidden;
    memset(v, 0, sizeof *v);
#define TAKE(n) (o += (n), base ? base + o - (n) : NULL)
    v->w[0] = TAKE(H * (size_t)p->in_dim);
    v->b[0] = TAKE(H);
    if (p->bit_dim) {
        v->wq = TAKE(H * (size_t)p->bit_dim);
        v->bq = TAKE(H);
    }
    for (int l = 1; l < p->n_layers; l++) {
        v->w[l] = TAKE(H * H);
        v->b[l] = TAKE(H);
    }
    v->wo = TAKE(H);
    v->bo = TAKE(1);
#undef TAKE
    return o;
}

static void fill_uniform(struct rng *r, float *w, size_t n, int fan_in) {
    double bound = 1.0 / sqrt((double)fan_in);
    for (size_t i = 0; i < n; i++) w[i] = (float)((2.0 * rng_uniform(r) - 1.0) * bound);
}

int predictor_init(struct predictor *p, int in_dim, int bit_dim, int hidden, int n_layers,
                   uint64_t seed) {
    memset(p, 0, sizeof *p);
    if (in_dim < 1 || bit_dim < 0 || hidden < 1 || hidden > PRED_MAX_HIDDEN || n_layers < 1 ||
        n_layers > PRED_MAX_LAYERS)
        return apq_set_error(APQ_ECONFIG,
                             "predictor: hidden = %d, layers = %d (in %d, bits %d); hidden must "
                             "be in [1, %d] and layers in [1, %d]",
                             hidden, n_layers, in_dim, bit_dim, PRED_MAX_HIDDEN, PRED_MAX_LAYERS);
    p->in_dim = in_dim;
    p->bit_dim = bit_dim;
    p->hidden = hidden;
    p->n_layers = n_layers;
    p->n_params = carve(p, NULL, &p->v);
    p->params = malloc(p->n_params * sizeof(float));
    if (!p->params)
        return apq_set_error(APQ_ENOMEM, "predictor: out of memory (%zu parameters)", p->n_params);
    carve(p, p->params, &p->v);
    struct rng r;
    rng_init(&r, seed, RNG_PREDICTOR);
    size_t H = (size_t)hidden;
    fill_uniform(&r, p->v.w[0], H * (size_t)in_dim, in_dim);
    fill_uniform(&r, p->v.b[0], H, in_dim);
    if (bit_dim) {
        fill_uniform(&r, p->v.wq, H * (size_t)bit_dim, bit_dim);
        fill_uniform(&r, p->v.bq, H, bit_dim);
    }
    for (int l = 1; l < n_layers; l++) {
        fill_uniform(&r, p->v.w[l], H * H, hidden);
        fill_uniform(&r, p->v.b[l], H, hidden);
    }
    fill_uniform(&r, p->v.wo, H, hidden);
    fill_uniform(&r, p->v.bo, 1, hidden);
    rng_free(&r);
    return APQ_OK;
}

/* The fresh quantized MLP is drawn exactly as the from-scratch ablation's
 * (predictor_init with the same seed), so the two differ only in the copied layers. */
int predictor_init_transfer(struct predictor *q, const struct predictor *fp32, int bit_dim,
                            uint64_t seed) {
    APQ_ASSERT(fp32->bit_dim == 0 && bit_dim > 0);
    int rc = predictor_init(q, fp32->in_dim, bit_dim, fp32->hidden, fp32->n_layers, seed);
    if (rc < 0) return rc;
    size_t H = (size_t)fp32->hidden;
    memcpy(q->v.w[0], fp32->v.w[0], H * (size_t)fp32->in_dim * sizeof(float));
    memcpy(q->v.b[0], fp32->v.b[0], H * sizeof(float));
    for (int l = 1; l < fp32->n_layers; l++) {
        memcpy(q->v.w[l], fp32->v.w[l], H * H * sizeof(float));
        memcpy(q->v.b[l], fp32->v.b[l], H * sizeof(float));
    }
    memcpy(q->v.wo, fp32->v.wo, H * sizeof(float));
    q->v.bo[0] = fp32->v.bo[0];
    q->space_hash = fp32->space_hash;
    return APQ_OK;
}

void predictor_free(struct predictor *p) {
    if (!p) return;
    free(p->params);
    memset(p, 0, sizeof *p);
}

void predictor_zero_bit_branch(struct predictor *p) {
    if (!p->bit_dim) return;
    memset(p->v.wq, 0, sizeof(float) * (size_t)p->hidden * (size_t)p->bit_dim);
    memset(p->v.bq, 0, sizeof(float) * (size_t)p->hidden);
}

void predictor_set_base(struct predictor *p, double mean_acc) {
    p->v.bo[0] = (float)mean_acc;
}

// ---- forward and backward ----------------------------------------------------------

/* Activations of up to `cap` rows. */
struct work {
    int cap;
    float *z0;                 /* [cap][H] layer 0 before ReLU (bit branch only) */
    float *a[PRED_MAX_LAYERS]; /* [cap][H] after ReLU (a0 includes the bit branch) */
    float *out, *dy, *da, *dz; /* [cap], [cap], [cap][H], [cap][H] */
};

static void work_init(struct work *w, const struct predictor *p, int cap) {
    size_t nh = (size_t)cap * (size_t)p->hidden;
    memset(w, 0, sizeof *w);
    w->cap = cap;
    w->z0 = p->bit_dim ? apq_falloc(nh) : NULL;
    for (int l = 0; l < p->n_layers; l++) w->a[l] = apq_falloc(nh);
    w->out = apq_falloc((size_t)cap);
    w->dy = apq_falloc((size_t)cap);
    w->da = apq_falloc(nh);
    w->dz = apq_falloc(nh);
}

static void work_free(struct work *w) {
    free(w->z0);
    for (int l = 0; l < PRED_MAX_LAYERS; l++) free(w->a[l]);
    free(w->out);
    free(w->dy);
    free(w->da);
    free(w->dz);
    memset(w, 0, sizeof *w);
}

/* rows of out[n][h] = bias */
static void set_rows(float *out, const float *bias, int n, int h) {
    for (int i = 0; i < n; i++) memcpy(out + (size_t)i * h, bias, (size_t)h * sizeof(float));
}

/* g[j] += sum_i d[i][j] */
static void add_colsum(float *g, const float *d, int n, int h) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < h; j++) g[j] += d[(size_t)i * h + j];
}

static void forward_ws(const struct predictor *p, struct work *w, const float *x, int n) {
    APQ_ASSERT(n <= w->cap);
    const struct pred_views *v = &p->v;
    int H = p->hidden, ld = p->in_dim + p->bit_dim;
    size_t nh = (size_t)n * H;
    float *z0 = p->bit_dim ? w->z0 : w->a[0];
    set_rows(z0, v->b[0], n, H);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, H, p->in_dim, 1.0f, x, ld, v->w[0],
                p->in_dim, 1.0f, z0, H);
    if (p->bit_dim) {
        set_rows(w->a[0], v->bq, n, H);
        for (size_t k = 0; k < nh; k++) w->a[0][k] += z0[k] > 0 ? z0[k] : 0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, H, p->bit_dim, 1.0f, x + p->in_dim,
                    ld, v->wq, p->bit_dim, 1.0f, w->a[0], H);
    } else {
        for (size_t k = 0; k < nh; k++) w->a[0][k] = z0[k] > 0 ? z0[k] : 0;
    }
    for (int l = 1; l < p->n_layers; l++) {
        float *a = w->a[l];
        set_rows(a, v->b[l], n, H);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, H, H, 1.0f, w->a[l - 1], H, v->w[l],
                    H, 1.0f, a, H);
        for (size_t k = 0; k < nh; k++) a[k] = a[k] > 0 ? a[k] : 0;
    }
    for (int i = 0; i < n; i++) w->out[i] = v->bo[0];
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, H, 1.0f, w->a[p->n_layers - 1], H, v->wo, 1, 1.0f,
                w->out, 1);
}

/* Gradient of the loss given dL/dout in w->dy, overwriting g (views of a zeroed block). */
static void backward_ws(const struct predictor *p, struct work *w, const float *x, int n,
                        const struct pred_views *g) {
    const struct pred_views *v = &p->v;
    int H = p->hidden, ld = p->in_dim + p->bit_dim, L = p->n_layers;
    size_t nh = (size_t)n * H;
    for (int i = 0; i < n; i++) g->bo[0] += w->dy[i];
    cblas_sgemv(CblasRowMajor, CblasTrans, n, H, 1.0f, w->a[L - 1], H, w->dy, 1, 1.0f, g->wo, 1);
    float *da = w->da, *dz = w->dz;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < H; j++) da[(size_t)i * H + j] = w->dy[i] * v->wo[j];
    for (int l = L - 1; l >= 1; l--) {
        const float *a = w->a[l];
        for (size_t k = 0; k < nh; k++) dz[k] = a[k] > 0 ? da[k] : 0;
        add_colsum(g->b[l], dz, n, H);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, H, n, 1.0f, dz, H, w->a[l - 1], H,
                    1.0f, g->w[l], H);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, H, H, 1.0f, dz, H, v->w[l], H,
                    0.0f, da, H);
    }
    const float *z0 = w->a[0];
    if (p->bit_dim) {
        add_colsum(g->bq, da, n, H);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, p->bit_dim, n, 1.0f, da, H,
                    x + p->in_dim, ld, 1.0f, g->wq, p->bit_dim);
        z0 = w->z0;
    }
    for (size_t k = 0; k < nh; k++) dz[k] = z0[k] > 0 ? da[k] : 0;
    add_colsum(g->b[0], dz, n, H);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, p->in_dim, n, 1.0f, dz, H, x, ld, 1.0f,
                g->w[0], p->in_dim);
}

/* MSE of rows x[n] against y[n]; dL/dout into w->dy. */
static double mse_ws(const struct predictor *p, struct work *w, const float *x, const float *y,
                     int n) {
    forward_ws(p, w, x, n);
    double loss = 0;
    for (int i = 0; i < n; i++) {
        double d = (double)w->out[i] - y[i];
        loss += d * d;
        w->dy[i] = (float)(2.0 * d / n);
    }
    return loss / n;
}

#define PRED_CHUNK 1024

void predictor_forward(const struct predictor *p, const float *x, int n, float *out) {
    if (n <= 0) return;
    struct work w;
    work_init(&w, p, n < PRED_CHUNK ? n : PRED_CHUNK);
    size_t ld = (size_t)(p->in_dim + p->bit_dim);
    for (int s = 0; s < n; s += w.cap) {
        int m = n - s < w.cap ? n - s : w.cap;
        forward_ws(p, &w, x + (size_t)s * ld, m);
        memcpy(out + s, w.out, (size_t)m * sizeof(float));
    }
    work_free(&w);
}

double predictor_loss_grad(const struct predictor *p, const float *x, const float *y, int n,
                           float *grad) {
    APQ_ASSERT(n > 0);
    struct work w;
    work_init(&w, p, n);
    double loss = mse_ws(p, &w, x, y, n);
    if (grad) {
        struct pred_views g;
        memset(grad, 0, p->n_params * sizeof(float));
        carve(p, grad, &g);
        backward_ws(p, &w, x, n, &g);
    }
    work_free(&w);
    return loss;
}

// ---- training --------------------------------------------------------------------

#define ADAM_B1  0.9
#define ADAM_B2  0.999
#define ADAM_EPS 1e-8f

/* torch.optim.Adam: g += wd*p; m, v moving averages; p -= lr/c1 * m / (sqrt(v)/sqrt(c2) + eps).
 * step = lr/c1, inv_c2s = 1/sqrt(c2). */
static void adam_step(float *restrict q, const float *restrict grad, float *restrict m,
                      float *restrict v, size_t n, float wd, float step, float inv_c2s) {
    const float b1 = (float)ADAM_B1, b2 = (float)ADAM_B2;
    for (size_t k = 0; k < n; k++) {
        float g = grad[k] + wd * q[k];
        m[k] = b1 * m[k] + (1.0f - b1) * g;
        v[k] = b2 * v[k] + (1.0f - b2) * g * g;
        q[k] -= step * m[k] / (sqrtf(v[k]) * inv_c2s + ADAM_EPS);
    }
}

/* Adam's second moments decay into subnormal floats, which are slow on x86:
 * flush them to zero on this thread while training (restored after). */
static unsigned ftz_on(void) {
#if defined(__SSE__)
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040); /* FTZ | DAZ */
    return csr;
#else
    return 0;
#endif
}
static void ftz_restore(unsigned csr) {
#if defined(__SSE__)
    _mm_setcsr(csr);
#else
    (void)csr;
#endif
}

/* One epoch of minibatch Adam over the n rows in perm's order; returns the mean training loss. */
struct adam_state {
    struct work w;
    float *grad, *m, *v, *xb, *yb;
    struct pred_views g;
    long t, total; /* steps done, steps of the whole cosine schedule */
};

static double train_epoch(struct predictor *p, struct adam_state *st, const float *x,
                          const float *y, const int *perm, int n,
                          const struct pred_train_cfg *cfg) {
    int B = st->w.cap;
    size_t ld = (size_t)(p->in_dim + p->bit_dim), np = p->n_params;
    double sum = 0;
    for (int s = 0; s < n; s += B, st->t++) {
        int nb = n - s < B ? n - s : B;
        for (int i = 0; i < nb; i++) {
            memcpy(st->xb + (size_t)i * ld, x + (size_t)perm[s + i] * ld, ld * sizeof(float));
            st->yb[i] = y[perm[s + i]];
        }
        sum += mse_ws(p, &st->w, st->xb, st->yb, nb) * nb;
        memset(st->grad, 0, np * sizeof(float));
        backward_ws(p, &st->w, st->xb, nb, &st->g);
        double lr = cfg->lr * 0.5 * (1.0 + cos(M_PI * (double)st->t / (double)st->total));
        double c1 = 1.0 - pow(ADAM_B1, (double)(st->t + 1));
        double c2 = 1.0 - pow(ADAM_B2, (double)(st->t + 1));
        adam_step(p->params, st->grad, st->m, st->v, np, (float)cfg->weight_decay, (float)(lr / c1),
                  (float)(1.0 / sqrt(c2)));
    }
    return sum / n;
}

int predictor_train_val(struct predictor *p, const float *x, const float *y, int n, const float *xv,
                        const float *yv, int n_val, const struct pred_train_cfg *cfg, uint64_t seed,
                        struct pred_fit *fit) {
    APQ_ASSERT(n > 0 && n_val >= 0);
    if (cfg->epochs < 0 || cfg->batch < 1 || cfg->patience < 0)
        return apq_set_error(APQ_ECONFIG,
                             "predictor training: epochs = %d, batch = %d, patience = %d; need "
                             "epochs >= 0, batch >= 1 and patience >= 0",
                             cfg->epochs, cfg->batch, cfg->patience);
    int B = cfg->batch < n ? cfg->batch : n, early = cfg->patience > 0 && n_val > 0;
    size_t ld = (size_t)(p->in_dim + p->bit_dim), np = p->n_params;
    struct adam_state st = {.grad = apq_falloc(np), .m = apq_falloc(np), .v = apq_falloc(np)};
    work_init(&st.w, p, B);
    st.xb = apq_falloc((size_t)B * ld);
    st.yb = apq_falloc((size_t)B);
    st.total = (long)cfg->epochs * ((n + B - 1) / B);
    memset(st.m, 0, np * sizeof(float));
    memset(st.v, 0, np * sizeof(float));
    carve(p, st.grad, &st.g);
    float *best = early ? apq_falloc(np) : NULL;
    int *perm = apq_xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) perm[i] = i;
    struct rng r;
    rng_init(&r, seed, RNG_DATA);
    struct apq_progress prog;
    if (cfg->label) progress_init(&prog, cfg->label, "epochs", cfg->epochs);

    unsigned csr = ftz_on();
    struct pred_fit f = {0};
    int rc = APQ_OK;
    char extra[80];
    for (int e = 0; e < cfg->epochs; e++) {
        rng_shuffle_int(&r, perm, (size_t)n);
        f.train_loss = train_epoch(p, &st, x, y, perm, n, cfg);
        f.epochs_run = e + 1;
        if (!isfinite(f.train_loss)) {
            rc = apq_set_error(APQ_ENONFINITE,
                               "predictor training diverged in epoch %d of %d (loss %g); hint: "
                               "lower lr in the profile",
                               e + 1, cfg->epochs, f.train_loss);
            break;
        }
        if (early) {
            double vl = predictor_loss_grad(p, xv, yv, n_val, NULL);
            if (f.best_epoch == 0 || vl < f.val_loss) {
                f.val_loss = vl;
                f.best_epoch = e + 1;
                memcpy(best, p->params, np * sizeof(float));
            } else if (e + 1 - f.best_epoch >= cfg->patience) {
                break;
            }
        }
        if (cfg->label) {
            snprintf(extra, sizeof extra, "train RMSE %.3f points", 100.0 * sqrt(f.train_loss));
            progress_update(&prog, e + 1, extra);
        }
    }
    if (early) memcpy(p->params, best, np * sizeof(float));
    if (!early) f.best_epoch = f.epochs_run;
    if (cfg->label && rc == APQ_OK) {
        snprintf(extra, sizeof extra, "train RMSE %.3f points, ran %d, kept epoch %d",
                 100.0 * sqrt(f.train_loss), f.epochs_run, f.best_epoch);
        progress_end(&prog, extra);
    }
    ftz_restore(csr);
    rng_free(&r);
    free(perm);
    free(best);
    free(st.yb);
    free(st.xb);
    free(st.v);
    free(st.m);
    free(st.grad);
    work_free(&st.w);
    if (fit) *fit = f;
    return rc;
}

int predictor_train(struct predictor *p, const float *x, const float *y, int n,
                    const struct pred_train_cfg *cfg, uint64_t seed, double *last_loss) {
    struct pred_fit f;
    int rc = predictor_train_val(p, x, y, n, NULL, NULL, 0, cfg, seed, &f);
    if (last_loss) *last_loss = f.train_loss;
    return rc;
}
