/* bench_sampling.c — the sampling stages' throughput, for `make bench` (issue 14).
 *
 * Samples per minute of the fp32 and the quantized sampling stage on random
 * subnets of the default space: per sample exactly the work of
 * apq-sample-fp32 / apq-sample-quant (supernet_measure with the profile's
 * [measure] recipe: quantizer calibration and QAT for quantized subnets, BN
 * recalibration, accuracy on the whole val split), at the thread count of
 * APQ_THREADS. Subnets are drawn as the stages draw them (arch_sample, seed 1).
 *
 *   APQ_THREADS=2 build/apq-bench-sampling --out bench/out [--supernet runs/quick/supernet.h5]
 *       [--profile profiles/quick.ini] [--count 6] [--data /usr/share/datasets/fashion-mnist]
 *
 * Without --supernet the weights are random (BENCH seed 1): throughput does
 * not depend on them. Writes OUT/sampling.csv: kind,samples,seconds,
 * samples_per_min,val_images,calib_images,qat_steps,qat_batch,threads,
 * blas_kernel,git_rev (temp file + rename).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../stages/cli.h"
#include "../stages/data.h"
#include "../supernet/supernet.h"

struct result {
    const char *kind;
    int n;
    double seconds;
};

static void run_kind(struct supernet *sn, const struct space *s, int quant, int count,
                     const struct sn_measure *m, int batch, const struct dataset *train,
                     const struct dataset *val, struct result *out) {
    struct sn_ctx c;
    int rc = sn_ctx_init(&c, sn, batch > m->qat_batch ? batch : m->qat_batch, 1);
    if (rc < 0) apq_die_status(rc);
    float *snapshot = apq_falloc(sn->n_params);
    memcpy(snapshot, sn->params, sizeof(float) * sn->n_params);
    struct rng r;
    rng_init(&r, 1, RNG_SAMPLE);
    const struct dataset *sets[1] = {val};
    double t0 = apq_time();
    for (int i = 0; i < count; i++) {
        struct arch a;
        double acc;
        arch_sample(s, &r, quant, &a);
        if ((rc = supernet_measure(sn, &c, snapshot, &a, m, train, sets, NULL, 1,
                                   1000003u + (uint64_t)i, &acc)) < 0)
            apq_die("%s sample %d: %s", quant ? "quantized" : "fp32", i + 1, apq_last_error());
        apq_log("%s sample %d of %d: %.1f s so far, acc %.2f%%", quant ? "quant" : "fp32", i + 1,
                count, apq_time() - t0, 100 * acc);
    }
    *out = (struct result){quant ? "quant" : "fp32", count, apq_time() - t0};
    memcpy(sn->params, snapshot, sizeof(float) * sn->n_params);
    rng_free(&r);
    free(snapshot);
    sn_ctx_free(&c);
}

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    const char *out = NULL, *supernet = NULL, *profile = "profiles/quick.ini",
               *space_path = "supernet/spaces/fmnist-mbv2.ini",
               *data = "/usr/share/datasets/fashion-mnist";
    long count = 6;
    struct cli_opt opts[] = {
        {"out", CLI_STR, &out, "folder for sampling.csv"},
        {"supernet", CLI_STR, &supernet, "trained supernet.h5 (default: random weights)"},
        {"profile", CLI_STR, &profile, "profile with the [measure] recipe (profiles/quick.ini)"},
        {"space", CLI_STR, &space_path, "search space"},
        {"data", CLI_STR, &data, "folder with the four IDX files"},
        {"count", CLI_INT, &count, "samples of each kind (default 6)"},
    };
    cli_parse(argc, argv, opts, 6, "time the sampling stages (samples per minute)");
    cli_require("out", out);
    if (count < 1 || count > 10000) cli_usage_error("--count %ld: expected 1 to 10000", count);
    struct sn_measure m;
    int batch, n_train;
    stage_measure_load(profile, &m, &batch, &n_train);
    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    struct supernet sn;
    supernet_init(&sn, &s, 1, 0);
    if (supernet && (rc = supernet_load(&sn, supernet)) < 0) apq_die_status(rc);
    struct dataset train, val;
    stage_load_data(data, &s, space_path, n_train, 0, 0, &train, &val, NULL);
    struct result res[2];
    run_kind(&sn, &s, 0, (int)count, &m, batch, &train, &val, &res[0]);
    run_kind(&sn, &s, 1, (int)count, &m, batch, &train, &val, &res[1]);

    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/sampling.csv", out);
    if (!apq_tmp_path(tmp, sizeof tmp, path)) apq_die("%s: path too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f) apq_die("%s: cannot write: %s", tmp, strerror(errno));
    fprintf(f, "kind,samples,seconds,samples_per_min,val_images,calib_images,qat_steps,qat_batch,"
               "threads,blas_kernel,git_rev\n");
    for (int k = 0; k < 2; k++) {
        fprintf(f, "%s,%d,%.2f,%.2f,%d,%d,%d,%d,%d,%s,%s\n", res[k].kind, res[k].n, res[k].seconds,
                60.0 * res[k].n / res[k].seconds, val.n, m.calib_images, k ? m.qat_steps : 0,
                k ? m.qat_batch : 0, apq_threads(), apq_blas_kernel(), apq_git_rev());
        apq_log("%s: %.2f samples/min (%d in %.1f s, %d val images)", res[k].kind,
                60.0 * res[k].n / res[k].seconds, res[k].n, res[k].seconds, val.n);
    }
    if ((rc = apq_fclose(f, tmp)) < 0 || rename(tmp, path)) {
        remove(tmp);
        apq_die("%s: cannot write", path);
    }
    supernet_free(&sn);
    stage_free_data(&train, &val, NULL);
    return 0;
}
