/* search.c — apq-search: evolution on predicted accuracy under latency/energy budgets.
 *
 *   apq-search --space S --profile P --seed N --predictor predictor-quant.h5 --lut lut.h5
 *              --out search.h5 [--latency-ms X[,Y...]] [--energy-mj X]  profile [search]
 *
 * Sweeps n_budgets latency budgets, log-spaced over the space's latency range
 * on this device (from the LUT), plus each of the user's --latency-ms budgets
 * (flagged user_budget = 1); --energy-mj constrains every run. The fitness
 * is the predictor ensemble's mean; each row also records the ensemble's
 * spread at its arch (acc_pred_std). One row per budget in search.h5
 * (docs/formats.md), ascending by latency budget. The predictor must be a
 * quantization-aware one of this space and encoding version (else exit 1).
 * A budget is a finite number > 0; anything else is a usage error (exit 2)
 * before any file is read.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../devices/devices.h"
#include "../predictor/predictor.h"
#include "../search/search.h"
#include "../util/h5.h"
#include "cli.h"

#define BUDGET_MARGIN 0.05 /* the lowest sweep budget is 5% above the smallest subnet */

struct cost_ctx {
    const struct lut *t;
    const struct space *s;
};
static int lut_cost(void *ctx, const struct arch *a, double *ms, double *mj) {
    const struct cost_ctx *c = ctx;
    return lut_arch_cost(c->t, c->s, a, ms, mj);
}

struct fit_ctx {
    const struct pred_ensemble *e;
    const struct space *s;
};
/* The search ranks by the ensemble's mean prediction. */
static void pred_fitness(void *ctx, const struct arch *a, int n, float *acc) {
    const struct fit_ctx *c = ctx;
    pred_ensemble_predict(c->e, c->s, a, n, acc, NULL);
}

#define MAX_USER_BUDGETS 32

/* Parse --OPT's text, budgets separated by commas or blanks ("0.2,0.5",
 * "0.2 0.5"), into out[0..*n-1]: each a finite number > 0, none repeated, at
 * least one and at most max. Anything else exits 2 with one line naming the
 * option and what it accepts (`expect`). */
static void parse_budgets(const char *opt, const char *text, int max, const char *expect,
                          double *out, int *n) {
    const char *p = text;
    int ok = 1;
    *n = 0;
    while (ok) {
        p += strspn(p, ", \t");
        if (!*p) break;
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        ok = end != p && !errno && isfinite(v) && v > 0 && (!*end || strchr(", \t", *end)) &&
             *n < max;
        for (int i = 0; i < *n && ok; i++) ok = out[i] != v;
        if (ok) out[(*n)++] = v;
        p = end;
    }
    if (ok && *n > 0) return;
    fprintf(stderr, "%s: error: --%s '%s': expected %s\n", apq_prog, opt, text, expect);
    exit(2);
}

struct row {
    double budget_ms, budget_mj;
    int user;
    struct evo_result r;
    float acc_sd; /* the ensemble's spread at r.best */
};

static int by_budget(const void *pa, const void *pb) {
    const struct row *a = pa, *b = pb;
    if (a->budget_ms != b->budget_ms) return a->budget_ms < b->budget_ms ? -1 : 1;
    return a->user - b->user;
}

#define NAMES 8
static const char *names[NAMES] = {"budget_latency_ms", "budget_energy_mj", "acc_pred",
                                   "latency_ms",        "energy_mj",        "macs_m",
                                   "weight_kb",         "acc_pred_std"};

static int write_rows(const char *path, const struct space *s, const struct row *rows, int n,
                      const struct evo_cfg *c, const char *pred_path, const char *lut_path,
                      const char *device, uint64_t seed, const char *profile) {
    char **arch = apq_xcalloc((size_t)n, sizeof *arch);
    double *col[NAMES];
    for (int k = 0; k < NAMES; k++) col[k] = apq_xcalloc((size_t)n, sizeof(double));
    int32_t *user = apq_xcalloc((size_t)n, sizeof *user);
    for (int i = 0; i < n; i++) {
        const struct evo_result *r = &rows[i].r;
        arch[i] = apq_xmalloc(ARCH_STR_MAX);
        arch_to_string(s, &r->best, arch[i], ARCH_STR_MAX);
        col[0][i] = rows[i].budget_ms;
        col[1][i] = rows[i].budget_mj;
        col[2][i] = r->acc;
        col[3][i] = r->latency_ms;
        col[4][i] = r->energy_mj;
        col[5][i] = arch_macs(s, &r->best) / 1e6;
        col[6][i] = arch_weight_bytes(s, &r->best) / 1024.0;
        col[7][i] = rows[i].acc_sd;
        user[i] = rows[i].user;
    }
    char hash[32];
    space_hash_text(s, hash);
    hsize_t dims[1] = {(hsize_t)n};
    hid_t f;
    int rc = h5_create(path, &f);
    if (rc < 0) goto done;
    if ((rc = h5_write_provenance(f, "search", 1, seed, profile)) < 0 ||
        (rc = h5_attr_set_str(f, "space_hash", hash)) < 0 ||
        (rc = h5_attr_set_str(f, "space_name", s->name)) < 0 ||
        (rc = h5_attr_set_str(f, "predictor", pred_path)) < 0 ||
        (rc = h5_attr_set_str(f, "lut", lut_path)) < 0 ||
        (rc = h5_attr_set_str(f, "device", device)) < 0 ||
        (rc = h5_attr_set_i64(f, "population", c->population)) < 0 ||
        (rc = h5_attr_set_i64(f, "parents", c->parents)) < 0 ||
        (rc = h5_attr_set_i64(f, "mutants", c->mutants)) < 0 ||
        (rc = h5_attr_set_i64(f, "crossovers", c->crossovers)) < 0 ||
        (rc = h5_attr_set_i64(f, "generations", c->generations)) < 0 ||
        (rc = h5_attr_set_f64(f, "mutate_prob", c->mutate_prob)) < 0 ||
        (rc = h5_write_strings(f, "arch", (const char *const *)arch, (size_t)n)) < 0)
        goto fail;
    for (int k = 0; k < NAMES; k++)
        if ((rc = h5_write_f64(f, names[k], 1, dims, col[k])) < 0) goto fail;
    if ((rc = h5_write_i32(f, "user_budget", 1, dims, user)) < 0) goto fail;
    rc = h5_commit(f, path);
    goto done;
fail:
    h5_abort(f, path);
done:
    for (int i = 0; i < n; i++) free(arch[i]);
    free(arch);
    for (int k = 0; k < NAMES; k++) free(col[k]);
    free(user);
    return rc;
}

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    const char *space_path = "supernet/spaces/fmnist-mbv2.ini",
               *profile_path = "profiles/quick.ini";
    const char *pred_path = NULL, *lut_path = NULL, *out = NULL;
    long seed = 1;
    const char *lat_text = NULL, *en_text = NULL;
    struct cli_opt opts[] = {
        {"space", CLI_STR, &space_path, "search-space .ini"},
        {"profile", CLI_STR, &profile_path, "profile .ini"},
        {"seed", CLI_INT, &seed, "random seed (evolution)"},
        {"predictor", CLI_STR, &pred_path, "predictor-quant.h5 (required)"},
        {"lut", CLI_STR, &lut_path, "the device's lut.h5 (required)"},
        {"out", CLI_STR, &out, "search.h5 to write (required)"},
        {"latency-ms", CLI_STR, &lat_text, "also search under these latency budgets (ms, 0.2,0.5)"},
        {"energy-mj", CLI_STR, &en_text, "energy budget (mJ) applied to every run"},
    };
    cli_parse(argc, argv, opts, 8, "evolutionary search under latency/energy budgets");
    double user_ms[MAX_USER_BUDGETS], user_mj = 0;
    int n_user = 0, n_mj = 0;
    if (lat_text)
        parse_budgets("latency-ms", lat_text, MAX_USER_BUDGETS,
                      "latency budgets in ms, each a finite number > 0, up to 32 different ones "
                      "separated by commas or spaces (e.g. 0.5 or 0.2,0.5)",
                      user_ms, &n_user);
    if (en_text)
        parse_budgets("energy-mj", en_text, 1,
                      "one energy budget in mJ, a finite number > 0 (e.g. 0.8)", &user_mj, &n_mj);
    cli_require("predictor", pred_path);
    cli_require("lut", lut_path);
    cli_require("out", out);

    struct profile *prof = profile_load(profile_path, "search");
    struct evo_cfg c = evo_cfg_default();
    const int MAXPOP = 100000; /* candidates per generation */
    c.population = (int)profile_int(prof, "population", c.population, 1, MAXPOP);
    c.parents = (int)profile_int(prof, "parents", c.parents, 1, MAXPOP);
    c.mutants = (int)profile_int(prof, "mutants", c.mutants, 0, MAXPOP);
    c.crossovers = (int)profile_int(prof, "crossovers", c.crossovers, 0, MAXPOP);
    c.generations = (int)profile_int(prof, "generations", c.generations, 0, 1000000);
    c.mutate_prob = profile_f64(prof, "mutate_prob", c.mutate_prob, 0, 1);
    int n_budgets = (int)profile_int(prof, "n_budgets", 8, 1, 1000);
    char profile[64];
    snprintf(profile, sizeof profile, "%s", profile_name(prof));
    profile_finish(prof);
    if (c.mutants + c.crossovers < 1)
        profile_die(profile_path, "search", "mutants = %d and crossovers = %d: need at least one",
                    c.mutants, c.crossovers);
    if (c.parents > c.population)
        profile_die(profile_path, "search", "parents = %d exceeds population = %d", c.parents,
                    c.population);

    struct space s;
    struct pred_ensemble p;
    struct lut t;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    if ((rc = pred_ensemble_load(&p, pred_path, &s)) < 0) apq_die_status(rc);
    if (!p.m[0].bit_dim)
        apq_die("%s: is an fp32 predictor; the search wants the quantization-aware one "
                "(predictor-quant.h5; hint: PREDICTOR=<run>/predictor-quant.h5)",
                pred_path);
    apq_log("%s: ensemble of %d, held-out RMSE %.3f points, Kendall tau %.4f (%d held out)",
            pred_path, p.k, p.metrics.rmse, p.metrics.tau, p.prov.n_held_out);
    if ((rc = lut_load(&t, lut_path, &s)) < 0) apq_die_status(rc);
    struct cost_ctx cc = {&t, &s};
    struct fit_ctx fc = {&p, &s};

    double lo_ms, lo_mj, hi_ms, hi_mj;
    if ((rc = evo_cost_range(&s, lut_cost, &cc, &lo_ms, &lo_mj, &hi_ms, &hi_mj)) < 0)
        apq_die_status(rc);
    apq_log("%s on %s: latency %.4g .. %.4g ms, energy %.4g .. %.4g mJ (smallest subnet at "
            "%d bits .. largest at %d bits)",
            s.name, t.device, lo_ms, hi_ms, lo_mj, hi_mj, s.bits[0], s.bits[s.n_bits - 1]);
    for (int i = 0; i < n_user; i++)
        if (user_ms[i] < lo_ms)
            apq_die("latency budget %g ms is below the smallest subnet's %g ms", user_ms[i], lo_ms);
    if (user_mj > 0 && user_mj < lo_mj)
        apq_die("energy budget %g mJ is below the smallest subnet's %g mJ", user_mj, lo_mj);

    int n = n_budgets + n_user;
    struct row *rows = apq_xcalloc((size_t)n, sizeof *rows);
    double *b = apq_xcalloc((size_t)n_budgets, sizeof *b);
    evo_budgets(lo_ms, hi_ms, BUDGET_MARGIN, n_budgets, b);
    for (int i = 0; i < n_budgets; i++) rows[i].budget_ms = b[i];
    for (int i = 0; i < n_user; i++)
        rows[n_budgets + i] = (struct row){.budget_ms = user_ms[i], .user = 1};
    free(b);
    qsort(rows, (size_t)n, sizeof *rows, by_budget);

    struct apq_progress prog;
    progress_init(&prog, "search", "gen", (long)c.generations * n);
    for (int i = 0; i < n; i++) {
        c.latency_ms = rows[i].budget_ms;
        c.energy_mj = rows[i].budget_mj = user_mj > 0 ? user_mj : 0;
        rc = evo_run(&s, &c, lut_cost, &cc, pred_fitness, &fc, (uint64_t)seed, &prog,
                     (long)i * c.generations, &rows[i].r);
        if (rc < 0) apq_die_status(rc);
    }
    progress_end(&prog, NULL);
    for (int i = 0; i < n; i++) {
        const struct evo_result *r = &rows[i].r;
        float mean; /* r->acc stays acc_pred: a batch of 1 may round differently */
        pred_ensemble_predict(&p, &s, &r->best, 1, &mean, &rows[i].acc_sd);
        apq_log("budget %.4g ms%s: predicted acc %.2f%% (spread %.2f) at %.4g ms, %.4g mJ, %.2f M "
                "MACs",
                rows[i].budget_ms, rows[i].user ? " (yours)" : "", 100.0 * r->acc,
                100.0 * rows[i].acc_sd, r->latency_ms, r->energy_mj, arch_macs(&s, &r->best) / 1e6);
    }
    rc = write_rows(out, &s, rows, n, &c, pred_path, lut_path, t.device, (uint64_t)seed, profile);
    if (rc < 0) apq_die_status(rc);
    free(rows);
    lut_free(&t);
    pred_ensemble_free(&p);
    return 0;
}
