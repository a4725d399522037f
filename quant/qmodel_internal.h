/* qmodel_internal.h — shared by qmodel.c and qmodel_io.c, not a public API. */
#ifndef APQ_QMODEL_INTERNAL_H
#define APQ_QMODEL_INTERNAL_H

#include "qmodel.h"

/* The tables of m (tensors, layers, without weight arrays) are consistent:
 * indices in range, shapes chained, bit-widths, clamps and shifts within
 * what the kernels take; sets each layer's n_w. APQ_OK or APQ_EFORMAT "what:
 * layer j (name): reason". */
int qmodel_check(struct qmodel *m, const char *what);
/* Arena offsets, arena_bytes and scratch_bytes from the tables. */
void qmodel_plan(struct qmodel *m);

#endif
