/* idx.c — IDX image/label files (gzip or plain) with full validation.
 *
 * An IDX file is a big-endian header (magic 0x000008DD: type 0x08 = unsigned
 * byte, DD = number of dimensions; then one uint32 per dimension) followed by
 * the raw bytes. Images are 0x00000803 [n][rows][cols], labels 0x00000801 [n].
 * Files are read through zlib, which decompresses gzip and passes plain files
 * through; a name ending in ".gz" must really be gzip.
 *
 * Not here: splits and batches (batch.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "datasets.h"

#define IDX_IMAGES   0x00000803u
#define IDX_LABELS   0x00000801u
#define IDX_MAX_SIDE 1024
#define DATA_HINT    "install the Debian package dataset-fashion-mnist or set DATA_DIR"

// ---- one file ------------------------------------------------------------

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int gz_fail(gzFile gz, const char *path, const char *what) {
    int zerr = Z_OK;
    const char *msg = gzerror(gz, &zerr);
    if (zerr == Z_ERRNO)
        return apq_set_error(APQ_EIO, "%s: read failed (%s): %s", path, what, strerror(errno));
    return apq_set_error(APQ_EFORMAT, "%s: corrupt gzip data (%s): %s", path, what,
                         msg && msg[0] ? msg : "unknown zlib error");
}

/* Read exactly `len` bytes, the part [before, before + len) of `total`; a
 * short read is APQ_EFORMAT "truncated". */
static int read_exact_at(gzFile gz, const char *path, const char *what, uint8_t *buf, size_t len,
                         size_t before, size_t total) {
    size_t got = 0;
    while (got < len) {
        size_t want = len - got < (1u << 30) ? len - got : (1u << 30);
        int k = gzread(gz, buf + got, (unsigned)want);
        if (k < 0) return gz_fail(gz, path, what);
        if (k == 0) break;
        got += (size_t)k;
    }
    int zerr = Z_OK;
    gzerror(gz, &zerr);
    if (got < len && zerr != Z_OK && zerr != Z_BUF_ERROR) return gz_fail(gz, path, what);
    if (got < len)
        return apq_set_error(APQ_EFORMAT, "%s: truncated: expected %zu bytes of %s, got %zu", path,
                             total, what, before + got);
    return APQ_OK;
}

static int read_exact(gzFile gz, const char *path, const char *what, uint8_t *buf, size_t len) {
    return read_exact_at(gz, path, what, buf, len, 0, len);
}

/* Read exactly `len` bytes into *out (malloc'ed), growing the buffer as data
 * arrive, so a header that claims more than the file holds is "truncated"
 * without first allocating what it claims. */
static int read_alloc(gzFile gz, const char *path, const char *what, size_t len, uint8_t **out) {
    uint8_t *buf = NULL;
    size_t got = 0, cap = 0;
    int rc = APQ_OK;
    while (got < len && rc == APQ_OK) {
        cap = cap ? (cap < len / 2 ? 2 * cap : len) : (len < (1u << 16) ? len : (1u << 16));
        uint8_t *grown = realloc(buf, cap);
        if (!grown) {
            rc =
                apq_set_error(APQ_ENOMEM, "%s: out of memory for %zu bytes of %s", path, len, what);
            break;
        }
        buf = grown;
        rc = read_exact_at(gz, path, what, buf + got, cap - got, got, len);
        got = cap;
    }
    if (rc < 0) {
        free(buf);
        buf = NULL;
    }
    *out = buf;
    return rc;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Why a magic number m is not the expected one, for the message. */
static const char *magic_hint(uint32_t m, uint32_t expected) {
    if (m == IDX_IMAGES && expected == IDX_LABELS) return "this is an images file";
    if (m == IDX_LABELS && expected == IDX_IMAGES) return "this is a labels file";
    if (m >> 16 != 0) return "not an IDX file";
    if ((m >> 8 & 0xff) != 0x08) return "an IDX file, but not of unsigned bytes";
    return "an IDX file with another number of dimensions";
}

/* Read one IDX file of unsigned bytes whose magic must be `magic`; dims[0..ndim)
 * receive the dimensions and *data (malloc'ed) the payload. */
static int idx_read(const char *path, uint32_t magic, uint32_t *dims, uint8_t **data) {
    const int ndim = (int)(magic & 0xff);
    const char *what = magic == IDX_IMAGES ? "images" : "labels";
    uint8_t hdr[4 * 4], extra;
    uint8_t *buf = NULL;
    int rc = APQ_OK;
    *data = NULL;
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        rc = errno == ENOENT ? apq_set_error(APQ_EIO, "%s: no such file; hint: " DATA_HINT, path)
                             : apq_set_error(APQ_EIO, "%s: cannot open: %s", path,
                                             errno ? strerror(errno) : "out of memory");
        goto done;
    }
    gzbuffer(gz, 1u << 18);
    if (ends_with(path, ".gz") && gzdirect(gz)) {
        rc = apq_set_error(APQ_EFORMAT, "%s: not gzip-compressed, though the name ends in .gz",
                           path);
        goto done;
    }
    if ((rc = read_exact(gz, path, "header", hdr, 4)) < 0) goto done;
    uint32_t m = be32(hdr);
    if (m != magic) {
        rc = apq_set_error(APQ_EFORMAT, "%s: bad magic 0x%08x, expected 0x%08x for IDX %s (%s)",
                           path, m, magic, what, magic_hint(m, magic));
        goto done;
    }
    if ((rc = read_exact(gz, path, "header", hdr + 4, 4 * (size_t)ndim)) < 0) goto done;
    for (int i = 0; i < ndim; i++) dims[i] = be32(hdr + 4 + 4 * i);
    if (dims[0] == 0 || dims[0] > INT_MAX) {
        rc = apq_set_error(APQ_EFORMAT, "%s: declares %u %s, expected 1..%d", path, dims[0], what,
                           INT_MAX);
        goto done;
    }
    for (int i = 1; i < ndim; i++)
        if (dims[i] == 0 || dims[i] > IDX_MAX_SIDE) {
            rc = apq_set_error(APQ_EFORMAT, "%s: images are %ux%u, each side must be in 1..%d",
                               path, dims[1], dims[2], IDX_MAX_SIDE);
            goto done;
        }
    size_t total = 1;
    for (int i = 0; i < ndim; i++) total *= dims[i];
    if ((rc = read_alloc(gz, path, what, total, &buf)) < 0) goto done;
    /* one more byte: catches data beyond the header's count and gzip's CRC check */
    int k = gzread(gz, &extra, 1), zerr = Z_OK;
    gzerror(gz, &zerr);
    if (k < 0 || (k == 0 && zerr != Z_OK && zerr != Z_BUF_ERROR)) {
        rc = gz_fail(gz, path, what);
        goto done;
    }
    if (k == 0 && zerr == Z_BUF_ERROR) {
        rc = apq_set_error(APQ_EFORMAT, "%s: truncated: gzip stream ends before its trailer", path);
        goto done;
    }
    if (k > 0) {
        rc = apq_set_error(APQ_EFORMAT, "%s: more data than the header's %u %s", path, dims[0],
                           what);
        goto done;
    }
    *data = buf;
    buf = NULL;
done:
    free(buf);
    if (gz) gzclose_r(gz);
    return rc;
}

// ---- public --------------------------------------------------------------

int idx_load(struct dataset *d, const char *images_path, const char *labels_path) {
    APQ_ASSERT(d && images_path && labels_path);
    memset(d, 0, sizeof *d);
    uint32_t idims[3], ldims[1];
    uint8_t *images = NULL, *labels = NULL;
    int rc = idx_read(images_path, IDX_IMAGES, idims, &images);
    if (rc < 0) goto done;
    if ((rc = idx_read(labels_path, IDX_LABELS, ldims, &labels)) < 0) goto done;
    if (idims[0] != ldims[0]) {
        rc = apq_set_error(APQ_EFORMAT, "%s has %u images but %s has %u labels", images_path,
                           idims[0], labels_path, ldims[0]);
        goto done;
    }
    int max = 0;
    for (uint32_t i = 0; i < ldims[0]; i++)
        if (labels[i] > max) max = labels[i];
    if (max + 1 < 2) {
        rc = apq_set_error(APQ_EFORMAT, "%s: every label is %d, need at least 2 classes",
                           labels_path, max);
        goto done;
    }
    d->n = (int)idims[0];
    d->h = (int)idims[1];
    d->w = (int)idims[2];
    d->n_classes = max + 1;
    d->images = images;
    d->labels = labels;
    images = labels = NULL;
done:
    free(images);
    free(labels);
    return rc;
}

/* dir/name.gz, or dir/name when only the plain file exists. */
static int find_file(char *buf, size_t size, const char *dir, const char *name) {
    int k = snprintf(buf, size, "%s/%s.gz", dir, name);
    if (k < 0 || (size_t)k >= size) return apq_set_error(APQ_EIO, "%s: path too long", dir);
    FILE *f = fopen(buf, "rb");
    if (f) {
        fclose(f);
        return APQ_OK;
    }
    if (errno != ENOENT) return APQ_OK; /* idx_read reports it */
    snprintf(buf, size, "%s/%s", dir, name);
    if ((f = fopen(buf, "rb"))) {
        fclose(f);
        return APQ_OK;
    }
    return apq_set_error(APQ_EIO, "%s/%s.gz: no such file (nor without .gz); hint: " DATA_HINT, dir,
                         name);
}

int idx_load_dir(const char *dir, struct dataset *train_all, struct dataset *test) {
    APQ_ASSERT(dir && train_all && test);
    memset(train_all, 0, sizeof *train_all);
    memset(test, 0, sizeof *test);
    char ti[4096], tl[4096], vi[4096], vl[4096];
    int rc;
    if ((rc = find_file(ti, sizeof ti, dir, "train-images-idx3-ubyte")) < 0 ||
        (rc = find_file(tl, sizeof tl, dir, "train-labels-idx1-ubyte")) < 0 ||
        (rc = find_file(vi, sizeof vi, dir, "t10k-images-idx3-ubyte")) < 0 ||
        (rc = find_file(vl, sizeof vl, dir, "t10k-labels-idx1-ubyte")) < 0 ||
        (rc = idx_load(train_all, ti, tl)) < 0 || (rc = idx_load(test, vi, vl)) < 0)
        goto done;
    if (test->h != train_all->h || test->w != train_all->w) {
        rc = apq_set_error(APQ_EFORMAT, "%s: images are %dx%d but the training images (%s) %dx%d",
                           vi, test->h, test->w, ti, train_all->h, train_all->w);
        goto done;
    }
    if (test->n_classes > train_all->n_classes) {
        rc = apq_set_error(APQ_EFORMAT, "%s: labels go up to %d but %s has only %d classes", vl,
                           test->n_classes - 1, tl, train_all->n_classes);
        goto done;
    }
    test->n_classes = train_all->n_classes;
done:
    if (rc < 0) {
        dataset_free(train_all);
        dataset_free(test);
    }
    return rc;
}

int idx_check_fit(const char *dir, const struct dataset *train_all, int n_classes, int channels,
                  int size, const char *space_origin) {
    APQ_ASSERT(dir && train_all && space_origin);
    char path[4096];
    int rc;
    if (channels != 1) {
        if ((rc = find_file(path, sizeof path, dir, "train-images-idx3-ubyte")) < 0) return rc;
        return apq_set_error(APQ_EFORMAT,
                             "%s: IDX images have 1 channel, but the space %s expects %d "
                             "(input_channels); hint: use a space with input_channels = 1",
                             path, space_origin, channels);
    }
    if (train_all->n_classes > n_classes) {
        if ((rc = find_file(path, sizeof path, dir, "train-labels-idx1-ubyte")) < 0) return rc;
        return apq_set_error(APQ_EFORMAT,
                             "%s: labels go up to %d, but the space %s has %d classes; hint: "
                             "use a space whose classes cover every label",
                             path, train_all->n_classes - 1, space_origin, n_classes);
    }
    if (train_all->h != size || train_all->w != size) {
        if ((rc = find_file(path, sizeof path, dir, "train-images-idx3-ubyte")) < 0) return rc;
        return apq_set_error(APQ_EFORMAT,
                             "%s: images are %dx%d, but the space %s expects %dx%d "
                             "(input_size); hint: use a space made for these images",
                             path, train_all->h, train_all->w, space_origin, size, size);
    }
    return APQ_OK;
}

void dataset_free(struct dataset *d) {
    if (!d) return;
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}
