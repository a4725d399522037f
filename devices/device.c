/* device.c — device files (devices/<name>.ini) and the per-layer cost dispatch.
 *
 * A device file has one [device] section: `name`, `model`, and exactly the
 * parameters of that model, every one required (DESIGN.md §7, aesthetics L4):
 *
 *   [device]
 *   name = bitfusion
 *   model = bitfusion
 *   rows = 16
 *   ...
 *
 * Unknown sections or keys, missing keys, malformed or out-of-range values
 * and unknown models are APQ_ECONFIG naming the file (and line); a missing
 * file is APQ_EIO with a hint listing the device files next to it.
 *
 * Not here: the cost models themselves (bitfusion.c).
 */
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"

// ---- model parameter tables --------------------------------------------------

struct param {
    const char *key;
    size_t off;    /* offset in struct device */
    int is_int;    /* int field, else double */
    double lo, hi; /* accepted range, inclusive */
};
#define PI(k, lo, hi)                                                                              \
    { #k, offsetof(struct device, k), 1, lo, hi }
#define PD(k, lo, hi)                                                                              \
    { #k, offsetof(struct device, k), 0, lo, hi }

/* bf_e_conf (reference/apq.md §8.1, §8.4) */
static const struct param bitfusion_params[] = {
    PI(rows, 1, 4096),
    PI(cols, 1, 4096),
    PD(freq_mhz, 1e-3, 1e6),
    PI(pmax, 2, 32),
    PI(pmin, 1, 32),
    PD(wbuf_kb, 1.0 / 1024, 1 << 20),
    PD(ibuf_kb, 1.0 / 1024, 1 << 20),
    PD(obuf_kb, 1.0 / 1024, 1 << 20),
    PI(dram_bits_per_cycle, 1, 1 << 20),
    PD(core_pj_per_cycle, 0, 1e9),
    PD(wbuf_rd_pj, 0, 1e6),
    PD(wbuf_wr_pj, 0, 1e6),
    PD(ibuf_rd_pj, 0, 1e6),
    PD(ibuf_wr_pj, 0, 1e6),
    PD(obuf_rd_pj, 0, 1e6),
    PD(obuf_wr_pj, 0, 1e6),
    PD(dram_pj_per_bit, 0, 1e6),
    PD(leak_mw, 0, 1e9),
};

struct model {
    const char *name;
    const struct param *params;
    int n_params;
    int (*check)(const struct device *d, const char *path);
    int (*cost)(const struct device *d, const struct layer_desc *l, double *ms, double *mj);
};

static int bitfusion_check(const struct device *d, const char *path) {
    if (d->pmin > d->pmax)
        return apq_set_error(APQ_ECONFIG, "%s: [device] pmin = %d exceeds pmax = %d", path, d->pmin,
                             d->pmax);
    return APQ_OK;
}

static int bitfusion_cost(const struct device *d, const struct layer_desc *l, double *ms,
                          double *mj) {
    struct bf_stats st;
    int rc = bitfusion_layer_stats(d, l, &st);
    if (rc < 0) return rc;
    *ms = (double)st.cycles / (d->freq_mhz * 1e3);
    *mj = st.dynamic_pj * 1e-9 + d->leak_mw * *ms * 1e-3; /* pJ -> mJ; mW x ms = uJ -> mJ */
    return APQ_OK;
}

static const struct model models[] = {
    {"bitfusion", bitfusion_params, sizeof bitfusion_params / sizeof bitfusion_params[0],
     bitfusion_check, bitfusion_cost},
};
#define N_MODELS ((int)(sizeof models / sizeof models[0]))

static const struct model *find_model(const char *name) {
    for (int i = 0; i < N_MODELS; i++)
        if (!strcmp(models[i].name, name)) return &models[i];
    return NULL;
}

// ---- parsing -----------------------------------------------------------------

#define MAX_PARAMS 64
struct parse_ctx {
    struct device *d;
    const struct model *m;   /* NULL in the first pass */
    unsigned long long seen; /* bit i: parameter i of the model */
    int have_name, have_model;
    char msg[512];
};

/* First pass: the section and the `name` and `model` keys. */
static int on_header(void *user, const char *sec, const char *k, const char *v) {
    struct parse_ctx *c = user;
    if (strcmp(sec, "device")) {
        snprintf(c->msg, sizeof c->msg, "unknown section [%s] (a device file has one [device])",
                 sec);
        return 0;
    }
    if (!strcmp(k, "name")) {
        if (!*v || strlen(v) >= sizeof c->d->name || strpbrk(v, "/ \t")) {
            snprintf(c->msg, sizeof c->msg,
                     "[device] name = %s: expected a short name without spaces or '/'", v);
            return 0;
        }
        snprintf(c->d->name, sizeof c->d->name, "%s", v);
        c->have_name = 1;
    } else if (!strcmp(k, "model")) {
        snprintf(c->d->model, sizeof c->d->model, "%s", v);
        c->have_model = 1;
    }
    return 1;
}

/* Second pass: every other key must be a parameter of the model. */
static int on_param(void *user, const char *sec, const char *k, const char *v) {
    struct parse_ctx *c = user;
    if (!strcmp(k, "name") || !strcmp(k, "model")) return 1;
    const struct model *m = c->m;
    for (int i = 0; i < m->n_params; i++) {
        const struct param *p = &m->params[i];
        if (strcmp(k, p->key)) continue;
        if (c->seen & (1ull << i)) {
            snprintf(c->msg, sizeof c->msg, "[%s] %s given twice", sec, k);
            return 0;
        }
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        int ok = end != v && !*end && !errno && isfinite(x) && x >= p->lo && x <= p->hi;
        if (ok && p->is_int) ok = x == floor(x);
        if (!ok) {
            snprintf(c->msg, sizeof c->msg, "[%s] %s = %s: expected %s in [%g, %g]", sec, k, v,
                     p->is_int ? "an integer" : "a number", p->lo, p->hi);
            return 0;
        }
        char *dst = (char *)c->d + p->off;
        if (p->is_int)
            *(int *)dst = (int)x;
        else
            *(double *)dst = x;
        c->seen |= 1ull << i;
        return 1;
    }
    snprintf(c->msg, sizeof c->msg, "[%s] %s: unknown key for model %s", sec, k, m->name);
    return 0;
}

/* "a.ini, b.ini" of the .ini files in the directory of path. */
static void list_devices(const char *path, char *buf, size_t size) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    const char *dir = dirname(tmp);
    buf[0] = 0;
    DIR *dh = opendir(dir);
    if (!dh) {
        snprintf(buf, size, "no directory %s", dir);
        return;
    }
    size_t k = 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dh))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".ini")) continue;
        int w = snprintf(buf + k, size - k, "%s%s/%s", n++ ? ", " : "", dir, e->d_name);
        if (w < 0 || (size_t)w >= size - k) break;
        k += (size_t)w;
    }
    closedir(dh);
    if (!n) snprintf(buf, size, "no .ini files in %s", dir);
}

int device_load(const char *path, struct device *d) {
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int err = errno;
        char list[512];
        list_devices(path, list, sizeof list);
        return apq_set_error(APQ_EIO, "%s: cannot open the device file (%s); hint: devices: %s",
                             path, strerror(err), list);
    }
    size_t n = fread(d->text, 1, sizeof d->text - 1, f);
    int rerr = ferror(f) ? errno : 0; /* EISDIR for a folder */
    int toolong = !rerr && !feof(f) && fgetc(f) != EOF;
    fclose(f);
    d->text[n] = 0;
    if (rerr)
        return apq_set_error(APQ_EIO, "%s: cannot read the device file: %s", path, strerror(rerr));
    if (toolong)
        return apq_set_error(APQ_ECONFIG, "%s: longer than %zu bytes", path, sizeof d->text - 1);

    struct parse_ctx c = {.d = d};
    int line = ini_parse_string(d->text, on_header, &c);
    if (line != 0)
        return apq_set_error(APQ_ECONFIG, "%s:%d: %s", path, line,
                             c.msg[0] ? c.msg : "syntax error");
    if (!c.have_name) return apq_set_error(APQ_ECONFIG, "%s: [device] missing key 'name'", path);
    if (!c.have_model)
        return apq_set_error(APQ_ECONFIG, "%s: [device] missing key 'model' (known: bitfusion)",
                             path);
    c.m = find_model(d->model);
    if (!c.m)
        return apq_set_error(APQ_ECONFIG,
                             "%s: [device] model = %s: unknown model; known: bitfusion", path,
                             d->model);
    APQ_ASSERT(c.m->n_params <= MAX_PARAMS);
    line = ini_parse_string(d->text, on_param, &c);
    if (line != 0) return apq_set_error(APQ_ECONFIG, "%s:%d: %s", path, line, c.msg);
    for (int i = 0; i < c.m->n_params; i++)
        if (!(c.seen & (1ull << i)))
            return apq_set_error(APQ_ECONFIG, "%s: [device] missing key '%s' (model %s)", path,
                                 c.m->params[i].key, c.m->name);
    return c.m->check(d, path);
}

int device_layer_cost(const struct device *d, const struct layer_desc *l, double *latency_ms,
                      double *energy_mj) {
    const struct model *m = find_model(d->model);
    if (!m) return apq_set_error(APQ_ECONFIG, "device %s: unknown model '%s'", d->name, d->model);
    return m->cost(d, l, latency_ms, energy_mj);
}
