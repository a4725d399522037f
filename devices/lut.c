/* lut.c — the per-layer latency/energy lookup table of a device for a space.
 *
 * lut_build lists every layer a quantized subnet of the space can contain
 * (reference/apq.md §9): the fixed layers (first conv, first block's dw and
 * pw, feature mix, classifier) at fixed_bits for every resolution, and for
 * every elastic block, resolution, mid channel count on the grid, kernel and
 * (w, a) pair of the bit set its expand (cin -> mid), depthwise (mid, k,
 * stride) and project (mid -> cout) layers. Keys are deduplicated, sorted,
 * and costed in parallel (OpenMP; entry i is written only by the thread that
 * costs it, so the table does not depend on the thread count).
 *
 * lut.h5 layout (format "lut", format_version 1), n = number of entries,
 * rows sorted by (kind, cin, cout, h_in, k, stride, w_bits, a_bits):
 *   attributes  format = "lut", format_version = 1, git_rev, seed (u64),
 *               threads (i64), profile, created   (h5_write_provenance)
 *               space_name  (string)  name of the search space
 *               space_hash  (string)  16 lowercase hex digits, the space's FNV-1a hash
 *               device      (string)  device name ([device] name)
 *               device_model (string) cost model, e.g. "bitfusion"
 *               device_ini  (string)  the device .ini text
 *   datasets    kind        i32 [n]   0 conv (dense kxk, im2col), 1 dw, 2 pw, 3 fc
 *                                     (enum layer_kind)
 *               cin, cout   i32 [n]   channels (dw: cin == cout)
 *               h_in        i32 [n]   input height = width (fc: 1); the output
 *                                     is (h_in+1)/2 at stride 2, else h_in
 *               k, stride   i32 [n]   kernel size and stride (1 for pw and fc)
 *               w_bits, a_bits i32 [n] weight and input-activation bits, 2..8
 *               latency_ms  f32 [n]   batch-1 latency in milliseconds
 *               energy_mj   f32 [n]   batch-1 energy in millijoules (with leakage)
 *               key         string [n] readable key, "pw_cin16_cout64_h28_k1_s1_w8a8"
 *                                     (fixed length, NUL padded)
 * A reader refuses another format/version (APQ_EFORMAT) and a table whose
 * space_hash differs from the space it is used with (APQ_EMISMATCH).
 */
#ifdef _OPENMP
#include <math.h>
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/h5.h"
#include "devices.h"

#define LUT_VERSION 1

// ---- keys ----------------------------------------------------------------------

static const char *const kind_short[] = {"conv", "dw", "pw", "fc"};

struct lut_key lut_key_of(const struct layer_desc *l) {
    struct lut_key k;
    memset(&k, 0, sizeof k);
    k.kind = (uint8_t)l->kind;
    k.k = (uint8_t)l->k;
    k.stride = (uint8_t)l->stride;
    k.w_bits = (uint8_t)l->w_bits;
    k.a_bits = (uint8_t)l->a_bits;
    k.cin = (uint16_t)l->cin;
    k.cout = (uint16_t)l->cout;
    k.h_in = (uint16_t)l->h_in;
    return k;
}

const char *lut_key_string(const struct lut_key *k, char *buf, size_t size) {
    snprintf(buf, size, "%s_cin%d_cout%d_h%d_k%d_s%d_w%da%d",
             k->kind < 4 ? kind_short[k->kind] : "?", k->cin, k->cout, k->h_in, k->k, k->stride,
             k->w_bits, k->a_bits);
    return buf;
}

/* The layer a key stands for (h_out as arch_layers derives it). */
static struct layer_desc key_layer(const struct lut_key *k) {
    struct layer_desc l;
    memset(&l, 0, sizeof l);
    l.kind = (enum layer_kind)k->kind;
    l.block = -1;
    l.cin = k->cin;
    l.cout = k->cout;
    l.h_in = k->h_in;
    l.h_out = l.kind == LAYER_LINEAR ? 1 : k->stride == 2 ? (k->h_in + 1) / 2 : k->h_in;
    l.k = k->k;
    l.stride = k->stride;
    l.w_bits = k->w_bits;
    l.a_bits = k->a_bits;
    return l;
}

/* Order: kind, cin, cout, h_in, k, stride, w_bits, a_bits. */
static int key_cmp(const struct lut_key *a, const struct lut_key *b) {
    const int x[8] = {a->kind, a->cin, a->cout, a->h_in, a->k, a->stride, a->w_bits, a->a_bits};
    const int y[8] = {b->kind, b->cin, b->cout, b->h_in, b->k, b->stride, b->w_bits, b->a_bits};
    for (int i = 0; i < 8; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}
static int key_qcmp(const void *a, const void *b) {
    return key_cmp(a, b);
}

// ---- enumeration -----------------------------------------------------------------

struct keys {
    struct lut_key *k;
    int n, cap;
};

static int add_layer(struct keys *ks, const struct layer_desc *l) {
    if (l->cin > 65535 || l->cout > 65535 || l->h_in > 65535 || l->k > 255 || l->stride > 255)
        return apq_set_error(APQ_ECONFIG, "lut: layer %dx%d channels at h %d exceeds the key range",
                             l->cin, l->cout, l->h_in);
    if (ks->n == ks->cap) {
        int cap = ks->cap ? 2 * ks->cap : 4096;
        struct lut_key *k = realloc(ks->k, (size_t)cap * sizeof *k);
        if (!k) return apq_set_error(APQ_ENOMEM, "lut: out of memory listing %d layers", ks->n);
        ks->k = k;
        ks->cap = cap;
    }
    ks->k[ks->n++] = lut_key_of(l);
    return APQ_OK;
}

/* Every layer of every quantized subnet, sorted and deduplicated. */
static int enumerate(const struct space *s, struct keys *ks) {
    int rc;
    struct layer_desc L[ARCH_MAX_LAYERS];
    for (int ri = 0; ri < s->n_res; ri++) {
        /* fixed layers: exactly as arch_layers lists them, at fixed_bits */
        struct arch a;
        arch_smallest(s, s->bits[0], &a);
        a.res = (uint16_t)s->res[ri];
        int n = arch_layers(s, &a, L);
        for (int i = 0; i < n; i++)
            if (L[i].block < 0 && (rc = add_layer(ks, &L[i])) < 0) return rc;
        for (int b = 0; b < s->n_blocks; b++) {
            const struct space_block *bl = &s->block[b];
            int h = space_block_hin(s, b, s->res[ri]);
            int ho = bl->stride == 2 ? (h + 1) / 2 : h;
            for (int mid = bl->mid_min; mid <= bl->mid_max; mid += s->mid_step)
                for (int wi = 0; wi < s->n_bits; wi++)
                    for (int ai = 0; ai < s->n_bits; ai++) {
                        int w = s->bits[wi], ab = s->bits[ai];
                        struct layer_desc e = {LAYER_PW, ROLE_EXPAND, b, bl->cin, mid, h,
                                               h,        1,           1, w,       ab,  0};
                        struct layer_desc p = {LAYER_PW, ROLE_PROJECT, b, mid, bl->cout,
                                               ho,       ho,           1, 1,   w,
                                               ab,       bl->residual};
                        if ((rc = add_layer(ks, &e)) < 0 || (rc = add_layer(ks, &p)) < 0) return rc;
                        for (int ki = 0; ki < s->n_kernels; ki++) {
                            struct layer_desc d = {
                                LAYER_DW, ROLE_DEPTHWISE, b,          mid, mid, h,
                                ho,       s->kernels[ki], bl->stride, w,   ab,  0};
                            if ((rc = add_layer(ks, &d)) < 0) return rc;
                        }
                    }
        }
    }
    qsort(ks->k, (size_t)ks->n, sizeof *ks->k, key_qcmp);
    int m = 0;
    for (int i = 0; i < ks->n; i++)
        if (!m || key_cmp(&ks->k[i], &ks->k[m - 1])) ks->k[m++] = ks->k[i];
    ks->n = m;
    return APQ_OK;
}

// ---- build -------------------------------------------------------------------------

int lut_build(struct lut *t, const struct device *d, const struct space *s) {
    memset(t, 0, sizeof *t);
    struct keys ks = {0};
    int rc = enumerate(s, &ks);
    if (rc < 0) {
        free(ks.k);
        return rc;
    }
    int n = ks.n;
    struct lut_entry *e = calloc(n ? (size_t)n : 1, sizeof *e);
    int *status = calloc(n ? (size_t)n : 1, sizeof *status);
    if (!e || !status) {
        free(e), free(status), free(ks.k);
        return apq_set_error(APQ_ENOMEM, "lut: out of memory for %d entries", n);
    }
    struct apq_progress prog;
    progress_init(&prog, "lut", "layers", n);
    long done = 0;
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < n; i++) {
        struct layer_desc l = key_layer(&ks.k[i]);
        double ms = 0, mj = 0;
        status[i] = device_layer_cost(d, &l, &ms, &mj);
        e[i].key = ks.k[i];
        e[i].latency_ms = (float)ms;
        e[i].energy_mj = (float)mj;
        long k;
#pragma omp atomic capture
        k = ++done;
#ifdef _OPENMP
        if (omp_get_thread_num() == 0)
#endif
            progress_update(&prog, k, NULL);
    }
    for (int i = 0; i < n; i++)
        if (status[i] < 0) { /* redo the first failure here: error details are per thread */
            struct layer_desc l = key_layer(&ks.k[i]);
            double ms, mj;
            rc = device_layer_cost(d, &l, &ms, &mj);
            break;
        }
    free(status);
    free(ks.k);
    if (rc < 0) {
        free(e);
        return rc;
    }
    char extra[64];
    snprintf(extra, sizeof extra, "%d entries", n);
    progress_end(&prog, extra);
    t->n = n;
    t->e = e;
    t->space_hash = s->hash;
    snprintf(t->space, sizeof t->space, "%s", s->name);
    snprintf(t->device, sizeof t->device, "%s", d->name);
    snprintf(t->device_model, sizeof t->device_model, "%s", d->model);
    snprintf(t->device_text, sizeof t->device_text, "%s", d->text);
    return APQ_OK;
}

void lut_free(struct lut *t) {
    if (!t) return;
    free(t->e);
    memset(t, 0, sizeof *t);
}

// ---- queries -----------------------------------------------------------------------

const struct lut_entry *lut_find(const struct lut *t, const struct layer_desc *l) {
    struct lut_key k = lut_key_of(l);
    int lo = 0, hi = t->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = key_cmp(&t->e[mid].key, &k);
        if (!c) return &t->e[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static const char *role_name(enum layer_role r) {
    static const char *const names[] = {"first conv", "first dw", "first pw",    "expand",
                                        "depthwise",  "project",  "feature mix", "classifier"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

int lut_arch_cost(const struct lut *t, const struct space *s, const struct arch *a,
                  double *latency_ms, double *energy_mj) {
    *latency_ms = *energy_mj = 0;
    if (t->space_hash != s->hash)
        return apq_set_error(APQ_EMISMATCH,
                             "lut of space '%s' used with space '%s'; hint: rebuild the LUT "
                             "for this space (make, or apq-build-lut --space ...)",
                             t->space, s->name);
    if (!arch_is_quantized(a))
        return apq_set_error(APQ_ECONFIG,
                             "lut: an fp32 arch has no latency on device %s; "
                             "hint: give it a bit policy (arch_set_bits)",
                             t->device);
    struct layer_desc L[ARCH_MAX_LAYERS];
    int n = arch_layers(s, a, L);
    double ms = 0, mj = 0;
    for (int i = 0; i < n; i++) {
        const struct lut_entry *e = lut_find(t, &L[i]);
        if (!e) {
            char key[96];
            struct lut_key k = lut_key_of(&L[i]);
            return apq_set_error(APQ_EFORMAT,
                                 "lut (%s, %s): no entry %s (%s, block %d); hint: the table "
                                 "is incomplete, rebuild it with apq-build-lut",
                                 t->space, t->device, lut_key_string(&k, key, sizeof key),
                                 role_name(L[i].role), L[i].block);
        }
        ms += e->latency_ms;
        mj += e->energy_mj;
    }
    *latency_ms = ms;
    *energy_mj = mj;
    return APQ_OK;
}

// ---- HDF5 --------------------------------------------------------------------------

static const char *const int_cols[] = {"kind", "cin",    "cout",   "h_in",
                                       "k",    "stride", "w_bits", "a_bits"};
#define N_INT_COLS 8

static int32_t key_field(const struct lut_key *k, int c) {
    switch (c) {
    case 0:
        return k->kind;
    case 1:
        return k->cin;
    case 2:
        return k->cout;
    case 3:
        return k->h_in;
    case 4:
        return k->k;
    case 5:
        return k->stride;
    case 6:
        return k->w_bits;
    default:
        return k->a_bits;
    }
}

int lut_save(const struct lut *t, const char *path, uint64_t seed, const char *profile) {
    hid_t f = -1;
    int rc = h5_create(path, &f);
    if (rc < 0) return rc;
    size_t n = (size_t)t->n;
    hsize_t dims[1] = {n};
    int32_t *col = malloc((n ? n : 1) * sizeof *col);
    float *val = malloc((n ? n : 1) * sizeof *val);
    char *keybuf = malloc((n ? n : 1) * 64);
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)t->space_hash);
    if (!col || !val || !keybuf || !keys) {
        rc = apq_set_error(APQ_ENOMEM, "%s: out of memory writing %zu entries", path, n);
        goto done;
    }
    if ((rc = h5_write_provenance(f, "lut", LUT_VERSION, seed, profile)) < 0 ||
        (rc = h5_attr_set_str(f, "space_name", t->space)) < 0 ||
        (rc = h5_attr_set_str(f, "space_hash", hash)) < 0 ||
        (rc = h5_attr_set_str(f, "device", t->device)) < 0 ||
        (rc = h5_attr_set_str(f, "device_model", t->device_model)) < 0 ||
        (rc = h5_attr_set_str(f, "device_ini", t->device_text)) < 0)
        goto done;
    for (int c = 0; c < N_INT_COLS; c++) {
        for (size_t i = 0; i < n; i++) col[i] = key_field(&t->e[i].key, c);
        if ((rc = h5_write_i32(f, int_cols[c], 1, dims, col)) < 0) goto done;
    }
    for (size_t i = 0; i < n; i++) val[i] = t->e[i].latency_ms;
    if ((rc = h5_write_f32(f, "latency_ms", 1, dims, val)) < 0) goto done;
    for (size_t i = 0; i < n; i++) val[i] = t->e[i].energy_mj;
    if ((rc = h5_write_f32(f, "energy_mj", 1, dims, val)) < 0) goto done;
    for (size_t i = 0; i < n; i++) keys[i] = lut_key_string(&t->e[i].key, keybuf + 64 * i, 64);
    if ((rc = h5_write_strings(f, "key", keys, n)) < 0) goto done;
done:
    free(col);
    free(val);
    free(keybuf);
    free(keys);
    if (rc < 0) {
        h5_abort(f, path);
        return rc;
    }
    return h5_commit(f, path);
}

int lut_load(struct lut *t, const char *path, const struct space *s) {
    memset(t, 0, sizeof *t);
    hid_t f = -1;
    int rc = h5_open_read(path, "lut", LUT_VERSION, &f);
    if (rc < 0) return rc;
    char hash[64], want[32], name[64] = "?";
    int32_t *col = NULL;
    float *lat = NULL, *en = NULL;
    struct lut_entry *e = NULL;
    size_t n = 0, n2 = 0;
    space_hash_text(s, want);
    if ((rc = h5_attr_get_str(f, "space_hash", hash, sizeof hash)) < 0) goto done;
    h5_attr_get_str(f, "space_name", name, sizeof name); /* messages only */
    if (strcmp(hash, want)) {
        rc = apq_set_error(APQ_EMISMATCH,
                           "%s: lut.h5 was built for another search space ('%s', hash %s; this "
                           "is '%s', hash %s); hint: make rebuilds it (apq-build-lut --space ...)",
                           path, name, hash, s->name, want);
        goto done;
    }
    if ((rc = h5_attr_get_str(f, "device", t->device, sizeof t->device)) < 0 ||
        (rc = h5_attr_get_str(f, "device_model", t->device_model, sizeof t->device_model)) < 0 ||
        (rc = h5_attr_get_str(f, "device_ini", t->device_text, sizeof t->device_text)) < 0)
        goto done;
    if ((rc = h5_read_f32_alloc(f, "latency_ms", &lat, &n)) < 0 ||
        (rc = h5_read_f32_alloc(f, "energy_mj", &en, &n2)) < 0)
        goto done;
    if (n2 != n || n > (1u << 30)) {
        rc = apq_set_error(APQ_EFORMAT, "%s: latency_ms has %zu rows, energy_mj %zu", path, n, n2);
        goto done;
    }
    hsize_t dims[1] = {n};
    col = malloc((n ? n : 1) * sizeof *col);
    e = calloc(n ? n : 1, sizeof *e);
    if (!col || !e) {
        rc = apq_set_error(APQ_ENOMEM, "%s: out of memory for %zu entries", path, n);
        goto done;
    }
    static const int32_t hi[N_INT_COLS] = {LAYER_LINEAR, 65535, 65535, 65535, 255, 255, 8, 8};
    static const int32_t lo[N_INT_COLS] = {0, 1, 1, 1, 1, 1, 2, 2};
    for (int c = 0; c < N_INT_COLS; c++) {
        if ((rc = h5_read_i32(f, int_cols[c], 1, dims, col)) < 0) goto done;
        for (size_t i = 0; i < n; i++) {
            if (col[i] < lo[c] || col[i] > hi[c]) {
                rc = apq_set_error(APQ_EFORMAT, "%s: %s[%zu] = %d is out of range [%d, %d]", path,
                                   int_cols[c], i, col[i], lo[c], hi[c]);
                goto done;
            }
            struct lut_key *k = &e[i].key;
            switch (c) {
            case 0:
                k->kind = (uint8_t)col[i];
                break;
            case 1:
                k->cin = (uint16_t)col[i];
                break;
            case 2:
                k->cout = (uint16_t)col[i];
                break;
            case 3:
                k->h_in = (uint16_t)col[i];
                break;
            case 4:
                k->k = (uint8_t)col[i];
                break;
            case 5:
                k->stride = (uint8_t)col[i];
                break;
            case 6:
                k->w_bits = (uint8_t)col[i];
                break;
            default:
                k->a_bits = (uint8_t)col[i];
                break;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        e[i].latency_ms = lat[i];
        e[i].energy_mj = en[i];
        if (!(isfinite(lat[i]) && lat[i] > 0 && isfinite(en[i]) && en[i] >= 0)) {
            /* every layer takes time: budgets divide by it */
            rc = apq_set_error(APQ_EFORMAT,
                               "%s: row %zu has latency %g ms, energy %g mJ (need finite, latency "
                               "> 0, energy >= 0); hint: rerun make to rebuild it",
                               path, i, lat[i], en[i]);
            goto done;
        }
        if (i && key_cmp(&e[i - 1].key, &e[i].key) >= 0) {
            rc = apq_set_error(APQ_EFORMAT,
                               "%s: rows %zu and %zu are not in strictly ascending "
                               "key order; hint: rebuild it with apq-build-lut",
                               path, i - 1, i);
            goto done;
        }
    }
    t->n = (int)n;
    t->e = e;
    e = NULL;
    t->space_hash = s->hash;
    snprintf(t->space, sizeof t->space, "%s", s->name);
done:
    h5_close(f);
    free(col);
    free(lat);
    free(en);
    free(e);
    if (rc < 0) memset(t, 0, sizeof *t);
    return rc;
}
