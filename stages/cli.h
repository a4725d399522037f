/* cli.h — argument parsing and profile settings shared by the stage mains.
 *
 * Options are "--name value" (or "--flag"); unknown options, missing values and
 * malformed numbers are usage errors (exit 2). A profile is an .ini file
 * (profiles/<name>.ini) with one section per stage; a stage reads its own
 * section with profile_int/profile_f64/profile_str and finally calls
 * profile_finish(), which rejects keys of that section nobody asked for.
 *
 *   const char *space = "supernet/spaces/fmnist-mbv2.ini", *out = NULL;
 *   long seed = 1;
 *   struct cli_opt opts[] = {
 *       {"space", CLI_STR, &space, "search-space .ini"},
 *       {"seed", CLI_INT, &seed, "random seed"},
 *       {"out", CLI_STR, &out, "output file (required)"},
 *   };
 *   cli_parse(argc, argv, opts, 3, "train the supernet");
 */
#ifndef APQ_CLI_H
#define APQ_CLI_H

enum cli_type { CLI_STR, CLI_INT, CLI_F64, CLI_FLAG };
struct cli_opt {
    const char *name; /* without the leading "--" */
    enum cli_type type;
    void *value; /* const char ** | long * | double * | int * (flag) */
    const char *help;
};
/* Parse argv; "--help" prints usage to stdout and exits 0; errors exit 2. */
void cli_parse(int argc, char **argv, const struct cli_opt *opts, int n, const char *what);
/* Exit 2 with "missing --name" when *value is NULL. */
void cli_require(const char *name, const char *value);
/* A bad option value: "<prog>: error: <message>", exit 2. */
void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

struct profile; /* opaque */
/* Load a profile .ini; `section` is the stage's section name. A missing or
 * unreadable file exits 1; a syntax error, a key outside any section, a key
 * given twice in the stage's section exit 2 ("<path>:<line>: ..."). */
struct profile *profile_load(const char *path, const char *section);
/* The value of key, or def when absent. A value that is not a number or lies
 * outside [lo, hi] (NaN and infinities included) exits 2 with
 * "<profile>: [section] key = v: expected an integer in [lo, hi]". Every key
 * a stage reads has a range: no profile value can reach the library out of
 * its domain. */
long profile_int(struct profile *p, const char *key, long def, long lo, long hi);
double profile_f64(struct profile *p, const char *key, double def, double lo, double hi);
/* A value that conflicts with another key or with the data (e.g. a batch
 * larger than the training images): "<path>: [section] <message>", exit 2. */
void profile_die(const char *path, const char *section, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
/* The value (borrowed: valid until profile_finish) or def. */
const char *profile_str(struct profile *p, const char *key, const char *def);
/* The profile's name ([profile] name), for provenance. */
const char *profile_name(const struct profile *p);
/* Exit 2 when the section holds keys nobody read; frees p. */
void profile_finish(struct profile *p);

/* mkdir -p: APQ_OK, or APQ_EIO "<folder>: cannot create the folder: <strerror>". */
int cli_mkdirs(const char *dir);
/* Before a long run: exit 1 with "<folder>: cannot write there: <strerror>"
 * unless a file can be created in the folder of `out` (a read-only or
 * missing folder is found before hours of training, not after). */
void cli_require_writable(const char *out);
/* 1 when path is a whole PNG file (it ends with the IEND chunk), else 0:
 * gnuplot exits 0 even when the disk fills while it writes, leaving a
 * cut-off file (the report's and the transfer study's plots). */
int cli_png_complete(const char *path);
/* Run gnuplot on the script gp, which writes tmp_png; then rename tmp_png to
 * png. gp and data (a data file the script reads; may be NULL) are removed
 * either way. Exits 1 with one line when gnuplot is missing ("install
 * gnuplot-nox"), fails, is killed, or leaves an incomplete PNG (the previous
 * png is kept), or when the rename fails. */
void cli_run_gnuplot(const char *gp, const char *tmp_png, const char *png, const char *data);

#endif
