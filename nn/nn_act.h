/* nn_act.h — the BN affine map with its optional ReLU6, shared by the BN
 * kernels (nn.c) and the depthwise kernel's fused inference epilogue
 * (nn_dw.c), so that both compute every element bit for bit alike. Private
 * to nn/. */
#ifndef APQ_NN_ACT_H
#define APQ_NN_ACT_H

#include <math.h>

/* y = scale*d + shift (one fma), then ReLU6 as a compare-select when relu6
 * (no fminf/fmaxf calls; NaN maps to 0 as in nn_relu6_forward). */
static inline float nn_bn_act(float scale, float d, float shift, int relu6) {
    float z = fmaf(scale, d, shift);
    if (!relu6) return z;
    z = z > 0.0f ? z : 0.0f;
    return z < 6.0f ? z : 6.0f;
}

/* The eval-mode BN scale gamma/sqrt(rvar+eps), as nn_bn_forward_eval computes it. */
static inline float nn_bn_eval_scale(float gamma, float rvar, float eps) {
    return gamma / sqrtf(rvar + eps);
}

#endif
