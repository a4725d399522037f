/* quant.h — fake quantization with straight-through gradients, and range
 * calibration (reference/apq.md §6, the HAQ/APQ QModule).
 *
 * Linear, symmetric, per-tensor. Rounding is round-half-to-even (nearbyintf
 * in the default rounding mode, like torch.round).
 *  - Weights, b bits: T = range; s = T/(2^(b-1)-1); wq = round(clamp(w,-T,T)/s)*s.
 *    Backward: identity (straight-through), the range is not trained.
 *  - Activations (the input of a conv), b bits, trainable clip R (init 6):
 *    unsigned ("half wave", inputs after ReLU6): xc = clip(x,0,R), s = R/(2^b-1);
 *    signed ("full wave", inputs that can be negative): xc = clip(x,-R,R),
 *    s = R/(2^(b-1)-1). xq = round(xc/s)*s.
 *    Backward (PACT form): dx = dy inside the clip interval, 0 outside;
 *    dR += dy where x > R (unsigned/signed), dR -= dy where x < -R (signed).
 * bits == 0 means "not quantized" everywhere (copy through).
 */
#ifndef APQ_QUANT_H
#define APQ_QUANT_H

#include <stddef.h>

/* wq [rows][cols] dense (row stride cols) = fake-quantized w [rows][cols]
 * (row stride ldw >= cols), with range T > 0. bits in {0, 2..8}; 0 copies. */
void quant_weight_fake(float *wq, const float *w, int rows, int cols, int ldw, int bits, float T);
/* Calibrated weight range of w [rows][cols] (ldw): max|w| for bits >= 5, the
 * KL threshold of |w| for bits < 5 (apq.md §6). Returns > 0 (1e-8 for all-zero w). */
float quant_weight_range(const float *w, int rows, int cols, int ldw, int bits);

/* y[n] = fake-quantized x[n] (y may alias x). */
void quant_act_forward(float *y, const float *x, size_t n, int bits, float R, int is_signed);
/* dx[n] = STE gradient (dx may alias dy); *dR += range gradient. x is the
 * forward input. */
void quant_act_backward(float *dx, float *dR, const float *dy, const float *x, size_t n, float R,
                        int is_signed);
/* Calibrated activation range from one batch x[n]: internal bits
 * b' = is_signed ? bits-1 : bits; R = min(6, max|x|) and, when b' < 5, also
 * min with the KL threshold. Returns > 0. */
float quant_act_range(const float *x, size_t n, int bits, int is_signed);
/* HAQ's KL-J threshold of the magnitudes of x[n] for `ibits` internal bits:
 * histogram of |x| over [0, max|x|] with sqrt(n) bins, candidate cuts
 * i = 2^(ibits-1)+1 .. nbins, P = normalised histogram[:i], Q = P resampled
 * to 2^(ibits-1) levels and back by linear interpolation, score
 * sum (P-Q) log2(P/Q) over bins where both > 0; returns (i+0.5)*binwidth of
 * the best cut, or max|x| when there are too few bins. */
float quant_kl_threshold(const float *x, size_t n, int ibits);

#endif
