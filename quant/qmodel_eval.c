/* qmodel_eval.c — the integer model measured against the fake-quantized
 * subnet it was converted from, image by image (issue 15's agreement). The
 * integer counts are exact whatever the thread count. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../supernet/supernet.h"
#include "../util/util.h"
#include "qmodel.h"

#define BATCH 64

int qmodel_compare(const struct subnet *net, const struct qmodel *m, const struct dataset *d,
                   struct qmodel_agreement *out) {
    memset(out, 0, sizeof *out);
    if (d->n < 1 || d->h != m->in_size || d->w != m->in_size)
        return apq_set_error(APQ_ECONFIG, "the images are not %dx%d", m->in_size, m->in_size);
    /* the integer model runs one image per thread, each with its own work memory */
    const int nt = omp_get_max_threads(), nc = m->n_classes, res = net->res;
    const size_t wb = (qmodel_work_bytes(m) + 63) / 64 * 64;
    uint8_t *work = aligned_alloc(64, wb * (size_t)nt);
    if (!work) return apq_set_error(APQ_ENOMEM, "out of memory for the integer model");
    float *x = apq_falloc((size_t)BATCH * res * res),
          *tmp = apq_falloc((size_t)BATCH * d->h * d->w);
    float *logits = apq_falloc((size_t)BATCH * nc),
          *scratch = apq_falloc(subnet_scratch_floats(net, BATCH));
    int *idx = apq_xmalloc(sizeof(int) * BATCH), *lab = apq_xmalloc(sizeof(int) * BATCH);
    int32_t *il = apq_xmalloc(sizeof(int32_t) * (size_t)nc * nt);
    long fake_ok = 0, int_ok = 0, same = 0;
    for (int b0 = 0; b0 < d->n; b0 += BATCH) {
        int n = d->n - b0 < BATCH ? d->n - b0 : BATCH;
        for (int i = 0; i < n; i++) idx[i] = b0 + i;
        sn_input_batch(x, lab, tmp, d, idx, n, res, 0, NULL);
        subnet_forward(logits, net, x, n, scratch);
#pragma omp parallel for schedule(static) reduction(+ : fake_ok, int_ok, same)
        for (int i = 0; i < n; i++) {
            const int t = omp_get_thread_num();
            const float *lg = logits + (size_t)i * nc;
            int f = 0;
            for (int c = 1; c < nc; c++)
                if (lg[c] > lg[f]) f = c;
            int32_t *li = il + (size_t)t * nc;
            qmodel_run(m, d->images + (size_t)(b0 + i) * d->h * d->w, li, work + wb * t, 0);
            int q = qmodel_argmax(li, nc);
            fake_ok += f == lab[i];
            int_ok += q == lab[i];
            same += f == q;
        }
    }
    out->n = d->n;
    out->acc_fake = (double)fake_ok / d->n;
    out->acc_int = (double)int_ok / d->n;
    out->agreement = (double)same / d->n;
    free(x), free(tmp), free(logits), free(scratch), free(idx), free(lab), free(il), free(work);
    return APQ_OK;
}
