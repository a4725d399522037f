/* supernet.h — the weight-sharing supernet: parameters, forward/backward of any
 * subnet, training, BN recalibration, QAT, evaluation, checkpoints.
 *
 * Parameters of the largest network live in one block (`params`, with
 * `grads` and the optimizer's `mom` mirroring it; aesthetics M1), carved into
 * named tensors. A subnet is selected by an explicit `struct arch` passed to
 * every forward (no hidden "active" state, DESIGN.md §4):
 *   - elastic width: the first `mid` middle channels (prefix views, no copy);
 *   - elastic kernel: the 7x7 depthwise kernel's centre through learned
 *     transforms 25x25 (7->5) and 9x9 (5->3) (reference/ofa.md §2);
 *   - elastic depth: the first d blocks of each stage (ofa.md §4);
 *   - elastic resolution: the input is resized to arch.res (ofa.md §5).
 * On a quantized arch every conv's weights and input activations are
 * fake-quantized (reference/apq.md §6) with ranges from a `struct sn_quant`.
 *
 * In-memory layouts: 1x1/linear weights [out][in]; depthwise weights
 * tap-major [k*k][C]; the first conv OHWI. supernet.h5 stores PyTorch order
 * (OIHW, [out,in]); see docs/formats.md.
 *
 *   struct supernet sn; supernet_init(&sn, &space, seed);
 *   struct sn_ctx ctx;  rc = sn_ctx_init(&ctx, &sn, batch, seed);  // APQ_ENOMEM
 *   float *logits = supernet_forward(&sn, &ctx, &arch, NULL, x, n, SN_TRAIN);
 *   nn_softmax_ce(dlogits, logits, y, NULL, n, 10, 0.1f);
 *   supernet_backward(&sn, &ctx, dlogits);   // accumulates into sn.grads
 */
#ifndef APQ_SUPERNET_H
#define APQ_SUPERNET_H

#include <stddef.h>

#include "../datasets/datasets.h"
#include "../nn/nn.h"
#include "arch.h"

#define SN_BN_EPS         1e-5f
#define SN_BN_MOMENTUM    0.1f
#define SN_FORMAT_VERSION 1

struct sn_bn {
    float *gamma, *beta; /* params */
    float *mean, *var;   /* running statistics (buffers) */
};

struct sn_tensor {
    char name[96];       /* path in the network, e.g. "stage2/block1/depthwise/weight" */
    int rank, dims[4];   /* PyTorch order */
    int layout;          /* SN_LAYOUT_*: how memory order differs from PyTorch order */
    int is_buffer;       /* running statistics: in `bufs`, no gradient */
    int no_decay;        /* BN parameters and biases: no weight decay */
    size_t offset, size; /* in floats, into params (or bufs) */
};
enum { SN_LAYOUT_PLAIN, SN_LAYOUT_DW_TAPMAJOR, SN_LAYOUT_OHWI };

struct sn_block {
    float *expand_w;                     /* [mid_max][cin] */
    struct sn_bn expand_bn;              /* [mid_max] */
    float *dw_w;                         /* [K*K][mid_max], K = max kernel, tap-major */
    float *transform[SPACE_MAX_CHOICES]; /* transform[j]: kernels[j+1] -> kernels[j],
                                            [kernels[j]^2][kernels[j]^2] */
    struct sn_bn dw_bn;                  /* [mid_max] */
    float *project_w;                    /* [cout][mid_max] */
    struct sn_bn project_bn;             /* [cout] */
};

struct supernet {
    struct space s;
    size_t n_params, n_bufs;
    float *params, *grads, *mom; /* [n_params] each, owned */
    float *bufs;                 /* [n_bufs] running statistics, owned */
    int n_tensors;
    struct sn_tensor *tensors; /* owned */
    /* views into params/bufs */
    float *first_conv_w; /* OHWI [C0][k][k][in_ch] */
    struct sn_bn first_conv_bn;
    float *first_dw_w; /* [9][C0] */
    struct sn_bn first_dw_bn;
    float *first_pw_w; /* [C1][C0] */
    struct sn_bn first_pw_bn;
    struct sn_block block[SPACE_MAX_BLOCKS];
    float *mix_w; /* [F][C_last] */
    struct sn_bn mix_bn;
    float *cls_w, *cls_b; /* [classes][F], [classes] */
};

/* Allocate and initialise (reference/ofa.md §6.1: conv N(0, sqrt(2/(k*k*C_out))),
 * linear U(+-1/sqrt(fan_in)), BN gamma 1 beta 0, transforms identity, running
 * var 1). zero_last_gamma: BigNAS's zero-initialised last BN gamma of
 * residual blocks (ofa.md §10). Deterministic from seed (RNG_INIT). */
void supernet_init(struct supernet *sn, const struct space *s, uint64_t seed, int zero_last_gamma);
void supernet_free(struct supernet *sn);
/* Find a tensor by name (NULL if absent). */
const struct sn_tensor *supernet_tensor(const struct supernet *sn, const char *name);

/* ---- quantization state of one subnet (QAT) -------------------------------- */
/* Per layer of arch_layers() order: weight range T (fixed after calibration)
 * and activation clip R (trainable, with gradient). */
struct sn_quant {
    int n_layers;
    float w_range[ARCH_MAX_LAYERS];
    float a_range[ARCH_MAX_LAYERS];
    float a_grad[ARCH_MAX_LAYERS];
    float a_mom[ARCH_MAX_LAYERS];
};

/* ---- per-run workspace ------------------------------------------------------ */
enum sn_mode {
    SN_TRAIN, /* batch statistics, tape for backward, dropout */
    SN_CALIB, /* batch statistics accumulated for BN recalibration (and quant calibration) */
    SN_EVAL   /* running statistics */
};
struct sn_op;
struct sn_ctx {
    int max_batch;
    struct arena arena; /* activations and their gradients, sized for the largest subnet */
    struct sn_op *ops;  /* the tape of the last forward */
    void *nodes;        /* its activation nodes (values and gradients) */
    int n_ops, cap_ops;
    float *scratch; /* the first conv's im2col, kept from the forward for its backward */
    size_t scratch_floats;
    /* BN recalibration accumulators, per BN op in forward order */
    double *calib_mean, *calib_var;
    int calib_images;       /* images accumulated since the last reset */
    float dropout;          /* dropout before the classifier in SN_TRAIN (0 = off) */
    struct rng rng;         /* dropout masks */
    struct sn_quant *quant; /* quantization state of the last forward (NULL on fp32) */
    int quant_calibrate;    /* SN_CALIB: set quant ranges from this batch instead of quantizing */
};
/* A context for batches of up to max_batch (>= 1) images: APQ_OK, or
 * APQ_ENOMEM when its arena cannot be had ("...; hint: lower the batch in
 * the profile"), c then zeroed. sn_ctx_free on a zeroed context is a no-op. */
int sn_ctx_init(struct sn_ctx *c, const struct supernet *sn, int max_batch, uint64_t seed);
void sn_ctx_free(struct sn_ctx *c);

/* Forward a batch x [n][res][res][in_ch] (already at the arch's resolution,
 * n <= max_batch) through subnet `a`. q: quantization ranges (required on a
 * quantized arch, NULL on fp32). Returns logits [n][classes] in the arena,
 * valid until the next forward. */
float *supernet_forward(struct supernet *sn, struct sn_ctx *c, const struct arch *a,
                        struct sn_quant *q, const float *x, int n, enum sn_mode mode);
/* Backward of the last SN_TRAIN forward; dlogits [n][classes]. Accumulates
 * parameter gradients into sn->grads and activation-range gradients into q. */
void supernet_backward(struct supernet *sn, struct sn_ctx *c, const float *dlogits);

/* ---- data to the network ----------------------------------------------------- */
/* Fill x [n][res][res][1] from examples idx of d (augment: random crop + flip,
 * ofa.md §5), bilinear-resized to res. tmp holds n*h*w floats. */
void sn_input_batch(float *x, int *labels, float *tmp, const struct dataset *d, const int *idx,
                    int n, int res, int augment, struct rng *r);

/* ---- evaluation ---------------------------------------------------------------- */
/* BN recalibration (ofa.md §7): forward the first n_images of `calib` (batches
 * of `batch`, at a's resolution, no augmentation) accumulating per-batch mean
 * and variance; writes their averages into the running statistics of the
 * channels a uses. */
void supernet_recalibrate(struct supernet *sn, struct sn_ctx *c, const struct arch *a,
                          struct sn_quant *q, const struct dataset *calib, int n_images);
/* Top-1 accuracy (fraction) of subnet a on the first n_images of d (eval BN);
 * NAN when the network's outputs are not finite (diverged weights). */
double supernet_accuracy(struct supernet *sn, struct sn_ctx *c, const struct arch *a,
                         struct sn_quant *q, const struct dataset *d, int n_images);

/* ---- training ------------------------------------------------------------------ */
/* The elastic choices a training phase samples from (a sub-space of the space). */
struct sn_elastic {
    int kernel_min;    /* smallest kernel enabled (the space's max kernel: kernel fixed) */
    int depth_drop;    /* stage depth in [max - depth_drop, max], clamped at the stage's min */
    int mid_ratio_min; /* mid >= mid_ratio_min * cin (mid_ratio_max: full width only) */
};
#define SN_MAX_PHASES 8
/* One phase of a training schedule (reference/ofa.md §6.1, §10). */
struct sn_phase {
    char name[16];
    long steps;
    float lr, lr_end_frac; /* peak lr; after warm-up the cosine decays to lr*lr_end_frac */
    int warmup_steps;
    int n_sub;       /* subnets per step (gradients summed, one update) */
    int sandwich;    /* 1: largest + smallest + random (BigNAS); 0: uniform samples (OFA) */
    int kd;          /* 0: labels only; 1: in-place from the step's largest; 2: from the teacher */
    int sort;        /* -1: none; else importance-sort middle channels at the phase start,
                        keeping channels [0, sort*cin) ahead (0: full sort) (ofa.md §3) */
    int lr_continue; /* 1: this phase continues the previous phase's lr curve (one
                        warm-up + cosine over both) instead of starting its own */
    struct sn_elastic el;
};
struct sn_train_cfg {
    int n_phases;
    struct sn_phase phase[SN_MAX_PHASES];
    int batch;
    float momentum, weight_decay, label_smoothing, dropout;
    int calib_images; /* BN recalibration images for the end-of-training report */
    int eval_images;  /* val images for the end-of-training report (0: all) */
    uint64_t seed;
    const char *ckpt_path; /* resume checkpoint (NULL: none) */
    long ckpt_every;       /* steps between checkpoints */
    long stop_after;       /* tests: return after this many steps, as if killed (0: off) */
    int has_fixed;         /* train only `fixed` (its own resolution): the from-scratch baseline */
    struct arch fixed;
};
/* BigNAS sandwich (ofa.md §10): `largest_steps` of the largest subnet alone,
 * then largest + smallest + n_random random subnets per step, in-place
 * distillation from the largest (kd), lr clamped at 5% of the peak. */
void sn_schedule_sandwich(struct sn_train_cfg *cfg, const struct space *s, long largest_steps,
                          long steps, float lr, int warmup, int n_random, int kd);
/* Progressive shrinking (ofa.md §6.1) scaled to `steps[6]` steps per phase:
 * full network; elastic kernel (K=1); depth {max-1, max} (K=2); all depths
 * (K=2); width >= 4x with a full channel sort (K=4); all widths with the
 * top-4x group protected (K=4). Phase lrs are OFA's ratios of `lr`
 * (1, 0.37, 0.03, 0.09, 0.03, 0.09); warm-up on the kernel, second depth and
 * second width phases; knowledge distillation from the full network. */
void sn_schedule_ps(struct sn_train_cfg *cfg, const struct space *s, const long steps[6], float lr,
                    int warmup);
/* Uniform sample of the sub-space `el` (resolution, depth, kernel, mid). */
void sn_sample_elastic(const struct space *s, const struct sn_elastic *el, struct rng *r,
                       struct arch *a);
/* Importance sort of every block's middle channels (ofa.md §3): importance =
 * L1 norm of the projection weights reading the channel; channels
 * [0, protect_ratio*cin) keep their group ahead of the rest (0: full sort).
 * Permutes the expand rows, expand BN, depthwise columns, depthwise BN and the
 * projection's input columns, so the largest subnet computes the same function. */
void sn_sort_channels(struct supernet *sn, int protect_ratio);

struct sn_train_report {
    double acc_largest, acc_smallest; /* val accuracy after BN recalibration */
    double seconds, images_per_s;     /* this process's training time and rate */
    long steps, resumed_from;         /* total steps; step the run resumed at (0: fresh) */
};
/* Train through cfg's phases. Per step: one resolution shared by every
 * subnet (ofa.md §5), n_sub subnets forward+backward with gradients summed,
 * one SGD-Nesterov update, weight decay off for BN and biases, dropout on the
 * largest only. With ckpt_path, the full training state (weights, momentum,
 * BN buffers, teacher, data order, RNG states) is saved every ckpt_every
 * steps and a matching checkpoint is resumed, ending bit-identical to an
 * uninterrupted run. Shows a progress line. Returns APQ_OK or a negative
 * status with its detail line: APQ_ECONFIG when cfg->batch is not in
 * [1, train->n]; APQ_EFORMAT when a label of train or val is >= the space's
 * classes, or when a checkpoint of these settings is damaged (a checkpoint of
 * other settings is ignored with a log line); APQ_ENOMEM for the arena;
 * APQ_ENONFINITE when a step's loss or the final accuracy is not finite
 * ("training diverged at step N"); an I/O status when a checkpoint cannot be
 * written. */
int supernet_train(struct supernet *sn, const struct dataset *train, const struct dataset *val,
                   const struct sn_train_cfg *cfg, struct sn_train_report *rep);

/* One SGD-Nesterov step over every parameter tensor from sn->grads, with
 * momentum buffer sn->mom (PyTorch semantics, nn_sgd_step); weight decay wd
 * except on BN parameters and biases (ofa.md §6.1). lr per step. */
void sn_sgd_update(struct supernet *sn, float lr, float momentum, float wd);

/* ---- QAT -------------------------------------------------------------------- */
/* Calibrate q for quantized arch a (apq.md §6): weight ranges from the
 * weights, activation ranges from one batch of `calib`. */
void qat_calibrate(struct supernet *sn, struct sn_ctx *c, const struct arch *a, struct sn_quant *q,
                   const struct dataset *calib, int n_images);
/* Quantization-aware fine-tuning of subnet a for `steps` SGD steps of `batch`
 * images from train (lr cosine to 0, momentum 0.9 Nesterov, label smoothing 0.1);
 * updates sn's weights in place (callers snapshot/restore the supernet).
 * APQ_OK, or APQ_ENONFINITE ("QAT diverged at step i ...") when a step's
 * loss is not finite; the weights are then unusable. */
int qat_finetune(struct supernet *sn, struct sn_ctx *c, const struct arch *a, struct sn_quant *q,
                 const struct dataset *train, int steps, int batch, float lr, uint64_t seed);

/* ---- measuring one subnet (the samples and verify share the recipe) ---------- */
/* The version of supernet_measure's arithmetic: raise it with any change that
 * moves a measured accuracy (the quantizer, QAT, BN recalibration, the input
 * pipeline), so that a sampling stage does not resume rows measured before
 * it (stages/samples_io.h). */
#define SN_MEASURE_VERSION                                                                         \
    2 /* 2: a quantized residual adds the quantized block input to                                 \
          the 8-bit projection, as the integer model does */
/* The recipe every stage measures a subnet with (profile section [measure],
 * docs/formats.md "Measuring a subnet"), so that a sample's accuracy and a
 * verified row's estimate the same quantity. */
struct sn_measure {
    int calib_images;         /* BN recalibration and quantizer calibration: the first
                                 calib_images of train, in batches of the context's max_batch */
    int qat_steps, qat_batch; /* quantized archs: QAT steps of qat_batch images (0: none) */
    float qat_lr;             /* peak QAT lr, cosine to 0 */
};
/* Measure subnet a: restore sn's weights and BN buffers from snapshot
 * (n_params floats, the trained supernet; QAT and BN recalibration edit
 * them, so every measurement starts from the same state), then on a quantized arch calibrate its
 * quantizers and QAT-finetune it (qat_calibrate, qat_finetune with
 * qat_seed), recalibrate BN on train, and write the top-1 accuracy
 * (fraction) on the first n_eval[j] images of eval[j] (0: all) into acc[j],
 * j < n_sets. Needs c->max_batch >= m->qat_batch on a quantized arch.
 * APQ_OK; APQ_ENONFINITE when QAT diverges or an output is not finite
 * ("...; hint: lower qat_lr in the profile"); sn's weights then hold the
 * failed subnet (restore from snapshot). */
int supernet_measure(struct supernet *sn, struct sn_ctx *c, const float *snapshot,
                     const struct arch *a, const struct sn_measure *m, const struct dataset *train,
                     const struct dataset *const *eval, const int *n_eval, int n_sets,
                     uint64_t qat_seed, double *acc);
/* supernet_measure that also hands back the quantizers it calibrated and
 * fine-tuned (*q_out, zeroed on an fp32 arch; set only on APQ_OK), so that
 * supernet_extract can keep what was measured (stages/verify.c). */
int supernet_measure_ex(struct supernet *sn, struct sn_ctx *c, const float *snapshot,
                        const struct arch *a, const struct sn_measure *m,
                        const struct dataset *train, const struct dataset *const *eval,
                        const int *n_eval, int n_sets, uint64_t qat_seed, double *acc,
                        struct sn_quant *q_out);

/* ---- checkpoints -------------------------------------------------------------- */
/* supernet.h5 (docs/formats.md): attributes space (.ini text), space_hash,
 * format_version, git_rev, seed, profile; one dataset per tensor in PyTorch
 * order. Written to a temp file and renamed. */
/* rep (may be NULL) adds the training summary as attributes acc_val_largest,
 * acc_val_smallest, train_seconds, train_steps. */
int supernet_save(const struct supernet *sn, const char *path, uint64_t seed, const char *profile,
                  const struct sn_train_report *rep);
/* Load into an initialised supernet of the same space. A file of another space
 * (APQ_EMISMATCH), a missing tensor or a wrong shape (APQ_EFORMAT) is refused. */
int supernet_load(struct supernet *sn, const char *path);
/* Read only the space stored in a supernet.h5. */
int supernet_load_space(const char *path, struct space *s);

#endif
