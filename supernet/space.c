/* space.c — parse a search-space .ini (inih) and derive the block table. */
#include "space.h"

#include <ini.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/util.h"

struct parse_ctx {
    struct space *s;
    const char *origin;
    int status;
    char msg[512];
    unsigned seen; /* bitmask of required keys seen */
};

enum {
    K_NAME,
    K_INCH,
    K_INSIZE,
    K_CLASSES,
    K_RES,
    K_KERN,
    K_BITS,
    K_FIXED,
    K_RMIN,
    K_RMAX,
    K_STEP,
    K_FCONV,
    K_FCONVK,
    K_FBLOCK,
    K_MIX,
    K_COUNT
};

/* "3,5,7" -> ascending list; returns count or -1. */
static int parse_list(const char *v, int *out, int max, int lo, int hi) {
    int n = 0;
    const char *p = v;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < lo || x > hi || n >= max) return -1;
        if (n && x <= out[n - 1]) return -1;
        out[n++] = (int)x;
        while (*end == ' ') end++;
        if (*end == ',')
            end++;
        else if (*end)
            return -1;
        p = end;
        while (*p == ' ') p++;
    }
    return n ? n : -1;
}

static int parse_int(const char *v, int *out, int lo, int hi) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) return 0;
    *out = (int)x;
    return 1;
}

static int bad(struct parse_ctx *c, const char *section, const char *name, const char *value,
               const char *want) {
    snprintf(c->msg, sizeof c->msg, "[%s] %s = %s: %s", section, name, value, want);
    return 0;
}

static int on_space_key(struct parse_ctx *c, struct space *s, const char *sec, const char *k,
                        const char *v) {
    struct {
        const char *key;
        int id, lo, hi;
        int *dst;
    } ints[] = {
        {"input_channels", K_INCH, 1, 16, &s->in_ch},
        {"input_size", K_INSIZE, 4, 1024, &s->in_size},
        {"classes", K_CLASSES, 2, 100000, &s->n_classes},
        {"fixed_bits", K_FIXED, 2, 8, &s->fixed_bits},
        {"mid_ratio_min", K_RMIN, 1, 16, &s->mid_ratio_min},
        {"mid_ratio_max", K_RMAX, 1, 16, &s->mid_ratio_max},
        {"mid_step", K_STEP, 1, 256, &s->mid_step},
    };
    if (!strcmp(k, "name")) {
        snprintf(s->name, sizeof s->name, "%s", v);
        c->seen |= 1u << K_NAME;
        return 1;
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(k, ints[i].key)) continue;
        if (!parse_int(v, ints[i].dst, ints[i].lo, ints[i].hi))
            return bad(c, sec, k, v, "expected an integer in range");
        c->seen |= 1u << ints[i].id;
        return 1;
    }
    struct {
        const char *key;
        int id, lo, hi;
        int *dst, *n;
    } lists[] = {
        {"resolutions", K_RES, 4, 1024, s->res, &s->n_res},
        {"kernels", K_KERN, 1, 15, s->kernels, &s->n_kernels},
        {"bits", K_BITS, 2, 8, s->bits, &s->n_bits},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        if (strcmp(k, lists[i].key)) continue;
        int n = parse_list(v, lists[i].dst, SPACE_MAX_CHOICES, lists[i].lo, lists[i].hi);
        if (n < 0) return bad(c, sec, k, v, "expected an ascending comma-separated list");
        *lists[i].n = n;
        c->seen |= 1u << lists[i].id;
        return 1;
    }
    return bad(c, sec, k, v, "unknown key");
}

static int on_stem_key(struct parse_ctx *c, struct space *s, const char *sec, const char *k,
                       const char *v) {
    struct {
        const char *key;
        int id, lo, hi;
        int *dst;
    } ints[] = {
        {"first_conv", K_FCONV, 1, 4096, &s->first_conv_ch},
        {"first_conv_kernel", K_FCONVK, 1, 15, &s->first_conv_k},
        {"first_block", K_FBLOCK, 1, 4096, &s->first_block_ch},
        {"feature_mix", K_MIX, 1, 65536, &s->feature_mix_ch},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(k, ints[i].key)) continue;
        if (!parse_int(v, ints[i].dst, ints[i].lo, ints[i].hi))
            return bad(c, sec, k, v, "expected a positive integer");
        c->seen |= 1u << ints[i].id;
        return 1;
    }
    return bad(c, sec, k, v, "unknown key");
}

static int on_stage_key(struct parse_ctx *c, struct space *s, const char *sec, const char *k,
                        const char *v) {
    int idx;
    char *end;
    long n = strtol(sec + 5, &end, 10);
    if (end == sec + 5 || *end || n < 1 || n > SPACE_MAX_STAGES)
        return bad(c, sec, k, v, "stage sections are [stage1] .. [stage8]");
    idx = (int)n - 1;
    if (idx >= s->n_stages) s->n_stages = idx + 1;
    if (!strcmp(k, "width")) {
        if (!parse_int(v, &s->stage[idx].width, 1, 65536)) return bad(c, sec, k, v, "expected > 0");
    } else if (!strcmp(k, "stride")) {
        if (!parse_int(v, &s->stage[idx].stride, 1, 2)) return bad(c, sec, k, v, "expected 1 or 2");
    } else if (!strcmp(k, "depth")) {
        int d[2], m = parse_list(v, d, 2, 1, 16);
        if (m == 1)
            d[1] = d[0];
        else if (m != 2)
            return bad(c, sec, k, v, "expected min,max (or one value)");
        s->stage[idx].min_depth = d[0];
        s->stage[idx].max_depth = d[1];
    } else {
        return bad(c, sec, k, v, "unknown key");
    }
    return 1;
}

static int on_key(void *user, const char *sec, const char *k, const char *v) {
    struct parse_ctx *c = user;
    if (!strcmp(sec, "space")) return on_space_key(c, c->s, sec, k, v);
    if (!strcmp(sec, "stem")) return on_stem_key(c, c->s, sec, k, v);
    if (!strncmp(sec, "stage", 5)) return on_stage_key(c, c->s, sec, k, v);
    snprintf(c->msg, sizeof c->msg, "unknown section [%s]", sec);
    return 0;
}

/* Derive the block table and the hash; check cross-field rules. */
static int derive(struct space *s, const char *origin) {
    if (s->mid_ratio_min > s->mid_ratio_max)
        return apq_set_error(APQ_ECONFIG, "%s: mid_ratio_min > mid_ratio_max", origin);
    if (s->n_stages < 1) return apq_set_error(APQ_ECONFIG, "%s: no [stageN] sections", origin);
    for (int i = 0; i < s->n_kernels; i++)
        if (s->kernels[i] % 2 == 0)
            return apq_set_error(APQ_ECONFIG, "%s: kernels must be odd", origin);
    if (s->res[s->n_res - 1] > s->in_size)
        return apq_set_error(APQ_ECONFIG, "%s: a resolution exceeds input_size", origin);
    s->max_kernel = s->kernels[s->n_kernels - 1];
    int cin = s->first_block_ch, nb = 0;
    for (int st = 0; st < s->n_stages; st++) {
        if (!s->stage[st].width || !s->stage[st].stride || !s->stage[st].max_depth)
            return apq_set_error(APQ_ECONFIG, "%s: [stage%d] needs width, stride and depth", origin,
                                 st + 1);
        if (s->stage[st].min_depth > s->stage[st].max_depth)
            return apq_set_error(APQ_ECONFIG, "%s: [stage%d] depth min > max", origin, st + 1);
        s->stage[st].first_block = nb;
        for (int slot = 0; slot < s->stage[st].max_depth; slot++) {
            if (nb >= SPACE_MAX_BLOCKS)
                return apq_set_error(APQ_ECONFIG, "%s: more than %d blocks", origin,
                                     SPACE_MAX_BLOCKS);
            struct space_block *b = &s->block[nb++];
            b->stage = st;
            b->slot = slot;
            b->cin = cin;
            b->cout = s->stage[st].width;
            b->stride = slot == 0 ? s->stage[st].stride : 1;
            b->residual = b->stride == 1 && b->cin == b->cout;
            b->mid_min = s->mid_ratio_min * cin;
            b->mid_max = s->mid_ratio_max * cin;
            if (b->mid_max > UINT16_MAX) /* struct arch holds mid in 16 bits */
                return apq_set_error(APQ_ECONFIG,
                                     "%s: stage%d: mid channels up to %d (mid_ratio_max x %d input "
                                     "channels) exceed 65535",
                                     origin, st + 1, b->mid_max, cin);
            if (b->mid_min % s->mid_step || b->mid_max % s->mid_step)
                return apq_set_error(APQ_ECONFIG,
                                     "%s: stage%d: mid range %d..%d is not on the %d grid", origin,
                                     st + 1, b->mid_min, b->mid_max, s->mid_step);
            b->n_mid = (b->mid_max - b->mid_min) / s->mid_step + 1;
            cin = b->cout;
        }
    }
    s->n_blocks = nb;
    /* hash everything except the text (comments and spacing do not matter) */
    s->hash = apq_fnv1a(APQ_FNV_OFFSET, s, offsetof(struct space, hash));
    return APQ_OK;
}

int space_parse(const char *text, const char *origin, struct space *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->text, sizeof s->text, "%s", text);
    struct parse_ctx c = {.s = s, .origin = origin};
    int line = ini_parse_string(text, on_key, &c);
    if (line != 0)
        return apq_set_error(APQ_ECONFIG, "%s:%d: %s", origin, line,
                             c.msg[0] ? c.msg : "syntax error");
    static const char *req[K_COUNT] = {"[space] name",
                                       "[space] input_channels",
                                       "[space] input_size",
                                       "[space] classes",
                                       "[space] resolutions",
                                       "[space] kernels",
                                       "[space] bits",
                                       "[space] fixed_bits",
                                       "[space] mid_ratio_min",
                                       "[space] mid_ratio_max",
                                       "[space] mid_step",
                                       "[stem] first_conv",
                                       "[stem] first_conv_kernel",
                                       "[stem] first_block",
                                       "[stem] feature_mix"};
    for (int i = 0; i < K_COUNT; i++)
        if (!(c.seen & (1u << i)))
            return apq_set_error(APQ_ECONFIG, "%s: missing %s", origin, req[i]);
    return derive(s, origin);
}

int space_load(const char *path, struct space *s) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return apq_set_error(APQ_EIO,
                             "%s: cannot open the space file; hint: spaces live in "
                             "supernet/spaces/<name>.ini",
                             path);
    char *buf = apq_xmalloc(SPACE_TEXT_MAX);
    size_t n = fread(buf, 1, SPACE_TEXT_MAX - 1, f);
    int err = ferror(f) ? errno : 0; /* EISDIR for a folder */
    int toolong = !err && !feof(f) && fgetc(f) != EOF;
    fclose(f);
    buf[n] = 0;
    int rc = err ? apq_set_error(APQ_EIO, "%s: cannot read the space file: %s", path, strerror(err))
             : toolong
                 ? apq_set_error(APQ_ECONFIG, "%s: longer than %d bytes", path, SPACE_TEXT_MAX - 1)
                 : space_parse(buf, path, s);
    free(buf);
    return rc;
}

int space_block_hin(const struct space *s, int block, int res) {
    int h = res; /* first conv and first block keep the size (stride 1) */
    for (int i = 0; i < block; i++)
        if (s->block[i].stride == 2) h = (h + 1) / 2;
    return h;
}

int space_final_size(const struct space *s, int res) {
    int h = space_block_hin(s, s->n_blocks - 1, res);
    return s->block[s->n_blocks - 1].stride == 2 ? (h + 1) / 2 : h;
}

int space_choice_index(const int *choices, int n, int v) {
    for (int i = 0; i < n; i++)
        if (choices[i] == v) return i;
    return -1;
}

void space_hash_text(const struct space *s, char *buf) {
    snprintf(buf, 17, "%016llx", (unsigned long long)s->hash);
}
