/* apq-evaluate — OFA's central claim, checked (issue #3): three fixed subnets
 * (smallest, middle, largest) extracted from the supernet (BN recalibrated)
 * against the same subnets trained from scratch with the same step budget
 * (runs/<profile>/scratch/<name>.h5 from apq-train-supernet --fixed).
 * Writes scratch-baseline.csv and scratch-baseline.md into --out-dir.
 * `--print-arch NAME` only prints that subnet's arch string (for make). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../supernet/supernet.h"
#include "../util/csvio.h"
#include "cli.h"
#include "data.h"

static const char *names[3] = {"smallest", "middle", "largest"};

/* The middle subnet: middle resolution, depth, kernel and mid-channel grid point. */
static void arch_middle(const struct space *s, struct arch *a) {
    memset(a, 0, sizeof *a);
    a->res = (uint16_t)s->res[s->n_res / 2];
    for (int st = 0; st < s->n_stages; st++)
        a->depth[st] = (uint8_t)((s->stage[st].min_depth + s->stage[st].max_depth + 1) / 2);
    for (int i = 0; i < s->n_blocks; i++) {
        if (!arch_block_active(s, a, i)) continue;
        a->ks[i] = (uint8_t)s->kernels[s->n_kernels / 2];
        a->mid[i] = (uint16_t)(s->block[i].mid_min + s->mid_step * (s->block[i].n_mid / 2));
    }
}

static void named_arch(const struct space *s, int k, struct arch *a) {
    if (k == 0)
        arch_smallest(s, 0, a);
    else if (k == 1)
        arch_middle(s, a);
    else
        arch_largest(s, 0, a);
}

/* val and test accuracy of subnet a of the supernet stored at path. */
static void measure(const struct space *s, const char *path, const struct arch *a,
                    const struct dataset *train, const struct dataset *val,
                    const struct dataset *test, int calib, double *acc_val, double *acc_test) {
    struct supernet sn;
    supernet_init(&sn, s, 0, 0);
    int rc = supernet_load(&sn, path);
    if (rc < 0) apq_die_status(rc);
    struct sn_ctx c;
    sn_ctx_init(&c, &sn, 250, 1);
    supernet_recalibrate(&sn, &c, a, NULL, train, calib);
    *acc_val = supernet_accuracy(&sn, &c, a, NULL, val, val->n);
    *acc_test = supernet_accuracy(&sn, &c, a, NULL, test, test->n);
    sn_ctx_free(&c);
    supernet_free(&sn);
}

int main(int argc, char **argv) {
    apq_runtime_init(argc, argv, 0);
    const char *space_path = NULL, *profile_path = NULL, *data = NULL, *supernet = NULL,
               *scratch = NULL, *out_dir = NULL, *print = NULL;
    long seed = 1;
    struct cli_opt opts[] = {
        {"space", CLI_STR, &space_path, "search-space .ini"},
        {"profile", CLI_STR, &profile_path, "profile .ini, section [evaluate]"},
        {"seed", CLI_INT, &seed, "random seed of the run"},
        {"data", CLI_STR, &data, "folder with the four IDX files"},
        {"supernet", CLI_STR, &supernet, "the trained supernet.h5"},
        {"scratch-dir", CLI_STR, &scratch, "folder with smallest.h5, middle.h5, largest.h5"},
        {"out-dir", CLI_STR, &out_dir, "where scratch-baseline.{csv,md} go"},
        {"print-arch", CLI_STR, &print,
         "print the arch string of smallest|middle|largest and exit"},
    };
    cli_parse(argc, argv, opts, 8, "compare extracted subnets with subnets trained from scratch");
    cli_require("space", space_path);
    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    if (print) {
        for (int k = 0; k < 3; k++) {
            if (strcmp(print, names[k])) continue;
            struct arch a;
            char buf[ARCH_STR_MAX];
            named_arch(&s, k, &a);
            arch_to_string(&s, &a, buf, sizeof buf);
            printf("%s\n", buf);
            return 0;
        }
        fprintf(stderr, "%s: error: --print-arch takes smallest, middle or largest\n", apq_prog);
        return 2;
    }
    cli_require("profile", profile_path);
    cli_require("data", data);
    cli_require("supernet", supernet);
    cli_require("scratch-dir", scratch);
    cli_require("out-dir", out_dir);
    struct profile *p = profile_load(profile_path, "evaluate");
    int calib = (int)profile_int(p, "calib_images", 2000);
    int n_train = (int)profile_int(p, "train_images", 0),
        n_val = (int)profile_int(p, "val_images", 0),
        n_test = (int)profile_int(p, "test_images", 0);
    profile_finish(p);
    if (calib < 1) apq_die("%s: [evaluate] calib_images must be >= 1", profile_path);
    struct dataset train, val, test;
    stage_load_data(data, n_train, n_val, n_test, &train, &val, &test);

    char csv[1100], md[1100], tmp[1200];
    snprintf(csv, sizeof csv, "%s/scratch-baseline.csv", out_dir);
    snprintf(md, sizeof md, "%s/scratch-baseline.md", out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", md);
    struct csvw w;
    if ((rc = csvw_open(&w, csv, NULL)) < 0) apq_die_status(rc);
    const char *hdr[] = {"subnet",
                         "arch",
                         "macs_m",
                         "acc_val_supernet",
                         "acc_test_supernet",
                         "acc_val_scratch",
                         "acc_test_scratch",
                         "test_gap"};
    for (int j = 0; j < 8; j++) csvw_str(&w, hdr[j]);
    csvw_end_row(&w);
    FILE *f = fopen(tmp, "w");
    if (!f) apq_die("%s: cannot write", tmp);
    fprintf(f,
            "# Extracted subnets against the same subnets trained from scratch\n\n"
            "Profile `%s`, seed %ld, apq %s. Each scratch subnet trained alone for as many "
            "steps as the whole supernet schedule; both BN-recalibrated on %d train images. "
            "Accuracy in %%; `gap` = supernet − scratch on test.\n\n"
            "| subnet | MMACs | supernet val | supernet test | scratch val | scratch test | gap | "
            "arch |\n"
            "|---|---:|---:|---:|---:|---:|---:|---|\n",
            profile_path, seed, apq_git_rev(), calib);
    for (int k = 0; k < 3; k++) {
        struct arch a;
        char buf[ARCH_STR_MAX], path[1100];
        named_arch(&s, k, &a);
        arch_to_string(&s, &a, buf, sizeof buf);
        snprintf(path, sizeof path, "%s/%s.h5", scratch, names[k]);
        double sv, st, cv, ct;
        measure(&s, supernet, &a, &train, &val, &test, calib, &sv, &st);
        measure(&s, path, &a, &train, &val, &test, calib, &cv, &ct);
        double macs = arch_macs(&s, &a) / 1e6;
        apq_log("%s: supernet val %.2f%% test %.2f%%, scratch val %.2f%% test %.2f%%", names[k],
                100 * sv, 100 * st, 100 * cv, 100 * ct);
        csvw_str(&w, names[k]);
        csvw_str(&w, buf);
        csvw_f64(&w, macs, "%.3f");
        double v[5] = {100 * sv, 100 * st, 100 * cv, 100 * ct, 100 * (st - ct)};
        for (int j = 0; j < 5; j++) csvw_f64(&w, v[j], "%.2f");
        csvw_end_row(&w);
        fprintf(f, "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %+.2f | `%s` |\n", names[k], macs,
                v[0], v[1], v[2], v[3], v[4], buf);
    }
    if ((rc = csvw_commit(&w)) < 0) apq_die_status(rc);
    if (fclose(f) != 0 || rename(tmp, md) != 0) apq_die("%s: cannot write", md);
    stage_free_data(&train, &val, &test);
    return 0;
}
