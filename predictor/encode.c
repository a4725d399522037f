/* encode.c — the predictor's one-hot arch encoding, version 1 (predictor.h). */
#include <string.h>

#include "predictor.h"

static int mid_total(const struct space *s) {
    int n = 0;
    for (int i = 0; i < s->n_blocks; i++) n += s->block[i].n_mid;
    return n;
}

int encode_fp32_dim(const struct space *s) {
    return s->n_res + s->n_blocks * s->n_kernels + mid_total(s);
}

int encode_bits_dim(const struct space *s) {
    return 4 * s->n_blocks * s->n_bits;
}

int encode_dim(const struct space *s, int quantized) {
    return encode_fp32_dim(s) + (quantized ? encode_bits_dim(s) : 0);
}

void encode_arch(const struct space *s, const struct arch *a, int quantized, float *x) {
    memset(x, 0, sizeof *x * (size_t)encode_dim(s, quantized));
    int r = space_choice_index(s->res, s->n_res, a->res);
    APQ_ASSERT(r >= 0);
    x[r] = 1;
    float *ks = x + s->n_res, *mid = ks + s->n_blocks * s->n_kernels;
    float *bits = x + encode_fp32_dim(s);
    int group = s->n_blocks * s->n_bits;
    for (int i = 0, mid_off = 0; i < s->n_blocks; mid_off += s->block[i].n_mid, i++) {
        if (!arch_block_active(s, a, i)) continue;
        const struct space_block *b = &s->block[i];
        int k = space_choice_index(s->kernels, s->n_kernels, a->ks[i]);
        int m = (a->mid[i] - b->mid_min) / s->mid_step;
        APQ_ASSERT(k >= 0 && m >= 0 && m < b->n_mid);
        ks[i * s->n_kernels + k] = 1;
        mid[mid_off + m] = 1;
        if (!quantized || !a->pw_w[i]) continue; /* fp32 arch: quant part stays zero */
        const uint8_t v[4] = {a->pw_w[i], a->pw_a[i], a->dw_w[i], a->dw_a[i]};
        for (int g = 0; g < 4; g++) {
            int j = space_choice_index(s->bits, s->n_bits, v[g]);
            APQ_ASSERT(j >= 0);
            bits[g * group + i * s->n_bits + j] = 1;
        }
    }
}
