/* fuzz_device.c — device files (devices/device.c device_load), then the cost
 * model on every layer of the tiny space's largest and smallest archs at 8 and
 * 4 bits. Property of an accepted device: every layer's latency and energy is
 * finite and not negative, or the model refuses the layer with a status. */
#include <math.h>

#include "fuzz.h"

#include "../devices/devices.h"

static struct arch archs[4];
static struct space space;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_runtime_init();
    if (space_load(APQ_SRC_DIR "/supernet/spaces/tiny.ini", &space) < 0)
        fuzz_fail("%s", apq_last_error());
    arch_largest(&space, 8, &archs[0]);
    arch_smallest(&space, 8, &archs[1]);
    arch_largest(&space, 4, &archs[2]);
    arch_smallest(&space, 4, &archs[3]);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file(0, ".ini", data, size);
    static struct device d;
    if (fuzz_note("device_load", device_load(path, &d)) < 0) return 0;
    static struct layer_desc layers[ARCH_MAX_LAYERS];
    for (int k = 0; k < 4; k++) {
        int n = arch_layers(&space, &archs[k], layers);
        for (int i = 0; i < n; i++) {
            double ms = -1, mj = -1;
            if (device_layer_cost(&d, &layers[i], &ms, &mj) < 0) continue;
            if (!(isfinite(ms) && isfinite(mj) && ms >= 0 && mj >= 0))
                fuzz_fail("device accepted, layer %d of arch %d costs %g ms %g mJ", i, k, ms, mj);
        }
    }
    return 0;
}
