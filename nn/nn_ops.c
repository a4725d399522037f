/* nn_ops.c — the light kernels of nn.h: element-wise activations, pooling,
 * softmax cross-entropy, bilinear resize, SGD/Adam and the arena.
 *
 * Not here: linear, convolutions, batch norm (nn.c); references (nn_ref.c).
 * Everything is either element-wise or reduces in a fixed order, so results
 * do not depend on the thread count.
 */
#include "nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../util/util.h"

/* Floats below which an element-wise kernel runs on one thread. */
#define PAR_MIN_WORK 32768

// ---- activations, pooling, residual ----------------------------------------

void nn_relu6_forward(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) { /* compare-select, not fminf/fmaxf calls */
        float v = x[i] > 0.0f ? x[i] : 0.0f;
        y[i] = v < 6.0f ? v : 6.0f;
    }
}

void nn_relu6_backward(float *dx, const float *dy, const float *y, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) dx[i] = (y[i] > 0.0f && y[i] < 6.0f) ? dy[i] : 0.0f;
}

void nn_avgpool_forward(float *out, const float *in, int N, int HW, int C) {
    APQ_ASSERT(N > 0 && HW > 0 && C > 0);
    const float inv = 1.0f / (float)HW;
#pragma omp parallel for schedule(static) if ((long)N * HW * C >= PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        float *restrict o = out + (size_t)n * C;
        memset(o, 0, sizeof(float) * C);
        for (int p = 0; p < HW; p++) {
            const float *restrict x = in + ((size_t)n * HW + p) * C;
            for (int c = 0; c < C; c++) o[c] += x[c];
        }
        for (int c = 0; c < C; c++) o[c] *= inv;
    }
}

void nn_avgpool_backward(float *din, const float *dout, int N, int HW, int C) {
    APQ_ASSERT(N > 0 && HW > 0 && C > 0);
    const float inv = 1.0f / (float)HW;
#pragma omp parallel for schedule(static) if ((long)N * HW * C >= PAR_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const float *restrict g = dout + (size_t)n * C;
        for (int p = 0; p < HW; p++) {
            float *restrict d = din + ((size_t)n * HW + p) * C;
            for (int c = 0; c < C; c++) d[c] = g[c] * inv;
        }
    }
}

void nn_add(float *out, const float *x, const float *y, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) out[i] = x[i] + y[i];
}

// ---- loss ------------------------------------------------------------------

/* Per row in double: loss_i = sum_c t_c * (lse - l_c), p_c = exp(l_c - lse). */
float nn_softmax_ce(float *dlogits, const float *logits, const int *labels, const float *soft,
                    int N, int C, float ls) {
    APQ_ASSERT(N > 0 && C > 0 && (soft || labels) && ls >= 0 && ls < 1);
    double total = 0;
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * C;
        double mx = l[0], se = 0;
        for (int c = 1; c < C; c++) mx = fmax(mx, l[c]);
        for (int c = 0; c < C; c++) se += exp(l[c] - mx);
        const double lse = mx + log(se);
        int y = -1;
        if (!soft) {
            y = labels[n];
            APQ_ASSERT(y >= 0 && y < C);
        }
        double loss = 0;
        for (int c = 0; c < C; c++) {
            const double t = soft ? soft[(size_t)n * C + c] : ls / C + (c == y ? 1.0 - ls : 0.0);
            loss += t * (lse - l[c]);
            if (dlogits) dlogits[(size_t)n * C + c] = (float)((exp(l[c] - lse) - t) / N);
        }
        total += loss;
    }
    return (float)(total / N);
}

void nn_softmax(float *probs, const float *logits, int N, int C) {
    APQ_ASSERT(N > 0 && C > 0);
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * C;
        double mx = l[0], se = 0;
        for (int c = 1; c < C; c++) mx = fmax(mx, l[c]);
        for (int c = 0; c < C; c++) se += exp(l[c] - mx);
        for (int c = 0; c < C; c++) probs[(size_t)n * C + c] = (float)(exp(l[c] - mx) / se);
    }
}

int nn_count_correct(const float *logits, const int *labels, int N, int C) {
    int correct = 0;
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (l[c] > l[best]) best = c;
        correct += best == labels[n];
    }
    return correct;
}

// ---- bilinear resize -------------------------------------------------------

/* PyTorch's area_pixel_compute_source_index (align_corners=False, linear):
 * src = max(0, (dst + 0.5)*scale - 0.5), scale = in/out; i0 = floor(src),
 * i1 = i0 + (i0 < in-1), lambda = src - i0. */
static void bilinear_index(int dst, int in, int out, int *i0, int *i1, float *lambda) {
    const float scale = (float)in / (float)out;
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    *i0 = (int)src;
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 + (*i0 < in - 1);
    *lambda = src - (float)*i0;
}

void nn_resize_bilinear(float *out, const float *in, int N, int H, int W, int C, int OH, int OW) {
    APQ_ASSERT(N > 0 && H > 0 && W > 0 && C > 0 && OH > 0 && OW > 0);
#pragma omp parallel for schedule(static) if ((long)N * OH * OW * C >= PAR_MIN_WORK)
    for (int r = 0; r < N * OH; r++) {
        const int n = r / OH, oh = r % OH;
        int h0, h1;
        float lh;
        bilinear_index(oh, H, OH, &h0, &h1, &lh);
        const float *row0 = in + ((size_t)n * H + h0) * W * C;
        const float *row1 = in + ((size_t)n * H + h1) * W * C;
        for (int ow = 0; ow < OW; ow++) {
            int w0, w1;
            float lw;
            bilinear_index(ow, W, OW, &w0, &w1, &lw);
            const float *restrict a = row0 + (size_t)w0 * C, *restrict b = row0 + (size_t)w1 * C;
            const float *restrict c_ = row1 + (size_t)w0 * C, *restrict d = row1 + (size_t)w1 * C;
            float *restrict o = out + ((size_t)r * OW + ow) * C;
            for (int c = 0; c < C; c++)
                o[c] = (1.0f - lh) * ((1.0f - lw) * a[c] + lw * b[c]) +
                       lh * ((1.0f - lw) * c_[c] + lw * d[c]);
        }
    }
}

// ---- optimizers ------------------------------------------------------------

void nn_sgd_step(float *w, const float *g, float *m, size_t n, float lr, float mu, float wd,
                 int nesterov) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * w[i];
        m[i] = mu * m[i] + gi;
        w[i] -= lr * (nesterov ? gi + mu * m[i] : m[i]);
    }
}

/* torch.optim.Adam (foreach=False): m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 * w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). */
void nn_adam_step(float *w, const float *g, float *m, float *v, size_t n, float lr, float b1,
                  float b2, float eps, float wd, long t) {
    APQ_ASSERT(t >= 1);
    const float step = (float)(lr / (1.0 - pow(b1, (double)t)));
    const float bc2s = (float)sqrt(1.0 - pow(b2, (double)t));
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * w[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        w[i] -= step * m[i] / (sqrtf(v[i]) / bc2s + eps);
    }
}

// ---- arena -----------------------------------------------------------------

#define ARENA_ALIGN 16 /* floats: 64 bytes */

int arena_init(struct arena *a, size_t cap_floats) {
    /* 2 MB aligned and advised as transparent huge pages (Linux: THP
     * "madvise" mode, Debian's default): the layers stream tensors of several
     * MB across many 4 KB pages. Measured 2026-11-22 (in-process A/B, batch
     * 128, train-smallest): 1-2% per step at the median, none at the 25th
     * percentile; the values are unchanged. */
    const size_t huge = (size_t)2 << 20;
    size_t bytes = (cap_floats * sizeof(float) + huge - 1) / huge * huge;
    memset(a, 0, sizeof *a);
    if (cap_floats > (SIZE_MAX - huge) / sizeof(float))
        return apq_set_error(APQ_ENOMEM, "out of memory: an arena of %zu floats", cap_floats);
    a->base = aligned_alloc(huge, bytes ? bytes : huge);
    if (!a->base)
        return apq_set_error(APQ_ENOMEM, "out of memory: an arena of %.1f MB", bytes / 1e6);
#ifdef MADV_HUGEPAGE
    madvise(a->base, bytes, MADV_HUGEPAGE); /* advice only: failure changes nothing */
#endif
    a->cap = cap_floats;
    a->used = a->high = 0;
    return APQ_OK;
}

void arena_free(struct arena *a) {
    if (!a) return;
    free(a->base);
    memset(a, 0, sizeof *a);
}

float *arena_alloc(struct arena *a, size_t n_floats) {
    APQ_ASSERT(a->base && a->used <= a->cap && n_floats <= a->cap - a->used);
    float *p = a->base + a->used;
    size_t step = (n_floats + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    a->used += step < a->cap - a->used ? step : a->cap - a->used;
    if (a->used > a->high) a->high = a->used;
    return p;
}

void arena_reset(struct arena *a) {
    a->used = 0;
}
