/* train_predictor.c — apq-train-predictor and apq-transfer-predictor (one main, chosen by name).
 *
 *   apq-train-predictor --space S --profile P --seed N --samples samples-fp32.h5
 *                       --out predictor-fp32.h5                        profile [train-predictor]
 *   apq-transfer-predictor --space S --profile P --seed N --samples samples-quant.h5
 *                       --init predictor-fp32.h5 --out predictor-quant.h5  [transfer-predictor]
 *
 * Both train on a seeded 80% of the samples and print RMSE and Kendall's tau
 * on the other 20% to stderr; the transfer stage also trains the same
 * quantized MLP from scratch on the same split (the ablation) and stores both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../predictor/predictor.h"
#include "../util/h5.h"
#include "cli.h"

struct samples {
    int n, dim;
    float *x, *y; /* [n][dim], [n] */
};

/* Read arch + acc_val from a samples file, check its space and kind, and encode. */
static int samples_load(const char *path, const struct space *s, int quant, struct samples *d) {
    memset(d, 0, sizeof *d);
    hid_t f;
    char hash[64], want[32], **arch = NULL;
    double *acc = NULL;
    size_t n = 0, n_acc = 0;
    int rc = h5_open_read(path, "samples", 1, &f);
    if (rc < 0) return rc;
    space_hash_text(s, want);
    if ((rc = h5_attr_get_str(f, "space_hash", hash, sizeof hash)) < 0) goto done;
    if (strcmp(hash, want)) {
        rc = apq_set_error(APQ_EMISMATCH,
                           "%s: samples drawn from another space (hash %s, '%s' is %s); hint: "
                           "rerun make to resample",
                           path, hash, s->name, want);
        goto done;
    }
    if ((rc = h5_read_strings(f, "arch", &arch, &n)) < 0 ||
        (rc = h5_read_f64_alloc(f, "acc_val", &acc, &n_acc)) < 0)
        goto done;
    if (n != n_acc) {
        rc = apq_set_error(APQ_EFORMAT, "%s: %zu archs but %zu acc_val entries", path, n, n_acc);
        goto done;
    }
    if (n < 10) {
        rc = apq_set_error(APQ_EFORMAT,
                           "%s: only %zu samples, at least 10 are needed for an 80/20 split", path,
                           n);
        goto done;
    }
    d->n = (int)n;
    d->dim = encode_dim(s, quant);
    d->x = apq_falloc(n * (size_t)d->dim);
    d->y = apq_falloc(n);
    for (size_t i = 0; i < n; i++) {
        struct arch a;
        if ((rc = arch_from_string(s, arch[i], &a)) < 0) {
            char why[600];
            snprintf(why, sizeof why, "%s", apq_last_error());
            rc = apq_set_error(rc, "%s: row %zu: %s", path, i, why);
            goto done;
        }
        if (arch_is_quantized(&a) != quant) {
            rc = apq_set_error(APQ_EMISMATCH,
                               "%s: row %zu is %s, but %s trains on %s samples; hint: pass "
                               "samples-%s.h5",
                               path, i, quant ? "fp32" : "quantized", apq_prog,
                               quant ? "quantized" : "fp32", quant ? "quant" : "fp32");
            goto done;
        }
        if (!(acc[i] >= 0 && acc[i] <= 1)) {
            rc = apq_set_error(APQ_EFORMAT, "%s: row %zu: acc_val %g is not a fraction in [0,1]",
                               path, i, acc[i]);
            goto done;
        }
        encode_arch(s, &a, quant, d->x + i * (size_t)d->dim);
        d->y[i] = (float)acc[i];
    }
done:
    h5_free_strings(arch, n);
    free(acc);
    h5_close(f);
    if (rc < 0) {
        free(d->x);
        free(d->y);
        memset(d, 0, sizeof *d);
    }
    return rc;
}

/* The 80/20 split of d into train and held-out copies. */
static void split(const struct samples *d, uint64_t seed, struct samples *tr, struct samples *te) {
    int *perm = apq_xmalloc(sizeof(int) * (size_t)d->n), ntr;
    predictor_split(d->n, seed, perm, &ntr);
    struct samples *part[2] = {tr, te};
    int from[2] = {0, ntr}, count[2] = {ntr, d->n - ntr};
    for (int k = 0; k < 2; k++) {
        struct samples *o = part[k];
        o->n = count[k];
        o->dim = d->dim;
        o->x = apq_falloc((size_t)o->n * (size_t)o->dim);
        o->y = apq_falloc((size_t)o->n);
        for (int i = 0; i < o->n; i++) {
            int j = perm[from[k] + i];
            memcpy(o->x + (size_t)i * o->dim, d->x + (size_t)j * d->dim,
                   sizeof(float) * (size_t)d->dim);
            o->y[i] = d->y[j];
        }
    }
    free(perm);
}

static double mean(const float *y, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m += y[i];
    return m / n;
}

static void train_score(struct predictor *p, const struct samples *tr, const struct samples *te,
                        const struct pred_train_cfg *cfg, uint64_t seed, double *rmse,
                        double *tau) {
    int rc = predictor_train(p, tr->x, tr->y, tr->n, cfg, seed, NULL);
    if (rc < 0) apq_die_status(rc);
    predictor_score(p, te->x, te->y, te->n, rmse, tau);
}

int main(int argc, char **argv) {
    if (apq_runtime_init(argc, argv, 0) < 0) apq_die_status(APQ_EUSAGE);
    int transfer = strstr(apq_prog, "transfer") != NULL;
    const char *space_path = "supernet/spaces/fmnist-mbv2.ini",
               *profile_path = "profiles/quick.ini";
    const char *samples_path = NULL, *init_path = NULL, *out = NULL;
    long seed = 1;
    struct cli_opt opts[] = {
        {"space", CLI_STR, &space_path, "search-space .ini"},
        {"profile", CLI_STR, &profile_path, "profile .ini"},
        {"seed", CLI_INT, &seed, "random seed (init, split, shuffling)"},
        {"samples", CLI_STR, &samples_path,
         transfer ? "samples-quant.h5 (required)" : "samples-fp32.h5 (required)"},
        {"out", CLI_STR, &out, "predictor .h5 to write (required)"},
        {"init", CLI_STR, &init_path, "predictor-fp32.h5 to transfer from (required)"},
    };
    cli_parse(argc, argv, opts, transfer ? 6 : 5,
              transfer ? "train the quantized accuracy predictor by transfer from the fp32 one"
                       : "train the fp32 accuracy predictor");
    cli_require("samples", samples_path);
    cli_require("out", out);
    if (transfer) cli_require("init", init_path);

    struct profile *prof =
        profile_load(profile_path, transfer ? "transfer-predictor" : "train-predictor");
    struct pred_train_cfg cfg = {
        .epochs = (int)profile_int(prof, "epochs", 300, 1, 1000000),
        .batch = (int)profile_int(prof, "batch", 256, 1, 4096),
        .lr = profile_f64(prof, "lr", 1e-3, 1e-8, 10),
        .weight_decay = profile_f64(prof, "weight_decay", 1e-4, 0, 1),
    };
    int hidden = transfer ? 0 : (int)profile_int(prof, "hidden", 400, 1, 4096);
    int layers = transfer ? 0 : (int)profile_int(prof, "layers", 3, 1, PRED_MAX_LAYERS);
    char profile[64];
    snprintf(profile, sizeof profile, "%s", profile_name(prof));
    profile_finish(prof);

    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    struct samples all, tr, te;
    if ((rc = samples_load(samples_path, &s, transfer, &all)) < 0) apq_die_status(rc);
    split(&all, (uint64_t)seed, &tr, &te);
    apq_log("%d samples from %s: %d train, %d held out; encoding v%d, %d inputs", all.n,
            samples_path, tr.n, te.n, PRED_ENCODING_VERSION, all.dim);

    struct predictor p;
    struct pred_metrics *m = &p.metrics;
    if (!transfer) {
        if ((rc = predictor_init(&p, all.dim, 0, hidden, layers, (uint64_t)seed)) < 0)
            apq_die_status(rc);
        predictor_set_base(&p, mean(tr.y, tr.n));
        cfg.label = "train fp32 predictor";
        train_score(&p, &tr, &te, &cfg, (uint64_t)seed, &m->rmse, &m->tau);
    } else {
        struct predictor fp, scratch;
        if ((rc = predictor_load(&fp, init_path, &s)) < 0) apq_die_status(rc);
        if (fp.bit_dim)
            apq_die("%s: is a quantized predictor; --init wants the fp32 one (predictor-fp32.h5)",
                    init_path);
        double fp_rmse, fp_tau;
        float *fx = apq_falloc((size_t)te.n * (size_t)fp.in_dim);
        for (int i = 0; i < te.n; i++) /* the fp32 part of each held-out row */
            memcpy(fx + (size_t)i * fp.in_dim, te.x + (size_t)i * te.dim,
                   sizeof(float) * (size_t)fp.in_dim);
        predictor_score(&fp, fx, te.y, te.n, &fp_rmse, &fp_tau);
        free(fx);
        apq_log("fp32 predictor alone on the held-out quantized samples: RMSE %.3f points, "
                "Kendall tau %.4f",
                fp_rmse, fp_tau);
        if ((rc = predictor_init_transfer(&p, &fp, encode_bits_dim(&s), (uint64_t)seed)) < 0 ||
            (rc = predictor_init(&scratch, fp.in_dim, encode_bits_dim(&s), fp.hidden, fp.n_layers,
                                 (uint64_t)seed)) < 0)
            apq_die_status(rc);
        cfg.label = "transfer quant predictor";
        train_score(&p, &tr, &te, &cfg, (uint64_t)seed, &m->rmse, &m->tau);
        predictor_set_base(&scratch, mean(tr.y, tr.n));
        cfg.label = "quant predictor from scratch";
        train_score(&scratch, &tr, &te, &cfg, (uint64_t)seed, &m->scratch_rmse, &m->scratch_tau);
        m->has_scratch = 1;
        predictor_free(&scratch);
        predictor_free(&fp);
    }
    m->n_train = tr.n;
    m->n_test = te.n;
    p.space_hash = s.hash;
    if (!transfer)
        apq_log("held-out %d: RMSE %.3f points, Kendall tau %.4f (trained on %d)", te.n, m->rmse,
                m->tau, tr.n);
    else
        apq_log("held-out %d: with transfer RMSE %.3f points, Kendall tau %.4f; from scratch "
                "RMSE %.3f points, Kendall tau %.4f (trained on %d)",
                te.n, m->rmse, m->tau, m->scratch_rmse, m->scratch_tau, tr.n);
    if ((rc = predictor_save(&p, &s, out, (uint64_t)seed, profile)) < 0) apq_die_status(rc);
    predictor_free(&p);
    free(all.x), free(all.y), free(tr.x), free(tr.y), free(te.x), free(te.y);
    return 0;
}
