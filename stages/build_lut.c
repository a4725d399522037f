/* build_lut.c — apq-build-lut: the per-layer latency/energy table of one
 * device for one search space (DESIGN.md §1, reference/apq.md §9).
 *
 *   apq-build-lut --space supernet/spaces/fmnist-mbv2.ini --device devices/bitfusion.ini \
 *                 --profile profiles/quick.ini --seed 1 --out runs/quick/bitfusion/lut.h5
 *
 * Logs the entry count, the build time, and the cost of the largest and
 * smallest subnets at 8 and 4 bits; writes lut.h5 (layout in devices/lut.c).
 */
#include <stdio.h>

#include "../devices/devices.h"
#include "../util/util.h"
#include "cli.h"

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    const char *space_path = "supernet/spaces/fmnist-mbv2.ini";
    const char *device_path = "devices/bitfusion.ini", *profile_path = "profiles/quick.ini";
    const char *out = NULL;
    long seed = 1;
    struct cli_opt opts[] = {
        {"space", CLI_STR, &space_path,
         "search-space .ini (default supernet/spaces/fmnist-mbv2.ini)"},
        {"device", CLI_STR, &device_path, "device .ini (default devices/bitfusion.ini)"},
        {"profile", CLI_STR, &profile_path, "profile .ini (default profiles/quick.ini)"},
        {"seed", CLI_INT, &seed, "random seed, recorded for provenance (default 1)"},
        {"out", CLI_STR, &out, "output lut.h5 (required)"},
    };
    cli_parse(argc, argv, opts, sizeof opts / sizeof opts[0],
              "per-layer latency/energy lookup table of a device");
    cli_require("out", out);

    struct profile *p = profile_load(profile_path, "build-lut");
    char profile[64];
    snprintf(profile, sizeof profile, "%s", profile_name(p));
    profile_finish(p); /* the stage has no settings yet */

    struct space s;
    struct device d;
    int rc;
    if ((rc = space_load(space_path, &s)) < 0) apq_die_status(rc);
    if ((rc = device_load(device_path, &d)) < 0) apq_die_status(rc);
    apq_log("space %s, device %s (model %s)", s.name, d.name, d.model);

    struct lut t;
    double t0 = apq_time();
    if ((rc = lut_build(&t, &d, &s)) < 0) apq_die_status(rc);
    apq_log("%d entries in %.2f s (%d threads)", t.n, apq_time() - t0, apq_threads());

    for (int bits = 8; bits >= 4; bits -= 4)
        for (int big = 1; big >= 0; big--) {
            struct arch a;
            char text[ARCH_STR_MAX];
            double ms, mj;
            if (big)
                arch_largest(&s, bits, &a);
            else
                arch_smallest(&s, bits, &a);
            if ((rc = lut_arch_cost(&t, &s, &a, &ms, &mj)) < 0) apq_die_status(rc);
            arch_to_string(&s, &a, text, sizeof text);
            apq_log("%s subnet at %d bits: %.4f ms, %.4f mJ (%s)", big ? "largest" : "smallest",
                    bits, ms, mj, text);
        }

    if ((rc = lut_save(&t, out, (uint64_t)seed, profile)) < 0) apq_die_status(rc);
    apq_log("wrote %s", out);
    lut_free(&t);
    return 0;
}
