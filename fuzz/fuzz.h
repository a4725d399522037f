/* fuzz.h — helpers shared by the libFuzzer harnesses (fuzz/README.md).
 *
 * Each harness is one fuzz_<name>.c defining LLVMFuzzerTestOneInput; `make fuzz`
 * builds it with clang -fsanitize=fuzzer,address,undefined against the library
 * compiled the same way (build-fuzz/) and runs it on fuzz/corpus/<name>/.
 * A property a harness asserts fails through fuzz_fail, which aborts, so
 * libFuzzer records the input as a crash. */
#ifndef APQ_FUZZ_H
#define APQ_FUZZ_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/util.h"

/* Report a broken property and abort (a crash for libFuzzer). */
static void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fuzz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz: property broken: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* data[0..size) as a NUL-terminated string (malloc'ed; embedded NULs end it early). */
static char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* Write data to this process's scratch file number `slot` (on tmpfs when
 * /dev/shm exists) whose name ends in `suffix`; returns its path (static,
 * one per slot, removed at exit). */
static char fuzz_paths[4][256];
static void fuzz_cleanup(void) {
    for (int i = 0; i < 4; i++)
        if (fuzz_paths[i][0]) unlink(fuzz_paths[i]);
}
static const char *fuzz_write_file(int slot, const char *suffix, const uint8_t *data, size_t size) {
    char *path = fuzz_paths[slot];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    if (path[0] && strcmp(path + strlen(path) - strlen(suffix), suffix)) unlink(path);
    if (!path[0]) atexit(fuzz_cleanup);
    snprintf(path, sizeof fuzz_paths[0], "%s/apq-fuzz-%d-%d%s", dir, (int)getpid(), slot, suffix);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) {
        perror(path);
        abort();
    }
    return path;
}

/* With APQ_FUZZ_VERBOSE set, print what a reader returned (for reproducing
 * one input: APQ_FUZZ_VERBOSE=1 build-fuzz/fuzz_<name> file). Returns rc. */
static int fuzz_note(const char *what, int rc) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("APQ_FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "%s: %s\n", what, rc < 0 ? apq_last_error() : "ok");
    return rc;
}

/* Quiet, single-threaded runtime (no re-exec) for a harness's initialisation. */
static void fuzz_runtime_init(void) {
    setenv("APQ_QUIET", "1", 1);
    apq_runtime_init(0, NULL, 1);
}

#endif
