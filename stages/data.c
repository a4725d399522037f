/* data.c — load and split the dataset for a stage. */
#include "data.h"

#include <stdlib.h>

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
