/* predictor.h — accuracy predictors: the arch encoding, the MLP, training, transfer, ensembles.
 *
 * An MLP maps the one-hot encoding of an arch to its accuracy (a fraction in
 * [0,1]) (reference/apq.md §3-4, ofa.md §9.2). The fp32 predictor sees the
 * architecture part of the encoding; the quantization-aware one adds a bit
 * branch, Linear(bit_dim -> hidden), added after layer 0's ReLU. It starts
 * from the fp32 one ("predictor transfer") and is trained on the few
 * quantized samples. A predictor file holds an ensemble of K such MLPs
 * (own seeds, own validation folds): the prediction is their mean, the
 * spread their standard deviation (Lakshminarayanan et al. 2017, "deep ensembles").
 *
 *   struct predictor p; predictor_init(&p, encode_dim(&s, 0), 0, 400, 3, seed);   one MLP
 *   predictor_train(&p, x, y, n, &cfg, seed, NULL);  predictor_score(&p, xt, yt, nt, &rmse, &tau);
 *   pred_ensemble_load(&e, "predictor-quant.h5", &s);  pred_ensemble_predict(&e, &s, a, n, mean,
 * sd);
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

struct predictor {
    int in_dim;          /* fp32 part of the input (encode_fp32_dim) */
    int bit_dim;         /* bit branch input (encode_bits_dim), 0 for the fp32 predictor */
    int hidden;          /* width of every hidden layer (400) */
    int n_layers;        /* hidden Linear+ReLU layers (3) */
    uint64_t space_hash; /* the space it was trained for (0 = not yet set) */
    size_t n_params;
    float *params; /* owned, n_params floats */
    struct pred_views v;
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
/* Set the bit branch (wq, bq) to 0, so a transferred predictor starts as
 * exactly the fp32 one's function (an option; APQ keeps the uniform init).
 * No-op when bit_dim is 0. */
void predictor_zero_bit_branch(struct predictor *p);

/* Batched forward: x is n rows of in_dim + bit_dim floats; out[n] gets the
 * predicted accuracy (fraction). */
void predictor_forward(const struct predictor *p, const float *x, int n, float *out);
/* Mean squared error of the n predictions against y[n], and its gradient
 * (overwritten, same layout as p->params, n_params floats) when grad is not NULL. */
double predictor_loss_grad(const struct predictor *p, const float *x, const float *y, int n,
                           float *grad);

// ---- training ------------------------------------------------------------------
struct pred_train_cfg {
    int epochs, batch;
    double lr, weight_decay; /* Adam (L2 added to the gradient, as torch.optim.Adam) */
    int patience;            /* early stopping: stop after this many epochs without a new best
                                validation loss; 0 = off (needs validation rows when > 0) */
    double val_fraction;     /* pred_ensemble_train: share of the training rows each member
                                holds out as its validation fold (used when patience > 0) */
    const char *label;       /* progress-line label, NULL for none */
};
/* What one training run did. */
struct pred_fit {
    int epochs_run;    /* epochs trained: cfg->epochs, fewer when stopped early */
    int best_epoch;    /* 1-based epoch whose parameters were kept (epochs_run without
                          validation rows) */
    double train_loss; /* mean training MSE (fraction^2) of the last epoch run */
    double val_loss;   /* validation MSE of the kept parameters; 0 without validation rows */
};
/* Train on n >= 1 rows x[n][in_dim+bit_dim], targets y[n] (fractions): MSE,
 * Adam (betas 0.9/0.999, eps 1e-8), minibatches of min(batch, n) reshuffled
 * every epoch from (seed, RNG_DATA), per-step cosine decay of lr to 0 over
 * cfg->epochs. With n_val >= 1 validation rows xv[n_val], yv[n_val] and
 * cfg->patience > 0 (early stopping, Prechelt 1998): the validation MSE is
 * measured after every epoch, training stops after `patience` epochs without
 * a new minimum, and p ends with the parameters of the epoch of least
 * validation loss (the first of equals; the initial parameters do not compete:
 * measured on the quick samples, that changed nothing, docs/predictor.md). Deterministic for a seed
 * and thread count. fit (may be NULL) gets the summary. Returns APQ_OK, APQ_ECONFIG for epochs < 0,
 * batch < 1 or patience < 0, or APQ_ENONFINITE ("predictor training diverged in epoch e") when an
 * epoch's loss is not finite. */
int predictor_train_val(struct predictor *p, const float *x, const float *y, int n, const float *xv,
                        const float *yv, int n_val, const struct pred_train_cfg *cfg, uint64_t seed,
                        struct pred_fit *fit);
/* predictor_train_val without validation rows (cfg->patience is ignored);
 * *last_loss (may be NULL) gets the last epoch's mean training loss. */
int predictor_train(struct predictor *p, const float *x, const float *y, int n,
                    const struct pred_train_cfg *cfg, uint64_t seed, double *last_loss);
/* Set the regressor's bias (OFA's base_acc: the mean training target). */
void predictor_set_base(struct predictor *p, double mean_acc);

/* The 80/20 split: predictor_split_held_out(n, 0.2, ...). */
void predictor_split(int n, uint64_t seed, int *perm, int *n_train);
/* Seeded train/held-out split of n >= 3 rows: perm[0..n-1] is a permutation
 * of 0..n-1 from (seed, RNG_SPLIT) (GSL mt19937, gsl_ran_shuffle's
 * Fisher-Yates); the first *n_train entries are the training rows, the other
 * n_held rows are held out, where n_held = held_out when held_out >= 1 (a
 * count, must be whole), else max(1, round(held_out * n)) (a fraction in
 * (0, 1)). Returns APQ_OK, or APQ_ECONFIG ("held_out = ... leaves ... training
 * rows of n; at least 2 are needed") when fewer than 2 training rows remain
 * or held_out is not a count >= 1 or a fraction in (0, 1). */
int predictor_split_held_out(int n, double held_out, uint64_t seed, int *perm, int *n_train);
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

// ---- ensembles -------------------------------------------------------------------
#define PRED_MAX_MEMBERS 16

/* Held-out figures, stored with the predictor (RMSE in points, Kendall's tau-b). */
struct pred_metrics {
    double rmse, tau;               /* the ensemble mean */
    double member_rmse, member_tau; /* mean over members of each member's own figures */
    int has_scratch; /* quantized predictor: the same ensemble trained from scratch on the same
                        split (the ablation of transfer) is scored below */
    double scratch_rmse, scratch_tau;
};

/* What a predictor was trained on (docs/formats.md §9). */
struct pred_provenance {
    char profile[64];
    char samples[512];     /* samples file, the path as given */
    uint64_t samples_hash; /* pred_samples_hash of all its rows */
    int n_train;           /* rows the members learnt from (their validation folds included) */
    int n_val;             /* rows of each member's validation fold (0: no early stopping) */
    int n_held_out;        /* rows no training step saw, scored for metrics */
};

struct pred_ensemble {
    int k;                                /* members, 1..PRED_MAX_MEMBERS */
    struct predictor m[PRED_MAX_MEMBERS]; /* equal dims; m[i] seeded pred_member_seed(seed, i) */
    struct pred_metrics metrics;
    struct pred_provenance prov;
};

/* Member i's seed: seed + i * 0x9e3779b97f4a7c15 (mod 2^64), so member 0 is
 * the single MLP of `seed` and no two (seed, member) pairs of nearby seeds share one. */
uint64_t pred_member_seed(uint64_t seed, int i);
/* k members, each predictor_init(in_dim, bit_dim, hidden, n_layers,
 * pred_member_seed(seed, i)). APQ_ECONFIG when k is not in
 * [1, PRED_MAX_MEMBERS], or predictor_init's errors; e is zeroed on failure. */
int pred_ensemble_init(struct pred_ensemble *e, int k, int in_dim, int bit_dim, int hidden,
                       int n_layers, uint64_t seed);
/* The quantization-aware ensemble by transfer: member i is
 * predictor_init_transfer(&fp32->m[i], bit_dim, pred_member_seed(seed, i)),
 * as many members as fp32 (APQ's transfer, reference/apq.md §4). */
int pred_ensemble_init_transfer(struct pred_ensemble *q, const struct pred_ensemble *fp32,
                                int bit_dim, uint64_t seed);
void pred_ensemble_free(struct pred_ensemble *e); /* no-op on a zeroed struct */
/* predictor_set_base on every member. */
void pred_ensemble_set_base(struct pred_ensemble *e, double mean_acc);
/* Train every member on rows x[n], y[n] (n >= 2). With cfg->patience > 0,
 * member i holds out n_val = clamp(round(val_fraction * n), 1, n - 2) rows
 * as its validation fold: positions [i*n/k, i*n/k + n_val) (wrapping) of a
 * permutation of the rows from (seed, RNG_SPLIT + 100), so with k = 5 and
 * val_fraction 0.2 the folds are 5-fold cross-validation's; it learns from
 * the others and stops early on its fold (predictor_train_val). Without
 * patience every member learns from all n rows. Member i shuffles with
 * pred_member_seed(seed, i). *n_val gets the fold size (0 without patience),
 * fits (may be NULL) one pred_fit per member. Errors as predictor_train_val. */
int pred_ensemble_train(struct pred_ensemble *e, const float *x, const float *y, int n,
                        const struct pred_train_cfg *cfg, uint64_t seed, int *n_val,
                        struct pred_fit *fits);
/* Batched forward of rows x[n] (in_dim + bit_dim floats each): mean[n] the
 * members' mean prediction (fraction), sd[n] (may be NULL) their sample
 * standard deviation (gsl_stats_sd, denominator k-1; 0 when k = 1). */
void pred_ensemble_forward(const struct pred_ensemble *e, const float *x, int n, float *mean,
                           float *sd);
/* Encode n archs (quantized iff the members have a bit branch) and predict:
 * mean[n], sd[n] (may be NULL) as pred_ensemble_forward. */
void pred_ensemble_predict(const struct pred_ensemble *e, const struct space *s,
                           const struct arch *a, int n, float *mean, float *sd);
/* Score the ensemble mean on rows x[n], y[n] into metrics rmse and tau, and
 * each member's own figures averaged into member_rmse and member_tau. */
void pred_ensemble_score(const struct pred_ensemble *e, const float *x, const float *y, int n,
                         struct pred_metrics *m);
/* Content hash of a samples file: 64-bit FNV-1a over, row by row, the arch
 * text with its terminating NUL, then acc_val as the 8 bytes of a
 * little-endian IEEE double. Order matters; every byte of both columns counts. */
uint64_t pred_samples_hash(const char *const *arch, const double *acc_val, size_t n);

/* A samples file (docs/formats.md §8) encoded for a predictor: x [n][dim]
 * (dim = encode_dim(s, quant)), y [n] acc_val fractions, hash =
 * pred_samples_hash of its rows, and the file's seed, val_images and
 * qat_steps (-1 when absent). Owned; free with pred_samples_free. */
struct pred_samples {
    int n, dim;
    float *x, *y;
    uint64_t hash;
    int64_t seed, val_images, qat_steps;
};
/* Read and check: the file's format and version (h5 errors), its
 * space_hash against s (APQ_EMISMATCH "samples drawn from another space;
 * hint: rerun make to resample"), every row an arch of s (arch_from_string's
 * error, with the row) of the wanted kind (APQ_EMISMATCH "row i is an fp32
 * sample, but quantized samples are needed") and an acc_val in [0, 1]
 * (APQ_EFORMAT). d is zeroed on failure. */
int pred_samples_load(const char *path, const struct space *s, int quant, struct pred_samples *d);
void pred_samples_free(struct pred_samples *d);

// ---- files -----------------------------------------------------------------------
/* predictor-*.h5 (docs/formats.md §9): provenance (format "predictor",
 * version 2, seed, profile), attributes space_hash ("%016llx"), space_name,
 * encoding_version, quantized, in_dim, bit_dim, hidden, layers, ensemble,
 * samples, samples_hash ("%016llx"), n_train, n_val, n_held_out and the
 * metrics; per member i datasets members/<i>/layers/<l>/weight [hidden][in],
 * .../layers/<l>/bias [hidden], .../bits/weight [hidden][bit_dim] +
 * .../bits/bias [hidden] (quantized only), .../regressor/weight [1][hidden],
 * .../regressor/bias [1]. Temp file + rename. */
int pred_ensemble_save(const struct pred_ensemble *e, const struct space *s, const char *path,
                       uint64_t seed);
/* Load and check: APQ_EMISMATCH (naming the file, the reason and the fix)
 * when it was made for another space or encoding version, APQ_EFORMAT for
 * an older format version, or dims, shapes or attributes that disagree with
 * the space. e is zeroed on failure. */
int pred_ensemble_load(struct pred_ensemble *e, const char *path, const struct space *s);
/* One MLP from a predictor file: its member 0 (the single MLP of the file's
 * seed), with the checks and errors of pred_ensemble_load. p is zeroed on
 * failure; free with predictor_free. */
int predictor_load(struct predictor *p, const char *path, const struct space *s);

#endif
