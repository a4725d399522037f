/* train.c — input batches, evaluation and supernet training (sandwich rule,
 * in-place distillation; reference/ofa.md §6, §10). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/h5.h"
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
        for (int i = 0; i < n * nc && correct >= 0; i++)
            if (!isfinite(logits[i])) correct = -1; /* diverged: no accuracy to speak of */
        if (correct < 0) break;
        correct += nn_count_correct(logits, lab, n, nc);
    }
    free(x);
    free(tmp);
    free(idx);
    free(lab);
    return correct < 0 ? NAN : (double)correct / n_images;
}

/* Warm-up, then cosine from the peak lr to lr*lr_end_frac (ofa.md §6.1; BigNAS
 * clamps the end at 5%, ofa.md §10), over phase i and the phases that continue
 * its curve (lr_continue). t counts steps inside phase i. */
static float lr_at(const struct sn_train_cfg *cfg, int i, long t) {
    int g = i;
    while (g > 0 && cfg->phase[g].lr_continue) t += cfg->phase[--g].steps;
    long total = 0;
    for (int j = g; j < cfg->n_phases && (j == g || cfg->phase[j].lr_continue); j++)
        total += cfg->phase[j].steps;
    const struct sn_phase *ph = &cfg->phase[g];
    if (t < ph->warmup_steps) return ph->lr * (float)(t + 1) / (float)ph->warmup_steps;
    double u = (double)(t - ph->warmup_steps) / (double)(total - ph->warmup_steps);
    double lo = ph->lr * ph->lr_end_frac;
    return (float)(lo + 0.5 * (ph->lr - lo) * (1 + cos(M_PI * u)));
}

void sn_sgd_update(struct supernet *sn, float lr, float momentum, float wd) {
    for (int i = 0; i < sn->n_tensors; i++) {
        const struct sn_tensor *t = &sn->tensors[i];
        if (t->is_buffer) continue;
        nn_sgd_step(sn->params + t->offset, sn->grads + t->offset, sn->mom + t->offset, t->size, lr,
                    momentum, t->no_decay ? 0.0f : wd, 1);
    }
}

// ---- training state and its checkpoint -------------------------------------------

struct train_state {
    long step; /* next step to run */
    int *perm; /* data order of the current pass */
    long pos;  /* next position in perm */
    struct rng rdata, rsample;
    double loss_avg;
    struct supernet teacher; /* PS: the full network after phase 0 (params only) */
    int has_teacher;
};

static uint64_t cfg_hash(const struct sn_train_cfg *cfg, const struct space *s, int n_train) {
    uint64_t h = 0xcbf29ce484222325ULL ^ s->hash;
    const unsigned char *p = (const unsigned char *)cfg->phase;
    for (size_t i = 0; i < sizeof(struct sn_phase) * (size_t)cfg->n_phases; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    double v[] = {cfg->batch,   cfg->momentum,     cfg->weight_decay, cfg->label_smoothing,
                  cfg->dropout, (double)cfg->seed, n_train,           cfg->has_fixed};
    p = (const unsigned char *)v;
    for (size_t i = 0; i < sizeof v; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    if (cfg->has_fixed) h ^= arch_hash(&cfg->fixed);
    return h;
}

static int write_f32(hid_t f, const char *name, const float *v, size_t n) {
    hsize_t d = n;
    return h5_write_f32(f, name, 1, &d, v);
}

static int write_rng(hid_t f, const char *name, struct rng *r) {
    size_t n = rng_state_size(r);
    APQ_ASSERT(n % 4 == 0);
    hsize_t d = n / 4;
    return h5_write_i32(f, name, 1, &d, (const int32_t *)rng_state(r));
}

static int save_checkpoint(const char *path, const struct supernet *sn, const struct sn_ctx *c,
                           struct train_state *st, uint64_t hash, int n_train) {
    hid_t f;
    int rc = h5_create(path, &f);
    if (rc < 0) return rc;
    char hs[32];
    snprintf(hs, sizeof hs, "%016llx", (unsigned long long)hash);
    hsize_t dn = (hsize_t)n_train;
    rc = h5_write_provenance(f, "train-checkpoint", 1, 0, "");
    if (rc == 0) rc = h5_attr_set_str(f, "settings_hash", hs);
    if (rc == 0) rc = h5_attr_set_i64(f, "step", st->step);
    if (rc == 0) rc = h5_attr_set_i64(f, "pos", st->pos);
    if (rc == 0) rc = h5_attr_set_f64(f, "loss_avg", st->loss_avg);
    if (rc == 0) rc = write_f32(f, "params", sn->params, sn->n_params);
    if (rc == 0) rc = write_f32(f, "momentum", sn->mom, sn->n_params);
    if (rc == 0) rc = write_f32(f, "buffers", sn->bufs, sn->n_bufs);
    if (rc == 0 && st->has_teacher) rc = write_f32(f, "teacher", st->teacher.params, sn->n_params);
    if (rc == 0) rc = h5_write_i32(f, "perm", 1, &dn, st->perm);
    if (rc == 0) rc = write_rng(f, "rng_data", &st->rdata);
    if (rc == 0) rc = write_rng(f, "rng_sample", &st->rsample);
    if (rc == 0) rc = write_rng(f, "rng_dropout", (struct rng *)&c->rng);
    if (rc < 0) {
        h5_abort(f, path);
        return rc;
    }
    return h5_commit(f, path);
}

static int read_rng(hid_t f, const char *name, struct rng *r) {
    hsize_t d = rng_state_size(r) / 4;
    return h5_read_i32(f, name, 1, &d, (int32_t *)rng_state(r));
}

/* Whether p[0..n) holds every index 0..n-1 once (the data order indexes the images). */
static int is_permutation(const int *p, int n) {
    unsigned char *seen = calloc((size_t)n + 1, 1);
    int ok = seen != NULL;
    for (int i = 0; ok && i < n; i++) {
        ok = p[i] >= 0 && p[i] < n && !seen[p[i]];
        if (ok) seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

/* Resume from path when it holds a checkpoint of these settings: 1 resumed,
 * 0 not (none, unreadable, or of other settings), APQ_EFORMAT when it is of
 * these settings but damaged (a missing or non-finite dataset). */
static int load_checkpoint(const char *path, struct supernet *sn, struct sn_ctx *c,
                           struct train_state *st, uint64_t hash, int n_train) {
    hid_t f;
    if (access(path, F_OK) != 0) return 0;
    if (h5_open_read(path, "train-checkpoint", 1, &f) < 0) {
        apq_log("ignoring %s: %s", path, apq_last_error());
        return 0;
    }
    char hs[64], want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)hash);
    if (h5_attr_get_str(f, "settings_hash", hs, sizeof hs) < 0 || strcmp(hs, want)) {
        apq_log("ignoring %s: made with other settings; starting afresh", path);
        h5_close(f);
        return 0;
    }
    int64_t step, pos;
    hsize_t dp = sn->n_params, db = sn->n_bufs, dn = (hsize_t)n_train;
    int rc = h5_attr_get_i64(f, "step", &step);
    if (rc == 0) rc = h5_attr_get_i64(f, "pos", &pos);
    if (rc == 0) rc = h5_attr_get_f64(f, "loss_avg", &st->loss_avg);
    if (rc == 0) rc = h5_read_f32(f, "params", 1, &dp, sn->params);
    if (rc == 0) rc = h5_read_f32(f, "momentum", 1, &dp, sn->mom);
    if (rc == 0) rc = h5_read_f32(f, "buffers", 1, &db, sn->bufs);
    if (rc == 0 && h5_exists(f, "teacher") == 1) {
        supernet_init(&st->teacher, &sn->s, 0, 0);
        st->has_teacher = 1;
        rc = h5_read_f32(f, "teacher", 1, &dp, st->teacher.params);
    }
    if (rc == 0) rc = h5_read_i32(f, "perm", 1, &dn, st->perm);
    if (rc == 0) rc = read_rng(f, "rng_data", &st->rdata);
    if (rc == 0) rc = read_rng(f, "rng_sample", &st->rsample);
    if (rc == 0) rc = read_rng(f, "rng_dropout", &c->rng);
    if (rc == 0 && (!isfinite(st->loss_avg) || step < 0 || pos < 0 || pos > n_train))
        rc = apq_set_error(APQ_EFORMAT, "attribute step, pos or loss_avg out of range");
    if (rc == 0 && !is_permutation(st->perm, n_train))
        rc =
            apq_set_error(APQ_EFORMAT, "dataset 'perm' is not a permutation of 0..%d", n_train - 1);
    h5_close(f);
    if (rc < 0) {
        char why[768]; /* the reader's detail without its file name and its own hint */
        const char *e = apq_last_error();
        size_t lp = strlen(path);
        if (!strncmp(e, path, lp) && !strncmp(e + lp, ": ", 2)) e += lp + 2;
        snprintf(why, sizeof why, "%s", e);
        char *hint = strstr(why, "; the file is damaged");
        if (hint) *hint = 0;
        return apq_set_error(APQ_EFORMAT,
                             "%s: damaged training checkpoint (%s); delete it to start afresh",
                             path, why);
    }
    st->step = step;
    st->pos = pos;
    return 1;
}

// ---- the loop ---------------------------------------------------------------------------

/* The phase containing global step `step` and the step's index inside it. */
static int phase_of(const struct sn_train_cfg *cfg, long step, long *t) {
    long start = 0;
    for (int i = 0; i < cfg->n_phases; i++) {
        if (step < start + cfg->phase[i].steps) {
            *t = step - start;
            return i;
        }
        start += cfg->phase[i].steps;
    }
    APQ_ASSERT(0);
    return -1;
}

/* Expected cost of one step of phase ph, in MACs per image summed over the
 * subnets it trains (a teacher's forward counts a third of a training pass):
 * the training time is close to proportional to it (largest-only 0.29 s per
 * step at 40 MMACs, sandwich 0.68 s at about 90). Random subnets count the
 * mean of 32 draws from a stream of their own, so training is not perturbed.
 * Only for the progress line's ETA. */
static double phase_step_cost(const struct sn_train_cfg *cfg, const struct space *s,
                              const struct sn_phase *ph) {
    if (cfg->has_fixed) return ph->n_sub * arch_macs(s, &cfg->fixed);
    struct arch big, small, a;
    arch_largest(s, 0, &big);
    arch_smallest(s, 0, &small);
    struct rng r;
    rng_init(&r, cfg->seed ^ 0x9e3779b97f4a7c15ULL, RNG_SAMPLE);
    double sampled = 0;
    for (int i = 0; i < 32; i++) {
        sn_sample_elastic(s, &ph->el, &r, &a);
        sampled += arch_macs(s, &a) / 32;
    }
    rng_free(&r);
    double cost = ph->kd == 2 ? arch_macs(s, &big) / 3 : 0;
    for (int j = 0; j < ph->n_sub; j++)
        cost += ph->sandwich && j == 0   ? arch_macs(s, &big)
                : ph->sandwich && j == 1 ? arch_macs(s, &small)
                                         : sampled;
    return cost;
}

/* Work (phase_step_cost units) of the steps before `step`; cost[] per phase. */
static double work_before(const struct sn_train_cfg *cfg, const double *cost, long step) {
    double w = 0;
    for (int i = 0; i < cfg->n_phases && step > 0; i++) {
        long n = step < cfg->phase[i].steps ? step : cfg->phase[i].steps;
        w += n * cost[i];
        step -= n;
    }
    return w;
}

/* Phase-start actions (also replayed on resume at a phase boundary). */
static void start_phase(struct supernet *sn, const struct sn_phase *ph, struct train_state *st) {
    if (!ph->lr_continue) /* a phase of its own starts its optimizer afresh (OFA) */
        memset(sn->mom, 0, sizeof(float) * sn->n_params);
    if (ph->kd == 2 && !st->has_teacher) { /* the full network trained so far (ofa.md §6.2) */
        supernet_init(&st->teacher, &sn->s, 0, 0);
        memcpy(st->teacher.params, sn->params, sizeof(float) * sn->n_params);
        st->has_teacher = 1;
    }
    if (ph->sort >= 0) sn_sort_channels(sn, ph->sort);
    apq_log("phase %s: %ld steps, %d subnet%s per step, lr %.4g%s", ph->name, ph->steps, ph->n_sub,
            ph->n_sub > 1 ? "s" : "", ph->lr, ph->sort >= 0 ? ", channels re-sorted" : "");
}

/* One training step of phase ph on batch (x, lab) at resolution res. Returns
 * the first subnet's loss. */
static float train_step(struct supernet *sn, struct sn_ctx *c, const struct sn_train_cfg *cfg,
                        const struct sn_phase *ph, struct train_state *st, const float *x,
                        const int *lab, int res, float *soft, float *dlogits) {
    const struct space *s = &sn->s;
    int B = cfg->batch, nc = s->n_classes;
    struct arch big;
    arch_largest(s, 0, &big);
    big.res = (uint16_t)res;
    if (ph->kd == 2) { /* the teacher: the full network, batch statistics, no gradient */
        const float *tl = supernet_forward(&st->teacher, c, &big, NULL, x, B, SN_TRAIN);
        nn_softmax(soft, tl, B, nc);
    }
    memset(sn->grads, 0, sizeof(float) * sn->n_params);
    float loss0 = 0;
    for (int j = 0; j < ph->n_sub; j++) {
        struct arch a;
        if (cfg->has_fixed)
            a = cfg->fixed;
        else if (ph->sandwich && j == 0)
            a = big;
        else if (ph->sandwich && j == 1)
            arch_smallest(s, 0, &a);
        else
            sn_sample_elastic(s, &ph->el, &st->rsample, &a);
        a.res = (uint16_t)res;
        int is_big = arch_equal(&a, &big);
        c->dropout = is_big ? cfg->dropout : 0.0f; /* regularise the largest only (BigNAS) */
        const float *logits = supernet_forward(sn, c, &a, NULL, x, B, SN_TRAIN);
        float loss = nn_softmax_ce(dlogits, logits, lab, NULL, B, nc, cfg->label_smoothing);
        if (ph->kd == 1 && j == 0) {
            nn_softmax(soft, logits, B, nc); /* in-place distillation target */
        } else if (ph->kd == 1) {
            loss = nn_softmax_ce(dlogits, logits, NULL, soft, B, nc, 0);
        } else if (ph->kd == 2) { /* kd_ratio 1: CE to the teacher + label-smoothed CE */
            float *dkd = dlogits + (size_t)B * nc;
            loss += nn_softmax_ce(dkd, logits, NULL, soft, B, nc, 0);
            for (int i = 0; i < B * nc; i++) dlogits[i] += dkd[i];
        }
        if (j == 0) loss0 = loss;
        supernet_backward(sn, c, dlogits);
    }
    return loss0;
}

/* The data fit the space and the batch: APQ_ECONFIG / APQ_EFORMAT otherwise. */
static int check_inputs(const struct space *s, const struct dataset *train,
                        const struct dataset *val, const struct sn_train_cfg *cfg) {
    if (cfg->batch < 1 || cfg->batch > train->n)
        return apq_set_error(APQ_ECONFIG,
                             "batch %d does not fit the %d training images; hint: lower the "
                             "batch or raise train_images",
                             cfg->batch, train->n);
    if (cfg->calib_images < 1 || val->n < 1)
        return apq_set_error(APQ_ECONFIG, "needs calib_images >= 1 and validation images");
    const struct dataset *d[2] = {train, val};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < d[k]->n; i++)
            if (d[k]->labels[i] >= s->n_classes)
                return apq_set_error(APQ_EFORMAT,
                                     "%s image %d has label %d, but the space '%s' has %d "
                                     "classes",
                                     k ? "validation" : "training", i, d[k]->labels[i], s->name,
                                     s->n_classes);
    return APQ_OK;
}

int supernet_train(struct supernet *sn, const struct dataset *train, const struct dataset *val,
                   const struct sn_train_cfg *cfg, struct sn_train_report *rep) {
    const struct space *s = &sn->s;
    int B = cfg->batch, nc = s->n_classes, max_res = s->res[s->n_res - 1];
    APQ_ASSERT(cfg->n_phases > 0);
    int rc = check_inputs(s, train, val, cfg);
    if (rc < 0) return rc;
    long total = 0;
    for (int i = 0; i < cfg->n_phases; i++) total += cfg->phase[i].steps;
    struct sn_ctx c;
    if ((rc = sn_ctx_init(&c, sn, B, cfg->seed)) < 0) return rc;
    struct train_state st = {0};
    rng_init(&st.rdata, cfg->seed, RNG_DATA);
    rng_init(&st.rsample, cfg->seed, RNG_SAMPLE);
    st.perm = apq_xmalloc(sizeof(int) * (size_t)train->n);
    for (int i = 0; i < train->n; i++) st.perm[i] = i;
    st.pos = train->n; /* forces a shuffle at the first step */
    uint64_t hash = cfg_hash(cfg, s, train->n);
    memset(sn->mom, 0, sizeof(float) * sn->n_params);
    int resumed = cfg->ckpt_path ? load_checkpoint(cfg->ckpt_path, sn, &c, &st, hash, train->n) : 0;
    float *x = NULL, *tmp = NULL, *soft = NULL, *dlogits = NULL;
    int *lab = NULL;
    if (resumed < 0) {
        rc = resumed;
        goto done;
    }
    rep->resumed_from = resumed ? st.step : 0;
    if (resumed) apq_log("resuming %s at step %ld of %ld", cfg->ckpt_path, st.step, total);
    x = apq_falloc((size_t)B * max_res * max_res);
    tmp = apq_falloc((size_t)B * train->h * train->w);
    soft = apq_falloc((size_t)B * nc);
    dlogits = apq_falloc((size_t)2 * B * nc);
    lab = apq_xmalloc(sizeof(int) * (size_t)B);
    struct apq_progress pr;
    progress_init(&pr, "train-supernet", "steps", total);
    double cost[SN_MAX_PHASES];
    for (int i = 0; i < cfg->n_phases; i++) cost[i] = phase_step_cost(cfg, s, &cfg->phase[i]);
    const double work_total = work_before(cfg, cost, total);
    progress_resume(&pr, st.step);
    progress_work(&pr, work_before(cfg, cost, st.step), work_total);
    double t0 = apq_time();
    long images = 0, first = st.step;
    for (; st.step < total; st.step++) {
        long t;
        int pi = phase_of(cfg, st.step, &t);
        const struct sn_phase *ph = &cfg->phase[pi];
        if (t == 0) start_phase(sn, ph, &st);
        if (st.pos + B > train->n) {
            rng_shuffle_int(&st.rdata, st.perm, (size_t)train->n);
            st.pos = 0;
        }
        int res = s->res[rng_int(&st.rsample, (unsigned long)s->n_res)];
        if (cfg->has_fixed) res = cfg->fixed.res;
        sn_input_batch(x, lab, tmp, train, st.perm + st.pos, B, res, 1, &st.rdata);
        st.pos += B;
        float lr = lr_at(cfg, pi, t);
        float loss0 = train_step(sn, &c, cfg, ph, &st, x, lab, res, soft, dlogits);
        if (!isfinite(loss0)) {
            rc = apq_set_error(APQ_ENONFINITE,
                               "training diverged at step %ld (loss %g); hint: lower the lr in "
                               "the profile",
                               st.step, loss0);
            goto done;
        }
        sn_sgd_update(sn, lr, cfg->momentum, cfg->weight_decay);
        images += (long)B * ph->n_sub;
        st.loss_avg = st.step ? 0.98 * st.loss_avg + 0.02 * loss0 : loss0;
        char extra[96];
        snprintf(extra, sizeof extra, "%s, loss %.3f, lr %.4f, res %d", ph->name, st.loss_avg, lr,
                 res);
        progress_work(&pr, work_before(cfg, cost, st.step + 1), work_total);
        progress_update(&pr, st.step + 1, extra);
        if (cfg->stop_after && st.step + 1 - first >= cfg->stop_after) {
            st.step++;
            goto done; /* tests: as if killed here */
        }
        if (cfg->ckpt_path && cfg->ckpt_every > 0 && (st.step + 1) % cfg->ckpt_every == 0 &&
            st.step + 1 < total) {
            st.step++;
            rc = save_checkpoint(cfg->ckpt_path, sn, &c, &st, hash, train->n);
            st.step--;
            if (rc < 0) goto done;
        }
    }
    progress_end(&pr, NULL);
    rep->seconds = apq_time() - t0;
    rep->images_per_s = images / (rep->seconds > 0 ? rep->seconds : 1);
    rep->steps = total;
    /* report: the largest and smallest subnets after BN recalibration */
    struct arch big, small;
    arch_largest(s, 0, &big);
    arch_smallest(s, 0, &small);
    if (cfg->has_fixed) big = small = cfg->fixed;
    supernet_recalibrate(sn, &c, &small, NULL, train, cfg->calib_images);
    rep->acc_smallest = supernet_accuracy(sn, &c, &small, NULL, val, cfg->eval_images);
    supernet_recalibrate(sn, &c, &big, NULL, train, cfg->calib_images);
    rep->acc_largest = supernet_accuracy(sn, &c, &big, NULL, val, cfg->eval_images);
    if (!isfinite(rep->acc_smallest) || !isfinite(rep->acc_largest)) {
        rc = apq_set_error(APQ_ENONFINITE,
                           "training diverged: the trained supernet gives non-finite outputs; "
                           "hint: lower the lr in the profile");
        goto done;
    }
    apq_log("arena high-water mark %.1f MB of %.1f MB", c.arena.high * 4.0 / 1e6,
            c.arena.cap * 4.0 / 1e6);
done:
    free(x);
    free(tmp);
    free(soft);
    free(dlogits);
    free(lab);
    free(st.perm);
    rng_free(&st.rdata);
    rng_free(&st.rsample);
    if (st.has_teacher) supernet_free(&st.teacher);
    sn_ctx_free(&c);
    return rc;
}
