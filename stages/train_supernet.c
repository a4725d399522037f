/* apq-train-supernet — train the elastic supernet (DESIGN.md §1) → supernet.h5. */
#include <stdio.h>
#include <stdlib.h>

#include "../supernet/supernet.h"
#include "cli.h"
#include "data.h"

int main(int argc, char **argv) {
    apq_runtime_init(argc, argv, 0);
    const char *space_path = NULL, *profile_path = NULL, *data = NULL, *out = NULL;
    long seed = 1;
    struct cli_opt opts[] = {
        {"space", CLI_STR, &space_path, "search-space .ini (supernet/spaces/)"},
        {"profile", CLI_STR, &profile_path, "profile .ini, section [train-supernet]"},
        {"seed", CLI_INT, &seed, "random seed (default 1)"},
        {"data", CLI_STR, &data, "folder with the four IDX files"},
        {"out", CLI_STR, &out, "output supernet.h5"},
    };
    cli_parse(argc, argv, opts, 5, "train the elastic supernet");
    cli_require("space", space_path);
    cli_require("profile", profile_path);
    cli_require("data", data);
    cli_require("out", out);

    struct profile *p = profile_load(profile_path, "train-supernet");
    struct sn_train_cfg cfg = {
        .steps = profile_int(p, "steps", 1000),
        .batch = (int)profile_int(p, "batch", 128),
        .lr = (float)profile_f64(p, "lr", 0.1),
        .lr_end_frac = (float)profile_f64(p, "lr_end_frac", 0.05),
        .warmup_steps = (int)profile_int(p, "warmup_steps", 50),
        .momentum = (float)profile_f64(p, "momentum", 0.9),
        .weight_decay = (float)profile_f64(p, "weight_decay", 3e-5),
        .label_smoothing = (float)profile_f64(p, "label_smoothing", 0.1),
        .dropout = (float)profile_f64(p, "dropout", 0.1),
        .largest_steps = (int)profile_int(p, "largest_steps", 0),
        .n_random = (int)profile_int(p, "n_random", 2),
        .kd = (int)profile_int(p, "kd", 1),
        .calib_images = (int)profile_int(p, "calib_images", 2000),
        .eval_images = (int)profile_int(p, "eval_images", 0),
        .seed = (uint64_t)seed,
    };
    int n_train = (int)profile_int(p, "train_images", 0),
        n_val = (int)profile_int(p, "val_images", 0);
    int zero_gamma = (int)profile_int(p, "zero_last_gamma", 1);
    char prof_name[64];
    snprintf(prof_name, sizeof prof_name, "%s", profile_name(p));
    profile_finish(p);
    if (cfg.batch < 1 || cfg.steps < 1 || cfg.warmup_steps >= cfg.steps)
        apq_die("%s: [train-supernet] needs batch >= 1 and steps > warmup_steps", profile_path);

    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    struct dataset train, val;
    stage_load_data(data, n_train, n_val, 0, &train, &val, NULL);
    struct supernet sn;
    supernet_init(&sn, &s, (uint64_t)seed, zero_gamma);
    apq_log(
        "supernet %s: %zu parameters, %d tensors; %ld steps of batch %d, sandwich with %d random",
        s.name, sn.n_params, sn.n_tensors, cfg.steps, cfg.batch, cfg.n_random);
    struct sn_train_report rep;
    supernet_train(&sn, &train, &val, &cfg, &rep);
    apq_log(
        "val accuracy after BN recalibration: largest %.2f%%, smallest %.2f%% (%.0f s, %.0f img/s)",
        100 * rep.acc_largest, 100 * rep.acc_smallest, rep.seconds, rep.images_per_s);
    rc = supernet_save(&sn, out, (uint64_t)seed, prof_name, &rep);
    if (rc < 0) apq_die_status(rc);
    supernet_free(&sn);
    stage_free_data(&train, &val, NULL);
    return 0;
}
