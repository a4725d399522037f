/* test_extract.c — supernet_extract, subnet_forward and the subnet's HDF5 form:
 * the standalone subnet computes what the supernet computes for its arch
 * (fp32 and quantized, largest, smallest, random), extraction leaves the
 * supernet alone, a saved subnet loads back bit for bit, bad files get one line. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../supernet/subnet.h"
#include "../supernet/supernet.h"

/* The default space's supernet at random initialisation, made less trivial:
 * the kernel transforms identity + N(0, 0.1) (else a smaller kernel is a
 * plain crop) and BN gamma 1 + N(0, 0.2), beta N(0, 0.1). */
struct fixture {
    struct space s;
    struct supernet sn;
    struct sn_ctx c;
    struct dataset data; /* 64 synthetic images: recalibration, calibration, inputs */
    struct rng r;
};

static void perturb(struct supernet *sn, struct rng *r) {
    for (int i = 0; i < sn->n_tensors; i++) {
        const struct sn_tensor *t = &sn->tensors[i];
        const char *n = t->name;
        const size_t len = strlen(n);
        float sd = 0, base = 0;
        if (strstr(n, "/transform_"))
            sd = 0.1f;
        else if (len > 10 && !strcmp(n + len - 10, "/bn/weight"))
            sd = 0.2f, base = 1;
        else if (len > 8 && !strcmp(n + len - 8, "/bn/bias"))
            sd = 0.1f;
        if (t->is_buffer || sd == 0) continue;
        float *p = sn->params + t->offset;
        for (size_t j = 0; j < t->size; j++) {
            float v = (float)rng_normal(r, sd);
            p[j] = base ? base + v : p[j] + v;
        }
    }
}

static void setup(struct fixture *t, uint64_t seed) {
    CHECK(space_load("supernet/spaces/fmnist-mbv2.ini", &t->s) == APQ_OK);
    supernet_init(&t->sn, &t->s, seed, 0);
    rng_init(&t->r, seed, RNG_SAMPLE);
    perturb(&t->sn, &t->r);
    CHECK(sn_ctx_init(&t->c, &t->sn, 64, 1) == APQ_OK);
    t->data = test_synthetic_dataset(64, seed + 1);
}

static void teardown(struct fixture *t) {
    dataset_free(&t->data);
    sn_ctx_free(&t->c);
    supernet_free(&t->sn);
    rng_free(&t->r);
}

/* x [n][res][res] = the first n images of the fixture's data at the arch's resolution. */
static float *inputs(struct fixture *t, int n, int res) {
    float *x = malloc(sizeof(float) * n * res * res), *tmp = malloc(sizeof(float) * n * 28 * 28);
    int idx[64], lab[64];
    for (int i = 0; i < n; i++) idx[i] = i;
    sn_input_batch(x, lab, tmp, &t->data, idx, n, res, 0, NULL);
    free(tmp);
    return x;
}

static float *forward(const struct subnet *net, const float *x, int n) {
    float *scratch = apq_falloc(subnet_scratch_floats(net, n));
    float *logits = malloc(sizeof(float) * n * net->n_classes);
    subnet_forward(logits, net, x, n, scratch);
    free(scratch);
    return logits;
}

/* Prepare subnet a as verify does (quantizer calibration and one QAT step, or
 * BN recalibration alone), extract it, and compare its logits on n images
 * with supernet_forward's in eval mode. Returns the max relative error. */
static double compare_arch(struct fixture *t, const struct arch *a, int n) {
    struct sn_quant q;
    const int quant = arch_is_quantized(a);
    if (quant) {
        qat_calibrate(&t->sn, &t->c, a, &q, &t->data, 64);
        CHECK(qat_finetune(&t->sn, &t->c, a, &q, &t->data, 1, 16, 0.01f, 7) == APQ_OK);
    }
    supernet_recalibrate(&t->sn, &t->c, a, quant ? &q : NULL, &t->data, 64);
    float *p0 = malloc(sizeof(float) * t->sn.n_params), *b0 = malloc(sizeof(float) * t->sn.n_bufs);
    memcpy(p0, t->sn.params, sizeof(float) * t->sn.n_params);
    memcpy(b0, t->sn.bufs, sizeof(float) * t->sn.n_bufs);
    struct subnet net;
    CHECK(supernet_extract(&t->sn, a, quant ? &q : NULL, &net) == APQ_OK);
    /* extraction only reads the supernet */
    CHECK(!memcmp(p0, t->sn.params, sizeof(float) * t->sn.n_params));
    CHECK(!memcmp(b0, t->sn.bufs, sizeof(float) * t->sn.n_bufs));
    struct layer_desc L[ARCH_MAX_LAYERS];
    CHECK(net.n_layers == arch_layers(&t->s, a, L) + 1);
    CHECK(net.res == a->res && net.in_size == 28 && net.n_classes == 10);
    char text[ARCH_STR_MAX];
    arch_to_string(&t->s, a, text, sizeof text);
    CHECK(!strcmp(net.arch, text));
    float *x = inputs(t, n, a->res);
    const float *ref = supernet_forward(&t->sn, &t->c, a, quant ? &q : NULL, x, n, SN_EVAL);
    float *got = forward(&net, x, n);
    const double err = test_max_rel_err(got, ref, (long)n * 10);
    double scale = 0;
    for (int i = 0; i < n * 10; i++) scale = fmax(scale, fabs(ref[i]));
    CHECK(scale > 1e-3); /* logits that carry a signal */
    fprintf(stderr, "  %s: max rel err %.3g (logit scale %.3g)\n", text, err, scale);
    free(got);
    free(x);
    free(p0);
    free(b0);
    subnet_free(&net);
    return err;
}

/* Largest, smallest and 10 random archs at `bits` (0: fp32, else quantized:
 * largest 8-bit, smallest 4-bit, random bit-widths). Both sides run the
 * same kernels on the same shapes, so the error is 0 when OpenBLAS sums a
 * product's terms in one order for a weight block read in place (row stride
 * mid_max) and for its dense copy; 1e-5 of the logits' scale allows a
 * different order. On a quantized arch a rounding flip of one activation
 * moves a logit by one quantization step, so the bound holds only while the
 * two agree bit for bit before each quantizer: they do, the weights being
 * the same dense copies on both sides. */
static void compare_archs(int quantized, uint64_t seed) {
    struct fixture t;
    setup(&t, seed);
    struct arch a;
    arch_largest(&t.s, quantized ? 8 : 0, &a);
    CHECK(compare_arch(&t, &a, 64) <= 1e-5); /* batch 64: the fp32 expand-BN prologue path */
    arch_smallest(&t.s, quantized ? 4 : 0, &a);
    CHECK(compare_arch(&t, &a, 8) <= 1e-5);
    for (int i = 0; i < 10; i++) {
        arch_sample(&t.s, &t.r, quantized, &a);
        CHECK(compare_arch(&t, &a, 8) <= 1e-5);
    }
    teardown(&t);
}

TEST(extract_matches_supernet_fp32) {
    compare_archs(0, 11);
}

TEST(extract_matches_supernet_quant) {
    compare_archs(1, 12);
}

TEST(extract_refuses_bad_input) {
    struct fixture t;
    setup(&t, 13);
    struct arch a;
    struct subnet net;
    arch_smallest(&t.s, 0, &a);
    a.res = 13; /* not a resolution of the space */
    CHECK(supernet_extract(&t.sn, &a, NULL, &net) == APQ_ECONFIG);
    CHECK(net.n_layers == 0 && net.data == NULL);
    arch_smallest(&t.s, 4, &a);
    CHECK(supernet_extract(&t.sn, &a, NULL, &net) == APQ_ECONFIG);
    CHECK(strstr(apq_last_error(), "quantizers") != NULL);
    struct sn_quant q;
    memset(&q, 0, sizeof q); /* ranges 0: never calibrated */
    CHECK(supernet_extract(&t.sn, &a, &q, &net) == APQ_ECONFIG);
    CHECK(net.n_layers == 0 && net.data == NULL);
    subnet_free(&net); /* a zeroed subnet: no-op */
    teardown(&t);
}

// ---- HDF5 ---------------------------------------------------------------------------

/* Every field and every weight of a equals b's, bit for bit. */
static int same_subnet(const struct subnet *a, const struct subnet *b) {
    if (a->n_layers != b->n_layers || a->n_data != b->n_data || strcmp(a->arch, b->arch) ||
        strcmp(a->space_hash, b->space_hash) || a->res != b->res || a->in_size != b->in_size ||
        a->in_ch != b->in_ch || a->n_classes != b->n_classes || a->pixel_mean != b->pixel_mean ||
        a->pixel_std != b->pixel_std || a->bn_eps != b->bn_eps)
        return 0;
    for (int i = 0; i < a->n_layers; i++) {
        struct subnet_layer la = a->layer[i], lb = b->layer[i];
        la.w = la.bias = la.gamma = la.beta = la.mean = la.var = NULL;
        lb.w = lb.bias = lb.gamma = lb.beta = lb.mean = lb.var = NULL;
        if (memcmp(&la, &lb, sizeof la)) return 0;
    }
    return !memcmp(a->data, b->data, sizeof(float) * a->n_data);
}

/* A quantized random subnet of the fixture, calibrated. */
static void make_subnet(struct fixture *t, int quantized, struct subnet *net) {
    struct arch a;
    struct sn_quant q;
    arch_sample(&t->s, &t->r, quantized, &a);
    if (quantized) qat_calibrate(&t->sn, &t->c, &a, &q, &t->data, 64);
    supernet_recalibrate(&t->sn, &t->c, &a, quantized ? &q : NULL, &t->data, 64);
    CHECK(supernet_extract(&t->sn, &a, quantized ? &q : NULL, net) == APQ_OK);
}

TEST(subnet_roundtrip_bit_exact) {
    struct fixture t;
    setup(&t, 14);
    char path[700];
    snprintf(path, sizeof path, "%s/subnet.h5", test_tmpdir);
    for (int quantized = 0; quantized < 2; quantized++) {
        struct subnet net, back;
        make_subnet(&t, quantized, &net);
        CHECK(subnet_save(&net, path, 1, "test") == APQ_OK);
        CHECK(subnet_load(path, &back) == APQ_OK);
        CHECK(same_subnet(&net, &back));
        float *x = inputs(&t, 8, net.res), *l1 = forward(&net, x, 8), *l2 = forward(&back, x, 8);
        CHECK(!memcmp(l1, l2, sizeof(float) * 8 * 10)); /* same data, same calls */
        free(x), free(l1), free(l2);
        subnet_free(&back);
        /* below a group of another file, as verified.h5 holds them */
        hid_t f;
        CHECK(h5_create(path, &f) == APQ_OK);
        CHECK(h5_write_provenance(f, "verified", 1, 1, "test") == APQ_OK);
        CHECK(subnet_write(f, "subnet/3", &net) == APQ_OK);
        CHECK(h5_commit(f, path) == APQ_OK);
        CHECK(h5_open_read(path, "verified", 1, &f) == APQ_OK);
        CHECK(subnet_read(f, "subnet/3", &back) == APQ_OK);
        CHECK(same_subnet(&net, &back));
        subnet_free(&back);
        CHECK(subnet_read(f, "subnet/4", &back) == APQ_EFORMAT);
        CHECK(strstr(apq_last_error(), "no subnet 'subnet/4'") != NULL);
        h5_close(f);
        subnet_free(&net);
    }
    teardown(&t);
}

/* subnet_load(path) fails with status st and one line naming path and containing `what`. */
static void check_refused(const char *path, int st, const char *what) {
    struct subnet net;
    const int rc = subnet_load(path, &net);
    const char *e = apq_last_error();
    if (rc != st || !strstr(e, path) || !strstr(e, what) || strchr(e, '\n'))
        fprintf(stderr, "  got %d: %s\n", rc, e);
    CHECK(rc == st && strstr(e, path) && strstr(e, what) && !strchr(e, '\n'));
    CHECK(net.n_layers == 0 && net.data == NULL);
}

/* Overwrite element i of the i32 or f32 dataset `name` of file path. */
static void poke(const char *path, const char *name, int i, double v, int is_float) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, (hsize_t[]){1}, NULL);
    CHECK(H5Sselect_elements(fs, H5S_SELECT_SET, 1, (hsize_t[]){(hsize_t)i}) >= 0);
    float fv = (float)v;
    int32_t iv = (int32_t)v;
    CHECK(H5Dwrite(d, is_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT,
                   is_float ? (void *)&fv : (void *)&iv) >= 0);
    H5Sclose(ms), H5Sclose(fs), H5Dclose(d), H5Fclose(f);
}

TEST(subnet_load_refuses_bad_files) {
    struct fixture t;
    setup(&t, 15);
    struct subnet net;
    make_subnet(&t, 1, &net);
    char path[700], other[760], cmd[2000];
    snprintf(path, sizeof path, "%s/subnet.h5", test_tmpdir);
    snprintf(other, sizeof other, "%s/other.h5", test_tmpdir);
    check_refused(path, APQ_EIO, "no such file");
    CHECK(subnet_save(&net, path, 1, "test") == APQ_OK);
    /* truncated */
    snprintf(cmd, sizeof cmd, "head -c 3000 %s > %s", path, other);
    CHECK(system(cmd) == 0);
    check_refused(other, APQ_EFORMAT, "truncated or damaged");
    /* foreign: another kind, another version, not HDF5 */
    hid_t f;
    CHECK(h5_create(other, &f) == APQ_OK && h5_write_provenance(f, "samples", 1, 1, "") == 0 &&
          h5_commit(f, other) == 0);
    check_refused(other, APQ_EFORMAT, "format is 'samples', expected 'subnet'");
    CHECK(h5_create(other, &f) == APQ_OK && h5_write_provenance(f, "subnet", 2, 1, "") == 0 &&
          h5_commit(f, other) == 0);
    check_refused(other, APQ_EFORMAT, "format_version is 2, expected 1");
    snprintf(cmd, sizeof cmd, "echo not a subnet > %s", other);
    CHECK(system(cmd) == 0);
    check_refused(other, APQ_EFORMAT, "not an HDF5 file");
    /* a file that holds subnets of another layout version */
    CHECK(h5_create(other, &f) == APQ_OK && h5_write_provenance(f, "subnet", 1, 1, "") == 0 &&
          subnet_write(f, "", &net) == 0 && h5_attr_set_i64(f, "subnet_format_version", 9) == 0 &&
          h5_commit(f, other) == 0);
    check_refused(other, APQ_EFORMAT, "subnet_format_version is 9, expected 1");
    /* damaged content: a broken layer chain, a quantizer range, a variance, a missing tensor */
    snprintf(cmd, sizeof cmd, "cp %s %s", path, other);
    CHECK(system(cmd) == 0);
    poke(other, "layers/cin", 4, 999, 0);
    check_refused(other, APQ_EFORMAT, "layer 4");
    CHECK(system(cmd) == 0);
    poke(other, "layers/w_range", 3, -1, 1);
    check_refused(other, APQ_EFORMAT, "bad quantizer");
    CHECK(system(cmd) == 0);
    poke(other, "first_conv/bn/running_var", 2, -0.5, 1);
    check_refused(other, APQ_EFORMAT, "negative variance");
    CHECK(system(cmd) == 0);
    poke(other, "layers/k", 0, 5, 0); /* the first conv claims 5x5: its weight has 3x3 */
    check_refused(other, APQ_EFORMAT,
                  "first_conv/weight' has shape [16,1,3,3], expected [16,1,5,5]");
    subnet_free(&net);
    teardown(&t);
}

/* The structural check catches what the forward could not survive. */
TEST(subnet_check_rejects_broken_values) {
    struct fixture t;
    setup(&t, 16);
    struct arch a;
    arch_largest(&t.s, 0, &a); /* 3 blocks with a shortcut in each stage of depth 4 */
    supernet_recalibrate(&t.sn, &t.c, &a, NULL, &t.data, 64);
    struct subnet net;
    CHECK(supernet_extract(&t.sn, &a, NULL, &net) == APQ_OK);
    CHECK(subnet_check(&net, "x") == APQ_OK);
    int p1 = -1, p2 = -1; /* the first two shortcut blocks' project layers, one stage */
    for (int i = 0; i < net.n_layers && p2 < 0; i++)
        if (net.layer[i].role == ROLE_PROJECT && net.layer[i].skip >= 0) {
            if (p1 < 0)
                p1 = i;
            else
                p2 = i;
        }
    CHECK(p1 > 0 && p2 == p1 + 3);
    if (p2 < 0) return;
    const int keep = net.layer[p2].skip;
    net.layer[p2].skip = net.layer[p1].skip; /* the same shape, but spans p1's residual */
    CHECK(subnet_check(&net, "x") == APQ_EFORMAT && strstr(apq_last_error(), "residual"));
    net.layer[p2].skip = p2; /* not an earlier layer */
    CHECK(subnet_check(&net, "x") == APQ_EFORMAT && strstr(apq_last_error(), "skip"));
    net.layer[p2].skip = keep;
    net.layer[1].a_bits = 1, net.layer[1].a_signed = 1, net.layer[1].a_range = 1;
    CHECK(subnet_check(&net, "x") == APQ_EFORMAT && strstr(apq_last_error(), "layer 1"));
    net.layer[1].a_bits = 0, net.layer[1].a_signed = 0, net.layer[1].a_range = 0;
    net.layer[net.n_layers - 1].cout = 11;
    CHECK(subnet_check(&net, "x") == APQ_EFORMAT);
    net.layer[net.n_layers - 1].cout = 10;
    CHECK(subnet_check(&net, "x") == APQ_OK);
    subnet_free(&net);
    teardown(&t);
}
