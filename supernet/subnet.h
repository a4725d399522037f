/* subnet.h — one subnet as a standalone network value: its layers in
 * execution order with dense weights, BN statistics and quantizers, copied
 * out of the supernet (supernet_extract); a float reference forward of it
 * (subnet_forward); its HDF5 form (docs/formats.md "A subnet's weights").
 *
 * What verify measured is exactly what this value computes: the elastic
 * width is sliced, the elastic kernel's transform chain applied (reference/
 * ofa.md §2), the BN running statistics are those of the recalibration
 * (ofa.md §7), and on a quantized arch each conv keeps its weight range T
 * and input activation clip R (reference/apq.md §6) from struct sn_quant.
 * Weights are the latent floats; the forward fake-quantizes them (and the
 * activations) with quant/quant.h, as supernet_forward does.
 *
 *   struct subnet net;
 *   rc = supernet_extract(&sn, &arch, quantized ? &q : NULL, &net);   // APQ_ECONFIG
 *   float *scratch = apq_falloc(subnet_scratch_floats(&net, n));
 *   subnet_forward(logits, &net, x, n, scratch);    // logits [n][net.n_classes]
 *   rc = subnet_save(&net, "subnet.h5", seed, profile);  subnet_free(&net);
 */
#ifndef APQ_SUBNET_H
#define APQ_SUBNET_H

#include <stddef.h>
#include <stdint.h>

#include "../util/h5.h"
#include "arch.h"

struct supernet;
struct sn_quant;

#define SUBNET_FORMAT_VERSION 1
#define SUBNET_MAX_LAYERS     (ARCH_MAX_LAYERS + 1) /* arch_layers() plus the pool */
#define SUBNET_NAME_MAX       64
#define SUBNET_ROLE_POOL      (-1) /* role of the global average pool (not an enum layer_role) */

/* What a layer computes. Weight layouts (all dense, row-major, owned by the subnet):
 *   SUBNET_CONV   w OHWI [cout][k][k][cin]   (the first conv; stride, pad k/2)
 *   SUBNET_DW     w tap-major [k*k][cout]    (depthwise, cin == cout; pad k/2)
 *   SUBNET_PW     w [cout][cin]              (1x1 conv)
 *   SUBNET_POOL   no weights                 (global average over h_in x h_in)
 *   SUBNET_LINEAR w [cout][cin], bias [cout] (the classifier) */
enum subnet_kind { SUBNET_CONV, SUBNET_DW, SUBNET_PW, SUBNET_POOL, SUBNET_LINEAR };

/* One layer: y = ReLU6?(BN(op(quant_a(x), quant_w(w)))) + skip, where on a
 * quantized residual (a_bits > 0) the BN output is first fake-quantized to
 * signed 8 bits at the next layer's input range (the integer model's
 * projection tensor, docs/integer.md §3b). Activations are NHWC [n][h][h][c]. */
struct subnet_layer {
    enum subnet_kind kind;
    int role;                   /* enum layer_role, SUBNET_ROLE_POOL for the pool */
    int block;                  /* elastic block index, -1 for fixed layers */
    char name[SUBNET_NAME_MAX]; /* path as in supernet.h5: "stage2/block1/depthwise", "pool" */
    int cin, cout, k, stride;   /* pointwise, pool, linear: k = stride = 1 */
    int h_in, h_out;            /* spatial size (height = width); 1 for the linear */
    float *w, *bias;            /* see enum subnet_kind; NULL when absent */
    /* BN over the cout outputs (conv, dw, pw; NULL otherwise), eval mode:
     * (y - mean) * gamma / sqrt(var + eps) + beta, eps = subnet.bn_eps */
    float *gamma, *beta, *mean, *var;
    int relu6; /* ReLU6 after the BN */
    int skip;  /* residual: index of the layer whose input (as that layer takes it,
                  after its activation quantizer) is added after this layer's BN; -1 none */
    /* quantizers (quant/quant.h), bits 0 = float: the weights' symmetric
     * quantizer with range T, the input activation's clip R (a_signed: [-R,
     * R] with 2^(a_bits-1)-1 levels a side, else [0, R] with 2^a_bits-1) */
    int w_bits, a_bits, a_signed;
    float w_range, a_range;
};

struct subnet {
    char arch[ARCH_STR_MAX]; /* arch text (arch.h) */
    char space_hash[17];     /* 16 hex digits of the space it was cut from */
    /* input pipeline (docs/formats.md §7 "Network"): an in_size x in_size
     * image of bytes v -> (v/255 - pixel_mean)/pixel_std, bilinearly resized
     * to res (align_corners=False, none when res == in_size); in_ch channels */
    int in_size, in_ch, res, n_classes;
    float pixel_mean, pixel_std, bn_eps;
    int n_layers;
    struct subnet_layer layer[SUBNET_MAX_LAYERS];
    float *data; /* the one block every layer array points into (owned) */
    size_t n_data;
};

/* A standalone copy of subnet `a` of sn (sn is only read): layers as listed
 * above, dense weights sliced from sn's tensors (elastic width), the k x k
 * depthwise kernels through the transform chain exactly as supernet_forward
 * computes them (the same sgemm calls), BN parameters and running statistics
 * as sn holds them now (call after BN recalibration), and on a quantized arch
 * the weight ranges and activation clips of q (per arch_layers() index; the
 * first conv's image input stays float, fixed layers at space.fixed_bits).
 * q: required on a quantized arch, NULL on fp32. out is overwritten (not
 * freed first); free with subnet_free. APQ_OK, or APQ_ECONFIG (out zeroed)
 * when a is not an arch of sn's space, when q is missing on a quantized arch,
 * or when q holds a range <= 0 for a quantized layer. */
int supernet_extract(const struct supernet *sn, const struct arch *a, const struct sn_quant *q,
                     struct subnet *out);
/* Free the weights; zeroes net. A zeroed subnet is a no-op. */
void subnet_free(struct subnet *net);
/* A deep copy (dst overwritten, not freed first). */
void subnet_copy(struct subnet *dst, const struct subnet *src);

/* Floats of scratch subnet_forward needs for a batch of n images. */
size_t subnet_scratch_floats(const struct subnet *net, int n);
/* logits [n][n_classes] = the subnet on x [n][res][res][in_ch] (NHWC, already
 * normalised and resized: sn_input_batch's output), eval mode: BN with the
 * running statistics, fake quantization with quant_weight_fake /
 * quant_act_forward (round half to even), the nn/ kernels supernet_forward
 * uses in SN_EVAL. Agrees with supernet_forward on the same arch within
 * float rounding (the same kernels: bit for bit when the BLAS sums in the
 * same order; test extract_matches_supernet_*). scratch: subnet_scratch_floats(net, n)
 * floats, caller-owned. No error return; shapes are checked at extraction and load. */
void subnet_forward(float *logits, const struct subnet *net, const float *x, int n, float *scratch);

/* Structural check of a subnet value (layer chain, shapes, quantizers, skip
 * sources): APQ_OK or APQ_EFORMAT "what: layer i (name): reason" with what
 * naming the source (a file). */
int subnet_check(const struct subnet *net, const char *what);

/* ---- HDF5 (docs/formats.md "A subnet's weights") --------------------------- */
/* Write net's datasets below group `prefix` of an open file f ("" = the root,
 * e.g. "subnet/3" in verified.h5) and set f's root attribute
 * subnet_format_version. Weights in PyTorch order. APQ_OK or an h5_ status. */
int subnet_write(hid_t f, const char *prefix, const struct subnet *net);
/* Read the subnet below `prefix` of f into out (overwritten; free with
 * subnet_free). f's root attribute subnet_format_version must equal
 * SUBNET_FORMAT_VERSION; a missing dataset, a wrong shape, a value that
 * breaks subnet_check or a negative BN variance: APQ_EFORMAT with one line
 * naming the file (out zeroed). */
int subnet_read(hid_t f, const char *prefix, struct subnet *out);
/* A standalone subnet file: provenance (format "subnet", version
 * SUBNET_FORMAT_VERSION) plus subnet_write at the root; temp file + rename. */
int subnet_save(const struct subnet *net, const char *path, uint64_t seed, const char *profile);
/* Load a file subnet_save wrote: a missing, foreign, truncated file or
 * another version fails with one line (h5_open_read), then as subnet_read. */
int subnet_load(const char *path, struct subnet *out);

#endif
