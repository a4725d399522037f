/* qmodel_io.c — model.h5, the integer model's file (docs/formats.md "model.h5"):
 * tensor and layer tables, packed weights (qint_pack), int32 biases and
 * multipliers, int8 shifts; read back with every value range checked. */
#include <stdlib.h>
#include <string.h>

#include "../util/h5.h"
#include "../util/util.h"
#include "qmodel.h"
#include "qmodel_internal.h"

#define T_COLS 7
static const char *t_cols[T_COLS] = {"h", "c", "bits", "is_signed", "zp", "lo", "hi"};
#define L_COLS 19
static const char *l_cols[L_COLS] = {
    "op",         "in",       "in2",      "out",         "cin",        "cout", "k",
    "stride",     "h_in",     "h_out",    "w_bits",      "lo",         "hi",   "pool_m0",
    "pool_shift", "add_m0_a", "add_m0_b", "add_shift_a", "add_shift_b"};

static void tensor_row(const struct qmodel_tensor *t, int32_t *v) {
    int32_t r[T_COLS] = {t->h, t->c, t->bits, t->is_signed, t->zp, t->lo, t->hi};
    memcpy(v, r, sizeof r);
}

static void layer_row(const struct qmodel_layer *l, int32_t *v) {
    int32_t r[L_COLS] = {l->op,       l->in,       l->in2,         l->out,        l->cin,
                         l->cout,     l->k,        l->stride,      l->h_in,       l->h_out,
                         l->w_bits,   l->lo,       l->hi,          l->pool_m0,    l->pool_shift,
                         l->add.m0_a, l->add.m0_b, l->add.shift_a, l->add.shift_b};
    memcpy(v, r, sizeof r);
}

/* Columns [cols][n] of a table from row writers. */
static int write_table(hid_t f, const char *group, const char **cols, int n_cols, int n,
                       const int32_t *rows) {
    int32_t *col = apq_xmalloc(sizeof(int32_t) * (n ? n : 1));
    int rc = APQ_OK;
    for (int c = 0; c < n_cols && rc == 0; c++) {
        char name[96];
        snprintf(name, sizeof name, "%s/%s", group, cols[c]);
        for (int i = 0; i < n; i++) col[i] = rows[(size_t)i * n_cols + c];
        hsize_t d = (hsize_t)n;
        rc = h5_write_i32(f, name, 1, &d, col);
    }
    free(col);
    return rc;
}

static int write_layer_arrays(hid_t f, int j, const struct qmodel_layer *l) {
    char name[96];
    hsize_t d = (hsize_t)qint_packed_bytes(l->n_w, l->w_bits), dc = (hsize_t)l->cout;
    uint8_t *packed = apq_xmalloc(d ? d : 1);
    int rc = qint_pack(packed, l->w, l->n_w, l->w_bits) == QINT_OK ? APQ_OK : APQ_EFORMAT;
    snprintf(name, sizeof name, "layer/%d/weight", j);
    if (rc == 0) rc = h5_write_u8(f, name, 1, &d, packed);
    free(packed);
    snprintf(name, sizeof name, "layer/%d/bias", j);
    if (rc == 0) rc = h5_write_i32(f, name, 1, &dc, l->bias);
    if (l->m0 && rc == 0) {
        int32_t *sh = apq_xmalloc(sizeof(int32_t) * l->cout);
        for (int o = 0; o < l->cout; o++) sh[o] = l->shift[o];
        snprintf(name, sizeof name, "layer/%d/m0", j);
        rc = h5_write_i32(f, name, 1, &dc, l->m0);
        snprintf(name, sizeof name, "layer/%d/shift", j);
        if (rc == 0) rc = h5_write_i32(f, name, 1, &dc, sh);
        free(sh);
    }
    return rc;
}

int qmodel_save(const struct qmodel *m, const char *path, uint64_t seed, const char *profile) {
    hid_t f;
    int rc = h5_create(path, &f);
    if (rc < 0) return rc;
    size_t flash, ram;
    qmodel_memory(m, &flash, &ram);
    int32_t *rows =
        apq_xmalloc(sizeof(int32_t) * L_COLS * (QMODEL_MAX_LAYERS + QMODEL_MAX_TENSORS));
    rc = h5_write_provenance(f, "qmodel", QMODEL_FORMAT_VERSION, seed, profile);
    if (rc == 0) rc = h5_attr_set_str(f, "arch", m->arch);
    if (rc == 0) rc = h5_attr_set_str(f, "space_hash", m->space_hash);
    if (rc == 0) rc = h5_attr_set_str(f, "rounding", "half away from zero (docs/integer.md)");
    if (rc == 0) rc = h5_attr_set_i64(f, "in_size", m->in_size);
    if (rc == 0) rc = h5_attr_set_i64(f, "in_ch", m->in_ch);
    if (rc == 0) rc = h5_attr_set_i64(f, "res", m->res);
    if (rc == 0) rc = h5_attr_set_i64(f, "n_classes", m->n_classes);
    if (rc == 0) rc = h5_attr_set_f64(f, "logit_scale", m->logit_scale);
    if (rc == 0) rc = h5_attr_set_i64(f, "flash_bytes", (int64_t)flash);
    if (rc == 0) rc = h5_attr_set_i64(f, "ram_bytes", (int64_t)ram);
    if (rc == 0) rc = h5_attr_set_i64(f, "arena_bytes", (int64_t)m->arena_bytes);
    if (rc == 0) rc = h5_attr_set_i64(f, "scratch_bytes", (int64_t)m->scratch_bytes);
    for (int t = 0; t < m->n_tensors; t++) tensor_row(&m->t[t], rows + (size_t)t * T_COLS);
    if (rc == 0) rc = write_table(f, "tensors", t_cols, T_COLS, m->n_tensors, rows);
    double scale[QMODEL_MAX_TENSORS];
    for (int t = 0; t < m->n_tensors; t++) scale[t] = m->t[t].scale;
    hsize_t dt = (hsize_t)m->n_tensors;
    if (rc == 0) rc = h5_write_f64(f, "tensors/scale", 1, &dt, scale);
    const char *names[QMODEL_MAX_LAYERS];
    for (int j = 0; j < m->n_layers; j++) {
        layer_row(&m->l[j], rows + (size_t)j * L_COLS);
        names[j] = m->l[j].name;
    }
    if (rc == 0) rc = write_table(f, "layers", l_cols, L_COLS, m->n_layers, rows);
    if (rc == 0) rc = h5_write_strings(f, "layers/name", names, (size_t)m->n_layers);
    for (int j = 0; j < m->n_layers && rc == 0; j++)
        if (m->l[j].w) rc = write_layer_arrays(f, j, &m->l[j]);
    free(rows);
    if (rc < 0) {
        h5_abort(f, path);
        return rc;
    }
    return h5_commit(f, path);
}

// ---- reading -------------------------------------------------------------------------

static int bad(const char *path, int j, const char *what) {
    return apq_set_error(APQ_EFORMAT,
                         "%s: layer %d: %s; the file is damaged or foreign, export it "
                         "again (make export)",
                         path, j, what);
}

static int read_table(hid_t f, const char *group, const char **cols, int n_cols, int n,
                      int32_t *rows) {
    int32_t *col = apq_xmalloc(sizeof(int32_t) * (n ? n : 1));
    int rc = APQ_OK;
    for (int c = 0; c < n_cols && rc == 0; c++) {
        char name[96];
        snprintf(name, sizeof name, "%s/%s", group, cols[c]);
        hsize_t d = (hsize_t)n;
        rc = h5_read_i32(f, name, 1, &d, col);
        for (int i = 0; i < n && rc == 0; i++) rows[(size_t)i * n_cols + c] = col[i];
    }
    free(col);
    return rc;
}

static int read_layer_arrays(hid_t f, const char *path, int j, struct qmodel_layer *l) {
    char name[96];
    hsize_t d = (hsize_t)qint_packed_bytes(l->n_w, l->w_bits), dc = (hsize_t)l->cout;
    uint8_t *packed = apq_xmalloc(d ? d : 1);
    l->w = apq_xmalloc(l->n_w ? l->n_w : 1);
    l->bias = apq_xmalloc(sizeof(int32_t) * l->cout);
    snprintf(name, sizeof name, "layer/%d/weight", j);
    int rc = h5_read_u8(f, name, 1, &d, packed);
    if (rc == 0 && qint_unpack(l->w, packed, l->n_w, l->w_bits) != QINT_OK)
        rc = bad(path, j, "weights do not unpack");
    free(packed);
    snprintf(name, sizeof name, "layer/%d/bias", j);
    if (rc == 0) rc = h5_read_i32(f, name, 1, &dc, l->bias);
    for (int o = 0; o < l->cout && rc == 0; o++)
        if (l->bias[o] > QINT_MAX_BIAS || l->bias[o] < -QINT_MAX_BIAS)
            rc = bad(path, j, "a bias is out of range");
    if (l->op == QM_LINEAR || rc < 0) return rc;
    int32_t *sh = apq_xmalloc(sizeof(int32_t) * l->cout);
    l->m0 = apq_xmalloc(sizeof(int32_t) * l->cout);
    l->shift = apq_xmalloc((size_t)l->cout);
    snprintf(name, sizeof name, "layer/%d/m0", j);
    rc = h5_read_i32(f, name, 1, &dc, l->m0);
    snprintf(name, sizeof name, "layer/%d/shift", j);
    if (rc == 0) rc = h5_read_i32(f, name, 1, &dc, sh);
    for (int o = 0; o < l->cout && rc == 0; o++) {
        if (sh[o] < QINT_SHIFT_MIN || sh[o] > QINT_SHIFT_MAX)
            rc = bad(path, j, "a shift is out of range");
        l->shift[o] = (int8_t)sh[o];
    }
    free(sh);
    return rc;
}

static int load_tables(hid_t f, const char *path, struct qmodel *m) {
    int64_t v[4];
    int rc = APQ_OK;
    const char *attrs[4] = {"in_size", "in_ch", "res", "n_classes"};
    for (int i = 0; i < 4 && rc == 0; i++) rc = h5_attr_get_i64(f, attrs[i], &v[i]);
    if (rc == 0) rc = h5_attr_get_str(f, "arch", m->arch, sizeof m->arch);
    if (rc == 0) rc = h5_attr_get_str(f, "space_hash", m->space_hash, sizeof m->space_hash);
    if (rc == 0) rc = h5_attr_get_f64(f, "logit_scale", &m->logit_scale);
    if (rc < 0) return rc;
    m->in_size = (int)v[0], m->in_ch = (int)v[1], m->res = (int)v[2], m->n_classes = (int)v[3];
    int rank;
    hsize_t dt[4], dl[4];
    if ((rc = h5_shape(f, "tensors/h", &rank, dt)) < 0 ||
        (rc = h5_shape(f, "layers/op", &rank, dl)) < 0)
        return rc;
    if (dt[0] < 1 || dt[0] > QMODEL_MAX_TENSORS || dl[0] < 1 || dl[0] > QMODEL_MAX_LAYERS)
        return bad(path, -1, "tensor or layer count out of range");
    m->n_tensors = (int)dt[0];
    m->n_layers = (int)dl[0];
    int32_t *rows = apq_xmalloc(sizeof(int32_t) * L_COLS * QMODEL_MAX_LAYERS);
    double scale[QMODEL_MAX_TENSORS];
    rc = read_table(f, "tensors", t_cols, T_COLS, m->n_tensors, rows);
    if (rc == 0) rc = h5_read_f64(f, "tensors/scale", 1, dt, scale);
    for (int t = 0; t < m->n_tensors && rc == 0; t++) {
        const int32_t *r = rows + (size_t)t * T_COLS;
        struct qmodel_tensor *q = &m->t[t];
        *q = (struct qmodel_tensor){r[0], r[1], r[2], r[3], r[4], r[5], r[6], scale[t], 0};
    }
    if (rc == 0) rc = read_table(f, "layers", l_cols, L_COLS, m->n_layers, rows);
    char **names = NULL;
    size_t n_names = 0;
    if (rc == 0 && (rc = h5_read_strings(f, "layers/name", &names, &n_names)) == 0 &&
        n_names != (size_t)m->n_layers)
        rc = bad(path, -1, "layers/name has another length than layers/op");
    for (int j = 0; j < m->n_layers && rc == 0; j++) {
        const int32_t *r = rows + (size_t)j * L_COLS;
        struct qmodel_layer *l = &m->l[j];
        l->op = (enum qmodel_op)r[0];
        l->in = r[1], l->in2 = r[2], l->out = r[3], l->cin = r[4], l->cout = r[5], l->k = r[6];
        l->stride = r[7], l->h_in = r[8], l->h_out = r[9], l->w_bits = r[10], l->lo = r[11];
        l->hi = r[12], l->pool_m0 = r[13], l->pool_shift = r[14];
        l->add = (struct qint_add){0, 0, r[15], r[16], r[17], r[18], 0, r[11], r[12]};
        snprintf(l->name, sizeof l->name, "%s", names[j]);
    }
    if (names) h5_free_strings(names, n_names);
    free(rows);
    return rc;
}

int qmodel_load(const char *path, struct qmodel *out) {
    memset(out, 0, sizeof *out);
    hid_t f;
    int rc = h5_open_read(path, "qmodel", QMODEL_FORMAT_VERSION, &f);
    if (rc < 0) return rc;
    rc = load_tables(f, path, out);
    if (rc == 0) rc = qmodel_check(out, path);
    for (int j = 0; j < out->n_layers && rc == 0; j++) {
        struct qmodel_layer *l = &out->l[j];
        if (l->op == QM_ADD) {
            l->add.zp_a = out->t[l->in].zp, l->add.zp_b = out->t[l->in2].zp;
            l->add.zp = out->t[l->out].zp;
        }
        if (l->op == QM_CONV || l->op == QM_DW || l->op == QM_PW || l->op == QM_LINEAR)
            rc = read_layer_arrays(f, path, j, l);
    }
    h5_close(f);
    if (rc == 0) {
        qmodel_plan(out);
        rc = qmodel_prepare(out);
    }
    if (rc < 0) qmodel_free(out);
    return rc;
}
