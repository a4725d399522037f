/* cli.c — argument parsing and profile settings for the stage mains. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../util/util.h"

static void usage(const struct cli_opt *opts, int n, const char *what, FILE *f) {
    fprintf(f, "%s — %s\noptions:\n", apq_prog, what);
    for (int i = 0; i < n; i++) fprintf(f, "  --%-16s %s\n", opts[i].name, opts[i].help);
}

void cli_parse(int argc, char **argv, const struct cli_opt *opts, int n, const char *what) {
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            usage(opts, n, what, stdout);
            exit(0);
        }
        const struct cli_opt *o = NULL;
        if (!strncmp(argv[a], "--", 2))
            for (int i = 0; i < n; i++)
                if (!strcmp(argv[a] + 2, opts[i].name)) o = &opts[i];
        if (!o) {
            fprintf(stderr, "%s: error: unknown option '%s' (see --help)\n", apq_prog, argv[a]);
            exit(2);
        }
        if (o->type == CLI_FLAG) {
            *(int *)o->value = 1;
            continue;
        }
        if (a + 1 >= argc) {
            fprintf(stderr, "%s: error: --%s needs a value\n", apq_prog, o->name);
            exit(2);
        }
        const char *v = argv[++a];
        char *end;
        errno = 0;
        if (o->type == CLI_STR) {
            *(const char **)o->value = v;
        } else if (o->type == CLI_INT) {
            long x = strtol(v, &end, 10);
            if (end == v || *end || errno) {
                fprintf(stderr, "%s: error: --%s expects an integer, got '%s'\n", apq_prog, o->name,
                        v);
                exit(2);
            }
            *(long *)o->value = x;
        } else {
            double x = strtod(v, &end);
            if (end == v || *end || errno) {
                fprintf(stderr, "%s: error: --%s expects a number, got '%s'\n", apq_prog, o->name,
                        v);
                exit(2);
            }
            *(double *)o->value = x;
        }
    }
}

void cli_require(const char *name, const char *value) {
    if (value) return;
    fprintf(stderr, "%s: error: missing --%s (see --help)\n", apq_prog, name);
    exit(2);
}

void cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "%s: error: ", apq_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

// ---- profiles ------------------------------------------------------------------

#define PROFILE_MAX_KEYS 64
struct profile {
    char path[512], section[64], name[64];
    char err[256]; /* why on_kv stopped the parse */
    int n;
    struct {
        char key[64], value[256];
        int used;
    } kv[PROFILE_MAX_KEYS];
};

static int on_kv(void *user, const char *sec, const char *k, const char *v) {
    struct profile *p = user;
    if (!sec[0]) {
        snprintf(p->err, sizeof p->err, "key '%s' outside any [section]", k);
        return 0;
    }
    if (!strcmp(sec, "profile") && !strcmp(k, "name")) {
        snprintf(p->name, sizeof p->name, "%s", v);
        return 1;
    }
    if (strcmp(sec, p->section)) return 1;
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->kv[i].key, k)) {
            snprintf(p->err, sizeof p->err, "[%s] key '%s' given twice", sec, k);
            return 0;
        }
    if (p->n >= PROFILE_MAX_KEYS || strlen(k) >= sizeof p->kv[0].key ||
        strlen(v) >= sizeof p->kv[0].value) {
        snprintf(p->err, sizeof p->err, "[%s] too many keys, or a key or value too long", sec);
        return 0;
    }
    snprintf(p->kv[p->n].key, sizeof p->kv[p->n].key, "%s", k);
    snprintf(p->kv[p->n].value, sizeof p->kv[p->n].value, "%s", v);
    p->kv[p->n++].used = 0;
    return 1;
}

struct profile *profile_load(const char *path, const char *section) {
    struct profile *p = apq_xcalloc(1, sizeof *p);
    snprintf(p->path, sizeof p->path, "%s", path);
    snprintf(p->section, sizeof p->section, "%s", section);
    snprintf(p->name, sizeof p->name, "unnamed");
    FILE *f = fopen(path, "r");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        const char *why = f ? "not a regular file" : strerror(errno);
        if (f) fclose(f);
        free(p); /* nothing left behind for a leak checker */
        apq_die("%s: cannot read the profile: %s; hint: profiles live in profiles/<name>.ini", path,
                why);
    }
    int rc = ini_parse_file(f, on_kv, p);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(p);
        apq_die("%s: cannot read the profile", path);
    }
    if (rc > 0) {
        fprintf(stderr, "%s: error: %s:%d: %s\n", apq_prog, path, rc,
                p->err[0] ? p->err : "syntax error");
        free(p);
        exit(2);
    }
    return p;
}

static const char *lookup(struct profile *p, const char *key) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->kv[i].key, key)) {
            p->kv[i].used = 1;
            return p->kv[i].value;
        }
    return NULL;
}

long profile_int(struct profile *p, const char *key, long def, long lo, long hi) {
    APQ_ASSERT(lo <= def && def <= hi);
    const char *v = lookup(p, key);
    if (!v) return def;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "%s: error: %s: [%s] %s = %s: expected an integer in [%ld, %ld]\n",
                apq_prog, p->path, p->section, key, v, lo, hi);
        exit(2);
    }
    return x;
}

double profile_f64(struct profile *p, const char *key, double def, double lo, double hi) {
    APQ_ASSERT(lo <= def && def <= hi);
    const char *v = lookup(p, key);
    if (!v) return def;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !(x >= lo && x <= hi)) { /* NaN fails too */
        fprintf(stderr, "%s: error: %s: [%s] %s = %s: expected a number in [%g, %g]\n", apq_prog,
                p->path, p->section, key, v, lo, hi);
        exit(2);
    }
    return x;
}

void profile_die(const char *path, const char *section, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "%s: error: %s: [%s] %s\n", apq_prog, path, section, line);
    exit(2);
}

const char *profile_str(struct profile *p, const char *key, const char *def) {
    const char *v = lookup(p, key);
    return v ? v : def;
}

const char *profile_name(const struct profile *p) {
    return p->name;
}

void profile_finish(struct profile *p) {
    for (int i = 0; i < p->n; i++)
        if (!p->kv[i].used) {
            fprintf(stderr, "%s: error: %s: [%s] unknown key '%s'\n", apq_prog, p->path, p->section,
                    p->kv[i].key);
            exit(2);
        }
    free(p);
}

// ---- output folders ------------------------------------------------------------

int cli_mkdirs(const char *dir) {
    char p[4096];
    int k = snprintf(p, sizeof p, "%s", dir);
    if (k <= 0 || (size_t)k >= sizeof p) return apq_set_error(APQ_EIO, "%s: path too long", dir);
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c) continue;
        char keep = *c;
        *c = 0;
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return apq_set_error(APQ_EIO, "%s: cannot create the folder: %s", p, strerror(errno));
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            return apq_set_error(APQ_EIO, "%s: cannot create the folder: %s", p, strerror(ENOTDIR));
        *c = keep;
        if (!keep) return APQ_OK;
    }
}

void cli_require_writable(const char *out) {
    char dir[4096], probe[4200];
    struct stat st;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
        apq_die("%s: is a folder; the output is a file name", out);
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    snprintf(probe, sizeof probe, "%s/.apq-write-test.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        apq_die(
            "%s: cannot write there: %s; hint: make it writable or choose another output folder",
            dir, strerror(errno));
    close(fd);
    unlink(probe);
}

int cli_png_complete(const char *path) {
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    unsigned char tail[12];
    FILE *f = fopen(path, "rb");
    int ok =
        f && fseek(f, -12, SEEK_END) == 0 && fread(tail, 1, 12, f) == 12 && !memcmp(tail, iend, 12);
    if (f) fclose(f);
    return ok;
}

void cli_run_gnuplot(const char *gp, const char *tmp_png, const char *png, const char *data) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "gnuplot '%s'", gp);
    int st = system(cmd);
    if (data) remove(data);
    remove(gp);
    if (st != 0) { /* a wait status: the shell's 127 means gnuplot is not installed */
        remove(tmp_png);
        if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 127)
            apq_die("gnuplot not found, needed to draw %s; hint: install gnuplot-nox (make deps)",
                    png);
        if (st != -1 && WIFEXITED(st))
            apq_die("gnuplot failed (exit status %d) drawing %s", WEXITSTATUS(st), png);
        if (st != -1 && WIFSIGNALED(st))
            apq_die("gnuplot was killed by signal %d drawing %s", WTERMSIG(st), png);
        apq_die("cannot run gnuplot to draw %s", png);
    }
    if (!cli_png_complete(tmp_png)) {
        remove(tmp_png);
        apq_die("%s: gnuplot wrote an incomplete file (is the disk full?); the previous %s is kept",
                tmp_png, png);
    }
    if (rename(tmp_png, png) != 0)
        apq_die("cannot rename %s to %s: %s", tmp_png, png, strerror(errno));
}
