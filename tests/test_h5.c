/* test_h5.c — util/h5: round trips, attributes, shape checks, the
 * tmp-then-rename protocol, and the errors of h5_open_read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "../util/h5.h"
#include "../util/util.h"

static const char *tmp_path(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", test_tmpdir, name);
    return buf;
}

static int file_exists(const char *path) {
    return access(path, F_OK) == 0;
}

/* The detail line names `path`. */
static int error_names(const char *path) {
    return strstr(apq_last_error(), path) != NULL;
}

/* A committed file of format `kind`/`version` holding dataset "x" = {1,2,3}. */
static int make_file(const char *path, const char *kind, int version) {
    hid_t f;
    int rc = h5_create(path, &f);
    if (rc < 0) return rc;
    if ((rc = h5_write_provenance(f, kind, version, 7, "tiny")) < 0 ||
        (rc = h5_write_f32(f, "x", 1, (hsize_t[]){3}, (float[]){1, 2, 3})) < 0) {
        h5_abort(f, path);
        return rc;
    }
    return h5_commit(f, path);
}

TEST(h5_roundtrip_datasets) {
    char path[600], tmp[630];
    tmp_path(path, sizeof path, "rt.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    float f32[2][3][4];
    double f64[5][2];
    int32_t i32[3][2];
    for (int i = 0; i < 24; i++) (&f32[0][0][0])[i] = 0.1f * (float)i - 1.0f;
    for (int i = 0; i < 10; i++) (&f64[0][0])[i] = 1.0 / (i + 1) + 1e-12 * i;
    for (int i = 0; i < 6; i++) (&i32[0][0])[i] = i * 1000003 - 2000000000 * (i % 2);
    const char *strs[] = {"ks3-e4", "", "a,b \"quoted\"", "a much longer string here"};

    hid_t f;
    CHECK(h5_create(path, &f) == APQ_OK);
    CHECK(file_exists(tmp) && !file_exists(path));
    CHECK(h5_write_f32(f, "stage1/block0/w", 3, (hsize_t[]){2, 3, 4}, &f32[0][0][0]) == APQ_OK);
    CHECK(h5_write_f64(f, "f64", 2, (hsize_t[]){5, 2}, &f64[0][0]) == APQ_OK);
    CHECK(h5_write_i32(f, "stage1/ints", 2, (hsize_t[]){3, 2}, &i32[0][0]) == APQ_OK);
    CHECK(h5_write_strings(f, "arch", strs, 4) == APQ_OK);
    CHECK(h5_write_f64(f, "empty", 1, (hsize_t[]){0}, NULL) == APQ_OK);
    /* a second write of the same name is an error naming it */
    CHECK(h5_write_f64(f, "f64", 2, (hsize_t[]){5, 2}, &f64[0][0]) == APQ_EHDF5);
    CHECK(strstr(apq_last_error(), "f64") != NULL);
    /* the wrappers leave only the file itself open */
    CHECK(H5Fget_obj_count(f, H5F_OBJ_ALL | H5F_OBJ_LOCAL) == 1);
    CHECK(h5_commit(f, path) == APQ_OK);
    CHECK(file_exists(path) && !file_exists(tmp));

    CHECK(h5_open_read(path, NULL, 0, &f) == APQ_OK);
    float g32[2][3][4] = {{{0}}};
    double g64[5][2] = {{0}};
    int32_t gi[3][2] = {{0}};
    CHECK(h5_read_f32(f, "stage1/block0/w", 3, (hsize_t[]){2, 3, 4}, &g32[0][0][0]) == APQ_OK);
    CHECK(!memcmp(f32, g32, sizeof f32));
    CHECK(h5_read_f64(f, "f64", 2, (hsize_t[]){5, 2}, &g64[0][0]) == APQ_OK);
    CHECK(!memcmp(f64, g64, sizeof f64));
    CHECK(h5_read_i32(f, "stage1/ints", 2, (hsize_t[]){3, 2}, &gi[0][0]) == APQ_OK);
    CHECK(!memcmp(i32, gi, sizeof i32));
    CHECK(gi[1][1] == 3 * 1000003 - 2000000000);

    int rank = 0;
    hsize_t dims[4] = {0};
    CHECK(h5_shape(f, "stage1/block0/w", &rank, dims) == APQ_OK);
    CHECK(rank == 3 && dims[0] == 2 && dims[1] == 3 && dims[2] == 4);

    /* through a group handle, too */
    hid_t g = H5Gopen2(f, "stage1", H5P_DEFAULT);
    CHECK(g >= 0);
    memset(gi, 0, sizeof gi);
    CHECK(h5_read_i32(g, "ints", 2, (hsize_t[]){3, 2}, &gi[0][0]) == APQ_OK);
    CHECK(gi[2][0] == 4 * 1000003);
    CHECK(h5_read_i32(g, "nope", 1, (hsize_t[]){1}, &gi[0][0]) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "stage1/nope") && error_names(path));
    H5Gclose(g);

    float *a32 = NULL;
    double *a64 = NULL;
    size_t n = 0;
    CHECK(h5_read_f64_alloc(f, "empty", &a64, &n) == APQ_OK && n == 0);
    free(a64);
    a64 = NULL;
    CHECK(h5_read_f32_alloc(f, "x", &a32, &n) == APQ_EFORMAT && a32 == NULL);
    CHECK(h5_read_f32_alloc(f, "f64", &a32, &n) == APQ_EFORMAT); /* rank 2 */
    CHECK(strstr(apq_last_error(), "rank 2") != NULL);

    char **s = NULL;
    CHECK(h5_read_strings(f, "arch", &s, &n) == APQ_OK);
    CHECK(n == 4);
    for (size_t i = 0; s && i < n && i < 4; i++) CHECK(!strcmp(s[i], strs[i]));
    h5_free_strings(s, n);
    /* type mismatch: a float dataset read as strings or ints */
    CHECK(h5_read_strings(f, "f64", &s, &n) == APQ_EFORMAT && s == NULL);
    CHECK(h5_read_i32(f, "f64", 2, (hsize_t[]){5, 2}, &gi[0][0]) == APQ_EFORMAT);

    CHECK(h5_exists(f, "stage1/block0/w") == 1);
    CHECK(h5_exists(f, "stage1/block0") == 1);
    CHECK(h5_exists(f, "stage1/block9/w") == 0);
    CHECK(H5Fget_obj_count(f, H5F_OBJ_ALL | H5F_OBJ_LOCAL) == 1);
    h5_close(f);
}

TEST(h5_f64_alloc_values) {
    char path[600];
    tmp_path(path, sizeof path, "alloc.h5");
    double v[7] = {3.5, -1, 0, 1e300, -2.5e-300, 42, 0.1};
    float w[3] = {1.5f, -2.25f, 1e-30f};
    hid_t f;
    CHECK(h5_create(path, &f) == APQ_OK);
    CHECK(h5_write_f64(f, "v", 1, (hsize_t[]){7}, v) == APQ_OK);
    CHECK(h5_write_f32(f, "w", 1, (hsize_t[]){3}, w) == APQ_OK);
    CHECK(h5_commit(f, path) == APQ_OK);
    CHECK(h5_open_read(path, NULL, 0, &f) == APQ_OK);
    double *got = NULL;
    float *gw = NULL;
    size_t n = 0;
    CHECK(h5_read_f64_alloc(f, "v", &got, &n) == APQ_OK);
    CHECK(n == 7 && got && !memcmp(got, v, sizeof v));
    CHECK(h5_read_f32_alloc(f, "w", &gw, &n) == APQ_OK);
    CHECK(n == 3 && gw && !memcmp(gw, w, sizeof w));
    free(got);
    free(gw);
    h5_close(f);
}

TEST(h5_attributes) {
    char path[600];
    tmp_path(path, sizeof path, "attr.h5");
    hid_t f;
    CHECK(h5_create(path, &f) == APQ_OK);
    CHECK(h5_write_provenance(f, "samples-fp32", 3, 0xfeedULL, "quick") == APQ_OK);
    CHECK(h5_attr_set_str(f, "space", "[space]\nks = 3,5,7\n") == APQ_OK);
    CHECK(h5_attr_set_i64(f, "big", -9007199254740993LL) == APQ_OK);
    CHECK(h5_attr_set_f64(f, "lr", 0.1) == APQ_OK);
    CHECK(h5_attr_set_f64(f, "lr", 0.025) == APQ_OK); /* overwrite */
    CHECK(h5_write_i32(f, "d/x", 1, (hsize_t[]){1}, (int32_t[]){5}) == APQ_OK);
    hid_t ds = H5Dopen2(f, "d/x", H5P_DEFAULT);
    CHECK(ds >= 0);
    CHECK(h5_attr_set_str(ds, "unit", "ms") == APQ_OK);
    H5Dclose(ds);
    CHECK(h5_commit(f, path) == APQ_OK);

    CHECK(h5_open_read(path, "samples-fp32", 3, &f) == APQ_OK);
    char buf[64];
    int64_t v = 0;
    double d = 0;
    CHECK(h5_attr_get_str(f, "format", buf, sizeof buf) == APQ_OK && !strcmp(buf, "samples-fp32"));
    CHECK(h5_attr_get_i64(f, "format_version", &v) == APQ_OK && v == 3);
    CHECK(h5_attr_get_i64(f, "seed", &v) == APQ_OK && v == 0xfeed);
    CHECK(h5_attr_get_i64(f, "threads", &v) == APQ_OK && v == apq_threads());
    CHECK(h5_attr_get_str(f, "profile", buf, sizeof buf) == APQ_OK && !strcmp(buf, "quick"));
    CHECK(h5_attr_get_str(f, "git_rev", buf, sizeof buf) == APQ_OK && !strcmp(buf, apq_git_rev()));
    CHECK(h5_attr_get_str(f, "created", buf, sizeof buf) == APQ_OK);
    /* "2024-05-01T12:34:56Z" */
    CHECK(strlen(buf) == 20 && buf[4] == '-' && buf[10] == 'T' && buf[19] == 'Z');
    CHECK(h5_attr_get_i64(f, "big", &v) == APQ_OK && v == -9007199254740993LL);
    CHECK(h5_attr_get_f64(f, "lr", &d) == APQ_OK && d == 0.025);
    char *s = NULL;
    CHECK(h5_attr_get_str_alloc(f, "space", &s) == APQ_OK && s &&
          !strcmp(s, "[space]\nks = 3,5,7\n"));
    free(s);
    /* truncating read */
    char small[4];
    CHECK(h5_attr_get_str(f, "format", small, sizeof small) == APQ_OK && !strcmp(small, "sam"));
    /* on a dataset */
    ds = H5Dopen2(f, "d/x", H5P_DEFAULT);
    CHECK(h5_attr_get_str(ds, "unit", buf, sizeof buf) == APQ_OK && !strcmp(buf, "ms"));
    H5Dclose(ds);
    /* missing and mistyped */
    CHECK(h5_attr_get_f64(f, "nope", &d) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "nope") && error_names(path));
    CHECK(h5_attr_get_f64(f, "format", &d) == APQ_EFORMAT);
    CHECK(h5_attr_get_i64(f, "lr", &v) == APQ_EFORMAT);
    CHECK(h5_attr_get_str(f, "lr", buf, sizeof buf) == APQ_EFORMAT);
    CHECK(H5Fget_obj_count(f, H5F_OBJ_ALL | H5F_OBJ_LOCAL) == 1);
    h5_close(f);
}

TEST(h5_shape_mismatch) {
    char path[600];
    tmp_path(path, sizeof path, "shape.h5");
    CHECK(make_file(path, "t", 1) == APQ_OK);
    hid_t f;
    CHECK(h5_open_read(path, "t", 1, &f) == APQ_OK);
    float out[4] = {0};
    CHECK(h5_read_f32(f, "x", 1, (hsize_t[]){4}, out) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "has shape [3], expected [4]") != NULL);
    CHECK(error_names(path) && strstr(apq_last_error(), "'x'"));
    CHECK(h5_read_f32(f, "x", 2, (hsize_t[]){3, 1}, out) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "expected [3,1]") != NULL);
    CHECK(out[0] == 0); /* nothing read */
    CHECK(h5_read_f32(f, "x", 1, (hsize_t[]){3}, out) == APQ_OK);
    CHECK(out[0] == 1 && out[2] == 3);
    h5_close(f);
}

TEST(h5_open_errors) {
    char missing[600], trunc[600], text[600], good[600];
    tmp_path(missing, sizeof missing, "missing.h5");
    tmp_path(trunc, sizeof trunc, "trunc.h5");
    tmp_path(text, sizeof text, "text.h5");
    tmp_path(good, sizeof good, "good.h5");
    hid_t f = 123;

    CHECK(h5_open_read(missing, "t", 1, &f) == APQ_EIO);
    CHECK(error_names(missing) && strstr(apq_last_error(), "no such file") &&
          strstr(apq_last_error(), "make"));
    CHECK(f < 0);

    /* a real file, cut to half its size */
    float big[4096];
    for (int i = 0; i < 4096; i++) big[i] = (float)i;
    hid_t w;
    CHECK(h5_create(trunc, &w) == APQ_OK);
    CHECK(h5_write_provenance(w, "t", 1, 1, "tiny") == APQ_OK);
    CHECK(h5_write_f32(w, "big", 1, (hsize_t[]){4096}, big) == APQ_OK);
    CHECK(h5_commit(w, trunc) == APQ_OK);
    FILE *fp = fopen(trunc, "rb");
    CHECK(fp != NULL);
    if (fp) {
        fseek(fp, 0, SEEK_END);
        long size = ftell(fp);
        fclose(fp);
        CHECK(size > 16384);
        CHECK(truncate(trunc, size / 2) == 0);
    }
    CHECK(h5_open_read(trunc, "t", 1, &f) == APQ_EFORMAT);
    CHECK(error_names(trunc) && strstr(apq_last_error(), "truncated"));
    CHECK(f < 0);

    fp = fopen(text, "w");
    CHECK(fp != NULL);
    if (fp) {
        fputs("this is not HDF5\n", fp);
        fclose(fp);
    }
    CHECK(h5_open_read(text, NULL, 0, &f) == APQ_EFORMAT);
    CHECK(error_names(text) && strstr(apq_last_error(), "not an HDF5 file"));

    /* a directory */
    CHECK(h5_open_read(test_tmpdir, NULL, 0, &f) == APQ_EIO);

    CHECK(make_file(good, "samples-fp32", 2) == APQ_OK);
    CHECK(h5_open_read(good, "lut", 2, &f) == APQ_EFORMAT);
    CHECK(error_names(good) && strstr(apq_last_error(), "'samples-fp32'") &&
          strstr(apq_last_error(), "expected 'lut'"));
    CHECK(h5_open_read(good, "samples-fp32", 1, &f) == APQ_EFORMAT);
    CHECK(error_names(good) && strstr(apq_last_error(), "format_version is 2, expected 1"));
    CHECK(f < 0);
    CHECK(h5_open_read(good, "samples-fp32", 2, &f) == APQ_OK && f >= 0);
    h5_close(f);

    /* no provenance at all */
    CHECK(h5_create(good, &w) == APQ_OK);
    CHECK(h5_commit(w, good) == APQ_OK);
    CHECK(h5_open_read(good, "lut", 1, &f) == APQ_EFORMAT);
    CHECK(error_names(good) && strstr(apq_last_error(), "format"));
    /* every failed open closed its handles */
    CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
}

TEST(h5_commit_and_abort) {
    char path[600], tmp[630];
    tmp_path(path, sizeof path, "c.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    hid_t f;
    CHECK(h5_create(path, &f) == APQ_OK);
    CHECK(h5_write_i32(f, "a", 1, (hsize_t[]){2}, (int32_t[]){1, 2}) == APQ_OK);
    h5_abort(f, path);
    CHECK(!file_exists(path) && !file_exists(tmp));

    /* an abort keeps an older committed file */
    CHECK(make_file(path, "t", 1) == APQ_OK);
    CHECK(!file_exists(tmp));
    CHECK(h5_create(path, &f) == APQ_OK);
    h5_abort(f, path);
    CHECK(file_exists(path) && !file_exists(tmp));
    CHECK(h5_open_read(path, "t", 1, &f) == APQ_OK);
    h5_close(f);

    /* a leaked handle is closed by commit (strong close degree) */
    CHECK(h5_create(path, &f) == APQ_OK);
    CHECK(h5_write_i32(f, "a", 1, (hsize_t[]){2}, (int32_t[]){1, 2}) == APQ_OK);
    hid_t leak = H5Dopen2(f, "a", H5P_DEFAULT);
    CHECK(leak >= 0);
    CHECK(h5_commit(f, path) == APQ_OK);
    CHECK(!file_exists(tmp));
    CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);

    /* unwritable directory */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.h5", test_tmpdir);
    CHECK(h5_create(bad, &f) == APQ_EIO);
    CHECK(strstr(apq_last_error(), bad) != NULL);
}

/* Artifacts are written in the HDF5 1.8 format (superblock version 2), whose
 * metadata carry checksums, with the superblock's checksum made right after
 * H5Fget_file_image cleared its status flags (util/h5.c): the file opens; a
 * flipped bit anywhere in its superblock, or in the root group's object
 * header that follows it, is a one-line "damaged" error, not a crash. */
TEST(h5_checksummed_format) {
    char path[600], bad[600];
    snprintf(path, sizeof path, "%s/ok.h5", test_tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.h5", test_tmpdir);
    CHECK(make_file(path, "samples", 1) == APQ_OK);
    FILE *f = fopen(path, "rb");
    unsigned char img[1 << 14];
    const size_t n = f ? fread(img, 1, sizeof img, f) : 0;
    if (f) fclose(f);
    CHECK(n > 200 && img[8] == 2); /* superblock version 2 */
    hid_t h;
    CHECK(h5_open_read(path, "samples", 1, &h) == APQ_OK);
    h5_close(h);
    int refused = 0, tried = 0;
    for (size_t i = 8; i < 48 + 150 && i < n; i += 3, tried++) {
        img[i] ^= 0x10;
        f = fopen(bad, "wb");
        CHECK(f && fwrite(img, 1, n, f) == n && fclose(f) == 0);
        img[i] ^= 0x10;
        int rc = h5_open_read(bad, "samples", 1, &h);
        if (rc == APQ_OK) {
            float x[3];
            rc = h5_read_f32(h, "x", 1, (hsize_t[]){3}, x);
            h5_close(h);
        }
        refused += rc < 0 && error_names(bad);
    }
    fprintf(stderr, "  %d of %d damaged copies refused\n", refused, tried);
    CHECK(refused == tried);
}

/* Found by fuzz/fuzz_h5.c: a samples file whose acc_val is a compact dataset
 * of shape [10] holding 0 bytes (tests/fuzz/samples-compact-empty.h5, 4.8 KB,
 * minimised from the fuzzer's input) made HDF5 1.10's H5Dread memcpy from
 * NULL: apq-train-predictor died of SIGSEGV. The readers check that a
 * contiguous or compact dataset holds exactly its shape's bytes first. */
TEST(h5_damaged_storage_refused) {
    const char *path = APQ_SRC_DIR "/tests/fuzz/samples-compact-empty.h5";
    hid_t f;
    CHECK(h5_open_read(path, "samples", 1, &f) == APQ_OK);
    double *v = NULL;
    size_t n = 0;
    CHECK(h5_read_f64_alloc(f, "acc_val", &v, &n) == APQ_EFORMAT);
    CHECK(error_names("samples-compact-empty.h5") && strstr(apq_last_error(), "acc_val") &&
          strstr(apq_last_error(), "holds 0 bytes") && strstr(apq_last_error(), "10 x 8"));
    CHECK(v == NULL && n == 0);
    double w[10];
    CHECK(h5_read_f64(f, "acc_val", 1, (hsize_t[]){10}, w) == APQ_EFORMAT);
    h5_close(f);
}
