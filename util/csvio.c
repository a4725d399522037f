/* csvio.c — CSV tables through libcsv (reference/aesthetics.md O1).
 *
 * Writer: a field is quoted (libcsv csv_fwrite, RFC 4180) only when it needs
 * it: it holds a comma, quote, CR or LF, has leading/trailing blanks, is a
 * row's first field starting with '#' (it would read as a comment) or is an
 * empty first field (an empty line would read as no row). Numbers use
 * snprintf in the C locale (the programs never call setlocale).
 *
 * Reader: strict RFC 4180 through csv_parse callbacks, blanks kept; lines
 * starting with '#' outside a quoted field are comments; blank lines are
 * skipped.
 *
 * Not here: the column schemas (reports/README.md).
 */
#include "csvio.h"

#include <csv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

// ---- writer --------------------------------------------------------------

int csvw_open(struct csvw *w, const char *path, const char *comment_line) {
    APQ_ASSERT(w && path);
    memset(w, 0, sizeof *w);
    APQ_ASSERT(!comment_line || !strpbrk(comment_line, "\r\n"));
    int k1 = snprintf(w->path, sizeof w->path, "%s", path);
    if (k1 < 0 || (size_t)k1 >= sizeof w->path || !apq_tmp_path(w->tmp, sizeof w->tmp, path))
        return w->err = apq_set_error(APQ_EIO, "%s: path too long", path);
    if (!(w->f = fopen(w->tmp, "wb")))
        return w->err = apq_set_error(APQ_EIO, "%s: cannot create: %s", w->tmp, strerror(errno));
    if (comment_line &&
        fprintf(w->f, "%s%s\n", comment_line[0] == '#' ? "" : "# ", comment_line) < 0)
        w->err = apq_set_error(APQ_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
    return w->err;
}

/* Write one raw (already formatted) field. */
static void put_field(struct csvw *w, const char *s, int may_quote) {
    if (!w->f || w->err) return;
    int bad = 0;
    if (w->col > 0 && fputc(',', w->f) == EOF) bad = 1;
    size_t len = strlen(s);
    int quote = may_quote && (strpbrk(s, ",\"\r\n") || (len && (s[0] == ' ' || s[0] == '\t')) ||
                              (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) ||
                              (w->col == 0 && (s[0] == '#' || len == 0)));
    if (!bad && quote)
        bad = csv_fwrite(w->f, s, len) != 0;
    else if (!bad && len)
        bad = fwrite(s, 1, len, w->f) != len;
    if (bad) w->err = apq_set_error(APQ_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
    w->col++;
}

void csvw_str(struct csvw *w, const char *s) {
    put_field(w, s ? s : "", 1);
}

void csvw_f64(struct csvw *w, double v, const char *fmt) {
    char buf[64];
    snprintf(buf, sizeof buf, fmt ? fmt : "%.9g", v);
    put_field(w, buf, 1);
}

void csvw_i64(struct csvw *w, long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    put_field(w, buf, 0);
}

void csvw_end_row(struct csvw *w) {
    if (!w->f || w->err) return;
    if (fputc('\n', w->f) == EOF)
        w->err = apq_set_error(APQ_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
    w->col = 0;
}

int csvw_commit(struct csvw *w) {
    if (!w->f) return w->err ? w->err : apq_set_error(APQ_EIO, "%s: not open", w->path);
    int rc = w->err;
    if (!rc && w->col != 0)
        rc = apq_set_error(APQ_EIO, "%s: last row not ended (csvw_end_row)", w->tmp);
    if (!rc && (fflush(w->f) != 0 || ferror(w->f)))
        rc = apq_set_error(APQ_EIO, "%s: write failed: %s", w->tmp, strerror(errno));
    if (fclose(w->f) != 0 && !rc)
        rc = apq_set_error(APQ_EIO, "%s: close failed: %s", w->tmp, strerror(errno));
    w->f = NULL;
    if (!rc && rename(w->tmp, w->path) != 0)
        rc = apq_set_error(APQ_EIO, "cannot rename %s to %s: %s", w->tmp, w->path, strerror(errno));
    if (rc) remove(w->tmp);
    w->err = rc;
    return rc;
}

void csvw_abort(struct csvw *w) {
    if (!w || !w->f) return;
    fclose(w->f);
    w->f = NULL;
    remove(w->tmp);
}

// ---- reader --------------------------------------------------------------

struct reader {
    const char *path;
    struct csv_table *t;
    int cap_rows;
    char **row; /* fields of the row being parsed */
    int n_fields, cap_fields;
    long line, row_line; /* current physical line; line where the current row began */
    int row_open;        /* bytes fed since the last end of row */
    int rc;
};

static void on_field(void *s, size_t len, void *data) {
    struct reader *r = data;
    if (r->rc) return;
    if (r->n_fields == r->cap_fields) {
        int cap = r->cap_fields ? 2 * r->cap_fields : 16;
        char **p = realloc(r->row, (size_t)cap * sizeof *p);
        if (!p) {
            r->rc = apq_set_error(APQ_ENOMEM, "%s: out of memory", r->path);
            return;
        }
        r->row = p;
        r->cap_fields = cap;
    }
    char *f = malloc(len + 1);
    if (!f) {
        r->rc = apq_set_error(APQ_ENOMEM, "%s: out of memory", r->path);
        return;
    }
    if (len) memcpy(f, s, len);
    f[len] = 0;
    r->row[r->n_fields++] = f;
}

static void drop_fields(struct reader *r) {
    for (int i = 0; i < r->n_fields; i++) free(r->row[i]);
    r->n_fields = 0;
}

static void on_row(int c, void *data) {
    struct reader *r = data;
    struct csv_table *t = r->t;
    (void)c;
    r->row_open = 0;
    if (r->rc) goto fail;
    if (t->n_rows == 0)
        t->n_cols = r->n_fields;
    else if (r->n_fields != t->n_cols) {
        r->rc = apq_set_error(APQ_EFORMAT, "%s:%ld: row has %d field%s, the header has %d", r->path,
                              r->row_line, r->n_fields, r->n_fields == 1 ? "" : "s", t->n_cols);
        goto fail;
    }
    if (t->n_rows == r->cap_rows) {
        int cap = r->cap_rows ? 2 * r->cap_rows : 64;
        char ***p = realloc(t->cell, (size_t)cap * sizeof *p);
        if (!p) {
            r->rc = apq_set_error(APQ_ENOMEM, "%s: out of memory", r->path);
            goto fail;
        }
        t->cell = p;
        r->cap_rows = cap;
    }
    char **cells = malloc((size_t)(t->n_cols ? t->n_cols : 1) * sizeof *cells);
    if (!cells) {
        r->rc = apq_set_error(APQ_ENOMEM, "%s: out of memory", r->path);
        goto fail;
    }
    memcpy(cells, r->row, (size_t)t->n_cols * sizeof *cells);
    t->cell[t->n_rows++] = cells;
    r->n_fields = 0;
    return;
fail:
    drop_fields(r);
}

static int no_space(unsigned char c) {
    (void)c;
    return 0;
}

int csv_read_table(const char *path, struct csv_table *t) {
    APQ_ASSERT(path && t);
    memset(t, 0, sizeof *t);
    struct reader r = {.path = path, .t = t};
    struct csv_parser p;
    int parser_ok = 0;
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        r.rc = errno == ENOENT
                   ? apq_set_error(APQ_EIO, "%s: no such file; hint: run make to produce it", path)
                   : apq_set_error(APQ_EIO, "%s: cannot open: %s", path, strerror(errno));
        goto done;
    }
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        r.rc = apq_set_error(APQ_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    parser_ok = 1;
    csv_set_space_func(&p, no_space);
    ssize_t len;
    while (!r.rc && (len = getline(&line, &cap, f)) >= 0) {
        r.line++;
        if (!r.row_open) { /* between rows: comments and blank lines are skipped */
            if (line[0] == '#' || line[strspn(line, "\r\n")] == 0) continue;
            r.row_line = r.line;
        }
        r.row_open = 1;
        if (csv_parse(&p, line, (size_t)len, on_field, on_row, &r) != (size_t)len && !r.rc)
            r.rc = apq_set_error(APQ_EFORMAT, "%s:%ld: malformed CSV (%s)", path, r.line,
                                 csv_strerror(csv_error(&p)));
    }
    if (!r.rc && ferror(f)) r.rc = apq_set_error(APQ_EIO, "%s: read failed", path);
    if (!r.rc && csv_fini(&p, on_field, on_row, &r) != 0 && !r.rc)
        r.rc = apq_set_error(APQ_EFORMAT, "%s:%ld: malformed CSV (unterminated quoted field)", path,
                             r.row_line);
    if (!r.rc && t->n_rows == 0)
        r.rc = apq_set_error(APQ_EFORMAT, "%s: empty (no header row)", path);
done:
    drop_fields(&r);
    free(r.row);
    free(line);
    if (parser_ok) csv_free(&p);
    if (f) fclose(f);
    if (r.rc) csv_table_free(t);
    return r.rc;
}

void csv_table_free(struct csv_table *t) {
    if (!t) return;
    for (int i = 0; i < t->n_rows; i++) {
        for (int j = 0; j < t->n_cols; j++) free(t->cell[i][j]);
        free(t->cell[i]);
    }
    free(t->cell);
    memset(t, 0, sizeof *t);
}

int csv_table_col(const struct csv_table *t, const char *name) {
    if (!t || t->n_rows == 0) return -1;
    for (int j = 0; j < t->n_cols; j++)
        if (!strcmp(t->cell[0][j], name)) return j;
    return -1;
}
