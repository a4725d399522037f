/* apq-sample-fp32 / apq-sample-quant — accuracy samples for the predictors.
 *
 * fp32: random subnets; quant: random (subnet, bit policy) pairs. Each is
 * measured with the profile's [measure] recipe, the one apq-verify uses
 * (supernet_measure: quantized ones are calibrated and QAT-finetuned; all are
 * BN-recalibrated on train and scored on the val split, reference/ofa.md §7,
 * reference/apq.md §5-6) → samples-fp32.h5 / samples-quant.h5. The program's
 * name picks the mode.
 *
 *   apq-sample-quant COMMON --data D --supernet S --out samples-quant.h5 [--n N]
 *   apq-sample-quant ... --shard K/N --out samples-quant.K-of-N.h5   (one of N processes)
 *   apq-sample-quant ... --merge N --out samples-quant.h5            (join the N shards)
 *
 * A run rewrites <out>.partial after every sample and resumes from it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/h5.h"
#include "cli.h"
#include "data.h"
#include "samples_io.h"

struct run {
    const char *space_path, *profile_path, *data, *supernet, *out, *shard;
    long seed, n, merge;
    int quant, val_images, n_train;
    struct space s;
    struct sample_meta meta;
};

/* The profile's settings; --n overrides [sample-*] n. */
static void load_profile(struct run *r) {
    const char *sec = r->quant ? "sample-quant" : "sample-fp32";
    struct profile *p = profile_load(r->profile_path, sec);
    long n = profile_int(p, "n", r->quant ? 50 : 200, 10, 1000000);
    if (r->n == 0) r->n = n;
    r->val_images = (int)profile_int(p, "val_images", 0, 0, 10000000);
    snprintf(r->meta.profile, sizeof r->meta.profile, "%s", profile_name(p));
    profile_finish(p);
    if (r->n < 10 || r->n > 1000000)
        cli_usage_error("--n %ld: expected a number of samples from 10 to 1000000", r->n);
    stage_measure_load(r->profile_path, &r->meta.m, &r->meta.batch, &r->n_train);
}

/* --shard K/N → meta.shard_k, shard_n (1 <= K <= N <= 1024); none: 1 of 1. */
static void parse_shard(struct run *r) {
    r->meta.shard_k = r->meta.shard_n = 1;
    if (!r->shard) return;
    int k, n, used = 0;
    if (sscanf(r->shard, "%d/%d%n", &k, &n, &used) != 2 || r->shard[used] || n < 1 || n > 1024 ||
        k < 1 || k > n)
        cli_usage_error("--shard %s: expected K/N with 1 <= K <= N <= 1024 (e.g. --shard 2/4)",
                        r->shard);
    r->meta.shard_k = k;
    r->meta.shard_n = n;
}

/* The n distinct subnets of the run, drawn in index order from (seed,
 * RNG_SAMPLE): the same list in every shard. archs[n] out. */
static void draw_archs(struct run *r, struct arch *archs) {
    struct rng g;
    rng_init(&g, (uint64_t)r->seed, RNG_SAMPLE);
    for (long i = 0; i < r->n; i++) {
        long tries = 0;
        int dup;
        do {
            arch_sample(&r->s, &g, r->quant, &archs[i]);
            uint64_t h = arch_hash(&archs[i]);
            dup = 0;
            for (long j = 0; j < i && !dup; j++) dup = arch_hash(&archs[j]) == h;
            if (dup && ++tries == 100000)
                cli_usage_error("--n %ld: after %ld distinct subnets, 100000 draws found no new "
                                "one; the space %s holds too few",
                                r->n, i, r->space_path);
        } while (dup);
    }
    rng_free(&g);
}

static void set_identity(struct run *r, const struct supernet *sn) {
    struct sample_meta *m = &r->meta;
    char hash[32];
    space_hash_text(&r->s, hash);
    snprintf(
        m->supernet_hash, sizeof m->supernet_hash, "%016llx",
        (unsigned long long)apq_fnv1a(APQ_FNV_OFFSET, sn->params, sizeof(float) * sn->n_params));
    snprintf(m->supernet, sizeof m->supernet, "%s", r->supernet);
    m->seed = (uint64_t)r->seed;
    snprintf(m->identity, sizeof m->identity,
             "quantized %d, n %ld, seed %ld, space %s, supernet %s, train %d, calib %d, batch %d, "
             "val %d, qat %d x %d at lr %g, threads %d, kernel %s, measure v%d",
             r->quant, r->n, r->seed, hash, m->supernet_hash, r->n_train, m->m.calib_images,
             m->batch, m->val_images, r->quant ? m->m.qat_steps : 0, r->quant ? m->m.qat_batch : 0,
             r->quant ? m->m.qat_lr : 0, apq_threads(), apq_blas_kernel(), SN_MEASURE_VERSION);
}

/* Rows this process measured before it was stopped, from <out>.partial. */
static void resume(struct run *r, const char *partial, struct sample_rows *rows) {
    if (access(partial, F_OK)) return;
    int rc = samples_read_rows(partial, "samples-partial", &r->meta, rows);
    if (rc == 0) {
        apq_log("resuming from %s: %d samples already measured", partial, sample_rows_done(rows));
        return;
    }
    apq_log("%s: not resumed (%s); starting over", partial, apq_last_error());
    sample_rows_free(rows);
    sample_rows_init(rows, (int)r->n, r->quant);
}

/* Measure this shard's rows: i % N == K-1, skipping those already done. */
static void measure_rows(struct run *r, struct supernet *sn, const struct arch *archs,
                         const struct dataset *train, const struct dataset *val,
                         const char *partial, struct sample_rows *rows) {
    const struct sample_meta *m = &r->meta;
    int qat_batch = r->quant ? m->m.qat_batch : 1;
    struct sn_ctx c;
    int rc;
    if ((rc = sn_ctx_init(&c, sn, m->batch > qat_batch ? m->batch : qat_batch, (uint64_t)r->seed)) <
        0)
        apq_die_status(rc);
    float *snapshot = apq_falloc(sn->n_params);
    memcpy(snapshot, sn->params, sizeof(float) * sn->n_params);
    long todo = 0, done = 0;
    for (long i = m->shard_k - 1; i < r->n; i += m->shard_n) todo += !rows->arch[i];
    struct apq_progress pr;
    progress_init(&pr, r->quant ? "sample-quant" : "sample-fp32", "subnets", todo);
    for (long i = m->shard_k - 1; i < r->n; i += m->shard_n) {
        if (rows->arch[i]) continue;
        const struct dataset *sets[1] = {val};
        if ((rc = supernet_measure(sn, &c, snapshot, &archs[i], &m->m, train, sets, NULL, 1,
                                   (uint64_t)r->seed * 1000003u + (uint64_t)i, &rows->acc[i])) < 0)
            apq_die("sample %ld of %ld: %s", i + 1, r->n, apq_last_error());
        rows->arch[i] = apq_xmalloc(ARCH_STR_MAX);
        arch_to_string(&r->s, &archs[i], rows->arch[i], ARCH_STR_MAX);
        rows->macs[i] = arch_macs(&r->s, &archs[i]) / 1e6;
        rows->wkb[i] = arch_weight_bytes(&r->s, &archs[i]) / 1024;
        if ((rc = samples_write(partial, "samples-partial", &r->s, rows, m)) < 0)
            apq_die_status(rc);
        char extra[64];
        snprintf(extra, sizeof extra, "last acc %.2f%%", 100 * rows->acc[i]);
        progress_update(&pr, ++done, extra);
    }
    progress_end(&pr, NULL);
    free(snapshot);
    sn_ctx_free(&c);
}

static void log_summary(const struct sample_rows *rows) {
    double lo = 1, hi = 0, mean = 0;
    int k = 0;
    for (int i = 0; i < rows->n; i++) {
        if (!rows->arch[i]) continue;
        lo = rows->acc[i] < lo ? rows->acc[i] : lo;
        hi = rows->acc[i] > hi ? rows->acc[i] : hi;
        mean += rows->acc[i];
        k++;
    }
    if (k)
        apq_log("%d samples: val accuracy min %.2f%%, mean %.2f%%, max %.2f%%", k, 100 * lo,
                100 * mean / k, 100 * hi);
}

/* --merge N: the N shard files of --out into --out. */
static void merge(struct run *r, struct sample_rows *rows) {
    char path[4096];
    for (int k = 1; k <= r->merge; k++) {
        if (!samples_shard_path(path, sizeof path, r->out, k, (int)r->merge))
            apq_die("%s: path too long", r->out);
        r->meta.shard_k = k;
        r->meta.shard_n = (int)r->merge;
        int rc = samples_read_rows(path, "samples-shard", &r->meta, rows);
        if (rc == APQ_EMISMATCH)
            apq_die("%s; hint: rerun make to remake the shards", apq_last_error());
        if (rc < 0) apq_die_status(rc);
    }
    if (sample_rows_done(rows) != r->n)
        apq_die("%s: the %ld shards hold %d of %ld samples; hint: rerun make", r->out, r->merge,
                sample_rows_done(rows), r->n);
}

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    struct run r = {.seed = 1, .quant = strstr(apq_prog, "quant") != NULL};
    struct cli_opt opts[] = {
        {"space", CLI_STR, &r.space_path, "search-space .ini"},
        {"profile", CLI_STR, &r.profile_path,
         "profile .ini: [measure], [sample-fp32]/[sample-quant]"},
        {"seed", CLI_INT, &r.seed, "random seed (default 1)"},
        {"data", CLI_STR, &r.data, "folder with the four IDX files"},
        {"supernet", CLI_STR, &r.supernet, "trained supernet.h5"},
        {"out", CLI_STR, &r.out, "output samples .h5 (with --shard: this shard's file)"},
        {"n", CLI_INT, &r.n, "number of samples (default: the profile's n)"},
        {"shard", CLI_STR, &r.shard, "K/N: measure samples i with i % N == K-1 only"},
        {"merge", CLI_INT, &r.merge, "N: join the N shard files of --out into --out"},
    };
    cli_parse(argc, argv, opts, 9, r.quant ? "sample quantized subnets" : "sample fp32 subnets");
    cli_require("space", r.space_path);
    cli_require("profile", r.profile_path);
    cli_require("data", r.data);
    cli_require("supernet", r.supernet);
    cli_require("out", r.out);
    if (r.merge < 0 || r.merge > 1024 || (r.merge && r.shard))
        cli_usage_error("--merge %ld: expected a number of shards from 1 to 1024, without --shard",
                        r.merge);
    load_profile(&r);
    parse_shard(&r);

    int rc = space_load(r.space_path, &r.s);
    if (rc < 0) apq_die_status(rc);
    struct supernet sn;
    supernet_init(&sn, &r.s, 0, 0);
    if ((rc = supernet_load(&sn, r.supernet)) < 0) apq_die_status(rc);
    cli_require_writable(r.out);
    struct dataset train, val;
    stage_load_data(r.data, &r.s, r.space_path, r.n_train, r.val_images, 0, &train, &val, NULL);
    r.meta.val_images = val.n;
    set_identity(&r, &sn);
    struct sample_rows rows;
    sample_rows_init(&rows, (int)r.n, r.quant);
    char partial[4096];
    snprintf(partial, sizeof partial, "%s.partial", r.out);
    if (r.merge) {
        merge(&r, &rows);
    } else {
        struct arch *archs = apq_xcalloc((size_t)r.n, sizeof *archs);
        draw_archs(&r, archs);
        resume(&r, partial, &rows);
        measure_rows(&r, &sn, archs, &train, &val, partial, &rows);
        free(archs);
    }
    log_summary(&rows);
    int whole = r.merge || r.meta.shard_n == 1;
    if ((rc = samples_write(r.out, whole ? "samples" : "samples-shard", &r.s, &rows, &r.meta)) < 0)
        apq_die_status(rc);
    remove(partial);
    sample_rows_free(&rows);
    supernet_free(&sn);
    stage_free_data(&train, &val, NULL);
    return 0;
}
