/* schedule.c — training schedules (progressive shrinking, BigNAS sandwich),
 * sampling inside a phase's sub-space, and the importance sort of middle
 * channels (reference/ofa.md §3, §6, §10). */
#include <gsl/gsl_sort.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supernet.h"

static struct sn_phase phase(const char *name, long steps, float lr, float end, int warmup,
                             int n_sub, int sandwich, int kd, int sort, struct sn_elastic el) {
    struct sn_phase p = {.steps = steps,
                         .lr = lr,
                         .lr_end_frac = end,
                         .n_sub = n_sub,
                         .sandwich = sandwich,
                         .kd = kd,
                         .sort = sort,
                         .el = el};
    snprintf(p.name, sizeof p.name, "%s", name);
    p.warmup_steps = warmup < steps ? warmup : (int)(steps / 2);
    return p;
}

void sn_schedule_sandwich(struct sn_train_cfg *cfg, const struct space *s, long largest_steps,
                          long steps, float lr, int warmup, int n_random, int kd) {
    int K = s->max_kernel, depth_all = 64;
    struct sn_elastic full = {K, 0, s->mid_ratio_max};
    struct sn_elastic all = {s->kernels[0], depth_all, s->mid_ratio_min};
    cfg->n_phases = 0;
    if (largest_steps > 0) /* the largest network first, as a teacher warm-up (issue #2) */
        cfg->phase[cfg->n_phases++] =
            phase("largest", largest_steps, lr, 0.05f, warmup, 1, 0, 0, -1, full);
    if (steps > largest_steps) {
        cfg->phase[cfg->n_phases] =
            phase("sandwich", steps - largest_steps, lr, 0.05f, largest_steps > 0 ? 0 : warmup,
                  2 + n_random, 1, kd ? 1 : 0, -1, all);
        cfg->phase[cfg->n_phases++].lr_continue = largest_steps > 0; /* one cosine over both */
    }
}

void sn_schedule_ps(struct sn_train_cfg *cfg, const struct space *s, const long steps[6], float lr,
                    int warmup) {
    int K = s->max_kernel, k0 = s->kernels[0], rmax = s->mid_ratio_max, rmin = s->mid_ratio_min;
    /* the intermediate width group: OFA's expand 4 between 3 and 6 */
    int rmid = rmin + (rmax - rmin + 1) / 3 < rmax ? rmin + (rmax - rmin + 1) / 3 : rmax;
    /* OFA's per-phase learning rates relative to the full network's (ofa.md §6.1) */
    static const float ratio[6] = {1.0f, 0.37f, 0.03f, 0.09f, 0.03f, 0.09f};
    struct sn_elastic el[6] = {{K, 0, rmax},   {k0, 0, rmax},  {k0, 1, rmax},
                               {k0, 64, rmax}, {k0, 64, rmid}, {k0, 64, rmin}};
    static const char *names[6] = {"full", "kernel", "depth-1", "depth-2", "width-1", "width-2"};
    static const int n_sub[6] = {1, 1, 2, 2, 4, 4}, warm[6] = {0, 1, 0, 1, 0, 1};
    int sort[6] = {-1, -1, -1, -1, 0, rmid};
    cfg->n_phases = 0;
    for (int i = 0; i < 6; i++) {
        if (steps[i] <= 0) continue;
        int w = i == 0 || warm[i] ? warmup : 0;
        cfg->phase[cfg->n_phases++] = phase(names[i], steps[i], lr * ratio[i], 0.0f, w, n_sub[i], 0,
                                            i ? 2 : 0, sort[i], el[i]);
    }
}

void sn_sample_elastic(const struct space *s, const struct sn_elastic *el, struct rng *r,
                       struct arch *a) {
    memset(a, 0, sizeof *a);
    a->res = (uint16_t)s->res[rng_int(r, (unsigned long)s->n_res)];
    for (int st = 0; st < s->n_stages; st++) {
        int hi = s->stage[st].max_depth, lo = hi - el->depth_drop;
        if (lo < s->stage[st].min_depth) lo = s->stage[st].min_depth;
        a->depth[st] = (uint8_t)(lo + (int)rng_int(r, (unsigned long)(hi - lo + 1)));
    }
    int k_first = 0;
    while (k_first < s->n_kernels - 1 && s->kernels[k_first] < el->kernel_min) k_first++;
    for (int i = 0; i < s->n_blocks; i++) {
        const struct space_block *b = &s->block[i];
        int m_lo = el->mid_ratio_min * b->cin;
        if (m_lo < b->mid_min) m_lo = b->mid_min;
        int first = (m_lo - b->mid_min + s->mid_step - 1) / s->mid_step;
        if (first > b->n_mid - 1) first = b->n_mid - 1;
        /* draw for every slot so the stream does not depend on depth */
        int k = s->kernels[k_first + (int)rng_int(r, (unsigned long)(s->n_kernels - k_first))];
        int m =
            b->mid_min + s->mid_step * (first + (int)rng_int(r, (unsigned long)(b->n_mid - first)));
        if (!arch_block_active(s, a, i)) continue;
        a->ks[i] = (uint8_t)k;
        a->mid[i] = (uint16_t)m;
    }
}

/* Reorder the first n entries of v by perm (v'[i] = v[perm[i]]); rows of `width`
 * floats with stride `ld` (width 1 for vectors). tmp holds n*width floats. */
static void permute_rows(float *v, int n, int width, int ld, const size_t *perm, float *tmp) {
    for (int i = 0; i < n; i++)
        memcpy(tmp + (size_t)i * width, v + perm[i] * ld, sizeof(float) * width);
    for (int i = 0; i < n; i++)
        memcpy(v + (size_t)i * ld, tmp + (size_t)i * width, sizeof(float) * width);
}

/* Columns: v'[r][i] = v[r][perm[i]] for r < rows, i < n (row stride ld). */
static void permute_cols(float *v, int rows, int n, int ld, const size_t *perm, float *tmp) {
    for (int r = 0; r < rows; r++) {
        float *row = v + (size_t)r * ld;
        for (int i = 0; i < n; i++) tmp[i] = row[perm[i]];
        memcpy(row, tmp, sizeof(float) * n);
    }
}

static void permute_bn(struct sn_bn *bn, int n, const size_t *perm, float *tmp) {
    permute_rows(bn->gamma, n, 1, 1, perm, tmp);
    permute_rows(bn->beta, n, 1, 1, perm, tmp);
    permute_rows(bn->mean, n, 1, 1, perm, tmp);
    permute_rows(bn->var, n, 1, 1, perm, tmp);
}

void sn_sort_channels(struct supernet *sn, int protect_ratio) {
    const struct space *s = &sn->s;
    int K = s->max_kernel;
    for (int i = 0; i < s->n_blocks; i++) {
        const struct space_block *b = &s->block[i];
        struct sn_block *blk = &sn->block[i];
        int n = b->mid_max, protect = protect_ratio * b->cin;
        double *neg = apq_xcalloc((size_t)n, sizeof(double));
        size_t *perm = apq_xcalloc((size_t)n, sizeof(size_t));
        float *tmp = apq_falloc((size_t)n * (b->cin > K * K ? b->cin : K * K) + (size_t)n);
        for (int c = 0; c < n; c++) { /* L1 of the projection weights reading channel c */
            double l1 = 0;
            for (int o = 0; o < b->cout; o++) l1 += fabs(blk->project_w[(size_t)o * n + c]);
            /* ascending sort of -importance = descending importance; the
             * protected group stays ahead (ofa.md §3: -1e5 on the rest) */
            neg[c] = -l1 + (protect > 0 && c >= protect ? 1e5 : 0);
        }
        gsl_sort_index(perm, neg, 1, (size_t)n);
        permute_rows(blk->expand_w, n, b->cin, b->cin, perm, tmp);
        permute_bn(&blk->expand_bn, n, perm, tmp);
        permute_cols(blk->dw_w, K * K, n, n, perm, tmp);
        permute_bn(&blk->dw_bn, n, perm, tmp);
        permute_cols(blk->project_w, b->cout, n, n, perm, tmp);
        free(neg);
        free(perm);
        free(tmp);
    }
}
