/* h5.h — thin checked wrappers over HDF5's high-level (H5LT) API.
 *
 * Every artifact is written to "<path>.tmp.<pid>" (unique per process) and
 * renamed into place by h5_commit, so an interrupted stage never leaves a
 * finished-looking file and two writers never share a temporary file.
 * Every file carries the provenance attributes `format` (kind of file),
 * `format_version`, `git_rev`, `seed`, `threads`, `blas_kernel`, `profile`,
 * `created`.
 * Readers check `format` and `format_version` and fail with one line naming
 * the file (docs/formats.md).
 *
 *   hid_t f; int rc = h5_create(path, &f);
 *   rc = h5_write_provenance(f, "samples-fp32", 1, seed, profile);
 *   rc = h5_write_f32(f, "acc_val", 1, (hsize_t[]){n}, acc);
 *   rc = rc < 0 ? (h5_abort(f, path), rc) : h5_commit(f, path);
 *
 * Dataset names may contain '/', intermediate groups are created.
 * All functions return APQ_OK or a negative apq_status with a detail line
 * (apq_set_error) naming the file/dataset. HDF5's own error printing is off.
 */
#ifndef APQ_H5_H
#define APQ_H5_H

#include <hdf5.h>
#include <stdint.h>

/* Create "<path>.tmp.<pid>" (truncating). */
int h5_create(const char *path, hid_t *file);
/* Close and rename "<path>.tmp.<pid>" to path. */
int h5_commit(hid_t file, const char *path);
/* Close and delete "<path>.tmp.<pid>" (after a failure). */
void h5_abort(hid_t file, const char *path);

/* Open for reading; checks attribute `format` == kind and `format_version`
 * == version (kind NULL skips both). Missing, truncated or foreign files get
 * APQ_EIO / APQ_EFORMAT with a hint. */
int h5_open_read(const char *path, const char *kind, int version, hid_t *file);
void h5_close(hid_t file);

/* Write attributes format, format_version, git_rev, seed, threads, blas_kernel
 * (apq_blas_kernel), profile, created. */
int h5_write_provenance(hid_t file, const char *kind, int version, uint64_t seed,
                        const char *profile);

/* Floating-point writes refuse NaN and infinities (APQ_ENONFINITE "file:
 * refusing to write NaN at index i of dataset 'name'"): every reader refuses them. */
int h5_write_f32(hid_t loc, const char *name, int rank, const hsize_t *dims, const float *data);
int h5_write_f64(hid_t loc, const char *name, int rank, const hsize_t *dims, const double *data);
int h5_write_i32(hid_t loc, const char *name, int rank, const hsize_t *dims, const int32_t *data);
/* Bytes (H5T_NATIVE_UINT8): packed weights, tables of small values. */
int h5_write_u8(hid_t loc, const char *name, int rank, const hsize_t *dims, const uint8_t *data);
/* A 1-D dataset of n fixed-length strings (length = longest + 1, NUL padded). */
int h5_write_strings(hid_t loc, const char *name, const char *const *strs, size_t n);

/* Read a dataset whose shape must equal dims[0..rank-1]; otherwise
 * APQ_EFORMAT "file: dataset 'name' has shape [..], expected [..]".
 * Floating-point reads (here and the _alloc variants) also reject NaN and
 * infinities, which no stage writes: APQ_EFORMAT "file: dataset 'name' holds
 * NaN at index i; the file is damaged, rerun make to rebuild it". */
int h5_read_f32(hid_t loc, const char *name, int rank, const hsize_t *dims, float *out);
int h5_read_f64(hid_t loc, const char *name, int rank, const hsize_t *dims, double *out);
int h5_read_i32(hid_t loc, const char *name, int rank, const hsize_t *dims, int32_t *out);
int h5_read_u8(hid_t loc, const char *name, int rank, const hsize_t *dims, uint8_t *out);
/* Shape of a dataset (rank <= 4). */
int h5_shape(hid_t loc, const char *name, int *rank, hsize_t dims[4]);
/* Read a 1-D f32/f64 dataset of any length; *out is malloc'ed (caller frees). */
int h5_read_f32_alloc(hid_t loc, const char *name, float **out, size_t *n);
int h5_read_f64_alloc(hid_t loc, const char *name, double **out, size_t *n);
/* Read a 1-D string dataset; *out is an array of n malloc'ed strings, free with h5_free_strings. */
int h5_read_strings(hid_t loc, const char *name, char ***out, size_t *n);
void h5_free_strings(char **strs, size_t n);
int h5_exists(hid_t loc, const char *name);

int h5_attr_set_str(hid_t loc, const char *name, const char *value);
int h5_attr_set_i64(hid_t loc, const char *name, int64_t value);
int h5_attr_set_f64(hid_t loc, const char *name, double value);
/* Read a string attribute into buf (size bytes, truncated, NUL-terminated). */
int h5_attr_get_str(hid_t loc, const char *name, char *buf, size_t size);
/* Read a string attribute of any length; *out malloc'ed. */
int h5_attr_get_str_alloc(hid_t loc, const char *name, char **out);
int h5_attr_get_i64(hid_t loc, const char *name, int64_t *value);
int h5_attr_get_f64(hid_t loc, const char *name, double *value);

/* The file name of an open handle for messages (static buffer). */
const char *h5_filename(hid_t loc);

#endif
