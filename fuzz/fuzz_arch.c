/* fuzz_arch.c — the arch text form (supernet/arch.c arch_from_string) in the
 * default space and the tiny one. Property: a text the parser accepts is
 * canonical, so arch_to_string gives it back byte for byte, and the parsed
 * arch passes arch_check. */
#include "fuzz.h"

#include "../supernet/arch.h"

static struct space spaces[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_runtime_init();
    const char *paths[2] = {APQ_SRC_DIR "/supernet/spaces/fmnist-mbv2.ini",
                            APQ_SRC_DIR "/supernet/spaces/tiny.ini"};
    for (int i = 0; i < 2; i++)
        if (space_load(paths[i], &spaces[i]) < 0) fuzz_fail("%s", apq_last_error());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > ARCH_STR_MAX) return 0;
    char *text = fuzz_cstr(data, size);
    for (int i = 0; i < 2; i++) {
        struct arch a;
        if (arch_from_string(&spaces[i], text, &a) < 0) continue;
        if (arch_check(&spaces[i], &a) < 0)
            fuzz_fail("'%s' parsed but fails arch_check: %s", text, apq_last_error());
        char back[ARCH_STR_MAX];
        arch_to_string(&spaces[i], &a, back, sizeof back);
        if (strcmp(back, text))
            fuzz_fail("'%s' parsed in space %s but prints as '%s'", text, spaces[i].name, back);
    }
    free(text);
    return 0;
}
