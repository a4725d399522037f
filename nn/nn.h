/* nn.h — float32 NHWC kernels with forward and backward, optimizers, arena.
 *
 * Layout: activations are NHWC, dense: x[((n*H + h)*W + w)*C + c]. A 1x1
 * convolution over [N,H,W,C] is a linear layer over M = N*H*W rows.
 * Weights of linear / 1x1 layers are [out][in] (PyTorch order) with a row
 * stride `ldw` >= in, so an elastic (narrower) layer is the top-left block of
 * the supernet's tensor, used in place (DESIGN.md §8, aesthetics M3).
 * Depthwise weights are tap-major [k*k][C] with row stride `ldw` >= C, so a
 * kernel tap is a contiguous run over channels (vectorises across channels).
 * Dense conv weights are OHWI [Cout][k][k][Cin] (matches im2col rows).
 *
 * Conventions (reference/aesthetics.md A2): outputs first, then inputs, then
 * sizes. Backward functions OVERWRITE input gradients (din) and ACCUMULATE
 * (+=) parameter gradients (dw, dbias, dgamma, dbeta); any gradient pointer
 * may be NULL to skip it. Padding is "same" for odd k: pad = k/2, output size
 * OH = (H + 2*pad - k)/stride + 1. Kernels allocate only small per-call
 * scratch (chunk partials, a transposed weight block: apq_falloc, which
 * aborts on exhaustion) and may use OpenMP across independent outputs;
 * every reduction and every product is cut into fixed chunks, so results do
 * not depend on the thread count (test sn_step_thread_count_independent).
 * No kernel returns an error: bad shapes or strides fail APQ_ASSERT.
 *
 * Every kernel has a naive reference in nn_ref.c (nn_ref_*) used by the tests.
 */
#ifndef APQ_NN_H
#define APQ_NN_H

#include <stddef.h>
#include <stdint.h>

static inline int nn_out_size(int h, int k, int stride) {
    return (h + 2 * (k / 2) - k) / stride + 1;
}

/* ---- BN statistics by blocks, filled by the producer of a tensor ------ */
/* The batch statistics of nn_bn_stats_train are merged from blocks of
 * NN_BN_BLOCK rows: mean[b][c] and m2[b][c] (the sum of squared deviations
 * from the block's mean), each computed by two passes while the block is in
 * cache. A producer that writes the tensor in chunks of whole blocks (the
 * *_bn_stats forwards, on their small-matrix path) computes them as each
 * chunk is written, and sets filled; the BN then only merges, and never reads
 * the tensor for its statistics. The same bits either way. Arrays of
 * nn_bn_blocks_floats(M, C) / 2 floats each, owned by the caller. */
#define NN_BN_BLOCK 256
struct nn_bn_blocks {
    float *mean, *m2;
    int filled; /* set by the producer: 1 when it computed them */
};
/* Floats of mean and m2 together for a [M][C] tensor: 2*ceil(M/NN_BN_BLOCK)*C. */
size_t nn_bn_blocks_floats(int M, int C);

/* ---- linear / pointwise (OpenBLAS sgemm) ------------------------------ */
/* out[M][N] (row stride ldo) = in[M][K] (ldi) · w[N][K]^T (ldw) + bias[N] (bias may be NULL). */
void nn_linear_forward(float *out, int ldo, const float *in, int ldi, const float *w, int ldw,
                       const float *bias, int M, int K, int N);
/* nn_linear_forward without bias, also filling st (may be NULL) with the BN
 * blocks of out [M][N] when its small-matrix path runs (st->filled = 1; else
 * 0 and the BN computes them). st arrays: nn_bn_blocks_floats(M, N) floats. */
void nn_linear_forward_bn_stats(float *out, int ldo, const float *in, int ldi, const float *w,
                                int ldw, int M, int K, int N, struct nn_bn_blocks *st);
/* din[M][K] (lddi) = dout · w (+= when din_acc: a second consumer's gradient,
 * added by the product itself);  dw[N][K] (lddw) += dout^T · in;
 * dbias[N] += column sums of dout. */
void nn_linear_backward(float *din, int lddi, int din_acc, float *dw, int lddw, float *dbias,
                        const float *dout, int ldo, const float *in, int ldi, const float *w,
                        int ldw, int M, int K, int N);

/* ---- depthwise k x k, stride s, pad k/2 ------------------------------- */
/* in [N,H,W,C], w [k*k][ldw] (first C columns used), out [N,OH,OW,C]. */
void nn_dw_forward(float *out, const float *in, const float *w, int ldw, int N, int H, int W, int C,
                   int k, int stride);
/* Inference: nn_dw_forward, then nn_bn_forward_eval(out, out, gamma, beta,
 * rmean, rvar, N*OH*OW, C, eps, relu6) (gamma..rvar [C], eps > 0), in one
 * pass over out: every element bit for bit as the two calls give it. Each
 * output row is normalised while in cache (DESIGN.md §8: these layers are
 * bound by memory traffic). No error return; bad shapes fail APQ_ASSERT. */
void nn_dw_forward_bn_eval(float *out, const float *in, const float *w, int ldw, int N, int H,
                           int W, int C, int k, int stride, const float *gamma, const float *beta,
                           const float *rmean, const float *rvar, float eps, int relu6);
/* din [N,H,W,C] overwritten; dw [k*k][lddw] accumulated. */
void nn_dw_backward(float *din, float *dw, int lddw, const float *dout, const float *in,
                    const float *w, int ldw, int N, int H, int W, int C, int k, int stride);
/* Selects the depthwise kernels' AVX-512 register tiles (nn/nn_dw_simd.h;
 * k = 3, 5, 7 at stride 1 or 2) when on != 0
 * and the build targets AVX-512F, else the generic tiles; returns the previous
 * setting (1 at start on such a build, 0 elsewhere). Both give the same bits
 * for finite inputs (test nn_dw_simd_bit_identical). For tests and
 * benchmarks; not thread-safe against running kernels. */
int nn_dw_simd(int on);

/* A per-channel affine map with ReLU6 between a tensor and the depthwise conv
 * that reads it: y = min(max(scale[c]*(x - mean[c]) + shift[c], 0), 6), as
 * nn_bn_forward_* compute it (nn_bn_act). As a prologue (the BN + ReLU6 of
 * the expand conv, reference/ofa.md §1) the kernels read x and convolve y,
 * zero-padded in y, so y is never stored and never read back: one write and
 * one read of a block's largest tensor fewer, forward and at inference. As an
 * epilogue it is the inference BN of the depthwise output (scale =
 * gamma/sqrt(rvar+eps)). Arrays [C], not owned. */
struct nn_dw_pre {
    const float *scale, *mean, *shift;
    int relu6; /* 0: the affine map only (epilogue only; a prologue needs 1) */
};
/* 1 when the kernels take a prologue at this kernel size and stride (the
 * AVX-512 tiles: k = 3, 5, 7, stride 1 or 2, while nn_dw_simd is on). */
int nn_dw_pre_supported(int k, int stride);
/* nn_dw_forward reading y = pre(in) when pre != NULL (nn_dw_pre_supported
 * must hold and pre->relu6 be 1, else APQ_ASSERT), then out = post(out) when
 * post != NULL (in place, row by row while in cache). Shapes as
 * nn_dw_forward; bit for bit the unfused calls (test
 * nn_dw_pre_matches_materialised). */
void nn_dw_forward_ex(float *out, const float *in, const struct nn_dw_pre *pre, const float *w,
                      int ldw, int N, int H, int W, int C, int k, int stride,
                      const struct nn_dw_pre *post);
/* nn_dw_backward of the conv that read y = pre(in) (pre may be NULL: plain
 * nn_dw_backward): din [N,H,W,C] is the gradient of y (the prologue's own
 * backward is the BN's), dw [k*k][lddw] accumulates with y recomputed from
 * in. Same conditions on pre as nn_dw_forward_ex. */
void nn_dw_backward_ex(float *din, float *dw, int lddw, const float *dout, const float *in,
                       const struct nn_dw_pre *pre, const float *w, int ldw, int N, int H, int W,
                       int C, int k, int stride);

/* ---- expand -> BN -> ReLU6 -> depthwise, training (nn_expand.c) ------- */
/* The first half of an inverted-residual block (reference/ofa.md §1) with
 * the expanded tensor y = x w_pw^T never stored (recomputed per image): what
 * nn_linear_forward_bn_stats, nn_bn_stats_train, then nn_dw_forward_ex /
 * nn_dw_backward_ex with the BN + ReLU6 as prologue and nn_linear_bn_backward
 * compute, the same bits for the batch statistics and within the rounding of
 * the recomputed K-term products for the rest (nn_expand.c). Shapes: x [N,H,W,K] (NHWC,
 * contiguous), w_pw [C][ldw_pw], BN gamma/beta [C], w_dw [k*k][ldw_dw], out [N,OH,OW,C]. */
struct nn_expand_dw {
    int N, H, W, K, C, k, s;
    const float *w_pw, *w_dw, *gamma, *beta;
    int ldw_pw, ldw_dw;
};
/* 1 when the shapes allow it: N a multiple of 16, the AVX-512 depthwise
 * tiles for k and s, and a product OpenBLAS runs on its small-matrix kernels;
 * always 0 while the op is disabled (nn_expand_dw_enable). */
int nn_expand_dw_supported(const struct nn_expand_dw *p);
/* Enables (on != 0, the default) or disables the op; returns the previous
 * setting. Disabled, the supernet's tape takes the separate kernels, whose
 * results do not depend on the OpenBLAS kernel's row blocking (tests that
 * compare tapes bit for bit). For tests and benchmarks; not thread-safe
 * against running kernels. */
int nn_expand_dw_enable(int on);
/* out [N,OH,OW,C] = depthwise(ReLU6(BN(x w_pw^T))) with the batch statistics
 * of the expanded tensor, which go to mean, invstd and scale = gamma*invstd
 * [C] (caller-owned) for the backward. Asserts nn_expand_dw_supported. */
void nn_expand_dw_forward(float *out, float *scale, float *mean, float *invstd, const float *x,
                          const struct nn_expand_dw *p, float eps);
/* Backward from dout [N,OH,OW,C] with the forward's scale/mean/invstd:
 * dx [N*H*W][K] (row stride K; = or += when dx_acc; dx may be NULL), and
 * accumulated dw_pw [C][lddw_pw], dgamma, dbeta [C] (may be NULL), dw_dw
 * [k*k][lddw_dw]. */
void nn_expand_dw_backward(float *dx, int dx_acc, float *dw_pw, int lddw_pw, float *dgamma,
                           float *dbeta, float *dw_dw, int lddw_dw, const float *dout,
                           const float *x, const float *scale, const float *mean,
                           const float *invstd, const struct nn_expand_dw *p);

/* ---- dense conv k x k (first layer; im2col + sgemm) -------------------- */
/* in [N,H,W,Cin], w OHWI [Cout][k][k][Cin], out [N,OH,OW,Cout]. scratch holds
 * at least nn_conv_scratch_floats() floats (the im2col matrix). */
size_t nn_conv_scratch_floats(int N, int H, int W, int Cin, int k, int stride);
void nn_conv_forward(float *out, const float *in, const float *w, float *scratch, int N, int H,
                     int W, int Cin, int Cout, int k, int stride);
/* nn_conv_forward, also filling st (may be NULL) with the BN blocks of out
 * [N*OH*OW][Cout] as nn_linear_forward_bn_stats does. */
void nn_conv_forward_bn_stats(float *out, const float *in, const float *w, float *scratch, int N,
                              int H, int W, int Cin, int Cout, int k, int stride,
                              struct nn_bn_blocks *st);
/* din may be NULL (first layer: no input gradient needed); dw accumulated.
 * scratch as for forward; col_kept != 0 when it still holds the im2col of
 * `in` that nn_conv_forward* left there (same in and shapes, scratch not
 * used since): the weight gradient then reuses it instead of recomputing
 * it (the same bits). With din, scratch is overwritten. */
void nn_conv_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                      float *scratch, int col_kept, int N, int H, int W, int Cin, int Cout, int k,
                      int stride);

/* ---- batch normalisation over x [M][C] (M = N*H*W), optionally fused with ReLU6 ----
 * train: batch mean and biased variance per channel (one pass over x from
 * memory: blocks of 256 rows take two passes in cache, the variance from
 * deviations, and merge by Chan et al.'s pairwise update in double; the same
 * bits for any thread count); y = act(gamma*(x-mean)*invstd + beta), act = ReLU6
 * (min(max(.,0),6)) when relu6 != 0, else the identity. Saves mean[C] and
 * invstd[C] = 1/sqrt(var+eps) for the backward. var_out (may be NULL) receives
 * the biased batch variance (for BN recalibration, reference/ofa.md §7).
 * Fusing the activation saves two passes over the tensor forward and one
 * backward (DESIGN.md §8: memory traffic, not FLOPs, bounds these layers). */
void nn_bn_forward_train(float *y, float *mean, float *invstd, float *var_out, const float *x,
                         const float *gamma, const float *beta, int M, int C, float eps, int relu6);
/* The statistics half of nn_bn_forward_train (Ioffe & Szegedy 2015, batch
 * statistics; merge: Chan, Golub & LeVeque 1979): mean, invstd and var_out
 * as there, scale[c] = gamma[c]*invstd[c] ([C] each; var_out may be NULL).
 * st (may be NULL or unfilled): the blocks of x [M][C] as its producer
 * computed them. The other half is nn_bn_apply, or the consumer's prologue
 * (struct nn_dw_pre). M, C > 0 and eps > 0, else APQ_ASSERT. */
void nn_bn_stats_train(float *scale, float *mean, float *invstd, float *var_out, const float *x,
                       const float *gamma, int M, int C, float eps, const struct nn_bn_blocks *st);
/* y[m][c] = act(scale[c]*(x[m][c] - mean[c]) + shift[c]) (+ add[m][c] when
 * add != NULL: a residual sum in the same pass, as nn_add would add it),
 * act = ReLU6 when relu6 (nn_bn_forward_*'s normalisation); x, y, add
 * [M][C], y may alias x; scale, mean, shift [C]. */
void nn_bn_apply(float *y, const float *x, const float *scale, const float *mean,
                 const float *shift, int M, int C, int relu6, const float *add);
/* scale[c] = gamma[c]/sqrt(rvar[c]+eps) for c < C, the inference BN's scale
 * as nn_bn_forward_eval computes it (for struct nn_dw_pre); eps > 0. */
void nn_bn_eval_scales(float *scale, const float *gamma, const float *rvar, int C, float eps);
/* eval: y = act(gamma*(x-rmean)/sqrt(rvar+eps) + beta). Both BN forwards allow y == x. */
void nn_bn_forward_eval(float *y, const float *x, const float *gamma, const float *beta,
                        const float *rmean, const float *rvar, int M, int C, float eps, int relu6);
/* dx overwritten; dgamma/dbeta accumulated; each may be NULL. x is the BN
 * input of the train forward, dy the gradient of its output y (after the
 * ReLU6 when relu6 != 0: the ReLU6 mask 0 < y < 6 is recomputed from x, mean,
 * invstd, gamma and beta bit for bit as the forward computed y; beta may be
 * NULL when relu6 == 0). dx == dy allowed. */
void nn_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                    const float *mean, const float *invstd, const float *gamma, const float *beta,
                    int M, int C, int relu6);
/* A pointwise conv and the BN (+ ReLU6) after it, backward in one pass:
 * nn_bn_backward(dout, dgamma, dbeta, dy, y, mean, invstd, gamma, beta, M, N,
 * relu6), then nn_linear_backward(din, lddi, din_acc, dw, lddw, NULL, dout,
 * N, in, ldi, w, ldw, M, K, N), with the same bits, where y [M][N] (dense)
 * is the product's output (the BN's input), dy [M][N] the gradient of the
 * BN's output, and mean..beta [N] as nn_bn_backward takes them. dout is
 * never stored: each fixed chunk of rows is made in cache (per-thread
 * scratch) and feeds both products there. Only for the shapes whose product
 * runs in fixed small-matrix chunks: nn_linear_bn_backward_fused(M, K, N)
 * must be true, else APQ_ASSERT. Saves the write and two reads of dout (the
 * 28x28 and 14x14 layers: DESIGN.md §8, memory-bound passes). */
int nn_linear_bn_backward_fused(int M, int K, int N);
void nn_linear_bn_backward(float *din, int lddi, int din_acc, float *dw, int lddw, float *dgamma,
                           float *dbeta, const float *dy, const float *y, const float *mean,
                           const float *invstd, const float *gamma, const float *beta, int relu6,
                           const float *in, int ldi, const float *w, int ldw, int M, int K, int N);
/* running = (1-momentum)*running + momentum*batch (PyTorch convention, momentum 0.1). */
void nn_bn_update_running(float *rmean, float *rvar, const float *mean, const float *var, int C,
                          float momentum);

/* ---- activations, pooling ---------------------------------------------- */
/* y = min(max(x,0),6); in place allowed (y == x). */
void nn_relu6_forward(float *y, const float *x, size_t n);
/* dx = dy where 0 < y < 6, else 0 (uses the OUTPUT y); dx == dy allowed. */
void nn_relu6_backward(float *dx, const float *dy, const float *y, size_t n);
/* out[N][C] = mean over HW of in [N][HW][C]. */
void nn_avgpool_forward(float *out, const float *in, int N, int HW, int C);
void nn_avgpool_backward(float *din, const float *dout, int N, int HW, int C);
/* out = x + y (residual), n floats; out may alias x. */
void nn_add(float *out, const float *x, const float *y, size_t n);

/* ---- loss -------------------------------------------------------------- */
/* Softmax cross-entropy averaged over the batch, logits [N][C].
 * Target per row: soft[N][C] when soft != NULL (knowledge distillation),
 * else (1-ls)*onehot(labels) + ls/C (label smoothing ls in [0,1)).
 * dlogits (may be NULL) = (softmax - target) / N, overwritten.
 * Returns the mean loss (nats). */
float nn_softmax_ce(float *dlogits, const float *logits, const int *labels, const float *soft,
                    int N, int C, float ls);
/* probs[N][C] = softmax(logits) (temperature 1). */
void nn_softmax(float *probs, const float *logits, int N, int C);
/* Number of rows whose argmax equals the label (first maximum wins). */
int nn_count_correct(const float *logits, const int *labels, int N, int C);

/* ---- input pipeline helpers -------------------------------------------- */
/* Bilinear resize [N,H,W,C] -> [N,OH,OW,C], half-pixel centres, no antialias
 * (PyTorch F.interpolate(mode="bilinear", align_corners=False)). */
void nn_resize_bilinear(float *out, const float *in, int N, int H, int W, int C, int OH, int OW);

/* ---- optimizers over flat parameter arrays ----------------------------- */
/* SGD with momentum (PyTorch semantics): g' = g + wd*w; m = mu*m + g';
 * step = nesterov ? g' + mu*m : m; w -= lr*step. n floats. */
void nn_sgd_step(float *w, const float *g, float *m, size_t n, float lr, float mu, float wd,
                 int nesterov);
/* Adam (PyTorch semantics, L2 weight decay added to the gradient), t >= 1 the step count. */
void nn_adam_step(float *w, const float *g, float *m, float *v, size_t n, float lr, float b1,
                  float b2, float eps, float wd, long t);

/* ---- arena: per-step activations, sized once --------------------------- */
/* A bump allocator over one 64-byte-aligned block (aesthetics M4).
 * arena_alloc aborts (APQ_ASSERT) when the block is exhausted: the caller
 * sized it for the largest subnet, so overflow is a bug. */
struct arena {
    float *base;
    size_t cap, used, high; /* floats */
};
/* cap_floats of 2 MB aligned memory, advised as transparent huge pages.
 * APQ_OK, or APQ_ENOMEM (a zeroed arena) when it cannot be had. arena_free
 * releases it (also a zeroed one). */
int arena_init(struct arena *a, size_t cap_floats);
void arena_free(struct arena *a);
float *arena_alloc(struct arena *a, size_t n_floats); /* 16-float aligned, uninitialised */
void arena_reset(struct arena *a);

/* ---- naive references (tests only; same contracts as above) ------------ */
void nn_ref_linear_forward(float *out, int ldo, const float *in, int ldi, const float *w, int ldw,
                           const float *bias, int M, int K, int N);
void nn_ref_dw_forward(float *out, const float *in, const float *w, int ldw, int N, int H, int W,
                       int C, int k, int stride);
void nn_ref_conv_forward(float *out, const float *in, const float *w, int N, int H, int W, int Cin,
                         int Cout, int k, int stride);

#endif
