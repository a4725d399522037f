/* test_qmodel.c — the integer model of a quantized subnet (quant/qmodel.h):
 * the integer resize against the float one, the reference and fast kernels
 * giving the same logits, the conversion tracking the fake-quantized subnet,
 * the memory plan, model.h5's round trip and refusals, and the standalone C
 * export (model.c compiled with cc alone, its logits bit for bit). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/nn.h"
#include "../quant/qmodel.h"
#include "../quant/qmodel_emit.h"
#include "../quant/qmodel_internal.h"
#include "../supernet/subnet.h"
#include "../supernet/supernet.h"
#include "test.h"

/* Within half a byte step of nn_resize_bilinear (plus float noise), for
 * every resolution of the space and a few odd ones; the identity at h. */
TEST(qmodel_resize_matches_float) {
    struct rng r;
    rng_init(&r, 5, RNG_DATA);
    uint8_t in[28 * 28], out[64 * 64];
    float fin[28 * 28], fout[64 * 64];
    for (int i = 0; i < 28 * 28; i++) fin[i] = in[i] = (uint8_t)rng_int(&r, 256);
    const int sizes[] = {20, 24, 28, 13, 33, 56};
    for (int s = 0; s < 6; s++) {
        int oh = sizes[s];
        qmodel_resize(out, in, 28, oh);
        nn_resize_bilinear(fout, fin, 1, 28, 28, 1, oh, oh);
        double worst = 0;
        for (int i = 0; i < oh * oh; i++) worst = fmax(worst, fabs(out[i] - fout[i]));
        CHECK(worst <= 0.5 + 0.01); /* the final rounding + the weights' 1/32768 steps */
        if (oh == 28) CHECK(!memcmp(out, in, sizeof in));
    }
    rng_free(&r);
}

/* A random quantized subnet of a perturbed supernet (fmnist-mbv2), its
 * quantizers calibrated on synthetic images, BN recalibrated; bits > 0 sets
 * every block's bit-widths to bits. */
static void random_subnet(uint64_t seed, int bits, struct subnet *net, struct dataset *d) {
    struct space s;
    struct supernet sn;
    struct sn_ctx c;
    struct rng r;
    struct arch a;
    struct sn_quant q;
    CHECK(space_load("supernet/spaces/fmnist-mbv2.ini", &s) == APQ_OK);
    supernet_init(&sn, &s, seed, 0);
    rng_init(&r, seed, RNG_SAMPLE);
    for (int i = 0; i < sn.n_tensors; i++) { /* BN gamma 1 + N(0, 0.2): not the identity */
        const struct sn_tensor *t = &sn.tensors[i];
        size_t len = strlen(t->name);
        if (t->is_buffer || len < 10 || strcmp(t->name + len - 10, "/bn/weight")) continue;
        for (size_t j = 0; j < t->size; j++)
            sn.params[t->offset + j] = 1 + (float)rng_normal(&r, 0.2);
    }
    CHECK(sn_ctx_init(&c, &sn, 64, 1) == APQ_OK);
    *d = test_synthetic_dataset(64, seed + 1);
    arch_sample(&s, &r, 1, &a);
    if (bits) arch_set_bits(&s, &a, bits);
    qat_calibrate(&sn, &c, &a, &q, d, 64);
    supernet_recalibrate(&sn, &c, &a, &q, d, 64);
    CHECK(supernet_extract(&sn, &a, &q, net) == APQ_OK);
    sn_ctx_free(&c);
    supernet_free(&sn);
    rng_free(&r);
}

/* The reference kernels and the fast ones give the same int32 logits, and
 * the model's dequantized logits follow the fake-quantized subnet's. */
TEST(qmodel_ref_fast_and_fake_agree) {
    for (uint64_t seed = 1; seed <= 3; seed++) {
        struct subnet net;
        struct dataset d;
        struct qmodel m;
        random_subnet(seed, 8, &net, &d);
        CHECK(qmodel_from_subnet(&net, &m) == APQ_OK);
        CHECK(m.n_layers > net.n_layers && m.logit_scale > 0);
        void *work = aligned_alloc(64, (qmodel_work_bytes(&m) + 63) / 64 * 64);
        int32_t a[10], b[10];
        float *x = apq_falloc((size_t)net.res * net.res), *tmp = apq_falloc(28 * 28),
              *fl = apq_falloc(10), *scr = apq_falloc(subnet_scratch_floats(&net, 1));
        double num = 0, den = 0;
        for (int i = 0; i < 16; i++) {
            const uint8_t *img = d.images + (size_t)i * 28 * 28;
            qmodel_run(&m, img, a, work, 1);
            qmodel_run(&m, img, b, work, 0);
            CHECK(!memcmp(a, b, sizeof a));
            int lab;
            sn_input_batch(x, &lab, tmp, &d, &i, 1, net.res, 0, NULL);
            subnet_forward(fl, &net, x, 1, scr);
            for (int k = 0; k < 10; k++) {
                double e = a[k] * m.logit_scale - fl[k];
                num += e * e;
                den += (double)fl[k] * fl[k];
            }
        }
        /* 8 bits everywhere. The two compute the same residual (quantized block
         * input plus the 8-bit projection) and differ by rounding: the bias in
         * accumulator units, the input's integer resize and zero point, float
         * sums; a random network amplifies each flip, so the logits differ by
         * 0.2-0.3 of their RMS here (0.27-0.30 when the fake graph added the
         * float block input). A wrong scale, sign or layout gives 1 or more. */
        fprintf(stderr, "  seed %d: relative RMS logit error %.3g\n", (int)seed, sqrt(num / den));
        CHECK(den > 0 && sqrt(num / den) < 0.45);
        size_t flash, ram;
        qmodel_memory(&m, &flash, &ram);
        CHECK(flash > 0 && ram == m.arena_bytes + m.scratch_bytes);
        free(work), free(x), free(tmp), free(fl), free(scr);
        qmodel_free(&m);
        subnet_free(&net);
        dataset_free(&d);
    }
}

/* The arena plan: no two tensors that are live at once overlap, and no
 * layer writes over its own input (an add over its first input excepted). */
TEST(qmodel_memory_plan_no_overlap) {
    struct subnet net;
    struct dataset d;
    struct qmodel m;
    random_subnet(11, 0, &net, &d);
    CHECK(qmodel_from_subnet(&net, &m) == APQ_OK);
    int first[QMODEL_MAX_TENSORS], last[QMODEL_MAX_TENSORS];
    for (int t = 0; t < m.n_tensors; t++) first[t] = t ? 1 << 30 : -1, last[t] = -1;
    for (int j = 0; j < m.n_layers; j++) {
        const struct qmodel_layer *l = &m.l[j];
        if (l->out >= 0 && first[l->out] > j) first[l->out] = j;
        last[l->in] = j;
        if (l->in2 >= 0) last[l->in2] = j;
        if (l->out >= 0 && last[l->out] < j) last[l->out] = j;
    }
    int bad = 0;
    for (int u = 0; u < m.n_tensors; u++)
        for (int v = u + 1; v < m.n_tensors; v++) {
            if (first[u] > last[v] || first[v] > last[u]) continue;
            if (m.t[u].offset == m.t[v].offset) continue; /* an add in place */
            size_t a0 = m.t[u].offset, a1 = a0 + (size_t)m.t[u].h * m.t[u].h * m.t[u].c;
            size_t b0 = m.t[v].offset, b1 = b0 + (size_t)m.t[v].h * m.t[v].h * m.t[v].c;
            bad += a0 < b1 && b0 < a1;
            CHECK(a1 <= m.arena_bytes && b1 <= m.arena_bytes);
        }
    CHECK(bad == 0);
    qmodel_free(&m);
    subnet_free(&net);
    dataset_free(&d);
}

TEST(qmodel_file_roundtrip_and_refusals) {
    struct subnet net;
    struct dataset d;
    struct qmodel m, m2;
    random_subnet(21, 0, &net, &d);
    CHECK(qmodel_from_subnet(&net, &m) == APQ_OK);
    char path[700], cmd[1600];
    snprintf(path, sizeof path, "%s/model.h5", test_tmpdir);
    CHECK(qmodel_save(&m, path, 1, "test") == APQ_OK);
    CHECK(qmodel_load(path, &m2) == APQ_OK);
    CHECK(m2.n_layers == m.n_layers && m2.n_tensors == m.n_tensors &&
          m2.arena_bytes == m.arena_bytes && m2.logit_scale == m.logit_scale);
    void *w1 = aligned_alloc(64, (qmodel_work_bytes(&m) + 63) / 64 * 64),
         *w2 = aligned_alloc(64, (qmodel_work_bytes(&m2) + 63) / 64 * 64);
    for (int i = 0; i < 8; i++) {
        int32_t a[10], b[10];
        qmodel_run(&m, d.images + (size_t)i * 784, a, w1, 0);
        qmodel_run(&m2, d.images + (size_t)i * 784, b, w2, 0);
        CHECK(!memcmp(a, b, sizeof a));
    }
    free(w1), free(w2);
    qmodel_free(&m2);
    /* truncated, and not a model */
    snprintf(cmd, sizeof cmd, "head -c 5000 %s > %s/cut.h5", path, test_tmpdir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s/cut.h5", test_tmpdir);
    CHECK(qmodel_load(cmd, &m2) < 0 && strstr(apq_last_error(), "cut.h5"));
    CHECK(subnet_save(&net, cmd, 1, "test") == APQ_OK);
    CHECK(qmodel_load(cmd, &m2) < 0 && strstr(apq_last_error(), "cut.h5"));
    /* a layer table that points outside the tensors */
    CHECK(qmodel_check(&m, "x") == APQ_OK);
    m.l[3].in = m.n_tensors + 4;
    CHECK(qmodel_check(&m, "poked") == APQ_EFORMAT && strstr(apq_last_error(), "poked: layer 3"));
    m.l[3].in = 0;
    qmodel_free(&m);
    subnet_free(&net);
    dataset_free(&d);
}

// ---- the standalone C export (quant/qmodel_emit.h) -------------------------------

/* The first n images and labels of d as a plain IDX pair in dir. */
static void write_idx(const char *dir, const struct dataset *d, int n) {
    char p[1300];
    const uint8_t hi[16] = {0, 0,  8, 3, 0, 0, (uint8_t)(n >> 8), (uint8_t)n, 0, 0,
                            0, 28, 0, 0, 0, 28};
    const uint8_t hl[8] = {0, 0, 8, 1, 0, 0, (uint8_t)(n >> 8), (uint8_t)n};
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
    FILE *f = fopen(p, "wb");
    CHECK(f && fwrite(hi, 1, 16, f) == 16 && fwrite(d->images, 784, (size_t)n, f) == (size_t)n);
    if (f) fclose(f);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
    f = fopen(p, "wb");
    CHECK(f && fwrite(hl, 1, 8, f) == 8 && fwrite(d->labels, 1, (size_t)n, f) == (size_t)n);
    if (f) fclose(f);
}

/* Bytes of model.c's const arrays (w, b, m, s per layer): what model.h calls flash. */
static size_t const_bytes(const char *path) {
    FILE *f = fopen(path, "r");
    char line[4096];
    size_t total = 0, n;
    char type[16];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "static const %15s %*[a-z]%*d[%zu]", type, &n) == 2)
            total += n * (!strcmp(type, "int32_t") ? 4 : 1);
    if (f) fclose(f);
    return total;
}

/* The int32 logits model prints for its first 16 images (out: its output)
 * against a [16][10]; returns the mismatches; *rest points after them. */
static int logit_mismatches(const char *out, const int32_t (*a)[10], const char **rest) {
    int mismatches = 0;
    for (int i = 0; i < 16; i++)
        for (int k = 0; k < 10; k++) {
            char *end;
            long v = strtol(out, &end, 10);
            mismatches += end == out || v != a[i][k];
            out = end;
        }
    *rest = out;
    return mismatches;
}

/* One subnet exported, compiled with -Werror in its three builds (fast
 * portable, fast for this CPU, -DAPQ_MODEL_REFERENCE), run on an IDX pair:
 * every int32 logit equals qmodel_run's (reference and fast kernels), the
 * accuracy line counts the same top-1 hits, model.h's memory figures are the
 * code's. */
static void check_emitted(uint64_t seed, int bits, const char *data, const struct dataset *d) {
    struct subnet net;
    struct dataset dd;
    struct qmodel m;
    random_subnet(seed, bits, &net, &dd);
    CHECK(qmodel_from_subnet(&net, &m) == APQ_OK);
    char dir[700], p[800];
    static char out[1 << 16];
    snprintf(dir, sizeof dir, "%s/c%d", test_tmpdir, (int)seed);
    CHECK(test_sh(0, NULL, 0, "mkdir -p %s", dir) == 0);
    CHECK(qmodel_emit_c(&m, dir) == APQ_OK);
    void *work = aligned_alloc(64, (qmodel_work_bytes(&m) + 63) / 64 * 64);
    int32_t a[64][10];
    int hits = 0;
    for (int i = 0; i < 64; i++) {
        int32_t b[10];
        qmodel_run(&m, d->images + (size_t)i * 784, a[i], work, 1);
        qmodel_run(&m, d->images + (size_t)i * 784, b, work, 0);
        CHECK(!memcmp(a[i], b, sizeof b));
        hits += qmodel_argmax(a[i], 10) == d->labels[i];
    }
    const char *builds[] = {"", "-march=native", "-DAPQ_MODEL_REFERENCE"};
    for (int k = 0; k < 3; k++) {
        int st =
            test_sh(0, out, sizeof out,
                    "cd %s && cc -std=c11 -O2 -Wall -Wextra -Werror %s -o model main.c model.c",
                    dir, builds[k]);
        if (st) fprintf(stderr, "%s", out);
        CHECK(st == 0);
        CHECK(test_sh(0, out, sizeof out, "%s/model %s --logits 16 --images 64", dir, data) == 0);
        const char *s;
        CHECK(logit_mismatches(out, (const int32_t(*)[10])a, &s) == 0);
        fprintf(stderr, "  seed %d, bits %d, build '%s': %d layers, %zu B arena, %s", (int)seed,
                bits, builds[k], m.n_layers, m.arena_bytes, s + 1);
        snprintf(p, sizeof p, "(%d/64)", hits);
        CHECK(strstr(s, "accuracy ") && strstr(s, p));
    }
    size_t flash, ram;
    qmodel_memory(&m, &flash, &ram);
    snprintf(p, sizeof p, "%s/model.c", dir);
    CHECK(const_bytes(p) == flash);
    const struct {
        const char *name;
        size_t v;
    } defs[] = {{"RAM_BYTES", qmodel_emit_ram_bytes(&m)},
                {"FLASH_BYTES", flash},
                {"FAST_RAM_BYTES", qmodel_emit_fast_ram_bytes(&m)}};
    for (int k = 0; k < 3; k++)
        CHECK(test_sh(0, NULL, 0, "grep -q '^#define APQ_MODEL_%s  *%zu$' %s/model.h", defs[k].name,
                      defs[k].v, dir) == 0);
    CHECK(qmodel_emit_fast_ram_bytes(&m) > m.arena_bytes + flash); /* the plans hold int8 weights */
    CHECK(test_sh(0, NULL, 0, "ls %s | grep -c tmp", dir) != 0);   /* no temporary left */
    free(work);
    qmodel_free(&m);
    subnet_free(&net);
    dataset_free(&dd);
}

TEST(qmodel_emit_c_bit_exact) {
    struct dataset d = test_synthetic_dataset(64, 99);
    char data[1200];
    static char out[4096];
    snprintf(data, sizeof data, "%s/data", test_tmpdir);
    CHECK(test_sh(0, NULL, 0, "mkdir -p %s", data) == 0);
    write_idx(data, &d, 64);
    check_emitted(31, 4, data, &d); /* the blocks unpacked from 4-bit fields */
    check_emitted(32, 0, data, &d); /* mixed 4/6/8 bits: unpacked and in place */
    /* main.c's refusals: a missing file, a bad option */
    snprintf(data, sizeof data, "%s/c31/model %s/nowhere", test_tmpdir, test_tmpdir);
    CHECK(test_sh(0, out, sizeof out, "%s", data) == 1 && test_n_lines(out) == 1 &&
          strstr(out, "nowhere/t10k-images-idx3-ubyte.gz"));
    snprintf(data, sizeof data, "%s/c31/model --logits x", test_tmpdir);
    CHECK(test_sh(0, out, sizeof out, "%s", data) == 2 && test_n_lines(out) == 1);
    dataset_free(&d);
}
