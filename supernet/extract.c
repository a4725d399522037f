/* extract.c — a standalone subnet out of the supernet (supernet_extract),
 * its reference forward (subnet_forward) and its structural check.
 *
 * The layer list mirrors supernet_forward (forward.c) in SN_EVAL: which
 * convs quantize their input and how (emit_qact), which weights they
 * fake-quantize (prep_weight), the elastic kernel chain (kernel_prep) and
 * where the residual input comes from (emit_block, emit_bn_skip). Not here:
 * the HDF5 form (subnet_io.c), training.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../quant/quant.h"
#include "subnet_internal.h"
#include "supernet.h"

// ---- the layer list ------------------------------------------------------------

static int has_bn(enum subnet_kind k) {
    return k == SUBNET_CONV || k == SUBNET_DW || k == SUBNET_PW;
}

/* Weight floats of a layer (0 for the pool). */
static size_t weight_floats(const struct subnet_layer *l) {
    switch (l->kind) {
    case SUBNET_CONV:
        return (size_t)l->cout * l->k * l->k * l->cin;
    case SUBNET_DW:
        return (size_t)l->k * l->k * l->cout;
    case SUBNET_PW:
    case SUBNET_LINEAR:
        return (size_t)l->cout * l->cin;
    case SUBNET_POOL:
        return 0;
    }
    return 0;
}

/* Floats a layer holds in net->data: weights, then the bias (linear) or the
 * BN's gamma, beta, mean, var (conv, dw, pw). */
static size_t layer_floats(const struct subnet_layer *l) {
    return weight_floats(l) + (l->kind == SUBNET_LINEAR ? (size_t)l->cout
                               : has_bn(l->kind)        ? 4 * (size_t)l->cout
                                                        : 0);
}

void subnet_alloc(struct subnet *net) {
    size_t total = 0;
    for (int i = 0; i < net->n_layers; i++) total += layer_floats(&net->layer[i]);
    net->n_data = total;
    net->data = apq_falloc(total ? total : 1);
    float *p = net->data;
    for (int i = 0; i < net->n_layers; i++) {
        struct subnet_layer *l = &net->layer[i];
        l->w = l->bias = l->gamma = l->beta = l->mean = l->var = NULL;
        if (l->kind == SUBNET_POOL) continue;
        l->w = p;
        p += weight_floats(l);
        if (l->kind == SUBNET_LINEAR) {
            l->bias = p;
            p += l->cout;
        } else {
            l->gamma = p, l->beta = p + l->cout, l->mean = p + 2 * l->cout;
            l->var = p + 3 * l->cout;
            p += 4 * (size_t)l->cout;
        }
    }
}

static struct subnet_layer *add_layer(struct subnet *net, enum subnet_kind kind, int role,
                                      int block, const char *name, int cin, int cout, int k,
                                      int stride, int h_in) {
    APQ_ASSERT(net->n_layers < SUBNET_MAX_LAYERS);
    struct subnet_layer *l = &net->layer[net->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->role = role;
    l->block = block;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->cin = cin, l->cout = cout, l->k = k, l->stride = stride;
    l->h_in = kind == SUBNET_LINEAR ? 1 : h_in;
    l->h_out = kind == SUBNET_POOL || kind == SUBNET_LINEAR ? 1 : nn_out_size(h_in, k, stride);
    l->skip = -1;
    return l;
}

/* The quantizers of the conv at arch_layers() index ql: weights at wb bits,
 * input at ab bits (0: float). */
static void set_quant(struct subnet_layer *l, const struct sn_quant *q, int ql, int wb, int ab,
                      int is_signed) {
    if (!q) return;
    l->w_bits = wb;
    l->w_range = wb ? q->w_range[ql] : 0;
    l->a_bits = ab;
    l->a_range = ab ? q->a_range[ql] : 0;
    l->a_signed = ab ? is_signed : 0;
}

/* The layers of arch a as supernet_forward runs them (shapes and quantizers;
 * no data yet). q NULL: fp32. */
static void build_layers(struct subnet *net, const struct space *s, const struct arch *a,
                         const struct sn_quant *q) {
    int fb = q ? s->fixed_bits : 0, H = a->res, c0 = s->first_conv_ch, c1 = s->first_block_ch;
    int ql = 0; /* arch_layers() index: sn_quant's */
    struct subnet_layer *l;
    l = add_layer(net, SUBNET_CONV, ROLE_FIRST_CONV, -1, "first_conv", s->in_ch, c0,
                  s->first_conv_k, 1, H);
    set_quant(l, q, ql++, fb, 0, 0); /* the image input stays float (apq.md §2) */
    l->relu6 = 1;
    l = add_layer(net, SUBNET_DW, ROLE_FIRST_DW, -1, "first_block/depthwise", c0, c0, 3, 1, H);
    set_quant(l, q, ql++, fb, fb, 0);
    l->relu6 = 1;
    const int first_dw = net->n_layers - 1;
    l = add_layer(net, SUBNET_PW, ROLE_FIRST_PW, -1, "first_block/pointwise", c0, c1, 1, 1, H);
    set_quant(l, q, ql++, fb, fb, 0);
    l->skip = c0 == c1 ? first_dw : -1;
    for (int b = 0; b < s->n_blocks; b++) {
        if (!arch_block_active(s, a, b)) continue;
        const struct space_block *sb = &s->block[b];
        char p[40], n[SUBNET_NAME_MAX];
        snprintf(p, sizeof p, "stage%d/block%d", sb->stage + 1, sb->slot);
        int mid = a->mid[b], k = a->ks[b];
        snprintf(n, sizeof n, "%s/expand", p);
        l = add_layer(net, SUBNET_PW, ROLE_EXPAND, b, n, sb->cin, mid, 1, 1, H);
        set_quant(l, q, ql++, a->pw_w[b], a->pw_a[b], 1); /* block input: signed */
        l->relu6 = 1;
        const int expand = net->n_layers - 1;
        snprintf(n, sizeof n, "%s/depthwise", p);
        l = add_layer(net, SUBNET_DW, ROLE_DEPTHWISE, b, n, mid, mid, k, sb->stride, H);
        set_quant(l, q, ql++, a->dw_w[b], a->dw_a[b], 0);
        l->relu6 = 1;
        H = l->h_out;
        snprintf(n, sizeof n, "%s/project", p);
        l = add_layer(net, SUBNET_PW, ROLE_PROJECT, b, n, mid, sb->cout, 1, 1, H);
        set_quant(l, q, ql++, a->pw_w[b], a->pw_a[b], 0);
        l->skip = sb->residual ? expand : -1;
    }
    const int last = s->stage[s->n_stages - 1].width, F = s->feature_mix_ch;
    l = add_layer(net, SUBNET_PW, ROLE_FEATURE_MIX, -1, "feature_mix", last, F, 1, 1, H);
    set_quant(l, q, ql++, fb, fb, 1); /* the last block's output: signed */
    l->relu6 = 1;
    add_layer(net, SUBNET_POOL, SUBNET_ROLE_POOL, -1, "pool", F, F, 1, 1, H);
    l = add_layer(net, SUBNET_LINEAR, ROLE_CLASSIFIER, -1, "classifier", F, s->n_classes, 1, 1, 1);
    set_quant(l, q, ql++, fb, fb, 0);
}

// ---- copying the weights ----------------------------------------------------------

/* dst [rows][cols] dense = src [rows][cols] with row stride ld. */
static void copy_rows(float *dst, const float *src, int rows, int cols, int ld) {
    for (int r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * cols, src + (size_t)r * ld, sizeof(float) * cols);
}

static void copy_bn(struct subnet_layer *l, const struct sn_bn *bn) {
    size_t c = sizeof(float) * l->cout;
    memcpy(l->gamma, bn->gamma, c);
    memcpy(l->beta, bn->beta, c);
    memcpy(l->mean, bn->mean, c);
    memcpy(l->var, bn->var, c);
}

/* out [k*k][mid] = block b's depthwise kernel at size k with mid channels:
 * the max kernel, or the chain W_l = T_l · crop(W_{l+1}) down to k, as
 * forward.c's kernel_prep computes it (the same sgemm on the same shapes). */
static void dw_kernel(float *out, const struct supernet *sn, int b, int k, int mid) {
    const struct space *s = &sn->s;
    const int K = s->max_kernel, mid_max = s->block[b].mid_max;
    const struct sn_block *blk = &sn->block[b];
    if (k == K) {
        copy_rows(out, blk->dw_w, K * K, mid, mid_max);
        return;
    }
    const int j = space_choice_index(s->kernels, s->n_kernels, k), top = s->n_kernels - 1;
    APQ_ASSERT(j >= 0 && j < top);
    float *crop = apq_falloc((size_t)K * K * mid),
          *wbuf[2] = {apq_falloc((size_t)K * K * mid), apq_falloc((size_t)K * K * mid)};
    const float *src = blk->dw_w;
    int src_k = K, src_ld = mid_max;
    for (int l = top - 1; l >= j; l--) {
        const int kl = s->kernels[l], off = (src_k - kl) / 2;
        for (int r = 0; r < kl; r++)
            for (int c = 0; c < kl; c++)
                memcpy(crop + (size_t)(r * kl + c) * mid,
                       src + (size_t)((r + off) * src_k + c + off) * src_ld, sizeof(float) * mid);
        float *dst = l == j ? out : wbuf[l & 1];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kl * kl, mid, kl * kl, 1.0f,
                    blk->transform[l], kl * kl, crop, mid, 0.0f, dst, mid);
        src = dst;
        src_k = kl;
        src_ld = mid;
    }
    free(crop);
    free(wbuf[0]);
    free(wbuf[1]);
}

/* Fill every layer's arrays from sn (layers in build_layers order). */
static void copy_weights(struct subnet *net, const struct supernet *sn, const struct arch *a) {
    const struct space *s = &sn->s;
    for (int i = 0; i < net->n_layers; i++) {
        struct subnet_layer *l = &net->layer[i];
        const int b = l->block;
        const struct sn_block *blk = b >= 0 ? &sn->block[b] : NULL;
        switch (l->role) {
        case ROLE_FIRST_CONV:
            memcpy(l->w, sn->first_conv_w, sizeof(float) * weight_floats(l));
            copy_bn(l, &sn->first_conv_bn);
            break;
        case ROLE_FIRST_DW:
            memcpy(l->w, sn->first_dw_w, sizeof(float) * weight_floats(l));
            copy_bn(l, &sn->first_dw_bn);
            break;
        case ROLE_FIRST_PW:
            memcpy(l->w, sn->first_pw_w, sizeof(float) * weight_floats(l));
            copy_bn(l, &sn->first_pw_bn);
            break;
        case ROLE_EXPAND:
            copy_rows(l->w, blk->expand_w, l->cout, l->cin, s->block[b].cin);
            copy_bn(l, &blk->expand_bn);
            break;
        case ROLE_DEPTHWISE:
            dw_kernel(l->w, sn, b, a->ks[b], l->cout);
            copy_bn(l, &blk->dw_bn);
            break;
        case ROLE_PROJECT:
            copy_rows(l->w, blk->project_w, l->cout, l->cin, s->block[b].mid_max);
            copy_bn(l, &blk->project_bn);
            break;
        case ROLE_FEATURE_MIX:
            memcpy(l->w, sn->mix_w, sizeof(float) * weight_floats(l));
            copy_bn(l, &sn->mix_bn);
            break;
        case ROLE_CLASSIFIER:
            memcpy(l->w, sn->cls_w, sizeof(float) * weight_floats(l));
            memcpy(l->bias, sn->cls_b, sizeof(float) * l->cout);
            break;
        default: /* the pool */
            break;
        }
    }
}

int supernet_extract(const struct supernet *sn, const struct arch *a, const struct sn_quant *q,
                     struct subnet *out) {
    const struct space *s = &sn->s;
    memset(out, 0, sizeof *out);
    int rc = arch_check(s, a);
    if (rc < 0) return rc;
    const int quant = arch_is_quantized(a);
    if (quant && !q)
        return apq_set_error(APQ_ECONFIG, "extracting a quantized subnet needs its quantizers");
    out->in_size = s->in_size;
    out->in_ch = s->in_ch;
    out->res = a->res;
    out->n_classes = s->n_classes;
    out->pixel_mean = FMNIST_MEAN;
    out->pixel_std = FMNIST_STD;
    out->bn_eps = SN_BN_EPS;
    arch_to_string(s, a, out->arch, sizeof out->arch);
    space_hash_text(s, out->space_hash);
    build_layers(out, s, a, quant ? q : NULL);
    for (int i = 0; i < out->n_layers; i++) {
        const struct subnet_layer *l = &out->layer[i];
        if ((l->w_bits && !(l->w_range > 0)) || (l->a_bits && !(l->a_range > 0))) {
            rc = apq_set_error(APQ_ECONFIG, "%s: layer %d (%s) has a quantizer range <= 0",
                               out->arch, i, l->name);
            memset(out, 0, sizeof *out);
            return rc;
        }
    }
    subnet_alloc(out);
    copy_weights(out, sn, a);
    APQ_ASSERT(subnet_check(out, "supernet_extract") == APQ_OK);
    return APQ_OK;
}

void subnet_free(struct subnet *net) {
    if (!net) return;
    free(net->data);
    memset(net, 0, sizeof *net);
}

void subnet_copy(struct subnet *dst, const struct subnet *src) {
    *dst = *src;
    subnet_alloc(dst);
    APQ_ASSERT(dst->n_data == src->n_data);
    if (src->n_data) memcpy(dst->data, src->data, sizeof(float) * src->n_data);
}

// ---- the structural check -----------------------------------------------------------

/* Any channel count or spatial size, or weight count, beyond these is a damaged file. */
#define DIM_MAX           65536
#define SUBNET_MAX_FLOATS (1 << 28)

/* The reason layer i of net breaks the layer chain or its kind's rules, NULL when none. */
static const char *layer_problem(const struct subnet *net, int i) {
    const struct subnet_layer *l = &net->layer[i], *p = i ? &net->layer[i - 1] : NULL;
    if ((unsigned)l->kind > SUBNET_LINEAR) return "unknown kind";
    if (l->cin < 1 || l->cout < 1 || l->cin > DIM_MAX || l->cout > DIM_MAX || l->h_in < 1 ||
        l->h_in > DIM_MAX)
        return "channels or size out of range";
    if (p ? l->cin != p->cout || l->h_in != p->h_out : l->cin != net->in_ch || l->h_in != net->res)
        return "its input does not match the previous layer's output";
    if (l->kind == SUBNET_CONV || l->kind == SUBNET_DW) {
        if (l->k < 1 || l->k > 15 || l->k % 2 == 0 || l->stride < 1 || l->stride > 2)
            return "kernel or stride out of range";
        if (l->h_out != nn_out_size(l->h_in, l->k, l->stride)) return "wrong output size";
        if (l->kind == SUBNET_DW && l->cin != l->cout) return "depthwise with cin != cout";
    } else {
        if (l->k != 1 || l->stride != 1) return "kernel and stride must be 1";
        if (l->kind == SUBNET_PW && l->h_out != l->h_in) return "wrong output size";
        if (l->kind == SUBNET_POOL && (l->h_out != 1 || l->cin != l->cout)) return "bad pool shape";
        if (l->kind == SUBNET_LINEAR && l->h_in != 1) return "linear on a spatial input";
    }
    if (l->relu6 != 0 && (l->relu6 != 1 || !has_bn(l->kind))) return "bad relu6 flag";
    if (l->skip != -1) {
        if (l->skip < 0 || l->skip >= i || !has_bn(l->kind)) return "bad skip source";
        const struct subnet_layer *s = &net->layer[l->skip];
        if (s->cin != l->cout || s->h_in != l->h_out) return "skip source of another shape";
    }
    if (l->kind == SUBNET_POOL
            ? l->w_bits || l->a_bits
            : (l->w_bits &&
               (l->w_bits < 2 || l->w_bits > 8 || !(l->w_range > 0) || !isfinite(l->w_range))) ||
                  (l->a_bits && (l->a_bits < (l->a_signed ? 2 : 1) || l->a_bits > 16 ||
                                 !(l->a_range > 0) || !isfinite(l->a_range))))
        return "bad quantizer (bits or range)";
    if ((unsigned)l->a_signed > 1) return "bad a_signed flag";
    return NULL;
}

int subnet_check(const struct subnet *net, const char *what) {
    if (net->n_layers < 2 || net->n_layers > SUBNET_MAX_LAYERS)
        return apq_set_error(APQ_EFORMAT, "%s: %d layers, expected 2 to %d", what, net->n_layers,
                             SUBNET_MAX_LAYERS);
    if (net->in_ch < 1 || net->in_size < 1 || net->res < 1 || net->in_size > DIM_MAX ||
        net->res > DIM_MAX || net->n_classes < 1 || !(net->pixel_std > 0) || !(net->bn_eps > 0) ||
        !isfinite(net->pixel_mean))
        return apq_set_error(APQ_EFORMAT, "%s: bad input description", what);
    int last_consumer = -1; /* residual spans [skip, i] may not overlap: one saved input */
    for (int i = 0; i < net->n_layers; i++) {
        const char *why = layer_problem(net, i);
        if (!why && net->layer[i].skip >= 0) {
            if (net->layer[i].skip <= last_consumer) why = "overlaps the previous residual";
            last_consumer = i;
        }
        if (why)
            return apq_set_error(APQ_EFORMAT, "%s: layer %d (%s): %s", what, i, net->layer[i].name,
                                 why);
    }
    size_t total = 0;
    for (int i = 0; i < net->n_layers; i++) total += layer_floats(&net->layer[i]);
    if (total > SUBNET_MAX_FLOATS)
        return apq_set_error(APQ_EFORMAT, "%s: %zu weights, more than any subnet holds (%d)", what,
                             total, SUBNET_MAX_FLOATS);
    const struct subnet_layer *last = &net->layer[net->n_layers - 1];
    if (net->layer[0].kind != SUBNET_CONV || last->kind != SUBNET_LINEAR ||
        last->cout != net->n_classes)
        return apq_set_error(APQ_EFORMAT,
                             "%s: must start with a conv and end with a linear of %d outputs", what,
                             net->n_classes);
    return APQ_OK;
}

// ---- the reference forward ------------------------------------------------------------

struct fwd_bufs {
    size_t act, w, conv, chan; /* floats of an activation, a weight copy, im2col, BN scales */
};

static struct fwd_bufs buf_sizes(const struct subnet *net, int n) {
    struct fwd_bufs b = {1, 1, 1, 1};
    for (int i = 0; i < net->n_layers; i++) {
        const struct subnet_layer *l = &net->layer[i];
        size_t in = (size_t)n * l->h_in * l->h_in * l->cin,
               out = (size_t)n * l->h_out * l->h_out * l->cout, w = weight_floats(l);
        b.act = in > b.act ? in : b.act;
        b.act = out > b.act ? out : b.act;
        b.w = w > b.w ? w : b.w;
        b.chan = (size_t)l->cout > b.chan ? (size_t)l->cout : b.chan;
        if (l->kind == SUBNET_CONV) {
            size_t c = nn_conv_scratch_floats(n, l->h_in, l->h_in, l->cin, l->k, l->stride);
            b.conv = c > b.conv ? c : b.conv;
        }
    }
    return b;
}

size_t subnet_scratch_floats(const struct subnet *net, int n) {
    struct fwd_bufs b = buf_sizes(net, n);
    return 4 * b.act + b.w + b.conv + b.chan;
}

/* One layer on in (quantized already), into y; add: the residual input or
 * NULL; mid_range > 0: BN's output fake-quantized to signed 8 bits at that
 * range before the add (supernet_forward's quantized residual). */
static void run_layer(float *y, const struct subnet *net, const struct subnet_layer *l,
                      const float *in, const float *w, const float *add, float mid_range, int n,
                      float *scale, float *conv_scratch) {
    const int M = n * l->h_out * l->h_out;
    if (has_bn(l->kind)) nn_bn_eval_scales(scale, l->gamma, l->var, l->cout, net->bn_eps);
    switch (l->kind) {
    case SUBNET_CONV:
        nn_conv_forward_bn_stats(y, in, w, conv_scratch, n, l->h_in, l->h_in, l->cin, l->cout, l->k,
                                 l->stride, NULL);
        break;
    case SUBNET_DW:
        if (!add) { /* BN + ReLU6 fused in, as supernet_forward's eval path runs it */
            struct nn_dw_pre post = {scale, l->mean, l->beta, l->relu6};
            nn_dw_forward_ex(y, in, NULL, w, l->cout, n, l->h_in, l->h_in, l->cout, l->k, l->stride,
                             &post);
            return;
        }
        nn_dw_forward_ex(y, in, NULL, w, l->cout, n, l->h_in, l->h_in, l->cout, l->k, l->stride,
                         NULL);
        break;
    case SUBNET_PW:
        nn_linear_forward_bn_stats(y, l->cout, in, l->cin, w, l->cin, M, l->cin, l->cout, NULL);
        break;
    case SUBNET_POOL:
        nn_avgpool_forward(y, in, n, l->h_in * l->h_in, l->cin);
        return;
    case SUBNET_LINEAR:
        nn_linear_forward(y, l->cout, in, l->cin, w, l->cin, l->bias, n, l->cin, l->cout);
        return;
    }
    if (add && mid_range > 0) {
        const size_t nc = (size_t)M * l->cout;
        nn_bn_apply(y, y, scale, l->mean, l->beta, M, l->cout, l->relu6, NULL);
        quant_act_forward(y, y, nc, 8, mid_range, 1);
        for (size_t i = 0; i < nc; i++) y[i] += add[i];
        return;
    }
    nn_bn_apply(y, y, scale, l->mean, l->beta, M, l->cout, l->relu6, add);
}

void subnet_forward(float *logits, const struct subnet *net, const float *x, int n,
                    float *scratch) {
    APQ_ASSERT(n >= 1 && net->n_layers >= 2);
    const struct fwd_bufs b = buf_sizes(net, n);
    float *act[2] = {scratch, scratch + b.act}, *qx = scratch + 2 * b.act,
          *skip = scratch + 3 * b.act, *wq = scratch + 4 * b.act, *conv = wq + b.w,
          *scale = conv + b.conv;
    int is_source[SUBNET_MAX_LAYERS] = {0};
    for (int i = 0; i < net->n_layers; i++)
        if (net->layer[i].skip >= 0) is_source[net->layer[i].skip] = 1;
    const float *cur = x;
    for (int i = 0; i < net->n_layers; i++) {
        const struct subnet_layer *l = &net->layer[i];
        const size_t n_in = (size_t)n * l->h_in * l->h_in * l->cin;
        const float *in = cur, *w = l->w;
        if (l->a_bits) {
            quant_act_forward(qx, cur, n_in, l->a_bits, l->a_range, l->a_signed);
            in = qx;
        }
        if (is_source[i]) memcpy(skip, in, sizeof(float) * n_in); /* as this layer takes it */
        if (l->w_bits) {
            const int rows = l->kind == SUBNET_DW ? l->k * l->k : l->cout;
            const int cols = (int)(weight_floats(l) / (size_t)rows);
            quant_weight_fake(wq, l->w, rows, cols, cols, l->w_bits, l->w_range);
            w = wq;
        }
        float *y = i == net->n_layers - 1 ? logits : act[i & 1];
        /* a quantized residual: the 8-bit projection at the next layer's input range */
        const float mid =
            l->skip >= 0 && l->a_bits && i + 1 < net->n_layers ? net->layer[i + 1].a_range : 0;
        run_layer(y, net, l, in, w, l->skip >= 0 ? skip : NULL, mid, n, scale, conv);
        cur = y;
    }
}
