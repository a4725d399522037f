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
    char bin[1300], cmd[3000], line[512];
    snprintf(bin, sizeof bin, "%s/model.tmp.%ld", dir, (long)getpid());
    snprintf(cmd, sizeof cmd, "cd '%s' && " EXPORT_CC " -o '%s' main.c model.c", dir, bin);
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

/* Export row i of verified file f into dir/<i>/: model.h5, model.h, model.c, main.c. */
static int export_row(hid_t f, const char *verified, size_t i, const struct dataset *test,
                      const char *data, const char *dir, uint64_t seed, const char *profile,
                      struct row *r) {
    char group[64], path[1200];
    snprintf(group, sizeof group, "subnet/%zu", i);
    struct subnet net;
    struct qmodel m;
    int rc = subnet_read(f, group, &net);
    if (rc < 0) return rc;
    if ((rc = qmodel_from_subnet(&net, &m)) < 0) {
        subnet_free(&net);
        return apq_set_error(rc, "%s: row %zu: %s", verified, i, apq_last_error());
    }
    snprintf(r->arch, sizeof r->arch, "%s", net.arch);
    size_t fast_scratch;
    qmodel_memory(&m, &r->flash, &fast_scratch);
    r->ram = qmodel_emit_ram_bytes(&m);
    r->fast_ram = qmodel_emit_fast_ram_bytes(&m);
    rc = qmodel_compare(&net, &m, test, &r->ag);
    snprintf(path, sizeof path, "%s/%zu", dir, i);
    if (rc == 0) rc = cli_mkdirs(path);
    snprintf(path, sizeof path, "%s/%zu/model.h5", dir, i);
    if (rc == 0) rc = qmodel_save(&m, path, seed, profile);
    snprintf(path, sizeof path, "%s/%zu", dir, i);
    if (rc == 0) rc = qmodel_emit_c(&m, path);
    if (rc == 0) rc = run_exported(path, data, r->ag.n, lround(r->ag.acc_int * r->ag.n));
    qmodel_free(&m);
    subnet_free(&net);
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

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    const char *space_path = NULL, *profile_path = NULL, *data = NULL, *verified = NULL,
               *out_dir = NULL;
    long seed = 1, test_images = 0;
    struct cli_opt opts[] = {
        {"space", CLI_STR, &space_path, "search-space .ini"},
        {"profile", CLI_STR, &profile_path, "profile .ini"},
        {"seed", CLI_INT, &seed, "random seed (default 1)"},
        {"data", CLI_STR, &data, "folder with the four IDX files"},
        {"verified", CLI_STR, &verified, "verified.h5 from apq-verify (with its subnets)"},
        {"test-images", CLI_INT, &test_images, "test images to measure on (default 0: all)"},
        {"out-dir", CLI_STR, &out_dir, "output folder: <row>/model.h5 and exports.csv"},
    };
    cli_parse(argc, argv, opts, 7, "export every verified subnet as an integer-only model");
    cli_require("space", space_path);
    cli_require("profile", profile_path);
    cli_require("data", data);
    cli_require("verified", verified);
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
    hid_t f;
    if ((rc = h5_open_read(verified, "verified", 1, &f)) < 0) apq_die_status(rc);
    char **archs;
    size_t n;
    if ((rc = h5_read_strings(f, "arch", &archs, &n)) < 0) apq_die_status(rc);
    if (!h5_exists(f, "subnet"))
        apq_die("%s: holds no subnets (made before verify kept them); rerun make to verify again",
                verified);
    struct dataset train, val, test;
    stage_load_data(data, &s, space_path, 0, 0, (int)test_images, &train, &val, &test);
    if ((rc = cli_mkdirs(out_dir)) < 0) apq_die_status(rc);
    struct row *rows = apq_xcalloc(n, sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        rc = export_row(f, verified, i, &test, data, out_dir, (uint64_t)seed, prof_name, &rows[i]);
        if (rc < 0) apq_die_status(rc);
        apq_log("row %zu %s: test %.2f%% fake-quantized, %.2f%% integer, top-1 agreement %.2f%%, "
                "flash %zu B, RAM %zu B",
                i, rows[i].arch, 100 * rows[i].ag.acc_fake, 100 * rows[i].ag.acc_int,
                100 * rows[i].ag.agreement, rows[i].flash, rows[i].ram);
    }
    h5_close(f);
    if ((rc = write_csv(out_dir, rows, n)) < 0) apq_die_status(rc);
    h5_free_strings(archs, n);
    free(rows);
    stage_free_data(&train, &val, &test);
    return 0;
}
