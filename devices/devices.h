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

#include <stddef.h>
#include <stdint.h>

#include "../supernet/arch.h"

struct device {
    char name[64];   /* [device] name, e.g. "bitfusion" */
    char model[32];  /* [device] model: "bitfusion" */
    char text[4096]; /* the .ini text, for provenance */
    /* BitFusion parameters (reference/apq.md §8.1, bf_e_conf) */
    int rows, cols;                   /* systolic array N x M: 16 x 32 */
    double freq_mhz;                  /* 500 */
    int pmax, pmin;                   /* 8, 2 */
    double wbuf_kb, ibuf_kb, obuf_kb; /* 64, 32, 16 (double-buffered: a tile uses half) */
    int dram_bits_per_cycle;          /* 192 */
    double core_pj_per_cycle;         /* 235.104 */
    /* SRAM energy per bit read / written, pJ */
    double wbuf_rd_pj, wbuf_wr_pj, ibuf_rd_pj, ibuf_wr_pj, obuf_rd_pj, obuf_wr_pj;
    double dram_pj_per_bit; /* 15 */
    double leak_mw;         /* 212.5 */
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

/* ---- BitFusion internals, public for tests and logs ---------------------- */
/* Multiply-accumulates per Fusion Unit per cycle at (w, a) bits:
 * floor(pmax/max(a,pmin)) * floor(pmax/max(w,pmin)) (reference/apq.md §8.2);
 * a 6-bit operand computes like an 8-bit one (8x8 -> 1, 4x4 -> 4, 2x2 -> 16). */
int bitfusion_pf(const struct device *d, int w_bits, int a_bits);
/* The chosen schedule of one layer (batch 1): total and compute cycles, DRAM
 * traffic in bits, dynamic energy (no leakage) in pJ, and the tile sizes
 * (b, ow = oh, ic or channels, oc). */
struct bf_stats {
    int64_t cycles, compute_cycles, dram_bits;
    double dynamic_pj;
    int tile_b, tile_o, tile_ic, tile_oc;
};
/* Same errors as device_layer_cost; d->model must be "bitfusion". For a
 * depthwise layer the totals cover all ceil(C/G) channel groups and the tile
 * is one group's (devices/bitfusion.c). */
int bitfusion_layer_stats(const struct device *d, const struct layer_desc *l, struct bf_stats *st);

/* ---- lookup table -------------------------------------------------------- */
/* Compare keys field by field (or with lut_find), not with memcmp: the
 * struct has a padding byte. */
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
    struct lut_entry *e; /* sorted by key, owned */
    uint64_t space_hash;
    char space[64];         /* space name, for messages */
    char device[64];        /* device name */
    char device_model[32];  /* its cost model, e.g. "bitfusion" */
    char device_text[4096]; /* the device .ini text, stored in lut.h5 for provenance */
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
/* The key of a layer and its readable form, e.g. "pw_cin16_cout64_h28_k1_s1_w8a8"
 * (kinds conv, dw, pw, fc); buf of >= 64 bytes. */
struct lut_key lut_key_of(const struct layer_desc *l);
const char *lut_key_string(const struct lut_key *k, char *buf, size_t size);
/* Entry for one layer (NULL when absent). */
const struct lut_entry *lut_find(const struct lut *t, const struct layer_desc *l);
/* Sum of the LUT entries of a quantized arch's layers. APQ_EFORMAT when a
 * layer is missing from the table (names it), APQ_ECONFIG for an fp32 arch. */
int lut_arch_cost(const struct lut *t, const struct space *s, const struct arch *a,
                  double *latency_ms, double *energy_mj);

#endif
