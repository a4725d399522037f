/* qmodel_emit.c — an integer model written out as standalone C: model.h,
 * model.c (packed weights, the reference kernels' text, the layer calls),
 * main.c (the Fashion-MNIST test files through it). qmodel_emit.h. */
#include "qmodel_emit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/util.h"
#include "qint_src.h" /* qint_h_text, qint_ref_c_text, ...: made by the Makefile */

#define EMIT_ALIGN 64

static size_t align_up(size_t n) {
    return (n + EMIT_ALIGN - 1) / EMIT_ALIGN * EMIT_ALIGN;
}

/* Weights read through the unpack scratch (2..4 bits); 5..8-bit fields are
 * the int8 bytes themselves. */
static int unpacked(const struct qmodel_layer *l) {
    return l->w && l->w_bits <= 4;
}

size_t qmodel_emit_ram_bytes(const struct qmodel *m) {
    size_t s = 0;
    for (int j = 0; j < m->n_layers; j++)
        if (unpacked(&m->l[j]) && align_up(m->l[j].n_w) > s) s = align_up(m->l[j].n_w);
    return m->arena_bytes + s;
}

// ---- the library's text -----------------------------------------------------------

static int is_comment(const char *s) {
    return !strncmp(s, "/*", 2) || !strncmp(s, " *", 2) || !strncmp(s, "//", 2);
}

/* Copy from text the block whose first line starts with `head` (at column
 * 0; a declaration ending in ';' does not count) through the first line equal
 * to `end`, with the comment lines just above it; as_static prefixes
 * "static " to a definition that has no linkage keyword. */
static int copy_block(FILE *f, const char *const *text, const char *file, const char *head,
                      const char *end, int as_static) {
    size_t n = strlen(head);
    int i = 0;
    for (; text[i]; i++) {
        const char *s = text[i];
        if (!strncmp(s, head, n) && s[strlen(s) - 1] != ';') break;
    }
    if (!text[i])
        return apq_set_error(APQ_EFORMAT, "%s has no '%s' to copy into model.c", file, head);
    int c = i;
    while (c > 0 && is_comment(text[c - 1])) c--;
    for (int k = c; k < i; k++) fprintf(f, "%s\n", text[k]);
    const int add = as_static && strchr(text[i], '(') && strncmp(text[i], "static", 6);
    fprintf(f, "%s%s\n", add ? "static " : "", text[i]);
    for (i++; text[i] && strcmp(text[i], end); i++) fprintf(f, "%s\n", text[i]);
    if (!text[i]) return apq_set_error(APQ_EFORMAT, "%s: '%s' has no end", file, head);
    fprintf(f, "%s\n\n", end);
    return APQ_OK;
}

/* The kernels model.c calls, in an order that defines before use. */
static int copy_kernels(FILE *f, const struct qmodel *m) {
    int any_add = 0, any_unpack = 0, rc = APQ_OK;
    for (int j = 0; j < m->n_layers; j++) {
        any_add |= m->l[j].op == QM_ADD;
        any_unpack |= unpacked(&m->l[j]);
    }
    fprintf(f, "// ---- the reference kernels: the text of apq's quant/qint.h and quant/qint_ref.c "
               "----\n\n");
    for (int i = 0; qint_h_text[i]; i++)
        if (!strncmp(qint_h_text[i], "#define QINT_", 13)) fprintf(f, "%s\n", qint_h_text[i]);
    fprintf(f, "\n");
    const char *h = "quant/qint.h", *r = "quant/qint_ref.c";
    struct {
        const char *const *text;
        const char *file, *head, *end;
        int use;
    } parts[] = {
        {qint_h_text, h, "enum qint_status {", "};", any_unpack},
        {qint_h_text, h, "struct qint_out {", "};", 1},
        {qint_h_text, h, "static inline int64_t qint_round_shift(", "}", 1},
        {qint_h_text, h, "static inline int64_t qint_requant_inline(", "}", 1},
        {qint_h_text, h, "static inline uint8_t qint_out_inline(", "}", 1},
        {qint_h_text, h, "struct qint_add {", "};", 1},
        {qint_h_text, h, "static inline int qint_add_valid(", "}", 1},
        {qint_ref_c_text, r, "static int field_bits(", "}", any_unpack},
        {qint_ref_c_text, r, "int qint_unpack(", "}", any_unpack},
        {qint_ref_c_text, r, "static void check_layer(", "}", 1},
        {qint_ref_c_text, r, "static uint8_t out_stage(", "}", 1},
        {qint_ref_c_text, r, "void qint_conv_ref(", "}", 1},
        {qint_ref_c_text, r, "void qint_pw_ref(", "}", 1},
        {qint_ref_c_text, r, "void qint_dw_ref(", "}", 1},
        {qint_ref_c_text, r, "void qint_avgpool_ref(", "}", 1},
        {qint_ref_c_text, r, "void qint_linear_s32_ref(", "}", 1},
        {qint_ref_c_text, r, "void qint_add_ref(", "}", any_add},
        {qint_ref_c_text, r, "static void resize_index(", "}", 1},
        {qint_ref_c_text, r, "void qint_resize_bilinear(", "}", 1},
    };
    for (size_t p = 0; p < sizeof parts / sizeof *parts && rc == APQ_OK; p++)
        if (parts[p].use)
            rc = copy_block(f, parts[p].text, parts[p].file, parts[p].head, parts[p].end, 1);
    return rc;
}

/* A line of the fast kernels' text as model.c carries it: a declaration or
 * definition of a qint_ function at column 0 gains "static" (model.c exports
 * apq_model_run alone); the library's #include "..." lines go. */
static void copy_fast_line(FILE *f, const char *s) {
    static const char *const opens[] = {"void qint_", "size_t qint_", "int qint_"};
    if (!strncmp(s, "#include \"", 10)) return;
    for (size_t t = 0; t < sizeof opens / sizeof *opens; t++)
        if (!strncmp(s, opens[t], strlen(opens[t]))) {
            fprintf(f, "static %s\n", s);
            return;
        }
    fprintf(f, "%s\n", s);
}

/* The fast kernels whole: qint.h's prototypes of them, then qint_internal.h,
 * qint_fast.c and qint_simd.c (the AVX-512 VNNI path compiles where the
 * target has it, as in the library). */
static int copy_fast(FILE *f) {
    const char *head = "// ---- fast kernels";
    int i = 0;
    while (qint_h_text[i] && strncmp(qint_h_text[i], head, strlen(head))) i++;
    if (!qint_h_text[i])
        return apq_set_error(APQ_EFORMAT, "quant/qint.h has no '%s' to copy into model.c", head);
    fprintf(f, "// ---- the fast kernels: the text of apq's quant/qint.h (their prototypes), "
               "quant/qint_internal.h, quant/qint_fast.c and quant/qint_simd.c ----\n\n");
    for (; qint_h_text[i] && strncmp(qint_h_text[i], "#endif", 6); i++)
        copy_fast_line(f, qint_h_text[i]);
    const char *const *const files[] = {qint_internal_h_text, qint_fast_c_text, qint_simd_c_text};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++)
        for (i = 0; files[k][i]; i++) copy_fast_line(f, files[k][i]);
    fprintf(f, "\n");
    return APQ_OK;
}

// ---- constants ----------------------------------------------------------------------

static void emit_u8(FILE *f, const char *type, const char *name, int j, const uint8_t *v,
                    size_t n) {
    fprintf(f, "static const %s %s%d[%zu] = {", type, name, j, n);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%d,", i % 16 ? " " : "\n    ", !strcmp(type, "int8_t") ? (int8_t)v[i] : v[i]);
    fprintf(f, "\n};\n");
}

static void emit_i32(FILE *f, const char *name, int j, const int32_t *v, int n) {
    fprintf(f, "static const int32_t %s%d[%d] = {", name, j, n);
    for (int i = 0; i < n; i++) fprintf(f, "%s%ld,", i % 8 ? " " : "\n    ", (long)v[i]);
    fprintf(f, "\n};\n");
}

static const char *op_name(enum qmodel_op op) {
    static const char *names[] = {"first convolution", "depthwise",    "pointwise",
                                  "residual add",      "average pool", "classifier"};
    return names[op];
}

/* Layer j's const arrays: packed weights w<j> (the bytes model.h5 stores),
 * int32 bias b<j> and multiplier m<j>, int8 shift s<j>. */
static int emit_arrays(FILE *f, const struct qmodel_layer *l, int j) {
    if (!l->w) return APQ_OK;
    size_t nb = qint_packed_bytes(l->n_w, l->w_bits);
    uint8_t *p = apq_xmalloc(nb);
    if (qint_pack(p, l->w, l->n_w, l->w_bits) != QINT_OK) {
        free(p);
        return apq_set_error(APQ_EFORMAT, "layer %s: weights outside %d bits", l->name, l->w_bits);
    }
    fprintf(f, "/* layer %d, %s (%s): %zu weights of %d bits packed */\n", j, l->name,
            op_name(l->op), l->n_w, l->w_bits);
    emit_u8(f, "uint8_t", "w", j, p, nb);
    free(p);
    emit_i32(f, "b", j, l->bias, l->cout);
    if (l->m0) {
        emit_i32(f, "m", j, l->m0, l->cout);
        emit_u8(f, "int8_t", "s", j, (const uint8_t *)l->shift, (size_t)l->cout);
    }
    fprintf(f, "\n");
    return APQ_OK;
}

// ---- the forward ----------------------------------------------------------------------

/* Bytes of layer l in model.c's plans buffer (a multiple of 64): the fast
 * kernels' plan of a convolution, the unpacked weights of a 2..4-bit
 * classifier, else 0. */
static size_t plan_bytes(const struct qmodel_layer *l) {
    size_t n = l->op == QM_CONV ? qint_conv_plan_bytes(l->cin, l->cout, l->k)
               : l->op == QM_DW ? qint_dw_plan_bytes(l->cout, l->k)
               : l->op == QM_PW ? qint_pw_plan_bytes(l->cin, l->cout)
                                : (l->op == QM_LINEAR && unpacked(l) ? l->n_w : 0);
    return align_up(n);
}

/* Layer j's offset in the plans buffer into off[j] (off may be NULL); returns
 * the buffer's bytes. */
static size_t plan_offsets(const struct qmodel *m, size_t *off) {
    size_t s = 0;
    for (int j = 0; j < m->n_layers; j++) {
        if (off) off[j] = s;
        s += plan_bytes(&m->l[j]);
    }
    return s;
}

/* The fast build's work buffer: the kernels' scratch while running, one
 * convolution's unpacked weights while the plans are made. */
static size_t work_bytes(const struct qmodel *m) {
    size_t s = align_up(m->scratch_bytes);
    for (int j = 0; j < m->n_layers; j++)
        if (unpacked(&m->l[j]) && m->l[j].op != QM_LINEAR && align_up(m->l[j].n_w) > s)
            s = align_up(m->l[j].n_w);
    return s;
}

size_t qmodel_emit_fast_ram_bytes(const struct qmodel *m) {
    return m->arena_bytes + plan_offsets(m, NULL) + work_bytes(m);
}

/* The weights argument of layer j: buf after unpacking into it, or the bytes. */
static void emit_weights(FILE *f, const struct qmodel_layer *l, int j, const char *buf, char *arg,
                         size_t n) {
    if (unpacked(l)) {
        fprintf(f, "    qint_unpack(%s, w%d, %zu, %d);\n", buf, j, l->n_w, l->w_bits);
        snprintf(arg, n, "%s", buf);
    } else {
        snprintf(arg, n, "(const int8_t *)w%d", j);
    }
}

/* The output stage argument of layer j (struct qint_out). */
static void out_arg(char *q, size_t n, const struct qmodel *m, const struct qmodel_layer *l,
                    int j) {
    snprintf(q, n, "&(struct qint_out){m%d, s%d, %d, %d, %d}", j, j, m->t[l->out].zp, l->lo, l->hi);
}

/* Layer j's plan (the fast build's make_plans), at plans + off. */
static void emit_plan(FILE *f, const struct qmodel *m, const struct qmodel_layer *l, int j,
                      size_t off) {
    char w[64], q[160];
    const int zp = m->t[l->in].zp;
    if (l->op == QM_LINEAR && unpacked(l))
        fprintf(f, "    qint_unpack((int8_t *)(plans + %zu), w%d, %zu, %d);\n", off, j, l->n_w,
                l->w_bits);
    if (l->op != QM_CONV && l->op != QM_DW && l->op != QM_PW) return;
    emit_weights(f, l, j, "(int8_t *)work", w, sizeof w);
    out_arg(q, sizeof q, m, l, j);
    if (l->op == QM_CONV)
        fprintf(f, "    qint_conv_plan(plans + %zu, %s, b%d, %d, %s, %d, %d, %d);\n", off, w, j, zp,
                q, l->cin, l->cout, l->k);
    else if (l->op == QM_DW)
        fprintf(f, "    qint_dw_plan(plans + %zu, %s, b%d, %d, %s, %d, %d);\n", off, w, j, zp, q,
                l->cout, l->k);
    else
        fprintf(f, "    qint_pw_plan(plans + %zu, %s, b%d, %d, %s, %d, %d);\n", off, w, j, zp, q,
                l->cin, l->cout);
}

/* Layer j's call: the reference kernel (fast = 0, weights unpacked into
 * scratch where packed), or the fast one on its plan at plans + off. */
static void emit_layer(FILE *f, const struct qmodel *m, const struct qmodel_layer *l, int j,
                       int fast, size_t off) {
    const struct qmodel_tensor *ti = &m->t[l->in], *to = l->out >= 0 ? &m->t[l->out] : NULL;
    const char *sfx = fast ? "" : "_ref";
    char w[64], q[160];
    fprintf(f, "    /* layer %d, %s: %s, %dx%dx%d -> %dx%dx%d */\n", j, l->name, op_name(l->op),
            l->h_in, l->h_in, l->cin, l->h_out, l->h_out, l->cout);
    const int H = l->h_in;
    const size_t oi = ti->offset, oo = to ? to->offset : 0;
    if (!fast && l->op != QM_ADD && l->op != QM_POOL) {
        emit_weights(f, l, j, "scratch", w, sizeof w);
        if (to) out_arg(q, sizeof q, m, l, j);
    }
    if (fast && (l->op == QM_CONV || l->op == QM_DW)) {
        fprintf(f, "    qint_%s_run(arena + %zu, arena + %zu, plans + %zu, %d, %d, %d, work);\n",
                l->op == QM_CONV ? "conv" : "dw", oo, oi, off, H, H, l->stride);
        return;
    }
    switch (l->op) {
    case QM_CONV:
        fprintf(f,
                "    qint_conv_ref(arena + %zu, arena + %zu, %d, %s, b%d, %s, %d, %d, %d, %d, "
                "%d, %d);\n",
                oo, oi, ti->zp, w, j, q, H, H, l->cin, l->cout, l->k, l->stride);
        break;
    case QM_DW:
        fprintf(f,
                "    qint_dw_ref(arena + %zu, arena + %zu, %d, %s, b%d, %s, %d, %d, %d, %d, "
                "%d);\n",
                oo, oi, ti->zp, w, j, q, H, H, l->cout, l->k, l->stride);
        break;
    case QM_PW:
        if (fast)
            fprintf(f, "    qint_pw_run(arena + %zu, arena + %zu, plans + %zu, %d);\n", oo, oi, off,
                    H * H);
        else
            fprintf(f, "    qint_pw_ref(arena + %zu, arena + %zu, %d, %s, b%d, %s, %d, %d, %d);\n",
                    oo, oi, ti->zp, w, j, q, H * H, l->cin, l->cout);
        break;
    case QM_ADD: {
        const struct qint_add *p = &l->add;
        fprintf(f,
                "    qint_add%s(arena + %zu, arena + %zu, arena + %zu,\n"
                "             &(struct qint_add){.zp_a = %d, .zp_b = %d, .m0_a = %ld, .m0_b = "
                "%ld, .shift_a = %d, .shift_b = %d, .zp = %d, .lo = %d, .hi = %d},\n"
                "             %zu);\n",
                sfx, oo, oi, m->t[l->in2].offset, p->zp_a, p->zp_b, (long)p->m0_a, (long)p->m0_b,
                p->shift_a, p->shift_b, p->zp, p->lo, p->hi, (size_t)H * H * l->cout);
        break;
    }
    case QM_POOL:
        fprintf(f,
                "    qint_avgpool%s(arena + %zu, arena + %zu, %d, %ld, %d, %d, %d, %d, %d, %d);\n",
                sfx, oo, oi, ti->zp, (long)l->pool_m0, l->pool_shift, to->zp, l->lo, l->hi, H * H,
                l->cin);
        break;
    case QM_LINEAR:
        if (fast && unpacked(l)) snprintf(w, sizeof w, "(const int8_t *)(plans + %zu)", off);
        if (fast && !unpacked(l)) snprintf(w, sizeof w, "(const int8_t *)w%d", j);
        fprintf(f, "    qint_linear_s32%s(logits, arena + %zu, %d, %s, b%d, %d, %d);\n", sfx, oi,
                ti->zp, w, j, l->cin, l->cout);
        break;
    }
}

/* The fast build's buffers and make_plans (run once, on the first image);
 * off: each layer's plan offset (plan_offsets). */
static void emit_fast_state(FILE *f, const struct qmodel *m, const size_t *off) {
    fprintf(f,
            "static _Alignas(%d) uint8_t plans[APQ_MODEL_PLAN_BYTES];\n"
            "static _Alignas(%d) uint8_t work[APQ_MODEL_WORK_BYTES + 1];\n"
            "static int planned;\n\n"
            "/* The fast kernels' plans of every layer (qint.h), from the constants. */\n"
            "static void make_plans(void) {\n",
            EMIT_ALIGN, EMIT_ALIGN);
    for (int j = 0; j < m->n_layers; j++) emit_plan(f, m, &m->l[j], j, off[j]);
    fprintf(f, "    planned = 1;\n}\n\n");
}

// ---- the three files ---------------------------------------------------------------------

static void write_header(FILE *f, const struct qmodel *m) {
    size_t flash, ram, scratch = qmodel_emit_ram_bytes(m) - m->arena_bytes;
    qmodel_memory(m, &flash, &ram);
    fprintf(f,
            "/* model.h — subnet %s as an integer-only model, generated by apq\n"
            " * (quant/qmodel_emit.c); do not edit. Build with a C11 compiler alone:\n"
            " *     cc -std=c11 -O2 -o model main.c model.c\n"
            " * (add -march=native on an x86 CPU with AVX-512 VNNI for its vector path).\n"
            " *\n"
            " * Two builds of model.c, the same logits bit for bit:\n"
            " *  - fast (the default): apq's fast kernels on plans made from the constants\n"
            " *    on the first call (repacked weights, folded zero points; quant/qint.h).\n"
            " *    Static RAM APQ_MODEL_FAST_RAM_BYTES = the activation arena %zu + the\n"
            " *    plans %zu + the kernels' work buffer %zu bytes.\n"
            " *  - reference (-DAPQ_MODEL_REFERENCE): the reference loop nests on the\n"
            " *    packed weights, the build a microcontroller takes. Flash %zu bytes\n"
            " *    (packed weights, int32 bias and multipliers, int8 shifts: const\n"
            " *    arrays); RAM %zu bytes = the activation arena + the weight unpack\n"
            " *    scratch %zu (plus a few hundred bytes of stack).\n"
            " *\n"
            " * Integers only: every layer accumulates in int32 and requantizes with\n"
            " * y = round(acc * m0 * 2^-(31+shift)), one rounding half away from zero,\n"
            " * exact in 64-bit arithmetic; then clamp(y + zero point) to the bit-width\n"
            " * (apq docs/integer.md). The image is resized %d -> %d by an integer\n"
            " * bilinear resize (rounding half up). Not reentrant: static buffers.\n"
            " * Space %s. */\n"
            "#ifndef APQ_MODEL_H\n#define APQ_MODEL_H\n\n#include <stdint.h>\n\n"
            "#define APQ_MODEL_IN_SIZE        %d /* input image: IN_SIZE x IN_SIZE bytes */\n"
            "#define APQ_MODEL_N_CLASSES      %d\n"
            "#define APQ_MODEL_RES            %d /* the resolution the network runs at */\n"
            "#define APQ_MODEL_ARENA_BYTES    %zu\n"
            "#define APQ_MODEL_SCRATCH_BYTES  %zu\n"
            "#define APQ_MODEL_FLASH_BYTES    %zu\n"
            "#define APQ_MODEL_RAM_BYTES      %zu\n"
            "#define APQ_MODEL_PLAN_BYTES     %zu\n"
            "#define APQ_MODEL_WORK_BYTES     %zu\n"
            "#define APQ_MODEL_FAST_RAM_BYTES %zu\n"
            "/* real logit = APQ_MODEL_LOGIT_SCALE * int32 logit */\n"
            "#define APQ_MODEL_LOGIT_SCALE    %.17g\n\n"
            "/* The int32 logits of image [IN_SIZE][IN_SIZE] (bytes, row-major) into\n"
            " * logits; returns the top-1 class (among equal maxima the lowest index). */\n"
            "int apq_model_run(const uint8_t *image, int32_t logits[APQ_MODEL_N_CLASSES]);\n\n"
            "#endif\n",
            m->arch, m->arena_bytes, plan_offsets(m, NULL), work_bytes(m), flash,
            m->arena_bytes + scratch, scratch, m->in_size, m->res, m->space_hash, m->in_size,
            m->n_classes, m->res, m->arena_bytes, scratch, flash, m->arena_bytes + scratch,
            plan_offsets(m, NULL), work_bytes(m), qmodel_emit_fast_ram_bytes(m), m->logit_scale);
}

static const char *const pragma_push =
    "#if defined(__GNUC__) /* model.c carries whole files: not every kernel is called */\n"
    "#pragma GCC diagnostic push\n"
    "#pragma GCC diagnostic ignored \"-Wunused-function\"\n"
    "#pragma GCC diagnostic ignored \"-Wunused-parameter\"\n"
    "#endif\n\n";
static const char *const pragma_pop =
    "#if defined(__GNUC__)\n#pragma GCC diagnostic pop\n#endif\n\n";

static int write_model(FILE *f, const struct qmodel *m) {
    size_t scratch = qmodel_emit_ram_bytes(m) - m->arena_bytes;
    fprintf(f,
            "/* model.c — subnet %s as an integer-only model, generated by apq; do not\n"
            " * edit (model.h: the API, the two builds, the memory, the build command). */\n"
            "#include \"model.h\"\n\n#include <assert.h>\n#include <stddef.h>\n#include "
            "<stdint.h>\n#include <string.h>\n\n%s",
            m->arch, pragma_push);
    int rc = copy_kernels(f, m);
    if (rc < 0) return rc;
    fprintf(f, "#ifndef APQ_MODEL_REFERENCE\n");
    if ((rc = copy_fast(f)) < 0) return rc;
    fprintf(f, "#endif\n\n%s// ---- the model's constants ----\n\n", pragma_pop);
    for (int j = 0; j < m->n_layers && rc == APQ_OK; j++) rc = emit_arrays(f, &m->l[j], j);
    if (rc < 0) return rc;
    fprintf(f, "// ---- memory and the forward ----\n\n");
    fprintf(f, "static _Alignas(%d) uint8_t arena[APQ_MODEL_ARENA_BYTES];\n", EMIT_ALIGN);
    fprintf(f, "#ifdef APQ_MODEL_REFERENCE\n");
    if (scratch)
        fprintf(f, "static _Alignas(%d) int8_t scratch[APQ_MODEL_SCRATCH_BYTES];\n", EMIT_ALIGN);
    fprintf(f, "#else\n");
    size_t off[QMODEL_MAX_LAYERS];
    plan_offsets(m, off);
    emit_fast_state(f, m, off);
    fprintf(f,
            "#endif\n\n"
            "int apq_model_run(const uint8_t *image, int32_t logits[APQ_MODEL_N_CLASSES]) {\n"
            "    qint_resize_bilinear(arena + %zu, image, %d, %d);\n#ifdef APQ_MODEL_REFERENCE\n",
            m->t[0].offset, m->in_size, m->res);
    for (int j = 0; j < m->n_layers; j++) emit_layer(f, m, &m->l[j], j, 0, 0);
    fprintf(f, "#else\n    if (!planned) make_plans();\n");
    for (int j = 0; j < m->n_layers; j++) emit_layer(f, m, &m->l[j], j, 1, off[j]);
    fprintf(f, "#endif\n"
               "    int best = 0;\n"
               "    for (int i = 1; i < APQ_MODEL_N_CLASSES; i++)\n"
               "        if (logits[i] > logits[best]) best = i;\n"
               "    return best;\n}\n");
    return APQ_OK;
}

/* Write one file through path.tmp.<pid> and a rename. */
static int write_file(const char *dir, const char *name, const struct qmodel *m,
                      int (*body)(FILE *, const struct qmodel *)) {
    char path[1200], tmp[1300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!apq_tmp_path(tmp, sizeof tmp, path))
        return apq_set_error(APQ_EIO, "%s: path too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return apq_set_error(APQ_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    int rc = body(f, m), rc2 = apq_fclose(f, tmp);
    if (rc == APQ_OK) rc = rc2;
    if (rc == APQ_OK && rename(tmp, path) != 0)
        rc = apq_set_error(APQ_EIO, "%s: rename failed: %s", path, strerror(errno));
    if (rc != APQ_OK) remove(tmp);
    return rc;
}

static int header_body(FILE *f, const struct qmodel *m) {
    write_header(f, m);
    return APQ_OK;
}

static int main_body(FILE *f, const struct qmodel *m) {
    (void)m;
    for (int i = 0; main_c_text[i]; i++) fprintf(f, "%s\n", main_c_text[i]);
    return APQ_OK;
}

int qmodel_emit_c(const struct qmodel *m, const char *dir) {
    int rc = write_file(dir, "model.h", m, header_body);
    if (rc == APQ_OK) rc = write_file(dir, "model.c", m, write_model);
    if (rc == APQ_OK) rc = write_file(dir, "main.c", m, main_body);
    return rc;
}
