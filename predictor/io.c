/* io.c — predictor files (predictor-*.h5) and the encode-and-predict convenience. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/h5.h"
#include "predictor.h"

#define PRED_FORMAT         "predictor"
#define PRED_FORMAT_VERSION 1

void predictor_predict(const struct predictor *p, const struct space *s, const struct arch *a,
                       int n, float *acc) {
    if (n <= 0) return;
    int quant = p->bit_dim > 0, dim = encode_dim(s, quant), chunk = n < 1024 ? n : 1024;
    APQ_ASSERT(p->in_dim == encode_fp32_dim(s) && p->in_dim + p->bit_dim == dim);
    float *x = apq_falloc((size_t)chunk * (size_t)dim);
    for (int s0 = 0; s0 < n; s0 += chunk) {
        int m = n - s0 < chunk ? n - s0 : chunk;
        for (int i = 0; i < m; i++) encode_arch(s, &a[s0 + i], quant, x + (size_t)i * dim);
        predictor_forward(p, x, m, acc + s0);
    }
    free(x);
}

// ---- save ------------------------------------------------------------------------

/* Every weight tensor: dataset name, rank, dims, data. */
struct tensor {
    char name[32];
    int rank;
    hsize_t dims[2];
    float *data;
};

static int tensors(const struct predictor *p, struct tensor *t) {
    int n = 0;
    hsize_t H = (hsize_t)p->hidden;
    for (int l = 0; l < p->n_layers; l++) {
        t[n] = (struct tensor){"", 2, {H, l ? H : (hsize_t)p->in_dim}, p->v.w[l]};
        snprintf(t[n++].name, sizeof t->name, "layers/%d/weight", l);
        t[n] = (struct tensor){"", 1, {H, 0}, p->v.b[l]};
        snprintf(t[n++].name, sizeof t->name, "layers/%d/bias", l);
    }
    if (p->bit_dim) {
        t[n++] = (struct tensor){"bits/weight", 2, {H, (hsize_t)p->bit_dim}, p->v.wq};
        t[n++] = (struct tensor){"bits/bias", 1, {H, 0}, p->v.bq};
    }
    t[n++] = (struct tensor){"regressor/weight", 2, {1, H}, p->v.wo};
    t[n++] = (struct tensor){"regressor/bias", 1, {1, 0}, p->v.bo};
    return n;
}

int predictor_save(const struct predictor *p, const struct space *s, const char *path,
                   uint64_t seed, const char *profile) {
    APQ_ASSERT(p->in_dim == encode_fp32_dim(s));
    APQ_ASSERT(p->bit_dim == 0 || p->bit_dim == encode_bits_dim(s));
    char hash[32];
    space_hash_text(s, hash);
    struct tensor t[2 * PRED_MAX_LAYERS + 4];
    int nt = tensors(p, t);
    const struct pred_metrics *m = &p->metrics;
    hid_t f;
    int rc = h5_create(path, &f);
    if (rc < 0) return rc;
    if ((rc = h5_write_provenance(f, PRED_FORMAT, PRED_FORMAT_VERSION, seed, profile)) < 0 ||
        (rc = h5_attr_set_str(f, "space_hash", hash)) < 0 ||
        (rc = h5_attr_set_str(f, "space_name", s->name)) < 0 ||
        (rc = h5_attr_set_i64(f, "encoding_version", PRED_ENCODING_VERSION)) < 0 ||
        (rc = h5_attr_set_i64(f, "in_dim", p->in_dim)) < 0 ||
        (rc = h5_attr_set_i64(f, "bit_dim", p->bit_dim)) < 0 ||
        (rc = h5_attr_set_i64(f, "hidden", p->hidden)) < 0 ||
        (rc = h5_attr_set_i64(f, "layers", p->n_layers)) < 0 ||
        (rc = h5_attr_set_f64(f, "rmse", m->rmse)) < 0 ||
        (rc = h5_attr_set_f64(f, "kendall_tau", m->tau)) < 0 ||
        (rc = h5_attr_set_i64(f, "n_train", m->n_train)) < 0 ||
        (rc = h5_attr_set_i64(f, "n_test", m->n_test)) < 0)
        goto fail;
    if (m->has_scratch && ((rc = h5_attr_set_f64(f, "scratch_rmse", m->scratch_rmse)) < 0 ||
                           (rc = h5_attr_set_f64(f, "scratch_kendall_tau", m->scratch_tau)) < 0))
        goto fail;
    for (int i = 0; i < nt; i++)
        if ((rc = h5_write_f32(f, t[i].name, t[i].rank, t[i].dims, t[i].data)) < 0) goto fail;
    return h5_commit(f, path);
fail:
    h5_abort(f, path);
    return rc;
}

// ---- load ------------------------------------------------------------------------

static int get_int(hid_t f, const char *path, const char *name, long lo, long hi, int *out) {
    int64_t v;
    int rc = h5_attr_get_i64(f, name, &v);
    if (rc < 0) return rc;
    if (v < lo || v > hi)
        return apq_set_error(APQ_EFORMAT, "%s: attribute %s = %lld is outside %ld..%ld", path, name,
                             (long long)v, lo, hi);
    *out = (int)v;
    return APQ_OK;
}

int predictor_load(struct predictor *p, const char *path, const struct space *s) {
    memset(p, 0, sizeof *p);
    hid_t f;
    int rc = h5_open_read(path, PRED_FORMAT, PRED_FORMAT_VERSION, &f);
    if (rc < 0) return rc;
    char hash[64], want[32], name[128] = "?";
    int enc = 0, in_dim = 0, bit_dim = 0, hidden = 0, layers = 0;
    space_hash_text(s, want);
    if ((rc = h5_attr_get_str(f, "space_hash", hash, sizeof hash)) < 0) goto done;
    if (strcmp(hash, want)) {
        h5_attr_get_str(f, "space_name", name, sizeof name);
        rc = apq_set_error(APQ_EMISMATCH,
                           "%s: predictor made for space '%s' (hash %s), not for '%s' (hash %s); "
                           "hint: rerun make to retrain it for this space",
                           path, name, hash, s->name, want);
        goto done;
    }
    if ((rc = get_int(f, path, "encoding_version", 0, 1L << 30, &enc)) < 0) goto done;
    if (enc != PRED_ENCODING_VERSION) {
        rc = apq_set_error(APQ_EMISMATCH,
                           "%s: predictor uses encoding version %d, this build uses %d; hint: "
                           "rerun make to retrain it",
                           path, enc, PRED_ENCODING_VERSION);
        goto done;
    }
    int fp_dim = encode_fp32_dim(s), q_dim = encode_bits_dim(s);
    if ((rc = get_int(f, path, "in_dim", fp_dim, fp_dim, &in_dim)) < 0 ||
        (rc = get_int(f, path, "bit_dim", 0, q_dim, &bit_dim)) < 0 ||
        (rc = get_int(f, path, "hidden", 1, PRED_MAX_HIDDEN, &hidden)) < 0 ||
        (rc = get_int(f, path, "layers", 1, PRED_MAX_LAYERS, &layers)) < 0)
        goto done;
    if (bit_dim != 0 && bit_dim != q_dim) {
        rc = apq_set_error(APQ_EFORMAT, "%s: bit_dim %d, expected 0 or %d for space '%s'", path,
                           bit_dim, q_dim, s->name);
        goto done;
    }
    if ((rc = predictor_init(p, in_dim, bit_dim, hidden, layers, 0)) < 0) goto done;
    p->space_hash = s->hash;
    struct tensor t[2 * PRED_MAX_LAYERS + 4];
    int nt = tensors(p, t);
    for (int i = 0; i < nt; i++) /* h5_read_f32 refuses NaN and infinities */
        if ((rc = h5_read_f32(f, t[i].name, t[i].rank, t[i].dims, t[i].data)) < 0) goto done;
    struct pred_metrics *m = &p->metrics;
    int64_t ntr, nte;
    if ((rc = h5_attr_get_f64(f, "rmse", &m->rmse)) < 0 ||
        (rc = h5_attr_get_f64(f, "kendall_tau", &m->tau)) < 0 ||
        (rc = h5_attr_get_i64(f, "n_train", &ntr)) < 0 ||
        (rc = h5_attr_get_i64(f, "n_test", &nte)) < 0)
        goto done;
    if (!isfinite(m->rmse) || !isfinite(m->tau) || ntr < 1 || nte < 0 || ntr > INT32_MAX ||
        nte > INT32_MAX) {
        rc = apq_set_error(APQ_EFORMAT,
                           "%s: attributes rmse, kendall_tau, n_train or n_test out of range; the "
                           "file is damaged, rerun make to rebuild it",
                           path);
        goto done;
    }
    m->n_train = (int)ntr;
    m->n_test = (int)nte;
    if (bit_dim && h5_attr_get_f64(f, "scratch_rmse", &m->scratch_rmse) == APQ_OK &&
        h5_attr_get_f64(f, "scratch_kendall_tau", &m->scratch_tau) == APQ_OK)
        m->has_scratch = 1;
done:
    h5_close(f);
    if (rc < 0) predictor_free(p);
    return rc;
}
