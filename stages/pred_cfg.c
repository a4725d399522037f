/* pred_cfg.c — the predictor-training keys of a profile section (pred_cfg.h). */
#include "pred_cfg.h"

struct pred_train_cfg stage_pred_cfg_load(struct profile *p) {
    return (struct pred_train_cfg){
        .epochs = (int)profile_int(p, "epochs", 300, 1, 1000000),
        .batch = (int)profile_int(p, "batch", 256, 1, 4096),
        .lr = profile_f64(p, "lr", 1e-3, 1e-8, 10),
        .weight_decay = profile_f64(p, "weight_decay", 1e-4, 0, 1),
        .patience = (int)profile_int(p, "patience", 0, 0, 1000000),
        .val_fraction = profile_f64(p, "val_fraction", 0.2, 0.01, 0.5),
    };
}
