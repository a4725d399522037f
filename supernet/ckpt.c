/* ckpt.c — supernet.h5: one dataset per tensor in PyTorch order (docs/formats.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/h5.h"
#include "supernet.h"

/* mem -> PyTorch order (to_torch) or back. */
static void convert(const struct sn_tensor *t, const float *src, float *dst, int to_torch) {
    if (t->layout == SN_LAYOUT_PLAIN) {
        memcpy(dst, src, sizeof(float) * t->size);
    } else if (t->layout == SN_LAYOUT_DW_TAPMAJOR) { /* mem [kk][C], torch [C][1][k][k] */
        int C = t->dims[0], kk = t->dims[2] * t->dims[3];
        for (int c = 0; c < C; c++)
            for (int j = 0; j < kk; j++) {
                if (to_torch)
                    dst[c * kk + j] = src[j * C + c];
                else
                    dst[j * C + c] = src[c * kk + j];
            }
    } else { /* OHWI mem [O][k][k][I], torch OIHW */
        int O = t->dims[0], I = t->dims[1], k = t->dims[2];
        for (int o = 0; o < O; o++)
            for (int i = 0; i < I; i++)
                for (int h = 0; h < k; h++)
                    for (int w = 0; w < k; w++) {
                        size_t m = (((size_t)o * k + h) * k + w) * I + i;
                        size_t p = (((size_t)o * I + i) * k + h) * k + w;
                        if (to_torch)
                            dst[p] = src[m];
                        else
                            dst[m] = src[p];
                    }
    }
}

static const float *tensor_data(const struct supernet *sn, const struct sn_tensor *t) {
    return (t->is_buffer ? sn->bufs : sn->params) + t->offset;
}

int supernet_save(const struct supernet *sn, const char *path, uint64_t seed, const char *profile,
                  const struct sn_train_report *rep) {
    hid_t f;
    int rc = h5_create(path, &f);
    if (rc < 0) return rc;
    char hash[32];
    space_hash_text(&sn->s, hash);
    rc = h5_write_provenance(f, "supernet", SN_FORMAT_VERSION, seed, profile);
    if (rc == 0) rc = h5_attr_set_str(f, "space", sn->s.text);
    if (rc == 0) rc = h5_attr_set_str(f, "space_hash", hash);
    if (rc == 0) rc = h5_attr_set_str(f, "space_name", sn->s.name);
    if (rc == 0 && rep) {
        rc = h5_attr_set_f64(f, "acc_val_largest", rep->acc_largest);
        if (rc == 0) rc = h5_attr_set_f64(f, "acc_val_smallest", rep->acc_smallest);
        if (rc == 0) rc = h5_attr_set_f64(f, "train_seconds", rep->seconds);
        if (rc == 0) rc = h5_attr_set_i64(f, "train_steps", rep->steps);
    }
    float *buf = apq_falloc(sn->n_params > sn->n_bufs ? sn->n_params : sn->n_bufs);
    for (int i = 0; i < sn->n_tensors && rc == 0; i++) {
        const struct sn_tensor *t = &sn->tensors[i];
        hsize_t dims[4];
        for (int d = 0; d < t->rank; d++) dims[d] = (hsize_t)t->dims[d];
        convert(t, tensor_data(sn, t), buf, 1);
        rc = h5_write_f32(f, t->name, t->rank, dims, buf);
    }
    free(buf);
    if (rc < 0) {
        h5_abort(f, path);
        return rc;
    }
    return h5_commit(f, path);
}

int supernet_load_space(const char *path, struct space *s) {
    hid_t f;
    int rc = h5_open_read(path, "supernet", SN_FORMAT_VERSION, &f);
    if (rc < 0) return rc;
    char *text = NULL;
    rc = h5_attr_get_str_alloc(f, "space", &text);
    if (rc == 0) rc = space_parse(text, path, s);
    free(text);
    h5_close(f);
    return rc;
}

int supernet_load(struct supernet *sn, const char *path) {
    hid_t f;
    int rc = h5_open_read(path, "supernet", SN_FORMAT_VERSION, &f);
    if (rc < 0) return rc;
    char hash[64], want[32];
    space_hash_text(&sn->s, want);
    rc = h5_attr_get_str(f, "space_hash", hash, sizeof hash);
    if (rc == 0 && strcmp(hash, want))
        rc = apq_set_error(APQ_EMISMATCH,
                           "%s: trained for another search space (hash %s, expected %s); hint: "
                           "retrain with make, or pass the matching --space",
                           path, hash, want);
    float *buf = apq_falloc(sn->n_params > sn->n_bufs ? sn->n_params : sn->n_bufs);
    for (int i = 0; i < sn->n_tensors && rc == 0; i++) {
        const struct sn_tensor *t = &sn->tensors[i];
        hsize_t dims[4];
        for (int d = 0; d < t->rank; d++) dims[d] = (hsize_t)t->dims[d];
        rc = h5_read_f32(f, t->name, t->rank, dims, buf);
        if (rc == 0) convert(t, buf, (float *)tensor_data(sn, t), 0);
    }
    free(buf);
    h5_close(f);
    return rc;
}
