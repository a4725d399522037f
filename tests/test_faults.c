/* test_faults.c — bad input and faults (issue 13): data that do not fit the
 * space, profile values out of range, non-finite values in artifacts, a full
 * disk, divergence. Each ends with a returned status and one line naming the
 * file or key (library), or one stderr line and exit 1/2 (stages), and leaves
 * the previous artifact as it was. */
#include <fenv.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "../datasets/datasets.h"
#include "../devices/devices.h"
#include "../predictor/predictor.h"
#include "../supernet/supernet.h"
#include "../util/csvio.h"
#include "../util/h5.h"

/* Run a shell command in the source tree (test_vsh, quiet); the exit status. */
static int run(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int st = test_vsh(1, out, n, fmt, ap);
    va_end(ap);
    return st;
}

/* The whole file (malloc'ed, *n bytes), NULL when unreadable. */
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static void copy_file(const char *from, const char *to) {
    size_t n = 0;
    char *buf = slurp(from, &n);
    FILE *f = fopen(to, "wb");
    CHECK(buf && f && fwrite(buf, 1, n, f) == n);
    if (f) fclose(f);
    free(buf);
}

/* Tests that feed NaN through the network on purpose: the runner's FE_INVALID
 * trap off, and one thread (OpenMP workers keep the trap they started with). */
static void nan_on_purpose(int on) {
    if (on) {
        fedisableexcept(FE_ALL_EXCEPT);
        omp_set_num_threads(1);
    } else {
        omp_set_num_threads(apq_threads());
    }
}

/* Overwrite element i of a floating-point dataset of an HDF5 file with v. */
static void poke(const char *path, const char *dataset, size_t i, double v) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = f >= 0 ? H5Dopen2(f, dataset, H5P_DEFAULT) : -1;
    CHECK(d >= 0);
    if (d < 0) return;
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    double *buf = malloc(sizeof(double) * (size_t)n);
    CHECK(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    buf[i] = v;
    CHECK(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    free(buf);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
}

static struct space tiny(void) {
    struct space s;
    CHECK(space_load("supernet/spaces/tiny.ini", &s) == APQ_OK);
    return s;
}

// ---- data that do not fit the space -------------------------------------------------

/* A plain IDX pair of n images of size x size into dir/<prefix>-*; label[bad] = bad_label. */
static void write_idx(const char *dir, const char *prefix, int n, int size, int bad,
                      int bad_label) {
    char path[700];
    unsigned char hdr[16];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *f = fopen(path, "wb");
    uint32_t v[4] = {0x803, (uint32_t)n, (uint32_t)size, (uint32_t)size};
    for (int i = 0; i < 16; i++) hdr[i] = (unsigned char)(v[i / 4] >> (24 - 8 * (i % 4)));
    fwrite(hdr, 1, 16, f);
    unsigned char *px = calloc((size_t)n * size * size, 1);
    fwrite(px, 1, (size_t)n * size * size, f);
    free(px);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
    f = fopen(path, "wb");
    uint32_t w[2] = {0x801, (uint32_t)n};
    for (int i = 0; i < 8; i++) hdr[i] = (unsigned char)(w[i / 4] >> (24 - 8 * (i % 4)));
    fwrite(hdr, 1, 8, f);
    for (int i = 0; i < n; i++) fputc(i == bad ? bad_label : i % 10, f);
    fclose(f);
}

TEST(faults_data_must_fit_the_space) {
    char dir[600];
    struct dataset all, test;
    /* a label at the space's class count */
    snprintf(dir, sizeof dir, "%s/labels", test_tmpdir);
    CHECK(mkdir(dir, 0755) == 0);
    write_idx(dir, "train", 40, 28, 17, 10);
    write_idx(dir, "t10k", 20, 28, -1, 0);
    CHECK(idx_load_dir(dir, &all, &test) == APQ_OK);
    CHECK(idx_check_fit(dir, &all, 10, 1, 28, "tiny.ini") == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "train-labels-idx1-ubyte: labels go up to 10, but the space "
                                   "tiny.ini has 10 classes") != NULL);
    CHECK(idx_check_fit(dir, &all, 11, 1, 28, "tiny.ini") == APQ_OK);
    CHECK(idx_check_fit(dir, &all, 11, 3, 28, "rgb.ini") == APQ_EFORMAT); /* read past x before */
    CHECK(strstr(apq_last_error(), "IDX images have 1 channel, but the space rgb.ini expects 3") !=
          NULL);
    dataset_free(&all);
    dataset_free(&test);
    /* images of another size */
    snprintf(dir, sizeof dir, "%s/size", test_tmpdir);
    CHECK(mkdir(dir, 0755) == 0);
    write_idx(dir, "train", 40, 32, -1, 0);
    write_idx(dir, "t10k", 20, 32, -1, 0);
    CHECK(idx_load_dir(dir, &all, &test) == APQ_OK);
    CHECK(idx_check_fit(dir, &all, 10, 1, 28, "tiny.ini") == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "train-images-idx3-ubyte: images are 32x32, but the space "
                                   "tiny.ini expects 28x28") != NULL);
    dataset_free(&all);
    dataset_free(&test);
}

/* The stage: a label >= classes in the IDX files is one line and exit 1 (it
 * was an assertion at nn/nn_ops.c:84, exit 134). */
TEST(faults_stage_label_beyond_classes) {
    static char out[1 << 14];
    char dir[600];
    snprintf(dir, sizeof dir, "%s/data", test_tmpdir);
    CHECK(mkdir(dir, 0755) == 0);
    write_idx(dir, "train", 11050, 28, 5000, 10);
    write_idx(dir, "t10k", 100, 28, -1, 0);
    int st = run(out, sizeof out,
                 "%s/apq-train-supernet --space supernet/spaces/tiny.ini --profile "
                 "profiles/tiny.ini --data %s --out %s/sn.h5",
                 test_build_dir(), dir, test_tmpdir);
    fprintf(stderr, "  %s", out);
    CHECK(st == 1);
    CHECK(test_n_lines(out) == 1);
    CHECK(strstr(out, "train-labels-idx1-ubyte: labels go up to 10") != NULL);
}

/* Profile values: out of range, or not fitting each other or the data, name
 * the file, section and key; exit 2 as every bad profile value. */
TEST(faults_stage_profile_values) {
    static char out[1 << 14];
    char prof[600];
    snprintf(prof, sizeof prof, "%s/p.ini", test_tmpdir);
    const struct {
        const char *body, *want;
    } cases[] = {
        {"[train-supernet]\nbatch = 32\ntrain_images = 20\n",
         "[train-supernet] train_images = 20 is below batch = 32"},
        {"[train-supernet]\nbatch = 100000\n",
         "[train-supernet] batch = 100000: expected an integer in [1, 4096]"},
        {"[train-supernet]\nlr = nan\n", "[train-supernet] lr = nan: expected a number in"},
        {"[train-supernet]\nsteps = 10\nwarmup_steps = 10\n",
         "warmup_steps = 10 must be below steps = 10"},
        {"[train-supernet]\nbatch = 32\nbatch = 64\n",
         ":3: [train-supernet] key 'batch' given twice"},
        {"batch = 32\n[train-supernet]\n", ":1: key 'batch' outside any [section]"},
        {"[train-supernet]\nschedule = zigzag\n",
         "[train-supernet] schedule = zigzag: unknown schedule"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(prof, "w");
        fputs(cases[i].body, f);
        fclose(f);
        int st = run(out, sizeof out,
                     "%s/apq-train-supernet --space supernet/spaces/tiny.ini --profile %s "
                     "--data /nonexistent --out %s/sn.h5",
                     test_build_dir(), prof, test_tmpdir);
        fprintf(stderr, "  %s", out);
        CHECK(st == 2);
        CHECK(test_n_lines(out) == 1);
        CHECK(strstr(out, prof) && strstr(out, cases[i].want));
    }
    /* a folder is no profile (it ran with every default and exit 0) */
    int st = run(out, sizeof out,
                 "%s/apq-train-supernet --space supernet/spaces/tiny.ini --profile %s "
                 "--data /nonexistent --out %s/sn.h5",
                 test_build_dir(), test_tmpdir, test_tmpdir);
    if (!(st == 1 && test_n_lines(out) == 1)) fprintf(stderr, "  exit %d:\n%s", st, out);
    CHECK(st == 1 && test_n_lines(out) == 1 && strstr(out, "cannot read the profile"));
}

/* The library itself: a batch larger than the data, labels beyond the
 * classes are returned statuses (the batch one was an assertion at
 * supernet/train.c:299). */
TEST(faults_train_rejects_unfit_data) {
    struct space s = tiny();
    struct dataset d = test_synthetic_dataset(16, 1), v = test_synthetic_dataset(8, 2);
    struct sn_train_cfg cfg = {.batch = 32, .momentum = 0.9f, .calib_images = 8, .seed = 1};
    sn_schedule_sandwich(&cfg, &s, 0, 2, 0.05f, 0, 0, 0);
    struct supernet sn;
    struct sn_train_report rep;
    supernet_init(&sn, &s, 1, 1);
    CHECK(supernet_train(&sn, &d, &v, &cfg, &rep) == APQ_ECONFIG);
    CHECK(strstr(apq_last_error(), "batch 32 does not fit the 16 training images") != NULL);
    cfg.batch = 8;
    v.labels[3] = 10;
    CHECK(supernet_train(&sn, &d, &v, &cfg, &rep) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "validation image 3 has label 10") != NULL);
    supernet_free(&sn);
    dataset_free(&d);
    dataset_free(&v);
}

// ---- non-finite values --------------------------------------------------------------

/* NaN or infinity in any parameter a stage reads back is refused, naming the
 * file, the dataset and the index. */
TEST(faults_nonfinite_artifacts_refused) {
    nan_on_purpose(1);
    struct space s = tiny();
    char path[600];
    /* supernet.h5 */
    snprintf(path, sizeof path, "%s/sn.h5", test_tmpdir);
    struct supernet sn;
    supernet_init(&sn, &s, 1, 1);
    CHECK(supernet_save(&sn, path, 1, "tiny", NULL) == APQ_OK);
    CHECK(supernet_load(&sn, path) == APQ_OK);
    poke(path, "stage1/block0/expand/weight", 5, NAN);
    CHECK(supernet_load(&sn, path) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(),
                 "sn.h5: dataset 'stage1/block0/expand/weight' holds NaN at "
                 "index 5; the file is damaged, rerun make to rebuild it") != NULL);
    supernet_free(&sn);
    /* predictor */
    snprintf(path, sizeof path, "%s/p.h5", test_tmpdir);
    struct pred_ensemble pe;
    CHECK(pred_ensemble_init(&pe, 1, encode_fp32_dim(&s), 0, 16, 2, 1) == APQ_OK);
    pe.prov = (struct pred_provenance){"tiny", "samples-fp32.h5", 1, 20, 0, 5};
    CHECK(pred_ensemble_save(&pe, &s, path, 1) == APQ_OK);
    pred_ensemble_free(&pe);
    poke(path, "members/0/regressor/bias", 0, INFINITY);
    CHECK(pred_ensemble_load(&pe, path, &s) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "dataset 'members/0/regressor/bias' holds +inf at index 0") !=
          NULL);
    /* LUT */
    snprintf(path, sizeof path, "%s/lut.h5", test_tmpdir);
    struct device dev;
    struct lut t;
    CHECK(device_load("devices/bitfusion.ini", &dev) == APQ_OK);
    CHECK(lut_build(&t, &dev, &s) == APQ_OK);
    CHECK(lut_save(&t, path, 1, "tiny") == APQ_OK);
    lut_free(&t);
    poke(path, "latency_ms", 2, -INFINITY);
    CHECK(lut_load(&t, path, &s) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "lut.h5: dataset 'latency_ms' holds -inf at index 2") != NULL);
    /* a table column (samples, search, verified) */
    snprintf(path, sizeof path, "%s/table.h5", test_tmpdir);
    hid_t f;
    double acc[4] = {0.5, 0.6, 0.7, 0.8};
    CHECK(h5_create(path, &f) == APQ_OK);
    CHECK(h5_write_f64(f, "acc_val", 1, (hsize_t[]){4}, acc) == APQ_OK);
    CHECK(h5_commit(f, path) == APQ_OK);
    poke(path, "acc_val", 3, NAN);
    double *got;
    size_t n;
    CHECK(h5_open_read(path, NULL, 0, &f) == APQ_OK);
    CHECK(h5_read_f64_alloc(f, "acc_val", &got, &n) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "dataset 'acc_val' holds NaN at index 3") != NULL);
    CHECK(h5_read_f64(f, "acc_val", 1, (hsize_t[]){4}, acc) == APQ_EFORMAT);
    h5_close(f);
    /* and no writer puts one there */
    CHECK(h5_create(path, &f) == APQ_OK);
    acc[2] = INFINITY;
    CHECK(h5_write_f64(f, "acc_val", 1, (hsize_t[]){4}, acc) == APQ_ENONFINITE);
    CHECK(strstr(apq_last_error(), "refusing to write an infinity at index 2 of dataset "
                                   "'acc_val'") != NULL);
    h5_abort(f, path);
    nan_on_purpose(0);
}

/* The stage: a supernet.h5 with a NaN weight used to load and score 11% on
 * every sample; now one line and exit 1. */
TEST(faults_stage_nan_supernet) {
    nan_on_purpose(1);
    static char out[1 << 14];
    struct space s = tiny();
    char path[600];
    snprintf(path, sizeof path, "%s/sn.h5", test_tmpdir);
    struct supernet sn;
    supernet_init(&sn, &s, 1, 1);
    CHECK(supernet_save(&sn, path, 1, "tiny", NULL) == APQ_OK);
    supernet_free(&sn);
    poke(path, "classifier/weight", 0, NAN);
    int st = run(out, sizeof out,
                 "%s/apq-sample-fp32 --space supernet/spaces/tiny.ini --profile "
                 "profiles/tiny.ini --data /nonexistent --supernet %s --out %s/s.h5",
                 test_build_dir(), path, test_tmpdir);
    fprintf(stderr, "  %s", out);
    CHECK(st == 1 && test_n_lines(out) == 1);
    CHECK(strstr(out, "dataset 'classifier/weight' holds NaN at index 0") != NULL);
    nan_on_purpose(0);
}

/* Divergence is a returned status: training, a damaged checkpoint, QAT and
 * the predictor. */
TEST(faults_divergence_returns_status) {
    nan_on_purpose(1);
    struct space s = tiny();
    struct dataset d = test_synthetic_dataset(32, 1), v = test_synthetic_dataset(8, 2);
    struct sn_train_cfg cfg = {
        .batch = 8, .momentum = 0.9f, .calib_images = 8, .seed = 1, .ckpt_every = 2};
    sn_schedule_sandwich(&cfg, &s, 0, 6, 0.05f, 0, 0, 0);
    struct supernet sn;
    struct sn_train_report rep;
    supernet_init(&sn, &s, 1, 1);
    const struct sn_tensor *bias = supernet_tensor(&sn, "classifier/bias");
    CHECK(bias != NULL);
    sn.params[bias->offset] = NAN; /* every subnet's first loss is NaN */
    CHECK(supernet_train(&sn, &d, &v, &cfg, &rep) == APQ_ENONFINITE);
    CHECK(strstr(apq_last_error(), "training diverged at step 0 (loss ") &&
          strstr(apq_last_error(), "hint: lower the lr in the profile"));
    /* a checkpoint of these settings holding NaN */
    char ck[600];
    snprintf(ck, sizeof ck, "%s/t.ckpt", test_tmpdir);
    supernet_free(&sn);
    supernet_init(&sn, &s, 1, 1);
    cfg.ckpt_path = ck;
    cfg.stop_after = 3;
    CHECK(supernet_train(&sn, &d, &v, &cfg, &rep) == APQ_OK);
    poke(ck, "momentum", 7, NAN);
    cfg.stop_after = 0;
    CHECK(supernet_train(&sn, &d, &v, &cfg, &rep) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "t.ckpt: damaged training checkpoint") &&
          strstr(apq_last_error(), "dataset 'momentum' holds NaN at index 7") &&
          strstr(apq_last_error(), "delete it to start afresh"));
    poke(ck, "momentum", 7, 0);
    poke(ck, "perm", 4, 32); /* an image index past the data: was read out of bounds */
    CHECK(supernet_train(&sn, &d, &v, &cfg, &rep) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "dataset 'perm' is not a permutation of 0..31") != NULL);
    /* QAT */
    struct sn_ctx c;
    struct sn_quant q;
    struct arch a;
    CHECK(sn_ctx_init(&c, &sn, 8, 1) == APQ_OK);
    arch_smallest(&s, 8, &a);
    qat_calibrate(&sn, &c, &a, &q, &d, 8);
    bias = supernet_tensor(&sn, "classifier/bias"); /* of this supernet: the first was freed */
    CHECK(bias != NULL);
    sn.params[bias->offset] = NAN;
    CHECK(qat_finetune(&sn, &c, &a, &q, &d, 3, 8, 0.01f, 1) == APQ_ENONFINITE);
    CHECK(strstr(apq_last_error(), "QAT diverged at step 0 of 3") != NULL);
    CHECK(isnan(supernet_accuracy(&sn, &c, &a, &q, &v, 8)));
    sn_ctx_free(&c);
    supernet_free(&sn);
    /* the predictor */
    struct predictor p;
    CHECK(predictor_init(&p, 4, 0, 8, 2, 1) == APQ_OK);
    float x[40], y[10];
    for (int i = 0; i < 40; i++) x[i] = (float)(i % 7) / 7;
    for (int i = 0; i < 10; i++) y[i] = 0.5f;
    y[6] = NAN; /* a target: the loss is NaN (a NaN input would vanish in a ReLU) */
    struct pred_train_cfg pc = {.epochs = 3, .batch = 4, .lr = 1e-3};
    double last = 0;
    CHECK(predictor_train(&p, x, y, 10, &pc, 1, &last) == APQ_ENONFINITE);
    CHECK(strstr(apq_last_error(), "predictor training diverged in epoch 1 of 3") != NULL);
    predictor_free(&p);
    CHECK(predictor_init(&p, 4, 0, 0, 2, 1) == APQ_ECONFIG);
    CHECK(predictor_init(&p, 4, 0, 8, PRED_MAX_LAYERS + 1, 1) == APQ_ECONFIG);
    dataset_free(&d);
    dataset_free(&v);
    nan_on_purpose(0);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

TEST(faults_arena_out_of_memory) {
    struct arena a;
#ifndef UNDER_ASAN /* AddressSanitizer aborts on a request this size instead of failing it */
    CHECK(arena_init(&a, (size_t)1 << 60) == APQ_ENOMEM); /* 4 EiB: malloc refuses */
    CHECK(strstr(apq_last_error(), "out of memory") != NULL);
    CHECK(a.base == NULL && a.cap == 0);
    arena_free(&a);
#endif
    CHECK(arena_init(&a, SIZE_MAX / 2) == APQ_ENOMEM); /* the byte count overflows */
    CHECK(a.base == NULL && a.cap == 0);
}

// ---- a full disk ---------------------------------------------------------------------

typedef int (*write_fn)(const char *path);

/* Run fn(path) in a child whose files may not grow beyond `limit` bytes
 * (RLIMIT_FSIZE, SIGXFSZ ignored: writes fail with EFBIG as on a full disk).
 * The child's status and its error line (into msg). */
static int limited(write_fn fn, const char *path, rlim_t limit, char *msg, size_t n) {
    int fd[2];
    if (pipe(fd) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {limit, limit};
        setrlimit(RLIMIT_FSIZE, &rl);
        int rc = fn(path);
        const char *e = rc < 0 ? apq_last_error() : "";
        if (write(fd[1], e, strlen(e)) < 0) _exit(3);
        _exit(rc < 0 ? 1 : 0);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], msg, n - 1);
    msg[got > 0 ? got : 0] = 0;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int write_supernet(const char *path) {
    struct space s;
    struct supernet sn;
    int rc = space_load("supernet/spaces/tiny.ini", &s);
    if (rc < 0) return rc;
    supernet_init(&sn, &s, 2, 1); /* another seed: other bytes than the first file */
    rc = supernet_save(&sn, path, 2, "tiny", NULL);
    supernet_free(&sn);
    return rc;
}

static int write_csv(const char *path) {
    struct csvw w;
    int rc = csvw_open(&w, path, "# a table");
    if (rc < 0) return rc;
    for (int i = 0; i < 2000; i++) {
        csvw_i64(&w, i);
        csvw_f64(&w, i * 0.5, NULL);
        csvw_end_row(&w);
    }
    return csvw_commit(&w);
}

/* As apq-report writes its README: a temporary file, apq_fclose, rename. */
static int write_text(const char *path) {
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return apq_set_error(APQ_EIO, "%s: cannot create", tmp);
    for (int i = 0; i < 4000; i++) fprintf(f, "| row %d | of a README |\n", i);
    int rc = apq_fclose(f, tmp);
    if (rc == 0 && rename(tmp, path) != 0) rc = apq_set_error(APQ_EIO, "cannot rename %s", tmp);
    if (rc < 0) remove(tmp);
    return rc;
}

TEST(faults_full_disk_keeps_previous_artifact) {
    char path[600], keep[700], msg[1024];
    const struct {
        const char *name;
        write_fn fn;
    } cases[] = {{"supernet.h5", write_supernet}, {"table.csv", write_csv}, {"README", write_text}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(path, sizeof path, "%s/%s", test_tmpdir, cases[k].name);
        snprintf(keep, sizeof keep, "%s.first", path);
        /* a first, complete artifact (written whole where nothing limits it) */
        FILE *f = fopen(path, "w");
        fputs("the previous artifact\n", f);
        fclose(f);
        copy_file(path, keep);
        CHECK(limited(cases[k].fn, path, 1 << 30, msg, sizeof msg) == 0);
        CHECK(!same_file(path, keep)); /* rewritten when there is room */
        copy_file(path, keep);
        /* the rewrite under a 16 KiB limit fails, names the cause, keeps the file */
        int st = limited(cases[k].fn, path, 16 << 10, msg, sizeof msg);
        fprintf(stderr, "  %s: %s\n", cases[k].name, msg);
        CHECK(st == 1);
        CHECK(strstr(msg, "File too large") != NULL);
        CHECK(same_file(path, keep));
        char tmp[700];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        CHECK(access(tmp, F_OK) != 0);
    }
}

/* The stage: build-lut under a file-size limit fails with one line and the
 * previous lut.h5 stays byte for byte. */
TEST(faults_stage_full_disk) {
    static char out[1 << 14];
    char lut[600], keep[700];
    snprintf(lut, sizeof lut, "%s/lut.h5", test_tmpdir);
    snprintf(keep, sizeof keep, "%s/lut.first", test_tmpdir);
    const char *cmd = "%s/apq-build-lut --space supernet/spaces/tiny.ini --profile "
                      "profiles/tiny.ini --device devices/bitfusion.ini --out %s";
    CHECK(run(out, sizeof out, cmd, test_build_dir(), lut) == 0);
    copy_file(lut, keep);
    char limited_cmd[1200];
    snprintf(limited_cmd, sizeof limited_cmd, "trap '' XFSZ; ulimit -f 16; %s", cmd);
    int st = run(out, sizeof out, limited_cmd, test_build_dir(), lut);
    fprintf(stderr, "  %s", out);
    CHECK(st == 1);
    size_t len = strlen(out);
    while (len && out[len - 1] == '\n') len--;
    const char *last = out + len; /* the last line: the error, the only one */
    while (last > out && last[-1] != '\n') last--;
    CHECK(!strncmp(last, "apq-build-lut: error: ", 22));
    CHECK(strstr(last, "lut.h5.tmp.") && strstr(last, ": write failed: File too large"));
    CHECK(strstr(out, "error") == last + 15);
    CHECK(same_file(lut, keep));
}

/* A read-only output folder: the rewrite fails naming the cause and the
 * previous artifact stays. As root, permissions do not stop a write, so the
 * folder is then a path under a regular file (ENOTDIR) instead. */
TEST(faults_read_only_output) {
    static char out[1 << 14];
    char dir[600], path[800], keep[700];
    snprintf(dir, sizeof dir, "%s/ro", test_tmpdir);
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/supernet.h5", dir);
    snprintf(keep, sizeof keep, "%s/first.h5", test_tmpdir);
    CHECK(write_supernet(path) == APQ_OK);
    copy_file(path, keep);
    if (geteuid() != 0) {
        CHECK(chmod(dir, 0555) == 0);
        CHECK(write_supernet(path) == APQ_EIO);
        CHECK(strstr(apq_last_error(), "supernet.h5.tmp: cannot create: Permission denied") !=
              NULL);
        CHECK(same_file(path, keep));
        chmod(dir, 0755);
    } else {
        fprintf(stderr, "  running as root: permissions do not stop writes; a folder that is "
                        "a regular file instead\n");
    }
    char file_dir[700];
    snprintf(file_dir, sizeof file_dir, "%s/plain", test_tmpdir);
    copy_file(keep, file_dir);
    snprintf(path, sizeof path, "%s/supernet.h5", file_dir);
    CHECK(write_supernet(path) == APQ_EIO);
    CHECK(strstr(apq_last_error(), "plain/supernet.h5.tmp.") &&
          strstr(apq_last_error(), ": cannot create: Not a directory"));
    /* a long stage checks its folder before it starts */
    int st = run(out, sizeof out,
                 "%s/apq-train-supernet --space supernet/spaces/tiny.ini --profile "
                 "profiles/tiny.ini --data /usr/share/datasets/fashion-mnist --out %s",
                 test_build_dir(), path);
    fprintf(stderr, "  %s", out);
    CHECK(st == 1 && test_n_lines(out) == 1);
    CHECK(strstr(out, "plain: cannot write there: Not a directory") != NULL);
}
