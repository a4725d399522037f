/* apq-verify — QAT-finetune each searched subnet and measure it (DESIGN.md §1):
 * for every row of search.h5, extract the subnet from the supernet, calibrate
 * its quantizers, fine-tune it briefly with QAT on train, recalibrate BN, and
 * measure val and test accuracy → verified.h5. The recipe is the profile's
 * [measure], the one the samples are measured with (supernet_measure), so a
 * row's acc_val and the predictor's acc_pred estimate the same quantity. The only stage that reads
 * the test split; nothing downstream makes a decision from it. Each row's
 * subnet as measured (fine-tuned weights, quantizer ranges, recalibrated BN:
 * supernet_extract) is kept in verified.h5 as group subnet/<row>, so that an
 * export rebuilds exactly what was measured (docs/formats.md "A subnet's weights"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../supernet/subnet.h"
#include "../supernet/supernet.h"
#include "../util/h5.h"
#include "cli.h"
#include "data.h"

#define N_COLS 8
static const char *cols[N_COLS] = {"budget_latency_ms", "budget_energy_mj", "acc_pred",
                                   "latency_ms",        "energy_mj",        "macs_m",
                                   "weight_kb",         "acc_pred_std"};

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    const char *space_path = NULL, *profile_path = NULL, *data = NULL, *supernet = NULL,
               *search = NULL, *out = NULL;
    long seed = 1;
    struct cli_opt opts[] = {
        {"space", CLI_STR, &space_path, "search-space .ini"},
        {"profile", CLI_STR, &profile_path, "profile .ini, sections [measure] and [verify]"},
        {"seed", CLI_INT, &seed, "random seed (default 1)"},
        {"data", CLI_STR, &data, "folder with the four IDX files"},
        {"supernet", CLI_STR, &supernet, "trained supernet.h5"},
        {"search", CLI_STR, &search, "search.h5 from apq-search"},
        {"out", CLI_STR, &out, "output verified.h5"},
    };
    cli_parse(argc, argv, opts, 7, "QAT-finetune and measure the searched subnets");
    cli_require("space", space_path);
    cli_require("profile", profile_path);
    cli_require("data", data);
    cli_require("supernet", supernet);
    cli_require("search", search);
    cli_require("out", out);
    struct profile *p = profile_load(profile_path, "verify");
    const int IMAGES = 10000000; /* more than any IDX set holds */
    int n_val = (int)profile_int(p, "val_images", 0, 0, IMAGES),
        n_test = (int)profile_int(p, "test_images", 0, 0, IMAGES);
    char prof_name[64];
    snprintf(prof_name, sizeof prof_name, "%s", profile_name(p));
    profile_finish(p);
    struct sn_measure m; /* the samples' recipe (profile [measure]) */
    int batch, n_train;
    stage_measure_load(profile_path, &m, &batch, &n_train);

    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    hid_t fs;
    if ((rc = h5_open_read(search, "search", 1, &fs)) < 0) apq_die_status(rc);
    char **archs;
    size_t n;
    if ((rc = h5_read_strings(fs, "arch", &archs, &n)) < 0) apq_die_status(rc);
    if (n == 0) apq_die("%s: no searched subnets", search);
    double *col[N_COLS];
    for (int j = 0; j < N_COLS; j++) {
        size_t m;
        if ((rc = h5_read_f64_alloc(fs, cols[j], &col[j], &m)) < 0) apq_die_status(rc);
        if (m != n) apq_die("%s: column %s has %zu rows, arch has %zu", search, cols[j], m, n);
    }
    int32_t *user = apq_xcalloc(n, sizeof(int32_t));
    hsize_t dn = n;
    if ((rc = h5_read_i32(fs, "user_budget", 1, &dn, user)) < 0) apq_die_status(rc);
    char device[64] = "", hash_in[64] = "", hash_want[32];
    h5_attr_get_str(fs, "device", device, sizeof device);
    space_hash_text(&s, hash_want);
    if (h5_attr_get_str(fs, "space_hash", hash_in, sizeof hash_in) < 0 ||
        strcmp(hash_in, hash_want))
        apq_die("%s: searched in another search space than %s; hint: make reruns the search",
                search, space_path);
    h5_close(fs);

    struct supernet sn;
    supernet_init(&sn, &s, 0, 0);
    if ((rc = supernet_load(&sn, supernet)) < 0) apq_die_status(rc);
    cli_require_writable(out);
    struct dataset train, val, test;
    stage_load_data(data, &s, space_path, n_train, n_val, n_test, &train, &val, &test);
    struct sn_ctx c;
    if ((rc = sn_ctx_init(&c, &sn, batch > m.qat_batch ? batch : m.qat_batch, (uint64_t)seed)) < 0)
        apq_die_status(rc);
    float *snapshot = apq_falloc(sn.n_params);
    memcpy(snapshot, sn.params, sizeof(float) * sn.n_params);
    double *acc_val = apq_xcalloc(n, sizeof(double)), *acc_test = apq_xcalloc(n, sizeof(double));
    struct subnet *nets = apq_xcalloc(n, sizeof *nets); /* row i's measured subnet */
    size_t *net_of = apq_xcalloc(n, sizeof *net_of);    /* the row whose subnet row i is */
    struct apq_progress pr;
    progress_init(&pr, "verify", "subnets", (long)n);
    for (size_t i = 0; i < n; i++) {
        size_t same = i;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(archs[j], archs[i])) same = j;
        net_of[i] = same;
        if (same < i) { /* the sweep found the same subnet twice: measured once */
            acc_val[i] = acc_val[same];
            acc_test[i] = acc_test[same];
            continue;
        }
        struct arch a;
        if ((rc = arch_from_string(&s, archs[i], &a)) < 0)
            apq_die("%s: %s", search, apq_last_error());
        const struct dataset *sets[2] = {&val, &test};
        double acc[2];
        struct sn_quant q;
        if ((rc = supernet_measure_ex(&sn, &c, snapshot, &a, &m, &train, sets, NULL, 2,
                                      (uint64_t)seed * 7919u + i, acc, &q)) < 0 ||
            (rc = supernet_extract(&sn, &a, arch_is_quantized(&a) ? &q : NULL, &nets[i])) < 0)
            apq_die("subnet %zu of %zu: %s", i + 1, n, apq_last_error());
        acc_val[i] = acc[0];
        acc_test[i] = acc[1];
        apq_log("%s: predicted %.2f%%, val %.2f%%, test %.2f%% (%.3f ms)", archs[i],
                100 * col[2][i], 100 * acc_val[i], 100 * acc_test[i], col[3][i]);
        progress_update(&pr, (long)i + 1, NULL);
    }
    progress_end(&pr, NULL);

    hid_t f;
    if ((rc = h5_create(out, &f)) < 0) apq_die_status(rc);
    char hash[32];
    space_hash_text(&s, hash);
    rc = h5_write_provenance(f, "verified", 1, (uint64_t)seed, prof_name);
    if (rc == 0) rc = h5_attr_set_str(f, "space_hash", hash);
    if (rc == 0) rc = h5_attr_set_str(f, "device", device);
    if (rc == 0) rc = h5_attr_set_str(f, "supernet", supernet);
    if (rc == 0) rc = h5_attr_set_i64(f, "qat_steps", m.qat_steps);
    if (rc == 0) rc = h5_attr_set_i64(f, "val_images", val.n);
    if (rc == 0) rc = h5_attr_set_i64(f, "test_images", test.n);
    if (rc == 0) rc = h5_write_strings(f, "arch", (const char *const *)archs, n);
    for (int j = 0; j < N_COLS && rc == 0; j++) rc = h5_write_f64(f, cols[j], 1, &dn, col[j]);
    if (rc == 0) rc = h5_write_i32(f, "user_budget", 1, &dn, user);
    if (rc == 0) rc = h5_write_f64(f, "acc_val", 1, &dn, acc_val);
    if (rc == 0) rc = h5_write_f64(f, "acc_test", 1, &dn, acc_test);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char group[64];
        snprintf(group, sizeof group, "subnet/%zu", i);
        rc = subnet_write(f, group, &nets[net_of[i]]);
    }
    if (rc < 0) {
        h5_abort(f, out);
        apq_die_status(rc);
    }
    if ((rc = h5_commit(f, out)) < 0) apq_die_status(rc);
    h5_free_strings(archs, n);
    for (int j = 0; j < N_COLS; j++) free(col[j]);
    free(user);
    free(acc_val);
    free(acc_test);
    for (size_t i = 0; i < n; i++) subnet_free(&nets[i]);
    free(nets);
    free(net_of);
    free(snapshot);
    sn_ctx_free(&c);
    supernet_free(&sn);
    stage_free_data(&train, &val, &test);
    return 0;
}
