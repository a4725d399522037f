/* forward.c — forward and backward of any subnet: an eager tape of kernel calls.
 *
 * supernet_forward runs each layer immediately and records an op (inputs,
 * outputs, weights, where their gradients go); supernet_backward walks the
 * tape in reverse. Activations and their gradients live in the ctx arena,
 * reset at every forward, so the hot loop allocates nothing (DESIGN.md §8).
 * Elastic kernels (reference/ofa.md §2) and fake quantization
 * (reference/apq.md §6) are "weight preparation" steps with their own
 * backward: the transform chain and the straight-through estimator.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../quant/quant.h"
#include "supernet.h"

enum op_kind {
    OP_CONV,
    OP_DW,
    OP_PW,
    OP_BN, /* batch norm, with the ReLU6 fused when op->relu6 */
    OP_ADD,
    OP_POOL,
    OP_LINEAR,
    OP_QACT,
    OP_DROP,
    OP_EXPAND_DW /* pw expand -> BN -> ReLU6 -> depthwise, training (nn_expand_dw_forward) */
};

struct node {
    float *v, *g;
    size_t n;
};

/* One elastic-kernel preparation: W_j = T_j · crop(W_{j+1}) chained down from the max kernel. */
struct kprep {
    int block, level, mid;          /* target kernel index `level`, channels */
    float *crop[SPACE_MAX_CHOICES]; /* crop[l]: [k_l^2][mid], saved for dT */
    float *w[SPACE_MAX_CHOICES];    /* w[l]: transformed kernel at level l, [k_l^2][mid] */
};

struct sn_op {
    enum op_kind kind;
    int in, in2, out; /* node indices */
    int N, H, W, C, Cout, k, stride, M;
    const float *w; /* weights as used (maybe prepared scratch) */
    int ldw;
    float *dw; /* gradient destination of the used weights */
    int lddw;
    const float *bias;
    float *dbias;
    struct kprep *kp; /* elastic-kernel chain to back-propagate dw through */
    struct sn_bn *bn;
    float *mean, *invstd;        /* saved batch statistics */
    int relu6;                   /* BN fused with ReLU6 */
    int qlayer, bits, is_signed; /* fake-quantized activation */
    struct nn_dw_pre pre; /* OP_DW with pre.scale: reads node in2 through it (the BN of node in) */
    float *mask;          /* dropout */
    struct nn_expand_dw ex; /* OP_EXPAND_DW: shapes and weights as used */
    float *dw_dw;           /* OP_EXPAND_DW: depthwise gradient (NULL: scratch + kp) */
    int lddw_dw;
};

#define MAX_NODES 512

/* A gradient buffer of the backward, in the arena; reused once dead. */
struct gbuf {
    float *p;
    size_t cap; /* floats */
    long freed; /* release stamp while free (the latest is the warmest in cache), -1 in use */
};

struct tape_nodes {
    struct node node[MAX_NODES];
    int n;
    int prod[MAX_NODES]; /* the op that produced each node (backward only), -1: none */
    struct gbuf pool[MAX_NODES];
    int n_pool;
    long stamp;
};

// ---- context -------------------------------------------------------------------

/* Upper bound on the arena floats one forward+backward of the largest subnet
 * at batch n needs: every layer keeps about 5 tensors of its output size
 * (conv out, BN out, quantized copy, and gradients), a residual's projection
 * two more (its 8-bit copy and the sum), plus weight scratch. */
static size_t arena_bound(const struct supernet *sn, int n) {
    const struct space *s = &sn->s;
    struct arch a;
    arch_largest(s, 8, &a);
    struct layer_desc L[ARCH_MAX_LAYERS];
    int nl = arch_layers(s, &a, L);
    size_t total = 0;
    for (int i = 0; i < nl; i++) {
        size_t out = (size_t)n * L[i].h_out * L[i].h_out * L[i].cout;
        size_t in = (size_t)n * L[i].h_in * L[i].h_in * L[i].cin;
        total += 8 * out + 2 * in + 4 * (size_t)layer_weights(&L[i]) + 64 * 8;
        total += 16 * 3 * (size_t)s->max_kernel * s->max_kernel * L[i].cout;
    }
    return total + (size_t)n * s->in_size * s->in_size * 4 + (1u << 20);
}

int sn_ctx_init(struct sn_ctx *c, const struct supernet *sn, int max_batch, uint64_t seed) {
    memset(c, 0, sizeof *c);
    APQ_ASSERT(max_batch >= 1);
    int rc = arena_init(&c->arena, arena_bound(sn, max_batch));
    if (rc < 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", apq_last_error());
        return apq_set_error(rc, "%s for batch %d; hint: lower the batch in the profile", why,
                             max_batch);
    }
    c->max_batch = max_batch;
    c->cap_ops = 1024;
    c->ops = apq_xcalloc((size_t)c->cap_ops, sizeof *c->ops);
    const struct space *s = &sn->s;
    c->scratch_floats =
        nn_conv_scratch_floats(max_batch, s->in_size, s->in_size, s->in_ch, s->first_conv_k, 1);
    c->scratch = apq_falloc(c->scratch_floats);
    c->calib_mean = apq_xcalloc(sn->n_bufs, sizeof(double));
    c->calib_var = apq_xcalloc(sn->n_bufs, sizeof(double));
    rng_init(&c->rng, seed, RNG_DROPOUT);
    c->nodes = apq_xcalloc(1, sizeof(struct tape_nodes));
    return APQ_OK;
}

void sn_ctx_free(struct sn_ctx *c) {
    if (!c) return;
    arena_free(&c->arena);
    free(c->ops);
    free(c->nodes);
    free(c->scratch);
    free(c->calib_mean);
    free(c->calib_var);
    rng_free(&c->rng);
    memset(c, 0, sizeof *c);
}

// ---- forward state -----------------------------------------------------------------

struct fwd {
    struct supernet *sn;
    struct sn_ctx *c;
    const struct arch *a;
    struct sn_quant *q;
    enum sn_mode mode;
    int quant;       /* quantized arch */
    int calib_quant; /* SN_CALIB pass that sets the quant ranges */
    int layer;       /* index in arch_layers order */
    int n;           /* images in the batch */
    size_t bn_off;   /* offset into the calibration accumulators */
    struct tape_nodes *t;
    int st_node;            /* node whose BN blocks the producer computed (-1: none) */
    struct nn_bn_blocks st; /* its blocks (arena) */
};

static int new_node(struct fwd *f, float *v, size_t n) {
    APQ_ASSERT(f->t->n < MAX_NODES);
    f->t->node[f->t->n] = (struct node){v, NULL, n};
    return f->t->n++;
}

static struct sn_op *new_op(struct fwd *f, enum op_kind kind) {
    struct sn_ctx *c = f->c;
    APQ_ASSERT(c->n_ops < c->cap_ops);
    struct sn_op *op = &c->ops[c->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->in = op->in2 = op->out = -1;
    return op;
}

static float *grad_of(const struct supernet *sn, const float *param) {
    return sn->grads + (param - sn->params);
}

static float *A(struct fwd *f, size_t n) {
    return arena_alloc(&f->c->arena, n);
}

// ---- layers ----------------------------------------------------------------------

/* BN recalibration: add this batch's statistics of the BN at f->bn_off,
 * weighted by the batch size (reference/ofa.md §7). */
static void calib_accumulate(struct fwd *f, const float *mean, const float *var, int C) {
    double *cm = f->c->calib_mean + f->bn_off, *cv = f->c->calib_var + f->bn_off;
    for (int i = 0; i < C; i++) {
        cm[i] += (double)mean[i] * f->n;
        cv[i] += (double)var[i] * f->n;
    }
}

/* Room for the BN blocks of the [M][C] tensor a producer is about to write
 * (training and calibration: the BN after it needs batch statistics), or NULL. */
static struct nn_bn_blocks *producer_blocks(struct fwd *f, int M, int C) {
    f->st_node = -1;
    if (f->mode == SN_EVAL) return NULL;
    size_t n = nn_bn_blocks_floats(M, C);
    f->st.mean = A(f, n);
    f->st.m2 = f->st.mean + n / 2;
    f->st.filled = 0;
    return &f->st;
}

/* The blocks of node `in` when its producer filled them, else NULL. */
static const struct nn_bn_blocks *blocks_of(const struct fwd *f, int in) {
    return f->st_node == in && f->st.filled ? &f->st : NULL;
}

/* A BN op over node `in` [M][C] and its normalisation y = act(scale*(x -
 * mean) + beta): the batch statistics (train, calibration: saved in the op
 * for the backward, accumulated for recalibration) or the running ones
 * (eval). scale and mean: [C], in the arena. */
static struct sn_op *bn_op(struct fwd *f, int in, struct sn_bn *bn, int M, int C, int relu6,
                           struct nn_dw_pre *norm) {
    struct sn_op *op = new_op(f, OP_BN);
    op->in = in;
    op->M = M;
    op->C = C;
    op->bn = bn;
    op->relu6 = relu6;
    float *scale = A(f, (size_t)C);
    *norm = (struct nn_dw_pre){scale, bn->mean, bn->beta, relu6};
    if (f->mode == SN_EVAL) {
        nn_bn_eval_scales(scale, bn->gamma, bn->var, C, SN_BN_EPS);
    } else {
        op->mean = A(f, (size_t)C);
        op->invstd = A(f, (size_t)C);
        float *var = A(f, (size_t)C);
        nn_bn_stats_train(scale, op->mean, op->invstd, var, f->t->node[in].v, bn->gamma, M, C,
                          SN_BN_EPS, blocks_of(f, in));
        if (f->mode == SN_CALIB) calib_accumulate(f, op->mean, var, C);
        norm->mean = op->mean;
    }
    f->bn_off += (size_t)C;
    return op;
}

static int emit_qact(struct fwd *f, int in, int bits, int is_signed);

/* Batch norm over node `in` [M][C], followed by ReLU6 when relu6 (one fused
 * pass); with skip >= 0, the residual sum BN(in) + skip. Unquantized, the sum
 * is made in the same pass: the BN's output node then has no values and an
 * OP_ADD node holds the sum. Quantized, as the integer model computes it
 * (docs/integer.md §3b): BN(in) fake-quantized to signed 8 bits at the range
 * of the next layer's input quantizer (layer f->layer, which the sum goes to),
 * then added to the skip (the block input as quantized for the block). */
static int emit_bn_skip(struct fwd *f, int in, struct sn_bn *bn, int M, int C, int relu6,
                        int skip) {
    const int mid8 = skip >= 0 && f->quant && !f->calib_quant;
    float *x = f->t->node[in].v;
    /* only training's backward needs the BN input: elsewhere normalise in place */
    float *y = f->mode == SN_TRAIN ? A(f, (size_t)M * C) : x;
    const float *add = skip >= 0 && !mid8 ? f->t->node[skip].v : NULL;
    struct nn_dw_pre n;
    struct sn_op *op = bn_op(f, in, bn, M, C, relu6, &n);
    nn_bn_apply(y, x, n.scale, n.mean, n.shift, M, C, relu6, add);
    op->out = new_node(f, add ? NULL : y, (size_t)M * C);
    if (skip < 0) return op->out;
    int a = op->out;
    float *sumv = y;
    if (mid8) {
        a = emit_qact(f, a, 8, 1);
        const float *p = f->t->node[a].v, *q = f->t->node[skip].v;
        sumv = A(f, (size_t)M * C);
        for (size_t i = 0; i < (size_t)M * C; i++) sumv[i] = p[i] + q[i];
    }
    struct sn_op *sum = new_op(f, OP_ADD);
    sum->in = a;
    sum->in2 = skip;
    sum->out = new_node(f, sumv, (size_t)M * C);
    return sum->out;
}

static int emit_bn(struct fwd *f, int in, struct sn_bn *bn, int M, int C, int relu6) {
    return emit_bn_skip(f, in, bn, M, C, relu6, -1);
}

/* A BN + ReLU6 whose normalisation the depthwise conv after it applies as it
 * loads (*pre): no output tensor; the op's output node has no values, only
 * the gradient the depthwise backward writes. */
static int emit_bn_pre(struct fwd *f, int in, struct sn_bn *bn, int M, int C,
                       struct nn_dw_pre *pre) {
    struct sn_op *op = bn_op(f, in, bn, M, C, 1, pre);
    op->out = new_node(f, NULL, (size_t)M * C);
    return op->out;
}

/* Fake-quantize a conv's input activation (layer f->layer); identity when unquantized. */
static int emit_qact(struct fwd *f, int in, int bits, int is_signed) {
    if (!f->quant || !bits) return in;
    struct node *x = &f->t->node[in];
    int l = f->layer;
    if (f->calib_quant) {
        f->q->a_range[l] = quant_act_range(x->v, x->n, bits, is_signed);
        return in; /* calibration pass runs unquantized (HAQ) */
    }
    float *y = A(f, x->n);
    quant_act_forward(y, x->v, x->n, bits, f->q->a_range[l], is_signed);
    struct sn_op *op = new_op(f, OP_QACT);
    op->in = in;
    op->qlayer = l;
    op->bits = bits;
    op->is_signed = is_signed;
    op->out = new_node(f, y, x->n);
    return op->out;
}

/* Weights as the conv will use them: fake-quantized dense copy on a quantized
 * arch (range calibrated or taken from q), else the original view. */
static const float *prep_weight(struct fwd *f, const float *w, int rows, int cols, int ldw,
                                int bits, int *ld_out) {
    *ld_out = ldw;
    if (!f->quant || !bits) return w;
    int l = f->layer;
    if (f->calib_quant) {
        f->q->w_range[l] = quant_weight_range(w, rows, cols, ldw, bits);
        return w;
    }
    float *wq = A(f, (size_t)rows * cols);
    quant_weight_fake(wq, w, rows, cols, ldw, bits, f->q->w_range[l]);
    *ld_out = cols;
    return wq;
}

static int emit_pw(struct fwd *f, int in, const float *w, int ldw, int M, int Cin, int Cout,
                   int wbits) {
    int ld;
    const float *wu = prep_weight(f, w, Cout, Cin, ldw, wbits, &ld);
    float *y = A(f, (size_t)M * Cout);
    struct nn_bn_blocks *st = producer_blocks(f, M, Cout); /* every pw feeds a BN */
    nn_linear_forward_bn_stats(y, Cout, f->t->node[in].v, Cin, wu, ld, M, Cin, Cout, st);
    struct sn_op *op = new_op(f, OP_PW);
    op->in = in;
    op->M = M;
    op->C = Cin;
    op->Cout = Cout;
    op->w = wu;
    op->ldw = ld;
    op->dw = grad_of(f->sn, w);
    op->lddw = ldw;
    op->out = new_node(f, y, (size_t)M * Cout);
    f->st_node = op->out;
    f->layer++;
    return op->out;
}

/* The active kernel of block b at kernel index j with `mid` channels:
 * chained transforms from the max kernel (ofa.md §2). Returns [k*k][mid]. */
static struct kprep *kernel_prep(struct fwd *f, int b, int j, int mid) {
    const struct space *s = &f->sn->s;
    const struct sn_block *blk = &f->sn->block[b];
    struct kprep *kp = (struct kprep *)A(f, (sizeof(struct kprep) + 3) / 4);
    memset(kp, 0, sizeof *kp);
    kp->block = b;
    kp->level = j;
    kp->mid = mid;
    int top = s->n_kernels - 1, K = s->max_kernel, mid_max = s->block[b].mid_max;
    const float *src = blk->dw_w;
    int src_k = K, src_ld = mid_max;
    for (int l = top - 1; l >= j; l--) {
        int k = s->kernels[l], off = (src_k - k) / 2;
        float *crop = A(f, (size_t)k * k * mid);
        for (int r = 0; r < k; r++)
            for (int cc = 0; cc < k; cc++)
                memcpy(crop + (size_t)(r * k + cc) * mid,
                       src + (size_t)((r + off) * src_k + cc + off) * src_ld, sizeof(float) * mid);
        float *w = A(f, (size_t)k * k * mid);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k * k, mid, k * k, 1.0f,
                    blk->transform[l], k * k, crop, mid, 0.0f, w, mid);
        kp->crop[l] = crop;
        kp->w[l] = w;
        src = w;
        src_k = k;
        src_ld = mid;
    }
    return kp;
}

/* The depthwise weights of block b (b < 0: the first block) at kernel k
 * with C channels, as the conv uses them (*w, *ldw: maybe a transformed or
 * fake-quantized copy in the arena) and where their gradient goes (*dw,
 * *lddw; NULL: a scratch gradient back-propagated through *kp). */
static void dw_weights(struct fwd *f, int b, int C, int k, int wbits, const float **w, int *ldw,
                       float **dw, int *lddw, struct kprep **kp) {
    const struct space *s = &f->sn->s;
    const float *w0;
    int ld0;
    *kp = NULL;
    *lddw = C;
    if (b < 0) { /* the fixed first block: 3x3 on its own weights */
        w0 = f->sn->first_dw_w;
        ld0 = C;
        *dw = grad_of(f->sn, w0);
    } else if (k == s->max_kernel) {
        w0 = f->sn->block[b].dw_w;
        ld0 = *lddw = s->block[b].mid_max;
        *dw = grad_of(f->sn, w0);
    } else {
        int j = space_choice_index(s->kernels, s->n_kernels, k);
        *kp = kernel_prep(f, b, j, C);
        w0 = (*kp)->w[j];
        ld0 = C;
        *dw = NULL; /* into a scratch gradient, then through the transforms */
    }
    *w = prep_weight(f, w0, k * k, C, ld0, wbits, ldw);
}

/* Depthwise k x k of block b (b < 0: the first block) on node `in` [N,H,H,C],
 * or, when pre, on pre(node vin) (node `in` is then the values-free output of
 * emit_bn_pre); fused with the eval-mode BN + ReLU6 `bn` that follows it when
 * bn is given (inference only, see emit_dw_bn). */
static int emit_dw(struct fwd *f, int in, int vin, const struct nn_dw_pre *pre, int b, int N, int H,
                   int C, int k, int stride, int wbits, const struct sn_bn *bn) {
    const float *wu;
    int ld, lddw;
    float *dw;
    struct kprep *kp;
    dw_weights(f, b, C, k, wbits, &wu, &ld, &dw, &lddw, &kp);
    int OH = nn_out_size(H, k, stride);
    float *y = A(f, (size_t)N * OH * OH * C);
    struct nn_dw_pre post = {0};
    if (bn) {
        float *scale = A(f, (size_t)C);
        nn_bn_eval_scales(scale, bn->gamma, bn->var, C, SN_BN_EPS);
        post = (struct nn_dw_pre){scale, bn->mean, bn->beta, 1};
    }
    nn_dw_forward_ex(y, f->t->node[pre ? vin : in].v, pre, wu, ld, N, H, H, C, k, stride,
                     bn ? &post : NULL);
    struct sn_op *op = new_op(f, OP_DW);
    op->in = in;
    if (pre) {
        op->in2 = vin;
        op->pre = *pre;
    }
    op->N = N;
    op->H = op->W = H;
    op->C = C;
    op->k = k;
    op->stride = stride;
    op->w = wu;
    op->ldw = ld;
    op->dw = dw;
    op->lddw = lddw;
    op->kp = kp;
    op->out = new_node(f, y, (size_t)N * OH * OH * C);
    f->layer++;
    return op->out;
}

/* Depthwise conv, then its BN and ReLU6: one fused pass at inference, where
 * no backward needs the BN op (bn_off only counts for SN_CALIB). */
static int emit_dw_bn(struct fwd *f, int in, int vin, const struct nn_dw_pre *pre, int b, int N,
                      int H, int C, int k, int stride, int wbits, struct sn_bn *bn) {
    if (f->mode == SN_EVAL) return emit_dw(f, in, vin, pre, b, N, H, C, k, stride, wbits, bn);
    int h = emit_dw(f, in, vin, pre, b, N, H, C, k, stride, wbits, NULL);
    int OH = nn_out_size(H, k, stride);
    return emit_bn(f, h, bn, N * OH * OH, C, 1);
}

// ---- the network -------------------------------------------------------------------

/* Expand outputs from this size up have their BN + ReLU6 applied inside the
 * depthwise conv (emit_bn_pre): tensors that live in DRAM, where the saved
 * write and read of the normalised tensor outweigh recomputing it in the
 * weight gradient. Measured 2026-11-22 (batch 128, fwd + weight gradient):
 * 28x28 layers (19-38 MB) gain 0.9-1.3 ms each; 14x14 and smaller lose
 * 0.1-0.8 ms (the recomputation, k loads per input, costs more than the
 * pass it saves while the tensor stays in L3). */
#define DW_PRE_MIN_BYTES (16u << 20)

/* Training: block b's expand, its BN + ReLU6 and the depthwise conv as one
 * op whose expanded tensor is never stored, only recomputed per image
 * (nn_expand_dw_forward: the separate ops' results within the rounding of the
 * recomputed products, nn/nn_expand.c). Returns the
 * depthwise output node, or -1 (nothing emitted) when the shapes do not allow
 * it. */
static int emit_expand_dw(struct fwd *f, int in, int b, int N, int H) {
    const struct space_block *sb = &f->sn->s.block[b];
    struct sn_block *blk = &f->sn->block[b];
    const struct arch *a = f->a;
    struct nn_expand_dw ex = {
        .N = N, .H = H, .W = H, .K = sb->cin, .C = a->mid[b], .k = a->ks[b], .s = sb->stride};
    if (!nn_expand_dw_supported(&ex)) return -1;
    const int C = ex.C, OH = nn_out_size(H, ex.k, ex.s);
    ex.w_pw = prep_weight(f, blk->expand_w, C, ex.K, sb->cin, a->pw_w[b], &ex.ldw_pw);
    f->layer++;
    struct sn_op *op = new_op(f, OP_EXPAND_DW);
    dw_weights(f, b, C, ex.k, a->dw_w[b], &ex.w_dw, &ex.ldw_dw, &op->dw_dw, &op->lddw_dw, &op->kp);
    f->layer++;
    ex.gamma = blk->expand_bn.gamma;
    ex.beta = blk->expand_bn.beta;
    op->in = in;
    op->ex = ex;
    op->bn = &blk->expand_bn;
    op->dw = grad_of(f->sn, blk->expand_w);
    op->lddw = sb->cin;
    float *scale = A(f, (size_t)C), *y = A(f, (size_t)N * OH * OH * C);
    op->mean = A(f, (size_t)C);
    op->invstd = A(f, (size_t)C);
    op->pre = (struct nn_dw_pre){scale, op->mean, ex.beta, 1}; /* the expand BN + ReLU6 */
    nn_expand_dw_forward(y, scale, op->mean, op->invstd, f->t->node[in].v, &ex, SN_BN_EPS);
    f->bn_off += (size_t)C;
    f->st_node = -1;
    op->out = new_node(f, y, (size_t)N * OH * OH * C);
    return op->out;
}

static int emit_block(struct fwd *f, int x, int b, int N, int H) {
    struct supernet *sn = f->sn;
    const struct space_block *sb = &sn->s.block[b];
    struct sn_block *blk = &sn->block[b];
    const struct arch *a = f->a;
    int mid = a->mid[b], k = a->ks[b], M = N * H * H;
    int OH = nn_out_size(H, k, sb->stride), MO = N * OH * OH;
    int h = emit_qact(f, x, a->pw_a[b], 1), xq = h; /* xq: the residual's input */
    const int use_pre = (!f->quant || !a->dw_a[b]) && nn_dw_pre_supported(k, sb->stride) &&
                        (size_t)M * mid * sizeof(float) >= DW_PRE_MIN_BYTES;
    const int e = use_pre && f->mode == SN_TRAIN ? emit_expand_dw(f, h, b, N, H) : -1;
    if (e >= 0) {
        h = emit_bn(f, e, &blk->dw_bn, MO, mid, 1);
    } else if (use_pre) {
        /* the expand BN + ReLU6 applied as the depthwise conv loads its input */
        h = emit_pw(f, h, blk->expand_w, sb->cin, M, sb->cin, mid, a->pw_w[b]);
        struct nn_dw_pre pre;
        int bn = emit_bn_pre(f, h, &blk->expand_bn, M, mid, &pre);
        h = emit_dw_bn(f, bn, h, &pre, b, N, H, mid, k, sb->stride, a->dw_w[b], &blk->dw_bn);
    } else {
        h = emit_pw(f, h, blk->expand_w, sb->cin, M, sb->cin, mid, a->pw_w[b]);
        h = emit_bn(f, h, &blk->expand_bn, M, mid, 1);
        h = emit_qact(f, h, a->dw_a[b], 0);
        h = emit_dw_bn(f, h, -1, NULL, b, N, H, mid, k, sb->stride, a->dw_w[b], &blk->dw_bn);
    }
    h = emit_qact(f, h, a->pw_a[b], 0);
    h = emit_pw(f, h, blk->project_w, sb->mid_max, MO, mid, sb->cout, a->pw_w[b]);
    return emit_bn_skip(f, h, &blk->project_bn, MO, sb->cout, 0, sb->residual ? xq : -1);
}

float *supernet_forward(struct supernet *sn, struct sn_ctx *c, const struct arch *a,
                        struct sn_quant *q, const float *x, int n, enum sn_mode mode) {
    const struct space *s = &sn->s;
    APQ_ASSERT(n <= c->max_batch);
    struct fwd f = {
        .sn = sn, .c = c, .a = a, .q = q, .mode = mode, .t = c->nodes, .n = n, .st_node = -1};
    f.quant = arch_is_quantized(a);
    f.calib_quant = f.quant && mode == SN_CALIB && c->quant_calibrate;
    APQ_ASSERT(!f.quant || q);
    arena_reset(&c->arena);
    c->n_ops = 0;
    c->quant = q;
    f.t->n = 0;
    f.t->n_pool = 0;
    int fb = f.quant ? s->fixed_bits : 0, H = a->res, c0 = s->first_conv_ch;

    /* first conv (its image input is not quantized, apq.md §2) */
    int in = new_node(&f, (float *)x, (size_t)n * H * H * s->in_ch);
    int ld;
    int k0 = s->first_conv_k;
    const float *w0 =
        prep_weight(&f, sn->first_conv_w, c0, k0 * k0 * s->in_ch, k0 * k0 * s->in_ch, fb, &ld);
    float *y0 = A(&f, (size_t)n * H * H * c0);
    struct nn_bn_blocks *st = producer_blocks(&f, n * H * H, c0);
    nn_conv_forward_bn_stats(y0, x, w0, c->scratch, n, H, H, s->in_ch, c0, k0, 1, st);
    struct sn_op *op = new_op(&f, OP_CONV);
    op->in = in;
    op->N = n;
    op->H = op->W = H;
    op->C = s->in_ch;
    op->Cout = c0;
    op->k = k0;
    op->stride = 1;
    op->w = w0;
    op->dw = grad_of(sn, sn->first_conv_w);
    int h = op->out = new_node(&f, y0, (size_t)n * H * H * c0);
    f.st_node = h;
    f.layer++;
    h = emit_bn(&f, h, &sn->first_conv_bn, n * H * H, c0, 1);

    /* first block: dw 3x3 -> BN -> ReLU6 -> pw -> BN (+ identity) */
    h = emit_qact(&f, h, fb, 0);
    int skip = h;
    h = emit_dw_bn(&f, h, -1, NULL, -1, n, H, c0, 3, 1, fb, &sn->first_dw_bn);
    h = emit_qact(&f, h, fb, 0);
    h = emit_pw(&f, h, sn->first_pw_w, c0, n * H * H, c0, s->first_block_ch, fb);
    h = emit_bn_skip(&f, h, &sn->first_pw_bn, n * H * H, s->first_block_ch, 0,
                     c0 == s->first_block_ch ? skip : -1);

    /* elastic stages */
    for (int b = 0; b < s->n_blocks; b++) {
        if (!arch_block_active(s, a, b)) continue;
        h = emit_block(&f, h, b, n, H);
        H = nn_out_size(H, a->ks[b], s->block[b].stride);
    }

    /* feature mix, pool, dropout, classifier */
    int last = s->stage[s->n_stages - 1].width, F = s->feature_mix_ch;
    h = emit_qact(&f, h, fb, 1);
    h = emit_pw(&f, h, sn->mix_w, last, n * H * H, last, F, fb);
    h = emit_bn(&f, h, &sn->mix_bn, n * H * H, F, 1);
    float *pooled = A(&f, (size_t)n * F);
    nn_avgpool_forward(pooled, f.t->node[h].v, n, H * H, F);
    op = new_op(&f, OP_POOL);
    op->in = h;
    op->N = n;
    op->M = H * H;
    op->C = F;
    h = op->out = new_node(&f, pooled, (size_t)n * F);
    if (mode == SN_TRAIN && c->dropout > 0) {
        float *mask = A(&f, (size_t)n * F), *y = A(&f, (size_t)n * F);
        float keep = 1.0f - c->dropout;
        for (size_t i = 0; i < (size_t)n * F; i++) {
            mask[i] = rng_uniform(&c->rng) < keep ? 1.0f / keep : 0.0f;
            y[i] = pooled[i] * mask[i];
        }
        op = new_op(&f, OP_DROP);
        op->in = h;
        op->mask = mask;
        h = op->out = new_node(&f, y, (size_t)n * F);
    }
    h = emit_qact(&f, h, fb, 0);
    const float *wc = prep_weight(&f, sn->cls_w, s->n_classes, F, F, fb, &ld);
    float *logits = A(&f, (size_t)n * s->n_classes);
    nn_linear_forward(logits, s->n_classes, f.t->node[h].v, F, wc, ld, sn->cls_b, n, F,
                      s->n_classes);
    op = new_op(&f, OP_LINEAR);
    op->in = h;
    op->M = n;
    op->C = F;
    op->Cout = s->n_classes;
    op->w = wc;
    op->ldw = ld;
    op->dw = grad_of(sn, sn->cls_w);
    op->lddw = F;
    op->bias = sn->cls_b;
    op->dbias = grad_of(sn, sn->cls_b);
    op->out = new_node(&f, logits, (size_t)n * s->n_classes);
    f.layer++;
    if (q) q->n_layers = f.layer;
    if (mode == SN_CALIB) c->calib_images += n;
    return logits;
}

// ---- backward -------------------------------------------------------------------------

/* Back-propagate the effective kernel's gradient dW [k_j^2][mid] through the
 * transform chain into the transforms' and the max kernel's gradients. */
static void kernel_prep_backward(struct supernet *sn, struct sn_ctx *c, const struct kprep *kp,
                                 float *dW) {
    const struct space *s = &sn->s;
    const struct sn_block *blk = &sn->block[kp->block];
    int top = s->n_kernels - 1, mid = kp->mid, mid_max = s->block[kp->block].mid_max;
    for (int l = kp->level; l <= top - 1; l++) {
        int k = s->kernels[l], kb = s->kernels[l + 1], off = (kb - k) / 2;
        /* dT_l += dW_l · crop_l^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k * k, k * k, mid, 1.0f, dW, mid,
                    kp->crop[l], mid, 1.0f, grad_of(sn, blk->transform[l]), k * k);
        /* dcrop = T_l^T · dW_l */
        float *dcrop = arena_alloc(&c->arena, (size_t)k * k * mid);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k * k, mid, k * k, 1.0f,
                    blk->transform[l], k * k, dW, mid, 0.0f, dcrop, mid);
        /* scatter into the bigger kernel's gradient */
        float *dst;
        int ld;
        if (l + 1 == top) {
            dst = grad_of(sn, blk->dw_w);
            ld = mid_max;
        } else {
            dst = arena_alloc(&c->arena, (size_t)kb * kb * mid);
            memset(dst, 0, sizeof(float) * kb * kb * mid);
            ld = mid;
        }
        for (int r = 0; r < k; r++)
            for (int cc = 0; cc < k; cc++) {
                float *d = dst + (size_t)((r + off) * kb + cc + off) * ld;
                const float *sv = dcrop + (size_t)(r * k + cc) * mid;
                for (int i = 0; i < mid; i++) d[i] += sv[i];
            }
        dW = dst;
    }
}

// ---- gradient buffers ------------------------------------------------------------
/* Every backward op writes its input gradient into a buffer that dies as soon
 * as the op producing that node has read it. Reusing the most recently freed
 * buffer keeps the writes in cache: a fresh arena region is cold, and each
 * write to it first reads the line from memory. Measured 2026-11-22 (in-process
 * A/B, batch 128): 1.3-3% per training step of the smallest and a random
 * subnet. The values are unchanged; the arena's high-water mark drops. */

/* A buffer of at least n floats: the most recently freed one that fits, else new. */
static float *grad_alloc(struct sn_ctx *c, size_t n) {
    struct tape_nodes *t = c->nodes;
    struct gbuf *best = NULL;
    for (int i = 0; i < t->n_pool; i++) {
        struct gbuf *b = &t->pool[i];
        if (b->freed >= 0 && b->cap >= n && (!best || b->freed > best->freed)) best = b;
    }
    if (!best && t->n_pool < MAX_NODES) {
        best = &t->pool[t->n_pool++];
        best->p = arena_alloc(&c->arena, n);
        best->cap = n;
    }
    if (!best) return arena_alloc(&c->arena, n);
    best->freed = -1;
    return best->p;
}

static void grad_free(struct tape_nodes *t, const float *p) {
    for (int i = 0; i < t->n_pool; i++)
        if (t->pool[i].p == p) t->pool[i].freed = t->stamp++;
}

/* After the backward of ops lo.. : the gradient of node y is dead unless a node
 * whose producer is still to run (op index < lo) shares its buffer (OP_ADD). */
static void grad_done(struct tape_nodes *t, int y, int lo) {
    const float *p = t->node[y].g;
    if (!p) return;
    for (int m = 0; m < t->n; m++)
        if (m != y && t->node[m].g == p && t->prod[m] < lo) return;
    grad_free(t, p);
}

/* Where a product writes node x's input gradient: x's own buffer, new when
 * none exists yet (*accumulate = 0), else added onto by the product itself
 * (*accumulate = 1: a second consumer's gradient, fan-out at residual inputs). */
static float *din_product(struct sn_ctx *c, struct node *x, int *accumulate) {
    *accumulate = x->g != NULL;
    if (!x->g) x->g = grad_alloc(c, x->n);
    return x->g;
}

/* Gradient buffer for node x's input gradient: x's own when none exists yet,
 * else a temporary that din_done adds and frees (fan-out at residual inputs). */
static float *din_buf(struct sn_ctx *c, struct node *x, int *accumulate) {
    *accumulate = x->g != NULL;
    float *g = grad_alloc(c, x->n);
    if (!x->g) x->g = g;
    return g;
}

static void din_done(struct sn_ctx *c, struct node *x, float *g, int accumulate) {
    if (!accumulate) return;
    for (size_t i = 0; i < x->n; i++) x->g[i] += g[i];
    grad_free(c->nodes, g);
}

/* The BN op `bn` and the pointwise product `pw` that feeds it (the op before
 * it on the tape), backward in one pass when their shapes allow
 * (nn_linear_bn_backward: the BN's input gradient is never stored). Returns
 * 0, doing nothing, otherwise. */
static int bn_backward_with_pw(struct supernet *sn, struct sn_ctx *c, const struct sn_op *bn,
                               const struct sn_op *pw) {
    struct node *nd = ((struct tape_nodes *)c->nodes)->node, *y = &nd[bn->out], *mid = &nd[bn->in],
                *x = &nd[pw->in];
    if (pw->kind != OP_PW || pw->out != bn->in || mid->g ||
        !nn_linear_bn_backward_fused(pw->M, pw->C, pw->Cout))
        return 0;
    int acc;
    float *din = din_product(c, x, &acc);
    nn_linear_bn_backward(din, pw->C, acc, pw->dw, pw->lddw, grad_of(sn, bn->bn->gamma),
                          grad_of(sn, bn->bn->beta), y->g, mid->v, bn->mean, bn->invstd,
                          bn->bn->gamma, bn->bn->beta, bn->relu6, x->v, pw->C, pw->w, pw->ldw,
                          pw->M, pw->C, pw->Cout);
    return 1;
}

/* Where a depthwise weight gradient [k*k][C] goes: dw, or when NULL (a
 * transformed kernel) a zeroed scratch that kernel_prep_backward then takes
 * through the transforms. */
static float *dw_grad_dest(struct sn_ctx *c, float *dw, int k, int C) {
    if (dw) return dw;
    dw = arena_alloc(&c->arena, (size_t)k * k * C);
    memset(dw, 0, sizeof(float) * k * k * C);
    return dw;
}

void supernet_backward(struct supernet *sn, struct sn_ctx *c, const float *dlogits) {
    struct tape_nodes *t = c->nodes;
    struct node *nd = t->node;
    nd[c->ops[c->n_ops - 1].out].g = (float *)dlogits;
    for (int m = 0; m < t->n; m++) t->prod[m] = -1;
    for (int i = 0; i < c->n_ops; i++) t->prod[c->ops[i].out] = i;
    for (int i = c->n_ops - 1; i >= 0; i--) {
        struct sn_op *op = &c->ops[i];
        struct node *y = &nd[op->out], *x = op->in >= 0 ? &nd[op->in] : NULL;
        if (!y->g) continue; /* no gradient reaches this op */
        int acc = 0;
        float *g;
        switch (op->kind) {
        case OP_CONV: /* first layer: no input gradient; c->scratch still holds the
                       * forward's im2col (only the first conv uses it) */
            nn_conv_backward(NULL, op->dw, y->g, x->v, op->w, c->scratch, 1, op->N, op->H, op->W,
                             op->C, op->Cout, op->k, op->stride);
            break;
        case OP_PW:
        case OP_LINEAR:
            g = din_product(c, x, &acc);
            nn_linear_backward(g, op->C, acc, op->dw, op->lddw, op->dbias, y->g, op->Cout, x->v,
                               op->C, op->w, op->ldw, op->M, op->C, op->Cout);
            break;
        case OP_DW: {
            g = din_buf(c, x, &acc);
            float *dw = dw_grad_dest(c, op->dw, op->k, op->C);
            const int pre = op->pre.scale != NULL;
            nn_dw_backward_ex(g, dw, op->lddw, y->g, pre ? nd[op->in2].v : x->v,
                              pre ? &op->pre : NULL, op->w, op->ldw, op->N, op->H, op->W, op->C,
                              op->k, op->stride);
            if (op->kp) kernel_prep_backward(sn, c, op->kp, dw);
            din_done(c, x, g, acc);
            break;
        }
        case OP_EXPAND_DW: {
            const struct nn_expand_dw *ex = &op->ex;
            float *dwd = dw_grad_dest(c, op->dw_dw, ex->k, ex->C);
            g = din_product(c, x, &acc);
            nn_expand_dw_backward(g, acc, op->dw, op->lddw, grad_of(sn, op->bn->gamma),
                                  grad_of(sn, op->bn->beta), dwd, op->lddw_dw, y->g, x->v,
                                  op->pre.scale, op->mean, op->invstd, ex);
            if (op->kp) kernel_prep_backward(sn, c, op->kp, dwd);
            break;
        }
        case OP_BN:
            if (i > 0 && bn_backward_with_pw(sn, c, op, &c->ops[i - 1])) {
                i--; /* the product's backward is done too */
                break;
            }
            g = din_buf(c, x, &acc);
            nn_bn_backward(g, grad_of(sn, op->bn->gamma), grad_of(sn, op->bn->beta), y->g, x->v,
                           op->mean, op->invstd, op->bn->gamma, op->bn->beta, op->M, op->C,
                           op->relu6);
            din_done(c, x, g, acc);
            break;
        case OP_ADD: {
            struct node *x2 = &nd[op->in2];
            APQ_ASSERT(!x->g);
            x->g = y->g; /* read-only from here on */
            if (!x2->g)
                x2->g = y->g; /* later consumers add into it after x's branch is done */
            else
                for (size_t j = 0; j < x2->n; j++) x2->g[j] += y->g[j];
            break;
        }
        case OP_POOL:
            g = din_buf(c, x, &acc);
            nn_avgpool_backward(g, y->g, op->N, op->M, op->C);
            din_done(c, x, g, acc);
            break;
        case OP_DROP:
            g = din_buf(c, x, &acc);
            for (size_t j = 0; j < x->n; j++) g[j] = y->g[j] * op->mask[j];
            din_done(c, x, g, acc);
            break;
        case OP_QACT: {
            g = din_buf(c, x, &acc);
            struct sn_quant *qq = c->quant;
            float dR = 0;
            quant_act_backward(g, &dR, y->g, x->v, x->n, qq->a_range[op->qlayer], op->is_signed);
            qq->a_grad[op->qlayer] += dR;
            din_done(c, x, g, acc);
            break;
        }
        }
        grad_done(t, op->out, i); /* ops i.. are done: y's gradient may be dead */
    }
}

// ---- BN recalibration ----------------------------------------------------------------

void supernet_recalibrate(struct supernet *sn, struct sn_ctx *c, const struct arch *a,
                          struct sn_quant *q, const struct dataset *calib, int n_images) {
    const struct space *s = &sn->s;
    int B = c->max_batch, res = a->res;
    if (n_images > calib->n) n_images = calib->n;
    APQ_ASSERT(n_images > 0);
    memset(c->calib_mean, 0, sizeof(double) * sn->n_bufs);
    memset(c->calib_var, 0, sizeof(double) * sn->n_bufs);
    c->calib_images = 0;
    float *x = apq_falloc((size_t)B * res * res * s->in_ch);
    float *tmp = apq_falloc((size_t)B * calib->h * calib->w);
    int *idx = apq_xmalloc(sizeof(int) * (size_t)B), *lab = apq_xmalloc(sizeof(int) * (size_t)B);
    for (int off = 0; off < n_images; off += B) {
        int n = n_images - off < B ? n_images - off : B;
        for (int i = 0; i < n; i++) idx[i] = off + i;
        sn_input_batch(x, lab, tmp, calib, idx, n, res, 0, NULL);
        supernet_forward(sn, c, a, q, x, n, SN_CALIB);
    }
    /* mean of per-batch means and of per-batch (biased) variances, ofa.md §7 */
    size_t off = 0;
    double total = c->calib_images;
    for (int i = 0; i < c->n_ops; i++) {
        const struct sn_op *op = &c->ops[i];
        if (op->kind != OP_BN) continue;
        for (int ch = 0; ch < op->C; ch++) {
            op->bn->mean[ch] = (float)(c->calib_mean[off + ch] / total);
            op->bn->var[ch] = (float)(c->calib_var[off + ch] / total);
        }
        off += (size_t)op->C;
    }
    free(x);
    free(tmp);
    free(idx);
    free(lab);
}
