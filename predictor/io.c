/* io.c — predictor files (predictor-*.h5, an ensemble) and the encode-and-predict convenience. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/h5.h"
#include "predictor.h"

#define PRED_FORMAT         "predictor"
#define PRED_FORMAT_VERSION 2

// ---- save ----------------------------------------------------------------------

/* Every weight tensor of member `member`: dataset name, rank, dims, data. */
struct tensor {
    char name[48];
    int rank;
    hsize_t dims[2];
    float *data;
};

static int tensors(const struct predictor *p, int member, struct tensor *t) {
    int n = 0;
    hsize_t H = (hsize_t)p->hidden;
    for (int l = 0; l < p->n_layers; l++) {
        t[n] = (struct tensor){"", 2, {H, l ? H : (hsize_t)p->in_dim}, p->v.w[l]};
        snprintf(t[n++].name, sizeof t->name, "members/%d/layers/%d/weight", member, l);
        t[n] = (struct tensor){"", 1, {H, 0}, p->v.b[l]};
        snprintf(t[n++].name, sizeof t->name, "members/%d/layers/%d/bias", member, l);
    }
    if (p->bit_dim) {
        t[n] = (struct tensor){"", 2, {H, (hsize_t)p->bit_dim}, p->v.wq};
        snprintf(t[n++].name, sizeof t->name, "members/%d/bits/weight", member);
        t[n] = (struct tensor){"", 1, {H, 0}, p->v.bq};
        snprintf(t[n++].name, sizeof t->name, "members/%d/bits/bias", member);
    }
    t[n] = (struct tensor){"", 2, {1, H}, p->v.wo};
    snprintf(t[n++].name, sizeof t->name, "members/%d/regressor/weight", member);
    t[n] = (struct tensor){"", 1, {1, 0}, p->v.bo};
    snprintf(t[n++].name, sizeof t->name, "members/%d/regressor/bias", member);
    return n;
}

#define MAX_TENSORS (2 * PRED_MAX_LAYERS + 4)

static int write_attrs(hid_t f, const struct pred_ensemble *e, const struct space *s) {
    const struct predictor *p = &e->m[0];
    const struct pred_metrics *m = &e->metrics;
    const struct pred_provenance *v = &e->prov;
    char hash[32], shash[32];
    space_hash_text(s, hash);
    snprintf(shash, sizeof shash, "%016llx", (unsigned long long)v->samples_hash);
    int rc;
    if ((rc = h5_attr_set_str(f, "space_hash", hash)) < 0 ||
        (rc = h5_attr_set_str(f, "space_name", s->name)) < 0 ||
        (rc = h5_attr_set_i64(f, "encoding_version", PRED_ENCODING_VERSION)) < 0 ||
        (rc = h5_attr_set_i64(f, "quantized", p->bit_dim > 0)) < 0 ||
        (rc = h5_attr_set_i64(f, "in_dim", p->in_dim)) < 0 ||
        (rc = h5_attr_set_i64(f, "bit_dim", p->bit_dim)) < 0 ||
        (rc = h5_attr_set_i64(f, "hidden", p->hidden)) < 0 ||
        (rc = h5_attr_set_i64(f, "layers", p->n_layers)) < 0 ||
        (rc = h5_attr_set_i64(f, "ensemble", e->k)) < 0 ||
        (rc = h5_attr_set_str(f, "samples", v->samples)) < 0 ||
        (rc = h5_attr_set_str(f, "samples_hash", shash)) < 0 ||
        (rc = h5_attr_set_i64(f, "n_train", v->n_train)) < 0 ||
        (rc = h5_attr_set_i64(f, "n_val", v->n_val)) < 0 ||
        (rc = h5_attr_set_i64(f, "n_held_out", v->n_held_out)) < 0 ||
        (rc = h5_attr_set_f64(f, "rmse", m->rmse)) < 0 ||
        (rc = h5_attr_set_f64(f, "kendall_tau", m->tau)) < 0 ||
        (rc = h5_attr_set_f64(f, "member_rmse", m->member_rmse)) < 0 ||
        (rc = h5_attr_set_f64(f, "member_kendall_tau", m->member_tau)) < 0)
        return rc;
    if (m->has_scratch && ((rc = h5_attr_set_f64(f, "scratch_rmse", m->scratch_rmse)) < 0 ||
                           (rc = h5_attr_set_f64(f, "scratch_kendall_tau", m->scratch_tau)) < 0))
        return rc;
    return APQ_OK;
}

int pred_ensemble_save(const struct pred_ensemble *e, const struct space *s, const char *path,
                       uint64_t seed) {
    APQ_ASSERT(e->k >= 1 && e->k <= PRED_MAX_MEMBERS);
    for (int i = 0; i < e->k; i++) {
        APQ_ASSERT(e->m[i].in_dim == encode_fp32_dim(s));
        APQ_ASSERT(e->m[i].bit_dim == e->m[0].bit_dim && e->m[i].hidden == e->m[0].hidden &&
                   e->m[i].n_layers == e->m[0].n_layers);
        APQ_ASSERT(e->m[i].bit_dim == 0 || e->m[i].bit_dim == encode_bits_dim(s));
    }
    hid_t f;
    int rc = h5_create(path, &f);
    if (rc < 0) return rc;
    if ((rc = h5_write_provenance(f, PRED_FORMAT, PRED_FORMAT_VERSION, seed, e->prov.profile)) <
            0 ||
        (rc = write_attrs(f, e, s)) < 0)
        goto fail;
    for (int i = 0; i < e->k; i++) {
        struct tensor t[MAX_TENSORS];
        int nt = tensors(&e->m[i], i, t);
        for (int j = 0; j < nt; j++)
            if ((rc = h5_write_f32(f, t[j].name, t[j].rank, t[j].dims, t[j].data)) < 0) goto fail;
    }
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

/* The space and encoding checks: the refusals of PREDICTOR= (docs/formats.md §9). */
static int check_space(hid_t f, const char *path, const struct space *s) {
    char hash[64], want[32], name[128] = "?";
    int enc = 0, rc;
    space_hash_text(s, want);
    if ((rc = h5_attr_get_str(f, "space_hash", hash, sizeof hash)) < 0) return rc;
    if (strcmp(hash, want)) {
        h5_attr_get_str(f, "space_name", name, sizeof name);
        return apq_set_error(APQ_EMISMATCH,
                             "%s: predictor trained for space '%s' (hash %s), not for '%s' (hash "
                             "%s); hint: give a predictor trained for '%s', or drop PREDICTOR= "
                             "and run make to train one",
                             path, name, hash, s->name, want, s->name);
    }
    if ((rc = get_int(f, path, "encoding_version", 0, 1L << 30, &enc)) < 0) return rc;
    if (enc != PRED_ENCODING_VERSION)
        return apq_set_error(APQ_EMISMATCH,
                             "%s: predictor uses encoding version %d, this build uses %d; hint: "
                             "drop PREDICTOR= and run make to retrain it",
                             path, enc, PRED_ENCODING_VERSION);
    return APQ_OK;
}

static int read_attrs(hid_t f, const char *path, struct pred_ensemble *e) {
    struct pred_metrics *m = &e->metrics;
    struct pred_provenance *v = &e->prov;
    char shash[64];
    int rc;
    if ((rc = h5_attr_get_f64(f, "rmse", &m->rmse)) < 0 ||
        (rc = h5_attr_get_f64(f, "kendall_tau", &m->tau)) < 0 ||
        (rc = h5_attr_get_f64(f, "member_rmse", &m->member_rmse)) < 0 ||
        (rc = h5_attr_get_f64(f, "member_kendall_tau", &m->member_tau)) < 0 ||
        (rc = get_int(f, path, "n_train", 2, INT32_MAX, &v->n_train)) < 0 ||
        (rc = get_int(f, path, "n_val", 0, v->n_train - 2, &v->n_val)) < 0 ||
        (rc = get_int(f, path, "n_held_out", 1, INT32_MAX, &v->n_held_out)) < 0 ||
        (rc = h5_attr_get_str(f, "profile", v->profile, sizeof v->profile)) < 0 ||
        (rc = h5_attr_get_str(f, "samples", v->samples, sizeof v->samples)) < 0 ||
        (rc = h5_attr_get_str(f, "samples_hash", shash, sizeof shash)) < 0)
        return rc;
    char *end;
    v->samples_hash = strtoull(shash, &end, 16);
    if (strlen(shash) != 16 || *end || !isfinite(m->rmse) || !isfinite(m->tau) ||
        !isfinite(m->member_rmse) || !isfinite(m->member_tau))
        return apq_set_error(APQ_EFORMAT,
                             "%s: attributes samples_hash, rmse or kendall_tau out of range; the "
                             "file is damaged, rerun make to rebuild it",
                             path);
    if (e->m[0].bit_dim && h5_attr_get_f64(f, "scratch_rmse", &m->scratch_rmse) == APQ_OK &&
        h5_attr_get_f64(f, "scratch_kendall_tau", &m->scratch_tau) == APQ_OK)
        m->has_scratch = 1;
    return APQ_OK;
}

int pred_ensemble_load(struct pred_ensemble *e, const char *path, const struct space *s) {
    memset(e, 0, sizeof *e);
    hid_t f;
    int rc = h5_open_read(path, PRED_FORMAT, PRED_FORMAT_VERSION, &f);
    if (rc < 0) return rc;
    int in_dim = 0, bit_dim = 0, hidden = 0, layers = 0, k = 0;
    if ((rc = check_space(f, path, s)) < 0) goto done;
    int fp_dim = encode_fp32_dim(s), q_dim = encode_bits_dim(s);
    if ((rc = get_int(f, path, "in_dim", fp_dim, fp_dim, &in_dim)) < 0 ||
        (rc = get_int(f, path, "bit_dim", 0, q_dim, &bit_dim)) < 0 ||
        (rc = get_int(f, path, "hidden", 1, PRED_MAX_HIDDEN, &hidden)) < 0 ||
        (rc = get_int(f, path, "layers", 1, PRED_MAX_LAYERS, &layers)) < 0 ||
        (rc = get_int(f, path, "ensemble", 1, PRED_MAX_MEMBERS, &k)) < 0)
        goto done;
    if (bit_dim != 0 && bit_dim != q_dim) {
        rc = apq_set_error(APQ_EFORMAT, "%s: bit_dim %d, expected 0 or %d for space '%s'", path,
                           bit_dim, q_dim, s->name);
        goto done;
    }
    if ((rc = pred_ensemble_init(e, k, in_dim, bit_dim, hidden, layers, 0)) < 0) goto done;
    for (int i = 0; i < k; i++) {
        e->m[i].space_hash = s->hash;
        struct tensor t[MAX_TENSORS];
        int nt = tensors(&e->m[i], i, t);
        for (int j = 0; j < nt; j++) /* h5_read_f32 refuses NaN and infinities */
            if ((rc = h5_read_f32(f, t[j].name, t[j].rank, t[j].dims, t[j].data)) < 0) goto done;
    }
    rc = read_attrs(f, path, e);
done:
    h5_close(f);
    if (rc < 0) pred_ensemble_free(e);
    return rc;
}

int predictor_load(struct predictor *p, const char *path, const struct space *s) {
    struct pred_ensemble e;
    memset(p, 0, sizeof *p);
    int rc = pred_ensemble_load(&e, path, s);
    if (rc < 0) return rc;
    *p = e.m[0]; /* takes member 0's parameter block */
    memset(&e.m[0], 0, sizeof e.m[0]);
    pred_ensemble_free(&e);
    return APQ_OK;
}
