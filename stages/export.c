/* apq-export — every verified subnet as an integer-only model (issue 15):
 * for each row of verified.h5, its subnet as verify measured it (group
 * subnet/<row>) converted to integers (quant/qmodel.h), measured against the
 * fake-quantized subnet on the test split (top-1 accuracy of both and their
 * agreement), and written as <out-dir>/<row>/model.h5 with its standalone C
 * beside it (model.h, model.c, main.c: quant/qmodel_emit.h). The standalone C
 * is then built with `cc` alone and run on the test files: its accuracy is
 * acc_test_int, and it must count the same top-1 hits as the library's
 * integer path (else the export fails). The figures of every row go to
 * <out-dir>/exports.csv (docs/formats.md §20). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../quant/qmodel.h"
#include "../quant/qmodel_emit.h"
#include "../supernet/subnet.h"
#include "../supernet/supernet.h"
#include "../util/csvio.h"
#include "../util/h5.h"
#include "cli.h"
#include "data.h"

struct row {
    char arch[ARCH_STR_MAX];
    struct qmodel_agreement ag;
    size_t flash, ram, fast_ram;
};

/* The exported program's build (model.h's command, with the vector path of
 * this CPU; both builds give the same bytes: tests/test_qmodel.c). */
#define EXPORT_CC "cc -std=c11 -O2 -march=native"

/* Build dir's model.c and main.c with EXPORT_CC alone (the binary a
 * temporary, removed after), run it on the first n test images of the IDX
 * files in data and check that it counts `hits` top-1 hits, the library's
 * integer path's. APQ_OK; APQ_EIO naming dir when cc or the program fails,
 * prints no accuracy line, or counts otherwise. */
static int run_exported(const char *dir, const char *data, int n, long hits) {
    if (strchr(dir, '\'') || strchr(data, '\''))
        return apq_set_error(APQ_EIO, "%s: a path with a quote cannot be given to the shell", dir);
    char bin[1300], cmd[4000], line[512];
    snprintf(bin, sizeof bin, "%s/model.tmp.%ld", dir, (long)getpid());
    snprintf(cmd, sizeof cmd, EXPORT_CC " -o '%s' '%s/main.c' '%s/model.c'", bin, dir, dir);
    if (system(cmd) != 0) {
        remove(bin);
        return apq_set_error(APQ_EIO, "%s: '" EXPORT_CC "' failed on model.c; is cc installed?",
                             dir);
    }
    snprintf(cmd, sizeof cmd, "'%s' '%s' --images %d", bin, data, n);
    FILE *p = popen(cmd, "r");
    long got = -1, total = -1;
    while (p && fgets(line, sizeof line, p))
        if (sscanf(line, "accuracy %*f (%ld/%ld)", &got, &total) == 2) break;
    const int st = p ? pclose(p) : -1;
    remove(bin);
    if (st != 0 || total != n)
        return apq_set_error(APQ_EIO, "%s: the exported program failed on the test files in %s",
                             dir, data);
    if (got != hits)
        return apq_set_error(APQ_EIO,
                             "%s: the exported program counts %ld of %d test images right, the "
                             "library's integer path %ld: model.c differs from the library",
                             dir, got, n, hits);
    return APQ_OK;
}

/* Export one measured subnet into rowdir: convert (quant/qmodel.h), compare
 * with the fake-quantized subnet on test, write model.h5 and the standalone
 * C, build and run it (run_exported). what names the subnet in errors. With
 * same (an earlier row of the same subnet: verify measured it once) its
 * measurements are taken over and the files written without them. */
static int export_subnet(const struct subnet *net, const char *what, const struct dataset *test,
                         const char *data, const char *rowdir, uint64_t seed, const char *profile,
                         const struct row *same, struct row *r) {
    char path[1200];
    struct qmodel m;
    int rc = qmodel_from_subnet(net, &m);
    if (rc < 0) return apq_set_error(rc, "%s: %s", what, apq_last_error());
    snprintf(r->arch, sizeof r->arch, "%s", net->arch);
    size_t fast_scratch;
    qmodel_memory(&m, &r->flash, &fast_scratch);
    r->ram = qmodel_emit_ram_bytes(&m);
    r->fast_ram = qmodel_emit_fast_ram_bytes(&m);
    if (same)
        r->ag = same->ag;
    else
        rc = qmodel_compare(net, &m, test, &r->ag);
    if (rc == 0) rc = cli_mkdirs(rowdir);
    snprintf(path, sizeof path, "%s/model.h5", rowdir);
    if (rc == 0) rc = qmodel_save(&m, path, seed, profile);
    if (rc == 0) rc = qmodel_emit_c(&m, rowdir);
    if (rc == 0 && !same) rc = run_exported(rowdir, data, r->ag.n, lround(r->ag.acc_int * r->ag.n));
    qmodel_free(&m);
    if (rc == 0)
        apq_log("%s %s: test %.2f%% fake-quantized, %.2f%% integer, top-1 agreement %.2f%%, "
                "flash %zu B, RAM %zu B",
                what, r->arch, 100 * r->ag.acc_fake, 100 * r->ag.acc_int, 100 * r->ag.agreement,
                r->flash, r->ram);
    return rc;
}

static int write_csv(const char *dir, const struct row *rows, size_t n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/exports.csv", dir);
    struct csvw w;
    int rc = csvw_open(&w, path, NULL);
    if (rc < 0) return rc;
    const char *head[] = {"row",          "arch",           "acc_test_fake",
                          "acc_test_int", "top1_agreement", "test_images",
                          "flash_bytes",  "ram_bytes",      "fast_ram_bytes"};
    for (int c = 0; c < 9; c++) csvw_str(&w, head[c]);
    csvw_end_row(&w);
    for (size_t i = 0; i < n; i++) {
        csvw_i64(&w, (long long)i);
        csvw_str(&w, rows[i].arch);
        csvw_f64(&w, rows[i].ag.acc_fake, "%.6f");
        csvw_f64(&w, rows[i].ag.acc_int, "%.6f");
        csvw_f64(&w, rows[i].ag.agreement, "%.6f");
        csvw_i64(&w, rows[i].ag.n);
        csvw_i64(&w, (long long)rows[i].flash);
        csvw_i64(&w, (long long)rows[i].ram);
        csvw_i64(&w, (long long)rows[i].fast_ram);
        csvw_end_row(&w);
    }
    return csvw_commit(&w);
}

/* Every row of verified (its subnet/<row> groups) into out_dir/<row>/, and
 * out_dir/exports.csv. */
static void export_verified(const struct space *s, const char *space_path, const char *data,
                            const char *verified, int test_images, const char *out_dir, long seed,
                            const char *profile) {
    hid_t f;
    int rc = h5_open_read(verified, "verified", 1, &f);
    if (rc < 0) apq_die_status(rc);
    char **archs;
    size_t n;
    if ((rc = h5_read_strings(f, "arch", &archs, &n)) < 0) apq_die_status(rc);
    if (!h5_exists(f, "subnet"))
        apq_die("%s: holds no subnets (made before verify kept them); rerun make to verify again",
                verified);
    struct dataset train, val, test;
    stage_load_data(data, s, space_path, 0, 0, test_images, &train, &val, &test);
    if ((rc = cli_mkdirs(out_dir)) < 0) apq_die_status(rc);
    struct row *rows = apq_xcalloc(n, sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        char group[64], what[1300], rowdir[1200];
        struct subnet net;
        snprintf(group, sizeof group, "subnet/%zu", i);
        snprintf(what, sizeof what, "%s: row %zu", verified, i);
        snprintf(rowdir, sizeof rowdir, "%s/%zu", out_dir, i);
        if ((rc = subnet_read(f, group, &net)) < 0) apq_die_status(rc);
        const struct row *same = NULL; /* verify stores a repeated arch's one subnet again */
        for (size_t j = 0; j < i && !same; j++)
            if (!strcmp(archs[j], archs[i])) same = &rows[j];
        rc =
            export_subnet(&net, what, &test, data, rowdir, (uint64_t)seed, profile, same, &rows[i]);
        subnet_free(&net);
        if (rc < 0) apq_die_status(rc);
    }
    h5_close(f);
    if ((rc = write_csv(out_dir, rows, n)) < 0) apq_die_status(rc);
    h5_free_strings(archs, n);
    free(rows);
    stage_free_data(&train, &val, &test);
}

/* The verified row of verified (if given and readable) that holds arch text,
 * read into net: 1; 0 when there is none. */
static int verified_subnet(const char *verified, const char *text, struct subnet *net) {
    hid_t f;
    char **archs;
    size_t n;
    if (!verified || h5_open_read(verified, "verified", 1, &f) < 0) return 0;
    int found = 0;
    if (h5_read_strings(f, "arch", &archs, &n) == 0) {
        for (size_t i = 0; i < n && !found; i++) {
            char group[64];
            snprintf(group, sizeof group, "subnet/%zu", i);
            found = !strcmp(archs[i], text) && subnet_read(f, group, net) == 0;
        }
        h5_free_strings(archs, n);
    }
    h5_close(f);
    return found;
}

/* make export ARCH=text: the subnet as verify measures a report point (the
 * profile's [measure] recipe: quantizer calibration, QAT, BN recalibration;
 * [verify]'s val and test images), or the verified row's own subnet when the
 * arch is a report point, exported into out_dir with a one-row exports.csv. */
static void export_arch(const struct space *s, const char *space_path, const char *profile_path,
                        const char *data, const char *supernet, const char *verified,
                        const char *text, int test_images, const char *out_dir, long seed,
                        const char *profile) {
    struct arch a;
    char canon[ARCH_STR_MAX];
    int rc = arch_from_string(s, text, &a);
    if (rc < 0) apq_die("ARCH=%s: %s", text, apq_last_error());
    if (!arch_is_quantized(&a))
        apq_die("ARCH=%s is an fp32 subnet: an integer model needs a bit-width for every block "
                "(the q<bits> of docs/formats.md §6)",
                text);
    arch_to_string(s, &a, canon, sizeof canon);
    struct profile *p = profile_load(profile_path, "verify");
    const int IMAGES = 10000000; /* more than any IDX set holds */
    const int n_val = (int)profile_int(p, "val_images", 0, 0, IMAGES);
    profile_int(p, "test_images", 0, 0, IMAGES); /* the test set is --test-images', as for rows */
    profile_finish(p);
    struct sn_measure m;
    int batch, n_train;
    stage_measure_load(profile_path, &m, &batch, &n_train);
    struct subnet net;
    struct dataset train, val, test;
    const int known = verified_subnet(verified, canon, &net);
    stage_load_data(data, s, space_path, known ? 0 : n_train, known ? 0 : n_val, test_images,
                    &train, &val, &test);
    if (!known) {
        struct supernet sn;
        struct sn_ctx c;
        struct sn_quant q;
        supernet_init(&sn, s, 0, 0);
        if ((rc = supernet_load(&sn, supernet)) < 0) apq_die_status(rc);
        if ((rc = sn_ctx_init(&c, &sn, batch > m.qat_batch ? batch : m.qat_batch, (uint64_t)seed)) <
            0)
            apq_die_status(rc);
        float *snapshot = apq_falloc(sn.n_params);
        memcpy(snapshot, sn.params, sizeof(float) * sn.n_params);
        const struct dataset *sets[2] = {&val, &test};
        double acc[2];
        if ((rc = supernet_measure_ex(&sn, &c, snapshot, &a, &m, &train, sets, NULL, 2,
                                      (uint64_t)seed * 7919u, acc, &q)) < 0 ||
            (rc = supernet_extract(&sn, &a, &q, &net)) < 0)
            apq_die("ARCH=%s: %s", text, apq_last_error());
        apq_log("%s: not a report point; QAT-finetuned as verify does: val %.2f%%, test %.2f%%",
                canon, 100 * acc[0], 100 * acc[1]);
        free(snapshot);
        sn_ctx_free(&c);
        supernet_free(&sn);
    }
    struct row r;
    if ((rc = export_subnet(&net, "ARCH", &test, data, out_dir, (uint64_t)seed, profile, NULL,
                            &r)) < 0 ||
        (rc = write_csv(out_dir, &r, 1)) < 0)
        apq_die_status(rc);
    subnet_free(&net);
    stage_free_data(&train, &val, &test);
}

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    const char *space_path = NULL, *profile_path = NULL, *data = NULL, *verified = NULL,
               *out_dir = NULL, *arch = NULL, *supernet = NULL;
    long seed = 1, test_images = 0;
    struct cli_opt opts[] = {
        {"space", CLI_STR, &space_path, "search-space .ini"},
        {"profile", CLI_STR, &profile_path, "profile .ini"},
        {"seed", CLI_INT, &seed, "random seed (default 1)"},
        {"data", CLI_STR, &data, "folder with the four IDX files"},
        {"verified", CLI_STR, &verified,
         "verified.h5 from apq-verify (with its subnets); optional with --arch"},
        {"arch", CLI_STR, &arch, "export this one subnet (arch text) into --out-dir"},
        {"supernet", CLI_STR, &supernet, "supernet.h5 (with --arch: QAT of a non-report subnet)"},
        {"test-images", CLI_INT, &test_images, "test images to measure on (default 0: all)"},
        {"out-dir", CLI_STR, &out_dir, "output folder: <row>/model.h5 and exports.csv"},
    };
    cli_parse(argc, argv, opts, 9, "export verified subnets as integer-only models");
    cli_require("space", space_path);
    cli_require("profile", profile_path);
    cli_require("data", data);
    cli_require(arch ? "supernet" : "verified", arch ? supernet : verified);
    cli_require("out-dir", out_dir);
    if (test_images < 0)
        cli_usage_error("--test-images %ld: expected 0 (all) or more", test_images);
    struct profile *p = profile_load(profile_path, "export");
    char prof_name[64];
    snprintf(prof_name, sizeof prof_name, "%s", profile_name(p));
    profile_finish(p);
    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    if (arch)
        export_arch(&s, space_path, profile_path, data, supernet, verified, arch, (int)test_images,
                    out_dir, seed, prof_name);
    else
        export_verified(&s, space_path, data, verified, (int)test_images, out_dir, seed, prof_name);
    return 0;
}
