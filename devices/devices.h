/* devices.h — device descriptions, per-layer cost models, and the lookup table.
 *
 * A device is a file devices/<name>.ini naming its cost model and the model's
 * parameters (DESIGN.md §7); users add a device by adding a file.
 *   - model = bitfusion: the BitFusion accelerator model APQ used
 *     (reference/apq.md §8: 16x32 array, 500 MHz, bit-brick fusion, loop-order
 *     and tiling search, SRAM/DRAM energy, leakage).
 * The lookup table (LUT) holds latency (ms) and energy (mJ) for every layer
 * shape and bit pair the space can produce (reference/apq.md §9); the cost
 * of a subnet is the sum over its layers (arch_layers) of the LUT entries.
 *
 *   struct device d; device_load("devices/bitfusion.ini", &d);
 *   struct lut t; lut_build(&t, &d, &space);  lut_save(&t, "lut.h5", seed, "quick");
 *   lut_load(&t, "lut.h5", &space);  lut_arch_cost(&t, &space, &arch, &ms, &mj);
 */
#ifndef APQ_DEVICES_H
#define APQ_DEVICES_H

#include <stdint.h>

#include "../supernet/arch.h"

struct device {
    char name[64];  /* file stem, e.g. "bitfusion" */
    char model[32]; /* "bitfusion" */
    char text[4096]; /* the .ini text, for provenance */
    /* BitFusion parameters (reference/apq.md §8.1, bf_e_conf) */
    int rows, cols;            /* systolic array N x M: 16 x 32 */
    double freq_mhz;           /* 500 */
    int pmax, pmin;            /* 8, 2 */
    double wbuf_kb, ibuf_kb, obuf_kb; /* 64, 32, 16 (double-buffered: a tile uses half) */
    int dram_bits_per_cycle;   /* 192 */
    double core_pj_per_cycle;  /* 235.104 */
    double wbuf_rd_pj, wbuf_wr_pj, ibuf_rd_pj, ibuf_wr_pj, obuf_rd_pj, obuf_wr_pj; /* per bit */
    double dram_pj_per_bit;    /* 15 */
    double leak_mw;            /* 212.5 */
};

/* Parse a device .ini. Unknown model, unknown/missing keys, bad values:
 * APQ_ECONFIG naming the file and key; missing file: APQ_EIO with a hint
 * listing devices/ . */
int device_load(const char *path, struct device *d);

/* Latency (ms) and energy (mJ) of one layer on the device at its bit-widths
 * (l->w_bits, l->a_bits in 2..8; batch 1). APQ_ECONFIG for bits the model
 * cannot run. */
int device_layer_cost(const struct device *d, const struct layer_desc *l, double *latency_ms,
                      double *energy_mj);

/* ---- lookup table -------------------------------------------------------- */
struct lut_key {
    uint8_t kind, k, stride, w_bits, a_bits; /* enum layer_kind; bits 2..8 */
    uint16_t cin, cout, h_in;
};
struct lut_entry {
    struct lut_key key;
    float latency_ms, energy_mj;
};
struct lut {
    int n;
    struct lut_entry *e;  /* sorted by key, owned */
    uint64_t space_hash;
    char device[64];
};
/* Every layer shape x bit pair the space can produce: all resolutions,
 * kernels, mid channels and bit pairs of the space, plus the fixed layers at
 * fixed_bits. Shows a progress line. */
int lut_build(struct lut *t, const struct device *d, const struct space *s);
/* HDF5 (docs/formats.md "lut.h5"); written to a temp file and renamed. */
int lut_save(const struct lut *t, const char *path, uint64_t seed, const char *profile);
/* Refuses (APQ_EMISMATCH) a table built for another space. */
int lut_load(struct lut *t, const char *path, const struct space *s);
void lut_free(struct lut *t);
/* Entry for one layer (NULL when absent). */
const struct lut_entry *lut_find(const struct lut *t, const struct layer_desc *l);
/* Sum of the LUT entries of a quantized arch's layers. APQ_EFORMAT when a
 * layer is missing from the table (names it), APQ_ECONFIG for an fp32 arch. */
int lut_arch_cost(const struct lut *t, const struct space *s, const struct arch *a,
                  double *latency_ms, double *energy_mj);

#endif
