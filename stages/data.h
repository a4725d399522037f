/* data.h — the splits every network stage uses (DESIGN.md §1): 50k train /
 * 10k val (held out from train with a fixed seed, independent of --seed) /
 * 10k test, optionally cut to the profile's sizes. */
#ifndef APQ_STAGE_DATA_H
#define APQ_STAGE_DATA_H

#include "../datasets/datasets.h"
#include "../supernet/space.h"

#define SPLIT_SEED 20260101u /* fixed: the val split never moves with --seed */
#define VAL_SIZE   10000

/* Load DIR's IDX files, check they fit the space s (read from space_path:
 * every label < classes, 1 channel, images input_size square) and split; n_* > 0 keeps
 * only the first n_* of each split (tiny profile). Exits 1 with a one-line
 * message on bad data. */
void stage_load_data(const char *dir, const struct space *s, const char *space_path, int n_train,
                     int n_val, int n_test, struct dataset *train, struct dataset *val,
                     struct dataset *test);
void stage_free_data(struct dataset *train, struct dataset *val, struct dataset *test);

struct sn_measure;
/* The profile's [measure] section, the recipe sample-fp32, sample-quant and
 * verify measure every subnet with (docs/formats.md "Measuring a subnet"):
 * calib_images, batch (recalibration and evaluation), qat_steps, qat_batch,
 * qat_lr into *m and *batch; train_images (0: the whole train split) into
 * *n_train. Bad values exit 2 (profile_int's message). */
void stage_measure_load(const char *profile_path, struct sn_measure *m, int *batch, int *n_train);

#endif
