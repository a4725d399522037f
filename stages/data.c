/* data.c — load and split the dataset for a stage. */
#include "data.h"

#include <stdlib.h>

#include "../supernet/supernet.h"
#include "cli.h"

static void cut(struct dataset *d, int n) {
    if (n <= 0 || n >= d->n) return;
    struct dataset h;
    dataset_head(d, n, &h);
    dataset_free(d);
    *d = h;
}

void stage_load_data(const char *dir, const struct space *s, const char *space_path, int n_train,
                     int n_val, int n_test, struct dataset *train, struct dataset *val,
                     struct dataset *test) {
    struct dataset all, t;
    int rc = idx_load_dir(dir, &all, &t);
    if (rc < 0) apq_die_status(rc);
    if ((rc = idx_check_fit(dir, &all, s->n_classes, s->in_ch, s->in_size, space_path)) < 0)
        apq_die_status(rc);
    if (all.n <= VAL_SIZE + 1000)
        apq_die("%s: only %d training images; the held-out split needs more than %d", dir, all.n,
                VAL_SIZE + 1000);
    dataset_split(&all, VAL_SIZE, SPLIT_SEED, train, val);
    dataset_free(&all);
    cut(train, n_train);
    cut(val, n_val);
    cut(&t, n_test);
    if (test)
        *test = t;
    else
        dataset_free(&t);
    apq_log("data %s: %d train, %d val, %d test images", dir, train->n, val->n, test ? test->n : 0);
}

void stage_free_data(struct dataset *train, struct dataset *val, struct dataset *test) {
    if (train) dataset_free(train);
    if (val) dataset_free(val);
    if (test) dataset_free(test);
}

void stage_measure_load(const char *profile_path, struct sn_measure *m, int *batch, int *n_train) {
    const int IMAGES = 10000000; /* more than any IDX set holds */
    struct profile *p = profile_load(profile_path, "measure");
    m->calib_images = (int)profile_int(p, "calib_images", 500, 1, IMAGES);
    *batch = (int)profile_int(p, "batch", 64, 1, 4096);
    m->qat_steps = (int)profile_int(p, "qat_steps", 20, 0, 1000000);
    m->qat_batch = (int)profile_int(p, "qat_batch", 64, 1, 4096);
    m->qat_lr = (float)profile_f64(p, "qat_lr", 0.005, 1e-8, 10);
    *n_train = (int)profile_int(p, "train_images", 0, 0, IMAGES);
    profile_finish(p);
}
