/* golden_supernet.h — the supernet behind tests/golden/torch_reference.h5.
 *
 * Both the golden generator (bench/golden_supernet.c, run by
 * bench/make_goldens.py) and the test that reads the goldens
 * (tests/test_golden.c) build the supernet with this one function, so the
 * weights never have to be committed. It is supernet_init's network (seed
 * GOLDEN_SEED) with the parts that init leaves trivial perturbed, so that the
 * comparison sees them: the kernel transforms move off the identity, BN
 * gamma/beta off 1/0 and the running statistics off 0/1.
 *
 *   struct supernet sn; golden_supernet(&sn, &space);
 */
#ifndef APQ_GOLDEN_SUPERNET_H
#define APQ_GOLDEN_SUPERNET_H

#include <string.h>

#include "../../supernet/supernet.h"

#define GOLDEN_SEED  1234u
#define GOLDEN_SPACE "supernet/spaces/fmnist-mbv2.ini"
#define GOLDEN_FILE  "tests/golden/torch_reference.h5"

static inline int golden_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static inline void golden_supernet(struct supernet *sn, const struct space *s) {
    supernet_init(sn, s, GOLDEN_SEED, 0);
    struct rng r;
    rng_init(&r, GOLDEN_SEED, RNG_DATA);
    for (int i = 0; i < sn->n_tensors; i++) {
        const struct sn_tensor *t = &sn->tensors[i];
        float *p = (t->is_buffer ? sn->bufs : sn->params) + t->offset;
        for (size_t j = 0; j < t->size; j++) {
            if (strstr(t->name, "/transform_"))
                p[j] += (float)rng_normal(&r, 0.05);
            else if (golden_ends_with(t->name, "/bn/weight"))
                p[j] = 1.0f + (float)rng_normal(&r, 0.1);
            else if (golden_ends_with(t->name, "/bn/bias"))
                p[j] = (float)rng_normal(&r, 0.1);
            else if (golden_ends_with(t->name, "/bn/running_mean"))
                p[j] = (float)rng_normal(&r, 0.1);
            else if (golden_ends_with(t->name, "/bn/running_var"))
                p[j] = 0.5f + (float)rng_uniform(&r);
        }
    }
    rng_free(&r);
}

#endif
