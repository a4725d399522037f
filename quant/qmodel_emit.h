/* qmodel_emit.h — an integer model as standalone C source (issue 15): three
 * files that build with a C11 compiler alone,
 *
 *   cc -std=c11 -O2 -o model main.c model.c
 *
 * no other file, include path or library (docs/formats.md §20, docs/integer.md
 * §7). model.c carries the packed weights as const arrays and the text of
 * apq's integer kernels (quant/qint.h, qint_ref.c, qint_internal.h,
 * qint_fast.c, qint_simd.c, copied at build time, so the generated code is the
 * library's own, not a copy that can drift); main.c runs it on the
 * Fashion-MNIST test files. */
#ifndef APQ_QMODEL_EMIT_H
#define APQ_QMODEL_EMIT_H

#include "qmodel.h"

/* Write dir/model.h, dir/model.c and dir/main.c for m (each through a
 * temporary file and a rename; dir must exist). model.h declares
 *
 *   int apq_model_run(const uint8_t *image, int32_t logits[APQ_MODEL_N_CLASSES]);
 *
 * image [in_size][in_size] bytes, logits as qmodel_run's (int32, scale
 * APQ_MODEL_LOGIT_SCALE), returns the top-1 class (ties: the lowest index);
 * the same logits as qmodel_run (ref or fast) bit for bit, in both builds:
 *  - fast (default): the fast kernels (qint.h) on plans that the first call
 *    makes from the constants into a static buffer; static RAM
 *    qmodel_emit_fast_ram_bytes (APQ_MODEL_FAST_RAM_BYTES);
 *  - reference (-DAPQ_MODEL_REFERENCE): the reference kernels in order, a
 *    layer of 2..4-bit weights unpacked into one static scratch buffer first
 *    (5..8-bit ones read in place); flash = qmodel_memory's, RAM =
 *    qmodel_emit_ram_bytes (APQ_MODEL_RAM_BYTES).
 * m is only read. APQ_OK, or APQ_EIO naming the file that could not be
 * written. */
int qmodel_emit_c(const struct qmodel *m, const char *dir);

/* Static RAM of the emitted model.c's reference build: arena_bytes + the
 * unpack scratch (the largest 2..4-bit layer's weights, 64-byte aligned). */
size_t qmodel_emit_ram_bytes(const struct qmodel *m);
/* Static RAM of its fast build: arena_bytes + the plans (qint_*_plan_bytes
 * of each convolution, the unpacked 2..4-bit classifier) + the work buffer
 * (the kernels' scratch, or one layer's unpacked weights), each rounded up to
 * 64 bytes. */
size_t qmodel_emit_fast_ram_bytes(const struct qmodel *m);

#endif
