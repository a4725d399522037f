/* fuzz_profile.c — profile .ini files (stages/cli.c profile_load and the
 * profile_int / profile_f64 / profile_str / profile_finish lookups).
 *
 * The profile reader is stage code: it exits (status 1 or 2) on a bad file,
 * as a stage's main may. The harness compiles cli.c into itself with exit()
 * and apq_die() turned into a longjmp back here (its messages to /dev/null),
 * and frees what the exiting path left allocated, so one process can run
 * millions of inputs. Input: byte 0 picks the section and, per key, which
 * lookup reads it; the rest is the .ini text. */
#include <setjmp.h>

#include "fuzz.h"

static jmp_buf fuzz_jmp;
static void *fuzz_live; /* the profile allocated by profile_load, until freed */
static FILE *fuzz_devnull;

static void fuzz_exit(int status) __attribute__((noreturn));
static void fuzz_exit(int status) {
    longjmp(fuzz_jmp, status + 1);
}
static void *fuzz_track(void *p) {
    fuzz_live = p;
    return p;
}
#define exit(status)       fuzz_exit(status)
#define apq_die(...)       fuzz_exit(1)
#define apq_xcalloc(n, sz) fuzz_track(apq_xcalloc(n, sz))
#undef stderr
#define stderr fuzz_devnull
#include "../stages/cli.c"
#undef exit
#undef apq_die
#undef apq_xcalloc
#undef stderr
#define stderr stderr

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_runtime_init();
    fuzz_devnull = fopen("/dev/null", "w");
    if (!fuzz_devnull) abort();
    return 0;
}

static const char *sections[] = {"train-supernet",  "sample-fp32",        "sample-quant",
                                 "verify",          "evaluate",           "build-lut",
                                 "train-predictor", "transfer-predictor", "search"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *path = fuzz_write_file(0, ".ini", data + 1, size - 1);
    const char *section = sections[data[0] % (sizeof sections / sizeof sections[0])];
    fuzz_live = NULL;
    volatile int how = data[0] >> 4;
    if (setjmp(fuzz_jmp) == 0) {
        struct profile *p = profile_load(path, section);
        if (strlen(profile_name(p)) >= sizeof p->name) fuzz_fail("profile name overflows");
        for (int i = 0; i < p->n; i++) {
            const char *key = p->kv[i].key;
            switch ((how + i) % 3) {
            case 0:
                profile_int(p, key, 0, -1000000, 1000000); /* ranges as the stages give */
                break;
            case 1:
                profile_f64(p, key, 0, -1e6, 1e6);
                break;
            default:
                if (!profile_str(p, key, NULL)) fuzz_fail("key '%s' stored but not found", key);
            }
        }
        profile_finish(p); /* every key was read: frees p */
        fuzz_live = NULL;
    }
    free(fuzz_live); /* what an exiting path left behind */
    fuzz_live = NULL;
    return 0;
}
