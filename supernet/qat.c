/* qat.c — quantization-aware calibration and fine-tuning of one subnet
 * (reference/apq.md §5-6: one-batch range calibration, then QAT with SGD
 * Nesterov, cosine lr to 0, label smoothing 0.1, trainable activation clips). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "supernet.h"

void qat_calibrate(struct supernet *sn, struct sn_ctx *c, const struct arch *a, struct sn_quant *q,
                   const struct dataset *calib, int n_images) {
    APQ_ASSERT(arch_is_quantized(a));
    memset(q, 0, sizeof *q);
    int B = c->max_batch < n_images ? c->max_batch : n_images;
    if (B > calib->n) B = calib->n;
    float *x = apq_falloc((size_t)B * a->res * a->res),
          *tmp = apq_falloc((size_t)B * calib->h * calib->w);
    int *idx = apq_xmalloc(sizeof(int) * (size_t)B), *lab = apq_xmalloc(sizeof(int) * (size_t)B);
    for (int i = 0; i < B; i++) idx[i] = i;
    sn_input_batch(x, lab, tmp, calib, idx, B, a->res, 0, NULL);
    /* one batch sets weight ranges and activation clips from float activations (HAQ) */
    c->quant_calibrate = 1;
    supernet_forward(sn, c, a, q, x, B, SN_CALIB);
    c->quant_calibrate = 0;
    free(x);
    free(tmp);
    free(idx);
    free(lab);
    /* then BN statistics of the quantized network */
    supernet_recalibrate(sn, c, a, q, calib, n_images);
}

int qat_finetune(struct supernet *sn, struct sn_ctx *c, const struct arch *a, struct sn_quant *q,
                 const struct dataset *train, int steps, int batch, float lr, uint64_t seed) {
    int nc = sn->s.n_classes, res = a->res;
    APQ_ASSERT(batch <= c->max_batch);
    struct rng r;
    rng_init(&r, seed, RNG_DATA);
    float *x = apq_falloc((size_t)batch * res * res),
          *tmp = apq_falloc((size_t)batch * train->h * train->w);
    float *dlogits = apq_falloc((size_t)batch * nc);
    int *idx = apq_xmalloc(sizeof(int) * (size_t)batch),
        *lab = apq_xmalloc(sizeof(int) * (size_t)batch);
    memset(sn->mom, 0, sizeof(float) * sn->n_params);
    memset(q->a_mom, 0, sizeof q->a_mom);
    c->dropout = 0;
    int rc = APQ_OK;
    for (int step = 0; step < steps; step++) {
        for (int i = 0; i < batch; i++) idx[i] = (int)rng_int(&r, (unsigned long)train->n);
        sn_input_batch(x, lab, tmp, train, idx, batch, res, 1, &r);
        memset(sn->grads, 0, sizeof(float) * sn->n_params);
        memset(q->a_grad, 0, sizeof q->a_grad);
        const float *logits = supernet_forward(sn, c, a, q, x, batch, SN_TRAIN);
        float loss = nn_softmax_ce(dlogits, logits, lab, NULL, batch, nc, 0.1f);
        if (!isfinite(loss)) {
            rc = apq_set_error(APQ_ENONFINITE,
                               "QAT diverged at step %d of %d (loss %g); hint: lower qat_lr in "
                               "the profile",
                               step, steps, loss);
            break;
        }
        supernet_backward(sn, c, dlogits);
        float lr_t = 0.5f * lr * (1.0f + cosf((float)M_PI * step / steps));
        sn_sgd_update(sn, lr_t, 0.9f, 4e-5f);
        for (int l = 0; l < q->n_layers; l++) { /* activation clips: same SGD, kept positive */
            q->a_mom[l] = 0.9f * q->a_mom[l] + q->a_grad[l];
            q->a_range[l] -= lr_t * (q->a_grad[l] + 0.9f * q->a_mom[l]);
            if (q->a_range[l] < 1e-2f) q->a_range[l] = 1e-2f;
        }
    }
    free(x);
    free(tmp);
    free(dlogits);
    free(idx);
    free(lab);
    rng_free(&r);
    return rc;
}

int supernet_measure(struct supernet *sn, struct sn_ctx *c, const float *snapshot,
                     const struct arch *a, const struct sn_measure *m, const struct dataset *train,
                     const struct dataset *const *eval, const int *n_eval, int n_sets,
                     uint64_t qat_seed, double *acc) {
    struct sn_quant q;
    return supernet_measure_ex(sn, c, snapshot, a, m, train, eval, n_eval, n_sets, qat_seed, acc,
                               &q);
}

int supernet_measure_ex(struct supernet *sn, struct sn_ctx *c, const float *snapshot,
                        const struct arch *a, const struct sn_measure *m,
                        const struct dataset *train, const struct dataset *const *eval,
                        const int *n_eval, int n_sets, uint64_t qat_seed, double *acc,
                        struct sn_quant *q_out) {
    int quant = arch_is_quantized(a), rc = APQ_OK;
    struct sn_quant q;
    memset(&q, 0, sizeof q);
    memcpy(sn->params, snapshot, sizeof(float) * sn->n_params);
    if (quant) {
        qat_calibrate(sn, c, a, &q, train, m->calib_images);
        if ((rc = qat_finetune(sn, c, a, &q, train, m->qat_steps, m->qat_batch, m->qat_lr,
                               qat_seed)) < 0)
            return rc;
    }
    supernet_recalibrate(sn, c, a, quant ? &q : NULL, train, m->calib_images);
    for (int j = 0; j < n_sets; j++) {
        acc[j] = supernet_accuracy(sn, c, a, quant ? &q : NULL, eval[j], n_eval ? n_eval[j] : 0);
        if (!isfinite(acc[j]))
            return apq_set_error(APQ_ENONFINITE,
                                 "the subnet's outputs are not finite (%s); hint: %s",
                                 quant ? "QAT diverged" : "the supernet's weights diverged",
                                 quant ? "lower qat_lr in the profile's [measure]"
                                       : "retrain the supernet (rerun make)");
    }
    *q_out = q;
    return APQ_OK;
}
