/* test_arch.c — the search space and the arch value type. */
#include <string.h>

#include "test.h"
#include "../supernet/arch.h"

static struct space load_default(void) {
    struct space s;
    int rc = space_load("supernet/spaces/fmnist-mbv2.ini", &s);
    if (rc < 0) fprintf(stderr, "  %s\n", apq_last_error());
    CHECK(rc == APQ_OK);
    return s;
}

TEST(space_default_blocks) {
    struct space s = load_default();
    CHECK(s.n_stages == 5);
    CHECK(s.n_blocks == 17); /* 4+4+4+4+1 */
    CHECK(s.block[0].cin == 16 && s.block[0].cout == 24 && s.block[0].stride == 2);
    CHECK(s.block[0].mid_min == 48 && s.block[0].mid_max == 96 && s.block[0].n_mid == 7);
    CHECK(s.block[1].residual && !s.block[0].residual);
    CHECK(s.block[8].cin == 32 && s.block[8].cout == 64 && s.block[8].stride == 1 &&
          !s.block[8].residual);
    CHECK(s.block[16].cin == 96 && s.block[16].cout == 160 && s.block[16].n_mid == 37);
    CHECK(space_block_hin(&s, 0, 28) == 28);
    CHECK(space_block_hin(&s, 1, 28) == 14);
    CHECK(space_block_hin(&s, 5, 28) == 7);
    CHECK(space_block_hin(&s, 13, 28) == 4);
    CHECK(space_final_size(&s, 28) == 4);
    CHECK(space_final_size(&s, 20) == 3);
}

TEST(space_bad_files) {
    struct space s;
    CHECK(space_load("/nonexistent/x.ini", &s) == APQ_EIO);
    CHECK(strstr(apq_last_error(), "/nonexistent/x.ini") != NULL);
    const char *bad_key = "[space]\nname=x\nfoo=1\n";
    CHECK(space_parse(bad_key, "mem.ini", &s) == APQ_ECONFIG);
    CHECK(strstr(apq_last_error(), "mem.ini:3") && strstr(apq_last_error(), "unknown key"));
    const char *missing = "[space]\nname=x\n";
    CHECK(space_parse(missing, "mem.ini", &s) == APQ_ECONFIG);
    CHECK(strstr(apq_last_error(), "missing") != NULL);
}

/* Found by fuzz/fuzz_space.c: the arch stores mid channels in 16 bits, so a
 * space whose mid range reaches past 65535 (first_block 4096 x ratio 16) is
 * refused by name instead of wrapping every largest arch's mid to 0. */
TEST(space_mid_beyond_arch_field) {
    const char *text = "[space]\nname = wide\ninput_channels = 1\ninput_size = 28\n"
                       "classes = 10\nresolutions = 12\nkernels = 3\nbits = 8\nfixed_bits = 8\n"
                       "mid_ratio_min = 3\nmid_ratio_max = %d\nmid_step = 8\n[stem]\n"
                       "first_conv = 8\nfirst_conv_kernel = 3\nfirst_block = 4096\n"
                       "feature_mix = 64\n[stage1]\nwidth = 16\nstride = 2\ndepth = 1\n";
    char buf[1024];
    struct space s;
    snprintf(buf, sizeof buf, text, 16); /* mid up to 65536 */
    CHECK(space_parse(buf, "wide.ini", &s) == APQ_ECONFIG);
    CHECK(strstr(apq_last_error(), "wide.ini") && strstr(apq_last_error(), "65535"));
    snprintf(buf, sizeof buf, text, 15); /* mid up to 61440: fits */
    CHECK(space_parse(buf, "wide.ini", &s) == APQ_OK);
    struct arch a;
    arch_largest(&s, 0, &a);
    CHECK(a.mid[0] == 61440 && arch_check(&s, &a) == APQ_OK);
}

/* MAC counts worked out by hand for the largest and smallest subnets. */
TEST(arch_macs_extremes) {
    struct space s = load_default();
    struct arch big, small;
    arch_largest(&s, 0, &big);
    arch_smallest(&s, 0, &small);
    double mb = arch_macs(&s, &big) / 1e6, ms = arch_macs(&s, &small) / 1e6;
    fprintf(stderr, "  largest %.2f M MACs, smallest %.2f M MACs\n", mb, ms);
    CHECK(mb > 25 && mb < 60);
    CHECK(ms < mb / 5);
    /* first conv at 28: 28*28*9*1*16 */
    struct layer_desc L[ARCH_MAX_LAYERS];
    int n = arch_layers(&s, &big, L);
    CHECK(n == 3 + 3 * 17 + 2);
    CHECK_NEAR(layer_macs(&L[0]), 28 * 28 * 9 * 16, 0);
    /* block 0 depthwise: 96 ch, k7, 28 -> 14 */
    CHECK(L[4].kind == LAYER_DW && L[4].h_in == 28 && L[4].h_out == 14 && L[4].k == 7);
    CHECK_NEAR(layer_macs(&L[4]), 14 * 14 * 49 * 96, 0);
    CHECK(L[n - 1].kind == LAYER_LINEAR && L[n - 1].cin == 640 && L[n - 1].cout == 10);
}

TEST(arch_string_roundtrip) {
    struct space s = load_default();
    struct rng r;
    rng_init(&r, 7, RNG_SAMPLE);
    for (int t = 0; t < 500; t++) {
        struct arch a, b;
        arch_sample(&s, &r, t & 1, &a);
        CHECK(arch_check(&s, &a) == APQ_OK);
        char buf[ARCH_STR_MAX], buf2[ARCH_STR_MAX];
        arch_to_string(&s, &a, buf, sizeof buf);
        CHECK(!strchr(buf, ',') && !strchr(buf, ' '));
        int rc = arch_from_string(&s, buf, &b);
        if (rc) fprintf(stderr, "  %s\n", apq_last_error());
        CHECK(rc == APQ_OK && arch_equal(&a, &b) && arch_hash(&a) == arch_hash(&b));
        arch_to_string(&s, &b, buf2, sizeof buf2);
        CHECK(!strcmp(buf, buf2));
    }
    rng_free(&r);
    struct arch a;
    arch_largest(&s, 8, &a);
    char buf[ARCH_STR_MAX];
    arch_to_string(&s, &a, buf, sizeof buf);
    CHECK(!strncmp(buf, "r28_k7m96q8888.k7m144q8888.k7m144q8888.k7m144q8888_k7m144q8888.", 62));
}

TEST(arch_bad_strings) {
    struct space s = load_default();
    struct arch a;
    const char *bad[] = {"",
                         "x28",
                         "r27_k3m48",
                         "r28_k3m48",
                         "r28_k4m48.k3m72_k3m72.k3m96_k3m96.k3m192_k3m192.k3m288_k3m288",
                         "r28_k3m50.k3m72_k3m72.k3m96_k3m96.k3m192_k3m192.k3m288_k3m288",
                         "r28_k3m48q8888.k3m72_k3m72.k3m96_k3m96.k3m192_k3m192.k3m288_k3m288",
                         "r28_k3m48.k3m72_k3m72.k3m96_k3m96.k3m192_k3m192.k3m288_k3m288_k3m288",
                         "r28_k3m48.k3m72_k3m72.k3m96_k3m96.k3m192_k3m192.k3m288_k3m288 ",
                         "r28_k3m48q5888.k3m72q8888_k3m72q8888.k3m96q8888_k3m96q8888.k3m192q8888_"
                         "k3m192q8888.k3m288q8888_k3m288q8888"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = arch_from_string(&s, bad[i], &a);
        CHECK(rc == APQ_ECONFIG);
        CHECK(strstr(apq_last_error(), "bad arch") != NULL);
    }
    CHECK(arch_from_string(&s, "r28_k3m48.k3m72_k3m72.k3m96_k3m96.k3m192_k3m192.k3m288_k3m288",
                           &a) == APQ_OK);
}

/* Found by fuzz/fuzz_arch.c: every accepted text is canonical (it prints back
 * byte for byte), so numbers with a leading zero or beyond the field's width
 * (res and mid are 16-bit, k 8-bit: 65564 would wrap to 28) are refused. */
TEST(arch_noncanonical_numbers) {
    struct space s = load_default();
    struct arch a;
    const char *tail = "_k3m72.k3m96_k3m96.k3m192_k3m192.k3m288_k3m288";
    const char *bad[] = {"r028_k3m48.k3m72",     "r28_k03m48.k3m72",  "r28_k3m048.k3m72",
                         "r65564_k3m48.k3m72",   "r28_k259m48.k3m72", "r28_k3m65584.k3m72",
                         "r28_k3m48.k3m72q08888"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[ARCH_STR_MAX];
        snprintf(text, sizeof text, "%s%s", bad[i], tail);
        int rc = arch_from_string(&s, text, &a);
        if (rc == APQ_OK) fprintf(stderr, "  accepted '%s'\n", text);
        CHECK(rc == APQ_ECONFIG);
    }
    char text[ARCH_STR_MAX], back[ARCH_STR_MAX];
    snprintf(text, sizeof text, "r28_k3m48.k3m72%s", tail);
    CHECK(arch_from_string(&s, text, &a) == APQ_OK);
    arch_to_string(&s, &a, back, sizeof back);
    CHECK(!strcmp(text, back));
}

TEST(arch_canonical_equal) {
    struct space s = load_default();
    struct arch a, b;
    arch_largest(&s, 0, &a);
    b = a;
    a.depth[0] = 2;
    b.depth[0] = 2;
    b.ks[2] = 5; /* differs only in an inactive block */
    CHECK(!arch_equal(&a, &b));
    arch_canonicalize(&s, &a);
    arch_canonicalize(&s, &b);
    CHECK(arch_equal(&a, &b));
    CHECK(arch_check(&s, &a) == APQ_OK);
}
