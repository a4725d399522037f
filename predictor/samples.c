/* samples.c — a samples file (stages/sample.c) read and encoded for the predictors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/h5.h"
#include "predictor.h"

void pred_samples_free(struct pred_samples *d) {
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}

/* Check row i (arch text already parsed into a) and encode it into d. */
static int encode_row(const char *path, const struct space *s, int quant, size_t i,
                      const char *text, double acc, struct pred_samples *d) {
    struct arch a;
    int rc = arch_from_string(s, text, &a);
    if (rc < 0) {
        char why[600];
        snprintf(why, sizeof why, "%s", apq_last_error());
        return apq_set_error(rc, "%s: row %zu: %s", path, i, why);
    }
    if (arch_is_quantized(&a) != quant)
        return apq_set_error(APQ_EMISMATCH,
                             "%s: row %zu is %s sample, but %s samples are needed; hint: pass "
                             "samples-%s.h5",
                             path, i, quant ? "an fp32" : "a quantized",
                             quant ? "quantized" : "fp32", quant ? "quant" : "fp32");
    if (!(acc >= 0 && acc <= 1))
        return apq_set_error(APQ_EFORMAT, "%s: row %zu: acc_val %g is not a fraction in [0,1]",
                             path, i, acc);
    encode_arch(s, &a, quant, d->x + i * (size_t)d->dim);
    d->y[i] = (float)acc;
    return APQ_OK;
}

int pred_samples_load(const char *path, const struct space *s, int quant, struct pred_samples *d) {
    memset(d, 0, sizeof *d);
    hid_t f;
    char hash[64], want[32], **arch = NULL;
    double *acc = NULL;
    size_t n = 0, n_acc = 0;
    int rc = h5_open_read(path, "samples", 1, &f);
    if (rc < 0) return rc;
    space_hash_text(s, want);
    if ((rc = h5_attr_get_str(f, "space_hash", hash, sizeof hash)) < 0) goto done;
    if (strcmp(hash, want)) {
        rc = apq_set_error(APQ_EMISMATCH,
                           "%s: samples drawn from another space (hash %s, '%s' is %s); hint: "
                           "rerun make to resample",
                           path, hash, s->name, want);
        goto done;
    }
    if ((rc = h5_attr_get_i64(f, "seed", &d->seed)) < 0 ||
        (rc = h5_attr_get_i64(f, "val_images", &d->val_images)) < 0 ||
        (rc = h5_read_strings(f, "arch", &arch, &n)) < 0 ||
        (rc = h5_read_f64_alloc(f, "acc_val", &acc, &n_acc)) < 0)
        goto done;
    if (h5_attr_get_i64(f, "qat_steps", &d->qat_steps) < 0) d->qat_steps = -1;
    if (n != n_acc) {
        rc = apq_set_error(APQ_EFORMAT, "%s: %zu archs but %zu acc_val entries", path, n, n_acc);
        goto done;
    }
    d->n = (int)n;
    d->dim = encode_dim(s, quant);
    d->x = apq_falloc(n * (size_t)d->dim + 1);
    d->y = apq_falloc(n + 1);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = encode_row(path, s, quant, i, arch[i], acc[i], d);
    if (rc == 0) d->hash = pred_samples_hash((const char *const *)arch, acc, n);
done:
    h5_free_strings(arch, n);
    free(acc);
    h5_close(f);
    if (rc < 0) pred_samples_free(d);
    return rc;
}
