/* nn_ref.c — naive loop-nest references for the optimised kernels of nn.c
 * (reference/aesthetics.md N1). Same contracts as the kernels; double
 * accumulators, no BLAS, no OpenMP. Used by tests only.
 */
#include "nn.h"

#include "../util/util.h"

void nn_ref_linear_forward(float *out, int ldo, const float *in, int ldi, const float *w, int ldw,
                           const float *bias, int M, int K, int N) {
    APQ_ASSERT(M > 0 && K > 0 && N > 0 && ldo >= N && ldi >= K && ldw >= K);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = bias ? bias[n] : 0.0;
            for (int kk = 0; kk < K; kk++)
                s += (double)in[(size_t)m * ldi + kk] * w[(size_t)n * ldw + kk];
            out[(size_t)m * ldo + n] = (float)s;
        }
}

void nn_ref_dw_forward(float *out, const float *in, const float *w, int ldw, int N, int H, int W,
                       int C, int k, int stride) {
    APQ_ASSERT(N > 0 && H > 0 && W > 0 && C > 0 && ldw >= C && k % 2 == 1 && stride >= 1);
    const int pad = k / 2, OH = nn_out_size(H, k, stride), OW = nn_out_size(W, k, stride);
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int c = 0; c < C; c++) {
                    double s = 0;
                    for (int kh = 0; kh < k; kh++)
                        for (int kw = 0; kw < k; kw++) {
                            const int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            s += (double)in[(((size_t)n * H + ih) * W + iw) * C + c] *
                                 w[(size_t)(kh * k + kw) * ldw + c];
                        }
                    out[(((size_t)n * OH + oh) * OW + ow) * C + c] = (float)s;
                }
}

void nn_ref_conv_forward(float *out, const float *in, const float *w, int N, int H, int W, int Cin,
                         int Cout, int k, int stride) {
    APQ_ASSERT(N > 0 && H > 0 && W > 0 && Cin > 0 && Cout > 0 && k % 2 == 1 && stride >= 1);
    const int pad = k / 2, OH = nn_out_size(H, k, stride), OW = nn_out_size(W, k, stride);
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++)
                for (int co = 0; co < Cout; co++) {
                    double s = 0;
                    for (int kh = 0; kh < k; kh++)
                        for (int kw = 0; kw < k; kw++) {
                            const int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            for (int ci = 0; ci < Cin; ci++)
                                s += (double)in[(((size_t)n * H + ih) * W + iw) * Cin + ci] *
                                     w[(((size_t)co * k + kh) * k + kw) * Cin + ci];
                        }
                    out[(((size_t)n * OH + oh) * OW + ow) * Cout + co] = (float)s;
                }
}
