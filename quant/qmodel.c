/* qmodel.c — a fake-quantized subnet converted to an integer-only model, its
 * memory plan and its forward on the integer kernels (qmodel.h; the method:
 * reference/ecosystem.md (a), ICN; docs/integer.md). */
#include "qmodel.h"
#include "qmodel_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../util/util.h"

#define ALIGN 64 /* arena offsets and plans */

static size_t align_up(size_t n) {
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}

// ---- tensors and quantizers ---------------------------------------------------

/* A new tensor [h][h][c] for a b-bit quantizer with clip R (apq.md §6). */
static int new_tensor(struct qmodel *m, int h, int c, int bits, float R, int is_signed,
                      const char *who) {
    if (m->n_tensors >= QMODEL_MAX_TENSORS)
        return apq_set_error(APQ_ECONFIG, "%s: too many tensors", who);
    struct qmodel_tensor *t = &m->t[m->n_tensors];
    memset(t, 0, sizeof *t);
    if (qint_act_range(bits, is_signed, &t->zp, &t->lo, &t->hi) != QINT_OK || !(R > 0))
        return apq_set_error(APQ_ECONFIG,
                             "%s: input quantizer of %d bits, clip %g: the integer kernels take "
                             "2..8 bits and a clip > 0",
                             who, bits, (double)R);
    t->h = h;
    t->c = c;
    t->bits = bits;
    t->is_signed = is_signed;
    t->scale = is_signed ? (double)R / ((1 << (bits - 1)) - 1) : (double)R / ((1 << bits) - 1);
    return m->n_tensors++;
}

/* The clamp of a ReLU6 output: [max(lo, zp), min(hi, zp + round(6/s))]. */
static void relu6_clamp(const struct qmodel_tensor *t, int *lo, int *hi) {
    long top = t->zp + lround(6.0 / t->scale);
    *lo = t->lo > t->zp ? t->lo : t->zp;
    *hi = top < t->hi ? (int)top : t->hi;
}

/* w_q = round_half_even(clamp(w, -T, T) / s), s = T/(2^(b-1)-1), with the
 * float operations of quant_weight_fake: the integers behind the fake weights. */
static int quantize_weights(struct qmodel_layer *ql, const struct subnet_layer *sl, double *s_w) {
    if (sl->w_bits < 2 || sl->w_bits > 8 || !(sl->w_range > 0))
        return apq_set_error(APQ_ECONFIG,
                             "layer %s: weights of %d bits, range %g: the integer "
                             "kernels take 2..8 bits",
                             sl->name, sl->w_bits, (double)sl->w_range);
    const float T = sl->w_range, s = T / (float)((1 << (sl->w_bits - 1)) - 1);
    ql->w_bits = sl->w_bits;
    ql->w = apq_xmalloc(ql->n_w);
    for (size_t i = 0; i < ql->n_w; i++) {
        float v = sl->w[i] > -T ? sl->w[i] : -T;
        ql->w[i] = (int8_t)nearbyintf((v < T ? v : T) / s);
    }
    *s_w = s;
    return APQ_OK;
}

static int set_multiplier(double M, int32_t *m0, int8_t *shift, const char *who) {
    int sh, st = qint_quantize_multiplier(M, m0, &sh);
    if (st < 0)
        return apq_set_error(APQ_ECONFIG,
                             "layer %s: scale ratio %g does not fit the integer "
                             "multiplier",
                             who, M);
    *shift = (int8_t)sh;
    return APQ_OK;
}

// ---- one layer at a time ----------------------------------------------------------

/* A convolution (conv, dw, pw) of sl from tensor `in` into tensor `out`,
 * BN folded (qmodel.h); relu6 clamps the output. corr: a real offset of the
 * input in input steps (the first conv's zero point remainder), else 0. */
static int convert_conv(struct qmodel *m, const struct subnet *net, const struct subnet_layer *sl,
                        int in, int out, int relu6, double corr) {
    struct qmodel_layer *ql = &m->l[m->n_layers];
    memset(ql, 0, sizeof *ql);
    ql->op = sl->kind == SUBNET_CONV ? QM_CONV : sl->kind == SUBNET_DW ? QM_DW : QM_PW;
    snprintf(ql->name, sizeof ql->name, "%s", sl->name);
    ql->in = in;
    ql->in2 = -1;
    ql->out = out;
    ql->cin = sl->cin;
    ql->cout = sl->cout;
    ql->k = sl->k;
    ql->stride = sl->stride;
    ql->h_in = sl->h_in;
    ql->h_out = sl->h_out;
    if (relu6)
        relu6_clamp(&m->t[out], &ql->lo, &ql->hi);
    else
        ql->lo = m->t[out].lo, ql->hi = m->t[out].hi;
    int taps = ql->op == QM_DW   ? sl->k * sl->k
               : ql->op == QM_PW ? sl->cin
                                 : sl->k * sl->k * sl->cin;
    ql->n_w = (size_t)taps * sl->cout;
    double s_w;
    int rc = quantize_weights(ql, sl, &s_w);
    if (rc < 0) return rc;
    const double s_in = m->t[in].scale, s_out = m->t[out].scale;
    ql->bias = apq_xmalloc(sizeof(int32_t) * sl->cout);
    ql->m0 = apq_xmalloc(sizeof(int32_t) * sl->cout);
    ql->shift = apq_xmalloc((size_t)sl->cout);
    for (int o = 0; o < sl->cout; o++) {
        double g = sl->gamma[o] / sqrt((double)sl->var[o] + net->bn_eps);
        double a = g * s_in * s_w, b = sl->beta[o] - g * sl->mean[o];
        /* the sum of this channel's weights (a dw channel's taps are strided) */
        long wsum = 0;
        for (int i = 0; i < taps; i++)
            wsum += ql->op == QM_DW ? ql->w[(size_t)i * sl->cout + o] : ql->w[(size_t)o * taps + i];
        /* a channel whose BN scale is (almost) 0 is a constant: keep its bias
         * inside the kernels' bound by a scale just large enough */
        double lim = 0.5 * QINT_MAX_BIAS - fabs(corr * wsum) - 1;
        if (fabs(b) > lim * fabs(a)) a = (a < 0 ? -1 : 1) * fabs(b) / lim;
        ql->bias[o] = (int32_t)lround(b / a + corr * wsum);
        if ((rc = set_multiplier(a / s_out, &ql->m0[o], &ql->shift[o], sl->name)) < 0) return rc;
    }
    m->n_layers++;
    return APQ_OK;
}

/* out = a + b, both requantized to out's scale with one rounding (qint_add). */
static int convert_add(struct qmodel *m, const char *name, int a, int b, int out) {
    struct qmodel_layer *ql = &m->l[m->n_layers];
    memset(ql, 0, sizeof *ql);
    ql->op = QM_ADD;
    snprintf(ql->name, sizeof ql->name, "%s/add", name);
    ql->in = a;
    ql->in2 = b;
    ql->out = out;
    ql->cin = ql->cout = m->t[out].c;
    ql->h_in = ql->h_out = m->t[out].h;
    struct qint_add *p = &ql->add;
    int8_t sa = 0, sb = 0;
    int rc;
    if ((rc = set_multiplier(m->t[a].scale / m->t[out].scale, &p->m0_a, &sa, name)) < 0 ||
        (rc = set_multiplier(m->t[b].scale / m->t[out].scale, &p->m0_b, &sb, name)) < 0)
        return rc;
    p->shift_a = sa;
    p->shift_b = sb;
    if (abs(sa - sb) > QINT_ADD_MAX_SHIFT_DIFF)
        return apq_set_error(APQ_ECONFIG,
                             "layer %s: the residual's scales differ by 2^%d, more "
                             "than the integer add takes",
                             name, abs(sa - sb));
    p->zp_a = m->t[a].zp;
    p->zp_b = m->t[b].zp;
    p->zp = m->t[out].zp;
    p->lo = ql->lo = m->t[out].lo;
    p->hi = ql->hi = m->t[out].hi;
    m->n_layers++;
    return APQ_OK;
}

static int convert_pool(struct qmodel *m, const struct subnet_layer *sl, int in, int out) {
    struct qmodel_layer *ql = &m->l[m->n_layers];
    memset(ql, 0, sizeof *ql);
    ql->op = QM_POOL;
    snprintf(ql->name, sizeof ql->name, "%s", sl->name);
    ql->in = in;
    ql->in2 = -1;
    ql->out = out;
    ql->cin = ql->cout = sl->cin;
    ql->h_in = sl->h_in;
    ql->h_out = 1;
    ql->lo = m->t[out].lo;
    ql->hi = m->t[out].hi;
    int8_t sh = 0;
    double M = m->t[in].scale / (m->t[out].scale * sl->h_in * sl->h_in);
    int rc = set_multiplier(M, &ql->pool_m0, &sh, sl->name);
    ql->pool_shift = sh;
    m->n_layers++;
    return rc;
}

static int convert_linear(struct qmodel *m, const struct subnet_layer *sl, int in) {
    struct qmodel_layer *ql = &m->l[m->n_layers];
    memset(ql, 0, sizeof *ql);
    ql->op = QM_LINEAR;
    snprintf(ql->name, sizeof ql->name, "%s", sl->name);
    ql->in = in;
    ql->in2 = ql->out = -1;
    ql->cin = sl->cin;
    ql->cout = sl->cout;
    ql->k = ql->stride = ql->h_in = ql->h_out = 1;
    ql->n_w = (size_t)sl->cin * sl->cout;
    double s_w;
    int rc = quantize_weights(ql, sl, &s_w);
    if (rc < 0) return rc;
    m->logit_scale = m->t[in].scale * s_w;
    ql->bias = apq_xmalloc(sizeof(int32_t) * sl->cout);
    for (int o = 0; o < sl->cout; o++) {
        double v = sl->bias ? sl->bias[o] / m->logit_scale : 0;
        if (fabs(v) > QINT_MAX_BIAS)
            return apq_set_error(APQ_ECONFIG, "layer %s: bias %g is out of the integer range",
                                 sl->name, (double)sl->bias[o]);
        ql->bias[o] = (int32_t)lround(v);
    }
    m->n_layers++;
    return APQ_OK;
}

// ---- the whole subnet ----------------------------------------------------------------

/* The tensor a conv-type layer's output goes to: the next layer's input
 * quantizer; before the pool, unsigned 8 bits over the ReLU6 range. */
static int output_tensor(struct qmodel *m, const struct subnet *net, int i) {
    const struct subnet_layer *sl = &net->layer[i], *nx = &net->layer[i + 1];
    if (nx->kind == SUBNET_POOL) {
        if (!sl->relu6)
            return apq_set_error(APQ_ECONFIG, "layer %s: the pool's input has no ReLU6 bound",
                                 sl->name);
        return new_tensor(m, sl->h_out, sl->cout, 8, 6.0f, 0, sl->name);
    }
    return new_tensor(m, sl->h_out, sl->cout, nx->a_bits, nx->a_range, nx->a_signed, nx->name);
}

static int convert_layers(const struct subnet *net, struct qmodel *m) {
    int in_t[SUBNET_MAX_LAYERS]; /* the tensor each subnet layer reads */
    /* t[0]: the resized image, v with scale 1/(255 std) and zero point round(255 mean) */
    struct qmodel_tensor *t0 = &m->t[0];
    memset(t0, 0, sizeof *t0);
    t0->h = net->res;
    t0->c = net->in_ch;
    t0->bits = 8;
    t0->scale = 1.0 / (255.0 * net->pixel_std);
    t0->zp = (int)lround(255.0 * net->pixel_mean);
    t0->lo = 0;
    t0->hi = 255;
    m->n_tensors = 1;
    int cur = 0, rc;
    for (int i = 0; i < net->n_layers; i++) {
        const struct subnet_layer *sl = &net->layer[i];
        in_t[i] = cur;
        if (sl->kind == SUBNET_LINEAR) {
            if (i != net->n_layers - 1)
                return apq_set_error(APQ_ECONFIG, "layer %s: the classifier is not last", sl->name);
            return convert_linear(m, sl, cur);
        }
        if (i + 1 >= net->n_layers)
            return apq_set_error(APQ_ECONFIG, "layer %s: the subnet ends without a classifier",
                                 sl->name);
        if (sl->kind == SUBNET_POOL) {
            const struct subnet_layer *nx = &net->layer[i + 1];
            int out = new_tensor(m, 1, sl->cout, nx->a_bits, nx->a_range, nx->a_signed, nx->name);
            if (out < 0) return out;
            if ((rc = convert_pool(m, sl, cur, out)) < 0) return rc;
            cur = out;
            continue;
        }
        if (i > 0 && (sl->a_bits == 0 || sl->w_bits == 0))
            return apq_set_error(APQ_ECONFIG,
                                 "layer %s is not quantized; only a quantized subnet "
                                 "has an integer model",
                                 sl->name);
        double corr = i == 0 ? m->t[0].zp - 255.0 * net->pixel_mean : 0;
        int out = output_tensor(m, net, i);
        if (out < 0) return out;
        if (sl->skip < 0) {
            if ((rc = convert_conv(m, net, sl, cur, out, sl->relu6, corr)) < 0) return rc;
        } else { /* projection into a signed 8-bit tensor at the output's range, then the add */
            const struct qmodel_tensor *to = &m->t[out];
            double R =
                to->scale * (to->is_signed ? (1 << (to->bits - 1)) - 1 : (1 << to->bits) - 1);
            int mid = new_tensor(m, sl->h_out, sl->cout, 8, (float)R, 1, sl->name);
            if (mid < 0) return mid;
            if ((rc = convert_conv(m, net, sl, cur, mid, sl->relu6, corr)) < 0 ||
                (rc = convert_add(m, sl->name, mid, in_t[sl->skip], out)) < 0)
                return rc;
        }
        cur = out;
    }
    return apq_set_error(APQ_ECONFIG, "the subnet has no classifier");
}

// ---- memory: first-fit offsets in one arena -----------------------------------------

static size_t tensor_bytes(const struct qmodel_tensor *t) {
    return (size_t)t->h * t->h * t->c;
}

/* Each tensor lives from the layer that writes it (t[0]: from before the
 * first, -1) to the last layer that reads it, both ends included, so a layer
 * never writes over its own input; an add writes over its first input (the
 * projection's tensor, read by nothing else), so the two are one block.
 * Blocks are placed first-fit, 64-aligned, in the order they are written,
 * clear of every placed block whose life overlaps. */
static void plan_memory(struct qmodel *m) {
    int birth[QMODEL_MAX_TENSORS], death[QMODEL_MAX_TENSORS], root[QMODEL_MAX_TENSORS];
    for (int t = 0; t < m->n_tensors; t++) birth[t] = death[t] = -1, root[t] = t;
    for (int j = 0; j < m->n_layers; j++) {
        const struct qmodel_layer *l = &m->l[j];
        if (l->out >= 0) birth[l->out] = j;
        if (l->op == QM_ADD) root[l->out] = root[l->in];
        death[root[l->in]] = j;
        if (l->in2 >= 0) death[root[l->in2]] = j;
        if (l->out >= 0) death[root[l->out]] = death[root[l->out]] > j ? death[root[l->out]] : j;
    }
    size_t end = 0;
    int placed[QMODEL_MAX_TENSORS], n_placed = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        if (root[t] != t) continue;
        size_t need = align_up(tensor_bytes(&m->t[t])), off = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int p = 0; p < n_placed; p++) {
                int u = placed[p];
                if (birth[u] > death[t] || birth[t] > death[u]) continue;
                size_t a = m->t[u].offset, b = a + align_up(tensor_bytes(&m->t[u]));
                if (off < b && a < off + need) off = b, moved = 1;
            }
        }
        m->t[t].offset = off;
        if (off + need > end) end = off + need;
        placed[n_placed++] = t;
    }
    for (int t = 0; t < m->n_tensors; t++) m->t[t].offset = m->t[root[t]].offset;
    m->arena_bytes = end;
}

static size_t layer_scratch(const struct qmodel_layer *l) {
    if (l->op == QM_CONV) return qint_conv_run_scratch_bytes(l->h_in, l->cin, l->k, l->stride);
    if (l->op == QM_DW) return qint_dw_run_scratch_bytes(l->h_in, l->h_in, l->k, l->stride);
    return 0;
}

static void plan_scratch(struct qmodel *m) {
    m->scratch_bytes = 0;
    for (int j = 0; j < m->n_layers; j++) {
        size_t s = align_up(layer_scratch(&m->l[j]));
        if (s > m->scratch_bytes) m->scratch_bytes = s;
    }
}

void qmodel_plan(struct qmodel *m) {
    plan_memory(m);
    plan_scratch(m);
}

static int taps_of(const struct qmodel_layer *l) {
    return l->op == QM_DW                         ? l->k * l->k
           : l->op == QM_PW || l->op == QM_LINEAR ? l->cin
                                                  : l->k * l->k * l->cin;
}

static int check_layer(const struct qmodel *m, int j, const char **why) {
    const struct qmodel_layer *l = &m->l[j];
    int nt = m->n_tensors, conv = l->op == QM_CONV || l->op == QM_DW || l->op == QM_PW;
    if ((unsigned)l->op > QM_LINEAR) return *why = "unknown op", 0;
    if (l->in < 0 || l->in >= nt) return *why = "input tensor out of range", 0;
    if (l->op == QM_LINEAR ? l->out != -1 || j != m->n_layers - 1 : l->out < 1 || l->out >= nt)
        return *why = "output tensor out of range (or the classifier not last)", 0;
    if (l->op == QM_ADD ? l->in2 < 0 || l->in2 >= nt : l->in2 != -1)
        return *why = "second input out of range", 0;
    if (l->lo < 0 || l->hi > 255 || l->lo > l->hi) return *why = "bad clamp", 0;
    const struct qmodel_tensor *ti = &m->t[l->in], *to = l->out >= 0 ? &m->t[l->out] : NULL;
    if (ti->h != l->h_in || ti->c != l->cin) return *why = "input shape differs from its tensor", 0;
    if (to && (to->h != l->h_out || to->c != l->cout))
        return *why = "output shape differs from its tensor", 0;
    if (conv || l->op == QM_LINEAR) {
        if (l->w_bits < 2 || l->w_bits > 8) return *why = "weight bit-width not in 2..8", 0;
        if (l->k < 1 || l->k > 7 || l->k % 2 == 0 || l->stride < 1 || l->stride > 2)
            return *why = "bad kernel or stride", 0;
        if (taps_of(l) > QINT_MAX_K) return *why = "too many terms per output", 0;
    }
    if (conv && l->h_out != (l->h_in - 1) / l->stride + 1) return *why = "bad output size", 0;
    if ((l->op == QM_DW || l->op == QM_ADD || l->op == QM_POOL) && l->cin != l->cout)
        return *why = "channels change", 0;
    if (l->op == QM_PW && l->k != 1) return *why = "pointwise with k != 1", 0;
    if (l->op == QM_POOL &&
        (l->h_out != 1 || l->pool_shift < QINT_SHIFT_MIN || l->pool_shift > QINT_SHIFT_MAX))
        return *why = "bad pool", 0;
    if (l->op == QM_ADD) {
        const struct qint_add *p = &l->add;
        if (m->t[l->in2].h != l->h_in || m->t[l->in2].c != l->cin || p->shift_a < QINT_SHIFT_MIN ||
            p->shift_a > QINT_SHIFT_MAX || p->shift_b < QINT_SHIFT_MIN ||
            p->shift_b > QINT_SHIFT_MAX || abs(p->shift_a - p->shift_b) > QINT_ADD_MAX_SHIFT_DIFF)
            return *why = "bad residual add", 0;
    }
    if (l->op == QM_LINEAR && l->cout != m->n_classes) return *why = "classifier size", 0;
    return 1;
}

int qmodel_check(struct qmodel *m, const char *what) {
    if (m->in_ch != 1 || m->in_size < 1 || m->res < 1 || m->res > 4 * m->in_size ||
        m->n_classes < 2 || m->n_classes > 1000 || !(m->logit_scale > 0))
        return apq_set_error(APQ_EFORMAT, "%s: bad input or class description", what);
    for (int t = 0; t < m->n_tensors; t++) {
        const struct qmodel_tensor *x = &m->t[t];
        if (x->h < 1 || x->h > 4096 || x->c < 1 || x->c > 65536 || x->bits < 2 || x->bits > 8 ||
            x->zp < 0 || x->zp > 255 || x->lo < 0 || x->hi > 255 || x->lo > x->hi ||
            !(x->scale > 0))
            return apq_set_error(APQ_EFORMAT, "%s: tensor %d: bad shape or quantizer", what, t);
    }
    if (m->t[0].h != m->res || m->t[0].c != m->in_ch)
        return apq_set_error(APQ_EFORMAT, "%s: the input tensor is not res x res", what);
    for (int j = 0; j < m->n_layers; j++) {
        const char *why = NULL;
        if (!check_layer(m, j, &why))
            return apq_set_error(APQ_EFORMAT, "%s: layer %d (%s): %s", what, j, m->l[j].name, why);
        struct qmodel_layer *l = &m->l[j];
        l->n_w = l->op == QM_ADD || l->op == QM_POOL ? 0 : (size_t)taps_of(l) * l->cout;
    }
    if (m->l[m->n_layers - 1].op != QM_LINEAR)
        return apq_set_error(APQ_EFORMAT, "%s: the last layer is not the classifier", what);
    return APQ_OK;
}

int qmodel_from_subnet(const struct subnet *net, struct qmodel *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->arch, sizeof out->arch, "%s", net->arch);
    snprintf(out->space_hash, sizeof out->space_hash, "%s", net->space_hash);
    out->in_size = net->in_size;
    out->in_ch = net->in_ch;
    out->res = net->res;
    out->n_classes = net->n_classes;
    if (net->in_ch != 1)
        return apq_set_error(APQ_ECONFIG, "the integer model takes 1-channel images");
    int rc = convert_layers(net, out);
    if (rc == 0) rc = qmodel_check(out, net->arch);
    if (rc < 0) {
        qmodel_free(out);
        return rc;
    }
    qmodel_plan(out);
    if ((rc = qmodel_prepare(out)) < 0) qmodel_free(out);
    return rc;
}

void qmodel_free(struct qmodel *m) {
    for (int j = 0; j < m->n_layers; j++) {
        struct qmodel_layer *l = &m->l[j];
        free(l->w);
        free(l->bias);
        free(l->m0);
        free(l->shift);
        free(l->plan);
    }
    memset(m, 0, sizeof *m);
}

int qmodel_prepare(struct qmodel *m) {
    for (int j = 0; j < m->n_layers; j++) {
        struct qmodel_layer *l = &m->l[j];
        struct qint_out q = {l->m0, l->shift,
                             l->op == QM_ADD ? 0 : m->t[l->out >= 0 ? l->out : 0].zp, l->lo, l->hi};
        size_t n = l->op == QM_CONV ? qint_conv_plan_bytes(l->cin, l->cout, l->k)
                   : l->op == QM_DW ? qint_dw_plan_bytes(l->cout, l->k)
                   : l->op == QM_PW ? qint_pw_plan_bytes(l->cin, l->cout)
                                    : 0;
        if (!n || l->plan) continue;
        l->plan = aligned_alloc(ALIGN, align_up(n));
        if (!l->plan) return apq_set_error(APQ_ENOMEM, "out of memory for the kernels' plans");
        int zp = m->t[l->in].zp;
        if (l->op == QM_CONV) qint_conv_plan(l->plan, l->w, l->bias, zp, &q, l->cin, l->cout, l->k);
        if (l->op == QM_DW) qint_dw_plan(l->plan, l->w, l->bias, zp, &q, l->cout, l->k);
        if (l->op == QM_PW) qint_pw_plan(l->plan, l->w, l->bias, zp, &q, l->cin, l->cout);
    }
    return APQ_OK;
}

size_t qmodel_work_bytes(const struct qmodel *m) {
    return m->arena_bytes + m->scratch_bytes;
}

void qmodel_memory(const struct qmodel *m, size_t *flash_bytes, size_t *ram_bytes) {
    size_t flash = 0;
    for (int j = 0; j < m->n_layers; j++) {
        const struct qmodel_layer *l = &m->l[j];
        if (!l->w) continue;
        flash += qint_packed_bytes(l->n_w, l->w_bits);
        flash += (size_t)l->cout * (l->op == QM_LINEAR ? 4 : 9);
    }
    *flash_bytes = flash;
    *ram_bytes = m->arena_bytes + m->scratch_bytes;
}

int qmodel_argmax(const int32_t *logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

// ---- the forward ------------------------------------------------------------------------

void qmodel_resize(uint8_t *out, const uint8_t *in, int h, int oh) {
    qint_resize_bilinear(out, in, h, oh);
}

static void run_layer(const struct qmodel *m, const struct qmodel_layer *l, uint8_t *arena,
                      void *scratch, int32_t *logits, int ref) {
    const struct qmodel_tensor *ti = &m->t[l->in];
    const uint8_t *in = arena + ti->offset;
    uint8_t *out = l->out >= 0 ? arena + m->t[l->out].offset : NULL;
    int zp = ti->zp, H = l->h_in;
    struct qint_out q = {l->m0, l->shift, l->out >= 0 ? m->t[l->out].zp : 0, l->lo, l->hi};
    switch (l->op) {
    case QM_CONV:
        if (ref)
            qint_conv_ref(out, in, zp, l->w, l->bias, &q, H, H, l->cin, l->cout, l->k, l->stride);
        else
            qint_conv_run(out, in, l->plan, H, H, l->stride, scratch);
        break;
    case QM_DW:
        if (ref)
            qint_dw_ref(out, in, zp, l->w, l->bias, &q, H, H, l->cout, l->k, l->stride);
        else
            qint_dw_run(out, in, l->plan, H, H, l->stride, scratch);
        break;
    case QM_PW:
        if (ref)
            qint_pw_ref(out, in, zp, l->w, l->bias, &q, H * H, l->cin, l->cout);
        else
            qint_pw_run(out, in, l->plan, H * H);
        break;
    case QM_ADD:
        (ref ? qint_add_ref : qint_add)(out, in, arena + m->t[l->in2].offset, &l->add,
                                        (size_t)H * H * l->cout);
        break;
    case QM_POOL:
        (ref ? qint_avgpool_ref : qint_avgpool)(out, in, zp, l->pool_m0, l->pool_shift, q.zp, l->lo,
                                                l->hi, H * H, l->cin);
        break;
    case QM_LINEAR:
        (ref ? qint_linear_s32_ref : qint_linear_s32)(logits, in, zp, l->w, l->bias, l->cin,
                                                      l->cout);
        break;
    }
}

void qmodel_run(const struct qmodel *m, const uint8_t *image, int32_t *logits, void *work,
                int ref) {
    uint8_t *arena = work;
    void *scratch = arena + m->arena_bytes;
    qmodel_resize(arena + m->t[0].offset, image, m->in_size, m->res);
    for (int j = 0; j < m->n_layers; j++) run_layer(m, &m->l[j], arena, scratch, logits, ref);
}
