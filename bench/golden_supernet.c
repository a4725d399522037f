/* golden_supernet.c — writes the supernet.h5 that bench/make_goldens.py feeds
 * to PyTorch: golden_supernet() (tests/golden/golden_supernet.h), the same
 * network tests/test_golden.c rebuilds in memory. Not a pipeline stage.
 *
 *   build/apq-golden-supernet [--space supernet/spaces/fmnist-mbv2.ini] --out FILE.h5
 */
#include <stdio.h>
#include <string.h>

#include "../tests/golden/golden_supernet.h"

int main(int argc, char **argv) {
    const char *space_path = GOLDEN_SPACE, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--space") && i + 1 < argc)
            space_path = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--space FILE.ini] --out FILE.h5\n", argv[0]);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "usage: %s [--space FILE.ini] --out FILE.h5\n", argv[0]);
        return 2;
    }
    if (apq_runtime_init(argc, argv, 1) < 0) apq_die_status(APQ_EUSAGE);
    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    struct supernet sn;
    golden_supernet(&sn, &s);
    rc = supernet_save(&sn, out, GOLDEN_SEED, "golden", NULL);
    if (rc < 0) apq_die_status(rc);
    supernet_free(&sn);
    return 0;
}
