/* train.c — input batches, evaluation and supernet training (sandwich rule,
 * in-place distillation; reference/ofa.md §6, §10). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supernet.h"

void sn_input_batch(float *x, int *labels, float *tmp, const struct dataset *d, const int *idx,
                    int n, int res, int augment, struct rng *r) {
    dataset_batch(tmp, labels, d, idx, n, augment, r);
    if (res == d->h && res == d->w)
        memcpy(x, tmp, sizeof(float) * (size_t)n * res * res);
    else
        nn_resize_bilinear(x, tmp, n, d->h, d->w, 1, res, res);
}

double supernet_accuracy(struct supernet *sn, struct sn_ctx *c, const struct arch *a,
                         struct sn_quant *q, const struct dataset *d, int n_images) {
    int B = c->max_batch, res = a->res, nc = sn->s.n_classes;
    if (n_images > d->n || n_images <= 0) n_images = d->n;
    float *x = apq_falloc((size_t)B * res * res);
    float *tmp = apq_falloc((size_t)B * d->h * d->w);
    int *idx = apq_xmalloc(sizeof(int) * (size_t)B), *lab = apq_xmalloc(sizeof(int) * (size_t)B);
    long correct = 0;
    for (int off = 0; off < n_images; off += B) {
        int n = n_images - off < B ? n_images - off : B;
        for (int i = 0; i < n; i++) idx[i] = off + i;
        sn_input_batch(x, lab, tmp, d, idx, n, res, 0, NULL);
        const float *logits = supernet_forward(sn, c, a, q, x, n, SN_EVAL);
        correct += nn_count_correct(logits, lab, n, nc);
    }
    free(x);
    free(tmp);
    free(idx);
    free(lab);
    return (double)correct / n_images;
}

/* Warm-up then cosine from lr to lr*end_frac (BigNAS clamps the end, ofa.md §10). */
static float lr_at(const struct sn_train_cfg *cfg, long step, long total) {
    if (step < cfg->warmup_steps) return cfg->lr * (float)(step + 1) / (float)cfg->warmup_steps;
    double t = (double)(step - cfg->warmup_steps) / (double)(total - cfg->warmup_steps);
    double lo = cfg->lr * cfg->lr_end_frac;
    return (float)(lo + 0.5 * (cfg->lr - lo) * (1 + cos(M_PI * t)));
}

/* One SGD-Nesterov update over all parameters; no weight decay on BN and biases. */
void sn_sgd_update(struct supernet *sn, float lr, float momentum, float wd) {
    for (int i = 0; i < sn->n_tensors; i++) {
        const struct sn_tensor *t = &sn->tensors[i];
        if (t->is_buffer) continue;
        nn_sgd_step(sn->params + t->offset, sn->grads + t->offset, sn->mom + t->offset, t->size, lr,
                    momentum, t->no_decay ? 0.0f : wd, 1);
    }
}

void supernet_train(struct supernet *sn, const struct dataset *train, const struct dataset *val,
                    const struct sn_train_cfg *cfg, struct sn_train_report *rep) {
    const struct space *s = &sn->s;
    int B = cfg->batch, nc = s->n_classes, max_res = s->res[s->n_res - 1];
    long per_epoch = train->n / B;
    long total = cfg->steps > 0 ? cfg->steps : (long)cfg->epochs * per_epoch;
    struct sn_ctx c;
    sn_ctx_init(&c, sn, B, cfg->seed);
    struct rng rdata, rsample;
    rng_init(&rdata, cfg->seed, RNG_DATA);
    rng_init(&rsample, cfg->seed, RNG_SAMPLE);
    float *x = apq_falloc((size_t)B * max_res * max_res),
          *tmp = apq_falloc((size_t)B * train->h * train->w);
    float *soft = apq_falloc((size_t)B * nc), *dlogits = apq_falloc((size_t)B * nc);
    int *perm = apq_xmalloc(sizeof(int) * (size_t)train->n),
        *lab = apq_xmalloc(sizeof(int) * (size_t)B);
    for (int i = 0; i < train->n; i++) perm[i] = i;
    long pos = train->n; /* forces a shuffle at the first step */
    struct apq_progress pr;
    progress_init(&pr, "train-supernet", "steps", total);
    double loss_avg = 0, t0 = apq_time();
    long images = 0;
    for (long step = 0; step < total; step++) {
        if (pos + B > train->n) {
            rng_shuffle_int(&rdata, perm, (size_t)train->n);
            pos = 0;
        }
        int res = s->res[rng_int(&rsample, (unsigned long)s->n_res)];
        sn_input_batch(x, lab, tmp, train, perm + pos, B, res, 1, &rdata);
        pos += B;
        float lr = lr_at(cfg, step, total);
        memset(sn->grads, 0, sizeof(float) * sn->n_params);
        int n_sub = step < cfg->largest_steps ? 1 : 2 + cfg->n_random;
        float loss0 = 0;
        for (int j = 0; j < n_sub; j++) {
            struct arch a;
            if (j == 0)
                arch_largest(s, 0, &a);
            else if (j == 1)
                arch_smallest(s, 0, &a);
            else
                arch_sample(s, &rsample, 0, &a);
            a.res = (uint16_t)res;
            c.dropout = j == 0 ? cfg->dropout : 0.0f; /* regularise the largest only */
            const float *logits = supernet_forward(sn, &c, &a, NULL, x, B, SN_TRAIN);
            float loss;
            if (j == 0 || !cfg->kd) {
                loss = nn_softmax_ce(dlogits, logits, lab, NULL, B, nc, cfg->label_smoothing);
                if (j == 0 && cfg->kd) nn_softmax(soft, logits, B, nc);
            } else {
                loss = nn_softmax_ce(dlogits, logits, lab, soft, B, nc, 0);
            }
            if (j == 0) loss0 = loss;
            supernet_backward(sn, &c, dlogits);
            images += B;
        }
        sn_sgd_update(sn, lr, cfg->momentum, cfg->weight_decay);
        loss_avg = step ? 0.98 * loss_avg + 0.02 * loss0 : loss0;
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.3f, lr %.4f, res %d", loss_avg, lr, res);
        progress_update(&pr, step + 1, extra);
        if (!isfinite(loss0))
            apq_die("training diverged at step %ld (loss %g); lower the lr", step, loss0);
    }
    progress_end(&pr, NULL);
    double secs = apq_time() - t0;
    /* report: the largest and smallest subnets after BN recalibration */
    struct arch big, small;
    arch_largest(s, 0, &big);
    arch_smallest(s, 0, &small);
    supernet_recalibrate(sn, &c, &small, NULL, train, cfg->calib_images);
    rep->acc_smallest = supernet_accuracy(sn, &c, &small, NULL, val, cfg->eval_images);
    supernet_recalibrate(sn, &c, &big, NULL, train, cfg->calib_images);
    rep->acc_largest = supernet_accuracy(sn, &c, &big, NULL, val, cfg->eval_images);
    rep->seconds = secs;
    rep->images_per_s = images / secs;
    rep->steps = total;
    apq_log("arena high-water mark %.1f MB of %.1f MB", c.arena.high * 4.0 / 1e6,
            c.arena.cap * 4.0 / 1e6);
    free(x);
    free(tmp);
    free(soft);
    free(dlogits);
    free(perm);
    free(lab);
    rng_free(&rdata);
    rng_free(&rsample);
    sn_ctx_free(&c);
}
