/* pred_cfg.h — the predictor-training keys of a profile section, read the
 * same way by apq-train-predictor, apq-transfer-predictor and
 * apq-transfer-study (docs/formats.md §5). */
#ifndef APQ_STAGES_PRED_CFG_H
#define APQ_STAGES_PRED_CFG_H

#include "../predictor/predictor.h"
#include "cli.h"

/* epochs (1..1e6, default 300), batch (1..4096, 256), lr (1e-8..10, 1e-3),
 * weight_decay (0..1, 1e-4), patience (0..1e6, 0), val_fraction (0.01..0.5,
 * 0.2) of the open section p; a value out of range exits 2 naming the key
 * (profile_int / profile_f64). */
struct pred_train_cfg stage_pred_cfg_load(struct profile *p);

#endif
