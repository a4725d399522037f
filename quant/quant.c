/* quant.c — fake quantization (forward and straight-through backward) and
 * range calibration, as HAQ/APQ's QModule (reference/apq.md §6).
 *
 * Not here: bit policies, QAT loops, integer kernels. Rounding is nearbyintf
 * (round-half-even in the default mode, like torch.round); scales are
 * divided by, as QModule does (x / s, not x * (1/s)).
 */
#include "quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../util/util.h"

/* Elements below which a loop runs on one thread (never changes results). */
#define PAR_MIN_WORK 32768
/* Fixed chunk count of the range-gradient sum: the order does not depend on
 * the thread count. */
#define RED_CHUNKS 16
/* The range returned for all-zero data, so that scales stay finite. */
#define RANGE_MIN 1e-8f

// ---- weights ---------------------------------------------------------------

void quant_weight_fake(float *wq, const float *w, int rows, int cols, int ldw, int bits, float T) {
    APQ_ASSERT(rows > 0 && cols > 0 && ldw >= cols && (bits == 0 || (bits >= 2 && bits <= 8)));
    if (bits == 0) {
        for (int r = 0; r < rows; r++)
            memcpy(wq + (size_t)r * cols, w + (size_t)r * ldw, sizeof(float) * cols);
        return;
    }
    APQ_ASSERT(T > 0);
    const float s = T / (float)((1 << (bits - 1)) - 1);
#pragma omp parallel for schedule(static) if ((long)rows * cols >= PAR_MIN_WORK)
    for (int r = 0; r < rows; r++) {
        const float *restrict src = w + (size_t)r * ldw;
        float *restrict dst = wq + (size_t)r * cols;
        for (int c = 0; c < cols; c++) {
            float v = src[c] > -T ? src[c] : -T;
            dst[c] = nearbyintf((v < T ? v : T) / s) * s;
        }
    }
}

/* max |x| over rows x cols with row stride ld (max is exact: any order). */
static float absmax(const float *x, size_t rows, size_t cols, size_t ld) {
    float mx = 0;
#pragma omp parallel for schedule(static) reduction(max : mx) if (rows * cols >= PAR_MIN_WORK)
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) mx = fmaxf(mx, fabsf(x[r * ld + c]));
    return mx;
}

// ---- KL-J threshold --------------------------------------------------------

/* numpy.interp at x in [0,1] over m points evenly spaced on [0,1]. */
static double interp_unit(double x, const double *fp, int m) {
    if (m == 1) return fp[0];
    const double t = x * (m - 1);
    const int k = (int)t;
    if (k >= m - 1) return fp[m - 1];
    return fp[k] + (t - k) * (fp[k + 1] - fp[k]);
}

/* HAQ QModule._compute_threshold over rows x cols (row stride ld). P is the
 * cumulative normalised histogram of |x| (ceil(sqrt(n)) bins on [0, max|x|];
 * numpy's 'sqrt' rule gives the same count when min|x| = 0); for
 * each cut i, p = P with p[i-1:] = 1, q = p[:i] resampled to 2^(ibits-1)
 * points and back to i (linear interpolation), q[i:] = 1, and the score is
 * sum_b (P_b - q_b) log2(P_b / q_b) over all bins where both are > 0. */
static float kl_threshold(const float *x, size_t rows, size_t cols, size_t ld, int ibits) {
    APQ_ASSERT(ibits >= 1 && ibits <= 16);
    const size_t n = rows * cols;
    const float mx = absmax(x, rows, cols, ld);
    if (!(mx > 1e-8f)) return mx;
    const int nbins = (int)ceil(sqrt((double)n));
    const int nlev = 1 << (ibits - 1);
    if (nlev + 1 > nbins) return mx;

    double *cdf = apq_xcalloc((size_t)nbins * 3 + nlev, sizeof(double));
    double *p = cdf + nbins, *q = p + nbins, *pl = q + nbins;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            int b = (int)((double)fabsf(x[r * ld + c]) / mx * nbins);
            cdf[b < nbins ? b : nbins - 1] += 1;
        }
    for (int b = 0; b < nbins; b++) cdf[b] = cdf[b] / (double)n + (b ? cdf[b - 1] : 0);

    double best = INFINITY;
    int best_i = nbins;
    for (int i = nlev + 1; i <= nbins; i++) {
        for (int b = 0; b < nbins; b++) p[b] = b < i - 1 ? cdf[b] : 1.0;
        for (int j = 0; j < nlev; j++)
            pl[j] = interp_unit(nlev > 1 ? (double)j / (nlev - 1) : 0, p, i);
        for (int b = 0; b < nbins; b++)
            q[b] = b < i ? interp_unit((double)b / (i - 1), pl, nlev) : 1.0;
        double d = 0;
        for (int b = 0; b < nbins; b++)
            if (cdf[b] > 0 && q[b] > 0) d += (cdf[b] - q[b]) * log2(cdf[b] / q[b]);
        if (d < best) {
            best = d;
            best_i = i;
        }
    }
    free(cdf);
    /* HAQ's last cut lies half a bin past max|x|; a range beyond the data only wastes levels */
    const double thr = (best_i + 0.5) * ((double)mx / nbins);
    return thr < mx ? (float)thr : mx;
}

float quant_kl_threshold(const float *x, size_t n, int ibits) {
    APQ_ASSERT(n > 0);
    return kl_threshold(x, 1, n, n, ibits);
}

float quant_weight_range(const float *w, int rows, int cols, int ldw, int bits) {
    APQ_ASSERT(rows > 0 && cols > 0 && ldw >= cols && bits >= 0);
    float T = bits == 0 || bits >= 5
                  ? absmax(w, (size_t)rows, (size_t)cols, (size_t)ldw)
                  : kl_threshold(w, (size_t)rows, (size_t)cols, (size_t)ldw, bits);
    return T > RANGE_MIN ? T : RANGE_MIN;
}

// ---- activations -----------------------------------------------------------

void quant_act_forward(float *y, const float *x, size_t n, int bits, float R, int is_signed) {
    if (bits == 0) {
        if (y != x) memmove(y, x, sizeof(float) * n);
        return;
    }
    APQ_ASSERT(bits >= (is_signed ? 2 : 1) && bits <= 16 && R > 0);
    const int levels = is_signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    const float s = R / (float)levels, lo = is_signed ? -R : 0.0f;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        float v = x[i] > lo ? x[i] : lo;
        y[i] = nearbyintf((v < R ? v : R) / s) * s;
    }
}

/* QModule writes the clip as 0.5*(|x| - |x-R| + R) (unsigned) or
 * 0.5*(|x+R| - |x-R|) (signed), so autograd's sign(0) = 0 gives half the
 * gradient exactly at a clip boundary; we follow it:
 *   dx = dy inside (lo, R), dy/2 at x == lo or x == R, 0 outside;
 *   dR = dy above R, dy/2 at x == R; signed: -dy below -R, -dy/2 at x == -R. */
void quant_act_backward(float *dx, float *dR, const float *dy, const float *x, size_t n, float R,
                        int is_signed) {
    APQ_ASSERT(R > 0);
    const float lo = is_signed ? -R : 0.0f;
    double part[RED_CHUNKS];
    const int chunks = n < RED_CHUNKS ? (n ? (int)n : 1) : RED_CHUNKS;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_WORK)
    for (int ch = 0; ch < chunks; ch++) {
        const size_t i0 = n * ch / chunks, i1 = n * (ch + 1) / chunks;
        double r = 0;
        for (size_t i = i0; i < i1; i++) {
            const float xi = x[i], g = dy[i];
            if (xi > R)
                r += g;
            else if (xi == R)
                r += 0.5 * g;
            else if (is_signed && xi < lo)
                r -= g;
            else if (is_signed && xi == lo)
                r -= 0.5 * g;
            if (dx) dx[i] = (xi > lo && xi < R) ? g : (xi == lo || xi == R) ? 0.5f * g : 0.0f;
        }
        part[ch] = r;
    }
    if (!dR) return;
    double total = 0;
    for (int ch = 0; ch < chunks; ch++) total += part[ch];
    *dR += (float)total;
}

float quant_act_range(const float *x, size_t n, int bits, int is_signed) {
    APQ_ASSERT(n > 0 && bits >= 0);
    float R = fminf(6.0f, absmax(x, 1, n, n));
    const int ibits = is_signed ? bits - 1 : bits;
    if (bits > 0 && ibits >= 1 && ibits < 5) R = fminf(R, kl_threshold(x, 1, n, n, ibits));
    return R > RANGE_MIN ? R : RANGE_MIN;
}
