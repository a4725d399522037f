/* csvio.h — CSV tables through libcsv.
 *
 * Writer: C locale, LF newlines, RFC 4180 quoting (libcsv csv_fwrite),
 * floats as %.9g unless a format is given, optional leading "# ..."
 * provenance line; written to "<path>.tmp.<pid>" (unique per process) and renamed by csvw_commit.
 *
 *   struct csvw w; csvw_open(&w, path, "# apq seed=1 rev=abc");
 *   csvw_str(&w, "arch"); csvw_str(&w, "acc"); csvw_end_row(&w);
 *   csvw_str(&w, s); csvw_f64(&w, 0.91, NULL); csvw_end_row(&w);
 *   rc = csvw_commit(&w);
 *
 * Reader: csv_read_table loads a whole file (skipping "#" lines) into rows of
 * strings; the first row is the header.
 */
#ifndef APQ_CSVIO_H
#define APQ_CSVIO_H

#include <stdio.h>

struct csvw {
    FILE *f;
    char path[1024];
    char tmp[1060];
    int col; /* fields written in the current row */
    int err;
};
int csvw_open(struct csvw *w, const char *path, const char *comment_line);
void csvw_str(struct csvw *w, const char *s);
void csvw_f64(struct csvw *w, double v, const char *fmt); /* fmt NULL -> "%.9g" */
void csvw_i64(struct csvw *w, long long v);
void csvw_end_row(struct csvw *w);
int csvw_commit(struct csvw *w); /* APQ_OK or APQ_EIO; removes the tmp file on error */
void csvw_abort(struct csvw *w);

struct csv_table {
    int n_rows, n_cols; /* n_rows includes the header row */
    char ***cell;       /* cell[row][col], malloc'ed */
};
/* Read a CSV file; rows with a different field count than the header are an
 * APQ_EFORMAT error naming the line. */
int csv_read_table(const char *path, struct csv_table *t);
void csv_table_free(struct csv_table *t);
/* Column index by header name, -1 when missing. */
int csv_table_col(const struct csv_table *t, const char *name);

#endif
