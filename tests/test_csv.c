/* test_csv.c — util/csvio: quoting round trip, comments, ragged rows, tmp+rename. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "../util/csvio.h"
#include "../util/util.h"

static const char *tmp_path(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", test_tmpdir, name);
    return buf;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* The whole file as a string (static buffer). */
static const char *slurp(const char *path) {
    static char buf[4096];
    buf[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return buf;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

TEST(csv_roundtrip_quoting) {
    char path[600], tmp[630];
    tmp_path(path, sizeof path, "t.csv");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    const char *fields[] = {"plain",    "a,b",          "say \"hi\"", "two\nlines", "crlf\r\nx",
                            " padded ", "#notacomment", "",           "ünï"};
    const int nf = (int)(sizeof fields / sizeof fields[0]);
    struct csvw w;
    CHECK(csvw_open(&w, path, "# apq v1 seed=1") == APQ_OK);
    CHECK(access(tmp, F_OK) == 0 && access(path, F_OK) != 0);
    csvw_str(&w, "arch");
    csvw_str(&w, "acc");
    csvw_str(&w, "n");
    csvw_end_row(&w);
    for (int i = 0; i < nf; i++) {
        csvw_str(&w, fields[i]);
        csvw_f64(&w, 0.1 * i, NULL);
        csvw_i64(&w, -1234567890123LL + i);
        csvw_end_row(&w);
    }
    csvw_str(&w, fields[6]); /* '#' at the start of a row must not become a comment */
    csvw_f64(&w, 0.5, "%.2f");
    csvw_i64(&w, 0);
    csvw_end_row(&w);
    CHECK(csvw_commit(&w) == APQ_OK);
    CHECK(access(tmp, F_OK) != 0);
    const char *text = slurp(path);
    const char *head = "# apq v1 seed=1\narch,acc,n\nplain,0,-1234567890123\n";
    CHECK(!strncmp(text, head, strlen(head)));
    CHECK(strstr(text, "\"a,b\",0.100000000000000006,") == NULL); /* %.9g, not %.17g */
    CHECK(strstr(text, "\"a,b\",0.1,-1234567890122\n") != NULL);
    CHECK(strstr(text, "\"say \"\"hi\"\"\"") != NULL);
    CHECK(strstr(text, "\n\"#notacomment\",0.50,0\n") != NULL);

    struct csv_table t;
    CHECK(csv_read_table(path, &t) == APQ_OK);
    CHECK(t.n_rows == nf + 2 && t.n_cols == 3);
    if (t.n_rows == nf + 2 && t.n_cols == 3) {
        CHECK(!strcmp(t.cell[0][0], "arch") && !strcmp(t.cell[0][2], "n"));
        for (int i = 0; i < nf; i++) {
            CHECK(!strcmp(t.cell[1 + i][0], fields[i]));
            char want[64];
            snprintf(want, sizeof want, "%lld", -1234567890123LL + i);
            CHECK(!strcmp(t.cell[1 + i][2], want));
        }
        CHECK(!strcmp(t.cell[3][1], "0.2"));
        CHECK(!strcmp(t.cell[nf + 1][0], "#notacomment") && !strcmp(t.cell[nf + 1][1], "0.50"));
    }
    CHECK(csv_table_col(&t, "acc") == 1);
    CHECK(csv_table_col(&t, "nope") == -1);
    csv_table_free(&t);
    CHECK(t.cell == NULL && t.n_rows == 0);
    csv_table_free(&t); /* twice is fine */
}

TEST(csv_float_format) {
    char path[600];
    tmp_path(path, sizeof path, "f.csv");
    struct csvw w;
    CHECK(csvw_open(&w, path, NULL) == APQ_OK);
    csvw_f64(&w, (double)0.1f, NULL); /* float32 round trip needs 9 digits */
    csvw_f64(&w, 1e-20, NULL);
    csvw_f64(&w, 123456789012.0, NULL);
    csvw_f64(&w, -0.25, NULL);
    csvw_end_row(&w);
    CHECK(csvw_commit(&w) == APQ_OK);
    CHECK(!strcmp(slurp(path), "0.100000001,1e-20,1.23456789e+11,-0.25\n"));
}

TEST(csv_comments_and_blank_lines) {
    char path[600];
    tmp_path(path, sizeof path, "c.csv");
    write_text(path, "# provenance line\n"
                     "a,b\n"
                     "# a comment between rows\n"
                     "1,\"x\n# not a comment: inside quotes\"\n"
                     "\n"
                     "2,y\r\n"
                     "3,z"); /* no final newline */
    struct csv_table t;
    CHECK(csv_read_table(path, &t) == APQ_OK);
    CHECK(t.n_rows == 4 && t.n_cols == 2);
    if (t.n_rows == 4) {
        CHECK(!strcmp(t.cell[1][1], "x\n# not a comment: inside quotes"));
        CHECK(!strcmp(t.cell[2][0], "2") && !strcmp(t.cell[2][1], "y"));
        CHECK(!strcmp(t.cell[3][0], "3") && !strcmp(t.cell[3][1], "z"));
    }
    csv_table_free(&t);
}

TEST(csv_errors) {
    char path[600];
    struct csv_table t;
    tmp_path(path, sizeof path, "ragged.csv");
    write_text(path, "# c\na,b,c\n1,2,3\n4,5\n");
    CHECK(csv_read_table(path, &t) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), path) && strstr(apq_last_error(), ":4:") &&
          strstr(apq_last_error(), "2 fields"));
    CHECK(t.cell == NULL && t.n_rows == 0);

    tmp_path(path, sizeof path, "long.csv");
    write_text(path, "a,b\n1,2,3\n");
    CHECK(csv_read_table(path, &t) == APQ_EFORMAT);

    tmp_path(path, sizeof path, "quote.csv");
    write_text(path, "a,b\n1,\"unterminated\n");
    CHECK(csv_read_table(path, &t) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), path) != NULL);

    tmp_path(path, sizeof path, "stray.csv");
    write_text(path, "a,b\n1,x\"y\n");
    CHECK(csv_read_table(path, &t) == APQ_EFORMAT);

    tmp_path(path, sizeof path, "empty.csv");
    write_text(path, "# only a comment\n");
    CHECK(csv_read_table(path, &t) == APQ_EFORMAT);
    CHECK(strstr(apq_last_error(), "no header") != NULL);

    tmp_path(path, sizeof path, "missing.csv");
    CHECK(csv_read_table(path, &t) == APQ_EIO);
    CHECK(strstr(apq_last_error(), path) != NULL);
}

TEST(csv_abort_and_open_failure) {
    char path[600], tmp[630];
    tmp_path(path, sizeof path, "a.csv");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    struct csvw w;
    CHECK(csvw_open(&w, path, "# x") == APQ_OK);
    csvw_str(&w, "a");
    csvw_end_row(&w);
    csvw_abort(&w);
    CHECK(access(path, F_OK) != 0 && access(tmp, F_OK) != 0);

    /* an unfinished row is refused at commit, and nothing is left behind */
    CHECK(csvw_open(&w, path, NULL) == APQ_OK);
    csvw_str(&w, "a");
    CHECK(csvw_commit(&w) == APQ_EIO);
    CHECK(access(path, F_OK) != 0 && access(tmp, F_OK) != 0);

    char bad[700];
    snprintf(bad, sizeof bad, "%s/no/dir/x.csv", test_tmpdir);
    CHECK(csvw_open(&w, bad, NULL) == APQ_EIO);
    csvw_str(&w, "ignored"); /* no-ops after a failed open */
    csvw_end_row(&w);
    CHECK(csvw_commit(&w) == APQ_EIO);
    CHECK(strstr(apq_last_error(), bad) != NULL);
}
