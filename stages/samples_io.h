/* samples_io.h — the sampling stages' rows and their three files
 * (docs/formats.md "samples-fp32.h5 / samples-quant.h5"):
 *
 *   final    samples-*.h5       format "samples": every row, in index order
 *   shard    samples-*.K-of-N.h5 format "samples-shard": rows i with i % N == K-1
 *   partial  <out>.partial      format "samples-partial": the rows a running
 *            process has measured so far, rewritten (temp + rename) after
 *            each one, so that a killed stage resumes where it stopped
 *
 * Sample i's subnet and QAT seed depend on (seed, i) alone, so a row's value
 * does not depend on which process measured it: the merge of N shards holds
 * the same bytes for every N (at a fixed thread count and BLAS kernel, with
 * SOURCE_DATE_EPOCH pinning the `created` time).
 */
#ifndef APQ_SAMPLES_IO_H
#define APQ_SAMPLES_IO_H

#include "../supernet/supernet.h"

#define SAMPLES_IDENTITY_MAX 1024

/* n rows by sample index; a row is measured when arch[i] != NULL (owned). */
struct sample_rows {
    int n, quantized;
    char **arch;
    double *acc, *macs, *wkb; /* val accuracy (fraction), MMACs, weight KiB */
};
void sample_rows_init(struct sample_rows *r, int n, int quantized);
void sample_rows_free(struct sample_rows *r);
int sample_rows_done(const struct sample_rows *r); /* measured rows */

/* What the rows were measured with, beyond the row's index: the shard
 * (k of n, 1-based) and `identity`, one line naming everything a value
 * depends on (seed, n, space, supernet content, recipe, threads, kernel,
 * SN_MEASURE_VERSION: not the git revision, so a sampling run resumes
 * across edits that leave the measurement alone); a partial or shard of
 * another identity is not used. */
struct sample_meta {
    int shard_k, shard_n;
    char identity[SAMPLES_IDENTITY_MAX];
    /* attributes of the final file */
    uint64_t seed;
    char profile[64], supernet[1024], supernet_hash[32];
    struct sn_measure m;
    int batch, val_images;
};

/* "<out>" with ".K-of-N" before a trailing ".h5" (else appended): the shard
 * file make names for --shard K/N. buf holds size bytes; 0 when too long. */
int samples_shard_path(char *buf, size_t size, const char *out, int k, int n);

/* Write the measured rows of r: kind "samples" (all rows must be measured),
 * "samples-shard" or "samples-partial" (with an `index` dataset). Temp file
 * + rename. APQ_OK or the h5 status. */
int samples_write(const char *path, const char *kind, const struct space *s,
                  const struct sample_rows *r, const struct sample_meta *meta);
/* Read the rows of a shard or partial file of this identity and shard into
 * r (n and quantized set). APQ_OK; APQ_EMISMATCH ("made with other
 * settings: <which>") when its identity or shard differ; APQ_EFORMAT when
 * an index is out of range or repeated; else the h5 status. */
int samples_read_rows(const char *path, const char *kind, const struct sample_meta *meta,
                      struct sample_rows *r);

#endif
