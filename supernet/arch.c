/* arch.c — the arch value type: canonical form, text form, sampling, layers, MACs. */
#include "arch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- canonical form and checks ----------------------------------------------

void arch_canonicalize(const struct space *s, struct arch *a) {
    for (int i = 0; i < SPACE_MAX_BLOCKS; i++) {
        if (i < s->n_blocks && arch_block_active(s, a, i)) continue;
        a->ks[i] = 0;
        a->mid[i] = 0;
        a->pw_w[i] = a->pw_a[i] = a->dw_w[i] = a->dw_a[i] = 0;
    }
    for (int st = s->n_stages; st < SPACE_MAX_STAGES; st++) a->depth[st] = 0;
}

static int bits_ok(const struct space *s, int b) {
    return space_choice_index(s->bits, s->n_bits, b) >= 0;
}

int arch_check(const struct space *s, const struct arch *a) {
    if (space_choice_index(s->res, s->n_res, a->res) < 0)
        return apq_set_error(APQ_ECONFIG, "resolution %d is not in the space", a->res);
    for (int st = 0; st < s->n_stages; st++)
        if (a->depth[st] < s->stage[st].min_depth || a->depth[st] > s->stage[st].max_depth)
            return apq_set_error(APQ_ECONFIG, "stage %d depth %d is outside %d..%d", st + 1,
                                 a->depth[st], s->stage[st].min_depth, s->stage[st].max_depth);
    int quant = arch_is_quantized(a);
    for (int i = 0; i < s->n_blocks; i++) {
        const struct space_block *b = &s->block[i];
        if (!arch_block_active(s, a, i)) {
            if (a->ks[i] || a->mid[i] || a->pw_w[i] || a->pw_a[i] || a->dw_w[i] || a->dw_a[i])
                return apq_set_error(APQ_ECONFIG, "inactive block %d is not zeroed", i);
            continue;
        }
        if (space_choice_index(s->kernels, s->n_kernels, a->ks[i]) < 0)
            return apq_set_error(APQ_ECONFIG, "block %d: kernel %d is not in the space", i,
                                 a->ks[i]);
        if (a->mid[i] < b->mid_min || a->mid[i] > b->mid_max ||
            (a->mid[i] - b->mid_min) % s->mid_step)
            return apq_set_error(APQ_ECONFIG, "block %d: mid %d is not on the grid %d..%d step %d",
                                 i, a->mid[i], b->mid_min, b->mid_max, s->mid_step);
        int q = a->pw_w[i] || a->pw_a[i] || a->dw_w[i] || a->dw_a[i];
        if (quant && !(bits_ok(s, a->pw_w[i]) && bits_ok(s, a->pw_a[i]) && bits_ok(s, a->dw_w[i]) &&
                       bits_ok(s, a->dw_a[i])))
            return apq_set_error(APQ_ECONFIG,
                                 "block %d: bit-widths %d%d%d%d are not all in the space", i,
                                 a->pw_w[i], a->pw_a[i], a->dw_w[i], a->dw_a[i]);
        if (!quant && q) return apq_set_error(APQ_ECONFIG, "block %d: bits set on an fp32 arch", i);
    }
    for (int i = s->n_blocks; i < SPACE_MAX_BLOCKS; i++)
        if (a->ks[i] || a->mid[i] || a->pw_w[i] || a->pw_a[i] || a->dw_w[i] || a->dw_a[i])
            return apq_set_error(APQ_ECONFIG, "block %d is beyond the space", i);
    return APQ_OK;
}

// ---- text form --------------------------------------------------------------

int arch_to_string(const struct space *s, const struct arch *a, char *buf, size_t size) {
    size_t n = 0;
#define PUT(...) n += (size_t)snprintf(buf + n, n < size ? size - n : 0, __VA_ARGS__)
    PUT("r%d", a->res);
    int quant = arch_is_quantized(a);
    for (int st = 0; st < s->n_stages; st++) {
        PUT("_");
        for (int d = 0; d < a->depth[st]; d++) {
            int i = s->stage[st].first_block + d;
            PUT("%sk%dm%d", d ? "." : "", a->ks[i], a->mid[i]);
            if (quant) PUT("q%d%d%d%d", a->pw_w[i], a->pw_a[i], a->dw_w[i], a->dw_a[i]);
        }
    }
#undef PUT
    APQ_ASSERT(n < size);
    return (int)n;
}

/* A decimal in canonical form (no sign, no leading zero) of at most max, so
 * that the text prints back as read; 0 when there is none. */
static int read_uint(const char **p, int *v, int max) {
    const char *q = *p;
    if (*q < '0' || *q > '9' || (q[0] == '0' && q[1] >= '0' && q[1] <= '9')) return 0;
    long x = 0;
    while (*q >= '0' && *q <= '9')
        if ((x = x * 10 + (*q++ - '0')) > max) return 0;
    *v = (int)x;
    *p = q;
    return 1;
}

int arch_from_string(const struct space *s, const char *text, struct arch *a) {
    memset(a, 0, sizeof *a);
    const char *p = text;
    int v, quant = -1;
#define FAIL(why) return apq_set_error(APQ_ECONFIG, "bad arch '%.200s': %s", text, why)
    if (*p++ != 'r' || !read_uint(&p, &v, UINT16_MAX)) FAIL("expected r<resolution> at the start");
    a->res = (uint16_t)v;
    for (int st = 0; st < s->n_stages; st++) {
        if (*p++ != '_') FAIL("expected '_' before each stage");
        int d = 0;
        for (;;) {
            int i = s->stage[st].first_block + d, k, m;
            if (d >= s->stage[st].max_depth) FAIL("a stage has more blocks than its max depth");
            if (*p++ != 'k' || !read_uint(&p, &k, UINT8_MAX)) FAIL("expected k<kernel>");
            if (*p++ != 'm' || !read_uint(&p, &m, UINT16_MAX)) FAIL("expected m<mid channels>");
            a->ks[i] = (uint8_t)k;
            a->mid[i] = (uint16_t)m;
            int q = *p == 'q';
            if (quant >= 0 && q != quant) FAIL("bit-widths on some blocks but not others");
            quant = q;
            if (q) {
                p++;
                uint8_t *f[4] = {&a->pw_w[i], &a->pw_a[i], &a->dw_w[i], &a->dw_a[i]};
                for (int j = 0; j < 4; j++, p++) {
                    if (*p < '1' || *p > '9') FAIL("expected four bit-width digits after q");
                    *f[j] = (uint8_t)(*p - '0');
                }
            }
            d++;
            if (*p != '.') break;
            p++;
        }
        a->depth[st] = (uint8_t)d;
    }
    if (*p) FAIL("trailing characters (or more stages than the space has)");
#undef FAIL
    int rc = arch_check(s, a);
    if (rc < 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", apq_last_error());
        return apq_set_error(rc, "bad arch '%.200s': %s", text, why);
    }
    return APQ_OK;
}

// ---- sampling and reference archs ---------------------------------------------

void arch_set_bits(const struct space *s, struct arch *a, int bits) {
    for (int i = 0; i < s->n_blocks; i++) {
        int on = arch_block_active(s, a, i) ? bits : 0;
        a->pw_w[i] = a->pw_a[i] = a->dw_w[i] = a->dw_a[i] = (uint8_t)on;
    }
}

void arch_sample(const struct space *s, struct rng *r, int quantized, struct arch *a) {
    memset(a, 0, sizeof *a);
    a->res = (uint16_t)s->res[rng_int(r, (unsigned long)s->n_res)];
    for (int st = 0; st < s->n_stages; st++) {
        int lo = s->stage[st].min_depth, hi = s->stage[st].max_depth;
        a->depth[st] = (uint8_t)(lo + (int)rng_int(r, (unsigned long)(hi - lo + 1)));
    }
    for (int i = 0; i < s->n_blocks; i++) {
        const struct space_block *b = &s->block[i];
        /* draw for every slot so the stream does not depend on depth */
        int k = s->kernels[rng_int(r, (unsigned long)s->n_kernels)];
        int m = b->mid_min + s->mid_step * (int)rng_int(r, (unsigned long)b->n_mid);
        uint8_t bits[4] = {0};
        if (quantized)
            for (int j = 0; j < 4; j++)
                bits[j] = (uint8_t)s->bits[rng_int(r, (unsigned long)s->n_bits)];
        if (!arch_block_active(s, a, i)) continue;
        a->ks[i] = (uint8_t)k;
        a->mid[i] = (uint16_t)m;
        a->pw_w[i] = bits[0];
        a->pw_a[i] = bits[1];
        a->dw_w[i] = bits[2];
        a->dw_a[i] = bits[3];
    }
}

static void arch_extreme(const struct space *s, int bits, int largest, struct arch *a) {
    memset(a, 0, sizeof *a);
    a->res = (uint16_t)(largest ? s->res[s->n_res - 1] : s->res[0]);
    for (int st = 0; st < s->n_stages && st < SPACE_MAX_STAGES; st++)
        a->depth[st] = (uint8_t)(largest ? s->stage[st].max_depth : s->stage[st].min_depth);
    for (int i = 0; i < s->n_blocks; i++) {
        if (!arch_block_active(s, a, i)) continue;
        a->ks[i] = (uint8_t)(largest ? s->kernels[s->n_kernels - 1] : s->kernels[0]);
        a->mid[i] = (uint16_t)(largest ? s->block[i].mid_max : s->block[i].mid_min);
    }
    arch_set_bits(s, a, bits);
}

void arch_largest(const struct space *s, int bits, struct arch *a) {
    arch_extreme(s, bits, 1, a);
}
void arch_smallest(const struct space *s, int bits, struct arch *a) {
    arch_extreme(s, bits, 0, a);
}

uint64_t arch_hash(const struct arch *a) {
    const unsigned char *b = (const unsigned char *)a;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < sizeof *a; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

// ---- layers, MACs, weight storage --------------------------------------------

int arch_layers(const struct space *s, const struct arch *a, struct layer_desc *out) {
    int n = 0, q = arch_is_quantized(a), fb = q ? s->fixed_bits : 0;
    int h = a->res;
    struct layer_desc *l;
#define ADD(kind_, role_, blk, ci, co, hi, kk, st, wb, ab)                                         \
    (l = &out[n++], *l = (struct layer_desc){kind_, role_, blk, ci, co, hi,                        \
                                             kind_ == LAYER_LINEAR ? 1                             \
                                             : (st) == 2           ? ((hi) + 1) / 2                \
                                                                   : (hi),                                   \
                                             kk, st, wb, ab, 0})
    ADD(LAYER_CONV, ROLE_FIRST_CONV, -1, s->in_ch, s->first_conv_ch, h, s->first_conv_k, 1, fb, fb);
    ADD(LAYER_DW, ROLE_FIRST_DW, -1, s->first_conv_ch, s->first_conv_ch, h, 3, 1, fb, fb);
    ADD(LAYER_PW, ROLE_FIRST_PW, -1, s->first_conv_ch, s->first_block_ch, h, 1, 1, fb, fb);
    for (int i = 0; i < s->n_blocks; i++) {
        if (!arch_block_active(s, a, i)) continue;
        const struct space_block *b = &s->block[i];
        h = space_block_hin(s, i, a->res);
        int ho = b->stride == 2 ? (h + 1) / 2 : h;
        ADD(LAYER_PW, ROLE_EXPAND, i, b->cin, a->mid[i], h, 1, 1, a->pw_w[i], a->pw_a[i]);
        ADD(LAYER_DW, ROLE_DEPTHWISE, i, a->mid[i], a->mid[i], h, a->ks[i], b->stride, a->dw_w[i],
            a->dw_a[i]);
        ADD(LAYER_PW, ROLE_PROJECT, i, a->mid[i], b->cout, ho, 1, 1, a->pw_w[i], a->pw_a[i]);
        l->residual = b->residual;
    }
    h = space_final_size(s, a->res);
    int last = s->stage[s->n_stages - 1].width;
    ADD(LAYER_PW, ROLE_FEATURE_MIX, -1, last, s->feature_mix_ch, h, 1, 1, fb, fb);
    ADD(LAYER_LINEAR, ROLE_CLASSIFIER, -1, s->feature_mix_ch, s->n_classes, 1, 1, 1, fb, fb);
#undef ADD
    APQ_ASSERT(n <= ARCH_MAX_LAYERS);
    return n;
}

double layer_macs(const struct layer_desc *l) {
    double hw = (double)l->h_out * l->h_out;
    switch (l->kind) {
    case LAYER_CONV:
        return hw * l->k * l->k * l->cin * l->cout;
    case LAYER_DW:
        return hw * l->k * l->k * l->cout;
    case LAYER_PW:
        return hw * l->cin * l->cout;
    case LAYER_LINEAR:
        return (double)l->cin * l->cout;
    }
    return 0;
}

double layer_weights(const struct layer_desc *l) {
    switch (l->kind) {
    case LAYER_CONV:
        return (double)l->k * l->k * l->cin * l->cout;
    case LAYER_DW:
        return (double)l->k * l->k * l->cout;
    case LAYER_PW:
    case LAYER_LINEAR:
        return (double)l->cin * l->cout;
    }
    return 0;
}

double arch_macs(const struct space *s, const struct arch *a) {
    struct layer_desc L[ARCH_MAX_LAYERS];
    int n = arch_layers(s, a, L);
    double m = 0;
    for (int i = 0; i < n; i++) m += layer_macs(&L[i]);
    return m;
}

double arch_weight_bytes(const struct space *s, const struct arch *a) {
    struct layer_desc L[ARCH_MAX_LAYERS];
    int n = arch_layers(s, a, L);
    double bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += layer_weights(&L[i]) * (L[i].w_bits ? L[i].w_bits : 32) / 8.0;
    return bytes;
}
