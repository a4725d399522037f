/* bench_export.c — speed of the exported standalone C (quant/qmodel_emit.h)
 * beside apq's own paths, batch 1, one thread. Cases: the largest and the
 * smallest subnet of fmnist-mbv2 (resolution 28, He-initialised supernet,
 * quantizers calibrated and BN recalibrated on 64 test images) at 8 and 4
 * bits. Per case, images/s of:
 *  - export: model.c + main.c compiled with `cc -std=c11 -O3 -march=native`,
 *    run on the Fashion-MNIST test images (plain IDX files written to
 *    OUT/data), timed as (run of n images - run of 0 images) / n, best of 3;
 *  - qint_ref, qint_fast: qmodel_run in this process (reference kernels,
 *    fast kernels with plans);
 *  - fp32: supernet_forward of the same arch without quantizers (SN_EVAL).
 * Not a pipeline stage:
 *
 *   make build/apq-bench-export && build/apq-bench-export --out bench/out [--seconds 3]
 *
 * Writes OUT/export.csv (case,arch,export,qint_ref,qint_fast,fp32,flash_bytes,
 * ram_bytes) and prints it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../quant/qmodel.h"
#include "../quant/qmodel_emit.h"
#include "../supernet/subnet.h"
#include "../supernet/supernet.h"
#include "../util/util.h"

static const char *data_dir = "/usr/share/datasets/fashion-mnist";

/* Wall seconds of a shell command (dies when it fails). */
static double timed(const char *cmd) {
    double t = apq_time();
    if (system(cmd) != 0) apq_die("bench-export: '%s' failed", cmd);
    return apq_time() - t;
}

/* The test split as a plain IDX pair in dir. */
static void write_idx(const char *dir, const struct dataset *d) {
    char p[1200];
    const uint8_t n[4] = {(uint8_t)(d->n >> 24), (uint8_t)(d->n >> 16), (uint8_t)(d->n >> 8),
                          (uint8_t)d->n};
    const uint8_t hi[16] = {0, 0, 8, 3, n[0], n[1], n[2], n[3], 0, 0, 0, 28, 0, 0, 0, 28};
    const uint8_t hl[8] = {0, 0, 8, 1, n[0], n[1], n[2], n[3]};
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(hi, 1, 16, f) != 16 || fwrite(d->images, 784, (size_t)d->n, f) != (size_t)d->n)
        apq_die("%s: cannot write", p);
    fclose(f);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
    f = fopen(p, "wb");
    if (!f || fwrite(hl, 1, 8, f) != 8 || fwrite(d->labels, 1, (size_t)d->n, f) != (size_t)d->n)
        apq_die("%s: cannot write", p);
    fclose(f);
}

/* images/s of the compiled model in dir on the first n images, best of 3. */
static double time_export(const char *dir, const char *data, int n) {
    char c0[2400], cn[2400];
    snprintf(c0, sizeof c0, "%s/model %s --images 0 > /dev/null", dir, data);
    snprintf(cn, sizeof cn, "%s/model %s --images %d > /dev/null", dir, data, n);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t = timed(cn) - timed(c0);
        if (t > 0 && n / t > best) best = n / t;
    }
    return best;
}

static double time_qmodel(const struct qmodel *m, const struct dataset *d, int ref, double sec) {
    void *work = aligned_alloc(64, (qmodel_work_bytes(m) + 63) / 64 * 64);
    int32_t logits[16];
    long i = 0;
    double t0 = apq_time(), t;
    do qmodel_run(m, d->images + (size_t)(i % d->n) * 784, logits, work, ref);
    while (++i % 8 || (t = apq_time() - t0) < sec);
    free(work);
    return i / t;
}

static double time_fp32(struct supernet *sn, struct sn_ctx *c, const struct space *s,
                        const struct arch *a, const struct dataset *d, double sec) {
    float x[784];
    int y, idx = 0;
    struct arch f = *a;
    arch_set_bits(s, &f, 0);
    long i = 0;
    double t0 = apq_time(), t;
    do {
        idx = (int)(i % d->n);
        dataset_batch(x, &y, d, &idx, 1, 0, NULL);
        supernet_forward(sn, c, &f, NULL, x, 1, SN_EVAL);
    } while (++i % 8 || (t = apq_time() - t0) < sec);
    return i / t;
}

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 1) < 0) apq_die_status(APQ_EUSAGE);
    const char *out = "bench/out";
    double sec = 3;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
        else if (!strcmp(argv[i], "--seconds"))
            sec = atof(argv[i + 1]);
        else
            apq_die("usage: apq-bench-export [--out DIR] [--seconds S]");
    struct space s;
    struct supernet sn;
    struct sn_ctx c;
    struct dataset train, test;
    int rc = space_load("supernet/spaces/fmnist-mbv2.ini", &s);
    if (rc == 0) rc = idx_load_dir(data_dir, &train, &test);
    if (rc < 0) apq_die_status(rc);
    supernet_init(&sn, &s, 1, 0);
    if ((rc = sn_ctx_init(&c, &sn, 64, 1)) < 0) apq_die_status(rc);
    char data[1100], dir[1100], cmd[2400], path[1200];
    snprintf(data, sizeof data, "%s/data", out);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", data);
    timed(cmd);
    write_idx(data, &test);
    snprintf(path, sizeof path, "%s/export.csv", out);
    FILE *csv = fopen(path, "w");
    if (!csv) apq_die("%s: cannot write", path);
    fprintf(csv, "case,arch,export,qint_ref,qint_fast,fp32,flash_bytes,ram_bytes\n");
    printf("case,export,qint_ref,qint_fast,fp32 (images/s, batch 1, 1 thread),flash,ram\n");
    const char *names[] = {"int8-largest",  "int4-largest", "int8-smallest",
                           "int4-smallest", "int8-random",  "int4-random"};
    struct arch random;
    struct rng r;
    rng_init(&r, 1, 0);
    arch_sample(&s, &r, 1, &random);
    rng_free(&r);
    for (int k = 0; k < 6; k++) {
        struct arch a;
        struct sn_quant q;
        struct subnet net;
        struct qmodel m;
        const int bits = k % 2 ? 4 : 8;
        if (k < 4) {
            (k < 2 ? arch_largest : arch_smallest)(&s, bits, &a);
            a.res = (uint16_t)s.in_size;
        } else {
            a = random;
            arch_set_bits(&s, &a, bits);
        }
        qat_calibrate(&sn, &c, &a, &q, &test, 64);
        supernet_recalibrate(&sn, &c, &a, &q, &test, 64);
        if ((rc = supernet_extract(&sn, &a, &q, &net)) < 0 ||
            (rc = qmodel_from_subnet(&net, &m)) < 0)
            apq_die_status(rc);
        snprintf(dir, sizeof dir, "%s/%s", out, names[k]);
        snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
        timed(cmd);
        if ((rc = qmodel_emit_c(&m, dir)) < 0) apq_die_status(rc);
        snprintf(cmd, sizeof cmd, "cd %s && cc -std=c11 -O3 -march=native -o model main.c model.c",
                 dir);
        timed(cmd);
        /* n images for about sec seconds, from a first guess on 20 */
        double guess = time_export(dir, data, 20);
        int n = (int)(guess * sec) < 20      ? 20
                : (int)(guess * sec) > 10000 ? 10000
                                             : (int)(guess * sec);
        double v_exp = time_export(dir, data, n);
        double v_ref = time_qmodel(&m, &test, 1, sec), v_fast = time_qmodel(&m, &test, 0, sec);
        double v_fp = time_fp32(&sn, &c, &s, &a, &test, sec);
        size_t flash, ram;
        qmodel_memory(&m, &flash, &ram);
        char arch[ARCH_STR_MAX];
        arch_to_string(&s, &a, arch, sizeof arch);
        fprintf(csv, "%s,%s,%.1f,%.1f,%.1f,%.1f,%zu,%zu\n", names[k], arch, v_exp, v_ref, v_fast,
                v_fp, flash, qmodel_emit_ram_bytes(&m));
        printf("%s,%.1f,%.1f,%.1f,%.1f,%zu,%zu\n", names[k], v_exp, v_ref, v_fast, v_fp, flash,
               qmodel_emit_ram_bytes(&m));
        fflush(stdout);
        qmodel_free(&m);
        subnet_free(&net);
    }
    fclose(csv);
    sn_ctx_free(&c);
    supernet_free(&sn);
    dataset_free(&train), dataset_free(&test);
    return 0;
}
