/* predictor.h — accuracy predictors: the arch encoding, the MLP, training, transfer.
 *
 * An MLP maps the one-hot encoding of an arch to its accuracy (a fraction in
 * [0,1]) (reference/apq.md §3-4, ofa.md §9.2). The fp32 predictor sees the
 * architecture part of the encoding; the quantization-aware one adds a bit
 * branch, Linear(bit_dim -> hidden), added after layer 0's ReLU. It starts
 * from the fp32 one ("predictor transfer") and is trained on the few
 * quantized samples.
 *
 *   struct predictor p; predictor_init(&p, encode_dim(&s, 0), 0, 400, 3, seed);
 *   predictor_train(&p, x, y, n, &cfg, seed);  predictor_save(&p, "predictor-fp32.h5", ...);
 *   predictor_load(&q, "predictor-quant.h5", &s);  predictor_predict(&q, &s, archs, n, acc);
 */
#ifndef APQ_PREDICTOR_H
#define APQ_PREDICTOR_H

#include <stddef.h>
#include <stdint.h>

#include "../supernet/arch.h"

// ---- encoding ------------------------------------------------------------------
/* Version 1 (reference/apq.md §3 with ofa.md §9.1's resolution one-hot):
 *   fp32 part  [resolution one-hot (n_res)]
 *              [block 0 kernel one-hot (n_kernels)] ... [block B-1 kernel one-hot]
 *              [block 0 mid one-hot (n_mid of block 0)] ... [block B-1 mid one-hot]
 *   quant part 4 groups in the order pw_w, pw_a, dw_w, dw_a; in each group
 *              [block 0 one-hot over the bit set (n_bits)] ... [block B-1 ...]
 * Inactive blocks are all zero in every group (depth is implicit). The
 * quant part of an fp32 arch (bits 0) is all zero. */
#define PRED_ENCODING_VERSION 1

/* Length of the fp32 part, of the quant part, and of the whole encoding
 * (fp32 part plus, when quantized, the quant part). */
int encode_fp32_dim(const struct space *s);
int encode_bits_dim(const struct space *s);
int encode_dim(const struct space *s, int quantized);
/* Write encode_dim(s, quantized) floats of 0/1 into x. `a` must pass arch_check. */
void encode_arch(const struct space *s, const struct arch *a, int quantized, float *x);

// ---- the MLP -------------------------------------------------------------------
#define PRED_MAX_LAYERS 8
#define PRED_MAX_HIDDEN 65536

/* Views into one parameter block (reference/aesthetics.md M1); the same
 * layout serves parameters, gradients and Adam moments. Row-major, PyTorch
 * order [out][in]. */
struct pred_views {
    float *w[PRED_MAX_LAYERS]; /* layer l: [hidden][l ? hidden : in_dim] */
    float *b[PRED_MAX_LAYERS]; /* [hidden] */
    float *wq, *bq;            /* bit branch [hidden][bit_dim], [hidden]; NULL when bit_dim 0 */
    float *wo, *bo;            /* regressor [1][hidden], [1] */
};

/* Held-out metrics, stored with the predictor. */
struct pred_metrics {
    double rmse; /* RMSE in accuracy points (x100) on the held-out split */
    double tau;  /* Kendall's tau-b on the held-out split */
    int n_train, n_test;
    int has_scratch; /* quantized predictor: the from-scratch ablation below is set */
    double scratch_rmse, scratch_tau;
};

struct predictor {
    int in_dim;          /* fp32 part of the input (encode_fp32_dim) */
    int bit_dim;         /* bit branch input (encode_bits_dim), 0 for the fp32 predictor */
    int hidden;          /* width of every hidden layer (400) */
    int n_layers;        /* hidden Linear+ReLU layers (3) */
    uint64_t space_hash; /* the space it was trained for (0 = not yet set) */
    size_t n_params;
    float *params; /* owned, n_params floats */
    struct pred_views v;
    struct pred_metrics metrics;
};

/* Allocate and initialise like PyTorch's default: every W and b uniform in
 * ±1/sqrt(fan_in), drawn from rng stream (seed, RNG_PREDICTOR). The input
 * rows the MLP reads are in_dim + bit_dim floats: the fp32 part, then the
 * quant part. Returns APQ_OK, APQ_ECONFIG when in_dim < 1, bit_dim < 0,
 * hidden is not in [1, PRED_MAX_HIDDEN] or n_layers not in
 * [1, PRED_MAX_LAYERS], or APQ_ENOMEM; p is zeroed on failure. */
int predictor_init(struct predictor *p, int in_dim, int bit_dim, int hidden, int n_layers,
                   uint64_t seed);
/* The quantization-aware predictor for transfer: layers 0..n_layers-1 and
 * the regressor copied from `fp32` (bit_dim 0), the bit branch fresh
 * (U(±1/sqrt(bit_dim)) from (seed, RNG_PREDICTOR)). Copies space_hash. */
int predictor_init_transfer(struct predictor *q, const struct predictor *fp32, int bit_dim,
                            uint64_t seed);
void predictor_free(struct predictor *p); /* no-op on a zeroed struct */

/* Batched forward: x is n rows of in_dim + bit_dim floats; out[n] gets the
 * predicted accuracy (fraction). */
void predictor_forward(const struct predictor *p, const float *x, int n, float *out);
/* Mean squared error of the n predictions against y[n], and its gradient
 * (overwritten, same layout as p->params, n_params floats) when grad is not NULL. */
double predictor_loss_grad(const struct predictor *p, const float *x, const float *y, int n,
                           float *grad);

/* Encode n archs (quantized iff p->bit_dim > 0) and predict their accuracy. */
void predictor_predict(const struct predictor *p, const struct space *s, const struct arch *a,
                       int n, float *acc);

// ---- training ------------------------------------------------------------------
struct pred_train_cfg {
    int epochs, batch;
    double lr, weight_decay; /* Adam (L2 added to the gradient, as torch.optim.Adam) */
    const char *label;       /* progress-line label, NULL for none */
};
/* Train on n >= 1 rows x[n][in_dim+bit_dim], targets y[n] (fractions): MSE,
 * Adam (betas 0.9/0.999, eps 1e-8), minibatches of min(batch, n) reshuffled
 * every epoch from (seed, RNG_DATA), per-step cosine decay of lr to 0.
 * Deterministic for a seed and thread count. *last_loss (may be NULL) gets
 * the last epoch's mean training loss. Returns APQ_OK, APQ_ECONFIG for
 * epochs < 0 or batch < 1, or APQ_ENONFINITE ("predictor training diverged in
 * epoch e") when an epoch's loss is not finite. */
int predictor_train(struct predictor *p, const float *x, const float *y, int n,
                    const struct pred_train_cfg *cfg, uint64_t seed, double *last_loss);
/* Set the regressor's bias (OFA's base_acc: the mean training target). */
void predictor_set_base(struct predictor *p, double mean_acc);

/* The 80/20 split: perm[0..n-1] a permutation from (seed, RNG_SPLIT); the
 * first *n_train entries are the training rows, the rest (n/5) held out. */
void predictor_split(int n, uint64_t seed, int *perm, int *n_train);
/* RMSE of pred against truth in accuracy points (x100). */
double rmse_points(const double *pred, const double *truth, int n);
/* Kendall's tau-b (ties corrected), O(n^2); 0 when either side is constant. */
double kendall_tau(const double *x, const double *y, int n);
/* Pairwise ranking accuracy: over the pairs (i < j) with truth[i] != truth[j],
 * the fraction that pred orders the same way (a pair pred ties counts one
 * half, as in Harrell's concordance index); 0.5 when truth has no untied
 * pair. In [0, 1]; O(n^2). The rank figure reference/apq.md §4 asks of a
 * predictor beside RMSE (used by issue 14's transfer study). */
double pair_accuracy(const double *pred, const double *truth, int n);
/* Predict rows x[n] and score them against y[n]: RMSE (points) and tau. */
void predictor_score(const struct predictor *p, const float *x, const float *y, int n, double *rmse,
                     double *tau);

// ---- files -----------------------------------------------------------------------
/* predictor-*.h5 (docs/formats.md): provenance (format "predictor",
 * version 1), attributes space_hash ("%016llx"), space_name,
 * encoding_version, in_dim, bit_dim, hidden, layers, and the metrics;
 * datasets layers/<l>/weight [hidden][in], layers/<l>/bias [hidden],
 * bits/weight [hidden][bit_dim] + bits/bias [hidden] (quantized only),
 * regressor/weight [1][hidden], regressor/bias [1]. Temp file + rename. */
int predictor_save(const struct predictor *p, const struct space *s, const char *path,
                   uint64_t seed, const char *profile);
/* Load and check: APQ_EMISMATCH (naming the file; hint: rerun make) when it
 * was made for another space or encoding version, APQ_EFORMAT for dims or
 * shapes that disagree with the space. */
int predictor_load(struct predictor *p, const char *path, const struct space *s);

#endif
