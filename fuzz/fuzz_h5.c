/* fuzz_h5.c — the HDF5 artifact readers, on mutated copies of real artifacts
 * of the small space fuzz/space.ini (fuzz/make_seeds.sh makes them).
 *
 * Input: byte 0 picks the reader, the rest is the .h5 file (written to tmpfs:
 * the readers take a path). Readers, by byte 0 % 6:
 *   0 supernet.h5      supernet_load_space, then supernet_load into the space's supernet
 *   1 predictor-*.h5   pred_ensemble_load, then a prediction for the largest arch
 *   2 lut.h5           lut_load, then lut_arch_cost of the largest quantized arch
 *   3 samples-*.h5     samples_load of apq-(transfer|train)-predictor (bit 7 of byte 0: quantized)
 *   4 search.h5        the reads of apq-verify: arch, seven f64 columns, user_budget, attributes
 *   5 verified.h5      the reads of apq-report: arch, nine f64 columns, user_budget
 * The last two are inline in stage mains that exit on the first error; the
 * harness makes the same library calls (h5_*, arch_from_string) and stops there.
 * Property: a reader returns a status; on success the values it hands on are usable
 * (a prediction or cost is finite). */
#include <math.h>

#include "fuzz.h"

#include "../devices/devices.h"
#include "../supernet/supernet.h"
#include "../util/h5.h"

#define main apq_train_predictor_main
#include "../stages/train_predictor.c"
#undef main

static struct space space;
static struct supernet sn;
static struct arch largest_fp, largest_q;

/* HDF5 sizes some of its own buffers from the file (a corrupt datatype or
 * chunk size asks for gigabytes inside H5Dread): allocations above 1 GiB
 * return NULL, which HDF5 reports as an error, as a real malloc would for a
 * size beyond memory, instead of counting as our crash (fuzz/h5.options
 * lifts libFuzzer's own limit above that). Our readers' allocations are
 * bounded the same way and must handle NULL. */
const char *__asan_default_options(void) {
    return "allocator_may_return_null=1:max_allocation_size_mb=1024";
}

/* HDF5 1.10.8 leaks inside H5Fopen when it fails on some damaged files
 * (56 bytes from H5FL_blk_malloc under H5G_mkroot, nothing the caller can
 * close): leaks whose allocation HDF5 made are HDF5's. Ours (allocated in
 * our code, first frame not in libhdf5) are still reported. */
const char *__lsan_default_suppressions(void) {
    return "leak:libhdf5_serial.so\n";
}

/* HDF5 1.10.8 also reads freed memory inside its own code on some damaged
 * files (e.g. H5Aexists -> H5O__msg_iterate_real memcpy from a metadata-cache
 * entry it just freed). HDF5 is not instrumented, so ASan sees only its calls
 * to libc (memcpy & co.): those are HDF5's, not ours, and are not reported. */
const char *__asan_default_suppressions(void) {
    return "interceptor_via_lib:libhdf5_serial.so\n";
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_runtime_init();
    /* Unlimited free lists: HDF5 keeps its per-file metadata-cache block (MBs,
     * zeroed on every open) instead of returning it to ASan, 4x faster. */
    H5set_free_list_limits(-1, -1, -1, -1, -1, -1);
    if (space_load(APQ_SRC_DIR "/fuzz/space.ini", &space) < 0) fuzz_fail("%s", apq_last_error());
    supernet_init(&sn, &space, 1, 0);
    arch_largest(&space, 0, &largest_fp);
    arch_largest(&space, space.bits[space.n_bits - 1], &largest_q);
    return 0;
}

static void read_supernet(const char *path) {
    struct space s;
    fuzz_note("supernet_load_space", supernet_load_space(path, &s));
    fuzz_note("supernet_load", supernet_load(&sn, path));
}

static void read_predictor(const char *path) {
    struct pred_ensemble p;
    memset(&p, 0, sizeof p);
    if (fuzz_note("pred_ensemble_load", pred_ensemble_load(&p, path, &space)) == APQ_OK) {
        float acc = NAN, sd = NAN;
        pred_ensemble_predict(&p, &space, p.m[0].bit_dim ? &largest_q : &largest_fp, 1, &acc, &sd);
        if (!isfinite(acc) || !isfinite(sd))
            fuzz_fail("%s: loaded, but predicts %g ± %g", path, acc, sd);
    }
    pred_ensemble_free(&p);
}

static void read_lut(const char *path) {
    struct lut t;
    memset(&t, 0, sizeof t);
    if (fuzz_note("lut_load", lut_load(&t, path, &space)) == APQ_OK) {
        double ms = NAN, mj = NAN;
        if (lut_arch_cost(&t, &space, &largest_q, &ms, &mj) == APQ_OK &&
            !(isfinite(ms) && isfinite(mj)))
            fuzz_fail("%s: loaded, but the largest arch costs %g ms %g mJ", path, ms, mj);
        lut_free(&t);
    }
}

static void read_samples(const char *path, int quant) {
    struct samples d;
    if (fuzz_note("samples_load", samples_load(path, &space, quant, &d)) == APQ_OK) {
        free(d.x);
        free(d.y);
    }
}

/* The reads of apq-verify (kind "search") or apq-report (kind "verified"). */
static void read_table(const char *path, const char *kind) {
    static const char *cols[] = {"budget_latency_ms", "budget_energy_mj", "acc_pred",
                                 "latency_ms",        "energy_mj",        "macs_m",
                                 "weight_kb",         "acc_val",          "acc_test"};
    const int n_cols = strcmp(kind, "search") ? 9 : 7;
    hid_t f;
    char **archs = NULL;
    size_t n = 0;
    if (fuzz_note(kind, h5_open_read(path, kind, 1, &f)) < 0) return;
    if (h5_read_strings(f, "arch", &archs, &n) < 0) goto done;
    for (size_t i = 0; i < n; i++) {
        struct arch a;
        if (fuzz_note(kind, arch_from_string(&space, archs[i], &a)) < 0) goto done;
    }
    for (int j = 0; j < n_cols; j++) {
        double *col = NULL;
        size_t m = 0;
        int rc = h5_read_f64_alloc(f, cols[j], &col, &m);
        free(col);
        if (fuzz_note(cols[j], rc) < 0 || m != n) goto done;
    }
    if (n && n < (1u << 20)) {
        int32_t *user = calloc(n, sizeof *user);
        hsize_t dn = n;
        int rc = h5_read_i32(f, "user_budget", 1, &dn, user);
        free(user);
        if (fuzz_note("user_budget", rc) < 0) goto done;
    }
    char device[64], hash[64];
    h5_attr_get_str(f, "device", device, sizeof device);
    h5_attr_get_str(f, "space_hash", hash, sizeof hash);
done:
    h5_free_strings(archs, n);
    h5_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *path = fuzz_write_file(0, ".h5", data + 1, size - 1);
    switch (data[0] % 6) {
    case 0:
        read_supernet(path);
        break;
    case 1:
        read_predictor(path);
        break;
    case 2:
        read_lut(path);
        break;
    case 3:
        read_samples(path, data[0] >> 7);
        break;
    case 4:
        read_table(path, "search");
        break;
    default:
        read_table(path, "verified");
    }
    return 0;
}
