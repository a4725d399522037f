/* qmodel.h — a quantized subnet as an integer-only model: every tensor as
 * bytes with a scale and zero point, every convolution as int8 weights, an
 * int32 bias and a per-output-channel multiplier and shift (ICN, reference/
 * ecosystem.md (a)); run by the integer kernels of qint.h. docs/integer.md
 * "From a verified subnet to integers" gives the conversion step by step.
 *
 *   struct qmodel m;
 *   rc = qmodel_from_subnet(&net, &m);             // APQ_ECONFIG: not convertible
 *   int32_t logits[m.n_classes];
 *   qmodel_run(&m, image, logits, work);           // image: in_size^2 bytes
 *   qmodel_free(&m);
 *
 * The conversion of a fake-quantized subnet (supernet/subnet.h):
 *  - input: the image bytes v, resized to res by an integer bilinear resize
 *    (qmodel_resize), are the first conv's input with scale 1/(255 std) and
 *    zero point round(255 mean); the remainder of 255 mean goes into the
 *    first conv's bias (exact inside the image, a fraction of one input step
 *    at the padded border).
 *  - weights: w_q = round_half_even(clamp(w, -T, T) / s_w), s_w = T/(2^(b-1)-1),
 *    as quant_weight_fake; so the integer weights are exactly the fake ones.
 *  - a convolution's output is the next layer's input quantizer (bits, clip
 *    R, signed: zero point 128): BN (and the scales) folded into M = gamma
 *    s_in s_w / (sqrt(var+eps) s_out) and bias = round((beta - gamma mean /
 *    sqrt(var+eps)) / (gamma s_in s_w / sqrt(var+eps))) in accumulator
 *    units; ReLU6 is the clamp [0, min(2^b-1, round(6/s_out))].
 *  - a residual: the projection's output goes to a signed 8-bit tensor at the
 *    output quantizer's range (scale R/127), then qint_add adds the block
 *    input as the expand conv received it (quantized: the fake graph adds the
 *    float block input, the one approximation of the conversion besides
 *    rounding) and rounds once to the output quantizer.
 *  - the feature mix's output: unsigned 8-bit at scale 6/255 (its ReLU6
 *    range); global average pooling requantizes to the classifier's input
 *    quantizer; the classifier leaves int32 logits with scale logit_scale.
 */
#ifndef APQ_QMODEL_H
#define APQ_QMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../supernet/subnet.h"
#include "qint.h"

#define QMODEL_FORMAT_VERSION 1
#define QMODEL_MAX_LAYERS     (2 * SUBNET_MAX_LAYERS)
#define QMODEL_MAX_TENSORS    (2 * SUBNET_MAX_LAYERS + 2)

enum qmodel_op { QM_CONV, QM_DW, QM_PW, QM_ADD, QM_POOL, QM_LINEAR };

/* One activation tensor [h][h][c] of bytes: real = scale * (q - zp), q in
 * [lo, hi]; bits is the bit-width those bounds allow. Its bytes live at
 * arena[offset] while it is live (qmodel_plan_memory). */
struct qmodel_tensor {
    int h, c, bits, is_signed, zp, lo, hi;
    double scale;
    size_t offset;
};

/* One integer layer. Convolutions and the linear: out = clamp(requant(bias +
 * sum (in - zp_in) w) + zp_out, lo, hi) per output channel (the linear leaves
 * int32 logits instead). QM_ADD: out = qint_add(in, in2). QM_POOL: global
 * average of in through (pool_m0, pool_shift). Arrays owned by the model. */
struct qmodel_layer {
    enum qmodel_op op;
    char name[SUBNET_NAME_MAX];
    int in, in2, out; /* tensor indices; in2 only for QM_ADD; out -1 for the linear */
    int cin, cout, k, stride, h_in, h_out;
    int lo, hi; /* the output clamp (the tensor's bounds, narrowed by a ReLU6) */
    int w_bits;
    int8_t *w; /* [n_w] in the layouts of qint.h, values within w_bits */
    size_t n_w;
    int32_t *bias, *m0; /* [cout] (bias also for the linear; m0 NULL there) */
    int8_t *shift;      /* [cout] */
    struct qint_add add;
    int32_t pool_m0;
    int pool_shift;
    void *plan; /* the fast kernels' plan (qint.h), made by qmodel_prepare; NULL before */
};

struct qmodel {
    char arch[ARCH_STR_MAX];
    char space_hash[17];
    int in_size, in_ch, res, n_classes;
    double logit_scale; /* logits = logit_scale * the int32 outputs */
    int n_tensors, n_layers;
    struct qmodel_tensor t[QMODEL_MAX_TENSORS]; /* t[0]: the resized input image */
    struct qmodel_layer l[QMODEL_MAX_LAYERS];
    size_t arena_bytes;   /* activation arena: the live tensors at their offsets */
    size_t scratch_bytes; /* the largest kernel scratch of one layer */
};

/* The integer model of a quantized subnet (every conv's weights and input
 * quantized: arch_is_quantized). net is only read; out is overwritten, free
 * with qmodel_free. Memory is planned (arena_bytes, scratch_bytes) and the
 * fast kernels' plans made. APQ_OK; APQ_ECONFIG with one line naming the
 * layer for an fp32 subnet, a bit-width the kernels do not support, or a
 * scale the integer multipliers cannot hold. */
int qmodel_from_subnet(const struct subnet *net, struct qmodel *out);
void qmodel_free(struct qmodel *m);

/* model.h5 (docs/formats.md "model.h5"): provenance (format "qmodel",
 * version QMODEL_FORMAT_VERSION), the tables, packed weights; temp + rename.
 * APQ_OK or an h5_ status. */
int qmodel_save(const struct qmodel *m, const char *path, uint64_t seed, const char *profile);
/* Load model.h5 and make the plans: a missing, foreign, truncated file or
 * one whose tables or values the kernels could not run fails with one line
 * naming the file (APQ_EFORMAT or an h5_ status; out zeroed). */
int qmodel_load(const char *path, struct qmodel *out);

/* Make the fast kernels' plans (after qmodel_read). APQ_OK or APQ_ENOMEM. */
int qmodel_prepare(struct qmodel *m);

/* Bytes of work memory qmodel_run needs: arena + scratch + the resized
 * image's staging. */
size_t qmodel_work_bytes(const struct qmodel *m);

/* logits [n_classes] (int32, scale m->logit_scale) of one image [in_size]
 * [in_size] (bytes, row-major, in_ch = 1) through the fast kernels; ref = 1
 * runs the reference kernels (qint_*_ref) instead: the same bytes. work:
 * qmodel_work_bytes(m) bytes, caller-owned. Needs qmodel_prepare unless ref. */
void qmodel_run(const struct qmodel *m, const uint8_t *image, int32_t *logits, void *work, int ref);

/* The integer bilinear resize (docs/integer.md): out [oh][oh] from in [h][h]
 * bytes, half-pixel centres as nn_resize_bilinear, weights in 1/32768 and one
 * rounding half up; out = in when oh == h. qint_resize_bilinear (qint.h), the
 * text an exported model.c carries (qmodel_emit.h). */
void qmodel_resize(uint8_t *out, const uint8_t *in, int h, int oh);

/* Static memory of the deployed model (what model.c declares): flash = packed
 * weights (qint_packed_bytes) + 9 bytes per output channel (int32 bias, int32
 * multiplier, int8 shift) + the classifier's int32 bias; ram = arena_bytes +
 * scratch_bytes + the resized input when res != in_size. */
void qmodel_memory(const struct qmodel *m, size_t *flash_bytes, size_t *ram_bytes);

/* The integer model against the fake-quantized subnet it came from, on the
 * images of d (bytes in_size x in_size): top-1 accuracy of both (the subnet
 * through sn_input_batch's float pipeline and subnet_forward, the model on
 * the bytes through qmodel_run) and the fraction of images where their top-1
 * classes agree. APQ_OK, APQ_ECONFIG for images of another size, APQ_ENOMEM. */
struct dataset;
struct qmodel_agreement {
    int n;
    double acc_fake, acc_int, agreement;
};
int qmodel_compare(const struct subnet *net, const struct qmodel *m, const struct dataset *d,
                   struct qmodel_agreement *out);

/* Top-1 class of logits [n] (the lowest index among equal maxima). */
int qmodel_argmax(const int32_t *logits, int n);

#endif
