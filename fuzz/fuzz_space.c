/* fuzz_space.c — the search-space .ini parser (supernet/space.c space_parse).
 * Properties of an accepted space: its largest and smallest archs (fp32 and at
 * its lowest bit-width) pass arch_check and round-trip through the text form,
 * and their layer lists and MACs are computable. */
#include "fuzz.h"

#include "../supernet/arch.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_runtime_init();
    return 0;
}

static void check_arch(const struct space *s, const struct arch *a, const char *what) {
    if (arch_check(s, a) < 0)
        fuzz_fail("space accepted, but its %s arch fails: %s", what, apq_last_error());
    char text[ARCH_STR_MAX];
    arch_to_string(s, a, text, sizeof text);
    struct arch b;
    if (arch_from_string(s, text, &b) < 0)
        fuzz_fail("%s arch '%s' does not parse: %s", what, text, apq_last_error());
    if (!arch_equal(a, &b)) fuzz_fail("%s arch '%s' does not round-trip", what, text);
    static struct layer_desc layers[ARCH_MAX_LAYERS];
    int n = arch_layers(s, a, layers);
    if (n <= 0 || n > ARCH_MAX_LAYERS) fuzz_fail("%s arch: %d layers", what, n);
    if (!(arch_macs(s, a) > 0)) fuzz_fail("%s arch: MACs not positive", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > SPACE_TEXT_MAX) return 0;
    char *text = fuzz_cstr(data, size);
    static struct space s;
    if (fuzz_note("space_parse", space_parse(text, "fuzz.ini", &s)) == APQ_OK) {
        struct arch a;
        for (int q = 0; q < 2; q++) {
            int bits = q ? s.bits[0] : 0;
            arch_largest(&s, bits, &a);
            check_arch(&s, &a, q ? "largest quantized" : "largest");
            arch_smallest(&s, bits, &a);
            check_arch(&s, &a, q ? "smallest quantized" : "smallest");
        }
    }
    free(text);
    return 0;
}
