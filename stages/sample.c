/* apq-sample-fp32 / apq-sample-quant — accuracy samples for the predictors.
 *
 * fp32: random subnets, each BN-recalibrated on a fixed subset of train
 * images (reference/ofa.md §7), accuracy on the val split → samples-fp32.h5.
 * quant: random (subnet, bit policy) pairs; calibration, a short QAT on train
 * from the supernet's weights, BN recalibration, accuracy on val
 * (reference/apq.md §5-6) → samples-quant.h5. The program's name picks the mode.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../supernet/supernet.h"
#include "../util/h5.h"
#include "cli.h"
#include "data.h"

struct sample_cfg {
    int n, calib_images, val_images, qat_steps, qat_batch;
    double qat_lr;
};

static int write_samples(const char *out, const struct space *s, char **archs, const double *acc,
                         const double *macs, const double *wkb, int n, int quant, long seed,
                         const char *profile, const char *supernet, const struct sample_cfg *cfg) {
    hid_t f;
    int rc = h5_create(out, &f);
    if (rc < 0) return rc;
    char hash[32];
    space_hash_text(s, hash);
    hsize_t dim = (hsize_t)n;
    rc = h5_write_provenance(f, "samples", 1, (uint64_t)seed, profile);
    if (rc == 0) rc = h5_attr_set_str(f, "space_hash", hash);
    if (rc == 0) rc = h5_attr_set_i64(f, "quantized", quant);
    if (rc == 0) rc = h5_attr_set_str(f, "supernet", supernet);
    if (rc == 0) rc = h5_attr_set_i64(f, "calib_images", cfg->calib_images);
    if (rc == 0) rc = h5_attr_set_i64(f, "val_images", cfg->val_images);
    if (rc == 0 && quant) rc = h5_attr_set_i64(f, "qat_steps", cfg->qat_steps);
    if (rc == 0) rc = h5_write_strings(f, "arch", (const char *const *)archs, (size_t)n);
    if (rc == 0) rc = h5_write_f64(f, "acc_val", 1, &dim, acc);
    if (rc == 0) rc = h5_write_f64(f, "macs_m", 1, &dim, macs);
    if (rc == 0) rc = h5_write_f64(f, "weight_kb", 1, &dim, wkb);
    if (rc < 0) {
        h5_abort(f, out);
        return rc;
    }
    return h5_commit(f, out);
}

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    int quant = strstr(apq_prog, "quant") != NULL;
    const char *space_path = NULL, *profile_path = NULL, *data = NULL, *supernet = NULL,
               *out = NULL;
    long seed = 1, n_opt = 0;
    struct cli_opt opts[] = {
        {"space", CLI_STR, &space_path, "search-space .ini"},
        {"profile", CLI_STR, &profile_path, "profile .ini, section [sample-fp32] / [sample-quant]"},
        {"seed", CLI_INT, &seed, "random seed (default 1)"},
        {"data", CLI_STR, &data, "folder with the four IDX files"},
        {"supernet", CLI_STR, &supernet, "trained supernet.h5"},
        {"out", CLI_STR, &out, "output samples .h5"},
        {"n", CLI_INT, &n_opt, "number of samples (overrides the profile's n)"},
    };
    cli_parse(argc, argv, opts, 7, quant ? "sample quantized subnets" : "sample fp32 subnets");
    cli_require("space", space_path);
    cli_require("profile", profile_path);
    cli_require("data", data);
    cli_require("supernet", supernet);
    cli_require("out", out);

    struct profile *p = profile_load(profile_path, quant ? "sample-quant" : "sample-fp32");
    const int IMAGES = 10000000; /* more than any IDX set holds */
    struct sample_cfg cfg = {
        .n = (int)profile_int(p, "n", quant ? 50 : 200, 10, 1000000),
        .calib_images = (int)profile_int(p, "calib_images", 1000, 1, IMAGES),
        .val_images = (int)profile_int(p, "val_images", 2000, 0, IMAGES),
        .qat_steps = quant ? (int)profile_int(p, "qat_steps", 20, 0, 1000000) : 0,
        .qat_batch = quant ? (int)profile_int(p, "qat_batch", 64, 1, 4096) : 0,
        .qat_lr = quant ? profile_f64(p, "qat_lr", 0.005, 1e-8, 10) : 0,
    };
    if (n_opt != 0) {
        if (n_opt < 1 || n_opt > 1000000) {
            fprintf(stderr, "%s: error: --n %ld: expected a whole number from 1 to 1000000\n",
                    apq_prog, n_opt);
            exit(2);
        }
        cfg.n = (int)n_opt;
    }
    int batch = (int)profile_int(p, "batch", 250, 1, 4096);
    int n_train = (int)profile_int(p, "train_images", 0, 0, IMAGES);
    char prof_name[64];
    snprintf(prof_name, sizeof prof_name, "%s", profile_name(p));
    profile_finish(p);

    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    struct supernet sn;
    supernet_init(&sn, &s, 0, 0);
    if ((rc = supernet_load(&sn, supernet)) < 0) apq_die_status(rc);
    cli_require_writable(out);
    struct dataset train, val;
    stage_load_data(data, &s, space_path, n_train, 0, 0, &train, &val, NULL);
    if (cfg.val_images <= 0 || cfg.val_images > val.n) cfg.val_images = val.n;

    int max_batch = batch > cfg.qat_batch ? batch : cfg.qat_batch;
    struct sn_ctx c;
    if ((rc = sn_ctx_init(&c, &sn, max_batch, (uint64_t)seed)) < 0) apq_die_status(rc);
    float *snapshot = apq_falloc(sn.n_params); /* QAT edits weights: restored per sample */
    memcpy(snapshot, sn.params, sizeof(float) * sn.n_params);
    struct rng r;
    rng_init(&r, (uint64_t)seed, RNG_SAMPLE);
    char **archs = apq_xcalloc((size_t)cfg.n, sizeof(char *));
    double *acc = apq_xcalloc((size_t)cfg.n, sizeof(double));
    double *macs = apq_xcalloc((size_t)cfg.n, sizeof(double)),
           *wkb = apq_xcalloc((size_t)cfg.n, sizeof(double));
    uint64_t *seen = apq_xcalloc((size_t)cfg.n, sizeof(uint64_t));
    struct apq_progress pr;
    progress_init(&pr, quant ? "sample-quant" : "sample-fp32", "subnets", cfg.n);
    struct sn_quant q;
    for (int i = 0; i < cfg.n; i++) {
        struct arch a;
        int dup;
        long tries = 0;
        do { /* distinct archs */
            arch_sample(&s, &r, quant, &a);
            dup = 0;
            for (int j = 0; j < i; j++) dup |= seen[j] == arch_hash(&a);
            if (dup && ++tries == 100000)
                profile_die(profile_path, quant ? "sample-quant" : "sample-fp32",
                            "n = %d: after %d distinct subnets, 100000 draws found no new one; "
                            "the space %s holds too few for n",
                            cfg.n, i, space_path);
        } while (dup);
        seen[i] = arch_hash(&a);
        if (quant) {
            memcpy(sn.params, snapshot, sizeof(float) * sn.n_params);
            qat_calibrate(&sn, &c, &a, &q, &train, cfg.calib_images);
            rc = qat_finetune(&sn, &c, &a, &q, &train, cfg.qat_steps, cfg.qat_batch,
                              (float)cfg.qat_lr, (uint64_t)seed * 1000003u + (uint64_t)i);
            if (rc < 0) apq_die("sample %d of %d: %s", i + 1, cfg.n, apq_last_error());
        }
        supernet_recalibrate(&sn, &c, &a, quant ? &q : NULL, &train, cfg.calib_images);
        acc[i] = supernet_accuracy(&sn, &c, &a, quant ? &q : NULL, &val, cfg.val_images);
        if (!isfinite(acc[i]))
            apq_die("sample %d of %d: the subnet's outputs are not finite (%s diverged); hint: "
                    "%s",
                    i + 1, cfg.n, quant ? "QAT" : "the supernet",
                    quant ? "lower qat_lr in the profile" : "retrain the supernet (rerun make)");
        archs[i] = apq_xmalloc(ARCH_STR_MAX);
        arch_to_string(&s, &a, archs[i], ARCH_STR_MAX);
        macs[i] = arch_macs(&s, &a) / 1e6;
        wkb[i] = arch_weight_bytes(&s, &a) / 1024;
        char extra[64];
        snprintf(extra, sizeof extra, "last acc %.2f%%", 100 * acc[i]);
        progress_update(&pr, i + 1, extra);
    }
    progress_end(&pr, NULL);
    double lo = 1, hi = 0, mean = 0;
    for (int i = 0; i < cfg.n; i++) {
        lo = acc[i] < lo ? acc[i] : lo;
        hi = acc[i] > hi ? acc[i] : hi;
        mean += acc[i] / cfg.n;
    }
    apq_log("%d samples: val accuracy min %.2f%%, mean %.2f%%, max %.2f%%", cfg.n, 100 * lo,
            100 * mean, 100 * hi);
    rc = write_samples(out, &s, archs, acc, macs, wkb, cfg.n, quant, seed, prof_name, supernet,
                       &cfg);
    if (rc < 0) apq_die_status(rc);
    for (int i = 0; i < cfg.n; i++) free(archs[i]);
    free(archs);
    free(acc);
    free(macs);
    free(wkb);
    free(seen);
    free(snapshot);
    rng_free(&r);
    sn_ctx_free(&c);
    supernet_free(&sn);
    stage_free_data(&train, &val, NULL);
    return 0;
}
