/* samples_io.c — rows of the sampling stages and their files (samples_io.h). */
#include "samples_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/h5.h"

void sample_rows_init(struct sample_rows *r, int n, int quantized) {
    r->n = n;
    r->quantized = quantized;
    r->arch = apq_xcalloc((size_t)n, sizeof(char *));
    r->acc = apq_xcalloc((size_t)n, sizeof(double));
    r->macs = apq_xcalloc((size_t)n, sizeof(double));
    r->wkb = apq_xcalloc((size_t)n, sizeof(double));
}

void sample_rows_free(struct sample_rows *r) {
    for (int i = 0; r->arch && i < r->n; i++) free(r->arch[i]);
    free(r->arch);
    free(r->acc);
    free(r->macs);
    free(r->wkb);
    memset(r, 0, sizeof *r);
}

int sample_rows_done(const struct sample_rows *r) {
    int k = 0;
    for (int i = 0; i < r->n; i++) k += r->arch[i] != NULL;
    return k;
}

int samples_shard_path(char *buf, size_t size, const char *out, int k, int n) {
    size_t len = strlen(out);
    int h5 = len > 3 && !strcmp(out + len - 3, ".h5");
    int w = snprintf(buf, size, "%.*s.%d-of-%d%s", (int)(h5 ? len - 3 : len), out, k, n,
                     h5 ? ".h5" : "");
    return w > 0 && (size_t)w < size;
}

/* The attributes of the final file, which do not depend on the shard. */
static int write_attrs(hid_t f, const struct space *s, const struct sample_rows *r,
                       const struct sample_meta *meta) {
    char hash[32];
    space_hash_text(s, hash);
    int rc = h5_attr_set_str(f, "space_hash", hash);
    if (rc == 0) rc = h5_attr_set_i64(f, "quantized", r->quantized);
    if (rc == 0) rc = h5_attr_set_i64(f, "n", r->n);
    if (rc == 0) rc = h5_attr_set_str(f, "supernet", meta->supernet);
    if (rc == 0) rc = h5_attr_set_str(f, "supernet_hash", meta->supernet_hash);
    if (rc == 0) rc = h5_attr_set_i64(f, "calib_images", meta->m.calib_images);
    if (rc == 0) rc = h5_attr_set_i64(f, "batch", meta->batch);
    if (rc == 0) rc = h5_attr_set_i64(f, "val_images", meta->val_images);
    if (rc == 0 && r->quantized) rc = h5_attr_set_i64(f, "qat_steps", meta->m.qat_steps);
    if (rc == 0 && r->quantized) rc = h5_attr_set_i64(f, "qat_batch", meta->m.qat_batch);
    if (rc == 0 && r->quantized) rc = h5_attr_set_f64(f, "qat_lr", meta->m.qat_lr);
    return rc;
}

int samples_write(const char *path, const char *kind, const struct space *s,
                  const struct sample_rows *r, const struct sample_meta *meta) {
    int final = !strcmp(kind, "samples"), k = sample_rows_done(r);
    APQ_ASSERT(!final || k == r->n);
    char **arch = apq_xcalloc((size_t)(k ? k : 1), sizeof(char *));
    double *col[3] = {apq_xcalloc((size_t)k + 1, sizeof(double)),
                      apq_xcalloc((size_t)k + 1, sizeof(double)),
                      apq_xcalloc((size_t)k + 1, sizeof(double))};
    int32_t *index = apq_xcalloc((size_t)k + 1, sizeof(int32_t));
    for (int i = 0, j = 0; i < r->n; i++) {
        if (!r->arch[i]) continue;
        arch[j] = r->arch[i];
        col[0][j] = r->acc[i];
        col[1][j] = r->macs[i];
        col[2][j] = r->wkb[i];
        index[j++] = i;
    }
    hid_t f;
    hsize_t dim = (hsize_t)k;
    int rc = h5_create(path, &f);
    if (rc < 0) goto done;
    rc = h5_write_provenance(f, kind, 1, meta->seed, meta->profile);
    if (rc == 0) rc = write_attrs(f, s, r, meta);
    if (rc == 0 && !final) rc = h5_attr_set_str(f, "identity", meta->identity);
    if (rc == 0 && !final) rc = h5_attr_set_i64(f, "shard_k", meta->shard_k);
    if (rc == 0 && !final) rc = h5_attr_set_i64(f, "shard_n", meta->shard_n);
    if (rc == 0 && !final) rc = h5_write_i32(f, "index", 1, &dim, index);
    if (rc == 0) rc = h5_write_strings(f, "arch", (const char *const *)arch, (size_t)k);
    if (rc == 0) rc = h5_write_f64(f, "acc_val", 1, &dim, col[0]);
    if (rc == 0) rc = h5_write_f64(f, "macs_m", 1, &dim, col[1]);
    if (rc == 0) rc = h5_write_f64(f, "weight_kb", 1, &dim, col[2]);
    if (rc < 0)
        h5_abort(f, path);
    else
        rc = h5_commit(f, path);
done:
    free(arch);
    for (int j = 0; j < 3; j++) free(col[j]);
    free(index);
    return rc;
}

/* Read the index, arch and value columns of an open shard/partial into r. */
static int read_columns(hid_t f, const char *path, struct sample_rows *r) {
    char **arch = NULL;
    double *col[3] = {NULL, NULL, NULL};
    int32_t *index = NULL;
    size_t n = 0, m;
    static const char *names[3] = {"acc_val", "macs_m", "weight_kb"};
    int rc = h5_read_strings(f, "arch", &arch, &n);
    for (int j = 0; j < 3 && rc == 0; j++) {
        if ((rc = h5_read_f64_alloc(f, names[j], &col[j], &m)) == 0 && m != n)
            rc = apq_set_error(APQ_EFORMAT, "%s: %s has %zu rows, arch %zu", path, names[j], m, n);
    }
    if (rc == 0 && n > (size_t)r->n)
        rc = apq_set_error(APQ_EFORMAT, "%s: %zu rows for %d samples", path, n, r->n);
    if (rc == 0) {
        index = apq_xcalloc(n + 1, sizeof(int32_t));
        rc = h5_read_i32(f, "index", 1, (hsize_t[]){n}, index);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int k = index[i];
        if (k < 0 || k >= r->n || r->arch[k]) {
            rc = apq_set_error(APQ_EFORMAT, "%s: row %zu: index %d out of range or repeated", path,
                               i, k);
            break;
        }
        r->arch[k] = arch[i];
        arch[i] = NULL;
        r->acc[k] = col[0][i];
        r->macs[k] = col[1][i];
        r->wkb[k] = col[2][i];
    }
    h5_free_strings(arch, n);
    for (int j = 0; j < 3; j++) free(col[j]);
    free(index);
    return rc;
}

int samples_read_rows(const char *path, const char *kind, const struct sample_meta *meta,
                      struct sample_rows *r) {
    hid_t f;
    int rc = h5_open_read(path, kind, 1, &f);
    if (rc < 0) return rc;
    char *identity = NULL;
    int64_t k = 0, n = 0;
    if ((rc = h5_attr_get_str_alloc(f, "identity", &identity)) < 0 ||
        (rc = h5_attr_get_i64(f, "shard_k", &k)) < 0 ||
        (rc = h5_attr_get_i64(f, "shard_n", &n)) < 0)
        goto done;
    if (strcmp(identity, meta->identity)) {
        rc = apq_set_error(APQ_EMISMATCH, "%s: made with other settings: %s (now %s)", path,
                           identity, meta->identity);
        goto done;
    }
    if (k != meta->shard_k || n != meta->shard_n) {
        rc = apq_set_error(APQ_EMISMATCH, "%s: holds shard %lld of %lld, not %d of %d", path,
                           (long long)k, (long long)n, meta->shard_k, meta->shard_n);
        goto done;
    }
    rc = read_columns(f, path, r);
done:
    free(identity);
    h5_close(f);
    return rc;
}
