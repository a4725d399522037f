/* apq-train-supernet — train the elastic supernet (DESIGN.md §1) → supernet.h5. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../supernet/supernet.h"
#include "cli.h"
#include "data.h"

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    const char *space_path = NULL, *profile_path = NULL, *data = NULL, *out = NULL,
               *schedule = NULL, *fixed = NULL;
    long seed = 1;
    struct cli_opt opts[] = {
        {"space", CLI_STR, &space_path, "search-space .ini (supernet/spaces/)"},
        {"profile", CLI_STR, &profile_path, "profile .ini, section [train-supernet]"},
        {"seed", CLI_INT, &seed, "random seed (default 1)"},
        {"data", CLI_STR, &data, "folder with the four IDX files"},
        {"out", CLI_STR, &out, "output supernet.h5 (checkpoint: <out>.ckpt)"},
        {"schedule", CLI_STR, &schedule, "sandwich | ps (default: the profile's)"},
        {"fixed", CLI_STR, &fixed,
         "train only this arch (fp32 text form) from scratch, for the same number of steps"},
    };
    cli_parse(argc, argv, opts, 7, "train the elastic supernet");
    cli_require("space", space_path);
    cli_require("profile", profile_path);
    cli_require("data", data);
    cli_require("out", out);

    struct profile *p = profile_load(profile_path, "train-supernet");
    char sched[32], ps_text[128]; /* copies: profile_finish frees the profile's strings */
    const char *sched_profile =
        profile_str(p, "schedule", "sandwich"); /* read even when overridden */
    snprintf(sched, sizeof sched, "%s", schedule ? schedule : sched_profile);
    const long BIG = 1000000000L; /* step counts */
    const int IMAGES = 10000000;  /* image counts: more than any IDX set holds */
    long steps = profile_int(p, "steps", 1000, 1, BIG),
         largest = profile_int(p, "largest_steps", 0, 0, BIG);
    float lr = (float)profile_f64(p, "lr", 0.1, 1e-8, 10);
    float lr_end = (float)profile_f64(p, "lr_end_frac", 0.05, 0, 1);
    int warmup = (int)profile_int(p, "warmup_steps", 50, 0, BIG);
    int n_random = (int)profile_int(p, "n_random", 2, 0, 16),
        kd = (int)profile_int(p, "kd", 1, 0, 1);
    snprintf(ps_text, sizeof ps_text, "%s", profile_str(p, "ps_steps", ""));
    struct sn_train_cfg cfg = {
        .batch = (int)profile_int(p, "batch", 128, 1, 4096),
        .momentum = (float)profile_f64(p, "momentum", 0.9, 0, 0.999),
        .weight_decay = (float)profile_f64(p, "weight_decay", 3e-5, 0, 1),
        .label_smoothing = (float)profile_f64(p, "label_smoothing", 0.1, 0, 0.99),
        .dropout = (float)profile_f64(p, "dropout", 0.1, 0, 0.99),
        .calib_images = (int)profile_int(p, "calib_images", 2000, 1, IMAGES),
        .eval_images = (int)profile_int(p, "eval_images", 0, 0, IMAGES),
        .seed = (uint64_t)seed,
    };
    long ckpt_every = profile_int(p, "checkpoint_every", 0, 0, BIG);
    int n_train = (int)profile_int(p, "train_images", 0, 0, IMAGES),
        n_val = (int)profile_int(p, "val_images", 0, 0, IMAGES);
    int zero_gamma = (int)profile_int(p, "zero_last_gamma", 1, 0, 1);
    char prof_name[64];
    snprintf(prof_name, sizeof prof_name, "%s", profile_name(p));
    profile_finish(p);
    const char *sec = "train-supernet";
    if (warmup >= steps)
        profile_die(profile_path, sec, "warmup_steps = %d must be below steps = %ld", warmup,
                    steps);
    if (largest > steps)
        profile_die(profile_path, sec, "largest_steps = %ld exceeds steps = %ld", largest, steps);
    if (n_train > 0 && n_train < cfg.batch)
        profile_die(profile_path, sec,
                    "train_images = %d is below batch = %d; hint: raise train_images or lower "
                    "batch",
                    n_train, cfg.batch);
    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    if (!strcmp(sched, "sandwich")) {
        sn_schedule_sandwich(&cfg, &s, largest, steps, lr, warmup, n_random, kd);
        for (int i = 0; i < cfg.n_phases; i++) cfg.phase[i].lr_end_frac = lr_end; /* BigNAS: 5% */
    } else if (!strcmp(sched, "ps")) {
        long ps[6];
        int end = 0;
        if (sscanf(ps_text, "%ld,%ld,%ld,%ld,%ld,%ld%n", &ps[0], &ps[1], &ps[2], &ps[3], &ps[4],
                   &ps[5], &end) != 6 ||
            ps_text[end])
            profile_die(profile_path, sec,
                        "ps_steps = %s: schedule ps needs six step counts "
                        "(full,kernel,depth-1,depth-2,width-1,width-2)",
                        ps_text);
        long sum = 0;
        for (int i = 0; i < 6; i++) {
            if (ps[i] < 0 || ps[i] > BIG)
                profile_die(profile_path, sec, "ps_steps = %s: each count must be in [0, %ld]",
                            ps_text, BIG);
            sum += ps[i];
        }
        if (sum < 1) profile_die(profile_path, sec, "ps_steps = %s: all counts are 0", ps_text);
        sn_schedule_ps(&cfg, &s, ps, lr, warmup);
    } else if (!schedule) {
        profile_die(profile_path, sec, "schedule = %s: unknown schedule (choose sandwich or ps)",
                    sched);
    } else {
        fprintf(stderr, "%s: error: unknown schedule '%s' (choose sandwich or ps)\n", apq_prog,
                sched);
        return 2;
    }
    if (fixed) { /* the from-scratch baseline: one subnet, same step budget (issue #3) */
        if ((rc = arch_from_string(&s, fixed, &cfg.fixed)) < 0) apq_die_status(rc);
        if (arch_is_quantized(&cfg.fixed))
            apq_die("--fixed takes an fp32 arch (no q bits): %s", fixed);
        long total_steps = 0;
        for (int i = 0; i < cfg.n_phases; i++) total_steps += cfg.phase[i].steps;
        cfg.has_fixed = 1;
        sn_schedule_sandwich(&cfg, &s, total_steps, total_steps, lr, warmup, 0, 0);
        cfg.phase[0].lr_end_frac = lr_end;
        snprintf(cfg.phase[0].name, sizeof cfg.phase[0].name, "scratch");
    }
    cli_require_writable(out);
    struct dataset train, val;
    stage_load_data(data, &s, space_path, n_train, n_val, 0, &train, &val, NULL);
    if (train.n < cfg.batch)
        profile_die(profile_path, sec, "batch = %d exceeds the %d training images of %s", cfg.batch,
                    train.n, data);
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);
    cfg.ckpt_path = ckpt;
    cfg.ckpt_every = ckpt_every > 0 ? ckpt_every : train.n / cfg.batch; /* every epoch */
    long total = 0;
    for (int i = 0; i < cfg.n_phases; i++) total += cfg.phase[i].steps;
    struct supernet sn;
    supernet_init(&sn, &s, (uint64_t)seed, zero_gamma);
    apq_log("supernet %s: %zu parameters, %d tensors; schedule %s, %ld steps of batch %d, "
            "checkpoint every %ld steps in %s",
            s.name, sn.n_params, sn.n_tensors, sched, total, cfg.batch, cfg.ckpt_every, ckpt);
    struct sn_train_report rep;
    if ((rc = supernet_train(&sn, &train, &val, &cfg, &rep)) < 0) apq_die_status(rc);
    apq_log(
        "val accuracy after BN recalibration: largest %.2f%%, smallest %.2f%% (%.0f s, %.0f img/s)",
        100 * rep.acc_largest, 100 * rep.acc_smallest, rep.seconds, rep.images_per_s);
    rc = supernet_save(&sn, out, (uint64_t)seed, prof_name, &rep);
    if (rc == 0) remove(ckpt); /* finished: the checkpoint has served */
    if (rc < 0) apq_die_status(rc);
    supernet_free(&sn);
    stage_free_data(&train, &val, NULL);
    return 0;
}
