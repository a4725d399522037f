/* train_predictor.c — apq-train-predictor and apq-transfer-predictor (one main, chosen by name).
 *
 *   apq-train-predictor --space S --profile P --seed N --samples samples-fp32.h5
 *                       --out predictor-fp32.h5                        profile [train-predictor]
 *   apq-transfer-predictor --space S --profile P --seed N --samples samples-quant.h5
 *                       --init predictor-fp32.h5 --out predictor-quant.h5  [transfer-predictor]
 *
 * Both hold out `held_out` samples (a count, or a fraction when < 1; seeded
 * split), train an ensemble of MLPs on the rest (each member early-stopped on
 * its own validation fold of those rows when patience > 0) and print RMSE and
 * Kendall's tau of the ensemble mean on the held-out rows to stderr. The
 * transfer stage initialises member i from the fp32 file's member i, and also
 * trains the same ensemble from scratch on the same split (the ablation);
 * both figures are stored.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../predictor/predictor.h"
#include "../util/h5.h"
#include "cli.h"
#include "pred_cfg.h"

/* The rows a stage trains or scores on (a subset of a pred_samples). */
struct samples {
    int n, dim;
    float *x, *y; /* [n][dim], [n] */
};

/* Read a samples file of the stage's kind; at least 10 rows. */
static int samples_load(const char *path, const struct space *s, int quant, struct samples *d,
                        uint64_t *hash) {
    struct pred_samples all;
    int rc = pred_samples_load(path, s, quant, &all);
    if (rc < 0) return rc;
    if (all.n < 10) {
        pred_samples_free(&all);
        return apq_set_error(
            APQ_EFORMAT,
            "%s: only %d samples, at least 10 are needed (a held-out split and 2 to train on)",
            path, all.n);
    }
    *d = (struct samples){all.n, all.dim, all.x, all.y};
    *hash = all.hash;
    return APQ_OK;
}

/* The held-out split of d into train and held-out copies (predictor_split_held_out). */
static int split(const struct samples *d, double held_out, uint64_t seed, struct samples *tr,
                 struct samples *te) {
    int *perm = apq_xmalloc(sizeof(int) * (size_t)d->n), ntr;
    int rc = predictor_split_held_out(d->n, held_out, seed, perm, &ntr);
    struct samples *part[2] = {tr, te};
    int from[2] = {0, ntr}, count[2] = {ntr, d->n - ntr};
    for (int k = 0; k < 2 && rc == APQ_OK; k++) {
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
    return rc;
}

static double mean(const float *y, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m += y[i];
    return m / n;
}

/* Train the ensemble on tr, score it on te; log the members' kept epochs. */
static void train_score(struct pred_ensemble *e, const struct samples *tr, const struct samples *te,
                        const struct pred_train_cfg *cfg, uint64_t seed, struct pred_metrics *m,
                        int *n_val) {
    struct pred_fit fit[PRED_MAX_MEMBERS];
    int rc = pred_ensemble_train(e, tr->x, tr->y, tr->n, cfg, seed, n_val, fit);
    if (rc < 0) apq_die_status(rc);
    char kept[PRED_MAX_MEMBERS * 12] = "";
    double val = 0;
    for (int i = 0, o = 0; i < e->k; i++) {
        o += snprintf(kept + o, sizeof kept - (size_t)o, "%s%d", i ? "," : "", fit[i].best_epoch);
        val += sqrt(fit[i].val_loss) * 100 / e->k;
    }
    if (*n_val)
        apq_log("%s: %d members, kept epochs %s of %d (validation folds of %d, mean RMSE %.3f "
                "points)",
                cfg->label, e->k, kept, cfg->epochs, *n_val, val);
    pred_ensemble_score(e, te->x, te->y, te->n, m);
}

struct settings {
    struct pred_train_cfg cfg;
    double held_out;
    int hidden, layers, ensemble, zero_bits;
    double scratch_lr; /* transfer stage: lr of the from-scratch ablation */
    char profile[64];
};

static void read_profile(const char *path, int transfer, struct settings *st) {
    const char *section = transfer ? "transfer-predictor" : "train-predictor";
    struct profile *prof = profile_load(path, section);
    st->cfg = stage_pred_cfg_load(prof);
    st->held_out = profile_f64(prof, "held_out", 0.2, 1e-6, 1e9);
    st->hidden = transfer ? 0 : (int)profile_int(prof, "hidden", 400, 1, 4096);
    st->layers = transfer ? 0 : (int)profile_int(prof, "layers", 3, 1, PRED_MAX_LAYERS);
    st->ensemble = transfer ? 0 : (int)profile_int(prof, "ensemble", 5, 1, PRED_MAX_MEMBERS);
    st->zero_bits = transfer ? (int)profile_int(prof, "zero_bit_branch", 0, 0, 1) : 0;
    st->scratch_lr = transfer ? profile_f64(prof, "scratch_lr", st->cfg.lr, 1e-8, 10) : 0;
    snprintf(st->profile, sizeof st->profile, "%s", profile_name(prof));
    profile_finish(prof);
}

/* The fp32 ensemble alone, on the fp32 part of the held-out quantized rows (logged only). */
static void log_fp32_alone(const struct pred_ensemble *fp, const struct samples *te) {
    int in = fp->m[0].in_dim;
    float *fx = apq_falloc((size_t)te->n * (size_t)in);
    for (int i = 0; i < te->n; i++)
        memcpy(fx + (size_t)i * in, te->x + (size_t)i * te->dim, sizeof(float) * (size_t)in);
    struct pred_metrics m;
    pred_ensemble_score(fp, fx, te->y, te->n, &m);
    free(fx);
    apq_log("fp32 predictor alone on the held-out quantized samples: RMSE %.3f points, "
            "Kendall tau %.4f",
            m.rmse, m.tau);
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
    struct settings st;
    read_profile(profile_path, transfer, &st);
    const char *section = transfer ? "transfer-predictor" : "train-predictor";
    double t0 = apq_time();

    struct space s;
    int rc = space_load(space_path, &s);
    if (rc < 0) apq_die_status(rc);
    struct samples all = {0}, tr, te;
    uint64_t samples_hash = 0;
    if ((rc = samples_load(samples_path, &s, transfer, &all, &samples_hash)) < 0)
        apq_die_status(rc);
    if (split(&all, st.held_out, (uint64_t)seed, &tr, &te) < 0)
        profile_die(profile_path, section, "%s (samples: %s)", apq_last_error(), samples_path);
    apq_log("%d samples from %s: %d train, %d held out; encoding v%d, %d inputs", all.n,
            samples_path, tr.n, te.n, PRED_ENCODING_VERSION, all.dim);

    struct pred_ensemble e;
    struct pred_metrics *m = &e.metrics;
    int n_val = 0;
    if (!transfer) {
        if ((rc = pred_ensemble_init(&e, st.ensemble, all.dim, 0, st.hidden, st.layers,
                                     (uint64_t)seed)) < 0)
            apq_die_status(rc);
        pred_ensemble_set_base(&e, mean(tr.y, tr.n));
        st.cfg.label = "train fp32 predictor";
        train_score(&e, &tr, &te, &st.cfg, (uint64_t)seed, m, &n_val);
    } else {
        struct pred_ensemble fp, scratch;
        struct pred_metrics sm;
        if ((rc = pred_ensemble_load(&fp, init_path, &s)) < 0) apq_die_status(rc);
        if (fp.m[0].bit_dim)
            apq_die("%s: is a quantized predictor; --init wants the fp32 one (predictor-fp32.h5)",
                    init_path);
        log_fp32_alone(&fp, &te);
        const struct predictor *f0 = &fp.m[0];
        if ((rc = pred_ensemble_init_transfer(&e, &fp, encode_bits_dim(&s), (uint64_t)seed)) < 0 ||
            (rc = pred_ensemble_init(&scratch, fp.k, f0->in_dim, encode_bits_dim(&s), f0->hidden,
                                     f0->n_layers, (uint64_t)seed)) < 0)
            apq_die_status(rc);
        for (int i = 0; i < e.k && st.zero_bits; i++) predictor_zero_bit_branch(&e.m[i]);
        st.cfg.label = "transfer quant predictor";
        train_score(&e, &tr, &te, &st.cfg, (uint64_t)seed, m, &n_val);
        pred_ensemble_set_base(&scratch, mean(tr.y, tr.n));
        st.cfg.label = "quant predictor from scratch";
        st.cfg.lr = st.scratch_lr;
        train_score(&scratch, &tr, &te, &st.cfg, (uint64_t)seed, &sm, &n_val);
        m->has_scratch = 1;
        m->scratch_rmse = sm.rmse;
        m->scratch_tau = sm.tau;
        pred_ensemble_free(&scratch);
        pred_ensemble_free(&fp);
    }
    e.prov = (struct pred_provenance){
        .samples_hash = samples_hash, .n_train = tr.n, .n_val = n_val, .n_held_out = te.n};
    snprintf(e.prov.profile, sizeof e.prov.profile, "%s", st.profile);
    snprintf(e.prov.samples, sizeof e.prov.samples, "%s", samples_path);
    apq_log("held-out %d: ensemble of %d RMSE %.3f points, Kendall tau %.4f (its members alone: "
            "RMSE %.3f, tau %.4f on average; trained on %d)",
            te.n, e.k, m->rmse, m->tau, m->member_rmse, m->member_tau, tr.n);
    if (transfer)
        apq_log("held-out %d: from scratch RMSE %.3f points, Kendall tau %.4f", te.n,
                m->scratch_rmse, m->scratch_tau);
    if ((rc = pred_ensemble_save(&e, &s, out, (uint64_t)seed)) < 0) apq_die_status(rc);
    apq_log("wrote %s in %.1f s", out, apq_time() - t0);
    pred_ensemble_free(&e);
    free(all.x), free(all.y), free(tr.x), free(tr.y), free(te.x), free(te.y);
    return 0;
}
