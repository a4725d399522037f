/* h5.c — checked wrappers over HDF5 (reference/aesthetics.md E3, O1).
 *
 * Every call checks each hid_t/herr_t, maps failures to an apq_status with one
 * detail line naming the file and object, and closes its handles on every path
 * through one `done:` label. HDF5's automatic error-stack printing is switched
 * off the first time a function runs in a thread (the Debian build is
 * thread-safe, so the setting is per thread); build with -DAPQ_H5_DEBUG to
 * keep HDF5's own stack dumps.
 *
 * Not here: the layout of any particular artifact (docs/formats.md).
 */
#include "h5.h"

#include <errno.h>
#include <math.h>
#include <hdf5_hl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

// ---- helpers -------------------------------------------------------------

static void h5_quiet(void) {
    static _Thread_local int done;
    if (done) return;
    done = 1;
#ifndef APQ_H5_DEBUG
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
#endif
}

/* The object path of `name` below loc, for messages ("group/name", or name). */
static const char *obj_path(hid_t loc, const char *name, char *buf, size_t size) {
    char base[512] = "";
    if (H5Iget_type(loc) != H5I_FILE && H5Iget_name(loc, base, sizeof base) < 0) base[0] = 0;
    const char *b = base[0] == '/' ? base + 1 : base;
    if (!name || !strcmp(name, "."))
        snprintf(buf, size, "/%s", b);
    else if (b[0])
        snprintf(buf, size, "%s/%s", b, name);
    else
        snprintf(buf, size, "%s", name);
    return buf;
}

/* "[3,4]" */
static const char *dims_str(char *buf, size_t size, int rank, const hsize_t *dims) {
    size_t k = 0;
    buf[0] = 0;
    k += (size_t)snprintf(buf + k, size - k, "[");
    for (int i = 0; i < rank && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%llu", i ? "," : "",
                              (unsigned long long)dims[i]);
    if (k < size) snprintf(buf + k, size - k, "]");
    return buf;
}

/* Index of the first NaN or infinity among n values (floats when f32, else
 * doubles), its value in *v; n when all are finite. */
static size_t first_nonfinite(const void *data, size_t n, int f32, double *v) {
    size_t i = 0;
    for (; i < n; i++) {
        *v = f32 ? (double)((const float *)data)[i] : ((const double *)data)[i];
        if (!isfinite(*v)) break;
    }
    return i;
}

/* APQ_EFORMAT when one of the n values read is NaN or infinite: a parameter
 * or table entry no stage ever writes, so the file is damaged (a bit flip, a
 * foreign writer, a diverged run saved). */
static int check_finite(hid_t loc, const char *name, const void *data, size_t n, int f32) {
    double v;
    const size_t i = first_nonfinite(data, n, f32, &v);
    if (i == n) return APQ_OK;
    char what[1200];
    return apq_set_error(APQ_EFORMAT,
                         "%s: dataset '%s' holds %s at index %zu; the file is damaged, rerun "
                         "make to rebuild it",
                         h5_filename(loc), obj_path(loc, name, what, sizeof what),
                         isnan(v) ? "NaN"
                         : v > 0  ? "+inf"
                                  : "-inf",
                         i);
}

static void close_id(hid_t id) {
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE:
        H5Fclose(id);
        break;
    case H5I_GROUP:
    case H5I_DATASET:
        H5Oclose(id);
        break;
    case H5I_DATATYPE:
        H5Tclose(id);
        break;
    case H5I_DATASPACE:
        H5Sclose(id);
        break;
    case H5I_ATTR:
        H5Aclose(id);
        break;
    case H5I_GENPROP_LST:
        H5Pclose(id);
        break;
    default:
        break;
    }
}

/* Create the groups above the last '/' of name (if any) below loc. */
/* A creation property list of class cls (dataset, group or file) that
 * records no object times: HDF5 stamps every object header with its
 * modification time by default, so two runs that write the same data would
 * write different bytes. Caller closes it; negative on failure. */
static hid_t untimed_plist(hid_t cls) {
    hid_t p = H5Pcreate(cls);
    if (p >= 0 && H5Pset_obj_track_times(p, 0) < 0) {
        H5Pclose(p);
        return -1;
    }
    return p;
}

static int make_parents(hid_t loc, const char *name) {
    const char *slash = strrchr(name, '/');
    if (!slash || slash == name) return APQ_OK;
    char parent[1024], what[1200];
    size_t len = (size_t)(slash - name);
    if (len >= sizeof parent)
        return apq_set_error(APQ_EHDF5, "%s: dataset name too long: '%s'", h5_filename(loc), name);
    memcpy(parent, name, len);
    parent[len] = 0;
    int rc = APQ_OK;
    hid_t lcpl = -1, gcpl = -1, g = -1;
    htri_t ok = H5LTpath_valid(loc, parent, 1);
    if (ok > 0) goto done;
    if ((lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        (gcpl = untimed_plist(H5P_GROUP_CREATE)) < 0 ||
        (g = H5Gcreate2(loc, parent, lcpl, gcpl, H5P_DEFAULT)) < 0)
        rc = apq_set_error(APQ_EHDF5, "%s: cannot create group '%s'", h5_filename(loc),
                           obj_path(loc, parent, what, sizeof what));
done:
    close_id(g);
    close_id(gcpl);
    close_id(lcpl);
    return rc;
}

static int write_dataset(hid_t loc, const char *name, int rank, const hsize_t *dims, hid_t type,
                         const void *data) {
    h5_quiet();
    APQ_ASSERT(name && rank >= 1 && rank <= H5S_MAX_RANK && dims);
    char what[1200];
    int rc = make_parents(loc, name);
    if (rc < 0) return rc;
    if (H5LTpath_valid(loc, name, 0) > 0)
        return apq_set_error(APQ_EHDF5, "%s: dataset '%s' already exists", h5_filename(loc),
                             obj_path(loc, name, what, sizeof what));
    /* H5LTmake_dataset's steps, with object times off (untimed_plist) */
    hid_t space = -1, dcpl = -1, ds = -1;
    rc = APQ_OK;
    if ((space = H5Screate_simple(rank, dims, NULL)) < 0 ||
        (dcpl = untimed_plist(H5P_DATASET_CREATE)) < 0 ||
        (ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0 ||
        H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) /* in memory: h5_create */
        rc = apq_set_error(APQ_EHDF5, "%s: cannot write dataset '%s'", h5_filename(loc),
                           obj_path(loc, name, what, sizeof what));
    close_id(ds);
    close_id(dcpl);
    close_id(space);
    return rc;
}

/* A contiguous or compact dataset of fixed-size elements must hold exactly
 * its shape's bytes: HDF5 1.10 reads past a short one, or from NULL for an
 * empty compact one (SIGSEGV in H5Dread; found by fuzz/fuzz_h5.c). */
static int check_storage(hid_t loc, hid_t ds, hid_t type, hid_t space, const char *what) {
    hid_t plist = H5Dget_create_plist(ds);
    H5D_layout_t layout = plist < 0 ? H5D_LAYOUT_ERROR : H5Pget_layout(plist);
    close_id(plist);
    htri_t vlen = H5Tis_variable_str(type);
    H5D_space_status_t status;
    hssize_t count = H5Sget_simple_extent_npoints(space);
    size_t size = H5Tget_size(type);
    if (layout == H5D_LAYOUT_ERROR || vlen < 0 || H5Dget_space_status(ds, &status) < 0 ||
        count < 0 || !size)
        return apq_set_error(APQ_EFORMAT, "%s: cannot query dataset '%s' (damaged file?)",
                             h5_filename(loc), what);
    if ((layout != H5D_CONTIGUOUS && layout != H5D_COMPACT) || vlen ||
        (layout == H5D_CONTIGUOUS && status != H5D_SPACE_STATUS_ALLOCATED))
        return APQ_OK; /* chunked (may be compressed), variable-length, or never written */
    hsize_t have = H5Dget_storage_size(ds);
    if ((hsize_t)count > UINT64_MAX / size || have != (hsize_t)count * size)
        return apq_set_error(APQ_EFORMAT,
                             "%s: dataset '%s' holds %llu bytes, its shape needs %llu x %zu; "
                             "hint: the file is damaged, delete it and run make",
                             h5_filename(loc), what, (unsigned long long)have,
                             (unsigned long long)count, size);
    return APQ_OK;
}

/* Open dataset `name` whose type class must be `cls`; *rank/dims get its shape
 * (dims has room for H5S_MAX_RANK entries). */
static int open_dataset(hid_t loc, const char *name, H5T_class_t cls, hid_t *ds, int *rank,
                        hsize_t *dims) {
    h5_quiet();
    char what[1200];
    int rc = APQ_OK;
    hid_t space = -1, type = -1;
    *ds = -1;
    obj_path(loc, name, what, sizeof what);
    if (H5LTpath_valid(loc, name, 1) <= 0) {
        rc = apq_set_error(APQ_EFORMAT, "%s: no dataset '%s'", h5_filename(loc), what);
        goto done;
    }
    if ((*ds = H5Dopen2(loc, name, H5P_DEFAULT)) < 0) {
        rc = apq_set_error(APQ_EFORMAT, "%s: '%s' is not a dataset", h5_filename(loc), what);
        goto done;
    }
    if ((space = H5Dget_space(*ds)) < 0 || (type = H5Dget_type(*ds)) < 0 ||
        (*rank = H5Sget_simple_extent_ndims(space)) < 0 ||
        H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        rc = apq_set_error(APQ_EHDF5, "%s: cannot query dataset '%s'", h5_filename(loc), what);
        goto done;
    }
    H5T_class_t got = H5Tget_class(type);
    if (got != cls) {
        const char *want = cls == H5T_FLOAT     ? "floating-point"
                           : cls == H5T_INTEGER ? "integer"
                                                : "string";
        rc = apq_set_error(APQ_EFORMAT, "%s: dataset '%s' is not %s", h5_filename(loc), what, want);
    } else {
        rc = check_storage(loc, *ds, type, space, what);
    }
done:
    close_id(type);
    close_id(space);
    if (rc < 0) {
        close_id(*ds);
        *ds = -1;
    }
    return rc;
}

static int read_dataset(hid_t loc, const char *name, int rank, const hsize_t *dims, H5T_class_t cls,
                        hid_t memtype, void *out) {
    APQ_ASSERT(name && rank >= 1 && rank <= H5S_MAX_RANK && dims && out);
    hsize_t got[H5S_MAX_RANK];
    int got_rank = 0;
    hid_t ds = -1;
    char what[1200], a[256], b[256];
    int rc = open_dataset(loc, name, cls, &ds, &got_rank, got);
    if (rc < 0) goto done;
    int same = got_rank == rank;
    for (int i = 0; same && i < rank; i++) same = got[i] == dims[i];
    if (!same) {
        rc = apq_set_error(APQ_EFORMAT, "%s: dataset '%s' has shape %s, expected %s",
                           h5_filename(loc), obj_path(loc, name, what, sizeof what),
                           dims_str(a, sizeof a, got_rank, got), dims_str(b, sizeof b, rank, dims));
        goto done;
    }
    if (H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        rc = apq_set_error(APQ_EHDF5, "%s: cannot read dataset '%s'", h5_filename(loc),
                           obj_path(loc, name, what, sizeof what));
        goto done;
    }
    if (cls == H5T_FLOAT) {
        size_t n = 1;
        for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
        rc = check_finite(loc, name, out, n, H5Tequal(memtype, H5T_NATIVE_FLOAT) > 0);
    }
done:
    close_id(ds);
    return rc;
}

static int read_alloc(hid_t loc, const char *name, hid_t memtype, size_t elem, void **out,
                      size_t *n) {
    APQ_ASSERT(name && out && n);
    hsize_t dims[H5S_MAX_RANK];
    int rank = 0;
    hid_t ds = -1;
    void *buf = NULL;
    char what[1200];
    *out = NULL;
    *n = 0;
    int rc = open_dataset(loc, name, H5T_FLOAT, &ds, &rank, dims);
    if (rc < 0) goto done;
    obj_path(loc, name, what, sizeof what);
    if (rank != 1) {
        rc = apq_set_error(APQ_EFORMAT, "%s: dataset '%s' has rank %d, expected 1",
                           h5_filename(loc), what, rank);
        goto done;
    }
    if (dims[0] > SIZE_MAX / elem || !(buf = malloc(dims[0] ? (size_t)dims[0] * elem : 1))) {
        rc = apq_set_error(APQ_ENOMEM, "%s: dataset '%s': out of memory (%llu values)",
                           h5_filename(loc), what, (unsigned long long)dims[0]);
        goto done;
    }
    if (dims[0] && H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        rc = apq_set_error(APQ_EHDF5, "%s: cannot read dataset '%s'", h5_filename(loc), what);
        goto done;
    }
    if ((rc = check_finite(loc, name, buf, (size_t)dims[0], elem == sizeof(float))) < 0) goto done;
    *out = buf;
    *n = (size_t)dims[0];
    buf = NULL;
done:
    free(buf);
    close_id(ds);
    return rc;
}

/* Write attribute `name` on loc (replacing it) as a scalar of file type ftype. */
static int set_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *value) {
    h5_quiet();
    APQ_ASSERT(name && value);
    int rc = APQ_OK;
    hid_t space = -1, attr = -1;
    char what[1200];
    htri_t exists = H5Aexists(loc, name);
    if (exists < 0 || (exists > 0 && H5Adelete(loc, name) < 0) ||
        (space = H5Screate(H5S_SCALAR)) < 0 ||
        (attr = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(attr, mtype, value) < 0)
        rc = apq_set_error(APQ_EHDF5, "%s: cannot write attribute '%s' of '%s'", h5_filename(loc),
                           name, obj_path(loc, ".", what, sizeof what));
    close_id(attr);
    close_id(space);
    return rc;
}

/* Open attribute `name` of loc, holding one value of class cls. */
static int open_attr(hid_t loc, const char *name, H5T_class_t cls, hid_t *attr) {
    h5_quiet();
    APQ_ASSERT(name);
    int rc = APQ_OK;
    hid_t space = -1, type = -1;
    char what[1200];
    obj_path(loc, ".", what, sizeof what);
    *attr = -1;
    htri_t exists = H5Aexists(loc, name);
    if (exists <= 0) {
        rc = exists < 0 ? apq_set_error(APQ_EHDF5, "%s: cannot query attribute '%s' of '%s'",
                                        h5_filename(loc), name, what)
                        : apq_set_error(APQ_EFORMAT, "%s: attribute '%s' of '%s' is missing",
                                        h5_filename(loc), name, what);
        goto done;
    }
    if ((*attr = H5Aopen(loc, name, H5P_DEFAULT)) < 0 || (space = H5Aget_space(*attr)) < 0 ||
        (type = H5Aget_type(*attr)) < 0) {
        rc = apq_set_error(APQ_EHDF5, "%s: cannot open attribute '%s' of '%s'", h5_filename(loc),
                           name, what);
        goto done;
    }
    if (H5Tget_class(type) != cls || H5Sget_simple_extent_npoints(space) != 1) {
        const char *want = cls == H5T_FLOAT     ? "a floating-point number"
                           : cls == H5T_INTEGER ? "an integer"
                                                : "a string";
        rc = apq_set_error(APQ_EFORMAT, "%s: attribute '%s' of '%s' is not %s", h5_filename(loc),
                           name, what, want);
    }
done:
    close_id(type);
    close_id(space);
    if (rc < 0) {
        close_id(*attr);
        *attr = -1;
    }
    return rc;
}

// ---- files ---------------------------------------------------------------

int h5_create(const char *path, hid_t *file) {
    h5_quiet();
    APQ_ASSERT(path && file);
    char tmp[4096];
    int rc = APQ_OK;
    hid_t fapl = -1, fcpl = -1;
    *file = -1;
    if (!apq_tmp_path(tmp, sizeof tmp, path))
        return apq_set_error(APQ_EIO, "%s: path too long", path);
    /* a plain fopen first, for an errno-based message (HDF5 does not keep errno) */
    FILE *probe = fopen(tmp, "wb");
    if (!probe) return apq_set_error(APQ_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    fclose(probe);
    /* The file is built in memory (HDF5's core driver, no backing store) and
     * written out by h5_commit in one checked write: a full disk then fails
     * our write(2), with its errno, never HDF5's close, whose failure leaves
     * the library in a state that crashes at exit. It is written in the HDF5
     * 1.8 file format (read by HDF5 >= 1.8 and h5py), whose superblock and
     * object headers carry checksums: a damaged file is an HDF5 error when
     * it is opened or read, where the 1.6 format's unchecked metadata can
     * crash the library (fuzz/README.md). */
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0 ||
        H5Pset_fapl_core(fapl, (size_t)1 << 20, 0) < 0 ||
        (fcpl = untimed_plist(H5P_FILE_CREATE)) < 0 ||
        (*file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl)) < 0) {
        rc = apq_set_error(APQ_EHDF5, "%s: cannot create HDF5 file", tmp);
        remove(tmp);
        *file = -1;
    }
    close_id(fcpl);
    close_id(fapl);
    return rc;
}

/* Bob Jenkins' lookup3 hash (hashlittle, byte by byte), the checksum of the
 * HDF5 file format's metadata (HDF5 File Format Specification, "Metadata
 * Checksums"); verified against a superblock HDF5 wrote itself. */
#define ROT32(x, k) (((x) << (k)) | ((x) >> (32 - (k))))
static uint32_t lookup3(const uint8_t *k, size_t length, uint32_t initval) {
    uint32_t a, b, c;
    a = b = c = 0xdeadbeef + (uint32_t)length + initval;
    for (; length > 12; length -= 12, k += 12) {
        a += k[0] + ((uint32_t)k[1] << 8) + ((uint32_t)k[2] << 16) + ((uint32_t)k[3] << 24);
        b += k[4] + ((uint32_t)k[5] << 8) + ((uint32_t)k[6] << 16) + ((uint32_t)k[7] << 24);
        c += k[8] + ((uint32_t)k[9] << 8) + ((uint32_t)k[10] << 16) + ((uint32_t)k[11] << 24);
        a -= c, a ^= ROT32(c, 4), c += b;
        b -= a, b ^= ROT32(a, 6), a += c;
        c -= b, c ^= ROT32(b, 8), b += a;
        a -= c, a ^= ROT32(c, 16), c += b;
        b -= a, b ^= ROT32(a, 19), a += c;
        c -= b, c ^= ROT32(b, 4), b += a;
    }
    switch (length) { /* the last 0-12 bytes */
    case 12:
        c += (uint32_t)k[11] << 24; /* fall through */
    case 11:
        c += (uint32_t)k[10] << 16; /* fall through */
    case 10:
        c += (uint32_t)k[9] << 8; /* fall through */
    case 9:
        c += k[8]; /* fall through */
    case 8:
        b += (uint32_t)k[7] << 24; /* fall through */
    case 7:
        b += (uint32_t)k[6] << 16; /* fall through */
    case 6:
        b += (uint32_t)k[5] << 8; /* fall through */
    case 5:
        b += k[4]; /* fall through */
    case 4:
        a += (uint32_t)k[3] << 24; /* fall through */
    case 3:
        a += (uint32_t)k[2] << 16; /* fall through */
    case 2:
        a += (uint32_t)k[1] << 8; /* fall through */
    case 1:
        a += k[0];
        break;
    case 0:
        return c;
    }
    c ^= b, c -= ROT32(b, 14);
    a ^= c, a -= ROT32(c, 11);
    b ^= a, b -= ROT32(a, 25);
    c ^= b, c -= ROT32(b, 16);
    a ^= c, a -= ROT32(c, 4);
    b ^= a, b -= ROT32(a, 14);
    c ^= b, c -= ROT32(b, 24);
    return c;
}

/* HDF5 1.10's H5Fget_file_image clears a version 2+ superblock's status
 * flags (set while the file is open for writing) in the image without
 * updating the superblock's checksum, so the image would not open. Recompute
 * it: the checksum follows the signature (8 bytes), 4 one-byte fields and 4
 * addresses of img[9] bytes each, as a little-endian lookup3 of them. */
static void fix_superblock_checksum(uint8_t *img, size_t size) {
    if (size < 12 || memcmp(img, "\x89HDF\r\n\x1a\n", 8) != 0 || img[8] < 2) return;
    const size_t n = 12 + 4 * (size_t)img[9];
    if (n + 4 > size) return;
    const uint32_t sum = lookup3(img, n, 0);
    for (int i = 0; i < 4; i++) img[n + i] = (uint8_t)(sum >> (8 * i));
}

/* Close the in-memory file and write its image to tmp: flush, fsync and
 * close checked, so "No space left on device" or "File too large" is named. */
static int write_image(hid_t file, const char *tmp) {
    int rc = APQ_OK;
    void *img = NULL;
    ssize_t size = -1;
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0 || (size = H5Fget_file_image(file, NULL, 0)) < 0)
        rc = apq_set_error(APQ_EHDF5, "%s: cannot finish the HDF5 file", tmp);
    else if (!(img = malloc(size ? (size_t)size : 1)))
        rc = apq_set_error(APQ_ENOMEM, "%s: out of memory (%zd bytes)", tmp, size);
    else if (H5Fget_file_image(file, img, (size_t)size) != size)
        rc = apq_set_error(APQ_EHDF5, "%s: cannot finish the HDF5 file", tmp);
    if (rc == 0) fix_superblock_checksum(img, (size_t)size);
    if (H5Fclose(file) < 0 && rc == 0) /* memory only: a failure is HDF5's own */
        rc = apq_set_error(APQ_EHDF5, "%s: closing the HDF5 file failed", tmp);
    if (rc < 0) {
        free(img);
        return rc;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rc = apq_set_error(APQ_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        int err = 0;
        if (fwrite(img, 1, (size_t)size, f) != (size_t)size || fflush(f) != 0 ||
            fsync(fileno(f)) != 0)
            err = errno;
        rc = apq_fclose(f, tmp);
        if (err) rc = apq_set_error(APQ_EIO, "%s: write failed: %s", tmp, strerror(err));
    }
    free(img);
    return rc;
}

int h5_commit(hid_t file, const char *path) {
    h5_quiet();
    APQ_ASSERT(path);
    char tmp[4096];
    if (!apq_tmp_path(tmp, sizeof tmp, path))
        return apq_set_error(APQ_EIO, "%s: path too long", path);
    int rc = APQ_OK;
    if (file < 0) {
        rc = apq_set_error(APQ_EHDF5, "%s: no open HDF5 file to commit", tmp);
        goto done;
    }
    ssize_t open_objs = H5Fget_obj_count(file, H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_DATATYPE |
                                                   H5F_OBJ_ATTR | H5F_OBJ_LOCAL);
    if (open_objs > 0) /* a caller's bug; H5F_CLOSE_STRONG still closes them */
        apq_log("warning: %s: %zd HDF5 handles left open at commit", tmp, open_objs);
    rc = write_image(file, tmp);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = apq_set_error(APQ_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
done:
    if (rc < 0) remove(tmp);
    return rc;
}

void h5_abort(hid_t file, const char *path) {
    h5_quiet();
    char tmp[4096];
    if (file >= 0) H5Fclose(file);
    if (path && apq_tmp_path(tmp, sizeof tmp, path)) remove(tmp);
}

int h5_open_read(const char *path, const char *kind, int version, hid_t *file) {
    h5_quiet();
    APQ_ASSERT(path && file);
    int rc = APQ_OK;
    hid_t fapl = -1, f = -1;
    char found[256];
    struct stat st;
    *file = -1;
    if (stat(path, &st) != 0) {
        rc = errno == ENOENT
                 ? apq_set_error(APQ_EIO, "%s: no such file; hint: run make to produce it", path)
                 : apq_set_error(APQ_EIO, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = apq_set_error(APQ_EIO, "%s: is a directory, expected an HDF5 file", path);
        goto done;
    }
    if (access(path, R_OK) != 0) {
        rc = apq_set_error(APQ_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto done;
    }
    if (H5Fis_hdf5(path) <= 0) {
        rc = apq_set_error(APQ_EFORMAT, "%s: not an HDF5 file", path);
        goto done;
    }
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        rc = apq_set_error(APQ_EHDF5, "%s: cannot set up HDF5 file access", path);
        goto done;
    }
    if ((f = H5Fopen(path, H5F_ACC_RDONLY, fapl)) < 0) {
        rc = apq_set_error(APQ_EFORMAT,
                           "%s: truncated or damaged HDF5 file (it has an HDF5 signature but "
                           "cannot be opened); hint: delete it and run make",
                           path);
        goto done;
    }
    if (kind) {
        int64_t v = 0;
        htri_t has = H5Aexists(f, "format");
        if (has <= 0) {
            rc = apq_set_error(APQ_EFORMAT, "%s: no 'format' attribute, expected format '%s'", path,
                               kind);
            goto done;
        }
        if ((rc = h5_attr_get_str(f, "format", found, sizeof found)) < 0) goto done;
        if (strcmp(found, kind) != 0) {
            rc = apq_set_error(APQ_EFORMAT, "%s: format is '%s', expected '%s'", path, found, kind);
            goto done;
        }
        if ((rc = h5_attr_get_i64(f, "format_version", &v)) < 0) goto done;
        if (v != version) {
            rc = apq_set_error(APQ_EFORMAT,
                               "%s: %s format_version is %lld, expected %d; hint: delete it "
                               "and run make to regenerate it",
                               path, kind, (long long)v, version);
            goto done;
        }
    }
    *file = f;
    f = -1;
done:
    close_id(f);
    close_id(fapl);
    return rc;
}

void h5_close(hid_t file) {
    h5_quiet();
    close_id(file);
}

int h5_write_provenance(hid_t file, const char *kind, int version, uint64_t seed,
                        const char *profile) {
    h5_quiet();
    APQ_ASSERT(kind);
    char created[32];
    /* SOURCE_DATE_EPOCH (reproducible-builds.org) pins the time, so that
     * two runs of the same work write the same bytes (tests, merges) */
    const char *epoch = getenv("SOURCE_DATE_EPOCH");
    char *end = NULL;
    long long pinned = epoch && *epoch ? strtoll(epoch, &end, 10) : -1;
    time_t now = pinned >= 0 && end && !*end ? (time_t)pinned : time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || !strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(created, sizeof created, "unknown");
    int rc;
    if ((rc = h5_attr_set_str(file, "format", kind)) < 0 ||
        (rc = h5_attr_set_i64(file, "format_version", version)) < 0 ||
        (rc = h5_attr_set_str(file, "git_rev", apq_git_rev())) < 0 ||
        (rc = set_attr(file, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &seed)) < 0 ||
        (rc = h5_attr_set_i64(file, "threads", apq_threads())) < 0 ||
        (rc = h5_attr_set_str(file, "blas_kernel", apq_blas_kernel())) < 0 ||
        (rc = h5_attr_set_str(file, "profile", profile ? profile : "")) < 0 ||
        (rc = h5_attr_set_str(file, "created", created)) < 0)
        return rc;
    return APQ_OK;
}

// ---- datasets ------------------------------------------------------------

/* Writers keep the invariant readers check: no NaN or infinity in a file. */
static int check_finite_out(hid_t loc, const char *name, int rank, const hsize_t *dims,
                            const void *data, int f32) {
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
    double v;
    const size_t i = first_nonfinite(data, n, f32, &v);
    if (i == n) return APQ_OK;
    char what[1200];
    return apq_set_error(APQ_ENONFINITE,
                         "%s: refusing to write %s at index %zu of dataset '%s': a result "
                         "turned non-finite",
                         h5_filename(loc), isnan(v) ? "NaN" : "an infinity", i,
                         obj_path(loc, name, what, sizeof what));
}

int h5_write_f32(hid_t loc, const char *name, int rank, const hsize_t *dims, const float *data) {
    int rc = check_finite_out(loc, name, rank, dims, data, 1);
    return rc < 0 ? rc : write_dataset(loc, name, rank, dims, H5T_NATIVE_FLOAT, data);
}

int h5_write_f64(hid_t loc, const char *name, int rank, const hsize_t *dims, const double *data) {
    int rc = check_finite_out(loc, name, rank, dims, data, 0);
    return rc < 0 ? rc : write_dataset(loc, name, rank, dims, H5T_NATIVE_DOUBLE, data);
}

int h5_write_i32(hid_t loc, const char *name, int rank, const hsize_t *dims, const int32_t *data) {
    return write_dataset(loc, name, rank, dims, H5T_NATIVE_INT32, data);
}

int h5_write_u8(hid_t loc, const char *name, int rank, const hsize_t *dims, const uint8_t *data) {
    return write_dataset(loc, name, rank, dims, H5T_NATIVE_UINT8, data);
}

int h5_write_strings(hid_t loc, const char *name, const char *const *strs, size_t n) {
    h5_quiet();
    APQ_ASSERT(name && (strs || n == 0));
    size_t len = 1;
    for (size_t i = 0; i < n; i++) {
        APQ_ASSERT(strs[i]);
        size_t l = strlen(strs[i]) + 1;
        if (l > len) len = l;
    }
    int rc = APQ_OK;
    hid_t type = -1;
    char what[1200];
    char *buf = calloc(n ? n : 1, len);
    if (!buf) {
        rc = apq_set_error(APQ_ENOMEM, "%s: dataset '%s': out of memory", h5_filename(loc),
                           obj_path(loc, name, what, sizeof what));
        goto done;
    }
    for (size_t i = 0; i < n; i++) memcpy(buf + i * len, strs[i], strlen(strs[i]));
    if ((type = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(type, len) < 0 ||
        H5Tset_strpad(type, H5T_STR_NULLPAD) < 0) {
        rc = apq_set_error(APQ_EHDF5, "%s: dataset '%s': cannot make string type", h5_filename(loc),
                           obj_path(loc, name, what, sizeof what));
        goto done;
    }
    rc = write_dataset(loc, name, 1, (hsize_t[]){n}, type, buf);
done:
    close_id(type);
    free(buf);
    return rc;
}

int h5_read_f32(hid_t loc, const char *name, int rank, const hsize_t *dims, float *out) {
    return read_dataset(loc, name, rank, dims, H5T_FLOAT, H5T_NATIVE_FLOAT, out);
}

int h5_read_f64(hid_t loc, const char *name, int rank, const hsize_t *dims, double *out) {
    return read_dataset(loc, name, rank, dims, H5T_FLOAT, H5T_NATIVE_DOUBLE, out);
}

int h5_read_i32(hid_t loc, const char *name, int rank, const hsize_t *dims, int32_t *out) {
    return read_dataset(loc, name, rank, dims, H5T_INTEGER, H5T_NATIVE_INT32, out);
}

int h5_read_u8(hid_t loc, const char *name, int rank, const hsize_t *dims, uint8_t *out) {
    return read_dataset(loc, name, rank, dims, H5T_INTEGER, H5T_NATIVE_UINT8, out);
}

int h5_shape(hid_t loc, const char *name, int *rank, hsize_t dims[4]) {
    h5_quiet();
    APQ_ASSERT(name && rank && dims);
    char what[1200];
    hid_t ds = -1, space = -1;
    hsize_t d[H5S_MAX_RANK];
    int r = 0, rc = APQ_OK;
    obj_path(loc, name, what, sizeof what);
    if (H5LTpath_valid(loc, name, 1) <= 0) {
        rc = apq_set_error(APQ_EFORMAT, "%s: no dataset '%s'", h5_filename(loc), what);
        goto done;
    }
    if ((ds = H5Dopen2(loc, name, H5P_DEFAULT)) < 0) {
        rc = apq_set_error(APQ_EFORMAT, "%s: '%s' is not a dataset", h5_filename(loc), what);
        goto done;
    }
    if ((space = H5Dget_space(ds)) < 0 || (r = H5Sget_simple_extent_ndims(space)) < 0 ||
        H5Sget_simple_extent_dims(space, d, NULL) < 0) {
        rc = apq_set_error(APQ_EHDF5, "%s: cannot query dataset '%s'", h5_filename(loc), what);
        goto done;
    }
    if (r > 4) {
        rc = apq_set_error(APQ_EFORMAT, "%s: dataset '%s' has rank %d, at most 4 supported",
                           h5_filename(loc), what, r);
        goto done;
    }
    *rank = r;
    for (int i = 0; i < r; i++) dims[i] = d[i];
done:
    close_id(space);
    close_id(ds);
    return rc;
}

int h5_read_f32_alloc(hid_t loc, const char *name, float **out, size_t *n) {
    return read_alloc(loc, name, H5T_NATIVE_FLOAT, sizeof(float), (void **)out, n);
}

int h5_read_f64_alloc(hid_t loc, const char *name, double **out, size_t *n) {
    return read_alloc(loc, name, H5T_NATIVE_DOUBLE, sizeof(double), (void **)out, n);
}

int h5_read_strings(hid_t loc, const char *name, char ***out, size_t *n) {
    APQ_ASSERT(out && n);
    hsize_t dims[H5S_MAX_RANK];
    int rank = 0;
    hid_t ds = -1, ftype = -1, mtype = -1, space = -1;
    char what[1200], *fixed = NULL, **vlen = NULL, **strs = NULL;
    size_t count = 0;
    *out = NULL;
    *n = 0;
    int rc = open_dataset(loc, name, H5T_STRING, &ds, &rank, dims);
    if (rc < 0) goto done;
    obj_path(loc, name, what, sizeof what);
    if (rank != 1) {
        rc = apq_set_error(APQ_EFORMAT, "%s: dataset '%s' has rank %d, expected 1",
                           h5_filename(loc), what, rank);
        goto done;
    }
    count = (size_t)dims[0];
    if (!(strs = calloc(count ? count : 1, sizeof *strs))) goto nomem;
    if ((ftype = H5Dget_type(ds)) < 0 || (mtype = H5Tcopy(H5T_C_S1)) < 0) goto hdf5;
    htri_t is_vlen = H5Tis_variable_str(ftype);
    if (is_vlen < 0) goto hdf5;
    if (is_vlen) { /* e.g. written by h5py */
        if (H5Tset_size(mtype, H5T_VARIABLE) < 0) goto hdf5;
        if (!(vlen = calloc(count ? count : 1, sizeof *vlen))) goto nomem;
        if (count && H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, vlen) < 0) goto hdf5;
        for (size_t i = 0; i < count; i++)
            if (!(strs[i] = strdup(vlen[i] ? vlen[i] : ""))) goto nomem;
    } else {
        size_t len = H5Tget_size(ftype);
        if (!len || H5Tset_size(mtype, len) < 0 || H5Tset_strpad(mtype, H5T_STR_NULLPAD) < 0)
            goto hdf5;
        if (!(fixed = calloc(count ? count : 1, len))) goto nomem;
        if (count && H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, fixed) < 0) goto hdf5;
        for (size_t i = 0; i < count; i++)
            if (!(strs[i] = strndup(fixed + i * len, len))) goto nomem;
    }
    *out = strs;
    *n = count;
    strs = NULL;
    goto done;
nomem:
    rc = apq_set_error(APQ_ENOMEM, "%s: dataset '%s': out of memory", h5_filename(loc), what);
    goto done;
hdf5:
    rc =
        apq_set_error(APQ_EHDF5, "%s: cannot read strings of dataset '%s'", h5_filename(loc), what);
done:
    if (vlen && count && (space = H5Dget_space(ds)) >= 0)
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, vlen);
    free(vlen);
    free(fixed);
    h5_free_strings(strs, count);
    close_id(space);
    close_id(mtype);
    close_id(ftype);
    close_id(ds);
    return rc;
}

void h5_free_strings(char **strs, size_t n) {
    if (!strs) return;
    for (size_t i = 0; i < n; i++) free(strs[i]);
    free(strs);
}

int h5_exists(hid_t loc, const char *name) {
    h5_quiet();
    APQ_ASSERT(name);
    htri_t ok = H5LTpath_valid(loc, name, 1);
    if (ok < 0) {
        char what[1200];
        return apq_set_error(APQ_EHDF5, "%s: cannot look up '%s'", h5_filename(loc),
                             obj_path(loc, name, what, sizeof what));
    }
    return ok > 0;
}

// ---- attributes ------------------------------------------------------------

int h5_attr_set_str(hid_t loc, const char *name, const char *value) {
    h5_quiet();
    APQ_ASSERT(value);
    int rc = APQ_OK;
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0 || H5Tset_size(type, strlen(value) + 1) < 0 ||
        H5Tset_strpad(type, H5T_STR_NULLTERM) < 0) {
        rc = apq_set_error(APQ_EHDF5, "%s: attribute '%s': cannot make string type",
                           h5_filename(loc), name);
        goto done;
    }
    rc = set_attr(loc, name, type, type, value);
done:
    close_id(type);
    return rc;
}

int h5_attr_set_i64(hid_t loc, const char *name, int64_t value) {
    return set_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

int h5_attr_set_f64(hid_t loc, const char *name, double value) {
    return set_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

int h5_attr_get_str(hid_t loc, const char *name, char *buf, size_t size) {
    APQ_ASSERT(buf && size > 0);
    char *s = NULL;
    buf[0] = 0;
    int rc = h5_attr_get_str_alloc(loc, name, &s);
    if (rc < 0) return rc;
    snprintf(buf, size, "%s", s);
    free(s);
    return APQ_OK;
}

int h5_attr_get_str_alloc(hid_t loc, const char *name, char **out) {
    APQ_ASSERT(out);
    hid_t attr = -1, ftype = -1, mtype = -1;
    char what[1200], *vlen = NULL, *s = NULL;
    *out = NULL;
    int rc = open_attr(loc, name, H5T_STRING, &attr);
    if (rc < 0) goto done;
    if ((ftype = H5Aget_type(attr)) < 0 || (mtype = H5Tcopy(H5T_C_S1)) < 0) goto hdf5;
    htri_t is_vlen = H5Tis_variable_str(ftype);
    if (is_vlen < 0) goto hdf5;
    if (is_vlen) { /* e.g. written by h5py */
        if (H5Tset_size(mtype, H5T_VARIABLE) < 0 || H5Aread(attr, mtype, &vlen) < 0) goto hdf5;
        s = strdup(vlen ? vlen : "");
    } else {
        size_t len = H5Tget_size(ftype);
        if (!len || H5Tset_size(mtype, len) < 0 || H5Tset_strpad(mtype, H5T_STR_NULLPAD) < 0)
            goto hdf5;
        if (!(s = calloc(len + 1, 1))) goto nomem;
        if (H5Aread(attr, mtype, s) < 0) goto hdf5;
    }
    if (!s) goto nomem;
    *out = s;
    s = NULL;
    goto done;
nomem:
    rc = apq_set_error(APQ_ENOMEM, "%s: attribute '%s': out of memory", h5_filename(loc), name);
    goto done;
hdf5:
    rc = apq_set_error(APQ_EHDF5, "%s: cannot read attribute '%s' of '%s'", h5_filename(loc), name,
                       obj_path(loc, ".", what, sizeof what));
done:
    if (vlen) H5free_memory(vlen);
    free(s);
    close_id(mtype);
    close_id(ftype);
    close_id(attr);
    return rc;
}

/* Read a numeric scalar attribute of class cls into *value (memory type mtype). */
static int attr_get_num(hid_t loc, const char *name, H5T_class_t cls, hid_t mtype, void *value) {
    APQ_ASSERT(value);
    hid_t attr = -1;
    char what[1200];
    int rc = open_attr(loc, name, cls, &attr);
    if (rc < 0) goto done;
    if (H5Aread(attr, mtype, value) < 0)
        rc = apq_set_error(APQ_EHDF5, "%s: cannot read attribute '%s' of '%s'", h5_filename(loc),
                           name, obj_path(loc, ".", what, sizeof what));
done:
    close_id(attr);
    return rc;
}

int h5_attr_get_i64(hid_t loc, const char *name, int64_t *value) {
    return attr_get_num(loc, name, H5T_INTEGER, H5T_NATIVE_INT64, value);
}

int h5_attr_get_f64(hid_t loc, const char *name, double *value) {
    return attr_get_num(loc, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, value);
}

const char *h5_filename(hid_t loc) {
    static _Thread_local char name[1024];
    h5_quiet();
    if (H5Fget_name(loc, name, sizeof name) < 0) snprintf(name, sizeof name, "(HDF5 file)");
    return name;
}
