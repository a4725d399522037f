/* subnet_io.c — a subnet's HDF5 form (docs/formats.md "A subnet's weights"):
 * a table of layers (one dataset per column) and one dataset per tensor in
 * PyTorch order, below a group prefix, through util/h5.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "subnet_internal.h"

#define PATH_MAX_ 512

/* "prefix/name", or name when prefix is "". */
static const char *join(char *buf, const char *prefix, const char *name) {
    snprintf(buf, PATH_MAX_, "%s%s%s", prefix, prefix[0] ? "/" : "", name);
    return buf;
}

// ---- tensors in PyTorch order ---------------------------------------------------------

/* The PyTorch shape of layer l's weight: conv OIHW, dw [C,1,k,k], pw [O,I,1,1], linear [O,I]. */
static int torch_shape(const struct subnet_layer *l, hsize_t d[4]) {
    switch (l->kind) {
    case SUBNET_CONV:
        d[0] = l->cout, d[1] = l->cin, d[2] = d[3] = l->k;
        return 4;
    case SUBNET_DW:
        d[0] = l->cout, d[1] = 1, d[2] = d[3] = l->k;
        return 4;
    case SUBNET_PW:
        d[0] = l->cout, d[1] = l->cin, d[2] = d[3] = 1;
        return 4;
    case SUBNET_LINEAR:
        d[0] = l->cout, d[1] = l->cin;
        return 2;
    case SUBNET_POOL:
        break;
    }
    return 0;
}

/* Layer l's weights, memory layout -> PyTorch order (to_torch) or back. */
static void convert(const struct subnet_layer *l, const float *src, float *dst, int to_torch) {
    const int O = l->cout, I = l->cin, k = l->k, kk = k * k;
    if (l->kind == SUBNET_DW) { /* mem [kk][C] */
        for (int c = 0; c < O; c++)
            for (int j = 0; j < kk; j++) {
                if (to_torch)
                    dst[(size_t)c * kk + j] = src[(size_t)j * O + c];
                else
                    dst[(size_t)j * O + c] = src[(size_t)c * kk + j];
            }
    } else if (l->kind == SUBNET_CONV) { /* mem OHWI */
        for (int o = 0; o < O; o++)
            for (int i = 0; i < I; i++)
                for (int t = 0; t < kk; t++) {
                    size_t m = ((size_t)o * kk + t) * I + i, p = ((size_t)o * I + i) * kk + t;
                    if (to_torch)
                        dst[p] = src[m];
                    else
                        dst[m] = src[p];
                }
    } else {
        memcpy(dst, src, sizeof(float) * O * I);
    }
}

// ---- writing ---------------------------------------------------------------------

/* The layer table's integer columns, in one order for writing and reading. */
#define N_ICOLS 14
static const char *icol_name[N_ICOLS] = {"kind", "role",   "block",  "cin",     "cout",
                                         "k",    "stride", "h_in",   "h_out",   "relu6",
                                         "skip", "w_bits", "a_bits", "a_signed"};

_Static_assert(sizeof(enum subnet_kind) == sizeof(int), "the kind column is read through an int");
static int *icol_field(struct subnet_layer *l, int c) {
    int *f[N_ICOLS] = {(int *)&l->kind, &l->role,   &l->block,  &l->cin,     &l->cout,
                       &l->k,           &l->stride, &l->h_in,   &l->h_out,   &l->relu6,
                       &l->skip,        &l->w_bits, &l->a_bits, &l->a_signed};
    return f[c];
}

static int write_table(hid_t f, const char *prefix, const struct subnet *net) {
    char p[PATH_MAX_], n[64];
    const hsize_t L = (hsize_t)net->n_layers;
    int32_t col[SUBNET_MAX_LAYERS];
    float fcol[SUBNET_MAX_LAYERS];
    int rc = APQ_OK;
    for (int c = 0; c < N_ICOLS && rc == 0; c++) {
        for (int i = 0; i < net->n_layers; i++)
            col[i] = *icol_field((struct subnet_layer *)&net->layer[i], c);
        snprintf(n, sizeof n, "layers/%s", icol_name[c]);
        rc = h5_write_i32(f, join(p, prefix, n), 1, &L, col);
    }
    for (int c = 0; c < 2 && rc == 0; c++) {
        for (int i = 0; i < net->n_layers; i++)
            fcol[i] = c ? net->layer[i].a_range : net->layer[i].w_range;
        rc = h5_write_f32(f, join(p, prefix, c ? "layers/a_range" : "layers/w_range"), 1, &L, fcol);
    }
    const char *names[SUBNET_MAX_LAYERS];
    for (int i = 0; i < net->n_layers; i++) names[i] = net->layer[i].name;
    if (rc == 0) rc = h5_write_strings(f, join(p, prefix, "layers/name"), names, L);
    return rc;
}

static int write_header(hid_t f, const char *prefix, const struct subnet *net) {
    char p[PATH_MAX_];
    const hsize_t one = 1;
    const char *arch = net->arch, *hash = net->space_hash;
    int rc = h5_write_strings(f, join(p, prefix, "arch"), &arch, 1);
    if (rc == 0) rc = h5_write_strings(f, join(p, prefix, "space_hash"), &hash, 1);
    const char *in[4] = {"in_size", "in_ch", "res", "n_classes"};
    const int32_t iv[4] = {net->in_size, net->in_ch, net->res, net->n_classes};
    for (int j = 0; j < 4 && rc == 0; j++)
        rc = h5_write_i32(f, join(p, prefix, in[j]), 1, &one, &iv[j]);
    const char *fn[3] = {"pixel_mean", "pixel_std", "bn_eps"};
    const float fv[3] = {net->pixel_mean, net->pixel_std, net->bn_eps};
    for (int j = 0; j < 3 && rc == 0; j++)
        rc = h5_write_f32(f, join(p, prefix, fn[j]), 1, &one, &fv[j]);
    return rc;
}

/* Layer l's tensors: <name>/weight, <name>/bias (linear), <name>/bn/... */
static int write_tensors(hid_t f, const char *prefix, const struct subnet_layer *l, float *buf) {
    char p[PATH_MAX_], n[SUBNET_NAME_MAX + 32];
    hsize_t d[4], c = (hsize_t)l->cout;
    int rank = torch_shape(l, d);
    if (!rank) return APQ_OK;
    convert(l, l->w, buf, 1);
    snprintf(n, sizeof n, "%s/weight", l->name);
    int rc = h5_write_f32(f, join(p, prefix, n), rank, d, buf);
    if (l->bias && rc == 0) {
        snprintf(n, sizeof n, "%s/bias", l->name);
        rc = h5_write_f32(f, join(p, prefix, n), 1, &c, l->bias);
    }
    const char *bn[4] = {"weight", "bias", "running_mean", "running_var"};
    const float *v[4] = {l->gamma, l->beta, l->mean, l->var};
    for (int j = 0; j < 4 && l->gamma && rc == 0; j++) {
        snprintf(n, sizeof n, "%s/bn/%s", l->name, bn[j]);
        rc = h5_write_f32(f, join(p, prefix, n), 1, &c, v[j]);
    }
    return rc;
}

int subnet_write(hid_t f, const char *prefix, const struct subnet *net) {
    APQ_ASSERT(prefix && subnet_check(net, "subnet_write") == APQ_OK);
    int rc = h5_attr_set_i64(f, "subnet_format_version", SUBNET_FORMAT_VERSION);
    if (rc == 0) rc = write_header(f, prefix, net);
    if (rc == 0) rc = write_table(f, prefix, net);
    float *buf = apq_falloc(net->n_data ? net->n_data : 1);
    for (int i = 0; i < net->n_layers && rc == 0; i++)
        rc = write_tensors(f, prefix, &net->layer[i], buf);
    free(buf);
    return rc;
}

int subnet_save(const struct subnet *net, const char *path, uint64_t seed, const char *profile) {
    hid_t f;
    int rc = h5_create(path, &f);
    if (rc < 0) return rc;
    rc = h5_write_provenance(f, "subnet", SUBNET_FORMAT_VERSION, seed, profile);
    if (rc == 0) rc = subnet_write(f, "", net);
    if (rc < 0) {
        h5_abort(f, path);
        return rc;
    }
    return h5_commit(f, path);
}

// ---- reading -----------------------------------------------------------------------

/* One string of a [1] string dataset into buf (size bytes). */
static int read_string(hid_t f, const char *name, char *buf, size_t size) {
    char **s = NULL;
    size_t n = 0;
    int rc = h5_read_strings(f, name, &s, &n);
    if (rc < 0) return rc;
    if (n != 1 || strlen(s[0]) >= size)
        rc = apq_set_error(APQ_EFORMAT, "%s: dataset '%s' must hold one string shorter than %zu",
                           h5_filename(f), name, size);
    else
        snprintf(buf, size, "%s", s[0]);
    h5_free_strings(s, n);
    return rc;
}

static int read_header(hid_t f, const char *prefix, struct subnet *net) {
    char p[PATH_MAX_];
    const hsize_t one = 1;
    int rc = read_string(f, join(p, prefix, "arch"), net->arch, sizeof net->arch);
    if (rc == 0) rc = read_string(f, join(p, prefix, "space_hash"), net->space_hash, 17);
    const char *in[4] = {"in_size", "in_ch", "res", "n_classes"};
    int *iv[4] = {&net->in_size, &net->in_ch, &net->res, &net->n_classes};
    for (int j = 0; j < 4 && rc == 0; j++) {
        int32_t v = 0;
        rc = h5_read_i32(f, join(p, prefix, in[j]), 1, &one, &v);
        *iv[j] = v;
    }
    const char *fn[3] = {"pixel_mean", "pixel_std", "bn_eps"};
    float *fv[3] = {&net->pixel_mean, &net->pixel_std, &net->bn_eps};
    for (int j = 0; j < 3 && rc == 0; j++)
        rc = h5_read_f32(f, join(p, prefix, fn[j]), 1, &one, fv[j]);
    return rc;
}

static int read_table(hid_t f, const char *prefix, struct subnet *net) {
    char p[PATH_MAX_], n[64];
    int rank = 0;
    hsize_t d[4] = {0};
    int rc = h5_shape(f, join(p, prefix, "layers/kind"), &rank, d);
    if (rc < 0) return rc;
    if (rank != 1 || d[0] < 2 || d[0] > SUBNET_MAX_LAYERS)
        return apq_set_error(APQ_EFORMAT, "%s: dataset '%s' must list 2 to %d layers",
                             h5_filename(f), p, SUBNET_MAX_LAYERS);
    net->n_layers = (int)d[0];
    int32_t col[SUBNET_MAX_LAYERS];
    float fcol[SUBNET_MAX_LAYERS];
    for (int c = 0; c < N_ICOLS && rc == 0; c++) {
        snprintf(n, sizeof n, "layers/%s", icol_name[c]);
        rc = h5_read_i32(f, join(p, prefix, n), 1, d, col);
        for (int i = 0; i < net->n_layers && rc == 0; i++) *icol_field(&net->layer[i], c) = col[i];
    }
    for (int c = 0; c < 2 && rc == 0; c++) {
        rc = h5_read_f32(f, join(p, prefix, c ? "layers/a_range" : "layers/w_range"), 1, d, fcol);
        for (int i = 0; i < net->n_layers && rc == 0; i++)
            *(c ? &net->layer[i].a_range : &net->layer[i].w_range) = fcol[i];
    }
    char **names = NULL;
    size_t nn = 0;
    if (rc == 0) rc = h5_read_strings(f, join(p, prefix, "layers/name"), &names, &nn);
    if (rc < 0) return rc;
    for (size_t i = 0; i < nn && rc == 0; i++) {
        if (nn != d[0] || !names[i][0] || names[i][0] == '/' || strlen(names[i]) >= SUBNET_NAME_MAX)
            rc = apq_set_error(APQ_EFORMAT,
                               "%s: dataset '%s': %zu names for %d layers, or a bad name",
                               h5_filename(f), p, nn, net->n_layers);
        else
            snprintf(net->layer[i].name, SUBNET_NAME_MAX, "%s", names[i]);
    }
    h5_free_strings(names, nn);
    return rc;
}

static int read_tensors(hid_t f, const char *prefix, struct subnet_layer *l, float *buf) {
    char p[PATH_MAX_], n[SUBNET_NAME_MAX + 32];
    hsize_t d[4], c = (hsize_t)l->cout;
    int rank = torch_shape(l, d);
    if (!rank) return APQ_OK;
    snprintf(n, sizeof n, "%s/weight", l->name);
    int rc = h5_read_f32(f, join(p, prefix, n), rank, d, buf);
    if (rc == 0) convert(l, buf, l->w, 0);
    if (l->bias && rc == 0) {
        snprintf(n, sizeof n, "%s/bias", l->name);
        rc = h5_read_f32(f, join(p, prefix, n), 1, &c, l->bias);
    }
    const char *bn[4] = {"weight", "bias", "running_mean", "running_var"};
    float *v[4] = {l->gamma, l->beta, l->mean, l->var};
    for (int j = 0; j < 4 && l->gamma && rc == 0; j++) {
        snprintf(n, sizeof n, "%s/bn/%s", l->name, bn[j]);
        rc = h5_read_f32(f, join(p, prefix, n), 1, &c, v[j]);
    }
    for (int j = 0; j < l->cout && l->var && rc == 0; j++)
        if (l->var[j] < 0)
            rc = apq_set_error(APQ_EFORMAT, "%s: dataset '%s' holds a negative variance",
                               h5_filename(f), p);
    return rc;
}

/* The file's subnet_format_version must be ours. */
static int check_version(hid_t f) {
    int64_t v = 0;
    int rc = h5_attr_get_i64(f, "subnet_format_version", &v);
    if (rc == APQ_EFORMAT)
        return apq_set_error(APQ_EFORMAT,
                             "%s: holds no subnets (no attribute subnet_format_version: written "
                             "before verify kept its subnets); hint: delete it and run make",
                             h5_filename(f));
    if (rc < 0) return rc;
    if (v != SUBNET_FORMAT_VERSION)
        return apq_set_error(APQ_EFORMAT,
                             "%s: subnet_format_version is %lld, expected %d; hint: delete it and "
                             "run make to regenerate it",
                             h5_filename(f), (long long)v, SUBNET_FORMAT_VERSION);
    return APQ_OK;
}

int subnet_read(hid_t f, const char *prefix, struct subnet *out) {
    APQ_ASSERT(prefix);
    memset(out, 0, sizeof *out);
    int rc = check_version(f);
    if (rc == 0 && prefix[0] && (rc = h5_exists(f, prefix)) == 0)
        rc = apq_set_error(APQ_EFORMAT, "%s: no subnet '%s'", h5_filename(f), prefix);
    if (rc > 0) rc = APQ_OK;
    if (rc == 0) rc = read_header(f, prefix, out);
    if (rc == 0) rc = read_table(f, prefix, out);
    char what[PATH_MAX_ + 1100];
    snprintf(what, sizeof what, "%s: subnet '%s'", h5_filename(f), prefix[0] ? prefix : "/");
    if (rc == 0) rc = subnet_check(out, what);
    if (rc < 0) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    subnet_alloc(out);
    float *buf = apq_falloc(out->n_data ? out->n_data : 1);
    for (int i = 0; i < out->n_layers && rc == 0; i++)
        rc = read_tensors(f, prefix, &out->layer[i], buf);
    free(buf);
    if (rc < 0) subnet_free(out);
    return rc;
}

int subnet_load(const char *path, struct subnet *out) {
    memset(out, 0, sizeof *out);
    hid_t f;
    int rc = h5_open_read(path, "subnet", SUBNET_FORMAT_VERSION, &f);
    if (rc < 0) return rc;
    rc = subnet_read(f, "", out);
    h5_close(f);
    return rc;
}
